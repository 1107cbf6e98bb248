/** Any JSON API over HTTP(S), as a destination: requests built from Liquid templates, a shared rate limit. */
import type { ConnectorKind, SyncProblem } from '../../core/connector-kind.js';
import { HTTP_CAPABILITIES, httpConnectionSettings, httpObject, httpSyncSettings, rowsRead, type HttpConnectionSettings, type HttpSyncSettings } from './http-settings.js';

export const httpConnector: ConnectorKind<HttpConnectionSettings, HttpSyncSettings> = {
  type: 'http',
  description: 'Any JSON API over HTTP(S), at base `url` with `headers`; a sync sets the request (method, Liquid body, delete request, per-record results).',
  settings: httpConnectionSettings,
  secrets: ['url', 'headers'],
  example: '{ type: http, url: "https://api.example.com/v1", headers: { Authorization: "Bearer ${API_TOKEN}" } }',
  preload: async () => {
    await import('./http-destination.js');
    (await import('./http-templates.js')).loadLiquid();
  },
  destination: {
    capabilities: HTTP_CAPABILITIES,
    syncSettings: httpSyncSettings,
    object: httpObject,
    checkSync: ({ object, mode, deleteBehavior, settings }) => {
      const problems: SyncProblem[] = [];
      if ((mode === 'mirror' || deleteBehavior === 'delete') && settings.delete === undefined) {
        problems.push({
          at: mode === 'mirror' ? 'mode' : 'deleteBehavior',
          message: `the sync deletes rows (${mode === 'mirror' ? 'mode mirror' : 'deleteBehavior delete'}) but has no delete request`,
          hint: 'add one, e.g. delete: { method: DELETE, path: "/contacts/{{ row.id }}" }, or use mode upsert with deleteBehavior ignore',
        });
      }
      // The object is the path of the request the body goes with: both carry one row, or both the batch.
      const [path, body] = [rowsRead(object), rowsRead(settings.body)];
      if (path !== undefined && body !== undefined && path !== body) {
        problems.push({ at: 'body', message: `reads ${body}, while object reads ${path}`, hint: 'a request carries one row (row) or a batch (rows); use the same in both' });
      }
      return problems;
    },
    open: async (settings, context) => (await import('./http-destination.js')).HttpDestination.open(settings, context),
  },
};

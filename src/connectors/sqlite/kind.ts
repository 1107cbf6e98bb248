/** SQLite files, as a source (read-only) and as a destination. */
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { auditLogSetting, pathSetting } from '../settings.js';

const settings = z.strictObject({
  path: pathSetting('SQLite file, relative to the workspace folder (or absolute); may hold ${ENV} templates.'),
  auditLog: auditLogSetting(),
});

export const sqliteConnector: ConnectorKind<z.output<typeof settings>> = {
  type: 'sqlite',
  description: 'A SQLite file, at `path`.',
  settings,
  secrets: [],
  paths: ['path'],
  example: '{ type: sqlite, path: crm.db }',
  preload: () => Promise.all([import('./sqlite-source.js'), import('./sqlite-destination.js')]),
  source: { open: async (s) => (await import('./sqlite-source.js')).SqliteSource.open({ path: s.path }) },
  auditLog: {
    open: async (s, context) =>
      s.auditLog ? (await import('./sqlite-audit-log.js')).SqliteAuditLog.open({ path: s.path, schema: s.auditLog.schema, connection: context.slug }) : null,
  },
  destination: {
    capabilities: { deletes: true, upsert: true, maxBatchSize: null, recordIds: false },
    open: async (s) => (await import('./sqlite-destination.js')).SqliteDestination.open({ path: s.path }),
  },
};

/**
 * Client: Hightouch's generated Python SDK, `hightouch` 3.x on PyPI (Speakeasy-generated from
 * Hightouch's OpenAPI document). Read: speakeasy-sdks/hightouch-python-sdk src/hightouch/sdk.py
 * (@00b33e0, 1.31.0, and the list_sync_runs of a later generation), sdkconfiguration.py @42a61d1
 * (3.1.2), models/operations/{getsync,listsyncruns,triggerrun,listdestination}.py @15ee8d9 / @2efb73c,
 * models/shared/{syncrun,sync,source,model,destination,triggerruncustominput}.py, the 3.x model docs
 * (docs/models/shared/{syncrun,model}.md @307d89e), .speakeasy/gen.lock @064955e (3.2.1), and the
 * serializer of path and query values (`str(value)`, so a float 3.0 is sent as "3.0").
 *
 * Every call is a python-requests Session request with `Authorization: Bearer <key>` and
 * `user-agent: speakeasy-sdk/python 3.1.2 2.195.2 1.0.0 hightouch`; request bodies are JSON
 * (`content-type: application/json`, json.dumps spacing). In 3.x the SDK decodes ids as floats
 * (SyncRun.id, Model.id, sourceId, syncs: float) and its request types take ids as floats too
 * (GetSyncRequest.sync_id, ListSyncRunsRequest.sync_id/run_id/limit: float), so an id read from one
 * answer goes back as `3.0`: /syncs/3.0, ?runId=57.0. TriggerRunRequest.sync_id and
 * TriggerRunCustomInput.sync_id are strings, filled the same way ("1.0"). A 422 is decoded as
 * ValidateErrorJSON {message, details}.
 *
 * The calls replayed, in the order a script makes them: list_sync(slug), get_sync, trigger_run,
 * trigger_run_custom, list_sync_runs(run_id) until terminal, trigger_sequence_run and
 * get_sync_sequence_run until the run ends (models/shared/syncsequencestatusoutput.py @7a23d15: enums
 * SyncSequenceRequestStatus and SyncRunStatus), get_destination(sync.destination_id),
 * get_model(sync.model_id), get_source(model.source_id), list_destination, list_model, list_source.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_PASSWORD, startApi, type ApiHarness } from '../api-helpers.js';
import { ISO, TERMINAL_STATUSES, poll, send, sendOk } from './wire.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

const headers = () => ({
  'User-Agent': 'speakeasy-sdk/python 3.1.2 2.195.2 1.0.0 hightouch',
  'Accept-Encoding': 'gzip, deflate',
  Accept: 'application/json',
  Connection: 'keep-alive',
  Authorization: `Bearer ${api.token}`,
});
const jsonHeaders = () => ({ ...headers(), 'content-type': 'application/json' });
const get = async (path: string) => (await sendOk(api, { method: 'GET', path, headers: headers() })).body;
/** Python's str() of a float id, as the SDK sends it back. */
const float = (id: number) => `${id}.0`;

/** The required fields of the SDK's dataclasses (a missing one fails decoding). */
const REQUIRED = {
  Sync: ['configuration', 'createdAt', 'destinationId', 'disabled', 'id', 'lastRunAt', 'modelId', 'primaryKey', 'referencedColumns', 'schedule', 'slug', 'status', 'updatedAt', 'workspaceId'],
  SyncRun: ['completionRatio', 'createdAt', 'failedRows', 'finishedAt', 'id', 'plannedRows', 'querySize', 'startedAt', 'status', 'successfulRows'],
  Destination: ['configuration', 'createdAt', 'id', 'name', 'slug', 'syncs', 'type', 'updatedAt', 'workspaceId'],
  Source: ['configuration', 'createdAt', 'id', 'name', 'slug', 'type', 'updatedAt', 'workspaceId'],
  Model: ['createdAt', 'id', 'isSchema', 'name', 'primaryKey', 'queryType', 'slug', 'sourceId', 'syncs', 'tags', 'updatedAt', 'workspaceId'],
};
function expectDecodable(kind: keyof typeof REQUIRED, value: Record<string, unknown>) {
  for (const field of REQUIRED[kind]) expect(value, `${kind}.${field}`).toHaveProperty(field);
  expect(value.createdAt).toMatch(ISO);
}

describe('Python SDK: hightouch 3.x (Speakeasy)', () => {
  it('list_sync(slug), get_sync with the id as a float, trigger_run and list_sync_runs(run_id) as floats', async () => {
    const listed = await get('/api/v1/syncs?slug=accounts-to-crm');
    expect(listed.data).toHaveLength(1);
    const listedSync = listed.data[0];
    expectDecodable('Sync', listedSync);

    const sync = await get(`/api/v1/syncs/${float(listedSync.id)}`);
    expect(sync).toEqual(listedSync);

    const trigger = await sendOk(api, { method: 'POST', path: `/api/v1/syncs/${float(sync.id)}/trigger`, headers: jsonHeaders(), body: '{"fullResync": false}' });
    expect(trigger.body).toEqual({ id: expect.stringMatching(/^\d+$/) });
    const runId = Number(trigger.body.id);

    const run = await poll(async () => {
      const page = await get(`/api/v1/syncs/${float(sync.id)}/runs?runId=${float(runId)}`);
      expect(page).toEqual({ hasMore: false, data: [expect.objectContaining({ id: runId })] });
      return TERMINAL_STATUSES.includes(page.data[0].status) ? page.data[0] : undefined;
    });
    expectDecodable('SyncRun', run);
    expect(run).toMatchObject({ status: 'success', error: null, querySize: 3 });

    // Paging values are floats too.
    const page = await get(`/api/v1/syncs/${float(sync.id)}/runs?limit=5.0&offset=0.0&orderBy=createdAt`);
    expect(page.data.map((r: { id: number }) => r.id)).toContain(runId);
  });

  it('trigger_run_custom: syncId as the text of a float, or syncSlug', async () => {
    const byId = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: jsonHeaders(), body: '{"syncId": "2.0"}' });
    const bySlug = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: jsonHeaders(), body: '{"fullResync": true, "syncSlug": "workspaces-to-crm"}' });
    for (const answer of [byId, bySlug]) {
      const run = await poll(async () => {
        const page = await get(`/api/v1/syncs/2.0/runs?runId=${answer.body.id}.0`);
        return TERMINAL_STATUSES.includes(page.data[0].status) ? page.data[0] : undefined;
      });
      expect(run.status).toBe('success');
    }
  });

  it('trigger_sequence_run, then get_sync_sequence_run until the run ends: the enums SyncSequenceStatusOutput decodes', async () => {
    // Both take the id as a string path parameter and send no body.
    const trigger = await sendOk(api, { method: 'POST', path: '/api/v1/sync-sequences/1/trigger', headers: headers() });
    expect(trigger.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const run = await poll(async () => {
      const status = await get(`/api/v1/sync-sequences/runs/${trigger.body.id}`);
      // SyncSequenceRequestStatus and SyncRunStatus are enums: any other value fails decoding.
      expect(['pending', 'running', 'done', 'failed', 'cancelled']).toContain(status.status);
      for (const syncRun of status.syncRuns) {
        expect(Object.keys(syncRun).sort()).toEqual(['finishedAt', 'status', 'syncId', 'syncRunId']);
        expect([...TERMINAL_STATUSES, 'queued', 'querying', 'processing', 'reporting']).toContain(syncRun.status);
      }
      return ['done', 'failed', 'cancelled'].includes(status.status) ? status : undefined;
    });
    expect(run).toMatchObject({ id: trigger.body.id, status: 'done' });
    expect(run.syncRuns.map((r: { syncId: number }) => r.syncId)).toEqual([1, 2, 3]);
    for (const syncRun of run.syncRuns) expect(syncRun).toEqual({ syncId: expect.any(Number), syncRunId: expect.any(Number), status: 'success', finishedAt: expect.stringMatching(ISO) });
    // A run id that is no UUID is a ValidateErrorJSON; one that names no run, a 404.
    const bad = await send(api, { method: 'GET', path: '/api/v1/sync-sequences/runs/42', headers: headers() });
    expect(bad.status).toBe(422);
    expect(bad.body).toEqual({ message: 'Validation failed', details: { syncSequenceRunId: expect.any(String) } });
    expect((await send(api, { method: 'GET', path: '/api/v1/sync-sequences/runs/0cb7da35-1fff-4d4a-bf1b-6534d515e5b5', headers: headers() })).status).toBe(404);
  });

  it('get_destination, get_model and get_source with the float ids read from the sync and the model', async () => {
    const sync = await get('/api/v1/syncs/1.0');
    const destination = await get(`/api/v1/destinations/${float(sync.destinationId)}`);
    expectDecodable('Destination', destination);
    expect(destination).toMatchObject({ id: sync.destinationId, slug: 'crm', type: 'sqlite', workspaceId: 1, syncs: [1, 2, 3] });

    const model = await get(`/api/v1/models/${float(sync.modelId)}`);
    expectDecodable('Model', model);
    expect(model).toEqual({
      id: sync.modelId,
      name: 'accounts',
      slug: 'accounts',
      description: '',
      workspaceId: 1,
      primaryKey: 'id',
      createdAt: expect.stringMatching(ISO),
      updatedAt: expect.stringMatching(ISO),
      sourceId: expect.any(Number),
      queryType: 'raw_sql',
      tags: {},
      isSchema: false,
      syncs: [1],
      raw: { sql: 'select id, name from accounts' },
      lastRunSize: 3,
    });

    const source = await get(`/api/v1/sources/${float(model.sourceId)}`);
    expectDecodable('Source', source);
    expect(source).toMatchObject({ id: model.sourceId, slug: 'warehouse', name: 'warehouse', type: 'sqlite', configuration: { path: expect.stringContaining('warehouse.db') } });
  });

  it('list_destination, list_model and list_source: {data}, with paging, orderBy and slug/name filters; no secret', async () => {
    const destinations = await sendOk(api, { method: 'GET', path: '/api/v1/destinations?limit=100.0&offset=0.0&orderBy=slug', headers: headers() });
    expect(destinations.body.hasMore).toBe(false);
    expect(destinations.body.data.map((d: { slug: string }) => d.slug)).toEqual(['crm', 'pg']);
    for (const d of destinations.body.data) expectDecodable('Destination', d);
    expect(destinations.text).not.toContain(PG_PASSWORD);
    expect(destinations.body.data[1].configuration).toEqual({ url: 'postgres://lockstep:***@db.example.com:5432/crm' });

    const first = await get('/api/v1/destinations?limit=1&orderBy=name');
    expect(first).toEqual({ hasMore: true, data: [expect.objectContaining({ slug: 'crm' })] });
    expect((await get('/api/v1/destinations?name=pg')).data.map((d: { slug: string }) => d.slug)).toEqual(['pg']);

    const models = await get('/api/v1/models?orderBy=id');
    expect(models.data.map((m: { slug: string }) => m.slug)).toEqual(['accounts', 'workspaces', 'contacts']);
    for (const m of models.data) expectDecodable('Model', m);
    expect((await get('/api/v1/models?slug=contacts')).data).toHaveLength(1);
    expect(await get('/api/v1/models?tags=team:marketing')).toEqual({ hasMore: false, data: [] });

    const sources = await get('/api/v1/sources?slug=warehouse');
    expect(sources.data).toHaveLength(1);
    expectDecodable('Source', sources.data[0]);
  });

  it('ids that are not whole numbers get a 422 ValidateErrorJSON naming the field', async () => {
    for (const [path, field] of [
      ['/api/v1/syncs/1.5', 'syncId'],
      ['/api/v1/syncs/abc/runs', 'syncId'],
      ['/api/v1/syncs/1.0/runs?runId=57.5', 'runId'],
      ['/api/v1/syncs/1/runs?limit=abc', 'limit'],
      ['/api/v1/destinations/1.25', 'destinationId'],
      ['/api/v1/models/x', 'modelId'],
      ['/api/v1/sources/-1', 'sourceId'],
    ] as const) {
      const answer = await send(api, { method: 'GET', path, headers: headers() });
      expect(answer.status, path).toBe(422);
      expect(answer.body, path).toEqual({ message: 'Validation failed', details: { [field]: expect.stringContaining('whole number') } });
    }
    const body = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: jsonHeaders(), body: '{"syncId": "1.5"}' });
    expect(body.body).toEqual({ message: 'Validation failed', details: { syncId: expect.stringContaining('whole number') } });
    const missing = await send(api, { method: 'GET', path: '/api/v1/models/99.0', headers: headers() });
    expect(missing.status).toBe(404);
  });
});

/**
 * Client: Apache Airflow's Hightouch provider, airflow-provider-hightouch 4.0.0 (API "v3", which is
 * Hightouch's /api/v1). Read: hightouchio/airflow-provider-hightouch operators/hightouch.py @01cca93,
 * sensors/hightouch.py and triggers/hightouch.py @19e8bea, consts.py and utils.py @7131735; the v3
 * HightouchHook (hooks/hightouch.py of that line, stored as the fork salma-remyx/airflow-provider-hightouch
 * @e420176; the upstream copy in the index is the older v2 hook).
 *
 * The hook is an Airflow HttpHook: the `data` dict of a POST goes out as a form body
 * (`application/x-www-form-urlencoded`, by python-requests), the `data` of a GET as the query string.
 * Every request carries `accept: application/json` and `Authorization: Bearer <token>`, plus
 * `User-Agent: AirflowHightouchOperator/<version>`. A non-2xx answer is retried, then fails the task.
 * The URL is the Airflow connection's host, a slash, and `api/v1/<endpoint>`.
 *
 * HightouchTriggerSyncOperator (synchronous), in order:
 *   POST api/v1/syncs/trigger              syncId=<id> | syncSlug=<slug>   reads `id` (a string)
 *   GET  api/v1/syncs?slug=<slug>          (given a slug only)            reads data[0].id
 *   GET  api/v1/syncs/<id>/runs?runId=<id> every 3 s until terminal       reads data[0]: status,
 *        completionRatio, error, createdAt/startedAt/finishedAt, querySize, and addedCount,
 *        changedCount, removedCount of plannedRows, successfulRows and failedRows
 *   GET  api/v1/syncs/<id>                 once the run succeeded         the sync, handed to the task
 * HightouchSyncRunSensor makes the runs request on each poke. The deferrable trigger reads
 * `response[0]['error']` (a KeyError when the field is missing) when a run ends badly.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlite } from '../../helpers/harness.js';
import { startApi, type ApiHarness } from '../api-helpers.js';
import { ISO, PENDING_STATUSES, TERMINAL_STATUSES, poll, sendOk, send } from './wire.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

const headers = () => ({
  'User-Agent': 'AirflowHightouchOperator/4.0.0',
  'Accept-Encoding': 'gzip, deflate',
  accept: 'application/json',
  Connection: 'keep-alive',
  Authorization: `Bearer ${api.token}`,
});
const formHeaders = () => ({ ...headers(), 'Content-Type': 'application/x-www-form-urlencoded' });

/**
 * Where the hook sends `endpoint`: HttpHook.url_from_endpoint writes the connection's host (Lockstep's
 * address, as the README says to set it), a slash, then urljoin("api/v1/", endpoint).
 */
function hookPath(endpoint: string, host = api.url): string {
  const url = new URL(`${host.endsWith('/') ? host : `${host}/`}api/v1/${endpoint}`);
  return url.pathname + url.search;
}

/** What the hook's make_request returns: `data` when the answer has it, else the answer. */
const unwrap = (body: Record<string, unknown>) => ('data' in body ? body.data : body);

/** The hook's poll_sync loop: the run by id until a terminal status, as utils.parse_sync_run_details reads it. */
async function pollSync(syncId: string | number, runId: string) {
  return poll(async () => {
    const runs = unwrap((await sendOk(api, { method: 'GET', path: hookPath(`syncs/${syncId}/runs?runId=${runId}`), headers: headers() })).body) as Record<string, unknown>[];
    const run = runs[0]!;
    expectParsable(run);
    const status = run.status as string;
    expect([...TERMINAL_STATUSES, ...PENDING_STATUSES]).toContain(status);
    return TERMINAL_STATUSES.includes(status) ? run : undefined;
  });
}

/** Every field parse_sync_run_details reads, with the type it needs. */
function expectParsable(run: Record<string, unknown>) {
  expect(run.createdAt).toMatch(ISO);
  for (const field of ['startedAt', 'finishedAt']) expect(run[field] === null || ISO.test(run[field] as string), field).toBe(true);
  for (const counts of ['plannedRows', 'successfulRows', 'failedRows']) {
    expect(run[counts]).toEqual({ addedCount: expect.any(Number), changedCount: expect.any(Number), removedCount: expect.any(Number) });
  }
  expect(Number.isInteger(run.querySize)).toBe(true);
  expect(typeof run.completionRatio).toBe('number');
  expect(typeof run.status).toBe('string');
  // The deferrable trigger reads it with [] (a missing key is a KeyError).
  expect(run).toHaveProperty('error');
}

describe('Airflow: airflow-provider-hightouch 4.0.0', () => {
  it('HightouchTriggerSyncOperator(sync_id=1): form trigger, runs polled by runId, then the sync', async () => {
    const trigger = await sendOk(api, { method: 'POST', path: hookPath('syncs/trigger'), headers: formHeaders(), body: 'syncId=1' });
    const runId = unwrap(trigger.body) as { id: string };
    expect(runId).toEqual({ id: expect.stringMatching(/^\d+$/) });

    const run = await pollSync('1', runId.id);
    expect(run.status).toBe('success');
    expect(run.error).toBeNull();
    expect(run.id).toBe(Number(runId.id));
    expect(run.querySize).toBe(3);

    const sync = unwrap((await sendOk(api, { method: 'GET', path: hookPath('syncs/1'), headers: headers() })).body) as Record<string, unknown>;
    expect(sync).toMatchObject({ id: 1, slug: 'accounts-to-crm', status: 'success' });
  });

  it('HightouchTriggerSyncOperator(sync_slug=...): form trigger by slug, the id looked up by slug, runs polled', async () => {
    const trigger = await sendOk(api, { method: 'POST', path: hookPath('syncs/trigger'), headers: formHeaders(), body: 'syncSlug=workspaces-to-crm' });
    const { id: runId } = unwrap(trigger.body) as { id: string };
    const found = unwrap((await sendOk(api, { method: 'GET', path: hookPath('syncs?slug=workspaces-to-crm'), headers: headers() })).body) as Array<{ id: number }>;
    const syncId = found[0]!.id;
    expect(syncId).toBe(2);
    const run = await pollSync(syncId, runId);
    expect(run).toMatchObject({ status: 'success', error: null, querySize: 6 });
    await sendOk(api, { method: 'GET', path: hookPath(`syncs/${syncId}`), headers: headers() });
  });

  it('form bodies take the flags as text; a bad form field is a 422 naming it, as JSON would be', async () => {
    const full = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/1/trigger', headers: formHeaders(), body: 'fullResync=true' });
    const stored = await api.app.store.getSyncRun(Number(full.body.id));
    expect(stored?.options.fullResync).toBe(true);
    await pollSync(1, full.body.id);

    const bad = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: formHeaders(), body: 'syncId=1.5' });
    expect(bad.status).toBe(422);
    expect(bad.body).toEqual({ message: 'Validation failed', details: { syncId: expect.stringContaining('whole number') } });
    const twice = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: formHeaders(), body: 'syncId=1&syncId=2' });
    expect(twice.status).toBe(422);
    expect(Object.keys(twice.body.details)).toEqual(['syncId']);
    const unknown = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: formHeaders(), body: 'syncSlug=nope' });
    expect(unknown.status).toBe(404);
  });

  it('a connection host given with /api/v1 (the hook adds it too) gets a 404 saying to give the address alone', async () => {
    const answer = await send(api, { method: 'POST', path: hookPath('syncs/trigger', `${api.url}/api/v1`), headers: formHeaders(), body: 'syncId=1' });
    expect(answer.status).toBe(404);
    expect(answer.body.message).toBe(
      "no route POST /api/v1/api/v1/syncs/trigger — /api/v1 is in the path twice: the client adds it to the address it is given, so give it Lockstep's address alone (http://host:port)",
    );
  });

  it('HightouchSyncRunSensor: each poke reads data[0] of the run by id', async () => {
    const { id } = (await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: formHeaders(), body: 'syncId=3' })).body as { id: string };
    const run = await pollSync(3, id);
    expect(run.status).toBe('success');
  });

  it('a run that fails carries its error, which the deferrable trigger reads as response[0]["error"]', async () => {
    const warehouse = join(api.dir, 'warehouse.db');
    sqlite(warehouse, 'alter table accounts rename to accounts_moved');
    try {
      const { id } = (await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: formHeaders(), body: 'syncId=1' })).body as { id: string };
      const run = await pollSync(1, id);
      expect(run.status).toBe('failed');
      expect(run.error).toEqual(expect.any(String));
      expect((run.error as string).length).toBeGreaterThan(0);
    } finally {
      sqlite(warehouse, 'alter table accounts_moved rename to accounts');
    }
  });
});

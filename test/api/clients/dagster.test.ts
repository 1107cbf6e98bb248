/**
 * Client: Dagster's Hightouch integration, dagster-hightouch 0.1.8 (hightouch_sync_op, the
 * HightouchSyncComponent and ConfigurableHightouchResource). Read: dagster-io/dagster
 * python_modules/libraries/dagster-hightouch: dagster_hightouch/resources.py @10a5eca, ops.py and
 * utils.py @07e938e / @03baa7d, component.py and __init__.py @0191bd7.
 *
 * HightouchResource.make_request uses python-requests with `params=` (a query string, never a body):
 * headers `Authorization: Bearer <key>` and `User-Agent: HightouchDagsterOp/<version>`; a POST without
 * a body goes out with `Content-Length: 0`. A non-2xx answer is retried, then the op fails. Each
 * endpoint is urljoin'ed to the module constant HIGHTOUCH_API_BASE (https://api.hightouch.io/api/v1/),
 * not a setting: the README points it at Lockstep by setting that constant, as these tests do.
 *
 * sync_and_poll, in order:
 *   POST syncs/<id>/trigger                                  reads `id`
 *   GET  syncs/<id>/runs?runId=<run>  every 3 s until terminal reads data[0] (parse_sync_run_details:
 *        status, completionRatio, error, createdAt/startedAt/finishedAt, querySize, the counts)
 *   GET  syncs/<id>                   after a successful run  reads destinationId, configuration.object
 *   GET  destinations/<destinationId>                        reads type and slug
 * The op names its asset ["hightouch", destination type, destination slug, sync object]; the
 * component puts querySize, completionRatio and failedRows.addedCount in the asset's metadata.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_PASSWORD, startApi, type ApiHarness } from '../api-helpers.js';
import { ISO, PENDING_STATUSES, TERMINAL_STATUSES, poll, sendOk, send, urljoinPath } from './wire.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

const headers = () => ({
  'User-Agent': 'HightouchDagsterOp/0.1.8',
  'Accept-Encoding': 'gzip, deflate',
  Accept: '*/*',
  Connection: 'keep-alive',
  Authorization: `Bearer ${api.token}`,
});
/**
 * The resource's base URL, `dagster_hightouch.resources.HIGHTOUCH_API_BASE`, set as the README says;
 * make_request joins each endpoint to it with urljoin.
 */
const HIGHTOUCH_API_BASE = () => `${api.url}/api/v1/`;
const endpoint = (path: string) => urljoinPath(HIGHTOUCH_API_BASE(), path);
const unwrap = (body: Record<string, unknown>) => ('data' in body ? body.data : body);
const get = async (path: string) => unwrap((await sendOk(api, { method: 'GET', path, headers: headers() })).body) as Record<string, unknown>;

/** HightouchResource.sync_and_poll for one sync id: what the op receives. */
async function syncAndPoll(syncId: string) {
  const trigger = await sendOk(api, { method: 'POST', path: endpoint(`syncs/${syncId}/trigger`), headers: { ...headers(), 'Content-Length': '0' } });
  const requestId = (unwrap(trigger.body) as { id: string }).id;
  expect(requestId).toMatch(/^\d+$/);
  const run = await poll(async () => {
    const runs = unwrap((await sendOk(api, { method: 'GET', path: endpoint(`syncs/${syncId}/runs?runId=${requestId}`), headers: headers() })).body) as Record<string, unknown>[];
    const latest = runs[0]!;
    expect([...TERMINAL_STATUSES, ...PENDING_STATUSES]).toContain(latest.status);
    return TERMINAL_STATUSES.includes(latest.status as string) ? latest : undefined;
  });
  // fail_on_warning is off by default: a warning goes on like a success.
  expect(['success', 'warning']).toContain(run.status);
  const sync = await get(endpoint(`syncs/${syncId}`));
  const destination = await get(endpoint(`destinations/${String(sync.destinationId)}`));
  return { run, sync, destination };
}

describe('Dagster: dagster-hightouch 0.1.8', () => {
  it('hightouch_sync_op: trigger, poll the run, then the sync and its destination name the asset', async () => {
    const { run, sync, destination } = await syncAndPoll('1');
    expect(run.status).toBe('success');

    // parse_sync_run_details
    expect(run.createdAt).toMatch(ISO);
    expect(run.startedAt).toMatch(ISO);
    expect(run.finishedAt).toMatch(ISO);
    for (const counts of ['plannedRows', 'successfulRows', 'failedRows']) {
      expect(run[counts]).toEqual({ addedCount: expect.any(Number), changedCount: expect.any(Number), removedCount: expect.any(Number) });
    }
    expect(run).toMatchObject({ querySize: 3, completionRatio: 1, error: null });

    // The asset name, as the op builds it.
    const configuration = sync.configuration as Record<string, unknown>;
    expect(['hightouch', destination.type, destination.slug, configuration.object]).toEqual(['hightouch', 'sqlite', 'crm', 'accounts']);
    expect(Number.isInteger(sync.destinationId)).toBe(true);
    expect(destination.id).toBe(sync.destinationId);
  });

  it('HightouchSyncComponent: the metadata it records from the run', async () => {
    const { run, destination } = await syncAndPoll('2');
    expect(run.querySize).toBe(6);
    expect(typeof run.completionRatio).toBe('number');
    expect((run.failedRows as Record<string, number>).addedCount).toBe(0);
    // destination_details is stored in the asset's metadata as it is: it must hold no secret.
    expect(destination).toEqual({
      id: expect.any(Number),
      name: 'crm',
      slug: 'crm',
      workspaceId: 1,
      createdAt: expect.stringMatching(ISO),
      updatedAt: expect.stringMatching(ISO),
      type: 'sqlite',
      configuration: { path: expect.stringContaining('crm.db') },
      syncs: [1, 2, 3],
    });
  });

  it('HIGHTOUCH_API_BASE without its last slash (urljoin drops /v1) or without /api/v1 gets a 404 naming the path meant', async () => {
    for (const [base, path] of [
      [`${api.url}/api/v1`, '/api/syncs/1/trigger'],
      [`${api.url}/`, '/syncs/1/trigger'],
    ] as const) {
      const trigger = { method: 'POST', path: urljoinPath(base, 'syncs/1/trigger'), headers: { ...headers(), 'Content-Length': '0' } } as const;
      expect(trigger.path).toBe(path);
      const answer = await send(api, trigger);
      expect(answer.status).toBe(404);
      expect(answer.body.message).toBe(
        `no route POST ${path} — did you mean /api/v1/syncs/1/trigger? A Hightouch client's base URL is Lockstep's address followed by /api/v1/, with the last slash (without it, urljoin drops /v1)`,
      );
    }
    // Lockstep's own routes and paths that are no v1 route keep the plain answer.
    expect((await send(api, { method: 'POST', path: '/api/syncs/1/nothing', headers: headers() })).body.message).toBe('no route POST /api/syncs/1/nothing — see /api/openapi.json');
  });

  it('GET destinations/{id} hides secrets, and answers 404 for an unknown id', async () => {
    const all = (await sendOk(api, { method: 'GET', path: '/api/v1/destinations', headers: headers() })).body as { data: Array<{ id: number; slug: string }> };
    const pg = all.data.find((d) => d.slug === 'pg')!;
    const answer = await sendOk(api, { method: 'GET', path: `/api/v1/destinations/${pg.id}`, headers: headers() });
    expect(answer.text).not.toContain(PG_PASSWORD);
    expect(answer.body).toMatchObject({ type: 'postgres', configuration: { url: 'postgres://lockstep:***@db.example.com:5432/crm' }, syncs: [] });
    const missing = await send(api, { method: 'GET', path: '/api/v1/destinations/999', headers: headers() });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ message: expect.stringContaining('999') });
  });
});

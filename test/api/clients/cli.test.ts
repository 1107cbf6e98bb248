/**
 * Client: Hightouch's CLI `ht` (hightouchio/cli, package "ht" 0.1.0, oclif + got 11). Read:
 * src/commands/{syncs,destinations,models,sources,runs}.ts @4c7f8da / @1176645, inspect.ts and
 * util.ts @10eee11, trigger.ts @1176645 (sends `fullSync`) and its build dist/commands/trigger.js
 * @5698a80 (sends `fullResync`), dist/commands/{inspect,runs}.js @5698a80.
 *
 * Every request: got with `Authorization: Bearer <token>` from ~/.hightouch/config.json, the
 * server address given at `ht login`, `accept: application/json` and got's user-agent; JSON bodies
 * with `content-type: application/json`. Commands and their requests:
 *   ht syncs | destinations | models | sources   GET /api/v1/<kind>   reads data[]: slug, status, name,
 *                                                                     type, createdAt, lastRunAt
 *   ht inspect <kind>/<slug>     GET /api/v1/<kind>/?slug=<slug>      (a trailing slash: the resource
 *                                                                     type keeps its "/")  prints data[0]
 *   ht trigger [-f] <slug>       GET /api/v1/syncs?slug=<slug>        reads data[0].id
 *                                POST /api/v1/syncs/<id>/trigger      {"fullResync": <-f>} (dist) or
 *                                                                     {"fullSync": <-f>} (src); reads id
 *                                GET /api/v1/syncs/<id>/runs?runId=<id> every 1 s: reads data[0].error,
 *                                    then plannedRows until their sum is above 0, then successfulRows,
 *                                    failedRows and completionRatio until processed == planned
 *   ht runs -s <slug> [-l n]     GET /api/v1/syncs?slug=<slug>, GET /api/v1/syncs/<id>/runs?limit=<n>
 *                                reads id, status, querySize, startedAt, finishedAt, and `diff`,
 *                                `success`, `fail`: fields of an older Hightouch API that its v1 does
 *                                not return either, so `ht runs` cannot print its table against
 *                                Hightouch or Lockstep (Lockstep answers Hightouch's shape exactly).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_PASSWORD, startApi, type ApiHarness } from '../api-helpers.js';
import { ISO, poll, sendOk } from './wire.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

const headers = () => ({
  'user-agent': 'got (https://github.com/sindresorhus/got)',
  accept: 'application/json',
  'accept-encoding': 'gzip, deflate, br',
  Authorization: `Bearer ${api.token}`,
});
const get = async (path: string) => (await sendOk(api, { method: 'GET', path, headers: headers() })).body;

interface Counts {
  addedCount: number;
  changedCount: number;
  removedCount: number;
}
const sum = (c: Counts) => c.addedCount + c.changedCount + c.removedCount;

/** `ht trigger`: look the sync up, trigger it, and follow the run as the progress bar does. */
async function htTrigger(slug: string, body: string) {
  const sync = (await get(`/api/v1/syncs?slug=${slug}`)).data[0];
  const trigger = await sendOk(api, { method: 'POST', path: `/api/v1/syncs/${sync.id}/trigger`, headers: { ...headers(), 'content-type': 'application/json' }, body });
  const { id } = trigger.body as { id: string };
  const runs = `/api/v1/syncs/${sync.id}/runs?runId=${id}`;
  // First loop: until the run has planned rows (or an error).
  const total = await poll(async () => {
    const [run] = (await get(runs)).data;
    if (!run) return undefined;
    expect(run.error, 'the run failed').toBeNull();
    return sum(run.plannedRows) > 0 ? sum(run.plannedRows) : undefined;
  });
  // Second loop: until every planned row is processed.
  const last = await poll(async () => {
    const [run] = (await get(runs)).data;
    expect(run.error, 'the run failed').toBeNull();
    expect(typeof run.completionRatio).toBe('number');
    return sum(run.successfulRows) + sum(run.failedRows) === total ? run : undefined;
  });
  return { id, total, last };
}

describe('CLI: ht 0.1.0 (hightouchio/cli)', () => {
  it('ht syncs | destinations | models | sources: the tables they print', async () => {
    const syncs = await get('/api/v1/syncs');
    expect(syncs.data.map((s: { slug: string }) => `syncs/${s.slug}`)).toEqual(['syncs/accounts-to-crm', 'syncs/workspaces-to-crm', 'syncs/contacts-to-crm']);
    for (const s of syncs.data) {
      expect(typeof s.status).toBe('string');
      expect(s.createdAt).toMatch(ISO);
      expect(s.lastRunAt).toBeNull();
    }
    for (const [kind, slugs] of [
      ['destinations', ['crm', 'pg']],
      ['models', ['accounts', 'workspaces', 'contacts']],
      ['sources', ['warehouse']],
    ] as const) {
      const answer = await sendOk(api, { method: 'GET', path: `/api/v1/${kind}`, headers: headers() });
      expect(answer.body.data.map((e: { slug: string }) => e.slug)).toEqual(slugs);
      for (const e of answer.body.data) {
        expect(e.name).toBe(e.slug);
        expect(e.createdAt).toMatch(ISO);
        if (kind !== 'models') expect(typeof e.type).toBe('string');
      }
      expect(answer.text).not.toContain(PG_PASSWORD);
    }
  });

  it('ht inspect <kind>/<slug>: the list with a trailing slash and ?slug=, data[0]', async () => {
    for (const [kind, slug] of [
      ['syncs', 'contacts-to-crm'],
      ['destinations', 'pg'],
      ['models', 'contacts'],
      ['sources', 'warehouse'],
    ] as const) {
      const answer = await sendOk(api, { method: 'GET', path: `/api/v1/${kind}/?slug=${slug}`, headers: headers() });
      expect(answer.body.data, kind).toHaveLength(1);
      expect(answer.body.data[0]).toMatchObject({ slug, id: expect.any(Number) });
      expect(answer.text).not.toContain(PG_PASSWORD);
    }
  });

  it('ht trigger -f syncs/accounts-to-crm (the built CLI sends fullResync): progress until every row is processed', async () => {
    const { total, last } = await htTrigger('accounts-to-crm', '{"fullResync":true}');
    expect(total).toBe(3);
    expect(last.completionRatio).toBe(1);
  });

  it('ht trigger -f (the source sends fullSync, taken as fullResync)', async () => {
    const { id, total } = await htTrigger('accounts-to-crm', '{"fullSync":true}');
    expect(total).toBe(3);
    expect((await api.app.store.getSyncRun(Number(id)))?.options.fullResync).toBe(true);
  });

  it('ht runs -s accounts-to-crm -l 5: the fields of the table that Hightouch returns', async () => {
    const sync = (await get('/api/v1/syncs/?slug=accounts-to-crm')).data[0];
    const { data } = await get(`/api/v1/syncs/${sync.id}/runs?limit=5`);
    expect(data).toHaveLength(2);
    for (const run of data) {
      expect(run).toMatchObject({ id: expect.any(Number), status: 'success', querySize: 3, startedAt: expect.stringMatching(ISO), finishedAt: expect.stringMatching(ISO) });
      // The older API's names; the table's getters for them fail against Hightouch's v1 as well.
      for (const old of ['diff', 'success', 'fail']) expect(run).not.toHaveProperty(old);
    }
  });
});

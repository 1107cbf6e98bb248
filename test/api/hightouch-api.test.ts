/**
 * Conformance of the Hightouch-compatible API v1: paths, field names and types, integer ids,
 * string run ids from triggers, UUID sequence run ids, statuses, `{hasMore, data}` pages, and the
 * 401/404/422 shapes; the liberties it takes in what it accepts (trailing slashes, form bodies,
 * flags as text, ids as `3.0`) and where they stop. Each Hightouch client's own requests are
 * replayed in test/api/clients/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_PASSWORD, eventually, startApi, type ApiHarness } from './api-helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const SYNC_RUN_STATUSES = ['queued', 'querying', 'processing', 'reporting', 'success', 'warning', 'failed', 'cancelled', 'interrupted'];

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

async function finishedRun(syncId: number, runId: string) {
  return eventually(async () => {
    const { body } = await api.call('GET', `/api/v1/syncs/${syncId}/runs?runId=${runId}`);
    const run = body.data[0];
    return run && ['success', 'warning', 'failed', 'cancelled'].includes(run.status) ? run : null;
  });
}

function expectCounts(value: unknown) {
  expect(value).toEqual({ addedCount: expect.any(Number), changedCount: expect.any(Number), removedCount: expect.any(Number) });
}

describe('Hightouch-compatible API v1', () => {
  it('GET /api/v1/syncs lists syncs with Hightouch fields and types', async () => {
    const { status, body } = await api.call('GET', '/api/v1/syncs');
    expect(status).toBe(200);
    expect(body.hasMore).toBe(false);
    expect(body.data.map((s: { slug: string }) => s.slug)).toEqual(['accounts-to-crm', 'workspaces-to-crm', 'contacts-to-crm']);
    const contacts = body.data[2];
    expect(Object.keys(contacts).sort()).toEqual(
      ['configuration', 'createdAt', 'destinationId', 'disabled', 'externalSegment', 'id', 'lastRunAt', 'modelId', 'primaryKey', 'referencedColumns', 'schedule', 'slug', 'status', 'tags', 'updatedAt', 'workspaceId'].sort(),
    );
    expect(Number.isInteger(contacts.id)).toBe(true);
    expect(Number.isInteger(contacts.modelId)).toBe(true);
    expect(Number.isInteger(contacts.destinationId)).toBe(true);
    expect(contacts.workspaceId).toBe(1);
    expect(contacts.createdAt).toMatch(ISO);
    expect(contacts.configuration).toMatchObject({ mode: 'upsert', object: 'contacts', mappings: [{ from: 'email', to: 'email_address', type: 'standard' }] });
    expect(contacts.schedule).toBeNull();
    expect(contacts.disabled).toBe(false);
    expect(typeof contacts.status).toBe('string');
    expect(contacts.primaryKey).toBe('id');
    expect(contacts.referencedColumns).toEqual(['id', 'email']);

    const page = await api.call('GET', '/api/v1/syncs?limit=1&offset=1&orderBy=slug');
    expect(page.body.hasMore).toBe(true);
    expect(page.body.data.map((s: { slug: string }) => s.slug)).toEqual(['contacts-to-crm']);
    expect((await api.call('GET', '/api/v1/syncs?slug=accounts-to-crm')).body.data).toHaveLength(1);
  });

  it('GET /api/v1/syncs/{id} answers one sync, 404 for an unknown id, 422 for a non-integer', async () => {
    const { body } = await api.call('GET', '/api/v1/syncs/1');
    expect(body).toMatchObject({ id: 1, slug: 'accounts-to-crm' });
    const missing = await api.call('GET', '/api/v1/syncs/999');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ message: expect.stringContaining('999') });
    const bad = await api.call('GET', '/api/v1/syncs/abc');
    expect(bad.status).toBe(422);
    expect(bad.body).toEqual({ message: 'Validation failed', details: { syncId: expect.any(String) } });
  });

  it('POST /api/v1/syncs/{id}/trigger answers {id} with the run id as a string; runs list it with Hightouch fields', async () => {
    const trigger = await api.call('POST', '/api/v1/syncs/1/trigger', { fullResync: true });
    expect(trigger.status).toBe(200);
    expect(trigger.body).toEqual({ id: expect.stringMatching(/^\d+$/) });
    const run = await finishedRun(1, trigger.body.id);
    expect(Object.keys(run).sort()).toEqual(
      ['completionRatio', 'createdAt', 'error', 'failedRows', 'finishedAt', 'id', 'plannedRows', 'querySize', 'startedAt', 'status', 'successfulRows'].sort(),
    );
    // null when there is none, as in Hightouch's examples (scripts read run["error"]).
    expect(run.error).toBeNull();
    expect(run.id).toBe(Number(trigger.body.id));
    expect(run.status).toBe('success');
    expect(SYNC_RUN_STATUSES).toContain(run.status);
    expect(run.querySize).toBe(3);
    expect(run.completionRatio).toBe(1);
    for (const field of ['plannedRows', 'successfulRows', 'failedRows']) expectCounts(run[field]);
    for (const field of ['createdAt', 'startedAt', 'finishedAt']) expect(run[field]).toMatch(ISO);

    const sync = (await api.call('GET', '/api/v1/syncs/1')).body;
    expect(sync.status).toBe('success');
    expect(sync.lastRunAt).toMatch(ISO);
  });

  it('POST /api/v1/syncs/trigger takes syncId (string or number) or syncSlug', async () => {
    const bySlug = await api.call('POST', '/api/v1/syncs/trigger', { syncSlug: 'workspaces-to-crm' });
    expect(bySlug.status).toBe(200);
    expect(bySlug.body.id).toMatch(/^\d+$/);
    await finishedRun(2, bySlug.body.id);
    const byId = await api.call('POST', '/api/v1/syncs/trigger', { syncId: '2', resetCDC: false });
    expect(byId.body.id).toMatch(/^\d+$/);
    await finishedRun(2, byId.body.id);
    const neither = await api.call('POST', '/api/v1/syncs/trigger', {});
    expect(neither.status).toBe(422);
    expect(neither.body).toEqual({ message: 'Validation failed', details: { syncId: expect.any(String) } });
    const badType = await api.call('POST', '/api/v1/syncs/trigger', { syncSlug: 'x', fullResync: 'yes' });
    expect(badType.status).toBe(422);
    expect(Object.keys(badType.body.details)).toEqual(['fullResync']);
    const unknown = await api.call('POST', '/api/v1/syncs/trigger', { syncSlug: 'nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toContain('nope');
  });

  it('POST /api/v1/syncs/trigger takes a null field as absent, as Hightouch does', async () => {
    const byId = await api.call('POST', '/api/v1/syncs/trigger', { syncId: 2, syncSlug: null, fullResync: null, resetCDC: null });
    expect(byId.status, byId.text).toBe(200);
    expect((await api.app.store.getSyncRun(Number(byId.body.id)))?.options).toMatchObject({ fullResync: false, resetCDC: false });
    await finishedRun(2, byId.body.id);
    const bySlug = await api.call('POST', '/api/v1/syncs/trigger', { syncId: null, syncSlug: 'workspaces-to-crm' });
    expect(bySlug.status, bySlug.text).toBe(200);
    await finishedRun(2, bySlug.body.id);
    const byPath = await api.call('POST', '/api/v1/syncs/2/trigger', { fullResync: null });
    expect(byPath.status, byPath.text).toBe(200);
    await finishedRun(2, byPath.body.id);
    // Both null is neither given.
    const neither = await api.call('POST', '/api/v1/syncs/trigger', { syncId: null, syncSlug: null });
    expect(neither.status).toBe(422);
    expect(neither.body.details).toEqual({ syncId: 'give syncId or syncSlug' });
  });

  it("a sync's status and lastRunAt while a follow-up run waits in the queue: the run under way, or queued once the run before it ended", async () => {
    // A worker of its own, stopped, so the runs are where the store puts them (a busy worker leaves them so).
    await using own = await startApi();
    await own.app.worker.stop();
    const { store, clock } = own.app;
    const lease = { workerId: 'worker-a', leaseMs: 60_000 };
    const trigger = { type: 'api', detail: 'api v1' } as const;
    const options = { fullResync: false, resetCDC: false };
    const { run: first } = await store.enqueueSyncRun({ syncId: 1, trigger, options }, clock.now());
    const running = await store.claimSyncRun(first.id, clock.now(), lease);
    await new Promise((r) => setTimeout(r, 20));
    // Triggered again while it runs: the follow-up waits behind it.
    const followUp = (await own.call('POST', '/api/v1/syncs/1/trigger')).body.id;
    expect((await store.getSyncRun(Number(followUp)))?.status).toBe('queued');
    const startedAt = new Date(running!.startedAt!).toISOString();
    const under = (await own.call('GET', '/api/v1/syncs/1')).body;
    expect({ status: under.status, lastRunAt: under.lastRunAt }).toEqual({ status: running!.status, lastRunAt: startedAt });
    expect((await own.call('GET', '/api/v1/syncs?slug=accounts-to-crm')).body.data[0]).toMatchObject({ status: running!.status, lastRunAt: startedAt });

    // The run ends; the follow-up still waits for a worker: queued, as a client that triggered it waits for it,
    // and it has not run, so the sync last ran when the run before it started.
    await store.updateSyncRun(first.id, { status: 'success' }, clock.now());
    const behindFinished = (await own.call('GET', '/api/v1/syncs/1')).body;
    expect({ status: behindFinished.status, lastRunAt: behindFinished.lastRunAt }).toEqual({ status: 'queued', lastRunAt: startedAt });
    const page = (await own.call('GET', '/api/v1/syncs/1/runs')).body.data;
    expect(page.map((r: { id: number; status: string }) => [r.id, r.status])).toEqual([
      [Number(followUp), 'queued'],
      [first.id, 'success'],
    ]);
  });

  it('a trigger whose fullResync or resetCDC contradicts the follow-up waiting in the queue is a 409, and the follow-up keeps its options', async () => {
    await using own = await startApi();
    await own.app.worker.stop();
    const { store, clock } = own.app;
    const { run: first } = await store.enqueueSyncRun({ syncId: 1, trigger: { type: 'api', detail: 'api v1' }, options: { fullResync: false, resetCDC: false } }, clock.now());
    await store.claimSyncRun(first.id, clock.now(), { workerId: 'worker-a', leaseMs: 60_000 });
    const full = await own.call('POST', '/api/v1/syncs/1/trigger', { fullResync: true });
    expect(full.status).toBe(200);

    const reset = await own.call('POST', '/api/v1/syncs/trigger', { syncId: 1, resetCDC: true });
    expect(reset.status).toBe(409);
    expect(reset.body).toEqual({
      message: `sync run ${full.body.id} waits in the queue with fullResync, which this trigger's resetCDC contradicts (fullResync sends every row, resetCDC sends none) — trigger again once that run has started, or cancel it first`,
    });
    // The full resync asked for is still what the follow-up does; a trigger asking for the same joins it.
    expect((await store.getSyncRun(Number(full.body.id)))?.options).toEqual({ fullResync: true, resetCDC: false });
    expect((await own.call('POST', '/api/v1/syncs/1/trigger', { fullResync: 'true' })).body).toEqual({ id: full.body.id });
  });

  it('a sync or sync sequence deleted since is named in the 404, by id or slug, with where its runs are', async () => {
    expect((await api.call('POST', '/api/syncs', { slug: 'short-lived', model: 'accounts', destination: 'crm', object: 'accounts', mode: 'upsert' })).status).toBe(201);
    expect((await api.call('POST', '/api/sequences', { slug: 'short-lived-line', name: 'Short lived', members: [{ sync: 'short-lived' }] })).status).toBe(201);
    const syncId = (await api.call('GET', '/api/v1/syncs?slug=short-lived')).body.data[0].id as number;
    const sequenceId = (await api.call('GET', '/api/sequences/short-lived-line')).body.id as number;
    expect((await api.call('DELETE', '/api/sequences/short-lived-line')).status).toBe(204);
    expect((await api.call('DELETE', '/api/syncs/short-lived')).status).toBe(204);

    const where = (kind: string, slug: string) => `was deleted — its runs stay in the history, listed by \`lockstep runs --${kind} ${slug}\``;
    for (const [method, path, body] of [
      ['GET', `/api/v1/syncs/${syncId}`, undefined],
      ['POST', `/api/v1/syncs/${syncId}/trigger`, {}],
      ['POST', '/api/v1/syncs/trigger', { syncId }],
    ] as const) {
      const gone = await api.call(method, path, body);
      expect(gone.status, path).toBe(404);
      expect(gone.body).toEqual({ message: `no sync with id ${syncId}: sync "short-lived" ${where('sync', 'short-lived')}` });
    }
    const bySlug = await api.call('POST', '/api/v1/syncs/trigger', { syncSlug: 'short-lived' });
    expect(bySlug.status).toBe(404);
    expect(bySlug.body).toEqual({ message: `no sync "short-lived" in the workspace: it ${where('sync', 'short-lived')}` });
    const sequence = await api.call('POST', `/api/v1/sync-sequences/${sequenceId}/trigger`);
    expect(sequence.status).toBe(404);
    expect(sequence.body).toEqual({ message: `no sync sequence with id ${sequenceId}: sequence "short-lived-line" ${where('sequence', 'short-lived-line')}` });
    expect((await api.call('POST', '/api/v1/sync-sequences/short-lived-line/trigger')).body.message).toContain(`it ${where('sequence', 'short-lived-line')}`);
    // An id nothing ever had is a bare 404.
    expect((await api.call('GET', '/api/v1/syncs/999999')).body).toEqual({ message: 'no sync with id 999999' });
  });

  it('GET /api/v1/syncs/{id}/runs pages newest first with hasMore, and filters', async () => {
    for (let i = 0; i < 3; i++) await finishedRun(3, (await api.call('POST', '/api/v1/syncs/3/trigger')).body.id);
    const all = (await api.call('GET', '/api/v1/syncs/3/runs')).body;
    expect(all.hasMore).toBe(false);
    expect(all.data.length).toBeGreaterThanOrEqual(3);
    const ids = all.data.map((r: { id: number }) => r.id);
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    const page = (await api.call('GET', '/api/v1/syncs/3/runs?limit=1&offset=1')).body;
    expect(page).toEqual({ hasMore: true, data: [expect.objectContaining({ id: ids[1] })] });
    for (const orderBy of ['createdAt', 'startedAt', 'finishedAt']) {
      expect((await api.call('GET', `/api/v1/syncs/3/runs?orderBy=${orderBy}`)).body.data.map((r: { id: number }) => r.id)).toEqual(ids);
    }
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await api.call('GET', `/api/v1/syncs/3/runs?after=${future}`)).body).toEqual({ hasMore: false, data: [] });
    expect((await api.call('GET', `/api/v1/syncs/3/runs?before=${future}&within=60`)).body.data).toHaveLength(ids.length);
    const bad = await api.call('GET', '/api/v1/syncs/3/runs?after=yesterday&orderBy=name');
    expect(bad.status).toBe(422);
    expect(Object.keys(bad.body.details).sort()).toEqual(['after', 'orderBy']);
  });

  it('reads after/before without a zone as UTC, as Hightouch does, whatever the zone of the server', async () => {
    const { id } = (await api.call('POST', '/api/v1/syncs/3/trigger')).body;
    const run = await finishedRun(3, id);
    // Python's datetime.utcnow().isoformat(): UTC, written without a zone, to the microsecond.
    const naive = (ms: number) => new Date(ms).toISOString().replace('Z', '000');
    const createdAt = Date.parse(run.createdAt);
    const zone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const ids = async (query: string) => (await api.call('GET', `/api/v1/syncs/3/runs?${query}`)).body.data.map((r: { id: number }) => r.id);
      expect(await ids(`after=${naive(createdAt - 60_000)}`)).toContain(run.id);
      expect(await ids(`before=${naive(createdAt - 60_000)}`)).not.toContain(run.id);
      expect(await ids(`after=${naive(createdAt - 60_000).replace('T', ' ')}`)).toContain(run.id);
      const lockstep = (await api.call('GET', `/api/syncs/contacts-to-crm/runs?after=${naive(createdAt - 60_000)}`)).body.data.map((r: { id: number }) => r.id);
      expect(lockstep).toContain(run.id);
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('POST /api/v1/sync-sequences/{id}/trigger answers a UUID; GET /sync-sequences/runs/{runId} shows its sync runs and members', async () => {
    const trigger = await api.call('POST', '/api/v1/sync-sequences/crm-hierarchy/trigger');
    expect(trigger.status).toBe(200);
    expect(trigger.body).toEqual({ id: expect.stringMatching(UUID) });
    const byId = await api.call('POST', '/api/v1/sync-sequences/1/trigger');
    expect(byId.body.id).toMatch(UUID);
    const done = await eventually(async () => {
      const { body } = await api.call('GET', `/api/v1/sync-sequences/runs/${byId.body.id}`);
      return body.status === 'done' ? body : null;
    });
    expect(Object.keys(done).sort()).toEqual(['id', 'members', 'reason', 'status', 'syncRuns', 'terminatedBy']);
    expect(done.syncRuns).toHaveLength(3);
    for (const r of done.syncRuns) {
      expect(r).toEqual({ syncId: expect.any(Number), syncRunId: expect.any(Number), status: 'success', finishedAt: expect.stringMatching(ISO) });
    }
    expect(done.members.map((m: { key: string; status: string }) => `${m.key}:${m.status}`)).toEqual([
      'accounts-to-crm:success',
      'workspaces-to-crm:success',
      'contacts-to-crm:success',
    ]);
    expect((await api.call('POST', '/api/v1/sync-sequences/nope/trigger')).status).toBe(404);
    const unknown = await api.call('GET', '/api/v1/sync-sequences/runs/00000000-0000-4000-8000-000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ message: expect.any(String) });
    const bad = await api.call('GET', '/api/v1/sync-sequences/runs/not-a-uuid');
    expect(bad.body).toEqual({ message: 'Validation failed', details: { syncSequenceRunId: expect.any(String) } });
  });

  it('reads a sequence run id in any case, as a UUID is read', async () => {
    const { id } = (await api.call('POST', '/api/v1/sync-sequences/crm-hierarchy/trigger')).body as { id: string };
    const upper = id.toUpperCase();
    const v1 = await api.call('GET', `/api/v1/sync-sequences/runs/${upper}`);
    expect(v1.status).toBe(200);
    expect(v1.body.id).toBe(id);
    expect((await api.call('GET', `/api/sequence-runs/${upper}`)).body).toMatchObject({ id, sequence: 'crm-hierarchy' });
    await eventually(async () => ['done', 'failed'].includes((await api.call('GET', `/api/v1/sync-sequences/runs/${id}`)).body.status));
  });

  it("a sequence run's syncRuns show a member's sync run whose process stopped as its runs show it, not interrupted", async () => {
    await using own = await startApi();
    await own.app.worker.stop();
    const { store, clock } = own.app;
    const trigger = await own.call('POST', '/api/v1/sync-sequences/crm-hierarchy/trigger');
    await store.claimSequenceRun(trigger.body.id, clock.now());
    const [member] = await store.startMembers(trigger.body.id, [{ key: 'accounts-to-crm', syncId: 1 }], clock.now());
    // Its worker claimed it, then stopped: the lease ended, and no worker took the run over yet.
    await store.claimSyncRun(member!.id, clock.now() - 10_000, { workerId: 'host/1/gone', leaseMs: 1 });
    const [syncRun] = (await own.call('GET', `/api/v1/syncs/1/runs?runId=${member!.id}`)).body.data;
    expect(syncRun.status).toBe('querying');
    const status = (await own.call('GET', `/api/v1/sync-sequences/runs/${trigger.body.id}`)).body;
    expect(status).toMatchObject({ status: 'running', syncRuns: [{ syncId: 1, syncRunId: member!.id, status: 'querying', finishedAt: null }] });
    // Lockstep's own members say what happened.
    expect(status.members[0]).toMatchObject({ key: 'accounts-to-crm', status: 'interrupted' });
  });

  it('POST /api/v1/sync-sequences/{id}/trigger takes an id first, then a slug of digits that is no id', async () => {
    expect((await api.call('POST', '/api/sequences', { slug: '2024', members: [{ sync: 'accounts-to-crm' }] })).status).toBe(201);
    try {
      const sequenceId = (await api.call('GET', '/api/sequences/2024')).body.id as number;
      const bySlug = await api.call('POST', '/api/v1/sync-sequences/2024/trigger');
      expect(bySlug.status).toBe(200);
      expect((await api.app.store.getSequenceRun(bySlug.body.id))?.sequenceId).toBe(sequenceId);
      const byId = await api.call('POST', '/api/v1/sync-sequences/1/trigger');
      expect((await api.app.store.getSequenceRun(byId.body.id))?.sequenceId).toBe(1);
      await eventually(async () => {
        const runs = await Promise.all([bySlug.body.id, byId.body.id].map((id: string) => api.call('GET', `/api/v1/sync-sequences/runs/${id}`)));
        return runs.every((r) => ['done', 'failed', 'cancelled'].includes(r.body.status));
      });
    } finally {
      expect((await api.call('DELETE', '/api/sequences/2024')).status).toBe(204);
    }
  });

  it('ignores a trailing slash on every /api route, for every method, before the token check', async () => {
    expect((await api.call('GET', '/api/v1/syncs/?slug=accounts-to-crm')).body.data.map((s: { slug: string }) => s.slug)).toEqual(['accounts-to-crm']);
    expect((await api.call('GET', '/api/v1/syncs/1/')).body).toMatchObject({ id: 1 });
    expect((await api.call('GET', '/api/v1/destinations/')).status).toBe(200);
    const trigger = await api.call('POST', '/api/v1/syncs/trigger/', { syncSlug: 'accounts-to-crm' });
    expect(trigger.status).toBe(200);
    await finishedRun(1, trigger.body.id);
    // Lockstep's own routes too, and the one route that needs no token.
    expect((await api.call('GET', '/api/syncs/')).status).toBe(200);
    expect((await api.call('GET', '/api/session/', undefined, { auth: false })).body).toEqual({ authRequired: true });
    expect((await api.call('GET', '/api/v1/syncs/', undefined, { auth: false })).status).toBe(401);
  });

  it('takes a doubled slash as one, as a script asks that adds /api/v1/... to a base URL with its last slash, before the token check', async () => {
    // `curl "$LOCKSTEP_URL/api/v1/syncs/trigger"` with LOCKSTEP_URL=http://lockstep.internal:3000/
    const trigger = await api.call('POST', '//api/v1/syncs/trigger', { syncSlug: 'accounts-to-crm' });
    expect(trigger.status).toBe(200);
    const run = await finishedRun(1, trigger.body.id);
    expect((await api.call('GET', `//api/v1/syncs/1/runs?runId=${run.id}`)).body.data[0]).toMatchObject({ id: run.id, status: run.status });
    // A base URL of .../api/v1/ with `/syncs` added to it.
    expect((await api.call('GET', '/api/v1//syncs//1')).body).toMatchObject({ id: 1, slug: 'accounts-to-crm' });
    expect((await api.call('GET', '//api//syncs/')).status).toBe(200);
    expect(await api.call('GET', '//api/v1/syncs', undefined, { auth: false })).toMatchObject({ status: 401, body: { message: 'Unauthorized' } });
  });

  it('a route asked with the wrong method is a 405 naming the one it takes, with Allow', async () => {
    // `curl -H "Authorization: Bearer ..." .../api/v1/syncs/1/trigger`, without -X POST.
    const get = await fetch(`${api.url}/api/v1/syncs/1/trigger`, { headers: { authorization: `Bearer ${api.token}` } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await get.json()).toEqual({ message: '/api/v1/syncs/1/trigger takes POST, not GET — send it as POST' });
    expect((await api.call('GET', '/api/v1/sync-sequences/crm-hierarchy/trigger/')).status).toBe(405);
    expect((await api.call('DELETE', '/api/v1/syncs/1')).body).toEqual({ message: '/api/v1/syncs/1 takes GET, not DELETE — send it as GET' });
    expect((await api.call('PATCH', '/api/syncs/accounts-to-crm/runs')).body).toEqual({ message: '/api/syncs/accounts-to-crm/runs takes POST or GET, not PATCH — send it as POST or GET' });
    // A path no route has is still a 404, and the token is checked first.
    expect((await api.call('GET', '/api/v1/syncs/1/trigger/now')).status).toBe(404);
    expect((await api.call('GET', '/api/v1/syncs/1/trigger', undefined, { auth: false })).status).toBe(401);
  });

  it('takes flags as true/false or their text, ids as 3 or 3.0, and nothing looser', async () => {
    const text = await api.call('POST', '/api/v1/syncs/trigger', { syncId: '1.0', fullResync: 'TRUE', resetCDC: 'false' });
    expect(text.status).toBe(200);
    expect((await api.app.store.getSyncRun(Number(text.body.id)))?.options).toMatchObject({ fullResync: true, resetCDC: false });
    await finishedRun(1, text.body.id);
    expect((await api.call('GET', `/api/v1/syncs/1.0/runs?runId=${text.body.id}.0&limit=1.0`)).body.data).toHaveLength(1);
    expect((await api.call('POST', '/api/v1/sync-sequences/1.0/trigger')).status).toBe(200);
    // Hightouch's clearAndFill, and the CLI's fullSync, ask for a full resync.
    for (const flag of ['clearAndFill', 'fullSync']) {
      const full = await api.call('POST', '/api/v1/syncs/2/trigger', { [flag]: true });
      expect((await api.app.store.getSyncRun(Number(full.body.id)))?.options.fullResync, flag).toBe(true);
      await finishedRun(2, full.body.id);
    }

    for (const [body, field] of [
      [{ syncId: 1.5 }, 'syncId'],
      [{ syncId: '3.5' }, 'syncId'],
      [{ syncId: 'abc' }, 'syncId'],
      [{ syncId: 0 }, 'syncId'],
      [{ syncId: 1, fullResync: 1 }, 'fullResync'],
      [{ syncId: 1, fullResync: 'yes' }, 'fullResync'],
      [{ syncId: 1, fullResync: true, resetCDC: 'true' }, 'resetCDC'],
      [{ syncId: 1, fullSync: 'true', resetCDC: true }, 'resetCDC'],
    ] as const) {
      const answer = await api.call('POST', '/api/v1/syncs/trigger', body);
      expect(answer.status, JSON.stringify(body)).toBe(422);
      expect(Object.keys(answer.body.details), JSON.stringify(body)).toEqual([field]);
    }
    for (const path of ['/api/v1/syncs/3.5', '/api/v1/syncs/1e0', '/api/v1/syncs/1.0/runs?runId=2.5', '/api/v1/syncs?offset=1.5']) {
      expect((await api.call('GET', path)).status, path).toBe(422);
    }
    const both = await api.call('POST', '/api/v1/syncs/1/trigger', { fullResync: true, resetCDC: true });
    expect(both.status).toBe(422);
    expect(both.body.details.resetCDC).toMatch(/^fullResync and resetCDC contradict each other: .* — set one of them$/);
    // Lockstep's own API keeps to whole numbers written as such.
    expect((await api.call('GET', '/api/sync-runs/1.0')).status).toBe(422);
  });

  it('takes form bodies on the v1 POST routes, JSON text sent as a form, and says so in the OpenAPI document', async () => {
    const form = (path: string, raw: string, type = 'application/x-www-form-urlencoded') =>
      fetch(api.url + path, { method: 'POST', headers: { authorization: `Bearer ${api.token}`, 'content-type': type }, body: raw });
    const bySlug = await form('/api/v1/syncs/trigger', 'syncSlug=accounts-to-crm&fullResync=false');
    expect(bySlug.status).toBe(200);
    await finishedRun(1, ((await bySlug.json()) as { id: string }).id);
    // curl -d '{...}' without a content type sends JSON text as a form.
    const curlJson = await form('/api/v1/syncs/1/trigger', '{"fullResync":false}');
    expect(curlJson.status).toBe(200);
    await finishedRun(1, ((await curlJson.json()) as { id: string }).id);
    const multipart = new FormData();
    multipart.set('syncId', '1');
    const parts = await fetch(api.url + '/api/v1/syncs/trigger', { method: 'POST', headers: { authorization: `Bearer ${api.token}` }, body: multipart });
    expect(parts.status).toBe(200);
    await finishedRun(1, ((await parts.json()) as { id: string }).id);
    const empty = await form('/api/v1/sync-sequences/crm-hierarchy/trigger', '');
    expect(empty.status).toBe(200);
    const unknownField = await form('/api/v1/syncs/1/trigger', 'fullResync=true&zz=1');
    expect(unknownField.status).toBe(422);
    expect(await unknownField.json()).toEqual({ message: 'Validation failed', details: { zz: expect.any(String) } });

    const document = (await api.call('GET', '/api/openapi.json')).body;
    for (const path of ['/api/v1/syncs/trigger', '/api/v1/syncs/{syncId}/trigger', '/api/v1/sync-sequences/{syncSequenceId}/trigger']) {
      expect(Object.keys(document.paths[path].post.requestBody.content).sort(), path).toEqual(['application/json', 'application/x-www-form-urlencoded']);
    }
    for (const path of ['/api/v1/sources', '/api/v1/sources/{sourceId}', '/api/v1/destinations', '/api/v1/destinations/{destinationId}', '/api/v1/models', '/api/v1/models/{modelId}']) {
      expect(document.paths[path]?.get, path).toBeDefined();
    }
    expect(document.components.schemas.HightouchSyncRun.properties.error).toMatchObject({ type: ['string', 'null'] });
    expect(Object.keys(document.components.schemas)).toEqual(expect.arrayContaining(['HightouchSource', 'HightouchDestination', 'HightouchModel']));
  });

  it('GET /api/v1/sources, /destinations and /models answer Hightouch shapes, never a secret', async () => {
    const destinations = await api.call('GET', '/api/v1/destinations');
    expect(destinations.text).not.toContain(PG_PASSWORD);
    const pg = destinations.body.data.find((d: { slug: string }) => d.slug === 'pg');
    expect(Object.keys(pg).sort()).toEqual(['configuration', 'createdAt', 'id', 'name', 'slug', 'syncs', 'type', 'updatedAt', 'workspaceId']);
    expect(pg.configuration).toEqual({ url: 'postgres://lockstep:***@db.example.com:5432/crm' });
    const one = await api.call('GET', `/api/v1/destinations/${pg.id}`);
    expect(one.body).toEqual(pg);
    const sources = await api.call('GET', '/api/v1/sources');
    expect(Object.keys(sources.body.data[0]).sort()).toEqual(['configuration', 'createdAt', 'id', 'name', 'slug', 'type', 'updatedAt', 'workspaceId']);
    const models = await api.call('GET', '/api/v1/models?orderBy=slug&limit=2');
    expect(models.body.hasMore).toBe(true);
    expect(models.body.data.map((m: { slug: string }) => m.slug)).toEqual(['accounts', 'contacts']);
    expect(models.body.data[0].lastRunSize).toBe(3);
    expect((await api.call('GET', '/api/v1/models?orderBy=size')).status).toBe(422);
    expect((await api.call('GET', '/api/v1/sources/99')).status).toBe(404);
  });

  it('answers 401 {message} without detail for a missing or wrong token', async () => {
    for (const auth of [false, 'lst_wrong', `${api.token}x`] as const) {
      const { status, body } = await api.call('GET', '/api/v1/syncs', undefined, { auth });
      expect(status).toBe(401);
      expect(body).toEqual({ message: 'Unauthorized' });
    }
    expect((await api.call('POST', '/api/v1/syncs/1/trigger', undefined, { auth: false })).status).toBe(401);
  });
});

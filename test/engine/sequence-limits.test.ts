/**
 * Member timeouts, sequence deadlines and resume (SPEC §3.4) with the real worker, on a SQLite file
 * and on PostgreSQL, with two workers sharing the store and a fake clock (nobody waits minutes):
 * the worker holding a member's run stops it at its timeout, and it counts as failed for its
 * terminate policy; a deadline fires while a member is stalled, skipping the members not started;
 * a resumed run carries over the members that finished and runs the rest.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { SequenceRun, SyncRun } from '../../src/core/runs.js';
import type { MemberDef, SequenceDef } from '../../src/core/workspace.js';
import { decideSequenceAdvance } from '../../src/core/sequence-rules.js';
import type { App } from '../../src/app.js';
import { hierarchyWorkspace, member, sequence, sync } from '../helpers/definitions.js';
import { FakeClock, flush } from '../helpers/fake-clock.js';
import { Gate, withWriteHook, type BeforeWrite } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, sqliteRows, startHarness, tempDir, type Harness } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

const SECOND = 1000;

function definition(members: MemberDef[], over: Partial<SequenceDef> = {}) {
  return hierarchyWorkspace(['accounts', 'workspaces', 'contacts'], {
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
      sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
      sync('contacts', { model: 'contacts', destination: 'crm', object: 'contacts', mappings: [{ from: 'email', to: 'email_address' }] }),
    ],
    sequences: [sequence('crm', members, over)],
  });
}

/** Real timers and I/O run a while after each move of the fake clock. */
async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await flush();
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Polls (on real time) until `check` gives a value, or fails after a few seconds. */
async function until<T>(what: string, check: () => Promise<T | null | undefined | false>): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Moves the fake clock forward in steps, letting the workers' loops and I/O run between them. */
async function advance(clock: FakeClock, ms: number, step = 5 * SECOND): Promise<void> {
  for (let moved = 0; moved < ms; moved += step) {
    await clock.advance(Math.min(step, ms - moved));
    await settle(3);
  }
}

/**
 * A fake clock whose sleeps of more than a millisecond wake a millisecond early, as Node's timers
 * may by the wall clock (they count whole milliseconds from the event loop's cached time).
 */
class EarlyTimersClock extends FakeClock {
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return super.sleep(ms > 1 ? ms - 1 : ms, signal);
  }
}

const STORES = [
  { name: 'SQLite file', env: async (): Promise<Record<string, string>> => ({}) },
  { name: 'PostgreSQL', env: async (): Promise<Record<string, string>> => ({ LOCKSTEP_STORE: await createTestDatabase('lockstep_limits') }) },
];

for (const { name, env: storeEnv } of STORES) {
  describe(`sequence limits and resume on ${name}`, () => {
    /** Two apps (two workers) on one store, sharing a fake clock and the write hook. */
    async function twoWorkers(members: MemberDef[], over: Partial<SequenceDef>, hook: BeforeWrite) {
      const dir = tempDir();
      createHierarchyFixture(dir);
      const clock = new FakeClock('2026-03-01T10:00:00Z');
      const env = { ...(await storeEnv()), LOCKSTEP_POLL_MS: '1000', LOCKSTEP_LEASE_MS: '30000' };
      const options = { dir, definition: definition(members, over), clock, env, connectors: (real: Parameters<typeof withWriteHook>[0]) => withWriteHook(real, hook) };
      const a = await startHarness(options);
      const b = await startHarness(options);
      return { dir, clock, a, b };
    }

    async function memberRun(app: App, run: SequenceRun, key: string, statuses: SyncRun['status'][]): Promise<SyncRun> {
      return until(`member ${key} in ${statuses.join('/')}`, async () => {
        const current = await app.store.getSequenceRun(run.id);
        const id = current?.members.find((m) => m.key === key)?.syncRunId ?? null;
        const syncRun = id === null ? null : await app.store.getSyncRun(id);
        return syncRun && statuses.includes(syncRun.status) ? syncRun : null;
      });
    }

    it('stops a member at its timeout on the worker holding it; it fails, and its policy terminates the sequence', async () => {
      const stalled = new Gate();
      const { clock, a, b } = await twoWorkers([member('accounts', { timeoutMinutes: 1 }), member('workspaces'), member('contacts')], {}, async ({ object }) => {
        if (object === 'accounts') await stalled.wait();
      });
      await using _a = a;
      await using _b = b;
      const { run } = await a.app.runs.triggerSequence('crm');
      const accounts = await memberRun(a.app, run, 'accounts', ['processing', 'querying']);
      const holder = [a, b].find((h) => h.app.worker.workerId === accounts.workerId) as Harness;
      expect(holder).toBeDefined();

      // Nothing happens before the minute is up.
      await advance(clock, 55 * SECOND);
      expect((await a.app.store.getSyncRun(accounts.id))?.status).not.toBe('failed');
      await advance(clock, 10 * SECOND);
      // The destination answers at last (a stuck peer's own request timeout); the run stops there.
      stalled.open();
      const final = await until('the sequence run to end', async () => {
        const current = await b.app.store.getSequenceRun(run.id);
        return current && ['done', 'failed', 'cancelled'].includes(current.status) ? current : null;
      });
      expect(await a.app.store.getSyncRun(accounts.id)).toMatchObject({ status: 'failed', error: 'timed out after 1 minute', workerId: holder.app.worker.workerId });
      expect(final).toMatchObject({ status: 'failed', terminatedBy: 'accounts', reason: 'member "accounts" failed: timed out after 1 minute' });
      expect(final.members.map((m) => m.status)).toEqual(['failed', 'skipped', 'skipped']);
    });

    it('a member taken over from a worker that died keeps its start: the worker that took it over enforces the timeout', async () => {
      const dir = tempDir();
      createHierarchyFixture(dir);
      const clock = new FakeClock('2026-03-01T10:00:00Z');
      const env = { ...(await storeEnv()), LOCKSTEP_POLL_MS: '1000', LOCKSTEP_LEASE_MS: '30000' };
      const held = new Gate();
      await using h = await startHarness({
        dir,
        definition: definition([member('accounts', { timeoutMinutes: 1 }), member('workspaces')]),
        clock,
        env,
        startWorker: false,
        connectors: (real) => withWriteHook(real, ({ object }) => (object === 'accounts' ? held.wait() : undefined)),
      });
      const { store, worker, runs } = h.app;
      // A worker on another machine starts the first member, then dies: nobody renews its lease.
      const { run } = await runs.triggerSequence('crm');
      await store.claimSequenceRun(run.id, clock.now());
      const ghost = { workerId: 'elsewhere/4242/dead', leaseMs: 90_000 };
      const [accounts] = (await store.advanceSequenceRun(run.id, decideSequenceAdvance, clock.now(), { lease: ghost, max: 1 })).started;
      expect(accounts).toMatchObject({ status: 'querying', workerId: ghost.workerId, attempt: 1 });

      await worker.start();
      // Its lease ends after the timeout: the worker taking it over finds the minute already up.
      await advance(clock, 95 * SECOND);
      held.open();
      const final = await until('the sequence run to end', async () => {
        const current = await store.getSequenceRun(run.id);
        return current?.status === 'failed' ? current : null;
      });
      expect(await store.getSyncRun(accounts!.id)).toMatchObject({ status: 'failed', attempt: 2, workerId: worker.workerId, error: 'timed out after 1 minute' });
      expect(final).toMatchObject({ terminatedBy: 'accounts', reason: 'member "accounts" failed: timed out after 1 minute' });
      expect(final.members.map((m) => m.status)).toEqual(['failed', 'skipped']);
    });

    it('fires the deadline while a member is stalled: members not started are skipped, the stalled one is stopped', async () => {
      const stalled = new Gate();
      const { clock, a, b } = await twoWorkers([member('accounts'), member('workspaces'), member('contacts')], { deadlineMinutes: 1 }, async ({ object }) => {
        if (object === 'accounts') await stalled.wait();
      });
      await using _a = a;
      await using _b = b;
      const { run } = await b.app.runs.triggerSequence('crm');
      const accounts = await memberRun(a.app, run, 'accounts', ['processing', 'querying']);
      await advance(clock, 50 * SECOND);
      expect((await a.app.store.getSequenceRun(run.id))?.reason).toBeNull();
      await advance(clock, 15 * SECOND);
      // No member finished, yet the run records its end and skips the members not started.
      const fired = await until('the deadline to fire', async () => {
        const current = await a.app.store.getSequenceRun(run.id);
        return current?.reason ? current : null;
      });
      expect(fired.reason).toBe('sequence "crm" passed its deadline of 1 minute; not started, so skipped: workspaces, contacts; stopped: accounts');
      expect(fired.members.map((m) => m.status)).toEqual(['running', 'skipped', 'skipped']);
      stalled.open();
      const final = await until('the sequence run to end', async () => {
        const current = await a.app.store.getSequenceRun(run.id);
        return current?.status === 'failed' ? current : null;
      });
      expect(final).toMatchObject({ terminatedBy: null, reason: fired.reason });
      expect(final.members.map((m) => m.status)).toEqual(['cancelled', 'skipped', 'skipped']);
      expect(await a.app.store.getSyncRun(accounts.id)).toMatchObject({ status: 'cancelled', error: 'stopped: the sequence run passed its deadline of 1 minute' });
    });

    it('puts a member stopped at the deadline while it waits out a Retry-After down to the deadline, though its timer fired early', async () => {
      // The API answers 429 with Retry-After: 120 s; the sequence's deadline is 1 minute.
      let asked = 0;
      const api = createServer((req, res) => {
        asked++;
        req.resume();
        req.on('end', () => {
          res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '120' });
          res.end('{"message":"rate limit exceeded"}');
        });
      });
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
      try {
        const dir = tempDir();
        createHierarchyFixture(dir);
        const clock = new EarlyTimersClock('2026-03-01T10:00:00Z');
        const workspace = definition([member('accounts'), member('contacts')], { deadlineMinutes: 1 });
        workspace.destinations.push({ slug: 'api', type: 'http', settings: { url: `http://127.0.0.1:${(api.address() as AddressInfo).port}` } });
        workspace.syncs = workspace.syncs.map((s) => (s.slug === 'accounts' ? { ...s, destination: 'api', object: '/accounts' } : s));
        await using h = await startHarness({ dir, definition: workspace, clock, env: { ...(await storeEnv()), LOCKSTEP_POLL_MS: '1000' } });
        const { run } = await h.app.runs.triggerSequence('crm');
        // The member's first write was answered 429: it waits out the Retry-After.
        await until('the first write', async () => asked > 0);
        await settle();
        await advance(clock, 65 * SECOND);
        const final = await until('the sequence run to end', async () => {
          const current = await h.app.store.getSequenceRun(run.id);
          return current?.status === 'failed' ? current : null;
        });
        expect(final.members.map((m) => m.status)).toEqual(['cancelled', 'skipped']);
        expect(final).toMatchObject({
          terminatedBy: null,
          reason: 'sequence "crm" passed its deadline of 1 minute; not started, so skipped: contacts; stopped: accounts',
        });
        const accounts = await h.app.store.getSyncRun(final.members[0]!.syncRunId!);
        expect(accounts).toMatchObject({ status: 'cancelled', error: 'stopped: the sequence run passed its deadline of 1 minute' });
      } finally {
        api.closeAllConnections();
        await new Promise((resolve) => api.close(resolve));
      }
    });

    it('resumes a failed run: finished members are carried over, the rest run; bad ids and runs that did not fail are refused', async () => {
      const dir = tempDir();
      createHierarchyFixture(dir);
      let failWorkspaces = true;
      const env = await storeEnv();
      await using h = await startHarness({
        dir,
        definition: definition([member('accounts'), member('workspaces'), member('contacts')]),
        env,
        connectors: (real) =>
          withWriteHook(real, ({ object }) => {
            if (object === 'workspaces' && failWorkspaces) throw new LockstepError(ErrorCode.Schema, 'column "plan" does not exist');
          }),
      });
      const { runs, store } = h.app;
      const { run } = await runs.triggerSequence('crm');
      const failed = await runs.waitForSequenceRun(run.id);
      expect(failed).toMatchObject({ status: 'failed', terminatedBy: 'workspaces' });
      expect(failed.members.map((m) => m.status)).toEqual(['success', 'failed', 'skipped']);

      failWorkspaces = false;
      const resumed = await runs.resumeSequenceRun(failed.id);
      expect(resumed).toMatchObject({ resumedFrom: failed.id, status: 'pending' });
      const done = await runs.waitForSequenceRun(resumed.id);
      expect(done.status).toBe('done');
      expect(done.members.map((m) => m.status)).toEqual(['success', 'success', 'success']);
      // accounts ran once, in the failed run; the new run ran the other two.
      expect(done.members[0]?.syncRunId).toBe(failed.members[0]?.syncRunId);
      const accountsRuns = await store.listSyncRuns({ syncId: (await store.getSync('accounts'))!.id, limit: 10, offset: 0, order: 'asc' });
      expect(accountsRuns).toHaveLength(1);
      expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);

      const refusal = async (id: string) => runs.resumeSequenceRun(id).then(() => null, (e: unknown) => e as LockstepError);
      expect((await refusal(done.id))?.message).toContain('finished successfully (done); there is nothing to resume');
      expect((await refusal(failed.id))?.message).toContain(`was already resumed by run ${done.id} (done)`);
      const typo = `${failed.id.slice(0, -1)}${failed.id.endsWith('0') ? '1' : '0'}`;
      expect(await refusal(typo)).toMatchObject({ code: ErrorCode.NotFound, message: `no sequence run "${typo}" (did you mean ${failed.id}?) — resume takes the id of a failed or cancelled sequence run` });
      expect((await refusal(failed.id.slice(0, 8)))?.message).toContain(`(did you mean ${failed.id}?)`);
      expect((await refusal('crm'))?.message).toBe(`no sequence run "crm": "crm" is a sequence, and resume takes a run's id — its latest failed run is ${failed.id}`);
      expect((await store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).map((r) => r.id)).toEqual([failed.id, done.id]);
    });
  });
}

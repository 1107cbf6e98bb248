import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { SequenceRun, SyncRun } from '../../src/core/runs.js';
import type { Schedule, SequenceDef, SyncDef } from '../../src/core/workspace.js';
import { hierarchyWorkspace, member, sequence, sync } from '../helpers/definitions.js';
import { createHierarchyFixture, sqlite, startHarness, tempDir } from '../helpers/harness.js';

const after = (on: 'success' | 'any', target: { sync?: string; sequence?: string }): Schedule => ({
  type: 'after',
  sync: target.sync ?? null,
  sequence: target.sequence ?? null,
  on,
});

/** The hierarchy fixture with one sync per table and the given extra syncs' schedules and sequences. */
function definition(schedules: Partial<Record<'accounts' | 'workspaces' | 'contacts', Partial<SyncDef>>>, sequences: SequenceDef[] = []) {
  return hierarchyWorkspace(['accounts', 'workspaces', 'contacts'], {
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', ...schedules.accounts }),
      sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces', ...schedules.workspaces }),
      sync('contacts', {
        model: 'contacts',
        destination: 'crm',
        object: 'contacts',
        mappings: [{ from: 'email', to: 'email_address' }],
        ...schedules.contacts,
      }),
    ],
    sequences,
  });
}

async function setup(def: ReturnType<typeof definition>) {
  const dir = tempDir();
  createHierarchyFixture(dir);
  return startHarness({ dir, definition: def });
}

/** Waits until `find` returns something, checking the store every 20 ms. */
async function eventually<T>(find: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function syncRuns(app: App, slug: string): Promise<SyncRun[]> {
  const found = await app.store.getSync(slug);
  return app.store.listSyncRuns({ syncId: found!.id, limit: 50, offset: 0, order: 'asc' });
}

async function sequenceRuns(app: App, slug: string): Promise<SequenceRun[]> {
  const found = await app.store.getSequence(slug);
  return app.store.listSequenceRuns({ sequenceId: found!.id, limit: 50, offset: 0, order: 'asc' });
}

async function settle(app: App, ms = 300): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  while (!app.worker.idle) await new Promise((r) => setTimeout(r, 20));
}

describe('after schedules (upstream completion)', () => {
  it('a sync scheduled after another starts when it succeeds, with an upstream trigger naming the run', async () => {
    await using h = await setup(definition({ workspaces: { schedule: after('success', { sync: 'accounts' }) } }));
    const { run } = await h.app.runs.triggerSync('accounts');
    const upstream = await h.app.runs.waitForSyncRun(run.id);
    expect(upstream.status).toBe('success');
    const [started] = await eventually(async () => {
      const runs = await syncRuns(h.app, 'workspaces');
      return runs.length > 0 ? runs : undefined;
    }, 'the workspaces run');
    expect(started!.trigger).toEqual({ type: 'upstream', detail: `sync "accounts" run ${run.id} ended success` });
    expect((await h.app.runs.waitForSyncRun(started!.id)).status).toBe('success');
    await settle(h.app);
    expect(await syncRuns(h.app, 'workspaces')).toHaveLength(1);
  });

  it('on: success counts warning (rejected rows) but not failed; on: any counts failed; cancelled counts for neither', async () => {
    await using h = await setup(
      definition({
        accounts: { schedule: after('success', { sync: 'contacts' }) },
        workspaces: { schedule: after('any', { sync: 'contacts' }) },
      }),
    );
    // contacts before workspaces exist: every row is rejected (foreign key) -> warning
    const warning = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('contacts')).run.id);
    expect(warning.status).toBe('warning');
    await eventually(async () => ((await syncRuns(h.app, 'accounts')).length === 1 ? true : undefined), 'accounts after a warning');
    await eventually(async () => ((await syncRuns(h.app, 'workspaces')).length === 1 ? true : undefined), 'workspaces after a warning');
    await settle(h.app);

    sqlite(join(h.dir, 'crm.db'), 'drop table contacts');
    const failed = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('contacts')).run.id);
    expect(failed.status).toBe('failed');
    const second = await eventually(async () => {
      const runs = await syncRuns(h.app, 'workspaces');
      return runs.length === 2 ? runs[1] : undefined;
    }, 'workspaces after a failure (on: any)');
    expect(second.trigger.detail).toBe(`sync "contacts" run ${failed.id} ended failed`);
    await settle(h.app);
    expect(await syncRuns(h.app, 'accounts')).toHaveLength(1);

    // A cancelled run triggers nothing.
    const { run: queued } = await h.app.runs.triggerSync('contacts');
    const cancelled = await h.app.runs.cancelSyncRun(queued.id).catch(() => null);
    if (cancelled?.status === 'cancelled') {
      await settle(h.app);
      expect(await syncRuns(h.app, 'workspaces')).toHaveLength(2);
      expect(await syncRuns(h.app, 'accounts')).toHaveLength(1);
    }
  });

  it('chains across sequences: A done -> B starts -> B done -> C starts', async () => {
    await using h = await setup(
      definition({}, [
        sequence('a', [member('accounts')]),
        sequence('b', [member('workspaces')], { schedule: after('success', { sequence: 'a' }) }),
        sequence('c', [member('contacts')], { schedule: after('success', { sequence: 'b' }) }),
      ]),
    );
    const { run } = await h.app.runs.triggerSequence('a');
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    const b = await eventually(async () => (await sequenceRuns(h.app, 'b'))[0], 'sequence b');
    expect(b.trigger).toEqual({ type: 'upstream', detail: `sequence "a" run ${run.id} ended done` });
    const bDone = await h.app.runs.waitForSequenceRun(b.id);
    expect(bDone.status).toBe('done');
    const c = await eventually(async () => (await sequenceRuns(h.app, 'c'))[0], 'sequence c');
    expect(c.trigger.detail).toBe(`sequence "b" run ${b.id} ended done`);
    const cDone = await h.app.runs.waitForSequenceRun(c.id);
    expect(cDone.status).toBe('done');
    expect(cDone.startedAt!).toBeGreaterThanOrEqual(bDone.finishedAt!);
    expect(bDone.startedAt!).toBeGreaterThanOrEqual((await h.app.store.getSequenceRun(run.id))!.finishedAt!);
  });

  it('a failed sequence starts only `on: any` targets; a member sync run counts as a run of its sync', async () => {
    await using h = await setup(
      definition({ contacts: { schedule: after('success', { sync: 'accounts' }) } }, [
        sequence('a', [member('accounts'), member('workspaces')]),
        sequence('b', [member('workspaces', { key: 'w' })], { schedule: after('success', { sequence: 'a' }) }),
        sequence('c', [member('accounts', { key: 'x' })], { schedule: after('any', { sequence: 'a' }) }),
      ]),
    );
    sqlite(join(h.dir, 'crm.db'), 'drop table workspaces');
    const { run } = await h.app.runs.triggerSequence('a');
    const final = await h.app.runs.waitForSequenceRun(run.id);
    expect(final.status).toBe('failed');
    const c = await eventually(async () => (await sequenceRuns(h.app, 'c'))[0], 'sequence c (on: any)');
    expect(c.trigger.detail).toBe(`sequence "a" run ${run.id} ended failed`);
    await h.app.runs.waitForSequenceRun(c.id);
    // accounts ran as a member of a (and of c): contacts follows each successful accounts run
    await eventually(async () => ((await syncRuns(h.app, 'contacts')).length >= 1 ? true : undefined), 'contacts after the accounts member');
    await settle(h.app);
    expect(await sequenceRuns(h.app, 'b')).toHaveLength(0);
    const contacts = await syncRuns(h.app, 'contacts');
    expect(contacts[0]!.trigger.type).toBe('upstream');
    expect(contacts[0]!.trigger.detail).toMatch(/^sync "accounts" run \d+ ended success$/);
  });

  it('disabled targets do not start', async () => {
    await using h = await setup(
      definition({ workspaces: { schedule: after('success', { sync: 'accounts' }), enabled: false } }, [
        sequence('b', [member('contacts')], { schedule: after('any', { sync: 'accounts' }), enabled: false }),
      ]),
    );
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    await settle(h.app);
    expect(await syncRuns(h.app, 'workspaces')).toHaveLength(0);
    expect(await sequenceRuns(h.app, 'b')).toHaveLength(0);
  });
});

describe('after schedules across processes', () => {
  it('a target the store could not queue for a moment is queued when it answers again, once', async () => {
    await using h = await setup(definition({ workspaces: { schedule: after('success', { sync: 'accounts' }) } }));
    const { store } = h.app;
    const workspaces = await store.getSync('workspaces');
    const enqueue = store.enqueueFiredRun.bind(store);
    let failures = 2;
    store.enqueueFiredRun = async (key, run, now) => {
      if (run.kind === 'sync' && run.run.syncId === workspaces!.id && failures-- > 0) {
        throw new LockstepError(ErrorCode.Store, 'store PostgreSQL at db:5432/lockstep cannot be reached: connect ECONNREFUSED', { retryable: true });
      }
      return enqueue(key, run, now);
    };
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    const [started] = await eventually(async () => {
      const runs = await syncRuns(h.app, 'workspaces');
      return runs.length > 0 ? runs : undefined;
    }, 'the workspaces run');
    expect(started!.trigger).toMatchObject({ type: 'upstream', detail: 'sync "accounts" run 1 ended success' });
    expect(failures).toBe(-1);
    await settle(h.app);
    expect(await syncRuns(h.app, 'workspaces')).toHaveLength(1);
  });

  it('a target the store kept refusing is queued once it takes it: the run\'s end is kept, and handed over again', async () => {
    // A short lease: the run's end, held while it is acted on, is free again a second later.
    const dir = tempDir();
    createHierarchyFixture(dir);
    await using h = await startHarness({
      dir,
      definition: definition({ workspaces: { schedule: after('success', { sync: 'accounts' }) } }),
      env: { LOCKSTEP_LEASE_SECONDS: '1' },
    });
    const { store } = h.app;
    const workspaces = await store.getSync('workspaces');
    const enqueue = store.enqueueFiredRun.bind(store);
    let refusals = 1;
    store.enqueueFiredRun = async (key, run, now) => {
      // Not worth trying again at once (as after a store that stayed unreachable through every attempt).
      if (run.kind === 'sync' && run.run.syncId === workspaces!.id && refusals-- > 0) {
        throw new LockstepError(ErrorCode.Store, 'store PostgreSQL at db:5432/lockstep: the server only allows reading (SQLSTATE 25006)');
      }
      return enqueue(key, run, now);
    };
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    const [started] = await eventually(async () => {
      const runs = await syncRuns(h.app, 'workspaces');
      return runs.length > 0 ? runs : undefined;
    }, 'the workspaces run');
    expect(started!.trigger).toMatchObject({ type: 'upstream', detail: 'sync "accounts" run 1 ended success' });
    expect(refusals).toBe(-1);
    await settle(h.app);
    expect(await syncRuns(h.app, 'workspaces')).toHaveLength(1);
  });

  it('a run that ended in a process that died before acting on it starts its targets once, from another process', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const def = definition({ workspaces: { schedule: after('success', { sync: 'accounts' }) } });
    // The first process runs `accounts` to its end and dies before its relay takes the end from
    // the outbox: simulated by ending the run through the store directly, as its worker would.
    {
      await using first = await startHarness({ dir, definition: def, startWorker: false });
      const store = first.app.store;
      const { run } = await first.app.runs.triggerSync('accounts');
      const lease = { workerId: 'gone/1/000000', leaseMs: 30_000 };
      const claimed = await store.claimSyncRun(run.id, Date.now(), lease);
      await store.updateSyncRun(run.id, { status: 'success' }, Date.now(), claimed!.attempt);
      expect(await syncRuns(first.app, 'workspaces')).toEqual([]);
    }
    // Two processes start on the same store: the end is acted on once.
    await using second = await startHarness({ dir, definition: def });
    await using third = await startHarness({ dir, definition: def });
    const [started] = await eventually(async () => {
      const runs = await syncRuns(second.app, 'workspaces');
      return runs.length > 0 ? runs : undefined;
    }, 'the workspaces run');
    expect(started!.trigger).toMatchObject({ type: 'upstream', detail: expect.stringMatching(/^sync "accounts" run 1 ended success$/) });
    await settle(second.app);
    await settle(third.app);
    expect(await syncRuns(third.app, 'workspaces')).toHaveLength(1);
  });
});

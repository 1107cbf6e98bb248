import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LockstepError, ErrorCode } from '../../src/core/errors.js';
import { createJsonLogger, silentLogger } from '../../src/core/logger.js';
import { isTerminalSyncRunStatus } from '../../src/core/runs.js';
import type { SyncDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import type { Connectors } from '../../src/core/ports.js';
import type { SyncRun } from '../../src/core/runs.js';
import { Gate, withReadFailure, withWriteHook, type BeforeWrite } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, sqlite, sqliteRows, startHarness, tempDir, type Harness } from '../helpers/harness.js';

function accountsWorkspace(over: Partial<SyncDef> = {}, query = 'select id, name from accounts') {
  return workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('crm', { path: 'crm.db' })],
    models: [
      model('accounts', 'warehouse', query),
      model('contacts', 'warehouse', 'select id, workspace_id, email from contacts'),
    ],
    syncs: [
      sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts', ...over }),
      sync('contacts-to-crm', {
        model: 'contacts',
        destination: 'crm',
        object: 'contacts',
        mappings: [{ from: 'email', to: 'email_address' }],
      }),
    ],
  });
}

async function setup(over: Partial<SyncDef> = {}, hook?: BeforeWrite, query?: string) {
  const dir = tempDir();
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    definition: accountsWorkspace(over, query),
    connectors: hook ? (real) => withWriteHook(real, hook) : undefined,
  });
  const run = async (slug = 'accounts-to-crm', options = {}) => {
    const { run } = await h.app.runs.triggerSync(slug, options);
    return h.app.runs.waitForSyncRun(run.id);
  };
  const crm = (sql: string) => sqliteRows(join(dir, 'crm.db'), sql);
  const warehouse = (sql: string) => sqlite(join(dir, 'warehouse.db'), sql);
  return { dir, h, run, crm, warehouse };
}

/**
 * The hierarchy with its contacts sent 5 a batch, each refused by the foreign key until its
 * workspace exists; `connectors` wraps the real ones, and may add workspace 1 to the CRM.
 */
async function contactsSetup(connectors: (real: Connectors, addWorkspace: () => void) => Connectors, env?: Record<string, string>) {
  const dir = tempDir();
  createHierarchyFixture(dir);
  const definition = accountsWorkspace();
  definition.syncs = definition.syncs.map((s) => (s.slug === 'contacts-to-crm' ? { ...s, batchSize: 5 } : s));
  const addWorkspace = () => sqlite(join(dir, 'crm.db'), "insert into accounts values (1, 'a'); insert into workspaces values (1, 1, 'w');");
  const h = await startHarness({ dir, definition, connectors: (real) => connectors(real, addWorkspace), env });
  const run = async () => {
    const { run } = await h.app.runs.triggerSync('contacts-to-crm');
    return h.app.runs.waitForSyncRun(run.id);
  };
  return { h, run };
}

/** Workspace 1's two contacts went through in the end; the ten others are rejected, and listed once each, as counted. */
async function expectEachRejectedOnce(h: Harness, run: SyncRun, attempt: number): Promise<void> {
  expect(run).toMatchObject({ status: 'warning', attempt, successfulRows: { addedCount: 2 }, failedRows: { addedCount: 10 } });
  const rejected = await h.app.store.listRejectedRows(run.id, 100, 0);
  expect(rejected.map((r) => r.key)).toEqual(['[2]', '[3]', '[4]', '[5]', '[6]', '[8]', '[9]', '[10]', '[11]', '[12]']);
}

describe('sync runs', () => {
  it('sends only what changed: added, then nothing, then changed', async () => {
    const { h, run, crm, warehouse } = await setup();
    await using _ = h;
    const first = await run();
    expect(first.status).toBe('success');
    expect(first.querySize).toBe(3);
    expect(first.plannedRows).toEqual({ addedCount: 3, changedCount: 0, removedCount: 0 });
    expect(first.successfulRows).toEqual({ addedCount: 3, changedCount: 0, removedCount: 0 });
    expect(first.completionRatio).toBe(1);
    expect(crm('select id, name from accounts order by id')).toEqual([
      { id: 1, name: 'Account 1' },
      { id: 2, name: 'Account 2' },
      { id: 3, name: 'Account 3' },
    ]);

    const second = await run();
    expect(second.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });

    warehouse("update accounts set name = 'Renamed' where id = 2; insert into accounts values (4, 'Account 4');");
    const third = await run();
    expect(third.plannedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 0 });
    expect(crm('select name from accounts where id = 2')).toEqual([{ name: 'Renamed' }]);
  });

  it('mirror deletes rows that left the model; ignore keeps them; delete behaviour deletes them', async () => {
    for (const [over, expectedIds] of [
      [{ mode: 'mirror' }, [1, 2]],
      [{ mode: 'upsert', deleteBehavior: 'ignore' }, [1, 2, 3]],
      [{ mode: 'upsert', deleteBehavior: 'delete' }, [1, 2]],
    ] as const) {
      const { h, run, crm, warehouse } = await setup(over);
      await using _ = h;
      await run();
      warehouse('delete from accounts where id = 3');
      const second = await run();
      expect(second.plannedRows.removedCount, JSON.stringify(over)).toBe(over.mode === 'mirror' || 'deleteBehavior' in over && over.deleteBehavior === 'delete' ? 1 : 0);
      expect(crm('select id from accounts order by id').map((r) => r.id)).toEqual(expectedIds);
    }
  });

  it('insert mode never updates; update mode rejects rows missing from the destination', async () => {
    const ins = await setup({ mode: 'insert' });
    {
      await using _ = ins.h;
      await ins.run();
      ins.warehouse("update accounts set name = 'Changed' where id = 1");
      const second = await ins.run();
      expect(second.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
      expect(ins.crm('select name from accounts where id = 1')).toEqual([{ name: 'Account 1' }]);
    }
    const upd = await setup({ mode: 'update' });
    {
      await using _ = upd.h;
      sqlite(join(upd.dir, 'crm.db'), "insert into accounts values (1, 'Old name')");
      const first = await upd.run();
      expect(first.status).toBe('warning');
      expect(first.successfulRows.addedCount).toBe(1);
      expect(first.failedRows.addedCount).toBe(2);
      expect(upd.crm('select id, name from accounts')).toEqual([{ id: 1, name: 'Account 1' }]);
      const rejected = await upd.h.app.store.listRejectedRows(first.id, 10, 0);
      expect(rejected.map((r) => r.key).sort()).toEqual(['[2]', '[3]']);
    }
  });

  it('rejects only the offending rows, stores them, and retries them on later runs', async () => {
    const { h, run, crm } = await setup();
    await using _ = h;
    // Contacts before their workspaces exist: every contact violates the foreign key.
    const early = await run('contacts-to-crm');
    expect(early.status).toBe('warning');
    expect(early.failedRows.addedCount).toBe(12);
    const rejected = await h.app.store.listRejectedRows(early.id, 100, 0);
    expect(rejected).toHaveLength(12);
    expect(rejected[0]?.reason).toMatch(/FOREIGN KEY/i);

    sqlite(join(h.dir, 'crm.db'), "insert into accounts values (1, 'a'); insert into workspaces values (1, 1, 'w');");
    const later = await run('contacts-to-crm');
    // The two contacts of workspace 1 now go through; the others are planned again and rejected again.
    expect(later.plannedRows.addedCount).toBe(12);
    expect(later.successfulRows.addedCount).toBe(2);
    expect(later.failedRows.addedCount).toBe(10);
    expect(crm('select id, email_address from contacts order by id')).toEqual([
      { id: 1, email_address: 'person1@example.com' },
      { id: 7, email_address: 'person7@example.com' },
    ]);
  });

  it('lists each row a run rejected once, as its last reading rejected it, when the run starts its reading over', async () => {
    // The read fails for a moment once the model is read, after contacts were rejected: the run
    // reads the model again, and workspace 1 exists by then.
    let readAgain = false;
    const written = new Gate();
    const { h, run } = await contactsSetup((real, addWorkspace) => {
      const hooked = withWriteHook(real, ({ object }) => {
        if (object !== 'contacts') return;
        written.open();
        if (readAgain) addWorkspace();
        readAgain = false;
      });
      return withReadFailure(hooked, (query) => query.includes('contacts'), async () => {
        await written.wait();
        readAgain = true;
      });
    });
    await using _ = h;
    await expectEachRejectedOnce(h, await run(), 1);
  });

  it('lists each row a run rejected once when the attempt that takes the run over rejects it again or delivers it', async () => {
    // The worker stops, as one killed does, as its second batch of contacts goes out (the first
    // was rejected); workspace 1 exists when the next attempt takes the run over.
    let writes = 0;
    const { h, run } = await contactsSetup(
      (real, addWorkspace) =>
        withWriteHook(real, ({ object }) => {
          if (object !== 'contacts' || ++writes !== 2) return;
          addWorkspace();
          throw new LockstepError(ErrorCode.LeaseLost, 'the worker stopped');
        }),
      { LOCKSTEP_LEASE_SECONDS: '1' },
    );
    await using _ = h;
    await expectEachRejectedOnce(h, await run(), 2);
  });

  it('rejects null and duplicate primary keys without sending them', async () => {
    const { h, run, crm } = await setup({}, undefined, "select id, name from accounts union all select null, 'no key' union all select 1, 'dup'");
    await using _ = h;
    const result = await run();
    expect(result.status).toBe('warning');
    expect(result.failedRows.addedCount).toBe(2);
    expect(result.successfulRows.addedCount).toBe(3);
    const reasons = (await h.app.store.listRejectedRows(result.id, 10, 0)).map((r) => r.reason);
    expect(reasons.some((r) => /primary key column "id" is null/.test(r))).toBe(true);
    expect(reasons.some((r) => /duplicate primary key \[1\]/.test(r))).toBe(true);
    expect(crm('select name from accounts where id = 1')).toEqual([{ name: 'Account 1' }]);
  });

  it('fails with the database message when the query or the destination object is wrong', async () => {
    const bad = await setup({}, undefined, 'select id, name from acounts');
    {
      await using _ = bad.h;
      const result = await bad.run();
      expect(result.status).toBe('failed');
      expect(result.error).toMatch(/acounts/);
    }
    const missing = await setup({ object: 'no_such_table' });
    {
      await using _ = missing.h;
      const result = await missing.run();
      expect(result.status).toBe('failed');
      expect(result.error).toMatch(/no_such_table/);
    }
  });

  it('fails a model whose primary key its query spells in another case, naming the column as the query spells it', async () => {
    const { h, run } = await setup({}, undefined, 'select id as ID, name from accounts');
    await using _ = h;
    const result = await run();
    expect(result.status).toBe('failed');
    expect(result.error).toBe('model "accounts" declares primary key column "id", but its query returns only "ID", "name" (did you mean "ID"?) — fix primaryKey or the query');
  });

  it('retries transient errors with backoff, then delivers', async () => {
    let failures = 2;
    const { h, run, crm } = await setup({}, () => {
      if (failures-- > 0) throw new LockstepError(ErrorCode.Transient, 'database is busy', { retryAfterSeconds: 0 });
    });
    await using _ = h;
    const result = await run();
    expect(result.status).toBe('success');
    expect(crm('select count(*) as n from accounts')).toEqual([{ n: 3 }]);
  });

  it('retries a destination whose preparation fails for a moment, and its log says what it retries', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const lines: string[] = [];
    let failures = 1;
    const h = await startHarness({
      dir,
      definition: accountsWorkspace(),
      logger: createJsonLogger({ level: 'warn', write: (line) => lines.push(line) }),
      connectors: (real) => ({
        openSource: (c) => real.openSource(c),
        async openDestination(c, run) {
          const destination = await real.openDestination(c, run);
          return {
            capabilities: destination.capabilities,
            close: () => destination.close(),
            async prepare(target) {
              // A describe refused for a moment (an API's limit reached, a server restarting).
              if (failures-- > 0) throw new LockstepError(ErrorCode.Transient, 'describe answered 503', { retryAfterSeconds: 0 });
              return destination.prepare(target);
            },
          };
        },
      }),
    });
    await using _ = h;
    const { run: queued } = await h.app.runs.triggerSync('accounts-to-crm');
    expect((await h.app.runs.waitForSyncRun(queued.id)).status).toBe('success');
    const retried = lines.map((line) => JSON.parse(line) as { msg: string; error?: string }).filter((line) => line.error === 'describe answered 503');
    expect(retried.map((line) => line.msg)).toEqual(['transient error reading the model or preparing the destination, reading again']);
  });

  it('keeps batches delivered before a fatal error, and does not send them again', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir, { accounts: 10, workspaces: 1, contacts: 1 });
    let failAt: number | null = 2;
    const h = await startHarness({
      dir,
      definition: accountsWorkspace({ batchSize: 3 }),
      connectors: (real) =>
        withWriteHook(real, ({ batchIndex }) => {
          if (batchIndex === failAt) throw new LockstepError(ErrorCode.Connection, 'connection refused');
        }),
    });
    await using _ = h;
    const { run: queued } = await h.app.runs.triggerSync('accounts-to-crm');
    const failed = await h.app.runs.waitForSyncRun(queued.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/connection refused/);
    expect(failed.successfulRows.addedCount).toBe(6);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from accounts')).toEqual([{ n: 6 }]);

    failAt = null;
    const { run: again } = await h.app.runs.triggerSync('accounts-to-crm');
    const next = await h.app.runs.waitForSyncRun(again.id);
    expect(next.plannedRows.addedCount).toBe(4);
    expect(next.status).toBe('success');
  });

  it('cancels at a batch boundary, keeping what was delivered', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir, { accounts: 9, workspaces: 1, contacts: 1 });
    const gate = new Gate();
    const reached = new Gate();
    const h = await startHarness({
      dir,
      definition: accountsWorkspace({ batchSize: 3 }),
      connectors: (real) =>
        withWriteHook(real, async ({ batchIndex }) => {
          if (batchIndex === 1) {
            reached.open();
            await gate.wait();
          }
        }),
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSync('accounts-to-crm');
    await reached.wait();
    await h.app.runs.cancelSyncRun(run.id);
    gate.open();
    const final = await h.app.runs.waitForSyncRun(run.id);
    expect(final.status).toBe('cancelled');
    expect(final.successfulRows.addedCount).toBe(6);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from accounts')).toEqual([{ n: 6 }]);
  });

  it('stops a run cancelled from another process while it reads the model, with nothing to send', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir, { accounts: 9, workspaces: 1, contacts: 1 });
    let hold: { reached: Gate; gate: Gate } | null = null;
    const h = await startHarness({
      dir,
      definition: accountsWorkspace(),
      // Three rows a read batch; the read pauses after its first batch while a hold is set.
      env: { LOCKSTEP_READ_BATCH: '3' },
      connectors: (real) => ({
        openDestination: (connection, run) => real.openDestination(connection, run),
        async openSource(connection) {
          const inner = await real.openSource(connection);
          return {
            cursorSql: inner.cursorSql,
            close: () => inner.close(),
            read: (query, options) =>
              (async function* () {
                let batches = 0;
                for await (const batch of inner.read(query, options)) {
                  if (batches++ === 1 && hold) {
                    hold.reached.open();
                    await hold.gate.wait();
                  }
                  yield batch;
                }
              })(),
          };
        },
      }),
    });
    await using _ = h;
    const { run: first } = await h.app.runs.triggerSync('accounts-to-crm');
    const firstEnded = await h.app.runs.waitForSyncRun(first.id);
    expect(firstEnded.status, firstEnded.error ?? '').toBe('success');

    // The model is unchanged: the next run only reads and compares, and sends nothing.
    hold = { reached: new Gate(), gate: new Gate() };
    const { run } = await h.app.runs.triggerSync('accounts-to-crm');
    await hold.reached.wait();
    // As `lockstep sync cancel` (or the API of another server) does: the request is only in the store.
    await h.app.store.requestSyncRunCancel(run.id);
    await new Promise((resolve) => setTimeout(resolve, 150));
    hold.gate.open();
    const final = await h.app.runs.waitForSyncRun(run.id);
    expect(final.status).toBe('cancelled');
    expect(final.querySize).toBeLessThan(9);
  });

  it('ends a run under way when apply points its sync at another object, so that its later batches are not recorded as delivered there', async () => {
    const writing = new Gate();
    const held = new Gate();
    let holding = true;
    const { h, run, crm } = await setup({ batchSize: 1 }, async ({ batchIndex }) => {
      if (batchIndex === 1 && holding) {
        holding = false;
        writing.open();
        await held.wait();
      }
    });
    await using _ = h;
    sqlite(join(h.dir, 'crm.db'), 'create table accounts_v2 (id integer primary key, name text not null)');
    const { run: going } = await h.app.runs.triggerSync('accounts-to-crm');
    await writing.wait();
    const state = await h.app.store.loadWorkspace();
    await h.app.store.applyWorkspace({ ...state, syncs: state.syncs.map((s) => (s.slug === 'accounts-to-crm' ? { ...s, object: 'accounts_v2' } : s)) }, h.app.clock.now());
    held.open();
    const ended = await h.app.runs.waitForSyncRun(going.id);
    expect(ended.status).toBe('cancelled');
    expect(ended.error).toMatch(/^the sync's destination, object or primary key changed while this run went on/);
    // The next run sends every row to the new object: none was recorded as delivered after the change.
    const next = await run();
    expect(next.status, next.error ?? '').toBe('success');
    expect(next.plannedRows.addedCount).toBe(3);
    expect(crm('select id, name from accounts_v2 order by id')).toEqual([
      { id: 1, name: 'Account 1' },
      { id: 2, name: 'Account 2' },
      { id: 3, name: 'Account 3' },
    ]);
  });

  it('is processing, not querying, while its first batch waits for the destination after the model was read', async () => {
    const writing = new Gate();
    const held = new Gate();
    const { h } = await setup({}, async () => {
      writing.open();
      await held.wait();
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSync('accounts-to-crm');
    await writing.wait();
    try {
      // The model's 3 rows were read and planned; the one batch is with the destination.
      await expect.poll(async () => (await h.app.store.getSyncRun(run.id))?.status, { timeout: 2000 }).toBe('processing');
      expect(await h.app.store.getSyncRun(run.id)).toMatchObject({ querySize: 3, plannedRows: { addedCount: 3 }, successfulRows: { addedCount: 0 } });
    } finally {
      held.open();
    }
    expect(await h.app.runs.waitForSyncRun(run.id)).toMatchObject({ status: 'success', successfulRows: { addedCount: 3 } });
  });

  it('counts each row once when a run starts its reading over after rows were delivered, a full resync too', async () => {
    // Accounts go one a batch, so rows are delivered before the read fails for a moment and the
    // run reads the model again.
    for (const fullResync of [false, true]) {
      const dir = tempDir();
      createHierarchyFixture(dir);
      let failing = false;
      await using h = await startHarness({
        dir,
        definition: accountsWorkspace({ batchSize: 1 }),
        connectors: (real) => withReadFailure(real, (query) => failing && query.includes('from accounts')),
      });
      await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('accounts-to-crm')).run.id);
      sqlite(join(dir, 'warehouse.db'), "update accounts set name = 'Renamed' where id = 2; insert into accounts values (4, 'Account 4'), (5, 'Account 5');");
      failing = true;
      const { run } = await h.app.runs.triggerSync('accounts-to-crm', { fullResync });
      const final = await h.app.runs.waitForSyncRun(run.id);
      expect([final.status, final.querySize, final.completionRatio], `fullResync ${fullResync}`).toEqual(['success', 5, 1]);
      // A full resync sends every row again, and counts from nothing: the reading that starts over
      // finds the new accounts in the snapshot, delivered by the first one.
      expect(final.plannedRows, `fullResync ${fullResync}`).toEqual(fullResync ? { addedCount: 0, changedCount: 5, removedCount: 0 } : { addedCount: 2, changedCount: 1, removedCount: 0 });
      expect(final.successfulRows, `fullResync ${fullResync}`).toEqual(final.plannedRows);
    }
  });

  it('fullResync sends every row; resetCDC rebuilds the snapshot without sending', async () => {
    const { h, run, crm } = await setup();
    await using _ = h;
    await run();
    const full = await run('accounts-to-crm', { fullResync: true });
    expect(full.plannedRows).toEqual({ addedCount: 0, changedCount: 3, removedCount: 0 });
    expect(full.successfulRows.changedCount).toBe(3);

    sqlite(join(h.dir, 'crm.db'), 'delete from accounts');
    const sync = await h.app.store.getSync('accounts-to-crm');
    await h.app.store.snapshots.clear(sync!.id);
    const reset = await run('accounts-to-crm', { resetCDC: true });
    expect(reset.status).toBe('success');
    expect(reset.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
    expect(crm('select count(*) as n from accounts')).toEqual([{ n: 0 }]);
    expect(await h.app.store.snapshots.count(sync!.id)).toBe(3);
    const after = await run();
    expect(after.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
  });

  it('never runs a sync twice at once: triggers while it runs share one follow-up run', async () => {
    const gate = new Gate();
    const reached = new Gate();
    let first = true;
    const { h } = await setup({}, async () => {
      if (first) {
        first = false;
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const a = await h.app.runs.triggerSync('accounts-to-crm');
    await reached.wait();
    const b = await h.app.runs.triggerSync('accounts-to-crm');
    const c = await h.app.runs.triggerSync('accounts-to-crm');
    expect(b.created).toBe(true);
    expect(c.created).toBe(false);
    expect(c.run.id).toBe(b.run.id);
    expect((await h.app.store.getSyncRun(b.run.id))?.status).toBe('queued');
    gate.open();
    const done = await h.app.runs.waitForSyncRun(b.run.id);
    const firstRun = await h.app.store.getSyncRun(a.run.id);
    expect(done.status).toBe('success');
    expect(done.startedAt!).toBeGreaterThanOrEqual(firstRun!.finishedAt!);
  });
});

describe("a worker's heartbeat", () => {
  it('takes a run whose end it renewed across for ended, not for lost to another worker', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (message: string) => void warnings.push(message) };
    // 1-second leases: a heartbeat every third of a second.
    const h = await startHarness({ dir, definition: accountsWorkspace(), logger, env: { LOCKSTEP_LEASE_SECONDS: '1' } });
    await using _ = h;
    const { store } = h.app;
    const update = store.updateSyncRun.bind(store);
    // The run's end is recorded in the store, and the run sees it a little later (its answer is
    // slow to come back): a renewal in between finds the lease ended with the run.
    store.updateSyncRun = async (...args) => {
      const run = await update(...args);
      if (isTerminalSyncRunStatus(run.status)) await new Promise((r) => setTimeout(r, 800));
      return run;
    };
    const { run } = await h.app.runs.triggerSync('accounts-to-crm');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    while (!h.app.worker.idle) await new Promise((r) => setTimeout(r, 20));
    expect(warnings).toEqual([]);
  });
});

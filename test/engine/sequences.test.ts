import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MemberDef, SequenceDef } from '../../src/core/workspace.js';
import { hierarchyWorkspace, member, sequence, sync } from '../helpers/definitions.js';
import { Gate, withWriteHook, type BeforeWrite } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

const SYNCS = ['accounts', 'workspaces', 'contacts'] as const;

function hierarchy(members: MemberDef[], over: Partial<SequenceDef> = {}, extraSequences: SequenceDef[] = []) {
  return hierarchyWorkspace(['accounts', 'workspaces', 'contacts'], {
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', batchSize: 2 }),
      sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces', batchSize: 2 }),
      sync('contacts', { model: 'contacts', destination: 'crm', object: 'contacts', mappings: [{ from: 'email', to: 'email_address' }], batchSize: 2 }),
    ],
    sequences: [sequence('crm', members, over), ...extraSequences],
  });
}

async function setup(members: MemberDef[], over: Partial<SequenceDef> = {}, hook?: BeforeWrite, extra: SequenceDef[] = []) {
  const dir = tempDir();
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    definition: hierarchy(members, over, extra),
    connectors: hook ? (real) => withWriteHook(real, hook) : undefined,
  });
  const runSequence = async (slug = 'crm') => {
    const { run } = await h.app.runs.triggerSequence(slug);
    return h.app.runs.waitForSequenceRun(run.id);
  };
  return { dir, h, runSequence, crm: (sql: string) => sqliteRows(join(dir, 'crm.db'), sql) };
}

describe('sequences', () => {
  it('runs members in list order, each starting after the previous one ended', async () => {
    const { h, runSequence, crm } = await setup(SYNCS.map((s) => member(s)));
    await using _ = h;
    const run = await runSequence();
    expect(run.status).toBe('done');
    expect(run.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'success'],
      ['workspaces', 'success'],
      ['contacts', 'success'],
    ]);
    for (let i = 1; i < run.members.length; i++) {
      expect(run.members[i]!.startedAt!).toBeGreaterThanOrEqual(run.members[i - 1]!.finishedAt!);
    }
    expect(crm('select count(*) as n from contacts')).toEqual([{ n: 12 }]);
    expect(run.terminatedBy).toBeNull();
  });

  it('runs a graph: members without unmet dependencies run in parallel, up to the concurrency', async () => {
    const gate = new Gate();
    let parallel = 0;
    let maxParallel = 0;
    const { h, runSequence } = await setup(
      [member('accounts', { after: [] }), member('workspaces', { after: ['accounts'] }), member('contacts', { after: ['accounts'] })],
      { concurrency: 4 },
      async ({ object }) => {
        if (object === 'accounts') return;
        parallel++;
        maxParallel = Math.max(maxParallel, parallel);
        if (parallel === 2) gate.open();
        await Promise.race([gate.wait(), new Promise((r) => setTimeout(r, 2000))]);
        parallel--;
      },
    );
    await using _ = h;
    const run = await runSequence();
    // contacts may reject rows when it overtakes workspaces; the default policy only stops on fatal errors
    expect(run.status).toBe('done');
    expect(maxParallel).toBe(2);
    const byKey = new Map(run.members.map((m) => [m.key, m]));
    expect(byKey.get('workspaces')!.startedAt!).toBeGreaterThanOrEqual(byKey.get('accounts')!.finishedAt!);
    expect(byKey.get('contacts')!.startedAt!).toBeLessThan(byKey.get('workspaces')!.finishedAt!);
  });

  it('limits a graph to its concurrency', async () => {
    let parallel = 0;
    let maxParallel = 0;
    const { h, runSequence } = await setup(SYNCS.map((s) => member(s, { after: [] })), { concurrency: 1 }, async () => {
      parallel++;
      maxParallel = Math.max(maxParallel, parallel);
      await new Promise((r) => setTimeout(r, 20));
      parallel--;
    });
    await using _ = h;
    const run = await runSequence();
    expect(maxParallel).toBe(1);
    expect(run.members.every((m) => m.status === 'success' || m.status === 'warning')).toBe(true);
  });

  it('on_fatal: a failing member terminates the run, the rest are skipped, and the reason is recorded', async () => {
    const { h, runSequence } = await setup(SYNCS.map((s) => member(s)));
    await using _ = h;
    sqlite(join(h.dir, 'crm.db'), 'drop table workspaces');
    const run = await runSequence();
    expect(run.status).toBe('failed');
    expect(run.members.map((m) => m.status)).toEqual(['success', 'failed', 'skipped']);
    expect(run.terminatedBy).toBe('workspaces');
    expect(run.reason).toMatch(/member "workspaces" failed: .*workspaces/);
  });

  it('never: a failing member does not stop the run, which ends done', async () => {
    const { h, runSequence } = await setup([member('accounts'), member('workspaces', { terminate: 'never' }), member('contacts', { terminate: 'never' })]);
    await using _ = h;
    sqlite(join(h.dir, 'crm.db'), 'drop table workspaces');
    const run = await runSequence();
    expect(run.status).toBe('done');
    // contacts fail too: their foreign key points at the dropped table
    expect(run.members.map((m) => m.status)).toEqual(['success', 'failed', 'failed']);
  });

  it('on_fatal_or_rejected: rejected rows over the threshold terminate; under it the run goes on', async () => {
    // contacts first: every row violates the foreign key to workspaces.
    const order = (terminate: MemberDef['terminate'], threshold: MemberDef['rejectedThreshold']) => [
      member('contacts', { terminate, rejectedThreshold: threshold }),
      member('accounts'),
      member('workspaces'),
    ];
    for (const [terminate, threshold, expected] of [
      ['on_fatal_or_rejected', { count: 0 }, 'failed'],
      ['on_fatal_or_rejected', { count: 12 }, 'done'],
      ['on_fatal_or_rejected', { percent: 50 }, 'failed'],
      ['on_fatal_or_rejected', { percent: 100 }, 'done'],
      ['on_fatal', { count: 0 }, 'done'],
    ] as const) {
      const { h, runSequence } = await setup(order(terminate, threshold));
      await using _ = h;
      const run = await runSequence();
      expect(run.status, `${terminate} ${JSON.stringify(threshold)}`).toBe(expected);
      expect(run.members[0]!.status).toBe('warning');
      if (expected === 'failed') {
        expect(run.members.slice(1).map((m) => m.status)).toEqual(['skipped', 'skipped']);
        expect(run.terminatedBy).toBe('contacts');
        expect(run.reason).toMatch(/rejected 12 of 12 rows/);
      }
    }
  });

  it('queues one follow-up run on repeated triggers', async () => {
    const gate = new Gate();
    const reached = new Gate();
    let held = false;
    const { h } = await setup(SYNCS.map((s) => member(s)), {}, async () => {
      if (!held) {
        held = true;
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const first = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    const second = await h.app.runs.triggerSequence('crm');
    const third = await h.app.runs.triggerSequence('crm');
    expect(second.created).toBe(true);
    expect(third.run.id).toBe(second.run.id);
    expect((await h.app.store.getSequenceRun(second.run.id))?.status).toBe('pending');
    gate.open();
    const a = await h.app.runs.waitForSequenceRun(first.run.id);
    const b = await h.app.runs.waitForSequenceRun(second.run.id);
    expect([a.status, b.status]).toEqual(['done', 'done']);
    expect(b.startedAt!).toBeGreaterThanOrEqual(a.finishedAt!);
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(2);
  });

  it('a member waits for its sync while that sync runs on its own, then runs', async () => {
    const gate = new Gate();
    const reached = new Gate();
    let holdAccounts = true;
    const { h } = await setup(SYNCS.map((s) => member(s)), {}, async ({ object }) => {
      if (object === 'accounts' && holdAccounts) {
        holdAccounts = false;
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const standalone = await h.app.runs.triggerSync('accounts');
    await reached.wait();
    const { run } = await h.app.runs.triggerSequence('crm');
    await new Promise((r) => setTimeout(r, 100));
    const waiting = await h.app.store.getSequenceRun(run.id);
    expect(waiting?.status).toBe('running');
    expect(waiting?.members[0]?.status).toBe('pending');
    gate.open();
    const final = await h.app.runs.waitForSequenceRun(run.id);
    const alone = await h.app.store.getSyncRun(standalone.run.id);
    expect(final.status).toBe('done');
    expect(final.members[0]!.startedAt!).toBeGreaterThanOrEqual(alone!.finishedAt!);
  });

  it('a run its schedule queued behind a running one does not start once the sequence is disabled', async () => {
    const gate = new Gate();
    const reached = new Gate();
    let hold = true;
    const { h } = await setup(SYNCS.map((s) => member(s)), {}, async ({ object }) => {
      if (object === 'accounts' && hold) {
        hold = false;
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    const fired = await h.app.runs.queueFiredRun('sequence:1@1', { kind: 'sequence', slug: 'crm' }, { type: 'schedule', detail: 'sequence:1@1' });
    await h.app.store.applyWorkspace(hierarchy(SYNCS.map((s) => member(s)), { enabled: false }), h.app.clock.now());
    gate.open();
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    const followUp = await h.app.runs.waitForSequenceRun(fired!.runId);
    expect(followUp.status).toBe('cancelled');
    expect(followUp.reason).toMatch(/^the sequence was disabled before this run started/);
    expect(followUp.members.every((m) => m.status === 'skipped' && m.syncRunId === null)).toBe(true);
    // Run by hand, the disabled sequence still runs.
    expect((await h.app.runs.waitForSequenceRun((await h.app.runs.triggerSequence('crm')).run.id)).status).toBe('done');
  });

  it('a running run keeps the order it was queued with when apply changes the dependencies', async () => {
    const gate = new Gate();
    const reached = new Gate();
    const { h } = await setup(SYNCS.map((s) => member(s)), {}, async ({ object }) => {
      if (object === 'accounts') {
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    // While accounts runs, the sequence becomes a graph: workspaces and contacts both after accounts.
    const graph = [member('accounts', { after: [] }), member('workspaces', { after: ['accounts'] }), member('contacts', { after: ['accounts'] })];
    await h.app.store.applyWorkspace(hierarchy(graph), h.app.clock.now());
    gate.open();
    const final = await h.app.runs.waitForSequenceRun(run.id);
    expect(final.status).toBe('done');
    expect(final.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'success'],
      ['workspaces', 'success'],
      ['contacts', 'success'],
    ]);
    for (let i = 1; i < final.members.length; i++) {
      expect(final.members[i]!.startedAt!).toBeGreaterThanOrEqual(final.members[i - 1]!.finishedAt!);
    }
  });

  it('a running run keeps the terminate policies it was queued with when apply changes them', async () => {
    const gate = new Gate();
    const reached = new Gate();
    const line = [member('accounts'), member('workspaces', { terminate: 'on_fatal' }), member('contacts')];
    const { h } = await setup(line, {}, async ({ object }) => {
      if (object === 'accounts') {
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    sqlite(join(h.dir, 'crm.db'), 'drop table workspaces');
    const { run } = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    // While accounts runs, workspaces is told to let the sequence go on whatever its outcome.
    await h.app.store.applyWorkspace(hierarchy([member('accounts'), member('workspaces', { terminate: 'never' }), member('contacts')]), h.app.clock.now());
    gate.open();
    const final = await h.app.runs.waitForSequenceRun(run.id);
    expect(final.status).toBe('failed');
    expect(final.terminatedBy).toBe('workspaces');
    expect(final.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'success'],
      ['workspaces', 'failed'],
      ['contacts', 'skipped'],
    ]);
    expect(final.members.map((m) => m.terminate)).toEqual(['on_fatal', 'on_fatal', 'on_fatal']);
    // The next run uses the policy as it is now: workspaces' failure lets it go on, to contacts.
    const next = await h.app.runs.waitForSequenceRun((await h.app.runs.triggerSequence('crm')).run.id);
    expect(next.members.map((m) => m.terminate)).toEqual(['on_fatal', 'never', 'on_fatal']);
    expect(next.members.map((m) => m.status)).toEqual(['success', 'failed', 'failed']);
    expect(next.terminatedBy).toBe('contacts');
  });

  it('a running run keeps the concurrency it was queued with when apply changes it', async () => {
    const gate = new Gate();
    const reached = new Gate();
    let parallel = 0;
    let maxParallel = 0;
    const graph = SYNCS.map((s) => member(s, { after: [] }));
    const { h } = await setup(graph, { concurrency: 1 }, async () => {
      parallel++;
      maxParallel = Math.max(maxParallel, parallel);
      reached.open();
      await gate.wait();
      await new Promise((r) => setTimeout(r, 20));
      parallel--;
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    await h.app.store.applyWorkspace(hierarchy(graph, { concurrency: 4 }), h.app.clock.now());
    gate.open();
    const final = await h.app.runs.waitForSequenceRun(run.id);
    expect(maxParallel).toBe(1);
    expect(final.concurrency).toBe(1);
    expect(final.members.every((m) => m.status === 'success' || m.status === 'warning')).toBe(true);
  });

  it('cancel stops the running member and skips the rest', async () => {
    const gate = new Gate();
    const reached = new Gate();
    const { h } = await setup(SYNCS.map((s) => member(s)), {}, async ({ object }) => {
      if (object === 'workspaces') {
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    await h.app.runs.cancelSequenceRun(run.id);
    gate.open();
    const final = await h.app.runs.waitForSequenceRun(run.id);
    expect(final.status).toBe('cancelled');
    expect(final.members.map((m) => m.status)).toEqual(['success', 'cancelled', 'skipped']);
    // The user ended the run: the member stopped by the cancel did not terminate it.
    expect(final.terminatedBy).toBeNull();
    expect(final.reason).toBeNull();
  });
  it('a run cancelled while a member writes is resumed: what was delivered stays, finished members are carried over, the rest run in order', async () => {
    const gate = new Gate();
    const reached = new Gate();
    let hold = true;
    const { h, crm } = await setup(SYNCS.map((s) => member(s)), {}, async ({ object, batchIndex }) => {
      // workspaces is held at its second batch: some of its rows are delivered, not all.
      if (object === 'workspaces' && batchIndex === 1 && hold) {
        reached.open();
        await gate.wait();
      }
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSequence('crm');
    await reached.wait();
    await h.app.runs.cancelSequenceRun(run.id);
    gate.open();
    const cancelled = await h.app.runs.waitForSequenceRun(run.id);
    expect(cancelled.members.map((m) => m.status)).toEqual(['success', 'cancelled', 'skipped']);
    const stopped = await h.app.store.getSyncRun(cancelled.members[1]!.syncRunId!);
    const delivered = stopped!.successfulRows.addedCount;
    expect(delivered).toBeGreaterThan(0);
    expect(delivered).toBeLessThan(6);

    hold = false;
    const resumed = await h.app.runs.resumeSequenceRun(run.id);
    expect(resumed.resumedFrom).toBe(run.id);
    const final = await h.app.runs.waitForSequenceRun(resumed.id);
    expect(final.status).toBe('done');
    expect(final.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'success'],
      ['workspaces', 'success'],
      ['contacts', 'success'],
    ]);
    // accounts did not run again; workspaces sent only the rows the cancelled run had not delivered.
    expect(final.members[0]!.syncRunId).toBe(cancelled.members[0]!.syncRunId);
    const workspaces = await h.app.store.getSyncRun(final.members[1]!.syncRunId!);
    expect(workspaces?.successfulRows.addedCount).toBe(6 - delivered);
    expect(final.members[2]!.startedAt!).toBeGreaterThanOrEqual(final.members[1]!.finishedAt!);
    expect(crm('select count(*) as n from workspaces')).toEqual([{ n: 6 }]);
    expect(crm('select count(*) as n from contacts')).toEqual([{ n: 12 }]);
  });

  it('a sequence run that cannot advance neither stops the worker from starting nor holds up other runs', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    await using h = await startHarness({
      dir,
      definition: hierarchy(SYNCS.map((s) => member(s)), {}, [sequence('other', [member('workspaces')])]),
      startWorker: false,
    });
    const { store, worker, runs, clock } = h.app;
    // Both runs were running when the process stopped; the first one's next member names a sync
    // that is no longer in the store (as a store written before deleted syncs ended such runs).
    const { run: broken } = await runs.triggerSequence('crm');
    await store.claimSequenceRun(broken.id, clock.now());
    sqlite(join(dir, 'lockstep.db'), `update member_runs set sync_id = 9999 where sequence_run_id = '${broken.id}' and key = 'accounts'`);
    const { run: other } = await runs.triggerSequence('other');
    await store.claimSequenceRun(other.id, clock.now());

    await worker.start();
    expect((await runs.waitForSequenceRun(other.id)).status).toBe('done');
  });
});

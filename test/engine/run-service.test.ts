/**
 * The run service queues, cancels and waits; the worker of its process claims and executes. What
 * passes between them: a run queued here starts on a local worker at once, not at its next poll; a
 * run executing here stops at once when cancelled; a run cancelled before it started ends in this
 * process as one that ran (its end announced, its waiters answered).
 */
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createJsonLogger } from '../../src/core/logger.js';
import type { SequenceRun, SyncRun } from '../../src/core/runs.js';
import { hierarchyWorkspace, member, sequence, sync } from '../helpers/definitions.js';
import { Gate, withWriteHook } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, sqlite, startHarness, tempDir } from '../helpers/harness.js';

const definition = hierarchyWorkspace(['accounts', 'workspaces'], {
  syncs: [
    sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', batchSize: 1 }),
    sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
  ],
  sequences: [sequence('crm', [member('accounts'), member('workspaces')])],
});

/** A poll so slow that a run starting within the test was started by the service's nudge. */
const NO_POLL = { LOCKSTEP_POLL_MS: '600000' };

describe('the run service and the worker of its process', () => {
  it('a run queued through the service starts on the local worker at once, without waiting for its poll', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    await using h = await startHarness({ dir, definition, env: NO_POLL });
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    const { run: sequenceRun } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(sequenceRun.id)).status).toBe('done');
  });

  it('cancelling a run the local worker executes stops it at its next batch', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const writing = new Gate();
    const held = new Gate();
    await using h = await startHarness({
      dir,
      definition,
      env: NO_POLL,
      connectors: (real) =>
        withWriteHook(real, async () => {
          writing.open();
          await held.wait();
        }),
    });
    const { run } = await h.app.runs.triggerSync('accounts');
    await writing.wait();
    expect(h.app.worker.runningIds).toEqual([run.id]);
    const requested = await h.app.runs.cancelSyncRun(run.id);
    expect(requested.status).not.toBe('cancelled');
    held.open();
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('cancelled');
  });

  it('a run cancelled before it started ends at once: its end is announced in this process and its waiters answered', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    await using h = await startHarness({ dir, definition, startWorker: false });
    const finishedSyncRuns: SyncRun[] = [];
    const finishedSequenceRuns: SequenceRun[] = [];
    h.app.events.on('syncRun:finished', (run) => finishedSyncRuns.push(run));
    h.app.events.on('sequenceRun:finished', (run) => finishedSequenceRuns.push(run));

    const { run } = await h.app.runs.triggerSync('accounts');
    const waiting = h.app.runs.waitForSyncRun(run.id);
    expect(await h.app.runs.cancelSyncRun(run.id)).toMatchObject({ id: run.id, status: 'cancelled' });
    expect(finishedSyncRuns.map((r) => [r.id, r.status])).toEqual([[run.id, 'cancelled']]);
    expect((await waiting).status).toBe('cancelled');

    const { run: sequenceRun } = await h.app.runs.triggerSequence('crm');
    expect(await h.app.runs.cancelSequenceRun(sequenceRun.id)).toMatchObject({ id: sequenceRun.id, status: 'cancelled' });
    expect(finishedSequenceRuns.map((r) => [r.id, r.status])).toEqual([[sequenceRun.id, 'cancelled']]);
    expect((await h.app.runs.waitForSequenceRun(sequenceRun.id)).status).toBe('cancelled');
  });

  it('cancelling an interrupted member run (its process stopped, no worker at work) ends it at once and moves its sequence run on', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    await using h = await startHarness({ dir, definition, startWorker: false });
    const { store, clock } = h.app;
    const lapsed = { workerId: 'host/1/gone', leaseMs: 1 };
    const interruptedMember = async () => {
      const { run } = await h.app.runs.triggerSequence('crm');
      await store.claimSequenceRun(run.id, clock.now());
      const [accounts] = await store.startMembers(run.id, [{ key: 'accounts', syncId: (await store.getSync('accounts'))!.id }], clock.now());
      await store.claimSyncRun(accounts!.id, clock.now() - 10_000, lapsed);
      return { sequenceRunId: run.id, syncRunId: accounts!.id };
    };

    // Cancelled as a sync run: the sequence goes on as after any cancelled member.
    const first = await interruptedMember();
    expect(await h.app.runs.cancelSyncRun(first.syncRunId)).toMatchObject({ status: 'cancelled' });
    const ended = await h.app.runs.waitForSequenceRun(first.sequenceRunId);
    expect(ended.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'cancelled'],
      ['workspaces', 'skipped'],
    ]);

    // Cancelled as a sequence run: the member ends too, rather than wait for a worker.
    const second = await interruptedMember();
    await h.app.runs.cancelSequenceRun(second.sequenceRunId);
    const cancelled = await h.app.runs.waitForSequenceRun(second.sequenceRunId);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'cancelled'],
      ['workspaces', 'skipped'],
    ]);
    expect(await store.getSyncRun(second.syncRunId)).toMatchObject({ status: 'cancelled' });
  });
});

describe('a run cancelled while its worker had let its lease lapse', () => {
  /**
   * Holds the accounts run in the worker of an app logging to `lines` at its first write, then
   * lets its lease lapse (the worker stalled, or the store was out of its reach), so that a
   * cancel ends the run at once in the store rather than waiting for that worker.
   */
  async function heldWithLapsedLease(lines: string[]) {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const writing = new Gate();
    const held = new Gate();
    const h = await startHarness({
      dir,
      definition,
      env: NO_POLL,
      logger: createJsonLogger({ level: 'info', write: (line) => lines.push(line) }),
      connectors: (real) =>
        withWriteHook(real, async () => {
          writing.open();
          await held.wait();
        }),
    });
    const { run } = await h.app.runs.triggerSync('accounts');
    await writing.wait();
    sqlite(join(dir, 'lockstep.db'), `UPDATE sync_runs SET lease_expires_at = ${Date.now() - 1000} WHERE id = ${run.id}`);
    return { dir, h, run, held };
  }

  const messages = (lines: string[]) => lines.map((line) => JSON.parse(line) as { level: string; msg: string; syncRunId?: number });

  it('cancelled by another process: its worker logs that the run was cancelled, not that another worker took it over', async () => {
    const lines: string[] = [];
    const { dir, h, run, held } = await heldWithLapsedLease(lines);
    await using _worker = h;
    await using other = await startHarness({ dir, definition, startWorker: false });
    expect(await other.app.runs.cancelSyncRun(run.id)).toMatchObject({ status: 'cancelled' });
    held.open();
    await vi.waitUntil(() => h.app.worker.runningIds.length === 0, { timeout: 10_000 });
    const logged = messages(lines).filter((entry) => entry.syncRunId === run.id);
    expect(logged.map((entry) => entry.msg).join('\n')).not.toMatch(/taken over|another worker|could not be recorded/);
    expect(logged.at(-1)).toMatchObject({ level: 'info', msg: expect.stringMatching(/^sync run cancelled/) });
    expect(await h.app.store.getSyncRun(run.id)).toMatchObject({ status: 'cancelled', attempt: 1 });
  });

  it('cancelled in its own process: the worker logs the cancel once, and no failure to record it', async () => {
    const lines: string[] = [];
    const { h, run, held } = await heldWithLapsedLease(lines);
    await using _worker = h;
    const finished: number[] = [];
    h.app.events.on('syncRun:finished', (ended) => finished.push(ended.id));
    expect(await h.app.runs.cancelSyncRun(run.id)).toMatchObject({ status: 'cancelled' });
    held.open();
    await vi.waitUntil(() => h.app.worker.runningIds.length === 0, { timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Its end is reported once in the process (its metrics count it once), by the cancel that ended it.
    expect(finished.filter((id) => id === run.id)).toHaveLength(1);
    const logged = messages(lines).filter((entry) => entry.syncRunId === run.id);
    expect(logged.filter((entry) => entry.level !== 'info')).toEqual([]);
    expect(logged.filter((entry) => entry.msg.startsWith('sync run cancelled'))).toHaveLength(1);
    expect(await h.app.store.getSyncRun(run.id)).toMatchObject({ status: 'cancelled', attempt: 1 });
  });
});

describe("the worker's log of a sequence run", () => {
  it('says when a sequence run ends and how, as it says when one starts: done, or cancelled', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const lines: string[] = [];
    const writing = new Gate();
    const held = new Gate();
    let hold = false;
    await using h = await startHarness({
      dir,
      definition,
      env: NO_POLL,
      logger: createJsonLogger({ level: 'info', write: (line) => lines.push(line) }),
      connectors: (real) =>
        withWriteHook(real, async () => {
          if (!hold) return;
          writing.open();
          await held.wait();
        }),
    });
    const sequenceLog = (id: string) =>
      lines.map((line) => JSON.parse(line) as { level: string; msg: string; sequenceRunId?: string; status?: string }).filter((entry) => entry.sequenceRunId === id);

    const { run: done } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(done.id)).status).toBe('done');
    expect(sequenceLog(done.id).map((entry) => [entry.msg, entry.status])).toEqual([
      ['sequence run started', undefined],
      ['sequence run finished', 'done'],
    ]);

    hold = true;
    sqlite(join(dir, 'warehouse.db'), "UPDATE accounts SET name = name || ' (renamed)'");
    const { run: cancelled } = await h.app.runs.triggerSequence('crm');
    await writing.wait();
    await h.app.runs.cancelSequenceRun(cancelled.id);
    held.open();
    expect((await h.app.runs.waitForSequenceRun(cancelled.id)).status).toBe('cancelled');
    expect(sequenceLog(cancelled.id).at(-1)).toMatchObject({ level: 'info', msg: 'sequence run finished', status: 'cancelled' });
  });
});

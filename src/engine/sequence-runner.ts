/**
 * Drives sequence runs (SPEC §3.2). Every decision is recomputed from the store, so `advance` can
 * be called any number of times, after any crash, and still start each member exactly once.
 *
 * Sequence run: pending ──claim──► running ──► done | failed | cancelled
 *   - running: members whose dependencies finished without terminating the run start, up to the
 *     sequence's concurrency (a linear sequence: one at a time, in list order);
 *   - a member whose outcome meets its terminate policy records the termination; no new member
 *     starts, running members finish, pending ones become skipped, then the run ends `failed`;
 *   - a cancel request cancels running members and skips the rest; the run ends `cancelled`;
 *   - when every member is finished the run ends `done`.
 * Member run: pending ──► running ──► success | warning | failed | cancelled, or pending ──► skipped;
 *   a member whose sync run was interrupted by a crash goes back to pending and gets a new sync run.
 */
import type { Clock, Logger, Store } from '../core/ports.js';
import type { MemberRun, SequenceRun, SyncRun } from '../core/runs.js';
import { TERMINAL_MEMBER_RUN_STATUSES } from '../core/runs.js';
import { memberDependencies, terminationReason } from '../core/sequence-rules.js';
import type { MemberDef, SequenceRecord } from '../core/workspace.js';

export interface SequenceRunnerOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** Starts freshly created member sync runs (claims them and runs them when their sync is free). */
  startSyncRuns: (runs: SyncRun[]) => void;
  /** Asks running member sync runs to stop at their next batch boundary. */
  cancelSyncRun: (syncRunId: number) => Promise<void>;
  /** Told whenever a sequence run changed. */
  onUpdate: (run: SequenceRun) => void;
}

const FINISHED = new Set(TERMINAL_MEMBER_RUN_STATUSES);
const CAN_TERMINATE = new Set<MemberRun['status']>(['warning', 'failed', 'cancelled']);

export class SequenceRunner {
  /** Per run, the advance in progress: advances of one run never interleave. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly options: SequenceRunnerOptions) {}

  /** Moves a running sequence run forward as far as its state allows. */
  advance(sequenceRunId: string): Promise<void> {
    const previous = this.inFlight.get(sequenceRunId) ?? Promise.resolve();
    // A failed advance must not block the next one: each starts from the store's state anyway.
    const next = previous.catch(() => undefined).then(() => this.advanceOnce(sequenceRunId));
    const tracked = next.finally(() => {
      if (this.inFlight.get(sequenceRunId) === tracked) this.inFlight.delete(sequenceRunId);
    });
    this.inFlight.set(sequenceRunId, tracked);
    return next;
  }

  /** Waits for every advance in progress (used when stopping). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  private async advanceOnce(sequenceRunId: string): Promise<void> {
    const { store, clock } = this.options;
    let run = await store.getSequenceRun(sequenceRunId);
    if (!run || run.status !== 'running') return;
    const sequence = await store.getSequence(run.sequenceId);
    const definitions = memberDefinitions(run, sequence);

    // 1. Did a finished member terminate the run? The earliest finisher's reason is kept.
    if (!run.reason) {
      // Only these outcomes can meet a terminate policy; a success never does (rejected rows make a
      // run end `warning`), and skipping it keeps a long sequence's hand-off from reading every run.
      const finished = run.members
        .filter((m) => m.syncRunId !== null && CAN_TERMINATE.has(m.status))
        .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
      for (const member of finished) {
        const syncRun = await store.getSyncRun(member.syncRunId as number);
        const definition = definitions.get(member.key);
        if (!syncRun || !definition) continue;
        const reason = terminationReason(definition, syncRun);
        if (reason) {
          await store.setTermination(run.id, member.key, reason);
          this.options.logger.info('sequence run terminated', { sequenceRunId: run.id, member: member.key, reason });
          run = (await store.getSequenceRun(run.id)) as SequenceRun;
          break;
        }
      }
    }

    // 2. Terminated or cancelled: stop starting members; end once nothing runs any more.
    if (run.terminatedBy !== null || run.cancelRequested) {
      if (run.cancelRequested) {
        for (const m of run.members) {
          if (m.status === 'running' && m.syncRunId !== null) await this.options.cancelSyncRun(m.syncRunId);
        }
      }
      await store.skipPendingMembers(run.id, clock.now());
      run = (await store.getSequenceRun(run.id)) as SequenceRun;
      if (run.members.every((m) => FINISHED.has(m.status))) {
        run = await store.finishSequenceRun(run.id, run.cancelRequested ? 'cancelled' : 'failed', clock.now());
      }
      this.options.onUpdate(run);
      return;
    }

    // 3. Start every member whose dependencies are finished, up to the concurrency. A pending
    // member may already hold a queued sync run (its sync is busy elsewhere): it waits, and counts
    // as in progress. One whose run was interrupted by a crash gets a new run.
    const deps = memberDependencies({ members: [...definitions.values()] });
    const byKey = new Map(run.members.map((m) => [m.key, m]));
    let inProgress = 0;
    const startable: MemberRun[] = [];
    for (const m of run.members) {
      if (m.status === 'running') inProgress++;
      if (m.status !== 'pending') continue;
      if (m.syncRunId !== null) {
        const current = await store.getSyncRun(m.syncRunId);
        if (current?.status === 'queued') {
          inProgress++;
          continue;
        }
      }
      startable.push(m);
    }
    const ready = startable.filter((m) =>
      (deps.get(m.key) ?? []).every((d) => {
        const dep = byKey.get(d);
        return dep === undefined || FINISHED.has(dep.status);
      }),
    );
    const room = Math.max(0, (sequence?.concurrency ?? 1) - inProgress);
    if (ready.length > 0 && room > 0) {
      const created = await store.startMembers(
        run.id,
        ready.slice(0, room).map((m) => ({ key: m.key, syncId: m.syncId })),
        clock.now(),
      );
      if (created.length > 0) this.options.startSyncRuns(created);
      run = (await store.getSequenceRun(run.id)) as SequenceRun;
    }

    // 4. Everything finished: done.
    if (run.members.every((m) => FINISHED.has(m.status))) {
      run = await store.finishSequenceRun(run.id, 'done', clock.now());
    }
    this.options.onUpdate(run);
  }
}

/** The member definitions of the sequence as it is now, falling back to defaults for removed members. */
function memberDefinitions(run: SequenceRun, sequence: SequenceRecord | null): Map<string, MemberDef> {
  const declared = new Map((sequence?.members ?? []).map((m) => [m.key, m]));
  return new Map(
    run.members.map((m): [string, MemberDef] => [
      m.key,
      declared.get(m.key) ?? { key: m.key, sync: String(m.syncId), terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null },
    ]),
  );
}

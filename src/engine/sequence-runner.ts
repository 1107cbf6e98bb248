/**
 * Drives sequence runs (SPEC §3.2). Each advance is one store transaction under a lock on the
 * sequence run, deciding from the stored state with a pure function (decideSequenceAdvance in
 * core/sequence-rules.ts): `advance` may be called any number of times, by any worker on any
 * machine, after any crash, and still starts each member exactly once within the concurrency.
 *
 * Sequence run: pending ──claim──► running ──► done | failed | cancelled
 *   - running: members whose dependencies finished without terminating the run start, up to the
 *     sequence's concurrency (a linear sequence: one at a time, in list order);
 *   - a member whose outcome meets its terminate policy records the termination; no new member
 *     starts, running members finish, pending ones become skipped, then the run ends `failed`;
 *   - past the run's deadline (`deadlineMinutes` from its start) the same happens, with the deadline
 *     as the reason; the workers running its members stop them (Worker's member limits);
 *   - a cancel request cancels running members and skips the rest; the run ends `cancelled`;
 *   - when every member is finished the run ends `done`.
 * Member run: pending ──► running ──► success | warning | failed | cancelled, or pending ──► skipped;
 *   a member whose worker died keeps its sync run, which another worker takes over.
 */
import type { Clock, LeaseRequest, Logger, Store } from '../core/ports.js';
import { TERMINAL_SEQUENCE_RUN_STATUSES, isTerminalSyncRunStatus, type SequenceRun, type SyncRun } from '../core/runs.js';
import { decideSequenceAdvance, type SequenceDecision } from '../core/sequence-rules.js';

export interface SequenceRunnerOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /**
   * Who claims the member runs an advance starts, in the advance's own transaction, and how many
   * it can take now; null to leave them queued.
   */
  claim: (sequenceRunId: string) => { lease: LeaseRequest; max: number } | null;
  /**
   * Starts freshly created member sync runs of `sequenceRun` (as the advance left it): those claimed
   * by the advance (`querying`) run at once, the others are claimed when their sync is free.
   */
  startSyncRuns: (runs: SyncRun[], sequenceRun: SequenceRun) => void;
  /** Asks running member sync runs to stop (at once, their query or write interrupted). */
  cancelSyncRun: (syncRunId: number) => Promise<void>;
  /** Told whenever a sequence run changed. */
  onUpdate: (run: SequenceRun) => void;
}

export class SequenceRunner {
  /** Per run, the advance in progress here: advances of one run in one process queue up rather than contend for its lock. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly options: SequenceRunnerOptions) {}

  /** Moves a running sequence run forward as far as its state allows. */
  advance(sequenceRunId: string): Promise<void> {
    const previous = this.inFlight.get(sequenceRunId) ?? Promise.resolve();
    // A failed advance must not block the next one: each starts from the store's state anyway.
    const next = previous.catch(() => undefined).then(() => this.advanceOnce(sequenceRunId));
    // The caller handles `next`'s failure; the copy kept here must not be an unhandled rejection
    // (a store error in an advance would otherwise end the process).
    const tracked = next.catch(() => undefined).finally(() => {
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
    const { store, clock, logger } = this.options;
    let decided: SequenceDecision | null = null;
    const result = await store.advanceSequenceRun(
      sequenceRunId,
      (state) => {
        decided = decideSequenceAdvance(state);
        return decided;
      },
      clock.now(),
      this.options.claim(sequenceRunId) ?? undefined,
    );
    const decision = decided as SequenceDecision | null;
    if (decision === null) return;
    if (decision.terminate) {
      logger.info('sequence run terminated', { sequenceRunId, member: decision.terminate.member, reason: decision.terminate.reason });
    }
    if (decision.finish !== null && TERMINAL_SEQUENCE_RUN_STATUSES.includes(result.run.status)) {
      // Its end, as 'sequence run started' says its start: done, failed (terminated, or past its deadline) or cancelled.
      const { sequenceId, status, reason } = result.run;
      logger.info('sequence run finished', { sequenceRunId, sequenceId, status, ...(reason ? { reason } : {}) });
    }
    for (const syncRunId of result.cancelled) await this.options.cancelSyncRun(syncRunId);
    if (result.started.length > 0) this.options.startSyncRuns(result.started, result.run);
    this.options.onUpdate(result.run);
    // A member whose process stopped (its lease ended, no worker at work on it) ends with its
    // cancel at once: the run moves on now, not once a worker would have ended it.
    if (decision.finish === null && result.cancelled.length > 0) {
      const cancelled = await Promise.all(result.cancelled.map((id) => store.getSyncRun(id)));
      if (cancelled.some((run) => run !== null && isTerminalSyncRunStatus(run.status))) await this.advanceOnce(sequenceRunId);
    }
  }
}

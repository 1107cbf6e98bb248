/**
 * Run rules every store enforces the same way, beyond the port's comments:
 * - a sync run or sequence run in a terminal status never changes status again (a late update is a
 *   Conflict), so a stale result cannot overwrite a cancellation or an interruption;
 * - a member gets a new sync run only while it is not finished and has no run, or its run was
 *   interrupted (so a replayed hand-off never runs a member twice);
 * - a finished or cancelled sequence run starts nothing, even when a hand-off is replayed late.
 * - a write carrying a run's attempt number (status, counts, rejected rows, snapshot and record-id
 *   commits) is refused once the run is in another attempt, or has ended: a worker whose lease
 *   expired and was taken over, or whose run a user cancelled meanwhile, can no longer change
 *   anything (fencing);
 * - a cancel of an active run whose lease has ended (no worker at work on it) ends it `cancelled`
 *   at once, in the transaction that checks the lease, so a worker taking it over at that moment
 *   either comes first (the run is flagged, and that worker ends it) or finds it ended;
 * The stores also keep at most one queued standalone run and one active run per sync, and one
 * pending and one running run per sequence, as unique indexes: the database refuses a double claim.
 */
import { ErrorCode, LockstepError } from '../core/errors.js';
import {
  ACTIVE_SYNC_RUN_STATUSES,
  TERMINAL_MEMBER_RUN_STATUSES,
  TERMINAL_SEQUENCE_RUN_STATUSES,
  type MemberRunStatus,
  type SequenceRunStatus,
  type SyncRunStatus,
} from '../core/runs.js';

export function isTerminalSequenceRunStatus(status: string): boolean {
  return TERMINAL_SEQUENCE_RUN_STATUSES.includes(status as SequenceRunStatus);
}

/** A member as `startMembers` finds it: its status, and its sync run with that run's status, if any. */
export interface MemberWithRun {
  memberStatus: string;
  syncRunId: number | null;
  runStatus: string | null;
}

/** Whether `startMembers` gives this member a new sync run. */
export function memberNeedsRun(member: MemberWithRun): boolean {
  if (TERMINAL_MEMBER_RUN_STATUSES.includes(member.memberStatus as MemberRunStatus)) return false;
  return member.syncRunId === null || member.runStatus === 'interrupted';
}

/**
 * A status filter of sync runs as they are shown at a time (syncRunStatusAt), in the terms a store's
 * SQL needs: runs recorded in `recorded`, or recorded in `held` with a lease not ended by then, or,
 * with `lapsed`, recorded active with a lease ended by then (shown `interrupted`).
 */
export interface StatusFilterAt {
  recorded: SyncRunStatus[];
  held: SyncRunStatus[];
  lapsed: boolean;
}

export function statusFilterAt(statuses: readonly SyncRunStatus[]): StatusFilterAt {
  const active = (s: SyncRunStatus) => ACTIVE_SYNC_RUN_STATUSES.includes(s);
  return {
    recorded: statuses.filter((s) => !active(s)),
    held: statuses.filter(active),
    lapsed: statuses.includes('interrupted'),
  };
}

/** A status change refused because the sync run is already `current`. */
export function syncRunFinishedError(id: number, current: string, wanted: string | null): LockstepError {
  return new LockstepError(ErrorCode.Conflict, `sync run ${id} is already ${current}; it cannot become ${wanted ?? 'anything else'}`);
}

/** A cancel refused because the run is already `current`. */
export function nothingToCancelError(what: string, current: string): LockstepError {
  return new LockstepError(ErrorCode.Conflict, `${what} is already ${current}; there is nothing to cancel`);
}

/** A finish refused because the sequence run already ended otherwise. */
export function sequenceRunFinishedError(id: string, current: string, wanted: string): LockstepError {
  return new LockstepError(ErrorCode.Conflict, `sequence run ${id} is already ${current}; it cannot become ${wanted}`);
}

/**
 * A fenced write refused: the run is in attempt `current` (held by `holder`), the writer in `attempt`,
 * or the run ended (`ended`, its status: a user cancelled it once the writer's lease had expired).
 * The writer stops at once; the run goes on with the worker that took it over, or stays ended.
 */
export function leaseLostError(runId: number, attempt: number, current: number | null, holder: string | null, ended: string | null = null): LockstepError {
  const now =
    current === null
      ? 'it no longer exists'
      : ended !== null && current === attempt
        ? `it ended ${ended} after this worker's lease expired`
        : `it is in attempt ${current}${holder ? ` on worker ${holder}` : ''}, after this worker's lease expired`;
  return new LockstepError(ErrorCode.LeaseLost, `sync run ${runId} attempt ${attempt} may no longer write: ${now}; this attempt stops and its late writes are refused`);
}

/** A resume `decideSequenceResume` refused, as the error the store throws (nothing was written). */
export function resumeRefused(decision: { code: 'not_found' | 'conflict'; reason: string }): LockstepError {
  return new LockstepError(decision.code === 'not_found' ? ErrorCode.NotFound : ErrorCode.Conflict, decision.reason);
}

/**
 * Run records: sync runs, sequence runs and their member runs, with their statuses (SPEC §2.3, §3.2).
 * Times are epoch milliseconds (fractional when the clock gives sub-millisecond precision).
 */
import type { PhaseTimes } from './run-phases.js';
import type { RejectedThreshold, TerminatePolicy } from './workspace.js';

/**
 * Sync run states.
 *
 *   queued ──► querying ──► processing ──► reporting ──► success | warning | failed
 *      │           │             │
 *      └───────────┴─────────────┴──► cancelled
 *
 * An active run whose process stopped is shown `interrupted` (syncRunStatusAt) until a worker takes
 * it over, under the same id as its next attempt, in the state it was recorded in.
 */
export const SyncRunStatus = {
  /** Waiting to start (its sync is busy, or no worker has taken it yet). */
  Queued: 'queued',
  /** Reading the model and planning. */
  Querying: 'querying',
  /** Delivering batches. */
  Processing: 'processing',
  /** Writing the final counts. */
  Reporting: 'reporting',
  /** Every planned row delivered. */
  Success: 'success',
  /** Finished, with rejected rows. */
  Warning: 'warning',
  /** Stopped by a fatal error; `error` says why. */
  Failed: 'failed',
  /** Stopped by a user at a batch boundary. */
  Cancelled: 'cancelled',
  /**
   * The process running it stopped (killed, crashed, cut off from the store) and no worker has
   * taken it over yet (see syncRunStatusAt). The next worker resumes it under the same id as its
   * next attempt.
   */
  Interrupted: 'interrupted',
} as const;
export type SyncRunStatus = (typeof SyncRunStatus)[keyof typeof SyncRunStatus];

/** States in which a sync run holds its sync: no other run of that sync may start. */
export const ACTIVE_SYNC_RUN_STATUSES: readonly SyncRunStatus[] = ['querying', 'processing', 'reporting'];
/** States a sync run never leaves. */
export const TERMINAL_SYNC_RUN_STATUSES: readonly SyncRunStatus[] = [
  'success',
  'warning',
  'failed',
  'cancelled',
  'interrupted',
];

export function isTerminalSyncRunStatus(status: SyncRunStatus): boolean {
  return TERMINAL_SYNC_RUN_STATUSES.includes(status);
}

/** What a run whose process stopped (killed, crashed, cut off) says until a worker takes it over. */
export const INTERRUPTED_RUN_NOTE =
  'the process running it stopped; the next worker to start (`lockstep serve`, `lockstep worker`) resumes it under the same id from the rows it delivered';
/** The same, once a cancel was asked for: the worker taking it over ends it instead. */
export const INTERRUPTED_CANCELLED_RUN_NOTE =
  'the process running it stopped; cancel requested: the next worker to start (`lockstep serve`, `lockstep worker`) records it cancelled, sending nothing more, or cancel it again to end it now';
/** The error of a run cancelled once the process running it had stopped: no worker was at work on it, so it ends at once. */
export const CANCELLED_INTERRUPTED_RUN_ERROR =
  'cancelled by a user after the process running it stopped; the batches it delivered stay delivered, and no worker resumes it';

/**
 * The status a sync run is shown with at `now` (SPEC §2.3): a run still recorded active whose
 * lease has ended — the process running it stopped and no worker has taken it over yet — is
 * `interrupted`; once a worker takes it over (same id, next attempt) it is active again. The store
 * keeps the recorded status: the queue claims such a run by its lease, not by this.
 */
export function syncRunStatusAt(run: Pick<SyncRun, 'status' | 'leaseExpiresAt'>, now: number): SyncRunStatus {
  if (!ACTIVE_SYNC_RUN_STATUSES.includes(run.status)) return run.status;
  return run.leaseExpiresAt === null || run.leaseExpiresAt <= now ? 'interrupted' : run.status;
}

/** Sequence run states: pending ──► running ──► done | failed | cancelled (pending ──► cancelled too). */
export const SequenceRunStatus = {
  /** Queued; waits for the sequence's previous run to end. */
  Pending: 'pending',
  Running: 'running',
  /** Ran to the end (even if a `never` member failed). */
  Done: 'done',
  /** Terminated by a member's policy, or a system error. */
  Failed: 'failed',
  /** Cancelled by a user. */
  Cancelled: 'cancelled',
} as const;
export type SequenceRunStatus = (typeof SequenceRunStatus)[keyof typeof SequenceRunStatus];

/** Sequence run states that are final: the run will not change any more. */
export const TERMINAL_SEQUENCE_RUN_STATUSES: readonly SequenceRunStatus[] = ['done', 'failed', 'cancelled'];

export const MemberRunStatus = {
  /** Not started: waiting for dependencies, or for its busy sync. */
  Pending: 'pending',
  Running: 'running',
  Success: 'success',
  Warning: 'warning',
  Failed: 'failed',
  Cancelled: 'cancelled',
  /** Never started because the sequence terminated or was cancelled. */
  Skipped: 'skipped',
} as const;
export type MemberRunStatus = (typeof MemberRunStatus)[keyof typeof MemberRunStatus];

/** Member states after which the member never runs again. */
export const TERMINAL_MEMBER_RUN_STATUSES: readonly MemberRunStatus[] = [
  'success',
  'warning',
  'failed',
  'cancelled',
  'skipped',
];

/** What started a run. */
export const TriggerType = {
  Manual: 'manual',
  Api: 'api',
  Schedule: 'schedule',
  Webhook: 'webhook',
  Upstream: 'upstream',
  /** A sync run started by a sequence run for one of its members. */
  Sequence: 'sequence',
  /** A run started again after the process running the first attempt died. */
  Retry: 'retry',
} as const;
export type TriggerType = (typeof TriggerType)[keyof typeof TriggerType];

export interface Trigger {
  type: TriggerType;
  /** Free-form origin: the schedule's firing key, the user, the webhook event id, ... */
  detail: string | null;
}

export interface SyncRunOptions {
  /** Send every row, ignoring the snapshot. */
  fullResync: boolean;
  /** Rebuild the snapshot from the model without sending anything. */
  resetCDC: boolean;
  /** Let this run through the sync's mass-delete guard (`maxDeletePercent`) once (default: false). */
  allowMassDelete?: boolean;
  /** Compare the whole model even though it has a cursor (catches deletes and late writes). */
  fullCompare?: boolean;
}

export interface OperationCounts {
  addedCount: number;
  changedCount: number;
  removedCount: number;
}

export const ZERO_COUNTS: Readonly<OperationCounts> = Object.freeze({ addedCount: 0, changedCount: 0, removedCount: 0 });

export function totalCount(c: OperationCounts): number {
  return c.addedCount + c.changedCount + c.removedCount;
}

export interface SyncRun {
  id: number;
  syncId: number;
  status: SyncRunStatus;
  trigger: Trigger;
  options: SyncRunOptions;
  /** Set when the run belongs to a sequence run's member. */
  sequenceRunId: string | null;
  memberKey: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Rows the model query returned. */
  querySize: number;
  plannedRows: OperationCounts;
  successfulRows: OperationCounts;
  failedRows: OperationCounts;
  /** Share of planned rows processed, 0..1. */
  completionRatio: number;
  error: string | null;
  cancelRequested: boolean;
  /** The destination's API budget as it last reported it during the run (SaaS destinations), or null. */
  apiUsage: ApiUsage | null;
  /** Where the run's time went, in milliseconds per phase (core/run-phases.ts); null until it ends. */
  phaseMs: PhaseTimes | null;
  /** How the run compared the model with what was delivered before; null until it did. */
  comparison: RunComparison | null;
  /**
   * How many times a worker took the run: 0 while queued, 1 once claimed, one more each time
   * another worker took it over after the lease of the one running it expired.
   */
  attempt: number;
  /** The worker that holds (or last held) the run, or null while queued. */
  workerId: string | null;
  /** When the lease of the worker running it ends unless renewed; null once finished. */
  leaseExpiresAt: number | null;
}

/** How a run compared the model with what was delivered before (see engine/warehouse-planner.ts). */
export interface RunComparison {
  /** Where the snapshot lives: Lockstep's store, or the source (`planner: warehouse`). */
  planner: 'store' | 'warehouse';
  /** The whole model, or only the rows past the model's cursor. */
  kind: 'full' | 'cursor';
  /** What else happened: a fallback, a rebuilt planner table, changed column types, ... */
  notes?: string[];
  /** Where the run delivered: the sync's destination and object (absent from runs recorded before it was kept). */
  target?: RunTarget;
}

/** A sync's destination (its slug) and object, as a run delivered to them. */
export interface RunTarget {
  destination: string;
  object: string;
}

/** An API budget a destination reports (e.g. Salesforce's `Sforce-Limit-Info`), and the calls this run made. */
export interface ApiUsage {
  /** Calls counted against the limit so far, by the service's own count (all clients). */
  used: number;
  /** The limit of that count (e.g. per 24 hours). */
  limit: number;
  /** Calls this run made. */
  calls: number;
}

/** A row the destination (or planning) refused, kept for inspection. */
export interface RejectedRow {
  syncRunId: number;
  /** The primary key values, as a JSON array. */
  key: string;
  op: 'added' | 'changed' | 'removed';
  reason: string;
}

export interface MemberRun {
  key: string;
  syncId: number;
  /** Position in the sequence's member list. */
  position: number;
  status: MemberRunStatus;
  /** The latest sync run of this member; earlier interrupted attempts are in `attempts`. */
  syncRunId: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  /** Minutes its run may take before it is stopped and fails, as its sequence said when the run was queued; null: no limit. */
  timeoutMinutes: number | null;
  /**
   * What of its outcome ends the sequence, as its sequence said when the run was queued (a later
   * edit applies to the next run); null for runs queued before Lockstep kept it.
   */
  terminate: TerminatePolicy | null;
  /** The rejected rows `on_fatal_or_rejected` allows, kept with `terminate`; null when `terminate` is. */
  rejectedThreshold: RejectedThreshold | null;
}

export interface SequenceRun {
  /** UUID. */
  id: string;
  sequenceId: number;
  status: SequenceRunStatus;
  trigger: Trigger;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Key of the member whose outcome terminated the run. */
  terminatedBy: string | null;
  /** Why the run terminated, failed or was cancelled, in words. */
  reason: string | null;
  cancelRequested: boolean;
  members: MemberRun[];
  /** The failed or cancelled run this one resumes (its finished members were carried over), or null. */
  resumedFrom: string | null;
  /**
   * Minutes from the run's start after which members not started are skipped and the run fails, as
   * its sequence said when the run was queued (a later edit applies to the next run); null: none.
   */
  deadlineMinutes: number | null;
  /**
   * Members of a graph running at once, as its sequence said when the run was queued (a later edit
   * applies to the next run); null for runs queued before Lockstep kept it.
   */
  concurrency: number | null;
}

/**
 * A member as its sequence declared it when a run was queued: the member graph the run's members
 * wait for one another by, and that a resume compares with the sequence as it is then (kept beside
 * the run; a store reads it once per run, not at every hand-off).
 */
export interface RecordedMember {
  key: string;
  /** Slug of the sync it runs. */
  sync: string;
  /** As declared: null when not given (see memberDependencies). */
  after: string[] | null;
}

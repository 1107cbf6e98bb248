/**
 * Runs as the outside world sees them: the JSON shapes of the Hightouch-compatible API
 * (SPEC §6.3), shared by the command line's `--json` output and the HTTP API. Times are ISO-8601.
 */
import type { EntitySlug } from './ports.js';
import type { PhaseTimes } from './run-phases.js';
import { ACTIVE_SYNC_RUN_STATUSES, INTERRUPTED_CANCELLED_RUN_NOTE, INTERRUPTED_RUN_NOTE, TERMINAL_SEQUENCE_RUN_STATUSES, isTerminalSyncRunStatus, syncRunStatusAt, type ApiUsage, type MemberRun, type MemberRunStatus, type OperationCounts, type RejectedRow, type RunComparison, type SequenceRun, type SyncRun } from './runs.js';

export interface SyncRunView {
  id: number;
  syncId: number;
  status: SyncRun['status'];
  trigger: SyncRun['trigger']['type'];
  /** What started it, in words: `cli`, `web UI`, the schedule's firing, the webhook delivery, or the run whose end started it. */
  triggerDetail: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  querySize: number;
  plannedRows: OperationCounts;
  successfulRows: OperationCounts;
  failedRows: OperationCounts;
  completionRatio: number;
  error: string | null;
  sequenceRunId: string | null;
  /** Which attempt ran it: 1, or more when a worker took the run over from one that stopped (same run id). */
  attempt: number;
  /**
   * While the run is at work: the worker holding it (its id, as that process's log, `/readyz` and
   * `lockstep_worker_leases` name it) and when its lease ends unless renewed; a time past means
   * that worker stopped renewing it, and another takes the run over. Null while queued and once ended.
   */
  lease: { workerId: string; expiresAt: string } | null;
  /** A user asked to cancel it and it has not ended yet: it is stopping (an `interrupted` one ends when cancelled again). */
  cancelRequested: boolean;
  /** The destination's API budget as last reported in the run, and the calls the run made (SaaS destinations). */
  apiUsage?: ApiUsage;
  /** Where the run's time went, in milliseconds per phase (once it ended). */
  phaseMs?: PhaseTimes;
  /** How the run compared the model (planner and full or cursor comparison). */
  comparison?: RunComparison;
}

/**
 * A sync run with the sync it belongs to named: `sync` is the live sync's slug (null once the sync
 * was deleted: there is no sync to go to), `syncSlug` the slug it had when the run ran, kept after
 * a delete (or a rename, which deletes and creates), and `syncDeleted` whether it was deleted since.
 */
export interface NamedSyncRunView extends SyncRunView, RunSyncName {}

/** The sync a run or a member belongs to, as run history names it (see NamedSyncRunView). */
export interface RunSyncName {
  sync: string | null;
  /** The slug the sync had when it ran, also once it was deleted; null only when the store has no record of the sync. */
  syncSlug: string | null;
  /** Whether the sync was deleted since (its runs stay in the history). */
  syncDeleted: boolean;
}

/**
 * A member's state as shown: its recorded state, except that a `running` member whose sync run is
 * shown `interrupted` (its process stopped, no worker took it over yet: SPEC §3.3) is `interrupted`.
 */
export type MemberRunViewStatus = MemberRunStatus | 'interrupted';

export interface MemberRunView extends RunSyncName {
  key: string;
  syncId: number;
  status: MemberRunViewStatus;
  syncRunId: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  syncRun: SyncRunView | null;
  /** The member finished in the failed run this one resumes (its sync run is that run's), and did not run again. */
  carriedOver: boolean;
  /** What of its outcome ends the run, as the run was queued with it; null for runs queued before Lockstep kept it. */
  terminate: MemberRun['terminate'];
  rejectedThreshold: MemberRun['rejectedThreshold'];
  /** Minutes its run may take, as the run was queued with it; null: no limit. */
  timeoutMinutes: number | null;
}

export interface SequenceRunView {
  id: string;
  sequenceId: number;
  /** The live sequence's slug; null once it was deleted. */
  sequence: string | null;
  /** The slug the sequence had when it ran, also once it was deleted; null only when the store has no record of it. */
  sequenceSlug: string | null;
  /** Whether the sequence was deleted since (its runs stay in the history). */
  sequenceDeleted: boolean;
  status: SequenceRun['status'];
  trigger: SequenceRun['trigger']['type'];
  /** What started it, in words (see SyncRunView.triggerDetail). */
  triggerDetail: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Hightouch's shape: only members that have a sync run. */
  syncRuns: Array<{ syncId: number; syncRunId: number; status: SyncRun['status']; finishedAt: string | null }>;
  members: MemberRunView[];
  terminatedBy: string | null;
  reason: string | null;
  /** The failed or cancelled run this one resumes, or null. */
  resumedFrom: string | null;
  /** The run that resumes this failed or cancelled one, or null (a run is resumed at most once). */
  resumedBy: string | null;
  /** Members of a graph running at once, as the run was queued with it; null for runs queued before Lockstep kept it. */
  concurrency: number | null;
  /** Minutes from its start after which the run fails, as it was queued with it; null: none. */
  deadlineMinutes: number | null;
  /** A user asked to cancel it and it has not ended yet: its members are stopping. */
  cancelRequested: boolean;
}

export const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** `run` as it is shown at `now`: a run whose process stopped, not taken over yet, is `interrupted` (syncRunStatusAt). */
export function syncRunView(run: SyncRun, now: number): SyncRunView {
  const status = syncRunStatusAt(run, now);
  return {
    id: run.id,
    syncId: run.syncId,
    status,
    trigger: run.trigger.type,
    triggerDetail: run.trigger.detail,
    createdAt: new Date(run.createdAt).toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    querySize: run.querySize,
    plannedRows: run.plannedRows,
    successfulRows: run.successfulRows,
    failedRows: run.failedRows,
    completionRatio: run.completionRatio,
    error: run.error ?? (status !== 'interrupted' ? null : run.cancelRequested ? INTERRUPTED_CANCELLED_RUN_NOTE : INTERRUPTED_RUN_NOTE),
    sequenceRunId: run.sequenceRunId,
    attempt: run.attempt,
    lease:
      ACTIVE_SYNC_RUN_STATUSES.includes(run.status) && run.workerId !== null && run.leaseExpiresAt !== null
        ? { workerId: run.workerId, expiresAt: new Date(run.leaseExpiresAt).toISOString() }
        : null,
    cancelRequested: run.cancelRequested && !isTerminalSyncRunStatus(status),
    ...(run.apiUsage ? { apiUsage: run.apiUsage } : {}),
    ...(run.phaseMs ? { phaseMs: run.phaseMs } : {}),
    ...(run.comparison ? { comparison: run.comparison } : {}),
  };
}

/** How run history names the sync of `syncId`, from the slugs by id (deleted syncs included). */
export function runSyncName(syncId: number, syncSlugs: ReadonlyMap<number, EntitySlug>): RunSyncName {
  const named = syncSlugs.get(syncId);
  return { sync: named && !named.deleted ? named.slug : null, syncSlug: named?.slug ?? null, syncDeleted: named?.deleted ?? false };
}

/**
 * @param syncRuns the member sync runs by id (those not given appear without details)
 * @param syncSlugs sync slugs by id, deleted syncs included
 * @param sequenceSlug the sequence's slug, also when it was deleted; null when unknown
 * @param now the time the members' sync runs are shown at (see syncRunView)
 */
export function sequenceRunView(
  run: SequenceRun,
  syncRuns: Map<number, SyncRun>,
  syncSlugs: ReadonlyMap<number, EntitySlug>,
  sequenceSlug: EntitySlug | null,
  now: number,
  resumedBy: string | null = null,
): SequenceRunView {
  const members = run.members.map((m): MemberRunView => {
    const syncRun = m.syncRunId === null ? undefined : syncRuns.get(m.syncRunId);
    const syncRunShown = syncRun ? syncRunView(syncRun, now) : null;
    return {
      key: m.key,
      ...runSyncName(m.syncId, syncSlugs),
      syncId: m.syncId,
      // The store keeps the member `running` until a worker takes its sync run over or it ends.
      status: m.status === 'running' && syncRunShown?.status === 'interrupted' ? 'interrupted' : m.status,
      syncRunId: m.syncRunId,
      startedAt: iso(m.startedAt),
      finishedAt: iso(m.finishedAt),
      durationMs: m.startedAt !== null && m.finishedAt !== null ? Math.round(m.finishedAt - m.startedAt) : null,
      syncRun: syncRunShown,
      carriedOver: syncRun !== undefined && syncRun.sequenceRunId !== run.id,
      terminate: m.terminate,
      rejectedThreshold: m.rejectedThreshold,
      timeoutMinutes: m.timeoutMinutes,
    };
  });
  return {
    id: run.id,
    sequenceId: run.sequenceId,
    sequence: sequenceSlug && !sequenceSlug.deleted ? sequenceSlug.slug : null,
    sequenceSlug: sequenceSlug?.slug ?? null,
    sequenceDeleted: sequenceSlug?.deleted ?? false,
    status: run.status,
    trigger: run.trigger.type,
    triggerDetail: run.trigger.detail,
    createdAt: new Date(run.createdAt).toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    durationMs: run.startedAt !== null && run.finishedAt !== null ? Math.round(run.finishedAt - run.startedAt) : null,
    syncRuns: members
      .filter((m) => m.syncRunId !== null)
      .map((m) => ({
        syncId: m.syncId,
        syncRunId: m.syncRunId as number,
        status: m.syncRun?.status ?? 'queued',
        finishedAt: m.syncRun?.finishedAt ?? null,
      })),
    members,
    terminatedBy: run.terminatedBy,
    reason: run.reason,
    resumedFrom: run.resumedFrom,
    resumedBy,
    concurrency: run.concurrency,
    deadlineMinutes: run.deadlineMinutes,
    cancelRequested: run.cancelRequested && !TERMINAL_SEQUENCE_RUN_STATUSES.includes(run.status),
  };
}

export interface RejectedRowView {
  key: unknown;
  op: RejectedRow['op'];
  reason: string;
}

export function rejectedRowView(row: RejectedRow): RejectedRowView {
  return { key: JSON.parse(row.key) as unknown, op: row.op, reason: row.reason };
}

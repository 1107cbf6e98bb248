/**
 * The audit log (SPEC §3.4): run history appended to tables in a schema of a source or destination
 * database (a connection's `auditLog: { schema }`), so data teams query their activation history
 * with SQL next to their models. Three tables, whose columns are a stable contract (README):
 *
 * - `sync_runs`: one row per finished sync run attempt, keyed by (run_id, attempt).
 * - `sequence_runs`: one row per finished sequence run, keyed by (run_id, finished_at) (a resumed
 *   run that finishes again is appended again).
 * - `rejected_rows`: the rows a sync run rejected, keyed by (run_id, attempt, row_index).
 *
 * Each run is appended exactly once: the rows are written in one transaction that does nothing
 * when the run's key is already there, driven from the outbox of finished runs (which survives
 * crashes), so a run whose append was cut short is appended when its entry is taken again.
 */
import type { OperationCounts, RejectedRow, SequenceRun, SyncRun } from './runs.js';

/** A connection's audit log setting. */
export interface AuditLogSettings {
  /** The schema the tables live in (SQLite, which has no schemas: the tables' name prefix, `<schema>_sync_runs`). */
  schema: string;
}

/** A finished sync run as `sync_runs` holds it. */
export interface AuditSyncRun {
  runId: number;
  attempt: number;
  syncId: number;
  /** The slug the sync ran as, also when it was deleted since. */
  sync: string | null;
  sequenceRunId: string | null;
  memberKey: string | null;
  status: SyncRun['status'];
  trigger: string;
  triggerDetail: string | null;
  /** ISO times. */
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  querySize: number;
  planned: OperationCounts;
  delivered: OperationCounts;
  rejected: OperationCounts;
  error: string | null;
}

/** A finished sequence run as `sequence_runs` holds it. */
export interface AuditSequenceRun {
  runId: string;
  sequenceId: number;
  /** The slug the sequence ran as, also when it was deleted since. */
  sequence: string | null;
  status: SequenceRun['status'];
  trigger: string;
  triggerDetail: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string;
  terminatedBy: string | null;
  reason: string | null;
  /**
   * The members as JSON text: `[{key, sync, syncDeleted, status, syncRunId, startedAt, finishedAt}]`;
   * `sync` is the slug the member's sync ran as, also when it was deleted before the run was
   * appended (`syncDeleted`: true).
   */
  members: string;
}

/** An audit log kept in one database; a connector kind that can keep one opens it. */
export interface AuditLogWriter {
  /**
   * Appends a finished sync run and its rejected rows (read page by page from `rejected`), in one
   * transaction; false, writing nothing, when the run's (run_id, attempt) is already there.
   */
  appendSyncRun(run: AuditSyncRun, rejected: () => AsyncIterable<RejectedRow[]>): Promise<boolean>;
  /** Appends a finished sequence run; false when it is already there. */
  appendSequenceRun(run: AuditSequenceRun): Promise<boolean>;
  close(): Promise<void>;
}

/** The audit log tables' names, for documentation and messages. */
export const AUDIT_LOG_TABLES = ['sync_runs', 'sequence_runs', 'rejected_rows'] as const;

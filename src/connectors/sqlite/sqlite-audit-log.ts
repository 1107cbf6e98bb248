/**
 * The audit log in a SQLite file (core/audit-log.ts). SQLite has no schemas: the tables are named
 * after the configured schema, `<schema>_sync_runs`, `<schema>_sequence_runs`,
 * `<schema>_rejected_rows`, with the same columns as elsewhere (times as ISO text). A run is appended
 * in one transaction whose first insert does nothing when the run is already there.
 */
import Database from 'better-sqlite3';
import type { AuditLogWriter, AuditSequenceRun, AuditSyncRun } from '../../core/audit-log.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { RejectedRow } from '../../core/runs.js';
import { beginImmediate, quoteIdent, type SqliteConstructor, type SqliteDatabase } from '../sql.js';

const SqliteDatabaseClass = Database as unknown as SqliteConstructor;

/** How long a write waits for another connection's lock on the audit log's file. */
const BUSY_TIMEOUT_MS = 5000;

export interface SqliteAuditLogOptions {
  path: string;
  schema: string;
  /** The connection's slug, for messages. */
  connection: string;
}

export class SqliteAuditLog implements AuditLogWriter {
  private readonly t: { syncRuns: string; sequenceRuns: string; rejectedRows: string };

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly options: SqliteAuditLogOptions,
  ) {
    const name = (table: string) => quoteIdent(`${options.schema}_${table}`);
    this.t = { syncRuns: name('sync_runs'), sequenceRuns: name('sequence_runs'), rejectedRows: name('rejected_rows') };
  }

  static async open(options: SqliteAuditLogOptions): Promise<SqliteAuditLog> {
    let db: SqliteDatabase;
    try {
      db = new SqliteDatabaseClass(options.path, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    } catch (thrown) {
      throw new LockstepError(
        ErrorCode.Connection,
        `cannot open the audit log of connection "${options.connection}" at ${options.path}: ${toError(thrown).message} — check the connection's path`,
        { cause: toError(thrown) },
      );
    }
    const log = new SqliteAuditLog(db, options);
    try {
      log.ensureTables();
    } catch (thrown) {
      db.close();
      throw log.failure(thrown, 'create its tables');
    }
    return log;
  }

  async appendSyncRun(run: AuditSyncRun, rejected: () => AsyncIterable<RejectedRow[]>): Promise<boolean> {
    return this.transaction(this.t.syncRuns, async () => {
      const inserted = this.db
        .prepare(
          `insert into ${this.t.syncRuns} (run_id, attempt, sync_id, sync, sequence_run_id, member_key, status, trigger_type, trigger_detail,
             created_at, started_at, finished_at, query_size, planned_added, planned_changed, planned_removed,
             delivered_added, delivered_changed, delivered_removed, rejected_added, rejected_changed, rejected_removed, error, recorded_at)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           on conflict (run_id, attempt) do nothing`,
        )
        .run(
          run.runId, run.attempt, run.syncId, run.sync, run.sequenceRunId, run.memberKey, run.status, run.trigger, run.triggerDetail,
          run.createdAt, run.startedAt, run.finishedAt, run.querySize,
          run.planned.addedCount, run.planned.changedCount, run.planned.removedCount,
          run.delivered.addedCount, run.delivered.changedCount, run.delivered.removedCount,
          run.rejected.addedCount, run.rejected.changedCount, run.rejected.removedCount, run.error, new Date().toISOString(),
        );
      if (inserted.changes !== 1) return false;
      const insert = this.db.prepare(`insert into ${this.t.rejectedRows} (run_id, attempt, row_index, primary_key, operation, reason) values (?, ?, ?, ?, ?, ?)`);
      let number = 0;
      for await (const page of rejected()) for (const row of page) insert.run(run.runId, run.attempt, ++number, row.key, row.op, row.reason);
      return true;
    });
  }

  async appendSequenceRun(run: AuditSequenceRun): Promise<boolean> {
    return this.transaction(this.t.sequenceRuns, async () => {
      const inserted = this.db
        .prepare(
          `insert into ${this.t.sequenceRuns} (run_id, sequence_id, sequence, status, trigger_type, trigger_detail, created_at, started_at, finished_at, terminated_by, reason, members, recorded_at)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           on conflict (run_id, finished_at) do nothing`,
        )
        .run(run.runId, run.sequenceId, run.sequence, run.status, run.trigger, run.triggerDetail, run.createdAt, run.startedAt, run.finishedAt, run.terminatedBy, run.reason, run.members, new Date().toISOString());
      return inserted.changes === 1;
    });
  }

  async close(): Promise<void> {
    this.db.close();
  }

  private ensureTables(): void {
    this.db.exec(`
      create table if not exists ${this.t.syncRuns} (
        run_id integer not null, attempt integer not null, sync_id integer not null, sync text,
        sequence_run_id text, member_key text, status text not null, trigger_type text not null, trigger_detail text,
        created_at text not null, started_at text, finished_at text, query_size integer not null,
        planned_added integer not null, planned_changed integer not null, planned_removed integer not null,
        delivered_added integer not null, delivered_changed integer not null, delivered_removed integer not null,
        rejected_added integer not null, rejected_changed integer not null, rejected_removed integer not null,
        error text, recorded_at text not null,
        primary key (run_id, attempt));
      create table if not exists ${this.t.sequenceRuns} (
        run_id text not null, sequence_id integer not null, sequence text, status text not null,
        trigger_type text not null, trigger_detail text, created_at text not null, started_at text,
        finished_at text not null, terminated_by text, reason text, members text not null, recorded_at text not null,
        primary key (run_id, finished_at));
      create table if not exists ${this.t.rejectedRows} (
        run_id integer not null, attempt integer not null, row_index integer not null,
        primary_key text not null, operation text not null, reason text not null,
        primary key (run_id, attempt, row_index));`);
  }

  private async transaction<T>(table: string, work: () => Promise<T>): Promise<T> {
    beginImmediate(this.db, BUSY_TIMEOUT_MS);
    try {
      const result = await work();
      this.db.exec('commit');
      return result;
    } catch (thrown) {
      if (this.db.inTransaction) this.db.exec('rollback');
      throw this.failure(thrown, `append to ${table}`);
    }
  }

  private failure(thrown: unknown, what: string): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const transient = /SQLITE_BUSY|database is locked/i.test(error.message);
    return new LockstepError(
      transient ? ErrorCode.Transient : ErrorCode.Schema,
      `the audit log of connection "${this.options.connection}" (${this.options.path}) could not ${what}: ${error.message}`,
      { cause: error },
    );
  }
}

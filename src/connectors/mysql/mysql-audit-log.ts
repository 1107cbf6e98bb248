/**
 * The audit log in MySQL or MariaDB (core/audit-log.ts). A MySQL schema is a database: the tables
 * live in the database named by `auditLog.schema`, created when missing. A run is appended in one
 * transaction that stops at its first insert when the run's key is already there (a duplicate
 * key), so appending twice never duplicates it. Missing privileges are reported with the
 * statement that grants them.
 */
import type { AuditLogWriter, AuditSequenceRun, AuditSyncRun } from '../../core/audit-log.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { RejectedRow } from '../../core/runs.js';
import {
  classifyMysqlError,
  createMysqlPool,
  describeMysqlUrl,
  MysqlFailure,
  mysqlConnectionHint,
  mysqlErrno,
  quoteMysqlIdent,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlResultHeader,
} from './mysql-client.js';

export interface MysqlAuditLogOptions {
  url: string;
  schema: string;
  connection: string;
  connectTimeoutMs: number;
}

/** MySQL's "access denied" errors: to a database, a table, a command. */
const ACCESS_DENIED = new Set([1044, 1142, 1143, 1227]);
const CHUNK = 500;
/** ER_DUP_ENTRY. */
const DUPLICATE_KEY = 1062;
/** ISO time → DATETIME(3) text in UTC. */
const datetime = (iso: string | null) => (iso === null ? null : iso.replace('T', ' ').replace('Z', ''));

export class MysqlAuditLog implements AuditLogWriter {
  private constructor(
    private readonly pool: MysqlPool,
    private readonly connection: MysqlPoolConnection,
    private readonly options: MysqlAuditLogOptions,
    private readonly user: string,
  ) {}

  static async open(options: MysqlAuditLogOptions): Promise<MysqlAuditLog> {
    const pool = createMysqlPool(options.url, 1, options.connectTimeoutMs);
    let connection: MysqlPoolConnection;
    try {
      connection = await pool.getConnection();
    } catch (thrown) {
      await pool.end().catch(() => undefined);
      const error = toError(thrown);
      throw new LockstepError(
        classifyMysqlError(error) === MysqlFailure.Transient ? ErrorCode.Transient : ErrorCode.Connection,
        `cannot connect to the audit log of connection "${options.connection}" (${describeMysqlUrl(options.url)}): ${error.message} — ${mysqlConnectionHint(error)}`,
        { cause: error },
      );
    }
    try {
      await connection.query("SET SESSION time_zone = '+00:00'");
      const [[who]] = await connection.execute<Array<{ user: string }>>('select current_user() as user', []);
      // `name@host` as an account a GRANT names: 'name'@'host'.
      const account = (who?.user ?? '').replace(/^(.*)@([^@]*)$/, (_all, name: string, host: string) => `'${name}'@'${host}'`);
      const log = new MysqlAuditLog(pool, connection, options, account || 'CURRENT_USER');
      await log.ensureTables();
      return log;
    } catch (thrown) {
      connection.release();
      await pool.end().catch(() => undefined);
      throw thrown;
    }
  }

  async appendSyncRun(run: AuditSyncRun, rejected: () => AsyncIterable<RejectedRow[]>): Promise<boolean> {
    const db = quoteMysqlIdent(this.options.schema);
    return this.transaction('sync_runs', async () => {
      const inserted = await this.firstInsert(
        `insert into ${db}.sync_runs (run_id, attempt, sync_id, sync, sequence_run_id, member_key, status, trigger_type, trigger_detail,
           created_at, started_at, finished_at, query_size, planned_added, planned_changed, planned_removed,
           delivered_added, delivered_changed, delivered_removed, rejected_added, rejected_changed, rejected_removed, error)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          run.runId, run.attempt, run.syncId, run.sync, run.sequenceRunId, run.memberKey, run.status, run.trigger, run.triggerDetail,
          datetime(run.createdAt), datetime(run.startedAt), datetime(run.finishedAt), run.querySize,
          run.planned.addedCount, run.planned.changedCount, run.planned.removedCount,
          run.delivered.addedCount, run.delivered.changedCount, run.delivered.removedCount,
          run.rejected.addedCount, run.rejected.changedCount, run.rejected.removedCount, run.error,
        ],
      );
      if (!inserted) return false;
      let number = 0;
      for await (const page of rejected()) {
        for (let at = 0; at < page.length; at += CHUNK) {
          const chunk = page.slice(at, at + CHUNK);
          await this.connection.execute(
            `insert into ${db}.rejected_rows (run_id, attempt, row_index, primary_key, operation, reason) values ${chunk.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
            chunk.flatMap((r) => [run.runId, run.attempt, ++number, r.key, r.op, r.reason]),
          );
        }
      }
      return true;
    });
  }

  async appendSequenceRun(run: AuditSequenceRun): Promise<boolean> {
    const db = quoteMysqlIdent(this.options.schema);
    return this.transaction('sequence_runs', async () => {
      const inserted = await this.firstInsert(
        `insert into ${db}.sequence_runs (run_id, sequence_id, sequence, status, trigger_type, trigger_detail, created_at, started_at, finished_at, terminated_by, reason, members)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [run.runId, run.sequenceId, run.sequence, run.status, run.trigger, run.triggerDetail, datetime(run.createdAt), datetime(run.startedAt), datetime(run.finishedAt), run.terminatedBy, run.reason, run.members],
      );
      return inserted;
    });
  }

  async close(): Promise<void> {
    this.connection.release();
    await this.pool.end().catch(() => undefined);
  }

  private async ensureTables(): Promise<void> {
    const { schema } = this.options;
    const db = quoteMysqlIdent(schema);
    const [found] = await this.connection.execute<unknown[]>('select 1 from information_schema.schemata where schema_name = ?', [schema]);
    if (found.length === 0) {
      await this.connection.query(`create database ${db}`).catch((thrown: unknown) => {
        throw this.failure(thrown, `create database ${schema}`, `GRANT CREATE ON ${db}.* TO ${this.user}, or create it: CREATE DATABASE ${db}`);
      });
    }
    const statements = [
      `create table if not exists ${db}.sync_runs (
        run_id bigint not null, attempt int not null, sync_id int not null, sync varchar(255),
        sequence_run_id varchar(64), member_key varchar(255), status varchar(32) not null, trigger_type varchar(32) not null, trigger_detail text,
        created_at datetime(3) not null, started_at datetime(3), finished_at datetime(3), query_size bigint not null,
        planned_added bigint not null, planned_changed bigint not null, planned_removed bigint not null,
        delivered_added bigint not null, delivered_changed bigint not null, delivered_removed bigint not null,
        rejected_added bigint not null, rejected_changed bigint not null, rejected_removed bigint not null,
        error text, recorded_at datetime(3) not null default current_timestamp(3),
        primary key (run_id, attempt))`,
      `create table if not exists ${db}.sequence_runs (
        run_id varchar(64) not null, sequence_id int not null, sequence varchar(255), status varchar(32) not null,
        trigger_type varchar(32) not null, trigger_detail text, created_at datetime(3) not null, started_at datetime(3),
        finished_at datetime(3) not null, terminated_by varchar(255), reason text, members longtext not null,
        recorded_at datetime(3) not null default current_timestamp(3),
        primary key (run_id, finished_at))`,
      `create table if not exists ${db}.rejected_rows (
        run_id bigint not null, attempt int not null, row_index int not null,
        primary_key text not null, operation varchar(16) not null, reason text not null,
        primary key (run_id, attempt, row_index))`,
    ];
    for (const sql of statements) {
      await this.connection.query(sql).catch((thrown: unknown) => {
        throw this.failure(thrown, `create tables in database ${schema}`, `GRANT CREATE, SELECT, INSERT ON ${db}.* TO ${this.user}`);
      });
    }
  }

  /** Inserts a run's row; false when its key is already there (needs INSERT only, unlike an upsert). */
  private async firstInsert(sql: string, values: unknown[]): Promise<boolean> {
    try {
      const [result] = await this.connection.execute<MysqlResultHeader>(sql, values);
      return result.affectedRows === 1;
    } catch (thrown) {
      if (mysqlErrno(thrown) === DUPLICATE_KEY) return false;
      throw thrown;
    }
  }

  private async transaction<T>(table: string, work: () => Promise<T>): Promise<T> {
    await this.connection.query('start transaction');
    try {
      const result = await work();
      await this.connection.query('commit');
      return result;
    } catch (thrown) {
      await this.connection.query('rollback').catch(() => undefined);
      throw this.failure(thrown, `append to ${this.options.schema}.${table}`, `GRANT SELECT, INSERT ON ${quoteMysqlIdent(this.options.schema)}.* TO ${this.user}`);
    }
  }

  private failure(thrown: unknown, what: string, grant: string): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const where = `the audit log of connection "${this.options.connection}" (${describeMysqlUrl(this.options.url)})`;
    if (ACCESS_DENIED.has(mysqlErrno(error) ?? 0)) {
      return new LockstepError(ErrorCode.Schema, `${where}: user ${this.user} may not ${what} (${error.message}) — ${grant}`, { cause: error });
    }
    const transient = classifyMysqlError(error) === MysqlFailure.Transient;
    return new LockstepError(transient ? ErrorCode.Transient : ErrorCode.Schema, `${where}: could not ${what}: ${error.message}`, { cause: error });
  }
}

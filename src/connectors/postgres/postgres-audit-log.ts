/**
 * The audit log in a PostgreSQL database (core/audit-log.ts): three tables in the configured schema,
 * created when missing. A run is appended in one transaction whose first insert does nothing when
 * the run is already there (`on conflict do nothing`), so appending twice never duplicates it.
 * Missing privileges are reported with the statement that grants them.
 */
import pg from 'pg';
import type { AuditLogWriter, AuditSequenceRun, AuditSyncRun } from '../../core/audit-log.js';
import { postgresDriverUrl } from '../../core/connections.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { RejectedRow } from '../../core/runs.js';
import { classifyPostgresError, describePostgresUrl, errorCode, PostgresFailure, postgresConnectionHint, quoteIdent } from '../sql.js';
import { clientTimeouts, type PostgresTimeouts, refusedStartupTimeout } from './timeouts.js';

export interface PostgresAuditLogOptions {
  url: string;
  schema: string;
  /** The connection's slug, for messages. */
  connection: string;
  timeouts: PostgresTimeouts;
}

/** Rejected rows per insert statement. */
const CHUNK = 1000;

/** The tables, with their stable columns (README, "Run history in your warehouse"). */
function tableStatements(schema: string): Array<{ table: string; sql: string }> {
  const s = quoteIdent(schema);
  return [
    {
      table: 'sync_runs',
      sql: `create table ${s}.sync_runs (
        run_id bigint not null, attempt integer not null, sync_id integer not null, sync text,
        sequence_run_id text, member_key text, status text not null, trigger_type text not null, trigger_detail text,
        created_at timestamptz not null, started_at timestamptz, finished_at timestamptz, query_size bigint not null,
        planned_added bigint not null, planned_changed bigint not null, planned_removed bigint not null,
        delivered_added bigint not null, delivered_changed bigint not null, delivered_removed bigint not null,
        rejected_added bigint not null, rejected_changed bigint not null, rejected_removed bigint not null,
        error text, recorded_at timestamptz not null default now(),
        primary key (run_id, attempt))`,
    },
    {
      table: 'sequence_runs',
      sql: `create table ${s}.sequence_runs (
        run_id text not null, sequence_id integer not null, sequence text, status text not null,
        trigger_type text not null, trigger_detail text, created_at timestamptz not null, started_at timestamptz,
        finished_at timestamptz not null, terminated_by text, reason text, members jsonb not null,
        recorded_at timestamptz not null default now(),
        primary key (run_id, finished_at))`,
    },
    {
      table: 'rejected_rows',
      sql: `create table ${s}.rejected_rows (
        run_id bigint not null, attempt integer not null, row_index integer not null,
        primary_key text not null, operation text not null, reason text not null,
        primary key (run_id, attempt, row_index))`,
    },
  ];
}

export class PostgresAuditLog implements AuditLogWriter {
  private constructor(
    private readonly client: pg.Client,
    private readonly options: PostgresAuditLogOptions,
    private readonly who: { user: string; database: string },
  ) {}

  /** Connects and creates the schema and tables when missing; a missing privilege names its GRANT. */
  static async open(options: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
    const where = describePostgresUrl(options.url);
    let client: pg.Client | null = null;
    try {
      // Inside the try: the driver reads the URL's certificate files here, and may fail to.
      client = new pg.Client({ connectionString: postgresDriverUrl(options.url), ...clientTimeouts(options.timeouts, options.url) });
      client.on('error', () => undefined);
      await client.connect();
    } catch (thrown) {
      await client?.end().catch(() => undefined);
      if (refusedStartupTimeout(thrown, options.url)) return PostgresAuditLog.open(options);
      const error = toError(thrown);
      throw new LockstepError(
        classifyPostgresError(error) === PostgresFailure.Transient ? ErrorCode.Transient : ErrorCode.Connection,
        `cannot connect to the audit log of connection "${options.connection}" (${where}): ${error.message} — ${postgresConnectionHint(error)}`,
        { cause: error },
      );
    }
    try {
      const who = (await client.query('select current_user as "user", current_database() as database')).rows[0] as { user: string; database: string };
      const log = new PostgresAuditLog(client, options, who);
      await log.ensureTables();
      return log;
    } catch (thrown) {
      await client.end().catch(() => undefined);
      throw thrown;
    }
  }

  async appendSyncRun(run: AuditSyncRun, rejected: () => AsyncIterable<RejectedRow[]>): Promise<boolean> {
    const s = quoteIdent(this.options.schema);
    return this.transaction('sync_runs', async () => {
      const inserted = await this.client.query(
        `insert into ${s}.sync_runs (run_id, attempt, sync_id, sync, sequence_run_id, member_key, status, trigger_type, trigger_detail,
           created_at, started_at, finished_at, query_size, planned_added, planned_changed, planned_removed,
           delivered_added, delivered_changed, delivered_removed, rejected_added, rejected_changed, rejected_removed, error)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
         on conflict (run_id, attempt) do nothing`,
        [
          run.runId, run.attempt, run.syncId, run.sync, run.sequenceRunId, run.memberKey, run.status, run.trigger, run.triggerDetail,
          run.createdAt, run.startedAt, run.finishedAt, run.querySize,
          run.planned.addedCount, run.planned.changedCount, run.planned.removedCount,
          run.delivered.addedCount, run.delivered.changedCount, run.delivered.removedCount,
          run.rejected.addedCount, run.rejected.changedCount, run.rejected.removedCount, run.error,
        ],
      );
      if (inserted.rowCount !== 1) return false;
      let number = 0;
      for await (const page of rejected()) {
        for (let at = 0; at < page.length; at += CHUNK) {
          const chunk = page.slice(at, at + CHUNK);
          await this.client.query(
            `insert into ${s}.rejected_rows (run_id, attempt, row_index, primary_key, operation, reason)
             select $1, $2, * from unnest($3::integer[], $4::text[], $5::text[], $6::text[])`,
            [run.runId, run.attempt, chunk.map(() => ++number), chunk.map((r) => r.key), chunk.map((r) => r.op), chunk.map((r) => r.reason)],
          );
        }
      }
      return true;
    });
  }

  async appendSequenceRun(run: AuditSequenceRun): Promise<boolean> {
    const s = quoteIdent(this.options.schema);
    return this.transaction('sequence_runs', async () => {
      const inserted = await this.client.query(
        `insert into ${s}.sequence_runs (run_id, sequence_id, sequence, status, trigger_type, trigger_detail, created_at, started_at, finished_at, terminated_by, reason, members)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)
         on conflict (run_id, finished_at) do nothing`,
        [run.runId, run.sequenceId, run.sequence, run.status, run.trigger, run.triggerDetail, run.createdAt, run.startedAt, run.finishedAt, run.terminatedBy, run.reason, run.members],
      );
      return inserted.rowCount === 1;
    });
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  private async ensureTables(): Promise<void> {
    const { schema } = this.options;
    // Checked before creating: CREATE ... IF NOT EXISTS needs the privilege even when the object exists.
    const exists = await this.client.query('select 1 from pg_namespace where nspname = $1', [schema]);
    if (exists.rowCount === 0) {
      await this.client.query(`create schema ${quoteIdent(schema)}`).catch((thrown: unknown) => {
        throw this.failure(thrown, 'create the schema', [
          `GRANT CREATE ON DATABASE ${quoteIdent(this.who.database)} TO ${quoteIdent(this.who.user)}`,
          `or create it for this user: CREATE SCHEMA ${quoteIdent(schema)} AUTHORIZATION ${quoteIdent(this.who.user)}`,
        ]);
      });
    }
    for (const { table, sql } of tableStatements(schema)) {
      const found = await this.client.query('select to_regclass($1) as t', [`${quoteIdent(schema)}.${quoteIdent(table)}`]);
      if ((found.rows[0] as { t: string | null }).t !== null) continue;
      await this.client.query(sql).catch((thrown: unknown) => {
        // Two processes creating the tables at once: the other one made it.
        if (errorCode(thrown) === '42P07' || errorCode(thrown) === '23505') return;
        throw this.failure(thrown, `create table ${schema}.${table}`, [`GRANT USAGE, CREATE ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(this.who.user)}`]);
      });
    }
  }

  private async transaction<T>(table: string, work: () => Promise<T>): Promise<T> {
    await this.client.query('begin');
    try {
      const result = await work();
      await this.client.query('commit');
      return result;
    } catch (thrown) {
      await this.client.query('rollback').catch(() => undefined);
      throw this.failure(thrown, `append to ${this.options.schema}.${table}`, [
        `GRANT USAGE ON SCHEMA ${quoteIdent(this.options.schema)} TO ${quoteIdent(this.who.user)}; GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA ${quoteIdent(this.options.schema)} TO ${quoteIdent(this.who.user)}`,
      ]);
    }
  }

  /** An error naming what failed; a missing privilege with the statements that grant it. */
  private failure(thrown: unknown, what: string, grants: string[]): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const where = `the audit log of connection "${this.options.connection}" (${describePostgresUrl(this.options.url)})`;
    if (errorCode(error) === '42501') {
      return new LockstepError(ErrorCode.Schema, `${where}: user "${this.who.user}" may not ${what} (${error.message}) — ${grants.join('; ')}`, { cause: error });
    }
    const transient = classifyPostgresError(error) === PostgresFailure.Transient;
    return new LockstepError(transient ? ErrorCode.Transient : ErrorCode.Schema, `${where}: could not ${what}: ${error.message}`, { cause: error });
  }
}

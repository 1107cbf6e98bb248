import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { PlannerMode, ReadOptions, RowBatch, Source, Value, WarehousePlannerAccess } from '../../core/ports.js';
import { canonicalJsonText, checkBatchSize, normalizeBigInt, normalizeIntegerText, normalizeValue, timestampTextToIso } from '../values.js';
import {
  classifyMysqlError,
  createMysqlPool,
  describeMysqlUrl,
  MysqlFailure,
  mysqlConnectionHint,
  MysqlType,
  sessionConnection,
  type MysqlCoreConnection,
  type MysqlField,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlTimeouts,
  stalledError,
  withDeadline,
} from './mysql-client.js';
import { mysqlCursor } from '../cursor-sql.js';

export interface MysqlSourceOptions {
  /** `mysql://user:password@host:port/database` (or `mariadb://`); may carry mysql2 options as `?name=value`. */
  url: string;
  /** Reads running at once at most, each on its own connection (default: 8). */
  maxConnections?: number;
  /** How long to wait for the server (default: 10 s to connect, 30 min for the model's query). */
  timeouts?: Partial<MysqlTimeouts>;
  /** Where syncs of this source keep their snapshot (`store` by default; see mysql-planner.ts). */
  planner?: { mode: PlannerMode; schema: string };
}

/**
 * Reads models from MySQL or MariaDB, streaming the result: rows are taken off the connection as
 * they arrive and the connection stops reading (the server waits) whenever a batch is full and
 * not yet taken, so one batch and what the socket holds are all that is ever in memory. A read
 * that stops early closes its connection, which ends the query on the server.
 *
 * Values, as values.ts has every source give them: BIGINT as a number, or as its decimal text
 * beyond 2^53; DECIMAL as printed (`12.30`); DATETIME and TIMESTAMP as ISO-8601 UTC (the session's
 * time zone is UTC, and a DATETIME is taken as UTC); DATE as `YYYY-MM-DD`; a zero date, or one
 * with a zero year, month or day, as null (see hasZeroPart); JSON as compact text;
 * binary strings and BLOBs as base64. TINYINT(1) — MySQL's BOOLEAN — and BIT(1) read as booleans
 * when they hold 0 or 1 (a TINYINT(1) holding another number stays that number); wider BITs as
 * numbers (as their decimal text beyond 2^53, as BIGINT). SET as its members joined by commas
 * (`a,c`; the empty set as the empty text), as MySQL prints it.
 */
export class MysqlSource implements Source {
  readonly cursorSql = mysqlCursor;
  private readonly pool: MysqlPool;
  private readonly where: string;
  private readonly active = new Set<MysqlPoolConnection>();
  /** Connections whose session is set up (time zone, read-only, timeouts). */
  private readonly ready = new WeakSet<MysqlCoreConnection>();
  private readonly timeouts: MysqlTimeouts;
  readonly warehousePlanner?: WarehousePlannerAccess;

  constructor(options: MysqlSourceOptions) {
    this.where = describeMysqlUrl(options.url);
    this.timeouts = { connectMs: 10_000, statementMs: 30 * 60_000, ...options.timeouts };
    this.pool = createMysqlPool(options.url, options.maxConnections ?? 8, this.timeouts.connectMs);
    const planner = options.planner;
    if (planner && planner.mode !== 'store') {
      const { mode, schema } = planner;
      const { url } = options;
      this.warehousePlanner = {
        mode,
        schema,
        open: async (signal, openOptions) => {
          signal?.throwIfAborted();
          // Its own connection, read-write, held for the run (the reads' pool is read-only).
          const pool = createMysqlPool(url, 1, this.timeouts.connectMs);
          let connection: MysqlPoolConnection;
          try {
            connection = await sessionConnection(pool, new WeakSet(), `source ${this.where}`, async () => undefined, (thrown) => this.queryError(thrown), this.timeouts);
          } catch (error) {
            await pool.end().catch(() => undefined);
            throw error;
          }
          try {
            const { MysqlPlanner } = await import('./mysql-planner.js');
            return await MysqlPlanner.open(pool, connection, schema, this.where, openOptions);
          } catch (error) {
            connection.destroy();
            await pool.end().catch(() => undefined);
            throw error;
          }
        },
      };
    }
  }

  /** Creates the source and checks that the server answers with these credentials. */
  static async connect(options: MysqlSourceOptions): Promise<MysqlSource> {
    const source = new MysqlSource(options);
    try {
      (await source.connection()).release();
    } catch (error) {
      await source.close();
      throw error;
    }
    return source;
  }

  async *read(query: string, options: ReadOptions): AsyncGenerator<RowBatch> {
    const batchSize = checkBatchSize(options.batchSize);
    const { signal } = options;
    signal?.throwIfAborted();
    const connection = await this.connection();
    this.active.add(connection);
    const result = new StreamedResult(connection.connection, query, batchSize, signal);
    try {
      let yielded = false;
      for (;;) {
        // A server that sends nothing for the statement timeout is given up on (and so is a cancelled read).
        const ms = this.timeouts.statementMs;
        const rows = await withDeadline(connection, ms, () => stalledError(`reading the model's query from source ${this.where}`, ms), result.next(), signal);
        signal?.throwIfAborted();
        if (rows === null) break;
        yielded = true;
        yield { columns: result.columns, rows, jsonColumns: result.jsonColumns };
        signal?.throwIfAborted();
      }
      // An empty result still tells the caller its columns.
      if (!yielded) yield { columns: result.columns, rows: [], jsonColumns: result.jsonColumns };
    } catch (thrown) {
      if (signal?.aborted || thrown instanceof LockstepError) throw thrown;
      throw this.queryError(thrown);
    } finally {
      result.dispose();
      this.active.delete(connection);
      // A connection in the middle of a result cannot be used again: closing it ends the query.
      if (result.finished && !result.lostConnection) connection.release();
      else connection.destroy();
    }
  }

  async close(): Promise<void> {
    for (const connection of this.active) connection.destroy();
    this.active.clear();
    await this.pool.end().catch(() => undefined);
  }

  private async connection(): Promise<MysqlPoolConnection> {
    return sessionConnection(
      this.pool,
      this.ready,
      `source ${this.where}`,
      async (connection) => {
        // UTC, so TIMESTAMPs read as the instants they are; read-only, since a model only reads; the
        // server waits as long as a slow destination holds the stream back (its default is 60 s); and
        // each read its own transaction, whatever the server's default: a pooled connection left in a
        // transaction would keep the tables it read locked (the warehouse planner could not replace
        // its table, waiting on that lock for a day) and read the same snapshot again.
        await connection.query("SET SESSION autocommit = 1, time_zone = '+00:00', net_write_timeout = 86400");
        await connection.query('SET SESSION TRANSACTION READ ONLY');
      },
      (thrown) => this.queryError(thrown),
      this.timeouts,
    );
  }

  private queryError(thrown: unknown): LockstepError {
    const error = toError(thrown);
    switch (classifyMysqlError(error)) {
      case MysqlFailure.Transient:
        return new LockstepError(
          ErrorCode.Transient,
          `reading from source ${this.where} failed: ${error.message} — this is usually temporary; the read can be retried`,
          { cause: error },
        );
      case MysqlFailure.Connection:
        return new LockstepError(ErrorCode.Connection, `lost the connection to source ${this.where}: ${error.message} — ${mysqlConnectionHint(error)}`, {
          cause: error,
        });
      case MysqlFailure.Data:
      case MysqlFailure.Statement:
        return new LockstepError(
          ErrorCode.Query,
          `the model's query failed on source ${this.where}: ${error.message} — check the model's query (run it with the mysql client to see the full error)`,
          { cause: error },
        );
    }
  }
}

export type Converter = (value: unknown) => Value;

/** How each column's values become Lockstep values, from what the server says of the column. */
export function converterFor(field: MysqlField): Converter {
  if (field.extendedFormat === 'json') return (v) => (typeof v === 'string' ? canonicalJsonText(v) : normalizeValue(v));
  switch (field.columnType) {
    case MysqlType.LongLong:
      return (v) => (typeof v === 'string' ? normalizeIntegerText(v) : normalizeValue(v));
    case MysqlType.DateTime:
    case MysqlType.Timestamp:
      return (v) => (typeof v !== 'string' ? normalizeValue(v) : hasZeroPart(v) ? null : timestampTextToIso(v));
    case MysqlType.Date:
    case MysqlType.NewDate:
      return (v) => (typeof v === 'string' && hasZeroPart(v) ? null : normalizeValue(v));
    case MysqlType.Json:
      return (v) => (typeof v === 'string' ? canonicalJsonText(v) : normalizeValue(v));
    case MysqlType.Tiny:
      return field.columnLength === 1 ? (v) => (v === 0 ? false : v === 1 ? true : normalizeValue(v)) : normalizeValue;
    case MysqlType.Bit:
      return field.columnLength === 1 ? (v) => (Buffer.isBuffer(v) ? v[0] === 1 : normalizeValue(v)) : bitsToNumber;
    default:
      // DECIMAL arrives as printed; binary strings as Buffers (base64 in normalizeValue).
      return normalizeValue;
  }
}

/**
 * A zero date (`0000-00-00`), or a date with a zero year, month or day (`0000-01-15`, `2024-00-00`),
 * which MySQL stores when sql_mode allows them: no calendar day (the calendar has no year 0), and no
 * other database takes them. Read as null, as JDBC's zeroDateTimeBehavior=convertToNull does for the
 * zero date (the warehouse planner's `zeroDateAsNull` agrees).
 */
function hasZeroPart(text: string): boolean {
  return text.startsWith('0000') || text.startsWith('00', 5) || text.startsWith('00', 8);
}

/** A BIT(n) value (big-endian bytes) as its number, or its decimal text beyond 2^53. */
function bitsToNumber(value: unknown): Value {
  if (!Buffer.isBuffer(value)) return normalizeValue(value);
  let n = 0n;
  for (const byte of value) n = (n << 8n) | BigInt(byte);
  return normalizeBigInt(n);
}

/**
 * One query's result as it arrives, handed out in batches. The connection is paused as soon as a
 * batch is complete and resumed when the batch is taken.
 */
class StreamedResult {
  columns: string[] = [];
  /** The columns of JSON values (MariaDB marks them only in its extended metadata). */
  jsonColumns: string[] | undefined;
  /** The result was read to its end (or failed): the connection can go back to the pool, unless `lostConnection`. */
  finished = false;
  /** The connection ended under the result: it is never used again. */
  lostConnection = false;
  private converters: Converter[] = [];
  private pending: Value[][] = [];
  private error: unknown = null;
  private paused = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly connection: MysqlCoreConnection,
    query: string,
    private readonly batchSize: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    connection
      .query({ sql: query, rowsAsArray: true })
      .on('fields', (fields) => {
        this.columns = (fields ?? []).map((f) => f.name);
        const json = (fields ?? []).filter((f) => f.extendedFormat === 'json' || f.columnType === MysqlType.Json).map((f) => f.name);
        this.jsonColumns = json.length > 0 ? json : undefined;
        this.converters = (fields ?? []).map(converterFor);
      })
      .on('result', (row) => {
        if (!Array.isArray(row)) {
          this.error ??= new Error('the query does not return rows (a model must be a SELECT)');
          return;
        }
        const values = new Array<Value>(row.length);
        for (let i = 0; i < row.length; i++) values[i] = (this.converters[i] ?? normalizeValue)(row[i]);
        this.pending.push(values);
        if (this.pending.length >= this.batchSize && !this.paused) {
          this.paused = true;
          this.connection.pause();
          this.notify();
        }
      })
      .on('error', (error) => {
        this.error = error;
        this.finished = true;
        this.notify();
      })
      .on('end', () => {
        this.finished = true;
        this.notify();
      });
    // A query without a callback is not told when its connection ends (the server closed it:
    // KILL, a restart, a failover): the driver tells the connection instead. Without this the read
    // would wait for the statement timeout.
    connection.on('error', this.lost);
    connection.on('end', this.lost);
    signal?.addEventListener('abort', this.notify, { once: true });
  }

  /** The next batch, or null at the end. Throws the query's error. */
  async next(): Promise<Value[][] | null> {
    while (this.pending.length < this.batchSize && !this.finished && !this.signal?.aborted) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.error) throw this.error;
    if (this.signal?.aborted) return null;
    if (this.pending.length === 0) return null;
    const rows = this.pending.length > this.batchSize ? this.pending.splice(0, this.batchSize) : this.pending;
    if (rows === this.pending) this.pending = [];
    if (this.paused && this.pending.length < this.batchSize) {
      this.paused = false;
      this.connection.resume();
    }
    return rows;
  }

  /** Stops listening to the signal and the connection. */
  dispose(): void {
    this.signal?.removeEventListener('abort', this.notify);
    this.connection.off('error', this.lost);
    this.connection.off('end', this.lost);
  }

  /** The connection ended before the result did. */
  private readonly lost = (error?: unknown) => {
    if (this.finished) return;
    this.lostConnection = true;
    this.error ??= error instanceof Error ? error : Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
    this.finished = true;
    this.notify();
  };

  private readonly notify = () => {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  };
}

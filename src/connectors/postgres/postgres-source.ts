import pg from 'pg';
import Cursor from 'pg-cursor';
import { postgresDriverUrl } from '../../core/connections.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import { CopyTextRows, type TextParser } from '../copy-text.js';
import { CopyOut } from './postgres-copy-out.js';
import { PostgresPlanner } from './postgres-planner.js';
import { ONE_ORDER } from './postgres-staging.js';
import {
  clientTimeouts,
  connectTimeoutError,
  describeDuration,
  destroySocket,
  hostPort,
  isConnectTimeout,
  type PostgresTimeouts,
  refusedStartupTimeout,
  withDeadline,
} from './timeouts.js';
import type { EncodedRows, PlannerMode, ReadOptions, RowBatch, Source, Value, WarehousePlannerAccess } from '../../core/ports.js';
import {
  classifyPostgresError,
  describePostgresUrl,
  PostgresFailure,
  postgresConnectionHint,
  withHint,
} from '../sql.js';
import {
  canonicalJsonText,
  checkBatchSize,
  normalizeIntegerText,
  normalizeValue,
  RowBatcher,
  timestampTextToIso,
} from '../values.js';
import { postgresCursor } from '../cursor-sql.js';

export interface PostgresSourceOptions {
  /** `postgres://user:password@host:port/database`; may carry `?sslmode=...` and other libpq settings. */
  url: string;
  /** How long to wait for the server (default: 10 s to connect, 30 min for the model's query). */
  timeouts?: Partial<PostgresTimeouts>;
  /** Where syncs of this source keep their snapshot (default: in Lockstep's store). */
  planner?: { mode: PlannerMode; schema: string };
}

const DEFAULT_TIMEOUTS: PostgresTimeouts = { connectMs: 10_000, statementMs: 30 * 60_000 };

/** PostgreSQL type OIDs we parse ourselves rather than with pg's defaults. */
const Oid = {
  Int8: 20,
  Json: 114,
  Jsonb: 3802,
  Date: 1082,
  Timestamp: 1114,
  TimestampTz: 1184,
  Interval: 1186,
  Int8Array: 1016,
  NumericArray: 1231,
  TextArray: 1009,
  DateArray: 1182,
  TimestampArray: 1115,
  TimestampTzArray: 1185,
} as const;

function mapNested(value: unknown, parse: (text: string) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => mapNested(v, parse));
  return typeof value === 'string' ? parse(value) : value;
}

/**
 * Type parsers that give the values of values.ts whatever the server's or the process's time zone:
 * timestamps are read from their text (without-time-zone taken as UTC), never through `Date`.
 */
export const postgresTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (format === 'binary') return (pg.types.getTypeParser as (oid: number, format: string) => TextParser)(oid, 'binary');
    const textArray = (pg.types.getTypeParser as (oid: number, format: string) => TextParser)(Oid.TextArray, 'text');
    switch (oid) {
      case Oid.Int8:
        return normalizeIntegerText;
      case Oid.Json:
      case Oid.Jsonb:
        return canonicalJsonText;
      case Oid.Date:
      case Oid.Interval:
        return (text: string) => text;
      case Oid.Timestamp:
      case Oid.TimestampTz:
        return timestampTextToIso;
      case Oid.Int8Array:
        return (text: string) => mapNested(textArray(text), normalizeIntegerText);
      // pg reads a numeric[]'s items as doubles (12345678901234567890.5 as 12345678901234567000):
      // they stay the text PostgreSQL prints, as a numeric does.
      case Oid.NumericArray:
      case Oid.DateArray:
        return textArray;
      case Oid.TimestampArray:
      case Oid.TimestampTzArray:
        return (text: string) => mapNested(textArray(text), timestampTextToIso);
      default:
        return (pg.types.getTypeParser as (oid: number, format: string) => TextParser)(oid, 'text');
    }
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Reads models from PostgreSQL through a server-side cursor: each `read` opens its own connection,
 * fetches `batchSize` rows at a time and closes the cursor and the connection when the consumer is
 * done, stops early or fails.
 */
export class PostgresSource implements Source {
  readonly cursorSql = postgresCursor;
  private readonly url: string;
  private readonly where: string;
  private readonly active = new Set<pg.Client>();
  private readonly timeouts: PostgresTimeouts;
  readonly warehousePlanner?: WarehousePlannerAccess;

  constructor(options: PostgresSourceOptions) {
    this.url = options.url;
    this.where = describePostgresUrl(options.url);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    const planner = options.planner;
    if (planner && planner.mode !== 'store') {
      const mode = planner.mode;
      const schema = planner.schema;
      this.warehousePlanner = {
        mode,
        schema,
        open: async (signal, options) => {
          const client = await this.openClient(signal);
          try {
            return await PostgresPlanner.open(client, schema, this.where, { ...options, connect: () => this.openClient(signal) });
          } catch (error) {
            await client.end().catch(() => undefined);
            throw error;
          }
        },
      };
    }
  }

  /** Creates the source and checks that the server answers with these credentials. */
  static async connect(options: PostgresSourceOptions): Promise<PostgresSource> {
    const source = new PostgresSource(options);
    const client = await source.openClient();
    await client.end().catch(() => undefined);
    return source;
  }

  async *read(query: string, options: ReadOptions): AsyncGenerator<RowBatch> {
    const batchSize = checkBatchSize(options.batchSize);
    const { signal } = options;
    signal?.throwIfAborted();
    const client = await this.openClient(signal, { forRead: true });
    this.active.add(client);
    try {
      // Read-only, so a model's query cannot change the warehouse, as the other kinds open theirs.
      if (options.snapshot !== undefined) await this.takeSnapshot(client, options.snapshot, signal);
      else await this.deadline(client, client.query(`BEGIN READ ONLY; ${PRINTING_HERE}`), signal);
      const fields = await this.describe(client, query, signal);
      if (fields && options.encoded) yield* this.readCopyLines(client, query, fields, batchSize, signal);
      else if (fields) yield* this.readCopy(client, query, fields, batchSize, signal);
      else yield* this.readCursor(client, query, batchSize, signal);
    } finally {
      this.active.delete(client);
      await client.end().catch(() => undefined);
    }
  }

  /**
   * Reads in the snapshot the planner exported (a first run's staging table is built in it), as the
   * planner's builder reads (ONE_ORDER): rows of a repeated key come in the same order to both.
   * The connection is ended after the read, which ends this read-only transaction.
   */
  private async takeSnapshot(client: pg.Client, snapshot: string, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.deadline(
        client,
        client.query(
          `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT ${client.escapeLiteral(snapshot)}; ${ONE_ORDER}; ${PRINTING_HERE}`,
        ),
        signal,
      );
    } catch (error) {
      if (error instanceof LockstepError || signal?.aborted) throw error;
      throw new LockstepError(
        ErrorCode.Transient,
        `reading a first run's rows from source ${this.where} in the planner's snapshot failed: ${toError(error).message} — the snapshot ends with the planner's transaction that exported it, which failed or ended before the read began; the next attempt starts the first run again`,
        { cause: error },
      );
    }
  }

  /**
   * The query's columns and their types, or null when the query cannot be used as a subquery
   * (then it is read through a cursor, which also reports any real error in it).
   */
  private async describe(client: pg.Client, query: string, signal: AbortSignal | undefined): Promise<pg.FieldDef[] | null> {
    // Under a savepoint: a query that fails here leaves the read's transaction usable for the cursor.
    await this.deadline(client, client.query('SAVEPOINT lockstep_describe'), signal);
    try {
      const result = await this.deadline(
        client,
        client.query({ text: `select * from (\n${stripTerminator(query)}\n) as lockstep_model limit 0`, rowMode: 'array' }),
        signal,
      );
      return result.fields;
    } catch (error) {
      if (error instanceof LockstepError || signal?.aborted) throw error;
      const failure = classifyPostgresError(error);
      if (failure === PostgresFailure.Transient || failure === PostgresFailure.Connection) throw this.queryError(error);
      await this.deadline(client, client.query('ROLLBACK TO SAVEPOINT lockstep_describe'), signal);
      return null;
    }
  }

  /**
   * Reads the result as COPY text, each field parsed by the same type parser the cursor path uses,
   * so both give the same values.
   */
  private async *readCopy(
    client: pg.Client,
    query: string,
    fields: pg.FieldDef[],
    batchSize: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<RowBatch> {
    const columns = fields.map((f) => f.name);
    const jsonColumns = jsonFields(fields);
    const batcher = new RowBatcher(batchSize);
    let yielded = false;
    for await (const batch of this.readCopyLines(client, query, fields, batchSize, signal)) {
      const encoded = batch.encoded as EncodedRows;
      const rows: Value[][] = [];
      for (let r = 0; r + 1 < encoded.starts.length; r++) rows.push(encoded.decode(r));
      for (const full of batcher.push(rows)) {
        yielded = true;
        yield { columns, rows: full, jsonColumns };
      }
    }
    const rest = batcher.flush();
    // An empty result still tells the caller its columns.
    if (rest || !yielded) yield { columns, rows: rest ?? [], jsonColumns };
  }

  /**
   * Reads the result as COPY text and hands it on as it came, in batches of whole lines (fields are
   * parsed only when the reader decodes them): the reader hashes the bytes, and a PostgreSQL
   * destination can copy them in unchanged.
   */
  private async *readCopyLines(
    client: pg.Client,
    query: string,
    fields: pg.FieldDef[],
    batchSize: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<RowBatch> {
    const columns = fields.map((f) => f.name);
    const types = fields.map((f) => f.dataTypeID);
    const jsonColumns = jsonFields(fields);
    const parsers = fields.map((f) => postgresTypes.getTypeParser(f.dataTypeID, 'text') as TextParser);
    const copy = client.query(new CopyOut(`copy (\n${stripTerminator(query)}\n) to stdout`, batchSize));
    let yielded = false;
    const batches = copy[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await this.deadline(client, batches.next(), signal);
        if (next.done) break;
        const { data, starts } = next.value;
        signal?.throwIfAborted();
        yielded = true;
        yield { columns, rows: [], encoded: new CopyTextRows(data, starts, types, parsers), jsonColumns };
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      throw error instanceof LockstepError ? error : this.queryError(error);
    }
    // An empty result still tells the caller its columns.
    if (!yielded) yield { columns, rows: [], encoded: new CopyTextRows(Buffer.alloc(0), new Int32Array(1), types, parsers), jsonColumns };
  }

  private async *readCursor(client: pg.Client, query: string, batchSize: number, signal: AbortSignal | undefined): AsyncGenerator<RowBatch> {
    let cursor: Cursor<unknown[]> | null = null;
    try {
      cursor = client.query(new Cursor<unknown[]>(query, [], { rowMode: 'array', types: postgresTypes }));
      let columns: string[] | null = null;
      let jsonColumns: string[] | undefined;
      for (;;) {
        signal?.throwIfAborted();
        const { rows, fields } = await this.deadline(client, readCursor(cursor, batchSize), signal).catch((error: unknown) => {
          throw error instanceof LockstepError || signal?.aborted ? error : this.queryError(error);
        });
        const first = columns === null;
        if (first) jsonColumns = jsonFields(fields);
        columns ??= fields.map((f) => f.name);
        if (rows.length === 0) {
          // An empty result still tells the caller its columns.
          if (first) yield { columns, rows: [], jsonColumns };
          return;
        }
        yield { columns, rows: rows.map((row) => row.map(normalizeValue) as Value[]), jsonColumns };
        if (rows.length < batchSize) return;
      }
    } finally {
      if (cursor) await cursor.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.active].map((client) => client.end().catch(() => undefined)));
    this.active.clear();
  }

  /** Waits for `work` on `client` as long as the statement timeout allows (see timeouts.ts). */
  private deadline<T>(client: pg.Client, work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const ms = this.timeouts.statementMs;
    return withDeadline(
      client,
      ms,
      () =>
        new LockstepError(
          ErrorCode.Connection,
          `reading the model's query from source PostgreSQL at ${hostPort(this.where)} timed out: the server sent nothing for ${describeDuration(ms)} — check that the server is up and not stuck (e.g. on locks), or raise statementTimeoutMinutes`,
        ),
      work,
      signal,
    );
  }

  /**
   * A connection to the source. `forRead`: a model's read, whose statements run in a read-only
   * transaction opened by read() (the session's own settings are left as they are: behind a
   * connection pooler they would outlive the read, on a server connection another client uses next);
   * otherwise the planner's, whose session prints dates as ISO.
   */
  private async openClient(signal?: AbortSignal, { forRead = false }: { forRead?: boolean } = {}): Promise<pg.Client> {
    let client: pg.Client | null = null;
    // A cancelled run does not wait for a server that does not answer.
    const onAbort = () => {
      if (client) destroySocket(client);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // Inside the try: the driver reads the URL's certificate files here, and may fail to.
      client = new pg.Client({ connectionString: postgresDriverUrl(this.url), types: postgresTypes, ...clientTimeouts(this.timeouts, this.url) });
      client.on('error', () => undefined); // a dropped idle connection surfaces on the next query instead
      await client.connect();
      // The planner's session prints values as the reads do (see PRINTING).
      if (!forRead) await this.deadline(client, client.query(PRINTING_SESSION), signal);
      return client;
    } catch (thrown) {
      await client?.end().catch(() => undefined);
      if (refusedStartupTimeout(thrown, this.url)) return this.openClient(signal, { forRead });
      if (thrown instanceof LockstepError || signal?.aborted) throw thrown;
      if (isConnectTimeout(thrown)) throw connectTimeoutError('source', this.where, this.timeouts.connectMs, thrown);
      const error = toError(thrown);
      const failure = classifyPostgresError(error);
      throw new LockstepError(
        failure === PostgresFailure.Transient ? ErrorCode.Transient : ErrorCode.Connection,
        `cannot connect to source ${this.where}: ${error.message} — ${postgresConnectionHint(error)}`,
        { cause: error },
      );
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private queryError(thrown: unknown): LockstepError {
    const error = toError(thrown);
    switch (classifyPostgresError(error)) {
      case PostgresFailure.Transient:
        return new LockstepError(
          ErrorCode.Transient,
          `reading from source ${this.where} failed: ${error.message} — this is usually temporary; the read can be retried`,
          { cause: error },
        );
      case PostgresFailure.Connection:
        return new LockstepError(
          ErrorCode.Connection,
          `lost the connection to source ${this.where}: ${error.message} — ${postgresConnectionHint(error)}`,
          { cause: error },
        );
      case PostgresFailure.Data:
      case PostgresFailure.Statement:
        return new LockstepError(
          ErrorCode.Query,
          `the model's query failed on source ${this.where}: ${withHint(error)} — check the model's query (run it with psql to see the full error)`,
          { cause: error },
        );
    }
  }
}

/**
 * Values are read, and rows hashed, from the text the server prints: it must print the same text
 * whatever a database's or role's settings say, or an unchanged row would look changed. Floats
 * with every digit they need (0 would round them).
 */
const PRINTING = ["DateStyle = 'ISO, YMD'", "TimeZone = 'UTC'", "IntervalStyle = 'postgres'", 'extra_float_digits = 3', "bytea_output = 'hex'"];
/** For a session of its own (the planner's). */
const PRINTING_SESSION = PRINTING.map((setting) => `SET ${setting}`).join('; ');
/** For a read's transaction only: behind a connection pooler, a session's settings would outlive the read. */
const PRINTING_HERE = PRINTING.map((setting) => `SET LOCAL ${setting}`).join('; ');

function readCursor(cursor: Cursor<unknown[]>, count: number): Promise<{ rows: unknown[][]; fields: pg.FieldDef[] }> {
  return new Promise((resolve, reject) => {
    cursor.read(count, (error, rows, result) => {
      if (error) reject(error);
      else resolve({ rows, fields: result?.fields ?? [] });
    });
  });
}

/** The columns of json and jsonb values, or undefined when none are. */
function jsonFields(fields: readonly pg.FieldDef[]): string[] | undefined {
  const json = fields.filter((f) => f.dataTypeID === Oid.Json || f.dataTypeID === Oid.Jsonb).map((f) => f.name);
  return json.length > 0 ? json : undefined;
}

/** The query without a trailing `;`, so it can be wrapped. */
function stripTerminator(query: string): string {
  return query.replace(/[\s;]+$/, '');
}

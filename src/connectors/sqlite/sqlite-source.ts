import Database from 'better-sqlite3';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { ReadOptions, RowBatch, Source, Value } from '../../core/ports.js';
import type { SqliteConstructor, SqliteDatabase } from '../sql.js';
import { checkBatchSize, normalizeValue } from '../values.js';
import { sqliteCursor } from '../cursor-sql.js';

export interface SqliteSourceOptions {
  /** Path of an existing SQLite file. It is opened read-only and never created. */
  path: string;
  /** Milliseconds to wait when a writer holds the file locked (default: 5000). */
  busyTimeoutMs?: number;
}

const SqliteDatabaseClass = Database as unknown as SqliteConstructor;

/**
 * Reads models from a SQLite file, opened read-only, stepping through the result row by row
 * (`iterate`) so only one batch is held at a time. SQLite has no boolean type: 0/1 stay numbers.
 */
export class SqliteSource implements Source {
  readonly cursorSql = sqliteCursor;
  private readonly path: string;
  private readonly busyTimeoutMs: number;
  private readonly active = new Set<SqliteDatabase>();

  constructor(options: SqliteSourceOptions) {
    this.path = options.path;
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  }

  /** Creates the source and opens the file, failing with a clear error when it is missing. */
  static async open(options: SqliteSourceOptions): Promise<SqliteSource> {
    const source = new SqliteSource(options);
    source.openDatabase().close();
    return source;
  }

  async *read(query: string, options: ReadOptions): AsyncGenerator<RowBatch> {
    const batchSize = checkBatchSize(options.batchSize);
    const { signal } = options;
    signal?.throwIfAborted();
    // A connection per read: a SQLite connection is busy while a statement is being stepped through.
    const db = this.openDatabase();
    this.active.add(db);
    let iterator: IterableIterator<unknown> | null = null;
    let columns: string[];
    try {
      const statement = db.prepare(query);
      if (!statement.reader) {
        throw new Error('the query does not return rows (a model must be a SELECT)');
      }
      // Integers as bigints so values beyond 2^53 are not rounded; values.ts narrows them back.
      statement.raw(true).safeIntegers(true);
      columns = statement.columns().map((c) => c.name);
      iterator = statement.iterate();
    } catch (error) {
      this.active.delete(db);
      db.close();
      throw this.queryError(error);
    }
    try {
      let yielded = false;
      for (;;) {
        let rows: Value[][];
        try {
          rows = stepRows(iterator, batchSize);
        } catch (error) {
          throw this.queryError(error);
        }
        // An empty result still tells the caller its columns.
        if (rows.length > 0 || !yielded) yield { columns, rows };
        yielded = true;
        if (rows.length < batchSize) break;
        signal?.throwIfAborted();
      }
    } finally {
      // Ends the statement when the consumer stops early, so the database is not left busy.
      iterator.return?.();
      this.active.delete(db);
      db.close();
    }
  }

  async close(): Promise<void> {
    for (const db of this.active) db.close();
    this.active.clear();
  }

  private openDatabase(): SqliteDatabase {
    try {
      return new SqliteDatabaseClass(this.path, { readonly: true, fileMustExist: true, timeout: this.busyTimeoutMs });
    } catch (thrown) {
      const error = toError(thrown);
      const missing = /does not exist|unable to open/i.test(error.message);
      throw new LockstepError(
        ErrorCode.Connection,
        missing
          ? `SQLite source file not found at ${this.path} — check the source's path (relative paths are resolved against the workspace folder); Lockstep opens sources read-only and never creates them`
          : `cannot open SQLite source file ${this.path}: ${error.message} — check that it is a SQLite database and readable`,
        { cause: error },
      );
    }
  }

  private queryError(thrown: unknown): LockstepError {
    const error = toError(thrown);
    if (/SQLITE_BUSY|database is locked/i.test(`${String((error as { code?: unknown }).code)} ${error.message}`)) {
      return new LockstepError(
        ErrorCode.Transient,
        `SQLite source file ${this.path} is locked by another process: ${error.message} — the read will be retried`,
        { cause: error },
      );
    }
    return new LockstepError(
      ErrorCode.Query,
      `the model's query failed on SQLite source ${this.path}: ${error.message} — check the model's query`,
      { cause: error },
    );
  }
}

/**
 * The next rows of a statement, up to `batchSize` (fewer only at its end), their values normalised.
 * The loop over rows is a function of its own: the optimising compiler then compiles this small
 * function, not the whole generator around it (which it compiled twice, ~30 ms each, in every
 * process's first read).
 */
function stepRows(iterator: IterableIterator<unknown>, batchSize: number): Value[][] {
  const rows: Value[][] = [];
  while (rows.length < batchSize) {
    const next = iterator.next();
    if (next.done) break;
    // Each step answers a new array: its values are normalised where they lie (strings and nulls,
    // most of them, already are), not copied into a second array per row.
    const row = next.value as unknown[];
    for (let c = 0; c < row.length; c++) {
      const value = row[c];
      if (value !== null && typeof value !== 'string') row[c] = normalizeValue(value);
    }
    rows.push(row as Value[]);
  }
  return rows;
}

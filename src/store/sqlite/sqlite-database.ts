/**
 * The part of better-sqlite3 the SQLite store uses, typed here so the store depends on a few
 * signatures rather than on the library's own type package.
 */
import BetterSqlite3 from 'better-sqlite3';
import { isSqliteBusy, retryLocked } from '../../core/lock-wait.js';

/** Values SQLite binds and returns as Lockstep uses them. */
export type SqliteValue = string | number | bigint | null | Buffer;

/** Positional parameters, or one object for `@name` parameters. */
export type SqliteParams = SqliteValue[] | [Record<string, SqliteValue>];

export interface SqliteRunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

export interface SqliteStatement {
  run(...params: SqliteParams): SqliteRunResult;
  get(...params: SqliteParams): unknown;
  all(...params: SqliteParams): unknown[];
  /** The rows one at a time, read as they are asked for (the connection runs nothing else meanwhile). */
  iterate(...params: SqliteParams): IterableIterator<unknown>;
  /** Rows as arrays of values instead of objects (changes this statement for good). */
  raw(toggle: boolean): SqliteStatement;
}

/** A function wrapped in a transaction; `immediate` takes the write lock at BEGIN. */
export interface SqliteTransaction<A extends unknown[], R> {
  (...args: A): R;
  immediate(...args: A): R;
}

export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): SqliteTransaction<A, R>;
  pragma(source: string, options?: { simple: boolean }): unknown;
  close(): void;
  readonly open: boolean;
}

export interface SqliteDatabaseOptions {
  /** Milliseconds to wait for another connection's lock before failing with SQLITE_BUSY. */
  timeout: number;
  /** Opens the file for reading only (default: false). */
  readonly?: boolean;
  /** Fails when the file does not exist rather than creating it (default: false). */
  fileMustExist?: boolean;
  /**
   * Reads the file as one nothing else changes: no locks, no `-shm` file (default: false). For a
   * read-only store in a folder that cannot be written, where SQLite cannot create the `-shm` file a
   * WAL database needs; only correct when no process writes the file meanwhile.
   */
  immutable?: boolean;
}

/** Opens (creating when missing, unless told not to) the database file at `path`. */
export function openSqliteDatabase(path: string, options: SqliteDatabaseOptions): SqliteDatabase {
  // SQLite reads `immutable` only from a URI filename, and better-sqlite3 enables URI filenames from
  // this variable when its native part loads, at the first open. Paths never start with `file:`, so
  // every other open reads its path as before.
  process.env.SQLITE_USE_URI ??= '1';
  const Database = BetterSqlite3 as unknown as new (path: string, options: Omit<SqliteDatabaseOptions, 'immutable'>) => SqliteDatabase;
  const { immutable, ...rest } = options;
  if (!immutable) return new Database(path, rest);
  return new Database(`file:${encodeURI(path).replace(/[?#]/g, encodeURIComponent)}?immutable=1`, { ...rest, readonly: true });
}

/** True for the errors better-sqlite3 raises from SQLite itself (they carry an `SQLITE_*` code). */
export function isSqliteError(error: unknown): error is Error & { code: string } {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

/** Per connection: a transaction wrapper that runs the function it is given, and the busy timeout in ms. */
const writers = new WeakMap<SqliteDatabase, { tx: SqliteTransaction<[() => unknown], unknown>; timeoutMs: number }>();

/**
 * Runs `fn` in a write transaction (`BEGIN IMMEDIATE`), waiting for the write lock as long as the
 * connection's busy timeout by the clock (core/lock-wait.ts): a BEGIN refused as busy is tried
 * again, `fn` having not run. Inside a transaction already, `fn` runs in a savepoint.
 */
export function immediateTransaction<R>(db: SqliteDatabase, fn: () => R): R {
  let writer = writers.get(db);
  if (!writer) {
    writer = { tx: db.transaction((body: () => unknown) => body()), timeoutMs: Number(db.pragma('busy_timeout', { simple: true })) };
    writers.set(db, writer);
  }
  const { tx, timeoutMs } = writer;
  let began = false;
  const body = (): R => {
    began = true;
    return fn();
  };
  return retryLocked(() => tx.immediate(body) as R, (error) => !began && isSqliteBusy(error), timeoutMs);
}

/** The SqliteStore's transactions; both turn SQLite's errors into the store's error naming the file. */
export interface SqliteTransactions {
  /** Runs `fn` in one `BEGIN IMMEDIATE` transaction. */
  write<R>(fn: () => R): R;
  /** Runs `fn` in a read transaction, so multi-statement reads see one state of the file. */
  read<R>(fn: () => R): R;
}

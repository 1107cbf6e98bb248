/**
 * The part of better-sqlite3 the SQLite store uses, typed here so the store depends on a few
 * signatures rather than on the library's own type package.
 */
import BetterSqlite3 from 'better-sqlite3';

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
}

/** Opens (creating when missing) the database file at `path`. */
export function openSqliteDatabase(path: string, options: SqliteDatabaseOptions): SqliteDatabase {
  const Database = BetterSqlite3 as unknown as new (path: string, options: SqliteDatabaseOptions) => SqliteDatabase;
  return new Database(path, options);
}

/** True for the errors better-sqlite3 raises from SQLite itself (they carry an `SQLITE_*` code). */
export function isSqliteError(error: unknown): error is Error & { code: string } {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

/**
 * SQL helpers shared by the connectors: identifier quoting (identifiers from configuration reach SQL
 * only quoted; values only as parameters), describing where a connection points without its secret,
 * and sorting PostgreSQL failures into what a caller can do about them.
 */
import { isSqliteBusy, retryLocked } from '../core/lock-wait.js';
import { postgresTlsHint } from '../core/connections.js';

/** A double-quoted SQL identifier; embedded `"` doubled. Works for PostgreSQL, SQLite and DuckDB. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error(`identifier ${JSON.stringify(name)} contains a NUL character`);
  return `"${name.replace(/"/g, '""')}"`;
}

/** `"schema"."table"`, or `"table"` when there is no schema. */
export function quoteQualified(schema: string | null, name: string): string {
  return schema === null ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** Names listed for a message: `"a", "b"` (or `(none)`). */
export function listNames(names: readonly string[]): string {
  return names.length === 0 ? '(none)' : names.map((n) => JSON.stringify(n)).join(', ');
}

/** `id = 42`, `a = 1 and b = "x"`: a key for messages. */
export function describeKey(columns: readonly string[], key: ReadonlyArray<string | number | boolean | null>): string {
  return columns.map((c, i) => `${c} = ${typeof key[i] === 'string' ? JSON.stringify(key[i]) : String(key[i])}`).join(' and ');
}

/** `host:port/database as user`, for messages: never the password. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname || 'localhost';
    const port = u.port || '5432';
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default database)';
    const user = u.username ? ` as ${decodeURIComponent(u.username)}` : '';
    return `PostgreSQL at ${host}:${port}/${db}${user}`;
  } catch {
    return 'PostgreSQL (connection string not shown)';
  }
}

/** How a PostgreSQL failure should be treated. */
export const PostgresFailure = {
  /** The server cannot be reached, or refused us (address, credentials, database name). Fatal. */
  Connection: 'connection',
  /** Worth retrying: serialization failure, deadlock, shutdown, dropped connection, overload. */
  Transient: 'transient',
  /** A value or a row broke a rule: classes 21, 22 and 23. Reject that row. */
  Data: 'data',
  /** The statement names something missing or forbidden (class 42) or another statement error. */
  Statement: 'statement',
} as const;
export type PostgresFailure = (typeof PostgresFailure)[keyof typeof PostgresFailure];

interface ErrorLike {
  code?: unknown;
  message?: unknown;
}

/** The SQLSTATE or Node socket code of an error, if any. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as ErrorLike).code;
  return typeof code === 'string' ? code : undefined;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
const DROPPED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
const TRANSIENT_STATES = new Set(['40001', '40P01', '55P03', '57014', '57P01', '57P02', '57P03']);

export function classifyPostgresError(error: unknown): PostgresFailure {
  const code = errorCode(error) ?? '';
  const message = error instanceof Error ? error.message : '';
  if (CONNECT_CODES.has(code)) return PostgresFailure.Connection;
  if (DROPPED_CODES.has(code) || /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(message)) {
    return PostgresFailure.Transient;
  }
  if (code.length !== 5) return PostgresFailure.Statement;
  if (code.startsWith('28') || code === '3D000' || code === '08001' || code === '08004') return PostgresFailure.Connection;
  if (TRANSIENT_STATES.has(code) || code.startsWith('08') || code.startsWith('53')) return PostgresFailure.Transient;
  // Class P0: a PL/pgSQL error, most often a trigger refusing the row it was given (RAISE EXCEPTION,
  // ASSERT); class 44: a row outside an updatable view's WITH CHECK OPTION.
  if (code.startsWith('21') || code.startsWith('22') || code.startsWith('23') || code.startsWith('P0') || code.startsWith('44')) {
    return PostgresFailure.Data;
  }
  // A row a row-level security policy refuses (its WITH CHECK, or its USING for the row an upsert
  // would update) is told from a table the user may not write by where the server raised it.
  if (code === '42501' && (error as { routine?: unknown }).routine === 'ExecWithCheckOptions') return PostgresFailure.Data;
  return PostgresFailure.Statement;
}

/**
 * PostgreSQL's message (or `message`) with the hint it sends along, as psql shows it (e.g. `column "nmae" does
 * not exist (HINT: Perhaps you meant to reference the column "accounts.name".)`).
 */
export function withHint(error: Error, message = error.message): string {
  const hint = (error as { hint?: unknown }).hint;
  return typeof hint === 'string' && hint ? `${message} (HINT: ${hint})` : message;
}

/** What to do about a connection failure, for the end of a message. */
export function postgresConnectionHint(error: unknown): string {
  const code = errorCode(error) ?? '';
  const tls = postgresTlsHint(error instanceof Error ? error.message : String(error), 'connection URL');
  if (tls) return tls;
  if (code.startsWith('28')) return 'check the user name and password in the connection URL';
  if (code === '3D000') return 'check the database name in the connection URL, or create the database';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'check the host name in the connection URL';
  return 'check that the server is running and reachable at that host and port, and that the URL is right';
}

// ---------------------------------------------------------------------------------------------
// SQLite: the part of better-sqlite3 the connectors use (STYLE rule 3).

export interface SqliteStatement {
  /** True when the statement returns rows. */
  readonly reader: boolean;
  raw(toggle?: boolean): this;
  safeIntegers(toggle?: boolean): this;
  columns(): Array<{ name: string }>;
  iterate(...params: unknown[]): IterableIterator<unknown>;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number };
}

export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly inTransaction: boolean;
}

export interface SqliteOpenOptions {
  readonly?: boolean;
  fileMustExist?: boolean;
  /** Milliseconds to wait for a lock before SQLITE_BUSY. */
  timeout?: number;
}

export type SqliteConstructor = new (path: string, options?: SqliteOpenOptions) => SqliteDatabase;

/** `BEGIN IMMEDIATE`, waiting for the write lock `timeoutMs` by the clock, not only by SQLite's count of its sleeps (core/lock-wait.ts). */
export function beginImmediate(db: SqliteDatabase, timeoutMs: number): void {
  retryLocked(() => db.exec('begin immediate'), isSqliteBusy, timeoutMs);
}

/**
 * What the MySQL source and destination share: the part of mysql2 they use, typed by that subset
 * (STYLE rule 3), the pool they open, identifier quoting, describing where a URL points without its
 * password, and sorting MySQL's and MariaDB's failures into what a caller can do about them.
 */
import type { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';

// ---------------------------------------------------------------------------------------------
// The part of mysql2 the connector uses

/** A column of a result as the server describes it. */
export interface MysqlField {
  name: string;
  /** The protocol's type code (see MysqlType). */
  columnType: number;
  /** The display length: 1 for TINYINT(1) (MySQL's BOOLEAN) and BIT(1). */
  columnLength: number;
  /** The character set number; 63 is `binary`. */
  characterSet: number;
  /** MariaDB's extended metadata, e.g. `json` for a JSON column (which MariaDB sends as text). */
  extendedFormat?: string;
}

/** What a statement that returns no rows answers. */
export interface MysqlResultHeader {
  /** Rows the statement wrote; for an UPDATE, the rows it matched (Lockstep connects with FOUND_ROWS). */
  affectedRows: number;
  /** Warnings (and notes) the statement raised. */
  warningStatus: number;
}

/** A query running on a connection, reporting its columns and rows as events. */
export interface MysqlQueryCommand {
  on(event: 'fields', listener: (fields: MysqlField[] | undefined) => void): this;
  on(event: 'result', listener: (row: unknown) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'end', listener: () => void): this;
}

/** The callback-style connection under a pooled one: it streams a result and can hold it back. */
export interface MysqlCoreConnection {
  readonly threadId: number;
  query(options: { sql: string; rowsAsArray?: boolean }): MysqlQueryCommand;
  /** Stops reading from the socket: the server waits until `resume`. */
  pause(): void;
  resume(): void;
  /** The connection failed or the server closed it; a query without a callback is not told. */
  on(event: 'error' | 'end', listener: (error?: unknown) => void): unknown;
  off(event: 'error' | 'end', listener: (error?: unknown) => void): unknown;
}

export interface MysqlPoolConnection {
  readonly connection: MysqlCoreConnection;
  /**
   * A statement sent as text, without parameters (session settings, transaction control); a
   * `LOAD DATA LOCAL INFILE` reads the data from `infileStreamFactory` (never from a file).
   */
  query<T = unknown>(sql: string | { sql: string; infileStreamFactory?: (name: string) => Readable }): Promise<[T, unknown]>;
  /** A prepared statement with its values as parameters. */
  execute<T = unknown>(sql: string, values: readonly unknown[]): Promise<[T, unknown]>;
  /** Gives the connection back to the pool. */
  release(): void;
  /** Closes the connection and drops it from the pool (it may be in the middle of a result). */
  destroy(): void;
}

export interface MysqlPool {
  getConnection(): Promise<MysqlPoolConnection>;
  end(): Promise<void>;
}

interface MysqlPoolOptions {
  uri: string;
  connectionLimit: number;
  maxIdle: number;
  idleTimeout: number;
  supportBigNumbers: boolean;
  bigNumberStrings: boolean;
  dateStrings: boolean;
  jsonStrings: boolean;
  maxPreparedStatements: number;
  connectTimeout: number;
  enableKeepAlive: boolean;
  keepAliveInitialDelay: number;
}

/** A bind parameter with an explicit type (mysql2's `TypedParameter` factories). */
export type MysqlTypedValue = { readonly type: number; readonly value: unknown; readonly unsigned: boolean };

interface MysqlModule {
  createPool(options: MysqlPoolOptions): MysqlPool;
  TypedParameter: {
    LONGLONG: ((value: bigint) => MysqlTypedValue) & { unsigned(value: bigint): MysqlTypedValue };
  };
}

const driver = mysql as unknown as MysqlModule;

/** A BIGINT parameter: keys compared with an integer column as integers, never as doubles. */
export function bigintParameter(value: bigint, unsigned: boolean): MysqlTypedValue {
  return unsigned ? driver.TypedParameter.LONGLONG.unsigned(value) : driver.TypedParameter.LONGLONG(value);
}

/** The protocol's type codes of result columns the source converts itself. */
export const MysqlType = {
  /** TINYINT; with display length 1, MySQL's BOOLEAN. */
  Tiny: 1,
  Timestamp: 7,
  /** BIGINT. */
  LongLong: 8,
  Date: 10,
  DateTime: 12,
  /** DATE as older servers describe it. */
  NewDate: 14,
  Bit: 16,
  /** MySQL's JSON (MariaDB sends JSON as text, marked in its extended metadata). */
  Json: 245,
} as const;
export type MysqlType = (typeof MysqlType)[keyof typeof MysqlType];

/**
 * A small pool on `url`. Values come back in the forms values.ts normalises from: BIGINT and
 * DECIMAL as text (so nothing beyond 2^53 is rounded), dates and times as the server prints them,
 * JSON as text. Every statement with values is prepared (`execute`), so values only ever travel
 * as parameters; each connection keeps a few dozen prepared statements at most.
 */
export function createMysqlPool(url: string, connectionLimit: number, connectTimeoutMs = 10_000): MysqlPool {
  try {
    return openPool(url, connectionLimit, connectTimeoutMs);
  } catch (thrown) {
    // e.g. a password with a `%` that is not percent-encoding; the message never holds the URL.
    throw new LockstepError(
      ErrorCode.Connection,
      `the MySQL connection URL cannot be read (${toError(thrown).message}) — write it like mysql://user:password@host:3306/database, with special characters in the password percent-encoded`,
      { cause: thrown },
    );
  }
}

function openPool(url: string, connectionLimit: number, connectTimeoutMs: number): MysqlPool {
  const pool = driver.createPool({
    uri: url,
    connectionLimit,
    maxIdle: connectionLimit,
    idleTimeout: 60_000,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    jsonStrings: true,
    maxPreparedStatements: 64,
    connectTimeout: Math.max(1, Math.round(connectTimeoutMs)),
    // TCP keepalive probes after 30 s without traffic, so a vanished peer is noticed.
    enableKeepAlive: true,
    keepAliveInitialDelay: 30_000,
  });
  // The pool's end waits for the `KILL QUERY`s sent for its abandoned connections (see abandon):
  // a run cancelled while its query runs closes its source at once, and the pool's end would drop
  // the connection a kill is still opening, leaving the statement running on the server.
  const end = pool.end.bind(pool);
  const core = (pool as unknown as { pool?: object }).pool;
  pool.end = async () => {
    if (core) await Promise.all(killsInFlight.get(core) ?? []);
    return end();
  };
  return pool;
}

/** The `KILL QUERY`s being sent through each (core) pool, until they are answered or fail. */
const killsInFlight = new WeakMap<object, Set<Promise<void>>>();

// ---------------------------------------------------------------------------------------------
// Identifiers and messages

/** A backtick-quoted MySQL identifier; embedded backticks doubled. */
export function quoteMysqlIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error(`identifier ${JSON.stringify(name)} contains a NUL character`);
  return `\`${name.replace(/`/g, '``')}\``;
}

/** `MySQL at host:port/database as user`, for messages: never the password. */
export function describeMysqlUrl(url: string): string {
  try {
    const u = new URL(url);
    const kind = u.protocol === 'mariadb:' ? 'MariaDB' : 'MySQL';
    const host = u.hostname || 'localhost';
    const port = u.port || '3306';
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(no database)';
    const user = u.username ? ` as ${decodeURIComponent(u.username)}` : '';
    return `${kind} at ${host}:${port}/${db}${user}`;
  } catch {
    return 'MySQL (connection string not shown)';
  }
}

// ---------------------------------------------------------------------------------------------
// Failures

/** How a MySQL failure should be treated. */
export const MysqlFailure = {
  /** The server cannot be reached, or refused us (address, credentials, database name). Fatal. */
  Connection: 'connection',
  /** Worth retrying: deadlock, lock wait timeout, dropped connection, shutdown, too many connections. */
  Transient: 'transient',
  /** A value or a row broke a rule (SQLSTATE classes 22 and 23, CHECK constraints): reject that row. */
  Data: 'data',
  /** The statement names something missing or forbidden, or another statement error. */
  Statement: 'statement',
} as const;
export type MysqlFailure = (typeof MysqlFailure)[keyof typeof MysqlFailure];

interface MysqlErrorLike {
  code?: unknown;
  errno?: unknown;
  sqlState?: unknown;
}

/** The server's error number (1062, ...), or undefined for a network or driver error. */
export function mysqlErrno(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const errno = (error as MysqlErrorLike).errno;
  // Node's socket errors carry negative errnos; the server's are 1000 and up.
  return typeof errno === 'number' && errno >= 1000 ? errno : undefined;
}

function sqlState(error: unknown): string {
  const state = typeof error === 'object' && error !== null ? (error as MysqlErrorLike).sqlState : undefined;
  return typeof state === 'string' ? state : '';
}

function codeOf(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as MysqlErrorLike).code : undefined;
  return typeof code === 'string' ? code : '';
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
const DROPPED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT']);
/** Access denied, unknown database, host blocked or not allowed, authentication method. */
const CONNECT_ERRNOS = new Set([1044, 1045, 1049, 1129, 1130, 1251, 1698]);
/**
 * Too many connections, shutdown, lost or killed connections, lock wait timeout, deadlock, query
 * interrupted or timed out, prepared statement to be prepared again, read-only during a failover.
 */
const TRANSIENT_ERRNOS = new Set([
  1040, 1053, 1152, 1158, 1159, 1160, 1161, 1203, 1205, 1213, 1290, 1317, 1615, 1637, 1836, 1927, 1969, 2006, 2013, 3024, 4031,
]);
/**
 * Row-level errors outside SQLSTATE classes 22 and 23: MySQL's CHECK violation (3819), wrong
 * values reported as HY000 (1366, 1292), invalid JSON (3140), bad character strings (1300), and a
 * SIGNAL nothing handled (1644), most often a trigger refusing the row it was given.
 */
const DATA_ERRNOS = new Set([1048, 1062, 1264, 1265, 1292, 1300, 1364, 1366, 1367, 1406, 1411, 1451, 1452, 1644, 1690, 3140, 3819, 4025]);

export function classifyMysqlError(error: unknown): MysqlFailure {
  const errno = mysqlErrno(error);
  if (errno === undefined) {
    const code = codeOf(error);
    if (CONNECT_CODES.has(code) || code.startsWith('HANDSHAKE_') || code.startsWith('ERR_TLS_')) return MysqlFailure.Connection;
    if (DROPPED_CODES.has(code) || /closed state|connection lost|server closed the connection/i.test(toError(error).message)) {
      return MysqlFailure.Transient;
    }
    return MysqlFailure.Statement;
  }
  if (CONNECT_ERRNOS.has(errno)) return MysqlFailure.Connection;
  if (TRANSIENT_ERRNOS.has(errno)) return MysqlFailure.Transient;
  const state = sqlState(error);
  if (DATA_ERRNOS.has(errno) || state.startsWith('22') || state.startsWith('23')) return MysqlFailure.Data;
  return MysqlFailure.Statement;
}

/** What to do about a connection failure, for the end of a message. */
export function mysqlConnectionHint(error: unknown): string {
  const errno = mysqlErrno(error);
  const code = codeOf(error);
  if (errno === 1045 || errno === 1698) return 'check the user name and password in the connection URL';
  if (errno === 1044) return 'grant the user access to that database, or check the database name in the connection URL';
  if (errno === 1049) return 'check the database name in the connection URL, or create the database';
  if (errno === 1129 || errno === 1130) return "allow this host in the server's user accounts (or run FLUSH HOSTS)";
  if (errno === 1040 || errno === 1203) return "the server has no connection left: raise max_connections or close other clients' connections";
  if (errno === 3159) {
    // The driver reads a JSON value of ssl as its TLS options.
    return 'the server takes only TLS connections (require_secure_transport): add ssl={"rejectUnauthorized":true} to the connection URL, percent-encoded: ?ssl=%7B%22rejectUnauthorized%22%3Atrue%7D';
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'check the host name in the connection URL';
  if (code.startsWith('HANDSHAKE_') || code.startsWith('ERR_TLS_')) return 'check the TLS settings (e.g. ?ssl=...) in the connection URL';
  return 'check that the server is running and reachable at that host and port, and that the URL is right';
}

/** Which rule a rejected row broke, named when the server's message does not say it in words. */
const RULE_NAMES: ReadonlyArray<[readonly number[], string, RegExp]> = [
  [[1062, 1586], 'duplicate key', /duplicate key/i],
  [[1048, 1364], 'NOT NULL column', /not.null/i],
  [[3819, 4025], 'CHECK constraint', /check/i],
  [[1451, 1452], 'foreign key', /foreign key/i],
];

/**
 * The server's message for a rejected row, with the rule it broke named when the message does
 * not (MariaDB says `CONSTRAINT \`contacts.score\` failed`), and without the position inside a
 * multi-row statement (`at row 17`), which means nothing to the reader.
 */
export function mysqlRowMessage(thrown: unknown): string {
  const error = toError(thrown);
  const errno = mysqlErrno(error) ?? 0;
  const message = error.message.replace(/ at row \d+$/, '');
  const rule = RULE_NAMES.find(([errnos]) => errnos.includes(errno));
  return rule && !rule[2].test(message) ? `${message} (${rule[1]})` : message;
}

/**
 * A connection of `pool` with its session set up by `setUp` once per physical connection (those in
 * `ready`), or a LockstepError naming `what` (e.g. `source mysql://host/db`) and why there is none:
 * `transient` when the server may come back, else `connection`. A failing set-up drops the connection
 * and throws what `setUpError` makes of it.
 */
export async function sessionConnection(
  pool: MysqlPool,
  ready: WeakSet<MysqlCoreConnection>,
  what: string,
  setUp: (connection: MysqlPoolConnection) => Promise<void>,
  setUpError: (thrown: unknown) => LockstepError,
  timeouts: MysqlTimeouts = { connectMs: 10_000, statementMs: 2 * 60_000 },
): Promise<MysqlPoolConnection> {
  let connection: MysqlPoolConnection;
  try {
    connection = await pool.getConnection();
  } catch (thrown) {
    const error = toError(thrown);
    if ((error as { code?: unknown }).code === 'ETIMEDOUT' && /^connect ETIMEDOUT$/.test(error.message)) {
      throw new LockstepError(
        ErrorCode.Connection,
        `connecting to ${what.replace(/ at ([^/\s]+)\S*.*$/, ' at $1')} timed out after ${describeDuration(timeouts.connectMs)} — check that the server is running and answering at that host and port (a firewall or proxy may accept connections and pass nothing on), or raise connectTimeoutSeconds`,
        { cause: error },
      );
    }
    throw new LockstepError(
      classifyMysqlError(error) === MysqlFailure.Transient ? ErrorCode.Transient : ErrorCode.Connection,
      `cannot connect to ${what}: ${error.message} — ${mysqlConnectionHint(error)}`,
      { cause: error },
    );
  }
  if (ready.has(connection.connection)) return connection;
  try {
    await withDeadline(connection, timeouts.statementMs, () => stalledError(`setting up a session on ${what}`, timeouts.statementMs), setUp(connection));
  } catch (thrown) {
    if (thrown instanceof LockstepError) throw thrown;
    connection.destroy();
    throw setUpError(thrown);
  }
  ready.add(connection.connection);
  return connection;
}

// ---------------------------------------------------------------------------------------------
// Timeouts

export interface MysqlTimeouts {
  /** Opening a connection, through the server's handshake (ms). */
  connectMs: number;
  /** The longest wait for the server's next answer before the connection is closed (ms). */
  statementMs: number;
}

/** `10 s`, `2 min`: a duration for messages. */
export function describeDuration(ms: number): string {
  if (ms < 60_000 || ms % 60_000 !== 0) return `${Number((ms / 1000).toFixed(1))} s`;
  return `${ms / 60_000} min`;
}

/**
 * The failure of waiting `ms` for a server that sent nothing; `doing` names what was waited for and
 * where, e.g. `reading the model's query from source MySQL at db:3306/crm` (shown up to the port).
 */
export function stalledError(doing: string, ms: number, setting = 'statementTimeoutMinutes'): LockstepError {
  return new LockstepError(
    ErrorCode.Connection,
    `${doing.replace(/ at ([^/\s]+)\S*.*$/, ' at $1')} timed out: the server did not answer for ${describeDuration(ms)} — check that the server is up and not stuck (e.g. on locks held by another session), or raise ${setting}`,
  );
}

/**
 * Ends a connection whose statement is given up on. The server is asked to stop the statement
 * (`KILL QUERY`, sent through another connection of the pool): otherwise a write waiting on a lock
 * would still land once the lock is free, and a long read would go on. The socket is closed at once:
 * the driver's own close only half-closes it, which keeps the process waiting until the server
 * answers.
 */
function abandon(connection: MysqlPoolConnection): void {
  const core = connection.connection as MysqlCoreConnection & {
    stream?: { destroy(): void };
    _pool?: { _closed?: boolean; query(sql: string, done: (error: unknown) => void): void } | null;
  };
  // Read before destroy, which takes the connection out of its pool.
  const pool = core._pool;
  const threadId = core.threadId;
  connection.destroy();
  core.stream?.destroy();
  // Best effort: a server that cannot be reached now ends the statement when it notices the closed socket.
  if (!pool || pool._closed || !Number.isInteger(threadId)) return;
  const sent = new Promise<void>((resolve) => pool.query(`KILL QUERY ${threadId}`, () => resolve()));
  let pending = killsInFlight.get(pool);
  if (!pending) killsInFlight.set(pool, (pending = new Set()));
  pending.add(sent);
  void sent.then(() => pending.delete(sent));
}

/**
 * Waits for `work` on `connection` at most `ms`: past it, and at once when `signal` aborts, the
 * statement is stopped on the server and the connection closed (see `abandon`; the driver then
 * fails whatever it was doing), and the wait ends with `timedOut()`'s error (or the signal's reason).
 */
export async function withDeadline<T>(
  connection: MysqlPoolConnection,
  ms: number,
  timedOut: () => Error,
  work: Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    const destroy = (error: unknown) => {
      reject(error);
      abandon(connection);
    };
    timer = setTimeout(() => destroy(timedOut()), ms);
    if (signal) {
      onAbort = () => destroy(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  work.catch(() => undefined); // a failure after the deadline has nobody to tell
  try {
    return await Promise.race([work, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

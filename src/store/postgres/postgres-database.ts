/**
 * The PostgreSQL store's connection: a pool, transactions that are retried whole when PostgreSQL
 * aborts them for a serialization failure or a deadlock, and PostgreSQL's failures turned into
 * Lockstep's errors naming the server, database and schema (never the password) and the fix.
 */
import pg from 'pg';
import { ErrorCode, LockstepError, NotFoundError, toError } from '../../core/errors.js';
import { postgresDriverUrl, postgresTlsHint } from '../../core/connections.js';
import { AnswerWatch, closeWithin, destroySocket } from './postgres-answer-watch.js';

/** What the store's code needs of a connection or a pool: one statement at a time (STYLE rule 3). */
export interface Queryable {
  query<R extends object = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

export interface PostgresDatabaseOptions {
  /** `postgres://user:password@host:port/database`, with libpq settings (`?sslmode=...`) if any. */
  url: string;
  /** The schema every table lives in. */
  schema: string;
  /** Connections the pool opens at most. */
  poolSize: number;
  /** Milliseconds to wait for a connection before failing. */
  connectTimeoutMs: number;
  /**
   * Milliseconds a session may sit in an open transaction before the server ends it: a process
   * frozen inside a store transaction (SIGSTOP, a paused VM, a partition) must not hold the rows it
   * locked past its leases, or nobody could take its runs over.
   */
  idleInTransactionMs: number;
  /**
   * Milliseconds a store statement may run before the server ends it (`statement_timeout`), set on
   * every session of the pool whatever the database or role sets: a low value there would fail the
   * store's longer statements (a large snapshot write, a sweep of old runs), and none at all would
   * leave a statement stalled on a lock waiting for ever. A transaction may set its own (migrations).
   */
  statementTimeoutMs: number;
  /**
   * Milliseconds a statement may go unanswered before the server is asked, on a connection of its
   * own, whether the statement's session is still at work. A network that drops packets without
   * resetting the connection (a partition) would otherwise keep the process waiting forever:
   * heartbeats stop without a word and lost leases go unnoticed. Long work the server is doing
   * (a migration, a large delete) is waited for as long as it takes.
   */
  answerTimeoutMs: number;
}

/** Attempts of a transaction PostgreSQL aborted for a serialization failure or deadlock. */
const CONFLICT_ATTEMPTS = 5;
/** SQLSTATEs after which the same transaction may succeed when run again at once. */
const CONFLICT_STATES = new Set(['40001', '40P01']);
/**
 * Attempts of work the server could not take for a moment: too many connections (SQLSTATE 53300),
 * a server starting up or ending sessions (57P01–57P03), a connection lost. About 6 s in all, well
 * within a lease (30 s by default), so a run holding one goes on rather than failing.
 */
const UNAVAILABLE_ATTEMPTS = 8;
const UNAVAILABLE_STATES = new Set(['53300', '57P01', '57P02', '57P03']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);
const DROPPED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/**
 * How the store begins a transaction that writes. Its rules are written for READ COMMITTED (a
 * statement after a lock sees what the lock's holder committed); a bare BEGIN would take the
 * server's default_transaction_isolation, which a database or role may set to repeatable read or
 * serializable, and then read the state from before the lock was granted.
 */
export const BEGIN = 'BEGIN ISOLATION LEVEL READ COMMITTED';

/** int8 (counts, ids) read as numbers: Lockstep's ids and counts stay far below 2^53. */
const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === INT8_OID && format !== 'binary') return (text: string) => Number(text);
    return (pg.types.getTypeParser as (oid: number, format?: string) => unknown)(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export class PostgresDatabase {
  /** `PostgreSQL at host:port/database (schema "lockstep")`, for messages. */
  readonly where: string;
  /** The schema, quoted for SQL. */
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly options: PostgresDatabaseOptions;
  /** Watches every statement sent for its answer. */
  private readonly watch: AnswerWatch;
  private closed = false;

  constructor(options: PostgresDatabaseOptions) {
    this.options = options;
    this.where = `${describeUrl(options.url)} (schema "${options.schema}")`;
    this.schema = quoteIdent(options.schema);
    this.watch = new AnswerWatch({ url: options.url, where: this.where, answerTimeoutMs: options.answerTimeoutMs });
    this.pool = new pg.Pool({
      connectionString: postgresDriverUrl(options.url),
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs,
      application_name: 'lockstep',
      idle_in_transaction_session_timeout: options.idleInTransactionMs,
      // A peer that vanished is noticed by the socket, not only at the next statement.
      keepAlive: true,
      types,
      // The timeouts again, and the statement timeout, as settings of the session: a pooler in
      // session mode told to pass over startup parameters (PgBouncer's ignore_startup_parameters)
      // drops them without a word, and takes a SET.
      onConnect: (client) => this.answered(client, client.query(this.sessionSettings)).then(() => undefined),
    });
    // An idle connection the server dropped (a restart): the pool replaces it; the next use reports
    // anything lasting. Without a listener the process would die.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (client) => {
      this.clients.add(client);
      const pid = (client as pg.PoolClient & { processID?: number }).processID;
      if (typeof pid === 'number') this.backends.add(pid);
    });
    this.pool.on('remove', (client) => {
      this.clients.delete(client);
      const pid = (client as pg.PoolClient & { processID?: number }).processID;
      if (typeof pid === 'number') this.backends.delete(pid);
    });
  }

  /** What each connection of the pool sets as it opens (see onConnect). */
  private get sessionSettings(): string {
    const { statementTimeoutMs, idleInTransactionMs } = this.options;
    return `SET statement_timeout = ${Math.max(1, Math.round(statementTimeoutMs))}; SET idle_in_transaction_session_timeout = ${Math.max(1, Math.round(idleInTransactionMs))}`;
  }

  /** The server process ids of the pool's connections. */
  private readonly backends = new Set<number>();
  /** The pool's connections, to close at once when the network does not let them end (see close). */
  private readonly clients = new Set<pg.PoolClient>();

  /** Whether `pid` is the server process of one of this pool's connections. */
  ownsBackend(pid: number): boolean {
    return this.backends.has(pid);
  }

  /** One statement in its own transaction, run again when PostgreSQL aborted it for a conflict. */
  async query<R extends object = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.statement<R>(text, values)).rows;
  }

  /** `query` as a Queryable, for code that runs inside or outside a transaction alike. */
  readonly direct: Queryable = { query: (text, values) => this.statement(text, values) };

  private async statement<R extends object>(text: string, values: unknown[] = []): Promise<{ rows: R[]; rowCount: number | null }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.watched(text, values);
      } catch (error) {
        if (isConflict(error) && attempt < CONFLICT_ATTEMPTS) {
          await backoff(attempt);
          continue;
        }
        // One statement is its own transaction: run again, it either finds its work done (every
        // store statement checks the state it changes: a claim finds the run claimed, and the
        // lease keeps that safe) or does it.
        if (this.unavailable(error) && attempt < UNAVAILABLE_ATTEMPTS) {
          await unavailableBackoff(attempt);
          continue;
        }
        throw this.error(error);
      }
    }
  }

  /** `pool.query`, with the statement's answer waited for as `answered` does. */
  private async watched<R extends object>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    const client = await this.pool.connect();
    // The connection may fail while it is checked out (the server ends the session, or it is
    // given up on below): the statement fails with it, and the event must not crash the process.
    const ignore = () => {};
    client.on('error', ignore);
    try {
      const result = await this.answered(client, client.query<R>(text, values));
      client.off('error', ignore);
      client.release();
      return result;
    } catch (error) {
      client.off('error', ignore);
      // A connection whose statement failed may be broken (lost, or given up on): it is closed.
      client.release(toError(error));
      throw error;
    }
  }

  /** Waits for the answer `send` is to `client`'s statement, giving the connection up when it is lost (see AnswerWatch). */
  answered<T>(client: pg.ClientBase, send: Promise<T>): Promise<T> {
    return this.watch.answered(client, send);
  }

  /** Whether `client`'s connection was given up on (see `answered`): it is closed, not rolled back. */
  gaveUp(client: pg.ClientBase): boolean {
    return this.watch.gaveUp(client);
  }

  /** Milliseconds a statement may go unanswered before the server is asked about it (see PostgresDatabaseOptions). */
  get answerTimeoutMs(): number {
    return this.watch.answerTimeoutMs;
  }

  /** A connection of the pool; null after waiting out a server that is unavailable for now (try again). */
  private async connectOrWait(attempt: number): Promise<pg.PoolClient | null> {
    try {
      return await this.pool.connect();
    } catch (error) {
      if (this.unavailable(error) && attempt < UNAVAILABLE_ATTEMPTS) {
        await unavailableBackoff(attempt);
        return null;
      }
      throw this.error(error, { connecting: true });
    }
  }

  /**
   * Runs `fn` in one transaction (READ COMMITTED unless `readOnly`, which reads one snapshot) and
   * commits; rolls back when it throws. A transaction PostgreSQL aborted for a serialization
   * failure or a deadlock runs again from the start, so `fn` must only read and write through `q`.
   */
  async transaction<R>(fn: (q: Queryable) => Promise<R>, options: { readOnly?: boolean } = {}): Promise<R> {
    const begin = options.readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : BEGIN;
    for (let attempt = 1; ; attempt++) {
      const client = await this.connectOrWait(attempt);
      if (!client) continue;
      let committing = false;
      // The server may end the session between statements (a process frozen past
      // idle_in_transaction_session_timeout, a restart): the next statement fails with it, and the
      // event must not crash the process meanwhile.
      const ignore = () => {};
      client.on('error', ignore);
      const q: Queryable = { query: (text, values) => this.answered(client, client.query(text, values)) };
      try {
        await q.query(begin);
        const result = await fn(q);
        committing = true;
        await q.query('COMMIT');
        client.off('error', ignore);
        client.release();
        return result;
      } catch (error) {
        const broken = await this.rollBack(client);
        client.off('error', ignore);
        // A connection that cannot even roll back is closed rather than given to the next caller.
        client.release(broken ? toError(error) : undefined);
        if (isConflict(error) && attempt < CONFLICT_ATTEMPTS) {
          await backoff(attempt);
          continue;
        }
        // Lost before its COMMIT went out, the transaction was rolled back: it runs again.
        if (!committing && this.unavailable(error) && attempt < UNAVAILABLE_ATTEMPTS) {
          await unavailableBackoff(attempt);
          continue;
        }
        throw this.error(error);
      }
    }
  }

  /**
   * `transaction`, for a transaction on a hot path: its BEGIN goes out with its first `batch` and
   * its COMMIT with its `commitWith`, so the round trips are those of the statements alone. A
   * batch is several statements without parameters (values spelled with `literal`) sent as one
   * simple query; in READ COMMITTED each statement of it reads a snapshot of its own, as separate
   * queries would.
   */
  async batchedTransaction<R>(fn: (tx: BatchedTransaction) => Promise<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.connectOrWait(attempt);
      if (!client) continue;
      const outcome = await runBatched(this, client, false, fn);
      if (outcome.ok) return outcome.value;
      const { error, committing } = outcome;
      if (isConflict(error) && attempt < CONFLICT_ATTEMPTS) {
        await backoff(attempt);
        continue;
      }
      if (!committing && this.unavailable(error) && attempt < UNAVAILABLE_ATTEMPTS) {
        await unavailableBackoff(attempt);
        continue;
      }
      throw this.error(error);
    }
  }

  /**
   * Sends `sql` (statements without parameters, the last ones in a transaction they BEGIN) on a
   * connection of its own, and hands back their results with that transaction open, to go on with
   * (`proceed`, as batchedTransaction's `fn`, once) or to roll back (`abandon`). Null when the
   * statements failed: whatever they did before a COMMIT of their own was rolled back.
   */
  async open(sql: string): Promise<OpenTransaction | null> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch {
      return null;
    }
    const ignore = () => {};
    client.on('error', ignore);
    let results: Array<{ rows: Record<string, unknown>[] }>;
    try {
      const result = (await this.answered(client, client.query(sql))) as unknown as pg.QueryResult | pg.QueryResult[];
      results = Array.isArray(result) ? result : [result];
    } catch (error) {
      const broken = await this.rollBack(client);
      client.off('error', ignore);
      client.release(broken ? toError(error) : undefined);
      return null;
    }
    client.off('error', ignore);
    let taken = false;
    return {
      results,
      proceed: async (fn) => {
        if (taken) throw new Error('an open transaction goes on once');
        taken = true;
        const outcome = await runBatched(this, client, true, fn);
        if (outcome.ok) return outcome.value;
        throw this.error(outcome.error);
      },
      abandon: async () => {
        if (taken) return;
        taken = true;
        const broken = await this.rollBack(client);
        client.release(broken ? new Error('the connection failed while rolling back') : undefined);
      },
    };
  }

  /**
   * Rolls back `client`'s transaction; true when the connection is broken (it failed, or was given
   * up on, so nothing is sent on it) and must be closed rather than reused.
   */
  async rollBack(client: pg.ClientBase): Promise<boolean> {
    if (this.gaveUp(client)) return true;
    return this.answered(client, client.query('ROLLBACK')).then(
      () => false,
      () => true,
    );
  }

  /**
   * Whether the server could not take the work for a moment (see UNAVAILABLE_ATTEMPTS); never
   * once the store is closed.
   */
  private unavailable(error: unknown): boolean {
    if (this.closed || error instanceof LockstepError) return false;
    const code = errorCode(error) ?? '';
    // A server that does not answer in time is reported at once (see isUnreachable).
    if (/timeout/i.test(toError(error).message)) return false;
    return UNAVAILABLE_STATES.has(code) || DROPPED_CODES.has(code) || code.startsWith('08') && code !== '08001' && code !== '08004' ||
      /Connection terminated|connection (was )?lost/i.test(toError(error).message);
  }

  /**
   * A connection of its own, outside the pool and not yet connected, for a session that outlives
   * a statement (LISTEN); the caller connects and ends it.
   */
  client(applicationName: string): pg.Client {
    return new pg.Client({
      connectionString: postgresDriverUrl(this.options.url),
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      application_name: applicationName,
      types,
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The pool's end resolves once it let its idle connections go, not once they closed: wait for
    // each one's goodbye too, or a socket the server never answers would keep the process up.
    await closeWithin(this.pool.end().then(() => this.allRemoved()), this.answerTimeoutMs, () => {
      for (const client of this.clients) destroySocket(client);
    });
  }

  /** Resolves once every connection of the pool has closed. */
  private allRemoved(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.clients.size > 0) return;
        this.pool.off('remove', check);
        resolve();
      };
      this.pool.on('remove', check);
      check();
    });
  }

  /**
   * Lockstep's own errors pass through; PostgreSQL's become errors naming the server and the fix.
   * `connecting`: the error came from opening a connection, so whatever it says, the server could
   * not be reached (a connect timeout reads "Connection terminated unexpectedly").
   */
  error(error: unknown, { connecting = false } = {}): Error {
    if (error instanceof LockstepError) return error;
    const code = errorCode(error) ?? '';
    const message = toError(error).message;
    // The unique indexes are the last guard of the run rules (one active run per sync, ...):
    // hitting one is a conflict with the current state, not a broken store.
    if (code === '23505') {
      return new LockstepError(ErrorCode.Conflict, `the change conflicts with the current state of the store (${message})`, { cause: error });
    }
    if (code === '23503') return new NotFoundError('the change refers to a run or entity that does not exist in the store');
    if (this.closed || /Cannot use a pool after calling end/i.test(message)) {
      return new LockstepError(ErrorCode.Store, `store ${this.where} is closed`, { cause: error, location: `store ${this.where}` });
    }
    if (connecting || isUnreachable(error)) {
      return new LockstepError(ErrorCode.Store, `store ${this.where} cannot be reached: ${message} — ${connectionHint(code, message)}`, {
        cause: error,
        location: `store ${this.where}`,
        retryable: !(code.startsWith('28') || code === '3D000'),
      });
    }
    if (code === QUERY_CANCELED) {
      return new LockstepError(
        ErrorCode.Store,
        `store ${this.where}: ${message} (SQLSTATE ${code}) — the store's statements may run for ${describeMs(this.options.statementTimeoutMs)} (its statement_timeout, whatever the database or role sets): ` +
          'look for a session holding locks on the store\'s tables for long (pg_stat_activity, pg_locks), or a server too busy to answer',
        { cause: error, location: `store ${this.where}` },
      );
    }
    if (code === '42501' || code === '25006') {
      // A read-only user, a standby, or default_transaction_read_only: the store must write.
      const what = code === '25006' ? 'the server only allows reading (a standby, or default_transaction_read_only)' : message;
      return new LockstepError(
        ErrorCode.Store,
        `store ${this.where}: ${what} (SQLSTATE ${code}) — the store needs a user that may create and write the tables of its schema: ` +
          'connect to the primary as the schema\'s owner, or grant that user CREATE on the database and ALL on the schema',
        { cause: error, location: `store ${this.where}` },
      );
    }
    const transient = isConflict(error) || DROPPED_CODES.has(code) || code.startsWith('08') || code.startsWith('53') || code.startsWith('57P') ||
      /Connection terminated/i.test(message);
    return new LockstepError(ErrorCode.Store, `store ${this.where}: ${message}${code ? ` (SQLSTATE ${code})` : ''}`, {
      cause: error,
      location: `store ${this.where}`,
      retryable: transient,
    });
  }
}

/** SQLSTATE of a statement the server ended: past statement_timeout, or asked to (pg_cancel_backend). */
const QUERY_CANCELED = '57014';

/** `10 min`, `300 ms`: a duration for messages. */
function describeMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`;
}

/** The SQLSTATE or Node socket code of an error, if any. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether a SQLSTATE is a serialization failure or a deadlock: the transaction may succeed run again. */
export function isConflictState(code: string | undefined): boolean {
  return CONFLICT_STATES.has(code ?? '');
}

function isConflict(error: unknown): boolean {
  return CONFLICT_STATES.has(errorCode(error) ?? '');
}

/** The server cannot be reached, or refused us (address, credentials, database name). */
function isUnreachable(error: unknown): boolean {
  const code = errorCode(error) ?? '';
  if (CONNECT_CODES.has(code)) return true;
  if (code.startsWith('28') || code === '3D000' || code === '08001' || code === '08004') return true;
  const message = toError(error).message;
  // A TLS refusal happens while connecting, also when a pool connects for its first statement.
  if (postgresTlsHint(message, 'store URL') !== null) return true;
  return /timeout exceeded when trying to connect|connection timeout/i.test(message);
}

function connectionHint(code: string, message: string): string {
  const tls = postgresTlsHint(message, 'store URL');
  if (tls) return tls;
  if (code.startsWith('28')) return 'check the user name and password in the store URL';
  if (code === '3D000') return 'check the database name in the store URL, or create the database';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'check the host name in the store URL';
  if (/unsupported startup parameter/i.test(message)) {
    return "a connection pooler (PgBouncer) answers so: the store keeps state in its sessions (LISTEN, locks, timeouts), so give it PostgreSQL itself (the server's own port), or a pool in session mode that lets its startup parameters through (PgBouncer's ignore_startup_parameters)";
  }
  return 'check that the server is running and reachable at that host and port, and that the store URL is right';
}

/** A few milliseconds, growing, with jitter, so two transactions that collided do not collide again. */
async function backoff(attempt: number): Promise<void> {
  const ms = 2 ** attempt * (1 + Math.random());
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** 50 ms, doubling up to 2 s, with jitter: about 6 s over UNAVAILABLE_ATTEMPTS. */
async function unavailableBackoff(attempt: number): Promise<void> {
  const ms = Math.min(2000, 50 * 2 ** (attempt - 1)) * (0.75 + Math.random() / 2);
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** `PostgreSQL at host:port/database as user`, for messages: never the password. */
export function describeUrl(url: string): string {
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

/** A double-quoted SQL identifier. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new LockstepError(ErrorCode.Validation, `schema name ${JSON.stringify(name)} contains a NUL character`);
  return `"${name.replace(/"/g, '""')}"`;
}

// ---------------------------------------------------------------------------------------------
// Text PostgreSQL cannot hold: a NUL character. Keys and messages are kept with NUL written as
// U+0001 U+0001 and U+0001 as U+0001 U+0002. The escape is a prefix code whose images sort like the
// characters they stand for, so escaped keys keep their byte order (snapshot pages are in key
// order); JSON text never holds either character, so keys the sync runner writes pass unchanged.

const NUL = '\u0000';
const SOH = '\u0001';

function needsEscape(text: string): boolean {
  return text.indexOf(NUL) !== -1 || text.indexOf(SOH) !== -1;
}

/** `text` as stored. */
export function storedText(text: string): string {
  if (!needsEscape(text)) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out += c === 0 ? SOH + SOH : c === 1 ? SOH + '\u0002' : text[i];
  }
  return out;
}

/** Stored text as it was written. */
export function readText(text: string): string {
  if (text.indexOf(SOH) === -1) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === 1) out += text.charCodeAt(++i) === 1 ? NUL : SOH;
    else out += text[i];
  }
  return out;
}

/** Stored text that may be null. */
export function readNullableText(text: string | null): string | null {
  return text === null ? null : readText(text);
}

/**
 * A list of texts for one parameter: joined by line breaks for `string_to_array($n, E'\n')` (one
 * string, no array literal built and parsed) when no text holds a line break and the list is not
 * one empty text; otherwise as an array for `$n::text[]`. Texts are stored forms (see storedText).
 */
export type TextList = { joined: string } | { array: string[] };

export function textList(texts: readonly string[]): TextList {
  let list = texts;
  let joined = texts.join('\n');
  if (needsEscape(joined)) {
    list = texts.map(storedText);
    joined = list.join('\n');
  }
  if (list.length === 1 && list[0] === '') return { array: [...list] };
  let breaks = 0;
  for (let at = joined.indexOf('\n'); at !== -1; at = joined.indexOf('\n', at + 1)) breaks++;
  return breaks === list.length - 1 ? { joined } : { array: [...list] };
}

/** SQL for a TextList bound as parameter `$n`: an expression of type text[]. */
export function textListSql(list: TextList, n: number): string {
  return 'joined' in list ? `string_to_array($${n}::text, E'\\n')` : `$${n}::text[]`;
}

export function textListValue(list: TextList): string | string[] {
  return 'joined' in list ? list.joined : list.array;
}

/** A transaction PostgresDatabase.open left open. */
export interface OpenTransaction {
  /** The results of the statements sent, in order. */
  results: Array<{ rows: Record<string, unknown>[] }>;
  /** Goes on with the transaction and commits it (rolled back when `fn` throws, and thrown). */
  proceed<R>(fn: (tx: BatchedTransaction) => Promise<R>): Promise<R>;
  /** Rolls the transaction back (nothing when it went on). */
  abandon(): Promise<void>;
}

/**
 * Runs `fn` in a transaction on `client` (begun already, or begun with its first statements, see
 * batchedTransaction), commits, and gives the connection back; a failure is rolled back and handed
 * back with whether the COMMIT had gone out.
 */
async function runBatched<R>(
  db: Pick<PostgresDatabase, 'answered' | 'rollBack'>,
  client: pg.PoolClient,
  begunAlready: boolean,
  fn: (tx: BatchedTransaction) => Promise<R>,
): Promise<{ ok: true; value: R } | { ok: false; error: unknown; committing: boolean }> {
  const ignore = () => {};
  client.on('error', ignore);
  let begun = begunAlready;
  let committing = false;
  let committed = false;
  const multi = async (sql: string): Promise<Array<{ rows: Record<string, unknown>[] }>> => {
    const result = (await db.answered(client, client.query(sql))) as unknown as pg.QueryResult | pg.QueryResult[];
    return Array.isArray(result) ? result : [result];
  };
  const tx: BatchedTransaction = {
    query: async (text, values) => {
      if (committed) throw new Error('statement after the transaction was committed');
      if (!begun) {
        begun = true;
        await db.answered(client, client.query(BEGIN));
      }
      return db.answered(client, client.query(text, values));
    },
    batch: async (sql) => {
      if (committed) throw new Error('statement after the transaction was committed');
      const first = !begun;
      // Set first: a failure part-way leaves a transaction to roll back.
      begun = true;
      const results = await multi(first ? `${BEGIN}; ${sql}` : sql);
      if (first) results.shift();
      return results;
    },
    commitWith: async (sql) => {
      if (committed) throw new Error('statement after the transaction was committed');
      const first = !begun;
      begun = true;
      committing = true;
      const results = await multi(first ? `${BEGIN}; ${sql}; COMMIT` : `${sql}; COMMIT`);
      if (first) results.shift();
      committed = true;
      results.pop();
      return results;
    },
    literal: (value) => (typeof value === 'number' ? String(value) : client.escapeLiteral(value)),
  };
  try {
    const value = await fn(tx);
    committing = true;
    if (begun && !committed) await db.answered(client, client.query('COMMIT'));
    client.off('error', ignore);
    client.release();
    return { ok: true, value };
  } catch (error) {
    const broken = committed || !begun ? false : await db.rollBack(client);
    client.off('error', ignore);
    client.release(broken ? toError(error) : undefined);
    return { ok: false, error, committing };
  }
}

/** A transaction of PostgresDatabase.batchedTransaction. */
export interface BatchedTransaction extends Queryable {
  /** Statements without parameters, in one round trip: each one's result, in order. */
  batch(sql: string): Promise<Array<{ rows: Record<string, unknown>[] }>>;
  /** `batch`, then COMMIT in the same round trip; nothing runs in the transaction after it. */
  commitWith(sql: string): Promise<Array<{ rows: Record<string, unknown>[] }>>;
  /** A value spelled as an SQL literal for a batch (text quoted and escaped). */
  literal(value: string | number): string;
}

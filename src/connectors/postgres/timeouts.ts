/**
 * How long a PostgreSQL connection waits for the server. The server ends a statement that runs too
 * long itself (`statement_timeout`); a server that never answers at all is caught here: past the
 * same time plus a grace the connection's socket is destroyed and the operation fails with a
 * message naming the host and port and what was waited for, never the URL.
 */
import pg from 'pg';
import { ErrorCode, LockstepError } from '../../core/errors.js';

export interface PostgresTimeouts {
  /** Opening a connection, up to the server's first ReadyForQuery (ms). */
  connectMs: number;
  /** One statement: the server's `statement_timeout`, and the client's wait past it (ms). */
  statementMs: number;
}

/** What the client waits for a server past its own statement timeout before giving up on it. */
const GRACE_MS = 5_000;
/** How long a cancel request's own connection may take before it is given up on. */
const CANCEL_REQUEST_MS = 5_000;
/** TCP keepalive probes start after this long without traffic, so a vanished peer is noticed. */
const KEEPALIVE_MS = 30_000;

/**
 * Connection URLs whose server refused `statement_timeout` as a startup parameter: a connection
 * pooler in front of PostgreSQL (PgBouncer takes no parameter it does not know at connect). Their
 * connections go without it; their statements are bounded by the client's own deadline (withDeadline).
 */
const refusingStartupTimeout = new Set<string>();

/** The pg client settings for these timeouts, for connections to `url`. */
export function clientTimeouts(timeouts: PostgresTimeouts, url: string): pg.ClientConfig {
  return {
    connectionTimeoutMillis: Math.max(1, Math.round(timeouts.connectMs)),
    ...(refusingStartupTimeout.has(url) ? {} : { statement_timeout: Math.max(1, Math.round(timeouts.statementMs)) }),
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_MS,
  };
}

/**
 * Whether `error` is a connection to `url` refused for the statement timeout sent at connect;
 * if so, later connections to `url` go without it (see clientTimeouts), and the caller connects again.
 */
export function refusedStartupTimeout(error: unknown, url: string): boolean {
  const refused =
    (error as { code?: unknown }).code === '08P01' && /unsupported startup parameter.*statement_timeout/i.test(error instanceof Error ? error.message : '');
  if (!refused || refusingStartupTimeout.has(url)) return false;
  refusingStartupTimeout.add(url);
  return true;
}

/** `10 s`, `2 min`: a duration for messages. */
export function describeDuration(ms: number): string {
  if (ms < 60_000 || ms % 60_000 !== 0) return `${Number((ms / 1000).toFixed(1))} s`;
  return `${ms / 60_000} min`;
}

/** `PostgreSQL at host:5432/db as user` → `host:5432`. */
export function hostPort(where: string): string {
  const match = /at ([^/\s]+)/.exec(where);
  return match?.[1] ?? 'the server';
}

/** The failure of a connection that did not open within `ms`. */
export function connectTimeoutError(role: 'source' | 'destination', where: string, ms: number, cause?: unknown): LockstepError {
  return new LockstepError(
    ErrorCode.Connection,
    `connecting to ${role} PostgreSQL at ${hostPort(where)} timed out after ${describeDuration(ms)} — check that the server is running and answering at that host and port (a firewall or proxy may accept connections and pass nothing on), or raise connectTimeoutSeconds`,
    { cause },
  );
}

/** Whether pg failed the way its connection timeout makes it fail. */
export function isConnectTimeout(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /timeout expired|connection timeout|timeout exceeded when trying to connect/i.test(message);
}

/**
 * Waits for `work` on `client` at most `ms` plus a grace: past it, and at once when `signal` aborts,
 * the client's socket is destroyed (pg then fails whatever it was doing) and the wait ends with
 * `timedOut()`'s error (or the signal's reason). On an abort the server is first asked to cancel the
 * statement (cancelStatement): one that sends nothing for a while would not notice the closed socket.
 */
export async function withDeadline<T>(
  client: pg.Client | pg.PoolClient,
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
      destroySocket(client);
    };
    timer = setTimeout(() => destroy(timedOut()), ms + GRACE_MS);
    if (signal) {
      onAbort = () => {
        cancelStatement(client);
        destroy(signal.reason);
      };
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

/**
 * Asks the server to cancel the statement `client` is running, with the protocol's cancel request on
 * a connection of its own (as psql's Ctrl-C does; a connection pooler passes it on): a slow query or
 * a lock wait would otherwise go on on the server, closed socket or not, until it ends or its
 * statement timeout. Best effort: the request's own failure is ignored, and it is given up on after
 * CANCEL_REQUEST_MS.
 */
function cancelStatement(client: pg.Client | pg.PoolClient): void {
  // pg's own Client#cancel reads the deprecated `activeQuery`, which prints a warning on every
  // cancel: the request is sent here the way it sends it, on a new client's connection.
  const target = client as unknown as { _activeQuery?: unknown; processID?: number; secretKey?: number; host?: string; port?: number };
  if (!target._activeQuery || target.processID === undefined || target.secretKey === undefined || socketDestroyed(client)) return;
  const { processID, secretKey, host = 'localhost', port = 5432 } = target;
  try {
    const { connection } = new pg.Client({ host, port }) as unknown as {
      connection: {
        connect(port: number | string, host?: string): void;
        cancel(processID: number, secretKey: number): void;
        on(event: 'connect' | 'error', listener: () => void): void;
        stream?: { destroy(): void };
      };
    };
    connection.on('error', () => undefined);
    connection.on('connect', () => connection.cancel(processID, secretKey));
    if (host.startsWith('/')) connection.connect(`${host}/.s.PGSQL.${port}`);
    else connection.connect(port, host);
    setTimeout(() => connection.stream?.destroy(), CANCEL_REQUEST_MS).unref();
  } catch {
    // Closing the socket still ends the wait; the server stops the statement by its own timeout.
  }
}

/** Closes the client's socket at once, without the protocol's goodbye (the server may not answer). */
export function destroySocket(client: pg.Client | pg.PoolClient): void {
  const connection = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  connection?.stream?.destroy();
}

/** Whether the client's socket was destroyed (it must not go back to a pool). */
export function socketDestroyed(client: pg.Client | pg.PoolClient): boolean {
  const connection = (client as unknown as { connection?: { stream?: { destroyed?: boolean } } }).connection;
  return connection?.stream?.destroyed === true;
}

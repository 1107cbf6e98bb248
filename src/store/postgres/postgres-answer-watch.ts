/**
 * Statements watched for their answer: a network that drops packets without resetting the
 * connection (a partition, a NAT or firewall that forgot the connection) would otherwise keep the
 * process waiting forever. Used by every connection the PostgreSQL store opens: the pool's, the
 * notifications connection and `lockstep store migrate`'s copy.
 */
import pg from 'pg';
import { postgresDriverUrl } from '../../core/connections.js';
import { ErrorCode, LockstepError } from '../../core/errors.js';

export interface AnswerWatchOptions {
  /** The server's URL, for the connection that asks about a late statement. */
  url: string;
  /** `PostgreSQL at host:port/database (schema "lockstep")`, for messages. */
  where: string;
  /**
   * Milliseconds a statement may go unanswered before the server is asked, on a connection of its
   * own, whether the statement's session is still at work; also how long that question may take.
   */
  answerTimeoutMs: number;
}

/** What the server says of a session whose statement is late. */
type SessionState =
  /** At work on the statement: its answer is still to come. */
  | 'working'
  /** Not at work: its answer was sent, or the session is gone. */
  | 'idle'
  /** At work, but waiting for the rest of what was sent to it (COPY data, a message's end). */
  | 'waiting'
  /** The question went unanswered too. */
  | 'unreachable';

export class AnswerWatch {
  /** Connections given up on after a statement went unanswered: their sockets are destroyed, never reused. */
  private readonly abandoned = new WeakSet<pg.ClientBase>();

  constructor(private readonly options: AnswerWatchOptions) {}

  get answerTimeoutMs(): number {
    return this.options.answerTimeoutMs;
  }

  /**
   * Waits for the answer `send` is to `client`'s statement (or for anything else the server must
   * do before `send` settles: taking a COPY's rows). Each time the answer is answerTimeoutMs late,
   * the server is asked on a connection of its own whether the statement's session is still at
   * work: while it is, the wait goes on; when it is not (the answer was lost on the way), when it
   * waits for what this process sent (that was lost), or when the question goes unanswered too (a
   * partition), the connection is given up on — its socket destroyed, so it is never reused and
   * nothing more is sent on it — and the statement fails with an error naming the store.
   */
  async answered<T>(client: pg.ClientBase, send: Promise<T>): Promise<T> {
    const started = performance.now();
    let settled = false;
    const answer = send.then(
      (value) => {
        settled = true;
        return { value };
      },
      (error: unknown) => {
        settled = true;
        throw error;
      },
    );
    // An answer after the connection was given up on has nobody to tell.
    answer.catch(() => undefined);
    let sent = bytesSent(client);
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), this.options.answerTimeoutMs);
      });
      try {
        const first = await Promise.race([answer, late]);
        if (first) return first.value;
      } finally {
        clearTimeout(timer);
      }
      // A server waiting for what this process is still sending (a large message on a slow link)
      // waits for good reason.
      const sending = bytesSent(client) > sent;
      sent = bytesSent(client);
      const session = await this.sessionState(client);
      if (settled || session === 'working' || (session === 'waiting' && sending)) continue;
      this.abandoned.add(client);
      destroySocket(client);
      throw this.unanswered(performance.now() - started, session);
    }
  }

  /** Whether `client`'s connection was given up on (see `answered`): it is closed, not rolled back. */
  gaveUp(client: pg.ClientBase): boolean {
    return this.abandoned.has(client);
  }

  /** What the server says of `client`'s session, asked on a connection of its own within answerTimeoutMs. */
  private async sessionState(client: pg.ClientBase): Promise<SessionState> {
    const pid = (client as pg.ClientBase & { processID?: number }).processID;
    const probe = new pg.Client({
      connectionString: postgresDriverUrl(this.options.url),
      connectionTimeoutMillis: this.options.answerTimeoutMs,
      query_timeout: this.options.answerTimeoutMs,
      application_name: 'lockstep answer check',
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      const { rows } = await probe.query<{ state: string | null; wait_event: string | null }>(
        'SELECT state, wait_event FROM pg_stat_activity WHERE pid = $1',
        [pid ?? 0],
      );
      await probe.end();
      const row = rows[0];
      if (row?.state !== 'active') return 'idle';
      // A COPY FROM STDIN (or a statement whose message was cut) waits for this process: what it
      // sent was lost, and the server would wait for it as long as this process waits for the answer.
      return row.wait_event === 'ClientRead' ? 'waiting' : 'working';
    } catch {
      // The server did not answer this either: nothing polite is sent on the way out.
      destroySocket(probe);
      return 'unreachable';
    }
  }

  /** The failure of a statement unanswered for `waitedMs`. */
  private unanswered(waitedMs: number, session: Exclude<SessionState, 'working'>): LockstepError {
    const seconds = Number((waitedMs / 1000).toFixed(1));
    const what =
      session === 'unreachable'
        ? 'and did not answer on a new connection either'
        : session === 'waiting'
          ? 'and the server is waiting for the rest of what was sent (it was lost on the way)'
          : 'although the server says it is not working on it (its answer was lost on the way)';
    return new LockstepError(
      ErrorCode.Store,
      `store ${this.options.where} did not answer a statement within ${seconds} s, ${what} — check the network between this process and the server ` +
        `(a firewall, proxy or NAT may keep a connection open and pass nothing on) and that the server is up; the connection was closed, ` +
        `and the wait is set by the store URL's answer_timeout parameter (seconds)`,
      { retryable: true },
    );
  }
}

/** Bytes of the client's connection handed to the network so far (none queued in the process counted). */
function bytesSent(client: pg.ClientBase): number {
  const stream = (client as unknown as { connection?: { stream?: { bytesWritten?: number; writableLength?: number } } }).connection?.stream;
  return (stream?.bytesWritten ?? 0) - (stream?.writableLength ?? 0);
}

/**
 * Waits for `closing` (connections ended with the protocol's goodbye) at most `ms`: on a network
 * that stopped answering, the server never closes its side (TCP gives up only after many minutes),
 * so past that `giveUp` closes the sockets at once.
 */
export async function closeWithin(closing: Promise<unknown>, ms: number, giveUp: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  try {
    if ((await Promise.race([closing.catch(() => undefined), late])) === 'late') giveUp();
  } finally {
    clearTimeout(timer);
  }
}

/** Closes the client's socket at once, without the protocol's goodbye (the server may not answer). */
export function destroySocket(client: pg.ClientBase): void {
  const connection = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  connection?.stream?.destroy();
}

/**
 * Change notifications over LISTEN/NOTIFY, on a connection of its own: LISTEN belongs to a
 * session, and a pooled connection is handed to other work between statements.
 *
 *   idle ──watch──► connecting ──LISTEN done──► listening ◄──┐ a check every checkEveryMs
 *                      ▲                            │    └──────┘ answered
 *                      │                            │ connection lost, or a check unanswered (logged once)
 *                      └──── after a backoff ◄──────┘ (each listener then hears every topic once)
 *   any ──last unsubscribe──► idle;  any ──close──► closed
 *
 * A connection the network stopped answering gives no sign of it: nothing more is heard, and
 * nothing says so. The checks are statements on it, watched as every store statement is (see
 * AnswerWatch), so such a connection is given up within about the answer timeout. A notification
 * sent while the connection was down is gone; hearing every topic after a reconnect makes
 * listeners look for what they missed (polling would find it later anyway).
 */
import type pg from 'pg';
import { toError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { Logger, StoreTopic } from '../../core/ports.js';
import { quoteIdent } from './postgres-database.js';
import { closeWithin, destroySocket } from './postgres-answer-watch.js';

export const STORE_TOPICS: readonly StoreTopic[] = ['work', 'finished', 'schema', 'cancel'];

export interface PostgresNotificationsOptions {
  /** A new, unconnected client with the store's settings. */
  client: () => pg.Client;
  /** The channel notifications are sent on (unquoted). */
  channel: string;
  /** `PostgreSQL at host:port/database (schema "lockstep")`, for messages. */
  where: string;
  /**
   * Waits for the answer to a statement sent on the connection, and fails when the network
   * stopped answering, the connection closed (PostgresDatabase.answered).
   */
  answered: <T>(client: pg.Client, send: Promise<T>) => Promise<T>;
  /** Milliseconds between checks that a listening connection still answers. */
  checkEveryMs: number;
  /** Told when a listening connection is lost (default: nobody). */
  logger?: Logger;
  /** Milliseconds before the first attempt to reconnect; doubles on each failure (default: 100). */
  retryMs?: number;
  /** Milliseconds between attempts at most (default: 30000). */
  maxRetryMs?: number;
  /**
   * Whether a server process id is one of this process's own connections: what they announce is
   * heard `echoDelayMs` later (default: never, and 0).
   */
  isOwnBackend?: (pid: number) => boolean;
  /**
   * Milliseconds an announcement of this process's own making waits: the change's maker acts on
   * it at once (a member's end hands off to the next member), and listeners reacting to the echo
   * meanwhile would compete with that.
   */
  echoDelayMs?: number;
}

export class PostgresNotifications {
  private readonly options: Required<PostgresNotificationsOptions>;
  private readonly listeners = new Set<(topic: StoreTopic) => void>();
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The next check that the connection still answers, while listening. */
  private checkTimer: NodeJS.Timeout | null = null;
  /** The connection listens: its loss is logged (failed attempts to connect again are not). */
  private listening = false;
  /** Bumped whenever a connection is given up, so its late events change nothing. */
  private generation = 0;
  /** Failed attempts since the connection last worked. */
  private failures = 0;
  /** A connection was lost since the last LISTEN: notifications may have been missed. */
  private missed = false;
  private closed = false;

  constructor(options: PostgresNotificationsOptions) {
    this.options = { retryMs: 100, maxRetryMs: 30_000, isOwnBackend: () => false, echoDelayMs: 0, logger: silentLogger, ...options };
  }

  watch(listener: (topic: StoreTopic) => void): () => void {
    if (this.closed) return () => undefined;
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.connect();
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) void this.stop();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await this.stop();
  }

  private connect(): void {
    const generation = ++this.generation;
    const client = this.options.client();
    this.client = client;
    client.on('notification', (message) => {
      if (generation !== this.generation || message.channel !== this.options.channel) return;
      if (this.options.echoDelayMs > 0 && this.options.isOwnBackend(message.processId)) {
        setTimeout(() => {
          if (!this.closed) this.emit(message.payload);
        }, this.options.echoDelayMs).unref();
      } else {
        this.emit(message.payload);
      }
    });
    // Without an 'error' listener a dropped connection would crash the process.
    client.on('error', (error) => this.lost(generation, error));
    client.on('end', () => this.lost(generation));
    client
      .connect()
      .then(() => this.listen(client))
      .then(
        () => {
          if (generation !== this.generation) return;
          this.failures = 0;
          this.listening = true;
          this.check(client, generation);
          if (this.missed) {
            this.missed = false;
            for (const topic of STORE_TOPICS) this.emit(topic);
          }
        },
        (error: unknown) => this.lost(generation, error),
      );
  }

  /** LISTEN, watched: it does nothing on a session listening already, so it is the check too. */
  private listen(client: pg.Client): Promise<unknown> {
    return this.options.answered(client, client.query(`LISTEN ${quoteIdent(this.options.channel)}`));
  }

  /** Checks in checkEveryMs that the connection still answers, and so on while it does. */
  private check(client: pg.Client, generation: number): void {
    this.checkTimer = setTimeout(() => {
      this.checkTimer = null;
      if (generation !== this.generation) return;
      this.listen(client).then(
        () => {
          if (generation === this.generation) this.check(client, generation);
        },
        (error: unknown) => this.lost(generation, error),
      );
    }, this.options.checkEveryMs);
    // Listening alone keeps no process running.
    this.checkTimer.unref();
  }

  private lost(generation: number, error?: unknown): void {
    if (generation !== this.generation) return;
    this.generation++;
    this.missed = true;
    this.stopChecking();
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
    if (this.closed || this.listeners.size === 0) return;
    if (this.listening) {
      this.listening = false;
      this.options.logger.warn(
        `stopped hearing notifications from store ${this.options.where}; listening again on a new connection, retried with backoff — ` +
          'work queued meanwhile is looked for once it listens, and found by polling until then',
        { error: error === undefined ? 'the server closed the connection' : toError(error).message },
      );
    }
    const delay = Math.min(this.options.maxRetryMs, this.options.retryMs * 2 ** this.failures++);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closed && this.listeners.size > 0) this.connect();
    }, delay);
  }

  private async stop(): Promise<void> {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopChecking();
    this.failures = 0;
    this.missed = false;
    this.listening = false;
    const client = this.client;
    this.client = null;
    if (client) await closeWithin(client.end(), this.options.checkEveryMs, () => destroySocket(client));
  }

  private stopChecking(): void {
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = null;
  }

  private emit(payload: string | undefined): void {
    const topic = STORE_TOPICS.find((t) => t === payload);
    if (topic === undefined) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(topic);
      } catch {
        // A listener's failure is its own: the others still hear, and the connection stays.
      }
    }
  }
}

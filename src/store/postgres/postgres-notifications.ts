/**
 * Change notifications over LISTEN/NOTIFY, on a connection of its own: LISTEN belongs to a
 * session, and a pooled connection is handed to other work between statements.
 *
 *   idle ──watch──► connecting ──LISTEN done──► listening
 *                      ▲                            │ connection lost
 *                      └──── after a backoff ◄──────┘ (each listener then hears every topic once)
 *   any ──last unsubscribe──► idle;  any ──close──► closed
 *
 * A notification sent while the connection was down is gone; hearing every topic after a
 * reconnect makes listeners look for what they missed (polling would find it later anyway).
 */
import type pg from 'pg';
import type { StoreTopic } from '../../core/ports.js';
import { quoteIdent } from './postgres-database.js';

export const STORE_TOPICS: readonly StoreTopic[] = ['work', 'finished'];

export interface PostgresNotificationsOptions {
  /** A new, unconnected client with the store's settings. */
  client: () => pg.Client;
  /** The channel notifications are sent on (unquoted). */
  channel: string;
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
  /** Bumped whenever a connection is given up, so its late events change nothing. */
  private generation = 0;
  /** Failed attempts since the connection last worked. */
  private failures = 0;
  /** A connection was lost since the last LISTEN: notifications may have been missed. */
  private missed = false;
  private closed = false;

  constructor(options: PostgresNotificationsOptions) {
    this.options = { retryMs: 100, maxRetryMs: 30_000, isOwnBackend: () => false, echoDelayMs: 0, ...options };
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
    client.on('error', () => this.lost(generation));
    client.on('end', () => this.lost(generation));
    client
      .connect()
      .then(() => client.query(`LISTEN ${quoteIdent(this.options.channel)}`))
      .then(
        () => {
          if (generation !== this.generation) return;
          this.failures = 0;
          if (this.missed) {
            this.missed = false;
            for (const topic of STORE_TOPICS) this.emit(topic);
          }
        },
        () => this.lost(generation),
      );
  }

  private lost(generation: number): void {
    if (generation !== this.generation) return;
    this.generation++;
    this.missed = true;
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
    if (this.closed || this.listeners.size === 0) return;
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
    this.failures = 0;
    this.missed = false;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private emit(payload: string | undefined): void {
    if (payload !== 'work' && payload !== 'finished') return;
    for (const listener of [...this.listeners]) {
      try {
        listener(payload);
      } catch {
        // A listener's failure is its own: the others still hear, and the connection stays.
      }
    }
  }
}

/**
 * The log of webhook deliveries in the embedded store. An accepted delivery's (source, event id)
 * is unique, so the same dbt Cloud event delivered twice is recorded as a duplicate and starts
 * nothing the second time, even when two deliveries race. Refused deliveries are kept for the
 * newest few and counted per reason; the others for a number of days (see WebhookRetention).
 */
import { DEFAULT_WEBHOOK_RETENTION, NO_WEBHOOKS, REFUSED_WEBHOOK_STATUSES, isRefusedDelivery } from '../../core/webhooks.js';
import type { SecretCodec } from '../../core/secrets.js';
import type {
  NewWebhookEvent,
  WebhookRefusalTotal,
  WebhookRetention,
  WebhookSettings,
  WebhookEvent,
  WebhookEventQuery,
  WebhookEventStore,
} from '../../core/webhooks.js';
import { immediateTransaction, type SqliteDatabase, type SqliteStatement } from './sqlite-database.js';
import { toWebhookEvent, toWebhookRefusal, type WebhookEventRow, type WebhookRefusalRow } from '../rows.js';

export const WEBHOOK_EVENTS_SCHEMA = `
CREATE TABLE webhook_events (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  source         TEXT NOT NULL,
  received_at    REAL NOT NULL,
  event_id       TEXT,
  event_type     TEXT,
  outcome        TEXT NOT NULL,
  reason         TEXT NOT NULL,
  http_status    INTEGER NOT NULL,
  triggered      TEXT NOT NULL,
  payload        TEXT NOT NULL
);
CREATE UNIQUE INDEX webhook_events_accepted_once ON webhook_events (source, event_id)
  WHERE outcome = 'accepted' AND event_id IS NOT NULL;
CREATE INDEX webhook_events_by_time ON webhook_events (received_at);
`;

const REFUSED = `http_status IN (${REFUSED_WEBHOOK_STATUSES.join(', ')})`;

/**
 * Refused deliveries counted per source and reason (the reasons are Lockstep's own fixed texts, so
 * the table stays as small as they are few), and an index to find the newest refused ones. What the
 * log holds already is counted.
 */
export const WEBHOOK_REFUSALS_SCHEMA = `
CREATE TABLE webhook_refusals (
  source       TEXT NOT NULL,
  reason       TEXT NOT NULL,
  http_status  INTEGER NOT NULL,
  count        INTEGER NOT NULL,
  first_at     REAL NOT NULL,
  last_at      REAL NOT NULL,
  PRIMARY KEY (source, reason)
) WITHOUT ROWID;
INSERT INTO webhook_refusals (source, reason, http_status, count, first_at, last_at)
  SELECT source, reason, MAX(http_status), COUNT(*), MIN(received_at), MAX(received_at)
  FROM webhook_events WHERE ${REFUSED} GROUP BY source, reason;
CREATE INDEX webhook_events_refused ON webhook_events (id) WHERE ${REFUSED};
`;

/** The endpoints' settings as applied from the workspace: one row per configured endpoint. */
export const WEBHOOK_SETTINGS_SCHEMA = `
CREATE TABLE webhook_settings (
  endpoint    TEXT PRIMARY KEY,
  settings    TEXT NOT NULL,
  updated_at  REAL NOT NULL
) WITHOUT ROWID;
`;

export class SqliteWebhookStore implements WebhookEventStore {
  private readonly insert: SqliteStatement;
  private readonly findAccepted: SqliteStatement;
  private readonly byId: SqliteStatement;
  private readonly countRefusal: SqliteStatement;
  private readonly pruneRefused: SqliteStatement;
  private readonly pruneOld: SqliteStatement;

  constructor(
    private readonly db: SqliteDatabase,
    /** Wraps a store failure into Lockstep's error, naming the file. */
    private readonly wrap: (error: unknown) => Error,
    /** Seals the endpoints' secrets in the stored settings. */
    private readonly secrets: SecretCodec,
  ) {
    this.insert = db.prepare(
      `INSERT INTO webhook_events (source, received_at, event_id, event_type, outcome, reason, http_status, triggered, payload)
       VALUES (@source, @receivedAt, @eventId, @eventType, @outcome, @reason, @httpStatus, @triggered, @payload) RETURNING *`,
    );
    this.findAccepted = db.prepare(
      `SELECT id FROM webhook_events WHERE source = ? AND event_id = ? AND outcome = 'accepted'`,
    );
    this.byId = db.prepare('SELECT * FROM webhook_events WHERE id = ?');
    this.countRefusal = db.prepare(
      `INSERT INTO webhook_refusals (source, reason, http_status, count, first_at, last_at) VALUES (@source, @reason, @httpStatus, 1, @at, @at)
       ON CONFLICT (source, reason) DO UPDATE SET count = count + 1, http_status = excluded.http_status, last_at = max(last_at, excluded.last_at)`,
    );
    this.pruneRefused = db.prepare(
      `DELETE FROM webhook_events WHERE ${REFUSED}
         AND id <= (SELECT id FROM webhook_events WHERE ${REFUSED} ORDER BY id DESC LIMIT 1 OFFSET ?)`,
    );
    this.pruneOld = db.prepare(`DELETE FROM webhook_events WHERE received_at < ? AND NOT (${REFUSED})`);
  }

  async record(event: NewWebhookEvent, retention: WebhookRetention = DEFAULT_WEBHOOK_RETENTION): Promise<{ event: WebhookEvent; duplicate: boolean }> {
    return this.immediate(() => {
      if (isRefusedDelivery(event)) {
        this.countRefusal.run({ source: event.source, reason: event.reason, httpStatus: event.httpStatus, at: event.receivedAt });
        this.pruneRefused.run(Math.max(0, retention.refusedKept - 1));
      } else if (retention.retentionDays > 0) {
        this.pruneOld.run(event.receivedAt - retention.retentionDays * 86_400_000);
      }
      let outcome = event.outcome;
      let reason = event.reason;
      let duplicate = false;
      if (outcome === 'accepted' && event.eventId !== null) {
        const first = this.findAccepted.get(event.source, event.eventId) as { id: number } | undefined;
        if (first) {
          duplicate = true;
          outcome = 'duplicate';
          reason = `event ${event.eventId} was already received (delivery ${first.id}); nothing started again`;
        }
      }
      const row = this.insert.get({
        source: event.source,
        receivedAt: event.receivedAt,
        eventId: event.eventId,
        eventType: event.eventType,
        outcome,
        reason,
        httpStatus: event.httpStatus,
        triggered: JSON.stringify(event.triggered),
        payload: event.payloadExcerpt.slice(0, 2000),
      }) as WebhookEventRow;
      return { event: toWebhookEvent(row), duplicate };
    });
  }

  /** The applied settings; called inside the store's own transactions. */
  readSettings(): WebhookSettings {
    const rows = this.db.prepare('SELECT endpoint, settings FROM webhook_settings').all() as Array<{ endpoint: string; settings: string }>;
    const settings: WebhookSettings = { ...NO_WEBHOOKS };
    for (const row of rows) {
      if (row.endpoint === 'dbtCloud' || row.endpoint === 'fivetran') {
        settings[row.endpoint] = this.secrets.openWebhook(row.endpoint, JSON.parse(row.settings) as { secret: string });
      }
    }
    return settings;
  }

  /** Replaces the applied settings; called inside the store's own transactions. */
  writeSettings(settings: WebhookSettings, now: number): void {
    this.db.prepare('DELETE FROM webhook_settings').run();
    const insert = this.db.prepare('INSERT INTO webhook_settings (endpoint, settings, updated_at) VALUES (?, ?, ?)');
    for (const endpoint of ['dbtCloud', 'fivetran'] as const) {
      const value = settings[endpoint];
      if (value) insert.run(endpoint, JSON.stringify(this.secrets.sealWebhook(endpoint, value)), now);
    }
  }

  async list(query: WebhookEventQuery): Promise<WebhookEvent[]> {
    const where = query.source ? 'WHERE source = ?' : '';
    const params = query.source ? [query.source, query.limit, query.offset] : [query.limit, query.offset];
    try {
      const rows = this.db
        .prepare(`SELECT * FROM webhook_events ${where} ORDER BY id DESC LIMIT ? OFFSET ?`)
        .all(...params) as WebhookEventRow[];
      return rows.map((row) => toWebhookEvent(row));
    } catch (error) {
      throw this.wrap(error);
    }
  }

  async refusals(): Promise<WebhookRefusalTotal[]> {
    try {
      const rows = this.db.prepare('SELECT * FROM webhook_refusals ORDER BY last_at DESC, source, reason').all() as WebhookRefusalRow[];
      return rows.map((row) => toWebhookRefusal(row));
    } catch (error) {
      throw this.wrap(error);
    }
  }

  async get(id: number): Promise<WebhookEvent | null> {
    const row = this.byId.get(id) as WebhookEventRow | undefined;
    return row ? toWebhookEvent(row) : null;
  }

  private immediate<R>(fn: () => R): R {
    try {
      return immediateTransaction(this.db, fn);
    } catch (error) {
      throw this.wrap(error);
    }
  }
}

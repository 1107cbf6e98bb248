/**
 * The log of webhook deliveries in the PostgreSQL store. An accepted delivery's (source, event id)
 * is unique, so the same dbt Cloud event delivered twice is recorded as a duplicate and starts
 * nothing the second time, even when two deliveries race on two machines. Refused deliveries are
 * kept for the newest few and counted per reason; the others for a number of days (see WebhookRetention).
 */
import { DEFAULT_WEBHOOK_RETENTION, NO_WEBHOOKS, REFUSED_WEBHOOK_STATUSES, isRefusedDelivery } from '../../core/webhooks.js';
import type { SecretCodec } from '../../core/secrets.js';
import type {
  NewWebhookEvent,
  WebhookEvent,
  WebhookEventQuery,
  WebhookEventStore,
  WebhookOutcome,
  WebhookRefusalTotal,
  WebhookRetention,
  WebhookSettings,
} from '../../core/webhooks.js';
import { readText, storedText, type PostgresDatabase, type Queryable } from './postgres-database.js';
import { toWebhookEvent, toWebhookRefusal, type WebhookEventRow, type WebhookRefusalRow } from '../rows.js';

/** Part of schema version 1 (see postgres-migrations.ts). */
export const WEBHOOKS_SCHEMA = `
CREATE TABLE webhook_events (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source         text NOT NULL,
  received_at    double precision NOT NULL,
  event_id       text,
  event_type     text,
  outcome        text NOT NULL,
  reason         text NOT NULL,
  http_status    integer NOT NULL,
  triggered      text NOT NULL,
  payload        text NOT NULL
);
CREATE UNIQUE INDEX webhook_events_accepted_once ON webhook_events (source, event_id)
  WHERE outcome = 'accepted' AND event_id IS NOT NULL;
CREATE INDEX webhook_events_by_time ON webhook_events (received_at);

-- The endpoints' settings as applied from the workspace: one row per configured endpoint.
CREATE TABLE webhook_settings (
  endpoint    text PRIMARY KEY,
  settings    text NOT NULL,
  updated_at  double precision NOT NULL
);
`;

const REFUSED = `http_status IN (${REFUSED_WEBHOOK_STATUSES.join(', ')})`;

/**
 * Schema version 3: refused deliveries counted per source and reason (the reasons are Lockstep's own
 * fixed texts, so the table stays as small as they are few), and an index to find the newest refused
 * ones. What the log holds already is counted.
 */
export const WEBHOOK_REFUSALS_SCHEMA = `
CREATE TABLE webhook_refusals (
  source       text NOT NULL,
  reason       text NOT NULL,
  http_status  integer NOT NULL,
  count        bigint NOT NULL,
  first_at     double precision NOT NULL,
  last_at      double precision NOT NULL,
  PRIMARY KEY (source, reason)
);
INSERT INTO webhook_refusals (source, reason, http_status, count, first_at, last_at)
  SELECT source, reason, MAX(http_status), COUNT(*), MIN(received_at), MAX(received_at)
  FROM webhook_events WHERE ${REFUSED} GROUP BY source, reason;
CREATE INDEX webhook_events_refused ON webhook_events (id) WHERE ${REFUSED};
`;

export class PostgresWebhookStore implements WebhookEventStore {
  private readonly events: string;
  private readonly settings: string;
  private readonly refused: string;

  constructor(
    private readonly db: PostgresDatabase,
    /** Seals the endpoints' secrets in the stored settings. */
    private readonly secrets: SecretCodec,
  ) {
    this.events = `${db.schema}.webhook_events`;
    this.settings = `${db.schema}.webhook_settings`;
    this.refused = `${db.schema}.webhook_refusals`;
  }

  async record(event: NewWebhookEvent, retention: WebhookRetention = DEFAULT_WEBHOOK_RETENTION): Promise<{ event: WebhookEvent; duplicate: boolean }> {
    const eventId = event.eventId === null ? null : storedText(event.eventId);
    const insert = (outcome: WebhookOutcome, reason: string, onConflict: string) => [
      `INSERT INTO ${this.events} (source, received_at, event_id, event_type, outcome, reason, http_status, triggered, payload)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ${onConflict} RETURNING *`,
      [
        event.source,
        event.receivedAt,
        eventId,
        event.eventType === null ? null : storedText(event.eventType),
        outcome,
        storedText(reason),
        event.httpStatus,
        JSON.stringify(event.triggered),
        storedText(event.payloadExcerpt.slice(0, 2000)),
      ],
    ] as const;
    return this.db.transaction(async (q) => {
      if (isRefusedDelivery(event)) {
        await q.query(
          `INSERT INTO ${this.refused} AS r (source, reason, http_status, count, first_at, last_at) VALUES ($1, $2, $3, 1, $4, $4)
           ON CONFLICT (source, reason) DO UPDATE SET count = r.count + 1, http_status = excluded.http_status, last_at = GREATEST(r.last_at, excluded.last_at)`,
          [event.source, storedText(event.reason), event.httpStatus, event.receivedAt],
        );
        await q.query(
          `DELETE FROM ${this.events} WHERE ${REFUSED}
             AND id <= (SELECT id FROM ${this.events} WHERE ${REFUSED} ORDER BY id DESC LIMIT 1 OFFSET $1)`,
          [Math.max(0, retention.refusedKept - 1)],
        );
      } else if (retention.retentionDays > 0) {
        await q.query(`DELETE FROM ${this.events} WHERE received_at < $1 AND NOT (${REFUSED})`, [event.receivedAt - retention.retentionDays * 86_400_000]);
      }
      if (event.outcome !== 'accepted' || eventId === null) {
        const [sql, params] = insert(event.outcome, event.reason, '');
        return { event: toWebhookEvent((await q.query<WebhookEventRow>(sql, [...params])).rows[0] as WebhookEventRow, readText), duplicate: false };
      }
      // The unique index decides between two deliveries racing: the second waits for the first's
      // commit, inserts nothing, and is recorded as its duplicate.
      const [sql, params] = insert(
        'accepted',
        event.reason,
        "ON CONFLICT (source, event_id) WHERE outcome = 'accepted' AND event_id IS NOT NULL DO NOTHING",
      );
      const accepted = (await q.query<WebhookEventRow>(sql, [...params])).rows[0];
      if (accepted) return { event: toWebhookEvent(accepted, readText), duplicate: false };
      const first = (
        await q.query<{ id: number }>(`SELECT id FROM ${this.events} WHERE source = $1 AND event_id = $2 AND outcome = 'accepted'`, [
          event.source,
          eventId,
        ])
      ).rows[0];
      const reason = `event ${event.eventId} was already received (delivery ${first?.id ?? 'unknown'}); nothing started again`;
      const [dupSql, dupParams] = insert('duplicate', reason, '');
      return { event: toWebhookEvent((await q.query<WebhookEventRow>(dupSql, [...dupParams])).rows[0] as WebhookEventRow, readText), duplicate: true };
    });
  }

  /** The applied settings, read through `q` (the store's transaction). */
  async readSettings(q: Queryable): Promise<WebhookSettings> {
    const { rows } = await q.query<{ endpoint: string; settings: string }>(`SELECT endpoint, settings FROM ${this.settings}`);
    const settings: WebhookSettings = { ...NO_WEBHOOKS };
    for (const row of rows) {
      if (row.endpoint === 'dbtCloud' || row.endpoint === 'fivetran') {
        settings[row.endpoint] = this.secrets.openWebhook(row.endpoint, JSON.parse(row.settings) as { secret: string });
      }
    }
    return settings;
  }

  /** Replaces the applied settings through `q` (the store's transaction). */
  async writeSettings(q: Queryable, settings: WebhookSettings, now: number): Promise<void> {
    await q.query(`DELETE FROM ${this.settings}`);
    for (const endpoint of ['dbtCloud', 'fivetran'] as const) {
      const value = settings[endpoint];
      if (value) {
        await q.query(`INSERT INTO ${this.settings} (endpoint, settings, updated_at) VALUES ($1, $2, $3)`, [endpoint, JSON.stringify(this.secrets.sealWebhook(endpoint, value)), now]);
      }
    }
  }

  async list(query: WebhookEventQuery): Promise<WebhookEvent[]> {
    const rows = query.source
      ? await this.db.query<WebhookEventRow>(`SELECT * FROM ${this.events} WHERE source = $1 ORDER BY id DESC LIMIT $2 OFFSET $3`, [
          query.source,
          query.limit,
          query.offset,
        ])
      : await this.db.query<WebhookEventRow>(`SELECT * FROM ${this.events} ORDER BY id DESC LIMIT $1 OFFSET $2`, [query.limit, query.offset]);
    return rows.map((row) => toWebhookEvent(row, readText));
  }

  async refusals(): Promise<WebhookRefusalTotal[]> {
    const rows = await this.db.query<WebhookRefusalRow>(`SELECT * FROM ${this.refused} ORDER BY last_at DESC, source, reason`);
    return rows.map((row) => toWebhookRefusal(row, readText));
  }

  async get(id: number): Promise<WebhookEvent | null> {
    const row = (await this.db.query<WebhookEventRow>(`SELECT * FROM ${this.events} WHERE id = $1`, [id]))[0];
    return row ? toWebhookEvent(row, readText) : null;
  }
}

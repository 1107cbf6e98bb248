/**
 * The log of webhook deliveries in the PostgreSQL store. An accepted delivery's (source, event id)
 * is unique, so the same dbt Cloud event delivered twice is recorded as a duplicate and starts
 * nothing the second time, even when two deliveries race on two machines.
 */
import { NO_WEBHOOKS } from '../../core/webhooks.js';
import type { SecretCodec } from '../../core/secrets.js';
import type {
  NewWebhookEvent,
  TriggeredRun,
  WebhookEvent,
  WebhookEventQuery,
  WebhookEventStore,
  WebhookOutcome,
  WebhookSettings,
} from '../../core/webhooks.js';
import { readText, storedText, type PostgresDatabase, type Queryable } from './postgres-database.js';
import { toWebhookEvent, type WebhookEventRow } from '../rows.js';

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

export class PostgresWebhookStore implements WebhookEventStore {
  private readonly events: string;
  private readonly settings: string;

  constructor(
    private readonly db: PostgresDatabase,
    /** Seals the endpoints' secrets in the stored settings. */
    private readonly secrets: SecretCodec,
  ) {
    this.events = `${db.schema}.webhook_events`;
    this.settings = `${db.schema}.webhook_settings`;
  }

  async record(event: NewWebhookEvent): Promise<{ event: WebhookEvent; duplicate: boolean }> {
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

  async setTriggered(id: number, triggered: TriggeredRun[], reason: string): Promise<void> {
    await this.db.query(`UPDATE ${this.events} SET triggered = $1, reason = $2 WHERE id = $3`, [JSON.stringify(triggered), storedText(reason), id]);
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

  async get(id: number): Promise<WebhookEvent | null> {
    const row = (await this.db.query<WebhookEventRow>(`SELECT * FROM ${this.events} WHERE id = $1`, [id]))[0];
    return row ? toWebhookEvent(row, readText) : null;
  }
}

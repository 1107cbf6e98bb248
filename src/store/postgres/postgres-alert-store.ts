/**
 * Alert definitions, alert state and the outbox of deliveries in the PostgreSQL store. `apply`
 * writes the definition inside the store's own transaction (`writeDefinition`), so the alerts and
 * the entities they name change together. Several processes may record outcomes and send
 * deliveries at once: a condition's state row is locked while its change is decided, and a
 * delivery is claimed by one process with `FOR UPDATE SKIP LOCKED`.
 */
import type {
  AlertChange,
  AlertDelivery,
  AlertDeliveryQuery,
  AlertOutcome,
  AlertState,
  AlertStore,
  AlertsDefinition,
  NewAlertDelivery,
} from '../../core/alerts.js';
import { NO_ALERTS, alertChange, subjectKey } from '../../core/alerts.js';
import type { SecretCodec } from '../../core/secrets.js';
import { readText, storedText, type PostgresDatabase, type Queryable } from './postgres-database.js';
import { toAlertState, toDelivery, type AlertStateRow, type DeliveryRow } from '../rows.js';

/** Part of schema version 1 (see postgres-migrations.ts). */
export const ALERTS_SCHEMA = `
CREATE TABLE alert_definitions (
  id         integer PRIMARY KEY CHECK (id = 1),
  definition text NOT NULL,
  updated_at double precision NOT NULL
);

-- One row per (rule, subject, condition): raised or clear, and since when.
CREATE TABLE alert_states (
  rule       text NOT NULL,
  subject    text NOT NULL,
  condition  text NOT NULL,
  raised     boolean NOT NULL,
  since      double precision NOT NULL,
  run_id     text,
  PRIMARY KEY (rule, subject, condition)
);

-- The outbox: a notice for one channel, tried until sent or out of attempts.
CREATE TABLE alert_deliveries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  channel         text NOT NULL,
  notice          text NOT NULL,
  status          text NOT NULL,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at double precision,
  last_error      text,
  created_at      double precision NOT NULL,
  sent_at         double precision
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at, id) WHERE status = 'pending';
`;

export class PostgresAlertStore implements AlertStore {
  private readonly definitions: string;
  private readonly states: string;
  private readonly deliveries: string;

  constructor(
    private readonly db: PostgresDatabase,
    /** Seals the channels' secrets in the stored definition. */
    private readonly secrets: SecretCodec,
  ) {
    this.definitions = `${db.schema}.alert_definitions`;
    this.states = `${db.schema}.alert_states`;
    this.deliveries = `${db.schema}.alert_deliveries`;
  }

  // --- used by PostgresStore inside its own transactions

  /** The stored definition, read through `q`. */
  async readDefinition(q: Queryable): Promise<AlertsDefinition> {
    const row = (await q.query<{ definition: string }>(`SELECT definition FROM ${this.definitions} WHERE id = 1`)).rows[0];
    if (!row) return { channels: [...NO_ALERTS.channels], rules: [...NO_ALERTS.rules] };
    const stored = this.secrets.openAlerts(JSON.parse(row.definition) as AlertsDefinition);
    return {
      channels: stored.channels.map((c) => ({ ...c, origin: c.origin ?? 'file' })),
      rules: stored.rules.map((r) => ({ ...r, origin: r.origin ?? 'file' })),
    };
  }

  /** Replaces the stored definition through `q` (the caller's transaction). */
  async writeDefinition(q: Queryable, definition: AlertsDefinition, now: number): Promise<void> {
    await q.query(
      `INSERT INTO ${this.definitions} (id, definition, updated_at) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at`,
      [JSON.stringify(this.secrets.sealAlerts({ channels: definition.channels, rules: definition.rules })), now],
    );
  }

  // --- the port

  async getDefinition(): Promise<AlertsDefinition> {
    return this.db.transaction((q) => this.readDefinition(q), { readOnly: true });
  }

  async recordOutcome(
    outcome: AlertOutcome,
    deliveries: (change: AlertChange) => NewAlertDelivery[],
  ): Promise<{ change: AlertChange; deliveries: AlertDelivery[] }> {
    const subject = subjectKey(outcome.subject);
    const key = [outcome.rule, subject, outcome.condition];
    return this.db.transaction(async (q) => {
      // The state row is locked while the change is decided, so two processes recording outcomes
      // of one condition at once queue its notice once. A condition seen for the first time gets
      // its row first (clear, changed by the upsert below); a racing first insert waits for ours.
      const lock = `SELECT raised FROM ${this.states} WHERE rule = $1 AND subject = $2 AND condition = $3 FOR UPDATE`;
      let row = (await q.query<{ raised: boolean }>(lock, key)).rows[0];
      let previous: boolean | null = row ? row.raised : null;
      if (!row) {
        const inserted = await q.query(
          `INSERT INTO ${this.states} (rule, subject, condition, raised, since, run_id) VALUES ($1, $2, $3, false, $4, NULL)
           ON CONFLICT DO NOTHING RETURNING rule`,
          [...key, outcome.now],
        );
        if (inserted.rows.length === 0) {
          row = (await q.query<{ raised: boolean }>(lock, key)).rows[0];
          previous = row ? row.raised : null;
        }
      }
      const change = alertChange(previous, outcome.raised);
      await q.query(
        `UPDATE ${this.states} SET raised = $4,
           since = CASE WHEN $5::boolean AND raised = $4 THEN since ELSE $6 END,
           run_id = $7
         WHERE rule = $1 AND subject = $2 AND condition = $3`,
        [...key, outcome.raised, previous !== null, outcome.now, outcome.runId],
      );
      const queued = change === 'none' ? [] : await this.insert(q, deliveries(change), outcome.now, outcome.now);
      return { change, deliveries: queued };
    });
  }

  async listStates(): Promise<AlertState[]> {
    return (await this.db.query<AlertStateRow>(`SELECT * FROM ${this.states} ORDER BY rule COLLATE "C", subject COLLATE "C", condition COLLATE "C"`)).map(
      toAlertState,
    );
  }

  async enqueueDeliveries(deliveries: NewAlertDelivery[], now: number, firstAttemptAt: number = now): Promise<AlertDelivery[]> {
    return this.db.transaction((q) => this.insert(q, deliveries, now, firstAttemptAt));
  }

  async claimDueDeliveries(now: number, limit: number, leaseMs: number): Promise<AlertDelivery[]> {
    // Deliveries another process is claiming right now are skipped, not waited for.
    const rows = await this.db.query<DeliveryRow & { due_at: number }>(
      `WITH due AS (
         SELECT id, next_attempt_at AS due_at FROM ${this.deliveries} AS d
         WHERE status = 'pending' AND next_attempt_at <= $1 AND ${this.notHeldBack()}
         ORDER BY next_attempt_at, id LIMIT $2
         FOR UPDATE SKIP LOCKED
       ), claimed AS (
         UPDATE ${this.deliveries} AS d SET next_attempt_at = $3, attempts = d.attempts + 1
         FROM due WHERE d.id = due.id
         RETURNING d.*, due.due_at
       )
       SELECT * FROM claimed ORDER BY due_at, id`,
      [now, limit, now + leaseMs],
    );
    return rows.map((row) => toDelivery(row, readText));
  }

  async nextDeliveryAt(): Promise<number | null> {
    const row = (
      await this.db.query<{ at: number | null }>(`SELECT min(next_attempt_at) AS at FROM ${this.deliveries} AS d WHERE status = 'pending' AND ${this.notHeldBack()}`)
    )[0];
    return row?.at ?? null;
  }

  /**
   * A pending delivery `d` is held back while an older one of the same channel and dedup key is
   * pending (see AlertStore.claimDueDeliveries): a condition's notices reach a channel in the order raised.
   */
  private notHeldBack(): string {
    return `NOT EXISTS (
      SELECT 1 FROM ${this.deliveries} AS older
      WHERE older.status = 'pending' AND older.channel = d.channel AND older.id < d.id
        AND (older.notice::json ->> 'dedupKey') = (d.notice::json ->> 'dedupKey'))`;
  }

  async markDeliverySent(id: number, now: number): Promise<void> {
    // A delivery marked sent or failed was attempted at least once (test alerts are sent unclaimed).
    await this.db.query(
      `UPDATE ${this.deliveries} SET status = 'sent', sent_at = $1, next_attempt_at = NULL, attempts = GREATEST(attempts, 1) WHERE id = $2`,
      [now, id],
    );
  }

  async markDeliveryFailed(id: number, error: string, retryAt: number | null): Promise<void> {
    await this.db.query(
      `UPDATE ${this.deliveries} SET status = CASE WHEN $3::double precision IS NULL THEN 'failed' ELSE 'pending' END,
         next_attempt_at = $3, last_error = $2, attempts = GREATEST(attempts, 1) WHERE id = $1`,
      [id, storedText(error.slice(0, 2000)), retryAt],
    );
  }

  async listDeliveries(query: AlertDeliveryQuery): Promise<AlertDelivery[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.status !== undefined) {
      params.push(query.status);
      where.push(`status = $${params.length}`);
    }
    if (query.failedAttempt !== undefined) where.push(query.failedAttempt ? 'last_error IS NOT NULL' : 'last_error IS NULL');
    if (query.channel !== undefined) {
      params.push(query.channel);
      where.push(`channel = $${params.length}`);
    }
    params.push(query.limit, query.offset);
    const sql = `SELECT * FROM ${this.deliveries} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id DESC LIMIT $${params.length - 1} OFFSET $${params.length}`;
    return (await this.db.query<DeliveryRow>(sql, params)).map((row) => toDelivery(row, readText));
  }

  private async insert(q: Queryable, deliveries: NewAlertDelivery[], now: number, firstAttemptAt: number): Promise<AlertDelivery[]> {
    if (deliveries.length === 0) return [];
    // One statement, ids in the order given.
    const { rows } = await q.query<DeliveryRow>(
      `INSERT INTO ${this.deliveries} (channel, notice, status, attempts, next_attempt_at, created_at)
       SELECT d.channel, d.notice, 'pending', 0, $3, $4
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS d(channel, notice, n) ORDER BY d.n
       RETURNING *`,
      [deliveries.map((d) => d.channel), deliveries.map((d) => JSON.stringify(d.notice)), firstAttemptAt, now],
    );
    return rows.sort((a, b) => Number(a.id) - Number(b.id)).map((row) => toDelivery(row, readText));
  }
}

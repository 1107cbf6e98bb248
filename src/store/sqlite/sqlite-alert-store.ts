/**
 * Alert definitions, alert state and the outbox of deliveries in the embedded store. It shares the
 * SqliteStore's database handle: `apply` writes the definition inside its own transaction through
 * `writeDefinition`, so the alerts and the entities they name change together.
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
import { immediateTransaction, type SqliteDatabase, type SqliteStatement, type SqliteValue } from './sqlite-database.js';
import { toAlertState, toDelivery, type AlertStateRow, type DeliveryRow } from '../rows.js';

/** Schema version 3. */
export const ALERTS_SCHEMA = `
CREATE TABLE alert_definitions (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  definition TEXT NOT NULL,
  updated_at REAL NOT NULL
);

-- One row per (rule, subject, condition): raised or clear, and since when.
CREATE TABLE alert_states (
  rule       TEXT NOT NULL,
  subject    TEXT NOT NULL,
  condition  TEXT NOT NULL,
  raised     INTEGER NOT NULL,
  since      REAL NOT NULL,
  run_id     TEXT,
  PRIMARY KEY (rule, subject, condition)
) WITHOUT ROWID;

-- The outbox: a notice for one channel, tried until sent or out of attempts.
CREATE TABLE alert_deliveries (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  channel         TEXT NOT NULL,
  notice          TEXT NOT NULL,
  status          TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL,
  last_error      TEXT,
  created_at      REAL NOT NULL,
  sent_at         REAL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
`;

/**
 * A pending delivery `d` is held back while an older one of the same channel and dedup key is pending
 * (see AlertStore.claimDueDeliveries): a condition's notices reach a channel in the order raised.
 */
const NOT_HELD_BACK = `NOT EXISTS (
  SELECT 1 FROM alert_deliveries AS older
  WHERE older.status = 'pending' AND older.channel = d.channel AND older.id < d.id
    AND json_extract(older.notice, '$.dedupKey') = json_extract(d.notice, '$.dedupKey'))`;

export class SqliteAlertStore implements AlertStore {
  private readonly statements: Record<
    | 'definition'
    | 'saveDefinition'
    | 'state'
    | 'saveState'
    | 'states'
    | 'insertDelivery'
    | 'due'
    | 'claim'
    | 'nextDue'
    | 'sent'
    | 'failed',
    SqliteStatement
  >;

  constructor(
    private readonly db: SqliteDatabase,
    /** Wraps a store failure into Lockstep's error, naming the file. */
    private readonly wrap: (error: unknown) => Error,
    /** Seals the channels' secrets in the stored definition. */
    private readonly secrets: SecretCodec,
  ) {
    this.statements = {
      definition: db.prepare('SELECT definition FROM alert_definitions WHERE id = 1'),
      saveDefinition: db.prepare(
        `INSERT INTO alert_definitions (id, definition, updated_at) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at`,
      ),
      state: db.prepare('SELECT raised FROM alert_states WHERE rule = ? AND subject = ? AND condition = ?'),
      saveState: db.prepare(
        `INSERT INTO alert_states (rule, subject, condition, raised, since, run_id) VALUES (@rule, @subject, @condition, @raised, @now, @runId)
         ON CONFLICT (rule, subject, condition) DO UPDATE SET
           raised = excluded.raised,
           since = CASE WHEN alert_states.raised = excluded.raised THEN alert_states.since ELSE excluded.since END,
           run_id = excluded.run_id`,
      ),
      states: db.prepare('SELECT * FROM alert_states ORDER BY rule, subject, condition'),
      insertDelivery: db.prepare(
        `INSERT INTO alert_deliveries (channel, notice, status, attempts, next_attempt_at, created_at)
         VALUES (?, ?, 'pending', 0, ?, ?) RETURNING *`,
      ),
      due: db.prepare(
        `SELECT id FROM alert_deliveries AS d WHERE status = 'pending' AND next_attempt_at <= ? AND ${NOT_HELD_BACK}
         ORDER BY next_attempt_at, id LIMIT ?`,
      ),
      claim: db.prepare(
        `UPDATE alert_deliveries SET next_attempt_at = ?, attempts = attempts + 1
         WHERE id = ? AND status = 'pending' RETURNING *`,
      ),
      nextDue: db.prepare(`SELECT MIN(next_attempt_at) AS at FROM alert_deliveries AS d WHERE status = 'pending' AND ${NOT_HELD_BACK}`),
      sent: db.prepare(
        // A delivery marked sent or failed was attempted at least once (test alerts are sent unclaimed).
        `UPDATE alert_deliveries SET status = 'sent', sent_at = ?, next_attempt_at = NULL, attempts = MAX(attempts, 1) WHERE id = ?`,
      ),
      failed: db.prepare(
        `UPDATE alert_deliveries SET status = CASE WHEN @retryAt IS NULL THEN 'failed' ELSE 'pending' END,
           next_attempt_at = @retryAt, last_error = @error, attempts = MAX(attempts, 1) WHERE id = @id`,
      ),
    };
  }

  // --- used by SqliteStore inside its own transactions

  /** The stored definition (synchronous; the caller holds a transaction or reads one statement). */
  readDefinition(): AlertsDefinition {
    const row = this.statements.definition.get() as { definition: string } | undefined;
    if (!row) return { channels: [...NO_ALERTS.channels], rules: [...NO_ALERTS.rules] };
    const stored = this.secrets.openAlerts(JSON.parse(row.definition) as AlertsDefinition);
    // Definitions written before alerts could be edited through the API all came from files.
    return {
      channels: stored.channels.map((c) => ({ ...c, origin: c.origin ?? 'file' })),
      rules: stored.rules.map((r) => ({ ...r, origin: r.origin ?? 'file' })),
    };
  }

  /** Replaces the stored definition (synchronous; the caller holds the write transaction). */
  writeDefinition(definition: AlertsDefinition, now: number): void {
    this.statements.saveDefinition.run(JSON.stringify(this.secrets.sealAlerts({ channels: definition.channels, rules: definition.rules })), now);
  }

  // --- the port

  async getDefinition(): Promise<AlertsDefinition> {
    return this.read(() => this.readDefinition());
  }

  async recordOutcome(
    outcome: AlertOutcome,
    deliveries: (change: AlertChange) => NewAlertDelivery[],
  ): Promise<{ change: AlertChange; deliveries: AlertDelivery[] }> {
    return this.immediate(() => {
      const subject = subjectKey(outcome.subject);
      const row = this.statements.state.get(outcome.rule, subject, outcome.condition) as { raised: number } | undefined;
      const change = alertChange(row ? row.raised === 1 : null, outcome.raised);
      this.statements.saveState.run({
        rule: outcome.rule,
        subject,
        condition: outcome.condition,
        raised: outcome.raised ? 1 : 0,
        now: outcome.now,
        runId: outcome.runId,
      });
      const queued = change === 'none' ? [] : deliveries(change).map((d) => this.insert(d, outcome.now));
      return { change, deliveries: queued };
    });
  }

  async listStates(): Promise<AlertState[]> {
    return this.read(() => (this.statements.states.all() as AlertStateRow[]).map(toAlertState));
  }

  async enqueueDeliveries(deliveries: NewAlertDelivery[], now: number, firstAttemptAt: number = now): Promise<AlertDelivery[]> {
    return this.immediate(() => deliveries.map((d) => this.insert(d, now, firstAttemptAt)));
  }

  async claimDueDeliveries(now: number, limit: number, leaseMs: number): Promise<AlertDelivery[]> {
    return this.immediate(() => {
      const ids = this.statements.due.all(now, limit) as Array<{ id: number }>;
      return ids.map(({ id }) => toDelivery(this.statements.claim.get(now + leaseMs, id) as DeliveryRow));
    });
  }

  async nextDeliveryAt(): Promise<number | null> {
    return this.read(() => (this.statements.nextDue.get() as { at: number | null }).at);
  }

  async markDeliverySent(id: number, now: number): Promise<void> {
    this.immediate(() => this.statements.sent.run(now, id));
  }

  async markDeliveryFailed(id: number, error: string, retryAt: number | null): Promise<void> {
    this.immediate(() => this.statements.failed.run({ id, error: error.slice(0, 2000), retryAt }));
  }

  async listDeliveries(query: AlertDeliveryQuery): Promise<AlertDelivery[]> {
    return this.read(() => {
      const where: string[] = [];
      const params: SqliteValue[] = [];
      if (query.status !== undefined) {
        where.push('status = ?');
        params.push(query.status);
      }
      if (query.failedAttempt !== undefined) where.push(query.failedAttempt ? 'last_error IS NOT NULL' : 'last_error IS NULL');
      if (query.channel !== undefined) {
        where.push('channel = ?');
        params.push(query.channel);
      }
      const sql = `SELECT * FROM alert_deliveries ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ? OFFSET ?`;
      return (this.db.prepare(sql).all(...params, query.limit, query.offset) as DeliveryRow[]).map((row) => toDelivery(row));
    });
  }

  private insert(delivery: NewAlertDelivery, now: number, firstAttemptAt: number = now): AlertDelivery {
    return toDelivery(this.statements.insertDelivery.get(delivery.channel, JSON.stringify(delivery.notice), firstAttemptAt, now) as DeliveryRow);
  }

  private immediate<R>(fn: () => R): R {
    try {
      return immediateTransaction(this.db, fn);
    } catch (error) {
      throw this.wrap(error);
    }
  }

  private read<R>(fn: () => R): R {
    try {
      return this.db.transaction(fn)() as R;
    } catch (error) {
      throw this.wrap(error);
    }
  }
}

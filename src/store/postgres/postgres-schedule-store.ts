/**
 * The schedule role of the PostgreSQL store (ScheduleStore): the firing keys recorded (each due
 * time fires once, which the key's primary key enforces across processes) and each schedule's
 * cursor, on the PostgresStore's database. Each method is one statement, so it is whole or nothing
 * without a transaction of its own.
 */
import type { ScheduleStore } from '../../core/ports.js';
import { storedText, type PostgresDatabase, type Queryable } from './postgres-database.js';

export class PostgresScheduleStore implements ScheduleStore {
  /** Table names, qualified with the quoted schema. */
  private readonly firings: string;
  private readonly cursors: string;

  constructor(private readonly db: PostgresDatabase) {
    this.firings = `${db.schema}.schedule_firings`;
    this.cursors = `${db.schema}.schedule_cursors`;
  }

  async recordFiring(key: string, now: number): Promise<boolean> {
    return this.recordKey(this.db.direct, key, now);
  }

  /** `recordFiring` through `q`: in the caller's transaction (PostgresStore.enqueueFiredRun). */
  async recordKey(q: Queryable, key: string, now: number): Promise<boolean> {
    const { rows } = await q.query(`INSERT INTO ${this.firings} (key, recorded_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING key`, [storedText(key), now]);
    return rows.length > 0;
  }

  async getScheduleCursor(scheduleId: string): Promise<number | null> {
    const rows = await this.db.query<{ due_time: number }>(`SELECT due_time FROM ${this.cursors} WHERE schedule_id = $1`, [scheduleId]);
    return rows[0] ? rows[0].due_time : null;
  }

  async setScheduleCursor(scheduleId: string, dueTime: number): Promise<void> {
    await this.setScheduleCursors([{ scheduleId, dueTime }]);
  }

  async setScheduleCursors(cursors: Array<{ scheduleId: string; dueTime: number }>): Promise<void> {
    if (cursors.length === 0) return;
    // One row per schedule (the last cursor given wins, as when saved one after the other).
    const last = new Map(cursors.map((c) => [c.scheduleId, c.dueTime]));
    await this.db.query(
      `INSERT INTO ${this.cursors} (schedule_id, due_time) SELECT * FROM unnest($1::text[], $2::float8[]) AS u(id, due) ORDER BY u.id
       ON CONFLICT (schedule_id) DO UPDATE SET due_time = excluded.due_time`,
      [[...last.keys()], [...last.values()]],
    );
  }
}

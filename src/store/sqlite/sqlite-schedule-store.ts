/**
 * The schedule role of the embedded store (ScheduleStore): the firing keys recorded (each due time
 * fires once, which the key's primary key enforces) and each schedule's cursor. It shares the
 * SqliteStore's connection and runs in the store's own transactions: a write takes the write lock at
 * BEGIN, so two schedulers on the same file take turns instead of deadlocking on an upgrade.
 */
import type { ScheduleStore } from '../../core/ports.js';
import type { SqliteDatabase, SqliteStatement, SqliteTransactions } from './sqlite-database.js';

export class SqliteScheduleStore implements ScheduleStore {
  private readonly recordFiringStatement: SqliteStatement;
  private readonly cursorStatement: SqliteStatement;
  private readonly setCursorStatement: SqliteStatement;

  constructor(
    db: SqliteDatabase,
    private readonly transactions: SqliteTransactions,
  ) {
    this.recordFiringStatement = db.prepare('INSERT INTO schedule_firings (key, recorded_at) VALUES (?, ?) ON CONFLICT DO NOTHING');
    this.cursorStatement = db.prepare('SELECT due_time FROM schedule_cursors WHERE schedule_id = ?');
    this.setCursorStatement = db.prepare(
      `INSERT INTO schedule_cursors (schedule_id, due_time) VALUES (?, ?)
       ON CONFLICT (schedule_id) DO UPDATE SET due_time = excluded.due_time`,
    );
  }

  async recordFiring(key: string, now: number): Promise<boolean> {
    return this.transactions.write(() => this.recordKey(key, now));
  }

  /** `recordFiring` inside the caller's write transaction (SqliteStore.enqueueFiredRun). */
  recordKey(key: string, now: number): boolean {
    return this.recordFiringStatement.run(key, now).changes > 0;
  }

  async getScheduleCursor(scheduleId: string): Promise<number | null> {
    return this.transactions.read(() => {
      const row = this.cursorStatement.get(scheduleId) as { due_time: number } | undefined;
      return row ? row.due_time : null;
    });
  }

  async setScheduleCursor(scheduleId: string, dueTime: number): Promise<void> {
    this.transactions.write(() => this.setCursorStatement.run(scheduleId, dueTime));
  }

  async setScheduleCursors(cursors: Array<{ scheduleId: string; dueTime: number }>): Promise<void> {
    if (cursors.length === 0) return;
    this.transactions.write(() => {
      for (const c of cursors) this.setCursorStatement.run(c.scheduleId, c.dueTime);
    });
  }
}

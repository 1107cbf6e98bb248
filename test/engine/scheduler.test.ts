import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/ports.js';
import type { ScheduleEntry, SchedulerStore } from '../../src/engine/scheduler.js';
import { Scheduler } from '../../src/engine/scheduler.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { FakeClock, flush } from '../helpers/fake-clock.js';

// ---------------------------------------------------------------------------------------------
// Stores: the scheduler's cursors and the firing keys `fire` records, in memory and on a real SQLite file.

/** The cursors, and firing keys for the harness's `fire` (the real one records them with its run). */
interface FiringStore extends SchedulerStore {
  recordFiring(key: string): Promise<boolean>;
  /** Drops a key whose run failed to queue: the real store's transaction rolls it back. */
  forgetFiring(key: string): Promise<void>;
}

class MemoryFiringStore implements FiringStore {
  readonly firings = new Set<string>();
  readonly cursors = new Map<string, number>();
  calls = 0;

  async recordFiring(key: string): Promise<boolean> {
    this.calls++;
    if (this.firings.has(key)) return false;
    this.firings.add(key);
    return true;
  }
  async forgetFiring(key: string): Promise<void> {
    this.firings.delete(key);
  }
  async getScheduleCursor(id: string): Promise<number | null> {
    this.calls++;
    return this.cursors.get(id) ?? null;
  }
  async setScheduleCursor(id: string, dueTime: number): Promise<void> {
    this.calls++;
    this.cursors.set(id, dueTime);
  }
}

/** Firing keys under a unique key in a temp SQLite file (`insert or ignore`), as the real store does. */
class SqliteFiringStore implements FiringStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`
      create table if not exists firings(key text primary key);
      create table if not exists schedule_cursors(schedule_id text primary key, due_time integer not null);
    `);
  }
  async recordFiring(key: string): Promise<boolean> {
    return this.db.prepare('insert or ignore into firings(key) values (?)').run(key).changes === 1;
  }
  async forgetFiring(key: string): Promise<void> {
    this.db.prepare('delete from firings where key = ?').run(key);
  }
  async getScheduleCursor(id: string): Promise<number | null> {
    const row = this.db.prepare('select due_time from schedule_cursors where schedule_id = ?').get(id) as
      | { due_time: number }
      | undefined;
    return row?.due_time ?? null;
  }
  async setScheduleCursor(id: string, dueTime: number): Promise<void> {
    this.db
      .prepare('insert into schedule_cursors(schedule_id, due_time) values (?, ?) on conflict(schedule_id) do update set due_time = excluded.due_time')
      .run(id, dueTime);
  }
  firingKeys(): string[] {
    return (this.db.prepare('select key from firings order by key').all() as Array<{ key: string }>).map((r) => r.key);
  }
  close(): void {
    this.db.close();
  }
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

/** One store, or several handles on one SQLite file (as separate processes would have). */
const STORES: Array<[string, () => () => FiringStore]> = [
  [
    'memory',
    () => {
      const store = new MemoryFiringStore();
      return () => store;
    },
  ],
  [
    'sqlite',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'lockstep-scheduler-'));
      const handles: SqliteFiringStore[] = [];
      cleanups.push(() => {
        for (const handle of handles) handle.close();
        rmSync(dir, { recursive: true, force: true });
      });
      return () => {
        const handle = new SqliteFiringStore(join(dir, 'lockstep.db'));
        handles.push(handle);
        return handle;
      };
    },
  ],
];

// ---------------------------------------------------------------------------------------------
// Harness

interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = (level: LogLine['level']) => (message: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, message, fields: fields ?? {} });
  return { logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }, lines };
}

interface Firing {
  id: string;
  due: string;
  key: string;
  /** Clock time when `fire` was called. */
  at: number;
}

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

function everyMinutes(id: string, quantity = 1, catchupWindowSeconds = 3600): ScheduleEntry {
  return { id, enabled: true, schedule: { type: 'interval', unit: 'minute', quantity, startAt: null, catchupWindowSeconds } };
}
function cronEntry(id: string, expression: string, timezone = 'UTC', catchupWindowSeconds = 3600): ScheduleEntry {
  return { id, enabled: true, schedule: { type: 'cron', expression, timezone, catchupWindowSeconds } };
}

interface HarnessOptions {
  clock: FakeClock;
  store: FiringStore;
  /** Read at every reload; tests change it in place. */
  entries: ScheduleEntry[];
  fired?: Firing[];
  fire?: (entry: ScheduleEntry, dueTime: number) => Promise<void>;
  maxSleepMs?: number;
  logger?: Logger;
}

function makeScheduler(options: HarnessOptions) {
  const fired = options.fired ?? [];
  const { logger, lines } = recordingLogger();
  const scheduler = new Scheduler({
    store: options.store,
    clock: options.clock,
    logger: options.logger ?? logger,
    listSchedules: async () => options.entries.map((entry) => ({ ...entry })),
    // As the store's enqueueFiredRun: the key and the run together, or neither.
    fire: async (entry, dueTime, firingKey) => {
      if (!(await options.store.recordFiring(firingKey))) return false;
      fired.push({ id: entry.id, due: iso(dueTime), key: firingKey, at: options.clock.now() });
      try {
        await options.fire?.(entry, dueTime);
      } catch (thrown) {
        await options.store.forgetFiring(firingKey);
        throw thrown;
      }
      return true;
    },
    ...(options.maxSleepMs === undefined ? {} : { maxSleepMs: options.maxSleepMs }),
  });
  cleanups.push(() => void scheduler.stop());
  return { scheduler, fired, lines };
}

const dues = (fired: Firing[], id?: string) => fired.filter((f) => id === undefined || f.id === id).map((f) => f.due);

// ---------------------------------------------------------------------------------------------

describe('Scheduler loop', () => {
  it('fires each due time on time as the clock advances, and nothing for the past on first sight', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const store = new MemoryFiringStore();
    const entries = [everyMinutes('sync:accounts'), cronEntry('sequence:crm', '*/5 * * * *')];
    const { scheduler, fired } = makeScheduler({ clock, store, entries });
    await scheduler.start();
    expect(fired).toEqual([]);
    expect(store.cursors.get('sync:accounts')).toBe(at('2026-01-01T00:00:30Z'));

    await clock.advance(10 * 60_000);
    expect(dues(fired, 'sync:accounts')).toHaveLength(10);
    expect(dues(fired, 'sync:accounts')[0]).toBe('2026-01-01T00:01:00.000Z');
    expect(dues(fired, 'sequence:crm')).toEqual(['2026-01-01T00:05:00.000Z', '2026-01-01T00:10:00.000Z']);
    for (const firing of fired) {
      expect(firing.at - at(firing.due)).toBe(0); // woken exactly at the due time
      expect(firing.key).toBe(`${firing.id}@${firing.due}`);
    }
    expect(store.cursors.get('sync:accounts')).toBe(at('2026-01-01T00:10:00Z'));
    await scheduler.stop();
  });

  it('sleeps until the next due time, but never longer than maxSleepMs', async () => {
    const clock = new FakeClock('2026-01-01T00:00:00Z');
    const entries = [cronEntry('sync:daily', '0 9 * * *')];
    const short = makeScheduler({ clock, store: new MemoryFiringStore(), entries });
    await short.scheduler.start();
    expect(clock.nextWakeAt).toBe(at('2026-01-01T00:00:01Z'));
    await short.scheduler.stop();

    const long = makeScheduler({ clock, store: new MemoryFiringStore(), entries, maxSleepMs: 86_400_000 });
    await long.scheduler.start();
    expect(clock.nextWakeAt).toBe(at('2026-01-01T09:00:00Z'));
    await long.scheduler.stop();
  });

  it('follows Europe/Berlin through both DST changes: one 02:30 firing a day, 09:00 stays 09:00 local', async () => {
    const clock = new FakeClock('2026-03-27T12:00:00Z');
    const entries = [cronEntry('sync:night', '30 2 * * *', 'Europe/Berlin'), cronEntry('sync:morning', '0 9 * * *', 'Europe/Berlin')];
    const { scheduler, fired } = makeScheduler({ clock, store: new MemoryFiringStore(), entries, maxSleepMs: 6 * 3_600_000 });
    await scheduler.start();
    await clock.set('2026-10-27T12:00:00Z');
    await scheduler.stop();

    const localDate = (ms: number) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(ms);
    const localTime = (ms: number) =>
      new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(ms);
    const night = fired.filter((f) => f.id === 'sync:night');
    const morning = fired.filter((f) => f.id === 'sync:morning');
    // 2026-03-28 .. 2026-10-27: 214 days, one firing each.
    expect(night).toHaveLength(214);
    expect(new Set(night.map((f) => localDate(at(f.due)))).size).toBe(214);
    expect(morning).toHaveLength(214);
    expect(new Set(morning.map((f) => localTime(at(f.due))))).toEqual(new Set(['09:00']));
    expect(dues(night).filter((d) => d.startsWith('2026-03-29') || d.startsWith('2026-10-25'))).toEqual([
      '2026-03-29T01:00:00.000Z', // 02:30 skipped: fired at the jump, 03:00 CEST
      '2026-10-25T00:30:00.000Z', // the first 02:30 (CEST); the second one does not fire
    ]);
    for (const firing of fired) expect(firing.at).toBe(at(firing.due));
  });

  it('keeps 10,000 schedules and fires each on time; an idle tick touches no store', async () => {
    const clock = new FakeClock('2026-01-01T00:00:00.500Z');
    const store = new MemoryFiringStore();
    const entries: ScheduleEntry[] = Array.from({ length: 10_000 }, (_, i) => ({
      id: `sync:s${i}`,
      enabled: true,
      schedule: {
        type: 'interval',
        unit: 'minute',
        quantity: 1,
        startAt: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}.000Z`,
        catchupWindowSeconds: 3600,
      },
    }));
    const { scheduler, fired } = makeScheduler({ clock, store, entries });
    await scheduler.start();
    await clock.advance(60_000);
    expect(fired).toHaveLength(10_000);
    expect(new Set(fired.map((f) => f.id)).size).toBe(10_000);
    expect(Math.max(...fired.map((f) => f.at - at(f.due)))).toBe(0);

    const callsBefore = store.calls;
    await clock.advance(400); // 00:01:00.900, nothing due
    await scheduler.tick();
    expect(store.calls).toBe(callsBefore);
    await scheduler.stop();
  });
});

describe.each(STORES)('firing once (%s store)', (_name, openStore) => {
  it('two schedulers sharing a store fire each due time once', async () => {
    const handle = openStore();
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [everyMinutes('sync:a'), everyMinutes('sync:b', 5), cronEntry('sequence:crm', '*/10 * * * *')];
    const fired: Firing[] = [];
    const one = makeScheduler({ clock, store: handle(), entries, fired });
    const two = makeScheduler({ clock, store: handle(), entries, fired });
    await one.scheduler.start();
    await two.scheduler.start();
    await clock.advance(30 * 60_000);
    const keys = fired.map((f) => f.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(dues(fired, 'sync:a')).toHaveLength(30);
    expect(dues(fired, 'sync:b')).toHaveLength(6);
    expect(dues(fired, 'sequence:crm')).toHaveLength(3);
    await Promise.all([one.scheduler.stop(), two.scheduler.stop()]);
  });

  it('a restart (new scheduler, same store) does not fire again what was fired', async () => {
    const handle = openStore();
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [everyMinutes('sync:a')];
    const fired: Firing[] = [];
    const first = makeScheduler({ clock, store: handle(), entries, fired });
    await first.scheduler.start();
    await clock.advance(5 * 60_000);
    await first.scheduler.stop();
    expect(fired).toHaveLength(5);

    const second = makeScheduler({ clock, store: handle(), entries, fired });
    await second.scheduler.start();
    await second.scheduler.tick();
    expect(fired).toHaveLength(5);
    await clock.advance(60_000);
    expect(dues(fired).slice(4)).toEqual(['2026-01-01T00:05:00.000Z', '2026-01-01T00:06:00.000Z']);
    await second.scheduler.stop();
  });

  it('a firing recorded before a crash is not repeated, even when its cursor was not saved', async () => {
    const handle = openStore();
    const store = handle();
    await store.setScheduleCursor('sync:a', at('2026-01-01T00:00:00Z'));
    await store.recordFiring('sync:a@2026-01-01T00:01:00.000Z');
    const clock = new FakeClock('2026-01-01T00:01:20Z');
    const { scheduler, fired } = makeScheduler({ clock, store, entries: [everyMinutes('sync:a')] });
    await scheduler.start();
    expect(fired).toEqual([]);
    expect(await store.getScheduleCursor('sync:a')).toBe(at('2026-01-01T00:01:00Z'));
    await clock.advance(60_000);
    expect(dues(fired)).toEqual(['2026-01-01T00:02:00.000Z']);
    await scheduler.stop();
  });

  it('the clock set backward fires nothing again; moving forward resumes', async () => {
    const handle = openStore();
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [everyMinutes('sync:a'), cronEntry('sequence:crm', '*/5 * * * *')];
    const fired: Firing[] = [];
    const running = makeScheduler({ clock, store: handle(), entries, fired });
    await running.scheduler.start();
    await clock.advance(5 * 60_000); // to 00:05:30
    expect(fired).toHaveLength(6);

    await clock.set('2026-01-01T00:02:10Z');
    await running.scheduler.tick();
    // A scheduler started while the clock is behind does not replay either.
    const restarted = makeScheduler({ clock, store: handle(), entries, fired });
    await restarted.scheduler.start();
    await clock.advance(3 * 60_000); // to 00:05:10
    await running.scheduler.tick();
    expect(fired).toHaveLength(6);

    await clock.set('2026-01-01T00:06:00Z');
    await clock.advance(4 * 60_000); // to 00:10:00
    const keys = fired.map((f) => f.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(dues(fired, 'sync:a').slice(5)).toEqual([
      '2026-01-01T00:06:00.000Z',
      '2026-01-01T00:07:00.000Z',
      '2026-01-01T00:08:00.000Z',
      '2026-01-01T00:09:00.000Z',
      '2026-01-01T00:10:00.000Z',
    ]);
    expect(dues(fired, 'sequence:crm')).toEqual(['2026-01-01T00:05:00.000Z', '2026-01-01T00:10:00.000Z']);
    await Promise.all([running.scheduler.stop(), restarted.scheduler.stop()]);
  });
});

describe('catching up after downtime', () => {
  it.each([
    ['an interval', everyMinutes('sync:a', 10)],
    ['a cron expression', cronEntry('sync:a', '*/10 * * * *')],
  ])('collapses missed due times inside the window into one firing and logs the older ones (%s)', async (_kind, entry) => {
    const store = new MemoryFiringStore();
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const fired: Firing[] = [];
    const before = makeScheduler({ clock, store, entries: [entry], fired });
    await before.scheduler.start();
    await clock.advance(10 * 60_000);
    await before.scheduler.stop();
    expect(dues(fired)).toEqual(['2026-01-01T00:10:00.000Z']);

    await clock.set('2026-01-01T05:00:30Z'); // down for almost five hours
    const after = makeScheduler({ clock, store, entries: [entry], fired });
    await after.scheduler.start();
    // 04:10 .. 05:00 are inside the one-hour window: one firing, for the latest.
    expect(dues(fired)).toEqual(['2026-01-01T00:10:00.000Z', '2026-01-01T05:00:00.000Z']);
    // 00:20 .. 04:00 are older: skipped, and logged with the entry id and their number.
    const warnings = after.lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.fields).toMatchObject({ scheduleId: 'sync:a', skipped: 23 });
    expect(warnings[0]!.message).toContain('"sync:a" skipped 23 due time(s)');

    await clock.advance(10 * 60_000);
    expect(dues(fired).slice(2)).toEqual(['2026-01-01T05:10:00.000Z']);
    await after.scheduler.stop();
  });

  it('fires nothing when every missed due time is older than the window, then resumes', async () => {
    const store = new MemoryFiringStore();
    const entries = [cronEntry('sync:daily', '0 9 * * *')];
    const clock = new FakeClock('2026-01-01T10:00:00Z');
    const before = makeScheduler({ clock, store, entries });
    await before.scheduler.start();
    await before.scheduler.stop();

    await clock.set('2026-01-03T12:00:00Z');
    const after = makeScheduler({ clock, store, entries, maxSleepMs: 86_400_000 });
    await after.scheduler.start();
    expect(after.fired).toEqual([]);
    expect(after.lines.find((l) => l.level === 'warn')?.fields).toMatchObject({ scheduleId: 'sync:daily', skipped: 2 });
    expect(store.cursors.get('sync:daily')).toBe(at('2026-01-03T09:00:00Z'));
    await clock.set('2026-01-04T09:00:00Z');
    expect(dues(after.fired)).toEqual(['2026-01-04T09:00:00.000Z']);
    await after.scheduler.stop();
  });
});

describe('enabling and disabling', () => {
  it('never fires a disabled entry; enabling starts from now without a burst', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [{ ...everyMinutes('sync:a'), enabled: false }, everyMinutes('sync:b')];
    const { scheduler, fired } = makeScheduler({ clock, store: new MemoryFiringStore(), entries });
    await scheduler.start();
    await clock.advance(10 * 60_000); // to 00:10:30
    expect(dues(fired, 'sync:a')).toEqual([]);

    entries[0] = everyMinutes('sync:a');
    await scheduler.reload();
    expect(dues(fired, 'sync:a')).toEqual([]);
    await clock.advance(60_000); // to 00:11:30
    expect(dues(fired, 'sync:a')).toEqual(['2026-01-01T00:11:00.000Z']);

    entries[0] = { ...everyMinutes('sync:a'), enabled: false };
    await scheduler.reload();
    await clock.advance(5 * 60_000); // to 00:16:30
    expect(dues(fired, 'sync:a')).toHaveLength(1);

    entries[0] = everyMinutes('sync:a');
    await scheduler.reload();
    await clock.advance(60_000); // to 00:17:30
    expect(dues(fired, 'sync:a')).toEqual(['2026-01-01T00:11:00.000Z', '2026-01-01T00:17:00.000Z']);
    expect(dues(fired, 'sync:b')).toHaveLength(17);

    entries.splice(1, 1); // sync:b removed from the workspace
    await scheduler.reload();
    await clock.advance(5 * 60_000);
    expect(dues(fired, 'sync:b')).toHaveLength(17);
    await scheduler.stop();
  });

  it('a reload wakes a long sleep when an entry is now due sooner', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [cronEntry('sync:daily', '0 9 * * *')];
    const { scheduler, fired } = makeScheduler({ clock, store: new MemoryFiringStore(), entries, maxSleepMs: 86_400_000 });
    await scheduler.start();
    expect(clock.nextWakeAt).toBe(at('2026-01-01T09:00:00Z'));
    entries.push(everyMinutes('sync:a'));
    await scheduler.reload();
    await flush();
    expect(clock.nextWakeAt).toBe(at('2026-01-01T00:01:00Z'));
    expect(clock.pendingSleeps).toBe(1);
    await clock.advance(60_000);
    expect(dues(fired)).toEqual(['2026-01-01T00:01:00.000Z']);
    await scheduler.stop();
  });

  it('a changed schedule starts from now', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [everyMinutes('sync:a', 10)];
    const { scheduler, fired } = makeScheduler({ clock, store: new MemoryFiringStore(), entries });
    await scheduler.start();
    await clock.advance(5 * 60_000); // to 00:05:30
    entries[0] = cronEntry('sync:a', '*/2 * * * *');
    await scheduler.reload();
    await clock.advance(3 * 60_000); // to 00:08:30
    expect(dues(fired)).toEqual(['2026-01-01T00:06:00.000Z', '2026-01-01T00:08:00.000Z']);
    await scheduler.stop();
  });
});

describe('failures', () => {
  it('a throwing fire is logged and stops neither the loop nor other entries', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [everyMinutes('sync:broken'), everyMinutes('sync:fine')];
    const { scheduler, fired, lines } = makeScheduler({
      clock,
      store: new MemoryFiringStore(),
      entries,
      fire: async (entry) => {
        if (entry.id === 'sync:broken') throw new Error('destination unreachable');
      },
    });
    await scheduler.start();
    await clock.advance(3 * 60_000);
    expect(dues(fired, 'sync:fine')).toHaveLength(3);
    // Each due time of the broken entry was tried once, not retried.
    expect(dues(fired, 'sync:broken')).toEqual([
      '2026-01-01T00:01:00.000Z',
      '2026-01-01T00:02:00.000Z',
      '2026-01-01T00:03:00.000Z',
    ]);
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(3);
    expect(errors[0]!.message).toContain('"sync:broken" failed to fire sync:broken@2026-01-01T00:01:00.000Z: destination unreachable');
    expect(scheduler.currentState).toBe('running');
    await scheduler.stop();
  });

  it('retries a firing the store could not record', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const store = new MemoryFiringStore();
    let failures = 1;
    const flaky: FiringStore = {
      recordFiring: async (key) => {
        if (failures-- > 0) throw new LockstepError(ErrorCode.Store, 'database is locked', { retryable: true });
        return store.recordFiring(key);
      },
      forgetFiring: (key) => store.forgetFiring(key),
      getScheduleCursor: (id) => store.getScheduleCursor(id),
      setScheduleCursor: (id, t) => store.setScheduleCursor(id, t),
    };
    const { scheduler, fired, lines } = makeScheduler({ clock, store: flaky, entries: [everyMinutes('sync:a')] });
    await scheduler.start();
    await clock.advance(30_000);
    expect(fired).toEqual([]);
    expect(lines.find((l) => l.level === 'error')?.message).toContain('"sync:a" failed to fire sync:a@2026-01-01T00:01:00.000Z: database is locked; will retry');
    await clock.advance(1_000);
    expect(fired.map((f) => [f.due, iso(f.at)])).toEqual([['2026-01-01T00:01:00.000Z', '2026-01-01T00:01:01.000Z']]);
    await scheduler.stop();
  });

  it('fires again, a second later, a due time whose run the store failed to queue', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const store = new MemoryFiringStore();
    let failures = 2;
    const { scheduler, fired, lines } = makeScheduler({
      clock,
      store,
      entries: [everyMinutes('sync:a')],
      fire: async () => {
        if (failures-- > 0) throw new LockstepError(ErrorCode.Store, 'store PostgreSQL at db:5432/lockstep cannot be reached: connect ECONNREFUSED', { retryable: true });
      },
    });
    await scheduler.start();
    await clock.advance(30_000);
    expect(lines.find((l) => l.level === 'error')?.message).toContain('"sync:a" failed to fire sync:a@2026-01-01T00:01:00.000Z: store PostgreSQL at db:5432/lockstep cannot be reached');
    expect(lines.find((l) => l.level === 'error')?.message).toContain('will retry');
    await clock.advance(1_000);
    await clock.advance(1_000);
    expect(fired.map((f) => [f.due, iso(f.at)])).toEqual([
      ['2026-01-01T00:01:00.000Z', '2026-01-01T00:01:00.000Z'],
      ['2026-01-01T00:01:00.000Z', '2026-01-01T00:01:01.000Z'],
      ['2026-01-01T00:01:00.000Z', '2026-01-01T00:01:02.000Z'],
    ]);
    expect(await store.getScheduleCursor('sync:a')).toBe(at('2026-01-01T00:01:00Z'));
    await clock.advance(60_000);
    expect(dues(fired).slice(3)).toEqual(['2026-01-01T00:02:00.000Z']);
    await scheduler.stop();
  });

  it('fires again a due time whose firing the store refused for a reason it does not call passing (a full disk): nothing of it was written', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const store = new MemoryFiringStore();
    let failures = 1;
    const { scheduler, fired } = makeScheduler({
      clock,
      store,
      entries: [everyMinutes('sync:a')],
      fire: async () => {
        if (failures-- > 0) throw new LockstepError(ErrorCode.Store, 'store lockstep.db: the disk is full (SQLITE_FULL)');
      },
    });
    await scheduler.start();
    await clock.advance(31_000);
    expect(fired.map((f) => [f.due, iso(f.at)])).toEqual([
      ['2026-01-01T00:01:00.000Z', '2026-01-01T00:01:00.000Z'],
      ['2026-01-01T00:01:00.000Z', '2026-01-01T00:01:01.000Z'],
    ]);
    expect(store.firings).toEqual(new Set(['sync:a@2026-01-01T00:01:00.000Z']));
    await scheduler.stop();
  });

  it('an invalid schedule is logged by id and the others still fire', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const entries = [cronEntry('sync:bad', '0 25 * * *'), cronEntry('sync:zone', '0 9 * * *', 'Mars/Base'), everyMinutes('sync:ok')];
    const { scheduler, fired, lines } = makeScheduler({ clock, store: new MemoryFiringStore(), entries });
    await scheduler.start();
    await clock.advance(60_000);
    expect(dues(fired)).toEqual(['2026-01-01T00:01:00.000Z']);
    const errors = lines.filter((l) => l.level === 'error').map((l) => l.message);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toContain('schedule "sync:bad" is invalid');
    expect(errors[1]).toContain('unknown timezone "Mars/Base"');
    await scheduler.stop();
  });
});

// A stop that hangs fails fast instead of waiting for the suite's 60 s timeout.
describe('stopping', { timeout: 5_000 }, () => {
  it('stop() ends the loop promptly and leaves no pending sleep', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const { scheduler, fired } = makeScheduler({ clock, store: new MemoryFiringStore(), entries: [everyMinutes('sync:a')] });
    await scheduler.start();
    expect(clock.pendingSleeps).toBe(1);
    await scheduler.stop();
    expect(clock.pendingSleeps).toBe(0);
    expect(scheduler.currentState).toBe('stopped');
    await clock.advance(5 * 60_000);
    expect(fired).toEqual([]);
    await expect(scheduler.start()).rejects.toThrow(/cannot go from stopped to running/);
  });

  it('stop() waits for an in-flight firing', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const { scheduler, fired } = makeScheduler({
      clock,
      store: new MemoryFiringStore(),
      entries: [everyMinutes('sync:a')],
      fire: () => blocked,
    });
    await scheduler.start();
    await clock.advance(30_000);
    expect(fired).toHaveLength(1);
    let stopped = false;
    const stopping = scheduler.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(clock.pendingSleeps).toBe(0);
  });

  it('is disposed by `await using`', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    {
      await using scheduler = makeScheduler({ clock, store: new MemoryFiringStore(), entries: [everyMinutes('sync:a')] }).scheduler;
      await scheduler.start();
      expect(clock.pendingSleeps).toBe(1);
    }
    expect(clock.pendingSleeps).toBe(0);
  });
});

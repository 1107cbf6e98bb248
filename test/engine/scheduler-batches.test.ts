/** Due times that arrive together have their cursors saved in one store call. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { Scheduler, type ScheduleEntry } from '../../src/engine/scheduler.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { tempDir } from '../helpers/harness.js';

describe('scheduler batches', () => {
  it('a burst of due schedules costs one setScheduleCursors call, and each fires once', async () => {
    const clock = new FakeClock('2026-01-01T00:00:30Z');
    const store = await SqliteStore.open({ path: join(tempDir(), 'lockstep.db'), clock });
    const calls = { setScheduleCursors: 0, setScheduleCursor: 0 };
    const counted = {
      getScheduleCursor: (id: string) => store.schedules.getScheduleCursor(id),
      setScheduleCursor: (id: string, t: number) => (calls.setScheduleCursor++, store.schedules.setScheduleCursor(id, t)),
      setScheduleCursors: (c: Array<{ scheduleId: string; dueTime: number }>) => (calls.setScheduleCursors++, store.schedules.setScheduleCursors(c)),
    };
    const entries: ScheduleEntry[] = Array.from({ length: 200 }, (_, i) => ({
      id: `sync:s${i}`,
      enabled: true,
      schedule: { type: 'cron', expression: '* * * * *', timezone: 'UTC', catchupWindowSeconds: 3600 },
    }));
    const fired: string[] = [];
    const scheduler = new Scheduler({
      store: counted,
      clock,
      logger: silentLogger,
      listSchedules: async () => entries,
      fire: async (_entry, _due, key) => (await store.schedules.recordFiring(key, clock.now())) && fired.push(key) > 0,
    });
    try {
      await scheduler.start();
      const armed = { ...calls };
      await clock.advance(30_000);
      expect(fired).toHaveLength(200);
      expect(new Set(fired).size).toBe(200);
      expect(calls.setScheduleCursors - armed.setScheduleCursors).toBe(1);
      expect(await store.schedules.getScheduleCursor('sync:s199')).toBe(Date.parse('2026-01-01T00:01:00Z'));

      // Another scheduler on the same store, a minute later: every due time fires once across both.
      const second = new Scheduler({ store: store.schedules, clock, logger: silentLogger, listSchedules: async () => entries, fire: async (_e, _d, key) => (await store.schedules.recordFiring(key, clock.now())) && fired.push(key) > 0 });
      await second.start();
      await clock.advance(60_000);
      await second.stop();
      expect(fired).toHaveLength(400);
      expect(new Set(fired).size).toBe(400);
    } finally {
      await scheduler.stop();
      await store.close();
    }
  });
});

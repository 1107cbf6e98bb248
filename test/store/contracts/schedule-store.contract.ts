/**
 * The ScheduleStore contract: a firing key (`scheduleId@dueTime`) is recorded once, alone or in a
 * batch that answers which keys were new; each schedule keeps one cursor, the last one saved.
 */
import { describe, expect, it } from 'vitest';
import type { ScheduleStore } from '../../../src/core/ports.js';
import { T0, useFreshStore, type OpenStore } from './fixtures.js';

export function describeScheduleStoreContract(name: string, open: OpenStore): void {
  describe(`ScheduleStore contract: ${name}`, () => {
    let schedules: ScheduleStore;
    useFreshStore(open, (opened) => {
      schedules = opened.schedules;
    });

    it('records a firing once', async () => {
      expect(await schedules.recordFiring('sync:1@1767225600000', T0)).toBe(true);
      expect(await schedules.recordFiring('sync:1@1767225600000', T0 + 1)).toBe(false);
      expect(await schedules.recordFiring('sync:1@1767229200000', T0 + 2)).toBe(true);
      expect(await schedules.recordFiring('sequence:1@1767225600000', T0 + 3)).toBe(true);
    });

    it('keeps a cursor per schedule', async () => {
      expect(await schedules.getScheduleCursor('sync:1')).toBeNull();
      await schedules.setScheduleCursor('sync:1', T0);
      await schedules.setScheduleCursor('sequence:1', T0 + 60_000);
      expect(await schedules.getScheduleCursor('sync:1')).toBe(T0);
      await schedules.setScheduleCursor('sync:1', T0 + 3_600_000);
      expect(await schedules.getScheduleCursor('sync:1')).toBe(T0 + 3_600_000);
      expect(await schedules.getScheduleCursor('sequence:1')).toBe(T0 + 60_000);
    });

    it('records firings and saves cursors in batches', async () => {
      expect(await schedules.recordFiring('sync:2@a', T0)).toBe(true);
      expect(await schedules.recordFirings(['sync:1@a', 'sync:2@a', 'sync:3@a'], T0 + 1)).toEqual(['sync:1@a', 'sync:3@a']);
      expect(await schedules.recordFirings(['sync:1@a', 'sync:3@a'], T0 + 2)).toEqual([]);
      expect(await schedules.recordFirings([], T0 + 3)).toEqual([]);
      await schedules.setScheduleCursors([
        { scheduleId: 'sync:1', dueTime: T0 },
        { scheduleId: 'sync:2', dueTime: T0 + 60_000 },
      ]);
      await schedules.setScheduleCursors([{ scheduleId: 'sync:1', dueTime: T0 + 120_000 }]);
      expect(await schedules.getScheduleCursor('sync:1')).toBe(T0 + 120_000);
      expect(await schedules.getScheduleCursor('sync:2')).toBe(T0 + 60_000);
    });
  });
}

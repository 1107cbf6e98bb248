/**
 * The ScheduleStore contract: a firing key (`scheduleId@dueTime`) is recorded once (with its run:
 * run-queue.contract.ts); each schedule keeps one cursor, the last one saved, alone or in a batch.
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

    it('saves cursors in batches', async () => {
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

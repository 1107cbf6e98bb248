/**
 * The ScheduleStore contract: a firing key (`scheduleId@dueTime`) is recorded once, alone or in a
 * batch that answers which keys were new; each schedule keeps one cursor, the last one saved.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../../src/core/ports.js';
import { T0, useFreshStore, type OpenStore } from './fixtures.js';

export function describeScheduleStoreContract(name: string, open: OpenStore): void {
  describe(`ScheduleStore contract: ${name}`, () => {
    let store: Store;
    useFreshStore(open, (opened) => {
      store = opened;
    });

    it('records a firing once', async () => {
      expect(await store.recordFiring('sync:1@1767225600000', T0)).toBe(true);
      expect(await store.recordFiring('sync:1@1767225600000', T0 + 1)).toBe(false);
      expect(await store.recordFiring('sync:1@1767229200000', T0 + 2)).toBe(true);
      expect(await store.recordFiring('sequence:1@1767225600000', T0 + 3)).toBe(true);
    });

    it('keeps a cursor per schedule', async () => {
      expect(await store.getScheduleCursor('sync:1')).toBeNull();
      await store.setScheduleCursor('sync:1', T0);
      await store.setScheduleCursor('sequence:1', T0 + 60_000);
      expect(await store.getScheduleCursor('sync:1')).toBe(T0);
      await store.setScheduleCursor('sync:1', T0 + 3_600_000);
      expect(await store.getScheduleCursor('sync:1')).toBe(T0 + 3_600_000);
      expect(await store.getScheduleCursor('sequence:1')).toBe(T0 + 60_000);
    });

    it('records firings and saves cursors in batches', async () => {
      expect(await store.recordFiring('sync:2@a', T0)).toBe(true);
      expect(await store.recordFirings(['sync:1@a', 'sync:2@a', 'sync:3@a'], T0 + 1)).toEqual(['sync:1@a', 'sync:3@a']);
      expect(await store.recordFirings(['sync:1@a', 'sync:3@a'], T0 + 2)).toEqual([]);
      expect(await store.recordFirings([], T0 + 3)).toEqual([]);
      await store.setScheduleCursors([
        { scheduleId: 'sync:1', dueTime: T0 },
        { scheduleId: 'sync:2', dueTime: T0 + 60_000 },
      ]);
      await store.setScheduleCursors([{ scheduleId: 'sync:1', dueTime: T0 + 120_000 }]);
      expect(await store.getScheduleCursor('sync:1')).toBe(T0 + 120_000);
      expect(await store.getScheduleCursor('sync:2')).toBe(T0 + 60_000);
    });
  });
}

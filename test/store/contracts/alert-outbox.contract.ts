/**
 * The alert outbox contract (`store.alerts` deliveries): due deliveries are claimed in due order,
 * and the notices of one condition reach a channel in the order they were raised — a delivery is
 * held back while an older one of the same channel and dedup key is pending.
 */
import { describe, expect, it } from 'vitest';
import type { AlertNotice } from '../../../src/core/alerts.js';
import type { Store } from '../../../src/core/ports.js';
import { T0, useFreshStore, type OpenStore } from './fixtures.js';

function notice(kind: 'triggered' | 'resolved', dedupKey: string): AlertNotice {
  return {
    kind,
    event: kind === 'triggered' ? 'sync_failed' : 'recovered',
    condition: 'failed',
    rule: 'default',
    subject: { kind: 'sync', slug: 'accounts' },
    run: null,
    title: kind,
    text: kind,
    fields: [],
    severity: 'error',
    dedupKey,
    occurredAt: T0,
  };
}

export function describeAlertOutboxContract(name: string, open: OpenStore): void {
  describe(`alert outbox contract: ${name}`, () => {
    let store: Store;
    useFreshStore(open, (opened) => {
      store = opened;
    });

    it("holds a condition's later notice for a channel while an earlier one is pending there, and frees it when that one is sent or given up", async () => {
      const [trigger] = await store.alerts.enqueueDeliveries([{ channel: 'pd', notice: notice('triggered', 'k1') }], T0);
      // Refused once; tried again in a minute.
      expect((await store.alerts.claimDueDeliveries(T0, 10, 1000)).map((d) => d.id)).toEqual([trigger!.id]);
      await store.alerts.markDeliveryFailed(trigger!.id, 'answered 429', T0 + 60_000);
      // Meanwhile the condition cleared; other conditions and channels are not held.
      const [resolve, otherKey, otherChannel] = await store.alerts.enqueueDeliveries(
        [
          { channel: 'pd', notice: notice('resolved', 'k1') },
          { channel: 'pd', notice: notice('triggered', 'k2') },
          { channel: 'slack', notice: notice('resolved', 'k1') },
        ],
        T0 + 10,
      );
      expect(await store.alerts.nextDeliveryAt()).toBe(T0 + 10);
      expect((await store.alerts.claimDueDeliveries(T0 + 20, 10, 1000)).map((d) => d.id)).toEqual([otherKey!.id, otherChannel!.id]);
      await store.alerts.markDeliverySent(otherKey!.id, T0 + 21);
      await store.alerts.markDeliverySent(otherChannel!.id, T0 + 21);
      // Only the trigger's retry is ahead: the resolve waits for it.
      expect(await store.alerts.nextDeliveryAt()).toBe(T0 + 60_000);
      expect(await store.alerts.claimDueDeliveries(T0 + 30_000, 10, 1000)).toEqual([]);
      // The trigger goes first; while it is being sent (claimed), the resolve still waits.
      expect((await store.alerts.claimDueDeliveries(T0 + 60_000, 10, 1000)).map((d) => d.id)).toEqual([trigger!.id]);
      expect(await store.alerts.claimDueDeliveries(T0 + 60_001, 10, 1000)).toEqual([]);
      await store.alerts.markDeliverySent(trigger!.id, T0 + 60_002);
      expect(await store.alerts.nextDeliveryAt()).toBe(T0 + 10);
      expect((await store.alerts.claimDueDeliveries(T0 + 60_003, 10, 1000)).map((d) => d.id)).toEqual([resolve!.id]);
      await store.alerts.markDeliverySent(resolve!.id, T0 + 60_004);
      expect(await store.alerts.nextDeliveryAt()).toBeNull();

      // A notice given up for good holds nothing back.
      const [late] = await store.alerts.enqueueDeliveries([{ channel: 'pd', notice: notice('triggered', 'k3') }], T0 + 70_000);
      const [after] = await store.alerts.enqueueDeliveries([{ channel: 'pd', notice: notice('resolved', 'k3') }], T0 + 70_001);
      expect((await store.alerts.claimDueDeliveries(T0 + 70_002, 10, 1000)).map((d) => d.id)).toEqual([late!.id]);
      await store.alerts.markDeliveryFailed(late!.id, 'answered 400', null);
      expect((await store.alerts.claimDueDeliveries(T0 + 70_003, 10, 1000)).map((d) => d.id)).toEqual([after!.id]);
    });
  });
}

/**
 * The WebhookEventStore contract (`store.webhooks`): every delivery is recorded, an accepted event id
 * only once; refused deliveries (401, 413: anyone can send them) are kept whole only for the newest
 * `refusedKept` and counted per source and reason forever; other deliveries are kept for
 * `retentionDays`, measured from the delivery being recorded.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../../src/core/ports.js';
import type { NewWebhookEvent, WebhookRetention } from '../../../src/core/webhooks.js';
import { T0, useFreshStore, type OpenStore } from './fixtures.js';

const DAY = 86_400_000;
const UNSIGNED = 'the Authorization header is not the HMAC-SHA256 of the body with the configured dbt Cloud secret';
const NO_SECRET = 'no Fivetran webhook secret is configured — set webhooks.fivetran.secret in lockstep.yaml';

function delivery(over: Partial<NewWebhookEvent>): NewWebhookEvent {
  return {
    source: 'dbt_cloud',
    receivedAt: T0,
    eventId: null,
    eventType: null,
    outcome: 'rejected',
    reason: UNSIGNED,
    httpStatus: 401,
    triggered: [],
    payloadExcerpt: '{"forged":true}',
    ...over,
  };
}

export function describeWebhookStoreContract(name: string, open: OpenStore): void {
  describe(`WebhookEventStore contract: ${name}`, () => {
    let store: Store;
    useFreshStore(open, (opened) => {
      store = opened;
    });

    it('keeps the newest refused deliveries whole and counts every one per source and reason', async () => {
      const retention: WebhookRetention = { refusedKept: 3, retentionDays: 30 };
      const accepted = await store.webhooks.record(
        delivery({ outcome: 'accepted', httpStatus: 200, eventId: 'evt-1', eventType: 'job.run.completed', reason: 'dbt Cloud job 7 completed successfully' }),
        retention,
      );
      for (let i = 0; i < 8; i++) await store.webhooks.record(delivery({ receivedAt: T0 + 1 + i, payloadExcerpt: `forged ${i}` }), retention);
      await store.webhooks.record(delivery({ source: 'fivetran', reason: NO_SECRET, receivedAt: T0 + 20 }), retention);
      await store.webhooks.record(delivery({ reason: 'the body is larger than 262144 bytes', httpStatus: 413, receivedAt: T0 + 30, payloadExcerpt: '' }), retention);

      const listed = await store.webhooks.list({ limit: 100, offset: 0 });
      const refused = listed.filter((e) => e.httpStatus === 401 || e.httpStatus === 413);
      expect(refused.map((e) => e.payloadExcerpt)).toEqual(['', '{"forged":true}', 'forged 7']);
      // What was verified is never pruned by refused ones.
      expect(listed.map((e) => e.id)).toContain(accepted.event.id);

      expect(await store.webhooks.refusals()).toEqual([
        { source: 'dbt_cloud', reason: 'the body is larger than 262144 bytes', httpStatus: 413, count: 1, firstReceivedAt: T0 + 30, lastReceivedAt: T0 + 30 },
        { source: 'fivetran', reason: NO_SECRET, httpStatus: 401, count: 1, firstReceivedAt: T0 + 20, lastReceivedAt: T0 + 20 },
        { source: 'dbt_cloud', reason: UNSIGNED, httpStatus: 401, count: 8, firstReceivedAt: T0 + 1, lastReceivedAt: T0 + 8 },
      ]);
    });

    it('drops other deliveries older than the retention days; an event accepted before is still a duplicate within them', async () => {
      const retention: WebhookRetention = { refusedKept: 100, retentionDays: 30 };
      const accepted = (eventId: string, receivedAt: number) =>
        store.webhooks.record(delivery({ outcome: 'accepted', httpStatus: 200, eventId, receivedAt, reason: 'completed successfully' }), retention);
      const old = await accepted('evt-old', T0);
      await store.webhooks.record(delivery({ receivedAt: T0 + 1 }), retention);
      const ignored = await store.webhooks.record(delivery({ outcome: 'ignored', httpStatus: 200, reason: 'event type x does not start runs', receivedAt: T0 + 10 * DAY }), retention);
      expect((await accepted('evt-old', T0 + 20 * DAY)).duplicate).toBe(true);
      // 31 days after the first, it goes; the refused one of the same day stays (refused ones go by count).
      await accepted('evt-new', T0 + 31 * DAY);
      const ids = (await store.webhooks.list({ limit: 100, offset: 0 })).map((e) => e.id);
      expect(ids).not.toContain(old.event.id);
      expect(ids).toContain(ignored.event.id);
      expect(ids.length).toBe(4);
      // Forever (0 days) keeps everything.
      await store.webhooks.record(delivery({ outcome: 'ignored', httpStatus: 200, receivedAt: T0 + 400 * DAY }), { refusedKept: 100, retentionDays: 0 });
      expect((await store.webhooks.list({ limit: 100, offset: 0 })).length).toBe(5);
    });
  });
}

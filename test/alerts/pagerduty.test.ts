/**
 * Alerts to PagerDuty's Events API v2, against a stand-in written from PagerDuty's documentation:
 * one incident per failing sync, resolved when it recovers, whatever the order in which attempts
 * fail and succeed.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AlertNotice, AlertsDefinition } from '../../src/core/alerts.js';
import { pagerDutyEvent } from '../../src/connectors/alert-channels/pagerduty-channel.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { PagerDutyStandin } from '../standins/pagerduty-standin.js';
import { runSync, settle } from './app-steps.js';
import { until } from './receivers.js';

/** An integration key as PagerDuty issues them: 32 characters. */
const ROUTING_KEY = 'R0123456789abcdef0123456789abcde';

async function setup(options: { retryMs?: number; slug?: string; routingKey?: string } = {}) {
  const pd = await PagerDutyStandin.start();
  const slug = options.slug ?? 'accounts';
  const alerts: AlertsDefinition = {
    channels: [{ name: 'oncall', type: 'pagerduty', routingKey: '${PD_KEY}', url: pd.url }],
    rules: [{ name: 'default', on: ['sync_failed', 'recovered'], syncs: [], sequences: [], rejectedPercent: 0, slowerThanMinutes: null, channels: ['oncall'] }],
  };
  const dir = tempDir();
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    env: { PD_KEY: options.routingKey ?? ROUTING_KEY, LOCKSTEP_ALERT_RETRY_MS: String(options.retryMs ?? 200) },
    definition: {
      ...workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { path: 'crm.db' })],
        models: [model('accounts', 'warehouse', 'select id, name from accounts')],
        syncs: [sync(slug, { model: 'accounts', destination: 'crm', object: 'accounts' })],
      }),
      alerts,
    },
  });
  return {
    h,
    pd,
    slug,
    async [Symbol.asyncDispose]() {
      await h.app.close();
      await pd[Symbol.asyncDispose]();
    },
  };
}

describe('PagerDuty channel', () => {
  it('opens one incident per failing sync and resolves it when the sync recovers', async () => {
    await using t = await setup();
    const { h, pd } = t;
    sqlite(join(h.dir, 'crm.db'), 'alter table accounts rename to accounts_gone');
    for (let i = 0; i < 3; i++) {
      expect((await runSync(h.app, 'accounts')).status).toBe('failed');
      await settle(h.app);
    }
    expect(pd.open()).toEqual([expect.objectContaining({ dedupKey: 'lockstep:default:sync:accounts:failed', status: 'triggered', triggers: 1 })]);
    expect(pd.open()[0]!.summary).toMatch(/^Sync "accounts" failed: /);

    sqlite(join(h.dir, 'crm.db'), 'alter table accounts_gone rename to accounts');
    expect((await runSync(h.app, 'accounts')).status).toBe('success');
    await settle(h.app);
    expect(pd.open()).toEqual([]);
    expect(pd.events.map((e) => [e.action, e.applied])).toEqual([
      ['trigger', true],
      ['resolve', true],
    ]);
  });

  it('resolves the incident when the trigger went through only after the sync had recovered (PagerDuty answered 429 first)', async () => {
    // The first attempt of the trigger is refused; its retry comes about 2 s later.
    await using t = await setup({ retryMs: 2000 });
    const { h, pd } = t;
    pd.failNext(429);
    sqlite(join(h.dir, 'crm.db'), 'alter table accounts rename to accounts_gone');
    expect((await runSync(h.app, 'accounts')).status).toBe('failed');
    await settle(h.app);
    expect(pd.answers).toEqual([429]);

    // Recovered before the trigger's retry is due.
    sqlite(join(h.dir, 'crm.db'), 'alter table accounts_gone rename to accounts');
    expect((await runSync(h.app, 'accounts')).status).toBe('success');
    await settle(h.app);

    const deliveries = () => h.app.store.alerts.listDeliveries({ channel: 'oncall', limit: 10, offset: 0 });
    await until(async () => {
      await h.app.alerts.sendDue();
      return (await deliveries()).every((d) => d.status === 'sent');
    }, 'both notices sent', 15_000);
    expect(pd.events.map((e) => e.action)).toEqual(['trigger', 'resolve']);
    expect(pd.open()).toEqual([]);
  });

  it('cuts a long summary to the 1024 characters PagerDuty takes, never inside a character', () => {
    const notice: AlertNotice = {
      kind: 'triggered',
      event: 'sync_failed',
      condition: 'failed',
      rule: 'default',
      subject: { kind: 'sync', slug: 'accounts' },
      run: null,
      title: 'Sync "accounts" failed',
      // The API's error puts an emoji (two UTF-16 units) right where the summary is cut.
      text: `${'x'.repeat(1024 - 'Sync "accounts" failed: '.length - 1)}🚫 and more`,
      fields: [],
      severity: 'error',
      dedupKey: 'lockstep:default:sync:accounts:failed',
      occurredAt: 0,
    };
    const { summary } = (pagerDutyEvent(notice, ROUTING_KEY) as { payload: { summary: string } }).payload;
    expect([...summary].length).toBeLessThanOrEqual(1024);
    // No half of a surrogate pair: it survives a round trip through UTF-8.
    expect(Buffer.from(summary, 'utf8').toString('utf8')).toBe(summary);
    expect(summary.endsWith('x')).toBe(true);
  });

  it('keeps the dedup key within the 255 characters PagerDuty takes, one key per rule, sync and condition', async () => {
    const slug = `accounts-${'x'.repeat(250)}`;
    await using t = await setup({ slug });
    const { h, pd } = t;
    sqlite(join(h.dir, 'crm.db'), 'alter table accounts rename to accounts_gone');
    expect((await runSync(h.app, slug)).status).toBe('failed');
    await settle(h.app);
    const [delivery] = await h.app.store.alerts.listDeliveries({ channel: 'oncall', limit: 1, offset: 0 });
    expect(delivery).toMatchObject({ status: 'sent' });
    expect(pd.open()).toHaveLength(1);
    const key = pd.open()[0]!.dedupKey;
    expect(key.length).toBeLessThanOrEqual(255);
    expect(key.startsWith('lockstep:default:sync:accounts-xxx')).toBe(true);

    sqlite(join(h.dir, 'crm.db'), 'alter table accounts_gone rename to accounts');
    expect((await runSync(h.app, slug)).status).toBe('success');
    await settle(h.app);
    expect(pd.open()).toEqual([]);
    expect(pd.events.map((e) => [e.action, e.dedupKey === key, e.applied])).toEqual([
      ['trigger', true, true],
      ['resolve', true, true],
    ]);
  });

  it("gives up at once on a routing key PagerDuty refuses, naming PagerDuty's errors and the key to set", async () => {
    // A REST API key pasted instead of the integration key: 20 characters.
    await using t = await setup({ routingKey: 'u+Ab1Cd2Ef3Gh4Ij5Kl6' });
    const { h, pd } = t;
    const error = await h.app.alerts.sendTestAlert('oncall').then(
      () => null,
      (e: unknown) => e as Error & { retryable?: boolean },
    );
    expect(pd.answers).toEqual([400]);
    expect(error?.retryable).toBe(false);
    expect(error?.message).toBe(
      "pagerduty channel \"oncall\": PagerDuty refused the event (400 Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)) — set the channel's routingKey to the 32-character Integration Key of an Events API v2 integration of the service",
    );
    const [delivery] = await h.app.store.alerts.listDeliveries({ channel: 'oncall', limit: 1, offset: 0 });
    expect(delivery).toMatchObject({ status: 'failed', attempts: 1 });
    expect(delivery!.lastError).not.toContain('u+Ab1Cd2Ef3Gh4Ij5Kl6');
  });

  it('a test alert shows in PagerDuty and resolves itself: it leaves no open incident', async () => {
    await using t = await setup();
    const { h, pd } = t;
    await h.app.alerts.sendTestAlert('oncall');
    expect(pd.events.map((e) => [e.action, e.dedupKey, e.applied])).toEqual([
      ['trigger', 'lockstep:test:oncall', true],
      ['resolve', 'lockstep:test:oncall', true],
    ]);
    expect(pd.alerts).toEqual([expect.objectContaining({ summary: expect.stringMatching(/^Test alert from Lockstep: /), status: 'resolved' })]);
    expect(pd.open()).toEqual([]);
  });
});

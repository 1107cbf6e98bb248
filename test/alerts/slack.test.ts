/**
 * Alerts to Slack incoming webhooks, against a stand-in written from Slack's documentation: what
 * Slack answers for a revoked webhook, an archived or deleted channel, a restricted workspace or too
 * many messages, and what its markup does with a notice's text.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { App } from '../../src/app.js';
import type { AlertNotice, AlertsDefinition } from '../../src/core/alerts.js';
import { LockstepError } from '../../src/core/errors.js';
import { SlackChannel } from '../../src/connectors/alert-channels/slack-channel.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { SlackStandin } from '../standins/slack-standin.js';
import { until } from './receivers.js';

async function setup() {
  const slack = await SlackStandin.start();
  const url = slack.createWebhook();
  const alerts: AlertsDefinition = {
    channels: [{ name: 'ops', type: 'slack', url: '${SLACK_WEBHOOK}' }],
    rules: [{ name: 'default', on: ['sync_failed', 'recovered'], syncs: [], sequences: [], rejectedPercent: 0, slowerThanMinutes: null, channels: ['ops'] }],
  };
  const dir = tempDir();
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    env: { SLACK_WEBHOOK: url, LOCKSTEP_ALERT_RETRY_MS: '200' },
    definition: {
      ...workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { path: 'crm.db' })],
        models: [model('accounts', 'warehouse', 'select id, name from accounts')],
        syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
      }),
      alerts,
    },
  });
  return {
    h,
    slack,
    url,
    async [Symbol.asyncDispose]() {
      await h.app.close();
      await slack[Symbol.asyncDispose]();
    },
  };
}

async function failSync(app: App, dir: string) {
  sqlite(join(dir, 'crm.db'), 'alter table accounts rename to accounts_gone');
  const { run } = await app.runs.triggerSync('accounts');
  expect((await app.runs.waitForSyncRun(run.id)).status).toBe('failed');
  await app.alertMonitor.idle();
}

function notice(text: string): AlertNotice {
  return {
    kind: 'triggered',
    event: 'sync_failed',
    condition: 'failed',
    rule: 'default',
    subject: { kind: 'sync', slug: 'accounts' },
    run: { kind: 'sync', id: '7', status: 'failed', url: 'http://127.0.0.1:3000/runs/sync/7' },
    title: 'Sync "accounts" failed',
    text,
    fields: [{ label: 'Error', value: text }],
    severity: 'error',
    dedupKey: 'lockstep:default:sync:accounts:failed',
    occurredAt: Date.parse('2026-12-07T12:00:00Z'),
  };
}

describe('Slack channel', () => {
  it('posts a message within Block Kit limits whose text, as the run reported it, neither notifies the channel nor adds links', async () => {
    await using slack = await SlackStandin.start();
    const url = slack.createWebhook();
    // An error as a destination may answer it: markup Slack would act on, in the fallback text too.
    const text = 'HTTP 400 from the API: <!channel> see <https://evil.example/login|the status page> & retry';
    await new SlackChannel({ name: 'ops', url }).send(notice(text));
    expect(slack.answers).toEqual([{ status: 200, body: 'ok' }]);
    const [message] = slack.messages;
    expect(message!.notifications).toEqual([]);
    expect(message!.links).toEqual([]);
    expect(message!.text).toContain('&lt;!channel&gt;');
    expect(message!.text).toContain('&amp; retry');

    // A notice far over Slack's limits still posts: every block within its limit, the text truncated by Slack.
    await new SlackChannel({ name: 'ops', url }).send({ ...notice('x'.repeat(60_000)), title: 'T'.repeat(500), fields: Array.from({ length: 20 }, (_, i) => ({ label: `f${i}`, value: 'v'.repeat(5000) })) });
    expect(slack.answers.at(-1)).toEqual({ status: 200, body: 'ok' });
  });

  it('gives up at once on a revoked webhook, an archived or deleted channel and a restricted workspace, saying what to do', async () => {
    await using t = await setup();
    const { h, slack, url } = t;
    const refusal = async () => {
      const error = await h.app.alerts.sendTestAlert('ops').then(
        () => null,
        (e: unknown) => e as LockstepError,
      );
      expect(error).toBeInstanceOf(LockstepError);
      expect(error!.retryable).toBe(false);
      expect(error!.message).not.toContain(new URL(url).pathname.split('/').pop()!);
      return error!.message;
    };
    slack.archive(url);
    expect(await refusal()).toMatch(
      /^slack channel "ops": the Slack channel of this incoming webhook is archived \(410 channel_is_archived\) — unarchive it, or create an incoming webhook for another channel and set the channel's url to it$/,
    );
    slack.deleteChannel(url);
    expect(await refusal()).toMatch(/the Slack channel of this incoming webhook no longer exists \(404 channel_not_found\) — create an incoming webhook for another channel/);
    slack.prohibit(url);
    expect(await refusal()).toMatch(/Slack refuses posts from this incoming webhook \(403 action_prohibited\) — a workspace admin restricts it/);
    slack.revoke(url);
    expect(await refusal()).toMatch(/Slack no longer knows this incoming webhook \(404 no_service\): it was revoked, or its app removed — create a new incoming webhook and set the channel's url to it/);

    // A run's notice to the revoked webhook is given up after one attempt, with the same words.
    await failSync(h.app, h.dir);
    await h.app.alerts.sendDue();
    const [delivery] = await h.app.store.alerts.listDeliveries({ channel: 'ops', limit: 1, offset: 0 });
    expect(delivery).toMatchObject({ status: 'failed', attempts: 1, nextAttemptAt: null, lastError: expect.stringMatching(/404 no_service/) });
  });

  it("waits out Slack's 429 and its Retry-After, then posts", async () => {
    await using t = await setup();
    const { h, slack } = t;
    slack.rateLimit(1);
    await h.app.alerts.sendTestAlert('ops');
    await failSync(h.app, h.dir);
    const started = Date.now();
    await h.app.alerts.sendDue();
    expect(slack.answers.map((a) => a.status)).toEqual([200, 429]);
    const [pending] = await h.app.store.alerts.listDeliveries({ channel: 'ops', limit: 1, offset: 0 });
    expect(pending).toMatchObject({ status: 'pending', attempts: 1, lastError: expect.stringMatching(/429/) });
    expect(pending!.nextAttemptAt! - started).toBeGreaterThanOrEqual(900);
    await until(async () => {
      await h.app.alerts.sendDue();
      return slack.messages.length === 2;
    }, 'the notice posted after Retry-After', 10_000);
    expect(slack.answers.map((a) => a.status)).toEqual([200, 429, 200]);
  });
});

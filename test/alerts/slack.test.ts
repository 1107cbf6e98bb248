/**
 * Alerts to Slack incoming webhooks, against a stand-in written from Slack's documentation: what
 * Slack answers for a revoked webhook, an archived or deleted channel, a restricted workspace or too
 * many messages, and what its markup does with a notice's text.
 */
import { describe, expect, it } from 'vitest';
import type { AlertNotice } from '../../src/core/alerts.js';
import { SlackChannel } from '../../src/connectors/alert-channels/slack-channel.js';
import { SlackStandin } from '../standins/slack-standin.js';

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
});

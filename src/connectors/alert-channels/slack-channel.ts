/**
 * Slack incoming webhooks: one Block Kit message per notice — a header, the text, the details as
 * fields, and a button opening the run in Lockstep's UI.
 */
import type { AlertChannel, AlertNotice } from '../../core/alerts.js';
import { postBody } from './http-post.js';

export interface SlackChannelOptions {
  name: string;
  /** The incoming webhook URL (templates resolved). */
  url: string;
  timeoutMs?: number;
}

const EMOJI: Record<AlertNotice['severity'], string> = {
  critical: ':rotating_light:',
  error: ':red_circle:',
  warning: ':warning:',
  info: ':large_green_circle:',
};

export class SlackChannel implements AlertChannel {
  constructor(private readonly options: SlackChannelOptions) {}

  async send(notice: AlertNotice): Promise<void> {
    await postBody(this.options.url, JSON.stringify(slackMessage(notice)), {
      what: `slack channel "${this.options.name}"`,
      timeoutMs: this.options.timeoutMs,
    });
  }
}

/** The Block Kit message for a notice; `text` is the fallback shown in notifications. */
export function slackMessage(notice: AlertNotice): { text: string; blocks: unknown[] } {
  const emoji = notice.kind === 'resolved' ? ':white_check_mark:' : EMOJI[notice.severity];
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: `${notice.title}`.slice(0, 150), emoji: true } },
    { type: 'section', text: { type: 'mrkdwn', text: `${emoji} ${escapeMrkdwn(notice.text)}`.slice(0, 3000) } },
  ];
  if (notice.fields.length > 0) {
    blocks.push({
      type: 'section',
      fields: notice.fields.slice(0, 10).map((f) => ({ type: 'mrkdwn', text: `*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`.slice(0, 2000) })),
    });
  }
  if (notice.run) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open the run' }, url: notice.run.url }],
    });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Lockstep · rule ${escapeMrkdwn(notice.rule)} · ${new Date(notice.occurredAt).toISOString()}` }] });
  return { text: `${notice.title}: ${notice.text}`, blocks };
}

/** Slack mrkdwn treats &, < and > as markup. */
function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

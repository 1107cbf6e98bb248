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
    { type: 'header', text: { type: 'plain_text', text: clip(notice.title, 150), emoji: true } },
    { type: 'section', text: { type: 'mrkdwn', text: clip(`${emoji} ${escapeMrkdwn(notice.text)}`, 3000) } },
  ];
  if (notice.fields.length > 0) {
    blocks.push({
      type: 'section',
      fields: notice.fields.slice(0, 10).map((f) => ({ type: 'mrkdwn', text: clip(`*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`, 2000) })),
    });
  }
  if (notice.run) {
    blocks.push({
      type: 'actions',
      elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open the run' }, url: notice.run.url }],
    });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Lockstep · rule ${escapeMrkdwn(notice.rule)} · ${new Date(notice.occurredAt).toISOString()}` }] });
  // The fallback text is read as mrkdwn too: unescaped, "<!channel>" in an error would notify everyone.
  return { text: clip(`${escapeMrkdwn(notice.title)}: ${escapeMrkdwn(notice.text)}`, MAX_TEXT_CHARS), blocks };
}

/** Slack truncates a message's text past this many characters ("Truncating really long messages"). */
const MAX_TEXT_CHARS = 40_000;

/** Slack mrkdwn treats &, < and > as markup ("Formatting text for app surfaces": escape them). */
function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * At most `max` characters of `text`, as Slack counts them (code points), cut neither inside an
 * escape such as `&amp;` nor inside a surrogate pair.
 */
function clip(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  return chars.slice(0, max).join('').replace(/&[a-z]{0,3}$/, '');
}

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
      explain: slackRefusal,
    });
  }
}

const NEW_WEBHOOK = "create an incoming webhook for another channel and set the channel's url to it";

/**
 * What Slack's answer means and what to do, for the error codes Slack documents for incoming
 * webhooks ("Handling errors": a status and the code as the body); undefined for other answers.
 */
export function slackRefusal(status: number, code: string): string | undefined {
  const answer = `${status} ${code}`;
  switch (code) {
    case 'channel_is_archived':
      return `the Slack channel of this incoming webhook is archived (${answer}) — unarchive it, or ${NEW_WEBHOOK}`;
    case 'channel_not_found':
      return `the Slack channel of this incoming webhook no longer exists (${answer}) — ${NEW_WEBHOOK}`;
    case 'no_service':
    case 'no_team':
    case 'team_disabled':
    case 'invalid_token':
      return `Slack no longer knows this incoming webhook (${answer}): it was revoked, or its app removed — create a new incoming webhook and set the channel's url to it`;
    case 'action_prohibited':
    case 'posting_to_general_channel_denied':
      return `Slack refuses posts from this incoming webhook (${answer}) — a workspace admin restricts it: ask them to allow it, or ${NEW_WEBHOOK}`;
    case 'invalid_payload':
    case 'invalid_blocks':
    case 'no_text':
    case 'too_many_attachments':
      return `Slack refused the message Lockstep made (${answer}) — a fault of Lockstep's: report it with the notice (\`lockstep alerts list\`)`;
    case 'rollup_error':
      return `Slack failed to post the message (${answer}); it is tried again`;
    default:
      return status === 429 ? `Slack limits how often this incoming webhook may post (429); it is tried again` : undefined;
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

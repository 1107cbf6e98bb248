/**
 * A local stand-in for Slack's incoming webhooks: a real HTTP server on 127.0.0.1 posting into
 * in-memory channels, for tests. It was written from Slack's documentation ("Sending messages using
 * incoming webhooks", "Improving error conditions for Incoming Webhooks", "Truncating really long
 * messages", "Formatting text for app surfaces", Block Kit's block reference, "Rate limits"), not from
 * client code.
 *
 * Documented behaviours it implements:
 * - `POST /services/T…/B…/<secret>` with a JSON body; 200 `ok` (text/plain) when posted.
 * - Errors are a status and a plain-text code: 400 `invalid_payload` (the body is not JSON of the
 *   content type), 400 `no_text` (neither `text` nor `blocks`), 400 `invalid_blocks` (more than 50
 *   blocks, or a block past its limits: a header's plain_text at most 150 characters, a section's
 *   text at most 3000, at most 10 fields of at most 2000 each, a context's at most 10 elements, an
 *   actions block's at most 25, a button's text at most 75 and its url at most 3000), 403
 *   `action_prohibited` (an admin restricts the webhook), 404 `no_service` (the webhook was revoked or
 *   removed), 404 `channel_not_found`, 410 `channel_is_archived`, 500 `rollup_error`.
 * - `text` over 40,000 characters is truncated, not refused.
 * - In `text` and mrkdwn, `<…>` is markup: `<!channel>`, `<!here>`, `<!everyone>` notify, `<@U…>`
 *   mentions a user, `<url|label>` is a link; `&amp;`, `&lt;` and `&gt;` show as `&`, `<` and `>`.
 *   Each posted message records the notifications and links its markup made.
 * - Rate limit: one message a second per webhook, with short bursts allowed (`burst`, default 5):
 *   past it, 429 with `Retry-After` in seconds, and nothing is posted.
 *
 * Test controls (not Slack): `revoke`, `archive`, `deleteChannel`, `prohibit` change a webhook's
 * state; `rateLimit` sets the burst; `messages` lists what was posted.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const MAX_TEXT = 40_000;
const MAX_BLOCKS = 50;

export interface PostedMessage {
  /** The webhook's path. */
  hook: string;
  /** `text` as posted (truncated past 40,000 characters). */
  text: string | null;
  blocks: Array<Record<string, unknown>>;
  /** `<!channel>`, `<!here>`, `<!everyone>` and `<@U…>` found in `text` and mrkdwn. */
  notifications: string[];
  /** URLs of `<url>` and `<url|label>` links found in `text` and mrkdwn. */
  links: string[];
  truncated: boolean;
}

type HookState = 'active' | 'revoked' | 'archived' | 'channel_deleted' | 'prohibited';

export class SlackStandin implements AsyncDisposable {
  readonly messages: PostedMessage[] = [];
  /** Every request's answer: status and body. */
  readonly answers: Array<{ status: number; body: string }> = [];
  private readonly hooks = new Map<string, HookState>();
  private readonly sent = new Map<string, number[]>();
  private burst = 5;
  private hookCount = 0;

  private constructor(
    private readonly server: Server,
    private readonly base: string,
  ) {}

  static async start(): Promise<SlackStandin> {
    const ref: { standin: SlackStandin | null } = { standin: null };
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const standin = ref.standin as SlackStandin;
        const answer = standin.answer(req.method ?? 'GET', req.url ?? '/', String(req.headers['content-type'] ?? ''), Buffer.concat(chunks).toString('utf8'));
        standin.answers.push({ status: answer.status, body: answer.body });
        res.writeHead(answer.status, { 'content-type': 'text/plain', ...(answer.retryAfter !== undefined ? { 'retry-after': String(answer.retryAfter) } : {}) }).end(answer.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ref.standin = new SlackStandin(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return ref.standin;
  }

  /** A new incoming webhook URL, as Slack shows it when the app is added to a channel. */
  createWebhook(): string {
    this.hookCount++;
    const path = `/services/T0000000${this.hookCount}/B0000000${this.hookCount}/${'x'.repeat(16)}${this.hookCount}`;
    this.hooks.set(path, 'active');
    return `${this.base}${path}`;
  }

  revoke(url: string): void {
    this.hooks.set(new URL(url).pathname, 'revoked');
  }

  archive(url: string): void {
    this.hooks.set(new URL(url).pathname, 'archived');
  }

  deleteChannel(url: string): void {
    this.hooks.set(new URL(url).pathname, 'channel_deleted');
  }

  prohibit(url: string): void {
    this.hooks.set(new URL(url).pathname, 'prohibited');
  }

  /** Messages a webhook may post in a burst before the one-a-second limit applies. */
  rateLimit(burst: number): void {
    this.burst = burst;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(method: string, path: string, contentType: string, raw: string): { status: number; body: string; retryAfter?: number } {
    const state = this.hooks.get(path);
    if (method !== 'POST' || state === undefined || state === 'revoked') return { status: 404, body: 'no_service' };
    if (state === 'archived') return { status: 410, body: 'channel_is_archived' };
    if (state === 'channel_deleted') return { status: 404, body: 'channel_not_found' };
    if (state === 'prohibited') return { status: 403, body: 'action_prohibited' };

    let message: unknown;
    try {
      if (!contentType.toLowerCase().startsWith('application/json')) throw new Error('not JSON');
      message = JSON.parse(raw);
    } catch {
      return { status: 400, body: 'invalid_payload' };
    }
    if (!message || typeof message !== 'object' || Array.isArray(message)) return { status: 400, body: 'invalid_payload' };
    const { text, blocks } = message as { text?: unknown; blocks?: unknown };
    if (text !== undefined && typeof text !== 'string') return { status: 400, body: 'invalid_payload' };
    if (blocks !== undefined && !Array.isArray(blocks)) return { status: 400, body: 'invalid_blocks' };
    const blockList = (blocks ?? []) as unknown[];
    if ((text === undefined || text === '') && blockList.length === 0) return { status: 400, body: 'no_text' };
    if (blockList.length > MAX_BLOCKS || !blockList.every(validBlock)) return { status: 400, body: 'invalid_blocks' };

    const now = Date.now();
    const recent = (this.sent.get(path) ?? []).filter((t) => t > now - this.burst * 1000);
    if (recent.length >= this.burst) {
      const retryAfter = Math.max(1, Math.ceil((recent[0]! + this.burst * 1000 - now) / 1000));
      return { status: 429, body: 'rate_limited', retryAfter };
    }
    recent.push(now);
    this.sent.set(path, recent);

    const posted = typeof text === 'string' ? text.slice(0, MAX_TEXT) : null;
    const markup = [posted ?? '', ...blockList.flatMap((b) => mrkdwnOf(b as Record<string, unknown>))];
    this.messages.push({
      hook: path,
      text: posted,
      blocks: blockList as Array<Record<string, unknown>>,
      notifications: markup.flatMap((t) => [...t.matchAll(/<(!channel|!here|!everyone|@[UW][A-Z0-9]+)(?:\|[^>]*)?>/g)].map((m) => `<${m[1]}>`)),
      links: markup.flatMap((t) => [...t.matchAll(/<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>/g)].map((m) => m[1]!)),
      truncated: typeof text === 'string' && text.length > MAX_TEXT,
    });
    return { status: 200, body: 'ok' };
  }
}

type TextObject = { type?: unknown; text?: unknown };

function textOf(value: unknown, type: 'plain_text' | 'mrkdwn' | 'any', max: number): boolean {
  if (!value || typeof value !== 'object') return false;
  const object = value as TextObject;
  if (type !== 'any' && object.type !== type) return false;
  if (object.type !== 'plain_text' && object.type !== 'mrkdwn') return false;
  return typeof object.text === 'string' && object.text.length >= 1 && [...object.text].length <= max;
}

/** Block Kit's limits for the block types Lockstep sends; other types pass. */
function validBlock(block: unknown): boolean {
  if (!block || typeof block !== 'object') return false;
  const b = block as Record<string, unknown>;
  switch (b.type) {
    case 'header':
      return textOf(b.text, 'plain_text', 150);
    case 'section': {
      const fields = b.fields as unknown[] | undefined;
      if (b.text === undefined && fields === undefined) return false;
      if (b.text !== undefined && !textOf(b.text, 'any', 3000)) return false;
      return fields === undefined || (Array.isArray(fields) && fields.length <= 10 && fields.every((f) => textOf(f, 'any', 2000)));
    }
    case 'context': {
      const elements = b.elements as unknown[] | undefined;
      return Array.isArray(elements) && elements.length >= 1 && elements.length <= 10 && elements.every((e) => textOf(e, 'any', 3000));
    }
    case 'actions': {
      const elements = b.elements as Array<Record<string, unknown>> | undefined;
      return (
        Array.isArray(elements) &&
        elements.length >= 1 &&
        elements.length <= 25 &&
        elements.every((e) => e.type !== 'button' || (textOf(e.text, 'plain_text', 75) && (e.url === undefined || (typeof e.url === 'string' && e.url.length <= 3000))))
      );
    }
    default:
      return typeof b.type === 'string';
  }
}

/** The mrkdwn texts of a block, where `<…>` markup takes effect. */
function mrkdwnOf(block: Record<string, unknown>): string[] {
  const texts: unknown[] = [block.text, ...((block.fields as unknown[] | undefined) ?? []), ...((block.elements as unknown[] | undefined) ?? [])];
  return texts.filter((t): t is { type: 'mrkdwn'; text: string } => !!t && typeof t === 'object' && (t as TextObject).type === 'mrkdwn' && typeof (t as TextObject).text === 'string').map((t) => t.text);
}

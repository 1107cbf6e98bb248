/**
 * A generic webhook: the notice as a JSON body, the channel's headers, and, when the channel has a
 * secret, `X-Lockstep-Signature: sha256=<hex HMAC-SHA256 of the raw body>` so the receiver can check
 * that Lockstep sent it (compare in constant time).
 */
import { createHmac } from 'node:crypto';
import type { AlertChannel, AlertNotice } from '../../core/alerts.js';
import { postBody } from './http-post.js';

export interface WebhookChannelOptions {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** Signs the body when set. */
  secret: string | null;
  timeoutMs?: number;
}

export const SIGNATURE_HEADER = 'X-Lockstep-Signature';

export class WebhookChannel implements AlertChannel {
  constructor(private readonly options: WebhookChannelOptions) {}

  async send(notice: AlertNotice, delivery: { id: number }): Promise<void> {
    const body = JSON.stringify({ deliveryId: delivery.id, ...notice, occurredAt: new Date(notice.occurredAt).toISOString() });
    const headers: Record<string, string> = {
      ...this.options.headers,
      'X-Lockstep-Event': notice.event,
      'X-Lockstep-Delivery': String(delivery.id),
    };
    if (this.options.secret !== null) headers[SIGNATURE_HEADER] = signature(body, this.options.secret);
    await postBody(this.options.url, body, {
      what: `webhook channel "${this.options.name}"`,
      headers,
      timeoutMs: this.options.timeoutMs,
      secrets: [...Object.values(this.options.headers), ...(this.options.secret !== null ? [this.options.secret] : [])],
    });
  }
}

/** `sha256=<hex HMAC-SHA256 of body keyed with secret>`. */
export function signature(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

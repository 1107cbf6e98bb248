/**
 * PagerDuty Events API v2: a raised condition is a `trigger` event, its recovery a `resolve` event
 * with the same dedup key (one incident per rule, subject and condition).
 */
import type { AlertChannel, AlertNotice } from '../../core/alerts.js';
import { postBody } from './http-post.js';

export interface PagerDutyChannelOptions {
  name: string;
  routingKey: string;
  /** The Events API endpoint. */
  url: string;
  timeoutMs?: number;
}

export class PagerDutyChannel implements AlertChannel {
  constructor(private readonly options: PagerDutyChannelOptions) {}

  async send(notice: AlertNotice): Promise<void> {
    await postBody(this.options.url, JSON.stringify(pagerDutyEvent(notice, this.options.routingKey)), {
      what: `pagerduty channel "${this.options.name}"`,
      timeoutMs: this.options.timeoutMs,
      secrets: [this.options.routingKey],
    });
  }
}

export function pagerDutyEvent(notice: AlertNotice, routingKey: string): Record<string, unknown> {
  if (notice.kind === 'resolved') return { routing_key: routingKey, event_action: 'resolve', dedup_key: notice.dedupKey };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: notice.dedupKey,
    payload: {
      summary: `${notice.title}: ${notice.text}`.slice(0, 1024),
      source: 'lockstep',
      severity: notice.severity,
      timestamp: new Date(notice.occurredAt).toISOString(),
      component: notice.subject ? `${notice.subject.kind}:${notice.subject.slug}` : undefined,
      class: notice.event,
      custom_details: Object.fromEntries(notice.fields.map((f) => [f.label, f.value])),
    },
    links: notice.run ? [{ href: notice.run.url, text: 'Open the run in Lockstep' }] : [],
  };
}

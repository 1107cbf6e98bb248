/**
 * PagerDuty Events API v2: a raised condition is a `trigger` event, its recovery a `resolve` event
 * with the same dedup key (one incident per rule, subject and condition). A test alert is a trigger
 * resolved at once.
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
    await this.post(pagerDutyEvent(notice, this.options.routingKey));
    // A test alert has no recovery to resolve it: it is resolved at once, so it leaves no open incident.
    if (notice.kind === 'test') await this.post(pagerDutyEvent({ ...notice, kind: 'resolved' }, this.options.routingKey));
  }

  private async post(event: Record<string, unknown>): Promise<void> {
    await postBody(this.options.url, JSON.stringify(event), {
      what: `pagerduty channel "${this.options.name}"`,
      timeoutMs: this.options.timeoutMs,
      secrets: [this.options.routingKey],
      explain: pagerDutyRefusal,
    });
  }
}

/**
 * What an Events API answer means and what to do ("Events API v2 Overview": 400 is final and names
 * what is invalid in `errors`; 429 and 5xx are tried again); undefined for other answers.
 */
export function pagerDutyRefusal(status: number, body: string): string | undefined {
  if (status === 429) return 'PagerDuty limits the events of this integration key (429, about 120 a minute); it is tried again';
  if (status !== 400) return undefined;
  let answer: { message?: unknown; errors?: unknown };
  try {
    answer = JSON.parse(body) as typeof answer;
  } catch {
    return undefined; // not PagerDuty's answer (a proxy's page, another endpoint): said as it came
  }
  if (!answer || typeof answer !== 'object' || typeof answer.message !== 'string') return undefined;
  const errors = Array.isArray(answer.errors) ? answer.errors.filter((e): e is string => typeof e === 'string') : [];
  const refused = `PagerDuty refused the event (400 ${answer.message}${errors.length > 0 ? `: ${errors.join('; ')}` : ''})`;
  return errors.some((e) => e.includes('routing_key'))
    ? `${refused} — set the channel's routingKey to the 32-character Integration Key of an Events API v2 integration of the service`
    : `${refused} — a fault of Lockstep's: report it with the notice (\`lockstep alerts list\`)`;
}

export function pagerDutyEvent(notice: AlertNotice, routingKey: string): Record<string, unknown> {
  if (notice.kind === 'resolved') return { routing_key: routingKey, event_action: 'resolve', dedup_key: notice.dedupKey };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: notice.dedupKey,
    payload: {
      summary: withinUnits(`${notice.title}: ${notice.text}`, MAX_SUMMARY_CHARS),
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

/** The longest `payload.summary` PagerDuty takes ("Send an Alert Event"). */
const MAX_SUMMARY_CHARS = 1024;

/**
 * At most `max` UTF-16 units of `text`, cut before a character that would not fit whole: half of a
 * surrogate pair is not text, and a JSON parser may refuse the event for it.
 */
function withinUnits(text: string, max: number): string {
  const cut = text.slice(0, max);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

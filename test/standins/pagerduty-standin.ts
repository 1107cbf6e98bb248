/**
 * A local stand-in for PagerDuty's Events API v2: a real HTTP server on 127.0.0.1 keeping the alerts
 * of one account in memory, for tests. It was written from PagerDuty's developer documentation
 * ("Events API v2 Overview", "Send an Alert Event", "Events API Rate Limits"), not from client code.
 *
 * Documented behaviours it implements:
 * - `POST /v2/enqueue` with a JSON body of at most 512 KB.
 * - `routing_key` is the 32-character integration key; `event_action` is `trigger`, `acknowledge` or
 *   `resolve`; `dedup_key` is at most 255 characters. A trigger needs `payload.summary` (at most 1024
 *   characters), `payload.source` and `payload.severity` (`critical`, `error`, `warning` or `info`).
 * - 202 `{status: "success", message: "Event processed", dedup_key}` for an accepted event; 400
 *   `{status: "invalid event", message: "Event object is invalid", errors: [...]}` for one that is not
 *   (bad JSON included). 400 is not to be retried; 429 and 5xx are.
 * - De-duplication: a trigger opens an alert for its (routing key, dedup key), or is added to the open
 *   one; a trigger without `dedup_key` gets a new UUID as its key. Acknowledge and resolve apply to the
 *   open alert of the same routing key and dedup key, and are dropped when there is none (still 202).
 *   After a resolve, a trigger with the same key opens a new alert.
 * - Rate limit: about 120 events a minute per routing key over a rolling 60 s window; past it, 429
 *   "Request Limit Exceeded" and the event is not ingested. No `Retry-After` is documented, none sent.
 *
 * Test controls (not PagerDuty): `failNext` answers the next requests with a status, `events` lists
 * every event ingested, `alerts` every alert with its state.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const MAX_BODY_BYTES = 512 * 1024;
const SEVERITIES = ['critical', 'error', 'warning', 'info'];
const ACTIONS = ['trigger', 'acknowledge', 'resolve'];

/** An event the stand-in ingested (answered 202). */
export interface PagerDutyEvent {
  routingKey: string;
  action: 'trigger' | 'acknowledge' | 'resolve';
  dedupKey: string;
  body: Record<string, unknown>;
  /** Whether it changed an alert (an acknowledge or resolve without an open alert is dropped). */
  applied: boolean;
}

/** An alert as PagerDuty keeps it. */
export interface PagerDutyAlert {
  routingKey: string;
  dedupKey: string;
  status: 'triggered' | 'acknowledged' | 'resolved';
  summary: string;
  /** Trigger events added to it. */
  triggers: number;
}

export class PagerDutyStandin implements AsyncDisposable {
  readonly events: PagerDutyEvent[] = [];
  readonly alerts: PagerDutyAlert[] = [];
  /** Every request's answer status, in order. */
  readonly answers: number[] = [];
  private readonly received = new Map<string, number[]>();
  private failures: Array<{ status: number; body: string }> = [];

  private constructor(
    private readonly server: Server,
    /** The Events API endpoint, e.g. `http://127.0.0.1:1234/v2/enqueue`. */
    readonly url: string,
    private readonly ratePerMinute: number,
  ) {}

  static async start(options: { ratePerMinute?: number } = {}): Promise<PagerDutyStandin> {
    const ref: { standin: PagerDutyStandin | null } = { standin: null };
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      });
      req.on('end', () => {
        const standin = ref.standin as PagerDutyStandin;
        const { status, body } = standin.answer(req.method ?? 'GET', req.url ?? '/', size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString('utf8'));
        standin.answers.push(status);
        res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    ref.standin = new PagerDutyStandin(server, `${base}/v2/enqueue`, options.ratePerMinute ?? 120);
    return ref.standin;
  }

  /** Answers the next `count` requests with `status` (a 5xx or 429 PagerDuty may send), ingesting nothing. */
  failNext(status: number, count = 1): void {
    const body = status === 429 ? JSON.stringify({ status: 'throttle event', message: 'Request Limit Exceeded' }) : JSON.stringify({ status: 'error', message: 'Internal Server Error' });
    for (let i = 0; i < count; i++) this.failures.push({ status, body });
  }

  /** Alerts still open (triggered or acknowledged). */
  open(): PagerDutyAlert[] {
    return this.alerts.filter((a) => a.status !== 'resolved');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(method: string, path: string, raw: string | null): { status: number; body: string } {
    if (method !== 'POST' || path.split('?')[0] !== '/v2/enqueue') return { status: 404, body: JSON.stringify({ status: 'error', message: 'Not Found' }) };
    if (raw === null) return invalid(['Event object is larger than 512 KB']);
    const failure = this.failures.shift();
    if (failure) return failure;
    let event: unknown;
    try {
      event = JSON.parse(raw);
    } catch {
      return invalid(['Event object is not valid JSON']);
    }
    if (!event || typeof event !== 'object' || Array.isArray(event)) return invalid(['Event object is not a JSON object']);
    const body = event as Record<string, unknown>;
    const errors: string[] = [];
    const routingKey = body.routing_key;
    if (typeof routingKey !== 'string' || routingKey === '') errors.push("'routing_key' is missing or blank");
    else if (routingKey.length !== 32) errors.push("Length of 'routing_key' is incorrect (should be 32 characters)");
    const action = body.event_action;
    if (typeof action !== 'string' || !ACTIONS.includes(action)) errors.push("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)");
    const dedupKey = body.dedup_key;
    if (dedupKey !== undefined && (typeof dedupKey !== 'string' || dedupKey.length > 255)) errors.push("'dedup_key' must be a string of at most 255 characters");
    if (action !== 'trigger' && (typeof dedupKey !== 'string' || dedupKey === '')) errors.push("'dedup_key' is required for acknowledge and resolve events");
    let summary = '';
    if (action === 'trigger') {
      const payload = body.payload as Record<string, unknown> | undefined;
      if (!payload || typeof payload !== 'object') errors.push("'payload' is missing or blank");
      else {
        if (typeof payload.summary !== 'string' || payload.summary === '') errors.push("'payload.summary' is missing or blank");
        else if (payload.summary.length > 1024) errors.push("'payload.summary' is longer than 1024 characters");
        else summary = payload.summary;
        if (typeof payload.source !== 'string' || payload.source === '') errors.push("'payload.source' is missing or blank");
        if (typeof payload.severity !== 'string' || !SEVERITIES.includes(payload.severity)) errors.push("'payload.severity' is invalid (must be one of: critical, error, warning, info)");
        if (payload.custom_details !== undefined && (typeof payload.custom_details !== 'object' || payload.custom_details === null)) errors.push("'payload.custom_details' must be an object");
      }
    }
    if (errors.length > 0) return invalid(errors);

    const key = routingKey as string;
    const now = Date.now();
    const recent = (this.received.get(key) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= this.ratePerMinute) return { status: 429, body: JSON.stringify({ status: 'throttle event', message: 'Request Limit Exceeded' }) };
    recent.push(now);
    this.received.set(key, recent);

    const dedup = typeof dedupKey === 'string' && dedupKey !== '' ? dedupKey : randomUUID();
    const open = this.alerts.find((a) => a.routingKey === key && a.dedupKey === dedup && a.status !== 'resolved');
    let applied = true;
    if (action === 'trigger') {
      if (open) open.triggers++;
      else this.alerts.push({ routingKey: key, dedupKey: dedup, status: 'triggered', summary, triggers: 1 });
    } else if (open) {
      open.status = action === 'resolve' ? 'resolved' : 'acknowledged';
    } else {
      applied = false;
    }
    this.events.push({ routingKey: key, action: action as PagerDutyEvent['action'], dedupKey: dedup, body, applied });
    return { status: 202, body: JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: dedup }) };
  }
}

function invalid(errors: string[]): { status: number; body: string } {
  return { status: 400, body: JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors }) };
}

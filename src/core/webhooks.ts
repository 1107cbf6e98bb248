/**
 * Webhook deliveries from upstream tools (dbt Cloud, Fivetran) that start runs (SPEC §4), and the
 * log of every delivery — accepted, rejected, ignored or duplicate — so a user can see why a
 * delivery did or did not start anything.
 */

/** Who sent a delivery. */
export const WebhookSource = {
  /** dbt Cloud's outgoing webhooks (`job.run.*` events). */
  DbtCloud: 'dbt_cloud',
  /** Fivetran's webhooks (`sync_end` and others). */
  Fivetran: 'fivetran',
} as const;
export type WebhookSource = (typeof WebhookSource)[keyof typeof WebhookSource];

/** What became of a delivery. */
export const WebhookOutcome = {
  /** Verified and matched: it started (or queued) runs. */
  Accepted: 'accepted',
  /** Refused: missing or wrong signature, malformed body, no secret configured. */
  Rejected: 'rejected',
  /** Verified but nothing to do: another event type, a failed upstream run, no matching schedule, a disabled target. */
  Ignored: 'ignored',
  /** The same event id was delivered before; nothing started again. */
  Duplicate: 'duplicate',
} as const;
export type WebhookOutcome = (typeof WebhookOutcome)[keyof typeof WebhookOutcome];

/**
 * Secrets of the webhook endpoints, as declared (`${ENV}` templates unresolved; resolved per
 * delivery). An endpoint without a secret refuses every delivery.
 */
export interface WebhookSettings {
  dbtCloud: { secret: string } | null;
  fivetran: { secret: string } | null;
}

export const NO_WEBHOOKS: Readonly<WebhookSettings> = Object.freeze({ dbtCloud: null, fivetran: null });

/** A run a delivery started. */
export interface TriggeredRun {
  kind: 'sync' | 'sequence';
  slug: string;
  /** The sync run id (as a string) or the sequence run id. */
  runId: string;
}

export interface WebhookEvent {
  id: number;
  source: WebhookSource;
  receivedAt: number;
  /** The sender's event id (dbt Cloud `eventId`; Fivetran has none, so Lockstep derives one). */
  eventId: string | null;
  eventType: string | null;
  outcome: WebhookOutcome;
  /** Why, in words: what matched, or why nothing did. */
  reason: string;
  /** The HTTP status answered. */
  httpStatus: number;
  triggered: TriggeredRun[];
  /** The start of the body as received (at most 2,000 characters), for debugging. */
  payloadExcerpt: string;
}

export type NewWebhookEvent = Omit<WebhookEvent, 'id'>;

export interface WebhookEventQuery {
  source?: WebhookSource;
  limit: number;
  offset: number;
}

/**
 * How the delivery log stays bounded. Anyone who can reach the endpoints can send deliveries, so
 * refused ones (unsigned or wrongly signed, 401; too large, 413) are kept whole only for the newest
 * few and otherwise only counted, per reason; the others are kept for a number of days.
 */
export interface WebhookRetention {
  /** Refused deliveries kept whole, the newest (default: 100, env LOCKSTEP_WEBHOOK_REFUSED_KEEP); older ones remain in the totals. */
  refusedKept: number;
  /**
   * Days other deliveries are kept (default: 90, env LOCKSTEP_WEBHOOK_RETENTION_DAYS; 0 keeps them
   * forever). An event accepted longer ago than this is no longer in the log, but a replay of it
   * still starts nothing again: each run it started is kept as a firing key.
   */
  retentionDays: number;
}

export const DEFAULT_WEBHOOK_RETENTION: Readonly<WebhookRetention> = Object.freeze({ refusedKept: 100, retentionDays: 90 });

/** HTTP statuses of refused deliveries: answered before the sender was verified, so anyone may send them. */
export const REFUSED_WEBHOOK_STATUSES: readonly number[] = [401, 413];

/** Whether a delivery was refused before its sender was verified (and so is kept bounded, see WebhookRetention). */
export function isRefusedDelivery(event: Pick<WebhookEvent, 'httpStatus'>): boolean {
  return REFUSED_WEBHOOK_STATUSES.includes(event.httpStatus);
}

/** Every refused delivery ever received, counted per source and reason (those pruned from the log included). */
export interface WebhookRefusalTotal {
  source: WebhookSource;
  reason: string;
  httpStatus: number;
  count: number;
  firstReceivedAt: number;
  lastReceivedAt: number;
}

/** The log of deliveries. */
export interface WebhookEventStore {
  /**
   * Records a delivery. An `accepted` delivery whose (source, eventId) was accepted before is stored
   * as `duplicate` instead, and `duplicate: true` tells the caller not to start anything. In the same
   * transaction a refused delivery is counted, and the log is pruned as `retention` says (default:
   * DEFAULT_WEBHOOK_RETENTION), deliveries older than its days measured from this one's `receivedAt`.
   */
  record(event: NewWebhookEvent, retention?: WebhookRetention): Promise<{ event: WebhookEvent; duplicate: boolean }>;
  /** The refused deliveries' totals, most recent first. */
  refusals(): Promise<WebhookRefusalTotal[]>;
  list(query: WebhookEventQuery): Promise<WebhookEvent[]>;
}

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

/** The log of deliveries. */
export interface WebhookEventStore {
  /**
   * Records a delivery. An `accepted` delivery whose (source, eventId) was accepted before is stored
   * as `duplicate` instead, and `duplicate: true` tells the caller not to start anything.
   */
  record(event: NewWebhookEvent): Promise<{ event: WebhookEvent; duplicate: boolean }>;
  /** Replaces the triggered runs of a recorded delivery (they are known only after it is recorded). */
  setTriggered(id: number, triggered: TriggeredRun[], reason: string): Promise<void>;
  list(query: WebhookEventQuery): Promise<WebhookEvent[]>;
}

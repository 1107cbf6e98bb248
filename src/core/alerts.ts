/**
 * Alerts (SPEC §5): rules that watch syncs and sequences, the channels that carry their notices,
 * the alert state kept per (rule, subject, condition), and the outbox of deliveries.
 *
 * A condition of a subject is either raised or clear:
 *
 *   (unknown) ──bad outcome──► raised ──good outcome──► clear ──bad outcome──► raised ...
 *   (unknown) ──good outcome─► clear
 *
 * Only the arrows into `raised` send a notice (the event: sync_failed, sequence_failed,
 * rejected_rows, slow_run), and the arrow raised ──► clear sends a `recovered` notice. Repeated
 * outcomes of the same kind send nothing: one notification per change of state, not per run.
 * Outcomes that say nothing about health (a cancelled or interrupted run) leave the state alone.
 */
import { createHash } from 'node:crypto';
import { blankTemplateNames, interpolate, type TemplateEnv } from './connections.js';
import { ErrorCode, LockstepError, assertNever } from './errors.js';
import type { EntityOrigin } from './workspace.js';

/** What a rule can notify about. */
export const AlertEvent = {
  /** A sync run ended `failed`. */
  SyncFailed: 'sync_failed',
  /** A sync run's rejected rows went over the rule's `rejectedPercent` of planned rows. */
  RejectedRows: 'rejected_rows',
  /** A sequence run ended `failed` (terminated by a member's policy, or a system error). */
  SequenceFailed: 'sequence_failed',
  /** A raised condition cleared: the first good run after a bad one. */
  Recovered: 'recovered',
  /** A run took longer than the rule's `slowerThanMinutes`. */
  SlowRun: 'slow_run',
} as const;
export type AlertEvent = (typeof AlertEvent)[keyof typeof AlertEvent];

export const ALERT_EVENTS: readonly AlertEvent[] = Object.values(AlertEvent);

/** A condition of a subject that is raised or clear; each has its own state and its own incident. */
export const AlertCondition = {
  /** The last sync run failed / the last sequence run failed. */
  Failed: 'failed',
  /** The last finished sync run rejected more rows than allowed. */
  RejectedRows: 'rejected_rows',
  /** The last run took longer than allowed. */
  Slow: 'slow',
} as const;
export type AlertCondition = (typeof AlertCondition)[keyof typeof AlertCondition];

/** The kinds of channel a notice can go to. */
export const AlertChannelType = {
  /** A Slack incoming webhook (Block Kit message). */
  Slack: 'slack',
  /** Any HTTP endpoint: a JSON body, custom headers, an HMAC-SHA256 signature. */
  Webhook: 'webhook',
  /** Email over SMTP. */
  Email: 'email',
  /** PagerDuty Events API v2: trigger, and resolve on recovery. */
  PagerDuty: 'pagerduty',
} as const;
export type AlertChannelType = (typeof AlertChannelType)[keyof typeof AlertChannelType];

/** PagerDuty's Events API v2 endpoint. */
export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';
/** Length of a PagerDuty Integration Key, the Events API v2 `routing_key` ("Send an Alert Event"). */
export const PAGERDUTY_ROUTING_KEY_LENGTH = 32;

/**
 * Where a stored channel or rule came from, as for entities: `file` (written by `apply`, which may
 * change or delete it) or `api` (created through the API; `apply` keeps it unless a file declares
 * its name). Definitions read from files carry none; the store reads a missing origin as `file`.
 */
export interface AlertOrigin {
  origin?: EntityOrigin;
}

/**
 * A channel as declared. String fields may hold `${ENV}` templates; they are resolved only when a
 * notice is sent, so secrets never reach the store.
 */
export type AlertChannelDef = AlertOrigin &
  (
    | { name: string; type: 'slack'; /** The incoming webhook URL. */ url: string }
    | {
        name: string;
        type: 'webhook';
        url: string;
        /** Extra request headers (default: none). */
        headers: Record<string, string>;
        /** Key of the `X-Lockstep-Signature` HMAC; null sends no signature (default: null). */
        secret: string | null;
      }
    | {
        name: string;
        type: 'email';
        /** SMTP server URL, e.g. `smtp://user:pass@mail.example.com:587` or `smtps://...`. */
        smtp: string;
        from: string;
        to: string[];
      }
    | {
        name: string;
        type: 'pagerduty';
        /** The integration's routing key. */
        routingKey: string;
        /** The Events API endpoint (default: PAGERDUTY_EVENTS_URL). */
        url: string;
      }
  );

/** A rule: which events of which subjects go to which channels. */
export interface AlertRuleDef extends AlertOrigin {
  /** Unique among rules; alert state is kept under it (default: `rule-<position>`, 1-based). */
  name: string;
  /** Events that notify (default: all of them). */
  on: AlertEvent[];
  /**
   * Slugs of the syncs and sequences it watches. Both empty: a workspace default rule, which watches
   * every sync and sequence for the events no rule naming it lists (see rulesFor).
   */
  syncs: string[];
  sequences: string[];
  /** `rejected_rows` fires when rejected rows exceed this share of planned rows, 0..100 (default: 0, any rejected row). */
  rejectedPercent: number;
  /** `slow_run` fires when a run takes longer than this; null when the rule has no limit. */
  slowerThanMinutes: number | null;
  /** Names of the channels its notices go to. */
  channels: string[];
}

/** The `alerts` section of a workspace. */
export interface AlertsDefinition {
  channels: AlertChannelDef[];
  rules: AlertRuleDef[];
}

export const NO_ALERTS: Readonly<AlertsDefinition> = Object.freeze({ channels: [], rules: [] });

/** Whether a rule is a workspace default (it names no sync and no sequence). */
export function isDefaultRule(rule: AlertRuleDef): boolean {
  return rule.syncs.length === 0 && rule.sequences.length === 0;
}

/** What an alert is about. */
export interface AlertSubject {
  kind: 'sync' | 'sequence';
  slug: string;
}

export function subjectKey(subject: AlertSubject): string {
  return `${subject.kind}:${subject.slug}`;
}

/**
 * The rules watching a subject: the rules naming it, and the workspace default rules for the events
 * none of those lists (a default rule comes with its `on` narrowed to them, `recovered` kept). So a
 * rule for a sync's rejected rows leaves its failures to the defaults. A rule watches a sync through
 * `syncs` and a sequence through `sequences`.
 */
export function rulesFor(rules: readonly AlertRuleDef[], subject: AlertSubject): AlertRuleDef[] {
  const named = rules.filter((r) => (subject.kind === 'sync' ? r.syncs : r.sequences).includes(subject.slug));
  const taken = new Set(named.flatMap((r) => r.on.filter((e) => e !== AlertEvent.Recovered)));
  const defaults = rules
    .filter(isDefaultRule)
    .map((rule) => ({ ...rule, on: rule.on.filter((e) => e === AlertEvent.Recovered || !taken.has(e)) }))
    .filter((rule) => rule.on.some((e) => e !== AlertEvent.Recovered));
  return [...named, ...defaults];
}

/** What a change of a condition's state calls for. */
export type AlertChange = 'raise' | 'clear' | 'none';

/** The transition from the stored state (null: never evaluated) to an outcome's state. */
export function alertChange(previous: boolean | null, raised: boolean): AlertChange {
  if (raised) return previous === true ? 'none' : 'raise';
  return previous === true ? 'clear' : 'none';
}

/** The run a notice is about. */
export interface AlertRunRef {
  kind: 'sync' | 'sequence';
  /** The sync run id (as a string) or the sequence run id. */
  id: string;
  status: string;
  /** Where the run is shown in the web UI. */
  url: string;
}

/** What kind of notice. */
export const AlertNoticeKind = {
  /** A condition was raised. */
  Triggered: 'triggered',
  /** A raised condition cleared. */
  Resolved: 'resolved',
  /** `lockstep alerts test`: checks that a channel works. */
  Test: 'test',
} as const;
export type AlertNoticeKind = (typeof AlertNoticeKind)[keyof typeof AlertNoticeKind];

/** One notice, as every channel receives it; each renders it in its own format. */
export interface AlertNotice {
  kind: AlertNoticeKind;
  event: AlertEvent | 'test';
  condition: AlertCondition | null;
  /** The rule's name (`test` for test notices). */
  rule: string;
  subject: AlertSubject | null;
  run: AlertRunRef | null;
  /** One line, e.g. `Sync "accounts-to-crm" failed`. */
  title: string;
  /** What happened, in a sentence or two (the error, the member that terminated the run, ...). */
  text: string;
  /** Details as label/value pairs. */
  fields: Array<{ label: string; value: string }>;
  severity: 'critical' | 'error' | 'warning' | 'info';
  /** Same for a condition's trigger and its resolution: `lockstep:<rule>:<subject>:<condition>`. */
  dedupKey: string;
  /** Epoch ms of the outcome. */
  occurredAt: number;
}

/** The longest dedup key PagerDuty takes ("Send an Alert Event"); a longer one is refused with a 400. */
export const MAX_DEDUP_KEY_LENGTH = 255;

export function dedupKey(rule: string, subject: AlertSubject, condition: AlertCondition): string {
  return boundedDedupKey(`lockstep:${rule}:${subjectKey(subject)}:${condition}`);
}

/**
 * `key` when it fits MAX_DEDUP_KEY_LENGTH; else its start (what a responder reads) followed by `~` and
 * a hash of the whole key, so that long keys stay distinct and the same key always shortens the same way.
 */
export function boundedDedupKey(key: string): string {
  if (key.length <= MAX_DEDUP_KEY_LENGTH) return key;
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 32);
  return `${key.slice(0, MAX_DEDUP_KEY_LENGTH - hash.length - 1)}~${hash}`;
}

/**
 * Delivery states:  pending ──sent──► sent
 *                   pending ──failed, attempts left──► pending (later next attempt)
 *                   pending ──failed, no attempts left──► failed
 */
export const AlertDeliveryStatus = {
  /** Waiting for its (next) attempt. */
  Pending: 'pending',
  /** The channel accepted it. */
  Sent: 'sent',
  /** Every attempt failed; `lastError` says why. */
  Failed: 'failed',
} as const;
export type AlertDeliveryStatus = (typeof AlertDeliveryStatus)[keyof typeof AlertDeliveryStatus];

/** One notice on its way to one channel. */
export interface AlertDelivery {
  id: number;
  channel: string;
  notice: AlertNotice;
  status: AlertDeliveryStatus;
  attempts: number;
  /** When it is tried next (pending), epoch ms. */
  nextAttemptAt: number | null;
  lastError: string | null;
  createdAt: number;
  sentAt: number | null;
}

export interface NewAlertDelivery {
  channel: string;
  notice: AlertNotice;
}

/** The stored state of one condition of one subject under one rule. */
export interface AlertState {
  rule: string;
  subject: AlertSubject;
  condition: AlertCondition;
  raised: boolean;
  /** When it last changed. */
  since: number;
  /** The run whose outcome set it. */
  runId: string | null;
}

export interface AlertOutcome {
  rule: string;
  subject: AlertSubject;
  condition: AlertCondition;
  raised: boolean;
  runId: string;
  now: number;
}

export interface AlertDeliveryQuery {
  status?: AlertDeliveryStatus;
  /** Only deliveries with (true) or without (false) a failed attempt (default: both). */
  failedAttempt?: boolean;
  channel?: string;
  limit: number;
  offset: number;
}

/** Where alert state and deliveries are kept (a part of the Store). */
export interface AlertStore {
  /** The `alerts` section as last applied. */
  getDefinition(): Promise<AlertsDefinition>;
  /**
   * Records an outcome for a condition and, in the same transaction, queues the deliveries
   * `deliveries(change)` returns for the change it makes (so a notice is queued exactly once per
   * change, even when two processes record outcomes at once). `deliveries` must be synchronous and pure.
   */
  recordOutcome(
    outcome: AlertOutcome,
    deliveries: (change: AlertChange) => NewAlertDelivery[],
  ): Promise<{ change: AlertChange; deliveries: AlertDelivery[] }>;
  listStates(): Promise<AlertState[]>;
  /** Queues deliveries outside any state change (test notices), first tried at `firstAttemptAt` (default: now). */
  enqueueDeliveries(deliveries: NewAlertDelivery[], now: number, firstAttemptAt?: number): Promise<AlertDelivery[]>;
  /**
   * Takes up to `limit` pending deliveries due at `now`: their next attempt moves to `now + leaseMs`
   * and their attempt count goes up, so no other process takes them meanwhile. A delivery is held
   * back while an older one of the same channel and dedup key is pending (being retried, or sent
   * right now): the notices of one condition reach a channel in the order they were raised, so a
   * recovery never overtakes the trigger it resolves (PagerDuty drops a resolve with no open alert,
   * and the late trigger would open an incident nothing resolves).
   */
  claimDueDeliveries(now: number, limit: number, leaseMs: number): Promise<AlertDelivery[]>;
  /** The earliest next attempt of a pending delivery that is not held back, or null. */
  nextDeliveryAt(): Promise<number | null>;
  markDeliverySent(id: number, now: number): Promise<void>;
  /** Records a failed attempt: pending again at `retryAt`, or `failed` for good when `retryAt` is null. */
  markDeliveryFailed(id: number, error: string, retryAt: number | null): Promise<void>;
  listDeliveries(query: AlertDeliveryQuery): Promise<AlertDelivery[]>;
}

/** A channel ready to send (templates resolved); one implementation per kind, wired in app.ts. */
export interface AlertChannel {
  /**
   * Sends one notice. Throws a LockstepError when the channel refused or could not be reached
   * (`retryable` when trying again may help).
   */
  send(notice: AlertNotice, delivery: { id: number }): Promise<void>;
}

/**
 * A channel with its `${ENV}` templates resolved from `env`; throws a validation error naming an unset
 * variable, one a channel created through the API may not read (the allow-list attached to `env`), or
 * one that leaves a webhook's signing secret empty.
 */
export function resolveAlertChannel(def: AlertChannelDef, env: TemplateEnv): AlertChannelDef {
  const where = `alert channel "${def.name}"`;
  const value = (text: string) => interpolate(text, env, where, def.origin ?? 'file');
  switch (def.type) {
    case 'slack':
      return { ...def, url: value(def.url) };
    case 'webhook':
      return {
        ...def,
        url: value(def.url),
        headers: Object.fromEntries(Object.entries(def.headers).map(([k, v]) => [k, value(v)])),
        secret: def.secret === null ? null : signingSecret(def.secret, env, where, value),
      };
    case 'email':
      return { ...def, smtp: value(def.smtp), from: value(def.from), to: def.to.map(value) };
    case 'pagerduty':
      return { ...def, routingKey: value(def.routingKey), url: value(def.url) };
    default:
      return assertNever(def);
  }
}

/**
 * A webhook channel's signing secret with its templates filled in. One its variables leave empty (a
 * variable exported empty) is refused: an HMAC keyed with nothing is one anybody can compute.
 */
function signingSecret(template: string, env: TemplateEnv, where: string, value: (text: string) => string): string {
  const secret = value(template);
  refuseBlankSecret(template, env, where);
  return secret;
}

/**
 * Refuses, before a process that sends alerts starts, a webhook channel whose signing secret its
 * variables leave empty (see signingSecret), naming the first such channel and variable.
 */
export function checkSigningSecrets(channels: readonly AlertChannelDef[], env: TemplateEnv): void {
  for (const channel of channels) {
    if (channel.type === 'webhook' && channel.secret !== null) refuseBlankSecret(channel.secret, env, `alert channel "${channel.name}"`);
  }
}

function refuseBlankSecret(template: string, env: TemplateEnv, where: string): void {
  const [blank] = blankTemplateNames(template, env);
  if (blank === undefined) return;
  throw new LockstepError(
    ErrorCode.Validation,
    `${where} signs its notices with \${${blank}}, but the environment variable ${blank} is empty: an HMAC keyed with nothing proves nothing — ` +
      `export ${blank}=<the secret the receiver checks signatures with> before running Lockstep, or remove the channel's secret to send notices unsigned`,
  );
}

/**
 * Turns webhook deliveries from dbt Cloud and Fivetran into runs (SPEC §4). Every delivery is
 * checked, recorded with its outcome and the reason, and answered quickly: runs are queued, not
 * waited for.
 *
 * dbt Cloud: the `Authorization` header holds the hex HMAC-SHA256 of the raw body keyed with the
 * webhook's secret; a `job.run.completed` event whose run succeeded (`data.runStatusCode` 10, or
 * `data.runStatus` "Success" in a payload without the code) starts every enabled sync and sequence
 * whose schedule is `{type: dbt_cloud, accountId, jobId}` for that job.
 * Fivetran: `X-Fivetran-Signature-256` holds the hex HMAC-SHA256 of the body; a `sync_end` event
 * with `data.status` `SUCCESSFUL` starts what is scheduled on `{type: fivetran, connectorId}`.
 * Anything else verified is recorded as ignored, with why.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { ErrorCode, LockstepError, NotFoundError, toError } from '../core/errors.js';
import type { Clock, Logger, Store } from '../core/ports.js';
import type { Trigger } from '../core/runs.js';
import type { TriggeredRun, WebhookEvent, WebhookOutcome, WebhookRetention, WebhookSource } from '../core/webhooks.js';
import type { Schedule, WorkspaceState } from '../core/workspace.js';
import { RepeatedFailureLog } from './repeated-failure-log.js';

/** dbt Cloud's run status code for a successful run. */
export const DBT_CLOUD_SUCCESS = 10;
/** dbt Cloud's run status name for a successful run. */
export const DBT_CLOUD_SUCCESS_STATUS = 'Success';

/**
 * A webhook's signing secret as the server has it: the secret, why it cannot be read (its variable
 * is not set in the server's environment: a message naming the variable, never a value), or null
 * when the workspace declares none.
 */
export type WebhookSecret = { secret: string } | { unreadable: string } | null;

export interface WebhookSecrets {
  dbtCloud: WebhookSecret;
  fivetran: WebhookSecret;
}

/** The secret, or the refusal of a delivery that cannot be checked without it. */
function secretOr(setting: WebhookSecret, what: string, key: string): string | Decision {
  if (setting === null) return reject(401, `no ${what} webhook secret is configured — set webhooks.${key}.secret in lockstep.yaml`);
  if ('unreadable' in setting) return reject(401, `the ${what} webhook secret cannot be read by this server: ${setting.unreadable}, then restart it`);
  // An HMAC keyed with nothing is one anybody can compute: a blank secret (a variable exported empty) checks nothing.
  if (setting.secret.trim() === '') {
    return reject(401, `the ${what} webhook secret is empty on this server (webhooks.${key}.secret, or the variable it reads, is blank) — set it to the secret ${what} shows for the webhook, then restart the server`);
  }
  return setting.secret;
}

/** The part of the run service the receiver needs: queueing runs once per key (RunService.queueFiredRun). */
export interface RunStarter {
  queueFiredRun(key: string, target: { kind: 'sync' | 'sequence'; slug: string }, trigger: Trigger): Promise<{ runId: string } | null>;
}

export interface WebhookReceiverOptions {
  store: Store;
  runs: RunStarter;
  clock: Clock;
  logger: Logger;
  /** The configured secrets, read per delivery so a workspace change takes effect at once. */
  secrets: () => Promise<WebhookSecrets>;
  /** How much of the delivery log is kept (default: DEFAULT_WEBHOOK_RETENTION). */
  retention?: WebhookRetention;
}

export interface WebhookAnswer {
  status: number;
  body: { outcome: WebhookOutcome; message: string; deliveryId: number; runs: TriggeredRun[] };
}

export interface IncomingWebhook {
  rawBody: Buffer;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
}

interface Decision {
  outcome: WebhookOutcome;
  reason: string;
  status: number;
  eventId: string | null;
  eventType: string | null;
  /** Schedules to start, when accepted. */
  match?: (schedule: Schedule) => boolean;
}

/** Constant-time comparison of two hex signatures (case-insensitive). */
export function signatureMatches(expectedHex: string, givenHex: string | undefined): boolean {
  if (!givenHex) return false;
  const given = givenHex.trim().replace(/^sha256=/i, '').toLowerCase();
  const expected = Buffer.from(expectedHex.toLowerCase(), 'utf8');
  const actual = Buffer.from(given, 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export function hmacHex(secret: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

function parseJson(raw: Buffer): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const text = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);

/**
 * Whether a dbt Cloud run succeeded: `runStatusCode` 10, or, in payloads without the code (as dbt
 * Cloud documented them first), `runStatus` "Success".
 */
function dbtRunSucceeded(data: Record<string, unknown>): boolean {
  const code = text(data.runStatusCode);
  if (code !== null && code.trim() !== '') return Number(code) === DBT_CLOUD_SUCCESS;
  return text(data.runStatus) === DBT_CLOUD_SUCCESS_STATUS;
}

/** Reasons of refusal whose repeats are summed up; they come from the server's setup, so a few at a time. */
const MAX_REFUSAL_LOGS = 32;

export class WebhookReceiver {
  /** The log of refused deliveries, one per source and reason. */
  private readonly refusalLogs = new Map<string, RepeatedFailureLog>();

  constructor(private readonly options: WebhookReceiverOptions) {}

  private refusals(source: WebhookSource, reason: string): RepeatedFailureLog {
    const key = `${source}:${reason}`;
    let log = this.refusalLogs.get(key);
    if (!log) {
      if (this.refusalLogs.size >= MAX_REFUSAL_LOGS) this.refusalLogs.delete(this.refusalLogs.keys().next().value as string);
      const { logger, clock } = this.options;
      log = new RepeatedFailureLog({
        logger,
        clock,
        level: 'warn',
        failed: 'webhook delivery refused',
        recovered: 'webhook delivery verified after refused ones',
        errorField: 'reason',
        fields: { source, reason },
      });
      this.refusalLogs.set(key, log);
    }
    return log;
  }

  receiveDbtCloud(incoming: IncomingWebhook): Promise<WebhookAnswer> {
    return this.receive('dbt_cloud', incoming, async () => {
      const secret = secretOr((await this.options.secrets()).dbtCloud, 'dbt Cloud', 'dbtCloud');
      if (typeof secret !== 'string') return secret;
      if (!incoming.headers.authorization?.trim()) {
        return reject(401, "the delivery has no Authorization header — dbt Cloud signs every delivery there with the webhook's secret; only a dbt Cloud webhook can call this endpoint");
      }
      if (!signatureMatches(hmacHex(secret, incoming.rawBody), incoming.headers.authorization)) {
        return reject(401, 'the Authorization header is not the HMAC-SHA256 of the body with the configured dbt Cloud secret');
      }
      const body = parseJson(incoming.rawBody);
      if (!body) return reject(400, 'the body is not a JSON object');
      const data = (body.data ?? {}) as Record<string, unknown>;
      const eventId = text(body.eventId);
      const eventType = text(body.eventType);
      const accountId = text(body.accountId);
      const jobId = text(data.jobId);
      const base = { eventId, eventType, status: 200 };
      if (eventType !== 'job.run.completed') {
        return { ...base, outcome: 'ignored', reason: `event type ${eventType ?? '(none)'} does not start runs; only job.run.completed does` };
      }
      if (!dbtRunSucceeded(data)) {
        const status = [text(data.runStatus), text(data.runStatusCode) === null ? null : `code ${text(data.runStatusCode)}`].filter((part) => part !== null);
        return {
          ...base,
          outcome: 'ignored',
          reason: `dbt Cloud job ${jobId ?? '?'} run ${text(data.runId) ?? '?'} ended with status ${status.join(', ') || '(none)'}, not success (${DBT_CLOUD_SUCCESS_STATUS}, code ${DBT_CLOUD_SUCCESS})`,
        };
      }
      if (!jobId) return reject(400, 'data.jobId is missing');
      return {
        ...base,
        outcome: 'accepted',
        reason: `dbt Cloud job ${jobId} (account ${accountId ?? '?'}) completed successfully`,
        match: (s) => s.type === 'dbt_cloud' && s.jobId === jobId && (accountId === null || s.accountId === accountId),
      };
    });
  }

  receiveFivetran(incoming: IncomingWebhook): Promise<WebhookAnswer> {
    return this.receive('fivetran', incoming, async () => {
      const secret = secretOr((await this.options.secrets()).fivetran, 'Fivetran', 'fivetran');
      if (typeof secret !== 'string') return secret;
      if (!incoming.headers['x-fivetran-signature-256']?.trim()) {
        return reject(
          401,
          "the delivery has no X-Fivetran-Signature-256 header — Fivetran signs deliveries only for a webhook created with a secret: give the webhook the same secret as webhooks.fivetran.secret",
        );
      }
      if (!signatureMatches(hmacHex(secret, incoming.rawBody), incoming.headers['x-fivetran-signature-256'])) {
        return reject(401, 'the X-Fivetran-Signature-256 header is not the HMAC-SHA256 of the body with the configured Fivetran secret');
      }
      const body = parseJson(incoming.rawBody);
      if (!body) return reject(400, 'the body is not a JSON object');
      const data = (body.data ?? {}) as Record<string, unknown>;
      const eventType = text(body.event);
      const connectorId = text(body.connector_id);
      // Fivetran sends no event id: a sync's end is identified by its sync id, else by the body itself.
      const eventId = `${connectorId ?? '?'}:${eventType ?? '?'}:${text(body.sync_id) ?? createHash('sha256').update(incoming.rawBody).digest('hex').slice(0, 32)}`;
      const base = { eventId, eventType, status: 200 };
      if (eventType === 'test_event' || eventType === 'test') {
        return { ...base, outcome: 'ignored', reason: 'Fivetran test event: the endpoint and the signature work' };
      }
      if (eventType !== 'sync_end') {
        return { ...base, outcome: 'ignored', reason: `event ${eventType ?? '(none)'} does not start runs; only sync_end does` };
      }
      const status = text(data.status) ?? text(body.status);
      if (status !== 'SUCCESSFUL') {
        return { ...base, outcome: 'ignored', reason: `Fivetran connector ${connectorId ?? '?'} sync ended ${status ?? '(no status)'}, not SUCCESSFUL` };
      }
      if (!connectorId) return reject(400, 'connector_id is missing');
      return {
        ...base,
        outcome: 'accepted',
        reason: `Fivetran connector ${connectorId} synced successfully`,
        match: (s) => s.type === 'fivetran' && s.connectorId === connectorId,
      };
    });
  }

  /** Decides, records, starts what matched, and answers. */
  private async receive(source: WebhookSource, incoming: IncomingWebhook, decide: () => Promise<Decision>): Promise<WebhookAnswer> {
    const { store, clock, logger } = this.options;
    let decision: Decision;
    // An error's text goes to the server log only, under the delivery's id (see errorSummary).
    let failure: Error | null = null;
    try {
      decision = await decide();
    } catch (thrown) {
      failure = toError(thrown);
      decision = reject(500, `the delivery could not be processed: ${errorSummary(failure)}`);
    }
    let targets: Array<{ kind: 'sync' | 'sequence'; slug: string }> = [];
    let skipped: string[] = [];
    if (decision.outcome === 'accepted' && decision.match) {
      ({ targets, skipped } = matchTargets(await store.loadWorkspace(), decision.match));
      if (targets.length === 0) {
        decision = {
          ...decision,
          outcome: 'ignored',
          reason: `${decision.reason}, but ${skipped.length > 0 ? skipped.join('; ') : 'no sync or sequence is scheduled on it'}`,
        };
      }
    }
    const delivery = {
      source,
      receivedAt: clock.now(),
      eventId: decision.eventId,
      eventType: decision.eventType,
      payloadExcerpt: incoming.rawBody.subarray(0, 2000).toString('utf8'),
    };
    const queued = decision.outcome === 'accepted' ? await this.queue(source, incoming, decision, targets) : null;
    if (queued && 'failed' in queued) {
      // Nothing of the delivery counts as accepted, and each target's key is written only with its
      // run, so the redelivery starts what this one could not, once. Answered 503: dbt Cloud and
      // Fivetran deliver again after a 5xx or no answer at all (a 4xx is final), and a 200 here
      // would lose the runs for good.
      const reason = `${decision.reason}, but its runs could not be queued (${errorSummary(queued.failed)}): answered 503 so that the sender delivers it again`;
      const { event } = await store.webhooks.record({ ...delivery, outcome: 'rejected', reason, httpStatus: 503, triggered: queued.started }, this.options.retention);
      // The store's error (its host, its database) is for the operator: the answer names the delivery to look up.
      logger.error('webhook delivery could not queue its runs; the sender will deliver it again', { source, deliveryId: event.id, eventId: decision.eventId, error: queued.failed.message });
      return answer(event, queued.started);
    }
    const started = queued?.started ?? [];
    skipped.push(...(queued?.skipped ?? []));
    const reason = queued ? [`${decision.reason}: started ${started.map((r) => `${r.kind} "${r.slug}"`).join(', ') || 'nothing'}`, ...skipped].join('; ') : decision.reason;
    const { event } = await store.webhooks.record(
      { ...delivery, outcome: decision.outcome, reason, httpStatus: decision.status, triggered: started },
      this.options.retention,
    );
    // A refused delivery is answered without its reason (see answer()), so the operator reads it here:
    // once, then summed up at most once a minute per reason, as anyone can send a flood of them.
    if (event.httpStatus === 401) {
      this.refusals(source, event.reason).failure(event.reason, { deliveryId: event.id, outcome: event.outcome });
      return answer(event, started);
    }
    // A delivery that passed the signature check (a 500 may not have reached it) closes the refusals' lines with their counts.
    if (event.httpStatus < 500) for (const [key, refusals] of this.refusalLogs) if (key.startsWith(`${source}:`)) refusals.success();
    const log = event.httpStatus >= 500 ? logger.warn.bind(logger) : logger.info.bind(logger);
    log('webhook received', { source, deliveryId: event.id, outcome: event.outcome, reason: event.reason, ...(failure ? { error: failure.message } : {}) });
    return answer(event, started);
  }

  /**
   * Queues a run of each target once per event (its key names the event and the target, recorded in
   * the run's transaction), before the delivery is recorded: a delivery cut off in between, or
   * delivered again, never starts a target twice and never loses one. `failed` when a run could not
   * be queued (the store failing for a moment): the sender is to deliver it again.
   */
  private async queue(
    source: WebhookSource,
    incoming: IncomingWebhook,
    decision: Decision,
    targets: Array<{ kind: 'sync' | 'sequence'; slug: string }>,
  ): Promise<{ started: TriggeredRun[]; skipped: string[] } | { started: TriggeredRun[]; failed: Error }> {
    const eventKey = decision.eventId ?? createHash('sha256').update(incoming.rawBody).digest('hex').slice(0, 32);
    const trigger: Trigger = { type: 'webhook', detail: `${source} event ${decision.eventId ?? eventKey}` };
    const started: TriggeredRun[] = [];
    const skipped: string[] = [];
    for (const target of targets) {
      try {
        const queued = await this.options.runs.queueFiredRun(`webhook:${source}:${eventKey}>${target.kind}:${target.slug}`, target, trigger);
        if (queued) started.push({ ...target, runId: queued.runId });
        else skipped.push(`${target.kind} "${target.slug}" was started by an earlier delivery of this event`);
      } catch (thrown) {
        // Only a target gone since it matched is passed over; anything else (the store failing) may
        // pass, and the delivery is to come again.
        if (!(thrown instanceof NotFoundError)) return { started, failed: toError(thrown) };
        skipped.push(`${target.kind} "${target.slug}" could not start: ${thrown.message}`);
      }
    }
    return { started, skipped };
  }
}

/**
 * What the delivery log, which every API token reads, says of an error: never its text, which for a
 * store names the store's host, database and user. The server log has it in full, under the delivery's id.
 */
function errorSummary(error: Error): string {
  if (error instanceof LockstepError && error.code === ErrorCode.Store) return 'the store could not be read or written — the server log has the error, under this delivery id';
  return 'an unexpected error — the server log has it, under this delivery id';
}

function reject(status: number, reason: string): Decision {
  return { outcome: 'rejected', reason, status, eventId: null, eventType: null };
}

/**
 * What a caller that has not proven it holds the secret is told. The reason recorded (and logged for
 * the operator) may say how the server is set up — no secret configured, its variable not set — which
 * is none of an anonymous caller's business; this says only what the sender's documentation does.
 */
const UNVERIFIED_ANSWER: Record<WebhookSource, string> = {
  dbt_cloud: "not signed with this endpoint's secret: the Authorization header must hold the hex HMAC-SHA256 of the raw body keyed with the dbt Cloud webhook's secret",
  fivetran: "not signed with this endpoint's secret: the X-Fivetran-Signature-256 header must hold the hex HMAC-SHA256 of the raw body keyed with the Fivetran webhook's secret",
};
const FAILED_ANSWER = 'the delivery could not be processed; it is recorded in the server log';

/** A 503's answer: what the sender is to do, and the delivery the server's log holds the reason under; never the store's error. */
const unqueuedAnswer = (deliveryId: number): string =>
  `its runs could not be queued, so it does not count as received: deliver it again — the server log has why, under delivery ${deliveryId}`;

function answer(event: WebhookEvent, runs: TriggeredRun[]): WebhookAnswer {
  const message =
    event.httpStatus === 401 ? UNVERIFIED_ANSWER[event.source] : event.httpStatus === 500 ? FAILED_ANSWER : event.httpStatus === 503 ? unqueuedAnswer(event.id) : event.reason;
  return { status: event.httpStatus, body: { outcome: event.outcome, message, deliveryId: event.id, runs } };
}

/** Enabled syncs and sequences whose schedule matches; disabled ones are named in `skipped`. */
function matchTargets(workspace: WorkspaceState, match: (s: Schedule) => boolean) {
  const targets: Array<{ kind: 'sync' | 'sequence'; slug: string }> = [];
  const skipped: string[] = [];
  for (const [kind, entities] of [
    ['sync', workspace.syncs],
    ['sequence', workspace.sequences],
  ] as const) {
    for (const entity of entities) {
      if (!match(entity.schedule)) continue;
      if (entity.enabled) targets.push({ kind, slug: entity.slug });
      else skipped.push(`${kind} "${entity.slug}" is disabled`);
    }
  }
  return { targets, skipped };
}

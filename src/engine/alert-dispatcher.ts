/**
 * The alert dispatcher: sends the outbox's deliveries to their channels, in the background.
 *
 *   stopped ──start()──► running ──stop()──► stopped
 *
 * running: loop { claim due deliveries (a lease keeps other processes off them); send each;
 * sleep until the next due attempt, at most `pollMs`, or until `kick()` }. A failed attempt is
 * logged and tried again after an exponential backoff with jitter (honouring `Retry-After`), until
 * `attempts`; an error that retrying cannot fix (a wrong URL, an unknown channel) ends it at
 * once. Nothing here ever waits on a run, and no run ever waits on it.
 */
import { boundedDedupKey, type AlertChannel, type AlertChannelDef, type AlertDelivery, type AlertNotice, type AlertStore } from '../core/alerts.js';
import { ErrorCode, LockstepError, NotFoundError, toError } from '../core/errors.js';
import type { Clock, Logger } from '../core/ports.js';
import { backoffDelay, type BackoffPolicy } from '../core/backoff.js';
import { didYouMean } from '../core/hints.js';

/** How notices are retried: the shared backoff (core/backoff.ts) with a steadier cadence. */
export type AlertRetryPolicy = BackoffPolicy;

/** 10 attempts, from 5 s up to 15 minutes apart, ±20%. */
export const DEFAULT_ALERT_RETRY: AlertRetryPolicy = { attempts: 10, baseDelayMs: 5_000, maxDelayMs: 15 * 60_000, jitter: 0.2 };

export interface AlertDispatcherOptions {
  store: AlertStore;
  clock: Clock;
  logger: Logger;
  /** Opens a channel from its definition (templates still unresolved); throws when it cannot. */
  openChannel: (definition: AlertChannelDef) => AlertChannel;
  retry?: AlertRetryPolicy;
  /** How long a claimed delivery is kept from other processes while it is being sent, ms (default: 60000). */
  leaseMs?: number;
  /** Longest sleep between looks at the outbox, ms (default: 5000). */
  pollMs?: number;
  /** Deliveries sent at once (default: 8). */
  batchSize?: number;
}

export class AlertDispatcher implements AsyncDisposable {
  private readonly retry: AlertRetryPolicy;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly batchSize: number;
  private state: 'stopped' | 'running' = 'stopped';
  private loop: Promise<void> = Promise.resolve();
  private sleepController: AbortController | null = null;
  private kicked = false;
  /** Sends under way, from the loop or from `sendDue`. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: AlertDispatcherOptions) {
    this.retry = options.retry ?? DEFAULT_ALERT_RETRY;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollMs = options.pollMs ?? 5_000;
    this.batchSize = options.batchSize ?? 8;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  start(): void {
    if (this.state === 'running') return;
    this.state = 'running';
    this.loop = this.run();
  }

  /** Ends the loop after the sends under way. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return this.loop;
    this.state = 'stopped';
    this.sleepController?.abort(new Error('alert dispatcher stopped'));
    await this.loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** New deliveries were queued: look now. */
  kick(): void {
    this.kicked = true;
    this.sleepController?.abort(new Error('deliveries queued'));
  }

  /**
   * Sends what is due now and waits for sends under way (the loop does this; commands that exit
   * soon call it too). Returns the number of deliveries it attempted.
   */
  async sendDue(): Promise<number> {
    const { store, clock } = this.options;
    let sent = 0;
    for (;;) {
      const claimed = await store.claimDueDeliveries(clock.now(), this.batchSize, this.leaseMs);
      if (claimed.length === 0) break;
      await Promise.all(claimed.map((delivery) => this.track(this.deliver(delivery))));
      sent += claimed.length;
    }
    await Promise.allSettled([...this.inFlight]);
    return sent;
  }

  private track(send: Promise<void>): Promise<void> {
    this.inFlight.add(send);
    return send.finally(() => this.inFlight.delete(send));
  }

  /**
   * Sends a test notice to a channel now and records it among the deliveries. Throws when the
   * channel does not exist or refused it, so the caller can tell the user.
   */
  async sendTestAlert(channelName: string): Promise<AlertDelivery> {
    const { delivery, error } = await this.testChannel(channelName);
    if (error) throw error;
    return delivery;
  }

  /**
   * Sends a test notice to a channel now and records it among the deliveries; a refusal is
   * recorded on the delivery (test notices are not retried) and returned with it. Throws only when
   * the channel does not exist.
   */
  async testChannel(channelName: string): Promise<{ delivery: AlertDelivery; error: Error | null }> {
    const { store, clock } = this.options;
    const definition = await store.getDefinition();
    const channel = definition.channels.find((c) => c.name === channelName);
    if (!channel) {
      const names = definition.channels.map((c) => c.name);
      const known = names.length > 0 ? `the channels are: ${names.join(', ')}` : 'there are none';
      throw new NotFoundError(
        `no alert channel "${channelName}" in the store${didYouMean(channelName, names)} — ${known}; to add one, declare it under alerts.channels and run \`lockstep apply\``,
      );
    }
    const now = clock.now();
    const notice: AlertNotice = {
      kind: 'test',
      event: 'test',
      condition: null,
      rule: 'test',
      subject: null,
      run: null,
      title: `Test alert from Lockstep`,
      text: `channel "${channelName}" (${channel.type}) works: this is what a Lockstep alert looks like here`,
      fields: [{ label: 'Channel', value: channelName }],
      severity: 'info',
      dedupKey: boundedDedupKey(`lockstep:test:${channelName}`),
      occurredAt: now,
    };
    // Recorded first, out of the loop's reach until it is marked, so the id is known when sending.
    const [delivery] = await store.enqueueDeliveries([{ channel: channelName, notice }], now, now + this.leaseMs);
    const recorded = delivery as AlertDelivery;
    try {
      await this.options.openChannel(channel).send(notice, { id: recorded.id });
    } catch (thrown) {
      const error = toError(thrown);
      await store.markDeliveryFailed(recorded.id, error.message, null);
      return { delivery: { ...recorded, status: 'failed', attempts: 1, nextAttemptAt: null, lastError: error.message }, error };
    }
    const sentAt = clock.now();
    await store.markDeliverySent(recorded.id, sentAt);
    return { delivery: { ...recorded, status: 'sent', attempts: 1, nextAttemptAt: null, sentAt }, error: null };
  }

  private async run(): Promise<void> {
    const { store, clock, logger } = this.options;
    while (this.state === 'running') {
      this.kicked = false;
      let wait = this.pollMs;
      try {
        await this.sendDue();
        const next = await store.nextDeliveryAt();
        if (next !== null) wait = Math.max(0, Math.min(this.pollMs, next - clock.now()));
      } catch (thrown) {
        logger.error('could not read or update alert deliveries', { error: toError(thrown).message });
      }
      if (this.state !== 'running' || this.kicked) continue;
      this.sleepController = new AbortController();
      try {
        await clock.sleep(wait, this.sleepController.signal);
      } catch {
        // Kicked or stopped; the loop condition decides.
      } finally {
        this.sleepController = null;
      }
    }
  }

  private async deliver(delivery: AlertDelivery): Promise<void> {
    const { store, clock, logger } = this.options;
    try {
      const definition = (await store.getDefinition()).channels.find((c) => c.name === delivery.channel);
      if (!definition) throw new LockstepError(ErrorCode.Validation, `alert channel "${delivery.channel}" is no longer declared`);
      await this.options.openChannel(definition).send(delivery.notice, { id: delivery.id });
      await store.markDeliverySent(delivery.id, clock.now());
      logger.info(`alert sent to channel "${delivery.channel}"`, { deliveryId: delivery.id, event: delivery.notice.event, attempts: delivery.attempts });
    } catch (thrown) {
      const error = toError(thrown);
      // A store that could not be read says nothing of the channel: the next attempt may read it.
      const retryable = !(error instanceof LockstepError) || error.retryable || error.code === ErrorCode.Store;
      const attempts = delivery.attempts;
      const recorded = deliveryError(error);
      if (!retryable || attempts >= this.retry.attempts) {
        await store.markDeliveryFailed(delivery.id, recorded, null);
        logger.error(`alert to channel "${delivery.channel}" given up after ${attempts} attempt(s): ${error.message}`, {
          deliveryId: delivery.id,
          attempts,
        });
        return;
      }
      const delay = backoffDelay(this.retry, attempts, error instanceof LockstepError ? error.retryAfterSeconds : undefined);
      await store.markDeliveryFailed(delivery.id, recorded, clock.now() + delay);
      logger.warn(`alert to channel "${delivery.channel}" failed; trying again in ${Math.round(delay / 1000)} s: ${error.message}`, {
        deliveryId: delivery.id,
        attempts,
      });
    }
  }
}

/**
 * What the delivery log (read by every API token) says of a failed attempt: the channel's own error,
 * which names the channel and never its secrets, or a summary of a store error, whose text names the
 * store's host, database and user. The server log has the store's error in full.
 */
function deliveryError(error: Error): string {
  if (error instanceof LockstepError && error.code === ErrorCode.Store) return 'the store could not be read to send it — the server log has the error, under this delivery id';
  return error.message;
}

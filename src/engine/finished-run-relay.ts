/**
 * The relay of finished runs: takes the entries the store's outbox holds (written in each run's
 * final transaction, whichever process ran it), hands each run to the parts of the engine that act
 * on an ended run (upstream triggers, alert rules), and removes the entry once they all have. An
 * entry is held by one process for a lease while it is acted on; if that process dies, another
 * takes it when the hold ends. So a run's end is acted on once, even across a crash between the
 * end and the action.
 *
 * It drains when told a run ended here (`kick`), when the store pushes a notification, and on a
 * poll for the ends of other processes' runs.
 */
import { toError } from '../core/errors.js';
import type { Clock, LeaseRequest, Logger, Store } from '../core/ports.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';
import { RepeatedFailureLog } from './repeated-failure-log.js';

/** What acts on an ended run; the entry is removed once the returned promise settles. */
export interface FinishedRunHandlers {
  syncRun: (run: SyncRun) => Promise<void> | void;
  sequenceRun: (run: SequenceRun) => Promise<void> | void;
}

export interface FinishedRunRelayOptions {
  store: Pick<Store, 'takeFinishedRuns' | 'ackFinishedRuns' | 'getSyncRun' | 'getSequenceRun' | 'watch'>;
  clock: Clock;
  logger: Logger;
  /** Who holds the entries taken, and for how long. */
  lease: LeaseRequest;
  /** How often to look for runs other processes ended, ms. */
  pollIntervalMs: number;
}

/** Entries taken at once. */
const TAKE = 100;

export class FinishedRunRelay implements AsyncDisposable {
  private readonly handlers = new Set<FinishedRunHandlers>();
  private draining: Promise<void> | null = null;
  private drainAgain = false;
  private controller: AbortController | null = null;
  private pollLoop: Promise<void> | null = null;
  private unwatch: (() => void) | null = null;
  /** Holds in place (see hold), and whether a drain was asked for meanwhile. */
  private holds = 0;
  private kickedWhileHeld = false;

  /** Drains failing while the store is unreachable: a few lines for an outage, not one per poll. */
  private readonly drainFailures: RepeatedFailureLog;

  constructor(private readonly options: FinishedRunRelayOptions) {
    this.drainFailures = new RepeatedFailureLog({ logger: options.logger, clock: options.clock, failed: 'could not act on finished runs', recovered: 'acting on finished runs again' });
  }

  /** Adds handlers for every run whose end this relay takes; returns their removal. */
  subscribe(handlers: FinishedRunHandlers): () => void {
    this.handlers.add(handlers);
    return () => this.handlers.delete(handlers);
  }

  /** Starts draining the outbox: now, on notifications and on a poll. */
  start(): void {
    if (this.controller) return;
    this.controller = new AbortController();
    this.pollLoop = this.poll(this.controller.signal);
    this.unwatch = this.options.store.watch?.((topic) => {
      if (topic === 'finished') this.kick();
    }) ?? null;
    this.kick();
  }

  get running(): boolean {
    return this.controller !== null;
  }

  /**
   * Puts drains off until the returned release is called: a hand-off to the next member is under
   * way here, and the next member's start comes before acting on ended runs. Drains asked for
   * meanwhile happen at the release.
   */
  hold(): () => void {
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holds === 0 && this.kickedWhileHeld) {
        this.kickedWhileHeld = false;
        this.kick();
      }
    };
  }

  /** Drains soon (a run ended here). Drains coalesce. */
  kick(): void {
    if (!this.controller) return;
    if (this.holds > 0) {
      this.kickedWhileHeld = true;
      return;
    }
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = (async () => {
      try {
        do {
          this.drainAgain = false;
          // After the hand-off to the next member, which runs on promise continuations.
          await new Promise<void>((resolve) => setImmediate(resolve));
          while ((await this.drainOnce()) === TAKE);
        } while (this.drainAgain);
        this.drainFailures.success();
      } catch (thrown) {
        this.drainFailures.failure(toError(thrown).message);
      } finally {
        this.draining = null;
      }
    })();
  }

  /** Resolves once what was taken so far has been acted on. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Stops polling and listening, after acting on what was kicked (runs this process ended go out before it exits). */
  async stop(): Promise<void> {
    if (!this.controller) return;
    this.unwatch?.();
    this.unwatch = null;
    this.controller.abort();
    await this.pollLoop;
    await this.idle();
    this.controller = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Acts on one batch of entries; returns how many were taken. */
  private async drainOnce(): Promise<number> {
    const { store, clock, logger } = this.options;
    const entries = await store.takeFinishedRuns(TAKE, clock.now(), this.options.lease);
    const done: number[] = [];
    for (const entry of entries) {
      try {
        if (entry.kind === 'sync') {
          const run = await store.getSyncRun(Number(entry.runId));
          if (run) await Promise.all([...this.handlers].map((h) => h.syncRun(run)));
        } else {
          const run = await store.getSequenceRun(entry.runId);
          if (run) await Promise.all([...this.handlers].map((h) => h.sequenceRun(run)));
        }
        done.push(entry.id);
      } catch (thrown) {
        // Left held: taken again once the hold ends.
        logger.error('could not act on a finished run; trying again later', { kind: entry.kind, runId: entry.runId, error: toError(thrown).message });
      }
    }
    await store.ackFinishedRuns(done);
    return entries.length;
  }

  private async poll(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.options.clock.sleep(this.options.pollIntervalMs, signal);
      } catch {
        return;
      }
      this.kick();
    }
  }
}

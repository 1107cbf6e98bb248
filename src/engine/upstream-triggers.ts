/**
 * Upstream completion (SPEC §4, `after` schedules): when a sync run or a sequence run ends, the
 * syncs and sequences scheduled `after` it start.
 *
 * What "completes" means:
 * - `on: success` — a sync run that ended `success` or `warning` (it ran to the end; rejected rows
 *   are row-level failures, the data moved), a sequence run that ended `done`.
 * - `on: any` — also a sync run or sequence run that ended `failed`.
 * - never: `cancelled` (a user stopped it on purpose) and `interrupted` (the process died; the retry's
 *   completion triggers instead).
 * A sync run counts whether it ran alone or as a member of a sequence. Disabled targets do not
 * start. Each upstream run triggers each target once: the key `after:<target>@<run>` is recorded
 * with the schedule firings in the transaction that queues the target's run (store.enqueueFiredRun),
 * so a trigger tried again — after a failure, or by another process once the one acting on the run's
 * end died — queues it if and only if it was not queued yet.
 *
 * The work happens after the upstream run's final state is stored, off the hand-off path, from the
 * store's outbox of finished runs (finished-run-relay.ts): once, whichever process ran the run. A
 * target that could not be queued fails the handling of the run's end, so the outbox keeps it and
 * hands it over again once its hold ends (to this process or another): a store that stays
 * unavailable past the retries delays the target's run, never loses it.
 */
import { withBackoff, type BackoffPolicy } from '../core/backoff.js';
import { toError } from '../core/errors.js';
import type { Clock, Logger, Store } from '../core/ports.js';
import type { SequenceRun, SequenceRunStatus, SyncRun, SyncRunStatus, Trigger } from '../core/runs.js';
import type { Schedule, WorkspaceState } from '../core/workspace.js';
import type { FinishedRunRelay } from './finished-run-relay.js';
import { FinishedRunSubscription } from './finished-run-subscription.js';

/** Sync run outcomes that count as `on: success`. */
export const UPSTREAM_SUCCESS_SYNC_STATUSES: readonly SyncRunStatus[] = ['success', 'warning'];
/** Sync run outcomes that count as `on: any`: every end of a run that ran to its end or failed. */
export const UPSTREAM_ANY_SYNC_STATUSES: readonly SyncRunStatus[] = ['success', 'warning', 'failed'];
/** Sequence run outcomes that count as `on: success`. */
export const UPSTREAM_SUCCESS_SEQUENCE_STATUSES: readonly SequenceRunStatus[] = ['done'];
/** Sequence run outcomes that count as `on: any`. */
export const UPSTREAM_ANY_SEQUENCE_STATUSES: readonly SequenceRunStatus[] = ['done', 'failed'];

/**
 * Attempts at queuing a target, while the failure passes (the store failing for a moment): about
 * 15 s in all, well within the hold on the run's end (the lease, 30 s by default).
 */
const TRIGGER_RETRY: BackoffPolicy = { attempts: 6, baseDelayMs: 500, maxDelayMs: 8_000, jitter: 0.2 };

/** What a finished upstream run is, as `after` schedules see it. */
export interface UpstreamRun {
  kind: 'sync' | 'sequence';
  slug: string;
  runId: string;
  status: string;
  success: boolean;
  counts: boolean;
}

/** The targets an upstream run starts. */
export interface UpstreamTarget {
  kind: 'sync' | 'sequence';
  slug: string;
}

export interface UpstreamTriggersOptions {
  store: Pick<Store, 'loadWorkspace' | 'getSync' | 'getSequence'>;
  /** The ends of runs, from the store's outbox. */
  finishedRuns: FinishedRunRelay;
  clock: Clock;
  logger: Logger;
  /**
   * Records `key` and queues a run of the target, in one store transaction (the run service's
   * queueFiredRun); null when the key was recorded before.
   */
  queue: (key: string, target: UpstreamTarget, trigger: Trigger) => Promise<{ runId: string } | null>;
}

export class UpstreamTriggers implements AsyncDisposable {
  private readonly finishedRuns: FinishedRunSubscription;
  private pending = new Set<Promise<void>>();

  constructor(private readonly options: UpstreamTriggersOptions) {
    this.finishedRuns = new FinishedRunSubscription(options.finishedRuns, {
      syncRun: (run) => this.defer(() => this.syncRunFinished(run)),
      sequenceRun: (run) => this.defer(() => this.sequenceRunFinished(run)),
    });
  }

  /** Stops listening and waits for triggers already under way. */
  async stop(): Promise<void> {
    this.finishedRuns.close();
    await this.idle();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Resolves when every finished run seen so far has triggered what it should. */
  async idle(): Promise<void> {
    // Runs that ended are handed over by the relay first.
    await this.options.finishedRuns.idle();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Runs `work` soon; its failure goes to the relay, which keeps the run's end to hand over again. */
  private defer(work: () => Promise<void>): Promise<void> {
    // setImmediate: after the hand-off to the next member, which runs on promise continuations.
    const done = new Promise<void>((resolve) => setImmediate(resolve)).then(work);
    const tracked: Promise<void> = done.then(
      () => undefined,
      () => undefined,
    ).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
    return done;
  }

  private async syncRunFinished(run: SyncRun): Promise<void> {
    const sync = await this.options.store.getSync(run.syncId);
    if (!sync) return;
    await this.fire({
      kind: 'sync',
      slug: sync.slug,
      runId: String(run.id),
      status: run.status,
      success: UPSTREAM_SUCCESS_SYNC_STATUSES.includes(run.status),
      counts: UPSTREAM_ANY_SYNC_STATUSES.includes(run.status),
    });
  }

  private async sequenceRunFinished(run: SequenceRun): Promise<void> {
    const sequence = await this.options.store.getSequence(run.sequenceId);
    if (!sequence) return;
    await this.fire({
      kind: 'sequence',
      slug: sequence.slug,
      runId: run.id,
      status: run.status,
      success: UPSTREAM_SUCCESS_SEQUENCE_STATUSES.includes(run.status),
      counts: UPSTREAM_ANY_SEQUENCE_STATUSES.includes(run.status),
    });
  }

  private async fire(upstream: UpstreamRun): Promise<void> {
    if (!upstream.counts) return;
    const { store, clock, logger } = this.options;
    const targets = upstreamTargets(await store.loadWorkspace(), upstream);
    const failed: string[] = [];
    for (const target of targets) {
      const key = `after:${target.kind}:${target.slug}@${upstream.kind}-run-${upstream.runId}`;
      const trigger: Trigger = {
        type: 'upstream',
        detail: `${upstream.kind} "${upstream.slug}" run ${upstream.runId} ended ${upstream.status}`,
      };
      try {
        // Tried again whole: the key and the run are written together, so a retry never queues twice.
        const queued = await withBackoff(() => this.options.queue(key, target, trigger), {
          policy: TRIGGER_RETRY,
          clock,
          onRetry: ({ attempt, delayMs, error }) =>
            logger.warn(`could not start ${target.kind} "${target.slug}" after ${upstream.kind} "${upstream.slug}"; trying again`, {
              upstreamRunId: upstream.runId,
              attempt,
              delayMs: Math.round(delayMs),
              error: error.message,
            }),
        });
        if (queued === null) continue; // queued before, by this process or another
        logger.info(`${target.kind} "${target.slug}" started after ${upstream.kind} "${upstream.slug}"`, {
          upstreamRunId: upstream.runId,
          upstreamStatus: upstream.status,
        });
      } catch (thrown) {
        // The other targets are still tried; those queued now are not queued again (their keys).
        logger.error(`could not start ${target.kind} "${target.slug}" after ${upstream.kind} "${upstream.slug}"; trying again later`, {
          upstreamRunId: upstream.runId,
          error: toError(thrown).message,
        });
        failed.push(`${target.kind} "${target.slug}"`);
      }
    }
    if (failed.length > 0) {
      throw new Error(`${failed.join(', ')} could not be started after ${upstream.kind} "${upstream.slug}" run ${upstream.runId}; the run's end is kept and acted on again`);
    }
  }
}

/** The enabled syncs and sequences whose `after` schedule this upstream run satisfies. */
export function upstreamTargets(workspace: WorkspaceState, upstream: UpstreamRun): UpstreamTarget[] {
  const matches = (schedule: Schedule): boolean => {
    if (schedule.type !== 'after') return false;
    const names = upstream.kind === 'sync' ? schedule.sync : schedule.sequence;
    if (names !== upstream.slug) return false;
    return schedule.on === 'any' ? upstream.counts : upstream.success;
  };
  const targets: UpstreamTarget[] = [];
  for (const sync of workspace.syncs) if (sync.enabled && matches(sync.schedule)) targets.push({ kind: 'sync', slug: sync.slug });
  for (const sequence of workspace.sequences) {
    if (sequence.enabled && matches(sequence.schedule)) targets.push({ kind: 'sequence', slug: sequence.slug });
  }
  return targets;
}

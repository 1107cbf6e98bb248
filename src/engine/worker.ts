/**
 * The worker: takes queued work from the store and runs it in this process.
 *
 *   stopped ──start()──► recovering ──► running ──stop()──► stopping ──► stopped
 *
 * recovering: sync runs left active by a dead process become `interrupted` (a standalone one is
 * queued again; a member's is restarted by its sequence run), running sequence runs are advanced.
 * running: queued sync runs are claimed when their sync is free and a slot is open; pending
 * sequence runs are claimed when their sequence is idle. A finished member hands off to the next
 * one directly (no polling on that path). A slow poll picks up work other processes queued.
 * stopping: running syncs stop at their next batch boundary and stay active in the store, so the
 * next start resumes them.
 */
import { NotFoundError, toError } from '../core/errors.js';
import type { Clock, Logger, Store } from '../core/ports.js';
import type { SequenceRun, SyncRun, SyncRunOptions, Trigger } from '../core/runs.js';
import { TERMINAL_SEQUENCE_RUN_STATUSES, isTerminalSyncRunStatus } from '../core/runs.js';
import type { EngineEventEmitter } from './events.js';
import { SequenceRunner } from './sequence-runner.js';
import type { StopReason, SyncRunner } from './sync-runner.js';

export interface WorkerOptions {
  store: Store;
  syncRunner: SyncRunner;
  clock: Clock;
  logger: Logger;
  events: EngineEventEmitter;
  /** Sync runs executing at once in this process (default: 8). */
  maxConcurrentRuns: number;
  /** How often to look for work queued by other processes, in ms (default: 1000). */
  pollIntervalMs: number;
}

interface Execution {
  syncId: number;
  controller: AbortController;
  done: Promise<void>;
}

export class Worker {
  private readonly sequences: SequenceRunner;
  private readonly executions = new Map<number, Execution>();
  /** Syncs with a run executing (or being claimed) here: never two at once. */
  private readonly busySyncs = new Set<number>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private state: 'stopped' | 'running' | 'stopping' = 'stopped';
  private pollController: AbortController | null = null;
  private pollLoop: Promise<void> | null = null;

  constructor(private readonly options: WorkerOptions) {
    this.sequences = new SequenceRunner({
      store: options.store,
      clock: options.clock,
      logger: options.logger,
      startSyncRuns: (runs) => {
        for (const run of runs) void this.tryStart(run);
      },
      cancelSyncRun: async (id) => {
        await this.cancelSyncRun(id).catch(() => undefined);
      },
      onUpdate: (run) => {
        options.events.emit('sequenceRun:updated', run);
        if (TERMINAL_SEQUENCE_RUN_STATUSES.includes(run.status)) {
          options.events.emit('sequenceRun:finished', run);
          // A follow-up run of this sequence may be waiting.
          void this.pump();
        }
      },
    });
  }

  get events(): EngineEventEmitter {
    return this.options.events;
  }

  /** Recovers what a previous process left, then starts taking work. */
  async start(): Promise<void> {
    if (this.state !== 'stopped') return;
    this.state = 'running';
    const { store, clock, logger } = this.options;
    const interrupted = await store.interruptActiveSyncRuns(clock.now());
    for (const run of interrupted) {
      logger.warn('sync run interrupted by a stop of the process; running it again', { syncRunId: run.id });
      if (run.sequenceRunId === null) {
        await store.enqueueSyncRun(
          { syncId: run.syncId, trigger: { type: 'retry', detail: `sync run ${run.id} was interrupted` }, options: run.options },
          clock.now(),
        );
      }
    }
    for (const run of await store.listSequenceRunsByStatus(['running'])) {
      await this.sequences.advance(run.id);
    }
    await this.pump();
    this.pollController = new AbortController();
    this.pollLoop = this.poll(this.pollController.signal);
  }

  /** Stops taking work; running syncs stop at a batch boundary and resume on the next start. */
  async stop(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    this.pollController?.abort();
    await this.pollLoop;
    for (const execution of this.executions.values()) execution.controller.abort('shutdown' satisfies StopReason);
    await Promise.allSettled([...this.executions.values()].map((e) => e.done));
    await this.pumping;
    await this.sequences.idle();
    this.state = 'stopped';
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Queues a run of a sync (by id or slug); a run already queued is shared. */
  async triggerSync(
    ref: number | string,
    options: Partial<SyncRunOptions> = {},
    trigger: Trigger = { type: 'manual', detail: null },
  ): Promise<{ run: SyncRun; created: boolean }> {
    const { store, clock } = this.options;
    const sync = await store.getSync(ref);
    if (!sync) throw new NotFoundError(`no sync "${ref}" in the workspace — check the slug, or run \`lockstep apply\` after adding it`);
    const result = await store.enqueueSyncRun(
      { syncId: sync.id, trigger, options: { fullResync: options.fullResync ?? false, resetCDC: options.resetCDC ?? false } },
      clock.now(),
    );
    void this.pump();
    return result;
  }

  /** Queues a run of a sequence (by id or slug); a run already queued is shared. */
  async triggerSequence(
    ref: number | string,
    trigger: Trigger = { type: 'manual', detail: null },
  ): Promise<{ run: SequenceRun; created: boolean }> {
    const { store, clock } = this.options;
    const sequence = await store.getSequence(ref);
    if (!sequence) {
      throw new NotFoundError(`no sequence "${ref}" in the workspace — check the slug, or run \`lockstep apply\` after adding it`);
    }
    const result = await store.enqueueSequenceRun(sequence, trigger, clock.now());
    void this.pump();
    return result;
  }

  /** Cancels a sync run: a queued one at once, a running one at its next batch boundary. */
  async cancelSyncRun(id: number): Promise<SyncRun> {
    const run = await this.options.store.requestSyncRunCancel(id);
    this.executions.get(id)?.controller.abort('cancel' satisfies StopReason);
    if (run.status === 'cancelled' && run.sequenceRunId !== null) await this.sequences.advance(run.sequenceRunId);
    return run;
  }

  /** Cancels a sequence run: running members are cancelled, the rest skipped. */
  async cancelSequenceRun(id: string): Promise<SequenceRun> {
    const run = await this.options.store.requestSequenceRunCancel(id);
    if (run.status === 'running') await this.sequences.advance(id);
    return (await this.options.store.getSequenceRun(id)) ?? run;
  }

  /** Resolves with the sequence run once it is done, failed or cancelled. */
  waitForSequenceRun(id: string): Promise<SequenceRun> {
    return this.waitFor(
      () => this.options.store.getSequenceRun(id),
      (run) => TERMINAL_SEQUENCE_RUN_STATUSES.includes(run.status),
      (resolve) => this.events.on('sequenceRun:finished', (run) => run.id === id && resolve(run)),
      `sequence run ${id}`,
    );
  }

  /** Resolves with the sync run once it reached a terminal status. */
  waitForSyncRun(id: number): Promise<SyncRun> {
    return this.waitFor(
      () => this.options.store.getSyncRun(id),
      (run) => isTerminalSyncRunStatus(run.status),
      (resolve) => this.events.on('syncRun:finished', (run) => run.id === id && resolve(run)),
      `sync run ${id}`,
    );
  }

  /** Whether nothing is executing or waiting in this process. */
  get idle(): boolean {
    return this.executions.size === 0 && this.pumping === null;
  }

  private async waitFor<T>(
    load: () => Promise<T | null>,
    done: (value: T) => boolean,
    subscribe: (resolve: (value: T) => void) => () => void,
    what: string,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (value: T) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        clearInterval(timer);
        resolve(value);
      };
      const unsubscribe = subscribe(finish);
      const check = () =>
        load().then(
          (value) => {
            if (value === null) {
              settled = true;
              unsubscribe();
              clearInterval(timer);
              reject(new NotFoundError(`${what} does not exist`));
            } else if (done(value)) finish(value);
          },
          (err: unknown) => this.options.logger.warn('could not read run state', { what, error: toError(err).message }),
        );
      // Another process may finish the run; the store is the truth, checked now and then.
      const timer = setInterval(() => void check(), 500);
      void check();
    });
  }

  /** Claims and runs what is queued, as far as slots and busy syncs allow. Calls coalesce. */
  pump(): Promise<void> {
    if (this.state !== 'running') return Promise.resolve();
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      try {
        do {
          this.pumpAgain = false;
          await this.pumpOnce();
        } while (this.pumpAgain && this.state === 'running');
      } catch (thrown) {
        this.options.logger.error('could not take queued work', { error: toError(thrown).message });
      } finally {
        this.pumping = null;
      }
    })();
    return this.pumping;
  }

  private async pumpOnce(): Promise<void> {
    const { store, clock } = this.options;
    for (const pending of await store.listSequenceRunsByStatus(['pending'])) {
      const claimed = await store.claimSequenceRun(pending.id, clock.now());
      if (!claimed) continue;
      this.options.logger.info('sequence run started', { sequenceRunId: claimed.id, sequenceId: claimed.sequenceId });
      this.events.emit('sequenceRun:updated', claimed);
      await this.sequences.advance(claimed.id);
    }
    for (const run of await store.listQueuedSyncRuns()) {
      if (this.executions.size >= this.options.maxConcurrentRuns) break;
      await this.tryStart(run);
    }
  }

  /** Claims a queued run and executes it, unless its sync is busy or no slot is free. */
  private async tryStart(run: SyncRun): Promise<void> {
    const { store, clock } = this.options;
    if (this.state !== 'running' || this.busySyncs.has(run.syncId)) return;
    if (this.executions.size >= this.options.maxConcurrentRuns) return;
    this.busySyncs.add(run.syncId);
    let claimed: SyncRun | null = null;
    try {
      claimed = await store.claimSyncRun(run.id, clock.now());
    } catch (thrown) {
      this.options.logger.error('could not claim sync run', { syncRunId: run.id, error: toError(thrown).message });
    }
    if (!claimed) {
      this.busySyncs.delete(run.syncId);
      return;
    }
    this.events.emit('syncRun:updated', claimed);
    const controller = new AbortController();
    const execution: Execution = {
      syncId: claimed.syncId,
      controller,
      done: this.options.syncRunner
        .execute(claimed, { signal: controller.signal, onProgress: (r) => this.events.emit('syncRun:updated', r) })
        .then((final) => this.finished(final), (thrown: unknown) => this.crashed(claimed as SyncRun, thrown)),
    };
    this.executions.set(claimed.id, execution);
  }

  private async finished(run: SyncRun): Promise<void> {
    this.executions.delete(run.id);
    this.busySyncs.delete(run.syncId);
    if (isTerminalSyncRunStatus(run.status)) this.events.emit('syncRun:finished', run);
    if (this.state !== 'running') return;
    if (run.sequenceRunId !== null) await this.sequences.advance(run.sequenceRunId).catch((e: unknown) => this.advanceFailed(run, e));
    await this.pump();
  }

  private async crashed(run: SyncRun, thrown: unknown): Promise<void> {
    // The runner records every run-level failure itself; reaching here means the store failed.
    this.options.logger.error('sync run could not be recorded', { syncRunId: run.id, error: toError(thrown).message });
    await this.finished({ ...run, status: 'interrupted' });
  }

  private advanceFailed(run: SyncRun, thrown: unknown): void {
    this.options.logger.error('could not hand off to the next member', {
      sequenceRunId: run.sequenceRunId,
      error: toError(thrown).message,
    });
  }

  private async poll(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.options.clock.sleep(this.options.pollIntervalMs, signal);
      } catch {
        return;
      }
      // Self-healing: a hand-off lost to an error (a locked store, say) is retried here.
      try {
        for (const run of await this.options.store.listSequenceRunsByStatus(['running'])) await this.sequences.advance(run.id);
      } catch (thrown) {
        this.options.logger.error('could not advance running sequence runs', { error: toError(thrown).message });
      }
      await this.pump();
    }
  }
}

/**
 * The worker: claims work from the store and runs it in this process. Any number of workers, in
 * any number of processes on any number of machines, may share one store. Runs are queued and
 * cancelled through the run service (run-service.ts), in this process or any other.
 *
 *   stopped ──start()──► running ──stop()──► stopping ──► stopped
 *
 * running: sync runs are claimed for this worker's id with a lease (LockstepConfig.leaseMs) that
 * a heartbeat renews every third of it; a slot frees when a run ends. A run whose lease ended
 * (its worker died or froze) is claimed like queued work and taken over as attempt + 1, so a
 * crash never needs a restart to recover. A heartbeat that finds a lease lost stops that run at
 * once (its late writes are refused by the store anyway). Pending sequence runs are claimed when
 * their sequence is idle; a finished member hands off to the next one directly. Other processes'
 * work is found by a poll, or sooner through the store's notifications when it has them. A cancel
 * asked by another process is in the store only: the runs executing here look for it there (see
 * watchCancels) and stop at once, their query or write interrupted, as a cancel in this process does.
 * stopping: running syncs stop at their next batch boundary and their leases are released, so
 * another worker (or the next start) takes them over at once.
 */
import { toError } from '../core/errors.js';
import { processHost } from '../core/hosts.js';
import type { Clock, LeaseRequest, Logger, Store } from '../core/ports.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';
import { ACTIVE_SYNC_RUN_STATUSES, TERMINAL_SEQUENCE_RUN_STATUSES, isTerminalSyncRunStatus } from '../core/runs.js';
import { deadlinePassed, memberLimit } from '../core/sequence-rules.js';
import type { EngineEventEmitter } from './events.js';
import { RepeatedFailureLog } from './repeated-failure-log.js';
import type { FinishedRunRelay } from './finished-run-relay.js';
import type { SequenceRunner } from './sequence-runner.js';
import type { StopReason } from './run-bookkeeping.js';
import type { SyncRunner } from './sync-runner.js';

/**
 * How often, ms, the runs executing here look in the store for a cancel asked by another process
 * when the store does not say so by itself (see watchCancels): a few times a second, one read per run.
 */
const CANCEL_CHECK_MS = 250;

export interface WorkerOptions {
  store: Store;
  syncRunner: SyncRunner;
  /**
   * Advances sequence runs: their hand-offs, and the pending ones this worker claims. It starts and
   * stops their members through this worker (memberClaim, startMemberRuns, cancelExecution,
   * sequenceRunChanged).
   */
  sequences: Pick<SequenceRunner, 'advance' | 'idle'>;
  clock: Clock;
  logger: Logger;
  events: EngineEventEmitter;
  /** Sync runs executing at once in this process (default: 8). */
  maxConcurrentRuns: number;
  /** How often to look for work queued by other processes, in ms (default: 1000). */
  pollIntervalMs: number;
  /** This worker's id among the processes sharing the store (see config.ts newWorkerId). */
  workerId: string;
  /** How long a claim holds without a heartbeat, ms (default: 30,000). */
  leaseMs: number;
  /** The relay of the store's outbox of finished runs: it works while this worker does. */
  finishedRuns: FinishedRunRelay;
  /**
   * Awaited once before the worker takes work (default: nothing): the app loads the drivers of the
   * kinds its workspace uses, so the first run does not spend its time loading modules. A failure
   * is left to the run that opens the connection.
   */
  prepare?: () => Promise<void>;
}

interface Execution {
  run: SyncRun;
  controller: AbortController;
  done: Promise<void>;
  /** Set once the run's end is recorded, until its hand-off is done: releases the relay's hold. */
  handingOff?: () => void;
  /** Set while a watch on its limits sleeps; aborted when the execution ends. */
  ended: AbortController | null;
  /**
   * When this worker's lease on the run ends, as of its claim or last renewal: past it, with the
   * store out of reach, the run may be another worker's already.
   */
  leaseEndsAt: number;
  /** Whether the lease was seen to end without a renewal (logged once). */
  leaseLapsed: boolean;
}

/** The run a command started (or joined) and waits for. */
export type AwaitedRun = { syncRunId: number } | { sequenceRunId: string };

export class Worker {
  private readonly executions = new Map<number, Execution>();
  /** Claims under way: they count against the slots. */
  private claiming = 0;
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private state: 'stopped' | 'running' | 'stopping' = 'stopped';
  private loopsController: AbortController | null = null;
  private loops: Array<Promise<void>> = [];
  private unwatch: (() => void) | null = null;
  private readonly lease: LeaseRequest;
  /** Runs of this process between the record of their end and their hand-off. */
  private handingOff = 0;
  /** Whether this worker works for one command (see runForCommand). */
  private forCommand = false;
  /** The run a command waits for (see takeWorkUntilEnd), and whether it has ended here. */
  private awaited: AwaitedRun | null = null;
  private awaitedEnded = false;
  /** The loops' failures while the store is unreachable: a few lines for an outage, not one per round. */
  private readonly pumpFailures: RepeatedFailureLog;
  private readonly pollFailures: RepeatedFailureLog;
  private readonly heartbeatFailures: RepeatedFailureLog;
  /** Whether the runs executing here are being checked for a cancel, and whether to check again then. */
  private checkingCancels = false;
  private checkCancelsAgain = false;

  constructor(private readonly options: WorkerOptions) {
    this.lease = { workerId: options.workerId, leaseMs: options.leaseMs };
    const { logger, clock } = options;
    this.pumpFailures = new RepeatedFailureLog({ logger, clock, failed: 'could not take queued work', recovered: 'taking queued work again' });
    this.pollFailures = new RepeatedFailureLog({ logger, clock, failed: 'could not advance running sequence runs', recovered: 'advancing running sequence runs again' });
    this.heartbeatFailures = new RepeatedFailureLog({ logger, clock, failed: 'could not renew leases', recovered: 'renewing leases again' });
  }

  /** This worker's id, as its leases name it. */
  get workerId(): string {
    return this.options.workerId;
  }

  /** Whether the worker takes work (started, and not stopping). */
  get running(): boolean {
    return this.state === 'running';
  }

  /** The runs executing here. */
  get runningIds(): number[] {
    return [...this.executions.keys()];
  }

  /**
   * The runs executing here whose lease this worker holds as far as it knows: not those whose
   * lease ended without a renewal (the store out of reach), which another worker may have taken.
   */
  get leasedIds(): number[] {
    const now = this.options.clock.now();
    return [...this.executions].filter(([, execution]) => execution.leaseEndsAt > now).map(([id]) => id);
  }

  /**
   * Starts taking work: queued runs, runs whose worker is gone, running sequence runs' hand-offs.
   * With `awaitPrepare: false` (a command that runs one sync or sequence and exits), work is taken
   * while the drivers load and the store readies its writes: the run's first connection and its
   * first snapshot write wait for them, and meanwhile the run claims, connects and reads.
   */
  async start(options: { awaitPrepare?: boolean } = {}): Promise<void> {
    if (this.state !== 'stopped') return;
    this.state = 'running';
    const { store, logger } = this.options;
    const prepared = this.options.prepare?.().catch(() => undefined);
    if (options.awaitPrepare !== false) await prepared;
    await this.releaseDeadLocalWorkers().catch((thrown: unknown) =>
      logger.warn('could not check the leases of other workers on this host', { error: toError(thrown).message }),
    );
    for (const run of await store.listSequenceRunsByStatus(['running'])) {
      // One run that cannot go on must not keep the worker from starting, nor the others from resuming.
      await this.options.sequences.advance(run.id).catch((thrown: unknown) => this.logStuckRun(run.id, thrown));
    }
    await this.pump();
    this.options.finishedRuns.start();
    this.loopsController = new AbortController();
    const signal = this.loopsController.signal;
    this.loops = [this.poll(signal), this.heartbeat(signal), this.watchCancels(signal)];
    this.unwatch = store.watch?.((topic) => {
      // During a hand-off here (often the echo of the run's own end), the hand-off pumps when it
      // is done: a pump now would compete with the next member's start.
      if (topic === 'work' && this.handingOff === 0) void this.pump();
      if (topic === 'cancel') void this.checkCancels();
    }) ?? null;
  }

  /** Stops taking work; running syncs stop at a batch boundary and their leases are released for another worker. */
  async stop(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    this.unwatch?.();
    this.loopsController?.abort();
    await Promise.all(this.loops);
    for (const execution of this.executions.values()) execution.controller.abort('shutdown' satisfies StopReason);
    await Promise.allSettled([...this.executions.values()].map((e) => e.done));
    await this.pumping;
    await this.options.sequences.idle();
    await this.options.finishedRuns.stop();
    try {
      await this.options.store.releaseLeases(this.options.workerId, this.options.clock.now());
    } catch (thrown) {
      // They expire on their own.
      this.options.logger.warn('could not release this worker\'s leases; they end on their own', { error: toError(thrown).message });
    }
    this.state = 'stopped';
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Before `start()`, for a command that runs one sync or sequence and exits: the worker takes only
   * that run's work, once `takeWorkUntilEnd` names it — the run, its members, and a run of their
   * syncs whose process stopped (its lease ended), which holds them up. Work queued by others (a
   * schedule's run, another command's) is left to the workers that stay: taken up here, it would be
   * stopped when the command exits, and taken over by another worker as attempt 2.
   */
  runForCommand(): void {
    this.forCommand = true;
  }

  /**
   * The run a command started (or joined) and waits for. Once it has ended, this worker claims
   * nothing more; what it runs already goes on until `stop()`.
   */
  takeWorkUntilEnd(run: AwaitedRun): void {
    this.awaited = run;
    void this.pump();
  }

  /** Whether this worker claims work now: running, and its command's run (if any) not ended yet. */
  private get takesWork(): boolean {
    return this.state === 'running' && !this.awaitedEnded && (!this.forCommand || this.awaited !== null);
  }

  /** Whether sync run `run` is work of the command this worker runs for (always, without one). */
  private owns(run: Pick<SyncRun, 'id' | 'sequenceRunId'>): boolean {
    const awaited = this.awaited;
    if (!this.forCommand || awaited === null) return !this.forCommand;
    return 'syncRunId' in awaited ? run.id === awaited.syncRunId : run.sequenceRunId === awaited.sequenceRunId;
  }

  /** Notes the end of a run here; the command's own ends this worker's taking of work. */
  private ended(run: AwaitedRun): void {
    const awaited = this.awaited;
    if (awaited === null) return;
    const same =
      'syncRunId' in awaited ? 'syncRunId' in run && run.syncRunId === awaited.syncRunId : 'sequenceRunId' in run && run.sequenceRunId === awaited.sequenceRunId;
    if (same) this.awaitedEnded = true;
  }

  /** Whether nothing is executing or waiting in this process. */
  get idle(): boolean {
    return this.executions.size === 0 && this.pumping === null;
  }

  /** Stops sync run `id` at once when it executes here, its query or write interrupted: its cancel is recorded in the store. */
  cancelExecution(id: number): void {
    this.executions.get(id)?.controller.abort('cancel' satisfies StopReason);
  }

  /**
   * What a sequence run's advance claims for this worker, in its own transaction: the member runs
   * it starts, as many as slots are free; null (leave them queued) when this worker takes no work,
   * or not that sequence run's (see runForCommand).
   */
  memberClaim(sequenceRunId: string): { lease: LeaseRequest; max: number } | null {
    const max = this.options.maxConcurrentRuns - this.executions.size - this.claiming;
    return this.takesWork && max > 0 && this.owns({ id: -1, sequenceRunId }) ? { lease: this.lease, max } : null;
  }

  /**
   * Starts the member runs an advance of `sequenceRun` created: those it claimed for this worker
   * run at once, the others are claimed when their sync is free.
   */
  startMemberRuns(runs: SyncRun[], sequenceRun: SequenceRun): void {
    for (const run of runs) {
      if (run.status === 'querying' && run.workerId === this.options.workerId) this.execute(run, sequenceRun);
      else void this.tryStart(run);
    }
  }

  /** Told by the sequence runner whenever a sequence run changed. */
  sequenceRunChanged(run: SequenceRun): void {
    this.options.events.emit('sequenceRun:updated', run);
    if (TERMINAL_SEQUENCE_RUN_STATUSES.includes(run.status)) {
      this.ended({ sequenceRunId: run.id });
      this.options.events.emit('sequenceRun:finished', run);
      this.options.finishedRuns.kick();
      // A follow-up run of this sequence may be waiting.
      void this.pump();
    }
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
        this.pumpFailures.success();
      } catch (thrown) {
        this.pumpFailures.failure(toError(thrown).message);
      } finally {
        this.pumping = null;
      }
    })();
    return this.pumping;
  }

  private async pumpOnce(): Promise<void> {
    const { store, clock } = this.options;
    if (!this.takesWork) return;
    if (this.forCommand) return this.pumpForCommand();
    for (const pending of await store.listSequenceRunsByStatus(['pending'])) {
      if (!this.takesWork) return;
      await this.startSequenceRun(pending.id);
    }
    while (this.takesWork && this.hasSlot()) {
      this.claiming++;
      let claimed: SyncRun | null;
      try {
        claimed = await store.claimNextSyncRun(clock.now(), this.lease);
      } finally {
        this.claiming--;
      }
      if (!claimed) break;
      this.execute(claimed);
    }
  }

  private async startSequenceRun(id: string): Promise<void> {
    const { store, clock } = this.options;
    const claimed = await store.claimSequenceRun(id, clock.now());
    if (!claimed) return;
    this.options.logger.info('sequence run started', { sequenceRunId: claimed.id, sequenceId: claimed.sequenceId });
    this.options.events.emit('sequenceRun:updated', claimed);
    await this.options.sequences.advance(claimed.id);
  }

  /** pumpOnce for a command (see runForCommand): its own runs, and runs of their syncs whose process stopped. */
  private async pumpForCommand(): Promise<void> {
    const { store, clock } = this.options;
    const awaited = this.awaited as AwaitedRun;
    if ('sequenceRunId' in awaited && (await store.getSequenceRun(awaited.sequenceRunId))?.status === 'pending') {
      await this.startSequenceRun(awaited.sequenceRunId);
    }
    const now = clock.now();
    const runs = await store.listSyncRuns({ statuses: ['queued', ...ACTIVE_SYNC_RUN_STATUSES], limit: 1000, offset: 0, order: 'asc' });
    const leaseEnded = (run: SyncRun) => run.status !== 'queued' && (run.leaseExpiresAt ?? 0) <= now;
    const own = runs.filter((run) => this.owns(run));
    const held = new Set(own.map((run) => run.syncId));
    const claimable = runs.filter((run) => (this.owns(run) ? run.status === 'queued' || leaseEnded(run) : held.has(run.syncId) && leaseEnded(run)));
    for (const run of claimable) {
      if (!this.takesWork || !this.hasSlot()) return;
      this.claiming++;
      let claimed: SyncRun | null;
      try {
        claimed = await store.claimSyncRun(run.id, clock.now(), this.lease);
      } finally {
        this.claiming--;
      }
      if (claimed) this.execute(claimed);
    }
  }

  private hasSlot(): boolean {
    return this.executions.size + this.claiming < this.options.maxConcurrentRuns;
  }

  /** Claims a run just queued here (a member handed off to) and executes it, if a slot is open. */
  private async tryStart(run: SyncRun): Promise<void> {
    const { store, clock } = this.options;
    if (!this.takesWork || !this.hasSlot() || !this.owns(run)) return;
    this.claiming++;
    let claimed: SyncRun | null = null;
    try {
      claimed = await store.claimSyncRun(run.id, clock.now(), this.lease);
    } catch (thrown) {
      this.options.logger.error('could not claim sync run', { syncRunId: run.id, error: toError(thrown).message });
    } finally {
      this.claiming--;
    }
    if (claimed) this.execute(claimed);
  }

  /** Runs a claimed sync run here; a member's sequence run, when the caller has it, saves reading it for its limits. */
  private execute(claimed: SyncRun, sequenceRun?: SequenceRun): void {
    if (claimed.attempt > 1) {
      this.options.logger.warn('sync run taken over from a worker whose lease ended', {
        syncRunId: claimed.id,
        attempt: claimed.attempt,
      });
    }
    // This process's own earlier attempt (its lease ran out while it was stalled) stops: its
    // writes are refused from now on.
    this.executions.get(claimed.id)?.controller.abort('lease-lost' satisfies StopReason);
    this.options.events.emit('syncRun:updated', claimed);
    const controller = new AbortController();
    const execution: Execution = {
      run: claimed,
      controller,
      ended: null,
      leaseEndsAt: claimed.leaseExpiresAt ?? this.options.clock.now() + this.options.leaseMs,
      leaseLapsed: false,
      done: this.options.syncRunner
        .execute(claimed, {
          signal: controller.signal,
          onProgress: (r) => {
            if (isTerminalSyncRunStatus(r.status) && !execution.handingOff) this.beginHandOff(execution);
            this.options.events.emit('syncRun:updated', r);
          },
        })
        .then(
          (final) => this.finished(execution, final),
          (thrown: unknown) => this.crashed(execution, thrown),
        ),
    };
    this.executions.set(claimed.id, execution);
    if (claimed.sequenceRunId !== null) void this.watchLimit(execution, sequenceRun);
  }

  /**
   * Stops a member's run when it reaches its timeout or its sequence run's deadline (memberLimit):
   * the worker holding the run enforces them, whichever it is, counting from the run's first start.
   */
  private async watchLimit(execution: Execution, known?: SequenceRun): Promise<void> {
    const { store, clock, logger } = this.options;
    const { run } = execution;
    try {
      const sequenceRun = known?.id === run.sequenceRunId ? known : await store.getSequenceRun(run.sequenceRunId as string);
      if (!sequenceRun || run.memberKey === null || this.executions.get(run.id) !== execution) return;
      const limit = memberLimit(sequenceRun, run.memberKey, run.startedAt ?? clock.now());
      if (!limit) return;
      // A timer may wake a little before its time by the clock (Node's count whole milliseconds
      // from the event loop's cached time): the run must stop at its limit or after it, or its end
      // comes before the deadline and is taken for a cancel of its own, which terminates the run
      // in the member's name instead of the deadline's.
      while (limit.at > clock.now()) {
        execution.ended ??= new AbortController();
        await clock.sleep(limit.at - clock.now(), execution.ended.signal);
      }
      execution.controller.abort({ status: limit.status, error: limit.error } satisfies StopReason);
    } catch (thrown) {
      if (execution.ended?.signal.aborted) return;
      logger.warn('could not watch the limits of a member run', { syncRunId: run.id, error: toError(thrown).message });
    }
  }

  /**
   * From the record of a run's end to its hand-off, the relay of finished runs and pumps from
   * notifications wait (both run after the hand-off): the next member starts first.
   */
  private beginHandOff(execution: Execution): void {
    const release = this.options.finishedRuns.hold();
    this.handingOff++;
    execution.handingOff = () => {
      execution.handingOff = () => undefined;
      this.handingOff--;
      release();
    };
  }

  private async finished(execution: Execution, run: SyncRun): Promise<void> {
    execution.ended?.abort();
    try {
      await this.handOff(execution, run);
    } finally {
      execution.handingOff?.();
    }
  }

  private async handOff(execution: Execution, run: SyncRun): Promise<void> {
    if (this.executions.get(run.id) === execution) this.executions.delete(run.id);
    // A run that stopped without ending (shutdown, lease lost) is another worker's now; one a
    // cancel ended in the store while this worker's lease had lapsed was reported by that cancel.
    if (!isTerminalSyncRunStatus(run.status) || run.attempt !== execution.run.attempt) {
      if (this.state === 'running') void this.pump();
      return;
    }
    this.ended({ syncRunId: run.id });
    this.options.events.emit('syncRun:finished', run);
    this.options.finishedRuns.kick();
    if (this.state !== 'running') return;
    if (run.sequenceRunId !== null) await this.options.sequences.advance(run.sequenceRunId).catch((e: unknown) => this.advanceFailed(run, e));
    execution.handingOff?.();
    await this.pump();
  }

  private async crashed(execution: Execution, thrown: unknown): Promise<void> {
    execution.handingOff?.();
    // The runner records every run-level failure itself; reaching here means the store failed. The
    // run keeps its lease until it ends; then any worker takes it over.
    execution.ended?.abort();
    const error = toError(thrown);
    this.options.logger.error('sync run could not be recorded', { syncRunId: execution.run.id, error: error.message });
    this.options.events.emit('syncRun:unrecorded', { run: execution.run, error });
    if (this.executions.get(execution.run.id) === execution) this.executions.delete(execution.run.id);
    if (this.state === 'running') void this.pump();
  }

  private advanceFailed(run: SyncRun, thrown: unknown): void {
    this.options.logger.error('could not hand off to the next member', {
      sequenceRunId: run.sequenceRunId,
      error: toError(thrown).message,
    });
  }

  /**
   * Workers on this host whose process is gone hold leases nobody renews: they are released at
   * once, so a restart after a crash resumes without waiting for them to expire. Only a worker
   * whose id names this host and PID namespace (processHost) counts: another namespace's process
   * ids name other processes here.
   */
  private async releaseDeadLocalWorkers(): Promise<void> {
    const { store, clock, logger } = this.options;
    const here = processHost();
    const dead = new Set<string>();
    for (const lease of await store.listLeases()) {
      if (lease.workerId === this.options.workerId || dead.has(lease.workerId)) continue;
      const [host, pid] = lease.workerId.split('/');
      if (host !== here || !pid || !/^\d+$/.test(pid) || processAlive(Number(pid))) continue;
      dead.add(lease.workerId);
    }
    for (const workerId of dead) {
      const released = await store.releaseLeases(workerId, clock.now());
      if (released > 0) logger.warn('released the leases of a worker on this host whose process is gone', { workerId, runs: released });
    }
  }

  /** Renews this worker's leases every third of their length; a run whose lease was lost stops. */
  private async heartbeat(signal: AbortSignal): Promise<void> {
    const { store, clock, logger } = this.options;
    const every = Math.max(1, Math.floor(this.options.leaseMs / 3));
    while (!signal.aborted) {
      try {
        await clock.sleep(every, signal);
      } catch {
        return;
      }
      const beating = new Map(this.executions);
      const ids = [...beating.keys()];
      if (ids.length === 0) continue;
      const now = clock.now();
      try {
        const held = new Set(await store.renewLeases(ids, now, this.lease));
        for (const id of held) {
          const execution = beating.get(id);
          if (execution) Object.assign(execution, { leaseEndsAt: now + this.options.leaseMs, leaseLapsed: false });
        }
        for (const id of ids) {
          // A run that ended (or is ending) meanwhile holds no lease any more, rightly.
          if (held.has(id) || this.executions.get(id) !== beating.get(id) || beating.get(id)?.handingOff) continue;
          // Its end may be recorded and not yet seen here (this attempt, ended): that is no loss.
          const latest = await store.getSyncRun(id);
          if (latest && latest.attempt === beating.get(id)?.run.attempt && isTerminalSyncRunStatus(latest.status)) continue;
          logger.warn('lost the lease on a sync run; another worker took it over', { syncRunId: id });
          this.executions.get(id)?.controller.abort('lease-lost' satisfies StopReason);
        }
        this.heartbeatFailures.success();
      } catch (thrown) {
        // The store is unreachable: the runs go on and renew at the next beat; if the leases end
        // meanwhile, their writes are refused and they stop.
        this.heartbeatFailures.failure(toError(thrown).message);
        this.logLapsedLeases(beating);
      }
    }
  }

  /**
   * Stops the runs executing here that another process asked to cancel (`lockstep sync cancel`, a
   * sequence run's cancel): the request is in the store only, and a run waiting on a slow query or
   * a write that does not answer would otherwise see it only at its next batch. A store with
   * notifications says when a run is asked to cancel, and is read here at each poll in case a
   * notification was lost; another is read every CANCEL_CHECK_MS while runs execute.
   */
  private async watchCancels(signal: AbortSignal): Promise<void> {
    const { store, clock } = this.options;
    const every = store.watch ? Math.max(CANCEL_CHECK_MS, this.options.pollIntervalMs) : CANCEL_CHECK_MS;
    while (!signal.aborted) {
      try {
        await clock.sleep(every, signal);
      } catch {
        return;
      }
      await this.checkCancels();
    }
  }

  /** Reads the cancel flag of each run executing here and stops those asked to cancel. Calls coalesce. */
  private async checkCancels(): Promise<void> {
    if (this.checkingCancels) {
      this.checkCancelsAgain = true;
      return;
    }
    this.checkingCancels = true;
    try {
      do {
        this.checkCancelsAgain = false;
        for (const [id, execution] of [...this.executions]) {
          if (execution.controller.signal.aborted || execution.handingOff) continue;
          const latest = await this.options.store.getSyncRun(id);
          if (!latest?.cancelRequested || latest.attempt !== execution.run.attempt || this.executions.get(id) !== execution) continue;
          execution.controller.abort('cancel' satisfies StopReason);
        }
      } while (this.checkCancelsAgain && this.state === 'running');
    } catch {
      // The store is out of reach (the heartbeat says so): the runs look again at their next batch, and here at the next check.
    } finally {
      this.checkingCancels = false;
    }
  }

  /** Says once per run that its lease ended unrenewed: another worker may be taking it over. */
  private logLapsedLeases(beating: Map<number, Execution>): void {
    const now = this.options.clock.now();
    for (const [id, execution] of beating) {
      if (execution.leaseLapsed || execution.leaseEndsAt > now || this.executions.get(id) !== execution) continue;
      execution.leaseLapsed = true;
      this.options.logger.warn(
        'the lease on a sync run ended without a renewal, the store out of reach: another worker may take the run over; ' +
          "this attempt's writes are refused once another holds it, and it stops when the store answers",
        { syncRunId: id, attempt: execution.run.attempt, leaseEndedAt: new Date(execution.leaseEndsAt).toISOString() },
      );
    }
  }

  private logStuckRun(sequenceRunId: string, thrown: unknown): void {
    this.options.logger.error('could not advance a running sequence run; if this repeats, cancel it and start a new run', {
      sequenceRunId,
      fix: `lockstep sequence cancel ${sequenceRunId}`,
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
      // Self-healing: a hand-off lost to an error (a locked store, a worker that died between a
      // member's end and its hand-off) is retried here.
      try {
        await this.releaseDeadLocalWorkers();
        // A run with a member running is handed off when that member ends, by whichever worker
        // ends it; one with a member's run queued (its sync busy, or no slot free yet), when that
        // run ends. Advancing them here would decide nothing, once a second for every such run —
        // but its deadline is checked here, as a stalled member may never end.
        const now = this.options.clock.now();
        for (const run of await this.options.store.listSequenceRunsByStatus(['running'])) {
          const inProgress = run.members.some((m) => m.status === 'running' || (m.status === 'pending' && m.syncRunId !== null));
          if (run.cancelRequested || deadlinePassed(run, now) || !inProgress) {
            await this.options.sequences.advance(run.id).catch((thrown: unknown) => this.logStuckRun(run.id, thrown));
          }
        }
        this.pollFailures.success();
      } catch (thrown) {
        this.pollFailures.failure(toError(thrown).message);
      }
      await this.pump();
    }
  }
}

/** Whether a process with this pid exists on this host. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}


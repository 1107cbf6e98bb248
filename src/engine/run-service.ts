/**
 * The run service: what the API, the CLI, the scheduler and the webhook receiver call to queue runs,
 * cancel them and wait for their end. It writes to the store and nudges this process's worker; the
 * worker alone claims and executes. Any process may trigger or cancel a run that another process
 * executes: the store is where the request lands, and the worker holding the run sees it there.
 */
import { ErrorCode, LockstepError, NotFoundError, ValidationError, toError } from '../core/errors.js';
import { closeMatches } from '../core/hints.js';
import type { Clock, FiredRun, FiredRunQueue, Logger, SequenceRunStore, SyncRunStore, WorkspaceStore } from '../core/ports.js';
import type { SequenceRun, SyncRun, SyncRunOptions, Trigger } from '../core/runs.js';
import { TERMINAL_SEQUENCE_RUN_STATUSES, isTerminalSyncRunStatus } from '../core/runs.js';
import { decideSequenceResume } from '../core/sequence-rules.js';
import { UNKNOWN_SLUG_FIX, unknownSlugError } from '../core/unknown-slug.js';
import type { Schedule } from '../core/workspace.js';
import type { EngineEventEmitter } from './events.js';
import type { FinishedRunRelay } from './finished-run-relay.js';
import type { SequenceRunner } from './sequence-runner.js';

/**
 * The part of this process's worker the service drives. A worker that is not started (a command
 * that only queues or cancels) does nothing on either call.
 */
export interface LocalWorker {
  /** Claims what is queued now, so a run queued in this process starts here at once. */
  pump(): Promise<void>;
  /** Stops sync run `id` at once when it executes here (its cancel is recorded). */
  cancelExecution(id: number): void;
}

export interface RunServiceOptions {
  store: WorkspaceStore & SyncRunStore & SequenceRunStore & FiredRunQueue;
  clock: Clock;
  logger: Logger;
  events: EngineEventEmitter;
  /** The worker of this process, started or not. */
  worker: LocalWorker;
  /**
   * The sequence runner the worker is handed too: a cancel moves a sequence run on through it, so
   * the advances of one run in this process queue up rather than contend.
   */
  sequences: Pick<SequenceRunner, 'advance'>;
  /** The relay of finished runs, told when a cancel ends a run that had not started. */
  finishedRuns: Pick<FinishedRunRelay, 'kick'>;
}

/** Sequence run ids are UUIDs. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class RunService {
  constructor(private readonly options: RunServiceOptions) {}

  /**
   * Queues a run of a sync (by id or slug); a run already queued is shared. `fullResync` and
   * `resetCDC` together are refused: one sends every row, the other none.
   */
  async triggerSync(
    ref: number | string,
    options: Partial<SyncRunOptions> = {},
    trigger: Trigger = { type: 'manual', detail: null },
  ): Promise<{ run: SyncRun; created: boolean }> {
    const { store, clock } = this.options;
    if (options.fullResync && options.resetCDC) {
      throw new ValidationError([
        {
          path: 'resetCDC',
          message: 'fullResync and resetCDC contradict each other: fullResync sends every row, resetCDC sends none and only records the model as delivered',
          hint: 'set one of them',
        },
      ]);
    }
    const sync = await store.getSync(ref);
    if (!sync) throw await unknownSlugError(store, 'sync', String(ref), { fix: UNKNOWN_SLUG_FIX });
    const result = await store.enqueueSyncRun(
      {
        syncId: sync.id,
        trigger,
        options: {
          fullResync: options.fullResync ?? false,
          resetCDC: options.resetCDC ?? false,
          ...(options.allowMassDelete ? { allowMassDelete: true } : {}),
          ...(options.fullCompare ? { fullCompare: true } : {}),
        },
      },
      clock.now(),
    );
    void this.options.worker.pump();
    return result;
  }

  /** Queues a run of a sequence (by id or slug); a run already queued is shared. */
  async triggerSequence(
    ref: number | string,
    trigger: Trigger = { type: 'manual', detail: null },
  ): Promise<{ run: SequenceRun; created: boolean }> {
    const { store, clock } = this.options;
    const sequence = await store.getSequence(ref);
    if (!sequence) throw await unknownSlugError(store, 'sequence', String(ref), { fix: UNKNOWN_SLUG_FIX });
    const result = await store.enqueueSequenceRun(sequence, trigger, clock.now());
    void this.options.worker.pump();
    return result;
  }

  /**
   * Queues a run of a sync or sequence (by slug) once per `key` — a schedule's due time, an upstream
   * run's end, a webhook delivery's target — recording the key in the run's transaction
   * (store.enqueueFiredRun): a caller that failed or died before it was answered calls again, and the
   * run is queued exactly once. Null when the key was recorded before, or when `still` refuses the
   * sync or sequence as stored now (nothing is recorded then); NotFound when there is no such sync
   * or sequence (nothing is recorded).
   */
  async queueFiredRun(
    key: string,
    target: { kind: 'sync' | 'sequence'; slug: string },
    trigger: Trigger,
    still?: (stored: { enabled: boolean; schedule: Schedule }) => boolean,
  ): Promise<{ runId: string; created: boolean } | null> {
    const { store, clock } = this.options;
    let run: FiredRun;
    if (target.kind === 'sync') {
      const sync = await store.getSync(target.slug);
      if (!sync) throw await unknownSlugError(store, 'sync', target.slug, { fix: UNKNOWN_SLUG_FIX });
      if (still && !still(sync)) return null;
      run = { kind: 'sync', run: { syncId: sync.id, trigger, options: { fullResync: false, resetCDC: false } } };
    } else {
      const sequence = await store.getSequence(target.slug);
      if (!sequence) throw await unknownSlugError(store, 'sequence', target.slug, { fix: UNKNOWN_SLUG_FIX });
      if (still && !still(sequence)) return null;
      run = { kind: 'sequence', sequence, trigger };
    }
    const queued = await store.enqueueFiredRun(key, run, clock.now());
    if (queued) void this.options.worker.pump();
    return queued;
  }

  /**
   * Queues a run that resumes failed or cancelled sequence run `id` (SPEC §3.4): its members that
   * finished well are carried over, the rest run. Refused, changing nothing, when the run is still
   * queued or running, ended done, was resumed already, or its sequence's members changed since (see decideSequenceResume); an
   * unknown id is named with the closest failed run's id.
   */
  async resumeSequenceRun(id: string, trigger: Trigger = { type: 'manual', detail: null }): Promise<SequenceRun> {
    const { store, clock } = this.options;
    const known = UUID.test(id) ? await store.getSequenceRun(id) : null;
    if (!known) throw await this.unknownSequenceRun(id);
    const run = await store.resumeSequenceRun(id, decideSequenceResume, trigger, clock.now());
    void this.options.worker.pump();
    return run;
  }

  /**
   * Cancels a sync run: a queued one at once, and an interrupted one (its lease ended, no worker
   * took it over) too; a running one at once, in whichever process executes it.
   */
  async cancelSyncRun(id: number): Promise<SyncRun> {
    const { store, events, worker, finishedRuns, clock } = this.options;
    const run = await store.requestSyncRunCancel(id, clock.now());
    // A run executing here stops at once; one executing in another process too, once its worker
    // reads the request in the store (Worker.watchCancels).
    worker.cancelExecution(id);
    // A queued or interrupted run ends at once: its end is in the outbox (the audit log keeps it too), and it is
    // a finished run to this process's metrics and to whoever waits for it.
    if (run.status !== 'cancelled') return run;
    events.emit('syncRun:finished', run);
    finishedRuns.kick();
    if (run.sequenceRunId !== null) await this.options.sequences.advance(run.sequenceRunId);
    return run;
  }

  /** Cancels a sequence run: running members are cancelled, the rest skipped. */
  async cancelSequenceRun(id: string): Promise<SequenceRun> {
    const { store, events, finishedRuns } = this.options;
    const run = await store.requestSequenceRunCancel(id);
    // A pending run ends at once, as a queued sync run does.
    if (run.status === 'cancelled') {
      events.emit('sequenceRun:finished', run);
      finishedRuns.kick();
    }
    if (run.status === 'running') await this.options.sequences.advance(id);
    return (await store.getSequenceRun(id)) ?? run;
  }

  /** Resolves with the sequence run once it is done, failed or cancelled. */
  waitForSequenceRun(id: string): Promise<SequenceRun> {
    return this.waitFor(
      () => this.options.store.getSequenceRun(id),
      (run) => TERMINAL_SEQUENCE_RUN_STATUSES.includes(run.status),
      (resolve) => this.options.events.on('sequenceRun:finished', (run) => run.id === id && resolve(run)),
      (member) => member.sequenceRunId === id,
      `sequence run ${id}`,
    );
  }

  /** Resolves with the sync run once it reached a terminal status. */
  waitForSyncRun(id: number): Promise<SyncRun> {
    return this.waitFor(
      () => this.options.store.getSyncRun(id),
      (run) => isTerminalSyncRunStatus(run.status),
      (resolve) => this.options.events.on('syncRun:finished', (run) => run.id === id && resolve(run)),
      (run) => run.id === id,
      `sync run ${id}`,
    );
  }

  /** The error for a resume of `text`, no sequence run's id: names the failed run meant, when one is close. */
  private async unknownSequenceRun(text: string): Promise<NotFoundError> {
    const { store } = this.options;
    const latestFailed = { limit: 100, offset: 0, order: 'desc' as const, statuses: ['failed' as const, 'cancelled' as const] };
    const sequence = await store.getSequence(text);
    if (sequence && sequence.slug === text) {
      const [latest] = await store.listSequenceRuns({ ...latestFailed, limit: 1, sequenceId: sequence.id });
      return new NotFoundError(
        `no sequence run "${text}": "${text}" is a sequence, and resume takes a run's id` +
          (latest ? ` — its latest ${latest.status} run is ${latest.id}` : ' — it has no failed or cancelled run'),
      );
    }
    const failed = (await store.listSequenceRuns(latestFailed)).map((r) => r.id);
    const lower = text.toLowerCase();
    const [near] = lower.length >= 4 ? failed.filter((id) => id.startsWith(lower)) : [];
    const guess = near ?? closeMatches(text, failed, 1)[0];
    return new NotFoundError(`no sequence run "${text}"${guess ? ` (did you mean ${guess}?)` : ''} — resume takes the id of a failed or cancelled sequence run`);
  }

  private async waitFor<T>(
    load: () => Promise<T | null>,
    done: (value: T) => boolean,
    subscribe: (resolve: (value: T) => void) => () => void,
    concerns: (run: SyncRun) => boolean,
    what: string,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (end: () => void) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        clearInterval(timer);
        end();
      };
      const finish = (value: T) => settle(() => resolve(value));
      const fail = (error: Error) => settle(() => reject(error));
      const offFinished = subscribe(finish);
      // A run of this process that could not record its end will not finish here (see unrecorded).
      const offUnrecorded = this.options.events.on('syncRun:unrecorded', ({ run, error }) => concerns(run) && fail(unrecorded(run, error)));
      const unsubscribe = () => {
        offFinished();
        offUnrecorded();
      };
      const check = () =>
        load().then(
          (value) => {
            if (value === null) fail(new NotFoundError(`${what} does not exist`));
            else if (done(value)) finish(value);
          },
          (err: unknown) => this.options.logger.warn('could not read run state', { what, error: toError(err).message }),
        );
      // Another process may finish the run; the store is the truth, checked now and then.
      const timer = setInterval(() => void check(), 500);
      void check();
    });
  }
}

/**
 * What a caller waiting on a run learns when the run stopped in this process and the store could
 * not take its end: the store's own message, and that the run is finished later, not lost.
 */
function unrecorded(run: SyncRun, error: Error): LockstepError {
  return new LockstepError(
    ErrorCode.Store,
    `sync run ${run.id} stopped, and its end could not be recorded: ${error.message}. The run keeps its place in the store; once the store can be written again, the next lockstep command or serving process takes it over`,
    { cause: error },
  );
}

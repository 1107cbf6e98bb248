/**
 * Delivery's side of a run's pipeline: planned batches sent to the destination's writer, as many
 * at once as it takes, transient failures retried with the run's backoff policy, rows answered
 * `retryable` sent again, each row's outcome collected (delivered, or refused as a rejected row)
 * and each written batch handed to the run's bookkeeping in the order the batches were planned.
 * The destination's rate limiter reports its waits to the run's phase clock by itself.
 */
import { MAX_RETRY_AFTER_SECONDS, backoffDelay, withBackoff, type BackoffPolicy } from '../core/backoff.js';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { lookupKeys } from '../core/keys.js';
import type { Clock, DestinationWriter, Logger, RowOutcome, Store, WriteOperation } from '../core/ports.js';
import type { PhaseClock } from '../core/run-phases.js';
import type { RejectedRow } from '../core/runs.js';
import type { PlannedOp } from './planned-rows.js';
import { bump, type BatchDelivery } from './planning.js';
import { RunStopped, emptyCounts, type RunBookkeeping, type StopReason, type WrittenBatch } from './run-bookkeeping.js';
import { plannerProgress } from './warehouse-planner.js';

/** How often, at most, the store is asked whether the run was cancelled or taken over (see checkStop). */
const STOP_CHECK_EVERY_MS = 100;

/** A destination field filled with the id a parent sync recorded for the row's value in it. */
export interface Lookup {
  /** Index of the field in `WriteTarget.columns`. */
  column: number;
  /** The model column, for messages. */
  from: string;
  /** The parent sync's slug and id. */
  sync: string;
  syncId: number;
}

/** A batch handed to the destination: its rows' outcomes arrive when it is written. */
interface BatchInFlight {
  batch: PlannedOp[];
  outcomes: Promise<RowOutcome[]>;
  /** The outcomes have arrived (or the write failed). */
  written: boolean;
}

/** What retrying a query or a write needs of the run. */
export interface RetrySettings {
  retry: BackoffPolicy;
  clock: Clock;
  logger: Logger;
  /** Stops the retries: a stop while waiting stops the run. */
  signal: AbortSignal;
  /** Where the waits are counted (see backoffWait). */
  phases: PhaseClock;
}

export interface DeliveryOptions extends RetrySettings {
  /** The run and its attempt: a stop check sees whether another worker took the run over. */
  runId: number;
  attempt: number;
  /** The destination's slug, for messages. */
  destination: string;
  /** Rows per batch: the sync's `batchSize`, at most the destination's `maxBatchSize`. */
  batchSize: number;
  /** Asked whether the run was cancelled, and for parents' recorded ids. */
  store: Store;
  /** Where written batches go: grouped for their commit, or, once the pipeline stopped, committed at once. */
  bookkeeping: Pick<RunBookkeeping, 'add' | 'commitGrouped' | 'persist' | 'delivering'>;
  /** With the planner in the warehouse, a written batch carries its last row and rejected keys (its watermark). */
  plannerInWarehouse: boolean;
}

/**
 * What a retry logs. A query's retry starts the run's pipeline again: the failure may have been the
 * source's read, or the destination's preparation (a describe, a schema read), not only a query.
 */
const RETRY_MESSAGES = {
  query: 'transient error reading the model or preparing the destination, reading again',
  write: 'transient write error, retrying',
} as const;

/**
 * Retries transient failures with the run's backoff policy (core/backoff.ts); a stop while waiting stops the run.
 * A query waits out its backoff in the run's main loop; a write beside it (run-phases.ts).
 */
export async function withRetries<T>(what: 'query' | 'write', settings: RetrySettings, fn: () => Promise<T>): Promise<T> {
  const { retry, clock, logger, signal, phases } = settings;
  const sleep = (ms: number, s?: AbortSignal) =>
    what === 'query' ? phases.during('retry', clock.sleep(ms, s)) : backoffWait(clock.sleep(ms, s), phases);
  try {
    return await withBackoff(fn, {
      policy: retry,
      clock: { now: () => clock.now(), sleep },
      signal,
      onRetry: ({ attempt, delayMs, error }) => logger.warn(RETRY_MESSAGES[what], { attempt, delayMs: Math.round(delayMs), error: error.message }),
    });
  } catch (thrown) {
    if (signal.aborted && !(thrown instanceof LockstepError)) throw new RunStopped(signal.reason as StopReason);
    throw thrown;
  }
}

/** A backoff of a write, counted as the run's `retry` wait while it lasts. */
async function backoffWait(sleeping: Promise<void>, phases: PhaseClock): Promise<void> {
  phases.begin('retry');
  try {
    await sleeping;
  } finally {
    phases.end('retry');
  }
}

/**
 * How long a shutdown waits for the writes in flight before interrupting them, ms: a destination
 * that does not answer would otherwise hold the process for its whole request timeout, past the
 * few seconds a service manager (systemd, Kubernetes: 30 s) waits before killing it, and the run's
 * lease would then have to run out before another worker could take it over.
 */
export const SHUTDOWN_WRITE_GRACE_MS = 10_000;

/**
 * Aborts when the run is cancelled or its lease moved on, so a write in flight is interrupted (its
 * connection closed) instead of waited for; on a shutdown the batches being written may finish
 * within `graceMs` (default: SHUTDOWN_WRITE_GRACE_MS), and are interrupted then: their rows are
 * not committed, and the run's next attempt sends them again.
 */
export function interruptingWrites(signal: AbortSignal, graceMs = SHUTDOWN_WRITE_GRACE_MS): AbortSignal {
  const controller = new AbortController();
  const onAbort = () => {
    if ((signal.reason as StopReason) !== 'shutdown') {
      controller.abort(signal.reason);
      return;
    }
    // A real-time bound, as a request timeout is; it does not keep the process alive.
    setTimeout(() => controller.abort(signal.reason), graceMs).unref();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return controller.signal;
}

/** One run's delivery: the planned batches it sends (PlannedBatches calls `send`) and those being written. */
export class Delivery implements BatchDelivery {
  /** Set once the model's columns are known (not for resetCDC, which sends nothing). */
  writer: DestinationWriter | null = null;
  /** Fields whose value is a parent sync's recorded id (mappings with `lookup`), once the target is known. */
  lookups: Lookup[] = [];
  /** The batches being written, oldest first (at most the writer's `concurrentWrites`), with the destination's answers once written. */
  inflight: BatchInFlight[] = [];
  readonly batchSize: number;
  /**
   * When the store was last asked for a cancel (performance.now()); a double from the start (see
   * PlannedBatches.opened).
   */
  private lastStopCheck = -Infinity;

  constructor(private readonly options: DeliveryOptions) {
    this.batchSize = options.batchSize;
  }

  /**
   * Starts writing a batch and returns without waiting for the write: the next batch is planned
   * meanwhile. Up to the writer's `concurrentWrites` batches are written at once (each on its own;
   * a run never plans one key twice, so they touch different rows); when that many are in flight,
   * the oldest is waited for and its commit to the snapshot started. Commits happen in order, each
   * after its write. Cancellation is checked here, at the batch boundary.
   */
  async send(batch: PlannedOp[]): Promise<void> {
    const writer = this.writer as DestinationWriter;
    while (this.inflight.length >= Math.max(1, writer.concurrentWrites ?? 1)) await this.retire();
    await this.checkStop();
    await this.options.bookkeeping.delivering();
    // What the writer does before its first wait (encoding the batch) is delivery's time.
    const { phases } = this.options;
    const was = phases.enter('deliver');
    const outcomes = this.write(writer, batch);
    phases.enter(was);
    const delivery: BatchInFlight = { batch, outcomes, written: false };
    // Awaited by retire() or at the end; a failure is not lost meanwhile.
    outcomes.then(
      () => (delivery.written = true),
      () => (delivery.written = true),
    );
    this.inflight.push(delivery);
  }

  /**
   * Waits for the oldest batch in flight to be written, then hands it to the bookkeeping, which
   * starts committing it to the snapshot without waiting for that commit (RunBookkeeping.commitGrouped).
   */
  private async retire(): Promise<void> {
    const oldest = this.inflight[0] as BatchInFlight;
    // A failed write throws here with the batch still in flight: the pipeline's cleanup ignores it.
    const written = await this.options.phases.during('deliver', oldest.outcomes);
    this.inflight.shift();
    const { bookkeeping } = this.options;
    if (bookkeeping.add(this.collect(oldest.batch, written))) await bookkeeping.commitGrouped();
  }

  /** Waits for every batch in flight, oldest first, each handed to the bookkeeping as it is written. */
  async drain(): Promise<void> {
    while (this.inflight.length > 0) await this.retire();
  }

  /** The pipeline stopped: the batches being written leave delivery, for settleLeft. */
  takeInflight(): BatchInFlight[] {
    const left = this.inflight;
    this.inflight = [];
    return left;
  }

  /**
   * The batches that were being written when the pipeline stopped finish, and those delivered are
   * committed at once, after the bookkeeping's commits under way (RunBookkeeping.settleCommits).
   */
  async settleLeft(left: BatchInFlight[]): Promise<void> {
    for (const delivery of left) {
      try {
        await this.options.bookkeeping.persist(this.collect(delivery.batch, await this.options.phases.during('deliver', delivery.outcomes)));
      } catch {
        // the write or its commit failed: the error that stopped the pipeline is the one reported
      }
    }
  }

  /** What a written batch leaves to record: delivered rows for the snapshot (in columns), removed keys, refused rows. */
  private collect(batch: PlannedOp[], outcomes: RowOutcome[]): WrittenBatch {
    if (outcomes.length !== batch.length) {
      throw new LockstepError(
        ErrorCode.Internal,
        `destination "${this.options.destination}" answered ${outcomes.length} outcomes for a batch of ${batch.length} rows`,
      );
    }
    const { runId } = this.options;
    // Delivered rows in columns: a key and two hash words each, no pair or hash string per row.
    const keys: string[] = [];
    const hashes = new Uint32Array(2 * batch.length);
    const deletes: string[] = [];
    const ids: Array<[string, string]> = [];
    const rejected: RejectedRow[] = [];
    const successful = emptyCounts();
    const failed = emptyCounts();
    // Planned in the warehouse, the store keeps no snapshot of the rows (the source's planner
    // records them; removed keys still leave the recorded ids).
    const snapshot = !this.options.plannerInWarehouse;
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i] as PlannedOp;
      const outcome = outcomes[i] as RowOutcome;
      if (outcome.ok) {
        bump(successful, op.change);
        if (op.change === 'removed') deletes.push(op.keyText);
        else {
          if (outcome.id !== undefined) ids.push([op.keyText, outcome.id]);
          if (!snapshot) continue;
          hashes[2 * keys.length] = op.hashHigh;
          hashes[2 * keys.length + 1] = op.hashLow;
          keys.push(op.keyText);
        }
      } else {
        bump(failed, op.change);
        rejected.push({ syncRunId: runId, key: op.keyText, op: op.change, reason: outcome.reason });
      }
    }
    const planner = this.options.plannerInWarehouse ? plannerProgress(batch, (i) => (outcomes[i] as RowOutcome).ok) : null;
    return { rows: { keys, hashes: hashes.subarray(0, 2 * keys.length) }, deletes, ids, rejected, successful, failed, count: batch.length, planner };
  }

  /**
   * Throws RunStopped when the run was cancelled or taken over: by this process (its signal), or
   * through the store by another one. Also asked between the model's read batches, so a run that
   * reads for long with little or nothing to send stops there too.
   */
  async checkStop(): Promise<void> {
    const { signal } = this.options;
    if (signal.aborted) throw new RunStopped(signal.reason as StopReason);
    // Another process (the CLI, a second worker) may have asked for the cancel through the store;
    // asked at most every STOP_CHECK_EVERY_MS.
    const now = performance.now();
    if (now - this.lastStopCheck < STOP_CHECK_EVERY_MS) return;
    this.lastStopCheck = now;
    const { store, runId, attempt } = this.options;
    const current = await store.getSyncRun(runId);
    if (current && current.attempt !== attempt) throw new RunStopped('lease-lost');
    if (current?.cancelRequested) throw new RunStopped('cancel');
  }

  /**
   * Writes a batch and answers per row: rows whose parent id is not recorded yet are refused
   * without being sent; a failure of the whole batch is retried (withRetries); rows the destination
   * answered `retryable` are sent again after a backoff, and refused with their last message when
   * the attempts run out.
   */
  private async write(writer: DestinationWriter, batch: PlannedOp[]): Promise<RowOutcome[]> {
    let first: RowOutcome[] | null = null;
    if (this.lookups.length === 0) {
      // The common case: the batch as planned, answered without a row to send again.
      first = await this.withRetries(() => writer.write(batch));
      if (!first.some((answer) => !answer.ok && answer.retryable === true)) return first;
    }
    const outcomes: RowOutcome[] = new Array(batch.length);
    let ops: WriteOperation[] = batch;
    let places = batch.map((_, i) => i);
    if (this.lookups.length > 0) ({ ops, places } = await this.resolveLookups(batch, outcomes));
    const { retry, clock, logger, signal, phases } = this.options;
    for (let attempt = 1; ops.length > 0; attempt++) {
      const sent = ops;
      const answers =
        attempt === 1 && first !== null ? first : attempt === 1 ? await this.withRetries(() => writer.write(sent)) : await this.resend(writer, sent);
      if (answers.length !== sent.length) {
        throw new LockstepError(ErrorCode.Internal, `destination "${this.options.destination}" answered ${answers.length} outcomes for a batch of ${sent.length} rows`);
      }
      const again: number[] = [];
      let retryAfter: number | undefined;
      answers.forEach((answer, i) => {
        outcomes[places[i] as number] = answer;
        if (!answer.ok && answer.retryable && attempt < retry.attempts) {
          again.push(i);
          retryAfter = Math.max(retryAfter ?? 0, answer.retryAfterSeconds ?? 0);
        }
      });
      // Rows the destination asks to send again only after longer than a run waits stay refused: they go again on the next run.
      if (again.length === 0 || (retryAfter ?? 0) > MAX_RETRY_AFTER_SECONDS) break;
      const delayMs = backoffDelay(retry, attempt, retryAfter);
      logger.warn('rows answered as retryable, sending them again', { syncRunId: this.options.runId, rows: again.length, attempt, delayMs: Math.round(delayMs) });
      try {
        await backoffWait(clock.sleep(delayMs, signal), phases);
      } catch {
        throw new RunStopped(signal.reason as StopReason);
      }
      await this.checkStop();
      ops = again.map((i) => sent[i] as WriteOperation);
      places = again.map((i) => places[i] as number);
    }
    return outcomes;
  }

  /**
   * A write retried with the run's backoff. Before each retry the store is asked whether the run was
   * cancelled (by another process: `lockstep sync cancel`), so a batch the destination keeps
   * failing does not hold a cancelled run until its attempts run out.
   */
  private async withRetries(write: () => Promise<RowOutcome[]>): Promise<RowOutcome[]> {
    let attempts = 0;
    return withRetries('write', this.options, async () => {
      if (attempts++ > 0) await this.checkStop();
      return write();
    });
  }

  /**
   * Sends again rows answered retryable. The rest of their batch went through, so a transient
   * failure of them all (an HTTP destination whose only request left answers 503) answers each of
   * them retryable: the caller's attempts and backoff decide, and they are refused when the
   * attempts run out, rather than failing the run and its delivered rows.
   */
  private async resend(writer: DestinationWriter, ops: WriteOperation[]): Promise<RowOutcome[]> {
    try {
      return await writer.write(ops);
    } catch (thrown) {
      const { signal } = this.options;
      if (signal.aborted && !(thrown instanceof LockstepError)) throw new RunStopped(signal.reason as StopReason);
      if (!(thrown instanceof LockstepError) || !thrown.retryable) throw thrown;
      const answer: RowOutcome = { ok: false, reason: thrown.message, retryable: true, retryAfterSeconds: thrown.retryAfterSeconds };
      return ops.map(() => answer);
    }
  }

  /** The batch with looked-up fields replaced by the parents' ids; rows without one are refused in `outcomes`. */
  private async resolveLookups(batch: PlannedOp[], outcomes: RowOutcome[]): Promise<{ ops: WriteOperation[]; places: number[] }> {
    const { store } = this.options;
    const { lookups } = this;
    const ids = await Promise.all(
      lookups.map(async (lookup) => {
        const keys = new Set<string>();
        for (const op of batch) if (op.change !== 'removed') for (const k of lookupKeys(op.values[lookup.column] ?? null)) keys.add(k);
        return store.snapshots.recordIdsGet(lookup.syncId, [...keys]);
      }),
    );
    const unrecorded = await this.deliveredWithoutIds(batch, ids);
    const ops: WriteOperation[] = [];
    const places: number[] = [];
    batch.forEach((op, i) => {
      if (op.change === 'removed') {
        ops.push(op);
        places.push(i);
        return;
      }
      const values = [...op.values];
      for (const [n, lookup] of lookups.entries()) {
        const value = values[lookup.column] ?? null;
        // An empty parent key names no parent, as lookupKeys reads it: the row goes without one.
        if (value === null || value === '') {
          values[lookup.column] = null;
          continue;
        }
        const id = lookupKeys(value).map((k) => ids[n]?.get(k)).find((found) => found !== undefined);
        if (id === undefined) {
          // A parent in the parent sync's snapshot without an id is never sent again by that sync, so
          // waiting for it would keep this row out for good.
          const reason = lookupKeys(value).some((k) => unrecorded[n]?.has(k))
            ? `${lookup.from} ${String(value)}: ${lookup.sync} counts it as delivered but recorded no id for it (its snapshot was rebuilt by a resetCDC run, which sends nothing and so gets no ids)` +
              ` — run ${lookup.sync} once with fullResync to record its ids; this row is sent again on every run until then`
            : `${lookup.from} ${String(value)} has not been delivered by ${lookup.sync} yet (no id recorded for it); this row is sent again on the next run`;
          outcomes[i] = { ok: false, reason };
          return;
        }
        values[lookup.column] = id;
      }
      ops.push({ kind: op.kind, key: op.key, values });
      places.push(i);
    });
    return { ops, places };
  }

  /** Per lookup, the parent keys of the batch with no recorded id that the parent sync's snapshot holds (one read per lookup with such keys). */
  private async deliveredWithoutIds(batch: PlannedOp[], ids: Array<Map<string, string>>): Promise<Array<Set<string>>> {
    const { store } = this.options;
    return Promise.all(
      this.lookups.map(async (lookup, n) => {
        const missing = new Set<string>();
        for (const op of batch) {
          if (op.change === 'removed') continue;
          const keys = lookupKeys(op.values[lookup.column] ?? null);
          if (keys.length > 0 && !keys.some((k) => ids[n]?.has(k))) for (const k of keys) missing.add(k);
        }
        if (missing.size === 0) return new Set<string>();
        return new Set((await store.snapshots.get(lookup.syncId, [...missing])).keys());
      }),
    );
  }
}

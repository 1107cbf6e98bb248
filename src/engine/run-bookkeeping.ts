/**
 * A sync run's bookkeeping: its record in the store (RunRecord: every update, the run's progress,
 * its phase times, how it ends) and what its written batches leave to commit (RunBookkeeping:
 * delivered rows into the snapshot, or the planner's watermark in the warehouse, refused rows as
 * rejected, the model's cursor once everything is delivered). Delivery (delivery.ts) hands it each
 * written batch's rows; the sync runner's pipeline decides when the run ends.
 */
import { ErrorCode, LockstepError, storeErrorForReaders, toError } from '../core/errors.js';
import type { Clock, Logger, RunFence, SnapshotCursor, SnapshotRows, Store, SyncRunPatch, WarehousePlanner } from '../core/ports.js';
import type { ApiUsage, OperationCounts, RejectedRow, SyncRun } from '../core/runs.js';
import type { PhaseClock } from '../core/run-phases.js';
import { mergeProgress, type PlannerProgress } from './warehouse-planner.js';

/**
 * Why a run stopped early: a user cancelled it, the worker is shutting down (the run is left for
 * another worker), the worker's lease on it ended and another worker took it over, or it reached a
 * limit (a member's timeout, its sequence's deadline: see core/sequence-rules.ts memberLimit), and
 * then ends with the limit's status and error.
 */
export type StopReason = 'cancel' | 'shutdown' | 'lease-lost' | RunLimitReached;

/** A limit a run reached: it ends with this status and error. */
export interface RunLimitReached {
  status: 'failed' | 'cancelled';
  error: string;
}

export class RunStopped extends Error {
  constructor(readonly reason: StopReason) {
    super(`run stopped: ${reason}`);
  }
}

/** Counts of a run as its pipeline goes, shared by planning and delivery. */
export interface RunProgress {
  planned: OperationCounts;
  successful: OperationCounts;
  failed: OperationCounts;
  querySize: number;
  /** Planned rows with an outcome: delivered or rejected. */
  settled: number;
  /** The model is still being read (more rows may be planned). */
  reading: boolean;
  /** Rows in the snapshot at the start: how many rows the model is expected to return. */
  expectedRows: number;
  /**
   * With no snapshot to go by (a first run, a run past a cursor, resetCDC): the rows the sync's
   * last finished run read, the best guess of the model's size for the run's completion; 0 when
   * no run finished before.
   */
  estimatedRows: number;
  /** The run has moved to `processing`. */
  processing: boolean;
}

/** What a written batch leaves to record (see Delivery.collect). */
export interface WrittenBatch {
  rows: SnapshotRows;
  deletes: string[];
  /** Destination ids reported for delivered rows, by key. */
  ids: Array<[key: string, id: string]>;
  rejected: RejectedRow[];
  /** The batch's delivered and refused rows, by operation. */
  successful: OperationCounts;
  failed: OperationCounts;
  count: number;
  /** With the planner in the warehouse: the batch's last row and rejected keys. */
  planner?: PlannerProgress | null;
}

/** Written rows committed to the snapshot together at most, and how long a written batch waits for others (see RunBookkeeping.add). */
const GROUP_ROWS = 5000;
const GROUP_MS = 100;
/** Snapshot commits under way at most (see RunBookkeeping.commits). */
const COMMITS_AHEAD = 4;
/** How often, at most, a run's record is updated with its progress. */
const REPORT_EVERY_MS = 100;
/** How long, at most, a progress update waits for the snapshot writes under way to finish (see persist). */
const REPORT_WAIT_MS = 1000;

export const emptyCounts = (): OperationCounts => ({ addedCount: 0, changedCount: 0, removedCount: 0 });
export const totalCount = (counts: OperationCounts): number => counts.addedCount + counts.changedCount + counts.removedCount;

export function addCounts(counts: OperationCounts, more: OperationCounts): void {
  counts.addedCount += more.addedCount;
  counts.changedCount += more.changedCount;
  counts.removedCount += more.removedCount;
}

/**
 * How far a run is. While the model is still read, the share of it read so far (against the
 * snapshot's size, or the last run's, the best guesses of the model's) times the share of planned
 * rows settled, kept below 1; afterwards, the share of planned rows settled. While a model of no
 * known size is read, 0: how much is left is not known (the share of the rows read so far that
 * were settled would read 0.99 for most of a first run).
 */
export function completionRatio(progress: RunProgress): number {
  const planned = totalCount(progress.planned);
  const settled = planned === 0 ? 1 : Math.min(1, progress.settled / planned);
  if (!progress.reading) return settled;
  const expected = progress.expectedRows > 0 ? progress.expectedRows : progress.estimatedRows;
  if (!(expected > 0)) return 0;
  return Math.min(0.99, Math.min(1, progress.querySize / expected) * settled);
}

/** The counts of a run's record from its progress (nothing before it has one). */
function progressPatch(progress: RunProgress | null): SyncRunPatch {
  if (progress === null) return {};
  return {
    querySize: progress.querySize,
    plannedRows: progress.planned,
    successfulRows: progress.successful,
    failedRows: progress.failed,
    completionRatio: completionRatio(progress),
  };
}

/** Written batches' records as one, each copied once (merging them two by two copied the first ones again at every batch). */
function mergeWritten(parts: WrittenBatch[]): WrittenBatch {
  if (parts.length === 1) return parts[0] as WrittenBatch;
  const hashes = new Uint32Array(parts.reduce((n, part) => n + part.rows.hashes.length, 0));
  const successful = emptyCounts();
  const failed = emptyCounts();
  let at = 0;
  for (const part of parts) {
    hashes.set(part.rows.hashes, at);
    at += part.rows.hashes.length;
    addCounts(successful, part.successful);
    addCounts(failed, part.failed);
  }
  const all = <T>(list: (part: WrittenBatch) => T[]): T[] => ([] as T[]).concat(...parts.map(list));
  return {
    rows: { keys: all((part) => part.rows.keys), hashes },
    deletes: all((part) => part.deletes),
    ids: all((part) => part.ids),
    rejected: all((part) => part.rejected),
    successful,
    failed,
    count: parts.reduce((n, part) => n + part.count, 0),
    planner: mergeProgress(parts.map((part) => part.planner)),
  };
}

export interface RunRecordOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** The run as claimed: its id and attempt fence every update. */
  run: SyncRun;
  /** Sees every update. */
  onProgress?: (run: SyncRun) => void;
}

/** A run's record in the store: every update goes through `update`, and the run's end is recorded here. */
export class RunRecord {
  /** What every log line of the run names. */
  readonly logFields: { syncRunId: number; syncId: number };

  constructor(private readonly options: RunRecordOptions) {
    this.logFields = { syncRunId: options.run.id, syncId: options.run.syncId };
  }

  async update(patch: SyncRunPatch): Promise<SyncRun> {
    const { store, clock, run: claimed, onProgress } = this.options;
    const run = await store.updateSyncRun(claimed.id, patch, clock.now(), claimed.attempt);
    onProgress?.(run);
    return run;
  }

  /**
   * Records a run that read and delivered everything: its final counts, `reporting`, then, once
   * `close` has closed its connections (answering the destination's API budget), `success`, or
   * `warning` when rows were rejected. A resetCDC run sends nothing: it reports only its size.
   * Connections are closed before the final status is recorded: closing a connection can take a
   * while (SQLite checkpoints its WAL), and the next member of a sequence must not wait for it.
   */
  async finished(progress: RunProgress, phases: PhaseClock, close: () => Promise<ApiUsage | undefined>): Promise<SyncRun> {
    if (this.options.run.options.resetCDC) {
      await this.update({ status: 'reporting', querySize: progress.querySize, completionRatio: 1 });
      await close();
      return await this.update({ status: 'success', phaseMs: phases.times() });
    }
    await this.update({
      status: progress.processing ? undefined : 'processing',
      querySize: progress.querySize,
      plannedRows: progress.planned,
      successfulRows: progress.successful,
      failedRows: progress.failed,
    });
    await this.update({ status: 'reporting', completionRatio: 1 });
    const apiUsage = await close();
    const rejected = totalCount(progress.failed);
    const run = await this.update({ status: rejected > 0 ? 'warning' : 'success', apiUsage, phaseMs: phases.times() });
    this.options.logger.info('sync run finished', { ...this.logFields, status: run.status, delivered: totalCount(progress.successful), rejected });
    return run;
  }

  /**
   * Records a run that did not finish, its connections closed: one the worker left at its shutdown
   * stays as it is for the next start, one another worker took over is that worker's; one cancelled
   * or at its limit ends with what it delivered, and any other error fails it. A cancel that found
   * the run's lease lapsed ended it in the store already: that is logged as the cancel it was, and
   * the run is returned as claimed, its end being the canceller's to report (see Worker.handOff).
   */
  async ended(
    thrown: unknown,
    end: { signal: AbortSignal; progress: RunProgress | null; phases: PhaseClock; apiUsage: ApiUsage | undefined },
  ): Promise<SyncRun> {
    const { store, logger, run: claimed } = this.options;
    const { signal, progress, phases, apiUsage } = end;
    const runLog = this.logFields;
    const leaseLost = thrown instanceof LockstepError && thrown.code === ErrorCode.LeaseLost;
    if (leaseLost || thrown instanceof RunStopped || signal.aborted) {
      const reason = leaseLost ? 'lease-lost' : thrown instanceof RunStopped ? thrown.reason : (signal.reason as StopReason);
      if (reason === 'shutdown') {
        logger.info('sync run left for another worker', runLog);
        return (await store.getSyncRun(claimed.id)) ?? claimed;
      }
      if (reason === 'lease-lost') {
        const current = await store.getSyncRun(claimed.id);
        if (current && cancelledInAttempt(current, claimed.attempt)) {
          // The cancel that ended it reported its end: this attempt's is not one more.
          logger.info(CANCELLED_AFTER_LAPSE, { ...runLog, attempt: claimed.attempt });
          return claimed;
        }
        // Another worker runs it now; this attempt writes nothing more.
        logger.warn('sync run taken over by another worker after this worker\'s lease ended; this attempt stops', { ...runLog, attempt: claimed.attempt });
        return current ?? claimed;
      }
      if (typeof reason === 'object') {
        logger.warn('sync run stopped at its limit', { ...runLog, error: reason.error });
        return await this.update({ ...progressPatch(progress), status: reason.status, error: reason.error });
      }
      try {
        const run = await this.update({ ...progressPatch(progress), status: 'cancelled', error: 'cancelled by a user', phaseMs: phases.times() });
        logger.info('sync run cancelled', runLog);
        return run;
      } catch (refused) {
        const current = refused instanceof LockstepError && refused.code === ErrorCode.LeaseLost ? await store.getSyncRun(claimed.id) : null;
        if (!current || !cancelledInAttempt(current, claimed.attempt)) throw refused;
        logger.info(CANCELLED_AFTER_LAPSE, { ...runLog, attempt: claimed.attempt });
        return claimed;
      }
    }
    const error = toError(thrown);
    if (storeUnreachable(thrown)) {
      // The store's outage is not the run's failure: its lease runs out, and once the store answers
      // again a worker takes it over as its next attempt, which sends what was not committed.
      logger.error('sync run left for its next attempt: the store cannot be reached', { ...runLog, error: error.message });
      return (await store.getSyncRun(claimed.id).catch(() => null)) ?? claimed;
    }
    logger.error('sync run failed', { ...runLog, error: error.message });
    // The run's error is read by every API token (and sent in alerts): a store's error is said
    // without the store's host, database, user or file; the line above has it in full.
    const forReaders = storeErrorForReaders(thrown);
    const recorded = forReaders === null ? error.message : `${forReaders} — the server log names the store, under sync run ${claimed.id}`;
    return await this.update({ ...progressPatch(progress), status: 'failed', error: recorded, apiUsage, phaseMs: phases.times() });
  }
}

/** What a worker logs of its run that a user cancelled while its lease had lapsed: the cancel ended it in the store at once. */
const CANCELLED_AFTER_LAPSE = "sync run cancelled by a user while this worker's lease had lapsed; this attempt stops";

/** Whether `run` ended cancelled in `attempt`: a cancel ended it while that attempt's lease had lapsed, and no other worker took it. */
function cancelledInAttempt(run: SyncRun, attempt: number): boolean {
  return run.attempt === attempt && run.status === 'cancelled';
}

export interface RunBookkeepingOptions {
  store: Store;
  /** Where the run's progress is recorded. */
  record: RunRecord;
  /** The run's counts, updated as written batches are committed. */
  progress: RunProgress;
  phases: PhaseClock;
  /** Every commit carries the run's attempt: once another worker took the run over, it is refused. */
  fence: RunFence;
  syncId: number;
  /** The destination reports ids for delivered rows (DestinationCapabilities.recordIds): they are recorded too. */
  recordIds: boolean;
  /** The planner in the warehouse, when the source keeps the snapshot: written batches move its watermark instead. */
  planner: WarehousePlanner | null;
}

/**
 * What a run's written batches leave to commit, and the commits under way. Small batches are
 * grouped into one commit; commits run while later batches are planned and written.
 */
export class RunBookkeeping {
  /**
   * Commits of written batches to the snapshot under way, oldest first (at most COMMITS_AHEAD):
   * they run while later batches are planned and written, and are awaited before the run ends.
   * Batches of a run never share a key, so the order they land in does not matter (the SQLite
   * store keeps it anyway, and may join queued commits into one transaction).
   */
  private commits: Promise<void>[] = [];
  /** Written batches waiting to be committed together (see add), their rows, and when the first of them was written. */
  private grouped: WrittenBatch[] = [];
  private groupedRows = 0;
  private groupStarted = -Infinity;
  /** A commit has been started (the first batch is committed alone). */
  private anyCommitted = false;
  /** Snapshot writes handed to the store and not yet committed. */
  private snapshotWrites = 0;
  /** The planner's commits in order (see persist). */
  private plannerCommits: Promise<void> = Promise.resolve();
  /** The run's delivered rows as the planner's last commit recorded them with its watermark (see persist). */
  private plannerDelivered = emptyCounts();
  /** When the run's record was last updated with the progress (performance.now()). */
  private lastReport = -Infinity;

  constructor(private readonly options: RunBookkeepingOptions) {}

  /**
   * Records the run `processing` when its first batch goes to the destination, with the rows read
   * and planned so far: a destination slow to answer that batch does not leave the run shown
   * `querying` once its model was read.
   */
  async delivering(): Promise<void> {
    const { progress, record } = this.options;
    if (progress.processing) return;
    progress.processing = true;
    await record.update({ status: 'processing', querySize: progress.querySize, plannedRows: { ...progress.planned } });
  }

  /**
   * Groups a written batch for its commit; true when the group is due (commitGrouped). Small
   * batches are committed together (up to GROUP_ROWS rows, or GROUP_MS after the first of them was
   * written), so a commit's fixed cost is not paid per batch; the run's first batch is committed at
   * once, so its record turns `processing` without waiting.
   */
  add(written: WrittenBatch): boolean {
    if (this.grouped.length === 0) this.groupStarted = performance.now();
    this.grouped.push(written);
    this.groupedRows += written.count;
    return !this.anyCommitted || this.groupedRows >= GROUP_ROWS || performance.now() - this.groupStarted >= GROUP_MS;
  }

  /** Starts committing the batches grouped so far, without waiting (only for the oldest commit, when COMMITS_AHEAD are under way). */
  async commitGrouped(): Promise<void> {
    if (this.grouped.length === 0) return;
    const grouped = mergeWritten(this.grouped);
    this.grouped = [];
    this.groupedRows = 0;
    this.anyCommitted = true;
    while (this.commits.length >= COMMITS_AHEAD) await this.options.phases.during('commit', this.commits.shift() as Promise<void>);
    const commit = this.persist(grouped);
    // Awaited by a later commit or at the end; a failure is not lost meanwhile.
    commit.catch(() => undefined);
    this.commits.push(commit);
  }

  /** Commits what is grouped, then waits for the commits under way; the first failure stops the run. */
  async committed(): Promise<void> {
    await this.commitGrouped();
    while (this.commits.length > 0) await this.options.phases.during('commit', this.commits.shift() as Promise<void>);
  }

  /** The pipeline stopped: commits what is grouped and waits for every commit under way, whatever it answers. */
  async settleCommits(): Promise<void> {
    await this.commitGrouped().catch(() => undefined);
    const commits = this.commits;
    this.commits = [];
    for (const commit of commits) await this.options.phases.during('commit', commit.catch(() => undefined));
  }

  /**
   * With the planner in the warehouse: the rows the run delivered before its plan
   * (WarehousePlan.delivered), which the planner's commits count on from.
   */
  carryOn(delivered: OperationCounts): void {
    this.plannerDelivered = { ...delivered };
  }

  /** Waits for the planner's commits in the warehouse, in order. */
  plannerCommitted(): Promise<void> {
    return this.options.phases.during('commit', this.plannerCommits);
  }

  /** Records the model's cursor once the run is delivered: it moves only when the run delivered everything it read past it. */
  async moveCursor(cursor: SnapshotCursor): Promise<void> {
    if (totalCount(this.options.progress.failed) > 0) return;
    const { store, phases, syncId, fence } = this.options;
    await phases.during('commit', store.snapshots.cursorSet(syncId, cursor, fence));
  }

  /** Records a written batch: delivered rows into the snapshot, refused rows as rejected, then the run's progress. */
  async persist(written: WrittenBatch): Promise<void> {
    const { store, progress, fence, syncId, recordIds, planner } = this.options;
    // Ids first: a crash between the two re-sends the rows (an idempotent upsert), while a snapshot
    // entry without its id would leave child syncs waiting for an id that never comes.
    if (planner) {
      // The planner's watermark moves in delivery order: each commit waits for the one before. The
      // run's delivered counts go with it, in its transaction: a worker killed before the run's
      // record caught up leaves them to the attempt that takes the delivered rows in.
      const progressed = written.planner;
      const commit = this.plannerCommits.then(async () => {
        if (recordIds) await store.snapshots.recordIdsWrite(syncId, written.ids, written.deletes, fence);
        const delivered = { ...this.plannerDelivered };
        addCounts(delivered, written.successful);
        if (progressed) await planner.commit(progressed.through, progressed.rejected, delivered);
        this.plannerDelivered = delivered;
      });
      this.plannerCommits = commit.catch(() => undefined);
      await commit;
    } else {
      if (recordIds) await store.snapshots.recordIdsWrite(syncId, written.ids, written.deletes, fence);
      this.snapshotWrites++;
      try {
        // The run's delivered counts grow in the snapshot's transaction (see the record's update
        // below), its rows read and planned up to where it is now: never fewer than delivered.
        const reach = {
          querySize: progress.querySize,
          planned: { ...progress.planned },
          completionRatio: completionRatio({ ...progress, settled: progress.settled + written.count }),
        };
        await store.snapshots.write(syncId, written.rows, written.deletes, fence, written.successful, reach);
      } finally {
        this.snapshotWrites--;
      }
    }
    if (written.rejected.length > 0) await store.addRejectedRows(written.rejected, fence);
    // Counted once committed: the run's record never shows more delivered rows than the snapshot holds.
    addCounts(progress.successful, written.successful);
    addCounts(progress.failed, written.failed);
    progress.settled += written.count;
    const first = !progress.processing;
    progress.processing = true;
    // The record follows at most every REPORT_EVERY_MS (the run's end records the final counts):
    // a write per batch would cost more than the batch when batches are small. While a later
    // snapshot write is under way, the store may be committing it (a SQLite file has one writer at
    // a time, and this write would wait for it, blocking the process): the record then waits for a
    // moment without one, up to REPORT_WAIT_MS.
    const now = performance.now();
    if (!first && now - this.lastReport < REPORT_EVERY_MS) return;
    if (!first && this.snapshotWrites > 0 && now - this.lastReport < REPORT_WAIT_MS) return;
    this.lastReport = now;
    // The store counts what the snapshot's commits delivered, in their transactions: an update from
    // here, racing a later commit, would take its rows back off. The run's end records the total.
    const patch = progressPatch(progress);
    if (!planner) delete patch.successfulRows;
    await this.options.record.update({ ...patch, status: first ? 'processing' : undefined });
  }
}

/** Whether `thrown`, or an error it was caused by (a retry that gave up), is the store's server out of reach for now. */
function storeUnreachable(thrown: unknown): boolean {
  for (let error: unknown = thrown; error instanceof Error; error = error.cause) {
    if (error instanceof LockstepError && error.code === ErrorCode.Store && error.retryable) return true;
  }
  return false;
}

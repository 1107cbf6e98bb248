/**
 * Executes one sync run (SPEC §2.2): query → plan → deliver → commit → report, as a pipeline.
 *
 * States (see SyncRunStatus): the run arrives claimed in `querying`; the model is streamed and each
 * row validated, hashed and compared with the snapshot as it arrives (rows a source keeps encoded
 * are hashed over their bytes, and only their keys parsed); planned operations are grouped into
 * batches of the sync's `batchSize` and delivered while the model is still being read (as many
 * batches in flight as the writer takes at once, so memory stays bounded), each written batch
 * committed to the snapshot while later ones are planned and written.
 * The run moves to `processing` when its first batch is delivered. When the model is exhausted, the
 * keys of the snapshot it no longer returns are planned as removals (modes that delete). `reporting`
 * writes the final counts; the run ends `success`, `warning` (rejected rows), `failed` (fatal error)
 * or `cancelled` (at a batch boundary). When the worker shuts down, the run is left in its active
 * state so the next start marks it `interrupted` and runs it again.
 */
import { backoffDelay, withBackoff, type BackoffPolicy } from '../core/backoff.js';
import { resolveConnection } from '../core/connector-registry.js';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import { encodeKey, lookupKeys } from '../core/keys.js';
import type {
  Clock,
  Connectors,
  Destination,
  DestinationWriter,
  EncodedRows,
  Logger,
  RowOutcome,
  SnapshotRows,
  Source,
  Store,
  SyncRunPatch,
  Value,
  WarehousePlanner,
  WriteOperation,
  WriteTarget,
} from '../core/ports.js';
import type { ApiUsage, OperationCounts, RejectedRow, SyncRun } from '../core/runs.js';
import { PhaseClock } from '../core/run-phases.js';
import { massDeleteRefusal } from '../core/sync-rules.js';
import type { ModelRecord, SyncRecord } from '../core/workspace.js';
import { KeySet } from './key-set.js';
import { DecodedBatch, EncodedBatch, PlannedOp, type Candidate } from './planned-rows.js';
import { PlannedBatches, RowLoop, RowLoopNext, bump } from './planning.js';
import { hashText } from './row-hash.js';
import { SnapshotIndex } from './snapshot-index.js';
import { cursorRequest, mergeProgress, openWarehousePlanner, plannerProgress, type PlannerProgress } from './warehouse-planner.js';

/** How queries, batches and retryable rows are retried within a run (core/backoff.ts). */
export type RetryPolicy = BackoffPolicy;

export interface SyncRunnerOptions {
  store: Store;
  connectors: Connectors;
  clock: Clock;
  logger: Logger;
  /** Folder relative file paths of connections resolve against. */
  baseDir: string;
  /** Environment `${VAR}` templates resolve from. */
  env: Record<string, string | undefined>;
  retry: RetryPolicy;
  /** Rows read from the source per batch. */
  readBatchSize: number;
  /**
   * Memory the runs of this runner may use together to hold their syncs' snapshots (keys and
   * hashes) while planning; a snapshot that does not fit what is left is looked up in the store
   * batch by batch instead.
   */
  snapshotIndexBytes: number;
  /** Memory a run may use for the keys it has seen; beyond it they go to a temporary file in `spoolDir` (KeySet). */
  keySetBytes: number;
  /** Folder for temporary files: the keys a run has seen, beyond `keySetBytes`. */
  spoolDir: string;
}

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

/** Counts of a run as its pipeline goes, shared by planning and delivery. */
interface RunProgress {
  /** When the run's record was last updated with the progress, and the store last asked for a cancel (performance.now()). */
  lastReport: number;
  lastStopCheck: number;
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
  /** The run has moved to `processing`. */
  processing: boolean;
}

/** One run's pipeline: what planning and delivery share. */
interface Pipeline {
  run: SyncRun;
  sync: SyncRecord;
  model: ModelRecord;
  source: Source;
  destination: Destination;
  signal: AbortSignal;
  update: (patch: SyncRunPatch) => Promise<SyncRun>;
  progress: RunProgress;
  /** Set once the model's columns are known (not for resetCDC, which sends nothing). */
  writer: DestinationWriter | null;
  target: WriteTarget | null;
  /** The batches being written, oldest first (at most the writer's `concurrentWrites`), with the destination's answers once written. */
  inflight: Delivery[];
  /**
   * Commits of written batches to the snapshot under way, oldest first (at most COMMITS_AHEAD):
   * they run while later batches are planned and written, and are awaited before the run ends.
   * Batches of a run never share a key, so the order they land in does not matter (the SQLite
   * store keeps it anyway, and may join queued commits into one transaction).
   */
  commits: Promise<void>[];
  /** Bytes of the snapshot budget this run's index holds. */
  indexBytes: number;
  /** Rows per batch: the sync's `batchSize`, at most the destination's `maxBatchSize`. */
  batchSize: number;
  /** Written batches waiting to be committed together (see retire), their rows, and when the first of them was written. */
  grouped: Settled[];
  groupedRows: number;
  groupStarted: number;
  /** A commit has been started (the first batch is committed alone). */
  anyCommitted: boolean;
  /** Snapshot writes handed to the store and not yet committed. */
  snapshotWrites: number;
  /** Fields whose value is a parent sync's recorded id (mappings with `lookup`), once the target is known. */
  lookups: Lookup[];
  /** Where the run's time goes (core/run-phases.ts). */
  phases: PhaseClock;
  /** The keys seen in this reading of the model (closed when the pipeline ends: it may hold a temporary file). */
  seen: KeySet | null;
  /** The planner in the warehouse, when the source keeps the snapshot (see warehouse-planner.ts), and its commits in order. */
  planner: WarehousePlanner | null;
  plannerCommits: Promise<void>;
  /** Notes for the run record's comparison (e.g. `planner: auto` fell back to the store). */
  plannerNotes: string[];
}

/** A destination field filled with the id a parent sync recorded for the row's value in it. */
interface Lookup {
  /** Index of the field in `WriteTarget.columns`. */
  column: number;
  /** The model column, for messages. */
  from: string;
  /** The parent sync's slug and id. */
  sync: string;
  syncId: number;
}

/** What a written batch leaves to record (see SyncRunner.collect). */
interface Settled {
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

/** A batch handed to the destination: its rows' outcomes arrive when it is written. */
interface Delivery {
  batch: PlannedOp[];
  outcomes: Promise<RowOutcome[]>;
  /** The outcomes have arrived (or the write failed). */
  written: boolean;
}

/** Written rows committed to the snapshot together at most, and how long a written batch waits for others (see retire). */
const GROUP_ROWS = 5000;
const GROUP_MS = 100;

/** Written batches' records as one, each copied once (merging them two by two copied the first ones again at every batch). */
function mergeSettled(parts: Settled[]): Settled {
  if (parts.length === 1) return parts[0] as Settled;
  const hashes = new Uint32Array(parts.reduce((n, part) => n + part.rows.hashes.length, 0));
  const successful = emptyCounts();
  const failed = emptyCounts();
  let at = 0;
  for (const part of parts) {
    hashes.set(part.rows.hashes, at);
    at += part.rows.hashes.length;
    add(successful, part.successful);
    add(failed, part.failed);
  }
  const all = <T>(list: (part: Settled) => T[]): T[] => ([] as T[]).concat(...parts.map(list));
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

/** How often, at most, a run's record is updated with its progress and the store asked for a cancel. */
const REPORT_EVERY_MS = 100;
/** How long, at most, a progress update waits for the snapshot writes under way to finish (see persist). */
const REPORT_WAIT_MS = 1000;

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

/** Snapshot commits under way at most (see Pipeline.commits). */
const COMMITS_AHEAD = 4;
/** Snapshot keys read per page when looking for removals, or entries when loading the index. */
const SNAPSHOT_PAGE = 5000;
/** Snapshot entries read per page when loading the index (a page is three strings). */
const INDEX_PAGE = 10_000;
/** Bytes the snapshot index needs per row before the keys' text, to decide whether to try loading it. */
const INDEX_BYTES_PER_ROW = 32;
const NO_SNAPSHOT: ReadonlyMap<string, string> = new Map();

class RunStopped extends Error {
  constructor(readonly reason: StopReason) {
    super(`run stopped: ${reason}`);
  }
}

/**
 * Aborts when the run is cancelled or its lease moved on, so a write in flight is interrupted (its
 * connection closed) instead of waited for; on a shutdown the batches being written finish.
 */
function interruptingWrites(signal: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const onAbort = () => {
    if ((signal.reason as StopReason) !== 'shutdown') controller.abort(signal.reason);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return controller.signal;
}

/** The connection `opening` opens, or RunStopped as soon as `signal` aborts (one that opens later is closed). */
function unlessStopped<T extends { close(): Promise<void> }>(opening: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new RunStopped(signal.reason as StopReason));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    opening.then(
      (connection) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) void connection.close().catch(() => undefined);
        else resolve(connection);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

const emptyCounts = (): OperationCounts => ({ addedCount: 0, changedCount: 0, removedCount: 0 });
const total = (counts: OperationCounts): number => counts.addedCount + counts.changedCount + counts.removedCount;

/**
 * How far a run is. While the model is still read, the share of it read so far (against the
 * snapshot's size, the best guess of the model's) times the share of planned rows settled, kept
 * below 1; afterwards, the share of planned rows settled.
 */
function completionRatio(progress: RunProgress): number {
  const planned = total(progress.planned);
  const settled = planned === 0 ? 1 : Math.min(1, progress.settled / planned);
  if (!progress.reading) return settled;
  const read = progress.expectedRows > 0 ? Math.min(1, progress.querySize / progress.expectedRows) : 1;
  return Math.min(0.99, read * settled);
}

function add(counts: OperationCounts, more: OperationCounts): void {
  counts.addedCount += more.addedCount;
  counts.changedCount += more.changedCount;
  counts.removedCount += more.removedCount;
}

export class SyncRunner {
  /** Bytes of `snapshotIndexBytes` held by the snapshot indexes of the runs in progress. */
  private indexBytesHeld = 0;

  constructor(private readonly options: SyncRunnerOptions) {}

  /**
   * Runs a claimed sync run to its end and returns the final record. Never throws for run-level
   * failures: they end the run `failed` with the error recorded. `onProgress` sees every update.
   */
  execute(claimed: SyncRun, control: { signal: AbortSignal; onProgress?: (run: SyncRun) => void }): Promise<SyncRun> {
    return this.executeTimed(claimed, control, new PhaseClock());
  }

  private async executeTimed(
    claimed: SyncRun,
    control: { signal: AbortSignal; onProgress?: (run: SyncRun) => void },
    phases: PhaseClock,
  ): Promise<SyncRun> {
    const { store, clock, logger } = this.options;
    const runLog = { syncRunId: claimed.id, syncId: claimed.syncId };
    let source: Source | null = null;
    let destination: Destination | null = null;
    let planner: WarehousePlanner | null = null;
    // Connections are closed before the final status is recorded: closing a connection can take a
    // while (SQLite checkpoints its WAL), and the next member of a sequence must not wait for it.
    // The destination's API budget, read before it closes, goes into the run's final record.
    let apiUsage: ApiUsage | undefined;
    // The run's progress, once it has one: a run that ends early records what it delivered.
    let started: RunProgress | null = null;
    const cleanup = async () => {
      apiUsage = destination?.apiUsage?.() ?? apiUsage;
      const open = [source, destination, planner];
      source = destination = planner = null;
      await Promise.all(open.map((c) => c?.close().catch(() => undefined)));
    };
    const update = async (patch: SyncRunPatch): Promise<SyncRun> => {
      const run = await store.updateSyncRun(claimed.id, patch, clock.now(), claimed.attempt);
      control.onProgress?.(run);
      return run;
    };
    try {
      const sync = await store.getSync(claimed.syncId);
      if (!sync) throw new LockstepError(ErrorCode.NotFound, `sync ${claimed.syncId} no longer exists in the workspace`);
      const model = await store.getModel(sync.model);
      if (!model) throw new LockstepError(ErrorCode.NotFound, `sync "${sync.slug}" reads model "${sync.model}", which does not exist`);
      const sourceDef = await store.getSource(model.source);
      if (!sourceDef) throw new LockstepError(ErrorCode.NotFound, `model "${model.slug}" reads source "${model.source}", which does not exist`);
      const destinationDef = await store.getDestination(sync.destination);
      if (!destinationDef) {
        throw new LockstepError(ErrorCode.NotFound, `sync "${sync.slug}" writes to destination "${sync.destination}", which does not exist`);
      }
      logger.info('sync run started', { ...runLog, sync: sync.slug, trigger: claimed.trigger.type });

      // A run cancelled while a server takes its time to answer the connection stops at once.
      source = await unlessStopped(
        this.options.connectors.openSource(resolveConnection(sourceDef, 'source', this.options.baseDir, this.options.env)),
        control.signal,
      );
      destination = await unlessStopped(
        // The destination's rate limiter reports the time the run's requests wait for their turn.
        this.options.connectors.openDestination(resolveConnection(destinationDef, 'destination', this.options.baseDir, this.options.env), { waits: phases }),
        control.signal,
      );
      const opened = await openWarehousePlanner(source, sourceDef.slug, logger, control.signal);
      planner = opened.planner;
      const deletes = sync.mode === 'mirror' || sync.deleteBehavior === 'delete';
      if (deletes && !destination.capabilities.deletes) {
        throw new LockstepError(
          ErrorCode.Schema,
          `sync "${sync.slug}" deletes rows (mode ${sync.mode}, deleteBehavior ${sync.deleteBehavior}) but destination "${sync.destination}" cannot delete — use mode upsert with deleteBehavior ignore`,
        );
      }

      const progress: RunProgress = {
        lastReport: -Infinity,
        lastStopCheck: -Infinity,
        planned: emptyCounts(),
        // A run taken over from a worker that stopped keeps what that worker delivered: those rows
        // are in the snapshot and are not planned again.
        successful: claimed.attempt > 1 ? { ...claimed.successfulRows } : emptyCounts(),
        failed: emptyCounts(),
        querySize: 0,
        settled: 0,
        reading: true,
        expectedRows: 0,
        processing: false,
      };
      started = progress;
      const pipeline: Pipeline = {
        run: claimed,
        sync,
        model,
        source,
        destination,
        signal: control.signal,
        update,
        progress,
        writer: null,
        target: null,
        inflight: [],
        commits: [],
        indexBytes: 0,
        batchSize: Math.max(1, Math.min(sync.batchSize, destination.capabilities.maxBatchSize ?? Infinity)),
        grouped: [],
        groupedRows: 0,
        groupStarted: -Infinity,
        anyCommitted: false,
        snapshotWrites: 0,
        lookups: [],
        phases,
        seen: null,
        planner,
        plannerCommits: Promise.resolve(),
        plannerNotes: opened.note ? [opened.note] : [],
      };
      await this.withRetries('query', control.signal, phases, async () => {
        // A transient failure part-way restarts the run's reading: what was delivered is in the
        // snapshot by now and is not planned again, so it stays counted as planned and delivered.
        progress.planned = { ...progress.successful };
        progress.failed = emptyCounts();
        progress.querySize = 0;
        progress.settled = total(progress.successful);
        progress.reading = true;
        await this.runPipeline(pipeline);
      });
      // A limit reached during the last batch still ends the run: it took longer than it may.
      if (control.signal.aborted && typeof control.signal.reason === 'object') throw new RunStopped(control.signal.reason as StopReason);
      phases.enter('finish');
      if (claimed.options.resetCDC) {
        await update({ status: 'reporting', querySize: progress.querySize, completionRatio: 1 });
        await cleanup();
        return await update({ status: 'success', phaseMs: phases.times() });
      }
      await update({
        status: progress.processing ? undefined : 'processing',
        querySize: progress.querySize,
        plannedRows: progress.planned,
        successfulRows: progress.successful,
        failedRows: progress.failed,
      });
      await update({ status: 'reporting', completionRatio: 1 });
      await cleanup();
      const rejected = total(progress.failed);
      const run = await update({ status: rejected > 0 ? 'warning' : 'success', apiUsage, phaseMs: phases.times() });
      logger.info('sync run finished', { ...runLog, status: run.status, delivered: total(progress.successful), rejected });
      return run;
    } catch (thrown) {
      phases.enter('finish');
      await cleanup();
      const leaseLost = thrown instanceof LockstepError && thrown.code === ErrorCode.LeaseLost;
      if (leaseLost || thrown instanceof RunStopped || control.signal.aborted) {
        const reason = leaseLost ? 'lease-lost' : thrown instanceof RunStopped ? thrown.reason : (control.signal.reason as StopReason);
        if (reason === 'shutdown') {
          logger.info('sync run left for another worker', runLog);
          return (await store.getSyncRun(claimed.id)) ?? claimed;
        }
        if (reason === 'lease-lost') {
          // Another worker runs it now; this attempt writes nothing more.
          logger.warn('sync run taken over by another worker after this worker\'s lease ended; this attempt stops', { ...runLog, attempt: claimed.attempt });
          return (await store.getSyncRun(claimed.id)) ?? claimed;
        }
        if (typeof reason === 'object') {
          logger.warn('sync run stopped at its limit', { ...runLog, error: reason.error });
          return await update({ ...progressPatch(started), status: reason.status, error: reason.error });
        }
        logger.info('sync run cancelled', runLog);
        return await update({ ...progressPatch(started), status: 'cancelled', error: 'cancelled by a user', phaseMs: phases.times() });
      }
      const error = toError(thrown);
      logger.error('sync run failed', { ...runLog, error: error.message });
      return await update({ ...progressPatch(started), status: 'failed', error: error.message, apiUsage, phaseMs: phases.times() });
    } finally {
      await cleanup();
    }
  }

  /**
   * Streams the model once: validates each row (null and duplicate keys are rejected), hashes it,
   * compares it with the snapshot and hands planned operations to delivery batch by batch; then
   * plans the removals. The keys seen are kept as fingerprints (KeySet), never the rows.
   */
  private async runPipeline(p: Pipeline): Promise<void> {
    try {
      await this.planAndDeliver(p);
    } finally {
      this.indexBytesHeld -= p.indexBytes;
      p.indexBytes = 0;
      p.seen?.close();
      p.seen = null;
      // Whatever stopped the pipeline, the batches being written finish (and are committed to the
      // snapshot if they were delivered) before connections close or the reading starts over.
      const left = p.inflight;
      p.inflight = [];
      await this.commitGrouped(p).catch(() => undefined);
      const commits = p.commits;
      p.commits = [];
      for (const commit of commits) await p.phases.during('commit', commit.catch(() => undefined));
      for (const delivery of left) {
        try {
          await this.settle(p, delivery.batch, await p.phases.during('deliver', delivery.outcomes));
        } catch {
          // the write or its commit failed: the error that stopped the pipeline is the one reported
        }
      }
    }
  }

  private async planAndDeliver(p: Pipeline): Promise<void> {
    if (p.planner) return this.planInWarehouse(p, p.planner);
    const { store } = this.options;
    const { run, sync, model, source, signal, progress } = p;
    const { fullResync, resetCDC } = run.options;
    const deletes = sync.mode === 'mirror' || sync.deleteBehavior === 'delete';
    const keyColumns = model.primaryKey.map((c) => mapColumn(sync, c));
    const fence = { runId: run.id, attempt: run.attempt };
    p.phases.enter('plan');
    if (resetCDC) await store.snapshots.clear(sync.id, fence);
    const cursor = await this.storeCursor(p);
    const byCursor = cursor.kind === 'cursor';
    const notes = [...p.plannerNotes, ...(cursor.note ? [cursor.note] : [])];
    await p.update({ comparison: { planner: 'store', kind: cursor.kind, ...(notes.length > 0 ? { notes } : {}) } });
    // Phases' times for the debug log (wall time: it paces nothing).
    const { logger } = this.options;
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    // The source connects and runs the query while the snapshot loads: its first rows are waiting
    // when planning starts.
    const reading = source.read(cursor.query, { batchSize: this.options.readBatchSize, signal, encoded: true })[Symbol.asyncIterator]();
    const first = reading.next();
    first.catch(() => undefined); // awaited below, after the snapshot is loaded
    let index: SnapshotIndex | null;
    try {
      // An empty snapshot (a first run, or after resetCDC) needs no lookups: every row is new.
      // Rows past a cursor are looked up in the store: a few rows need no whole snapshot (nor its count).
      progress.expectedRows = resetCDC || byCursor ? 0 : await store.snapshots.count(sync.id);
      // The snapshot in memory when it fits the budget; otherwise looked up batch by batch.
      index = progress.expectedRows > 0 ? await this.loadSnapshot(p, progress.expectedRows) : null;
    } catch (error) {
      // Not awaited: the query may still be running; closing the source (which the run does next) ends it.
      reading.return?.().catch(() => undefined);
      throw error;
    }
    if (index) logger.debug('snapshot loaded', { syncRunId: run.id, entries: index.size, bytes: index.bytes, ms: elapsed() });
    const lookups = byCursor || (progress.expectedRows > 0 && index === null);
    const added = writeKind(sync, 'added');
    // With the index, only keys new to the snapshot go into the set of keys seen.
    // Without an index, every key goes in: sized for the snapshot's rows, and for 65,536 keys at
    // least (2 MB), so a large first run grows it a few times rather than at every doubling from a
    // few thousand. Not larger: a first run of 100,000 rows spent 80 ms in a 16 MB table's cache
    // misses (bench http), while growing to a million keys costs a few rehashes.
    const seen = new KeySet(index ? 1 << 16 : Math.max(progress.expectedRows * 2, 1 << 17), {
      budgetBytes: this.options.keySetBytes,
      spillDir: this.options.spoolDir,
    });
    p.seen = seen;
    // Looking keys up in the store: how many of the model's keys the snapshot held (the removals are the rest).
    let matched = 0;
    let keyIndexes: number[] | null = null;
    // Queuing is synchronous (true when the batch is full): the loop over rows awaits only at
    // batch boundaries, not once per row.
    const batches = new PlannedBatches(p, (ops) => this.deliver(p, ops));
    const flush = () => batches.flush();
    const plan = async (op: PlannedOp) => {
      if (batches.add(op)) await flush();
    };
    const loop = new RowLoop({
      runId: run.id,
      primaryKey: model.primaryKey,
      progress,
      batches,
      index,
      seen,
      fullResync: fullResync === true,
      // Rows looked up in the store (or only recorded, resetCDC) are collected as candidates first.
      collect: lookups || resetCDC === true,
      added,
      changed: writeKind(sync, 'changed'),
    });

    // Lines go to the destination as the source read them when the writer reads their format.
    let lines = false;
    for await (const rows of timedReads(resume(first, reading), p.phases)) {
      if (signal.aborted) throw new RunStopped(signal.reason as StopReason);
      // A source with rows buffered answers without going through the event loop: let the
      // destination's replies in (its write goes on while this batch is planned).
      await new Promise((resolve) => setImmediate(resolve));
      if (keyIndexes === null) {
        keyIndexes = model.primaryKey.map((column) => {
          const index = rows.columns.indexOf(column);
          if (index < 0) {
            throw new LockstepError(
              ErrorCode.Schema,
              `model "${model.slug}" declares primary key column "${column}", but its query returns only ${rows.columns.map((c) => `"${c}"`).join(', ')} — fix primaryKey or the query`,
            );
          }
          return index;
        });
        const encoding = rows.encoded ? { format: rows.encoded.format, types: rows.encoded.types } : undefined;
        const target = this.writeTarget(p, keyColumns, rows.columns.map((c) => mapColumn(sync, c)), encoding, rows.columns);
        assertUniqueColumns(sync, target.columns);
        p.target = target;
        p.lookups = await this.lookups(p, rows.columns);
        if (!resetCDC) p.writer = await p.phases.during('connect', p.destination.prepare(target));
        // A looked-up field's value is replaced before writing, so those rows go as values.
        lines = encoding !== undefined && p.writer?.takesLines === true && p.lookups.length === 0;
      }
      const view = rows.encoded ? new EncodedBatch(rows.encoded, keyIndexes, lines) : new DecodedBatch(rows.rows, keyIndexes);
      progress.querySize += view.count;
      const candidates: Candidate[] = [];
      loop.candidates = candidates;
      // The row loop stops only when a batch is full or rejected rows are due in the store.
      for (let r = 0; r < view.count; ) {
        r = loop.rows(view, r);
        if (loop.next === RowLoopNext.Flush) await flush();
        else if (loop.next === RowLoopNext.StoreRejected) {
          const due = loop.rejected;
          loop.rejected = [];
          await p.phases.during('commit', store.addRejectedRows(due, fence));
        }
      }
      if (resetCDC) {
        await store.snapshots.write(sync.id, candidates.map((c) => [c.keyText, hashText(c.hashHigh, c.hashLow)]), [], fence);
        continue;
      }
      if (candidates.length === 0) continue;
      // A store that compares by itself answers only the rows that differ.
      if (lookups && !fullResync && store.snapshots.changes) {
        const words = new Uint32Array(2 * candidates.length);
        candidates.forEach((c, i) => {
          words[2 * i] = c.hashHigh;
          words[2 * i + 1] = c.hashLow;
        });
        const { added: missing, changed } = await store.snapshots.changes(sync.id, { keys: candidates.map((c) => c.keyText), hashes: words });
        matched += candidates.length - missing.length;
        // Both lists in order: the rows go out in the order the model gave them.
        for (let a = 0, m = 0; a < missing.length || m < changed.length; ) {
          const isAdded = m >= changed.length || (a < missing.length && (missing[a] as number) < (changed[m] as number));
          const c = candidates[isAdded ? (missing[a++] as number) : (changed[m++] as number)] as Candidate;
          const op: 'added' | 'changed' = isAdded ? 'added' : 'changed';
          const kind = writeKind(sync, op);
          if (kind !== null && batches.add(view.op(c.row, op, kind, c.keyText, c.hashHigh, c.hashLow))) await flush();
        }
        continue;
      }
      const snapshot = lookups ? await store.snapshots.get(sync.id, candidates.map((c) => c.keyText)) : NO_SNAPSHOT;
      for (const c of candidates) {
        const old = snapshot.get(c.keyText);
        if (old !== undefined) matched++;
        if (!fullResync && old !== undefined && old === hashText(c.hashHigh, c.hashLow)) continue;
        const op: 'added' | 'changed' = old === undefined ? 'added' : 'changed';
        const kind = writeKind(sync, op);
        if (kind === null) continue;
        if (batches.add(view.op(c.row, op, kind, c.keyText, c.hashHigh, c.hashLow))) await flush();
      }
    }
    progress.reading = false;
    logger.debug('model read', { syncRunId: run.id, rows: progress.querySize, ms: elapsed() });
    if (loop.rejected.length > 0) await p.phases.during('commit', store.addRejectedRows(loop.rejected, fence));
    if (p.target === null) {
      p.target = this.writeTarget(p, keyColumns, keyColumns, undefined, model.primaryKey);
      if (!resetCDC) p.writer = await p.phases.during('connect', p.destination.prepare(p.target));
    }

    // Removals: the snapshot's keys the model no longer returned — first counted against the
    // sync's mass-delete guard, so an emptied model never wipes the destination by surprise.
    // Rows past a cursor say nothing of the rest: removals wait for a full comparison.
    if (deletes && !resetCDC && !byCursor && progress.expectedRows > 0 && !run.options.allowMassDelete) {
      const removing = index ? index.unseenCount() : progress.expectedRows - matched;
      const refusal = massDeleteRefusal(sync, removing, progress.expectedRows);
      if (refusal) throw new LockstepError(ErrorCode.Conflict, refusal);
    }
    if (deletes && index) {
      for (const k of index.unseen()) await plan(PlannedOp.removal(k));
    } else if ((resetCDC || deletes) && !byCursor && progress.expectedRows > 0) {
      // Reading them by key ranges stays correct while delivered batches are committed to the
      // snapshot meanwhile (those keys were seen). Looked up in the store, the rows of the snapshot
      // the model returned were counted: the reading stops at the last removal, and does not start
      // when there is none.
      let left = lookups ? progress.expectedRows - matched : Infinity;
      let gone: string[] = [];
      const removed = left > 0 ? seen.unseen(() => store.snapshots.keys(sync.id, SNAPSHOT_PAGE)) : null;
      for await (const k of removed ?? []) {
        if (resetCDC) gone.push(k);
        else await plan(PlannedOp.removal(k));
        if (gone.length >= SNAPSHOT_PAGE) {
          await store.snapshots.write(sync.id, [], gone, fence);
          gone = [];
        }
        if (--left <= 0) break;
      }
      if (gone.length > 0) await store.snapshots.write(sync.id, [], gone, fence);
    }
    await batches.end();
    while (p.inflight.length > 0) await this.retire(p);
    await this.committed(p);
    // The cursor moves only when the run delivered everything it read past it.
    const failed = progress.failed.addedCount + progress.failed.changedCount + progress.failed.removedCount;
    if (cursor.highest !== null && failed === 0) {
      await p.phases.during('commit', store.snapshots.cursorSet(sync.id, { value: cursor.highest, runs: byCursor ? cursor.runs + 1 : 0 }, fence));
    }
    logger.debug('model delivered', { syncRunId: run.id, ms: elapsed() });
  }

  /**
   * The store's planner and a model's change cursor: a run reads only the rows whose cursor reached
   * the value its last run delivered (the source's CursorSql), looking them up in the snapshot, and
   * compares the whole model (seeing removals and writes that did not move the cursor) when none
   * was delivered yet, every `fullCompareEvery` runs, when asked (`fullCompare`), and on a full
   * resync or resetCDC. `highest`: the cursor's value before the rows are read, recorded when the
   * run ends clean.
   */
  private async storeCursor(p: Pipeline): Promise<{ kind: 'full' | 'cursor'; query: string; highest: string | number | null; runs: number; note: string | null }> {
    const { model, run, source, sync, signal } = p;
    const request = cursorRequest(model, run.options.fullResync || run.options.fullCompare === true);
    const full = { kind: 'full' as const, query: model.query, highest: null, runs: 0, note: null };
    if (!request) return full;
    const sql = source.cursorSql;
    if (!sql) return { ...full, note: `model "${model.slug}" declares cursor ${request.column}, which its source cannot read by: compared in full` };
    let highest: Value = null;
    try {
      for await (const batch of source.read(sql.highest(model.query, request.column), { batchSize: 1, signal })) highest ??= batch.rows[0]?.[0] ?? null;
    } catch (error) {
      if (!(error instanceof LockstepError) || error.code !== ErrorCode.Query) throw error;
      throw new LockstepError(
        ErrorCode.Query,
        `model "${model.slug}" declares cursor "${request.column}", and reading its highest value failed: ${error.message} — the cursor must be a column the model's query returns (fix cursor or the query)`,
        { cause: error },
      );
    }
    const value = typeof highest === 'number' || typeof highest === 'string' ? highest : highest === null ? null : String(highest);
    const stored = run.options.resetCDC ? null : await this.options.store.snapshots.cursorGet(sync.id);
    if (stored === null || request.full || stored.runs >= request.every - 1) return { ...full, highest: value, runs: stored?.runs ?? 0 };
    return { kind: 'cursor', query: sql.after(model.query, request.column, stored.value), highest: value, runs: stored.runs, note: null };
  }

  /**
   * Plans in the warehouse (see warehouse-planner.ts): the source compares the model with the
   * sync's planner table and hands out only the rows that differ, added, then changed, then
   * removed, each in key order; they are delivered in that order, and each written batch's last
   * row committed as the planner's watermark. The planner table takes the delivered rows in once
   * everything is delivered.
   */
  private async planInWarehouse(p: Pipeline, planner: WarehousePlanner): Promise<void> {
    const { store, logger } = this.options;
    const { run, sync, model, source, signal, progress } = p;
    const { fullResync, resetCDC } = run.options;
    const deletes = sync.mode === 'mirror' || sync.deleteBehavior === 'delete';
    const fence = { runId: run.id, attempt: run.attempt };
    const keyColumns = model.primaryKey.map((c) => mapColumn(sync, c));
    const started = performance.now();
    // The comparison the warehouse runs is this run's plan phase; reading its rows out, the query.
    p.phases.enter('plan');
    const plan = await planner.plan({
      sync: { id: sync.id, slug: sync.slug },
      run: { id: run.id, attempt: run.attempt },
      query: model.query,
      primaryKey: model.primaryKey,
      sends: { added: writeKind(sync, 'added') !== null, changed: writeKind(sync, 'changed') !== null, removed: deletes },
      resendAll: fullResync,
      reset: resetCDC,
      cursor: cursorRequest(model, fullResync || run.options.fullCompare === true),
    });
    logger.info('model compared in the warehouse', {
      syncRunId: run.id,
      comparison: plan.comparison,
      parts: plan.parts.map((part) => `${part.op} ${part.rows}`).join(', '),
      ms: Math.round(performance.now() - started),
      ...(plan.notes.length > 0 ? { notes: plan.notes.join('; ') } : {}),
    });
    const notes = [...p.plannerNotes, ...plan.notes];
    await p.update({ comparison: { planner: 'warehouse', kind: plan.comparison, ...(notes.length > 0 ? { notes } : {}) } });
    progress.expectedRows = plan.parts.reduce((n, part) => n + part.rows, 0);
    if (plan.refused.length > 0) {
      bump(progress.planned, 'added', plan.refused.length);
      bump(progress.failed, 'added', plan.refused.length);
      progress.settled += plan.refused.length;
      await store.addRejectedRows(plan.refused.map((r) => ({ syncRunId: run.id, key: encodeKey(r.key), op: 'added' as const, reason: r.reason })), fence);
    }
    const removing = plan.parts.find((part) => part.op === 'removed')?.rows ?? 0;
    if (removing > 0 && !run.options.allowMassDelete) {
      const refusal = massDeleteRefusal(sync, removing, plan.plannerRows);
      if (refusal) throw new LockstepError(ErrorCode.Conflict, refusal);
    }

    // As planAndDeliver's: rows wait for a writer's planAhead, batches go out full, or early to an idle destination.
    const batches = new PlannedBatches(p, (ops) => this.deliver(p, ops));
    const prepare = async (columns: string[], encoded: EncodedRows | undefined) => {
      const encoding = encoded ? { format: encoded.format, types: encoded.types } : undefined;
      const target = this.writeTarget(p, keyColumns, columns.map((c) => mapColumn(sync, c)), encoding, columns);
      assertUniqueColumns(sync, target.columns);
      p.target = target;
      p.lookups = await this.lookups(p, columns);
      p.writer = await p.phases.during('connect', p.destination.prepare(target));
      return encoding !== undefined && p.writer.takesLines === true && p.lookups.length === 0;
    };

    const sentAs = (op: 'added' | 'changed'): WriteOperation['kind'] => {
      const kind = writeKind(sync, op);
      if (kind === null) throw new LockstepError(ErrorCode.Internal, `the planner in the warehouse planned ${op} rows, which sync "${sync.slug}" (mode ${sync.mode}) does not send`);
      return kind;
    };
    let lines = false;
    for (const part of resetCDC ? [] : plan.parts) {
      let keyIndexes: number[] | null = null;
      let read = 0;
      for await (const rows of timedReads(source.read(part.query, { batchSize: this.options.readBatchSize, signal, encoded: true })[Symbol.asyncIterator](), p.phases)) {
        if (signal.aborted) throw new RunStopped(signal.reason as StopReason);
        await new Promise((resolve) => setImmediate(resolve));
        keyIndexes ??= model.primaryKey.map((column) => rows.columns.indexOf(column));
        if (p.target === null) lines = part.op === 'removed' ? await prepare(model.primaryKey, undefined) : await prepare(rows.columns, rows.encoded);
        const view = rows.encoded ? new EncodedBatch(rows.encoded, keyIndexes, lines) : new DecodedBatch(rows.rows, keyIndexes);
        progress.querySize += view.count;
        read += view.count;
        for (let r = 0; r < view.count; r++) {
          const k = view.keyText(r) as string;
          const op =
            part.op === 'removed'
              ? PlannedOp.removal(k)
              : view.op(r, part.op, sentAs(part.op), k, 0, 0);
          if (batches.add(op)) await batches.flush();
        }
      }
      // A read that ended early without an error (a database's client can lose the end of a stream)
      // must not pass for a complete one: the run's end takes every planned row in as delivered.
      if (read !== part.rows) {
        throw new LockstepError(
          ErrorCode.Transient,
          `reading the ${part.op} rows of model "${model.slug}" from the warehouse returned ${read} rows where the comparison planned ${part.rows}; nothing unread is recorded as delivered, and the next attempt reads them again`,
        );
      }
    }
    progress.reading = false;
    progress.querySize = plan.modelRows;
    if (!resetCDC) {
      if (p.target === null) await prepare(model.primaryKey, undefined);
      await batches.end();
      while (p.inflight.length > 0) await this.retire(p);
      await this.committed(p);
      await p.phases.during('commit', p.plannerCommits);
    }
    const finishing = performance.now();
    await p.phases.during('commit', planner.finish());
    logger.debug('model delivered', { syncRunId: run.id, ms: Math.round(performance.now() - started), plannerTableMs: Math.round(performance.now() - finishing) });
  }

  /**
   * Starts writing a batch and returns without waiting for the write: the next batch is planned
   * meanwhile. Up to the writer's `concurrentWrites` batches are written at once (each on its own;
   * a run never plans one key twice, so they touch different rows); when that many are in flight,
   * the oldest is waited for and its commit to the snapshot started. Commits happen in order, each
   * after its write. Cancellation is checked here, at the batch boundary.
   */
  private async deliver(p: Pipeline, batch: PlannedOp[]): Promise<void> {
    const writer = p.writer as DestinationWriter;
    while (p.inflight.length >= Math.max(1, writer.concurrentWrites ?? 1)) await this.retire(p);
    await this.checkStop(p);
    // What the writer does before its first wait (encoding the batch) is delivery's time.
    const was = p.phases.enter('deliver');
    const outcomes = this.write(p, writer, batch);
    p.phases.enter(was);
    const delivery: Delivery = { batch, outcomes, written: false };
    // Awaited by retire() or at the end; a failure is not lost meanwhile.
    outcomes.then(
      () => (delivery.written = true),
      () => (delivery.written = true),
    );
    p.inflight.push(delivery);
  }

  /**
   * Waits for the oldest batch in flight to be written, then starts committing it to the snapshot,
   * without waiting for that commit (only for the oldest one, when COMMITS_AHEAD are under way).
   */
  private async retire(p: Pipeline): Promise<void> {
    const oldest = p.inflight[0] as Delivery;
    // A failed write throws here with the batch still in flight: runPipeline's cleanup ignores it.
    const written = await p.phases.during('deliver', oldest.outcomes);
    p.inflight.shift();
    const settled = this.collect(p, oldest.batch, written);
    // Small batches are committed together (up to GROUP_ROWS rows, or GROUP_MS after the first of
    // them was written), so a commit's fixed cost is not paid per batch; the run's first batch is
    // committed at once, so its record turns `processing` without waiting.
    if (p.grouped.length === 0) p.groupStarted = performance.now();
    p.grouped.push(settled);
    p.groupedRows += settled.count;
    const due = !p.anyCommitted || p.groupedRows >= GROUP_ROWS || performance.now() - p.groupStarted >= GROUP_MS;
    if (due) await this.commitGrouped(p);
  }

  /** Starts committing the batches grouped so far, without waiting (only for the oldest commit, when COMMITS_AHEAD are under way). */
  private async commitGrouped(p: Pipeline): Promise<void> {
    if (p.grouped.length === 0) return;
    const grouped = mergeSettled(p.grouped);
    p.grouped = [];
    p.groupedRows = 0;
    p.anyCommitted = true;
    while (p.commits.length >= COMMITS_AHEAD) await p.phases.during('commit', p.commits.shift() as Promise<void>);
    const commit = this.persist(p, grouped);
    // Awaited by a later retire() or at the end; a failure is not lost meanwhile.
    commit.catch(() => undefined);
    p.commits.push(commit);
  }

  /** Commits what is grouped, then waits for the commits under way; the first failure stops the run. */
  private async committed(p: Pipeline): Promise<void> {
    await this.commitGrouped(p);
    while (p.commits.length > 0) await p.phases.during('commit', p.commits.shift() as Promise<void>);
  }

  /**
   * Commits a written batch to the snapshot and records the run's progress. What the commit needs
   * is taken from the batch first, so the batch's rows can be collected while the commit runs.
   */
  private settle(p: Pipeline, batch: PlannedOp[], outcomes: RowOutcome[]): Promise<void> {
    return this.persist(p, this.collect(p, batch, outcomes));
  }

  /** What a written batch leaves to record: delivered rows for the snapshot (in columns), removed keys, refused rows. */
  private collect(p: Pipeline, batch: PlannedOp[], outcomes: RowOutcome[]): Settled {
    const { run, sync } = p;
    if (outcomes.length !== batch.length) {
      throw new LockstepError(
        ErrorCode.Internal,
        `destination "${sync.destination}" answered ${outcomes.length} outcomes for a batch of ${batch.length} rows`,
      );
    }
    // Delivered rows in columns: a key and two hash words each, no pair or hash string per row.
    const keys: string[] = [];
    const hashes = new Uint32Array(2 * batch.length);
    const deletes: string[] = [];
    const ids: Array<[string, string]> = [];
    const rejected: RejectedRow[] = [];
    const successful = emptyCounts();
    const failed = emptyCounts();
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i] as PlannedOp;
      const outcome = outcomes[i] as RowOutcome;
      if (outcome.ok) {
        bump(successful, op.change);
        if (op.change === 'removed') deletes.push(op.keyText);
        else {
          if (outcome.id !== undefined) ids.push([op.keyText, outcome.id]);
          hashes[2 * keys.length] = op.hashHigh;
          hashes[2 * keys.length + 1] = op.hashLow;
          keys.push(op.keyText);
        }
      } else {
        bump(failed, op.change);
        rejected.push({ syncRunId: run.id, key: op.keyText, op: op.change, reason: outcome.reason });
      }
    }
    const planner = p.planner ? plannerProgress(batch, (i) => (outcomes[i] as RowOutcome).ok) : null;
    return { rows: { keys, hashes: hashes.subarray(0, 2 * keys.length) }, deletes, ids, rejected, successful, failed, count: batch.length, planner };
  }

  /** Records a written batch: delivered rows into the snapshot, refused rows as rejected, then the run's progress. */
  private async persist(p: Pipeline, settled: Settled): Promise<void> {
    const { progress } = p;
    const { store } = this.options;
    // Every commit carries the run's attempt: once another worker took the run over, it is refused.
    const fence = { runId: p.run.id, attempt: p.run.attempt };
    // Ids first: a crash between the two re-sends the rows (an idempotent upsert), while a snapshot
    // entry without its id would leave child syncs waiting for an id that never comes.
    if (p.planner) {
      // The planner's watermark moves in delivery order: each commit waits for the one before.
      const { planner } = p;
      const progressed = settled.planner;
      const commit = p.plannerCommits.then(async () => {
        if (p.destination.capabilities.recordIds) await store.snapshots.recordIdsWrite(p.sync.id, settled.ids, settled.deletes, fence);
        if (progressed) await planner.commit(progressed.through, progressed.rejected);
      });
      p.plannerCommits = commit.catch(() => undefined);
      await commit;
    } else {
      if (p.destination.capabilities.recordIds) await store.snapshots.recordIdsWrite(p.sync.id, settled.ids, settled.deletes, fence);
      p.snapshotWrites++;
      try {
        await store.snapshots.write(p.sync.id, settled.rows, settled.deletes, fence);
      } finally {
        p.snapshotWrites--;
      }
    }
    if (settled.rejected.length > 0) await store.addRejectedRows(settled.rejected, fence);
    // Counted once committed: the run's record never shows more delivered rows than the snapshot holds.
    add(progress.successful, settled.successful);
    add(progress.failed, settled.failed);
    progress.settled += settled.count;
    const first = !progress.processing;
    progress.processing = true;
    // The record follows at most every REPORT_EVERY_MS (the run's end records the final counts):
    // a write per batch would cost more than the batch when batches are small. While a later
    // snapshot write is under way, the store may be committing it (a SQLite file has one writer at
    // a time, and this write would wait for it, blocking the process): the record then waits for a
    // moment without one, up to REPORT_WAIT_MS.
    const now = performance.now();
    if (!first && now - progress.lastReport < REPORT_EVERY_MS) return;
    if (!first && p.snapshotWrites > 0 && now - progress.lastReport < REPORT_WAIT_MS) return;
    progress.lastReport = now;
    await p.update({ ...progressPatch(progress), status: first ? 'processing' : undefined });
  }

  /**
   * The sync's snapshot as an in-memory index, or null when it does not fit the memory budget
   * (then planning asks the store batch by batch).
   */
  private async loadSnapshot(p: Pipeline, rows: number): Promise<SnapshotIndex | null> {
    const syncId = p.sync.id;
    // The budget is the process's: runs in progress share it. What is left is held while loading
    // (other runs may load meanwhile), then only what the index uses.
    const budget = this.options.snapshotIndexBytes - this.indexBytesHeld;
    if (rows * INDEX_BYTES_PER_ROW > budget) return null;
    this.indexBytesHeld += budget;
    p.indexBytes = budget;
    const index = new SnapshotIndex(rows, budget);
    let fits = true;
    // A page is a few strings, however many entries it holds; between pages, other work of the
    // process gets its turn.
    for await (const page of this.options.store.snapshots.pages(syncId, INDEX_PAGE)) {
      await new Promise((resolve) => setImmediate(resolve));
      fits = index.addPage(page);
      if (!fits) break;
    }
    const used = fits ? index.bytes : 0;
    this.indexBytesHeld += used - budget;
    p.indexBytes = used;
    if (!fits) this.options.logger.info('snapshot larger than its memory budget: looking it up batch by batch', { syncId, rows, budget });
    return fits ? index : null;
  }

  private async checkStop(p: Pipeline): Promise<void> {
    if (p.signal.aborted) throw new RunStopped(p.signal.reason as StopReason);
    // Another process (the CLI, a second worker) may have asked for the cancel through the store;
    // asked at most every REPORT_EVERY_MS.
    const now = performance.now();
    if (now - p.progress.lastStopCheck < REPORT_EVERY_MS) return;
    p.progress.lastStopCheck = now;
    const current = await this.options.store.getSyncRun(p.run.id);
    if (current && current.attempt !== p.run.attempt) throw new RunStopped('lease-lost');
    if (current?.cancelRequested) throw new RunStopped('cancel');
  }

  /** Retries transient failures with the run's backoff policy (core/backoff.ts); a stop while waiting stops the run. */
  private async withRetries<T>(what: 'query' | 'write', signal: AbortSignal, phases: PhaseClock, fn: () => Promise<T>): Promise<T> {
    const { retry, clock, logger } = this.options;
    // A query waits out its backoff in the run's main loop; a write beside it (run-phases.ts).
    const sleep = (ms: number, s?: AbortSignal) =>
      what === 'query' ? phases.during('retry', clock.sleep(ms, s)) : backoffWait(clock.sleep(ms, s), phases);
    try {
      return await withBackoff(fn, {
        policy: retry,
        clock: { now: () => clock.now(), sleep },
        signal,
        onRetry: ({ attempt, delayMs, error }) => logger.warn(`transient ${what} error, retrying`, { attempt, delayMs: Math.round(delayMs), error: error.message }),
      });
    } catch (thrown) {
      if (signal.aborted && !(thrown instanceof LockstepError)) throw new RunStopped(signal.reason as StopReason);
      throw thrown;
    }
  }

  /** Where the sync writes, with its kind settings and access to parents' recorded ids. */
  private writeTarget(p: Pipeline, keyColumns: string[], columns: string[], encoding: WriteTarget['encoding'], modelColumns: string[]): WriteTarget {
    const { store } = this.options;
    return {
      object: p.sync.object,
      keyColumns,
      columns,
      modelColumns,
      batchSize: p.batchSize,
      encoding,
      settings: p.sync.settings,
      sync: p.sync.slug,
      signal: interruptingWrites(p.signal),
      recordIds: async (slug, keys) => {
        const parent = await store.getSync(slug);
        return parent ? store.snapshots.recordIdsGet(parent.id, keys) : new Map();
      },
    };
  }

  /** The sync's `lookup` mappings, by field of the target. */
  private async lookups(p: Pipeline, modelColumns: string[]): Promise<Lookup[]> {
    const found: Lookup[] = [];
    for (const mapping of p.sync.mappings) {
      if (!mapping.lookup) continue;
      const column = modelColumns.indexOf(mapping.from);
      if (column < 0) {
        throw new LockstepError(
          ErrorCode.Schema,
          `sync "${p.sync.slug}" looks up ids for column "${mapping.from}", but model "${p.model.slug}" returns only ${modelColumns.map((c) => `"${c}"`).join(', ')} — fix the mapping or the query`,
        );
      }
      const parent = await this.options.store.getSync(mapping.lookup.sync);
      if (!parent) throw new LockstepError(ErrorCode.NotFound, `sync "${p.sync.slug}" looks up ids of sync "${mapping.lookup.sync}", which does not exist`);
      found.push({ column, from: mapping.from, sync: parent.slug, syncId: parent.id });
    }
    return found;
  }

  /**
   * Writes a batch and answers per row: rows whose parent id is not recorded yet are refused
   * without being sent; a failure of the whole batch is retried (withRetries); rows the destination
   * answered `retryable` are sent again after a backoff, and refused with their last message when
   * the attempts run out.
   */
  private async write(p: Pipeline, writer: DestinationWriter, batch: PlannedOp[]): Promise<RowOutcome[]> {
    let first: RowOutcome[] | null = null;
    if (p.lookups.length === 0) {
      // The common case: the batch as planned, answered without a row to send again.
      first = await this.withRetries('write', p.signal, p.phases, () => writer.write(batch));
      if (!first.some((answer) => !answer.ok && answer.retryable === true)) return first;
    }
    const outcomes: RowOutcome[] = new Array(batch.length);
    let ops: WriteOperation[] = batch;
    let places = batch.map((_, i) => i);
    if (p.lookups.length > 0) ({ ops, places } = await this.resolveLookups(p, batch, outcomes));
    const { retry, clock, logger } = this.options;
    for (let attempt = 1; ops.length > 0; attempt++) {
      const sent = ops;
      const answers = attempt === 1 && first !== null ? first : await this.withRetries('write', p.signal, p.phases, () => writer.write(sent));
      if (answers.length !== sent.length) {
        throw new LockstepError(ErrorCode.Internal, `destination "${p.sync.destination}" answered ${answers.length} outcomes for a batch of ${sent.length} rows`);
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
      if (again.length === 0) break;
      const delayMs = backoffDelay(retry, attempt, retryAfter);
      logger.warn('rows answered as retryable, sending them again', { syncRunId: p.run.id, rows: again.length, attempt, delayMs: Math.round(delayMs) });
      try {
        await backoffWait(clock.sleep(delayMs, p.signal), p.phases);
      } catch {
        throw new RunStopped(p.signal.reason as StopReason);
      }
      ops = again.map((i) => sent[i] as WriteOperation);
      places = again.map((i) => places[i] as number);
    }
    return outcomes;
  }

  /** The batch with looked-up fields replaced by the parents' ids; rows without one are refused in `outcomes`. */
  private async resolveLookups(p: Pipeline, batch: PlannedOp[], outcomes: RowOutcome[]): Promise<{ ops: WriteOperation[]; places: number[] }> {
    const ids = await Promise.all(
      p.lookups.map(async (lookup) => {
        const keys = new Set<string>();
        for (const op of batch) if (op.change !== 'removed') for (const k of lookupKeys(op.values[lookup.column] ?? null)) keys.add(k);
        return this.options.store.snapshots.recordIdsGet(lookup.syncId, [...keys]);
      }),
    );
    const ops: WriteOperation[] = [];
    const places: number[] = [];
    batch.forEach((op, i) => {
      if (op.change === 'removed') {
        ops.push(op);
        places.push(i);
        return;
      }
      const values = [...op.values];
      for (const [n, lookup] of p.lookups.entries()) {
        const value = values[lookup.column] ?? null;
        if (value === null) continue;
        const id = lookupKeys(value).map((k) => ids[n]?.get(k)).find((found) => found !== undefined);
        if (id === undefined) {
          outcomes[i] = {
            ok: false,
            reason: `${lookup.from} ${String(value)} has not been delivered by ${lookup.sync} yet (no id recorded for it); this row is sent again on the next run`,
          };
          return;
        }
        values[lookup.column] = id;
      }
      ops.push({ kind: op.kind, key: op.key, values });
      places.push(i);
    });
    return { ops, places };
  }
}

/** The batches of `reads`, the wait for each counted as the run's `query` phase and the work on it as `plan`. */
async function* timedReads<T>(reads: AsyncIterator<T>, phases: PhaseClock): AsyncGenerator<T> {
  try {
    for (;;) {
      phases.enter('query');
      const result = await reads.next();
      phases.enter('plan');
      if (result.done) return;
      yield result.value;
    }
  } finally {
    await reads.return?.(undefined);
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

/** The rest of `iterator`, whose next result `first` is already under way; closes it when left early. */
async function* resume<T>(first: Promise<IteratorResult<T>>, iterator: AsyncIterator<T>): AsyncGenerator<T> {
  try {
    for (let result = await first; !result.done; result = await iterator.next()) yield result.value;
  } finally {
    await iterator.return?.();
  }
}

/** The destination field a model column is written to. */
function mapColumn(sync: SyncRecord, column: string): string {
  return sync.mappings.find((m) => m.from === column)?.to ?? column;
}

function assertUniqueColumns(sync: SyncRecord, columns: string[]): void {
  const seen = new Set<string>();
  for (const c of columns) {
    if (seen.has(c)) {
      throw new LockstepError(
        ErrorCode.Schema,
        `sync "${sync.slug}" writes two model columns to destination field "${c}" — change its mappings or rename a column in the model's query`,
      );
    }
    seen.add(c);
  }
}

/** What the destination is asked to do with an added or changed row, or null when the mode skips it. */
function writeKind(sync: SyncRecord, op: 'added' | 'changed'): WriteOperation['kind'] | null {
  switch (sync.mode) {
    case 'upsert':
    case 'mirror':
      // Upsert even for rows new to the snapshot: a batch delivered just before a crash is then a no-op.
      return 'upsert';
    case 'insert':
      return op === 'added' ? 'insert' : null;
    case 'update':
      return 'update';
  }
}

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
 *
 * This module is the pipeline that wires the run's parts: planning (planning.ts, planned-rows.ts),
 * delivery to the destination (delivery.ts), and the run's record and commits (run-bookkeeping.ts).
 */
import type { BackoffPolicy } from '../core/backoff.js';
import { resolveConnection } from '../core/connector-registry.js';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { didYouMean } from '../core/hints.js';
import { encodeKey } from '../core/keys.js';
import type { Clock, Connectors, Destination, EncodedRows, Logger, Source, Store, Value, WarehousePlan, WarehousePlanner, WriteOperation, WriteTarget } from '../core/ports.js';
import type { ApiUsage, OperationCounts, RunTarget, SyncRun } from '../core/runs.js';
import { PhaseClock } from '../core/run-phases.js';
import { massDeleteRefusal } from '../core/sync-rules.js';
import type { ModelRecord, SyncRecord } from '../core/workspace.js';
import { Delivery, interruptingWrites, withRetries, type Lookup } from './delivery.js';
import { KeySet } from './key-set.js';
import { DecodedBatch, EncodedBatch, PlannedOp, type Candidate } from './planned-rows.js';
import { PlannedBatches, RowLoop, RowLoopNext, bump } from './planning.js';
import { hashText } from './row-hash.js';
import { RunBookkeeping, RunRecord, RunStopped, emptyCounts, totalCount, type RunProgress, type StopReason } from './run-bookkeeping.js';
import { SnapshotIndex } from './snapshot-index.js';
import { cursorRequest, openWarehousePlanner } from './warehouse-planner.js';

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

/** One run's pipeline: what planning, delivery and bookkeeping share. */
interface Pipeline {
  run: SyncRun;
  sync: SyncRecord;
  model: ModelRecord;
  source: Source;
  destination: Destination;
  signal: AbortSignal;
  /** The run's record in the store. */
  record: RunRecord;
  progress: RunProgress;
  /** Where the sync writes, set once the model's columns are known. */
  target: WriteTarget | null;
  /** Sends planned batches to the destination (delivery.ts). */
  delivery: Delivery;
  /** Commits written batches and records the run's progress (run-bookkeeping.ts). */
  bookkeeping: RunBookkeeping;
  /** Bytes of the snapshot budget this run's index holds. */
  indexBytes: number;
  /** Where the run's time goes (core/run-phases.ts). */
  phases: PhaseClock;
  /** The keys seen in this reading of the model (closed when the pipeline ends: it may hold a temporary file). */
  seen: KeySet | null;
  /** The planner in the warehouse, when the source keeps the snapshot (see warehouse-planner.ts). */
  planner: WarehousePlanner | null;
  /** Notes for the run record's comparison (e.g. `planner: auto` fell back to the store). */
  plannerNotes: string[];
}

/** Snapshot keys read per page when looking for removals, or entries when loading the index. */
const SNAPSHOT_PAGE = 5000;
/** Snapshot entries read per page when loading the index (a page is three strings). */
const INDEX_PAGE = 10_000;
/** Bytes the snapshot index needs per row before the keys' text, to decide whether to try loading it. */
const INDEX_BYTES_PER_ROW = 36;
const NO_SNAPSHOT: ReadonlyMap<string, string> = new Map();

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
    const record = new RunRecord({ store, clock, logger, run: claimed, onProgress: control.onProgress });
    let source: Source | null = null;
    let destination: Destination | null = null;
    let planner: WarehousePlanner | null = null;
    // Connections are closed before the final status is recorded (see RunRecord.finished).
    // The destination's API budget, read before it closes, goes into the run's final record.
    let apiUsage: ApiUsage | undefined;
    // The run's progress, once it has one: a run that ends early records what it delivered.
    let started: RunProgress | null = null;
    const cleanup = async () => {
      apiUsage = destination?.apiUsage?.() ?? apiUsage;
      const open = [source, destination, planner];
      source = destination = planner = null;
      await Promise.all(open.map((c) => c?.close().catch(() => undefined)));
      return apiUsage;
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
      logger.info('sync run started', { ...record.logFields, sync: sync.slug, trigger: claimed.trigger.type });

      // A run cancelled while a server takes its time to answer the connection stops at once.
      source = await unlessStopped(
        this.options.connectors.openSource(resolveConnection(sourceDef, 'source', this.options.baseDir, this.options.env)),
        control.signal,
      );
      destination = await unlessStopped(
        // The destination's rate limiter reports the time the run's requests wait for their turn.
        this.options.connectors.openDestination(resolveConnection(destinationDef, 'destination', this.options.baseDir, this.options.env), { waits: phases, signal: control.signal }),
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

      // A run taken over from a worker that stopped keeps what that worker delivered: those rows are
      // in the snapshot and are not planned again, so they count as planned and delivered already.
      // A full resync ignores the snapshot: taken over, it starts again, and counts from nothing.
      const carried = claimed.attempt > 1 && !claimed.options.fullResync ? claimed.successfulRows : emptyCounts();
      if (claimed.attempt > 1 && claimed.options.fullResync) {
        // The counts start again with the resync (commits add to the stored ones).
        await record.update({ plannedRows: emptyCounts(), successfulRows: emptyCounts(), failedRows: emptyCounts() });
      }
      const progress: RunProgress = {
        planned: { ...carried },
        successful: { ...carried },
        failed: emptyCounts(),
        querySize: 0,
        settled: 0,
        reading: true,
        expectedRows: 0,
        estimatedRows: 0,
        processing: false,
      };
      started = progress;
      const bookkeeping = new RunBookkeeping({
        store,
        record,
        progress,
        phases,
        fence: { runId: claimed.id, attempt: claimed.attempt },
        syncId: sync.id,
        recordIds: destination.capabilities.recordIds,
        planner,
      });
      const delivery = new Delivery({
        runId: claimed.id,
        attempt: claimed.attempt,
        destination: sync.destination,
        batchSize: Math.max(1, Math.min(sync.batchSize, destination.capabilities.maxBatchSize ?? Infinity)),
        store,
        bookkeeping,
        plannerInWarehouse: planner !== null,
        retry: this.options.retry,
        clock,
        logger,
        signal: control.signal,
        phases,
      });
      // The source's planner changed since the sync last compared (planner: store ↔ warehouse, or
      // auto falling back): the other planner's record of what was delivered is stale, so this run
      // sends every row once, as a full resync does.
      const switched = await this.plannerSwitch(claimed, planner === null ? 'store' : 'warehouse', runTarget(sync));
      const pipeline: Pipeline = {
        run: switched ? { ...claimed, options: { ...claimed.options, fullResync: true } } : claimed,
        sync,
        model,
        source,
        destination,
        signal: control.signal,
        record,
        progress,
        target: null,
        delivery,
        bookkeeping,
        indexBytes: 0,
        phases,
        seen: null,
        planner,
        plannerNotes: [...(opened.note ? [opened.note] : []), ...(switched ? [switched] : [])],
      };
      // The rows rejected before this reading (by an earlier attempt, or by this one before it
      // started over) were neither delivered nor recorded as such: each is planned again, and then
      // rejected again or delivered. The run lists what its last reading rejected, as it counts it.
      let readBefore = claimed.attempt > 1;
      await withRetries('query', { retry: this.options.retry, clock, logger, signal: control.signal, phases }, async () => {
        if (readBefore) {
          await store.clearRejectedRows(claimed.id, { runId: claimed.id, attempt: claimed.attempt });
          progress.successful = await this.deliveredBefore(pipeline);
        }
        readBefore = true;
        // A transient failure part-way restarts the run's reading: what was delivered is in the
        // snapshot by now and is not planned again, so it stays counted as planned and delivered.
        progress.planned = { ...progress.successful };
        progress.failed = emptyCounts();
        progress.querySize = 0;
        progress.settled = totalCount(progress.successful);
        progress.reading = true;
        await this.runPipeline(pipeline);
      });
      // A limit reached during the last batch still ends the run: it took longer than it may.
      if (control.signal.aborted && typeof control.signal.reason === 'object') throw new RunStopped(control.signal.reason as StopReason);
      phases.enter('finish');
      return await record.finished(progress, phases, cleanup);
    } catch (thrown) {
      phases.enter('finish');
      await cleanup();
      return await record.ended(thrown, { signal: control.signal, progress: started, phases, apiUsage });
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
      const left = p.delivery.takeInflight();
      await p.bookkeeping.settleCommits();
      await p.delivery.settleLeft(left);
    }
  }

  /**
   * What a run reading its model again (after a transient failure, or taken over) counts as
   * delivered already: what the store holds as delivered, which the snapshot's commits count in
   * their transactions, so exactly the rows not planned again. A dry run's store keeps none of its
   * commits: its rows are all planned again, and it counts from nothing. A full resync sends every
   * row again: its counts start again, stored ones too. With the planner in the warehouse, the
   * planner says what was delivered (planInWarehouse).
   */
  private async deliveredBefore(p: Pipeline): Promise<OperationCounts> {
    const { run, record } = p;
    if (run.options.fullResync) {
      await record.update({ plannedRows: emptyCounts(), successfulRows: emptyCounts(), failedRows: emptyCounts() });
      return emptyCounts();
    }
    const stored = await this.options.store.getSyncRun(run.id);
    return { ...(stored?.successfulRows ?? emptyCounts()) };
  }

  /**
   * Why this run must send every row, or null when it need not (or no run finished before): the
   * planner's record of what was delivered is not about what the sync delivers now, because
   * - the source's planner is not the one the sync's last finished run used (the other one's
   *   record went stale meanwhile);
   * - the sync writes to another destination or object than that run did: the store drops its
   *   snapshot with such a change (see workspace-changes.ts), but a planner table in the source is
   *   out of the store's reach.
   * Judged by the last run that went to the end (success or warning): one that failed after such a
   * change may have sent only part of the rows.
   */
  private async plannerSwitch(run: SyncRun, now: 'store' | 'warehouse', target: RunTarget): Promise<string | null> {
    if (run.options.fullResync || run.options.resetCDC) return null;
    const earlier = await this.options.store.listSyncRuns({ syncId: run.syncId, statuses: ['success', 'warning'], limit: 20, offset: 0, order: 'desc' });
    const last = earlier.find((r) => r.id !== run.id && r.comparison !== undefined)?.comparison;
    if (!last) return null;
    if (last.planner !== now) {
      return `the source's planner changed from ${last.planner === 'store' ? "Lockstep's store" : 'the warehouse'} to ${now === 'store' ? "Lockstep's store" : 'the warehouse'} since the sync's last run: its record there is out of date, so every row is sent once`;
    }
    const before = last.target;
    if (now === 'warehouse' && before && (before.destination !== target.destination || before.object !== target.object)) {
      return (
        `the sync writes to another destination or object since its last run (${before.destination} "${before.object}" then, ${target.destination} "${target.object}" now): ` +
        "the planner table in the source says only what the old one received, so every row is sent once"
      );
    }
    return null;
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
    await p.record.update({ comparison: { planner: 'store', kind: cursor.kind, ...(notes.length > 0 ? { notes } : {}), target: runTarget(sync) } });
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
      if (progress.expectedRows === 0) progress.estimatedRows = await this.lastRunRows(run);
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
    const batches = new PlannedBatches(progress, p.delivery);
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
      // A cancel from another process is in the store only: a run with nothing to send yet looks there too.
      await p.delivery.checkStop();
      // A source with rows buffered answers without going through the event loop: let the
      // destination's replies in (its write goes on while this batch is planned).
      await new Promise((resolve) => setImmediate(resolve));
      if (keyIndexes === null) {
        keyIndexes = model.primaryKey.map((column) => {
          const index = rows.columns.indexOf(column);
          if (index < 0) {
            throw new LockstepError(
              ErrorCode.Schema,
              `model "${model.slug}" declares primary key column "${column}", but its query returns only ${rows.columns.map((c) => `"${c}"`).join(', ')}${didYouMean(column, rows.columns)} — fix primaryKey or the query`,
            );
          }
          return index;
        });
        const encoding = rows.encoded ? { format: rows.encoded.format, types: rows.encoded.types } : undefined;
        const target = this.writeTarget(p, { keyColumns, columns: rows.columns.map((c) => mapColumn(sync, c)), encoding, modelColumns: rows.columns });
        target.jsonColumns = rows.jsonColumns?.map((c) => mapColumn(sync, c));
        // Past a cursor or after resetCDC the snapshot was not counted: whether the sync delivered before is not known.
        if (!resetCDC && !byCursor) target.delivered = progress.expectedRows > 0;
        assertUniqueColumns(sync, target.columns);
        p.target = target;
        p.delivery.lookups = await this.lookups(p, rows.columns);
        if (!resetCDC) p.delivery.writer = await p.phases.during('connect', p.destination.prepare(target));
        // A looked-up field's value is replaced before writing, so those rows go as values.
        lines = encoding !== undefined && p.delivery.writer?.takesLines === true && p.delivery.lookups.length === 0;
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
      p.target = this.writeTarget(p, { keyColumns, columns: keyColumns, encoding: undefined, modelColumns: model.primaryKey });
      if (!resetCDC) p.delivery.writer = await p.phases.during('connect', p.destination.prepare(p.target));
    }

    // Removals: the snapshot's keys the model no longer returned — first counted against the
    // sync's mass-delete guard, so an emptied model never wipes the destination by surprise.
    // Rows past a cursor say nothing of the rest: removals wait for a full comparison.
    if (deletes && !resetCDC && !byCursor && progress.expectedRows > 0 && !run.options.allowMassDelete) {
      const removing = index ? index.unseenCount() : progress.expectedRows - matched;
      const refusal = massDeleteRefusal(sync, removing, progress.expectedRows, { cursor: p.model.cursor !== undefined });
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
    await p.delivery.drain();
    await p.bookkeeping.committed();
    if (cursor.highest !== null) await p.bookkeeping.moveCursor({ value: cursor.highest, runs: byCursor ? cursor.runs + 1 : 0 });
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
  /** The rows the sync's last finished run before `run` read (0 when none did): the size of the model as last seen. */
  private async lastRunRows(run: SyncRun): Promise<number> {
    const finished = await this.options.store.listSyncRuns({ syncId: run.syncId, statuses: ['success', 'warning'], limit: 2, offset: 0, order: 'desc' });
    return finished.find((r) => r.id < run.id)?.querySize ?? 0;
  }

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
    // What the run delivered before (an earlier attempt, or this one before it started over) is what
    // the planner took in by its watermark, counted as recorded with it: the run's record may not
    // have caught up with it before a worker was killed. A full resync sends every row again.
    const carried = fullResync ? emptyCounts() : plan.delivered;
    progress.planned = { ...carried };
    progress.successful = { ...carried };
    progress.settled = totalCount(carried);
    p.bookkeeping.carryOn(carried);
    const notes = [...p.plannerNotes, ...plan.notes];
    await p.record.update({ comparison: { planner: 'warehouse', kind: plan.comparison, ...(notes.length > 0 ? { notes } : {}), target: runTarget(p.sync) } });
    progress.expectedRows = plan.parts.reduce((n, part) => n + part.rows, 0);
    const refuse = async (refused: WarehousePlan['refused']) => {
      if (refused.length === 0) return;
      bump(progress.planned, 'added', refused.length);
      bump(progress.failed, 'added', refused.length);
      progress.settled += refused.length;
      await store.addRejectedRows(refused.map((r) => ({ syncRunId: run.id, key: encodeKey(r.key), op: 'added' as const, reason: r.reason })), fence);
    };
    await refuse(plan.refused);
    let modelRows = plan.modelRows;
    const removing = plan.parts.find((part) => part.op === 'removed')?.rows ?? 0;
    if (removing > 0 && !run.options.allowMassDelete) {
      const refusal = massDeleteRefusal(sync, removing, plan.plannerRows, { cursor: model.cursor !== undefined });
      if (refusal) throw new LockstepError(ErrorCode.Conflict, refusal);
    }

    // As planAndDeliver's: rows wait for a writer's planAhead, batches go out full, or early to an idle destination.
    const batches = new PlannedBatches(progress, p.delivery);
    const prepare = async (columns: string[], encoded: EncodedRows | undefined, jsonColumns?: readonly string[]) => {
      const encoding = encoded ? { format: encoded.format, types: encoded.types } : undefined;
      const target = this.writeTarget(p, { keyColumns, columns: columns.map((c) => mapColumn(sync, c)), encoding, modelColumns: columns });
      target.jsonColumns = jsonColumns?.map((c) => mapColumn(sync, c));
      target.delivered = plan.plannerRows > 0 || totalCount(plan.delivered) > 0;
      assertUniqueColumns(sync, target.columns);
      p.target = target;
      const { delivery } = p;
      // Removals carry only their keys, and look nothing up (a run with nothing added or changed).
      delivery.lookups = columns === model.primaryKey ? [] : await this.lookups(p, columns);
      const writer = await p.phases.during('connect', p.destination.prepare(target));
      delivery.writer = writer;
      return encoding !== undefined && writer.takesLines === true && delivery.lookups.length === 0;
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
      const reading = source.read(part.query, { batchSize: this.options.readBatchSize, signal, encoded: true, snapshot: part.snapshot });
      for await (const rows of timedReads(reading[Symbol.asyncIterator](), p.phases)) {
        await p.delivery.checkStop();
        await new Promise((resolve) => setImmediate(resolve));
        keyIndexes ??= model.primaryKey.map((column) => rows.columns.indexOf(column));
        if (p.target === null) lines = part.op === 'removed' ? await prepare(model.primaryKey, undefined) : await prepare(rows.columns, rows.encoded, rows.jsonColumns);
        const view = rows.encoded ? new EncodedBatch(rows.encoded, keyIndexes, lines) : new DecodedBatch(rows.rows, keyIndexes);
        progress.querySize += view.count;
        read += view.count;
        // A key is spelled only when asked for (a removal's delete, a batch's last row, a rejected
        // row): not for every row that travels.
        for (let r = 0; r < view.count; r++) {
          const op = part.op === 'removed' ? PlannedOp.removal(view.keyText(r) as string) : view.op(r, part.op, sentAs(part.op), null, 0, 0);
          if (batches.add(op)) await batches.flush();
        }
      }
      // Read while the warehouse staged it: its count (and the model's refused rows) come now.
      let planned = part.rows;
      if (part.counted) {
        const counted = await p.phases.during('plan', part.counted);
        planned = counted.rows;
        progress.expectedRows += counted.rows - part.rows;
        modelRows = counted.rows + counted.refused.length;
        await refuse(counted.refused);
      }
      // A read that ended early without an error (a database's client can lose the end of a stream)
      // must not pass for a complete one: the run's end takes every planned row in as delivered.
      if (read !== planned) {
        throw new LockstepError(
          ErrorCode.Transient,
          `reading the ${part.op} rows of model "${model.slug}" from the warehouse returned ${read} rows where the comparison planned ${planned}; nothing unread is recorded as delivered, and the next attempt reads them again`,
        );
      }
    }
    progress.reading = false;
    progress.querySize = modelRows;
    if (!resetCDC) {
      if (p.target === null) await prepare(model.primaryKey, undefined);
      await batches.end();
      await p.delivery.drain();
      await p.bookkeeping.committed();
      await p.bookkeeping.plannerCommitted();
    }
    const finishing = performance.now();
    await p.phases.during('commit', planner.finish());
    logger.debug('model delivered', { syncRunId: run.id, ms: Math.round(performance.now() - started), plannerTableMs: Math.round(performance.now() - finishing) });
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
    for await (const page of this.options.store.snapshots.pages(syncId, INDEX_PAGE, rows)) {
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

  /** Where the sync writes, with its kind settings and access to parents' recorded ids. */
  private writeTarget(p: Pipeline, fields: Pick<WriteTarget, 'keyColumns' | 'columns' | 'encoding' | 'modelColumns'>): WriteTarget {
    const { keyColumns, columns, encoding, modelColumns } = fields;
    const { store } = this.options;
    return {
      object: p.sync.object,
      keyColumns,
      columns,
      modelColumns,
      batchSize: p.delivery.batchSize,
      encoding,
      settings: p.sync.settings,
      sync: p.sync.slug,
      signal: interruptingWrites(p.signal),
      recordIds: async (slug, keys) => {
        const parent = await store.getSync(slug);
        return parent ? store.snapshots.recordIdsGet(parent.id, keys) : new Map();
      },
      deliveredKeys: async (slug, keys) => {
        const parent = await store.getSync(slug);
        return new Set(parent ? (await store.snapshots.get(parent.id, keys)).keys() : []);
      },
      syncsWriting: async (object) => {
        const { syncs } = await store.loadWorkspace();
        return syncs
          .filter((s) => s.destination === p.sync.destination && s.object.toLowerCase() === object.toLowerCase())
          .map((s) => ({ slug: s.slug, settings: s.settings }));
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

/** Where a run of `sync` delivers, as its comparison records it. */
function runTarget(sync: SyncRecord): RunTarget {
  return { destination: sync.destination, object: sync.object };
}

/**
 * Planning's side of a run's pipeline: the store's planner's loop over a read batch's rows (RowLoop)
 * and the planned rows on their way to the destination in batches (PlannedBatches). What they read
 * of the pipeline is named here (PlanningProgress, BatchDelivery); the sync runner's pipeline has it.
 */
import type { DestinationWriter, Value, WriteOperation } from '../core/ports.js';
import type { OperationCounts, RejectedRow } from '../core/runs.js';
import { encodeKey } from '../core/keys.js';
import type { KeySet } from './key-set.js';
import type { Candidate, Change, PlannedOp, PlanningBatch } from './planned-rows.js';
import { rowHash } from './row-hash.js';
import type { SnapshotIndex } from './snapshot-index.js';

/** A batch open this long goes to an idle destination before it is full (see PlannedBatches.add). */
const EAGER_FLUSH_MS = 50;
/** Rejected rows found while planning are stored in groups of this many. */
const REJECTED_FLUSH = 1000;

/** The run's counts planning updates. */
export interface PlanningProgress {
  planned: OperationCounts;
  failed: OperationCounts;
  /** Planned rows with an outcome (a rejected row has one at once). */
  settled: number;
}

/** What batching reads of the run's delivery (delivery.ts), and where it sends a batch. */
export interface BatchDelivery {
  /** Set once the model's columns are known. */
  readonly writer: DestinationWriter | null;
  /** Rows per batch, unless the writer chose its own. */
  readonly batchSize: number;
  /** The batches being written; `written` once the destination answered. */
  readonly inflight: ReadonlyArray<{ written: boolean }>;
  send(batch: PlannedOp[]): Promise<void>;
}

/**
 * Planned rows on their way to the destination, in batches. Adding is synchronous (true when the
 * batch should go out now), so the loop over rows awaits only at batch boundaries. A writer that
 * chooses how to write by the run's size (planAhead) sees that many rows planned, or all of them,
 * before its first batch; until then they wait here. Batches go out full; one that fills slowly
 * (few rows changed) goes out early once the destination is idle, so that writing overlaps with
 * reading instead of piling up at the end (wall time, not the injected clock: this only paces the
 * pipeline, what is written does not depend on it).
 */
export class PlannedBatches {
  private batch: PlannedOp[] = [];
  /**
   * When the open batch got its first row. Times start as a double (not the integer 0), here and in
   * Delivery and RunBookkeeping: the first performance.now() stored into an integer field changes the
   * object's shape, which throws away the optimised code of the per-row and per-batch functions
   * using it, compiled again a moment later.
   */
  private opened = -Infinity;
  private queued = 0;
  private held = true;

  constructor(
    private readonly progress: PlanningProgress,
    private readonly delivery: BatchDelivery,
  ) {}

  private size(): number {
    return Math.max(1, this.delivery.writer?.batchSize ?? this.delivery.batchSize);
  }

  add(op: PlannedOp): boolean {
    const { delivery, batch } = this;
    bump(this.progress.planned, op.change);
    if (batch.length === 0) this.opened = performance.now();
    batch.push(op);
    this.queued++;
    if (this.held) {
      const ahead = delivery.writer?.planAhead ?? 0;
      if (ahead > 0 && this.queued <= ahead) return false;
      this.held = false;
      this.opened = performance.now();
      if (ahead > 0) delivery.writer?.plan?.({ rows: this.queued, complete: false });
    }
    if (batch.length >= this.size()) return true;
    // A writer that chose its batch size (e.g. a bulk job per batch) gets full batches only.
    if (delivery.writer?.batchSize !== undefined) return false;
    return (batch.length & 63) === 0 && delivery.inflight.every((d) => d.written) && performance.now() - this.opened >= EAGER_FLUSH_MS;
  }

  /** Sends what is queued; rows held for a writer's planAhead leave in batches of the size it chose. */
  async flush(): Promise<void> {
    const size = this.size();
    const all = this.batch;
    this.batch = [];
    for (let start = 0; start < all.length; start += size) await this.delivery.send(all.length <= size ? all : all.slice(start, start + size));
  }

  /** Every row is planned: a writer still waiting for planAhead learns the total, and the rest goes out. */
  async end(): Promise<void> {
    if (this.held && (this.delivery.writer?.planAhead ?? 0) > 0) this.delivery.writer?.plan?.({ rows: this.queued, complete: true });
    if (this.batch.length > 0) await this.flush();
  }
}

/** Counts `by` rows of a kind of change. */
export function bump(counts: OperationCounts, op: Change, by = 1): void {
  if (op === 'added') counts.addedCount += by;
  else if (op === 'changed') counts.changedCount += by;
  else counts.removedCount += by;
}

/** What planAndDeliver does after the row loop returned (RowLoop.next). */
export const RowLoopNext = {
  /** The batch's rows are all planned. */
  Done: 0,
  /** A batch of planned rows is full: it goes to the destination. */
  Flush: 1,
  /** REJECTED_FLUSH rejected rows wait: they go to the store. */
  StoreRejected: 2,
} as const;
export type RowLoopNext = (typeof RowLoopNext)[keyof typeof RowLoopNext];

/** What the store's planner's row loop needs, the same for every batch of a run. */
export interface RowLoopSettings {
  runId: number;
  primaryKey: readonly string[];
  progress: PlanningProgress;
  batches: PlannedBatches;
  /** The snapshot in memory, or null (an empty snapshot, or one looked up in the store). */
  index: SnapshotIndex | null;
  seen: KeySet;
  fullResync: boolean;
  /** Rows without the index are collected as candidates (looked up in the store, or only recorded for resetCDC) instead of planned as added. */
  collect: boolean;
  /** What the destination is asked to do with added and changed rows (null: the mode skips them). */
  added: WriteOperation['kind'] | null;
  changed: WriteOperation['kind'] | null;
}

/**
 * The loop over a read batch's rows when the store plans: validates each row (null and duplicate
 * keys are rejected), hashes it, compares it with the snapshot and queues what is to be written.
 * Synchronous, and a small function of its own: it returns to planAndDeliver only when something
 * must be awaited (`next`), and the optimising compiler compiles this loop early and alone rather
 * than the whole of planAndDeliver around it (~35 ms on a helper thread in every process's first run).
 */
export class RowLoop {
  /** Why `rows` returned. */
  next: RowLoopNext = RowLoopNext.Done;
  /** Rejected rows not stored yet. */
  rejected: RejectedRow[] = [];
  /** Rows to look up in the store (when `collect`), set by the caller per read batch. */
  candidates: Candidate[] = [];

  constructor(private readonly settings: RowLoopSettings) {}

  /** Plans rows `from..` of `view` until one leaves something to await (`next`); returns the row to go on from. */
  rows(view: PlanningBatch, from: number): number {
    const { index, seen, batches, fullResync } = this.settings;
    const count = view.count;
    for (let r = from; r < count; r++) {
      const keyText = view.keyText(r);
      if (keyText === null) {
        if (this.reject(this.nullKey(view.key(r)))) return r + 1;
        continue;
      }
      const entry = index ? index.visit(keyText) : -1;
      if (entry === -2 || (entry === -1 && !seen.add(keyText))) {
        if (this.reject(this.duplicate(keyText))) return r + 1;
        continue;
      }
      view.hash(r);
      const hashHigh = rowHash[0] as number;
      const hashLow = rowHash[1] as number;
      if (index) {
        if (entry >= 0 && !fullResync && index.sameHash(entry, hashHigh, hashLow)) continue;
        const kind = entry >= 0 ? this.settings.changed : this.settings.added;
        if (kind !== null && batches.add(view.op(r, entry >= 0 ? 'changed' : 'added', kind, keyText, hashHigh, hashLow))) {
          this.next = RowLoopNext.Flush;
          return r + 1;
        }
        continue;
      }
      if (this.settings.collect) {
        this.candidates.push({ keyText, row: r, hashHigh, hashLow });
        continue;
      }
      // An empty snapshot: every row is new, with nothing to look up first.
      const added = this.settings.added;
      if (added !== null && batches.add(view.op(r, 'added', added, keyText, hashHigh, hashLow))) {
        this.next = RowLoopNext.Flush;
        return r + 1;
      }
    }
    this.next = RowLoopNext.Done;
    return count;
  }

  /** Counts a rejected row; true (with `next` set) when REJECTED_FLUSH of them wait for the store. */
  private reject(row: RejectedRow): boolean {
    const { progress } = this.settings;
    bump(progress.planned, 'added');
    bump(progress.failed, 'added');
    progress.settled++;
    this.rejected.push(row);
    if (this.rejected.length < REJECTED_FLUSH) return false;
    this.next = RowLoopNext.StoreRejected;
    return true;
  }

  private nullKey(key: Value[]): RejectedRow {
    const nullColumn = key.indexOf(null);
    return { syncRunId: this.settings.runId, key: encodeKey(key), op: 'added', reason: `primary key column "${this.settings.primaryKey[nullColumn]}" is null` };
  }

  private duplicate(keyText: string): RejectedRow {
    return { syncRunId: this.settings.runId, key: keyText, op: 'added', reason: `duplicate primary key ${keyText}: the model returned this key more than once; only its first row was planned` };
  }
}

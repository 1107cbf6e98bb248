/**
 * Executes one sync run (SPEC §2.2): query → plan → deliver → commit → report.
 *
 * States (see SyncRunStatus): the run arrives claimed in `querying`; planning streams the model,
 * diffs it against the snapshot and spools the planned operations to a temporary file; the run
 * moves to `processing` and delivers the spool in batches, committing each delivered batch to the
 * snapshot; `reporting` writes the final counts; the run ends `success`, `warning` (rejected rows),
 * `failed` (fatal error) or `cancelled` (at a batch boundary). When the worker shuts down, the run
 * is left in its active state so the next start marks it `interrupted` and runs it again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { resolveConnection } from '../core/connections.js';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import { encodeKey } from '../core/keys.js';
import type {
  Clock,
  Connectors,
  Destination,
  Logger,
  RowOutcome,
  Source,
  Store,
  SyncRunPatch,
  Value,
  WriteOperation,
  WriteTarget,
} from '../core/ports.js';
import type { OperationCounts, RejectedRow, SyncRun } from '../core/runs.js';
import type { ModelRecord, SyncRecord } from '../core/workspace.js';

export interface RetryPolicy {
  /** Attempts for one batch or query before a transient error becomes fatal (default: 5). */
  attempts: number;
  /** First backoff in ms, doubled each attempt, with full jitter (default: 200). */
  baseDelayMs: number;
  /** Longest single wait in ms (default: 30000). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 30_000 };

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
  /** Rows read from the source per batch (default: 5000). */
  readBatchSize: number;
  /** Folder for spool files (default: the OS temp folder). */
  spoolDir: string;
}

/** Why a run stopped early: a user cancelled it, or the worker is shutting down. */
export type StopReason = 'cancel' | 'shutdown';

/** One planned operation, as spooled between planning and delivery. */
interface PlannedOp {
  /** op: what happened to the row in the model. */
  o: 'added' | 'changed' | 'removed';
  /** kind: what the destination is asked to do. */
  w: WriteOperation['kind'];
  /** encoded key */
  k: string;
  key: Value[];
  values: Value[];
  /** hash of the mapped values ('' for removals) */
  h: string;
}

class RunStopped extends Error {
  constructor(readonly reason: StopReason) {
    super(`run stopped: ${reason}`);
  }
}

const emptyCounts = (): OperationCounts => ({ addedCount: 0, changedCount: 0, removedCount: 0 });

function bump(counts: OperationCounts, op: PlannedOp['o'], by = 1): void {
  if (op === 'added') counts.addedCount += by;
  else if (op === 'changed') counts.changedCount += by;
  else counts.removedCount += by;
}

/** Hash of a row's mapped values: what the snapshot remembers per key. */
export function hashValues(values: readonly Value[]): string {
  return createHash('sha1').update(JSON.stringify(values)).digest('base64');
}

export class SyncRunner {
  constructor(private readonly options: SyncRunnerOptions) {}

  /**
   * Runs a claimed sync run to its end and returns the final record. Never throws for run-level
   * failures: they end the run `failed` with the error recorded. `onProgress` sees every update.
   */
  async execute(
    claimed: SyncRun,
    control: { signal: AbortSignal; onProgress?: (run: SyncRun) => void },
  ): Promise<SyncRun> {
    const { store, clock, logger } = this.options;
    const runLog = { syncRunId: claimed.id, syncId: claimed.syncId };
    const spoolPath = join(this.options.spoolDir, `lockstep-run-${claimed.id}-${randomBytes(4).toString('hex')}.jsonl`);
    let source: Source | null = null;
    let destination: Destination | null = null;
    // Connections are closed and the spool removed before the final status is recorded: closing a
    // connection can take a while (SQLite checkpoints its WAL), and the next member of a sequence
    // must not wait for it.
    const cleanup = async () => {
      const open = [source, destination];
      source = destination = null;
      await rm(spoolPath, { force: true }).catch(() => undefined);
      await Promise.all(open.map((c) => c?.close().catch(() => undefined)));
    };
    const update = async (patch: SyncRunPatch): Promise<SyncRun> => {
      const run = await store.updateSyncRun(claimed.id, patch, clock.now());
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

      source = await this.options.connectors.openSource(
        resolveConnection(sourceDef, 'source', this.options.baseDir, this.options.env),
      );
      destination = await this.options.connectors.openDestination(
        resolveConnection(destinationDef, 'destination', this.options.baseDir, this.options.env),
      );
      const deletes = sync.mode === 'mirror' || sync.deleteBehavior === 'delete';
      if (deletes && !destination.capabilities.deletes) {
        throw new LockstepError(
          ErrorCode.Schema,
          `sync "${sync.slug}" deletes rows (mode ${sync.mode}, deleteBehavior ${sync.deleteBehavior}) but destination "${sync.destination}" cannot delete — use mode upsert with deleteBehavior ignore`,
        );
      }

      const plan = await this.withRetries('query', control.signal, () =>
        this.plan(claimed, sync, model, source as Source, spoolPath, control.signal),
      );
      if (claimed.options.resetCDC) {
        await update({ status: 'reporting', querySize: plan.querySize, completionRatio: 1 });
        await cleanup();
        return await update({ status: 'success' });
      }
      let run = await update({
        status: 'processing',
        querySize: plan.querySize,
        plannedRows: plan.planned,
        failedRows: plan.failed,
        completionRatio: 0,
      });
      if (plan.rejected.length > 0) await store.addRejectedRows(plan.rejected);

      const writer = await destination.prepare(plan.target);
      const successful = emptyCounts();
      const failed = { ...plan.failed };
      const plannedTotal = plan.planned.addedCount + plan.planned.changedCount + plan.planned.removedCount;
      let processed = plan.failed.addedCount + plan.failed.changedCount + plan.failed.removedCount;
      for await (const batch of readSpool(spoolPath, sync.batchSize)) {
        await this.checkStop(claimed.id, control.signal);
        const outcomes = await this.withRetries('write', control.signal, () =>
          writer.write(batch.map((p) => ({ kind: p.w, key: p.key, values: p.values }))),
        );
        await this.commitBatch(claimed, sync, batch, outcomes, successful, failed);
        processed += batch.length;
        run = await update({
          successfulRows: successful,
          failedRows: failed,
          completionRatio: plannedTotal === 0 ? 1 : Math.min(1, processed / plannedTotal),
        });
      }
      await update({ status: 'reporting', completionRatio: 1 });
      await cleanup();
      const rejected = failed.addedCount + failed.changedCount + failed.removedCount;
      run = await update({ status: rejected > 0 ? 'warning' : 'success' });
      logger.info('sync run finished', { ...runLog, status: run.status, delivered: processed - rejected, rejected });
      return run;
    } catch (thrown) {
      await cleanup();
      if (thrown instanceof RunStopped || control.signal.aborted) {
        const reason = thrown instanceof RunStopped ? thrown.reason : (control.signal.reason as StopReason);
        if (reason === 'shutdown') {
          logger.info('sync run left for the next start', runLog);
          return (await store.getSyncRun(claimed.id)) ?? claimed;
        }
        logger.info('sync run cancelled', runLog);
        return await update({ status: 'cancelled', error: 'cancelled by a user' });
      }
      const error = toError(thrown);
      logger.error('sync run failed', { ...runLog, error: error.message });
      return await update({ status: 'failed', error: error.message });
    } finally {
      await cleanup();
    }
  }

  /** Streams the model, validates and diffs each row against the snapshot, spools what to send. */
  private async plan(run: SyncRun, sync: SyncRecord, model: ModelRecord, source: Source, spoolPath: string, signal: AbortSignal) {
    const { store } = this.options;
    const spool = createWriteStream(spoolPath);
    const planned = emptyCounts();
    const failed = emptyCounts();
    const rejected: RejectedRow[] = [];
    const seen = new Set<string>();
    const keyColumns = model.primaryKey.map((c) => mapColumn(sync, c));
    let target: WriteTarget = { object: sync.object, keyColumns, columns: keyColumns };
    let keyIndexes: number[] | null = null;
    let querySize = 0;
    const { fullResync, resetCDC } = run.options;
    if (resetCDC) await store.snapshotClear(sync.id);
    try {
      for await (const batch of source.read(model.query, { batchSize: this.options.readBatchSize, signal })) {
        if (signal.aborted) throw new RunStopped(signal.reason as StopReason);
        if (keyIndexes === null) {
          keyIndexes = model.primaryKey.map((column) => {
            const index = batch.columns.indexOf(column);
            if (index < 0) {
              throw new LockstepError(
                ErrorCode.Schema,
                `model "${model.slug}" declares primary key column "${column}", but its query returns only ${batch.columns.map((c) => `"${c}"`).join(', ')} — fix primaryKey or the query`,
              );
            }
            return index;
          });
          target = { object: sync.object, keyColumns, columns: batch.columns.map((c) => mapColumn(sync, c)) };
          assertUniqueColumns(sync, target.columns);
        }
        querySize += batch.rows.length;
        const candidates: Array<{ key: Value[]; k: string; values: Value[]; h: string }> = [];
        for (const values of batch.rows) {
          const key = keyIndexes.map((i) => values[i] ?? null);
          const k = encodeKey(key);
          const nullColumn = key.findIndex((v) => v === null);
          if (nullColumn >= 0) {
            bump(planned, 'added');
            bump(failed, 'added');
            rejected.push({ syncRunId: run.id, key: k, op: 'added', reason: `primary key column "${model.primaryKey[nullColumn]}" is null` });
            continue;
          }
          if (seen.has(k)) {
            bump(planned, 'added');
            bump(failed, 'added');
            rejected.push({ syncRunId: run.id, key: k, op: 'added', reason: `duplicate primary key ${k}: the model returned this key more than once; only its first row was planned` });
            continue;
          }
          seen.add(k);
          candidates.push({ key, k, values, h: hashValues(values) });
        }
        if (resetCDC) {
          await store.snapshotWrite(sync.id, candidates.map((c) => [c.k, c.h]), []);
          continue;
        }
        const snapshot = await store.snapshotGet(sync.id, candidates.map((c) => c.k));
        const lines: string[] = [];
        for (const c of candidates) {
          const old = snapshot.get(c.k);
          if (old === c.h && !fullResync) continue;
          const op: PlannedOp['o'] = old === undefined ? 'added' : 'changed';
          const kind = writeKind(sync, op);
          if (kind === null) continue;
          bump(planned, op);
          lines.push(JSON.stringify({ o: op, w: kind, k: c.k, key: c.key, values: c.values, h: c.h } satisfies PlannedOp));
        }
        if (lines.length > 0) await writeLines(spool, lines);
      }
      const deletes = sync.mode === 'mirror' || sync.deleteBehavior === 'delete';
      if (resetCDC || deletes) {
        const gone: string[] = [];
        for await (const keys of store.snapshotKeys(sync.id, 5000)) {
          for (const k of keys) if (!seen.has(k)) gone.push(k);
        }
        if (resetCDC) {
          if (gone.length > 0) await store.snapshotWrite(sync.id, [], gone);
        } else {
          const lines = gone.map((k) => {
            bump(planned, 'removed');
            return JSON.stringify({ o: 'removed', w: 'delete', k, key: JSON.parse(k) as Value[], values: [], h: '' } satisfies PlannedOp);
          });
          for (let i = 0; i < lines.length; i += 1000) await writeLines(spool, lines.slice(i, i + 1000));
        }
      }
    } finally {
      await new Promise<void>((resolve, reject) => spool.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
    return { querySize, planned, failed, rejected, target };
  }

  /** Records a delivered batch: delivered rows into the snapshot, refused rows as rejected. */
  private async commitBatch(
    run: SyncRun,
    sync: SyncRecord,
    batch: PlannedOp[],
    outcomes: RowOutcome[],
    successful: OperationCounts,
    failed: OperationCounts,
  ): Promise<void> {
    if (outcomes.length !== batch.length) {
      throw new LockstepError(
        ErrorCode.Internal,
        `destination "${sync.destination}" answered ${outcomes.length} outcomes for a batch of ${batch.length} rows`,
      );
    }
    const upserts: Array<[string, string]> = [];
    const deletes: string[] = [];
    const rejected: RejectedRow[] = [];
    batch.forEach((p, i) => {
      const outcome = outcomes[i] as RowOutcome;
      if (outcome.ok) {
        bump(successful, p.o);
        if (p.o === 'removed') deletes.push(p.k);
        else upserts.push([p.k, p.h]);
      } else {
        bump(failed, p.o);
        rejected.push({ syncRunId: run.id, key: p.k, op: p.o, reason: outcome.reason });
      }
    });
    await this.options.store.snapshotWrite(sync.id, upserts, deletes);
    if (rejected.length > 0) await this.options.store.addRejectedRows(rejected);
  }

  private async checkStop(runId: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new RunStopped(signal.reason as StopReason);
    // Another process (the CLI, a second worker) may have asked for the cancel through the store.
    const current = await this.options.store.getSyncRun(runId);
    if (current?.cancelRequested) throw new RunStopped('cancel');
  }

  /** Retries transient failures with exponential backoff and full jitter, honouring Retry-After. */
  private async withRetries<T>(what: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const { retry, clock, logger } = this.options;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (thrown) {
        if (thrown instanceof RunStopped) throw thrown;
        const retryable = thrown instanceof LockstepError && thrown.retryable;
        if (!retryable || attempt >= retry.attempts) {
          if (retryable) {
            throw new LockstepError(ErrorCode.Transient, `${toError(thrown).message} (gave up after ${attempt} attempts)`, {
              cause: thrown,
              retryable: false,
            });
          }
          throw thrown;
        }
        const backoff = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
        const asked = thrown.retryAfterSeconds !== undefined ? thrown.retryAfterSeconds * 1000 : 0;
        const delay = Math.max(asked, Math.random() * backoff);
        logger.warn(`transient ${what} error, retrying`, { attempt, delayMs: Math.round(delay), error: thrown.message });
        try {
          await clock.sleep(delay, signal);
        } catch {
          throw new RunStopped(signal.reason as StopReason);
        }
      }
    }
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

function writeLines(stream: WriteStream, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = stream.write(lines.join('\n') + '\n', (err) => (err ? reject(err) : undefined));
    if (ok) resolve();
    else stream.once('drain', resolve);
  });
}

async function* readSpool(path: string, batchSize: number): AsyncGenerator<PlannedOp[]> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let batch: PlannedOp[] = [];
  for await (const line of lines) {
    if (!line) continue;
    batch.push(JSON.parse(line) as PlannedOp);
    if (batch.length >= batchSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

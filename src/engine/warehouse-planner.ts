/**
 * The planner in the warehouse (`planner: warehouse` or `auto` on a source's connection): instead
 * of reading every row of the model into Lockstep and comparing it with the snapshot in the store,
 * the source keeps the sync's delivered rows in a schema of its own and compares the model with
 * them by SQL; only added, changed and removed rows travel. The source's connector does the SQL
 * (e.g. connectors/postgres/postgres-planner.ts); this module opens it for a run and turns what the
 * runner delivered into the planner's commits.
 *
 * Exactness: the runner delivers the planned rows in the order the planner hands them out (added,
 * then changed, then removed, each in key order) and retires written batches in that order, so
 * what is delivered at any time is a prefix of that order minus the rejected rows. A commit records
 * that prefix's last row and the rejected keys; the planner table takes in the delivered rows when
 * the run ends, or when the next attempt or run starts after this one stopped part-way.
 */
import { decodeKey } from '../core/keys.js';
import { ErrorCode, LockstepError } from '../core/errors.js';
import type { Logger, Source, Value, WarehousePlanner, WarehousePlanPart } from '../core/ports.js';
import type { ModelRecord } from '../core/workspace.js';

/** Full comparisons run at least this often by default for a model with a cursor. */
export const DEFAULT_FULL_COMPARE_EVERY = 24;

/** The planner a run uses, and what the run record should say about it. */
export interface OpenedPlanner {
  planner: WarehousePlanner | null;
  note: string | null;
}

/**
 * Opens the source's planner in the warehouse when its connection asks for one. With `auto`, a
 * source that cannot hold it (no permission to create the schema) falls back to the store's
 * planner, and says so.
 */
export async function openWarehousePlanner(source: Source, sourceSlug: string, logger: Logger, signal: AbortSignal): Promise<OpenedPlanner> {
  const access = source.warehousePlanner;
  if (!access) return { planner: null, note: null };
  try {
    return { planner: await access.open(signal), note: null };
  } catch (error) {
    if (access.mode !== 'auto' || !(error instanceof LockstepError) || error.code !== ErrorCode.Connection) throw error;
    const note = `planner: auto on source "${sourceSlug}" fell back to the store's planner: ${error.message}`;
    logger.warn(note);
    return { planner: null, note };
  }
}

/** The model's cursor as the planner is asked for it, or null without one. */
export function cursorRequest(model: ModelRecord, fullCompare: boolean): { column: string; full: boolean; every: number } | null {
  if (!model.cursor) return null;
  return { column: model.cursor, full: fullCompare, every: model.fullCompareEvery ?? DEFAULT_FULL_COMPARE_EVERY };
}

/** One written batch as the planner's commit needs it: its last row, and its rejected rows. */
export interface PlannerProgress {
  through: { op: WarehousePlanPart['op']; key: Value[] };
  rejected: Value[][];
}

/** The planner's part of a written batch (`ops` in delivery order, `ok` per row). */
export function plannerProgress(ops: ReadonlyArray<{ change: WarehousePlanPart['op']; keyText: string }>, ok: (i: number) => boolean): PlannerProgress | null {
  const last = ops[ops.length - 1];
  if (!last) return null;
  const rejected: Value[][] = [];
  ops.forEach((op, i) => {
    if (!ok(i)) rejected.push(decodeKey(op.keyText));
  });
  return { through: { op: last.change, key: decodeKey(last.keyText) }, rejected };
}

/** Written batches' progress as one: the last one's row, every rejected row. */
export function mergeProgress(parts: ReadonlyArray<PlannerProgress | null | undefined>): PlannerProgress | null {
  let merged: PlannerProgress | null = null;
  for (const part of parts) {
    if (!part) continue;
    merged = { through: part.through, rejected: merged ? merged.rejected.concat(part.rejected) : part.rejected };
  }
  return merged;
}

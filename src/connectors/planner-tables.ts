/**
 * What the warehouse planners (PostgreSQL, MySQL, DuckDB) share about their tables: a sync's
 * planner table name, the order and codes of planned parts, and how a model's columns compare with
 * those a planner table recorded.
 */
import type { Value, WarehousePlanPart } from '../core/ports.js';

/** A column as a planner records it: its name and its type as the database spells it. */
export interface ColumnType {
  name: string;
  type: string;
}

/** The parts of a plan, in the order they are delivered. */
export const OPS: ReadonlyArray<WarehousePlanPart['op']> = ['added', 'changed', 'removed'];
/** Each part's code in a staging table's `lockstep_op` column. */
export const OP_CODE = { added: 'a', changed: 'c', removed: 'r' } as const;

/** The sync's planner table (and the prefix of its staging tables). */
export function plannerTableName(sync: { id: number; slug: string }): string {
  return `sync_${sync.id}_${sync.slug.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 32)}`;
}

/** What a dry run says when a run's delivered rows are not in the planner table yet. */
export function pendingNote(runId: string | number | null): string {
  return `sync run ${runId ?? '?'} stopped part-way or is running: the rows it delivered are not in the planner table yet, so this plan counts them again (the next run takes them in first)`;
}

/** The same columns of the same types, in any order. */
export function sameColumns(a: readonly ColumnType[], b: readonly ColumnType[]): boolean {
  if (a.length !== b.length) return false;
  const types = new Map(a.map((c) => [c.name, c.type]));
  return b.every((c) => types.get(c.name) === c.type);
}

/** The columns added, gone and retyped between `before` and `after`, for a run's notes. */
export function describeChange(before: readonly ColumnType[], after: readonly ColumnType[]): string {
  const old = new Map(before.map((c) => [c.name, c.type]));
  const now = new Map(after.map((c) => [c.name, c.type]));
  const changes: string[] = [];
  for (const [name, type] of now) {
    const was = old.get(name);
    if (was === undefined) changes.push(`${name} added`);
    else if (was !== type) changes.push(`${name} ${was} → ${type}`);
  }
  for (const name of old.keys()) if (!now.has(name)) changes.push(`${name} gone`);
  return changes.join(', ');
}

/** A key the model returned more than once, refused for each repeat. */
export function duplicateKeyRefusal(key: Value[]): { key: Value[]; reason: string } {
  return { key, reason: `duplicate primary key ${JSON.stringify(key)}: the model returned this key more than once; only one of its rows was planned` };
}

/**
 * How many rows the model returned, as a plan counts them: `whole` (what an initial or reset run
 * staged) for those; for a cursor run, the rows past the cursor; else the planner table's rows
 * moved by the plan, with the refused ones.
 */
export function plannedModelRows(
  plan: { kind: string; comparison: 'full' | 'cursor'; counts: Record<WarehousePlanPart['op'], number>; plannerRows: number; refused: number },
  whole: number,
): number {
  const { kind, comparison, counts, plannerRows, refused } = plan;
  if (kind === 'initial' || kind === 'reset') return whole;
  return comparison === 'cursor' ? counts.added + counts.changed : plannerRows + counts.added - counts.removed + refused;
}

/** The notes a run records when its planner table was dropped or changed outside Lockstep, or the model's columns changed. */
export const plannerNotes = {
  dropped: (table: string) => `planner table ${table} was dropped outside Lockstep: every row is sent again and the table rebuilt`,
  tampered: (table: string, byKeys: boolean) =>
    `planner table ${table} was changed outside Lockstep: compared by key only this run (every row sent again${byKeys ? ', rows gone from the model removed' : ''}) and rebuilt`,
  columnsChanged: (before: readonly ColumnType[], after: readonly ColumnType[]) =>
    `the model's columns changed (${describeChange(before, after)}): every row is compared again by key and sent once`,
};

/**
 * What the warehouse planners (PostgreSQL, MySQL, DuckDB) share about their tables: a sync's
 * planner table name, the order and codes of planned parts, how a model's columns compare with
 * those a planner table recorded, what a run delivered before its plan, and (PostgreSQL, DuckDB) a
 * dry run's statements.
 */
import type { Value, WarehousePlanPart } from '../core/ports.js';
import { ZERO_COUNTS, type OperationCounts } from '../core/runs.js';

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
  dropped: (table: string) =>
    `planner table ${table} was dropped outside Lockstep: every row is sent again and the table rebuilt; rows that left the model since the last run are not removed from the destination (nothing records them any more) — remove them there by hand if the sync mirrors`,
  tampered: (table: string, byKeys: boolean) =>
    `planner table ${table} was changed outside Lockstep: compared by key only this run (every row sent again${byKeys ? ', rows gone from the model removed' : ''}) and rebuilt`,
  keysChanged: (table: string, before: readonly string[], after: readonly string[]) =>
    `the model's primary key changed (${before.join(', ')} → ${after.join(', ')}): every row is sent again and planner table ${table} rebuilt; rows that left the model since the last run are not removed from the destination — remove them there by hand if the sync mirrors`,
  columnsChanged: (before: readonly ColumnType[], after: readonly ColumnType[]) =>
    `the model's columns changed (${describeChange(before, after)}): every row is compared again by key and sent once`,
};

/**
 * A dry run's statements over `diff` (the comparison's rows, each with its `lockstep_op`; `op` is
 * the SQL of that code, a constant for an initial or reset run) in SQL that quotes names with double
 * quotes (PostgreSQL, DuckDB): the null keys; per code, the rows and the keys found more than once
 * (`op`, `n`, `extra`); the repeated keys with their repeats; and each part's query, without null
 * keys and with one row per key when some repeat.
 */
export function previewStatements(diff: string, keys: readonly string[], op: string) {
  const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const keyList = keys.map(q).join(', ');
  const anyNull = keys.map((k) => `${q(k)} IS NULL`).join(' OR ');
  return {
    nullKeys: `SELECT ${keyList} FROM (${diff}) AS d WHERE ${anyNull}`,
    counts: `SELECT lockstep_op AS op, count(*) AS n, count(*) FILTER (WHERE lockstep_n > 1) AS extra
               FROM (SELECT ${op} AS lockstep_op, count(*) AS lockstep_n FROM (${diff}) AS d WHERE NOT (${anyNull}) GROUP BY 1, ${keyList}) AS k GROUP BY 1`,
    repeatedKeys: `SELECT ${keyList}, count(*) - 1 FROM (${diff}) AS d WHERE NOT (${anyNull}) GROUP BY ${keyList} HAVING count(*) > 1 ORDER BY ${keyList}`,
    /** The rows of `counts` (code, rows, repeated keys) as each part's rows, and whether any key repeats. */
    tally(rows: ReadonlyArray<readonly [code: unknown, n: unknown, extra: unknown]>): { counts: Record<WarehousePlanPart['op'], number>; repeated: boolean } {
      const counts = { added: 0, changed: 0, removed: 0 };
      let repeated = false;
      for (const [code, n, extra] of rows) {
        counts[code === 'a' ? 'added' : code === 'c' ? 'changed' : 'removed'] = Number(n);
        if (Number(extra) > 0) repeated = true;
      }
      return { counts, repeated };
    },
    parts(counts: Record<WarehousePlanPart['op'], number>, repeated: boolean, names: readonly string[]): WarehousePlanPart[] {
      const parts: WarehousePlanPart[] = [];
      for (const part of OPS) {
        if (counts[part] === 0) continue;
        const filter = op === 'lockstep_op' ? ` AND lockstep_op = '${OP_CODE[part]}'` : '';
        const rows = repeated
          ? `(SELECT d.*, row_number() OVER (PARTITION BY ${keyList}) AS lockstep_n FROM (${diff}) AS d WHERE NOT (${anyNull})${filter}) AS d WHERE lockstep_n = 1`
          : `(${diff}) AS d WHERE NOT (${anyNull})${filter}`;
        parts.push({ op: part, rows: counts[part], query: `SELECT ${part === 'removed' ? keyList : names.map(q).join(', ')} FROM ${rows} ORDER BY ${keyList}` });
      }
      return parts;
    },
  };
}

/**
 * A dry run's refusals: each null key (naming its first null column) and each repeat of a key
 * (`repeated`: the key's columns, then how many times it repeats).
 */
export function previewRefusals(keys: readonly string[], nullKeys: Value[][], repeated: Value[][]): Array<{ key: Value[]; reason: string }> {
  const refused: Array<{ key: Value[]; reason: string }> = [];
  for (const key of nullKeys) refused.push({ key, reason: `primary key column "${keys[key.indexOf(null)] ?? keys[0]}" is null` });
  for (const row of repeated) {
    const key = row.slice(0, keys.length);
    for (let i = 0; i < Number(row[keys.length]); i++) refused.push(duplicateKeyRefusal(key));
  }
  return refused;
}

/**
 * The rows run `runId` delivered before this plan (WarehousePlan.delivered), as the sync's row of
 * lockstep_syncs recorded them with the watermark (`delivered`: the counts, or their JSON text);
 * none when the sync's planner last served another run.
 */
export function deliveredBefore(meta: { run_id: string | number | null; delivered: unknown }, runId: number): OperationCounts {
  if (meta.run_id === null || Number(meta.run_id) !== runId || meta.delivered === null || meta.delivered === undefined) return { ...ZERO_COUNTS };
  const recorded = (typeof meta.delivered === 'string' ? JSON.parse(meta.delivered) : meta.delivered) as Partial<OperationCounts>;
  return { addedCount: Number(recorded.addedCount ?? 0), changedCount: Number(recorded.changedCount ?? 0), removedCount: Number(recorded.removedCount ?? 0) };
}

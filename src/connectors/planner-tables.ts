/**
 * What the warehouse planners (PostgreSQL, MySQL, DuckDB) share about their tables: a sync's
 * planner table name, the order and codes of planned parts, what a run compares (decideComparison)
 * and which models it refuses, how a model's columns compare with those a planner table recorded,
 * what a run delivered before its plan, and (PostgreSQL, DuckDB) a dry run's statements. Each
 * planner finds the facts with its database's SQL; the decisions are taken here, the same for all.
 */
import { ErrorCode, LockstepError } from '../core/errors.js';
import { didYouMean } from '../core/hints.js';
import type { Value, WarehousePlanPart, WarehousePlanRequest } from '../core/ports.js';
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

/** How a run stages the model's rows, which says how they are taken into the planner table. */
export type StagingKind =
  /** No planner table to compare with: every model row is added (the staging table has the model's columns). */
  | 'initial'
  /** resetCDC: the model becomes the planner table, nothing is sent. */
  | 'reset'
  /** Compared by key only (values not trusted): matched rows are all changed; the planner table is rebuilt. */
  | 'keys'
  /** Compared by value (full or cursor): the planner table is updated in place. */
  | 'values';

/**
 * What every planner keeps alike in a sync's row of lockstep_syncs, as read: the planner table, the
 * attempt that holds it, the run's staging table and how it was staged, the watermark's part, and
 * the change cursor. Each planner's row adds what its database records in its own way.
 */
export interface PlannerRunRecord {
  planner_table: string;
  attempt: number | null;
  staging: string | null;
  staging_kind: StagingKind | null;
  key_columns: string[] | null;
  model_columns: ColumnType[] | null;
  /** The watermark's part (its index in OPS), -1 before the first commit. */
  part: number;
  cursor_value: string | null;
  pending_cursor: string | null;
  /** Cursor runs since the last full comparison. */
  cursor_runs: number;
  comparison: 'full' | 'cursor' | null;
}

/** The record of a sync the planner never ran for: compared as a first run. */
export function unplannedRun(plannerTable: string): PlannerRunRecord {
  return {
    planner_table: plannerTable,
    attempt: null,
    staging: null,
    staging_kind: null,
    key_columns: null,
    model_columns: null,
    part: -1,
    cursor_value: null,
    pending_cursor: null,
    cursor_runs: 0,
    comparison: null,
  };
}

/** What a run compares, and how: the model's columns and keys, and the decision taken on them (see decideComparison). */
export interface ComparedModel {
  /** The model's query, without what ends it (see modelQuery). */
  query: string;
  names: string[];
  modelColumns: ColumnType[];
  keys: string[];
  /** The model's columns that are not keys. */
  values: string[];
  kind: StagingKind;
  comparison: 'full' | 'cursor';
  /** The highest cursor value the model holds: the cursor's next value once the run delivered everything. */
  pendingCursor: string | null;
  plannerTable: string;
}

/** The model's query as the planner wraps it in its own (`SELECT ... FROM (query) AS m`): without trailing semicolons and space. */
export function modelQuery(request: Pick<WarehousePlanRequest, 'query'>): string {
  return request.query.replace(/[\s;]+$/, '');
}

/** The part a staging table's `lockstep_op` code stands for. */
export function partOf(code: unknown): WarehousePlanPart['op'] {
  return code === 'a' ? 'added' : code === 'c' ? 'changed' : 'removed';
}

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

/** A model row whose key (`key`, the values of `keys`) has a null, refused naming its first null column. */
export function nullKeyRefusal(keys: readonly string[], key: Value[]): { key: Value[]; reason: string } {
  return { key, reason: `primary key column "${keys[key.indexOf(null)] ?? keys[0]}" is null` };
}

/**
 * Refuses a model the planner in the warehouse cannot compare: a column its query returns twice or
 * that is named as one of the planner's own (`reserved`), a primary key or cursor column it does not
 * return. `caseInsensitiveIn`: the database, when its tables tell column names apart without regard
 * to case (MySQL, DuckDB), so that names differing only in case are one name there.
 */
export function checkModelColumns(
  names: readonly string[],
  request: Pick<WarehousePlanRequest, 'primaryKey' | 'cursor'>,
  reserved: ReadonlySet<string>,
  caseInsensitiveIn?: string,
): void {
  const fold = (name: string) => (caseInsensitiveIn === undefined ? name : name.toLowerCase());
  const seen = new Map<string, string>();
  for (const name of names) {
    const first = seen.get(fold(name));
    if (first === name) throw new LockstepError(ErrorCode.Schema, `the model's query returns column "${name}" twice — give each column its own name (AS ...) to use the planner in the warehouse`);
    if (first !== undefined) throw caseOnlyDuplicate(`columns "${first}" and "${name}"`, caseInsensitiveIn ?? '');
    if (reserved.has(fold(name))) throw new LockstepError(ErrorCode.Schema, `the model's query returns a column named "${name}", which the planner in the warehouse uses itself — rename it`);
    seen.set(fold(name), name);
  }
  const returned = names.map((c) => `"${c}"`).join(', ');
  for (const key of request.primaryKey) {
    if (!names.includes(key)) {
      throw new LockstepError(ErrorCode.Schema, `the model declares primary key column "${key}", but its query returns only ${returned}${didYouMean(key, names)} — fix primaryKey or the query`);
    }
  }
  const cursor = request.cursor;
  if (cursor && !names.includes(cursor.column)) {
    throw new LockstepError(ErrorCode.Schema, `the model's cursor column "${cursor.column}" is not among the columns its query returns (${returned})${didYouMean(cursor.column, names)} — fix cursor or the query`);
  }
}

/**
 * The refusal of a model whose query returns `columns` (e.g. `columns "name" and "NAME"`) with names
 * differing only in case, which `database`'s tables, the planner's among them, take as one name
 * (though the query alone returns them as they are).
 */
export function caseOnlyDuplicate(columns: string, database: string): LockstepError {
  return new LockstepError(
    ErrorCode.Schema,
    `the model's query returns ${columns}: ${database} takes column names that differ only in case as one name in a table, and the planner in the warehouse keeps the model's columns in tables of its own — give one of them another name (AS ...)`,
  );
}

/** What a planner found of a sync's planner table before a run (see decideComparison). */
export interface PlannerTableState {
  /** The table as notes name it (`schema.table`). */
  name: string;
  /** Its columns as they are; null when it is not there. */
  columns: readonly ColumnType[] | null;
  /** Its columns as Lockstep last recorded them; null when Lockstep never recorded it. */
  recorded: readonly ColumnType[] | null;
  /** The key it was built with, where a table serves only that key (PostgreSQL); null elsewhere. */
  keyedBy: readonly string[] | null;
  /**
   * The database's own signs of a write outside Lockstep (a guard's flag or a missing guard, a row
   * count or checksum that moved, ...), looked for only when the run compares with the table
   * (comparesWithTable).
   */
  tampered: boolean;
  /** The change cursor's last delivered value, and the cursor runs since the last full comparison. */
  cursorValue: string | null;
  cursorRuns: number;
}

/** Why a run compares as it does (see decideComparison). */
export type ComparisonReason = 'reset' | 'first' | 'dropped' | 'keysChanged' | 'tampered' | 'columnsChanged' | 'resendAll' | 'unchanged';

/** What a run compares, and the note it records about it, if any. */
export interface ComparisonDecision {
  kind: StagingKind;
  comparison: 'full' | 'cursor';
  reason: ComparisonReason;
  note: string | null;
}

/** Whether a run compares the model with its planner table (rather than staging the whole model): the table is there and recorded. */
export function comparesWithTable(request: Pick<WarehousePlanRequest, 'reset'>, columns: readonly ColumnType[] | null, recorded: readonly ColumnType[] | null): boolean {
  return !request.reset && columns !== null && recorded !== null;
}

/**
 * Whether a run that compares by value reads only the rows past the change cursor: the model has one,
 * the run did not ask for a full comparison, a value was delivered, and the full comparison that
 * comes every `every` runs is not due.
 */
export function cursorDue(cursor: WarehousePlanRequest['cursor'], state: { cursorValue: string | null; cursorRuns: number }): boolean {
  return cursor !== null && !cursor.full && state.cursorValue !== null && state.cursorRuns < cursor.every - 1;
}

/**
 * What a run compares: the whole model (a first run, a reset, or a table that was dropped or keyed
 * by another key), the model by key only (a table changed outside Lockstep whose key columns kept
 * their types, columns that changed, a full resync: every row sent again), or by value; and, by
 * value, past the change cursor when it is due. A table whose key columns changed type starts again.
 */
export function decideComparison(
  request: Pick<WarehousePlanRequest, 'reset' | 'resendAll' | 'cursor'>,
  model: { keys: readonly string[]; columns: readonly ColumnType[] },
  table: PlannerTableState,
): ComparisonDecision {
  const decided = (kind: StagingKind, reason: ComparisonReason, note: string | null = null): ComparisonDecision => ({
    kind,
    comparison: kind === 'values' && cursorDue(request.cursor, table) ? 'cursor' : 'full',
    reason,
    note,
  });
  if (request.reset) return decided('reset', 'reset');
  const { columns, recorded } = table;
  if (columns === null || recorded === null) return recorded === null ? decided('initial', 'first') : decided('initial', 'dropped', plannerNotes.dropped(table.name));
  if (table.keyedBy !== null && !sameKeys(table.keyedBy, model.keys)) return decided('initial', 'keysChanged', plannerNotes.keysChanged(table.name, table.keyedBy, model.keys));
  const typeOf = (found: readonly ColumnType[], name: string) => found.find((c) => c.name === name)?.type;
  const byKeys: StagingKind = model.keys.every((k) => typeOf(columns, k) === typeOf(model.columns, k)) ? 'keys' : 'initial';
  if (table.tampered || !sameColumns(columns, recorded)) return decided(byKeys, 'tampered', plannerNotes.tampered(table.name, byKeys === 'keys'));
  if (!sameColumns(columns, model.columns)) return decided(byKeys, 'columnsChanged', plannerNotes.columnsChanged(columns, model.columns));
  if (request.resendAll) return decided('keys', 'resendAll');
  return decided('values', 'unchanged');
}

/** The same key columns in the same order. */
export function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/**
 * The refusal of an attempt of a run that a later attempt took over (the sync's row of
 * lockstep_syncs names the later one); null when this attempt may plan.
 */
export function takenOver(recorded: { run_id: string | number | null; attempt: number | null }, run: { id: number; attempt: number }): LockstepError | null {
  if (recorded.run_id === null || Number(recorded.run_id) !== run.id || (recorded.attempt ?? 0) <= run.attempt) return null;
  return new LockstepError(ErrorCode.LeaseLost, `attempt ${run.attempt} of sync run ${run.id} was taken over by attempt ${recorded.attempt}`);
}

/** What a write refused by the fence (another attempt holds the sync's planner) throws. */
export function leaseLost(syncId: number | undefined): LockstepError {
  return new LockstepError(ErrorCode.LeaseLost, `another attempt took over the planner of sync ${syncId}; this attempt writes nothing more`);
}

/**
 * Which staged rows `s` a run delivered, as SQL: all of them when it delivered everything
 * (`complete`) or is a reset (which sends nothing); otherwise those up to the watermark, ranked
 * by part (OPS) and then by key (`key`, the staged row's key, compared with `mark`, the SQL of the
 * watermark's key; null when none was recorded), none before the first. Less the rejected rows:
 * `notRejected`, when any were rejected. `condition` is null when every staged row counts;
 * `marked` says whether it compares with `mark`.
 */
export function deliveredRows(staged: {
  kind: StagingKind;
  complete: boolean;
  part: number;
  key: string;
  mark: string | null;
  notRejected: string | null;
}): { condition: string | null; marked: boolean } {
  const { kind, part, key, mark } = staged;
  const conditions: string[] = [];
  let marked = false;
  if (!staged.complete && kind !== 'reset') {
    if (part < 0 || mark === null) conditions.push('false');
    else {
      const rank = kind === 'initial' ? '0' : `(CASE s.lockstep_op WHEN 'a' THEN 0 WHEN 'c' THEN 1 ELSE 2 END)`;
      conditions.push(`(${rank} < ${part} OR (${rank} = ${part} AND ${key} <= ${mark}))`);
      marked = true;
    }
  }
  if (staged.notRejected !== null) conditions.push(staged.notRejected);
  return { condition: conditions.length === 0 ? null : conditions.join(' AND '), marked };
}

/**
 * The staged rows `s` a rebuilt planner table takes (`delivered`: their SQL condition, see
 * deliveredRows): those delivered, and, compared by key, the removals not delivered yet, so that
 * they stay planned.
 */
export function rowsKept(kind: StagingKind, delivered: string): string {
  return kind === 'keys' ? `(s.lockstep_op <> 'r' AND ${delivered}) OR (s.lockstep_op = 'r' AND NOT (${delivered}))` : delivered;
}

/**
 * The change cursor once a run's delivered rows are taken in. It moves to the highest value the
 * run read only when the run delivered every row it read (`complete`, none `rejected`): the rows
 * past the old value are read again otherwise. Moved, it counts one more cursor run since the last
 * full comparison, or, after a full one, none.
 */
export function cursorAfterRun(
  record: Pick<PlannerRunRecord, 'cursor_value' | 'pending_cursor' | 'cursor_runs' | 'comparison'>,
  run: { complete: boolean; rejected: boolean },
): { cursorValue: string | null; cursorRuns: number } {
  if (!run.complete || run.rejected || record.pending_cursor === null) return { cursorValue: record.cursor_value, cursorRuns: record.cursor_runs };
  return { cursorValue: record.pending_cursor, cursorRuns: record.comparison === 'cursor' ? record.cursor_runs + 1 : 0 };
}

/**
 * A run's parts read from its staging table `staging` (qualified): each kind's rows in key order
 * (`keyList`), removed rows by their key, the others as `columns` (the SQL of the delivered
 * columns); none for a reset, which sends nothing.
 */
export function stagedParts(staging: string, kind: StagingKind, counts: Record<WarehousePlanPart['op'], number>, keyList: string, columns: string): WarehousePlanPart[] {
  const parts: WarehousePlanPart[] = [];
  if (kind === 'reset') return parts;
  for (const op of OPS) {
    if (counts[op] === 0) continue;
    const filter = kind === 'initial' ? '' : `WHERE lockstep_op = '${OP_CODE[op]}' `;
    parts.push({ op, rows: counts[op], query: `SELECT ${op === 'removed' ? keyList : columns} FROM ${staging} ${filter}ORDER BY ${keyList}` });
  }
  return parts;
}

/**
 * A plan's row counts. `plannerRows`: the planner table's rows the model was compared with
 * (`tableRows`, none for a first run). `modelRows`: how many rows the model returned, as the plan
 * counts them: `whole` (what an initial or reset run staged) for those; for a cursor run, the rows
 * past the cursor; else the planner table's rows moved by the plan, with the refused ones.
 */
export function plannedRows(
  plan: { kind: StagingKind; comparison: 'full' | 'cursor'; counts: Record<WarehousePlanPart['op'], number>; tableRows: number; refused: number },
  whole: number,
): { plannerRows: number; modelRows: number } {
  const { kind, comparison, counts, refused } = plan;
  const plannerRows = kind === 'initial' ? 0 : plan.tableRows;
  if (kind === 'initial' || kind === 'reset') return { plannerRows, modelRows: whole };
  return { plannerRows, modelRows: comparison === 'cursor' ? counts.added + counts.changed : plannerRows + counts.added - counts.removed + refused };
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
  tookIn: 'took in the rows an earlier attempt delivered before it stopped',
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
    tally: tallyParts,
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
  return [...nullKeys.map((key) => nullKeyRefusal(keys, key)), ...repeated.flatMap((row) => repeatedKeyRefusals(keys, row))];
}

/** A key found more than once (`row`: the key's columns, then how many times it repeats), refused for each repeat. */
export function repeatedKeyRefusals(keys: readonly string[], row: Value[]): Array<{ key: Value[]; reason: string }> {
  const key = row.slice(0, keys.length);
  return Array.from({ length: Number(row[keys.length]) }, () => duplicateKeyRefusal(key));
}

/** The rows of a dry run's count by code (code, rows, repeated keys) as each part's rows, and whether any key repeats. */
export function tallyParts(rows: ReadonlyArray<readonly [code: unknown, n: unknown, extra: unknown]>): { counts: Record<WarehousePlanPart['op'], number>; repeated: boolean } {
  const counts = { added: 0, changed: 0, removed: 0 };
  let repeated = false;
  for (const [code, n, extra] of rows) {
    counts[partOf(code)] = Number(n);
    if (Number(extra) > 0) repeated = true;
  }
  return { counts, repeated };
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

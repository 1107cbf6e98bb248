/**
 * The decisions the warehouse planners (PostgreSQL, MySQL, DuckDB) share: what a run compares,
 * which models they refuse, the parts a run's staging table is read as, which staged rows were
 * delivered and where the change cursor goes.
 */
import { describe, expect, it } from 'vitest';
import { LockstepError } from '../../src/core/errors.js';
import { checkModelColumns, cursorAfterRun, decideComparison, deliveredRows, plannedRows, plannerNotes, stagedParts, takenOver, type PlannerTableState } from '../../src/connectors/planner-tables.js';

const columns = [
  { name: 'id', type: 'integer' },
  { name: 'name', type: 'text' },
];
const model = { keys: ['id'], columns };
const request = { reset: false, resendAll: false, cursor: null };
const table: PlannerTableState = { name: 'lockstep_planner.sync_1_people', columns, recorded: columns, keyedBy: null, tampered: false, cursorValue: null, cursorRuns: 0 };

describe('decideComparison', () => {
  it('compares by value a table as Lockstep left it, past the cursor when one is due', () => {
    expect(decideComparison(request, model, table)).toEqual({ kind: 'values', comparison: 'full', reason: 'unchanged', note: null });
    const cursor = { column: 'name', full: false, every: 3 };
    expect(decideComparison({ ...request, cursor }, model, { ...table, cursorValue: 'b', cursorRuns: 1 }).comparison).toBe('cursor');
    // The full comparison every `every` runs, or asked for.
    expect(decideComparison({ ...request, cursor }, model, { ...table, cursorValue: 'b', cursorRuns: 2 }).comparison).toBe('full');
    expect(decideComparison({ ...request, cursor: { ...cursor, full: true } }, model, { ...table, cursorValue: 'b' }).comparison).toBe('full');
  });

  it('stages the whole model for a first run, a reset and a dropped table, noting only the drop', () => {
    expect(decideComparison(request, model, { ...table, columns: null, recorded: null })).toMatchObject({ kind: 'initial', reason: 'first', note: null });
    expect(decideComparison({ ...request, reset: true }, model, { ...table, tampered: true })).toMatchObject({ kind: 'reset', note: null });
    expect(decideComparison(request, model, { ...table, columns: null })).toMatchObject({ kind: 'initial', note: plannerNotes.dropped(table.name) });
  });

  it('compares by key a table changed outside Lockstep, or whose model columns changed, and from scratch when the key types changed', () => {
    const cursor = { column: 'name', full: false, every: 24 };
    const tampered = decideComparison({ ...request, cursor }, model, { ...table, tampered: true, cursorValue: 'b' });
    expect(tampered).toEqual({ kind: 'keys', comparison: 'full', reason: 'tampered', note: plannerNotes.tampered(table.name, true) });
    expect(decideComparison(request, model, { ...table, recorded: [columns[0] as (typeof columns)[0]] }).reason).toBe('tampered');
    const wider = [...columns, { name: 'score', type: 'integer' }];
    expect(decideComparison(request, { keys: ['id'], columns: wider }, table)).toEqual({ kind: 'keys', comparison: 'full', reason: 'columnsChanged', note: plannerNotes.columnsChanged(columns, wider) });
    const retyped = [{ name: 'id', type: 'bigint' }, columns[1] as (typeof columns)[1]];
    expect(decideComparison(request, { keys: ['id'], columns: retyped }, table)).toMatchObject({ kind: 'initial', reason: 'columnsChanged' });
    expect(decideComparison({ ...request, resendAll: true }, model, table)).toMatchObject({ kind: 'keys', reason: 'resendAll', note: null });
  });

  it('starts a table keyed by another key again, before looking at anything else', () => {
    const decision = decideComparison(request, { keys: ['id', 'name'], columns }, { ...table, keyedBy: ['id'], tampered: true });
    expect(decision).toEqual({ kind: 'initial', comparison: 'full', reason: 'keysChanged', note: plannerNotes.keysChanged(table.name, ['id'], ['id', 'name']) });
  });
});

describe('checkModelColumns', () => {
  const reserved = new Set(['lockstep_op']);
  const check = (names: string[], extra: { primaryKey?: string[]; cursor?: { column: string; full: boolean; every: number } } = {}, caseInsensitiveIn?: string) =>
    () => checkModelColumns(names, { primaryKey: extra.primaryKey ?? ['id'], cursor: extra.cursor ?? null }, reserved, caseInsensitiveIn);

  it('refuses repeated, reserved and missing columns, naming them', () => {
    expect(check(['id', 'name'])).not.toThrow();
    expect(check(['id', 'name', 'name'])).toThrow('the model\'s query returns column "name" twice');
    expect(check(['id', 'name', 'name'], {}, 'MySQL')).toThrow('returns column "name" twice');
    expect(check(['id', 'Name', 'name'])).not.toThrow();
    expect(check(['id', 'lockstep_op'])).toThrow('a column named "lockstep_op", which the planner in the warehouse uses itself');
    expect(check(['name'])).toThrow('the model declares primary key column "id", but its query returns only "name" — fix primaryKey or the query');
    expect(check(['id'], { cursor: { column: 'at', full: false, every: 24 } })).toThrow('the model\'s cursor column "at" is not among the columns its query returns ("id")');
    expect(check(['id', 'id'])).toThrow(LockstepError);
  });

  it('refuses columns whose names differ only in case where the database takes them as one name, saying so and to rename one', () => {
    expect(check(['id', 'name', 'NAME'], {}, 'DuckDB')).toThrow(
      'the model\'s query returns columns "name" and "NAME": DuckDB takes column names that differ only in case as one name in a table, and the planner in the warehouse keeps the model\'s columns in tables of its own — give one of them another name (AS ...)',
    );
    expect(check(['id', 'LOCKSTEP_OP'], {}, 'MySQL')).toThrow('a column named "LOCKSTEP_OP", which the planner in the warehouse uses itself');
  });

  it('names the column a primary key or cursor written in another case is, as the query spells it', () => {
    expect(check(['id', 'name'], { primaryKey: ['ID'] })).toThrow(
      'the model declares primary key column "ID", but its query returns only "id", "name" (did you mean "id"?) — fix primaryKey or the query',
    );
    expect(check(['id', 'updatedAt'], { cursor: { column: 'updated_at', full: false, every: 24 } })).toThrow(
      'the model\'s cursor column "updated_at" is not among the columns its query returns ("id", "updatedAt") (did you mean "updatedAt"?) — fix cursor or the query',
    );
  });
});

describe('takenOver', () => {
  it('refuses an attempt only when a later attempt of the same run holds the sync', () => {
    expect(takenOver({ run_id: null, attempt: null }, { id: 5, attempt: 1 })).toBeNull();
    expect(takenOver({ run_id: '4', attempt: 3 }, { id: 5, attempt: 1 })).toBeNull();
    expect(takenOver({ run_id: 5, attempt: 1 }, { id: 5, attempt: 1 })).toBeNull();
    expect(takenOver({ run_id: '5', attempt: 2 }, { id: 5, attempt: 1 })?.message).toBe('attempt 1 of sync run 5 was taken over by attempt 2');
  });
});

describe('stagedParts', () => {
  it('reads each kind of staged row in key order, none for a reset', () => {
    const counts = { added: 2, changed: 0, removed: 1 };
    expect(stagedParts('s.t', 'values', counts, '"id"', '"id", "name"')).toEqual([
      { op: 'added', rows: 2, query: `SELECT "id", "name" FROM s.t WHERE lockstep_op = 'a' ORDER BY "id"` },
      { op: 'removed', rows: 1, query: `SELECT "id" FROM s.t WHERE lockstep_op = 'r' ORDER BY "id"` },
    ]);
    expect(stagedParts('s.t', 'initial', { added: 2, changed: 0, removed: 0 }, '"id"', '"id", "name"')[0]?.query).toBe('SELECT "id", "name" FROM s.t ORDER BY "id"');
    expect(stagedParts('s.t', 'reset', counts, '"id"', '"id"')).toEqual([]);
  });
});

describe('deliveredRows', () => {
  const staged = { kind: 'values' as const, complete: false, part: 1, key: '(s."id")', mark: '(7)', notRejected: null };
  const rank = `(CASE s.lockstep_op WHEN 'a' THEN 0 WHEN 'c' THEN 1 ELSE 2 END)`;

  it('takes every row of a run that delivered everything, or of a reset', () => {
    expect(deliveredRows({ ...staged, complete: true })).toEqual({ condition: null, marked: false });
    expect(deliveredRows({ ...staged, kind: 'reset' })).toEqual({ condition: null, marked: false });
  });

  it('takes the rows up to the watermark, by part and then by key, none before the first, less the rejected ones', () => {
    expect(deliveredRows(staged)).toEqual({ condition: `(${rank} < 1 OR (${rank} = 1 AND (s."id") <= (7)))`, marked: true });
    expect(deliveredRows({ ...staged, kind: 'initial', part: 0 }).condition).toBe('(0 < 0 OR (0 = 0 AND (s."id") <= (7)))');
    expect(deliveredRows({ ...staged, part: -1 })).toEqual({ condition: 'false', marked: false });
    expect(deliveredRows({ ...staged, mark: null, notRejected: 'NOT r' })).toEqual({ condition: 'false AND NOT r', marked: false });
    expect(deliveredRows({ ...staged, complete: true, notRejected: 'NOT r' }).condition).toBe('NOT r');
  });
});

describe('cursorAfterRun', () => {
  const record = { cursor_value: '2024-01-01', pending_cursor: '2024-02-01', cursor_runs: 3, comparison: 'cursor' as const };

  it('moves the cursor only when the run delivered every row it read', () => {
    expect(cursorAfterRun(record, { complete: true, rejected: false })).toEqual({ cursorValue: '2024-02-01', cursorRuns: 4 });
    expect(cursorAfterRun({ ...record, comparison: 'full' }, { complete: true, rejected: false })).toEqual({ cursorValue: '2024-02-01', cursorRuns: 0 });
    expect(cursorAfterRun(record, { complete: true, rejected: true })).toEqual({ cursorValue: '2024-01-01', cursorRuns: 3 });
    expect(cursorAfterRun(record, { complete: false, rejected: false })).toEqual({ cursorValue: '2024-01-01', cursorRuns: 3 });
    expect(cursorAfterRun({ ...record, pending_cursor: null }, { complete: true, rejected: false })).toEqual({ cursorValue: '2024-01-01', cursorRuns: 3 });
  });
});

describe('plannedRows', () => {
  const counts = { added: 3, changed: 2, removed: 1 };

  it('counts the model as staged on a first run or a reset, past the cursor on a cursor run, else by the table moved by the plan', () => {
    expect(plannedRows({ kind: 'initial', comparison: 'full', counts, tableRows: 10, refused: 1 }, 4)).toEqual({ plannerRows: 0, modelRows: 4 });
    expect(plannedRows({ kind: 'reset', comparison: 'full', counts, tableRows: 10, refused: 0 }, 4)).toEqual({ plannerRows: 10, modelRows: 4 });
    expect(plannedRows({ kind: 'values', comparison: 'cursor', counts, tableRows: 10, refused: 0 }, 0)).toEqual({ plannerRows: 10, modelRows: 5 });
    expect(plannedRows({ kind: 'values', comparison: 'full', counts, tableRows: 10, refused: 1 }, 0)).toEqual({ plannerRows: 10, modelRows: 13 });
  });
});

/**
 * The planner in the warehouse for DuckDB sources (engine/warehouse-planner.ts), as for PostgreSQL
 * (connectors/postgres/postgres-planner.ts): per sync, a table in Lockstep's schema of the file
 * holds the delivered rows, a run compares the model with it in one statement (columns compared
 * with IS DISTINCT FROM) into a staging table of the rows that differ, and a fenced watermark
 * records what was delivered, with the run's delivered counts. DuckDB has no triggers: a planner
 * table changed by hand is noticed by its row count and a checksum of its rows (DuckDB's `hash` of
 * the columns, XORed), checked at every full comparison. DuckDB sorts fast, so the staging table
 * needs no index.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { Value, WarehousePlan, WarehousePlanner, WarehousePlanPart, WarehousePlanRequest } from '../../core/ports.js';
import { ZERO_COUNTS, type OperationCounts } from '../../core/runs.js';
import { DuckDbMemory, isOutOfMemory } from './duckdb-memory.js';
import {
  OPS, checkModelColumns, comparesWithTable, cursorAfterRun, cursorDue, decideComparison, deliveredBefore, deliveredRows, duplicateKeyRefusal,
  leaseLost, modelQuery, nullKeyRefusal, partOf, pendingNote, plannedRows, plannerNotes, plannerTableName, previewRefusals, previewStatements,
  rowsKept, sameColumns, stagedParts, takenOver, unplannedRun, type ColumnType, type ComparedModel, type PlannerRunRecord, type StagingKind,
} from '../planner-tables.js';

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** Column names the planner's tables use themselves. */
const RESERVED = new Set(['lockstep_op']);

interface MetaRow extends PlannerRunRecord {
  columns: ColumnType[] | null;
  row_count: number;
  checksum: string | null;
  run_id: number | null;
  through: Value[] | null;
  /** The run's delivered counts with the watermark, as JSON (see deliveredBefore). */
  delivered: string | null;
  staged_rows: number;
}

/** What a run compares, and how (see DuckDbPlanner.shape). */
type Shape = ComparedModel;


export class DuckDbPlanner implements WarehousePlanner {
  private chain: Promise<void> = Promise.resolve();
  private fence: { syncId: number; runId: number; attempt: number } | null = null;
  private keys: string[] = [];
  private keyTypes: string[] = [];
  private plannerTable = '';

  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly schema: string,
    private readonly where: string,
    private readonly dryRun: boolean,
    private readonly memory: DuckDbMemory,
  ) {}

  /**
   * Opens the planner on `connection`, creating its schema and table of syncs; `dryRun` creates
   * nothing (see preview). `memory` is the instance's memory limit, shared with the source's reads.
   */
  static async open(connection: DuckDBConnection, schema: string, where: string, options: { dryRun?: boolean; memory?: DuckDbMemory } = {}): Promise<DuckDbPlanner> {
    const planner = new DuckDbPlanner(connection, schema, where, options.dryRun === true, options.memory ?? new DuckDbMemory());
    if (planner.dryRun) return planner;
    try {
      // The comparison's result is ordered when it is read (ORDER BY key): joins and copies need not
      // keep the input's order, which lets them work in less memory (a 10-million-row full join ran
      // out of 128 MB with it).
      await connection.run('SET preserve_insertion_order = false');
      await connection.run(`CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`);
      await connection.run(`CREATE TABLE IF NOT EXISTS ${planner.meta} (
        sync_id BIGINT PRIMARY KEY, slug VARCHAR NOT NULL, planner_table VARCHAR NOT NULL, columns VARCHAR,
        row_count BIGINT NOT NULL DEFAULT 0, checksum VARCHAR, run_id BIGINT, attempt INTEGER, staging VARCHAR,
        staging_kind VARCHAR, key_columns VARCHAR, model_columns VARCHAR, part INTEGER NOT NULL DEFAULT -1, through VARCHAR,
        cursor_value VARCHAR, pending_cursor VARCHAR, cursor_runs INTEGER NOT NULL DEFAULT 0, comparison VARCHAR,
        staged_rows BIGINT NOT NULL DEFAULT 0, delivered VARCHAR)`);
      // Planner schemas made before a run's delivered counts were kept with its watermark.
      await connection.run(`ALTER TABLE ${planner.meta} ADD COLUMN IF NOT EXISTS delivered VARCHAR`);
    } catch (error) {
      throw planner.failure('setting up the planner', error);
    }
    return planner;
  }

  private get meta(): string {
    return `${quote(this.schema)}.lockstep_syncs`;
  }

  private table(name: string): string {
    return `${quote(this.schema)}.${quote(name)}`;
  }

  private async rows<T>(sql: string, params: Value[] = []): Promise<T[]> {
    const result = await this.connection.runAndReadAll(sql, params as never);
    return result.getRowObjectsJS() as T[];
  }

  private async run(sql: string, params: Value[] = []): Promise<void> {
    await this.connection.run(sql, params as never);
  }

  private async readMeta(syncId: number): Promise<MetaRow> {
    const [row] = await this.rows<Record<string, unknown>>(`SELECT * FROM ${this.meta} WHERE sync_id = ?`, [syncId]);
    if (!row) throw new LockstepError(ErrorCode.Internal, 'the planner lost its row in lockstep_syncs');
    const json = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : null);
    return {
      ...(row as unknown as MetaRow),
      row_count: Number(row.row_count),
      run_id: row.run_id === null ? null : Number(row.run_id),
      staged_rows: Number(row.staged_rows),
      columns: json(row.columns),
      key_columns: json(row.key_columns),
      model_columns: json(row.model_columns),
      through: json(row.through),
    };
  }

  async plan(request: WarehousePlanRequest): Promise<WarehousePlan> {
    await this.withMemoryFor(request);
    if (this.dryRun) {
      // One snapshot for all of the dry run's counts; rolled back, as it writes nothing.
      return this.retryingOutOfMemory('comparing the model with its planner table', async () => {
        await this.run('BEGIN TRANSACTION');
        try {
          return await this.preview(request);
        } finally {
          await this.run('ROLLBACK').catch(() => undefined);
        }
      });
    }
    return this.retryingOutOfMemory('comparing the model with its planner table', async () => {
      await this.run('BEGIN TRANSACTION');
      try {
        const plan = await this.planOnce(request);
        await this.run('COMMIT');
        return plan;
      } catch (error) {
        await this.run('ROLLBACK').catch(() => undefined);
        this.fence = null;
        throw error;
      }
    });
  }

  /**
   * Raises DuckDB's memory limit to what comparing the model with a planner table of this sync's
   * size needs (a hash join), instead of running out of memory at each lower step first.
   */
  private async withMemoryFor(request: WarehousePlanRequest): Promise<void> {
    const found = (await this.tableColumns('lockstep_syncs')) === null ? [] : await this.rows<{ n: bigint }>(`SELECT row_count AS n FROM ${this.meta} WHERE sync_id = ?`, [request.sync.id]);
    const rows = Number(found[0]?.n ?? 0);
    if (rows > 0) await this.memory.atLeastFor(this.connection, rows);
  }

  /**
   * Runs `attempt` (which leaves no transaction open when it fails) and, when DuckDB ran out of
   * memory, runs it again under a higher memory limit, up to the last step.
   */
  private async retryingOutOfMemory<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await attempt();
      } catch (error) {
        if (isOutOfMemory(error) && (await this.memory.raise(this.connection).catch(() => false))) continue;
        throw this.failure(isOutOfMemory(error) ? `${what} (at DuckDB's memory limit of ${this.memory.limit})` : what, error);
      }
    }
  }

  private async planOnce(request: WarehousePlanRequest): Promise<WarehousePlan> {
    const notes: string[] = [];
    const base = plannerTableName(request.sync);
    const plannerTable = base;
    const staging = `${base}_stage`;
    const rejectedTable = `${base}_rejected`;

    await this.run(`INSERT INTO ${this.meta} (sync_id, slug, planner_table) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, [request.sync.id, request.sync.slug, plannerTable]);
    let meta = await this.readMeta(request.sync.id);
    const takeover = takenOver(meta, request.run);
    if (takeover) throw takeover;
    if (meta.staging !== null) {
      await this.apply(meta, false);
      notes.push(plannerNotes.tookIn);
    }
    const delivered = deliveredBefore(meta, request.run.id);
    await this.run(`UPDATE ${this.meta} SET run_id = ?, attempt = ?, staging = NULL, part = -1, through = NULL, delivered = ? WHERE sync_id = ?`, [
      request.run.id,
      request.run.attempt,
      JSON.stringify(delivered),
      request.sync.id,
    ]);
    meta = await this.readMeta(request.sync.id);
    this.fence = { syncId: request.sync.id, runId: request.run.id, attempt: request.run.attempt };

    const shape = await this.shape(request, meta, plannerTable, notes);
    const { names, modelColumns, keys, kind, comparison, pendingCursor } = shape;
    this.keys = keys;
    this.keyTypes = keys.map((k) => (modelColumns.find((c) => c.name === k) as ColumnType).type);
    this.plannerTable = plannerTable;

    const q = quote;
    const keyList = keys.map(q).join(', ');
    await this.run(`DROP TABLE IF EXISTS ${this.table(staging)}`);
    await this.run(`DROP TABLE IF EXISTS ${this.table(rejectedTable)}`);
    await this.run(`CREATE TABLE ${this.table(staging)} AS ${this.diffSelect(shape, request, '?')}`, comparison === 'cursor' ? [meta.cursor_value] : []);

    const refused: WarehousePlan['refused'] = [];
    const opFilter = kind === 'initial' || kind === 'reset' ? '' : "lockstep_op <> 'r' AND ";
    const nulls = await this.connection.runAndReadAll(`DELETE FROM ${this.table(staging)} WHERE ${opFilter}(${keys.map((k) => `${q(k)} IS NULL`).join(' OR ')}) RETURNING ${keyList}`);
    for (const key of nulls.getRowsJS() as unknown[][]) refused.push(nullKeyRefusal(keys, key.map(plain)));
    const dups = await this.connection.runAndReadAll(
      `DELETE FROM ${this.table(staging)} WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY ${keyList} ORDER BY rowid) AS n FROM ${this.table(staging)}) WHERE n > 1) RETURNING ${keyList}`,
    );
    for (const key of dups.getRowsJS() as unknown[][]) refused.push(duplicateKeyRefusal(key.map(plain)));
    await this.run(`CREATE TABLE ${this.table(rejectedTable)} AS SELECT ${keyList} FROM ${this.table(staging)} LIMIT 0`);

    const counts = { added: 0, changed: 0, removed: 0 };
    let staged = 0;
    if (kind === 'initial' || kind === 'reset') {
      const [row] = await this.rows<{ n: bigint }>(`SELECT count(*) AS n FROM ${this.table(staging)}`);
      staged = Number(row?.n ?? 0);
      counts.added = staged;
    } else {
      for (const row of await this.rows<{ op: string; n: bigint }>(`SELECT lockstep_op AS op, count(*) AS n FROM ${this.table(staging)} GROUP BY 1`)) {
        counts[partOf(row.op)] = Number(row.n);
        staged += Number(row.n);
      }
    }
    const { plannerRows, modelRows } = plannedRows({ kind, comparison, counts, tableRows: meta.row_count, refused: refused.length }, staged + refused.length);
    await this.fenced('UPDATE ' + this.meta + ' SET staging = ?, staging_kind = ?, key_columns = ?, model_columns = ?, part = -1, through = NULL, pending_cursor = ?, comparison = ?, staged_rows = ?', [
      staging,
      kind,
      JSON.stringify(keys),
      JSON.stringify(modelColumns),
      pendingCursor,
      comparison,
      staged,
    ]);

    const parts = stagedParts(this.table(staging), kind, counts, keyList, names.map(q).join(', '));
    return { parts, refused, modelRows, plannerRows, comparison, notes, delivered };
  }

  /** The model's columns and keys, and how it is compared with the planner table (`meta`): shared by runs and dry runs. */
  private async shape(request: WarehousePlanRequest, meta: MetaRow, plannerTable: string, notes: string[]): Promise<Shape> {
    const query = modelQuery(request);
    const modelColumns = await this.describe(`SELECT * FROM (\n${query}\n) AS lockstep_model LIMIT 0`);
    const names = modelColumns.map((c) => c.name);
    // As a table, the query's columns of one name without regard to case come out renamed (name,
    // NAME_1): the names the query itself returns are the ones to check.
    checkModelColumns((await this.returnedNames(query)) ?? names, request, RESERVED, 'DuckDB');
    const keys = [...request.primaryKey];
    const values = names.filter((n) => !keys.includes(n));

    const existing = await this.tableColumns(plannerTable);
    const cursor = request.cursor;
    const pendingCursor = cursor ? ((await this.rows<{ high: string | null }>(`SELECT max(${quote(cursor.column)})::VARCHAR AS high FROM (\n${query}\n) AS lockstep_model`))[0]?.high ?? null) : null;
    let tampered = false;
    if (existing !== null && meta.columns !== null && comparesWithTable(request, existing, meta.columns)) {
      // Checked at full comparisons: a cursor run reads only a few rows of the table. The checksum
      // reads the recorded columns, so only a table that still has them is checked.
      const cursorRun = cursorDue(cursor, { cursorValue: meta.cursor_value, cursorRuns: meta.cursor_runs });
      tampered = sameColumns(existing, meta.columns) && !cursorRun && (await this.checksum(plannerTable, meta.columns)) !== meta.checksum;
    }
    const { kind, comparison, note } = decideComparison(request, { keys, columns: modelColumns }, {
      name: `${this.schema}.${plannerTable}`,
      columns: existing,
      recorded: meta.columns,
      keyedBy: null,
      tampered,
      cursorValue: meta.cursor_value,
      cursorRuns: meta.cursor_runs,
    });
    if (note !== null) notes.push(note);
    return { query, names, modelColumns, keys, values, kind, comparison, pendingCursor, plannerTable };
  }

  /**
   * The rows a run stages: the model itself (initial, reset) or the rows that differ from the
   * planner table, each with its `lockstep_op`. `cursorValue` is the SQL of the cursor's value.
   */
  private diffSelect(shape: Shape, request: WarehousePlanRequest, cursorValue: string): string {
    const { query, modelColumns, keys, values, kind, comparison, plannerTable } = shape;
    if (kind === 'initial' || kind === 'reset') return `SELECT * FROM (\n${query}\n) AS lockstep_model`;
    const q = quote;
    const cursor = request.cursor;
    const typeOf = (name: string) => (modelColumns.find((c) => c.name === name) as ColumnType).type;
    const differs = kind === 'keys' ? 'true' : values.length === 0 ? 'false' : values.map((v) => `m.${q(v)} IS DISTINCT FROM p.${q(v)}`).join(' OR ');
    const cursorFilter = comparison === 'cursor' ? ` WHERE lockstep_q.${q(cursor?.column as string)} >= CAST(${cursorValue} AS ${typeOf(cursor?.column as string)})` : '';
    const join = comparison === 'cursor' || !request.sends.removed ? 'LEFT JOIN' : 'FULL JOIN';
    const op = `CASE WHEN m.lockstep_m IS NULL THEN 'r' WHEN p.lockstep_p IS NULL THEN 'a' ELSE 'c' END`;
    const wanted = ["'a'", ...(request.sends.changed ? ["'c'"] : []), ...(request.sends.removed && comparison === 'full' ? ["'r'"] : [])];
    const columns = [`${op} AS lockstep_op`, ...keys.map((k) => `coalesce(m.${q(k)}, p.${q(k)}) AS ${q(k)}`), ...values.map((v) => `m.${q(v)}`)];
    return (
      `SELECT * FROM (SELECT ${columns.join(', ')}\n` +
      `FROM (SELECT lockstep_q.*, true AS lockstep_m FROM (\n${query}\n) AS lockstep_q${cursorFilter}) AS m ` +
      `${join} (SELECT lockstep_p.*, true AS lockstep_p FROM ${this.table(plannerTable)} AS lockstep_p) AS p ON ${keys.map((k) => `m.${q(k)} = p.${q(k)}`).join(' AND ')}\n` +
      `WHERE m.lockstep_m IS NULL OR p.lockstep_p IS NULL OR ${differs}) AS lockstep_diff WHERE lockstep_op IN (${wanted.join(', ')})`
    );
  }

  /**
   * A dry run's plan, as PostgresPlanner.preview: the same comparison as a run's, with nothing
   * created or written; the parts' queries are the comparison itself (the source reads them on
   * connections of its own), without null and duplicate keys, which are refused as a run does.
   */
  private async preview(request: WarehousePlanRequest): Promise<WarehousePlan> {
    const notes: string[] = [];
    const plannerTable = plannerTableName(request.sync);
    const found = (await this.tableColumns('lockstep_syncs')) === null ? [] : await this.rows<Record<string, unknown>>(`SELECT 1 FROM ${this.meta} WHERE sync_id = ?`, [request.sync.id]);
    const meta = found.length > 0 ? await this.readMeta(request.sync.id) : unplannedMeta(plannerTable);
    if (meta.staging !== null) notes.push(pendingNote(meta.run_id));
    const shape = await this.shape(request, meta, plannerTable, notes);
    const diff = this.diffSelect(shape, request, `'${(meta.cursor_value ?? '').replace(/'/g, "''")}'`);
    const sql = previewStatements(diff, shape.keys, shape.kind === 'initial' || shape.kind === 'reset' ? "'a'" : 'lockstep_op');
    const rows = async (text: string) => ((await this.connection.runAndReadAll(text)).getRowsJS() as unknown[][]).map((row) => row.map(plain));
    const nullKeys = await rows(sql.nullKeys);
    const { counts, repeated } = sql.tally((await rows(sql.counts)) as Array<[Value, Value, Value]>);
    const refused = previewRefusals(shape.keys, nullKeys, repeated ? await rows(sql.repeatedKeys) : []);
    const { plannerRows, modelRows } = plannedRows({ kind: shape.kind, comparison: shape.comparison, counts, tableRows: meta.row_count, refused: refused.length }, counts.added + refused.length);
    const parts = shape.kind === 'reset' ? [] : sql.parts(counts, repeated, shape.names);
    return { parts, refused, modelRows, plannerRows, comparison: shape.comparison, notes, delivered: { ...ZERO_COUNTS } };
  }

  commit(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    // A dry run delivered nothing: nothing to record.
    if (this.dryRun) return Promise.resolve();
    const next = this.chain.then(() => this.commitNow(through, rejected, delivered));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async commitNow(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    if (rejected.length === 0) {
      // One statement, its own transaction: the watermark moves only if this attempt still holds
      // the sync. A transaction of four statements took 60–130 ms per batch while the parts were
      // read (each waits for DuckDB's threads, busy with the read's sort).
      const fence = this.fence;
      if (!fence) throw new LockstepError(ErrorCode.Internal, 'the planner was written to before a plan');
      let moved: unknown[];
      try {
        moved = await this.rows(`UPDATE ${this.meta} SET part = ?, through = ?, delivered = ? WHERE sync_id = ? AND run_id = ? AND attempt = ? RETURNING sync_id`, [
          OPS.indexOf(through.op),
          JSON.stringify(through.key),
          JSON.stringify(delivered),
          fence.syncId,
          fence.runId,
          fence.attempt,
        ]);
      } catch (error) {
        throw this.failure('recording delivered rows in the planner table', error);
      }
      if (moved.length === 0) throw leaseLost(this.fence?.syncId);
      return;
    }
    await this.run('BEGIN TRANSACTION');
    try {
      await this.fenced(`UPDATE ${this.meta} SET part = ?, through = ?, delivered = ?`, [OPS.indexOf(through.op), JSON.stringify(through.key), JSON.stringify(delivered)]);
      if (rejected.length > 0) {
        const row = `(${this.keyTypes.map((t) => `CAST(? AS ${t})`).join(', ')})`;
        await this.run(`INSERT INTO ${this.table(`${this.plannerTable}_rejected`)} VALUES ${rejected.map(() => row).join(', ')}`, rejected.flat());
      }
      await this.run('COMMIT');
    } catch (error) {
      await this.run('ROLLBACK').catch(() => undefined);
      throw this.failure('recording delivered rows in the planner table', error);
    }
  }

  async finish(): Promise<void> {
    if (this.dryRun) return;
    await this.chain;
    await this.retryingOutOfMemory('taking the delivered rows into the planner table', async () => {
      await this.run('BEGIN TRANSACTION');
      try {
        const meta = await this.readMeta(this.fence?.syncId ?? -1);
        if (meta.run_id !== this.fence?.runId || meta.attempt !== this.fence.attempt) throw leaseLost(this.fence?.syncId);
        await this.apply(meta, true);
        await this.run('COMMIT');
      } catch (error) {
        await this.run('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  /** As PostgresPlanner.apply: the delivered rows into the planner table, inside the caller's transaction. */
  private async apply(meta: MetaRow, complete: boolean): Promise<void> {
    const staging = meta.staging as string;
    const kind = meta.staging_kind as StagingKind;
    const planner = meta.planner_table;
    const rejectedTable = `${planner}_rejected`;
    const keys = meta.key_columns ?? [];
    const columns = meta.model_columns ?? [];
    const s = this.table(staging);
    const p = this.table(planner);
    const drop = async () => {
      await this.run(`DROP TABLE IF EXISTS ${s}`);
      await this.run(`DROP TABLE IF EXISTS ${this.table(rejectedTable)}`);
    };
    const present = (await this.tableColumns(staging)) !== null && (await this.tableColumns(rejectedTable)) !== null;
    if (!present || keys.length === 0) {
      await drop();
      await this.run(`UPDATE ${this.meta} SET staging = NULL, part = -1, through = NULL WHERE planner_table = ?`, [planner]);
      return;
    }
    const [{ n: rejectedCount } = { n: 0n }] = await this.rows<{ n: bigint }>(`SELECT count(*) AS n FROM ${this.table(rejectedTable)}`);
    const anyRejected = Number(rejectedCount) > 0;
    const cursor = cursorAfterRun(meta, { complete, rejected: anyRejected });
    const record = async (rowCount: number, recorded: ColumnType[]) => {
      const checksum = await this.checksum(planner, recorded);
      await this.run(
        `UPDATE ${this.meta} SET staging = NULL, part = -1, through = NULL, columns = ?, row_count = ?, checksum = ?, cursor_value = ?, cursor_runs = ?, pending_cursor = NULL WHERE planner_table = ?`,
        [JSON.stringify(recorded), rowCount, checksum, cursor.cursorValue, cursor.cursorRuns, planner],
      );
    };
    if (kind === 'values' && meta.staged_rows === 0) {
      await drop();
      await this.run(`UPDATE ${this.meta} SET staging = NULL, part = -1, through = NULL, cursor_value = ?, cursor_runs = ?, pending_cursor = NULL WHERE planner_table = ?`, [
        cursor.cursorValue,
        cursor.cursorRuns,
        planner,
      ]);
      return;
    }
    const q = quote;
    const keyRow = (alias: string) => `(${keys.map((k) => `${alias}.${q(k)}`).join(', ')})`;
    const keyType = (k: string) => (columns.find((c) => c.name === k) as ColumnType).type;
    const taken = deliveredRows({
      kind,
      complete,
      part: meta.part,
      key: keyRow('s'),
      mark: meta.through === null ? null : `(${keys.map((k) => `CAST(? AS ${keyType(k)})`).join(', ')})`,
      notRejected: anyRejected ? `NOT EXISTS (SELECT 1 FROM ${this.table(rejectedTable)} AS r WHERE ${keys.map((k) => `r.${q(k)} = s.${q(k)}`).join(' AND ')})` : null,
    });
    const delivered = taken.condition ?? 'true';
    const params: Value[] = taken.marked ? (meta.through as Value[]) : [];
    const selected = columns.map((c) => `s.${q(c.name)}`).join(', ');
    let rowCount: number;
    if (kind === 'initial' || kind === 'reset' || kind === 'keys') {
      const keep = rowsKept(kind, delivered);
      const keepParams = kind === 'keys' ? [...params, ...params] : params;
      // As PostgresPlanner.apply: rows not staged when compared by key keep what was delivered.
      const old = kind === 'keys' ? await this.tableColumns(planner) : null;
      const kept = old
        ? ` UNION ALL SELECT ${columns.map((c) => (old.some((o) => o.name === c.name) ? `CAST(p.${q(c.name)} AS ${c.type})` : `CAST(NULL AS ${c.type})`)).join(', ')} FROM ${p} AS p WHERE NOT EXISTS (SELECT 1 FROM ${s} AS s WHERE ${keys.map((k) => `s.${q(k)} = p.${q(k)}`).join(' AND ')})`
        : '';
      const staged = await this.tableColumns(staging);
      if (kind !== 'keys' && taken.condition === null && staged !== null && sameColumnsInOrder(staged, columns)) {
        // Every staged row was delivered and the staging table holds just the model's columns: it
        // becomes the planner table as it is, instead of being copied (a copy of the whole model,
        // which under DuckDB's memory limit took seconds per million rows).
        await this.run(`DROP TABLE IF EXISTS ${p}`);
        await this.run(`ALTER TABLE ${s} RENAME TO ${q(planner)}`);
      } else {
        const rebuilt = this.table(`${planner}_new`);
        await this.run(`DROP TABLE IF EXISTS ${rebuilt}`);
        await this.run(`CREATE TABLE ${rebuilt} AS SELECT ${selected} FROM ${s} AS s WHERE ${keep}${kept}`, keepParams);
        await this.run(`DROP TABLE IF EXISTS ${p}`);
        await this.run(`ALTER TABLE ${rebuilt} RENAME TO ${q(planner)}`);
      }
      const [row] = await this.rows<{ n: bigint }>(`SELECT count(*) AS n FROM ${p}`);
      rowCount = Number(row?.n ?? 0);
    } else {
      await this.run(`DELETE FROM ${p} AS p WHERE ${keyRow('p')} IN (SELECT ${keyRow('s')} FROM ${s} AS s WHERE ${delivered})`, params);
      await this.run(`INSERT INTO ${p} (${columns.map((c) => q(c.name)).join(', ')}) SELECT ${selected} FROM ${s} AS s WHERE s.lockstep_op IN ('a', 'c') AND ${delivered}`, params);
      const [row] = await this.rows<{ n: bigint }>(`SELECT count(*) AS n FROM ${p}`);
      rowCount = Number(row?.n ?? 0);
    }
    await drop();
    await record(rowCount, (await this.tableColumns(planner)) ?? columns);
  }

  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    this.connection.closeSync();
  }

  private async fenced(set: string, params: Value[]): Promise<void> {
    const fence = this.fence;
    if (!fence) throw new LockstepError(ErrorCode.Internal, 'the planner was written to before a plan');
    const [row] = await this.rows<{ run_id: bigint | null; attempt: number | null }>(`SELECT run_id, attempt FROM ${this.meta} WHERE sync_id = ?`, [fence.syncId]);
    if (!row || Number(row.run_id) !== fence.runId || row.attempt !== fence.attempt) throw leaseLost(this.fence?.syncId);
    await this.run(`${set} WHERE sync_id = ?`, [...params, fence.syncId]);
  }

  private async describe(sql: string): Promise<ColumnType[]> {
    const result = await this.connection.runAndReadAll(sql);
    const types = result.columnTypes().map(String);
    return result.columnNames().map((name, i) => ({ name, type: types[i] as string }));
  }

  /** The column names `query` returns as it is written, or null when DuckDB cannot describe it alone. */
  private async returnedNames(query: string): Promise<string[] | null> {
    try {
      const described = await this.rows<{ column_name: string }>(`DESCRIBE ${query}`);
      return described.map((row) => row.column_name);
    } catch {
      return null;
    }
  }

  private async tableColumns(name: string): Promise<ColumnType[] | null> {
    const found = await this.rows(`SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?`, [this.schema, name]);
    return found.length === 0 ? null : this.describe(`SELECT * FROM ${this.table(name)} LIMIT 0`);
  }

  /** `rows:xor of the rows' hashes`, what the planner table held when Lockstep last wrote it. */
  private async checksum(name: string, columns: readonly ColumnType[]): Promise<string> {
    const [row] = await this.rows<{ n: bigint; h: bigint | null }>(
      `SELECT count(*) AS n, bit_xor(hash(${columns.map((c) => quote(c.name)).join(', ')})) AS h FROM ${this.table(name)}`,
    );
    return `${Number(row?.n ?? 0)}:${row?.h === null || row?.h === undefined ? '' : String(row.h)}`;
  }

  private failure(what: string, thrown: unknown): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    return new LockstepError(ErrorCode.Query, `${what} in schema "${this.schema}" of ${this.where} failed: ${error.message}`, { cause: error });
  }
}

/** The meta row of a sync the planner never ran for: compared as a first run. */
function unplannedMeta(plannerTable: string): MetaRow {
  return { ...unplannedRun(plannerTable), columns: null, row_count: 0, checksum: null, run_id: null, through: null, delivered: null, staged_rows: 0 };
}

function plain(value: unknown): Value {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : String(value);
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

/** Same columns, names and types, in the same order. */
function sameColumnsInOrder(a: readonly ColumnType[], b: readonly ColumnType[]): boolean {
  return a.length === b.length && a.every((c, i) => c.name === b[i]?.name && c.type === b[i]?.type);
}


/**
 * The planner in the warehouse for MySQL and MariaDB sources (engine/warehouse-planner.ts), as for
 * PostgreSQL (connectors/postgres/postgres-planner.ts): per sync, a table in a database Lockstep owns
 * on the same server (`lockstep_planner` by default) holds the rows as delivered, one column per
 * model column. A run compares the model with it by SQL (a join along the key, columns compared with
 * `<=>`, strings as bytes) into a staging table of the rows that differ; only those travel.
 *
 * MySQL has no FULL JOIN: added and changed rows come from the model LEFT JOIN the planner table,
 * removed rows from an anti-join of the planner table with the model. MySQL's DDL commits on its own,
 * so the design keeps every step that counts in InnoDB transactions around the DDL:
 * - a plan creates the (empty) staging tables first, then fills them, refuses null and duplicate
 *   keys and points the sync's row of lockstep_syncs at them in one transaction;
 * - a commit records the watermark (the last delivered row, in a typed row of the `_marks` table,
 *   and its kind in lockstep_syncs), the rejected keys and the run's delivered counts in one
 *   transaction fenced by run and attempt: a row counts as delivered only once that transaction
 *   committed;
 * - taking the delivered rows in is one transaction when the planner table is updated in place; when
 *   it is replaced (a first run's staging table, which holds the whole model keyed, less what was
 *   not delivered; or a table rebuilt from a comparison by key), the swap is recorded (`swap_from`)
 *   with the last of its rows, the tables are renamed (one atomic RENAME) and the sync's row
 *   updated; an attempt that stopped anywhere in between is finished by the next one from what
 *   lockstep_syncs records.
 * A named lock (GET_LOCK) per sync keeps two attempts from planning or taking in at once.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import { PlannerCommits } from '../planner-commits.js';
import type { Value, WarehousePlan, WarehousePlanner, WarehousePlanPart, WarehousePlanRequest } from '../../core/ports.js';
import { ZERO_COUNTS, type OperationCounts } from '../../core/runs.js';
import { classifyMysqlError, MysqlFailure, mysqlErrno, quoteMysqlIdent as quote, type MysqlField, type MysqlPool, type MysqlPoolConnection } from './mysql-client.js';
import { converterFor } from './mysql-source.js';
import {
  OPS, OP_CODE, caseOnlyDuplicate, checkModelColumns, comparesWithTable, cursorAfterRun, decideComparison, deliveredBefore, deliveredRows, leaseLost, modelQuery,
  nullKeyRefusal, partOf, pendingNote, plannedRows, plannerNotes, plannerTableName, repeatedKeyRefusals, rowsKept, stagedParts, takenOver,
  tallyParts, unplannedRun, type ColumnType, type ComparedModel, type PlannerRunRecord, type StagingKind,
} from '../planner-tables.js';

/** A result column as the driver describes it, with what the planner reads of it. */
interface Field extends MysqlField {
  decimals: number;
  flags: number;
}

interface MetaRow extends PlannerRunRecord {
  sync_id: number;
  planned_columns: ColumnType[] | null;
  row_count: number;
  tampered: boolean;
  guarded: boolean;
  run_id: number | null;
  /** The run's delivered counts with the watermark, as JSON (see deliveredBefore). */
  delivered: string | null;
  staged_rows: number;
  swap_from: string | null;
}

/** What a run compares, and how (see MysqlPlanner.shape), with the driver's description of the model's columns. */
interface Shape extends ComparedModel {
  fields: Field[];
}

/** Column names the planner's tables use themselves. */
const RESERVED = new Set(['lockstep_op', 'lockstep_n', 'lockstep_mark', 'lockstep_rn']);

/** Access denied to a database, a table or a command; SUPER needed (binary logging); no such table. */
const DENIED = new Set([1044, 1142, 1143, 1227]);
const NEEDS_SUPER = 1419;
/** The server runs read-only (a replica: --read-only); a read-only transaction. */
const READ_ONLY = new Set([1290, 1792]);
const NO_SUCH_TABLE = 1146;
/** A BLOB/TEXT column in a key without a length; a key longer than the engine allows. */
const KEY_UNINDEXABLE = new Set([1170, 1071]);
/** ER_DUP_FIELDNAME: a column added meanwhile by another process. */
const DUPLICATE_COLUMN = 1060;

/** Protocol type codes, as names for messages and for the type recorded per column. */
const TYPE_NAMES: Record<number, string> = {
  0: 'decimal', 1: 'tinyint', 2: 'smallint', 3: 'int', 4: 'float', 5: 'double', 7: 'timestamp', 8: 'bigint', 9: 'mediumint',
  10: 'date', 11: 'time', 12: 'datetime', 13: 'year', 15: 'varchar', 16: 'bit', 245: 'json', 246: 'decimal', 247: 'enum', 248: 'set',
  249: 'tinyblob', 250: 'mediumblob', 251: 'longblob', 252: 'blob', 253: 'varchar', 254: 'char', 255: 'geometry',
};
const STRING_TYPES = new Set([15, 247, 248, 249, 250, 251, 252, 253, 254]);
/** TINYBLOB, MEDIUMBLOB, LONGBLOB, BLOB: TEXT and BLOB columns, told apart by their character set. */
const BLOB_TYPES = new Set([249, 250, 251, 252]);
/** The most characters (or bytes) a TINY, plain, MEDIUM and LONG TEXT (or BLOB) holds. */
const LONG_BLOB = 4294967295;
const BLOB_SIZES = [255, 65535, 16777215, LONG_BLOB];
const INTEGER_TYPES = new Set([1, 2, 3, 8, 9, 13]);
const TEMPORAL_TYPES = new Set([7, 10, 11, 12]);
/** TIMESTAMP, DATE, DATETIME (and DATE as older servers describe it): the types with a calendar day. */
const DATE_TYPES = new Set([7, 10, 12, 14]);
const UNSIGNED_FLAG = 32;
/** The type of a column that is NULL in every row, as `NULL AS x` is. */
const NULL_TYPE = 6;
/** MySQL's own JSON type (MariaDB's JSON is LONGTEXT, marked `json` in a result's extended metadata). */
const MYSQL_JSON = 245;
const BINARY_CHARSET = 63;

export class MysqlPlanner implements WarehousePlanner {
  private readonly commits = new PlannerCommits((through, rejected, delivered) => this.commitNow(through, rejected, delivered));
  private fence: { syncId: number; runId: number; attempt: number } | null = null;
  private keys: string[] = [];
  private keyFields: Field[] = [];
  private plannerTable = '';

  private constructor(
    private readonly pool: MysqlPool,
    private readonly connection: MysqlPoolConnection,
    private readonly schema: string,
    private readonly where: string,
    private readonly dryRun: boolean,
  ) {}

  /**
   * Opens the planner on `connection` (its own, from `pool`, which close() ends): creates the
   * database and the table of syncs, or (dryRun) only checks that a run could, creating nothing.
   */
  static async open(pool: MysqlPool, connection: MysqlPoolConnection, schema: string, where: string, options: { dryRun?: boolean } = {}): Promise<MysqlPlanner> {
    const planner = new MysqlPlanner(pool, connection, schema, where, options.dryRun === true);
    try {
      // UTC, as the source reads (TIMESTAMPs and cursor values as instants); a statement outside
      // START TRANSACTION commits on its own, whatever the server's default (the steps between
      // transactions count on it); the connection, and the sync's lock with it, lasts the run, idle
      // while a slow destination writes (a server's wait_timeout may be seconds); each statement of
      // a comparison reads without locking the model's rows; @lockstep_planner marks Lockstep's own
      // writes to planner tables, which the guard triggers let through.
      await connection.query("SET SESSION autocommit = 1, time_zone = '+00:00', wait_timeout = 86400");
      if (planner.dryRun) {
        await connection.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
        await connection.query('SET SESSION TRANSACTION READ ONLY');
        await planner.checkAccess();
      } else {
        await connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
        await connection.query('SET @lockstep_planner = 1');
        await planner.setUp();
      }
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

  private async rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const [rows] = params.length > 0 ? await this.connection.execute<T[]>(sql, params) : await this.connection.query<T[]>(sql);
    return rows;
  }

  /** Rows as arrays with the driver's description of their columns. */
  private async arrays(sql: string): Promise<{ rows: unknown[][]; fields: Field[] }> {
    const query = this.connection.query as unknown as (options: { sql: string; rowsAsArray: boolean }) => Promise<[unknown[][], Field[]]>;
    const [rows, fields] = await query.call(this.connection, { sql, rowsAsArray: true });
    return { rows, fields };
  }

  private async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    const [result] = params.length > 0 ? await this.connection.execute<{ affectedRows: number }>(sql, params) : await this.connection.query<{ affectedRows: number }>(sql);
    return result.affectedRows ?? 0;
  }

  /** A statement's result header: rows written, and MySQL's `Records: n  Duplicates: n  Warnings: n`. */
  private async header(sql: string): Promise<{ affectedRows: number; info?: string }> {
    const [result] = await this.connection.query<{ affectedRows: number; info?: string }>(sql);
    return result;
  }

  private async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.connection.query('START TRANSACTION');
    try {
      const result = await work();
      await this.connection.query('COMMIT');
      return result;
    } catch (error) {
      await this.connection.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /** `'user'@'host'` of the session, as GRANT spells it. */
  private async grantee(): Promise<string> {
    const [row] = await this.rows<{ user: string }>('SELECT CURRENT_USER() AS user');
    const user = row?.user ?? 'user@%';
    const at = user.lastIndexOf('@');
    return `'${user.slice(0, at)}'@'${user.slice(at + 1)}'`;
  }

  private refused(grantee: string, cause?: unknown): LockstepError {
    return new LockstepError(
      ErrorCode.Connection,
      `user ${grantee} may not create or write the planner database ${quote(this.schema)} on ${this.where} — run: GRANT ALL ON ${quote(this.schema)}.* TO ${grantee}; (or set planner: store on the source)`,
      cause === undefined ? undefined : { cause },
    );
  }

  private async setUp(): Promise<void> {
    try {
      await this.run(`CREATE DATABASE IF NOT EXISTS ${quote(this.schema)}`);
      await this.run(`CREATE TABLE IF NOT EXISTS ${this.meta} (
        sync_id         BIGINT NOT NULL PRIMARY KEY,
        slug            VARCHAR(255) NOT NULL,
        planner_table   VARCHAR(64) NOT NULL,
        planned_columns LONGTEXT NULL,
        row_count       BIGINT NOT NULL DEFAULT 0,
        tampered        TINYINT NOT NULL DEFAULT 0,
        guarded         TINYINT NOT NULL DEFAULT 0,
        run_id          BIGINT NULL,
        attempt         INT NULL,
        staging         VARCHAR(64) NULL,
        staging_kind    VARCHAR(16) NULL,
        key_columns     LONGTEXT NULL,
        model_columns   LONGTEXT NULL,
        part            INT NOT NULL DEFAULT -1,
        through_key     LONGTEXT NULL,
        delivered       LONGTEXT NULL,
        cursor_value    LONGTEXT NULL,
        pending_cursor  LONGTEXT NULL,
        cursor_runs     INT NOT NULL DEFAULT 0,
        comparison      VARCHAR(8) NULL,
        staged_rows     BIGINT NOT NULL DEFAULT 0,
        swap_from       VARCHAR(64) NULL,
        updated_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
      ) ENGINE=InnoDB`);
      // Planner databases made before a run's delivered counts were kept with its watermark (MySQL
      // has no ADD COLUMN IF NOT EXISTS).
      const [found] = await this.rows<{ n: number }>(
        "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'lockstep_syncs' AND COLUMN_NAME = 'delivered'",
        [this.schema],
      );
      if (Number(found?.n ?? 0) === 0) {
        await this.run(`ALTER TABLE ${this.meta} ADD COLUMN delivered LONGTEXT NULL`).catch((error: unknown) => {
          if (mysqlErrno(error) !== DUPLICATE_COLUMN) throw error;
        });
      }
    } catch (error) {
      const errno = mysqlErrno(error) ?? 0;
      if (DENIED.has(errno)) throw this.refused(await this.grantee(), error);
      // Here, where nothing was written yet, a server that only allows reading is a replica (in a
      // run, the same error is a failover under way: transient).
      if (READ_ONLY.has(errno)) {
        throw new LockstepError(
          ErrorCode.Connection,
          `the planner cannot keep its tables on ${this.where}: the server only allows reading there (${toError(error).message}) — point the source at a server that takes writes (the primary), or set planner: store on the source`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /**
   * A dry run's open: the grants a run's open needs are checked (so a plan fails, or with `auto`
   * falls back, as a run would), without creating anything.
   */
  private async checkAccess(): Promise<void> {
    const grantee = await this.grantee();
    const [visible] = await this.rows<{ n: number }>('SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [this.schema]);
    if (Number(visible?.n ?? 0) > 0) return;
    const [creates] = await this.rows<{ n: number }>(
      `SELECT (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'CREATE')
            + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'CREATE' AND ? LIKE TABLE_SCHEMA) AS n`,
      [grantee, grantee, this.schema],
    );
    if (Number(creates?.n ?? 0) === 0) throw this.refused(grantee);
  }

  /** Waits for the sync's named lock: one attempt at a time plans or takes rows in. */
  private async lock<T>(syncId: number, work: () => Promise<T>): Promise<T> {
    const name = `lockstep_planner:${createHash('sha1').update(`${this.schema}:${syncId}`).digest('hex').slice(0, 32)}`;
    const [got] = await this.rows<{ ok: number | null }>('SELECT GET_LOCK(?, 3600) AS ok', [name]);
    if (Number(got?.ok) !== 1) throw new LockstepError(ErrorCode.Transient, `the planner of sync ${syncId} on ${this.where} is held by another run attempt (waited an hour for its lock)`);
    try {
      return await work();
    } finally {
      await this.rows('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
    }
  }

  private async readMeta(syncId: number, forUpdate = false): Promise<MetaRow | null> {
    const [row] = await this.rows<Record<string, unknown>>(`SELECT * FROM ${this.meta} WHERE sync_id = ?${forUpdate ? ' FOR UPDATE' : ''}`, [syncId]);
    return row ? parseMeta(row) : null;
  }

  async plan(request: WarehousePlanRequest): Promise<WarehousePlan> {
    if (this.dryRun) {
      // One snapshot for all of the dry run's counts.
      await this.connection.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
      try {
        return await this.preview(request);
      } catch (error) {
        throw this.failure('comparing the model with its planner table', error);
      } finally {
        await this.connection.query('ROLLBACK').catch(() => undefined);
      }
    }
    try {
      return await this.lock(request.sync.id, () => this.planOnce(request));
    } catch (error) {
      this.fence = null;
      throw this.failure('comparing the model with its planner table', error);
    }
  }

  private async planOnce(request: WarehousePlanRequest): Promise<WarehousePlan> {
    const notes: string[] = [];
    const plannerTable = plannerTableName(request.sync);
    const staging = `${plannerTable}_stage`;
    const marks = `${plannerTable}_marks`;

    // Take the sync's planner over for this attempt: from here on, an earlier attempt's commits are
    // refused, so what it recorded is final; its delivered rows are then taken in.
    await this.run(`INSERT IGNORE INTO ${this.meta} (sync_id, slug, planner_table) VALUES (?, ?, ?)`, [request.sync.id, request.sync.slug, plannerTable]);
    let delivered: OperationCounts = { ...ZERO_COUNTS };
    const earlier = await this.transaction(async () => {
      const meta = await this.readMeta(request.sync.id, true);
      if (!meta) throw new LockstepError(ErrorCode.Internal, 'the planner lost its row in lockstep_syncs');
      const takeover = takenOver(meta, request.run);
      if (takeover) throw takeover;
      delivered = deliveredBefore(meta, request.run.id);
      await this.run(`UPDATE ${this.meta} SET run_id = ?, attempt = ?, delivered = ? WHERE sync_id = ?`, [request.run.id, request.run.attempt, JSON.stringify(delivered), request.sync.id]);
      return meta;
    });
    this.fence = { syncId: request.sync.id, runId: request.run.id, attempt: request.run.attempt };
    if (earlier.staging !== null || earlier.swap_from !== null) {
      await this.apply(earlier, false);
      notes.push(plannerNotes.tookIn);
    }
    const meta = (await this.readMeta(request.sync.id)) as MetaRow;

    const shape = await this.shape(request, meta, plannerTable, notes);
    const { names, fields, keys, kind, comparison, pendingCursor } = shape;
    this.keys = keys;
    this.keyFields = keys.map((k) => fields[names.indexOf(k)] as Field);
    this.plannerTable = plannerTable;
    const q = quote;
    const keyList = keys.map(q).join(', ');
    const anyNull = keys.map((k) => `${q(k)} IS NULL`).join(' OR ');

    // The empty staging tables first (DDL commits by itself). The whole model (a first run, resetCDC)
    // is staged as the planner table will hold it, keyed, so that it can become the planner table by
    // a rename; compared rows are numbered in the order they were staged.
    const whole = kind === 'initial' || kind === 'reset';
    await this.run(`DROP TABLE IF EXISTS ${this.table(staging)}, ${this.table(marks)}, ${this.table(`${plannerTable}_new`)}`);
    try {
      await this.run(
        whole
          ? `CREATE TABLE ${this.table(staging)} (PRIMARY KEY (${keyList})) ENGINE=InnoDB AS SELECT m.* FROM (\n${shape.query}\n) AS m LIMIT 0`
          : `CREATE TABLE ${this.table(staging)} (lockstep_n BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, KEY lockstep_key (${keyList})) ENGINE=InnoDB
               AS SELECT 'a' AS lockstep_op, m.* FROM (\n${shape.query}\n) AS m LIMIT 0`,
      );
    } catch (error) {
      if (KEY_UNINDEXABLE.has(mysqlErrno(error) ?? 0)) {
        throw new LockstepError(
          ErrorCode.Schema,
          `the model's primary key (${keys.join(', ')}) cannot be indexed by ${this.where}: ${toError(error).message} — cast long text or BLOB key columns to VARCHAR(n) in the model's query, or set planner: store on the source`,
          { cause: error },
        );
      }
      throw error;
    }
    await this.nullable(staging, whole ? keys : []);
    // Keyed by a number of its own, as every table Lockstep makes: servers with sql_require_primary_key
    // (MySQL; managed services set it) or innodb_force_primary_key (MariaDB) refuse a table without one.
    await this.run(
      `CREATE TABLE ${this.table(marks)} (lockstep_n BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, KEY lockstep_key (lockstep_mark, ${keyList})) ENGINE=InnoDB
         AS SELECT 0 AS lockstep_mark, ${keyList} FROM ${this.table(staging)} LIMIT 0`,
    );

    return this.transaction(async () => {
      const refused: WarehousePlan['refused'] = [];
      const keyValues = (fieldsOf: Field[], row: unknown[]) => row.map((v, i) => converterFor(fieldsOf[i] as Field)(v));
      const refuseNulls = (rows: unknown[][], fieldsOf: Field[]) => {
        for (const row of rows) refused.push(nullKeyRefusal(keys, keyValues(fieldsOf, row)));
      };
      const refuseDuplicates = (rows: unknown[][], fieldsOf: Field[]) => {
        for (const row of rows) refused.push(...repeatedKeyRefusals(keys, [...keyValues(fieldsOf, row.slice(0, keys.length)), Number(row[keys.length])]));
      };
      const counts = { added: 0, changed: 0, removed: 0 };
      let staged: number;
      if (whole) {
        // The key keeps one row per key (IGNORE drops the others, which MySQL counts); null keys
        // are left out. Both are then looked up in the model, only when there are any (a key
        // column declared NOT NULL makes the null lookup free).
        const m = keys.map((k) => `m.${q(k)}`);
        const anyNullInModel = keys.map((k) => `${modelValue(shape, k)} IS NULL`).join(' OR ');
        const inserted = await this.header(
          `INSERT IGNORE INTO ${this.table(staging)} (${names.map(q).join(', ')}) SELECT ${names.map((n) => modelValue(shape, n)).join(', ')} FROM (\n${shape.query}\n) AS m WHERE NOT (${anyNullInModel})`,
        );
        staged = inserted.affectedRows;
        const nulls = await this.arrays(`SELECT ${m.join(', ')} FROM (\n${shape.query}\n) AS m WHERE ${anyNullInModel}`);
        refuseNulls(nulls.rows, nulls.fields);
        if (Number(/Duplicates:\s*(\d+)/.exec(inserted.info ?? '')?.[1] ?? 0) > 0) {
          const dups = await this.arrays(
            `SELECT ${m.join(', ')}, COUNT(*) - 1 FROM (\n${shape.query}\n) AS m WHERE NOT (${anyNullInModel}) GROUP BY ${m.join(', ')} HAVING COUNT(*) > 1 ORDER BY ${m.join(', ')}`,
          );
          refuseDuplicates(dups.rows, dups.fields);
        }
        counts.added = staged;
      } else {
        const cursorLiteral = this.cursorLiteral(shape, meta.cursor_value);
        staged = await this.run(`INSERT INTO ${this.table(staging)} (lockstep_op, ${names.map(q).join(', ')}) ${this.changedSelect(shape, request, cursorLiteral)}`);
        const removes = this.removedSelect(shape, request);
        if (removes) staged += await this.run(`INSERT INTO ${this.table(staging)} (lockstep_op, ${keyList}) ${removes}`);

        // Null and duplicate keys: found here, refused, and kept out of the plan.
        const nulls = await this.arrays(`SELECT ${keyList} FROM ${this.table(staging)} WHERE lockstep_op <> 'r' AND (${anyNull})`);
        refuseNulls(nulls.rows, nulls.fields);
        if (nulls.rows.length > 0) await this.run(`DELETE FROM ${this.table(staging)} WHERE lockstep_op <> 'r' AND (${anyNull})`);
        // Among the model's rows: a removed key is in the model under no text of the same bytes (see sameKey).
        const dups = await this.arrays(`SELECT ${keyList}, COUNT(*) - 1 FROM ${this.table(staging)} WHERE lockstep_op <> 'r' GROUP BY ${keyList} HAVING COUNT(*) > 1 ORDER BY ${keyList}`);
        refuseDuplicates(dups.rows, dups.fields);
        if (dups.rows.length > 0) {
          await this.run(
            `DELETE s FROM ${this.table(staging)} AS s JOIN (SELECT ${keyList}, MIN(lockstep_n) AS lockstep_first FROM ${this.table(staging)} WHERE lockstep_op <> 'r' GROUP BY ${keyList} HAVING COUNT(*) > 1) AS d
               ON ${keys.map((k) => `s.${q(k)} = d.${q(k)}`).join(' AND ')} WHERE s.lockstep_n > d.lockstep_first AND s.lockstep_op <> 'r'`,
          );
        }
        staged -= refused.length;
        for (const row of await this.rows<{ op: string; n: number | string }>(`SELECT lockstep_op AS op, COUNT(*) AS n FROM ${this.table(staging)} GROUP BY lockstep_op`)) {
          counts[partOf(row.op)] = Number(row.n);
        }
      }
      const { plannerRows, modelRows } = plannedRows({ kind, comparison, counts, tableRows: meta.row_count, refused: refused.length }, staged + refused.length);
      await this.fenced(
        `UPDATE ${this.meta} SET staging = ?, staging_kind = ?, key_columns = ?, model_columns = ?, part = -1, through_key = NULL, pending_cursor = ?, comparison = ?, staged_rows = ?, updated_at = CURRENT_TIMESTAMP(3)`,
        [staging, kind, JSON.stringify(keys), JSON.stringify(shape.modelColumns), pendingCursor, comparison, staged],
      );

      const delivering = names.map((n) => deliveredColumn(shape, n)).join(', ');
      const parts = stagedParts(this.table(staging), kind, counts, keyList, delivering);
      return { parts, refused, modelRows, plannerRows, comparison, notes, delivered };
    });
  }

  /**
   * Makes the (empty) table's columns but `keys` nullable, as they may come NOT NULL from the model:
   * removed rows hold their key only, and a model whose column turns nullable keeps its planner table.
   */
  private async nullable(name: string, keys: readonly string[]): Promise<void> {
    const columns = await this.rows<{ name: string; type: string; charset: string | null; collation: string | null }>(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND IS_NULLABLE = 'NO' AND COLUMN_NAME NOT IN ('lockstep_n', 'lockstep_op') ORDER BY ORDINAL_POSITION`,
      [this.schema, name],
    );
    const loose = columns.filter((c) => !keys.includes(c.name));
    if (loose.length === 0) return;
    const modify = loose.map((c) => `MODIFY ${quote(c.name)} ${c.type}${c.charset ? ` CHARACTER SET ${c.charset}` : ''}${c.collation ? ` COLLATE ${c.collation}` : ''} NULL`);
    await this.run(`ALTER TABLE ${this.table(name)} ${modify.join(', ')}`);
  }

  /** The model's columns and keys, and how it is compared with the planner table (`meta`): shared by runs and dry runs. */
  private async shape(request: WarehousePlanRequest, meta: MetaRow, plannerTable: string, notes: string[]): Promise<Shape> {
    const query = modelQuery(request);
    let fields: Field[];
    try {
      ({ fields } = await this.arrays(`SELECT * FROM (\n${query}\n) AS lockstep_model LIMIT 0`));
    } catch (thrown) {
      // Refused or wrong, the model's query is the model's to fix, whatever the planner's database allows.
      const error = toError(thrown);
      if (classifyMysqlError(error) === MysqlFailure.Transient) throw thrown;
      // The query as a table (the planner's, this derived one) may not hold two columns of one name
      // without regard to case, which the query alone, run in the mysql client, may return.
      const repeated = mysqlErrno(error) === DUPLICATE_COLUMN ? /'(.*)'/.exec(error.message)?.[1] : undefined;
      if (repeated !== undefined) throw caseOnlyDuplicate(`more than one column named "${repeated}" without regard to case`, 'MySQL');
      throw new LockstepError(
        ErrorCode.Query,
        `the model's query failed on source ${this.where}: ${error.message} — check the model's query (run it with the mysql client to see the full error)`,
        { cause: error },
      );
    }
    const names = fields.map((f) => f.name);
    const modelColumns = fields.map((f) => ({ name: f.name, type: typeName(f) }));
    checkModelColumns(names, request, RESERVED, 'MySQL');
    const keys = [...request.primaryKey];
    const values = names.filter((n) => !keys.includes(n));

    // Is the planner table what Lockstep left? Then compare values; otherwise by key, or from scratch.
    const existing = await this.describeTable(plannerTable);
    let tampered = false;
    if (existing !== null && comparesWithTable(request, existing.columns, meta.planned_columns)) {
      // TRUNCATE fires no trigger; without triggers (see guard), the row count is all there is to check.
      const count = meta.guarded ? null : await this.countRows(plannerTable);
      const emptied = meta.guarded ? meta.row_count > 0 && !(await this.hasRows(plannerTable)) : count !== meta.row_count;
      tampered = meta.tampered || (meta.guarded && !existing.guarded) || emptied;
    }
    const compared = existing === null ? modelColumns : await this.collationsChanged(query, fields, keys, plannerTable, modelColumns);
    const { kind, comparison, note } = decideComparison(request, { keys, columns: compared }, {
      name: `${this.schema}.${plannerTable}`,
      columns: existing?.columns ?? null,
      recorded: meta.planned_columns,
      keyedBy: null,
      tampered,
      cursorValue: meta.cursor_value,
      cursorRuns: meta.cursor_runs,
    });
    if (note !== null) notes.push(note);

    // The change cursor: rows past the last delivered value, with a full comparison every so often.
    let pendingCursor: string | null = null;
    const cursor = request.cursor;
    if (cursor) {
      const column = zeroDateAsNull(fields[names.indexOf(cursor.column)] as Field, `m.${quote(cursor.column)}`);
      const [high] = await this.rows<{ high: string | null }>(`SELECT CAST(MAX(${column}) AS CHAR) AS high FROM (\n${query}\n) AS m`);
      pendingCursor = high?.high ?? null;
    }
    return { query, names, fields, modelColumns, keys, values, kind, comparison, pendingCursor, plannerTable };
  }

  /**
   * `modelColumns`, with the collation named in the type of each text key column whose collation is
   * no longer its copy's in the planner table (a column altered to `utf8mb4_bin`, say): the key then
   * changed type and the table starts again, as the two could not be compared (MySQL refuses to
   * compare text of two collations) and the table's key may hold as one what the model now tells apart.
   */
  private async collationsChanged(query: string, fields: Field[], keys: readonly string[], plannerTable: string, modelColumns: ColumnType[]): Promise<ColumnType[]> {
    const texts = keys.filter((k) => {
      const field = fields.find((f) => f.name === k) as Field;
      return STRING_TYPES.has(field.columnType) && field.characterSet !== BINARY_CHARSET;
    });
    if (texts.length === 0) return modelColumns;
    const copies = await this.rows<{ name: string; collation: string | null }>(
      `SELECT COLUMN_NAME AS name, COLLATION_NAME AS collation FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
      [this.schema, plannerTable],
    );
    // COLLATION() names a column's collation whatever its value, a NULL of the outer join included: the model's query is not run.
    const [model] = await this.rows<Record<string, string | null>>(
      `SELECT ${texts.map((k, i) => `COLLATION(m.${quote(k)}) AS c${i}`).join(', ')} FROM (SELECT 1) AS lockstep_one LEFT JOIN (SELECT * FROM (\n${query}\n) AS lockstep_q LIMIT 0) AS m ON TRUE`,
    );
    const changed = new Map<string, string>();
    texts.forEach((k, i) => {
      const now = model?.[`c${i}`] ?? null;
      const before = copies.find((c) => c.name.toLowerCase() === k.toLowerCase())?.collation ?? null;
      if (now !== null && before !== null && now !== before) changed.set(k, now);
    });
    return changed.size === 0 ? modelColumns : modelColumns.map((c) => (changed.has(c.name) ? { ...c, type: `${c.type} collate ${changed.get(c.name)}` } : c));
  }

  /** The cursor's last delivered value as SQL (null unless the run compares past the cursor). */
  private cursorLiteral(shape: Shape, value: string | null): string | null {
    return shape.comparison === 'cursor' && value !== null ? textLiteral(value) : null;
  }

  /**
   * The model's rows that are added or changed (`lockstep_op`, then the model's columns): the model
   * LEFT JOIN the planner table along the key, values compared with `<=>` (strings as bytes, so a
   * change of case or of trailing spaces counts). A cursor comparison reads only rows past `cursor`.
   */
  private changedSelect(shape: Shape, request: WarehousePlanRequest, cursor: string | null): string {
    const { query, names, fields, keys, values, kind, comparison, plannerTable } = shape;
    const q = quote;
    const columns = names.map((n) => modelValue(shape, n)).join(', ');
    if (kind === 'initial' || kind === 'reset') return `SELECT 'a' AS lockstep_op, ${columns} FROM (\n${query}\n) AS m`;
    const cursorColumn = request.cursor?.column;
    const past =
      comparison === 'cursor' && cursorColumn !== undefined && cursor !== null
        ? ` AND m.${q(cursorColumn)} >= ${castTo(fields[names.indexOf(cursorColumn)] as Field, cursor)}`
        : '';
    const compared = values.map((v) => {
      const field = fields[names.indexOf(v)] as Field;
      return STRING_TYPES.has(field.columnType) ? `CAST(m.${q(v)} AS BINARY) <=> CAST(p.${q(v)} AS BINARY)` : `${modelValue(shape, v)} <=> p.${q(v)}`;
    });
    const absent = `p.${q(keys[0] as string)} IS NULL`;
    const differs = kind === 'keys' ? 'TRUE' : compared.length === 0 ? 'FALSE' : `NOT (${compared.join(' AND ')})`;
    const wanted = request.sends.changed ? `(${absent} OR ${differs})` : absent;
    return (
      `SELECT CASE WHEN ${absent} THEN 'a' ELSE 'c' END AS lockstep_op, ${columns}\n` +
      `FROM (\n${query}\n) AS m LEFT JOIN ${this.table(plannerTable)} AS p ON ${sameKey(shape, 'm', 'p')}\n` +
      `WHERE ${wanted}${past}`
    );
  }

  /** The planner table's rows gone from the model (`'r'`, then the key), or null when none are wanted. */
  private removedSelect(shape: Shape, request: WarehousePlanRequest): string | null {
    const { query, keys, kind, comparison, plannerTable } = shape;
    if (kind === 'initial' || kind === 'reset' || comparison === 'cursor' || !request.sends.removed) return null;
    const q = quote;
    return (
      `SELECT 'r' AS lockstep_op, ${keys.map((k) => `p.${q(k)}`).join(', ')} FROM ${this.table(plannerTable)} AS p\n` +
      `WHERE NOT EXISTS (SELECT 1 FROM (\n${query}\n) AS m WHERE ${sameKey(shape, 'm', 'p')})`
    );
  }

  /**
   * A dry run's plan: the same comparison as a run's, read-only (nothing is created or written; a
   * planner that never ran compares as a first run). The parts' queries are the comparison itself,
   * without null and duplicate keys, which are refused as a run refuses them.
   */
  private async preview(request: WarehousePlanRequest): Promise<WarehousePlan> {
    const notes: string[] = [];
    const plannerTable = plannerTableName(request.sync);
    const metaExists = (await this.tableExists('lockstep_syncs')) ? await this.readMeta(request.sync.id) : null;
    const meta = metaExists ?? unplannedMeta(request.sync.id, plannerTable);
    if (meta.staging !== null || meta.swap_from !== null) notes.push(pendingNote(meta.run_id));
    const shape = await this.shape(request, meta, plannerTable, notes);
    const q = quote;
    const keyList = shape.keys.map(q).join(', ');
    const anyNull = shape.keys.map((k) => `${q(k)} IS NULL`).join(' OR ');
    const changed = this.changedSelect(shape, request, this.cursorLiteral(shape, meta.cursor_value));
    const removed = this.removedSelect(shape, request);
    const keyed = `SELECT lockstep_op, ${keyList} FROM (${changed}) AS c${removed ? ` UNION ALL ${removed}` : ''}`;

    // Keys as the source reads them; a repeated key's row ends with how many times it repeats.
    const keyRows = (found: { rows: unknown[][]; fields: Field[] }) =>
      found.rows.map((row) => row.map((v, i) => (i < shape.keys.length ? converterFor(found.fields[i] as Field)(v) : Number(v))));
    const refused: WarehousePlan['refused'] = keyRows(await this.arrays(`SELECT ${keyList} FROM (${changed}) AS d WHERE ${anyNull}`)).map((key) => nullKeyRefusal(shape.keys, key));
    const grouped = await this.rows<{ op: string; n: number | string; extra: number | string }>(
      `SELECT lockstep_op AS op, COUNT(*) AS n, SUM(lockstep_c > 1) AS extra
         FROM (SELECT lockstep_op, COUNT(*) AS lockstep_c FROM (${keyed}) AS d WHERE NOT (${anyNull}) GROUP BY lockstep_op, ${keyList}) AS k GROUP BY lockstep_op`,
    );
    const { counts, repeated: duplicates } = tallyParts(grouped.map((row) => [row.op, row.n, row.extra] as const));
    if (duplicates) {
      const dups = await this.arrays(`SELECT ${keyList}, COUNT(*) - 1 FROM (${keyed}) AS d WHERE NOT (${anyNull}) AND lockstep_op <> 'r' GROUP BY ${keyList} HAVING COUNT(*) > 1 ORDER BY ${keyList}`);
      for (const row of keyRows(dups)) refused.push(...repeatedKeyRefusals(shape.keys, row));
    }
    const { plannerRows, modelRows } = plannedRows({ kind: shape.kind, comparison: shape.comparison, counts, tableRows: meta.row_count, refused: refused.length }, counts.added + refused.length);

    const parts: WarehousePlanPart[] = [];
    if (shape.kind !== 'reset') {
      for (const part of OPS) {
        if (counts[part] === 0) continue;
        const columns = shape.names.map(q).join(', ');
        let query: string;
        if (part === 'removed') query = `SELECT ${keyList} FROM (${removed as string}) AS d ORDER BY ${keyList}`;
        else if (duplicates) {
          query = `SELECT ${columns} FROM (SELECT d.*, ROW_NUMBER() OVER (PARTITION BY ${keyList}) AS lockstep_rn FROM (${changed}) AS d WHERE NOT (${anyNull}) AND lockstep_op = '${OP_CODE[part]}') AS d WHERE lockstep_rn = 1 ORDER BY ${keyList}`;
        } else query = `SELECT ${columns} FROM (${changed}) AS d WHERE NOT (${anyNull}) AND lockstep_op = '${OP_CODE[part]}' ORDER BY ${keyList}`;
        parts.push({ op: part, rows: counts[part], query });
      }
    }
    return { parts, refused, modelRows, plannerRows, comparison: shape.comparison, notes, delivered: { ...ZERO_COUNTS } };
  }

  commit(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    // A dry run delivered nothing: nothing to record.
    if (this.dryRun) return Promise.resolve();
    return this.commits.commit(through, rejected, delivered);
  }

  /**
   * One transaction: the fenced watermark (its kind in lockstep_syncs, its key as a typed row of
   * the marks table, so it compares with the staged keys in their own types), the run's delivered
   * counts and the rejected keys.
   */
  private async commitNow(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    const marks = this.table(`${this.plannerTable}_marks`);
    const keyList = this.keys.map(quote).join(', ');
    const row = `(?, ${this.keys.map(() => '?').join(', ')})`;
    const params = (mark: number, key: Value[]) => [mark, ...this.keyFields.map((field, i) => keyParameter(key[i] ?? null, field))];
    try {
      await this.transaction(async () => {
        await this.fenced(`UPDATE ${this.meta} SET part = ?, through_key = ?, delivered = ?, updated_at = CURRENT_TIMESTAMP(3)`, [
          OPS.indexOf(through.op),
          JSON.stringify(through.key),
          JSON.stringify(delivered),
        ]);
        await this.run(`DELETE FROM ${marks} WHERE lockstep_mark = 1`);
        await this.run(`INSERT INTO ${marks} (lockstep_mark, ${keyList}) VALUES ${row}`, params(1, through.key));
        for (let i = 0; i < rejected.length; i += 500) {
          const chunk = rejected.slice(i, i + 500);
          await this.run(`INSERT INTO ${marks} (lockstep_mark, ${keyList}) VALUES ${chunk.map(() => row).join(', ')}`, chunk.flatMap((key) => params(0, key)));
        }
      });
    } catch (error) {
      throw this.failure('recording delivered rows in the planner table', error);
    }
  }

  async finish(): Promise<void> {
    if (this.dryRun) return;
    await this.commits.settled();
    const fence = this.fence;
    if (!fence) throw new LockstepError(ErrorCode.Internal, 'the planner was finished before a plan');
    try {
      await this.lock(fence.syncId, async () => {
        const meta = await this.readMeta(fence.syncId);
        if (!meta || meta.run_id !== fence.runId || meta.attempt !== fence.attempt) throw leaseLost(this.fence?.syncId);
        await this.apply(meta, true);
      });
    } catch (error) {
      throw this.failure('taking the delivered rows into the planner table', error);
    }
  }

  /**
   * Takes the staging table's delivered rows into the planner table, holding the sync's lock.
   * `complete`: the run delivered everything (rejected rows aside); otherwise only the rows up to
   * the watermark. Each step can be repeated by the next attempt if this one stops in between.
   */
  private async apply(meta: MetaRow, complete: boolean): Promise<void> {
    const planner = meta.planner_table;
    const staging = meta.staging;
    const marks = `${planner}_marks`;
    const keys = meta.key_columns ?? [];
    const columns = meta.model_columns ?? [];
    const s = staging === null ? '' : this.table(staging);
    const p = this.table(planner);
    const rebuilt = `${planner}_new`;
    const drop = () => this.run(`DROP TABLE IF EXISTS ${this.table(`${planner}_stage`)}, ${this.table(marks)}, ${this.table(rebuilt)}, ${this.table(`${planner}_old`)}`);
    const forget = () => this.run(`UPDATE ${this.meta} SET staging = NULL, swap_from = NULL, part = -1, through_key = NULL, pending_cursor = NULL WHERE sync_id = ?`, [meta.sync_id]);

    if (meta.swap_from !== null) {
      // The new planner table was filled; the rename may or may not have happened.
      if (await this.tableExists(meta.swap_from)) await this.swap(planner, meta.swap_from);
      await this.finalize(meta, cursorAfterRun(meta, { complete: false, rejected: false }), null);
      await drop();
      return;
    }
    // A staging table the server lost (or never finished) leaves nothing delivered to take in.
    const present = staging !== null && (await this.tableExists(staging)) && (await this.tableExists(marks));
    if (!present || keys.length === 0) {
      await forget();
      await drop();
      return;
    }
    const anyRejected = (await this.rows(`SELECT 1 FROM ${this.table(marks)} WHERE lockstep_mark = 0 LIMIT 1`)).length > 0;
    const cursor = cursorAfterRun(meta, { complete, rejected: anyRejected });
    const kind = meta.staging_kind as StagingKind;
    const q = quote;
    const keyRow = (alias: string) => (keys.length === 1 ? `${alias}.${q(keys[0] as string)}` : `(${keys.map((k) => `${alias}.${q(k)}`).join(', ')})`);
    const whole = kind === 'initial' || kind === 'reset';
    const taken = deliveredRows({
      kind,
      complete,
      part: meta.part,
      key: keyRow('s'),
      mark: `(SELECT ${keys.map((k) => `w.${q(k)}`).join(', ')} FROM ${this.table(marks)} AS w WHERE w.lockstep_mark = 1)`,
      notRejected: anyRejected ? `NOT EXISTS (SELECT 1 FROM ${this.table(marks)} AS r WHERE r.lockstep_mark = 0 AND ${keys.map((k) => `r.${q(k)} = s.${q(k)}`).join(' AND ')})` : null,
    });
    const delivered = taken.condition ?? 'TRUE';
    const all = columns.map((c) => q(c.name)).join(', ');
    const selected = columns.map((c) => `s.${q(c.name)}`).join(', ');

    if (kind === 'values') {
      // Updated in place, in one transaction with the sync's row.
      await this.transaction(async () => {
        let rowCount = meta.row_count;
        if (meta.staged_rows > 0) {
          // From the staged rows to the planner table's (the optimizer would rather scan the planner table).
          const deleted = await this.run(`DELETE p FROM ${s} AS s STRAIGHT_JOIN ${p} AS p ON ${keys.map((k) => `p.${q(k)} = s.${q(k)}`).join(' AND ')} WHERE s.lockstep_op IN ('c', 'r') AND ${delivered}`);
          const inserted = await this.run(`INSERT INTO ${p} (${all}) SELECT ${selected} FROM ${s} AS s WHERE s.lockstep_op IN ('a', 'c') AND ${delivered}`);
          rowCount += inserted - deleted;
        }
        await this.finalize(meta, cursor, { rowCount, columns: meta.planned_columns ?? columns });
      });
      await drop();
      return;
    }

    if (whole) {
      // The staging table holds the whole model, keyed: less what was not delivered, it becomes the
      // planner table (no copy).
      await this.transaction(async () => {
        if (taken.condition !== null) await this.run(`DELETE s FROM ${s} AS s WHERE NOT (${delivered})`);
        await this.run(`UPDATE ${this.meta} SET swap_from = ? WHERE sync_id = ?`, [staging, meta.sync_id]);
      });
      await this.swap(planner, staging as string);
      await this.finalize(meta, cursor, null);
      await drop();
      return;
    }

    // Replaced: a new table takes the delivered rows (and, compared by key, the removals not
    // delivered yet, so they stay planned, and the rows not staged, as delivered before).
    await this.run(`DROP TABLE IF EXISTS ${this.table(rebuilt)}`);
    await this.run(`CREATE TABLE ${this.table(rebuilt)} LIKE ${s}`);
    await this.run(`ALTER TABLE ${this.table(rebuilt)} DROP COLUMN lockstep_n, DROP COLUMN lockstep_op, DROP INDEX lockstep_key, ADD PRIMARY KEY (${keys.map(q).join(', ')})`);
    const keep = rowsKept(kind, delivered);
    const old = kind === 'keys' ? await this.describeTable(planner) : null;
    await this.transaction(async () => {
      // In the order the rows were staged (the staging table's own): for most models, key order already.
      await this.run(`INSERT INTO ${this.table(rebuilt)} (${all}) SELECT ${selected} FROM ${s} AS s WHERE ${keep}`);
      if (old) {
        // Rows the sync does not send when changed (insert mode) were not staged: they keep what
        // was delivered, converted to the model's types as well as they go (IGNORE).
        const shared = columns.filter((c) => old.columns.some((o) => o.name === c.name)).map((c) => q(c.name));
        await this.run(
          `INSERT IGNORE INTO ${this.table(rebuilt)} (${shared.join(', ')}) SELECT ${shared.map((c) => `p.${c}`).join(', ')} FROM ${p} AS p
             WHERE NOT EXISTS (SELECT 1 FROM ${s} AS s WHERE ${keys.map((k) => `s.${q(k)} = p.${q(k)}`).join(' AND ')})`,
        );
      }
      await this.run(`UPDATE ${this.meta} SET swap_from = ? WHERE sync_id = ?`, [rebuilt, meta.sync_id]);
    });
    await this.swap(planner, rebuilt);
    await this.finalize(meta, cursor, null);
    await drop();
  }

  /** Puts `from` in the planner table's place (one RENAME, which MySQL makes atomic). */
  private async swap(planner: string, from: string): Promise<void> {
    const old = `${planner}_old`;
    await this.run(`DROP TABLE IF EXISTS ${this.table(old)}`);
    if (await this.tableExists(planner)) await this.run(`RENAME TABLE ${this.table(planner)} TO ${this.table(old)}, ${this.table(from)} TO ${this.table(planner)}`);
    else await this.run(`RENAME TABLE ${this.table(from)} TO ${this.table(planner)}`);
    await this.run(`DROP TABLE IF EXISTS ${this.table(old)}`);
  }

  /**
   * Records the planner table as it now is, with the change cursor as the run leaves it (see
   * cursorAfterRun), and clears the run's staging. `counted`: the row count and columns when known
   * (in place); otherwise the table is a new one: guarded and counted here.
   */
  private async finalize(meta: MetaRow, cursor: { cursorValue: string | null; cursorRuns: number }, counted: { rowCount: number; columns: ColumnType[] } | null): Promise<void> {
    let recorded = counted;
    let guarded = meta.guarded;
    if (!recorded) {
      guarded = await this.guard(meta.sync_id, meta.planner_table);
      recorded = { rowCount: await this.countRows(meta.planner_table), columns: (await this.describeTable(meta.planner_table))?.columns ?? [] };
    }
    await this.run(
      `UPDATE ${this.meta} SET staging = NULL, swap_from = NULL, part = -1, through_key = NULL, planned_columns = ?, row_count = ?, tampered = 0, guarded = ?,
         cursor_value = ?, cursor_runs = ?, pending_cursor = NULL, updated_at = CURRENT_TIMESTAMP(3) WHERE sync_id = ?`,
      [JSON.stringify(recorded.columns), recorded.rowCount, guarded ? 1 : 0, cursor.cursorValue, cursor.cursorRuns, meta.sync_id],
    );
  }

  /**
   * Triggers that flag writes to the planner table not made by Lockstep (whose session sets
   * @lockstep_planner). False when the server will not let this user create triggers (MySQL with
   * binary logging asks for SUPER or log_bin_trust_function_creators): the row count is checked instead.
   */
  private async guard(syncId: number, planner: string): Promise<boolean> {
    const events = [['INSERT', 'i'], ['UPDATE', 'u'], ['DELETE', 'd']] as const;
    // A stop between creating them and recording the table leaves some behind: made anew.
    for (const [, suffix] of events) await this.run(`DROP TRIGGER IF EXISTS ${this.table(`lockstep_${planner}_${suffix}`)}`);
    try {
      for (const [event, suffix] of events) {
        await this.run(
          `CREATE TRIGGER ${this.table(`lockstep_${planner}_${suffix}`)} AFTER ${event} ON ${this.table(planner)} FOR EACH ROW
             BEGIN IF @lockstep_planner IS NULL THEN UPDATE ${this.meta} SET tampered = 1 WHERE sync_id = ${Number(syncId)}; END IF; END`,
        );
      }
      return true;
    } catch (error) {
      if (mysqlErrno(error) === NEEDS_SUPER) return false;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.commits.settled();
    this.connection.destroy();
    await this.pool.end().catch(() => undefined);
  }

  /** Runs an update of the sync's row in lockstep_syncs that only this attempt may make. */
  private async fenced(set: string, params: unknown[]): Promise<void> {
    const fence = this.fence;
    if (!fence) throw new LockstepError(ErrorCode.Internal, 'the planner was written to before a plan');
    const matched = await this.run(`${set} WHERE sync_id = ? AND run_id = ? AND attempt = ?`, [...params, fence.syncId, fence.runId, fence.attempt]);
    if (matched === 0) throw leaseLost(this.fence?.syncId);
  }

  private async tableExists(name: string): Promise<boolean> {
    const [row] = await this.rows<{ n: number | string }>('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [this.schema, name]);
    return Number(row?.n ?? 0) > 0;
  }

  /** A table of the planner's database: its columns and whether its guard triggers are all there; null when absent. */
  private async describeTable(name: string): Promise<{ columns: ColumnType[]; guarded: boolean } | null> {
    if (!(await this.tableExists(name))) return null;
    let fields: Field[];
    try {
      fields = (await this.arrays(`SELECT * FROM ${this.table(name)} LIMIT 0`)).fields;
    } catch (error) {
      if (mysqlErrno(error) === NO_SUCH_TABLE) return null;
      throw error;
    }
    const [triggers] = await this.rows<{ n: number | string }>(
      "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND TRIGGER_NAME LIKE 'lockstep\\_%'",
      [this.schema, name],
    );
    return { columns: fields.map((f) => ({ name: f.name, type: typeName(f) })), guarded: Number(triggers?.n ?? 0) === 3 };
  }

  private async hasRows(name: string): Promise<boolean> {
    return (await this.rows(`SELECT 1 FROM ${this.table(name)} LIMIT 1`)).length > 0;
  }

  private async countRows(name: string): Promise<number> {
    const [row] = await this.rows<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${this.table(name)}`);
    return Number(row?.n ?? 0);
  }

  private failure(what: string, thrown: unknown): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const errno = mysqlErrno(error) ?? 0;
    if (DENIED.has(errno) || errno === NEEDS_SUPER) {
      return new LockstepError(
        ErrorCode.Connection,
        `${what} in database ${quote(this.schema)} on ${this.where} was refused: ${error.message} — grant the source's user ALL on ${quote(this.schema)}.* (GRANT ALL ON ${quote(this.schema)}.* TO 'user'@'host'), or set planner: store on the source`,
        { cause: error },
      );
    }
    const transient = classifyMysqlError(error) === MysqlFailure.Transient;
    return new LockstepError(transient ? ErrorCode.Transient : ErrorCode.Query, `${what} on ${this.where} failed: ${error.message}`, { cause: error });
  }
}

/**
 * A column's type as the server reports it in a result: the same for the model's column and the
 * planner table's copy of it, and readable in notes (`int`, `bigint unsigned`, `varchar(400)`).
 * Lengths count for strings, decimals and TINYINT(1) (read as booleans); nullability does not.
 */
function typeName(field: Field): string {
  const base = TYPE_NAMES[field.columnType] ?? `type ${field.columnType}`;
  const unsigned = (field.flags & UNSIGNED_FLAG) !== 0 ? ' unsigned' : '';
  // MariaDB's JSON is LONGTEXT with a check, marked 'json' in a result only where the column is
  // declared so: the planner table's copy of it is plain LONGTEXT. Named by its stored type, both
  // read alike (MySQL's own JSON type, 245, is JSON in both).
  if (field.columnType === 245) return 'json';
  // A column the model leaves NULL (`NULL AS x`) has the protocol's NULL type; its copy is BINARY(0).
  if (field.columnType === NULL_TYPE) return 'binary char(0)';
  if (field.columnType === 0 || field.columnType === 246) return `decimal(${field.columnLength},${field.decimals})${unsigned}`;
  if (field.columnType === 1 && field.columnLength === 1) return 'tinyint(1)';
  if (INTEGER_TYPES.has(field.columnType)) return `${base}${unsigned}`;
  const binary = field.characterSet === BINARY_CHARSET ? 'binary ' : '';
  if (BLOB_TYPES.has(field.columnType)) return `${binary}blob(${blobLength(field)})`;
  if (STRING_TYPES.has(field.columnType)) return `${binary}${base}(${field.columnLength})`;
  if (TEMPORAL_TYPES.has(field.columnType) && field.decimals > 0 && field.decimals < 31) return `${base}(${field.decimals})`;
  if (field.columnType === 16) return `bit(${field.columnLength})`;
  return base;
}

/**
 * Column `name` of the model (`m`) as the source reads it (mysql-source.ts, hasZeroPart): a zero
 * date, or one with a zero year, month or day, as NULL. The planner table then holds what was delivered,
 * so such a date made NULL is no change, and no zero date is ever written (which MySQL 8's default
 * sql_mode would refuse). Joins and the cursor's filter use the column itself, which keeps indexes.
 */
function modelValue(shape: Shape, name: string): string {
  return zeroDateAsNull(shape.fields[shape.names.indexOf(name)] as Field, `m.${quote(name)}`);
}

/**
 * The join of the model (`left`) and the planner table (`right`) along the key. A text key column
 * matches under its collation, which takes `ann`, `Ann` and `ann ` as one, and by its bytes too:
 * a key whose case or trailing spaces changed is a new key, and the old one is removed, as the
 * store's planner has it and as a destination that tells them apart (PostgreSQL) holds them.
 * (The collation's match keeps the planner table's key index in use.)
 */
function sameKey(shape: Shape, left: string, right: string): string {
  return shape.keys
    .map((k) => {
      const field = shape.fields[shape.names.indexOf(k)] as Field;
      const equal = `${left}.${quote(k)} = ${right}.${quote(k)}`;
      const text = STRING_TYPES.has(field.columnType) && field.characterSet !== BINARY_CHARSET;
      return text ? `${equal} AND CAST(${left}.${quote(k)} AS BINARY) = CAST(${right}.${quote(k)} AS BINARY)` : equal;
    })
    .join(' AND ');
}

function zeroDateAsNull(field: Field, column: string): string {
  return DATE_TYPES.has(field.columnType) ? `CASE WHEN YEAR(${column}) = 0 OR MONTH(${column}) = 0 OR DAYOFMONTH(${column}) = 0 THEN NULL ELSE ${column} END` : column;
}

/**
 * Column `name` of the staging table (of the model `shape` describes) as a run reads it to
 * deliver. MariaDB marks JSON (a JSON column, what JSON functions return) only in results, so its
 * copy in the staging table reads as plain text (`{"b": [1, 2.50]}`), not compact as the source
 * reads the model's (`{"b":[1,2.5]}`): read through JSON_COMPACT, it is marked JSON again.
 */
function deliveredColumn(shape: Shape, name: string): string {
  const field = shape.fields[shape.names.indexOf(name)] as Field;
  return field.extendedFormat === 'json' && field.columnType !== MYSQL_JSON ? `JSON_COMPACT(${quote(name)}) AS ${quote(name)}` : quote(name);
}

/**
 * The length a TEXT or BLOB column of the planner's tables reports for `field`: of the four sizes
 * (TINY, plain, MEDIUM, LONG), the smallest that holds it, as CREATE TABLE ... AS SELECT picks. A
 * table's column reports its size's length, but an expression (`CAST(doc AS CHAR)`, `CONCAT` of
 * TEXT, GROUP_CONCAT) reports its own length and a type of its own (MEDIUMBLOB, LONGBLOB): named
 * by length alone, the model's column would differ from its copy on every run. Text lengths count
 * bytes of the connection's utf8mb4, 4 a character.
 */
function blobLength(field: Field): number {
  const bytesPerCharacter = field.characterSet === BINARY_CHARSET ? 1 : 4;
  const characters = Math.ceil(field.columnLength / bytesPerCharacter);
  const size = BLOB_SIZES.find((max) => characters <= max) ?? LONG_BLOB;
  return size === LONG_BLOB ? LONG_BLOB : size * bytesPerCharacter;
}

/** A text as a SQL literal that no sql_mode can misread (hex, in the connection's character set). */
function textLiteral(value: string): string {
  return `CONVERT(X'${Buffer.from(value, 'utf8').toString('hex')}' USING utf8mb4)`;
}

/** `literal` as a value of `field`'s type, for comparisons that should not go through doubles. */
function castTo(field: Field, literal: string): string {
  const unsigned = (field.flags & UNSIGNED_FLAG) !== 0;
  if (INTEGER_TYPES.has(field.columnType) && field.columnType !== 13) return `CAST(${literal} AS ${unsigned ? 'UNSIGNED' : 'SIGNED'})`;
  if (field.columnType === 0 || field.columnType === 246) return `CAST(${literal} AS DECIMAL(65,${Math.min(30, field.decimals)}))`;
  if (field.columnType === 7 || field.columnType === 12) return `CAST(${literal} AS DATETIME(6))`;
  if (field.columnType === 10) return `CAST(${literal} AS DATE)`;
  return literal;
}

/**
 * A key value as the source read it (values.ts), back as a parameter the key column takes: ISO
 * instants as MySQL's `YYYY-MM-DD HH:MM:SS.ffffff` (the session is UTC), booleans as 1 and 0,
 * binary strings from base64.
 */
function keyParameter(value: Value, field: Field): unknown {
  if (value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value;
  if (TEMPORAL_TYPES.has(field.columnType)) {
    const iso = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d(?:\.\d+)?)(?:Z|[+-]00:?00)?$/.exec(value);
    if (iso) return `${iso[1]} ${iso[2]}`;
  }
  if (field.characterSet === BINARY_CHARSET && STRING_TYPES.has(field.columnType)) return Buffer.from(value, 'base64');
  return value;
}

function parseMeta(row: Record<string, unknown>): MetaRow {
  const json = <T>(v: unknown): T | null => (typeof v === 'string' && v !== '' ? (JSON.parse(v) as T) : null);
  const num = (v: unknown) => Number(v ?? 0);
  return {
    sync_id: num(row.sync_id),
    planner_table: String(row.planner_table),
    planned_columns: json(row.planned_columns),
    row_count: num(row.row_count),
    tampered: num(row.tampered) !== 0,
    guarded: num(row.guarded) !== 0,
    run_id: row.run_id === null ? null : num(row.run_id),
    attempt: row.attempt === null ? null : num(row.attempt),
    staging: (row.staging as string | null) ?? null,
    staging_kind: (row.staging_kind as StagingKind | null) ?? null,
    key_columns: json(row.key_columns),
    model_columns: json(row.model_columns),
    part: num(row.part),
    delivered: (row.delivered as string | null | undefined) ?? null,
    cursor_value: (row.cursor_value as string | null) ?? null,
    pending_cursor: (row.pending_cursor as string | null) ?? null,
    cursor_runs: num(row.cursor_runs),
    comparison: (row.comparison as 'full' | 'cursor' | null) ?? null,
    staged_rows: num(row.staged_rows),
    swap_from: (row.swap_from as string | null) ?? null,
  };
}

/** The meta row of a sync the planner never ran for: compared as a first run. */
function unplannedMeta(syncId: number, plannerTable: string): MetaRow {
  return { ...unplannedRun(plannerTable), sync_id: syncId, planned_columns: null, row_count: 0, tampered: false, guarded: false, run_id: null, delivered: null, staged_rows: 0, swap_from: null };
}


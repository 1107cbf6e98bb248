/**
 * The planner in the warehouse for PostgreSQL sources (engine/warehouse-planner.ts): per sync, a
 * table in Lockstep's own schema (`lockstep_planner` by default) holds the rows as delivered, one
 * column per model column. A run compares the model with it in one statement (a merge join along
 * the key, columns compared with IS DISTINCT FROM) into a staging table of the rows that differ;
 * only those travel to Lockstep. Delivered rows are committed as a watermark (the last delivered
 * row of each kind, by key, with the rejected keys and the run's delivered counts) fenced by the
 * run's id and attempt, and the staging table is taken into the planner table when the run ends,
 * or by the next attempt when this one stopped part-way.
 */
import { PlannerCommits } from '../planner-commits.js';
import type pg from 'pg';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { Value, WarehousePlan, WarehousePlanner, WarehousePlanPart, WarehousePlanRequest } from '../../core/ports.js';
import { ZERO_COUNTS, type OperationCounts } from '../../core/runs.js';
import {
  OPS, OP_CODE, checkModelColumns, comparesWithTable, cursorAfterRun, decideComparison, deliveredBefore, deliveredRows, duplicateKeyRefusal, leaseLost,
  modelQuery, partOf, pendingNote, plannedRows, plannerNotes, plannerTableName, previewRefusals, previewStatements, rowsKept, sameColumns,
  sameKeys, stagedParts, takenOver, unplannedRun, type ColumnType, type ComparedModel, type PlannerRunRecord, type StagingKind,
} from '../planner-tables.js';
import { addPrimaryKey, firstRunQuery, PLANNER_FILLFACTOR, plain, quote, refuseNullKeys, StagingAlongside } from './postgres-staging.js';

interface MetaRow extends PlannerRunRecord {
  sync_id: string;
  columns: ColumnType[] | null;
  row_count: string;
  tampered: boolean;
  run_id: string | null;
  through: Record<string, Value> | null;
  /** The run's delivered counts with the watermark (see deliveredBefore). */
  delivered: OperationCounts | null;
  staged_rows: string;
  delta_rows: string;
}

/** What a run compares, and how (see PostgresPlanner.shape), with the planner table's delta. */
interface Shape extends ComparedModel {
  /** The planner table's delta (see takeIntoDelta), qualified, when it holds rows the comparison reads; else null. */
  delta: string | null;
  /** A delta left in a state Lockstep did not leave it in: dropped by the run (its planner table is compared by key). */
  dropDelta: boolean;
  /** The model's columns compared as text (see TEXT_COMPARED). */
  byText: ReadonlySet<string>;
}


/** Column names the planner's tables use themselves: the staged rows' kind, and a delta's removed rows. */
const RESERVED = new Set(['lockstep_op', 'lockstep_gone']);

/**
 * Types compared as text: those without an equality operator, and those whose equality holds for
 * values Lockstep reads apart (boxes and circles of the same area, `1 day` and `24:00:00`, a
 * numeric's `1.0` and `1.00`, a citext's `a` and `A`), so a change to one of them would not be sent.
 * A composite type, or an array or domain of one of these, is compared as text too.
 */
const TEXT_COMPARED = ['json', 'xml', 'point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle', 'jsonpath', 'txid_snapshot', 'pg_snapshot', 'interval', 'citext'];

/**
 * Per column of a query's description (type OIDs `$1`, modifiers `$2`), its type as format_type
 * spells it and whether it is compared as text (names in `$3`): the type is followed through
 * domains and arrays to what it holds (a numeric without a scale compares as text).
 */
const DESCRIBE_TYPES = `WITH RECURSIVE held(n, oid, mod) AS (
    SELECT n, oid, mod FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS c(oid, mod, n)
    UNION ALL
    SELECT h.n, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE h.mod END
      FROM held AS h JOIN pg_type AS t ON t.oid = h.oid WHERE t.typtype = 'd' OR t.typcategory = 'A')
  SELECT format_type(c.oid, c.mod) AS type,
         EXISTS (SELECT 1 FROM held AS h JOIN pg_type AS t ON t.oid = h.oid
                  WHERE h.n = c.n AND (t.typtype = 'c' OR t.typname = ANY ($3::text[]) OR (t.oid = 'numeric'::regtype AND h.mod = -1))) AS by_text
    FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS c(oid, mod, n) ORDER BY c.n`;

/**
 * A column's type as a query's description gives it, which names a domain's base type (and its
 * modifier) rather than the domain, as SQL on the pg_attribute row \`a\`: a planner table whose
 * column is of a domain is then described as the model is.
 */
const ATTRIBUTE_TYPE = `(WITH RECURSIVE base(oid, mod) AS (
    SELECT a.atttypid, a.atttypmod
    UNION ALL SELECT t.typbasetype, t.typtypmod FROM base AS b JOIN pg_type AS t ON t.oid = b.oid WHERE t.typtype = 'd')
  SELECT format_type(b.oid, b.mod) FROM base AS b JOIN pg_type AS t ON t.oid = b.oid WHERE t.typtype <> 'd')`;

/** Per kind of staged row ('a', 'c', 'r'): the key its upper half starts at, as a subquery. */
type Halves = Map<string, string>;

/** The staged rows of a comparison by value, and which of them to take into the planner table. */
interface Changes {
  staging: string;
  planner: string;
  keys: string[];
  columns: ColumnType[];
  /** The SQL condition on staged rows `s` that were delivered. */
  delivered: string;
  /** Few rows: each is looked up by key rather than joined with a scan of the whole planner table. */
  lookUp: boolean;
}

const keyRow = (keys: string[], alias: string): string => `(${keys.map((k) => `${alias}.${quote(k)}`).join(', ')})`;

/**
 * Takes delivered staged rows into the planner table on `client`, inside its transaction: removed
 * rows deleted, changed rows updated in place (cheaper than an insert that finds its conflict),
 * new rows inserted (any found there already, never while the guard stands, updated). `half`: only
 * the rows of each kind below (or from) its bound; a kind without a bound belongs to the lower half.
 */
async function applyChanges(client: pg.Client, c: Changes, half: { bounds: Halves; upper: boolean } | null): Promise<{ added: number; removed: number }> {
  const { staging: s, planner: p, keys, columns, delivered } = c;
  const within = (code: string): string | null => {
    const bound = half?.bounds.get(code);
    if (half === null || bound === undefined) return half?.upper ? null : '';
    return ` AND ${keyRow(keys, 's')} ${half.upper ? '>=' : '<'} ${bound}`;
  };
  const nonKeys = columns.filter((col) => !keys.includes(col.name));
  const all = columns.map((col) => quote(col.name)).join(', ');
  const matched = `${keyRow(keys, 'p')} = ${keyRow(keys, 's')}`;
  // Few staged rows are looked up by key; PostgreSQL would rather scan the whole planner table
  // to hash-join them (seconds at 10 million rows against a fraction of one for 50,000 lookups).
  if (c.lookUp) await client.query('SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off');
  let removed = 0;
  const removing = within('r');
  if (removing !== null) removed = (await client.query(`DELETE FROM ${p} AS p USING ${s} AS s WHERE s.lockstep_op = 'r' AND ${delivered}${removing} AND ${matched}`)).rowCount ?? 0;
  const changing = within('c');
  if (nonKeys.length > 0 && changing !== null) {
    await client.query(
      `UPDATE ${p} AS p SET ${nonKeys.map((col) => `${quote(col.name)} = s.${quote(col.name)}`).join(', ')} FROM ${s} AS s WHERE s.lockstep_op = 'c' AND ${delivered}${changing} AND ${matched}`,
    );
  }
  if (c.lookUp) await client.query('SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on');
  let added = 0;
  const adding = within('a');
  if (adding !== null) {
    const upsert = nonKeys.length === 0 ? 'DO NOTHING' : `DO UPDATE SET ${nonKeys.map((col) => `${quote(col.name)} = EXCLUDED.${quote(col.name)}`).join(', ')}`;
    const inserted = await client.query<{ n: string }>(
      `WITH up AS (INSERT INTO ${p} (${all}) SELECT ${columns.map((col) => `s.${quote(col.name)}`).join(', ')} FROM ${s} AS s WHERE s.lockstep_op = 'a' AND ${delivered}${adding} ON CONFLICT (${keys.map(quote).join(', ')}) ${upsert} RETURNING (xmax = 0) AS fresh) SELECT count(*) FILTER (WHERE fresh) AS n FROM up`,
    );
    added = Number(inserted.rows[0]?.n ?? 0);
  }
  return { added, removed };
}

/**
 * Takes delivered staged rows into the planner table's delta `d` on `client`, inside its
 * transaction: each key's row as delivered, or that it is gone. The planner table itself is not
 * written: an update of a row every hundred keys would write nearly every page of it, each page's
 * first change after a checkpoint logged whole (10M rows, 200,000 changes: 2.5 s and 937 MB of
 * write-ahead log, against 0.6 s and 47 MB into the delta), and the next read of each page would
 * prune it (another 700 MB). Comparisons read the delta with the table (see diffSelect); past
 * `plannerTuning.foldFraction` of the table's rows, it is folded in (see fold).
 */
async function takeIntoDelta(client: pg.Client, c: Omit<Changes, 'lookUp'>, d: string): Promise<{ added: number; removed: number; deltaRows: number }> {
  const { staging: s, keys, columns, delivered } = c;
  const nonKeys = columns.filter((col) => !keys.includes(col.name));
  const set = ['lockstep_gone', ...nonKeys.map((col) => col.name)].map((name) => `${quote(name)} = EXCLUDED.${quote(name)}`).join(', ');
  // Into an empty delta, the staged rows (one per key) go without looking for a conflict: 0.33 s
  // against 0.58 s for 200,000 rows.
  const empty = (await client.query<{ empty: boolean }>(`SELECT NOT EXISTS (SELECT 1 FROM ${d}) AS empty`)).rows[0]?.empty === true;
  await client.query(
    `INSERT INTO ${d} (lockstep_gone, ${columns.map((col) => quote(col.name)).join(', ')})
     SELECT s.lockstep_op = 'r', ${columns.map((col) => `s.${quote(col.name)}`).join(', ')} FROM ${s} AS s WHERE s.lockstep_op IN ('a', 'c', 'r') AND ${delivered}` +
      (empty ? '' : ` ON CONFLICT (${keys.map(quote).join(', ')}) DO UPDATE SET ${set}`),
  );
  const counted = await client.query<{ added: string; removed: string; delta: string }>(
    `SELECT (SELECT count(*) FROM ${s} AS s WHERE s.lockstep_op = 'a' AND ${delivered}) AS added,
            (SELECT count(*) FROM ${s} AS s WHERE s.lockstep_op = 'r' AND ${delivered}) AS removed,
            (SELECT count(*) FROM ${d}) AS delta`,
  );
  const row = counted.rows[0];
  return { added: Number(row?.added ?? 0), removed: Number(row?.removed ?? 0), deltaRows: Number(row?.delta ?? 0) };
}

/**
 * Folds the delta `d` into the planner table `p` (inside the caller's transaction) and empties it.
 * Each of the delta's rows is looked up by key: PostgreSQL would rather hash-join a scan of the
 * whole table (10M rows, a delta of 1M: 16.3 s and 4.3 GB of write-ahead log, against 7.4 s and 2.2 GB).
 */
async function fold(client: pg.Client, p: string, d: string, keys: string[], columns: ColumnType[]): Promise<void> {
  const nonKeys = columns.filter((col) => !keys.includes(col.name)).map((col) => quote(col.name));
  const matched = `${keyRow(keys, 'p')} = ${keyRow(keys, 'd')}`;
  await client.query('SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off');
  await client.query(`DELETE FROM ${p} AS p USING ${d} AS d WHERE d.lockstep_gone AND ${matched}`);
  if (nonKeys.length > 0) await client.query(`UPDATE ${p} AS p SET ${nonKeys.map((c) => `${c} = d.${c}`).join(', ')} FROM ${d} AS d WHERE NOT d.lockstep_gone AND ${matched}`);
  const all = columns.map((col) => quote(col.name)).join(', ');
  await client.query(`INSERT INTO ${p} (${all}) SELECT ${columns.map((col) => `d.${quote(col.name)}`).join(', ')} FROM ${d} AS d WHERE NOT d.lockstep_gone ON CONFLICT (${keys.map(quote).join(', ')}) DO NOTHING`);
  await client.query('SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on');
  await client.query(`TRUNCATE ${d}`);
}

/**
 * Tests change these. A full comparison of a planner table of `splitRows` rows or more runs in key
 * ranges side by side (see ranges); staged rows of a kind are taken into the planner table in two
 * halves at once from `halfRows` rows (see applyInHalves); a first run's staging table is built
 * alongside its delivery when the model reads in key order without a sort (`firstRun: 'unsorted'`,
 * see startFirstRun), whatever its plan (`always`), or never. A run's changes to a planner table of
 * `deltaRows` rows or more go into its delta (see takeIntoDelta), folded into the table once the
 * delta holds more than `foldFraction` of its rows.
 */
export const plannerTuning: { splitRows: number; halfRows: number; firstRun: 'unsorted' | 'always' | 'never'; deltaRows: number; foldFraction: number } = {
  splitRows: 200_000,
  halfRows: 20_000,
  firstRun: 'unsorted',
  deltaRows: 200_000,
  foldFraction: 0.1,
};
/** A planner table's delta: `<planner table>_delta` (see takeIntoDelta). */
const DELTA_SUFFIX = '_delta';
/** At most this many ranges, whatever PostgreSQL allows. */
const MAX_RANGES = 8;
/** About how many of the planner table's rows are sampled to place the ranges' bounds. */
const SAMPLE_ROWS = 30_000;

/**
 * The owner of one of the planner's tables (its table of syncs first; schema `$1`) when the
 * current user is not it (nor a member of its role), as SQL; else null. Asked of the catalog: the
 * server's refusal says so only in words, in its own language.
 */
const FOREIGN_OWNER = `SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND (c.relname = 'lockstep_syncs' OR left(c.relname, 5) = 'sync_')
    AND NOT pg_has_role(c.relowner, 'USAGE')
  ORDER BY c.relname = 'lockstep_syncs' DESC, c.relname LIMIT 1`;

/** SQLSTATE insufficient_privilege. */
const NO_PRIVILEGE = '42501';
/** SQLSTATE read_only_sql_transaction: a write on a standby, or in a read-only transaction. */
const READ_ONLY_TRANSACTION = '25006';
/** Whether this session's transactions are read-only: on a standby, or by default_transaction_read_only. */
const READ_ONLY = "current_setting('transaction_read_only') = 'on'";
/**
 * Rejected keys a first run holds while its staging table is built alongside (see
 * StagingAlongside): past this many, delivery waits for the table.
 */
const PENDING_REJECTED = 50_000;

/** A first run whose staging table is built alongside its delivery, until it is recorded in lockstep_syncs. */
interface FirstRun {
  staging: StagingAlongside;
  /** The staging table's name, and the run's shape: what the meta row records with it. */
  name: string;
  shape: Shape;
  /** The watermark and rejected keys delivered before the table was recorded, and the run's delivered counts with them. */
  through: { op: WarehousePlanPart['op']; key: Value[] } | null;
  rejected: Value[][];
  delivered: OperationCounts;
  recorded: boolean;
}

export class PostgresPlanner implements WarehousePlanner {
  /** Commits in the order they were asked for (each waits for the one before). */
  private readonly commits = new PlannerCommits((through, rejected, delivered) => this.commitNow(through, rejected, delivered));
  private fence: { syncId: number; runId: number; attempt: number } | null = null;
  /** The user the planner's connection is, once known (see setUp). */
  private user: string | null = null;
  /** The run's key columns and planner table, once planned. */
  private keys: string[] = [];
  private plannerTable = '';

  /** The run's staged rows of each kind, once planned. */
  private counts = { added: 0, changed: 0, removed: 0 };
  /** A first run's staging table built alongside its delivery (see startFirstRun). */
  private firstRun: FirstRun | null = null;

  private constructor(
    private readonly client: pg.Client,
    private readonly schema: string,
    private readonly where: string,
    private readonly dryRun: boolean,
    /** Opens a second connection to the warehouse (see applyInHalves); null: everything goes on `client`. */
    private readonly connect: (() => Promise<pg.Client>) | null,
  ) {}

  /**
   * Opens the planner on `client` (its own connection): makes sure the schema, the table of syncs
   * and the guard function exist. A user who may not create them gets an error naming the grant.
   * `dryRun`: the session is made read-only and nothing is created (see preview).
   */
  static async open(
    client: pg.Client,
    schema: string,
    where: string,
    options: { dryRun?: boolean; connect?: () => Promise<pg.Client> } = {},
  ): Promise<PostgresPlanner> {
    const planner = new PostgresPlanner(client, schema, where, options.dryRun === true, options.connect ?? null);
    if (planner.dryRun) {
      // Checked before the session is made read-only here, which would look like a standby.
      await planner.checkAccess();
      await client.query('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY');
      return planner;
    }
    // Lockstep's own writes to planner tables; anything else trips the guard (see tampered).
    await client.query("SET lockstep.planner = 'on'");
    await planner.setUp();
    return planner;
  }

  private get meta(): string {
    return `${quote(this.schema)}.lockstep_syncs`;
  }

  private table(name: string): string {
    return `${quote(this.schema)}.${quote(name)}`;
  }

  private async setUp(): Promise<void> {
    const { client, schema } = this;
    try {
      const found = await client.query<{ usable: boolean | null; owner: string | null; user: string; database: string; read_only: boolean }>(
        `SELECT (SELECT has_schema_privilege(n.oid, 'CREATE') AND has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n WHERE n.nspname = $1) AS usable,
                (${FOREIGN_OWNER}) AS owner, current_user AS user, current_database() AS database, ${READ_ONLY} AS read_only`,
        [schema],
      );
      const { usable, owner, user, database, read_only } = found.rows[0] as { usable: boolean | null; owner: string | null; user: string; database: string; read_only: boolean };
      this.user = user;
      if (read_only) throw this.readOnly();
      if (usable === false) throw this.schemaRefused(user);
      if (owner !== null) throw this.ownedElsewhere(owner);
      await client.query('BEGIN');
      try {
        // One process at a time creates the schema's objects (two runs may start together).
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`lockstep_planner:${schema}`]);
        if (usable === null) {
          try {
            await client.query(`CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`);
          } catch (error) {
            if ((error as { code?: string }).code === NO_PRIVILEGE) throw this.databaseRefused(user, database, error);
            throw error;
          }
        }
        await client.query(`CREATE TABLE IF NOT EXISTS ${this.meta} (
          sync_id        bigint PRIMARY KEY,
          slug           text NOT NULL,
          planner_table  text NOT NULL,
          columns        jsonb,
          row_count      bigint NOT NULL DEFAULT 0,
          tampered       boolean NOT NULL DEFAULT false,
          run_id         bigint,
          attempt        integer,
          staging        text,
          staging_kind   text,
          key_columns    jsonb,
          model_columns  jsonb,
          part           integer NOT NULL DEFAULT -1,
          through        jsonb,
          delivered      jsonb,
          cursor_value   text,
          pending_cursor text,
          cursor_runs    integer NOT NULL DEFAULT 0,
          comparison     text,
          staged_rows    bigint NOT NULL DEFAULT 0,
          delta_rows     bigint NOT NULL DEFAULT 0,
          updated_at     timestamptz NOT NULL DEFAULT now()
        )`);
        // Planner schemas made before planner tables had deltas.
        await client.query(`ALTER TABLE ${this.meta} ADD COLUMN IF NOT EXISTS delta_rows bigint NOT NULL DEFAULT 0`);
        // Planner schemas made before a run's delivered counts were kept with its watermark.
        await client.query(`ALTER TABLE ${this.meta} ADD COLUMN IF NOT EXISTS delivered jsonb`);
        // A planner table written by anyone but Lockstep is flagged, and rebuilt by the next run.
        await client.query(`CREATE OR REPLACE FUNCTION ${quote(schema)}.lockstep_guard() RETURNS trigger LANGUAGE plpgsql AS $guard$
          BEGIN
            IF current_setting('lockstep.planner', true) IS DISTINCT FROM 'on' THEN
              UPDATE ${this.meta} SET tampered = true WHERE planner_table = TG_TABLE_NAME OR planner_table || '${DELTA_SUFFIX}' = TG_TABLE_NAME;
            END IF;
            RETURN NULL;
          END $guard$`);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    } catch (error) {
      throw this.failure('setting up the planner', error);
    }
  }

  /**
   * A dry run's open: the grants a run's open needs are checked (so a plan fails, or with `auto`
   * falls back, as a run would), without creating anything.
   */
  private async checkAccess(): Promise<void> {
    try {
      const found = await this.client.query<{ usable: boolean | null; owner: string | null; creates: boolean; user: string; database: string; read_only: boolean }>(
        `SELECT (SELECT has_schema_privilege(n.oid, 'CREATE') AND has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n WHERE n.nspname = $1) AS usable,
                (${FOREIGN_OWNER}) AS owner, has_database_privilege(current_database(), 'CREATE') AS creates, current_user AS user, current_database() AS database,
                ${READ_ONLY} AS read_only`,
        [this.schema],
      );
      const { usable, owner, creates, user, database, read_only } = found.rows[0] as {
        usable: boolean | null;
        owner: string | null;
        creates: boolean;
        user: string;
        database: string;
        read_only: boolean;
      };
      this.user = user;
      if (read_only) throw this.readOnly();
      if (usable === false) throw this.schemaRefused(user);
      if (owner !== null) throw this.ownedElsewhere(owner);
      if (usable === null && !creates) throw this.databaseRefused(user, database);
    } catch (error) {
      throw this.failure('setting up the planner', error);
    }
  }

  /** A standby, or a server (or database, or user) whose transactions are read-only by default. */
  private readOnly(cause?: unknown): LockstepError {
    return new LockstepError(
      ErrorCode.Connection,
      `the planner cannot keep its tables on ${this.where}: the server only allows reading there (a standby, or default_transaction_read_only) — point the source at a server that takes writes (the primary), or set planner: store on the source`,
      cause === undefined ? undefined : { cause },
    );
  }

  private schemaRefused(user: string): LockstepError {
    return new LockstepError(
      ErrorCode.Connection,
      `the planner schema "${this.schema}" on ${this.where} exists but user "${user}" may not create tables in it — run: GRANT USAGE, CREATE ON SCHEMA ${quote(this.schema)} TO ${quote(user)}; (or set planner: store on the source)`,
    );
  }

  /**
   * The planner's objects in the schema belong to a user this one is not (made by an earlier
   * source user, say): creating the schema's objects again, and rebuilding a planner table, take
   * their ownership, which no grant gives.
   */
  private ownedElsewhere(owner: string, cause?: unknown): LockstepError {
    const user = this.user === null ? 'the source\'s user' : `user "${this.user}"`;
    const to = this.user === null ? 'the source\'s user' : quote(this.user);
    return new LockstepError(
      ErrorCode.Connection,
      `the planner's tables in schema "${this.schema}" on ${this.where} belong to ${owner === '' ? 'another user' : `user "${owner}"`}, and ${user} may not change them (grants are not enough: PostgreSQL lets only a table's owner alter or drop it) — make it their owner: run ALTER TABLE ${quote(this.schema)}.lockstep_syncs OWNER TO ${to}; and the same for each of the schema's sync_* tables and for FUNCTION ${quote(this.schema)}.lockstep_guard() (or give the source its own plannerSchema, or set planner: store on the source)`,
      cause === undefined ? undefined : { cause },
    );
  }

  private databaseRefused(user: string, database: string, cause?: unknown): LockstepError {
    return new LockstepError(
      ErrorCode.Connection,
      `user "${user}" may not create the planner schema "${this.schema}" on ${this.where} — run: GRANT CREATE ON DATABASE ${quote(database)} TO ${quote(user)}; or create the schema and GRANT USAGE, CREATE ON SCHEMA ${quote(this.schema)} TO ${quote(user)}; (or set planner: store on the source)`,
      cause === undefined ? undefined : { cause },
    );
  }

  async plan(request: WarehousePlanRequest): Promise<WarehousePlan> {
    if (this.dryRun) {
      // One snapshot for all of the dry run's counts.
      await this.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const plan = await this.preview(request);
        await this.client.query('COMMIT');
        return plan;
      } catch (error) {
        await this.client.query('ROLLBACK').catch(() => undefined);
        throw this.failure('comparing the model with its planner table', error);
      }
    }
    // One transaction: the sync's row of lockstep_syncs stays locked while the model is compared,
    // and the staging table, its watermark and the takeover commit together (one flush to disk).
    await this.client.query('BEGIN');
    try {
      const plan = await this.planOnce(request);
      await this.client.query('COMMIT');
      return plan;
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      this.fence = null;
      throw this.failure('comparing the model with its planner table', error);
    }
  }

  private async planOnce(request: WarehousePlanRequest): Promise<WarehousePlan> {
    const { client } = this;
    const notes: string[] = [];
    const base = plannerTableName(request.sync);
    const plannerTable = base;
    const staging = `${base}_stage`;
    const rejectedTable = `${base}_rejected`;

    // Take the sync's planner over for this attempt, first taking in what an earlier attempt delivered.
    let meta: MetaRow;
    let delivered: OperationCounts;
    {
      await client.query(`INSERT INTO ${this.meta} (sync_id, slug, planner_table) VALUES ($1, $2, $3) ON CONFLICT (sync_id) DO NOTHING`, [
        request.sync.id,
        request.sync.slug,
        plannerTable,
      ]);
      meta = parseMeta((await client.query<MetaRow>(`SELECT * FROM ${this.meta} WHERE sync_id = $1 FOR UPDATE`, [request.sync.id])).rows[0]);
      const takeover = takenOver(meta, request.run);
      if (takeover) throw takeover;
      if (meta.staging !== null) {
        await this.apply(meta, false);
        notes.push(plannerNotes.tookIn);
      }
      delivered = deliveredBefore(meta, request.run.id);
      await client.query(`UPDATE ${this.meta} SET run_id = $2, attempt = $3, staging = NULL, part = -1, through = NULL, delivered = $4, updated_at = now() WHERE sync_id = $1`, [
        request.sync.id,
        request.run.id,
        request.run.attempt,
        JSON.stringify(delivered),
      ]);
    }
    meta = parseMeta((await client.query<MetaRow>(`SELECT * FROM ${this.meta} WHERE sync_id = $1`, [request.sync.id])).rows[0]);
    this.fence = { syncId: request.sync.id, runId: request.run.id, attempt: request.run.attempt };

    const shape = await this.shape(request, meta, plannerTable, notes);
    const { query, names, modelColumns, keys, kind, comparison, pendingCursor } = shape;
    this.keys = keys;
    this.plannerTable = plannerTable;
    const deltaTable = this.table(plannerTable + DELTA_SUFFIX);
    if (shape.dropDelta) {
      // Compared by key with the planner table alone (see shape).
      await client.query(`DROP TABLE IF EXISTS ${deltaTable}`);
      await client.query(`UPDATE ${this.meta} SET delta_rows = 0 WHERE sync_id = $1`, [request.sync.id]);
    } else if (shape.delta !== null && kind === 'keys') {
      // Compared by key, the planner table is rebuilt from the staged rows (see apply): it takes in its delta first.
      await fold(client, this.table(plannerTable), deltaTable, keys, (await this.describeTable(plannerTable))?.columns ?? []);
      await client.query(`UPDATE ${this.meta} SET delta_rows = 0 WHERE sync_id = $1`, [request.sync.id]);
      shape.delta = null;
    }

    const q = (n: string) => quote(n);
    const keyList = keys.map(q).join(', ');
    await client.query(`DROP TABLE IF EXISTS ${this.table(staging)}, ${this.table(rejectedTable)}`);
    // A first run of a sync whose rows may be sent again (an upsert, an update: not insert mode)
    // delivers while its staging table is built.
    if (kind === 'initial' && request.sends.changed) {
      const alongside = await this.startFirstRun(shape, staging, rejectedTable);
      if (alongside) return { ...alongside, notes, delivered };
    }
    let created: number;
    if (kind === 'initial' || kind === 'reset') {
      // It becomes the planner table: room left in each page keeps later updates on their page (HOT).
      created = (await client.query(`CREATE TABLE ${this.table(staging)} WITH (fillfactor = ${PLANNER_FILLFACTOR}) AS ${this.diffSelect(shape, request, '$1', null)}`)).rowCount ?? 0;
    } else {
      // PostgreSQL may pick a hash join of the two tables (it must build a table of one of them) over
      // a merge join along the key (both read in key order, nothing held): when the model's own
      // plan has no hash join to lose, hash joins are turned off for the comparison.
      const merge = comparison === 'full' && !(await this.plansHashJoin(query));
      if (merge) await client.query('SET LOCAL enable_hashjoin = off');
      const cuts = comparison === 'full' ? await this.ranges(shape, Number(meta.row_count)) : null;
      created = (await client.query(`CREATE TABLE ${this.table(staging)} AS ${this.diffSelect(shape, request, '$1', cuts)}`, comparison === 'cursor' ? [meta.cursor_value] : [])).rowCount ?? 0;
      if (merge) await client.query('SET LOCAL enable_hashjoin = on');
    }

    // Null and duplicate keys: found here, refused, and kept out of the plan. The staging table's
    // primary key finds them: only when it refuses one are they looked for (a scan of the whole
    // model spared on a first run otherwise).
    const refused: WarehousePlan['refused'] = [];
    const opFilter = kind === 'initial' || kind === 'reset' ? '' : "lockstep_op <> 'r' AND ";
    await addPrimaryKey(client, this.table(staging), `${staging}_pkey`, keys, async (found) => {
      if (found === 'null') {
        refused.push(...(await refuseNullKeys(client, this.table(staging), keys, opFilter)));
        return;
      }
      const dups = await client.query({
        text: `DELETE FROM ${this.table(staging)} AS a USING ${this.table(staging)} AS b WHERE ${keys.map((k) => `a.${q(k)} = b.${q(k)}`).join(' AND ')} AND a.ctid > b.ctid RETURNING ${keys.map((k) => `a.${q(k)}`).join(', ')}`,
        rowMode: 'array',
      });
      for (const key of dups.rows as Value[][]) refused.push(duplicateKeyRefusal(key.map(plain)));
    });
    await client.query(`CREATE TABLE ${this.table(rejectedTable)} AS SELECT ${keyList} FROM ${this.table(staging)} WITH NO DATA`);

    const counts = { added: 0, changed: 0, removed: 0 };
    if (kind === 'initial' || kind === 'reset') counts.added = created - refused.length;
    else {
      const grouped = await client.query<{ op: string; n: string }>(`SELECT lockstep_op AS op, count(*) AS n FROM ${this.table(staging)} GROUP BY 1`);
      for (const row of grouped.rows) counts[partOf(row.op)] = Number(row.n);
    }
    this.counts = counts;
    const { plannerRows, modelRows } = plannedRows({ kind, comparison, counts, tableRows: Number(meta.row_count), refused: refused.length }, created);

    await this.fenced(
      `UPDATE ${this.meta} SET staging = $4, staging_kind = $5, key_columns = $6, model_columns = $7, part = -1, through = NULL, pending_cursor = $8, comparison = $9, staged_rows = $10, updated_at = now()`,
      [staging, kind, JSON.stringify(keys), JSON.stringify(modelColumns), pendingCursor, comparison, created - refused.length],
    );

    const parts = stagedParts(this.table(staging), kind, counts, keyList, names.map(q).join(', '));
    return { parts, refused, modelRows, plannerRows, comparison, notes, delivered };
  }

  /**
   * Starts a first run's staging table on a second connection, alongside the delivery (see
   * postgres-staging.ts), and plans the model's rows read in its snapshot. Null when PostgreSQL
   * would sort the model to read it in key order (the sort would cost the delivery more than the
   * table built first saves) or no second connection can be opened: then the table is built first.
   */
  private async startFirstRun(shape: Shape, staging: string, rejectedTable: string): Promise<Omit<WarehousePlan, 'notes' | 'delivered'> | null> {
    if (this.connect === null || plannerTuning.firstRun === 'never') return null;
    const { client } = this;
    const read = firstRunQuery(shape.query, shape.keys);
    // Planned as the delivery reads it: in one process (see StagingAlongside.start).
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const explained = await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${read}`);
    await client.query('SET LOCAL max_parallel_workers_per_gather TO DEFAULT');
    const plan = json<Array<{ Plan: { 'Plan Rows': number } }>>(explained.rows[0]?.['QUERY PLAN']);
    if (plannerTuning.firstRun === 'unsorted' && /"Node Type":\s*"(Incremental )?Sort"/.test(JSON.stringify(plan))) return null;
    let side: pg.Client;
    try {
      side = await this.connect();
    } catch {
      return null;
    }
    let alongside: StagingAlongside;
    try {
      alongside = await StagingAlongside.start(side, {
        query: shape.query,
        keys: shape.keys,
        staging: this.table(staging),
        rejected: this.table(rejectedTable),
        primaryKey: `${staging}_pkey`,
      });
    } catch (error) {
      await side.end().catch(() => undefined);
      throw error;
    }
    this.firstRun = {
      staging: alongside,
      name: staging,
      shape,
      through: null,
      rejected: [],
      delivered: { ...ZERO_COUNTS },
      recorded: false,
    };
    const estimate = Math.max(0, Math.round(plan[0]?.Plan['Plan Rows'] ?? 0));
    this.counts = { added: estimate, changed: 0, removed: 0 };
    const part: WarehousePlanPart = { op: 'added', rows: estimate, query: read, snapshot: alongside.snapshot, counted: alongside.counted };
    return { parts: [part], refused: [], modelRows: estimate, plannerRows: 0, comparison: shape.comparison };
  }

  /**
   * Records a first run's staging table in lockstep_syncs once it is committed (see
   * StagingAlongside), with the watermark delivered meanwhile: from then on the run's commits and
   * a later attempt take its delivered rows in as any run's.
   */
  private async recordFirstRun(first: FirstRun): Promise<void> {
    first.staging.release();
    let built: { rows: number };
    try {
      built = await first.staging.built;
    } catch (error) {
      throw this.failure('building the staging table of the first run', error);
    }
    await this.fenced(
      `UPDATE ${this.meta} SET staging = $4, staging_kind = 'initial', key_columns = $5, model_columns = $6, part = -1, through = NULL, pending_cursor = $7, comparison = $8, staged_rows = $9, updated_at = now()`,
      [first.name, JSON.stringify(first.shape.keys), JSON.stringify(first.shape.modelColumns), first.shape.pendingCursor, first.shape.comparison, built.rows],
    );
    first.recorded = true;
    this.counts = { added: built.rows, changed: 0, removed: 0 };
    if (first.through !== null) await this.commitNow(first.through, first.rejected, first.delivered);
  }

  /** The model's columns and keys, and how it is compared with the planner table (`meta`): shared by runs and dry runs. */
  private async shape(request: WarehousePlanRequest, meta: MetaRow, plannerTable: string, notes: string[]): Promise<Shape> {
    const { client } = this;
    // The model's columns and types.
    const query = modelQuery(request);
    let described: pg.QueryResult;
    try {
      described = await client.query({ text: `SELECT * FROM (\n${query}\n) AS lockstep_model LIMIT 0`, rowMode: 'array' });
    } catch (error) {
      // A query that names what is not there, or what the user may not read (class 42): the model's
      // to fix, whatever the planner's schema allows.
      if (!String((error as { code?: string }).code ?? '').startsWith('42')) throw error;
      throw new LockstepError(
        ErrorCode.Query,
        `the model's query failed on source ${this.where}: ${toError(error).message} — check the model's query (run it with psql to see the full error)`,
        { cause: error },
      );
    }
    const names = described.fields.map((f) => f.name);
    const types = (
      await client.query<{ type: string; by_text: boolean }>(DESCRIBE_TYPES, [
        described.fields.map((f) => f.dataTypeID),
        described.fields.map((f) => f.dataTypeModifier),
        TEXT_COMPARED,
      ])
    ).rows;
    const modelColumns: ColumnType[] = names.map((name, i) => ({ name, type: types[i]?.type as string }));
    const byText = new Set(names.filter((_, i) => types[i]?.by_text === true));
    checkModelColumns(names, request, RESERVED);
    const keys = [...request.primaryKey];
    const values = names.filter((n) => !keys.includes(n));

    // Is the planner table what Lockstep left? Then compare values; otherwise by key, or from scratch.
    const existing = await this.describeTable(plannerTable);
    let tampered = false;
    let deltaLost = false;
    if (existing !== null && comparesWithTable(request, existing.columns, meta.columns)) {
      const emptied = Number(meta.row_count) > 0 && !(await this.hasRows(plannerTable));
      // Without its primary key on the model's key, the table takes no rows in (they are found by it):
      // it is rebuilt, and its delta, which could be folded into it only by that key, is given up.
      const keyLost = !sameKeys(existing.primaryKey, keys);
      deltaLost = Number(meta.delta_rows) > 0 && (keyLost || !(await this.deltaIntact(plannerTable, existing.columns, keys)));
      tampered = meta.tampered || !existing.guarded || keyLost || emptied || deltaLost;
    }
    const { kind, comparison, reason, note } = decideComparison(request, { keys, columns: modelColumns }, {
      name: `${this.schema}.${plannerTable}`,
      columns: existing?.columns ?? null,
      recorded: meta.columns,
      // The planner table (and its delta) is keyed by the key it was built with: another key starts it again.
      keyedBy: meta.key_columns,
      tampered,
      cursorValue: meta.cursor_value,
      cursorRuns: meta.cursor_runs,
    });
    if (note !== null) notes.push(note);
    // Started again, the table leaves its delta behind with it.
    if (reason === 'keysChanged') deltaLost = false;

    // The change cursor: rows past the last delivered value, with a full comparison every so often.
    const cursor = request.cursor;
    const pendingCursor = cursor ? ((await client.query<{ high: string | null }>(`SELECT max(${quote(cursor.column)})::text AS high FROM (\n${query}\n) AS lockstep_model`)).rows[0]?.high ?? null) : null;
    const delta = Number(meta.delta_rows) > 0 && !deltaLost && (kind === 'values' || kind === 'keys') ? this.table(plannerTable + DELTA_SUFFIX) : null;
    return { query, names, modelColumns, keys, values, kind, comparison, pendingCursor, plannerTable, delta, dropDelta: deltaLost, byText };
  }

  /** Whether the planner table's delta is as Lockstep left it: there, watched by the guard, keyed by `keys`, with the table's columns after its own. */
  private async deltaIntact(plannerTable: string, columns: ColumnType[], keys: string[]): Promise<boolean> {
    const found = await this.describeTable(plannerTable + DELTA_SUFFIX);
    if (found === null || !found.guarded || !sameKeys(found.primaryKey, keys)) return false;
    const [gone, ...rest] = found.columns;
    return gone?.name === 'lockstep_gone' && gone.type === 'boolean' && sameColumns(rest, columns);
  }

  /**
   * The rows a run stages: the model itself (initial, reset) or the rows that differ from the
   * planner table, each with its `lockstep_op`. `cursorValue` is the SQL of the cursor's value.
   * `cuts` (a full comparison of a large table, see ranges): the comparison runs as one arm per
   * range of the first key column, which PostgreSQL runs side by side (a parallel append).
   */
  private diffSelect(shape: Shape, request: WarehousePlanRequest, cursorValue: string, cuts: string[] | null): string {
    const { query, modelColumns, keys, values, kind, comparison, plannerTable } = shape;
    if (kind === 'initial' || kind === 'reset') return `SELECT * FROM (\n${query}\n) AS lockstep_model`;
    const q = quote;
    const cursor = request.cursor;
    // The values of the model's row `m` and the planner's row `p` differ.
    const differsIn = (m: string, p: string): string => {
      if (kind === 'keys' || values.length === 0) return kind === 'keys' ? 'true' : 'false';
      return values
        .map((v) => (shape.byText.has(v) ? `${m}.${q(v)}::text IS DISTINCT FROM ${p}.${q(v)}::text` : `${m}.${q(v)} IS DISTINCT FROM ${p}.${q(v)}`))
        .join(' OR ');
    };
    const differs = differsIn('m', 'p');
    const delta = shape.delta;
    const matching = (a: string, b: string) => keys.map((k) => `${a}.${q(k)} = ${b}.${q(k)}`).join(' AND ');
    // The planner table's keys are never null and a matched pair's keys are equal: a null first key
    // on the planner's side means the model's row is new, on the model's side that the row is gone.
    const first = q(keys[0] as string);
    const op = `CASE WHEN p.${first} IS NULL THEN 'a' WHEN m.${first} IS NULL THEN 'r' ELSE 'c' END`;
    const wanted = ["'a'", ...(request.sends.changed ? ["'c'"] : []), ...(request.sends.removed && comparison === 'full' ? ["'r'"] : [])];
    const columns = [
      `${op}::char AS lockstep_op`,
      ...keys.map((k) => `coalesce(m.${q(k)}, p.${q(k)}) AS ${q(k)}`),
      // Kept only from the model's side: a removed row holds its key only.
      ...values.map((v) => `m.${q(v)}`),
    ];
    const changed = `m.${first} IS NULL OR p.${first} IS NULL OR ${differs}`;
    const keysMatch = keys.map((k) => `m.${q(k)} = p.${q(k)}`).join(' AND ');
    let arms: string[];
    if (comparison === 'cursor') {
      // Only rows past the cursor, each looked up by key (OFFSET 0 keeps the lookup a parameterised
      // index scan rather than a scan of the whole planner table); nothing is removed.
      const type = (modelColumns.find((c) => c.name === cursor?.column) as ColumnType).type;
      const model = `SELECT * FROM (\n${query}\n) AS lockstep_q WHERE lockstep_q.${q(cursor?.column as string)} >= ${cursorValue}::${type}`;
      // With a delta, a key's row there (unless gone) stands for the planner table's.
      const own = [...keys, ...values].map(q).join(', ');
      const inTable = `SELECT ${delta ? own : '*'} FROM ${this.table(plannerTable)} AS lockstep_p WHERE ${matching('lockstep_p', 'm')}`;
      const inEither = delta
        ? `SELECT ${own} FROM ${delta} AS lockstep_d WHERE ${matching('lockstep_d', 'm')} AND NOT lockstep_d.lockstep_gone UNION ALL ${inTable} AND NOT EXISTS (SELECT 1 FROM ${delta} AS lockstep_e WHERE ${matching('lockstep_e', 'm')})`
        : inTable;
      const planned = `LEFT JOIN LATERAL (${inEither} OFFSET 0) AS p ON true`;
      arms = [`SELECT ${columns.join(', ')}\nFROM (${model}) AS m ${planned}\nWHERE ${changed}`];
    } else {
      // A full comparison joins along the key: a merge join over both tables' key order. With a
      // delta, its keys are compared again below, knowing whether the model has each.
      const join = request.sends.removed || delta ? 'FULL JOIN' : 'LEFT JOIN';
      const arm = (range: ((alias: string) => string) | null) =>
        `SELECT ${columns.join(', ')}\nFROM (SELECT * FROM (\n${query}\n) AS lockstep_q${range ? ` WHERE ${range('lockstep_q')}` : ''}) AS m ` +
        `${join} (SELECT * FROM ${this.table(plannerTable)} AS lockstep_p${range ? ` WHERE ${range('lockstep_p')}` : ''}) AS p ON ${keysMatch}\nWHERE ${changed}`;
      if (cuts === null || cuts.length === 0) arms = [arm(null)];
      else {
        arms = [];
        for (let i = 0; i <= cuts.length; i++) {
          const from = cuts[i - 1];
          const to = cuts[i];
          arms.push(arm((alias) => [from && `${alias}.${first} >= ${from}`, to && `${alias}.${first} < ${to}`].filter(Boolean).join(' AND ')));
        }
        // A model row with a null first key falls in no range: it is new (and refused later).
        arms.push(`SELECT 'a'::char AS lockstep_op, ${[...keys, ...values].map((c) => `lockstep_q.${q(c)}`).join(', ')} FROM (\n${query}\n) AS lockstep_q WHERE lockstep_q.${first} IS NULL`);
      }
    }
    const filter = `WHERE lockstep_op IN (${wanted.join(', ')})`;
    if (delta === null || comparison === 'cursor') return `SELECT * FROM (${arms.join('\nUNION ALL\n')}) AS lockstep_diff ${filter}`;
    // The model against the planner table and its delta: compared with the table alone first (all
    // kinds of difference kept), then each key of the delta again against its row there. Where the
    // first comparison has no row for a key, the model's row is the table's (or both have none).
    const x = `lockstep_x.${first}`;
    const present = kind === 'keys' ? `${x} IS NOT NULL AND lockstep_x.lockstep_op <> 'r'` : `CASE WHEN ${x} IS NOT NULL THEN lockstep_x.lockstep_op <> 'r' ELSE b.${first} IS NOT NULL END`;
    const valueOf = (v: string) => (kind === 'keys' ? `lockstep_x.${q(v)}` : `CASE WHEN ${x} IS NOT NULL THEN lockstep_x.${q(v)} ELSE b.${q(v)} END`);
    // Compared by key, the first comparison holds every row the model has.
    const lookup = kind === 'keys' ? '' : `LEFT JOIN LATERAL (SELECT * FROM ${this.table(plannerTable)} AS lockstep_b WHERE ${x} IS NULL AND ${matching('lockstep_b', 'd')} OFFSET 0) AS b ON true`;
    const againOp = `CASE WHEN NOT mp.lockstep_present THEN (CASE WHEN d.lockstep_gone THEN NULL ELSE 'r' END) WHEN d.lockstep_gone THEN 'a' WHEN ${differsIn('mv', 'd')} THEN 'c' END`;
    const again =
      `SELECT (${againOp})::char AS lockstep_op, ${[...keys.map((k) => `d.${q(k)}`), ...values.map((v) => `mv.${q(v)}`)].join(', ')}\n` +
      `FROM ${delta} AS d LEFT JOIN lockstep_x ON ${matching('lockstep_x', 'd')} ${lookup}\n` +
      `CROSS JOIN LATERAL (SELECT ${present} AS lockstep_present) AS mp\n` +
      // The model's values apart from the flag above, which a model column of its name would hide.
      `CROSS JOIN LATERAL (SELECT ${values.length === 0 ? 'NULL' : values.map((v) => `${valueOf(v)} AS ${q(v)}`).join(', ')}) AS mv`;
    return (
      `WITH lockstep_x AS MATERIALIZED (SELECT * FROM (${arms.join('\nUNION ALL\n')}) AS lockstep_all WHERE lockstep_op IN ('a', 'c', 'r'))\n` +
      `SELECT * FROM (SELECT * FROM lockstep_x WHERE NOT EXISTS (SELECT 1 FROM ${delta} AS d WHERE ${matching('d', 'lockstep_x')})\nUNION ALL\n${again}) AS lockstep_diff ${filter}`
    );
  }

  /**
   * A dry run's plan: the same comparison as a run's, read-only. Nothing is created or written (the
   * session is read-only): the meta row and the planner table are only read, and a planner that
   * never ran compares as a first run would. The parts' queries are the comparison itself (the
   * source reads them on connections of its own), without null and duplicate keys, which are
   * refused as a run refuses them. Rows an earlier attempt delivered but did not take into the
   * planner table yet (it stopped part-way, or runs now) are not known here: the plan says so.
   */
  private async preview(request: WarehousePlanRequest): Promise<WarehousePlan> {
    const { client } = this;
    const notes: string[] = [];
    const plannerTable = plannerTableName(request.sync);
    const present = (await client.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [this.meta])).rows[0]?.found ?? null;
    const found = present === null ? undefined : (await client.query<MetaRow>(`SELECT * FROM ${this.meta} WHERE sync_id = $1`, [request.sync.id])).rows[0];
    const meta = found ? parseMeta(found) : unplannedMeta(request.sync.id, plannerTable);
    if (meta.staging !== null) notes.push(pendingNote(meta.run_id));
    const shape = await this.shape(request, meta, plannerTable, notes);
    const cuts = shape.comparison === 'full' && shape.kind !== 'initial' && shape.kind !== 'reset' ? await this.ranges(shape, Number(meta.row_count)) : null;
    const diff = this.diffSelect(shape, request, client.escapeLiteral(meta.cursor_value ?? ''), cuts);
    const sql = previewStatements(diff, shape.keys, shape.kind === 'initial' || shape.kind === 'reset' ? "'a'::char" : 'lockstep_op');
    const rows = async (text: string) => ((await client.query({ text, rowMode: 'array' })).rows as unknown[][]).map((row) => row.map(plain));
    const nullKeys = await rows(sql.nullKeys);
    const { counts, repeated } = sql.tally((await rows(sql.counts)) as Array<[Value, Value, Value]>);
    const refused = previewRefusals(shape.keys, nullKeys, repeated ? await rows(sql.repeatedKeys) : []);
    const { plannerRows, modelRows } = plannedRows({ kind: shape.kind, comparison: shape.comparison, counts, tableRows: Number(meta.row_count), refused: refused.length }, counts.added + refused.length);
    const parts = shape.kind === 'reset' ? [] : sql.parts(counts, repeated, shape.names);
    return { parts, refused, modelRows, plannerRows, comparison: shape.comparison, notes, delivered: { ...ZERO_COUNTS } };
  }

  commit(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    // A dry run delivered nothing: nothing to record.
    if (this.dryRun) return Promise.resolve();
    return this.commits.commit(through, rejected, delivered);
  }

  private async commitNow(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    const first = this.firstRun;
    if (first !== null && !first.recorded) {
      // A batch was delivered: the delivery took the snapshot. Until the staging table is built, the
      // watermark waits here (delivery goes on); past PENDING_REJECTED rejected keys, for the table.
      first.staging.release();
      first.through = through;
      first.rejected.push(...rejected);
      first.delivered = delivered;
      if (first.staging.failure !== null) throw this.failure('building the staging table of the first run', first.staging.failure);
      if (!first.staging.settled && first.rejected.length < PENDING_REJECTED) return;
      return this.recordFirstRun(first);
    }
    const { client } = this;
    const keys = this.keys;
    const record = (key: Value[]) => Object.fromEntries(keys.map((k, i) => [k, key[i] ?? null]));
    await client.query('BEGIN');
    try {
      await this.fenced('UPDATE ' + this.meta + ' SET part = $4, through = $5, delivered = $6, updated_at = now()', [
        OPS.indexOf(through.op),
        JSON.stringify(record(through.key)),
        JSON.stringify(delivered),
      ]);
      if (rejected.length > 0) {
        const table = this.table(`${this.plannerTable}_rejected`);
        await client.query(`INSERT INTO ${table} SELECT * FROM json_populate_recordset(NULL::${table}, $1::json)`, [JSON.stringify(rejected.map(record))]);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.failure('recording delivered rows in the planner table', error);
    }
  }

  async finish(): Promise<void> {
    if (this.dryRun) return;
    await this.commits.settled();
    if (this.firstRun !== null && !this.firstRun.recorded) await this.recordFirstRun(this.firstRun);
    const { client } = this;
    try {
      await client.query('BEGIN');
      const found = (await client.query<MetaRow>(`SELECT * FROM ${this.meta} WHERE sync_id = $1 FOR UPDATE`, [this.fence?.syncId])).rows[0];
      const meta = found ? parseMeta(found) : null;
      if (!meta || Number(meta.run_id) !== this.fence?.runId || meta.attempt !== this.fence.attempt) throw leaseLost(this.fence?.syncId);
      await this.apply(meta, true);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.failure('taking the delivered rows into the planner table', error);
    }
  }

  /**
   * Takes the staging table's delivered rows into the planner table, inside the caller's
   * transaction (which holds the sync's row of lockstep_syncs). `complete`: the run planned and
   * delivered everything (rejected rows aside); otherwise only the rows up to the watermark.
   */
  private async apply(meta: MetaRow, complete: boolean): Promise<void> {
    const { client } = this;
    const staging = meta.staging as string;
    const kind = meta.staging_kind as StagingKind;
    const planner = meta.planner_table;
    const rejectedTable = `${planner}_rejected`;
    const keys = (meta.key_columns ?? []) as string[];
    const columns = (meta.model_columns ?? []) as ColumnType[];
    const s = this.table(staging);
    const p = this.table(planner);
    const drop = async () => client.query(`DROP TABLE IF EXISTS ${s}, ${this.table(rejectedTable)}`);
    // A staging table the server lost (or never finished) leaves nothing delivered to take in.
    const present = (await this.describeTable(staging)) !== null && (await this.describeTable(rejectedTable)) !== null;
    if (!present || keys.length === 0) {
      await drop();
      await client.query(`UPDATE ${this.meta} SET staging = NULL, part = -1, through = NULL WHERE sync_id = $1`, [meta.sync_id]);
      return;
    }
    const anyRejected = (await client.query(`SELECT 1 FROM ${this.table(rejectedTable)} LIMIT 1`)).rowCount !== 0;
    const cursor = cursorAfterRun(meta, { complete, rejected: anyRejected });
    const record = (rowCount: number, recorded: ColumnType[], deltaRows = Number(meta.delta_rows)) =>
      client.query(
        `UPDATE ${this.meta} SET staging = NULL, part = -1, through = NULL, columns = $2, row_count = $3, tampered = false,
           cursor_value = $4, cursor_runs = $5, pending_cursor = NULL, delta_rows = $6, updated_at = now() WHERE sync_id = $1`,
        [meta.sync_id, JSON.stringify(recorded), rowCount, cursor.cursorValue, cursor.cursorRuns, deltaRows],
      );
    if (kind === 'values' && Number(meta.staged_rows) === 0) {
      // Nothing differed: the planner table stays as it is.
      await drop();
      await record(Number(meta.row_count), meta.columns ?? columns);
      return;
    }
    const q = quote;
    const watermark = meta.through === null ? null : `(SELECT ${keyRow(keys, 't')} FROM json_populate_record(NULL::${this.table(rejectedTable)}, '${JSON.stringify(meta.through).replace(/'/g, "''")}'::json) AS t)`;
    const taken = deliveredRows({
      kind,
      complete,
      part: meta.part,
      key: keyRow(keys, 's'),
      mark: watermark,
      notRejected: anyRejected ? `NOT EXISTS (SELECT 1 FROM ${this.table(rejectedTable)} AS r WHERE ${keyRow(keys, 'r')} = ${keyRow(keys, 's')})` : null,
    });
    const delivered = taken.condition ?? 'true';
    const keyList = keys.map(q).join(', ');

    const d = this.table(planner + DELTA_SUFFIX);
    let rowCount: number;
    let deltaRows = 0;
    if (kind === 'initial' || kind === 'reset' || kind === 'keys') {
      // The planner table is replaced: by the staging table itself when everything went, else by
      // the delivered rows (and, comparing by key, the removals not delivered yet, so they stay planned).
      if (taken.condition === null && kind !== 'keys') {
        await client.query(`DROP TABLE IF EXISTS ${p}, ${d}, ${this.table(rejectedTable)}`);
        await client.query(`ALTER TABLE ${s} RENAME TO ${q(planner)}`);
        await client.query(`ALTER INDEX ${this.table(`${staging}_pkey`)} RENAME TO ${q(`${planner}_pkey`)}`);
        rowCount = Number(meta.staged_rows);
      } else {
        const rebuilt = this.table(`${planner}_new`);
        await client.query(`DROP TABLE IF EXISTS ${rebuilt}`);
        const keep = rowsKept(kind, delivered);
        // Compared by key, rows the sync does not send when changed (insert mode) were not staged:
        // they keep what was delivered, in the model's types.
        const old = kind === 'keys' ? await this.describeTable(planner) : null;
        const kept = old
          ? ` UNION ALL SELECT ${columns.map((c) => (old.columns.some((o) => o.name === c.name) ? `CAST(p.${q(c.name)} AS ${c.type})` : `CAST(NULL AS ${c.type})`)).join(', ')} FROM ${p} AS p WHERE NOT EXISTS (SELECT 1 FROM ${s} AS s WHERE ${keyRow(keys, 's')} = ${keyRow(keys, 'p')})`
          : '';
        rowCount = (await client.query(`CREATE TABLE ${rebuilt} WITH (fillfactor = ${PLANNER_FILLFACTOR}) AS SELECT ${columns.map((c) => `s.${q(c.name)}`).join(', ')} FROM ${s} AS s WHERE ${keep}${kept}`)).rowCount ?? 0;
        await client.query(`DROP TABLE IF EXISTS ${p}, ${d}`);
        await client.query(`ALTER TABLE ${rebuilt} RENAME TO ${q(planner)}`);
        await client.query(`ALTER TABLE ${p} ADD CONSTRAINT ${q(`${planner}_pkey`)} PRIMARY KEY (${keyList})`);
        await drop();
      }
      await client.query(
        `CREATE TRIGGER lockstep_guard AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${p} FOR EACH STATEMENT EXECUTE FUNCTION ${q(this.schema)}.lockstep_guard()`,
      );
      // Statistics for the next comparison's plan, unless the table came with them (a first run's
      // staging table built alongside is analysed there, off the run's path).
      const analysed = await client.query<{ found: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = $1 AND tablename = $2) AS found', [this.schema, planner]);
      if (!analysed.rows[0]?.found) await client.query(`ANALYZE ${p}`);
    } else if (Number(meta.delta_rows) > 0 || Number(meta.row_count) >= plannerTuning.deltaRows) {
      await this.readyDelta(planner, keys);
      const taken = await takeIntoDelta(client, { staging: s, planner: p, keys, columns, delivered }, d);
      rowCount = Number(meta.row_count) + taken.added - taken.removed;
      deltaRows = taken.deltaRows;
      if (deltaRows > plannerTuning.foldFraction * rowCount) {
        await fold(client, p, d, keys, columns);
        deltaRows = 0;
      }
      await drop();
    } else {
      const changes: Changes = { staging: s, planner: p, keys, columns, delivered, lookUp: Number(meta.staged_rows) * 5 < Number(meta.row_count) };
      // The rows of each kind in two halves by key, one on a second connection, when the run ends
      // with many changed rows looked up by key: two server processes update the table at once.
      const halves = complete && changes.lookUp && this.connect !== null ? this.halves(staging, keys) : null;
      const { added, removed } = halves ? await this.applyInHalves(changes, halves) : await applyChanges(client, changes, null);
      rowCount = Number(meta.row_count) + added - removed;
      await drop();
    }
    await record(rowCount, (await this.describeTable(planner))?.columns ?? columns, deltaRows);
  }

  /** Makes sure the planner table has its delta (see takeIntoDelta), watched by the guard like the table. */
  private async readyDelta(planner: string, keys: string[]): Promise<void> {
    const { client } = this;
    const table = await this.describeTable(planner);
    if (table !== null && (await this.deltaIntact(planner, table.columns, keys))) return;
    const d = this.table(planner + DELTA_SUFFIX);
    await client.query(`DROP TABLE IF EXISTS ${d}`);
    await client.query(`CREATE TABLE ${d} AS SELECT false AS lockstep_gone, p.* FROM ${this.table(planner)} AS p WITH NO DATA`);
    await client.query(`ALTER TABLE ${d} ADD PRIMARY KEY (${keys.map(quote).join(', ')})`);
    await client.query(`CREATE TRIGGER lockstep_guard AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${d} FOR EACH STATEMENT EXECUTE FUNCTION ${quote(this.schema)}.lockstep_guard()`);
  }

  /**
   * Where each kind of staged row is cut in two (the key of its middle row, as a subquery the
   * server runs once), for kinds of at least `plannerTuning.halfRows` rows; null when none is that large.
   */
  private halves(staging: string, keys: string[]): Halves | null {
    const keyList = keys.map(quote).join(', ');
    const bounds = new Map<string, string>();
    for (const op of OPS) {
      const rows = this.counts[op];
      if (rows < plannerTuning.halfRows) continue;
      const code = OP_CODE[op];
      bounds.set(code, `(SELECT ${keyList} FROM ${this.table(staging)} WHERE lockstep_op = '${code}' ORDER BY ${keyList} OFFSET ${Math.floor(rows / 2)} LIMIT 1)`);
    }
    return bounds.size > 0 ? bounds : null;
  }

  /**
   * Applies the lower half of each kind's rows on the planner's connection (in the caller's
   * transaction) while a second connection applies the upper half in its own, committed once both
   * halves are done; a failure on either side rolls the other back. A crash between the two commits
   * leaves the upper half applied and the staging table recorded: the next attempt applies all of it
   * again, which changes nothing more for rows already taken in. When no second connection can be
   * opened (the server's or the role's connection limit, say), the upper half follows on the first.
   */
  private async applyInHalves(changes: Changes, bounds: Halves): Promise<{ added: number; removed: number }> {
    const connect = this.connect as () => Promise<pg.Client>;
    let side: pg.Client | null = null;
    const upper = (async () => {
      side = await connect();
      await side.query("SET lockstep.planner = 'on'");
      await side.query('BEGIN');
      return applyChanges(side, changes, { bounds, upper: true });
    })();
    upper.catch(() => undefined);
    try {
      const lower = await applyChanges(this.client, changes, { bounds, upper: false });
      let done: { added: number; removed: number };
      try {
        done = await upper;
      } catch (error) {
        if (side !== null) throw error;
        done = await applyChanges(this.client, changes, { bounds, upper: true });
      }
      await (side as pg.Client | null)?.query('COMMIT');
      return { added: lower.added + done.added, removed: lower.removed + done.removed };
    } finally {
      // Ending the connection rolls back whatever it did not commit.
      await upper.catch(() => undefined);
      await (side as pg.Client | null)?.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.commits.settled();
    await this.firstRun?.staging.close();
    await this.client.end().catch(() => undefined);
  }

  /** Runs an update of the sync's row in lockstep_syncs that only this attempt may make. */
  private async fenced(set: string, params: unknown[]): Promise<void> {
    const fence = this.fence;
    if (!fence) throw new LockstepError(ErrorCode.Internal, 'the planner was written to before a plan');
    const result = await this.client.query(`${set} WHERE sync_id = $1 AND run_id = $2 AND attempt = $3`, [fence.syncId, fence.runId, fence.attempt, ...params]);
    if (result.rowCount === 0) throw leaseLost(this.fence?.syncId);
  }

  /**
   * A table of the planner's schema: its columns, whether the guard watches it, and its primary
   * key's columns (empty without one); null when absent.
   */
  private async describeTable(name: string): Promise<{ columns: ColumnType[]; guarded: boolean; primaryKey: string[] } | null> {
    const found = await this.client.query<{ columns: ColumnType[] | null; guarded: boolean; primary_key: string[] | null }>(
      `SELECT (SELECT json_agg(json_build_object('name', a.attname, 'type', ${ATTRIBUTE_TYPE}) ORDER BY a.attnum)
                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
              EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'lockstep_guard') AS guarded,
              (SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'r'`,
      [this.schema, name],
    );
    const row = found.rows[0];
    return row ? { columns: json<ColumnType[] | null>(row.columns) ?? [], guarded: row.guarded, primaryKey: row.primary_key ?? [] } : null;
  }

  /**
   * Where to cut a full comparison into key ranges that PostgreSQL compares side by side (each
   * range a merge join of its own, in a parallel append): the bounds, as SQL literals of the first
   * key column's type, or null to compare in one piece. One range per process a query may use
   * (max_parallel_workers_per_gather and the leader), cut at the quantiles of a sample of the
   * planner table. Cut only when the model's query reads a range for less than the whole (the
   * range's condition reaches its scan); otherwise every range would read the whole model.
   */
  private async ranges(shape: Shape, plannerRows: number): Promise<string[] | null> {
    if (plannerRows < plannerTuning.splitRows) return null;
    // Only a way to go faster: a key type whose values do not round-trip as text, say, compares in one piece.
    await this.client.query('SAVEPOINT lockstep_ranges');
    try {
      const cuts = await this.cuts(shape, plannerRows);
      await this.client.query('RELEASE SAVEPOINT lockstep_ranges');
      return cuts;
    } catch {
      await this.client.query('ROLLBACK TO SAVEPOINT lockstep_ranges');
      return null;
    }
  }

  private async cuts(shape: Shape, plannerRows: number): Promise<string[] | null> {
    const { client } = this;
    const workers = Number((await client.query<{ n: string }>("SELECT current_setting('max_parallel_workers_per_gather') AS n")).rows[0]?.n ?? 0);
    const pieces = Math.min(MAX_RANGES, workers + 1);
    if (!(pieces >= 2)) return null;
    const key = shape.keys[0] as string;
    const type = (shape.modelColumns.find((c) => c.name === key) as ColumnType).type;
    const fractions = Array.from({ length: pieces - 1 }, (_, i) => (i + 1) / pieces);
    const percent = Math.min(100, (100 * SAMPLE_ROWS) / plannerRows);
    const sampled = await client.query<{ cuts: Array<string | null> | null }>(
      `SELECT (percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY ${quote(key)}))::text[] AS cuts FROM ${this.table(shape.plannerTable)} TABLESAMPLE SYSTEM (${percent})`,
      [fractions],
    );
    const cuts = [...new Set((sampled.rows[0]?.cuts ?? []).filter((c): c is string => c !== null))].map((c) => `${client.escapeLiteral(c)}::${type}`);
    if (cuts.length === 0) return null;
    const ordered = (where: string) => `SELECT * FROM (\n${shape.query}\n) AS lockstep_q${where} ORDER BY ${shape.keys.map((k) => `lockstep_q.${quote(k)}`).join(', ')}`;
    const whole = await this.cost(ordered(''));
    const last = await this.cost(ordered(` WHERE lockstep_q.${quote(key)} >= ${cuts[cuts.length - 1]}`));
    // The last range holds about 1/(cuts + 1) of the rows. Read through its own scan, it costs about
    // that share of the whole; filtered above a step that reads everything (a window over the whole
    // model, say), it costs the whole less a smaller final sort: PostgreSQL 15 puts that at 0.76 of
    // the whole for three ranges of a window over 3,000 rows. Halfway between the two decides.
    const share = 1 / (cuts.length + 1);
    return last < whole * (share + (1 - share) / 2) ? cuts : null;
  }

  /** PostgreSQL's estimate of what `query` costs in all. */
  private async cost(query: string): Promise<number> {
    const explained = await this.client.query<{ 'QUERY PLAN': Array<{ Plan: { 'Total Cost': number } }> }>(`EXPLAIN (FORMAT JSON) ${query}`);
    return json<Array<{ Plan: { 'Total Cost': number } }>>(explained.rows[0]?.['QUERY PLAN'])[0]?.Plan['Total Cost'] ?? Number.POSITIVE_INFINITY;
  }

  /** Whether PostgreSQL's plan for `query` joins by hash anywhere. */
  private async plansHashJoin(query: string): Promise<boolean> {
    const explained = await this.client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${query}`);
    return JSON.stringify(explained.rows[0]?.['QUERY PLAN'] ?? '').includes('"Hash Join"');
  }

  private async hasRows(name: string): Promise<boolean> {
    return (await this.client.query(`SELECT 1 FROM ${this.table(name)} LIMIT 1`)).rowCount !== 0;
  }

  private failure(what: string, thrown: unknown): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const code = (thrown as { code?: string }).code;
    if (code === NO_PRIVILEGE && /^must be owner of /.test(error.message)) return this.ownedElsewhere('', error);
    if (code === READ_ONLY_TRANSACTION) return this.readOnly(error);
    if (code === NO_PRIVILEGE) {
      return new LockstepError(
        ErrorCode.Connection,
        `${what} in schema "${this.schema}" on ${this.where} was refused: ${error.message} — grant the source's user USAGE and CREATE on schema ${quote(this.schema)}, or set planner: store on the source`,
        { cause: error },
      );
    }
    const transient = code !== undefined && (code.startsWith('08') || code === '40001' || code === '40P01' || code === '57P01');
    return new LockstepError(transient ? ErrorCode.Transient : ErrorCode.Query, `${what} on ${this.where} failed: ${error.message}`, { cause: error });
  }
}

/** The meta row of a sync the planner never ran for: compared as a first run. */
function unplannedMeta(syncId: number, plannerTable: string): MetaRow {
  return { ...unplannedRun(plannerTable), sync_id: String(syncId), columns: null, row_count: '0', tampered: false, run_id: null, through: null, delivered: null, staged_rows: '0', delta_rows: '0' };
}

function parseMeta(row: MetaRow | undefined): MetaRow {
  if (!row) throw new LockstepError(ErrorCode.Internal, 'the planner lost its row in lockstep_syncs');
  return {
    ...row,
    columns: json(row.columns),
    key_columns: json(row.key_columns),
    model_columns: json(row.model_columns),
    through: json(row.through),
  };
}

/** A json(b) value as the source's session parses it (as canonical text, see postgresTypes). */
function json<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}


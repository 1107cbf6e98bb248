/**
 * Copies an embedded (SQLite) store into a PostgreSQL store, so a workspace moves with its run
 * history, snapshots and record ids, and its next incremental runs send only what changed since.
 *
 * The copy is one PostgreSQL transaction: the target's migrations, the checks, every table and the
 * id sequences; a failure anywhere leaves the target as it was. The source is read in one SQLite
 * read transaction (the store as of one moment), a page at a time: a snapshot of millions of rows
 * streams through COPY and never sits in memory.
 *
 * Tables and columns are matched by name: every table both stores have, with the columns both
 * have, so the copy keeps working when either store gains a column with a default (a column only
 * the target has takes its default). Where the two stores keep a value differently it is
 * converted: SQLite's 0 and 1 into booleans, snapshot hashes (see SPLIT_COLUMNS), and text
 * PostgreSQL cannot hold, escaped as the PostgreSQL store escapes it (see storedText).
 *
 * Every statement and the COPY's rows are watched for their answer (see AnswerWatch): a network
 * that stops answering fails the copy within about the answer timeout rather than leaving it
 * waiting forever, and the command can be run again. The server may keep such a copy's session,
 * holding the schema, long after: the next copy ends it once its lease lapses (see CopyLease).
 *
 * Secrets stay sealed: a sealed value (core/secrets.ts) is copied as it is, or, when the target's
 * processes have a key of their own (LOCKSTEP_SECRET_KEY) and the embedded store sealed it with
 * another (its key file's), opened with that one and sealed again with theirs. Never in the clear.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { postgresDriverUrl } from '../core/connections.js';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import { TERMINAL_SEQUENCE_RUN_STATUSES, TERMINAL_SYNC_RUN_STATUSES } from '../core/runs.js';
import { SEALED_PREFIX, SecretBox, parseSecretKey, type SecretKeys } from '../core/secrets.js';
import { CopyLease, takeSchema, type LeaseProgress } from './postgres/postgres-copy-lease.js';
import { AnswerWatch } from './postgres/postgres-answer-watch.js';
import { describeUrl, errorCode, quoteIdent, storedText, type Queryable } from './postgres/postgres-database.js';
import { migrate as migratePostgres } from './postgres/postgres-migrations.js';
import { StoreSecretKeys, keyFileFor, readKeyFile, type KeyText } from './secret-keys.js';
import { migrate as migrateSqlite } from './sqlite/migrations.js';
import { openSqliteDatabase, type SqliteDatabase, type SqliteStatement, type SqliteValue } from './sqlite/sqlite-database.js';

export interface CopyToPostgresOptions {
  /** The embedded store's file; it must exist. A file of an older Lockstep is migrated first. */
  sqlitePath: string;
  /** The target database: `postgres://user:password@host:port/database`, libpq settings allowed. */
  url: string;
  /** The schema the PostgreSQL store's tables live in; created when missing. */
  schema: string;
  /** Empty the target's tables first (in the same transaction) rather than refuse a target holding rows. */
  replace: boolean;
  /** Copy unfinished runs as they are rather than refuse a source that has some. */
  force: boolean;
  /**
   * The key the PostgreSQL store's processes seal secrets with (LOCKSTEP_SECRET_KEY), or null: a
   * secret the embedded store sealed with another key is sealed again with it; without one, secrets
   * are copied as they are and the target's processes need the keys that sealed them (CopySummary.secrets).
   */
  secretKey: KeyText | null;
  /** The time the migrations record, epoch ms. */
  now: number;
  /**
   * Milliseconds a statement may go unanswered before the server is asked whether it is still at
   * work on it (the target store URL's answer_timeout; see AnswerWatch).
   */
  answerTimeoutMs: number;
  /** Told of each table as it is copied. */
  onProgress: (progress: CopyProgress) => void;
}

export type CopyProgress =
  /** A table's copy begins; `rows` is how many the source holds. */
  | { type: 'table:started'; table: string; rows: number }
  /** Every PROGRESS_ROWS rows of a table. */
  | { type: 'table:progress'; table: string; copied: number; rows: number }
  | { type: 'table:finished'; table: string; rows: number; ms: number }
  /**
   * Data of the source the target has no place for, left behind: a whole table (`column` null) or
   * the non-null values of one column.
   */
  | { type: 'data:skipped'; table: string; column: string | null; rows: number }
  | LeaseProgress;

export interface CopySummary {
  /** The target, for messages: `PostgreSQL at host:port/database as user (schema "lockstep")`, never the password. */
  where: string;
  /** Rows copied per table, in the order copied. */
  tables: Array<{ table: string; rows: number }>;
  /** Unfinished runs copied as they are (only with `force`). */
  unfinishedRuns: number;
  /** Whether rows the target held were deleted first (`replace`). */
  replaced: boolean;
  secrets: CopiedSecrets;
}

/** The sealed values copied. */
export interface CopiedSecrets {
  /** How many. */
  sealed: number;
  /** How many were sealed again with `secretKey`. */
  resealed: number;
  /** The ids of the keys that sealed them, as copied: the target's processes need these keys. */
  keyIds: string[];
  /** The embedded store's key file, when it holds one of those keys (null otherwise). */
  keyFile: string | null;
}

/** Rows between two `table:progress` reports. */
const PROGRESS_ROWS = 100_000;
/** Characters of COPY text sent to PostgreSQL at a time. */
const CHUNK_CHARS = 256 * 1024;
/** The migrations' own bookkeeping: each store keeps its own history. */
const MIGRATIONS_TABLE = 'schema_migrations';
/**
 * Milliseconds to wait for SQLite's lock (another process writing), PostgreSQL's connection, or
 * the target schema's locks once the copy holds its lease.
 */
const WAIT_MS = 10_000;

/**
 * Values the two stores keep in different columns. The SQLite store keeps a snapshot hash in one
 * column: a BLOB (the bytes of lowercase hex digits, what the sync runner writes) or text (any
 * other hash). The PostgreSQL store keeps such bytes in `hash` and any other text in `hash_text`.
 * Applied when the target has every column named in `targets`.
 */
const SPLIT_COLUMNS: readonly SplitColumn[] = [
  {
    table: 'snapshots',
    source: 'hash',
    targets: ['hash', 'hash_text'],
    plain: (c) => `typeof(${c}) = 'blob'`,
    spelled: (c) => `'${SQL_BYTES_PREFIX}' || lower(hex(${c})) || char(9) || '${NULL_FIELD}'`,
    encode: snapshotHash,
  },
];

interface SplitColumn {
  table: string;
  source: string;
  targets: readonly string[];
  /** SQLite's condition for values it spells (see ColumnCopy.plain), of the quoted column. */
  plain: (column: string) => string;
  /** SQLite's expression for the COPY text of the target columns when `plain`. */
  spelled: (column: string) => string;
  /** The COPY text of the target columns, tab-separated. */
  encode: (value: SqliteValue) => string;
}

/**
 * Copies the embedded store at `sqlitePath` into the PostgreSQL schema `schema` at `url`; see the
 * module's comment. Refuses a target that holds rows (unless `replace`) and a source with
 * unfinished runs (unless `force`), naming what is there and the fix.
 */
export async function copyToPostgres(options: CopyToPostgresOptions): Promise<CopySummary> {
  const where = `${describeUrl(options.url)} (schema "${options.schema}")`;
  const source = openSource(options.sqlitePath, options.now);
  try {
    // Deferred: the first read below takes the snapshot every later read sees.
    source.exec('BEGIN');
    const unfinished = unfinishedRuns(source);
    if (unfinished.length > 0 && !options.force) throw unfinishedRunsError(options.sqlitePath, unfinished);
    const secrets = new SealedValues(options.sqlitePath, options.secretKey);
    const client = await connect(options.url, where);
    const watch = new AnswerWatch({ url: options.url, where, answerTimeoutMs: options.answerTimeoutMs });
    let lease: CopyLease;
    try {
      lease = new CopyLease({ client: await connect(options.url, where, 'lockstep store migrate lease'), schema: options.schema, where, watch, onProgress: options.onProgress });
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    const target: CopyTarget = { client, q: leasedQueries(client, watch, lease), watch, lease, table: null };
    let committing = false;
    try {
      await lease.take();
      await target.q.query('BEGIN');
      const summary = await copyInTransaction(target, source, secrets, options, where);
      committing = true;
      // The COMMIT, once sent, is the server's to finish: a lease lost meanwhile changes nothing.
      await watch.answered(client, client.query('COMMIT'));
      return { ...summary, unfinishedRuns: unfinished.length, secrets: secrets.summary() };
    } catch (error) {
      // A connection given up on is reported with what became of the copy: the copy's own first, as
      // it says what became of the copy's statement when one failure took both.
      if (watch.gaveUp(client)) throw unansweredError(error, committing, target.table);
      if (!committing && lease.gaveUp) throw unansweredError(lease.lost ?? error, false, target.table);
      if (!committing && lease.lost) throw leaseEndedError(lease.lost, where, target.table);
      await watch.answered(client, client.query('ROLLBACK')).catch(() => undefined);
      throw targetError(error, where);
    } finally {
      await lease.release();
      await client.end().catch(() => undefined);
    }
  } finally {
    // Closing ends the read transaction.
    source.close();
  }
}

/** The copy's connection, and its statements as they are sent: each one watched for its answer. */
interface CopyTarget {
  client: pg.Client;
  /** The copy's statements, each sent only while the copy holds its lease (see leasedQueries). */
  q: Queryable;
  watch: AnswerWatch;
  lease: CopyLease;
  /** The table being copied, for messages (null between tables). */
  table: string | null;
}

/**
 * Statements on the copy's connection, each watched for its answer, and sent only while the copy
 * holds its lease: a copy whose lease was lost stops at its next statement (or part of a COPY's
 * rows), before the lease lapses and another copy may end its session.
 */
function leasedQueries(client: pg.Client, watch: AnswerWatch, lease: CopyLease): Queryable {
  return {
    query: async (text, values) => {
      lease.assertHeld();
      return watch.answered(client, client.query(text, values));
    },
  };
}

async function copyInTransaction(
  target: CopyTarget,
  source: SqliteDatabase,
  secrets: SealedValues,
  options: CopyToPostgresOptions,
  where: string,
): Promise<Omit<CopySummary, 'unfinishedRuns' | 'secrets'>> {
  const { q } = target;
  // Holds the schema's copy and migration locks until the commit: a Lockstep process opening this
  // store meanwhile waits for the copy instead of finding it half done.
  await takeSchema(q, { schema: options.schema, where, waitMs: WAIT_MS, onProgress: options.onProgress });
  await migratePostgres(q, options.schema, where, options.now);
  const schema = quoteIdent(options.schema);
  const targets = await targetTables(q, options.schema);
  const holding = await tablesWithRows(q, schema, [...targets.keys()]);
  if (holding.length > 0 && !options.replace) {
    throw new LockstepError(
      ErrorCode.Conflict,
      `${where} already holds a store (rows in ${someOf(holding, 'tables')}); copying into it would mix two stores — ` +
        'copy into an empty schema (--schema NAME) or database, or replace what it holds with --replace',
    );
  }
  if (holding.length > 0) await q.query(`TRUNCATE ${[...targets.keys()].map((t) => `${schema}.${quoteIdent(t)}`).join(', ')} RESTART IDENTITY`);

  const sources = sourceTables(source);
  for (const table of sources.values()) {
    if (!targets.has(table.name) && table.rows > 0) options.onProgress({ type: 'data:skipped', table: table.name, column: null, rows: table.rows });
  }
  const copied: CopySummary['tables'] = [];
  for (const table of copyOrder(targets)) {
    const from = sources.get(table.name);
    if (!from) continue;
    const plan = planTable(from, table, source, secrets);
    for (const skipped of plan.skipped) options.onProgress({ type: 'data:skipped', table: table.name, ...skipped });
    options.onProgress({ type: 'table:started', table: table.name, rows: from.rows });
    const started = Date.now();
    let rows = 0;
    target.table = table.name;
    try {
      if (from.rows > 0) rows = await copyTable(target, source, schema, plan, from.rows, options.onProgress);
    } catch (error) {
      // A connection given up on is reported with what became of the copy (see unansweredError).
      if (target.watch.gaveUp(target.client)) throw error;
      throw targetError(error, where, table.name);
    }
    target.table = null;
    options.onProgress({ type: 'table:finished', table: table.name, rows, ms: Date.now() - started });
    copied.push({ table: table.name, rows });
  }
  // Last: a sequence moved by setval stays moved even when the transaction rolls back.
  for (const table of targets.values()) {
    const from = sources.get(table.name);
    if (from) await advanceSequences(q, schema, table, from, source);
  }
  return { where, tables: copied, replaced: holding.length > 0 };
}

// ---------------------------------------------------------------------------------------------
// The source

function openSource(path: string, now: number): SqliteDatabase {
  if (!existsSync(path)) throw new LockstepError(ErrorCode.NotFound, `no embedded store at ${path}: there is nothing to copy`);
  let db: SqliteDatabase | undefined;
  try {
    db = openSqliteDatabase(path, { timeout: WAIT_MS });
    // A store written by an older Lockstep is brought to this version first, as opening it would.
    migrateSqlite(db, path, now);
    return db;
  } catch (error) {
    if (db?.open) db.close();
    if (error instanceof LockstepError) throw error;
    throw new LockstepError(ErrorCode.Store, `store ${path} cannot be read: ${toError(error).message}`, { cause: error });
  }
}

interface SourceTable {
  name: string;
  columns: string[];
  /** The INTEGER PRIMARY KEY column, whose highest id ever given SQLite keeps in sqlite_sequence. */
  rowidColumn: string | null;
  /** The columns that order its rows one way, for reading it in pages: its rowid, or a WITHOUT ROWID table's primary key. */
  key: string[];
  rows: number;
}

/** The source's tables (without SQLite's and the migrations' own), with their columns and row counts. */
function sourceTables(db: SqliteDatabase): Map<string, SourceTable> {
  const names = db
    .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ? ORDER BY name`)
    .all(MIGRATIONS_TABLE) as Array<{ name: string }>;
  const tables = new Map<string, SourceTable>();
  for (const { name } of names) {
    const columns = db.prepare('SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid').all(name) as Array<{ name: string; type: string; pk: number }>;
    const keys = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
    const rowidColumn = keys.length === 1 && keys[0]!.type.toUpperCase() === 'INTEGER' ? keys[0]!.name : null;
    const { rows } = db.prepare(`SELECT count(*) AS rows FROM ${quoteSqlite(name)}`).get() as { rows: number };
    // A WITHOUT ROWID table's primary key is never NULL; any other table has its rowid.
    const { wr } = db.prepare('SELECT wr FROM pragma_table_list WHERE name = ? AND schema = ?').get(name, 'main') as { wr: number };
    const key = wr ? keys.map((c) => c.name) : ['rowid'];
    tables.set(name, { name, columns: columns.map((c) => c.name), rowidColumn, key, rows });
  }
  return tables;
}

interface UnfinishedRun {
  kind: 'sync run' | 'sequence run';
  id: string;
  status: string;
}

/** Runs not in a final state: queued, running, or left running by a process that stopped. */
function unfinishedRuns(db: SqliteDatabase): UnfinishedRun[] {
  const syncRuns = db.prepare(`SELECT id, status FROM sync_runs WHERE status NOT IN ${sqlList(TERMINAL_SYNC_RUN_STATUSES)} ORDER BY id`).all() as Array<{
    id: number;
    status: string;
  }>;
  const sequenceRuns = db
    .prepare(`SELECT id, status FROM sequence_runs WHERE status NOT IN ${sqlList(TERMINAL_SEQUENCE_RUN_STATUSES)} ORDER BY seq`)
    .all() as Array<{ id: string; status: string }>;
  return [
    ...syncRuns.map((r) => ({ kind: 'sync run' as const, id: String(r.id), status: r.status })),
    ...sequenceRuns.map((r) => ({ kind: 'sequence run' as const, id: r.id, status: r.status })),
  ];
}

function unfinishedRunsError(path: string, runs: UnfinishedRun[]): LockstepError {
  return new LockstepError(
    ErrorCode.Conflict,
    `the embedded store ${path} has ${runs.length} unfinished run(s): ${someOf(runs.map((r) => `${r.kind} ${r.id} (${r.status})`), 'runs')}. ` +
      'Stop the Lockstep processes working on it and let `lockstep worker --drain` finish what is left (or cancel it), then copy again; ' +
      'or copy the runs as they are with --force (workers on the PostgreSQL store take them over once their leases end)',
  );
}

// ---------------------------------------------------------------------------------------------
// The target

interface TargetColumn {
  name: string;
  /** PostgreSQL's name of the type, e.g. `bigint`, `double precision`, `boolean`. */
  type: string;
  /** NOT NULL without a default: a value must come from the source. */
  required: boolean;
  /** The sequence giving its values (identity or serial), schema-qualified, if any. */
  sequence: string | null;
}

interface TargetTable {
  name: string;
  /** Columns a COPY can write (not generated ones), in table order. */
  columns: TargetColumn[];
  /** Tables of the schema its foreign keys point to. */
  references: string[];
}

async function targetTables(q: Queryable, schema: string): Promise<Map<string, TargetTable>> {
  const columns = await q.query<{ table: string; column: string; type: string; required: boolean; sequence: string | null }>(
    `SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS required,
            pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS sequence
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> $2
      ORDER BY c.relname, a.attnum`,
    [schema, MIGRATIONS_TABLE],
  );
  const tables = new Map<string, TargetTable>();
  for (const row of columns.rows) {
    let table = tables.get(row.table);
    if (!table) tables.set(row.table, (table = { name: row.table, columns: [], references: [] }));
    table.columns.push({ name: row.column, type: row.type, required: row.required, sequence: row.sequence });
  }
  const keys = await q.query<{ table: string; references: string }>(
    `SELECT DISTINCT child.relname AS table, parent.relname AS references
       FROM pg_constraint k
       JOIN pg_class child ON child.oid = k.conrelid
       JOIN pg_class parent ON parent.oid = k.confrelid
       JOIN pg_namespace n ON n.oid = child.relnamespace
      WHERE k.contype = 'f' AND n.nspname = $1 AND parent.relnamespace = n.oid`,
    [schema],
  );
  for (const key of keys.rows) if (key.table !== key.references) tables.get(key.table)?.references.push(key.references);
  return tables;
}

/** The target's tables with at least one row. */
async function tablesWithRows(q: Queryable, schema: string, tables: string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const sql = tables.map((t) => `SELECT ${quoteLiteral(t)} AS table WHERE EXISTS (SELECT 1 FROM ${schema}.${quoteIdent(t)})`).join(' UNION ALL ');
  return (await q.query<{ table: string }>(sql)).rows.map((r) => r.table).sort();
}

/** Tables in an order that writes every referenced row before the rows referring to it. */
function copyOrder(tables: Map<string, TargetTable>): TargetTable[] {
  const ordered: TargetTable[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (table: TargetTable, path: string[]) => {
    if (state.get(table.name) === 'done') return;
    if (state.get(table.name) === 'visiting') {
      throw new LockstepError(ErrorCode.Internal, `the PostgreSQL store's foreign keys form a cycle: ${[...path, table.name].join(' -> ')}`);
    }
    state.set(table.name, 'visiting');
    for (const name of table.references) {
      const referenced = tables.get(name);
      if (referenced) visit(referenced, [...path, table.name]);
    }
    state.set(table.name, 'done');
    ordered.push(table);
  };
  for (const table of [...tables.values()].sort((a, b) => a.name.localeCompare(b.name))) visit(table, []);
  return ordered;
}

async function connect(url: string, where: string, application = 'lockstep store migrate'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: postgresDriverUrl(url), application_name: application, connectionTimeoutMillis: WAIT_MS });
  // A connection lost mid-copy fails the statement in flight; without a listener the process would die.
  client.on('error', () => undefined);
  try {
    await client.connect();
    // A copy is one transaction of long statements (a COPY of millions of snapshot rows), bounded
    // by its lease (see CopyLease), not by a statement_timeout the database or role may set.
    await client.query('SET statement_timeout = 0');
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new LockstepError(
      ErrorCode.Store,
      `${where} cannot be reached: ${toError(error).message} — check the URL (host, port, database, user and password) and that the server is running`,
      { cause: error },
    );
  }
  return client;
}

/**
 * The failure of a copy whose connection was given up on (`error`, from AnswerWatch, names the
 * target): what became of the copy, and that the command can be run again. Before the COMMIT the
 * transaction is rolled back by the server once it notices the connection is gone; after it, the
 * copy may have been kept, and running again refuses a target holding it (then it is done).
 */
function unansweredError(error: unknown, committing: boolean, table: string | null): Error {
  if (!(error instanceof LockstepError)) return toError(error);
  const what = committing
    ? 'the copy\'s COMMIT went unanswered, so whether the copy was kept there is not known — run `lockstep store migrate` again once the network passes: ' +
      'it copies when nothing was kept, and refuses, naming the tables holding rows, when the copy was (then it is done)'
    : 'the copy is one transaction: nothing of it is kept there (the server rolls it back once it notices the connection is gone) — ' +
      'run `lockstep store migrate` again once the network passes';
  return new LockstepError(ErrorCode.Store, `copying ${table ? `table ${table}` : 'the store'} stopped: ${error.message}; ${what}`, {
    cause: error,
    retryable: true,
  });
}

/**
 * The failure of a copy whose lease's session ended (the server ended it, or someone did): the
 * copy stopped with it, so that no later copy takes the schema from a copy at work.
 */
function leaseEndedError(error: Error, where: string, table: string | null): Error {
  return new LockstepError(
    ErrorCode.Store,
    `copying ${table ? `table ${table}` : 'the store'} into ${where} stopped: the session holding the copy's lease ended (${error.message}), ` +
      'and the copy stops with it; it is one transaction: nothing of it is kept there — run `lockstep store migrate` again',
    { cause: error, retryable: true },
  );
}

/** Any failure inside the transaction, naming the target (and table) and saying that nothing was changed there. */
function targetError(error: unknown, where: string, table?: string): Error {
  if (error instanceof LockstepError) return error;
  const code = errorCode(error);
  return new LockstepError(
    ErrorCode.Store,
    `copying ${table ? `table ${table} ` : ''}into ${where} failed: ${toError(error).message}${code && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : ''}; nothing was changed there`,
    { cause: error },
  );
}

// ---------------------------------------------------------------------------------------------
// One table
//
// Most rows are spelled in COPY text by SQLite itself, a page of rows in one string: a value that
// SQLite spells exactly as PostgreSQL reads it (an integer, a BLOB, text with nothing to escape)
// costs no JavaScript value (a value per row cost more than PostgreSQL's whole COPY of the rows).
// A row with any other value (a REAL, whose shortest exact spelling SQLite does not give; text with
// a character to escape) is read as values and encoded here, in a second pass.

interface ColumnCopy {
  /** The source column. */
  source: string;
  /** The target columns it fills (a split column fills several). */
  targets: readonly string[];
  /** SQLite's condition for a value it spells exactly as PostgreSQL reads it. */
  plain: string;
  /** SQLite's expression for its COPY text, when `plain`. */
  spelled: string;
  /** Its COPY text, for any value. */
  encode: (value: SqliteValue) => string;
}

interface TablePlan {
  table: string;
  /** The source's key columns (SourceTable.key). */
  key: string[];
  columns: ColumnCopy[];
  /** Source columns the target lacks that hold values. */
  skipped: Array<{ column: string; rows: number }>;
}

function planTable(from: SourceTable, target: TargetTable, db: SqliteDatabase, secrets: SealedValues): TablePlan {
  const plan: TablePlan = { table: target.name, key: from.key, columns: [], skipped: [] };
  const byName = new Map(target.columns.map((c) => [c.name, c]));
  for (const column of from.columns) {
    const split = SPLIT_COLUMNS.find((s) => s.table === target.name && s.source === column && s.targets.every((t) => byName.has(t)));
    const into = byName.get(column);
    const c = quoteSqlite(column);
    if (split) plan.columns.push({ source: column, targets: split.targets, plain: split.plain(c), spelled: split.spelled(c), encode: split.encode });
    else if (into) plan.columns.push({ source: column, targets: [column], ...spelledBySqlite(c, into), encode: encoderFor(into, target.name, secrets) });
    else {
      const { rows } = db.prepare(`SELECT count(${quoteSqlite(column)}) AS rows FROM ${quoteSqlite(from.name)}`).get() as { rows: number };
      if (rows > 0) plan.skipped.push({ column, rows });
    }
  }
  const covered = new Set(plan.columns.flatMap((c) => c.targets));
  const missing = target.columns.filter((c) => c.required && !covered.has(c.name));
  if (missing.length > 0 && from.rows > 0) {
    throw new LockstepError(
      ErrorCode.Store,
      `cannot copy table ${target.name}: the PostgreSQL store needs ${missing.map((c) => c.name).join(', ')}, which the embedded store does not have — ` +
        'upgrade Lockstep, then open the embedded store once (any command) and copy again',
    );
  }
  return plan;
}

async function copyTable(
  { client, watch, lease }: CopyTarget,
  db: SqliteDatabase,
  schema: string,
  plan: TablePlan,
  total: number,
  onProgress: CopyToPostgresOptions['onProgress'],
): Promise<number> {
  const table = quoteSqlite(plan.table);
  // NULL for a row with a value that is not plain: the second pass reads exactly those rows.
  const line = plan.columns.map((c) => `CASE WHEN ${c.plain} THEN ${c.spelled} END`).join(' || char(9) || ');
  const plain = plan.columns.map((c) => `(${c.plain})`).join(' AND ');
  const pages = new PageReader(db, table, plan.key, `count(line), group_concat(line, char(10))`, `${line} AS line`);
  const rest = db.prepare(`SELECT ${plan.columns.map((c) => quoteSqlite(c.source)).join(', ')} FROM ${table} WHERE NOT (${plain})`).raw(true);
  const targets = plan.columns.flatMap((c) => c.targets).map(quoteIdent);
  const copy = client.query(copyFrom(`COPY ${schema}.${quoteIdent(plan.table)} (${targets.join(', ')}) FROM STDIN`));
  const done = new Promise<void>((resolve, reject) => {
    copy.on('finish', resolve);
    copy.on('error', reject);
  });
  done.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
  const encoders = plan.columns.map((c) => c.encode);
  const width = encoders.length;
  let chunk = '';
  let copied = 0;
  const flush = async () => {
    const full = chunk;
    chunk = '';
    lease.assertHeld();
    // The rows are taken as fast as the server reads them: a server that stops taking them is asked about.
    if (!copy.write(full)) await watch.answered(client, Promise.race([once(copy, 'drain'), done]));
  };
  const report = () => onProgress({ type: 'table:progress', table: plan.table, copied, rows: total });
  try {
    for (const [count, text] of pages.read() as Iterable<[number, string | null]>) {
      if (count === 0) continue;
      chunk += text + '\n';
      const before = copied;
      copied += count;
      if (Math.floor(copied / PROGRESS_ROWS) > Math.floor(before / PROGRESS_ROWS)) report();
      if (chunk.length >= CHUNK_CHARS) await flush();
    }
    for (const row of rest.iterate() as Iterable<SqliteValue[]>) {
      let text = (encoders[0] as (value: SqliteValue) => string)(row[0] as SqliteValue);
      for (let c = 1; c < width; c++) text += '\t' + (encoders[c] as (value: SqliteValue) => string)(row[c] as SqliteValue);
      chunk += text + '\n';
      if (++copied % PROGRESS_ROWS === 0) report();
      if (chunk.length >= CHUNK_CHARS) await flush();
    }
    // The pages and the second pass read every row once, whatever the rows hold; checked all the same.
    if (copied !== total) throw new LockstepError(ErrorCode.Internal, `read ${copied} of the ${total} rows of table ${plan.table}; nothing was copied`);
    if (chunk.length > 0) copy.write(chunk);
    copy.end();
    await watch.answered(client, done);
  } catch (error) {
    // Sends CopyFail, so the connection is ready for the ROLLBACK that follows.
    copy.destroy();
    throw error;
  }
  return copied;
}

/** Rows a page aggregates: each page is one string of about a megabyte for a snapshot. */
const PAGE_ROWS = 20_000;

/**
 * Reads a table in pages of PAGE_ROWS rows in key order, each page aggregated by SQLite into one
 * row (`aggregate` over `SELECT expression`). Keyset pagination: a page's last key is found in the
 * key's index alone, and each page reads only its own rows.
 */
class PageReader {
  /** A page's rows, by its bounds: none (the whole table), an upper one, a lower one, both. */
  private readonly pages: Record<'all' | 'upTo' | 'after' | 'between', SqliteStatement>;
  /** The key of the last row of the page starting at the table's start, or after a key. */
  private readonly lastKey: Record<'fromStart' | 'after', SqliteStatement>;

  constructor(db: SqliteDatabase, table: string, key: string[], aggregate: string, expression: string) {
    const columns = key.map(quoteSqlite).join(', ');
    const k = `(${columns})`;
    const at = `(${key.map(() => '?').join(', ')})`;
    const page = (where: string) => db.prepare(`SELECT ${aggregate} FROM (SELECT ${expression} FROM ${table} ${where})`).raw(true);
    this.pages = {
      all: page(''),
      upTo: page(`WHERE ${k} <= ${at}`),
      after: page(`WHERE ${k} > ${at}`),
      between: page(`WHERE ${k} > ${at} AND ${k} <= ${at}`),
    };
    const last = (where: string) => db.prepare(`SELECT ${columns} FROM ${table} ${where} ORDER BY ${columns} LIMIT 1 OFFSET ${PAGE_ROWS - 1}`).raw(true);
    this.lastKey = { fromStart: last(''), after: last(`WHERE ${k} > ${at}`) };
  }

  *read(): Iterable<unknown[]> {
    let after: SqliteValue[] | null = null;
    for (;;) {
      const last = (after === null ? this.lastKey.fromStart.get() : this.lastKey.after.get(...after)) as SqliteValue[] | undefined;
      if (!last) {
        // The last page: every row after the previous one.
        yield (after === null ? this.pages.all.get() : this.pages.after.get(...after)) as unknown[];
        return;
      }
      yield (after === null ? this.pages.upTo.get(...last) : this.pages.between.get(...after, ...last)) as unknown[];
      after = last;
    }
  }
}

/**
 * Moves each id sequence of the table past the ids copied, and past every id SQLite ever gave in
 * it (AUTOINCREMENT never gives an id twice, even after a delete: a run id someone kept must not
 * name another run later).
 */
async function advanceSequences(q: Queryable, schema: string, target: TargetTable, from: SourceTable, db: SqliteDatabase): Promise<void> {
  for (const column of target.columns) {
    if (!column.sequence) continue;
    const copiedMax = await q.query<{ max: string | null }>(`SELECT max(${quoteIdent(column.name)})::text AS max FROM ${schema}.${quoteIdent(target.name)}`);
    let high = Number(copiedMax.rows[0]?.max ?? 0);
    if (from.rowidColumn === column.name) high = Math.max(high, sqliteSequence(db, from.name));
    // is_called false: the next value is 1 itself.
    await q.query('SELECT setval($1, $2, $3)', [column.sequence, Math.max(high, 1), high > 0]);
  }
}

function sqliteSequence(db: SqliteDatabase, table: string): number {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'").get();
  if (!exists) return 0;
  const row = db.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table) as { seq: number } | undefined;
  return Number(row?.seq ?? 0);
}

// ---------------------------------------------------------------------------------------------
// Secrets

/** A sealed value inside any text (a JSON definition): `enc:v1:<key id>:<iv>:<ciphertext>` (core/secrets.ts). */
const SEALED_VALUE = /enc:v1:([A-Za-z0-9_-]{1,64}):[A-Za-z0-9_-]+:[A-Za-z0-9_-]+/g;

/** The sealed values met in the copy: counted by key, and sealed again with the target's key when it has one. */
class SealedValues {
  private readonly target: SecretBox | null;
  /** The embedded store's keys, as it opens with them: the target's key, else its key file (and a rotation's previous key). */
  private readonly sourceKeys: SecretKeys;
  private readonly keyFile: string | null;
  private readonly byKey = new Map<string, number>();
  private resealed = 0;

  constructor(sqlitePath: string, secretKey: KeyText | null) {
    this.target = secretKey ? new SecretBox(parseSecretKey(secretKey.text, secretKey.source)) : null;
    this.keyFile = keyFileFor(sqlitePath);
    this.sourceKeys = new StoreSecretKeys({ store: sqlitePath, key: secretKey ?? undefined, keyFile: this.keyFile, rotating: true });
  }

  /** `text` with each sealed value in it as the target keeps it. */
  copy(text: string): string {
    if (!text.includes(SEALED_PREFIX)) return text;
    return text.replace(SEALED_VALUE, (sealed: string, keyId: string) => {
      const target = this.target;
      if (target === null || keyId === target.keyId) {
        this.byKey.set(keyId, (this.byKey.get(keyId) ?? 0) + 1);
        return sealed;
      }
      const resealed = target.seal(this.sourceKeys.openingKey(keyId).open(sealed));
      this.byKey.set(target.keyId, (this.byKey.get(target.keyId) ?? 0) + 1);
      this.resealed++;
      return resealed;
    });
  }

  summary(): CopiedSecrets {
    const keyIds = [...this.byKey.keys()].sort();
    const inFile = this.keyFile && keyIds.length > 0 ? readKeyFile(this.keyFile) : null;
    return {
      sealed: [...this.byKey.values()].reduce((sum, n) => sum + n, 0),
      resealed: this.resealed,
      keyIds,
      keyFile: inFile && keyIds.includes(inFile.keyId) ? this.keyFile : null,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Values as COPY text: one row per line, fields separated by tabs, `\N` for null, backslashes,
// tabs and line breaks in values escaped.

const NULL_FIELD = '\\N';
/** `\x` before a bytea's hex digits, its backslash escaped, as it stands in an SQL literal. */
const SQL_BYTES_PREFIX = '\\\\x';
/** A GLOB matching text with a character COPY text or storedText must escape (NUL is looked for apart: it ends a GLOB's text). */
const ESCAPED_CHARS_GLOB = '*[\\\t\n\r\u0001]*';
const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIAL_ALL = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

function copyText(text: string): string {
  const stored = storedText(text);
  return COPY_SPECIAL.test(stored) ? stored.replace(COPY_SPECIAL_ALL, (c) => COPY_ESCAPES[c] ?? c) : stored;
}

/** bytea in COPY text: its hex form `\x...`, with the backslash escaped. */
function copyBytes(bytes: Buffer): string {
  return '\\\\x' + bytes.toString('hex');
}

/**
 * Which values going into `column` (quoted `c`) SQLite spells itself in COPY text, exactly as
 * `encoderFor` would, and how: NULL, integers, BLOBs into bytea, text with nothing to escape and no
 * sealed value.
 */
function spelledBySqlite(c: string, column: TargetColumn): { plain: string; spelled: string } {
  switch (column.type) {
    case 'boolean':
      return { plain: `typeof(${c}) IN ('null', 'integer')`, spelled: `CASE WHEN ${c} IS NULL THEN '${NULL_FIELD}' WHEN ${c} <> 0 THEN 't' ELSE 'f' END` };
    case 'bytea':
      return { plain: `typeof(${c}) IN ('null', 'blob')`, spelled: `CASE WHEN ${c} IS NULL THEN '${NULL_FIELD}' ELSE '${SQL_BYTES_PREFIX}' || lower(hex(${c})) END` };
    default:
      return {
        // Text holding a sealed value goes through SealedValues.
        plain: `typeof(${c}) IN ('null', 'integer') OR (typeof(${c}) = 'text' AND NOT ${c} GLOB '${ESCAPED_CHARS_GLOB}' AND instr(CAST(${c} AS BLOB), x'00') = 0 AND instr(${c}, '${SEALED_PREFIX}') = 0)`,
        spelled: `CASE WHEN ${c} IS NULL THEN '${NULL_FIELD}' ELSE CAST(${c} AS TEXT) END`,
      };
  }
}

/** The encoder of a value going into `column`, by the column's PostgreSQL type. */
function encoderFor(column: TargetColumn, table: string, secrets: SealedValues): (value: SqliteValue) => string {
  const refuse = (value: SqliteValue): never => {
    throw new LockstepError(
      ErrorCode.Store,
      `cannot copy ${table}.${column.name}: a ${Buffer.isBuffer(value) ? 'BLOB' : typeof value} of the embedded store does not fit PostgreSQL's ${column.type}`,
    );
  };
  switch (column.type) {
    case 'boolean':
      return (value) => {
        if (value === null) return NULL_FIELD;
        if (typeof value === 'number' || typeof value === 'bigint') return value ? 't' : 'f';
        return typeof value === 'string' ? copyText(value) : refuse(value);
      };
    case 'bytea':
      return (value) => {
        if (value === null) return NULL_FIELD;
        if (Buffer.isBuffer(value)) return copyBytes(value);
        return typeof value === 'string' ? copyBytes(Buffer.from(value, 'utf8')) : refuse(value);
      };
    default:
      // Text, numbers and anything PostgreSQL parses from text (json, timestamps as SQLite wrote them).
      return (value) => {
        if (value === null) return NULL_FIELD;
        if (typeof value === 'string') return copyText(secrets.copy(value));
        if (typeof value === 'number' || typeof value === 'bigint') return String(value);
        return refuse(value);
      };
  }
}

/** A snapshot hash as the target's `hash` (bytes) and `hash_text` (any other text); see SPLIT_COLUMNS. */
function snapshotHash(value: SqliteValue): string {
  if (Buffer.isBuffer(value)) return `${copyBytes(value)}\t${NULL_FIELD}`;
  const text = value === null ? '' : String(value);
  // The PostgreSQL store's own rule for text hashes: lowercase hex of whole bytes is kept as bytes.
  if (/^(?:[0-9a-f]{2})+$/.test(text)) return `\\\\x${text}\t${NULL_FIELD}`;
  return `${NULL_FIELD}\t${copyText(text)}`;
}

// ---------------------------------------------------------------------------------------------

/** The first few of `items` for a message, e.g. `a, b, c, d, e and 3 more tables`. */
function someOf(items: string[], noun: string): string {
  return items.length > 6 ? `${items.slice(0, 5).join(', ')} and ${items.length - 5} more ${noun}` : items.join(', ');
}

function quoteSqlite(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** SQL list of constant statuses, e.g. `('done', 'failed')`. */
function sqlList(values: readonly string[]): string {
  return `(${values.map(quoteLiteral).join(', ')})`;
}

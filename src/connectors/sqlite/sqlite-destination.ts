import Database from 'better-sqlite3';
import { assertNever, ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type {
  Destination,
  DestinationCapabilities,
  DestinationWriter,
  RowOutcome,
  Value,
  WriteOperation,
  WriteTarget,
} from '../../core/ports.js';
import { beginImmediate, describeKey, errorCode, listNames, quoteIdent } from '../sql.js';
import { base64Bytes, normalizeValue, sameDecimal } from '../values.js';
import type { SqliteConstructor, SqliteDatabase, SqliteStatement } from '../sql.js';

export interface SqliteDestinationOptions {
  /** Path of an existing SQLite file (it is not created: a new file would have no tables). */
  path: string;
  /** Milliseconds to wait for another writer's lock before giving up (default: 5000). */
  busyTimeoutMs?: number;
}

const SqliteDatabaseClass = Database as unknown as SqliteConstructor;

/**
 * Writes to SQLite tables. A batch is one transaction, written in one go; when a row breaks a
 * constraint, the batch is replayed with a savepoint per row, so that row is rejected with SQLite's
 * message and the rest of the batch is committed.
 * Foreign keys are enforced (`PRAGMA foreign_keys = ON`); the file is put in WAL mode.
 */
export class SqliteDestination implements Destination {
  readonly capabilities: DestinationCapabilities = { deletes: true, upsert: true, maxBatchSize: null, recordIds: false };
  readonly path: string;
  private readonly busyTimeoutMs: number;
  private db: SqliteDatabase | null = null;

  constructor(options: SqliteDestinationOptions) {
    this.path = options.path;
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  }

  /** Creates the destination and opens the file, failing with a clear error when it is missing. */
  static async open(options: SqliteDestinationOptions): Promise<SqliteDestination> {
    const destination = new SqliteDestination(options);
    destination.database();
    return destination;
  }

  async prepare(target: WriteTarget): Promise<DestinationWriter> {
    const db = this.database();
    const existing = await this.listFields(target.object);
    const wanted = [...new Set([...target.columns, ...target.keyColumns])];
    const known = new Set(existing.map(foldName));
    // Two of the model's columns that differ only in case are one column to SQLite: the second
    // value written would be lost without a word.
    const byFolded = new Map<string, string>();
    for (const c of wanted) {
      const other = byFolded.get(foldName(c));
      if (other !== undefined) {
        throw new LockstepError(
          ErrorCode.Schema,
          `columns "${other}" and "${c}" of the model are one column "${foldName(c)}" to table "${target.object}" in SQLite destination ${this.path}, which compares column names without regard to case — give one of them another name (AS ...) in the model's query, or map it to another column`,
        );
      }
      byFolded.set(foldName(c), c);
    }
    const missing = wanted.filter((c) => !known.has(foldName(c)));
    if (missing.length > 0) {
      const generated = this.generatedColumns(target.object);
      const computed = missing.flatMap((c) => generated.get(foldName(c)) ?? []);
      if (computed.length > 0) {
        const s = computed.length > 1;
        throw new LockstepError(
          ErrorCode.Schema,
          `column${s ? 's' : ''} ${listNames(computed)} of table "${target.object}" in SQLite destination ${this.path} ${s ? 'are generated columns' : 'is a generated column'} (GENERATED ALWAYS AS): SQLite computes ${s ? 'their' : 'its'} values and refuses any written to ${s ? 'them' : 'it'} — leave ${s ? 'them' : 'it'} out of the model's query, or map the model's fields to other columns`,
        );
      }
      throw new LockstepError(
        ErrorCode.Schema,
        `table "${target.object}" in SQLite destination ${this.path} has no column${missing.length > 1 ? 's' : ''} ${listNames(missing)} (it has: ${listNames(existing)}) — add the column${missing.length > 1 ? 's' : ''} to the table, or map the model's fields to existing columns`,
      );
    }
    return new SqliteWriter(db, this.path, target, this.busyTimeoutMs, this.blobColumns(target.object), this.numberColumns(target.object));
  }

  /**
   * The columns of `object` whose type affinity makes SQLite store number text as a number
   * (INTEGER, REAL and NUMERIC: `decimal(38,10)`, `boolean`, `datetime`, and ANY outside a STRICT
   * table), by name, with their declared type.
   */
  private numberColumns(object: string): ReadonlyMap<string, string> {
    const db = this.database();
    const columns = db.prepare('select name, type from pragma_table_info(?)').all(object) as Array<{ name: string; type: string }>;
    const strict = (db.prepare('select strict from pragma_table_list where name = ?').all(object)[0] as { strict: number } | undefined)?.strict === 1;
    return new Map(columns.filter((c) => numberAffinity(c.type, strict)).map((c) => [foldName(c.name), c.type]));
  }

  /** The generated columns of `object` (which table_info leaves out), by folded name. */
  private generatedColumns(object: string): ReadonlyMap<string, string> {
    // hidden: 2 for a VIRTUAL generated column, 3 for a STORED one (1 is a virtual table's hidden column).
    const columns = this.database().prepare('select name from pragma_table_xinfo(?) where hidden in (2, 3)').all(object) as Array<{ name: string }>;
    return new Map(columns.map((c) => [foldName(c.name), c.name]));
  }

  /** The columns of `object` declared BLOB (any type naming it), which take binary values as their bytes, by folded name. */
  private blobColumns(object: string): ReadonlySet<string> {
    const columns = this.database().prepare('select name, type from pragma_table_info(?)').all(object) as Array<{ name: string; type: string }>;
    return new Set(columns.filter((c) => /blob/i.test(c.type)).map((c) => foldName(c.name)));
  }

  async listObjects(): Promise<string[]> {
    return (
      this.database()
        .prepare("select name from sqlite_schema where type in ('table', 'view') and name not like 'sqlite\\_%' escape '\\' order by name")
        .all() as Array<{ name: string }>
    ).map((r) => r.name);
  }

  async listFields(object: string): Promise<string[]> {
    const columns = (this.database().prepare('select name from pragma_table_info(?)').all(object) as Array<{ name: string }>).map((r) => r.name);
    if (columns.length === 0) {
      throw new LockstepError(
        ErrorCode.Schema,
        `table "${object}" does not exist in SQLite destination ${this.path} (tables there: ${listNames(await this.listObjects())}) — create the table, or set the sync's object to an existing table`,
      );
    }
    return columns;
  }

  async readRows(target: WriteTarget, keys: Value[][]): Promise<Array<Value[] | null>> {
    await this.listFields(target.object);
    const where = target.keyColumns.map((c) => `${quoteIdent(c)} = ?`).join(' and ');
    const statement = this.database().prepare(`select ${target.columns.map(quoteIdent).join(', ')} from ${quoteIdent(target.object)} where ${where} limit 1`);
    const blobs = this.blobColumns(target.object);
    const blobKeys = target.keyColumns.map((c) => blobs.has(foldName(c)));
    return keys.map((key) => {
      const row = statement.raw(true).all(...key.map((v, i) => bindable(v, blobKeys[i] === true)))[0] as unknown[] | undefined;
      return row ? row.map(normalizeValue) : null;
    });
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
  }

  private database(): SqliteDatabase {
    if (this.db) return this.db;
    let db: SqliteDatabase;
    try {
      db = new SqliteDatabaseClass(this.path, { fileMustExist: true, timeout: this.busyTimeoutMs });
    } catch (thrown) {
      const error = toError(thrown);
      throw new LockstepError(
        ErrorCode.Connection,
        /does not exist|unable to open/i.test(error.message)
          ? `SQLite destination file not found at ${this.path} — check the destination's path (relative paths are resolved against the workspace folder) and create the database with its tables first`
          : `cannot open SQLite destination file ${this.path}: ${error.message} — check that it is a SQLite database and writable`,
        { cause: error },
      );
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(this.busyTimeoutMs))}`);
    } catch (thrown) {
      db.close();
      const error = toError(thrown);
      throw new LockstepError(ErrorCode.Connection, `cannot use SQLite destination file ${this.path}: ${error.message} — check that it is a SQLite database and writable`, {
        cause: error,
      });
    }
    this.db = db;
    return db;
  }
}

/** A column's name as SQLite compares names: `Name` is the column `name` (SQLite folds only ASCII letters). */
function foldName(name: string): string {
  return name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/**
 * A value as SQLite binds it. SQLite binds no booleans: true/false become 1/0, as SQLite itself
 * stores them. An integer goes as one (a bigint): the driver binds every number as a double,
 * which a column without a type keeps as 1.0 and a TEXT column as the text `1.0`. Into a `blob`
 * column, binary values (base64 text, as sources give them) go as their bytes, which a BLOB read
 * back from SQLite reads as again.
 */
function bindable(value: Value | undefined, blob: boolean): string | number | bigint | Buffer | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'boolean') return value ? 1n : 0n;
  // A whole number as an integer (the driver binds a number as a double); -0 stays a double.
  if (typeof value === 'number') return Number.isSafeInteger(value) && !Object.is(value, -0) ? BigInt(value) : value;
  return (blob && base64Bytes(value)) || value;
}

/**
 * Whether a column of declared type `type` has a number affinity (SQLite's rules, in their order:
 * INT, then CHAR/CLOB/TEXT, then BLOB or no type, then REAL/FLOA/DOUB, then anything else NUMERIC).
 */
function numberAffinity(type: string, strict: boolean): boolean {
  const t = type.toUpperCase();
  if (t.includes('INT')) return true;
  if (/CHAR|CLOB|TEXT|BLOB/.test(t) || t.trim() === '') return false;
  return !(strict && t.trim() === 'ANY');
}

/** Text SQLite stores as a number in a column of a number affinity. */
const NUMBER_TEXT = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
const INTEGER_TEXT = /^\s*[+-]?\d+\s*$/;
const INT64_RANGE = [-(1n << 63n), (1n << 63n) - 1n] as const;

/**
 * Why text `value` cannot go into column `column` (declared `type`, of a number affinity): SQLite
 * stores number text there as an integer when it is one within 64 bits, otherwise as a double, which
 * for an integer beyond 2^53 or beyond 64 bits, or a decimal of more than 15 to 17 digits, is
 * another number (`18446744073709551615` becomes 18446744073709552000). Null when the number
 * stored is the value's (`12.30` as 12.3), or SQLite keeps it as text.
 */
function lostAsNumber(column: string, type: string, value: Value | undefined): string | null {
  if (typeof value !== 'string' || !NUMBER_TEXT.test(value)) return null;
  const text = value.trim().replace(/^\+/, '');
  // INTEGER and NUMERIC keep an integer of 64 bits as one; REAL makes every number a double.
  const realAffinity = !/INT/i.test(type) && /REAL|FLOA|DOUB/i.test(type);
  if (!realAffinity && INTEGER_TEXT.test(text)) {
    const n = BigInt(text);
    if (n >= INT64_RANGE[0] && n <= INT64_RANGE[1]) return null;
  }
  const stored = Number(text);
  if (sameDecimal(text, String(stored))) return null;
  return `column "${column}" is ${type} in SQLite, whose number affinity stores ${text} as the double ${stored} — declare the column TEXT (or without a type) to keep the value exactly`;
}

/** A commit refused by a deferred foreign key (the transaction stays open). */
const DEFERRED_REFUSED = 'SQLITE_CONSTRAINT_FOREIGNKEY';

/** Error codes that mean "this row", not "this database". */
function isRowError(code: string): boolean {
  return code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_MISMATCH' || code === 'SQLITE_TOOBIG' || code === 'SQLITE_RANGE';
}

type Kind = WriteOperation['kind'];

class SqliteWriter implements DestinationWriter {
  private readonly statements = new Map<Kind, SqliteStatement>();
  private readonly table: string;
  /** Per written column, and per key column, whether it is declared BLOB (see bindable). */
  private readonly blobs: boolean[];
  private readonly blobKeys: boolean[];
  /** Per written column, its declared type when it has a number affinity (see lostAsNumber). */
  private readonly numberTypes: Array<string | null>;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly path: string,
    private readonly target: WriteTarget,
    private readonly busyTimeoutMs: number,
    blobs: ReadonlySet<string>,
    numbers: ReadonlyMap<string, string>,
  ) {
    this.table = quoteIdent(target.object);
    this.blobs = target.columns.map((c) => blobs.has(foldName(c)));
    this.blobKeys = target.keyColumns.map((c) => blobs.has(foldName(c)));
    this.numberTypes = target.columns.map((c) => numbers.get(foldName(c)) ?? null);
  }

  async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
    if (batch.length === 0) return [];
    const { db } = this;
    // Prepared before the transaction: a statement SQLite refuses is a schema problem, not a row's.
    for (const op of batch) this.statement(op.kind);
    try {
      return this.writeCommitted(batch);
    } catch (thrown) {
      if (db.inTransaction) db.exec('rollback');
      throw this.batchError(thrown);
    }
  }

  /**
   * `batch` in a transaction of its own. A deferred foreign key is checked only at the commit,
   * which then refuses the whole transaction: the batch is written again in halves, each committed
   * alone, down to the rows that break it, which are rejected.
   */
  private writeCommitted(batch: WriteOperation[]): RowOutcome[] {
    const { db } = this;
    beginImmediate(db, this.busyTimeoutMs);
    const outcomes = this.writeAll(batch) ?? batch.map((op) => this.writeRow(op));
    try {
      db.exec('commit');
      return outcomes;
    } catch (thrown) {
      if (errorCode(thrown) !== DEFERRED_REFUSED || !db.inTransaction) throw thrown;
      db.exec('rollback');
      if (batch.length === 1) return [{ ok: false, reason: `${toError(thrown).message} (at the commit: the row breaks a deferred foreign key)` }];
      const half = Math.ceil(batch.length / 2);
      return [...this.writeCommitted(batch.slice(0, half)), ...this.writeCommitted(batch.slice(half))];
    }
  }

  /**
   * The batch in one go under a savepoint (one statement per row, nothing else), or null when a row
   * broke a rule: then the batch is rolled back to the savepoint and replayed row by row, each under
   * its own savepoint, so exactly the offending rows are rejected.
   */
  private writeAll(batch: WriteOperation[]): RowOutcome[] | null {
    const { db } = this;
    db.exec('savepoint lockstep_batch');
    try {
      const outcomes = batch.map((op) => this.apply(op));
      db.exec('release lockstep_batch');
      return outcomes;
    } catch (thrown) {
      db.exec('rollback to lockstep_batch');
      db.exec('release lockstep_batch');
      if (isRowError(errorCode(thrown) ?? '')) return null;
      throw thrown;
    }
  }

  private writeRow(op: WriteOperation): RowOutcome {
    const { db } = this;
    db.exec('savepoint lockstep_row');
    try {
      const outcome = this.apply(op);
      db.exec('release lockstep_row');
      return outcome;
    } catch (thrown) {
      db.exec('rollback to lockstep_row');
      db.exec('release lockstep_row');
      if (isRowError(errorCode(thrown) ?? '')) return { ok: false, reason: toError(thrown).message };
      throw thrown;
    }
  }

  /** Runs one row's statement; throws what SQLite throws. */
  private apply(op: WriteOperation): RowOutcome {
    const { keyColumns, columns } = this.target;
    if (op.kind !== 'delete') {
      for (let c = 0; c < columns.length; c++) {
        const type = this.numberTypes[c];
        const lost = type == null ? null : lostAsNumber(columns[c] as string, type, op.values[c]);
        if (lost) return { ok: false, reason: lost };
      }
    }
    const statement = this.statement(op.kind);
    let changes: number;
    const value = (i: number) => bindable(op.values[i], this.blobs[i] === true);
    const key = () => keyColumns.map((_, i) => bindable(op.key[i], this.blobKeys[i] === true));
    switch (op.kind) {
      case 'insert':
      case 'upsert':
        changes = statement.run(...columns.map((_, i) => value(i))).changes;
        break;
      case 'update': {
        const nonKey = this.nonKeyIndexes();
        const assigned = nonKey.length > 0 ? nonKey.map(value) : key();
        changes = statement.run(...assigned, ...key()).changes;
        break;
      }
      case 'delete':
        changes = statement.run(...key()).changes;
        break;
      default:
        return assertNever(op.kind);
    }
    if (op.kind === 'update' && changes === 0) {
      return { ok: false, reason: `no row with ${describeKey(keyColumns, op.key)} in "${this.target.object}"` };
    }
    return { ok: true };
  }

  private nonKeyIndexes(): number[] {
    const { columns, keyColumns } = this.target;
    return columns.flatMap((c, i) => (keyColumns.includes(c) ? [] : [i]));
  }

  /** The statement for one kind, prepared once: identifiers quoted, every value a parameter. */
  private statement(kind: Kind): SqliteStatement {
    const cached = this.statements.get(kind);
    if (cached) return cached;
    const { columns, keyColumns } = this.target;
    const columnList = columns.map(quoteIdent).join(', ');
    const placeholders = columns.map(() => '?').join(', ');
    const where = keyColumns.map((k) => `${quoteIdent(k)} = ?`).join(' and ');
    const nonKey = columns.filter((c) => !keyColumns.includes(c));
    let text: string;
    switch (kind) {
      case 'insert':
        text = `insert into ${this.table} (${columnList}) values (${placeholders})`;
        break;
      case 'upsert': {
        const action =
          nonKey.length === 0
            ? 'do nothing'
            : `do update set ${nonKey.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(', ')}`;
        text = `insert into ${this.table} (${columnList}) values (${placeholders}) on conflict (${keyColumns.map(quoteIdent).join(', ')}) ${action}`;
        break;
      }
      case 'update': {
        const assigned = nonKey.length > 0 ? nonKey : keyColumns;
        text = `update ${this.table} set ${assigned.map((c) => `${quoteIdent(c)} = ?`).join(', ')} where ${where}`;
        break;
      }
      case 'delete':
        text = `delete from ${this.table} where ${where}`;
        break;
      default:
        return assertNever(kind);
    }
    let statement: SqliteStatement;
    try {
      statement = this.db.prepare(text);
    } catch (thrown) {
      const error = toError(thrown);
      if (kind === 'upsert' && /ON CONFLICT clause does not match/i.test(error.message)) {
        throw new LockstepError(
          ErrorCode.Schema,
          `cannot upsert into "${this.target.object}" in SQLite destination ${this.path}: the key column${keyColumns.length > 1 ? 's' : ''} ${listNames(keyColumns)} ha${keyColumns.length > 1 ? 've' : 's'} no unique constraint — add a primary key or unique index on them, e.g. create unique index ... on ${this.table} (${keyColumns.map(quoteIdent).join(', ')})`,
          { cause: error },
        );
      }
      throw new LockstepError(
        ErrorCode.Schema,
        `cannot write to "${this.target.object}" in SQLite destination ${this.path}: ${error.message} — check that the table matches what the sync writes`,
        { cause: error },
      );
    }
    this.statements.set(kind, statement);
    return statement;
  }

  private batchError(thrown: unknown): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const code = errorCode(error) ?? '';
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      return new LockstepError(
        ErrorCode.Transient,
        `SQLite destination ${this.path} is locked by another writer: ${error.message} — the batch will be retried`,
        { cause: error },
      );
    }
    return new LockstepError(
      ErrorCode.Connection,
      `cannot write to SQLite destination ${this.path}: ${error.message} — check that the file is writable and not damaged`,
      { cause: error },
    );
  }
}

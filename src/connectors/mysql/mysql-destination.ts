import { Readable } from 'node:stream';
import { assertNever, ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type {
  Destination,
  DestinationCapabilities,
  DestinationWriter,
  EncodedLine,
  RowOutcome,
  Value,
  WriteOperation,
  WriteTarget,
} from '../../core/ports.js';
import { COPY_TEXT_FORMAT, copyLine, INTEGER_OIDS, parseCopyField, type TextParser } from '../copy-text.js';
import { describeKey, listNames } from '../sql.js';
import { base64Bytes, decimalPlaces, normalizeBigInt, normalizeValue, timestampTextToIso } from '../values.js';
import {
  bigintParameter,
  classifyMysqlError,
  createMysqlPool,
  describeMysqlUrl,
  MysqlFailure,
  mysqlConnectionHint,
  mysqlErrno,
  mysqlRowMessage,
  quoteMysqlIdent,
  sessionConnection,
  type MysqlCoreConnection,
  type MysqlPool,
  type MysqlPoolConnection,
  type MysqlResultHeader,
  type MysqlTimeouts,
  stalledError,
  withDeadline,
} from './mysql-client.js';

export interface MysqlDestinationOptions {
  /** `mysql://user:password@host:port/database` (or `mariadb://`); may carry mysql2 options as `?name=value`. */
  url: string;
  /** Connections kept open to the destination (default: 4). */
  maxConnections?: number;
  /** How long to wait for the server (default: 10 s to connect, 2 min for a batch's statements). */
  timeouts?: Partial<MysqlTimeouts>;
}

/** A destination column as information_schema describes it. */
interface ColumnInfo {
  name: string;
  /** `int`, `varchar`, `datetime`, ... */
  dataType: string;
  /** The full type, e.g. `int(10) unsigned`. */
  columnType: string;
  charset: string | null;
  collation: string | null;
  precision: number | null;
  scale: number | null;
  /** A generated column's expression (MySQL computes its values and refuses any written to it), else null. */
  generatedAs: string | null;
  /** The column takes NULL. */
  nullable: boolean;
}

/** A destination table as information_schema describes it. */
interface TableInfo {
  database: string;
  name: string;
  /** By lower-cased name: MySQL's column names are case-insensitive. */
  columns: Map<string, ColumnInfo>;
  /** The column sets (lower-cased) of the table's unique indexes, the primary key included. */
  uniqueKeys: string[][];
  /** The server's max_allowed_packet: no statement may be larger. */
  maxPacketBytes: number;
  /** The session's account as GRANT names it (`'crm'@'%'`), for messages. */
  account: string;
  /** The table held no row when the sync started writing (a first sync). */
  empty: boolean;
}

/**
 * Writes to MySQL and MariaDB tables. A batch is one transaction (READ COMMITTED, strict SQL mode,
 * UTC), written a few statements at a time: multi-row INSERTs, INSERT ... ON DUPLICATE KEY UPDATE
 * for upserts, one UPDATE joined to the batch's rows for updates, one DELETE ... IN for deletes,
 * each of at most 1,000 rows, every value a parameter of a prepared statement.
 *
 * Inserts, and upserts into a table that was empty when the sync started (until one meets a row
 * that exists), are loaded in bulk with LOAD DATA LOCAL INFILE, the rows streamed from memory in
 * tab-separated text (the server never reads a file of ours, and mysql2 hands it nothing else). A
 * LOCAL load does not fail on a bad row: it skips the row, or stores a default, with a warning. So a
 * load that raised any warning, or wrote fewer rows than it was sent, is rolled back and its rows
 * written with statements, which fail on the bad rows as described next. A server that refuses
 * LOCAL loads (MySQL 8's default `local_infile = OFF`) gets statements only. Rows read from
 * PostgreSQL as COPY text are loaded as the lines they came as, without being turned into values,
 * when every column's text reads the same in MySQL (see `lineField`).
 *
 * Each statement runs under a savepoint. When a row breaks a rule (foreign key, NOT NULL, CHECK,
 * unique, a value the column cannot take) the statement is rolled back to it and its rows are
 * halved, down to single rows, so exactly the offending rows are rejected, with the server's
 * message, and the rest of the batch is committed. Deadlocks, lock wait timeouts and dropped
 * connections fail the batch as transient, so it is retried. (This needs transactional tables,
 * InnoDB: a MyISAM table keeps the rows a failed statement wrote before the bad one.)
 */
export class MysqlDestination implements Destination {
  readonly capabilities: DestinationCapabilities = { deletes: true, upsert: true, maxBatchSize: null, recordIds: false };
  readonly where: string;
  private readonly pool: MysqlPool;
  /** Connections whose session is set up. */
  private readonly ready = new WeakSet<MysqlCoreConnection>();
  readonly timeouts: MysqlTimeouts;

  constructor(options: MysqlDestinationOptions) {
    this.where = describeMysqlUrl(options.url);
    this.timeouts = { connectMs: 10_000, statementMs: 2 * 60_000, ...options.timeouts };
    this.pool = createMysqlPool(options.url, options.maxConnections ?? 4, this.timeouts.connectMs);
  }

  /** Waits for `work` on `connection` as long as the write timeout allows, and until `signal` aborts; past either the connection is closed. */
  deadline<T>(connection: MysqlPoolConnection, what: string, work: Promise<T>, signal?: AbortSignal): Promise<T> {
    const ms = this.timeouts.statementMs;
    return withDeadline(connection, ms, () => stalledError(`${what} in destination ${this.where}`, ms, 'writeTimeoutMinutes'), work, signal);
  }

  /** Creates the destination and checks that the server answers with these credentials. */
  static async connect(options: MysqlDestinationOptions): Promise<MysqlDestination> {
    const destination = new MysqlDestination(options);
    try {
      (await destination.connection()).release();
    } catch (error) {
      await destination.close();
      throw error;
    }
    return destination;
  }

  async prepare(target: WriteTarget): Promise<DestinationWriter> {
    const connection = await this.connection();
    try {
      const table = await this.requireTable(connection, target.object);
      const wanted = [...new Set([...target.columns, ...target.keyColumns])];
      const missing = wanted.filter((c) => !table.columns.has(c.toLowerCase()));
      if (missing.length > 0) {
        const s = missing.length > 1 ? 's' : '';
        throw new LockstepError(
          ErrorCode.Schema,
          `table "${target.object}" in destination ${this.where} has no column${s} ${listNames(missing)} (it has: ${listNames([...table.columns.values()].map((c) => c.name))}) — add the column${s} to the table, or map the model's fields to existing columns`,
        );
      }
      const generated = wanted.map((c) => table.columns.get(c.toLowerCase()) as ColumnInfo).filter((c) => c.generatedAs !== null);
      if (generated.length > 0) {
        const s = generated.length > 1 ? 's' : '';
        const which = generated.map((c) => `"${c.name}" (as ${c.generatedAs})`).join(', ');
        throw new LockstepError(
          ErrorCode.Schema,
          `column${s} ${which} of table "${target.object}" in destination ${this.where} ${s ? 'are generated columns' : 'is a generated column'}: MySQL computes ${s ? 'their' : 'its'} values and refuses any written to ${s ? 'them' : 'it'} — leave ${s ? 'them' : 'it'} out of the model's query, or map the model's fields to other columns`,
        );
      }
      return new MysqlWriter(this, table, target);
    } finally {
      connection.release();
    }
  }

  async listObjects(): Promise<string[]> {
    const connection = await this.connection();
    try {
      return await this.tableNames(connection, 1000);
    } finally {
      connection.release();
    }
  }

  async listFields(object: string): Promise<string[]> {
    const connection = await this.connection();
    try {
      return [...(await this.requireTable(connection, object)).columns.values()].map((c) => c.name);
    } finally {
      connection.release();
    }
  }

  async readRows(target: WriteTarget, keys: Value[][]): Promise<Array<Value[] | null>> {
    const connection = await this.connection();
    try {
      const table = await this.requireTable(connection, target.object);
      const where = target.keyColumns.map((c) => `${quoteMysqlIdent(c)} = ?`).join(' and ');
      const text = `select ${target.columns.map((c, i) => `${quoteMysqlIdent(c)} as c${i}`).join(', ')} from ${quoteMysqlIdent(table.database)}.${quoteMysqlIdent(table.name)} where ${where} limit 1`;
      const rows: Array<Value[] | null> = [];
      for (const key of keys) {
        const [found] = await connection.execute<Array<Record<string, unknown>>>(text, key);
        const row = found[0];
        rows.push(row ? target.columns.map((_, i) => normalizeValue(row[`c${i}`])) : null);
      }
      return rows;
    } finally {
      connection.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  /** The tables of the URL's database. */
  private async tableNames(connection: MysqlPoolConnection, limit: number): Promise<string[]> {
    const [rows] = await connection.execute<Array<{ name: string }>>(
      `select table_name as name from information_schema.tables where table_schema = database() order by table_name limit ${Math.floor(limit)}`,
      [],
    );
    return rows.map((r) => r.name);
  }

  private async requireTable(connection: MysqlPoolConnection, object: string): Promise<TableInfo> {
    const table = await this.findTable(connection, object);
    if (table) return table;
    const tables = await this.tableNames(connection, 50);
    const [[current]] = await connection.execute<Array<{ db: string | null }>>('select database() as db', []);
    const hint =
      current?.db == null
        ? "the connection URL names no database — add it (mysql://user:password@host:3306/crm), or write the sync's object as database.table"
        : "create the table, or set the sync's object to an existing table (use database.table for a table in another database)";
    throw new LockstepError(ErrorCode.Schema, `table "${object}" does not exist in destination ${this.where} (tables there: ${listNames(tables)}) — ${hint}`);
  }

  /** A pooled connection with its session set up, or a LockstepError saying why there is none. */
  async connection(): Promise<MysqlPoolConnection> {
    return sessionConnection(
      this.pool,
      this.ready,
      `destination ${this.where}`,
      async (connection) => {
        // Strict mode, so a value a column cannot hold is an error rather than a silent default (a NULL
        // in a NOT NULL column would become '' or 0); UTC, so TIMESTAMPs store the instants sent;
        // READ COMMITTED, so checking which keys exist takes no gap locks another batch could wait on;
        // autocommit, so a pooled connection that looked at a table holds no lock on it (an ALTER TABLE
        // would wait on it), whatever the server's default; NO_AUTO_VALUE_ON_ZERO, so a row whose key is 0
        // is stored under 0 in an AUTO_INCREMENT key column, not under the next number (every later upsert
        // of it would then add another row).
        await connection.query(
          "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES', 'NO_AUTO_VALUE_ON_ZERO'), time_zone = '+00:00', autocommit = 1",
        );
        await connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
      },
      (thrown) => {
        const error = toError(thrown);
        return new LockstepError(ErrorCode.Connection, `cannot set up a session on destination ${this.where}: ${error.message} — ${mysqlConnectionHint(error)}`, {
          cause: error,
        });
      },
      this.timeouts,
    );
  }

  private async findTable(connection: MysqlPoolConnection, object: string): Promise<TableInfo | null> {
    // The object as one name in the URL's database first (a table may have a dot in its name), then as database.table.
    const dot = object.indexOf('.');
    const candidates: Array<[string | null, string]> = [[null, object]];
    if (dot > 0) candidates.push([object.slice(0, dot), object.slice(dot + 1)]);
    for (const [database, name] of candidates) {
      const [found] = await connection.execute<Array<{ db: string; name: string }>>(
        `select table_schema as db, table_name as name from information_schema.tables
          where table_schema = coalesce(?, database()) and table_name = ? limit 1`,
        [database, name],
      );
      const table = found[0];
      if (!table) continue;
      const [columns] = await connection.execute<
        Array<{
          name: string;
          dataType: string;
          columnType: string;
          charset: string | null;
          collation: string | null;
          numPrecision: unknown;
          numScale: unknown;
          extra: string | null;
          expression: string | null;
          nullable: string;
        }>
      >(
        `select column_name as name, data_type as dataType, column_type as columnType, character_set_name as charset,
                collation_name as collation, numeric_precision as numPrecision, numeric_scale as numScale,
                extra, generation_expression as expression, is_nullable as nullable
           from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position`,
        [table.db, table.name],
      );
      const [unique] = await connection.execute<Array<{ indexName: string; name: string }>>(
        `select index_name as indexName, column_name as name from information_schema.statistics
          where table_schema = ? and table_name = ? and non_unique = 0 order by index_name, seq_in_index`,
        [table.db, table.name],
      );
      const [[packet]] = await connection.execute<Array<{ bytes: unknown; user: string | null }>>('select @@max_allowed_packet as bytes, current_user() as user', []);
      const qualified = `${quoteMysqlIdent(table.db)}.${quoteMysqlIdent(table.name)}`;
      const account = accountOf(packet?.user);
      let someRow: unknown[];
      try {
        [someRow] = await connection.execute<unknown[]>(`select 1 from ${qualified} limit 1`, []);
      } catch (thrown) {
        if (mysqlErrno(thrown) !== TABLE_ACCESS_DENIED) throw thrown;
        // Every write reads the table (which keys exist, whether it is empty): SELECT is needed whatever the mode.
        throw new LockstepError(
          ErrorCode.Schema,
          `table "${object}" in destination ${this.where} cannot be read: ${toError(thrown).message} — grant the destination's user what the sync does: GRANT SELECT, INSERT, UPDATE ON ${qualified} TO ${account} (and DELETE when the sync deletes rows)`,
          { cause: thrown },
        );
      }
      const byIndex = new Map<string, string[]>();
      for (const row of unique) byIndex.set(row.indexName, [...(byIndex.get(row.indexName) ?? []), row.name.toLowerCase()]);
      return {
        database: table.db,
        name: table.name,
        columns: new Map(
          columns.map((c) => [
            c.name.toLowerCase(),
            {
              name: c.name,
              dataType: String(c.dataType).toLowerCase(),
              columnType: String(c.columnType).toLowerCase(),
              charset: c.charset,
              collation: c.collation,
              precision: c.numPrecision == null ? null : Number(c.numPrecision),
              scale: c.numScale == null ? null : Number(c.numScale),
              // MySQL says VIRTUAL or STORED GENERATED (and DEFAULT_GENERATED of a default expression, which takes writes); MariaDB also PERSISTENT.
              generatedAs: GENERATED_EXTRA.test(c.extra ?? '') ? String(c.expression ?? '').trim() || 'an expression' : null,
              nullable: c.nullable === 'YES',
            },
          ]),
        ),
        uniqueKeys: [...byIndex.values()],
        maxPacketBytes: Number(packet?.bytes ?? 4 * 1024 * 1024),
        account,
        empty: someRow.length === 0,
      };
    }
    return null;
  }
}

type Kind = WriteOperation['kind'];

/** One operation of a batch with its position there. */
interface Indexed {
  op: WriteOperation;
  index: number;
}

/** Rows per statement at most; MySQL also takes 65,535 parameters per statement at most. */
const ROWS_PER_STATEMENT = 1000;
const MAX_PARAMETERS = 65_535;
/** A statement's values take this many bytes at most (less when the server's max_allowed_packet is small). */
const STATEMENT_BYTES = 8 * 1024 * 1024;
/** Parts of a failing statement at most this long are replayed row by row rather than halved. */
const ROW_BY_ROW_BELOW = 8;
/** Rows per LOAD DATA at most: a load that meets a bad row is written again as statements. */
const LOAD_ROWS = 10_000;
/** Bytes of load data per packet at most (a packet holds 16 MB at most, and less than max_allowed_packet). */
const LOAD_CHUNK_BYTES = 1024 * 1024;

const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
const BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);
/** ER_LOCK_WAIT_TIMEOUT: the batch waited too long on rows another session holds. */
const LOCK_WAIT_TIMEOUT = 1205;
/** ER_LOCK_DEADLOCK: the batch and another session each waited on rows the other held; the server rolled the batch back. */
const LOCK_DEADLOCK = 1213;

/** `name@host`, as CURRENT_USER() answers, as GRANT spells an account: 'name'@'host'. */
function accountOf(user: string | null | undefined): string {
  return (user ?? '').replace(/^(.*)@([^@]*)$/, (_all, name: string, host: string) => `'${name}'@'${host}'`) || 'CURRENT_USER';
}

/** ER_TABLEACCESS_DENIED_ERROR and ER_COLUMNACCESS_DENIED_ERROR: the user lacks a privilege on the table (or a column). */
const TABLE_ACCESS_DENIED = 1142;
const COLUMN_ACCESS_DENIED = 1143;
/** `Column 'x' cannot be null` (ER_BAD_NULL_ERROR). */
const NULL_REFUSED = 1048;
/** The privileges each kind of write needs besides SELECT, which every write needs (prepare reads the table). */
const PRIVILEGES_OF: Record<WriteOperation['kind'], string[]> = {
  insert: ['INSERT'],
  upsert: ['INSERT', 'UPDATE'],
  update: ['UPDATE'],
  delete: ['DELETE'],
};
/** information_schema.columns.extra of a generated column: MySQL's VIRTUAL or STORED GENERATED, MariaDB's PERSISTENT too. */
const GENERATED_EXTRA = /\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b/i;
/** A name the server gave (a character set or collation), safe to write into SQL as it is. */
const PLAIN_NAME = /^[A-Za-z0-9_]+$/;

const ISO_TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * An ISO-8601 timestamp (as sources give them: `2024-01-02T03:04:05.000Z`) as MySQL reads a
 * DATETIME, in UTC (`2024-01-02 03:04:05.000`), or its date alone for a DATE column. MySQL refuses
 * the `T` and `Z` forms in strict mode, and MariaDB (and MySQL before 8.0.19) an offset. The date and
 * time may be apart by a space, as SQL prints them and as text in a SQLite file often has them
 * (Python's `str()` of a datetime: `2024-01-02 05:04:05+02:00`). Anything else is left as it is.
 */
export function isoToMysqlTime(value: Value, dateOnly: boolean): Value {
  if (typeof value !== 'string') return value;
  const m = ISO_TIMESTAMP.exec(value);
  if (!m) return value;
  let date = m[1] as string;
  let time = m[2] as string;
  const offset = m[4];
  if (offset && offset !== 'Z' && !/^[+-]00(?::?00)?$/.test(offset)) {
    const digits = offset.slice(1).replace(':', '');
    const ms = Date.parse(`${date}T${time}${offset[0]}${digits.slice(0, 2)}:${digits.slice(2, 4) || '00'}`);
    if (Number.isNaN(ms)) return value;
    const utc = new Date(ms).toISOString();
    date = utc.slice(0, 10);
    time = utc.slice(11, 19);
  }
  if (dateOnly) return date;
  const fraction = (m[3] ?? '').slice(0, 6);
  return fraction ? `${date} ${time}.${fraction}` : `${date} ${time}`;
}

/** A UUID as text (PostgreSQL's uuid, DuckDB's UUID, `UUID()`): 32 hex digits in groups of 8-4-4-4-12. */
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A value for a binary column (BINARY, VARBINARY, BLOB): sources give binary values as base64
 * text, which goes as its bytes (a BINARY(16) id read from MySQL fits again); other values as they are.
 * A column of 16 bytes (`uuidBytes`), where MySQL keeps UUIDs (`UUID_TO_BIN`), takes a UUID's text as
 * its 16 bytes, as UUID_TO_BIN makes them: its text (36 bytes) would never fit.
 */
export function binaryParameter(value: Value, uuidBytes = false): unknown {
  if (uuidBytes && typeof value === 'string' && UUID_TEXT.test(value)) return Buffer.from(value.replace(/-/g, ''), 'hex');
  return base64Bytes(value) ?? value;
}

/** A BINARY(16) or VARBINARY(16) column, from its column_type. */
const SIXTEEN_BYTES = /^(var)?binary\(16\)$/;

/** A BIT column's width, from its column_type (`bit(8)`). */
const BIT_COLUMN = /^bit\((\d+)\)$/;

/**
 * A value for a BIT(width) column as the number it stands for: MySQL would store text (and a
 * bigint parameter) as the bytes of its characters, `5` as 53. Sources give a BIT as a number, as
 * its decimal text beyond 2^53, or as a bit string (PostgreSQL's bit(n): `00000101`), told from
 * decimal text by its length being the column's width (decimal text, only beyond 2^53, is never
 * 54 digits long). A boolean is 1 or 0; anything else stays as it is, for the server to refuse.
 */
export function bitNumber(value: Value, width: number): Value {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value !== 'string') return value;
  if (value.length === width && /^[01]+$/.test(value)) return normalizeBigInt(BigInt(`0b${value}`));
  return /^\d{1,20}$/.test(value) ? normalizeBigInt(BigInt(value)) : value;
}

const SIGNED_MIN = -(1n << 63n);
const SIGNED_MAX = (1n << 63n) - 1n;
const UNSIGNED_MAX = (1n << 64n) - 1n;

/**
 * A key value for an integer column as a BIGINT parameter, so the server compares it as an
 * integer (a string or a double would be compared as a double, and keys beyond 2^53 would blur).
 */
function integerKey(value: Value, unsigned: boolean): unknown {
  let n: bigint;
  if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value);
  else if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) n = BigInt(value);
  else return value;
  if (n > (unsigned ? UNSIGNED_MAX : SIGNED_MAX) || n < (unsigned ? 0n : SIGNED_MIN)) return value;
  return bigintParameter(n, unsigned);
}

/** PostgreSQL type OIDs whose COPY text LOAD DATA may read as it is (see `lineField`). */
const PgType = {
  Name: 19,
  Text: 25,
  Float4: 700,
  Float8: 701,
  Bpchar: 1042,
  Varchar: 1043,
  Date: 1082,
  Timestamp: 1114,
  TimestampTz: 1184,
  Numeric: 1700,
  Uuid: 2950,
} as const;

const PG_TEXT_TYPES: ReadonlySet<number> = new Set([PgType.Name, PgType.Text, PgType.Bpchar, PgType.Varchar, PgType.Uuid]);
const NUMBER_TYPES = new Set(['decimal', 'float', 'double']);
/** Plain text columns (not ENUM or SET, where a number means a member's position). */
const PLAIN_TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);

/** How a field of a COPY text line goes into LOAD DATA: as it is, or (a timestamptz) made UTC without its offset. */
const LineField = {
  AsIs: 'as-is',
  TimestampTz: 'timestamptz',
} as const;
type LineField = (typeof LineField)[keyof typeof LineField];

/**
 * Whether a PostgreSQL column's COPY text, loaded as it is, gives the column the value the values
 * would give it: integers, decimals and floats into number columns; text, integers, decimals and
 * dates into text columns (the same text as the values); dates and timestamps into temporal columns
 * (PostgreSQL prints them as MySQL reads them, in ISO style); a timestamptz once its offset is taken
 * off (made UTC). Booleans (`t`/`f`), JSON (spaced differently), bytes and the rest go as values.
 */
function lineField(oid: number, column: ColumnInfo): LineField | null {
  const type = column.dataType;
  if (INTEGER_OIDS.has(oid)) return INTEGER_TYPES.has(type) || NUMBER_TYPES.has(type) || PLAIN_TEXT_TYPES.has(type) ? LineField.AsIs : null;
  if (PG_TEXT_TYPES.has(oid)) return PLAIN_TEXT_TYPES.has(type) ? LineField.AsIs : null;
  if (oid === PgType.Numeric) return NUMBER_TYPES.has(type) || PLAIN_TEXT_TYPES.has(type) ? LineField.AsIs : null;
  if (oid === PgType.Float4 || oid === PgType.Float8) return NUMBER_TYPES.has(type) ? LineField.AsIs : null;
  if (oid === PgType.Date) return type === 'date' || PLAIN_TEXT_TYPES.has(type) ? LineField.AsIs : null;
  if (oid === PgType.Timestamp) return type === 'datetime' || type === 'timestamp' ? LineField.AsIs : null;
  if (oid === PgType.TimestampTz) return type === 'datetime' || type === 'timestamp' ? LineField.TimestampTz : null;
  return null;
}

const TAB = 0x09;
const BACKSLASH = 0x5c;

class MysqlWriter implements DestinationWriter {
  /**
   * Two batches at once, each on its own connection and in its own transaction: the server writes
   * one while the next is converted and sent. (No two batches of a run touch the same row.)
   */
  readonly concurrentWrites = 2;
  private readonly table: string;
  private readonly statements = new Map<string, string>();
  /** Positions in `target.columns` of the key columns, and of the others. */
  private readonly keyPositions: number[];
  private readonly nonKeyPositions: number[];
  /** Per target column, how a value becomes a parameter; per key column, the same for comparing. */
  private readonly valueParameters: Array<(value: Value) => unknown>;
  private readonly keyParameters: Array<(value: Value) => unknown>;
  /** Per key column, the joined row's value as the table's column compares it (type and collation). */
  private readonly keyExpressions: Array<(ref: string) => string>;
  /**
   * The key columns holding text, with their character sets. Their collation may take two keys
   * that differ (`a`, `A`, `a `: case, accents, trailing spaces) as one, so an upsert or a delete
   * meets a row by its key only when the key's bytes are the same too: a key's twin is never
   * overwritten or deleted in its place. (Mode update finds its row as `where key = ?` does.)
   */
  private readonly textKeys: Array<{ name: string; charset: string }>;
  /** Every text key column is NOT NULL: an upsert meeting a twin sets it to NULL, which fails (see `statement`). */
  private readonly twinsFail: boolean;
  /** A unique index covers exactly the key columns: an upsert can tell an existing row. */
  private readonly keyIsUnique: boolean;
  /** It is the table's only unique index: ON DUPLICATE KEY UPDATE can only ever meet the row with that key. */
  private readonly keyIsOnlyUnique: boolean;
  private readonly statementBytes: number;
  /** Bytes of load data per packet: the server drops the connection on a packet of max_allowed_packet or more. */
  private readonly loadChunkBytes: number;
  /** Inserts and upserts come as PostgreSQL COPY text lines, loaded as they are (see `lineField`). */
  readonly takesLines: boolean;
  /** Per column, whether it holds bytes (BINARY, VARBINARY, BLOB): loaded as hex. */
  private readonly binaryColumns: boolean[];
  /** Per column, its width when it is a BIT column (its values load as numbers, see bitNumber). */
  private readonly bitWidths: Array<number | null>;
  /** Per column, how its field of a line is loaded (null when lines are not taken). */
  private readonly lineFields: LineField[] | null;
  /** Per column, how its field of a line becomes a value when the row goes by statement. */
  private readonly lineParsers: TextParser[];
  /**
   * Per column, the decimal places it holds when it rounds a value with more without an error
   * (MySQL rounds a DECIMAL to its scale with a note, an integer column silently: 1.5 becomes 2),
   * with what to say of it; null for other columns, and for a line's integer field (see `misfit`).
   */
  private readonly roundingColumns: Array<{ places: number; holds: string; wider: (places: number) => string } | null>;
  /** Values decoded from lines, for rows that go by statement. */
  private readonly decoded = new WeakMap<WriteOperation, Value[]>();
  /** LOAD DATA LOCAL INFILE for inserts, until the server refuses it. */
  private loads = true;
  /** Upserts are loaded too: the table was empty, no load has met an existing row, and the key is unique (a second copy fails). */
  private straightLoads: boolean;

  constructor(
    private readonly destination: MysqlDestination,
    private readonly info: TableInfo,
    private readonly target: WriteTarget,
  ) {
    this.table = `${quoteMysqlIdent(info.database)}.${quoteMysqlIdent(info.name)}`;
    const { columns, keyColumns } = target;
    const column = (name: string) => info.columns.get(name.toLowerCase()) as ColumnInfo;
    this.keyPositions = keyColumns.map((k) => columns.indexOf(k));
    this.binaryColumns = columns.map((name) => BINARY_TYPES.has(column(name).dataType));
    this.bitWidths = columns.map((name) => {
      const bits = BIT_COLUMN.exec(column(name).columnType);
      return bits ? Number(bits[1]) : null;
    });
    this.nonKeyPositions = columns.flatMap((c, i) => (keyColumns.includes(c) ? [] : [i]));
    this.valueParameters = columns.map((name, i) => {
      const { dataType } = column(name);
      if (dataType === 'date') return (v) => isoToMysqlTime(v, true);
      if (dataType === 'datetime' || dataType === 'timestamp') return (v) => isoToMysqlTime(v, false);
      // A boolean into text is Lockstep's value (`true`), as in the other destinations, not MySQL's 1.
      if (TEXT_TYPES.has(dataType)) return (v) => (typeof v === 'boolean' ? String(v) : v);
      if (BINARY_TYPES.has(dataType)) {
        const uuidBytes = SIXTEEN_BYTES.test(column(name).columnType);
        return (v) => binaryParameter(v, uuidBytes);
      }
      const width = this.bitWidths[i];
      if (width !== null && width !== undefined) {
        // Beyond 2^53 the number goes as a BIGINT UNSIGNED parameter, never as text.
        return (v) => {
          const n = bitNumber(v, width);
          return typeof n === 'string' && /^\d{16,20}$/.test(n) && BigInt(n) <= UNSIGNED_MAX ? bigintParameter(BigInt(n), true) : n;
        };
      }
      return (v) => v;
    });
    this.keyParameters = keyColumns.map((name, k) => {
      const info = column(name);
      if (INTEGER_TYPES.has(info.dataType)) {
        const unsigned = info.columnType.includes('unsigned');
        return (v) => integerKey(v, unsigned);
      }
      const position = this.keyPositions[k] as number;
      return position >= 0 ? (this.valueParameters[position] as (value: Value) => unknown) : (v) => v;
    });
    this.keyExpressions = keyColumns.map((name) => keyExpression(column(name)));
    this.textKeys = keyColumns.flatMap((name) => {
      const { dataType, charset, name: columnName } = column(name);
      return PLAIN_TEXT_TYPES.has(dataType) && charset && PLAIN_NAME.test(charset) ? [{ name: columnName, charset }] : [];
    });
    this.twinsFail = this.textKeys.every((k) => !column(k.name).nullable);
    const key = keyColumns.map((k) => k.toLowerCase()).sort().join('\u0000');
    const matches = info.uniqueKeys.filter((u) => [...u].sort().join('\u0000') === key);
    this.keyIsUnique = matches.length > 0;
    this.keyIsOnlyUnique = this.keyIsUnique && info.uniqueKeys.length === matches.length;
    this.statementBytes = Math.max(64 * 1024, Math.min(STATEMENT_BYTES, info.maxPacketBytes - 64 * 1024));
    this.loadChunkBytes = Math.max(512, Math.min(LOAD_CHUNK_BYTES, info.maxPacketBytes - 1024));
    this.straightLoads = info.empty && this.keyIsUnique;
    const encoding = target.encoding;
    const fields =
      encoding?.format === COPY_TEXT_FORMAT && encoding.types.length === columns.length
        ? columns.map((name, i) => lineField(encoding.types[i] as number, column(name)))
        : null;
    this.lineFields = fields && fields.every((f) => f !== null) ? (fields as LineField[]) : null;
    this.roundingColumns = columns.map((name, i) => {
      const { dataType, precision, scale } = column(name);
      // A line's integer field is an integer: the common case needs no look at its text.
      if (this.lineFields && INTEGER_OIDS.has(encoding?.types[i] ?? 0)) return null;
      if (INTEGER_TYPES.has(dataType)) return { places: 0, holds: 'integers', wider: (places) => `decimal(${20 + places}, ${places}) (or double)` };
      if (dataType !== 'decimal' || precision === null || scale === null) return null;
      return { places: scale, holds: `${scale} decimal place${scale === 1 ? '' : 's'}`, wider: (places) => `decimal(${precision - scale + places}, ${places})` };
    });
    this.takesLines = this.lineFields !== null;
    const asText: TextParser = (text) => text;
    this.lineParsers = columns.map((_, i) =>
      encoding?.types[i] === PgType.Timestamp || encoding?.types[i] === PgType.TimestampTz ? timestampTextToIso : asText,
    );
  }

  /** An operation's values: its own, or those of its line (as text, which the server converts as it would load it). */
  private valuesOf(op: WriteOperation): readonly Value[] {
    const line = op.line;
    if (!line) return op.values;
    let values = this.decoded.get(op);
    if (!values) {
      values = this.decodeLine(line);
      this.decoded.set(op, values);
    }
    return values;
  }

  private decodeLine({ data, start, end }: EncodedLine): Value[] {
    const width = this.lineParsers.length;
    const last = end - 1; // the line break
    const values = new Array<Value>(width);
    let fieldStart = start;
    for (let c = 0; c < width; c++) {
      let fieldEnd = c === width - 1 ? last : data.indexOf(TAB, fieldStart);
      if (fieldEnd < 0 || fieldEnd > last) fieldEnd = last;
      values[c] = parseCopyField(data.toString('utf8', fieldStart, fieldEnd), this.lineParsers[c] as TextParser);
      fieldStart = fieldEnd + 1;
    }
    return values;
  }

  async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
    if (batch.length === 0) return [];
    const connection = await this.destination.connection();
    let broken = false;
    try {
      const work = async () => {
        try {
          await connection.query('start transaction');
          const outcomes = await this.writeByKind(connection, batch);
          await connection.query('commit');
          return outcomes;
        } catch (thrown) {
          await connection.query('rollback').catch(() => undefined);
          throw thrown;
        }
      };
      return await this.destination.deadline(connection, `writing a batch of ${batch.length} rows to "${this.target.object}"`, work(), this.target.signal);
    } catch (thrown) {
      const error = this.writeError(thrown, batch);
      broken = error.code !== ErrorCode.Schema;
      throw error;
    } finally {
      // A connection that failed mid-transaction is not given back to the pool.
      if (broken) connection.destroy();
      else connection.release();
    }
  }

  /** One kind of operation after the other, in order of first appearance, in statements of bounded size. */
  private async writeByKind(connection: MysqlPoolConnection, batch: WriteOperation[]): Promise<RowOutcome[]> {
    const outcomes: RowOutcome[] = batch.map(() => ({ ok: true }));
    const byKind = new Map<Kind, Indexed[]>();
    batch.forEach((op, index) => {
      const list = byKind.get(op.kind) ?? [];
      list.push({ op, index });
      byKind.set(op.kind, list);
    });
    for (const [kind, all] of byKind) {
      if (kind === 'upsert' && !this.keyIsUnique) throw this.noUniqueKey();
      const ops = kind === 'delete' ? all : this.withoutMisfits(all, outcomes);
      if (this.loads && (kind === 'insert' || (kind === 'upsert' && this.straightLoads))) {
        for (let start = 0; start < ops.length; start += LOAD_ROWS) {
          await this.loadPart(connection, kind, ops.slice(start, start + LOAD_ROWS), outcomes);
        }
        continue;
      }
      for (const part of this.statementParts(kind, ops, outcomes)) await this.writePart(connection, kind, part, outcomes);
    }
    return outcomes;
  }

  /**
   * `ops` but those with a value its column would round (see roundingColumns), which are rejected
   * with a message naming the column: a load and a statement would store the rounded value.
   */
  private withoutMisfits(ops: Indexed[], outcomes: RowOutcome[]): Indexed[] {
    if (this.roundingColumns.every((c) => c === null)) return ops;
    return ops.filter((item) => {
      const why = this.misfit(this.valuesOf(item.op));
      if (why) outcomes[item.index] = { ok: false, reason: why };
      return why === null;
    });
  }

  private misfit(values: readonly Value[]): string | null {
    for (let c = 0; c < this.roundingColumns.length; c++) {
      const rounding = this.roundingColumns[c];
      const value = values[c] ?? null;
      if (!rounding || value === null || typeof value === 'boolean') continue;
      const places = decimalPlaces(value);
      if (places === null || places <= rounding.places) continue;
      const { columnType } = this.info.columns.get((this.target.columns[c] as string).toLowerCase()) as ColumnInfo;
      return `column "${this.target.columns[c]}" is ${columnType}, which holds ${rounding.holds}: ${String(value)} would be rounded — change the column's type to ${rounding.wider(places)} to hold it`;
    }
    return null;
  }

  /**
   * Loads a part with LOAD DATA LOCAL INFILE under a savepoint. When the load skipped or changed a
   * row (a warning, or fewer rows written), or failed, it is rolled back and the part written with
   * statements instead, which reject exactly the bad rows.
   */
  private async loadPart(connection: MysqlPoolConnection, kind: Kind, part: Indexed[], outcomes: RowOutcome[]): Promise<void> {
    await connection.query('savepoint lockstep_part');
    const data = this.loadData(part);
    try {
      const [header] = await connection.query<MysqlResultHeader>({ sql: this.loadStatement(), infileStreamFactory: () => Readable.from(chunks(data, this.loadChunkBytes)) });
      if (header.affectedRows === part.length && header.warningStatus === 0) return;
      // Most likely a row exists already: upserts merge from now on.
      if (kind === 'upsert') this.straightLoads = false;
    } catch (thrown) {
      const failure = classifyMysqlError(thrown);
      if (failure === MysqlFailure.Transient || failure === MysqlFailure.Connection) throw thrown;
      // Most likely the server does not take LOCAL loads: statements from now on.
      if (failure === MysqlFailure.Statement) this.loads = false;
    }
    await connection.query('rollback to savepoint lockstep_part');
    for (const smaller of this.statementParts(kind, part, outcomes)) await this.writePart(connection, kind, smaller, outcomes);
  }

  /** The part's rows as LOAD DATA reads them by default: tab-separated, `\N` for null, backslash escapes. */
  private loadData(part: Indexed[]): Buffer {
    const width = this.valueParameters.length;
    const fields = new Array<Value>(width);
    let lineBytes = 0;
    for (const { op } of part) if (op.line) lineBytes += op.line.end - op.line.start;
    // Lines never grow (an escape rewritten is one byte for two).
    const lines = Buffer.allocUnsafe(lineBytes);
    let at = 0;
    let text = '';
    // Lines that lie back to back in the source's buffer (consecutive rows) are copied as one stretch.
    let run: EncodedLine | null = null;
    let runEnd = 0;
    for (const { op } of part) {
      const line = op.line;
      if (line) {
        if (run && line.data === run.data && line.start === runEnd) {
          runEnd = line.end;
          continue;
        }
        if (run) at = copyLines(lines, at, run.data, run.start, runEnd);
        run = line;
        runEnd = line.end;
        continue;
      }
      for (let c = 0; c < width; c++) {
        const bits = this.bitWidths[c];
        if (bits !== null && bits !== undefined) {
          // As decimal text, made a number by the load statement.
          fields[c] = bitNumber(op.values[c] ?? null, bits);
          continue;
        }
        const value = (this.valueParameters[c] as (v: Value) => unknown)(op.values[c] ?? null);
        if (this.binaryColumns[c]) {
          // Bytes as hex, which the load statement decodes (text in the load is read as utf8mb4).
          fields[c] = value === null ? null : (Buffer.isBuffer(value) ? value : Buffer.from(String(value))).toString('hex');
          continue;
        }
        // A boolean for a number column (text columns took `true` already): MySQL's 1 and 0.
        fields[c] = value === true ? 1 : value === false ? 0 : (value as Value);
      }
      text += copyLine(fields, width);
    }
    if (run) at = copyLines(lines, at, run.data, run.start, runEnd);
    return text === '' ? lines.subarray(0, at) : Buffer.concat([lines.subarray(0, at), Buffer.from(text)]);
  }

  /**
   * The LOAD DATA statement. A timestamptz line field goes through a variable: PostgreSQL prints it
   * with its offset (`2024-01-02 05:04:05.5+02`), which MySQL does not read, so the server takes
   * the offset off and converts the time to UTC; a value it cannot convert stays as it is and
   * raises the warning that sends the rows by statement. A binary column's field is hex, decoded
   * by the server (the load reads its text as utf8mb4, which bytes are not); a BIT column's is
   * decimal text, made a number (loaded as it is, it would be the bytes of its characters).
   */
  private loadStatement(): string {
    const cached = this.statements.get('load');
    if (cached) return cached;
    const columns = this.target.columns;
    const fields = this.lineFields;
    const through = (i: number) => fields?.[i] === LineField.TimestampTz || this.binaryColumns[i] || this.bitWidths[i] !== null;
    const targets = columns.map((c, i) => (through(i) ? `@lockstep_${i}` : quoteMysqlIdent(c)));
    const sets = columns.flatMap((c, i) => {
      if (fields?.[i] === LineField.TimestampTz) return [`${quoteMysqlIdent(c)} = ${utcFromOffsetText(`@lockstep_${i}`)}`];
      if (this.bitWidths[i] !== null) return [`${quoteMysqlIdent(c)} = cast(@lockstep_${i} as unsigned)`];
      return this.binaryColumns[i] ? [`${quoteMysqlIdent(c)} = unhex(@lockstep_${i})`] : [];
    });
    // Separators as hex strings: they read the same whatever the session's NO_BACKSLASH_ESCAPES.
    const text =
      `load data local infile 'lockstep-rows' into table ${this.table} character set utf8mb4 fields terminated by x'09' escaped by x'5c' lines terminated by x'0a' (${targets.join(', ')})` +
      (sets.length > 0 ? ` set ${sets.join(', ')}` : '');
    this.statements.set('load', text);
    return text;
  }

  /**
   * Splits operations into statements of at most ROWS_PER_STATEMENT rows, 65,535 parameters and
   * `statementBytes` bytes of values. A row that alone is larger than the server takes is rejected
   * here, without being sent (the server would drop the connection).
   */
  private statementParts(kind: Kind, ops: Indexed[], outcomes: RowOutcome[]): Indexed[][] {
    const width = kind === 'delete' ? this.target.keyColumns.length : this.target.columns.length;
    const maxRows = Math.max(1, Math.min(ROWS_PER_STATEMENT, Math.floor(MAX_PARAMETERS / Math.max(1, width))));
    const parts: Indexed[][] = [];
    let part: Indexed[] = [];
    let bytes = 0;
    for (const item of ops) {
      const values = kind === 'delete' ? item.op.key : this.valuesOf(item.op);
      const size = estimatedBytes(values);
      if (size > this.info.maxPacketBytes - 64 * 1024 && exactBytes(values) > this.info.maxPacketBytes - 64 * 1024) {
        outcomes[item.index] = {
          ok: false,
          reason: `the row's values take ${exactBytes(values)} bytes, more than the server accepts in one statement (max_allowed_packet = ${this.info.maxPacketBytes}) — raise max_allowed_packet on the server`,
        };
        continue;
      }
      if (part.length > 0 && (part.length >= maxRows || bytes + size > this.statementBytes)) {
        parts.push(part);
        part = [];
        bytes = 0;
      }
      part.push(item);
      bytes += size;
    }
    if (part.length > 0) parts.push(part);
    return parts;
  }

  /**
   * Writes a part under a savepoint. When a row breaks a rule, the part is rolled back to the
   * savepoint and halved (parts of a few rows go row by row) until the offending rows stand alone;
   * they are rejected with the server's message and the others written. A few bad rows in a large
   * batch cost a few dozen statements, not one per row.
   */
  /**
   * Why the server rejected a row (mysqlRowMessage). For an ENUM or SET column, whose value is not
   * one of its members, the server only says `Data truncated for column 'size'`: the message then
   * names the members and what to do.
   */
  private rowMessage(thrown: unknown): string {
    const message = mysqlRowMessage(thrown);
    const badText = /^Incorrect string value: '(.*)' for column (?:`[^`]*`\.`[^`]*`\.`([^`]+)`|'([^']+)')$/.exec(message);
    if (badText) {
      const named = this.info.columns.get((badText[2] ?? badText[3] ?? '').toLowerCase());
      if (named?.charset && named.charset !== 'utf8mb4' && named.charset !== 'binary') return `${message}: ${this.charsetHint(named, badText[1] as string)}`;
      return message;
    }
    const truncated = /^Data truncated for column '(.+)'$/.exec(message);
    const column = truncated ? this.info.columns.get((truncated[1] as string).toLowerCase()) : undefined;
    if (column?.dataType !== 'enum' && column?.dataType !== 'set') return message;
    const what = column.dataType === 'enum' ? 'one of' : 'a comma-separated list of';
    return `${message}: the value is not ${what} the column's members (${column.columnType}) — add it to the column's type, or change it to a member in the model's query`;
  }

  /**
   * Why an upsert met its key's twin (see `textKeys`): the row already in the table whose key the
   * column's collation takes as this one, and what to do; null when `thrown` is another error.
   */
  private async twinMessage(connection: MysqlPoolConnection, thrown: unknown, op: WriteOperation): Promise<string | null> {
    const named = mysqlErrno(thrown) === NULL_REFUSED ? /^Column '(.+)' cannot be null$/.exec(toError(thrown).message)?.[1] : undefined;
    const text = named === undefined ? undefined : this.textKeys.find((k) => k.name.toLowerCase() === named.toLowerCase());
    if (!text) return null;
    const { keyColumns } = this.target;
    const where = keyColumns.map((k, i) => `${quoteMysqlIdent(k)} = ${(this.keyExpressions[i] as (ref: string) => string)('?')}`).join(' and ');
    const params = keyColumns.map((_, k) => (this.keyParameters[k] as (v: Value) => unknown)(op.key[k] ?? null));
    const [found] = await connection.execute<Array<Record<string, unknown>>>(
      `select ${keyColumns.map((k, i) => `${quoteMysqlIdent(k)} as k${i}`).join(', ')} from ${this.table} where ${where} limit 1`,
      params,
    );
    const stored = found[0];
    if (!stored) return null;
    const column = this.info.columns.get(text.name.toLowerCase()) as ColumnInfo;
    const theirs = describeKey(keyColumns, keyColumns.map((_, i) => normalizeValue(stored[`k${i}`]) as string | number | boolean | null));
    return (
      `the row's key (${describeKey(keyColumns, op.key)}) is the key of the row ${theirs} already in "${this.target.object}" to MySQL, ` +
      `whose column "${column.name}" (${column.columnType}, collation ${column.collation}) compares text without regard to case, accents or trailing spaces — ` +
      `the row is not written, so as not to overwrite that one: make such keys one in the model's query (e.g. lower(${column.name}) or trim(${column.name})), ` +
      `or give the column a collation that tells them apart (utf8mb4_0900_bin on MySQL 8, utf8mb4_nopad_bin on MariaDB)`
    );
  }

  /** Why a text column refused a character (MySQL names only its bytes), and how to widen the column's character set. */
  private charsetHint(column: ColumnInfo, bytes: string): string {
    // A UTF-8 character of 4 bytes starts with F0 to F4: an emoji, or a rarer CJK character.
    const fourBytes = /^\\x[fF][0-4]/.test(bytes);
    const utf8mb3 = column.charset === 'utf8mb3' || column.charset === 'utf8';
    const what =
      utf8mb3 && fourBytes
        ? `column "${column.name}" is ${column.columnType} in character set ${column.charset}, which holds no 4-byte character (an emoji, say)`
        : `column "${column.name}" is ${column.columnType} in character set ${column.charset}, which does not have this character`;
    return `${what} — change the column to character set utf8mb4, which holds every character (alter table ${quoteMysqlIdent(this.info.database)}.${quoteMysqlIdent(this.info.name)} modify ${quoteMysqlIdent(column.name)} ${column.columnType} character set utf8mb4, keeping its NOT NULL and DEFAULT), or convert the value in the model's query`;
  }

  private async writePart(connection: MysqlPoolConnection, kind: Kind, part: Indexed[], outcomes: RowOutcome[]): Promise<void> {
    // A savepoint of the same name replaces the previous one: a part that failed no longer needs its own.
    await connection.query('savepoint lockstep_part');
    try {
      const answered = await this.apply(connection, kind, part);
      part.forEach((item, i) => (outcomes[item.index] = answered[i] as RowOutcome));
      return;
    } catch (thrown) {
      if (classifyMysqlError(thrown) !== MysqlFailure.Data) throw thrown;
      await connection.query('rollback to savepoint lockstep_part');
      if (part.length === 1) {
        const item = part[0] as Indexed;
        const twin = kind === 'upsert' ? await this.twinMessage(connection, thrown, item.op) : null;
        outcomes[item.index] = { ok: false, reason: twin ?? this.rowMessage(thrown) };
        return;
      }
    }
    const half = Math.ceil(part.length / 2);
    const parts = part.length <= ROW_BY_ROW_BELOW ? part.map((item) => [item]) : [part.slice(0, half), part.slice(half)];
    for (const smaller of parts) await this.writePart(connection, kind, smaller, outcomes);
  }

  /** The statements for one part, all of one kind; answers per operation. Throws what the server throws. */
  private async apply(connection: MysqlPoolConnection, kind: Kind, part: Indexed[]): Promise<RowOutcome[]> {
    const ok = part.map((): RowOutcome => ({ ok: true }));
    switch (kind) {
      case 'insert':
        await connection.execute(this.statement('insert', part.length), this.rowValues(part));
        return ok;
      case 'upsert': {
        if (this.keyIsOnlyUnique) {
          await connection.execute(this.statement('upsert', part.length), this.rowValues(part));
          return ok;
        }
        // Another unique index (an email, say) could meet a different row than the key's, which
        // ON DUPLICATE KEY UPDATE would then change: rows whose key exists are updated by key, the
        // others inserted, and a clash on the other index is the error it should be.
        const existing = await this.existing(connection, part, true);
        const updates = part.filter((_, i) => existing.has(i));
        const inserts = part.filter((_, i) => !existing.has(i));
        if (updates.length > 0) await connection.execute(this.statement('merge', updates.length), this.joinedValues(updates, true));
        if (inserts.length > 0) await connection.execute(this.statement('insert', inserts.length), this.rowValues(inserts));
        return ok;
      }
      case 'update': {
        // With FOUND_ROWS (mysql2's default) an UPDATE answers the rows it matched, changed or not.
        const [header] = await connection.execute<MysqlResultHeader>(this.statement('update', part.length), this.joinedValues(part, true));
        if (this.keyIsUnique && header.affectedRows === part.length) return ok;
        const existing = await this.existing(connection, part, false);
        return part.map((item, i) => (existing.has(i) ? { ok: true } : this.notFound(item.op)));
      }
      case 'delete':
        await connection.execute(this.statement('delete', part.length), this.keyValues(part));
        return ok;
      default:
        return assertNever(kind);
    }
  }

  /** Positions in `part` of the operations whose key is in the table (for an upsert, `lock`: locked until commit, its very bytes). */
  private async existing(connection: MysqlPoolConnection, part: Indexed[], lock: boolean): Promise<Set<number>> {
    const [rows] = await connection.execute<Array<{ ord: unknown }>>(this.statement(lock ? 'exists-locked' : 'exists', part.length), this.joinedValues(part, false));
    return new Set(rows.map((r) => Number(r.ord)));
  }

  /** Every column's parameter, row after row (INSERT ... VALUES). */
  private rowValues(part: Indexed[]): unknown[] {
    const params: unknown[] = [];
    for (const { op } of part) {
      const values = this.valuesOf(op);
      for (let c = 0; c < this.valueParameters.length; c++) params.push((this.valueParameters[c] as (v: Value) => unknown)(values[c] ?? null));
    }
    return params;
  }

  /** The key columns' parameters, row after row (DELETE ... IN). */
  private keyValues(part: Indexed[]): unknown[] {
    const params: unknown[] = [];
    for (const { op } of part) {
      for (let k = 0; k < this.keyParameters.length; k++) params.push((this.keyParameters[k] as (v: Value) => unknown)(op.key[k] ?? null));
    }
    return params;
  }

  /** The parameters of the joined rows (see `joined`): the key columns, then the others when `withValues`. */
  private joinedValues(part: Indexed[], withValues: boolean): unknown[] {
    const params: unknown[] = [];
    for (const { op } of part) {
      for (let k = 0; k < this.keyParameters.length; k++) params.push((this.keyParameters[k] as (v: Value) => unknown)(op.key[k] ?? null));
      if (!withValues) continue;
      const values = this.valuesOf(op);
      for (const c of this.nonKeyPositions) params.push((this.valueParameters[c] as (v: Value) => unknown)(values[c] ?? null));
    }
    return params;
  }

  private notFound(op: WriteOperation): RowOutcome {
    return { ok: false, reason: `no row with ${describeKey(this.target.keyColumns, op.key)} in "${this.target.object}"` };
  }

  /**
   * The SQL of one statement for `rows` rows, built once: identifiers quoted, every value a
   * parameter. Updates and existence checks join the table to the part's rows, selected as
   * `lockstep_rows` with columns `lockstep_ord` (the position), `k1..` (key) and `v1..` (other columns).
   */
  private statement(kind: Kind | 'merge' | 'exists' | 'exists-locked', rows: number): string {
    const cacheKey = `${kind}:${rows}`;
    const cached = this.statements.get(cacheKey);
    if (cached) return cached;
    const { columns, keyColumns } = this.target;
    const quote = quoteMysqlIdent;
    const valuesList = () => {
      const row = `(${columns.map(() => '?').join(', ')})`;
      return Array.from({ length: rows }, () => row).join(', ');
    };
    // `exact`: a text key meets only the row whose key has its bytes (see `textKeys`); otherwise as the column compares.
    const joined = (withValues: boolean, exact: boolean) => {
      const select = (ord: number, named: boolean) => {
        const keys = keyColumns.map((_, k) => (named ? `? as k${k + 1}` : '?'));
        const values = withValues ? this.nonKeyPositions.map((_, v) => (named ? `? as v${v + 1}` : '?')) : [];
        return `select ${ord}${named ? ' as lockstep_ord' : ''}, ${[...keys, ...values].join(', ')}`;
      };
      const selects = Array.from({ length: rows }, (_, i) => select(i, i === 0));
      const on = keyColumns
        .map((k, i) => {
          const equal = `lockstep_t.${quote(k)} = ${(this.keyExpressions[i] as (ref: string) => string)(`lockstep_rows.k${i + 1}`)}`;
          const text = this.textKeys.find((t) => t.name.toLowerCase() === k.toLowerCase());
          return text && exact ? `${equal} and binary lockstep_t.${quote(k)} = binary convert(lockstep_rows.k${i + 1} using ${text.charset})` : equal;
        })
        .join(' and ');
      return { from: `(${selects.join(' union all ')}) as lockstep_rows`, on };
    };
    const nonKey = this.nonKeyPositions.map((i) => columns[i] as string);
    let text: string;
    switch (kind) {
      case 'insert':
        text = `insert into ${this.table} (${columns.map(quote).join(', ')}) values ${valuesList()}`;
        break;
      case 'upsert': {
        // A row met by its key's twin (`A` for `a`) is refused: its key set to NULL fails (see rowMessage).
        const guards = this.twinsFail ? this.textKeys.map(({ name }) => `${quote(name)} = if(binary ${quote(name)} = binary values(${quote(name)}), ${quote(name)}, null)`) : [];
        const values = nonKey.map((c) => `${quote(c)} = values(${quote(c)})`);
        const assignments = guards.length + values.length > 0 ? [...guards, ...values] : [`${quote(keyColumns[0] as string)} = ${quote(keyColumns[0] as string)}`];
        text = `insert into ${this.table} (${columns.map(quote).join(', ')}) values ${valuesList()} on duplicate key update ${assignments.join(', ')}`;
        break;
      }
      case 'update':
      case 'merge': {
        // An update finds its row as `where key = ?` would (`ABC` is the row `abc` in a case-insensitive
        // column); an upsert's update of the rows it found exists (`merge`) only the row of its very key.
        const { from, on } = joined(true, kind === 'merge');
        const assignments =
          nonKey.length > 0
            ? nonKey.map((c, v) => `lockstep_t.${quote(c)} = lockstep_rows.v${v + 1}`)
            : [`lockstep_t.${quote(keyColumns[0] as string)} = lockstep_t.${quote(keyColumns[0] as string)}`];
        text = `update ${this.table} as lockstep_t join ${from} on ${on} set ${assignments.join(', ')}`;
        break;
      }
      case 'exists':
      case 'exists-locked': {
        const { from, on } = joined(false, kind === 'exists-locked');
        text = `select lockstep_rows.lockstep_ord as ord from ${from} join ${this.table} as lockstep_t on ${on}${kind === 'exists-locked' ? ' for update' : ''}`;
        break;
      }
      case 'delete': {
        if (this.textKeys.length > 0) {
          const { from, on } = joined(false, true);
          text = `delete lockstep_t from ${this.table} as lockstep_t join ${from} on ${on}`;
          break;
        }
        const tuple = keyColumns.length === 1 ? '?' : `(${keyColumns.map(() => '?').join(', ')})`;
        const target = keyColumns.length === 1 ? quote(keyColumns[0] as string) : `(${keyColumns.map(quote).join(', ')})`;
        text = `delete from ${this.table} where ${target} in (${Array.from({ length: rows }, () => tuple).join(', ')})`;
        break;
      }
      default:
        return assertNever(kind);
    }
    this.statements.set(cacheKey, text);
    return text;
  }

  private noUniqueKey(): LockstepError {
    const { keyColumns } = this.target;
    const plural = keyColumns.length > 1;
    return new LockstepError(
      ErrorCode.Schema,
      `cannot upsert into "${this.target.object}" in destination ${this.destination.where}: the key column${plural ? 's' : ''} ${listNames(keyColumns)} ha${plural ? 've' : 's'} no unique constraint — add a primary key or unique index on ${plural ? 'them' : 'it'}, e.g. alter table ${this.table} add unique (${keyColumns.map(quoteMysqlIdent).join(', ')})`,
    );
  }

  /** A failure of the batch as a whole, as a LockstepError the engine can act on. */
  private writeError(thrown: unknown, batch: WriteOperation[]): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const where = `destination ${this.destination.where}`;
    const errno = mysqlErrno(error);
    if (errno === TABLE_ACCESS_DENIED || errno === COLUMN_ACCESS_DENIED) {
      const privileges = new Set(batch.flatMap((op) => PRIVILEGES_OF[op.kind]));
      const needed = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'].filter((p) => p === 'SELECT' || privileges.has(p)).join(', ');
      return new LockstepError(
        ErrorCode.Schema,
        `writing to "${this.target.object}" in ${where} was refused: ${error.message} — grant the destination's user what the sync does: GRANT ${needed} ON ${this.table} TO ${this.info.account}`,
        { cause: error },
      );
    }
    switch (classifyMysqlError(error)) {
      case MysqlFailure.Transient: {
        // Rows another session holds: retrying helps only once it lets go, so the message says where to look.
        let hint = 'the batch can be retried';
        if (errno === LOCK_WAIT_TIMEOUT) {
          hint =
            "another session holds locks on rows of the table for longer than the server's innodb_lock_wait_timeout — find its transaction (select * from information_schema.innodb_trx) and end it, or run the sync when it is done";
        } else if (errno === LOCK_DEADLOCK) {
          hint =
            'the batch and another session writing the same rows each waited on rows the other had locked (a deadlock), and the server rolled the batch back — ' +
            "SHOW ENGINE INNODB STATUS shows both sessions' statements under LATEST DETECTED DEADLOCK: find that other writer, and run the sync when it is done";
        }
        return new LockstepError(ErrorCode.Transient, `writing to "${this.target.object}" in ${where} failed: ${error.message} — ${hint}`, { cause: error });
      }
      case MysqlFailure.Connection:
        return new LockstepError(ErrorCode.Connection, `cannot write to ${where}: ${error.message} — ${mysqlConnectionHint(error)}`, { cause: error });
      case MysqlFailure.Data:
      case MysqlFailure.Statement:
        return new LockstepError(
          ErrorCode.Schema,
          `writing to "${this.target.object}" in ${where} failed: ${error.message} — check that the table's columns, types and permissions match what the sync writes`,
          { cause: error },
        );
    }
  }
}

/**
 * How a joined row's key value compares with the table's column: as the column's own type and
 * collation, exactly as `column = ?` would (the joined rows' columns otherwise take the
 * connection's collation, or compare numbers as doubles).
 */
function keyExpression(column: ColumnInfo): (ref: string) => string {
  const { dataType, charset, collation, precision, scale } = column;
  if (TEXT_TYPES.has(dataType) && charset && collation && PLAIN_NAME.test(charset) && PLAIN_NAME.test(collation)) {
    return (ref) => `convert(${ref} using ${charset}) collate ${collation}`;
  }
  if (dataType === 'decimal' && precision !== null && scale !== null) return (ref) => `cast(${ref} as decimal(${precision}, ${scale}))`;
  if (dataType === 'date') return (ref) => `cast(${ref} as date)`;
  if (dataType === 'datetime' || dataType === 'timestamp') return (ref) => `cast(${ref} as datetime(6))`;
  if (BINARY_TYPES.has(dataType)) return (ref) => `cast(${ref} as binary)`;
  return (ref) => ref;
}

/**
 * Copies bytes `start..end` of COPY text lines into `out` at `at` as LOAD DATA reads them; returns
 * where they end. Both formats are tab-separated with `\N` and backslash escapes; PostgreSQL's
 * `\f` and `\v`, which MySQL does not know, become the bytes they stand for.
 */
function copyLines(out: Buffer, at: number, data: Buffer, start: number, end: number): number {
  const text = data.subarray(start, end);
  let from = 0;
  for (let i = text.indexOf(BACKSLASH); i >= 0 && i < text.length - 1; i = text.indexOf(BACKSLASH, i + 2)) {
    const next = text[i + 1];
    if (next !== 0x66 /* f */ && next !== 0x76 /* v */) continue;
    at += text.copy(out, at, from, i);
    out[at++] = next === 0x66 ? 0x0c : 0x0b;
    from = i + 2;
  }
  return at + text.copy(out, at, from);
}

/**
 * SQL turning a timestamp with a trailing UTC offset, as PostgreSQL prints a timestamptz
 * (`+02`, `-08`, `+05:30`), held in `variable`, into the UTC time; the text itself when it is not one.
 */
function utcFromOffsetText(variable: string): string {
  const v = variable;
  // Where the offset's sign is: the last `+`, or the last `-` (the date's own come before it).
  const sign = `greatest(if(locate('+', ${v}) > 0, char_length(${v}) - locate('+', reverse(${v})) + 1, 0), char_length(${v}) - locate('-', reverse(${v})) + 1)`;
  const offset = `substring(${v}, ${sign})`;
  const hoursMinutes = `concat(left(${offset}, 3), ':', if(char_length(${offset}) >= 6, substring(${offset}, 5, 2), '00'))`;
  const converted = `coalesce(convert_tz(left(${v}, ${sign} - 1), ${hoursMinutes}, '+00:00'), ${v})`;
  // UTC, the common case, costs the server one comparison: only the `+00` goes.
  return `if(${v} like '%+00', left(${v}, char_length(${v}) - 3), ${converted})`;
}

/** A buffer in slices of at most `size` bytes (each becomes one packet). */
function* chunks(data: Buffer, size: number): Generator<Buffer> {
  for (let start = 0; start < data.length; start += size) yield data.subarray(start, start + size);
}

/** An upper bound of the bytes a row's values take in a statement (UTF-8 takes at most 3 bytes per UTF-16 unit). */
function estimatedBytes(values: readonly Value[]): number {
  let bytes = 0;
  for (const value of values) bytes += typeof value === 'string' ? value.length * 3 + 9 : 9;
  return bytes;
}

function exactBytes(values: readonly Value[]): number {
  let bytes = 0;
  for (const value of values) bytes += typeof value === 'string' ? Buffer.byteLength(value) + 9 : 9;
  return bytes;
}

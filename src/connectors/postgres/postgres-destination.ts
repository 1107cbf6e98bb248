import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { COPY_TEXT_FORMAT, copyLine, INTEGER_OIDS } from '../copy-text.js';
import { postgresDriverUrl } from '../../core/connections.js';
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
import {
  classifyPostgresError,
  describeKey,
  errorCode,
  describePostgresUrl,
  listNames,
  PostgresFailure,
  postgresConnectionHint,
  quoteIdent,
  quoteQualified,
  withHint,
} from '../sql.js';
import {
  clientTimeouts,
  connectTimeoutError,
  describeDuration,
  destroySocket,
  hostPort,
  isConnectTimeout,
  type PostgresTimeouts,
  refusedStartupTimeout,
  socketDestroyed,
  withDeadline,
} from './timeouts.js';
import { base64Bytes, decimalScale, normalizeIntegerText, normalizeValue } from '../values.js';

export interface PostgresDestinationOptions {
  /** `postgres://user:password@host:port/database`. */
  url: string;
  /** Connections kept open to the destination (default: 4). */
  maxConnections?: number;
  /** How long to wait for the server (default: 10 s to connect, 2 min for a batch's statements). */
  timeouts?: Partial<PostgresTimeouts>;
}

const DEFAULT_TIMEOUTS: PostgresTimeouts = { connectMs: 10_000, statementMs: 2 * 60_000 };

/** A destination table as the catalog describes it. */
interface TableInfo {
  schema: string;
  name: string;
  /**
   * Column name → its SQL type as `format_type` prints it (safe to use as a cast target); for a
   * column of a domain (or an array of one), the type the domain is over, with its length: values
   * are cast to it, and the domain's constraints checked as they are assigned to the column.
   */
  columnTypes: Map<string, string>;
  /** Column name → its domain as `format_type` prints it (`code5`, `code5[]`), for a column of one. */
  columnDomains: Map<string, string>;
  /** Column name → its type's OID. */
  columnOids: Map<string, number>;
  /** The column sets of the table's plain unique indexes (those `on conflict` can use). */
  uniqueKeys: string[][];
  /**
   * Whether rows may be copied (COPY) into the table itself: not into a view, nor into a table whose
   * row-level security applies to this user (PostgreSQL refuses COPY there); rows then go through
   * the staging table and an `insert … select`, each checked by the table's policies.
   */
  copiesInto: boolean;
}

/**
 * Writes to PostgreSQL tables. A batch is one transaction. Inserts and upserts are copied (COPY, as
 * text) into a temporary staging table and merged into the table with one statement; updates and
 * deletes go as one statement over arrays (`unnest`). When a row breaks a rule (SQLSTATE classes
 * 21, 22, 23) the transaction is rolled back and that batch alone is replayed under savepoints,
 * halving the failing parts down to single rows, so exactly the offending rows are rejected, with
 * PostgreSQL's message, and the rest committed.
 */
export class PostgresDestination implements Destination {
  readonly capabilities: DestinationCapabilities = { deletes: true, upsert: true, maxBatchSize: null, recordIds: false };
  private pool: pg.Pool;
  readonly where: string;
  readonly timeouts: PostgresTimeouts;
  /** Connections taken from the pool and not given back yet. */
  private readonly busy = new Set<pg.PoolClient>();

  constructor(private readonly options: PostgresDestinationOptions) {
    this.where = describePostgresUrl(options.url);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.pool = this.newPool();
  }

  private newPool(): pg.Pool {
    const { url, maxConnections } = this.options;
    const pool = new pg.Pool({ connectionString: postgresDriverUrl(url), max: maxConnections ?? 4, ...clientTimeouts(this.timeouts, url) });
    // An idle connection that drops is replaced by the pool; the next query reports any real problem.
    pool.on('error', () => undefined);
    // A session the server ends while a write holds it (pg_terminate_backend, a restart) fails the
    // statement under way, which reports it; the client also emits 'error', which would end the
    // process without a listener (the pool listens only while the client is idle).
    pool.on('connect', (client) => client.on('error', () => undefined));
    pool.on('acquire', (client) => this.busy.add(client));
    pool.on('release', (_error, client) => this.busy.delete(client));
    return pool;
  }

  /** Creates the destination and checks that the server answers with these credentials. */
  static async connect(options: PostgresDestinationOptions): Promise<PostgresDestination> {
    const destination = new PostgresDestination(options);
    try {
      const client = await destination.client();
      client.release();
    } catch (error) {
      await destination.close();
      throw error;
    }
    return destination;
  }

  async prepare(target: WriteTarget): Promise<DestinationWriter> {
    const client = await this.client();
    try {
      return await this.deadline(client, `preparing to write to "${target.object}"`, this.prepareOn(client, target), target.signal);
    } finally {
      client.release(socketDestroyed(client));
    }
  }

  private async prepareOn(client: pg.PoolClient, target: WriteTarget): Promise<DestinationWriter> {
    const table = await this.requireTable(client, target.object);
    const wanted = [...new Set([...target.columns, ...target.keyColumns])];
    const missing = wanted.filter((c) => !table.columnTypes.has(c));
    if (missing.length > 0) {
      throw new LockstepError(
        ErrorCode.Schema,
        `table "${target.object}" in destination ${this.where} has no column${missing.length > 1 ? 's' : ''} ${listNames(missing)} (it has: ${listNames([...table.columnTypes.keys()])}) — add the column${missing.length > 1 ? 's' : ''} to the table, or map the model's fields to existing columns`,
      );
    }
    // Upserts may go straight into a table that is empty now (a first sync): see PostgresWriter.
    const empty = await client.query(`select not exists (select 1 from ${quoteQualified(table.schema, table.name)}) as empty`).then(
      (r) => (r.rows[0] as { empty: boolean }).empty,
      () => false,
    );
    return new PostgresWriter(this, table, target, empty);
  }

  async listObjects(): Promise<string[]> {
    const client = await this.client();
    try {
      return await this.deadline(client, 'listing tables', this.tableNames(client, 1000));
    } finally {
      client.release(socketDestroyed(client));
    }
  }

  async listFields(object: string): Promise<string[]> {
    const client = await this.client();
    try {
      return [...(await this.deadline(client, `reading the columns of "${object}"`, this.requireTable(client, object))).columnTypes.keys()];
    } finally {
      client.release(socketDestroyed(client));
    }
  }

  async readRows(target: WriteTarget, keys: Value[][]): Promise<Array<Value[] | null>> {
    const client = await this.client();
    try {
      const read = async () => {
        const table = await this.requireTable(client, target.object);
        const where = target.keyColumns.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(' and ');
        const text = `select ${target.columns.map(quoteIdent).join(', ')} from ${quoteQualified(table.schema, table.name)} where ${where} limit 1`;
        const keyConverters = columnValues(table, target.keyColumns);
        const rows: Array<Value[] | null> = [];
        for (const key of keys) {
          const result = await client.query({ text, values: [...written(key, keyConverters)], rowMode: 'array' });
          const row = result.rows[0] as unknown[] | undefined;
          // Integers come as the source reads them: numbers while exact (bigint arrives as text).
          const value = (v: unknown, i: number) =>
            typeof v === 'string' && INTEGER_OIDS.has(result.fields[i]?.dataTypeID ?? 0) ? normalizeIntegerText(v) : normalizeValue(v);
          rows.push(row ? row.map(value) : null);
        }
        return rows;
      };
      return await this.deadline(client, `reading rows of "${target.object}"`, read());
    } finally {
      client.release(socketDestroyed(client));
    }
  }

  /**
   * Waits for `work` on `client` as long as the write timeout allows, and until `signal` aborts; past
   * either the connection is closed and the failure names `what` was waited for (see timeouts.ts).
   */
  deadline<T>(client: pg.PoolClient, what: string, work: Promise<T>, signal?: AbortSignal): Promise<T> {
    const ms = this.timeouts.statementMs;
    return withDeadline(
      client,
      ms,
      () =>
        new LockstepError(
          ErrorCode.Connection,
          `${what} in destination PostgreSQL at ${hostPort(this.where)} timed out: the server did not answer for ${describeDuration(ms)} — check that the server is up and not stuck (e.g. on locks held by another session), or raise writeTimeoutMinutes`,
        ),
      work,
      signal,
    );
  }

  async close(): Promise<void> {
    // Connections still waiting on the server (a cancelled run) are closed at once.
    for (const client of this.busy) destroySocket(client);
    this.busy.clear();
    await this.pool.end().catch(() => undefined);
  }

  /** Tables of the search path by name, others as schema.table. */
  private async tableNames(client: pg.PoolClient, limit: number): Promise<string[]> {
    const tables = await client.query<{ name: string }>(
      `select case when table_schema = current_schema() then table_name else table_schema || '.' || table_name end as name
         from information_schema.tables
        where table_schema not in ('pg_catalog', 'information_schema')
        order by table_schema <> current_schema(), table_schema, table_name limit $1`,
      [limit],
    );
    return tables.rows.map((r) => r.name);
  }

  private async requireTable(client: pg.PoolClient, object: string): Promise<TableInfo> {
    const table = await this.findTable(client, object);
    if (table) return table;
    throw new LockstepError(
      ErrorCode.Schema,
      `table "${object}" does not exist in destination ${this.where} (tables there: ${listNames(await this.tableNames(client, 50))}) — create the table, or set the sync's object to an existing table (use schema.table outside the search path)`,
    );
  }

  /** A pooled connection, or a LockstepError saying why there is none. */
  async client(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (thrown) {
      if (refusedStartupTimeout(thrown, this.options.url)) {
        // A pooler in front of the server: connections go without the statement timeout from now on.
        const refused = this.pool;
        this.pool = this.newPool();
        await refused.end().catch(() => undefined);
        return this.client();
      }
      if (isConnectTimeout(thrown)) throw connectTimeoutError('destination', this.where, this.timeouts.connectMs, thrown);
      const error = toError(thrown);
      const transient = classifyPostgresError(error) === PostgresFailure.Transient;
      throw new LockstepError(
        transient ? ErrorCode.Transient : ErrorCode.Connection,
        `cannot connect to destination ${this.where}: ${error.message} — ${postgresConnectionHint(error)}`,
        { cause: error },
      );
    }
  }

  private async findTable(client: pg.PoolClient, object: string): Promise<TableInfo | null> {
    // The object as one name first (a table may have a dot in its name), then as schema.table.
    const dot = object.indexOf('.');
    const candidates: Array<[string | null, string]> = [[null, object]];
    if (dot > 0) candidates.push([object.slice(0, dot), object.slice(dot + 1)]);
    for (const [schema, name] of candidates) {
      const found = await client.query<{ oid: number; schema: string; copies_into: boolean }>(
        `select c.oid, n.nspname as schema, c.relkind in ('r', 'p', 'f') and not row_security_active(c.oid) as copies_into
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p', 'v', 'f') and c.relname = $1
            and (($2::text is null and n.nspname = any (current_schemas(false))) or n.nspname = $2::text)
          -- As text[]: PostgreSQL 12 has no array_position(name[], text).
          order by array_position(current_schemas(false)::text[], n.nspname::text) nulls last
          limit 1`,
        [name, schema],
      );
      const row = found.rows[0];
      if (!row) continue;
      // A domain (or the item type of an array column, when a domain) is followed down to the type
      // it is over, through domains over domains; the length is the last domain's (a domain
      // takes none of its own). An explicit cast to a domain over varchar(n) cuts a value as a
      // cast to varchar(n) does: values are cast as for the type it is over (see castType).
      const columns = await client.query<{ name: string; type: string; base: string; domain: boolean; oid: number }>(
        `with recursive declared as (
           select a.attnum, a.attname, a.atttypid, a.atttypmod, item.oid as item
             from pg_attribute a left join pg_type item on item.typarray = a.atttypid
            where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
         ), base (attnum, oid, typmod) as (
           select attnum, coalesce(item, atttypid), atttypmod from declared
           union all
           select b.attnum, t.typbasetype, t.typtypmod from base b join pg_type t on t.oid = b.oid where t.typtype = 'd'
         )
         select d.attname as name, format_type(d.atttypid, d.atttypmod) as type, d.atttypid::int4 as oid,
                coalesce(format_type(case when d.item is null then b.oid else nullif(t.typarray, 0) end, b.typmod),
                         format_type(d.atttypid, d.atttypmod)) as base,
                coalesce(d.item, d.atttypid) <> b.oid as domain
           from declared d join base b on b.attnum = d.attnum join pg_type t on t.oid = b.oid
          where t.typtype <> 'd'
          order by d.attnum`,
        [row.oid],
      );
      const unique = await client.query<{ columns: string[] }>(
        `select array_agg(a.attname::text order by a.attname) as columns
           from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
          where i.indrelid = $1 and i.indisunique and i.indimmediate and i.indpred is null and i.indexprs is null
          group by i.indexrelid`,
        [row.oid],
      );
      return {
        schema: row.schema,
        name,
        columnTypes: new Map(columns.rows.map((c) => [c.name, c.base])),
        columnDomains: new Map(columns.rows.filter((c) => c.domain).map((c) => [c.name, c.type])),
        columnOids: new Map(columns.rows.map((c) => [c.name, c.oid])),
        uniqueKeys: unique.rows.map((u) => [...u.columns].sort()),
        copiesInto: row.copies_into,
      };
    }
    return null;
  }
}

/** Parameter text for a value: every parameter travels as text and is cast to its column's type. */
function toText(value: Value): string | null {
  if (value === null) return null;
  return typeof value === 'string' ? value : String(value);
}

/**
 * A value for an array column: sources give a list as JSON text (`[50,51]`, DuckDB's lists, a
 * PostgreSQL array read as values) or as comma-separated text (MySQL's SET: `a,c`, and the empty
 * text for the empty set), which PostgreSQL reads as an array only in its own literal (`{50,51}`,
 * `{a,c}`, `{}`). Anything else (already a literal, not a list) goes as it is.
 */
function arrayValue(value: Value): Value {
  const items = arrayItems(value);
  return items === null ? value : arrayLiteral(items);
}

/**
 * The items of a list given for an array column (see arrayValue), or null when the value is not
 * one: text that starts with `{` (after PostgreSQL's leading spaces) is already an array literal,
 * and text that starts with `[` and is not a JSON list is a literal with its dimensions
 * (`[1:2]={7,8}`). Any other text is split at its commas, as a SET's members are joined (a SET
 * member cannot hold a comma).
 */
function arrayItems(value: Value): unknown[] | null {
  if (typeof value !== 'string') return null;
  const first = value.trimStart().charCodeAt(0);
  if (first === 0x7b /* { */) return null;
  if (first === 0x5b /* [ */) {
    try {
      const parsed: unknown = JSON.parse(value);
      return Array.isArray(parsed) ? parsed : null;
    } catch {
      return null;
    }
  }
  return value === '' ? [] : value.split(',');
}

function arrayLiteral(items: unknown[]): string {
  const element = (item: unknown): string => {
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item)) return arrayLiteral(item);
    const text = typeof item === 'string' ? item : typeof item === 'object' ? JSON.stringify(item) : String(item);
    return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  };
  return `{${items.map(element).join(',')}}`;
}

/**
 * A value for a bytea column: sources give binary values as base64 text, which PostgreSQL would
 * store as the bytes of that text; it goes as its bytes, in bytea's hex form (`\x00ff`). Anything
 * else (already `\x...`, not base64) goes as it is.
 */
function byteaValue(value: Value): Value {
  const bytes = base64Bytes(value);
  return bytes === null ? value : `\\x${bytes.toString('hex')}`;
}

/**
 * A value for a uuid column: a 16-byte binary value (MySQL's BINARY(16) ids, given as base64) goes
 * as the uuid it holds. Anything else (a uuid's text in any of its forms) goes as it is.
 */
function uuidValue(value: Value): Value {
  if (typeof value !== 'string' || value.length !== 24) return value;
  const hex = base64Bytes(value)?.toString('hex');
  return hex?.length === 32 ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}` : value;
}

/**
 * A value for a number column: a boolean (MySQL's TINYINT(1), which its driver reads as one) goes as
 * 1 or 0, as PostgreSQL casts a boolean to an integer; PostgreSQL would refuse the text `true`.
 */
function numberValue(value: Value): Value {
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

/**
 * A value for a `bit(n)` column (`fixed`) or a `bit varying(n)` one (width null: no limit). A
 * number (a MySQL BIT(n), read as one), the decimal text of a number beyond 2^53 (a BIT(64) there,
 * see values.ts) or a boolean goes as its binary digits, right-aligned in a bit(n)'s width as
 * PostgreSQL's `5::bit(8)` is (its text `101` would be the bits 10100000). Text of 0s and 1s that
 * the column holds as it is (n of them for bit(n), at most n for bit varying(n)) is a bit string,
 * PostgreSQL's own bits read as a value, and goes as it is, as anything else does. Decimal text
 * has 16 to 20 digits: only into a bit varying or a bit(16) to bit(20) can decimal text of 0s and
 * 1s alone (`10000000000000000`) be taken for bits.
 */
function bitsValue(width: number | null, fixed: boolean): (value: Value) => Value {
  const digitsOf = (n: number | bigint) => {
    const digits = n.toString(2);
    return fixed && width !== null ? digits.padStart(width, '0') : digits;
  };
  return (value) => {
    if (typeof value === 'boolean') value = value ? 1 : 0;
    if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? digitsOf(value) : value;
    if (typeof value !== 'string' || !/^\d{16,20}$/.test(value)) return value;
    const bitString = /^[01]+$/.test(value) && (width === null || (fixed ? value.length === width : value.length <= width));
    if (bitString) return value;
    const n = BigInt(value);
    return n > BigInt(Number.MAX_SAFE_INTEGER) ? digitsOf(n) : value;
  };
}

/** format_type's name of a fixed-width bit column (`bit` alone is bit(1)): its width. */
const BIT_TYPE = /^bit(?:\((\d+)\))?$/;
/** format_type's name of a bit varying column: its width when it has one. */
const VARYING_BIT_TYPE = /^bit varying(?:\((\d+)\))?$/;

/** format_type's names of the number columns a boolean is written into as 1 or 0. */
const NUMBER_TYPE = /^(smallint|integer|bigint|numeric(\(\d+(,\d+)?\))?|real|double precision)$/;

/** Per column, how its values are written (see columnValue); null when all go as they are. */
type Converters = ReadonlyArray<((value: Value) => Value) | null> | null;

/** How a value is written into a column of type `type` (format_type's name), when not as it is. */
function columnValue(type: string | undefined): ((value: Value) => Value) | null {
  if (type?.endsWith('[]')) return arrayValue;
  if (type === 'bytea') return byteaValue;
  if (type === 'uuid') return uuidValue;
  if (type !== undefined && NUMBER_TYPE.test(type)) return numberValue;
  const bits = type === undefined ? null : BIT_TYPE.exec(type);
  if (bits) return bitsValue(Number(bits[1] ?? 1), true);
  const varying = type === undefined ? null : VARYING_BIT_TYPE.exec(type);
  if (varying) return bitsValue(varying[1] === undefined ? null : Number(varying[1]), false);
  return null;
}

function columnValues(info: TableInfo, columns: readonly string[]): Converters {
  const converters = columns.map((column) => columnValue(info.columnTypes.get(column)));
  return converters.some((c) => c !== null) ? converters : null;
}

/** The value of column `c` as written (see columnValues). */
function writtenValue(converters: Converters, c: number, value: Value): Value {
  const convert = converters?.[c];
  return convert ? convert(value) : value;
}

/** `values` as written (see columnValues). */
function written(values: readonly Value[], converters: Converters): readonly Value[] {
  return converters ? values.map((v, c) => writtenValue(converters, c, v)) : values;
}

/**
 * format_type's name of a varchar(n) or char(n) column, or of an array of them: the type's name,
 * its length and its brackets.
 */
const BOUNDED_TEXT_TYPE = /^(character varying|character)\((\d+)\)((?:\[\])*)$/;

/**
 * Why text `written` (or an item of it, for an array column: see arrayItems) cannot go into
 * column `column` of type `type` (named `declared`: see declaredType), a `name`(`length`) with
 * `brackets`: it has more than `length` characters, not counting the spaces that end it, which
 * PostgreSQL drops from a value too long (`'abc   '` goes into a varchar(3) as `abc`). Null when
 * it fits, or when its items cannot be told (an array literal, which PostgreSQL reads).
 */
function tooLong(column: string, declared: string, length: number, name: string, brackets: string, value: Value, written: Value): string | null {
  const items = brackets === '' ? [written] : arrayItems(value);
  for (const item of (items ?? []).flat(Infinity)) {
    if (item === null || item === undefined) continue;
    const text = typeof item === 'string' ? item : typeof item === 'object' ? JSON.stringify(item) : String(item);
    const characters = [...text.replace(/ +$/, '')];
    if (characters.length <= length) continue;
    const shown = characters.length > 40 ? `${characters.slice(0, 40).join('')}…` : characters.join('');
    const holds = brackets === '' ? '' : 'items of ';
    return `column "${column}" is ${declared}, which holds ${holds}${length} characters: "${shown}" has ${characters.length} — change the column's type to ${name}(${characters.length})${brackets} (or text${brackets}) to hold it`;
  }
  return null;
}

const BIGINT_RANGE = [-(1n << 63n), (1n << 63n) - 1n] as const;
/** The integers each integer type holds, by format_type's name. */
const INTEGER_RANGES: ReadonlyMap<string, readonly [bigint, bigint]> = new Map([
  ['smallint', [-(1n << 15n), (1n << 15n) - 1n] as const],
  ['integer', [-(1n << 31n), (1n << 31n) - 1n] as const],
  ['bigint', BIGINT_RANGE],
]);

/**
 * A column's type as a message names it: `type` (format_type's name), or for a column of a domain
 * (or an array of one) the domain it was declared with, `domain`, and the type the domain is over,
 * whose bounds a value breaks (`code5, a domain over character varying(5)`), as the user's schema says it.
 */
function declaredType(type: string, domain: string | undefined): string {
  if (domain === undefined) return type;
  return domain.endsWith('[]') ? `${domain}, an array of a domain over ${itemType(type)}` : `${domain}, a domain over ${type}`;
}

/**
 * Why `value` cannot go into column `column` of type `type` (named `declared`: see declaredType),
 * with the type that would hold it, when that can be told before PostgreSQL refuses it: an integer
 * beyond its integer column's range (a BIGINT UNSIGNED or a BIT(64) above 2^63 into bigint), more
 * bits than its bit column holds, more characters than its varchar(n) or char(n) column (or item
 * of such an array column) holds. Null when the value fits, or when PostgreSQL's own message has
 * to say why.
 */
function misfit(column: string, type: string, declared: string, value: Value, written: Value): string | null {
  const range = INTEGER_RANGES.get(type);
  if (range) {
    const text = typeof value === 'number' && Number.isInteger(value) ? BigInt(value).toString() : typeof value === 'string' ? value : '';
    if (!/^-?\d+$/.test(text)) return null;
    const n = BigInt(text);
    if (n >= range[0] && n <= range[1]) return null;
    // numeric(20) holds every 64-bit unsigned integer (BIGINT UNSIGNED, BIT(64)), not only this one.
    const digits = n >= 0n && n < 1n << 64n ? 20 : text.replace('-', '').length;
    const wider = n >= BIGINT_RANGE[0] && n <= BIGINT_RANGE[1] ? 'bigint' : `numeric(${digits}) (or numeric)`;
    return `column "${column}" is ${declared}, which holds integers from ${range[0]} to ${range[1]}: ${text} does not fit — change the column's type to ${wider} to hold it`;
  }
  const bounded = BOUNDED_TEXT_TYPE.exec(type);
  if (bounded) return tooLong(column, declared, Number(bounded[2]), bounded[1] as string, bounded[3] as string, value, written);
  const bits = BIT_TYPE.exec(type) ?? VARYING_BIT_TYPE.exec(type);
  const width = bits?.[1] ?? (bits && type === 'bit' ? '1' : undefined);
  if (width === undefined || typeof written !== 'string' || !/^[01]+$/.test(written) || written.length <= Number(width)) return null;
  const what = typeof value === 'string' && value === written ? `the bit string ${value}` : String(value);
  return `column "${column}" is ${declared}, which holds ${width} bit${width === '1' ? '' : 's'}: ${what} has ${written.length} — change the column's type to bit(${written.length}) (or bit varying) to hold it`;
}

/**
 * format_type's name of a numeric column with a precision and scale (`numeric(10,2)`; PostgreSQL
 * 15 allows a negative scale), or of an array of them: its precision, scale and brackets.
 */
const SCALED_NUMERIC_TYPE = /^numeric\((\d+),(-?\d+)\)((?:\[\])*)$/;

/** A numeric(p,s) column (or an array of them) as the writer checks its values: see PostgresWriter.scales. */
interface NumericScale {
  precision: number;
  scale: number;
  /** `[]` for an array column, whose items are checked; '' otherwise. */
  brackets: string;
}

/** The precision and scale of a column of type `type` (format_type's name) when it is a numeric(p,s) or an array of them; null for any other. */
function numericScale(type: string | undefined): NumericScale | null {
  const m = type === undefined ? null : SCALED_NUMERIC_TYPE.exec(type);
  return m ? { precision: Number(m[1]), scale: Number(m[2]), brackets: m[3] as string } : null;
}

/**
 * The first item of a list for a numeric(p,s) array column that has digits past `scale`, as
 * written; null when none has. The list is one sources give (see arrayItems) or an array literal,
 * whose numbers PostgreSQL prints without quotes (`{1.5,NULL}`, `{{1,2},{3,4}}`).
 */
function roundedItem(value: Value, scale: number): string | null {
  const items = arrayItems(value) ?? (typeof value === 'string' ? (value.match(/[^{},\s"]+/g) ?? []).filter((item) => item.toUpperCase() !== 'NULL') : []);
  for (const item of items.flat(Infinity)) {
    if ((typeof item === 'string' || typeof item === 'number') && rounds(item, scale)) return String(item);
  }
  return null;
}

/** Whether the decimal text `data[start..end)` (a COPY field) has digits past `scale`, which a numeric of that scale rounds away. */
function fieldRounds(data: Buffer, start: number, end: number, scale: number): boolean {
  let dot = -1;
  for (let i = start; i < end; i++) {
    const byte = data[i] as number;
    if (byte === 46 /* . */) dot = i;
    // Anything but digits, a sign and a point (NaN, Infinity, an exponent): read as text.
    else if ((byte < 48 || byte > 57) && byte !== 45 /* - */) return rounds(data.toString('latin1', start, end), scale);
  }
  if (scale < 0) return rounds(data.toString('latin1', start, end), scale);
  if (dot < 0) return false;
  let last = end;
  while (last > dot + 1 && data[last - 1] === 48 /* 0 */) last--;
  return last - dot - 1 > scale;
}

/** Whether `value` has digits past `scale` (see decimalScale), which a numeric of that scale rounds away. */
function rounds(value: Value, scale: number): boolean {
  if (typeof value === 'number' && scale >= 0 && Number.isInteger(value)) return false;
  const needed = decimalScale(value);
  return needed !== null && needed > scale;
}

/**
 * Why `value` (text as written) cannot go into column `column` (named `declared`: see
 * declaredType), a numeric(`precision`,`scale`) that would round it to its scale without a word,
 * with the type that holds it: as many digits before the point, and the places it needs.
 */
function roundedAway(column: string, declared: string, { precision, scale, brackets }: NumericScale, value: string): string {
  const needed = decimalScale(value) as number;
  const holds = scale > 0 ? `${scale} decimal place${scale === 1 ? '' : 's'}` : scale === 0 ? 'whole numbers' : `multiples of 1${'0'.repeat(-scale)}`;
  const wider = precision - scale + needed <= 1000 ? `numeric(${precision - scale + needed},${needed})${brackets} (or numeric${brackets})` : `numeric${brackets}`;
  return `column "${column}" is ${declared}, which holds ${brackets === '' ? '' : 'items of '}${holds}: ${value} would be rounded — change the column's type to ${wider} to hold it`;
}

/** format_type's name of a bit or bit varying column, or of an array of them: its brackets. */
const ANY_BIT_TYPE = /^bit(?: varying)?(?:\(\d+\))?((?:\[\])*)$/;

/**
 * The type a value is cast to for a column of type `type` in a statement: the column's own, but
 * without the length of the types whose explicit cast cuts a value to it without a word, where
 * COPY and the assignment to the column refuse the value: bit varying for bit(n) and bit
 * varying(n) (`'111111111111'::bit(8)` is 11111111), varchar for varchar(n) and bpchar for
 * char(n) (`'abcdefgh'::varchar(5)` is abcde), and their arrays. The column's length is then
 * checked as the value is assigned to it. Key columns compare alike either way: bpchar ignores
 * the spaces that pad a char(n), and a key too long for its column matches no row, where cut it
 * would match another row's.
 */
function castType(type: string): string {
  const bits = ANY_BIT_TYPE.exec(type);
  if (bits) return `bit varying${bits[1] ?? ''}`;
  const bounded = BOUNDED_TEXT_TYPE.exec(type);
  if (bounded) return `${bounded[1] === 'character' ? 'bpchar' : 'varchar'}${bounded[3] ?? ''}`;
  return type;
}

/** format_type's name of an array column's items (`integer` of `integer[]`); any other type as it is. */
function itemType(type: string): string {
  return type.replace(/(\[\])+$/, '');
}

/** SQLSTATEs of a refused value, told apart without reading the message (which is in the server's language). */
const STRING_TOO_LONG = '22001';
const NOT_NULL_VIOLATION = '23502';
const CHECK_VIOLATION = '23514';
const CHARACTER_NOT_IN_REPERTOIRE = '22021';

/** Whether `message` names the type `type` (format_type's name) as a whole, not as the start of a longer one. */
function namesType(message: string, type: string): boolean {
  const at = message.lastIndexOf(type);
  return type !== '' && at >= 0 && !/^[\w([]/.test(message.slice(at + type.length));
}

/** Whether `message` ends with `text` in quotes, whichever quotes its language uses. */
function endsQuoting(message: string, text: string): boolean {
  // Either kind of quote mark may close: German writes »abc«.
  const end = /\s?[\p{Pi}\p{Pf}\p{Pe}"']$/u.exec(message);
  if (end === null || !message.slice(0, end.index).endsWith(text)) return false;
  return /[\p{Pi}\p{Ps}\p{Pf}"']\s?$/u.test(message.slice(0, end.index - text.length));
}

/** A type's name without its schema (`sales.code5` → `code5`, `"My Type"` → `My Type`), as a server's error names it. */
function unqualified(type: string): string {
  const name = /(?:^|\.)("(?:[^"]|"")+"|[^."]+)$/.exec(type)?.[1] ?? type;
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name;
}

/** format_type's names of text types, which read any text: a refusal never quotes their value. */
const TEXT_TYPE = /^(text|character varying(\(\d+\))?|character(\(\d+\))?|name)$/;

type Kind = WriteOperation['kind'];
/** Statements that move the staging table's rows into the table. */
type MergeKind = 'merge-insert' | 'merge-upsert';

/** Numbers staging tables, so two writers sharing a session never share one. */
let stagingTables = 0;
/** Tells this process's staging tables from other processes' (see PostgresWriter.stagingName). */
const PROCESS_TAG = randomBytes(4).toString('hex');

const UNIQUE_VIOLATION = '23505';

/**
 * Sends `ops` as COPY text to a `copy ... from stdin` statement and waits for it to finish: their
 * lines when they carry them (rows read from PostgreSQL as COPY text), otherwise their values.
 */
async function copyRows(
  client: pg.PoolClient,
  statement: string,
  ops: readonly WriteOperation[],
  width: number,
  converters: Converters,
): Promise<void> {
  const copy = client.query(copyFrom(statement));
  const done = new Promise<void>((resolve, reject) => {
    copy.on('finish', resolve);
    copy.on('error', reject);
  });
  done.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
  const send = async (chunk: string | Buffer) => {
    if (!copy.write(chunk)) await Promise.race([once(copy, 'drain'), done]);
  };
  if ((ops[0] as WriteOperation | undefined)?.line) {
    // Lines that lie back to back in the source's buffer (consecutive rows planned alike) go as
    // one view of it, without being copied.
    const first = (ops[0] as WriteOperation).line as EncodedLine;
    let data = first.data;
    let start = first.start;
    let end = first.start;
    for (const op of ops) {
      const line = op.line as EncodedLine;
      if (line.data === data && line.start === end) {
        end = line.end;
        continue;
      }
      await send(data.subarray(start, end));
      data = line.data;
      start = line.start;
      end = line.end;
    }
    await send(data.subarray(start, end));
  } else {
    // Values are turned into text 1,000 rows at a time.
    for (let start = 0; start < ops.length; start += 1000) {
      let chunk = '';
      for (let i = start; i < Math.min(ops.length, start + 1000); i++) chunk += copyLine((ops[i] as WriteOperation).values, width, converters);
      await send(chunk);
    }
  }
  copy.end();
  await done;
}

/** Types PostgreSQL gives OIDs from here on are the database's own: the same OID elsewhere may be another type. */
const FIRST_USER_OID = 16384;
const TEXT_OIDS = new Set([25, 1043]); // text, varchar
const TEXT_SOURCE_OIDS = new Set([19, 25, 1042, 1043]); // name, text, bpchar, varchar
const NUMERIC_OID = 1700;

/**
 * Whether a column of type `target` reads COPY text of a source column of type `source` as the
 * value Lockstep would otherwise send: a built-in type into itself (the text it prints is the text
 * it reads), text into text, integers into integers or numeric.
 */
function readsAsIs(source: number, target: number): boolean {
  if (source === target) return source < FIRST_USER_OID;
  if (TEXT_OIDS.has(target)) return TEXT_SOURCE_OIDS.has(source);
  return INTEGER_OIDS.has(source) && (INTEGER_OIDS.has(target) || target === NUMERIC_OID);
}

/** Parts of a failing batch at most this long are replayed row by row rather than halved. */
const ROW_BY_ROW_BELOW = 8;

class PostgresWriter implements DestinationWriter {
  private readonly table: string;
  private readonly statements = new Map<Kind | MergeKind, string>();
  /**
   * This writer's staging table, private to each session (a temporary table). Its name is this
   * process's own: behind a connection pooler, a server session (and the temporary tables it holds)
   * passes from one client to the next, and another writer's table of that name has other columns.
   */
  private readonly stagingName = `lockstep_staging_${PROCESS_TAG}_${++stagingTables}`;
  /**
   * Upserts are copied straight into the table until one meets an existing row, when the table was
   * empty as the writer started (otherwise the first batch would mostly fail and be sent twice),
   * and only when a unique index on the key columns makes an existing row an error rather than a
   * second copy.
   */
  private straightCopies: boolean;
  readonly takesLines: boolean;
  /** Per written column, how its values are written (see columnValue); null when all go as they are. */
  private readonly converters: Converters;
  /** The same for the key columns, for deletes. */
  private readonly keyConverters: Converters;
  /**
   * Per written column, its precision and scale when it is a numeric(p,s) (or an array of them),
   * which rounds a value with more places to its scale without a word (COPY, a cast and an
   * assignment alike): such a row is refused before it is written (see rounded). Null when no
   * column is one.
   */
  private readonly scales: ReadonlyArray<NumericScale | null> | null;
  /**
   * The written columns whose field of a line is checked so (a line's integer field has no
   * places, unless its column's scale is negative), in order.
   */
  private readonly lineScaleColumns: number[];

  constructor(
    private readonly destination: PostgresDestination,
    private readonly info: TableInfo,
    private readonly target: WriteTarget,
    empty: boolean,
  ) {
    this.table = quoteQualified(info.schema, info.name);
    const encoding = target.encoding;
    this.takesLines =
      encoding?.format === COPY_TEXT_FORMAT &&
      target.columns.every((column, i) => readsAsIs(encoding.types[i] ?? 0, info.columnOids.get(column) ?? 0));
    const key = [...target.keyColumns].sort().join('\u0000');
    this.straightCopies = empty && info.copiesInto && info.uniqueKeys.some((columns) => columns.join('\u0000') === key);
    this.converters = columnValues(info, target.columns);
    this.keyConverters = columnValues(info, target.keyColumns);
    const scales = target.columns.map((column) => numericScale(info.columnTypes.get(column)));
    this.scales = scales.some((s) => s !== null) ? scales : null;
    this.lineScaleColumns = scales.flatMap((s, c) => (s !== null && (s.scale < 0 || !INTEGER_OIDS.has(encoding?.types[c] ?? 0)) ? [c] : []));
  }

  /**
   * Two batches at once, each on its own connection, once rows are merged: the merges touch rows
   * all over the table, and two server processes use both cores while the run waits for its last
   * batches. Copies straight into an empty table go one at a time: two processes appending rows
   * with rising keys would fight over the index's last page.
   */
  get concurrentWrites(): number {
    return this.straightCopies ? 1 : 2;
  }

  async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
    if (batch.length === 0) return [];
    const refused = this.roundedRows(batch);
    if (refused === null) return this.writeChecked(batch);
    const rest = batch.filter((_, i) => !refused.has(i));
    const outcomes = rest.length > 0 ? await this.writeChecked(rest) : [];
    let next = 0;
    return batch.map((_, i) => refused.get(i) ?? (outcomes[next++] as RowOutcome));
  }

  /** The rows of `batch` with a value its numeric(p,s) column would round (see scales), refused by position; null when none. */
  private roundedRows(batch: readonly WriteOperation[]): Map<number, RowOutcome> | null {
    if (this.scales === null) return null;
    let refused: Map<number, RowOutcome> | null = null;
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i] as WriteOperation;
      if (op.kind === 'delete') continue;
      const why = op.line ? this.roundedField(op.line) : this.rounded(op.values);
      if (why !== null) (refused ??= new Map()).set(i, { ok: false, reason: why });
    }
    return refused;
  }

  /** Why a row of `values` cannot be written as it is: a value its numeric(p,s) column would round. */
  private rounded(values: readonly Value[]): string | null {
    const scales = this.scales as ReadonlyArray<NumericScale | null>;
    for (let c = 0; c < scales.length; c++) {
      const numeric = scales[c];
      const value = values[c] ?? null;
      if (!numeric || value === null || typeof value === 'boolean') continue;
      const rounded = numeric.brackets === '' ? (rounds(value, numeric.scale) ? String(value) : null) : roundedItem(value, numeric.scale);
      if (rounded !== null) return this.roundedMessage(c, numeric, rounded);
    }
    return null;
  }

  /** The same for a row that comes as a line: its fields are found, not decoded. */
  private roundedField(line: EncodedLine): string | null {
    const { data } = line;
    const last = line.end - 1; // the line break
    let start = line.start;
    let field = 0;
    for (const c of this.lineScaleColumns) {
      for (; field < c; field++) start = data.indexOf(9 /* tab */, start) + 1;
      let end = data.indexOf(9 /* tab */, start);
      if (end < 0 || end > last) end = last;
      const numeric = (this.scales as ReadonlyArray<NumericScale | null>)[c] as NumericScale;
      if (end - start === 2 && data[start] === 92 /* \ */ && data[start + 1] === 78 /* N */) continue;
      if (numeric.brackets !== '') {
        const item = roundedItem(data.toString('latin1', start, end), numeric.scale);
        if (item !== null) return this.roundedMessage(c, numeric, item);
      } else if (fieldRounds(data, start, end, numeric.scale)) return this.roundedMessage(c, numeric, data.toString('latin1', start, end));
    }
    return null;
  }

  private roundedMessage(c: number, numeric: NumericScale, value: string): string {
    const column = this.target.columns[c] as string;
    const declared = declaredType(this.info.columnTypes.get(column) as string, this.info.columnDomains.get(column));
    return roundedAway(column, declared, numeric, value);
  }

  /** Writes a batch none of whose rows is refused before it is written. */
  private async writeChecked(batch: WriteOperation[]): Promise<RowOutcome[]> {
    const client = await this.destination.client();
    let broken: Error | undefined;
    try {
      return await this.destination.deadline(client, `writing a batch of ${batch.length} rows to "${this.target.object}"`, this.writeOn(client, batch), this.target.signal);
    } catch (thrown) {
      const error = this.writeError(thrown);
      if (error.code !== ErrorCode.Schema) broken = error;
      throw error;
    } finally {
      // A connection that failed mid-transaction is not given back to the pool.
      client.release(broken ?? socketDestroyed(client));
    }
  }

  private async writeOn(client: pg.PoolClient, batch: WriteOperation[]): Promise<RowOutcome[]> {
    try {
      if (await this.copyInOneGo(client, batch)) return batch.map(() => ({ ok: true }));
      // `begin` goes with the batch's first statement: every round trip waits for this process
      // to read the answer, which it does between batches of rows it plans.
      const outcomes = await this.writeByKind(client, batch, true, 'begin');
      await client.query('commit');
      return outcomes;
    } catch (thrown) {
      await client.query('rollback').catch(() => undefined);
      if (classifyPostgresError(thrown) !== PostgresFailure.Data) throw thrown;
    }
    // Some row broke a rule: replay the batch in a new transaction to find exactly which. Deferred
    // constraints (Django declares every foreign key so) are checked as each part is written, not
    // at the commit, so that the part that breaks one is found.
    try {
      await client.query('begin; set constraints all immediate');
      const outcomes = await this.writeIsolating(client, batch);
      await client.query('commit');
      return outcomes;
    } catch (thrown) {
      await client.query('rollback').catch(() => undefined);
      throw thrown;
    }
  }

  /**
   * A batch of inserts, or of upserts into a table that was empty (see copyAndMerge), copied
   * straight into the table in one exchange with the server: its transaction, the copy and the
   * commit go as one message, so the server waits for nothing between batches but their rows.
   * False when the batch is not such a batch, or when an upsert met a row that exists (the
   * transaction is rolled back, and rows are merged from now on).
   */
  private async copyInOneGo(client: pg.PoolClient, batch: WriteOperation[]): Promise<boolean> {
    const kind = (batch[0] as WriteOperation).kind;
    const copies = kind === 'insert' ? this.info.copiesInto : kind === 'upsert' && this.straightCopies;
    if (!copies || !batch.every((op) => op.kind === kind)) return false;
    const { columns } = this.target;
    try {
      await copyRows(client, `begin; copy ${this.table} (${columns.map(quoteIdent).join(', ')}) from stdin; commit`, batch, columns.length, this.converters);
      return true;
    } catch (thrown) {
      if (kind !== 'upsert' || errorCode(thrown) !== UNIQUE_VIOLATION) throw thrown;
      await client.query('rollback');
      this.straightCopies = false;
      return false;
    }
  }

  /**
   * One statement per kind of operation, in order of first appearance; `bulk` copies inserts and
   * upserts. `opening` (e.g. `begin`) is sent with the first statement.
   */
  private async writeByKind(client: pg.PoolClient, batch: WriteOperation[], bulk = false, opening: string | null = null): Promise<RowOutcome[]> {
    const outcomes: RowOutcome[] = batch.map(() => ({ ok: true }));
    const byKind = new Map<Kind, number[]>();
    batch.forEach((op, i) => {
      const list = byKind.get(op.kind) ?? [];
      list.push(i);
      byKind.set(op.kind, list);
    });
    for (const [kind, indexes] of byKind) {
      const ops = indexes.map((i) => batch[i] as WriteOperation);
      // Rows that come as lines are copied even when replayed to find a bad one: they have no values.
      if ((bulk || ops[0]?.line) && (kind === 'insert' || kind === 'upsert')) {
        await this.copyAndMerge(client, kind, ops, opening);
        opening = null;
        continue;
      }
      if (opening !== null) await client.query(opening);
      opening = null;
      const matched = await this.run(client, kind, ops);
      if (matched) {
        indexes.forEach((batchIndex, i) => {
          if (!matched.has(i + 1)) outcomes[batchIndex] = this.notFound(batch[batchIndex] as WriteOperation);
        });
      }
    }
    return outcomes;
  }

  /**
   * Finds the rows that break a rule, under savepoints: a part of the batch is tried whole; when it
   * fails it is split in halves, down to single rows, which are then rejected with PostgreSQL's
   * message. A few bad rows in a large batch cost a few dozen statements, not one per row.
   */
  private async writeIsolating(client: pg.PoolClient, batch: WriteOperation[]): Promise<RowOutcome[]> {
    await client.query('savepoint lockstep_part');
    try {
      const outcomes = await this.writeByKind(client, batch);
      await client.query('release savepoint lockstep_part');
      return outcomes;
    } catch (thrown) {
      if (classifyPostgresError(thrown) !== PostgresFailure.Data) throw thrown;
      await client.query('rollback to savepoint lockstep_part');
      await client.query('release savepoint lockstep_part');
      if (batch.length === 1) return [{ ok: false, reason: this.rowMessage(batch[0] as WriteOperation, thrown) }];
    }
    // Small parts go row by row at once; larger ones are halved.
    const parts =
      batch.length <= ROW_BY_ROW_BELOW
        ? batch.map((op) => [op])
        : [batch.slice(0, Math.ceil(batch.length / 2)), batch.slice(Math.ceil(batch.length / 2))];
    const outcomes: RowOutcome[] = [];
    for (const part of parts) outcomes.push(...(await this.writeIsolating(client, part)));
    return outcomes;
  }

  /**
   * Why PostgreSQL refused the row `op`, naming the column: a value its column cannot hold, with
   * the type that would (see misfit); otherwise PostgreSQL's message, which quotes the value it
   * could not read (`invalid input syntax for type integer: "abc"`) but not its column, with the
   * column that holds that value — or that value as an item of its list, for an array column — when
   * one column alone does. A row copied as a line has no values to look at: PostgreSQL's message.
   */
  private rowMessage(op: WriteOperation, thrown: unknown): string {
    const deleting = op.kind === 'delete';
    const columns = deleting ? this.target.keyColumns : this.target.columns;
    const values = deleting ? op.key : op.values;
    const converters = deleting ? this.keyConverters : this.converters;
    const types = columns.map((column) => this.info.columnTypes.get(column) ?? '');
    const declared = columns.map((column, c) => declaredType(types[c] as string, this.info.columnDomains.get(column)));
    for (let c = 0; c < values.length; c++) {
      const value = values[c] ?? null;
      if (value === null) continue;
      const why = misfit(columns[c] as string, types[c] as string, declared[c] as string, value, writtenValue(converters, c, value));
      if (why) return why;
    }
    const message = databaseMessage(thrown);
    const said = toError(thrown).message;
    // PostgreSQL's message, with the column when one column alone can be the one it speaks of;
    // `withType` adds the column's domain when the message names only the type it is over.
    const named = (holders: readonly string[], withType = false) => {
      const column = holders.length === 1 ? (holders[0] as string) : null;
      if (column === null) return message;
      const type = withType && this.info.columnDomains.has(column) ? ` (${declared[columns.indexOf(column)]})` : '';
      return `column "${column}"${type}: ${message}`;
    };
    // What the server sends besides its message, which is in the server's language (lc_messages):
    // the SQLSTATE, and for a domain's refusal the domain's name.
    const { code, dataType } = thrown as { code?: unknown; dataType?: unknown };
    // A value too long whose length could not be told here (an array literal, a row copied as a
    // line): PostgreSQL names the type, which names the column when one such column alone has it.
    if (code === STRING_TOO_LONG) {
      return named(
        columns.filter((_, c) => {
          const type = types[c] as string;
          const element = itemType(type);
          if (!namesType(said, element)) return false;
          if (values.length === 0) return true;
          const value = values[c] ?? null;
          return value !== null && element !== type && arrayItems(value) === null;
        }),
        true,
      );
    }
    // A domain's constraint refused a value: PostgreSQL names the domain, which names the column
    // when one column alone is of it (or of an array of it) and holds a value (null, when the
    // domain is not null).
    if ((code === CHECK_VIOLATION || code === NOT_NULL_VIOLATION) && typeof dataType === 'string') {
      const refusedNull = code === NOT_NULL_VIOLATION;
      return named(
        columns.filter((column, c) => {
          if (unqualified(itemType(this.info.columnDomains.get(column) ?? '')) !== dataType) return false;
          return values.length === 0 || ((values[c] ?? null) === null) === refusedNull;
        }),
      );
    }
    // Text with a NUL character, which MySQL, SQLite and DuckDB hold and PostgreSQL's text does not.
    if (code === CHARACTER_NOT_IN_REPERTOIRE) {
      const nul = columns.filter((_, c) => typeof values[c] === 'string' && (values[c] as string).includes('\u0000'));
      if (nul.length > 0) {
        return `${named(nul)} — PostgreSQL text cannot hold the NUL character (\\0) in the value: remove it in the model's query (replace(column, char(0), '') on MySQL and SQLite, replace(column, chr(0), '') on DuckDB)`;
      }
    }
    // A value PostgreSQL could not read, which its message quotes last: `"abc"` in English, `»abc«`
    // in German, `« abc »` in French.
    const quotes = (text: string) => endsQuoting(said, text);
    const holders = columns.filter((_, c) => {
      const value = values[c] ?? null;
      const type = types[c] as string;
      if (value === null || TEXT_TYPE.test(type)) return false;
      const written = toText(writtenValue(converters, c, value));
      if (written !== null && quotes(written)) return true;
      // An array's items are read one by one: PostgreSQL quotes the item it could not read.
      const element = itemType(type);
      const items = element !== type && !TEXT_TYPE.test(element) ? arrayItems(value) : null;
      return items?.some((item) => (typeof item === 'string' || typeof item === 'number') && quotes(String(item))) ?? false;
    });
    return holders.length === 0 ? message : named(holders);
  }

  /**
   * Runs one statement for `ops`, all of one kind. For updates, returns the 1-based positions of
   * the operations that found their row.
   */
  private async run(client: pg.PoolClient, kind: Kind, ops: WriteOperation[]): Promise<Set<number> | null> {
    const { columns, keyColumns } = this.target;
    const text = this.statement(kind);
    const params: Array<Array<string | null>> =
      kind === 'delete'
        ? keyColumns.map((_, c) => ops.map((op) => toText(writtenValue(this.keyConverters, c, op.key[c] ?? null))))
        : columns.map((_, c) => ops.map((op) => toText(writtenValue(this.converters, c, op.values[c] ?? null))));
    const result = await client.query<{ ord: string }>(text, params);
    if (kind !== 'update') return null;
    return new Set(result.rows.map((r) => Number(r.ord)));
  }

  /**
   * Writes inserts and upserts in bulk. Inserts, and upserts as long as no batch of this writer has
   * met a row that already exists, are copied straight into the table (the fastest way into
   * PostgreSQL; for an upsert, under a savepoint, since any row might exist). Otherwise the rows are
   * copied into the session's staging table (text columns, emptied at commit) and merged with one
   * `insert ... on conflict` statement, casting each column to its type there, so a bad value fails
   * like in any other statement; so are inserts into a table COPY cannot go into (see TableInfo).
   */
  private async copyAndMerge(client: pg.PoolClient, kind: 'insert' | 'upsert', ops: WriteOperation[], opening: string | null): Promise<void> {
    const { columns } = this.target;
    const columnList = columns.map(quoteIdent).join(', ');
    const withOpening = (statement: string) => (opening === null ? statement : `${opening}; ${statement}`);
    if (kind === 'insert' && this.info.copiesInto) {
      if (opening !== null) await client.query(opening);
      await copyRows(client, `copy ${this.table} (${columnList}) from stdin`, ops, columns.length, this.converters);
      return;
    }
    if (this.straightCopies) {
      await client.query(withOpening('savepoint lockstep_copy'));
      opening = null;
      try {
        await copyRows(client, `copy ${this.table} (${columnList}) from stdin`, ops, columns.length, this.converters);
        // Not released: the commit (or the release of an enclosing savepoint) ends it, one round trip fewer.
        return;
      } catch (thrown) {
        await client.query('rollback to savepoint lockstep_copy; release savepoint lockstep_copy');
        if (errorCode(thrown) !== UNIQUE_VIOLATION) throw thrown;
        // Rows exist already: merge from now on (the target is being updated, not filled).
        this.straightCopies = false;
      }
    }
    const staging = quoteIdent(this.stagingName);
    await client.query(
      withOpening(`create temporary table if not exists ${staging} (${columns.map((_, i) => `a${i + 1} text`).join(', ')}) on commit delete rows`),
    );
    await copyRows(client, `copy ${staging} from stdin`, ops, columns.length, this.converters);
    await client.query(this.statement(kind === 'insert' ? 'merge-insert' : 'merge-upsert'));
  }

  private notFound(op: WriteOperation): RowOutcome {
    return { ok: false, reason: `no row with ${describeKey(this.target.keyColumns, op.key)} in "${this.target.object}"` };
  }

  /** The SQL for one kind, built once: identifiers quoted, every value an array parameter. */
  private statement(kind: Kind | MergeKind): string {
    const cached = this.statements.get(kind);
    if (cached) return cached;
    const { columns, keyColumns } = this.target;
    const typeOf = (column: string) => castType(this.info.columnTypes.get(column) as string);
    // `source` selects the parameters as rows, each cast to its column's type: a1, a2, ... (and ord).
    const source = (cols: readonly string[]) => {
      const aliases = cols.map((_, i) => `a${i + 1}`);
      const casts = cols.map((c, i) => `u.a${i + 1}::${typeOf(c)} as a${i + 1}`).join(', ');
      const arrays = cols.map((_, i) => `$${i + 1}::text[]`).join(', ');
      return `select ${casts}, u.ord from unnest(${arrays}) with ordinality as u(${aliases.join(', ')}, ord)`;
    };
    const alias = (cols: readonly string[], column: string) => `v.a${cols.indexOf(column) + 1}`;
    const keyMatch = (cols: readonly string[]) =>
      keyColumns.map((k) => `t.${quoteIdent(k)} = ${alias(cols, k)}`).join(' and ');
    const columnList = columns.map(quoteIdent).join(', ');
    const valueList = columns.map((_, i) => `v.a${i + 1}`).join(', ');
    const nonKey = columns.filter((c) => !keyColumns.includes(c));
    const staged = `select ${columns.map((c, i) => `s.a${i + 1}::${typeOf(c)}`).join(', ')} from ${quoteIdent(this.stagingName)} as s`;
    let text: string;
    switch (kind) {
      case 'insert':
        text = `insert into ${this.table} (${columnList}) select ${valueList} from (${source(columns)}) as v order by v.ord`;
        break;
      case 'upsert': {
        const conflict = keyColumns.map(quoteIdent).join(', ');
        const action =
          nonKey.length === 0
            ? 'do nothing'
            : `do update set ${nonKey.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(', ')}`;
        text = `insert into ${this.table} (${columnList}) select ${valueList} from (${source(columns)}) as v order by v.ord on conflict (${conflict}) ${action}`;
        break;
      }
      case 'update': {
        const assigned = nonKey.length > 0 ? nonKey : keyColumns;
        const sets = assigned.map((c) => `${quoteIdent(c)} = ${alias(columns, c)}`).join(', ');
        text = `update ${this.table} as t set ${sets} from (${source(columns)}) as v where ${keyMatch(columns)} returning v.ord`;
        break;
      }
      case 'delete':
        text = `delete from ${this.table} as t using (${source(keyColumns)}) as v where ${keyMatch(keyColumns)}`;
        break;
      case 'merge-insert':
        text = `insert into ${this.table} (${columnList}) ${staged}`;
        break;
      case 'merge-upsert': {
        const conflict = keyColumns.map(quoteIdent).join(', ');
        const action =
          nonKey.length === 0
            ? 'do nothing'
            : `do update set ${nonKey.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`).join(', ')}`;
        text = `insert into ${this.table} (${columnList}) ${staged} on conflict (${conflict}) ${action}`;
        break;
      }
      default:
        return assertNever(kind);
    }
    this.statements.set(kind, text);
    return text;
  }

  /** A failure of the batch as a whole, as a LockstepError the engine can act on. */
  private writeError(thrown: unknown): LockstepError {
    if (thrown instanceof LockstepError) return thrown;
    const error = toError(thrown);
    const where = `destination ${this.destination.where}`;
    const code = (error as { code?: unknown }).code;
    if (code === '42P10') {
      const keys = this.target.keyColumns.map(quoteIdent).join(', ');
      return new LockstepError(
        ErrorCode.Schema,
        `cannot upsert into "${this.target.object}" in ${where}: the key column${this.target.keyColumns.length > 1 ? 's' : ''} ${listNames(this.target.keyColumns)} ha${this.target.keyColumns.length > 1 ? 've' : 's'} no unique constraint — add a primary key or unique index on them, e.g. create unique index on ${this.table} (${keys})`,
        { cause: error },
      );
    }
    switch (classifyPostgresError(error)) {
      case PostgresFailure.Transient:
        return new LockstepError(ErrorCode.Transient, `writing to "${this.target.object}" in ${where} failed: ${error.message} — the batch can be retried`, {
          cause: error,
        });
      case PostgresFailure.Connection:
        return new LockstepError(ErrorCode.Connection, `cannot write to ${where}: ${error.message} — ${postgresConnectionHint(error)}`, {
          cause: error,
        });
      case PostgresFailure.Data:
      case PostgresFailure.Statement:
        return new LockstepError(
          ErrorCode.Schema,
          `writing to "${this.target.object}" in ${where} failed: ${databaseMessage(error)} — check that the table's columns, types and permissions match what the sync writes`,
          { cause: error },
        );
    }
  }
}

/** PostgreSQL's message for a rejected row, with its detail (which key, which value) when given. */
function databaseMessage(thrown: unknown): string {
  const error = toError(thrown);
  const detail = (error as { detail?: unknown }).detail;
  // As psql shows them: the message, its detail, then the hint (a trigger's RAISE … USING HINT says the fix there).
  return withHint(error, typeof detail === 'string' && detail ? `${error.message} (${detail})` : error.message);
}

import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, type Dirent } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, isAbsolute, resolve, sep } from 'node:path';
import type * as DuckDbApi from '@duckdb/node-api';
import type {
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBDecimal128Vector,
  DuckDBDecimal16Vector,
  DuckDBDecimal32Vector,
  DuckDBDecimal64Vector,
  DuckDBDateVector,
  DuckDBResult,
  DuckDBTimestampTZVector,
  DuckDBTimestampVector,
  DuckDBType,
  DuckDBVector,
} from '@duckdb/node-api';
import { withBackoff, type BackoffPolicy } from '../../core/backoff.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { Clock, Logger, PlannerMode, ReadOptions, RowBatch, Source, Value, WarehousePlannerAccess } from '../../core/ports.js';
import {
  canonicalJsonText,
  checkBatchSize,
  epochDaysToIsoDate,
  epochMicrosToIso,
  normalizeBigInt,
  normalizeFloat32,
  normalizeNumber,
  normalizeValue,
  RowBatcher,
  scaledDecimalText,
  timestampTextToIso,
} from '../values.js';
import { duckDbCursor } from '../cursor-sql.js';
import { acquireDuckDb, HeldInProcess, type DuckDbLease } from './duckdb-files.js';
import { isOutOfMemory } from './duckdb-memory.js';

export interface DuckDbSourceOptions {
  /** Path of an existing DuckDB file. It is opened read-only (read-write with the planner in the warehouse) and never created. */
  path: string;
  /** Where syncs of this source keep their snapshot (default: in Lockstep's store). */
  planner?: { mode: PlannerMode; schema: string };
  /**
   * The folder a model's query reads files from by relative path (`select * from 'data/orders.parquet'`),
   * as the source's own path is (default: the process's working folder, DuckDB's own).
   */
  workspaceDir?: string;
  /**
   * Folders (absolute) a model's query may read and write files in besides the workspace folder and
   * the file's own, or `any`: DuckDB's file functions (`read_csv`, `read_text`, `COPY ... TO`) and
   * its extensions reach whatever the process may, and the API's model preview runs any query.
   */
  allowedDirectories?: readonly string[] | 'any';
  /**
   * Files (absolute) a model's query never reaches, even inside those folders: Lockstep's own, as the
   * embedded store's file and its key file beside it (default: none).
   */
  protectedFiles?: readonly string[];
}

type DuckDbModule = typeof DuckDbApi;

/**
 * Reads models from a DuckDB file, opened read-only: each `read` uses its own connection and pulls
 * the result chunk by chunk (DuckDB's vectors of up to 2048 rows), regrouped into `batchSize` batches.
 * Chunks are read column by column, each column with a converter chosen once from its type.
 */
export class DuckDbSource implements Source {
  readonly cursorSql = duckDbCursor;
  private readonly path: string;
  private readonly workspaceDir: string | undefined;
  private readonly allowedDirectories: readonly string[] | 'any';
  private readonly protectedFiles: ReadonlySet<string>;
  /** The file's instance, shared with the other sources on it in this process (see duckdb-files.ts). */
  private opening: Promise<{ duck: DuckDbModule; lease: DuckDbLease }> | null = null;
  private readonly active = new Set<DuckDBConnection>();

  readonly warehousePlanner?: WarehousePlannerAccess;
  /** Why the file could not be opened for writing, when the planner (`auto`) fell back to reading only. */
  private readOnlyBecause: string | null = null;

  constructor(options: DuckDbSourceOptions) {
    this.path = options.path;
    this.workspaceDir = options.workspaceDir;
    this.allowedDirectories = options.allowedDirectories ?? [];
    this.protectedFiles = new Set(options.protectedFiles ?? []);
    const planner = options.planner;
    if (planner && planner.mode !== 'store') {
      const { mode, schema } = planner;
      this.warehousePlanner = {
        mode,
        schema,
        open: async (_signal, options) => {
          const { lease } = await this.database();
          if (this.readOnlyBecause !== null) {
            throw new LockstepError(
              ErrorCode.Connection,
              `the planner in the warehouse needs DuckDB file ${this.path} open for writing: ${this.readOnlyBecause} — make the file writable by Lockstep and close other processes holding it, or set planner: store`,
            );
          }
          const { DuckDbPlanner } = await import('./duckdb-planner.js');
          const connection = await lease.instance.connect();
          return lease.oneAtATime(() => DuckDbPlanner.open(connection, schema, `DuckDB file ${this.path}`, { ...options, memory: lease.memory }));
        },
      };
    }
  }

  /**
   * Creates the source and opens the file, failing with a clear error when it is missing; a file
   * another process holds is tried again under `retry`, as a tool that writes it (a dbt run) may be
   * about to close it.
   */
  static async open(options: DuckDbSourceOptions, retry?: { backoff: BackoffPolicy; clock: Clock; logger: Logger }): Promise<DuckDbSource> {
    const source = new DuckDbSource(options);
    if (!retry) {
      await source.database();
      return source;
    }
    await withBackoff(() => source.database(), {
      policy: retry.backoff,
      clock: retry.clock,
      onRetry: ({ attempt, delayMs, error }) => retry.logger.warn('DuckDB source file is held by another process, opening it again', { attempt, delayMs: Math.round(delayMs), error: error.message }),
    });
    return source;
  }

  async *read(query: string, options: ReadOptions): AsyncGenerator<RowBatch> {
    const batchSize = checkBatchSize(options.batchSize);
    const { signal } = options;
    signal?.throwIfAborted();
    const { duck, lease } = await this.database();
    const connection = await lease.instance.connect();
    this.active.add(connection);
    try {
      let result: DuckDBResult;
      let chunk: DuckDBDataChunk | null;
      // Sorts, joins and aggregates do their work before the first chunk: a query that runs out of
      // memory there is run again under a higher limit (nothing was read from it yet).
      for (;;) {
        try {
          result = await connection.stream(query);
          chunk = await result.fetchChunk();
          break;
        } catch (error) {
          if (limited(lease) && isOutOfMemory(error) && (await lease.memory.raise(connection).catch(() => false))) continue;
          throw this.queryError(error, lease);
        }
      }
      const columns = result.columnNames();
      const converters = columnConverters(duck, result);
      const json = columns.filter((_, i) => holdsJson(duck, result.columnTypes()[i] as DuckDBType));
      const jsonColumns = json.length > 0 ? json : undefined;
      const batcher = new RowBatcher(batchSize);
      let yielded = false;
      let read = 0;
      for (let first = true; ; first = false) {
        signal?.throwIfAborted();
        if (!first) {
          try {
            chunk = await result.fetchChunk();
          } catch (error) {
            throw this.queryError(error, lease);
          }
        }
        if (!chunk || chunk.rowCount === 0) break;
        read += chunk.rowCount;
        const rows = chunkRows(chunk, converters);
        // DuckDB frees a chunk's memory only when V8 collects its JS wrapper, which in practice
        // waits for a full GC, tens of chunks later. Resetting it now releases its string heap (about
        // half of it) at once; the rows hold JS copies of every value, so nothing reads it again.
        chunk.reset();
        for (const full of batcher.push(rows)) {
          yielded = true;
          yield { columns, rows: full, jsonColumns };
          signal?.throwIfAborted();
        }
      }
      await this.checkComplete(connection, query, read, lease);
      const rest = batcher.flush();
      // An empty result still tells the caller its columns.
      if (rest || !yielded) yield { columns, rows: rest ?? [], jsonColumns };
    } finally {
      this.active.delete(connection);
      connection.closeSync();
    }
  }

  async close(): Promise<void> {
    for (const connection of this.active) connection.closeSync();
    this.active.clear();
    const opening = this.opening;
    this.opening = null;
    if (opening) {
      const opened = await opening.catch(() => null);
      opened?.lease.release();
    }
  }

  private database(): Promise<{ duck: DuckDbModule; lease: DuckDbLease }> {
    if (!this.opening) {
      const opening = this.openInstance();
      this.opening = opening;
      // A failed open is not remembered: the next read tries again.
      opening.catch(() => {
        if (this.opening === opening) this.opening = null;
      });
    }
    return this.opening;
  }

  private async openInstance(): Promise<{ duck: DuckDbModule; lease: DuckDbLease }> {
    // Check first: DuckDB's own message for a missing file varies by version; ours says what to do.
    if (!existsSync(this.path)) {
      throw new LockstepError(
        ErrorCode.Connection,
        `DuckDB source file not found at ${this.path} — check the source's path (relative paths are resolved against the workspace folder); Lockstep opens sources read-only and never creates them`,
      );
    }
    try {
      const duck = await import('@duckdb/node-api');
      // DuckDB looks for a relative path in the process's working folder, then in these: a model
      // reads its files from the workspace folder however Lockstep was started, as long as the
      // working folder holds no file of the same name.
      const files: Record<string, string> = this.workspaceDir === undefined ? {} : { file_search_path: this.workspaceDir };
      if (this.warehousePlanner) {
        // The planner keeps its tables in the file: opened for writing, or (auto) read-only as before.
        // Comparing and sorting spill to disk past its memory limit, instead of growing the process.
        try {
          const lease = await acquireDuckDb(this.path, 'READ_WRITE', async (memory) =>
            this.confine(await duck.DuckDBInstance.create(this.path, { access_mode: 'READ_WRITE', memory_limit: memory.initial, ...files }), []),
          );
          return { duck, lease };
        } catch (thrown) {
          if (this.warehousePlanner.mode !== 'auto') throw thrown;
          this.readOnlyBecause = toError(thrown).message;
        }
      }
      const lease = await acquireDuckDb(this.path, 'READ_ONLY', async () => {
        // What spills goes to the machine's temporary folder, not next to a file Lockstep only reads
        // (whose folder may not be writable). DuckDB creates the folder when it first spills and
        // removes it when the instance closes.
        const temp_directory = join(tmpdir(), `lockstep-duckdb-${randomUUID()}`);
        // DuckDB's default memory limit: a streamed read that runs out of memory can end early without
        // an error (see duckdb-memory.ts).
        return this.confine(await duck.DuckDBInstance.create(this.path, { access_mode: 'READ_ONLY', temp_directory, ...files }), [temp_directory]);
      });
      return { duck, lease };
    } catch (thrown) {
      const error = toError(thrown);
      if (error instanceof HeldInProcess || LOCK_CONFLICT.test(error.message)) {
        const holder = error instanceof HeldInProcess ? error.message : (/Conflicting lock is held in [^.]*/.exec(error.message)?.[0] ?? error.message);
        throw new LockstepError(
          ErrorCode.Transient,
          `DuckDB file ${this.path} is held by another process (${holder}): DuckDB lets no other process open a file while one writes to it` +
            `${this.warehousePlanner ? ', and the planner in the warehouse needs it to itself' : ''} — ` +
            'run the sync after the process writing the file has closed it (e.g. trigger it when the dbt run has finished, or close the duckdb session)',
          { cause: error },
        );
      }
      throw new LockstepError(
        ErrorCode.Connection,
        `cannot open DuckDB source file ${this.path}: ${error.message} — check that it is a DuckDB database`,
        { cause: error },
      );
    }
  }

  /**
   * DuckDB's Node.js binding ends a streamed result that failed part-way (a value that does not
   * cast, error(), running out of memory) as if it were complete, and gives no way to read the
   * result's error. Taken for the whole model, a result cut short would have every row after the
   * cut planned as removed (deleted, in mirror mode). So before a read counts as complete, the rows
   * read are checked against the query's own count (cheap: DuckDB reads no column it need not).
   */
  private async checkComplete(connection: DuckDBConnection, query: string, read: number, lease: DuckDbLease): Promise<void> {
    let counted: number;
    try {
      const answer = await connection.runAndReadAll(`SELECT count(*) AS lockstep_rows FROM (\n${query}\n) AS lockstep_model`);
      counted = Number(answer.getRows()[0]?.[0]);
    } catch (error) {
      throw this.queryError(error, lease);
    }
    if (counted === read) return;
    throw new LockstepError(
      ErrorCode.Query,
      `DuckDB source ${this.path} ended the model's result after ${read} rows, though the query has ${counted}: a query that fails part-way ` +
        `(a value that does not cast, error(), running out of memory) ends its result early, and DuckDB's Node.js binding does not say why; ` +
        "the run stops rather than take the rows after the cut for removed — run the model's query in DuckDB to see what fails there. A model whose rows change from one read to the next " +
        '(USING SAMPLE, random()) cannot be synced: make it return the same rows each time',
    );
  }

  /** The folders a model's query may reach files in (see confine), or null when it may reach any. */
  private folders(): string[] | null {
    if (this.allowedDirectories === 'any') return null;
    const folders = [...new Set([this.workspaceDir, dirname(this.path), ...this.allowedDirectories].filter((f): f is string => f !== undefined))];
    return folders.map((folder) => (folder.endsWith(sep) ? folder : `${folder}${sep}`));
  }

  /**
   * Confines the instance's file access to folders() (and `internal` ones, its spill folder): DuckDB
   * then refuses a query any other file, extensions to load, and its own settings back. A relative
   * path is let through when the folder Lockstep runs in is one of them, where DuckDB reads it first.
   */
  private async confine(instance: DuckDbApi.DuckDBInstance, internal: string[]): Promise<DuckDbApi.DuckDBInstance> {
    const folders = this.folders();
    if (folders === null) return instance;
    const cwd = process.cwd();
    const inside = folders.some((folder) => {
      const path = relative(folder, cwd);
      return path === '' || (!path.startsWith('..') && !isAbsolute(path));
    });
    // A folder holding one of Lockstep's own files (the store's key file, in the workspace folder) is
    // allowed entry by entry without it: DuckDB allows whole folders or single files, nothing less.
    const reached = [...folders, ...(inside ? [`${cwd}${sep}`] : [])].map((folder) => reachable(folder, this.protectedFiles));
    const whole = reached.flatMap((r) => r.directories);
    const allowed = [...whole, ...internal.map((folder) => `${folder}${sep}`), ...(inside && whole.includes(`${cwd}${sep}`) ? [`.${sep}`] : [])];
    const files = reached.flatMap((r) => r.files);
    const list = (paths: string[]) => paths.map((path) => `'${path.replace(/'/g, "''")}'`).join(', ');
    try {
      const connection = await instance.connect();
      try {
        if (files.length > 0) await connection.run(`SET allowed_paths = [${list(files)}]`);
        await connection.run(`SET allowed_directories = [${list(allowed)}]`);
        await connection.run('SET enable_external_access = false');
      } finally {
        connection.closeSync();
      }
    } catch (error) {
      instance.closeSync();
      throw error;
    }
    return instance;
  }

  /**
   * For a file refused in a folder holding Lockstep's own files (a pattern there, or the key file):
   * that such a folder is read by name only.
   */
  private storeFolderNote(message: string): string {
    const refused = /Cannot access file "([^"]*)"/.exec(message)?.[1];
    if (refused === undefined) return '';
    const path = resolve(this.workspaceDir ?? process.cwd(), refused);
    const folder = (this.folders() ?? []).find((f) => dirname(path) === f.slice(0, -1) && [...this.protectedFiles].some((file) => file.startsWith(f)));
    return folder === undefined ? '' : `; ${folder} holds Lockstep's store and key file: there a model reads the other files by name, and patterns only in subfolders`;
  }

  private queryError(thrown: unknown, lease: DuckDbLease): LockstepError {
    const error = toError(thrown);
    if (CONFINED.test(error.message)) {
      return new LockstepError(
        ErrorCode.Query,
        `the model's query on DuckDB source ${this.path} reaches a file or an extension outside the folders a DuckDB model may use (${(this.folders() ?? []).join(', ')}): ${error.message} — ` +
          "put the file in one of them, or list its folder in the source's allowedDirectories (\"*\" lets a model reach any file and load extensions, as DuckDB does; the API's model preview then can too); a relative path is read from the workspace folder only when Lockstep runs in it" +
          this.storeFolderNote(error.message),
        { cause: error },
      );
    }
    return new LockstepError(
      ErrorCode.Query,
      isOutOfMemory(error)
        ? `the model's query ran out of memory on DuckDB source ${this.path}${limited(lease) ? `, even at a memory limit of ${lease.memory.limit}` : ''}: ${error.message} — make the model's query need less memory (fewer or narrower joins, sorts and aggregates)`
        : `the model's query failed on DuckDB source ${this.path}: ${error.message} — check the model's query${this.filesNote(error)}`,
      { cause: error },
    );
  }
  /** Where a file the query did not find was looked for, when it names one. */
  private filesNote(error: Error): string {
    if (this.workspaceDir === undefined || !/No files found that match the pattern/.test(error.message)) return '';
    return ` (relative paths in a model's query are read from the workspace folder ${this.workspaceDir}, or from the folder Lockstep runs in when it holds them)`;
  }

}

/** DuckDB's answer to a query reaching past the folders its instance is confined to (see confine). */
const CONFINED = /file system operations are disabled by configuration|Loading external extensions is disabled/i;

/** DuckDB's answer when another process holds the file (`Could not set lock on file ...: Conflicting lock is held in ... (PID n)`). */
const LOCK_CONFLICT = /Could not set lock on file/i;

/** Whether the instance runs under its `memory` limit (opened for the planner), or under DuckDB's default. */
function limited(lease: DuckDbLease): boolean {
  return lease.access === 'READ_WRITE';
}

/** Converts the item at `row` of one chunk's column vector; chosen once per column, from its type. */
type ColumnConverter = (vector: DuckDBVector, row: number) => Value;

type DecimalVector = DuckDBDecimal16Vector | DuckDBDecimal32Vector | DuckDBDecimal64Vector | DuckDBDecimal128Vector;

/** One converter per result column. */
/** Whether a column's values are JSON text of a JSON value: JSON, or a list, array, struct or map (read as JSON). */
function holdsJson(duck: DuckDbModule, type: DuckDBType): boolean {
  const Id = duck.DuckDBTypeId;
  return type.alias === 'JSON' || [Id.LIST, Id.ARRAY, Id.STRUCT, Id.MAP].includes(type.typeId);
}

function columnConverters(duck: DuckDbModule, result: DuckDBResult): ColumnConverter[] {
  return result.columnTypes().map((type) => columnConverter(duck, type));
}

/**
 * The converter for a column of this type. Each gives exactly what {@link convertDuckItem} gives for
 * the same item (the snapshot hashes the values: any difference would make every row look changed),
 * but applies its type's rule straight away instead of testing the item's class value by value, and
 * formats times and decimals from their numbers rather than from DuckDB's printed text. Types without
 * a fast path, and values a fast path does not cover (BC or 5-digit years, infinities), go through
 * convertDuckItem.
 */
function columnConverter(duck: DuckDbModule, type: DuckDBType): ColumnConverter {
  const { DuckDBTypeId: Id } = duck;
  const generic: ColumnConverter = (vector, row) => convertDuckItem(duck, type, vector.getItem(row));
  if (type.alias === 'JSON') return generic;
  switch (type.typeId) {
    case Id.BOOLEAN:
    case Id.TINYINT:
    case Id.SMALLINT:
    case Id.INTEGER:
    case Id.UTINYINT:
    case Id.USMALLINT:
    case Id.UINTEGER:
    case Id.VARCHAR:
      // Booleans, strings and integers of up to 32 bits come out of the vector in their final form.
      return (vector, row) => vector.getItem(row) as Value;
    case Id.BIGINT:
    case Id.UBIGINT:
    case Id.HUGEINT:
    case Id.UHUGEINT:
      return (vector, row) => {
        const item = vector.getItem(row) as bigint | null;
        return item === null ? null : normalizeBigInt(item);
      };
    case Id.DOUBLE:
      return (vector, row) => {
        const item = vector.getItem(row) as number | null;
        return item === null ? null : normalizeNumber(item);
      };
    case Id.FLOAT:
      return (vector, row) => {
        const item = vector.getItem(row) as number | null;
        return item === null ? null : normalizeFloat32(item);
      };
    case Id.TIMESTAMP:
    case Id.TIMESTAMP_TZ:
      return (vector, row) => {
        const item = (vector as DuckDBTimestampVector | DuckDBTimestampTZVector).getItem(row);
        if (item === null) return null;
        return epochMicrosToIso(item.micros) ?? convertDuckItem(duck, type, item);
      };
    case Id.DATE:
      return (vector, row) => {
        const item = (vector as DuckDBDateVector).getItem(row);
        if (item === null) return null;
        return epochDaysToIsoDate(item.days) ?? convertDuckItem(duck, type, item);
      };
    case Id.DECIMAL: {
      const { scale } = type;
      return (vector, row) => {
        const scaled = (vector as DecimalVector).getScaledValue(row);
        return scaled === null ? null : scaledDecimalText(scaled, scale);
      };
    }
    default:
      return generic;
  }
}

/** A chunk's rows, filled column by column. */
function chunkRows(chunk: DuckDBDataChunk, converters: readonly ColumnConverter[]): Value[][] {
  const count = chunk.rowCount;
  const width = converters.length;
  const rows: Value[][] = new Array<Value[]>(count);
  for (let row = 0; row < count; row++) rows[row] = new Array<Value>(width);
  for (let column = 0; column < width; column++) {
    const vector = chunk.getColumnVector(column);
    const convert = converters[column] as ColumnConverter;
    for (let row = 0; row < count; row++) (rows[row] as Value[])[column] = convert(vector, row);
  }
  return rows;
}

/**
 * One item of a column (as `getRows()` or `vector.getItem()` give it) as a Lockstep Value: the
 * reference conversion, applied value by value; the column converters above are its fast paths.
 */
export function convertDuckItem(duck: DuckDbModule, type: DuckDBType, value: unknown): Value {
  if (type.alias === 'JSON') return typeof value === 'string' ? canonicalJsonText(value) : convertDuckValue(duck, value, null);
  if (type.typeId === duck.DuckDBTypeId.FLOAT) return typeof value === 'number' ? normalizeFloat32(value) : convertDuckValue(duck, value, type);
  return convertDuckValue(duck, value, type);
}

/** One DuckDB value of type `type` as a Lockstep Value (values.ts has the rules). */
function convertDuckValue(duck: DuckDbModule, value: unknown, type: DuckDBType | null): Value {
  if (value === null || typeof value !== 'object') return normalizeValue(value);
  const plain = plainDuckValue(duck, value, type);
  return typeof plain === 'object' && plain !== null ? JSON.stringify(plain) : (plain as Value);
}

/**
 * A DuckDB value as plain JSON-compatible data: nested values become arrays and objects. `type` (null
 * when unknown) says which numbers are FLOATs, written as the shortest decimal that is that float, as
 * a FLOAT column's own values are (a `FLOAT[]` of embeddings holds 0.1, not 0.10000000149011612).
 */
function plainDuckValue(duck: DuckDbModule, value: unknown, type: DuckDBType | null): unknown {
  if (value === null || value === undefined) return null;
  const Id = duck.DuckDBTypeId;
  if (typeof value === 'number' && type?.typeId === Id.FLOAT) return normalizeFloat32(value);
  if (typeof value === 'bigint') return normalizeBigInt(value);
  if (typeof value !== 'object') return normalizeValue(value);
  if (value instanceof duck.DuckDBDecimalValue) return value.toString();
  if (
    value instanceof duck.DuckDBTimestampValue ||
    value instanceof duck.DuckDBTimestampTZValue ||
    value instanceof duck.DuckDBTimestampSecondsValue ||
    value instanceof duck.DuckDBTimestampMillisecondsValue ||
    value instanceof duck.DuckDBTimestampNanosecondsValue
  ) {
    return timestampTextToIso(value.toString());
  }
  if (value instanceof duck.DuckDBBlobValue) return Buffer.from(value.bytes).toString('base64');
  // DuckDB's infinite dates are the days past its last and before its first, which its own text form
  // would print as such dates (5881580-07-11): as PostgreSQL prints them, `infinity` and `-infinity`.
  if (value instanceof duck.DuckDBDateValue && Math.abs(value.days) === duck.DuckDBDateValue.PosInf.days) return value.days > 0 ? 'infinity' : '-infinity';
  if (value instanceof duck.DuckDBListValue || value instanceof duck.DuckDBArrayValue) {
    const itemType = type?.typeId === Id.LIST || type?.typeId === Id.ARRAY ? type.valueType : null;
    return value.items.map((item) => plainDuckValue(duck, item, itemType));
  }
  if (value instanceof duck.DuckDBStructValue) {
    const struct = type?.typeId === Id.STRUCT ? type : null;
    const entryType = (name: string) => (struct ? (struct.entryTypes[struct.entryIndexes[name] ?? -1] ?? null) : null);
    return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, plainDuckValue(duck, v, entryType(k))]));
  }
  if (value instanceof duck.DuckDBMapValue) {
    const valueType = type?.typeId === Id.MAP ? type.valueType : null;
    return Object.fromEntries(value.entries.map((e) => [String(e.key), plainDuckValue(duck, e.value, valueType)]));
  }
  // Dates, times, UUIDs, intervals, bits, unions: DuckDB's own text form.
  return String(value);
}

/**
 * What DuckDB may be allowed of `folder` (ending in the separator) so that none of `hidden` is
 * reached: the whole folder when it holds none of them, else its files and folders one by one.
 */
function reachable(folder: string, hidden: ReadonlySet<string>): { directories: string[]; files: string[] } {
  if (![...hidden].some((file) => file.startsWith(folder))) return { directories: [folder], files: [] };
  const reached: { directories: string[]; files: string[] } = { directories: [], files: [] };
  let entries: Dirent[];
  try {
    entries = readdirSync(folder, { withFileTypes: true });
  } catch {
    return reached;
  }
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (hidden.has(path)) continue;
    if (!entry.isDirectory()) {
      reached.files.push(path);
      continue;
    }
    const inner = reachable(`${path}${sep}`, hidden);
    reached.directories.push(...inner.directories);
    reached.files.push(...inner.files);
  }
  return reached;
}

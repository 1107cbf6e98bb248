import { existsSync } from 'node:fs';
import type * as DuckDbApi from '@duckdb/node-api';
import type { DuckDBConnection, DuckDBInstance, DuckDBResult } from '@duckdb/node-api';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { ReadOptions, RowBatch, Source, Value } from '../../core/ports.js';
import {
  canonicalJsonText,
  checkBatchSize,
  normalizeBigInt,
  normalizeFloat32,
  normalizeValue,
  RowBatcher,
  timestampTextToIso,
} from '../values.js';

export interface DuckDbSourceOptions {
  /** Path of an existing DuckDB file. It is opened read-only and never created. */
  path: string;
}

type DuckDbModule = typeof DuckDbApi;

/** DuckDB type ids we convert specially (from DuckDBTypeId). */
const FLOAT_TYPE_ID = 10;

/**
 * Reads models from a DuckDB file, opened read-only: each `read` uses its own connection and pulls
 * the result chunk by chunk (DuckDB's vectors of up to 2048 rows), regrouped into `batchSize` batches.
 */
export class DuckDbSource implements Source {
  private readonly path: string;
  private opening: Promise<{ duck: DuckDbModule; instance: DuckDBInstance }> | null = null;
  private readonly active = new Set<DuckDBConnection>();

  constructor(options: DuckDbSourceOptions) {
    this.path = options.path;
  }

  /** Creates the source and opens the file, failing with a clear error when it is missing or locked. */
  static async open(options: DuckDbSourceOptions): Promise<DuckDbSource> {
    const source = new DuckDbSource(options);
    await source.database();
    return source;
  }

  async *read(query: string, options: ReadOptions): AsyncGenerator<RowBatch> {
    const batchSize = checkBatchSize(options.batchSize);
    const { signal } = options;
    signal?.throwIfAborted();
    const { duck, instance } = await this.database();
    const connection = await instance.connect();
    this.active.add(connection);
    try {
      let result: DuckDBResult;
      try {
        result = await connection.stream(query);
      } catch (error) {
        throw this.queryError(error);
      }
      const columns = result.columnNames();
      const converters = columns.map((_, i) => this.converterFor(duck, result, i));
      const batcher = new RowBatcher(batchSize);
      let yielded = false;
      for (;;) {
        signal?.throwIfAborted();
        let chunk;
        try {
          chunk = await result.fetchChunk();
        } catch (error) {
          throw this.queryError(error);
        }
        if (!chunk || chunk.rowCount === 0) break;
        const rows = chunk.getRows().map((row) => row.map((value, i) => (converters[i] as Converter)(value)));
        for (const full of batcher.push(rows)) {
          yielded = true;
          yield { columns, rows: full };
          signal?.throwIfAborted();
        }
      }
      const rest = batcher.flush();
      // An empty result still tells the caller its columns.
      if (rest || !yielded) yield { columns, rows: rest ?? [] };
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
      opened?.instance.closeSync();
    }
  }

  private database(): Promise<{ duck: DuckDbModule; instance: DuckDBInstance }> {
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

  private async openInstance(): Promise<{ duck: DuckDbModule; instance: DuckDBInstance }> {
    // Check first: DuckDB's own message for a missing file varies by version; ours says what to do.
    if (!existsSync(this.path)) {
      throw new LockstepError(
        ErrorCode.Connection,
        `DuckDB source file not found at ${this.path} — check the source's path (relative paths are resolved against the workspace folder); Lockstep opens sources read-only and never creates them`,
      );
    }
    try {
      const duck = await import('@duckdb/node-api');
      const instance = await duck.DuckDBInstance.create(this.path, { access_mode: 'READ_ONLY' });
      return { duck, instance };
    } catch (thrown) {
      const error = toError(thrown);
      throw new LockstepError(
        ErrorCode.Connection,
        `cannot open DuckDB source file ${this.path}: ${error.message} — check that it is a DuckDB database and that no other process holds it open for writing`,
        { cause: error },
      );
    }
  }

  private queryError(thrown: unknown): LockstepError {
    const error = toError(thrown);
    return new LockstepError(
      ErrorCode.Query,
      `the model's query failed on DuckDB source ${this.path}: ${error.message} — check the model's query`,
      { cause: error },
    );
  }

  private converterFor(duck: DuckDbModule, result: DuckDBResult, column: number): Converter {
    const type = result.columnType(column);
    if (type.alias === 'JSON') return (v) => (typeof v === 'string' ? canonicalJsonText(v) : convertDuckValue(duck, v));
    if (type.typeId === FLOAT_TYPE_ID) return (v) => (typeof v === 'number' ? normalizeFloat32(v) : convertDuckValue(duck, v));
    return (v) => convertDuckValue(duck, v);
  }
}

type Converter = (value: unknown) => Value;

/** One DuckDB value as a Lockstep Value (values.ts has the rules). */
function convertDuckValue(duck: DuckDbModule, value: unknown): Value {
  if (value === null || typeof value !== 'object') return normalizeValue(value);
  const plain = plainDuckValue(duck, value);
  return typeof plain === 'object' && plain !== null ? JSON.stringify(plain) : (plain as Value);
}

/** A DuckDB value as plain JSON-compatible data: nested values become arrays and objects. */
function plainDuckValue(duck: DuckDbModule, value: unknown): unknown {
  if (value === null || value === undefined) return null;
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
  if (value instanceof duck.DuckDBListValue || value instanceof duck.DuckDBArrayValue) {
    return value.items.map((item) => plainDuckValue(duck, item));
  }
  if (value instanceof duck.DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, plainDuckValue(duck, v)]));
  }
  if (value instanceof duck.DuckDBMapValue) {
    return Object.fromEntries(value.entries.map((e) => [String(e.key), plainDuckValue(duck, e.value)]));
  }
  // Dates, times, UUIDs, intervals, bits, unions: DuckDB's own text form.
  return String(value);
}

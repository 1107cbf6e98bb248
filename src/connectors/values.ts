/**
 * Value normalisation shared by every source, so the same data reads the same from PostgreSQL,
 * DuckDB and SQLite (the snapshot hashes these values; a difference would look like a change):
 *
 * - integers → numbers; beyond ±2^53 → decimal strings
 * - floats → numbers (NaN and ±Infinity → the strings `NaN`, `Infinity`, `-Infinity`)
 * - decimals / numeric → strings, as the database prints them (`12.30`)
 * - text → strings; booleans → booleans (SQLite has none: its 0/1 stay numbers)
 * - dates → `YYYY-MM-DD`; timestamps → ISO-8601 in UTC, `2024-01-02T03:04:05.000Z`, with the
 *   micro/nanoseconds appended only when they are not zero; timestamps without time zone are UTC
 * - JSON, arrays, structs and other objects → compact JSON text; blobs → base64
 */
import { ErrorCode, LockstepError } from '../core/errors.js';
import type { Value } from '../core/ports.js';

/** An integer as a number when it is exactly representable, otherwise as its decimal string. */
export function normalizeBigInt(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

/** An integer printed by a database (e.g. PostgreSQL int8) as a number when safe, else the string. */
export function normalizeIntegerText(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/** Non-finite floats have no JSON form; they travel as their names. */
export function normalizeNumber(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}

/**
 * The shortest decimal that reads back as the same 32-bit float, as PostgreSQL prints a `real`
 * (DuckDB hands FLOAT over widened to a double: 0.1 would otherwise become 0.10000000149011612).
 */
export function normalizeFloat32(value: number): number | string {
  if (!Number.isFinite(value)) return String(value);
  for (let precision = 1; precision <= 9; precision++) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

const TIMESTAMP_TEXT =
  /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:\s*(Z|[+-]\d{2}(?::?\d{2})?(?::?\d{2})?))?( BC)?$/;

/** A four-digit-year timestamp whose offset, if any, is zero. */
const PLAIN_UTC_TIMESTAMP_TEXT = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.(\d+))?(?:Z|[+-]00(?::?00)?)?$/;

/**
 * A timestamp as printed by PostgreSQL (DateStyle ISO) or DuckDB — `2024-01-02 03:04:05.123456`,
 * optionally with an offset like `+02`, `+05:30` — as ISO-8601 in UTC. Text without an offset is
 * taken as UTC. Values we cannot place on the calendar (`infinity`, BC dates) are returned as given.
 */
export function timestampTextToIso(text: string): string {
  // Most values are already UTC (no offset, or +00): only the text changes, no calendar arithmetic.
  const plain = PLAIN_UTC_TIMESTAMP_TEXT.exec(text);
  if (plain) return `${text.slice(0, 10)}T${text.slice(11, 19)}.${formatFraction(plain[1] ?? '')}Z`;
  const m = TIMESTAMP_TEXT.exec(text.trim());
  if (!m || m[9]) return text;
  const [, y, mo, d, h, mi, s, fraction = '', offset] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  let ms = date.getTime();
  if (offset && offset !== 'Z') {
    const sign = offset.startsWith('-') ? -1 : 1;
    const digits = offset.slice(1).replace(/:/g, '');
    const seconds =
      Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4) || '0') * 60 + Number(digits.slice(4, 6) || '0');
    ms -= sign * seconds * 1000;
  }
  const whole = new Date(ms).toISOString().slice(0, -5); // drop ".000Z"
  return `${whole}.${formatFraction(fraction)}Z`;
}

/** Milliseconds always (3 digits); finer digits only when they are not zero. */
function formatFraction(digits: string): string {
  if (digits.length < 3) return digits.padEnd(3, '0');
  let end = digits.length;
  while (end > 3 && digits.charCodeAt(end - 1) === 48 /* 0 */) end--;
  return end === digits.length ? digits : digits.slice(0, end);
}

/** Epoch milliseconds as ISO-8601 UTC. */
export function isoFromMillis(ms: number): string {
  return new Date(ms).toISOString();
}

/** JSON text in its compact form, so `{"a": 1}` and `{"a":1}` compare equal. Invalid JSON is kept as is. */
export function canonicalJsonText(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

/** Something JSON.stringify can print faithfully: bigints, buffers and dates made plain first. */
export function toJsonCompatible(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'bigint':
      return normalizeBigInt(value);
    case 'number':
      return normalizeNumber(value);
    case 'string':
    case 'boolean':
      return value;
    case 'object':
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      if (Array.isArray(value)) return value.map(toJsonCompatible);
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonCompatible(v)]));
    default:
      return String(value);
  }
}

/** Any value a driver hands back, as a Lockstep `Value`. */
export function normalizeValue(value: unknown): Value {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return normalizeNumber(value);
    case 'bigint':
      return normalizeBigInt(value);
    case 'object':
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      return JSON.stringify(toJsonCompatible(value));
    default:
      return String(value);
  }
}

/**
 * Regroups rows arriving in chunks of any size into batches of at most `batchSize` rows, holding
 * no more than one chunk plus one batch at a time.
 */
export class RowBatcher {
  private pending: Value[][] = [];

  constructor(private readonly batchSize: number) {}

  /** Adds rows; returns the full batches they complete. */
  push(rows: Value[][]): Value[][][] {
    const full: Value[][][] = [];
    for (const row of rows) {
      this.pending.push(row);
      if (this.pending.length >= this.batchSize) {
        full.push(this.pending);
        this.pending = [];
      }
    }
    return full;
  }

  /** The last, partial batch, if any. */
  flush(): Value[][] | null {
    if (this.pending.length === 0) return null;
    const rest = this.pending;
    this.pending = [];
    return rest;
  }
}

/** Checks a batch size early, with a message naming it. */
export function checkBatchSize(batchSize: number): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new LockstepError(ErrorCode.Validation, `batchSize must be a positive integer, got ${String(batchSize)}`);
  }
  return batchSize;
}

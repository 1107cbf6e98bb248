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
  // Rounding is monotonic, so any value beyond ±(2^53 - 1) becomes a double of at least 2^53, which is
  // not a safe integer: one conversion decides, with no bigint comparisons (this runs for every value).
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value.toString();
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
 * taken as UTC. Values we cannot place on the calendar (`infinity`, BC dates, years past 275760) are returned as given.
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
  const instant = new Date(ms);
  // PostgreSQL's timestamps reach year 294276 and DuckDB's 294247; a Date ends in 275760.
  if (Number.isNaN(instant.getTime())) return text;
  const whole = instant.toISOString().slice(0, -5); // drop ".000Z"
  return `${whole}.${formatFraction(fraction)}Z`;
}

/** Milliseconds always (3 digits); finer digits only when they are not zero. */
function formatFraction(digits: string): string {
  if (digits.length < 3) return digits.padEnd(3, '0');
  let end = digits.length;
  while (end > 3 && digits.charCodeAt(end - 1) === 48 /* 0 */) end--;
  return end === digits.length ? digits : digits.slice(0, end);
}

/** 0001-01-02T00:00:00Z and 9999-12-31T00:00:00Z: the instants {@link epochMicrosToIso} formats itself. */
const FIRST_FORMATTED_MS = -62_135_510_400_000;
const END_FORMATTED_MS = 253_402_214_400_000;

/**
 * Microseconds since the epoch (a DuckDB TIMESTAMP / TIMESTAMPTZ) as ISO-8601 UTC, with the same
 * fraction rule as {@link timestampTextToIso}: milliseconds always, microseconds only when not zero.
 * Computed from the number, not from printed text. Returns null outside years 0001–9999 (keeping a
 * day's margin at both ends), where the caller's text-based path decides the form.
 */
export function epochMicrosToIso(micros: bigint): string | null {
  let ms: number;
  let subMs: number;
  const n = Number(micros);
  if (Number.isSafeInteger(n)) {
    // Integer arithmetic: n / 1000 in floating point can round up to the next millisecond.
    subMs = n % 1000;
    if (subMs < 0) subMs += 1000;
    ms = (n - subMs) / 1000;
  } else {
    // Beyond ±2^53 µs (before 1685 or after 2255) a double loses microseconds: split as bigints.
    const whole = micros / 1000n;
    subMs = Number(micros - whole * 1000n);
    ms = Number(whole);
    if (subMs < 0) {
      subMs += 1000;
      ms -= 1;
    }
  }
  if (ms < FIRST_FORMATTED_MS || ms >= END_FORMATTED_MS) return null;
  const iso = isoFromMillisInRange(ms);
  if (subMs === 0) return iso;
  return `${iso.slice(0, -1)}${trimTrailingZeros(String(subMs).padStart(3, '0'))}Z`;
}

const DAY_MS = 86_400_000;

/**
 * Epoch milliseconds within years 0001–9999 as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the same text as
 * `Date#toISOString` at a third of its cost, built as one flat string (the row hash then reads it
 * without flattening pieces). The calendar date comes from Howard Hinnant's `civil_from_days`.
 */
function isoFromMillisInRange(ms: number): string {
  let msOfDay = ms % DAY_MS;
  if (msOfDay < 0) msOfDay += DAY_MS;
  // Days since 0000-03-01, split into 400-year eras of 146097 days (March-based years put the leap day last).
  const z = (ms - msOfDay) / DAY_MS + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const marchMonth = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * marchMonth + 2) / 5) + 1;
  const month = marchMonth < 10 ? marchMonth + 3 : marchMonth - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hours = (msOfDay / 3_600_000) | 0;
  const minutes = ((msOfDay / 60_000) | 0) % 60;
  const seconds = ((msOfDay / 1000) | 0) % 60;
  const millis = msOfDay % 1000;
  return String.fromCharCode(
    digitAt(year, 1000), digitAt(year, 100), digitAt(year, 10), digitAt(year, 1), 45, // -
    digitAt(month, 10), digitAt(month, 1), 45, // -
    digitAt(day, 10), digitAt(day, 1), 84, // T
    digitAt(hours, 10), digitAt(hours, 1), 58, // :
    digitAt(minutes, 10), digitAt(minutes, 1), 58, // :
    digitAt(seconds, 10), digitAt(seconds, 1), 46, // .
    digitAt(millis, 100), digitAt(millis, 10), digitAt(millis, 1), 90, // Z
  );
}

/** Character code of the decimal digit of `n` (a non-negative integer) at `place` (1, 10, 100...). */
function digitAt(n: number, place: number): number {
  return 48 + (Math.floor(n / place) % 10);
}

function trimTrailingZeros(digits: string): string {
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === 48 /* 0 */) end--;
  return digits.slice(0, end);
}

/** 0001-01-01 and 9999-12-31 as days since the epoch: the dates {@link epochDaysToIsoDate} formats. */
const FIRST_FORMATTED_DAY = -719_162;
const LAST_FORMATTED_DAY = 2_932_896;

/** Days since the epoch (a DuckDB DATE) as `YYYY-MM-DD`; null outside years 0001–9999 (and for ±infinity). */
export function epochDaysToIsoDate(days: number): string | null {
  if (days < FIRST_FORMATTED_DAY || days > LAST_FORMATTED_DAY) return null;
  return new Date(days * 86_400_000).toISOString().slice(0, 10);
}

/**
 * A decimal stored as a scaled integer (`12.30` is 1230 at scale 2) as the database prints it: the
 * whole part without leading zeros (at least `0`), then exactly `scale` fraction digits.
 */
export function scaledDecimalText(scaled: number | bigint, scale: number): string {
  if (scale === 0) return String(scaled);
  const negative = scaled < 0;
  const digits = String(negative ? -scaled : scaled).padStart(scale + 1, '0');
  const point = digits.length - scale;
  return `${negative ? '-' : ''}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Epoch milliseconds as ISO-8601 UTC. */
export function isoFromMillis(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * JSON text in its compact form, so `{"a": 1}` and `{"a":1}` compare equal. Invalid JSON is kept as is.
 * JSON.parse reads numbers as doubles, so text holding a number a double cannot give back
 * (`12345678901234567890`, an id beyond 2^53, would come back as `12345678901234567000`; `1e400`
 * as `null`) only loses the spaces between its tokens: its numbers, keys and strings stay as written.
 */
export function canonicalJsonText(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  if (MAYBE_INEXACT_NUMBER.test(text) && hasInexactNumber(text)) return text.replace(JSON_STRING_OR_SPACE, (m) => (m.charCodeAt(0) === 34 /* " */ ? m : ''));
  return JSON.stringify(parsed);
}

/** A number of 16 significant digits or more, or with an exponent: one a double may not hold (a cheap first test). */
const MAYBE_INEXACT_NUMBER = /\d(?:\.?\d){15}|\d[eE]/;
const JSON_STRING_OR_NUMBER = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const JSON_STRING_OR_SPACE = /"(?:[^"\\]|\\.)*"|[ \t\n\r]+/g;

/** Whether valid JSON text holds a number whose double, printed, is another number. */
function hasInexactNumber(text: string): boolean {
  for (const [token] of text.matchAll(JSON_STRING_OR_NUMBER)) {
    if (token.charCodeAt(0) !== 34 /* " */ && !sameDecimal(token, String(Number(token)))) return true;
  }
  return false;
}

const DECIMAL_TEXT = /^(-)?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * Whether two decimal texts (`2.50`, `2.5`, `25e-1`) spell the same number, whatever their zeros
 * and exponents; false when either is not a decimal (`Infinity`, `NaN`).
 */
export function sameDecimal(a: string, b: string): boolean {
  const x = decimalParts(a);
  const y = decimalParts(b);
  return x !== null && y !== null && x.digits === y.digits && (x.digits === '' || (x.negative === y.negative && x.exponent === y.exponent));
}

/**
 * The decimal places a number needs (`1.2300` needs 2, `1e-7` 7, `120` none), from a number or
 * its decimal text; null for anything else.
 */
export function decimalPlaces(value: Value): number | null {
  const scale = decimalScale(value);
  return scale === null ? null : Math.max(0, scale);
}

/**
 * The scale a number needs, as PostgreSQL counts a numeric's: its decimal places (`1.2300` needs
 * 2), or less the zeros that end a whole number (`1200` needs -2); zero needs none (-Infinity).
 * Null for anything that is not a number (`NaN`, `Infinity`, other text).
 */
export function decimalScale(value: Value): number | null {
  const parts = typeof value === 'number' ? decimalParts(String(value)) : typeof value === 'string' ? decimalParts(value) : null;
  if (parts === null) return null;
  return parts.digits === '' ? -Infinity : -parts.exponent;
}

/** A decimal text as its significant digits (no leading or trailing zeros; '' for zero), sign and exponent. */
function decimalParts(text: string): { negative: boolean; digits: string; exponent: number } | null {
  const m = DECIMAL_TEXT.exec(text.trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return null;
  const fraction = m[3] ?? '';
  let digits = `${m[2]}${fraction}`.replace(/^0+/, '');
  let exponent = Number(m[4] ?? 0) - fraction.length;
  const kept = digits.replace(/0+$/, '');
  exponent += digits.length - kept.length;
  digits = kept;
  return { negative: m[1] === '-', digits, exponent };
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

/** Base64 as sources write binary values (normalizeValue): groups of 4 characters, padded. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The bytes of a binary value as sources give it (base64 text), for a destination's binary column;
 * null for a value that is not base64 text, which the destination writes as it is.
 */
export function base64Bytes(value: Value): Buffer | null {
  return typeof value === 'string' && BASE64.test(value) ? Buffer.from(value, 'base64') : null;
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

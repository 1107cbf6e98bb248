/**
 * PostgreSQL's COPY text format, shared by the PostgreSQL source (which reads it) and destination
 * (which writes it): one row per line, fields separated by tabs, `\N` for null, and backslash
 * escapes for backslashes, tabs and line breaks inside values.
 */
import { encodeKey } from '../core/keys.js';
import type { EncodedRows, Value } from '../core/ports.js';
import { normalizeValue } from './values.js';

/** The name of the format in `EncodedRows.format` and `WriteTarget.encoding`. */
export const COPY_TEXT_FORMAT = 'postgresql-copy-text';

/** Turns the text of one field into its value (the column type's parser). */
export type TextParser = (text: string) => unknown;

const TAB = 9;
const BACKSLASH = 92;
const MINUS = 45;
const ZERO = 48;
/** PostgreSQL's int8, int2 and int4 (type OIDs). */
export const INTEGER_OIDS: ReadonlySet<number> = new Set([20, 21, 23]);
const COPY_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** One field of COPY text: `\N` is null, backslash escapes undone, then the column's parser. */
export function parseCopyField(raw: string, parse: TextParser): Value {
  if (raw === '\\N') return null;
  const text = raw.includes('\\') ? raw.replace(/\\(.)/g, (_, c: string) => COPY_ESCAPES[c] ?? c) : raw;
  return normalizeValue(parse(text));
}

/**
 * One row of COPY text: tab-separated, `\N` for null, backslash, tab and line breaks escaped.
 * `convert`: per column, how a value is written when not as it is (applied here, so that a row
 * needs no converted copy).
 */
export function copyLine(values: readonly Value[], width: number, convert?: ReadonlyArray<((value: Value) => Value) | null> | null): string {
  let line = '';
  for (let c = 0; c < width; c++) {
    const converter = convert?.[c];
    const value = converter ? converter(values[c] ?? null) : values[c];
    if (c > 0) line += '\t';
    if (value === null || value === undefined) line += '\\N';
    else if (typeof value === 'string') line += COPY_SPECIAL.test(value) ? value.replace(COPY_SPECIAL_ALL, escapeCopyChar) : value;
    else line += String(value);
  }
  return line + '\n';
}

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIAL_ALL = /[\\\t\n\r]/g;
const COPY_CHAR_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
function escapeCopyChar(c: string): string {
  return COPY_CHAR_ESCAPES[c] ?? c;
}

/** The number the ASCII digits `data[start..end)` spell (at most 15 of them), or -1 when another byte is among them. */
function digitsValue(data: Buffer, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (data[i] as number) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * Rows of COPY text as the source received them. Fields are found and parsed only when asked for:
 * planning decodes the key of every row, the values only of rows a destination needs as values.
 */
export class CopyTextRows implements EncodedRows {
  readonly format = COPY_TEXT_FORMAT;

  constructor(
    readonly data: Buffer,
    readonly starts: Int32Array,
    readonly types: readonly number[],
    private readonly parsers: readonly TextParser[],
  ) {}

  decode(row: number, columns?: readonly number[]): Value[] {
    const data = this.data;
    // The line break ends the last field.
    const end = (this.starts[row + 1] as number) - 1;
    const width = this.parsers.length;
    const wanted = columns ?? null;
    const values: Value[] = new Array<Value>(wanted ? wanted.length : width);
    let last = width - 1;
    if (wanted) {
      last = 0;
      for (const c of wanted) if (c > last) last = c;
    }
    let fieldStart = this.starts[row] as number;
    for (let c = 0; c <= last; c++) {
      let fieldEnd = c === width - 1 ? end : data.indexOf(TAB, fieldStart);
      if (fieldEnd < 0 || fieldEnd > end) fieldEnd = end;
      const slot = wanted ? wanted.indexOf(c) : c;
      if (slot >= 0) {
        const value = this.field(fieldStart, fieldEnd, c);
        values[slot] = value;
        // A column asked for twice gets its value twice.
        if (wanted) for (let s = slot + 1; s < wanted.length; s++) if (wanted[s] === c) values[s] = value;
      }
      fieldStart = fieldEnd + 1;
    }
    return values;
  }

  keyText(row: number, columns: readonly number[]): string | null {
    // The common key, one integer column: its text is the number as JSON spells it (PostgreSQL
    // prints integers without a sign or leading zeros of its own), while it is safe as a number.
    if (columns.length === 1 && INTEGER_OIDS.has(this.types[columns[0] as number] as number)) {
      const column = columns[0] as number;
      let start = this.starts[row] as number;
      for (let c = 0; c < column; c++) start = this.data.indexOf(TAB, start) + 1;
      let end = column === this.parsers.length - 1 ? (this.starts[row + 1] as number) - 1 : this.data.indexOf(TAB, start);
      if (end < 0) end = (this.starts[row + 1] as number) - 1;
      const negative = this.data[start] === MINUS;
      const first = negative ? start + 1 : start;
      // The number is read from its digits here: decoding the text per row (a call into the buffer's
      // native code) took a seventh of a first run's own work at 2M rows. A leading zero (never
      // printed by PostgreSQL) is left to the decoding below.
      const value = end - first >= 1 && end - first <= 15 && (this.data[first] !== ZERO || end - first === 1) ? digitsValue(this.data, first, end) : -1;
      if (value >= 0) return negative ? `[-${value}]` : `[${value}]`;
    }
    const key = this.decode(row, columns);
    return key.includes(null) ? null : encodeKey(key);
  }

  private field(start: number, end: number, column: number): Value {
    const data = this.data;
    if (end - start === 2 && data[start] === BACKSLASH && data[start + 1] === 78 /* N */) return null;
    return parseCopyField(data.toString('utf8', start, end), this.parsers[column] as TextParser);
  }
}

/**
 * A read batch's rows as planning sees them, whether they came as values or encoded (PlanningBatch),
 * and the operations planning makes of them (PlannedOp), which go to the destination as they are.
 */
import { ErrorCode, LockstepError } from '../core/errors.js';
import { decodeKey, encodeKey, encodeKeyOf } from '../core/keys.js';
import type { EncodedLine, EncodedRows, Value, WriteOperation } from '../core/ports.js';
import { hashBytes, hashRow } from './row-hash.js';

/** What happened to a row in the model. */
export type Change = NonNullable<WriteOperation['change']>;

/**
 * One planned operation, between planning and delivery; handed to the destination as it is. A row
 * that goes as its line is its own `EncodedLine` (no second object per row). An encoded row that
 * goes as values is decoded when the destination first asks for them, at write time: the values
 * then live as long as the write, not from planning on.
 */
export class PlannedOp implements WriteOperation, EncodedLine {
  /** A removal: the key only. */
  static removal(keyText: string): PlannedOp {
    return new PlannedOp('removed', 'delete', keyText, NO_VALUES, null, 0, NO_LINE, 0, 0, 0, 0);
  }

  /**
   * A row read as values (its key taken from them, at `keyIndexes`, when asked for). `keyText`
   * null: spelled from the values when first asked for.
   */
  static ofValues(change: Change, kind: WriteOperation['kind'], keyText: string | null, values: Value[], hashHigh: number, hashLow: number, keyIndexes: readonly number[]): PlannedOp {
    return new PlannedOp(change, kind, keyText, values, null, 0, NO_LINE, 0, 0, hashHigh, hashLow, keyIndexes);
  }

  /** A row of `rows` that goes as its line, bytes `start..end` of `data` (`keyText` null: spelled from its key columns, `keyIndexes`, when asked for). */
  static ofLine(
    change: Change,
    kind: WriteOperation['kind'],
    keyText: string | null,
    rows: EncodedRows,
    row: number,
    keyIndexes: readonly number[],
    hashHigh: number,
    hashLow: number,
  ): PlannedOp {
    const { data, starts } = rows;
    return new PlannedOp(change, kind, keyText, NO_VALUES, rows, row, data, starts[row] as number, starts[row + 1] as number, hashHigh, hashLow, keyIndexes);
  }

  /** An encoded row that goes as values, decoded from row `row` of `rows` when asked for (`keyText` null: spelled from its key columns when asked for). */
  static ofEncoded(change: Change, kind: WriteOperation['kind'], keyText: string | null, rows: EncodedRows, row: number, keyIndexes: readonly number[], hashHigh: number, hashLow: number): PlannedOp {
    return new PlannedOp(change, kind, keyText, null, rows, row, NO_LINE, 0, 0, hashHigh, hashLow, keyIndexes);
  }

  private constructor(
    /** What happened to the row in the model. */
    readonly change: Change,
    readonly kind: WriteOperation['kind'],
    /** The encoded key, once spelled (see keyText). */
    private spelled: string | null,
    private decodedValues: Value[] | null,
    /** The row's source when it was read encoded: row `row` of `encoded` (its values are decoded from it when asked for). */
    private readonly encoded: EncodedRows | null,
    private readonly row: number,
    /** The row's line, when it goes as one: bytes `start..end` of `data`. */
    readonly data: Buffer,
    readonly start: number,
    readonly end: number,
    /** The hash of the row, high and low word (0 for removals). */
    readonly hashHigh: number,
    readonly hashLow: number,
    /** Where the key's columns are in the row (null for a removal, which has its key text). */
    private readonly keyIndexes: readonly number[] | null = null,
  ) {}

  /** The key's values, once asked for. */
  private decodedKey: Value[] | null = null;

  /**
   * The encoded key. Planned in the warehouse, a row's key is seldom asked for (the last row of a
   * batch, a rejected row): it is spelled then, not for every row that travels.
   */
  get keyText(): string {
    return (this.spelled ??= this.spell());
  }

  private spell(): string {
    const keyIndexes = this.keyIndexes as readonly number[];
    const text = this.encoded ? this.encoded.keyText(this.row, keyIndexes) : encodeKey(keyOf(this.decodedValues as Value[], keyIndexes));
    // Planning refused rows with a null key column before planning them.
    if (text === null) throw new LockstepError(ErrorCode.Internal, 'a planned row has a null key column, which planning refuses before it plans a row');
    return text;
  }

  /**
   * The key's values, when first asked for (a row that goes as its line seldom is, an upsert to an
   * HTTP API never): taken from the row's values, or decoded from `keyText`.
   */
  get key(): Value[] {
    return (this.decodedKey ??= this.keyIndexes && this.encoded === null ? keyOf(this.decodedValues as Value[], this.keyIndexes) : decodeKey(this.keyText));
  }

  get values(): Value[] {
    return (this.decodedValues ??= this.encoded ? this.encoded.decode(this.row) : NO_VALUES);
  }

  get line(): EncodedLine | undefined {
    return this.data === NO_LINE ? undefined : this;
  }
}

const NO_LINE = Buffer.alloc(0);

/** A row of the model that passed validation, before it is compared with the snapshot (`row`: its place in the batch). */
export interface Candidate {
  keyText: string;
  row: number;
  hashHigh: number;
  hashLow: number;
}

const NO_VALUES: Value[] = [];

/** The key's values of a row of values. */
function keyOf(values: readonly Value[], keyIndexes: readonly number[]): Value[] {
  if (keyIndexes.length === 1) return [values[keyIndexes[0] as number] ?? null];
  return keyIndexes.map((i) => values[i] ?? null);
}

/** A read batch as planning sees it, whether its rows came as values or encoded. */
export interface PlanningBatch {
  readonly count: number;
  /** Row `r`'s encoded key, or null when a key value is null. */
  keyText(r: number): string | null;
  /** Row `r`'s key values. */
  key(r: number): Value[];
  /** Hashes row `r` into `rowHash`. */
  hash(r: number): void;
  /** The operation for row `r` (`keyText` null: spelled when asked for). */
  op(r: number, change: 'added' | 'changed', kind: WriteOperation['kind'], keyText: string | null, hashHigh: number, hashLow: number): PlannedOp;
}

export class DecodedBatch implements PlanningBatch {
  readonly count: number;
  /** The key's column when the key is one column (the common case: read without an array per row), else -1. */
  private readonly keyIndex: number;

  constructor(
    private readonly rows: Value[][],
    private readonly keyIndexes: readonly number[],
  ) {
    this.count = rows.length;
    this.keyIndex = keyIndexes.length === 1 ? (keyIndexes[0] as number) : -1;
  }

  keyText(r: number): string | null {
    if (this.keyIndex >= 0) {
      const value = (this.rows[r] as Value[])[this.keyIndex] ?? null;
      return value === null ? null : encodeKeyOf(value);
    }
    const key = this.key(r);
    return key.includes(null) ? null : encodeKey(key);
  }

  key(r: number): Value[] {
    return keyOf(this.rows[r] as Value[], this.keyIndexes);
  }

  hash(r: number): void {
    hashRow(this.rows[r] as Value[]);
  }

  op(r: number, change: 'added' | 'changed', kind: WriteOperation['kind'], keyText: string | null, hashHigh: number, hashLow: number): PlannedOp {
    // The key's array only if a writer asks for it: no array per row planned.
    return PlannedOp.ofValues(change, kind, keyText, this.rows[r] as Value[], hashHigh, hashLow, this.keyIndexes);
  }
}

/**
 * Encoded rows are hashed over their bytes and only their keys decoded; a planned row goes to the
 * destination as its line when the writer takes lines (inserts and upserts), otherwise decoded.
 */
export class EncodedBatch implements PlanningBatch {
  readonly count: number;

  constructor(
    private readonly rows: EncodedRows,
    private readonly keyIndexes: readonly number[],
    private readonly lines: boolean,
  ) {
    this.count = rows.starts.length - 1;
  }

  keyText(r: number): string | null {
    return this.rows.keyText(r, this.keyIndexes);
  }

  key(r: number): Value[] {
    return this.rows.decode(r, this.keyIndexes);
  }

  hash(r: number): void {
    // Without the line break: the bytes of the values.
    hashBytes(this.rows.data, this.rows.starts[r] as number, (this.rows.starts[r + 1] as number) - 1);
  }

  op(r: number, change: 'added' | 'changed', kind: WriteOperation['kind'], keyText: string | null, hashHigh: number, hashLow: number): PlannedOp {
    return this.lines && (kind === 'insert' || kind === 'upsert')
      ? PlannedOp.ofLine(change, kind, keyText, this.rows, r, this.keyIndexes, hashHigh, hashLow)
      : PlannedOp.ofEncoded(change, kind, keyText, this.rows, r, this.keyIndexes, hashHigh, hashLow);
  }
}

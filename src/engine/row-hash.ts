/**
 * The hash of a row's mapped values, which the snapshot remembers per key to tell a changed row
 * from an unchanged one. 64 bits, computed in JavaScript over the values themselves: for each value
 * a type tag, then an integer as one word, or the UTF-16 code units of a string (two to a word,
 * after its length) or of a number's decimal text, zero-padded to whole 128-bit blocks. The words
 * go through MurmurHash3's x86 128-bit body and finalizer with fixed seeds, so the same values hash
 * the same in every process and on every run. A call into OpenSSL per row (with the row serialized
 * to JSON first) cost ~0.8 µs; this costs about a third of that and allocates nothing.
 *
 * A row a source hands over encoded (PostgreSQL's COPY text) is hashed over its bytes instead, the
 * same way: it is never decoded just to be compared. A source reads a model one way or the other
 * every time, so a row's hash does not change between runs.
 *
 * A changed row goes unnoticed only when its new hash equals the old one: about 1 in 2⁶⁴ per change.
 */

import { hashText } from '../core/hash-text.js';

export { hashText };

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

/** Row kinds, as the first seed: values never hash like the bytes of an encoded row. */
const TAG_VALUES = 0x9368e53c;
const TAG_BYTES = 0x42797465;

/** Type tags: a value of one type never hashes like a value of another. */
const TAG_NULL = 0x6e756c6c;
const TAG_TRUE = 0x74727565;
const TAG_FALSE = 0x66616c73;
const TAG_INT = 0x696e7433;
const TAG_NUMBER = 0x6e756d62;
const TAG_STRING = 0x73747269;

/** The hash of the last `hashRow` call: [high word, low word]. */
export const rowHash = new Uint32Array(2);

/** The row as 32-bit words, rebuilt by each call (grown when a row needs more). */
let words = new Int32Array(256);
let used = 0;

function put(w: number): void {
  if (used === words.length) {
    const larger = new Int32Array(words.length * 2);
    larger.set(words);
    words = larger;
  }
  words[used++] = w;
}

function putText(text: string): void {
  const n = text.length;
  put(n);
  let i = 0;
  for (; i + 1 < n; i += 2) put(text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16));
  if (i < n) put(text.charCodeAt(i));
}

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Hashes a row's values into `rowHash`. */
export function hashRow(values: readonly (string | number | boolean | null)[]): void {
  used = 0;
  put(values.length);
  for (let c = 0; c < values.length; c++) {
    const v = values[c];
    if (v === null || v === undefined) put(TAG_NULL);
    else if (typeof v === 'string') {
      put(TAG_STRING);
      putText(v);
    } else if (typeof v === 'number') {
      if ((v | 0) === v && !Object.is(v, -0)) {
        put(TAG_INT);
        put(v);
      } else {
        put(TAG_NUMBER);
        putText(String(v));
      }
    } else put(v ? TAG_TRUE : TAG_FALSE);
  }
  mix(TAG_VALUES);
}

/**
 * Hashes the bytes `data[start..end)` of an encoded row (see EncodedRows) into `rowHash`: the same
 * bytes hash the same, whatever their format; the bytes are read as little-endian words.
 */
export function hashBytes(data: Uint8Array, start: number, end: number): void {
  used = 0;
  const n = end - start;
  if ((n >> 2) + 8 > words.length) words = new Int32Array(Math.max(words.length * 2, (n >> 2) + 8));
  const w = words;
  put(n);
  let i = start;
  let u = used;
  for (; i + 4 <= end; i += 4) {
    w[u++] = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
  }
  let tail = 0;
  for (let shift = 0; i < end; i++, shift += 8) tail |= (data[i] as number) << shift;
  w[u++] = tail;
  used = u;
  mix(TAG_BYTES);
}

/** MurmurHash3's x86 128-bit body and finalizer over `words[0..used)`, zero-padded to whole blocks, folded to 64 bits. */
function mix(seed: number): void {
  while ((used & 3) !== 0) put(0);
  let h1 = seed;
  let h2 = 0x2f6af274;
  let h3 = 0x1a2b3c4d;
  let h4 = 0x5e6f7a8b;
  const w = words;
  for (let i = 0; i < used; i += 4) {
    let k1 = Math.imul(w[i] as number, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    h1 ^= Math.imul(k1, C2);
    h1 = (h1 << 19) | (h1 >>> 13);
    h1 = (Math.imul(h1 + h2, 5) + 0x561ccd1b) | 0;
    let k2 = Math.imul(w[i + 1] as number, C2);
    k2 = (k2 << 16) | (k2 >>> 16);
    h2 ^= Math.imul(k2, C3);
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (Math.imul(h2 + h3, 5) + 0x0bcaa747) | 0;
    let k3 = Math.imul(w[i + 2] as number, C3);
    k3 = (k3 << 17) | (k3 >>> 15);
    h3 ^= Math.imul(k3, C4);
    h3 = (h3 << 15) | (h3 >>> 17);
    h3 = (Math.imul(h3 + h4, 5) + 0x96cd1c35) | 0;
    let k4 = Math.imul(w[i + 3] as number, C4);
    k4 = (k4 << 18) | (k4 >>> 14);
    h4 ^= Math.imul(k4, C1);
    h4 = (h4 << 13) | (h4 >>> 19);
    h4 = (Math.imul(h4 + h1, 5) + 0x32ac3b17) | 0;
  }
  h1 ^= used;
  h2 ^= used;
  h3 ^= used;
  h4 ^= used;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  rowHash[0] = h1 ^ h3;
  rowHash[1] = h2 ^ h4;
}

/** Hash of a row's mapped values, as the snapshot stores it. */
export function hashValues(values: readonly (string | number | boolean | null)[]): string {
  hashRow(values);
  return hashText(rowHash[0] as number, rowHash[1] as number);
}

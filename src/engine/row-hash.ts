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

/** `words`, at least `size` long (its first `used` words kept). */
function room(used: number, size: number): Int32Array {
  if (size <= words.length) return words;
  const larger = new Int32Array(Math.max(size, words.length * 2));
  larger.set(words.subarray(0, used));
  words = larger;
  return larger;
}

/** Writes a text's length and its UTF-16 code units, two to a word, from word `u`; returns the next word. */
function putText(w: Int32Array, u: number, text: string): number {
  const n = text.length;
  w[u++] = n;
  let i = 0;
  for (; i + 1 < n; i += 2) w[u++] = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
  if (i < n) w[u++] = text.charCodeAt(i);
  return u;
}

/** MurmurHash3's 32-bit finalizer (fmix32): every bit of `h` moves every bit of the result. Shared by the row hash and the key set's fingerprints. */
export function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * Hashes a row's values into `rowHash`. The words are written with local indexes, not through a
 * helper keeping its place in module state: this runs for every row a run reads.
 */
export function hashRow(values: readonly (string | number | boolean | null)[]): void {
  const count = values.length;
  // A word for the count, two per value at most besides a text's, and three of padding.
  let w = room(0, count * 2 + 4);
  let u = 0;
  w[u++] = count;
  for (let c = 0; c < count; c++) {
    const v = values[c];
    if (v === null || v === undefined) w[u++] = TAG_NULL;
    else if (typeof v === 'string') {
      w = room(u, u + (v.length >> 1) + 2 * (count - c) + 5);
      w[u++] = TAG_STRING;
      u = putText(w, u, v);
    } else if (typeof v === 'number') {
      if ((v | 0) === v && !Object.is(v, -0)) {
        w[u++] = TAG_INT;
        w[u++] = v;
      } else {
        const text = String(v);
        w = room(u, u + (text.length >> 1) + 2 * (count - c) + 5);
        w[u++] = TAG_NUMBER;
        u = putText(w, u, text);
      }
    } else w[u++] = v ? TAG_TRUE : TAG_FALSE;
  }
  mix(w, u, TAG_VALUES);
}

/**
 * Hashes the bytes `data[start..end)` of an encoded row (see EncodedRows) into `rowHash`: the same
 * bytes hash the same, whatever their format; the bytes are read as little-endian words.
 */
export function hashBytes(data: Uint8Array, start: number, end: number): void {
  const n = end - start;
  // The length, the words, a word for the tail and three of padding.
  const w = room(0, (n >> 2) + 8);
  let u = 0;
  w[u++] = n;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    w[u++] = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
  }
  let tail = 0;
  for (let shift = 0; i < end; i++, shift += 8) tail |= (data[i] as number) << shift;
  w[u++] = tail;
  mix(w, u, TAG_BYTES);
}

/** MurmurHash3's x86 128-bit body and finalizer over `w[0..used)`, zero-padded to whole blocks, folded to 64 bits. */
function mix(w: Int32Array, used: number, seed: number): void {
  while ((used & 3) !== 0) w[used++] = 0;
  let h1 = seed;
  let h2 = 0x2f6af274;
  let h3 = 0x1a2b3c4d;
  let h4 = 0x5e6f7a8b;
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

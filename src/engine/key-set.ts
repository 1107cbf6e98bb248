/**
 * The set of primary keys a run has seen, kept compact: each key is remembered by a 128-bit
 * fingerprint in an open-addressing table of 32-bit words, 32 to 64 bytes per key, instead of the
 * key itself (a JavaScript string in a `Set` costs several times that and slows the garbage
 * collector). The fingerprint is four 32-bit multiply-rotate lanes over the key's UTF-16 code units,
 * cross-mixed and finalised like MurmurHash3's 128-bit variant, with a random seed per process; it
 * runs in JavaScript because a call into OpenSSL per key costs more than the hashing itself. Two
 * different keys share a fingerprint with a probability of about n²/2¹²⁸ (1e-26 for a million keys).
 *
 * Keys that arrive in order (a model read by its primary key, e.g. a table's rowid order) cannot
 * repeat one another, so while each key comes after the one before, its fingerprint is only
 * appended to a list: the table's slot of a key is random, and in a table of megabytes each add was
 * a cache miss (~30 ms per 100,000 keys in a run). The order is shortlex (shorter first, then by
 * code units), which is numeric order for keys of positive integers (`[9]` < `[10]`). At the first
 * key out of order, or the first lookup, the listed fingerprints go into the table, which answers
 * from then on.
 *
 * States: in order (list) → table, once; never back.
 */
import { randomBytes } from 'node:crypto';

const WORDS = 4;

export class KeySet {
  /** Null until the keys stop coming in order. */
  private table: Uint32Array | null = null;
  private capacity: number;
  private count = 0;
  /** While the keys come in order: their fingerprints in arrival order, and the last key. */
  private list: Uint32Array | null;
  private last: string | null = null;

  constructor(initialCapacity = 1 << 16) {
    this.capacity = 1 << Math.ceil(Math.log2(Math.max(16, initialCapacity)));
    this.list = new Uint32Array(Math.min(this.capacity, 1 << 12) * WORDS);
  }

  get size(): number {
    return this.count;
  }

  /** Adds an encoded key; false when it was already in the set. */
  add(key: string): boolean {
    fingerprint(key);
    if (this.list !== null) {
      const last = this.last;
      if (last === null || key.length > last.length || (key.length === last.length && key > last)) {
        this.append();
        this.last = key;
        return true;
      }
      this.toTable();
    }
    return this.insert();
  }

  has(key: string): boolean {
    if (this.list !== null) this.toTable();
    fingerprint(key);
    const mask = this.capacity - 1;
    const t = this.table as Uint32Array;
    for (let slot = (fp[0] as number) & mask; ; slot = (slot + 1) & mask) {
      const at = slot * WORDS;
      const w3 = t[at + 3] as number;
      if (w3 === 0) return false;
      if (w3 === fp[3] && t[at] === fp[0] && t[at + 1] === fp[1] && t[at + 2] === fp[2]) return true;
    }
  }

  /** Puts the fingerprint in `fp` into the table; false when it was there. */
  private insert(): boolean {
    if ((this.count + 1) * 2 > this.capacity) this.grow();
    // One probe sequence: it ends at the key's slot or at the empty slot it goes into.
    const mask = this.capacity - 1;
    const t = this.table as Uint32Array;
    const f0 = fp[0] as number;
    const f1 = fp[1] as number;
    const f2 = fp[2] as number;
    const f3 = fp[3] as number;
    for (let slot = f0 & mask; ; slot = (slot + 1) & mask) {
      const at = slot * WORDS;
      const w3 = t[at + 3] as number;
      // The last word is never 0 in a fingerprint: 0 there marks an empty slot.
      if (w3 === 0) {
        t[at] = f0;
        t[at + 1] = f1;
        t[at + 2] = f2;
        t[at + 3] = f3;
        this.count++;
        return true;
      }
      if (w3 === f3 && t[at] === f0 && t[at + 1] === f1 && t[at + 2] === f2) return false;
    }
  }

  /** Appends the fingerprint in `fp` to the list of keys in order. */
  private append(): void {
    let list = this.list as Uint32Array;
    const at = this.count * WORDS;
    if (at === list.length) {
      const larger = new Uint32Array(list.length * 2);
      larger.set(list);
      this.list = list = larger;
    }
    list[at] = fp[0] as number;
    list[at + 1] = fp[1] as number;
    list[at + 2] = fp[2] as number;
    list[at + 3] = fp[3] as number;
    this.count++;
  }

  /** Moves the listed fingerprints into a table sized for them (and at least the initial capacity). */
  private toTable(): void {
    const list = this.list as Uint32Array;
    const listed = this.count;
    this.list = null;
    this.last = null;
    while (listed * 2 > this.capacity) this.capacity *= 2;
    this.table = new Uint32Array(this.capacity * WORDS);
    this.count = 0;
    // fp holds the key being added or looked up: kept aside while the listed ones go in.
    const f0 = fp[0] as number;
    const f1 = fp[1] as number;
    const f2 = fp[2] as number;
    const f3 = fp[3] as number;
    for (let i = 0; i < listed * WORDS; i += WORDS) {
      fp[0] = list[i] as number;
      fp[1] = list[i + 1] as number;
      fp[2] = list[i + 2] as number;
      fp[3] = list[i + 3] as number;
      this.insert();
    }
    fp[0] = f0;
    fp[1] = f1;
    fp[2] = f2;
    fp[3] = f3;
  }

  private grow(): void {
    const old = this.table as Uint32Array;
    this.capacity *= 2;
    const mask = this.capacity - 1;
    const t = new Uint32Array(this.capacity * WORDS);
    for (let from = 0; from < old.length; from += WORDS) {
      if (old[from + 3] === 0) continue;
      let slot = (old[from] as number) & mask;
      while (t[slot * WORDS + 3] !== 0) slot = (slot + 1) & mask;
      // Word by word: a view per entry (subarray) cost more than the copy.
      const to = slot * WORDS;
      t[to] = old[from] as number;
      t[to + 1] = old[from + 1] as number;
      t[to + 2] = old[from + 2] as number;
      t[to + 3] = old[from + 3] as number;
    }
    this.table = t;
  }
}

/** The last fingerprint computed: four words, in one array for the whole module (nothing allocated per key). */
const fp = new Uint32Array(4);
const seed = randomBytes(16);
const SEED1 = seed.readUInt32LE(0);
const SEED2 = seed.readUInt32LE(4);
const SEED3 = seed.readUInt32LE(8);
const SEED4 = seed.readUInt32LE(12);

function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Computes the key's fingerprint into `fp`. */
function fingerprint(key: string): void {
  let h1 = SEED1;
  let h2 = SEED2;
  let h3 = SEED3;
  let h4 = SEED4;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x239b961b);
    h1 = (h1 << 15) | (h1 >>> 17);
    h2 = Math.imul(h2 ^ c, 0xab0e9789);
    h2 = (h2 << 16) | (h2 >>> 16);
    h3 = Math.imul(h3 ^ c, 0x38b34ae5);
    h3 = (h3 << 17) | (h3 >>> 15);
    h4 = Math.imul(h4 ^ c, 0xa1e38b93);
    h4 = (h4 << 18) | (h4 >>> 14);
  }
  h1 ^= key.length;
  h2 ^= key.length;
  h3 ^= key.length;
  h4 ^= key.length;
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
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  fp[0] = h1;
  fp[1] = h2;
  fp[2] = h3;
  fp[3] = h4 | 1; // never 0: marks the empty slots
}

/**
 * A sync's snapshot held in memory for one run, so planning compares rows without asking the store
 * per batch and finds removals without reading the store's keys again. Loaded by one scan at the
 * start of a run when it fits the memory budget (about 36 bytes per row plus the keys' UTF-8 text).
 *
 * Layout: entry i (in load order) has its key's UTF-8 bytes at `arena[starts[i]..starts[i+1]]`, its
 * 64-bit value hash in `hashes[2i..2i+1]` and its state in `flags[i]`. A stored hash in an older
 * format is remembered as stale: it never equals a computed one, so the row is planned as changed
 * once and stored in the current format.
 *
 * Finding a key: the store gives its entries in key order (bytes compared), and a model is often
 * read in nearly that order (a table scanned along its key: numbers of the same length sort alike
 * as text and as numbers). So a lookup first tries the few entries after the one found last, reads
 * of memory next to the last ones; then, while the entries are in order (checked as they load) and
 * such misses are few, a binary search. Only when the model's order does not follow the snapshot's is the open-addressing
 * table of (32-bit key hash, entry + 1) pairs filled, once, and used from then on; a match is always
 * confirmed against the key's bytes, so two keys never share an entry. Loading no longer hashes and
 * places every key: at 1M entries, filling the table and probing it at random were most of the
 * index's cost.
 */

import type { SnapshotPage } from '../core/ports.js';

/** Entries after the one found last that a lookup compares before it searches (see find). */
const LOOKAHEAD = 12;

/** Entry states. */
const SEEN = 1;
const STALE = 2;

export class SnapshotIndex {
  private slots: Uint32Array;
  private mask: number;
  private starts: Uint32Array;
  private hashes: Uint32Array;
  /** Each entry's key hash, kept from loading for the hash table (filled only when needed). */
  private keyHashes: Uint32Array;
  private flags: Uint8Array;
  private arena: Buffer;
  private arenaUsed = 0;
  private count = 0;
  /** Whether the hash table holds every entry (see visit); until then it is only sized. */
  private slotsFilled = false;
  /** Whether each entry's key sorts after the one before (bytes compared), so a binary search finds keys. */
  private ordered = true;
  /** The entry found last, whose next one a lookup tries first (-1: none yet). */
  private last = -1;
  /** Lookups the next entries did not answer, while the hash table is not filled. */
  private misses = 0;

  /** An index for `expected` entries; `budgetBytes` bounds what `add` may use. */
  constructor(
    expected: number,
    private readonly budgetBytes: number,
  ) {
    const capacity = 1 << Math.ceil(Math.log2(Math.max(16, Math.ceil(expected / 0.7))));
    this.mask = capacity - 1;
    this.slots = new Uint32Array(capacity * 2);
    const entries = Math.max(16, expected);
    this.starts = new Uint32Array(entries + 1);
    this.hashes = new Uint32Array(entries * 2);
    this.keyHashes = new Uint32Array(entries);
    this.flags = new Uint8Array(entries);
    this.arena = Buffer.allocUnsafe(Math.max(1024, entries * 12));
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.slots.byteLength + this.starts.byteLength + this.hashes.byteLength + this.keyHashes.byteLength + this.flags.byteLength + this.arena.length;
  }

  /**
   * Adds a stored entry (each key once); `hash` as the snapshot stores it. False when the index
   * would outgrow its budget: the caller then drops it and asks the store per batch.
   */
  add(key: string, hash: string): boolean {
    return this.addRange(key, 0, key.length, hash.length === 16 ? hash : '-', 0);
  }

  /**
   * Adds a page of the store's bulk form (see SnapshotPage); false as for `add`. One pass over the
   * page's text finds each key's end, copies its bytes and hashes it.
   */
  addPage(page: SnapshotPage): boolean {
    const { keys, hashes, count } = page;
    if (hashes.length !== count * 16) throw new Error(`snapshot page of ${count} entries holds ${hashes.length / 16} hashes`);
    const n = keys.length;
    if (this.count + count > this.flags.length && !this.growEntries(this.count + count)) return false;
    if (this.arenaUsed + n * 3 > this.arena.length && !this.growArena(n * 3)) return false;
    const arena = this.arena;
    let c = 0;
    for (let e = 0; e < count; e++) {
      if (c > n) throw new Error(`snapshot page of ${count} entries holds ${e} keys`);
      const start = c;
      const at = this.arenaUsed;
      let ascii = true;
      let h = KEY_SEED;
      for (; c < n; c++) {
        const code = keys.charCodeAt(c);
        if (code === NEWLINE) break;
        if (code >= 0x80) ascii = false;
        arena[at + c - start] = code;
        h = keyMix(h, code);
      }
      const i = this.count;
      this.arenaUsed += ascii ? c - start : arena.write(keys.slice(start, c), at, 'utf8');
      this.starts[i + 1] = this.arenaUsed;
      this.setHash(i, hashes, e * 16);
      if (!this.appended(i, keyFinal(h, c - start))) return false;
      c++;
    }
    if (c !== n + 1 && !(count === 0 && n === 0)) throw new Error(`snapshot page of ${count} entries holds more keys`);
    return true;
  }

  private setHash(i: number, hashes: string, at: number): void {
    const high = hexWord(hashes, at);
    const low = high >= 0 ? hexWord(hashes, at + 8) : -1;
    if (low >= 0) {
      this.hashes[2 * i] = high;
      this.hashes[2 * i + 1] = low;
    } else this.flags[i] = STALE;
  }

  /** Adds the key `text[start..end)` with the hash at `hashes[at..at+16)` (stale when not hex). */
  private addRange(text: string, start: number, end: number, hashes: string, at: number): boolean {
    const i = this.count;
    if (i >= this.flags.length && !this.growEntries()) return false;
    const room = (end - start) * 3;
    if (this.arenaUsed + room > this.arena.length && !this.growArena(room)) return false;
    this.arenaUsed += writeKey(this.arena, text, start, end, this.arenaUsed);
    this.starts[i + 1] = this.arenaUsed;
    this.setHash(i, hashes, at);
    return this.appended(i, keyHash(text, start, end));
  }

  /** Counts entry `i`, whose key and hash are in place, with its key hash: keeps the order flag, and the hash table once it is filled. */
  private appended(i: number, keyHashed: number): boolean {
    this.keyHashes[i] = keyHashed;
    if (this.ordered && i > 0 && this.compareEntries(i - 1, i) >= 0) this.ordered = false;
    this.count++;
    if (this.count * 10 > (this.mask + 1) * 7 && !this.growSlots()) return false;
    if (this.slotsFilled) this.place(keyHashed, i);
    return true;
  }

  /**
   * Marks `key` seen and answers what the snapshot holds for it: -1 when the key is not in the
   * snapshot, -2 when it was seen before in this run, otherwise the entry (compare with `sameHash`).
   */
  visit(key: string): number {
    const i = this.find(key);
    if (i < 0) return -1;
    const flags = this.flags[i] as number;
    if (flags & SEEN) return -2;
    this.flags[i] = flags | SEEN;
    return i;
  }

  /** The entry holding `key`, or -1. */
  private find(key: string): number {
    if (!this.slotsFilled) {
      // The next few entries: keys that sort between two of the model's are stepped over (numbers
      // of other lengths: "10002" between "100019" and "100020", ten between "10001" and "10002").
      const end = Math.min(this.count, this.last + 1 + LOOKAHEAD);
      for (let next = this.last + 1; next < end; next++) if (this.keyIs(next, key)) return (this.last = next);
      // A binary search costs some twenty reads, the first ones cached: up to a sixteenth of the
      // entries in misses, they cost less than filling the hash table, which a model read in
      // another order then fills once.
      if (this.ordered && ++this.misses <= (this.count >> 4) + 1024) {
        const found = this.search(key);
        if (found >= 0) this.last = found;
        return found;
      }
      this.fillSlots();
    }
    const h = keyHash(key, 0, key.length);
    const slots = this.slots;
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const entry = slots[2 * slot + 1] as number;
      if (entry === 0) return -1;
      if (slots[2 * slot] === h && this.keyIs(entry - 1, key)) return entry - 1;
    }
  }

  /** Binary search of the entries (in order) for `key`: its entry, or -1. */
  private search(key: string): number {
    let low = 0;
    let high = this.count - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const order = this.compareKey(mid, key);
      if (order === 0) return mid;
      if (order < 0) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }

  /** Entry `i`'s key against `key`, bytes compared (UTF-8, as the store orders them): negative, 0 or positive. */
  private compareKey(i: number, key: string): number {
    const start = this.starts[i] as number;
    const end = this.starts[i + 1] as number;
    const arena = this.arena;
    for (let c = 0; ; c++) {
      if (start + c === end) return c === key.length ? 0 : -1;
      if (c === key.length) return 1;
      const code = key.charCodeAt(c);
      if (code >= 0x80) return Buffer.compare(arena.subarray(start, end), Buffer.from(key, 'utf8'));
      const byte = arena[start + c] as number;
      if (byte !== code) return byte - code;
    }
  }

  /** Entry `a`'s key against entry `b`'s, bytes compared. */
  private compareEntries(a: number, b: number): number {
    const arena = this.arena;
    let i = this.starts[a] as number;
    const aEnd = this.starts[a + 1] as number;
    let j = this.starts[b] as number;
    const bEnd = this.starts[b + 1] as number;
    for (; i < aEnd && j < bEnd; i++, j++) {
      const d = (arena[i] as number) - (arena[j] as number);
      if (d !== 0) return d;
    }
    return aEnd - i - (bEnd - j);
  }

  /** Fills the hash table with every entry: the model is not read in the snapshot's order. */
  private fillSlots(): void {
    this.slotsFilled = true;
    for (let i = 0; i < this.count; i++) this.place(this.keyHashes[i] as number, i);
  }

  /** Whether entry `i` holds this value hash. */
  sameHash(i: number, high: number, low: number): boolean {
    return ((this.flags[i] as number) & STALE) === 0 && this.hashes[2 * i] === high && this.hashes[2 * i + 1] === low;
  }

  /** How many keys were never visited. */
  unseenCount(): number {
    let count = 0;
    for (let i = 0; i < this.count; i++) if (((this.flags[i] as number) & SEEN) === 0) count++;
    return count;
  }

  /** The keys never visited, in load order. */
  *unseen(): Generator<string> {
    for (let i = 0; i < this.count; i++) {
      if (((this.flags[i] as number) & SEEN) === 0) yield this.arena.toString('utf8', this.starts[i] as number, this.starts[i + 1] as number);
    }
  }

  private keyIs(i: number, key: string): boolean {
    const start = this.starts[i] as number;
    const end = this.starts[i + 1] as number;
    const arena = this.arena;
    if (end - start < key.length) return false;
    for (let c = 0; c < key.length; c++) {
      const code = key.charCodeAt(c);
      if (code >= 0x80) return arena.toString('utf8', start, end) === key;
      if (arena[start + c] !== code) return false;
    }
    return end - start === key.length;
  }

  private place(h: number, i: number): void {
    const slots = this.slots;
    let slot = h & this.mask;
    while (slots[2 * slot + 1] !== 0) slot = (slot + 1) & this.mask;
    slots[2 * slot] = h;
    slots[2 * slot + 1] = i + 1;
  }

  private fits(extra: number): boolean {
    return this.bytes + extra <= this.budgetBytes;
  }

  private growEntries(atLeast = 0): boolean {
    const entries = Math.max(this.flags.length * 2, atLeast);
    if (!this.fits(entries * 17)) return false;
    const starts = new Uint32Array(entries + 1);
    starts.set(this.starts);
    const hashes = new Uint32Array(entries * 2);
    hashes.set(this.hashes);
    const keyHashes = new Uint32Array(entries);
    keyHashes.set(this.keyHashes);
    const flags = new Uint8Array(entries);
    flags.set(this.flags);
    this.starts = starts;
    this.hashes = hashes;
    this.keyHashes = keyHashes;
    this.flags = flags;
    return true;
  }

  private growArena(room: number): boolean {
    const length = Math.max(this.arena.length * 2, this.arenaUsed + room);
    if (!this.fits(length)) return false;
    const arena = Buffer.allocUnsafe(length);
    this.arena.copy(arena, 0, 0, this.arenaUsed);
    this.arena = arena;
    return true;
  }

  /** A table twice the size (sized only, until it is filled): entries before the newest one are placed again. */
  private growSlots(): boolean {
    const capacity = (this.mask + 1) * 2;
    if (!this.fits(capacity * 8)) return false;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
    if (this.slotsFilled) for (let i = 0; i < this.count - 1; i++) this.place(this.keyHashes[i] as number, i);
    return true;
  }
}

/**
 * Writes the UTF-8 bytes of `text[start..end)` at `at` and returns their count. Keys are short and
 * nearly always ASCII: copied code by code, which costs less than a call into Buffer#write per key.
 */
function writeKey(arena: Buffer, text: string, start: number, end: number, at: number): number {
  for (let c = start; c < end; c++) {
    const code = text.charCodeAt(c);
    if (code >= 0x80) return arena.write(text.slice(start, end), at, 'utf8');
    arena[at + c - start] = code;
  }
  return end - start;
}

/** Hex digit values by character code (-1: not a hex digit). */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(d)] = d;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(d)] = d;
}

/** Eight hex digits (either case) of `text` from `at` as a number, or -1 when they are not. */
function hexWord(text: string, at: number): number {
  if (at + 8 > text.length) return -1;
  let word = 0;
  let bad = 0;
  for (let i = at; i < at + 8; i++) {
    const digit = HEX_VALUE[text.charCodeAt(i) & 0x7f] as number;
    bad |= digit | (text.charCodeAt(i) & ~0x7f);
    word = word * 16 + digit;
  }
  return bad < 0 || bad > 15 ? -1 : word;
}

const NEWLINE = 10;
const KEY_SEED = 0x2545f491;

/** One code unit into a key hash (MurmurHash3's x86 32-bit mixing). */
function keyMix(h: number, code: number): number {
  let k = Math.imul(code, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The finished key hash of `length` code units. */
function keyFinal(h: number, length: number): number {
  h ^= length;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A 32-bit hash of a key's UTF-16 code units `key[start..end)`, fixed seed. */
function keyHash(key: string, start: number, end: number): number {
  let h = KEY_SEED;
  for (let i = start; i < end; i++) h = keyMix(h, key.charCodeAt(i));
  return keyFinal(h, end - start);
}

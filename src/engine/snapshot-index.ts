/**
 * A sync's snapshot held in memory for one run, so planning compares rows without asking the store
 * per batch and finds removals without reading the store's keys again. Loaded by one scan at the
 * start of a run when it fits the memory budget (about 32 bytes per row plus the keys' UTF-8 text).
 *
 * Layout: entry i (in load order) has its key's UTF-8 bytes at `arena[starts[i]..starts[i+1]]`, its
 * 64-bit value hash in `hashes[2i..2i+1]` and its state in `flags[i]`. An open-addressing table of
 * (32-bit key hash, entry + 1) pairs finds an entry; a match is confirmed against the key's bytes, so
 * two keys never share an entry. A stored hash in an older format is remembered as stale: it never
 * equals a computed one, so the row is planned as changed once and stored in the current format.
 */

import type { SnapshotPage } from '../core/ports.js';

/** Entry states. */
const SEEN = 1;
const STALE = 2;

export class SnapshotIndex {
  private slots: Uint32Array;
  private mask: number;
  private starts: Uint32Array;
  private hashes: Uint32Array;
  private flags: Uint8Array;
  private arena: Buffer;
  private arenaUsed = 0;
  private count = 0;

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
    this.flags = new Uint8Array(entries);
    this.arena = Buffer.allocUnsafe(Math.max(1024, entries * 12));
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.slots.byteLength + this.starts.byteLength + this.hashes.byteLength + this.flags.byteLength + this.arena.length;
  }

  /**
   * Adds a stored entry (each key once); `hash` as the snapshot stores it. False when the index
   * would outgrow its budget: the caller then drops it and asks the store per batch.
   */
  add(key: string, hash: string): boolean {
    return this.addRange(key, 0, key.length, hash.length === 16 ? hash : '-', 0);
  }

  /** Adds a page of the store's bulk form (see SnapshotPage); false as for `add`. */
  addPage(page: SnapshotPage): boolean {
    const { keys, hashes, count } = page;
    let start = 0;
    for (let e = 0; e < count; e++) {
      let end = keys.indexOf('\n', start);
      if (end < 0) end = keys.length;
      if (!this.addRange(keys, start, end, hashes, e * 16)) return false;
      start = end + 1;
    }
    if (start !== keys.length + 1 || hashes.length !== count * 16) {
      throw new Error(`snapshot page of ${count} entries holds ${keys.split('\n').length} keys and ${hashes.length / 16} hashes`);
    }
    return true;
  }

  /** Adds the key `text[start..end)` with the hash at `hashes[at..at+16)` (stale when not hex). */
  private addRange(text: string, start: number, end: number, hashes: string, at: number): boolean {
    const i = this.count;
    if (i >= this.flags.length && !this.growEntries()) return false;
    const room = (end - start) * 3;
    if (this.arenaUsed + room > this.arena.length && !this.growArena(room)) return false;
    this.arenaUsed += writeKey(this.arena, text, start, end, this.arenaUsed);
    this.starts[i + 1] = this.arenaUsed;
    const high = hexWord(hashes, at);
    const low = high >= 0 ? hexWord(hashes, at + 8) : -1;
    if (low >= 0) {
      this.hashes[2 * i] = high;
      this.hashes[2 * i + 1] = low;
    } else this.flags[i] = STALE;
    this.count++;
    if (this.count * 10 > (this.mask + 1) * 7 && !this.growSlots()) return false;
    this.place(keyHash(text, start, end), i);
    return true;
  }

  /**
   * Marks `key` seen and answers what the snapshot holds for it: -1 when the key is not in the
   * snapshot, -2 when it was seen before in this run, otherwise the entry (compare with `sameHash`).
   */
  visit(key: string): number {
    const h = keyHash(key, 0, key.length);
    const slots = this.slots;
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const entry = slots[2 * slot + 1] as number;
      if (entry === 0) return -1;
      if (slots[2 * slot] === h && this.keyIs(entry - 1, key)) {
        const i = entry - 1;
        const flags = this.flags[i] as number;
        if (flags & SEEN) return -2;
        this.flags[i] = flags | SEEN;
        return i;
      }
    }
  }

  /** Whether entry `i` holds this value hash. */
  sameHash(i: number, high: number, low: number): boolean {
    return ((this.flags[i] as number) & STALE) === 0 && this.hashes[2 * i] === high && this.hashes[2 * i + 1] === low;
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

  private growEntries(): boolean {
    const entries = this.flags.length * 2;
    if (!this.fits(entries * 13)) return false;
    const starts = new Uint32Array(entries + 1);
    starts.set(this.starts);
    const hashes = new Uint32Array(entries * 2);
    hashes.set(this.hashes);
    const flags = new Uint8Array(entries);
    flags.set(this.flags);
    this.starts = starts;
    this.hashes = hashes;
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

  private growSlots(): boolean {
    const capacity = (this.mask + 1) * 2;
    if (!this.fits(capacity * 8)) return false;
    this.slots = new Uint32Array(capacity * 2);
    this.mask = capacity - 1;
    for (let i = 0; i < this.count - 1; i++) {
      const key = this.arena.toString('utf8', this.starts[i] as number, this.starts[i + 1] as number);
      this.place(keyHash(key, 0, key.length), i);
    }
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

/** Eight hex digits (either case) of `text` from `at` as a number, or -1 when they are not. */
function hexWord(text: string, at: number): number {
  if (at + 8 > text.length) return -1;
  let word = 0;
  for (let i = at; i < at + 8; i++) {
    const c = text.charCodeAt(i) | 0x20;
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (digit < 0) return -1;
    word = word * 16 + digit;
  }
  return word;
}

/** A 32-bit hash of a key's UTF-16 code units `key[start..end)` (MurmurHash3's x86 32-bit mixing, fixed seed). */
function keyHash(key: string, start: number, end: number): number {
  let h = 0x2545f491;
  for (let i = start; i < end; i++) {
    let k = Math.imul(key.charCodeAt(i), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= end - start;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

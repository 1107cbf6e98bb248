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
 * Memory is bounded by a budget (`budgetBytes`): when the list or the table would outgrow it, its
 * fingerprints are sorted by their first word and written to a temporary file as a run (the file is
 * unlinked as soon as it is opened, so nothing is left behind, whatever happens to the process), and
 * the list or table starts empty again. Of a run, memory keeps the first word of each 4 KiB block and
 * a Bloom filter (10 bits per key, about 1% false positives; filters get a quarter of the budget, and
 * runs beyond it have none), so a lookup in a run nearly never reads, and then one block. Keys still arriving in order need
 * no lookup at all: none before them can be the same. Finding which keys of a large set of keys (the
 * snapshot's) are not in the set (`unseen`) reads those keys once, into a second temporary file in
 * parts by fingerprint, and compares each part with the runs' slice of the same range, both sorted.
 *
 * States: in order (list) → table, once; never back. Runs are added in either state.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmix } from './row-hash.js';

const WORDS = 4;
/** Bytes per fingerprint. */
const RECORD = WORDS * 4;

export interface KeySetOptions {
  /** Bytes the set may hold in memory (about); beyond, fingerprints go to a temporary file. Default: no bound. */
  budgetBytes?: number;
  /** Folder of the temporary file (default: the OS temp folder). */
  spillDir?: string;
}

export class KeySet {
  /** Null until the keys stop coming in order. */
  private table: Uint32Array | null = null;
  private capacity: number;
  /** Fingerprints in the list or the table (not in runs). */
  private count = 0;
  /** Keys in the set. */
  private total = 0;
  /** While the keys come in order: their fingerprints in arrival order, and the last key. */
  private list: Uint32Array | null;
  private last: string | null = null;
  /** Fingerprints written to the temporary file, once the budget was reached. */
  private runs: SpilledRuns | null = null;
  private readonly budget: number;
  private readonly spillDir: string;

  constructor(initialCapacity = 1 << 16, options: KeySetOptions = {}) {
    // Three quarters for the list or table, a quarter for the runs' Bloom filters.
    this.budget = Math.max(64 * RECORD, ((options.budgetBytes ?? Infinity) * 3) / 4);
    this.spillDir = options.spillDir ?? tmpdir();
    this.capacity = 1 << Math.ceil(Math.log2(Math.max(16, initialCapacity)));
    while (this.capacity * RECORD > this.budget && this.capacity > 16) this.capacity /= 2;
    // Small at first: the list then grows a few times within a run's first rows, while its code
    // is still interpreted. Growing first at 4,096 keys, it did so after the optimising compiler had
    // compiled the run's row loop without that branch, which threw the compiled loop away.
    this.list = new Uint32Array(Math.min(this.capacity, 1 << 6) * WORDS);
  }

  get size(): number {
    return this.total;
  }

  /** Keys held in the temporary file rather than in memory. */
  get spilled(): number {
    return this.runs?.records ?? 0;
  }

  /** Bytes held in memory. */
  get bytes(): number {
    return (this.list?.byteLength ?? 0) + (this.table?.byteLength ?? 0) + (this.runs?.bytes ?? 0);
  }

  /** Adds an encoded key; false when it was already in the set. */
  add(key: string): boolean {
    fingerprint(key);
    if (this.list !== null) {
      const last = this.last;
      if (last === null || key.length > last.length || (key.length === last.length && key > last)) {
        // After every key before it (those in runs too): none of them is this one.
        this.append();
        this.last = key;
        this.total++;
        return true;
      }
      this.leaveOrder();
    }
    if (this.runs !== null && this.runs.has(fp)) return false;
    if (!this.insert()) return false;
    this.total++;
    return true;
  }

  has(key: string): boolean {
    if (this.list !== null) this.leaveOrder();
    fingerprint(key);
    return this.inTable() || (this.runs !== null && this.runs.has(fp));
  }

  /**
   * The keys of `scan` not in the set. Without runs, one pass over `scan`, in its order. With runs,
   * every key held in memory joins them first (memory is then free for the comparison), and `scan`
   * is still read once: each key, with its fingerprint, goes to a second temporary file, in parts by
   * the fingerprint's first word; each part is then compared with the runs' fingerprints of the same
   * range, held in one buffer of the budget's size. Keys gone from `scan` meanwhile are simply not
   * given; those of a part come in the order `scan` gave them.
   */
  async *unseen(scan: () => AsyncIterable<string[]>): AsyncGenerator<string> {
    if (this.runs === null && this.list !== null) this.leaveOrder();
    const runs = this.runs;
    if (runs === null) {
      for await (const keys of scan()) {
        for (const k of keys) if (!this.has(k)) yield k;
        await turn();
      }
      return;
    }
    // The list's or table's array, free once spilled, holds the runs' slices (an array dropped
    // here would stay in memory until the garbage collector ran, besides the new one).
    const spare = this.list ?? this.table;
    this.spillHeld();
    yield* runs.unseen(scan, this.budget, this.spillDir, spare);
  }

  /** Removes the temporary file's contents (the set answers nothing after). */
  close(): void {
    this.runs?.close();
    this.runs = null;
  }

  /** Whether the fingerprint in `fp` is in the table. */
  private inTable(): boolean {
    const t = this.table;
    if (t === null) return false;
    const mask = this.capacity - 1;
    for (let slot = (fp[0] as number) & mask; ; slot = (slot + 1) & mask) {
      const at = slot * WORDS;
      const w3 = t[at + 3] as number;
      if (w3 === 0) return false;
      if (w3 === fp[3] && t[at] === fp[0] && t[at + 1] === fp[1] && t[at + 2] === fp[2]) return true;
    }
  }

  /** Puts the fingerprint in `fp` into the table; false when it was there. */
  private insert(): boolean {
    if ((this.count + 1) * 2 > this.capacity) {
      // Growing would pass the budget: the table's fingerprints go to a run, and it starts empty.
      if (this.capacity * 2 * RECORD + this.count * 8 > this.budget) {
        if (this.inTable()) return false;
        this.spill(this.table as Uint32Array, true);
        (this.table as Uint32Array).fill(0);
        this.count = 0;
      } else this.grow();
    }
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
      // Sorting a run takes 8 bytes per fingerprint besides the list.
      if (list.length * 2 * 4 + this.count * 8 > this.budget) {
        this.spill(list.subarray(0, at), false);
        this.count = 0;
        list[0] = fp[0] as number;
        list[1] = fp[1] as number;
        list[2] = fp[2] as number;
        list[3] = fp[3] as number;
        this.count = 1;
        return;
      }
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

  /** The keys stopped coming in order: the listed fingerprints go into a table, or to a run when the table would not fit. */
  private leaveOrder(): void {
    const list = this.list as Uint32Array;
    const listed = this.count;
    let capacity = this.capacity;
    while (listed * 2 > capacity) capacity *= 2;
    if (capacity * RECORD + listed * RECORD > this.budget) {
      const kept = new Uint32Array(fp);
      this.spill(list.subarray(0, listed * WORDS), false);
      fp.set(kept);
      this.list = null;
      this.last = null;
      this.count = 0;
      // Keys out of order after a long run in order are usually few: the table starts small.
      this.capacity = Math.min(this.capacity, 1 << 16);
      this.table = new Uint32Array(this.capacity * WORDS);
      return;
    }
    this.capacity = capacity;
    this.toTable();
  }

  /** Moves the listed fingerprints into a table sized for them (and at least the initial capacity). */
  private toTable(): void {
    const list = this.list as Uint32Array;
    const listed = this.count;
    this.list = null;
    this.last = null;
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

  /** Writes fingerprints (a list, or a table's filled slots) to the temporary file as a run. */
  private spill(records: Uint32Array, sparse: boolean): void {
    // A quarter of the budget for the runs' Bloom filters (1.25 bytes per key: 13 million keys in 64 MiB).
    this.runs ??= new SpilledRuns(this.spillDir, this.budget / 3);
    this.runs.add(records, sparse);
  }

  /**
   * Writes what the list or the table holds to a run and frees them: the set then answers from its
   * runs alone (an empty table takes keys added after).
   */
  private spillHeld(): void {
    if (this.list !== null && this.count > 0) this.spill(this.list.subarray(0, this.count * WORDS), false);
    else if (this.table !== null && this.count > 0) this.spill(this.table, true);
    this.list = null;
    this.last = null;
    this.count = 0;
    this.capacity = 16;
    this.table = new Uint32Array(this.capacity * WORDS);
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

/**
 * One turn of the event loop. A page of keys read from a store may arrive without one (its reads are
 * synchronous): between pages, timers (the run's lease heartbeat) and I/O get theirs.
 */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A new temporary file in `dir`, open for reading and writing, already unlinked: nothing is left behind, whatever happens to the process. */
function openUnlinked(dir: string): number {
  const path = join(dir, `lockstep-keys-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = openSync(path, 'wx+', 0o600);
  unlinkSync(path);
  return fd;
}

/** Fingerprints per block of a run: 4 KiB, one read per lookup. */
const BLOCK = 256;
/** Fingerprints written at once when a run is written. */
const WRITE_CHUNK = 1 << 16;

/** A run in the temporary file: fingerprints sorted by their first word, and the first word of each block. */
interface Run {
  /** Position of its first fingerprint in the file, in fingerprints. */
  start: number;
  records: number;
  firsts: Uint32Array;
  /** A Bloom filter of its fingerprints (about 1% false positives), or null when the budget had no room for it. */
  bloom: Uint32Array | null;
}

/** Bits per fingerprint in a run's Bloom filter, and bits looked at per lookup. */
const BLOOM_BITS = 10;
const BLOOM_PROBES = 7;

/**
 * Sorted runs of fingerprints in a temporary file, unlinked once opened. Within a run, fingerprints
 * are ordered by their first word only (equal first words are rare, and compared in full).
 */
class SpilledRuns {
  private fd: number;
  private runs: Run[] = [];
  private end = 0;
  /** One or two blocks read for a lookup. */
  private readonly buffer = new Uint32Array(2 * BLOCK * WORDS);
  private bloomBytes = 0;
  /** Kept from one run's writing to the next: the sort's two arrays and the chunk written at once. */
  private scratch: SortScratch = { byLow: new Uint32Array(0), order: new Uint32Array(0) };
  private chunk: Uint32Array | null = null;

  /** `bloomBudget`: bytes the runs' Bloom filters may take together (a run without one is looked up on disk). */
  constructor(
    dir: string,
    private readonly bloomBudget: number,
  ) {
    this.fd = openUnlinked(dir);
  }

  get records(): number {
    return this.end;
  }

  /** Bytes held in memory: the blocks' first words. */
  get bytes(): number {
    const scratch = this.scratch.byLow.byteLength + this.scratch.order.byteLength + (this.chunk?.byteLength ?? 0);
    return this.runs.reduce((n, run) => n + run.firsts.byteLength, 0) + this.buffer.byteLength + this.bloomBytes + scratch;
  }

  /** Writes `records` (or, when `sparse`, the filled slots of a table: last word not 0) as a run. */
  add(records: Uint32Array, sparse: boolean): void {
    const order = sortedByFirstWord(records, sparse, this.scratch);
    const n = order.length;
    const firsts = new Uint32Array(Math.ceil(n / BLOCK));
    const bloomWords = 1 << Math.ceil(Math.log2(Math.max(32, (n * BLOOM_BITS) / 32)));
    const bloom = this.bloomBytes + bloomWords * 4 <= this.bloomBudget ? new Uint32Array(bloomWords) : null;
    if (bloom) this.bloomBytes += bloom.byteLength;
    if (this.chunk === null || this.chunk.length < Math.min(n, WRITE_CHUNK) * WORDS) this.chunk = new Uint32Array(Math.min(n, WRITE_CHUNK) * WORDS);
    const chunk = this.chunk;
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let done = 0; done < n; ) {
      const count = Math.min(WRITE_CHUNK, n - done);
      for (let i = 0; i < count; i++) {
        const from = (order[done + i] as number) * WORDS;
        const to = i * WORDS;
        chunk[to] = records[from] as number;
        chunk[to + 1] = records[from + 1] as number;
        chunk[to + 2] = records[from + 2] as number;
        chunk[to + 3] = records[from + 3] as number;
        if ((done + i) % BLOCK === 0) firsts[(done + i) / BLOCK] = records[from] as number;
        if (bloom) bloomAdd(bloom, records[from + 1] as number, records[from + 2] as number);
      }
      writeSync(this.fd, bytes, 0, count * RECORD, (this.end + done) * RECORD);
      done += count;
    }
    this.runs.push({ start: this.end, records: n, firsts, bloom });
    this.end += n;
  }

  /** Whether the fingerprint `f` is in a run. */
  has(f: Uint32Array): boolean {
    const first = f[0] as number;
    for (const run of this.runs) {
      if (run.bloom && !bloomHas(run.bloom, f[1] as number, f[2] as number)) continue;
      // The blocks that may hold it: from the last one starting below its first word (equal ones
      // may begin there) to the last one starting at or below it; nearly always one.
      const firsts = run.firsts;
      let lo = 0;
      let hi = firsts.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((firsts[mid] as number) < first) lo = mid + 1;
        else hi = mid;
      }
      let to = lo;
      while (to < firsts.length && firsts[to] === first) to++;
      // Below the first block's first word: not in this run.
      if (to === 0) continue;
      const from = Math.max(0, lo - 1);
      const end = Math.max(to, from + 1);
      for (let block = from; block < end; block += 2) {
        const blocks = Math.min(2, end - block);
        const records = Math.min(blocks * BLOCK, run.records - block * BLOCK);
        const bytes = Buffer.from(this.buffer.buffer, this.buffer.byteOffset, records * RECORD);
        readSync(this.fd, bytes, 0, records * RECORD, (run.start + block * BLOCK) * RECORD);
        if (findRecord(this.buffer, 0, records, f)) return true;
      }
    }
    return false;
  }

  /**
   * The keys of `scan` whose fingerprints no run holds (see KeySet.unseen), in about `room` bytes.
   * When the runs take more than half of it, `scan` is read once into parts of a second temporary
   * file (by the fingerprint's first word), and each part is compared with the runs' fingerprints of
   * its range: its keys' fingerprints, a window at a time, are sorted and walked along each run in
   * step (no search per key: at 10M keys, looking each up in the runs took 12–14 s); then the window
   * is read again for the keys of the fingerprints not found. The Bloom filters are dropped first.
   */
  async *unseen(scan: () => AsyncIterable<string[]>, room: number, dir: string, spare: Uint32Array | null): AsyncGenerator<string> {
    for (const run of this.runs) run.bloom = null;
    this.bloomBytes = 0;
    this.chunk = null;
    // The runs' slices take half of the room, the windows of keys the other half.
    const parts = Math.max(1, Math.ceil((this.end * RECORD * 2) / room));
    const bounds = Array.from({ length: parts + 1 }, (_, s) => (s === parts ? 2 ** 32 : Math.floor((s * 2 ** 32) / parts)));
    let longest = 0;
    for (let s = 0; s < parts; s++) longest = Math.max(longest, this.sliceRecords(bounds[s] as number, bounds[s + 1] as number));
    const buffer = spare !== null && spare.length >= longest * WORDS ? spare : new Uint32Array(longest * WORDS);
    if (parts === 1) {
      const slice = this.sliceInto(0, 2 ** 32, buffer);
      for await (const keys of scan()) {
        for (const k of keys) {
          fingerprint(k);
          if (!slice.some((records) => findRecord(records, 0, records.length / WORDS))) yield k;
        }
        await turn();
      }
      return;
    }
    // The sort's arrays of the runs' writing serve the windows.
    const file = new KeyParts(dir, bounds, Math.max(1024, Math.floor(room / 2 / WINDOW_BYTES_PER_KEY)), this.scratch);
    this.scratch = { byLow: new Uint32Array(0), order: new Uint32Array(0) };
    try {
      for await (const keys of scan()) {
        for (const k of keys) {
          fingerprint(k);
          file.add(k);
        }
        await turn();
      }
      file.flush();
      for (let s = 0; s < parts; s++) {
        const slice = this.sliceInto(bounds[s] as number, bounds[s + 1] as number, buffer);
        for (let w = 0; w < file.windowCount(s); w++) {
          yield* file.missing(s, w, slice);
          await turn();
        }
      }
    } finally {
      file.close();
    }
  }

  /** The blocks of `run` that may hold first words in [from, to): its first block and its end block. */
  private blocksOf(run: Run, from: number, to: number): [start: number, end: number] {
    const firsts = run.firsts;
    let block = 0;
    while (block < firsts.length && (firsts[block] as number) < from) block++;
    let end = block;
    while (end < firsts.length && (firsts[end] as number) < to) end++;
    return [Math.max(0, block - 1), end];
  }

  /** Fingerprints read for a slice [from, to) of every run (before trimming). */
  private sliceRecords(from: number, to: number): number {
    let total = 0;
    for (const run of this.runs) {
      const [start, end] = this.blocksOf(run, from, to);
      total += Math.max(0, Math.min(end * BLOCK, run.records) - start * BLOCK);
    }
    return total;
  }

  /** The fingerprints of every run whose first word is in [from, to), one view of `buffer` per run. */
  private sliceInto(from: number, to: number, buffer: Uint32Array): Uint32Array[] {
    let at = 0;
    return this.runs.map((run) => {
      const [startBlock, endBlock] = this.blocksOf(run, from, to);
      const records = Math.max(0, Math.min(endBlock * BLOCK, run.records) - startBlock * BLOCK);
      const out = buffer.subarray(at, at + records * WORDS);
      at += records * WORDS;
      if (records > 0) readSync(this.fd, Buffer.from(out.buffer, out.byteOffset, out.byteLength), 0, records * RECORD, (run.start + startBlock * BLOCK) * RECORD);
      // Trimmed to the range (the first and last blocks may hold others).
      let lo = 0;
      while (lo < records && (out[lo * WORDS] as number) < from) lo++;
      let hi = records;
      while (hi > lo && (out[(hi - 1) * WORDS] as number) >= to) hi--;
      return out.subarray(lo * WORDS, hi * WORDS);
    });
  }

  close(): void {
    closeSync(this.fd);
    this.runs = [];
  }
}

/** Bytes of a part's chunk in KeyParts. */
const PART_CHUNK = 1 << 18;
/** Bytes a key of a window takes in memory: its fingerprint, two words of the sort, a flag. */
const WINDOW_BYTES_PER_KEY = RECORD + 8 + 1;

/** A chunk of a part in KeyParts' file. */
interface PartChunk {
  position: number;
  bytes: number;
  keys: number;
}

/**
 * Keys with their fingerprints in a temporary file (unlinked once opened), in parts by the range of
 * the fingerprint's first word (`bounds`): each part in chunks of PART_CHUNK bytes, one chunk per
 * part in memory while writing. A key is its four words, its UTF-8 length (32 bits) and its bytes.
 * A part is compared a window of chunks at a time, of at most `window` keys (more only when one
 * chunk holds more).
 */
class KeyParts {
  private fd: number;
  private end = 0;
  private readonly parts: number;
  private readonly open: Buffer[];
  private readonly used: number[];
  private readonly counted: number[];
  private readonly written: PartChunk[][];
  /** Per part, the first chunk of each window, and the end. */
  private windows: number[][] = [];
  private readonly buffer = Buffer.allocUnsafe(PART_CHUNK);
  private fingerprints = new Uint32Array(0);
  private found = new Uint8Array(0);
  constructor(
    dir: string,
    private readonly bounds: number[],
    private readonly window: number,
    private readonly scratch: SortScratch,
  ) {
    this.fd = openUnlinked(dir);
    this.parts = bounds.length - 1;
    this.open = Array.from({ length: this.parts }, () => Buffer.allocUnsafe(PART_CHUNK));
    this.used = new Array<number>(this.parts).fill(0);
    this.counted = new Array<number>(this.parts).fill(0);
    this.written = Array.from({ length: this.parts }, () => []);
  }

  /** Adds `key`, whose fingerprint is in `fp`. */
  add(key: string): void {
    const first = fp[0] as number;
    let part = Math.min(this.parts - 1, Math.floor((first / 2 ** 32) * this.parts));
    while (part > 0 && first < (this.bounds[part] as number)) part--;
    while (part < this.parts - 1 && first >= (this.bounds[part + 1] as number)) part++;
    if ((this.used[part] as number) + 20 + key.length * 3 > PART_CHUNK) {
      this.write(part);
      // A key longer than a chunk holds is a chunk of its own.
      if (20 + key.length * 3 > PART_CHUNK) {
        const record = Buffer.allocUnsafe(20 + Buffer.byteLength(key, 'utf8'));
        this.put(record, 0, key);
        this.write(part, record);
        return;
      }
    }
    this.used[part] = this.put(this.open[part] as Buffer, this.used[part] as number, key);
    this.counted[part]!++;
  }

  /** Writes the chunks still in memory, and cuts each part into windows. */
  flush(): void {
    for (let part = 0; part < this.parts; part++) this.write(part);
    this.windows = this.written.map((chunks) => {
      const starts = [0];
      let keys = 0;
      chunks.forEach((chunk, c) => {
        if (keys > 0 && keys + chunk.keys > this.window) {
          starts.push(c);
          keys = 0;
        }
        keys += chunk.keys;
      });
      starts.push(chunks.length);
      return chunks.length === 0 ? [0] : starts;
    });
    // Arrays for the longest window, allocated once.
    let longest = 0;
    this.windows.forEach((starts, part) => {
      const chunks = this.written[part] as PartChunk[];
      for (let w = 0; w + 1 < starts.length; w++) {
        let keys = 0;
        for (let c = starts[w] as number; c < (starts[w + 1] as number); c++) keys += (chunks[c] as PartChunk).keys;
        longest = Math.max(longest, keys);
      }
    });
    this.fingerprints = new Uint32Array(longest * WORDS);
    this.found = new Uint8Array(longest);
  }

  windowCount(part: number): number {
    return (this.windows[part]?.length ?? 1) - 1;
  }

  /**
   * The keys of a window of `part` whose fingerprints are in none of `slice`'s runs (each sorted by
   * first word): the window's fingerprints sorted, and walked in step with each run.
   */
  missing(part: number, window: number, slice: Uint32Array[]): string[] {
    const chunks = (this.written[part] as PartChunk[]).slice(this.windows[part]![window], this.windows[part]![window + 1]);
    const keys = chunks.reduce((n, chunk) => n + chunk.keys, 0);
    const f = this.fingerprints;
    let k = 0;
    for (const chunk of chunks) {
      const buffer = this.read(chunk);
      for (let at = 0; at < chunk.bytes; k++) {
        f[k * WORDS] = buffer.readUInt32LE(at);
        f[k * WORDS + 1] = buffer.readUInt32LE(at + 4);
        f[k * WORDS + 2] = buffer.readUInt32LE(at + 8);
        f[k * WORDS + 3] = buffer.readUInt32LE(at + 12);
        at += 20 + buffer.readUInt32LE(at + 16);
      }
    }
    const found = this.found;
    found.fill(0, 0, keys);
    const order = sortedByFirstWord(f.subarray(0, keys * WORDS), false, this.scratch);
    let missing = keys;
    for (const records of slice) missing -= walkInStep(f, order, records, found);
    if (missing === 0) return [];
    const out: string[] = [];
    k = 0;
    for (const chunk of chunks) {
      const buffer = this.read(chunk);
      for (let at = 0; at < chunk.bytes; k++) {
        const length = buffer.readUInt32LE(at + 16);
        if (found[k] === 0) out.push(buffer.toString('utf8', at + 20, at + 20 + length));
        at += 20 + length;
      }
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }

  private read(chunk: PartChunk): Buffer {
    const buffer = chunk.bytes <= this.buffer.length ? this.buffer : Buffer.allocUnsafe(chunk.bytes);
    readSync(this.fd, buffer, 0, chunk.bytes, chunk.position);
    return buffer;
  }

  /** Writes the key whose fingerprint is in `fp` into `chunk` at `at`; where it ends. */
  private put(chunk: Buffer, at: number, key: string): number {
    at = chunk.writeUInt32LE(fp[0] as number, at);
    at = chunk.writeUInt32LE(fp[1] as number, at);
    at = chunk.writeUInt32LE(fp[2] as number, at);
    at = chunk.writeUInt32LE(fp[3] as number, at);
    const length = chunk.write(key, at + 4, 'utf8');
    chunk.writeUInt32LE(length, at);
    return at + 4 + length;
  }

  /** Writes the part's open chunk (or `record`, one key) at the file's end. */
  private write(part: number, record?: Buffer): void {
    const bytes = record ? record.length : (this.used[part] as number);
    if (bytes === 0) return;
    writeSync(this.fd, record ?? (this.open[part] as Buffer), 0, bytes, this.end);
    (this.written[part] as PartChunk[]).push({ position: this.end, bytes, keys: record ? 1 : (this.counted[part] as number) });
    this.end += bytes;
    if (!record) {
      this.used[part] = 0;
      this.counted[part] = 0;
    }
  }
}

/**
 * Marks in `found` the fingerprints of `f` (in the order `order` gives, by first word) that are in
 * `records` (sorted by first word): one walk along both. Answers how many it marked.
 */
function walkInStep(f: Uint32Array, order: Uint32Array, records: Uint32Array, found: Uint8Array): number {
  const n = records.length / WORDS;
  let marked = 0;
  let j = 0;
  for (let t = 0; t < order.length && j < n; t++) {
    const at = (order[t] as number) * WORDS;
    const first = f[at] as number;
    while (j < n && (records[j * WORDS] as number) < first) j++;
    for (let r = j; r < n && records[r * WORDS] === first; r++) {
      const w = r * WORDS;
      if (records[w + 1] === f[at + 1] && records[w + 2] === f[at + 2] && records[w + 3] === f[at + 3]) {
        if (found[at / WORDS] === 0) {
          found[at / WORDS] = 1;
          marked++;
        }
        break;
      }
    }
  }
  return marked;
}

/** Sets a fingerprint's bits (from its second and third words: double hashing) in a Bloom filter of a power-of-two size. */
function bloomAdd(bloom: Uint32Array, a: number, b: number): void {
  const mask = bloom.length * 32 - 1;
  const step = b | 1;
  for (let i = 0; i < BLOOM_PROBES; i++) {
    const bit = (a + Math.imul(i, step)) & mask;
    bloom[bit >>> 5]! |= 1 << (bit & 31);
  }
}

function bloomHas(bloom: Uint32Array, a: number, b: number): boolean {
  const mask = bloom.length * 32 - 1;
  const step = b | 1;
  for (let i = 0; i < BLOOM_PROBES; i++) {
    const bit = (a + Math.imul(i, step)) & mask;
    if (((bloom[bit >>> 5] as number) & (1 << (bit & 31))) === 0) return false;
  }
  return true;
}

/** Whether `f` (default: `fp`) is among `records[from..to)` (fingerprints sorted by first word). */
function findRecord(records: Uint32Array, from: number, to: number, f: Uint32Array = fp): boolean {
  const first = f[0] as number;
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((records[mid * WORDS] as number) < first) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < to && records[i * WORDS] === first; i++) {
    const at = i * WORDS;
    if (records[at + 1] === f[1] && records[at + 2] === f[2] && records[at + 3] === f[3]) return true;
  }
  return false;
}

/** The arrays a sort uses, kept for the next (grown when too short). */
interface SortScratch {
  byLow: Uint32Array;
  order: Uint32Array;
}

/**
 * The places of `records`' fingerprints in order of their first word (a radix sort on two 16-bit
 * digits: linear, no comparison function); when `sparse`, only the filled slots of a table.
 */
function sortedByFirstWord(records: Uint32Array, sparse: boolean, scratch: SortScratch): Uint32Array {
  const slots = records.length / WORDS;
  let n = 0;
  for (let i = 0; i < slots; i++) if (!sparse || records[i * WORDS + 3] !== 0) n++;
  if (scratch.byLow.length < n) {
    scratch.byLow = new Uint32Array(n);
    scratch.order = new Uint32Array(n);
  }
  const byLow = scratch.byLow;
  const counts = new Uint32Array(1 << 16);
  for (let i = 0; i < slots; i++) if (!sparse || records[i * WORDS + 3] !== 0) counts[(records[i * WORDS] as number) & 0xffff]!++;
  let sum = 0;
  for (let d = 0; d < counts.length; d++) {
    const c = counts[d] as number;
    counts[d] = sum;
    sum += c;
  }
  for (let i = 0; i < slots; i++) if (!sparse || records[i * WORDS + 3] !== 0) byLow[counts[(records[i * WORDS] as number) & 0xffff]!++] = i;
  counts.fill(0);
  for (let j = 0; j < n; j++) counts[(records[(byLow[j] as number) * WORDS] as number) >>> 16]!++;
  sum = 0;
  for (let d = 0; d < counts.length; d++) {
    const c = counts[d] as number;
    counts[d] = sum;
    sum += c;
  }
  const order = scratch.order.subarray(0, n);
  for (let j = 0; j < n; j++) {
    const i = byLow[j] as number;
    order[counts[(records[i * WORDS] as number) >>> 16]!++] = i;
  }
  return order;
}

/** The last fingerprint computed: four words, in one array for the whole module (nothing allocated per key). */
const fp = new Uint32Array(4);
const seed = randomBytes(16);
const SEED1 = seed.readUInt32LE(0);
const SEED2 = seed.readUInt32LE(4);
const SEED3 = seed.readUInt32LE(8);
const SEED4 = seed.readUInt32LE(12);

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

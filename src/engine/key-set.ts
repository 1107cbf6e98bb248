/**
 * The set of primary keys a run has seen, kept compact: each key is remembered by a 128-bit
 * fingerprint (the first 16 bytes of its SHA-1) in an open-addressing table of 32-bit words, about
 * 32 bytes per key at the fullest, instead of the key itself (a JavaScript string in a `Set` costs
 * several times that and slows the garbage collector). Two different keys share a fingerprint with
 * a probability of about n²/2¹²⁹ — the same trust the snapshot already puts in SHA-1 for values.
 */
import { hash } from 'node:crypto';

const WORDS = 4;

export class KeySet {
  private table: Uint32Array;
  private capacity: number;
  private count = 0;

  constructor(initialCapacity = 1 << 16) {
    this.capacity = 1 << Math.ceil(Math.log2(Math.max(16, initialCapacity)));
    this.table = new Uint32Array(this.capacity * WORDS);
  }

  get size(): number {
    return this.count;
  }

  /** Adds an encoded key; false when it was already in the set. */
  add(key: string): boolean {
    const f = fingerprint(key);
    if (this.find(f) >= 0) return false;
    if ((this.count + 1) * 2 > this.capacity) this.grow();
    this.insert(f);
    this.count++;
    return true;
  }

  has(key: string): boolean {
    return this.find(fingerprint(key)) >= 0;
  }

  private find(f: Uint32Array): number {
    const mask = this.capacity - 1;
    const t = this.table;
    // An all-zero fingerprint would look like an empty slot; fingerprint() never returns one.
    for (let slot = (f[0] as number) & mask; ; slot = (slot + 1) & mask) {
      const at = slot * WORDS;
      const w0 = t[at] as number;
      if (w0 === 0 && t[at + 1] === 0 && t[at + 2] === 0 && t[at + 3] === 0) return -1;
      if (w0 === f[0] && t[at + 1] === f[1] && t[at + 2] === f[2] && t[at + 3] === f[3]) return slot;
    }
  }

  private insert(f: Uint32Array): void {
    const mask = this.capacity - 1;
    const t = this.table;
    let slot = (f[0] as number) & mask;
    while (t[slot * WORDS] !== 0 || t[slot * WORDS + 1] !== 0 || t[slot * WORDS + 2] !== 0 || t[slot * WORDS + 3] !== 0) {
      slot = (slot + 1) & mask;
    }
    t.set(f, slot * WORDS);
  }

  private grow(): void {
    const old = this.table;
    this.capacity *= 2;
    this.table = new Uint32Array(this.capacity * WORDS);
    const f = new Uint32Array(WORDS);
    for (let at = 0; at < old.length; at += WORDS) {
      if (old[at] === 0 && old[at + 1] === 0 && old[at + 2] === 0 && old[at + 3] === 0) continue;
      f.set(old.subarray(at, at + WORDS));
      this.insert(f);
    }
  }
}

const scratch = new Uint32Array(WORDS);

/** The key's fingerprint, in a shared scratch array (copied by `insert`). */
function fingerprint(key: string): Uint32Array {
  const digest = hash('sha1', key, 'buffer') as unknown as Buffer;
  scratch[0] = digest.readUInt32LE(0);
  scratch[1] = digest.readUInt32LE(4);
  scratch[2] = digest.readUInt32LE(8);
  scratch[3] = digest.readUInt32LE(12) | 1; // never all zero
  return scratch;
}

import { describe, expect, it } from 'vitest';
import { KeySet } from '../../src/engine/key-set.js';

describe('KeySet', () => {
  it('answers whether a key was added before, through many growths, for keys of any text', () => {
    const set = new KeySet(16);
    const keys = Array.from({ length: 200_000 }, (_, i) => (i % 3 === 0 ? JSON.stringify([i, `région ${i}`]) : `[${i}]`));
    for (const k of keys) expect(set.add(k)).toBe(true);
    expect(set.size).toBe(keys.length);
    for (const k of keys.slice(0, 1000)) expect(set.add(k)).toBe(false);
    expect(set.size).toBe(keys.length);
    for (const k of keys) expect(set.has(k)).toBe(true);
    for (let i = 200_000; i < 201_000; i++) expect(set.has(`[${i}]`)).toBe(false);
    expect(set.add('')).toBe(true);
    expect(set.has('')).toBe(true);
    expect(set.add('')).toBe(false);
  });

  it('finds a repeated key among keys that came in order, and keeps answering once they stop', () => {
    const set = new KeySet(16);
    // Shortlex order: numeric order for keys of positive integers.
    for (let i = 1; i <= 50_000; i++) expect(set.add(`[${i}]`)).toBe(true);
    expect(set.add('[50000]')).toBe(false);
    expect(set.add('[7]')).toBe(false);
    expect(set.add('[50001]')).toBe(true);
    expect(set.size).toBe(50_001);
    for (let i = 1; i <= 50_001; i++) expect(set.has(`[${i}]`)).toBe(true);
    expect(set.has('[0]')).toBe(false);

    const looked = new KeySet(16);
    for (const k of ['["a"]', '["b"]', '["aa"]']) expect(looked.add(k)).toBe(true);
    expect(looked.has('["b"]')).toBe(true);
    expect(looked.has('["c"]')).toBe(false);
    expect(looked.add('["ab"]')).toBe(true);
    expect(looked.add('["a"]')).toBe(false);
  });
});

describe('KeySet over its memory budget', () => {
  /** Keys of the snapshot the set does not hold, through `unseen`, in pages as a store gives them. */
  async function unseenOf(set: KeySet, snapshot: string[]): Promise<string[]> {
    const scan = async function* () {
      for (let i = 0; i < snapshot.length; i += 997) yield snapshot.slice(i, i + 997);
    };
    const out: string[] = [];
    for await (const k of set.unseen(scan)) out.push(k);
    return out.sort();
  }

  const orders: Array<[string, (n: number) => string[]]> = [
    ['in order', (n) => Array.from({ length: n }, (_, i) => `[${i + 1}]`)],
    ['in order, then some out of order (updated rows at the end of a heap)', (n) => {
      const keys = Array.from({ length: n }, (_, i) => `[${i + 1}]`).filter((_, i) => i % 50 !== 7);
      return [...keys, ...Array.from({ length: n }, (_, i) => `[${i + 1}]`).filter((_, i) => i % 50 === 7), `[${n + 1}]`, `[${n + 2}]`];
    }],
    ['in no order', (n) => {
      const keys = Array.from({ length: n }, (_, i) => (i % 4 === 0 ? JSON.stringify([i, `é${i}`]) : `[${i}]`));
      let seed = 7;
      for (let i = keys.length - 1; i > 0; i--) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const j = seed % (i + 1);
        [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
      }
      return keys;
    }],
  ];

  it.each(orders)('answers as a Set does, keys %s, whether it spills or not', async (_name, make) => {
    const keys = make(12_000);
    // Repeats of earlier keys, spread through the stream.
    const stream = keys.flatMap((k, i) => (i % 1000 === 999 ? [k, keys[i - 500] as string] : [k]));
    const snapshot = [...keys.filter((_, i) => i % 3 === 0), ...Array.from({ length: 500 }, (_, i) => `["gone ${i}"]`)];
    const results: Array<{ added: boolean[]; size: number; has: boolean[]; unseen: string[]; spilled: number }> = [];
    for (const budgetBytes of [undefined, 16 * 1024, 64 * 1024]) {
      const set = new KeySet(16, { budgetBytes });
      try {
        const added = stream.map((k) => set.add(k));
        const has = [...keys.slice(0, 2000), '[0]', '["nope"]'].map((k) => set.has(k));
        results.push({ added, size: set.size, has, unseen: await unseenOf(set, snapshot), spilled: set.spilled });
      } finally {
        set.close();
      }
    }
    const expected = new Set<string>();
    const [memory, ...spilled] = results;
    expect(memory!.added).toEqual(stream.map((k) => (expected.has(k) ? false : (expected.add(k), true))));
    expect(memory!.size).toBe(keys.length);
    expect(memory!.unseen).toEqual(Array.from({ length: 500 }, (_, i) => `["gone ${i}"]`).sort());
    expect(memory!.spilled).toBe(0);
    for (const result of spilled) {
      expect(result.spilled).toBeGreaterThan(0);
      expect({ ...result, spilled: 0 }).toEqual(memory);
    }
  });

  it('finds unseen keys of any length in one read of the snapshot, and answers as before after', async () => {
    const long = (i: number) => JSON.stringify([i, 'x'.repeat(100_000 + i)]);
    const keys = [...Array.from({ length: 20_000 }, (_, i) => `[${i}]`), long(1), long(2)];
    const set = new KeySet(16, { budgetBytes: 32 * 1024 });
    let scans = 0;
    try {
      for (const k of keys) set.add(k);
      expect(set.spilled).toBeGreaterThan(0);
      const gone = ['["gone"]', long(3), '[20000]'];
      const scan = async function* () {
        scans++;
        for (const k of [...keys, ...gone]) yield [k];
      };
      const unseen: string[] = [];
      for await (const k of set.unseen(scan)) unseen.push(k);
      expect(unseen.sort()).toEqual([...gone].sort());
      expect(scans).toBe(1);
      expect(set.has('[19999]')).toBe(true);
      expect(set.has(long(2))).toBe(true);
      expect(set.add('[7]')).toBe(false);
      expect(set.add('["new"]')).toBe(true);
      expect(set.has('["new"]')).toBe(true);
    } finally {
      set.close();
    }
  });

  it('holds no more than its budget in memory, however many keys', () => {
    const set = new KeySet(1 << 20, { budgetBytes: 256 * 1024 });
    try {
      for (let i = 0; i < 100_000; i++) set.add(`[${(i * 7919) % 100_003}]`);
      expect(set.size).toBe(100_000);
      expect(set.spilled).toBeGreaterThan(50_000);
      expect(set.bytes).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
    } finally {
      set.close();
    }
  });
});

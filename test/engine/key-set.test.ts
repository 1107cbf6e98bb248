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
});

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

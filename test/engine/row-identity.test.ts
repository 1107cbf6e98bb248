import { describe, expect, it } from 'vitest';
import { timestampTextToIso } from '../../src/connectors/values.js';
import { encodeKey } from '../../src/core/keys.js';
import type { Value } from '../../src/core/ports.js';
import { SnapshotIndex } from '../../src/engine/snapshot-index.js';

// Snapshot keys and values must not change between versions: a different spelling would plan
// every row again.
describe('row identity', () => {
  it('spells keys exactly as JSON.stringify does', () => {
    const keys: Value[][] = [
      [0], [-0], [1], [-17], [2 ** 53 - 1], [1.5], [1e21], [1e-7], [123456789012],
      ['a'], ['é"\\\n'], [null], [true], [1, 'x'], [], ['9007199254740993'],
    ];
    for (const key of keys) expect(encodeKey(key)).toBe(JSON.stringify(key));
  });

  it('keeps milliseconds and only the nonzero finer digits of a timestamp', () => {
    expect(timestampTextToIso('2024-01-02 03:04:05')).toBe('2024-01-02T03:04:05.000Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.1')).toBe('2024-01-02T03:04:05.100Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.12')).toBe('2024-01-02T03:04:05.120Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.123')).toBe('2024-01-02T03:04:05.123Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.123400')).toBe('2024-01-02T03:04:05.1234Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.123000+00')).toBe('2024-01-02T03:04:05.123Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.000001')).toBe('2024-01-02T03:04:05.000001Z');
    expect(timestampTextToIso('2024-01-02 03:04:05.5+02')).toBe('2024-01-02T01:04:05.500Z');
  });

  it('finds ASCII and non-ASCII keys in the snapshot index', () => {
    const index = new SnapshotIndex(4, 1 << 20);
    const keys = ['[1]', '["é"]', '["日本"]', '["a\\u0000"]'];
    for (const key of keys) expect(index.add(key, '0123456789abcdef')).toBe(true);
    for (const [i, key] of keys.entries()) expect(index.visit(key)).toBe(i);
    expect(index.visit('["e"]')).toBe(-1);
    expect([...index.unseen()]).toEqual([]);
  });
});

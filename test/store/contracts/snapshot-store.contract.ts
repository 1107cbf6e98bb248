/**
 * The SnapshotStore contract: per sync, the hash of each delivered key and the destination's id of
 * each delivered row. A write upserts and deletes in one call; reads give back exactly what was
 * written, whatever the keys hold and whether hashes came as text or as words; keys and bulk pages
 * come in key order, every one of them even when the snapshot changes between pages. A cleared
 * snapshot is empty, and a deleted sync's record ids are gone.
 */
import { describe, expect, it } from 'vitest';
import { hashText } from '../../../src/core/hash-text.js';
import type { Store } from '../../../src/core/ports.js';
import { T0, crmWorkspace, useFreshStore, type OpenStore } from './fixtures.js';

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const batches: T[] = [];
  for await (const batch of iterable) batches.push(batch);
  return batches;
}

export function describeSnapshotStoreContract(name: string, open: OpenStore): void {
  describe(`SnapshotStore contract: ${name}`, () => {
    let store: Store;
    const { applyCrm, syncId } = useFreshStore(open, (opened) => {
      store = opened;
    });

    describe('snapshots', () => {
      const key = (i: number) => JSON.stringify([`k${String(i).padStart(6, '0')}`]);

      it('writes, reads, pages, counts and clears 10,000 keys per sync', async () => {
        const { syncs } = await applyCrm();
        const a = syncs['accounts-to-crm']!.id;
        const b = syncs['contacts-to-crm']!.id;
        const keys = Array.from({ length: 10_000 }, (_, i) => key(i));
        // Written out of order: the store sorts.
        const shuffled = [...keys].reverse();
        await store.snapshots.write(a, shuffled.map((k) => [k, `hash-${k}`]), []);
        await store.snapshots.write(b, [[key(1), 'other']], []);
        expect(await store.snapshots.count(a)).toBe(10_000);
        expect(await store.snapshots.count(b)).toBe(1);

        const wanted = [...keys.slice(0, 1200), '["missing"]', key(9999)];
        const found = await store.snapshots.get(a, wanted);
        expect(found.size).toBe(1201);
        expect(found.get(key(0))).toBe(`hash-${key(0)}`);
        expect(found.get(key(1199))).toBe(`hash-${key(1199)}`);
        expect(found.get(key(9999))).toBe(`hash-${key(9999)}`);
        expect(found.has('["missing"]')).toBe(false);
        expect((await store.snapshots.get(b, [key(1), key(2)])).get(key(1))).toBe('other');
        expect((await store.snapshots.get(a, [])).size).toBe(0);

        const batches = await collect(store.snapshots.keys(a, 3000));
        expect(batches.map((batch) => batch.length)).toEqual([3000, 3000, 3000, 1000]);
        expect(batches.flat()).toEqual(keys);
        expect((await collect(store.snapshots.keys(a, 10_000))).map((batch) => batch.length)).toEqual([10_000]);

        await store.snapshots.write(a, [[key(5), 'changed'], ['["new"]', 'fresh']], [key(6), key(7), '["never-there"]']);
        expect(await store.snapshots.count(a)).toBe(9_999);
        const after = await store.snapshots.get(a, [key(5), key(6), '["new"]']);
        expect(Object.fromEntries(after)).toEqual({ [key(5)]: 'changed', '["new"]': 'fresh' });

        await store.snapshots.clear(a);
        expect(await store.snapshots.count(a)).toBe(0);
        expect(await collect(store.snapshots.keys(a, 100))).toEqual([]);
        expect(await store.snapshots.count(b)).toBe(1);
      });

      it("keeps a change cursor's value (text or number) and run count per sync, forgotten when the snapshot is cleared or the sync deleted", async () => {
        const { syncs } = await applyCrm();
        const a = syncs['accounts-to-crm']!.id;
        const b = syncs['contacts-to-crm']!.id;
        expect(await store.snapshots.cursorGet(a)).toBeNull();
        await store.snapshots.cursorSet(a, { value: "2024-01-02 03:04:05.123456+00 it's", runs: 0 });
        await store.snapshots.cursorSet(b, { value: 42, runs: 3 });
        await store.snapshots.cursorSet(a, { value: '2024-01-03 00:00:00+00', runs: 1 });
        expect(await store.snapshots.cursorGet(a)).toEqual({ value: '2024-01-03 00:00:00+00', runs: 1 });
        expect(await store.snapshots.cursorGet(b)).toEqual({ value: 42, runs: 3 });
        // A number-looking text stays text.
        await store.snapshots.cursorSet(b, { value: '42', runs: 4 });
        expect(await store.snapshots.cursorGet(b)).toEqual({ value: '42', runs: 4 });
        await store.snapshots.clear(a);
        expect(await store.snapshots.cursorGet(a)).toBeNull();
        await store.snapshots.cursorSet(b, null);
        expect(await store.snapshots.cursorGet(b)).toBeNull();
      });

      it('gives every entry in bulk pages: keys joined by line breaks, 16 hex digits per hash, 16 - for any other hash', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        const hex = (i: number) => (i * 2654435761).toString(16).padStart(16, '0').slice(-16);
        const entries: Array<[string, string]> = Array.from({ length: 2500 }, (_, i) => [key(i), hex(i + 1)]);
        entries.push([JSON.stringify(['région 1', 2]), hex(7)], ['["old"]', 'base64-hash-of-old+='], ['["short"]', 'abcd']);
        await store.snapshots.write(id, [...entries].reverse(), []);
        const pages = await collect(store.snapshots.pages(id, 1000));
        expect(pages.map((p) => p.count)).toEqual([1000, 1000, 503]);
        const read = new Map<string, string>();
        for (const page of pages) {
          const keys = page.keys.split('\n');
          expect(keys).toHaveLength(page.count);
          expect(page.hashes).toHaveLength(page.count * 16);
          keys.forEach((k, i) => read.set(k, page.hashes.slice(i * 16, i * 16 + 16).toLowerCase()));
        }
        // Pages follow key order: each page's keys come after the previous page's.
        for (let p = 1; p < pages.length; p++) {
          const before = pages[p - 1]!.keys.split('\n').sort().at(-1)!;
          expect(pages[p]!.keys.split('\n').every((k) => k > before)).toBe(true);
        }
        const expected = new Map(entries.map(([k, h]) => [k, /^[0-9a-f]{16}$/.test(h) ? h : '----------------']));
        expect(read).toEqual(expected);
        expect(await collect(store.snapshots.pages(await syncId('accounts-to-crm'), 10))).toEqual([]);
      });

      it('pages a large snapshot whose size it is told exactly as any other: every entry once, pages in key order', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        const hex = (i: number) => (i * 2654435761).toString(16).padStart(16, '0').slice(-16);
        const entries: Array<[string, string]> = Array.from({ length: 120_003 }, (_, i) => [String(i), hex(i + 1)]);
        for (let at = 0; at < entries.length; at += 20_000) await store.snapshots.write(id, entries.slice(at, at + 20_000), []);
        const pages = await collect(store.snapshots.pages(id, 10_000, entries.length));
        const read = new Map<string, string>();
        let before = '';
        for (const page of pages) {
          const keys = page.keys.split('\n');
          expect(keys).toHaveLength(page.count);
          expect(keys.every((k) => k > before)).toBe(true);
          before = keys.reduce((a, b) => (a > b ? a : b));
          keys.forEach((k, i) => read.set(k, page.hashes.slice(i * 16, i * 16 + 16).toLowerCase()));
        }
        expect(pages.reduce((n, p) => n + p.count, 0)).toBe(entries.length);
        expect(read).toEqual(new Map(entries));
      });

      it('takes delivered rows in columns, hashes as words, exactly like [key, hex] pairs, whatever the keys hold', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        const keys = [...Array.from({ length: 1200 }, (_, i) => key(i)), JSON.stringify(['nul\u0000inside']), '["région ✓"]'];
        const hashes = new Uint32Array(keys.length * 2);
        keys.forEach((_, i) => {
          hashes[2 * i] = (i * 2654435761) >>> 0;
          hashes[2 * i + 1] = (0xffffffff - i) >>> 0;
        });
        await store.snapshots.write(id, { keys, hashes }, []);
        const read = await store.snapshots.get(id, keys);
        expect(read.size).toBe(keys.length);
        keys.forEach((k, i) => expect(read.get(k)).toBe(hashText(hashes[2 * i]!, hashes[2 * i + 1]!)));
        // A raw NUL inside a key (JSON text never holds one) still goes through.
        await store.snapshots.write(id, { keys: ['a\u0000b', key(0)], hashes: new Uint32Array([1, 2, 3, 4]) }, [key(1)]);
        expect(Object.fromEntries(await store.snapshots.get(id, ['a\u0000b', key(0), key(1)]))).toEqual({
          'a\u0000b': '0000000100000002',
          [key(0)]: '0000000300000004',
        });
        expect(await store.snapshots.count(id)).toBe(keys.length);
        // A key given twice in one write keeps its last hash; quotes and backslashes stay as they are.
        await store.snapshots.write(id, { keys: [key(2), '["a\\"b"]', key(2)], hashes: new Uint32Array([1, 1, 5, 5, 2, 2]) }, []);
        expect(Object.fromEntries(await store.snapshots.get(id, [key(2), '["a\\"b"]']))).toEqual({ [key(2)]: '0000000200000002', '["a\\"b"]': '0000000500000005' });
      });

      it('compares rows with the snapshot when it can: only the missing and the changed rows come back, in order', async (context) => {
        if (!store.snapshots.changes) return context.skip();
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        const other = await syncId('accounts-to-crm');
        const words = (pairs: Array<[number, number]>) => new Uint32Array(pairs.flat());
        // Stored: 0..5 as words, 6 as the same hash in hex text, 7 in a form no hash takes; 8 only under another sync.
        await store.snapshots.write(id, { keys: [0, 1, 2, 3, 4, 5].map(key), hashes: words([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6]]) }, []);
        await store.snapshots.write(id, [[key(6), hashText(7, 7)], [key(7), 'not a hash']], []);
        await store.snapshots.write(other, { keys: [key(8)], hashes: words([[9, 9]]) }, []);
        const rows = {
          keys: [key(8), key(0), key(1), key(2), key(9), key(3), key(6), key(7), '["nul\u0000région"]', key(4)],
          hashes: words([[9, 9], [1, 1], [2, 0xffffffff], [3, 3], [1, 1], [0x80000000, 4], [7, 7], [8, 8], [1, 2], [5, 5]]),
        };
        expect(await store.snapshots.changes(id, rows)).toEqual({ added: [0, 4, 8], changed: [2, 5, 7] });
        expect(await store.snapshots.changes(id, { keys: [], hashes: new Uint32Array(0) })).toEqual({ added: [], changed: [] });
      });

      it('pages keys correctly while the snapshot changes between pages', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        await store.snapshots.write(id, Array.from({ length: 10 }, (_, i): [string, string] => [key(i), 'h']), []);
        const seen: string[] = [];
        for await (const batch of store.snapshots.keys(id, 4)) {
          seen.push(...batch);
          // Deleting already-seen keys must not make the next page skip any.
          if (seen.length === 4) await store.snapshots.write(id, [], batch);
        }
        expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => key(i)));
      });
    });

    describe('record ids', () => {
      it('keeps the destination id of each delivered key per sync, replaces it, drops deleted keys, and forgets a deleted sync', async () => {
        const { syncs } = await applyCrm();
        const a = syncs['deals-to-crm']!.id;
        const b = syncs['contacts-to-crm']!.id;
        await store.snapshots.recordIdsWrite(a, [['[1]', '001A'], ['[2]', '001B'], ['["x\\"y"]', '001C']], []);
        await store.snapshots.recordIdsWrite(b, [['[1]', '003A']], []);
        expect([...(await store.snapshots.recordIdsGet(a, ['[1]', '[2]', '["x\\"y"]', '[9]'])).entries()].sort()).toEqual([
          ['["x\\"y"]', '001C'],
          ['[1]', '001A'],
          ['[2]', '001B'],
        ]);
        await store.snapshots.recordIdsWrite(a, [['[1]', '001Z']], ['[2]']);
        const after = await store.snapshots.recordIdsGet(a, ['[1]', '[2]']);
        expect([...after.entries()]).toEqual([['[1]', '001Z']]);
        expect((await store.snapshots.recordIdsGet(b, ['[1]'])).get('[1]')).toBe('003A');
        expect((await store.snapshots.recordIdsGet(a, [])).size).toBe(0);
        for (const sequence of crmWorkspace().sequences) await store.deleteEntity('sequence', sequence.slug, T0 + 1);
        await store.deleteEntity('sync', 'deals-to-crm', T0 + 1);
        expect((await store.snapshots.recordIdsGet(a, ['[1]'])).size).toBe(0);
      });
    });
  });
}

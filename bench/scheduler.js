/**
 * Scheduler benchmark (SPEC §8): 10,000 enabled schedules in one process, each firing within 1 s of
 * its due time (p99), on the embedded SQLite store with the real clock.
 *
 * The workspace has 10,000 syncs (one model, one destination table; nothing runs them: no worker
 * starts, so firing means "the run is queued in the store"). Their schedules, all due every minute:
 *   60% interval { unit: minute, quantity: 1 } with startAt spread over the minute (ms precision),
 *   20% cron "* * * * *" (UTC), 20% recurrence every day at the next minutes (UTC): these 40% are
 *   due at the same second, the burst a real workspace's ":00" schedules make.
 * A Scheduler built like the app's (same store, same listSchedules, same fire: runs.queueFiredRun)
 * runs for --seconds (default 150); each firing's delay is (time the run was queued) − (due time).
 *
 * Idle CPU: after the measured window every schedule is changed to a daily interval due in 12 hours
 * and reloaded (still 10,000 enabled and armed), then process.cpuUsage() is read over --idle
 * seconds (default 20) with no due time.
 *
 * Baseline, in the same run: a child Node.js process, started at the same moment, sets one plain
 * setTimeout per due time of the same schedules in the same window and records each timer's
 * lateness (the event loop's floor, no store); then it idles for the same idle window with one
 * 1-second interval timer (as the scheduler's loop) and reports its own CPU.
 *
 * Usage: node bench/run.js scheduler [--schedules 10000] [--seconds 150] [--idle 20]
 * The last line printed is one JSON object with the figures.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, scheduleEntries } from '../dist/app.js';
import { resolveConfig } from '../dist/config.js';
import { systemClock } from '../dist/core/clock.js';
import { silentLogger } from '../dist/core/logger.js';
import { Scheduler } from '../dist/engine/scheduler.js';
import { dueTimesBetween } from '../dist/engine/schedule-times.js';

const DEFAULTS = { schedules: 10_000, seconds: 150, idle: 20 };

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const name = flag?.replace(/^--/, '');
    if (!flag?.startsWith('--') || !(name in options)) throw new Error(`unknown argument "${flag}" — use --schedules N, --seconds N, --idle N`);
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a whole number (got "${args[i]}")`);
    options[name] = value;
  }
  return options;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

const round = (ms) => Math.round(ms * 10) / 10;
const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);

function stats(delays) {
  const sorted = [...delays].sort((a, b) => a - b);
  return { count: sorted.length, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted[sorted.length - 1] ?? NaN) };
}

/** The schedule of sync i (see the header for the mix). */
function scheduleOf(i, count, start) {
  const kind = i % 10;
  if (kind < 6) {
    // Spread over the minute, independent of i's kind, with ms precision.
    const offset = Math.floor((i / count) * 60_000);
    return { type: 'interval', unit: 'minute', quantity: 1, startAt: new Date(Date.UTC(2026, 0, 1) + offset).toISOString(), catchupWindowSeconds: 3600 };
  }
  if (kind < 8) return { type: 'cron', expression: '* * * * *', timezone: 'UTC', catchupWindowSeconds: 3600 };
  const times = [];
  for (let m = 1; m <= 8; m++) times.push(hhmm(start + m * 60_000));
  const days = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
  return { type: 'recurrence', timezone: 'UTC', days, times: [...new Set(times)], catchupWindowSeconds: 3600 };
}

function definition(count, schedule) {
  const syncs = [];
  for (let i = 0; i < count; i++) {
    syncs.push({
      slug: `sync-${String(i).padStart(5, '0')}`,
      model: 'rows',
      destination: 'crm',
      object: 'rows',
      mode: 'upsert',
      deleteBehavior: 'ignore',
      mappings: [],
      schedule: schedule(i),
      enabled: true,
      batchSize: 1000,
    });
  }
  return {
    sources: [{ slug: 'warehouse', type: 'sqlite', url: null, path: 'warehouse.db' }],
    destinations: [{ slug: 'crm', type: 'sqlite', url: null, path: 'crm.db' }],
    models: [{ slug: 'rows', source: 'warehouse', query: 'select id from rows', primaryKey: ['id'] }],
    syncs,
    sequences: [],
  };
}

/** The child process of the baseline: plain timers at the due times, then an idle window. */
const BASELINE_CHILD = `
import { readFileSync } from 'node:fs';
const { dueTimes, idleMs } = JSON.parse(readFileSync(process.argv[1], 'utf8'));
const delays = [];
let left = dueTimes.length;
const idle = () => {
  const keepAlive = setInterval(() => {}, 1000);
  const before = process.cpuUsage();
  setTimeout(() => {
    const used = process.cpuUsage(before);
    clearInterval(keepAlive);
    process.stdout.write(JSON.stringify({ delays, idleCpuMicros: used.user + used.system }));
  }, idleMs);
};
for (const due of dueTimes) {
  setTimeout(() => {
    delays.push(Date.now() - due);
    if (--left === 0) idle();
  }, Math.max(0, due - Date.now()));
}
if (left === 0) idle();
`;

function startBaseline(file) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', BASELINE_CHILD, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`baseline process exited with ${code}`))));
  });
}

export async function main(args) {
  const options = parseArgs(args);
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-bench-scheduler-'));
  let app = null;
  let scheduler = null;
  try {
    const config = resolveConfig({ workspaceDir: dir, env: { ...process.env, LOCKSTEP_LOG_LEVEL: 'error' } });
    app = await createApp(config, { logger: silentLogger });
    const start = systemClock.now();
    const measured = definition(options.schedules, (i) => scheduleOf(i, options.schedules, start));
    let t = Date.now();
    await app.store.applyWorkspace(measured, systemClock.now());
    process.stdout.write(`applied ${options.schedules} syncs with schedules in ${Date.now() - t} ms\n`);

    const delays = [];
    const runs = app.runs;
    scheduler = new Scheduler({
      store: app.store.schedules,
      clock: systemClock,
      logger: silentLogger,
      listSchedules: async () => scheduleEntries(await app.store.loadWorkspace()),
      fire: async (entry, dueTime, firingKey) => {
        const target = { kind: 'sync', slug: entry.id.slice('sync:'.length) };
        const queued = await runs.queueFiredRun(firingKey, target, { type: 'schedule', detail: firingKey });
        delays.push(systemClock.now() - dueTime);
        return queued !== null;
      },
    });
    t = Date.now();
    await scheduler.start();
    const armedAt = systemClock.now();
    const endAt = armedAt + options.seconds * 1000;
    process.stdout.write(`armed in ${Date.now() - t} ms; measuring for ${options.seconds} s\n`);

    // The baseline's due times: the same schedules' due times in the same window.
    const dueTimes = [];
    for (const sync of measured.syncs) dueTimes.push(...dueTimesBetween(sync.schedule, armedAt, endAt, 100_000));
    const baselineFile = join(dir, 'baseline.json');
    writeFileSync(baselineFile, JSON.stringify({ dueTimes, idleMs: options.idle * 1000 }));
    const baseline = startBaseline(baselineFile);

    for (let elapsed = 0; elapsed < options.seconds; elapsed += 30) {
      await new Promise((r) => setTimeout(r, Math.min(30, options.seconds - elapsed) * 1000));
      const s = stats(delays);
      process.stdout.write(`  ${Math.min(options.seconds, elapsed + 30)} s: ${s.count} firings, p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms\n`);
    }
    // Firings due inside the window that are still being queued finish before counting.
    await new Promise((r) => setTimeout(r, Math.max(0, endAt - Date.now())));
    const firing = stats(delays);

    // Idle: still 10,000 enabled schedules, none due for 12 hours.
    const later = new Date(systemClock.now() + 12 * 3600_000).toISOString();
    await app.store.applyWorkspace(
      definition(options.schedules, () => ({ type: 'interval', unit: 'day', quantity: 1, startAt: later, catchupWindowSeconds: 3600 })),
      systemClock.now(),
    );
    await scheduler.reload();
    const firingsBeforeIdle = delays.length;
    await new Promise((r) => setTimeout(r, 2000)); // let the reload's writes settle
    const before = process.cpuUsage();
    const idleStart = performance.now();
    await new Promise((r) => setTimeout(r, options.idle * 1000));
    const used = process.cpuUsage(before);
    const idleCpu = ((used.user + used.system) / 1000 / (performance.now() - idleStart)) * 100;
    if (delays.length !== firingsBeforeIdle) throw new Error('a schedule fired during the idle window');

    const base = await baseline;
    const baseStats = stats(base.delays);
    const baseIdle = (base.idleCpuMicros / 1000 / (options.idle * 1000)) * 100;
    process.stdout.write(
      `Lockstep:  ${firing.count} firings of ${options.schedules} schedules: p50 ${firing.p50} ms, p99 ${firing.p99} ms, max ${firing.max} ms; idle CPU ${idleCpu.toFixed(2)}%\n` +
        `baseline:  ${baseStats.count} plain timers at the same due times: p50 ${baseStats.p50} ms, p99 ${baseStats.p99} ms, max ${baseStats.max} ms; idle CPU ${baseIdle.toFixed(2)}%\n` +
        `target (SPEC §8): p99 ≤ 1000 ms — ${firing.p99 <= 1000 ? 'met' : 'NOT met'}\n`,
    );
    process.stdout.write(
      `${JSON.stringify({
        schedules: options.schedules,
        seconds: options.seconds,
        firings: firing.count,
        p50_delay_ms: firing.p50,
        p99_delay_ms: firing.p99,
        max_delay_ms: firing.max,
        idle_cpu_percent: Math.round(idleCpu * 100) / 100,
        baseline_firings: baseStats.count,
        baseline_p50_delay_ms: baseStats.p50,
        baseline_p99_delay_ms: baseStats.p99,
        baseline_max_delay_ms: baseStats.max,
        baseline_idle_cpu_percent: Math.round(baseIdle * 100) / 100,
      })}\n`,
    );
  } finally {
    await scheduler?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

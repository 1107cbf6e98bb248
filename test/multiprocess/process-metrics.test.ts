/**
 * Metrics of every process on one PostgreSQL store: `lockstep worker` and `lockstep scheduler` with
 * `--metrics-port` serve their own /metrics, /healthz and /readyz, as serve does on its port. A run
 * is counted by the process that ran it alone, so summing the processes counts it once; the gauges
 * read from the store come from serve alone.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { CliProcess, hierarchyWorkspace, killChildren, runMain, sleep } from '../cli/cli-helpers.js';
import { createTestDatabase } from '../helpers/postgres.js';

afterEach(async () => {
  vi.unstubAllEnvs();
  await killChildren();
});

/** Starts `lockstep <args>` in `dir` and waits for the URL it prints after `what` (`/readyz at`, `metrics at`). */
async function startListening(dir: string, args: string[], what: string): Promise<{ process: CliProcess; url: string }> {
  const process = new CliProcess(args, { cwd: dir });
  const pattern = new RegExp(`${what} (http://127\\.0\\.0\\.1:\\d+)`);
  await process.waitForStderr(pattern, 20_000);
  return { process, url: pattern.exec(process.stderr)![1]! };
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return response.text();
}

/** The value of one sample (`name{labels}`) in a scrape, 0 when the sample is absent (nothing counted yet). */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Queues a run of sync `slug` on the store (no worker here), waits until some process finished it, and returns it. */
async function runElsewhere(dir: string, storeUrl: string, slug: string) {
  const app = await createApp(resolveConfig({ workspaceDir: dir, storeFlag: storeUrl, env: {} }), { logger: silentLogger });
  try {
    const { run } = await app.runs.triggerSync(slug);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const seen = await app.store.getSyncRun(run.id);
      if (seen && seen.status !== 'queued' && seen.finishedAt !== null) return seen;
      if (Date.now() > deadline) throw new Error(`sync run ${run.id} did not finish: ${JSON.stringify(seen)}`);
      await sleep(100);
    }
  } finally {
    await app.close();
  }
}

describe('metrics of worker and scheduler processes on a PostgreSQL store', () => {
  it('a worker serves /metrics counting the runs it ran, which serve does not count; /healthz and /readyz answer', async () => {
    const storeUrl = await createTestDatabase('lockstep_metrics');
    const dir = hierarchyWorkspace();
    expect((await runMain(['--workspace', dir, '--store', storeUrl, 'apply'])).code).toBe(0);
    const worker = await startListening(dir, ['--store', storeUrl, 'worker', '--metrics-port', '0'], '/metrics, /healthz and /readyz at');
    expect(worker.process.stderr).toMatch(/lockstep worker: running on postgres:\/\/.* as worker \S+/);

    expect(await (await fetch(`${worker.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${worker.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', runs: ['worker'], workerId: expect.stringMatching(/^[^/]+\/\d+\/[0-9a-f]+$/), leases: [], activeRuns: 0, queueDepth: 0 });
    expect((await fetch(`${worker.url}/api/v1/syncs`)).status).toBe(404);

    // The worker alone runs: its run is counted by its own /metrics.
    const first = await runElsewhere(dir, storeUrl, 'accounts-to-crm');
    expect(first.status).toBe('success');
    const fromWorker = await scrape(worker.url);
    expect(sample(fromWorker, 'lockstep_sync_runs_total{status="success"}')).toBe(1);
    expect(sample(fromWorker, 'lockstep_rows_delivered_total')).toBe(first.successfulRows.addedCount);
    expect(sample(fromWorker, 'lockstep_sync_run_duration_seconds_count{status="success"}')).toBe(1);
    expect(fromWorker).toMatch(/^lockstep_worker_leases\{worker="[^"]+"\} 0$/m);
    // Gauges read from the store are serve's: summed over every process, they count once.
    expect(fromWorker).not.toContain('lockstep_queue_depth');
    expect(fromWorker).not.toContain('lockstep_active_runs');

    // serve on the same store counts what it runs, not what the store records another process ran.
    const serve = await startListening(dir, ['--store', storeUrl, 'serve', '--no-auth'], 'and /metrics at');
    // serve runs both: the scheduler and a worker of its own.
    expect(await (await fetch(`${serve.url}/readyz`)).json()).toMatchObject({ status: 'ready', runs: ['scheduler', 'worker'], workerId: expect.any(String), leases: [] });
    const fromServe = await scrape(serve.url);
    expect(sample(fromServe, 'lockstep_sync_runs_total{status="success"}')).toBe(0);
    expect(sample(fromServe, 'lockstep_rows_delivered_total')).toBe(0);
    expect(fromServe).toContain('lockstep_queue_depth 0');
    expect(fromServe).toContain('lockstep_active_runs 0');

    // With both running, whichever runs the next one counts it: the sum over processes is the runs.
    expect((await runElsewhere(dir, storeUrl, 'workspaces-to-crm')).status).toBe('success');
    const [workerAfter, serveAfter] = await Promise.all([scrape(worker.url), scrape(serve.url)]);
    const success = 'lockstep_sync_runs_total{status="success"}';
    expect(sample(workerAfter, success) + sample(serveAfter, success)).toBe(2);

    for (const started of [worker.process, serve.process]) expect((await started.stop()).code).toBe(0);
  });

  it('a scheduler serves its health checks and metrics on --metrics-host, without the gauges read from the store', async () => {
    const storeUrl = await createTestDatabase('lockstep_metrics');
    const dir = hierarchyWorkspace();
    expect((await runMain(['--workspace', dir, '--store', storeUrl, 'apply'])).code).toBe(0);
    const scheduler = await startListening(
      dir,
      ['--store', storeUrl, 'scheduler', '--metrics-port', '0', '--metrics-host', '127.0.0.1'],
      'lockstep scheduler: /metrics, /healthz and /readyz at',
    );
    expect((await fetch(`${scheduler.url}/healthz`)).status).toBe(200);
    // A scheduler runs no worker: its /readyz names no worker id and no leases of its own.
    expect(await (await fetch(`${scheduler.url}/readyz`)).json()).toEqual({ status: 'ready', runs: ['scheduler'], activeRuns: 0, queueDepth: 0 });
    const text = await scrape(scheduler.url);
    expect(text).toContain('# TYPE lockstep_sync_runs_total counter');
    expect(text).not.toContain('lockstep_queue_depth');
    expect((await scheduler.process.stop()).code).toBe(0);
  });

  it('refuses a metrics port already taken, or not a port, before the worker or scheduler starts: a queued run stays queued', async () => {
    const storeUrl = await createTestDatabase('lockstep_metrics');
    const dir = hierarchyWorkspace();
    expect((await runMain(['--workspace', dir, '--store', storeUrl, 'apply'])).code).toBe(0);
    const app = await createApp(resolveConfig({ workspaceDir: dir, storeFlag: storeUrl, env: {} }), { logger: silentLogger });
    try {
      const { run } = await app.runs.triggerSync('accounts-to-crm');
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const port = (taken.address() as AddressInfo).port;
      try {
        const inUse = `cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port} — another program listens on that port: stop it, or pick another port with --metrics-port (or LOCKSTEP_METRICS_PORT), e.g. --metrics-port 9464`;
        const worker = await runMain(['--workspace', dir, '--store', storeUrl, 'worker', '--metrics-port', String(port)]);
        expect(worker.code, worker.stderr).toBe(3);
        expect(worker.stderr).toBe(`error: ${inUse}\n`);
        vi.stubEnv('LOCKSTEP_METRICS_PORT', String(port));
        const scheduler = await runMain(['--workspace', dir, '--store', storeUrl, 'scheduler']);
        expect(scheduler.code, scheduler.stderr).toBe(3);
        expect(scheduler.stderr).toBe(`error: ${inUse}\n`);
      } finally {
        await new Promise<void>((resolve) => taken.close(() => resolve()));
      }
      vi.stubEnv('LOCKSTEP_METRICS_PORT', 'http');
      const badEnv = await runMain(['--workspace', dir, '--store', storeUrl, 'worker']);
      expect(badEnv.code).toBe(2);
      expect(badEnv.stderr).toBe('error: LOCKSTEP_METRICS_PORT=http is not a port number (0..65535) — give a free port, e.g. LOCKSTEP_METRICS_PORT=9464\n');
      vi.stubEnv('LOCKSTEP_METRICS_PORT', '');
      const hostAlone = await runMain(['--workspace', dir, '--store', storeUrl, 'worker', '--metrics-host', '0.0.0.0']);
      expect(hostAlone.code).toBe(2);
      expect(hostAlone.stderr).toContain('--metrics-host 0.0.0.0 needs a port to listen on — add --metrics-port (or LOCKSTEP_METRICS_PORT), e.g. --metrics-port 9464');
      expect(await app.store.getSyncRun(run.id)).toMatchObject({ status: 'queued', attempt: 0 });
    } finally {
      await app.close();
    }
  });
});

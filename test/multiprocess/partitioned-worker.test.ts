/**
 * A `lockstep worker` cut off from its PostgreSQL store by a partition (packets dropped, nothing
 * closed) while it holds a run, without dying: its lease ends unrenewed, another worker takes the
 * run over, and when the network heals the old worker's writes are refused. What each process says
 * meanwhile must be true of the fleet: the cut-off worker stops counting the lease it lost in its
 * metrics and says in its log that the run may be another worker's, and the run's record counts
 * each row once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CliProcess, killChildren, runMain, sleep } from '../cli/cli-helpers.js';
import { PartitionProxy } from '../helpers/partition-proxy.js';
import { createHeldSync } from './held-sync.js';
import { syncRunRows } from './multiprocess-fixture.js';

afterEach(async () => {
  await killChildren();
});

const ENV = { LOCKSTEP_LEASE_SECONDS: '3', LOCKSTEP_POLL_MS: '250' };

/** Starts `lockstep worker` serving its metrics; resolves with the process and its metrics URL. */
async function metricsWorker(dir: string, storeUrl: string): Promise<{ process: CliProcess; url: string }> {
  const process = new CliProcess(['--workspace', dir, '--store', storeUrl, 'worker', '--metrics-port', '0'], { cwd: dir, env: ENV });
  const pattern = /\/metrics, \/healthz and \/readyz at (http:\/\/127\.0\.0\.1:\d+)/;
  await process.waitForStderr(pattern, 20_000);
  return { process, url: pattern.exec(process.stderr)![1]! };
}

/** What `lockstep runs` says of run `runId`: the line of its text and the lease in its JSON. */
async function runListed(dir: string, storeUrl: string, runId: number): Promise<{ line: string; lease: { workerId: string; expiresAt: string } | null }> {
  const text = await runMain(['--workspace', dir, '--store', storeUrl, 'runs']);
  const json = await runMain(['--workspace', dir, '--store', storeUrl, 'runs', '--json']);
  const run = (JSON.parse(json.stdout) as { syncRuns: Array<{ id: number; lease: { workerId: string; expiresAt: string } | null }> }).syncRuns.find((r) => r.id === runId);
  return { line: text.stdout.split('\n').find((l) => l.includes(`#${runId} `)) ?? text.stdout, lease: run!.lease };
}

/** The `lockstep_worker_leases` a worker's /metrics reports. */
async function leasesReported(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('lockstep_worker_leases{'));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('a worker partitioned from its store while it holds a run', () => {
  it('stops reporting the lease it lost and says so; another worker takes the run over; runs name the worker holding them; late writes are refused after the heal', async () => {
    const held = await createHeldSync('lockstep_partition');
    const store = new URL(held.storeUrl);
    await using proxy = await PartitionProxy.start(store.hostname, Number(store.port || 5432));
    try {
      // Its statements unanswered for a second are given up on, so its heartbeats fail within the lease.
      const cutOffUrl = `${proxy.url(held.storeUrl)}${store.search ? '&' : '?'}answer_timeout=1`;
      const cutOff = await metricsWorker(held.dir, cutOffUrl);
      const runId = await held.trigger();
      await held.waitUntilHeld(cutOff.process, runId);
      expect(await leasesReported(cutOff.url)).toBe(1);
      const cutOffId = (await syncRunRows(held.db, [runId]))[0]!.workerId!;
      expect(await runListed(held.dir, held.storeUrl, runId)).toMatchObject({ lease: { workerId: cutOffId } });

      proxy.partition();
      await cutOff.process.waitForStderr(/the lease on a sync run ended without a renewal, the store out of reach/, 30_000);
      expect(cutOff.process.stderr).toMatch(new RegExp(`"syncRunId":${runId},"attempt":1,"leaseEndedAt":"`));
      // Its lease is over: counted by nobody until another worker takes the run.
      expect(await leasesReported(cutOff.url)).toBe(0);
      // What the store tells of the fleet: the run still on that worker, its lease over.
      const lapsed = await runListed(held.dir, held.storeUrl, runId);
      expect(lapsed.lease?.workerId).toBe(cutOffId);
      expect(Date.parse(lapsed.lease!.expiresAt)).toBeLessThan(Date.now());
      expect(lapsed.line).toContain(`on worker ${cutOffId}, whose lease ended ${lapsed.lease!.expiresAt} (another worker takes the run over)`);

      const other = await metricsWorker(held.dir, held.storeUrl);
      await other.process.waitForStderr(/sync run taken over from a worker whose lease ended/, 20_000);
      await expect.poll(() => leasesReported(other.url), { timeout: 5000 }).toBe(1);
      // One run, one lease across the fleet: what `sum(lockstep_worker_leases)` adds up.
      expect((await leasesReported(cutOff.url)) + (await leasesReported(other.url))).toBe(1);
      const otherId = (await syncRunRows(held.db, [runId]))[0]!.workerId!;
      expect(otherId.split('/')[1]).toBe(String(other.process.pid));
      const takenOver = await runListed(held.dir, held.storeUrl, runId);
      expect(takenOver.lease?.workerId).toBe(otherId);
      expect(takenOver.line).toContain(`on worker ${otherId} (attempt 2)`);

      proxy.heal();
      held.release();
      const ended = await held.ended(runId);
      expect(ended, other.process.stderr).toMatchObject({ status: 'success', attempt: 2 });
      expect(ended.workerId!.split('/')[1]).toBe(String(other.process.pid));
      await cutOff.process.waitForStderr(/sync run taken over by another worker after this worker's lease ended; this attempt stops/, 30_000);
      // The old attempt committed nothing after the takeover: each row counted once.
      const [counts] = await held.db.rows<{ planned: number; delivered: number; rejected: number }>(
        'select planned_added::int as planned, successful_added::int as delivered, failed_added::int as rejected from lockstep.sync_runs where id = $1',
        [runId],
      );
      expect(counts!.delivered).toBe(counts!.planned);
      expect(counts!.rejected).toBe(0);
      const [snapshot] = await held.db.rows<{ rows: number }>('select count(*)::int as rows from lockstep.snapshots');
      expect(snapshot!.rows).toBe(counts!.planned);
      expect((await syncRunRows(held.db, [runId]))[0]!.attempt).toBe(2);
      await sleep(200);
      expect(await leasesReported(cutOff.url)).toBe(0);
      expect((await runListed(held.dir, held.storeUrl, runId)).lease).toBeNull();
    } finally {
      await held.close();
    }
  }, 150_000);
});

/**
 * `lockstep worker` stopped with SIGTERM (as systemd and Kubernetes stop a service) while its run
 * waits for a destination that does not answer: it stops within a bounded time, well inside a
 * service manager's grace period, whatever the destination's request timeout, and hands the run
 * back, so another worker takes it over at once instead of after its lease.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CliProcess, killChildren, sleep } from '../cli/cli-helpers.js';
import { createHeldSync } from './held-sync.js';
import { syncRunRows } from './multiprocess-fixture.js';

afterEach(async () => {
  await killChildren();
});

function worker(dir: string, storeUrl: string): CliProcess {
  // A lease far longer than the test: only a release lets another worker take the run.
  return new CliProcess(['--workspace', dir, '--store', storeUrl, 'worker'], { cwd: dir, env: { LOCKSTEP_LEASE_SECONDS: '300', LOCKSTEP_POLL_MS: '250' } });
}

describe('a worker stopped with SIGTERM', () => {
  it('while a write waits for an answer: exits within seconds, and another worker takes the run over at once', async () => {
    // An API allowed two minutes per request.
    const held = await createHeldSync('lockstep_stop', { destination: 'timeoutMs: 120000' });
    try {
      const first = worker(held.dir, held.storeUrl);
      await first.waitForStderr(/lockstep worker: running on/, 20_000);
      const runId = await held.trigger();
      await held.waitUntilHeld(first, runId);

      const signalled = Date.now();
      first.child.kill('SIGTERM');
      const exit = await Promise.race([first.exited, sleep(30_000).then(() => null)]);
      expect(exit, `the worker did not exit within 30 s of SIGTERM:\n${first.stderr}`).not.toBeNull();
      expect(exit!.code, exit!.stderr).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(20_000);
      expect(exit!.stderr).toContain(`lockstep worker: SIGTERM: stopping; sync run ${runId} stops at its next batch and is left to another worker (again to quit at once)`);
      // Handed back: still this attempt's, its lease released.
      const [left] = await held.db.rows<{ status: string; attempt: number; released: boolean }>(
        'select status, attempt, lease_expires_at <= extract(epoch from clock_timestamp()) * 1000 as released from lockstep.sync_runs where id = $1',
        [runId],
      );
      expect(left).toMatchObject({ attempt: 1, released: true });
      expect(['querying', 'processing']).toContain(left!.status);

      const second = worker(held.dir, held.storeUrl);
      await second.waitForStderr(/sync run taken over from a worker whose lease ended/, 20_000);
      held.release();
      expect(await held.ended(runId), second.stderr).toMatchObject({ status: 'success', attempt: 2 });
      expect((await syncRunRows(held.db, [runId]))[0]!.workerId!.split('/')[1]).toBe(String(second.pid));
    } finally {
      await held.close();
    }
  }, 120_000);
});

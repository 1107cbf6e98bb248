/**
 * Workers on one host whose process ids are not each other's: one in a PID namespace of its own
 * (`unshare --pid`, as a container has) sharing the host's name (a container on the host's
 * network, a Kubernetes pod with hostNetwork). A process id in another namespace tells nothing
 * about that process, so such a worker's leases are left to run out, never released as those of
 * a process that is gone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CliProcess, killChildren, sleep } from '../cli/cli-helpers.js';
import { tail } from '../setup/processes.js';
import { createHeldSync } from './held-sync.js';
import { syncRunRows } from './multiprocess-fixture.js';

const LEASE_SECONDS = 3;

afterEach(async () => {
  await killChildren();
});

function worker(dir: string, storeUrl: string, wrapper: string[] = []): CliProcess {
  return new CliProcess(['--workspace', dir, '--store', storeUrl, 'worker'], {
    cwd: dir,
    env: { LOCKSTEP_LEASE_SECONDS: String(LEASE_SECONDS), LOCKSTEP_POLL_MS: '250' },
    wrapper,
  });
}

describe('workers on one host in different PID namespaces', () => {
  it("a worker in a PID namespace of its own leaves a run at work on the host's worker alone", async () => {
    const held = await createHeldSync('lockstep_pidns');
    try {
      const first = worker(held.dir, held.storeUrl);
      await first.waitForStderr(/lockstep worker: running on/, 20_000);
      const runId = await held.trigger();
      await held.waitUntilHeld(first, runId);

      // Process 1 of a new PID namespace, with its own /proc; killed with unshare.
      const second = worker(held.dir, held.storeUrl, ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']);
      await second.waitForStderr(/lockstep worker: running on/, 20_000);
      await sleep(2 * LEASE_SECONDS * 1000);
      const [during] = await syncRunRows(held.db, [runId]);
      expect(during, `the run while its worker renews its lease\n--- first:\n${tail(first.stderr)}\n--- second:\n${tail(second.stderr)}`).toMatchObject({ attempt: 1 });
      expect(during!.workerId!.split('/')[1]).toBe(String(first.pid));

      held.release();
      expect(await held.ended(runId), first.stderr).toMatchObject({ status: 'success', attempt: 1 });
      expect(second.stderr).not.toMatch(/whose process is gone|taken over/);
      // Its id names the namespace its process id is in.
      expect(second.stderr).toMatch(/as worker [^ /]+~pidns\d+\/1\/[0-9a-f]+ /);
    } finally {
      await held.close();
    }
  }, 90_000);
});

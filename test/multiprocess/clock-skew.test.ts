/**
 * Workers on machines whose clocks disagree, on one PostgreSQL store. Each `lockstep worker` runs
 * under libfaketime (a Debian package, installed when missing) with its clock set minutes off: a
 * lease is held for its length in the store's time, whatever the clocks of its holder and of the
 * workers looking at it say, so a run at work is never taken over early.
 */
import { existsSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CliProcess, killChildren, sleep } from '../cli/cli-helpers.js';
import { aptInstall, tail } from '../setup/processes.js';
import { createHeldSync } from './held-sync.js';
import { syncRunRows } from './multiprocess-fixture.js';

const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';
const LEASE_SECONDS = 3;

beforeAll(() => {
  if (existsSync(FAKETIME)) return;
  const install = aptInstall('libfaketime');
  if (!install.ok || !existsSync(FAKETIME)) throw new Error(`could not install libfaketime (apt-get install -y libfaketime):\n${tail(install.output)}`);
}, 15 * 60_000);

afterEach(async () => {
  await killChildren();
});

/** `lockstep worker` on `storeUrl` whose clock reads `offset` (libfaketime's form: `+4m`, `-4m`, `+0`) from the real time. */
function skewedWorker(dir: string, storeUrl: string, offset: string): CliProcess {
  return new CliProcess(['--workspace', dir, '--store', storeUrl, 'worker'], {
    cwd: dir,
    env: {
      LOCKSTEP_LEASE_SECONDS: String(LEASE_SECONDS),
      LOCKSTEP_POLL_MS: '250',
      LD_PRELOAD: FAKETIME,
      FAKETIME: offset,
      // Timers and durations go by the monotonic clock, which stays true.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  });
}

describe('workers whose clocks differ by minutes', () => {
  for (const { holder, other } of [
    { holder: '-4m', other: '+0' },
    { holder: '+0', other: '+4m' },
  ]) {
    it(`a run held by a worker at ${holder} is not taken over by a worker at ${other} while its lease is renewed`, async () => {
      const held = await createHeldSync('lockstep_skew');
      try {
        const first = skewedWorker(held.dir, held.storeUrl, holder);
        await first.waitForStderr(/lockstep worker: running on/, 20_000);
        const runId = await held.trigger();
        await held.waitUntilHeld(first, runId);

        const second = skewedWorker(held.dir, held.storeUrl, other);
        await second.waitForStderr(/lockstep worker: running on/, 20_000);
        // Two leases' length of polls by the second worker, while the first renews its lease.
        await sleep(2 * LEASE_SECONDS * 1000);
        const [during] = await syncRunRows(held.db, [runId]);
        expect(during, `the run while its worker renews its lease\n--- first:\n${tail(first.stderr)}\n--- second:\n${tail(second.stderr)}`).toMatchObject({ attempt: 1 });
        expect(['querying', 'processing']).toContain(during!.status);
        expect(during!.workerId!.split('/')[1]).toBe(String(first.pid));

        held.release();
        expect(await held.ended(runId), first.stderr).toMatchObject({ status: 'success', attempt: 1 });
        expect(second.stderr).not.toMatch(/taken over/);
        expect(first.stderr).not.toMatch(/lost the lease|may no longer write/);
        // The worker whose clock is off says so, and what to do.
        const skewed = holder === '+0' ? second : first;
        expect(skewed.stderr).toMatch(/this machine's clock is 2[34]\d\.\d s (ahead of|behind) the time of store postgres:\/\/[^ ]+: Lockstep keeps to the store's time for leases, schedules and run times — set this machine's clock right \(NTP\)/);
      } finally {
        await held.close();
      }
    }, 90_000);
  }
});

/**
 * Workers on machines whose clocks disagree, on one PostgreSQL store. Each `lockstep worker` runs
 * under libfaketime (a Debian package, installed when missing) with its clock set minutes off: a
 * lease is held for its length in the store's time, whatever the clocks of its holder and of the
 * workers looking at it say, so a run at work is never taken over early.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { CliProcess, hierarchyWorkspace, killChildren, runMain, sleep } from '../cli/cli-helpers.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { aptInstall, tail } from '../setup/processes.js';
import { Db, runsHeldBy, syncRunRows } from './multiprocess-fixture.js';

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
      // The destination holds the run's first request until released: the run is at work meanwhile.
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      let requests = 0;
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        requests++;
        req.resume();
        req.on('end', () => void released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}')));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const storeUrl = await createTestDatabase('lockstep_skew');
      const db = new Db(storeUrl);
      try {
        const dir = hierarchyWorkspace();
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        const yaml = readFileSync(join(dir, 'lockstep.yaml'), 'utf8')
          .replace('destinations:\n', `destinations:\n  api: { type: http, url: "${url}", concurrency: 1 }\n`)
          .replace('syncs:\n', 'syncs:\n  accounts-to-api: { model: accounts, destination: api, object: /accounts, mode: upsert, batchSize: 1 }\n');
        writeFileSync(join(dir, 'lockstep.yaml'), yaml);
        const applied = await runMain(['--workspace', dir, '--store', storeUrl, 'apply']);
        expect(applied.code, applied.stderr).toBe(0);

        const first = skewedWorker(dir, storeUrl, holder);
        await first.waitForStderr(/lockstep worker: running on/, 20_000);
        const app = await createApp(resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_STORE: storeUrl } }), { logger: silentLogger });
        let runId: number;
        try {
          runId = (await app.runs.triggerSync('accounts-to-api')).run.id;
        } finally {
          await app.close();
        }
        const deadline = Date.now() + 20_000;
        while ((requests === 0 || (await runsHeldBy(db, first.pid)).length === 0) && Date.now() < deadline) await sleep(25);
        expect((await runsHeldBy(db, first.pid)).map((r) => r.id), first.stderr).toEqual([runId]);

        const second = skewedWorker(dir, storeUrl, other);
        await second.waitForStderr(/lockstep worker: running on/, 20_000);
        // Two leases' length of polls by the second worker, while the first renews its lease.
        await sleep(2 * LEASE_SECONDS * 1000);
        const [during] = await syncRunRows(db, [runId]);
        expect(during, `the run while its worker renews its lease\n--- first:\n${tail(first.stderr)}\n--- second:\n${tail(second.stderr)}`).toMatchObject({ attempt: 1 });
        expect(['querying', 'processing']).toContain(during!.status);
        expect(during!.workerId!.split('/')[1]).toBe(String(first.pid));

        release();
        const finishBy = Date.now() + 20_000;
        let run = during!;
        while (!['success', 'warning', 'failed'].includes(run.status) && Date.now() < finishBy) {
          await sleep(50);
          run = (await syncRunRows(db, [runId]))[0]!;
        }
        expect(run, first.stderr).toMatchObject({ status: 'success', attempt: 1 });
        expect(second.stderr).not.toMatch(/taken over/);
        // The worker whose clock is off says so, and what to do.
        const skewed = holder === '+0' ? second : first;
        expect(skewed.stderr).toMatch(/this machine's clock is 2[34]\d\.\d s (ahead of|behind) the time of store postgres:\/\/[^ ]+: Lockstep keeps to the store's time for leases, schedules and run times — set this machine's clock right \(NTP\)/);
        expect(first.stderr).not.toMatch(/lost the lease|may no longer write/);
      } finally {
        release();
        server.closeAllConnections();
        server.close();
        await db.close();
      }
    }, 90_000);
  }
});

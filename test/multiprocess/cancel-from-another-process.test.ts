/**
 * A cancel asked by one process (`lockstep sync cancel`, `lockstep sequence cancel`) of a run that
 * a `lockstep worker` executes while its model's query has not returned a row yet (a slow query on
 * PostgreSQL or MySQL) or its write is not answered (an HTTP API): the worker hears of it within a
 * few seconds and stops the run, which ends `cancelled`, its query stopped on the server too — on the
 * embedded store and on PostgreSQL.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { CliProcess, killChildren, runCli, sleep } from '../cli/cli-helpers.js';
import { createHeldSync } from './held-sync.js';
import { tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

afterEach(async () => {
  await killChildren();
});

interface Setup {
  dir: string;
  env: Record<string, string>;
  pgUrl: string;
  mysqlUrl: string;
}

async function workspace(store: 'embedded' | 'postgres'): Promise<Setup> {
  const dir = tempDir('lockstep-cancel-');
  const pgUrl = await createTestDatabase('lockstep_cancel_src');
  const mysqlUrl = await createTestMysqlDatabase('lockstep_cancel_src');
  const storeUrl = store === 'postgres' ? await createTestDatabase('lockstep_cancel_store') : null;
  const crm = new Database(join(dir, 'crm.db'));
  crm.exec('create table slow_pg (id integer primary key, slept text); create table slow_my (id integer primary key, slept text); create table fast (id integer primary key)');
  crm.close();
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    [
      'sources:',
      '  pg: { type: postgres, url: "${PG_URL}" }',
      '  my: { type: mysql, url: "${MY_URL}" }',
      'destinations:',
      '  crm: { type: sqlite, path: crm.db }',
      'models:',
      '  slow-pg: { source: pg, primaryKey: id, query: "select 1 as id, pg_sleep(60)::text as slept" }',
      '  slow-my: { source: my, primaryKey: id, query: "select 1 as id, sleep(60) as slept" }',
      '  fast: { source: pg, primaryKey: id, query: "select 1 as id" }',
      'syncs:',
      '  slow-pg-to-crm: { model: slow-pg, destination: crm, object: slow_pg, mode: upsert }',
      '  slow-my-to-crm: { model: slow-my, destination: crm, object: slow_my, mode: upsert }',
      '  fast-to-crm: { model: fast, destination: crm, object: fast, mode: upsert }',
      'sequences:',
      '  slow:',
      '    members:',
      '      - { sync: slow-pg-to-crm, terminate: never }',
      '      - { sync: fast-to-crm }',
      '',
    ].join('\n'),
  );
  const env = { PG_URL: pgUrl, MY_URL: mysqlUrl, ...(storeUrl ? { LOCKSTEP_STORE: storeUrl } : {}) };
  const applied = await runCli(['--workspace', dir, 'apply'], { cwd: dir, env });
  expect(applied.code, applied.stderr).toBe(0);
  return { dir, env, pgUrl, mysqlUrl };
}

async function openApp(setup: Setup): Promise<App> {
  return createApp(resolveConfig({ workspaceDir: setup.dir, env: setup.env }), { logger: silentLogger });
}

/** Waits until `check` is true, polling; fails naming `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, proc?: CliProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms${proc ? `:\n${proc.stderr}` : ''}`);
    await sleep(50);
  }
}

const pgSleeping = async (url: string) =>
  (await sql<{ n: string }>(url, "select count(*) as n from pg_stat_activity where query like '%pg_sleep(60)%' and pid <> pg_backend_pid() and datname = current_database()"))[0]!.n !== '0';
const mysqlSleeping = async (url: string) =>
  (await mysqlSql<{ n: string }>(url, "select count(*) as n from information_schema.processlist where info like '%sleep(60)%' and id <> connection_id() and db = database()"))[0]!.n !== '0';

describe.each(['embedded', 'postgres'] as const)('a cancel from another process, %s store', (store) => {
  it.each([
    ['PostgreSQL', 'slow-pg-to-crm'],
    ['MySQL', 'slow-my-to-crm'],
  ] as const)('stops a run whose %s query has not answered yet, within seconds', async (_kind, sync) => {
    const setup = await workspace(store);
    const worker = new CliProcess(['--workspace', setup.dir, 'worker'], { cwd: setup.dir, env: { ...setup.env, LOCKSTEP_POLL_MS: '1000' } });
    await worker.waitForStderr(/lockstep worker: running on/, 20_000);
    const app = await openApp(setup);
    try {
      const runId = (await app.runs.triggerSync(sync)).run.id;
      const sleeping = sync === 'slow-pg-to-crm' ? () => pgSleeping(setup.pgUrl) : () => mysqlSleeping(setup.mysqlUrl);
      await waitFor('the model query did not start', sleeping, 20_000, worker);

      const asked = Date.now();
      const cancelled = await runCli(['--workspace', setup.dir, 'sync', 'cancel', String(runId)], { cwd: setup.dir, env: setup.env });
      expect(cancelled.code, cancelled.stderr).toBe(0);
      await waitFor('the run did not end', async () => (await app.store.getSyncRun(runId))?.status === 'cancelled', 5_000, worker);
      expect(Date.now() - asked).toBeLessThan(5_000);
      // The query was stopped on the server, not left running there.
      await waitFor('the query still runs', async () => !(await sleeping()), 5_000, worker);
      const run = await app.store.getSyncRun(runId);
      expect(run).toMatchObject({ status: 'cancelled', error: 'cancelled by a user' });
      expect(run!.successfulRows).toMatchObject({ addedCount: 0 });
      expect(worker.running).toBe(true);
    } finally {
      await app.close();
    }
  }, 90_000);

  it('stops a member run cancelled on its own, and its sequence goes on as the member\'s policy says', async () => {
    const setup = await workspace(store);
    const worker = new CliProcess(['--workspace', setup.dir, 'worker'], { cwd: setup.dir, env: { ...setup.env, LOCKSTEP_POLL_MS: '1000' } });
    await worker.waitForStderr(/lockstep worker: running on/, 20_000);
    const app = await openApp(setup);
    try {
      const sequenceRunId = (await app.runs.triggerSequence('slow')).run.id;
      await waitFor('the model query did not start', () => pgSleeping(setup.pgUrl), 20_000, worker);
      const memberRunId = (await app.store.getSequenceRun(sequenceRunId))!.members[0]!.syncRunId!;

      const cancelled = await runCli(['--workspace', setup.dir, 'sync', 'cancel', String(memberRunId)], { cwd: setup.dir, env: setup.env });
      expect(cancelled.code, cancelled.stderr).toBe(0);
      // `terminate: never`: the next member runs, and the sequence run ends done.
      await waitFor('the sequence run did not end', async () => (await app.store.getSequenceRun(sequenceRunId))?.status === 'done', 10_000, worker);
      expect((await app.store.getSequenceRun(sequenceRunId))!.members.map((m) => m.status)).toEqual(['cancelled', 'success']);
    } finally {
      await app.close();
    }
  }, 90_000);

  it('stops the running member of a cancelled sequence run, and the run ends cancelled', async () => {
    const setup = await workspace(store);
    const worker = new CliProcess(['--workspace', setup.dir, 'worker'], { cwd: setup.dir, env: { ...setup.env, LOCKSTEP_POLL_MS: '1000' } });
    await worker.waitForStderr(/lockstep worker: running on/, 20_000);
    const app = await openApp(setup);
    try {
      const sequenceRunId = (await app.runs.triggerSequence('slow')).run.id;
      await waitFor('the model query did not start', () => pgSleeping(setup.pgUrl), 20_000, worker);

      const asked = Date.now();
      const cancelled = await runCli(['--workspace', setup.dir, 'sequence', 'cancel', sequenceRunId], { cwd: setup.dir, env: setup.env });
      expect(cancelled.code, cancelled.stderr).toBe(0);
      await waitFor('the sequence run did not end', async () => (await app.store.getSequenceRun(sequenceRunId))?.status === 'cancelled', 5_000, worker);
      const members = (await app.store.getSequenceRun(sequenceRunId))!.members;
      await waitFor(
        'the member run did not end',
        async () => (await app.store.getSyncRun(members[0]!.syncRunId!))?.status === 'cancelled',
        5_000,
        worker,
      );
      expect(Date.now() - asked).toBeLessThan(5_000);
      expect(members.map((m) => m.status)).toEqual(['cancelled', 'skipped']);
      await waitFor('the query still runs', async () => !(await pgSleeping(setup.pgUrl)), 5_000, worker);
    } finally {
      await app.close();
    }
  }, 90_000);
});

describe('a cancel from another process, an HTTP API that does not answer', () => {
  it('stops the run waiting for the answer within seconds, long before the request timeout', async () => {
    const held = await createHeldSync('lockstep_cancel_http', { destination: 'timeoutMs: 120000' });
    try {
      const worker = new CliProcess(['--workspace', held.dir, '--store', held.storeUrl, 'worker'], { cwd: held.dir, env: { LOCKSTEP_POLL_MS: '1000' } });
      await worker.waitForStderr(/lockstep worker: running on/, 20_000);
      const runId = await held.trigger();
      await held.waitUntilHeld(worker, runId);
      const asked = Date.now();
      const cancelled = await runCli(['--workspace', held.dir, '--store', held.storeUrl, 'sync', 'cancel', String(runId)], { cwd: held.dir });
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect(await held.ended(runId)).toMatchObject({ status: 'cancelled' });
      expect(Date.now() - asked).toBeLessThan(5_000);
    } finally {
      held.release();
      await held.close();
    }
  }, 90_000);
});

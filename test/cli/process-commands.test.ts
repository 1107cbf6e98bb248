/**
 * Commands that live as processes: `serve` / `worker` with `--drain`, several workers sharing the
 * embedded store (leases, takeover, fencing), and `lockstep demo`. Every child is killed in `afterEach`, so a failing
 * assertion never leaves a server running.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SyncRun } from '../../src/core/runs.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { sqlite, sqliteRows, tempDir } from '../helpers/harness.js';
import { startSalesforceStandIn } from '../standins/salesforce-standin.js';
import { CliProcess, enqueueWork, hierarchyWorkspace, killChildren, runCli, runMain, sleep } from './cli-helpers.js';

afterEach(killChildren);

async function appliedWorkspace(): Promise<string> {
  const dir = hierarchyWorkspace();
  const applied = await runMain(['--workspace', dir, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  return dir;
}

interface Listing {
  sequenceRuns: Array<{ id: string; status: string; members: Array<{ status: string }> }>;
  syncRuns: Array<{ id: number; status: string; sync: string }>;
}

async function listRuns(dir: string): Promise<Listing> {
  const result = await runMain(['--workspace', dir, 'runs', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Listing;
}

describe('serve --drain and worker --drain', () => {
  it.each(['worker', 'serve'])('%s --drain runs the queued work and exits 0', async (command) => {
    const dir = await appliedWorkspace();
    const { sequenceRunId, syncRunId } = await enqueueWork(dir, 'crm', 'accounts-to-crm');
    const before = await listRuns(dir);
    expect(before.sequenceRuns.map((r) => r.status)).toEqual(['pending']);

    const result = await runCli([command, '--drain'], { cwd: dir, timeoutMs: 20_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`lockstep ${command}: running on ${join(dir, 'lockstep.db')}`);
    // It says it exits by itself, where one without --drain says to press Ctrl-C.
    expect(result.stderr).toMatch(/\(exits once the queue is empty; Ctrl-C to stop sooner\)\n/);

    const after = await listRuns(dir);
    expect(after.sequenceRuns).toEqual([expect.objectContaining({ id: sequenceRunId, status: 'done' })]);
    expect(after.syncRuns.find((r) => r.id === syncRunId)?.status).toBe('success');
    expect(after.syncRuns.every((r) => r.status === 'success')).toBe(true);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);
  });

  it('--drain with nothing queued exits at once', async () => {
    const dir = await appliedWorkspace();
    const result = await runCli(['worker', '--drain'], { cwd: dir, timeoutMs: 10_000 });
    expect(result.code, result.stderr).toBe(0);
  });
});

/** A workspace syncing 150,000 rows in batches of 500: long enough to stop a worker mid-run. */
async function bigWorkspace(): Promise<string> {
  const dir = tempDir('lockstep-cli-big-');
  sqlite(
    join(dir, 'warehouse.db'),
    `create table items (id integer primary key, label text);
     with recursive n(i) as (select 1 union all select i + 1 from n where i < 150000) insert into items select i, 'item ' || i from n;`,
  );
  sqlite(join(dir, 'crm.db'), 'create table items (id integer primary key, label text not null);');
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    [
      'sources: { warehouse: { type: sqlite, path: warehouse.db } }',
      'destinations: { crm: { type: sqlite, path: crm.db } }',
      'models: { items: { source: warehouse, primaryKey: id, query: "select id, label from items" } }',
      'syncs: { items-to-crm: { model: items, destination: crm, object: items, mode: upsert, batchSize: 500 } }',
      '',
    ].join('\n'),
  );
  expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
  return dir;
}

async function syncRunRecord(dir: string, id: number): Promise<SyncRun> {
  const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
  try {
    const run = await store.getSyncRun(id);
    if (!run) throw new Error(`no sync run ${id}`);
    return run;
  } finally {
    await store.close();
  }
}

async function waitForSyncRun(dir: string, id: number, timeoutMs: number): Promise<SyncRun> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await syncRunRecord(dir, id);
    if (['success', 'warning', 'failed', 'cancelled'].includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`sync run ${id} is still ${run.status} (attempt ${run.attempt}) after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** A `lockstep worker` in `dir`, once it delivers sync run 1 (queued here, on the big workspace's one sync). */
async function workerDelivering(dir: string, env: Record<string, string> = {}): Promise<CliProcess> {
  const worker = new CliProcess(['worker'], { cwd: dir, env });
  await worker.waitForStderr(/lockstep worker: running on/);
  const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
  try {
    await store.enqueueSyncRun({ syncId: 1, trigger: { type: 'manual', detail: null }, options: { fullResync: false, resetCDC: false } }, Date.now());
  } finally {
    await store.close();
  }
  const deadline = Date.now() + 15_000;
  for (;;) {
    const run = await syncRunRecord(dir, 1);
    if (run.attempt === 1 && run.successfulRows.addedCount > 0) return worker;
    if (Date.now() > deadline) throw new Error(`the worker never started delivering run 1 (${run.status})`);
    await sleep(20);
  }
}

describe('workers sharing the embedded store', () => {
  it('two servers work on one store; a sequence run from a third process finishes on either', async () => {
    const dir = await appliedWorkspace();
    const first = new CliProcess(['serve', '--port', '0'], { cwd: dir });
    const second = new CliProcess(['serve', '--port', '0'], { cwd: dir });
    await first.waitForStderr(/lockstep serve: running on .* as worker /);
    await second.waitForStderr(/lockstep serve: running on .* as worker /);

    const run = await runCli(['sequence', 'run', 'crm'], { cwd: dir, timeoutMs: 20_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^✔ Sequence crm — run [0-9a-f-]{36} — DONE in /);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);
    expect(first.running && second.running).toBe(true);

    expect((await first.stop()).code).toBe(0);
    expect((await second.stop()).code).toBe(0);
  });

  it.each([
    ['', [] as string[]],
    [' (a full resync: the taken-over attempt starts it again, and the run counts each row once)', ['--full-resync']],
  ])('when the process running a sync dies mid-run, another worker takes the same run over and finishes it%s', async (_label, flags) => {
    const dir = await bigWorkspace();
    if (flags.length > 0) expect((await runCli(['sync', 'run', 'items-to-crm'], { cwd: dir })).code).toBe(0);
    const runId = flags.length > 0 ? 2 : 1;
    const first = new CliProcess(['sync', 'run', 'items-to-crm', ...flags], { cwd: dir });
    // The first process claims the run itself and is delivering batches when it dies.
    await first.waitForStderr(/ [1-9][\d,]* delivered/, 15_000);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(await syncRunRecord(dir, runId)).toMatchObject({ status: expect.stringMatching(/querying|processing/), attempt: 1 });

    // The dead process was on this host: its lease is released at once, not after 30 s.
    const worker = new CliProcess(['worker'], { cwd: dir });
    const run = await waitForSyncRun(dir, runId, 20_000);
    expect(run).toMatchObject({ status: 'success', attempt: 2, querySize: 150000 });
    expect(run.workerId).toContain(`/${worker.pid}/`);
    // Each row is counted once: what the dead attempt committed (counted in the same transactions)
    // and what the new one sent; a full resync counts every row again from nothing.
    expect(run.successfulRows.addedCount + run.successfulRows.changedCount).toBe(150000);
    expect(run.plannedRows.addedCount + run.plannedRows.changedCount).toBe(150000);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from items')).toEqual([{ n: 150000 }]);
    expect((await worker.stop()).code).toBe(0);
  });

  it('a worker frozen past its lease loses the run to another; once resumed, its late writes are refused', async () => {
    const dir = await bigWorkspace();
    // Short enough to keep the test quick, long enough that a loaded machine's pauses do not cost
    // the healthy worker its own lease.
    const env = { LOCKSTEP_LEASE_SECONDS: '3' };
    // The only worker claims it; freeze it while it delivers.
    const frozen = await workerDelivering(dir, env);
    // Frozen inside a transaction, it would hold that SQLite file's one write lock until it resumes
    // (the destination's, or the embedded store's during a commit), and no worker could write there
    // meanwhile: freeze it between two of them instead, which is what this test is about.
    for (let tries = 0; ; tries++) {
      frozen.child.kill('SIGSTOP');
      if ((!writeLocked(join(dir, 'crm.db')) && !writeLocked(join(dir, 'lockstep.db'))) || tries >= 200) break;
      frozen.child.kill('SIGCONT');
      await sleep(5 + (tries % 20));
    }
    let other: CliProcess | null = null;
    try {
      other = new CliProcess(['worker'], { cwd: dir, env });
      const run = await waitForSyncRun(dir, 1, 30_000);
      expect(run.status).toBe('success');
      expect(run.attempt).toBeGreaterThanOrEqual(2);
      expect(run.workerId).toContain(`/${other.pid}/`);
    } finally {
      frozen.child.kill('SIGCONT');
    }
    const finished = await syncRunRecord(dir, 1);
    // Resumed, the frozen worker finds its attempt superseded and stops it; nothing it tried to
    // write afterwards changed the run.
    await frozen.waitForStderr(/taken over by another worker|lost the lease/, 15_000);
    await sleep(500);
    expect(await syncRunRecord(dir, 1)).toEqual(finished);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from items')).toEqual([{ n: 150000 }]);
    expect((await frozen.stop()).code).toBe(0);
    expect((await other.stop()).code).toBe(0);
  });
});

describe('a command that waits for its run', () => {
  it('leaves the run queued behind its own to the next worker: it does not take it up as it exits', async () => {
    const dir = await bigWorkspace();
    const first = new CliProcess(['sync', 'run', 'items-to-crm'], { cwd: dir });
    await first.waitForStderr(/ [1-9][\d,]* delivered/, 15_000);
    // Queued meanwhile (a schedule's run, another command's member): it waits for the sync to be free.
    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    try {
      await store.enqueueSyncRun({ syncId: 1, trigger: { type: 'manual', detail: null }, options: { fullResync: false, resetCDC: false } }, Date.now());
    } finally {
      await store.close();
    }
    const ended = await first.exited;
    expect(ended.code, ended.stderr).toBe(0);
    expect(await syncRunRecord(dir, 2)).toMatchObject({ status: 'queued', workerId: null });

    const next = await runCli(['worker', '--drain'], { cwd: dir, timeoutMs: 60_000 });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).not.toContain('taken over');
    expect(await syncRunRecord(dir, 2)).toMatchObject({ status: 'success', attempt: 1 });
  });

  it('sequence run leaves a run another command queued to that command, while its own members go on', async () => {
    const dir = await bigWorkspace();
    sqlite(join(dir, 'crm.db'), 'create table one (id integer primary key, label text);');
    const yaml = readFileSync(join(dir, 'lockstep.yaml'), 'utf8');
    writeFileSync(
      join(dir, 'lockstep.yaml'),
      `${yaml}sequences: { s: { members: [items-to-crm, one-to-crm] } }\n`.replace(
        'syncs: {',
        'syncs: { one-to-crm: { model: items, destination: crm, object: one, mode: upsert }, ',
      ),
    );
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    const first = new CliProcess(['sequence', 'run', 's'], { cwd: dir });
    await first.waitForStderr(/ [1-9][\d,]* delivered/, 15_000);
    // `lockstep sync run items-to-crm` in another terminal: its run waits for the member's.
    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    let queued: number;
    try {
      ({ run: { id: queued } } = await store.enqueueSyncRun({ syncId: 1, trigger: { type: 'manual', detail: 'cli' }, options: { fullResync: false, resetCDC: false } }, Date.now()));
    } finally {
      await store.close();
    }
    const ended = await first.exited;
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toMatch(/DONE/);
    expect(await syncRunRecord(dir, queued)).toMatchObject({ status: 'queued', workerId: null });
  });
});

describe('SIGTERM to a worker', () => {
  it('says it stops and leaves its run to another worker, exits 0, and the run is finished by the next one', async () => {
    const dir = await bigWorkspace();
    const worker = await workerDelivering(dir);
    const stopped = await worker.stop();
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('lockstep worker: SIGTERM: stopping; sync run 1 stops at its next batch and is left to another worker (again to quit at once)');
    const left = await syncRunRecord(dir, 1);
    expect(left.status).toBe('processing');
    expect(left.successfulRows.addedCount).toBeLessThan(150_000);
    const next = await runCli(['worker', '--drain'], { cwd: dir, timeoutMs: 60_000 });
    expect(next.code, next.stderr).toBe(0);
    expect(await syncRunRecord(dir, 1)).toMatchObject({ status: 'success', attempt: 2, successfulRows: { addedCount: 150_000 } });
  });
});

/**
 * Runs `test` in a workspace whose sync accounts-to-api (and sequence to-api of it alone) writes to
 * an API that takes requests and never answers, once `command` started in it holds one of them.
 */
async function withHungApi(command: string[], test: (dir: string, first: CliProcess) => Promise<void>): Promise<void> {
  const hung = new Set<ServerResponse>();
  const server = createServer((_req, res) => void hung.add(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const dir = hierarchyWorkspace();
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const yaml = readFileSync(join(dir, 'lockstep.yaml'), 'utf8')
      .replace('destinations:\n', `destinations:\n  api: { type: http, url: "${url}", timeoutMs: 600000 }\n`)
      .replace('syncs:\n', 'syncs:\n  accounts-to-api: { model: accounts, destination: api, object: /accounts, mode: upsert }\n')
      .replace('sequences:\n', 'sequences:\n  to-api:\n    members:\n      - { sync: accounts-to-api }\n');
    writeFileSync(join(dir, 'lockstep.yaml'), yaml);
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    const first = new CliProcess(command, { cwd: dir });
    const deadline = Date.now() + 20_000;
    while (hung.size === 0 && Date.now() < deadline) await sleep(25);
    expect(hung.size, first.stderr).toBeGreaterThan(0);
    await test(dir, first);
  } finally {
    for (const res of hung) res.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('Ctrl-C on a run the command started', () => {
  it('cancels the sync run, which stops, is recorded as cancelled and is reported', async () => {
    // An API that takes the requests and never answers: the run waits on it until it is stopped.
    await withHungApi(['sync', 'run', 'accounts-to-api'], async (dir, proc) => {
      proc.child.kill('SIGINT');
      const ended = await proc.exited;
      expect(ended.stderr).toMatch(/Ctrl-C: cancelling sync run \d+, which stops at once/);
      expect(ended.code, ended.stderr).toBe(1);
      expect(ended.stdout).toMatch(/CANCELLED/);
      const runs = await listRuns(dir);
      expect(runs.syncRuns.find((r) => r.sync === 'accounts-to-api')?.status).toBe('cancelled');
    });
  });
});

describe('Ctrl-C on a run queued before the command', () => {
  it('leaves the sequence run to whoever queued it: the command quits, the run stays queued', async () => {
    // An API that takes the requests and never answers: the sequence's first run holds it.
    await withHungApi(['sequence', 'run', 'to-api'], async (dir) => {
      // Another trigger (a schedule, the API) queues the follow-up run; then the command joins it.
      const { sequenceRunId: queued } = await enqueueWork(dir, 'to-api', 'workspaces-to-crm');
      const joining = new CliProcess(['sequence', 'run', 'to-api'], { cwd: dir });
      await joining.waitForStderr(new RegExp(`sequence run ${queued} queued`), 20_000);
      joining.child.kill('SIGINT');
      const ended = await joining.exited;
      expect(ended.stderr).toContain(`Ctrl-C: quitting without cancelling sequence run ${queued}, which was queued before this command (queued by manual) and goes on; \`lockstep sequence cancel ${queued}\` cancels it`);
      expect(ended.code).toBe(130);
      const runs = await listRuns(dir);
      expect(runs.sequenceRuns.find((r) => r.id === queued)?.status).toBe('pending');
    });
  });
});

describe('Ctrl-C on a sync run queued before the command', () => {
  it('leaves the sync run to whoever queued it: the command quits, the run stays queued', async () => {
    await withHungApi(['sync', 'run', 'accounts-to-api'], async (dir) => {
      const { syncRunId: queued } = await enqueueWork(dir, 'crm', 'accounts-to-api');
      const joining = new CliProcess(['sync', 'run', 'accounts-to-api'], { cwd: dir });
      await joining.waitForStderr(/accounts-to-api waiting/, 20_000);
      joining.child.kill('SIGINT');
      const ended = await joining.exited;
      expect(ended.stderr).toContain(`Ctrl-C: quitting without cancelling sync run ${queued}, which was queued before this command (queued by manual) and goes on; \`lockstep sync cancel ${queued}\` cancels it`);
      expect(ended.code).toBe(130);
      const runs = await listRuns(dir);
      expect(runs.syncRuns.find((r) => r.id === queued)?.status).toBe('queued');
    });
  });
});

describe('lockstep demo', () => {
  it('shows rejected rows, then DONE, then FAILED with skipped members; runs again in its own folder', async () => {
    const parent = tempDir('lockstep-cli-demo-');
    const dir = join(parent, 'demo');
    const result = await runCli(['demo', '--dir', dir], { cwd: parent });
    expect(result.code, result.stderr).toBe(0);
    const [intro, part1, part2, part3] = result.stdout.split(/\n(?=[123]\. )/);
    expect(intro).toContain(`SQLite CRM with foreign keys in ${dir}`);
    expect(part1).toMatch(/▲ Sync contacts-to-crm — run 1 — WARNING/);
    expect(part1).toContain('rejected rows (first 3 of 200):');
    expect(part1).toContain('FOREIGN KEY constraint failed');
    expect(part2).toMatch(/✔ Sequence crm-hierarchy — run [0-9a-f-]{36} — DONE/);
    expect(part2).toMatch(/contacts-to-crm\s+success\s+200\s+\+200 ~0 -0/);
    expect(part3).toMatch(/✖ Sequence crm-hierarchy — run [0-9a-f-]{36} — FAILED/);
    expect(part3).toMatch(/accounts-to-crm\s+warning/);
    expect(part3).toMatch(/workspaces-to-crm\s+skipped/);
    expect(part3).toMatch(/contacts-to-crm\s+skipped/);
    expect(part3).toContain('NOT NULL constraint failed: accounts.name');
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 200 }]);

    // The demo folder is a workspace the other commands can open.
    const runs = await runMain(['--workspace', dir, 'runs', '--sequence', 'crm-hierarchy', '--json']);
    expect((JSON.parse(runs.stdout) as Listing).sequenceRuns.map((r) => r.status)).toEqual(['failed', 'done']);

    const again = await runCli(['demo', '--dir', dir], { cwd: parent });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/DONE[\s\S]*FAILED/);
  });

  it('--salesforce: contacts before their accounts are rejected by Salesforce, the sequence delivers the hierarchy linked', async () => {
    const parent = tempDir('lockstep-cli-demo-');
    const dir = join(parent, 'sf');
    const result = await runCli(['demo', '--salesforce', '--dir', dir], { cwd: parent });
    expect(result.code, result.stderr).toBe(0);
    const [, part1, part2] = result.stdout.split(/\n(?=[12]\. )/);
    expect(part1).toMatch(/▲ Sync contacts-to-salesforce — run 1 — WARNING/);
    expect(part1).toContain('INVALID_FIELD: Foreign key external ID: A-1 not found for field External_Id__c in entity Account');
    expect(part2).toMatch(/✔ Sequence salesforce-hierarchy — run [0-9a-f-]{36} — DONE/);
    expect(part2).toMatch(/contacts-to-salesforce\s+success\s+100\s+\+100 ~0 -0/);
    expect(part2).toContain('20 accounts, 100 contacts (100 linked to their account), 40 opportunities (40 linked to their account)');
    // The workspace keeps its secrets as templates: a real org is three environment variables away.
    const yaml = readFileSync(join(dir, 'lockstep.yaml'), 'utf8');
    expect(yaml).toContain('clientSecret: "${SALESFORCE_CLIENT_SECRET}"');

    // Its comments' steps for another org (here a second stand-in) deliver the hierarchy there.
    expect(yaml).toContain('#   rm <this folder>/lockstep.db');
    await using org = await startSalesforceStandIn();
    rmSync(join(dir, 'lockstep.db'));
    const env = { SALESFORCE_LOGIN_URL: org.url, SALESFORCE_CLIENT_ID: org.clientId, SALESFORCE_CLIENT_SECRET: org.clientSecret };
    expect((await runCli(['--workspace', dir, 'apply'], { cwd: parent, env })).code).toBe(0);
    const real = await runCli(['--workspace', dir, 'sequence', 'run', 'salesforce-hierarchy'], { cwd: parent, env });
    expect(real.code, real.stderr).toBe(0);
    expect([org.records('Account').length, org.records('Contact').length, org.records('Opportunity').length]).toEqual([20, 100, 40]);
  });

  it('refuses a non-empty folder that is not a demo folder, touching nothing', async () => {
    const dir = join(tempDir('lockstep-cli-demo-'), 'mine');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'keep me');
    const result = await runMain(['demo', '--dir', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${dir} exists and is not a Lockstep demo folder`);
    expect(result.stdout).toBe('');
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
  });
});

/** Whether another connection holds the write lock of the SQLite file at `path` now. */
function writeLocked(path: string): boolean {
  const db = new Database(path, { timeout: 0 });
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
    return false;
  } catch {
    return true;
  } finally {
    db.close();
  }
}

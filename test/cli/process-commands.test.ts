/**
 * Commands that live as processes: `serve` / `worker` with `--drain`, the embedded store's worker
 * lock between processes, and `lockstep demo`. Every child is killed in `afterEach`, so a failing
 * assertion never leaves a server running.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sqlite, sqliteRows, tempDir } from '../helpers/harness.js';
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

    const after = await listRuns(dir);
    expect(after.sequenceRuns).toEqual([expect.objectContaining({ id: sequenceRunId, status: 'done' })]);
    expect(after.syncRuns.find((r) => r.id === syncRunId)?.status).toBe('success');
    expect(after.syncRuns.every((r) => r.status === 'success')).toBe(true);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);
    // The worker lock is released on the way out.
    expect(existsSync(join(dir, 'lockstep.db.worker.pid'))).toBe(false);
  });

  it('--drain with nothing queued exits at once', async () => {
    const dir = await appliedWorkspace();
    const result = await runCli(['worker', '--drain'], { cwd: dir, timeoutMs: 10_000 });
    expect(result.code, result.stderr).toBe(0);
  });
});

describe('the embedded store worker lock', () => {
  it('a second serve on the same store exits non-zero; sequence run from another process waits for the server to run it', async () => {
    const dir = await appliedWorkspace();
    const server = new CliProcess(['serve'], { cwd: dir });
    await server.waitForStderr(/lockstep serve: running on/);
    expect(readFileSync(join(dir, 'lockstep.db.worker.pid'), 'utf8').trim()).toBe(String(server.pid));

    const second = await runCli(['serve'], { cwd: dir, timeoutMs: 10_000 });
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('another Lockstep process already works on this store');
    expect(second.stderr).not.toContain('we wait for it');

    const run = await runCli(['sequence', 'run', 'crm'], { cwd: dir, timeoutMs: 20_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`Another Lockstep process (pid ${server.pid}) is working on this store; it will run this and we wait for it.`);
    expect(run.stdout).toMatch(/^✔ Sequence crm — run [0-9a-f-]{36} — DONE in /);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);
    expect(server.running).toBe(true);

    const stopped = await server.stop();
    expect(stopped.code).toBe(0);
    expect(existsSync(join(dir, 'lockstep.db.worker.pid'))).toBe(false);
  });

  it('a waiting sequence run takes the work over when the process holding the lock exits', async () => {
    const dir = await appliedWorkspace();
    // Another live process holds the lock; it never runs anything.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'lockstep.db.worker.pid'), String(holder.pid));
      const waiting = new CliProcess(['sequence', 'run', 'crm'], { cwd: dir });
      await waiting.waitForStderr(/Another Lockstep process \(pid \d+\)/);
      expect(waiting.stderr).toContain(`(pid ${holder.pid})`);
      await sleep(700);
      expect(waiting.running).toBe(true);
      expect((await listRuns(dir)).sequenceRuns.map((r) => r.status)).toEqual(['pending']);

      holder.kill('SIGKILL');
      const timer = setTimeout(() => waiting.child.kill('SIGKILL'), 15_000);
      const result = await waiting.exited;
      clearTimeout(timer);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/DONE/);
      expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);
      expect(existsSync(join(dir, 'lockstep.db.worker.pid'))).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('when the serving process dies mid-run, a waiting sync run takes over and follows the retry to the end', async () => {
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

    const server = new CliProcess(['serve'], { cwd: dir });
    await server.waitForStderr(/lockstep serve: running on/);
    const waiting = new CliProcess(['sync', 'run', 'items-to-crm'], { cwd: dir });
    // The server is delivering batches when it dies.
    await waiting.waitForStderr(/\[[#.]+\] [1-9]\d*\/\d+ rows/, 15_000);
    server.child.kill('SIGKILL');
    await server.exited;

    const timer = setTimeout(() => waiting.child.kill('SIGKILL'), 30_000);
    const result = await waiting.exited;
    clearTimeout(timer);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/sync run 1 was interrupted; following its retry, run 2/);
    expect(result.stdout).toMatch(/^✔ Sync items-to-crm — run 2 — SUCCESS/);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from items')).toEqual([{ n: 150000 }]);
  });

  it('a lock file left by a dead process is taken over', async () => {
    const dir = await appliedWorkspace();
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((resolve) => dead.once('exit', resolve));
    writeFileSync(join(dir, 'lockstep.db.worker.pid'), String(dead.pid));
    const result = await runCli(['sequence', 'run', 'crm'], { cwd: dir, timeoutMs: 15_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('Another Lockstep process');
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
    expect(readFileSync(join(dir, 'lockstep.yaml'), 'utf8')).toContain('clientSecret: "${SALESFORCE_CLIENT_SECRET}"');
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

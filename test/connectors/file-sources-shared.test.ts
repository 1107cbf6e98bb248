/**
 * DuckDB and SQLite source files shared with other processes and other runs: a file another process
 * holds or writes while Lockstep reads it, two runs of one process on the same file, and model
 * queries that read files by relative path.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { duckdb as duck } from '../../src/cli/demo.js';
import { DuckDbSource } from '../../src/connectors/duckdb/duckdb-source.js';
import type { Logger } from '../../src/core/ports.js';
import type { WorkspaceDefinition } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** Runs `script` in a child Node process (with the project's node_modules); resolves once it prints "ready". */
async function holder(script: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (data: Buffer) => {
      if (data.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return child;
}

/** A child process that opens the DuckDB file for writing (inserting a row) and keeps it open. */
const duckWriter = (path: string) =>
  holder(`const { DuckDBInstance } = require('@duckdb/node-api');
(async () => { const i = await DuckDBInstance.create(${JSON.stringify(path)}); const c = await i.connect();
await c.run('insert into items values (1000, \\'from the writer\\')'); console.log('ready'); setInterval(() => {}, 1000); })();`);

async function runSync(h: { app: { runs: { triggerSync(s: string): Promise<{ run: { id: number } }>; waitForSyncRun(id: number): Promise<{ status: string; error: string | null; plannedRows: { addedCount: number; changedCount: number; removedCount: number } }> } } }, slug: string) {
  return h.app.runs.waitForSyncRun((await h.app.runs.triggerSync(slug)).run.id);
}

function duckItems(
  dir: string,
  planner: 'store' | 'warehouse',
  query = 'select id, label from items',
  syncs = ['items'],
  allowedDirectories?: string[],
): WorkspaceDefinition {
  sqlite(join(dir, 'app.db'), syncs.map((s) => `create table if not exists ${s} (id integer primary key, label text);`).join('\n'));
  return workspace({
    sources: [source('warehouse', { type: 'duckdb', settings: { path: 'warehouse.duckdb', planner, plannerSchema: 'lockstep_planner', ...(allowedDirectories ? { allowedDirectories } : {}) } })],
    destinations: [source('app', { path: 'app.db' })],
    models: [model('items', 'warehouse', query)],
    syncs: syncs.map((s) => sync(s, { model: 'items', destination: 'app', object: s })),
  });
}

/** A logger that calls `onWarn` with each warning's message and fields. */
const warnings = (onWarn: (text: string) => void): Logger => ({ debug() {}, info() {}, error() {}, warn: (message, fields) => onWarn(`${message} ${JSON.stringify(fields ?? {})}`) });

describe('a DuckDB source file used by other processes', () => {
  for (const planner of ['store', 'warehouse'] as const) {
    it(`a run that starts while another process writes the file waits for it (planner: ${planner})`, async () => {
      const dir = tempDir();
      const path = join(dir, 'warehouse.duckdb');
      await duck(path, `create table items as select i as id, 'item ' || i as label from range(1, 11) t(i)`);
      const writer = await duckWriter(path);
      // The writer closes the file when the run first finds it held, as a dbt run ends.
      const logger = warnings((text) => {
        if (/held by another process/.test(text)) writer.kill();
      });
      await using h = await startHarness({ dir, definition: duckItems(dir, planner), logger });
      const run = await runSync(h, 'items');
      expect(run.status, run.error ?? '').toBe('success');
      expect(sqliteRows(join(dir, 'app.db'), 'select label from items where id = 1000')).toEqual([{ label: 'from the writer' }]);
    }, 30_000);
  }

  it('a file held throughout fails the run, naming the file, the holder and what to do', async () => {
    const dir = tempDir();
    const path = join(dir, 'warehouse.duckdb');
    await duck(path, "create table items as select 1 as id, 'one' as label");
    await duckWriter(path);
    await using h = await startHarness({ dir, definition: duckItems(dir, 'store') });
    const run = await runSync(h, 'items');
    expect(run.status).toBe('failed');
    expect(run.error).toContain(`DuckDB file ${path} is held by another process`);
    expect(run.error).toMatch(/PID \d+.*gave up after 5 attempts/s);
  }, 30_000);

  it('two syncs of one source with the planner in the file, run at once, each keep their planner table', async () => {
    const dir = tempDir();
    await duck(join(dir, 'warehouse.duckdb'), `create table items as select i as id, 'item ' || i as label from range(1, 2001) t(i)`);
    const definition = duckItems(dir, 'warehouse', undefined, ['a', 'b']);
    await using h = await startHarness({ dir, definition });
    const first = await Promise.all(['a', 'b'].map((s) => runSync(h, s)));
    for (const run of first) expect(run.status, run.error ?? '').toBe('success');
    const second = await Promise.all(['a', 'b'].map((s) => runSync(h, s)));
    for (const run of second) {
      expect(run.status, run.error ?? '').toBe('success');
      expect(run.plannedRows).toMatchObject({ addedCount: 0, changedCount: 0, removedCount: 0 });
    }
  }, 60_000);
});

describe('a DuckDB model reading files by relative path', () => {
  it('reads them from the workspace folder, whatever the process\'s working folder, and names a missing one (a source whose models reach any file)', async () => {
    const dir = tempDir();
    await duck(join(dir, 'warehouse.duckdb'), 'select 1');
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'orders-1.csv'), 'id,label\n1,one\n2,two\n');
    writeFileSync(join(dir, 'data', 'orders-2.csv'), 'id,label\n3,three\n');
    expect(process.cwd()).not.toBe(dir);
    const definition = duckItems(dir, 'store', "select id, label from read_csv_auto('data/orders-*.csv')", ['items'], ['*']);
    await using h = await startHarness({ dir, definition });
    const run = await runSync(h, 'items');
    expect(run.status, run.error ?? '').toBe('success');
    expect(sqliteRows(join(dir, 'app.db'), 'select count(*) as n from items')).toEqual([{ n: 3 }]);
    await h.app.store.applyWorkspace(duckItems(dir, 'store', "select * from 'data/missing.parquet'", ['items'], ['*']), h.app.clock.now());
    const missing = await runSync(h, 'items');
    expect(missing.status).toBe('failed');
    expect(missing.error).toContain('data/missing.parquet');
    expect(missing.error).toContain(`relative paths in a model's query are read from the workspace folder ${dir}`);
  }, 30_000);
});

describe('the files a DuckDB model may reach', () => {
  it('are those of the workspace folder, the file\'s folder and the folders the source lists; any other is refused, saying how to allow it', async () => {
    const dir = tempDir();
    const elsewhere = tempDir();
    const lake = tempDir();
    await duck(join(dir, 'warehouse.duckdb'), 'select 1');
    writeFileSync(join(dir, 'orders.csv'), 'id,label\n1,one\n');
    writeFileSync(join(lake, 'orders.csv'), 'id,label\n2,two\n');
    writeFileSync(join(elsewhere, 'secret.txt'), 'not for models\n');
    const attempt = async (query: string, allowed?: string[]) => {
      await using h = await startHarness({ dir, definition: duckItems(dir, 'store', query, ['items'], allowed) });
      return await runSync(h, 'items');
    };
    expect((await attempt(`select id, label from read_csv('${join(dir, 'orders.csv')}')`)).status).toBe('success');
    expect((await attempt(`select id, label from read_csv('${join(lake, 'orders.csv')}')`, [lake])).status).toBe('success');
    for (const query of [
      `select 1 as id, content as label from read_text('${join(elsewhere, 'secret.txt')}')`,
      `copy (select 1 as id, 'x' as label) to '${join(elsewhere, 'out.csv')}'`,
      `select id, label from read_csv('${join(lake, 'orders.csv')}')`,
    ]) {
      const refused = await attempt(query);
      expect(refused.status).toBe('failed');
      expect(refused.error).toContain(`reaches a file or an extension outside the folders a DuckDB model may use (${dir}/)`);
      expect(refused.error).toContain("list its folder in the source's allowedDirectories");
    }
    expect(existsSync(join(elsewhere, 'out.csv'))).toBe(false);
    // "*": as DuckDB itself.
    expect((await attempt(`select 1 as id, content as label from read_text('${join(elsewhere, 'secret.txt')}')`, ['*'])).status).toBe('success');
  }, 60_000);
});

describe('DuckDbSource on a file replaced while it is open', () => {
  it('reads the new file in a source opened after the rename, while one opened before keeps the old', async () => {
    const dir = tempDir();
    const path = join(dir, 'warehouse.duckdb');
    await duck(path, "create table items as select 1 as id, 'old' as label");
    const before = await DuckDbSource.open({ path });
    await duck(join(dir, 'rebuilt.duckdb'), "create table items as select 1 as id, 'new' as label");
    renameSync(join(dir, 'rebuilt.duckdb'), path);
    const after = await DuckDbSource.open({ path });
    try {
      expect(await readRows(after, 'select label from items')).toEqual([['new']]);
      expect(await readRows(before, 'select label from items')).toEqual([['old']]);
    } finally {
      await before.close();
      await after.close();
    }
  });
});

async function readRows(source: DuckDbSource, query: string): Promise<unknown[][]> {
  const rows: unknown[][] = [];
  for await (const batch of source.read(query, { batchSize: 100 })) rows.push(...batch.rows);
  return rows;
}

/** A child process that writes a row to the SQLite file in a transaction it holds open for `holdMs`. */
const sqliteWriter = (path: string, holdMs: number) =>
  holder(`const Database = require('better-sqlite3'); const db = new Database(${JSON.stringify(path)});
db.exec("begin exclusive; insert into items values (1000, 'from the writer')"); console.log('ready');
setTimeout(() => { db.exec('commit'); db.close(); }, ${holdMs}); setInterval(() => {}, 1000);`);

describe('a SQLite source file written by another process', () => {
  for (const journal of ['delete', 'wal'] as const) {
    it(`reads it while a writer holds a transaction (journal_mode ${journal})`, async () => {
      const dir = tempDir();
      const path = join(dir, 'warehouse.db');
      sqlite(path, `pragma journal_mode = ${journal}; create table items (id integer primary key, label text); insert into items values (1, 'one');`);
      sqlite(join(dir, 'app.db'), 'create table items (id integer primary key, label text);');
      await sqliteWriter(path, 1000);
      const definition = workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('app', { path: 'app.db' })],
        models: [model('items', 'warehouse', 'select id, label from items')],
        syncs: [sync('items', { model: 'items', destination: 'app', object: 'items' })],
      });
      await using h = await startHarness({ dir, definition });
      const run = await runSync(h, 'items');
      expect(run.status, run.error ?? '').toBe('success');
      // Rollback journal: the read waits out the writer's lock (busy timeout) and sees its row;
      // WAL: the read does not wait, and sees the rows committed before it began.
      const labels = sqliteRows<{ label: string }>(join(dir, 'app.db'), 'select label from items order by id').map((r) => r.label);
      expect(labels).toEqual(journal === 'delete' ? ['one', 'from the writer'] : ['one']);
    }, 30_000);
  }
});

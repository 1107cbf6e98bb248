/**
 * DuckDB and SQLite source files shared with other processes and other runs: a file another process
 * holds or writes while Lockstep reads it, two runs of one process on the same file, and model
 * queries that read files by relative path.
 */
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { duckdb as duck } from '../../src/cli/demo.js';
import { DuckDbSource } from '../../src/connectors/duckdb/duckdb-source.js';
import type { WorkspaceDefinition } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, startHarness, tempDir } from '../helpers/harness.js';

async function runSync(h: { app: { runs: { triggerSync(s: string): Promise<{ run: { id: number } }>; waitForSyncRun(id: number): Promise<{ status: string; error: string | null; plannedRows: { addedCount: number; changedCount: number; removedCount: number } }> } } }, slug: string) {
  return h.app.runs.waitForSyncRun((await h.app.runs.triggerSync(slug)).run.id);
}

function duckItems(dir: string, planner: 'store' | 'warehouse', query = 'select id, label from items', syncs = ['items']): WorkspaceDefinition {
  sqlite(join(dir, 'app.db'), syncs.map((s) => `create table if not exists ${s} (id integer primary key, label text);`).join('\n'));
  return workspace({
    sources: [source('warehouse', { type: 'duckdb', settings: { path: 'warehouse.duckdb', planner, plannerSchema: 'lockstep_planner' } })],
    destinations: [source('app', { path: 'app.db' })],
    models: [model('items', 'warehouse', query)],
    syncs: syncs.map((s) => sync(s, { model: 'items', destination: 'app', object: s })),
  });
}

describe('a DuckDB source file used by other processes', () => {
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

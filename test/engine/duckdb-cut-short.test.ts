/**
 * A DuckDB model whose query fails part-way: DuckDB's Node.js binding ends such a streamed result
 * as if it were complete. A mirror sync must not take the rows after the cut for removed rows.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { duckdb as duck } from '../../src/cli/demo.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

const ROWS = 200_000;

describe('a DuckDB model that fails part-way', () => {
  it('fails the mirror run, deleting nothing, where the rows after the cut were taken for removed', async () => {
    const dir = tempDir();
    const warehouse = join(dir, 'warehouse.duckdb');
    await duck(warehouse, `create table items as select i as id, 'item ' || i as label from range(1, ${ROWS + 1}) t(i)`);
    sqlite(join(dir, 'app.db'), 'create table items (id integer primary key, label text);');
    const definition = workspace({
      sources: [source('warehouse', { type: 'duckdb', path: 'warehouse.duckdb' })],
      destinations: [source('app', { path: 'app.db' })],
      // A label the model cannot take fails the query at its row, as a cast would.
      models: [model('items', 'warehouse', "select id, case when label = 'bad' then error('no label for item ' || id) else label end as label from items")],
      syncs: [sync('items', { model: 'items', destination: 'app', object: 'items', mode: 'mirror', batchSize: 10_000 })],
    });
    const count = () => sqliteRows<{ n: number }>(join(dir, 'app.db'), 'select count(*) as n from items')[0]!.n;
    {
      await using h = await startHarness({ dir, definition });
      const first = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('items')).run.id);
      expect(first.status, first.error ?? '').toBe('success');
      expect(count()).toBe(ROWS);
    }
    // Near the end of the table, so that what the cut leaves out stays under the mass-delete guard.
    await duck(warehouse, `update items set label = 'bad' where id = ${ROWS - 10_000}`);
    await using h = await startHarness({ dir, definition });
    const second = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('items')).run.id);
    expect(second.status).toBe('failed');
    expect(second.error).toMatch(/no label for item 190000|ended the model's result after \d+ rows, though the query has 200000/);
    expect(second.successfulRows.removedCount).toBe(0);
    expect(count()).toBe(ROWS);
  }, 60_000);
});

/**
 * A model's change cursor with the store's planner (the default): a run reads only the rows whose
 * cursor reached the value the last run delivered and looks them up in the snapshot; removals and
 * writes that did not move the cursor wait for a full comparison (every `fullCompareEvery` runs,
 * or asked for); a run with a rejected row leaves the cursor where it was, so the row is read
 * again. The same on a PostgreSQL and a SQLite source (each reads by its own SQL).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const ROWS = 500;
const NONE = { addedCount: 0, changedCount: 0, removedCount: 0 };

/** The model's table in a source of each kind, and how to change it. */
interface Warehouse {
  settings: Record<string, unknown>;
  type: string;
  exec(statements: string): Promise<void>;
  rows(): Promise<unknown[]>;
}

async function postgresWarehouse(url: string): Promise<Warehouse> {
  await sql(
    url,
    `create table people (id bigint primary key, name text not null, score integer not null, seen_at timestamp not null);
     create index people_seen_at on people (seen_at);
     insert into people select g, 'person ' || g, g % 100, timestamp '2024-01-01' + g * interval '1 minute' from generate_series(1, ${ROWS}) g`,
  );
  return {
    type: 'postgres',
    settings: { url },
    exec: async (statements) => void (await sql(url, statements)),
    rows: async () => (await sql(url, 'select id::int as id, name, score from people order by id')) as unknown[],
  };
}

function sqliteWarehouse(dir: string): Warehouse {
  const path = join(dir, 'warehouse.db');
  const db = new Database(path);
  db.exec(`create table people (id integer primary key, name text not null, score integer not null, seen_at integer not null);
           create index people_seen_at on people (seen_at)`);
  const insert = db.prepare('insert into people values (?, ?, ?, ?)');
  for (let g = 1; g <= ROWS; g++) insert.run(g, `person ${g}`, g % 100, 1_000 + g);
  db.close();
  const open = () => new Database(path);
  return {
    type: 'sqlite',
    settings: { path },
    exec: async (statements) => {
      const d = open();
      // The SQLite model's cursor is an integer: the PostgreSQL statements' timestamps become numbers.
      d.exec(statements.replace(/'2030-01-01'/g, '99999'));
      d.close();
    },
    rows: async () => {
      const d = open();
      try {
        return d.prepare('select id, name, score from people order by id').all();
      } finally {
        d.close();
      }
    },
  };
}

describe.each(['postgres', 'sqlite'])('change cursor with the store planner (%s source)', (kind) => {
  async function setup(fullCompareEvery = 3) {
    const dir = tempDir();
    const crm = await createTestDatabase('lockstep_scursor');
    await sql(crm, 'create table crm_people (id bigint primary key, name text, score integer check (score >= 0), seen_at text)');
    const warehouse = kind === 'postgres' ? await postgresWarehouse(await createTestDatabase('lockstep_scursor_src')) : sqliteWarehouse(dir);
    const people: ModelDef = { ...model('people', 'warehouse', 'select id, name, score, seen_at from people'), cursor: 'seen_at', fullCompareEvery };
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { type: warehouse.type, settings: warehouse.settings })],
        destinations: [source('crm', { type: 'postgres', url: crm })],
        models: [people],
        syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 100 })],
      }),
    });
    const run = async (options: { fullCompare?: boolean } = {}) => {
      const { run } = await h.app.runs.triggerSync('people-to-crm', options);
      return h.app.runs.waitForSyncRun(run.id);
    };
    const delivered = async () => (await sql(crm, 'select id::int as id, name, score from crm_people order by id')) as unknown[];
    return { h, run, warehouse, delivered };
  }

  it('reads only rows past the cursor, and sees deletes and late writes at a full comparison', async () => {
    const { h, run, warehouse, delivered } = await setup();
    await using _ = h;
    const first = await run();
    expect(first.comparison).toEqual({ planner: 'store', kind: 'full', target: expect.any(Object) });
    expect(first.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });

    // A change that moves the cursor and a new row are seen; a delete is not.
    await warehouse.exec(`update people set name = 'moved', seen_at = '2030-01-01' where id = 10; delete from people where id = 11;
                          insert into people values (9001, 'new', 1, '2030-01-01')`);
    const second = await run();
    expect(second.comparison).toEqual({ planner: 'store', kind: 'cursor', target: expect.any(Object) });
    expect(second.plannedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 0 });
    // A late write (cursor not moved) waits too; rows at the last value are read again but unchanged.
    await warehouse.exec(`update people set name = 'late' where id = 12`);
    const third = await run();
    expect(third.comparison?.kind).toBe('cursor');
    expect(third.plannedRows).toEqual(NONE);

    // The third run after the full one compares in full.
    const fourth = await run();
    expect(fourth.comparison).toEqual({ planner: 'store', kind: 'full', target: expect.any(Object) });
    expect(fourth.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 1 });
    expect(await delivered()).toEqual(await warehouse.rows());

    await warehouse.exec(`delete from people where id = 13`);
    expect((await run()).plannedRows).toEqual(NONE);
    const asked = await run({ fullCompare: true });
    expect(asked.comparison?.kind).toBe('full');
    expect(asked.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 1 });
    expect(await delivered()).toEqual(await warehouse.rows());
  });

  it('leaves the cursor where it was when a row past it is rejected, so the row is read again', async () => {
    const { h, run, warehouse, delivered } = await setup(100);
    await using _ = h;
    expect((await run()).status).toBe('success');
    await warehouse.exec(`update people set score = -1, seen_at = '2030-01-01' where id = 20`);
    const rejected = await run();
    expect(rejected.comparison?.kind).toBe('cursor');
    expect(rejected.failedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    await warehouse.exec(`update people set score = 5 where id = 20`);
    // Its cursor did not move again: only a cursor left behind finds it.
    const retried = await run();
    expect(retried.comparison?.kind).toBe('cursor');
    expect(retried.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    expect(retried.status).toBe('success');
    expect(await delivered()).toEqual(await warehouse.rows());
  });
});

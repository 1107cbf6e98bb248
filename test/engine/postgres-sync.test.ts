/**
 * PostgreSQL → PostgreSQL syncs through the bulk path (COPY into the table or a staging table, then
 * one merge): a bad row inside a large batch is rejected alone with PostgreSQL's message, in a first
 * run (rows copied straight into the table) and in a later one (rows merged from staging). The same
 * with either planner: the snapshot in the store, or the planner table in the warehouse.
 */
import { describe, expect, it } from 'vitest';
import type { ModelDef, SyncDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const ROWS = 12_000;

type Planner = 'store' | 'warehouse';

/** A harness whose source `warehouse` and destination `crm` are both the database at `url`. */
function postgresHarness(url: string, models: ModelDef[], syncs: SyncDef[], planner: Planner) {
  return startHarness({
    dir: tempDir(),
    definition: workspace({
      sources: [source('warehouse', { type: 'postgres', settings: { url, planner } })],
      destinations: [source('crm', { type: 'postgres', url })],
      models,
      syncs,
    }),
  });
}

async function setup(planner: Planner, over: Partial<SyncDef> = {}) {
  const url = await createTestDatabase('lockstep_bulk');
  await sql(
    url,
    `create table people (id bigint primary key, name text not null, score integer not null, seen_at timestamptz);
     insert into people select g, 'person ' || g, g % 100, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
       from generate_series(1, ${ROWS}) g;
     create table crm_people (id bigint primary key, name text not null, score integer not null check (score >= 0), seen_at timestamptz)`,
  );
  const h = await postgresHarness(
    url,
    [model('people', 'warehouse', 'select id, name, score, seen_at from people')],
    [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 5000, ...over })],
    planner,
  );
  const run = async () => {
    const { run } = await h.app.runs.triggerSync('people-to-crm', {});
    return h.app.runs.waitForSyncRun(run.id);
  };
  return { url, h, run };
}

describe.each(['store', 'warehouse'] as const)('PostgreSQL bulk delivery (planner: %s)', (planner) => {
  /** The delivered rows the planner recorded. */
  const recorded = async (url: string, h: Awaited<ReturnType<typeof setup>>['h'], syncId: number) =>
    planner === 'store'
      ? h.app.store.snapshots.count(syncId)
      : ((await sql<{ n: number }>(url, `select count(*)::int as n from lockstep_planner.sync_${syncId}_people_to_crm`))[0]?.n ?? -1);

  it('rejects only the rows that break a constraint inside large batches, with the database message, and retries them later', async () => {
    const { url, h, run } = await setup(planner);
    await using _ = h;
    // Three bad rows spread over two batches of 5000.
    await sql(url, 'update people set score = -1 where id in (17, 4999, 9001)');
    const first = await run();
    expect(first.status).toBe('warning');
    expect(first.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect(first.successfulRows).toEqual({ addedCount: ROWS - 3, changedCount: 0, removedCount: 0 });
    expect(first.failedRows).toEqual({ addedCount: 3, changedCount: 0, removedCount: 0 });
    const rejected = await h.app.store.listRejectedRows(first.id, 10, 0);
    expect(rejected.map((r) => r.key).sort()).toEqual(['[17]', '[4999]', '[9001]']);
    for (const r of rejected) expect(r.reason).toMatch(/violates check constraint "crm_people_score_check"/);
    expect(await sql(url, 'select count(*)::int as n from crm_people')).toEqual([{ n: ROWS - 3 }]);
    expect(await recorded(url, h, first.syncId)).toBe(ROWS - 3);

    // A later run merges (the rows exist): a changed row with a bad value is rejected alone, the
    // rows rejected before are planned again and, once fixed, delivered.
    await sql(url, `update people set score = 0 where id in (17, 4999); update people set name = name || '!' where id % 50 = 0; update people set score = -5 where id = 100`);
    const second = await run();
    expect(second.status).toBe('warning');
    expect(second.plannedRows).toEqual({ addedCount: 3, changedCount: ROWS / 50, removedCount: 0 });
    expect(second.failedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 0 });
    const again = await h.app.store.listRejectedRows(second.id, 10, 0);
    expect(again.map((r) => [r.key, r.op]).sort()).toEqual([['[100]', 'changed'], ['[9001]', 'added']]);
    const [row] = await sql<{ name: string; score: number }>(url, 'select name, score from crm_people where id = 100');
    expect(row).toEqual({ name: 'person 100', score: 0 });
    expect(await sql(url, "select count(*)::int as n from crm_people where name like '%!'")).toEqual([{ n: ROWS / 50 - 1 }]);

    // Fixed at the source: everything converges, and a run with no change plans nothing.
    await sql(url, 'update people set score = 1 where id in (100, 9001)');
    expect((await run()).status).toBe('success');
    const model = await sql(url, "select md5(string_agg(p::text, '|' order by id)) as m from people p");
    const destination = await sql(url, "select md5(string_agg(p::text, '|' order by id)) as m from crm_people p");
    expect(destination).toEqual(model);
    const idle = await run();
    expect(idle.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
  });

  it('keeps a value with tabs, newlines, backslashes and non-ASCII text exact through COPY both ways', async () => {
    const { url, h, run } = await setup(planner);
    await using _ = h;
    await sql(url, `update people set name = E'tab\\there\\nline \\\\N back\\\\slash é ✓' where id = 42; update people set seen_at = null where id = 43`);
    expect((await run()).status).toBe('success');
    const [row] = await sql<{ name: string; seen_at: unknown }>(url, 'select name, seen_at from crm_people where id = 42');
    expect(row?.name).toBe('tab\there\nline \\N back\\slash é ✓');
    expect(await sql(url, 'select seen_at from crm_people where id = 43')).toEqual([{ seen_at: null }]);
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
  });

  it('copies rows into columns of the same types as the source printed them, and sends values where a type differs', async () => {
    const url = await createTestDatabase('lockstep_bulk_types');
    await sql(
      url,
      `create table things (id bigint primary key, tags integer[], doc jsonb, raw bytea, at timestamptz, local timestamp, amount numeric(10,2), flag boolean, n integer);
       insert into things select g, array[g, g + 1], jsonb_build_object('g', g, 'list', jsonb_build_array(1, 'two')), decode(lpad(to_hex(g), 4, '0'), 'hex'),
         timestamptz '2024-01-01 00:00:00.5+02' + g * interval '1 hour', timestamp '2024-06-01' + g * interval '1 minute', g / 3.0, g % 2 = 0, g
         from generate_series(1, 500) g;
       create table same_things (like things including all);
       create table other_things (id bigint primary key, flag text, n bigint)`,
    );
    const h = await postgresHarness(
      url,
      [model('things', 'warehouse', 'select * from things'), model('flags', 'warehouse', 'select id, flag, n from things')],
      [
        sync('same', { model: 'things', destination: 'crm', object: 'same_things', mode: 'mirror' }),
        sync('other', { model: 'flags', destination: 'crm', object: 'other_things', mode: 'mirror' }),
      ],
      planner,
    );
    await using _ = h;
    for (const slug of ['same', 'other']) {
      const { run } = await h.app.runs.triggerSync(slug, {});
      expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    }
    // Arrays, JSON and bytes arrive exactly (their text as PostgreSQL prints it is what it reads).
    const digest = (table: string) => sql(url, `select md5(string_agg(t::text, '|' order by id)) as m from ${table} t`);
    expect(await digest('same_things')).toEqual(await digest('things'));
    // A boolean into a text column is Lockstep's value, not PostgreSQL's `t`.
    expect(await sql(url, 'select flag, n from other_things where id in (1, 2) order by id')).toEqual([
      { flag: 'false', n: '1' },
      { flag: 'true', n: '2' },
    ]);
    // A second run finds nothing changed on either path.
    for (const slug of ['same', 'other']) {
      const { run } = await h.app.runs.triggerSync(slug, {});
      expect((await h.app.runs.waitForSyncRun(run.id)).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
    }
  });
});

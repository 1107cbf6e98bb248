/**
 * A MySQL / MariaDB source as users have them, synced to PostgreSQL and to SQLite with both planners
 * (the store's, and the warehouse's, which compares in MySQL by SQL): every row lands, values arrive
 * as the source reads them, the two planners deliver the same, and a run after no change plans nothing.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SyncRun } from '../../src/core/runs.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const PLANNERS = ['store', 'warehouse'] as const;
const NONE = { addedCount: 0, changedCount: 0, removedCount: 0 };

/**
 * `query` on a MySQL database made by `ddl`, synced in mirror mode by each planner into table
 * `p_<planner>` of a PostgreSQL database (made by `pgColumns`) and `s_<planner>` of a SQLite file
 * (made by `sqliteColumns`). `run()` runs all four syncs and returns their runs by name.
 */
async function fourSyncs(options: { ddl: string; query: string; pgColumns: string; sqliteColumns: string; cursor?: string }) {
  const url = await createTestMysqlDatabase('mysql_dest');
  await mysqlSql(url, options.ddl);
  const pgUrl = await createTestDatabase('mysql_dest');
  const dir = tempDir();
  const lite = join(dir, 'lite.db');
  for (const planner of PLANNERS) {
    await sql(pgUrl, `create table p_${planner} (${options.pgColumns})`);
    sqlite(lite, `create table s_${planner} (${options.sqliteColumns})`);
  }
  const plannerSchema = `${new URL(url).pathname.slice(1)}_p`;
  const h = await startHarness({
    dir,
    definition: workspace({
      sources: PLANNERS.map((planner) => source(planner, { type: 'mysql', settings: { url, planner, plannerSchema } })),
      destinations: [source('pg', { type: 'postgres', url: pgUrl }), source('lite', { path: 'lite.db' })],
      models: PLANNERS.map((planner) => ({ ...model(planner, planner, options.query), ...(options.cursor ? { cursor: options.cursor, fullCompareEvery: 3 } : {}) })),
      syncs: PLANNERS.flatMap((planner) => [
        sync(`${planner}-pg`, { model: planner, destination: 'pg', object: `p_${planner}`, mode: 'mirror', maxDeletePercent: null }),
        sync(`${planner}-lite`, { model: planner, destination: 'lite', object: `s_${planner}`, mode: 'mirror', maxDeletePercent: null }),
      ]),
    }),
  });
  const run = async (): Promise<Record<string, SyncRun>> => {
    const runs: Record<string, SyncRun> = {};
    for (const planner of PLANNERS) {
      for (const to of ['pg', 'lite']) {
        const slug = `${planner}-${to}`;
        const { run } = await h.app.runs.triggerSync(slug);
        runs[slug] = await h.app.runs.waitForSyncRun(run.id);
      }
    }
    return runs;
  };
  /** What each run rejected, by sync, for a readable failure. */
  const rejected = async (runs: Record<string, SyncRun>) => {
    const reasons: Record<string, string[]> = {};
    for (const [slug, r] of Object.entries(runs)) reasons[slug] = (await h.app.store.listRejectedRows(r.id, 5, 0)).map((row) => `${row.key}: ${row.reason}`);
    return reasons;
  };
  const pgRows = (planner: string, columns = '*') => sql(pgUrl, `select ${columns} from p_${planner} order by id`);
  const liteRows = (planner: string, columns = '*') => sqliteRows(lite, `select ${columns} from s_${planner} order by id`);
  return { url, h, run, rejected, pgRows, liteRows, my: (text: string) => mysqlSql(url, text) };
}

/** Every run succeeded with nothing rejected. */
async function expectAllLanded(runs: Record<string, SyncRun>, rejected: (runs: Record<string, SyncRun>) => Promise<Record<string, string[]>>) {
  const empty = Object.fromEntries(Object.keys(runs).map((slug) => [slug, []]));
  expect(await rejected(runs)).toEqual(empty);
  expect(Object.fromEntries(Object.entries(runs).map(([slug, r]) => [slug, r.status]))).toEqual(Object.fromEntries(Object.keys(runs).map((slug) => [slug, 'success'])));
}

function planned(runs: Record<string, SyncRun>) {
  return Object.fromEntries(Object.entries(runs).map(([slug, r]) => [slug, r.plannedRows]));
}

describe('MySQL source to PostgreSQL and SQLite, with both planners', () => {
  it('delivers zero dates and dates with a zero month or day as null, and plans no change for them afterwards', async () => {
    const { h, run, rejected, pgRows, liteRows, my } = await fourSyncs({
      ddl: `set session sql_mode = '';
        create table events (id int primary key, day date null default '0000-00-00', at datetime(3) not null, ts timestamp null);
        insert into events values (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), (2, '2024-00-00', '2024-03-00 10:00:00', null),
          (3, '2024-01-02', '2024-01-02 03:04:05.5', '2024-01-02 03:04:05')`,
      query: 'select id, day, at, ts from events',
      pgColumns: 'id int primary key, day date, at timestamptz, ts timestamptz',
      sqliteColumns: 'id integer primary key, day text, at text, ts text',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, `id, day::text, at, ts`)).toEqual([
        { id: 1, day: null, at: null, ts: null },
        { id: 2, day: null, at: null, ts: null },
        { id: 3, day: '2024-01-02', at: new Date('2024-01-02T03:04:05.500Z'), ts: new Date('2024-01-02T03:04:05Z') },
      ]);
      expect(await liteRows(planner)).toEqual([
        { id: 1, day: null, at: null, ts: null },
        { id: 2, day: null, at: null, ts: null },
        { id: 3, day: '2024-01-02', at: '2024-01-02T03:04:05.500Z', ts: '2024-01-02T03:04:05.000Z' },
      ]);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });

    // A zero date made null is no change to what was delivered; one made a real date is.
    await my(`set session sql_mode = ''; update events set at = '2024-05-06 07:08:09' where id = 1; update events set day = '0000-00-00' where id = 3;
      update events set ts = null where id = 1; update events set day = null where id = 2`);
    const changed = await run();
    await expectAllLanded(changed, rejected);
    const one = { addedCount: 0, changedCount: 2, removedCount: 0 };
    expect(planned(changed)).toEqual({ 'store-pg': one, 'store-lite': one, 'warehouse-pg': one, 'warehouse-lite': one });
    for (const planner of PLANNERS) {
      expect(await liteRows(planner, 'id, day, at')).toEqual([
        { id: 1, day: null, at: '2024-05-06T07:08:09.000Z' },
        { id: 2, day: null, at: null },
        { id: 3, day: null, at: '2024-01-02T03:04:05.500Z' },
      ]);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
  });

  it('delivers a date in year 0 (stored under a permissive sql_mode) as null too, as a zero date is', async () => {
    const { h, run, rejected, pgRows, liteRows, my } = await fourSyncs({
      ddl: `set session sql_mode = '';
        create table events (id int primary key, day date, at datetime(3), ts timestamp null);
        insert into events values (1, '0000-01-15', '0000-01-15 10:00:00', null), (2, '0001-01-01', '0001-01-01 00:00:00', '2024-01-02 03:04:05')`,
      query: 'select id, day, at, ts from events',
      pgColumns: 'id int primary key, day date, at timestamptz, ts timestamptz',
      sqliteColumns: 'id integer primary key, day text, at text, ts text',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, `id, day::text, at::text`)).toEqual([
        { id: 1, day: null, at: null },
        { id: 2, day: '0001-01-01', at: '0001-01-01 00:00:00+00' },
      ]);
      expect(await liteRows(planner, 'id, day, at')).toEqual([
        { id: 1, day: null, at: null },
        { id: 2, day: '0001-01-01', at: '0001-01-01T00:00:00.000Z' },
      ]);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
    await my(`set session sql_mode = ''; update events set day = '0000-12-31' where id = 2`);
    const one = { addedCount: 0, changedCount: 1, removedCount: 0 };
    const changed = await run();
    await expectAllLanded(changed, rejected);
    expect(planned(changed)).toEqual({ 'store-pg': one, 'store-lite': one, 'warehouse-pg': one, 'warehouse-lite': one });
    for (const planner of PLANNERS) expect(await liteRows(planner, 'id, day')).toEqual([{ id: 1, day: null }, { id: 2, day: null }]);
  });

  it('delivers a TINYINT(1) as 0 and 1 into integer columns and as true and false into boolean ones; other numbers as they are', async () => {
    const { h, run, rejected, pgRows, liteRows } = await fourSyncs({
      ddl: `create table flags (id int primary key, flag tinyint(1), level tinyint(1));
        insert into flags values (1, 1, 5), (2, 0, -1), (3, null, 1), (4, 1, 0)`,
      query: 'select id, flag as as_int, flag as as_small, flag as as_big, flag as as_bool, level from flags',
      pgColumns: 'id int primary key, as_int int, as_small smallint, as_big bigint, as_bool boolean, level int',
      sqliteColumns: 'id integer primary key, as_int integer, as_small integer, as_big integer, as_bool integer, level integer',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, 'id, as_int, as_small, as_big::int, as_bool, level')).toEqual([
        { id: 1, as_int: 1, as_small: 1, as_big: 1, as_bool: true, level: 5 },
        { id: 2, as_int: 0, as_small: 0, as_big: 0, as_bool: false, level: -1 },
        { id: 3, as_int: null, as_small: null, as_big: null, as_bool: null, level: 1 },
        { id: 4, as_int: 1, as_small: 1, as_big: 1, as_bool: true, level: 0 },
      ]);
      expect(await liteRows(planner)).toEqual([
        { id: 1, as_int: 1, as_small: 1, as_big: 1, as_bool: 1, level: 5 },
        { id: 2, as_int: 0, as_small: 0, as_big: 0, as_bool: 0, level: -1 },
        { id: 3, as_int: null, as_small: null, as_big: null, as_bool: null, level: 1 },
        { id: 4, as_int: 1, as_small: 1, as_big: 1, as_bool: 1, level: 0 },
      ]);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
  });

  it('delivers a BIT(n) into a PostgreSQL bit column as the same bits, and into an integer column as its number', async () => {
    const { h, run, rejected, pgRows } = await fourSyncs({
      ddl: `create table masks (id int primary key, b1 bit(1), b8 bit(8), b12 bit(12));
        insert into masks values (1, b'1', b'00000001', b'101'), (2, b'0', b'11111111', b'100000000000'), (3, null, null, null)`,
      query: 'select id, b1, b8, b8 as b8_varying, b8 as b8_int, b12 from masks',
      pgColumns: 'id int primary key, b1 bit, b8 bit(8), b8_varying bit varying(8), b8_int int, b12 bit(12)',
      sqliteColumns: 'id integer primary key, b1, b8, b8_varying, b8_int, b12',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, 'id, b1::text, b8::text, b8_varying::text, b8_int, b12::text')).toEqual([
        { id: 1, b1: '1', b8: '00000001', b8_varying: '1', b8_int: 1, b12: '000000000101' },
        { id: 2, b1: '0', b8: '11111111', b8_varying: '11111111', b8_int: 255, b12: '100000000000' },
        { id: 3, b1: null, b8: null, b8_varying: null, b8_int: null, b12: null },
      ]);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
  });

  it('delivers a BIT(64) beyond 2^53 into PostgreSQL bit columns as exactly its bits, and into numeric as its exact integer', async () => {
    const { h, run, rejected, pgRows, my } = await fourSyncs({
      ddl: `create table masks (id int primary key, b64 bit(64));
        insert into masks values (1, 0), (2, 9007199254740993), (3, 18446744073709551615), (4, 9223372036854775808), (5, 12345678901234567890),
          (6, 5), (7, null)`,
      query: 'select id, b64, b64 as b64_varying, b64 as b64_numeric, b64 as b64_text from masks',
      pgColumns: 'id int primary key, b64 bit(64), b64_varying bit varying(64), b64_numeric numeric(20), b64_text text',
      sqliteColumns: 'id integer primary key, b64, b64_varying, b64_numeric, b64_text',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    const bits = (n: bigint) => n.toString(2).padStart(64, '0');
    const values = [0n, 9007199254740993n, 18446744073709551615n, 9223372036854775808n, 12345678901234567890n, 5n];
    const expected = [
      ...values.map((n, i) => ({ id: i + 1, b64: bits(n), b64_varying: n.toString(2), b64_numeric: n.toString(), b64_text: n.toString() })),
      { id: 7, b64: null, b64_varying: null, b64_numeric: null, b64_text: null },
    ];
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, 'id, b64::text, b64_varying::text, b64_numeric::text, b64_text')).toEqual(expected);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });

    // Changed rows are merged into the table rather than copied straight in: the same bits.
    await my('update masks set b64 = 18446744073709551614 where id = 1; update masks set b64 = 9007199254740992 where id = 3');
    const changed = await run();
    await expectAllLanded(changed, rejected);
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, 'id, b64::text, b64_varying::text, b64_numeric::text')).toEqual(
        expect.arrayContaining([
          { id: 1, b64: bits(18446744073709551614n), b64_varying: (18446744073709551614n).toString(2), b64_numeric: '18446744073709551614' },
          { id: 3, b64: bits(9007199254740992n), b64_varying: (9007199254740992n).toString(2), b64_numeric: '9007199254740992' },
        ]),
      );
    }
  });

  it('delivers a BIT(64) into a bigint column as its integer, and refuses one above bigint\'s largest with a message naming the column and the fix', async () => {
    const { h, run, rejected, pgRows } = await fourSyncs({
      ddl: `create table masks (id int primary key, b64 bit(64));
        insert into masks values (1, 9007199254740993), (2, 9223372036854775807), (3, 9223372036854775808), (4, 18446744073709551615), (5, 7)`,
      query: 'select id, b64 from masks',
      pgColumns: 'id int primary key, b64 bigint',
      sqliteColumns: 'id integer primary key, b64',
    });
    await using _ = h;
    const runs = await run();
    const refusal = (value: string) =>
      `column "b64" is bigint, which holds integers from -9223372036854775808 to 9223372036854775807: ${value} does not fit — change the column's type to numeric(20) (or numeric) to hold it`;
    for (const planner of PLANNERS) {
      expect((await rejected(runs))[`${planner}-pg`]).toEqual([`[3]: ${refusal('9223372036854775808')}`, `[4]: ${refusal('18446744073709551615')}`]);
      expect(await pgRows(planner, 'id, b64::text')).toEqual([
        { id: 1, b64: '9007199254740993' },
        { id: 2, b64: '9223372036854775807' },
        { id: 5, b64: '7' },
      ]);
    }
  });

  it('delivers a SET into a PostgreSQL text[] column as the list of its members, and into text as the text it reads', async () => {
    const { h, run, rejected, pgRows, liteRows, my } = await fourSyncs({
      ddl: `create table tagged (id int primary key, colours set('red','green','blue','sky blue','"quoted"','back\\\\slash','NULL','{x}'));
        insert into tagged values (1, 'red,blue'), (2, ''), (3, null), (4, 'sky blue,"quoted",back\\\\slash'), (5, 'NULL'), (6, 'green,{x}')`,
      query: 'select id, colours, colours as colour_list, colours as colour_names from tagged',
      pgColumns: 'id int primary key, colours text, colour_list text[], colour_names varchar(20)[]',
      sqliteColumns: 'id integer primary key, colours, colour_list, colour_names',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    const lists = [['red', 'blue'], [], null, ['sky blue', '"quoted"', 'back\\slash'], ['NULL'], ['green', '{x}']];
    const texts = ['red,blue', '', null, 'sky blue,"quoted",back\\slash', 'NULL', 'green,{x}'];
    for (const planner of PLANNERS) {
      expect(await pgRows(planner)).toEqual(lists.map((list, i) => ({ id: i + 1, colours: texts[i], colour_list: list, colour_names: list })));
      expect(await liteRows(planner, 'id, colours, colour_list')).toEqual(texts.map((text, i) => ({ id: i + 1, colours: text, colour_list: text })));
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });

    // Changed rows are merged into the table rather than copied straight in: the same lists.
    await my(`update tagged set colours = 'green,blue' where id = 2; update tagged set colours = '' where id = 1`);
    const changed = await run();
    await expectAllLanded(changed, rejected);
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, 'id, colours, colour_list')).toEqual(
        expect.arrayContaining([
          { id: 1, colours: '', colour_list: [] },
          { id: 2, colours: 'green,blue', colour_list: ['green', 'blue'] },
        ]),
      );
    }
  });

  it('refuses a SET whose members its array column cannot hold, row by row, naming the column', async () => {
    const { h, run, rejected, pgRows } = await fourSyncs({
      ddl: `create table tagged (id int primary key, codes set('1','2','x'));
        insert into tagged values (1, '1,2'), (2, '2,x'), (3, '')`,
      query: 'select id, codes from tagged',
      pgColumns: 'id int primary key, codes int[]',
      sqliteColumns: 'id integer primary key, codes',
    });
    await using _ = h;
    const runs = await run();
    for (const planner of PLANNERS) {
      expect((await rejected(runs))[`${planner}-pg`]).toEqual(['[2]: column "codes": invalid input syntax for type integer: "x"']);
      expect(await pgRows(planner)).toEqual([
        { id: 1, codes: [1, 2] },
        { id: 3, codes: [] },
      ]);
    }
  });

  it('delivers JSON as the same compact text on both planners (MariaDB keeps a JSON column as text)', async () => {
    const { h, run, rejected, liteRows, my } = await fourSyncs({
      ddl: `create table docs (id int primary key, doc json);
        insert into docs values (1, '{"b": [1, 2.50, "x"], "a": null, "u": "é😀"}'), (2, '[ ]'), (3, null)`,
      // JSON made by functions too, which MariaDB types otherwise (varchar, longblob).
      query: `select id, doc, json_object('id', id) as made, json_compact(doc) as compacted from docs`,
      pgColumns: 'id int primary key, doc jsonb, made jsonb, compacted jsonb',
      sqliteColumns: 'id integer primary key, doc text, made text, compacted text',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    const compact = [
      { id: 1, doc: '{"b":[1,2.5,"x"],"a":null,"u":"é😀"}' },
      { id: 2, doc: '[]' },
      { id: 3, doc: null },
    ];
    for (const planner of PLANNERS) expect(await liteRows(planner, 'id, doc')).toEqual(compact);
    for (const planner of PLANNERS) expect(await liteRows(planner, 'made, compacted')).toEqual(compact.map((row) => ({ made: `{"id":${row.id}}`, compacted: row.doc })));
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
    await my(`update docs set doc = '{"a":  1}' where id = 2`);
    const changed = await run();
    for (const planner of PLANNERS) expect(changed[`${planner}-lite`]?.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    for (const planner of PLANNERS) expect(await liteRows(planner, 'doc, compacted')).toEqual([
      { doc: compact[0]?.doc, compacted: compact[0]?.doc },
      { doc: '{"a":1}', compacted: '{"a":1}' },
      { doc: null, compacted: null },
    ]);
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
  });

  it('delivers the column types tables have, each as the source reads it, the same on both planners, and plans nothing for a run with no change', async () => {
    const { h, run, rejected, pgRows, liteRows } = await fourSyncs({
      ddl: `create table things (id bigint unsigned primary key, amount decimal(38,10), b1 bit(1), flag tinyint(1), yr year, tm time(3), doc json,
          size enum('small','large'), colours set('red','green','blue'), bin binary(4), vb varbinary(8), bl blob, emoji varchar(50),
          doubled bigint as (id * 2) virtual, label varchar(80) as (concat(size, ':', emoji)) stored);
        insert into things (id, amount, b1, flag, yr, tm, doc, size, colours, bin, vb, bl, emoji) values
          (18446744073709551615, 1234567890123456789012345678.0123456789, b'1', 1, 2024, '10:11:12.345', '{"b": [1, 2.50], "a": "é😀"}',
           'large', 'red,blue', x'00ff10', x'', x'deadbeef', 'héllo 😀 wörld'),
          (9007199254740993, -0.0000000001, b'0', 0, 1901, '-00:00:01', '[]', 'small', '', x'00000000', x'01', '', ''),
          (3, 0, null, null, null, null, null, null, null, null, null, null, null);
        create view thing_view as select id, amount, b1, flag, yr, tm, doc, size, colours, bin, vb, bl, emoji, if(id < 10, doubled, null) as doubled, label from things`,
      query: 'select * from thing_view',
      pgColumns: `id numeric(20) primary key, amount numeric(38,10), b1 boolean, flag boolean, yr int, tm text, doc jsonb, size text, colours text,
        bin bytea, vb bytea, bl bytea, emoji text, doubled bigint, label text`,
      sqliteColumns: 'id primary key, amount, b1, flag, yr, tm, doc, size, colours, bin blob, vb blob, bl blob, emoji, doubled, label',
    });
    await using _ = h;
    await expectAllLanded(await run(), rejected);
    const binaries = "encode(bin, 'hex') as bin, encode(vb, 'hex') as vb, encode(bl, 'hex') as bl";
    for (const planner of PLANNERS) {
      expect(await pgRows(planner, `id::text, amount::text, b1, flag, yr, tm, doc::text, size, colours, ${binaries}, emoji, doubled, label`)).toEqual([
        {
          id: '18446744073709551615', amount: '1234567890123456789012345678.0123456789', b1: true, flag: true, yr: 2024, tm: '10:11:12.345',
          doc: '{"a": "é😀", "b": [1, 2.5]}', size: 'large', colours: 'red,blue', bin: '00ff1000', vb: '', bl: 'deadbeef', emoji: 'héllo 😀 wörld',
          doubled: null, label: 'large:héllo 😀 wörld',
        },
        { id: '3', amount: '0.0000000000', b1: null, flag: null, yr: null, tm: null, doc: null, size: null, colours: null, bin: null, vb: null, bl: null, emoji: null, doubled: '6', label: null },
        {
          id: '9007199254740993', amount: '-0.0000000001', b1: false, flag: false, yr: 1901, tm: '-00:00:01.000', doc: '[]', size: 'small', colours: '',
          bin: '00000000', vb: '01', bl: '', emoji: '', doubled: null, label: 'small:',
        },
      ]);
      expect(await liteRows(planner, 'id, amount, b1, flag, yr, tm, doc, hex(bin) as bin, typeof(vb) as vb, hex(bl) as bl, emoji, doubled')).toEqual([
        { id: 3, amount: '0.0000000000', b1: null, flag: null, yr: null, tm: null, doc: null, bin: '', vb: 'null', bl: '', emoji: null, doubled: 6 },
        { id: '18446744073709551615', amount: '1234567890123456789012345678.0123456789', b1: 1, flag: 1, yr: 2024, tm: '10:11:12.345', doc: '{"b":[1,2.5],"a":"é😀"}', bin: '00FF1000', vb: 'blob', bl: 'DEADBEEF', emoji: 'héllo 😀 wörld', doubled: null },
        { id: '9007199254740993', amount: '-0.0000000001', b1: 0, flag: 0, yr: 1901, tm: '-00:00:01.000', doc: '[]', bin: '00000000', vb: 'blob', bl: '', emoji: '', doubled: null },
      ]);
    }
    expect(planned(await run())).toEqual({ 'store-pg': NONE, 'store-lite': NONE, 'warehouse-pg': NONE, 'warehouse-lite': NONE });
  });
});

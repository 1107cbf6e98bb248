/**
 * Values of real-world column types, synced end to end between database kinds: each lands exactly,
 * or its row alone is rejected with a message naming the column — on a first run (bulk copy or
 * load into an empty table), on later runs (merge, upsert, update), and on the row-by-row replay.
 */
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import type { ConnectionDef, ModelDef, SyncDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

/** A DuckDB file at `path` made by `ddl`. */
async function duckdbFile(path: string, ddl: string): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    await connection.run(ddl);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/**
 * A harness over `sources` and `destinations` (a SQLite destination `lite` at lite.db in `dir`
 * always among them), one mirror sync per entry of `syncs` (`slug: [source, query, destination, object]`).
 * `run(slug)` runs a sync and answers its status and its rejected rows as `key: reason`, sorted.
 */
async function harness(dir: string, sources: ConnectionDef[], destinations: ConnectionDef[], syncs: Record<string, [string, string, string, string]>) {
  const models: ModelDef[] = Object.entries(syncs).map(([slug, [from, query]]) => model(slug, from, query));
  const syncDefs: SyncDef[] = Object.entries(syncs).map(([slug, [, , to, object]]) =>
    sync(slug, { model: slug, destination: to, object, mode: 'mirror', maxDeletePercent: null }),
  );
  const h = await startHarness({
    dir,
    definition: workspace({ sources, destinations: [...destinations, source('lite', { path: 'lite.db' })], models, syncs: syncDefs }),
  });
  const run = async (slug: string) => {
    const { run } = await h.app.runs.triggerSync(slug);
    const done = await h.app.runs.waitForSyncRun(run.id);
    const rejected = (await h.app.store.listRejectedRows(done.id, 20, 0)).map((r) => `${r.key}: ${r.reason}`).sort();
    return { status: done.status, error: done.error, rejected };
  };
  return { h, run };
}

const LANDED = { status: 'success', error: null, rejected: [] };

describe('value fidelity across database kinds', () => {
  it('keeps JSON numbers a double cannot hold (ids beyond 2^53, long decimals) as written, from PostgreSQL, MySQL and DuckDB', async () => {
    const pg = await createTestDatabase('fidelity_json');
    const my = await createTestMysqlDatabase('fidelity_json');
    const dir = tempDir();
    const doc = '{"id": 12345678901234567890, "price": 0.1000000000000000055511151231257827, "name": "é 😀", "tags": [1e400]}';
    await sql(pg, `create table docs (id int primary key, doc json); insert into docs values (1, '${doc}'), (2, '{"id": 7, "b": 1.50}');
      create table landed (id int primary key, doc jsonb); create table from_my (id int primary key, doc jsonb); create table from_duck (id int primary key, doc jsonb)`);
    await mysqlSql(my, `create table docs (id int primary key, doc json); insert into docs values (1, '{"id": 12345678901234567890, "n": -9223372036854775809}');
      create table landed (id int primary key, doc json)`);
    await duckdbFile(join(dir, 'w.duckdb'), `create table docs as select 1 as id, '${doc}'::json as doc`);
    sqlite(join(dir, 'lite.db'), 'create table landed (id integer primary key, doc text)');
    const { h, run } = await harness(
      dir,
      [source('pg', { type: 'postgres', settings: { url: pg } }), source('my', { type: 'mysql', settings: { url: my } }), source('duck', { type: 'duckdb', settings: { path: 'w.duckdb' } })],
      [source('pg-db', { type: 'postgres', url: pg }), source('my-db', { type: 'mysql', url: my })],
      {
        'pg-pg': ['pg', 'select * from docs', 'pg-db', 'landed'],
        'pg-my': ['pg', 'select * from docs where id = 1', 'my-db', 'landed'],
        'pg-lite': ['pg', 'select * from docs', 'lite', 'landed'],
        'my-pg': ['my', 'select * from docs', 'pg-db', 'from_my'],
        'duck-pg': ['duck', 'select * from docs', 'pg-db', 'from_duck'],
      },
    );
    await using _ = h;
    for (const slug of ['pg-pg', 'pg-my', 'pg-lite', 'my-pg', 'duck-pg']) expect({ slug, ...(await run(slug)) }).toEqual({ slug, ...LANDED });
    const compact = '{"id":12345678901234567890,"price":0.1000000000000000055511151231257827,"name":"é 😀","tags":[1e400]}';
    expect(sqliteRows(join(dir, 'lite.db'), 'select id, doc from landed order by id')).toEqual([
      { id: 1, doc: compact },
      // Text a double holds keeps its compact form.
      { id: 2, doc: '{"id":7,"b":1.5}' },
    ]);
    const fields = "doc->>'id' as id, doc->>'price' as price, doc->>'name' as name";
    expect(await sql(pg, `select ${fields} from landed where id = 1`)).toEqual([{ id: '12345678901234567890', price: '0.1000000000000000055511151231257827', name: 'é 😀' }]);
    expect(await sql(pg, `select ${fields} from from_duck`)).toEqual([{ id: '12345678901234567890', price: '0.1000000000000000055511151231257827', name: 'é 😀' }]);
    expect(await sql(pg, "select doc->>'id' as id, doc->>'n' as n from from_my")).toEqual([{ id: '12345678901234567890', n: '-9223372036854775809' }]);
    expect(await mysqlSql(my, "select json_unquote(json_extract(doc, '$.id')) as id from landed")).toEqual([{ id: '12345678901234567890' }]);
    // The text reads the same every time: a run with no change plans nothing.
    for (const slug of ['pg-pg', 'my-pg', 'duck-pg']) {
      const { run: again } = await h.app.runs.triggerSync(slug);
      expect((await h.app.runs.waitForSyncRun(again.id)).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
    }
  });

  it('keeps the items of a PostgreSQL numeric[] exact (digits beyond a double, trailing zeros) into MySQL JSON and SQLite, loaded and merged', async () => {
    const pg = await createTestDatabase('fidelity_numeric_array');
    const my = await createTestMysqlDatabase('fidelity_numeric_array');
    const dir = tempDir();
    await sql(pg, `create table amounts (id int primary key, parts numeric[]);
      insert into amounts values (1, '{1.10,12345678901234567890.5,NULL}'), (2, '{}'), (3, null)`);
    await mysqlSql(my, 'create table amounts (id int primary key, parts json)');
    sqlite(join(dir, 'lite.db'), 'create table amounts (id integer primary key, parts text)');
    const { h, run } = await harness(dir, [source('pg', { type: 'postgres', settings: { url: pg } })], [source('my', { type: 'mysql', url: my })], {
      'to-my': ['pg', 'select * from amounts', 'my', 'amounts'],
      'to-lite': ['pg', 'select * from amounts', 'lite', 'amounts'],
    });
    await using _ = h;
    const expected = '["1.10","12345678901234567890.5",null]';
    for (const round of [1, 2]) {
      for (const slug of ['to-my', 'to-lite']) expect({ slug, ...(await run(slug)) }).toEqual({ slug, ...LANDED });
      const items = "json_unquote(json_extract(parts, '$[0]')) as a, json_unquote(json_extract(parts, '$[1]')) as b, json_length(parts) as n";
      expect(await mysqlSql(my, `select id, ${items} from amounts order by id`)).toEqual([
        { id: 1, a: '1.10', b: '12345678901234567890.5', n: round === 1 ? 3 : 4 },
        { id: 2, a: null, b: null, n: 0 },
        { id: 3, a: null, b: null, n: null },
      ]);
      expect(sqliteRows(join(dir, 'lite.db'), 'select parts from amounts where id = 1')).toEqual([{ parts: round === 1 ? expected : expected.replace(']', ',"0.00"]') }]);
      // The next round's runs update the row in place (merged, not loaded).
      await sql(pg, "update amounts set parts = parts || '{0.00}'::numeric[] where id = 1");
    }
  });

  it('refuses alone a number SQLite would store as another double in a column of a number affinity (decimal, integer, real), naming the column; text columns keep it', async () => {
    const pg = await createTestDatabase('fidelity_sqlite_numbers');
    const my = await createTestMysqlDatabase('fidelity_sqlite_numbers');
    const dir = tempDir();
    await sql(pg, `create table amounts (id int primary key, amount numeric(40,10), big numeric(20), ratio numeric);
      insert into amounts values (1, 1234567890123456789012345678.0123456789, 1, 0.5), (2, 12.30, 18446744073709551615, 0.5),
        (3, -0.0000000001, 9223372036854775807, 9007199254740993), (4, 1, 1, 1)`);
    await mysqlSql(my, `create table ids (id bigint unsigned primary key, n bigint unsigned);
      insert into ids values (18446744073709551615, 1), (9007199254740993, 18446744073709551614), (1, 9223372036854775807)`);
    sqlite(join(dir, 'lite.db'), `create table amounts (id integer primary key, amount decimal(40,10), big integer, ratio real, exact text);
      create table ids (id primary key, n int)`);
    const { h, run } = await harness(dir, [source('pg', { type: 'postgres', settings: { url: pg } }), source('my', { type: 'mysql', settings: { url: my } })], [], {
      'pg-lite': ['pg', 'select *, amount::text as exact from amounts', 'lite', 'amounts'],
      'my-lite': ['my', 'select * from ids', 'lite', 'ids'],
    });
    await using _ = h;
    const lost = (column: string, type: string, value: string, stored: string) =>
      `column "${column}" is ${type} in SQLite, whose number affinity stores ${value} as the double ${stored} — declare the column TEXT (or without a type) to keep the value exactly`;
    expect(await run('pg-lite')).toEqual({
      status: 'warning',
      error: null,
      rejected: [
        `[1]: ${lost('amount', 'decimal(40,10)', '1234567890123456789012345678.0123456789', '1.2345678901234569e+27')}`,
        `[2]: ${lost('big', 'INTEGER', '18446744073709551615', '18446744073709552000')}`,
        `[3]: ${lost('ratio', 'REAL', '9007199254740993', '9007199254740992')}`,
      ],
    });
    const lite = (query: string) => sqliteRows(join(dir, 'lite.db'), query);
    expect(lite('select id, amount, big, ratio, exact from amounts order by id')).toEqual([{ id: 4, amount: 1, big: 1, ratio: 1, exact: '1.0000000000' }]);
    // A later run: a fixed row lands, a row changed to a number the column cannot hold is refused and kept as it was.
    await sql(pg, 'update amounts set ratio = 0.25 where id = 3; update amounts set big = 99999999999999999999 where id = 4');
    expect((await run('pg-lite')).rejected).toEqual([
      `[1]: ${lost('amount', 'decimal(40,10)', '1234567890123456789012345678.0123456789', '1.2345678901234569e+27')}`,
      `[2]: ${lost('big', 'INTEGER', '18446744073709551615', '18446744073709552000')}`,
      `[4]: ${lost('big', 'INTEGER', '99999999999999999999', '100000000000000000000')}`,
    ]);
    expect(lite("select id, amount, big || '' as big, ratio from amounts order by id")).toEqual([
      { id: 3, amount: -1e-10, big: '9223372036854775807', ratio: 0.25 },
      { id: 4, amount: 1, big: '1', ratio: 1 },
    ]);
    // BIGINT UNSIGNED from MySQL: a key column without a type keeps any integer as text; an INT column refuses one beyond 64 bits signed.
    expect((await run('my-lite')).rejected).toEqual([`["9007199254740993"]: ${lost('n', 'INT', '18446744073709551614', '18446744073709552000')}`]);
    expect(lite("select id, n || '' as n from ids order by n")).toEqual([
      { id: '18446744073709551615', n: '1' },
      { id: 1, n: '9223372036854775807' },
    ]);
  });

  it('writes integers into SQLite as integers, not as doubles: a TEXT column holds 42, not 42.0, from PostgreSQL, MySQL and DuckDB', async () => {
    const pg = await createTestDatabase('fidelity_sqlite_integers');
    const my = await createTestMysqlDatabase('fidelity_sqlite_integers');
    const dir = tempDir();
    const query = 'select id, n, n as label, flag, ratio from things';
    await sql(pg, 'create table things (id int primary key, n bigint, flag boolean, ratio float8); insert into things values (1, 42, true, 2.5), (2, -7, false, 3)');
    await mysqlSql(my, 'create table things (id int primary key, n bigint, flag tinyint(1), ratio double); insert into things values (1, 42, 1, 2.5), (2, -7, 0, 3)');
    await duckdbFile(join(dir, 'w.duckdb'), 'create table things as select * from (values (1, 42::bigint, true, 2.5::double), (2, -7, false, 3)) t(id, n, flag, ratio)');
    const columns = 'id primary key, n, label text, flag, ratio';
    sqlite(join(dir, 'lite.db'), `create table from_pg (${columns}); create table from_my (${columns}); create table from_duck (${columns})`);
    const { h, run } = await harness(
      dir,
      [source('pg', { type: 'postgres', settings: { url: pg } }), source('my', { type: 'mysql', settings: { url: my } }), source('duck', { type: 'duckdb', settings: { path: 'w.duckdb' } })],
      [],
      { 'pg-lite': ['pg', query, 'lite', 'from_pg'], 'my-lite': ['my', query, 'lite', 'from_my'], 'duck-lite': ['duck', query, 'lite', 'from_duck'] },
    );
    await using _ = h;
    for (const [slug, table] of [['pg-lite', 'from_pg'], ['my-lite', 'from_my'], ['duck-lite', 'from_duck']] as const) {
      // A first run inserts; a later one upserts the changed row.
      expect({ slug, ...(await run(slug)) }).toEqual({ slug, ...LANDED });
      await Promise.all([sql(pg, 'update things set n = 43 where id = 2'), mysqlSql(my, 'update things set n = 43 where id = 2')]);
      expect({ slug, ...(await run(slug)) }).toEqual({ slug, ...LANDED });
      expect({ table, rows: sqliteRows(join(dir, 'lite.db'), `select typeof(id) as id, typeof(n) as n, label, flag, typeof(flag) as flag_type, ratio, typeof(ratio) as ratio_type from ${table} order by id`) }).toEqual({
        table,
        rows: [
          { id: 'integer', n: 'integer', label: '42', flag: 1, flag_type: 'integer', ratio: 2.5, ratio_type: 'real' },
          { id: 'integer', n: 'integer', label: table === 'from_duck' ? '-7' : '43', flag: 0, flag_type: 'integer', ratio: 3, ratio_type: 'integer' },
        ],
      });
    }
  });

  it('refuses alone a number a MySQL DECIMAL(p,s) or integer column would round (MySQL rounds it with a note, or without a word), loaded and merged, from PostgreSQL and SQLite', async () => {
    const pg = await createTestDatabase('fidelity_mysql_rounding');
    const my = await createTestMysqlDatabase('fidelity_mysql_rounding');
    const dir = tempDir();
    await sql(pg, `create table prices (id int primary key, price numeric, qty numeric);
      insert into prices values (1, 1.2345, 1), (2, 1.2300, 2), (3, 5, 12.5), (4, 0.10, 3.000)`);
    sqlite(join(dir, 'w.db'), 'create table prices (id integer primary key, price real, qty real); insert into prices values (1, 0.125, 1), (2, 0.5, 2.5), (3, 1e-7, 3)');
    await mysqlSql(my, 'create table from_pg (id int primary key, price decimal(10,2), qty int); create table from_lite (id int primary key, price decimal(10,2), qty int)');
    const { h, run } = await harness(dir, [source('pg', { type: 'postgres', settings: { url: pg } }), source('w', { path: 'w.db' })], [source('my', { type: 'mysql', url: my })], {
      'pg-my': ['pg', 'select * from prices', 'my', 'from_pg'],
      'lite-my': ['w', 'select * from prices', 'my', 'from_lite'],
    });
    await using _ = h;
    const scale = (value: string, wider: string) => `column "price" is decimal(10,2), which holds 2 decimal places: ${value} would be rounded — change the column's type to ${wider} to hold it`;
    // MySQL 8 prints an int without its display width.
    const [{ intType }] = await mysqlSql<{ intType: string }>(my, "select column_type as intType from information_schema.columns where table_schema = database() and column_name = 'qty' limit 1") as [{ intType: string }];
    const integer = (value: string, wider: string) => `column "qty" is ${intType}, which holds integers: ${value} would be rounded — change the column's type to ${wider} (or double) to hold it`;
    expect(await run('pg-my')).toEqual({ status: 'warning', error: null, rejected: [`[1]: ${scale('1.2345', 'decimal(12, 4)')}`, `[3]: ${integer('12.5', 'decimal(21, 1)')}`] });
    expect(await run('lite-my')).toEqual({ status: 'warning', error: null, rejected: [`[1]: ${scale('0.125', 'decimal(11, 3)')}`, `[2]: ${integer('2.5', 'decimal(21, 1)')}`, `[3]: ${scale('1e-7', 'decimal(15, 7)')}`] });
    expect(await mysqlSql(my, 'select id, price, qty from from_pg order by id')).toEqual([{ id: 2, price: '1.23', qty: 2 }, { id: 4, price: '0.10', qty: 3 }]);
    // A later run merges: a row changed to a value the column would round is refused, and keeps its value.
    await sql(pg, 'update prices set price = 1.23 where id = 1; update prices set price = 9.999 where id = 2');
    expect(await run('pg-my')).toEqual({ status: 'warning', error: null, rejected: [`[2]: ${scale('9.999', 'decimal(11, 3)')}`, `[3]: ${integer('12.5', 'decimal(21, 1)')}`] });
    expect(await mysqlSql(my, 'select id, price, qty from from_pg order by id')).toEqual([{ id: 1, price: '1.23', qty: 1 }, { id: 2, price: '1.23', qty: 2 }, { id: 4, price: '0.10', qty: 3 }]);
  });
});

/**
 * A run with no change in the model plans nothing, whatever the column types: each source reads a
 * table of many types (edge values included) twice, with either planner, and the second run plans
 * no row; the destination holds the values the source reads.
 */
import { describe, expect, it } from 'vitest';
import { PostgresSource } from '../../src/connectors/index.js';
import type { Source, Value } from '../../src/core/ports.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const NONE = { addedCount: 0, changedCount: 0, removedCount: 0 };

type Planner = 'store' | 'warehouse';

async function readAll(source: Source, query: string): Promise<Value[][]> {
  const rows: Value[][] = [];
  try {
    for await (const batch of source.read(query, { batchSize: 100 })) rows.push(...batch.rows);
  } finally {
    await source.close();
  }
  return rows;
}

/**
 * Syncs `query` of a source into a SQLite table of untyped columns (which keeps each value as it
 * comes), then again after each of `changes` (by default once, with no change); answers the runs
 * and the destination's rows, in key order.
 */
async function syncRuns(
  connection: { type: string; settings: Record<string, unknown> },
  query: string,
  columns: string[],
  changes: Array<() => Promise<unknown>> = [async () => undefined],
) {
  const dir = tempDir();
  sqlite(`${dir}/crm.db`, `create table typed (${columns.map((c) => `"${c}"`).join(', ')}, primary key (id))`);
  const h = await startHarness({
    dir,
    definition: workspace({
      sources: [source('warehouse', connection)],
      destinations: [source('crm', { path: 'crm.db' })],
      models: [model('typed', 'warehouse', query)],
      syncs: [sync('typed-to-crm', { model: 'typed', destination: 'crm', object: 'typed', mode: 'mirror' })],
    }),
  });
  await using _ = h;
  const run = async () => {
    const { run } = await h.app.runs.triggerSync('typed-to-crm', {});
    return h.app.runs.waitForSyncRun(run.id);
  };
  const runs = [await run()];
  for (const change of changes) {
    await change();
    runs.push(await run());
  }
  const delivered = sqliteRows<Record<string, unknown>>(`${dir}/crm.db`, 'select * from typed order by id').map((row) => columns.map((c) => row[c] ?? null));
  return { runs, delivered };
}

/** A value as the SQLite destination stores it: booleans as 1/0. */
const asStored = (value: Value) => (typeof value === 'boolean' ? (value ? 1 : 0) : value);

// ---------------------------------------------------------------------------------------------
// PostgreSQL

const PG_COLUMNS: Array<[name: string, type: string, values: string[]]> = [
  ['i2', 'smallint', ['-32768', '32767']],
  ['i8', 'bigint', ['9223372036854775807', '-9223372036854775808']],
  ['n', 'numeric', ['1.10', "'NaN'", '123456789012345678901234567890.000000000001']],
  ['n2', 'numeric(12,2)', ['0', '-0.5']],
  ['f4', 'real', ['0.1', "'NaN'", "'-Infinity'"]],
  ['f8', 'double precision', ['0.1::float8 + 0.2::float8', "'-0'", '5e-324']],
  ['m', 'money', ['12.34', '-0.01']],
  ['c', 'char(5)', ["'ab'", "''"]],
  ['t', 'text', [`E'tab\\there\\nline \\\\ ü'`, "''"]],
  ['b', 'bytea', ["'\\x00ff'", "''"]],
  ['d', 'date', ["'infinity'", "'4713-01-01 BC'"]],
  ['tm', 'time', ["'24:00:00'", "'00:00:00.000001'"]],
  ['ttz', 'time with time zone', ["'03:04:05+05:30'", "'23:59:59-12'"]],
  ['ts', 'timestamp', ["'2024-01-02 03:04:05.123456'", "'-infinity'"]],
  ['ts3', 'timestamp(3)', ["'0044-03-15 12:00:00 BC'", "'294276-12-31 23:59:59'"]],
  ['tz', 'timestamptz', ["'2024-07-01 12:00:00+02'", "'1900-01-01 00:00:00+00'"]],
  ['iv', 'interval', ["'1 year 2 mons -3 days 04:05:06.7'", "'-178000000 years'"]],
  ['j', 'json', [`'{"b": 1, "a": [1, 2.50], "b": 2}'`, "'null'"]],
  ['jb', 'jsonb', [`'{"b": 1, "a": {"y": 1e3, "x": -0}}'`, `'"text"'`]],
  ['u', 'uuid', ["'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "'00000000-0000-0000-0000-000000000000'"]],
  ['ip', 'inet', ["'192.168.0.1/24'", "'::ffff:1.2.3.4'"]],
  ['cidr', 'cidr', ["'10.0.0.0/8'", "'2001:db8::/32'"]],
  ['mac', 'macaddr', ["'08:00:2b:01:02:03'", "'ffffffffffff'"]],
  ['bit', 'bit(4)', ["B'1010'", "B'0000'"]],
  ['vb', 'varbit', ["B'1'", "B''"]],
  ['ia', 'integer[]', ["'{1,NULL,3}'", "'{{1,2},{3,4}}'"]],
  ['ta', 'text[]', [`'{"a,b","c\\"d",NULL,"NULL"}'`, "'{}'"]],
  ['tsa', 'timestamptz[]', [`'{"2024-01-02 03:04:05+01",infinity}'`, "'{}'"]],
  ['ja', 'jsonb[]', [`array['{"b":1,"a":2}']::jsonb[]`, "'{}'"]],
  ['mood', 'mood', ["'happy'", "'sad'"]],
  ['r', 'int4range', ["'[1,10)'", "'empty'"]],
  ['tr', 'tstzrange', ["'[2024-01-01 00:00+00,2024-02-01 00:00+00)'", "'(,)'"]],
  ['nr', 'numrange', ["'[1.50,2.5]'", "'(,)'"]],
  ['pt', 'point', ["'(1.5,-2)'", "'(0,0)'"]],
  ['x', 'xml', [`'<a b="1">x</a>'`, "''"]],
  ['tv', 'tsvector', [`'a fat cat'`, "''"]],
  ['oi', 'oid', ['4294967295', '0']],
];

describe.each(['store', 'warehouse'] as const)('PostgreSQL source (planner: %s)', (planner: Planner) => {
  it('plans nothing on a second run with no change, for every type; the destination holds what the source reads', async () => {
    const url = await createTestDatabase('lockstep_types');
    const rows = [0, 1].map((r) => `(${r + 1}, ${PG_COLUMNS.map(([, type, values]) => `(${values[r] as string})::${type}`).join(', ')})`);
    await sql(
      url,
      `create type mood as enum ('sad', 'happy');
       create table typed (id integer primary key, ${PG_COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')});
       insert into typed values ${rows.join(', ')}, (3${', null'.repeat(PG_COLUMNS.length)})`,
    );
    const query = 'select * from typed';
    const columns = ['id', ...PG_COLUMNS.map(([name]) => name)];
    const { runs, delivered } = await syncRuns({ type: 'postgres', settings: { url, planner } }, query, columns);
    expect(runs.map((r) => [r.status, r.error])).toEqual([['success', null], ['success', null]]);
    expect(runs.map((r) => r.plannedRows)).toEqual([{ ...NONE, addedCount: 3 }, NONE]);
    const read = await readAll(new PostgresSource({ url }), `${query} order by id`);
    expect(delivered).toEqual(read.map((row) => row.map(asStored)));
  });

  it('reads the same on a session of other settings (time zone, interval style, float digits, bytea output): nothing planned', async () => {
    const url = await createTestDatabase('lockstep_types');
    await sql(
      url,
      `create table typed (id integer primary key, tz timestamptz, tr tstzrange, iv interval, f8 double precision, b bytea);
       insert into typed values (1, '2024-07-01 12:00:00+02', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', '1 year 2 mons -3 days 04:05:06.7', 0.1::float8 + 0.2::float8, '\\x00ff')`,
    );
    const db = new URL(url).pathname.slice(1);
    // As a database's or role's own settings (or a connection pooler's session) may have them.
    const settings = (timezone: string, intervalstyle: string, digits: number, bytea: string) =>
      sql(url, `alter database "${db}" set timezone to '${timezone}'; alter database "${db}" set intervalstyle to '${intervalstyle}';
                alter database "${db}" set extra_float_digits to ${digits}; alter database "${db}" set bytea_output to '${bytea}'`);
    await settings('America/New_York', 'sql_standard', 0, 'escape');
    const columns = ['id', 'tz', 'tr', 'iv', 'f8', 'b'];
    const { runs, delivered } = await syncRuns({ type: 'postgres', settings: { url, planner } }, 'select * from typed', columns, [
      () => settings('Asia/Kolkata', 'iso_8601', 2, 'hex'),
    ]);
    expect(runs[1]?.plannedRows).toEqual(NONE);
    expect(delivered).toEqual([[1, '2024-07-01T10:00:00.000Z', '["2024-01-01 00:00:00+00","2024-02-01 00:00:00+00")', '1 year 2 mons -3 days +04:05:06.7', 0.30000000000000004, 'AP8=']]);
  });

  it('compares columns of domains, types without an equality of their own (a domain or composite over json, jsonpath), and types whose equality is looser than their value', async () => {
    const url = await createTestDatabase('lockstep_types');
    await sql(
      url,
      `create domain doc as json;
       create domain email as varchar(200) check (value like '%@%');
       create type pair as (n integer, j json);
       create table typed (id integer primary key, e email, d doc, ds doc[], p pair, jp jsonpath, iv interval, n numeric, n2 numeric(8,2));
       insert into typed values (1, 'a@b.c', '{"b": 1, "a": 2}', array['[1]'::doc], row(1, '{"x": 1}'), '$.a[*] ? (@ > 1)', '1 day', 1.0, 1.5)`,
    );
    const columns = ['id', 'e', 'd', 'ds', 'p', 'jp', 'iv', 'n', 'n2'];
    const { runs, delivered } = await syncRuns({ type: 'postgres', settings: { url, planner } }, 'select * from typed', columns, [
      async () => undefined,
      async () => undefined,
      // The same values by PostgreSQL's equality, others as read: the destination must follow.
      () => sql(url, `update typed set iv = '24 hours', n = 1.00, n2 = 1.50`),
    ]);
    expect(runs.map((r) => r.error)).toEqual([null, null, null, null]);
    expect(runs.map((r) => r.plannedRows)).toEqual([{ ...NONE, addedCount: 1 }, NONE, NONE, { ...NONE, changedCount: 1 }]);
    expect(delivered).toEqual([[1, 'a@b.c', '{"b":1,"a":2}', '{[1]}', '(1,"{""x"": 1}")', '$."a"[*]?(@ > 1)', '24:00:00', '1.00', '1.50']]);
  });
});

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB

const MYSQL_COLUMNS: Array<[name: string, type: string, values: string[]]> = [
  ['i8', 'bigint', ['9223372036854775807', '-9223372036854775808']],
  ['u8', 'bigint unsigned', ['18446744073709551615', '0']],
  ['dc', 'decimal(30,10)', ['12345678901234567890.0000000001', '-0.5']],
  ['f', 'float', ['0.1', '-3.4e38']],
  ['d', 'double', ['0.1 + 0.2', '5e-324']],
  ['bo', 'boolean', ['true', '2']],
  ['b1', 'bit(1)', ["b'1'", "b'0'"]],
  ['b9', 'bit(9)', ["b'100000001'", "b'0'"]],
  ['y', 'year', ['1901', '2155']],
  ['tm', 'time(6)', ["'838:59:59.000000'", "'-12:00:00.5'"]],
  ['dt', 'datetime(6)', ["'9999-12-31 23:59:59.999999'", "'1000-01-01 00:00:00'"]],
  ['ts', 'timestamp(3)', ["'2038-01-19 03:14:07.123'", "'1970-01-01 00:00:01'"]],
  ['da', 'date', ["'9999-12-31'", "'1000-01-01'"]],
  ['j', 'json', [`'{"b": 1, "a": [1, 2.50, 1e2]}'`, "'null'"]],
  ['e', "enum('x','y')", ["'y'", "'x'"]],
  ['s', "set('a','b','c')", ["'c,a'", "''"]],
  ['bl', 'blob', ['0x00ff', "''"]],
  ['vb', 'varbinary(8)', ['0x6869', "''"]],
  ['t', 'text', [`'tab\\there\\nline \\\\ ü'`, "''"]],
  ['g', 'varchar(40) as (concat(t, e)) stored', ['default', 'default']],
];

describe.each(['store', 'warehouse'] as const)('MySQL source (planner: %s)', (planner: Planner) => {
  it('plans nothing on a second run with no change, for every type; the destination holds what the source reads', async () => {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const { MysqlSource } = await import('../../src/connectors/mysql/mysql-source.js');
    const url = await createTestMysqlDatabase('lockstep_types');
    const rows = [0, 1].map((r) => `(${r + 1}, ${MYSQL_COLUMNS.map(([, , values]) => values[r] as string).join(', ')})`);
    await mysqlSql(
      url,
      `create table typed (id integer primary key, ${MYSQL_COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')});
       insert into typed values ${rows.join(', ')}, (3${MYSQL_COLUMNS.map(([, type]) => (type.includes(' as ') ? ', default' : ', null')).join('')})`,
    );
    const query = 'select * from typed';
    const columns = ['id', ...MYSQL_COLUMNS.map(([name]) => name)];
    const plannerSchema = `${new URL(url).pathname.slice(1)}_p`;
    const { runs, delivered } = await syncRuns({ type: 'mysql', settings: { url, planner, plannerSchema } }, query, columns);
    expect(runs.map((r) => [r.status, r.error])).toEqual([['success', null], ['success', null]]);
    expect(runs.map((r) => r.plannedRows)).toEqual([{ ...NONE, addedCount: 3 }, NONE]);
    const read = await readAll(new MysqlSource({ url }), `${query} order by id`);
    expect(delivered).toEqual(read.map((row) => row.map(asStored)));
  });
});

// ---------------------------------------------------------------------------------------------
// DuckDB

const DUCK_COLUMNS: Array<[name: string, type: string, values: string[]]> = [
  ['hi', 'hugeint', ['170141183460469231731687303715884105727', '-1']],
  ['ub', 'ubigint', ['18446744073709551615', '0']],
  ['dc', 'decimal(38,10)', ['1234567890123456789012345678.0123456789', '-0.5']],
  ['d4', 'decimal(4,1)', ['-999.9', '0']],
  ['f', 'float', ['0.1', "'nan'"]],
  ['d', 'double', ['0.1 + 0.2', "'-inf'"]],
  ['bo', 'boolean', ['true', 'false']],
  ['da', 'date', ["'5877642-06-25'", "'-infinity'"]],
  ['tm', 'time', ["'24:00:00'", "'00:00:00.000001'"]],
  ['ttz', 'timetz', ["'03:04:05+05:30'", "'00:00:00+00'"]],
  ['ts', 'timestamp', ["'294247-01-10 04:00:54.775806'", "'0044-03-15 (BC) 12:00:00'"]],
  ['tz', 'timestamptz', ["'2024-07-01 12:00:00+02'", "'infinity'"]],
  ['tns', 'timestamp_ns', ["'2024-01-02 03:04:05.123456789'", "'1677-09-22 00:00:00'"]],
  ['iv', 'interval', ["interval 1 year + interval 2 month - interval 3 day + interval '04:05:06.7'", "interval 0 second"]],
  ['u', 'uuid', ["'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "'00000000-0000-0000-0000-000000000000'"]],
  ['bl', 'blob', ["'\\x00\\xFF'::blob", "''::blob"]],
  ['bi', 'bit', ["'1010'::bit", "'0'::bit"]],
  ['j', 'json', [`'{"b": 1, "a": [1, 2.50]}'`, "'null'"]],
  ['l', 'integer[]', ['[1, null, 3]', '[]']],
  ['st', 'struct(b integer, a varchar)', ["{'b': 1, 'a': 'x'}", "{'b': null, 'a': null}"]],
  ['m', 'map(varchar, double)', ["map {'z': 1.5, 'a': -0.0}", 'map {}']],
  ['ar', 'double[2]', ['[0.1, 1e300]', '[0, -0.0]']],
  ['en', "enum('sad', 'happy')", ["'happy'", "'sad'"]],
  ['un', 'union(n integer, s varchar)', ['1', "'x'"]],
];

describe.each(['store', 'warehouse'] as const)('DuckDB source (planner: %s)', (planner: Planner) => {
  it('plans nothing on a second run with no change, for every type; the destination holds what the source reads', async () => {
    const duck = await import('@duckdb/node-api');
    const { DuckDbSource } = await import('../../src/connectors/index.js');
    const dir = tempDir();
    const path = `${dir}/warehouse.duckdb`;
    const instance = await duck.DuckDBInstance.create(path);
    const connection = await instance.connect();
    const rows = [0, 1].map((r) => `(${r + 1}, ${DUCK_COLUMNS.map(([, type, values]) => `(${values[r] as string})::${type}`).join(', ')})`);
    try {
      await connection.run(
        `create table typed (id integer primary key, ${DUCK_COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')});
         insert into typed values ${rows.join(', ')}, (3${', null'.repeat(DUCK_COLUMNS.length)})`,
      );
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
    const query = 'select * from typed';
    const columns = ['id', ...DUCK_COLUMNS.map(([name]) => name)];
    const { runs, delivered } = await syncRuns({ type: 'duckdb', settings: { path, planner } }, query, columns);
    expect(runs.map((r) => [r.status, r.error])).toEqual([['success', null], ['success', null]]);
    expect(runs.map((r) => r.plannedRows)).toEqual([{ ...NONE, addedCount: 3 }, NONE]);
    const read = await readAll(new DuckDbSource({ path }), `${query} order by id`);
    expect(delivered).toEqual(read.map((row) => row.map(asStored)));
  });
});

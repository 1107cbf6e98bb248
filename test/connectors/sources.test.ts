import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { DuckDbSource, PostgresSource, SqliteSource } from '../../src/connectors/index.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { RowBatch, Source, Value } from '../../src/core/ports.js';
import { createTestDatabase, refusesWrongPassword, sql } from '../helpers/postgres.js';
import { describeSourceContract, type FixtureTable, type FixtureType, type SourceFixture } from './source-contract.js';

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function readAll(source: Source, query: string): Promise<RowBatch> {
  const rows: Value[][] = [];
  let columns: string[] = [];
  for await (const batch of source.read(query, { batchSize: 100 })) {
    columns = batch.columns;
    rows.push(...batch.rows);
  }
  return { columns, rows };
}

function tempPath(file: string): string {
  return join(mkdtempSync(join(tmpdir(), 'lockstep-source-')), file);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

const PG_TYPES: Record<FixtureType, string> = {
  int: 'integer',
  bigint: 'bigint',
  float: 'double precision',
  decimal: 'numeric(12,2)',
  text: 'text',
  boolean: 'boolean',
  date: 'date',
  timestamp: 'timestamp',
  timestamptz: 'timestamptz',
  json: 'jsonb',
  blob: 'bytea',
};

async function loadPostgres(url: string, fixture: SourceFixture): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const table of fixture.tables) {
      const cols = table.columns.map((c) => `${q(c.name)} ${PG_TYPES[c.type]}`).join(', ');
      await client.query(`create table ${q(table.name)} (${cols})`);
      const params = table.columns
        .map((c, i) => (c.type === 'blob' ? `decode($${i + 1}, 'base64')` : `$${i + 1}::${PG_TYPES[c.type]}`))
        .join(', ');
      for (const row of table.rows ?? []) {
        await client.query(`insert into ${q(table.name)} values (${params})`, row);
      }
      if (table.series) {
        await client.query(`insert into ${q(table.name)} select i, 'row ' || i from generate_series(1, $1::int) i`, [table.series]);
      }
    }
  } finally {
    await client.end();
  }
}

let lastPostgresUrl = '';

async function postgresOpenReads(): Promise<number> {
  const db = new URL(lastPostgresUrl).pathname.slice(1);
  // The server drops a closed session a moment after the client says goodbye.
  for (let attempt = 0; ; attempt++) {
    const rows = await sql<{ n: number }>(
      lastPostgresUrl,
      'select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [db],
    );
    const n = rows[0]?.n ?? 0;
    if (n === 0 || attempt >= 50) return n;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describeSourceContract('postgres', {
  booleans: true,
  async create(fixture) {
    const url = await createTestDatabase('source');
    await loadPostgres(url, fixture);
    lastPostgresUrl = url;
    return PostgresSource.connect({ url });
  },
  openUnreachable: () => PostgresSource.connect({ url: 'postgres://lockstep:s3cret-pw@127.0.0.1:1/warehouse' }),
  unreachable: () => new PostgresSource({ url: 'postgres://lockstep:s3cret-pw@127.0.0.1:1/warehouse' }),
  secret: 's3cret-pw',
  openReads: postgresOpenReads,
});

describe('PostgresSource', () => {
  it("reads past a text cursor holding backslashes and quotes as that value, whatever the server's standard_conforming_strings", async () => {
    const url = await createTestDatabase('source');
    const db = new URL(url).pathname.slice(1);
    // Off, as a server or role kept from before PostgreSQL 9.1 may still have it: a backslash in a plain literal escapes.
    await sql(url, `alter database ${q(db)} set standard_conforming_strings to off`);
    await sql(url, "create table marks (id int primary key, mark text); insert into marks values (1, 'a'), (2, E'b\\\\'), (3, 'c'), (4, 'z')");
    const source = await PostgresSource.connect({ url });
    try {
      const cursor = source.cursorSql!;
      const query = 'select id, mark from marks';
      for (const [value, past] of [
        ['b\\', [2, 3, 4]],
        ["b\\' or true --", [3, 4]],
        ["y' or mark < 'b", [4]],
      ] as const) {
        const batch = await readAll(source, cursor.after(query, 'mark', value));
        expect(batch.rows.map((r) => r[0]).sort(), value).toEqual(past);
      }
    } finally {
      await source.close();
    }
  });

  it('gives UTC timestamps whatever the session time zone, and normalises arrays, int8 and float4', async () => {
    const url = await createTestDatabase('source');
    const db = new URL(url).pathname.slice(1);
    await sql(url, `alter database ${q(db)} set timezone to 'America/New_York'`);
    const source = await PostgresSource.connect({ url });
    try {
      const batch = await readAll(
        source,
        `select timestamptz '2024-01-02 05:04:05.123456+02' as a, timestamp '2024-01-02 03:04:05' as b,
                array[1, 2]::int8[] as c, 9223372036854775807::int8 as d, 0.1::float4 as e,
                array[timestamp '2024-01-02 03:04:05']::timestamp[] as f, numeric '0.001' as g,
                '{"b": [1, 2], "a": null}'::json as h, 'NaN'::float8 as i, interval '1 day' as j`,
      );
      expect(batch.rows[0]).toEqual([
        '2024-01-02T03:04:05.123456Z',
        '2024-01-02T03:04:05.000Z',
        '[1,2]',
        '9223372036854775807',
        0.1,
        '["2024-01-02T03:04:05.000Z"]',
        '0.001',
        '{"b":[1,2],"a":null}',
        'NaN',
        '1 day',
      ]);
    } finally {
      await source.close();
    }
  });

  it('reports serialization failures as transient, retryable errors', async () => {
    const url = await createTestDatabase('source');
    await sql(
      url,
      `create function fail_serialization() returns int language plpgsql as $$
       begin raise exception 'could not serialize access' using errcode = '40001'; end $$`,
    );
    const source = await PostgresSource.connect({ url });
    try {
      const error = await readAll(source, 'select fail_serialization()').then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(LockstepError);
      expect((error as LockstepError).code).toBe(ErrorCode.Transient);
      expect((error as LockstepError).retryable).toBe(true);
    } finally {
      await source.close();
    }
  });

  it('reports bad credentials as a connection error naming host and port but not the password', async (ctx) => {
    const url = new URL(await createTestDatabase('source'));
    if (!(await refusesWrongPassword(url.toString()))) ctx.skip('the configured server accepts any password');
    url.password = 'wrong-password';
    const error = await PostgresSource.connect({ url: url.toString() }).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    expect(error?.code).toBe(ErrorCode.Connection);
    expect(error?.message).toContain(`${url.hostname}:${url.port}`);
    expect(error?.message).toMatch(/password/);
    expect(error?.message).not.toContain('wrong-password');
  });
});

// ---------------------------------------------------------------------------------------------
// DuckDB

const DUCKDB_TYPES: Record<FixtureType, string> = {
  int: 'INTEGER',
  bigint: 'BIGINT',
  float: 'DOUBLE',
  decimal: 'DECIMAL(12,2)',
  text: 'VARCHAR',
  boolean: 'BOOLEAN',
  date: 'DATE',
  timestamp: 'TIMESTAMP',
  timestamptz: 'TIMESTAMPTZ',
  json: 'JSON',
  blob: 'BLOB',
};

async function loadDuckDb(path: string, tables: FixtureTable[], extraSql: string[] = []): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    for (const table of tables) {
      const cols = table.columns.map((c) => `${q(c.name)} ${DUCKDB_TYPES[c.type]}`).join(', ');
      await connection.run(`create table ${q(table.name)} (${cols})`);
      const params = table.columns
        .map((c, i) => (c.type === 'blob' ? `from_base64($${i + 1})` : `CAST($${i + 1} AS ${DUCKDB_TYPES[c.type]})`))
        .join(', ');
      for (const row of table.rows ?? []) {
        await connection.run(`insert into ${q(table.name)} values (${params})`, row);
      }
      if (table.series) {
        await connection.run(`insert into ${q(table.name)} select i, 'row ' || i from range(1, ${table.series + 1}) t(i)`);
      }
    }
    for (const statement of extraSql) await connection.run(statement);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

describeSourceContract('duckdb', {
  booleans: true,
  async create(fixture) {
    const path = tempPath('warehouse.duckdb');
    await loadDuckDb(path, fixture.tables);
    return DuckDbSource.open({ path });
  },
  openUnreachable: () => DuckDbSource.open({ path: tempPath('missing.duckdb') }),
  unreachable: () => new DuckDbSource({ path: tempPath('missing.duckdb') }),
});

describe('DuckDbSource', () => {
  it('never creates a missing file', async () => {
    const path = tempPath('missing.duckdb');
    await expect(DuckDbSource.open({ path })).rejects.toMatchObject({ code: ErrorCode.Connection });
    expect(existsSync(path)).toBe(false);
  });

  it('opens the file read-only', async () => {
    const path = tempPath('warehouse.duckdb');
    await loadDuckDb(path, [{ name: 't', columns: [{ name: 'id', type: 'int' }], rows: [[1]] }]);
    const source = await DuckDbSource.open({ path });
    try {
      await expect(readAll(source, 'insert into t values (2) returning id')).rejects.toMatchObject({ code: ErrorCode.Query });
      expect((await readAll(source, 'select count(*) from t')).rows).toEqual([[1]]);
    } finally {
      await source.close();
    }
  });

  it('refuses a result that failed part-way, which the binding ends as if it were complete, rather than take it for the whole model', async () => {
    const path = tempPath('warehouse.duckdb');
    await loadDuckDb(path, []);
    const source = await DuckDbSource.open({ path });
    try {
      // Fails at row 300,001, once the first rows were streamed: the binding's stream just ends.
      const query = "select i, case when i < 300000 then i else error('no value for ' || i) end as v from range(600000) t(i)";
      const error = (await readAll(source, query).then(
        () => new Error('expected a failure'),
        (thrown: unknown) => thrown,
      )) as LockstepError;
      expect(error.code).toBe(ErrorCode.Query);
      // Either DuckDB said so before the first rows, or the read saw its result cut short.
      expect(error.message).toMatch(/no value for 300000|ended the model's result after \d+ rows, though the query has 600000/);
      expect(error.message).toMatch(/check the model's query|run the model's query in DuckDB to see what fails there/);
      // A complete result passes.
      expect((await readAll(source, 'select i from range(600000) t(i)')).rows).toHaveLength(600000);
    } finally {
      await source.close();
    }
  });

  it('normalises floats, lists, structs, huge integers and timestamp precisions', async () => {
    const path = tempPath('warehouse.duckdb');
    await loadDuckDb(path, []);
    const source = await DuckDbSource.open({ path });
    try {
      const batch = await readAll(
        source,
        `select 0.1::float as a, [1, 2] as b, {'x': 1, 'y': 'z'} as c, 170141183460469231731687303715884105727::hugeint as d,
                timestamp_ns '2024-01-02 03:04:05.123456789' as e, timestamp_s '2024-01-02 03:04:05' as f,
                [timestamp '2024-01-02 03:04:05'] as g, 'x'::varchar as h`,
      );
      expect(batch.rows[0]).toEqual([
        0.1,
        '[1,2]',
        '{"x":1,"y":"z"}',
        '170141183460469231731687303715884105727',
        '2024-01-02T03:04:05.123456789Z',
        '2024-01-02T03:04:05.000Z',
        '["2024-01-02T03:04:05.000Z"]',
        'x',
      ]);
    } finally {
      await source.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// SQLite

const SQLITE_TYPES: Record<FixtureType, string> = {
  int: 'INTEGER',
  bigint: 'INTEGER',
  float: 'REAL',
  decimal: 'TEXT',
  text: 'TEXT',
  boolean: 'INTEGER',
  date: 'TEXT',
  timestamp: 'TEXT',
  timestamptz: 'TEXT',
  json: 'TEXT',
  blob: 'BLOB',
};

function sqliteParam(type: FixtureType, value: Value): unknown {
  if (value === null) return null;
  if (type === 'bigint') return BigInt(value as string | number);
  if (type === 'boolean') return value ? 1 : 0;
  if (type === 'blob') return Buffer.from(value as string, 'base64');
  return value;
}

function loadSqlite(path: string, fixture: SourceFixture): void {
  const db = new Database(path);
  try {
    for (const table of fixture.tables) {
      const cols = table.columns.map((c) => `${q(c.name)} ${SQLITE_TYPES[c.type]}`).join(', ');
      db.exec(`create table ${q(table.name)} (${cols})`);
      const insert = db.prepare(`insert into ${q(table.name)} values (${table.columns.map(() => '?').join(', ')})`);
      db.transaction(() => {
        for (const row of table.rows ?? []) insert.run(...table.columns.map((c, i) => sqliteParam(c.type, row[i] ?? null)));
        for (let i = 1; i <= (table.series ?? 0); i++) insert.run(i, `row ${i}`);
      })();
    }
  } finally {
    db.close();
  }
}

describeSourceContract('sqlite', {
  booleans: false,
  async create(fixture) {
    const path = tempPath('warehouse.sqlite');
    loadSqlite(path, fixture);
    return SqliteSource.open({ path });
  },
  openUnreachable: () => SqliteSource.open({ path: tempPath('missing.sqlite') }),
  unreachable: () => new SqliteSource({ path: tempPath('missing.sqlite') }),
});

describe('SqliteSource', () => {
  it('never creates a missing file', async () => {
    const path = tempPath('missing.sqlite');
    await expect(SqliteSource.open({ path })).rejects.toMatchObject({ code: ErrorCode.Connection });
    expect(existsSync(path)).toBe(false);
  });

  it('keeps integers beyond 2^53 exact and refuses writes', async () => {
    const path = tempPath('warehouse.sqlite');
    loadSqlite(path, { tables: [{ name: 't', columns: [{ name: 'id', type: 'bigint' }], rows: [['9223372036854775807'], [7]] }] });
    const source = await SqliteSource.open({ path });
    try {
      expect((await readAll(source, 'select id from t order by id')).rows).toEqual([[7], ['9223372036854775807']]);
      await expect(readAll(source, 'delete from t')).rejects.toMatchObject({ code: ErrorCode.Query });
      expect((await readAll(source, 'select count(*) from t')).rows).toEqual([[2]]);
    } finally {
      await source.close();
    }
  });
});

/**
 * MySQL / MariaDB as a source and as a destination, against a real server (see test/setup/mysql.ts):
 * the shared contract suites, then what is particular to MySQL — a streamed result, per-row
 * rejections with MySQL's messages inside bulk statements, deletes through a sync, failures.
 */
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { describe, expect, inject, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { COPY_TEXT_FORMAT } from '../../src/connectors/copy-text.js';
import { PostgresSource } from '../../src/connectors/index.js';
import { mysqlConnector, MysqlDestination, MysqlSource } from '../../src/connectors/mysql/index.js';
import { classifyMysqlError, MysqlFailure } from '../../src/connectors/mysql/mysql-client.js';
import { isoToMysqlTime } from '../../src/connectors/mysql/mysql-destination.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { RowBatch, Source, Value, WriteOperation } from '../../src/core/ports.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';
import { describeDestinationContract, type FixtureColumn, type FixtureTable as DestinationTable } from './destination-contract.js';
import { describeSourceContract, type FixtureType, type SourceFixture } from './source-contract.js';

const q = (name: string) => `\`${name.replace(/`/g, '``')}\``;

async function readAll(source: Source, query: string, batchSize = 100): Promise<RowBatch> {
  const rows: Value[][] = [];
  let columns: string[] = [];
  for await (const batch of source.read(query, { batchSize })) {
    columns = batch.columns;
    rows.push(...batch.rows);
  }
  return { columns, rows };
}

async function failure(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

/** `count` rows `(i, 'row i')` from i = 1, made by the server (portable between MySQL and MariaDB). */
function seriesInsert(table: string, count: number, label = `concat('row ', n)`): string {
  const digits = '(select 0 d union all select 1 union all select 2 union all select 3 union all select 4 union all select 5 union all select 6 union all select 7 union all select 8 union all select 9)';
  const places = [1, 10, 100, 1000, 10_000, 100_000].filter((p) => p < count);
  const n = places.map((p, i) => `${p} * t${i}.d`).join(' + ');
  const from = places.map((_, i) => `${digits} t${i}`).join(', ');
  return `insert into ${q(table)} select n, ${label} from (select ${n} + 1 as n from ${from}) s where n <= ${count}`;
}

// ---------------------------------------------------------------------------------------------
// The kind

describe('mysqlConnector', () => {
  it('takes a mysql:// or mariadb:// url, a secret shown without its password', () => {
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const kind = registry.kind('mysql');
    expect(kind).toBeDefined();
    const check = (url: string) => registry.checkSettings(kind!, { url }).map((issue) => issue.message);
    expect(check('mysql://crm:pw@db.example.com:3306/crm')).toEqual([]);
    expect(check('mariadb://crm:pw@db.example.com/crm')).toEqual([]);
    expect(check('${CRM_URL}')).toEqual([]);
    expect(check('postgres://crm:pw@db.example.com/crm')).toEqual([expect.stringMatching(/^url must start with mysql:\/\/ or mariadb:\/\//)]);
    // A password with @, / or # left unencoded would put part of it in the host or the database, shown in messages.
    for (const url of ['mysql://crm:p@QZx/w:rd#1@db.example.com:3306/crm', 'mysql://crm:x@yzk/q@db.example.com/crm', 'mysql://crm:4321#x@db.example.com/crm']) {
      const messages = check(url);
      expect(messages).toEqual([expect.stringMatching(/^url does not read as user:password@host\.\.\. \(it has a # or a second @\).*percent-encode @, \/, #/)]);
      expect(messages.join()).not.toMatch(/QZx|yzk|4321/);
    }
    expect(check('mysql://crm:p%40QZx%2Fw%3Ard%231@db.example.com:3306/crm')).toEqual([]);
    expect(registry.redact({ slug: 'crm', type: 'mysql', settings: { url: 'mysql://crm:s3cret@db.example.com/crm' } }).settings).toEqual({
      url: 'mysql://crm:***@db.example.com/crm',
    });
    expect(mysqlConnector.destination?.capabilities).toEqual({ deletes: true, upsert: true, maxBatchSize: null, recordIds: false });
  });
});

// ---------------------------------------------------------------------------------------------
// Source contract

const SOURCE_TYPES: Record<FixtureType, string> = {
  int: 'int',
  bigint: 'bigint',
  float: 'double',
  decimal: 'decimal(12,2)',
  text: 'text',
  boolean: 'boolean',
  date: 'date',
  timestamp: 'datetime(3)',
  timestamptz: 'timestamp(3) null',
  json: 'json',
  blob: 'longblob',
};

async function loadMysql(url: string, fixture: SourceFixture): Promise<void> {
  const connection = await mysql.createConnection({ uri: url });
  try {
    await connection.query("set time_zone = '+00:00'");
    for (const table of fixture.tables) {
      await connection.query(`create table ${q(table.name)} (${table.columns.map((c) => `${q(c.name)} ${SOURCE_TYPES[c.type]}`).join(', ')})`);
      for (const row of table.rows ?? []) {
        const values = row.map((value, i) => {
          const type = table.columns[i]?.type;
          if (value === null) return null;
          if (type === 'blob') return Buffer.from(String(value), 'base64');
          if (type === 'timestamp' || type === 'timestamptz') return isoToMysqlTime(value, false);
          return value;
        });
        await connection.execute(`insert into ${q(table.name)} values (${row.map(() => '?').join(', ')})`, values);
      }
      if (table.series) await connection.query(seriesInsert(table.name, table.series));
    }
  } finally {
    await connection.end();
  }
}

let lastSourceUrl = '';

/** Sessions on the fixture's database still running a statement (idle pooled connections do not count). */
async function mysqlOpenReads(): Promise<number> {
  const db = new URL(lastSourceUrl).pathname.slice(1);
  // The server ends a query a moment after its connection closes.
  for (let attempt = 0; ; attempt++) {
    const [row] = await mysqlSql<{ n: number }>(
      lastSourceUrl,
      `select count(*) as n from information_schema.processlist where db = ? and id <> connection_id() and command <> 'Sleep'`,
      [db],
    );
    const n = Number(row?.n ?? 0);
    if (n === 0 || attempt >= 100) return n;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describeSourceContract('mysql', {
  booleans: true,
  async create(fixture) {
    const url = await createTestMysqlDatabase('source');
    await loadMysql(url, fixture);
    lastSourceUrl = url;
    return MysqlSource.connect({ url });
  },
  openUnreachable: () => MysqlSource.connect({ url: 'mysql://lockstep:s3cret-pw@127.0.0.1:1/warehouse' }),
  unreachable: () => new MysqlSource({ url: 'mysql://lockstep:s3cret-pw@127.0.0.1:1/warehouse' }),
  secret: 's3cret-pw',
  openReads: mysqlOpenReads,
});

// ---------------------------------------------------------------------------------------------
// Destination contract

const DESTINATION_TYPES = { int: 'int', text: 'varchar(255)', float: 'double', decimal: 'decimal(10,2)' } as const;

/** The contract's table in MySQL's terms: foreign keys and checks at table level (MySQL ignores them inline), backticks. */
function mysqlTableDdl(table: DestinationTable): string {
  const parts = table.columns.map((c: FixtureColumn) =>
    [q(c.name), DESTINATION_TYPES[c.type], c.notNull ? 'not null' : '', c.unique ? 'unique' : ''].filter(Boolean).join(' '),
  );
  if (table.primaryKey.length > 0) parts.push(`primary key (${table.primaryKey.map(q).join(', ')})`);
  for (const c of table.columns) {
    if (c.references) parts.push(`foreign key (${q(c.name)}) references ${q(c.references.table)} (${q(c.references.column)})`);
    if (c.check) parts.push(`check (${c.check.replace(/"([^"]*)"/g, (_, name: string) => q(name))})`);
  }
  return `create table ${q(table.name)} (${parts.join(', ')})`;
}

async function createDestinationTables(url: string, tables: DestinationTable[]): Promise<void> {
  for (const table of tables) {
    await mysqlSql(url, mysqlTableDdl(table));
    for (const row of table.rows ?? []) {
      await mysqlSql(url, `insert into ${q(table.name)} values (${row.map(() => '?').join(', ')})`, row);
    }
  }
}

describeDestinationContract('mysql', {
  async create(fixture) {
    const url = await createTestMysqlDatabase('destination');
    await createDestinationTables(url, fixture.tables);
    return {
      destination: await MysqlDestination.connect({ url }),
      rows: (table, orderBy) => mysqlSql<Record<string, Value>>(url, `select * from ${q(table)} order by ${q(orderBy)}`),
    };
  },
  openUnreachable: () => MysqlDestination.connect({ url: 'mysql://crm:s3cret-pw@127.0.0.1:1/crm' }),
  secret: 's3cret-pw',
});

// ---------------------------------------------------------------------------------------------
// MySQL specifics: the source

describe('MysqlSource', () => {
  it('streams: the first batch arrives while the server is still sending, and memory never holds the result', async () => {
    const url = await createTestMysqlDatabase('source_stream');
    const rows = 200_000;
    // 200,000 rows of ~500 bytes: about 100 MB if they were all held at once.
    await mysqlSql(url, 'create table big (id int primary key, label varchar(600) not null)');
    await mysqlSql(url, seriesInsert('big', rows, `concat(n, ' ', repeat('x', 490))`));
    const source = await MysqlSource.connect({ url });
    try {
      const db = new URL(url).pathname.slice(1);
      const running = async () => {
        const [row] = await mysqlSql<{ n: number }>(
          url,
          `select count(*) as n from information_schema.processlist where db = ? and info like '%lockstep_stream_probe%' and id <> connection_id()`,
          [db],
        );
        return Number(row?.n ?? 0);
      };
      const heapBefore = process.memoryUsage().heapUsed;
      let peakGrowth = 0;
      let count = 0;
      let batches = 0;
      let runningAtFirstBatch = -1;
      for await (const batch of source.read('select id, label /* lockstep_stream_probe */ from big order by id', { batchSize: 500 })) {
        if (batches === 0) runningAtFirstBatch = await running();
        batches++;
        for (const row of batch.rows) {
          count++;
          if (row[0] !== count) throw new Error(`row ${count} came as ${String(row[0])}`);
        }
        if (batches % 50 === 0) peakGrowth = Math.max(peakGrowth, process.memoryUsage().heapUsed - heapBefore);
      }
      expect(count).toBe(rows);
      expect(batches).toBe(rows / 500);
      // The server was still sending when the first batch came: the rows were not read in full first.
      expect(runningAtFirstBatch).toBe(1);
      // Far below the ~100 MB the whole result takes.
      expect(peakGrowth).toBeLessThan(50 * 1024 * 1024);
      expect(await running()).toBe(0);
    } finally {
      await source.close();
    }
  });

  it('fails a read whose connection the server ended part-way (KILL, a restart) at once, as a dropped connection to retry, not after its statement timeout', async () => {
    const url = await createTestMysqlDatabase('source_killed');
    await mysqlSql(url, 'create table big (id int primary key, label varchar(600) not null)');
    await mysqlSql(url, seriesInsert('big', 200_000, `concat(n, ' ', repeat('x', 490))`));
    const source = await MysqlSource.connect({ url });
    const db = new URL(url).pathname.slice(1);
    let read = 0;
    let killed = false;
    const started = Date.now();
    try {
      const error = await (async () => {
        for await (const batch of source.read('select id, label /* lockstep_kill_probe */ from big order by id', { batchSize: 500 })) {
          read += batch.rows.length;
          if (killed || read < 5000) continue;
          const [reading] = await mysqlSql<{ id: number }>(
            url,
            `select id from information_schema.processlist where db = ? and id <> connection_id() and info like '%lockstep_kill_probe%'`,
            [db],
          );
          await mysqlSql(url, `kill connection ${Number(reading?.id)}`);
          killed = true;
        }
        return new Error(`the read ended without an error after ${read} rows`);
      })().catch((thrown: unknown) => thrown);
      expect(killed).toBe(true);
      expect(error).toBeInstanceOf(LockstepError);
      expect(error).toMatchObject({ code: ErrorCode.Transient, retryable: true });
      expect((error as LockstepError).message).toMatch(/^reading from source MySQL at .* failed: Connection lost: The server closed the connection\. — this is usually temporary; the read can be retried$/);
      expect(read).toBeLessThan(200_000);
      // Well within the statement timeout (30 minutes by default), which it used to wait out.
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await source.close();
    }
  }, 60_000);

  it('reads MySQL types as the other sources give them', async () => {
    const url = await createTestMysqlDatabase('source_types');
    await mysqlSql(
      url,
      `create table t (id int primary key, flag tinyint(1), small tinyint, b1 bit(1), b12 bit(12), big bigint unsigned, amount decimal(30,10),
         doc json, at timestamp(6) null, local datetime, day date, tm time, yr year, f float, e enum('a','b'), raw varbinary(4), fixed char(3))`,
    );
    await mysqlSql(
      url,
      `insert into t values (1, 1, 7, b'1', b'101', 18446744073709551615, 12345678901234567890.1234567890, '{"b": [1, 2], "a": null}',
         '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05', '2024-01-02', '10:11:12', 2024, 0.1, 'b', x'00ff', 'ab'),
         (2, 2, -1, b'0', b'0', 0, -0.5, '[]', null, null, null, null, null, null, null, null, null)`,
    );
    // The server's time zone does not matter: the source reads in UTC.
    const source = await MysqlSource.connect({ url });
    try {
      const batch = await readAll(source, 'select * from t order by id');
      expect(batch.rows).toEqual([
        [1, true, 7, true, 5, '18446744073709551615', '12345678901234567890.1234567890', '{"b":[1,2],"a":null}', '2024-01-02T03:04:05.123456Z', '2024-01-02T03:04:05.000Z', '2024-01-02', '10:11:12', 2024, 0.1, 'b', 'AP8=', 'ab'],
        [2, 2, -1, false, 0, 0, '-0.5000000000', '[]', null, null, null, null, null, null, null, null, null],
      ]);
    } finally {
      await source.close();
    }
  });

  it('reads zero dates and dates with a zero year, month or day (stored under a permissive sql_mode) as null', async () => {
    const url = await createTestMysqlDatabase('source_zero_dates');
    await mysqlSql(
      url,
      `set session sql_mode = '';
       create table t (id int primary key, day date not null, at datetime(3) not null, ts timestamp null, kept date);
       insert into t values (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '2024-02-29'),
         (2, '2024-00-00', '2024-03-00 10:00:00.250', null, '0001-01-01'), (3, '2024-01-02', '2024-01-02 03:04:05', '2024-01-02 03:04:05', null),
         (4, '0000-01-15', '0000-01-15 10:00:00', null, '0000-12-31')`,
    );
    const source = await MysqlSource.connect({ url });
    try {
      const batch = await readAll(source, 'select id, day, at, ts, kept, cast(day as char) as text from t order by id');
      expect(batch.rows).toEqual([
        [1, null, null, null, '2024-02-29', '0000-00-00'],
        [2, null, null, null, '0001-01-01', '2024-00-00'],
        [3, '2024-01-02', '2024-01-02T03:04:05.000Z', '2024-01-02T03:04:05.000Z', null, '2024-01-02'],
        [4, null, null, null, null, '0000-01-15'],
      ]);
    } finally {
      await source.close();
    }
  });

  it('refuses a query that writes (the session is read-only) as a query error', async () => {
    const url = await createTestMysqlDatabase('source_readonly');
    await mysqlSql(url, 'create table t (id int primary key)');
    const source = await MysqlSource.connect({ url });
    try {
      const error = await failure(readAll(source, 'insert into t values (1)'));
      expect(error.code).toBe(ErrorCode.Query);
      expect(error.message).toMatch(/READ ONLY|read-only/i);
      expect(await mysqlSql(url, 'select count(*) as n from t')).toEqual([{ n: '0' }]);
    } finally {
      await source.close();
    }
  });

  it('reports bad credentials and an unknown database as connection errors, without the password', async () => {
    const url = new URL(await createTestMysqlDatabase('source_auth'));
    url.password = 'wrong-password';
    const denied = await failure(MysqlSource.connect({ url: url.toString() }));
    expect(denied.code).toBe(ErrorCode.Connection);
    expect(denied.message).toContain(`${url.hostname}:${url.port}`);
    expect(denied.message).toMatch(/Access denied .* — check the user name and password/);
    expect(denied.message).not.toContain('wrong-password');

    const missing = new URL(inject('mysqlUrl'));
    missing.pathname = '/no_such_database';
    const unknown = await failure(MysqlSource.connect({ url: missing.toString() }));
    expect(unknown.code).toBe(ErrorCode.Connection);
    expect(unknown.message).toMatch(/no_such_database.* — check the database name/);
    if (missing.password) expect(unknown.message).not.toContain(missing.password);
  });
});

// ---------------------------------------------------------------------------------------------
// MySQL specifics: the destination

const CONTACT_COLUMNS = ['id', 'account_id', 'email', 'name', 'score'];

async function crm(): Promise<{ url: string; destination: MysqlDestination }> {
  const url = await createTestMysqlDatabase('destination_crm');
  await mysqlSql(
    url,
    `create table accounts (id int primary key, name varchar(100) not null);
     create table contacts (id int primary key, account_id int, email varchar(100) unique, name varchar(100) not null,
       score int check (score >= 0), foreign key (account_id) references accounts (id));
     insert into accounts values (1, 'Acme'), (2, 'Globex');
     insert into contacts values (10, 1, 'taken@example.com', 'Existing', 5)`,
  );
  return { url, destination: await MysqlDestination.connect({ url }) };
}

const contact = (kind: WriteOperation['kind'], id: number, accountId: number | null, email: string | null, name: string | null, score = 1): WriteOperation => ({
  kind,
  key: [id],
  values: kind === 'delete' ? [] : [id, accountId, email, name, score],
});

describe('MysqlDestination', () => {
  it('rejects, inside one bulk batch, each row that breaks a foreign key, NOT NULL or unique rule alone, with MySQL`s message, and writes the rest', async () => {
    const { url, destination } = await crm();
    try {
      const writer = await destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: CONTACT_COLUMNS });
      const bad = new Map<number, WriteOperation>([
        [17, contact('upsert', 1017, 99, 'fk@example.com', 'No such account')],
        [900, contact('upsert', 1900, 1, 'null@example.com', null)],
        [1500, contact('upsert', 2500, 2, 'taken@example.com', 'Taken email')],
      ]);
      const batch = Array.from({ length: 2000 }, (_, i) => bad.get(i) ?? contact('upsert', 1000 + i, (i % 2) + 1, `user${i}@example.com`, `User ${i}`, i));
      const outcomes = await writer.write(batch);
      expect(outcomes.filter((o) => !o.ok)).toHaveLength(3);
      expect(outcomes[17]).toEqual({
        ok: false,
        reason: expect.stringMatching(/^Cannot add or update a child row: a foreign key constraint fails \(.*contacts.*FOREIGN KEY \(`account_id`\) REFERENCES `accounts` \(`id`\)\)$/),
      });
      expect(outcomes[900]).toEqual({ ok: false, reason: "Column 'name' cannot be null (NOT NULL column)" });
      expect(outcomes[1500]).toEqual({ ok: false, reason: expect.stringMatching(/^Duplicate entry 'taken@example.com' for key '(contacts\.)?email' \(duplicate key\)$/) });
      expect(await mysqlSql(url, 'select count(*) as n from contacts')).toEqual([{ n: String(1 + 1997) }]);
      // The email clash did not change the row that holds the email.
      expect(await mysqlSql(url, 'select id, name from contacts where email = ?', ['taken@example.com'])).toEqual([{ id: 10, name: 'Existing' }]);
    } finally {
      await destination.close();
    }
  });

  it("rejects alone each row a trigger refuses (SIGNAL SQLSTATE '45000'), with the trigger's message, loaded, merged, updated and deleted, and writes the rest", async () => {
    const url = await createTestMysqlDatabase('destination_trigger');
    await mysqlSql(
      url,
      `create table members (id int primary key, score int);
       create trigger members_insert before insert on members for each row
         begin if new.score < 0 then signal sqlstate '45000' set message_text = 'score below zero'; end if; end;
       create trigger members_update before update on members for each row
         begin if new.score < 0 then signal sqlstate '45000' set message_text = 'score below zero'; end if; end;
       create trigger members_delete before delete on members for each row
         begin if old.id = 1 then signal sqlstate '45000' set message_text = 'member 1 is an owner and cannot be removed'; end if; end;`,
    );
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'members', keyColumns: ['id'], columns: ['id', 'score'] });
      const refused = { ok: false, reason: 'score below zero' };
      const upserts = (bad: number, score: (id: number) => number) =>
        Array.from({ length: 300 }, (_, i) => i + 1).map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === bad ? -5 : score(id)] }));
      // Loaded into the empty table, then merged into rows that exist, then by statement.
      const loaded = await writer.write(upserts(2, (id) => id));
      expect(loaded.filter((o) => !o.ok)).toEqual([refused]);
      expect(loaded[1]).toEqual(refused);
      const merged = await writer.write(upserts(3, (id) => 10 * id));
      expect(merged.filter((o) => !o.ok)).toEqual([refused]);
      expect(merged[2]).toEqual(refused);
      expect(await writer.write([{ kind: 'update', key: [1], values: [1, -5] }, { kind: 'update', key: [4], values: [4, 7] }])).toEqual([refused, { ok: true }]);
      expect(await writer.write([1, 5].map((id) => ({ kind: 'delete' as const, key: [id], values: [] })))).toEqual([
        { ok: false, reason: 'member 1 is an owner and cannot be removed' },
        { ok: true },
      ]);
      expect(await mysqlSql(url, 'select id, score from members where id <= 6 order by id')).toEqual([
        { id: 1, score: 10 },
        { id: 2, score: 20 },
        { id: 3, score: 3 },
        { id: 4, score: 7 },
        { id: 6, score: 60 },
      ]);
      expect(await mysqlSql(url, 'select count(*) as n from members')).toEqual([{ n: '299' }]);
    } finally {
      await destination.close();
    }
  });

  it('updates by key (a missing row rejected, keys compared as the column does), deletes many rows by key, and writes times, booleans and big keys', async () => {
    const url = await createTestMysqlDatabase('destination_types');
    await mysqlSql(
      url,
      `create table things (code varchar(20) collate utf8mb4_general_ci primary key, big bigint unsigned not null unique, at timestamp(3) null,
         local datetime(6), day date, flag tinyint(1), label varchar(10))`,
    );
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'things', keyColumns: ['code'], columns: ['code', 'big', 'at', 'local', 'day', 'flag', 'label'] });
      const values = (code: string, big: Value, label: Value): Value[] => [code, big, '2024-01-02T03:04:05.678Z', '2024-01-02T05:04:05.123456+02:00', '2024-01-02T00:00:00.000Z', true, label];
      expect(await writer.write([{ kind: 'insert', key: ['abc'], values: values('abc', '18446744073709551615', 'yes') }, { kind: 'insert', key: ['Def'], values: values('Def', 9007199254740993n.toString(), false) }])).toEqual([
        { ok: true },
        { ok: true },
      ]);
      expect(await mysqlSql(url, "select code, big, date_format(at, '%Y-%m-%d %H:%i:%s.%f') as at, local, day, flag, label from things order by code")).toEqual([
        { code: 'abc', big: '18446744073709551615', at: '2024-01-02 03:04:05.678000', local: '2024-01-02 03:04:05.123456', day: '2024-01-02', flag: 1, label: 'yes' },
        { code: 'Def', big: '9007199254740993', at: '2024-01-02 03:04:05.678000', local: '2024-01-02 03:04:05.123456', day: '2024-01-02', flag: 1, label: 'false' },
      ]);
      // The key column is case-insensitive: 'ABC' is the row 'abc', as `where code = 'ABC'` would find it.
      const updated = await writer.write([
        { kind: 'update', key: ['ABC'], values: ['ABC', '18446744073709551614', null, null, null, false, 'changed'] },
        { kind: 'update', key: ['nope'], values: ['nope', 1, null, null, null, false, 'x'] },
      ]);
      expect(updated).toEqual([{ ok: true }, { ok: false, reason: 'no row with code = "nope" in "things"' }]);
      expect(await mysqlSql(url, 'select code, big, flag, label from things order by code')).toEqual([
        { code: 'abc', big: '18446744073709551614', flag: 0, label: 'changed' },
        { code: 'Def', big: '9007199254740993', flag: 1, label: 'false' },
      ]);

      // Deletes go by key, many rows per statement, and a key of a missing row is fine.
      const keyed = await destination.prepare({ object: 'things', keyColumns: ['big'], columns: ['big'] });
      expect(await keyed.write([{ kind: 'delete', key: ['9007199254740993'], values: [] }, { kind: 'delete', key: ['9007199254740992'], values: [] }])).toEqual([
        { ok: true },
        { ok: true },
      ]);
      expect(await mysqlSql(url, 'select code from things')).toEqual([{ code: 'abc' }]);
    } finally {
      await destination.close();
    }
  });

  it('loads into an empty table in bulk, and still rejects each row a LOCAL load would skip or fill with a default', async () => {
    const url = await createTestMysqlDatabase('destination_load');
    await mysqlSql(url, 'create table people (id int primary key, name varchar(20) not null, score int not null check (score >= 0))');
    const loads = async () => Number((await mysqlSql<{ n: string }>(url, "select variable_value as n from information_schema.global_status where variable_name = 'COM_LOAD'"))[0]?.n);
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'name', 'score'] });
      const person = (id: number, name: Value = `person ${id}`, score: Value = id): WriteOperation => ({ kind: 'upsert', key: [id], values: [id, name, score] });
      const loadsBefore = await loads();
      const first = await writer.write(Array.from({ length: 1000 }, (_, i) => (i === 499 ? person(500, null) : i === 599 ? person(600, 'Negative', -1) : i === 699 ? person(700, 'x'.repeat(30)) : person(i + 1))));
      expect(await loads()).toBeGreaterThan(loadsBefore);
      expect(first.filter((o) => !o.ok)).toEqual([
        { ok: false, reason: "Column 'name' cannot be null (NOT NULL column)" },
        { ok: false, reason: expect.stringMatching(/^(CONSTRAINT `people.score` failed .*\(CHECK constraint\)|Check constraint .* is violated\.)$/) },
        { ok: false, reason: "Data too long for column 'name'" },
      ]);
      expect(first.map((o, i) => (o.ok ? null : i)).filter((i) => i !== null)).toEqual([499, 599, 699]);
      expect(await mysqlSql(url, 'select count(*) as n, sum(id in (500, 600, 700)) as bad from people')).toEqual([{ n: '997', bad: '0' }]);

      // Rows that exist now are merged, not loaded a second time.
      const second = await writer.write(Array.from({ length: 201 }, (_, i) => person(900 + i, `renamed ${900 + i}`)));
      expect(second.every((o) => o.ok)).toBe(true);
      expect(await mysqlSql(url, "select count(*) as n, sum(name like 'renamed%') as renamed from people")).toEqual([{ n: '1097', renamed: '201' }]);
    } finally {
      await destination.close();
    }
  });

  it('loads PostgreSQL COPY text lines as they are, and decodes them for rows that go by statement', async () => {
    const url = await createTestMysqlDatabase('destination_lines');
    await mysqlSql(
      url,
      'create table t (id bigint primary key, name varchar(80) not null, amount decimal(10,2), ratio double, day date, at datetime(6), seen timestamp(6) null)',
    );
    const destination = await MysqlDestination.connect({ url });
    try {
      const columns = ['id', 'name', 'amount', 'ratio', 'day', 'at', 'seen'];
      // int8, text, numeric, float8, date, timestamp, timestamptz
      const encoding = { format: COPY_TEXT_FORMAT, types: [20, 25, 1700, 701, 1082, 1114, 1184] };
      const writer = await destination.prepare({ object: 't', keyColumns: ['id'], columns, encoding });
      expect(writer.takesLines).toBe(true);
      const lines = (text: string): WriteOperation[] => {
        const data = Buffer.from(text);
        const ops: WriteOperation[] = [];
        for (let start = 0; start < data.length; ) {
          const end = data.indexOf(0x0a, start) + 1;
          ops.push({ kind: 'upsert', key: [Number(data.toString('utf8', start, data.indexOf(0x09, start)))], values: [], line: { data, start, end } });
          start = end;
        }
        return ops;
      };
      const first = await writer.write(
        lines(
          '1\ttab\\there\\nnew \\\\ back \\f feed \\v vt \\b bs é\t12.30\t0.1\t2024-01-02\t2024-01-02 03:04:05.123456\t2024-01-02 05:04:05.5+02\n' +
            '2\t\\N\t1\t1\t2024-01-02\t2024-01-02 03:04:05\t2024-01-02 03:04:05+00\n' +
            '3\tplain\t\\N\t\\N\t\\N\t\\N\t2024-01-02 03:04:05+00\n',
        ),
      );
      expect(first).toEqual([{ ok: true }, { ok: false, reason: "Column 'name' cannot be null (NOT NULL column)" }, { ok: true }]);
      const read = () => mysqlSql(url, "select id, name, amount, ratio, day, at, date_format(seen, '%Y-%m-%d %H:%i:%s.%f') as seen from t order by id");
      expect(await read()).toEqual([
        { id: '1', name: 'tab\there\nnew \\ back \f feed \v vt \b bs é', amount: '12.30', ratio: 0.1, day: '2024-01-02', at: '2024-01-02 03:04:05.123456', seen: '2024-01-02 03:04:05.500000' },
        { id: '3', name: 'plain', amount: null, ratio: null, day: null, at: null, seen: '2024-01-02 03:04:05.000000' },
      ]);
      // The table holds rows now: changed rows are decoded and merged by statement.
      const second = await writer.write(lines('3\tchanged \\f\t7.50\t-2.5\t2020-02-29\t2020-02-29 23:59:59\t2020-03-01 01:00:00-01\n'));
      expect(second).toEqual([{ ok: true }]);
      expect((await read())[1]).toEqual({ id: '3', name: 'changed \f', amount: '7.50', ratio: -2.5, day: '2020-02-29', at: '2020-02-29 23:59:59.000000', seen: '2020-03-01 02:00:00.000000' });
    } finally {
      await destination.close();
    }
  });

  it('writes with statements when the server refuses LOCAL loads', async () => {
    const url = await createTestMysqlDatabase('destination_noload');
    await mysqlSql(url, 'create table people (id int primary key, name varchar(20) not null)');
    const [setting] = await mysqlSql<{ on: number | string }>(url, 'select @@global.local_infile as `on`');
    await mysqlSql(url, 'set global local_infile = 0');
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'name'] });
      const outcomes = await writer.write([
        { kind: 'insert', key: [1], values: [1, 'Ann'] },
        { kind: 'insert', key: [2], values: [2, null] },
      ]);
      expect(outcomes).toEqual([{ ok: true }, { ok: false, reason: "Column 'name' cannot be null (NOT NULL column)" }]);
      expect(await writer.write([{ kind: 'insert', key: [3], values: [3, 'Cy'] }])).toEqual([{ ok: true }]);
      expect(await mysqlSql(url, 'select id, name from people order by id')).toEqual([
        { id: 1, name: 'Ann' },
        { id: 3, name: 'Cy' },
      ]);
    } finally {
      await mysqlSql(url, `set global local_infile = ${Number(setting?.on) ? 1 : 0}`);
      await destination.close();
    }
  });

  it('rejects a value the column cannot hold, with the message, and writes the rest', async () => {
    const url = await createTestMysqlDatabase('destination_strict');
    await mysqlSql(url, 'create table scores (id int primary key, score int not null, note varchar(3))');
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'scores', keyColumns: ['id'], columns: ['id', 'score', 'note'] });
      const outcomes = await writer.write([
        { kind: 'upsert', key: [1], values: [1, 10, 'ok'] },
        { kind: 'upsert', key: [2], values: [2, 'abc', null] },
        { kind: 'upsert', key: [3], values: [3, 3, 'too long'] },
        { kind: 'upsert', key: [4], values: [4, '40', null] },
      ]);
      expect(outcomes[0]).toEqual({ ok: true });
      expect(outcomes[1]).toEqual({ ok: false, reason: expect.stringMatching(/^Incorrect integer value: 'abc' for column .*score/) });
      expect(outcomes[2]).toEqual({ ok: false, reason: expect.stringMatching(/^Data too long for column 'note'$/) });
      expect(outcomes[3]).toEqual({ ok: true });
      expect(await mysqlSql(url, 'select id, score, note from scores order by id')).toEqual([
        { id: 1, score: 10, note: 'ok' },
        { id: 4, score: 40, note: null },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('never overwrites or deletes a row whose key a case-insensitive collation takes as another (a, A, a with a trailing space): the later twin is rejected naming both', async () => {
    const url = await createTestMysqlDatabase('destination_key_twins');
    await mysqlSql(
      url,
      `create table codes (code varchar(20) collate utf8mb4_general_ci primary key, n int);
       create table tagged (code varchar(20) collate utf8mb4_general_ci primary key, n int, tag varchar(20) unique)`,
    );
    const destination = await MysqlDestination.connect({ url });
    try {
      const twin = (key: string, stored: string) => ({
        ok: false,
        reason: expect.stringContaining(
          `the row's key (code = ${JSON.stringify(key)}) is the key of the row code = ${JSON.stringify(stored)} already in "codes" to MySQL, whose column "code" (varchar(20), collation utf8mb4_general_ci)`,
        ) as string,
      });
      const upsert = (code: string, n: number): WriteOperation => ({ kind: 'upsert', key: [code], values: [code, n] });
      const writer = await destination.prepare({ object: 'codes', keyColumns: ['code'], columns: ['code', 'n'] });
      // Loaded into the empty table, then by statement: the first of the twins is written.
      expect(await writer.write([upsert('abc', 1), upsert('ABC', 2), upsert('abc ', 3), upsert('def', 4)])).toEqual([
        { ok: true },
        twin('ABC', 'abc'),
        twin('abc ', 'abc'),
        { ok: true },
      ]);
      // Merged into the rows that exist, on the next run.
      expect(await writer.write([upsert('ABC', 20), upsert('abc', 10), upsert('Def', 40)])).toEqual([twin('ABC', 'abc'), { ok: true }, twin('Def', 'def')]);
      const stored = () => mysqlSql(url, 'select code, n from codes order by code');
      expect(await stored()).toEqual([
        { code: 'abc', n: 10 },
        { code: 'def', n: 4 },
      ]);
      // A twin's delete leaves the row of the other key.
      expect(await writer.write([{ kind: 'delete', key: ['ABC'], values: [] }, { kind: 'delete', key: ['def'], values: [] }])).toEqual([{ ok: true }, { ok: true }]);
      expect(await stored()).toEqual([{ code: 'abc', n: 10 }]);

      // With another unique index, rows that exist are updated by key: a twin is not one of them.
      const tagged = await destination.prepare({ object: 'tagged', keyColumns: ['code'], columns: ['code', 'n', 'tag'] });
      expect(await tagged.write([{ kind: 'upsert', key: ['abc'], values: ['abc', 1, 'one'] }])).toEqual([{ ok: true }]);
      expect(await tagged.write([{ kind: 'upsert', key: ['ABC'], values: ['ABC', 2, 'two'] }])).toEqual([
        { ok: false, reason: expect.stringMatching(/^Duplicate entry 'ABC' for key 'PRIMARY'/) },
      ]);
      expect(await mysqlSql(url, 'select code, n, tag from tagged')).toEqual([{ code: 'abc', n: 1, tag: 'one' }]);
    } finally {
      await destination.close();
    }
  });

  it('refuses text longer than its VARCHAR(n) or CHAR(n) column on every write path, loaded or by statement, and never cuts it', async () => {
    const url = await createTestMysqlDatabase('destination_lengths');
    await mysqlSql(url, 'create table codes (id char(5) primary key, code varchar(5), grade char(5))');
    const destination = await MysqlDestination.connect({ url });
    try {
      const columns = ['id', 'code', 'grade'];
      const writer = await destination.prepare({ object: 'codes', keyColumns: ['id'], columns });
      // Loaded (a LOCAL load cuts the value with a warning), then written by statement.
      expect(
        await writer.write([
          { kind: 'insert', key: ['a'], values: ['a', 'abc', 'x'] },
          { kind: 'insert', key: ['b'], values: ['b', 'abcdefgh', 'x'] },
          { kind: 'insert', key: ['c'], values: ['c', null, 'abcdef'] },
          { kind: 'insert', key: ['abcde'], values: ['abcde', 'ééééé', 'x'] },
        ]),
      ).toEqual([{ ok: true }, { ok: false, reason: "Data too long for column 'code'" }, { ok: false, reason: "Data too long for column 'grade'" }, { ok: true }]);
      // Updates join the rows by key: a key longer than the column finds no row (it is not cut to another's).
      expect(
        await writer.write([
          { kind: 'update', key: ['a'], values: ['a', 'zzzzzzzz', 'y'] },
          { kind: 'update', key: ['abcde'], values: ['abcde', 'klm', 'yyyyyyy'] },
          { kind: 'update', key: ['abcdefgh'], values: ['abcdefgh', 'nop', null] },
          { kind: 'update', key: ['a'], values: ['a', 'ab', 'y'] },
        ]),
      ).toEqual([
        { ok: false, reason: "Data too long for column 'code'" },
        { ok: false, reason: "Data too long for column 'grade'" },
        { ok: false, reason: 'no row with id = "abcdefgh" in "codes"' },
        { ok: true },
      ]);
      // Upserts of rows that exist: loaded, which meets them, then INSERT ... ON DUPLICATE KEY UPDATE.
      expect(
        await writer.write([
          { kind: 'upsert', key: ['a'], values: ['a', 'abcdefgh', 'y'] },
          { kind: 'upsert', key: ['abcde'], values: ['abcde', 'qrs', 'z'] },
        ]),
      ).toEqual([{ ok: false, reason: "Data too long for column 'code'" }, { ok: true }]);
      expect(await writer.write([{ kind: 'delete', key: ['abcdefgh'], values: [] }])).toEqual([{ ok: true }]);

      // Rows read from PostgreSQL as COPY text lines, loaded as they are, then decoded for statements.
      const lineWriter = await destination.prepare({ object: 'codes', keyColumns: ['id'], columns, encoding: { format: COPY_TEXT_FORMAT, types: [25, 25, 25] } });
      expect(lineWriter.takesLines).toBe(true);
      const data = Buffer.from('d\tabc\tx\ne\tabcdefgh\tx\n');
      expect(
        await lineWriter.write([
          { kind: 'insert', key: ['d'], values: [], line: { data, start: 0, end: 8 } },
          { kind: 'insert', key: ['e'], values: [], line: { data, start: 8, end: data.length } },
        ]),
      ).toEqual([{ ok: true }, { ok: false, reason: "Data too long for column 'code'" }]);
      expect(await mysqlSql(url, 'select id, code, grade from codes order by id')).toEqual([
        { id: 'a', code: 'ab', grade: 'y' },
        { id: 'abcde', code: 'qrs', grade: 'z' },
        { id: 'd', code: 'abc', grade: 'x' },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('rejects a value that is no member of an ENUM or SET column with a message naming the members', async () => {
    const url = await createTestMysqlDatabase('destination_members');
    await mysqlSql(url, "create table items (id int primary key, size enum('small','large'), colours set('red','blue'))");
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'items', keyColumns: ['id'], columns: ['id', 'size', 'colours'] });
      const outcomes = await writer.write([
        { kind: 'insert', key: [1], values: [1, 'large', 'blue,red'] },
        { kind: 'insert', key: [2], values: [2, 'medium', null] },
        { kind: 'insert', key: [3], values: [3, null, 'red,green'] },
      ]);
      expect(outcomes).toEqual([
        { ok: true },
        {
          ok: false,
          reason: "Data truncated for column 'size': the value is not one of the column's members (enum('small','large')) — add it to the column's type, or change it to a member in the model's query",
        },
        {
          ok: false,
          reason: "Data truncated for column 'colours': the value is not a comma-separated list of the column's members (set('red','blue')) — add it to the column's type, or change it to a member in the model's query",
        },
      ]);
      expect(await mysqlSql(url, 'select id, size, colours from items')).toEqual([{ id: 1, size: 'large', colours: 'red,blue' }]);
    } finally {
      await destination.close();
    }
  });

  it('fails a sync whose user lacks a privilege on the table with the GRANT that gives it, naming the account', async () => {
    const url = new URL(await createTestMysqlDatabase('destination_grants'));
    const database = url.pathname.slice(1);
    const user = `ro_${database.slice(-10)}`;
    await mysqlSql(
      url.toString(),
      `create table people (id int primary key, name varchar(20)); insert into people values (1, 'Ann');
       create user '${user}'@'%' identified by 'pw'; grant select on \`${database}\`.people to '${user}'@'%';
       create user '${user}_w'@'%' identified by 'pw'; grant insert on \`${database}\`.people to '${user}_w'@'%'`,
    );
    const as = (name: string) => Object.assign(new URL(url.toString()), { username: name, password: 'pw' }).toString();
    const table = `\`${database}\`.\`people\``;
    try {
      // May read, not write: the grant names what the batch does.
      const reader = await MysqlDestination.connect({ url: as(user) });
      try {
        const writer = await reader.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'name'] });
        const upsert = await failure(writer.write([{ kind: 'upsert', key: [2], values: [2, 'Bob'] }]));
        expect(upsert.code).toBe(ErrorCode.Schema);
        expect(upsert.message).toMatch(new RegExp(`^writing to "people" in destination MySQL at .* was refused: .*command denied to user '${user}'.* — grant the destination's user what the sync does: GRANT SELECT, INSERT, UPDATE ON ${table} TO '${user}'@'%'$`));
        const deletes = await failure(writer.write([{ kind: 'delete', key: [1], values: [] }]));
        expect(deletes.message).toMatch(new RegExp(`GRANT SELECT, DELETE ON ${table} TO '${user}'@'%'$`));
      } finally {
        await reader.close();
      }
      // May write, not read: refused before any row goes.
      const writerOnly = await MysqlDestination.connect({ url: as(`${user}_w`) });
      try {
        const denied = await failure(writerOnly.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'name'] }));
        expect(denied.code).toBe(ErrorCode.Schema);
        expect(denied.message).toMatch(
          new RegExp(`^table "people" in destination MySQL at .* cannot be read: SELECT command denied .* — grant the destination's user what the sync does: GRANT SELECT, INSERT, UPDATE ON ${table} TO '${user}_w'@'%' \\(and DELETE when the sync deletes rows\\)$`),
        );
      } finally {
        await writerOnly.close();
      }
      expect(await mysqlSql(url.toString(), 'select id, name from people')).toEqual([{ id: 1, name: 'Ann' }]);
    } finally {
      await mysqlSql(url.toString(), `drop user '${user}'@'%'; drop user '${user}_w'@'%'`);
    }
  });

  it('rejects text a utf8mb3 or latin1 column cannot hold (an emoji) with a message naming the column, its character set and how to widen it', async () => {
    const url = await createTestMysqlDatabase('destination_charsets');
    await mysqlSql(url, 'create table notes (id int primary key, title varchar(20) character set utf8mb3 not null, body text character set latin1, tag varchar(10) character set utf8mb4)');
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'notes', keyColumns: ['id'], columns: ['id', 'title', 'body', 'tag'] });
      const widen = (column: string, type: string) =>
        ` — change the column to character set utf8mb4, which holds every character (alter table \`${new URL(url).pathname.slice(1)}\`.\`notes\` modify \`${column}\` ${type} character set utf8mb4, keeping its NOT NULL and DEFAULT), or convert the value in the model's query`;
      const rows = (kind: 'insert' | 'upsert'): WriteOperation[] => [
        { kind, key: [1], values: [1, 'héllo', 'café', '😀'] },
        { kind, key: [2], values: [2, 'party 🎉', null, null] },
        { kind, key: [3], values: [3, 'ok', 'Ζεύς', null] },
      ];
      // Loaded into the empty table (the load's warning sends the rows by statement), then merged.
      for (const kind of ['insert', 'upsert'] as const) {
        const outcomes = await writer.write(rows(kind));
        expect(outcomes[0]).toEqual({ ok: true });
        expect(outcomes[1]).toEqual({
          ok: false,
          reason: expect.stringMatching(/^Incorrect string value: '\\xF0\\x9F\\x8E\\x89' for column .*title.*: column "title" is varchar\(20\) in character set utf8mb3, which holds no 4-byte character \(an emoji, say\) — /),
        });
        expect((outcomes[1] as { reason: string }).reason.endsWith(widen('title', 'varchar(20)'))).toBe(true);
        expect(outcomes[2]).toEqual({ ok: false, reason: expect.stringMatching(/: column "body" is text in character set latin1, which does not have this character — /) });
      }
      expect(await mysqlSql(url, 'select id, title, body, tag from notes')).toEqual([{ id: 1, title: 'héllo', body: 'café', tag: '😀' }]);
    } finally {
      await destination.close();
    }
  });

  it('refuses to write a generated column before any row goes, naming it and its expression; a default expression takes writes', async () => {
    const url = await createTestMysqlDatabase('destination_generated');
    await mysqlSql(
      url,
      `create table people (id int primary key, first varchar(20), last varchar(20), full_name varchar(41) as (concat(first, ' ', last)) virtual,
         initials varchar(2) as (concat(left(first, 1), left(last, 1))) stored, seen datetime default current_timestamp)`,
    );
    const destination = await MysqlDestination.connect({ url });
    try {
      const error = await failure(destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'first', 'last', 'full_name', 'initials'] }));
      expect(error.code).toBe(ErrorCode.Schema);
      // The expression as the server prints it (MySQL 8 adds the literals' character sets).
      expect(error.message).toMatch(/^columns "full_name" \(as concat\(`first`,.*`last`\)\), "initials" \(as concat\(left\(`first`,1\),left\(`last`,1\)\)\) of table "people" in destination MySQL at .* are generated columns: MySQL computes their values and refuses any written to them — leave them out of the model's query, or map the model's fields to other columns$/);
      const single = await failure(destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'Full_Name'] }));
      expect(single.message).toMatch(/^column "full_name" \(as .*\) of table "people" .* is a generated column: MySQL computes its values and refuses any written to it — leave it out/);
      const writer = await destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'first', 'last', 'seen'] });
      expect(await writer.write([{ kind: 'upsert', key: [1], values: [1, 'Ada', 'Lovelace', '2024-01-02T03:04:05Z'] }])).toEqual([{ ok: true }]);
      expect(await mysqlSql(url, 'select full_name, initials, seen from people')).toEqual([{ full_name: 'Ada Lovelace', initials: 'AL', seen: '2024-01-02 03:04:05' }]);
    } finally {
      await destination.close();
    }
  });

  it('fails the batch as transient when its connection is killed, and writes again afterwards', async () => {
    const { url, destination } = await crm();
    const other = await mysql.createConnection({ uri: url });
    try {
      const writer = await destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: CONTACT_COLUMNS });
      // Another session holds the row: the batch waits for its lock, and is killed while it waits.
      await other.query('start transaction');
      await other.query('select * from contacts where id = 10 for update');
      // Settled at once (it fails while the loop below still polls); checked after the kill.
      const writing = writer.write([contact('update', 10, 2, 'taken@example.com', 'Waiting')]).then(
        () => null,
        (error: unknown) => error,
      );
      const db = new URL(url).pathname.slice(1);
      let killed = false;
      for (let attempt = 0; attempt < 200 && !killed; attempt++) {
        const [blocked] = await mysqlSql<{ id: number }>(
          url,
          `select id from information_schema.processlist where db = ? and id <> connection_id() and info like 'update%'`,
          [db],
        );
        if (blocked) {
          await mysqlSql(url, `kill connection ${Number(blocked.id)}`);
          killed = true;
        } else await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(killed).toBe(true);
      const error = await writing;
      expect(error).toBeInstanceOf(LockstepError);
      expect(error).toMatchObject({ code: ErrorCode.Transient, retryable: true });
      expect((error as LockstepError).message).toMatch(/Connection lost.* — the batch can be retried/);
      await other.query('rollback');
      expect(await writer.write([contact('update', 10, 2, 'taken@example.com', 'Written')])).toEqual([{ ok: true }]);
      expect(await mysqlSql(url, 'select name from contacts where id = 10')).toEqual([{ name: 'Written' }]);
    } finally {
      await other.end();
      await destination.close();
    }
  });

  it('stops a write it gave up on at its timeout on the server too: it never lands later, and nothing waits for it', async () => {
    const { url } = await crm();
    const destination = await MysqlDestination.connect({ url, timeouts: { statementMs: 500 } });
    const other = await mysql.createConnection({ uri: url });
    try {
      const writer = await destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: CONTACT_COLUMNS });
      // Another session holds the row: the write waits for its lock past the write timeout.
      await other.query('start transaction');
      await other.query('select * from contacts where id = 10 for update');
      const started = Date.now();
      const error = await writer.write([contact('update', 10, 2, 'taken@example.com', 'Too late')]).then(
        () => null,
        (thrown: unknown) => thrown,
      );
      expect((error as LockstepError).message).toMatch(/timed out: the server did not answer for 0\.5 s/);
      expect(Date.now() - started).toBeLessThan(10_000);
      // The server stopped the statement: nothing of it waits on the lock any more.
      const db = new URL(url).pathname.slice(1);
      const waiting = async () =>
        (await mysqlSql(url, `select id from information_schema.processlist where db = ? and id <> connection_id() and info like 'update%'`, [db])).length;
      for (let attempt = 0; attempt < 100 && (await waiting()) > 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(await waiting()).toBe(0);
      await other.query('rollback');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await mysqlSql(url, 'select name from contacts where id = 10')).toEqual([{ name: 'Existing' }]);
    } finally {
      await other.end();
      await destination.close();
    }
  });

  it('fails a batch the server rolled back to end a deadlock with another session with a message naming it and where to read it, and writes it once that session is done', async () => {
    const url = await createTestMysqlDatabase('destination_deadlock');
    await mysqlSql(url, `create table deadlocked (id int primary key, name varchar(20)); ${seriesInsert('deadlocked', 40)}`);
    const destination = await MysqlDestination.connect({ url });
    const other = await mysql.createConnection({ uri: url });
    try {
      const writer = await destination.prepare({ object: 'deadlocked', keyColumns: ['id'], columns: ['id', 'name'] });
      // The other session changes more rows than the batch (so the server picks the batch to roll
      // back), row 2 among them; the batch deletes row 1, then waits on row 2.
      await other.query('start transaction');
      await other.query("update deadlocked set name = 'other' where id >= 2");
      const writing = writer.write([1, 2].map((id) => ({ kind: 'delete' as const, key: [id], values: [] }))).then(
        () => null,
        (thrown: unknown) => thrown as LockstepError,
      );
      const waiting = async () =>
        (await mysqlSql(url, "select trx_id from information_schema.innodb_trx where trx_state = 'LOCK WAIT' and trx_query like 'delete from %deadlocked%'")).length;
      for (let attempt = 0; attempt < 200 && (await waiting()) === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 25));
      // The other session now waits on row 1: each waits on the other.
      await other.query("update deadlocked set name = 'other' where id = 1");
      const error = await writing;
      expect(error).toMatchObject({ code: ErrorCode.Transient, retryable: true });
      expect(error?.message).toMatch(
        /^writing to "deadlocked" in destination MySQL at .* failed: Deadlock found when trying to get lock; try restarting transaction — the batch and another session writing the same rows each waited on rows the other had locked \(a deadlock\), and the server rolled the batch back — SHOW ENGINE INNODB STATUS shows both sessions' statements under LATEST DETECTED DEADLOCK: find that other writer, and run the sync when it is done$/,
      );
      await other.query('commit');
      expect(await writer.write([1, 2].map((id) => ({ kind: 'delete' as const, key: [id], values: [] })))).toEqual([{ ok: true }, { ok: true }]);
      expect(await mysqlSql(url, 'select count(*) as n, min(id) as first from deadlocked')).toEqual([{ n: '38', first: 3 }]);
    } finally {
      await other.end();
      await destination.close();
    }
  });

  it('sorts MySQL and MariaDB failures: deadlocks and lock wait timeouts transient, rule breaks per row, access fatal', () => {
    const error = (errno: number, sqlState: string, code = '') => Object.assign(new Error('x'), { errno, sqlState, code });
    expect(classifyMysqlError(error(1213, '40001', 'ER_LOCK_DEADLOCK'))).toBe(MysqlFailure.Transient);
    expect(classifyMysqlError(error(1205, 'HY000', 'ER_LOCK_WAIT_TIMEOUT'))).toBe(MysqlFailure.Transient);
    expect(classifyMysqlError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104 }))).toBe(MysqlFailure.Transient);
    expect(classifyMysqlError(Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST' }))).toBe(
      MysqlFailure.Transient,
    );
    expect(classifyMysqlError(error(3819, 'HY000'))).toBe(MysqlFailure.Data);
    expect(classifyMysqlError(error(4025, '23000'))).toBe(MysqlFailure.Data);
    expect(classifyMysqlError(error(1452, '23000'))).toBe(MysqlFailure.Data);
    expect(classifyMysqlError(error(1644, '45000', 'ER_SIGNAL_EXCEPTION'))).toBe(MysqlFailure.Data);
    expect(classifyMysqlError(error(1045, '28000'))).toBe(MysqlFailure.Connection);
    expect(classifyMysqlError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', errno: -111 }))).toBe(MysqlFailure.Connection);
    expect(classifyMysqlError(error(1054, '42S22'))).toBe(MysqlFailure.Statement);
  });

  it('refuses a database-less URL with a message saying so', async () => {
    // The server's URL without its database (TEST_MYSQL_URL may name one).
    const serverOnly = new URL(inject('mysqlUrl'));
    serverOnly.pathname = '/';
    const destination = await MysqlDestination.connect({ url: serverOnly.toString() });
    try {
      const error = await failure(destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: ['id'] }));
      expect(error.code).toBe(ErrorCode.Schema);
      expect(error.message).toMatch(/names no database/);
    } finally {
      await destination.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Deletes through a sync

describe('MySQL destination in a sync', () => {
  it('mirror deletes the rows that left the model, and deleteBehavior: delete does in upsert mode', async () => {
    const url = await createTestMysqlDatabase('destination_mirror');
    await mysqlSql(url, 'create table people (id int primary key, name varchar(50) not null); create table people2 (id int primary key, name varchar(50) not null)');
    const dir = tempDir();
    const warehouse = join(dir, 'warehouse.db');
    sqlite(
      warehouse,
      `create table people (id integer primary key, name text);
       with recursive s(v) as (select 1 union all select v + 1 from s where v < 50) insert into people select v, 'person ' || v from s`,
    );
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { type: 'mysql', url })],
        models: [model('people', 'warehouse', 'select id, name from people')],
        syncs: [
          sync('mirror', { model: 'people', destination: 'crm', object: 'people', mode: 'mirror', batchSize: 20 }),
          sync('upsert-delete', { model: 'people', destination: 'crm', object: 'people2', mode: 'upsert', deleteBehavior: 'delete', batchSize: 20 }),
        ],
      }),
      connectors: () => registry,
    });
    await using _ = h;
    const run = async (slug: string) => {
      const { run } = await h.app.runs.triggerSync(slug);
      return h.app.runs.waitForSyncRun(run.id);
    };
    for (const slug of ['mirror', 'upsert-delete']) expect((await run(slug)).status).toBe('success');
    expect(await mysqlSql(url, 'select (select count(*) from people) as a, (select count(*) from people2) as b')).toEqual([{ a: '50', b: '50' }]);

    sqlite(warehouse, `delete from people where id % 10 = 0; update people set name = 'renamed' where id = 1`);
    for (const slug of ['mirror', 'upsert-delete']) {
      const second = await run(slug);
      expect(second.status).toBe('success');
      expect(second.successfulRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 5 });
    }
    for (const table of ['people', 'people2']) {
      expect(await mysqlSql(url, `select count(*) as n, sum(id % 10 = 0) as gone from ${table}`)).toEqual([{ n: '45', gone: '0' }]);
      expect(await mysqlSql(url, `select name from ${table} where id = 1`)).toEqual([{ name: 'renamed' }]);
    }
  });

  it('keeps a row whose key is 0 under 0 in an AUTO_INCREMENT key column, run after run, and deletes it', async () => {
    const url = await createTestMysqlDatabase('destination_zero_key');
    await mysqlSql(url, 'create table accounts (id int auto_increment primary key, name varchar(20))');
    const dir = tempDir();
    const warehouse = join(dir, 'warehouse.db');
    sqlite(warehouse, `create table accounts (id integer primary key, name text); insert into accounts values (0, 'Unknown'), (1, 'Acme'), (2, 'Globex')`);
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { type: 'mysql', url })],
        models: [model('accounts', 'warehouse', 'select id, name from accounts')],
        syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', mode: 'mirror', maxDeletePercent: null })],
      }),
      connectors: () => registry,
    });
    await using _ = h;
    const run = async (options: { fullResync?: boolean } = {}) => {
      const { run } = await h.app.runs.triggerSync('accounts', options);
      return h.app.runs.waitForSyncRun(run.id);
    };
    const stored = () => mysqlSql(url, 'select id, name from accounts order by id');
    // Loaded into the empty table, then merged by statement, then sent again in full.
    expect((await run()).status).toBe('success');
    expect(await stored()).toEqual([
      { id: 0, name: 'Unknown' },
      { id: 1, name: 'Acme' },
      { id: 2, name: 'Globex' },
    ]);
    sqlite(warehouse, `update accounts set name = 'Nobody' where id = 0`);
    expect((await run()).status).toBe('success');
    expect((await run({ fullResync: true })).status).toBe('success');
    expect(await stored()).toEqual([
      { id: 0, name: 'Nobody' },
      { id: 1, name: 'Acme' },
      { id: 2, name: 'Globex' },
    ]);
    sqlite(warehouse, 'delete from accounts where id = 0');
    expect((await run()).successfulRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 1 });
    expect(await stored()).toEqual([
      { id: 1, name: 'Acme' },
      { id: 2, name: 'Globex' },
    ]);
  });

  it('writes times a SQLite file holds as text with a space and an offset (as Python prints them) into DATETIME, TIMESTAMP and DATE columns as UTC', async () => {
    const url = await createTestMysqlDatabase('destination_text_times');
    await mysqlSql(url, 'create table events (id int primary key, at datetime(6), seen timestamp(3) null, day date)');
    const dir = tempDir();
    sqlite(
      join(dir, 'app.db'),
      `create table events (id integer primary key, at text, seen text, day text);
       insert into events values (1, '2024-03-31 01:30:00+02:00', '2024-03-31 01:30:00.250+00:00', '2024-03-31 23:30:00-02:00'),
                                 (2, '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05', '2024-01-02'),
                                 (3, '2024-01-02T03:04:05Z', null, '2024-01-02 00:00:00')`,
    );
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('app', { path: 'app.db' })],
        destinations: [source('crm', { type: 'mysql', url })],
        models: [model('events', 'app', 'select id, at, seen, day from events')],
        syncs: [sync('events', { model: 'events', destination: 'crm', object: 'events', mode: 'upsert' })],
      }),
      connectors: () => registry,
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSync('events');
    const done = await h.app.runs.waitForSyncRun(run.id);
    expect(await h.app.store.listRejectedRows(done.id, 10, 0)).toEqual([]);
    expect(done).toMatchObject({ status: 'success', successfulRows: { addedCount: 3, changedCount: 0, removedCount: 0 } });
    expect(await mysqlSql(url, "select id, at, date_format(seen, '%Y-%m-%d %H:%i:%s.%f') as seen, day from events order by id")).toEqual([
      { id: 1, at: '2024-03-30 23:30:00.000000', seen: '2024-03-31 01:30:00.250000', day: '2024-04-01' },
      { id: 2, at: '2024-01-02 03:04:05.123456', seen: '2024-01-02 03:04:05.000000', day: '2024-01-02' },
      { id: 3, at: '2024-01-02 03:04:05.000000', seen: null, day: '2024-01-02' },
    ]);
  });

  it('writes a UUID given as text (PostgreSQL uuid, DuckDB UUID) into a BINARY(16) or VARBINARY(16) column as its 16 bytes, loaded, merged, updated and deleted by it', async () => {
    const url = await createTestMysqlDatabase('destination_uuid');
    await mysqlSql(url, 'create table accounts (id binary(16) primary key, owner varbinary(16), name varchar(20), raw varbinary(40))');
    const destination = await MysqlDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'accounts', keyColumns: ['id'], columns: ['id', 'owner', 'name', 'raw'] });
      const a = '550e8400-e29b-41d4-a716-446655440000';
      const b = '6BA7B810-9DAD-11D1-80B4-00C04FD430C8';
      const owner = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';
      const stored = () => mysqlSql(url, 'select hex(id) as id, hex(owner) as owner, name, cast(raw as char) as raw from accounts order by id');
      // Inserted (a LOCAL load into the empty table); a wider column keeps the text as it is.
      expect(
        await writer.write([
          { kind: 'upsert', key: [a], values: [a, owner, 'Acme', a] },
          { kind: 'upsert', key: [b], values: [b, null, 'Globex', null] },
        ]),
      ).toEqual([{ ok: true }, { ok: true }]);
      expect(await stored()).toEqual([
        { id: '550E8400E29B41D4A716446655440000', owner: 'F47AC10B58CC4372A5670E02B2C3D479', name: 'Acme', raw: a },
        { id: '6BA7B8109DAD11D180B400C04FD430C8', owner: null, name: 'Globex', raw: null },
      ]);
      // Merged and updated by key (a key's text in another case is the same UUID), then deleted.
      expect(await writer.write([{ kind: 'upsert', key: [a], values: [a, owner, 'Acme 2', null] }])).toEqual([{ ok: true }]);
      expect(await writer.write([{ kind: 'update', key: [b.toLowerCase()], values: [b.toLowerCase(), owner, 'Globex 2', null] }])).toEqual([{ ok: true }]);
      expect((await stored()).map((r) => [r.name, r.owner])).toEqual([
        ['Acme 2', 'F47AC10B58CC4372A5670E02B2C3D479'],
        ['Globex 2', 'F47AC10B58CC4372A5670E02B2C3D479'],
      ]);
      expect(await writer.write([{ kind: 'delete', key: [a], values: [] }])).toEqual([{ ok: true }]);
      expect((await stored()).map((r) => r.id)).toEqual(['6BA7B8109DAD11D180B400C04FD430C8']);
    } finally {
      await destination.close();
    }
  });

  it('writes binary values read from MySQL as their bytes: BINARY(16) ids and VARBINARY, loaded, merged and deleted', async () => {
    const url = await createTestMysqlDatabase('destination_binary');
    await mysqlSql(
      url,
      `create table things (id binary(16) primary key, data varbinary(8), name varchar(20));
       create table things_copy (id binary(16) primary key, data varbinary(8), name varchar(20));
       insert into things values (unhex('000102030405060708090a0b0c0d0e0f'), x'00ff', 'a'), (unhex('ffeeddccbbaa99887766554433221100'), '', 'b'),
                                 (unhex('0123456789abcdef0123456789abcdef'), null, 'c')`,
    );
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('shop', { type: 'mysql', url })],
        destinations: [source('copy', { type: 'mysql', url })],
        models: [model('things', 'shop', 'select id, data, name from things')],
        syncs: [sync('things', { model: 'things', destination: 'copy', object: 'things_copy', mode: 'mirror', maxDeletePercent: null })],
      }),
      connectors: () => registry,
    });
    await using _ = h;
    const run = async () => {
      const { run } = await h.app.runs.triggerSync('things');
      return h.app.runs.waitForSyncRun(run.id);
    };
    const same = async () =>
      expect(await mysqlSql(url, 'select hex(id) as id, hex(data) as data, name from things_copy order by id')).toEqual(
        await mysqlSql(url, 'select hex(id) as id, hex(data) as data, name from things order by id'),
      );
    // Into the empty table in bulk, then merged by statements, then a row deleted by its key.
    expect((await run()).status).toBe('success');
    await same();
    await mysqlSql(url, `update things set data = x'0a0b', name = 'a2' where name = 'a'; delete from things where name = 'c'`);
    const second = await run();
    expect(second.status).toBe('success');
    expect(second.successfulRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 1 });
    await same();
  });

  it('writes BIT columns as the numbers and bit strings given, loaded and by statement', async () => {
    const pgUrl = await createTestDatabase('mysql_bits');
    await sql(
      pgUrl,
      `create table masks (id int primary key, n int, bits bit(8), flag boolean, wide numeric(20));
       insert into masks values (1, 5, B'00000101', true, 18446744073709551615), (2, 255, B'11111111', false, 9007199254740993), (3, null, null, null, null)`,
    );
    const url = await createTestMysqlDatabase('destination_bits');
    await mysqlSql(url, 'create table masks (id int primary key, n bit(8), bits bit(8), flag bit(1), wide bit(64))');
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'postgres', url: pgUrl })],
        destinations: [source('crm', { type: 'mysql', url })],
        models: [model('masks', 'warehouse', 'select id, n, bits, flag, wide from masks')],
        syncs: [sync('masks', { model: 'masks', destination: 'crm', object: 'masks', mode: 'mirror' })],
      }),
      connectors: () => registry,
    });
    await using _ = h;
    const run = async () => {
      const { run } = await h.app.runs.triggerSync('masks');
      const done = await h.app.runs.waitForSyncRun(run.id);
      expect((await h.app.store.listRejectedRows(done.id, 10, 0)).map((r) => r.reason)).toEqual([]);
      return done;
    };
    const landed = () => mysqlSql(url, 'select id, n + 0 as n, bits + 0 as bits, flag + 0 as flag, cast(wide + 0 as char) as wide from masks order by id');
    expect((await run()).status).toBe('success');
    expect(await landed()).toEqual([
      { id: 1, n: 5, bits: 5, flag: 1, wide: '18446744073709551615' },
      { id: 2, n: 255, bits: 255, flag: 0, wide: '9007199254740993' },
      { id: 3, n: null, bits: null, flag: null, wide: null },
    ]);
    // Changed rows go by statement.
    await sql(pgUrl, `update masks set n = 6, bits = B'00000110', flag = false, wide = 18446744073709551614 where id = 1; update masks set n = 7, bits = B'00000111', flag = true, wide = 7 where id = 3`);
    expect((await run()).successfulRows).toEqual({ addedCount: 0, changedCount: 2, removedCount: 0 });
    expect(await landed()).toEqual([
      { id: 1, n: 6, bits: 6, flag: 0, wide: '18446744073709551614' },
      { id: 2, n: 255, bits: 255, flag: 0, wide: '9007199254740993' },
      { id: 3, n: 7, bits: 7, flag: 1, wide: '7' },
    ]);
  });

  it('takes rows from PostgreSQL as their COPY text lines, rejects a bad one alone, merges changes, and ends equal to the model', async () => {
    const pgUrl = await createTestDatabase('mysql_lines');
    await sql(
      pgUrl,
      `create table people (id bigint primary key, name text, score numeric(6,2), seen_at timestamptz, born date, flag boolean);
       insert into people select g, 'person ' || g || E'\\t\\\\ é', g / 4.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
         date '2000-01-01' + g, g % 2 = 0 from generate_series(1, 3000) g;
       update people set name = null where id = 1234`,
    );
    const url = await createTestMysqlDatabase('destination_lines_sync');
    await mysqlSql(
      url,
      `create table people (id bigint primary key, name varchar(50) not null, score decimal(6,2), seen_at timestamp(6) null, born date);
       create table flags (id bigint primary key, flag tinyint(1))`,
    );
    const registry = createConnectorRegistry();
    if (!registry.kind('mysql')) registry.register(mysqlConnector);
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'postgres', url: pgUrl })],
        destinations: [source('crm', { type: 'mysql', url })],
        models: [
          model('people', 'warehouse', 'select id, name, score, seen_at, born from people'),
          // A boolean has no COPY text MySQL reads: these rows go as values.
          model('flags', 'warehouse', 'select id, flag from people'),
        ],
        syncs: [
          sync('people', { model: 'people', destination: 'crm', object: 'people', mode: 'mirror', batchSize: 1000 }),
          sync('flags', { model: 'flags', destination: 'crm', object: 'flags', mode: 'mirror', batchSize: 1000 }),
        ],
      }),
      connectors: () => registry,
    });
    await using _ = h;
    const run = async (slug: string) => {
      const { run } = await h.app.runs.triggerSync(slug);
      return h.app.runs.waitForSyncRun(run.id);
    };
    const equalToModel = async (model: string, table: string) => {
      const left = await PostgresSource.connect({ url: pgUrl });
      const right = await MysqlSource.connect({ url });
      try {
        expect((await readAll(right, `select * from ${table} order by id`, 1000)).rows).toEqual((await readAll(left, `${model} order by id`, 1000)).rows);
      } finally {
        await left.close();
        await right.close();
      }
    };

    const first = await run('people');
    expect(first.status).toBe('warning');
    expect(first.failedRows).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
    expect((await h.app.store.listRejectedRows(first.id, 10, 0)).map((r) => [r.key, r.reason])).toEqual([['[1234]', "Column 'name' cannot be null (NOT NULL column)"]]);
    expect((await run('flags')).status).toBe('success');
    expect(await mysqlSql(url, 'select name, score, seen_at, born from people where id = 5')).toEqual([
      { name: 'person 5\t\\ é', score: '1.25', seen_at: '2024-01-01 00:05:00.000000', born: '2000-01-06' },
    ]);
    await equalToModel('select id, flag from people', 'flags');

    await sql(pgUrl, `update people set name = 'fixed' where id = 1234; update people set score = score + 1 where id % 100 = 0; delete from people where id = 3000`);
    const second = await run('people');
    expect(second.status).toBe('success');
    expect(second.successfulRows).toEqual({ addedCount: 1, changedCount: 29, removedCount: 1 });
    await equalToModel('select id, name, score, seen_at, born from people', 'people');
    expect((await run('people')).plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
  });
});

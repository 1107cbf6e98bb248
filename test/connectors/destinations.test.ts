import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { COPY_TEXT_FORMAT } from '../../src/connectors/copy-text.js';
import { PostgresDestination, SqliteDestination } from '../../src/connectors/index.js';
import { ErrorCode, type LockstepError } from '../../src/core/errors.js';
import type { Value, WriteOperation } from '../../src/core/ports.js';
import { createTestDatabase, refusesWrongPassword, sql } from '../helpers/postgres.js';
import { describeDestinationContract, type FixtureColumn, type FixtureTable } from './destination-contract.js';

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

function tableDdl(table: FixtureTable, types: Record<FixtureColumn['type'], string>): string {
  const columns = table.columns.map((c) =>
    [
      q(c.name),
      types[c.type],
      c.notNull ? 'not null' : '',
      c.unique ? 'unique' : '',
      c.references ? `references ${q(c.references.table)} (${q(c.references.column)})` : '',
      c.check ? `check (${c.check})` : '',
    ]
      .filter(Boolean)
      .join(' '),
  );
  if (table.primaryKey.length > 0) columns.push(`primary key (${table.primaryKey.map(q).join(', ')})`);
  return `create table ${q(table.name)} (${columns.join(', ')})`;
}

function tempPath(file: string): string {
  return join(mkdtempSync(join(tmpdir(), 'lockstep-destination-')), file);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** A binary value as sources give it: base64 of its bytes (`hex`). */
const base64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

/**
 * Writes binary values given as base64 into table `blobs` (id, data, note), each kind of write once:
 * rows 00ff10, 01 (then updated to data cafe) and 03 (data given as bytea's text `\x0a0b`) stay;
 * row 02 is deleted by its key.
 */
async function writeBinaryRows(destination: PostgresDestination | SqliteDestination): Promise<void> {
  const writer = await destination.prepare({ object: 'blobs', keyColumns: ['id'], columns: ['id', 'data', 'note'] });
  const row = (hex: string, data: Value, note: Value = null) => ({ key: [base64(hex)], values: [base64(hex), data, note] });
  expect(
    await writer.write([
      { kind: 'upsert', ...row('00ff10', base64('deadbeef'), 'AP8Q') },
      { kind: 'insert', ...row('01', 'not base64!') },
      { kind: 'upsert', ...row('02', '') },
      { kind: 'upsert', ...row('03', '\\x0a0b') },
    ]),
  ).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: true }]);
  expect(await writer.write([{ kind: 'update', ...row('01', base64('cafe')) }])).toEqual([{ ok: true }]);
  expect(await writer.write([{ kind: 'delete', key: [base64('02')], values: [] }])).toEqual([{ ok: true }]);
}

const PG_TYPES = { int: 'integer', text: 'text', float: 'double precision', decimal: 'numeric(10,2)' } as const;

describeDestinationContract('postgres', {
  async create(fixture) {
    const url = await createTestDatabase('destination');
    for (const table of fixture.tables) {
      await sql(url, tableDdl(table, PG_TYPES));
      for (const row of table.rows ?? []) {
        await sql(url, `insert into ${q(table.name)} values (${row.map((_, i) => `$${i + 1}`).join(', ')})`, row);
      }
    }
    return {
      destination: await PostgresDestination.connect({ url }),
      rows: (table, orderBy) => sql<Record<string, Value>>(url, `select * from ${q(table)} order by ${q(orderBy)}`),
    };
  },
  openUnreachable: () => PostgresDestination.connect({ url: 'postgres://crm:s3cret-pw@127.0.0.1:1/crm' }),
  secret: 's3cret-pw',
});

describe('PostgresDestination', () => {
  it('rejects a value that does not fit the column type and writes the rest', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table scores (id integer primary key, score integer, seen_at timestamptz)');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'scores', keyColumns: ['id'], columns: ['id', 'score', 'seen_at'] });
      const outcomes = await writer.write([
        { kind: 'upsert', key: [1], values: [1, 10, '2024-01-02T03:04:05.000Z'] },
        { kind: 'upsert', key: [2], values: [2, 'abc', null] },
        { kind: 'upsert', key: [3], values: [3, true, null] },
        { kind: 'upsert', key: [4], values: [4, '40', null] },
      ]);
      expect(outcomes[0]).toEqual({ ok: true });
      expect(outcomes[1]).toEqual({ ok: false, reason: 'column "score": invalid input syntax for type integer: "abc"' });
      // A boolean (a MySQL TINYINT(1) read as one) lands in a number column as 1 or 0.
      expect(outcomes[2]).toEqual({ ok: true });
      expect(outcomes[3]).toEqual({ ok: true });
      const rows = await sql<{ id: number; score: number; t: string | null }>(
        url,
        `select id, score, to_char(seen_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as t from scores order by id`,
      );
      expect(rows).toEqual([
        { id: 1, score: 10, t: '2024-01-02 03:04:05' },
        { id: 3, score: 1, t: null },
        { id: 4, score: 40, t: null },
      ]);
    } finally {
      await destination.close();
    }
  });

  it("rejects alone a row that a trigger refuses (RAISE EXCEPTION), with the trigger's message, and writes the rest", async () => {
    const url = await createTestDatabase('destination');
    await sql(
      url,
      `create table members (id integer primary key, score integer);
       create function members_check() returns trigger language plpgsql as $$
       begin
         if tg_op = 'DELETE' then
           if old.id = 1 then raise exception 'member % is an owner and cannot be removed', old.id; end if;
           return old;
         end if;
         if new.score < 0 then raise exception 'score % is below zero', new.score using hint = 'scores start at 0'; end if;
         return new;
       end $$;
       create trigger members_check before insert or update or delete on members for each row execute function members_check();`,
    );
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'members', keyColumns: ['id'], columns: ['id', 'score'] });
      const refused = { ok: false, reason: 'score -5 is below zero (HINT: scores start at 0)' };
      // Copied into the empty table, then merged into rows that exist, then each kind by statement.
      expect(await writer.write([1, 2, 3].map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === 2 ? -5 : id] })))).toEqual([{ ok: true }, refused, { ok: true }]);
      expect(await writer.write([1, 2, 3].map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === 3 ? -5 : 10 * id] })))).toEqual([{ ok: true }, { ok: true }, refused]);
      expect(await writer.write([{ kind: 'update', key: [1], values: [1, -5] }, { kind: 'update', key: [2], values: [2, 7] }])).toEqual([refused, { ok: true }]);
      expect(await writer.write([{ kind: 'insert', key: [4], values: [4, -5] }, { kind: 'insert', key: [5], values: [5, 5] }])).toEqual([refused, { ok: true }]);
      expect(await writer.write([1, 2].map((id) => ({ kind: 'delete' as const, key: [id], values: [] })))).toEqual([
        { ok: false, reason: 'member 1 is an owner and cannot be removed' },
        { ok: true },
      ]);
      expect(await sql(url, 'select id, score from members order by id')).toEqual([
        { id: 1, score: 10 },
        { id: 3, score: 3 },
        { id: 5, score: 5 },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('rejects alone a row that breaks a deferred foreign key (checked at commit, as Django declares them), and writes the rest', async () => {
    const url = await createTestDatabase('destination');
    await sql(
      url,
      `create table accounts (id integer primary key);
       insert into accounts values (1), (2);
       create table contacts (id integer primary key, account_id integer references accounts (id) deferrable initially deferred);`,
    );
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: ['id', 'account_id'] });
      const noAccount = {
        ok: false,
        reason: 'insert or update on table "contacts" violates foreign key constraint "contacts_account_id_fkey" (Key (account_id)=(9) is not present in table "accounts".)',
      };
      const upserts = (bad: number) => [1, 2, 3].map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === bad ? 9 : id === 3 ? 1 : id] }));
      // Copied into the empty table, merged into rows that exist, and by statement.
      expect(await writer.write(upserts(2))).toEqual([{ ok: true }, noAccount, { ok: true }]);
      expect(await writer.write(upserts(3))).toEqual([{ ok: true }, { ok: true }, noAccount]);
      expect(await writer.write([{ kind: 'update', key: [1], values: [1, 9] }, { kind: 'update', key: [2], values: [2, 1] }])).toEqual([noAccount, { ok: true }]);
      expect(await sql(url, 'select id, account_id from contacts order by id')).toEqual([
        { id: 1, account_id: 1 },
        { id: 2, account_id: 1 },
        { id: 3, account_id: 1 },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('writes to a table whose row-level security applies to its user (no COPY into it), and rejects alone each row a policy refuses', async () => {
    const adminUrl = await createTestDatabase('destination');
    const role = `writer_${randomBytes(4).toString('hex')}`;
    await sql(
      adminUrl,
      `create role ${role} login password 'pw';
       create table members (id integer primary key, tenant text not null, score integer);
       insert into members values (100, 'globex', 1);
       alter table members enable row level security;
       create policy acme_only on members using (tenant = 'acme') with check (tenant = 'acme');
       grant select, insert, update, delete on members to ${role};`,
    );
    const url = new URL(adminUrl);
    url.username = role;
    url.password = 'pw';
    const destination = await PostgresDestination.connect({ url: url.toString() });
    try {
      const writer = await destination.prepare({ object: 'members', keyColumns: ['id'], columns: ['id', 'tenant', 'score'] });
      const refused = { ok: false, reason: 'new row violates row-level security policy for table "members"' };
      const row = (kind: 'insert' | 'upsert' | 'update', id: number, tenant: string, score: number) => ({ kind, key: [id], values: [id, tenant, score] });
      expect(await writer.write([row('upsert', 1, 'acme', 1), row('upsert', 2, 'globex', 2), row('upsert', 3, 'acme', 3)])).toEqual([{ ok: true }, refused, { ok: true }]);
      expect(await writer.write([row('insert', 4, 'acme', 4), row('insert', 5, 'globex', 5)])).toEqual([{ ok: true }, refused]);
      // A row of another tenant that exists is refused too (the policy hides it from the update).
      expect(await writer.write([row('upsert', 1, 'acme', 10), row('upsert', 100, 'acme', 2)])).toEqual([
        { ok: true },
        { ok: false, reason: 'new row violates row-level security policy (USING expression) for table "members"' },
      ]);
      expect(await writer.write([row('update', 3, 'globex', 3), row('update', 4, 'acme', 40)])).toEqual([refused, { ok: true }]);
      expect(await sql(adminUrl, 'select id, tenant, score from members order by id')).toEqual([
        { id: 1, tenant: 'acme', score: 10 },
        { id: 3, tenant: 'acme', score: 3 },
        { id: 4, tenant: 'acme', score: 40 },
        { id: 100, tenant: 'globex', score: 1 },
      ]);
    } finally {
      await destination.close();
    }
  });

  it("writes through an updatable view (no COPY into it), and rejects alone each row outside its WITH CHECK OPTION", async () => {
    const url = await createTestDatabase('destination');
    await sql(
      url,
      `create table members_all (id integer primary key, tenant text not null, score integer);
       create view members as select * from members_all where tenant = 'acme' with check option;`,
    );
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'members', keyColumns: ['id'], columns: ['id', 'tenant', 'score'] });
      const outside = (score: number) => ({ ok: false, reason: `new row violates check option for view "members" (Failing row contains (2, globex, ${score}).)` });
      const upserts = (factor: number) => [1, 2, 3].map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === 2 ? 'globex' : 'acme', factor * id] }));
      expect(await writer.write(upserts(1))).toEqual([{ ok: true }, outside(2), { ok: true }]);
      expect(await writer.write(upserts(10))).toEqual([{ ok: true }, outside(20), { ok: true }]);
      expect(await writer.write([{ kind: 'insert', key: [4], values: [4, 'acme', 4] }, { kind: 'delete', key: [3], values: [] }])).toEqual([{ ok: true }, { ok: true }]);
      expect(await sql(url, 'select id, tenant, score from members_all order by id')).toEqual([
        { id: 1, tenant: 'acme', score: 10 },
        { id: 4, tenant: 'acme', score: 4 },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('writes lists given as JSON text into array columns, by copy and by statement', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table lists (id integer primary key, ns integer[], tags text[], grid integer[][], note text)');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'lists', keyColumns: ['id'], columns: ['id', 'ns', 'tags', 'grid', 'note'] });
      const tags = JSON.stringify(['a', 'b "quoted"', 'back\\slash', null, '{braces}, comma']);
      expect(
        await writer.write([
          { kind: 'upsert', key: [1], values: [1, '[50,51]', tags, '[[1,2],[3,4]]', '[not an array column]'] },
          { kind: 'upsert', key: [2], values: [2, '{7,8}', '[]', null, null] },
        ]),
      ).toEqual([{ ok: true }, { ok: true }]);
      expect(await writer.write([{ kind: 'update', key: [2], values: [2, '[9]', '["x"]', '[[5]]', null] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select id, ns, tags, grid, note from lists order by id')).toEqual([
        { id: 1, ns: [50, 51], tags: ['a', 'b "quoted"', 'back\\slash', null, '{braces}, comma'], grid: [[1, 2], [3, 4]], note: '[not an array column]' },
        { id: 2, ns: [9], tags: ['x'], grid: [[5]], note: null },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('rejects alone text holding a NUL character (which MySQL, SQLite and DuckDB keep), naming the column and how to remove it, by copy and by statement', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table notes (id integer primary key, title text, body text)');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'notes', keyColumns: ['id'], columns: ['id', 'title', 'body'] });
      const nul = expect.stringMatching(/^column "body": .* — PostgreSQL text cannot hold the NUL character \(\\0\) in the value: remove it in the model's query/);
      for (const kind of ['insert', 'upsert', 'update'] as const) {
        expect(
          await writer.write([
            { kind, key: [1], values: [1, 'ok', 'plain'] },
            { kind, key: [2], values: [2, 'ok', 'a\u0000b'] },
          ]),
        ).toEqual([{ ok: true }, { ok: false, reason: nul }]);
      }
      expect(await sql(url, 'select id, body from notes')).toEqual([{ id: 1, body: 'plain' }]);
    } finally {
      await destination.close();
    }
  });

  it('writes comma-separated text (a MySQL SET) into array columns as its items, and leaves array literals as they are', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table sets (id integer primary key, tags text[], ns integer[])');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'sets', keyColumns: ['id'], columns: ['id', 'tags', 'ns'] });
      expect(
        await writer.write([
          { kind: 'insert', key: [1], values: [1, 'a,c', '1,2'] },
          { kind: 'insert', key: [2], values: [2, '', ''] },
          { kind: 'insert', key: [3], values: [3, 'NULL,"q" x,back\\slash', '7'] },
          // PostgreSQL's own literals: with leading spaces, with dimensions.
          { kind: 'insert', key: [4], values: [4, '  {x,y}', '[0:1]={5,6}'] },
        ]),
      ).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: true }]);
      expect(await writer.write([{ kind: 'update', key: [2], values: [2, 'b', '3,4'] }])).toEqual([{ ok: true }]);
      expect(
        await writer.write([
          { kind: 'upsert', key: [5], values: [5, 'a,x', '1,x'] },
          { kind: 'upsert', key: [6], values: [6, '{a', '1'] },
        ]),
      ).toEqual([
        { ok: false, reason: 'column "ns": invalid input syntax for type integer: "x"' },
        { ok: false, reason: 'column "tags": malformed array literal: "{a" (Unexpected end of input.)' },
      ]);
      expect(await sql(url, 'select id, tags, ns::text from sets order by id')).toEqual([
        { id: 1, tags: ['a', 'c'], ns: '{1,2}' },
        { id: 2, tags: ['b'], ns: '{3,4}' },
        { id: 3, tags: ['NULL', '"q" x', 'back\\slash'], ns: '{7}' },
        { id: 4, tags: ['x', 'y'], ns: '[0:1]={5,6}' },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('writes integers beyond 2^53, given as decimal text (a MySQL BIT(64)), into bit columns as their bits; refuses what a column cannot hold, naming it', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table masks (id integer primary key, b64 bit(64), v64 bit varying(64), v bit varying, b20 bit(20), n int, b8 bit(8))');
    const destination = await PostgresDestination.connect({ url });
    try {
      const columns = ['id', 'b64', 'v64', 'v', 'b20', 'n', 'b8'];
      const writer = await destination.prepare({ object: 'masks', keyColumns: ['id'], columns });
      const top = '18446744073709551615';
      const ones = '1'.repeat(20);
      expect(
        await writer.write([
          { kind: 'insert', key: [1], values: [1, top, top, top, ones, 1, 5] },
          // 0s and 1s that a column holds as bits are its bits (a PostgreSQL bit string read as a value).
          { kind: 'insert', key: [2], values: [2, '1'.repeat(64), '10000000000000000', '10000000000000000', '00000000000000000001', 2, '00000101'] },
        ]),
      ).toEqual([{ ok: true }, { ok: true }]);
      expect(await writer.write([{ kind: 'upsert', key: [2], values: [2, '9007199254740993', '9007199254740993', null, null, 2, 255] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select id, b64::text, v64::text, v::text, b20::text, b8::text from masks order by id')).toEqual([
        { id: 1, b64: '1'.repeat(64), v64: '1'.repeat(64), v: '1'.repeat(64), b20: ones, b8: '00000101' },
        { id: 2, b64: (9007199254740993n).toString(2).padStart(64, '0'), v64: (9007199254740993n).toString(2), v: null, b20: null, b8: '11111111' },
      ]);
      expect(
        await writer.write([
          { kind: 'upsert', key: [3], values: [3, null, null, null, null, 3, 4095] },
          { kind: 'upsert', key: [4], values: [4, null, null, null, null, '3000000000', null] },
          { kind: 'upsert', key: [5], values: [5, null, null, null, null, '-18446744073709551616', null] },
          { kind: 'upsert', key: [6], values: [6, null, null, null, null, 6, '101010101'] },
        ]),
      ).toEqual([
        { ok: false, reason: `column "b8" is bit(8), which holds 8 bits: 4095 has 12 — change the column's type to bit(12) (or bit varying) to hold it` },
        { ok: false, reason: `column "n" is integer, which holds integers from -2147483648 to 2147483647: 3000000000 does not fit — change the column's type to bigint to hold it` },
        {
          ok: false,
          reason: `column "n" is integer, which holds integers from -2147483648 to 2147483647: -18446744073709551616 does not fit — change the column's type to numeric(20) (or numeric) to hold it`,
        },
        { ok: false, reason: `column "b8" is bit(8), which holds 8 bits: the bit string 101010101 has 9 — change the column's type to bit(9) (or bit varying) to hold it` },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('refuses text longer than its varchar(n) or char(n) column (or list item) by copy and by every statement, naming the column, and never cuts it', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table codes (id char(5) primary key, code varchar(5), grade char(5), tags varchar(5)[], marks char(5)[])');
    const destination = await PostgresDestination.connect({ url });
    const tooLong = (column: string, type: string, value: string, length: number, wider: string) => ({
      ok: false,
      reason: `column "${column}" is ${type}, which holds ${type.endsWith('[]') ? 'items of ' : ''}5 characters: "${value}" has ${length} — change the column's type to ${wider} to hold it`,
    });
    try {
      const writer = await destination.prepare({ object: 'codes', keyColumns: ['id'], columns: ['id', 'code', 'grade', 'tags', 'marks'] });
      // Copied, then replayed row by row by statement to find the rows COPY refused.
      expect(
        await writer.write([
          { kind: 'insert', key: ['a'], values: ['a', 'abc', 'x', '["ab"]', '["m"]'] },
          { kind: 'insert', key: ['b'], values: ['b', 'abcdefgh', 'x', null, null] },
          { kind: 'insert', key: ['c'], values: ['c', null, 'abcdef', null, null] },
          { kind: 'insert', key: ['d'], values: ['d', null, null, '["ok","toolong"]', null] },
          { kind: 'insert', key: ['e'], values: ['e', null, null, null, '["mmmmmm"]'] },
          // Spaces past the length are dropped, as PostgreSQL does on any write.
          { kind: 'insert', key: ['abcde'], values: ['abcde', 'fghij   ', 'x      ', null, null] },
          // An array literal as PostgreSQL writes it: its items are not read here.
          { kind: 'insert', key: ['f'], values: ['f', null, null, '{toolong}', null] },
        ]),
      ).toEqual([
        { ok: true },
        tooLong('code', 'character varying(5)', 'abcdefgh', 8, 'character varying(8) (or text)'),
        tooLong('grade', 'character(5)', 'abcdef', 6, 'character(6) (or text)'),
        tooLong('tags', 'character varying(5)[]', 'toolong', 7, 'character varying(7)[] (or text[])'),
        tooLong('marks', 'character(5)[]', 'mmmmmm', 6, 'character(6)[] (or text[])'),
        { ok: true },
        { ok: false, reason: 'column "tags": value too long for type character varying(5)' },
      ]);
      // Updates go by statement; a char(n) key finds its row with or without its padding, and
      // a key longer than the column finds no row (it is not cut to another row's key).
      expect(
        await writer.write([
          { kind: 'update', key: ['a'], values: ['a', 'zzzzzzzz', 'y', null, null] },
          { kind: 'update', key: ['a  '], values: ['a', 'ab', 'y', '["cd"]', null] },
          { kind: 'update', key: ['abcde'], values: ['abcde', 'klm', null, '["ok","toolong"]', null] },
          { kind: 'update', key: ['abcdefgh'], values: ['abcdefgh', 'nop', null, null, null] },
        ]),
      ).toEqual([
        tooLong('code', 'character varying(5)', 'zzzzzzzz', 8, 'character varying(8) (or text)'),
        { ok: true },
        tooLong('tags', 'character varying(5)[]', 'toolong', 7, 'character varying(7)[] (or text[])'),
        { ok: false, reason: 'no row with id = "abcdefgh" in "codes"' },
      ]);
      // Upserts meet existing rows: merged from the staging table, then replayed by statement.
      expect(
        await writer.write([
          { kind: 'upsert', key: ['a'], values: ['a', 'ab', 'yyyyyyy', null, null] },
          // Characters are counted, not bytes.
          { kind: 'upsert', key: ['abcde'], values: ['abcde', 'ééééé', 'z', null, '["m","n"]'] },
          { kind: 'upsert', key: ['g'], values: ['g', 'tuvwxyz', null, null, null] },
        ]),
      ).toEqual([
        tooLong('grade', 'character(5)', 'yyyyyyy', 7, 'character(7) (or text)'),
        { ok: true },
        tooLong('code', 'character varying(5)', 'tuvwxyz', 7, 'character varying(7) (or text)'),
      ]);
      expect(await writer.write([{ kind: 'delete', key: ['abcdefgh'], values: [] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select id, code, grade, tags, marks from codes order by id')).toEqual([
        { id: 'a    ', code: 'ab', grade: 'y    ', tags: ['cd'], marks: null },
        { id: 'abcde', code: 'ééééé', grade: 'z    ', tags: null, marks: ['m    ', 'n    '] },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('refuses text longer than the varchar(n) or char(n) a column\'s domain is over (or bits, or an integer out of range) by every statement, naming the column and its domain, and never cuts it; a domain\'s check refuses its row alone', async () => {
    const url = await createTestDatabase('destination');
    await sql(
      url,
      `create domain code5 as varchar(5);
       create domain label5 as code5;
       create domain grade5 as char(5);
       create domain flags8 as bit(8);
       create domain pos as integer check (value > 0);
       create table coded (id code5 primary key, code code5, label label5, grade grade5, flags flags8, tags code5[], n pos)`,
    );
    const destination = await PostgresDestination.connect({ url });
    // A column of a domain is named by the domain it was declared with and the type it is over.
    const tooLong = (column: string, type: string, value: string, length: number, wider: string) => ({
      ok: false,
      reason: `column "${column}" is ${type}, which holds ${type.includes('an array of') ? 'items of ' : ''}5 characters: "${value}" has ${length} — change the column's type to ${wider} to hold it`,
    });
    const code5 = 'code5, a domain over character varying(5)';
    const notPositive = { ok: false, reason: 'column "n": value for domain pos violates check constraint "pos_check"' };
    try {
      const writer = await destination.prepare({ object: 'coded', keyColumns: ['id'], columns: ['id', 'code', 'label', 'grade', 'flags', 'tags', 'n'] });
      // Copied, then replayed row by row by statement to find the rows COPY refused.
      expect(
        await writer.write([
          { kind: 'insert', key: ['a'], values: ['a', 'abc', 'lmn', 'x', '10101010', '["ab"]', 1] },
          { kind: 'insert', key: ['b'], values: ['b', 'abcdefgh', null, null, null, null, null] },
          { kind: 'insert', key: ['c'], values: ['c', null, 'lmnopqr', null, null, null, null] },
          { kind: 'insert', key: ['d'], values: ['d', null, null, null, '111111111111', null, null] },
          { kind: 'insert', key: ['e'], values: ['e', null, null, null, null, '["ok","toolong"]', null] },
          { kind: 'insert', key: ['f'], values: ['f', null, null, null, null, null, -5] },
          { kind: 'insert', key: ['g'], values: ['g', 'fghij', null, null, null, null, 7] },
          { kind: 'insert', key: ['j'], values: ['j', null, null, 'abcdef', null, null, null] },
          { kind: 'insert', key: ['k'], values: ['k', null, null, null, null, null, 3000000000] },
          // An array literal as PostgreSQL writes it: its items are not read here.
          { kind: 'insert', key: ['l'], values: ['l', null, null, null, null, '{toolong}', null] },
        ]),
      ).toEqual([
        { ok: true },
        tooLong('code', code5, 'abcdefgh', 8, 'character varying(8) (or text)'),
        tooLong('label', 'label5, a domain over character varying(5)', 'lmnopqr', 7, 'character varying(7) (or text)'),
        {
          ok: false,
          reason: `column "flags" is flags8, a domain over bit(8), which holds 8 bits: the bit string 111111111111 has 12 — change the column's type to bit(12) (or bit varying) to hold it`,
        },
        tooLong('tags', 'code5[], an array of a domain over character varying(5)', 'toolong', 7, 'character varying(7)[] (or text[])'),
        notPositive,
        { ok: true },
        tooLong('grade', 'grade5, a domain over character(5)', 'abcdef', 6, 'character(6) (or text)'),
        {
          ok: false,
          reason: `column "n" is pos, a domain over integer, which holds integers from -2147483648 to 2147483647: 3000000000 does not fit — change the column's type to bigint to hold it`,
        },
        { ok: false, reason: 'column "tags" (code5[], an array of a domain over character varying(5)): value too long for type character varying(5)' },
      ]);
      // Updates go by statement and find their rows by a key of a domain as before; a key longer
      // than the domain's length finds no row (it is not cut to another row's key).
      expect(
        await writer.write([
          { kind: 'update', key: ['a'], values: ['a', 'zzzzzzzz', 'lmn', null, null, null, 1] },
          { kind: 'update', key: ['g'], values: ['g', 'xy', 'uv', null, '11110000', '["cd"]', 0] },
          { kind: 'update', key: ['g'], values: ['g', 'xy', 'uv', 'y', '11110000', '["cd"]', 8] },
          { kind: 'update', key: ['abcdefgh'], values: ['abcdefgh', 'xy', null, null, null, null, null] },
        ]),
      ).toEqual([
        tooLong('code', code5, 'zzzzzzzz', 8, 'character varying(8) (or text)'),
        notPositive,
        { ok: true },
        { ok: false, reason: 'no row with id = "abcdefgh" in "coded"' },
      ]);
      // Upserts meet existing rows: merged from the staging table, then replayed by statement.
      expect(
        await writer.write([
          { kind: 'upsert', key: ['a'], values: ['a', 'ab', 'cd', null, null, null, 2] },
          { kind: 'upsert', key: ['h'], values: ['h', null, 'tuvwxyz', null, null, null, null] },
          { kind: 'upsert', key: ['i'], values: ['i', 'ok', null, null, null, null, 0] },
          { kind: 'upsert', key: ['abcdefgh'], values: ['abcdefgh', null, null, null, null, null, null] },
          { kind: 'upsert', key: ['g'], values: ['g', 'xy', 'uv', 'yyyyyyy', '11110000', '["cd"]', 8] },
        ]),
      ).toEqual([
        { ok: true },
        tooLong('label', 'label5, a domain over character varying(5)', 'tuvwxyz', 7, 'character varying(7) (or text)'),
        notPositive,
        tooLong('id', code5, 'abcdefgh', 8, 'character varying(8) (or text)'),
        tooLong('grade', 'grade5, a domain over character(5)', 'yyyyyyy', 7, 'character(7) (or text)'),
      ]);
      expect(await writer.write([{ kind: 'delete', key: ['abcdefgh'], values: [] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select id, code, label, grade, flags::text, tags::text, n from coded order by id')).toEqual([
        { id: 'a', code: 'ab', label: 'cd', grade: null, flags: null, tags: null, n: 2 },
        { id: 'g', code: 'xy', label: 'uv', grade: 'y    ', flags: '11110000', tags: '{cd}', n: 8 },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('names a column of a domain over an array of varchar(n) by its domain when an item is too long', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create domain codes5 as varchar(5)[]; create table listed (id integer primary key, tags codes5)');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'listed', keyColumns: ['id'], columns: ['id', 'tags'] });
      expect(
        await writer.write([
          { kind: 'insert', key: [1], values: [1, '["ab","cd"]'] },
          { kind: 'insert', key: [2], values: [2, '["ok","toolong"]'] },
        ]),
      ).toEqual([
        { ok: true },
        {
          ok: false,
          reason: `column "tags" is codes5, a domain over character varying(5)[], which holds items of 5 characters: "toolong" has 7 — change the column's type to character varying(7)[] (or text[]) to hold it`,
        },
      ]);
      expect(await sql(url, 'select id, tags from listed order by id')).toEqual([{ id: 1, tags: ['ab', 'cd'] }]);
    } finally {
      await destination.close();
    }
  });

  it('refuses alone a number with more places than its numeric(p,s) column holds (PostgreSQL rounds it without a word), naming the column, by copy, by line, merged and by every statement, and writes the rest', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create domain fee3 as numeric(8,3); create table prices (id integer primary key, price numeric(10,2), whole numeric(6), hundreds numeric(5,-2), fee fee3)');
    const destination = await PostgresDestination.connect({ url });
    const rounded = (column: string, type: string, holds: string, value: string, wider: string) => ({
      ok: false,
      reason: `column "${column}" is ${type}, which holds ${holds}: ${value} would be rounded — change the column's type to ${wider} (or numeric) to hold it`,
    });
    const price = (value: string, wider: string) => rounded('price', 'numeric(10,2)', '2 decimal places', value, wider);
    const row = (kind: WriteOperation['kind'], id: number, values: Value[]): WriteOperation => ({ kind, key: [id], values: [id, ...values] });
    const columns = ['id', 'price', 'whole', 'hundreds', 'fee'];
    try {
      const writer = await destination.prepare({ object: 'prices', keyColumns: ['id'], columns });
      // Inserts are copied straight into the table; a row PostgreSQL refuses is still found.
      expect(
        await writer.write([
          row('insert', 1, [1.23456, null, null, null]),
          row('insert', 2, ['1.2300', 12, 1200, '0.5']),
          row('insert', 3, [null, 12.5, null, null]),
          row('insert', 4, ['abc', null, null, null]),
          row('insert', 5, [null, null, 1250, null]),
          row('insert', 6, [1e-7, null, null, null]),
          row('insert', 7, [null, null, null, '0.0005']),
          row('insert', 8, ['-0.10', '7.000', '-300', '12.345']),
        ]),
      ).toEqual([
        price('1.23456', 'numeric(13,5)'),
        { ok: true },
        rounded('whole', 'numeric(6,0)', 'whole numbers', '12.5', 'numeric(7,1)'),
        { ok: false, reason: 'column "price": invalid input syntax for type numeric: "abc"' },
        rounded('hundreds', 'numeric(5,-2)', 'multiples of 100', '1250', 'numeric(6,-1)'),
        price('1e-7', 'numeric(15,7)'),
        rounded('fee', 'fee3, a domain over numeric(8,3)', '3 decimal places', '0.0005', 'numeric(9,4)'),
        { ok: true },
      ]);
      // Upserts into a table with rows are merged from the staging table; updates go by statement.
      expect(await writer.write([row('upsert', 2, ['9.999', 12, 1200, '0.5']), row('upsert', 9, ['3.10', null, null, null]), row('upsert', 8, ['-0.1', 7, -300, '1.2345'])])).toEqual([
        price('9.999', 'numeric(11,3)'),
        { ok: true },
        rounded('fee', 'fee3, a domain over numeric(8,3)', '3 decimal places', '1.2345', 'numeric(9,4)'),
      ]);
      expect(await writer.write([row('update', 9, ['3.105', null, null, null]), row('update', 2, ['2.5', 13, 1300, null])])).toEqual([price('3.105', 'numeric(11,3)'), { ok: true }]);
      // Rows read from PostgreSQL as COPY text go as their lines; their numeric fields are checked as they are.
      const lines = Buffer.from('10\t1.005\t\\N\t\\N\n11\t1.000\t3\t\\N\n12\t\\N\t\\N\t150\n13\tNaN\t4.0\t\\N\n');
      const lineColumns = ['id', 'price', 'whole', 'hundreds'];
      const lineWriter = await destination.prepare({ object: 'prices', keyColumns: ['id'], columns: lineColumns, encoding: { format: COPY_TEXT_FORMAT, types: [23, 1700, 1700, 23] } });
      expect(lineWriter.takesLines).toBe(true);
      const ends = [0, ...[...lines.entries()].filter(([, byte]) => byte === 10).map(([i]) => i + 1)];
      const line = (kind: WriteOperation['kind'], n: number, id: number): WriteOperation => ({ kind, key: [id], values: [], line: { data: lines, start: ends[n] as number, end: ends[n + 1] as number } });
      expect(await lineWriter.write([line('insert', 0, 10), line('insert', 1, 11), line('upsert', 2, 12), line('upsert', 3, 13)])).toEqual([
        price('1.005', 'numeric(11,3)'),
        { ok: true },
        rounded('hundreds', 'numeric(5,-2)', 'multiples of 100', '150', 'numeric(6,-1)'),
        { ok: true },
      ]);
      expect(await sql(url, 'select id, price, whole, hundreds, fee from prices order by id')).toEqual([
        { id: 2, price: '2.50', whole: '13', hundreds: '1300', fee: null },
        { id: 8, price: '-0.10', whole: '7', hundreds: '-300', fee: '12.345' },
        { id: 9, price: '3.10', whole: null, hundreds: null, fee: null },
        { id: 11, price: '1.00', whole: '3', hundreds: null, fee: null },
        { id: 13, price: 'NaN', whole: '4', hundreds: null, fee: null },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('refuses alone a list item with more places than its numeric(p,s)[] column holds, by copy, by line and by statement', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table baskets (id integer primary key, prices numeric(6,2)[])');
    const destination = await PostgresDestination.connect({ url });
    const rounded = (value: string, wider: string) => ({
      ok: false,
      reason: `column "prices" is numeric(6,2)[], which holds items of 2 decimal places: ${value} would be rounded — change the column's type to ${wider}[] (or numeric[]) to hold it`,
    });
    try {
      const writer = await destination.prepare({ object: 'baskets', keyColumns: ['id'], columns: ['id', 'prices'] });
      expect(
        await writer.write([
          { kind: 'insert', key: [1], values: [1, '[1.5,"2.25"]'] },
          { kind: 'insert', key: [2], values: [2, '[[1.5],[2.255]]'] },
          { kind: 'insert', key: [3], values: [3, '{1.10,NULL,3.001}'] },
          { kind: 'insert', key: [4], values: [4, '{{1,2.50},{3,4}}'] },
        ]),
      ).toEqual([{ ok: true }, rounded('2.255', 'numeric(7,3)'), rounded('3.001', 'numeric(7,3)'), { ok: true }]);
      expect(await writer.write([{ kind: 'update', key: [1], values: [1, '[0.125]'] }, { kind: 'upsert', key: [4], values: [4, '[7.7]'] }])).toEqual([
        rounded('0.125', 'numeric(7,3)'),
        { ok: true },
      ]);
      // Rows read from PostgreSQL as COPY text go as their lines.
      const lines = Buffer.from('5\t{1.00,2.5}\n6\t{{1.5},{9.999}}\n7\t\\N\n');
      const lineWriter = await destination.prepare({ object: 'baskets', keyColumns: ['id'], columns: ['id', 'prices'], encoding: { format: COPY_TEXT_FORMAT, types: [23, 1231] } });
      expect(lineWriter.takesLines).toBe(true);
      const line = (id: number, start: number, end: number): WriteOperation => ({ kind: 'insert', key: [id], values: [], line: { data: lines, start, end } });
      const ends = [0, ...[...lines.entries()].filter(([, byte]) => byte === 10).map(([i]) => i + 1)] as number[];
      expect(await lineWriter.write([line(5, ends[0]!, ends[1]!), line(6, ends[1]!, ends[2]!), line(7, ends[2]!, ends[3]!)])).toEqual([{ ok: true }, rounded('9.999', 'numeric(7,3)'), { ok: true }]);
      expect(await sql(url, 'select id, prices::text from baskets order by id')).toEqual([
        { id: 1, prices: '{1.50,2.25}' },
        { id: 4, prices: '{7.70}' },
        { id: 5, prices: '{1.00,2.50}' },
        { id: 7, prices: null },
      ]);
    } finally {
      await destination.close();
    }
  });

  it('writes binary values, which sources give as base64, into bytea columns as their bytes, by copy and by statement, and deletes by them', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table blobs (id bytea primary key, data bytea, note text)');
    const destination = await PostgresDestination.connect({ url });
    try {
      await writeBinaryRows(destination);
      expect(await sql(url, `select encode(id, 'hex') as id, encode(data, 'hex') as data, note from blobs order by id`)).toEqual([
        { id: '00ff10', data: 'deadbeef', note: 'AP8Q' },
        { id: '01', data: 'cafe', note: null },
        { id: '03', data: '0a0b', note: null },
      ]);
      expect(await destination.readRows({ object: 'blobs', keyColumns: ['id'], columns: ['id', 'data'] }, [[base64('01')], [base64('02')]])).toEqual([
        [base64('01'), base64('cafe')],
        null,
      ]);
    } finally {
      await destination.close();
    }
  });

  it('writes 16-byte binary values (a MySQL BINARY(16) id, given as base64) into uuid columns as the uuid they hold', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table ids (id uuid primary key, other uuid)');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'ids', keyColumns: ['id'], columns: ['id', 'other'] });
      const first = base64('0123456789abcdef0123456789abcdef');
      expect(
        await writer.write([
          { kind: 'upsert', key: [first], values: [first, '6f1c4b0e-8f39-4d1a-9a57-0c8f4b7e2d11'] },
          { kind: 'insert', key: ['00000000-0000-0000-0000-000000000002'], values: ['00000000-0000-0000-0000-000000000002', 'ffeeddccbbaa99887766554433221100'] },
        ]),
      ).toEqual([{ ok: true }, { ok: true }]);
      expect(await writer.write([{ kind: 'update', key: [first], values: [first, base64('ffeeddccbbaa99887766554433221100')] }])).toEqual([{ ok: true }]);
      expect(await writer.write([{ kind: 'delete', key: [first], values: [] }])).toEqual([{ ok: true }]);
      expect(await writer.write([{ kind: 'upsert', key: [first], values: [first, null] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select id::text, other::text from ids order by id')).toEqual([
        { id: '00000000-0000-0000-0000-000000000002', other: 'ffeeddcc-bbaa-9988-7766-554433221100' },
        { id: '01234567-89ab-cdef-0123-456789abcdef', other: null },
      ]);
      expect(await destination.readRows({ object: 'ids', keyColumns: ['id'], columns: ['id'] }, [[first]])).toEqual([['01234567-89ab-cdef-0123-456789abcdef']]);
    } finally {
      await destination.close();
    }
  });

  it('writes to schema.table', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create schema crm; create table crm.accounts (id integer primary key, name text)');
    const destination = await PostgresDestination.connect({ url });
    try {
      const writer = await destination.prepare({ object: 'crm.accounts', keyColumns: ['id'], columns: ['id', 'name'] });
      expect(await writer.write([{ kind: 'upsert', key: [1], values: [1, 'Acme'] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select * from crm.accounts')).toEqual([{ id: 1, name: 'Acme' }]);
    } finally {
      await destination.close();
    }
  });

  it('fails a write whose session the server ended (pg_terminate_backend, a restart) as transient, and the process lives on', async () => {
    const url = await createTestDatabase('destination');
    await sql(url, 'create table accounts (id integer primary key, name text); insert into accounts values (1, \'Acme\')');
    const destination = await PostgresDestination.connect({ url });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      const writer = await destination.prepare({ object: 'accounts', keyColumns: ['id'], columns: ['id', 'name'] });
      // The write waits for a lock another session holds; its session is ended while it waits.
      await holder.query('begin');
      await holder.query('lock table accounts in access exclusive mode');
      const writing = writer.write([{ kind: 'upsert', key: [1], values: [1, 'Acme Corp'] }]).then(
        () => new Error('expected a failure'),
        (thrown: unknown) => thrown,
      );
      let ended = 0;
      for (let attempt = 0; attempt < 200 && ended === 0; attempt++) {
        const rows = await holder.query(
          "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
        );
        ended = rows.rowCount ?? 0;
        if (ended === 0) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(ended).toBe(1);
      const error = await writing;
      expect(error).toMatchObject({ code: ErrorCode.Transient, retryable: true });
      await holder.query('rollback');
      // The destination writes again on a new session.
      expect(await writer.write([{ kind: 'upsert', key: [1], values: [1, 'Acme Corp'] }])).toEqual([{ ok: true }]);
      expect(await sql(url, 'select name from accounts')).toEqual([{ name: 'Acme Corp' }]);
    } finally {
      await holder.end();
      await destination.close();
    }
  });

  it('reports bad credentials as a fatal connection error without the password', async (ctx) => {
    const url = new URL(await createTestDatabase('destination'));
    if (!(await refusesWrongPassword(url.toString()))) ctx.skip('the configured server accepts any password');
    url.password = 'wrong-password';
    const error = await PostgresDestination.connect({ url: url.toString() }).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe(ErrorCode.Connection);
    expect(error?.message).toContain(`${url.hostname}:${url.port}`);
    expect(error?.message).not.toContain('wrong-password');
  });
});

// ---------------------------------------------------------------------------------------------
// SQLite

const SQLITE_TYPES = { int: 'INTEGER', text: 'TEXT', float: 'REAL', decimal: 'DECIMAL(10,2)' } as const;

describeDestinationContract('sqlite', {
  async create(fixture) {
    const path = tempPath('crm.sqlite');
    const setup = new Database(path);
    for (const table of fixture.tables) {
      setup.exec(tableDdl(table, SQLITE_TYPES));
      const insert = setup.prepare(`insert into ${q(table.name)} values (${table.columns.map(() => '?').join(', ')})`);
      for (const row of table.rows ?? []) insert.run(...row);
    }
    setup.close();
    const destination = await SqliteDestination.open({ path });
    return {
      destination,
      rows: async (table, orderBy) => {
        const reader = new Database(path, { readonly: true });
        try {
          return reader.prepare(`select * from ${q(table)} order by ${q(orderBy)}`).all() as Array<Record<string, Value>>;
        } finally {
          reader.close();
        }
      },
    };
  },
  openUnreachable: () => SqliteDestination.open({ path: tempPath('missing.sqlite') }),
});

describe('SqliteDestination', () => {
  it("rejects alone a row that a trigger refuses (RAISE(ABORT, ...)), with the trigger's message, and writes the rest", async () => {
    const path = tempPath('trigger.sqlite');
    const setup = new Database(path);
    setup.exec(`create table members (id integer primary key, score integer);
      create trigger members_insert before insert on members when new.score < 0 begin select raise(abort, 'score below zero'); end;
      create trigger members_delete before delete on members when old.id = 1 begin select raise(abort, 'member 1 is an owner'); end;`);
    setup.close();
    const destination = await SqliteDestination.open({ path });
    try {
      const writer = await destination.prepare({ object: 'members', keyColumns: ['id'], columns: ['id', 'score'] });
      expect(await writer.write([1, 2, 3].map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === 2 ? -5 : id] })))).toEqual([
        { ok: true },
        { ok: false, reason: 'score below zero' },
        { ok: true },
      ]);
      expect(await writer.write([1, 3].map((id) => ({ kind: 'delete' as const, key: [id], values: [] })))).toEqual([{ ok: false, reason: 'member 1 is an owner' }, { ok: true }]);
      const reader = new Database(path, { readonly: true });
      expect(reader.prepare('select id, score from members order by id').all()).toEqual([{ id: 1, score: 1 }]);
      reader.close();
    } finally {
      await destination.close();
    }
  });

  it('rejects alone a row that breaks a deferred foreign key (checked at commit), and writes the rest', async () => {
    const path = tempPath('deferred.sqlite');
    const setup = new Database(path);
    setup.exec(`create table accounts (id integer primary key);
      insert into accounts values (1), (2);
      create table contacts (id integer primary key, account_id integer references accounts (id) deferrable initially deferred);`);
    setup.close();
    const destination = await SqliteDestination.open({ path });
    try {
      const writer = await destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: ['id', 'account_id'] });
      const noAccount = { ok: false, reason: 'FOREIGN KEY constraint failed (at the commit: the row breaks a deferred foreign key)' };
      const upserts = (bad: number) => [1, 2, 3].map((id) => ({ kind: 'upsert' as const, key: [id], values: [id, id === bad ? 9 : 1] }));
      expect(await writer.write(upserts(2))).toEqual([{ ok: true }, noAccount, { ok: true }]);
      expect(await writer.write([...upserts(3), { kind: 'update', key: [1], values: [1, 8] }])).toEqual([{ ok: true }, { ok: true }, noAccount, noAccount]);
      const reader = new Database(path, { readonly: true });
      expect(reader.prepare('select id, account_id from contacts order by id').all()).toEqual([
        { id: 1, account_id: 1 },
        { id: 2, account_id: 1 },
        { id: 3, account_id: 1 },
      ]);
      reader.close();
    } finally {
      await destination.close();
    }
  });

  it('finds columns whatever the case of their names, as SQLite does, with their BLOB and number types', async () => {
    const path = tempPath('case.sqlite');
    const setup = new Database(path);
    setup.exec('create table People (ID integer primary key, Name text, Photo blob, Score integer)');
    setup.close();
    const destination = await SqliteDestination.open({ path });
    try {
      const writer = await destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'NAME', 'photo', 'score'] });
      expect(
        await writer.write([
          { kind: 'upsert', key: [1], values: [1, 'Ann', 'AP8=', 5] },
          { kind: 'upsert', key: [2], values: [2, 'Bob', null, '18446744073709551615'] },
        ]),
      ).toEqual([{ ok: true }, { ok: false, reason: expect.stringMatching(/^column "score" is INTEGER in SQLite, whose number affinity stores 18446744073709551615 as the double/) }]);
      expect(await destination.readRows({ object: 'people', keyColumns: ['id'], columns: ['id', 'name', 'photo'] }, [[1]])).toEqual([[1, 'Ann', 'AP8=']]);
      const reader = new Database(path, { readonly: true });
      expect(reader.prepare('select ID, Name, hex(Photo) as photo, Score from People').all()).toEqual([{ ID: 1, Name: 'Ann', photo: '00FF', Score: 5 }]);
      reader.close();
      // Two of the model's columns that are one column to SQLite: refused, rather than one value lost.
      await expect(destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'name', 'NAME'] })).rejects.toThrow(
        /^columns "name" and "NAME" of the model are one column "name" to table "people" in SQLite destination .*, which compares column names without regard to case — give one of them another name/,
      );
      // A column that is not there still is not.
      await expect(destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'email'] })).rejects.toThrow(
        /^table "people" in SQLite destination .* has no column "email" \(it has: "ID", "Name", "Photo", "Score"\)/,
      );
    } finally {
      await destination.close();
    }
  });

  it('refuses to write a generated column before any row goes, naming it as one (it is no column SQLite lists)', async () => {
    const path = tempPath('generated.sqlite');
    const setup = new Database(path);
    setup.exec(`create table people (id integer primary key, first text, last text, full_name text generated always as (first || ' ' || last) virtual,
      initials text as (substr(first, 1, 1) || substr(last, 1, 1)) stored)`);
    setup.close();
    const destination = await SqliteDestination.open({ path });
    try {
      const error = await destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'first', 'Full_Name', 'initials'] }).then(
        () => null,
        (thrown: unknown) => thrown as LockstepError,
      );
      expect(error).toMatchObject({ code: ErrorCode.Schema });
      expect(error?.message).toMatch(
        /^columns "full_name", "initials" of table "people" in SQLite destination .* are generated columns \(GENERATED ALWAYS AS\): SQLite computes their values and refuses any written to them — leave them out of the model's query, or map the model's fields to other columns$/,
      );
      const writer = await destination.prepare({ object: 'people', keyColumns: ['id'], columns: ['id', 'first', 'last'] });
      expect(await writer.write([{ kind: 'upsert', key: [1], values: [1, 'Ada', 'Lovelace'] }])).toEqual([{ ok: true }]);
      const reader = new Database(path, { readonly: true });
      expect(reader.prepare('select full_name, initials from people').all()).toEqual([{ full_name: 'Ada Lovelace', initials: 'AL' }]);
      reader.close();
    } finally {
      await destination.close();
    }
  });

  it('never creates a missing file', async () => {
    const path = tempPath('missing.sqlite');
    await expect(SqliteDestination.open({ path })).rejects.toMatchObject({ code: ErrorCode.Connection });
    expect(existsSync(path)).toBe(false);
  });

  it('stores binary values, which sources give as base64, as BLOBs in columns declared BLOB, and finds and deletes rows by them', async () => {
    const path = tempPath('crm.sqlite');
    const setup = new Database(path);
    setup.exec('create table blobs (id blob primary key, data blob, note text)');
    setup.close();
    const destination = await SqliteDestination.open({ path });
    try {
      await writeBinaryRows(destination);
      const db = new Database(path, { readonly: true });
      try {
        expect(db.prepare('select hex(id) as id, typeof(data) as type, hex(data) as data, note from blobs order by id').all()).toEqual([
          { id: '00FF10', type: 'blob', data: 'DEADBEEF', note: 'AP8Q' },
          { id: '01', type: 'blob', data: 'CAFE', note: null },
          // Not base64: kept as the text it is.
          { id: '03', type: 'text', data: Buffer.from('\\x0a0b').toString('hex').toUpperCase(), note: null },
        ]);
      } finally {
        db.close();
      }
      expect(await destination.readRows({ object: 'blobs', keyColumns: ['id'], columns: ['id', 'data'] }, [[base64('01')], [base64('02')]])).toEqual([
        [base64('01'), base64('cafe')],
        null,
      ]);
    } finally {
      await destination.close();
    }
  });

  it('stores booleans as 1/0 and reports a locked file as transient', async () => {
    const path = tempPath('crm.sqlite');
    const setup = new Database(path);
    setup.exec('create table flags (id integer primary key, on_off integer)');
    setup.close();
    const destination = await SqliteDestination.open({ path, busyTimeoutMs: 50 });
    try {
      const writer = await destination.prepare({ object: 'flags', keyColumns: ['id'], columns: ['id', 'on_off'] });
      expect(await writer.write([{ kind: 'upsert', key: [1], values: [1, true] }, { kind: 'upsert', key: [2], values: [2, false] }])).toEqual([
        { ok: true },
        { ok: true },
      ]);
      const other = new Database(path);
      try {
        expect(other.prepare('select on_off from flags order by id').all()).toEqual([{ on_off: 1 }, { on_off: 0 }]);
        other.exec('begin immediate');
        await expect(writer.write([{ kind: 'upsert', key: [3], values: [3, true] }])).rejects.toMatchObject({
          code: ErrorCode.Transient,
          retryable: true,
        });
        other.exec('rollback');
      } finally {
        other.close();
      }
      expect(await writer.write([{ kind: 'upsert', key: [3], values: [3, true] }])).toEqual([{ ok: true }]);
    } finally {
      await destination.close();
    }
  });
});

/**
 * Sources and destinations behind PgBouncer in transaction pooling mode (as hosted poolers run it):
 * it refuses `statement_timeout` as a startup parameter, runs each transaction of a client on any
 * of its server sessions, and hands a server session, with its settings and temporary tables, from
 * one client to the next. Two `lockstep` processes sync through it to tables of different shapes,
 * one server session per database.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/harness.js';
import { startPgbouncer, type StartedPgbouncer } from '../helpers/pgbouncer.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';
import { killChildren, runCli } from './cli-helpers.js';

let pooler: StartedPgbouncer;
beforeAll(async () => {
  pooler = await startPgbouncer(1);
}, 15 * 60_000);
afterAll(async () => pooler?.stop());
afterEach(killChildren);

const databaseOf = (url: string) => new URL(url).pathname.slice(1);

/** A workspace syncing `select * from <table>` of the warehouse to the same table of the CRM, both through the pooler. */
function workspace(table: string, warehouse: string, crm: string): string {
  const dir = tempDir();
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    `sources:
  warehouse: { type: postgres, url: "${pooler.url(databaseOf(warehouse))}" }
destinations:
  crm: { type: postgres, url: "${pooler.url(databaseOf(crm))}" }
models:
  ${table}: { source: warehouse, primaryKey: id, query: "select * from ${table}" }
syncs:
  ${table}-to-crm: { model: ${table}, destination: crm, object: ${table}, mode: mirror, batchSize: 100 }
`,
  );
  return dir;
}

describe('PostgreSQL through PgBouncer (transaction pooling)', () => {
  it('reads and writes through the pooler, two processes in turn on one server session, and leaves no setting of its own on it', async () => {
    const warehouse = await createTestDatabase('pooled_wh');
    const crm = await createTestDatabase('pooled_crm');
    const tables = {
      narrow: 'id bigint primary key, name text',
      wide: 'id bigint primary key, name text, score integer, seen_at timestamptz, note text',
    };
    for (const [table, columns] of Object.entries(tables)) {
      await sql(warehouse, `create table ${table} (${columns})`);
      await sql(crm, `create table ${table} (${columns})`);
    }
    await sql(
      warehouse,
      `insert into narrow select g, 'n' || g from generate_series(1, 500) g;
       insert into wide select g, 'w' || g, g % 7, timestamptz '2024-03-01 10:00:00+00' + g * interval '1 hour', null from generate_series(1, 500) g`,
    );
    const syncs = [
      { table: 'narrow', dir: workspace('narrow', warehouse, crm), change: "update narrow set name = name || '!' where id % 10 = 0; delete from narrow where id = 3" },
      { table: 'wide', dir: workspace('wide', warehouse, crm), change: "update wide set score = score + 1, note = 'x' where id % 10 = 0; delete from wide where id = 3" },
    ];
    // Each process's first run copies into the empty table; its second merges changes through the
    // session's staging table, which the other process's writer finds on the same server session.
    for (const { table, dir, change } of syncs) {
      expect((await runCli(['apply'], { cwd: dir })).code).toBe(0);
      const first = await runCli(['sync', 'run', `${table}-to-crm`, '--json'], { cwd: dir, timeoutMs: 60_000 });
      expect(first.stderr).toBe('');
      expect(JSON.parse(first.stdout)).toMatchObject({ status: 'success', successfulRows: { addedCount: 500 } });
      await sql(warehouse, change);
    }
    for (const { table, dir } of syncs) {
      const second = await runCli(['sync', 'run', `${table}-to-crm`, '--json'], { cwd: dir, timeoutMs: 60_000 });
      expect(JSON.parse(second.stdout)).toMatchObject({ status: 'success', successfulRows: { addedCount: 0, changedCount: 50, removedCount: 1 }, failedRows: { changedCount: 0 } });
      const digest = `select count(*)::int as n, md5(string_agg(t::text, '|' order by id)) as m from ${table} t`;
      expect(await sql(crm, digest)).toEqual(await sql(warehouse, digest));
    }
    // The server session the reads ran on is as any client of the pooler finds it.
    expect(await sql(pooler.url(databaseOf(warehouse)), "select current_setting('transaction_read_only') as read_only, current_setting('DateStyle') as dates")).toEqual([
      { read_only: 'off', dates: (await sql(warehouse, "select current_setting('DateStyle') as dates"))[0]?.dates },
    ]);
  }, 180_000);

  it('says why a store behind the pooler cannot be used, and what to give it instead', async () => {
    const store = await createTestDatabase('pooled_store');
    const dir = workspace('narrow', store, store);
    const result = await runCli(['--store', pooler.url(databaseOf(store)), 'apply'], { cwd: dir });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /cannot be reached: unsupported startup parameter: \w+ — a connection pooler \(PgBouncer\) answers so: the store keeps state in its sessions \(LISTEN, locks, timeouts\), so give it PostgreSQL itself/,
    );
  });
});

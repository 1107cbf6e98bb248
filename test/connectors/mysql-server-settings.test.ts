/**
 * MySQL / MariaDB as a source, a destination and the warehouse planner's home on servers set up
 * the way real servers often are, not with the test server's defaults: throwaway MariaDBs of this
 * file's own, whose server-wide settings every session inherits.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { mysqlConnector, MysqlDestination } from '../../src/connectors/mysql/index.js';
import { ErrorCode, type LockstepError } from '../../src/core/errors.js';
import type { Connectors } from '../../src/core/ports.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { withWriteHook } from '../helpers/fault-connectors.js';
import { startHarness, tempDir, type Harness } from '../helpers/harness.js';
import { mysqlSql } from '../helpers/mysql.js';
import { startMariadb, type StartedMariadb } from '../setup/mysql.js';

function registry(): Connectors {
  const r = createConnectorRegistry();
  if (!r.kind('mysql')) r.register(mysqlConnector);
  return r;
}

/** Runs the sync and tells how it ended, with its rejected rows' reasons. */
async function runSync(h: Harness, slug: string) {
  const { run } = await h.app.runs.triggerSync(slug);
  const done = await h.app.runs.waitForSyncRun(run.id);
  const rejected = (await h.app.store.listRejectedRows(done.id, 100, 0)).map((r) => r.reason).sort();
  return { status: done.status, error: done.error, ok: done.successfulRows, failed: done.failedRows, rejected };
}

const counts = (addedCount: number, changedCount: number, removedCount: number) => ({ addedCount, changedCount, removedCount });

describe('a server whose sessions inherit an unusual sql_mode, latin1, a time zone, no autocommit and SERIALIZABLE', () => {
  let server: StartedMariadb;
  /** Runs SQL on database `db` of the server, each statement committed. */
  const sqlOn = <T = Record<string, unknown>>(db: string, text: string) => mysqlSql<T>(`${server.url}${db}`, `set autocommit = 1; ${text}`);

  beforeAll(async () => {
    server = await startMariadb([
      // Not strict: the destination must still refuse to cut values.
      '--sql-mode=ANSI_QUOTES,NO_BACKSLASH_ESCAPES,PIPES_AS_CONCAT,ONLY_FULL_GROUP_BY,NO_ZERO_DATE',
      '--character-set-server=latin1',
      '--collation-server=latin1_swedish_ci',
      '--default-time-zone=+05:30',
      '--autocommit=0',
      '--transaction-isolation=SERIALIZABLE',
    ]);
    await mysqlSql(server.url, 'create database src; create database dst');
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('syncs MySQL to MySQL with both planners: loads, merges, deletes and rejects only the rows that cannot be stored', async () => {
    await sqlOn(
      'src',
      `create table contacts (id int primary key, name varchar(100) character set utf8mb4 not null, note text character set utf8mb4, seen datetime, at timestamp null);
       insert into contacts values (1, 'Ann', 'back\\slash "quoted" it''s', '2024-01-02 03:04:05', '2024-01-02 03:04:05'), (2, 'Bob 😀', null, null, null),
         (3, 'Cy', 'x', '2024-06-01 00:00:00', null), (4, 'Dee', 'latin1 cannot 😀', null, null), (5, 'a name much longer than twenty characters', null, null, null)`,
    );
    const table = (name: string) =>
      `create table ${name} (id int primary key, name varchar(20) character set utf8mb4 not null, note varchar(200) character set latin1, seen datetime, at timestamp null)`;
    await sqlOn('dst', `${table('by_store')}; ${table('by_warehouse')}`);
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [
          source('store_src', { type: 'mysql', url: `${server.url}src` }),
          source('wh_src', { type: 'mysql', settings: { url: `${server.url}src`, planner: 'warehouse' } }),
        ],
        destinations: [source('crm', { type: 'mysql', url: `${server.url}dst` })],
        models: [
          model('by_store', 'store_src', 'select id, name, note, seen, at from contacts'),
          model('by_warehouse', 'wh_src', 'select id, name, note, seen, at from contacts'),
        ],
        syncs: ['by_store', 'by_warehouse'].map((slug) => sync(slug, { model: slug, destination: 'crm', object: slug, deleteBehavior: 'delete' })),
      }),
      connectors: () => registry(),
    });
    await using _ = h;
    const cannot = {
      emoji: (t: string) =>
        `Incorrect string value: '\\xF0\\x9F\\x98\\x80' for column \`dst\`.\`${t}\`.\`note\`: column "note" is varchar(200) in character set latin1, which does not have this character` +
        ` — change the column to character set utf8mb4, which holds every character (alter table \`dst\`.\`${t}\` modify \`note\` varchar(200) character set utf8mb4, keeping its NOT NULL and DEFAULT), or convert the value in the model's query`,
      long: "Data too long for column 'name'",
    };
    const expectRows = async (t: string, rows: unknown[]) => expect(await sqlOn('dst', `select id, name, note, seen, at from ${t} order by id`)).toEqual(rows);
    const ann = { id: 1, name: 'Ann', note: `back\\slash "quoted" it's`, seen: '2024-01-02 03:04:05', at: '2024-01-02 03:04:05' };
    const bob = { id: 2, name: 'Bob 😀', note: null, seen: null, at: null };
    const cy = { id: 3, name: 'Cy', note: 'x', seen: '2024-06-01 00:00:00', at: null };

    for (const t of ['by_store', 'by_warehouse']) {
      // Into the empty table: a bulk load, whose bad rows are written again one by one.
      expect(await runSync(h, t)).toEqual({ status: 'warning', error: null, ok: counts(3, 0, 0), failed: counts(2, 0, 0), rejected: [cannot.emoji(t), cannot.long].sort() });
      await expectRows(t, [ann, bob, cy]);
    }
    await sqlOn('src', `update contacts set name = 'Ann 2', note = 'ok' where id = 1; update contacts set note = 'still 😀' where id = 2; delete from contacts where id = 3`);
    for (const t of ['by_store', 'by_warehouse']) {
      // Merges into rows that exist, with one bad row among them, and a delete.
      const run = await runSync(h, t);
      expect(run).toMatchObject({ status: 'warning', error: null, ok: counts(0, 1, 1) });
      expect(run.rejected).toEqual([cannot.emoji(t), cannot.emoji(t), cannot.long].sort());
      await expectRows(t, [{ ...ann, name: 'Ann 2', note: 'ok' }, bob]);
    }
  });
});

describe('a server with a short wait_timeout, a small max_allowed_packet and a short innodb_lock_wait_timeout', () => {
  let server: StartedMariadb;
  beforeAll(async () => {
    server = await startMariadb(['--wait-timeout=2', '--max-allowed-packet=1M', '--innodb-lock-wait-timeout=1']);
    await mysqlSql(server.url, 'create database src; create database dst');
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a run that pauses between batches longer than wait_timeout still delivers, with the warehouse planner', async () => {
    await mysqlSql(`${server.url}src`, `create table t (id int primary key, name varchar(50)); insert into t values (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')`);
    await mysqlSql(`${server.url}dst`, 'create table slow (id int primary key, name varchar(50))');
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('wh', { type: 'mysql', settings: { url: `${server.url}src`, planner: 'warehouse' } })],
        destinations: [source('crm', { type: 'mysql', url: `${server.url}dst` })],
        models: [model('t', 'wh', 'select id, name from t')],
        syncs: [sync('slow', { model: 't', destination: 'crm', object: 'slow', batchSize: 2 })],
      }),
      // A slow destination: every connection idle for longer than the server waits.
      connectors: () => withWriteHook(registry(), ({ batchIndex }) => new Promise((resolve) => setTimeout(resolve, batchIndex === 1 ? 3000 : 0))),
    });
    await using _ = h;
    expect(await runSync(h, 'slow')).toMatchObject({ status: 'success', error: null, ok: counts(4, 0, 0) });
    await mysqlSql(`${server.url}src`, `update t set name = concat(name, '2')`);
    expect(await runSync(h, 'slow')).toMatchObject({ status: 'success', error: null, ok: counts(0, 4, 0) });
    expect(await mysqlSql(`${server.url}dst`, 'select id, name from slow order by id')).toEqual(['a2', 'b2', 'c2', 'd2'].map((name, i) => ({ id: i + 1, name })));
  });

  it('wide rows: loaded and merged in statements the server takes, bad rows rejected alone', async () => {
    await mysqlSql(`${server.url}src`, `create table wide (id int primary key, body mediumtext, tag varchar(40));
      insert into wide select seq, repeat(char(65 + seq % 26), 100000), if(seq = 7, 'far too long for the tag column', 'ok') from seq_1_to_40`);
    await mysqlSql(`${server.url}dst`, 'create table wide (id int primary key, body mediumtext, tag varchar(20))');
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('wh', { type: 'mysql', url: `${server.url}src` })],
        destinations: [source('crm', { type: 'mysql', url: `${server.url}dst` })],
        models: [model('wide', 'wh', 'select id, body, tag from wide')],
        syncs: [sync('wide', { model: 'wide', destination: 'crm', object: 'wide', deleteBehavior: 'delete' })],
      }),
      connectors: () => registry(),
    });
    await using _ = h;
    const tooLong = "Data too long for column 'tag'";
    const stored = () => mysqlSql(`${server.url}dst`, 'select count(*) as n, sum(length(body)) as bytes from wide');
    expect(await runSync(h, 'wide')).toEqual({ status: 'warning', error: null, ok: counts(39, 0, 0), failed: counts(1, 0, 0), rejected: [tooLong] });
    expect(await stored()).toEqual([{ n: '39', bytes: '3900000' }]);
    await mysqlSql(`${server.url}src`, `update wide set body = concat(body, 'x')`);
    expect(await runSync(h, 'wide')).toMatchObject({ status: 'warning', error: null, ok: counts(0, 39, 0), rejected: [tooLong] });
    expect(await stored()).toEqual([{ n: '39', bytes: '3900039' }]);
  });

  it('fails a batch that waits on rows another session holds locked with a message saying where to look, and writes it once they are free', async () => {
    await mysqlSql(`${server.url}dst`, "create table locked (id int primary key, name varchar(20)); insert into locked values (1, 'a')");
    const holder = await mysql.createConnection({ uri: `${server.url}dst` });
    const destination = await MysqlDestination.connect({ url: `${server.url}dst` });
    try {
      await holder.query('start transaction');
      await holder.query('select * from locked where id = 1 for update');
      const writer = await destination.prepare({ object: 'locked', keyColumns: ['id'], columns: ['id', 'name'] });
      const batch = [{ kind: 'upsert' as const, key: [1], values: [1, 'b'] }];
      const error = await writer.write(batch).then(
        () => null,
        (thrown: unknown) => thrown as LockstepError,
      );
      expect(error).toMatchObject({ code: ErrorCode.Transient });
      expect(error?.message).toMatch(
        /^writing to "locked" in destination MySQL at .* failed: Lock wait timeout exceeded; try restarting transaction — another session holds locks on rows of the table for longer than the server's innodb_lock_wait_timeout — find its transaction \(select \* from information_schema\.innodb_trx\) and end it, or run the sync when it is done$/,
      );
      await holder.query('rollback');
      expect(await writer.write(batch)).toEqual([{ ok: true }]);
      expect(await mysqlSql(`${server.url}dst`, 'select id, name from locked')).toEqual([{ id: 1, name: 'b' }]);
    } finally {
      await holder.end();
      await destination.close();
    }
  });
});

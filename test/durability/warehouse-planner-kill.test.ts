/**
 * SPEC §2.2 step 4 and §9 with the planner in the warehouse: a PostgreSQL → PostgreSQL sync (and a
 * MySQL → MySQL one) killed with SIGKILL while it delivers leaves a watermark in the source that
 * covers only rows the destination holds, with the values it holds; restarted, the run takes those
 * rows into the planner table, sends only the others, and the destination equals the model.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const BIN = resolve(import.meta.dirname, '../../bin/lockstep.js');
const ROWS = 60_000;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

function lockstep(dir: string, args: string[], env: Record<string, string>): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--workspace', dir, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env, LOCKSTEP_POLL_MS: '50' },
  });
  children.add(child);
  const exit = new Promise<number | null>((done) =>
    child.on('exit', (code) => {
      children.delete(child);
      done(code);
    }),
  );
  return { child, exit };
}

describe('kill -9 during a sync planned in the warehouse', () => {
  it('commits only delivered rows to the watermark, and the restarted run converges sending only the rest', async () => {
    const url = await createTestDatabase('lockstep_wkill');
    await sql(
      url,
      `create table model_rows (id bigint primary key, name text not null, score integer, at timestamptz not null);
       insert into model_rows select g, 'row ' || g, case when g % 9 = 0 then null else g % 1000 end,
         timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' from generate_series(1, ${ROWS}) g;
       create table target_rows (like model_rows including all)`,
    );
    const dir = tempDir('lockstep-wh-kill-');
    writeFileSync(
      join(dir, 'lockstep.yaml'),
      `sources:\n  warehouse: { type: postgres, url: "\${KILL_PG_URL}", planner: warehouse }\ndestinations:\n  crm: { type: postgres, url: "\${KILL_PG_URL}" }\n` +
        `models:\n  rows: { source: warehouse, primaryKey: id, query: "select * from model_rows" }\n` +
        `syncs:\n  rows-to-crm: { model: rows, destination: crm, object: target_rows, mode: mirror, batchSize: 1000 }\n`,
    );
    const env = { KILL_PG_URL: url };
    expect(await lockstep(dir, ['apply'], env).exit).toBe(0);

    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    try {
      const first = lockstep(dir, ['sync', 'run', 'rows-to-crm'], env);
      let killed = false;
      const deadline = Date.now() + 60_000;
      // Killed once the watermark passed 5000 rows (a first run records it once its staging table,
      // built alongside the delivery, is committed).
      const watermark = async () => {
        const rows = await sql<{ through: { id: string } | null }>(url, 'select through from lockstep_planner.lockstep_syncs').catch(() => []);
        return Number(rows[0]?.through?.id ?? 0);
      };
      while (!killed && Date.now() < deadline) {
        const [run] = await store.listSyncRuns({ limit: 1, offset: 0, order: 'desc' });
        if (run?.status === 'processing' && run.successfulRows.addedCount >= 5000 && (await watermark()) >= 5000) {
          first.child.kill('SIGKILL');
          killed = true;
        } else await new Promise((r) => setTimeout(r, 2));
      }
      expect(killed, 'the run never got to deliver 5000 rows').toBe(true);
      await first.exit;

      // The watermark covers rows the destination holds, with the values it holds.
      const [meta] = await sql<{ staging: string; part: number; through: { id: string } }>(url, 'select staging, part, through from lockstep_planner.lockstep_syncs');
      expect(meta?.part).toBe(0);
      const through = Number(meta!.through.id);
      expect(through).toBeGreaterThanOrEqual(5000);
      expect(through).toBeLessThan(ROWS);
      const missing = await sql<{ n: number }>(
        url,
        `select count(*)::int as n from lockstep_planner."${meta!.staging}" s left join target_rows t on t.id = s.id
          where s.id <= ${through} and (t.id is null or t::text <> s::text)`,
      );
      expect(missing).toEqual([{ n: 0 }]);

      // Restarted, a worker takes the run over (attempt 2): the delivered rows go into the planner
      // table, only the others are sent, and the destination equals the model.
      const [atKill] = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(await lockstep(dir, ['worker', '--drain'], env).exit).toBe(0);
      const runs = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(runs.map((r) => [r.status, r.attempt])).toEqual([['success', 2]]);
      const digest = (table: string) => sql(url, `select count(*)::int as n, md5(string_agg(t::text, '|' order by id)) as m from ${table} t`);
      expect(await digest('target_rows')).toEqual(await digest('model_rows'));
      expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_1_rows_to_crm')).toEqual([{ n: ROWS }]);
      expect(runs[0]!.plannedRows.addedCount - atKill!.successfulRows.addedCount).toBe(ROWS - through);
      expect(runs[0]!.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
      // The store holds no snapshot for a sync planned in the warehouse.
      expect(await store.snapshots.count(runs[0]!.syncId)).toBe(0);
    } finally {
      await store.close();
    }
  }, 120_000);
});

describe('kill -9 during a sync planned in the warehouse of a MySQL source', () => {
  it('commits only delivered rows to the watermark, and the restarted run converges sending only the rest', async () => {
    const { createTestMysqlDatabase, mysqlSeries, mysqlSql } = await import('../helpers/mysql.js');
    const url = await createTestMysqlDatabase('lockstep_wmykill');
    const plannerSchema = `${new URL(url).pathname.slice(1)}_p`;
    await mysqlSql(
      url,
      `create table model_rows (id bigint primary key, name varchar(40) not null, score int null, at datetime not null);
       insert into model_rows select seq, concat('row ', seq), if(seq % 9 = 0, null, seq % 1000), timestamp'2024-01-01 00:00:00' + interval seq second from ${mysqlSeries(ROWS)};
       create table target_rows like model_rows`,
    );
    const dir = tempDir('lockstep-wh-mykill-');
    writeFileSync(
      join(dir, 'lockstep.yaml'),
      `sources:\n  warehouse: { type: mysql, url: "\${KILL_MY_URL}", planner: warehouse, plannerSchema: ${plannerSchema} }\ndestinations:\n  crm: { type: mysql, url: "\${KILL_MY_URL}" }\n` +
        `models:\n  rows: { source: warehouse, primaryKey: id, query: "select * from model_rows" }\n` +
        `syncs:\n  rows-to-crm: { model: rows, destination: crm, object: target_rows, mode: mirror, batchSize: 1000 }\n`,
    );
    const env = { KILL_MY_URL: url };
    expect(await lockstep(dir, ['apply'], env).exit).toBe(0);

    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    try {
      const first = lockstep(dir, ['sync', 'run', 'rows-to-crm'], env);
      let killed = false;
      const deadline = Date.now() + 60_000;
      while (!killed && Date.now() < deadline) {
        const [run] = await store.listSyncRuns({ limit: 1, offset: 0, order: 'desc' });
        if (run?.status === 'processing' && run.successfulRows.addedCount >= 5000) {
          first.child.kill('SIGKILL');
          killed = true;
        } else await new Promise((r) => setTimeout(r, 2));
      }
      expect(killed, 'the run never got to deliver 5000 rows').toBe(true);
      await first.exit;

      // The watermark (kind in lockstep_syncs, key in the marks table) covers rows the destination
      // holds, with the values it holds.
      const [meta] = await mysqlSql<{ staging: string; part: number }>(url, `select staging, part from \`${plannerSchema}\`.lockstep_syncs`);
      expect(meta?.part).toBe(0);
      const [mark] = await mysqlSql<{ id: string }>(url, `select id from \`${plannerSchema}\`.sync_1_rows_to_crm_marks where lockstep_mark = 1`);
      const through = Number(mark!.id);
      expect(through).toBeGreaterThanOrEqual(5000);
      expect(through).toBeLessThan(ROWS);
      const missing = await mysqlSql<{ n: string }>(
        url,
        `select count(*) as n from \`${plannerSchema}\`.\`${meta!.staging}\` s left join target_rows t on t.id = s.id
          where s.id <= ${through} and (t.id is null or not (t.name <=> s.name and t.score <=> s.score and t.at <=> s.at))`,
      );
      expect(missing).toEqual([{ n: '0' }]);

      const [atKill] = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(await lockstep(dir, ['worker', '--drain'], env).exit).toBe(0);
      const runs = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(runs.map((r) => [r.status, r.attempt])).toEqual([['success', 2]]);
      const digest = (table: string) =>
        mysqlSql(url, `set session group_concat_max_len = 100000000; select count(*) as n, md5(group_concat(concat_ws(',', id, name, coalesce(score, '-'), at) order by id separator '|')) as m from ${table}`);
      expect(await digest('target_rows')).toEqual(await digest('model_rows'));
      expect(await mysqlSql(url, `select count(*) as n from \`${plannerSchema}\`.sync_1_rows_to_crm`)).toEqual([{ n: String(ROWS) }]);
      expect(runs[0]!.plannedRows.addedCount - atKill!.successfulRows.addedCount).toBe(ROWS - through);
      expect(runs[0]!.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
      expect(await store.snapshots.count(runs[0]!.syncId)).toBe(0);
    } finally {
      await store.close();
    }
  }, 120_000);
});

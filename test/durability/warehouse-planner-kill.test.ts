/**
 * SPEC §2.2 step 4 and §9 with the planner in the warehouse: a PostgreSQL → PostgreSQL sync (and a
 * MySQL → MySQL one, and a DuckDB → PostgreSQL one) killed with SIGKILL while it delivers leaves a
 * watermark in the source that covers only rows the destination holds, with the values it holds;
 * restarted, the run takes those rows into the planner table, sends only the others, and the
 * destination equals the model. Killed after a watermark's commit and before the run's record
 * counted its rows, the run still counts every row once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
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

function lockstep(dir: string, args: string[], env: Record<string, string>): { child: ChildProcess; exit: Promise<number | null>; logs: () => Array<Record<string, unknown>> } {
  const child = spawn(process.execPath, [BIN, '--workspace', dir, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env, LOCKSTEP_POLL_MS: '50' },
  });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((done) =>
    child.on('exit', (code) => {
      children.delete(child);
      done(code);
    }),
  );
  const logs = () => stderr.split('\n').flatMap((line) => (line.startsWith('{') ? [JSON.parse(line) as Record<string, unknown>] : []));
  return { child, exit, logs };
}

/**
 * Applies a workspace in `dir` whose sync rows-to-crm mirrors model rows (`select * from
 * model_rows` on source `warehouse`) to table target_rows of destination `crm`, and opens its store.
 */
async function applyWorkspace(dir: string, connections: { warehouse: string; crm: string }, env: Record<string, string>): Promise<SqliteStore> {
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    `sources:\n  warehouse: ${connections.warehouse}\ndestinations:\n  crm: ${connections.crm}\n` +
      `models:\n  rows: { source: warehouse, primaryKey: id, query: "select * from model_rows" }\n` +
      `syncs:\n  rows-to-crm: { model: rows, destination: crm, object: target_rows, mode: mirror, batchSize: 1000 }\n`,
  );
  expect(await lockstep(dir, ['apply'], env).exit).toBe(0);
  return SqliteStore.open({ path: join(dir, 'lockstep.db') });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Kills `worker` with SIGKILL once its run recorded 5000 delivered rows and `ahead` says its
 * watermark passed the delivered rows the run's record shows (answered): from then on the store is
 * held locked, so the record cannot follow the deliveries (the worker waits for the lock, well
 * within its busy timeout), and the kill lands after a watermark's commit, before its rows counted.
 * `marked`, when given, says the source holds a watermark at all: a first run's watermark waits for
 * its staging table, which a loaded machine may build after many batches went out; the store is
 * locked only once it is there, or the next watermark would never come.
 */
async function killAhead(
  worker: { child: ChildProcess; exit: Promise<number | null> },
  dir: string,
  store: SqliteStore,
  ahead: (shown: number) => Promise<boolean>,
  marked: () => Promise<boolean> = async () => true,
): Promise<number> {
  const latest = async () => (await store.listSyncRuns({ limit: 1, offset: 0, order: 'desc' }))[0];
  const deadline = Date.now() + 60_000;
  let run = await latest();
  while (!(run?.status === 'processing' && run.successfulRows.addedCount >= 5000 && (await marked())) && Date.now() < deadline) {
    await sleep(2);
    run = await latest();
  }
  expect(run?.successfulRows.addedCount, 'the run never got to deliver 5000 rows').toBeGreaterThanOrEqual(5000);
  expect(run?.status, 'the run ended before its watermark was in the source').toBe('processing');
  const lock = new Database(join(dir, 'lockstep.db'));
  lock.exec('BEGIN IMMEDIATE');
  try {
    const shown = (await latest())!.successfulRows.addedCount;
    const until = Date.now() + 3000;
    while (!(await ahead(shown)) && Date.now() < until) await sleep(2);
    worker.child.kill('SIGKILL');
    await worker.exit;
    return shown;
  } finally {
    lock.exec('ROLLBACK');
    lock.close();
  }
}

/** Runs the sync and kills it (killAhead) once its watermark, read by `watermark` (0 before the first), passed what the run's record shows. */
function killPastWatermark(dir: string, env: Record<string, string>, store: SqliteStore, watermark: () => Promise<number>): Promise<number> {
  const worker = lockstep(dir, ['sync', 'run', 'rows-to-crm'], env);
  return killAhead(worker, dir, store, async (shown) => (await watermark()) > shown, async () => (await watermark()) > 0);
}

/** Takes the killed run over (attempt 2) and checks it sent only the rows past the watermark, and counts every row once. */
async function takeOver(dir: string, env: Record<string, string>, store: SqliteStore, through: number) {
  const worker = lockstep(dir, ['worker', '--drain'], { ...env, LOCKSTEP_LOG_LEVEL: 'info' });
  expect(await worker.exit).toBe(0);
  const runs = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
  expect(runs.map((r) => [r.status, r.attempt])).toEqual([['success', 2]]);
  expect(worker.logs().filter((l) => l.msg === 'model compared in the warehouse').map((l) => l.parts)).toEqual([`added ${ROWS - through}`]);
  expect(runs[0]!.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
  const all = { addedCount: ROWS, changedCount: 0, removedCount: 0 };
  expect([runs[0]!.plannedRows, runs[0]!.successfulRows]).toEqual([all, all]);
  // The store holds no snapshot for a sync planned in the warehouse.
  expect(await store.snapshots.count(runs[0]!.syncId)).toBe(0);
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
    const env = { KILL_PG_URL: url };
    const store = await applyWorkspace(dir, { warehouse: '{ type: postgres, url: "${KILL_PG_URL}", planner: warehouse }', crm: '{ type: postgres, url: "${KILL_PG_URL}" }' }, env);
    try {
      // A first run records its watermark once its staging table, built alongside the delivery, is committed.
      const watermark = async () => {
        const rows = await sql<{ through: { id: string } | null }>(url, 'select through from lockstep_planner.lockstep_syncs').catch(() => []);
        return Number(rows[0]?.through?.id ?? 0);
      };
      const shown = await killPastWatermark(dir, env, store, watermark);

      // The watermark covers rows the destination holds, with the values it holds: more than the
      // run's record showed delivered.
      const [meta] = await sql<{ staging: string; part: number; through: { id: string } }>(url, 'select staging, part, through from lockstep_planner.lockstep_syncs');
      expect(meta?.part).toBe(0);
      const through = Number(meta!.through.id);
      expect(through).toBeGreaterThan(shown);
      expect(through).toBeLessThan(ROWS);
      const missing = await sql<{ n: number }>(
        url,
        `select count(*)::int as n from lockstep_planner."${meta!.staging}" s left join target_rows t on t.id = s.id
          where s.id <= ${through} and (t.id is null or t::text <> s::text)`,
      );
      expect(missing).toEqual([{ n: 0 }]);

      // Restarted, a worker takes the run over (attempt 2): the delivered rows go into the planner
      // table, only the others are sent, and the destination equals the model.
      await takeOver(dir, env, store, through);
      const digest = (table: string) => sql(url, `select count(*)::int as n, md5(string_agg(t::text, '|' order by id)) as m from ${table} t`);
      expect(await digest('target_rows')).toEqual(await digest('model_rows'));
      expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_1_rows_to_crm')).toEqual([{ n: ROWS }]);
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
    const env = { KILL_MY_URL: url };
    const warehouse = `{ type: mysql, url: "\${KILL_MY_URL}", planner: warehouse, plannerSchema: ${plannerSchema} }`;
    const store = await applyWorkspace(dir, { warehouse, crm: '{ type: mysql, url: "${KILL_MY_URL}" }' }, env);
    try {
      const watermark = async () => {
        const marks = await mysqlSql<{ id: string }>(url, `select id from \`${plannerSchema}\`.sync_1_rows_to_crm_marks where lockstep_mark = 1`).catch(() => []);
        return Number(marks[0]?.id ?? 0);
      };
      const shown = await killPastWatermark(dir, env, store, watermark);

      // The watermark (kind in lockstep_syncs, key in the marks table) covers rows the destination
      // holds, with the values it holds: more than the run's record showed delivered.
      const [meta] = await mysqlSql<{ staging: string; part: number }>(url, `select staging, part from \`${plannerSchema}\`.lockstep_syncs`);
      expect(meta?.part).toBe(0);
      const through = await watermark();
      expect(through).toBeGreaterThan(shown);
      expect(through).toBeLessThan(ROWS);
      const missing = await mysqlSql<{ n: string }>(
        url,
        `select count(*) as n from \`${plannerSchema}\`.\`${meta!.staging}\` s left join target_rows t on t.id = s.id
          where s.id <= ${through} and (t.id is null or not (t.name <=> s.name and t.score <=> s.score and t.at <=> s.at))`,
      );
      expect(missing).toEqual([{ n: '0' }]);

      await takeOver(dir, env, store, through);
      const digest = (table: string) =>
        mysqlSql(url, `set session group_concat_max_len = 100000000; select count(*) as n, md5(group_concat(concat_ws(',', id, name, coalesce(score, '-'), at) order by id separator '|')) as m from ${table}`);
      expect(await digest('target_rows')).toEqual(await digest('model_rows'));
      expect(await mysqlSql(url, `select count(*) as n from \`${plannerSchema}\`.sync_1_rows_to_crm`)).toEqual([{ n: String(ROWS) }]);
    } finally {
      await store.close();
    }
  }, 120_000);
});

describe('kill -9 during a sync planned in the warehouse of a DuckDB source', () => {
  it('commits only delivered rows to the watermark, and the restarted run converges sending only the rest', async () => {
    const duck = await import('@duckdb/node-api');
    const dir = tempDir('lockstep-wh-duckkill-');
    /** Rows of a query on the DuckDB file (the worker holds the file while it runs). */
    const duckRows = async <T>(query: string): Promise<T[]> => {
      const instance = await duck.DuckDBInstance.create(join(dir, 'warehouse.duckdb'));
      const connection = await instance.connect();
      try {
        return (await connection.runAndReadAll(query)).getRowObjectsJS() as T[];
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
    };
    await duckRows(
      `create table model_rows as select g::bigint as id, 'row ' || g as name, case when g % 9 = 0 then null else (g % 1000)::integer end as score from range(1, ${ROWS + 1}) r(g)`,
    );
    const url = await createTestDatabase('lockstep_wduckkill');
    await sql(url, 'create table target_rows (id bigint primary key, name text not null, score integer)');
    const env = { KILL_PG_URL: url };
    const store = await applyWorkspace(dir, { warehouse: '{ type: duckdb, path: warehouse.duckdb, planner: warehouse }', crm: '{ type: postgres, url: "${KILL_PG_URL}" }' }, env);
    try {
      // The watermark cannot be read while the worker holds the file: the kill comes once the
      // destination holds three batches more than the record showed (their commits follow each
      // write at once), long before the run's last row, so the run cannot have ended.
      const landed = async () => (await sql<{ n: number }>(url, 'select count(*)::int as n from target_rows'))[0]!.n;
      const shown = await killAhead(lockstep(dir, ['sync', 'run', 'rows-to-crm'], env), dir, store, async (shown) => {
        if ((await landed()) < shown + 3000) return false;
        await sleep(50);
        return true;
      });
      // Most often the watermark is past what the record showed; on a loaded machine the kill may
      // come before the first commit reached the file (part -1: nothing delivered by the watermark,
      // every row sent again). Either way the run must count each row once (takeOver).
      const [meta] = await duckRows<{ part: number; through: string | null }>('select part, through from lockstep_planner.lockstep_syncs');
      expect([-1, 0]).toContain(meta?.part);
      const through = meta?.part === 0 ? Number((JSON.parse(meta.through as string) as number[])[0]) : 0;
      if (through > 0) expect(through).toBeGreaterThanOrEqual(shown);
      expect(through).toBeLessThan(ROWS);
      expect(await sql(url, `select count(*)::int as n from target_rows where id <= ${through}`)).toEqual([{ n: through }]);

      await takeOver(dir, env, store, through);
      const summary = 'count(*)::integer as n, sum(id)::bigint as ids, count(score)::integer as scored, sum(score)::bigint as scores, max(name) as name';
      const [model] = await duckRows<Record<string, unknown>>(`select ${summary} from model_rows`);
      const [target] = await sql<Record<string, unknown>>(url, `select ${summary} from target_rows`);
      expect(Object.fromEntries(Object.entries(target!).map(([k, v]) => [k, String(v)]))).toEqual(Object.fromEntries(Object.entries(model!).map(([k, v]) => [k, String(v)])));
      expect(await duckRows('select count(*)::integer as n from lockstep_planner.sync_1_rows_to_crm')).toEqual([{ n: ROWS }]);
    } finally {
      await store.close();
    }
  }, 120_000);
});

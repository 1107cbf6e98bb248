/**
 * Gives the test run a MySQL-compatible server: `TEST_MYSQL_URL` when set (any MySQL 5.7+/8 or
 * MariaDB 10.5+ whose user may create databases), otherwise a throwaway MariaDB started here, on a
 * free port on 127.0.0.1, in a temp folder, and stopped when the run ends. A server already running
 * on the machine (port 3306) is never used unless TEST_MYSQL_URL names it.
 *
 * The throwaway server comes from Debian's `mariadb-server` package, installed with apt-get when
 * `mariadbd` is missing (the tests run as root in CI containers). mariadbd refuses to run as root,
 * so the data folder belongs to the `mysql` service user and the server runs as that user.
 * Tests read the URL (a user with every privilege, no database) with `inject('mysqlUrl')`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { TestProject } from 'vitest/node';
import { aptInstall, freePort, run, serviceUser, tail } from './processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mysqlUrl: string;
    /** Part of the name of every database this run creates (see createTestMysqlDatabase). */
    mysqlRunTag: string;
  }
}

const USER = 'lockstep';
const PASSWORD = 'lockstep-test';
const SBIN = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/usr/libexec'];

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const tag = `r${randomBytes(3).toString('hex')}`;
  project.provide('mysqlRunTag', tag);
  const given = process.env.TEST_MYSQL_URL;
  if (given) {
    project.provide('mysqlUrl', given);
    // As with PostgreSQL: the run's databases are dropped at its end unless TEST_KEEP_DATABASES=1.
    return process.env.TEST_KEEP_DATABASES === '1' ? undefined : () => dropRunDatabases(given, tag);
  }
  const server = await startMariadb();
  project.provide('mysqlUrl', server.url);
  return () => server.stop();
}

/** The first of `names` found in the usual binary folders. */
function findBinary(names: string[]): string | null {
  for (const name of names) {
    for (const dir of SBIN) {
      const path = join(dir, name);
      if (existsSync(path)) return path;
    }
  }
  return null;
}

/** mariadbd (or mysqld) and mariadb-install-db, installing Debian's `mariadb-server` first when they are missing. */
function ensureMariadb(): { server: string; installDb: string } {
  const find = () => ({ server: findBinary(['mariadbd', 'mysqld']), installDb: findBinary(['mariadb-install-db', 'mysql_install_db']) });
  let found = find();
  if (!found.server || !found.installDb) {
    // Two test runs may get here at once: aptInstall waits for apt's lock instead of failing on it.
    const install = aptInstall('mariadb-server');
    found = find();
    if (!install.ok || !found.server || !found.installDb) {
      throw new Error(
        'the MySQL tests need a MariaDB server (mariadbd and mariadb-install-db) and installing it failed ' +
          `(apt-get update && apt-get install -y mariadb-server, as root) — or set TEST_MYSQL_URL to a server of yours:\n${tail(install.output)}`,
      );
    }
  }
  return { server: found.server as string, installDb: found.installDb as string };
}

export interface StartedMariadb {
  /** `mysql://lockstep:...@127.0.0.1:port/`: a user with every privilege, no database. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway MariaDB in a temp folder and waits until it takes connections. `options` are
 * more server options (`--sql-mode=ANSI_QUOTES`), which win over the defaults here.
 */
export async function startMariadb(options: readonly string[] = []): Promise<StartedMariadb> {
  const { server, installDb } = ensureMariadb();
  const user = serviceUser(['mysql', 'nobody'], 'mariadbd');
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-mysql-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const errorLog = join(dir, 'error.log');
  mkdirSync(dataDir);
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(dataDir, user.uid, user.gid);
  }
  const asUser = user ? [`--user=${user.name}`] : [];
  const install = run(installDb, [
    '--no-defaults',
    '--auth-root-authentication-method=normal',
    `--datadir=${dataDir}`,
    ...asUser,
    '--skip-test-db',
  ]);
  if (!install.ok) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed:\n${tail(install.output)}`);
  }
  const port = await freePort();
  const child: ChildProcess = spawn(
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
      '--max-connections=500',
      '--max-allowed-packet=64M',
      '--local-infile=1',
      // A throwaway server: durability traded for speed.
      '--innodb-buffer-pool-size=256M',
      '--innodb-flush-log-at-trx-commit=0',
      '--innodb-doublewrite=0',
      ...options,
    ],
    { stdio: 'ignore' },
  );
  child.unref();
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const fail = (why: string) => {
    child.kill('SIGKILL');
    const log = existsSync(errorLog) ? tail(readFileSync(errorLog, 'utf8')) : '(no error log)';
    rmSync(dir, { recursive: true, force: true });
    return new Error(`the throwaway MariaDB server ${why}:\n${log}`);
  };

  // Wait until it answers on its socket as root, then make the tests' user.
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw fail(`exited with code ${exited} while starting`);
    try {
      const admin = await mysql.createConnection({ socketPath: socket, user: 'root' });
      try {
        await admin.query(`create user '${USER}'@'%' identified by '${PASSWORD}'`);
        await admin.query(`grant all privileges on *.* to '${USER}'@'%' with grant option`);
      } finally {
        await admin.end();
      }
      break;
    } catch (error) {
      if (Date.now() > deadline) throw fail(`did not take connections within 60 s (${String(error)})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  return {
    url: `mysql://${USER}:${PASSWORD}@127.0.0.1:${port}/`,
    async stop() {
      if (exited === null) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await gone;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function dropRunDatabases(adminUrl: string, tag: string): Promise<void> {
  const connection = await mysql.createConnection(adminUrl);
  try {
    const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE ?', [`%\\_${tag}\\_%`]);
    for (const { name } of rows) await connection.query(`DROP DATABASE IF EXISTS \`${String(name)}\``).catch(() => undefined);
  } finally {
    await connection.end();
  }
}

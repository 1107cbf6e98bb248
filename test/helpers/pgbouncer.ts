/**
 * A throwaway PgBouncer in front of the tests' PostgreSQL server, in transaction pooling mode (as
 * hosted poolers run): each transaction of a client may run on another server session, and a server
 * session passes from one client to the next. Debian's `pgbouncer` package is installed with
 * apt-get when the binary is missing (as the MySQL setup installs `mariadb-server`); PgBouncer
 * refuses to run as root, so its folder belongs to a service user and it runs as that user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { aptInstall, freePort, serviceUser, tail } from '../setup/processes.js';

const BINARY = '/usr/sbin/pgbouncer';

function ensurePgbouncer(): void {
  if (existsSync(BINARY)) return;
  const install = aptInstall('pgbouncer');
  if (!install.ok || !existsSync(BINARY)) {
    throw new Error(
      `the connection pooler tests need PgBouncer at ${BINARY} and installing it failed (apt-get update && apt-get install -y pgbouncer, as root):\n${tail(install.output)}`,
    );
  }
}

export interface StartedPgbouncer {
  /** The URL of `database` through the pooler (any user name; the pooler logs in as the server's admin). */
  url(database: string): string;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer in front of the tests' server (`inject('postgresUrl')`), with `poolSize` server
 * sessions per database: with 1, every client of a database shares one server session in turn.
 */
export async function startPgbouncer(poolSize = 1): Promise<StartedPgbouncer> {
  ensurePgbouncer();
  const server = new URL(inject('postgresUrl'));
  const user = serviceUser(['postgres', 'nobody'], 'PgBouncer');
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-pgbouncer-'));
  const port = await freePort();
  const log = join(dir, 'pgbouncer.log');
  const password = decodeURIComponent(server.password);
  const target = `host=${server.hostname} port=${server.port || 5432} user=${decodeURIComponent(server.username)}${password ? ` password=${password}` : ''}`;
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = ${target}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = any',
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 200',
      `logfile = ${log}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  if (user) chownSync(dir, user.uid, user.gid);
  const child: ChildProcess = spawn(BINARY, [...(user ? ['-u', user.name] : []), join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const url = (database: string) => `postgres://lockstep@127.0.0.1:${port}/${database}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url(server.pathname.slice(1) || 'postgres') });
    try {
      await client.connect();
      await client.query('select 1');
      break;
    } catch (error) {
      const why = exited !== null ? `exited with code ${exited}` : Date.now() > deadline ? `did not take connections within 30 s (${String(error)})` : null;
      if (why) {
        child.kill('SIGKILL');
        const text = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '(no log)';
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`the throwaway PgBouncer ${why}:\n${text}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return {
    url,
    async stop() {
      if (exited === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

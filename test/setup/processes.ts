/**
 * What the throwaway servers of the tests (MariaDB, PgBouncer) need of the machine: a command's
 * outcome, a Debian package installed when missing, a free port, and a user to run as when we are
 * root (those servers refuse root).
 */
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

/** Runs `command` to its end (15 minutes at most, for apt-get), with its output. */
export function run(command: string, args: string[]): { ok: boolean; output: string } {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 15 * 60_000,
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
  return { ok: result.status === 0, output };
}

export function tail(text: string, lines = 15): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** apt-get update && apt-get install -y `pkg` (as root), waiting for another apt-get's lock. */
export function aptInstall(pkg: string): { ok: boolean; output: string } {
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  const update = run('apt-get', [...lock, 'update']);
  return update.ok ? run('apt-get', [...lock, 'install', '-y', pkg]) : update;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The first of `names` that is a user here, with its uid and gid, when we run as root; else null. */
export function serviceUser(names: readonly string[], server: string): { name: string; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of names) {
    const uid = run('id', ['-u', name]);
    const gid = run('id', ['-g', name]);
    if (uid.ok && gid.ok) return { name, uid: Number(uid.output.trim()), gid: Number(gid.output.trim()) };
  }
  throw new Error(`running as root, and there is no user ${names.map((n) => `"${n}"`).join(' nor ')} to run ${server} as (it refuses root)`);
}

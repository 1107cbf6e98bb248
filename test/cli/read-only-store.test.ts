/**
 * Commands that only read (`runs`, `plan`, `alerts list`, `token list`, `validate`) work on an embedded
 * store that cannot be written — a read-only file, or a file in a read-only folder (no `-shm` file can
 * be made there) — while commands that write say why they cannot. A read-only store at an older
 * schema cannot be migrated, and the message says what to do. The commands run as a child process;
 * when the tests run as root (whom permissions do not stop), the child runs as the user `nobody`.
 * On a workspace without a store yet, the commands that only read create none, nor do those that act
 * on a sync, a sequence, a run, a token or an alert channel the store would hold: they find none.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, sql } from '../helpers/postgres.js';
import { BIN, hierarchyWorkspace, runMain, type CliResult } from './cli-helpers.js';

/** Runs `lockstep` as a user the file permissions apply to. */
function runAsReader(args: string[], cwd: string): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NO_COLOR: '1', HOME: '/tmp' };
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], ...asNobody });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const madeReadOnly: string[] = [];

/** A workspace whose store holds a finished sequence run, then made read-only (`folder`: the folder too). */
async function readOnlyWorkspace(folder: boolean): Promise<string> {
  const dir = hierarchyWorkspace();
  expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
  expect((await runMain(['--workspace', dir, 'sequence', 'run', 'crm'])).code).toBe(0);
  // Closed cleanly: no -wal or -shm left beside the store.
  expect(readdirSync(dir).filter((f) => f.startsWith('lockstep.db-'))).toEqual([]);
  for (const file of readdirSync(dir)) chmodSync(join(dir, file), 0o444);
  chmodSync(dir, folder ? 0o555 : 0o777);
  madeReadOnly.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of madeReadOnly.splice(0)) chmodSync(dir, 0o755);
});

describe('a read-only store', () => {
  for (const folder of [false, true]) {
    it(`serves the commands that only read (${folder ? 'read-only folder' : 'read-only file'}); one that writes says why it cannot`, async () => {
      const dir = await readOnlyWorkspace(folder);
      const runs = await runAsReader(['runs', '--json'], dir);
      expect(runs.code, runs.stderr).toBe(0);
      const listed = JSON.parse(runs.stdout) as { sequenceRuns: Array<{ status: string }>; syncRuns: unknown[] };
      expect(listed.sequenceRuns).toMatchObject([{ status: 'done' }]);
      expect(listed.syncRuns).toHaveLength(3);
      for (const args of [['plan'], ['alerts', 'list'], ['token', 'list'], ['validate']]) {
        const result = await runAsReader(args, dir);
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      }
      expect((await runAsReader(['plan'], dir)).stdout).toContain('No changes');

      const write = await runAsReader(['token', 'create', '--name', 'ci'], dir);
      expect(write.code).toBe(3);
      expect(write.stderr).toMatch(/cannot be opened for writing; check its permissions and folder/);
      if (folder) expect(existsSync(join(dir, 'lockstep.db-shm'))).toBe(false);
    });
  }

  it('at an older schema: says it must be brought up to date once with write access', async () => {
    const dir = hierarchyWorkspace();
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    const raw = new Database(join(dir, 'lockstep.db'));
    const newest = (raw.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v;
    raw.prepare('DELETE FROM schema_migrations WHERE version = ?').run(newest);
    raw.close();
    for (const file of readdirSync(dir)) chmodSync(join(dir, file), 0o444);
    chmodSync(dir, 0o555);
    madeReadOnly.push(dir);
    const runs = await runAsReader(['runs'], dir);
    expect(runs.code).toBe(3);
    expect(runs.stderr).toContain('can only be read');
    expect(runs.stderr).toContain(`this one needs ${newest}`);
    expect(runs.stderr).toContain('run any command once with write access');
  });
});

/** Commands that act on something a store holds, and what each then says it did not find. */
const ACTING_ON_THE_STORE: Array<[string[], string]> = [
  // Declared in the files, but not applied: the store does not hold them.
  [['sync', 'run', 'accounts-to-crm'], 'no sync "accounts-to-crm"'],
  [['sequence', 'run', 'crm'], 'no sequence "crm"'],
  [['sync', 'cancel', '5'], 'no sync run 5'],
  [['sequence', 'cancel', '0b6f5c1e-8a1d-4f52-9c3e-2d7a4b9e6f10'], 'no sequence run "0b6f5c1e-8a1d-4f52-9c3e-2d7a4b9e6f10"'],
  [['sequence', 'resume', '0b6f5c1e-8a1d-4f52-9c3e-2d7a4b9e6f10'], 'no sequence run "0b6f5c1e-8a1d-4f52-9c3e-2d7a4b9e6f10"'],
  [['token', 'revoke', 'ci'], 'no token named "ci"'],
  [['alerts', 'test', 'ops'], 'no alert channel "ops"'],
];

describe('a workspace without a store yet', () => {
  it('the commands that only read answer as for an empty store, say there is none yet, and create none; one that writes creates it', async () => {
    const dir = hierarchyWorkspace();
    const before = readdirSync(dir).sort();
    const ws = ['--workspace', dir];
    const read = async (args: string[], code = 0) => {
      const result = await runMain([...ws, ...args]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(code);
      expect(result.stderr).toContain(`No store yet at ${join(dir, 'lockstep.db')}: nothing was applied or run with it — \`lockstep apply\` creates it.`);
      return result;
    };
    expect((await read(['runs'])).stdout).toContain('No runs yet.');
    expect(JSON.parse((await read(['runs', '--json'])).stdout)).toEqual({ nextScheduled: [], sequenceRuns: [], syncRuns: [] });
    expect((await read(['plan'])).stdout).toContain('+ create sequence crm');
    expect((await read(['token', 'list'])).stdout).toContain('No tokens.');
    expect(JSON.parse((await read(['token', 'list', '--json'])).stdout)).toEqual([]);
    expect((await read(['alerts', 'list'])).stdout).toContain('No alerts declared.');
    expect((await read(['sequence', 'plan', 'crm'], 2)).stderr).toContain('run `lockstep apply`');
    expect(readdirSync(dir).sort()).toEqual(before);

    const create = await runMain([...ws, 'token', 'create', '--name', 'ci']);
    expect(create.code, create.stderr).toBe(0);
    expect(existsSync(join(dir, 'lockstep.db'))).toBe(true);
    const listed = await runMain([...ws, 'token', 'list']);
    expect(listed.stderr).not.toContain('No store yet');
    expect(listed.stdout).toContain('ci  created');
  });

  it('the commands that act on what a store holds (a sync or sequence to run, a run, a token, an alert channel) find none, say there is no store yet, and create none', async () => {
    const dir = hierarchyWorkspace();
    const before = readdirSync(dir).sort();
    for (const [args, missing] of ACTING_ON_THE_STORE) {
      const result = await runMain(['--workspace', dir, ...args]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toBe(`error: ${missing}. No store yet at ${join(dir, 'lockstep.db')}: nothing was applied or run with it — \`lockstep apply\` creates it.\n`);
    }
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('on PostgreSQL, the commands that only read create no schema; one that writes creates it', async () => {
    const dir = hierarchyWorkspace();
    const database = await createTestDatabase('lockstep_no_store');
    const ws = ['--workspace', dir, '--store', `${database}?schema=ls_unread`];
    const schemas = async () =>
      (await sql<{ name: string }>(database, "SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name IN ('lockstep', 'ls_unread')")).map((r) => r.name);
    for (const args of [['runs'], ['plan'], ['token', 'list'], ['alerts', 'list']]) {
      const result = await runMain([...ws, ...args]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(result.stderr).toMatch(/^No store yet at postgres:\/\/.*: nothing was applied or run with it/);
    }
    for (const [args, missing] of ACTING_ON_THE_STORE) {
      const result = await runMain([...ws, ...args]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(/^error: .*\. No store yet at postgres:\/\/.*: nothing was applied or run with it/);
      expect(result.stderr).toContain(missing);
    }
    expect(await schemas()).toEqual([]);
    // The line names the store as given, harmless parameters included; the password never shows (the
    // server's own, or any one where it trusts every connection).
    const { username, password, host, pathname } = new URL(database);
    const secret = password || 'pw-7731';
    const parameters = '?schema=ls_unread&sslmode=disable&application_name=lockstep-cli';
    const named = await runMain(['--workspace', dir, '--store', `postgres://${username}:${secret}@${host}${pathname}${parameters}`, 'runs']);
    expect(named.code, named.stderr).toBe(0);
    expect(named.stderr).toContain(`No store yet at postgres://${username}:***@${host}${pathname}${parameters}:`);
    expect(named.stderr).not.toContain(secret);
    expect(await schemas()).toEqual([]);
    const create = await runMain([...ws, 'token', 'create', '--name', 'ci']);
    expect(create.code, create.stderr).toBe(0);
    expect(await schemas()).toEqual(['ls_unread']);
    expect((await runMain([...ws, 'token', 'list'])).stdout).toContain('ci  created');
  });
});

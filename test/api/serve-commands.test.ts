/**
 * The command line around the server: `token create|list|revoke`, `serve` printing its URL and
 * answering with a token, `--no-auth` refused off loopback, and `plan` showing what the API created.
 */
import { appendFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { CliProcess, enqueueWork, hierarchyWorkspace, killChildren, runCli, runMain } from '../cli/cli-helpers.js';

afterEach(async () => {
  await killChildren();
});

/** A port on 127.0.0.1 that a server of this test holds. */
async function takePort(): Promise<{ port: number } & AsyncDisposable> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('lockstep token', () => {
  it('creates a token printed once, lists it, and revokes it', async () => {
    const dir = hierarchyWorkspace();
    const created = await runMain(['--workspace', dir, 'token', 'create', '--name', 'ci']);
    expect(created.code).toBe(0);
    expect(created.stdout.trim()).toMatch(/^lst_[A-Za-z0-9_-]{43}$/);
    expect((await runMain(['--workspace', dir, 'token', 'create', '--name', 'ci'])).code).toBe(2);
    const listed = await runMain(['--workspace', dir, 'token', 'list', '--json']);
    const tokens = JSON.parse(listed.stdout) as Array<{ name: string; lastUsedAt: string | null }>;
    expect(tokens).toEqual([{ name: 'ci', createdAt: expect.any(String), lastUsedAt: null }]);
    expect(listed.stdout).not.toContain(created.stdout.trim());
    expect((await runMain(['--workspace', dir, 'token', 'revoke', 'ci'])).stdout).toContain('revoked');
    expect((await runMain(['--workspace', dir, 'token', 'revoke', 'ci'])).code).toBe(2);
  });

  it('refuses a token name that token list could not show or token revoke could not take', async () => {
    const dir = hierarchyWorkspace();
    for (const [name, message] of [
      ['', 'a token name cannot be empty — name the token after who uses it, e.g. --name airflow'],
      ['  ', 'a token name cannot be empty'],
      ['ci\nprod', 'the token name "ci\\nprod" holds a control character (a newline, a tab)'],
      [' ci', 'the token name " ci" starts or ends with a space'],
      ['x'.repeat(101), 'the token name is 101 characters long; at most 100'],
    ] as const) {
      const refused = await runMain(['--workspace', dir, 'token', 'create', '--name', name]);
      expect(refused.code, name).toBe(2);
      expect(refused.stderr, name).toContain(message);
      expect(refused.stdout, name).not.toMatch(/lst_/);
    }
    expect(JSON.parse((await runMain(['--workspace', dir, 'token', 'list', '--json'])).stdout)).toEqual([]);
    expect((await runMain(['--workspace', dir, 'token', 'create', '--name', 'ci bot@example.com'])).code).toBe(0);
  });
});

describe('lockstep serve', () => {
  it('prints its URL and answers the API with a token, 401 without', async () => {
    const dir = hierarchyWorkspace();
    expect((await runCli(['apply'], { cwd: dir })).code).toBe(0);
    const token = (await runMain(['--workspace', dir, 'token', 'create', '--name', 'ci'])).stdout.trim();
    const server = new CliProcess(['serve'], { cwd: dir });
    await server.waitForStderr(/at http:\/\/127\.0\.0\.1:\d+/);
    const url = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(server.stderr)![1]!;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/api/v1/syncs`)).status).toBe(401);
    const syncs = await fetch(`${url}/api/v1/syncs`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await syncs.json()) as { data: unknown[] }).data).toHaveLength(3);
    const stopped = await server.stop();
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).not.toContain(token);
  });

  it('refuses --no-auth on a host that is not loopback', async () => {
    const dir = hierarchyWorkspace();
    const result = await runCli(['serve', '--no-auth', '--host', '0.0.0.0'], { cwd: dir, timeoutMs: 15_000 });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--no-auth is allowed only on a loopback host');
  });

  it('names LOCKSTEP_PORT when its value is not a port, and takes it empty for unset', async () => {
    const dir = hierarchyWorkspace();
    const bad = await runCli(['serve', '--drain'], { cwd: dir, env: { LOCKSTEP_PORT: 'http' }, timeoutMs: 15_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: LOCKSTEP_PORT=http is not a port number (0..65535) — give a free port, e.g. LOCKSTEP_PORT=8080\n');
    // Empty: the default port (taken or not here, it is not refused as a value).
    const empty = await runCli(['serve', '--drain'], { cwd: dir, env: { LOCKSTEP_PORT: '' }, timeoutMs: 15_000 });
    expect(empty.stderr).not.toContain('is not a port number');
    expect(empty.stderr + empty.stdout).toContain('127.0.0.1:3000');
  });

  it('refuses bad flags and a port already taken before its worker or scheduler starts: a queued run stays queued, untouched', async () => {
    const dir = hierarchyWorkspace();
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    const { syncRunId } = await enqueueWork(dir, 'crm', 'accounts-to-crm');
    await using taken = await takePort();
    for (const [args, code, message] of [
      [['--port', '99999'], 2, '--port "99999" is not a port number (0..65535)'],
      [['--no-auth', '--host', '0.0.0.0'], 2, '--no-auth is allowed only on a loopback host'],
      [
        ['--port', String(taken.port)],
        3,
        `cannot listen on 127.0.0.1:${taken.port}: listen EADDRINUSE: address already in use 127.0.0.1:${taken.port} — another program listens on that port: stop it, or pick another port with --port (or LOCKSTEP_PORT), e.g. --port 8080`,
      ],
    ] as const) {
      const result = await runMain(['--workspace', dir, 'serve', ...args]);
      expect(result.code, result.stderr).toBe(code);
      expect(result.stderr).toContain(message);
      expect(result.stderr).not.toContain('running on');
    }
    const app = await createApp(resolveConfig({ workspaceDir: dir, env: {} }), { logger: silentLogger });
    try {
      expect(await app.store.getSyncRun(syncRunId)).toMatchObject({ status: 'queued', attempt: 0 });
    } finally {
      await app.close();
    }
  });
});

describe('lockstep serve and worker with alert channels', () => {
  it('refuse to start while a webhook channel signs with a variable exported empty, naming it: a queued run stays queued', async () => {
    const dir = hierarchyWorkspace();
    appendFileSync(join(dir, 'lockstep.yaml'), ['alerts:', '  channels:', '    hooks: { type: webhook, url: "https://alerts.example.test/lockstep", secret: "${HOOK_SECRET}" }', ''].join('\n'));
    const before = process.env.HOOK_SECRET;
    try {
      process.env.HOOK_SECRET = 'sh4red-secret';
      expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
      const { syncRunId } = await enqueueWork(dir, 'crm', 'accounts-to-crm');
      process.env.HOOK_SECRET = '';
      for (const command of [['serve', '--port', '0'], ['worker', '--drain']]) {
        const result = await runMain(['--workspace', dir, ...command]);
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toContain('alert channel "hooks" signs its notices with ${HOOK_SECRET}, but the environment variable HOOK_SECRET is empty');
        expect(result.stderr).not.toContain('running on');
      }
      const app = await createApp(resolveConfig({ workspaceDir: dir, env: {} }), { logger: silentLogger });
      try {
        expect(await app.store.getSyncRun(syncRunId)).toMatchObject({ status: 'queued', attempt: 0 });
      } finally {
        await app.close();
      }
    } finally {
      if (before === undefined) delete process.env.HOOK_SECRET;
      else process.env.HOOK_SECRET = before;
    }
  });
});

describe('lockstep plan', () => {
  it('lists what the API created, which apply leaves alone', async () => {
    const dir = hierarchyWorkspace();
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    const app = await createApp(resolveConfig({ workspaceDir: dir, env: {} }), { logger: silentLogger });
    try {
      await app.store.upsertEntity('model', { slug: 'leads', source: 'warehouse', query: 'select 1 as id', primaryKey: ['id'] }, 'api', Date.now());
    } finally {
      await app.close();
    }
    const plan = await runMain(['--workspace', dir, 'plan']);
    expect(plan.stdout).toContain('= keep model leads (created through the API; apply leaves it alone)');
    expect((await runMain(['--workspace', dir, 'apply'])).stdout).toContain('Nothing to apply');
  });
});

/** `lockstep alerts test` and `lockstep alerts list`, in-process, against a real HTTP receiver. */
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hierarchyWorkspace, runMain } from '../cli/cli-helpers.js';
import { sqlite } from '../helpers/harness.js';
import { HttpReceiver } from './receivers.js';

describe('lockstep alerts', () => {
  it('sends a test alert, lists channels, rules, raised alerts and deliveries, and reports an unknown channel', async () => {
    await using http = await HttpReceiver.start((path) => ({ status: path === '/broken' ? 403 : 200 }));
    const dir = hierarchyWorkspace();
    appendFileSync(
      join(dir, 'lockstep.yaml'),
      [
        'alerts:',
        '  channels:',
        `    hooks: { type: webhook, url: "${http.url}/hook", secret: s3cret }`,
        `    broken: { type: slack, url: "${http.url}/broken" }`,
        '  rules:',
        '    - { name: crm-failures, sequences: [crm], on: [sequence_failed, recovered], channels: [hooks] }',
        '    - { on: [sync_failed], channels: [hooks] }',
        '',
      ].join('\n'),
    );
    const apply = await runMain(['--workspace', dir, 'apply']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('create alert-channel hooks');
    expect(apply.stdout).toContain('create alert-rule crm-failures');

    const test = await runMain(['--workspace', dir, 'alerts', 'test', 'hooks']);
    expect(test.code, test.stderr).toBe(0);
    expect(test.stdout).toMatch(/✔ test alert sent to channel "hooks" \(delivery \d+\)/);
    expect(http.at('/hook')).toHaveLength(1);

    const refused = await runMain(['--workspace', dir, 'alerts', 'test', 'broken']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/slack channel "broken": .* answered 403/);

    const unknown = await runMain(['--workspace', dir, 'alerts', 'test', 'hook']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      'no alert channel "hook" in the store (did you mean "hooks"?) — the channels are: hooks, broken; ' +
        'to add one, declare it under alerts.channels and run `lockstep apply`',
    );

    // A failing sequence run through the CLI: its alert goes out before the command exits.
    sqlite(join(dir, 'crm.db'), 'drop table workspaces');
    const run = await runMain(['--workspace', dir, 'sequence', 'run', 'crm', '--json']);
    expect(run.code).toBe(1);
    const titles = http.at('/hook').map((r) => (r.json as { title: string }).title);
    expect(titles.sort()).toEqual(['Sequence "crm" failed', 'Sync "workspaces-to-crm" failed', 'Test alert from Lockstep']);

    const list = await runMain(['--workspace', dir, 'alerts', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('  hooks  webhook');
    expect(list.stdout).toContain('  crm-failures  on sequence_failed, recovered  — sequence crm  → hooks');
    expect(list.stdout).toContain('  rule-2  on sync_failed  — workspace default  → hooks');
    expect(list.stdout).toContain('  sequence crm  failed  since');
    expect(list.stdout).toMatch(/✖ #\d+ .* broken {2}Test alert from Lockstep {2}failed after 1 attempt\(s\) {2}— slack channel "broken"/);
    expect(list.stdout).toMatch(/✔ #\d+ .* hooks {2}Sequence "crm" failed {2}sent after 1 attempt\(s\)/);
    expect(list.stdout).not.toContain('s3cret');

    const json = JSON.parse((await runMain(['--workspace', dir, 'alerts', 'list', '--json'])).stdout) as { channels: unknown[]; deliveries: unknown[] };
    expect(json.channels).toEqual([
      { name: 'hooks', type: 'webhook' },
      { name: 'broken', type: 'slack' },
    ]);
    expect(json.deliveries).toHaveLength(4);
  });

  it('keeps the secrets of a channel out of a refused delivery\'s error, which echoes what it was sent', async () => {
    // A receiver that refuses everything and answers with what it got, as some APIs do in their errors.
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => res.writeHead(401).end(JSON.stringify({ path: req.url, authorization: req.headers.authorization, body })));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await using _server = { [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const basic = Buffer.from('hook-user:hook-pass-8812').toString('base64');
    const secrets = ['slack-path-secret-5521', 'hook-query-7731', 'hook-header-6621', 'pd-routing-key-4410', 'hook-pass-8812', basic];
    const dir = hierarchyWorkspace();
    appendFileSync(
      join(dir, 'lockstep.yaml'),
      [
        'alerts:',
        '  channels:',
        `    ops-slack: { type: slack, url: "${url}/services/T0/B0/slack-path-secret-5521" }`,
        `    hooks: { type: webhook, url: "${url}/hook?token=hook-query-7731", headers: { Authorization: "Bearer hook-header-6621" } }`,
        `    oncall: { type: pagerduty, routingKey: pd-routing-key-4410-0123456789ab, url: "${url}/enqueue" }`,
        `    basic: { type: webhook, url: "${url.replace('http://', 'http://hook-user:hook-pass-8812@')}/hook" }`,
        '  rules:',
        '    - { on: [sync_failed], channels: [ops-slack, hooks, oncall, basic] }',
        '',
      ].join('\n'),
    );
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    for (const channel of ['ops-slack', 'hooks', 'oncall', 'basic']) {
      const refused = await runMain(['--workspace', dir, 'alerts', 'test', channel]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(new RegExp(`channel "${channel}": ${url.replace(/[.]/g, '\\.')} answered 401: \\{`));
      for (const secret of secrets) expect(refused.stderr).not.toContain(secret);
    }
    const list = await runMain(['--workspace', dir, 'alerts', 'list']);
    const json = await runMain(['--workspace', dir, 'alerts', 'list', '--json']);
    expect(list.stdout).toContain('answered 401');
    for (const secret of secrets) {
      expect(list.stdout).not.toContain(secret);
      expect(json.stdout).not.toContain(secret);
    }
  });

  it('sends a webhook URL\'s user information as Basic authentication, as curl does', async () => {
    await using http = await HttpReceiver.start();
    const dir = hierarchyWorkspace();
    const withUser = http.url.replace('http://', 'http://hook-user:hook%20pass-8812@');
    appendFileSync(join(dir, 'lockstep.yaml'), ['alerts:', '  channels:', `    hooks: { type: webhook, url: "${withUser}/hook" }`, ''].join('\n'));
    expect((await runMain(['--workspace', dir, 'apply'])).code).toBe(0);
    const test = await runMain(['--workspace', dir, 'alerts', 'test', 'hooks']);
    expect(test.code, test.stderr).toBe(0);
    const [request] = http.at('/hook');
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from('hook-user:hook pass-8812').toString('base64')}`);
  });
});

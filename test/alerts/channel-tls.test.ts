/**
 * HTTPS alert channels (webhook, Slack, PagerDuty) whose endpoint's certificate Lockstep does not
 * trust, as an internal receiver signed by a company CA has: given up at once with the way to trust
 * it, and delivered once the CA is trusted.
 */
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebhookChannel } from '../../src/connectors/alert-channels/webhook-channel.js';
import type { AlertNotice } from '../../src/core/alerts.js';
import { LockstepError } from '../../src/core/errors.js';
import { hierarchyWorkspace, runCli } from '../cli/cli-helpers.js';
import { testCertificates } from './receivers.js';

async function httpsReceiver() {
  const tls = testCertificates();
  const bodies: string[] = [];
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/lockstep`,
    caFile: tls.caFile,
    bodies,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const notice = { kind: 'test', event: 'test', title: 'Test', text: 'test', fields: [], occurredAt: Date.parse('2026-12-07T12:00:00Z') } as unknown as AlertNotice;

describe('HTTPS alert channels', () => {
  it('give up at once on a certificate no trusted CA signed, saying to start Lockstep with NODE_EXTRA_CA_CERTS', async () => {
    await using receiver = await httpsReceiver();
    const error = await new WebhookChannel({ name: 'hooks', url: receiver.url, headers: {}, secret: null }).send(notice, { id: 1 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LockstepError);
    expect((error as LockstepError).retryable).toBe(false);
    expect((error as Error).message).toMatch(
      /^webhook channel "hooks": https:\/\/127\.0\.0\.1:\d+ has a certificate Lockstep does not trust \(UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate\) — check the url's host and its certificate; if a private CA signed it, start Lockstep with NODE_EXTRA_CA_CERTS=\/path\/to\/that-ca\.pem$/,
    );
    expect(receiver.bodies).toEqual([]);
  });

  it('deliver once the CA is trusted through NODE_EXTRA_CA_CERTS', async () => {
    await using receiver = await httpsReceiver();
    const dir = hierarchyWorkspace();
    appendFileSync(join(dir, 'lockstep.yaml'), ['alerts:', '  channels:', `    hooks: { type: webhook, url: "${receiver.url}" }`, ''].join('\n'));
    const env = { NODE_EXTRA_CA_CERTS: receiver.caFile };
    expect((await runCli(['--workspace', dir, 'apply'], { cwd: dir, env })).code).toBe(0);
    const sent = await runCli(['--workspace', dir, 'alerts', 'test', 'hooks'], { cwd: dir, env });
    expect(sent.code, sent.stderr).toBe(0);
    expect(receiver.bodies).toHaveLength(1);
    expect(JSON.parse(receiver.bodies[0]!)).toMatchObject({ event: 'test' });
  });
});

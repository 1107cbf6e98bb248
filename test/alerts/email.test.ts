/**
 * The email channel against a real SMTP server on loopback (smtp-server): STARTTLS, logins, the
 * server's replies (4xx tried again, 5xx final) and subjects in any script.
 */
import { appendFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { EmailChannel } from '../../src/connectors/alert-channels/email-channel.js';
import type { AlertNotice } from '../../src/core/alerts.js';
import { LockstepError } from '../../src/core/errors.js';
import { hierarchyWorkspace, runCli } from '../cli/cli-helpers.js';
import { subjectOf, testCertificates } from './receivers.js';

const PASSWORD = 'pa55-w0rd-smtp';

interface Session {
  secure: boolean;
  user: string | null;
  raw: string;
}

/** An SMTP server on 127.0.0.1 recording the logins it was offered and the messages it took. */
async function smtpServer(options: SMTPServerOptions) {
  const logins: string[] = [];
  const messages: Session[] = [];
  const server = new SMTPServer({
    logger: false,
    onAuth(auth, _session, callback) {
      logins.push(`${auth.username}:${auth.password}`);
      if (auth.password === PASSWORD) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({ secure: session.secure, user: typeof session.user === 'string' ? session.user : null, raw: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
    ...options,
  });
  server.on('error', () => {}); // a client that gives up on TLS closes the socket mid-handshake
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    logins,
    messages,
    async [Symbol.asyncDispose]() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const notice: AlertNotice = {
  kind: 'triggered',
  event: 'sync_failed',
  condition: 'failed',
  rule: 'default',
  subject: { kind: 'sync', slug: 'accounts' },
  run: null,
  title: 'Sync "accounts" failed',
  text: 'no such table: accounts',
  fields: [],
  severity: 'error',
  dedupKey: 'lockstep:default:sync:accounts:failed',
  occurredAt: Date.parse('2026-12-07T12:00:00Z'),
};

async function refusal(smtp: string): Promise<LockstepError> {
  const error = await new EmailChannel({ name: 'mail', smtp, from: 'lockstep@example.test', to: ['ops@example.test'], timeoutMs: 5000 }).send(notice).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  expect((error as Error).message).not.toContain(PASSWORD);
  return error as LockstepError;
}

describe('email channel', () => {
  it('gives up at once on a STARTTLS certificate it does not trust, saying how to trust a private CA', async () => {
    // smtp-server's own certificate: self-signed, and long expired.
    await using server = await smtpServer({ authOptional: true });
    const error = await refusal(`smtp://127.0.0.1:${server.port}`);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(
      new RegExp(`^email channel "mail": the SMTP server 127\\.0\\.0\\.1:${server.port} has a certificate Lockstep does not trust \\(certificate has expired\\) — .*NODE_EXTRA_CA_CERTS=/path/to/that-ca\\.pem$`),
    );
    expect(server.messages).toEqual([]);
  });

  it('sends a user and password only encrypted: a server without STARTTLS never sees them', async () => {
    await using server = await smtpServer({ disabledCommands: ['STARTTLS'], allowInsecureAuth: true });
    const error = await refusal(`smtp://ops:${PASSWORD}@127.0.0.1:${server.port}`);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/the SMTP server 127\.0\.0\.1:\d+ offers no STARTTLS .* Lockstep sends the user and password only encrypted — enable STARTTLS on the server/);
    expect(server.logins).toEqual([]);
    expect(server.messages).toEqual([]);
  });

  it('says to write smtp:// when smtps:// reaches a server that does not speak TLS at once', async () => {
    await using server = await smtpServer({ authOptional: true, disabledCommands: ['STARTTLS'] });
    const error = await refusal(`smtps://127.0.0.1:${server.port}`);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/does not speak TLS at once, as smtps:\/\/ asks — write smtp:\/\/ for a server that upgrades with STARTTLS/);
  });

  it('tries a 4xx reply again and gives up on a 5xx reply and a refused login, naming what to check', async () => {
    const reply = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
    await using busy = await smtpServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], onRcptTo: (_a, _s, cb) => cb(reply(451, 'mailbox busy, try later')) });
    const transient = await refusal(`smtp://127.0.0.1:${busy.port}`);
    expect(transient).toMatchObject({ retryable: true, message: expect.stringMatching(/451 mailbox busy/) });
    await using unknown = await smtpServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], onRcptTo: (_a, _s, cb) => cb(reply(550, 'no such user')) });
    expect(await refusal(`smtp://127.0.0.1:${unknown.port}`)).toMatchObject({ retryable: false, message: expect.stringMatching(/550 no such user/) });
    await using full = await smtpServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], onConnect: (_s, cb) => cb(reply(421, 'too busy')) });
    expect(await refusal(`smtp://127.0.0.1:${full.port}`)).toMatchObject({ retryable: true });

    const tls = testCertificates();
    await using login = await smtpServer({ key: tls.key, cert: tls.cert });
    const wrong = await new EmailChannel({ name: 'mail', smtp: `smtp://ops:wrong@127.0.0.1:${login.port}`, from: 'a@example.test', to: ['b@example.test'] }).send(notice).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    // The CA is not trusted in this process: the certificate is what fails first.
    expect(wrong?.message).toMatch(/has a certificate Lockstep does not trust \((self-signed certificate in certificate chain|unable to get local issuer certificate|unable to verify the first certificate)\)/);
  });

  it('says which recipients the server refused when it took the message for the others: a 5xx ends the delivery, a 4xx tries again', async () => {
    const reply = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
    const refuse = (address: string, code: number, text: string): SMTPServerOptions['onRcptTo'] => (to, _s, cb) => cb(to.address === address ? reply(code, text) : undefined);
    const channel = (port: number) =>
      new EmailChannel({ name: 'mail', smtp: `smtp://127.0.0.1:${port}`, from: 'lockstep@example.test', to: ['ops@example.test', 'oncall@example.test'], timeoutMs: 5000 });
    await using gone = await smtpServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], onRcptTo: refuse('oncall@example.test', 550, 'no such user') });
    const permanent = await channel(gone.port).send(notice).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    expect(gone.messages).toHaveLength(1);
    expect(permanent).toMatchObject({
      retryable: false,
      message: 'email channel "mail": sent to ops@example.test, but the server refused oncall@example.test (550 no such user) — check the addresses in the channel\'s to',
    });
    await using full = await smtpServer({ authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], onRcptTo: refuse('oncall@example.test', 452, 'mailbox full') });
    const later = await channel(full.port).send(notice).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    expect(later).toMatchObject({ retryable: true, message: expect.stringMatching(/sent to ops@example\.test, but the server refused oncall@example\.test for now \(452 mailbox full\); tried again/) });
  });

  it('delivers over STARTTLS with a login when the server\'s CA is trusted (NODE_EXTRA_CA_CERTS), with names in any script encoded per RFC 2047', async () => {
    const tls = testCertificates();
    await using server = await smtpServer({ key: tls.key, cert: tls.cert });
    const dir = hierarchyWorkspace();
    appendFileSync(
      join(dir, 'lockstep.yaml'),
      [
        'alerts:',
        '  channels:',
        `    mail: { type: email, smtp: "smtp://ops:\${SMTP_PASSWORD}@127.0.0.1:${server.port}", from: "Lockstep Überwachung <lockstep@example.test>", to: ["José Núñez <ops@example.test>", "運用 <oncall@example.test>"] }`,
        `    wrong: { type: email, smtp: "smtp://ops:not-it@127.0.0.1:${server.port}", from: lockstep@example.test, to: [ops@example.test] }`,
        '',
      ].join('\n'),
    );
    const env = { SMTP_PASSWORD: PASSWORD, NODE_EXTRA_CA_CERTS: tls.caFile };
    const apply = await runCli(['--workspace', dir, 'apply'], { cwd: dir, env });
    expect(apply.code, apply.stderr).toBe(0);
    const sent = await runCli(['--workspace', dir, 'alerts', 'test', 'mail'], { cwd: dir, env });
    expect(sent.code, sent.stderr).toBe(0);
    expect(server.messages).toHaveLength(1);
    const [message] = server.messages;
    expect(message).toMatchObject({ secure: true, user: 'ops' });
    expect(subjectOf(message!.raw)).toBe('[Lockstep] Test alert from Lockstep');
    expect(message!.raw).toMatch(/^From: =\?UTF-8\?Q\?Lockstep_=C3=9Cberwachung\?= <lockstep@example\.test>/m);
    expect(message!.raw).toContain('=?UTF-8?Q?Jos=C3=A9_N=C3=BA=C3=B1ez?= <ops@example.test>');
    expect([...message!.raw].every((c) => c.charCodeAt(0) < 128)).toBe(true);

    const refused = await runCli(['--workspace', dir, 'alerts', 'test', 'wrong'], { cwd: dir, env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/email channel "wrong": the SMTP server 127\.0\.0\.1:\d+ refused the login \(Invalid login: 535 .*\) — check the user and password in the channel's smtp URL/);
    expect(refused.stderr).not.toContain('not-it');
  });

  it('sends a password with a % that starts no escape as written, the way it is set in the environment', async () => {
    const tls = testCertificates();
    const password = '50%off-pa55';
    const logins: string[] = [];
    await using server = await smtpServer({
      key: tls.key,
      cert: tls.cert,
      onAuth(auth, _session, callback) {
        logins.push(`${auth.username}:${auth.password}`);
        if (auth.password === password) callback(null, { user: auth.username });
        else callback(new Error('Invalid username or password'));
      },
    });
    const dir = hierarchyWorkspace();
    appendFileSync(
      join(dir, 'lockstep.yaml'),
      ['alerts:', '  channels:', `    mail: { type: email, smtp: "smtp://ops:\${SMTP_PASSWORD}@127.0.0.1:${server.port}", from: lockstep@example.test, to: [ops@example.test] }`, ''].join('\n'),
    );
    const env = { SMTP_PASSWORD: password, NODE_EXTRA_CA_CERTS: tls.caFile };
    expect((await runCli(['--workspace', dir, 'apply'], { cwd: dir, env })).code).toBe(0);
    const sent = await runCli(['--workspace', dir, 'alerts', 'test', 'mail'], { cwd: dir, env });
    expect(sent.stderr).not.toContain('URI malformed');
    expect(sent.code, sent.stderr).toBe(0);
    expect(logins).toEqual([`ops:${password}`]);
    expect(server.messages).toHaveLength(1);
  });

  it('says to percent-encode a password that splits the smtp URL (a # or / in it), without trying a host made of its pieces', async () => {
    await using server = await smtpServer({ disabledCommands: ['STARTTLS'] });
    for (const secret of ['2024#Pa55word', 'abcd/efgh#ijkl']) {
      const error = await refusal(`smtp://ops:${secret}@127.0.0.1:${server.port}`);
      expect(error).toMatchObject({ retryable: false });
      expect(error.message).toMatch(/^email channel "mail": smtp (is not a URL|does not read as user:password@host:port).* percent-encode @, \/, #, \? and : in the user name and password/);
      for (const piece of secret.split(/[#/]/)) expect(error.message).not.toContain(piece);
    }
    expect(server.logins).toEqual([]);
  });
});

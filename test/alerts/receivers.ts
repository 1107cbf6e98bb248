import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { tempDir } from '../helpers/harness.js';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, as sent (signatures are over these bytes). */
  raw: string;
  json: unknown;
  at: number;
}

/** What the receiver answers for a request: a status, after an optional delay, with a `Location` for a redirect and a `Retry-After`. */
export type Answer = { status: number; delayMs?: number; location?: string; retryAfter?: string };

/**
 * An HTTP server on 127.0.0.1 standing in for Slack, a webhook endpoint and PagerDuty: it records
 * every request it accepts and answers 200, or what `answer(path, n)` says for the n-th request (0-based) to a path.
 */
export class HttpReceiver implements AsyncDisposable {
  readonly requests: ReceivedRequest[] = [];
  private readonly counts = new Map<string, number>();
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(answer: (path: string, n: number) => Answer = () => ({ status: 200 })): Promise<HttpReceiver> {
    const ref: { receiver: HttpReceiver | null } = { receiver: null };
    const server = createServer((req, res) => {
      const receiver = ref.receiver as HttpReceiver;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        const n = receiver.counts.get(path) ?? 0;
        receiver.counts.set(path, n + 1);
        const { status, delayMs, location, retryAfter } = answer(path, n);
        setTimeout(() => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const json: unknown = raw ? JSON.parse(raw) : null;
          if (status < 300) receiver.requests.push({ method: req.method ?? 'GET', path, headers: req.headers, raw, json, at: Date.now() });
          res.writeHead(status, { 'content-type': 'text/plain', ...(location ? { location } : {}), ...(retryAfter ? { 'retry-after': retryAfter } : {}) }).end(status < 300 ? 'ok' : 'try later');
        }, delayMs ?? 0);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ref.receiver = new HttpReceiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return ref.receiver;
  }

  /** Requests accepted (answered 2xx) at `path`. */
  at(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Requests of any answer made to `path` so far. */
  attempts(path: string): number {
    return this.counts.get(path) ?? 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
}

/** A real SMTP server (smtp-server) on 127.0.0.1 without TLS or authentication, keeping every message. */
export class SmtpReceiver implements AsyncDisposable {
  readonly messages: ReceivedMail[] = [];
  private constructor(
    private readonly server: SMTPServer,
    readonly url: string,
  ) {}

  static async start(): Promise<SmtpReceiver> {
    const ref: { receiver: SmtpReceiver | null } = { receiver: null };
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          ref.receiver?.messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.server.address() as AddressInfo).port;
    ref.receiver = new SmtpReceiver(server, `smtp://127.0.0.1:${port}`);
    return ref.receiver;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Waits until `check` returns true, checking every 20 ms. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The decoded Subject header of a raw message (RFC 2047 Q-encoded words joined). */
export function subjectOf(raw: string): string {
  const header = /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)?.[1] ?? '';
  const unfolded = header.replace(/\r?\n[ \t]/g, ' ').replace(/\?=\s+=\?/g, '?==?');
  return unfolded.replace(/=\?UTF-8\?Q\?(.*?)\?=/gi, (_m, text: string) =>
    Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_x, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8'),
  );
}

/** A CA, and a certificate for 127.0.0.1 it signed, made with openssl; `caFile` is the CA's PEM file. */
export function testCertificates(): { ca: string; key: string; cert: string; caFile: string } {
  const dir = tempDir('lockstep-tls-');
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Lockstep test CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  appendFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return { ca: read('ca.pem'), key: read('server.key'), cert: read('server.pem'), caFile: join(dir, 'ca.pem') };
}

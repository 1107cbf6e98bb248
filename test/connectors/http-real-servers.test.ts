/**
 * The HTTP destination against servers that behave as real ones do on real networks, beyond the
 * well-behaved receiver of http-destination.test.ts: raw HTTP/1.0 and byte-by-byte answers, servers
 * closing connections, answers before the request is read, byte order marks, compressed answers
 * nobody asked for, huge error pages, odd Retry-After values, values in paths the URL parser would
 * reinterpret, TLS with a private CA, and HTTP proxies. Every server listens on 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { httpConnector } from '../../src/connectors/http/index.js';
import { resolveConnection } from '../../src/core/connector-registry.js';
import { LockstepError } from '../../src/core/errors.js';
import { tempDir } from '../helpers/harness.js';
import type { Destination, RowOutcome, WriteOperation, WriteTarget } from '../../src/core/ports.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function openHttp(url: string, settings: Record<string, unknown> = {}): Promise<Destination> {
  const registry = createConnectorRegistry();
  if (!registry.kind('http')) registry.register(httpConnector);
  const def = { slug: 'api', type: 'http', settings: { url, headers: { Authorization: 'Bearer s3cret-token' }, ...settings } };
  const destination = await registry.openDestination(resolveConnection(def, 'destination', '/tmp', {}));
  closers.push(() => destination.close());
  return destination;
}

async function write(destination: Destination, object: string, rows: WriteOperation[], settings: Record<string, unknown> = {}): Promise<RowOutcome[]> {
  const target: WriteTarget = { object, keyColumns: ['id'], columns: ['id', 'name'], settings, sync: 'people' };
  return (await destination.prepare(target)).write(rows);
}

async function failure(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  expect((error as Error).message).not.toContain('s3cret');
  return error as LockstepError;
}

const upsert = (id: number, name = `P ${id}`): WriteOperation => ({ kind: 'upsert', key: [id], values: [id, name] });
const ok: RowOutcome = { ok: true };

/** Listens on 127.0.0.1; closed (its sockets destroyed) after the test. */
async function listen(server: Server): Promise<string> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  return `${'cert' in server ? 'https' : 'http'}://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

interface Seen {
  method: string;
  path: string;
  body: string;
}

/** A node:http server that reads each request whole, then calls `handler`. */
async function receiver(handler: (req: Seen, res: ServerResponse, raw: IncomingMessage) => void) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method ?? '', path: req.url ?? '', body: Buffer.concat(chunks).toString() };
      seen.push(s);
      handler(s, res, req);
    });
  });
  return { url: await listen(server), seen };
}

function answer(res: ServerResponse, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

describe('http destination: values in paths', () => {
  it('sends a #, a backslash, a tab or a line break in a value as the character it is, not to another resource', async () => {
    const api = await receiver((_req, res) => answer(res, 200, '{}'));
    const destination = await openHttp(`${api.url}/v1/`);
    const outcomes = await write(destination, 'people/{{ row.name }}?tag={{ row.name }}', [upsert(1, 'Team #1'), upsert(2, '..\\..\\admin'), upsert(3, 'a\tb\nc'), upsert(4, '.\t.'), upsert(5, 'Zoë 🚀/x?')], {
      method: 'PUT',
    });
    expect(outcomes).toEqual([ok, ok, ok, ok, ok]);
    expect(api.seen.map((r) => r.path).sort()).toEqual([
      '/v1/people/..%5C..%5Cadmin?tag=..%5C..%5Cadmin',
      '/v1/people/Team%20%231?tag=Team%20%231',
      '/v1/people/.%09.?tag=.%09.',
      '/v1/people/a%09b%0Ac?tag=a%09b%0Ac',
      // Without url_encode a / and a ? keep their meaning, as the README says.
      '/v1/people/Zo%C3%AB%20%F0%9F%9A%80/x??tag=Zo%C3%AB%20%F0%9F%9A%80/x?',
    ].sort());
  });
});

describe('http destination: answers as servers send them', () => {
  it('reads JSON after a UTF-8 byte order mark, whatever its JSON content type says', async () => {
    const api = await receiver((req, res) => {
      const type = req.path === '/vnd' ? 'application/vnd.api+json' : 'application/json; charset=utf-8';
      answer(res, 200, '\uFEFF{"results": [{"ok": true}, {"ok": false, "error": "bad name"}]}', { 'content-type': type });
    });
    const destination = await openHttp(api.url);
    const expected = [ok, { ok: false, reason: 'bad name' }];
    expect(await write(destination, '/people', [upsert(1), upsert(2)], { results: '/results' })).toEqual(expected);
    expect(await write(destination, '/vnd', [upsert(1), upsert(2)], { results: '/results' })).toEqual(expected);
    expect(await write(destination, '/people', [upsert(1)])).toEqual([ok]);
  });

  it('gives a refusal on one line: an error page\'s lines joined, a binary body by its size and type', async () => {
    const page = '<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
    const api = await receiver((req, res) => {
      if (req.path === '/page') return answer(res, 404, page, { 'content-type': 'text/html' });
      if (req.path === '/pretty') return answer(res, 422, JSON.stringify({ error: 'invalid', fields: ['email'] }, null, 2));
      answer(res, 400, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0x41, 0x0a, 0x42]), { 'content-type': 'application/octet-stream' });
    });
    const destination = await openHttp(api.url);
    expect(await write(destination, '/page', [upsert(1)])).toEqual([
      { ok: false, reason: 'HTTP 404: <html> <head><title>404 Not Found</title></head> <body> <center><h1>404 Not Found</h1></center> <hr><center>nginx</center> </body> </html>' },
    ]);
    expect(await write(destination, '/pretty', [upsert(1)])).toEqual([{ ok: false, reason: 'HTTP 422: { "error": "invalid", "fields": [ "email" ] }' }]);
    expect(await write(destination, '/binary', [upsert(1)])).toEqual([{ ok: false, reason: 'HTTP 400: (10 bytes of application/octet-stream, not text)' }]);
  });

  it('reads an answer compressed with gzip, deflate or br that nobody asked for, 2xx or 4xx', async () => {
    const api = await receiver((req, res) => {
      const [, coding = '', status = '200'] = req.path.split('/');
      const body = status === '200' ? '{"results": [{"ok": true}]}' : '{"error": "name is taken"}';
      const encoders: Record<string, (text: string) => Buffer> = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync };
      const encoded = encoders[coding]?.(body) ?? Buffer.from('not gzip at all');
      answer(res, Number(status), encoded, { 'content-encoding': coding === 'bad' ? 'gzip' : coding, 'content-type': status === '200' ? 'application/json' : 'application/problem+json' });
    });
    const destination = await openHttp(api.url);
    for (const coding of ['gzip', 'deflate', 'br']) {
      expect(await write(destination, `/${coding}/200`, [upsert(1)], { results: '/results' })).toEqual([ok]);
      expect(await write(destination, `/${coding}/422`, [upsert(1)])).toEqual([{ ok: false, reason: 'HTTP 422: {"error": "name is taken"}' }]);
    }
    const unknown = await failure(write(destination, '/zstd/200', [upsert(1)], { results: '/results' }));
    expect(unknown.message).toBe(
      'http destination "api": POST /zstd/200 answered 200 with content-encoding zstd, which Lockstep cannot decode (it reads gzip, deflate and br) — make the API answer without it',
    );
    const corrupt = await failure(write(destination, '/bad/200', [upsert(1)], { results: '/results' }));
    expect(corrupt.retryable).toBe(false);
    expect(corrupt.message).toBe('http destination "api": POST /bad/200 answered 200 with a body that is not gzip as its content-encoding says (incorrect header check)');
  });
});

describe('http destination: connections as servers handle them', () => {
  it('reads an HTTP/1.0 answer sent byte by byte and ended by closing the connection', async () => {
    const server = createNetServer((socket) => {
      let received = '';
      socket.on('data', (chunk) => {
        received += chunk.toString();
        const end = received.indexOf('\r\n\r\n');
        if (end < 0 || received.length < end + 4 + Number(/content-length: (\d+)/i.exec(received)?.[1] ?? 0)) return;
        const bytes = 'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"results":[{"ok":true}]}';
        let i = 0;
        const next = () => (i < bytes.length ? socket.write(bytes[i++] as string, () => setImmediate(next)) : socket.end());
        next();
      });
    });
    const destination = await openHttp(await listen(server));
    const rows = Array.from({ length: 6 }, (_, i) => upsert(i));
    expect(await write(destination, '/p/{{ row.id }}', rows, { results: '/results' })).toEqual(rows.map(() => ok));
  });

  it('fails the run saying to check the url when the server at its port does not answer HTTP', async () => {
    const server = createNetServer((socket) => socket.once('data', () => socket.end('-ERR unknown command \'POST\'\r\n')));
    const url = await listen(server);
    const error = await failure(write(await openHttp(url), '/people', [upsert(1)]));
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      `http destination "api": POST /people: ${new URL(url).host} answered with something that is not HTTP (Response does not match the HTTP/1.1 protocol (Expected HTTP/, RTSP/ or ICE/)) — check the connection's url: its port may be another service's, or one that wants https://`,
    );
  });

  it('delivers every row when the server closes each connection after its answer without saying so', async () => {
    const api = await receiver((_req, res, raw) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}', () => raw.socket.destroy());
    });
    const destination = await openHttp(api.url, { concurrency: 2 });
    const rows = Array.from({ length: 20 }, (_, i) => upsert(i));
    expect(await write(destination, '/p/{{ row.id }}', rows)).toEqual(rows.map(() => ok));
  });

  it('rejects the rows with the 413 a server answers before reading a large body', async () => {
    const server = createServer((_req, res) => answer(res, 413, 'too large', { 'content-type': 'text/plain', connection: 'close' }));
    const destination = await openHttp(await listen(server));
    const rows = Array.from({ length: 20_000 }, (_, i) => upsert(i, 'x'.repeat(200)));
    const outcomes = await write(destination, '/people', rows);
    expect(outcomes[0]).toEqual({ ok: false, reason: "HTTP 413: too large — the API refuses a request this large: lower the sync's batchSize, or map fewer fields" });
  });
});

describe('http destination: through an HTTP proxy', () => {
  /** A CONNECT proxy, as corporate networks run, asking for `user:pass` when `auth` is set. */
  async function startProxy(auth: string | null) {
    const tunnels: Array<{ target: string; auth: string | undefined }> = [];
    const server = createServer((_req, res) => answer(res, 405, 'CONNECT only'));
    server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
      tunnels.push({ target: req.url ?? '', auth: req.headers['proxy-authorization'] });
      if (auth !== null && req.headers['proxy-authorization'] !== `Basic ${Buffer.from(auth).toString('base64')}`) {
        client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client).pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    return { url: await listen(server), tunnels };
  }

  const saved = { ...process.env };
  afterEach(() => {
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('goes through HTTP_PROXY with its credentials, and straight to a host NO_PROXY lists', async () => {
    const api = await receiver((_req, res) => answer(res, 200, '{}'));
    const proxy = await startProxy('corp:pr0xy-pass');
    process.env.HTTP_PROXY = proxy.url.replace('http://', 'http://corp:pr0xy-pass@');
    expect(await write(await openHttp(`${api.url}/v1`), '/people', [upsert(1)])).toEqual([ok]);
    expect(proxy.tunnels).toEqual([{ target: new URL(api.url).host, auth: `Basic ${Buffer.from('corp:pr0xy-pass').toString('base64')}` }]);
    expect(api.seen.map((r) => r.path)).toEqual(['/v1/people']);

    process.env.NO_PROXY = 'example.com, 127.0.0.1';
    expect(await write(await openHttp(api.url), '/people', [upsert(2)])).toEqual([ok]);
    expect(proxy.tunnels).toHaveLength(1);
    expect(api.seen).toHaveLength(2);
  });

  it('fails the run saying the proxy refused the tunnel, without its password', async () => {
    const api = await receiver((_req, res) => answer(res, 200, '{}'));
    const proxy = await startProxy('corp:right-pass');
    process.env.HTTPS_PROXY = 'http://unused.invalid:1';
    process.env.http_proxy = proxy.url.replace('http://', 'http://corp:wr0ng-pass@');
    const error = await failure(write(await openHttp(api.url), '/people', [upsert(1)]));
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      `http destination "api": POST /people: the proxy ${new URL(proxy.url).host} answered 407 to the tunnel to ${new URL(api.url).host} (proxy authentication required) — check HTTPS_PROXY / HTTP_PROXY (and the user and password in it), or list the host in NO_PROXY`,
    );
    expect(api.seen).toHaveLength(0);

    process.env.http_proxy = 'http://127.0.0.1:1';
    const unreachable = await failure(openHttp(api.url));
    expect(unreachable.message).toBe('http destination "api": cannot reach 127.0.0.1:1: connection refused — check the proxy (HTTPS_PROXY / HTTP_PROXY)');
  });
});

describe('http destination: TLS', () => {
  it('says how to trust a private CA when the API\'s certificate is self-signed', async () => {
    const dir = tempDir();
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => answer(res, 200, '{}'));
    const url = await listen(server);
    const error = await failure(write(await openHttp(url), '/people', [upsert(1)]));
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      'http destination "api": POST /people: TLS failed (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate) — check the url\'s host and its certificate; if a private CA signed it, start Lockstep with NODE_EXTRA_CA_CERTS=/path/to/that-ca.pem',
    );
  });

  it('says to use https:// when an http:// url names a port that speaks TLS', async () => {
    const dir = tempDir();
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => answer(res, 200, '{}'));
    const url = (await listen(server)).replace('https://', 'http://');
    const error = await failure(write(await openHttp(`${url}/v1`), '/people', [upsert(1)]));
    expect(error.retryable).toBe(false);
    const host = new URL(url).host;
    expect(error.message).toBe(
      `http destination "api": POST /v1/people: ${host} speaks TLS, but the connection's url is http:// — use https://${host}/v1`,
    );
  });

  it("says to use https:// when the server answers nginx's 400 for a plain request to its HTTPS port", async () => {
    // What nginx answers on a port it serves TLS on when a request comes in plain text.
    const page =
      '<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n' +
      '<center>The plain HTTP request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
    const server = createServer((_req, res) => answer(res, 400, page, { 'content-type': 'text/html' }));
    const url = await listen(server);
    const error = await failure(write(await openHttp(`${url}/v1`), '/people', [upsert(1)]));
    expect(error.retryable).toBe(false);
    const host = new URL(url).host;
    expect(error.message).toBe(
      `http destination "api": POST /v1/people: ${host} speaks TLS (it answered "The plain HTTP request was sent to HTTPS port"), but the connection's url is http:// — use https://${host}/v1`,
    );
  });
});


/**
 * The HTTP destination against real receivers on 127.0.0.1 (node:http): request shapes from Liquid
 * templates, per-row outcomes (2xx, 4xx, per-record `results`), transient answers (429 with
 * Retry-After, 408, 5xx, resets, timeouts), garbage, deletes, the shared rate limit, and a run
 * through the engine.
 *
 * The SQL destination contract (test/connectors/destination-contract.ts) does not apply: it checks
 * tables and columns at `prepare`, unique constraints and a connection that fails when opened, none
 * of which an HTTP API has (an HTTP destination opens without a request). The behaviours it checks
 * that do apply are tested here directly: answers per row in order, only the refused rows of a
 * batch rejected (5,000 rows), values passed intact whatever they hold, composite keys, and no
 * secret in any message.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { httpConnector } from '../../src/connectors/http/index.js';
import { CompiledTemplate, createTemplateEngine } from '../../src/connectors/http/http-templates.js';
import { withBackoff } from '../../src/core/backoff.js';
import { systemClock } from '../../src/core/clock.js';
import { resolveConnection, type ConnectorRegistry } from '../../src/core/connector-registry.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { Destination, DestinationWriter, RowOutcome, Value, WriteOperation, WriteTarget } from '../../src/core/ports.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, startHarness, tempDir } from '../helpers/harness.js';

// ---------------------------------------------------------------------------------------------
// A receiver: a real HTTP server on 127.0.0.1 that records what it is sent.

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** performance.now() when the request arrived. */
  at: number;
}

type Handler = (request: Received, response: ServerResponse, socket: Socket) => void | Promise<void>;

interface Receiver {
  url: string;
  requests: Received[];
  /** Most requests under way at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

const receivers: Receiver[] = [];
const destinations: Destination[] = [];
afterEach(async () => {
  await Promise.all(destinations.splice(0).map((d) => d.close()));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function startReceiver(handler: Handler = (_req, res) => json(res, 200, { ok: true })): Promise<Receiver> {
  const sockets = new Set<Socket>();
  let inFlight = 0;
  const receiver: Receiver = {
    url: '',
    requests: [],
    maxInFlight: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    inFlight++;
    receiver.maxInFlight = Math.max(receiver.maxInFlight, inFlight);
    res.on('close', () => inFlight--);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const received: Received = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() };
      receiver.requests.push(received);
      void Promise.resolve(handler(received, res, req.socket)).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  receiver.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  receivers.push(receiver);
  return receiver;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function text(res: ServerResponse, status: number, body: string, contentType = 'text/plain', headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, ...headers });
  res.end(body);
}

// ---------------------------------------------------------------------------------------------
// Destinations opened as a run opens them: through the registry (settings parsed, limiter shared).

const TOKEN = 'Bearer s3cret-token-for-tests';

function registryWithHttp(): ConnectorRegistry {
  const registry = createConnectorRegistry();
  // app.ts may register the kind already.
  return registry.kind('http') ? registry : registry.register(httpConnector);
}

async function openHttp(
  url: string,
  settings: Record<string, unknown> = {},
  options: { registry?: ConnectorRegistry; slug?: string; env?: Record<string, string> } = {},
): Promise<Destination> {
  const registry = options.registry ?? registryWithHttp();
  const def = { slug: options.slug ?? 'api', type: 'http', settings: { url, headers: { Authorization: TOKEN }, ...settings } };
  const destination = await registry.openDestination(resolveConnection(def, 'destination', '/tmp', options.env ?? {}));
  destinations.push(destination);
  return destination;
}

const COLUMNS = ['id', 'email', 'name'];

function target(object: string, settings: Record<string, unknown> = {}, over: Partial<WriteTarget> & { batchSize?: number } = {}): WriteTarget {
  return { object, keyColumns: ['id'], columns: COLUMNS, settings, sync: 'contacts-to-api', ...over };
}

const upsert = (id: number, email: Value = `u${id}@example.com`, name: Value = `User ${id}`): WriteOperation => ({ kind: 'upsert', key: [id], values: [id, email, name] });
const remove = (id: number): WriteOperation => ({ kind: 'delete', key: [id], values: [] });
const ok: RowOutcome = { ok: true };
const WEEKDAYS: Record<string, string> = { Mon: 'Monday', Tue: 'Tuesday', Wed: 'Wednesday', Thu: 'Thursday', Fri: 'Friday', Sat: 'Saturday', Sun: 'Sunday' };

async function failure(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  const lockstep = error as LockstepError;
  // No message ever carries a header value.
  expect(lockstep.message).not.toContain('s3cret');
  return lockstep;
}

function reason(outcome: RowOutcome | undefined): string {
  expect(outcome?.ok).toBe(false);
  return outcome && !outcome.ok ? outcome.reason : '';
}

// ---------------------------------------------------------------------------------------------

describe('http destination settings', () => {
  it('fills defaults, keeps header values secret and accepts ${ENV} templates', () => {
    const registry = registryWithHttp();
    const kind = registry.kind('http')!;
    expect(kind.destination?.capabilities).toEqual({ deletes: true, upsert: true, maxBatchSize: null, recordIds: false });
    expect(kind.settings.parse({ url: 'https://api.example.com/v1' })).toEqual({
      url: 'https://api.example.com/v1',
      headers: {},
      concurrency: 4,
      timeoutMs: 30_000,
    });
    expect(registry.checkSettings(kind, { url: '${API_URL}', headers: { Authorization: 'Bearer ${TOKEN}' }, rateLimit: { requestsPerSecond: 5 } })).toEqual([]);
    const redacted = registry.redact({ slug: 'api', type: 'http', settings: { url: 'https://api.example.com', headers: { Authorization: TOKEN, 'X-Key': '${KEY}' } } });
    expect(redacted.settings.headers).toEqual({ Authorization: '***', 'X-Key': '${KEY}' });
  });

  it('refuses a URL that is not http(s), bad headers and unknown settings, without echoing values', () => {
    const registry = registryWithHttp();
    const kind = registry.kind('http')!;
    const messages = (settings: Record<string, unknown>) => registry.checkSettings(kind, settings).map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages({ url: 'ftp://files.example.com' })).toEqual([expect.stringMatching(/^url: url must start with http:\/\/ or https:\/\//)]);
    expect(messages({ url: 'https://x.example.com', headers: { 'Bad Header': 'v' } })[0]).toMatch(/"Bad Header" is not a valid header name/);
    expect(messages({ url: 'https://x.example.com', headers: { 'Content-Length': '3' } })[0]).toMatch(/set by Lockstep's HTTP client/);
    const crlf = messages({ url: 'https://x.example.com', headers: { Authorization: 'Bearer abc\r\nX-Evil: 1' } });
    expect(crlf[0]).toMatch(/line break/);
    expect(crlf.join()).not.toContain('abc');
    expect(messages({ url: 'https://x.example.com', rateLimit: { requestsPerSecond: 0 } })[0]).toMatch(/more than 0/);
    expect(messages({ url: 'https://x.example.com', timeout: 5 })[0]).toMatch(/timeout/);
  });

  it('checks sync settings strictly: methods, Liquid syntax, JSON pointers', () => {
    const registry = registryWithHttp();
    const kind = registry.kind('http')!;
    const syncSettings = kind.destination!.syncSettings!;
    expect(syncSettings.parse({})).toEqual({ method: 'POST' });
    expect(syncSettings.parse({ delete: { path: '/c/{{ row.id }}' } })).toEqual({ method: 'POST', delete: { method: 'DELETE', path: '/c/{{ row.id }}' } });
    const messages = (settings: Record<string, unknown>) => registry.checkSyncSettings(kind, settings).map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages({ method: 'GET' })[0]).toMatch(/^method: .*POST, PUT, PATCH, DELETE/);
    expect(messages({ body: '{{ row.id ' })[0]).toMatch(/^body: not a valid Liquid template: output "\{\{ row.id " not closed/);
    expect(messages({ body: '{% include "/etc/passwd" %}' })[0]).toMatch(/tag "include" not found/);
    expect(messages({ delete: { path: '/c/{% if row.id %}' } })[0]).toMatch(/^delete.path: not a valid Liquid template: tag \{% if row.id %\} not closed/);
    expect(messages({ body: '{"id": {{ record.id }}}' })[0]).toMatch(/^body: reads "record", which templates do not have.*use row \(one row per request\) or rows/);
    expect(messages({ delete: { path: '/c/{{ customer.id }}' } })[0]).toMatch(/^delete.path: reads "customer"/);
    const readme = '{"inputs": [{% for r in rows %}{"id": {{ r.id | json }}}{% unless forloop.last %},{% endunless %}{% endfor %}]}';
    expect(messages({ body: readme, delete: { path: '/c/{% assign id = row.id %}{{ id }}' } })).toEqual([]);
    // What a run would refuse at its start, validate refuses where it is written.
    const both = messages({ body: '{"id": {{ row.id }}, "all": {{ rows | json }}}' });
    expect(both).toHaveLength(1);
    expect(both[0]).toMatch(/^body: reads both row and rows\W+a request carries one row \(row\) or a batch \(rows\); use one of them$/);
    const mixed = messages({ delete: { path: '/c/{{ row.id }}', body: '{"ids": {{ rows | map: "id" | json }}}' } });
    expect(mixed).toHaveLength(1);
    expect(mixed[0]).toMatch(/^delete\.body: reads rows, while delete\.path reads row\W+a request carries one row \(row\) or a batch \(rows\); use the same in both$/);
    expect(messages({ results: 'results' })[0]).toMatch(/JSON pointer/);
    expect(messages({ results: '/data/~2' })[0]).toMatch(/JSON pointer/);
    expect(messages({ results: '/data/items' })).toEqual([]);
    expect(messages({ bodyTemplate: 'x' })[0]).toMatch(/bodyTemplate/);
  });
});

describe('http destination: preparing a writer', () => {
  it('refuses a path template that does not parse, naming the sync setting and Liquid message', async () => {
    const destination = await openHttp((await startReceiver()).url);
    const error = await failure(destination.prepare(target('/contacts/{{ row.id ')));
    expect(error.code).toBe(ErrorCode.Validation);
    expect(error.message).toBe(
      'sync "contacts-to-api": object is not a valid Liquid template: output "{{ row.id " not closed, line:1, col:11 — fix the sync\'s object (the path under the destination\'s url)',
    );
  });

  it('refuses templates that read unknown variables, or both row and rows', async () => {
    const destination = await openHttp((await startReceiver()).url);
    const unknown = await failure(destination.prepare(target('/contacts', { body: '{"id": {{ record.id }}}' })));
    expect(unknown.message).toMatch(/setting body:? reads "record", which templates do not have — use row/);
    const both = await failure(destination.prepare(target('/contacts/{{ row.id }}', { body: '{{ rows | json }}' })));
    expect(both.message).toMatch(/object reads row, setting body reads rows — a request carries one row \(row\) or a batch \(rows\)/);
    const deleteFields = await failure(destination.prepare(target('/contacts', { delete: { path: '/contacts/{{ row.email }}' } })));
    expect(deleteFields.code).toBe(ErrorCode.Schema);
    expect(deleteFields.message).toMatch(/setting delete.path reads field "email", but a delete carries only the key fields only "id"/);
  });

  it('refuses at the first write a template reading a field the sync does not write, suggesting the nearest', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts/{{ row.id }}', { body: '{"email": {{ row.emial | json }}}' }));
    const error = await failure(writer.write([upsert(1)]));
    expect(error.code).toBe(ErrorCode.Schema);
    expect(error.message).toBe(
      'sync "contacts-to-api": setting body reads field "emial", but the sync writes only "id", "email", "name" (did you mean "email"?) — fix the template or the model\'s query and mappings',
    );
    expect(receiver.requests).toHaveLength(0);
  });
});

describe('http destination: requests and bodies', () => {
  it('sends a batch in one request: {"records": [...]} by default, with the headers, under the base path', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(`${receiver.url}/api/v1/`);
    const writer = await destination.prepare(target('contacts'));
    expect(writer.concurrentWrites).toBe(4);
    expect(await writer.write([])).toEqual([]);
    expect(await writer.write([upsert(1), upsert(2)])).toEqual([ok, ok]);
    expect(receiver.requests).toHaveLength(1);
    const [request] = receiver.requests;
    expect(request).toMatchObject({ method: 'POST', path: '/api/v1/contacts' });
    expect(request?.headers).toMatchObject({ authorization: TOKEN, 'content-type': 'application/json', accept: 'application/json' });
    expect(JSON.parse(request!.body)).toEqual({
      records: [
        { id: 1, email: 'u1@example.com', name: 'User 1' },
        { id: 2, email: 'u2@example.com', name: 'User 2' },
      ],
    });
  });

  it('writes any field name as a plain field of the default body: quotes, `__proto__`, digits, a line separator', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const odd = ['id', 'say "hi"', 'constructor', '7', 'a\u2028b', 'back\\slash'];
    const values: Value[] = [1, 'x', 'y', 7, null, true];
    const writer = await destination.prepare(target('things', {}, { columns: odd }));
    expect(await writer.write([{ kind: 'upsert', key: [1], values }])).toEqual([ok]);
    const withProto = await destination.prepare(target('things', {}, { columns: ['id', '__proto__'] }));
    expect(await withProto.write([{ kind: 'upsert', key: [2], values: [2, 'p'] }])).toEqual([ok]);
    const [plain, proto] = receiver.requests.map((r) => r.body);
    expect(plain).toBe(`{"records":[{"7":7,"id":1,"say \\"hi\\"":"x","constructor":"y","a\u2028b":null,"back\\\\slash":true}]}`);
    expect(proto).toBe('{"records":[{"id":2,"__proto__":"p"}]}');
  });

  it('sends one request per row with the row as JSON when the sync\'s batchSize is 1', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts', { method: 'PUT' }, { batchSize: 1 } as Partial<WriteTarget>));
    expect(await writer.write([upsert(7)])).toEqual([ok]);
    expect(receiver.requests.map((r) => [r.method, r.path, JSON.parse(r.body)])).toEqual([['PUT', '/contacts', { id: 7, email: 'u7@example.com', name: 'User 7' }]]);
  });

  it('renders one-row requests from Liquid (path and body), one per row, at most `concurrency` at once', async () => {
    const receiver = await startReceiver(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 20));
      json(res, 200, { ok: true });
    });
    const destination = await openHttp(receiver.url, { concurrency: 3 });
    const writer = await destination.prepare(
      target('/contacts/{{ row.id }}', { method: 'PATCH', body: '{"properties": {"email": {{ row.email | json }}, "name": {{ row.name | json }}}}' }),
    );
    const outcomes = await writer.write(Array.from({ length: 9 }, (_, i) => upsert(i + 1)));
    expect(outcomes).toEqual(Array.from({ length: 9 }, () => ok));
    expect(receiver.requests.map((r) => r.path).sort()).toEqual(Array.from({ length: 9 }, (_, i) => `/contacts/${i + 1}`).sort());
    expect(JSON.parse(receiver.requests.find((r) => r.path === '/contacts/4')!.body)).toEqual({ properties: { email: 'u4@example.com', name: 'User 4' } });
    expect(receiver.requests.every((r) => r.method === 'PATCH')).toBe(true);
    expect(receiver.maxInFlight).toBeLessThanOrEqual(3);
    expect(receiver.maxInFlight).toBeGreaterThan(1);
  });

  it('renders a batch body from Liquid with rows, and keeps every value intact', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(
      target('/batch', {
        body: '{"inputs": [{% for r in rows %}{"id": {{ r.id | json }}, "props": {"email": {{ r.email | json }}, "name": {{ r.name | json }}}}{% unless forloop.last %},{% endunless %}{% endfor %}], "count": {{ rows.size }}}',
      }),
    );
    const nasty = `'); drop table contacts; -- "quoted" \\ back\\slash {{ not liquid }} ü 🚀 \n tab\t`;
    expect(await writer.write([upsert(1, nasty, null), upsert(2, 'b@example.com', 'Bo')])).toEqual([ok, ok]);
    expect(JSON.parse(receiver.requests[0]!.body)).toEqual({
      inputs: [
        { id: 1, props: { email: nasty, name: null } },
        { id: 2, props: { email: 'b@example.com', name: 'Bo' } },
      ],
      count: 2,
    });
  });

  it('writes times with the date filter in UTC, as Lockstep reads them, whatever the time zone it runs in', async () => {
    const zone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const receiver = await startReceiver();
      const destination = await openHttp(receiver.url);
      const body = '{"day": {{ row.day | date: "%Y-%m-%d" | json }}, "at": {{ row.at | date: "%Y-%m-%d %H:%M %Z" | json }}, "wall": {{ row.wall | date_to_xmlschema | json }}, "epoch": {{ row.wall | date: "%s" }}}';
      const writer = await destination.prepare(target('/events', { body }, { columns: ['id', 'day', 'at', 'wall'], batchSize: 1 }));
      // A DATE, a time with its offset, and a time without one (as a SQLite file holds it), which Lockstep takes as UTC.
      expect(await writer.write([{ kind: 'upsert', key: [1], values: [1, '1990-01-02', '2024-03-31T01:30:00+02:00', '2024-03-30 23:30:00'] }])).toEqual([ok]);
      expect(JSON.parse(receiver.requests[0]!.body)).toEqual({ day: '1990-01-02', at: '2024-03-30 23:30 UTC', wall: '2024-03-30T23:30:00+00:00', epoch: 1711841400 });
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('rejects a row whose body renders invalid JSON, or whose path leaves the API, and sends the rest', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts/{{ row.name }}', { method: 'PUT', body: '{"email": "{{ row.email }}"}' }));
    const outcomes = await writer.write([upsert(1), upsert(2, 'say "hi"@example.com'), upsert(3, 'c@example.com', '../admin')]);
    expect(outcomes[0]).toEqual(ok);
    expect(reason(outcomes[1])).toMatch(/^setting body rendered invalid JSON \(.*\) — write values with the json filter, e\.g\. \{\{ row\.name \| json \}\}$/);
    expect(reason(outcomes[2])).toMatch(/^object rendered a path with a \. or \.\. segment .* url_encode/);
    expect(receiver.requests.map((r) => r.path)).toEqual(['/contacts/User%201']);

    // A path taken whole from a row, holding a full URL, would go under the base URL as a path.
    const whole = await destination.prepare(target('{{ row.name }}'));
    const urls = await whole.write([upsert(4, 'd@example.com', `${receiver.url}/contacts/4`), upsert(5, 'e@example.com', '/contacts/5')]);
    expect(reason(urls[0])).toBe(`object rendered ${JSON.stringify(`${receiver.url}/contacts/4`)}, a URL, not a path under the destination's url — render the path alone, e.g. /contacts/4`);
    expect(urls[1]).toEqual(ok);
    expect(receiver.requests.map((r) => r.path)).toEqual(['/contacts/User%201', '/contacts/5']);
  });

  it('encodes a value with url_encode for a path and a query alike: a space as %20, a slash and a plus escaped', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/people/{{ row.name | url_encode }}?email={{ row.email | url_encode }}', { method: 'PUT' }));
    expect(await writer.write([upsert(1, 'a+b@example.com', 'Red tag/+x')])).toEqual([ok]);
    expect(receiver.requests.map((r) => r.path)).toEqual(['/people/Red%20tag%2F%2Bx?email=a%2Bb%40example.com']);
  });

  it('rejects a row whose values leave a segment of its path empty, rather than sending it to another resource', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const nested = await destination.prepare(target('/teams/{{ row.name }}/members/{{ row.id }}?notify={{ row.email }}', { method: 'PUT' }));
    const outcomes = await nested.write([upsert(1), upsert(2, 'b@example.com', null), upsert(3, '', 'Red')]);
    expect(outcomes[0]).toEqual(ok);
    expect(reason(outcomes[1])).toBe('object rendered a path with an empty segment ("/teams//members/2") — a value it reads is empty or null');
    expect(outcomes[2]).toEqual(ok);
    const last = await destination.prepare(target('/people/{{ row.name | url_encode }}', { method: 'PUT' }));
    expect(reason((await last.write([upsert(4, 'd@example.com', '')]))[0])).toMatch(/^object rendered a path with an empty segment \("\/people\/"\)/);
    const slash = await destination.prepare(target('/people/{{ row.id }}/', { method: 'PUT' }));
    expect(await slash.write([upsert(5)])).toEqual([ok]);
    expect(receiver.requests.map((r) => r.path).sort()).toEqual(['/people/5/', '/teams/Red/members/3?notify=', '/teams/User%201/members/1?notify=u1@example.com']);
  });

  it('sends the url\'s user and password as Basic authentication, unless a header sets Authorization, and never shows them', async () => {
    const receiver = await startReceiver((req, res) => json(res, 403, { error: 'no', youSent: req.headers.authorization }));
    const withCredentials = receiver.url.replace('http://', 'http://api%20user:p%40ss-w0rd-42@');
    const basic = `Basic ${Buffer.from('api user:p@ss-w0rd-42').toString('base64')}`;
    const destination = await openHttp(withCredentials, { headers: {} });
    const outcomes = await (await destination.prepare(target('/contacts'))).write([upsert(1)]);
    expect(receiver.requests.map((r) => r.headers.authorization)).toEqual([basic]);
    expect(reason(outcomes[0])).toBe('HTTP 403: {"error":"no","youSent":"***"}');
    const overridden = await openHttp(withCredentials);
    await (await overridden.prepare(target('/contacts'))).write([upsert(2)]);
    expect(receiver.requests[1]?.headers.authorization).toBe(TOKEN);
  });

  it('keeps the base URL\'s query on every request and never shows it in a message', async () => {
    const receiver = await startReceiver((req, res) => (req.path.includes('fail') ? text(res, 500, 'boom') : json(res, 200, {})));
    const destination = await openHttp(`${receiver.url}/v2?api_key=k3y-in-query`);
    const writer = await destination.prepare(target('/contacts?mode={{ rows.size }}'));
    await writer.write([upsert(1)]);
    expect(receiver.requests[0]?.path).toBe('/v2/contacts?api_key=k3y-in-query&mode=1');
    const failing = await destination.prepare(target('/fail'));
    const error = await failure(failing.write([upsert(1)]));
    expect(error.message).toBe('http destination "api": POST /v2/fail answered 500: boom');
  });

  it('writes composite keys and deletes with a delete request: one per row, or one for the batch', async () => {
    const receiver = await startReceiver((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    const destination = await openHttp(receiver.url);
    const composite = { keyColumns: ['team', 'user_id'], columns: ['team', 'user_id', 'role'] };
    const perRow = await destination.prepare(target('/members', { delete: { path: '/teams/{{ row.team }}/members/{{ row.user_id }}' } }, composite));
    const outcomes = await perRow.write([
      { kind: 'upsert', key: ['red', 1], values: ['red', 1, 'owner'] },
      { kind: 'delete', key: ['blue', 2], values: [] },
      { kind: 'delete', key: ['red', 3], values: [] },
    ]);
    expect(outcomes).toEqual([ok, ok, ok]);
    const seen = receiver.requests.map((r) => `${r.method} ${r.path} ${r.body}`).sort();
    expect(seen).toEqual([
      'DELETE /teams/blue/members/2 ',
      'DELETE /teams/red/members/3 ',
      'POST /members {"records":[{"team":"red","user_id":1,"role":"owner"}]}',
    ]);

    receiver.requests.length = 0;
    const batch = await destination.prepare(
      target('/contacts', { delete: { method: 'POST', path: '/contacts/archive', body: '{"ids": [{% for r in rows %}{{ r.id }}{% unless forloop.last %},{% endunless %}{% endfor %}]}' } }),
    );
    expect(await batch.write([remove(4), remove(5)])).toEqual([ok, ok]);
    expect(receiver.requests.map((r) => `${r.method} ${r.path} ${r.body}`)).toEqual(['POST /contacts/archive {"ids": [4,5]}']);
  });

  it('counts a 404 or 410 as deleted only for a delete whose path names its row; a batch delete answered 404 rejects its rows', async () => {
    const receiver = await startReceiver((req, res) => {
      if (req.path === '/contacts/4') return json(res, 404, { error: 'no contact 4' });
      if (req.path === '/contacts/5') return json(res, 410, { error: 'contact 5 is gone' });
      return text(res, 404, `Cannot ${req.method} ${req.path}`);
    });
    const destination = await openHttp(receiver.url);
    const perRow = await destination.prepare(target('/contacts', { delete: { path: '/contacts/{{ row.id }}' } }));
    expect(await perRow.write([remove(4), remove(5)])).toEqual([ok, ok]);

    const refused = { ok: false, reason: 'HTTP 404: Cannot POST /contacts/archiv' };
    const batch = await destination.prepare(target('/contacts', { delete: { method: 'POST', path: '/contacts/archiv' } }));
    expect(await batch.write([remove(6), remove(7)])).toEqual([refused, refused]);
    const oneByOne = await destination.prepare(target('/contacts', { delete: { method: 'POST', path: '/contacts/archiv' } }, { batchSize: 1 }));
    expect(await oneByOne.write([remove(8)])).toEqual([refused]);
  });

  it('fails a sync that deletes without a delete request, at its first delete, before sending anything', async () => {
    const receiver = await startReceiver();
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts'));
    const error = await failure(writer.write([upsert(1), remove(2)]));
    expect(error.code).toBe(ErrorCode.Schema);
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      'sync "contacts-to-api" deletes rows (mode mirror or deleteBehavior delete), but has no delete request for http destination "api" — add one to the sync, e.g. delete: { method: DELETE, path: "/contacts/{{ row.id }}" }, or use mode upsert with deleteBehavior ignore',
    );
    expect(receiver.requests).toHaveLength(0);
  });
});

describe('http destination: render time', () => {
  // Liquid reads the time from performance.now() at every node it renders: a clock moving 0.05 ms a
  // read stands for a loaded machine, the same on every run of the test.
  function onSlowClock<T>(render: () => T): T {
    let reads = 0;
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => ++reads * 0.05);
    try {
      return render();
    } finally {
      spy.mockRestore();
    }
  }

  it('gives a batch time by its rows, so a large batch is not refused for its size, while a template that never ends still stops', () => {
    const body = CompiledTemplate.compile(createTemplateEngine, '[{% for r in rows %}{"id": {{ r.id | json }}, "email": {{ r.email | json }}}{% unless forloop.last %},{% endunless %}{% endfor %}]');
    const rows = Array.from({ length: 30_000 }, (_, i) => ({ id: i, email: `u${i}@example.com` }));
    const rendered = onSlowClock(() => body.render({ rows }));
    expect((JSON.parse(rendered) as unknown[]).length).toBe(30_000);

    const endless = CompiledTemplate.compile(createTemplateEngine, '{% for i in (1..100000) %}{% for j in (1..100000) %}x{% endfor %}{% endfor %}{{ row.id }}');
    expect(() => onSlowClock(() => endless.render({ row: { id: 1 } }))).toThrow(/template render limit exceeded/);
  });
});

describe('http destination: answers', () => {
  it('rejects every row of a request answered 4xx with the status and the first 500 characters, scrubbing secrets', async () => {
    const long = `invalid email; ${'x'.repeat(600)}`;
    const receiver = await startReceiver((req, res) => {
      if (req.path === '/contacts/2') return text(res, 422, long);
      if (req.path === '/contacts/3') return json(res, 400, { error: 'bad', youSent: req.headers.authorization });
      return json(res, 200, {});
    });
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts/{{ row.id }}'));
    const outcomes = await writer.write([upsert(1), upsert(2), upsert(3)]);
    expect(outcomes[0]).toEqual(ok);
    expect(reason(outcomes[1])).toBe(`HTTP 422: ${long.slice(0, 500)}`);
    expect(reason(outcomes[2])).toBe('HTTP 400: {"error":"bad","youSent":"***"}');

    const batch = await destination.prepare(target('/contacts/2', {}, { batchSize: 3 } as Partial<WriteTarget>));
    const all = await batch.write([upsert(1), upsert(2), upsert(3)]);
    expect(all.map(reason)).toEqual(Array.from({ length: 3 }, () => `HTTP 422: ${long.slice(0, 500)}`));
  });

  it('shows no part of a secret the API echoes where its answer is cut at 500 characters', async () => {
    // The token starts at character 490 of the answer: a cut at 500 would leave its first characters.
    const echo = (req: Received) => `${'x'.repeat(490)}${req.headers.authorization} and more`;
    const receiver = await startReceiver((req, res) => {
      if (req.path === '/results') return json(res, 200, { results: [{ ok: false, error: echo(req) }] });
      return text(res, 400, echo(req));
    });
    const destination = await openHttp(receiver.url);
    const refused = await (await destination.prepare(target('/contacts'))).write([upsert(1)]);
    const record = await (await destination.prepare(target('/results', { results: '/results' }))).write([upsert(1)]);
    for (const outcome of [refused[0], record[0]]) {
      expect(reason(outcome)).toMatch(/x\*\*\*/);
      expect(reason(outcome)).not.toMatch(/s3c|tok/);
    }
  });

  it('says to lower the batch size when the API refuses a request as too large (413)', async () => {
    const receiver = await startReceiver((req, res) => (req.body.length > 100 ? text(res, 413, 'Request Entity Too Large') : json(res, 200, {})));
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts'));
    const outcomes = await writer.write([upsert(1), upsert(2), upsert(3)]);
    expect(outcomes.map(reason)).toEqual(
      Array.from({ length: 3 }, () => "HTTP 413: Request Entity Too Large — the API refuses a request this large: lower the sync's batchSize, or map fewer fields"),
    );
    // A request of one row is not made smaller by a smaller batch.
    const large = upsert(4, 'd@example.com', 'D'.repeat(200));
    const one = await (await destination.prepare(target('/contacts/{{ row.id }}'))).write([upsert(3), large]);
    expect(one).toEqual([ok, { ok: false, reason: 'HTTP 413: Request Entity Too Large — the API refuses a request this large, of one row: map fewer fields, or write less of them in the body' }]);
  });

  it('hides the url\'s query values and what the settings read from the environment, when an answer or a message would show them', async () => {
    const receiver = await startReceiver((req, res) => {
      if (req.path.includes('/slow/')) return undefined;
      return json(res, 422, { error: `bad request to ${req.path}` });
    });
    const env = { API_KEY: 'key-from-the-env-4711', TENANT: 'tenant-secret-99' };
    const destination = await openHttp(`${receiver.url}/t/\${TENANT}?api_key=\${API_KEY}&plain=visible%20words`, { timeoutMs: 300 }, { env });
    const outcomes = await (await destination.prepare(target('/contacts'))).write([upsert(1)]);
    expect(reason(outcomes[0])).toBe('HTTP 422: {"error":"bad request to /t/***/contacts?api_key=***&plain=***"}');
    const error = await failure((await destination.prepare(target('/slow/{{ row.id }}'))).write([upsert(1)]));
    expect(error.message).toContain('POST /t/***/slow/1');
    expect(error.message).not.toContain(env.TENANT);
  });

  it('fails the run on 401: no row can go with those credentials', async () => {
    const receiver = await startReceiver((req, res) => json(res, 401, { message: `token ${req.headers.authorization} expired` }));
    const destination = await openHttp(receiver.url);
    const error = await failure((await destination.prepare(target('/contacts'))).write([upsert(1)]));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.retryable).toBe(false);
    expect(error.message).toBe(
      'http destination "api": POST /contacts answered 401 (not authenticated): {"message":"token *** expired"} — check the connection\'s headers (e.g. Authorization) and the variables they read',
    );
  });

  it('throws a retryable error on 429 with Retry-After in seconds, and holds every caller of the connection back', async () => {
    let limited = true;
    const receiver = await startReceiver((_req, res) => {
      if (limited) {
        limited = false;
        return json(res, 429, { message: 'slow down' }, { 'retry-after': '1' });
      }
      json(res, 200, {});
    });
    const registry = registryWithHttp();
    const first = await openHttp(receiver.url, {}, { registry });
    const second = await openHttp(receiver.url, {}, { registry });
    const error = await failure((await first.prepare(target('/contacts'))).write([upsert(1)]));
    expect(error.code).toBe(ErrorCode.Transient);
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(1);
    expect(error.message).toBe('http destination "api": POST /contacts answered 429 (Retry-After: 1 s): {"message":"slow down"}');
    // Another run on the same connection waits for the pause too.
    const started = performance.now();
    expect(await (await second.prepare(target('/contacts'))).write([upsert(2)])).toEqual([ok]);
    expect(performance.now() - started).toBeGreaterThan(800);
  });

  it('reads Retry-After as an HTTP date', async () => {
    const receiver = await startReceiver((_req, res) => json(res, 429, {}, { 'retry-after': new Date(Date.now() + 5_000).toUTCString() }));
    const destination = await openHttp(receiver.url);
    const error = await failure((await destination.prepare(target('/contacts'))).write([upsert(1)]));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBeGreaterThan(3);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(5);
  });

  it('reads Retry-After in the obsolete date formats HTTP recipients accept, as GMT whatever the time zone Lockstep runs in', async () => {
    // RFC 9110 §5.6.7: rfc850-date (Sunday, 06-Nov-94 08:49:37 GMT) and asctime-date (Sun Nov  6 08:49:37 1994), both GMT.
    const zone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      const formats = {
        rfc850: (d: Date) => d.toUTCString().replace(/^(\w{3}), (\d{2}) (\w{3}) \d{2}(\d{2})/, (_m, day: string, date: string, month: string, year: string) => `${WEEKDAYS[day]}, ${date}-${month}-${year}`),
        asctime: (d: Date) => d.toUTCString().replace(/^(\w{3}), (\d{2}) (\w{3}) (\d{4}) ([\d:]{8}) GMT$/, (_m, day: string, date: string, month: string, year: string, time: string) => `${day} ${month} ${date.replace(/^0/, ' ')} ${time} ${year}`),
      };
      for (const [name, format] of Object.entries(formats)) {
        const receiver = await startReceiver((_req, res) => json(res, 429, {}, { 'retry-after': format(new Date(Date.now() + 5_000)) }));
        const destination = await openHttp(receiver.url);
        const error = await failure((await destination.prepare(target('/contacts'))).write([upsert(1)]));
        expect(error.retryAfterSeconds, name).toBeGreaterThan(3);
        expect(error.retryAfterSeconds, name).toBeLessThanOrEqual(5);
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('throws retryable errors on 408 and 5xx, and the batch goes through when the API comes back', async () => {
    const statuses = [408, 502, 503];
    const receiver = await startReceiver((_req, res) => {
      const status = statuses.shift();
      if (status !== undefined) return text(res, status, status === 502 ? '<html>bad gateway</html>' : 'busy', status === 502 ? 'text/html' : 'text/plain');
      json(res, 200, {});
    });
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts'));
    const errors: string[] = [];
    const outcomes = await withBackoff(() => writer.write([upsert(1), upsert(2)]), {
      policy: { attempts: 5, baseDelayMs: 5, maxDelayMs: 20 },
      clock: systemClock,
      onRetry: ({ error }) => errors.push(error.message),
    });
    expect(outcomes).toEqual([ok, ok]);
    expect(errors).toEqual([
      'http destination "api": POST /contacts answered 408: busy',
      'http destination "api": POST /contacts answered 502: <html>bad gateway</html>',
      'http destination "api": POST /contacts answered 503: busy',
    ]);
    expect(receiver.requests).toHaveLength(4);
  });

  it('fails the batch as retryable when one row\'s request fails transiently, and sends only that row again', async () => {
    let busy = true;
    const receiver = await startReceiver((req, res) => (req.path === '/contacts/2' && busy ? json(res, 503, { error: 'busy' }, { 'retry-after': '2' }) : json(res, 200, {})));
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts/{{ row.id }}'));
    const batch = [upsert(1), upsert(2), upsert(3)];
    const error = await failure(writer.write(batch));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(2);
    expect(error.message).toBe('http destination "api": POST /contacts/2 answered 503 (Retry-After: 2 s): {"error":"busy"}');
    busy = false;
    receiver.requests.length = 0;
    expect(await writer.write(batch)).toEqual([ok, ok, ok]);
    expect(receiver.requests.map((r) => r.path)).toEqual(['/contacts/2']);
  });

  it('treats a request the API takes and never answers as a retryable timeout', async () => {
    const receiver = await startReceiver(() => undefined);
    const destination = await openHttp(receiver.url, { timeoutMs: 200 });
    const started = performance.now();
    const error = await failure((await destination.prepare(target('/slow'))).write([upsert(1)]));
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(error.retryable).toBe(true);
    expect(error.code).toBe(ErrorCode.Transient);
    expect(error.message).toBe(
      'http destination "api": POST /slow: no answer within 0.2 s (timeoutMs: 200) — the API took the request and did not answer in time; raise timeoutMs if it is slow',
    );
  });

  it('treats a reset, cut off or refused connection as retryable', async () => {
    const receiver = await startReceiver((_req, _res, socket) => void socket.destroy());
    const destination = await openHttp(receiver.url);
    const reset = await failure((await destination.prepare(target('/contacts'))).write([upsert(1)]));
    expect(reset.retryable).toBe(true);
    expect(reset.message).toMatch(/^http destination "api": POST \/contacts: the connection broke before the answer was complete \((UND_ERR_SOCKET|ECONNRESET)/);

    // The answer cut off halfway (fewer bytes than its Content-Length): the same.
    const cut = await startReceiver((_req, res, socket) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"results": [', () => socket.destroy());
    });
    const halfway = await failure((await (await openHttp(cut.url, {}, { slug: 'cut' })).prepare(target('/contacts'))).write([upsert(1)]));
    expect(halfway.retryable).toBe(true);
    expect(halfway.message).toMatch(/^http destination "cut": POST \/contacts: the connection broke before the answer was complete/);

    // Up when the run connects, gone by the time it writes: retried like any transient failure.
    const closed = await startReceiver();
    const url = closed.url;
    const opened = await (await openHttp(url, {}, { slug: 'down' })).prepare(target('/contacts'));
    await closed.close();
    const refused = await failure(opened.write([upsert(1)]));
    expect(refused.retryable).toBe(true);
    expect(refused.message).toBe(`http destination "down": POST /contacts: connection refused by ${new URL(url).host} — is the API up at this url?`);

    // Down when the run connects: a connection error at once, as for an unreachable database.
    const unreachable = await failure(openHttp(url, {}, { slug: 'down' }));
    expect(unreachable.code).toBe(ErrorCode.Connection);
    expect(unreachable.retryable).toBe(false);
    expect(unreachable.message).toBe(`http destination "down": cannot reach ${new URL(url).host}: connection refused — check the connection's url and that the API is up`);
  });

  it('fails clearly on garbage: an HTML page on 200, truncated JSON, JSON missing where results need it, a redirect', async () => {
    const receiver = await startReceiver((req, res) => {
      if (req.path === '/html') return text(res, 200, '<!doctype html><title>Sign in</title>', 'text/html; charset=utf-8');
      if (req.path === '/truncated') return text(res, 200, '{"results": [{"ok": tr', 'application/json');
      if (req.path === '/plain') return text(res, 200, 'OK');
      if (req.path === '/moved') return text(res, 301, '', 'text/plain', { location: 'https://elsewhere.example.com/v2/contacts?sig=abc' });
      json(res, 200, {});
    });
    const destination = await openHttp(receiver.url);
    const write = async (object: string, settings: Record<string, unknown> = {}) => failure((await destination.prepare(target(object, settings))).write([upsert(1)]));

    const html = await write('/html');
    expect(html.retryable).toBe(false);
    expect(html.message).toBe(
      'http destination "api": POST /html answered 200 with an HTML page (text/html; charset=utf-8), not JSON — the url or the sync\'s path leads to a web page (a login, proxy or error page?); check them',
    );
    const truncated = await write('/truncated');
    expect(truncated.retryable).toBe(false);
    expect(truncated.message).toMatch(
      /^http destination "api": POST \/truncated answered 200 with a body that is not valid JSON \(.+; 22 bytes, content-type application\/json\), but it says it is application\/json: \{"results": \[\{"ok": tr$/,
    );
    const plain = await write('/plain', { results: '/results' });
    expect(plain.message).toMatch(/^http destination "api": POST \/plain answered 200 with a body that is not valid JSON \(.+\), but the sync's results setting needs a JSON answer: OK$/);
    const moved = await write('/moved');
    expect(moved.message).toBe(
      'http destination "api": POST /moved answered 301, a redirect to https://elsewhere.example.com/v2/contacts, which Lockstep does not follow — set the connection\'s url (or the sync\'s path) to where it points',
    );
    // Without results, a 2xx that is not JSON and does not say it is, is delivered.
    expect(await (await destination.prepare(target('/plain'))).write([upsert(1)])).toEqual([ok]);
  });

  it('reads per-record results (ok/error or success/message) and refuses results that do not fit', async () => {
    const receiver = await startReceiver((req, res) => {
      const records = (JSON.parse(req.body) as { records: Array<{ id: number }> }).records;
      if (req.path === '/ok-error') return json(res, 200, { data: { results: records.map((r) => (r.id % 2 ? { ok: true } : { ok: false, error: { code: 'INVALID', field: 'email' } })) } });
      if (req.path === '/success-message') return json(res, 207, records.map((r) => ({ success: r.id !== 2, message: r.id === 2 ? 'duplicate email' : undefined })));
      if (req.path === '/short') return json(res, 200, { results: [{ ok: true }] });
      if (req.path === '/not-array') return json(res, 200, { results: { ok: true } });
      if (req.path === '/null') return json(res, 200, { results: null });
      if (req.path === '/blank') return json(res, 200, { results: [{ ok: false, error: '' }, { success: false, message: '  ' }, { ok: false, error: null, message: 'taken' }] });
      return json(res, 200, { results: records.map(() => ({ status: 'done' })) });
    });
    const destination = await openHttp(receiver.url);
    const write = async (object: string, results: string) => (await destination.prepare(target(object, { results }))).write([upsert(1), upsert(2), upsert(3)]);

    const first = await write('/ok-error', '/data/results');
    expect(first[0]).toEqual(ok);
    expect(reason(first[1])).toBe('{"code":"INVALID","field":"email"}');
    expect(first[2]).toEqual(ok);
    expect(await write('/success-message', '')).toEqual([ok, { ok: false, reason: 'duplicate email' }, ok]);

    expect((await failure(write('/short', '/results'))).message).toBe(
      'http destination "api": POST /short answered with 1 results at "/results" for 3 rows sent (one per row, in order, is needed) — check the sync\'s results setting ("/results") against what the API answers',
    );
    expect((await failure(write('/not-array', '/results'))).message).toMatch(/answered with no array at "\/results" \(an object\) — check/);
    expect((await failure(write('/null', '/results'))).message).toMatch(/answered with no array at "\/results" \(null\) — check/);
    // A record refused without words gets a reason all the same.
    expect(await write('/blank', '/results')).toEqual([
      { ok: false, reason: 'refused by the API (its result gives no error or message)' },
      { ok: false, reason: 'refused by the API (its result gives no error or message)' },
      { ok: false, reason: 'taken' },
    ]);
    expect((await failure(write('/no-flag', '/results'))).message).toMatch(/answered with result 0 at "\/results" without a boolean "ok" or "success"/);
  });

  it('reads a record\'s reason from its errors array, and a one-row request\'s result as a single object', async () => {
    const receiver = await startReceiver((req, res) => {
      if (req.path === '/batch') {
        return json(res, 200, {
          results: [{ ok: false, errors: [{ message: 'email is invalid', field: 'email' }, { code: 'REQUIRED', field: 'name' }] }, { ok: false, errors: ['taken', 'locked'] }, { ok: false, errors: [] }],
        });
      }
      const id = Number(req.path.split('/').pop());
      return json(res, 200, { result: id === 2 ? { success: false, errors: [{ message: 'no such owner' }] } : { success: true } });
    });
    const destination = await openHttp(receiver.url);
    const batch = await (await destination.prepare(target('/batch', { results: '/results' }))).write([upsert(1), upsert(2), upsert(3)]);
    expect(batch).toEqual([
      { ok: false, reason: 'email is invalid; {"code":"REQUIRED","field":"name"}' },
      { ok: false, reason: 'taken; locked' },
      { ok: false, reason: 'refused by the API (its result gives no error or message)' },
    ]);
    const rows = await (await destination.prepare(target('/contacts/{{ row.id }}', { results: '/result' }))).write([upsert(1), upsert(2)]);
    expect(rows).toEqual([ok, { ok: false, reason: 'no such owner' }]);
  });

  it('delivers a batch of 5,000 rows in one request, rejecting exactly the records the API refused', async () => {
    const bad = new Set([1000, 4000]);
    const receiver = await startReceiver((req, res) => {
      const records = (JSON.parse(req.body) as { records: Array<{ id: number }> }).records;
      json(res, 200, { results: records.map((r) => (bad.has(r.id) ? { ok: false, message: `record ${r.id} refused` } : { ok: true })) });
    });
    const destination = await openHttp(receiver.url);
    const writer = await destination.prepare(target('/contacts', { results: '/results' }));
    const outcomes = await writer.write(Array.from({ length: 5000 }, (_, i) => upsert(i)));
    expect(outcomes).toHaveLength(5000);
    outcomes.forEach((outcome, i) => expect(outcome).toEqual(bad.has(i) ? { ok: false, reason: `record ${i} refused` } : ok));
    expect(receiver.requests).toHaveLength(1);
  });

  it('ends requests under way when the destination closes', async () => {
    const receiver = await startReceiver(() => undefined);
    const destination = await openHttp(receiver.url);
    const writing = (await destination.prepare(target('/hang'))).write([upsert(1)]);
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await destination.close();
    const error = await failure(writing);
    expect(error.message).toMatch(/^http destination "api": POST \/hang: the destination is closed$/);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('http destination: rate limit', () => {
  it('holds two writers on the same connection to one budget; another connection has its own', async () => {
    const receiver = await startReceiver();
    const registry = registryWithHttp();
    const settings = { rateLimit: { requestsPerSecond: 20 } };
    const a = await (await openHttp(receiver.url, settings, { registry })).prepare(target('/a/{{ row.id }}'));
    const b = await (await openHttp(receiver.url, settings, { registry })).prepare(target('/b/{{ row.id }}'));
    const c = await (await openHttp(receiver.url, settings, { registry, slug: 'other' })).prepare(target('/c/{{ row.id }}'));
    const rows = Array.from({ length: 10 }, (_, i) => upsert(i));
    const started = performance.now();
    const timed = async (writer: DestinationWriter) => {
      await writer.write(rows);
      return performance.now() - started;
    };
    const [aMs, bMs, cMs] = await Promise.all([timed(a), timed(b), timed(c)]);
    expect(receiver.requests).toHaveLength(30);
    // a and b: 20 requests at 20/s, 19 gaps of 50 ms at least, whichever writer sent them.
    expect(Math.max(aMs, bMs)).toBeGreaterThan(900);
    const shared = receiver.requests.filter((r) => !r.path.startsWith('/c/'));
    const times = shared.map((r) => r.at).sort((x, y) => x - y);
    const rate = (times.length - 1) / (((times.at(-1) as number) - (times[0] as number)) / 1000);
    expect(rate).toBeLessThan(22);
    // c's 10 requests at its own 20/s take about 0.45 s; sharing the budget would take 1.4 s.
    expect(cMs).toBeGreaterThan(400);
    expect(cMs).toBeLessThan(1_000);
  });
});

describe('http destination through the engine', () => {
  async function setup(receiver: Receiver, syncs: Parameters<typeof sync>[1][], env: Record<string, string> = {}) {
    const dir = tempDir();
    sqlite(
      join(dir, 'warehouse.db'),
      `create table contacts (id integer primary key, email text, name text);
       insert into contacts values (1, 'a@example.com', 'Ann'), (2, 'b@example.com', 'Bob'), (3, 'c@example.com', 'Cy'), (4, 'd@example.com', 'Di'), (5, 'e@example.com', 'Ed');`,
    );
    const registry = registryWithHttp();
    const definition = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [source('api', { type: 'http', settings: { url: `${receiver.url}/v1`, headers: { Authorization: 'Bearer ${API_TOKEN}' } } })],
      models: [model('contacts', 'warehouse', 'select id, email, name from contacts')],
      syncs: syncs.map((over, i) => sync(`contacts-${i}`, over)),
    });
    const h = await startHarness({ dir, definition, connectors: () => registry, env: { API_TOKEN: 's3cret-from-env', ...env } });
    const runSync = async (slug: string) => {
      const { run } = await h.app.runs.triggerSync(slug);
      return h.app.runs.waitForSyncRun(run.id);
    };
    return { dir, h, runSync };
  }

  it('delivers batches from a Liquid body, sends only what changed, deletes with the delete request', async () => {
    const receiver = await startReceiver((req, res) => {
      if (req.method === 'DELETE') return json(res, 200, { deleted: true });
      const body = JSON.parse(req.body) as { contacts: Array<{ id: number }> };
      json(res, 200, { results: body.contacts.map((c) => (c.id === 4 ? { ok: false, error: 'email bounced' } : { ok: true })) });
    });
    const { dir, h, runSync } = await setup(receiver, [
      {
        model: 'contacts',
        destination: 'api',
        object: '/contacts/batch',
        mode: 'mirror',
        batchSize: 2,
        settings: {
          method: 'POST',
          body: '{"contacts": [{% for r in rows %}{"id": {{ r.id }}, "email": {{ r.email | json }}}{% unless forloop.last %},{% endunless %}{% endfor %}]}',
          results: '/results',
          delete: { path: '/contacts/{{ row.id }}' },
        },
      },
    ]);
    await using _ = h;
    const first = await runSync('contacts-0');
    expect(first.status).toBe('warning');
    expect(first.successfulRows.addedCount).toBe(4);
    expect(first.failedRows.addedCount).toBe(1);
    expect((await h.app.store.listRejectedRows(first.id, 10, 0)).map((r) => [r.key, r.reason])).toEqual([['[4]', 'email bounced']]);
    const posts = receiver.requests.filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.path)).toEqual(['/v1/contacts/batch', '/v1/contacts/batch', '/v1/contacts/batch']);
    expect(posts.every((r) => r.headers.authorization === 'Bearer s3cret-from-env')).toBe(true);
    expect(posts.flatMap((r) => (JSON.parse(r.body) as { contacts: Array<{ id: number }> }).contacts.map((c) => c.id)).sort()).toEqual([1, 2, 3, 4, 5]);

    // Row 4 is retried (still refused); one row changes, one leaves the model.
    receiver.requests.length = 0;
    sqlite(join(dir, 'warehouse.db'), `update contacts set email = 'ann@example.com' where id = 1; delete from contacts where id = 5;`);
    const second = await runSync('contacts-0');
    expect(second.error).toBeNull();
    expect(second.status).toBe('warning');
    expect(second.successfulRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 1 });
    expect(receiver.requests.map((r) => `${r.method} ${r.path}`).sort()).toEqual(['DELETE /v1/contacts/5', 'POST /v1/contacts/batch']);
    expect(JSON.parse(receiver.requests.find((r) => r.method === 'POST')!.body)).toEqual({
      contacts: [
        { id: 1, email: 'ann@example.com' },
        { id: 4, email: 'd@example.com' },
      ],
    });
  });

  it('sends one request per row at batchSize 1, retries a 503 and rejects a 4xx row', async () => {
    let busy = 2;
    const receiver = await startReceiver((req, res) => {
      if (req.path === '/v1/contacts/3') return json(res, 409, { message: 'conflict on 3' });
      if (req.path === '/v1/contacts/2' && busy-- > 0) return text(res, 503, 'try later', 'text/plain', { 'retry-after': '0' });
      json(res, 200, {});
    });
    const { h, runSync } = await setup(receiver, [
      { model: 'contacts', destination: 'api', object: '/contacts/{{ row.id }}', batchSize: 1, settings: { method: 'PUT', body: '{"email": {{ row.email | json }}, "name": {{ row.name | json }}}' } },
    ]);
    await using _ = h;
    const run = await runSync('contacts-0');
    expect(run.status).toBe('warning');
    expect(run.successfulRows.addedCount).toBe(4);
    expect((await h.app.store.listRejectedRows(run.id, 10, 0)).map((r) => [r.key, r.reason])).toEqual([['[3]', 'HTTP 409: {"message":"conflict on 3"}']]);
    expect(receiver.requests.filter((r) => r.path === '/v1/contacts/2')).toHaveLength(3);
    expect(JSON.parse(receiver.requests.find((r) => r.path === '/v1/contacts/5')!.body)).toEqual({ email: 'e@example.com', name: 'Ed' });
  });

  it('fails the run when one row\'s request keeps getting 503 while the others of its batch go through; it goes again on the next run', async () => {
    let down = true;
    const receiver = await startReceiver((req, res) => (req.path === '/v1/contacts/2' && down ? json(res, 503, { error: 'busy' }, { 'retry-after': '0' }) : json(res, 200, {})));
    const { h, runSync } = await setup(receiver, [{ model: 'contacts', destination: 'api', object: '/contacts/{{ row.id }}', settings: { method: 'PUT' } }]);
    await using _ = h;
    const failed = await runSync('contacts-0');
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe('http destination "api": PUT /v1/contacts/2 answered 503 (Retry-After: 0 s): {"error":"busy"} (gave up after 5 attempts)');
    expect(failed.failedRows.addedCount).toBe(0);
    expect(await h.app.store.listRejectedRows(failed.id, 10, 0)).toEqual([]);
    expect(receiver.requests.filter((r) => r.path === '/v1/contacts/2')).toHaveLength(5);

    down = false;
    receiver.requests.length = 0;
    const next = await runSync('contacts-0');
    expect(next.status).toBe('success');
    expect(receiver.requests.map((r) => r.path)).toContain('/v1/contacts/2');
    expect(failed.successfulRows.addedCount + next.successfulRows.addedCount).toBe(5);
  });

  it('fails the run with the last answer when the API stays down, and when a mirror sync has no delete request', async () => {
    const receiver = await startReceiver((req, res) => (req.path.startsWith('/v1/down') ? text(res, 500, 'internal error') : json(res, 200, {})));
    const { dir, h, runSync } = await setup(receiver, [
      { model: 'contacts', destination: 'api', object: '/down' },
      { model: 'contacts', destination: 'api', object: '/contacts', mode: 'mirror' },
    ]);
    await using _ = h;
    const down = await runSync('contacts-0');
    expect(down.status).toBe('failed');
    expect(down.error).toBe('http destination "api": POST /v1/down answered 500: internal error (gave up after 5 attempts)');

    expect((await runSync('contacts-1')).status).toBe('success');
    sqlite(join(dir, 'warehouse.db'), 'delete from contacts where id = 2');
    const mirror = await runSync('contacts-1');
    expect(mirror.status).toBe('failed');
    expect(mirror.error).toMatch(/^sync "contacts-1" deletes rows \(mode mirror or deleteBehavior delete\), but has no delete request for http destination "api" — add one/);
    expect(`${down.error} ${mirror.error}`).not.toContain('s3cret');
  });

  it('stops at once, saying so, when the API asks to wait longer than a run waits (a spent daily quota)', async () => {
    const receiver = await startReceiver((req, res) =>
      req.path.startsWith('/v1/quota') ? json(res, 429, { message: 'daily limit reached' }, { 'retry-after': '86400' }) : json(res, 200, {}),
    );
    const { h, runSync } = await setup(receiver, [{ model: 'contacts', destination: 'api', object: '/quota' }]);
    await using _ = h;
    const started = Date.now();
    const run = await runSync('contacts-0');
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(run.status).toBe('failed');
    expect(run.error).toBe(
      'http destination "api": POST /v1/quota answered 429 (Retry-After: 86400 s): {"message":"daily limit reached"} — the peer asks to wait 86400 s before trying again, longer than a run waits (15 min); the run stops here and its rows go again on the next run',
    );
    expect(receiver.requests).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// The API destination contract (api-destination-contract.ts), against a receiver that keeps what
// it is sent as a small REST API would: POST /contacts {"records": [...]} answers a result per
// record (an email without @ refused), DELETE /contacts/{id} answers 204, or 404 when no such record.

import { describeApiDestinationContract, type PeerFault } from './api-destination-contract.js';

async function startContactsApi() {
  const held = new Map<string, Record<string, unknown>>();
  const faults: PeerFault[] = [];
  const receiver = await startReceiver((req, res) => {
    if (req.method === 'POST' && req.path === '/contacts') {
      const fault = faults.shift();
      if (fault) return text(res, fault.status, fault.body, fault.contentType);
      const { records } = JSON.parse(req.body) as { records: Array<Record<string, unknown>> };
      const results = records.map((record) => {
        if (typeof record.email === 'string' && !record.email.includes('@')) return { ok: false, error: `email ${record.email} is invalid` };
        held.set(String(record.id), record);
        return { ok: true };
      });
      return json(res, 200, { results });
    }
    const remove = /^\/contacts\/([^/]+)$/.exec(req.path);
    if (req.method === 'DELETE' && remove) {
      const id = decodeURIComponent(remove[1] as string);
      if (!held.delete(id)) return json(res, 404, { error: `no contact ${id}` });
      res.statusCode = 204;
      res.end();
      return;
    }
    return json(res, 404, { error: `no route ${req.method} ${req.path}` });
  });
  return { receiver, held, faults };
}

describeApiDestinationContract('http', {
  capabilities: httpConnector.destination!.capabilities,
  async open() {
    const { receiver, held, faults } = await startContactsApi();
    const destination = await openHttp(receiver.url);
    return {
      destination,
      records: () => [...held.values()].map((fields) => ({ fields })),
      failNextWrite: (fault) => faults.push(fault),
      writeRequests: () => receiver.requests.filter((r) => r.method === 'POST').length,
      // openHttp and startReceiver are closed after each test as well.
      close: () => destination.close(),
    };
  },
  object: '/contacts',
  keyField: 'id',
  fields: ['email', 'name'],
  settings: { results: '/results', delete: { path: '/contacts/{{ row.id }}' } },
  values: (key, version) => [`${key}@example.com`, `Name v${version}`],
  badRow: { values: () => ['not-an-email', 'Bad'], reason: /email not-an-email is invalid/ },
  checksSchema: false,
  updatesByKind: false,
  openUnreachable: () => openHttp('http://127.0.0.1:1'),
  secret: 's3cret-token-for-tests',
});

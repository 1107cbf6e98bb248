/**
 * Requests generated from the server's own OpenAPI document, for every operation it describes, with
 * hostile values where the schema expects others: wrong types, huge and unicode strings, `__proto__`
 * keys, negative and enormous numbers, deeply nested JSON, bad percent-encoding, `${ENV}` templates,
 * missing or wrong tokens. Every answer must be under 500, hold none of the secrets the server was
 * given, and a refused request (4xx) must leave what the store holds as it was (entities, alerts,
 * tokens, runs).
 *
 * Seeded (FUZZ_SEED; default a fixed seed, so a run repeats), FUZZ_RUNS requests (default 2,000). A
 * failure prints the seed and the shrunk request to repeat it: `FUZZ_SEED=<seed> npx vitest run <this file>`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertsDefinition } from '../../src/core/alerts.js';
import { hierarchyWorkspace, PG_PASSWORD, startApi, type ApiHarness } from './api-helpers.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_205);
const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000);

const ENV_SECRET = 'env-only-s3cret-5f1c9a';
const DBT_SECRET = 'whsec-fuzz-dbt-77aa01';
const CHANNEL_SECRET = 'hmac-fuzz-channel-42be';
const HEADER_SECRET = 'hdr-fuzz-token-9d03';
const URL_TOKEN = 'url-fuzz-token-c0ffee';

let api: ApiHarness;
let secrets: string[];

interface Operation {
  method: string;
  path: string;
  params: Array<{ in: 'path' | 'query'; name: string; schema: JsonSchema }>;
  body: JsonSchema | null;
}
interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  additionalProperties?: boolean | JsonSchema;
}
let operations: Operation[];
let components: Record<string, JsonSchema>;

beforeAll(async () => {
  api = await startApi({ env: { FUZZ_ENV_SECRET: ENV_SECRET } });
  const alerts: AlertsDefinition = {
    channels: [
      { name: 'ops', type: 'webhook', url: `http://127.0.0.1:1/hook?access_token=${URL_TOKEN}`, headers: { 'X-Api-Key': HEADER_SECRET }, secret: CHANNEL_SECRET },
    ],
    rules: [],
  };
  await api.app.store.applyWorkspace({ ...hierarchyWorkspace(api.dir), alerts, webhooks: { dbtCloud: { secret: DBT_SECRET }, fivetran: null } }, api.app.clock.now());
  const keyFile = readFileSync(join(api.dir, 'lockstep.db.key'), 'utf8').trim();
  secrets = [PG_PASSWORD, api.token, ENV_SECRET, DBT_SECRET, CHANNEL_SECRET, HEADER_SECRET, URL_TOKEN, keyFile];

  const doc = (await api.call('GET', '/api/openapi.json')).body as {
    paths: Record<string, Record<string, { parameters?: Operation['params']; requestBody?: { content?: Record<string, { schema: JsonSchema }> } }>>;
    components?: { schemas?: Record<string, JsonSchema> };
  };
  components = doc.components?.schemas ?? {};
  operations = Object.entries(doc.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod)
      // A stream that stays open: its token check is tested with the events themselves.
      .filter(([, op]) => path !== '/api/events' && op !== null)
      .map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        params: (op.parameters ?? []).filter((p) => p.in === 'path' || p.in === 'query'),
        body: op.requestBody?.content?.['application/json']?.schema ?? null,
      })),
  );
}, 120_000);
afterAll(async () => {
  await api?.[Symbol.asyncDispose]();
});

/**
 * What a request could change: the workspace (entities, alerts, webhook settings), the tokens, and
 * which runs exist (sequence runs, and sync runs not started by a sequence: a sequence's members
 * are queued by the worker meanwhile, and run statuses move on by themselves).
 */
async function storeState(): Promise<string> {
  const { store } = api.app;
  const page = { limit: 10_000, offset: 0, order: 'asc' as const };
  return JSON.stringify({
    workspace: await store.loadWorkspace(),
    tokens: (await store.tokens.list()).map((t) => t.name),
    sequenceRuns: (await store.listSequenceRuns(page)).map((r) => r.id),
    syncRuns: (await store.listSyncRuns(page)).filter((r) => r.sequenceRunId === null).map((r) => r.id),
  });
}

// --- hostile values

const SLUGS = ['warehouse', 'crm', 'accounts', 'accounts-to-crm', 'contacts-to-crm', 'crm-hierarchy', 'ops', '1', '2'];
const hostileText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(
    '',
    ' ',
    '__proto__',
    'constructor',
    'prototype',
    '%',
    '%ZZ',
    '%E0%A4%A',
    '%00',
    '..',
    '../../etc/passwd',
    '\u0000',
    '\uD800',
    'é',
    '𝕏𝕐',
    '\u202Eevil',
    '${FUZZ_ENV_SECRET}',
    '${LOCKSTEP_SECRET_KEY}',
    'postgres://x:${FUZZ_ENV_SECRET}@127.0.0.1:1/db',
    '-1',
    '0',
    '1e309',
    'NaN',
    'null',
    'true',
    '[]',
    '{}',
    "' or 1=1 --",
    '<script>alert(1)</script>',
    '2024-13-45T99:99:99Z',
  ) },
  { weight: 2, arbitrary: fc.constantFrom(...SLUGS) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 200_000 }).map((n) => 'x'.repeat(n)) },
);
const hostileNumber = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.constantFrom(-1, 0, -0, 1.5, Number.MAX_SAFE_INTEGER + 2, 1e308, -1e308),
);
const hostileScalar = fc.oneof(hostileText, hostileNumber, fc.boolean(), fc.constant(null));
const hostileJson = fc.oneof(hostileScalar, fc.jsonValue({ maxDepth: 3 }), fc.constant(JSON.parse('{"__proto__":{"polluted":true}}') as unknown));

function resolve(schema: JsonSchema): JsonSchema {
  let s = schema;
  for (let i = 0; s.$ref && i < 10; i++) s = components[s.$ref.replace('#/components/schemas/', '')] ?? {};
  return s;
}

/** A value shaped by `schema` that is often wrong in type or content. */
function valueFor(schema: JsonSchema, depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(schema);
  if (depth > 4) return hostileScalar;
  const variants = s.anyOf ?? s.oneOf ?? s.allOf;
  if (variants && variants.length > 0) return fc.oneof(...variants.map((v) => valueFor(v, depth + 1)), hostileScalar);
  if (s.enum) return fc.oneof(fc.constantFrom(...s.enum), hostileScalar);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'string':
      return hostileText;
    case 'integer':
    case 'number':
      return fc.oneof(hostileNumber, hostileText);
    case 'boolean':
      return fc.oneof(fc.boolean(), hostileScalar);
    case 'array':
      return fc.oneof(fc.array(valueFor(s.items ?? {}, depth + 1), { maxLength: 3 }), hostileScalar);
    case 'object': {
      const shaped = fc.record(Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, valueFor(v, depth + 1)])), { requiredKeys: [] });
      return fc.oneof(
        { weight: 4, arbitrary: shaped },
        shaped.map((o) => ({ ...o, ['__proto__']: { polluted: true }, constructor: { prototype: { polluted: true } } })),
        hostileJson,
      );
    }
    default:
      return hostileJson;
  }
}

/** Raw body text: JSON of a shaped value, deeply nested JSON, `__proto__` text, or not JSON at all. */
function bodyFor(schema: JsonSchema | null): fc.Arbitrary<string | undefined> {
  const deep = fc.tuple(fc.integer({ min: 50, max: 20_000 }), fc.boolean()).map(([d, arrays]) => (arrays ? `${'['.repeat(d)}${']'.repeat(d)}` : `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`));
  return fc.oneof(
    { weight: 6, arbitrary: valueFor(schema ?? { type: 'object' }).map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: deep },
    { weight: 1, arbitrary: fc.constantFrom('{"__proto__":{"polluted":true},"slug":"x"}', '{"constructor":{"prototype":{"polluted":true}}}', '{', '{"a":1', "{'a':1}", 'undefined', '\u0000') },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

/** Percent-encoded; a lone surrogate (which has no UTF-8) becomes U+FFFD, as a browser sends it. */
const encode = (text: string) => encodeURIComponent(text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));

/** A path segment: hostile text percent-encoded, or left raw (bad percent-encoding and all). */
const segment = fc.oneof(
  { weight: 3, arbitrary: hostileText.map((s) => encode(s.slice(0, 5_000))) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%ZZ', '%E0%A4%A', '%C0%AF', '..', '%2e%2e', '%2F', '%00') },
);

interface FuzzRequest {
  method: string;
  url: string;
  body: string | undefined;
  contentType: string | null;
  auth: 'token' | 'none' | 'wrong';
}

function requestFor(op: Operation): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.params.filter((p) => p.in === 'path');
  const queryParams = op.params.filter((p) => p.in === 'query');
  return fc.record({
    path: fc.tuple(...pathParams.map(() => segment)).map((values) => pathParams.reduce((path, p, i) => path.replace(`{${p.name}}`, values[i] as string), op.path)),
    query: fc.array(
      fc.tuple(fc.constantFrom(...queryParams.map((p) => p.name), '__proto__', 'zz'), fc.oneof(hostileText, hostileNumber.map(String))),
      { maxLength: queryParams.length > 0 ? 4 : 1 },
    ),
    rawQuery: fc.option(fc.constantFrom('limit=%ZZ', 'offset=-1&offset=2', '%=1', 'a=%E0%A4%A', '__proto__[x]=1'), { freq: 5 }),
    body: op.body || op.method !== 'GET' ? bodyFor(op.body) : fc.constant(undefined),
    contentType: fc.oneof({ weight: 8, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', null) }),
    auth: fc.oneof({ weight: 8, arbitrary: fc.constant('token' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'wrong' as const) }),
  }).map(({ path, query, rawQuery, body, contentType, auth }) => {
    const search = [...query.map(([k, v]) => `${encode(k)}=${encode(v.slice(0, 5_000))}`), ...(rawQuery ? [rawQuery] : [])].join('&');
    // Node's HTTP server reads at most 16 KiB of request line and headers (it answers 431 past that).
    const url = `${path}${search ? `?${search}` : ''}`.slice(0, 12_000);
    return { method: op.method, url, body: op.method === 'GET' ? undefined : body, contentType, auth };
  });
}

const recent: string[] = [];
async function send(request: FuzzRequest): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (request.auth === 'token') headers.authorization = `Bearer ${api.token}`;
  if (request.auth === 'wrong') headers.authorization = 'Bearer lst_wrong';
  if (request.contentType && request.body !== undefined) headers['content-type'] = request.contentType;
  const response = await fetch(api.url + request.url, { method: request.method, headers, body: request.body, signal: AbortSignal.timeout(30_000) }).catch((error: unknown) => {
    const cause = (error as Error).cause as Error | undefined;
    throw new Error(`${request.method} ${request.url.slice(0, 200)}: no answer (${(error as Error).message}: ${cause?.message ?? ''}); before it: ${recent.join(' | ')}`);
  });
  const text = await response.text();
  recent.push(`${request.method} ${request.url.slice(0, 80)} body ${request.body?.length ?? 'none'} (${request.contentType}) -> ${response.status} ${response.headers.get('connection') ?? ''}`);
  if (recent.length > 3) recent.shift();
  const head: string[] = [];
  response.headers.forEach((value, name) => head.push(`${name}: ${value}`));
  return { status: response.status, text: `${head.join('\n')}\n\n${text}` };
}

describe('requests generated from the OpenAPI document', () => {
  it('covers every operation the document describes', () => {
    expect(operations.length).toBeGreaterThan(60);
    expect(operations.some((o) => o.method === 'POST' && o.path === '/api/sources')).toBe(true);
  });

  it(`never answers 5xx, never shows a secret, and a refused request changes nothing (seed ${SEED}, ${RUNS} requests)`, async () => {
    const statuses = new Map<number, number>();
    const timing = { requests: 0, store: 0 };
    const anyRequest = fc.integer({ min: 0, max: operations.length - 1 }).chain((i) => requestFor(operations[i] as Operation));
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(anyRequest, async (request) => {
        let t = performance.now();
        const before = request.method === 'GET' ? null : await storeState();
        timing.store += performance.now() - t;
        t = performance.now();
        const { status, text } = await send(request);
        timing.requests += performance.now() - t;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        expect(status, `${request.method} ${request.url.slice(0, 300)}`).toBeLessThan(500);
        for (const secret of secrets) expect(text.includes(secret), `the answer to ${request.method} ${request.url.slice(0, 200)} holds a secret`).toBe(false);
        t = performance.now();
        const after = before !== null && status >= 400 ? await storeState() : null;
        timing.store += performance.now() - t;
        if (before !== null && status >= 400) expect(after, `${request.method} ${request.url.slice(0, 200)} answered ${status} but changed the store`).toBe(before);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { seed: SEED, numRuns: RUNS, includeErrorInReport: true, interruptAfterTimeLimit: 240_000 },
    ).catch((error: unknown) => {
      throw new Error(`OpenAPI fuzz failed — repeat with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}:\n${(error as Error).message}`);
    });
    // The mix reached the routes, not only the token check.
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(0);
    expect([...statuses.keys()].some((s) => s >= 200 && s < 300)).toBe(true);
    expect(statuses.get(422) ?? 0).toBeGreaterThan(total / 20);
    console.log(`openapi fuzz: ${total} requests in ${Date.now() - started} ms (answers ${Math.round(timing.requests)} ms, store checks ${Math.round(timing.store)} ms), statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
    expect(api.logs.join('\n')).not.toContain(PG_PASSWORD);
  }, 300_000);
});

/**
 * Thousands of malformed requests (bodies, ids, query strings) to every route: each answer is a
 * 4xx with a message (a 422 names each bad field), never a 5xx; nothing is stored; no secret
 * appears in an answer or a log line.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_PASSWORD, startApi, type ApiHarness } from './api-helpers.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

/** Everything the store holds that a request could change. */
async function snapshot(): Promise<string> {
  const { store } = api.app;
  const page = { limit: 1000, offset: 0, order: 'asc' as const };
  return JSON.stringify({
    workspace: await store.loadWorkspace(),
    syncRuns: await store.listSyncRuns(page),
    sequenceRuns: await store.listSequenceRuns(page),
    tokens: (await store.tokens.list()).map((t) => t.name),
  });
}

const KINDS = ['sources', 'destinations', 'models', 'syncs', 'sequences'] as const;
const REAL_SLUGS = ['warehouse', 'crm', 'pg', 'accounts', 'accounts-to-crm', 'contacts-to-crm', 'crm-hierarchy'];

/** A path segment: real slugs, unknown ones, and junk, URL-encoded. */
const segment = fc.oneof(fc.constantFrom(...REAL_SLUGS), fc.string({ minLength: 1, maxLength: 20 }), fc.constantFrom('0', '-1', '1.5', '99999999999999999999', '%', '..', 'null'));
const unknownSegment = fc.oneof(fc.string({ minLength: 1, maxLength: 20 }).map((s) => `zz-${s}`), fc.constantFrom('0', '-1', '1.5', 'abc', '99999999'));
const enc = (s: string) => encodeURIComponent(s);

/** A JSON body that no route accepts: not an object, or an object with an unknown field. */
const badJson = fc.oneof(
  fc.jsonValue().filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)),
  fc.tuple(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }), fc.string({ maxLength: 8 })).map(([o, k]) => ({ ...o, [`zz_${k}`]: 1 })),
  fc.record({ slug: fc.constantFrom('x', 'Bad Slug', ''), type: fc.constantFrom('postgres', 'oracle', 1), members: fc.constant([]), mode: fc.constant('upsrt'), zz: fc.constant(1) }, { requiredKeys: ['zz'] }),
).map((v) => JSON.stringify(v));
/** Text that is not JSON at all. */
const notJson = fc.oneof(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() !== '' && !isJson(s)), fc.constantFrom('{', '{"slug":', '[1,', 'undefined', "{'a':1}"));
const body = fc.oneof(badJson, notJson);

/** A query string with unknown keys or bad values. */
const badQuery = fc.oneof(
  fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([k, v]) => `zz${enc(k)}=${enc(v)}`),
  fc.tuple(fc.constantFrom('limit', 'offset', 'after', 'before', 'status', 'orderBy', 'runId', 'within'), fc.constantFrom('-1', 'abc', '1e9', '', '2024-13-45', 'done,nope', '101', '1.5')).map(([k, v]) => `${k}=${enc(v)}&zz=1`),
);

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

interface Request {
  method: string;
  path: string;
  raw?: string;
}

const requests: fc.Arbitrary<Request> = fc.oneof(
  // Entity writes with bad bodies.
  fc.tuple(fc.constantFrom(...KINDS), body).map(([kind, raw]) => ({ method: 'POST', path: `/api/${kind}`, raw })),
  fc.tuple(fc.constantFrom(...KINDS), segment, body).map(([kind, slug, raw]) => ({ method: 'PUT', path: `/api/${kind}/${enc(slug)}`, raw })),
  fc.tuple(fc.constantFrom('syncs', 'sequences'), segment, body).map(([kind, slug, raw]) => ({ method: 'PATCH', path: `/api/${kind}/${enc(slug)}`, raw })),
  fc.tuple(fc.constantFrom(...KINDS), unknownSegment).map(([kind, slug]) => ({ method: 'DELETE', path: `/api/${kind}/${enc(slug)}` })),
  fc.tuple(fc.constantFrom(...KINDS), unknownSegment).map(([kind, slug]) => ({ method: 'GET', path: `/api/${kind}/${enc(slug)}` })),
  // Runs: bad bodies on real slugs, unknown slugs, bad ids, bad queries.
  fc.tuple(fc.constantFrom('syncs', 'sequences'), segment, body).map(([kind, slug, raw]) => ({ method: 'POST', path: `/api/${kind}/${enc(slug)}/runs`, raw: kind === 'syncs' ? raw : raw })),
  fc.tuple(fc.constantFrom('syncs', 'sequences'), unknownSegment).map(([kind, slug]) => ({ method: 'POST', path: `/api/${kind}/${enc(slug)}/runs` })),
  fc.tuple(fc.constantFrom('syncs', 'sequences'), segment, badQuery).map(([kind, slug, q]) => ({ method: 'GET', path: `/api/${kind}/${enc(slug)}/runs?${q}` })),
  fc.tuple(unknownSegment, fc.constantFrom('', '/rejected-rows', '/cancel')).map(([id, tail]) => ({ method: tail === '/cancel' ? 'POST' : 'GET', path: `/api/sync-runs/${enc(id)}${tail}` })),
  fc.tuple(fc.oneof(unknownSegment, fc.uuid()), fc.constantFrom('', '/cancel')).map(([id, tail]) => ({ method: tail ? 'POST' : 'GET', path: `/api/sequence-runs/${enc(id)}${tail}` })),
  badQuery.map((q) => ({ method: 'GET', path: `/api/sync-runs/1/rejected-rows?${q}` })),
  // Alerts: bad channel and rule bodies, unknown names, bad delivery queries.
  fc.tuple(fc.constantFrom('channels', 'rules'), body).map(([kind, raw]) => ({ method: 'POST', path: `/api/alerts/${kind}`, raw })),
  fc.tuple(fc.constantFrom('channels', 'rules'), segment, body).map(([kind, name, raw]) => ({ method: 'PUT', path: `/api/alerts/${kind}/${enc(name)}`, raw })),
  fc.tuple(fc.constantFrom('channels', 'rules'), unknownSegment).map(([kind, name]) => ({ method: 'DELETE', path: `/api/alerts/${kind}/${enc(name)}` })),
  unknownSegment.map((name) => ({ method: 'POST', path: `/api/alerts/channels/${enc(name)}/test` })),
  badQuery.map((q) => ({ method: 'GET', path: `/api/alerts/deliveries?${q}` })),
  // Hightouch-compatible v1.
  fc.tuple(segment, body).map(([id, raw]) => ({ method: 'POST', path: `/api/v1/syncs/${enc(id)}/trigger`, raw })),
  body.map((raw) => ({ method: 'POST', path: '/api/v1/syncs/trigger', raw })),
  unknownSegment.map((id) => ({ method: 'GET', path: `/api/v1/syncs/${enc(id)}` })),
  fc.tuple(segment, badQuery).map(([id, q]) => ({ method: 'GET', path: `/api/v1/syncs/${enc(id)}/runs?${q}` })),
  badQuery.map((q) => ({ method: 'GET', path: `/api/v1/syncs?${q}` })),
  fc.tuple(fc.constantFrom('sources', 'destinations', 'models'), unknownSegment).map(([kind, id]) => ({ method: 'GET', path: `/api/v1/${kind}/${enc(id)}` })),
  fc.tuple(fc.constantFrom('sources', 'destinations', 'models'), badQuery).map(([kind, q]) => ({ method: 'GET', path: `/api/v1/${kind}?${q}` })),
  unknownSegment.map((id) => ({ method: 'POST', path: `/api/v1/sync-sequences/${enc(id)}/trigger` })),
  fc.oneof(unknownSegment, fc.uuid()).map((id) => ({ method: 'GET', path: `/api/v1/sync-sequences/runs/${enc(id)}` })),
);

describe('malformed requests', () => {
  it('get a 4xx with a message naming what is wrong, never a 5xx, and change nothing', async () => {
    const before = await snapshot();
    const texts: string[] = [];
    await fc.assert(
      fc.asyncProperty(requests, async (request) => {
        const answer = await api.call(request.method, request.path, undefined, request.raw === undefined ? {} : { raw: request.raw });
        texts.push(answer.text);
        const where = `${request.method} ${request.path} ${request.raw ?? ''} -> ${answer.status} ${answer.text}`;
        expect(answer.status, where).toBeGreaterThanOrEqual(400);
        expect(answer.status, where).toBeLessThan(500);
        expect(typeof answer.body?.message, where).toBe('string');
        expect(answer.body.message.length, where).toBeGreaterThan(0);
        if (answer.status === 422) {
          expect(answer.body.message).toBe('Validation failed');
          const details = Object.entries(answer.body.details as Record<string, string>);
          expect(details.length, where).toBeGreaterThan(0);
          for (const [field, message] of details) {
            expect(field.length, where).toBeGreaterThan(0);
            expect(message.length, where).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 2500 },
    );
    expect(await snapshot()).toBe(before);
    const all = texts.join('\n') + api.logs.join('\n');
    expect(all).not.toContain(PG_PASSWORD);
    expect(all).not.toContain(api.token);
  });
});

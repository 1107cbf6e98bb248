/**
 * The HubSpot stand-in itself: that it answers like HubSpot's documentation says (shapes, status
 * codes, error bodies, limits, rate-limit headers), refuses what HubSpot refuses, and that its test
 * controls (faults, rate limits, counters, inspection) do what they promise.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_HUBSPOT_SCHEMA,
  HUBSPOT_FAULTS,
  startHubSpotStandIn,
  type HubSpotStandIn,
  type HubSpotStandInOptions,
} from './hubspot-standin.js';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // Answers are HubSpot JSON of many shapes; tests read them loosely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

let standIn: HubSpotStandIn | undefined;

afterEach(async () => {
  await standIn?.close();
  standIn = undefined;
});

async function start(options: HubSpotStandInOptions = {}): Promise<HubSpotStandIn> {
  standIn = await startHubSpotStandIn(options);
  return standIn;
}

async function call(hs: HubSpotStandIn, method: string, path: string, body?: unknown, token: string | null = hs.token): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${hs.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const upsert = (hs: HubSpotStandIn, type: string, inputs: unknown[]) => call(hs, 'POST', `/crm/v3/objects/${type}/batch/upsert`, { inputs });

function contacts(n: number, from = 0): { idProperty: string; id: string; properties: Record<string, string> }[] {
  return Array.from({ length: n }, (_, i) => ({
    idProperty: 'external_id',
    id: `ext-${from + i}`,
    properties: { email: `person${from + i}@example.com`, firstname: `P${from + i}` },
  }));
}

describe('authentication', () => {
  it('refuses a missing or wrong token with the documented 401 body', async () => {
    const hs = await start();
    for (const token of [null, 'pat-na1-wrong']) {
      const answer = await call(hs, 'GET', '/crm/v3/properties/contacts', undefined, token);
      expect(answer.status).toBe(401);
      expect(answer.json).toMatchObject({ status: 'error', category: 'INVALID_AUTHENTICATION' });
      expect(answer.json.correlationId).toMatch(/^[0-9a-f-]{36}$/);
      expect(answer.headers.get('content-type')).toContain('application/json');
    }
    expect(hs.token).toBe('pat-na1-lockstep-test');
  });
});

describe('OAuth', () => {
  const app = { clientId: 'client-1', clientSecret: 'secret-1', refreshToken: 'refresh-1' };
  const tokenRequest = (hs: HubSpotStandIn, fields: Record<string, string>, contentType = 'application/x-www-form-urlencoded') =>
    fetch(`${hs.url}/oauth/v1/token`, { method: 'POST', headers: { 'content-type': contentType }, body: new URLSearchParams(fields).toString() });

  it('exchanges the refresh token for access tokens that expire after their life with EXPIRED_AUTHENTICATION', async () => {
    let clock = Date.UTC(2025, 0, 15, 12);
    const hs = await start({ oauth: app, now: () => clock });
    const answer = await tokenRequest(hs, { grant_type: 'refresh_token', client_id: 'client-1', client_secret: 'secret-1', refresh_token: 'refresh-1' });
    expect(answer.status).toBe(200);
    const tokens = (await answer.json()) as { token_type: string; access_token: string; refresh_token: string; expires_in: number };
    expect(tokens).toMatchObject({ token_type: 'bearer', refresh_token: 'refresh-1', expires_in: 1800 });
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts', undefined, tokens.access_token)).status).toBe(200);
    // The private app's token keeps working beside it.
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(200);
    clock += 1800_000 + 5 * 60_000;
    const expired = await call(hs, 'GET', '/crm/v3/properties/contacts', undefined, tokens.access_token);
    expect(expired.status).toBe(401);
    expect(expired.json).toMatchObject({ status: 'error', category: 'EXPIRED_AUTHENTICATION', message: 'The OAuth token used to make this call expired 5 minute(s) ago.' });
    expect(expired.json.context['expire time']).toEqual([new Date(Date.UTC(2025, 0, 15, 12, 30)).toISOString()]);
    expect(hs.stats().calls['oauth.token']).toBe(1);
  });

  it('has no daily limit for OAuth calls, nor daily headers in their answers', async () => {
    const hs = await start({ oauth: app, rateLimit: { daily: 1 } });
    const answer = await tokenRequest(hs, { grant_type: 'refresh_token', client_id: 'client-1', client_secret: 'secret-1', refresh_token: 'refresh-1' });
    const { access_token: accessToken } = (await answer.json()) as { access_token: string };
    for (let i = 0; i < 3; i++) {
      const oauth = await call(hs, 'GET', '/crm/v3/properties/contacts', undefined, accessToken);
      expect(oauth.status).toBe(200);
      expect(oauth.headers.get('x-hubspot-ratelimit-remaining')).not.toBeNull();
      expect(oauth.headers.get('x-hubspot-ratelimit-daily')).toBeNull();
    }
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(200);
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).json.policyName).toBe('DAILY');
  });

  it('answers an expired access token without daily headers, as every OAuth call', async () => {
    let offset = 0;
    const hs = await start({ oauth: app, now: () => Date.now() + offset });
    const answer = await tokenRequest(hs, { grant_type: 'refresh_token', client_id: 'client-1', client_secret: 'secret-1', refresh_token: 'refresh-1' });
    const { access_token: accessToken } = (await answer.json()) as { access_token: string };
    offset = 31 * 60_000;
    const expired = await call(hs, 'GET', '/crm/v3/properties/contacts', undefined, accessToken);
    expect(expired.status).toBe(401);
    expect(expired.json.category).toBe('EXPIRED_AUTHENTICATION');
    expect(expired.headers.get('x-hubspot-ratelimit-daily')).toBeNull();
  });

  it('refuses a bad refresh token, client id or secret with the status naming it, and a JSON body', async () => {
    const hs = await start({ oauth: app });
    const good = { grant_type: 'refresh_token', client_id: 'client-1', client_secret: 'secret-1', refresh_token: 'refresh-1' };
    for (const [field, status] of [
      ['refresh_token', 'BAD_REFRESH_TOKEN'],
      ['client_id', 'BAD_CLIENT_ID'],
      ['client_secret', 'BAD_CLIENT_SECRET'],
      ['grant_type', 'BAD_GRANT_TYPE'],
    ] as const) {
      const answer = await tokenRequest(hs, { ...good, [field]: 'wrong' });
      expect(answer.status).toBe(400);
      expect(await answer.json()).toMatchObject({ status });
    }
    expect((await tokenRequest(hs, good, 'application/json')).status).toBe(415);
  });
});

describe('scopes', () => {
  it('answers 403 MISSING_SCOPES naming the scopes a call needs that the app was not granted', async () => {
    const hs = await start({ scopes: ['crm.objects.contacts.read', 'crm.objects.contacts.write', 'crm.schemas.companies.read'] });
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(200);
    expect((await call(hs, 'GET', '/crm/v3/properties/companies')).status).toBe(200);
    expect((await upsert(hs, 'contacts', contacts(1))).status).toBe(200);
    const denied = await upsert(hs, 'companies', [{ idProperty: 'external_id', id: 'c1', properties: { name: 'Acme' } }]);
    expect(denied.status).toBe(403);
    expect(denied.json).toMatchObject({ status: 'error', category: 'MISSING_SCOPES', errors: [{ context: { requiredGranularScopes: ['crm.objects.companies.write'] } }] });
    expect(hs.records('companies')).toEqual([]);
    const read = await call(hs, 'GET', '/crm/v3/properties/deals');
    expect(read.json.errors[0].context.requiredGranularScopes).toEqual(['crm.objects.deals.read', 'crm.schemas.deals.read']);
  });
});

describe('routing', () => {
  it('answers 404 for an unknown path and 405 for a known path with the wrong method', async () => {
    const hs = await start();
    expect((await call(hs, 'GET', '/crm/v3/nothing-here')).status).toBe(404);
    expect((await call(hs, 'GET', '/crm/v3/objects/contacts/batch/upsert')).status).toBe(405);
    expect(hs.stats().calls.unknown).toBe(2);
    expect(() => hs.seed('contacts', { email: 'x@example.com', external_id: 'x' })).not.toThrow();
    expect(() => hs.seed('contacts', { email: 'X@example.com' })).toThrow(/already exists/);
  });
});

describe('properties API', () => {
  it('lists the schema with the documented property fields', async () => {
    const hs = await start();
    const answer = await call(hs, 'GET', '/crm/v3/properties/contacts');
    expect(answer.status).toBe(200);
    const byName = new Map((answer.json.results as { name: string }[]).map((p) => [p.name, p]));
    // Upserts match contacts on email, but HubSpot does not list it as a unique-value property.
    expect(byName.get('email')).toMatchObject({ name: 'email', type: 'string', fieldType: 'text', hasUniqueValue: false, label: 'Email' });
    expect(byName.get('firstname')).toMatchObject({ hasUniqueValue: false });
    expect(byName.get('hs_object_id')).toMatchObject({ modificationMetadata: { readOnlyValue: true } });
    const deals = await call(hs, 'GET', '/crm/v3/properties/0-3');
    expect((deals.json.results as { name: string; type: string }[]).find((p) => p.name === 'amount')).toMatchObject({ type: 'number', fieldType: 'number' });
  });

  it('refuses an unknown object type', async () => {
    const hs = await start();
    const answer = await call(hs, 'GET', '/crm/v3/properties/widgets');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ status: 'error', message: 'Unable to infer object type from: widgets' });
  });
});

describe('batch upsert', () => {
  it('creates, then updates, by a unique property and reports new', async () => {
    const hs = await start();
    const created = await upsert(hs, 'contacts', contacts(2));
    expect(created.status).toBe(200);
    expect(created.json).toMatchObject({ status: 'COMPLETE' });
    expect(created.json.startedAt).toEqual(expect.any(String));
    expect(created.json.completedAt).toEqual(expect.any(String));
    expect(created.json.results).toHaveLength(2);
    const first = created.json.results[0];
    expect(first).toMatchObject({ archived: false, new: true, properties: { email: 'person0@example.com', external_id: 'ext-0' } });
    expect(first.id).toMatch(/^\d+$/);
    expect(first.properties.hs_object_id).toBe(first.id);

    const updated = await upsert(hs, 'contacts', [{ idProperty: 'external_id', id: 'ext-0', properties: { lastname: 'Nordin' } }]);
    expect(updated.status).toBe(200);
    expect(updated.json.results[0]).toMatchObject({ id: first.id, new: false, properties: { lastname: 'Nordin', firstname: 'P0' } });
    expect(hs.records('contacts')).toHaveLength(2);
    expect(hs.find('contacts', 'email', 'PERSON0@example.com')?.properties).toEqual({
      email: 'person0@example.com',
      firstname: 'P0',
      lastname: 'Nordin',
      external_id: 'ext-0',
    });
    expect(hs.find('contacts', 'firstname', 'P1')?.id).toMatch(/^\d+$/);
  });

  it('upserts contacts by email and clears a value given as an empty string', async () => {
    const hs = await start();
    await upsert(hs, 'contacts', [{ idProperty: 'email', id: 'ada@example.com', properties: { firstname: 'Ada' } }]);
    const again = await upsert(hs, 'contacts', [{ idProperty: 'email', id: 'ADA@example.com', properties: { firstname: '' } }]);
    expect(again.json.results[0].new).toBe(false);
    expect(hs.records('contacts')).toEqual([expect.objectContaining({ properties: { email: 'ada@example.com' } })]);
  });

  it('refuses more than 100 inputs and records the size it saw', async () => {
    const hs = await start();
    const answer = await upsert(hs, 'contacts', contacts(101));
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ status: 'error', category: 'VALIDATION_ERROR' });
    expect(hs.records('contacts')).toHaveLength(0);
    expect(hs.stats().maxInputsPerCall['objects.batchUpsert']).toBe(101);
    expect((await upsert(hs, 'contacts', contacts(100))).status).toBe(200);
  });

  it('refuses an idProperty without unique values, or one that does not exist', async () => {
    const hs = await start();
    const answer = await upsert(hs, 'contacts', [{ idProperty: 'firstname', id: 'Ada', properties: {} }]);
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ category: 'VALIDATION_ERROR', message: 'Unable to perform update/upsert by non-unique 0-1 property' });
    const unknown = await upsert(hs, 'contacts', [{ idProperty: 'nope', id: 'x', properties: {} }]);
    expect(unknown.status).toBe(400);
    expect(unknown.json.errors[0]).toMatchObject({ code: 'PROPERTY_DOESNT_EXIST' });
  });

  it('refuses a batch with an unknown property, as a whole, when inputs carry no trace ids', async () => {
    const hs = await start();
    const answer = await upsert(hs, 'companies', [
      { idProperty: 'external_id', id: 'c-1', properties: { name: 'Acme' } },
      { idProperty: 'external_id', id: 'c-2', properties: { testproperty: 'x' } },
    ]);
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ status: 'error', category: 'VALIDATION_ERROR' });
    expect(answer.json.message).toMatch(/^Property values were not valid: \[/);
    const listed = JSON.parse((answer.json.message as string).slice('Property values were not valid: '.length));
    expect(listed[0]).toMatchObject({ isValid: false, error: 'PROPERTY_DOESNT_EXIST', name: 'testproperty' });
    expect(answer.json.errors[0]).toEqual({ message: 'Property "testproperty" does not exist', code: 'PROPERTY_DOESNT_EXIST', context: { propertyName: ['testproperty'] } });
    expect(hs.records('companies')).toHaveLength(0);
  });

  it('answers 207 naming the trace id of each failing input, and writes the others', async () => {
    const hs = await start();
    const answer = await upsert(hs, 'deals', [
      { idProperty: 'external_id', id: 'd-1', properties: { dealname: 'Good', amount: '1200.50' }, objectWriteTraceId: 't-1' },
      { idProperty: 'external_id', id: 'd-2', properties: { dealname: 'Bad', amount: 'lots' }, objectWriteTraceId: 't-2' },
      { idProperty: 'external_id', id: 'd-3', properties: { dealname: 'Also good', amount: 7 }, objectWriteTraceId: 't-3' },
    ]);
    expect(answer.status).toBe(207);
    expect(answer.json).toMatchObject({ status: 'COMPLETE', numErrors: 1 });
    expect(answer.json.errors).toEqual([
      expect.objectContaining({ status: 'error', category: 'VALIDATION_ERROR', context: expect.objectContaining({ objectWriteTraceId: ['t-2'] }) }),
    ]);
    expect(answer.json.results.map((r: { objectWriteTraceId: string }) => r.objectWriteTraceId)).toEqual(['t-1', 't-3']);
    expect(hs.records('deals').map((r) => r.properties.dealname).sort()).toEqual(['Also good', 'Good']);
    expect(hs.find('deals', 'external_id', 'd-3')?.properties.amount).toBe('7');
  });

  it('fails the whole batch when trace ids repeat, as multi-status needs a unique one per input', async () => {
    const hs = await start();
    const answer = await upsert(hs, 'deals', [
      { idProperty: 'external_id', id: 'd-1', properties: { dealname: 'Good' }, objectWriteTraceId: 'same' },
      { idProperty: 'external_id', id: 'd-2', properties: { dealname: 'Bad', amount: 'lots' }, objectWriteTraceId: 'same' },
    ]);
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ status: 'error', category: 'VALIDATION_ERROR' });
    expect(hs.records('deals')).toEqual([]);
  });

  it('refuses an invalid email; contacts upserted by email never get a partial result', async () => {
    const hs = await start();
    const byExternalId = await upsert(hs, 'contacts', [
      { idProperty: 'external_id', id: 'e-1', properties: { email: 'not-an-email' }, objectWriteTraceId: 'a' },
      { idProperty: 'external_id', id: 'e-2', properties: { email: 'fine@example.com' }, objectWriteTraceId: 'b' },
    ]);
    expect(byExternalId.status).toBe(207);
    expect(byExternalId.json.errors[0].message).toContain('INVALID_EMAIL');

    // Quoted local parts and domains not ending in a top-level domain are not taken ("How does HubSpot validate email addresses?").
    for (const email of ['"ann"@example.com', 'ann@example.c0m', 'ann@localhost']) {
      const refused = await upsert(hs, 'contacts', [{ idProperty: 'external_id', id: 'e-3', properties: { email } }]);
      expect(refused.status, email).toBe(400);
      expect(refused.json.message).toContain('INVALID_EMAIL');
    }
    expect((await upsert(hs, 'contacts', [{ idProperty: 'external_id', id: 'e-3', properties: { email: 'josé@exämple.xn--p1ai' } }])).status).toBe(200);

    const byEmail = await upsert(hs, 'contacts', [
      { idProperty: 'email', id: 'new@example.com', properties: {}, objectWriteTraceId: 'c' },
      { idProperty: 'email', id: 'broken@', properties: {}, objectWriteTraceId: 'd' },
    ]);
    expect(byEmail.status).toBe(400);
    expect(hs.find('contacts', 'email', 'new@example.com')).toBeUndefined();
  });

  it('refuses text longer than 65,536 characters, in a property or as the idProperty value, and takes 65,536', async () => {
    const hs = await start();
    const long = 'x'.repeat(65_537);
    const answer = await upsert(hs, 'contacts', [
      { idProperty: 'external_id', id: 'e-1', properties: { firstname: long }, objectWriteTraceId: 'a' },
      { idProperty: 'external_id', id: long, properties: {}, objectWriteTraceId: 'b' },
      { idProperty: 'external_id', id: 'e-3', properties: { firstname: 'y'.repeat(65_536) }, objectWriteTraceId: 'c' },
    ]);
    expect(answer.status).toBe(207);
    expect(answer.json.errors.map((e: { category: string; context: { objectWriteTraceId: string[] } }) => [e.category, e.context.objectWriteTraceId[0]])).toEqual([
      ['VALIDATION_ERROR', 'a'],
      ['VALIDATION_ERROR', 'b'],
    ]);
    expect(answer.json.errors[0].message).toContain('firstname');
    expect(hs.records('contacts').map((r) => r.properties.external_id)).toEqual(['e-3']);
  });

  it('refuses a unique value that belongs to another record, and duplicate ids in one batch', async () => {
    const hs = await start();
    const owner = hs.seed('contacts', { email: 'taken@example.com', external_id: 'owner' });
    const conflict = await upsert(hs, 'contacts', [
      { idProperty: 'external_id', id: 'other', properties: { email: 'taken@example.com' }, objectWriteTraceId: 'x' },
    ]);
    expect(conflict.status).toBe(207);
    expect(conflict.json.errors[0]).toMatchObject({
      category: 'CONFLICT',
      message: `Contact already exists. Existing ID: ${owner.id}`,
      context: { existingId: [owner.id], objectWriteTraceId: ['x'] },
    });
    const duplicate = await upsert(hs, 'contacts', [
      { idProperty: 'external_id', id: 'same', properties: {} },
      { idProperty: 'external_id', id: 'same', properties: {} },
    ]);
    expect(duplicate.status).toBe(400);
    expect(duplicate.json.message).toContain('Duplicate IDs');
  });

  it('refuses malformed bodies and missing required fields', async () => {
    const hs = await start();
    const res = await fetch(`${hs.url}/crm/v3/objects/contacts/batch/upsert`, {
      method: 'POST',
      headers: { authorization: `Bearer ${hs.token}`, 'content-type': 'application/json' },
      body: '{"inputs": [',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ category: 'VALIDATION_ERROR' });
    const missing = await upsert(hs, 'contacts', [{ id: 'x' }]);
    expect(missing.status).toBe(400);
    expect(missing.json.message).toContain('Some required fields were not set');
  });

  it('supports custom objects by short-hand name, fully qualified name and object type id, not by base name', async () => {
    const hs = await start({
      portalId: 345,
      schema: { ...DEFAULT_HUBSPOT_SCHEMA, pets: [{ name: 'pet_id', type: 'string', hasUniqueValue: true }, { name: 'kind', type: 'enumeration', options: ['cat', 'dog'] }] },
    });
    expect((await call(hs, 'GET', '/crm/v3/properties/p_pets')).status).toBe(200);
    const byBaseName = await call(hs, 'GET', '/crm/v3/properties/pets');
    expect(byBaseName.status).toBe(400);
    expect(byBaseName.json.message).toBe('Unable to infer object type from: pets');
    expect((await upsert(hs, 'pets', [{ idProperty: 'pet_id', id: 'p1', properties: { kind: 'cat' } }])).status).toBe(400);
    // The first custom object gets object type id 2-100.
    const typeId = '2-100';
    expect((await upsert(hs, 'p_pets', [{ idProperty: 'pet_id', id: 'p1', properties: { kind: 'cat' } }])).status).toBe(200);
    expect((await upsert(hs, typeId, [{ idProperty: 'pet_id', id: 'p1', properties: { kind: 'dog' } }])).json.results[0].new).toBe(false);
    expect((await upsert(hs, 'p345_pets', [{ idProperty: 'pet_id', id: 'p1', properties: { kind: 'dog' } }])).json.results[0].new).toBe(false);
    const badOption = await upsert(hs, 'p_pets', [{ idProperty: 'pet_id', id: 'p2', properties: { kind: 'fish' } }]);
    expect(badOption.status).toBe(400);
    expect(hs.records('pets')).toEqual([expect.objectContaining({ properties: { pet_id: 'p1', kind: 'dog' } })]);
  });
  it('takes the documented date, datetime, boolean and multiple checkboxes forms, and refuses others', async () => {
    const hs = await start({
      schema: {
        ...DEFAULT_HUBSPOT_SCHEMA,
        companies: [
          { name: 'external_id', type: 'string', hasUniqueValue: true },
          { name: 'founded', type: 'date' },
          { name: 'renewed_at', type: 'datetime' },
          { name: 'active', type: 'bool' },
          { name: 'regions', type: 'enumeration', fieldType: 'checkbox', options: ['emea', 'amer', 'apac'] },
          { name: 'tier', type: 'enumeration', options: ['gold', 'silver'] },
          { name: 'stage', type: 'enumeration', options: [{ value: 'customer', label: 'Customer' }] },
        ],
      },
    });
    const properties = await call(hs, 'GET', '/crm/v3/properties/companies');
    const byName = new Map((properties.json.results as { name: string }[]).map((p) => [p.name, p]));
    expect(byName.get('regions')).toMatchObject({ type: 'enumeration', fieldType: 'checkbox' });
    expect(byName.get('tier')).toMatchObject({ fieldType: 'select' });
    expect(byName.get('stage')).toMatchObject({ options: [expect.objectContaining({ value: 'customer', label: 'Customer' })] });
    expect(byName.get('active')).toMatchObject({ fieldType: 'booleancheckbox', options: [expect.objectContaining({ value: 'true' }), expect.objectContaining({ value: 'false' })] });

    const good = [
      { founded: '2024-05-01', renewed_at: '2024-05-01T10:15:00.123Z', active: 'true', regions: 'emea;apac', tier: 'gold' },
      { founded: '1714521600000', renewed_at: '1714558500123', active: 'FALSE', regions: 'amer', tier: '' },
      { renewed_at: '2024-05-01T12:15:00+02:00' },
    ];
    for (const [n, values] of good.entries()) {
      const answer = await upsert(hs, 'companies', [{ idProperty: 'external_id', id: `g${n}`, properties: values }]);
      expect(answer.status, JSON.stringify(values)).toBe(200);
    }
    expect(hs.find('companies', 'external_id', 'g0')?.properties.regions).toBe('emea;apac');

    const bad: Array<[Record<string, string>, string]> = [
      [{ founded: '1714558500123' }, '1714558500123 is at 10:15:00.123 UTC, not midnight!'],
      [{ founded: '2024-05-01T00:00:00.000Z' }, 'was not a valid date'],
      [{ renewed_at: '2024-05-01 10:15:00' }, 'was not a valid datetime'],
      [{ renewed_at: 'May 1 2024' }, 'was not a valid datetime'],
      [{ active: '1' }, 'was not a valid boolean'],
      // Values of every type but string are refused with whitespace (or an invisible character) at either end.
      [{ tier: 'gold ' }, 'includes leading or trailing whitespace.'],
      [{ active: '\u00a0true' }, 'LEADING_TRAILING_WHITESPACE'],
      [{ regions: 'emea;apac\u200b' }, 'LEADING_TRAILING_WHITESPACE'],
      [{ regions: '["emea","apac"]' }, 'was not one of the allowed options'],
      [{ regions: 'emea,apac' }, 'was not one of the allowed options'],
      [{ tier: 'gold;silver' }, 'was not one of the allowed options'],
      // The API takes an option's value, not its label.
      [{ stage: 'Customer' }, 'Customer was not one of the allowed options: [customer]'],
    ];
    for (const [values, message] of bad) {
      const answer = await upsert(hs, 'companies', [{ idProperty: 'external_id', id: 'bad', properties: values }]);
      expect(answer.status, JSON.stringify(values)).toBe(400);
      expect(answer.json.message).toContain(message);
    }
    expect(hs.find('companies', 'external_id', 'bad')).toBeUndefined();
  });
});

describe('batch read and archive', () => {
  it('reads by record id or unique property and names the missing ids in a 207', async () => {
    const hs = await start();
    const a = hs.seed('companies', { name: 'Acme', domain: 'acme.example', external_id: 'A' });
    const ok = await call(hs, 'POST', '/crm/v3/objects/companies/batch/read', { inputs: [{ id: a.id }], properties: ['name'] });
    expect(ok.status).toBe(200);
    expect(ok.json.results[0]).toMatchObject({ id: a.id, archived: false, properties: { name: 'Acme', hs_object_id: a.id } });
    expect(ok.json.results[0].properties.domain).toBeUndefined();

    const partial = await call(hs, 'POST', '/crm/v3/objects/companies/batch/read', { idProperty: 'external_id', inputs: [{ id: 'A' }, { id: 'missing' }], properties: [] });
    expect(partial.status).toBe(207);
    expect(partial.json).toMatchObject({ status: 'COMPLETE', numErrors: 1 });
    expect(partial.json.errors[0]).toMatchObject({ status: 'error', category: 'OBJECT_NOT_FOUND', context: { ids: ['missing'] } });
    expect(partial.json.errors[0].message).toContain('COMPANY');
    expect(partial.json.results).toHaveLength(1);
  });

  it('archives with 204, refuses more than 100, and drops the record and its associations', async () => {
    const hs = await start();
    const company = hs.seed('companies', { name: 'Acme' });
    const contact = hs.seed('contacts', { email: 'a@acme.example' });
    await call(hs, 'PUT', `/crm/v4/objects/contacts/${contact.id}/associations/default/companies/${company.id}`);
    expect(hs.associations('companies', company.id)).toHaveLength(1);

    const tooMany = await call(hs, 'POST', '/crm/v3/objects/contacts/batch/archive', { inputs: Array.from({ length: 101 }, (_, i) => ({ id: String(i) })) });
    expect(tooMany.status).toBe(400);
    const archived = await call(hs, 'POST', '/crm/v3/objects/contacts/batch/archive', { inputs: [{ id: contact.id }, { id: '999999' }] });
    expect(archived.status).toBe(204);
    expect(archived.text).toBe('');
    expect(hs.records('contacts')).toHaveLength(0);
    expect(hs.find('contacts', 'email', 'a@acme.example')).toBeUndefined();
    expect(hs.associations('companies', company.id)).toEqual([]);
  });
});

describe('associations v4', () => {
  it('batch-creates with the documented shape, visible from both records with the inverse type', async () => {
    const hs = await start();
    const contact = hs.seed('contacts', { email: 'c@example.com' });
    const company = hs.seed('companies', { name: 'Co' });
    const answer = await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/create', {
      inputs: [{ from: { id: contact.id }, to: { id: company.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }, { associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 1 }] }],
    });
    expect(answer.status).toBe(201);
    expect(answer.json).toMatchObject({ status: 'COMPLETE' });
    expect(answer.json.results).toEqual([{ fromObjectTypeId: '0-1', fromObjectId: contact.id, toObjectTypeId: '0-2', toObjectId: company.id, labels: ['Primary'] }]);
    expect(hs.associations('contacts', contact.id)).toEqual([
      {
        toObjectType: 'companies',
        toObjectId: company.id,
        types: [
          { associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 },
          { associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 1 },
        ],
      },
    ]);
    expect(hs.associations('company', company.id)[0]?.types.map((t) => t.associationTypeId)).toEqual([280, 2]);
  });

  it('answers 207 for unknown record ids and 400 for a type that does not exist between the objects', async () => {
    const hs = await start();
    const deal = hs.seed('deals', { dealname: 'D' });
    const company = hs.seed('companies', { name: 'Co' });
    const answer = await call(hs, 'POST', '/crm/v4/associations/deals/companies/batch/create', {
      inputs: [
        { from: { id: deal.id }, to: { id: company.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 341 }] },
        { from: { id: deal.id }, to: { id: '424242' }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 341 }] },
      ],
    });
    expect(answer.status).toBe(207);
    expect(answer.json).toMatchObject({ numErrors: 1, errors: [{ status: 'error', context: { toObjectId: ['424242'] } }] });
    expect(answer.json.results).toHaveLength(1);
    expect(hs.associations('deals', deal.id)[0]?.types[0]?.associationTypeId).toBe(341);

    const wrongType = await call(hs, 'POST', '/crm/v4/associations/deals/companies/batch/create', {
      inputs: [{ from: { id: deal.id }, to: { id: company.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }] }],
    });
    expect(wrongType.status).toBe(400);
  });

  it('adds the unlabeled type with a labelled one, and keeps one Primary company per record', async () => {
    const hs = await start();
    const contact = hs.seed('contacts', { email: 'c@example.com' });
    const [acme, globex] = [hs.seed('companies', { name: 'Acme' }), hs.seed('companies', { name: 'Globex' })];
    const primary = (company: string) => ({ from: { id: contact.id }, to: { id: company }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 1 }] });
    expect((await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/create', { inputs: [primary(acme.id)] })).status).toBe(201);
    expect((await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/create', { inputs: [primary(globex.id)] })).status).toBe(201);
    const types = (id: string) => hs.associations('contacts', contact.id).find((a) => a.toObjectId === id)?.types.map((t) => t.associationTypeId);
    expect(types(acme.id)).toEqual([279]);
    expect(types(globex.id)).toEqual([1, 279]);
    expect(hs.associations('companies', acme.id)[0]?.types.map((t) => t.associationTypeId)).toEqual([280]);
  });

  it('batch-reads a record\'s associations with their types, and removes labels or whole associations with 204', async () => {
    const hs = await start();
    const [c1, c2] = [hs.seed('contacts', { email: 'a@example.com' }), hs.seed('contacts', { email: 'b@example.com' })];
    const [acme, globex] = [hs.seed('companies', { name: 'Acme' }), hs.seed('companies', { name: 'Globex' })];
    const type = (associationTypeId: number) => ({ associationCategory: 'HUBSPOT_DEFINED', associationTypeId });
    await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/create', {
      inputs: [
        { from: { id: c1.id }, to: { id: acme.id }, types: [type(1)] },
        { from: { id: c1.id }, to: { id: globex.id }, types: [type(279)] },
        { from: { id: c2.id }, to: { id: acme.id }, types: [type(1)] },
      ],
    });
    const read = await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/read', { inputs: [{ id: c1.id }, { id: '31337' }] });
    expect(read.status).toBe(200);
    expect(read.json.results).toEqual([
      {
        from: { id: c1.id },
        to: [
          {
            toObjectId: Number(acme.id),
            associationTypes: [
              { category: 'HUBSPOT_DEFINED', typeId: 1, label: 'Primary' },
              { category: 'HUBSPOT_DEFINED', typeId: 279, label: null },
            ],
          },
          { toObjectId: Number(globex.id), associationTypes: [{ category: 'HUBSPOT_DEFINED', typeId: 279, label: null }] },
        ],
      },
    ]);

    // A label goes alone; the unlabeled type takes every label between the two records with it.
    const labels = await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/labels/archive', {
      inputs: [{ from: { id: c1.id }, to: { id: acme.id }, types: [type(1)] }],
    });
    expect(labels.status).toBe(204);
    expect(hs.associations('contacts', c1.id).map((a) => a.types.map((t) => t.associationTypeId))).toEqual([[279], [279]]);
    await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/labels/archive', { inputs: [{ from: { id: c2.id }, to: { id: acme.id }, types: [type(279)] }] });
    expect(hs.associations('contacts', c2.id)).toEqual([]);
    expect(hs.associations('companies', acme.id).map((a) => a.toObjectId)).toEqual([c1.id]);

    const all = await call(hs, 'POST', '/crm/v4/associations/contacts/companies/batch/archive', { inputs: [{ from: { id: c1.id }, to: [{ id: acme.id }, { id: globex.id }] }] });
    expect(all.status).toBe(204);
    expect(hs.associations('contacts', c1.id)).toEqual([]);
    expect(hs.associations('companies', globex.id)).toEqual([]);
    expect(hs.stats().calls['associations.batchArchiveLabels']).toBe(2);
  });

  it('creates the default association with PUT', async () => {
    const hs = await start();
    const deal = hs.seed('deals', { dealname: 'D' });
    const contact = hs.seed('contacts', { email: 'd@example.com' });
    const answer = await call(hs, 'PUT', `/crm/v4/objects/deal/${deal.id}/associations/default/contact/${contact.id}`);
    expect(answer.status).toBe(200);
    expect(answer.json.results[0]).toEqual({ from: { id: deal.id }, to: { id: contact.id }, associationSpec: { associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 3 } });
    expect(hs.associations('contacts', contact.id)[0]?.types[0]?.associationTypeId).toBe(4);
    const missing = await call(hs, 'PUT', `/crm/v4/objects/deals/${deal.id}/associations/default/contacts/31337`);
    expect(missing.status).toBe(404);
  });
});

describe('rate limits', () => {
  it('sends the rate-limit headers on every answer', async () => {
    const hs = await start();
    const answer = await call(hs, 'GET', '/crm/v3/properties/contacts');
    expect(answer.headers.get('x-hubspot-ratelimit-max')).toBe('190');
    expect(answer.headers.get('x-hubspot-ratelimit-remaining')).toBe('189');
    expect(answer.headers.get('x-hubspot-ratelimit-interval-milliseconds')).toBe('10000');
    expect(answer.headers.get('x-hubspot-ratelimit-daily')).toBe('650000');
    expect(answer.headers.get('x-hubspot-ratelimit-daily-remaining')).toBe('649999');
    expect(answer.headers.get('x-hubspot-ratelimit-secondly')).toBe('19');
    expect(answer.headers.get('x-hubspot-ratelimit-secondly-remaining')).toBe('18');
    expect(answer.headers.get('x-hubspot-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 429 over the rolling window, without Retry-After unless asked, and recovers as it rolls', async () => {
    let clock = Date.UTC(2025, 0, 15, 12);
    const hs = await start({ now: () => clock });
    hs.setRateLimit({ max: 3, intervalMs: 10_000 });
    for (let i = 0; i < 3; i++) expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
    const limited = await call(hs, 'GET', '/crm/v3/properties/deals');
    expect(limited.status).toBe(429);
    expect(limited.json).toMatchObject({ status: 'error', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' });
    expect(limited.json.correlationId).toEqual(expect.any(String));
    expect(limited.headers.get('x-hubspot-ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('retry-after')).toBeNull();
    expect(hs.stats().rateLimited).toBe(1);
    clock += 10_001;
    expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
  });

  it('sends Retry-After when the option is on, and enforces the daily limit', async () => {
    let clock = Date.UTC(2025, 0, 15, 23, 59, 0);
    const hs = await start({ now: () => clock, retryAfter: true, rateLimit: { max: 1, daily: 2 } });
    expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
    const limited = await call(hs, 'GET', '/crm/v3/properties/deals');
    expect(limited.headers.get('retry-after')).toBe('10');
    clock += 10_000;
    expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
    clock += 10_000;
    const daily = await call(hs, 'GET', '/crm/v3/properties/deals');
    expect(daily.status).toBe(429);
    expect(daily.json).toMatchObject({ policyName: 'DAILY', message: 'You have reached your daily limit.' });
    expect(daily.headers.get('x-hubspot-ratelimit-daily-remaining')).toBe('0');
    clock = Date.UTC(2025, 0, 16, 0, 0, 1);
    expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
  });
});

describe('daily limit', () => {
  it('resets at midnight in the portal\'s time zone, and says so in Retry-After', async () => {
    // 23:00 in New York is 04:00 UTC the next day: a UTC reset would already have passed.
    let clock = Date.UTC(2025, 0, 16, 4, 0, 0);
    const hs = await start({ now: () => clock, retryAfter: true, timeZone: 'America/New_York', rateLimit: { daily: 1 } });
    expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
    clock = Date.UTC(2025, 0, 16, 4, 30, 0);
    const spent = await call(hs, 'GET', '/crm/v3/properties/deals');
    expect(spent.status).toBe(429);
    expect(spent.json.policyName).toBe('DAILY');
    expect(spent.headers.get('retry-after')).toBe(String(30 * 60));
    clock = Date.UTC(2025, 0, 16, 5, 0, 1);
    expect((await call(hs, 'GET', '/crm/v3/properties/deals')).status).toBe(200);
  });
});

describe('faults', () => {
  it('serves a 503, an HTML page on 200, and truncated JSON, then answers normally', async () => {
    const hs = await start();
    hs.failNext(1, HUBSPOT_FAULTS.unavailable);
    hs.failNext(1, HUBSPOT_FAULTS.htmlOnSuccess);
    hs.failNext(1, HUBSPOT_FAULTS.truncatedJson);
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(503);
    const html = await call(hs, 'GET', '/crm/v3/properties/contacts');
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toContain('text/html');
    const truncated = await call(hs, 'GET', '/crm/v3/properties/contacts');
    expect(truncated.status).toBe(200);
    expect(() => JSON.parse(truncated.text)).toThrow();
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(200);
    expect(hs.stats().faultsServed).toBe(3);
    expect(hs.stats().calls['properties.list']).toBe(4);
  });

  it('serves the documented 423 Locked and 477 Migration in Progress (with Retry-After)', async () => {
    const hs = await start();
    hs.failNext(1, HUBSPOT_FAULTS.locked);
    hs.failNext(1, HUBSPOT_FAULTS.migrating);
    expect((await upsert(hs, 'contacts', contacts(1))).status).toBe(423);
    const migrating = await upsert(hs, 'contacts', contacts(1));
    expect(migrating.status).toBe(477);
    expect(migrating.headers.get('retry-after')).toBe('3600');
    expect(hs.records('contacts')).toHaveLength(0);
  });

  it('resets the connection or never answers', async () => {
    const hs = await start();
    hs.failNext(1, HUBSPOT_FAULTS.connectionReset);
    await expect(call(hs, 'GET', '/crm/v3/properties/contacts')).rejects.toThrow();
    hs.failNext(1, HUBSPOT_FAULTS.noAnswer);
    const hung = fetch(`${hs.url}/crm/v3/properties/contacts`, { headers: { authorization: `Bearer ${hs.token}` }, signal: AbortSignal.timeout(300) });
    await expect(hung).rejects.toThrow();
  });

  it('can lose the answer after the write happened, and target one endpoint', async () => {
    const hs = await start();
    hs.failNext(1, { ...HUBSPOT_FAULTS.connectionReset, when: 'after', endpoint: 'objects.batchUpsert' });
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(200);
    await expect(upsert(hs, 'contacts', contacts(1))).rejects.toThrow();
    expect(hs.find('contacts', 'external_id', 'ext-0')).toBeDefined();
    const custom = { status: 502, body: { message: 'bad gateway' }, headers: { 'x-test': 'yes' } };
    hs.failNext(2, custom);
    const first = await call(hs, 'GET', '/crm/v3/properties/contacts');
    expect(first.status).toBe(502);
    expect(first.json).toEqual({ message: 'bad gateway' });
    expect(first.headers.get('x-test')).toBe('yes');
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(502);
    expect((await call(hs, 'GET', '/crm/v3/properties/contacts')).status).toBe(200);
  });
});

describe('scale', () => {
  it('takes 20,000 records in batches of 100 without slowing down, and finds them by index', async () => {
    const hs = await start({ rateLimit: { max: 1_000_000 } });
    const started = performance.now();
    for (let batch = 0; batch < 200; batch++) {
      const answer = await upsert(hs, 'contacts', contacts(100, batch * 100));
      expect(answer.status).toBe(200);
    }
    const elapsed = performance.now() - started;
    expect(hs.records('contacts')).toHaveLength(20_000);
    expect(hs.find('contacts', 'external_id', 'ext-19999')?.properties.email).toBe('person19999@example.com');
    expect(hs.stats().calls['objects.batchUpsert']).toBe(200);
    expect(hs.stats().maxInputsPerCall['objects.batchUpsert']).toBe(100);
    // Generous bound: quadratic work would take far longer than this on any machine.
    expect(elapsed).toBeLessThan(30_000);
  });
});

/**
 * The Salesforce stand-in itself: that it answers like Salesforce's documentation says (shapes, status
 * codes, error bodies, limits, headers), refuses what Salesforce refuses, and that its test controls
 * (faults, API limit, token expiry, counters, inspection) do what they promise.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import {
  DEFAULT_SALESFORCE_SCHEMA,
  startSalesforceStandIn,
  type SalesforceStandIn,
  type SalesforceStandInOptions,
} from './salesforce-standin.js';

const V = '/services/data/v61.0';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // Answers are Salesforce JSON of many shapes; tests read them loosely.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

let standIn: SalesforceStandIn | undefined;

afterEach(async () => {
  await standIn?.close();
  standIn = undefined;
});

async function start(options: SalesforceStandInOptions = {}): Promise<SalesforceStandIn> {
  standIn = await startSalesforceStandIn(options);
  return standIn;
}

async function requestToken(sf: SalesforceStandIn, fields: Record<string, string>): Promise<Answer> {
  const res = await fetch(`${sf.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  return answer(res);
}

async function login(sf: SalesforceStandIn): Promise<string> {
  const res = await requestToken(sf, { grant_type: 'client_credentials', client_id: sf.clientId, client_secret: sf.clientSecret });
  expect(res.status).toBe(200);
  return res.json.access_token as string;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

interface CallOptions {
  body?: unknown;
  contentType?: string;
  token?: string | null;
}

async function call(sf: SalesforceStandIn, token: string | null, method: string, path: string, options: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  }
  return answer(await fetch(`${sf.url}${path}`, { method, headers, body }));
}

function upsertBody(object: string, records: Array<Record<string, unknown>>, allOrNone = false): unknown {
  return { allOrNone, records: records.map((r) => ({ attributes: { type: object }, ...r })) };
}

async function upsert(sf: SalesforceStandIn, token: string, object: string, records: Array<Record<string, unknown>>, allOrNone = false): Promise<Answer> {
  return call(sf, token, 'PATCH', `${V}/composite/sobjects/${object}/External_Id__c`, { body: upsertBody(object, records, allOrNone) });
}

const query = (sf: SalesforceStandIn, token: string, soql: string): Promise<Answer> =>
  call(sf, token, 'GET', `${V}/query?q=${encodeURIComponent(soql)}`);

/** The checksum Salesforce appends to a 15-character id, computed independently of the stand-in. */
function expectedSuffix(id15: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
  return [0, 1, 2]
    .map((chunk) => {
      let bits = 0;
      for (let i = 0; i < 5; i++) if (/[A-Z]/.test(id15[chunk * 5 + i] ?? '')) bits += 1 << i;
      return alphabet[bits];
    })
    .join('');
}

describe('OAuth 2.0 client credentials flow', () => {
  it('issues a Bearer token whose instance_url is the stand-in', async () => {
    const sf = await start();
    const res = await requestToken(sf, { grant_type: 'client_credentials', client_id: 'lockstep-test-client', client_secret: 'lockstep-test-secret' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ token_type: 'Bearer', instance_url: sf.url });
    expect(res.json.access_token).toEqual(expect.any(String));
    expect(res.json.id).toMatch(new RegExp(`^${sf.url}/id/00D\\w{15}/005\\w{15}$`));
    expect(res.json.issued_at).toMatch(/^\d{13}$/);
    expect(res.json.signature).toEqual(expect.any(String));
  });

  it('refuses a wrong client id, a wrong secret and another grant type with the documented 400 bodies', async () => {
    const sf = await start({ clientId: 'id-1', clientSecret: 'secret-1' });
    const wrongId = await requestToken(sf, { grant_type: 'client_credentials', client_id: 'nope', client_secret: 'secret-1' });
    expect([wrongId.status, wrongId.json]).toEqual([400, { error: 'invalid_client_id', error_description: 'client identifier invalid' }]);
    const wrongSecret = await requestToken(sf, { grant_type: 'client_credentials', client_id: 'id-1', client_secret: 'nope' });
    expect([wrongSecret.status, wrongSecret.json]).toEqual([400, { error: 'invalid_client', error_description: 'invalid client credentials' }]);
    const password = await requestToken(sf, { grant_type: 'password', client_id: 'id-1', client_secret: 'secret-1' });
    expect([password.status, password.json]).toEqual([400, { error: 'unsupported_grant_type', error_description: 'grant type not supported' }]);
  });

  it('answers 401 INVALID_SESSION_ID without a token, with an unknown one and after expireTokens()', async () => {
    const sf = await start();
    const token = await login(sf);
    const expected = [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }];
    for (const bad of [null, 'not-a-token']) {
      const res = await call(sf, bad, 'GET', `${V}/sobjects/Account/describe`);
      expect([res.status, res.json]).toEqual([401, expected]);
    }
    expect((await call(sf, token, 'GET', `${V}/sobjects/Account/describe`)).status).toBe(200);
    sf.expireTokens();
    const expired = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect([expired.status, expired.json]).toEqual([401, expected]);
    expect((await call(sf, await login(sf), 'GET', `${V}/sobjects/Account/describe`)).status).toBe(200);
  });
});

describe('API request limit', () => {
  it('reports api-usage=N/LIMIT on every data answer and refuses calls past the limit with 403', async () => {
    const sf = await start({ apiLimit: 2 });
    const token = await login(sf);
    const first = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect(first.headers.get('sforce-limit-info')).toBe('api-usage=1/2');
    const missing = await call(sf, token, 'GET', `${V}/sobjects/Nope/describe`);
    expect(missing.headers.get('sforce-limit-info')).toBe('api-usage=2/2');
    const over = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect([over.status, over.json]).toEqual([403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]]);
    expect(over.headers.get('sforce-limit-info')).toBe('api-usage=3/2');
    sf.resetApiUsage();
    sf.setApiLimit(100);
    const again = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect([again.status, again.headers.get('sforce-limit-info')]).toEqual([200, 'api-usage=1/100']);
  });
});

describe('Versions', () => {
  it('lists the versions the org serves without a token, and 404s a data path under another version', async () => {
    const sf = await start({ apiVersions: ['61.0', '62.0'] });
    const versions = await call(sf, null, 'GET', '/services/data/');
    expect([versions.status, versions.json]).toEqual([
      200,
      [
        { label: "Summer '24", url: '/services/data/v61.0', version: '61.0' },
        { label: "Winter '25", url: '/services/data/v62.0', version: '62.0' },
      ],
    ]);
    const token = await login(sf);
    expect((await call(sf, token, 'GET', '/services/data/v62.0/sobjects/Account/describe')).status).toBe(200);
    const other = await call(sf, token, 'GET', '/services/data/v99.0/sobjects/Account/describe');
    expect([other.status, other.json]).toEqual([404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]]);
  });

  it('404s a resource under a version older than the one it came in: Collections upsert 46.0, Collections 42.0, Bulk API 2.0 41.0', async () => {
    const sf = await start();
    const token = await login(sf);
    const notFound = [404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]];
    const body = upsertBody('Account', [{ Name: 'Acme', External_Id__c: 'A-1' }]);
    const upsertUnder = async (version: string) => {
      const res = await call(sf, token, 'PATCH', `/services/data/v${version}/composite/sobjects/Account/External_Id__c`, { body });
      return [res.status, res.json];
    };
    expect(await upsertUnder('45.0')).toEqual(notFound);
    expect((await upsertUnder('46.0'))[0]).toBe(200);
    const deleteUnder = async (version: string) => (await call(sf, token, 'DELETE', `/services/data/v${version}/composite/sobjects?ids=001000000000001AAA`)).status;
    expect([await deleteUnder('41.0'), await deleteUnder('42.0')]).toEqual([404, 200]);
    const job = { object: 'Account', operation: 'insert' };
    const createUnder = async (version: string) => (await call(sf, token, 'POST', `/services/data/v${version}/jobs/ingest`, { body: job })).status;
    expect([await createUnder('40.0'), await createUnder('41.0')]).toEqual([404, 200]);
    expect((await call(sf, token, 'GET', '/services/data/v31.0/sobjects/Account/describe')).status).toBe(200);
  });
});

describe('describe', () => {
  it('lists the sObjects (Describe Global) and the fields with their documented properties, and 404s an unknown object', async () => {
    const sf = await start();
    const token = await login(sf);
    const res = await call(sf, token, 'GET', `${V}/sobjects/Contact/describe`);
    expect(res.status).toBe(200);
    expect(res.json.name).toBe('Contact');
    const byName = Object.fromEntries((res.json.fields as Array<{ name: string }>).map((f) => [f.name, f]));
    expect(byName['Id']).toMatchObject({ type: 'id', idLookup: true, createable: false, updateable: false });
    expect(byName['External_Id__c']).toMatchObject({ type: 'string', externalId: true, idLookup: true, nillable: true, createable: true });
    expect(byName['LastName']).toMatchObject({ nillable: false, length: 80 });
    // Text lengths as Salesforce's object reference gives them.
    expect([byName['FirstName'], byName['Email'], byName['Phone']].map((f) => (f as { length?: number } | undefined)?.length)).toEqual([40, 80, 40]);
    const opportunity = await call(sf, token, 'GET', `${V}/sobjects/Opportunity/describe`);
    expect((opportunity.json.fields as Array<{ name: string; length: number }>).find((f) => f.name === 'Name')?.length).toBe(120);
    const account = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    const accountLengths = Object.fromEntries((account.json.fields as Array<{ name: string; length: number }>).map((f) => [f.name, f.length]));
    expect([accountLengths['Name'], accountLengths['Phone'], accountLengths['BillingCity']]).toEqual([255, 40, 40]);
    expect(byName['AccountId']).toMatchObject({ type: 'reference', referenceTo: ['Account'], relationshipName: 'Account' });
    const global = await call(sf, token, 'GET', `${V}/sobjects`);
    expect(global.status).toBe(200);
    expect((global.json.sobjects as Array<{ name: string; keyPrefix: string }>).map((o) => [o.name, o.keyPrefix])).toEqual([
      ['Account', '001'],
      ['Contact', '003'],
      ['Opportunity', '006'],
    ]);
    const unknown = await call(sf, token, 'GET', `${V}/sobjects/Nope__c/describe`);
    expect([unknown.status, unknown.json]).toEqual([404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]]);
  });
});

describe('sObject Collections upsert', () => {
  it('creates, then updates, answering one result per record in order with 18-character ids', async () => {
    const sf = await start();
    const token = await login(sf);
    const created = await upsert(sf, token, 'Account', [
      { Name: 'Acme', External_Id__c: 'A-1' },
      { Name: 'Globex', External_Id__c: 'A-2' },
    ]);
    expect(created.status).toBe(200);
    expect(created.json).toEqual([
      { id: expect.stringMatching(/^001\w{15}$/), success: true, errors: [], created: true },
      { id: expect.stringMatching(/^001\w{15}$/), success: true, errors: [], created: true },
    ]);
    const id = created.json[0].id as string;
    expect(id.slice(15)).toBe(expectedSuffix(id.slice(0, 15)));
    const updated = await upsert(sf, token, 'Account', [{ Name: 'Acme Corp', External_Id__c: 'a-1' }]);
    expect(updated.json).toEqual([{ id, success: true, errors: [], created: false }]);
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toMatchObject({ Id: id, Name: 'Acme Corp' });
    expect(sf.records('Account')).toHaveLength(2);
  });

  it('refuses more than 200 records with 400 EXCEEDED_ID_LIMIT', async () => {
    const sf = await start();
    const token = await login(sf);
    const records = Array.from({ length: 201 }, (_, i) => ({ Name: `N${i}`, External_Id__c: `E${i}` }));
    const res = await upsert(sf, token, 'Account', records);
    expect([res.status, res.json]).toEqual([
      400,
      [{ message: 'record limit reached. cannot submit more than 200 records into this call', errorCode: 'EXCEEDED_ID_LIMIT' }],
    ]);
    expect(sf.records('Account')).toHaveLength(0);
    expect((await upsert(sf, token, 'Account', records.slice(0, 200))).json).toHaveLength(200);
  });

  it('refuses an unknown object, a field that is not an external id and an unknown column', async () => {
    const sf = await start();
    const token = await login(sf);
    const unknown = await call(sf, token, 'PATCH', `${V}/composite/sobjects/Nope__c/External_Id__c`, { body: upsertBody('Nope__c', []) });
    expect(unknown.status).toBe(404);
    const notExternal = await call(sf, token, 'PATCH', `${V}/composite/sobjects/Account/Name`, { body: upsertBody('Account', [{ Name: 'x' }]) });
    expect([notExternal.status, notExternal.json]).toEqual([
      400,
      [{ message: 'Field name provided, Name does not match an External ID, Salesforce Id, or indexed field for Account', errorCode: 'INVALID_FIELD' }],
    ]);
    const column = await upsert(sf, token, 'Account', [{ Name: 'x', External_Id__c: 'A', Colour__c: 'red' }]);
    expect([column.status, column.json]).toEqual([400, [{ message: "No such column 'Colour__c' on sobject of type Account", errorCode: 'INVALID_FIELD' }]]);
    const noType = await call(sf, token, 'PATCH', `${V}/composite/sobjects/Account/External_Id__c`, {
      body: { allOrNone: false, records: [{ Name: 'x', External_Id__c: 'A' }] },
    });
    expect([noType.status, noType.json[0].errorCode]).toEqual([400, 'INVALID_TYPE']);
    const malformed = await call(sf, token, 'PATCH', `${V}/composite/sobjects/Account/External_Id__c`, { body: '{"records": [' });
    expect([malformed.status, malformed.json[0].errorCode]).toEqual([400, 'JSON_PARSER_ERROR']);
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('fails single records: required field, missing external id, duplicate in the request, read-only field', async () => {
    const sf = await start();
    const token = await login(sf);
    const res = await upsert(sf, token, 'Contact', [
      { FirstName: 'No', External_Id__c: 'C-1' },
      { LastName: 'Nokey' },
      { LastName: 'Twice', External_Id__c: 'C-2' },
      { LastName: 'Twice again', External_Id__c: 'c-2' },
      { LastName: 'Sneaky', External_Id__c: 'C-3', CreatedDate: '2020-01-01T00:00:00.000+0000' },
      { LastName: 'Fine', External_Id__c: 'C-4' },
    ]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual([
      { success: false, created: false, errors: [{ statusCode: 'REQUIRED_FIELD_MISSING', message: 'Required fields are missing: [LastName]', fields: ['LastName'] }] },
      { success: false, created: false, errors: [{ statusCode: 'MISSING_ARGUMENT', message: 'External_Id__c not specified', fields: [] }] },
      { success: false, created: false, errors: [{ statusCode: 'DUPLICATE_VALUE', message: 'Duplicate external id specified: C-2', fields: [] }] },
      { success: false, created: false, errors: [{ statusCode: 'DUPLICATE_VALUE', message: 'Duplicate external id specified: c-2', fields: [] }] },
      {
        success: false,
        created: false,
        errors: [expect.objectContaining({ statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE', fields: ['CreatedDate'] })],
      },
      { id: expect.stringMatching(/^003/), success: true, errors: [], created: true },
    ]);
    expect(sf.records('Contact').map((c) => c['LastName'])).toEqual(['Fine']);
  });

  it('refuses the whole request with 400 JSON_PARSER_ERROR when one record holds a value its field cannot be read as', async () => {
    const sf = await start();
    const token = await login(sf);
    const opportunity = (id: string, over: Record<string, unknown>) => ({ Name: id, StageName: 'Prospecting', External_Id__c: id, CloseDate: '2024-06-30', ...over });
    const refused = async (over: Record<string, unknown>, text: string) => {
      const res = await upsert(sf, token, 'Opportunity', [opportunity('O-1', {}), opportunity('O-2', over)]);
      expect(res.status).toBe(400);
      expect(res.json).toEqual([{ errorCode: 'JSON_PARSER_ERROR', message: expect.stringContaining(text) }]);
    };
    // Documented: a date is yyyy-MM-dd, with no time or offset; a dateTime has a T, seconds, at most three-digit milliseconds and a zone.
    await refused({ CloseDate: '2024-06-30T00:00:00.000Z' }, 'Cannot deserialize instance of date from VALUE_STRING value 2024-06-30T00:00:00.000Z');
    await refused({ CloseDate: '2024-02-30' }, 'instance of date from VALUE_STRING value 2024-02-30');
    await refused({ CloseDate: 20240630 }, 'instance of date from VALUE_NUMBER_INT value 20240630');
    await refused({ Amount: 'NaN' }, 'instance of currency from VALUE_STRING value NaN');
    await refused({ Amount: true }, 'instance of currency from VALUE_TRUE value true');
    expect(sf.records('Opportunity')).toEqual([]);

    const res = await upsert(sf, token, 'Opportunity', [opportunity('O-1', { Amount: '12.30' }), opportunity('O-2', { Amount: 7 })]);
    expect(res.json.map((r: { success: boolean }) => r.success)).toEqual([true, true]);
    expect(sf.get('Opportunity', 'External_Id__c', 'O-1')).toMatchObject({ CloseDate: '2024-06-30', Amount: 12.3 });
  });

  it('takes a dateTime only in the documented ISO 8601 forms, the whole request refused otherwise', async () => {
    const sf = await start({ schema: { Event__c: { fields: { Key__c: { type: 'string', externalId: true }, Starts__c: { type: 'datetime' }, Done__c: { type: 'boolean' } } } } });
    const token = await login(sf);
    const send = (starts: unknown, done: unknown = true) =>
      call(sf, token, 'PATCH', `${V}/composite/sobjects/Event__c/Key__c`, { body: upsertBody('Event__c', [{ Key__c: 'E-1', Starts__c: starts, Done__c: done }]) });
    for (const good of ['2024-01-02T03:04:05.000Z', '2024-01-02T03:04:05Z', '2024-01-02T03:04:05.000+02:00', '2024-01-02T03:04:05.000+0000']) {
      expect((await send(good)).json, good).toEqual([expect.objectContaining({ success: true })]);
    }
    for (const bad of ['2024-01-02T03:04:05.123456Z', '2024-01-02 03:04:05', '2024-01-02', '2024-01-02T25:00:00Z']) {
      const res = await send(bad);
      expect(res.status, bad).toBe(400);
      expect(res.json[0].message).toBe(`Cannot deserialize instance of datetime from VALUE_STRING value ${bad} or request may be missing a required field`);
    }
    const checkbox = await send('2024-01-02T03:04:05Z', 'yes');
    expect(checkbox.status).toBe(400);
    expect(checkbox.json[0]).toMatchObject({ errorCode: 'JSON_PARSER_ERROR', message: expect.stringContaining('instance of boolean from VALUE_STRING value yes') });
    // A checkbox is never null: the record is refused, not the request.
    const unchecked = await send('2024-01-02T03:04:05Z', null);
    expect(unchecked.json).toEqual([
      { success: false, created: false, errors: [{ statusCode: 'INVALID_TYPE_ON_FIELD_IN_RECORD', message: 'Done: value not of required type: ', fields: ['Done__c'] }] },
    ]);
  });

  it('takes a multi-select picklist as values separated by semicolons, and refuses a JSON array for it', async () => {
    const sf = await start({ schema: { Member__c: { fields: { Key__c: { type: 'string', externalId: true }, Tiers__c: { type: 'multipicklist' } } } } });
    const token = await login(sf);
    const described = await call(sf, token, 'GET', `${V}/sobjects/Member__c/describe`);
    expect(described.json.fields.find((f: { name: string }) => f.name === 'Tiers__c')).toMatchObject({ type: 'multipicklist' });
    const send = (tiers: unknown) => call(sf, token, 'PATCH', `${V}/composite/sobjects/Member__c/Key__c`, { body: upsertBody('Member__c', [{ Key__c: 'M-1', Tiers__c: tiers }]) });
    const array = await send(['Gold', 'Silver']);
    expect([array.status, array.json[0]]).toEqual([400, { errorCode: 'JSON_PARSER_ERROR', message: 'Cannot deserialize instance of multipicklist from START_ARRAY value' }]);
    expect((await send('Gold;Silver')).json[0]).toMatchObject({ success: true });
    expect(sf.get('Member__c', 'Key__c', 'M-1')).toMatchObject({ Tiers__c: 'Gold;Silver' });
  });

  it('fails only the row of a Bulk API upload whose date cannot be read', async () => {
    const sf = await start({ bulkPolls: 0 });
    const token = await login(sf);
    const job = (await call(sf, token, 'POST', `${V}/jobs/ingest`, { body: { object: 'Opportunity', operation: 'upsert', externalIdFieldName: 'External_Id__c', lineEnding: 'LF' } })).json.id as string;
    const csv = 'External_Id__c,Name,StageName,CloseDate\nO-1,One,Prospecting,2024-06-30\nO-2,Two,Prospecting,2024-06-30T00:00:00.000Z\n';
    expect((await call(sf, token, 'PUT', `${V}/jobs/ingest/${job}/batches`, { body: csv, contentType: 'text/csv' })).status).toBe(201);
    await call(sf, token, 'PATCH', `${V}/jobs/ingest/${job}`, { body: { state: 'UploadComplete' } });
    expect((await call(sf, token, 'GET', `${V}/jobs/ingest/${job}`)).json).toMatchObject({ state: 'JobComplete', numberRecordsProcessed: 2, numberRecordsFailed: 1 });
    const failed = parseCsv((await call(sf, token, 'GET', `${V}/jobs/ingest/${job}/failedResults`)).text, { columns: true }) as Array<Record<string, string>>;
    expect(failed).toEqual([expect.objectContaining({ External_Id__c: 'O-2', sf__Error: expect.stringMatching(/^INVALID_TYPE_ON_FIELD_IN_RECORD:Close Date: value not of required type: 2024-06-30T00:00:00.000Z:CloseDate --$/) })]);
    expect(sf.records('Opportunity').map((r) => r['External_Id__c'])).toEqual(['O-1']);
  });

  it('resolves a parent by external id, and words a missing parent as Salesforce does', async () => {
    const sf = await start();
    const token = await login(sf);
    const [accountId] = sf.seed('Account', [{ Name: 'Acme', External_Id__c: 'A-1' }]);
    const res = await upsert(sf, token, 'Contact', [
      { LastName: 'Ada', External_Id__c: 'C-1', Account: { External_Id__c: 'A-1' } },
      { LastName: 'Bob', External_Id__c: 'C-2', Account: { attributes: { type: 'Account' }, External_Id__c: 'A-404' } },
      { LastName: 'Cy', External_Id__c: 'C-3', Account: { Name: 'Acme' } },
    ]);
    expect(res.json[0]).toMatchObject({ success: true, created: true });
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.['AccountId']).toBe(accountId);
    expect(res.json[1]).toEqual({
      success: false,
      created: false,
      errors: [{ statusCode: 'INVALID_FIELD', message: 'Foreign key external ID: A-404 not found for field External_Id__c in entity Account', fields: [] }],
    });
    expect(res.json[2].errors[0]).toMatchObject({ statusCode: 'INVALID_FIELD', message: 'Name is not an External ID or indexed field for Account' });
  });

  it('with allOrNone rolls every change back and marks the valid records ALL_OR_NONE_OPERATION_ROLLED_BACK', async () => {
    const sf = await start();
    const token = await login(sf);
    sf.seed('Account', [{ Name: 'Before', External_Id__c: 'A-0' }]);
    const res = await upsert(
      sf,
      token,
      'Account',
      [
        { Name: 'After', External_Id__c: 'A-0' },
        { Name: 'New', External_Id__c: 'A-1' },
        { External_Id__c: 'A-2' },
      ],
      true,
    );
    const rolledBack = {
      statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
      message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
      fields: [],
    };
    expect(res.json.map((r: { errors: unknown[] }) => r.errors[0])).toEqual([
      rolledBack,
      rolledBack,
      expect.objectContaining({ statusCode: 'REQUIRED_FIELD_MISSING' }),
    ]);
    expect(sf.records('Account').map((a) => a['Name'])).toEqual(['Before']);
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toBeUndefined();
  });

  it('refuses a second record with a unique value taken by another', async () => {
    const sf = await start({
      schema: { Thing__c: { fields: { Key__c: { type: 'string', externalId: true }, Code__c: { type: 'string', externalId: true, unique: true } } } },
    });
    const token = await login(sf);
    const [first] = sf.seed('Thing__c', [{ Key__c: 'k1', Code__c: 'X' }]);
    expect(first).toMatch(/^a00/);
    const res = await call(sf, token, 'PATCH', `${V}/composite/sobjects/Thing__c/Key__c`, { body: upsertBody('Thing__c', [{ Key__c: 'k2', Code__c: 'x' }]) });
    expect(res.json[0].errors[0]).toEqual({ statusCode: 'DUPLICATE_VALUE', message: `duplicate value found: Code__c duplicates value on record with id: ${first}`, fields: [] });
  });

  it('matches a Unique external id without regard to case unless it is case-sensitive, and one that is not Unique as written', async () => {
    const sf = await start({
      schema: {
        Thing__c: {
          fields: {
            Folded__c: { type: 'string', externalId: true, unique: true },
            Exact__c: { type: 'string', externalId: true, unique: true, caseSensitive: true },
            Plain__c: { type: 'string', externalId: true },
          },
        },
      },
    });
    const token = await login(sf);
    for (const field of ['Folded__c', 'Exact__c', 'Plain__c']) {
      const path = `${V}/composite/sobjects/Thing__c/${field}`;
      const first = await call(sf, token, 'PATCH', path, { body: upsertBody('Thing__c', [{ [field]: `${field}-A-1` }]) });
      const second = await call(sf, token, 'PATCH', path, { body: upsertBody('Thing__c', [{ [field]: `${field}-a-1` }]) });
      expect(second.json[0].created).toBe(field !== 'Folded__c');
      expect(second.json[0].id === first.json[0].id).toBe(field === 'Folded__c');
    }
    // SOQL ignores case, whatever the field.
    const found = await query(sf, token, "SELECT Id FROM Thing__c WHERE Plain__c IN ('PLAIN__C-A-1')");
    expect(found.json.totalSize).toBe(2);
  });

  it('fails a record whose text is longer than its field or whose email is no address', async () => {
    const sf = await start();
    const token = await login(sf);
    // Contact's LastName holds 80 characters in Salesforce, its FirstName 40.
    const long = 'x'.repeat(81);
    const res = await upsert(sf, token, 'Contact', [
      { LastName: long, External_Id__c: 'C-1' },
      { LastName: 'Ada', External_Id__c: 'C-2', Email: 'not-an-email' },
      { LastName: 'y'.repeat(80), FirstName: 'z'.repeat(40), External_Id__c: 'C-3', Email: 'ada@example.com' },
    ]);
    expect(res.json).toEqual([
      { success: false, created: false, errors: [{ statusCode: 'STRING_TOO_LONG', message: `LastName: data value too large: ${long} (max length=80)`, fields: ['LastName'] }] },
      { success: false, created: false, errors: [{ statusCode: 'INVALID_EMAIL_ADDRESS', message: 'Email: invalid email address: not-an-email', fields: ['Email'] }] },
      { id: expect.stringMatching(/^003/), success: true, errors: [], created: true },
    ]);
    expect(sf.records('Contact').map((c) => c['External_Id__c'])).toEqual(['C-3']);
  });
});

describe('sObject Collections delete', () => {
  it('deletes by id and reports deleted, unknown and malformed ids per record', async () => {
    const sf = await start();
    const token = await login(sf);
    const [a, b] = sf.seed('Account', [
      { Name: 'A', External_Id__c: 'A' },
      { Name: 'B', External_Id__c: 'B' },
    ]) as [string, string];
    const first = await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${a},${b.slice(0, 15)}&allOrNone=false`);
    expect(first.json).toEqual([
      { id: a, success: true, errors: [] },
      { id: b, success: true, errors: [] },
    ]);
    const unknown = `001${'0'.repeat(12)}`;
    const second = await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${a},${unknown},bogus`);
    expect(second.json).toEqual([
      { success: false, errors: [{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }] },
      { success: false, errors: [{ statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] }] },
      { success: false, errors: [{ statusCode: 'MALFORMED_ID', message: 'malformed id bogus', fields: [] }] },
    ]);
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('refuses more than 200 ids, and with allOrNone keeps every record when one id fails', async () => {
    const sf = await start();
    const token = await login(sf);
    const ids = sf.seed(
      'Account',
      Array.from({ length: 201 }, (_, i) => ({ Name: `N${i}`, External_Id__c: `E${i}` })),
    );
    const tooMany = await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${ids.join(',')}`);
    expect([tooMany.status, tooMany.json[0].errorCode]).toEqual([400, 'EXCEEDED_ID_LIMIT']);
    const all = await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${ids[0]},bogus&allOrNone=true`);
    expect(all.json[0]).toEqual({ success: false, errors: [expect.objectContaining({ statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK' })] });
    expect(sf.records('Account')).toHaveLength(201);
  });

  it("deletes an account's contacts and opportunities with it, unless allOrNone rolls the call back", async () => {
    const sf = await start();
    const token = await login(sf);
    const [a, b] = sf.seed('Account', [
      { Name: 'A', External_Id__c: 'A' },
      { Name: 'B', External_Id__c: 'B' },
    ]) as [string, string];
    const [c1] = sf.seed('Contact', [
      { LastName: 'One', External_Id__c: 'C-1', AccountId: a },
      { LastName: 'Two', External_Id__c: 'C-2', AccountId: b },
    ]) as [string, string];
    sf.seed('Opportunity', [{ Name: 'Deal', StageName: 'Prospecting', CloseDate: '2024-01-01', External_Id__c: 'O-1', AccountId: a }]);
    const rolledBack = await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${a},bogus&allOrNone=true`);
    expect(rolledBack.json[0].success).toBe(false);
    expect([sf.records('Contact').length, sf.records('Opportunity').length]).toEqual([2, 1]);
    await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${a}`);
    expect(sf.records('Contact').map((c) => c.External_Id__c)).toEqual(['C-2']);
    expect(sf.records('Opportunity')).toHaveLength(0);
    const again = await call(sf, token, 'DELETE', `${V}/composite/sobjects?ids=${c1}`);
    expect(again.json).toEqual([{ success: false, errors: [{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }] }]);
  });
});

describe('query', () => {
  it('answers SELECT … WHERE … IN with attributes, parent fields and COUNT()', async () => {
    const sf = await start();
    const token = await login(sf);
    const [accountId] = sf.seed('Account', [{ Name: 'Acme', External_Id__c: 'A-1' }]);
    sf.seed('Contact', [
      { LastName: 'Ada', External_Id__c: 'C-1', AccountId: accountId },
      { LastName: 'Bob', External_Id__c: 'C-2' },
      { LastName: 'Cy', External_Id__c: 'C-3' },
    ]);
    const res = await query(sf, token, "SELECT Id, External_Id__c, Account.External_Id__c FROM Contact WHERE External_Id__c IN ('c-1','C-2') ORDER BY External_Id__c");
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ totalSize: 2, done: true });
    expect(res.json.records[0]).toEqual({
      attributes: { type: 'Contact', url: `${V}/sobjects/Contact/${res.json.records[0].Id}` },
      Id: expect.stringMatching(/^003/),
      External_Id__c: 'C-1',
      Account: { attributes: { type: 'Account', url: `${V}/sobjects/Account/${accountId}` }, External_Id__c: 'A-1' },
    });
    expect(res.json.records[1]).toMatchObject({ External_Id__c: 'C-2', Account: null });
    const count = await query(sf, token, "SELECT COUNT() FROM Contact WHERE LastName != 'Cy'");
    expect(count.json).toEqual({ totalSize: 2, done: true, records: [] });
  });

  it('refuses malformed queries, unknown objects and unknown fields', async () => {
    const sf = await start();
    const token = await login(sf);
    const malformed = await query(sf, token, 'SELECT Id FORM Account');
    expect([malformed.status, malformed.json[0].errorCode]).toEqual([400, 'MALFORMED_QUERY']);
    expect(malformed.json[0].message).toContain('unexpected token: FORM');
    const type = await query(sf, token, 'SELECT Id FROM Nope__c');
    expect([type.status, type.json[0].errorCode]).toEqual([400, 'INVALID_TYPE']);
    const field = await query(sf, token, 'SELECT Colour__c FROM Account');
    expect([field.status, field.json[0].errorCode]).toEqual([400, 'INVALID_FIELD']);
    expect(field.json[0].message).toMatch(/^No such column 'Colour__c' on entity 'Account'/);
  });

  it('pages results past 2,000 records through nextRecordsUrl', async () => {
    const sf = await start();
    const token = await login(sf);
    sf.seed('Account', Array.from({ length: 2_500 }, (_, i) => ({ Name: `N${i}`, External_Id__c: `E${i}` })));
    const first = await query(sf, token, 'SELECT Id FROM Account');
    expect(first.json).toMatchObject({ totalSize: 2_500, done: false });
    expect(first.json.records).toHaveLength(2_000);
    const second = await call(sf, token, 'GET', first.json.nextRecordsUrl as string);
    expect(second.json).toMatchObject({ totalSize: 2_500, done: true });
    expect(second.json.records).toHaveLength(500);
  });
});

describe('Bulk API 2.0 ingest', () => {
  async function createJob(sf: SalesforceStandIn, token: string, job: Record<string, unknown>): Promise<Answer> {
    return call(sf, token, 'POST', `${V}/jobs/ingest`, { body: { contentType: 'CSV', lineEnding: 'LF', ...job } });
  }
  const upload = (sf: SalesforceStandIn, token: string, id: string, csv: string): Promise<Answer> =>
    call(sf, token, 'PUT', `${V}/jobs/ingest/${id}/batches`, { body: csv, contentType: 'text/csv' });
  const close = (sf: SalesforceStandIn, token: string, id: string, state = 'UploadComplete'): Promise<Answer> =>
    call(sf, token, 'PATCH', `${V}/jobs/ingest/${id}`, { body: { state } });
  const info = (sf: SalesforceStandIn, token: string, id: string): Promise<Answer> => call(sf, token, 'GET', `${V}/jobs/ingest/${id}`);

  it('runs an upsert job through Open, UploadComplete, InProgress and JobComplete with per-row results', async () => {
    const sf = await start({ bulkPolls: 2 });
    const token = await login(sf);
    sf.seed('Account', [{ Name: 'Acme', External_Id__c: 'A-1' }]);
    const created = await createJob(sf, token, { object: 'Contact', operation: 'upsert', externalIdFieldName: 'External_Id__c' });
    expect(created.status).toBe(200);
    const id = created.json.id as string;
    expect(created.json).toMatchObject({
      id: expect.stringMatching(/^750\w{15}$/),
      state: 'Open',
      object: 'Contact',
      operation: 'upsert',
      externalIdFieldName: 'External_Id__c',
      contentType: 'CSV',
      lineEnding: 'LF',
      columnDelimiter: 'COMMA',
      apiVersion: 61,
      contentUrl: `services/data/v61.0/jobs/ingest/${id}/batches`,
    });
    const csv = 'External_Id__c,LastName,Account.External_Id__c\nC-1,Ada,A-1\nC-2,"Bob, Jr.",A-404\nC-3,,\n';
    expect((await upload(sf, token, id, csv)).status).toBe(201);
    expect((await close(sf, token, id)).json.state).toBe('UploadComplete');
    expect((await info(sf, token, id)).json.state).toBe('InProgress');
    expect((await info(sf, token, id)).json.state).toBe('InProgress');
    const done = await info(sf, token, id);
    expect(done.json).toMatchObject({ state: 'JobComplete', numberRecordsProcessed: 3, numberRecordsFailed: 2 });

    const successful = await call(sf, token, 'GET', `${V}/jobs/ingest/${id}/successfulResults`);
    expect(successful.headers.get('content-type')).toMatch(/^text\/csv/);
    const [contact] = sf.records('Contact');
    expect(successful.text).toBe(`"sf__Id","sf__Created",External_Id__c,LastName,Account.External_Id__c\n"${contact?.Id}","true",C-1,Ada,A-1\n`);
    const failed = await call(sf, token, 'GET', `${V}/jobs/ingest/${id}/failedResults`);
    const rows = parseCsv(failed.text) as string[][];
    expect(rows).toEqual([
      ['sf__Id', 'sf__Error', 'External_Id__c', 'LastName', 'Account.External_Id__c'],
      ['', 'INVALID_FIELD:Foreign key external ID: A-404 not found for field External_Id__c in entity Account:--', 'C-2', 'Bob, Jr.', 'A-404'],
      ['', 'REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --', 'C-3', '', ''],
    ]);
    const unprocessed = await call(sf, token, 'GET', `${V}/jobs/ingest/${id}/unprocessedrecords`);
    expect(unprocessed.text).toBe('External_Id__c,LastName,Account.External_Id__c\n');
  });

  it('accepts data only while the job is Open, and within the upload limit', async () => {
    const sf = await start({ bulkUploadLimitBytes: 400 });
    const token = await login(sf);
    const id = (await createJob(sf, token, { object: 'Account', operation: 'insert' })).json.id as string;
    const tooBig = await upload(sf, token, id, `Name\n${'x'.repeat(400)}\n`);
    expect(tooBig.status).toBe(413);
    const json = await call(sf, token, 'PUT', `${V}/jobs/ingest/${id}/batches`, { body: 'Name\nx\n', contentType: 'application/json' });
    expect(json.status).toBe(415);
    expect((await upload(sf, token, id, 'Name\nAcme\n')).status).toBe(201);
    await close(sf, token, id);
    const late = await upload(sf, token, id, 'Name\nLate\n');
    expect([late.status, late.json[0].errorCode]).toEqual([409, 'INVALIDJOBSTATE']);
    const missing = await info(sf, token, `750${'0'.repeat(15)}`);
    expect([missing.status, missing.json]).toEqual([404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]]);
  });

  it('takes one upload a job: closing a job that took two is refused and leaves it Open', async () => {
    const sf = await start();
    const token = await login(sf);
    const id = (await createJob(sf, token, { object: 'Account', operation: 'insert' })).json.id as string;
    expect((await upload(sf, token, id, 'Name\nAcme\n')).status).toBe(201);
    expect((await upload(sf, token, id, 'Name\nGlobex\n')).status).toBe(201);
    const closed = await close(sf, token, id);
    expect(closed.status).toBe(400);
    expect(closed.json[0]).toMatchObject({ errorCode: 'INVALIDJOB', message: expect.stringContaining("make sure you only do 'PUT' once on a given Job") });
    expect((await info(sf, token, id)).json.state).toBe('Open');
    expect(sf.records('Account')).toEqual([]);
  });

  it('fails a job whose line ending or header does not fit, leaving its rows unprocessed', async () => {
    const sf = await start({ bulkPolls: 0 });
    const token = await login(sf);
    const crlf = (await createJob(sf, token, { object: 'Account', operation: 'insert' })).json.id as string;
    await upload(sf, token, crlf, 'Name\r\nAcme\r\n');
    await close(sf, token, crlf);
    expect((await info(sf, token, crlf)).json).toMatchObject({
      state: 'Failed',
      numberRecordsProcessed: 0,
      errorMessage: 'ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF',
    });
    expect((await call(sf, token, 'GET', `${V}/jobs/ingest/${crlf}/unprocessedrecords`)).text).toBe('Name\nAcme\n');

    const header = (await createJob(sf, token, { object: 'Account', operation: 'insert' })).json.id as string;
    await upload(sf, token, header, 'Name,Colour__c\nAcme,red\n');
    await close(sf, token, header);
    expect((await info(sf, token, header)).json).toMatchObject({ state: 'Failed', errorMessage: 'InvalidBatch : Field name not found : Colour__c' });
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('refuses an upsert job without a usable external id field, and aborts an open job', async () => {
    const sf = await start();
    const token = await login(sf);
    const bad = await createJob(sf, token, { object: 'Account', operation: 'upsert', externalIdFieldName: 'Name' });
    expect([bad.status, bad.json[0].errorCode]).toEqual([400, 'INVALIDJOB']);
    const id = (await createJob(sf, token, { object: 'Account', operation: 'insert' })).json.id as string;
    await upload(sf, token, id, 'Name\nAcme\n');
    expect((await close(sf, token, id, 'Aborted')).json.state).toBe('Aborted');
    expect((await info(sf, token, id)).json.state).toBe('Aborted');
    expect((await call(sf, token, 'GET', `${V}/jobs/ingest/${id}/successfulResults`)).status).toBe(409);
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('deletes by Id and clears fields with #N/A on upsert', async () => {
    const sf = await start({ bulkPolls: 0 });
    const token = await login(sf);
    const [a, b] = sf.seed('Account', [
      { Name: 'A', External_Id__c: 'A', Phone: '123' },
      { Name: 'B', External_Id__c: 'B' },
    ]);
    const upsertJob = (await createJob(sf, token, { object: 'Account', operation: 'upsert', externalIdFieldName: 'External_Id__c' })).json.id as string;
    await upload(sf, token, upsertJob, 'External_Id__c|Phone|Name\nA|#N/A|\n'.replaceAll('|', ','));
    await close(sf, token, upsertJob);
    expect((await info(sf, token, upsertJob)).json.state).toBe('JobComplete');
    expect(sf.get('Account', 'External_Id__c', 'A')).toMatchObject({ Name: 'A' });
    expect(sf.get('Account', 'External_Id__c', 'A')?.['Phone']).toBeUndefined();

    const deleteJob = (await createJob(sf, token, { object: 'Account', operation: 'delete' })).json.id as string;
    await upload(sf, token, deleteJob, `Id\n${a}\n${b}\n${a}\n`);
    await close(sf, token, deleteJob);
    expect((await info(sf, token, deleteJob)).json).toMatchObject({ state: 'JobComplete', numberRecordsProcessed: 3, numberRecordsFailed: 1 });
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('fails a job that reaches the daily record limit, keeping what it processed and listing the rest as unprocessed', async () => {
    const sf = await start({ bulkPolls: 0, bulkRecordsPerDay: 3 });
    const token = await login(sf);
    const job = (await createJob(sf, token, { object: 'Account', operation: 'upsert', externalIdFieldName: 'External_Id__c' })).json.id as string;
    await upload(sf, token, job, 'External_Id__c,Name\nA-1,One\nA-2,\nA-3,Three\nA-4,Four\nA-5,Five\n');
    await close(sf, token, job);
    const state = (await info(sf, token, job)).json;
    expect(state).toMatchObject({ state: 'Failed', numberRecordsProcessed: 3, numberRecordsFailed: 1, errorMessage: expect.stringContaining('2 records were not processed') });
    expect(sf.records('Account').map((r) => r['External_Id__c'])).toEqual(['A-1', 'A-3']);
    const read = async (which: string) => parseCsv((await call(sf, token, 'GET', `${V}/jobs/ingest/${job}/${which}`)).text, { columns: true }) as Array<Record<string, string>>;
    expect((await read('successfulResults')).map((r) => r['External_Id__c'])).toEqual(['A-1', 'A-3']);
    expect((await read('failedResults')).map((r) => r['External_Id__c'])).toEqual(['A-2']);
    expect((await read('unprocessedrecords')).map((r) => r['External_Id__c'])).toEqual(['A-4', 'A-5']);
  });

  it('takes 50,000 rows in one job without slowing to a crawl', async () => {
    const sf = await start({ bulkPolls: 0 });
    const token = await login(sf);
    const id = (await createJob(sf, token, { object: 'Account', operation: 'upsert', externalIdFieldName: 'External_Id__c' })).json.id as string;
    const rows = Array.from({ length: 50_000 }, (_, i) => `E${i},Name ${i}`).join('\n');
    await upload(sf, token, id, `External_Id__c,Name\n${rows}\n`);
    await close(sf, token, id);
    expect((await info(sf, token, id)).json).toMatchObject({ state: 'JobComplete', numberRecordsProcessed: 50_000, numberRecordsFailed: 0 });
    const found = await query(sf, token, "SELECT Name FROM Account WHERE External_Id__c = 'E49999'");
    expect(found.json.records[0].Name).toBe('Name 49999');
  });
});

describe('faults and counters', () => {
  it('serves injected answers: a 503, an HTML page with 200, a truncated JSON body', async () => {
    const sf = await start();
    const token = await login(sf);
    sf.failNext(1);
    const unavailable = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect(unavailable.status).toBe(503);
    sf.failNext(1, { status: 200, body: '<html><body>Maintenance</body></html>' });
    const html = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect([html.status, html.headers.get('content-type'), html.json]).toEqual([200, 'text/html;charset=UTF-8', undefined]);
    sf.failNext(1, { status: 200, body: '[{"id":"001', contentType: 'application/json' });
    const truncated = await call(sf, token, 'GET', `${V}/sobjects/Account/describe`);
    expect([truncated.status, truncated.json]).toEqual([200, undefined]);
    expect((await call(sf, token, 'GET', `${V}/sobjects/Account/describe`)).status).toBe(200);
    expect(sf.apiUsage()).toBe(1);
    expect(sf.stats().faultsInjected).toBe(3);
  });

  it('resets the connection, cuts a body short, hangs, and targets only the kinds asked for', async () => {
    const sf = await start();
    const token = await login(sf);
    sf.failNext(1, { action: 'reset' });
    await expect(call(sf, token, 'GET', `${V}/sobjects/Account/describe`)).rejects.toThrow();
    sf.failNext(1, { action: 'truncate', status: 200, body: { ok: 'a body long enough to be cut in half' } });
    await expect(call(sf, token, 'GET', `${V}/sobjects/Account/describe`)).rejects.toThrow();
    sf.failNext(1, { action: 'hang', only: ['query'] });
    expect((await call(sf, token, 'GET', `${V}/sobjects/Account/describe`)).status).toBe(200);
    const hung = fetch(`${sf.url}${V}/query?q=SELECT+Id+FROM+Account`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(300),
    });
    await expect(hung).rejects.toThrow();
  });

  it('counts requests per endpoint kind and the largest batch a call carried', async () => {
    const sf = await start();
    const token = await login(sf);
    await upsert(sf, token, 'Account', Array.from({ length: 150 }, (_, i) => ({ Name: `N${i}`, External_Id__c: `E${i}` })));
    await upsert(sf, token, 'Account', [{ Name: 'x', External_Id__c: 'X' }]);
    await query(sf, token, 'SELECT Id FROM Account LIMIT 1');
    const stats = sf.stats();
    expect(stats.requests).toMatchObject({ token: 1, upsert: 2, query: 1 });
    expect(stats).toMatchObject({ totalRequests: 4, dataRequests: 3, recordsReceived: 151, maxRecordsPerCall: 150 });
    expect(stats.maxRecordsPerCallByKind).toEqual({ upsert: 150 });
    sf.resetStats();
    expect(sf.stats().totalRequests).toBe(0);
  });

  it('is disposable with await using', async () => {
    let url = '';
    {
      await using sf = await startSalesforceStandIn({ schema: DEFAULT_SALESFORCE_SCHEMA });
      url = sf.url;
      expect((await fetch(`${url}/services/data/v61.0/query`)).status).toBe(401);
    }
    await expect(fetch(`${url}/services/data/v61.0/query`)).rejects.toThrow();
  });
});

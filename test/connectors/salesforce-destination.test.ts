/**
 * The Salesforce destination against the Salesforce stand-in (a real HTTP server written from
 * Salesforce's documentation): sObject Collections upserts with per-record results, parents by
 * external id, Bulk API 2.0 jobs, deletes, login and token refresh, schema checks, transient and
 * garbage answers, the API limit, and whole runs and sequences through the engine.
 *
 * The SQL destination contract (destination-contract.ts) does not fit an API whose records are
 * matched by one external id field (composite keys, CHECK constraints and `{ ok: true }` without an
 * id are SQL's); its behaviours are covered here in Salesforce's terms: modes, per-row rejections in
 * order, a missing update, deletes of missing records, a 5,000-row write, an unreachable peer that
 * leaks no secret.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectorRegistry } from '../../src/core/connector-registry.js';
import type { ConnectorContext, RateLimits } from '../../src/core/connector-kind.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { Clock, Destination, RateLimiter, RowOutcome, Value, WriteOperation, WriteTarget } from '../../src/core/ports.js';
import type { SyncDef } from '../../src/core/workspace.js';
import { sqliteConnector } from '../../src/connectors/index.js';
import { createRateLimiter } from '../../src/connectors/rate-limiter.js';
import {
  CaseTwins,
  REQUEST_LIMIT_PAUSE_SECONDS,
  SalesforceDestination,
  salesforceConnectionSettings,
  salesforceConnector,
  salesforceSyncSettings,
  type SalesforceDestinationOptions,
} from '../../src/connectors/salesforce/index.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { DEFAULT_SALESFORCE_SCHEMA, startSalesforceStandIn, type SalesforceStandIn, type SalesforceStandInOptions } from '../standins/salesforce-standin.js';

// ---------------------------------------------------------------------------------------------
// Helpers

/**
 * A clock whose sleeps pass at once in real time (a few ms) while its time moves on by the whole
 * sleep: backoffs of seconds, a minute's pause after REQUEST_LIMIT_EXCEEDED and bulk polling run fast.
 */
class WarpClock implements Clock {
  private offset = 0;
  slept = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    this.offset += Math.max(0, ms);
    this.slept += Math.max(0, ms);
    await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 2)));
  }
}

/** A rate limiter on the test's clock that records pauses (the real one waits in real time). */
class TestLimiter implements RateLimiter {
  pauses: number[] = [];
  private pausedUntil = 0;
  constructor(
    private readonly clock: Clock,
    private readonly inner: RateLimiter,
  ) {}
  schedule<T>(task: () => Promise<T>): Promise<T> {
    return this.inner.schedule(async () => {
      const wait = this.pausedUntil - this.clock.now();
      if (wait > 0) await this.clock.sleep(wait);
      return task();
    });
  }
  pauseUntil(until: number): void {
    this.pauses.push(until);
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }
  observe(): void {}
}

const FAST_BACKOFF = { attempts: 3, baseDelayMs: 10, maxDelayMs: 100 };

let standIn: SalesforceStandIn | undefined;
const opened: Destination[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
  await standIn?.close();
  standIn = undefined;
});

async function start(options: SalesforceStandInOptions = {}): Promise<SalesforceStandIn> {
  standIn = await startSalesforceStandIn(options);
  return standIn;
}

interface Opened {
  destination: SalesforceDestination;
  limiter: TestLimiter;
  clock: WarpClock;
}

async function open(sf: SalesforceStandIn, over: Record<string, unknown> = {}, options: SalesforceDestinationOptions = {}): Promise<Opened> {
  const clock = new WarpClock();
  let limiter: TestLimiter | undefined;
  const context: Pick<ConnectorContext, 'slug' | 'clock' | 'logger' | 'backoff' | 'rateLimiter'> = {
    slug: 'sf',
    clock,
    logger: silentLogger,
    backoff: FAST_BACKOFF,
    rateLimiter: (limits: RateLimits) => (limiter ??= new TestLimiter(clock, createRateLimiter(limits))),
  };
  const settings = salesforceConnectionSettings.parse({ loginUrl: sf.url, clientId: sf.clientId, clientSecret: sf.clientSecret, ...over });
  const destination = await SalesforceDestination.open(settings, context, options);
  opened.push(destination);
  return { destination, limiter: limiter as TestLimiter, clock };
}

/** Ids recorded per key, as the engine keeps them (`recordIds`). */
function recordedIds(map: Record<string, string> = {}): WriteTarget['recordIds'] {
  return async (_sync, keys) => new Map(keys.filter((k) => k in map).map((k) => [k, map[k] as string]));
}

const ACCOUNT_COLUMNS = ['External_Id__c', 'Name', 'Industry'];
const accountsTarget = (over: Partial<WriteTarget> = {}): WriteTarget => ({
  object: 'Account',
  keyColumns: ['External_Id__c'],
  columns: ACCOUNT_COLUMNS,
  settings: { externalIdField: 'External_Id__c' },
  sync: 'accounts-to-sf',
  recordIds: recordedIds(),
  ...over,
});
const CONTACT_COLUMNS = ['External_Id__c', 'LastName', 'Account.External_Id__c'];
const contactsTarget = (over: Partial<WriteTarget> = {}): WriteTarget => ({
  object: 'Contact',
  keyColumns: ['External_Id__c'],
  columns: CONTACT_COLUMNS,
  settings: { externalIdField: 'External_Id__c' },
  sync: 'contacts-to-sf',
  recordIds: recordedIds(),
  ...over,
});

/** An object with a field of each type whose values Salesforce reads in a documented form. */
const EVENT_SCHEMA = {
  Event__c: {
    fields: {
      Key__c: { type: 'string', externalId: true, unique: true },
      Starts__c: { type: 'datetime' },
      Day__c: { type: 'date' },
      Done__c: { type: 'boolean' },
      Count__c: { type: 'double' },
    },
  },
} as const satisfies SalesforceStandInOptions['schema'];
const eventsTarget = (bulkThreshold: number): WriteTarget => ({
  object: 'Event__c',
  keyColumns: ['Key__c'],
  columns: ['Key__c', 'Starts__c', 'Day__c', 'Done__c', 'Count__c'],
  settings: { externalIdField: 'Key__c', bulkThreshold },
  sync: 'events-to-sf',
  recordIds: recordedIds(),
});
/** Values as Lockstep's sources hand them over (timestamps in UTC with micro-seconds, decimals as text, SQLite's 0/1), and four no field type can read. */
const EVENT_ROWS: Value[][] = [
  ['E-1', '2024-01-02T03:04:05.123456Z', '2024-01-02', true, 3],
  ['E-2', '2024-01-02 03:04:05+02:00', '2024-01-02T22:00:00.000Z', 0, '12.30'],
  ['E-3', '2024-01-02', null, 1, ''],
  ['E-4', '2024-06-30T23:59:59Z', '2024-06-30', 'false', 1.5],
  ['E-5', null, null, null, null],
  ['bad-day', '2024-01-02T03:04:05Z', '30/06/2024', true, 1],
  ['bad-time', '2024-01-02 25:00:00', '2024-01-02', true, 1],
  ['bad-count', '2024-01-02T03:04:05Z', '2024-01-02', true, 'NaN'],
  ['bad-done', '2024-01-02T03:04:05Z', '2024-01-02', 'yes', 1],
];

const upsert = (values: Value[], kind: WriteOperation['kind'] = 'upsert'): WriteOperation => ({ kind, key: [values[0] ?? null], values });
const remove = (key: Value): WriteOperation => ({ kind: 'delete', key: [key], values: [] });

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

// ---------------------------------------------------------------------------------------------
// The destination on its own

describe('Salesforce destination: settings', () => {
  it('fills defaults, accepts 62.0 or v62.0, and refuses what is not a version or a field name', () => {
    const loginUrl = 'https://acme.my.salesforce.com';
    const parsed = salesforceConnectionSettings.parse({ loginUrl, clientId: 'id', clientSecret: 'secret' });
    expect(parsed).toMatchObject({ loginUrl, apiVersion: 'v62.0', concurrency: 4, timeoutMs: 30_000 });
    expect(salesforceConnectionSettings.safeParse({ loginUrl, clientId: 'id', clientSecret: 's', apiVersion: '61.0' }).success).toBe(true);
    expect(salesforceConnectionSettings.safeParse({ loginUrl, clientId: 'id', clientSecret: 's', apiVersion: 'v61' }).success).toBe(false);
    expect(salesforceConnectionSettings.safeParse({ loginUrl, clientId: 'id', clientSecret: 's', apiVersion: '${SF_API}' }).success).toBe(true);
    expect(salesforceConnectionSettings.safeParse({ loginUrl, clientId: 'id', clientSecret: 's', password: 'x' }).success).toBe(false);
    expect(salesforceSyncSettings.parse({ externalIdField: 'External_Id__c' })).toEqual({ externalIdField: 'External_Id__c', bulkThreshold: 10_000, bulkJobSize: 50_000 });
    expect(salesforceSyncSettings.safeParse({}).success).toBe(false);
    expect(salesforceSyncSettings.safeParse({ externalIdField: 'Account.External_Id__c' }).success).toBe(false);
    expect(salesforceConnector.secrets).toEqual(['clientId', 'clientSecret']);
    expect(salesforceConnector.destination?.capabilities).toEqual({ deletes: true, upsert: true, maxBatchSize: 200, recordIds: true });
  });
});

describe('Salesforce destination: apiVersion', () => {
  it('refuses a version older than 46.0, under which Salesforce has no sObject Collections upsert, and writes under 46.0', async () => {
    const registry = new ConnectorRegistry({ clock: new WarpClock(), logger: silentLogger, backoff: FAST_BACKOFF, createRateLimiter }).register(salesforceConnector);
    const issues = (apiVersion: string) =>
      registry.checkSettings(salesforceConnector, { loginUrl: 'https://acme.my.salesforce.com', clientId: 'id', clientSecret: 's', apiVersion }).map((i) => `${i.path.join('.')}: ${i.message}`);
    for (const old of ['45.0', 'v31.0']) {
      expect(issues(old)).toEqual([expect.stringMatching(/^apiVersion: apiVersion is older than 46\.0, the first that upserts records by external id through sObject Collections .*write v46\.0 or later, e\.g\. v62\.0$/s)]);
    }
    expect(issues('46.0')).toEqual([]);
    expect(issues('v62.0')).toEqual([]);

    const sf = await start();
    const { destination } = await open(sf, { apiVersion: '46.0' });
    const writer = await destination.prepare(accountsTarget());
    expect(await writer.write([upsert(['A-1', 'Acme', null])])).toEqual([{ ok: true, id: expect.stringMatching(/^001/) }]);
  });
});

describe('Salesforce destination: loginUrl', () => {
  it("is required, and refuses Salesforce's generic login hosts, where the client credentials flow is not served", () => {
    const registry = new ConnectorRegistry({ clock: new WarpClock(), logger: silentLogger, backoff: FAST_BACKOFF, createRateLimiter }).register(salesforceConnector);
    const issues = (settings: Record<string, unknown>) => registry.checkSettings(salesforceConnector, { clientId: 'id', clientSecret: 's', ...settings }).map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({})).toEqual([expect.stringMatching(/^loginUrl: /)]);
    for (const generic of ['https://login.salesforce.com', 'https://TEST.salesforce.com/']) {
      expect(issues({ loginUrl: generic })).toEqual([expect.stringMatching(/^loginUrl: loginUrl is Salesforce's generic login host.*My Domain login URL.*https:\/\/yourcompany\.my\.salesforce\.com/)]);
    }
    expect(issues({ loginUrl: 'not a url' })).toEqual([expect.stringMatching(/^loginUrl: loginUrl is not a URL/)]);
    expect(issues({ loginUrl: 'https://acme.my.salesforce.com' })).toEqual([]);
    // A template is checked once the run has read it.
    expect(issues({ loginUrl: '${SF_LOGIN_URL}' })).toEqual([]);
  });
});

describe('Salesforce destination: logging in', () => {
  it('refuses a wrong secret or client id with a fatal error naming loginUrl and the fix, never the secret', async () => {
    const sf = await start({ clientSecret: 'the-real-secret-1234' });
    const wrongSecret = await failure(open(sf, { clientSecret: 'a-wrong-secret-5678' }));
    expect(wrongSecret.code).toBe(ErrorCode.Connection);
    expect(wrongSecret.retryable).toBe(false);
    expect(wrongSecret.message).toContain(sf.url);
    expect(wrongSecret.message).toContain('invalid_client');
    expect(wrongSecret.message).toMatch(/check clientSecret/);
    expect(wrongSecret.message).not.toContain('a-wrong-secret-5678');
    expect(wrongSecret.message).not.toContain('the-real-secret-1234');

    const wrongId = await failure(open(sf, { clientId: 'nobody' }));
    expect(wrongId.message).toMatch(/invalid_client_id.*check clientId/);
  });

  it('reports a login URL that answers an HTML page, and one where nothing listens', async () => {
    const sf = await start();
    sf.failNext(1, { status: 200, body: '<!DOCTYPE html><html><body>Welcome to our portal</body></html>', only: ['token'] });
    const html = await failure(open(sf));
    expect(html.code).toBe(ErrorCode.Connection);
    expect(html.message).toMatch(/HTML page.*Welcome to our portal.*check loginUrl/);

    await sf.close();
    const gone = await failure(open(sf));
    expect(gone.message).toContain(sf.url);
    expect(gone.message).toMatch(/ECONNREFUSED/);
    expect(gone.message).not.toContain(sf.clientSecret);
  });

  it('refuses a token answer without instance_url, never quoting the token it holds', async () => {
    const sf = await start();
    const token = '00DXX0000001!AQ-not-to-be-shown';
    sf.failNext(1, { status: 200, body: { access_token: token, token_type: 'Bearer', scope: 'api' }, only: ['token'] });
    const error = await failure(open(sf));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/access token but no instance_url.*check loginUrl/);
    expect(error.message).not.toContain(token);
    expect(error.stack).not.toContain(token);
  });

  it('gets a new token once when the session expires mid-run, shared by the calls that saw it', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    expect((await writer.write([upsert(['A-1', 'Acme', null])]))[0]).toMatchObject({ ok: true });
    sf.expireTokens();
    const rows = Array.from({ length: 800 }, (_, i) => upsert([`A-${i + 2}`, `Account ${i + 2}`, null]));
    const outcomes = await writer.write(rows);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(sf.stats().requests.token).toBe(2);
    expect(sf.records('Account')).toHaveLength(801);
  });
});

describe('Salesforce destination: prepare checks the object and its fields', () => {
  it('refuses an unknown sObject, naming it and the fix', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const error = await failure(destination.prepare(accountsTarget({ object: 'Acount' })));
    expect(error.code).toBe(ErrorCode.Schema);
    expect(error.message).toContain('sObject "Acount", which salesforce destination "sf" does not have (did you mean "Account"?)');
    expect(error.message).toMatch(/custom objects end in __c/);
  });

  it('refuses an apiVersion the org does not serve, naming the versions it does, instead of blaming the sObject', async () => {
    const sf = await start({ apiVersions: ['60.0', '61.0', '62.0'] });
    const { destination } = await open(sf, { apiVersion: 'v99.0' });
    const error = await failure(destination.prepare(accountsTarget()));
    expect(error.code).toBe(ErrorCode.Schema);
    expect(error.message).toBe(
      'salesforce destination "sf" does not serve REST API version 99.0 (apiVersion v99.0); it serves 60.0 to 62.0 — set apiVersion to one of them, e.g. apiVersion: v62.0',
    );
    const { destination: served } = await open(sf, { apiVersion: '61.0' });
    await served.prepare(accountsTarget());
  });

  it('refuses a field the object does not have, with did-you-mean', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const error = await failure(destination.prepare(accountsTarget({ columns: ['External_Id__c', 'Nmae'] })));
    expect(error.code).toBe(ErrorCode.Schema);
    expect(error.message).toContain('sync "accounts-to-sf" writes field "Nmae", which Account does not have (did you mean "Name"?)');
    expect(error.message).toMatch(/writable fields: .*Industry/);
    // Salesforce's describe leaves out a field hidden from the user as if it did not exist.
    expect(error.message).toContain("a field that exists but that field-level security hides from the connected app's Run As user is not in Salesforce's describe");
  });

  it('refuses a field the Run As user cannot write, naming field-level security as well as formula and system fields', async () => {
    const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
    (schema.Account as { fields: Record<string, object> }).fields.Tier__c = { type: 'string', createable: false, updateable: false };
    const sf = await start({ schema });
    const { destination } = await open(sf);
    const error = await failure(destination.prepare(accountsTarget({ columns: ['External_Id__c', 'Name', 'Tier__c'] })));
    expect(error.code).toBe(ErrorCode.Schema);
    expect(error.message).toContain("writes field Tier__c of Account, which the connected app's Run As user cannot write");
    expect(error.message).toContain('Account › Fields & Relationships › Tier__c › Set Field-Level Security');
  });

  it('refuses an externalIdField that is not an external id, or that the key is not written to', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const notExternal = await failure(destination.prepare(accountsTarget({ settings: { externalIdField: 'Name' }, keyColumns: ['Name'] })));
    expect(notExternal.code).toBe(ErrorCode.Schema);
    expect(notExternal.message).toContain('externalIdField Name of Account is not an external id field');
    expect(notExternal.message).toContain('choose one of Account\'s external id fields: External_Id__c');

    const misspelt = await failure(destination.prepare(accountsTarget({ settings: { externalIdField: 'External_ID_c' } })));
    expect(misspelt.message).toContain('(did you mean "External_Id__c"?)');

    const unmapped = await failure(destination.prepare(accountsTarget({ keyColumns: ['id'], columns: ['id', 'Name'] })));
    expect(unmapped.message).toContain('its model\'s primary key goes to field "id"');
    expect(unmapped.message).toContain('mappings: [ { from: id, to: External_Id__c } ]');
    // The fix names the model's column, not the field a mapping already writes it to.
    const renamed = await failure(destination.prepare(accountsTarget({ keyColumns: ['Site'], columns: ['Site', 'Name'], modelColumns: ['account_no', 'name'] })));
    expect(renamed.message).toContain('mappings: [ { from: account_no, to: External_Id__c } ]');
  });

  it('checks a parent named by external id: a relationship, and an external id of the object it points to', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const prepare = (column: string) => destination.prepare(contactsTarget({ columns: ['External_Id__c', 'LastName', column] }));
    expect((await failure(prepare('Acount.External_Id__c'))).message).toContain('Contact has no relationship "Acount" (did you mean "Account.External_Id__c"?)');
    expect((await failure(prepare('AccountId.External_Id__c'))).message).toContain('(did you mean "Account.External_Id__c"?)');
    const notExternal = await failure(prepare('Account.Name'));
    expect(notExternal.code).toBe(ErrorCode.Schema);
    expect(notExternal.message).toContain('Name of Account is neither an external id field nor one Salesforce looks records up by (idLookup)');
    expect(notExternal.message).toContain('Account.External_Id__c');
    expect((await failure(prepare('Account.External_Id_c'))).message).toContain('(did you mean "Account.External_Id__c"?)');
    await expect(prepare('account.external_id__c')).resolves.toBeDefined();
  });

  it('refuses a parent written two ways, by its Id and its external id, or by two of its fields', async () => {
    const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
    (schema.Account as { fields: Record<string, object> }).fields.Legacy_Id__c = { type: 'string', externalId: true, unique: true };
    const sf = await start({ schema });
    const { destination } = await open(sf);
    const prepare = (...columns: string[]) => destination.prepare(contactsTarget({ columns: ['External_Id__c', 'LastName', ...columns] }));
    const both = await failure(prepare('Account.External_Id__c', 'AccountId'));
    expect(both.code).toBe(ErrorCode.Schema);
    expect(both.message).toContain('writes Contact\'s parent AccountId twice, as "Account.External_Id__c" and as "AccountId", which Salesforce refuses');
    expect(both.message).toContain('map the parent one way only');
    const twoFields = await failure(prepare('Account.External_Id__c', 'Account.Legacy_Id__c'));
    expect(twoFields.message).toContain('as "Account.External_Id__c" and as "Account.Legacy_Id__c"');
  });

  it('names a parent by a field Salesforce looks records up by (idLookup), as ReportsTo.Email, in both write paths', async () => {
    const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
    (schema.Contact as { fields: Record<string, object> }).fields.ReportsToId = { type: 'reference', referenceTo: 'Contact', relationshipName: 'ReportsTo', label: 'Reports To ID' };
    const sf = await start({ schema });
    const { destination } = await open(sf);
    const columns = ['External_Id__c', 'LastName', 'Email', 'ReportsTo.Email'];
    for (const bulkThreshold of [10_000, 0]) {
      const writer = await destination.prepare(contactsTarget({ columns, settings: { externalIdField: 'External_Id__c', bulkThreshold } }));
      const boss = `boss${bulkThreshold}@example.com`;
      const [lead] = await writer.write([upsert([`B-${bulkThreshold}`, 'Boss', boss, null])]);
      const outcomes = await writer.write([upsert([`R-${bulkThreshold}`, 'Report', `report${bulkThreshold}@example.com`, boss]), upsert([`X-${bulkThreshold}`, 'Orphan', null, 'nobody@example.com'])]);
      expect(outcomes[0]).toMatchObject({ ok: true });
      expect(sf.get('Contact', 'External_Id__c', `R-${bulkThreshold}`)?.ReportsToId).toBe(lead && lead.ok ? lead.id : 'missing');
      expect(reason(outcomes[1])).toMatch(/^INVALID_FIELD: Foreign key external ID: nobody@example.com not found for field Email in entity Contact/);
    }
  });

  it('describes each object once per connection', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    await destination.prepare(contactsTarget());
    await destination.prepare(contactsTarget());
    await destination.prepare(accountsTarget());
    expect(sf.stats().requests.describe).toBe(2);
  });
});

describe('Salesforce destination: sObject Collections', () => {
  it('upserts, answering per record in order: ids for the delivered, statusCode: message for the refused', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    expect(await writer.write([])).toEqual([]);
    const outcomes = await writer.write([
      upsert(['A-1', 'Acme', 'Technology']),
      upsert(['A-2', null, 'Retail']),
      upsert(['A-3', 'Globex', null]),
      upsert(['', 'No key', null]),
    ]);
    expect(outcomes[0]).toEqual({ ok: true, id: sf.get('Account', 'External_Id__c', 'A-1')?.Id });
    expect(reason(outcomes[1])).toBe('REQUIRED_FIELD_MISSING: Required fields are missing: [Name]');
    expect(outcomes[2]).toEqual({ ok: true, id: sf.get('Account', 'External_Id__c', 'A-3')?.Id });
    expect(reason(outcomes[3])).toMatch(/External_Id__c is empty/);
    expect(sf.records('Account').map((r) => r.External_Id__c).sort()).toEqual(['A-1', 'A-3']);

    // Again, changed: the same records are updated (same ids), a null clears a field.
    const again = await writer.write([upsert(['A-1', 'Acme Corp', null]), upsert(['A-3', 'Globex', 'Energy'])]);
    expect(again).toEqual([outcomes[0], outcomes[2]]);
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toMatchObject({ Name: 'Acme Corp' });
    expect(sf.get('Account', 'External_Id__c', 'A-1')?.Industry).toBeUndefined();
  });

  it('sends a parent by its external id: a contact before its account is rejected with Salesforce\'s error, then accepted', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const contacts = await destination.prepare(contactsTarget());
    const early = await contacts.write([upsert(['C-1', 'Lovelace', 'A-1']), upsert(['C-2', 'Hopper', null])]);
    expect(reason(early[0])).toBe(
      'INVALID_FIELD: Foreign key external ID: A-1 not found for field External_Id__c in entity Account' +
      ' — no Account has External_Id__c A-1 yet: deliver that Account before this row (run the sync writing Account first, e.g. ahead of this one in a sequence, and fix its row there if it was rejected); this row is sent again on every run until then',
    );
    expect(early[1]).toMatchObject({ ok: true });

    const accounts = await destination.prepare(accountsTarget());
    const [account] = await accounts.write([upsert(['A-1', 'Acme', null])]);
    const later = await contacts.write([upsert(['C-1', 'Lovelace', 'A-1'])]);
    expect(later[0]).toMatchObject({ ok: true });
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBe(account?.ok ? account.id : 'missing');
    expect(sf.get('Contact', 'External_Id__c', 'C-2')?.AccountId).toBeUndefined();
  });

  it('refuses a lookup field\'s value that is not a record id (the parent\'s external id mapped to AccountId), naming the ways to name a parent', async () => {
    const sf = await start();
    const [account] = sf.seed('Account', [{ External_Id__c: 'A-1', Name: 'Acme' }]);
    const { destination } = await open(sf);
    for (const bulkThreshold of [10_000, 0]) {
      const contacts = await destination.prepare(contactsTarget({ columns: ['External_Id__c', 'LastName', 'AccountId'], settings: { externalIdField: 'External_Id__c', bulkThreshold } }));
      const p = bulkThreshold === 0 ? 'b' : 'c';
      const outcomes = await contacts.write([upsert([`${p}1`, 'Lovelace', 'A-1']), upsert([`${p}2`, 'Hopper', account as string]), upsert([`${p}3`, 'Noether', null])]);
      expect(reason(outcomes[0])).toBe(
        'AccountId is a lookup to Account, which takes a Salesforce record id (15 or 18 letters and digits), not "A-1" — map the column to Account.<an External ID field of Account> (e.g. Account.External_Id__c) to name the parent by its external id, or add lookup: { sync: <the parent\'s sync> } to the mapping to send the id that sync recorded — or select the parent\'s Salesforce Id in the model\'s query; the row is tried again on the next run',
      );
      expect(outcomes[1]).toMatchObject({ ok: true });
      expect(outcomes[2]).toMatchObject({ ok: true });
      expect(sf.get('Contact', 'External_Id__c', `${p}2`)?.AccountId).toBe(account);
      expect(sf.get('Contact', 'External_Id__c', `${p}1`)).toBeUndefined();
    }
  });

  it('splits more than 200 rows into calls of 200 at most, several at once, and sends numbers to text fields as text', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare({ ...accountsTarget(), columns: ['External_Id__c', 'Name', 'NumberOfEmployees'] });
    expect(writer.concurrentWrites).toBe(4);
    const outcomes = await writer.write(Array.from({ length: 450 }, (_, i) => upsert([i + 1, `Account ${i + 1}`, i])));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    const stats = sf.stats();
    expect(stats.requests.upsert).toBe(3);
    expect(stats.maxRecordsPerCallByKind.upsert).toBe(200);
    expect(sf.get('Account', 'External_Id__c', '450')).toMatchObject({ Name: 'Account 450', NumberOfEmployees: 449 });
  });

  it('writes 5,000 rows, rejecting exactly the bad ones', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    const bad = new Set([1000, 4000]);
    const outcomes = await writer.write(Array.from({ length: 5000 }, (_, i) => upsert([`A-${i}`, bad.has(i) ? null : `Account ${i}`, null])));
    outcomes.forEach((outcome, i) => expect(outcome.ok).toBe(!bad.has(i)));
    expect(sf.records('Account')).toHaveLength(4998);
  });

  it('sends dates, dateTimes, numbers and checkboxes in the forms Salesforce reads, rejecting only the row whose value has none', async () => {
    const sf = await start({ schema: EVENT_SCHEMA });
    const { destination } = await open(sf);
    // Through sObject Collections, then through a Bulk API 2.0 job.
    for (const [bulkThreshold, p] of [[10_000, 'c'], [0, 'b']] as const) {
      const writer = await destination.prepare(eventsTarget(bulkThreshold));
      const outcomes = await writer.write(EVENT_ROWS.map(([key, ...rest]) => upsert([`${p}${String(key)}`, ...rest])));
      expect(outcomes.map((o) => o.ok)).toEqual([true, true, true, true, true, false, false, false, false]);
      expect(reason(outcomes[5])).toBe(
        'Day__c is a date field, which takes yyyy-MM-dd (e.g. 2024-06-30), not "30/06/2024" — select a date or a timestamp in the model\'s query; the row is tried again on the next run',
      );
      expect(reason(outcomes[6])).toMatch(/^Starts__c is a dateTime field, which takes yyyy-MM-ddTHH:mm:ss.SSSZ .*, not "2024-01-02 25:00:00"/);
      expect(reason(outcomes[7])).toMatch(/^Count__c is a double field, which takes a finite number, not "NaN"/);
      expect(reason(outcomes[8])).toMatch(/^Done__c is a checkbox, which takes true or false, not "yes"/);
      const event = (key: string) => sf.get('Event__c', 'Key__c', `${p}${key}`);
      expect(event('E-1')).toMatchObject({ Starts__c: '2024-01-02T03:04:05.123Z', Day__c: '2024-01-02', Done__c: true, Count__c: 3 });
      expect(event('E-2')).toMatchObject({ Starts__c: '2024-01-02T01:04:05.000Z', Day__c: '2024-01-02', Done__c: false, Count__c: 12.3 });
      expect(event('E-3')).toMatchObject({ Starts__c: '2024-01-02T00:00:00.000Z', Done__c: true });
      expect(event('E-3')?.Count__c).toBeUndefined();
      expect(event('E-4')).toMatchObject({ Starts__c: '2024-06-30T23:59:59.000Z', Day__c: '2024-06-30', Done__c: false, Count__c: 1.5 });
      // A checkbox is never null in Salesforce: none is unchecked.
      expect(event('E-5')).toMatchObject({ Done__c: false });
    }
    expect(sf.records('Event__c')).toHaveLength(10);
  });

  it('rejects a text longer than its field before sending, naming the field, its length and the fix, without quoting the whole text', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const long = 'x'.repeat(100_000);
    // Through sObject Collections, then through a Bulk API 2.0 job.
    for (const [bulkThreshold, p] of [[10_000, 'c'], [0, 'b']] as const) {
      const writer = await destination.prepare(accountsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold }, modelColumns: ['id', 'name', 'industry'] }));
      const upserts = sf.stats().requests.upsert + sf.stats().requests.bulkCreate;
      const outcomes = await writer.write([upsert([`${p}-1`, long, null]), upsert([`${p}-2`, 'é'.repeat(255), null])]);
      expect(reason(outcomes[0])).toBe(
        'Name takes at most 255 characters, not "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" (100000 characters) — cut it to 255 in the model\'s query (e.g. left(name, 255)), or widen the field in Salesforce; the row is tried again on the next run',
      );
      expect(outcomes[1]?.ok).toBe(true);
      expect(sf.stats().requests.upsert + sf.stats().requests.bulkCreate).toBe(upserts + 1);
      expect(sf.get('Account', 'External_Id__c', `${p}-1`)).toBeUndefined();
    }
  });

  it('rejects only the rows holding a value Salesforce could not read (JSON_PARSER_ERROR refuses the whole call), the rest landing', async () => {
    const sf = await start({ schema: { Shift__c: { fields: { Key__c: { type: 'string', externalId: true }, Ends__c: { type: 'time' }, Note__c: { type: 'string' } } } } });
    const { destination } = await open(sf);
    const writer = await destination.prepare({
      object: 'Shift__c',
      keyColumns: ['Key__c'],
      columns: ['Key__c', 'Ends__c', 'Note__c'],
      settings: { externalIdField: 'Key__c' },
      sync: 'shifts-to-sf',
      recordIds: recordedIds(),
    });
    // Salesforce's answer when one record's time is in a form it does not read.
    const message = 'Cannot deserialize instance of time from VALUE_STRING value 10:00:00.000Z or request may be missing a required field at [line:1, column:154]';
    sf.failNext(1, { status: 400, body: [{ message, errorCode: 'JSON_PARSER_ERROR' }], only: ['upsert'] });
    const outcomes = await writer.write([upsert(['S-1', '09:00:00.000Z', '10:00:00.000Z']), upsert(['S-2', '10:00', null]), upsert(['S-3', '17:30:00.000Z', null])]);
    expect(outcomes[0]).toEqual({ ok: true, id: sf.get('Shift__c', 'Key__c', 'S-1')?.Id });
    expect(reason(outcomes[1])).toBe(`JSON_PARSER_ERROR: ${message} — Salesforce cannot read this value for its field; fix its form in the model's query`);
    expect(outcomes[2]).toEqual({ ok: true, id: sf.get('Shift__c', 'Key__c', 'S-3')?.Id });
    expect(sf.stats().requests.upsert).toBe(2);

    // An answer that names no value still fails the write, naming the call.
    sf.failNext(1, { status: 400, body: [{ message: 'Unexpected character (\'x\' (code 120))', errorCode: 'JSON_PARSER_ERROR' }], only: ['upsert'] });
    expect((await failure(writer.write([upsert(['S-4', null, null])]))).message).toMatch(/answered 400 JSON_PARSER_ERROR: Unexpected character/);
  });

  it('says how to fix a value a restricted picklist refuses, after Salesforce\'s message', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    // Salesforce's record error for a value that is not one of a restricted picklist's.
    const message = 'Industry: bad value for restricted picklist field: Tech';
    sf.failNext(1, { status: 200, body: [{ success: false, errors: [{ statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', message, fields: ['Industry'] }] }], only: ['upsert'] });
    const outcomes = await writer.write([upsert(['A-1', 'Account 1', 'Tech'])]);
    expect(reason(outcomes[0])).toBe(
      `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: ${message} — the field is a restricted picklist, which takes only the values listed for it (for the record's record type):` +
        ' map the model\'s values to them in its query, or add the value to the picklist in Setup › Object Manager; the row is tried again on the next run',
    );
  });

  it('sends a time in the form Salesforce reads (HH:mm:ss.SSSZ), rejecting only a row whose time has none', async () => {
    const sf = await start({ schema: { Shift__c: { fields: { Key__c: { type: 'string', externalId: true }, Ends__c: { type: 'time' } } } } });
    const { destination } = await open(sf);
    // Times as PostgreSQL, MySQL and DuckDB hand them over: seconds, micro-seconds, a zone.
    const times = ['14:05', '14:05:09', '14:05:09.123456', '14:05:09Z', '14:05:09+02', '00:30:00-01:30', '25:00'];
    for (const bulkThreshold of [10_000, 0]) {
      const writer = await destination.prepare({
        object: 'Shift__c',
        keyColumns: ['Key__c'],
        columns: ['Key__c', 'Ends__c'],
        settings: { externalIdField: 'Key__c', bulkThreshold },
        sync: 'shifts-to-sf',
        recordIds: recordedIds(),
      });
      const outcomes = await writer.write(times.map((time, n) => upsert([`S-${bulkThreshold}-${n}`, time])));
      expect(outcomes.map((o) => o.ok)).toEqual([true, true, true, true, true, true, false]);
      expect(reason(outcomes[6])).toBe(
        'Ends__c is a time field, which takes HH:mm:ss.SSSZ (e.g. 14:05:00.000Z), not "25:00" — select a time of day in the model\'s query; the row is tried again on the next run',
      );
      expect(times.slice(0, 6).map((_, n) => sf.get('Shift__c', 'Key__c', `S-${bulkThreshold}-${n}`)?.Ends__c)).toEqual([
        '14:05:00.000Z',
        '14:05:09.000Z',
        '14:05:09.123Z',
        '14:05:09.000Z',
        '12:05:09.000Z',
        '02:00:00.000Z',
      ]);
    }
  });

  it('sends a list to a multi-select picklist as its values separated by semicolons', async () => {
    const sf = await start({ schema: { Member__c: { fields: { Key__c: { type: 'string', externalId: true }, Tiers__c: { type: 'multipicklist' }, Note__c: { type: 'string' } } } } });
    const { destination } = await open(sf);
    for (const bulkThreshold of [10_000, 0]) {
      const writer = await destination.prepare({
        object: 'Member__c',
        keyColumns: ['Key__c'],
        columns: ['Key__c', 'Tiers__c', 'Note__c'],
        settings: { externalIdField: 'Key__c', bulkThreshold },
        sync: 'members-to-sf',
        recordIds: recordedIds(),
      });
      // A PostgreSQL text[] or a DuckDB list arrives as JSON text.
      const p = bulkThreshold === 0 ? 'b' : 'c';
      const outcomes = await writer.write([upsert([`${p}1`, '["Gold","Silver"]', '["kept","as text"]']), upsert([`${p}2`, 'Gold;Bronze', null]), upsert([`${p}3`, '[]', null])]);
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(sf.get('Member__c', 'Key__c', `${p}1`)).toMatchObject({ Tiers__c: 'Gold;Silver', Note__c: '["kept","as text"]' });
      expect(sf.get('Member__c', 'Key__c', `${p}2`)).toMatchObject({ Tiers__c: 'Gold;Bronze' });
      expect(sf.get('Member__c', 'Key__c', `${p}3`)?.Tiers__c).toBeUndefined();
    }
  });

  it('in update mode writes only records that exist (found by external id), rejecting the rest', async () => {
    const sf = await start();
    const [a1] = sf.seed('Account', [{ External_Id__c: 'A-1', Name: 'Acme' }]);
    sf.seed('Account', [{ External_Id__c: 'A-2', Name: 'Globex' }]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ recordIds: recordedIds({ '["A-1"]': a1 as string }) }));
    sf.resetStats();
    const outcomes = await writer.write([
      upsert(['A-1', 'Acme 2', null], 'update'),
      upsert(['A-2', 'Globex 2', null], 'update'),
      upsert(['A-9', 'Nobody', null], 'update'),
    ]);
    expect(outcomes[0]).toEqual({ ok: true, id: a1 });
    expect(outcomes[1]).toMatchObject({ ok: true });
    expect(reason(outcomes[2])).toBe("no Account with External_Id__c = 'A-9' (mode update does not create records; the row is tried again on the next run)");
    expect(sf.records('Account')).toHaveLength(2);
    // Every key was looked up, in one query.
    expect(sf.stats().requests.query).toBe(1);
  });

  it('in update mode does not make again a record this sync delivered that was deleted in Salesforce since', async () => {
    const sf = await start();
    const [a1] = sf.seed('Account', [{ External_Id__c: 'A-1', Name: 'Acme' }]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ recordIds: recordedIds({ '["A-1"]': a1 as string }) }));
    const gone = await writer.write([remove('A-1')]);
    expect(gone).toEqual([{ ok: true }]);
    expect(sf.records('Account')).toHaveLength(0);
    const outcomes = await writer.write([upsert(['A-1', 'Acme 2', null], 'update')]);
    expect(reason(outcomes[0])).toBe("no Account with External_Id__c = 'A-1' (mode update does not create records; the row is tried again on the next run)");
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('in insert mode upserts: a record that already has the external id is updated, not duplicated', async () => {
    const sf = await start();
    sf.seed('Account', [{ External_Id__c: 'A-1', Name: 'Acme' }]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    const outcomes = await writer.write([upsert(['A-1', 'Acme again', null], 'insert'), upsert(['A-2', 'Globex', null], 'insert')]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(sf.records('Account')).toHaveLength(2);
  });
});

describe('Salesforce destination: deletes', () => {
  it('deletes by the ids the sync recorded, counting a record already gone as deleted', async () => {
    const sf = await start();
    const ids = sf.seed('Account', [
      { External_Id__c: 'A-1', Name: 'Acme' },
      { External_Id__c: 'A-2', Name: 'Globex' },
      { External_Id__c: 'A-3', Name: 'Initech' },
    ]);
    const { destination } = await open(sf);
    const recorded = { '["A-1"]': ids[0] as string, '["A-2"]': ids[1] as string };
    const writer = await destination.prepare(accountsTarget({ recordIds: recordedIds(recorded) }));
    sf.resetStats();
    expect(await writer.write([remove('A-1')])).toEqual([{ ok: true }]);
    expect(sf.stats().requests).toMatchObject({ delete: 1, query: 0 });
    // Deleted again (a re-sent batch) and deleted by someone else: both count as deleted.
    expect(await writer.write([remove('A-1'), upsert(['A-3', 'Initech 2', null])])).toEqual([{ ok: true }, { ok: true, id: ids[2] }]);
    expect(sf.records('Account').map((r) => r.External_Id__c).sort()).toEqual(['A-2', 'A-3']);
  });

  it('looks up a record to delete by an external id that is not Unique as written, leaving the record of a key that differs only in case', async () => {
    const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
    (schema.Account as { fields: Record<string, object> }).fields.External_Id__c = { type: 'string', externalId: true, length: 255 };
    const sf = await start({ schema });
    sf.seed('Account', [
      { External_Id__c: 'A-1', Name: 'Acme' },
      { External_Id__c: 'a-1', Name: 'Acme twin' },
    ]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    expect(await writer.write([remove('a-1')])).toEqual([{ ok: true }]);
    expect(sf.records('Account').map((r) => r.External_Id__c)).toEqual(['A-1']);
  });

  it('looks records up by external id when no id was recorded, and answers a missing one as deleted', async () => {
    const sf = await start();
    sf.seed('Account', [
      { External_Id__c: 'A-1', Name: 'Acme' },
      { External_Id__c: "O'Brien & Co", Name: 'Quoted' },
    ]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    sf.resetStats();
    expect(await writer.write([remove('a-1'), remove("O'Brien & Co"), remove('A-404')])).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(sf.records('Account')).toHaveLength(0);
    expect(sf.stats().requests).toMatchObject({ query: 1, delete: 1 });
  });

  it('deletes more than 200 records in calls of 200 ids at most', async () => {
    const sf = await start();
    const ids = sf.seed('Account', Array.from({ length: 450 }, (_, i) => ({ External_Id__c: `A-${i}`, Name: `Account ${i}` })));
    const { destination } = await open(sf);
    const recorded = Object.fromEntries(ids.map((id, i) => [`["A-${i}"]`, id]));
    const writer = await destination.prepare(accountsTarget({ recordIds: recordedIds(recorded) }));
    const outcomes = await writer.write(ids.map((_, i) => remove(`A-${i}`)));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(sf.stats().maxRecordsPerCallByKind.delete).toBe(200);
    expect(sf.records('Account')).toHaveLength(0);
  });
});

describe('Salesforce destination: Bulk API 2.0', () => {
  it('writes through an ingest job above bulkThreshold: create, upload, close, poll, results mapped back to rows', async () => {
    const sf = await start({ bulkPolls: 2 });
    const { destination, clock } = await open(sf);
    const writer = await destination.prepare(contactsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 5, bulkJobSize: 1000 } }));
    sf.seed('Account', [{ External_Id__c: 'A-1', Name: 'Acme' }]);
    expect(writer.planAhead).toBe(5);
    expect(writer.batchSize).toBeUndefined();
    writer.plan?.({ rows: 6, complete: false });
    expect(writer.batchSize).toBe(1000);
    const rows = [
      upsert(['C-1', 'Lovelace', 'A-1']),
      upsert(['C-2', null, 'A-1']),
      upsert(['C-3', 'Hopper, "Grace"', null]),
      upsert(['C-4', 'Turing', 'A-404']),
      upsert([5, 'Number key', 'A-1']),
      upsert(['c-6', 'Case', 'A-1']),
    ];
    const outcomes = await writer.write(rows);
    expect(outcomes[0]).toEqual({ ok: true, id: sf.get('Contact', 'External_Id__c', 'C-1')?.Id });
    expect(reason(outcomes[1])).toBe('REQUIRED_FIELD_MISSING: Required fields are missing: [LastName]');
    expect(outcomes[2]).toEqual({ ok: true, id: sf.get('Contact', 'External_Id__c', 'C-3')?.Id });
    expect(reason(outcomes[3])).toBe(
      'INVALID_FIELD: Foreign key external ID: A-404 not found for field External_Id__c in entity Account' +
      ' — no Account has External_Id__c A-404 yet: deliver that Account before this row (run the sync writing Account first, e.g. ahead of this one in a sequence, and fix its row there if it was rejected); this row is sent again on every run until then',
    );
    expect(outcomes[4]).toEqual({ ok: true, id: sf.get('Contact', 'External_Id__c', '5')?.Id });
    expect(outcomes[5]).toEqual({ ok: true, id: sf.get('Contact', 'External_Id__c', 'c-6')?.Id });
    expect(sf.get('Contact', 'External_Id__c', 'C-3')).toMatchObject({ LastName: 'Hopper, "Grace"' });
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-1')?.Id);
    const { requests } = sf.stats();
    expect(requests).toMatchObject({ bulkCreate: 1, bulkUpload: 1, bulkClose: 1, bulkStatus: 3, bulkResults: 2, upsert: 0 });
    // The polls waited on the injected clock.
    expect(clock.slept).toBeGreaterThanOrEqual(500 + 1000 + 2000);
  });

  it("clears a contact's account through its lookup field's own column (AccountId #N/A), not by #N/A in Account.External_Id__c", async () => {
    const sf = await start();
    const [a1] = sf.seed('Account', [{ External_Id__c: 'A-1', Name: 'Acme' }]) as [string];
    sf.seed('Contact', [
      { External_Id__c: 'C-1', LastName: 'One', AccountId: a1 },
      { External_Id__c: 'C-2', LastName: 'Two', AccountId: a1 },
    ]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(contactsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 0 } }));
    expect(await writer.write([upsert(['C-1', 'One', null]), upsert(['C-2', 'Two', 'A-1']), upsert(['C-3', 'Three', ''])])).toEqual([
      { ok: true, id: expect.any(String) },
      { ok: true, id: expect.any(String) },
      { ok: true, id: expect.any(String) },
    ]);
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBeUndefined();
    expect(sf.get('Contact', 'External_Id__c', 'C-2')?.AccountId).toBe(a1);
    expect(sf.get('Contact', 'External_Id__c', 'C-3')?.AccountId).toBeUndefined();
  });

  it('reads only successfulResults when no row failed', async () => {
    const sf = await start({ bulkPolls: 0 });
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 0 } }));
    expect(writer.planAhead).toBeUndefined();
    const outcomes = await writer.write(Array.from({ length: 20 }, (_, i) => upsert([`A-${i}`, `Account ${i}`, null])));
    expect(outcomes.every((o) => o.ok && o.id)).toBe(true);
    expect(sf.stats().requests).toMatchObject({ bulkCreate: 1, bulkUpload: 1, bulkClose: 1, bulkStatus: 1, bulkResults: 1 });
  });

  it('fails with Salesforce\'s errorMessage when a job ends Failed', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 0 } }));
    sf.failNext(1, { status: 200, body: { id: '750000000000001AAA', state: 'Failed', errorMessage: 'InvalidBatch : Field name not found : Nmae' }, only: ['bulkStatus'] });
    const error = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/Bulk API job \S+ on Account ended Failed: InvalidBatch : Field name not found : Nmae — its rows were not written/);
  });

  it('answers the rows a job that ended Failed part-way processed, and the others as retryable', async () => {
    const sf = await start({ bulkPolls: 0, bulkRecordsPerDay: 3 });
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 0 } }));
    const outcomes = await writer.write([upsert(['A-1', 'One', null]), upsert(['A-2', null, null]), upsert(['A-3', 'Three', null]), upsert(['A-4', 'Four', null]), upsert(['A-5', 'Five', null])]);
    expect(outcomes[0]).toEqual({ ok: true, id: sf.get('Account', 'External_Id__c', 'A-1')?.Id });
    expect(outcomes[1]).toEqual({ ok: false, reason: 'REQUIRED_FIELD_MISSING: Required fields are missing: [Name]' });
    expect(outcomes[2]).toEqual({ ok: true, id: sf.get('Account', 'External_Id__c', 'A-3')?.Id });
    for (const outcome of outcomes.slice(3)) {
      expect(outcome).toMatchObject({ ok: false, retryable: true });
      expect(reason(outcome)).toMatch(/^Salesforce did not process this row: Bulk API job \S+ on Account ended Failed before it \(Exceeded .*\); it is sent again$/);
    }
  });

  it('retries a poll that fails transiently without starting the job again', async () => {
    const sf = await start({ bulkPolls: 1 });
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 0 } }));
    sf.failNext(2, { status: 503, only: ['bulkStatus'] });
    const outcomes = await writer.write([upsert(['A-1', 'Acme', null])]);
    expect(outcomes[0]).toMatchObject({ ok: true });
    expect(sf.stats().requests.bulkCreate).toBe(1);
  });
});

describe('Salesforce destination: a cancelled run', () => {
  it('stops waiting for a Bulk API job when the run is cancelled, and aborts the job', async () => {
    const sf = await start({ bulkPolls: 1_000_000 });
    const { destination } = await open(sf);
    const cancel = new AbortController();
    const writer = await destination.prepare(accountsTarget({ settings: { externalIdField: 'External_Id__c', bulkThreshold: 0 }, signal: cancel.signal }));
    const writing = writer.write([upsert(['A-1', 'Acme', null])]);
    const stopped = writing.then(
      () => null,
      (error: unknown) => error,
    );
    // Polling (each poll a few ms of real time here) until cancelled.
    while (sf.stats().requests.bulkStatus < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    cancel.abort('cancel');
    expect(await stopped).toBe('cancel');
    // The close of the upload, then the abort.
    await vi.waitFor(() => expect(sf.stats().requests.bulkClose).toBe(2));
    const polls = sf.stats().requests.bulkStatus;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sf.stats().requests.bulkStatus).toBe(polls);
  });
});

describe('Salesforce destination: failures', () => {
  it('throws a retryable error on 5xx, a reset connection and a timeout', async () => {
    const sf = await start();
    const { destination } = await open(sf, { timeoutMs: 1000 });
    const writer = await destination.prepare(accountsTarget());
    sf.failNext(1, { status: 503, only: ['upsert'] });
    const unavailable = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(unavailable.retryable).toBe(true);
    expect(unavailable.message).toContain('upsert 1 Account records by External_Id__c (PATCH /services/data/v62.0/composite/sobjects/Account/External_Id__c) answered 503: SERVER_UNAVAILABLE: Service Unavailable');
    sf.failNext(1, { action: 'reset', only: ['upsert'] });
    expect((await failure(writer.write([upsert(['A-1', 'Acme', null])]))).retryable).toBe(true);
    sf.failNext(1, { action: 'hang', only: ['upsert'] });
    const hung = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(hung.retryable).toBe(true);
    expect(hung.message).toMatch(/no answer within 1 s/);
    expect(await writer.write([upsert(['A-1', 'Acme', null])])).toEqual([{ ok: true, id: expect.any(String) }]);
  });

  it('reports an HTML page and a body cut short, naming the object, the status and the first 200 characters, never the token', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    const page = `<html><head><title>Down for Maintenance</title></head><body>${'x'.repeat(500)}</body></html>`;
    sf.failNext(1, { status: 200, body: page, only: ['upsert'] });
    const html = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(html.retryable).toBe(false);
    expect(html.message).toContain('upsert 1 Account records by External_Id__c');
    expect(html.message).toContain('answered 200 with an HTML page, not JSON: <html><head><title>Down for Maintenance</title>');
    expect(html.message).not.toContain('x'.repeat(200));

    sf.failNext(1, { action: 'truncate', status: 200, body: [{ id: '001000000000001AAA', success: true, errors: [], created: true, note: 'y'.repeat(100) }], only: ['upsert'] });
    const cut = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(cut.retryable).toBe(true);
    expect(cut.message).toMatch(/Account records .* answered 200, but the answer was cut short after \d+ bytes .*: \[\{"id":"001000000000001AAA"/);
    expect(`${html.message}${cut.message}`).not.toMatch(/Bearer|!/);
  });

  it('pauses the writers and throws a retryable error when the org\'s API request limit is used up', async () => {
    const sf = await start();
    const { destination, limiter, clock } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    sf.setApiLimit(sf.apiUsage());
    const before = clock.now();
    const error = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(REQUEST_LIMIT_PAUSE_SECONDS);
    expect(error.message).toMatch(/API request limit is used up \(REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded\.; api-usage \d+\/\d+, counted over a rolling 24 hours\)/);
    expect(error.message).toMatch(/run again in an hour or more/);
    expect(limiter.pauses).toHaveLength(1);
    expect(limiter.pauses[0]).toBeGreaterThanOrEqual(before + REQUEST_LIMIT_PAUSE_SECONDS * 1000);
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('pauses only seconds when Salesforce refuses a call for the org\'s concurrent long-running requests, and says so', async () => {
    const sf = await start();
    const { destination, limiter, clock } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    sf.failNext(1, { status: 403, body: [{ message: 'ConcurrentPerOrgLongTxn Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }], only: ['upsert'] });
    const before = clock.now();
    const error = await failure(writer.write([upsert(['A-1', 'Acme', null])]));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(10);
    expect(error.message).toMatch(/too many long-running calls under way at once \(REQUEST_LIMIT_EXCEEDED: ConcurrentPerOrgLongTxn Limit exceeded\.; Salesforce allows 25 calls of 20 s or more/);
    expect(error.message).not.toMatch(/24 hours|an hour or more/);
    expect(limiter.pauses).toHaveLength(1);
    expect(limiter.pauses[0]).toBeLessThanOrEqual(before + 10_000 + 1_000);
    // The next attempt goes through.
    expect(await writer.write([upsert(['A-1', 'Acme', null])])).toEqual([{ ok: true, id: expect.stringMatching(/^001/) }]);
  });

  it('keeps Sforce-Limit-Info and counts its calls', async () => {
    const sf = await start({ apiLimit: 5000 });
    const { destination } = await open(sf);
    expect(destination.apiUsage()).toBeNull();
    const writer = await destination.prepare(accountsTarget());
    await writer.write([upsert(['A-1', 'Acme', null])]);
    expect(destination.apiUsage()).toEqual({ used: sf.apiUsage(), limit: 5000, calls: 2 });
  });
});

// ---------------------------------------------------------------------------------------------
// Through the engine: runs and sequences

interface EngineSetup {
  sf: SalesforceStandIn;
  h: Awaited<ReturnType<typeof startHarness>>;
  runSync: (slug: string) => ReturnType<Awaited<ReturnType<typeof startHarness>>['app']['runs']['waitForSyncRun']>;
  warehouse: (sql: string) => void;
}

/**
 * A SQLite warehouse with accounts and contacts (ids `A-n`, `C-n`), the stand-in as destination
 * `sf`, and syncs: accounts-to-sf; contacts-to-sf naming the account by Account.External_Id__c;
 * contacts-lookup-to-sf sending the account's recorded Salesforce Id to AccountId.
 */
async function engine(options: { accounts?: number; contacts?: number; syncs?: Partial<Record<string, Partial<SyncDef>>>; standIn?: SalesforceStandInOptions } = {}): Promise<EngineSetup> {
  const accounts = options.accounts ?? 3;
  const contacts = options.contacts ?? 12;
  const sf = await start(options.standIn);
  const dir = tempDir();
  const rows: string[] = [];
  for (let a = 1; a <= accounts; a++) rows.push(`insert into accounts values ('A-${a}', 'Account ${a}');`);
  for (let c = 1; c <= contacts; c++) rows.push(`insert into contacts values ('C-${c}', 'A-${((c - 1) % accounts) + 1}', 'Person ${c}', 'person${c}@example.com');`);
  sqlite(
    join(dir, 'warehouse.db'),
    `create table accounts (id text primary key, name text);
     create table contacts (id text primary key, account_id text, last_name text, email text);
     begin; ${rows.join('\n')} commit;`,
  );
  const clock = new WarpClock();
  const registry = new ConnectorRegistry({
    clock,
    logger: silentLogger,
    backoff: FAST_BACKOFF,
    createRateLimiter: (limits) => new TestLimiter(clock, createRateLimiter(limits)),
  })
    .register(sqliteConnector)
    .register(salesforceConnector);
  const settings = { externalIdField: 'External_Id__c' };
  const syncDef = (slug: string, def: SyncDef): SyncDef => ({ ...def, ...options.syncs?.[slug] });
  const definition = workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('sf', { type: 'salesforce', settings: { loginUrl: '${SF_LOGIN_URL}', clientId: '${SF_CLIENT_ID}', clientSecret: '${SF_CLIENT_SECRET}' } })],
    models: [model('accounts', 'warehouse', 'select id, name from accounts'), model('contacts', 'warehouse', 'select id, account_id, last_name, email from contacts')],
    syncs: [
      syncDef('accounts-to-sf', sync('accounts-to-sf', { model: 'accounts', destination: 'sf', object: 'Account', settings, mappings: [{ from: 'id', to: 'External_Id__c' }, { from: 'name', to: 'Name' }] })),
      syncDef(
        'contacts-to-sf',
        sync('contacts-to-sf', {
          model: 'contacts',
          destination: 'sf',
          object: 'Contact',
          settings,
          mappings: [
            { from: 'id', to: 'External_Id__c' },
            { from: 'account_id', to: 'Account.External_Id__c' },
            { from: 'last_name', to: 'LastName' },
            { from: 'email', to: 'Email' },
          ],
        }),
      ),
      syncDef(
        'contacts-lookup-to-sf',
        sync('contacts-lookup-to-sf', {
          model: 'contacts',
          destination: 'sf',
          object: 'Contact',
          settings,
          mappings: [
            { from: 'id', to: 'External_Id__c' },
            { from: 'account_id', to: 'AccountId', lookup: { sync: 'accounts-to-sf' } },
            { from: 'last_name', to: 'LastName' },
            { from: 'email', to: 'Email' },
          ],
        }),
      ),
    ],
    sequences: [
      sequence('sf-hierarchy', [member('accounts-to-sf', { terminate: 'on_fatal_or_rejected' }), member('contacts-to-sf')]),
      sequence('sf-lookup', [member('accounts-to-sf', { terminate: 'on_fatal_or_rejected' }), member('contacts-lookup-to-sf')]),
      sequence('sf-hierarchy-on', [member('accounts-to-sf', { terminate: 'never' }), member('contacts-to-sf')]),
    ],
  });
  const h = await startHarness({
    dir,
    definition,
    clock,
    connectors: () => registry,
    env: { LOCKSTEP_POLL_MS: '20', SF_LOGIN_URL: sf.url, SF_CLIENT_ID: sf.clientId, SF_CLIENT_SECRET: sf.clientSecret },
  });
  const runSync = async (slug: string) => {
    const { run } = await h.app.runs.triggerSync(slug);
    return h.app.runs.waitForSyncRun(run.id);
  };
  return { sf, h, runSync, warehouse: (sql) => sqlite(join(dir, 'warehouse.db'), sql) };
}

describe('Salesforce destination through the engine', () => {
  it('rejects contacts sent before their accounts with Salesforce\'s error; the sequence fixes it', async () => {
    const { sf, h, runSync } = await engine();
    await using _ = h;
    const early = await runSync('contacts-to-sf');
    expect(early.status).toBe('warning');
    expect(early.failedRows.addedCount).toBe(12);
    const rejected = await h.app.store.listRejectedRows(early.id, 20, 0);
    expect(rejected[0]?.reason).toBe(
      'INVALID_FIELD: Foreign key external ID: A-1 not found for field External_Id__c in entity Account' +
      ' — no Account has External_Id__c A-1 yet: deliver that Account before this row (run the sync writing Account first, e.g. ahead of this one in a sequence, and fix its row there if it was rejected); this row is sent again on every run until then',
    );
    expect(sf.records('Contact')).toHaveLength(0);

    const { run } = await h.app.runs.triggerSequence('sf-hierarchy');
    const done = await h.app.runs.waitForSequenceRun(run.id);
    expect(done.status).toBe('done');
    expect(done.members.map((m) => m.status)).toEqual(['success', 'success']);
    const accountIds = new Map(sf.records('Account').map((a) => [a.External_Id__c, a.Id]));
    const contacts = sf.records('Contact');
    expect(contacts).toHaveLength(12);
    for (const contact of contacts) {
      const n = Number(String(contact.External_Id__c).slice(2));
      expect(contact.AccountId).toBe(accountIds.get(`A-${((n - 1) % 3) + 1}`));
    }
    // The ids Salesforce gave are recorded per key.
    const accountsSync = await h.app.store.getSync('accounts-to-sf');
    expect((await h.app.store.snapshots.recordIdsGet(accountsSync!.id, ['["A-2"]'])).get('["A-2"]')).toBe(accountIds.get('A-2'));
  });

  it('sends the account\'s recorded Salesforce Id with lookup: rejected before the parent sync ran, delivered after', async () => {
    const { sf, h, runSync } = await engine();
    await using _ = h;
    const early = await runSync('contacts-lookup-to-sf');
    expect(early.status).toBe('warning');
    expect((await h.app.store.listRejectedRows(early.id, 1, 0))[0]?.reason).toBe(
      'account_id A-1 has not been delivered by accounts-to-sf yet (no id recorded for it); this row is sent again on the next run',
    );
    const { run } = await h.app.runs.triggerSequence('sf-lookup');
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    const account1 = sf.get('Account', 'External_Id__c', 'A-1')?.Id;
    expect(sf.get('Contact', 'External_Id__c', 'C-4')?.AccountId).toBe(account1);
    expect(sf.records('Contact')).toHaveLength(12);
  });

  it('sequence plan shows a contact whose lookup names an account the plan delivers first as planned, not as a lookup that is no record id', async () => {
    const { sf, h } = await engine();
    await using _ = h;
    const plan = await h.app.planner.plan('sf-lookup', { samples: 5 });
    expect(plan.members.map((m) => [m.sync, m.status, m.added, m.rejected])).toEqual([
      ['accounts-to-sf', 'planned', 3, 0],
      ['contacts-lookup-to-sf', 'planned', 12, 0],
    ]);
    expect(sf.records('Account')).toHaveLength(0);
  });

  it('sequence plan shows a contact naming by external id an account neither in Salesforce nor delivered by the plan as rejected, as its run would, and one made elsewhere as planned', async () => {
    const { sf, h, warehouse } = await engine();
    await using _ = h;
    // A-98 was made in Salesforce by another tool; A-99 is nowhere.
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    expect((await writer.write([upsert(['A-98', 'Made elsewhere', null])]))[0]?.ok).toBe(true);
    warehouse("insert into contacts values ('C-98', 'A-98', 'Elsewhere', 'c98@example.com'), ('C-99', 'A-99', 'Nowhere', 'c99@example.com')");
    const plan = await h.app.planner.plan('sf-hierarchy', { samples: 5 });
    expect(plan.members.map((m) => [m.sync, m.status, m.added, m.rejected])).toEqual([
      ['accounts-to-sf', 'planned', 3, 0],
      ['contacts-to-sf', 'planned', 14, 1],
    ]);
    const reason =
      'INVALID_FIELD: Foreign key external ID: A-99 not found for field External_Id__c in entity Account' +
      ' — no Account has External_Id__c A-99 yet: deliver that Account before this row (run the sync writing Account first, e.g. ahead of this one in a sequence, and fix its row there if it was rejected); this row is sent again on every run until then';
    expect(plan.members[1]?.samples.rejected).toEqual([{ key: '["C-99"]', op: 'added', reason }]);
    expect(sf.records('Contact')).toHaveLength(0);
    // The run rejects that row alone, with the same reason.
    const { run } = await h.app.runs.triggerSequence('sf-hierarchy');
    const done = await h.app.runs.waitForSequenceRun(run.id);
    const contacts = done.members[1]!;
    expect(contacts.status).toBe('warning');
    expect((await h.app.store.listRejectedRows(contacts.syncRunId!, 5, 0)).map((r) => [r.key, r.reason])).toEqual([['["C-99"]', reason]]);
  });

  it('sends a contact whose account_id is empty or null with lookup without an account, instead of waiting for a parent', async () => {
    const { sf, h, runSync, warehouse } = await engine();
    await using _ = h;
    warehouse(`insert into contacts values ('C-90', '', 'No account', 'c90@example.com'), ('C-91', null, 'No account', 'c91@example.com');`);
    const { run } = await h.app.runs.triggerSequence('sf-lookup');
    const done = await h.app.runs.waitForSequenceRun(run.id);
    expect(done.status).toBe('done');
    expect(done.members.map((m) => m.status)).toEqual(['success', 'success']);
    expect(sf.get('Contact', 'External_Id__c', 'C-90')?.AccountId ?? null).toBeNull();
    expect(sf.get('Contact', 'External_Id__c', 'C-91')?.AccountId ?? null).toBeNull();
    expect((await runSync('contacts-lookup-to-sf')).plannedRows.addedCount).toBe(0);
  });

  it('says a parent the accounts sync delivered was deleted or merged in Salesforce since, and how to make it again, where Salesforce says it is not found', async () => {
    const { sf, h, runSync } = await engine();
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    const deleted = sf.get('Account', 'External_Id__c', 'A-1')?.Id;
    // Someone deletes (or merges away) account A-1 in Salesforce.
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ recordIds: recordedIds({ '["A-1"]': deleted as string }) }));
    expect(await writer.write([remove('A-1')])).toEqual([{ ok: true }]);
    const run = await runSync('contacts-to-sf');
    expect(run.status).toBe('warning');
    const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
    expect(rejected.map((r) => r.key).sort()).toEqual(['["C-1"]', '["C-10"]', '["C-4"]', '["C-7"]']);
    expect(rejected[0]?.reason).toBe(
      'INVALID_FIELD: Foreign key external ID: A-1 not found for field External_Id__c in entity Account' +
        ` — sync "accounts-to-sf" delivered that Account (${deleted}), and it is no longer in Salesforce: it was deleted, or merged into another Account, since;` +
        ' run accounts-to-sf with fullResync to make it again, or name the Account it was merged into in this row; this row is sent again on every run until then',
    );
    // Made again, the account takes its contacts on the next run.
    const { run: resync } = await h.app.runs.triggerSync('accounts-to-sf', { fullResync: true });
    expect((await h.app.runs.waitForSyncRun(resync.id)).status).toBe('success');
    expect((await runSync('contacts-to-sf')).status).toBe('success');
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-1')?.Id);
  });

  it('says a parent whose recorded Salesforce Id a lookup sent was deleted or merged in Salesforce since, and how to make it again', async () => {
    const { sf, h, runSync } = await engine();
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    const deleted = sf.get('Account', 'External_Id__c', 'A-1')?.Id as string;
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget({ recordIds: recordedIds({ '["A-1"]': deleted }) }));
    expect(await writer.write([remove('A-1')])).toEqual([{ ok: true }]);
    const run = await runSync('contacts-lookup-to-sf');
    expect(run.status).toBe('warning');
    const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
    expect(rejected).toHaveLength(4);
    expect(rejected[0]?.reason).toBe(
      `ENTITY_IS_DELETED: entity is deleted — AccountId ${deleted} names an Account that was deleted, or merged into another, in Salesforce since its id was recorded:` +
        ' run the sync that delivered it with fullResync to make it again (this row then takes its new id), or name the Account it was merged into; this row is sent again on every run until then',
    );
    const { run: resync } = await h.app.runs.triggerSync('accounts-to-sf', { fullResync: true });
    expect((await h.app.runs.waitForSyncRun(resync.id)).status).toBe('success');
    expect((await runSync('contacts-lookup-to-sf')).status).toBe('success');
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-1')?.Id);
  });

  it('says a lookup\'s parent that the parent sync counts as delivered after a resetCDC run has no id until that sync runs with fullResync', async () => {
    const { sf, h, runSync } = await engine();
    await using _ = h;
    // The accounts are in Salesforce already (loaded by another tool), so their sync's first run only records them as delivered.
    const { destination } = await open(sf);
    const writer = await destination.prepare(accountsTarget());
    expect(await writer.write([upsert(['A-1', 'Account 1', null]), upsert(['A-2', 'Account 2', null]), upsert(['A-3', 'Account 3', null])])).toHaveLength(3);
    const { run: reset } = await h.app.runs.triggerSync('accounts-to-sf', { resetCDC: true });
    expect((await h.app.runs.waitForSyncRun(reset.id)).status).toBe('success');
    const run = await runSync('contacts-lookup-to-sf');
    expect(run.status).toBe('warning');
    expect((await h.app.store.listRejectedRows(run.id, 1, 0))[0]?.reason).toBe(
      'account_id A-1: accounts-to-sf counts it as delivered but recorded no id for it (its snapshot was rebuilt by a resetCDC run, which sends nothing and so gets no ids)' +
        ' — run accounts-to-sf once with fullResync to record its ids; this row is sent again on every run until then',
    );
    const { run: resync } = await h.app.runs.triggerSync('accounts-to-sf', { fullResync: true });
    expect((await h.app.runs.waitForSyncRun(resync.id)).status).toBe('success');
    expect((await runSync('contacts-lookup-to-sf')).status).toBe('success');
    expect(sf.records('Account')).toHaveLength(3);
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-1')?.Id);
  });

  it('keeps the org\'s API usage and the run\'s calls in the run record', async () => {
    const { sf, runSync, h } = await engine({ standIn: { apiLimit: 15_000 } });
    await using _ = h;
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('success');
    // describe + one upsert of 3 records
    expect(run.apiUsage).toEqual({ used: sf.apiUsage(), limit: 15_000, calls: 2 });
    expect((await h.app.store.getSyncRun(run.id))?.apiUsage).toEqual(run.apiUsage);
  });

  it('goes through Bulk API 2.0 when a run plans more than bulkThreshold rows, and through Collections below it', async () => {
    const { sf, runSync, h } = await engine({
      accounts: 3,
      contacts: 30,
      syncs: { 'contacts-to-sf': { settings: { externalIdField: 'External_Id__c', bulkThreshold: 10, bulkJobSize: 12 } } },
    });
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    expect(sf.stats().requests.bulkCreate).toBe(0);
    const contacts = await runSync('contacts-to-sf');
    expect(contacts.status).toBe('success');
    expect(contacts.successfulRows.addedCount).toBe(30);
    expect(sf.stats().requests.bulkCreate).toBe(3);
    const contactsSync = await h.app.store.getSync('contacts-to-sf');
    const ids = await h.app.store.snapshots.recordIdsGet(contactsSync!.id, ['["C-30"]']);
    expect(ids.get('["C-30"]')).toBe(sf.get('Contact', 'External_Id__c', 'C-30')?.Id);
  });

  it('mirrors deletes by the recorded ids', async () => {
    const { sf, runSync, h, warehouse } = await engine({ syncs: { 'accounts-to-sf': { mode: 'mirror' } } });
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    warehouse("delete from accounts where id = 'A-2'");
    sf.resetStats();
    const mirrored = await runSync('accounts-to-sf');
    expect(mirrored.successfulRows.removedCount).toBe(1);
    expect(sf.records('Account').map((a) => a.External_Id__c).sort()).toEqual(['A-1', 'A-3']);
    expect(sf.stats().requests).toMatchObject({ delete: 1, query: 0 });
  });

  it("counts the delete of a contact Salesforce deleted with its account as done, and makes again a contact still in the model when it changes", async () => {
    const { sf, runSync, h, warehouse } = await engine({ syncs: { 'accounts-to-sf': { mode: 'mirror' }, 'contacts-to-sf': { mode: 'mirror' } } });
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    expect((await runSync('contacts-to-sf')).status).toBe('success');
    // A-2's contacts are C-2, C-5, C-8 and C-11; C-5 moves to A-1 in the warehouse after Salesforce deleted it with A-2.
    warehouse("delete from accounts where id = 'A-2'; delete from contacts where id in ('C-2', 'C-8', 'C-11'); update contacts set account_id = 'A-1' where id = 'C-5'");
    expect((await runSync('accounts-to-sf')).successfulRows.removedCount).toBe(1);
    expect(sf.records('Contact').map((c) => c.External_Id__c).sort()).toEqual(['C-1', 'C-10', 'C-12', 'C-3', 'C-4', 'C-6', 'C-7', 'C-9']);
    const contacts = await runSync('contacts-to-sf');
    expect(contacts.status).toBe('success');
    expect(contacts.successfulRows).toMatchObject({ removedCount: 3, changedCount: 1 });
    expect(contacts.failedRows.removedCount).toBe(0);
    const c5 = sf.get('Contact', 'External_Id__c', 'C-5');
    expect(c5?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-1')?.Id);
    expect(sf.records('Contact')).toHaveLength(9);
  });

  it('rides out a storm of 5xx answers, and a token that expires mid-run', async () => {
    const { sf, runSync, h } = await engine({ syncs: { 'contacts-to-sf': { batchSize: 4 } } });
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    sf.failNext(3, { status: 503, only: ['upsert'] });
    sf.failNext(1, { status: 401, body: [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }], only: ['upsert'] });
    const tokens = sf.stats().requests.token;
    const run = await runSync('contacts-to-sf');
    expect(run.status).toBe('success');
    expect(run.successfulRows.addedCount).toBe(12);
    // The run's login, and one more when its session was refused.
    expect(sf.stats().requests.token).toBe(tokens + 2);
    expect(sf.stats().faultsInjected).toBeGreaterThanOrEqual(4);
  });

  it('fails a run whose API limit stays used up, naming the limit; the rows go on the next run', async () => {
    const { sf, runSync, h } = await engine();
    await using _ = h;
    sf.setApiLimit(1);
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/the org's API request limit is used up \(REQUEST_LIMIT_EXCEEDED/);
    expect(run.error).toMatch(/run again in an hour or more/);
    expect(sf.records('Account')).toHaveLength(0);
    sf.setApiLimit(15_000);
    sf.resetApiUsage();
    const later = await runSync('accounts-to-sf');
    expect(later.status).toBe('success');
    expect(later.successfulRows.addedCount).toBe(3);
  });

  it('fails a run with a fatal schema error naming the field and the fix', async () => {
    const { runSync, h } = await engine({
      syncs: { 'accounts-to-sf': { mappings: [{ from: 'id', to: 'External_Id__c' }, { from: 'name', to: 'Nmae' }] } },
    });
    await using _ = h;
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('failed');
    expect(run.error).toContain('writes field "Nmae", which Account does not have (did you mean "Name"?)');
  });
});

describe('Salesforce destination through the engine: fields Salesforce sets only on create', () => {
  // A master-detail field that is not reparentable: createable, not updateable.
  const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
  (schema.Contact as { fields: Record<string, object> }).fields.AccountId = {
    type: 'reference',
    referenceTo: 'Account',
    relationshipName: 'Account',
    label: 'Account ID',
    createable: true,
    updateable: false,
  };

  for (const bulkThreshold of [10_000, 0]) {
    it(`updates a changed row without its parent, which Salesforce refuses to change (${bulkThreshold === 0 ? 'Bulk API 2.0' : 'sObject Collections'})`, async () => {
      const { sf, runSync, h, warehouse } = await engine({
        standIn: { schema },
        syncs: { 'contacts-to-sf': { settings: { externalIdField: 'External_Id__c', bulkThreshold } } },
      });
      await using _ = h;
      expect((await runSync('accounts-to-sf')).status).toBe('success');
      expect((await runSync('contacts-to-sf')).status).toBe('success');
      const account = sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId;
      expect(account).toBe(sf.get('Account', 'External_Id__c', 'A-1')?.Id);
      warehouse("update contacts set last_name = 'Renamed' where id = 'C-1'; insert into contacts values ('C-99', 'A-2', 'New', 'c99@example.com');");
      const run = await runSync('contacts-to-sf');
      expect((await h.app.store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual([]);
      expect(run.status).toBe('success');
      expect(run.successfulRows).toMatchObject({ addedCount: 1, changedCount: 1 });
      expect(sf.get('Contact', 'External_Id__c', 'C-1')).toMatchObject({ LastName: 'Renamed', AccountId: account });
      // A new record gets its parent.
      expect(sf.get('Contact', 'External_Id__c', 'C-99')?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-2')?.Id);
    });

    it(`updates a changed row whose parent is now a twin's key, as its parent is not sent (${bulkThreshold === 0 ? 'Bulk API 2.0' : 'sObject Collections'})`, async () => {
      const { sf, runSync, h, warehouse } = await engine({
        standIn: { schema },
        syncs: { 'contacts-to-sf': { settings: { externalIdField: 'External_Id__c', bulkThreshold } } },
      });
      await using _ = h;
      expect((await runSync('accounts-to-sf')).status).toBe('success');
      expect((await runSync('contacts-to-sf')).status).toBe('success');
      const account = sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId;
      warehouse("update contacts set last_name = 'Renamed', account_id = 'a-2' where id = 'C-1'");
      const run = await runSync('contacts-to-sf');
      expect((await h.app.store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual([]);
      expect(sf.get('Contact', 'External_Id__c', 'C-1')).toMatchObject({ LastName: 'Renamed', AccountId: account });
    });

    it(`updates a record that exists before the sync delivered it without its parent (${bulkThreshold === 0 ? 'Bulk API 2.0' : 'sObject Collections'})`, async () => {
      const { sf, runSync, h } = await engine({
        standIn: { schema },
        syncs: { 'contacts-to-sf': { settings: { externalIdField: 'External_Id__c', bulkThreshold } } },
      });
      await using _ = h;
      expect((await runSync('accounts-to-sf')).status).toBe('success');
      // Made by another tool (or before the sync's snapshot was reset): new to the sync, not to Salesforce.
      const account = sf.get('Account', 'External_Id__c', 'A-1')?.Id;
      sf.seed('Contact', [{ External_Id__c: 'C-1', LastName: 'Old name', AccountId: account }]);
      const run = await runSync('contacts-to-sf');
      expect((await h.app.store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual([]);
      expect(run.successfulRows.addedCount).toBe(12);
      expect(sf.get('Contact', 'External_Id__c', 'C-1')).toMatchObject({ LastName: 'Person 1', AccountId: account });
    });
  }
});

describe('Salesforce destination through the engine: external ids that differ only in case', () => {
  const twinReason = (key: string, other: string) =>
    new RegExp(`^External_Id__c "${key}" is the same Account to Salesforce as "${other}", .*matches without regard to case .*give the model keys that differ by more than case`);

  it('sends the first of two keys in one call and rejects the other naming both, where Salesforce refused both', async () => {
    const { sf, runSync, h, warehouse } = await engine();
    await using _ = h;
    warehouse("insert into accounts values ('a-1', 'Twin of A-1')");
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('warning');
    expect(run.successfulRows.addedCount).toBe(3);
    const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
    expect(rejected.map((r) => r.key)).toEqual(['["a-1"]']);
    expect(rejected[0]?.reason).toMatch(twinReason('a-1', 'A-1'));
    expect(rejected[0]?.reason).toContain('another row of this run');
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toMatchObject({ External_Id__c: 'A-1', Name: 'Account 1' });
    // A first run has delivered nothing a new key could meet: no lookup.
    expect(sf.stats().requests.query).toBe(0);
  });

  it('does not let a key in a later batch of the run overwrite its twin\'s record', async () => {
    const { sf, runSync, h, warehouse } = await engine({ syncs: { 'accounts-to-sf': { batchSize: 1 } } });
    await using _ = h;
    warehouse("insert into accounts values ('a-1', 'Twin of A-1')");
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('warning');
    expect((await h.app.store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual([expect.stringMatching(twinReason('a-1', 'A-1'))]);
    expect(sf.records('Account')).toHaveLength(3);
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toMatchObject({ External_Id__c: 'A-1', Name: 'Account 1' });
  });

  it('rejects a new key whose twin this sync delivered in an earlier run, on every run, leaving the record alone', async () => {
    const { sf, runSync, h, warehouse } = await engine();
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    const id = sf.get('Account', 'External_Id__c', 'A-2')?.Id;
    warehouse("insert into accounts values ('a-2', 'Twin of A-2'), ('A-4', 'Account 4')");
    for (let n = 0; n < 2; n++) {
      const run = await runSync('accounts-to-sf');
      expect(run.status).toBe('warning');
      const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
      expect(rejected.map((r) => r.key)).toEqual(['["a-2"]']);
      expect(rejected[0]?.reason).toMatch(twinReason('a-2', 'A-2'));
      expect(rejected[0]?.reason).toContain(`which this sync delivered to Account ${id}`);
      expect(sf.get('Account', 'External_Id__c', 'A-2')).toMatchObject({ Id: id, External_Id__c: 'A-2', Name: 'Account 2' });
    }
    expect(sf.records('Account')).toHaveLength(4);
  });

  it('in mirror mode, a key whose case changed does not take its record away to be deleted, and arrives next run', async () => {
    const { sf, runSync, h, warehouse } = await engine({ syncs: { 'accounts-to-sf': { mode: 'mirror' } } });
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    warehouse("update accounts set id = 'a-2' where id = 'A-2'");
    const renamed = await runSync('accounts-to-sf');
    expect(renamed.status).toBe('warning');
    expect(renamed.successfulRows.removedCount).toBe(1);
    expect((await h.app.store.listRejectedRows(renamed.id, 10, 0)).map((r) => r.key)).toEqual(['["a-2"]']);
    const next = await runSync('accounts-to-sf');
    expect(next.status).toBe('success');
    expect(sf.records('Account').map((a) => a.External_Id__c).sort()).toEqual(['A-1', 'A-3', 'a-2']);
  });

  it('sends both keys as two records when the field is not Unique, which Salesforce matches as written', async () => {
    const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
    (schema.Account as { fields: Record<string, object> }).fields.External_Id__c = { type: 'string', externalId: true, length: 255 };
    const { sf, runSync, h, warehouse } = await engine({ standIn: { schema } });
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    warehouse("insert into accounts values ('a-1', 'Twin of A-1')");
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('success');
    expect(sf.records('Account').map((a) => a.External_Id__c).sort()).toEqual(['A-1', 'A-2', 'A-3', 'a-1']);
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toMatchObject({ Name: 'Account 1' });
  });

  it('keeps the keys a run sent within a memory bound, the rest on disk, and finds twins on either side of it exactly', () => {
    const budget = 16 * 1024;
    const twins = new CaseTwins(budget);
    const keys = Array.from({ length: 3_000 }, (_, n) => `Key-${n}`);
    try {
      expect(twins.firsts(keys)).toEqual(keys);
      expect(twins.bytes).toBeLessThanOrEqual(budget);
      expect(twins.bytes).toBeGreaterThan(budget - 200);
      expect(twins.spilled).toBeGreaterThan(2_500);
      // Twins of a key held in memory and of one on disk, a key sent again, a new key and its own twin
      // later in the same call, and two keys whose lone surrogates differ (the same text in UTF-8).
      const again = ['KEY-0', 'key-2999', 'Key-2999', 'Key-10', 'New-1', 'new-1', '\uD800x', '\uDC00x', '\uDC00X'];
      expect(twins.firsts(again)).toEqual(['Key-0', 'Key-2999', 'Key-2999', 'Key-10', 'New-1', 'New-1', '\uD800x', '\uDC00x', '\uDC00x']);
      expect(twins.bytes).toBeLessThanOrEqual(budget);
    } finally {
      twins.close();
    }
    expect(() => twins.firsts(['Key-1'])).toThrow('the destination is closed');
  });

  it('past the memory bound, still rejects a twin of a key sent earlier in the run naming both, with no call to look it up', async () => {
    const sf = await start();
    const { destination } = await open(sf, {}, { caseTwinBytes: 8 * 1024 });
    const writer = await destination.prepare(accountsTarget());
    const keys = Array.from({ length: 3_000 }, (_, n) => `A-${n}`);
    for (let n = 0; n < keys.length; n += 200) {
      const outcomes = await writer.write(keys.slice(n, n + 200).map((key) => upsert([key, `Account ${key}`, null])));
      expect(outcomes.every((o) => o.ok)).toBe(true);
    }
    const upserts = sf.stats().requests.upsert;
    const outcomes = await writer.write([upsert(['a-1', 'Twin', null]), upsert(['a-2999', 'Twin', null]), upsert(['A-2998', 'Again', null]), upsert(['B-1', 'New', null])]);
    expect(reason(outcomes[0])).toMatch(/^External_Id__c "a-1" is the same Account to Salesforce as "A-1", another row of this run/);
    expect(reason(outcomes[1])).toMatch(/^External_Id__c "a-2999" is the same Account to Salesforce as "A-2999", another row of this run/);
    expect(outcomes.slice(2).map((o) => o.ok)).toEqual([true, true]);
    expect(sf.get('Account', 'External_Id__c', 'A-2999')).toMatchObject({ Name: 'Account A-2999' });
    expect(sf.get('Account', 'External_Id__c', 'A-1')).toMatchObject({ Name: 'Account A-1' });
    expect(sf.records('Account')).toHaveLength(3_001);
    expect(sf.stats().requests.upsert).toBe(upserts + 1);
    expect(sf.stats().requests.query).toBe(0);
  });

  it('looks up a parent made outside Lockstep once a run, and asks again in a later batch for one it did not find', async () => {
    const sf = await start();
    sf.seed('Account', [
      { External_Id__c: 'A-1', Name: 'Acme' },
      { External_Id__c: 'A-2', Name: 'Globex' },
    ]);
    const { destination } = await open(sf);
    const writer = await destination.prepare(contactsTarget());
    sf.resetStats();
    for (let n = 1; n <= 3; n++) {
      const outcomes = await writer.write([upsert([`C-${n}`, `Person ${n}`, 'A-1']), upsert([`D-${n}`, `Other ${n}`, 'A-2'])]);
      expect(outcomes.every((o) => o.ok)).toBe(true);
    }
    expect(sf.stats().requests.query).toBe(1);
    // A-3 is not in Salesforce yet: the contact is refused, and A-3 is looked up again in the next batch, once made.
    expect(reason((await writer.write([upsert(['C-9', 'Early', 'A-3'])]))[0])).toMatch(/^INVALID_FIELD: Foreign key external ID: A-3 not found/);
    sf.seed('Account', [{ External_Id__c: 'A-3', Name: 'Initech' }]);
    expect(await writer.write([upsert(['C-9', 'Early', 'A-3']), upsert(['C-4', 'Person 4', 'A-1'])])).toEqual([
      { ok: true, id: expect.any(String) },
      { ok: true, id: expect.any(String) },
    ]);
    expect(sf.stats().requests.query).toBe(3);
    expect(sf.get('Contact', 'External_Id__c', 'C-9')?.AccountId).toBe(sf.get('Account', 'External_Id__c', 'A-3')?.Id);
  });

  it('holds the parents it found within a memory bound, looking up again those it let go', async () => {
    const sf = await start();
    sf.seed('Account', Array.from({ length: 400 }, (_, n) => ({ External_Id__c: `A-${n}`, Name: `Account ${n}` })));
    const { destination } = await open(sf, {}, { parentIdBytes: 48 * 1024 });
    const writer = await destination.prepare(contactsTarget());
    const write = async (from: number) => {
      const outcomes = await writer.write(Array.from({ length: 200 }, (_, n) => upsert([`C-${from + n}`, 'Person', `A-${from + n}`])));
      expect(outcomes.every((o) => o.ok)).toBe(true);
    };
    sf.resetStats();
    await write(0);
    await write(200);
    expect(sf.stats().requests.query).toBe(2);
    // The latest parents found are held; the first ones went past the bound and are looked up again.
    await write(200);
    expect(sf.stats().requests.query).toBe(2);
    await write(0);
    expect(sf.stats().requests.query).toBe(3);
  });

  it('rejects a contact whose account was rejected as the twin of another key, instead of linking it to that key\'s record', async () => {
    const { sf, runSync, h, warehouse } = await engine();
    await using _ = h;
    warehouse("insert into accounts values ('a-1', 'Twin of A-1'); insert into contacts values ('C-90', 'a-1', 'Under a-1', 'c90@example.com')");
    expect((await runSync('accounts-to-sf')).status).toBe('warning');
    sf.resetStats();
    for (let n = 0; n < 2; n++) {
      const run = await runSync('contacts-to-sf');
      expect(run.status).toBe('warning');
      const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
      expect(rejected.map((r) => r.key)).toEqual(['["C-90"]']);
      expect(rejected[0]?.reason).toMatch(
        /^Account\.External_Id__c "a-1" names the Account whose External_Id__c is "A-1" \(001\w+\): Salesforce matches External_Id__c without regard to case, so this row would be linked to that record — deliver the Account "a-1" first .*this row is sent again on every run until then$/,
      );
      expect(sf.get('Contact', 'External_Id__c', 'C-90')).toBeUndefined();
    }
    const account1 = sf.get('Account', 'External_Id__c', 'A-1')?.Id;
    expect(sf.get('Contact', 'External_Id__c', 'C-1')?.AccountId).toBe(account1);
    // Accounts the accounts sync delivered are known from its recorded ids: only a-1 is looked up, once a
    // run (and, on the second, C-90 itself, a new key of a sync that delivered before).
    expect(sf.stats().requests.query).toBe(3);
  });

  it('sequence plan shows the rows a run would reject as twins: in the run, of a key delivered before, and a contact under a twin', async () => {
    const { sf, runSync, h, warehouse } = await engine();
    await using _ = h;
    expect((await runSync('accounts-to-sf')).status).toBe('success');
    warehouse(
      "insert into accounts values ('B-1', 'Account B-1'), ('b-1', 'Twin of B-1'), ('a-2', 'Twin of A-2'); insert into contacts values ('C-90', 'a-2', 'Under a-2', 'c90@example.com')",
    );
    const plan = await h.app.planner.plan('sf-hierarchy-on', { samples: 5 });
    const accounts = plan.members.find((m) => m.sync === 'accounts-to-sf')!;
    expect(accounts).toMatchObject({ status: 'planned', added: 3, rejected: 2 });
    expect(Object.fromEntries(accounts.samples.rejected.map((r) => [r.key, r.reason]))).toEqual({
      '["b-1"]': expect.stringMatching(twinReason('b-1', 'B-1')),
      '["a-2"]': expect.stringMatching(twinReason('a-2', 'A-2')),
    });
    expect(accounts.samples.added.map((s) => s.key)).toEqual([['B-1']]);
    const contacts = plan.members.find((m) => m.sync === 'contacts-to-sf')!;
    expect(contacts).toMatchObject({ status: 'planned', added: 13, rejected: 1 });
    expect(contacts.samples.rejected).toEqual([{ key: '["C-90"]', op: 'added', reason: expect.stringMatching(/^Account\.External_Id__c "a-2" names the Account whose External_Id__c is "A-2"/) }]);
    expect(sf.records('Account')).toHaveLength(3);
    expect(sf.records('Contact')).toHaveLength(0);
  });

  it('reads the recorded ids of the parents Salesforce no longer has once a batch, not once a parent', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    const recorded = recordedIds({ '["A-1"]': '001000000000001AAA', '["A-2"]': '001000000000002AAA', '["A-3"]': '001000000000003AAA' });
    let reads = 0;
    const writer = await destination.prepare(
      contactsTarget({
        syncsWriting: async () => [{ slug: 'accounts-to-sf', settings: { externalIdField: 'External_Id__c' } }],
        recordIds: async (sync, keys) => {
          reads++;
          return (recorded as NonNullable<WriteTarget['recordIds']>)(sync, keys);
        },
      }),
    );
    const outcomes = await writer.write([upsert(['C-1', 'Person 1', 'A-1']), upsert(['C-2', 'Person 2', 'A-2']), upsert(['C-3', 'Person 3', 'A-3'])]);
    for (const outcome of outcomes) expect(reason(outcome)).toMatch(/ — sync "accounts-to-sf" delivered that Account \(001000000000\d{3}AAA\), and it is no longer in Salesforce/);
    // One read to know the parents are the accounts sync's, one to explain the three refusals.
    expect(reads).toBe(2);
  });

  it('asks again for the syncs writing a parent\'s object when the store could not answer, instead of failing every later batch', async () => {
    const sf = await start();
    const { destination } = await open(sf);
    let asks = 0;
    const writer = await destination.prepare(
      contactsTarget({
        syncsWriting: async () => {
          if (asks++ === 0) throw new LockstepError(ErrorCode.Transient, 'the store is out of reach', { retryable: true });
          return [];
        },
      }),
    );
    await failure(writer.write([upsert(['C-1', 'Person 1', 'A-1'])]));
    const outcomes = await writer.write([upsert(['C-1', 'Person 1', 'A-1'])]);
    expect(reason(outcomes[0])).toMatch(/^INVALID_FIELD: Foreign key external ID: A-1 not found/);
    expect(asks).toBe(2);
  });

  it('sends both keys as two records when the field is case-sensitive', async () => {
    const schema = structuredClone(DEFAULT_SALESFORCE_SCHEMA);
    (schema.Account as { fields: Record<string, object> }).fields.External_Id__c = { type: 'string', externalId: true, unique: true, caseSensitive: true, length: 255 };
    const { sf, runSync, h, warehouse } = await engine({ standIn: { schema } });
    await using _ = h;
    warehouse("insert into accounts values ('a-1', 'Twin of A-1')");
    const run = await runSync('accounts-to-sf');
    expect(run.status).toBe('success');
    expect(sf.records('Account').map((a) => a.External_Id__c).sort()).toEqual(['A-1', 'A-2', 'A-3', 'a-1']);
  });
});

// ---------------------------------------------------------------------------------------------
// The API destination contract (api-destination-contract.ts), on a fresh stand-in per check.

import { describeApiDestinationContract } from './api-destination-contract.js';

describeApiDestinationContract('salesforce', {
  capabilities: salesforceConnector.destination!.capabilities,
  async open() {
    const sf = await start();
    const { destination } = await open(sf);
    return {
      destination,
      records: () => sf.records('Account').map((record) => ({ id: record.Id, fields: record })),
      failNextWrite: ({ status, contentType, body }) => sf.failNext(1, { status, contentType, body, only: ['upsert'] }),
      writeRequests: () => sf.stats().requests.upsert,
      // open() and start() are closed after each test as well; closing twice is harmless.
      close: () => sf.close(),
    };
  },
  object: 'Account',
  keyField: 'External_Id__c',
  fields: ['Name', 'BillingCity'],
  settings: { externalIdField: 'External_Id__c' },
  values: (key, version) => [`${key} v${version}`, `City ${version}`],
  badRow: { values: () => [null, 'Nowhere'], reason: /^REQUIRED_FIELD_MISSING: Required fields are missing: \[Name\]$/ },
  checksSchema: true,
  async openUnreachable() {
    // A stand-in that is gone: nothing listens at its login URL any more.
    const gone = await startSalesforceStandIn({ clientSecret: 'contract-secret-3f9a1c' });
    await gone.close();
    return (await open(gone)).destination;
  },
  secret: 'contract-secret-3f9a1c',
});

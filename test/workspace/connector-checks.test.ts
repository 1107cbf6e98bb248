/**
 * What `validate` checks through the connector registry: a connection's type and settings by kind,
 * a sync's kind settings against its destination's kind, lookups of parent ids (the parent must
 * record them), and the warning for a child member that may start before its parent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { formatDiagnostic } from '../../src/core/errors.js';
import { loadWorkspace } from '../../src/workspace/index.js';
import { workspaceFolder, yaml } from './helpers.js';

const registry = createConnectorRegistry();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function load(text: string, env: Record<string, string> = {}) {
  const folder = await workspaceFolder({ 'lockstep.yaml': text });
  cleanups.push(folder.cleanup);
  const result = await loadWorkspace(folder.dir, env, registry);
  return { ...result, errors: result.diagnostics.map(formatDiagnostic), warned: result.warnings.map(formatDiagnostic) };
}

const HEAD = [
  'sources:',
  '  warehouse: { type: sqlite, path: warehouse.db }',
  'destinations:',
  '  sf: { type: salesforce, loginUrl: "${SF_LOGIN_URL}", clientId: "${SF_ID}", clientSecret: "${SF_SECRET}" }',
  '  crm: { type: mysql, url: "mysql://lockstep:pw@db.example.com:3306/crm" }',
  'models:',
  '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
  '  contacts: { source: warehouse, primaryKey: id, query: "select id, account_id from contacts" }',
];
const ENV = { SF_LOGIN_URL: 'https://acme.my.salesforce.com', SF_ID: 'id', SF_SECRET: 'secret' };

describe('connector checks in validate', () => {
  it('checks settings by kind with the field, the fix and did-you-mean, without echoing a secret', async () => {
    const result = await load(
      yaml(
        'destinations:',
        '  crm: { type: mysqll, url: "mysql://u:hunter2@h/db" }',
        '  api: { type: http, url: "ftp://files.example.com", concurency: 4 }',
        '  pg: { type: postgres, url: "mysql://u:hunter2@h/db" }',
      ),
    );
    expect(result.errors).toEqual([
      'lockstep.yaml:2:16: destinations.crm.type: unknown type "mysqll" (did you mean "mysql"?) — use one of: postgres, mysql, sqlite, http, salesforce, hubspot',
      expect.stringMatching(/^lockstep\.yaml:3:\d+: destinations\.api\.url: url must start with http:\/\/ or https:\/\//),
      expect.stringMatching(/^lockstep\.yaml:3:\d+: destinations\.api\.concurency: unknown key "concurency" \(did you mean "concurrency"\?\)/),
      'lockstep.yaml:4:30: destinations.pg.url: url must start with postgres:// or postgresql://, not mysql:// — e.g. postgres://user:password@host:5432/database',
    ]);
    expect(result.errors.join('\n')).not.toContain('hunter2');
  });

  it('says what kind of value a secret setting holds when it is not a string, never the value', async () => {
    const result = await load(
      yaml(
        'destinations:',
        '  hubspot: { type: hubspot, accessToken: 8675309123 }',
        '  api: { type: http, url: "https://api.example.com", headers: { Authorization: 4815162342, X-Debug: true } }',
      ),
    );
    expect(result.errors).toEqual([
      'lockstep.yaml:2:42: destinations.hubspot.accessToken: accessToken must be a string, got a number — write it in quotes',
      expect.stringMatching(/^lockstep\.yaml:3:\d+: destinations\.api\.headers\.Authorization: Authorization must be a string, got a number — write it in quotes$/),
      expect.stringMatching(/^lockstep\.yaml:3:\d+: destinations\.api\.headers\.X-Debug: X-Debug must be a string, got true — write it in quotes$/),
    ]);
    expect(result.errors.join('\n')).not.toMatch(/8675309123|4815162342/);
  });

  it('checks a sync\'s kind settings against its destination', async () => {
    const result = await load(
      yaml(
        ...HEAD,
        'syncs:',
        '  accounts-to-sf: { model: accounts, destination: sf, object: Account, mode: upsert, externalIdFeild: External_Id__c }',
        '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert, externalIdField: x }',
      ),
      ENV,
    );
    expect(result.errors).toEqual([
      expect.stringMatching(/syncs\.accounts-to-sf\.externalIdField: missing externalIdField — add externalIdField/),
      expect.stringMatching(/syncs\.accounts-to-sf\.externalIdFeild: unknown key "externalIdFeild" \(did you mean "externalIdField"\?\)/),
      expect.stringMatching(/syncs\.accounts-to-crm\.externalIdField: unknown key "externalIdField" — allowed here: model, destination, object/),
    ]);
  });

  it('checks an HTTP sync\'s object (a Liquid path) and its delete request, and names the ceiling of a connection\'s concurrency', async () => {
    const result = await load(
      yaml(
        'sources:',
        '  warehouse: { type: sqlite, path: warehouse.db }',
        'destinations:',
        '  api: { type: http, url: "https://api.example.com", concurrency: 500, headers: { Content-Length: "3" } }',
        'models:',
        '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
        'syncs:',
        '  a: { model: accounts, destination: api, object: "/x/{{ row.id }", mode: upsert }',
        '  b: { model: accounts, destination: api, object: "/x/{% include \'secret\' %}", mode: upsert }',
        '  c: { model: accounts, destination: api, object: "/accounts/{{ row.id }}", mode: upsert }',
        '  d: { model: accounts, destination: api, object: /accounts, mode: mirror }',
        '  e: { model: accounts, destination: api, object: /accounts, mode: upsert, deleteBehavior: delete, delete: { path: "/accounts/{{ row.id }}" } }',
      ),
    );
    expect(result.errors).toEqual([
      expect.stringMatching(/^lockstep\.yaml:4:\d+: destinations\.api\.concurrency: concurrency 500 is above the maximum 256 — use a whole number up to 256$/),
      expect.stringMatching(/^lockstep\.yaml:4:\d+: destinations\.api\.headers\.Content-Length: header "Content-Length" is set by Lockstep's HTTP client — remove it$/),
      expect.stringMatching(/^lockstep\.yaml:8:\d+: syncs\.a\.object: not a valid Liquid template: output "\{\{ row\.id \}" not closed/),
      expect.stringMatching(/^lockstep\.yaml:9:\d+: syncs\.b\.object: not a valid Liquid template: .*include/),
      expect.stringMatching(
        /^lockstep\.yaml:11:\d+: syncs\.d\.mode: the sync deletes rows \(mode mirror\) but has no delete request — add one, e\.g\. delete: \{ method: DELETE, path: "\/contacts\/\{\{ row\.id \}\}" \}, or use mode upsert with deleteBehavior ignore$/,
      ),
    ]);
  });

  it('refuses an HTTP request whose templates carry one row in one place and the batch in another, as a run would', async () => {
    const result = await load(
      yaml(
        'sources:',
        '  warehouse: { type: sqlite, path: warehouse.db }',
        'destinations:',
        '  api: { type: http, url: "https://api.example.com" }',
        'models:',
        '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
        'syncs:',
        '  a: { model: accounts, destination: api, object: "/x/{{ row.id }}", mode: upsert, body: "{{ rows | json }}" }',
        '  b: { model: accounts, destination: api, object: /x, mode: upsert, body: "[{{ row | json }}, {{ rows.size }}]" }',
        '  c: { model: accounts, destination: api, object: "/x/{{ row.id }}", mode: upsert, body: "{{ row | json }}" }',
      ),
    );
    expect(result.errors).toEqual([
      expect.stringMatching(/^lockstep\.yaml:8:\d+: syncs\.a\.body: reads rows, while object reads row — a request carries one row \(row\) or a batch \(rows\); use the same in both$/),
      expect.stringMatching(/^lockstep\.yaml:9:\d+: syncs\.b\.body: reads both row and rows — a request carries one row \(row\) or a batch \(rows\); use one of them$/),
    ]);
  });

  it('refuses a full URL where an HTTP sync takes a path under the destination\'s url', async () => {
    const result = await load(
      yaml(
        'sources:',
        '  warehouse: { type: sqlite, path: warehouse.db }',
        'destinations:',
        '  api: { type: http, url: "https://api.example.com/v1" }',
        'models:',
        '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
        'syncs:',
        '  a: { model: accounts, destination: api, object: "https://api.example.com/v1/accounts/{{ row.id }}", mode: upsert }',
        '  b: { model: accounts, destination: api, object: /accounts, mode: mirror, delete: { path: "HTTPS://api.example.com/v1/accounts/{{ row.id }}" } }',
      ),
    );
    expect(result.errors).toEqual([
      expect.stringMatching(
        /^lockstep\.yaml:8:\d+: syncs\.a\.object: is a URL, not a path under the destination's url — write the path alone, e\.g\. \/contacts\/\{\{ row\.id \}\}, and the API's address in the destination's url$/,
      ),
      expect.stringMatching(/^lockstep\.yaml:9:\d+: syncs\.b\.delete\.path: is a URL, not a path under the destination's url — write the path alone/),
    ]);
  });

  it('says an HTTP sync without a mode misses it, not that its body is a slip of mode', async () => {
    const result = await load(
      yaml(
        'sources:',
        '  warehouse: { type: sqlite, path: warehouse.db }',
        'destinations:',
        '  api: { type: http, url: "https://api.example.com" }',
        'models:',
        '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
        'syncs:',
        '  a: { model: accounts, destination: api, object: /x, body: "{{ rows | json }}" }',
      ),
    );
    expect(result.errors).toEqual([expect.stringMatching(/^lockstep\.yaml:8:\d+: syncs\.a\.mode: missing mode — add mode: one of upsert, insert, update, mirror$/)]);
  });

  it('refuses a lookup of a sync whose destination does not record ids, and of an unknown sync', async () => {
    const result = await load(
      yaml(
        ...HEAD,
        'syncs:',
        '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }',
        '  contacts-to-sf:',
        '    model: contacts',
        '    destination: sf',
        '    object: Contact',
        '    mode: upsert',
        '    externalIdField: External_Id__c',
        '    mappings:',
        '      - { from: id, to: External_Id__c }',
        '      - { from: account_id, to: AccountId, lookup: { sync: accounts-to-crm } }',
        '      - { from: account_id, to: Other__c, lookup: { sync: acounts-to-sf } }',
      ),
      ENV,
    );
    expect(result.errors).toEqual([
      expect.stringMatching(
        /mappings\[1\]\.lookup\.sync: sync "accounts-to-crm" writes to a mysql destination, which does not report record ids, so there is nothing to look up — map the parent's key column directly, or look up a sync that writes to salesforce, hubspot/,
      ),
      expect.stringMatching(/mappings\[2\]\.lookup\.sync: unknown sync "acounts-to-sf"/),
    ]);
  });

  it('warns when a sequence may run a child before the member whose ids it looks up', async () => {
    const syncs = [
      'syncs:',
      '  accounts-to-sf: { model: accounts, destination: sf, object: Account, mode: upsert, externalIdField: External_Id__c, mappings: [ { from: id, to: External_Id__c } ] }',
      '  contacts-to-sf:',
      '    model: contacts',
      '    destination: sf',
      '    object: Contact',
      '    mode: upsert',
      '    externalIdField: External_Id__c',
      '    mappings: [ { from: id, to: External_Id__c }, { from: account_id, to: AccountId, lookup: { sync: accounts-to-sf } } ]',
    ];
    const childFirst = await load(yaml(...HEAD, ...syncs, 'sequences:', '  crm:', '    members: [contacts-to-sf, accounts-to-sf]'), ENV);
    expect(childFirst.errors).toEqual([]);
    expect(childFirst.definition).not.toBeNull();
    expect(childFirst.warned).toEqual([
      expect.stringMatching(
        /sequences\.crm\.members\[0\]: member "contacts-to-sf" looks up the ids that "accounts-to-sf" records, but may start before it finishes.* — list "accounts-to-sf" before "contacts-to-sf"/,
      ),
    ]);
    const parallel = await load(
      yaml(...HEAD, ...syncs, 'sequences:', '  crm:', '    members:', '      - { sync: accounts-to-sf, after: [] }', '      - { sync: contacts-to-sf, after: [] }'),
      ENV,
    );
    expect(parallel.warned).toEqual([expect.stringMatching(/member "contacts-to-sf" .* — add "accounts-to-sf" to its after list/)]);
    const ordered = await load(yaml(...HEAD, ...syncs, 'sequences:', '  crm:', '    members: [accounts-to-sf, contacts-to-sf]'), ENV);
    expect(ordered.warned).toEqual([]);
  });

  it('checks a connection URL read from a variable as the variable gives it, naming the variable and never its value', async () => {
    const text = yaml(
      'sources:',
      '  warehouse: { type: postgres, url: "${WH_URL}" }',
      'destinations:',
      '  crm: { type: mysql, url: "mysql://lockstep:${CRM_PASSWORD}@db.example.com:3306/crm" }',
      '  app: { type: postgres, url: "postgres://app:${APP_PASSWORD}@db.example.com:5432/app" }',
      '  api: { type: http, url: "${API_BASE}/v1" }',
      '  later: { type: postgres, url: "${LATER_URL}" }',
      'models:',
      '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
    );
    const result = await load(text, {
      WH_URL: 'http://warehouse.example.com/wh-s3cret',
      CRM_PASSWORD: '2024#crm-s3cret',
      APP_PASSWORD: 'pa/app-s3cret',
      API_BASE: 'https://api.example.com',
    });
    const encode = 'percent-encode @, /, #, ? and : in the user name and password (@ is %40, / is %2F, # is %23)';
    expect(result.errors).toEqual([
      'lockstep.yaml:2:37: sources.warehouse.url: url must start with postgres:// or postgresql://, not http:// (as ${WH_URL} gives it) — check WH_URL: e.g. postgres://user:password@host:5432/database',
      `lockstep.yaml:4:28: destinations.crm.url: url does not read as user:password@host... (it has a # or a second @) (as \${CRM_PASSWORD} gives it) — check CRM_PASSWORD: ${encode}`,
      `lockstep.yaml:5:31: destinations.app.url: url is not a URL (as \${APP_PASSWORD} gives it) — check APP_PASSWORD: write it like postgres://user:password@host:5432/database; ${encode}`,
      // An unset variable keeps its own message.
      'lockstep.yaml:7:33: destinations.later.url: environment variable LATER_URL is not set (destination "later" uses ${LATER_URL}) — export LATER_URL=... before running Lockstep',
    ]);
    expect(result.errors.join('\n')).not.toMatch(/s3cret|warehouse\.example\.com/);
    // The values fixed, it is valid.
    const fixed = await load(text, {
      WH_URL: 'postgres://wh:pw@warehouse.example.com/wh',
      CRM_PASSWORD: '2024%23crm-s3cret',
      APP_PASSWORD: 'pa%2Fapp-s3cret',
      API_BASE: 'https://api.example.com',
      LATER_URL: 'postgresql://later.example.com/db',
    });
    expect(fixed.errors).toEqual([]);
  });
});

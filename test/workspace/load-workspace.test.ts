import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Diagnostic } from '../../src/core/errors.js';
import type { TimedSchedule, WorkspaceDefinition } from '../../src/core/workspace.js';
import { validateTimedSchedule } from '../../src/engine/schedule-times.js';
import { loadFiles, yaml } from './helpers.js';

const load = loadFiles;

/** The parts of a diagnostic a reader sees first: where and what. */
const brief = (d: Diagnostic) => `${d.file}:${d.line}: ${d.path}: ${d.message}`;

const SPEC_EXAMPLE = yaml(
  'sources:',
  '  warehouse: { type: postgres, url: "${WAREHOUSE_URL}" }',
  'destinations:',
  '  crm: { type: postgres, url: "${CRM_URL}" }',
  'models:',
  '  accounts:   { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
  '  contacts:   { source: warehouse, primaryKey: id, query: "select id, account_id, email from contacts" }',
  'syncs:',
  '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }',
  '  contacts-to-crm: { model: contacts, destination: crm, object: contacts, mode: upsert,',
  '                     mappings: [ { from: email, to: email_address } ] }',
  'sequences:',
  '  crm-hierarchy:',
  '    schedule: { type: cron, expression: "0 * * * *", timezone: Europe/Berlin }',
  '    members:',
  '      - { sync: accounts-to-crm, terminate: on_fatal_or_rejected, rejectedThreshold: { percent: 5 } }',
  '      - { sync: contacts-to-crm, terminate: never }',
);
const SPEC_ENV = { WAREHOUSE_URL: 'postgres://w', CRM_URL: 'postgres://c' };

describe('loadWorkspace: a valid workspace', () => {
  it('resolves the SPEC example with every default filled in, templates kept as written', async () => {
    const result = await load({ 'lockstep.yaml': SPEC_EXAMPLE }, SPEC_ENV);
    expect(result.diagnostics).toEqual([]);
    expect(result.files).toEqual(['lockstep.yaml']);
    expect(result.store).toEqual({ type: 'sqlite', path: join(result.dir, 'lockstep.db') });
    const expected: WorkspaceDefinition = {
      sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: '${WAREHOUSE_URL}' } }],
      destinations: [{ slug: 'crm', type: 'postgres', settings: { url: '${CRM_URL}' } }],
      models: [
        { slug: 'accounts', source: 'warehouse', primaryKey: ['id'], query: 'select id, name from accounts' },
        { slug: 'contacts', source: 'warehouse', primaryKey: ['id'], query: 'select id, account_id, email from contacts' },
      ],
      syncs: [
        {
          slug: 'accounts-to-crm',
          model: 'accounts',
          destination: 'crm',
          object: 'accounts',
          mode: 'upsert',
          deleteBehavior: 'ignore',
          mappings: [],
          schedule: { type: 'manual' },
          enabled: true,
          batchSize: 1000,
          maxDeletePercent: 50,
          settings: {},
        },
        {
          slug: 'contacts-to-crm',
          model: 'contacts',
          destination: 'crm',
          object: 'contacts',
          mode: 'upsert',
          deleteBehavior: 'ignore',
          mappings: [{ from: 'email', to: 'email_address' }],
          schedule: { type: 'manual' },
          enabled: true,
          batchSize: 1000,
          maxDeletePercent: 50,
          settings: {},
        },
      ],
      sequences: [
        {
          slug: 'crm-hierarchy',
          name: 'crm-hierarchy',
          concurrency: 4,
          enabled: true,
          schedule: { type: 'cron', expression: '0 * * * *', timezone: 'Europe/Berlin', catchupWindowSeconds: 3600 },
          members: [
            { key: 'accounts-to-crm', sync: 'accounts-to-crm', terminate: 'on_fatal_or_rejected', rejectedThreshold: { percent: 5 }, after: null },
            { key: 'contacts-to-crm', sync: 'contacts-to-crm', terminate: 'never', rejectedThreshold: { count: 0 }, after: null },
          ],
        },
      ],
      alerts: { channels: [], rules: [] },
      webhooks: { dbtCloud: null, fivetran: null },
    };
    expect(result.definition).toEqual(expected);
  });

  it('resolves every schedule type, member forms and explicit settings', async () => {
    const result = await load({
      'lockstep.yml': yaml(
        'store: { type: postgres, url: "${LOCKSTEP_DB}" }',
        'sources:',
        '  wh: { type: duckdb, path: data/warehouse.duckdb }',
        '  my: { type: mysql, url: "mysql://x" }',
        'destinations:',
        '  crm: { type: sqlite, path: ../crm.db }',
        'models:',
        '  people: { source: wh, primaryKey: [org_id, email], query: select 1 }',
        'syncs:',
        '  s-interval: { model: people, destination: crm, object: t, mode: mirror, enabled: false, batchSize: 50, deleteBehavior: delete,',
        '                schedule: { type: interval, unit: hour, quantity: 2, startAt: "2024-01-01T06:00:00Z", catchupWindow: 2h30m } }',
        '  s-cron: { model: people, destination: crm, object: t, mode: insert, schedule: { type: cron, expression: "30 6 * * 1-5", catchupWindow: 90 } }',
        '  s-recur: { model: people, destination: crm, object: t, mode: update,',
        '             schedule: { type: recurrence, timezone: America/New_York, days: [monday, friday], times: ["06:30", "18:00"], catchupWindow: 30m } }',
        '  s-dbt: { model: people, destination: crm, object: t, mode: upsert, schedule: { type: dbt_cloud, accountId: 12, jobId: "345" } }',
        '  s-five: { model: people, destination: crm, object: t, mode: upsert, schedule: { type: fivetran, connectorId: warm_up } }',
        '  s-after: { model: people, destination: crm, object: t, mode: upsert, schedule: { type: after, sync: s-dbt } }',
        'sequences:',
        '  graph:',
        '    name: The graph',
        '    concurrency: 2',
        '    enabled: false',
        '    schedule: { type: after, sequence: other, on: any }',
        '    members:',
        '      - s-interval',
        '      - { sync: s-cron, key: cron, after: [], terminate: on_fatal_or_rejected }',
        '      - { sync: s-recur, after: [cron, s-interval], terminate: on_fatal_or_rejected, rejectedThreshold: { count: 3 } }',
        '  other: { members: [s-five] }',
      ),
    }, { LOCKSTEP_DB: 'postgres://store' });
    expect(result.diagnostics).toEqual([]);
    expect(result.store).toEqual({ type: 'postgres', url: '${LOCKSTEP_DB}' });
    const def = result.definition!;
    expect(def.sources).toEqual([
      { slug: 'wh', type: 'duckdb', settings: { path: 'data/warehouse.duckdb' } },
      { slug: 'my', type: 'mysql', settings: { url: 'mysql://x' } },
    ]);
    expect(def.destinations).toEqual([{ slug: 'crm', type: 'sqlite', settings: { path: '../crm.db' } }]);
    expect(def.models[0]?.primaryKey).toEqual(['org_id', 'email']);
    const schedules = Object.fromEntries(def.syncs.map((s) => [s.slug, s.schedule]));
    expect(schedules).toEqual({
      's-interval': { type: 'interval', unit: 'hour', quantity: 2, startAt: '2024-01-01T06:00:00Z', catchupWindowSeconds: 9000 },
      's-cron': { type: 'cron', expression: '30 6 * * 1-5', timezone: 'UTC', catchupWindowSeconds: 90 },
      's-recur': { type: 'recurrence', timezone: 'America/New_York', days: ['monday', 'friday'], times: ['06:30', '18:00'], catchupWindowSeconds: 1800 },
      's-dbt': { type: 'dbt_cloud', accountId: '12', jobId: '345' },
      's-five': { type: 'fivetran', connectorId: 'warm_up' },
      's-after': { type: 'after', sync: 's-dbt', sequence: null, on: 'success' },
    });
    expect(def.syncs[0]).toMatchObject({ mode: 'mirror', enabled: false, batchSize: 50, deleteBehavior: 'delete' });
    const graph = def.sequences[0]!;
    expect(graph).toMatchObject({ slug: 'graph', name: 'The graph', concurrency: 2, enabled: false, schedule: { type: 'after', sync: null, sequence: 'other', on: 'any' } });
    expect(graph.members).toEqual([
      { key: 's-interval', sync: 's-interval', terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null },
      { key: 'cron', sync: 's-cron', terminate: 'on_fatal_or_rejected', rejectedThreshold: { count: 0 }, after: [] },
      { key: 's-recur', sync: 's-recur', terminate: 'on_fatal_or_rejected', rejectedThreshold: { count: 3 }, after: ['cron', 's-interval'] },
    ]);
    expect(def.sequences[1]).toMatchObject({ slug: 'other', name: 'other', schedule: { type: 'manual' } });
  });

  it('merges lockstep.yaml with every YAML file under lockstep/, in file order', async () => {
    const result = await load({
      'lockstep.yaml': yaml('store: { type: sqlite, path: state/lockstep.db }', 'sources:', '  wh: { type: sqlite, path: wh.db }'),
      'lockstep/destinations.yaml': yaml('destinations:', '  crm: { type: sqlite, path: crm.db }'),
      'lockstep/crm/models.yml': yaml('models:', '  accounts: { source: wh, primaryKey: id, query: select 1 }'),
      'lockstep/crm/syncs.yaml': yaml('syncs:', '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }', 'sequences:', '  crm: { members: [accounts-to-crm] }'),
      'lockstep/notes.txt': 'not yaml, not read',
    });
    expect(result.diagnostics).toEqual([]);
    expect(result.files).toEqual(['lockstep.yaml', 'lockstep/crm/models.yml', 'lockstep/crm/syncs.yaml', 'lockstep/destinations.yaml']);
    expect(result.store).toEqual({ type: 'sqlite', path: join(result.dir, 'state', 'lockstep.db') });
    expect(result.definition?.syncs.map((s) => s.slug)).toEqual(['accounts-to-crm']);
    expect(result.definition?.sequences.map((s) => s.members.map((m) => m.sync))).toEqual([['accounts-to-crm']]);
  });

  it('loads a workspace made only of files under lockstep/, and an empty file', async () => {
    const result = await load({
      'lockstep/a.yaml': yaml('sources:', '  wh: { type: sqlite, path: wh.db }'),
      'lockstep/empty.yaml': '# nothing yet\n',
      'lockstep/b.yaml': yaml('models:'),
    });
    expect(result.diagnostics).toEqual([]);
    expect(result.definition?.sources.map((s) => s.slug)).toEqual(['wh']);
  });
});

describe('loadWorkspace: errors', () => {
  it('says a required key is misspelt, not missing, when a key beside it is a slip of its name', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        /* 1 */ 'sources:',
        /* 2 */ '  warehouse: { type: sqlite, path: ./warehouse.db }',
        /* 3 */ 'destinations:',
        /* 4 */ '  crm: { type: sqlite, path: ./crm.db }',
        /* 5 */ 'models:',
        /* 6 */ '  account: { source: warehouse, querry: "select 1 as id", primaryKey: id }',
        /* 7 */ 'syncs:',
        /* 8 */ '  accounts-to-crm:',
        /* 9 */ '    model: account',
        /* 10 */ '    destinaton: crm',
        /* 11 */ '    object: accounts',
        /* 12 */ '    mode: upsert',
        /* 13 */ '  contacts-to-crm:',
        /* 14 */ '    mode: upsert',
        /* 15 */ '    destination: crm',
        /* 16 */ '    object: contacts',
      ),
    });
    expect(result.diagnostics.map((d) => `${brief(d)} — ${d.hint}`)).toEqual([
      'lockstep.yaml:6: models.account.querry: unknown key "querry" (did you mean "query"?) — allowed here: source, query, primaryKey, cursor, fullCompareEvery',
      'lockstep.yaml:10: syncs.accounts-to-crm.destinaton: unknown key "destinaton" (did you mean "destination"?) — rename it to destination',
      // A key the sync takes is no slip, however close: `mode` beside a missing `model`.
      'lockstep.yaml:13: syncs.contacts-to-crm.model: missing model — add model: <a string>',
    ]);
  });

  it('reports every mistake of a workspace in one pass, with exact lines, paths, values and hints', async () => {
    const result = await load(
      {
        'lockstep.yaml': yaml(
          /*  1 */ 'sources:',
          /*  2 */ '  warehouse: { type: postgress, url: "${WAREHOUSE_URL}" }',
          /*  3 */ '  Old Warehouse: { type: sqlite, path: old.db }',
          /*  4 */ 'destinations:',
          /*  5 */ '  crm: { type: postgres, url: "${CRM_URL}", path: crm.db }',
          /*  6 */ 'models:',
          /*  7 */ '  account: { source: warehous, primaryKey: id, query: select 1 }',
          /*  8 */ '  contact: { source: warehouse, primaryKey: [id, 3] }',
          /*  9 */ 'syncs:',
          /* 10 */ '  accounts-to-crm:',
          /* 11 */ '    model: acount',
          /* 12 */ '    destination: crm',
          /* 13 */ '    object: accounts',
          /* 14 */ '    mode: upsrt',
          /* 15 */ '    batchSize: 0',
          /* 16 */ '    enabled: yes',
          /* 17 */ '    shedule: { type: manual }',
          /* 18 */ '  contacts-to-crm:',
          /* 19 */ '    model: contact',
          /* 20 */ '    destination: crm',
          /* 21 */ '    object: contacts',
          /* 22 */ '    mapings: []',
          /* 23 */ '    mappings:',
          /* 24 */ '      - { from: email, to: email_address }',
          /* 25 */ '      - { from: work_email, to: email_address }',
          /* 26 */ '    schedule: { type: hourly }',
          /* 27 */ 'sequences:',
          /* 28 */ '  crm:',
          /* 29 */ '    members:',
          /* 30 */ '      - accounts-to-crm',
          /* 31 */ '      - { sync: contact-to-crm, after: [acounts-to-crm] }',
          /* 32 */ '      - { sync: accounts-to-crm, terminate: never, rejectedThreshold: { count: 5 } }',
          /* 33 */ '  empty:',
          /* 34 */ '    members: []',
          /* 35 */ 'sequence: {}',
        ),
      },
      { WAREHOUSE_URL: 'postgres://w' },
    );
    expect(result.definition).toBeNull();
    expect(result.diagnostics.map(brief)).toEqual([
      'lockstep.yaml:2: sources.warehouse.type: unknown type "postgress" (did you mean "postgres"?)',
      'lockstep.yaml:3: sources.Old Warehouse: invalid source slug "Old Warehouse"',
      'lockstep.yaml:5: destinations.crm.url: environment variable CRM_URL is not set (destination "crm" uses ${CRM_URL})',
      'lockstep.yaml:5: destinations.crm.path: unknown key "path"',
      'lockstep.yaml:7: models.account.source: unknown source "warehous" (did you mean "warehouse"?)',
      'lockstep.yaml:8: models.contact.query: missing query',
      'lockstep.yaml:8: models.contact.primaryKey[1]: primaryKey must be a string, got 3',
      'lockstep.yaml:11: syncs.accounts-to-crm.model: unknown model "acount" (did you mean "account"?)',
      'lockstep.yaml:14: syncs.accounts-to-crm.mode: unknown mode "upsrt" (did you mean "upsert"?)',
      'lockstep.yaml:15: syncs.accounts-to-crm.batchSize: batchSize 0 is below the minimum 1',
      'lockstep.yaml:16: syncs.accounts-to-crm.enabled: enabled must be true or false, got "yes"',
      'lockstep.yaml:17: syncs.accounts-to-crm.shedule: unknown key "shedule" (did you mean "schedule"?)',
      'lockstep.yaml:18: syncs.contacts-to-crm.mode: missing mode',
      'lockstep.yaml:22: syncs.contacts-to-crm.mapings: unknown key "mapings" (did you mean "mappings"?)',
      'lockstep.yaml:25: syncs.contacts-to-crm.mappings[1].to: columns "email" and "work_email" both map to destination field "email_address"',
      'lockstep.yaml:26: syncs.contacts-to-crm.schedule.type: unknown schedule type "hourly"',
      'lockstep.yaml:31: sequences.crm.members[1].sync: unknown sync "contact-to-crm" (did you mean "contacts-to-crm"?)',
      'lockstep.yaml:31: sequences.crm.members[1].after[0]: unknown member "acounts-to-crm" in after (did you mean "accounts-to-crm"?)',
      'lockstep.yaml:32: sequences.crm.members[2].sync: sync "accounts-to-crm" appears twice in sequence "crm" (members[0] and members[2])',
      'lockstep.yaml:32: sequences.crm.members[2].rejectedThreshold: rejectedThreshold has no effect with terminate "never"',
      'lockstep.yaml:34: sequences.empty.members: a sequence needs at least one member',
      'lockstep.yaml:35: sequence: unknown key "sequence" (did you mean "sequences"?)',
    ]);
    const byPath = new Map(result.diagnostics.map((d) => [d.path, d]));
    expect(byPath.get('sources.Old Warehouse')?.hint).toBe('use lowercase letters, digits, "-" and "_", starting with a letter or digit, e.g. "old-warehouse"');
    expect(byPath.get('sources.warehouse.type')?.hint).toBe('use one of: postgres, mysql, sqlite, duckdb');
    expect(byPath.get('destinations.crm.url')?.hint).toBe('export CRM_URL=... before running Lockstep');
    expect(byPath.get('destinations.crm.path')?.hint).toBe('allowed here: type, url, connectTimeoutSeconds, statementTimeoutMinutes, writeTimeoutMinutes, auditLog, planner, plannerSchema');
    expect(byPath.get('syncs.accounts-to-crm.batchSize')?.hint).toBe('use a whole number from 1 to 100000');
    expect(byPath.get('syncs.contacts-to-crm.schedule.type')?.hint).toBe('use one of: manual, interval, cron, recurrence, dbt_cloud, fivetran, after');
    expect(byPath.get('sequences.crm.members[1].sync')?.hint).toBe(
      'declare sync "contact-to-crm" under syncs:, or use one of: accounts-to-crm, contacts-to-crm',
    );
    expect(byPath.get('sequences.crm.members[2].rejectedThreshold')?.hint).toBe('set terminate: on_fatal_or_rejected, or remove rejectedThreshold');
    // Every diagnostic is located and explains the fix.
    for (const d of result.diagnostics) {
      expect(d).toMatchObject({ file: 'lockstep.yaml', line: expect.any(Number), column: expect.any(Number), hint: expect.any(String) });
    }
    // Columns point at the offending value or key.
    expect(byPath.get('syncs.accounts-to-crm.model')).toMatchObject({ line: 11, column: 12 });
    expect(byPath.get('syncs.accounts-to-crm.shedule')).toMatchObject({ line: 17, column: 5 });
    expect(byPath.get('sources.Old Warehouse')).toMatchObject({ line: 3, column: 3 });
  });

  it('says where it looked and to run lockstep init when there is no workspace file', async () => {
    const result = await load({ 'other.yaml': 'sources: {}\n' });
    expect(result).toMatchObject({ definition: null, files: [], store: null });
    expect(result.diagnostics).toHaveLength(1);
    expect(result.diagnostics[0]?.message).toBe(
      `no workspace found in ${result.dir}: looked for lockstep.yaml and lockstep.yml and YAML files under lockstep/`,
    );
    expect(result.diagnostics[0]?.hint).toContain('run `lockstep init`');
  });

  it('reports a slug declared in two files, naming both places', async () => {
    const result = await load({
      'lockstep.yaml': yaml('sources:', '  wh: { type: sqlite, path: wh.db }', 'models:', '  accounts: { source: wh, primaryKey: id, query: select 1 }'),
      'lockstep/more.yaml': yaml('# more models', 'models:', '  other: { source: wh, primaryKey: id, query: select 2 }', '  accounts: { source: wh, primaryKey: id, query: select 3 }'),
      'lockstep/store.yaml': yaml('store: { type: sqlite }'),
      'lockstep/store2.yaml': yaml('', 'store: { type: sqlite, path: x.db }'),
    });
    expect(result.definition).toBeNull();
    expect(result.diagnostics.map(brief)).toEqual([
      'lockstep/more.yaml:4: models.accounts: model "accounts" is declared twice: lockstep.yaml:4 and lockstep/more.yaml:4',
      'lockstep/store2.yaml:2: store: the store is declared twice: lockstep/store.yaml:1 and lockstep/store2.yaml:2',
    ]);
  });

  it('reports the same key twice in one file as the YAML parser finds it', async () => {
    const result = await load({
      'lockstep.yaml': yaml('sources:', '  wh: { type: sqlite, path: a.db }', '  wh: { type: sqlite, path: b.db }'),
    });
    expect(result.diagnostics.map(brief)).toEqual(['lockstep.yaml:3: sources.wh: key "wh" appears twice in sources (first at line 2)']);
    const top = await load({ 'lockstep.yaml': yaml('sources: {}', 'destinations: {}', 'sources: {}') });
    expect(top.diagnostics.map(brief)).toEqual(['lockstep.yaml:3: sources: key "sources" appears twice at the top level (first at line 1)']);
  });

  it('reports malformed YAML at the parser position and checks the other files', async () => {
    const result = await load({
      'lockstep.yaml': yaml('sources:', '\twh: { type: sqlite, path: a.db }', 'models: {}'),
      'lockstep/syncs.yaml': yaml('syncs:', '  s: { model: m, destination: d, object: o, mode: sideways }'),
    });
    expect(result.definition).toBeNull();
    const [first, ...rest] = result.diagnostics;
    expect(first).toMatchObject({ file: 'lockstep.yaml', line: 2, column: 1, path: '', message: 'invalid YAML: Tabs are not allowed as indentation' });
    // The broken file hides cross-file references, but the other file's own mistakes still show.
    expect(rest.map(brief)).toEqual(['lockstep/syncs.yaml:2: syncs.s.mode: unknown mode "sideways"']);
  });

  it('reports a file that is not a mapping of sections', async () => {
    const result = await load({ 'lockstep.yaml': yaml('- sources', '- syncs') });
    expect(result.diagnostics.map(brief)).toEqual(['lockstep.yaml:1: : lockstep.yaml must be a mapping of sections, got a list']);
  });

  it('checks ${VAR} templates of connections and the store against the environment', async () => {
    const files = {
      'lockstep.yaml': yaml(
        'store: { type: postgres, url: "${LOCKSTEP_DB}" }',
        'sources:',
        '  wh: { type: postgres, url: "postgres://${PGUSER}:${PGPASSWORD}@${PGHOST}/wh" }',
        '  files: { type: duckdb, path: "${DATA_DIR}/wh.duckdb" }',
        'destinations:',
        '  crm: { type: mysql, url: "${CRM_URL}" }',
      ),
    };
    const missing = await load(files, { PGUSER: 'u', PGHOST: 'h' });
    expect(missing.definition).toBeNull();
    expect(missing.diagnostics.map((d) => `${d.line}: ${d.path}: ${d.message} — ${d.hint}`)).toEqual([
      '1: store.url: environment variable LOCKSTEP_DB is not set (the store uses ${LOCKSTEP_DB}) — export LOCKSTEP_DB=... before running Lockstep',
      '3: sources.wh.url: environment variable PGPASSWORD is not set (source "wh" uses ${PGPASSWORD}) — export PGPASSWORD=... before running Lockstep',
      '4: sources.files.path: environment variable DATA_DIR is not set (source "files" uses ${DATA_DIR}) — export DATA_DIR=... before running Lockstep',
      '6: destinations.crm.url: environment variable CRM_URL is not set (destination "crm" uses ${CRM_URL}) — export CRM_URL=... before running Lockstep',
    ]);
    const set = await load(files, { PGUSER: 'u', PGHOST: 'h', PGPASSWORD: '', LOCKSTEP_DB: 'postgres://s', DATA_DIR: '/data', CRM_URL: 'mysql://c' });
    expect(set.diagnostics).toEqual([]);
    // Secrets stay templated in the definition; they are resolved when a connection opens.
    expect(set.definition?.sources[0]?.settings.url).toBe('postgres://${PGUSER}:${PGPASSWORD}@${PGHOST}/wh');
    // A variable exported empty that leaves a whole setting empty fails every run: said now, as an unset one is.
    const empty = await load(files, { PGUSER: 'u', PGHOST: 'h', PGPASSWORD: '', LOCKSTEP_DB: 'postgres://s', DATA_DIR: '/data', CRM_URL: ' ' });
    expect(empty.definition).toBeNull();
    expect(empty.diagnostics.map((d) => `${d.line}: ${d.path}: ${d.message} — ${d.hint}`)).toEqual([
      '6: destinations.crm.url: environment variable CRM_URL is empty (destination "crm" uses ${CRM_URL}) — export CRM_URL=... before running Lockstep',
    ]);
  });

  it('refuses a ${VAR} template in a query, an object or a mapping, which no run replaces', async () => {
    const files = {
      'lockstep.yaml': yaml(
        'sources:',
        '  wh: { type: sqlite, path: wh.db }',
        'destinations:',
        '  crm: { type: sqlite, path: crm.db }',
        'models:',
        '  accounts: { source: wh, primaryKey: id, query: "select id, name from ${SCHEMA}.accounts" }',
        'syncs:',
        '  accounts-to-crm: { model: accounts, destination: crm, object: "${CRM_TABLE}", mode: upsert, mappings: [ { from: name, to: "${NAME_FIELD}" } ] }',
      ),
    };
    const result = await load(files, { SCHEMA: 'main', CRM_TABLE: 'accounts', NAME_FIELD: 'name' });
    expect(result.definition).toBeNull();
    expect(result.diagnostics.map((d) => `${d.line}: ${d.path}: ${d.message} — ${d.hint}`)).toEqual([
      '6: models.accounts.query: ${SCHEMA} is not replaced in the query of model "accounts": it would reach the source as written — ${ENV} templates are read only in the settings of sources, destinations, the store, webhooks and alert channels: write the value itself here',
      '8: syncs.accounts-to-crm.object: ${CRM_TABLE} is not replaced in the object of sync "accounts-to-crm": it would reach the destination as written — ${ENV} templates are read only in the settings of sources, destinations, the store, webhooks and alert channels: write the value itself here',
      '8: syncs.accounts-to-crm.mappings[0].to: ${NAME_FIELD} is not replaced in the mappings of sync "accounts-to-crm": it would reach the destination as written — ${ENV} templates are read only in the settings of sources, destinations, the store, webhooks and alert channels: write the value itself here',
    ]);
  });

  it("checks the store's URL as its variables give it, naming them and never the value", async () => {
    const files = { 'lockstep.yaml': yaml('store: { type: postgres, url: "postgres://lockstep:${STORE_PASSWORD}@${STORE_HOST}/lockstep" }') };
    const split = await load(files, { STORE_PASSWORD: '12#st0re-s3cret', STORE_HOST: 'db.example.com' });
    expect(split.diagnostics.map((d) => `${d.line}: ${d.path}: ${d.message} — ${d.hint}`)).toEqual([
      '1: store.url: url of the store does not read as user:password@host... (it has a # or a second @) (as ${STORE_PASSWORD} and ${STORE_HOST} give it) — check STORE_PASSWORD and STORE_HOST: percent-encode @, /, #, ? and : in the user name and password (@ is %40, / is %2F, # is %23)',
    ]);
    expect(JSON.stringify(split.diagnostics)).not.toContain('st0re-s3cret');
    // No store is named, so the commands that open one stop on it rather than reach a host made of the password.
    expect(split.store).toBeNull();
    const scheme = await load({ 'lockstep.yaml': yaml('store: { type: postgres, url: "${STORE_URL}" }') }, { STORE_URL: 'mysql://db.example.com/lockstep' });
    expect(scheme.diagnostics.map((d) => `${d.message} — ${d.hint}`)).toEqual([
      'url of the store must start with postgres:// or postgresql://, not mysql:// (as ${STORE_URL} gives it) — check STORE_URL: e.g. postgres://user:password@host:5432/database',
    ]);
    expect((await load(files, { STORE_PASSWORD: '12%23st0re-s3cret', STORE_HOST: 'db.example.com' })).diagnostics).toEqual([]);
  });

  it('shows a dependency cycle among members with its path', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        '  accounts-to-crm: { model: m, destination: crm, object: a, mode: upsert }',
        '  contacts-to-crm: { model: m, destination: crm, object: c, mode: upsert }',
        '  deals-to-crm: { model: m, destination: crm, object: d, mode: upsert }',
        'sequences:',
        '  crm:',
        '    members:',
        '      - { sync: accounts-to-crm, key: accounts, after: [deals] }',
        '      - { sync: contacts-to-crm, key: contacts, after: [accounts] }',
        '      - { sync: deals-to-crm, key: deals, after: [contacts] }',
        '  self:',
        '    members:',
        '      - { sync: accounts-to-crm, after: [accounts-to-crm] }',
        '  dup-keys:',
        '    members:',
        '      - { sync: accounts-to-crm, key: first }',
        '      - { sync: contacts-to-crm, key: first }',
        '  implicit:',
        '    members:',
        '      - { sync: accounts-to-crm, after: [contacts-to-crm] }',
        '      - { sync: contacts-to-crm }',
      ),
    });
    expect(result.diagnostics.map(brief)).toEqual([
      'lockstep.yaml:11: sequences.crm.members[0].after: sequence "crm" has a cycle: accounts -> deals -> contacts -> accounts',
      'lockstep.yaml:16: sequences.self.members[0].after: sequence "self" has a cycle: accounts-to-crm -> accounts-to-crm',
      'lockstep.yaml:20: sequences.dup-keys.members[1].key: member key "first" is used twice in sequence "dup-keys" (members[0] and members[1])',
      // A member without `after` waits for the one before it, which closes this loop.
      'lockstep.yaml:23: sequences.implicit.members[0].after: sequence "implicit" has a cycle: accounts-to-crm -> contacts-to-crm -> accounts-to-crm' +
        ' (a member without after waits for the member listed before it: contacts-to-crm waits for accounts-to-crm)',
    ]);
    expect(result.diagnostics[0]?.hint).toBe('members in a cycle would wait for each other forever; remove one of these after entries');
    // contacts-to-crm states no after entry, so removing one cannot be the only fix.
    expect(result.diagnostics[3]?.hint).toBe(
      'members in a cycle would wait for each other forever; remove one of these after entries, or give contacts-to-crm an after of its own (after: [] starts a member at once)',
    );
  });

  it('shows a loop of after schedules between syncs and sequences', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        '  a: { model: m, destination: crm, object: a, mode: upsert, schedule: { type: after, sync: b } }',
        '  b: { model: m, destination: crm, object: b, mode: upsert, schedule: { type: after, sync: a, on: any } }',
        '  c: { model: m, destination: crm, object: c, mode: upsert }',
        '  d: { model: m, destination: crm, object: d, mode: upsert, schedule: { type: after, sequence: nightly } }',
        'sequences:',
        '  nightly:',
        '    schedule: { type: after, sync: c }',
        '    members: [c]',
        '  broken:',
        '    schedule: { type: after, sync: aa, sequence: nightly }',
        '    members: [d]',
        '  missing:',
        '    schedule: { type: after, sequence: nighty }',
        '    members: [d]',
      ),
    });
    expect(result.diagnostics.map(brief)).toEqual([
      'lockstep.yaml:6: syncs.b.schedule: after schedules form a loop: sync "a" -> sync "b" -> sync "a"',
      'lockstep.yaml:11: sequences.nightly.schedule: after schedules form a loop: sync "c" -> sequence "nightly" -> sync "c"',
      'lockstep.yaml:14: sequences.broken.schedule: an after schedule names both a sync and a sequence',
      'lockstep.yaml:14: sequences.broken.schedule.sync: unknown sync "aa" (did you mean "a"?)',
      'lockstep.yaml:17: sequences.missing.schedule.sequence: unknown sequence "nighty" (did you mean "nightly"?)',
    ]);
    expect(result.diagnostics[1]?.hint).toContain('a sequence runs its member syncs');
  });

  it('checks timezones, cron expressions, recurrence days and times, durations', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        '  a: { model: m, destination: crm, object: a, mode: upsert, schedule: { type: cron, expression: "61 * * * *", timezone: Europe/Berln } }',
        '  b: { model: m, destination: crm, object: b, mode: upsert, schedule: { type: cron, expression: "0 * * *" } }',
        '  c: { model: m, destination: crm, object: c, mode: upsert, schedule: { type: cron, expression: "0 0 31 2 *", timezone: Berlin } }',
        '  d:',
        '    model: m',
        '    destination: crm',
        '    object: d',
        '    mode: upsert',
        '    schedule:',
        '      type: recurrence',
        '      timezone: Mars/Olympus',
        '      days: [monday, funday]',
        '      times: ["9:00", "18:00", "24:00"]',
        '      catchupWindow: 1 hour',
        '  e: { model: m, destination: crm, object: e, mode: upsert, schedule: { type: interval, unit: fortnight, quantity: 0, startAt: yesterday } }',
      ),
    });
    expect(result.diagnostics.map(brief)).toEqual([
      'lockstep.yaml:5: syncs.a.schedule.expression: invalid cron expression "61 * * * *": Invalid value for minute: 61',
      'lockstep.yaml:5: syncs.a.schedule.timezone: unknown timezone "Europe/Berln" (did you mean "Europe/Berlin"?)',
      'lockstep.yaml:6: syncs.b.schedule.expression: cron expression "0 * * *" has 4 fields; Lockstep expects 5',
      'lockstep.yaml:7: syncs.c.schedule.expression: cron expression "0 0 31 2 *" never fires',
      'lockstep.yaml:7: syncs.c.schedule.timezone: unknown timezone "Berlin" (did you mean "Europe/Berlin"?)',
      'lockstep.yaml:15: syncs.d.schedule.timezone: unknown timezone "Mars/Olympus"',
      'lockstep.yaml:16: syncs.d.schedule.days[1]: unknown day "funday" (did you mean "sunday"?)',
      'lockstep.yaml:17: syncs.d.schedule.times[0]: time "9:00" is not HH:MM',
      'lockstep.yaml:17: syncs.d.schedule.times[2]: time "24:00" is not HH:MM',
      'lockstep.yaml:18: syncs.d.schedule.catchupWindow: catchupWindow "1 hour" is not a duration',
      'lockstep.yaml:19: syncs.e.schedule.unit: unknown unit "fortnight"',
      'lockstep.yaml:19: syncs.e.schedule.quantity: quantity 0 is below the minimum 1',
      'lockstep.yaml:19: syncs.e.schedule.startAt: startAt "yesterday" is not an ISO date and time',
    ]);
    const byPath = new Map(result.diagnostics.map((d) => [d.path, d]));
    expect(byPath.get('syncs.a.schedule.expression')?.hint).toBe(
      'write the 5 fields minute hour day-of-month month day-of-week, e.g. "0 * * * *" (every hour) or "30 6 * * 1-5" (06:30 on weekdays)',
    );
    expect(byPath.get('syncs.d.schedule.timezone')?.hint).toBe('use an IANA timezone name such as "UTC", "Europe/Berlin" or "America/New_York"');
    expect(byPath.get('syncs.d.schedule.times[0]')?.hint).toBe('write a 24-hour time with two digits each, e.g. "06:30" or "18:00"');
  });

  it('refuses at validate time the cron forms the scheduler cannot fire: "?" and unknown @nicknames, naming what to write', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        '  a: { model: m, destination: crm, object: a, mode: upsert, schedule: { type: cron, expression: "0 9 ? * MON-FRI" } }',
        '  b: { model: m, destination: crm, object: b, mode: upsert, schedule: { type: cron, expression: "@midnight" } }',
        '  c: { model: m, destination: crm, object: c, mode: upsert, schedule: { type: cron, expression: "@reboot" } }',
      ),
    });
    expect(result.diagnostics.map((d) => `${brief(d)} — ${d.hint}`)).toEqual([
      'lockstep.yaml:5: syncs.a.schedule.expression: cron expression "0 9 ? * MON-FRI" uses "?", which 5-field cron does not have — write * in its place: "0 9 * * MON-FRI"',
      'lockstep.yaml:6: syncs.b.schedule.expression: unknown cron nickname "@midnight" — write @daily (00:00 every day); the nicknames are @yearly (or @annually), @monthly, @weekly, @daily and @hourly',
      'lockstep.yaml:7: syncs.c.schedule.expression: unknown cron nickname "@reboot" — @reboot has no due time: use schedule type manual and start the run yourself; the nicknames are @yearly (or @annually), @monthly, @weekly, @daily and @hourly',
    ]);
    // What validate accepts, the scheduler can fire; what it refuses, the scheduler refuses too.
    const valid = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        '  d: { model: m, destination: crm, object: d, mode: upsert, schedule: { type: cron, expression: "@HOURLY", timezone: Europe/Berlin } }',
        '  e: { model: m, destination: crm, object: e, mode: upsert, schedule: { type: cron, expression: "@annually" } }',
      ),
    });
    expect(valid.diagnostics).toEqual([]);
    for (const sync of valid.definition!.syncs) expect(validateTimedSchedule(sync.schedule as TimedSchedule)).toEqual([]);
    const question: TimedSchedule = { type: 'cron', expression: '0 9 ? * MON-FRI', timezone: 'UTC', catchupWindowSeconds: 3600 };
    expect(validateTimedSchedule(question)[0]?.message).toBe('cron expression "0 9 ? * MON-FRI" uses "?", which 5-field cron does not have');
  });

  it('reports rejectedThreshold shapes and member forms precisely', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        '  a: { model: m, destination: crm, object: a, mode: upsert }',
        '  b: { model: m, destination: crm, object: b, mode: upsert }',
        '  c: { model: m, destination: crm, object: c, mode: upsert }',
        'sequences:',
        '  s:',
        '    members:',
        '      - { sync: a, terminate: on_fatal_or_rejected, rejectedThreshold: { percent: 120 } }',
        '      - { sync: b, terminate: on_fatal_or_rejected, rejectedThreshold: { percent: 5, count: 2 } }',
        '      - 42',
        '      - { sync: c, terminate: sometimes, key: C }',
      ),
    });
    expect(result.diagnostics.map(brief)).toEqual([
      'lockstep.yaml:11: sequences.s.members[0].rejectedThreshold.percent: percent 120 is above the maximum 100',
      'lockstep.yaml:12: sequences.s.members[1].rejectedThreshold: rejectedThreshold gives both percent and count',
      'lockstep.yaml:13: sequences.s.members[2]: a member must be a sync slug or a mapping, got 42',
      'lockstep.yaml:14: sequences.s.members[3].terminate: unknown terminate "sometimes"',
      'lockstep.yaml:14: sequences.s.members[3].key: invalid member key "C"',
    ]);
  });

  it('names the key or value at fault in a rejectedThreshold, not only the two forms it takes', async () => {
    const thresholds = ['{ count: 1.5 }', '{ count: "3" }', '{ percnt: 5 }', '{ percent: five }', '{}', '[5]'];
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: { wh: { type: sqlite, path: wh.db } }',
        'destinations: { crm: { type: sqlite, path: crm.db } }',
        'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
        'syncs:',
        ...thresholds.map((_, i) => `  s${i}: { model: m, destination: crm, object: t${i}, mode: upsert }`),
        'sequences:',
        '  s:',
        '    members:',
        ...thresholds.map((threshold, i) => `      - { sync: s${i}, terminate: on_fatal_or_rejected, rejectedThreshold: ${threshold} }`),
      ),
    });
    expect(result.diagnostics.map((d) => `${d.path}: ${d.message} — ${d.hint}`)).toEqual([
      'sequences.s.members[0].rejectedThreshold: rejectedThreshold count must be a whole number of rows, got 1.5 — e.g. rejectedThreshold: { count: 10 }',
      'sequences.s.members[1].rejectedThreshold: rejectedThreshold count must be a whole number of rows, got "3" — e.g. rejectedThreshold: { count: 10 }',
      'sequences.s.members[2].rejectedThreshold: rejectedThreshold has an unknown key "percnt" (did you mean "percent"?) — ' +
        'give percent (a share of the planned rows) or count (a number of rows), e.g. rejectedThreshold: { percent: 5 } or rejectedThreshold: { count: 10 }',
      'sequences.s.members[3].rejectedThreshold: rejectedThreshold percent must be a number from 0 to 100, got "five" — e.g. rejectedThreshold: { percent: 5 }',
      'sequences.s.members[4].rejectedThreshold: rejectedThreshold is empty — e.g. rejectedThreshold: { percent: 5 } or rejectedThreshold: { count: 10 }',
      'sequences.s.members[5].rejectedThreshold: rejectedThreshold must be { percent: P } or { count: N }, got a list — e.g. rejectedThreshold: { percent: 5 } or rejectedThreshold: { count: 10 }',
    ]);
  });

  it('reads member timeouts and a sequence deadline, and reports bad ones with the fix', async () => {
    const syncsAndCo = [
      'sources: { wh: { type: sqlite, path: wh.db } }',
      'destinations: { crm: { type: sqlite, path: crm.db } }',
      'models: { m: { source: wh, primaryKey: id, query: select 1 } }',
      'syncs:',
      '  a: { model: m, destination: crm, object: a, mode: upsert }',
      '  b: { model: m, destination: crm, object: b, mode: upsert }',
    ];
    const good = await load({
      'lockstep.yaml': yaml(...syncsAndCo, 'sequences:', '  s:', '    deadlineMinutes: 90', '    members:', '      - { sync: a, timeoutMinutes: 0.5 }', '      - b'),
    });
    expect(good.diagnostics).toEqual([]);
    expect(good.definition?.sequences[0]).toMatchObject({ deadlineMinutes: 90, members: [{ key: 'a', timeoutMinutes: 0.5 }, { key: 'b' }] });
    expect(good.definition?.sequences[0]?.members[1]).not.toHaveProperty('timeoutMinutes');

    const bad = await load({
      'lockstep.yaml': yaml(
        ...syncsAndCo,
        'sequences:',
        '  s:',
        '    deadlineMinutes: 0',
        '    members:',
        '      - { sync: a, timeoutMinutes: "5m" }',
        '      - { sync: b, timeoutMinutes: 20000 }',
      ),
    });
    expect(bad.diagnostics.map((d) => `${brief(d)} — ${d.hint}`)).toEqual([
      'lockstep.yaml:9: sequences.s.deadlineMinutes: deadlineMinutes must be more than 0 minutes, got 0 — e.g. deadlineMinutes: 30 (0.5 is 30 seconds), or leave it out for no limit',
      'lockstep.yaml:11: sequences.s.members[0].timeoutMinutes: timeoutMinutes must be a number, got "5m" — write minutes, e.g. timeoutMinutes: 30 (0.5 is 30 seconds), or leave it out for no limit',
      'lockstep.yaml:12: sequences.s.members[1].timeoutMinutes: timeoutMinutes of 20000 minutes is more than a week (10080) — e.g. timeoutMinutes: 30 (0.5 is 30 seconds), or leave it out for no limit',
    ]);
  });

  it('reports wrong shapes: a list for a mapping, a string for a list, a schedule without type', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'sources: [warehouse]',
        'syncs:',
        '  s1: { model: m, destination: d, object: o, mode: upsert, schedule: { expression: "0 * * * *" } }',
        '  s2: { model: m, destination: d, object: o, mode: upsert, schedule: hourly }',
        'sequences:',
        '  q: { members: s1 }',
        '  r: { members: [s1], schedule: { type: after } }',
      ),
    });
    expect(result.diagnostics.filter((d) => !d.message.startsWith('unknown ')).map((d) => `${brief(d)} — ${d.hint}`)).toEqual([
      'lockstep.yaml:1: sources: sources must be a mapping, got a list — declare each entry as <slug>: { ... } under sources:',
      'lockstep.yaml:3: syncs.s1.schedule.type: missing type — add type: one of manual, interval, cron, recurrence, dbt_cloud, fivetran, after',
      'lockstep.yaml:4: syncs.s2.schedule: schedule must be a mapping, got "hourly" — e.g. schedule: { type: cron, expression: "0 * * * *" } or schedule: { type: manual }',
      'lockstep.yaml:6: sequences.q.members: members must be a list, got "s1" — e.g. members: [accounts-to-crm, contacts-to-crm]',
      'lockstep.yaml:7: sequences.r.schedule: an after schedule names no sync or sequence — give exactly one of sync: <slug> or sequence: <slug>',
    ]);
  });

  it('says why a bound is refused: an exclusive minimum names the bound as excluded', async () => {
    const result = await load({
      'lockstep.yaml': yaml(
        'destinations:',
        '  api: { type: http, url: "https://api.example.com", rateLimit: { requestsPerSecond: 0 }, concurrency: 0 }',
        '  slow: { type: http, url: "https://api.example.com", rateLimit: { requestsPerSecond: -1 } }',
      ),
    });
    expect(result.diagnostics.map((d) => `${brief(d)} — ${d.hint}`)).toEqual([
      'lockstep.yaml:2: destinations.api.rateLimit.requestsPerSecond: requestsPerSecond 0 must be more than 0 — use a number above 0, e.g. 10 (0.5 starts one request every 2 s)',
      'lockstep.yaml:2: destinations.api.concurrency: concurrency 0 is below the minimum 1 — use a whole number of 1 or more',
      'lockstep.yaml:3: destinations.slow.rateLimit.requestsPerSecond: requestsPerSecond -1 must be more than 0 — use a number above 0, e.g. 10 (0.5 starts one request every 2 s)',
    ]);
  });

  it('sorts diagnostics by file, then line, across files', async () => {
    const result = await load({
      'lockstep.yaml': yaml('models:', '  m: { source: nowhere, primaryKey: id, query: q }', 'syncs:', '  s: { model: m, destination: d, object: o, mode: upsert }'),
      'lockstep/b.yaml': yaml('destinations:', '  crm: { type: oracle, url: x }'),
      'lockstep/a.yaml': yaml('', 'sources:', '  wh: { type: sqlite }'),
    });
    expect(result.diagnostics.map((d) => `${d.file}:${d.line}`)).toEqual([
      'lockstep.yaml:2',
      'lockstep.yaml:4',
      'lockstep/a.yaml:3',
      'lockstep/b.yaml:2',
    ]);
  });
});

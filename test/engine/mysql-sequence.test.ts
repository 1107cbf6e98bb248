/**
 * A sequence writing to MySQL tables with a foreign key between them (accounts → contacts), from a
 * SQLite warehouse: the contacts sync alone, before the accounts exist, has every row rejected with
 * MySQL's foreign-key error (and keeps them); the sequence accounts → contacts ends done with the
 * contacts delivered.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { mysqlConnector } from '../../src/connectors/mysql/index.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';

const ACCOUNTS = 4;
const CONTACTS = 12;

async function setup() {
  const url = await createTestMysqlDatabase('sequence_crm');
  await mysqlSql(
    url,
    `create table accounts (id int primary key, name varchar(100) not null);
     create table contacts (id int primary key, account_id int not null, email varchar(200) unique,
       foreign key (account_id) references accounts (id))`,
  );
  const dir = tempDir();
  const rows: string[] = [];
  for (let a = 1; a <= ACCOUNTS; a++) rows.push(`insert into accounts values (${a}, 'Account ${a}');`);
  for (let c = 1; c <= CONTACTS; c++) rows.push(`insert into contacts values (${c}, ${((c - 1) % ACCOUNTS) + 1}, 'person${c}@example.com');`);
  sqlite(
    join(dir, 'warehouse.db'),
    `create table accounts (id integer primary key, name text);
     create table contacts (id integer primary key, account_id integer, email text);
     begin; ${rows.join('\n')} commit;`,
  );
  // The composition root may not know MySQL yet: the test's registry does.
  const registry = createConnectorRegistry();
  if (!registry.kind('mysql')) registry.register(mysqlConnector);
  const h = await startHarness({
    dir,
    definition: workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [source('crm', { type: 'mysql', url })],
      models: [
        model('accounts', 'warehouse', 'select id, name from accounts'),
        model('contacts', 'warehouse', 'select id, account_id, email from contacts'),
      ],
      syncs: [
        sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', batchSize: 5 }),
        sync('contacts', { model: 'contacts', destination: 'crm', object: 'contacts', batchSize: 5 }),
      ],
      sequences: [sequence('crm', [member('accounts'), member('contacts')])],
    }),
    connectors: () => registry,
  });
  return { url, h };
}

describe('a sequence into MySQL tables with foreign keys', () => {
  it('contacts alone are rejected with the foreign-key error; the sequence accounts → contacts delivers them', async () => {
    const { url, h } = await setup();
    await using _ = h;

    // The ordering problem: contacts before their accounts.
    const { run: started } = await h.app.runs.triggerSync('contacts');
    const alone = await h.app.runs.waitForSyncRun(started.id);
    expect(alone.status).toBe('warning');
    expect(alone.successfulRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 0 });
    expect(alone.failedRows).toEqual({ addedCount: CONTACTS, changedCount: 0, removedCount: 0 });
    const rejected = await h.app.store.listRejectedRows(alone.id, 100, 0);
    expect(rejected).toHaveLength(CONTACTS);
    for (const row of rejected) {
      expect(row.reason).toMatch(/^Cannot add or update a child row: a foreign key constraint fails \(.*`contacts`.*REFERENCES `accounts` \(`id`\)\)$/);
    }
    expect(await mysqlSql(url, 'select count(*) as n from contacts')).toEqual([{ n: '0' }]);

    // The fix: the sequence writes the accounts first; the contacts rejected a moment ago are sent again.
    const { run: queued } = await h.app.runs.triggerSequence('crm');
    const run = await h.app.runs.waitForSequenceRun(queued.id);
    expect(run.status).toBe('done');
    expect(run.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'success'],
      ['contacts', 'success'],
    ]);
    expect(run.terminatedBy).toBeNull();
    expect(await mysqlSql(url, 'select count(*) as n from accounts')).toEqual([{ n: String(ACCOUNTS) }]);
    const contacts = await mysqlSql<{ id: number; account_id: number; email: string }>(url, 'select id, account_id, email from contacts order by id');
    expect(contacts).toEqual(
      Array.from({ length: CONTACTS }, (_, i) => ({ id: i + 1, account_id: (i % ACCOUNTS) + 1, email: `person${i + 1}@example.com` })),
    );
  });
});

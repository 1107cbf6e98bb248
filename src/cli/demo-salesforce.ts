/**
 * `lockstep demo --salesforce`: the use case Lockstep started from. A DuckDB warehouse with accounts,
 * contacts and opportunities is synced into Salesforce (a local stand-in of its REST API, started by
 * the demo, written from Salesforce's documentation): contacts name their account by external id,
 * opportunities get their account's Salesforce Id from what the accounts sync recorded. Shown with
 * real runs: a child sent before its parent is rejected by Salesforce, and the sequence fixes it.
 * The same workspace file points at a real org through three environment variables.
 */
import { join, resolve } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { createApp, createConnectorRegistry } from '../app.js';
import { resolveConfig } from '../config.js';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { createJsonLogger } from '../core/logger.js';
import { startSalesforceStandIn, type SalesforceStandIn } from '../standins/salesforce-standin.js';
import { formatValidationReport, loadWorkspace } from '../workspace/index.js';
import { duckdb, prepareFolder, runSequence, runSync } from './demo.js';
import type { Terminal } from './output.js';

const WORKSPACE_YAML = `# The Lockstep Salesforce demo: accounts, then contacts and opportunities, into Salesforce.
# The demo points it at a local stand-in of Salesforce's API, and this folder's store (lockstep.db)
# records what it delivered there. For a real org, create a connected app with the client-credentials
# flow, then start from a new store, or every row counts as delivered already and nothing is sent:
#   rm <this folder>/lockstep.db
#   export SALESFORCE_LOGIN_URL=https://<your-domain>.my.salesforce.com
#   export SALESFORCE_CLIENT_ID=... SALESFORCE_CLIENT_SECRET=...
#   lockstep --workspace <this folder> apply && lockstep --workspace <this folder> sequence run salesforce-hierarchy
# (each object needs a text field External_Id__c marked External ID).
sources:
  warehouse: { type: duckdb, path: warehouse.duckdb }

destinations:
  salesforce:
    type: salesforce
    loginUrl: "\${SALESFORCE_LOGIN_URL}"
    clientId: "\${SALESFORCE_CLIENT_ID}"
    clientSecret: "\${SALESFORCE_CLIENT_SECRET}"

models:
  accounts:      { source: warehouse, primaryKey: id, query: "select id, name, industry from accounts" }
  contacts:      { source: warehouse, primaryKey: id, query: "select id, account_id, first_name, last_name, email from contacts" }
  opportunities: { source: warehouse, primaryKey: id, query: "select id, account_id, name, stage, amount, close_date from opportunities" }

syncs:
  accounts-to-salesforce:
    model: accounts
    destination: salesforce
    object: Account
    mode: upsert
    externalIdField: External_Id__c
    mappings:
      - { from: id, to: External_Id__c }
      - { from: name, to: Name }
      - { from: industry, to: Industry }
  contacts-to-salesforce:
    model: contacts
    destination: salesforce
    object: Contact
    mode: upsert
    externalIdField: External_Id__c
    mappings:
      - { from: id, to: External_Id__c }
      # The parent by its external id: Salesforce resolves it, or rejects the contact.
      - { from: account_id, to: Account.External_Id__c }
      - { from: first_name, to: FirstName }
      - { from: last_name, to: LastName }
      - { from: email, to: Email }
  opportunities-to-salesforce:
    model: opportunities
    destination: salesforce
    object: Opportunity
    mode: upsert
    externalIdField: External_Id__c
    mappings:
      - { from: id, to: External_Id__c }
      # The parent's Salesforce Id, as the accounts sync recorded it when it created the account.
      - { from: account_id, to: AccountId, lookup: { sync: accounts-to-salesforce } }
      - { from: name, to: Name }
      - { from: stage, to: StageName }
      - { from: amount, to: Amount }
      - { from: close_date, to: CloseDate }

sequences:
  salesforce-hierarchy:
    name: Salesforce hierarchy
    schedule: { type: cron, expression: "0 * * * *", timezone: UTC }
    members:
      - { sync: accounts-to-salesforce, terminate: on_fatal_or_rejected }
      - { sync: contacts-to-salesforce, terminate: never, after: [accounts-to-salesforce] }
      - { sync: opportunities-to-salesforce, terminate: never, after: [accounts-to-salesforce] }
`;

async function buildData(dir: string): Promise<void> {
  await duckdb(
    join(dir, 'warehouse.duckdb'),
    `create table accounts as
       select 'A-' || i as id, 'Account ' || i as name, case when i % 2 = 0 then 'Technology' else 'Retail' end as industry
       from range(1, 21) t(i);
     create table contacts as
       select 'C-' || i as id, 'A-' || (((i - 1) % 20) + 1) as account_id, 'Person' as first_name, 'Number ' || i as last_name,
              'person' || i || '@example.com' as email
       from range(1, 101) t(i);
     create table opportunities as
       select 'O-' || i as id, 'A-' || (((i - 1) % 20) + 1) as account_id, 'Deal ' || i as name,
              case when i % 3 = 0 then 'Closed Won' else 'Prospecting' end as stage, (i * 1000)::double as amount,
              (date '2027-01-01' + i::integer)::varchar as close_date
       from range(1, 41) t(i);`,
  );
  await writeFile(join(dir, 'lockstep.yaml'), WORKSPACE_YAML);
}

/**
 * Runs the demo in `dir`; answers the running stand-in, which the caller closes when it stops
 * serving (the workspace keeps pointing at it meanwhile).
 */
export async function runSalesforceDemo(options: { dir: string; term: Terminal }): Promise<SalesforceStandIn> {
  const { term } = options;
  const dir = resolve(options.dir);
  const say = (text = '') => term.out(text);
  await prepareFolder(dir);
  say('Lockstep Salesforce demo — a hierarchy into Salesforce, in order.');
  say(`Building a DuckDB warehouse (20 accounts, 100 contacts, 40 opportunities) in ${dir}`);
  await buildData(dir);
  const standIn = await startSalesforceStandIn();
  // The demo writes to its own stand-in, whatever the environment says about a real org.
  process.env.SALESFORCE_LOGIN_URL = standIn.url;
  process.env.SALESFORCE_CLIENT_ID = standIn.clientId;
  process.env.SALESFORCE_CLIENT_SECRET = standIn.clientSecret;
  say(`Started a local stand-in of Salesforce's REST API at ${standIn.url} (OAuth client credentials, sObject Collections, Bulk API 2.0).`);
  try {
    const loaded = await loadWorkspace(dir, process.env, createConnectorRegistry());
    if (!loaded.definition) throw new LockstepError(ErrorCode.Validation, formatValidationReport(loaded.diagnostics));
    const config = resolveConfig({ workspaceDir: dir, storeSetting: loaded.store, env: process.env });
    const app = await createApp(config, { logger: createJsonLogger({ level: 'error', write: (line) => term.err(line) }) });
    try {
      await app.store.applyWorkspace(loaded.definition, app.clock.now());
      await app.worker.start();
      say('Workspace applied: 3 syncs and the sequence salesforce-hierarchy (accounts, then contacts and opportunities).');
      say();
      say('1. Why order matters: send the contacts before their accounts exist in Salesforce.');
      say('   Salesforce refuses each one: the account it names by external id does not exist yet.');
      await runSync(app, 'contacts-to-salesforce', term);
      say();
      say('2. Run the sequence: accounts first; then contacts (retried) and opportunities, in parallel.');
      say('   Opportunities carry their account\'s Salesforce Id, which the accounts member recorded moments before.');
      const status = await runSequence(app, 'salesforce-hierarchy', term);
      if (status !== 'done') throw new LockstepError(ErrorCode.Internal, `the demo sequence ended ${status}, expected done`);
      const accounts = new Set(standIn.records('Account').map((account) => String(account.Id)));
      const linked = (object: string) => standIn.records(object).filter((record) => accounts.has(String(record.AccountId))).length;
      say();
      say(
        `In Salesforce now: ${accounts.size} accounts, ${standIn.records('Contact').length} contacts (${linked('Contact')} linked to their account), ` +
          `${standIn.records('Opportunity').length} opportunities (${linked('Opportunity')} linked to their account).`,
      );
      say();
      say("Explore what happened (`npm link` in Lockstep's folder puts the `lockstep` command on your PATH):");
      say(`  lockstep --workspace ${options.dir} runs`);
      say(`  the workspace file (and how to point it at a real org): ${join(options.dir, 'lockstep.yaml')}`);
    } finally {
      await app.close();
    }
  } catch (thrown) {
    await standIn.close();
    throw thrown;
  }
  return standIn;
}

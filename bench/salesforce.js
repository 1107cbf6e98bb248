/**
 * Salesforce benchmark (SPEC §8: "Salesforce within 1.05× the minimum number of API calls"): 50,000
 * accounts, then 100,000 contacts naming their account by `Account.External_Id__c`, synced from a
 * SQLite warehouse into the Salesforce stand-in, once through sObject Collections (the sync's
 * bulkThreshold raised above the run's size) and once through Bulk API 2.0 (the default threshold,
 * jobs of 50,000 rows).
 *
 * What is measured, per sync run: rows per second (the run's startedAt → finishedAt, as recorded),
 * the API calls the stand-in received (every /services/data call: describes, upserts, Bulk API job
 * calls; logins are not API calls), calls per 1,000 rows next to the minimum (Collections: one call
 * per 200 rows; Bulk API 2.0: five calls per job — create, upload, close, one poll, successful
 * results), and the largest number of records one call carried (at most 200 for Collections).
 * After each mode the org is checked: every account and contact is there, and every contact's
 * AccountId is its account's Salesforce Id.
 *
 * The stand-in runs in a child process (this file, forked with `--stand-in`), so that its work —
 * parsing JSON and CSV, the in-memory org, writing results — does not share Lockstep's event loop
 * and thread, as a real Salesforce would not. It is loaded from `dist/standins/`, which
 * `npm run build` compiles from `src/standins/` (the demo ships it), so no TypeScript loader is needed.
 * Lockstep runs in this process from `dist/`, as `lockstep serve` would: the workspace is written as
 * YAML, loaded and validated, applied to a SQLite store, and the syncs are run by the worker.
 *
 * Usage: node bench/run.js salesforce [--accounts 50000] [--contacts 100000] [--modes collections,bulk]
 * The last line printed is one JSON object with the figures.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const here = fileURLToPath(import.meta.url);
const DEFAULTS = { accounts: 50_000, contacts: 100_000, modes: 'collections,bulk' };
const MODES = ['collections', 'bulk'];
const COLLECTION_LIMIT = 200;
const BULK_JOB_SIZE = 50_000;
/** Calls a Bulk API 2.0 job needs at least: create, upload, close, one poll, successful results. */
const BULK_CALLS_PER_JOB = 5;

const log = (line) => process.stderr.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------
// The stand-in's side: a child process serving the org, answering the parent's questions over IPC.

if (process.argv[2] === '--stand-in' && process.send) {
  const { startSalesforceStandIn } = await import('../dist/standins/salesforce-standin.js');
  const standIn = await startSalesforceStandIn({ apiLimit: 1_000_000_000, bulkPolls: 1 });
  const answers = {
    stats: () => standIn.stats(),
    resetStats: () => standIn.resetStats(),
    /** Every account and contact present, every contact under its account (contact i → account (i-1) % accounts + 1). */
    verify: ({ accounts }) => {
      const accountIds = new Map(standIn.records('Account').map((a) => [a.External_Id__c, a.Id]));
      const contacts = standIn.records('Contact');
      let wrongParent = 0;
      for (const contact of contacts) {
        const n = Number(String(contact.External_Id__c).slice(2));
        if (contact.AccountId !== accountIds.get(`A-${((n - 1) % accounts) + 1}`)) wrongParent++;
      }
      return { accounts: accountIds.size, contacts: contacts.length, wrongParent };
    },
    close: async () => {
      await standIn.close();
      setImmediate(() => process.exit(0));
    },
  };
  process.on('message', async ({ id, ask, args }) => {
    try {
      process.send({ id, result: await answers[ask](args) });
    } catch (error) {
      process.send({ id, error: error instanceof Error ? error.message : String(error) });
    }
  });
  process.send({ ready: { url: standIn.url, clientId: standIn.clientId, clientSecret: standIn.clientSecret } });
}

/** Starts the stand-in in a child process; `ask(name, args)` calls one of its answers. */
async function startStandIn() {
  const child = fork(here, ['--stand-in'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map();
  let next = 0;
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the stand-in's process exited with ${code} before it was ready`)));
    child.on('message', (message) => {
      if (message.ready) return resolve(message.ready);
      const waiting = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) waiting?.reject(new Error(message.error));
      else waiting?.resolve(message.result);
    });
  });
  const info = await ready;
  child.removeAllListeners('exit');
  const ask = (name, args) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      child.send({ id, ask: name, args });
    });
  const close = async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await ask('close').catch(() => child.kill());
    await exited;
  };
  return { ...info, ask, close };
}

// ---------------------------------------------------------------------------------------------
// Lockstep's side

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]?.replace(/^--/, '');
    if (!args[i]?.startsWith('--') || !(name in options)) throw new Error(`unknown argument "${args[i]}" — use --accounts N, --contacts N, --modes collections,bulk`);
    const raw = args[++i] ?? '';
    if (name === 'modes') {
      const modes = raw.split(',');
      if (modes.length === 0 || modes.some((m) => !MODES.includes(m))) throw new Error(`--modes takes ${MODES.join(' and/or ')}, comma-separated (got "${raw}")`);
      options.modes = raw;
    } else {
      const value = Number(raw);
      if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a positive whole number (got "${raw}")`);
      options[name] = value;
    }
  }
  return { ...options, modes: options.modes.split(',') };
}

function createWarehouse(path, accounts, contacts) {
  const db = new Database(path);
  db.exec(`create table accounts (id text primary key, name text not null, industry text, city text);
           create table contacts (id text primary key, account_id text, first_name text, last_name text, email text);`);
  const industries = ['Technology', 'Retail', 'Energy', 'Finance'];
  db.transaction(() => {
    const account = db.prepare('insert into accounts values (?, ?, ?, ?)');
    for (let a = 1; a <= accounts; a++) account.run(`A-${a}`, `Account ${a}`, industries[a % 4], `City ${a % 97}`);
    const contact = db.prepare('insert into contacts values (?, ?, ?, ?, ?)');
    for (let c = 1; c <= contacts; c++) contact.run(`C-${c}`, `A-${((c - 1) % accounts) + 1}`, `First ${c}`, `Last ${c}`, `person${c}@example.com`);
  })();
  db.close();
}

function workspaceYaml(warehouse, bulkThreshold) {
  return `sources:
  warehouse: { type: sqlite, path: ${JSON.stringify(warehouse)} }
destinations:
  sf: { type: salesforce, loginUrl: "\${SF_LOGIN_URL}", clientId: "\${SF_CLIENT_ID}", clientSecret: "\${SF_CLIENT_SECRET}" }
models:
  accounts: { source: warehouse, primaryKey: id, query: "select id, name, industry, city from accounts" }
  contacts: { source: warehouse, primaryKey: id, query: "select id, account_id, first_name, last_name, email from contacts" }
syncs:
  accounts-to-sf:
    model: accounts
    destination: sf
    object: Account
    mode: upsert
    externalIdField: External_Id__c
    bulkThreshold: ${bulkThreshold}
    bulkJobSize: ${BULK_JOB_SIZE}
    mappings:
      - { from: id, to: External_Id__c }
      - { from: name, to: Name }
      - { from: industry, to: Industry }
      - { from: city, to: BillingCity }
  contacts-to-sf:
    model: contacts
    destination: sf
    object: Contact
    mode: upsert
    externalIdField: External_Id__c
    bulkThreshold: ${bulkThreshold}
    bulkJobSize: ${BULK_JOB_SIZE}
    mappings:
      - { from: id, to: External_Id__c }
      - { from: account_id, to: Account.External_Id__c }
      - { from: first_name, to: FirstName }
      - { from: last_name, to: LastName }
      - { from: email, to: Email }
`;
}

/** Runs both syncs in one mode against a fresh org; the figures of each run. */
async function runMode(mode, options, warehouse) {
  const [{ createApp, createConnectorRegistry }, { resolveConfig }, { silentLogger }, { loadWorkspace, formatValidationReport }, { salesforceConnector }] = await Promise.all([
    import('../dist/app.js'),
    import('../dist/config.js'),
    import('../dist/core/logger.js'),
    import('../dist/workspace/index.js'),
    import('../dist/connectors/salesforce/index.js'),
  ]);
  const work = mkdtempSync(join(tmpdir(), `lockstep-bench-sf-${mode}-`));
  const standIn = await startStandIn();
  try {
    // Collections: a threshold above the run's size; Bulk API 2.0: the default (10,000), or less for smaller runs.
    const bulkThreshold = mode === 'collections' ? 1_000_000 : Math.min(10_000, Math.min(options.accounts, options.contacts) - 1);
    writeFileSync(join(work, 'lockstep.yaml'), workspaceYaml(warehouse, bulkThreshold));
    const env = { ...process.env, SF_LOGIN_URL: standIn.url, SF_CLIENT_ID: standIn.clientId, SF_CLIENT_SECRET: standIn.clientSecret };
    const registry = createConnectorRegistry({ logger: silentLogger });
    // app.ts may register the kind already; the benchmark needs it either way.
    if (!registry.kind('salesforce')) registry.register(salesforceConnector);
    const loaded = await loadWorkspace(work, env, registry);
    if (!loaded.definition) throw new Error(`the benchmark's workspace is not valid:\n${formatValidationReport(loaded.diagnostics)}`);
    const app = await createApp(resolveConfig({ workspaceDir: work, env }), { logger: silentLogger, connectors: () => registry });
    const results = [];
    try {
      await app.store.applyWorkspace(loaded.definition, app.clock.now());
      await app.worker.start();
      for (const [slug, rows] of [
        ['accounts-to-sf', options.accounts],
        ['contacts-to-sf', options.contacts],
      ]) {
        await standIn.ask('resetStats');
        const { run: queued } = await app.runs.triggerSync(slug);
        const run = await app.runs.waitForSyncRun(queued.id);
        const stats = await standIn.ask('stats');
        if (run.status !== 'success') throw new Error(`${mode}: ${slug} ended ${run.status}: ${run.error ?? `${run.failedRows.addedCount} rows rejected`}`);
        if (run.successfulRows.addedCount !== rows) throw new Error(`${mode}: ${slug} delivered ${run.successfulRows.addedCount} of ${rows} rows`);
        const seconds = (run.finishedAt - run.startedAt) / 1000;
        const jobs = stats.requests.bulkCreate;
        const minimum = mode === 'collections' ? Math.ceil(rows / COLLECTION_LIMIT) : Math.ceil(rows / BULK_JOB_SIZE) * BULK_CALLS_PER_JOB;
        const largest = mode === 'collections' ? (stats.maxRecordsPerCallByKind.upsert ?? 0) : (stats.maxRecordsPerCallByKind.bulkUpload ?? 0);
        const figures = {
          mode,
          sync: slug,
          rows,
          seconds: Math.round(seconds * 1000) / 1000,
          rowsPerSecond: Math.round(rows / seconds),
          calls: stats.dataRequests,
          callsByKind: Object.fromEntries(Object.entries(stats.requests).filter(([kind, n]) => n > 0 && kind !== 'token')),
          callsPer1000: Math.round((stats.dataRequests / rows) * 1000 * 1000) / 1000,
          minimumCalls: minimum,
          minimumPer1000: Math.round((minimum / rows) * 1000 * 1000) / 1000,
          ratioToMinimum: Math.round((stats.dataRequests / minimum) * 1000) / 1000,
          largestRecordsPerCall: largest,
          bulkJobs: jobs,
          runApiUsage: run.apiUsage,
        };
        if (mode === 'collections' && largest > COLLECTION_LIMIT) throw new Error(`${slug}: a Collections call carried ${largest} records, more than ${COLLECTION_LIMIT}`);
        log(
          `${mode.padEnd(11)} ${slug.padEnd(15)} ${String(rows).padStart(7)} rows in ${figures.seconds.toFixed(2).padStart(6)} s = ${String(figures.rowsPerSecond).padStart(6)} rows/s; ` +
            `${figures.calls} API calls (${figures.callsPer1000}/1,000 rows; minimum ${minimum} = ${figures.minimumPer1000}/1,000; ×${figures.ratioToMinimum}); ` +
            `largest call ${largest} ${mode === 'collections' ? 'records' : 'rows (one upload)'}${jobs ? `; ${jobs} bulk jobs` : ''}`,
        );
        results.push(figures);
      }
    } finally {
      await app.close();
    }
    const check = await standIn.ask('verify', { accounts: options.accounts });
    if (check.accounts !== options.accounts || check.contacts !== options.contacts || check.wrongParent !== 0) {
      throw new Error(`${mode}: the org does not hold what was synced: ${JSON.stringify(check)}`);
    }
    log(`${mode.padEnd(11)} org checked: ${check.accounts} accounts, ${check.contacts} contacts, each under its account`);
    return results;
  } finally {
    await standIn.close();
    rmSync(work, { recursive: true, force: true });
  }
}

export async function main(args) {
  const options = parseArgs(args);
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-sf-'));
  try {
    const warehouse = join(work, 'warehouse.db');
    createWarehouse(warehouse, options.accounts, options.contacts);
    log(`salesforce benchmark: ${options.accounts} accounts, ${options.contacts} contacts (Account.External_Id__c), modes ${options.modes.join(', ')}`);
    const runs = [];
    for (const mode of options.modes) runs.push(...(await runMode(mode, options, warehouse)));
    const collections = runs.filter((r) => r.mode === 'collections');
    const worstRatio = collections.length > 0 ? Math.max(...collections.map((r) => r.ratioToMinimum)) : null;
    if (worstRatio !== null) log(`Collections: at most ×${worstRatio} the minimum number of API calls (target ≤ ×1.05): ${worstRatio <= 1.05 ? 'met' : 'NOT met'}`);
    process.stdout.write(`${JSON.stringify({ accounts: options.accounts, contacts: options.contacts, collectionsWorstRatio: worstRatio, runs })}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

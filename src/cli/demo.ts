/**
 * `lockstep demo`: builds a DuckDB warehouse with accounts → workspaces → contacts and a SQLite CRM
 * whose tables have foreign keys between them, then shows, with real runs on the embedded store:
 * why order matters, a sequence running in order to `done`, and a terminate policy stopping a run.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import Database from 'better-sqlite3';
import { createApp, createConnectorRegistry, type App } from '../app.js';
import { resolveConfig } from '../config.js';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { createJsonLogger } from '../core/logger.js';
import { syncRunView } from '../core/run-views.js';
import { sequenceRunDetails } from '../engine/run-details.js';
import { formatValidationReport, loadWorkspace } from '../workspace/index.js';
import { formatSequenceReport, formatSyncReport, type Terminal } from './output.js';
import { StatusLine, followSequenceRun, followSyncRun, printRejectedSamples } from './progress.js';

const MARKER = '.lockstep-demo';

const WORKSPACE_YAML = `# The Lockstep demo workspace: a DuckDB warehouse, a SQLite CRM, three syncs and one sequence.
sources:
  warehouse: { type: duckdb, path: warehouse.duckdb }

destinations:
  crm: { type: sqlite, path: crm.db }

models:
  accounts:   { source: warehouse, primaryKey: id, query: "select id, name, plan from accounts" }
  workspaces: { source: warehouse, primaryKey: id, query: "select id, account_id, name from workspaces" }
  contacts:   { source: warehouse, primaryKey: id, query: "select id, workspace_id, email, full_name from contacts" }

syncs:
  accounts-to-crm:   { model: accounts, destination: crm, object: accounts, mode: upsert }
  workspaces-to-crm: { model: workspaces, destination: crm, object: workspaces, mode: upsert }
  contacts-to-crm:
    model: contacts
    destination: crm
    object: contacts
    mode: upsert
    mappings:
      - { from: email, to: email_address }

sequences:
  crm-hierarchy:
    name: CRM hierarchy
    schedule: { type: cron, expression: "0 * * * *", timezone: Europe/Berlin }
    members:
      # Accounts are the root of everything: stop if even one is rejected.
      - { sync: accounts-to-crm, terminate: on_fatal_or_rejected, rejectedThreshold: { count: 0 } }
      - { sync: workspaces-to-crm, terminate: on_fatal }
      # Contacts go last; a contact that fails does not fail the sequence.
      - { sync: contacts-to-crm, terminate: never }
`;

const CRM_SCHEMA = `
create table accounts (id integer primary key, name text not null, plan text);
create table workspaces (id integer primary key, account_id integer not null references accounts(id), name text not null);
create table contacts (id integer primary key, workspace_id integer not null references workspaces(id),
                       email_address text not null unique, full_name text);
`;

export async function duckdb(path: string, sql: string): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    await connection.run(sql);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Empties `dir` for a demo (only a folder a demo made, or an empty one). */
export async function prepareFolder(dir: string): Promise<void> {
  if (existsSync(dir)) {
    if (!existsSync(join(dir, MARKER)) && readdirSync(dir).length > 0) {
      throw new LockstepError(
        ErrorCode.Validation,
        `${dir} exists and is not a Lockstep demo folder — pass another one with \`lockstep demo --dir <dir>\``,
      );
    }
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MARKER), 'This folder was made by `lockstep demo`; running the demo again replaces it.\n');
}

async function buildData(dir: string): Promise<void> {
  await duckdb(
    join(dir, 'warehouse.duckdb'),
    `create table accounts as
       select i as id, 'Account ' || i as name, case when i % 3 = 0 then 'enterprise' else 'team' end as plan
       from range(1, 21) t(i);
     create table workspaces as
       select i as id, ((i - 1) % 20) + 1 as account_id, 'Workspace ' || i as name from range(1, 51) t(i);
     create table contacts as
       select i as id, ((i - 1) % 50) + 1 as workspace_id, 'person' || i || '@example.com' as email,
              'Person ' || i as full_name
       from range(1, 201) t(i);`,
  );
  const crm = new Database(join(dir, 'crm.db'));
  try {
    crm.exec(CRM_SCHEMA);
  } finally {
    crm.close();
  }
  await writeFile(join(dir, 'lockstep.yaml'), WORKSPACE_YAML);
}

export async function runDemo(options: { dir: string; term: Terminal }): Promise<void> {
  const { term } = options;
  const dir = resolve(options.dir);
  const say = (text = '') => term.out(text);
  // Refuse a folder that is not ours before saying anything about building in it.
  await prepareFolder(dir);
  say('Lockstep demo — sync sequences on the embedded store, nothing else to install.');
  say(`Building a DuckDB warehouse (20 accounts, 50 workspaces, 200 contacts) and a SQLite CRM with foreign keys in ${dir}`);
  await buildData(dir);

  const loaded = await loadWorkspace(dir, process.env, createConnectorRegistry());
  if (!loaded.definition) throw new LockstepError(ErrorCode.Validation, formatValidationReport(loaded.diagnostics));
  const config = resolveConfig({ workspaceDir: dir, storeSetting: loaded.store, env: process.env });
  const app = await createApp(config, {
    logger: createJsonLogger({ level: 'error', write: (line) => term.err(line) }),
  });
  try {
    await app.store.applyWorkspace(loaded.definition, app.clock.now());
    await app.worker.start();
    say('Workspace applied: 3 syncs and the sequence crm-hierarchy (accounts → workspaces → contacts).');

    say();
    say('1. Why order matters: run the contacts sync on its own, before its parents exist in the CRM.');
    await runSync(app, 'contacts-to-crm', term);

    say();
    say('2. Now run the sequence: accounts, then workspaces, then contacts, each after the previous one ended.');
    say('   The contacts rejected a moment ago are retried and delivered.');
    const done = await runSequence(app, 'crm-hierarchy', term);
    if (done !== 'done') throw new LockstepError(ErrorCode.Internal, `the demo sequence ended ${done}, expected done`);

    say();
    say('3. A terminate policy at work: the warehouse gains an account without a name (the CRM requires one),');
    say('   plus a workspace and contacts under it. The accounts member terminates on any rejected row,');
    say('   so the sequence stops there and the members after it are skipped.');
    await app.worker.stop();
    await duckdb(
      join(dir, 'warehouse.duckdb'),
      `insert into accounts values (21, null, 'team');
       insert into workspaces values (51, 21, 'Workspace 51');
       insert into contacts values (201, 51, 'person201@example.com', 'Person 201');`,
    );
    await app.worker.start();
    const failed = await runSequence(app, 'crm-hierarchy', term);
    if (failed !== 'failed') throw new LockstepError(ErrorCode.Internal, `the demo sequence ended ${failed}, expected failed`);

    say();
    say("Explore what happened (`npm link` in Lockstep's folder puts the `lockstep` command on your PATH):");
    say(`  lockstep --workspace ${options.dir} runs`);
    say(`  lockstep --workspace ${options.dir} sequence run crm-hierarchy`);
    say(`  the workspace file: ${join(options.dir, 'lockstep.yaml')}`);
  } finally {
    await app.close();
  }
}

export async function runSync(app: App, slug: string, term: Terminal): Promise<void> {
  const { run } = await app.runs.triggerSync(slug, {}, { type: 'manual', detail: 'demo' });
  const stop = followSyncRun(app, run.id, slug, new StatusLine(term));
  const final = await app.runs.waitForSyncRun(run.id);
  await stop();
  const rejected = await app.store.listRejectedRows(final.id, 3, 0);
  const total = final.failedRows.addedCount + final.failedRows.changedCount + final.failedRows.removedCount;
  term.out(formatSyncReport(slug, syncRunView(final, app.clock.now()), rejected, total));
}

export async function runSequence(app: App, slug: string, term: Terminal): Promise<string> {
  const { run } = await app.runs.triggerSequence(slug, { type: 'manual', detail: 'demo' });
  const stop = followSequenceRun(app, run.id, new StatusLine(term));
  const final = await app.runs.waitForSequenceRun(run.id);
  await stop();
  const view = await sequenceRunDetails(app.store, final, app.clock.now());
  term.out(formatSequenceReport(view));
  await printRejectedSamples(app, view, term);
  return final.status;
}

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createApp, type App } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import type { Clock, Connectors, Logger } from '../../src/core/ports.js';
import type { WorkspaceDefinition } from '../../src/core/workspace.js';

export function tempDir(prefix = 'lockstep-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Runs SQL against a SQLite file (creating it), with foreign keys on. */
export function sqlite(path: string, sql: string): void {
  const db = new Database(path);
  try {
    db.pragma('foreign_keys = ON');
    db.exec(sql);
  } finally {
    db.close();
  }
}

export function sqliteRows<T = Record<string, unknown>>(path: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

export interface Harness extends AsyncDisposable {
  dir: string;
  app: App;
}

/** An app on a fresh SQLite store in `dir`, with `definition` applied and the worker started. */
export async function startHarness(options: {
  dir: string;
  definition: WorkspaceDefinition;
  connectors?: (real: Connectors) => Connectors;
  clock?: Clock;
  logger?: Logger;
  env?: Record<string, string>;
  startWorker?: boolean;
}): Promise<Harness> {
  const config = resolveConfig({ workspaceDir: options.dir, env: { LOCKSTEP_POLL_MS: '50', ...options.env } });
  const app = await createApp(config, {
    clock: options.clock,
    logger: options.logger ?? silentLogger,
    connectors: options.connectors,
  });
  await app.store.applyWorkspace(options.definition, app.clock.now());
  if (options.startWorker !== false) await app.worker.start();
  return {
    dir: options.dir,
    app,
    async [Symbol.asyncDispose]() {
      await app.close();
    },
  };
}

/**
 * The hierarchical example: a SQLite warehouse with accounts → workspaces → contacts, and a SQLite
 * CRM whose tables have foreign keys between them.
 */
export function createHierarchyFixture(dir: string, sizes = { accounts: 3, workspaces: 6, contacts: 12 }): void {
  const rows: string[] = [];
  for (let a = 1; a <= sizes.accounts; a++) rows.push(`insert into accounts values (${a}, 'Account ${a}');`);
  for (let w = 1; w <= sizes.workspaces; w++) rows.push(`insert into workspaces values (${w}, ${((w - 1) % sizes.accounts) + 1}, 'Workspace ${w}');`);
  for (let c = 1; c <= sizes.contacts; c++) {
    rows.push(`insert into contacts values (${c}, ${((c - 1) % sizes.workspaces) + 1}, 'person${c}@example.com');`);
  }
  sqlite(
    join(dir, 'warehouse.db'),
    `create table accounts (id integer primary key, name text);
     create table workspaces (id integer primary key, account_id integer, name text);
     create table contacts (id integer primary key, workspace_id integer, email text);
     begin; ${rows.join('\n')} commit;`,
  );
  sqlite(
    join(dir, 'crm.db'),
    `create table accounts (id integer primary key, name text not null);
     create table workspaces (id integer primary key, account_id integer not null references accounts(id), name text);
     create table contacts (id integer primary key, workspace_id integer not null references workspaces(id), email_address text unique);`,
  );
}

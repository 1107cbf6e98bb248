/**
 * A sync run that fails because its PostgreSQL store refused a statement (here: a table held past the
 * store's statement timeout): the run's error, which every API token reads, says so in a summary; the
 * store's own error, naming its host, database and user, goes to the server log only.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import type { Logger } from '../../src/core/ports.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { hierarchyWorkspace as hierarchyDefinition, sync } from '../helpers/definitions.js';
import { createHierarchyFixture, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

describe('a sync run whose store refused a statement', () => {
  it("records a summary as the run's error, and the store's error in the server log", async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const url = await createTestDatabase('lockstep_run_store_error');
    const store = await PostgresStore.open({ url, statementTimeoutMs: 500 });
    const logged: string[] = [];
    const log = (message: string, fields?: Record<string, unknown>) => void logged.push(`${message} ${JSON.stringify(fields ?? {})}`);
    const logger: Logger = { debug: () => {}, info: () => {}, warn: log, error: log };
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_STORE: url, LOCKSTEP_POLL_MS: '100' } });
    const app = await createApp(config, { store, logger });
    const locker = new pg.Client({ connectionString: url });
    try {
      await app.store.applyWorkspace(hierarchyDefinition(['accounts'], { syncs: [sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts' })] }), app.clock.now());
      // Maintenance on the store holds the table of snapshots past the store's statement timeout.
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE lockstep.snapshots IN ACCESS EXCLUSIVE MODE');
      await app.worker.start();
      const { run } = await app.runs.triggerSync('accounts-to-crm');
      const ended = await app.runs.waitForSyncRun(run.id);
      expect(ended.status).toBe('failed');
      // The cause and its fix stay; where the store is does not.
      expect(ended.error).toMatch(/^the store: canceling statement due to statement timeout .*look for a session holding locks/);
      expect(ended.error).toMatch(new RegExp(`— the server log names the store, under sync run ${run.id}$`));
      const { host, port, pathname, username } = new URL(url);
      for (const secretish of [`${host}:${port}`, pathname.slice(1), `as ${username}`]) expect(ended.error).not.toContain(secretish);
      expect(logged.join('\n')).toMatch(new RegExp(`sync run failed .*"syncRunId":${run.id}.*statement timeout`));
    } finally {
      await locker.end();
      await app.close();
    }
  }, 60_000);
});

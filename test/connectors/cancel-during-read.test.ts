/**
 * Cancelling a run whose model query has not returned a row yet (a slow query, a lock wait) ends the
 * run `cancelled` at once, and the query stops on the source server too: closing the connection
 * alone leaves a statement that sends nothing running there until it ends or times out.
 */
import { describe, expect, it } from 'vitest';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('cancel during a source read', () => {
  it('PostgreSQL: a query that has sent nothing yet is cancelled on the server', async () => {
    const url = await createTestDatabase('cancel_read');
    const dir = tempDir();
    createHierarchyFixture(dir);
    const definition = workspace({
      sources: [source('warehouse', { type: 'postgres', url })],
      destinations: [source('crm', { path: 'crm.db' })],
      models: [model('slow', 'warehouse', 'select 1 as id, pg_sleep(60)::text as name')],
      syncs: [sync('slow-out', { model: 'slow', destination: 'crm', object: 'accounts' })],
    });
    const sleeping = async () =>
      (
        await sql<{ n: number }>(
          url,
          "select count(*)::int as n from pg_stat_activity where datname = current_database() and query like '%pg_sleep(60)%' and pid <> pg_backend_pid()",
        )
      )[0]!.n > 0;
    // The cancel request goes without the driver's deprecation warning (its Client#cancel prints one).
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning.message);
    process.on('warning', onWarning);
    try {
      await using h = await startHarness({ dir, definition });
      const { run } = await h.app.runs.triggerSync('slow-out');
      await waitFor('the query did not start', sleeping, 20_000);
      await h.app.runs.cancelSyncRun(run.id);
      expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('cancelled');
      await waitFor('the query still runs on the server', async () => !(await sleeping()), 3_000);
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('MySQL: a query that has sent nothing yet is stopped on the server', async () => {
    const url = await createTestMysqlDatabase('cancel_read');
    const dir = tempDir();
    createHierarchyFixture(dir);
    const definition = workspace({
      sources: [source('warehouse', { type: 'mysql', url })],
      destinations: [source('crm', { path: 'crm.db' })],
      models: [model('slow', 'warehouse', 'select 1 as id, sleep(60) as name')],
      syncs: [sync('slow-out', { model: 'slow', destination: 'crm', object: 'accounts' })],
    });
    const sleeping = async () =>
      (
        await mysqlSql<{ n: string }>(
          url,
          "select count(*) as n from information_schema.processlist where db = database() and info like '%sleep(60)%' and id <> connection_id()",
        )
      )[0]!.n !== '0';
    // The cancel request goes without the driver's deprecation warning (its Client#cancel prints one).
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning.message);
    process.on('warning', onWarning);
    try {
      await using h = await startHarness({ dir, definition });
      const { run } = await h.app.runs.triggerSync('slow-out');
      await waitFor('the query did not start', sleeping, 20_000);
      await h.app.runs.cancelSyncRun(run.id);
      expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('cancelled');
      await waitFor('the query still runs on the server', async () => !(await sleeping()), 3_000);
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

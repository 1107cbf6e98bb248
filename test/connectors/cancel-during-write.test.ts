/**
 * Cancelling a run blocked in a destination write ends it `cancelled` at once, long before any write
 * timeout: the write's connection is closed (an HTTP API that took the request and never answers; a
 * PostgreSQL or MySQL table another session holds locked), and nothing of the interrupted batch is
 * committed. A Salesforce Bulk API job being polled stops being waited for as well.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { SyncRun } from '../../src/core/runs.js';
import type { ConnectionDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

/** Runs `accounts` (3 rows) from a SQLite warehouse into `destination`, waits for `blocked()`, cancels, and answers how the run ended. */
async function cancelWhenBlocked(destination: ConnectionDef, blocked: () => Promise<boolean>, settings: Record<string, unknown> = {}): Promise<{ run: SyncRun; ms: number }> {
  const dir = tempDir();
  createHierarchyFixture(dir);
  const definition = workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [destination],
    models: [model('accounts', 'warehouse', 'select id, name from accounts')],
    syncs: [sync('accounts-out', { model: 'accounts', destination: destination.slug, object: 'accounts', settings })],
  });
  await using h = await startHarness({ dir, definition });
  const { run } = await h.app.runs.triggerSync('accounts-out');
  const deadline = Date.now() + 20_000;
  while (!(await blocked())) {
    const now = await h.app.store.getSyncRun(run.id);
    if (now && ['failed', 'success', 'warning'].includes(now.status)) throw new Error(`the run ended ${now.status} before it blocked: ${now.error}`);
    if (Date.now() > deadline) throw new Error('the run never blocked in its write');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const started = Date.now();
  await h.app.runs.cancelSyncRun(run.id);
  const ended = await h.app.runs.waitForSyncRun(run.id);
  return { run: ended, ms: Date.now() - started };
}

describe('cancel during a destination write', () => {
  it('HTTP: an API that took the request and never answers — the request is aborted and its connection closed', async () => {
    const sockets = new Set<Socket>();
    let closed = 0;
    const server = http.createServer((request) => {
      sockets.add(request.socket);
      request.socket.once('close', () => closed++);
      request.resume(); // read the body, never answer
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const { run, ms } = await cancelWhenBlocked(
        { slug: 'api', type: 'http', settings: { url: `http://127.0.0.1:${port}`, timeoutMs: 600_000 } },
        async () => sockets.size > 0,
      );
      expect(run.status).toBe('cancelled');
      expect(ms).toBeLessThan(10_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(closed).toBe(sockets.size);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('PostgreSQL: a table another session holds locked — the connection is closed and the batch never commits', async () => {
    const url = await createTestDatabase('cancel_write');
    await sql(url, 'create table accounts (id integer primary key, name text)');
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      // Reads pass (the writer's checks), writes wait.
      await holder.query('begin; lock table accounts in exclusive mode');
      const database = new URL(url).pathname.slice(1);
      const { run, ms } = await cancelWhenBlocked(
        { slug: 'crm', type: 'postgres', settings: { url, writeTimeoutMinutes: 60 } },
        async () =>
          (await sql<{ n: number }>(url, `select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'`, [database]))[0]!.n > 0,
      );
      expect(run.status).toBe('cancelled');
      expect(ms).toBeLessThan(10_000);
      await holder.query('commit');
      // The server runs what it had received, then finds the connection gone and rolls back.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await sql(url, 'select count(*)::int as n from accounts')).toEqual([{ n: 0 }]);
    } finally {
      await holder.end();
    }
  });

  it('MySQL: a table another session holds locked — the connection is closed and the batch never commits', async () => {
    const url = await createTestMysqlDatabase('cancel_write');
    await mysqlSql(url, 'create table accounts (id int primary key, name varchar(100))');
    const holder = await mysql.createConnection(url);
    try {
      await holder.query('lock tables accounts read');
      const database = new URL(url).pathname.slice(1);
      const { run, ms } = await cancelWhenBlocked(
        { slug: 'crm', type: 'mysql', settings: { url, writeTimeoutMinutes: 60 } },
        async () =>
          (
            await mysqlSql<{ n: number }>(url, `select count(*) as n from information_schema.processlist where db = ? and state like 'Waiting for table%'`, [database])
          )[0]!.n > 0,
      );
      expect(run.status).toBe('cancelled');
      expect(ms).toBeLessThan(10_000);
      await holder.query('unlock tables');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await mysqlSql(url, 'select count(*) as n from accounts')).toEqual([{ n: '0' }]);
    } finally {
      await holder.end();
    }
  });
});

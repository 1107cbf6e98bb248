/**
 * The run history's Status filter pages by the status shown (SPEC §2.3): a run whose process stopped
 * (recorded active, its lease ended, not taken over) is `interrupted`, and a page of runs filtered
 * by status counts exactly the runs it shows, in the API and in `lockstep runs --status`, on the
 * embedded store and on PostgreSQL.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp, type App } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { loadWorkspace } from '../../src/workspace/load-workspace.js';
import { runMain } from '../cli/cli-helpers.js';
import { sqlite, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

const apps: App[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  vi.unstubAllEnvs();
});

const STORES: Array<[string, () => Promise<Record<string, string>>]> = [
  ['the embedded store', async () => ({})],
  ['a PostgreSQL store', async () => ({ LOCKSTEP_STORE: await createTestDatabase('lockstep_run_status_filter') })],
];

describe('GET /api/syncs/{slug}/runs?status=', () => {
  for (const [label, storeEnv] of STORES) {
    it(`pages over the runs the filter keeps, an interrupted run among them, on ${label}`, async () => {
      const dir = tempDir('lockstep-status-filter-');
      sqlite(join(dir, 'warehouse.db'), 'create table contacts (id integer primary key, email text);');
      writeFileSync(
        join(dir, 'lockstep.yaml'),
        `sources:
  warehouse: { type: sqlite, path: warehouse.db }
destinations:
  api: { type: http, url: "http://127.0.0.1:9" }
models:
  contacts: { source: warehouse, primaryKey: id, query: "select id, email from contacts" }
syncs:
  contacts: { model: contacts, destination: api, object: /contacts, mode: upsert }
`,
      );
      const env = await storeEnv();
      const app = await createApp(resolveConfig({ workspaceDir: dir, env: { ...process.env, ...env } }), { logger: silentLogger });
      apps.push(app);
      const { definition, diagnostics } = await loadWorkspace(dir, { ...process.env, ...env }, app.registry);
      expect(diagnostics).toEqual([]);
      await app.store.applyWorkspace(definition!, app.clock.now());
      const sync = await app.store.getSync('contacts');
      expect(sync).not.toBeNull();
      const worker = { workerId: 'host/1/a', leaseMs: 1_000 };
      const start = app.clock.now() - 60_000;
      const ended: number[] = [];
      for (let i = 0; i < 3; i++) {
        const { run } = await app.store.enqueueSyncRun({ syncId: sync!.id, trigger: { type: 'manual', detail: 'cli' }, options: { fullResync: false, resetCDC: false } }, start + i * 100);
        await app.store.claimSyncRun(run.id, start + i * 100 + 1, worker);
        ended.push((await app.store.updateSyncRun(run.id, { status: 'success' }, start + i * 100 + 2)).id);
      }
      // The newest run's process stopped while it delivered: its lease ended long ago, and no worker took it over.
      const { run: stopped } = await app.store.enqueueSyncRun({ syncId: sync!.id, trigger: { type: 'manual', detail: 'cli' }, options: { fullResync: false, resetCDC: false } }, start + 1_000);
      await app.store.claimSyncRun(stopped.id, start + 1_001, worker);
      await app.store.updateSyncRun(stopped.id, { status: 'processing' }, start + 1_002, 1);

      const { url } = await app.startServer({ port: 0, host: '127.0.0.1', authRequired: false, uiDir: null });
      const page = async (query: string) => {
        const body = (await (await fetch(`${url}/api/syncs/contacts/runs?${query}`)).json()) as { hasMore: boolean; data: Array<{ id: number; status: string }> };
        return { hasMore: body.hasMore, ids: body.data.map((r) => r.id), statuses: body.data.map((r) => r.status) };
      };
      const [r1, r2, r3] = ended;
      // Asked for running and finished runs: the stopped run is shown interrupted, so it is not one of them.
      expect(await page('status=processing,success&limit=2')).toEqual({ hasMore: true, ids: [r3, r2], statuses: ['success', 'success'] });
      expect(await page('status=processing,success&limit=2&offset=2')).toEqual({ hasMore: false, ids: [r1], statuses: ['success'] });
      expect(await page('status=interrupted,success&limit=2')).toEqual({ hasMore: true, ids: [stopped.id, r3], statuses: ['interrupted', 'success'] });
      expect(await page('status=interrupted,success&limit=2&offset=2')).toEqual({ hasMore: false, ids: [r2, r1], statuses: ['success', 'success'] });
      expect(await page('status=interrupted&limit=1')).toEqual({ hasMore: false, ids: [stopped.id], statuses: ['interrupted'] });
      expect(await page('status=querying,processing,reporting')).toEqual({ hasMore: false, ids: [], statuses: [] });

      // `lockstep runs --status` filters the same way.
      if (env.LOCKSTEP_STORE) vi.stubEnv('LOCKSTEP_STORE', env.LOCKSTEP_STORE);
      const cli = async (status: string, limit = '2') => {
        const result = await runMain(['--workspace', dir, 'runs', '--status', status, '--limit', limit, '--json']);
        expect(result.code, result.stderr).toBe(0);
        return (JSON.parse(result.stdout) as { syncRuns: Array<{ id: number; status: string }> }).syncRuns.map((r) => [r.id, r.status]);
      };
      expect(await cli('processing,success')).toEqual([[r3, 'success'], [r2, 'success']]);
      expect(await cli('interrupted', '5')).toEqual([[stopped.id, 'interrupted']]);
      expect(await cli('querying,processing')).toEqual([]);
      const text = await runMain(['--workspace', dir, 'runs', '--status', 'interrupted']);
      expect(text.stdout).toMatch(new RegExp(`#${stopped.id}  contacts  interrupted `));
      expect(text.stdout).not.toMatch(/Sequence runs/);
      const bad = await runMain(['--workspace', dir, 'runs', '--status', 'stopped']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--status "stopped" has "stopped", not a sync run state — give states from queued, querying');
    });
  }
});

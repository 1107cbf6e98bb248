/**
 * A firing — a schedule's due time, an upstream run's end, a webhook delivery — and the run it
 * queues are written together: a process killed as it queues the run (before the store has it, or
 * after, its answer lost) loses nothing and doubles nothing once another process tries it again.
 * On the SQLite file and on PostgreSQL.
 */
import { describe, expect, it } from 'vitest';
import { createApp, openStore, type App } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import type { Clock } from '../../src/core/ports.js';
import type { SyncRun } from '../../src/core/runs.js';
import type { Schedule, WorkspaceDefinition } from '../../src/core/workspace.js';
import { hmacHex, WebhookReceiver } from '../../src/engine/webhook-receiver.js';
import { hierarchyWorkspace, sync } from '../helpers/definitions.js';
import { FakeClock, flush } from '../helpers/fake-clock.js';
import { queuesSyncRun, withStoreCrash, type StoreCrash } from '../helpers/fault-store.js';
import { createHierarchyFixture, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

const STORES = [
  { name: 'SQLite file', env: async (): Promise<Record<string, string>> => ({}) },
  { name: 'PostgreSQL', env: async (): Promise<Record<string, string>> => ({ LOCKSTEP_STORE: await createTestDatabase('lockstep_fired') }) },
];

const WHEN = ['before', 'after'] as const;
const FIVETRAN_SECRET = 'fivetran-secret';

function definition(schedules: { accounts?: Schedule; workspaces?: Schedule }): WorkspaceDefinition {
  return hierarchyWorkspace(['accounts', 'workspaces'], {
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', ...(schedules.accounts ? { schedule: schedules.accounts } : {}) }),
      sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces', ...(schedules.workspaces ? { schedule: schedules.workspaces } : {}) }),
    ],
  });
}

interface Process {
  app: App;
  crash: StoreCrash | null;
}

/**
 * An app on the store the environment names; with `crashAt`, its process is killed at the first
 * store call that queues a run of sync `crashAt.sync` (`when`: before or after the store has it).
 */
async function start(
  dir: string,
  env: Record<string, string>,
  def: WorkspaceDefinition,
  options: { clock?: Clock; crashAt?: { sync: string; when: 'before' | 'after' } } = {},
): Promise<Process> {
  const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1', ...env } });
  const store = await openStore(config, { logger: silentLogger });
  await store.applyWorkspace(def, (options.clock ?? Date).now());
  let crash: StoreCrash | null = null;
  if (options.crashAt) {
    const target = await store.getSync(options.crashAt.sync);
    crash = withStoreCrash(store, queuesSyncRun(target!.id), options.crashAt.when);
  }
  const app = await createApp(config, { store: crash?.store ?? store, logger: silentLogger, ...(options.clock ? { clock: options.clock } : {}) });
  return { app, crash };
}

/** Lets a killed process go: what it still tries fails, as the store is gone for it. */
async function kill(process: Process): Promise<void> {
  await process.app.close().catch(() => undefined);
}

async function syncRuns(app: App, slug: string): Promise<SyncRun[]> {
  const found = await app.store.getSync(slug);
  return app.store.listSyncRuns({ syncId: found!.id, limit: 50, offset: 0, order: 'asc' });
}

async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await flush();
    await new Promise((r) => setTimeout(r, 10));
  }
}

function fivetranSyncEnd(): Buffer {
  return Buffer.from(JSON.stringify({ event: 'sync_end', connector_id: 'app_db', sync_id: 'sync-7', data: { status: 'SUCCESSFUL' } }));
}

for (const { name, env: storeEnv } of STORES) {
  describe(`a firing and its run, on the ${name}`, () => {
    it.each(WHEN)("a scheduler killed as it queues a due time's run (%s the store has it) leaves it to a restart, which queues it once", async (when) => {
      const dir = tempDir();
      createHierarchyFixture(dir);
      const env = await storeEnv();
      const clock = new FakeClock('2026-03-01T10:59:30Z');
      const def = definition({ accounts: { type: 'cron', expression: '0 * * * *', timezone: 'UTC', catchupWindowSeconds: 3600 } });

      const first = await start(dir, env, def, { clock, crashAt: { sync: 'accounts', when } });
      await first.app.startScheduler(3_600_000);
      await clock.set('2026-03-01T11:00:00Z');
      await settle();
      expect(first.crash!.crashed).toBe(true);
      await kill(first);

      const restarted = await start(dir, env, def, { clock });
      try {
        await restarted.app.startScheduler(3_600_000);
        await settle();
        const runs = await syncRuns(restarted.app, 'accounts');
        expect(runs.map((r) => r.trigger)).toEqual([{ type: 'schedule', detail: 'sync:accounts@2026-03-01T11:00:00.000Z' }]);
      } finally {
        await restarted.app.close();
      }
    });

    it.each(WHEN)('a process killed as it queues the run scheduled after a finished run (%s the store has it): another process queues it once', async (when) => {
      const dir = tempDir();
      createHierarchyFixture(dir);
      const env = await storeEnv();
      const def = definition({ workspaces: { type: 'after', sync: 'accounts', sequence: null, on: 'success' } });

      const first = await start(dir, env, def, { crashAt: { sync: 'workspaces', when } });
      await first.app.worker.start();
      const { run } = await first.app.runs.triggerSync('accounts');
      expect((await first.app.runs.waitForSyncRun(run.id)).status).toBe('success');
      await eventually(() => first.crash!.crashed, 'the crash');
      await kill(first);

      // The dead process's hold on the run's end runs out (1 s), and another process acts on it.
      const other = await start(dir, env, def);
      try {
        await other.app.worker.start();
        await eventually(async () => (await syncRuns(other.app, 'workspaces')).length > 0, 'the workspaces run');
        await new Promise((r) => setTimeout(r, 1_500)); // past another hold: nothing is queued twice
        const runs = await syncRuns(other.app, 'workspaces');
        expect(runs.map((r) => r.trigger)).toEqual([{ type: 'upstream', detail: `sync "accounts" run ${run.id} ended success` }]);
      } finally {
        await other.app.close();
      }
    });

    it.each(WHEN)("a server killed as it queues a webhook delivery's run (%s the store has it): the sender's redelivery queues it once", async (when) => {
      const dir = tempDir();
      createHierarchyFixture(dir);
      const env = await storeEnv();
      const def = definition({ accounts: { type: 'fivetran', connectorId: 'app_db' } });
      const deliver = (app: App) => {
        const receiver = new WebhookReceiver({
          store: app.store,
          runs: app.runs,
          clock: app.clock,
          logger: silentLogger,
          secrets: async () => ({ dbtCloud: null, fivetran: { secret: FIVETRAN_SECRET } }),
        });
        const body = fivetranSyncEnd();
        return receiver.receiveFivetran({ rawBody: body, headers: { 'x-fivetran-signature-256': hmacHex(FIVETRAN_SECRET, body) } });
      };

      const first = await start(dir, env, def, { crashAt: { sync: 'accounts', when } });
      await deliver(first.app).catch(() => undefined); // the sender gets no answer, and delivers again
      expect(first.crash!.crashed).toBe(true);
      await kill(first);

      const restarted = await start(dir, env, def);
      try {
        const answer = await deliver(restarted.app);
        expect(answer.status).toBe(200);
        const runs = await syncRuns(restarted.app, 'accounts');
        expect(runs.map((r) => r.trigger)).toEqual([{ type: 'webhook', detail: 'fivetran event app_db:sync_end:sync-7' }]);
        // A later redelivery is a duplicate: nothing more is queued.
        expect((await deliver(restarted.app)).body.outcome).toBe('duplicate');
        expect(await syncRuns(restarted.app, 'accounts')).toHaveLength(1);
      } finally {
        await restarted.app.close();
      }
    });
  });
}

/**
 * A sync run whose store cannot be reached while it reads its snapshot, on a PostgreSQL store: the
 * run retries, and when its retries give up the outage is not recorded as the run's failure (which
 * would terminate its sequence by the member's policy) if the store happens to answer again for
 * that write. The run is left for its next attempt, which a worker takes once its lease ran out.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import type { Store } from '../../src/core/ports.js';
import { silentLogger } from '../../src/core/logger.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { hierarchyWorkspace as hierarchyDefinition, member, sequence, sync } from '../helpers/definitions.js';
import { createHierarchyFixture, sqliteRows, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

/** `inner`, whose snapshot calls fail with `error` while `outage.down`. */
function withSnapshotOutage(inner: Store, error: Error, outage: { down: boolean; failures: number }): Store {
  return new Proxy(inner, {
    get(object, name, receiver) {
      const value: unknown = Reflect.get(object, name, receiver);
      if (name !== 'snapshots') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(object) : value;
      return new Proxy(value as object, {
        get(snapshots, method, r) {
          const call: unknown = Reflect.get(snapshots, method, r);
          if (typeof call !== 'function') return call;
          return (...args: unknown[]) => {
            if (outage.down) {
              outage.failures++;
              return Promise.reject(error);
            }
            return (call as (...a: unknown[]) => unknown).apply(snapshots, args);
          };
        },
      });
    },
  });
}

describe('a sync run whose store cannot be reached', () => {
  it('is left for its next attempt, not failed: its sequence goes on', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const url = await createTestDatabase('lockstep_store_down');
    // What the store says when its server cannot be reached: nothing listens on port 1.
    const unreachable = (await PostgresStore.open({ url: 'postgres://postgres@127.0.0.1:1/lockstep', connectTimeoutMs: 2000 }).then(
      () => null,
      (thrown: unknown) => thrown,
    )) as Error;
    expect(unreachable).toMatchObject({ code: 'store', retryable: true });

    const outage = { down: false, failures: 0 };
    const store = withSnapshotOutage(await PostgresStore.open({ url }), unreachable, outage);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_STORE: url, LOCKSTEP_LEASE_SECONDS: '1', LOCKSTEP_POLL_MS: '100' } });
    const app = await createApp(config, { store, logger: silentLogger });
    try {
      const definition = hierarchyDefinition(['accounts', 'workspaces'], {
        syncs: [
          sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts' }),
          sync('workspaces-to-crm', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
        ],
        sequences: [sequence('crm', [member('accounts-to-crm', { terminate: 'on_fatal' }), member('workspaces-to-crm', { terminate: 'on_fatal' })])],
      });
      await app.store.applyWorkspace(definition, app.clock.now());
      outage.down = true;
      await app.worker.start();
      const { run } = await app.runs.triggerSequence('crm');
      // Every read of the first member's attempt fails, through its retries (5 attempts).
      const deadline = Date.now() + 20_000;
      while (outage.failures < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const during = await app.store.getSyncRun(1);
      expect(during!.status, during!.error ?? '').not.toBe('failed');
      outage.down = false;

      const finished = await app.runs.waitForSequenceRun(run.id);
      expect(finished.status).toBe('done');
      expect(finished.members.map((m) => m.status)).toEqual(['success', 'success']);
      expect(await app.store.getSyncRun(1)).toMatchObject({ memberKey: 'accounts-to-crm', status: 'success', attempt: 2 });
      expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from workspaces')).toEqual([{ n: 6 }]);
    } finally {
      await app.close();
    }
  }, 60_000);
});

/**
 * A worker loads the drivers of the kinds its workspace uses, and readies the store's snapshot
 * writes, before it takes work, also when the workspace was applied after the process started: its
 * first run does not spend its time loading modules or starting the store's write thread. A driver
 * that fails to load stops nothing; the run that opens the connection reports it.
 */
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { ConnectorKind } from '../../src/core/connector-kind.js';
import type { ConnectorRegistry } from '../../src/core/connector-registry.js';
import { SqliteSnapshotStore } from '../../src/store/sqlite/sqlite-snapshot-store.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';

const CAPABILITIES = { deletes: true, upsert: true, maxBatchSize: null, recordIds: false };

/** A destination kind whose driver takes `ms` to load (or fails to), and whose opening records whether it had loaded. */
function slowKind(ms: number, fails = false) {
  const seen = { loaded: false, openedLoaded: [] as boolean[] };
  const kind: ConnectorKind<{ name: string }> = {
    type: 'slow',
    description: 'A destination whose driver loads slowly.',
    settings: z.strictObject({ name: z.string() }),
    secrets: [],
    example: '{ type: slow, name: s }',
    preload: async () => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (fails) throw new Error('the driver is missing');
      seen.loaded = true;
    },
    destination: {
      capabilities: CAPABILITIES,
      async open() {
        seen.openedLoaded.push(seen.loaded);
        return {
          capabilities: CAPABILITIES,
          async close() {},
          async prepare() {
            return { write: async (batch) => batch.map(() => ({ ok: true as const })) };
          },
        };
      },
    },
  };
  return { kind, seen };
}

function definition() {
  return workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('api', { type: 'slow', settings: { name: 'api' } })],
    models: [model('accounts', 'warehouse', 'select id, name from accounts')],
    syncs: [sync('accounts', { model: 'accounts', destination: 'api', object: 'accounts' })],
  });
}

describe('a worker prepares its workspace before it takes work', () => {
  it('loads the drivers of a workspace applied after the process started, before its first run opens them', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const { kind, seen } = slowKind(150);
    const prepareWrites = vi.spyOn(SqliteSnapshotStore.prototype, 'prepareWrites');
    await using h = await startHarness({ dir, definition: definition(), connectors: (real) => (real as ConnectorRegistry).register(kind) });
    // startHarness applied the workspace to a fresh store, then started the worker: the drivers are
    // loaded, and the store's write thread is up.
    expect(seen.loaded).toBe(true);
    expect(prepareWrites).toHaveBeenCalledTimes(1);
    prepareWrites.mockRestore();
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    expect(seen.openedLoaded).toEqual([true]);
  });

  it('takes work at once when told not to wait (a command that runs one sync), the drivers loading meanwhile', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const { kind, seen } = slowKind(400);
    await using h = await startHarness({ dir, definition: definition(), connectors: (real) => (real as ConnectorRegistry).register(kind), startWorker: false });
    await h.app.worker.start({ awaitPrepare: false });
    expect(seen.loaded).toBe(false);
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    expect(seen.openedLoaded).toHaveLength(1);
  });

  it('leaves the write thread of the store alone when every sync plans in the warehouse', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const prepareWrites = vi.spyOn(SqliteSnapshotStore.prototype, 'prepareWrites');
    // Preparing opens no connection: the source's server need not be there.
    const warehouse = workspace({
      sources: [source('warehouse', { type: 'postgres', settings: { url: 'postgres://lockstep@127.0.0.1:1/dw', planner: 'warehouse' } })],
      destinations: [source('app', { path: 'app.db' })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts', { model: 'accounts', destination: 'app', object: 'accounts' })],
    });
    await using _h = await startHarness({ dir, definition: warehouse });
    expect(prepareWrites).not.toHaveBeenCalled();
    prepareWrites.mockRestore();
  });

  it('starts anyway when a driver fails to load', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const { kind, seen } = slowKind(10, true);
    await using h = await startHarness({ dir, definition: definition(), connectors: (real) => (real as ConnectorRegistry).register(kind) });
    const { run } = await h.app.runs.triggerSync('accounts');
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
    expect(seen.openedLoaded).toEqual([false]);
  });
});

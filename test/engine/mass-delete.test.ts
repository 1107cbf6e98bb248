/**
 * The mass-delete guard: a sync that deletes (mirror, or deleteBehavior delete) and whose run would
 * remove more than `maxDeletePercent` of the rows it manages stops before its first delete and
 * fails with the figures; `allowMassDelete` lets one run through; `null` turns the guard off.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SyncDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';
import { HttpReceiver, until } from '../alerts/receivers.js';

async function setup(over: Partial<SyncDef>, alertsUrl?: string, cursor?: string) {
  const dir = tempDir();
  const values = Array.from({ length: 10 }, (_, i) => `(${i + 1}, 'item ${i + 1}')`).join(', ');
  sqlite(join(dir, 'warehouse.db'), `create table items (id integer primary key, label text); insert into items values ${values};`);
  sqlite(join(dir, 'app.db'), 'create table items (id integer primary key, label text);');
  const definition = workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('app', { path: 'app.db' })],
    models: [{ ...model('items', 'warehouse', 'select id, label from items'), ...(cursor ? { cursor } : {}) }],
    syncs: [sync('items', { model: 'items', destination: 'app', object: 'items', mode: 'mirror', ...over })],
  });
  if (alertsUrl) {
    definition.alerts = {
      channels: [{ name: 'hooks', type: 'webhook', url: `${alertsUrl}/hook`, headers: {}, secret: null }],
      rules: [{ name: 'default', on: ['sync_failed'], syncs: [], sequences: [], rejectedPercent: 5, slowerThanMinutes: null, channels: ['hooks'] }],
    };
  }
  const h = await startHarness({ dir, definition });
  const run = async (options: { allowMassDelete?: boolean; fullCompare?: boolean } = {}) => {
    const { run: queued } = await h.app.runs.triggerSync('items', options);
    return h.app.runs.waitForSyncRun(queued.id);
  };
  const count = () => sqliteRows<{ n: number }>(join(dir, 'app.db'), 'select count(*) as n from items')[0]!.n;
  const keep = (ids: number) => sqlite(join(dir, 'warehouse.db'), `delete from items where id > ${ids}`);
  return { h, run, count, keep };
}

describe('mass-delete guard', () => {
  it('an emptied model fails the run before any delete, with the figures and the way through', async () => {
    const { h, run, count, keep } = await setup({});
    await using _ = h;
    expect((await run()).status).toBe('success');
    expect(count()).toBe(10);
    keep(0);
    const refused = await run();
    expect(refused.status).toBe('failed');
    expect(refused.error).toBe(
      'sync "items" would delete 10 of the 10 rows it manages (100%), over its maxDeletePercent of 50% — nothing was deleted; ' +
        'check the model (did it lose rows?), then run it once with `lockstep sync run items --allow-mass-delete`, or raise maxDeletePercent (null turns the guard off)',
    );
    expect(count()).toBe(10);
    // The snapshot is untouched: the next run is refused the same way.
    expect((await run()).status).toBe('failed');
    const allowed = await run({ allowMassDelete: true });
    expect(allowed).toMatchObject({ status: 'success', successfulRows: { removedCount: 10 } });
    expect(count()).toBe(0);
  });

  it('a run through the API is let through once with allowMassDelete, as the command line does', async () => {
    const { h, run, count, keep } = await setup({});
    await using _ = h;
    const { url } = await h.app.startServer({ port: 0, host: '127.0.0.1', authRequired: false, uiDir: null });
    const trigger = async (body: unknown) => {
      const answer = await fetch(`${url}/api/syncs/items/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(answer.status).toBe(202);
      return h.app.runs.waitForSyncRun(((await answer.json()) as { id: number }).id);
    };
    expect((await run()).status).toBe('success');
    keep(0);
    expect((await trigger({})).status).toBe('failed');
    expect(count()).toBe(10);
    expect(await trigger({ allowMassDelete: true })).toMatchObject({ status: 'success', successfulRows: { removedCount: 10 } });
    expect(count()).toBe(0);
  });

  it('names --full-compare in the way through when the model has a cursor (only a full comparison sees removals)', async () => {
    const { h, run, count, keep } = await setup({}, undefined, 'id');
    await using _ = h;
    await run();
    keep(2);
    const refused = await run({ fullCompare: true });
    expect(refused.error).toContain('run it once with `lockstep sync run items --allow-mass-delete --full-compare`');
    expect(await run({ allowMassDelete: true, fullCompare: true })).toMatchObject({ status: 'success', successfulRows: { removedCount: 8 } });
    expect(count()).toBe(2);
  });

  it('lets through removals at or under the threshold, refuses above it, and lets everything through when off', async () => {
    const guarded = await setup({ maxDeletePercent: 40 });
    {
      await using _ = guarded.h;
      await guarded.run();
      guarded.keep(6); // 4 of 10: 40%
      expect((await guarded.run()).status).toBe('success');
      expect(guarded.count()).toBe(6);
      guarded.keep(3); // 3 of 6: 50%
      expect(await guarded.run()).toMatchObject({ status: 'failed', error: expect.stringContaining('would delete 3 of the 6 rows it manages (50%)') });
      expect(guarded.count()).toBe(6);
    }
    const off = await setup({ maxDeletePercent: null });
    await using _ = off.h;
    await off.run();
    off.keep(0);
    expect((await off.run()).status).toBe('success');
    expect(off.count()).toBe(0);
  });

  it('raises the sync_failed alert with the figures when it stops a run', async () => {
    await using http = await HttpReceiver.start();
    const { h, run, keep } = await setup({}, http.url);
    await using _ = h;
    expect((await run()).status).toBe('success');
    keep(0);
    expect((await run()).status).toBe('failed');
    await until(async () => {
      await h.app.alertMonitor.idle();
      await h.app.alerts.sendDue();
      return http.at('/hook').length > 0;
    }, 'the sync_failed notice');
    const notices = http.at('/hook');
    expect(notices).toHaveLength(1);
    expect(notices[0]!.raw).toContain('would delete 10 of the 10 rows it manages (100%)');
  });
});

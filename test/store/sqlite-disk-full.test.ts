/**
 * The embedded store on a disk that fills during a run: the write that does not fit fails naming
 * the store file, that the disk is full and the fix; once space is freed, the run is taken over and
 * the next run delivers every row, the snapshot holding exactly what was counted delivered.
 *
 * A 2 MB tmpfs holds the workspace and its store (mounting needs root); the source and destination
 * files live outside it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createJsonLogger } from '../../src/core/logger.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

const ROWS = 20_000;

/** Mounts a tmpfs of `size` on `dir`; the reason it cannot, or null. */
function mountSmallDisk(dir: string, size = '2m'): string | null {
  if (process.getuid?.() !== 0) return 'mounting a small tmpfs needs root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `mount -t tmpfs refused: ${String((error as Error).message).split('\n')[0]}`;
  }
}

const outside = tempDir('lockstep-disk-full-');
const small = join(outside, 'small');
mkdirSync(small);
const skipReason = mountSmallDisk(small);

describe.skipIf(skipReason !== null)(`SQLite store on a full disk${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  afterAll(() => {
    execFileSync('umount', [small], { stdio: 'pipe' });
  });

  /** A warehouse file of `count` accounts and an empty CRM file, outside the small disk, and the workspace syncing them. */
  function accountsToCrm(name: string, count: number) {
    const rows: string[] = [];
    for (let i = 1; i <= count; i++) rows.push(`(${i}, 'account with a longish name ${i}')`);
    const warehouse = join(outside, `${name}-warehouse.db`);
    const crm = join(outside, `${name}-crm.db`);
    sqlite(warehouse, `create table accounts (id integer primary key, name text); insert into accounts values ${rows.join(',')};`);
    sqlite(crm, 'create table accounts (id integer primary key, name text);');
    const definition = workspace({
      sources: [source('warehouse', { path: warehouse })],
      destinations: [source('crm', { path: crm })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts' })],
    });
    return { definition, crmRows: () => sqliteRows<{ n: number }>(crm, 'select count(*) as n from accounts')[0]?.n };
  }

  it('fails the write naming the file and the fix; after space is freed no row is lost', async () => {
    const { definition, crmRows } = accountsToCrm('partly', ROWS);
    const dir = join(small, 'workspace');
    mkdirSync(dir);
    const logger = createJsonLogger({ level: 'error', write: () => undefined });
    await using h = await startHarness({ dir, definition, logger, env: { LOCKSTEP_LEASE_SECONDS: '1' } });
    // About 300 kB left: the run's first snapshot commits fit, a later one does not.
    const free = () => {
      const stats = statfsSync(small);
      return stats.bavail * stats.bsize;
    };
    const filler = join(small, 'filler');
    writeFileSync(filler, Buffer.alloc(Math.max(0, free() - 300 * 1024)));

    const { run } = await h.app.runs.triggerSync('accounts-to-crm');
    const snapshotRows = () => sqliteRows<{ n: number }>(join(dir, 'lockstep.db'), 'select count(*) as n from snapshots')[0]?.n;
    // The commit that does not fit may take the last bytes, so that the run's end cannot be
    // recorded either (which write meets the full disk depends on the store's checkpoints): then
    // the waiting caller is told so, with the same file and fix, and the run is taken over below.
    const first = await h.app.runs.waitForSyncRun(run.id).then(
      (ended) => ({ ended, error: ended.error ?? '' }),
      (error: Error) => ({ ended: null, error: error.message }),
    );
    expect(first.error).toMatch(/disk holding it is full; free space on that disk/);
    // The run's recorded error, which any API token reads, says "the store" (the server log names
    // the file); a caller in this process that could not read the run's end is told the file.
    if (first.ended) expect(first.error).toMatch(/^the store: the disk holding it is full/);
    else expect(first.error).toContain(join(dir, 'lockstep.db'));
    if (first.ended) {
      expect(first.ended.status).toBe('failed');
      // Every row counted delivered is in the snapshot (committed in the same transaction).
      expect(snapshotRows()).toBe(first.ended.successfulRows.addedCount);
    } else {
      expect(first.error).toContain(`sync run ${run.id} stopped, and its end could not be recorded`);
    }

    rmSync(filler);
    if (!first.ended) {
      const taken = await h.app.runs.waitForSyncRun(run.id);
      expect(taken.status).toBe('success');
      expect(snapshotRows()).toBe(ROWS);
      expect(crmRows()).toBe(ROWS);
      return;
    }
    const next = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('accounts-to-crm')).run.id);
    expect(next.status).toBe('success');
    expect(next.plannedRows.addedCount).toBe(ROWS - first.ended.successfulRows.addedCount);
    expect(snapshotRows()).toBe(ROWS);
    expect(crmRows()).toBe(ROWS);
  }, 60_000);

  it('a disk with no space at all: the waiting caller learns the run could not be recorded, and the run finishes once space is freed', async () => {
    const whole = join(outside, 'whole');
    mkdirSync(whole);
    expect(mountSmallDisk(whole, '16m')).toBeNull();
    try {
      const { definition, crmRows } = accountsToCrm('whole', 30_000);
      const dir = join(whole, 'workspace');
      mkdirSync(dir);
      const logged: string[] = [];
      const logger = createJsonLogger({ level: 'error', write: (line: string) => void logged.push(line) });
      await using h = await startHarness({ dir, definition, logger, env: { LOCKSTEP_LEASE_SECONDS: '1' } });
      const { run } = await h.app.runs.triggerSync('accounts-to-crm');
      while ((await h.app.store.getSyncRun(run.id))?.status === 'queued') await new Promise((resolve) => setTimeout(resolve, 2));
      // The run has started: the disk fills to its last byte.
      const filler = join(whole, 'filler');
      const { bavail, bsize } = statfsSync(whole);
      writeFileSync(filler, Buffer.alloc(bavail * bsize));

      const waited = await h.app.runs.waitForSyncRun(run.id).then(
        () => null,
        (error: Error) => error,
      );
      expect(waited?.message).toContain(`sync run ${run.id} stopped, and its end could not be recorded`);
      expect(waited?.message).toContain(join(dir, 'lockstep.db'));
      expect(waited?.message).toMatch(/disk holding it is full; free space on that disk/);
      expect(waited?.message).toContain('once the store can be written again, the next lockstep command or serving process takes it over');
      // The worker keeps trying to take the run over; the same failure is not logged at every poll.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(logged.filter((line) => line.includes('could not take queued work')).length).toBeLessThanOrEqual(1);

      rmSync(filler);
      const taken = await h.app.runs.waitForSyncRun(run.id);
      expect(taken.status).toBe('success');
      expect(taken.attempt).toBeGreaterThan(1);
      expect(crmRows()).toBe(30_000);
      expect(sqliteRows<{ n: number }>(join(dir, 'lockstep.db'), 'select count(*) as n from snapshots')[0]?.n).toBe(30_000);
    } finally {
      execFileSync('umount', [whole], { stdio: 'pipe' });
    }
  }, 60_000);
});

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

/** Mounts a 2 MB tmpfs on `dir`; the reason it cannot, or null. */
function mountSmallDisk(dir: string): string | null {
  if (process.getuid?.() !== 0) return 'mounting a small tmpfs needs root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
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

  it('fails the write naming the file and the fix; after space is freed no row is lost', async () => {
    const rows: string[] = [];
    for (let i = 1; i <= ROWS; i++) rows.push(`(${i}, 'account with a longish name ${i}')`);
    sqlite(join(outside, 'warehouse.db'), `create table accounts (id integer primary key, name text); insert into accounts values ${rows.join(',')};`);
    sqlite(join(outside, 'crm.db'), 'create table accounts (id integer primary key, name text);');
    const definition = workspace({
      sources: [source('warehouse', { path: join(outside, 'warehouse.db') })],
      destinations: [source('crm', { path: join(outside, 'crm.db') })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts' })],
    });
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
    const first = await h.app.runs.waitForSyncRun(run.id);
    expect(first.status).toBe('failed');
    expect(first.error).toContain(join(dir, 'lockstep.db'));
    expect(first.error).toMatch(/disk holding it is full; free space on that disk/);
    const snapshotRows = () => sqliteRows<{ n: number }>(join(dir, 'lockstep.db'), 'select count(*) as n from snapshots')[0]?.n;
    // Every row counted delivered is in the snapshot (committed in the same transaction).
    expect(snapshotRows()).toBe(first.successfulRows.addedCount);

    rmSync(filler);
    const next = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('accounts-to-crm')).run.id);
    expect(next.status).toBe('success');
    expect(next.plannedRows.addedCount).toBe(ROWS - first.successfulRows.addedCount);
    expect(snapshotRows()).toBe(ROWS);
    expect(sqliteRows<{ n: number }>(join(outside, 'crm.db'), 'select count(*) as n from accounts')[0]?.n).toBe(ROWS);
  }, 60_000);
});

/**
 * A rolling upgrade on a PostgreSQL store: a newer Lockstep migrates the store while a `lockstep
 * worker` of this version still holds a run on it. The older worker cannot read or write what the
 * newer one keeps: it stops as for SIGTERM (its run left to another worker), names both schema
 * versions and the fix, and exits with an error, rather than go on against a schema it does not know.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { MIGRATIONS, SCHEMA_VERSION, migrate } from '../../src/store/postgres/postgres-migrations.js';
import { CliProcess, killChildren, sleep } from '../cli/cli-helpers.js';
import { createHeldSync } from './held-sync.js';

afterEach(async () => {
  await killChildren();
});

/** What a newer Lockstep does when it opens the store: its migrations, one more than this code's, in one transaction. */
async function migrateAsNewerLockstep(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    const newer = [...MIGRATIONS, { version: SCHEMA_VERSION + 1, name: 'a newer release', sql: 'ALTER TABLE sync_runs ADD COLUMN newer_setting text' }];
    expect(await migrate(client, 'lockstep', 'the test', Date.now(), newer)).toEqual([SCHEMA_VERSION + 1]);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

describe('a store migrated by a newer Lockstep while an older worker runs on it', () => {
  it('stops the older worker: its run is left to another worker, and it exits naming both schema versions and the fix', async () => {
    const held = await createHeldSync('lockstep_upgrade');
    // A process of this version listening on the store, to see what the migration tells.
    const store = await PostgresStore.open({ url: held.storeUrl, poolSize: 1 });
    const heard: string[] = [];
    const unwatch = store.watch((topic) => heard.push(topic));
    try {
      const older = new CliProcess(['--workspace', held.dir, '--store', held.storeUrl, 'worker'], {
        cwd: held.dir,
        env: { LOCKSTEP_LEASE_SECONDS: '300', LOCKSTEP_POLL_MS: '250' },
      });
      await older.waitForStderr(/lockstep worker: running on/, 20_000);
      const runId = await held.trigger();
      await held.waitUntilHeld(older, runId);

      await migrateAsNewerLockstep(held.storeUrl);

      await older.waitForStderr(/the store was migrated by a newer Lockstep: stopping/, 20_000);
      expect(older.stderr).toContain(`stopping; sync run ${runId} stops at its next batch and is left to another worker`);
      // The write in flight ends, and the run stops at that batch boundary.
      held.release();
      const exit = await Promise.race([older.exited, sleep(30_000).then(() => null)]);
      expect(exit, `the older worker did not exit:\n${older.stderr}`).not.toBeNull();
      expect(exit!.code, exit!.stderr).toBe(3);
      expect(exit!.stderr).toContain(
        `error: store PostgreSQL at ${new URL(held.storeUrl).host}${new URL(held.storeUrl).pathname}`,
      );
      expect(exit!.stderr).toContain(
        `was migrated to schema version ${SCHEMA_VERSION + 1} by a newer Lockstep while this process ran; this Lockstep knows version ${SCHEMA_VERSION} at most`,
      );
      expect(exit!.stderr).toContain('upgrade Lockstep on this machine to the version that migrated the store, and start this process again');
      // Left as it was for the upgraded workers: unfinished, this attempt's, its lease released.
      const [left] = await held.db.rows<{ status: string; attempt: number; released: boolean }>(
        'select status, attempt, lease_expires_at <= extract(epoch from clock_timestamp()) * 1000 as released from lockstep.sync_runs where id = $1',
        [runId],
      );
      expect(left).toMatchObject({ attempt: 1, released: true });
      expect(['querying', 'processing']).toContain(left!.status);

      // What told the worker: the migration's notification, and the version it reads.
      expect(heard).toContain('schema');
      expect((await store.newerSchema())?.message).toContain(`was migrated to schema version ${SCHEMA_VERSION + 1} by a newer Lockstep while this process ran`);

      // And it cannot come back on the newer store.
      const again = new CliProcess(['--workspace', held.dir, '--store', held.storeUrl, 'worker'], { cwd: held.dir });
      const refused = await again.exited;
      expect(refused.code, refused.stderr).toBe(3);
      expect(refused.stderr).toContain(`has schema version ${SCHEMA_VERSION + 1}, newer than this Lockstep knows (${SCHEMA_VERSION})`);
    } finally {
      unwatch();
      await store.close();
      await held.close();
    }
  }, 120_000);
});

/**
 * SPEC §2.2 step 4 and §9 on the bulk path: a PostgreSQL → PostgreSQL sync killed with SIGKILL while
 * it delivers leaves a snapshot that records only rows the destination holds, with the values it
 * holds; restarted, the run converges on a destination equal to the model.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresSource } from '../../src/connectors/index.js';
import { hashBytes, hashText, rowHash } from '../../src/engine/row-hash.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const BIN = resolve(import.meta.dirname, '../../bin/lockstep.js');
const ROWS = 60_000;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

function lockstep(dir: string, args: string[], env: Record<string, string>): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--workspace', dir, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env, LOCKSTEP_POLL_MS: '50' },
  });
  children.add(child);
  const exit = new Promise<number | null>((done) =>
    child.on('exit', (code) => {
      children.delete(child);
      done(code);
    }),
  );
  return { child, exit };
}

/** Key → hash of each row of `query`, as the sync runner computes it (over the row's COPY text). */
async function tableHashes(url: string, query: string): Promise<Map<string, string>> {
  const source = await PostgresSource.connect({ url });
  const rows = new Map<string, string>();
  try {
    for await (const batch of source.read(query, { batchSize: 5000, encoded: true })) {
      const encoded = batch.encoded!;
      for (let r = 0; r + 1 < encoded.starts.length; r++) {
        hashBytes(encoded.data, encoded.starts[r]!, encoded.starts[r + 1]! - 1);
        rows.set(JSON.stringify(encoded.decode(r, [0])), hashText(rowHash[0]!, rowHash[1]!));
      }
    }
  } finally {
    await source.close();
  }
  return rows;
}

describe('kill -9 during a PostgreSQL bulk sync', () => {
  it('leaves the snapshot consistent with the destination, and the restarted run converges', async () => {
    const url = await createTestDatabase('lockstep_kill');
    await sql(
      url,
      `create table model_rows (id bigint primary key, name text not null, score integer, at timestamptz not null);
       insert into model_rows select g, 'row ' || g, case when g % 9 = 0 then null else g % 1000 end,
         timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' from generate_series(1, ${ROWS}) g;
       create table target_rows (like model_rows including all)`,
    );
    const dir = tempDir('lockstep-pg-kill-');
    writeFileSync(
      join(dir, 'lockstep.yaml'),
      `sources:\n  warehouse: { type: postgres, url: "\${KILL_PG_URL}" }\ndestinations:\n  crm: { type: postgres, url: "\${KILL_PG_URL}" }\n` +
        `models:\n  rows: { source: warehouse, primaryKey: id, query: "select * from model_rows" }\n` +
        `syncs:\n  rows-to-crm: { model: rows, destination: crm, object: target_rows, mode: mirror, batchSize: 1000 }\n`,
    );
    const env = { KILL_PG_URL: url };
    expect(await lockstep(dir, ['apply'], env).exit).toBe(0);

    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    try {
      const first = lockstep(dir, ['sync', 'run', 'rows-to-crm'], env);
      let killed = false;
      const deadline = Date.now() + 60_000;
      while (!killed && Date.now() < deadline) {
        const [run] = await store.listSyncRuns({ limit: 1, offset: 0, order: 'desc' });
        if (run?.status === 'processing' && run.successfulRows.addedCount >= 5000) {
          first.child.kill('SIGKILL');
          killed = true;
        } else await new Promise((r) => setTimeout(r, 2));
      }
      expect(killed, 'the run never got to deliver 5000 rows').toBe(true);
      await first.exit;

      // Every key the snapshot records is in the destination, with the values it was recorded with.
      const syncId = (await store.getSync('rows-to-crm'))!.id;
      const delivered = await tableHashes(url, 'select * from target_rows');
      const recorded = await store.snapshots.count(syncId);
      expect(recorded).toBeGreaterThanOrEqual(5000);
      expect(recorded).toBeLessThan(ROWS);
      let checked = 0;
      for await (const keys of store.snapshots.keys(syncId, 5000)) {
        const hashes = await store.snapshots.get(syncId, keys);
        for (const key of keys) {
          const hash = delivered.get(key);
          expect(hash, `snapshot records ${key}, which the destination does not hold`).toBeDefined();
          expect(hash).toBe(hashes.get(key));
          checked++;
        }
      }
      expect(checked).toBe(recorded);

      // Restarted, a worker takes the dead one's run over (same run, attempt 2) and the
      // destination equals the model.
      const [atKill] = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(await lockstep(dir, ['worker', '--drain'], env).exit).toBe(0);
      const runs = await store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(runs.map((r) => [r.status, r.attempt])).toEqual([['success', 2]]);
      const digest = (table: string) => sql(url, `select count(*)::int as n, md5(string_agg(t::text, '|' order by id)) as m from ${table} t`);
      expect(await digest('target_rows')).toEqual(await digest('model_rows'));
      expect(await store.snapshots.count(syncId)).toBe(ROWS);
      // The takeover sent only what the killed attempt had not committed to the snapshot; the run's
      // counts keep what that attempt had recorded as delivered.
      expect(runs[0]!.plannedRows.addedCount - atKill!.successfulRows.addedCount).toBe(ROWS - recorded);
    } finally {
      await store.close();
    }
  }, 120_000);
});

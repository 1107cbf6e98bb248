/**
 * PostgreSQL configured as real servers are, per database or per role, rather than as the test
 * server's defaults: as a source (either planner), a destination and the store.
 */
import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

/** The database's name in its URL. */
const databaseName = (url: string) => new URL(url).pathname.slice(1);

describe('the PostgreSQL store on a server with other settings', () => {
  it.each(['repeatable read', 'serializable'])('opens a new store from several processes at once when default_transaction_isolation is %s', async (isolation) => {
    const url = await createTestDatabase('lockstep_isolation');
    await sql(url, `alter database "${databaseName(url)}" set default_transaction_isolation = '${isolation}'`);
    // Each waits for the migration lock, then must see what the one before it committed.
    const opened = await Promise.allSettled(Array.from({ length: 3 }, () => PostgresStore.open({ url, poolSize: 2 })));
    for (const store of opened) if (store.status === 'fulfilled') await store.value.close();
    expect(opened.map((store) => (store.status === 'rejected' ? String(store.reason) : 'open'))).toEqual(['open', 'open', 'open']);
  });
});

/** A language the server has messages in, when it has the locale for it (lc_messages takes only an installed one). */
async function otherLanguage(url: string): Promise<string | null> {
  for (const locale of ['de_DE.UTF-8', 'fr_FR.UTF-8']) {
    const accepted = await sql(url, `set lc_messages = '${locale}'; select 1 / 0`).then(
      () => false,
      // Refused, the locale is missing (22023); taken, the division fails in that language (22012).
      (error: Error & { code?: string }) => error.code === '22012' && !/division by zero/.test(error.message),
    );
    if (accepted) return locale;
  }
  return null;
}

describe('a PostgreSQL destination whose messages are in another language', async () => {
  const url = await createTestDatabase('lockstep_language');
  const locale = await otherLanguage(url);

  it.skipIf(locale === null)('names the column of a value it refused, from the SQLSTATE and the fields the server sends', async () => {
    await sql(url, `alter database "${databaseName(url)}" set lc_messages = '${locale}';
      create type mood as enum ('ok', 'sad'); create domain positive as integer check (value > 0);
      create table people (id bigint primary key, ref text, mood text, score integer);
      insert into people select g, '00000000-0000-0000-0000-00000000000' || g, 'ok', 1 from generate_series(1, 9) g;
      update people set ref = 'nope' where id = 2; update people set mood = 'angry' where id = 3; update people set score = -1 where id = 4;
      create table crm_people (id bigint primary key, ref uuid, mood mood, score positive)`);
    await using h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'postgres', url })],
        destinations: [source('crm', { type: 'postgres', url })],
        models: [model('people', 'warehouse', 'select * from people')],
        syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people' })],
      }),
    });
    const run = await h.app.runs.waitForSyncRun((await h.app.runs.triggerSync('people-to-crm', {})).run.id);
    expect(run.successfulRows.addedCount).toBe(6);
    const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
    expect(rejected.map((row) => [row.key, /^column "(\w+)": /.exec(row.reason)?.[1]])).toEqual([
      ['[2]', 'ref'],
      ['[3]', 'mood'],
      ['[4]', 'score'],
    ]);
  });
});

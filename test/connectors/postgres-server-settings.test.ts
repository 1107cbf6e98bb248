/**
 * PostgreSQL configured as real servers are, per database or per role, rather than as the test
 * server's defaults: as a source (either planner), a destination and the store.
 */
import { describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
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

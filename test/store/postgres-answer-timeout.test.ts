import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { Logger, StoreTopic } from '../../src/core/ports.js';
import { PostgresDatabase } from '../../src/store/postgres/postgres-database.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';
import { PartitionProxy } from '../helpers/partition-proxy.js';
import { LEASE } from './contracts/fixtures.js';

const T0 = 1_767_225_600_000;

async function rejection(promise: Promise<unknown>): Promise<LockstepError> {
  const outcome = await promise.then(
    () => new Error('expected a rejection'),
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(LockstepError);
  return outcome as LockstepError;
}

/** A new test database, and a proxy in front of its server; `direct` reaches the database without the proxy. */
async function behindProxy(): Promise<{ url: string; direct: string; proxy: PartitionProxy; password: string }> {
  const url = await createTestDatabase('lockstep_answer');
  const server = new URL(url);
  const proxy = await PartitionProxy.start(server.hostname, Number(server.port || 5432));
  return { url: proxy.url(url), direct: url, proxy, password: decodeURIComponent(server.password) };
}

function database(url: string, answerTimeoutMs: number): PostgresDatabase {
  return new PostgresDatabase({ url, schema: 'public', poolSize: 2, connectTimeoutMs: 2000, idleInTransactionMs: 30_000, statementTimeoutMs: 60_000, answerTimeoutMs });
}

describe('PostgreSQL store statements the network stops answering', () => {
  it('fail within the answer timeout, naming the store, and their connection is closed, not reused', async () => {
    const { url, proxy, password } = await behindProxy();
    await using _proxy = proxy;
    await using store = await PostgresStore.open({ url: `${url}?answer_timeout=0.5`, poolSize: 2, connectTimeoutMs: 2000 });
    expect(await store.renewLeases([1], T0, LEASE)).toEqual([]);

    proxy.partition();
    const started = Date.now();
    // A heartbeat's renewal: it must fail, so the worker logs it and its leases' end is noticed.
    const error = await rejection(store.renewLeases([1], T0 + 10_000, LEASE));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.retryable).toBe(true);
    const where = new URL(url);
    expect(error.message).toContain(`store PostgreSQL at 127.0.0.1:${proxy.port}${where.pathname}`);
    expect(error.message).toContain('(schema "lockstep")');
    expect(error.message).toMatch(/did not answer a statement within [\d.]+ s, and did not answer on a new connection either — check the network/);
    expect(error.message).toContain('answer_timeout');
    if (password) expect(error.message).not.toContain(password);

    // The connection that went silent was closed by the store, never to carry another statement.
    expect(proxy.silentCount()).toBeGreaterThan(0);
    await expect.poll(() => proxy.silentOpen(), { timeout: 2000 }).toBe(0);

    proxy.heal();
    expect(await store.renewLeases([1], T0 + 20_000, LEASE)).toEqual([]);
  }, 30_000);

  it('fail inside a transaction without waiting on its rollback, and the next transaction runs on a new connection', async () => {
    const { url, proxy } = await behindProxy();
    await using _proxy = proxy;
    const db = database(url, 400);
    try {
      const started = Date.now();
      const error = await rejection(
        db.transaction(async (q) => {
          await q.query('SELECT 1');
          proxy.partition();
          await q.query('SELECT 2');
        }),
      );
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(error.message).toMatch(/did not answer a statement within/);
      await expect.poll(() => proxy.silentOpen(), { timeout: 2000 }).toBe(0);

      proxy.heal();
      expect(await db.transaction(async (q) => (await q.query<{ n: number }>('SELECT 3 AS n')).rows)).toEqual([{ n: 3 }]);
      const batched = await rejectionOrValue(
        db.batchedTransaction(async (tx) => {
          await tx.batch('SELECT 1');
          proxy.partition();
          return tx.commitWith('SELECT 2');
        }),
      );
      expect(batched).toBeInstanceOf(LockstepError);
      expect((batched as Error).message).toMatch(/did not answer a statement within/);
    } finally {
      proxy.heal();
      await db.close();
    }
  }, 30_000);

  it('wait as long as the server is working on them: long store work is not cut short', async () => {
    const { url, proxy } = await behindProxy();
    await using _proxy = proxy;
    const db = database(url, 300);
    try {
      expect(await db.query('SELECT 1 AS n FROM pg_sleep(1.2)')).toEqual([{ n: 1 }]);
      const counted = await db.transaction(async (q) => {
        await q.query('CREATE TABLE many AS SELECT g AS n FROM generate_series(1, 10) AS g');
        await q.query('SELECT pg_sleep(1)');
        return (await q.query<{ count: number }>('SELECT count(*)::int AS count FROM many')).rows;
      });
      expect(counted).toEqual([{ count: 10 }]);
      const batched = await db.batchedTransaction(async (tx) => tx.commitWith('SELECT pg_sleep(1); SELECT 7 AS n'));
      expect(batched[1]?.rows).toEqual([{ n: 7 }]);
      expect(proxy.silentCount()).toBe(0);
    } finally {
      await db.close();
    }
  }, 30_000);

  it('on the notifications connection are noticed: it is dropped with one line naming the store, and listens again, hearing what it missed', async () => {
    const { url, direct, proxy } = await behindProxy();
    await using _proxy = proxy;
    const warnings: string[] = [];
    // A line as the JSON logger writes it: the message and its fields.
    const line = (message: string, fields?: Record<string, unknown>) => warnings.push(`${message} ${JSON.stringify(fields ?? {})}`);
    const logger: Logger = { debug() {}, info() {}, warn: line, error: line };
    await using store = await PostgresStore.open({ url: `${url}?answer_timeout=0.5`, poolSize: 2, connectTimeoutMs: 2000, logger });
    const listening = async () =>
      Number(
        (
          await sql<{ n: string }>(
            direct,
            "SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep notifications' AND query ILIKE 'LISTEN%'",
          )
        )[0]?.n,
      );
    const notify = (topic: StoreTopic) => sql(direct, 'SELECT pg_notify($1, $2)', ['lockstep_lockstep', topic]);
    const heard: StoreTopic[] = [];
    store.watch((topic) => heard.push(topic));
    await expect.poll(listening, { timeout: 5000 }).toBe(1);
    await notify('work');
    await expect.poll(() => heard, { timeout: 5000 }).toEqual(['work']);
    heard.length = 0;

    proxy.partition();
    const started = Date.now();
    await expect.poll(() => warnings.length, { timeout: 15_000 }).toBe(1);
    expect(Date.now() - started).toBeLessThan(12_000);
    const where = new URL(url);
    expect(warnings[0]).toContain(`store PostgreSQL at 127.0.0.1:${proxy.port}${where.pathname}`);
    expect(warnings[0]).toMatch(/notifications/);
    expect(warnings[0]).toMatch(/did not answer a statement within [\d.]+ s/);
    // The connection that went silent was closed by the store.
    expect(proxy.silentCount()).toBeGreaterThan(0);
    await expect.poll(() => proxy.silentOpen(), { timeout: 3000 }).toBe(0);

    // Work queued while nothing could be heard: once listening again, every topic is heard once.
    await notify('work');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(heard).toEqual([]);
    proxy.heal();
    await expect.poll(() => [...heard].sort(), { timeout: 10_000 }).toEqual(['cancel', 'finished', 'schema', 'work']);
    await expect.poll(listening, { timeout: 5000 }).toBe(1);
    heard.length = 0;
    await notify('finished');
    await expect.poll(() => heard, { timeout: 5000 }).toEqual(['finished']);
    // One line for the loss, none for each attempt to connect while the network was down.
    expect(warnings).toHaveLength(1);
  }, 40_000);

  it('let the store close within about the answer timeout: connections whose goodbye the server never answers are closed at once', async () => {
    const { url, direct, proxy } = await behindProxy();
    await using _proxy = proxy;
    // TCP sockets of this process but the proxy's: the store's, and those of any client left open.
    const ownSockets = () => process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length - proxy.liveSockets();
    const before = ownSockets();
    const store = await PostgresStore.open({ url: `${url}?answer_timeout=0.5`, poolSize: 2, connectTimeoutMs: 2000 });
    try {
      // A connection in the pool, and the notifications connection listening.
      expect(await store.renewLeases([1], T0, LEASE)).toEqual([]);
      store.watch(() => undefined);
      const listening = async () =>
        (await sql<{ n: number }>(direct, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep notifications'"))[0]?.n;
      await expect.poll(listening, { timeout: 5000 }).toBe(1);

      proxy.partition();
      const started = Date.now();
      const closed = await Promise.race([store.close().then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still closing after 15 s'), 15_000))]);
      expect(closed).toBe('closed');
      expect(Date.now() - started).toBeLessThan(10_000);
      // The goodbyes went unanswered (the proxy sees them a moment later), and the store closed
      // its sockets all the same: none is left open waiting for an answer, keeping the process up.
      await expect.poll(() => proxy.silentCount(), { timeout: 2000 }).toBeGreaterThan(0);
      await expect.poll(() => proxy.silentOpen(), { timeout: 2000 }).toBe(0);
      await expect.poll(ownSockets, { timeout: 2000 }).toBe(before);
    } finally {
      proxy.heal();
      await store.close();
    }
  }, 30_000);

  it('refuses an answer_timeout that is not a number of seconds, before connecting', async () => {
    const error = await rejection(PostgresStore.open({ url: 'postgres://lockstep:pw@127.0.0.1:1/store?answer_timeout=soon' }));
    expect(error.code).toBe(ErrorCode.Validation);
    expect(error.message).toContain(`the store URL's answer_timeout parameter is "soon", not a number of seconds above 0`);
  });
});

async function rejectionOrValue(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => value,
    (error: unknown) => error,
  );
}

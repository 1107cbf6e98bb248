import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { StoreTopic } from '../../src/core/ports.js';
import type { SyncRun } from '../../src/core/runs.js';
import type { NewWebhookEvent } from '../../src/core/webhooks.js';
import { PostgresDatabase } from '../../src/store/postgres/postgres-database.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/store/postgres/postgres-migrations.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createTestDatabase, refusesWrongPassword, sql } from '../helpers/postgres.js';
import { STORE_CONTRACTS } from './contracts/index.js';
import { LEASE, contractSecrets, crmWorkspace, type OpenStore } from './contracts/fixtures.js';
import { generateSecretKey } from '../../src/core/secrets.js';
import { StoreSecretKeys } from '../../src/store/secret-keys.js';

const T0 = 1_767_225_600_000.5;
const MANUAL = { type: 'manual', detail: null } as const;
const NO_OPTIONS = { fullResync: false, resetCDC: false };

// A fresh database per test: the contracts' tests never see each other's rows. Kept afterwards
// (see createTestDatabase), so a failure can be looked at.
const open: OpenStore = async () => {
  const url = await createTestDatabase('lockstep_store');
  const keys = new StoreSecretKeys({ store: 'the test database', key: { text: generateSecretKey(), source: 'LOCKSTEP_SECRET_KEY' }, keyFile: null });
  const store = await PostgresStore.open({ url, poolSize: 4, secrets: contractSecrets(keys) });
  return {
    store,
    keys,
    // Every row of every table of the store's schema, as text.
    raw: async () => {
      const tables = await sql<{ name: string }>(url, "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'lockstep' ORDER BY 1");
      const dumps = await Promise.all(tables.map(({ name }) => sql<{ text: string | null }>(url, `SELECT string_agg(t::text, E'\\n') AS text FROM lockstep."${name}" AS t`)));
      return dumps.map((rows) => rows[0]?.text ?? '').join('\n');
    },
    reopen: (secrets) => PostgresStore.open({ url, poolSize: 2, secrets }),
    cleanup: () => store.close(),
  };
};

for (const describeContract of STORE_CONTRACTS) describeContract('postgres', open);

async function rejection(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

describe('PostgresStore on a shared database', () => {
  it('migrates once when several stores open one new database at once, into its own schema', async () => {
    const url = await createTestDatabase('lockstep_migrate');
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open({ url, schema: 'ls', poolSize: 2 })));
    try {
      // One store applied every migration; the others found them applied.
      // Versions are reserved per feature, so the list may have gaps.
      const all = MIGRATIONS.map((m) => m.version).sort((a, b) => a - b);
      expect(stores.map((s) => s.migrationsApplied.length).sort()).toEqual([0, 0, 0, all.length]);
      const versions = await sql<{ version: number }>(url, 'SELECT version FROM ls.schema_migrations ORDER BY version');
      expect(versions.map((v) => v.version)).toEqual(all);
      const outside = await sql<{ n: string }>(url, "SELECT count(*)::text AS n FROM pg_tables WHERE schemaname = 'public'");
      expect(outside[0]?.n).toBe('0');
      // Another installation on the same database has a schema of its own.
      await using other = await PostgresStore.open({ url });
      expect(other.migrationsApplied).toEqual(all);
      await stores[0]!.applyWorkspace(crmWorkspace(), T0);
      expect((await other.loadWorkspace()).syncs).toEqual([]);
      expect((await stores[3]!.loadWorkspace()).syncs).toHaveLength(3);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('refuses a schema written by a newer Lockstep, naming the database and both versions', async () => {
    const url = await createTestDatabase('lockstep_newer');
    await (await PostgresStore.open({ url })).close();
    await sql(url, 'INSERT INTO lockstep.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [SCHEMA_VERSION + 1, 'future', T0]);
    const error = await rejection(PostgresStore.open({ url }));
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.message).toContain(new URL(url).pathname.slice(1));
    expect(error.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(error.message).toContain(`(${SCHEMA_VERSION})`);
    expect(error.message).toMatch(/upgrade Lockstep/);
  });

  it('lets exactly one of two stores claim a queued run, and holds a sync for both', async () => {
    const url = await createTestDatabase('lockstep_claim');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    await a.applyWorkspace(crmWorkspace(), T0);
    const sync = (await b.getSync('accounts-to-crm'))!;
    for (let round = 0; round < 20; round++) {
      const { run } = await a.enqueueSyncRun({ syncId: sync.id, trigger: MANUAL, options: NO_OPTIONS }, T0 + round);
      const claims = await Promise.all([a.claimSyncRun(run.id, T0 + round, LEASE), b.claimSyncRun(run.id, T0 + round, LEASE), a.claimSyncRun(run.id, T0 + round, LEASE)]);
      expect(claims.filter((c) => c !== null)).toHaveLength(1);
      await b.updateSyncRun(run.id, { status: 'success' }, T0 + round + 0.5);
    }
    // Two different runs of one sync (a member run and a standalone one), claimed at once from two
    // stores: never two active.
    const { run: seqRun } = await a.enqueueSequenceRun((await a.getSequence('crm-hierarchy'))!, MANUAL, T0);
    expect(await b.claimSequenceRun(seqRun.id, T0)).not.toBeNull();
    const [member] = await a.startMembers(seqRun.id, [{ key: 'accounts-to-crm', syncId: sync.id }], T0);
    const { run: standalone } = await b.enqueueSyncRun({ syncId: sync.id, trigger: MANUAL, options: NO_OPTIONS }, T0);
    const both = await Promise.all([a.claimSyncRun(member!.id, T0 + 100, LEASE), b.claimSyncRun(standalone.id, T0 + 100, LEASE)]);
    expect(both.filter((c) => c !== null)).toHaveLength(1);
    const active = await a.listSyncRuns({ syncId: sync.id, statuses: ['querying'], limit: 10, offset: 0, order: 'asc' });
    expect(active).toHaveLength(1);
  });

  it('shares one queued follow-up between triggers racing from two stores, and one pending sequence run', async () => {
    const url = await createTestDatabase('lockstep_enqueue');
    await using a = await PostgresStore.open({ url, poolSize: 8 });
    await using b = await PostgresStore.open({ url, poolSize: 8 });
    await a.applyWorkspace(crmWorkspace(), T0);
    const sync = (await a.getSync('deals-to-crm'))!;
    const triggers = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        (i % 2 === 0 ? a : b).enqueueSyncRun({ syncId: sync.id, trigger: MANUAL, options: { fullResync: i === 7, resetCDC: false } }, T0 + i),
      ),
    );
    expect(new Set(triggers.map((t) => t.run.id)).size).toBe(1);
    expect(triggers.filter((t) => t.created)).toHaveLength(1);
    expect((await a.getSyncRun(triggers[0]!.run.id))?.options.fullResync).toBe(true);

    const sequence = (await a.getSequence('crm-graph'))!;
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).enqueueSequenceRun(sequence, MANUAL, T0 + i)));
    expect(new Set(runs.map((r) => r.run.id)).size).toBe(1);
    expect(runs.filter((r) => r.created)).toHaveLength(1);
    const claims = await Promise.all([a.claimSequenceRun(runs[0]!.run.id, T0), b.claimSequenceRun(runs[0]!.run.id, T0)]);
    expect(claims.filter((c) => c !== null)).toHaveLength(1);
  });

  it('records a firing once across stores racing for it, with its run queued once', async () => {
    const url = await createTestDatabase('lockstep_firing');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    await a.applyWorkspace(crmWorkspace(), T0);
    const sync = (await a.getSync('deals-to-crm'))!;
    // Two schedulers fire the same due times, in opposite orders: each key is recorded by one of
    // them, and every firing joins the one run queued.
    const keys = Array.from({ length: 20 }, (_, i) => `sync:deals-to-crm@${T0 + i}`);
    const fire = (store: PostgresStore, key: string) =>
      store.enqueueFiredRun(key, { kind: 'sync', run: { syncId: sync.id, trigger: { type: 'schedule', detail: key }, options: NO_OPTIONS } }, T0);
    const fired = (await Promise.all([...keys.map((k) => fire(a, k)), ...[...keys].reverse().map((k) => fire(b, k))])).filter((f) => f !== null);
    expect(fired).toHaveLength(keys.length);
    expect(new Set(fired.map((f) => f.runId)).size).toBe(1);
    expect(fired.filter((f) => f.created)).toHaveLength(1);
    const single = await Promise.all([a.schedules.recordFiring('sequence:1@0', T0), b.schedules.recordFiring('sequence:1@0', T0)]);
    expect(single.filter(Boolean)).toHaveLength(1);
  });

  it('reports an unreachable server as a store error naming host and database, never the password', async () => {
    const secret = 'pa55-w0rd-n0t-sh0wn';
    const error = await rejection(PostgresStore.open({ url: `postgres://lockstep:${secret}@127.0.0.1:1/warehouse_store`, connectTimeoutMs: 2000 }));
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.message).toContain('127.0.0.1:1/warehouse_store');
    expect(error.message).toMatch(/check that the server is running/);
    expect(error.message).not.toContain(secret);
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain(secret);
  });

  it('reports a wrong password and a missing database with the fix, never the password', async (ctx) => {
    const url = new URL(await createTestDatabase('lockstep_auth'));
    if (!(await refusesWrongPassword(url.toString()))) ctx.skip('the configured server accepts any password');
    url.password = 'wrong-secret-value';
    const auth = await rejection(PostgresStore.open({ url: url.toString() }));
    expect(auth.code).toBe(ErrorCode.Store);
    expect(auth.message).toContain(`${url.hostname}:${url.port}${url.pathname}`);
    expect(auth.message).toMatch(/check the user name and password/);
    expect(auth.message).not.toContain('wrong-secret-value');

    const missing = new URL(await createTestDatabase('lockstep_auth'));
    missing.pathname = '/no_such_database';
    const notThere = await rejection(PostgresStore.open({ url: missing.toString() }));
    expect(notThere.message).toContain('no_such_database');
    expect(notThere.message).toMatch(/check the database name/);
  });

  it('reports a server that takes no TLS, asked for it by the store URL, with the sslmode to change', async () => {
    // The test servers run without ssl, so sslmode=require is refused as soon as a connection opens.
    const url = new URL(await createTestDatabase('lockstep_tls'));
    url.searchParams.set('sslmode', 'require');
    // Opening connects first; asking whether the store exists (what `lockstep runs` does first) connects with its statement.
    // One at a time: both started at once, the second would fail before anything awaited it.
    for (const attempt of [() => PostgresStore.open({ url: url.toString() }), () => PostgresStore.exists({ url: url.toString() })]) {
      const error = await rejection(attempt());
      expect(error.code).toBe(ErrorCode.Store);
      expect(error.message).toContain(`${url.hostname}:${url.port}${url.pathname}`);
      expect(error.message).toContain('does not support SSL');
      expect(error.message).toContain('remove sslmode from the store URL (or set sslmode=disable), or turn ssl on in the server');
      if (url.password) expect(error.message).not.toContain(url.password);
    }
  });

  it('runs a transaction PostgreSQL aborted as a deadlock victim again, so both deadlocked writers commit', async () => {
    const url = await createTestDatabase('lockstep_deadlock');
    await sql(url, 'CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES (1, 0), (2, 0)');
    const db = new PostgresDatabase({ url, schema: 'public', poolSize: 4, connectTimeoutMs: 5000, idleInTransactionMs: 30_000, statementTimeoutMs: 60_000, answerTimeoutMs: 10_000 });
    try {
      let attempts = 0;
      let arrived = 0;
      let release!: () => void;
      const bothLocked = new Promise<void>((resolve) => (release = resolve));
      // Each locks one row, waits until the other holds the other row, then asks for it: a deadlock
      // PostgreSQL breaks by aborting one; that one runs again (the barrier is open by then).
      const writer = (first: number, second: number) =>
        db.transaction(async (q) => {
          attempts++;
          await q.query('UPDATE counters SET n = n + 1 WHERE id = $1', [first]);
          if (++arrived === 2) release();
          await bothLocked;
          await q.query('UPDATE counters SET n = n + 1 WHERE id = $1', [second]);
        });
      await Promise.all([writer(1, 2), writer(2, 1)]);
      // At least one victim ran again (on a loaded server a retry may meet the other writer again).
      expect(attempts).toBeGreaterThanOrEqual(3);
      expect(await sql(url, 'SELECT id, n FROM counters ORDER BY id')).toEqual([
        { id: 1, n: 2 },
        { id: 2, n: 2 },
      ]);
    } finally {
      await db.close();
    }
  });

  it('waits out "too many connections" and sessions the server ends, so a run holding a lease goes on', async () => {
    const url = await createTestDatabase('lockstep_busy');
    await using admin = await PostgresStore.open({ url, poolSize: 2 });
    await admin.applyWorkspace(crmWorkspace(), T0);
    // A role allowed two connections: the store's pool of two, and nothing beside it.
    const role = `lockstep_busy_${Math.random().toString(36).slice(2, 10)}`;
    await sql(
      url,
      `CREATE ROLE ${role} LOGIN PASSWORD 'busy' CONNECTION LIMIT 2;
       GRANT ALL ON SCHEMA lockstep TO ${role};
       GRANT ALL ON ALL TABLES IN SCHEMA lockstep TO ${role};
       GRANT ALL ON ALL SEQUENCES IN SCHEMA lockstep TO ${role}`,
    );
    const limited = new URL(url);
    limited.username = role;
    limited.password = 'busy';
    await using store = await PostgresStore.open({ url: limited.toString(), poolSize: 2 });
    const sync = (await store.getSync('accounts-to-crm'))!;
    const { run } = await store.enqueueSyncRun({ syncId: sync.id, trigger: MANUAL, options: NO_OPTIONS }, T0);
    const claimed = await store.claimSyncRun(run.id, T0, LEASE);
    expect(claimed?.attempt).toBe(1);

    // Both connections the role may open are taken by others: the server answers SQLSTATE 53300.
    await sql(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`);
    const others = [new pg.Client({ connectionString: limited.toString() }), new pg.Client({ connectionString: limited.toString() })];
    for (const other of others) await other.connect();
    const update = store.updateSyncRun(run.id, { status: 'processing', querySize: 3 }, T0 + 1, 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await others[0]!.end();
    expect((await update).status).toBe('processing');
    await others[1]!.end();

    // The server ends the store's sessions between statements: the next ones run on new ones.
    await sql(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`);
    const ended = await store.updateSyncRun(run.id, { status: 'success' }, T0 + 2, 1);
    expect(ended.status).toBe('success');
    expect(await admin.takeFinishedRuns(10, T0 + 3, LEASE)).toHaveLength(1);
    // Fencing holds as before: a write of an attempt that no longer holds the run is refused.
    await expect(store.updateSyncRun(run.id, { status: 'failed' }, T0 + 4, 2)).rejects.toMatchObject({ code: ErrorCode.LeaseLost });
  });

  it("runs its statements under a statement timeout of its own: a role's low statement_timeout fails none of them", async () => {
    const url = await createTestDatabase('lockstep_role_timeout');
    const role = `lockstep_timeout_${Math.random().toString(36).slice(2, 10)}`;
    await sql(url, `CREATE ROLE ${role} LOGIN PASSWORD 'timeout'; ALTER ROLE ${role} SET statement_timeout = '100ms'; ALTER DATABASE "${new URL(url).pathname.slice(1)}" OWNER TO ${role}`);
    const asRole = new URL(url);
    asRole.username = role;
    asRole.password = 'timeout';
    // The role's setting holds on its sessions.
    expect(await sql(asRole.toString(), "SELECT current_setting('statement_timeout') AS timeout")).toEqual([{ timeout: '100ms' }]);
    await using store = await PostgresStore.open({ url: asRole.toString(), poolSize: 2 });
    await store.applyWorkspace(crmWorkspace(), T0);
    // Another session holds the table of syncs for a second: the store's read waits for it, then answers.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE lockstep.syncs IN ACCESS EXCLUSIVE MODE');
      const read = store.getSync('accounts-to-crm');
      read.catch(() => undefined); // awaited below
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await holder.query('COMMIT');
      expect((await read)?.slug).toBe('accounts-to-crm');
    } finally {
      await holder.end();
    }
  });

  it('ends a store statement stalled on a lock past its own statement timeout when the role sets none, saying what to look for', async () => {
    const url = await createTestDatabase('lockstep_stalled');
    await using store = await PostgresStore.open({ url, poolSize: 2, statementTimeoutMs: 500 });
    await store.applyWorkspace(crmWorkspace(), T0);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE lockstep.syncs IN ACCESS EXCLUSIVE MODE');
      const error = await rejection(store.getSync('accounts-to-crm'));
      expect(error.code).toBe(ErrorCode.Store);
      expect(error.message).toMatch(
        /^store PostgreSQL at .* \(schema "lockstep"\): .* \(SQLSTATE 57014\) — the store's statements may run for 500 ms \(its statement_timeout, whatever the database or role sets\): look for a session holding locks on the store's tables for long/,
      );
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('reports use after close as a store error', async () => {
    const store = await PostgresStore.open({ url: await createTestDatabase('lockstep_closed') });
    await store.close();
    await store.close();
    const error = await rejection(store.getSync(1));
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.message).toMatch(/closed/);
  });

  it('keeps keys, reasons and errors holding NUL and U+0001 exactly, and pages them in key order', async () => {
    await using store = await PostgresStore.open({ url: await createTestDatabase('lockstep_nul') });
    await store.applyWorkspace(crmWorkspace(), T0);
    const syncId = (await store.getSync('accounts-to-crm'))!.id;
    const keys = ['a', 'a\u0000', 'a\u0000b', 'a\u0001', 'a\u0001\u0000', 'a\u0002', 'b\n1', ''];
    await store.snapshots.write(syncId, keys.map((k, i): [string, string] => [k, i.toString(16).padStart(16, '0')]), []);
    const read = await store.snapshots.get(syncId, keys);
    expect([...read.keys()].sort()).toEqual([...keys].sort());
    const batches: string[] = [];
    for await (const batch of store.snapshots.keys(syncId, 3)) batches.push(...batch);
    expect(batches).toEqual([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
    await store.snapshots.recordIdsWrite(syncId, [['k\u0000', 'id\u0001'], ['plain', '7']], []);
    expect(Object.fromEntries(await store.snapshots.recordIdsGet(syncId, ['k\u0000', 'plain', 'none']))).toEqual({ 'k\u0000': 'id\u0001', plain: '7' });

    const { run } = await store.enqueueSyncRun({ syncId, trigger: { type: 'api', detail: 'x\u0000y' }, options: NO_OPTIONS }, T0);
    await store.claimSyncRun(run.id, T0, LEASE);
    await store.addRejectedRows([{ syncRunId: run.id, key: '[1]', op: 'added', reason: 'bad byte \u0000 here' }]);
    expect((await store.listRejectedRows(run.id, 10, 0))[0]?.reason).toBe('bad byte \u0000 here');
    const failed = await store.updateSyncRun(run.id, { status: 'failed', error: 'garbage \u0000\u0001' }, T0 + 1);
    expect(failed).toMatchObject({ error: 'garbage \u0000\u0001', trigger: { detail: 'x\u0000y' } });
  });

  it('upserts a key given twice in one snapshot write with its last hash', async () => {
    await using store = await PostgresStore.open({ url: await createTestDatabase('lockstep_twice') });
    await store.applyWorkspace(crmWorkspace(), T0);
    const syncId = (await store.getSync('accounts-to-crm'))!.id;
    await store.snapshots.write(syncId, { keys: ['[1]', '[2]', '[1]'], hashes: new Uint32Array([1, 1, 2, 2, 3, 3]) }, []);
    expect(Object.fromEntries(await store.snapshots.get(syncId, ['[1]', '[2]']))).toEqual({ '[1]': '0000000300000003', '[2]': '0000000200000002' });
    await store.snapshots.recordIdsWrite(syncId, [['[1]', 'a'], ['[1]', 'b']], []);
    expect((await store.snapshots.recordIdsGet(syncId, ['[1]'])).get('[1]')).toBe('b');
  });
});

describe('PostgresStore alerts, webhooks and tokens with several processes', () => {
  it('queues a raised alert once when two stores record the same outcome at once', async () => {
    const url = await createTestDatabase('lockstep_alerts');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    const outcome = { rule: 'r', subject: { kind: 'sync', slug: 'accounts-to-crm' }, condition: 'failed', raised: true, runId: '1', now: T0 } as const;
    const notice = (change: string) => [{ channel: 'ops', notice: { title: change } as never }];
    const results = await Promise.all([a.alerts.recordOutcome(outcome, notice), b.alerts.recordOutcome(outcome, notice)]);
    expect(results.map((r) => r.change).sort()).toEqual(['none', 'raise']);
    expect(results.flatMap((r) => r.deliveries)).toHaveLength(1);
    expect(await a.alerts.listStates()).toEqual([{ rule: 'r', subject: outcome.subject, condition: 'failed', raised: true, since: T0, runId: '1' }]);
    const cleared = await b.alerts.recordOutcome({ ...outcome, raised: false, runId: '2', now: T0 + 1 }, notice);
    expect(cleared.change).toBe('clear');
    expect((await a.alerts.listStates())[0]).toMatchObject({ raised: false, since: T0 + 1, runId: '2' });
    const again = await a.alerts.recordOutcome({ ...outcome, raised: false, runId: '3', now: T0 + 2 }, notice);
    expect(again).toEqual({ change: 'none', deliveries: [] });
    expect((await a.alerts.listStates())[0]).toMatchObject({ since: T0 + 1, runId: '3' });
  });

  it('claims each due delivery once across stores, in due order, and records outcomes', async () => {
    const url = await createTestDatabase('lockstep_deliveries');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    const made = await a.alerts.enqueueDeliveries(
      Array.from({ length: 30 }, (_, i) => ({ channel: `c${i % 3}`, notice: { title: `n${i}` } as never })),
      T0,
    );
    expect(made.map((d) => d.id)).toEqual([...made.map((d) => d.id)].sort((x, y) => x - y));
    await b.alerts.enqueueDeliveries([{ channel: 'later', notice: { title: 'later' } as never }], T0, T0 + 60_000);
    expect(await a.alerts.nextDeliveryAt()).toBe(T0);
    const [fromA, fromB] = await Promise.all([a.alerts.claimDueDeliveries(T0 + 1, 20, 1000), b.alerts.claimDueDeliveries(T0 + 1, 20, 1000)]);
    const claimed = [...fromA, ...fromB];
    expect(claimed).toHaveLength(30);
    expect(new Set(claimed.map((d) => d.id)).size).toBe(30);
    expect(claimed.every((d) => d.attempts === 1 && d.nextAttemptAt === T0 + 1001)).toBe(true);
    expect(fromA.map((d) => d.id)).toEqual([...fromA.map((d) => d.id)].sort((x, y) => x - y));
    expect(await a.alerts.claimDueDeliveries(T0 + 2, 100, 1000)).toEqual([]);

    await a.alerts.markDeliverySent(claimed[0]!.id, T0 + 3);
    await a.alerts.markDeliveryFailed(claimed[1]!.id, 'HTTP 500', T0 + 5000);
    await a.alerts.markDeliveryFailed(claimed[2]!.id, 'HTTP 404 \u0000', null);
    expect((await a.alerts.listDeliveries({ status: 'sent', limit: 10, offset: 0 })).map((d) => d.id)).toEqual([claimed[0]!.id]);
    expect(await a.alerts.listDeliveries({ status: 'failed', limit: 10, offset: 0 })).toMatchObject([{ id: claimed[2]!.id, lastError: 'HTTP 404 \u0000' }]);
    expect((await a.alerts.listDeliveries({ failedAttempt: true, limit: 10, offset: 0 })).map((d) => d.id)).toEqual([claimed[2]!.id, claimed[1]!.id]);
    expect((await a.alerts.listDeliveries({ channel: 'later', limit: 10, offset: 0 })).map((d) => d.channel)).toEqual(['later']);
  });

  it('records the same webhook event racing from two stores once, the other as its duplicate', async () => {
    const url = await createTestDatabase('lockstep_webhooks');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    const event: NewWebhookEvent = {
      source: 'dbt_cloud',
      receivedAt: T0,
      eventId: 'evt-1',
      eventType: 'job.run.completed',
      outcome: 'accepted',
      reason: 'started crm',
      httpStatus: 200,
      triggered: [{ kind: 'sequence', slug: 'crm', runId: 'r1' }],
      payloadExcerpt: '{"x":1}',
    };
    const results = await Promise.all([a.webhooks.record(event), b.webhooks.record(event)]);
    expect(results.map((r) => r.duplicate).sort()).toEqual([false, true]);
    const duplicate = results.find((r) => r.duplicate)!.event;
    const first = results.find((r) => !r.duplicate)!.event;
    expect(duplicate).toMatchObject({ outcome: 'duplicate', reason: `event evt-1 was already received (delivery ${first.id}); nothing started again` });
    const listed = await b.webhooks.list({ limit: 10, offset: 0 });
    expect(listed.map((e) => e.id)).toEqual([duplicate.id, first.id].sort((x, y) => y - x));
    expect(listed.find((e) => e.id === first.id)).toMatchObject({ triggered: [{ kind: 'sequence', slug: 'crm', runId: 'r1' }], reason: 'started crm' });
    expect(await a.webhooks.list({ source: 'fivetran', limit: 10, offset: 0 })).toEqual([]);
    const garbage = await a.webhooks.record({ ...event, eventId: null, outcome: 'rejected', payloadExcerpt: 'bin\u0000ary'.repeat(500) });
    expect(garbage.event.payloadExcerpt).toBe('bin\u0000ary'.repeat(500).slice(0, 2000));
  });

  it('creates a token name once when two stores race for it', async () => {
    const url = await createTestDatabase('lockstep_tokens');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    const results = await Promise.allSettled([a.tokens.create('ci', 'a'.repeat(64), T0), b.tokens.create('ci', 'b'.repeat(64), T0)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.Conflict });
  });
});

describe('PostgresStore leases and notifications with several processes', () => {
  it('hands each of 50 runs to exactly one of four workers in two processes claiming at once, and again when their leases end', async () => {
    const url = await createTestDatabase('lockstep_claim_next');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    const workspace = crmWorkspace();
    const base = workspace.syncs[0]!;
    workspace.syncs.push(...Array.from({ length: 50 }, (_, i) => ({ ...base, slug: `s${i}-to-crm`, object: `s${i}` })));
    await a.applyWorkspace(workspace, T0);
    const syncs = (await a.loadWorkspace()).syncs.filter((s) => /^s\d+-to-crm$/.test(s.slug));
    const queued: number[] = [];
    for (const sync of syncs) queued.push((await a.enqueueSyncRun({ syncId: sync.id, trigger: MANUAL, options: NO_OPTIONS }, T0)).run.id);
    const leaseMs = 60_000;

    const race = async (now: number) => {
      const claimed: Array<{ workerId: string; run: SyncRun }> = [];
      const loop = async (store: PostgresStore, workerId: string) => {
        for (let run = await store.claimNextSyncRun(now, { workerId, leaseMs }); run; run = await store.claimNextSyncRun(now, { workerId, leaseMs })) {
          claimed.push({ workerId, run });
        }
      };
      await Promise.all([loop(a, 'a/1'), loop(a, 'a/2'), loop(b, 'b/1'), loop(b, 'b/2')]);
      expect(claimed.map((c) => c.run.id).sort((x, y) => x - y)).toEqual(queued);
      expect(claimed.every((c) => c.run.workerId === c.workerId && c.run.leaseExpiresAt === now + leaseMs)).toBe(true);
      const leases = await b.listLeases();
      expect(leases.map((l) => l.runId)).toEqual(queued);
      const holder = new Map(claimed.map((c) => [c.run.id, c.workerId]));
      expect(leases.every((l) => l.workerId === holder.get(l.runId))).toBe(true);
      return claimed;
    };
    const first = await race(T0 + 1);
    expect(first.every((c) => c.run.attempt === 1)).toBe(true);
    // Every lease ends at once (all four workers froze): each run is taken over once more.
    const second = await race(T0 + 1 + leaseMs);
    expect(second.every((c) => c.run.attempt === 2)).toBe(true);
  });

  it('settles a takeover racing a late write of the old attempt: the write commits before it, or is refused after it', async () => {
    const url = await createTestDatabase('lockstep_fence_race');
    await using a = await PostgresStore.open({ url, poolSize: 4 });
    await using b = await PostgresStore.open({ url, poolSize: 4 });
    await a.applyWorkspace(crmWorkspace(), T0);
    const syncId = (await a.getSync('accounts-to-crm'))!.id;
    const lease = (workerId: string) => ({ workerId, leaseMs: 1_000 });
    const { run } = await a.enqueueSyncRun({ syncId, trigger: MANUAL, options: NO_OPTIONS }, T0);
    await a.claimSyncRun(run.id, T0, lease('a'));
    for (let attempt = 1; attempt <= 20; attempt++) {
      const now = T0 + attempt * 1_000;
      const key = `[${attempt}]`;
      const [write, takeover] = await Promise.allSettled([
        a.snapshots.write(syncId, [[key, '00000000000000aa']], [], { runId: run.id, attempt }),
        b.claimSyncRun(run.id, now, lease(`w${attempt + 1}`)),
      ]);
      expect(takeover).toMatchObject({ status: 'fulfilled', value: { attempt: attempt + 1 } });
      const written = (await a.snapshots.get(syncId, [key])).has(key);
      if (write.status === 'rejected') {
        expect(write.reason).toMatchObject({ code: ErrorCode.LeaseLost });
        expect(written).toBe(false);
      } else {
        expect(written).toBe(true);
      }
    }
  });

  it('tells watchers in other processes of queued work and finished runs, and hears again after losing its connection', async () => {
    const url = await createTestDatabase('lockstep_notify');
    await using a = await PostgresStore.open({ url, poolSize: 2 });
    await using b = await PostgresStore.open({ url, poolSize: 2 });
    expect(a.capabilities.notifications).toBe(true);
    await a.applyWorkspace(crmWorkspace(), T0);
    const listening = async () =>
      Number(
        (
          await sql<{ n: string }>(
            url,
            "SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep notifications' AND query ILIKE 'LISTEN%'",
          )
        )[0]?.n,
      );
    const heard: StoreTopic[] = [];
    const stop = a.watch((topic) => heard.push(topic));
    // A listener that throws changes nothing for the others.
    const stopFaulty = a.watch(() => {
      throw new Error('listener bug');
    });
    await eventually(async () => expect(await listening()).toBe(1));

    const syncId = (await b.getSync('accounts-to-crm'))!.id;
    const { run } = await b.enqueueSyncRun({ syncId, trigger: MANUAL, options: NO_OPTIONS }, T0);
    await eventually(() => expect(heard).toEqual(['work']));
    heard.length = 0;
    await b.claimSyncRun(run.id, T0, LEASE);
    // A cancel of a run a worker holds is heard by that worker, which stops the run at once.
    await b.requestSyncRunCancel(run.id, T0);
    await eventually(() => expect(heard).toEqual(['cancel']));
    heard.length = 0;
    await b.updateSyncRun(run.id, { status: 'success' }, T0 + 1, 1);
    await eventually(() => expect([...heard].sort()).toEqual(['finished', 'work']));

    // The server drops the connection: it comes back, and every topic is heard once for what was missed.
    heard.length = 0;
    await sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep notifications'");
    await eventually(() => expect([...heard].sort()).toEqual(['cancel', 'finished', 'schema', 'work']));
    await eventually(async () => expect(await listening()).toBe(1));
    heard.length = 0;
    await b.enqueueSequenceRun((await b.getSequence('crm-hierarchy'))!, MANUAL, T0 + 2);
    await eventually(() => expect(heard).toEqual(['work']));

    // The connection is held only while someone listens.
    stopFaulty();
    expect(await listening()).toBe(1);
    stop();
    await eventually(async () => expect(await listening()).toBe(0));
    a.watch(() => undefined);
    await eventually(async () => expect(await listening()).toBe(1));
    await a.close();
    await eventually(async () => expect(await listening()).toBe(0));
  });
});

/** Retries `check` until it passes or `timeoutMs` passed (then its last failure is thrown). */
async function eventually(check: () => unknown, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * `lockstep store migrate --to postgres://...`: an embedded store filled by the real app (apply, a
 * sync run with rejected rows, a sequence run, a token, alerts, webhooks, schedules) is copied into
 * a fresh PostgreSQL database and read back through the PostgreSQL store's own methods; the next
 * incremental runs on PostgreSQL send nothing. Secrets stay sealed, with the embedded store's key
 * or LOCKSTEP_SECRET_KEY's. Then the refusals, and a failure half-way that leaves the target as it was.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { copyStoreToPostgres } from '../../src/app.js';
import type { CopyProgress } from '../../src/store/copy-to-postgres.js';
import { SecretCodec, sealedKeyIds } from '../../src/core/secrets.js';
import { hashToken } from '../../src/core/tokens.js';
import type { Store } from '../../src/core/ports.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { StoreSecretKeys, type KeyText } from '../../src/store/secret-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { enqueueWork, hierarchyWorkspace, killChildren, runMain } from '../cli/cli-helpers.js';
import { sqlite } from '../helpers/harness.js';
import { PartitionProxy } from '../helpers/partition-proxy.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

afterEach(async () => {
  vi.unstubAllEnvs();
  await killChildren();
});

const T0 = 1_767_225_600_000.25;
/** A sync id no sync has: snapshot rows the runs never read, with keys and hashes of every kind. */
const LOOSE_SYNC = 999;
const LOOSE_ROWS = 120_000;
const ODD_KEYS: Array<[string, string]> = [
  ['nul \u0000 and soh \u0001 inside', 'cafe0123456789ab'],
  ['tab\tnewline\nreturn\rbackslash\\', 'not hex: an older base64 hash=='],
  ['["é", "日本"]', 'ABCDEF0123456789'],
  ['', '00'],
];

/** The hierarchy workspace with alerts and a webhook endpoint, applied, after a sync run, a sequence run and a token. */
async function filledWorkspace(): Promise<{ dir: string; token: string }> {
  const dir = hierarchyWorkspace();
  appendFileSync(
    join(dir, 'lockstep.yaml'),
    [
      'alerts:',
      '  channels:',
      // Nothing listens there: the notice stays in the outbox, pending its next attempt.
      '    hooks: { type: webhook, url: "http://127.0.0.1:9/hook", secret: s3cret }',
      '  rules:',
      '    - { syncs: [contacts-to-crm], on: [rejected_rows, recovered], channels: [hooks] }',
      'webhooks:',
      '  dbtCloud: { secret: dbt-s3cret }',
      '',
    ].join('\n'),
  );
  for (const args of [['apply'], ['sync', 'run', 'contacts-to-crm'], ['sequence', 'run', 'crm']]) {
    const result = await runMain(['--workspace', dir, ...args]);
    expect(result.code, result.stderr).toBe(0);
  }
  const created = await runMain(['--workspace', dir, 'token', 'create', '--name', 'airflow']);
  expect(created.code, created.stderr).toBe(0);

  // What the CLI does not reach, through the store's own methods.
  const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
  try {
    await store.webhooks.record({
      source: 'dbt_cloud',
      receivedAt: T0,
      eventId: 'evt-1',
      eventType: 'job.run.completed',
      outcome: 'accepted',
      reason: 'started sequence crm',
      httpStatus: 200,
      triggered: [{ kind: 'sequence', slug: 'crm', runId: 'r-1' }],
      payloadExcerpt: '{"eventId":"evt-1"}',
    });
    expect(await store.schedules.recordFiring('sync:accounts-to-crm@1767225600000', T0)).toBe(true);
    expect(await store.schedules.recordFiring('sequence:crm@1767225600000', T0)).toBe(true);
    await store.schedules.setScheduleCursor('sequence:crm', T0 + 60_000);
    await store.snapshots.recordIdsWrite(1, [['[1]', 'crm-account-1'], ['[2]', 'crm-account-2']], []);
    const many = Array.from({ length: LOOSE_ROWS }, (_, i): [string, string] => [`key-${String(i).padStart(7, '0')}`, (i * 2654435761).toString(16).padStart(16, '0').slice(-16)]);
    await store.snapshots.write(LOOSE_SYNC, [...many, ...ODD_KEYS], []);
  } finally {
    await store.close();
  }
  return { dir, token: created.stdout.trim() };
}

/** Everything the two stores should give back alike, read through the Store port. */
async function contents(store: Store) {
  const workspace = await store.loadWorkspace();
  const syncRuns = await store.listSyncRuns({ limit: 100, offset: 0, order: 'asc' });
  const sequenceRuns = await store.listSequenceRuns({ limit: 100, offset: 0, order: 'asc' });
  const snapshots: Record<string, unknown> = {};
  for (const sync of workspace.syncs) {
    const keys: string[] = [];
    for await (const page of store.snapshots.keys(sync.id, 1000)) keys.push(...page);
    snapshots[sync.slug] = { count: await store.snapshots.count(sync.id), rows: Object.fromEntries(await store.snapshots.get(sync.id, keys)) };
  }
  return {
    workspace,
    syncRuns,
    sequenceRuns: await Promise.all(sequenceRuns.map((run) => store.getSequenceRun(run.id))),
    rejectedRows: await Promise.all(syncRuns.map((run) => store.listRejectedRows(run.id, 100, 0))),
    snapshots,
    loose: {
      count: await store.snapshots.count(LOOSE_SYNC),
      odd: Object.fromEntries(await store.snapshots.get(LOOSE_SYNC, ODD_KEYS.map(([key]) => key))),
      some: Object.fromEntries(await store.snapshots.get(LOOSE_SYNC, ['key-0000000', 'key-0065535', `key-${LOOSE_ROWS - 1}`])),
    },
    recordIds: Object.fromEntries(await store.snapshots.recordIdsGet(1, ['[1]', '[2]', '[3]'])),
    scheduleCursor: await store.schedules.getScheduleCursor('sequence:crm'),
    tokens: await store.tokens.list(),
    alerts: {
      definition: await store.alerts.getDefinition(),
      states: await store.alerts.listStates(),
      deliveries: await store.alerts.listDeliveries({ limit: 100, offset: 0 }),
    },
    webhookEvents: await store.webhooks.list({ limit: 100, offset: 0 }),
  };
}

async function sqliteContents(dir: string) {
  const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
  try {
    return await contents(store);
  } finally {
    await store.close();
  }
}

/** The embedded store's key file, as LOCKSTEP_SECRET_KEY would give it. */
function keyFileKey(dir: string): KeyText {
  return { text: readFileSync(join(dir, 'lockstep.db.key'), 'utf8'), source: 'the test' };
}

/** The PostgreSQL store at `url`, opened as a process given `key` in LOCKSTEP_SECRET_KEY opens it. */
function openTarget(url: string, key: KeyText, schema?: string): Promise<PostgresStore> {
  const keys = new StoreSecretKeys({ store: url, key, keyFile: null });
  return PostgresStore.open({ url, schema, secrets: new SecretCodec({ keys, secretSettings: () => [] }) });
}

/** Every definition the target keeps, as text: where sealed values live. */
async function storedDefinitions(url: string): Promise<string> {
  const texts = await sql<{ text: string }>(
    url,
    `SELECT definition AS text FROM lockstep.sources UNION ALL SELECT definition FROM lockstep.destinations
     UNION ALL SELECT definition FROM lockstep.alert_definitions UNION ALL SELECT settings FROM lockstep.webhook_settings`,
  );
  return texts.map((t) => t.text).join('\n');
}

describe('lockstep store migrate', () => {
  let dir: string;
  let token: string;
  let expected: Awaited<ReturnType<typeof contents>>;
  beforeAll(async () => {
    ({ dir, token } = await filledWorkspace());
    expected = await sqliteContents(dir);
  });
  /** The filled store copied into `url` in-process, with an answer timeout of 0.5 s. */
  const copyInto = (url: string, onProgress: (progress: CopyProgress) => void = () => undefined) =>
    copyStoreToPostgres({ sqlitePath: join(dir, 'lockstep.db'), url, schema: 'lockstep', replace: false, force: false, secretKey: null, now: Date.now(), answerTimeoutMs: 500, onProgress });

  it('copies the whole store, which the PostgreSQL store gives back as the embedded one did', async () => {
    expect(expected.syncRuns).toHaveLength(4);
    expect(expected.rejectedRows.flat()).toHaveLength(12);
    // The contacts sync raised rejected_rows, the sequence's good run cleared it: two notices, unsent.
    expect(expected.alerts.deliveries.map((d) => d.status)).toEqual(['pending', 'pending']);
    expect(expected.loose.count).toBe(LOOSE_ROWS + ODD_KEYS.length);

    const url = await createTestDatabase('lockstep_store_copy');
    const result = await runMain(['--workspace', dir, 'store', 'migrate', '--to', url]);
    expect(result.code, result.stderr).toBe(0);
    const snapshotRows = (expected.loose.count + Object.values(expected.snapshots).reduce((n: number, s) => n + (s as { count: number }).count, 0)).toLocaleString('en-US');
    expect(result.stderr).toMatch(new RegExp(`^ {2}snapshots +${snapshotRows} rows`, 'm'));
    expect(result.stderr).toMatch(new RegExp(`^ {2}snapshots: 1\\d\\d,\\d{3} of ${snapshotRows} rows…$`, 'm'));
    expect(result.stderr).toMatch(/^ {2}api_tokens +1 row$/m);
    expect(result.stdout).toMatch(/^✔ Copied [\d,]+ rows of \d+ tables into PostgreSQL at .* \(schema "lockstep"\)/);
    expect(result.stdout).toContain("export LOCKSTEP_STORE='postgres://");
    const password = decodeURIComponent(new URL(url).password);
    if (password) expect(result.stdout + result.stderr).not.toContain(password);
    // The alert channel's URL and secret and the webhook endpoint's secret, sealed with the key file's key: copied
    // sealed, and the key itself never shown.
    const key = keyFileKey(dir);
    expect(result.stdout).toMatch(/^ {2}3 secret values stay encrypted, with key [\w-]+\.$/m);
    expect(result.stdout).toContain(`export LOCKSTEP_SECRET_KEY="$(cat ${join(dir, 'lockstep.db.key')})"`);
    expect(result.stdout + result.stderr).not.toContain(key.text.trim());
    const stored = await storedDefinitions(url);
    expect(stored).not.toContain('s3cret');
    expect(sealedKeyIds(stored).size).toBe(1);

    await using store = await openTarget(url, key);
    const copied = await contents(store);
    expect(copied).toEqual(expected);
    expect(copied.loose.odd).toEqual(Object.fromEntries(ODD_KEYS));
    expect(copied.tokens.map((t) => t.hash)).toEqual([hashToken(token)]);
    expect(copied.workspace.webhooks.dbtCloud).toEqual({ secret: 'dbt-s3cret' });
    // Firings already recorded are known to the PostgreSQL store: a schedule does not fire them twice.
    expect(await store.schedules.recordFiring('sequence:crm@1767225600000', T0)).toBe(false);
    // Hex hashes are kept as bytes, others as text, as the PostgreSQL store writes them itself.
    const kinds = await sql<{ bytes: string; texts: string }>(
      url,
      'SELECT count(hash)::text AS bytes, count(hash_text)::text AS texts FROM lockstep.snapshots WHERE sync_id = $1',
      [LOOSE_SYNC],
    );
    expect(kinds).toEqual([{ bytes: String(LOOSE_ROWS + 2), texts: '2' }]);
  });

  it('the next runs on the PostgreSQL store send nothing, and new runs take new ids', async () => {
    // The hierarchy workspace alone (no secrets to key), after a sequence run.
    const plain = hierarchyWorkspace();
    for (const args of [['apply'], ['sequence', 'run', 'crm']]) expect((await runMain(['--workspace', plain, ...args])).code).toBe(0);
    const url = await createTestDatabase('lockstep_store_copy');
    const migrated = await runMain(['--workspace', plain, 'store', 'migrate', '--to', url]);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).not.toContain('secret');
    const sequence = await runMain(['--workspace', plain, '--store', url, 'sequence', 'run', 'crm', '--json']);
    expect(sequence.code, sequence.stderr).toBe(0);
    const members = (JSON.parse(sequence.stdout) as { members: Array<{ key: string; syncRun: { plannedRows: unknown } }> }).members;
    expect(members.map((m) => [m.key, m.syncRun.plannedRows])).toEqual(
      ['accounts-to-crm', 'workspaces-to-crm', 'contacts-to-crm'].map((key) => [key, { addedCount: 0, changedCount: 0, removedCount: 0 }]),
    );
    const sync = await runMain(['--workspace', plain, '--store', url, 'sync', 'run', 'contacts-to-crm', '--json']);
    const run = JSON.parse(sync.stdout) as { id: number; plannedRows: unknown; querySize: number };
    expect(run).toMatchObject({ querySize: 12, plannedRows: { addedCount: 0, changedCount: 0, removedCount: 0 } });
    // Three runs copied, three of the sequence run on PostgreSQL, then this one.
    expect(run.id).toBe(7);
  });

  it('seals the secrets again with LOCKSTEP_SECRET_KEY when it is given, never in the clear', async () => {
    const given: KeyText = { text: randomBytes(32).toString('base64'), source: 'the test' };
    vi.stubEnv('LOCKSTEP_SECRET_KEY', given.text);
    const url = await createTestDatabase('lockstep_store_copy');
    const result = await runMain(['--workspace', dir, 'store', 'migrate', '--to', url]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^ {2}3 secret values stay encrypted, with key [\w-]+; 3 sealed again with LOCKSTEP_SECRET_KEY\.$/m);
    expect(result.stdout).toContain('Every process on the PostgreSQL store needs the same LOCKSTEP_SECRET_KEY.');
    expect(result.stdout + result.stderr).not.toContain(given.text);
    const stored = await storedDefinitions(url);
    expect(stored).not.toContain('s3cret');
    // Only the given key opens the copy; the embedded store's key file no longer does.
    await expect(openTarget(url, keyFileKey(dir))).rejects.toThrow(/holds secrets encrypted with key/);
    await using store = await openTarget(url, given);
    expect(await contents(store)).toEqual(expected);
    // A process given the key works on the copy.
    const run = await runMain(['--workspace', dir, '--store', url, 'sync', 'run', 'accounts-to-crm']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('planned +0 ~0 -0');
  });

  it('shows the URL to point processes at as every message shows a URL, and names what to put back in place of ***', async () => {
    // A password (which a server trusting every connection ignores), a harmless parameter shown,
    // and one that could hold a secret, hidden.
    const given = new URL(await createTestDatabase('lockstep_store_copy'));
    const secret = given.password || 'pw-5519';
    given.password = secret;
    given.searchParams.set('application_name', 'moved');
    given.searchParams.set('statement_timeout', '60000');
    const result = await runMain(['--workspace', dir, 'store', 'migrate', '--to', given.toString()]);
    expect(result.code, result.stderr).toBe(0);
    const shown = `postgres://${given.username}:***@${given.host}${given.pathname}?application_name=moved&statement_timeout=***`;
    expect(result.stdout).toContain('point every Lockstep process at the PostgreSQL store (with your password and the value of statement_timeout in place of ***):');
    expect(result.stdout).toContain(`export LOCKSTEP_STORE='${shown}'`);
    expect(result.stdout).toContain(`lockstep --store '${shown}' serve`);
    expect(result.stdout + result.stderr).not.toContain(secret);

    // A URL with nothing to hide (a user name alone, where the server needs no password) is shown as given.
    const plain = await createTestDatabase('lockstep_store_copy');
    if (new URL(plain).password === '') {
      const opened = await runMain(['--workspace', dir, 'store', 'migrate', '--to', plain]);
      expect(opened.code, opened.stderr).toBe(0);
      expect(opened.stdout).toContain(`point every Lockstep process at the PostgreSQL store:\n  export LOCKSTEP_STORE='${plain}'`);
    }
  });

  it('copies into the schema named by --schema, and prints the store URL that opens it', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const result = await runMain(['--workspace', dir, 'store', 'migrate', '--to', url, '--schema', 'ls_moved']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('(schema "ls_moved")');
    await using store = await openTarget(url, keyFileKey(dir), 'ls_moved');
    expect(await contents(store)).toEqual(expected);

    // The next step as printed opens the copy: its URL names the schema.
    const printed = /^ {2}or: lockstep --store '([^']+)' serve$/m.exec(result.stdout)?.[1];
    expect(printed).toMatch(/[?&]schema=ls_moved$/);
    const opening = new URL(printed!);
    opening.password = new URL(url).password;
    vi.stubEnv('LOCKSTEP_SECRET_KEY', keyFileKey(dir).text);
    const runs = await runMain(['--workspace', dir, '--store', opening.toString(), 'runs', '--json']);
    expect(runs.code, runs.stderr).toBe(0);
    expect((JSON.parse(runs.stdout) as { syncRuns: unknown[] }).syncRuns).toHaveLength(expected.syncRuns.length);
    expect(await sql(url, "SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'lockstep'")).toEqual([]);

    // The schema may be named in the --to URL instead; naming two is refused.
    const other = await createTestDatabase('lockstep_store_copy');
    const named = await runMain(['--workspace', dir, 'store', 'migrate', '--to', `${other}?schema=ls_named`]);
    expect(named.code, named.stderr).toBe(0);
    expect(named.stdout).toContain('(schema "ls_named")');
    expect(named.stdout).toContain(`?schema=ls_named' serve`);
    const two = await runMain(['--workspace', dir, 'store', 'migrate', '--to', `${other}?schema=ls_named`, '--schema', 'ls_other']);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('--schema ls_other and the schema parameter of --to (ls_named) name two schemas — give the schema once, in either');
  });

  it('refuses a target that holds a store, naming the schema and the fix; --replace copies over it', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    expect((await runMain(['--workspace', dir, 'store', 'migrate', '--to', url])).code).toBe(0);
    await sql(url, "INSERT INTO lockstep.api_tokens (name, hash, created_at) VALUES ('only-here', 'h', 1)");

    const refused = await runMain(['--workspace', dir, 'store', 'migrate', '--to', url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/error: PostgreSQL at .* \(schema "lockstep"\) already holds a store \(rows in alert_definitions, .* and \d+ more tables\)/);
    expect(refused.stderr).toContain('--schema NAME');
    expect(refused.stderr).toContain('--replace');
    expect(refused.stdout).toBe('');

    const replaced = await runMain(['--workspace', dir, 'store', 'migrate', '--to', url, '--replace']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toContain('--replace');
    await using store = await openTarget(url, keyFileKey(dir));
    expect(await contents(store)).toEqual(expected);
  });

  it('refuses a source with unfinished runs, saying what to do; --force copies them as they are', async () => {
    const { dir: busy } = await filledWorkspace();
    const { sequenceRunId, syncRunId } = await enqueueWork(busy, 'crm', 'accounts-to-crm');
    const url = await createTestDatabase('lockstep_store_copy');

    const refused = await runMain(['--workspace', busy, 'store', 'migrate', '--to', url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`has 2 unfinished run(s): sync run ${syncRunId} (queued), sequence run ${sequenceRunId} (pending)`);
    expect(refused.stderr).toContain('lockstep worker --drain');
    expect(refused.stderr).toContain('--force');
    expect(await sql(url, "SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'")).toEqual([]);

    const forced = await runMain(['--workspace', busy, 'store', 'migrate', '--to', url, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('2 unfinished run(s) were copied as they are');
    await using store = await openTarget(url, keyFileKey(busy));
    expect((await store.getSyncRun(syncRunId))?.status).toBe('queued');
    expect((await store.getSequenceRun(sequenceRunId))?.status).toBe('pending');
  });

  it('copies the columns both stores have, leaving a column only one of them has to its default', async () => {
    const { dir: grown } = await filledWorkspace();
    sqlite(join(grown, 'lockstep.db'), "ALTER TABLE sync_runs ADD COLUMN note TEXT; UPDATE sync_runs SET note = 'only here' WHERE id = 1;");
    const url = await createTestDatabase('lockstep_store_copy');
    await (await PostgresStore.open({ url })).close();
    await sql(url, 'ALTER TABLE lockstep.sync_runs ADD COLUMN priority integer NOT NULL DEFAULT 7');

    const result = await runMain(['--workspace', grown, 'store', 'migrate', '--to', url]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('not copied: column sync_runs.note (1 row), which the PostgreSQL store does not have');
    expect(await sql(url, 'SELECT DISTINCT priority FROM lockstep.sync_runs')).toEqual([{ priority: 7 }]);

    // A column the target needs and the source cannot give is named before anything is copied.
    const strict = await createTestDatabase('lockstep_store_copy');
    await (await PostgresStore.open({ url: strict })).close();
    await sql(strict, 'ALTER TABLE lockstep.sync_runs ADD COLUMN region text NOT NULL');
    const refused = await runMain(['--workspace', grown, 'store', 'migrate', '--to', strict]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('cannot copy table sync_runs: the PostgreSQL store needs region');
  });

  it("copies into a database whose role has a low statement_timeout, which the copy's long statements do not go by", async () => {
    const url = await createTestDatabase('store_migrate_role_timeout');
    const role = `lockstep_copy_${randomBytes(4).toString('hex')}`;
    await sql(url, `CREATE ROLE ${role} LOGIN PASSWORD 'copy'; ALTER ROLE ${role} SET statement_timeout = '100ms'; ALTER DATABASE "${new URL(url).pathname.slice(1)}" OWNER TO ${role}`);
    const asRole = new URL(url);
    asRole.username = role;
    asRole.password = 'copy';
    await copyInto(asRole.toString());
    await using store = await openTarget(asRole.toString(), keyFileKey(dir));
    expect(await store.snapshots.count(LOOSE_SYNC)).toBe(expected.loose.count);
  });

  it('a failure half-way leaves the target as it was', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    await (await PostgresStore.open({ url })).close();
    // The loose snapshot rows break a rule the target has: the copy fails at that table, after others.
    await sql(url, `ALTER TABLE lockstep.snapshots ADD CONSTRAINT known_syncs CHECK (sync_id < ${LOOSE_SYNC})`);

    const result = await runMain(['--workspace', dir, 'store', 'migrate', '--to', url]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/error: copying table snapshots into PostgreSQL at .*known_syncs.*; nothing was changed there/);
    expect(result.stderr).toMatch(/^ {2}sync_runs +4 rows$/m);
    const counts = await sql<{ n: string }>(
      url,
      'SELECT (SELECT count(*) FROM lockstep.sources) + (SELECT count(*) FROM lockstep.sync_runs) + (SELECT count(*) FROM lockstep.snapshots) AS n',
    );
    expect(counts).toEqual([{ n: '0' }]);
    // Nor did the id sequences: they move only once every table is copied.
    expect(await sql(url, 'SELECT last_value::text AS value, is_called FROM lockstep.sync_runs_id_seq')).toEqual([{ value: '1', is_called: false }]);
  });

  it('fails within the --to URL\'s answer_timeout when the network stops answering, naming the target; run again, it ends the session left holding the schema and copies', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const server = new URL(url);
    // The server never hears that the copy's client went away, as behind a real partition.
    await using proxy = await PartitionProxy.start(server.hostname, Number(server.port || 5432), { strand: true });
    const to = `${proxy.url(url)}?answer_timeout=0.5`;
    // The copy waits for the migration lock, held here, so the network stops answering while a statement is out.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('lockstep:migrate:lockstep', 0))");
      const copying = runMain(['--workspace', dir, 'store', 'migrate', '--to', to]);
      await expect
        .poll(async () => (await sql(url, "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep store migrate' AND wait_event_type = 'Lock'")).length, {
          timeout: 10_000,
        })
        .toBe(1);
      proxy.partition();
      await holder.query('COMMIT');
      const started = Date.now();
      const failed = await copying;
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(failed.code).toBe(3);
      expect(failed.stderr).toContain(`PostgreSQL at 127.0.0.1:${proxy.port}${server.pathname}`);
      expect(failed.stderr).toContain('(schema "lockstep")');
      expect(failed.stderr).toMatch(/did not answer a statement within [\d.]+ s/);
      expect(failed.stderr).toContain('answer_timeout');
      expect(failed.stderr).toMatch(/run `lockstep store migrate` again/);
      await expect.poll(() => proxy.silentOpen(), { timeout: 2000 }).toBe(0);
    } finally {
      await holder.end();
    }

    // The copy's session, granted the lock as its answer was lost, lives on idle in its transaction.
    const [stale] = await sql<{ pid: number }>(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep store migrate' AND state = 'idle in transaction'");
    expect(stale).toBeDefined();
    proxy.heal();
    const again = await runMain(['--workspace', dir, 'store', 'migrate', '--to', to]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`Ended server process ${stale?.pid}`);
    await using store = await openTarget(url, keyFileKey(dir));
    expect(await contents(store)).toEqual(expected);
  }, 60_000);

  it('fails when a table\'s rows stop reaching the server part-way, though the server still answers new connections', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const server = new URL(url);
    await using proxy = await PartitionProxy.start(server.hostname, Number(server.port || 5432));
    let cut = false;
    const started = { at: 0 };
    const copying = copyInto(proxy.url(url), (progress) => {
      // Part-way through the large table the connection loses its flow, as behind a NAT that
      // forgot it; new connections pass at once.
      if (progress.type !== 'table:progress' || cut) return;
      cut = true;
      started.at = Date.now();
      proxy.partition();
      setTimeout(() => proxy.heal(), 100);
    });
    const error = await copying.then(
      () => new Error('expected a failure'),
      (thrown: unknown) => thrown as Error,
    );
    expect(cut).toBe(true);
    expect(Date.now() - started.at).toBeLessThan(15_000);
    expect(error.message).toContain(`copying table snapshots stopped: store PostgreSQL at 127.0.0.1:${proxy.port}${server.pathname}`);
    expect(error.message).toMatch(/the server is waiting for the rest of what was sent/);
    expect(error.message).toMatch(/run `lockstep store migrate` again/);
    await expect.poll(() => proxy.silentOpen(), { timeout: 2000 }).toBe(0);
    await expect.poll(async () => (await sql(url, "SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'")).length, { timeout: 5000 }).toBe(0);
  }, 60_000);

  it('a copy cut off part-way by a partition leaves its session holding the target on the server; run again once the network passes, it ends that session and copies', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const server = new URL(url);
    // The server never hears that the copy's client went away, as behind a real partition.
    await using proxy = await PartitionProxy.start(server.hostname, Number(server.port || 5432), { strand: true });
    const to = `${proxy.url(url)}?answer_timeout=0.5`;
    let cut = false;
    const error = await copyInto(proxy.url(url), (progress) => {
      if (progress.type !== 'table:progress' || cut) return;
      cut = true;
      proxy.partition();
    }).then(
      () => new Error('expected a failure'),
      (thrown: unknown) => thrown as Error,
    );
    expect(cut).toBe(true);
    expect(error.message).toMatch(/run `lockstep store migrate` again/);
    // The copy's session lives on, waiting for rows mid-COPY, its transaction holding the schema's
    // migration lock (a transaction-level advisory lock).
    const stale = await sql<{ pid: number; state: string; wait_event: string }>(
      url,
      `SELECT a.pid, a.state, a.wait_event FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND (l.classid::int8 << 32) + l.objid::int8 = hashtextextended('lockstep:migrate:lockstep', 0)`,
    );
    expect(stale).toEqual([{ pid: expect.any(Number), state: 'active', wait_event: 'ClientRead' }]);
    expect(proxy.stranded()).toBeGreaterThanOrEqual(1);

    proxy.heal();
    const started = Date.now();
    const again = await Promise.race([
      runMain(['--workspace', dir, 'store', 'migrate', '--to', to]),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), 40_000)),
    ]);
    try {
      // Within about the lease (5 s) and a command's start, where it waited hours; a loaded machine gets room.
      expect(again, 'the second copy still waits for the first one\'s session after 40 s').not.toBeNull();
      expect(again?.code, again?.stderr).toBe(0);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(again?.stderr).toContain(`Ended server process ${stale[0]?.pid}`);
      await using store = await openTarget(url, keyFileKey(dir));
      expect(await contents(store)).toEqual(expected);
    } finally {
      // Lets a second copy that waits for the stale session go on, so nothing is left running.
      await sql(url, 'SELECT pg_terminate_backend($1)', [stale[0]?.pid]);
    }
  }, 60_000);

  it('a process opening the store where a copy cut off by a partition left its session holding the schema ends that session once its lease lapsed, and opens', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const server = new URL(url);
    await using proxy = await PartitionProxy.start(server.hostname, Number(server.port || 5432), { strand: true });
    let cut = false;
    const error = await copyInto(proxy.url(url), (progress) => {
      if (progress.type !== 'table:progress' || cut) return;
      cut = true;
      proxy.partition();
    }).then(
      () => new Error('expected a failure'),
      (thrown: unknown) => thrown as Error,
    );
    expect(cut, error.message).toBe(true);
    const [stale] = await sql<{ pid: number }>(
      url,
      `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND (l.classid::int8 << 32) + l.objid::int8 = hashtextextended('lockstep:migrate:lockstep', 0)`,
    );
    expect(stale).toBeDefined();
    const said: string[] = [];
    const logger = { debug() {}, info: (message: string) => said.push(message), warn: (message: string) => said.push(message), error() {} };
    const started = Date.now();
    const opening = PostgresStore.open({ url, logger });
    const opened = await Promise.race([opening, new Promise<null>((resolve) => setTimeout(() => resolve(null), 40_000))]);
    try {
      // Within about the lease (5 s), where it waited for TCP keepalive (hours); a loaded machine gets room.
      expect(opened, 'opening still waits for the copy\'s session after 40 s').not.toBeNull();
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(said.join('\n')).toContain(`ended server process ${stale?.pid}`);
      expect(said.join('\n')).toMatch(/`lockstep store migrate` copy left holding the schema .*rolled back/);
      // Nothing of the copy was kept: the store is new.
      expect((await opened?.loadWorkspace())?.syncs).toEqual([]);
    } finally {
      await sql(url, 'SELECT pg_terminate_backend($1)', [stale?.pid]);
      await (opened ?? (await opening)).close();
    }
  }, 60_000);

  it('a process opening the store while a copy is at work (its lease held) waits for it, saying so, and ends nothing', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    // A copy at work as the server sees it: one session holding the copy and migration locks, another its lease.
    const copy = new pg.Client({ connectionString: url });
    const lease = new pg.Client({ connectionString: url });
    await copy.connect();
    await lease.connect();
    const said: string[] = [];
    const logger = { debug() {}, info: (message: string) => said.push(message), warn: (message: string) => said.push(message), error() {} };
    let opened: PostgresStore | null = null;
    try {
      await copy.query("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('lockstep:copy:lockstep', 0)), pg_advisory_xact_lock(hashtextextended('lockstep:migrate:lockstep', 0))");
      await lease.query("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('lockstep:copy-lease:lockstep', 0))");
      const copyPid = (copy as pg.Client & { processID: number }).processID;
      const opening = PostgresStore.open({ url, logger }).then((store) => (opened = store));
      await expect.poll(() => said.length, { timeout: 10_000 }).toBe(1);
      expect(said[0]).toMatch(new RegExp(`is being migrated or copied into by another session, server process ${copyPid} .*: waiting for it to finish`));
      // Past a few looks at the holder, the copy at work is still there, and the store still waits.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(opened).toBeNull();
      expect(await sql(url, 'SELECT 1 FROM pg_stat_activity WHERE pid = $1', [copyPid])).toHaveLength(1);
      await copy.query('COMMIT');
      await opening;
      expect(said).toHaveLength(1);
    } finally {
      await copy.end();
      await lease.end();
      await (opened as PostgresStore | null)?.close();
    }
  }, 60_000);

  it('a copy whose lease\'s session ended stops at its next statement, leaving the target as it was', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const sessions = (where: string) => sql<{ pid: number }>(url, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND ${where}`);
    // The copy is held at the schema's migration lock, holding its lease, while the lease's session is
    // ended; then let go. What it does next is its next statement, whatever the machine's speed.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('lockstep:migrate:lockstep', 0))");
      const copying = copyInto(url).then(
        () => new Error('expected a failure'),
        (thrown: unknown) => thrown as Error,
      );
      await expect.poll(async () => (await sessions("application_name = 'lockstep store migrate' AND wait_event_type = 'Lock'")).length, { timeout: 10_000 }).toBe(1);
      expect(await sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lockstep store migrate lease'")).toEqual([{ pg_terminate_backend: true }]);
      await expect.poll(async () => (await sessions("application_name = 'lockstep store migrate lease'")).length, { timeout: 10_000 }).toBe(0);
      await holder.query('COMMIT');
      const error = await copying;
      // Stopped before it copied a table: at the first statement after the lock.
      expect(error.message).toMatch(
        /^copying the store into PostgreSQL at .* \(schema "lockstep"\) stopped: the session holding the copy's lease ended \(terminating connection due to administrator command\), and the copy stops with it; it is one transaction: nothing of it is kept there — run `lockstep store migrate` again$/,
      );
      expect(await sql(url, "SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'")).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('a second copy while one is at work waits for it up to its lease, then is refused naming its session; one kept waiting for the migration lock is refused naming who holds it', async () => {
    const url = await createTestDatabase('lockstep_store_copy');
    const to = `${url}?answer_timeout=0.5`;
    const sessions = (where: string) => sql<{ pid: number }>(url, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND ${where}`);
    // A session holding the migration lock, as a Lockstep process opening the store holds it while it migrates.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('lockstep:migrate:lockstep', 0))");
      const holderPid = (holder as pg.Client & { processID: number }).processID;
      const first = runMain(['--workspace', dir, 'store', 'migrate', '--to', to]);
      await expect.poll(async () => (await sessions("application_name = 'lockstep store migrate' AND wait_event_type = 'Lock'")).length, { timeout: 10_000 }).toBe(1);
      const [copying] = await sessions("application_name = 'lockstep store migrate' AND wait_event_type = 'Lock'");

      // The first copy renews its lease while it waits: the second waits a lease's length (5 s, at least), then is refused.
      const started = Date.now();
      const second = await runMain(['--workspace', dir, 'store', 'migrate', '--to', to]);
      expect(Date.now() - started).toBeGreaterThan(5000);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`Another copy (server process ${copying?.pid}) holds the schema: waiting up to 5.5 s`);
      expect(second.stderr).toMatch(
        new RegExp(
          `error: another \`lockstep store migrate\` is copying into PostgreSQL at .* \\(schema "lockstep"\\): server process ${copying?.pid} ` +
            `\\(user \\w+, (from [\\d.:]+, )?application "lockstep store migrate", in its transaction for \\d+ s\\), and it kept its lease for the 5.5 s waited — ` +
            `wait for it to finish, or stop it \\(where it runs, or on the server: SELECT pg_terminate_backend\\(${copying?.pid}\\)\\), then run this again`,
        ),
      );

      // The first copy waits for the migration lock for 10 s, then is refused naming the session holding it.
      const refused = await first;
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        new RegExp(`error: PostgreSQL at .* \\(schema "lockstep"\\) is being migrated by another session, server process ${holderPid} \\(user \\w+, .*\\), which held the schema's migration lock for the 10 s waited`),
      );
      expect(refused.stderr).toContain(`end it (SELECT pg_terminate_backend(${holderPid})); then run this again`);
      expect(await sql(url, "SELECT 1 FROM pg_namespace WHERE nspname = 'lockstep'")).toEqual([]);
    } finally {
      await holder.end();
    }
    const again = await runMain(['--workspace', dir, 'store', 'migrate', '--to', to]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toContain('holds the schema');
  }, 60_000);

  it('says what is wrong with the arguments and the current store', async () => {
    const notUrl = await runMain(['--workspace', dir, 'store', 'migrate', '--to', 'mysql://root:hunter2@db/x']);
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toContain('--to "mysql://root:***@db/x" is not a postgres:// URL');
    const noSchema = await runMain(['--workspace', dir, 'store', 'migrate', '--to', 'postgres://u:hunter2@127.0.0.1:1/y?sslmode=disable&schema=']);
    expect(noSchema.code).toBe(2);
    expect(noSchema.stderr).toContain("the store URL's schema parameter is empty — name the schema of the store's tables, e.g. ?schema=lockstep");
    const already = await runMain(['--workspace', dir, '--store', 'postgres://u:hunter2@127.0.0.1:1/x', 'store', 'migrate', '--to', 'postgres://u:hunter2@127.0.0.1:1/y']);
    expect(already.code).toBe(2);
    expect(already.stderr).toContain('the current store is already PostgreSQL (postgres://u:***@127.0.0.1:1/x)');
    const missing = await runMain(['--workspace', dir, '--store', join(dir, 'nothing.db'), 'store', 'migrate', '--to', 'postgres://u@127.0.0.1:1/y']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`no embedded store at ${join(dir, 'nothing.db')}: nothing to copy`);
    const unreachable = await runMain(['--workspace', dir, 'store', 'migrate', '--to', 'postgres://u:hunter2@127.0.0.1:1/y']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('PostgreSQL at 127.0.0.1:1/y as u (schema "lockstep") cannot be reached');
    expect(unreachable.stderr + unreachable.stdout).not.toContain('hunter2');
  });
});

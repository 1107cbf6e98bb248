/**
 * Many `lockstep worker` / `scheduler` processes on one PostgreSQL store, for the tests in this folder.
 *
 * The workspace: `shards` sequences `crm-<k>`, each running three linear members that upsert one shard
 * of a SQLite warehouse into a SQLite file of its own whose tables have foreign keys (accounts ←
 * workspaces ← contacts), so a member started before the one it follows shows up as rejected rows and
 * a failed sequence run. The store is a fresh PostgreSQL database; the data stays in files, so the
 * processes' connections and the server's time go to the store. One clean run at the end writes the
 * same syncs into files of its own, to compare with.
 *
 * A sequence has at most one pending run, and a trigger while one is pending shares it, so the work
 * is queued in waves by {@link WaveDriver}: when a sequence is idle, its shard of the warehouse
 * changes (rows added and updated) and a run is queued; while it runs, one follow-up run is queued
 * (it finds nothing new to deliver). The warehouse never changes under a running sequence, so
 * every run delivers a consistent hierarchy.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { expect } from 'vitest';
import type { SequenceRecord } from '../../src/core/workspace.js';
import { createApp } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { CliProcess, runCli, runMain, sleep } from '../cli/cli-helpers.js';
import { sqlite, sqliteRows, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';

/** Rows per shard before the first wave. */
const INITIAL = { accounts: 20, workspaces: 60, contacts: 200 };

/** A few pooled connections to one database, for the test's own queries (polls run often). */
export class Db {
  private readonly pool: pg.Pool;

  constructor(readonly url: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 2 });
  }

  async rows<T>(text: string, values: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(text, values)).rows as T[];
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export interface CrmFixtureOptions {
  /** Sequences (one shard of the warehouse and one destination file each). */
  shards: number;
  /** Whether each sequence has a yearly cron schedule (fired once at start when its cursor is seeded a year back). */
  yearlySchedule: boolean;
  /** Rows per batch of every sync: small batches give a run many commits to be stopped between. */
  batchSize: number;
}

export interface CrmFixture {
  /** The workspace folder the processes under test run in: warehouse.db and the destinations crm-<k>.db. */
  dir: string;
  /** The store every process shares. */
  storeDb: Db;
  sequenceSlugs: string[];
  /** An open store for the test itself; closed by `close()`. */
  store: PostgresStore;
  close(): Promise<void>;
}

export const TABLES = ['accounts', 'workspaces', 'contacts'] as const;

const DESTINATION_DDL = `
  create table accounts (id integer primary key, name text not null, plan text not null);
  create table workspaces (id integer primary key, account_id integer not null references accounts (id), name text not null);
  create table contacts (id integer primary key, workspace_id integer not null references workspaces (id), email text not null);`;

/** Ids are `shard * 1,000,000 + n`, so every shard's rows are its own. WAL: the processes read while the waves write. */
function warehouseSql(shards: number): string {
  const { accounts, workspaces, contacts } = INITIAL;
  const series = (name: string, to: number) => `${name}(i) as (select 1 union all select i + 1 from ${name} where i < ${to})`;
  return `pragma journal_mode = wal;
    create table accounts (id integer primary key, shard integer not null, name text not null, plan text not null);
    create table workspaces (id integer primary key, shard integer not null, account_id integer not null, name text not null);
    create table contacts (id integer primary key, shard integer not null, workspace_id integer not null, email text not null);
    with recursive ${series('s', shards)}, ${series('a', accounts)}
      insert into accounts select (s.i - 1) * 1000000 + a.i, s.i - 1, 'account ' || (s.i - 1) || '-' || a.i, case when a.i % 3 = 0 then 'pro' else 'free' end from s, a;
    with recursive ${series('s', shards)}, ${series('w', workspaces)}
      insert into workspaces select (s.i - 1) * 1000000 + w.i, s.i - 1, (s.i - 1) * 1000000 + 1 + w.i % ${accounts}, 'workspace ' || (s.i - 1) || '-' || w.i from s, w;
    with recursive ${series('s', shards)}, ${series('c', contacts)}
      insert into contacts select (s.i - 1) * 1000000 + c.i, s.i - 1, (s.i - 1) * 1000000 + 1 + c.i % ${workspaces}, 'contact' || (s.i - 1) || '-' || c.i || '@example.com' from s, c;`;
}

/** lockstep.yaml: per shard three models, a destination file in `destinationDir`, three syncs and a linear sequence. */
function workspaceYaml(warehouse: string, destinationDir: string, options: CrmFixtureOptions): string {
  const lines = ['sources:', `  warehouse: { type: sqlite, path: "${warehouse}" }`, 'destinations:'];
  for (let k = 0; k < options.shards; k++) lines.push(`  crm-${k}: { type: sqlite, path: "${join(destinationDir, `crm-${k}.db`)}" }`);
  lines.push('models:');
  const columns = { accounts: 'id, name, plan', workspaces: 'id, account_id, name', contacts: 'id, workspace_id, email' };
  for (let k = 0; k < options.shards; k++) {
    for (const table of TABLES) {
      lines.push(`  ${table}-${k}: { source: warehouse, primaryKey: id, query: "select ${columns[table]} from ${table} where shard = ${k}" }`);
    }
  }
  lines.push('syncs:');
  for (let k = 0; k < options.shards; k++) {
    for (const table of TABLES) {
      lines.push(`  ${table}-to-crm-${k}: { model: ${table}-${k}, destination: crm-${k}, object: ${table}, mode: upsert, batchSize: ${options.batchSize} }`);
    }
  }
  lines.push('sequences:');
  for (let k = 0; k < options.shards; k++) {
    lines.push(`  crm-${k}:`);
    // Any rejected row (a contact before its workspace) fails the sequence run.
    lines.push('    members:', ...TABLES.map((table) => `      - { sync: ${table}-to-crm-${k}, terminate: on_fatal_or_rejected }`));
    // Fires on 1 January only; with a catch-up window over a year, a cursor seeded a year back makes
    // it fire once at start, for the latest 1 January.
    if (options.yearlySchedule) lines.push(`    schedule: { type: cron, expression: "0 0 1 1 *", timezone: UTC, catchupWindow: ${375 * 86_400} }`);
  }
  return `${lines.join('\n')}\n`;
}

function createDestinations(dir: string, shards: number): void {
  for (let k = 0; k < shards; k++) sqlite(join(dir, `crm-${k}.db`), DESTINATION_DDL);
}

/** A fresh store database, the warehouse and destination files, the workspace applied to the store. */
export async function createCrmFixture(options: CrmFixtureOptions): Promise<CrmFixture> {
  const storeUrl = await createTestDatabase('lockstep_mp');
  const dir = tempDir('lockstep-multiprocess-');
  sqlite(join(dir, 'warehouse.db'), warehouseSql(options.shards));
  createDestinations(dir, options.shards);
  writeFileSync(join(dir, 'lockstep.yaml'), workspaceYaml(join(dir, 'warehouse.db'), dir, options));
  const applied = await runMain(['--workspace', dir, '--store', storeUrl, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  const store = await PostgresStore.open({ url: storeUrl, poolSize: 3 });
  const sequenceSlugs = Array.from({ length: options.shards }, (_, k) => `crm-${k}`);
  const storeDb = new Db(storeUrl);
  const close = async () => {
    await Promise.all([store.close(), storeDb.close()]);
  };
  return { dir, storeDb, sequenceSlugs, store, close };
}

/** Changes shard `k` of the warehouse for wave `wave`: a new account with two workspaces and five contacts, and some updates. */
export function changeShard(dir: string, k: number, wave: number): void {
  const last = (table: string) => `(select max(id) from ${table} where shard = ${k})`;
  sqlite(
    join(dir, 'warehouse.db'),
    `begin;
     update accounts set name = name || ' w${wave}', plan = case plan when 'free' then 'pro' else 'free' end
       where shard = ${k} and id % 7 = ${wave % 7};
     insert into accounts select ${last('accounts')} + 1, ${k}, 'account ${k} wave ${wave}', 'trial';
     insert into workspaces select ${last('workspaces')} + g.i, ${k}, ${last('accounts')}, 'workspace ${k} wave ${wave} #' || g.i
       from (select 1 as i union all select 2) g;
     insert into contacts select ${last('contacts')} + g.i, ${k}, ${last('workspaces')} - g.i % 2, 'new${wave}-' || g.i || '@example.com'
       from (select 1 as i union all select 2 union all select 3 union all select 4 union all select 5) g;
     update contacts set email = 'w${wave}.' || email where shard = ${k} and id % 13 = ${wave % 13};
     update workspaces set name = name || '+' where shard = ${k} and id % 11 = ${wave % 11};
     commit;`,
  );
}

/**
 * Queues sequence runs in waves until every sequence has `perSequence` runs (those already there
 * count): an idle sequence gets a changed shard and a run, a running one a follow-up run.
 */
export class WaveDriver {
  private readonly created = new Map<number, number>();
  /** Sequences whose changed run is queued or running and has no follow-up yet. */
  private readonly followUpDue = new Set<number>();
  private wave = 0;
  private stopped = false;
  readonly done: Promise<void>;

  constructor(
    private readonly fixture: CrmFixture,
    private readonly sequences: SequenceRecord[],
    private readonly perSequence: number,
    existing: Map<number, number>,
  ) {
    for (const s of sequences) this.created.set(s.id, existing.get(s.id) ?? 0);
    this.done = this.loop();
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    const { store } = this.fixture;
    while (!this.stopped && this.sequences.some((s) => this.created.get(s.id)! < this.perSequence)) {
      const active = await store.listSequenceRunsByStatus(['pending', 'running']);
      for (const sequence of this.sequences) {
        if (this.created.get(sequence.id)! >= this.perSequence) continue;
        const mine = active.filter((r) => r.sequenceId === sequence.id);
        if (mine.some((r) => r.status === 'pending')) continue;
        const idle = mine.length === 0;
        // Running: one follow-up after a changed run, then the sequence is left to become idle.
        if (!idle && !this.followUpDue.has(sequence.id)) continue;
        const wave = ++this.wave;
        if (idle) changeShard(this.fixture.dir, Number(sequence.slug.split('-').pop()), wave);
        const { created } = await store.enqueueSequenceRun(sequence, { type: 'manual', detail: `wave ${wave}` }, Date.now());
        if (idle) this.followUpDue.add(sequence.id);
        else this.followUpDue.delete(sequence.id);
        if (created) this.created.set(sequence.id, this.created.get(sequence.id)! + 1);
      }
      await sleep(100);
    }
  }
}

export interface RunCounts {
  total: number;
  finished: number;
  byStatus: Record<string, number>;
}

export async function sequenceRunCounts(db: Db): Promise<RunCounts> {
  const rows = await db.rows<{ status: string; n: number }>('select status, count(*)::int as n from lockstep.sequence_runs group by status');
  const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n]));
  const total = rows.reduce((a, r) => a + r.n, 0);
  const finished = rows.filter((r) => ['done', 'failed', 'cancelled'].includes(r.status)).reduce((a, r) => a + r.n, 0);
  return { total, finished, byStatus };
}

/** Waits until `test` holds for the counts of sequence runs; the message names what was seen. */
export async function waitForRuns(db: Db, what: string, test: (counts: RunCounts) => boolean, timeoutMs: number): Promise<RunCounts> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await sequenceRunCounts(db);
    if (test(counts)) return counts;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms: sequence runs ${JSON.stringify(counts.byStatus)}`);
    await sleep(100);
  }
}

/** An active sync run as its lease row shows it. */
export interface HeldRun {
  id: number;
  attempt: number;
  workerId: string;
  status: string;
}

/** Active sync runs whose lease names a worker in process `pid` on this host. */
export async function runsHeldBy(db: Db, pid: number): Promise<HeldRun[]> {
  return db.rows<HeldRun>(
    `select id::int, attempt, worker_id as "workerId", status from lockstep.sync_runs
      where status in ('querying', 'processing', 'reporting') and split_part(worker_id, '/', 2) = $1 order by id`,
    [String(pid)],
  );
}

export interface SyncRunRow {
  id: number;
  attempt: number;
  workerId: string | null;
  status: string;
}

export async function syncRunRows(db: Db, ids: number[]): Promise<SyncRunRow[]> {
  return db.rows<SyncRunRow>(
    'select id::int, attempt, worker_id as "workerId", status from lockstep.sync_runs where id = any ($1::bigint[]) order by id',
    [ids],
  );
}

/** The local TCP ports of process `pid`'s sockets (Linux: its fds' socket inodes looked up in /proc/net/tcp*). */
function localPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6'].filter((path) => existsSync(path))) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':').pop()!, 16));
    }
  }
  return ports;
}

/**
 * Whether process `pid` has a store session inside a transaction that wrote or locked rows (it has
 * a transaction id): stopped there, it would keep those rows locked until it runs again.
 */
async function inLockingTransaction(db: Db, pid: number): Promise<boolean> {
  const [row] = await db.rows<{ n: number }>(
    'select count(*)::int as n from pg_stat_activity where datname = current_database() and client_port = any ($1::int[]) and backend_xid is not null',
    [localPorts(pid)],
  );
  return row!.n > 0;
}

/**
 * Waits until a stopped process's store statements have ended: what the server had received from it
 * is then committed or waiting for a commit that will not come, so its runs' rows no longer change.
 * Gives up after `timeoutMs` (a statement may wait for a lock another of its sessions holds).
 */
export async function settleStopped(db: Db, pid: number, timeoutMs = 3000): Promise<void> {
  await sleep(50);
  const deadline = Date.now() + timeoutMs;
  const ports = localPorts(pid);
  for (;;) {
    const [row] = await db.rows<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and client_port = any ($1::int[]) and state = 'active'",
      [ports],
    );
    if (row!.n === 0 || Date.now() > deadline) return;
    await sleep(20);
  }
}

/** The POSIX file locks process `pid` holds for writing (SQLite's write locks; Linux: /proc/locks). */
export function fileWriteLocks(pid: number): string[] {
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((line) => new RegExp(`^\\d+: POSIX\\s+\\S+\\s+WRITE ${pid} `).test(line));
}

/**
 * Stops `proc` (SIGSTOP) at a moment it holds the lease on an active sync run: it is stopped, its
 * leases read, and if it holds none it is continued and tried again a little later. Returns the runs
 * it holds while stopped (a stopped process changes nothing once the statements it had sent ended).
 *
 * With `withoutLocks`, a moment when the process holds locks is not taken either (it is continued
 * and tried again): in a store transaction that locked rows, or writing to a SQLite file. A stopped
 * process keeps its locks until it runs again, and whoever needs them waits as long: the store's
 * rows for a takeover, the destination file for the next attempt's writes.
 */
export async function stopWhileHoldingLease(
  proc: CliProcess,
  db: Db,
  timeoutMs: number,
  withoutLocks = false,
): Promise<{ held: HeldRun[]; tries: number }> {
  const deadline = Date.now() + timeoutMs;
  const lockFree = async () => !withoutLocks || (fileWriteLocks(proc.pid).length === 0 && !(await inLockingTransaction(db, proc.pid)));
  for (let tries = 1; ; tries++) {
    if (!proc.running) throw new Error(`process ${proc.pid} exited before it held a lease:\n${proc.stderr}`);
    const before = await runsHeldBy(db, proc.pid);
    if (before.length > 0 && (await lockFree())) {
      proc.child.kill('SIGSTOP');
      await settleStopped(db, proc.pid);
      const held = await runsHeldBy(db, proc.pid);
      if (held.length > 0 && (await lockFree())) return { held, tries };
      proc.child.kill('SIGCONT');
    }
    if (Date.now() > deadline) throw new Error(`process ${proc.pid} never held a lease on an active sync run within ${timeoutMs} ms`);
    await sleep(15);
  }
}

/** Row count and a digest of every row, per destination table, over the destination files in `dir`. */
export function destinationDigest(dir: string, shards: number): Record<string, { rows: number; md5: string }> {
  const out: Record<string, { rows: number; md5: string }> = {};
  for (const table of TABLES) {
    const hash = createHash('md5');
    let rows = 0;
    for (let k = 0; k < shards; k++) {
      const all = sqliteRows(join(dir, `crm-${k}.db`), `select * from ${table} order by id`);
      rows += all.length;
      hash.update(JSON.stringify(all));
    }
    out[table] = { rows, md5: hash.digest('hex') };
  }
  return out;
}

/**
 * The clean run: the same workspace writing into destination files of a new folder (returned), on an
 * embedded store of its own, each sequence run once by one `lockstep worker --drain`, from the
 * warehouse as the waves left it.
 */
export async function cleanRun(fixture: CrmFixture, options: CrmFixtureOptions): Promise<string> {
  const dir = tempDir('lockstep-multiprocess-clean-');
  createDestinations(dir, options.shards);
  writeFileSync(join(dir, 'lockstep.yaml'), workspaceYaml(join(fixture.dir, 'warehouse.db'), dir, { ...options, yearlySchedule: false }));
  const applied = await runMain(['--workspace', dir, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  const app = await createApp(resolveConfig({ workspaceDir: dir, env: {} }), { logger: silentLogger });
  try {
    for (const slug of fixture.sequenceSlugs) await app.runs.triggerSequence(slug);
  } finally {
    await app.close();
  }
  const drained = await runCli(['--workspace', dir, 'worker', '--drain'], { cwd: dir, timeoutMs: 60_000 });
  expect(drained.code, drained.stderr).toBe(0);
  const listed = await runMain(['--workspace', dir, 'runs', '--json', '--limit', '1000']);
  const statuses = (JSON.parse(listed.stdout) as { sequenceRuns: Array<{ status: string }> }).sequenceRuns.map((r) => r.status);
  expect(statuses, 'the clean run').toEqual(fixture.sequenceSlugs.map(() => 'done'));
  return dir;
}

/** The ordinary shape of every sequence run: done, three members in success, one sync run each. */
export async function checkEveryRunRanOnce(db: Db, expectedRuns: number, note = ''): Promise<void> {
  const sequenceRuns = await db.rows<{ status: string; n: number }>('select status, count(*)::int as n from lockstep.sequence_runs group by status');
  expect(sequenceRuns, `${note}sequence runs by status`).toEqual([{ status: 'done', n: expectedRuns }]);
  const members = await db.rows<{ status: string; n: number }>('select status, count(*)::int as n from lockstep.member_runs group by status');
  expect(members, `${note}member runs by status`).toEqual([{ status: 'success', n: expectedRuns * 3 }]);
  // Every member has exactly one sync run, the one it names; no other sync run exists.
  const [links] = await db.rows<{ syncRuns: number; members: number; linked: number; perMember: number }>(
    `select (select count(*)::int from lockstep.sync_runs) as "syncRuns",
            (select count(*)::int from lockstep.member_runs) as members,
            (select count(*)::int from lockstep.member_runs m join lockstep.sync_runs r
               on r.id = m.sync_run_id and r.sequence_run_id = m.sequence_run_id and r.member_key = m.key) as linked,
            (select coalesce(max(n), 0)::int from (select count(*) as n from lockstep.sync_runs group by sequence_run_id, member_key) x) as "perMember"`,
  );
  expect(links, `${note}sync runs per member`).toEqual({ syncRuns: expectedRuns * 3, members: expectedRuns * 3, linked: expectedRuns * 3, perMember: 1 });
  const syncRuns = await db.rows<{ status: string; n: number }>('select status, count(*)::int as n from lockstep.sync_runs group by status');
  expect(syncRuns, `${note}sync runs by status`).toEqual([{ status: 'success', n: expectedRuns * 3 }]);
  const [rejected] = await db.rows<{ n: number }>('select count(*)::int as n from lockstep.rejected_rows');
  expect(rejected!.n, `${note}rejected rows (a member started before the one it follows)`).toBe(0);
}

/** A small seeded PRNG (mulberry32): the same seed gives the same kills. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `lockstep <command>` on the fixture's store, with short leases and polls. */
export function startProcess(fixture: CrmFixture, command: 'worker' | 'scheduler', leaseSeconds: number, env: Record<string, string> = {}): CliProcess {
  return new CliProcess(['--workspace', fixture.dir, '--store', fixture.storeDb.url, command], {
    cwd: fixture.dir,
    // Hand-offs come through LISTEN/NOTIFY; the poll finds expired leases and dead processes' runs.
    env: { LOCKSTEP_LEASE_SECONDS: String(leaseSeconds), LOCKSTEP_POLL_MS: '250', ...env },
  });
}

/** The last lines of each process's stderr, for a failure message. */
export function stderrTails(procs: CliProcess[], lines = 15): string {
  return procs.map((p) => `--- pid ${p.pid} (${p.running ? 'running' : 'exited'}):\n${p.stderr.split('\n').slice(-lines).join('\n')}`).join('\n');
}

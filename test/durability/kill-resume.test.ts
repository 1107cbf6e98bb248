/**
 * SPEC §3.3 and §9: a sequence run killed with SIGKILL at any point finishes after a restart, runs
 * no finished member twice, and leaves the destination exactly as a clean run would.
 *
 * The sequence runs in a child process (`lockstep sequence run`); this process watches the store
 * file and kills the child when the run reaches the chosen point, then restarts Lockstep
 * (`lockstep worker --drain`) and checks the outcome.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SequenceRun, SyncRun } from '../../src/core/runs.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createHierarchyFixture, sqliteRows, tempDir } from '../helpers/harness.js';

const BIN = resolve(import.meta.dirname, '../../bin/lockstep.js');
const SIZES = { accounts: 1500, workspaces: 3000, contacts: 6000 };

const WORKSPACE = `
sources:
  warehouse: { type: sqlite, path: warehouse.db }
destinations:
  crm: { type: sqlite, path: crm.db }
models:
  accounts:   { source: warehouse, primaryKey: id, query: "select id, name from accounts" }
  workspaces: { source: warehouse, primaryKey: id, query: "select id, account_id, name from workspaces" }
  contacts:   { source: warehouse, primaryKey: id, query: "select id, workspace_id, email from contacts" }
syncs:
  accounts:   { model: accounts, destination: crm, object: accounts, mode: upsert, batchSize: 50 }
  workspaces: { model: workspaces, destination: crm, object: workspaces, mode: upsert, batchSize: 50 }
  contacts:
    model: contacts
    destination: crm
    object: contacts
    mode: mirror
    batchSize: 50
    mappings: [ { from: email, to: email_address } ]
sequences:
  crm:
    members:
      - { sync: accounts, terminate: on_fatal_or_rejected }
      - { sync: workspaces, terminate: on_fatal_or_rejected }
      - { sync: contacts, terminate: on_fatal_or_rejected }
`;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

function lockstep(dir: string, args: string[]): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--workspace', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOCKSTEP_POLL_MS: '50' },
  });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (d) => (output += String(d)));
  child.stderr?.on('data', (d) => (output += String(d)));
  const exit = new Promise<number | null>((resolveExit) =>
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0 && code !== null && process.env.LOCKSTEP_TEST_VERBOSE) console.error(output);
      resolveExit(code);
    }),
  );
  return { child, exit };
}

async function prepare(): Promise<string> {
  const dir = tempDir('lockstep-durability-');
  createHierarchyFixture(dir, SIZES);
  writeFileSync(join(dir, 'lockstep.yaml'), WORKSPACE);
  const apply = lockstep(dir, ['apply']);
  expect(await apply.exit).toBe(0);
  return dir;
}

interface Observed {
  run: SequenceRun;
  syncRuns: Map<number, SyncRun>;
  /** Rows in each member's destination table, by member index: what the members have written so far. */
  written: number[];
}

const TABLES = ['accounts', 'workspaces', 'contacts'];

/** Rows in a destination table; -1 while the writer holds the file locked. */
function destinationCount(dir: string, table: string): number {
  try {
    return sqliteRows<{ n: number }>(join(dir, 'crm.db'), `select count(*) as n from ${table}`)[0]?.n ?? 0;
  } catch {
    return -1;
  }
}

async function observe(store: SqliteStore, dir: string): Promise<Observed | null> {
  const [run] = await store.listSequenceRuns({ limit: 1, offset: 0, order: 'desc' });
  if (!run) return null;
  const syncRuns = new Map<number, SyncRun>();
  for (const m of run.members) {
    if (m.syncRunId !== null) {
      const syncRun = await store.getSyncRun(m.syncRunId);
      if (syncRun) syncRuns.set(syncRun.id, syncRun);
    }
  }
  return { run, syncRuns, written: TABLES.map((table) => destinationCount(dir, table)) };
}

type KillPoint = (o: Observed) => boolean;

const delivering = (member: number, minRows = 1): KillPoint => (o) => {
  const m = o.run.members[member];
  const r = m?.syncRunId ? o.syncRuns.get(m.syncRunId) : undefined;
  // The run's record and its snapshot follow in steps (every 100 ms, or 5,000 rows) and may still say
  // `querying`; the destination's table shows each written batch.
  return (r?.status === 'querying' || r?.status === 'processing') && (o.written[member] ?? 0) >= minRows;
};

const KILL_POINTS: Array<[string, KillPoint]> = [
  ['as soon as the sequence run is recorded', () => true],
  ['while the first member delivers', delivering(0, 200)],
  ['while the second member reads its model', (o) => {
    const m = o.run.members[1];
    return m?.syncRunId != null && o.syncRuns.get(m.syncRunId)?.status === 'querying';
  }],
  ['while the second member delivers', delivering(1, 500)],
  ['while the last member delivers', delivering(2, 2000)],
];

/** Everything the destination holds, for comparing with a clean run. */
function destinationContents(dir: string) {
  const crm = join(dir, 'crm.db');
  return {
    accounts: sqliteRows(crm, 'select * from accounts order by id'),
    workspaces: sqliteRows(crm, 'select * from workspaces order by id'),
    contacts: sqliteRows(crm, 'select * from contacts order by id'),
  };
}

describe('kill -9 and resume', () => {
  let clean: ReturnType<typeof destinationContents> | null = null;

  async function cleanContents() {
    if (clean) return clean;
    const dir = await prepare();
    const run = lockstep(dir, ['sequence', 'run', 'crm']);
    expect(await run.exit).toBe(0);
    clean = destinationContents(dir);
    expect(clean.contacts).toHaveLength(SIZES.contacts);
    return clean;
  }

  /**
   * Starts the sequence run and kills it at `point`: the store as it was then, or null when the run
   * went past the point between two looks (a loaded machine can stall this process for longer than
   * a member's delivery takes).
   */
  async function killAt(dir: string, store: SqliteStore, point: KillPoint): Promise<Observed | null> {
    const first = lockstep(dir, ['sequence', 'run', 'crm']);
    const deadline = Date.now() + 30_000;
    let killedAt: Observed | null = null;
    while (!killedAt && Date.now() < deadline) {
      const o = await observe(store, dir);
      if (o && point(o)) {
        first.child.kill('SIGKILL');
        killedAt = o;
      } else if (o?.run.status === 'done') break;
      else await new Promise((r) => setTimeout(r, 2));
    }
    if (!killedAt) first.child.kill('SIGKILL');
    await first.exit;
    return killedAt;
  }

  for (const [label, point] of KILL_POINTS) {
    it(`finishes, runs no finished member twice and delivers exactly once when killed ${label}`, async () => {
      const expected = await cleanContents();
      // Up to three fresh workspaces: the property is checked on the first run killed at the point.
      let dir = '';
      let store: SqliteStore | null = null;
      for (let attempt = 1; attempt <= 3 && store === null; attempt++) {
        dir = await prepare();
        const opened = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
        if (await killAt(dir, opened, point)) store = opened;
        else await opened.close();
      }
      if (store === null) return expect.fail(`the run never reached the kill point "${label}" in three tries`);
      try {
        const atKill = (await observe(store, dir)) as Observed;
        if (atKill.run.status === 'done') return expect.fail(`the run finished before the kill "${label}"; make the fixture larger`);

        const restart = lockstep(dir, ['worker', '--drain']);
        expect(await restart.exit).toBe(0);

        const after = (await observe(store, dir)) as Observed;
        expect(after.run.id).toBe(atKill.run.id);
        expect(after.run.status).toBe('done');
        expect(after.run.members.map((m) => m.status)).toEqual(['success', 'success', 'success']);
        // A member that had finished when the process died keeps its sync run: it did not run again.
        atKill.run.members.forEach((m, i) => {
          if (m.status === 'success') expect(after.run.members[i]?.syncRunId).toBe(m.syncRunId);
        });
        // The member that was in flight keeps its sync run: the dead worker's attempt was taken
        // over by the restarted worker under the same run id, as attempt 2.
        const inFlight = atKill.run.members.findIndex((m) => m.status === 'running');
        if (inFlight >= 0) {
          const before = atKill.run.members[inFlight]!.syncRunId!;
          expect(after.run.members[inFlight]?.syncRunId).toBe(before);
          expect(await store.getSyncRun(before)).toMatchObject({ status: 'success', attempt: 2 });
        }
        // Exactly one sequence run, and the destination equals a clean run's.
        expect(await store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(1);
        expect(destinationContents(dir)).toEqual(expected);
      } finally {
        await store.close();
      }
    });
  }
});

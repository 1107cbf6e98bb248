/**
 * SPEC §7 with real processes: `lockstep worker` ×3 and `lockstep scheduler` ×2 on one PostgreSQL
 * store, with 2-second leases, while workers are killed (SIGKILL) and frozen past their lease
 * (SIGSTOP, then SIGCONT). Every sequence run ends `done`, every member has one sync run (taken
 * over under the same id as attempt + 1, never run again once finished), a frozen worker's late
 * writes are refused, and the destination tables equal those of one clean run.
 *
 * Sequence runs are queued in waves (see multiprocess-fixture.ts): a sequence has at most one
 * pending run, so the 200 runs come from 20 sequences × 10 runs each (the first of each fired by
 * the schedulers); the chaos test runs 12 × 6.
 *
 * Each test uses a fresh store database and a fresh workspace folder (warehouse and destination
 * files); both are kept for inspection. Every child is killed with SIGKILL after each test.
 */
import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import type { SequenceRecord } from '../../src/core/workspace.js';
import { type CliProcess, killChildren, sleep } from '../cli/cli-helpers.js';
import {
  type CrmFixture,
  type CrmFixtureOptions,
  type Db,
  type HeldRun,
  WaveDriver,
  checkEveryRunRanOnce,
  cleanRun,
  createCrmFixture,
  destinationDigest,
  fileWriteLocks,
  runsHeldBy,
  seededRandom,
  settleStopped,
  startProcess,
  stderrTails,
  stopWhileHoldingLease,
  syncRunRows,
  waitForRuns,
} from './multiprocess-fixture.js';

const LEASE_SECONDS = 2;
const DAY_MS = 86_400_000;

let fixture: CrmFixture | null = null;
let processes: CliProcess[] = [];

afterEach(async () => {
  await killChildren();
  processes = [];
  await fixture?.close();
  fixture = null;
});

async function sequenceRecords(f: CrmFixture): Promise<SequenceRecord[]> {
  return Promise.all(
    f.sequenceSlugs.map(async (slug) => {
      const record = await f.store.getSequence(slug);
      if (!record) throw new Error(`no sequence ${slug} in the store`);
      return record;
    }),
  );
}

function start(f: CrmFixture, command: 'worker' | 'scheduler', env: Record<string, string> = {}): CliProcess {
  const proc = startProcess(f, command, LEASE_SECONDS, env);
  processes.push(proc);
  return proc;
}

/** Waits until every run in `held` was claimed again (a higher attempt) by a worker not in process `pid`. */
async function waitForTakeover(db: Db, held: HeldRun[], pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await syncRunRows(db, held.map((r) => r.id));
    const taken = rows.filter((row) => {
      const before = held.find((h) => h.id === row.id)!;
      return row.attempt > before.attempt && !row.workerId?.includes(`/${pid}/`);
    });
    if (taken.length === held.length) return;
    if (Date.now() > deadline) {
      const sessions = await db.rows('select client_port, state, backend_xid, left(query, 120) as query from pg_stat_activity where datname = current_database()');
      throw new Error(
        `runs ${JSON.stringify(held)} of process ${pid} were not all taken over within ${timeoutMs} ms: ${JSON.stringify(rows)}\n` +
          `its file write locks: ${JSON.stringify(fileWriteLocks(pid))}\nstore sessions: ${JSON.stringify(sessions)}`,
      );
    }
    await sleep(50);
  }
}

/** Log lines (JSON) of `proc` whose message matches `pattern`; a line still being written is left out. */
function logLines(proc: CliProcess, pattern: RegExp): Array<{ msg: string; syncRunId?: number }> {
  const entries: Array<{ msg: string; syncRunId?: number }> = [];
  for (const line of proc.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      entries.push(JSON.parse(line) as { msg: string; syncRunId?: number });
    } catch {
      // incomplete
    }
  }
  return entries.filter((entry) => pattern.test(entry.msg));
}

const LEASE_LOST = /taken over by another worker|lost the lease/;

describe('workers and schedulers sharing a PostgreSQL store', () => {
  it('200 sequence runs finish done through a SIGKILL and a SIGSTOP past the lease; destinations equal a clean run', async () => {
    const options: CrmFixtureOptions = { shards: 20, yearlySchedule: true, batchSize: 20 };
    const perSequence = 10;
    const t0 = Date.now();
    const phases: string[] = [];
    const phase = (name: string) => phases.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const f = (fixture = await createCrmFixture(options));
    phase('fixture');
    onTestFailed(() => console.error(`store ${f.storeDb.url}, workspace ${f.dir}\n${stderrTails(processes)}`));
    const sequences = await sequenceRecords(f);
    // Each schedule's cursor a year back, the sequences unchanged since (schedulers do not catch up
    // on due times from before a sequence's last change): its latest 1 January is due for both
    // schedulers at start.
    const yearBack = Date.now() - 400 * DAY_MS;
    for (const s of sequences) await f.store.schedules.setScheduleCursor(`sequence:${s.slug}`, yearBack);
    await f.storeDb.rows('update lockstep.sequences set created_at = $1, updated_at = $1', [yearBack]);

    // The worker to be frozen runs two syncs at a time, so that it has moments when it holds no locks.
    const workers = [start(f, 'worker'), start(f, 'worker', { LOCKSTEP_CONCURRENCY: '2' }), start(f, 'worker')];
    // Debug logs: each scheduler logs the firings it made (and the due times it found fired elsewhere).
    const schedulers = [start(f, 'scheduler', { LOCKSTEP_LOG_LEVEL: 'debug' }), start(f, 'scheduler', { LOCKSTEP_LOG_LEVEL: 'debug' })];
    await Promise.all([...workers, ...schedulers].map((p) => p.waitForStderr(/: running on /, 30_000)));

    // One run per sequence for its 1 January, whichever scheduler recorded the firing first.
    await waitForRuns(f.storeDb, 'one scheduled run per sequence', (c) => c.total >= sequences.length, 20_000);
    const newYear = new Date(Date.UTC(new Date().getUTCFullYear(), 0, 1)).toISOString();
    const fired = await f.storeDb.rows<{ key: string }>('select key from lockstep.schedule_firings order by key');
    expect(fired.map((r) => r.key)).toEqual(sequences.map((s) => `sequence:${s.slug}@${newYear}`).sort());
    const scheduled = await f.storeDb.rows<{ detail: string }>(
      "select trigger_detail as detail from lockstep.sequence_runs where trigger_type = 'schedule' order by trigger_detail",
    );
    expect(scheduled.map((r) => r.detail)).toEqual(fired.map((r) => r.key));
    // Each firing is logged by the scheduler that made it, once the run is queued: wait for the lines.
    const firingsLogged = () => schedulers.map((p) => logLines(p, /^schedule fired$/).length);
    for (const until = Date.now() + 10_000; firingsLogged()[0]! + firingsLogged()[1]! < sequences.length && Date.now() < until; ) await sleep(50);
    await sleep(200);
    const firings = firingsLogged();
    expect(firings[0]! + firings[1]!, 'firings made by the two schedulers together').toBe(sequences.length);
    const firedElsewhere = schedulers.map((p) => logLines(p, /^due time already fired elsewhere$/).length);

    const total = sequences.length * perSequence;
    phase('scheduled runs');
    const driver = new WaveDriver(f, sequences, perSequence, new Map(sequences.map((s) => [s.id, 1])));
    try {
      // SIGKILL a worker mid-member: it is stopped while it holds a lease on an active sync run, then killed.
      await waitForRuns(f.storeDb, '20 finished sequence runs', (c) => c.finished >= 20, 60_000);
      const killed = workers[0]!;
      const { held: killedHeld } = await stopWhileHoldingLease(killed, f.storeDb, 20_000);
      killed.child.kill('SIGKILL');
      phase('kill');
      expect((await killed.exited).signal).toBe('SIGKILL');
      // Its process is gone, so the workers on this host release its leases at once.
      await waitForTakeover(f.storeDb, killedHeld, killed.pid, 10_000);

      // SIGSTOP another past its lease: the others take its runs over once the lease ends.
      const frozen = workers[1]!;
      const { held: frozenHeld, tries } = await stopWhileHoldingLease(frozen, f.storeDb, 30_000, true);
      phases.push(`(${tries} tries)`);
      phase('freeze');
      try {
        // It is alive, so nothing releases its leases: they end after LEASE_SECONDS without heartbeats.
        await waitForTakeover(f.storeDb, frozenHeld, frozen.pid, 20_000);
      } finally {
        frozen.child.kill('SIGCONT');
      }
      // Resumed, it finds each of those runs lost and stops them; it writes nothing more to them.
      const deadline = Date.now() + 15_000;
      while (!frozenHeld.every((h) => logLines(frozen, LEASE_LOST).some((l) => l.syncRunId === h.id))) {
        if (Date.now() > deadline) throw new Error(`the resumed worker did not report the lost leases of ${JSON.stringify(frozenHeld)}:\n${frozen.stderr}`);
        await sleep(50);
      }
      expect(frozen.running, 'the resumed worker goes on working').toBe(true);

      await driver.done;
      await waitForRuns(f.storeDb, `${total} finished sequence runs`, (c) => c.total === total && c.finished === total, 90_000);

      phase('all done');
      await checkEveryRunRanOnce(f.storeDb, total);
      // The runs held by the killed and by the frozen worker were finished by others, as a later attempt of the same run.
      const killedRows = await syncRunRows(f.storeDb, killedHeld.map((r) => r.id));
      const frozenRows = await syncRunRows(f.storeDb, frozenHeld.map((r) => r.id));
      for (const [held, rows, pid] of [
        [killedHeld, killedRows, killed.pid],
        [frozenHeld, frozenRows, frozen.pid],
      ] as const) {
        for (const row of rows) {
          const before = held.find((h) => h.id === row.id)!;
          expect(row.status).toBe('success');
          expect(row.attempt).toBeGreaterThan(before.attempt);
          expect(row.workerId).not.toContain(`/${pid}/`);
        }
      }
      expect([killedRows.length, frozenRows.length]).toEqual([killedHeld.length, frozenHeld.length]);
      const takenOver = await f.storeDb.rows<{ id: number; attempt: number }>('select id::int, attempt from lockstep.sync_runs where attempt > 1 order by id');
      expect(takenOver.map((r) => r.id)).toEqual(expect.arrayContaining([...killedHeld, ...frozenHeld].map((h) => h.id)));
      // No run is left leased to the frozen worker.
      expect(await runsHeldBy(f.storeDb, frozen.pid)).toEqual([]);

      // Every process still running stops cleanly.
      for (const proc of [workers[1]!, workers[2]!, ...schedulers]) expect((await proc.stop()).code, proc.stderr).toBe(0);
      console.info(
        `200 sequence runs: ${takenOver.length} sync run(s) taken over (attempts ${takenOver.map((r) => r.attempt).join(', ')}); ` +
          `killed worker held ${killedHeld.length}, frozen worker held ${frozenHeld.length}; firings per scheduler ${firings.join(' + ')} (found fired by the other: ${firedElsewhere.join(' + ')})`,
      );
    } finally {
      driver.stop();
      await driver.done.catch(() => undefined);
    }

    const cleanDir = await cleanRun(f, options);
    phase('clean run');
    console.info(phases.join(', '));
    const clean = destinationDigest(cleanDir, options.shards);
    expect(clean.contacts!.rows).toBeGreaterThan(options.shards * 200);
    expect(destinationDigest(f.dir, options.shards)).toEqual(clean);
  }, 110_000);

  it('chaos: kills of random workers at random moments (seeded), each replaced; everything finishes and destinations equal a clean run', async () => {
    const seed = process.env.LOCKSTEP_CHAOS_SEED ? Number(process.env.LOCKSTEP_CHAOS_SEED) : Math.floor(Math.random() * 2 ** 32);
    const note = `LOCKSTEP_CHAOS_SEED=${seed}: `;
    const random = seededRandom(seed);
    const options: CrmFixtureOptions = { shards: 12, yearlySchedule: false, batchSize: 20 };
    const t0 = Date.now();
    const phases: string[] = [];
    const phase = (name: string) => phases.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const f = (fixture = await createCrmFixture(options));
    phase('fixture');
    onTestFailed(() => console.error(`${note}store ${f.storeDb.url}, workspace ${f.dir}\n${stderrTails(processes)}`));
    const sequences = await sequenceRecords(f);

    const workers = [start(f, 'worker'), start(f, 'worker'), start(f, 'worker')];
    await Promise.all(workers.map((p) => p.waitForStderr(/: running on /, 30_000)));
    phase('started');
    const perSequence = 6;
    const total = sequences.length * perSequence;
    const driver = new WaveDriver(f, sequences, perSequence, new Map());
    const kills: Array<{ pid: number; afterMs: number; held: HeldRun[] }> = [];
    try {
      for (let i = 0; i < 5; i++) {
        const afterMs = Math.floor(200 + random() * 1300);
        const index = Math.floor(random() * workers.length);
        await sleep(afterMs);
        const victim = workers[index]!;
        // Stopped, then read, then killed: what it held when it died, exactly.
        victim.child.kill('SIGSTOP');
        await settleStopped(f.storeDb, victim.pid);
        const held = await runsHeldBy(f.storeDb, victim.pid);
        victim.child.kill('SIGKILL');
        await victim.exited;
        kills.push({ pid: victim.pid, afterMs, held });
        workers[index] = start(f, 'worker');
      }
      phase('kills');
      await driver.done;
      await waitForRuns(f.storeDb, `${note}${total} finished sequence runs`, (c) => c.total === total && c.finished === total, 90_000);
    } finally {
      driver.stop();
      await driver.done.catch(() => undefined);
    }

    phase('all done');
    await checkEveryRunRanOnce(f.storeDb, total, note);
    // Each run a killed worker held was finished by another as a later attempt of the same run.
    for (const kill of kills) {
      for (const row of await syncRunRows(f.storeDb, kill.held.map((h) => h.id))) {
        const before = kill.held.find((h) => h.id === row.id)!;
        expect(row, `${note}run ${row.id} held by killed process ${kill.pid}`).toMatchObject({ status: 'success' });
        expect(row.attempt, `${note}attempt of run ${row.id}`).toBeGreaterThan(before.attempt);
        expect(row.workerId, `${note}worker of run ${row.id}`).not.toContain(`/${kill.pid}/`);
      }
    }
    // A replacement may still be starting: it stops cleanly once it runs.
    for (const proc of workers) {
      await proc.waitForStderr(/: running on /, 30_000);
      const stopped = await proc.stop();
      expect(stopped.code, `${note}signal ${stopped.signal}: ${proc.stderr}`).toBe(0);
    }

    const cleanDir = await cleanRun(f, options);
    phase('clean run');
    expect(destinationDigest(f.dir, options.shards), `${note}destination tables`).toEqual(destinationDigest(cleanDir, options.shards));
    const takenOver = await f.storeDb.rows<{ n: number }>('select count(*)::int as n from lockstep.sync_runs where attempt > 1');
    console.info(
      `${note}${kills.length} kills (${kills.map((k) => `${k.afterMs} ms, ${k.held.length} held`).join('; ')}); ${takenOver[0]!.n} sync run(s) taken over; ${phases.join(', ')}`,
    );
  }, 110_000);
});

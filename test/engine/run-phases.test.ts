import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/connectors/rate-limiter.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { PhaseClock, RUN_PHASES, formatPhaseTimes, type PhaseTimes } from '../../src/core/run-phases.js';
import type { SyncRun } from '../../src/core/runs.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { withWriteHook, type BeforeWrite } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';

const sum = (times: PhaseTimes) => RUN_PHASES.reduce((n, phase) => n + (times[phase] ?? 0), 0);

describe('phase clock', () => {
  it("gives each moment to the main loop's phase; a rate-limit or backoff wait relabels a wait for the destination", () => {
    let now = 0;
    const clock = new PhaseClock(() => now);
    now = 5; // connect
    clock.enter('query');
    now = 15;
    clock.enter('plan');
    now = 18;
    clock.begin('rateLimit'); // beside a planning loop: still plan
    now = 20;
    clock.enter('deliver');
    now = 26; // deliver held back by the rate limit
    clock.end('rateLimit');
    now = 30;
    clock.begin('retry');
    clock.begin('rateLimit');
    now = 37; // a backoff and a rate-limit wait at once: retry
    clock.end('retry');
    clock.end('rateLimit');
    clock.enter('commit');
    now = 40;
    clock.enter('finish');
    now = 41;
    const times = clock.times();
    expect(times).toEqual({ connect: 5, query: 10, plan: 5, deliver: 4, commit: 3, rateLimit: 6, retry: 7, finish: 1 });
    expect(sum(times)).toBe(41);
    expect(formatPhaseTimes(times)).toBe('query 10 ms, retry 7 ms, rateLimit 6 ms, connect 5 ms, plan 5 ms, deliver 4 ms, commit 3 ms, finish 1 ms');
  });

  it('counts the time a request waits for its turn in a rate limiter as the run\'s rate-limit wait', async () => {
    const limiter = createRateLimiter({ requestsPerSecond: 20, concurrency: null });
    const clock = new PhaseClock();
    clock.enter('deliver');
    // Four requests at 20 a second: the last starts about 150 ms after the first.
    await Promise.all([1, 2, 3, 4].map(() => limiter.schedule(async () => undefined, clock)));
    const times = clock.times();
    expect(times.rateLimit).toBeGreaterThanOrEqual(100);
    // Outside a run the limiter works as before.
    await limiter.schedule(async () => undefined);
  });
});

describe("a sync run's phases", () => {
  async function setup(hook: BeforeWrite) {
    const dir = tempDir();
    createHierarchyFixture(dir, { accounts: 10, workspaces: 1, contacts: 1 });
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { path: 'crm.db' })],
        models: [model('accounts', 'warehouse', 'select id, name from accounts')],
        syncs: [sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts', batchSize: 4 })],
      }),
      connectors: (real) => withWriteHook(real, hook),
    });
    const run = async (): Promise<SyncRun> => {
      const { run } = await h.app.runs.triggerSync('accounts-to-crm');
      return h.app.runs.waitForSyncRun(run.id);
    };
    return { h, run };
  }

  it('are stored with the run and add up to its time; a slow destination shows as deliver', async () => {
    const { h, run } = await setup(() => sleep(60));
    await using _ = h;
    const done = await run();
    expect(done.status).toBe('success');
    const phases = done.phaseMs as PhaseTimes;
    expect(Object.keys(phases).sort()).toEqual([...RUN_PHASES].sort());
    for (const phase of RUN_PHASES) expect(phases[phase]).toBeGreaterThanOrEqual(0);
    // Three batches of a destination taking 60 ms each, one at a time.
    expect(phases.deliver).toBeGreaterThanOrEqual(150);
    const duration = (done.finishedAt as number) - (done.startedAt as number);
    // The phases cover the run from its start to just before its final record.
    expect(sum(phases)).toBeLessThanOrEqual(duration + 1);
    expect(sum(phases)).toBeGreaterThanOrEqual(phases.deliver as number);
    expect(await h.app.store.getSyncRun(done.id)).toMatchObject({ phaseMs: phases });
  });

  it('count a backoff before a write is sent again as retry', async () => {
    let failures = 1;
    const { h, run } = await setup(() => {
      if (failures-- > 0) throw new LockstepError(ErrorCode.Transient, 'database is busy', { retryable: true, retryAfterSeconds: 0.2 });
    });
    await using _ = h;
    const done = await run();
    expect(done.status).toBe('success');
    expect(done.phaseMs?.retry).toBeGreaterThanOrEqual(150);
  });

  it('are recorded for a failed run too', async () => {
    const { h, run } = await setup(() => {
      throw new LockstepError(ErrorCode.Connection, 'connection refused');
    });
    await using _ = h;
    const done = await run();
    expect(done.status).toBe('failed');
    expect(Object.keys(done.phaseMs ?? {}).sort()).toEqual([...RUN_PHASES].sort());
  });
});

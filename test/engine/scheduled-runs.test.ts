/**
 * The scheduler inside the app (as `lockstep serve` runs it), on the real SQLite store, with a fake
 * clock: schedules start real runs, a due time fires once even with two schedulers on one store,
 * and a disabled sequence does not run on its schedule.
 */
import { describe, expect, it } from 'vitest';
import { hierarchyWorkspace, member, sequence, sync } from '../helpers/definitions.js';
import { FakeClock, flush } from '../helpers/fake-clock.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';

const cron = (expression: string, timezone = 'UTC') => ({ type: 'cron' as const, expression, timezone, catchupWindowSeconds: 3600 });

function definition() {
  return hierarchyWorkspace(['accounts', 'workspaces'], {
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
      sync('workspaces', {
        model: 'workspaces',
        destination: 'crm',
        object: 'workspaces',
        schedule: { type: 'interval', unit: 'hour', quantity: 1, startAt: null, catchupWindowSeconds: 3600 },
      }),
    ],
    sequences: [
      sequence('crm', [member('accounts'), member('workspaces')], { schedule: cron('*/15 * * * *') }),
      sequence('paused', [member('accounts')], { schedule: cron('*/15 * * * *'), enabled: false }),
    ],
  });
}

/** The real worker waits on real timers for runs; give them a moment after each clock move. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await flush();
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('scheduled runs', () => {
  it('fires cron and interval schedules into real runs, once per due time, and never for a disabled sequence', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const clock = new FakeClock('2026-03-01T10:05:00Z');
    // Two apps on one store file, as two `lockstep serve` processes would be: each due time fires once.
    const env = { LOCKSTEP_POLL_MS: '3600000' };
    await using a = await startHarness({ dir, definition: definition(), clock, env });
    await using b = await startHarness({ dir, definition: definition(), clock, env, startWorker: false });
    await a.app.startScheduler(3_600_000);
    await b.app.startScheduler(3_600_000);

    await clock.set('2026-03-01T10:15:00Z');
    await settle();
    let runs = await a.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' });
    expect(runs).toHaveLength(1);
    expect(runs[0]?.trigger).toEqual({ type: 'schedule', detail: 'sequence:crm@2026-03-01T10:15:00.000Z' });
    const first = await a.app.runs.waitForSequenceRun(runs[0]!.id);
    expect(first.status).toBe('done');

    await clock.set('2026-03-01T11:00:00Z');
    await settle();
    runs = await a.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' });
    const crm = await a.app.store.getSequence('crm');
    expect(runs.every((r) => r.sequenceId === crm!.id)).toBe(true);
    expect(runs.map((r) => r.trigger.detail)).toEqual([
      'sequence:crm@2026-03-01T10:15:00.000Z',
      'sequence:crm@2026-03-01T10:30:00.000Z',
      'sequence:crm@2026-03-01T10:45:00.000Z',
      'sequence:crm@2026-03-01T11:00:00.000Z',
    ]);
    const workspacesSync = await a.app.store.getSync('workspaces');
    const standalone = (await a.app.store.listSyncRuns({ limit: 50, offset: 0, order: 'asc', syncId: workspacesSync!.id })).filter(
      (r) => r.sequenceRunId === null,
    );
    expect(standalone.map((r) => r.trigger.detail)).toEqual(['sync:workspaces@2026-03-01T11:00:00.000Z']);
    for (const run of runs) await a.app.runs.waitForSequenceRun(run.id);
  });

  it('after downtime, missed firings inside the catch-up window collapse into one run', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const clock = new FakeClock('2026-03-01T10:05:00Z');
    const env = { LOCKSTEP_POLL_MS: '3600000' };
    {
      await using first = await startHarness({ dir, definition: definition(), clock, env });
      await first.app.startScheduler(3_600_000);
      await settle();
    }
    // Down from 10:05 to 12:20: due times 10:15 … 12:15; those older than an hour are skipped.
    await clock.set('2026-03-01T12:20:00Z');
    await using second = await startHarness({ dir, definition: definition(), clock, env });
    await second.app.startScheduler(3_600_000);
    await settle();
    const runs = await second.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' });
    expect(runs.map((r) => r.trigger.detail)).toEqual(['sequence:crm@2026-03-01T12:15:00.000Z']);
    await second.app.runs.waitForSequenceRun(runs[0]!.id);
  });

  it('does not fire a schedule another process disabled or changed since this scheduler last read the schedules', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const clock = new FakeClock('2026-03-01T10:05:00Z');
    const env = { LOCKSTEP_POLL_MS: '3600000' };
    // `lockstep serve`, reading the schedules again only after its reload interval.
    await using served = await startHarness({ dir, definition: definition(), clock, env });
    await served.app.startScheduler(3_600_000);
    await settle();
    // `lockstep apply` in another process: crm is disabled, the workspaces sync moves to 11:30.
    await using other = await startHarness({ dir, definition: definition(), clock, env, startWorker: false });
    const changed = definition();
    changed.sequences = changed.sequences.map((s) => (s.slug === 'crm' ? { ...s, enabled: false } : s));
    changed.syncs = changed.syncs.map((s) => (s.slug === 'workspaces' ? { ...s, schedule: cron('30 11 * * *') } : s));
    await other.app.store.applyWorkspace(changed, clock.now());

    await clock.set('2026-03-01T11:00:00Z');
    await settle();
    expect(await served.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toEqual([]);
    expect(await served.app.store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' })).toEqual([]);
  });
});

describe('a schedule given again', () => {
  it('does not catch up on due times from before it was given back: a sequence set to manual and back, or changed while no scheduler ran', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const clock = new FakeClock('2026-03-01T10:05:00Z');
    const env = { LOCKSTEP_POLL_MS: '3600000' };
    const withCrm = (schedule: ReturnType<typeof cron> | { type: 'manual' }) => {
      const changed = definition();
      changed.sequences = changed.sequences.map((s) => (s.slug === 'crm' ? { ...s, schedule } : s));
      return changed;
    };
    {
      await using served = await startHarness({ dir, definition: definition(), clock, env });
      await served.app.startScheduler(3_600_000);
      await settle();
      // In the UI: crm made manual at 10:05, then back on its 15 minutes at 10:40.
      await served.app.store.applyWorkspace(withCrm({ type: 'manual' }), clock.now());
      await served.app.scheduler.reload();
      await clock.set('2026-03-01T10:40:00Z');
      await served.app.store.applyWorkspace(definition(), clock.now());
      await served.app.scheduler.reload();
      await settle();
      // 10:30 came while crm was manual: it is not due; 10:45 is.
      expect(await served.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toEqual([]);
      await clock.set('2026-03-01T10:45:00Z');
      await settle();
      const runs = await served.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' });
      expect(runs.map((r) => r.trigger.detail)).toEqual(['sequence:crm@2026-03-01T10:45:00.000Z']);
      await served.app.runs.waitForSequenceRun(runs[0]!.id);
    }
    // Stopped at 10:50; at 11:10 `lockstep apply` makes crm hourly; started again at 11:20. Hourly,
    // 11:00 came before the change: nothing to catch up on.
    await clock.set('2026-03-01T11:10:00Z');
    {
      await using _apply = await startHarness({ dir, definition: withCrm(cron('0 * * * *')), clock, env, startWorker: false });
    }
    await clock.set('2026-03-01T11:20:00Z');
    await using restarted = await startHarness({ dir, definition: withCrm(cron('0 * * * *')), clock, env });
    await restarted.app.startScheduler(3_600_000);
    await settle();
    const runs = await restarted.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' });
    expect(runs.map((r) => r.trigger.detail)).toEqual(['sequence:crm@2026-03-01T10:45:00.000Z']);
    await clock.set('2026-03-01T12:00:00Z');
    await settle();
    const later = await restarted.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' });
    expect(later.map((r) => r.trigger.detail)).toEqual(['sequence:crm@2026-03-01T10:45:00.000Z', 'sequence:crm@2026-03-01T12:00:00.000Z']);
    for (const run of later) await restarted.app.runs.waitForSequenceRun(run.id);
  });
});

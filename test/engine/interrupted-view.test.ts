/**
 * SPEC §2.3: a sync run whose process stopped is shown `interrupted` until a worker takes it over,
 * saying what comes next — resumed, or, once a cancel was asked for, recorded cancelled.
 */
import { describe, expect, it } from 'vitest';
import { syncRunView } from '../../src/core/run-views.js';
import { ZERO_COUNTS, type SyncRun } from '../../src/core/runs.js';

const NOW = 1_800_000_000_000;

function run(over: Partial<SyncRun>): SyncRun {
  return {
    id: 7,
    syncId: 1,
    status: 'processing',
    trigger: { type: 'manual', detail: 'cli' },
    options: { fullResync: false, resetCDC: false },
    sequenceRunId: null,
    memberKey: null,
    createdAt: NOW - 60_000,
    startedAt: NOW - 59_000,
    finishedAt: null,
    querySize: 100,
    plannedRows: { ...ZERO_COUNTS },
    successfulRows: { ...ZERO_COUNTS },
    failedRows: { ...ZERO_COUNTS },
    completionRatio: 0.5,
    error: null,
    cancelRequested: false,
    apiUsage: null,
    phaseMs: null,
    comparison: null,
    attempt: 1,
    workerId: 'host/123/abc',
    leaseExpiresAt: NOW + 10_000,
    ...over,
  };
}

describe('a sync run whose process stopped', () => {
  it('is shown as recorded while its lease holds', () => {
    expect(syncRunView(run({}), NOW)).toMatchObject({ status: 'processing', error: null });
  });

  it('is shown interrupted once its lease ended, saying the next worker resumes it', () => {
    expect(syncRunView(run({ leaseExpiresAt: NOW - 1 }), NOW)).toMatchObject({
      status: 'interrupted',
      error: expect.stringMatching(/^the process running it stopped; the next worker to start .* resumes it under the same id/),
    });
  });

  it('says a cancel asked for meanwhile ends it when a worker takes it over, rather than that it resumes', () => {
    const view = syncRunView(run({ leaseExpiresAt: NOW - 1, cancelRequested: true }), NOW);
    expect(view.status).toBe('interrupted');
    expect(view.error).toMatch(/cancel requested: the next worker to start .* records it cancelled, sending nothing more/);
    expect(view.error).not.toMatch(/resumes/);
  });

  it('keeps a finished run as it ended', () => {
    expect(syncRunView(run({ status: 'success', finishedAt: NOW - 5, leaseExpiresAt: null }), NOW)).toMatchObject({ status: 'success', error: null });
  });
});

/**
 * SPEC §2.3: a sync run whose process stopped is shown `interrupted` until a worker takes it over,
 * saying what comes next — resumed, or, once a cancel was asked for, recorded cancelled.
 */
import { describe, expect, it } from 'vitest';
import { formatSequenceReport } from '../../src/cli/output.js';
import { sequenceRunView, syncRunView } from '../../src/core/run-views.js';
import { ZERO_COUNTS, type MemberRun, type SequenceRun, type SyncRun } from '../../src/core/runs.js';
import { membersInWords } from '../../web/src/format.js';

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

describe("a sequence run whose member's process stopped", () => {
  const member = (key: string, syncId: number, over: Partial<MemberRun>): MemberRun => ({
    key,
    syncId,
    position: syncId - 1,
    status: 'pending',
    syncRunId: null,
    startedAt: null,
    finishedAt: null,
    terminate: 'on_fatal',
    rejectedThreshold: null,
    timeoutMinutes: null,
    ...over,
  });
  function sequenceRun(accounts: SyncRun): SequenceRun {
    return {
      id: '6f1c1d3e-0000-4000-8000-000000000001',
      sequenceId: 1,
      status: 'running',
      trigger: { type: 'manual', detail: 'cli' },
      createdAt: NOW - 60_000,
      startedAt: NOW - 59_000,
      finishedAt: null,
      terminatedBy: null,
      reason: null,
      cancelRequested: false,
      resumedFrom: null,
      concurrency: null,
      deadlineMinutes: null,
      members: [
        member('accounts', 1, { status: 'running', syncRunId: accounts.id, startedAt: NOW - 59_000 }),
        member('contacts', 2, {}),
      ],
    };
  }
  const slugs = new Map([
    [1, { slug: 'accounts', deleted: false }],
    [2, { slug: 'contacts', deleted: false }],
  ]);
  const view = (accounts: SyncRun) =>
    sequenceRunView(sequenceRun(accounts), new Map([[accounts.id, accounts]]), slugs, { slug: 'crm', deleted: false }, NOW);

  it('shows the member interrupted, as its sync run, until a worker takes it over', () => {
    const accounts = run({ sequenceRunId: '6f1c1d3e-0000-4000-8000-000000000001', memberKey: 'accounts', leaseExpiresAt: NOW - 1 });
    const shown = view(accounts);
    expect(shown.status).toBe('running');
    expect(shown.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts', 'interrupted'],
      ['contacts', 'pending'],
    ]);
    expect(shown.members[0]!.syncRun?.status).toBe('interrupted');
    expect(shown.syncRuns).toEqual([{ syncId: 1, syncRunId: 7, status: 'interrupted', finishedAt: null }]);
    expect(formatSequenceReport(shown)).toMatch(/ 1 +accounts +interrupted /);
    expect(membersInWords(shown.members)).toBe('0 of 2 members ran, 1 interrupted, 1 waiting');
  });

  it('shows the member running while its worker holds the lease', () => {
    const accounts = run({ sequenceRunId: '6f1c1d3e-0000-4000-8000-000000000001', memberKey: 'accounts' });
    expect(view(accounts).members[0]!.status).toBe('running');
  });
});

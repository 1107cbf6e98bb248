/**
 * The resume and deadline part of the SequenceRunStore contract (SPEC §3.4): a run keeps the
 * members and limits its sequence had when it was queued; `resumeSequenceRun` queues, in one
 * transaction, a run of a failed run's sequence with the members that finished well carried over
 * (the rest pending), or refuses — a run that did not fail, one resumed already, a sequence whose
 * members changed or that has a queued run — writing nothing; an advance past a run's deadline
 * ends it, skipping the members not started.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/core/errors.js';
import type { Store } from '../../../src/core/ports.js';
import type { SequenceRun, SyncRun, SyncRunStatus } from '../../../src/core/runs.js';
import { decideSequenceAdvance, decideSequenceResume } from '../../../src/core/sequence-rules.js';
import type { SequenceDef } from '../../../src/core/workspace.js';
import { LEASE, MANUAL, T0, expectError, member, useFreshStore, type OpenStore } from './fixtures.js';

const MINUTE = 60_000;

export function describeSequenceResumeContract(name: string, open: OpenStore): void {
  describe(`SequenceRunStore contract, resume and deadlines: ${name}`, () => {
    let store: Store;
    const { applyCrm, sequence } = useFreshStore(open, (opened) => {
      store = opened;
    });
    const advance = (id: string, now: number) => store.advanceSequenceRun(id, decideSequenceAdvance, now);
    const resume = (id: string, now: number) => store.resumeSequenceRun(id, decideSequenceResume, MANUAL, now);
    /** A run of the hierarchy with a deadline of a minute, its first member's sync run started and claimed at T0 + 2. */
    const deadlineRunWithFirstMemberClaimed = async () => {
      await applyCrm();
      const hierarchy = await sequence('crm-hierarchy');
      const { record } = await store.upsertEntity('sequence', { ...hierarchy, slug: 'with-deadline', deadlineMinutes: 1 }, 'api', T0);
      const { run } = await store.enqueueSequenceRun(record, MANUAL, T0);
      await store.claimSequenceRun(run.id, T0);
      const accounts = (await advance(run.id, T0 + 1)).started[0] as SyncRun;
      await store.claimSyncRun(accounts.id, T0 + 2, LEASE);
      return { run, accounts };
    };
    const everything = () => store.listSequenceRuns({ limit: 100, offset: 0, order: 'asc' });

    /** Claims a member's sync run and ends it with `status`. */
    async function finishMember(run: SyncRun, status: SyncRunStatus, now: number, patch: Parameters<Store['updateSyncRun']>[1] = {}): Promise<void> {
      await store.claimSyncRun(run.id, now, LEASE);
      await store.updateSyncRun(run.id, { ...patch, status }, now + 0.5, 1);
    }

    /**
     * A failed run of the linear crm-hierarchy: accounts succeeds, contacts (terminate: never)
     * ends with rejected rows, deals fails and terminates the run.
     */
    async function failedLinearRun(at = T0): Promise<SequenceRun> {
      const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, at);
      await store.claimSequenceRun(run.id, at);
      const outcomes: Array<[SyncRunStatus, Parameters<Store['updateSyncRun']>[1]]> = [
        ['success', { plannedRows: { addedCount: 10, changedCount: 0, removedCount: 0 } }],
        ['warning', { plannedRows: { addedCount: 10, changedCount: 0, removedCount: 0 }, failedRows: { addedCount: 2, changedCount: 0, removedCount: 0 } }],
        ['failed', { error: 'connection refused' }],
      ];
      for (const [i, [status, patch]] of outcomes.entries()) {
        const [started] = (await advance(run.id, at + 10 * i + 1)).started;
        await finishMember(started!, status, at + 10 * i + 2, patch);
      }
      const end = await advance(run.id, at + 40);
      expect(end.run).toMatchObject({ status: 'failed', terminatedBy: 'deals-to-crm' });
      return end.run;
    }

    it('keeps the members and limits a run was queued with', async () => {
      await applyCrm();
      const limited: SequenceDef = {
        slug: 'limited',
        name: 'Limited',
        members: [member('accounts-to-crm', { timeoutMinutes: 5 }), member('contacts-to-crm', { key: 'contacts', after: [] })],
        concurrency: 2,
        schedule: { type: 'manual' },
        enabled: true,
        deadlineMinutes: 30,
      };
      const { record } = await store.upsertEntity('sequence', limited, 'api', T0);
      const { run } = await store.enqueueSequenceRun(record, MANUAL, T0);
      expect(run).toMatchObject({ deadlineMinutes: 30, resumedFrom: null });
      expect(run.members.map((m) => [m.key, m.timeoutMinutes])).toEqual([
        ['accounts-to-crm', 5],
        ['contacts', null],
      ]);
      // A later edit applies to the next run, not to this one.
      await store.upsertEntity('sequence', { ...limited, deadlineMinutes: 60, members: limited.members.map((m) => ({ ...m, timeoutMinutes: 1 })) }, 'api', T0 + 1);
      const again = await store.getSequenceRun(run.id);
      expect(again?.deadlineMinutes).toBe(30);
      expect(again?.members.map((m) => m.timeoutMinutes)).toEqual([5, null]);
      // The member graph it was queued with is what a resume compares with (see below); a run without limits has none.
      const { run: plain } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0 + 2);
      expect(plain.deadlineMinutes).toBeNull();
      expect(plain.members.every((m) => m.timeoutMinutes === null)).toBe(true);
    });

    it('resumes a failed run: members that finished well are carried over with their runs, the rest run', async () => {
      await applyCrm();
      const failed = await failedLinearRun();
      expect(await store.resumingSequenceRunId(failed.id)).toBeNull();
      const resumed = await resume(failed.id, T0 + 100);
      expect(resumed).toMatchObject({ status: 'pending', resumedFrom: failed.id, createdAt: T0 + 100, reason: null, terminatedBy: null });
      expect(resumed.id).not.toBe(failed.id);
      expect(await store.resumingSequenceRunId(failed.id)).toBe(resumed.id);
      expect(await store.resumingSequenceRunId(resumed.id)).toBeNull();
      expect(resumed.members.map((m) => [m.key, m.status])).toEqual([
        ['accounts-to-crm', 'success'],
        ['contacts-to-crm', 'warning'],
        ['deals-to-crm', 'pending'],
      ]);
      for (const i of [0, 1]) {
        const was = failed.members[i]!;
        expect(resumed.members[i]).toMatchObject({ syncRunId: was.syncRunId, startedAt: was.startedAt, finishedAt: was.finishedAt, syncId: was.syncId });
      }
      expect(resumed.members[2]).toMatchObject({ syncRunId: null, startedAt: null, finishedAt: null });
      expect(await store.getSequenceRun(resumed.id)).toEqual(resumed);
      // The failed run is left as it was.
      expect(await store.getSequenceRun(failed.id)).toEqual(failed);

      // Claimed, it starts with the first member that did not finish well: the others never run again.
      await store.claimSequenceRun(resumed.id, T0 + 101);
      const first = await advance(resumed.id, T0 + 102);
      expect(first.started.map((r) => r.memberKey)).toEqual(['deals-to-crm']);
      expect(first.started[0]).toMatchObject({ sequenceRunId: resumed.id, trigger: { type: 'sequence', detail: resumed.id } });
      // The carried-over warning does not terminate the new run (its run belongs to the failed one).
      expect(first.run.reason).toBeNull();
      await finishMember(first.started[0]!, 'success', T0 + 103);
      const end = await advance(resumed.id, T0 + 104);
      expect(end.run).toMatchObject({ status: 'done', reason: null });
      expect(end.run.members.map((m) => m.status)).toEqual(['success', 'warning', 'success']);
      const rows = await store.listSyncRuns({ limit: 100, offset: 0, order: 'asc' });
      expect(rows.filter((r) => r.sequenceRunId === resumed.id).map((r) => r.memberKey)).toEqual(['deals-to-crm']);
    });

    it('runs again a member whose rejected rows terminated the run, and one whose outcome its policy now refuses', async () => {
      await applyCrm();
      // accounts (on_fatal_or_rejected, 5%) rejects 1 of 10 rows and terminates the run.
      const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
      await store.claimSequenceRun(run.id, T0);
      const [accounts] = (await advance(run.id, T0 + 1)).started;
      await finishMember(accounts!, 'warning', T0 + 2, {
        plannedRows: { addedCount: 10, changedCount: 0, removedCount: 0 },
        failedRows: { addedCount: 1, changedCount: 0, removedCount: 0 },
      });
      const failed = (await advance(run.id, T0 + 3)).run;
      expect(failed).toMatchObject({ status: 'failed', terminatedBy: 'accounts-to-crm' });
      const resumed = await resume(failed.id, T0 + 4);
      expect(resumed.members.map((m) => m.status)).toEqual(['pending', 'pending', 'pending']);

      // contacts ended `warning` under terminate: never, which now says on_fatal_or_rejected.
      await store.requestSequenceRunCancel(resumed.id);
      const other = await failedLinearRun(T0 + 1000);
      const hierarchy = await sequence('crm-hierarchy');
      const stricter = { ...hierarchy, members: hierarchy.members.map((m) => (m.key === 'contacts-to-crm' ? { ...m, terminate: 'on_fatal_or_rejected' as const } : m)) };
      await store.upsertEntity('sequence', stricter, 'file', T0 + 1200);
      const again = await resume(other.id, T0 + 1300);
      expect(again.members.map((m) => m.status)).toEqual(['success', 'pending', 'pending']);
    });

    it('starts the dependants of carried-over members of a graph at once', async () => {
      await applyCrm();
      // crm-graph: accounts first, then contacts and deals (after accounts), two at once.
      const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
      await store.claimSequenceRun(run.id, T0);
      const [accounts] = (await advance(run.id, T0 + 1)).started;
      await finishMember(accounts!, 'success', T0 + 2);
      const fanned = (await advance(run.id, T0 + 3)).started;
      expect(fanned.map((r) => r.memberKey)).toEqual(['contacts', 'deals']);
      await finishMember(fanned[0]!, 'failed', T0 + 4, { error: 'timeout' });
      await finishMember(fanned[1]!, 'success', T0 + 5);
      const failed = (await advance(run.id, T0 + 6)).run;
      expect(failed).toMatchObject({ status: 'failed', terminatedBy: 'contacts' });

      const resumed = await resume(failed.id, T0 + 10);
      expect(resumed.members.map((m) => [m.key, m.status])).toEqual([
        ['accounts', 'success'],
        ['contacts', 'pending'],
        ['deals', 'success'],
      ]);
      await store.claimSequenceRun(resumed.id, T0 + 11);
      const step = await advance(resumed.id, T0 + 12);
      expect(step.started.map((r) => r.memberKey)).toEqual(['contacts']);
    });

    it('refuses a run still queued or running, or done, saying why, and changes nothing', async () => {
      await applyCrm();
      const linear = await sequence('crm-hierarchy');
      const { run: pending } = await store.enqueueSequenceRun(linear, MANUAL, T0);
      const before = await everything();
      expect((await expectError(resume(pending.id, T0 + 1), ErrorCode.Conflict)).message).toBe(
        `sequence run ${pending.id} is still pending; only a failed or cancelled run can be resumed — wait for it to end (or cancel it)`,
      );
      await store.claimSequenceRun(pending.id, T0 + 2);
      expect((await expectError(resume(pending.id, T0 + 3), ErrorCode.Conflict)).message).toContain('is still running');
      await store.finishSequenceRun(pending.id, 'done', T0 + 4);
      expect((await expectError(resume(pending.id, T0 + 5), ErrorCode.Conflict)).message).toBe(
        `sequence run ${pending.id} finished successfully (done); there is nothing to resume — start a new run with \`lockstep sequence run crm-hierarchy\``,
      );
      const after = await everything();
      expect(after.map((r) => r.id)).toEqual(before.map((r) => r.id));
      expect(after.every((r) => r.resumedFrom === null)).toBe(true);
      await expectError(resume('00000000-0000-4000-8000-000000000000', T0), ErrorCode.NotFound);
    });

    it('resumes a cancelled run, and a cancelled resume of it: a cancel never leaves the work to a full run only', async () => {
      await applyCrm();
      const linear = await sequence('crm-hierarchy');
      const { run: cancelled } = await store.enqueueSequenceRun(linear, MANUAL, T0);
      await store.requestSequenceRunCancel(cancelled.id);
      const resumed = await resume(cancelled.id, T0 + 2);
      expect(resumed).toMatchObject({ status: 'pending', resumedFrom: cancelled.id });
      await store.requestSequenceRunCancel(resumed.id);
      expect((await expectError(resume(cancelled.id, T0 + 4), ErrorCode.Conflict)).message).toBe(
        `sequence run ${cancelled.id} was already resumed by run ${resumed.id} (cancelled); resume ${resumed.id} instead`,
      );
      expect(await resume(resumed.id, T0 + 5)).toMatchObject({ status: 'pending', resumedFrom: resumed.id });
    });

    it('resumes a run once, and not while its sequence has a queued run', async () => {
      await applyCrm();
      const failed = await failedLinearRun();
      const { run: queued } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0 + 50);
      const before = await everything();
      expect((await expectError(resume(failed.id, T0 + 60), ErrorCode.Conflict)).message).toBe(
        `sequence "crm-hierarchy" already has a queued run, ${queued.id}; resume ${failed.id} after it has run, or cancel it first`,
      );
      expect(await everything()).toEqual(before);
      await store.requestSequenceRunCancel(queued.id);

      const [first, second] = await Promise.allSettled([resume(failed.id, T0 + 70), resume(failed.id, T0 + 70)]);
      const made = [first, second].filter((r) => r.status === 'fulfilled');
      expect(made).toHaveLength(1);
      const resumed = (made[0] as PromiseFulfilledResult<SequenceRun>).value;
      const refused = [first, second].find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toMatchObject({ code: ErrorCode.Conflict });
      expect(String(refused.reason.message)).toContain(`already resumed by run ${resumed.id} (pending)`);
      expect((await everything()).filter((r) => r.resumedFrom === failed.id)).toHaveLength(1);
    });

    it('refuses when the sequence\'s members changed since the run, naming the changes', async () => {
      await applyCrm();
      const failed = await failedLinearRun();
      const hierarchy = await sequence('crm-hierarchy');
      const before = await everything();

      // The same members in another order: the line (and so the dependencies) changed.
      const reordered = { ...hierarchy, members: [hierarchy.members[1]!, hierarchy.members[0]!, hierarchy.members[2]!] };
      await store.upsertEntity('sequence', reordered, 'file', T0 + 100);
      const error = await expectError(resume(failed.id, T0 + 101), ErrorCode.Conflict);
      expect(error.message).toContain(`the members of sequence "crm-hierarchy" changed since run ${failed.id}: `);
      expect(error.message).toContain('member "contacts-to-crm" now waits for nothing (was accounts-to-crm)');
      expect(error.message).toContain('member "accounts-to-crm" now waits for contacts-to-crm (was nothing)');
      expect(error.message).toContain('— a resume needs the members the run had — start a new run with `lockstep sequence run crm-hierarchy`');

      const fewer = { ...hierarchy, members: hierarchy.members.slice(0, 2) };
      await store.upsertEntity('sequence', fewer, 'file', T0 + 102);
      expect((await expectError(resume(failed.id, T0 + 103), ErrorCode.Conflict)).message).toContain('member "deals-to-crm" was removed');
      const renamed = { ...hierarchy, members: [...hierarchy.members.slice(0, 2), { ...hierarchy.members[2]!, key: 'deals' }] };
      await store.upsertEntity('sequence', renamed, 'file', T0 + 104);
      const both = (await expectError(resume(failed.id, T0 + 105), ErrorCode.Conflict)).message;
      expect(both).toContain('member "deals" was added');
      expect(both).toContain('member "deals-to-crm" was removed');
      // Policies and limits are not membership: back to the members it had, with another policy, it resumes.
      await store.upsertEntity('sequence', { ...hierarchy, members: hierarchy.members.map((m) => ({ ...m, timeoutMinutes: 10 })) }, 'file', T0 + 106);
      expect(await everything()).toEqual(before);
      const resumed = await resume(failed.id, T0 + 107);
      expect(resumed.members.map((m) => m.timeoutMinutes)).toEqual([10, 10, 10]);
    });

    it('ends a run at its deadline: members not started are skipped, the reason says so', async () => {
      const { run, accounts } = await deadlineRunWithFirstMemberClaimed();
      // Before the deadline nothing happens; at it, the run records why it ends.
      expect((await advance(run.id, T0 + MINUTE - 1)).run.reason).toBeNull();
      const step = await advance(run.id, T0 + MINUTE);
      expect(step.run).toMatchObject({
        status: 'running',
        terminatedBy: null,
        reason: 'sequence "with-deadline" passed its deadline of 1 minute; not started, so skipped: contacts-to-crm, deals-to-crm; stopped: accounts-to-crm',
      });
      expect(step.run.members.map((m) => m.status)).toEqual(['running', 'skipped', 'skipped']);
      // The member's worker stops it (see memberLimit); then the run fails with the deadline's reason.
      await store.updateSyncRun(accounts.id, { status: 'cancelled', error: 'stopped: the sequence run passed its deadline of 1 minute' }, T0 + MINUTE + 5, 1);
      const end = await advance(run.id, T0 + MINUTE + 6);
      expect(end.run).toMatchObject({ status: 'failed', reason: step.run.reason, terminatedBy: null });
      expect(end.run.members.map((m) => m.status)).toEqual(['cancelled', 'skipped', 'skipped']);
    });

    it('names a member its worker stopped at the deadline before an advance saw the deadline', async () => {
      const { run, accounts } = await deadlineRunWithFirstMemberClaimed();
      // A member blocked reading its source is stopped at once, ahead of the sequence's advance.
      await store.updateSyncRun(accounts.id, { status: 'cancelled', error: 'stopped: the sequence run passed its deadline of 1 minute' }, T0 + MINUTE, 1);
      const end = await advance(run.id, T0 + MINUTE + 1);
      expect(end.run).toMatchObject({
        status: 'failed',
        terminatedBy: null,
        reason: 'sequence "with-deadline" passed its deadline of 1 minute; not started, so skipped: contacts-to-crm, deals-to-crm; stopped: accounts-to-crm',
      });
      expect(end.run.members.map((m) => m.status)).toEqual(['cancelled', 'skipped', 'skipped']);
    });

    it('keeps the reason of a member that failed before the deadline, even when the advance comes after it', async () => {
      await applyCrm();
      const hierarchy = await sequence('crm-hierarchy');
      const { record } = await store.upsertEntity('sequence', { ...hierarchy, slug: 'with-deadline', deadlineMinutes: 1 }, 'api', T0);
      const { run } = await store.enqueueSequenceRun(record, MANUAL, T0);
      await store.claimSequenceRun(run.id, T0);
      const [accounts] = (await advance(run.id, T0 + 1)).started;
      await finishMember(accounts!, 'failed', T0 + 2, { error: 'connection refused' });
      const end = await advance(run.id, T0 + 2 * MINUTE);
      expect(end.run).toMatchObject({ status: 'failed', terminatedBy: 'accounts-to-crm', reason: 'member "accounts-to-crm" failed: connection refused' });
    });
  });
}

/**
 * The FinishedRunOutbox contract: a run is recorded once, in the transaction that ends it (which
 * ends its lease too), also when it ends before it started: a queued sync run or a pending sequence
 * run cancelled by a user, skipped with its member, or cancelled with its deleted sync or sequence.
 * Entries are taken oldest first, each by one taker at a time for a lease and
 * by another once that hold ends, and are gone once acknowledged.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/core/errors.js';
import type { LeaseRequest, Store } from '../../../src/core/ports.js';
import type { SyncRun } from '../../../src/core/runs.js';
import { LEASE, MANUAL, NO_OPTIONS, T0, crmWorkspace, expectError, useFreshStore, type OpenStore } from './fixtures.js';

export function describeFinishedRunsContract(name: string, open: OpenStore): void {
  describe(`FinishedRunOutbox contract: ${name}`, () => {
    let store: Store;
    const { applyCrm, syncId, sequence, runningRun } = useFreshStore(open, (opened) => {
      store = opened;
    });

    const A: LeaseRequest = { workerId: 'host-a/101/a1b2', leaseMs: 10_000 };
    const B: LeaseRequest = { workerId: 'host-b/202/c3d4', leaseMs: 10_000 };

    it('records a run once when it finishes, and ends its lease', async () => {
      await applyCrm();
      const run = await runningRun('accounts-to-crm');
      await store.updateSyncRun(run.id, { status: 'processing' }, T0 + 2);
      expect(await store.takeFinishedRuns(10, T0 + 2, A)).toEqual([]);
      const done = await store.updateSyncRun(run.id, { status: 'success' }, T0 + 3);
      expect(done).toMatchObject({ status: 'success', attempt: 1, workerId: LEASE.workerId, leaseExpiresAt: null });
      // The same final status again changes nothing and records nothing.
      await store.updateSyncRun(run.id, { status: 'success', completionRatio: 1 }, T0 + 3);
      expect(await store.listLeases()).toEqual([]);
      expect(await store.takeFinishedRuns(10, T0 + 4, A)).toEqual([{ id: expect.any(Number), kind: 'sync', runId: String(run.id) }]);
    });

    /** What the outbox holds now, as [kind, runId], oldest first; the entries are acknowledged. */
    async function drain(now: number): Promise<Array<[string, string]>> {
      const entries = await store.takeFinishedRuns(100, now, A);
      await store.ackFinishedRuns(entries.map((e) => e.id));
      return entries.map((e) => [e.kind, e.runId]);
    }

    it('records a queued sync run and a pending sequence run a user cancelled before they started, once', async () => {
      await applyCrm();
      const { run: queued } = await store.enqueueSyncRun({ syncId: await syncId('accounts-to-crm'), trigger: MANUAL, options: NO_OPTIONS }, T0);
      const { run: pending } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
      expect(await store.requestSyncRunCancel(queued.id, T0 + 1)).toMatchObject({ status: 'cancelled' });
      expect(await store.requestSequenceRunCancel(pending.id)).toMatchObject({ status: 'cancelled' });
      expect(await drain(T0 + 10)).toEqual([
        ['sync', String(queued.id)],
        ['sequence', pending.id],
      ]);
      // A cancel asked for again is refused and records nothing more.
      await expectError(store.requestSyncRunCancel(queued.id), ErrorCode.Conflict);
      await expectError(store.requestSequenceRunCancel(pending.id), ErrorCode.Conflict);
      expect(await drain(T0 + 20)).toEqual([]);
    });

    it('records the queued member runs a sequence run cancels or skips, and the run when it ends', async () => {
      const { syncs } = await applyCrm();
      const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
      await store.claimSequenceRun(run.id, T0);
      const [accounts] = await store.startMembers(run.id, [{ key: 'accounts', syncId: syncs['accounts-to-crm']!.id }], T0 + 1);
      // Cancelled by a user while queued: its member is cancelled with it.
      await store.requestSyncRunCancel(accounts!.id, T0 + 1);
      const [contacts] = await store.startMembers(run.id, [{ key: 'contacts', syncId: syncs['contacts-to-crm']!.id }], T0 + 2);
      // Skipped with its member, never having started.
      await store.skipPendingMembers(run.id, T0 + 3);
      expect(await store.getSyncRun(contacts!.id)).toMatchObject({ status: 'cancelled' });
      await store.finishSequenceRun(run.id, 'cancelled', T0 + 4);
      expect(await drain(T0 + 10)).toEqual([
        ['sync', String(accounts!.id)],
        ['sync', String(contacts!.id)],
        ['sequence', run.id],
      ]);
    });

    it('records the queued and pending runs that deleting their sync or sequence cancels', async () => {
      await applyCrm();
      const deals = await syncId('deals-to-crm');
      const { run: queued } = await store.enqueueSyncRun({ syncId: deals, trigger: MANUAL, options: NO_OPTIONS }, T0);
      const { run: waitingOnDeals } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
      const { run: ofGraph } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
      const next = crmWorkspace();
      next.syncs = next.syncs.filter((s) => s.slug !== 'deals-to-crm');
      next.sequences = next.sequences
        .filter((s) => s.slug !== 'crm-graph')
        .map((s) => ({ ...s, members: s.members.filter((m) => m.sync !== 'deals-to-crm') }));
      await store.applyWorkspace(next, T0 + 10);
      for (const id of [waitingOnDeals.id, ofGraph.id]) expect((await store.getSequenceRun(id))?.status).toBe('cancelled');
      expect((await store.getSyncRun(queued.id))?.status).toBe('cancelled');
      const recorded = await drain(T0 + 20);
      expect(recorded).toHaveLength(3);
      expect(recorded).toEqual(
        expect.arrayContaining([
          ['sync', String(queued.id)],
          ['sequence', waitingOnDeals.id],
          ['sequence', ofGraph.id],
        ]),
      );
    });

    it('hands each entry to one taker until its hold ends, oldest first, and forgets acknowledged ones', async () => {
      await applyCrm();
      const runs: SyncRun[] = [];
      for (const [i, slug] of ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'].entries()) {
        const run = await runningRun(slug, T0 + i);
        await store.updateSyncRun(run.id, { status: i === 1 ? 'failed' : 'success' }, T0 + i + 2);
        runs.push(run);
      }
      const { run: sequenceRun } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
      await store.claimSequenceRun(sequenceRun.id, T0);
      await store.finishSequenceRun(sequenceRun.id, 'done', T0 + 5);
      // Finishing again with the same status records nothing more.
      await store.finishSequenceRun(sequenceRun.id, 'done', T0 + 6);

      const first = await store.takeFinishedRuns(2, T0 + 10, A);
      expect(first.map((e) => [e.kind, e.runId])).toEqual([
        ['sync', String(runs[0]!.id)],
        ['sync', String(runs[1]!.id)],
      ]);
      const second = await store.takeFinishedRuns(10, T0 + 11, B);
      expect(second.map((e) => [e.kind, e.runId])).toEqual([
        ['sync', String(runs[2]!.id)],
        ['sequence', sequenceRun.id],
      ]);
      expect([...first, ...second].map((e) => e.id)).toEqual([...first, ...second].map((e) => e.id).sort((x, y) => x - y));
      expect(await store.takeFinishedRuns(10, T0 + 12, B)).toEqual([]);

      await store.ackFinishedRuns([first[0]!.id]);
      // A's hold on the other entry ends: another process takes it; B's holds last longer.
      expect(await store.takeFinishedRuns(10, T0 + 10 + A.leaseMs, B)).toEqual([first[1]]);
      await store.ackFinishedRuns([first[1]!.id, ...second.map((e) => e.id)]);
      await store.ackFinishedRuns([]);
      expect(await store.takeFinishedRuns(10, T0 + 100 * A.leaseMs, A)).toEqual([]);
    });
  });
}

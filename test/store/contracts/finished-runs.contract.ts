/**
 * The FinishedRunOutbox contract: a run is recorded once, in the transaction that ends it (which
 * ends its lease too). Entries are taken oldest first, each by one taker at a time for a lease and
 * by another once that hold ends, and are gone once acknowledged.
 */
import { describe, expect, it } from 'vitest';
import type { LeaseRequest, Store } from '../../../src/core/ports.js';
import type { SyncRun } from '../../../src/core/runs.js';
import { LEASE, MANUAL, T0, useFreshStore, type OpenStore } from './fixtures.js';

export function describeFinishedRunsContract(name: string, open: OpenStore): void {
  describe(`FinishedRunOutbox contract: ${name}`, () => {
    let store: Store;
    const { applyCrm, sequence, runningRun } = useFreshStore(open, (opened) => {
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

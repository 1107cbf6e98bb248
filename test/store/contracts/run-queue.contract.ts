/**
 * The run queue contract (SyncRunStore): a sync has at most one queued standalone run, which
 * repeated triggers share, and at most one active run, whatever started it. A worker claims a run
 * for a lease; while the lease holds nobody else gets the run, and once it ends (or its worker
 * releases it) the run is taken over under the same id as the next attempt, after which every
 * write of the earlier attempt (run patches, rejected rows, snapshot and record-id writes) is
 * refused with `lease_lost`, changing nothing. `claimNextSyncRun` takes an expired run first, then
 * the oldest queued run whose sync is free. A firing key and the run it queues are written together
 * (enqueueFiredRun): once per key, never one without the other. A terminal status is final and sets
 * `finishedAt`; runs are listed with filters and paging, and keep their rejected rows in insertion order.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, NotFoundError } from '../../../src/core/errors.js';
import type { LeaseRequest, Store } from '../../../src/core/ports.js';
import { syncRunView } from '../../../src/core/run-views.js';
import type { SyncRun, SyncRunStatus } from '../../../src/core/runs.js';
import { sequenceRunDetails } from '../../../src/engine/run-details.js';
import type { SyncDef } from '../../../src/core/workspace.js';
import { LEASE, MANUAL, NO_OPTIONS, T0, crmWorkspace, expectError, useFreshStore, type OpenStore } from './fixtures.js';

export function describeRunQueueContract(name: string, open: OpenStore): void {
  describe(`SyncRunStore contract: ${name}`, () => {
    let store: Store;
    const { applyCrm, syncId, sequence, runningRun } = useFreshStore(open, (opened) => {
      store = opened;
    });

    describe('sync runs', () => {
      it('queues a run, and shares one queued follow-up between repeated triggers', async () => {
        const { syncs } = await applyCrm();
        const id = syncs['accounts-to-crm']!.id;
        const first = await store.enqueueSyncRun({ syncId: id, trigger: { type: 'api', detail: 'token-1' }, options: NO_OPTIONS }, T0);
        expect(first.created).toBe(true);
        expect(first.run).toEqual({
          id: first.run.id,
          syncId: id,
          status: 'queued',
          trigger: { type: 'api', detail: 'token-1' },
          options: NO_OPTIONS,
          sequenceRunId: null,
          memberKey: null,
          createdAt: T0,
          startedAt: null,
          finishedAt: null,
          querySize: 0,
          plannedRows: { addedCount: 0, changedCount: 0, removedCount: 0 },
          successfulRows: { addedCount: 0, changedCount: 0, removedCount: 0 },
          failedRows: { addedCount: 0, changedCount: 0, removedCount: 0 },
          completionRatio: 0,
          error: null,
          cancelRequested: false,
          apiUsage: null,
          phaseMs: null,
          comparison: null,
          attempt: 0,
          workerId: null,
          leaseExpiresAt: null,
        });
        expect(Number.isInteger(first.run.id)).toBe(true);
        const again = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0 + 1);
        expect(again).toMatchObject({ created: false, run: { id: first.run.id } });

        await store.claimSyncRun(first.run.id, T0 + 2, LEASE);
        const followUp = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0 + 3);
        expect(followUp.created).toBe(true);
        expect(followUp.run.id).not.toBe(first.run.id);
        const shared = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0 + 4);
        expect(shared).toMatchObject({ created: false, run: { id: followUp.run.id } });
        // Another sync has its own queue.
        const other = await store.enqueueSyncRun({ syncId: syncs['deals-to-crm']!.id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        expect(other.created).toBe(true);
      });

      it('keeps a full resync asked for by a trigger that joined a queued run', async () => {
        const id = await (applyCrm().then(() => syncId('accounts-to-crm')));
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        const joined = await store.enqueueSyncRun(
          { syncId: id, trigger: MANUAL, options: { fullResync: true, resetCDC: false } },
          T0 + 1,
        );
        expect(joined.created).toBe(false);
        expect(joined.run.options).toEqual({ fullResync: true, resetCDC: false });
        expect((await store.getSyncRun(run.id))?.options).toEqual({ fullResync: true, resetCDC: false });
      });

      it('refuses a trigger whose fullResync or resetCDC contradicts the queued run it would join, changing nothing', async () => {
        const id = await (applyCrm().then(() => syncId('accounts-to-crm')));
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: { fullResync: true, resetCDC: false } }, T0);
        const refused = await expectError(store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: { fullResync: false, resetCDC: true } }, T0 + 1), ErrorCode.Conflict);
        expect(refused.message).toBe(
          `sync run ${run.id} waits in the queue with fullResync, which this trigger's resetCDC contradicts (fullResync sends every row, resetCDC sends none) — trigger again once that run has started, or cancel it first`,
        );
        expect((await store.getSyncRun(run.id))?.options).toEqual({ fullResync: true, resetCDC: false });
        // A trigger asking for neither, or for the same, still joins it.
        expect((await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0 + 2)).run.id).toBe(run.id);
        expect((await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: { fullResync: true, resetCDC: false } }, T0 + 3)).run.id).toBe(run.id);

        const other = await syncId('contacts-to-crm');
        const reset = await store.enqueueSyncRun({ syncId: other, trigger: MANUAL, options: { fullResync: false, resetCDC: true } }, T0);
        await expectError(store.enqueueSyncRun({ syncId: other, trigger: MANUAL, options: { fullResync: true, resetCDC: false } }, T0 + 1), ErrorCode.Conflict);
        expect((await store.getSyncRun(reset.run.id))?.options).toEqual({ fullResync: false, resetCDC: true });
        expect(await store.listSyncRuns({ syncId: other, limit: 10, offset: 0, order: 'desc' })).toHaveLength(1);
      });

      it('keeps a full comparison asked for by a trigger that joined a queued run', async () => {
        const id = await (applyCrm().then(() => syncId('accounts-to-crm')));
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        expect(run.options.fullCompare).toBeUndefined();
        const joined = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: { fullResync: false, resetCDC: false, fullCompare: true } }, T0 + 1);
        expect(joined.run.options).toEqual({ fullResync: false, resetCDC: false, fullCompare: true });
        expect((await store.getSyncRun(run.id))?.options.fullCompare).toBe(true);
      });

      it('refuses to queue a run of an unknown sync', async () => {
        await applyCrm();
        await expectError(store.enqueueSyncRun({ syncId: 9999, trigger: MANUAL, options: NO_OPTIONS }, T0), ErrorCode.NotFound);
      });

      it('cancels a run a schedule, webhook or upstream run queued once its sync is disabled (apply, API or switch); a manual one still starts', async () => {
        const { syncs } = await applyCrm();
        const declared = crmWorkspace().syncs.find((s) => s.slug === 'accounts-to-crm') as SyncDef;
        const id = syncs['accounts-to-crm']!.id;
        const disabled = { ...crmWorkspace(), syncs: crmWorkspace().syncs.map((s) => (s.slug === 'accounts-to-crm' ? { ...s, enabled: false } : s)) };
        const ways = [
          () => store.applyWorkspace(disabled, T0 + 2),
          () => store.upsertEntity('sync', { ...declared, enabled: false }, 'api', T0 + 2),
          () => store.setEnabled('sync', id, false, T0 + 2),
        ];
        for (const [i, type] of (['schedule', 'webhook', 'upstream'] as const).entries()) {
          await store.setEnabled('sync', id, true, T0 + 1);
          const { run } = await store.enqueueSyncRun({ syncId: id, trigger: { type, detail: `fired ${type}` }, options: NO_OPTIONS }, T0 + 1);
          await ways[i]!();
          const after = await store.getSyncRun(run.id);
          expect(after, type).toMatchObject({ status: 'cancelled', finishedAt: T0 + 2, startedAt: null });
          expect(after?.error).toBe('the sync was disabled before this run started; a disabled sync runs only when started by hand or through the API');
        }
        // Run by hand (or through the API), a disabled sync runs: its queued run stays.
        await store.setEnabled('sync', id, true, T0 + 3);
        const { run: manual } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0 + 3);
        await store.setEnabled('sync', id, false, T0 + 4);
        expect((await store.getSyncRun(manual.id))?.status).toBe('queued');
      });

      it('records a firing key and queues its run together: once per key, and neither when the sync or sequence is gone', async () => {
        const { syncs } = await applyCrm();
        const id = syncs['accounts-to-crm']!.id;
        const trigger = { type: 'schedule' as const, detail: 'sync:accounts-to-crm@t1' };
        const first = await store.enqueueFiredRun('sync:accounts-to-crm@t1', { kind: 'sync', run: { syncId: id, trigger, options: NO_OPTIONS } }, T0);
        expect(first).toEqual({ runId: expect.any(String), created: true });
        expect((await store.getSyncRun(Number(first!.runId)))?.trigger).toEqual(trigger);
        expect(await store.schedules.recordFiring('sync:accounts-to-crm@t1', T0)).toBe(false);
        // The same key again (a retry after a crash): nothing more is queued.
        expect(await store.enqueueFiredRun('sync:accounts-to-crm@t1', { kind: 'sync', run: { syncId: id, trigger, options: NO_OPTIONS } }, T0 + 1)).toBeNull();
        expect(await store.listQueuedSyncRuns()).toHaveLength(1);
        // Another key joins the queued run, as a trigger does.
        expect(await store.enqueueFiredRun('sync:accounts-to-crm@t2', { kind: 'sync', run: { syncId: id, trigger, options: NO_OPTIONS } }, T0 + 2)).toEqual({
          runId: first!.runId,
          created: false,
        });

        const crm = await sequence('crm-hierarchy');
        const fired = await store.enqueueFiredRun('sequence:crm-hierarchy@t1', { kind: 'sequence', sequence: crm, trigger: MANUAL }, T0 + 3);
        expect(fired).toEqual({ runId: expect.any(String), created: true });
        expect((await store.getSequenceRun(fired!.runId))?.status).toBe('pending');

        await expectError(store.enqueueFiredRun('sync:gone@t1', { kind: 'sync', run: { syncId: 9999, trigger, options: NO_OPTIONS } }, T0 + 4), ErrorCode.NotFound);
        expect(await store.schedules.recordFiring('sync:gone@t1', T0 + 5)).toBe(true);
      });

      it('claims a queued run only while no other run of its sync is active', async () => {
        const id = await (applyCrm().then(() => syncId('accounts-to-crm')));
        const { run: first } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        const claimed = await store.claimSyncRun(first.id, T0 + 1.5, LEASE);
        expect(claimed).toMatchObject({ id: first.id, status: 'querying', startedAt: T0 + 1.5 });
        expect(await store.claimSyncRun(first.id, T0 + 2, LEASE)).toBeNull();

        const { run: second } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0 + 2);
        expect(await store.claimSyncRun(second.id, T0 + 3, LEASE)).toBeNull();
        // Not even a direct status change may make a second run of the sync active.
        await expectError(store.updateSyncRun(second.id, { status: 'processing' }, T0 + 3), ErrorCode.Conflict);
        await store.updateSyncRun(first.id, { status: 'processing' }, T0 + 4);
        expect(await store.claimSyncRun(second.id, T0 + 5, LEASE)).toBeNull();
        await store.updateSyncRun(first.id, { status: 'reporting' }, T0 + 6);
        expect(await store.claimSyncRun(second.id, T0 + 7, LEASE)).toBeNull();
        expect((await store.getSyncRun(second.id))?.status).toBe('queued');

        await store.updateSyncRun(first.id, { status: 'warning' }, T0 + 8);
        expect(await store.claimSyncRun(second.id, T0 + 9, LEASE)).toMatchObject({ status: 'querying', startedAt: T0 + 9 });

        // A run of another sync is not held up.
        const deals = await runningRun('deals-to-crm', T0 + 10);
        expect(deals.status).toBe('querying');
      });

      it('holds a sync for member runs too: a standalone run waits for a member run of the same sync', async () => {
        await applyCrm();
        const { run: seqRun } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await store.claimSequenceRun(seqRun.id, T0);
        const accounts = await syncId('accounts-to-crm');
        const [memberRun] = await store.startMembers(seqRun.id, [{ key: 'accounts-to-crm', syncId: accounts }], T0);
        const { run: standalone } = await store.enqueueSyncRun({ syncId: accounts, trigger: MANUAL, options: NO_OPTIONS }, T0);
        expect(standalone.id).not.toBe(memberRun!.id);
        expect(await store.claimSyncRun(memberRun!.id, T0 + 1, LEASE)).not.toBeNull();
        expect(await store.claimSyncRun(standalone.id, T0 + 2, LEASE)).toBeNull();
        await store.updateSyncRun(memberRun!.id, { status: 'success' }, T0 + 3);
        expect(await store.claimSyncRun(standalone.id, T0 + 4, LEASE)).not.toBeNull();
      });

      it('applies patches; a terminal status sets finishedAt and is final', async () => {
        await applyCrm();
        const run = await runningRun('accounts-to-crm');
        const counts = { addedCount: 10, changedCount: 5, removedCount: 2 };
        const patched = await store.updateSyncRun(
          run.id,
          { status: 'processing', querySize: 1000, plannedRows: counts, completionRatio: 0.25, error: 'slow' },
          T0 + 2,
        );
        expect(patched).toMatchObject({ status: 'processing', querySize: 1000, plannedRows: counts, completionRatio: 0.25 });
        expect(patched.error).toBe('slow');
        expect(patched.finishedAt).toBeNull();

        const partial = await store.updateSyncRun(run.id, { successfulRows: { addedCount: 9, changedCount: 5, removedCount: 2 } }, T0 + 3);
        expect(partial).toMatchObject({ status: 'processing', querySize: 1000, plannedRows: counts, error: 'slow' });
        expect(partial.successfulRows).toEqual({ addedCount: 9, changedCount: 5, removedCount: 2 });

        const finished = await store.updateSyncRun(
          run.id,
          { status: 'warning', failedRows: { addedCount: 1, changedCount: 0, removedCount: 0 }, completionRatio: 1, error: null },
          T0 + 4.75,
        );
        expect(finished).toMatchObject({ status: 'warning', finishedAt: T0 + 4.75, completionRatio: 1, error: null });
        expect(finished.startedAt).toBe(run.startedAt);
        expect(await store.getSyncRun(run.id)).toEqual(finished);

        await expectError(store.updateSyncRun(run.id, { status: 'processing' }, T0 + 5), ErrorCode.Conflict);
        expect((await store.getSyncRun(run.id))?.status).toBe('warning');
        await expectError(store.updateSyncRun(9999, { status: 'processing' }, T0), ErrorCode.NotFound);
        expect(await store.getSyncRun(9999)).toBeNull();
      });

      it('keeps a run\'s API usage on its record', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSyncRun({ syncId: syncs['accounts-to-crm']!.id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        await store.claimSyncRun(run.id, T0 + 1, LEASE);
        await store.updateSyncRun(run.id, { status: 'processing', apiUsage: { used: 12, limit: 15000, calls: 3 } }, T0 + 2);
        const done = await store.updateSyncRun(run.id, { status: 'success' }, T0 + 3);
        expect(done.apiUsage).toEqual({ used: 12, limit: 15000, calls: 3 });
        expect((await store.getSyncRun(run.id))?.apiUsage).toEqual({ used: 12, limit: 15000, calls: 3 });
      });

      it("keeps where a run's time went on its record", async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSyncRun({ syncId: syncs['accounts-to-crm']!.id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        expect(run.phaseMs).toBeNull();
        await store.claimSyncRun(run.id, T0 + 1, LEASE);
        const phaseMs = { connect: 1.5, query: 120, plan: 30.2, deliver: 80, commit: 4, rateLimit: 0, retry: 0, finish: 2 };
        const done = await store.updateSyncRun(run.id, { status: 'success', phaseMs }, T0 + 3);
        expect(done.phaseMs).toEqual(phaseMs);
        // A later update without them keeps them.
        await store.updateSyncRun(run.id, { error: null }, T0 + 4);
        expect((await store.getSyncRun(run.id))?.phaseMs).toEqual(phaseMs);
      });

      it('records how a run compared the model', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSyncRun({ syncId: syncs['accounts-to-crm']!.id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        await store.claimSyncRun(run.id, T0 + 1, LEASE);
        const comparison = { planner: 'warehouse' as const, kind: 'cursor' as const, notes: ['planner table rebuilt'] };
        await store.updateSyncRun(run.id, { comparison }, T0 + 2);
        const done = await store.updateSyncRun(run.id, { status: 'success' }, T0 + 3);
        expect(done.comparison).toEqual(comparison);
        expect((await store.getSyncRun(run.id))?.comparison).toEqual(comparison);
      });

      it('cancels a queued run at once and flags an active one', async () => {
        await applyCrm();
        const { run: queued } = await store.enqueueSyncRun({ syncId: await syncId('deals-to-crm'), trigger: MANUAL, options: NO_OPTIONS }, T0);
        const cancelled = await store.requestSyncRunCancel(queued.id);
        expect(cancelled).toMatchObject({ status: 'cancelled', cancelRequested: true });
        expect(cancelled.finishedAt).not.toBeNull();
        expect(await store.listQueuedSyncRuns()).toEqual([]);

        const active = await runningRun('accounts-to-crm');
        const flagged = await store.requestSyncRunCancel(active.id, T0 + 2);
        expect(flagged).toMatchObject({ status: 'querying', cancelRequested: true, finishedAt: null });
        expect((await store.getSyncRun(active.id))?.cancelRequested).toBe(true);
        await store.updateSyncRun(active.id, { status: 'cancelled' }, T0 + 5);

        const conflict = await expectError(store.requestSyncRunCancel(active.id, T0 + 6), ErrorCode.Conflict);
        expect(conflict.message).toContain(String(active.id));
        const missing = await expectError(store.requestSyncRunCancel(9999), ErrorCode.NotFound);
        expect(missing).toBeInstanceOf(NotFoundError);
      });

      it('shows a pending cancel in the run views read back, until the run ends', async () => {
        await applyCrm();
        const active = await runningRun('accounts-to-crm');
        const shown = async () => {
          const listed = await store.listSyncRuns({ limit: 10, offset: 0, order: 'desc' });
          return [syncRunView((await store.getSyncRun(active.id))!, T0 + 3).cancelRequested, syncRunView(listed.find((r) => r.id === active.id)!, T0 + 3).cancelRequested];
        };
        expect(await shown()).toEqual([false, false]);
        await store.requestSyncRunCancel(active.id, T0 + 2);
        expect(await shown()).toEqual([true, true]);
        await store.updateSyncRun(active.id, { status: 'cancelled' }, T0 + 3);
        expect(await shown()).toEqual([false, false]);

        const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0 + 1);
        const sequenceShown = async () => {
          const [listed] = await store.listSequenceRuns({ limit: 10, offset: 0, order: 'desc' });
          return [(await sequenceRunDetails(store, (await store.getSequenceRun(run.id))!, T0 + 3)).cancelRequested, (await sequenceRunDetails(store, listed!, T0 + 3)).cancelRequested];
        };
        expect(await sequenceShown()).toEqual([false, false]);
        expect(await store.requestSequenceRunCancel(run.id)).toMatchObject({ status: 'running' });
        expect(await sequenceShown()).toEqual([true, true]);
        await store.finishSequenceRun(run.id, 'cancelled', T0 + 3);
        expect(await sequenceShown()).toEqual([false, false]);
      });

      it('lists queued runs oldest first', async () => {
        await applyCrm();
        const ids: number[] = [];
        for (const [i, slug] of ['deals-to-crm', 'accounts-to-crm', 'contacts-to-crm'].entries()) {
          const { run } = await store.enqueueSyncRun({ syncId: await syncId(slug), trigger: MANUAL, options: NO_OPTIONS }, T0 + i);
          ids.push(run.id);
        }
        expect((await store.listQueuedSyncRuns()).map((r) => r.id)).toEqual(ids);
        await store.claimSyncRun(ids[1]!, T0 + 5, LEASE);
        expect((await store.listQueuedSyncRuns()).map((r) => r.id)).toEqual([ids[0], ids[2]]);
      });

      it('lists runs with every filter, paging and both orders', async () => {
        await applyCrm();
        const accounts = await syncId('accounts-to-crm');
        const deals = await syncId('deals-to-crm');
        const made: SyncRun[] = [];
        for (let i = 0; i < 6; i++) {
          const sync = i % 2 === 0 ? accounts : deals;
          const { run } = await store.enqueueSyncRun({ syncId: sync, trigger: MANUAL, options: NO_OPTIONS }, T0 + i * 100);
          await store.claimSyncRun(run.id, T0 + i * 100 + 1, LEASE);
          made.push(await store.updateSyncRun(run.id, { status: i === 4 ? 'failed' : 'success' }, T0 + i * 100 + 2));
        }
        const ids = made.map((r) => r.id);
        const list = (q: Partial<Parameters<Store['listSyncRuns']>[0]>) =>
          store.listSyncRuns({ limit: 100, offset: 0, order: 'desc', ...q }).then((runs) => runs.map((r) => r.id));

        expect(await list({})).toEqual([...ids].reverse());
        expect(await list({ order: 'asc' })).toEqual(ids);
        expect(await list({ syncId: accounts, order: 'asc' })).toEqual([ids[0], ids[2], ids[4]]);
        expect(await list({ syncIds: [deals, accounts] })).toEqual([...ids].reverse());
        expect(await list({ syncIds: [deals], limit: 2 })).toEqual([ids[5], ids[3]]);
        expect(await list({ syncIds: [] })).toEqual([]);
        expect(await list({ runId: ids[3] })).toEqual([ids[3]]);
        expect(await list({ statuses: ['failed'] })).toEqual([ids[4]]);
        expect(await list({ statuses: ['failed', 'success'], syncId: deals })).toEqual([ids[5], ids[3], ids[1]]);
        expect(await list({ statuses: ['queued'] })).toEqual([]);
        expect(await list({ after: T0 + 200, order: 'asc' })).toEqual(ids.slice(2));
        expect(await list({ before: T0 + 200, order: 'asc' })).toEqual(ids.slice(0, 2));
        expect(await list({ after: T0 + 100, before: T0 + 400, order: 'asc' })).toEqual(ids.slice(1, 4));
        expect(await list({ limit: 2, offset: 0, order: 'asc' })).toEqual(ids.slice(0, 2));
        expect(await list({ limit: 2, offset: 2, order: 'asc' })).toEqual(ids.slice(2, 4));
        expect(await list({ limit: 2, offset: 5, order: 'asc' })).toEqual(ids.slice(5));
        expect(await list({ limit: 3, offset: 1, order: 'desc' })).toEqual([ids[4], ids[3], ids[2]]);
      });

      it('filters runs by the status they are shown with at a time: an active run whose lease has ended is interrupted', async () => {
        await applyCrm();
        const accounts = await syncId('accounts-to-crm');
        const ids: number[] = [];
        for (let i = 0; i < 3; i++) {
          const { run } = await store.enqueueSyncRun({ syncId: accounts, trigger: MANUAL, options: NO_OPTIONS }, T0 + i * 100);
          await store.claimSyncRun(run.id, T0 + i * 100 + 1, LEASE);
          ids.push((await store.updateSyncRun(run.id, { status: 'success' }, T0 + i * 100 + 2)).id);
        }
        const active = await runningRun('accounts-to-crm', T0 + 1_000);
        await store.updateSyncRun(active.id, { status: 'processing' }, T0 + 1_002, 1);
        const held = T0 + 1_010;
        const lapsed = active.leaseExpiresAt! + 1;
        const list = (statuses: SyncRunStatus[], at: number, page: { limit?: number; offset?: number } = {}) =>
          store.listSyncRuns({ syncId: accounts, statuses, statusesAt: at, limit: 100, offset: 0, order: 'desc', ...page }).then((runs) => runs.map((r) => r.id));

        expect(await list(['processing'], held)).toEqual([active.id]);
        expect(await list(['interrupted'], held)).toEqual([]);
        expect(await list(['processing'], lapsed)).toEqual([]);
        expect(await list(['interrupted'], lapsed)).toEqual([active.id]);
        expect(await list(['querying', 'processing', 'reporting'], lapsed)).toEqual([]);
        // Paging counts only the runs the filter keeps.
        expect(await list(['interrupted', 'success'], lapsed, { limit: 2 })).toEqual([active.id, ids[2]]);
        expect(await list(['interrupted', 'success'], lapsed, { limit: 2, offset: 2 })).toEqual([ids[1], ids[0]]);
        expect(await list(['success', 'processing'], lapsed, { limit: 2 })).toEqual([ids[2], ids[1]]);
        expect(await list(['success', 'processing'], lapsed, { limit: 2, offset: 2 })).toEqual([ids[0]]);
        expect(await list([], lapsed)).toEqual([]);
        // Without a time, by the status recorded.
        expect((await store.listSyncRuns({ syncId: accounts, statuses: ['processing'], limit: 10, offset: 0, order: 'desc' })).map((r) => r.id)).toEqual([active.id]);
      });

      it('reads the newest runs of every sync at once, a sync without runs and a deleted sync left out', async () => {
        await applyCrm();
        const accounts = await syncId('accounts-to-crm');
        const deals = await syncId('deals-to-crm');
        const ended: SyncRun[] = [];
        for (let i = 0; i < 5; i++) {
          const { run } = await store.enqueueSyncRun({ syncId: i < 3 ? accounts : deals, trigger: MANUAL, options: NO_OPTIONS }, T0 + i * 100);
          await store.claimSyncRun(run.id, T0 + i * 100 + 1, LEASE);
          ended.push(await store.updateSyncRun(run.id, { status: i === 1 ? 'warning' : 'success' }, T0 + i * 100 + 2));
        }
        const running = await runningRun('accounts-to-crm', T0 + 600);
        const { run: queued } = await store.enqueueSyncRun({ syncId: accounts, trigger: MANUAL, options: NO_OPTIONS }, T0 + 700);
        const latest = async (perSync: number) => (await store.latestSyncRuns(perSync)).map((r) => [r.syncId, r.id, r.status]);

        expect(await latest(2)).toEqual([
          [accounts, queued.id, 'queued'],
          [accounts, running.id, 'querying'],
          [deals, ended[4]!.id, 'success'],
          [deals, ended[3]!.id, 'success'],
        ]);
        expect(await latest(1)).toEqual([
          [accounts, queued.id, 'queued'],
          [deals, ended[4]!.id, 'success'],
        ]);

        for (const sequence of ['crm-hierarchy', 'crm-graph']) await store.deleteEntity('sequence', sequence, T0 + 800);
        await store.deleteEntity('sync', 'deals-to-crm', T0 + 800);
        expect(await latest(1)).toEqual([[accounts, queued.id, 'queued']]);
      });

      it('keeps rejected rows per run, in insertion order, with paging', async () => {
        await applyCrm();
        const a = await runningRun('accounts-to-crm');
        const b = await runningRun('deals-to-crm');
        const rowsA = Array.from({ length: 7 }, (_, i) => ({
          syncRunId: a.id,
          key: JSON.stringify([10 - i]),
          op: (['added', 'changed', 'removed'] as const)[i % 3]!,
          reason: `violates constraint ${i}`,
        }));
        await store.addRejectedRows(rowsA.slice(0, 4));
        await store.addRejectedRows([{ syncRunId: b.id, key: '["eu",1]', op: 'added', reason: 'HTTP 422: bad email' }]);
        await store.addRejectedRows(rowsA.slice(4));
        await store.addRejectedRows([]);

        expect(await store.listRejectedRows(a.id, 100, 0)).toEqual(rowsA);
        expect(await store.listRejectedRows(a.id, 3, 3)).toEqual(rowsA.slice(3, 6));
        expect(await store.listRejectedRows(a.id, 3, 6)).toEqual(rowsA.slice(6));
        expect(await store.listRejectedRows(b.id, 10, 0)).toEqual([
          { syncRunId: b.id, key: '["eu",1]', op: 'added', reason: 'HTTP 422: bad email' },
        ]);
        expect(await store.listRejectedRows(9999, 10, 0)).toEqual([]);
        await expectError(store.addRejectedRows([{ syncRunId: 9999, key: '[1]', op: 'added', reason: 'x' }]), ErrorCode.NotFound);
        expect(await store.listRejectedRows(a.id, 100, 0)).toHaveLength(7);

        // A run that reads its model again forgets what it rejected before; other runs keep theirs.
        await store.clearRejectedRows(a.id);
        expect(await store.listRejectedRows(a.id, 100, 0)).toEqual([]);
        expect(await store.listRejectedRows(b.id, 10, 0)).toHaveLength(1);
        await store.addRejectedRows(rowsA.slice(2, 3));
        expect(await store.listRejectedRows(a.id, 100, 0)).toEqual(rowsA.slice(2, 3));
        await store.clearRejectedRows(9999);
      });
    });

    describe('leases', () => {
      const A: LeaseRequest = { workerId: 'host-a/101/a1b2', leaseMs: 10_000 };
      const B: LeaseRequest = { workerId: 'host-b/202/c3d4', leaseMs: 10_000 };

      async function claimedBy(slug: string, lease: LeaseRequest, now: number): Promise<SyncRun> {
        const { run } = await store.enqueueSyncRun({ syncId: await syncId(slug), trigger: MANUAL, options: NO_OPTIONS }, now);
        const claimed = await store.claimSyncRun(run.id, now, lease);
        if (!claimed) throw new Error(`claim of ${slug} failed`);
        return claimed;
      }

      it('holds a claimed run for its worker until the lease ends, then another worker takes it over as the next attempt', async () => {
        const id = await applyCrm().then(() => syncId('accounts-to-crm'));
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        const claimed = await store.claimSyncRun(run.id, T0 + 1, A);
        expect(claimed).toMatchObject({ id: run.id, status: 'querying', attempt: 1, workerId: A.workerId, leaseExpiresAt: T0 + 1 + A.leaseMs, startedAt: T0 + 1 });
        await store.updateSyncRun(run.id, { status: 'processing' }, T0 + 2, 1);
        // While the lease holds, nobody else gets the run.
        expect(await store.claimSyncRun(run.id, T0 + 5_000, B)).toBeNull();
        expect(await store.claimNextSyncRun(T0 + 5_000, B)).toBeNull();
        expect(await store.claimSyncRun(run.id, T0 + 5_000, A)).toBeNull();

        // The lease ends (its worker died or froze): the run is taken over under its id, with its start kept.
        const end = T0 + 1 + A.leaseMs;
        const taken = await store.claimSyncRun(run.id, end, B);
        expect(taken).toMatchObject({ id: run.id, status: 'querying', attempt: 2, workerId: B.workerId, leaseExpiresAt: end + B.leaseMs, startedAt: T0 + 1 });
        expect(await store.getSyncRun(run.id)).toEqual(taken);
        expect(await store.claimSyncRun(run.id, end, A)).toBeNull();
        await expectError(store.claimSyncRun(9999, T0, A), ErrorCode.NotFound);
      });

      it('refuses every write of an attempt that was taken over, changing nothing, and lets the new attempt write', async () => {
        const id = await applyCrm().then(() => syncId('accounts-to-crm'));
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        await store.claimSyncRun(run.id, T0, A);
        const first = { runId: run.id, attempt: 1 };
        const rejected = (reason: string) => [{ syncRunId: run.id, key: '[9]', op: 'added' as const, reason }];
        await store.snapshots.write(id, [['[1]', 'aaaaaaaaaaaaaaaa']], [], first);
        await store.snapshots.recordIdsWrite(id, [['[1]', 'r1']], [], first);
        await store.addRejectedRows(rejected('first attempt'), first);
        await store.updateSyncRun(run.id, { status: 'processing', querySize: 10 }, T0 + 1, 1);

        expect(await store.claimSyncRun(run.id, T0 + A.leaseMs, B)).toMatchObject({ attempt: 2 });
        const before = await store.getSyncRun(run.id);
        const late = T0 + A.leaseMs + 1;
        const refused = [
          () => store.updateSyncRun(run.id, { querySize: 99 }, late, 1),
          () => store.updateSyncRun(run.id, { status: 'reporting' }, late, 1),
          () => store.updateSyncRun(run.id, { status: 'success', completionRatio: 1 }, late, 1),
          () => store.addRejectedRows(rejected('late'), first),
          () => store.clearRejectedRows(run.id, first),
          () => store.snapshots.write(id, [['[2]', 'bbbbbbbbbbbbbbbb']], ['[1]'], first),
          () => store.snapshots.write(id, { keys: ['[3]'], hashes: new Uint32Array([1, 2]) }, [], first),
          () => store.snapshots.write(id, { keys: ['[4]'], hashes: new Uint32Array([1, 2]) }, [], first, { addedCount: 1, changedCount: 0, removedCount: 0 }),
          () => store.snapshots.recordIdsWrite(id, [['[2]', 'r2']], ['[1]'], first),
          () => store.snapshots.clear(id, first),
          () => store.snapshots.cursorSet(id, { value: 'late', runs: 9 }, first),
        ];
        for (const write of refused) {
          const error = await expectError(write(), ErrorCode.LeaseLost);
          expect(error.message).toContain(`sync run ${run.id} attempt 1`);
          expect(error.message).toContain('attempt 2');
        }
        expect(await store.getSyncRun(run.id)).toEqual(before);
        expect(Object.fromEntries(await store.snapshots.get(id, ['[1]', '[2]', '[3]']))).toEqual({ '[1]': 'aaaaaaaaaaaaaaaa' });
        expect(Object.fromEntries(await store.snapshots.recordIdsGet(id, ['[1]', '[2]']))).toEqual({ '[1]': 'r1' });
        expect((await store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual(['first attempt']);
        expect(await store.takeFinishedRuns(10, late, A)).toEqual([]);

        const second = { runId: run.id, attempt: 2 };
        await store.snapshots.clear(id, second);
        await store.snapshots.write(id, { keys: ['[3]'], hashes: new Uint32Array([1, 2]) }, [], second);
        // A write that counts what it records as delivered adds to the run's counts in its transaction, commits side by side included.
        const counted = (changedCount: number) => ({ addedCount: 1, changedCount, removedCount: 2 });
        await Promise.all([
          store.snapshots.write(id, [['[5]', 'cccccccccccccccc']], ['[6]'], second, counted(3)),
          store.snapshots.write(id, [['[7]', 'dddddddddddddddd']], [], second, counted(4)),
        ]);
        expect((await store.getSyncRun(run.id))?.successfulRows).toEqual({ addedCount: 2, changedCount: 7, removedCount: 4 });
        // With the run's reach, its rows read and planned are raised to it, never lowered: a record
        // never shows more rows delivered than read or planned, whichever update lands last.
        await store.updateSyncRun(run.id, { querySize: 40, plannedRows: { addedCount: 3, changedCount: 30, removedCount: 4 } }, late, 2);
        const reach = (querySize: number, changedCount: number) => ({ querySize, planned: { addedCount: 3, changedCount, removedCount: 5 } });
        await store.snapshots.write(id, [['[8]', 'eeeeeeeeeeeeeeee']], [], second, counted(1), reach(50, 20));
        expect(await store.getSyncRun(run.id)).toMatchObject({
          querySize: 50,
          plannedRows: { addedCount: 3, changedCount: 30, removedCount: 5 },
          successfulRows: { addedCount: 3, changedCount: 8, removedCount: 6 },
        });
        await store.snapshots.write(id, [], ['[8]'], second);
        await store.snapshots.write(id, [], ['[5]', '[7]'], second);
        await store.snapshots.recordIdsWrite(id, [['[2]', 'r2']], ['[1]'], second);
        await store.addRejectedRows(rejected('second attempt'), second);
        expect((await store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual(['first attempt', 'second attempt']);
        await store.clearRejectedRows(run.id, second);
        await store.addRejectedRows(rejected('second attempt, read again'), second);
        const done = await store.updateSyncRun(run.id, { status: 'success', completionRatio: 1 }, late + 1, 2);
        expect(done).toMatchObject({ status: 'success', attempt: 2, workerId: B.workerId, leaseExpiresAt: null, finishedAt: late + 1 });
        expect(Object.fromEntries(await store.snapshots.get(id, ['[1]', '[3]']))).toEqual({ '[3]': '0000000100000002' });
        expect(Object.fromEntries(await store.snapshots.recordIdsGet(id, ['[1]', '[2]']))).toEqual({ '[2]': 'r2' });
        expect((await store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual(['second attempt, read again']);
        // A fence naming a run that does not exist refuses too.
        await expectError(store.addRejectedRows(rejected('x'), { runId: 9999, attempt: 1 }), ErrorCode.LeaseLost);
        await expectError(store.updateSyncRun(9999, { querySize: 1 }, late, 1), ErrorCode.LeaseLost);
      });

      it("counts a written batch's completion with its delivered rows, in the same transaction: never every row delivered next to an older completion", async () => {
        const { syncs } = await applyCrm();
        const id = syncs['accounts-to-crm']!.id;
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        await store.claimSyncRun(run.id, T0 + 1, A);
        const fence = { runId: run.id, attempt: 1 };
        const planned = { addedCount: 2, changedCount: 0, removedCount: 0 };
        const one = { addedCount: 1, changedCount: 0, removedCount: 0 };
        await store.snapshots.write(id, [['[1]', 'aaaaaaaaaaaaaaaa']], [], fence, one, { querySize: 2, planned, completionRatio: 0.5 });
        expect(await store.getSyncRun(run.id)).toMatchObject({ successfulRows: one, completionRatio: 0.5 });
        await store.snapshots.write(id, [['[2]', 'bbbbbbbbbbbbbbbb']], [], fence, one, { querySize: 2, planned, completionRatio: 1 });
        expect(await store.getSyncRun(run.id)).toMatchObject({ successfulRows: planned, completionRatio: 1 });
      });

      it('ends at once a cancelled run whose lease has ended, and refuses every later write of its attempt', async () => {
        const { syncs } = await applyCrm();
        const id = syncs['accounts-to-crm']!.id;
        const { run } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, T0);
        await store.claimSyncRun(run.id, T0 + 1, A);
        const first = { runId: run.id, attempt: 1 };
        await store.snapshots.write(id, [['[1]', 'aaaaaaaaaaaaaaaa']], [], first, { addedCount: 1, changedCount: 0, removedCount: 0 });
        await store.updateSyncRun(run.id, { status: 'processing', querySize: 10 }, T0 + 2, 1);
        // While its worker holds the lease, a cancel is a request that worker acts on.
        expect(await store.requestSyncRunCancel(run.id, T0 + 3)).toMatchObject({ status: 'processing', cancelRequested: true, finishedAt: null });

        // The worker stopped: once its lease has ended, nobody is at work on the run, and a cancel ends it.
        const end = T0 + 1 + A.leaseMs;
        const cancelled = await store.requestSyncRunCancel(run.id, end);
        expect(cancelled).toMatchObject({ status: 'cancelled', cancelRequested: true, finishedAt: end, attempt: 1, leaseExpiresAt: null, querySize: 10 });
        expect(cancelled.successfulRows).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
        expect(cancelled.error).toMatch(/cancelled by a user after the process running it stopped/);
        expect(await store.getSyncRun(run.id)).toEqual(cancelled);
        expect((await store.takeFinishedRuns(10, end, B)).map((e) => [e.kind, e.runId])).toEqual([['sync', String(run.id)]]);
        expect(await store.listLeases()).toEqual([]);
        // No worker takes it over, and the one that held it, waking, writes nothing more.
        expect(await store.claimSyncRun(run.id, end + 1, B)).toBeNull();
        expect(await store.claimNextSyncRun(end + 1, B)).toBeNull();
        const late = end + 2;
        const refused = [
          () => store.updateSyncRun(run.id, { querySize: 99 }, late, 1),
          () => store.updateSyncRun(run.id, { status: 'cancelled', successfulRows: { addedCount: 5, changedCount: 0, removedCount: 0 }, error: 'cancelled by a user' }, late, 1),
          () => store.updateSyncRun(run.id, { status: 'success', completionRatio: 1 }, late, 1),
          () => store.addRejectedRows([{ syncRunId: run.id, key: '[9]', op: 'added' as const, reason: 'late' }], first),
          () => store.snapshots.write(id, [['[2]', 'bbbbbbbbbbbbbbbb']], ['[1]'], first),
          () => store.snapshots.write(id, { keys: ['[3]'], hashes: new Uint32Array([1, 2]) }, [], first, { addedCount: 1, changedCount: 0, removedCount: 0 }),
          () => store.snapshots.recordIdsWrite(id, [['[2]', 'r2']], [], first),
          () => store.snapshots.clear(id, first),
          () => store.snapshots.cursorSet(id, { value: 'late', runs: 9 }, first),
        ];
        for (const write of refused) {
          const error = await expectError(write(), ErrorCode.LeaseLost);
          expect(error.message).toContain(`sync run ${run.id} attempt 1 may no longer write: it ended cancelled`);
        }
        expect(await store.getSyncRun(run.id)).toEqual(cancelled);
        expect(Object.fromEntries(await store.snapshots.get(id, ['[1]', '[2]', '[3]']))).toEqual({ '[1]': 'aaaaaaaaaaaaaaaa' });
        expect(await store.listRejectedRows(run.id, 10, 0)).toEqual([]);
        expect(await store.takeFinishedRuns(10, late, B)).toEqual([]);
        await expectError(store.requestSyncRunCancel(run.id, late), ErrorCode.Conflict);

        // A worker that took the run over first holds a live lease: the cancel is a request it acts on.
        const { run: other } = await store.enqueueSyncRun({ syncId: id, trigger: MANUAL, options: NO_OPTIONS }, late);
        await store.claimSyncRun(other.id, late, A);
        const otherEnd = late + A.leaseMs;
        expect(await store.claimSyncRun(other.id, otherEnd, B)).toMatchObject({ attempt: 2 });
        expect(await store.requestSyncRunCancel(other.id, otherEnd)).toMatchObject({ status: 'querying', attempt: 2, cancelRequested: true, finishedAt: null });
      });

      it('ends a cancelled member run whose lease has ended, its member with it', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const [accounts] = await store.startMembers(run.id, [{ key: 'accounts', syncId: syncs['accounts-to-crm']!.id }], T0 + 1);
        await store.claimSyncRun(accounts!.id, T0 + 2, A);
        const end = T0 + 2 + A.leaseMs;
        expect(await store.requestSyncRunCancel(accounts!.id, end)).toMatchObject({ status: 'cancelled', sequenceRunId: run.id });
        const member = (await store.getSequenceRun(run.id))!.members.find((m) => m.key === 'accounts');
        expect(member).toMatchObject({ status: 'cancelled', syncRunId: accounts!.id, finishedAt: end });
      });

      it('claims the next run: an expired one first, then the oldest queued run whose sync is free', async () => {
        await applyCrm();
        expect(await store.claimNextSyncRun(T0, A)).toBeNull();
        const enqueue = async (slug: string, now: number) =>
          (await store.enqueueSyncRun({ syncId: await syncId(slug), trigger: MANUAL, options: NO_OPTIONS }, now)).run;
        const accounts = await enqueue('accounts-to-crm', T0);
        const contacts = await enqueue('contacts-to-crm', T0 + 1);
        const deals = await enqueue('deals-to-crm', T0 + 2);

        expect(await store.claimNextSyncRun(T0 + 10, A)).toMatchObject({ id: accounts.id, status: 'querying', attempt: 1, workerId: A.workerId });
        // A follow-up of a sync that is running waits.
        const followUp = await enqueue('accounts-to-crm', T0 + 11);
        expect(await store.claimNextSyncRun(T0 + 12, A)).toMatchObject({ id: contacts.id, attempt: 1 });
        // The first lease ended: its run comes before the queued one.
        const end = T0 + 10 + A.leaseMs;
        expect(await store.claimNextSyncRun(end, B)).toMatchObject({ id: accounts.id, attempt: 2, workerId: B.workerId, leaseExpiresAt: end + B.leaseMs });
        expect(await store.claimNextSyncRun(end, B)).toMatchObject({ id: deals.id, attempt: 1, workerId: B.workerId });
        expect(await store.claimNextSyncRun(end, B)).toBeNull();
        await store.updateSyncRun(accounts.id, { status: 'success' }, end + 1, 2);
        expect(await store.claimNextSyncRun(end + 1, B)).toMatchObject({ id: followUp.id, attempt: 1 });
        expect(await store.claimNextSyncRun(end + 1, B)).toBeNull();
        // The second lease ends at T0 + 12 + leaseMs, not a moment before.
        expect(await store.claimNextSyncRun(T0 + 12 + A.leaseMs, B)).toMatchObject({ id: contacts.id, attempt: 2 });
      });

      it('takes over an active run that has no lease at all', async () => {
        await applyCrm();
        const { run } = await store.enqueueSyncRun({ syncId: await syncId('deals-to-crm'), trigger: MANUAL, options: NO_OPTIONS }, T0);
        // Made active without a claim, as runs started before leases existed.
        expect(await store.updateSyncRun(run.id, { status: 'processing' }, T0 + 1)).toMatchObject({ attempt: 0, workerId: null, leaseExpiresAt: null });
        expect(await store.listLeases()).toEqual([{ runId: run.id, syncId: run.syncId, workerId: '', attempt: 0, expiresAt: 0 }]);
        expect(await store.claimNextSyncRun(T0 + 2, A)).toMatchObject({ id: run.id, status: 'querying', attempt: 1, workerId: A.workerId, startedAt: T0 + 2 });
        const { run: other } = await store.enqueueSyncRun({ syncId: await syncId('accounts-to-crm'), trigger: MANUAL, options: NO_OPTIONS }, T0);
        await store.updateSyncRun(other.id, { status: 'querying' }, T0 + 1);
        expect(await store.claimSyncRun(other.id, T0 + 2, B)).toMatchObject({ id: other.id, attempt: 1, workerId: B.workerId });
      });

      it('renews only the leases a worker holds, releases them at once, and lists them', async () => {
        await applyCrm();
        const a1 = await claimedBy('accounts-to-crm', A, T0);
        const a2 = await claimedBy('contacts-to-crm', A, T0);
        const b1 = await claimedBy('deals-to-crm', B, T0);
        const lease = (run: SyncRun, worker: LeaseRequest, expiresAt: number, attempt = 1) => ({
          runId: run.id,
          syncId: run.syncId,
          workerId: worker.workerId,
          attempt,
          expiresAt,
        });
        expect(await store.listLeases()).toEqual([lease(a1, A, T0 + A.leaseMs), lease(a2, A, T0 + A.leaseMs), lease(b1, B, T0 + B.leaseMs)]);

        const renewed = await store.renewLeases([a1.id, a2.id, b1.id, 9999], T0 + 5_000, A);
        expect([...renewed].sort((x, y) => x - y)).toEqual([a1.id, a2.id].sort((x, y) => x - y));
        expect(await store.listLeases()).toEqual([lease(a1, A, T0 + 5_000 + A.leaseMs), lease(a2, A, T0 + 5_000 + A.leaseMs), lease(b1, B, T0 + B.leaseMs)]);
        expect(await store.renewLeases([], T0 + 5_000, A)).toEqual([]);

        // A finished run is no longer held.
        await store.updateSyncRun(a2.id, { status: 'success' }, T0 + 6_000, 1);
        expect(await store.renewLeases([a1.id, a2.id], T0 + 7_000, A)).toEqual([a1.id]);
        expect((await store.listLeases()).map((l) => l.runId)).toEqual([a1.id, b1.id]);

        // A worker that stops releases its runs: another worker takes them over at once.
        expect(await store.releaseLeases(A.workerId, T0 + 8_000)).toBe(1);
        expect(await store.releaseLeases('host-c/303/e5f6', T0 + 8_000)).toBe(0);
        // Leases already released (or run out) are not released again: a later look finds none.
        expect(await store.releaseLeases(A.workerId, T0 + 8_500)).toBe(0);
        expect(await store.claimNextSyncRun(T0 + 8_000, B)).toMatchObject({ id: a1.id, attempt: 2, workerId: B.workerId });
        expect(await store.claimNextSyncRun(T0 + 8_000, B)).toBeNull();
        expect(await store.renewLeases([a1.id], T0 + 8_001, A)).toEqual([]);
        expect(await store.renewLeases([a1.id, b1.id], T0 + 8_001, B)).toHaveLength(2);
      });
    });
  });
}

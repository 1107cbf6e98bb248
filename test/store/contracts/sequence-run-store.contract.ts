/**
 * The SequenceRunStore contract: a sequence has at most one pending run, which triggers share, and
 * at most one running. Each member starts once (a replayed start creates nothing; an interrupted
 * member gets a new run) and follows its sync run's state; the first termination recorded is kept;
 * skipping and cancelling leave running and finished members alone; a run finishes once.
 * `advanceSequenceRun` asks a pure decision what to do and applies it whole in one transaction, so
 * advances that race never start a member twice nor exceed the concurrency.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/core/errors.js';
import type { Store } from '../../../src/core/ports.js';
import type { SyncRun, SyncRunStatus, Trigger } from '../../../src/core/runs.js';
import { decideSequenceAdvance, type SequenceAdvanceState } from '../../../src/core/sequence-rules.js';
import type { SequenceDef } from '../../../src/core/workspace.js';
import { LEASE, MANUAL, NO_OPTIONS, T0, crmWorkspace, expectError, member, useFreshStore, type OpenStore } from './fixtures.js';

export function describeSequenceRunStoreContract(name: string, open: OpenStore): void {
  describe(`SequenceRunStore contract: ${name}`, () => {
    let store: Store;
    const { applyCrm, sequence } = useFreshStore(open, (opened) => {
      store = opened;
    });

    describe('sequence runs', () => {
      it('queues a run with every member pending, in position order, and shares one pending run', async () => {
        const { syncs } = await applyCrm();
        const linear = await sequence('crm-hierarchy');
        const trigger: Trigger = { type: 'schedule', detail: 'sequence:1@1767225600000' };
        const { run, created } = await store.enqueueSequenceRun(linear, trigger, T0);
        expect(created).toBe(true);
        expect(run.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(run).toMatchObject({
          sequenceId: linear.id,
          status: 'pending',
          trigger,
          createdAt: T0,
          startedAt: null,
          finishedAt: null,
          terminatedBy: null,
          reason: null,
          cancelRequested: false,
        });
        expect(run.members).toEqual(
          ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'].map((slug, position) => ({
            key: slug,
            syncId: syncs[slug]!.id,
            position,
            status: 'pending',
            syncRunId: null,
            startedAt: null,
            finishedAt: null,
            timeoutMinutes: null,
            // The rules each member was queued with, as the sequence declares them.
            terminate: linear.members[position]!.terminate,
            rejectedThreshold: linear.members[position]!.rejectedThreshold,
          })),
        );
        expect(await store.getSequenceRun(run.id)).toEqual(run);
        expect(await store.enqueueSequenceRun(linear, MANUAL, T0 + 1)).toEqual({ run, created: false });

        // Another sequence has its own pending run.
        const other = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        expect(other.created).toBe(true);
        expect(other.run.members.map((m) => m.key)).toEqual(['accounts', 'contacts', 'deals']);
        expect(await store.getSequenceRun('00000000-0000-4000-8000-000000000000')).toBeNull();
      });

      it('cancels a run a schedule, webhook or upstream run queued once its sequence is disabled (apply, API or switch); a manual one still starts', async () => {
        await applyCrm();
        const linear = await sequence('crm-hierarchy');
        const declared = crmWorkspace().sequences.find((s) => s.slug === 'crm-hierarchy') as SequenceDef;
        const disabled = { ...crmWorkspace(), sequences: crmWorkspace().sequences.map((s) => (s.slug === 'crm-hierarchy' ? { ...s, enabled: false } : s)) };
        const ways = [
          () => store.applyWorkspace(disabled, T0 + 2),
          () => store.upsertEntity('sequence', { ...declared, enabled: false }, 'api', T0 + 2),
          () => store.setEnabled('sequence', linear.id, false, T0 + 2),
        ];
        for (const [i, type] of (['schedule', 'webhook', 'upstream'] as const).entries()) {
          await store.setEnabled('sequence', linear.id, true, T0 + 1);
          const { run } = await store.enqueueSequenceRun(linear, { type, detail: `fired ${type}` }, T0 + 1);
          await ways[i]!();
          const after = await store.getSequenceRun(run.id);
          expect(after, type).toMatchObject({ status: 'cancelled', finishedAt: T0 + 2, startedAt: null });
          expect(after?.reason).toBe('the sequence was disabled before this run started; a disabled sequence runs only when started by hand or through the API');
          expect(after?.members.map((m) => m.status)).toEqual(['skipped', 'skipped', 'skipped']);
        }
        // Run by hand (or through the API), a disabled sequence runs: its queued run stays.
        await store.setEnabled('sequence', linear.id, true, T0 + 3);
        const { run: manual } = await store.enqueueSequenceRun(linear, MANUAL, T0 + 3);
        await store.setEnabled('sequence', linear.id, false, T0 + 4);
        expect((await store.getSequenceRun(manual.id))?.status).toBe('pending');
        expect(await store.claimSequenceRun(manual.id, T0 + 5)).toMatchObject({ status: 'running' });
      });

      it('claims a pending run only while no other run of its sequence is running', async () => {
        await applyCrm();
        const linear = await sequence('crm-hierarchy');
        const { run: first } = await store.enqueueSequenceRun(linear, MANUAL, T0);
        expect(await store.claimSequenceRun(first.id, T0 + 1.25)).toMatchObject({ status: 'running', startedAt: T0 + 1.25 });
        expect(await store.claimSequenceRun(first.id, T0 + 2)).toBeNull();

        const { run: second, created } = await store.enqueueSequenceRun(linear, MANUAL, T0 + 2);
        expect(created).toBe(true);
        expect(await store.enqueueSequenceRun(linear, MANUAL, T0 + 3)).toMatchObject({ created: false, run: { id: second.id } });
        expect(await store.claimSequenceRun(second.id, T0 + 3)).toBeNull();
        expect((await store.getSequenceRun(second.id))?.status).toBe('pending');

        const finished = await store.finishSequenceRun(first.id, 'done', T0 + 4.5);
        expect(finished).toMatchObject({ status: 'done', finishedAt: T0 + 4.5 });
        expect(await store.claimSequenceRun(second.id, T0 + 5)).toMatchObject({ status: 'running' });
        await expectError(store.claimSequenceRun('00000000-0000-4000-8000-000000000000', T0), ErrorCode.NotFound);
      });

      it('starts members once: a replayed start creates nothing, an interrupted member gets a new run', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const accounts = syncs['accounts-to-crm']!.id;

        const started = await store.startMembers(run.id, [{ key: 'accounts', syncId: accounts }], T0 + 1);
        expect(started).toHaveLength(1);
        expect(started[0]).toMatchObject({
          syncId: accounts,
          status: 'queued',
          trigger: { type: 'sequence', detail: run.id },
          options: NO_OPTIONS,
          sequenceRunId: run.id,
          memberKey: 'accounts',
          createdAt: T0 + 1,
        });
        const first = started[0]!;
        const afterStart = await store.getSequenceRun(run.id);
        expect(afterStart?.members[0]).toMatchObject({ key: 'accounts', status: 'pending', syncRunId: first.id });
        expect(afterStart?.members[1]).toMatchObject({ key: 'contacts', status: 'pending', syncRunId: null });

        // Replays while queued, running and finished create nothing.
        expect(await store.startMembers(run.id, [{ key: 'accounts', syncId: accounts }], T0 + 2)).toEqual([]);
        await store.claimSyncRun(first.id, T0 + 3, LEASE);
        expect(await store.startMembers(run.id, [{ key: 'accounts', syncId: accounts }], T0 + 4)).toEqual([]);

        // The run is interrupted: the member goes back to pending and a new run replaces the interrupted one.
        await store.updateSyncRun(first.id, { status: 'interrupted', error: 'the worker stopped' }, T0 + 5);
        const afterCrash = await store.getSequenceRun(run.id);
        expect(afterCrash?.members[0]).toMatchObject({ status: 'pending', syncRunId: first.id, finishedAt: null });
        const retried = await store.startMembers(run.id, [{ key: 'accounts', syncId: accounts }], T0 + 6);
        expect(retried).toHaveLength(1);
        expect(retried[0]!.id).not.toBe(first.id);
        expect((await store.getSequenceRun(run.id))?.members[0]?.syncRunId).toBe(retried[0]!.id);

        await store.claimSyncRun(retried[0]!.id, T0 + 7, LEASE);
        await store.updateSyncRun(retried[0]!.id, { status: 'success' }, T0 + 8);
        expect(await store.startMembers(run.id, [{ key: 'accounts', syncId: accounts }], T0 + 9)).toEqual([]);

        // Two members at once (a graph fan-out), one of them already started: only the other is created.
        const fanOut = await store.startMembers(
          run.id,
          [
            { key: 'accounts', syncId: accounts },
            { key: 'contacts', syncId: syncs['contacts-to-crm']!.id },
            { key: 'deals', syncId: syncs['deals-to-crm']!.id },
          ],
          T0 + 10,
        );
        expect(fanOut.map((r) => r.memberKey)).toEqual(['contacts', 'deals']);
        const members = (await store.getSequenceRun(run.id))!.members;
        expect(members.map((m) => m.syncRunId)).toEqual([retried[0]!.id, fanOut[0]!.id, fanOut[1]!.id]);
        await expectError(store.startMembers('00000000-0000-4000-8000-000000000000', [], T0), ErrorCode.NotFound);
        await expectError(store.startMembers(run.id, [{ key: 'nope', syncId: accounts }], T0), ErrorCode.NotFound);
        const { run: other } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await expectError(store.startMembers(other.id, [{ key: 'deals-to-crm', syncId: 9999 }], T0), ErrorCode.NotFound);
        expect((await store.getSequenceRun(other.id))?.members.every((m) => m.syncRunId === null)).toBe(true);
      });

      const outcomes: Array<[SyncRunStatus, 'success' | 'warning' | 'failed' | 'cancelled']> = [
        ['success', 'success'],
        ['warning', 'warning'],
        ['failed', 'failed'],
        ['cancelled', 'cancelled'],
      ];
      for (const [runStatus, memberStatus] of outcomes) {
        it(`moves a member along with its sync run to ${runStatus}`, async () => {
          const { syncs } = await applyCrm();
          const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
          await store.claimSequenceRun(run.id, T0);
          const [syncRun] = await store.startMembers(run.id, [{ key: 'accounts-to-crm', syncId: syncs['accounts-to-crm']!.id }], T0 + 1);
          const memberOf = async () => (await store.getSequenceRun(run.id))!.members[0]!;
          expect(await memberOf()).toMatchObject({ status: 'pending', startedAt: null, finishedAt: null });

          await store.claimSyncRun(syncRun!.id, T0 + 2.5, LEASE);
          expect(await memberOf()).toMatchObject({ status: 'running', startedAt: T0 + 2.5, finishedAt: null });
          await store.updateSyncRun(syncRun!.id, { status: 'processing' }, T0 + 3);
          expect(await memberOf()).toMatchObject({ status: 'running', startedAt: T0 + 2.5 });
          await store.updateSyncRun(syncRun!.id, { status: 'reporting', querySize: 5 }, T0 + 4);
          expect(await memberOf()).toMatchObject({ status: 'running', startedAt: T0 + 2.5, finishedAt: null });
          await store.updateSyncRun(syncRun!.id, { status: runStatus }, T0 + 5.5);
          expect(await memberOf()).toMatchObject({
            status: memberStatus,
            syncRunId: syncRun!.id,
            startedAt: T0 + 2.5,
            finishedAt: T0 + 5.5,
          });
          // The other members are untouched.
          expect((await store.getSequenceRun(run.id))!.members.slice(1).every((m) => m.status === 'pending')).toBe(true);
        });
      }

      it('moves a member back to pending when its run is interrupted, and cancels it with a queued run', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const [accountsRun, contactsRun] = await store.startMembers(
          run.id,
          [
            { key: 'accounts-to-crm', syncId: syncs['accounts-to-crm']!.id },
            { key: 'contacts-to-crm', syncId: syncs['contacts-to-crm']!.id },
          ],
          T0 + 1,
        );
        await store.claimSyncRun(accountsRun!.id, T0 + 2, LEASE);
        await store.updateSyncRun(accountsRun!.id, { status: 'interrupted', error: 'worker stopped' }, T0 + 3);
        let members = (await store.getSequenceRun(run.id))!.members;
        expect(members[0]).toMatchObject({ status: 'pending', syncRunId: accountsRun!.id, finishedAt: null });

        await store.requestSyncRunCancel(contactsRun!.id, T0 + 4);
        members = (await store.getSequenceRun(run.id))!.members;
        expect(members[1]).toMatchObject({ status: 'cancelled', syncRunId: contactsRun!.id });
        expect(members[1]!.finishedAt).not.toBeNull();
      });

      it('records the first termination only', async () => {
        await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        await store.setTermination(run.id, 'accounts-to-crm', 'accounts-to-crm failed: connection refused');
        await store.setTermination(run.id, 'contacts-to-crm', 'contacts-to-crm rejected 12 rows');
        await store.setTermination(run.id, null, 'cancelled by a user');
        expect(await store.getSequenceRun(run.id)).toMatchObject({
          terminatedBy: 'accounts-to-crm',
          reason: 'accounts-to-crm failed: connection refused',
        });

        const { run: other } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.setTermination(other.id, null, 'the store could not be written');
        expect(await store.getSequenceRun(other.id)).toMatchObject({ terminatedBy: null, reason: 'the store could not be written' });
      });

      it('skips pending members and cancels their queued runs, leaving running and finished ones', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const [accountsRun] = await store.startMembers(run.id, [{ key: 'accounts', syncId: syncs['accounts-to-crm']!.id }], T0);
        await store.claimSyncRun(accountsRun!.id, T0 + 1, LEASE);
        await store.updateSyncRun(accountsRun!.id, { status: 'success' }, T0 + 2);
        const [contactsRun, dealsRun] = await store.startMembers(
          run.id,
          [
            { key: 'contacts', syncId: syncs['contacts-to-crm']!.id },
            { key: 'deals', syncId: syncs['deals-to-crm']!.id },
          ],
          T0 + 3,
        );
        await store.claimSyncRun(contactsRun!.id, T0 + 4, LEASE); // running; deals stays queued

        await store.skipPendingMembers(run.id, T0 + 5.5);
        const members = (await store.getSequenceRun(run.id))!.members;
        expect(members.map((m) => m.status)).toEqual(['success', 'running', 'skipped']);
        expect(members[2]).toMatchObject({ syncRunId: dealsRun!.id, finishedAt: T0 + 5.5 });
        expect(await store.getSyncRun(dealsRun!.id)).toMatchObject({ status: 'cancelled', finishedAt: T0 + 5.5 });
        expect((await store.getSyncRun(contactsRun!.id))?.status).toBe('querying');
        expect(await store.listQueuedSyncRuns()).toEqual([]);
        // A skipped member is never started afterwards.
        expect(await store.startMembers(run.id, [{ key: 'deals', syncId: syncs['deals-to-crm']!.id }], T0 + 6)).toEqual([]);

        // A member that never got a run is skipped too.
        const { run: linear } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await store.claimSequenceRun(linear.id, T0);
        await store.skipPendingMembers(linear.id, T0 + 7);
        const skipped = (await store.getSequenceRun(linear.id))!.members;
        expect(skipped.every((m) => m.status === 'skipped' && m.syncRunId === null && m.finishedAt === T0 + 7)).toBe(true);
        expect(await store.startMembers(linear.id, [{ key: 'accounts-to-crm', syncId: syncs['accounts-to-crm']!.id }], T0 + 8)).toEqual([]);
      });

      it('finishes a run once', async () => {
        await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const failed = await store.finishSequenceRun(run.id, 'failed', T0 + 9.75);
        expect(failed).toMatchObject({ status: 'failed', finishedAt: T0 + 9.75 });
        expect(failed.members).toHaveLength(3);
        expect(await store.getSequenceRun(run.id)).toEqual(failed);
        await expectError(store.finishSequenceRun(run.id, 'done', T0 + 10), ErrorCode.Conflict);
        await expectError(store.finishSequenceRun('00000000-0000-4000-8000-000000000000', 'done', T0), ErrorCode.NotFound);
      });

      it('cancels a pending run at once, flags a running one, and refuses a finished one', async () => {
        await applyCrm();
        const linear = await sequence('crm-hierarchy');
        const { run: running } = await store.enqueueSequenceRun(linear, MANUAL, T0);
        await store.claimSequenceRun(running.id, T0);
        const { run: pending } = await store.enqueueSequenceRun(linear, MANUAL, T0 + 1);

        const cancelled = await store.requestSequenceRunCancel(pending.id);
        expect(cancelled).toMatchObject({ status: 'cancelled', cancelRequested: true });
        expect(cancelled.finishedAt).not.toBeNull();
        expect(cancelled.members.every((m) => m.status === 'skipped')).toBe(true);
        // Cancelled, it no longer absorbs triggers.
        expect((await store.enqueueSequenceRun(linear, MANUAL, T0 + 2)).created).toBe(true);

        const flagged = await store.requestSequenceRunCancel(running.id);
        expect(flagged).toMatchObject({ status: 'running', cancelRequested: true, finishedAt: null });
        await store.finishSequenceRun(running.id, 'cancelled', T0 + 3);
        await expectError(store.requestSequenceRunCancel(running.id), ErrorCode.Conflict);
        await expectError(store.requestSequenceRunCancel(pending.id), ErrorCode.Conflict);
        await expectError(store.requestSequenceRunCancel('00000000-0000-4000-8000-000000000000'), ErrorCode.NotFound);
      });

      it('lists runs with filters and paging, and by status', async () => {
        await applyCrm();
        const linear = await sequence('crm-hierarchy');
        const graph = await sequence('crm-graph');
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          const seq = i === 2 ? graph : linear;
          const { run } = await store.enqueueSequenceRun(seq, MANUAL, T0 + i * 100);
          await store.claimSequenceRun(run.id, T0 + i * 100 + 1);
          if (i < 4) await store.finishSequenceRun(run.id, i === 1 ? 'failed' : 'done', T0 + i * 100 + 2);
          ids.push(run.id);
        }
        const { run: pending } = await store.enqueueSequenceRun(linear, MANUAL, T0 + 600);
        ids.push(pending.id);
        const list = (q: Partial<Parameters<Store['listSequenceRuns']>[0]>) =>
          store.listSequenceRuns({ limit: 100, offset: 0, order: 'asc', ...q }).then((runs) => runs.map((r) => r.id));

        expect(await list({})).toEqual(ids);
        expect(await list({ order: 'desc' })).toEqual([...ids].reverse());
        expect(await list({ sequenceId: graph.id })).toEqual([ids[2]]);
        expect(await list({ sequenceIds: [graph.id, linear.id] })).toEqual(ids);
        expect(await list({ sequenceIds: [graph.id], order: 'desc' })).toEqual([ids[2]]);
        expect(await list({ sequenceIds: [] })).toEqual([]);
        expect(await list({ sequenceId: linear.id, statuses: ['done'] })).toEqual([ids[0], ids[3]]);
        expect(await list({ statuses: ['running', 'pending'] })).toEqual([ids[4], ids[5]]);
        expect(await list({ after: T0 + 100, before: T0 + 400 })).toEqual(ids.slice(1, 4));
        expect(await list({ limit: 2, offset: 1 })).toEqual(ids.slice(1, 3));
        expect(await list({ limit: 2, offset: 0, order: 'desc' })).toEqual([ids[5], ids[4]]);

        const listed = await store.listSequenceRuns({ limit: 1, offset: 0, order: 'asc' });
        expect(listed[0]?.members.map((m) => m.position)).toEqual([0, 1, 2]);

        expect((await store.listSequenceRunsByStatus(['running'])).map((r) => r.id)).toEqual([ids[4]]);
        expect((await store.listSequenceRunsByStatus(['pending', 'running'])).map((r) => r.id).sort()).toEqual(
          [ids[4], ids[5]].sort(),
        );
        expect(await store.listSequenceRunsByStatus(['cancelled'])).toEqual([]);
      });

      it('reads the newest runs of every sequence at once, with their members, a deleted sequence left out', async () => {
        await applyCrm();
        const linear = await sequence('crm-hierarchy');
        const graph = await sequence('crm-graph');
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) {
          const { run } = await store.enqueueSequenceRun(i === 0 ? graph : linear, MANUAL, T0 + i * 100);
          await store.claimSequenceRun(run.id, T0 + i * 100 + 1);
          await store.finishSequenceRun(run.id, i === 2 ? 'failed' : 'done', T0 + i * 100 + 2);
          ids.push(run.id);
        }
        const { run: pending } = await store.enqueueSequenceRun(linear, MANUAL, T0 + 600);
        const latest = async (perSequence: number) => (await store.latestSequenceRuns(perSequence)).map((r) => [r.sequenceId, r.id, r.status]);

        expect(await latest(2)).toEqual([
          [linear.id, pending.id, 'pending'],
          [linear.id, ids[3], 'done'],
          [graph.id, ids[0], 'done'],
        ]);
        expect(await latest(1)).toEqual([
          [linear.id, pending.id, 'pending'],
          [graph.id, ids[0], 'done'],
        ]);
        expect((await store.latestSequenceRuns(1))[0]?.members.map((m) => m.position)).toEqual([0, 1, 2]);

        await store.deleteEntity('sequence', 'crm-graph', T0 + 700);
        expect(await latest(2)).toEqual([
          [linear.id, pending.id, 'pending'],
          [linear.id, ids[3], 'done'],
        ]);
      });
    });

    describe('sequence advance', () => {
      const advance = (id: string, now: number) => store.advanceSequenceRun(id, decideSequenceAdvance, now);

      /** Claims a member's sync run and ends it with `status`. */
      async function finishMember(run: SyncRun, status: SyncRunStatus, now: number, patch: Parameters<Store['updateSyncRun']>[1] = {}): Promise<void> {
        await store.claimSyncRun(run.id, now, LEASE);
        await store.updateSyncRun(run.id, { ...patch, status }, now + 0.5, 1);
      }

      it('claims up to `max` of the members it starts for the advancing worker, in the same transaction', async () => {
        await applyCrm();
        const fanOut: SequenceDef = {
          slug: 'fan-out-claimed',
          name: 'Fan-out',
          members: ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'].map((sync, i) => member(sync, { key: `m${i}`, after: [] })),
          concurrency: 3,
          schedule: { type: 'manual' },
          enabled: true,
        };
        const { record } = await store.upsertEntity('sequence', fanOut, 'api', T0);
        const { run } = await store.enqueueSequenceRun(record, MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const step = await store.advanceSequenceRun(run.id, decideSequenceAdvance, T0 + 1, { lease: LEASE, max: 2 });
        expect(step.started.map((r) => r.status)).toEqual(['querying', 'querying', 'queued']);
        for (const claimed of step.started.slice(0, 2)) {
          expect(claimed).toMatchObject({ attempt: 1, workerId: LEASE.workerId });
          // Stamped when claimed: not before the advance began.
          expect(claimed.startedAt).toBeGreaterThanOrEqual(T0 + 1);
          expect(claimed.leaseExpiresAt).toBe(claimed.startedAt! + LEASE.leaseMs);
        }
        const members = (await store.getSequenceRun(run.id))!.members;
        expect(members.map((m) => m.status)).toEqual(['running', 'running', 'pending']);
        expect(await store.claimSyncRun(step.started[0]!.id, T0 + 2, { workerId: 'another', leaseMs: 1000 })).toBeNull();
      });

      it('decides by the member graph the run was queued with, not by the sequence as changed since', async () => {
        await applyCrm();
        const slugs = ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'];
        const line: SequenceDef = {
          slug: 'line-then-graph',
          name: 'Line',
          members: slugs.map((sync) => member(sync)),
          concurrency: 3,
          schedule: { type: 'manual' },
          enabled: true,
        };
        const { record } = await store.upsertEntity('sequence', line, 'api', T0);
        const { run } = await store.enqueueSequenceRun(record, MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const first = await advance(run.id, T0 + 1);
        expect(first.started).toHaveLength(1);
        // While the first member runs, the sequence becomes a graph in which every member starts at once.
        await store.upsertEntity('sequence', { ...line, members: slugs.map((sync) => member(sync, { after: [] })) }, 'api', T0 + 2);
        expect((await advance(run.id, T0 + 3)).started).toEqual([]);
        await finishMember(first.started[0]!, 'success', T0 + 4);
        expect((await advance(run.id, T0 + 5)).started.map((r) => r.memberKey)).toEqual(['contacts-to-crm']);
      });

      it('decides by the policies and concurrency the run was queued with, not by the sequence as changed since', async () => {
        await applyCrm();
        const graph: SequenceDef = {
          slug: 'kept-rules',
          name: 'Kept rules',
          members: [
            member('accounts-to-crm', { after: [], terminate: 'on_fatal_or_rejected', rejectedThreshold: { percent: 5 } }),
            member('contacts-to-crm', { after: [], terminate: 'never' }),
            member('deals-to-crm', { after: ['accounts-to-crm'] }),
          ],
          concurrency: 1,
          schedule: { type: 'manual' },
          enabled: true,
        };
        const { record } = await store.upsertEntity('sequence', graph, 'api', T0);
        const { run } = await store.enqueueSequenceRun(record, MANUAL, T0);
        expect(run.concurrency).toBe(1);
        expect(run.members.map((m) => [m.terminate, m.rejectedThreshold])).toEqual([
          ['on_fatal_or_rejected', { percent: 5 }],
          ['never', { count: 0 }],
          ['on_fatal', { count: 0 }],
        ]);
        await store.claimSequenceRun(run.id, T0);
        const first = await advance(run.id, T0 + 1);
        expect(first.started.map((r) => r.memberKey)).toEqual(['accounts-to-crm']);
        // While it runs: any number at once, and accounts may reject whatever it likes.
        const loose = { ...graph, concurrency: 3, members: graph.members.map((m) => ({ ...m, terminate: 'never' as const })) };
        await store.upsertEntity('sequence', loose, 'api', T0 + 2);
        expect((await advance(run.id, T0 + 3)).started).toEqual([]);
        await finishMember(first.started[0]!, 'warning', T0 + 4, {
          plannedRows: { addedCount: 10, changedCount: 0, removedCount: 0 },
          successfulRows: { addedCount: 9, changedCount: 0, removedCount: 0 },
          failedRows: { addedCount: 1, changedCount: 0, removedCount: 0 },
        });
        const after = await advance(run.id, T0 + 5);
        expect(after.started).toEqual([]);
        expect(after.run).toMatchObject({ status: 'failed', terminatedBy: 'accounts-to-crm' });
        expect(after.run.reason).toMatch(/rejected 1 of 10 rows \(10%\), over its threshold of 5%/);
      });

      it('starts ready members up to the concurrency, never one twice, when advances race', async () => {
        await applyCrm();
        // Four members with nothing to wait for, at most two at once.
        const fanOut: SequenceDef = {
          slug: 'fan-out',
          name: 'Fan-out',
          members: ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'].map((sync, i) =>
            member(sync, { key: `m${i}`, after: [] }),
          ),
          concurrency: 2,
          schedule: { type: 'manual' },
          enabled: true,
        };
        fanOut.members.push(member('accounts-to-crm', { key: 'm3', after: [] }));
        const { record } = await store.upsertEntity('sequence', fanOut, 'api', T0);
        for (let round = 0; round < 3; round++) {
          const at = T0 + round * 1_000;
          const { run } = await store.enqueueSequenceRun(record, MANUAL, at);
          await store.claimSequenceRun(run.id, at);
          const started = new Map<string, SyncRun>();
          const race = async (now: number) => {
            const steps = await Promise.all([advance(run.id, now), advance(run.id, now), advance(run.id, now)]);
            const made = steps.flatMap((s) => s.started);
            for (const syncRun of made) {
              expect(started.has(syncRun.memberKey!), `member ${syncRun.memberKey} started twice`).toBe(false);
              started.set(syncRun.memberKey!, syncRun);
            }
            return made;
          };
          expect(await race(at + 1)).toHaveLength(2);
          expect(await race(at + 2)).toHaveLength(0);
          const [first, second] = [...started.values()];
          await finishMember(first!, 'success', at + 3);
          expect(await race(at + 4)).toHaveLength(1);
          await finishMember(second!, 'success', at + 5);
          expect(await race(at + 6)).toHaveLength(1);
          expect(started.size).toBe(4);
          const members = (await store.getSequenceRun(run.id))!.members;
          expect(members.filter((m) => m.status === 'pending' || m.status === 'running')).toHaveLength(2);
          for (const syncRun of [...started.values()].slice(2)) await finishMember(syncRun, 'success', at + 7);
          const steps = await Promise.all([advance(run.id, at + 8), advance(run.id, at + 8)]);
          expect(steps.flatMap((s) => s.started)).toEqual([]);
          const done = await store.getSequenceRun(run.id);
          expect(done).toMatchObject({ status: 'done', finishedAt: at + 8 });
          expect(done!.members.every((m) => m.status === 'success')).toBe(true);
          expect(steps.map((s) => s.run)).toContainEqual(done);
        }
        // One outbox entry per finished sequence run (and one per finished member run).
        const entries = await store.takeFinishedRuns(100, T0 + 10_000, LEASE);
        expect(entries.filter((e) => e.kind === 'sequence')).toHaveLength(3);
        expect(entries.filter((e) => e.kind === 'sync')).toHaveLength(12);
      });

      it('terminates on a member outcome its rules end the run on: skips pending members, finishes failed', async () => {
        await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-hierarchy'), MANUAL, T0);
        // Not running yet: nothing to decide.
        expect(await store.advanceSequenceRun(run.id, () => { throw new Error('not asked'); }, T0)).toEqual({ run, started: [], cancelled: [] });
        await store.claimSequenceRun(run.id, T0);
        const first = await advance(run.id, T0 + 1);
        expect(first.started.map((r) => r.memberKey)).toEqual(['accounts-to-crm']);
        expect(first.run.members.map((m) => m.status)).toEqual(['pending', 'pending', 'pending']);
        expect(first.run.members[0]!.syncRunId).toBe(first.started[0]!.id);

        await finishMember(first.started[0]!, 'failed', T0 + 2, { error: 'connection refused' });
        const step = await advance(run.id, T0 + 3);
        expect(step.started).toEqual([]);
        expect(step.run).toMatchObject({
          status: 'failed',
          finishedAt: T0 + 3,
          terminatedBy: 'accounts-to-crm',
          reason: 'member "accounts-to-crm" failed: connection refused',
        });
        expect(step.run.members.map((m) => m.status)).toEqual(['failed', 'skipped', 'skipped']);
        expect(await store.getSequenceRun(run.id)).toEqual(step.run);
        // A finished run is left as it is.
        expect(await advance(run.id, T0 + 4)).toEqual({ run: step.run, started: [], cancelled: [] });
        const entries = await store.takeFinishedRuns(10, T0 + 5, LEASE);
        expect(entries.filter((e) => e.kind === 'sequence').map((e) => e.runId)).toEqual([run.id]);
        await expectError(advance('00000000-0000-4000-8000-000000000000', T0), ErrorCode.NotFound);
      });

      it('on a cancel request, asks running members to stop, skips the rest, and finishes cancelled once they stopped', async () => {
        await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        const [accounts] = (await advance(run.id, T0 + 1)).started;
        await store.claimSyncRun(accounts!.id, T0 + 2, LEASE);
        await store.requestSequenceRunCancel(run.id);

        const step = await advance(run.id, T0 + 3);
        expect(step.cancelled).toEqual([accounts!.id]);
        expect(step.started).toEqual([]);
        expect(step.run).toMatchObject({ status: 'running', cancelRequested: true });
        expect(step.run.members.map((m) => m.status)).toEqual(['running', 'skipped', 'skipped']);
        expect(await store.getSyncRun(accounts!.id)).toMatchObject({ status: 'querying', cancelRequested: true });

        await store.updateSyncRun(accounts!.id, { status: 'cancelled' }, T0 + 4, 1);
        const end = await advance(run.id, T0 + 5);
        expect(end.run).toMatchObject({ status: 'cancelled', finishedAt: T0 + 5 });
        expect(end.run.members.map((m) => m.status)).toEqual(['cancelled', 'skipped', 'skipped']);
      });

      it('applies a decision whole: the first termination wins, queued runs cancelled are cancelled with their member', async () => {
        const { syncs } = await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        await store.setTermination(run.id, 'accounts', 'first reason');
        const start = [
          { key: 'accounts', syncId: syncs['accounts-to-crm']!.id },
          { key: 'contacts', syncId: syncs['contacts-to-crm']!.id },
        ];
        let seen: SequenceAdvanceState | null = null;
        const step = await store.advanceSequenceRun(
          run.id,
          (state) => {
            seen = state;
            return { terminate: { member: 'contacts', reason: 'second reason' }, cancel: [], skipPending: false, start, finish: null };
          },
          T0 + 1,
        );
        expect(seen!.sequence?.slug).toBe('crm-graph');
        expect(seen!.syncRuns.size).toBe(0);
        expect(step.run).toMatchObject({ status: 'running', terminatedBy: 'accounts', reason: 'first reason' });
        expect(step.started.map((r) => r.memberKey)).toEqual(['accounts', 'contacts']);
        const queued = step.started[1]!;

        const next = await store.advanceSequenceRun(
          run.id,
          (state) => {
            seen = state;
            return { terminate: null, cancel: [queued.id], skipPending: true, start: [], finish: 'failed' };
          },
          T0 + 2,
        );
        expect([...seen!.syncRuns.keys()].sort((x, y) => x - y)).toEqual(step.started.map((r) => r.id).sort((x, y) => x - y));
        expect(seen!.syncRuns.get(queued.id)).toMatchObject({ status: 'queued', memberKey: 'contacts' });
        expect(next.cancelled).toEqual([queued.id]);
        expect(await store.getSyncRun(queued.id)).toMatchObject({ status: 'cancelled', finishedAt: T0 + 2 });
        expect(next.run).toMatchObject({ status: 'failed', finishedAt: T0 + 2 });
        expect(next.run.members.map((m) => m.status)).toEqual(['skipped', 'cancelled', 'skipped']);
        expect(await store.getSyncRun(step.started[0]!.id)).toMatchObject({ status: 'cancelled' });
      });

      it('decides with no sequence when it was deleted', async () => {
        await applyCrm();
        const { run } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
        await store.claimSequenceRun(run.id, T0);
        await store.deleteEntity('sequence', 'crm-graph', T0 + 1);
        let seen: SequenceAdvanceState | null = null;
        await store.advanceSequenceRun(
          run.id,
          (state) => {
            seen = state;
            return decideSequenceAdvance(state);
          },
          T0 + 2,
        );
        expect(seen!.sequence).toBeNull();
      });
    });
  });
}

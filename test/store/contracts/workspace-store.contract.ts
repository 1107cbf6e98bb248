/**
 * The WorkspaceStore contract: the workspace is kept by slug, with ids that stay. Applying a
 * definition makes the store equal to it (plan says what apply would change; nothing to change
 * changes nothing) and refuses, changing nothing, a definition whose references do not resolve.
 * What is no longer declared is soft-deleted: history keeps its id, work that can no longer run is
 * cancelled, and a slug declared again gets a new id. Apply never deletes what the API created.
 * Entities are found by id or slug, enabled and disabled, upserted with their origin, and deleted
 * only while nothing refers to them.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ValidationError } from '../../../src/core/errors.js';
import type { Store } from '../../../src/core/ports.js';
import { LEASE, MANUAL, NO_OPTIONS, T0, crmWorkspace, expectError, member, syncDef, useFreshStore, type OpenStore } from './fixtures.js';

/** The stored fields removed, so a record compares with its definition. */
function definitionOf<T extends object>(record: T): object {
  const { id: _id, createdAt: _c, updatedAt: _u, origin: _o, ...rest } = record as T & {
    id: unknown;
    createdAt: unknown;
    updatedAt: unknown;
    origin: unknown;
  };
  return rest;
}

export function describeWorkspaceStoreContract(name: string, open: OpenStore): void {
  describe(`WorkspaceStore contract: ${name}`, () => {
    let store: Store;
    const { applyCrm, sequence, runningRun } = useFreshStore(open, (opened) => {
      store = opened;
    });

    it('applies a new workspace and loads it back exactly as declared', async () => {
      const definition = crmWorkspace();
      expect(await store.planWorkspace(definition)).toHaveLength(
        definition.sources.length +
          definition.destinations.length +
          definition.models.length +
          definition.syncs.length +
          definition.sequences.length,
      );
      const changes = await store.applyWorkspace(definition, T0);
      expect(changes.every((c) => c.action === 'create')).toBe(true);
      expect(changes.map((c) => `${c.kind}:${c.slug}`)).toContain('sequence:crm-graph');

      const state = await store.loadWorkspace();
      expect(state.sources.map(definitionOf)).toEqual(definition.sources);
      expect(state.destinations.map(definitionOf)).toEqual(definition.destinations);
      expect(state.models.map(definitionOf)).toEqual(definition.models);
      expect(state.syncs.map(definitionOf)).toEqual(definition.syncs);
      expect(state.sequences.map(definitionOf)).toEqual(definition.sequences);
      // `after: null` (linear) and `after: []` (graph root) are different things.
      expect(state.sequences.find((s) => s.slug === 'crm-hierarchy')?.members[0]?.after).toBeNull();
      expect(state.sequences.find((s) => s.slug === 'crm-graph')?.members[0]?.after).toEqual([]);
      for (const record of [...state.syncs, ...state.sequences, ...state.models]) {
        expect(Number.isInteger(record.id)).toBe(true);
        expect(record.createdAt).toBe(T0);
        expect(record.updatedAt).toBe(T0);
      }
      expect(new Set(state.syncs.map((s) => s.id)).size).toBe(3);
      expect(await store.planWorkspace(definition)).toEqual([]);
      expect(await store.applyWorkspace(definition, T0 + 5)).toEqual([]);
      expect((await store.getSync('accounts-to-crm'))?.updatedAt).toBe(T0);
    });

    it('updates changed fields in place, keeping ids and createdAt', async () => {
      const { syncs } = await applyCrm();
      const next = crmWorkspace();
      next.syncs[0] = { ...next.syncs[0]!, mode: 'mirror', batchSize: 50 };
      const plan = await store.planWorkspace(next);
      expect(plan).toEqual([{ action: 'update', kind: 'sync', slug: 'accounts-to-crm', fields: ['batchSize', 'mode'] }]);
      expect(await store.applyWorkspace(next, T0 + 10)).toEqual(plan);
      const updated = await store.getSync('accounts-to-crm');
      expect(updated).toMatchObject({ id: syncs['accounts-to-crm']!.id, mode: 'mirror', batchSize: 50 });
      expect(updated?.createdAt).toBe(T0);
      expect(updated?.updatedAt).toBe(T0 + 10);
      expect((await store.getSync('contacts-to-crm'))?.updatedAt).toBe(T0);
    });

    it('soft-deletes entities no longer declared; history keeps the id; a re-created slug gets a new id', async () => {
      const { syncs } = await applyCrm();
      const dealsId = syncs['deals-to-crm']!.id;
      const { run } = await store.enqueueSyncRun({ syncId: dealsId, trigger: MANUAL, options: NO_OPTIONS }, T0);
      await store.claimSyncRun(run.id, T0 + 1, LEASE);
      await store.updateSyncRun(run.id, { status: 'success' }, T0 + 2);
      await store.snapshots.write(dealsId, [['["eu",1]', 'h1']], []);
      const { run: queued } = await store.enqueueSyncRun({ syncId: dealsId, trigger: MANUAL, options: NO_OPTIONS }, T0 + 3);
      const { run: pendingGraph } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0 + 3);

      const next = crmWorkspace();
      next.sequences = next.sequences.filter((s) => s.slug !== 'crm-graph');
      next.syncs = next.syncs.filter((s) => s.slug !== 'deals-to-crm');
      next.models = next.models.filter((m) => m.slug !== 'deals');
      next.sequences = next.sequences.map((s) => ({ ...s, members: s.members.filter((m) => m.sync !== 'deals-to-crm') }));
      const changes = await store.applyWorkspace(next, T0 + 10);
      expect(changes).toContainEqual({ action: 'delete', kind: 'sync', slug: 'deals-to-crm', fields: [] });
      expect(changes).toContainEqual({ action: 'delete', kind: 'model', slug: 'deals', fields: [] });

      expect(await store.getSync(dealsId)).toBeNull();
      expect(await store.getSync('deals-to-crm')).toBeNull();
      expect(await store.getModel('deals')).toBeNull();
      const state = await store.loadWorkspace();
      expect(state.syncs.map((s) => s.slug).sort()).toEqual(['accounts-to-crm', 'contacts-to-crm']);
      const history = await store.listSyncRuns({ syncId: dealsId, limit: 10, offset: 0, order: 'desc' });
      expect(history.map((r) => r.id)).toEqual([queued.id, run.id]);
      expect(await store.getSyncRun(run.id)).toMatchObject({ syncId: dealsId, status: 'success' });
      // Work that can no longer run goes with what was deleted.
      expect(await store.getSyncRun(queued.id)).toMatchObject({ status: 'cancelled', finishedAt: T0 + 10 });
      expect(await store.listQueuedSyncRuns()).toEqual([]);
      const graphRun = await store.getSequenceRun(pendingGraph.id);
      expect(graphRun).toMatchObject({ status: 'cancelled', finishedAt: T0 + 10 });
      expect(graphRun?.members.every((m) => m.status === 'skipped')).toBe(true);
      expect(await store.getSequence('crm-graph')).toBeNull();

      await store.applyWorkspace(crmWorkspace(), T0 + 20);
      const recreated = await store.getSync('deals-to-crm');
      expect(recreated).not.toBeNull();
      expect(recreated!.id).not.toBe(dealsId);
      expect(recreated!.id).toBeGreaterThan(Math.max(...Object.values(syncs).map((s) => s.id)));
      expect(recreated!.createdAt).toBe(T0 + 20);
      expect(await store.snapshots.count(dealsId)).toBe(0);
      expect((await store.getSync('accounts-to-crm'))?.id).toBe(syncs['accounts-to-crm']!.id);
    });

    it('names syncs and sequences by id for run history, deleted ones included and marked', async () => {
      const { syncs } = await applyCrm();
      const dealsId = syncs['deals-to-crm']!.id;
      const accountsId = syncs['accounts-to-crm']!.id;
      const graphId = (await sequence('crm-graph')).id;
      const next = crmWorkspace();
      next.sequences = next.sequences.filter((s) => s.slug !== 'crm-graph').map((s) => ({ ...s, members: s.members.filter((m) => m.sync !== 'deals-to-crm') }));
      next.syncs = next.syncs.filter((s) => s.slug !== 'deals-to-crm');
      await store.applyWorkspace(next, T0 + 10);
      // The slug declared again is another sync: the runs of the deleted one stay its own.
      await store.applyWorkspace(crmWorkspace(), T0 + 20);
      const recreated = (await store.getSync('deals-to-crm'))!.id;

      expect(await store.slugsById('sync', [dealsId, recreated, accountsId, dealsId, 987654])).toEqual(
        new Map([
          [dealsId, { slug: 'deals-to-crm', deleted: true }],
          [recreated, { slug: 'deals-to-crm', deleted: false }],
          [accountsId, { slug: 'accounts-to-crm', deleted: false }],
        ]),
      );
      const graphNow = (await sequence('crm-graph')).id;
      expect(await store.slugsById('sequence', [graphId, graphNow])).toEqual(
        new Map([
          [graphId, { slug: 'crm-graph', deleted: true }],
          [graphNow, { slug: 'crm-graph', deleted: false }],
        ]),
      );
      expect(await store.slugsById('sync', [])).toEqual(new Map());

      // From a slug back to what was deleted under it: the history of a slug nothing live has now.
      expect(await store.deletedIdsBySlug('sync', 'deals-to-crm')).toEqual([dealsId]);
      expect(await store.deletedIdsBySlug('sequence', 'crm-graph')).toEqual([graphId]);
      expect(await store.deletedIdsBySlug('sync', 'accounts-to-crm')).toEqual([]);
      expect(await store.deletedIdsBySlug('sync', 'never-declared')).toEqual([]);
      const again = crmWorkspace();
      again.syncs = again.syncs.filter((s) => s.slug !== 'deals-to-crm');
      again.sequences = again.sequences.filter((s) => s.slug !== 'crm-graph').map((s) => ({ ...s, members: s.members.filter((m) => m.sync !== 'deals-to-crm') }));
      await store.applyWorkspace(again, T0 + 30);
      expect(await store.deletedIdsBySlug('sync', 'deals-to-crm')).toEqual([recreated, dealsId]);
    });

    it('gives syncs by id as their runs ran them, deleted ones included and marked, with the source of the model each named', async () => {
      const { syncs } = await applyCrm();
      const dealsId = syncs['deals-to-crm']!.id;
      const contactsId = syncs['contacts-to-crm']!.id;
      const accountsId = syncs['accounts-to-crm']!.id;
      const lake = { slug: 'lake', type: 'postgres', settings: { url: '${LAKE_URL}' } };
      // deals-to-crm is deleted with its model, contacts-to-crm without.
      const removed = crmWorkspace();
      removed.sources.push(lake);
      removed.models = removed.models.filter((m) => m.slug !== 'deals');
      removed.syncs = removed.syncs.filter((s) => s.slug !== 'deals-to-crm' && s.slug !== 'contacts-to-crm');
      removed.sequences = [];
      await store.applyWorkspace(removed, T0 + 10);
      // The deals model declared again on another source: the deleted sync read from the first.
      const again = crmWorkspace();
      again.sources.push(lake);
      again.models = again.models.map((m) => (m.slug === 'deals' ? { ...m, source: 'lake' } : m));
      await store.applyWorkspace(again, T0 + 20);
      const recreated = (await store.getSync('deals-to-crm'))!.id;

      const found = await store.syncsById([dealsId, contactsId, recreated, accountsId, dealsId, 987654]);
      expect([...found.keys()].sort((a, b) => a - b)).toEqual([dealsId, contactsId, accountsId, recreated].sort((a, b) => a - b));
      expect(found.get(dealsId)).toEqual({ ...syncs['deals-to-crm'], updatedAt: T0 + 10, deleted: true, modelSource: 'warehouse' });
      expect(found.get(contactsId)).toEqual({ ...syncs['contacts-to-crm'], updatedAt: T0 + 10, deleted: true, modelSource: 'warehouse' });
      expect(found.get(recreated)).toMatchObject({ slug: 'deals-to-crm', model: 'deals', createdAt: T0 + 20, deleted: false, modelSource: 'lake' });
      expect(found.get(accountsId)).toEqual({ ...syncs['accounts-to-crm'], deleted: false, modelSource: 'warehouse' });
      expect(await store.syncsById([])).toEqual(new Map());
    });

    it("ends sequence runs that would still start a deleted sync's member, saying which and why", async () => {
      const { syncs } = await applyCrm();
      const { run: running } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0);
      await store.claimSequenceRun(running.id, T0);
      const [accounts] = await store.startMembers(running.id, [{ key: 'accounts', syncId: syncs['accounts-to-crm']!.id }], T0 + 1);
      await store.claimSyncRun(accounts!.id, T0 + 1, LEASE);
      const { run: queued } = await store.enqueueSequenceRun(await sequence('crm-graph'), MANUAL, T0 + 2);

      // deals-to-crm renamed: a rename is a delete and a create.
      const next = crmWorkspace();
      next.syncs = next.syncs.map((s) => (s.slug === 'deals-to-crm' ? { ...s, slug: 'deals-to-crm-v2' } : s));
      next.sequences = next.sequences.map((s) => ({
        ...s,
        members: s.members.map((m) => (m.sync === 'deals-to-crm' ? { ...m, sync: 'deals-to-crm-v2' } : m)),
      }));
      await store.applyWorkspace(next, T0 + 10);

      const reason = /member "deals" cannot run: its sync "deals-to-crm" was deleted after this run was queued/;
      const after = await store.getSequenceRun(running.id);
      // The member already running finishes; the rest can never start.
      expect(after).toMatchObject({ status: 'running', terminatedBy: 'deals' });
      expect(after?.reason).toMatch(reason);
      expect(after?.members.map((m) => [m.key, m.status])).toEqual([
        ['accounts', 'running'],
        ['contacts', 'skipped'],
        ['deals', 'skipped'],
      ]);
      const follower = await store.getSequenceRun(queued.id);
      expect(follower).toMatchObject({ status: 'cancelled', finishedAt: T0 + 10 });
      expect(follower?.reason).toMatch(reason);
      expect(follower?.members.every((m) => m.status === 'skipped')).toBe(true);
    });

    it('refuses a definition with an unknown reference and changes nothing', async () => {
      await applyCrm();
      const before = await store.loadWorkspace();

      const badModel = crmWorkspace();
      badModel.syncs[1] = { ...badModel.syncs[1]!, model: 'contact' };
      badModel.syncs.push(syncDef('tickets-to-crm', 'tickets'));
      const error = await expectError(store.applyWorkspace(badModel, T0 + 1), ErrorCode.Validation);
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.message).toContain('"contact"');
      expect((error as ValidationError).diagnostics.map((d) => d.path)).toContain('syncs.contacts-to-crm.model');

      const badMember = crmWorkspace();
      badMember.sequences[0]!.members.push(member('leads-to-crm'));
      const memberError = await expectError(store.applyWorkspace(badMember, T0 + 1), ErrorCode.Validation);
      expect(memberError.message).toContain('"leads-to-crm"');

      const badSource = crmWorkspace();
      badSource.sources = [];
      await expectError(store.applyWorkspace(badSource, T0 + 1), ErrorCode.Validation);

      expect(await store.loadWorkspace()).toEqual(before);
    });

    it('finds syncs and sequences by id, numeric string or slug, and other entities by slug', async () => {
      const { syncs, sequences } = await applyCrm();
      const accounts = syncs['accounts-to-crm']!;
      expect(await store.getSync(accounts.id)).toEqual(accounts);
      expect(await store.getSync(String(accounts.id))).toEqual(accounts);
      expect(await store.getSync('accounts-to-crm')).toEqual(accounts);
      expect(await store.getSync(9999)).toBeNull();
      expect(await store.getSync('9999')).toBeNull();
      expect(await store.getSync('no-such-sync')).toBeNull();

      const graph = sequences['crm-graph']!;
      expect(await store.getSequence(graph.id)).toEqual(graph);
      expect(await store.getSequence(String(graph.id))).toEqual(graph);
      expect(await store.getSequence('crm-graph')).toEqual(graph);
      expect(await store.getSequence('nope')).toBeNull();

      // A slug of digits names its own sync or sequence, never the one with that id.
      const contacts = syncs['contacts-to-crm']!;
      const digits = crmWorkspace();
      digits.syncs.push({ ...digits.syncs.find((s) => s.slug === 'contacts-to-crm')!, slug: String(contacts.id) });
      digits.sequences.push({ ...digits.sequences.find((s) => s.slug === 'crm-graph')!, slug: String(graph.id) });
      await store.applyWorkspace(digits, T0 + 1);
      expect(await store.getSync(String(contacts.id))).toMatchObject({ slug: String(contacts.id) });
      expect(await store.getSync(contacts.id)).toMatchObject({ slug: 'contacts-to-crm' });
      expect(await store.getSequence(String(graph.id))).toMatchObject({ slug: String(graph.id) });
      expect(await store.getSequence(graph.id)).toMatchObject({ slug: 'crm-graph' });

      expect(await store.getModel('deals')).toMatchObject({ slug: 'deals', primaryKey: ['region', 'id'] });
      expect(await store.getSource('warehouse')).toMatchObject({ type: 'postgres', settings: { url: '${WAREHOUSE_URL}' } });
      expect(await store.getDestination('crm')).toMatchObject({ type: 'sqlite', settings: { path: 'crm.db' } });
      expect(await store.getModel('nope')).toBeNull();
      expect(await store.getSource('crm')).toBeNull();
      expect(await store.getDestination('warehouse')).toBeNull();
    });

    it('enables and disables syncs and sequences', async () => {
      const { syncs, sequences } = await applyCrm();
      await store.setEnabled('sync', syncs['accounts-to-crm']!.id, false, T0 + 1);
      await store.setEnabled('sequence', sequences['crm-graph']!.id, true, T0 + 2);
      expect(await store.getSync('accounts-to-crm')).toMatchObject({ enabled: false, updatedAt: T0 + 1 });
      expect(await store.getSequence('crm-graph')).toMatchObject({ enabled: true, updatedAt: T0 + 2 });
      // The declared state differs now, and plan says so.
      expect(await store.planWorkspace(crmWorkspace())).toEqual(
        expect.arrayContaining([
          { action: 'update', kind: 'sync', slug: 'accounts-to-crm', fields: ['enabled'] },
          { action: 'update', kind: 'sequence', slug: 'crm-graph', fields: ['enabled'] },
        ]),
      );
      await expectError(store.setEnabled('sync', 9999, true, T0), ErrorCode.NotFound);
    });

    it('upserts one entity with its origin, keeping its id, and refuses unknown references', async () => {
      const { syncs } = await applyCrm();
      expect((await store.getSync('accounts-to-crm'))?.origin).toBe('file');
      const model = { slug: 'leads', source: 'warehouse', query: 'select id from leads', primaryKey: ['id'] };
      const created = await store.upsertEntity('model', model, 'api', T0 + 1);
      expect(created.created).toBe(true);
      expect(created.record).toMatchObject({ ...model, origin: 'api', createdAt: T0 + 1, updatedAt: T0 + 1 });
      expect(await store.getModel('leads')).toEqual(created.record);

      const changed = syncDef('accounts-to-crm', 'leads', { enabled: false });
      const updated = await store.upsertEntity('sync', changed, 'api', T0 + 2);
      expect(updated.created).toBe(false);
      expect(updated.record).toMatchObject({ id: syncs['accounts-to-crm']!.id, model: 'leads', enabled: false, origin: 'api', createdAt: T0, updatedAt: T0 + 2 });

      const before = await store.loadWorkspace();
      const error = await expectError(store.upsertEntity('sync', syncDef('x-to-crm', 'nope'), 'api', T0 + 3), ErrorCode.Validation);
      expect(error.message).toContain('unknown model "nope"');
      expect(await store.loadWorkspace()).toEqual(before);
    });

    it('deletes one entity, refusing while others refer to it', async () => {
      await applyCrm();
      const conflict = await expectError(store.deleteEntity('sync', 'deals-to-crm', T0 + 1), ErrorCode.Conflict);
      expect(conflict.message).toContain('sequence "crm-hierarchy"');
      expect(conflict.message).toContain('sequence "crm-graph"');
      await expectError(store.deleteEntity('model', 'accounts', T0 + 1), ErrorCode.Conflict);
      await expectError(store.deleteEntity('sync', 'nope', T0 + 1), ErrorCode.NotFound);
      await store.deleteEntity('sequence', 'crm-graph', T0 + 1);
      expect(await store.getSequence('crm-graph')).toBeNull();
    });

    it('apply never deletes what the API created, and takes over a slug a file declares', async () => {
      await applyCrm();
      await store.upsertEntity('model', { slug: 'leads', source: 'warehouse', query: 'select 1 as id', primaryKey: ['id'] }, 'api', T0 + 1);
      const accounts = crmWorkspace().models[0]!;
      await store.upsertEntity('model', { ...accounts, query: 'select 2 as id' }, 'api', T0 + 1);
      const plan = await store.planWorkspace(crmWorkspace());
      expect(plan).toEqual([{ action: 'update', kind: 'model', slug: 'accounts', fields: ['query', 'origin'] }]);
      await store.applyWorkspace(crmWorkspace(), T0 + 2);
      expect(await store.getModel('leads')).toMatchObject({ origin: 'api' });
      expect(await store.getModel('accounts')).toMatchObject({ origin: 'file', query: accounts.query });
      // A file-managed slug taken over with the same definition still changes hands.
      await store.upsertEntity('model', accounts, 'api', T0 + 3);
      expect(await store.planWorkspace(crmWorkspace())).toEqual([{ action: 'update', kind: 'model', slug: 'accounts', fields: ['origin'] }]);
    });

    it("drops a sync's snapshot when its rows are keyed otherwise, so a mirror does not delete what it sent under the new keys", async () => {
      const { syncs } = await applyCrm();
      const id = (slug: string) => syncs[slug]!.id;
      for (const slug of ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm']) await store.snapshots.write(id(slug), [['["eu",1]', 'aaaaaaaaaaaaaaaa']], []);
      const counts = async () => Promise.all(['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'].map((slug) => store.snapshots.count(id(slug))));

      // The model's primary key changes in the files: only its sync starts over.
      const rekeyed = crmWorkspace();
      rekeyed.models[2] = { ...rekeyed.models[2]!, primaryKey: ['id'] };
      await store.applyWorkspace(rekeyed, T0 + 1);
      expect(await counts()).toEqual([1, 1, 0]);
      // A change of anything else keeps what was delivered.
      await store.snapshots.write(id('deals-to-crm'), [['[1]', 'aaaaaaaaaaaaaaaa']], []);
      const requeried = crmWorkspace();
      requeried.models[2] = { ...rekeyed.models[2]!, query: 'select id, region, name from deals' };
      await store.applyWorkspace(requeried, T0 + 2);
      expect(await counts()).toEqual([1, 1, 1]);

      // Through the API: a model's key changed, and a sync moved to a model keyed otherwise.
      await store.upsertEntity('model', { ...crmWorkspace().models[1]!, primaryKey: ['email'] }, 'api', T0 + 3);
      expect(await counts()).toEqual([1, 0, 1]);
      await store.upsertEntity('sync', { ...crmWorkspace().syncs[0]!, model: 'contacts' }, 'api', T0 + 4);
      expect(await counts()).toEqual([0, 0, 1]);
    });

    it("drops a sync's snapshot when it writes to another object or destination, which would otherwise get only changed rows", async () => {
      const { syncs } = await applyCrm();
      const id = (slug: string) => syncs[slug]!.id;
      for (const slug of ['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm']) await store.snapshots.write(id(slug), [['[1]', 'aaaaaaaaaaaaaaaa']], []);
      const counts = async () => Promise.all(['accounts-to-crm', 'contacts-to-crm', 'deals-to-crm'].map((slug) => store.snapshots.count(id(slug))));

      const moved = crmWorkspace();
      moved.syncs[0] = { ...moved.syncs[0]!, object: 'accounts_v2' };
      await store.applyWorkspace(moved, T0 + 1);
      expect(await counts()).toEqual([0, 1, 1]);

      await store.upsertEntity('destination', { slug: 'crm2', type: 'sqlite', settings: { path: 'crm2.db' } }, 'api', T0 + 2);
      await store.upsertEntity('sync', { ...crmWorkspace().syncs[1]!, destination: 'crm2' }, 'api', T0 + 3);
      expect(await counts()).toEqual([0, 0, 1]);
      // A change of its mode or batch size keeps what it delivered.
      await store.upsertEntity('sync', { ...crmWorkspace().syncs[2]!, mode: 'upsert', batchSize: 10 }, 'api', T0 + 4);
      expect(await counts()).toEqual([0, 0, 1]);
    });

    it('ends the run under way of a sync that starts over, whose later commits are then refused', async () => {
      const { syncs } = await applyCrm();
      const going = await runningRun('accounts-to-crm', T0 + 1);
      const other = await runningRun('contacts-to-crm', T0 + 1);
      const moved = crmWorkspace();
      moved.syncs[0] = { ...moved.syncs[0]!, object: 'accounts_v2' };
      await store.applyWorkspace(moved, T0 + 3);
      const ended = await store.getSyncRun(going.id);
      expect(ended).toMatchObject({ status: 'cancelled', finishedAt: T0 + 3 });
      expect(ended?.error).toMatch(/^the sync's destination, object or primary key changed while this run went on/);
      const fence = { runId: going.id, attempt: going.attempt };
      await expectError(store.snapshots.write(syncs['accounts-to-crm']!.id, [['[2]', 'bbbbbbbbbbbbbbbb']], [], fence), ErrorCode.LeaseLost);
      expect(await store.snapshots.count(syncs['accounts-to-crm']!.id)).toBe(0);
      // Another sync's run goes on.
      expect((await store.getSyncRun(other.id))?.status).toBe(other.status);
    });

    it('refuses to apply files that drop an entity an API-created one refers to', async () => {
      await applyCrm();
      await store.upsertEntity('sync', syncDef('extra-to-crm', 'deals'), 'api', T0 + 1);
      const without = crmWorkspace();
      without.sequences = [];
      without.syncs = without.syncs.filter((s) => s.slug !== 'deals-to-crm');
      without.models = without.models.filter((m) => m.slug !== 'deals');
      const error = await expectError(store.applyWorkspace(without, T0 + 2), ErrorCode.Validation);
      expect(error.message).toContain('unknown model "deals"');
      expect(error.message).toContain('unknown model "deals", which sync "extra-to-crm" (created through the API) uses');
      expect(error.message).toContain('or change or delete sync "extra-to-crm" through the API or the UI first');
      expect(await store.getModel('deals')).not.toBeNull();
      // plan refuses what apply refuses, instead of listing changes apply will not make
      const planned = await expectError(store.planWorkspace(without), ErrorCode.Validation);
      expect(planned.message).toBe(error.message);
    });
  });
}

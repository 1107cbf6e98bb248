/**
 * The Store contract: what every store (SQLite, PostgreSQL) must do, tested through the port
 * only. A store's test file calls `describeStoreContract(name, factory)` with a factory that opens
 * a fresh, empty store; nothing here knows which database is behind it.
 */
import { hashText } from '../../src/core/hash-text.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError, NotFoundError, ValidationError } from '../../src/core/errors.js';
import type { LeaseRequest, Store } from '../../src/core/ports.js';
import type { SyncRun, SyncRunStatus, Trigger } from '../../src/core/runs.js';
import { decideSequenceAdvance, type SequenceAdvanceState } from '../../src/core/sequence-rules.js';
import type {
  MemberDef,
  SequenceDef,
  SequenceRecord,
  SyncDef,
  SyncRecord,
  WorkspaceDefinition,
} from '../../src/core/workspace.js';

export interface StoreUnderTest {
  store: Store;
  cleanup(): Promise<void>;
}

export type StoreFactory = () => Promise<StoreUnderTest>;

const T0 = 1_767_225_600_000.25; // 2026-01-01, with a fraction: stores must keep sub-millisecond times
const MANUAL: Trigger = { type: 'manual', detail: null };
const NO_OPTIONS = { fullResync: false, resetCDC: false };
/** The lease the contract's claims take unless a test is about leases. */
export const LEASE: LeaseRequest = { workerId: 'worker-a', leaseMs: 30_000 };

function syncDef(slug: string, model: string, overrides: Partial<SyncDef> = {}): SyncDef {
  return {
    slug,
    model,
    destination: 'crm',
    object: slug.replace(/-to-crm$/, ''),
    mode: 'upsert',
    deleteBehavior: 'ignore',
    mappings: [],
    schedule: { type: 'manual' },
    enabled: true,
    batchSize: 1000,
    settings: {},
    ...overrides,
  };
}

function member(sync: string, overrides: Partial<MemberDef> = {}): MemberDef {
  return { key: sync, sync, terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null, ...overrides };
}

/** A small CRM workspace: three syncs, a linear sequence and a graph sequence. */
export function crmWorkspace(): WorkspaceDefinition {
  const linear: SequenceDef = {
    slug: 'crm-hierarchy',
    name: 'CRM hierarchy',
    members: [
      member('accounts-to-crm', { terminate: 'on_fatal_or_rejected', rejectedThreshold: { percent: 5 } }),
      member('contacts-to-crm', { terminate: 'never' }),
      member('deals-to-crm'),
    ],
    concurrency: 4,
    schedule: { type: 'cron', expression: '0 * * * *', timezone: 'Europe/Berlin', catchupWindowSeconds: 3600 },
    enabled: true,
  };
  const graph: SequenceDef = {
    slug: 'crm-graph',
    name: 'CRM graph',
    members: [
      member('accounts-to-crm', { key: 'accounts', after: [] }),
      member('contacts-to-crm', { key: 'contacts', after: ['accounts'] }),
      member('deals-to-crm', { key: 'deals', after: ['accounts'] }),
    ],
    concurrency: 2,
    schedule: { type: 'manual' },
    enabled: false,
  };
  return {
    sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: '${WAREHOUSE_URL}' } }],
    destinations: [{ slug: 'crm', type: 'sqlite', settings: { path: 'crm.db' } }],
    models: [
      { slug: 'accounts', source: 'warehouse', query: 'select id, name from accounts', primaryKey: ['id'] },
      { slug: 'contacts', source: 'warehouse', query: 'select id, email from contacts', primaryKey: ['id'] },
      { slug: 'deals', source: 'warehouse', query: 'select region, id from deals', primaryKey: ['region', 'id'] },
    ],
    syncs: [
      syncDef('accounts-to-crm', 'accounts'),
      syncDef('contacts-to-crm', 'contacts', {
        mappings: [{ from: 'email', to: 'email_address' }],
        schedule: { type: 'after', sync: 'accounts-to-crm', sequence: null, on: 'success' },
      }),
      syncDef('deals-to-crm', 'deals', {
        mode: 'mirror',
        schedule: { type: 'interval', unit: 'hour', quantity: 2, startAt: null, catchupWindowSeconds: 600 },
      }),
    ],
    sequences: [linear, graph],
  };
}

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

async function expectError(promise: Promise<unknown>, code: ErrorCode): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected a LockstepError with code ${code}`).toBeInstanceOf(LockstepError);
  expect((error as LockstepError).code).toBe(code);
  return error as LockstepError;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const batches: T[] = [];
  for await (const batch of iterable) batches.push(batch);
  return batches;
}

export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: Store;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    /** Applies the CRM workspace and returns its syncs by slug and sequences by slug. */
    async function applyCrm(): Promise<{ syncs: Record<string, SyncRecord>; sequences: Record<string, SequenceRecord> }> {
      await store.applyWorkspace(crmWorkspace(), T0);
      const state = await store.loadWorkspace();
      return {
        syncs: Object.fromEntries(state.syncs.map((s) => [s.slug, s])),
        sequences: Object.fromEntries(state.sequences.map((s) => [s.slug, s])),
      };
    }

    async function syncId(slug: string): Promise<number> {
      const sync = await store.getSync(slug);
      if (!sync) throw new Error(`no sync ${slug}`);
      return sync.id;
    }

    async function sequence(slug: string): Promise<SequenceRecord> {
      const found = await store.getSequence(slug);
      if (!found) throw new Error(`no sequence ${slug}`);
      return found;
    }

    /** A claimed (querying) standalone run of `slug`. */
    async function runningRun(slug: string, now = T0): Promise<SyncRun> {
      const { run } = await store.enqueueSyncRun({ syncId: await syncId(slug), trigger: MANUAL, options: NO_OPTIONS }, now);
      const claimed = await store.claimSyncRun(run.id, now + 1, LEASE);
      if (!claimed) throw new Error('claim failed');
      return claimed;
    }

    // -----------------------------------------------------------------------------------------
    describe('workspace', () => {
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
        await store.snapshotWrite(dealsId, [['["eu",1]', 'h1']], []);
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
        expect(await store.snapshotCount(dealsId)).toBe(0);
        expect((await store.getSync('accounts-to-crm'))?.id).toBe(syncs['accounts-to-crm']!.id);
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

      it('refuses to apply files that drop an entity an API-created one refers to', async () => {
        await applyCrm();
        await store.upsertEntity('sync', syncDef('extra-to-crm', 'deals'), 'api', T0 + 1);
        const without = crmWorkspace();
        without.sequences = [];
        without.syncs = without.syncs.filter((s) => s.slug !== 'deals-to-crm');
        without.models = without.models.filter((m) => m.slug !== 'deals');
        const error = await expectError(store.applyWorkspace(without, T0 + 2), ErrorCode.Validation);
        expect(error.message).toContain('unknown model "deals"');
        expect(await store.getModel('deals')).not.toBeNull();
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('tokens', () => {
      it('creates, lists, touches and revokes tokens by name; names are unique', async () => {
        const token = await store.tokens.create('ci', 'a'.repeat(64), T0);
        expect(token).toEqual({ id: token.id, name: 'ci', createdAt: T0, lastUsedAt: null });
        await expectError(store.tokens.create('ci', 'b'.repeat(64), T0), ErrorCode.Conflict);
        await store.tokens.create('airflow', 'c'.repeat(64), T0 + 1);
        await store.tokens.touch(token.id, T0 + 5);
        expect(await store.tokens.list()).toEqual([
          { id: token.id, name: 'ci', hash: 'a'.repeat(64), createdAt: T0, lastUsedAt: T0 + 5 },
          expect.objectContaining({ name: 'airflow', hash: 'c'.repeat(64), lastUsedAt: null }),
        ]);
        expect(await store.tokens.revoke('ci')).toBe(true);
        expect(await store.tokens.revoke('ci')).toBe(false);
        expect((await store.tokens.list()).map((t) => t.name)).toEqual(['airflow']);
      });
    });

    // -----------------------------------------------------------------------------------------
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

      it('refuses to queue a run of an unknown sync', async () => {
        await applyCrm();
        await expectError(store.enqueueSyncRun({ syncId: 9999, trigger: MANUAL, options: NO_OPTIONS }, T0), ErrorCode.NotFound);
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

      it('cancels a queued run at once and flags an active one', async () => {
        await applyCrm();
        const { run: queued } = await store.enqueueSyncRun({ syncId: await syncId('deals-to-crm'), trigger: MANUAL, options: NO_OPTIONS }, T0);
        const cancelled = await store.requestSyncRunCancel(queued.id);
        expect(cancelled).toMatchObject({ status: 'cancelled', cancelRequested: true });
        expect(cancelled.finishedAt).not.toBeNull();
        expect(await store.listQueuedSyncRuns()).toEqual([]);

        const active = await runningRun('accounts-to-crm');
        const flagged = await store.requestSyncRunCancel(active.id);
        expect(flagged).toMatchObject({ status: 'querying', cancelRequested: true, finishedAt: null });
        expect((await store.getSyncRun(active.id))?.cancelRequested).toBe(true);
        await store.updateSyncRun(active.id, { status: 'cancelled' }, T0 + 5);

        const conflict = await expectError(store.requestSyncRunCancel(active.id), ErrorCode.Conflict);
        expect(conflict.message).toContain(String(active.id));
        const missing = await expectError(store.requestSyncRunCancel(9999), ErrorCode.NotFound);
        expect(missing).toBeInstanceOf(NotFoundError);
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
      });
    });

    // -----------------------------------------------------------------------------------------
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
        await store.snapshotWrite(id, [['[1]', 'aaaaaaaaaaaaaaaa']], [], first);
        await store.recordIdsWrite(id, [['[1]', 'r1']], [], first);
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
          () => store.snapshotWrite(id, [['[2]', 'bbbbbbbbbbbbbbbb']], ['[1]'], first),
          () => store.snapshotWrite(id, { keys: ['[3]'], hashes: new Uint32Array([1, 2]) }, [], first),
          () => store.recordIdsWrite(id, [['[2]', 'r2']], ['[1]'], first),
          () => store.snapshotClear(id, first),
        ];
        for (const write of refused) {
          const error = await expectError(write(), ErrorCode.LeaseLost);
          expect(error.message).toContain(`sync run ${run.id} attempt 1`);
          expect(error.message).toContain('attempt 2');
        }
        expect(await store.getSyncRun(run.id)).toEqual(before);
        expect(Object.fromEntries(await store.snapshotGet(id, ['[1]', '[2]', '[3]']))).toEqual({ '[1]': 'aaaaaaaaaaaaaaaa' });
        expect(Object.fromEntries(await store.recordIdsGet(id, ['[1]', '[2]']))).toEqual({ '[1]': 'r1' });
        expect((await store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual(['first attempt']);
        expect(await store.takeFinishedRuns(10, late, A)).toEqual([]);

        const second = { runId: run.id, attempt: 2 };
        await store.snapshotClear(id, second);
        await store.snapshotWrite(id, { keys: ['[3]'], hashes: new Uint32Array([1, 2]) }, [], second);
        await store.recordIdsWrite(id, [['[2]', 'r2']], ['[1]'], second);
        await store.addRejectedRows(rejected('second attempt'), second);
        const done = await store.updateSyncRun(run.id, { status: 'success', completionRatio: 1 }, late + 1, 2);
        expect(done).toMatchObject({ status: 'success', attempt: 2, workerId: B.workerId, leaseExpiresAt: null, finishedAt: late + 1 });
        expect(Object.fromEntries(await store.snapshotGet(id, ['[1]', '[3]']))).toEqual({ '[3]': '0000000100000002' });
        expect(Object.fromEntries(await store.recordIdsGet(id, ['[1]', '[2]']))).toEqual({ '[2]': 'r2' });
        expect((await store.listRejectedRows(run.id, 10, 0)).map((r) => r.reason)).toEqual(['first attempt', 'second attempt']);
        // A fence naming a run that does not exist refuses too.
        await expectError(store.addRejectedRows(rejected('x'), { runId: 9999, attempt: 1 }), ErrorCode.LeaseLost);
        await expectError(store.updateSyncRun(9999, { querySize: 1 }, late, 1), ErrorCode.LeaseLost);
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
        expect(await store.claimNextSyncRun(T0 + 8_000, B)).toMatchObject({ id: a1.id, attempt: 2, workerId: B.workerId });
        expect(await store.claimNextSyncRun(T0 + 8_000, B)).toBeNull();
        expect(await store.renewLeases([a1.id], T0 + 8_001, A)).toEqual([]);
        expect(await store.renewLeases([a1.id, b1.id], T0 + 8_001, B)).toHaveLength(2);
      });
    });

    // -----------------------------------------------------------------------------------------
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

        await store.requestSyncRunCancel(contactsRun!.id);
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
    });

    // -----------------------------------------------------------------------------------------
    describe('sequence advance', () => {
      const advance = (id: string, now: number) => store.advanceSequenceRun(id, decideSequenceAdvance, now);

      /** Claims a member's sync run and ends it with `status`. */
      async function finishMember(run: SyncRun, status: SyncRunStatus, now: number, patch: Parameters<Store['updateSyncRun']>[1] = {}): Promise<void> {
        await store.claimSyncRun(run.id, now, LEASE);
        await store.updateSyncRun(run.id, { ...patch, status }, now + 0.5, 1);
      }

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

    // -----------------------------------------------------------------------------------------
    describe('finished runs outbox', () => {
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

    // -----------------------------------------------------------------------------------------
    describe('record ids', () => {
      it('keeps the destination id of each delivered key per sync, replaces it, drops deleted keys, and forgets a deleted sync', async () => {
        const { syncs } = await applyCrm();
        const a = syncs['deals-to-crm']!.id;
        const b = syncs['contacts-to-crm']!.id;
        await store.recordIdsWrite(a, [['[1]', '001A'], ['[2]', '001B'], ['["x\\"y"]', '001C']], []);
        await store.recordIdsWrite(b, [['[1]', '003A']], []);
        expect([...(await store.recordIdsGet(a, ['[1]', '[2]', '["x\\"y"]', '[9]'])).entries()].sort()).toEqual([
          ['["x\\"y"]', '001C'],
          ['[1]', '001A'],
          ['[2]', '001B'],
        ]);
        await store.recordIdsWrite(a, [['[1]', '001Z']], ['[2]']);
        const after = await store.recordIdsGet(a, ['[1]', '[2]']);
        expect([...after.entries()]).toEqual([['[1]', '001Z']]);
        expect((await store.recordIdsGet(b, ['[1]'])).get('[1]')).toBe('003A');
        expect((await store.recordIdsGet(a, [])).size).toBe(0);
        for (const sequence of crmWorkspace().sequences) await store.deleteEntity('sequence', sequence.slug, T0 + 1);
        await store.deleteEntity('sync', 'deals-to-crm', T0 + 1);
        expect((await store.recordIdsGet(a, ['[1]'])).size).toBe(0);
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
    });

    describe('snapshots', () => {
      const key = (i: number) => JSON.stringify([`k${String(i).padStart(6, '0')}`]);

      it('writes, reads, pages, counts and clears 10,000 keys per sync', async () => {
        const { syncs } = await applyCrm();
        const a = syncs['accounts-to-crm']!.id;
        const b = syncs['contacts-to-crm']!.id;
        const keys = Array.from({ length: 10_000 }, (_, i) => key(i));
        // Written out of order: the store sorts.
        const shuffled = [...keys].reverse();
        await store.snapshotWrite(a, shuffled.map((k) => [k, `hash-${k}`]), []);
        await store.snapshotWrite(b, [[key(1), 'other']], []);
        expect(await store.snapshotCount(a)).toBe(10_000);
        expect(await store.snapshotCount(b)).toBe(1);

        const wanted = [...keys.slice(0, 1200), '["missing"]', key(9999)];
        const found = await store.snapshotGet(a, wanted);
        expect(found.size).toBe(1201);
        expect(found.get(key(0))).toBe(`hash-${key(0)}`);
        expect(found.get(key(1199))).toBe(`hash-${key(1199)}`);
        expect(found.get(key(9999))).toBe(`hash-${key(9999)}`);
        expect(found.has('["missing"]')).toBe(false);
        expect((await store.snapshotGet(b, [key(1), key(2)])).get(key(1))).toBe('other');
        expect((await store.snapshotGet(a, [])).size).toBe(0);

        const batches = await collect(store.snapshotKeys(a, 3000));
        expect(batches.map((batch) => batch.length)).toEqual([3000, 3000, 3000, 1000]);
        expect(batches.flat()).toEqual(keys);
        expect((await collect(store.snapshotKeys(a, 10_000))).map((batch) => batch.length)).toEqual([10_000]);

        await store.snapshotWrite(a, [[key(5), 'changed'], ['["new"]', 'fresh']], [key(6), key(7), '["never-there"]']);
        expect(await store.snapshotCount(a)).toBe(9_999);
        const after = await store.snapshotGet(a, [key(5), key(6), '["new"]']);
        expect(Object.fromEntries(after)).toEqual({ [key(5)]: 'changed', '["new"]': 'fresh' });

        await store.snapshotClear(a);
        expect(await store.snapshotCount(a)).toBe(0);
        expect(await collect(store.snapshotKeys(a, 100))).toEqual([]);
        expect(await store.snapshotCount(b)).toBe(1);
      });

      it('gives every entry in bulk pages: keys joined by line breaks, 16 hex digits per hash, 16 - for any other hash', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        const hex = (i: number) => (i * 2654435761).toString(16).padStart(16, '0').slice(-16);
        const entries: Array<[string, string]> = Array.from({ length: 2500 }, (_, i) => [key(i), hex(i + 1)]);
        entries.push([JSON.stringify(['région 1', 2]), hex(7)], ['["old"]', 'base64-hash-of-old+='], ['["short"]', 'abcd']);
        await store.snapshotWrite(id, [...entries].reverse(), []);
        const pages = await collect(store.snapshotPages(id, 1000));
        expect(pages.map((p) => p.count)).toEqual([1000, 1000, 503]);
        const read = new Map<string, string>();
        for (const page of pages) {
          const keys = page.keys.split('\n');
          expect(keys).toHaveLength(page.count);
          expect(page.hashes).toHaveLength(page.count * 16);
          keys.forEach((k, i) => read.set(k, page.hashes.slice(i * 16, i * 16 + 16).toLowerCase()));
        }
        // Pages follow key order: each page's keys come after the previous page's.
        for (let p = 1; p < pages.length; p++) {
          const before = pages[p - 1]!.keys.split('\n').sort().at(-1)!;
          expect(pages[p]!.keys.split('\n').every((k) => k > before)).toBe(true);
        }
        const expected = new Map(entries.map(([k, h]) => [k, /^[0-9a-f]{16}$/.test(h) ? h : '----------------']));
        expect(read).toEqual(expected);
        expect(await collect(store.snapshotPages(await syncId('accounts-to-crm'), 10))).toEqual([]);
      });

      it('takes delivered rows in columns, hashes as words, exactly like [key, hex] pairs, whatever the keys hold', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        const keys = [...Array.from({ length: 1200 }, (_, i) => key(i)), JSON.stringify(['nul\u0000inside']), '["région ✓"]'];
        const hashes = new Uint32Array(keys.length * 2);
        keys.forEach((_, i) => {
          hashes[2 * i] = (i * 2654435761) >>> 0;
          hashes[2 * i + 1] = (0xffffffff - i) >>> 0;
        });
        await store.snapshotWrite(id, { keys, hashes }, []);
        const read = await store.snapshotGet(id, keys);
        expect(read.size).toBe(keys.length);
        keys.forEach((k, i) => expect(read.get(k)).toBe(hashText(hashes[2 * i]!, hashes[2 * i + 1]!)));
        // A raw NUL inside a key (JSON text never holds one) still goes through.
        await store.snapshotWrite(id, { keys: ['a\u0000b', key(0)], hashes: new Uint32Array([1, 2, 3, 4]) }, [key(1)]);
        expect(Object.fromEntries(await store.snapshotGet(id, ['a\u0000b', key(0), key(1)]))).toEqual({
          'a\u0000b': '0000000100000002',
          [key(0)]: '0000000300000004',
        });
        expect(await store.snapshotCount(id)).toBe(keys.length);
      });

      it('pages keys correctly while the snapshot changes between pages', async () => {
        const id = await (applyCrm().then(() => syncId('deals-to-crm')));
        await store.snapshotWrite(id, Array.from({ length: 10 }, (_, i): [string, string] => [key(i), 'h']), []);
        const seen: string[] = [];
        for await (const batch of store.snapshotKeys(id, 4)) {
          seen.push(...batch);
          // Deleting already-seen keys must not make the next page skip any.
          if (seen.length === 4) await store.snapshotWrite(id, [], batch);
        }
        expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => key(i)));
      });
    });

    // -----------------------------------------------------------------------------------------
    describe('scheduler', () => {
      it('records a firing once', async () => {
        expect(await store.recordFiring('sync:1@1767225600000', T0)).toBe(true);
        expect(await store.recordFiring('sync:1@1767225600000', T0 + 1)).toBe(false);
        expect(await store.recordFiring('sync:1@1767229200000', T0 + 2)).toBe(true);
        expect(await store.recordFiring('sequence:1@1767225600000', T0 + 3)).toBe(true);
      });

      it('keeps a cursor per schedule', async () => {
        expect(await store.getScheduleCursor('sync:1')).toBeNull();
        await store.setScheduleCursor('sync:1', T0);
        await store.setScheduleCursor('sequence:1', T0 + 60_000);
        expect(await store.getScheduleCursor('sync:1')).toBe(T0);
        await store.setScheduleCursor('sync:1', T0 + 3_600_000);
        expect(await store.getScheduleCursor('sync:1')).toBe(T0 + 3_600_000);
        expect(await store.getScheduleCursor('sequence:1')).toBe(T0 + 60_000);
      });

      it('records firings and saves cursors in batches', async () => {
        expect(await store.recordFiring('sync:2@a', T0)).toBe(true);
        expect(await store.recordFirings(['sync:1@a', 'sync:2@a', 'sync:3@a'], T0 + 1)).toEqual(['sync:1@a', 'sync:3@a']);
        expect(await store.recordFirings(['sync:1@a', 'sync:3@a'], T0 + 2)).toEqual([]);
        expect(await store.recordFirings([], T0 + 3)).toEqual([]);
        await store.setScheduleCursors([
          { scheduleId: 'sync:1', dueTime: T0 },
          { scheduleId: 'sync:2', dueTime: T0 + 60_000 },
        ]);
        await store.setScheduleCursors([{ scheduleId: 'sync:1', dueTime: T0 + 120_000 }]);
        expect(await store.getScheduleCursor('sync:1')).toBe(T0 + 120_000);
        expect(await store.getScheduleCursor('sync:2')).toBe(T0 + 60_000);
      });
    });
  });
}

/**
 * What the Store contract suites share: the `open` each store's test file passes, a fresh store
 * per test with helpers that read it, the CRM workspace the suites apply, and the time, triggers
 * and lease they use. Nothing here knows which database is behind a store.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import { LockstepError, type ErrorCode } from '../../../src/core/errors.js';
import type { LeaseRequest, Store } from '../../../src/core/ports.js';
import type { SyncRun, Trigger } from '../../../src/core/runs.js';
import type { MemberDef, SequenceDef, SequenceRecord, SyncDef, SyncRecord, WorkspaceDefinition } from '../../../src/core/workspace.js';
import { SecretCodec, type SecretKeys, type SecretResealer } from '../../../src/core/secrets.js';
import { createConnectorRegistry } from '../../../src/app.js';

export interface StoreUnderTest {
  store: Store;
  cleanup(): Promise<void>;
  /** The keys `store` seals secrets with (see `contractSecrets`). */
  keys: SecretKeys;
  /** Everything the store keeps, as text (a file's bytes, every table's rows), to look for what must not be there. */
  raw(): Promise<string>;
  /** The same store opened once more with other secrets (the caller closes it). */
  reopen(secrets: SecretCodec): Promise<Store & SecretResealer>;
}

/**
 * How the contracts' stores seal secrets: with `keys`, the settings each connector kind marks
 * secret (as the composition root registers them).
 */
export function contractSecrets(keys: SecretKeys): SecretCodec {
  const registry = createConnectorRegistry();
  return new SecretCodec({ keys, secretSettings: (type) => registry.kind(type)?.secrets ?? [] });
}

/** Opens a fresh, empty store (a new file, a new database) for one test. */
export type OpenStore = () => Promise<StoreUnderTest>;

/** Describes one role's contract against the stores `open` opens, under `name` ('sqlite', 'postgres'). */
export type DescribeStoreContract = (name: string, open: OpenStore) => void;

export const T0 = 1_767_225_600_000.25; // 2026-01-01, with a fraction: stores must keep sub-millisecond times
export const MANUAL: Trigger = { type: 'manual', detail: null };
export const NO_OPTIONS = { fullResync: false, resetCDC: false };
/** The lease the contract's claims take unless a test is about leases. */
export const LEASE: LeaseRequest = { workerId: 'worker-a', leaseMs: 30_000 };

export function syncDef(slug: string, model: string, overrides: Partial<SyncDef> = {}): SyncDef {
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
    maxDeletePercent: 50,
    settings: {},
    ...overrides,
  };
}

export function member(sync: string, overrides: Partial<MemberDef> = {}): MemberDef {
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

export async function expectError(promise: Promise<unknown>, code: ErrorCode): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected a LockstepError with code ${code}`).toBeInstanceOf(LockstepError);
  expect((error as LockstepError).code).toBe(code);
  return error as LockstepError;
}

/** Helpers that read the store of the running test. */
export interface StoreHelpers {
  /** Applies the CRM workspace and returns its syncs by slug and sequences by slug. */
  applyCrm(): Promise<{ syncs: Record<string, SyncRecord>; sequences: Record<string, SequenceRecord> }>;
  syncId(slug: string): Promise<number>;
  sequence(slug: string): Promise<SequenceRecord>;
  /** A claimed (querying) standalone run of `slug`. */
  runningRun(slug: string, now?: number): Promise<SyncRun>;
}

/**
 * Opens a fresh store before each test of the enclosing `describe` (handing it to `opened`) and
 * cleans it up after; returns the helpers the suites share.
 */
export function useFreshStore(open: OpenStore, opened: (store: Store) => void): StoreHelpers {
  let subject: StoreUnderTest;
  let store: Store;

  beforeEach(async () => {
    subject = await open();
    store = subject.store;
    opened(store);
  });
  afterEach(async () => {
    await subject.cleanup();
  });

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

  async function runningRun(slug: string, now = T0): Promise<SyncRun> {
    const { run } = await store.enqueueSyncRun({ syncId: await syncId(slug), trigger: MANUAL, options: NO_OPTIONS }, now);
    const claimed = await store.claimSyncRun(run.id, now + 1, LEASE);
    if (!claimed) throw new Error('claim failed');
    return claimed;
  }

  return { applyCrm, syncId, sequence, runningRun };
}

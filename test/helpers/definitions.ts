import type {
  ConnectionDef,
  MemberDef,
  ModelDef,
  SequenceDef,
  SyncDef,
  WorkspaceDefinition,
} from '../../src/core/workspace.js';

/** Builders for resolved workspace definitions, with the same defaults the YAML loader fills. */
/** A connection (source or destination); `path` and `url` are shorthands for those settings (default: a SQLite file named after the slug). */
export const source = (
  slug: string,
  over: { type?: string; path?: string; url?: string; settings?: Record<string, unknown> } = {},
): ConnectionDef => ({
  slug,
  type: over.type ?? 'sqlite',
  settings: over.settings ?? (over.url !== undefined ? { url: over.url } : { path: over.path ?? `${slug}.db` }),
});

export const model = (slug: string, source: string, query: string, primaryKey: string[] = ['id']): ModelDef => ({
  slug,
  source,
  query,
  primaryKey,
});

export const sync = (slug: string, over: Partial<SyncDef> & Pick<SyncDef, 'model' | 'destination' | 'object'>): SyncDef => ({
  slug,
  mode: 'upsert',
  deleteBehavior: 'ignore',
  mappings: [],
  schedule: { type: 'manual' },
  enabled: true,
  batchSize: 1000,
  maxDeletePercent: 50,
  settings: {},
  ...over,
});

export const member = (syncSlug: string, over: Partial<MemberDef> = {}): MemberDef => ({
  key: syncSlug,
  sync: syncSlug,
  terminate: 'on_fatal',
  rejectedThreshold: { count: 0 },
  after: null,
  ...over,
});

export const sequence = (slug: string, members: MemberDef[], over: Partial<SequenceDef> = {}): SequenceDef => ({
  slug,
  name: slug,
  members,
  concurrency: 4,
  schedule: { type: 'manual' },
  enabled: true,
  ...over,
});

export const workspace = (over: Partial<WorkspaceDefinition>): WorkspaceDefinition => ({
  sources: [],
  destinations: [],
  models: [],
  syncs: [],
  sequences: [],
  ...over,
});

/** The hierarchy fixture's tables (harness.ts, createHierarchyFixture) as models read them. */
const HIERARCHY_QUERIES = {
  accounts: 'select id, name from accounts',
  workspaces: 'select id, account_id, name from workspaces',
  contacts: 'select id, workspace_id, email from contacts',
} as const;

/**
 * A workspace over the hierarchy fixture: `warehouse.db` read, `crm.db` written, and a model of each
 * of `tables` named after it; `over` gives the syncs, sequences and anything else.
 */
export const hierarchyWorkspace = (tables: ReadonlyArray<keyof typeof HIERARCHY_QUERIES>, over: Partial<WorkspaceDefinition>): WorkspaceDefinition =>
  workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('crm', { path: 'crm.db' })],
    models: tables.map((table) => model(table, 'warehouse', HIERARCHY_QUERIES[table])),
    ...over,
  });

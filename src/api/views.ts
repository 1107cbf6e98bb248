/**
 * What the API shows of stored things: workspace entities with secrets redacted, and the
 * Hightouch-shaped sync, sync run, source, destination and model (SPEC §6.3).
 */
import type { Schedule, SyncRecord, ModelRecord, ConnectionRecord, EntityKind, SequenceRecord, Stored, WorkspaceState } from '../core/workspace.js';
import { ACTIVE_SYNC_RUN_STATUSES, type SyncRun } from '../core/runs.js';
import { iso } from '../core/run-views.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import { redactUrl, redactValue } from '../core/connections.js';
import { assertNever } from '../core/errors.js';
import { fileForm } from '../workspace/index.js';
import { nextFiring } from '../engine/schedule-times.js';

/**
 * A sync or a connection as the API answers it: as a workspace file writes it, the settings of its
 * kind next to its own fields instead of under `settings`.
 */
export type FileFormView<T extends { settings: Record<string, unknown> }> = Omit<T, 'settings'> & { [setting: string]: unknown };

/**
 * When a sync's or sequence's schedule next fires: an enabled timed schedule's next due time after
 * now (ISO), null for one that only a person, a webhook or an upstream run starts, and for a disabled one.
 */
export interface NextDue {
  nextDueAt: string | null;
}

/** A sync as the API answers it: a destination kind's own settings (an HTTP destination's `method`) sit next to its fields. */
export type SyncView = FileFormView<SyncRecord> & NextDue;

/** A sequence as the API answers it. */
export type SequenceView = SequenceRecord & NextDue;

/** A source or destination as the API answers it: its `type` and its kind's settings, the kind's secrets hidden (`***`, or a URL's password). */
export type ConnectionView = FileFormView<ConnectionRecord>;

/** `GET /api/workspace`: every stored entity by section, as the API answers each. */
export interface WorkspaceView {
  sources: ConnectionView[];
  destinations: ConnectionView[];
  models: ModelRecord[];
  syncs: SyncView[];
  sequences: SequenceView[];
}

/** A stored entity of `kind` as the API answers it at `now` (see WorkspaceView). */
export function entityView(kind: EntityKind, record: object, connectors: ConnectorRegistry, now: number): ConnectionView | ModelRecord | SyncView | SequenceView {
  switch (kind) {
    case 'source':
    case 'destination':
      return connectionView(record as ConnectionRecord, connectors);
    case 'sync':
      return syncView(record as SyncRecord, now);
    case 'model':
      return wholeMilliseconds(record as ModelRecord);
    case 'sequence':
      return sequenceView(record as SequenceRecord, now);
    default:
      return assertNever(kind);
  }
}

/** The stored workspace as `GET /api/workspace` answers it at `now`. */
export function workspaceView(state: WorkspaceState, connectors: ConnectorRegistry, now: number): WorkspaceView {
  return {
    sources: state.sources.map((source) => connectionView(source, connectors)),
    destinations: state.destinations.map((destination) => connectionView(destination, connectors)),
    models: state.models.map(wholeMilliseconds),
    syncs: state.syncs.map((sync) => syncView(sync, now)),
    sequences: state.sequences.map((sequence) => sequenceView(sequence, now)),
  };
}

function nextDue(entity: { schedule: Schedule; enabled: boolean }, now: number): NextDue {
  const next = nextFiring(entity, now);
  return { nextDueAt: next === null ? null : new Date(next).toISOString() };
}

function connectionView(connection: ConnectionRecord, connectors: ConnectorRegistry): ConnectionView {
  return wholeMilliseconds(fileForm(connectors.redact(connection) as unknown as Record<string, unknown>) as ConnectionView);
}

function syncView(sync: SyncRecord, now: number): SyncView {
  return wholeMilliseconds({ ...(fileForm(sync as unknown as Record<string, unknown>) as FileFormView<SyncRecord>), ...nextDue(sync, now) });
}

function sequenceView(sequence: SequenceRecord, now: number): SequenceView {
  return wholeMilliseconds({ ...sequence, ...nextDue(sequence, now) });
}

/** `createdAt` and `updatedAt` as whole epoch milliseconds: the store keeps the clock's fractions of one, which tell a reader nothing. */
function wholeMilliseconds<T extends object>(view: T): T {
  const { createdAt, updatedAt } = view as { createdAt?: unknown; updatedAt?: unknown };
  return {
    ...view,
    ...(typeof createdAt === 'number' ? { createdAt: Math.floor(createdAt) } : {}),
    ...(typeof updatedAt === 'number' ? { updatedAt: Math.floor(updatedAt) } : {}),
  };
}

/** The warning an answer carries when it changed an entity the workspace files manage. */
export function fileManagedWarning(kind: EntityKind, record: Stored & { slug: string }): string | undefined {
  if (record.origin !== 'file') return undefined;
  return `${kind} "${record.slug}" is managed by the workspace files: the next \`lockstep apply\` will overwrite this change — edit the file to keep it`;
}

// ---------------------------------------------------------------------------------------------
// Hightouch shapes

/** The `workspaceId` of every Hightouch-shaped answer: a Lockstep server is one workspace. */
export const HIGHTOUCH_WORKSPACE_ID = 1;

const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const;

/** A schedule in Hightouch's `{type, schedule}` shape; null for manual, as Hightouch has it. */
export function hightouchSchedule(schedule: Schedule): { type: string; schedule: Record<string, unknown> } | null {
  switch (schedule.type) {
    case 'manual':
      return null;
    case 'interval':
      return { type: 'interval', schedule: { interval: { unit: schedule.unit, quantity: schedule.quantity } } };
    case 'cron':
      return { type: 'cron', schedule: { expression: schedule.expression, timezone: schedule.timezone } };
    case 'recurrence': {
      const days = Object.fromEntries(DAYS.map((d) => [d, schedule.days.includes(d)]));
      return { type: 'visual', schedule: { expressions: schedule.times.map((time) => ({ days, time })), timezone: schedule.timezone } };
    }
    case 'dbt_cloud':
      return { type: 'dbt', schedule: { account: { id: schedule.accountId }, job: { id: schedule.jobId } } };
    case 'fivetran':
      return { type: 'fivetran', schedule: { connectorId: schedule.connectorId } };
    case 'after':
      return { type: 'after', schedule: { sync: schedule.sync, sequence: schedule.sequence, on: schedule.on } };
  }
}

/**
 * What a Hightouch-shaped sync says of its runs, from its two newest (newest first): `status`, its
 * newest run's, except that a follow-up waiting in the queue behind a run under way leaves the sync
 * that run's status (the sync is running); behind a finished run it is `queued`, which a client that
 * triggered it and polls the sync waits on. `lastRunAt` is when its last run started: a follow-up
 * waiting in the queue has not run, so it is the run's before it (when it was queued, for a first run
 * that never started).
 */
export function hightouchLastRun(newest: SyncRun[]): { status: SyncRun['status']; lastRunAt: string | null } | null {
  const [latest, before] = newest;
  if (!latest) return null;
  const ran = latest.status === 'queued' && before ? before : latest;
  const status = ran !== latest && ACTIVE_SYNC_RUN_STATUSES.includes(ran.status) ? ran.status : latest.status;
  return { status, lastRunAt: iso(ran.startedAt ?? ran.createdAt) };
}

/** Hightouch's Sync; `lastRun` as hightouchLastRun gives it, null before its first run. */
export function hightouchSync(
  sync: SyncRecord,
  model: ModelRecord | null,
  destination: ConnectionRecord | null,
  lastRun: { status: SyncRun['status']; lastRunAt: string | null } | null,
) {
  const primaryKey = model?.primaryKey ?? [];
  return {
    id: sync.id,
    slug: sync.slug,
    workspaceId: HIGHTOUCH_WORKSPACE_ID,
    createdAt: new Date(sync.createdAt).toISOString(),
    updatedAt: new Date(sync.updatedAt).toISOString(),
    destinationId: destination?.id ?? null,
    modelId: model?.id ?? null,
    configuration: {
      mode: sync.mode,
      object: sync.object,
      mappings: sync.mappings.map((m) => ({ from: m.from, to: m.to, type: 'standard' })),
      deleteBehavior: sync.deleteBehavior,
      batchSize: sync.batchSize,
    },
    schedule: hightouchSchedule(sync.schedule),
    status: !sync.enabled ? 'disabled' : (lastRun?.status ?? 'pending'),
    disabled: !sync.enabled,
    lastRunAt: lastRun?.lastRunAt ?? null,
    primaryKey: primaryKey.join(','),
    referencedColumns: [...new Set([...primaryKey, ...sync.mappings.map((m) => m.from)])],
    externalSegment: {},
    tags: {},
  };
}

/** Hightouch's SyncRun: `error` is null when there is none, as in Hightouch's examples. */
/**
 * A sync run in Hightouch's shape, with its recorded status: a run whose process stopped stays
 * `querying` or `processing` here (not `interrupted`, as Lockstep's own views show it) until a
 * worker takes it over under this id and ends it, since Hightouch clients take `interrupted` for
 * the end of a run and stop following it.
 */
export function hightouchSyncRun(run: SyncRun) {
  return {
    id: run.id,
    createdAt: new Date(run.createdAt).toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    querySize: run.querySize,
    status: run.status,
    completionRatio: run.completionRatio,
    plannedRows: run.plannedRows,
    successfulRows: run.successfulRows,
    failedRows: run.failedRows,
    error: run.error,
  };
}

/**
 * A connection's settings as Hightouch's `configuration`, never with a secret: the secrets of its
 * kind hidden as the registry hides them, every setting of a kind this build does not know hidden,
 * and the password of any URL among the rest.
 */
export function hightouchConfiguration(connection: ConnectionRecord, connectors: ConnectorRegistry): Record<string, unknown> {
  const settings =
    connectors.kind(connection.type) === undefined
      ? Object.fromEntries(Object.entries(connection.settings).map(([name, value]) => [name, redactValue(value)]))
      : connectors.redact(connection).settings;
  return hideUrlPasswords(settings) as Record<string, unknown>;
}

function hideUrlPasswords(value: unknown): unknown {
  if (typeof value === 'string') return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? redactUrl(value) : value;
  if (Array.isArray(value)) return value.map(hideUrlPasswords);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hideUrlPasswords(v)]));
  return value;
}

/** Hightouch's Source. A Lockstep connection has no name apart from its slug. */
export function hightouchSource(source: ConnectionRecord, connectors: ConnectorRegistry) {
  return {
    id: source.id,
    name: source.slug,
    slug: source.slug,
    workspaceId: HIGHTOUCH_WORKSPACE_ID,
    createdAt: new Date(source.createdAt).toISOString(),
    updatedAt: new Date(source.updatedAt).toISOString(),
    type: source.type,
    configuration: hightouchConfiguration(source, connectors),
  };
}

/** Hightouch's Destination, with the ids of the syncs that write to it. */
export function hightouchDestination(destination: ConnectionRecord, syncIds: number[], connectors: ConnectorRegistry) {
  return {
    id: destination.id,
    name: destination.slug,
    slug: destination.slug,
    workspaceId: HIGHTOUCH_WORKSPACE_ID,
    createdAt: new Date(destination.createdAt).toISOString(),
    updatedAt: new Date(destination.updatedAt).toISOString(),
    type: destination.type,
    configuration: hightouchConfiguration(destination, connectors),
    syncs: syncIds,
  };
}

/**
 * Hightouch's Model: a raw SQL query (`queryType: raw_sql`, `raw.sql`), the ids of the syncs that
 * read it, and `lastRunSize`, the rows its latest successful sync run read (null before one).
 */
export function hightouchModel(model: ModelRecord, sourceId: number | null, syncIds: number[], lastRunSize: number | null) {
  return {
    id: model.id,
    name: model.slug,
    slug: model.slug,
    description: '',
    workspaceId: HIGHTOUCH_WORKSPACE_ID,
    primaryKey: model.primaryKey.join(','),
    createdAt: new Date(model.createdAt).toISOString(),
    updatedAt: new Date(model.updatedAt).toISOString(),
    sourceId,
    queryType: 'raw_sql',
    tags: {},
    isSchema: false,
    syncs: syncIds,
    raw: { sql: model.query },
    lastRunSize,
  };
}

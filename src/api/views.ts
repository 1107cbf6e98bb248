/**
 * What the API shows of stored things: workspace entities with secrets redacted, and the
 * Hightouch-shaped sync and sync run (SPEC §6.3).
 */
import type { Schedule, SyncRecord, ModelRecord, ConnectionRecord, EntityKind, Stored } from '../core/workspace.js';
import type { SyncRun } from '../core/runs.js';
import { iso } from '../core/run-views.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import { fileForm } from '../workspace/index.js';

/**
 * A stored entity as the API answers it. A connection shows its settings next to its `type`, as a
 * workspace file writes them, with the secrets of its kind hidden.
 */
export function entityView<T extends object>(kind: EntityKind, record: T, connectors: ConnectorRegistry): T {
  if (kind === 'source' || kind === 'destination') return fileForm(connectors.redact(record as unknown as ConnectionRecord) as unknown as Record<string, unknown>) as T;
  if (kind === 'sync') return fileForm(record as Record<string, unknown>) as T;
  return record;
}

/** The warning an answer carries when it changed an entity the workspace files manage. */
export function fileManagedWarning(kind: EntityKind, record: Stored & { slug: string }): string | undefined {
  if (record.origin !== 'file') return undefined;
  return `${kind} "${record.slug}" is managed by the workspace files: the next \`lockstep apply\` will overwrite this change — edit the file to keep it`;
}

// ---------------------------------------------------------------------------------------------
// Hightouch shapes

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

/** Hightouch's Sync. */
export function hightouchSync(
  sync: SyncRecord,
  model: ModelRecord | null,
  destination: ConnectionRecord | null,
  lastRun: SyncRun | null,
) {
  const primaryKey = model?.primaryKey ?? [];
  return {
    id: sync.id,
    slug: sync.slug,
    workspaceId: 1,
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
    lastRunAt: lastRun ? iso(lastRun.startedAt ?? lastRun.createdAt) : null,
    primaryKey: primaryKey.join(','),
    referencedColumns: [...new Set([...primaryKey, ...sync.mappings.map((m) => m.from)])],
    externalSegment: {},
    tags: {},
  };
}

/** Hightouch's SyncRun: `error` is present only when there is one. */
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
    ...(run.error !== null ? { error: run.error } : {}),
  };
}

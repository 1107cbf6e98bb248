/**
 * Rows as the SQL stores keep them (snake_case columns) and their mapping to core's records.
 * SQLite and PostgreSQL use the same column names; numbers may come back as strings from
 * PostgreSQL's bigint and numeric types, so every number goes through `Number`.
 */
import type {
  ApiUsage,
  RunComparison,
  MemberRun,
  MemberRunStatus,
  OperationCounts,
  RejectedRow,
  SequenceRun,
  SequenceRunStatus,
  SyncRun,
  SyncRunStatus,
  TriggerType,
} from '../core/runs.js';
import type { PhaseTimes } from '../core/run-phases.js';
import type { FinishedRunEntry, RunLease, SyncAsRun } from '../core/ports.js';
import { DEFAULT_MAX_DELETE_PERCENT } from '../core/workspace.js';
import type { EntityKind, MemberDef, ModelRecord, RejectedThreshold, Stored, SyncRecord, TerminatePolicy } from '../core/workspace.js';
import { SEALED_PREFIX, type SecretCodec } from '../core/secrets.js';
import type { AlertCondition, AlertDelivery, AlertDeliveryStatus, AlertNotice, AlertState } from '../core/alerts.js';
import type { StoredApiToken } from '../core/tokens.js';
import type { TriggeredRun, WebhookEvent, WebhookOutcome, WebhookRefusalTotal, WebhookSource } from '../core/webhooks.js';

/** A number column that may be NULL. */
type Num = number | string;

export interface EntityRow {
  id: Num;
  slug: string;
  /** Syncs and sequences only. */
  enabled?: Num | boolean;
  /** The definition as JSON, without `slug` and `enabled` (they have their own columns). */
  definition: string;
  created_at: Num;
  updated_at: Num;
  /** `file` or `api`. */
  origin: string;
}

/**
 * A workspace record from its row: the stored definition, its secrets opened (see
 * core/secrets.ts), plus slug, enabled and identity.
 */
export function toRecord<T extends { slug: string }>(row: EntityRow, kind: EntityKind, secrets: SecretCodec): T & Stored {
  const parsed = JSON.parse(row.definition) as Record<string, unknown>;
  // Most definitions hold nothing sealed (models, syncs, sequences): they skip the walk.
  const stored = row.definition.includes(SEALED_PREFIX) ? secrets.openEntity(parsed, `${kind} "${row.slug}"`) : parsed;
  const definition = upgradeDefinition(stored) as Omit<T, 'slug'>;
  const record = {
    ...definition,
    slug: row.slug,
    id: Number(row.id),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    origin: row.origin === 'api' ? 'api' : 'file',
  } as unknown as T & Stored;
  if (row.enabled !== undefined) (record as unknown as { enabled: boolean }).enabled = Boolean(Number(row.enabled));
  return record;
}

/** A workspace entity's row, deleted or not: run history reads deleted rows too. */
export interface HistoryEntityRow extends EntityRow {
  deleted_at: Num | null;
}

/**
 * Syncs as their runs ran them (WorkspaceStore.syncsById), from their rows and the rows of every
 * model that had one of the slugs they name, deleted ones included.
 */
export function syncsAsRun(syncRows: readonly HistoryEntityRow[], modelRows: readonly HistoryEntityRow[], secrets: SecretCodec): Map<number, SyncAsRun> {
  const syncs = new Map<number, SyncAsRun>();
  for (const row of syncRows) {
    const sync = toRecord<SyncRecord>(row, 'sync', secrets);
    const deletedAt = row.deleted_at === null ? null : Number(row.deleted_at);
    // The model named is the one live when the sync was deleted (or now). One row of a slug is
    // live at a time; of two that meet at that instant (one deleted, the next created) the sync
    // named the earlier, which could not be deleted while the sync named it.
    const liveThen = (model: HistoryEntityRow) =>
      deletedAt === null
        ? model.deleted_at === null
        : Number(model.created_at) <= deletedAt && (model.deleted_at === null || Number(model.deleted_at) >= deletedAt);
    const model = modelRows.filter((m) => m.slug === sync.model && liveThen(m)).sort((a, b) => Number(a.id) - Number(b.id))[0];
    const modelSource = model ? toRecord<ModelRecord>(model, 'model', secrets).source : null;
    syncs.set(sync.id, { ...sync, deleted: deletedAt !== null, modelSource });
  }
  return syncs;
}

/**
 * A definition stored by an earlier version in today's shape: connections kept `url` and `path`
 * beside `type` (now the kind's `settings`), and syncs had no kind settings.
 */
function upgradeDefinition(definition: Record<string, unknown>): Record<string, unknown> {
  // Syncs stored before the mass-delete guard get its default.
  if ('model' in definition && 'destination' in definition && !('maxDeletePercent' in definition)) {
    definition = { ...definition, maxDeletePercent: DEFAULT_MAX_DELETE_PERCENT };
  }
  if ('settings' in definition) return definition;
  if (typeof definition.type === 'string' && ('url' in definition || 'path' in definition)) {
    const { url, path, ...rest } = definition;
    return { ...rest, settings: url !== null && url !== undefined ? { url } : { path } };
  }
  if ('model' in definition && 'destination' in definition) return { ...definition, settings: {} };
  return definition;
}

/** The JSON kept in `definition`: the entity without the fields that have their own columns, its secrets sealed. */
export function definitionJson(entity: object, kind: EntityKind, secrets: SecretCodec): string {
  const { slug: _slug, enabled: _enabled, id: _id, createdAt: _c, updatedAt: _u, origin: _o, warning: _w, ...rest } = entity as Record<
    string,
    unknown
  >;
  return JSON.stringify(secrets.sealEntity(kind, rest));
}

export interface SyncRunRow {
  id: Num;
  sync_id: Num;
  status: string;
  trigger_type: string;
  trigger_detail: string | null;
  full_resync: Num | boolean;
  allow_mass_delete?: Num | boolean;
  full_compare?: Num | boolean;
  reset_cdc: Num | boolean;
  sequence_run_id: string | null;
  member_key: string | null;
  created_at: Num;
  started_at: Num | null;
  finished_at: Num | null;
  query_size: Num;
  planned_added: Num;
  planned_changed: Num;
  planned_removed: Num;
  successful_added: Num;
  successful_changed: Num;
  successful_removed: Num;
  failed_added: Num;
  failed_changed: Num;
  failed_removed: Num;
  completion_ratio: Num;
  error: string | null;
  cancel_requested: Num | boolean;
  /** JSON of an ApiUsage (absent in rows read before the column existed). */
  api_usage?: string | null;
  /** JSON of PhaseTimes (absent in rows read before the column existed). */
  phase_ms?: string | null;
  /** JSON of a RunComparison. */
  comparison?: string | null;
  attempt?: Num;
  worker_id?: string | null;
  lease_expires_at?: Num | null;
}

export function toSyncRun(row: SyncRunRow): SyncRun {
  return {
    id: Number(row.id),
    syncId: Number(row.sync_id),
    status: row.status as SyncRunStatus,
    trigger: { type: row.trigger_type as TriggerType, detail: row.trigger_detail },
    options: {
      fullResync: toBool(row.full_resync),
      resetCDC: toBool(row.reset_cdc),
      ...(toBool(row.allow_mass_delete ?? 0) ? { allowMassDelete: true } : {}),
      ...(toBool(row.full_compare ?? 0) ? { fullCompare: true } : {}),
    },
    sequenceRunId: row.sequence_run_id,
    memberKey: row.member_key,
    createdAt: Number(row.created_at),
    startedAt: toTime(row.started_at),
    finishedAt: toTime(row.finished_at),
    querySize: Number(row.query_size),
    plannedRows: counts(row.planned_added, row.planned_changed, row.planned_removed),
    successfulRows: counts(row.successful_added, row.successful_changed, row.successful_removed),
    failedRows: counts(row.failed_added, row.failed_changed, row.failed_removed),
    completionRatio: Number(row.completion_ratio),
    error: row.error,
    cancelRequested: toBool(row.cancel_requested),
    apiUsage: row.api_usage ? (JSON.parse(row.api_usage) as ApiUsage) : null,
    phaseMs: row.phase_ms ? (JSON.parse(row.phase_ms) as PhaseTimes) : null,
    comparison: row.comparison ? (JSON.parse(row.comparison) as RunComparison) : null,
    attempt: Number(row.attempt ?? 0),
    workerId: row.worker_id ?? null,
    leaseExpiresAt: toTime(row.lease_expires_at ?? null),
  };
}

export interface SequenceRunRow {
  id: string;
  sequence_id: Num;
  status: string;
  trigger_type: string;
  trigger_detail: string | null;
  created_at: Num;
  started_at: Num | null;
  finished_at: Num | null;
  terminated_by: string | null;
  reason: string | null;
  cancel_requested: Num | boolean;
  /** Columns added by a later migration (absent in rows read before it). */
  resumed_from?: string | null;
  deadline_minutes?: Num | null;
  concurrency?: Num | null;
}

export interface MemberRunRow {
  sequence_run_id: string;
  key: string;
  position: Num;
  sync_id: Num;
  status: string;
  sync_run_id: Num | null;
  started_at: Num | null;
  finished_at: Num | null;
  /** Added by later migrations (absent in rows read before them). */
  timeout_minutes?: Num | null;
  terminate?: string | null;
  /** JSON text. */
  rejected_threshold?: string | null;
}

export function toMemberRun(row: MemberRunRow): MemberRun {
  return {
    key: row.key,
    syncId: Number(row.sync_id),
    position: Number(row.position),
    status: row.status as MemberRunStatus,
    syncRunId: row.sync_run_id === null ? null : Number(row.sync_run_id),
    startedAt: toTime(row.started_at),
    finishedAt: toTime(row.finished_at),
    timeoutMinutes: row.timeout_minutes === null || row.timeout_minutes === undefined ? null : Number(row.timeout_minutes),
    terminate: (row.terminate ?? null) as TerminatePolicy | null,
    rejectedThreshold: row.rejected_threshold ? (JSON.parse(row.rejected_threshold) as RejectedThreshold) : null,
  };
}

/** The columns keeping what a member was declared with when its run was queued (see MemberRun). */
export function memberLimitColumns(member: MemberDef): { timeoutMinutes: number | null; terminate: string; rejectedThreshold: string } {
  return { timeoutMinutes: member.timeoutMinutes ?? null, terminate: member.terminate, rejectedThreshold: JSON.stringify(member.rejectedThreshold) };
}

/** `members` must be ordered by position. */
export function toSequenceRun(row: SequenceRunRow, members: MemberRunRow[]): SequenceRun {
  return {
    id: row.id,
    sequenceId: Number(row.sequence_id),
    status: row.status as SequenceRunStatus,
    trigger: { type: row.trigger_type as TriggerType, detail: row.trigger_detail },
    createdAt: Number(row.created_at),
    startedAt: toTime(row.started_at),
    finishedAt: toTime(row.finished_at),
    terminatedBy: row.terminated_by,
    reason: row.reason,
    cancelRequested: toBool(row.cancel_requested),
    members: members.map(toMemberRun),
    resumedFrom: row.resumed_from ?? null,
    deadlineMinutes: row.deadline_minutes === null || row.deadline_minutes === undefined ? null : Number(row.deadline_minutes),
    concurrency: row.concurrency === null || row.concurrency === undefined ? null : Number(row.concurrency),
  };
}

export interface RejectedRowRow {
  sync_run_id: Num;
  key: string;
  op: string;
  reason: string;
}

export function toRejectedRow(row: RejectedRowRow): RejectedRow {
  return { syncRunId: Number(row.sync_run_id), key: row.key, op: row.op as RejectedRow['op'], reason: row.reason };
}

function counts(added: Num, changed: Num, removed: Num): OperationCounts {
  return { addedCount: Number(added), changedCount: Number(changed), removedCount: Number(removed) };
}

function toTime(value: Num | null): number | null {
  return value === null ? null : Number(value);
}

function toBool(value: Num | boolean): boolean {
  return typeof value === 'boolean' ? value : Number(value) !== 0;
}

// ---------------------------------------------------------------------------------------------
// Rows of the sub-stores (tokens, webhook deliveries, alerts), as every store reads them back.

/**
 * How a store reads back text it had to store in another form (PostgreSQL cannot hold a NUL
 * character, so it keeps such text escaped); as it is elsewhere.
 */
export type TextReader = (text: string) => string;
const asStored: TextReader = (text) => text;
const nullableText = (text: string | null, read: TextReader): string | null => (text === null ? null : read(text));

export interface TokenRow {
  id: number;
  name: string;
  hash: string;
  created_at: number;
  last_used_at: number | null;
}

export function toToken(row: TokenRow): StoredApiToken {
  return { id: Number(row.id), name: row.name, hash: row.hash, createdAt: row.created_at, lastUsedAt: row.last_used_at };
}

export interface WebhookEventRow {
  id: number;
  source: string;
  received_at: number;
  event_id: string | null;
  event_type: string | null;
  outcome: string;
  reason: string;
  http_status: number;
  triggered: string;
  payload: string;
}

export function toWebhookEvent(row: WebhookEventRow, read: TextReader = asStored): WebhookEvent {
  return {
    id: Number(row.id),
    source: row.source as WebhookSource,
    receivedAt: row.received_at,
    eventId: nullableText(row.event_id, read),
    eventType: nullableText(row.event_type, read),
    outcome: row.outcome as WebhookOutcome,
    reason: read(row.reason),
    httpStatus: Number(row.http_status),
    triggered: JSON.parse(row.triggered) as TriggeredRun[],
    payloadExcerpt: read(row.payload),
  };
}

export interface WebhookRefusalRow {
  source: string;
  reason: string;
  http_status: number;
  count: number | string;
  first_at: number;
  last_at: number;
}

export function toWebhookRefusal(row: WebhookRefusalRow, read: TextReader = asStored): WebhookRefusalTotal {
  return {
    source: row.source as WebhookSource,
    reason: read(row.reason),
    httpStatus: Number(row.http_status),
    count: Number(row.count),
    firstReceivedAt: Number(row.first_at),
    lastReceivedAt: Number(row.last_at),
  };
}

export interface DeliveryRow {
  id: number;
  channel: string;
  notice: string;
  status: string;
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  created_at: number;
  sent_at: number | null;
}

export function toDelivery(row: DeliveryRow, read: TextReader = asStored): AlertDelivery {
  return {
    id: Number(row.id),
    channel: row.channel,
    notice: JSON.parse(row.notice) as AlertNotice,
    status: row.status as AlertDeliveryStatus,
    attempts: Number(row.attempts),
    nextAttemptAt: row.next_attempt_at,
    lastError: nullableText(row.last_error, read),
    createdAt: row.created_at,
    sentAt: row.sent_at,
  };
}

export interface AlertStateRow {
  rule: string;
  subject: string;
  condition: string;
  /** 1 or 0 in SQLite, a boolean in PostgreSQL. */
  raised: number | boolean;
  since: number;
  run_id: string | null;
}

export function toAlertState(row: AlertStateRow): AlertState {
  const at = row.subject.indexOf(':');
  return {
    rule: row.rule,
    subject: { kind: row.subject.slice(0, at) === 'sync' ? 'sync' : 'sequence', slug: row.subject.slice(at + 1) },
    condition: row.condition as AlertCondition,
    raised: row.raised === true || row.raised === 1,
    since: row.since,
    runId: row.run_id,
  };
}

export interface LeaseRow {
  id: Num;
  sync_id: Num;
  worker_id: string | null;
  attempt: Num;
  lease_expires_at: Num | null;
}

export function toLease(row: LeaseRow): RunLease {
  return {
    runId: Number(row.id),
    syncId: Number(row.sync_id),
    workerId: row.worker_id ?? '',
    attempt: Number(row.attempt),
    expiresAt: row.lease_expires_at === null ? 0 : Number(row.lease_expires_at),
  };
}

export interface FinishedRunRow {
  id: Num;
  kind: string;
  run_id: string;
}

export function toFinishedRun(row: FinishedRunRow): FinishedRunEntry {
  return { id: Number(row.id), kind: row.kind === 'sequence' ? 'sequence' : 'sync', runId: row.run_id };
}

/** A change cursor's value as stored (JSON: a number stays a number, text stays text). */
export function parseCursorValue(stored: string): string | number {
  const value: unknown = JSON.parse(stored);
  return typeof value === 'number' ? value : String(value);
}

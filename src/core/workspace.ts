/**
 * The workspace: sources, models, destinations, syncs and sequences, as declared in YAML or through
 * the API, fully resolved (every default filled in). Secrets stay as written (`${ENV}` templates);
 * they are resolved only when a connection is opened.
 */

import type { AlertsDefinition } from './alerts.js';
import type { WebhookSettings } from './webhooks.js';

/** How a source or destination is reached, as declared (templates unresolved). */
export interface ConnectionDef {
  slug: string;
  /** The connector kind (`postgres`, `mysql`, `http`, ...): a registered ConnectorKind's `type`. */
  type: string;
  /**
   * The kind's settings as written (`url`, `path`, `headers`, ...); strings may hold `${ENV}`
   * templates. The kind's schema checks them once the templates are resolved.
   */
  settings: Record<string, unknown>;
}

/** A connection ready to open: `${ENV}` templates resolved (the kind's schema is applied when it opens). */
export interface ResolvedConnection {
  slug: string;
  type: string;
  settings: Record<string, unknown>;
  /** The folder relative file paths resolve against. */
  baseDir: string;
  /** The values the templates read from the environment, kept out of the messages of errors opening it (default: none). */
  templateValues?: string[];
  /** Settings left blank by variables exported empty: each setting's path (`url`, `headers.Authorization`) → those variables (default: none). */
  blankTemplates?: Record<string, string[]>;
}

/** A SQL query on a source, with a primary key unique per row. */
export interface ModelDef {
  slug: string;
  /** Slug of the source it reads from. */
  source: string;
  query: string;
  /** Column(s) that identify a row; at least one. */
  primaryKey: string[];
  /**
   * A column that grows whenever a row changes (e.g. `updated_at`): runs then read only the rows
   * past the last delivered value, with a full comparison every `fullCompareEvery` runs.
   */
  cursor?: string;
  /** With `cursor`: a full comparison every this many runs (default 24). */
  fullCompareEvery?: number;
}

/** What a sync does with the rows it plans (SPEC §2.1). */
export const SyncMode = {
  /** Insert new rows, update changed rows. */
  Upsert: 'upsert',
  /** Send only rows whose primary key was never delivered. */
  Insert: 'insert',
  /** Send only changed rows; rows absent from the destination are rejected. */
  Update: 'update',
  /** Upsert, and delete the rows that left the model. */
  Mirror: 'mirror',
} as const;
export type SyncMode = (typeof SyncMode)[keyof typeof SyncMode];

/** What non-mirror modes do with rows that left the model. */
export const DeleteBehavior = {
  /** Leave them in the destination (default). */
  Ignore: 'ignore',
  /** Delete them from the destination. */
  Delete: 'delete',
} as const;
export type DeleteBehavior = (typeof DeleteBehavior)[keyof typeof DeleteBehavior];

/**
 * Renames a model column to a destination field. Columns without a mapping keep their name. With
 * `lookup`, the field gets the destination id another sync recorded for the key in column `from`
 * (its parent's record), instead of the column's value.
 */
export interface FieldMapping {
  from: string;
  to: string;
  /** The sync whose recorded ids are looked up (it must write to a destination that reports ids). */
  lookup?: { sync: string };
}

/** A sync's default `maxDeletePercent`: a run never removes more than half of what it manages unless told. */
export const DEFAULT_MAX_DELETE_PERCENT = 50;

export interface SyncDef {
  slug: string;
  /** Slug of the model it reads. */
  model: string;
  /** Slug of the destination it writes to. */
  destination: string;
  /** Table (or API object) inside the destination. */
  object: string;
  mode: SyncMode;
  deleteBehavior: DeleteBehavior;
  mappings: FieldMapping[];
  schedule: Schedule;
  enabled: boolean;
  /** Rows per delivered batch (default: 1000; never more than the destination's `maxBatchSize`). */
  batchSize: number;
  /**
   * The mass-delete guard: a run that would remove more than this share (0..100) of the rows the
   * sync manages stops before deleting and fails (default: 50; null turns the guard off).
   */
  maxDeletePercent: number | null;
  /**
   * Settings of the destination's kind written on the sync (an HTTP destination's `method`, a
   * Salesforce `externalIdField`, ...), as written; empty for kinds that have none.
   */
  settings: Record<string, unknown>;
}

/** What ends a sequence when a member's run turns out badly (SPEC §3.1). */
export const TerminatePolicy = {
  /** Terminate if the member's run fails (default). */
  OnFatal: 'on_fatal',
  /** Also terminate if its rejected rows exceed the threshold. */
  OnFatalOrRejected: 'on_fatal_or_rejected',
  /** Go on whatever the outcome. */
  Never: 'never',
} as const;
export type TerminatePolicy = (typeof TerminatePolicy)[keyof typeof TerminatePolicy];

/** Rejected rows allowed before `on_fatal_or_rejected` terminates: a share of planned rows, or a count. */
export type RejectedThreshold = { percent: number } | { count: number };

export interface MemberDef {
  /** Unique within the sequence; the sync's slug unless given. `after` refers to these keys. */
  key: string;
  /** Slug of the sync it runs. */
  sync: string;
  terminate: TerminatePolicy;
  /** Only used by `on_fatal_or_rejected` (default: `{ count: 0 }`, any rejected row). */
  rejectedThreshold: RejectedThreshold;
  /** Keys of the members it depends on; `null` when not given. */
  after: string[] | null;
  /**
   * Minutes its run may take (from its start) before it is stopped and counts as failed for its
   * `terminate` policy (absent: no limit).
   */
  timeoutMinutes?: number;
}

export interface SequenceDef {
  slug: string;
  name: string;
  members: MemberDef[];
  /** Members running at once in a graph sequence (default: 4). */
  concurrency: number;
  schedule: Schedule;
  enabled: boolean;
  /**
   * Minutes a run may take (from its start): then members not started are skipped, running ones
   * are stopped, and the run fails saying so (absent: no deadline).
   */
  deadlineMinutes?: number;
}

/** Everything a workspace declares, resolved. */
export interface WorkspaceDefinition {
  sources: ConnectionDef[];
  destinations: ConnectionDef[];
  models: ModelDef[];
  syncs: SyncDef[];
  sequences: SequenceDef[];
  /** Alert channels and rules (default: none). */
  alerts?: AlertsDefinition;
  /** Secrets of the dbt Cloud and Fivetran webhook endpoints (default: none). */
  webhooks?: WebhookSettings;
}

// ---------------------------------------------------------------------------------------------
// Schedules (SPEC §4)

export const IntervalUnit = { Minute: 'minute', Hour: 'hour', Day: 'day', Week: 'week' } as const;
export type IntervalUnit = (typeof IntervalUnit)[keyof typeof IntervalUnit];

export const Weekday = {
  Monday: 'monday',
  Tuesday: 'tuesday',
  Wednesday: 'wednesday',
  Thursday: 'thursday',
  Friday: 'friday',
  Saturday: 'saturday',
  Sunday: 'sunday',
} as const;
export type Weekday = (typeof Weekday)[keyof typeof Weekday];

/** Default catch-up window: missed firings younger than this collapse into one run after downtime. */
export const DEFAULT_CATCHUP_WINDOW_SECONDS = 3600;

export type Schedule =
  | { type: 'manual' }
  | {
      type: 'interval';
      unit: IntervalUnit;
      quantity: number;
      /** ISO instant the intervals count from (default: the Unix epoch). */
      startAt: string | null;
      catchupWindowSeconds: number;
    }
  | { type: 'cron'; expression: string; timezone: string; catchupWindowSeconds: number }
  | {
      type: 'recurrence';
      timezone: string;
      days: Weekday[];
      /** Times of day, `HH:MM`, 24-hour. */
      times: string[];
      catchupWindowSeconds: number;
    }
  | { type: 'dbt_cloud'; accountId: string; jobId: string }
  | { type: 'fivetran'; connectorId: string }
  | { type: 'after'; sync: string | null; sequence: string | null; on: 'success' | 'any' };

export type ScheduleType = Schedule['type'];

/** Schedules the scheduler fires by the clock. */
export type TimedSchedule = Extract<Schedule, { type: 'interval' | 'cron' | 'recurrence' }>;

export function isTimedSchedule(schedule: Schedule): schedule is TimedSchedule {
  return schedule.type === 'interval' || schedule.type === 'cron' || schedule.type === 'recurrence';
}

// ---------------------------------------------------------------------------------------------
// Stored forms: the definitions plus the identity the store gives them.

/** Where a stored entity was declared; `apply` manages only what came from files. */
export const EntityOrigin = {
  /** Written by `lockstep apply` from the workspace files; the next `apply` may change or delete it. */
  File: 'file',
  /** Created through the API; `apply` never deletes it (a file declaring its slug takes it over). */
  Api: 'api',
} as const;
export type EntityOrigin = (typeof EntityOrigin)[keyof typeof EntityOrigin];

export interface Stored {
  /** Integer id, stable across `apply` (Hightouch clients address syncs by it). */
  id: number;
  createdAt: number;
  updatedAt: number;
  origin: EntityOrigin;
}

export type SyncRecord = SyncDef & Stored;
export type SequenceRecord = SequenceDef & Stored;
export type ModelRecord = ModelDef & Stored;
export type ConnectionRecord = ConnectionDef & Stored;

/** The workspace as the store holds it. */
export interface WorkspaceState {
  sources: ConnectionRecord[];
  destinations: ConnectionRecord[];
  models: ModelRecord[];
  syncs: SyncRecord[];
  sequences: SequenceRecord[];
  /** Alert channels and rules as last applied. */
  alerts: AlertsDefinition;
  /** Webhook endpoint settings as last applied. */
  webhooks: WebhookSettings;
}

/** The kinds of workspace entity. */
export type EntityKind = 'source' | 'destination' | 'model' | 'sync' | 'sequence';

/** The definition of each kind of entity. */
export interface EntityDefs {
  source: ConnectionDef;
  destination: ConnectionDef;
  model: ModelDef;
  sync: SyncDef;
  sequence: SequenceDef;
}

/** The section of a workspace each kind lives in. */
export const ENTITY_SECTIONS = {
  source: 'sources',
  destination: 'destinations',
  model: 'models',
  sync: 'syncs',
  sequence: 'sequences',
} as const satisfies Record<EntityKind, keyof WorkspaceDefinition>;

/** The sections of a workspace that hold entities. */
export type EntitySection = (typeof ENTITY_SECTIONS)[EntityKind];

/** What `apply` changes besides entities: an alert channel or rule (by name), a webhook endpoint's settings. */
export type AlertChangeKind = 'alert-channel' | 'alert-rule' | 'webhook';

/** One entity `apply` creates, changes or deletes. */
export interface WorkspaceChange {
  action: 'create' | 'update' | 'delete';
  kind: EntityKind | AlertChangeKind;
  slug: string;
  /** Top-level fields that differ, for `update`. */
  fields: string[];
}

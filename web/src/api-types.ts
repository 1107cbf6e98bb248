/**
 * The JSON shapes of Lockstep's own API (`/api/*`) as the UI reads and writes them: the server's own
 * declarations (its core types, the zod schemas of its routes and of the workspace file), imported
 * as types only, so the bundle carries none of the server's code. The few lists the UI needs at run
 * time are checked against the server's unions when it compiles.
 */
import type { z } from 'zod';
import type { AlertChannelView, AlertDeliveryView, AlertRuleView, AlertRuleWithWarning as AlertRuleWithWarningSchema, AlertsView } from '../../src/api/alert-routes.js';
import type {
  ConnectionTest as ConnectionTestSchema,
  ConnectorKindView,
  DestinationFields as DestinationFieldsSchema,
  DestinationObjects as DestinationObjectsSchema,
  ModelPreview as ModelPreviewSchema,
} from '../../src/api/connector-routes.js';
import type { Session as SessionSchema } from '../../src/api/lockstep-routes.js';
import type { WebhookEventPage as WebhookEventPageSchema } from '../../src/api/webhook-routes.js';
import type { AlertEvent } from '../../src/core/alerts.js';
import type { SequencePlan as SequencePlanRecord } from '../../src/core/sequence-plans.js';
import type { SyncRecord, Weekday } from '../../src/core/workspace.js';
import type { AlertRuleInput as AlertRuleFileInput, SequenceInput as SequenceFileInput } from '../../src/workspace/workspace-schema.js';

/** `true` when `Values` lists every member of `All`, else the members missing: a list the UI keeps of a server's union. */
export type Listed<All, Values extends All> = [Exclude<All, Values>] extends [never] ? true : { missing: Exclude<All, Values> };
/** Compiles only when `T` is `true`. */
export type Holds<T extends true> = T;

/** `GET /api/session`: whether this server needs a token. */
export type Session = z.infer<typeof SessionSchema>;

/** Runs as the API answers them: core's run views, shared with the command line's `--json` output. */
export type { MemberRunView, RejectedRowView, SequenceRunView } from '../../src/core/run-views.js';
/**
 * A sync run as Lockstep's API answers it: with its sync's slug (null once the sync is deleted),
 * and the slug it ran as, kept after a delete.
 */
export type { NamedSyncRunView as SyncRunView } from '../../src/core/run-views.js';

/**
 * Schedules, sequences and models as the API answers them: the stored definitions, every default
 * filled in (a schedule's catch-up window as `catchupWindowSeconds`, an interval's `startAt` null
 * when not given), with id, origin and times.
 */
export type {
  IntervalUnit,
  MemberDef as Member,
  ModelRecord as Model,
  RejectedThreshold,
  Schedule,
  ScheduleType,
  TerminatePolicy,
  Weekday,
} from '../../src/core/workspace.js';

/** The days of the week in calendar order, as the schedule form offers them. */
export const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const satisfies readonly Weekday[];
type _EveryWeekdayListed = Holds<Listed<Weekday, (typeof WEEKDAYS)[number]>>;

/**
 * A schedule as the forms send it: the workspace file's shape, which the API takes (the catch-up
 * window as `catchupWindow`, seconds or "1h").
 */
export type { ScheduleInput } from '../../src/workspace/workspace-schema.js';

/** Body of `POST /api/sequences` and `PUT /api/sequences/{slug}`: a sequence as a workspace file writes it, and its slug. */
export type SequenceInput = SequenceFileInput & { slug: string };

/**
 * Syncs, sources and destinations as the API answers them: as a workspace file writes them, the
 * settings of their kind next to their own fields (a connection's secrets hidden), with id, origin
 * and times; and the whole workspace by section.
 */
export type { ConnectionView as Connection, SequenceView as Sequence, SyncView as Sync, WorkspaceView as Workspace } from '../../src/api/views.js';

/** The fields of a sync's answer that are not settings of its destination's kind. */
export type SyncField = Exclude<keyof SyncRecord, 'settings'> | 'warning';

/** The parts of a JSON Schema (draft-07) the settings forms read: a standard format, as `GET /api/connector-kinds` gives a kind's settings. */
export interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
}

type ConnectorKindAnswer = z.infer<typeof ConnectorKindView>;
/**
 * One entry of `GET /api/connector-kinds`. The server declares the settings schemas as JSON
 * objects; the forms read them as the JSON Schema above.
 */
export type ConnectorKindInfo = Omit<ConnectorKindAnswer, 'settings' | 'destination'> & {
  settings: JsonSchema;
  destination: (Omit<NonNullable<ConnectorKindAnswer['destination']>, 'syncSettings'> & { syncSettings: JsonSchema | null }) | null;
};

/** `POST /api/models/preview`. */
export type ModelPreview = z.infer<typeof ModelPreviewSchema>;

/** `POST /api/{sources|destinations}/test`. */
export type ConnectionTest = z.infer<typeof ConnectionTestSchema>;

/** `GET /api/destinations/{slug}/objects`. */
export type DestinationObjects = z.infer<typeof DestinationObjectsSchema>;

/** `GET /api/destinations/{slug}/fields?object=…`. */
export type DestinationFields = z.infer<typeof DestinationFieldsSchema>;

/** A page of a list endpoint: `hasMore`, and the items. */
export type { Page } from '../../src/api/schemas.js';

// --- alerts and webhooks

/** The events an alert rule listens to, in the order the rule form offers them. */
export const ALERT_EVENTS = ['sync_failed', 'rejected_rows', 'sequence_failed', 'slow_run', 'recovered'] as const satisfies readonly AlertEvent[];
type _EveryAlertEventListed = Holds<Listed<AlertEvent, (typeof ALERT_EVENTS)[number]>>;
export type { AlertEvent } from '../../src/core/alerts.js';

/** An alert channel as `GET /api/alerts` answers it: secrets redacted, `target` for display. */
export type AlertChannel = z.infer<typeof AlertChannelView>;

export type AlertRule = z.infer<typeof AlertRuleView>;

/** An alert rule as `POST` and `PUT /api/alerts/rules` answer it: `warning` when the workspace files manage it. */
export type AlertRuleWithWarning = z.infer<typeof AlertRuleWithWarningSchema>;

/** `GET /api/alerts`. */
export type Alerts = z.infer<typeof AlertsView>;

/** Body of `POST /api/alerts/rules` and `PUT /api/alerts/rules/{name}`: a rule as a workspace file writes it, and its name. */
export type AlertRuleInput = AlertRuleFileInput & { name: string };

export type AlertDelivery = z.infer<typeof AlertDeliveryView>;

export type AlertDeliveryStatus = AlertDelivery['status'];

/** `GET /api/webhook-events`: a page of deliveries, the refused ones' totals, and what the log keeps. */
export type WebhookEventPage = z.infer<typeof WebhookEventPageSchema>;

/** One delivery of the webhook log. */
export type WebhookEvent = WebhookEventPage['data'][number];

export type WebhookOutcome = WebhookEvent['outcome'];

export type { MemberPlan, PlanSample, PlannedRejection } from '../../src/core/sequence-plans.js';
/** A dry run of a sequence as the API answers it (`POST /api/sequences/{slug}/plan`). */
export type SequencePlan = Omit<SequencePlanRecord, 'plannedAt'> & { plannedAt: string };

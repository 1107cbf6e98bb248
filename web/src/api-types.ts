/**
 * The JSON shapes of Lockstep's own API (`/api/*`) as the UI reads and writes them.
 * Run views are the server's own declarations, shared with the command line's `--json` output.
 */
export type { MemberRunView, RejectedRowView, SequenceRunView, SyncRunView } from '../../src/core/run-views.js';

export type IntervalUnit = 'minute' | 'hour' | 'day' | 'week';

export const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/**
 * Every schedule type of SPEC §4; the same for syncs and sequences. The server answers the
 * catch-up window as `catchupWindowSeconds` and accepts it as `catchupWindow` (seconds or "1h").
 */
export type Schedule =
  | { type: 'manual' }
  | { type: 'interval'; unit: IntervalUnit; quantity: number; startAt?: string | null; catchupWindowSeconds?: number; catchupWindow?: number }
  | { type: 'cron'; expression: string; timezone: string; catchupWindowSeconds?: number; catchupWindow?: number }
  | { type: 'recurrence'; timezone: string; days: Weekday[]; times: string[]; catchupWindowSeconds?: number; catchupWindow?: number }
  | { type: 'dbt_cloud'; accountId: string; jobId: string }
  | { type: 'fivetran'; connectorId: string }
  | { type: 'after'; sync?: string | null; sequence?: string | null; on: 'success' | 'any' };

export type ScheduleType = Schedule['type'];

export type TerminatePolicy = 'on_fatal' | 'on_fatal_or_rejected' | 'never';

export type RejectedThreshold = { percent: number } | { count: number };

export interface Member {
  key: string;
  sync: string;
  terminate: TerminatePolicy;
  rejectedThreshold: RejectedThreshold;
  after: string[] | null;
}

export interface Sequence {
  id: number;
  slug: string;
  name: string;
  members: Member[];
  concurrency: number;
  schedule: Schedule;
  enabled: boolean;
  origin?: string;
}

export interface Sync {
  id: number;
  slug: string;
  model: string;
  destination: string;
  object: string;
  mode: 'upsert' | 'insert' | 'update' | 'mirror';
  deleteBehavior: 'ignore' | 'delete';
  mappings: Array<{ from: string; to: string }>;
  schedule: Schedule;
  enabled: boolean;
  batchSize: number;
  origin?: string;
}

export interface Workspace {
  sources: Array<{ slug: string; type: string }>;
  destinations: Array<{ slug: string; type: string }>;
  models: Array<{ slug: string; source: string }>;
  syncs: Sync[];
  sequences: Sequence[];
}

/** Body of `POST /api/sequences` and `PUT /api/sequences/{slug}`. */
export interface SequenceInput {
  slug: string;
  name?: string;
  schedule?: Schedule;
  enabled?: boolean;
  concurrency?: number;
  members: Array<{ sync: string; key?: string; terminate?: TerminatePolicy; rejectedThreshold?: RejectedThreshold; after?: string[] | null }>;
}

/** A page of a list endpoint. */
export interface Page<T> {
  hasMore: boolean;
  data: T[];
}

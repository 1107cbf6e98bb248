/**
 * A dry run of a sequence (SPEC §3.4, `lockstep sequence plan`): what each member's next run would
 * plan against its snapshot, computed without sending anything or changing anything stored.
 */
import type { Value } from './ports.js';

/** Sample rows shown per kind of change unless asked otherwise. */
export const DEFAULT_PLAN_SAMPLES = 5;
/** Sample rows per kind of change at most. */
export const MAX_PLAN_SAMPLES = 100;

/** One planned row, as a sample: its key and the fields it would write. */
export interface PlanSample {
  /** The primary key's values, in the model's key order. */
  key: Value[];
  /**
   * Destination fields this row writes, with their value now (after) and, when the destination's
   * current row could be read, its value there (before). For a changed row whose current row was
   * read, only the fields that differ; otherwise every field. Empty for removals.
   */
  fields: Array<{ field: string; before?: Value; after: Value }>;
  /**
   * Whether `before` values come from the destination's current row: `read` (found), `absent` (the
   * destination has no row with this key), or `unavailable` (the destination cannot be read, so
   * only the new values are shown: the snapshot keeps a hash of what was delivered, not its values).
   */
  before: 'read' | 'absent' | 'unavailable';
}

/** A row a real run would reject before sending it. */
export interface PlannedRejection {
  key: string;
  op: 'added' | 'changed' | 'removed';
  reason: string;
}

/** One member's plan. */
export interface MemberPlan {
  key: string;
  sync: string;
  /** `planned`, or `failed` when a real run would fail now (the error says why; counts are what was planned before it). */
  status: 'planned' | 'failed';
  error: string | null;
  /** Rows the model returned. */
  querySize: number;
  /** Rows a real run would plan, as its `plannedRows` would count them (rows rejected before sending included). */
  added: number;
  changed: number;
  removed: number;
  /** Planned rows that were rejected by the sync's last run and are tried again. */
  retried: number;
  /** Rows a real run would reject before sending (null or duplicate keys, parents not delivered yet). */
  rejected: number;
  samples: { added: PlanSample[]; changed: PlanSample[]; removed: PlanSample[]; rejected: PlannedRejection[] };
  /** Things a real run would meet that are not errors of the plan (e.g. the mass-delete guard). */
  warnings: string[];
}

export interface SequencePlan {
  sequence: string;
  /** When the plan was computed (epoch ms). */
  plannedAt: number;
  /** Sample rows per kind asked for. */
  samplesPerKind: number;
  /** Members in the order a real run would start them. */
  members: MemberPlan[];
}

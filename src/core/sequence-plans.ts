/**
 * A dry run of a sequence (SPEC §3.4, `lockstep sequence plan`): what each member's next run would
 * plan against its snapshot, computed without sending anything or changing anything stored.
 */
import type { Value } from './ports.js';

/** Sample rows shown per kind of change unless asked otherwise. */
export const DEFAULT_PLAN_SAMPLES = 5;
/** Sample rows per kind of change at most. */
export const MAX_PLAN_SAMPLES = 100;

/**
 * The record id a dry run gives a `lookup` whose parent an earlier member of the plan delivers
 * first: no id any destination made, so a destination that checks ids' form lets it pass.
 */
export function plannedRecordId(parentSync: string): string {
  return `(id of the ${parentSync} record delivered first)`;
}

/** Whether a value is a record id a dry run stands in for one its parent member makes (plannedRecordId). */
export function isPlannedRecordId(value: Value): boolean {
  return typeof value === 'string' && value.startsWith('(id of the ') && value.endsWith(' record delivered first)');
}

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

/**
 * What a real run would do with a member:
 * - `planned`: it would run, sending what the counts and samples say;
 * - `failed`: it would fail now (the error says why; counts are what was planned before it);
 * - `skipped`: it would not start, as a run skips its members once the sequence terminates
 *   (`blockedBy` names the member whose outcome would terminate it); it was not planned, so its
 *   counts are zero.
 */
export type MemberPlanStatus = 'planned' | 'failed' | 'skipped';

/** The member whose outcome would terminate the sequence before a skipped member could start, and why. */
export interface PlanBlock {
  /** Key of the member whose outcome would terminate the sequence: one the skipped member waits for, directly or through others. */
  member: string;
  /** Why that member would terminate the sequence, as the run would record it (its `reason`). */
  reason: string;
}

/** One member's plan. */
export interface MemberPlan {
  key: string;
  sync: string;
  status: MemberPlanStatus;
  error: string | null;
  /**
   * When this member's planned outcome meets its `terminate` policy (it would fail, the mass-delete
   * guard would stop it, or it would reject more rows before sending than its threshold allows): why a real run would terminate the sequence
   * here, in the run's words. Null when the sequence would go on.
   */
  terminates: string | null;
  /** For a `skipped` member, the member it waits for whose outcome would terminate the sequence; null otherwise. */
  blockedBy: PlanBlock | null;
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

/**
 * Whether a real run would skip a member because of the members planned before it (in start
 * order), and for which member: a member starts only when every member it waits for finished
 * without terminating the sequence, so it is skipped when one of them would terminate it or would
 * be skipped itself. In a sequence that runs one member at a time, a member after a terminating
 * one in start order cannot start before that one ends, so it is skipped too.
 *
 * @param waitsFor the keys of the members this one waits for (see memberDependencies)
 * @param terminating why each member planned so far would terminate the sequence, by key, in start order
 * @param skipped the members skipped so far, by key
 */
export function planBlock(
  waitsFor: readonly string[],
  terminating: ReadonlyMap<string, string>,
  skipped: ReadonlyMap<string, PlanBlock>,
  oneAtATime: boolean,
): PlanBlock | null {
  for (const key of waitsFor) {
    const reason = terminating.get(key);
    if (reason !== undefined) return { member: key, reason };
    const block = skipped.get(key);
    if (block) return block;
  }
  const [first] = terminating;
  return oneAtATime && first ? { member: first[0], reason: first[1] } : null;
}

/**
 * A warning for a member a real run may or may not start, or null: in a graph, a member that does
 * not wait for a terminating member (and that such a member does not wait for) is skipped if that
 * member ends before it has started, as a run skips every member not started once it terminates.
 *
 * @param key the member planned
 * @param dependencies the members each member waits for (see memberDependencies)
 * @param terminating why members would terminate the sequence, by key
 */
export function mayNotStartWarning(key: string, dependencies: ReadonlyMap<string, readonly string[]>, terminating: ReadonlyMap<string, string>): string | null {
  const others = [...terminating.keys()].filter((t) => t !== key && !waitsForTransitively(t, key, dependencies));
  if (others.length === 0) return null;
  const names = others.map((t) => `"${t}"`).join(' or ');
  return (
    `a real run skips this member if member ${names} ends before it has started: ` +
    `${others.length === 1 ? "that member's" : 'their'} outcome would terminate the sequence, and a terminated run starts no member`
  );
}

/** Whether member `key` waits for member `other`, directly or through others. */
function waitsForTransitively(key: string, other: string, dependencies: ReadonlyMap<string, readonly string[]>): boolean {
  const seen = new Set<string>();
  const stack = [...(dependencies.get(key) ?? [])];
  while (stack.length > 0) {
    const next = stack.pop() as string;
    if (next === other) return true;
    if (seen.has(next)) continue;
    seen.add(next);
    stack.push(...(dependencies.get(next) ?? []));
  }
  return false;
}

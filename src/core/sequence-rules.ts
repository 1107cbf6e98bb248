/**
 * The rules of a sequence (SPEC §3): which members a member waits for, and whether a member's
 * outcome terminates the run. Pure functions, shared by the engine, validation and the UI.
 */
import type { SyncRun } from './runs.js';
import { totalCount } from './runs.js';
import type { MemberDef, SequenceDef } from './workspace.js';
import { assertNever } from './errors.js';

/**
 * The members each member waits for. When no member declares `after`, the sequence is linear: each
 * member waits for the one before it. Otherwise a member with `after` waits for those keys
 * (`after: []` starts at once), and a member without `after` still waits for the member before it
 * in the list, so adding `after` to one member never makes the others parallel by surprise.
 */
export function memberDependencies(sequence: Pick<SequenceDef, 'members'>): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  sequence.members.forEach((member, index) => {
    const previous = index > 0 ? [(sequence.members[index - 1] as MemberDef).key] : [];
    deps.set(member.key, member.after ?? previous);
  });
  return deps;
}

/** Whether the sequence is a graph (some member declares `after`) rather than a line. */
export function isGraphSequence(sequence: Pick<SequenceDef, 'members'>): boolean {
  return sequence.members.some((m) => m.after !== null);
}

/**
 * A dependency cycle among members, as the list of keys that form it (first key repeated at the
 * end), or null. Unknown keys are ignored here; validation reports them separately.
 */
export function findCycle(deps: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (key: string): string[] | null => {
    const s = state.get(key);
    if (s === 'done') return null;
    if (s === 'visiting') return [...stack.slice(stack.indexOf(key)), key];
    state.set(key, 'visiting');
    stack.push(key);
    for (const dep of deps.get(key) ?? []) {
      if (!deps.has(dep)) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(key, 'done');
    return null;
  };
  for (const key of deps.keys()) {
    const cycle = visit(key);
    if (cycle) return cycle;
  }
  return null;
}

/**
 * Why this member's finished sync run terminates the sequence, or null when the sequence goes on.
 * A run cancelled on its own (not through the sequence) counts as a failure.
 */
export function terminationReason(member: MemberDef, run: SyncRun): string | null {
  const failedOutright = run.status === 'failed' || run.status === 'cancelled';
  const planned = totalCount(run.plannedRows);
  const rejected = totalCount(run.failedRows);
  switch (member.terminate) {
    case 'never':
      return null;
    case 'on_fatal':
      return failedOutright ? failureText(member, run) : null;
    case 'on_fatal_or_rejected': {
      if (failedOutright) return failureText(member, run);
      if (rejected === 0) return null;
      const threshold = member.rejectedThreshold;
      if ('count' in threshold) {
        if (rejected <= threshold.count) return null;
        return `member "${member.key}" rejected ${rejected} of ${planned} rows, over its threshold of ${threshold.count} rejected ${threshold.count === 1 ? 'row' : 'rows'}`;
      }
      const percent = planned === 0 ? 0 : (rejected / planned) * 100;
      if (percent <= threshold.percent) return null;
      return `member "${member.key}" rejected ${rejected} of ${planned} rows (${formatPercent(percent)}), over its threshold of ${threshold.percent}%`;
    }
    default:
      return assertNever(member.terminate);
  }
}

function failureText(member: MemberDef, run: SyncRun): string {
  if (run.status === 'cancelled') return `member "${member.key}" was cancelled`;
  return `member "${member.key}" failed: ${run.error ?? 'unknown error'}`;
}

function formatPercent(p: number): string {
  return `${p.toFixed(p < 10 ? 1 : 0)}%`;
}

/**
 * The rules of a sequence (SPEC §3): which members a member waits for, and whether a member's
 * outcome terminates the run. Pure functions, shared by the engine, validation and the UI.
 */
import type { MemberStart } from './ports.js';
import type { MemberRun, SequenceRun, SequenceRunStatus, SyncRun } from './runs.js';
import { TERMINAL_MEMBER_RUN_STATUSES, totalCount } from './runs.js';
import type { MemberDef, SequenceDef, SequenceRecord } from './workspace.js';
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

/** What a sequence run's advance decides from: the run, the sequence as it is now, its members' sync runs. */
export interface SequenceAdvanceState {
  run: SequenceRun;
  /** The sequence's current definition; null when it was deleted (members then keep default rules). */
  sequence: SequenceRecord | null;
  /** The sync runs the members are linked to, by id: at least those `syncRunsToDecide` names. */
  syncRuns: ReadonlyMap<number, SyncRun>;
}

/** What an advance does, applied by the store in the same transaction as it was decided. */
export interface SequenceDecision {
  /** The member whose outcome ends the run, and why (only when none was recorded before). */
  terminate: { member: string; reason: string } | null;
  /** Sync runs of running members asked to stop (the run is being cancelled). */
  cancel: number[];
  /** Pending members become `skipped` (their queued runs are cancelled). */
  skipPending: boolean;
  /** Members that start now: a queued sync run each. */
  start: MemberStart[];
  /** The run ends with this status, after the rest is applied; null while it goes on. */
  finish: SequenceRunStatus | null;
}

/**
 * What an advance did: the run as stored after it, the member runs it queued (those claimed in the
 * same transaction are `querying`) and the runs asked to stop.
 */
export interface SequenceAdvance {
  run: SequenceRun;
  started: SyncRun[];
  cancelled: number[];
}

/**
 * The sync runs `decideSequenceAdvance` reads: those of finished members that may terminate the run
 * (while none has), and those of pending members that hold one (queued, waiting for their sync). A
 * store loads only these, so a hand-off in a long sequence does not read every member's run.
 */
export function syncRunsToDecide(run: SequenceRun): number[] {
  const ids: number[] = [];
  for (const m of run.members) {
    if (m.syncRunId === null) continue;
    if (m.status === 'pending' || (!run.reason && CAN_TERMINATE.has(m.status))) ids.push(m.syncRunId);
  }
  return ids;
}

const FINISHED_MEMBER = new Set<MemberRun['status']>(TERMINAL_MEMBER_RUN_STATUSES);
/** Only these outcomes can meet a terminate policy (rejected rows make a run end `warning`). */
const CAN_TERMINATE = new Set<MemberRun['status']>(['warning', 'failed', 'cancelled']);

/**
 * The next step of a running sequence run (SPEC §3.2), decided from its state alone:
 * - a finished member whose outcome meets its terminate policy ends the run (the earliest
 *   finisher's reason is kept): no member starts, pending ones are skipped, running ones finish,
 *   then the run ends `failed`;
 * - a cancel request stops running members and skips the rest; the run ends `cancelled`;
 * - otherwise members whose dependencies finished start, up to the sequence's concurrency; a
 *   pending member whose sync run is queued (its sync is busy) counts as in progress;
 * - once every member is finished the run ends `done`.
 */
export function decideSequenceAdvance(state: SequenceAdvanceState): SequenceDecision {
  const { run, sequence, syncRuns } = state;
  const decision: SequenceDecision = { terminate: null, cancel: [], skipPending: false, start: [], finish: null };
  if (run.status !== 'running') return decision;
  const definitions = memberDefinitions(run, sequence);

  if (!run.reason) {
    const finished = run.members
      .filter((m) => m.syncRunId !== null && CAN_TERMINATE.has(m.status))
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
    for (const member of finished) {
      const syncRun = syncRuns.get(member.syncRunId as number);
      const definition = definitions.get(member.key);
      if (!syncRun || !definition) continue;
      const reason = terminationReason(definition, syncRun);
      if (reason) {
        decision.terminate = { member: member.key, reason };
        break;
      }
    }
  }

  if (run.terminatedBy !== null || run.reason || decision.terminate || run.cancelRequested) {
    if (run.cancelRequested) {
      decision.cancel = run.members.filter((m) => m.status === 'running' && m.syncRunId !== null).map((m) => m.syncRunId as number);
    }
    decision.skipPending = run.members.some((m) => m.status === 'pending');
    const ended = run.members.every((m) => FINISHED_MEMBER.has(m.status) || m.status === 'pending');
    if (ended) decision.finish = run.cancelRequested ? 'cancelled' : 'failed';
    return decision;
  }

  const deps = memberDependencies({ members: [...definitions.values()] });
  const byKey = new Map(run.members.map((m) => [m.key, m]));
  let inProgress = 0;
  const ready: MemberRun[] = [];
  for (const m of run.members) {
    if (m.status === 'running') inProgress++;
    if (m.status !== 'pending') continue;
    if (m.syncRunId !== null && syncRuns.get(m.syncRunId)?.status === 'queued') {
      inProgress++;
      continue;
    }
    const waiting = (deps.get(m.key) ?? []).some((d) => {
      const dep = byKey.get(d);
      return dep !== undefined && !FINISHED_MEMBER.has(dep.status);
    });
    if (!waiting) ready.push(m);
  }
  const room = Math.max(0, (sequence?.concurrency ?? 1) - inProgress);
  decision.start = ready.slice(0, room).map((m) => ({ key: m.key, syncId: m.syncId }));
  if (decision.start.length === 0 && run.members.every((m) => FINISHED_MEMBER.has(m.status))) decision.finish = 'done';
  return decision;
}

/** The member definitions of the sequence as it is now, with default rules for members it no longer declares. */
function memberDefinitions(run: SequenceRun, sequence: SequenceRecord | null): Map<string, MemberDef> {
  const declared = new Map((sequence?.members ?? []).map((m) => [m.key, m]));
  return new Map(
    run.members.map((m): [string, MemberDef] => [
      m.key,
      declared.get(m.key) ?? { key: m.key, sync: String(m.syncId), terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null },
    ]),
  );
}

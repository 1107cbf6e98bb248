/**
 * The rules of a sequence (SPEC §3): which members a member waits for, and whether a member's
 * outcome terminates the run. Pure functions, shared by the engine, validation and the UI.
 */
import type { MemberStart } from './ports.js';
import type { MemberRun, RecordedMember, SequenceRun, SequenceRunStatus, SyncRun } from './runs.js';
import { TERMINAL_MEMBER_RUN_STATUSES, totalCount } from './runs.js';
import type { MemberDef, SequenceDef, SequenceRecord } from './workspace.js';
import { assertNever } from './errors.js';

/**
 * The members each member waits for. When no member declares `after`, the sequence is linear: each
 * member waits for the one before it. Otherwise a member with `after` waits for those keys
 * (`after: []` starts at once), and a member without `after` still waits for the member before it
 * in the list, so adding `after` to one member never makes the others parallel by surprise.
 */
export function memberDependencies(sequence: { members: ReadonlyArray<Pick<MemberDef, 'key' | 'after'>> }): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  sequence.members.forEach((member, index) => {
    const previous = index > 0 ? [(sequence.members[index - 1] as Pick<MemberDef, 'key'>).key] : [];
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
      return `member "${member.key}" rejected ${rejected} of ${planned} rows (${formatPercent(percent, threshold.percent)}), over its threshold of ${threshold.percent}%`;
    }
    default:
      return assertNever(member.terminate);
  }
}

function failureText(member: MemberDef, run: SyncRun): string {
  if (run.status === 'cancelled') return `member "${member.key}" was cancelled`;
  return `member "${member.key}" failed: ${run.error ?? 'unknown error'}`;
}

/** `p` as a percentage, with the decimals it takes to read above `threshold` (5.04%, not 5.0%, over 5%). */
function formatPercent(p: number, threshold: number): string {
  let digits = p < 10 ? 1 : 0;
  while (digits < 6 && Number(p.toFixed(digits)) <= threshold) digits++;
  return `${p.toFixed(digits)}%`;
}

/**
 * What a sequence run's advance decides from: the run (with the policies and limits it was queued
 * with), the sequence as it is now, its members' sync runs.
 */
export interface SequenceAdvanceState {
  run: SequenceRun;
  /**
   * The sequence's current definition, for its slug; its rules apply only to runs queued before
   * Lockstep kept them with the run. Null when it was deleted.
   */
  sequence: SequenceRecord | null;
  /**
   * The member graph the run was queued with: its members wait for one another as recorded then,
   * whatever the sequence says now. Null for runs queued before Lockstep kept it (they follow the
   * sequence as it is).
   */
  recorded: readonly RecordedMember[] | null;
  /** The sync runs the members are linked to, by id: at least those `syncRunsToDecide` names. */
  syncRuns: ReadonlyMap<number, SyncRun>;
  /** The time of the advance (the sequence's deadline is checked against it). */
  now: number;
}

/** What an advance does, applied by the store in the same transaction as it was decided. */
export interface SequenceDecision {
  /**
   * What ends the run, and why (only when nothing was recorded before): a member's outcome, or
   * (member null) the sequence's deadline.
   */
  terminate: { member: string | null; reason: string } | null;
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
 *   then the run ends `failed`; members carried over from the run it resumes never do;
 * - so does the run's deadline (`deadlineMinutes` from its start) once `now` passes it, unless a
 *   member terminated it earlier; its running members are stopped by the workers running them
 *   (see memberLimit);
 * - a cancel request stops running members and skips the rest; the run ends `cancelled`, and what
 *   finishes after the request (members stopped by it) terminates nothing;
 * - otherwise members whose dependencies finished start, up to the sequence's concurrency; the
 *   dependencies, concurrency and terminate policies are those the run was queued with (an apply
 *   while it runs changes neither its order nor what ends it); a
 *   pending member whose sync run is queued (its sync is busy) counts as in progress;
 * - once every member is finished the run ends `done`.
 */
export function decideSequenceAdvance(state: SequenceAdvanceState): SequenceDecision {
  const { run, sequence, recorded, syncRuns, now } = state;
  const decision: SequenceDecision = { terminate: null, cancel: [], skipPending: false, start: [], finish: null };
  if (run.status !== 'running') return decision;
  const definitions = memberDefinitions(run, sequence);

  // Once a user asked to cancel, the members that cancel stops end `cancelled` because of it: they
  // do not terminate the run, and the run ends `cancelled` without a member or deadline to blame.
  if (!run.reason && !run.cancelRequested) {
    const finished = run.members
      .filter((m) => m.syncRunId !== null && CAN_TERMINATE.has(m.status))
      .sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
    let at = Infinity;
    for (const member of finished) {
      const syncRun = syncRuns.get(member.syncRunId as number);
      const definition = definitions.get(member.key);
      // A member carried over from the run this one resumes keeps the outcome that run accepted.
      if (!syncRun || !definition || syncRun.sequenceRunId !== run.id) continue;
      const reason = terminationReason(definition, syncRun);
      if (reason) {
        decision.terminate = { member: member.key, reason };
        at = member.finishedAt ?? 0;
        break;
      }
    }
    const deadline = deadlineOf(run);
    if (deadline !== null && now >= deadline.at && deadline.at <= at) {
      decision.terminate = { member: null, reason: deadlineReason(run, sequence, deadline) };
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

  const deps = memberDependencies({ members: recorded ?? [...definitions.values()] });
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
  const room = Math.max(0, (run.concurrency ?? sequence?.concurrency ?? 1) - inProgress);
  decision.start = ready.slice(0, room).map((m) => ({ key: m.key, syncId: m.syncId }));
  if (decision.start.length === 0 && run.members.every((m) => FINISHED_MEMBER.has(m.status))) decision.finish = 'done';
  return decision;
}

/** When the run's deadline ends (its start plus `deadlineMinutes`), or null when it has none or has not started. */
function deadlineOf(run: SequenceRun): { at: number; minutes: number } | null {
  const minutes = run.deadlineMinutes;
  if (minutes === null || run.startedAt === null) return null;
  return { at: run.startedAt + minutes * 60_000, minutes };
}

function deadlineReason(run: SequenceRun, sequence: SequenceRecord | null, deadline: { at: number; minutes: number }): string {
  const notStarted = run.members.filter((m) => m.status === 'pending').map((m) => m.key);
  // A member its worker stopped at the deadline (see memberLimit) may have ended `cancelled`
  // before an advance saw the deadline: it was stopped all the same.
  const stopped = run.members
    .filter((m) => m.status === 'running' || (m.status === 'cancelled' && m.finishedAt !== null && m.finishedAt >= deadline.at))
    .map((m) => m.key);
  const parts = [`${sequence ? `sequence "${sequence.slug}"` : 'the sequence run'} passed its deadline of ${formatMinutes(deadline.minutes)}`];
  if (notStarted.length > 0) parts.push(`not started, so skipped: ${notStarted.join(', ')}`);
  if (stopped.length > 0) parts.push(`stopped: ${stopped.join(', ')}`);
  return parts.join('; ');
}

/**
 * Whether a running sequence run's deadline has passed and nothing recorded it yet: a worker's
 * loop advances such a run even when no member finishes (a stalled member never hands off).
 */
export function deadlinePassed(run: SequenceRun, now: number): boolean {
  const deadline = deadlineOf(run);
  return run.status === 'running' && !run.reason && deadline !== null && now >= deadline.at;
}

/** When a member's run must stop, how it ends, and the error it records. */
export interface MemberLimit {
  at: number;
  status: 'failed' | 'cancelled';
  error: string;
}

/**
 * The first limit a running member reaches (SPEC §3.4), or null: its own `timeoutMinutes` from the
 * start of its sync run (it then fails, so its terminate policy applies), or its sequence run's
 * deadline (it is then stopped, `cancelled`). Whichever worker holds the member's run enforces it;
 * a run taken over after its worker died keeps its start, so the limit holds across workers.
 */
export function memberLimit(run: SequenceRun, memberKey: string, memberStartedAt: number): MemberLimit | null {
  const limits: MemberLimit[] = [];
  const timeout = run.members.find((m) => m.key === memberKey)?.timeoutMinutes ?? null;
  if (timeout !== null) {
    limits.push({ at: memberStartedAt + timeout * 60_000, status: 'failed', error: `timed out after ${formatMinutes(timeout)}` });
  }
  const deadline = deadlineOf(run);
  if (deadline !== null) {
    limits.push({ at: deadline.at, status: 'cancelled', error: `stopped: the sequence run passed its deadline of ${formatMinutes(deadline.minutes)}` });
  }
  return limits.sort((a, b) => a.at - b.at)[0] ?? null;
}

/** `5 minutes`, `1 minute`, `30 seconds` (fractions of a minute read better in seconds). */
export function formatMinutes(minutes: number): string {
  if (Number.isInteger(minutes)) return `${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`;
  const seconds = Math.round(minutes * 60 * 1000) / 1000;
  return `${seconds} ${seconds === 1 ? 'second' : 'seconds'}`;
}

/** The member graph a run keeps of its sequence when it is queued (see RecordedMember). */
export function recordMembers(sequence: Pick<SequenceDef, 'members'>): RecordedMember[] {
  return sequence.members.map((m) => ({ key: m.key, sync: m.sync, after: m.after }));
}

// ---------------------------------------------------------------------------------------------
// Resume (SPEC §3.4)

/** What a resume decides from, read by the store in the transaction that queues the new run. */
export interface SequenceResumeState {
  /** The run to resume. */
  run: SequenceRun;
  /** The member graph the run was queued with; null for runs queued before Lockstep kept it. */
  recorded: RecordedMember[] | null;
  /** Its sequence as it is now; null when it was deleted. */
  sequence: SequenceRecord | null;
  /** The sync runs of the run's members that ended `success` or `warning`, by id. */
  syncRuns: ReadonlyMap<number, SyncRun>;
  /** The ids of the live syncs the sequence's members run now, by slug (a deleted sync is absent). */
  syncIds: ReadonlyMap<string, number>;
  /** A run that already resumes this one, if any. */
  resumedBy: SequenceRun | null;
  /** The sequence's queued run, if any (a sequence has at most one). */
  pending: SequenceRun | null;
}

/** A member of the failed run that the new run takes as done, with its sync run. */
export interface CarriedMember {
  key: string;
  syncRunId: number;
  status: 'success' | 'warning';
  startedAt: number | null;
  finishedAt: number | null;
}

/**
 * What a resume does: queue a new run of the sequence with these members carried over (the others
 * pending), or nothing, for the reason given (`not_found`: nothing to resume from; `conflict`: the
 * state does not allow it).
 */
export type SequenceResumeDecision =
  | { ok: true; carry: CarriedMember[] }
  | { ok: false; code: 'not_found' | 'conflict'; reason: string };

/**
 * Whether a sequence run can be resumed, and what carries over (SPEC §3.4). A `failed` or
 * `cancelled` run is resumed (a cancel, a Ctrl-C on a resume included, must not leave the work
 * only a full run can take up again), once, while its sequence has the members it ran with (same
 * keys, syncs and dependencies) and no run of it is queued. Members that ended `success` are
 * carried over, and those that ended `warning` unless their terminate policy (as it is now)
 * refuses the outcome or they terminated the run; every other member runs again.
 */
export function decideSequenceResume(state: SequenceResumeState): SequenceResumeDecision {
  const { run, recorded, sequence, syncRuns, syncIds, resumedBy, pending } = state;
  const refuse = (reason: string, code: 'not_found' | 'conflict' = 'conflict'): SequenceResumeDecision => ({ ok: false, code, reason });
  const again = sequence ? ` — start a new run with \`lockstep sequence run ${sequence.slug}\`` : '';
  switch (run.status) {
    case 'pending':
    case 'running':
      return refuse(`sequence run ${run.id} is still ${run.status}; only a failed or cancelled run can be resumed — wait for it to end (or cancel it)`);
    case 'done':
      return refuse(`sequence run ${run.id} finished successfully (done); there is nothing to resume${again}`);
    case 'cancelled':
    case 'failed':
      break;
    default:
      return assertNever(run.status);
  }
  if (sequence === null) return refuse(`the sequence of run ${run.id} was deleted; there is nothing to resume it with`, 'not_found');
  if (resumedBy !== null) {
    const resumable = resumedBy.status === 'failed' || resumedBy.status === 'cancelled';
    return refuse(`sequence run ${run.id} was already resumed by run ${resumedBy.id} (${resumedBy.status})${resumable ? `; resume ${resumedBy.id} instead` : ''}`);
  }
  if (pending !== null) {
    return refuse(`sequence "${sequence.slug}" already has a queued run, ${pending.id}; resume ${run.id} after it has run, or cancel it first`);
  }
  const changes = memberChanges(run, recorded, sequence, syncIds);
  if (changes.length > 0) {
    return refuse(
      `the members of sequence "${sequence.slug}" changed since run ${run.id}: ${changes.join('; ')} — a resume needs the members the run had${again}`,
    );
  }
  const definitions = new Map(sequence.members.map((m) => [m.key, m]));
  const carry: CarriedMember[] = [];
  for (const m of run.members) {
    if ((m.status !== 'success' && m.status !== 'warning') || m.syncRunId === null) continue;
    const syncRun = syncRuns.get(m.syncRunId);
    const definition = definitions.get(m.key);
    if (!syncRun || !definition) continue;
    if (m.status === 'warning' && (run.terminatedBy === m.key || terminationReason(definition, syncRun) !== null)) continue;
    carry.push({ key: m.key, syncRunId: m.syncRunId, status: m.status, startedAt: m.startedAt, finishedAt: m.finishedAt });
  }
  return { ok: true, carry };
}

/** How the sequence's members differ from those `run` was queued with, in words (empty when the same). */
function memberChanges(
  run: SequenceRun,
  graph: RecordedMember[] | null,
  sequence: SequenceRecord,
  syncIds: ReadonlyMap<string, number>,
): string[] {
  // Runs queued before the member graph was kept compare by their members' keys, order and syncs.
  const recorded = graph ?? run.members.map((m) => ({ key: m.key, sync: null as string | null, after: null }));
  const was = new Map(recorded.map((m) => [m.key, m]));
  const now = new Map(sequence.members.map((m) => [m.key, m]));
  const changes: string[] = [];
  for (const m of sequence.members) if (!was.has(m.key)) changes.push(`member "${m.key}" was added`);
  for (const m of recorded) if (!now.has(m.key)) changes.push(`member "${m.key}" was removed`);
  const wasDeps = memberDependencies({ members: recorded });
  const nowDeps = memberDependencies(sequence);
  const ranSync = new Map(run.members.map((m) => [m.key, m.syncId]));
  for (const m of sequence.members) {
    const before = was.get(m.key);
    if (!before) continue;
    const syncId = syncIds.get(m.sync);
    if (before.sync !== null && before.sync !== m.sync) changes.push(`member "${m.key}" now runs sync "${m.sync}" (was "${before.sync}")`);
    else if (syncId === undefined) changes.push(`member "${m.key}" runs sync "${m.sync}", which no longer exists`);
    else if (ranSync.get(m.key) !== syncId) changes.push(`member "${m.key}" runs a sync "${m.sync}" created since`);
    const a = [...(wasDeps.get(m.key) ?? [])].sort();
    const b = [...(nowDeps.get(m.key) ?? [])].sort();
    if (a.join('\u0000') !== b.join('\u0000')) {
      changes.push(`member "${m.key}" now waits for ${b.length > 0 ? b.join(', ') : 'nothing'} (was ${a.length > 0 ? a.join(', ') : 'nothing'})`);
    }
  }
  return changes;
}

/**
 * The members' rules as the run was queued with them. Runs queued before Lockstep kept them follow
 * the sequence as it is now, with default rules for members it no longer declares.
 */
function memberDefinitions(run: SequenceRun, sequence: SequenceRecord | null): Map<string, MemberDef> {
  const declared = new Map((sequence?.members ?? []).map((m) => [m.key, m]));
  return new Map(
    run.members.map((m): [string, MemberDef] => {
      const now = declared.get(m.key);
      const base: MemberDef = now ?? { key: m.key, sync: String(m.syncId), terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null };
      if (m.terminate === null) return [m.key, base];
      return [m.key, { ...base, terminate: m.terminate, rejectedThreshold: m.rejectedThreshold ?? { count: 0 } }];
    }),
  );
}

/**
 * The scheduler: fires timed schedules (interval, cron, recurrence) at their due times, each due time
 * once, across restarts and across schedulers sharing a store (SPEC §4, STYLE rule 16).
 *
 * Scheduler states (transitions go through `moveTo`):
 *
 *   idle ──start()──▶ running ──stop()──▶ stopping ──loop and in-flight tick ended──▶ stopped
 *   idle ──stop()───▶ stopped
 *
 *   running: loop { tick; sleep until the earliest wake-up, at most maxSleepMs }. `stop()` cuts the
 *   sleep short, and so does `reload()` when an entry became due before the planned wake-up.
 *   `tick()` and `reload()` may also be called by hand in `idle` (tests do); they run one at a time.
 *   `stopped` is final.
 *
 * Entry states, per schedule id:
 *
 *   new ──enabled──▶ armed: cursor from the store (or now, persisted, when there is none)
 *   new ──disabled─▶ disabled
 *   armed ──disabled──▶ disabled ──enabled──▶ armed with cursor = now (no firings for the past)
 *   armed ──schedule changed──▶ armed with cursor = now
 *   armed ──tick at/after its next due time──▶ armed, cursor = the due time fired (or skipped)
 *     (after downtime: one firing for the latest due time inside catchupWindowSeconds; older due
 *     times are skipped and logged)
 *   any ──gone from listSchedules──▶ forgotten
 *
 * The cursor is the due time up to which an entry has been evaluated: due times at or before it never
 * fire again, so a clock set backward replays nothing; firing keys (`id@ISO due time`, recorded by
 * `fire` in the transaction that queues the run) make the same guarantee across processes, and a due
 * time whose firing failed or whose process died before the cursor moved past it is fired again,
 * then queued once. Armed entries sit in a min-heap by wake-up time, so an idle tick looks at one
 * entry whatever the number of schedules.
 */
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import type { Clock, Logger, ScheduleStore } from '../core/ports.js';
import type { TimedSchedule } from '../core/workspace.js';
import { countDueTimesBetween, latestDueTimeBetween, nextDueTime } from './schedule-times.js';

/** One schedule the scheduler keeps: a sync's or a sequence's. */
export interface ScheduleEntry {
  /** Stable and unique, e.g. `sync:accounts` or `sequence:crm`; part of every firing key. */
  id: string;
  schedule: TimedSchedule;
  /** Disabled entries never fire. */
  enabled: boolean;
  /**
   * When the sync or sequence was last created or changed (its `updatedAt`). A saved cursor older
   * than this was left by what the entry was before (another schedule, disabled, a deleted namesake):
   * the entry is taken up from this time instead, so it does not catch up on due times from before
   * (default: the saved cursor is used as it is).
   */
  changedAt?: number;
}

/**
 * The part of the store's schedule role the scheduler needs (`store.schedules`): the cursors. A store
 * that can save cursors in batches (one transaction for a burst of due times) offers `setScheduleCursors`.
 */
export type SchedulerStore = Pick<ScheduleStore, 'getScheduleCursor' | 'setScheduleCursor'> & Partial<Pick<ScheduleStore, 'setScheduleCursors'>>;

export interface SchedulerOptions {
  store: SchedulerStore;
  clock: Clock;
  logger: Logger;
  /** The timed schedules to keep, read at start and at every `reload()`. */
  listSchedules: () => Promise<ScheduleEntry[]>;
  /**
   * Records `firingKey` and queues what the entry schedules, in one store transaction
   * (store.enqueueFiredRun): both or neither. False when the key was recorded before (another
   * scheduler fired it). A throw means neither happened: it is logged, and when the store failed
   * (LockstepError code `store`, or any retryable error) the due time is fired again a second later,
   * until it succeeds or a later due time replaces it; otherwise (the sync is gone) it is given up.
   */
  fire: (entry: ScheduleEntry, dueTime: number, firingKey: string) => Promise<boolean>;
  /** Longest sleep between ticks, in ms (default: 1000). */
  maxSleepMs?: number;
  /** Due entries evaluated at once in a tick, so store round-trips and `fire` calls overlap (default: 16). */
  concurrency?: number;
}

/** Lifecycle of a Scheduler. */
export const SchedulerState = {
  /** Constructed; `tick()` and `reload()` work by hand, no loop runs. */
  Idle: 'idle',
  /** The loop sleeps and ticks. */
  Running: 'running',
  /** `stop()` was called; the loop and any in-flight tick are ending. */
  Stopping: 'stopping',
  /** Final: nothing runs, `start()` refuses. */
  Stopped: 'stopped',
} as const;
export type SchedulerState = (typeof SchedulerState)[keyof typeof SchedulerState];

const TRANSITIONS: Record<SchedulerState, SchedulerState[]> = {
  idle: ['running', 'stopped'],
  running: ['stopping'],
  stopping: ['stopped'],
  stopped: [],
};

/** A due time this close to now is on time, never "missed", whatever the catch-up window (even 0). */
const ON_TIME_TOLERANCE_MS = 5_000;
/** After a store failure, an entry is evaluated again this much later. */
const STORE_RETRY_MS = 1_000;
/** Skipped due times counted one by one for the log, at most (intervals are counted exactly). */
const SKIP_COUNT_CAP = 100;

interface EntryState {
  entry: ScheduleEntry;
  /** The schedule as JSON, to notice changes on reload. */
  fingerprint: string;
  /** Due times at or before this never fire; null until the entry was armed. */
  cursor: number | null;
  /** When the entry needs a look: its next due time, or a retry after a store failure. */
  wakeAt: number;
  /** Position in the heap, -1 when off it (disabled, invalid, no more due times). */
  heapIndex: number;
}

type ArmMode = 'restore' | 'from-now';

export class Scheduler implements AsyncDisposable {
  private readonly store: SchedulerStore;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly listSchedules: () => Promise<ScheduleEntry[]>;
  private readonly fireEntry: SchedulerOptions['fire'];
  private readonly maxSleepMs: number;
  private readonly concurrency: number;

  private state: SchedulerState = SchedulerState.Idle;
  private readonly entries = new Map<string, EntryState>();
  private readonly heap = new EntryHeap();
  /** Ticks and reloads run one at a time, in call order. */
  private queue: Promise<void> = Promise.resolve();
  private loopDone: Promise<void> = Promise.resolve();
  /** Aborts the current sleep: on stop, and when a reload may have moved the earliest wake-up. */
  private sleepController: AbortController | null = null;
  /** When the sleeping loop will look again. */
  private plannedWakeAt = Number.POSITIVE_INFINITY;
  /** A reload failed (or could not arm an entry); the loop tries again. */
  private reloadNeeded = true;

  constructor(options: SchedulerOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.logger = options.logger;
    this.listSchedules = options.listSchedules;
    this.fireEntry = options.fire;
    this.maxSleepMs = options.maxSleepMs ?? 1000;
    this.concurrency = Math.max(1, options.concurrency ?? 16);
  }

  get currentState(): SchedulerState {
    return this.state;
  }

  /** Loads the schedules, catches up what was missed, and keeps running until `stop()`. */
  async start(): Promise<void> {
    this.moveTo(SchedulerState.Running);
    let started!: () => void;
    const firstTick = new Promise<void>((resolve) => (started = resolve));
    this.loopDone = this.loop(started);
    await firstTick;
  }

  /** Ends the loop promptly (its sleep is aborted) and waits for an in-flight tick. */
  async stop(): Promise<void> {
    if (this.state === SchedulerState.Idle) {
      this.moveTo(SchedulerState.Stopped);
    } else if (this.state === SchedulerState.Running) {
      this.moveTo(SchedulerState.Stopping);
      this.sleepController?.abort(new Error('scheduler stopped'));
    }
    await this.loopDone;
    await this.queue;
    if (this.state === SchedulerState.Stopping) this.moveTo(SchedulerState.Stopped);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Re-reads `listSchedules`: call it after the workspace changed or a schedule was enabled or disabled. */
  reload(): Promise<void> {
    return this.exclusive(async () => {
      await this.reloadNow();
      // Wake the loop only when an entry is now due before the loop planned to look again.
      const top = this.heap.peek();
      if (top && top.wakeAt < this.plannedWakeAt) this.sleepController?.abort(new Error('schedules reloaded'));
    });
  }

  /** Fires every entry whose due time has come. The loop calls it; public for tests. */
  tick(): Promise<void> {
    return this.exclusive(() => this.fireDue());
  }

  /** The next time the entry will be looked at (its next due time), or null when it will not fire. */
  nextWakeUp(id: string): number | null {
    const state = this.entries.get(id);
    return state && state.heapIndex >= 0 ? state.wakeAt : null;
  }

  // -------------------------------------------------------------------------------------------

  private moveTo(next: SchedulerState): void {
    if (!TRANSITIONS[this.state].includes(next)) {
      const hint = this.state === SchedulerState.Idle ? '' : ' (a scheduler starts once; create a new one to start again)';
      throw new LockstepError(ErrorCode.Conflict, `scheduler cannot go from ${this.state} to ${next}${hint}`);
    }
    this.state = next;
  }

  private exclusive(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => {
      if (this.state === SchedulerState.Stopped) return;
      return work();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private async loop(started: () => void): Promise<void> {
    try {
      while (this.state === SchedulerState.Running) {
        try {
          if (this.reloadNeeded) await this.exclusive(() => this.reloadNow());
          await this.tick();
        } catch (thrown) {
          // Not expected (entries catch their own failures), and never a reason to stop firing.
          this.logger.error('scheduler tick failed', { error: toError(thrown).message });
        }
        started();
        if (this.state !== SchedulerState.Running) break;
        const top = this.heap.peek();
        const wait = top ? Math.min(this.maxSleepMs, top.wakeAt - this.clock.now()) : this.maxSleepMs;
        if (wait <= 0) {
          // Due already (the tick ran late): yield to the event loop, then tick again.
          await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        this.plannedWakeAt = this.clock.now() + wait;
        this.sleepController = new AbortController();
        try {
          await this.clock.sleep(wait, this.sleepController.signal);
        } catch {
          // Aborted: stopping, or a reload moved the earliest wake-up. The loop condition decides.
        } finally {
          this.sleepController = null;
        }
      }
    } catch (thrown) {
      this.logger.error('scheduler loop failed', { error: toError(thrown).message });
    } finally {
      started();
    }
  }

  private now(): number {
    return Math.floor(this.clock.now());
  }

  // --- loading schedules

  private async reloadNow(): Promise<void> {
    let listed: ScheduleEntry[];
    try {
      listed = await this.listSchedules();
    } catch (thrown) {
      this.reloadNeeded = true;
      this.logger.error('could not list schedules; will retry', { error: toError(thrown).message });
      return;
    }
    this.reloadNeeded = false;
    const toArm: Array<{ state: EntryState; mode: ArmMode }> = [];
    const seen = new Set<string>();
    for (const entry of listed) {
      if (seen.has(entry.id)) {
        this.logger.warn(`schedule id "${entry.id}" is listed twice; the first one is kept`, { scheduleId: entry.id });
        continue;
      }
      seen.add(entry.id);
      const fingerprint = JSON.stringify(entry.schedule);
      const known = this.entries.get(entry.id);
      if (!known) {
        const state: EntryState = { entry, fingerprint, cursor: null, wakeAt: 0, heapIndex: -1 };
        this.entries.set(entry.id, state);
        if (entry.enabled) toArm.push({ state, mode: 'restore' });
        continue;
      }
      const wasEnabled = known.entry.enabled;
      const changed = known.fingerprint !== fingerprint;
      known.entry = entry;
      known.fingerprint = fingerprint;
      if (!entry.enabled) {
        this.heap.remove(known);
      } else if (!wasEnabled || changed) {
        toArm.push({ state: known, mode: 'from-now' });
      } else if (known.cursor === null) {
        toArm.push({ state: known, mode: 'restore' }); // an earlier attempt to arm it failed
      }
    }
    for (const [id, state] of this.entries) {
      if (!seen.has(id)) {
        this.heap.remove(state);
        this.entries.delete(id);
      }
    }
    await forEachLimited(toArm, this.concurrency, ({ state, mode }) => this.arm(state, mode));
  }

  /** Gives an enabled entry its cursor and puts it on the heap at its next due time. */
  private async arm(state: EntryState, mode: ArmMode): Promise<void> {
    const { id, schedule } = state.entry;
    this.heap.remove(state);
    const now = this.now();
    try {
      nextDueTime(schedule, now); // compiles it: an invalid schedule throws here, naming the problem
    } catch (thrown) {
      this.logger.error(`schedule "${id}" is invalid and will not fire: ${toError(thrown).message}`, { scheduleId: id });
      return;
    }
    try {
      let cursor: number | null = null;
      if (mode === 'restore') cursor = keptSince(await this.store.getScheduleCursor(id), state.entry.changedAt, now);
      else if (state.cursor !== null) cursor = Math.max(state.cursor, now);
      if (cursor === null || mode === 'from-now') {
        cursor ??= now;
        await this.store.setScheduleCursor(id, cursor);
      }
      state.cursor = cursor;
    } catch (thrown) {
      state.cursor = null;
      this.reloadNeeded = true;
      this.logger.error(`could not read or write the cursor of schedule "${id}"; will retry`, {
        scheduleId: id,
        error: toError(thrown).message,
      });
      return;
    }
    this.schedule(state, nextDueTime(schedule, state.cursor));
  }

  private schedule(state: EntryState, wakeAt: number | null): void {
    if (wakeAt === null) {
      this.heap.remove(state);
      return;
    }
    state.wakeAt = wakeAt;
    this.heap.upsert(state);
  }

  // --- firing

  private async fireDue(): Promise<void> {
    const now = this.now();
    const due: EntryState[] = [];
    for (let top = this.heap.peek(); top && top.wakeAt <= now; top = this.heap.peek()) {
      this.heap.remove(top);
      due.push(top);
    }
    if (due.length === 0) return;
    // The cursors of due times that arrive together (every ":00" schedule) are saved in one store
    // transaction, so a burst costs one commit for them instead of one per schedule.
    const plans: Plan[] = [];
    for (const state of due) {
      try {
        const plan = this.plan(state, now);
        if (plan) plans.push(plan);
      } catch (thrown) {
        this.logger.error(`schedule "${state.entry.id}" failed and will not fire until the next reload: ${toError(thrown).message}`, {
          scheduleId: state.entry.id,
        });
      }
    }
    const retrying = new Set<Plan>();
    await forEachLimited(plans, this.concurrency, async (plan) => {
      if (!(await this.fire(plan))) retrying.add(plan);
    });
    for (const plan of retrying) this.schedule(plan.state, now + STORE_RETRY_MS); // its cursor stays before the due time
    const fired = plans.filter((plan) => !retrying.has(plan));
    await this.saveCursors(fired);
    for (const { state, latest } of fired) {
      // Not while a reload disabled or dropped it in the meantime (reloads wait for ticks, but be safe).
      if (this.entries.get(state.entry.id) === state && state.entry.enabled) this.schedule(state, nextDueTime(state.entry.schedule, latest));
    }
  }

  /**
   * Decides what the due times of one entry in (cursor, now] call for: the latest fires if it is
   * inside the catch-up window, the ones before it inside the window collapse into that firing,
   * older ones are skipped and logged. Returns null when nothing is due (the entry is planned again).
   */
  private plan(state: EntryState, now: number): Plan | null {
    const { id, schedule } = state.entry;
    const cursor = state.cursor;
    if (cursor === null) return null; // not armed; a reload will arm it
    let latest: number | null;
    try {
      latest = latestDueTimeBetween(schedule, cursor, now);
    } catch (thrown) {
      this.logger.error(`schedule "${id}" could not be evaluated: ${toError(thrown).message}`, { scheduleId: id });
      return null;
    }
    if (latest === null) {
      // Nothing due (the clock went backward since this entry was planned): plan again from the cursor.
      this.schedule(state, nextDueTime(schedule, Math.max(cursor, now)));
      return null;
    }

    const windowMs = Math.max(schedule.catchupWindowSeconds * 1000, ON_TIME_TOLERANCE_MS);
    const windowStart = now - windowMs;
    const fires = latest >= windowStart;
    const skippedUpTo = fires ? windowStart - 1 : latest;
    if (skippedUpTo > cursor) {
      const skipped = countDueTimesBetween(schedule, cursor, skippedUpTo, SKIP_COUNT_CAP);
      if (skipped > 0) {
        const atLeast = skipped >= SKIP_COUNT_CAP && schedule.type !== 'interval';
        this.logger.warn(
          `schedule "${id}" skipped ${atLeast ? 'at least ' : ''}${skipped} due time(s) older than its catch-up window of ${schedule.catchupWindowSeconds} s`,
          {
            scheduleId: id,
            skipped,
            skippedAtLeast: atLeast,
            skippedAfter: new Date(cursor).toISOString(),
            catchupWindowSeconds: schedule.catchupWindowSeconds,
          },
        );
      }
    }
    return { state, cursor, latest, firingKey: fires ? `${id}@${new Date(latest).toISOString()}` : null };
  }

  /**
   * Fires a planned due time; a throw is logged. False when it is to be fired again soon (the store
   * failed): neither its key nor its run was written, so trying again queues it once.
   */
  private async fire(plan: Plan): Promise<boolean> {
    const { state, cursor, latest, firingKey } = plan;
    const { entry } = state;
    const { id, schedule } = entry;
    if (firingKey === null) return true;
    const missedBefore = nextDueTime(schedule, cursor);
    if (missedBefore !== null && missedBefore < latest) {
      this.logger.info(`schedule "${id}" missed due times while down; firing once for the latest`, {
        scheduleId: id,
        firingKey,
        oldestMissed: new Date(missedBefore).toISOString(),
      });
    }
    try {
      if (await this.fireEntry(entry, latest, firingKey)) this.logger.debug('schedule fired', { scheduleId: id, firingKey });
      else this.logger.debug('due time already fired elsewhere', { scheduleId: id, firingKey });
      return true;
    } catch (thrown) {
      const retry = thrown instanceof LockstepError && (thrown.retryable || thrown.code === ErrorCode.Store);
      this.logger.error(`schedule "${id}" failed to fire ${firingKey}: ${toError(thrown).message}${retry ? '; will retry' : ''}`, { scheduleId: id, firingKey });
      return !retry;
    }
  }

  /** Moves the cursors past the due times handled; a failure is logged (the firing keys still guard them). */
  private async saveCursors(plans: Plan[]): Promise<void> {
    for (const plan of plans) plan.state.cursor = plan.latest;
    if (plans.length === 0) return;
    const cursors = plans.map((p) => ({ scheduleId: p.state.entry.id, dueTime: p.latest }));
    try {
      if (this.store.setScheduleCursors) await this.store.setScheduleCursors(cursors);
      else for (const c of cursors) await this.store.setScheduleCursor(c.scheduleId, c.dueTime);
    } catch (thrown) {
      // The firing keys still guard these due times; the next firing writes newer cursors.
      this.logger.error(`could not save the cursors of ${cursors.length} schedule(s)`, { error: toError(thrown).message, firstScheduleId: cursors[0]?.scheduleId });
    }
  }
}

/**
 * A saved cursor, moved up to the entry's last change (never past now): due times from before the
 * change were due to something else — a schedule since replaced, an entry disabled or deleted — and
 * are neither fired nor reported as skipped.
 */
function keptSince(saved: number | null, changedAt: number | undefined, now: number): number | null {
  if (saved === null || changedAt === undefined) return saved;
  return Math.max(saved, Math.min(changedAt, now));
}

/** What one due entry calls for in a tick. */
interface Plan {
  state: EntryState;
  /** The cursor before this tick. */
  cursor: number;
  /** The latest due time in (cursor, now]; the cursor moves here. */
  latest: number;
  /** The firing key when `latest` fires; null when it was too old and is only skipped. */
  firingKey: string | null;
}

/** Runs `work` over `items` with at most `limit` in flight; `work` must not throw. */
async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A binary min-heap of entries by `wakeAt`; entries know their index so they can be removed or moved. */
class EntryHeap {
  private readonly items: EntryState[] = [];

  peek(): EntryState | undefined {
    return this.items[0];
  }

  get size(): number {
    return this.items.length;
  }

  /** Adds the entry, or moves it after its `wakeAt` changed. */
  upsert(state: EntryState): void {
    if (state.heapIndex < 0) {
      state.heapIndex = this.items.length;
      this.items.push(state);
    }
    this.up(state.heapIndex);
    this.down(state.heapIndex);
  }

  remove(state: EntryState): void {
    const index = state.heapIndex;
    if (index < 0) return;
    const last = this.items.pop()!;
    state.heapIndex = -1;
    if (last === state) return;
    this.items[index] = last;
    last.heapIndex = index;
    this.up(index);
    this.down(last.heapIndex);
  }

  private up(index: number): void {
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.items[parent]!.wakeAt <= this.items[i]!.wakeAt) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(index: number): void {
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < this.items.length && this.items[left]!.wakeAt < this.items[smallest]!.wakeAt) smallest = left;
      if (right < this.items.length && this.items[right]!.wakeAt < this.items[smallest]!.wakeAt) smallest = right;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private swap(a: number, b: number): void {
    const itemA = this.items[a]!;
    const itemB = this.items[b]!;
    this.items[a] = itemB;
    this.items[b] = itemA;
    itemA.heapIndex = b;
    itemB.heapIndex = a;
  }
}

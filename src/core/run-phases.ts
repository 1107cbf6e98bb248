/**
 * Where a sync run's time went: its wall time split into phases that add up to the whole.
 *
 * A run's main loop is always in one phase: it either works (plans) or waits for one thing. The time
 * between two moments goes to the phase the main loop was in, so the phases add up to the run's
 * time, however much work overlapped (the destination writes while the model is read). Phases:
 *
 * - `connect`  loading the sync's definitions, opening the source and destination, preparing the writer
 * - `query`    waiting for the source's next rows (the query's first rows included)
 * - `plan`     the run's own work: validating, hashing and comparing rows with the snapshot (loading
 *              it, or looking keys up in the store), finding removals
 * - `deliver`  waiting for the destination to finish a write (as many are under way as it takes at once)
 * - `commit`   waiting for delivered rows to be committed to the snapshot (and refused rows stored)
 * - `rateLimit` waiting for the destination while its writes were held back by its rate limit
 * - `retry`    waiting out a backoff before a query or write is tried again
 * - `finish`   recording the end and closing the connections
 *
 * `rateLimit` and `retry` are taken out of the waits they caused: while the main loop waits for a
 * write and a write of the run sits in the destination's rate limiter (or in a backoff before it is
 * sent again), that time is `rateLimit` (or `retry`), not `deliver`; a query that failed and waits
 * out a backoff before the model is read again is `retry`.
 *
 * Waits happen in connectors the run only calls into (a rate limiter shared by every run writing
 * through a connection): the run hands its clock, as `RunWaits`, to the destination it opens, and
 * the rate limiter reports to it. Not through an AsyncLocalStorage: in Node 20 one turns on the
 * async hooks for every promise and callback of the process, which cost a run of 100,000 small
 * rows some 25-50 ms of its main thread's CPU, and more on the optimising compiler's threads.
 */

/** The phases, in the order a run goes through them. */
export const RUN_PHASES = ['connect', 'query', 'plan', 'deliver', 'commit', 'rateLimit', 'retry', 'finish'] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

/** Milliseconds per phase (phases a run never was in may be absent). */
export type PhaseTimes = Partial<Record<RunPhase, number>>;

/** Waits beside the main loop: they relabel the main loop's wait for the destination. */
export type RunWait = 'rateLimit' | 'retry';

/** Where a connector reports a wait beside a run's main loop (the run's PhaseClock). */
export interface RunWaits {
  begin(wait: RunWait): void;
  end(wait: RunWait): void;
}

export class PhaseClock implements RunWaits {
  private phase: RunPhase = 'connect';
  /** The phase the time since `since` goes to (the main loop's, or a wait's that relabels it). */
  private shown: RunPhase = 'connect';
  private since: number;
  private readonly ms = new Map<RunPhase, number>();
  private readonly waits: Record<RunWait, number> = { rateLimit: 0, retry: 0 };

  constructor(private readonly now: () => number = () => performance.now()) {
    this.since = now();
  }

  /** Moves the main loop to `phase`; returns the phase it was in. */
  enter(phase: RunPhase): RunPhase {
    const was = this.phase;
    this.phase = phase;
    this.relabel();
    return was;
  }

  /** The main loop in `phase` until `work` settles, then back in the phase it was in. */
  async during<T>(phase: RunPhase, work: Promise<T>): Promise<T> {
    const was = this.enter(phase);
    try {
      return await work;
    } finally {
      this.enter(was);
    }
  }

  /** A wait beside the main loop (a write in the rate limiter, a backoff) begins; `end` ends it. */
  begin(wait: RunWait): void {
    this.waits[wait]++;
    this.relabel();
  }

  end(wait: RunWait): void {
    this.waits[wait]--;
    this.relabel();
  }

  /** Milliseconds per phase so far, to 0.1 ms; every phase is present. */
  times(): PhaseTimes {
    this.relabel();
    const out: PhaseTimes = {};
    for (const phase of RUN_PHASES) out[phase] = Math.round((this.ms.get(phase) ?? 0) * 10) / 10;
    return out;
  }

  private relabel(): void {
    const now = this.now();
    this.ms.set(this.shown, (this.ms.get(this.shown) ?? 0) + (now - this.since));
    this.since = now;
    this.shown = this.label();
  }

  private label(): RunPhase {
    if (this.phase !== 'deliver') return this.phase;
    if (this.waits.retry > 0) return 'retry';
    if (this.waits.rateLimit > 0) return 'rateLimit';
    return 'deliver';
  }
}

/** The phases of `times` that took any time, largest first, as "query 1.2 s, plan 0.3 s". */
export function formatPhaseTimes(times: PhaseTimes): string {
  return RUN_PHASES.filter((phase) => (times[phase] ?? 0) >= 0.5)
    .sort((a, b) => (times[b] ?? 0) - (times[a] ?? 0))
    .map((phase) => `${phase} ${formatMs(times[phase] ?? 0)}`)
    .join(', ');
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

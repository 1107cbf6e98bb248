import type { Clock } from '../../src/core/ports.js';

interface Sleeper {
  at: number;
  /** Wakes the sleeper and lets go of its signal (a worker's signal outlives thousands of sleeps). */
  wake: () => void;
}

/**
 * A clock tests move by hand: `advance(ms)` (forward) and `set(ms)` (forward or backward) wake every
 * sleeper whose time has come, in time order.
 */
export class FakeClock implements Clock {
  private current: number;
  private sleepers: Sleeper[] = [];

  constructor(start: number | string | Date = '2026-01-01T00:00:00Z') {
    this.current = typeof start === 'number' ? start : new Date(start).getTime();
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(signal?.reason);
      };
      const sleeper: Sleeper = {
        at: this.current + Math.max(0, ms),
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** Moves time forward by `ms`, waking sleepers in order and letting their continuations run. */
  async advance(ms: number): Promise<void> {
    await this.set(this.current + ms);
  }

  /** Jumps to `time` (may go backward: nothing wakes then). */
  async set(time: number | string | Date): Promise<void> {
    const target = typeof time === 'number' ? time : new Date(time).getTime();
    for (;;) {
      const due = this.sleepers.filter((s) => s.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.current = Math.max(this.current, due.at);
      this.sleepers = this.sleepers.filter((s) => s !== due);
      due.wake();
      await flush();
    }
    this.current = target;
    await flush();
  }

  /** When the earliest pending sleep ends, or null when nothing sleeps. */
  get nextWakeAt(): number | null {
    return this.sleepers.reduce<number | null>((min, s) => (min === null || s.at < min ? s.at : min), null);
  }

  /** Number of pending sleeps (for tests asserting that everything stopped). */
  get pendingSleeps(): number {
    return this.sleepers.length;
  }
}

/** Lets queued promise continuations and immediates run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

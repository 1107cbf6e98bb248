import type { Clock } from './ports.js';

/** The real clock: wall time with sub-millisecond precision. */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * A clock kept to another one: the time of the PostgreSQL server that processes on several machines
 * share, so that their leases, schedules and run times agree whatever each machine's clock says.
 * It reads `base` plus the offset its last `align()` measured; durations (`sleep`) are `base`'s.
 * An offset smaller than `toleranceMs` is no correction: `base` is kept as it is.
 */
export class AlignedClock implements Clock {
  private offset = 0;

  constructor(
    private readonly base: Clock,
    /** Offsets below this are the measure's own noise, not a clock that is off (default: 100 ms). */
    private readonly toleranceMs = 100,
  ) {}

  /** base's time minus the reference's, in ms, as last measured: positive when base is ahead (0 within the tolerance). */
  get aheadMs(): number {
    return this.offset === 0 ? 0 : -this.offset;
  }

  now(): number {
    return this.base.now() + this.offset;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.base.sleep(ms, signal);
  }

  /**
   * Measures the offset to the reference, whose `readTime` answers its time (epoch ms); the answer
   * is taken as the reference's time at the middle of the call. Returns whether the offset changed.
   */
  async align(readTime: () => Promise<number>): Promise<boolean> {
    const before = this.base.now();
    const reference = await readTime();
    const after = this.base.now();
    const measured = Math.round(reference - (before + after) / 2);
    const next = Math.abs(measured) < this.toleranceMs ? 0 : measured;
    if (Math.abs(next - this.offset) < this.toleranceMs) return false;
    this.offset = next;
    return true;
  }
}

/**
 * The rate limiter behind `RateLimiter` (core/ports.ts), on Bottleneck: requests spaced to at most
 * `requestsPerSecond` and at most `concurrency` at once, for everything that writes through one
 * destination connection in this process. A peer's "come back later" pauses every caller.
 */
import Bottleneck from 'bottleneck';
import type { RateLimits } from '../core/connector-kind.js';
import type { RateLimiter } from '../core/ports.js';

export function createRateLimiter(limits: RateLimits): RateLimiter {
  const bottleneck = new Bottleneck({
    maxConcurrent: limits.concurrency ?? null,
    // Spacing starts evenly instead of bursting: a run's measured rate is the configured one.
    minTime: limits.requestsPerSecond ? 1000 / limits.requestsPerSecond : 0,
  });
  let pausedUntil = 0;
  return {
    async schedule<T>(task: () => Promise<T>): Promise<T> {
      return bottleneck.schedule(async () => {
        const wait = pausedUntil - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        return task();
      });
    },
    pauseUntil(until: number): void {
      pausedUntil = Math.max(pausedUntil, until);
    },
    observe(remaining: number, windowMs: number): void {
      // Nearly spent: hold everyone back until the window has room again.
      if (remaining <= 1) pausedUntil = Math.max(pausedUntil, Date.now() + windowMs);
    },
  };
}

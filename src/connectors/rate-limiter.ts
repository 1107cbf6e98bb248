/**
 * The rate limiter behind `RateLimiter` (core/ports.ts): requests start at most `requestsPerSecond`
 * a second, evenly spaced (p-throttle in strict mode), with at most `concurrency` under way at once
 * (p-limit), for everything that writes through one destination connection in this process. A
 * request within the budget starts at once, without a timer. A peer's "come back later" pauses
 * every caller.
 */
import pLimit from 'p-limit';
import pThrottle from 'p-throttle';
import { MAX_RETRY_AFTER_SECONDS } from '../core/backoff.js';
import type { RateLimits } from '../core/connector-kind.js';
import type { RateLimiter } from '../core/ports.js';
import type { RunWaits } from '../core/run-phases.js';

export function createRateLimiter(limits: RateLimits): RateLimiter {
  const slots = pLimit(limits.concurrency ?? Infinity);
  // One start per interval: spacing starts evenly instead of bursting, so the measured rate is the configured one.
  const startTurn = limits.requestsPerSecond
    ? pThrottle({ limit: 1, interval: 1000 / limits.requestsPerSecond, strict: true })(() => undefined)
    : null;
  let pausedUntil = 0;
  return {
    schedule<T>(task: () => Promise<T>, phases?: RunWaits, signal?: AbortSignal): Promise<T> {
      // The time a request waits for its turn counts as the run's rate-limit wait (run-phases.ts);
      // waiting for a free slot (concurrency) does not: the run's own requests hold those.
      return slots(async () => {
        phases?.begin('rateLimit');
        try {
          if (startTurn) await startTurn();
          const wait = pausedUntil - Date.now();
          if (wait > 0) await pause(wait, signal);
        } finally {
          phases?.end('rateLimit');
        }
        return task();
      });
    },
    pauseUntil(until: number): void {
      // No longer than a run waits for a peer (see MAX_RETRY_AFTER_SECONDS): callers then ask again, and stop.
      pausedUntil = Math.max(pausedUntil, Math.min(until, Date.now() + MAX_RETRY_AFTER_SECONDS * 1000));
    },
    observe(remaining: number, windowMs: number): void {
      // Nearly spent: hold everyone back until the window has room again.
      if (remaining <= 1) pausedUntil = Math.max(pausedUntil, Date.now() + windowMs);
    },
  };
}

/** Waits `ms`, or until `signal` aborts: a pause may last minutes, and a stopped run does not wait it out. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = () => {
      clearTimeout(timer);
      reject(new Error('the run stopped while its request waited for the destination\'s rate limit'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
  });
}

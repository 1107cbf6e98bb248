/**
 * Waiting for a database lock by the clock on the wall. SQLite's busy timeout counts the sleeps it
 * asks for, not the time that passed: a signal cuts each sleep short (a sampling CPU profiler sends
 * one every few hundred microseconds to the thread it profiles, as continuous profilers in
 * production do), and a 5-second timeout then runs out in about 35 ms. Taking a lock through
 * `retryLocked` waits until the timeout has really passed.
 */

/** Blocks the thread (a lock is taken synchronously) for about `ms`, whatever signals arrive. */
function pause(ms: number): void {
  Atomics.wait(PAUSE, 0, 0, ms);
}
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** Between two attempts: the database's own wait has just ended, so a short one. */
const PAUSE_MS = 2;

/**
 * Runs `attempt` until it succeeds, or fails otherwise than with a lock held elsewhere
 * (`isLocked`), or `timeoutMs` have passed since the first try; then its last error is thrown.
 * `attempt` must have done nothing when it fails with `isLocked` (e.g. a BEGIN that did not start).
 */
export function retryLocked<T>(attempt: () => T, isLocked: (error: unknown) => boolean, timeoutMs: number): T {
  const started = performance.now();
  for (;;) {
    try {
      return attempt();
    } catch (error) {
      if (!isLocked(error) || performance.now() - started + PAUSE_MS >= timeoutMs) throw error;
      pause(PAUSE_MS);
    }
  }
}

/** Whether SQLite refused because another connection holds the lock it needs (better-sqlite3's `code`). */
export function isSqliteBusy(error: unknown): boolean {
  const code: unknown = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * One backoff policy for everything that retries: the sync runner (queries, batches, rows a
 * destination answered as retryable), the alert dispatcher (notices) and the connectors (HTTP calls).
 * Exponential from `baseDelayMs`, capped at `maxDelayMs`, with full jitter; never less than what the
 * peer asked for with `Retry-After`.
 */
import { ErrorCode, LockstepError, toError } from './errors.js';
import type { Clock } from './ports.js';

export interface BackoffPolicy {
  /** Attempts in all, the first included, before a transient failure counts as final (default: 5). */
  attempts: number;
  /** First backoff in ms, doubled each attempt (default: 200). */
  baseDelayMs: number;
  /** Longest single wait in ms (default: 30000). */
  maxDelayMs: number;
  /**
   * How much of each wait is random: 1 is "full jitter" (anywhere from 0 to the bound; the default,
   * best for many callers retrying one peer), 0.2 is ±20% around the bound (a steady cadence).
   */
  jitter?: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 30_000 };

/**
 * The longest a peer's `Retry-After` is waited out within a run (15 minutes). An API that asks for
 * longer (a daily quota spent) fails the attempt at once: the run does not hold its lease, its
 * sequence and its connection's other callers for hours, and its rows go again on the next run.
 */
export const MAX_RETRY_AFTER_SECONDS = 15 * 60;

/**
 * The error to stop with when `error` asks to wait longer than MAX_RETRY_AFTER_SECONDS, else null.
 */
export function waitTooLong(error: LockstepError): LockstepError | null {
  const seconds = error.retryAfterSeconds;
  if (seconds === undefined || seconds <= MAX_RETRY_AFTER_SECONDS) return null;
  return new LockstepError(
    ErrorCode.Transient,
    `${error.message} — the peer asks to wait ${Math.ceil(seconds)} s before trying again, longer than a run waits (${MAX_RETRY_AFTER_SECONDS / 60} min); the run stops here and its rows go again on the next run`,
    { cause: error, retryable: false },
  );
}

/**
 * How long to wait after failed attempt number `attempt` (1-based): the exponential bound with the
 * policy's jitter, and at least `retryAfterSeconds` when the peer said when to come back.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, retryAfterSeconds?: number, random: () => number = Math.random): number {
  const bound = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jitter = policy.jitter ?? 1;
  const delay = jitter >= 1 ? random() * bound : bound * (1 - jitter + random() * 2 * jitter);
  return Math.max(delay, (retryAfterSeconds ?? 0) * 1000);
}

/**
 * `Retry-After` as seconds from now: either delay-seconds or an HTTP date (RFC 9110 §10.2.3);
 * undefined when absent or unreadable.
 */
export function parseRetryAfter(header: string | null | undefined, now: number): number | undefined {
  if (header === null || header === undefined || header.trim() === '') return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // An asctime-date (`Sun Nov  6 08:49:37 1994`) is GMT without saying so; JavaScript would read it in the process's time zone.
  const date = Date.parse(/^[a-z]{3} [a-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/i.test(text) ? `${text} GMT` : text);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

export interface RetryOptions {
  policy: BackoffPolicy;
  clock: Clock;
  signal?: AbortSignal;
  /** Called before each wait, e.g. to log it. */
  onRetry?: (info: { attempt: number; delayMs: number; error: LockstepError }) => void;
}

/**
 * Runs `fn` until it succeeds, retrying a `retryable` LockstepError after a backoff. Any other error
 * is thrown at once; a retryable one that outlives the attempts is thrown as a non-retryable
 * `transient` error saying how many attempts were made. An abort while waiting throws the signal's reason.
 */
export async function withBackoff<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { policy, clock, signal, onRetry } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (thrown) {
      if (!(thrown instanceof LockstepError) || !thrown.retryable) throw thrown;
      const tooLong = waitTooLong(thrown);
      if (tooLong) throw tooLong;
      if (attempt >= policy.attempts) {
        throw new LockstepError(ErrorCode.Transient, `${toError(thrown).message} (gave up after ${attempt} attempts)`, {
          cause: thrown,
          retryable: false,
        });
      }
      const delayMs = backoffDelay(policy, attempt, thrown.retryAfterSeconds);
      onRetry?.({ attempt, delayMs, error: thrown });
      await clock.sleep(delayMs, signal);
    }
  }
}

/**
 * The log of a failure that a loop meets on every round while it lasts (a poll while the store is
 * unreachable): written once when it starts, then at most once per `everyMs` while it goes on (with
 * how many rounds failed since the last line), and once (a warning) when the loop works again. An outage of
 * minutes writes a few lines, not one per round; a failure with another error is written at once.
 */
import type { Clock, Logger } from '../core/ports.js';

export interface RepeatedFailureLogOptions {
  logger: Logger;
  clock: Clock;
  /** What failed, as the error line says it: `could not take queued work`. */
  failed: string;
  /** What the line says when it works again: `taking queued work again`. */
  recovered: string;
  /** Least time between two lines of one failure, ms (default: 60,000). */
  everyMs?: number;
}

interface Failing {
  error: string;
  since: number;
  /** Rounds failed in all, and since the last line written. */
  total: number;
  unwritten: number;
  writtenAt: number;
}

export class RepeatedFailureLog {
  private failing: Failing | null = null;

  constructor(private readonly options: RepeatedFailureLogOptions) {}

  /** A round failed with `error`. */
  failure(error: string): void {
    const { logger, clock, failed, everyMs = 60_000 } = this.options;
    const now = clock.now();
    const current = this.failing;
    if (current && current.error === error && now - current.writtenAt < everyMs) {
      current.total++;
      current.unwritten++;
      return;
    }
    if (!current) {
      this.failing = { error, since: now, total: 1, unwritten: 0, writtenAt: now };
      logger.error(failed, { error });
      return;
    }
    current.total++;
    logger.error(failed, { error, failingSince: new Date(current.since).toISOString(), failures: current.total, sinceLastLine: current.unwritten + 1 });
    Object.assign(current, { error, unwritten: 0, writtenAt: now });
  }

  /** A round worked: a failure that was going on is over. */
  success(): void {
    const current = this.failing;
    if (!current) return;
    this.failing = null;
    const { logger, clock, recovered } = this.options;
    // A warning, not info: it closes the errors an operator saw, at a level shown by default.
    logger.warn(recovered, { failingSince: new Date(current.since).toISOString(), failures: current.total, forMs: Math.round(clock.now() - current.since) });
  }
}

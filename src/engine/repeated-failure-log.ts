/**
 * The log of a failure that a loop meets on every round while it lasts (a poll while the store is
 * unreachable): written once when it starts, then at most once per `everyMs` while it goes on (with
 * how many rounds failed since the last line), and once (a warning) when the loop works again. An outage of
 * minutes writes a few lines, not one per round; a failure with another error is written at once.
 * Refused webhook deliveries are logged the same way, one log per reason, so a flood of forged
 * calls writes a line a minute.
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
  /** The level of the failure's lines (default: error); the line when it works again is a warning either way. */
  level?: 'error' | 'warn';
  /** The field the error goes in (default: `error`). */
  errorField?: string;
  /** Fields of every line, saying what fails (default: none). */
  fields?: Record<string, unknown>;
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

  /** A round failed with `error`; `details` go into the line when this failure's is written (e.g. which delivery it was). */
  failure(error: string, details: Record<string, unknown> = {}): void {
    const { logger, clock, failed, everyMs = 60_000, level = 'error', errorField = 'error', fields = {} } = this.options;
    const now = clock.now();
    const current = this.failing;
    if (current && current.error === error && now - current.writtenAt < everyMs) {
      current.total++;
      current.unwritten++;
      return;
    }
    const write = (extra: Record<string, unknown>) => logger[level](failed, { ...fields, ...details, [errorField]: error, ...extra });
    if (!current) {
      this.failing = { error, since: now, total: 1, unwritten: 0, writtenAt: now };
      write({});
      return;
    }
    current.total++;
    write({ failingSince: new Date(current.since).toISOString(), failures: current.total, sinceLastLine: current.unwritten + 1 });
    Object.assign(current, { error, unwritten: 0, writtenAt: now });
  }

  /** A round worked: a failure that was going on is over. */
  success(): void {
    const current = this.failing;
    if (!current) return;
    this.failing = null;
    const { logger, clock, recovered } = this.options;
    // A warning, not info: it closes the errors an operator saw, at a level shown by default.
    logger.warn(recovered, {
      ...this.options.fields,
      failingSince: new Date(current.since).toISOString(),
      failures: current.total,
      forMs: Math.round(clock.now() - current.since),
    });
  }
}

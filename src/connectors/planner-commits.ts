/**
 * A warehouse planner's commits of delivered rows (WarehousePlanner.commit), one at a time, in the
 * order asked for. A commit asked for while one is under way joins the next: only the latest
 * watermark (and the run's delivered counts with it) counts, and the rejected keys of all of them go
 * with it (one transaction, not many).
 */
import type { Value, WarehousePlanPart } from '../core/ports.js';
import type { OperationCounts } from '../core/runs.js';

type Through = { op: WarehousePlanPart['op']; key: Value[] };

export class PlannerCommits {
  private chain: Promise<void> = Promise.resolve();
  /** The next commit, while it waits for the one under way. */
  private waiting: { through: Through; rejected: Value[][]; delivered: OperationCounts; done: Promise<void> } | null = null;

  constructor(private readonly commitNow: (through: Through, rejected: Value[][], delivered: OperationCounts) => Promise<void>) {}

  commit(through: Through, rejected: Value[][], delivered: OperationCounts): Promise<void> {
    if (this.waiting) {
      this.waiting.through = through;
      this.waiting.rejected.push(...rejected);
      this.waiting.delivered = delivered;
      return this.waiting.done;
    }
    const waiting = { through, rejected: [...rejected], delivered, done: Promise.resolve() };
    this.waiting = waiting;
    waiting.done = this.chain.then(() => {
      this.waiting = null;
      return this.commitNow(waiting.through, waiting.rejected, waiting.delivered);
    });
    this.chain = waiting.done.catch(() => undefined);
    return waiting.done;
  }

  /** Resolves when every commit asked for so far has ended (each one's failure went to its caller). */
  settled(): Promise<void> {
    return this.chain;
  }
}

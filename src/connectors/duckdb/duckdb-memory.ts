/**
 * How much memory DuckDB may use for one source file (one DuckDB instance), shared by the source's
 * reads and the planner in the warehouse.
 *
 * Why a limit at all: DuckDB's default `memory_limit` is most of the machine's memory, and its
 * buffer pool keeps every block a scan read until the limit is reached. Reading a 10-million-row
 * table kept about 140 MB of it, so the process grew with the model. Under a limit, blocks are
 * evicted, and sorts, joins and aggregates spill to temporary files instead.
 *
 * Why it grows: some operators do not spill far enough (a hash join over 10 million rows ran out
 * of 256 MB), and a query that fails for lack of memory is better run again with more than not at
 * all. So the limit starts low and is raised, step by step, when a statement runs out of memory
 * before it returned anything; the planner also starts its comparison at the step its planner
 * table's size calls for (see `stepForRows`), rather than fail its way up.
 */
import type { DuckDBConnection } from '@duckdb/node-api';

/**
 * The limits tried, in order. 64 MB is the lowest with which `ORDER BY` over 1 and 10 million rows
 * still spills and completes (32 MB ran out at 1 million rows, with 2 threads).
 */
export const MEMORY_STEPS = ['64MB', '256MB', '512MB', '1GB', '4GB'] as const;

/**
 * Bytes of limit the planner's comparison needs per row of its planner table: its hash join over
 * 1M rows of 7 columns completed in 64 MB (spilling), over 10M rows it ran out of 256 MB but not of
 * 512 MB. An underestimate costs a failed attempt; an overestimate, memory the join need not take.
 */
const COMPARISON_BYTES_PER_ROW = 48;
const STEP_BYTES = [64 << 20, 256 << 20, 512 << 20, 1 << 30, 4 * (1 << 30)];

/** The instance's current limit, raised on demand; never lowered while the instance is open. */
export class DuckDbMemory {
  private step = 0;
  /** Statements that raise the limit wait for each other (reads and the planner share it). */
  private raising: Promise<unknown> = Promise.resolve();

  /** The setting the instance is opened with. */
  get initial(): string {
    return MEMORY_STEPS[0];
  }

  get limit(): string {
    return MEMORY_STEPS[this.step] as string;
  }

  /** Raises the limit one step (on `connection`, for the whole instance); false when it is at the last step already. */
  raise(connection: DuckDBConnection): Promise<boolean> {
    return this.raiseTo(connection, this.step + 1);
  }

  /** Raises the limit to the step a comparison over `rows` rows needs, if it is below it. */
  async atLeastFor(connection: DuckDBConnection, rows: number): Promise<void> {
    await this.raiseTo(connection, stepForRows(rows));
  }

  private raiseTo(connection: DuckDBConnection, step: number): Promise<boolean> {
    const next = this.raising.then(async () => {
      const wanted = Math.min(step, MEMORY_STEPS.length - 1);
      if (wanted <= this.step) return step <= this.step;
      await connection.run(`SET memory_limit = '${MEMORY_STEPS[wanted]}'`);
      this.step = wanted;
      return true;
    });
    this.raising = next.catch(() => undefined);
    return next;
  }
}

/** The step whose limit a comparison over `rows` rows needs. */
export function stepForRows(rows: number): number {
  const bytes = rows * COMPARISON_BYTES_PER_ROW;
  const step = STEP_BYTES.findIndex((limit) => limit >= bytes);
  return step < 0 ? STEP_BYTES.length - 1 : step;
}

/** Whether DuckDB failed for lack of memory under its limit. */
export function isOutOfMemory(thrown: unknown): boolean {
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return message.includes('Out of Memory Error');
}

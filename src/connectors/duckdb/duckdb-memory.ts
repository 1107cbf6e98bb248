/**
 * How much memory DuckDB may use when the planner in the warehouse compares in the file (one DuckDB
 * instance, shared by the planner and the reads of its parts).
 *
 * It starts at 256 MB (DuckDB's default is most of the machine's memory) and is raised, step by
 * step, when a statement runs out of memory before it returned anything: a hash join over 10
 * million rows ran out of 256 MB but not of 512 MB, so the 10M incremental run used to fail. The
 * planner also starts its comparison at the step its planner table's size calls for (see
 * `stepForRows`), rather than fail its way up.
 *
 * Why not lower, as tried: at 64 MB a streamed read (`fetchChunk`) of a 10M-row table that had
 * been updated ended after 6,846,873 of its 9,999,750 rows, without an error (the bindings do not
 * report an error that ends a stream): the source now refuses such a read (DuckDbSource's
 * checkComplete), but a run that fails is no better than one that runs. Streamed reads of models
 * (read-only files) therefore keep DuckDB's default limit, and the planner's instance does not go
 * below what it used before.
 */
import type { DuckDBConnection } from '@duckdb/node-api';

/** The limits tried, in order. */
export const MEMORY_STEPS = ['256MB', '512MB', '1GB', '4GB'] as const;

/**
 * Bytes of limit the planner's comparison needs per row of its planner table: its hash join over
 * 1M rows of 7 columns completed in 64 MB (spilling), over 10M rows it ran out of 256 MB but not of
 * 512 MB. An underestimate costs a failed attempt; an overestimate, memory the join need not take.
 */
const COMPARISON_BYTES_PER_ROW = 48;
const STEP_BYTES = [256 << 20, 512 << 20, 1 << 30, 4 * (1 << 30)];

/** The instance's current limit, raised on demand; never lowered while the instance is open. */
export class DuckDbMemory {
  private step = 0;
  /** Statements that raise the limit wait for each other (reads and the planner share the instance). */
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

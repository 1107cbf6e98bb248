/**
 * The fence of a run's writes in the PostgreSQL store (RunFence): once a run's lease expired and
 * another worker took it over as attempt + 1, or a user cancelled it, the writes of the attempt
 * before are refused. The run
 * queue's rejected rows and the snapshot role's commits (snapshot, cursor, record ids) go through
 * `write`, which checks the fence in the write's own transaction, so a refused write writes nothing.
 */
import type { LockstepError } from '../../core/errors.js';
import type { RunFence, RunReach } from '../../core/ports.js';
import { isTerminalSyncRunStatus, type OperationCounts, type SyncRunStatus } from '../../core/runs.js';
import type { SyncRunRow } from '../rows.js';
import { leaseLostError } from '../run-rules.js';
import type { PostgresDatabase, Queryable } from './postgres-database.js';
import { TERMINAL_SYNC } from './postgres-statements.js';

/** One statement of a write: its SQL and parameters. */
export type Statement = [sql: string, params: unknown[]];

export class PostgresRunFence {
  private readonly syncRuns: string;

  constructor(private readonly db: PostgresDatabase) {
    this.syncRuns = `${db.schema}.sync_runs`;
  }

  /**
   * Statements of one write: one runs alone, several in a transaction. A fenced write is a
   * transaction that checks the fence first (see check), so nothing is written once refused.
   */
  async write(statements: Statement[], fence?: RunFence): Promise<void> {
    if (statements.length === 1 && fence === undefined) {
      const [sql, params] = statements[0] as Statement;
      await this.db.query(sql, params);
      return;
    }
    await this.db.transaction(async (q) => {
      if (fence !== undefined) await this.check(q, fence);
      for (const [sql, params] of statements) await q.query(sql, params);
    });
  }

  /**
   * A fenced write that also adds `delivered` to the run's delivered counts. The count's update is
   * the fence, and comes last: the run's row is locked only from there to the commit, so writes of
   * one attempt wait for each other only that long (a share lock first, as `write` takes, would
   * deadlock two of them), and once another worker took the run over it updates nothing and the
   * whole write is rolled back.
   */
  async writeCounted(statements: Statement[], fence: RunFence, delivered: OperationCounts, reach?: RunReach): Promise<void> {
    await this.db.transaction(async (q) => {
      for (const [sql, params] of statements) await q.query(sql, params);
      // With the run's reach, its rows read and planned are raised to it: never fewer than delivered.
      const reached = reach
        ? `, query_size = GREATEST(query_size, $6), planned_added = GREATEST(planned_added, $7),
           planned_changed = GREATEST(planned_changed, $8), planned_removed = GREATEST(planned_removed, $9),
           completion_ratio = GREATEST(completion_ratio, $10)`
        : '';
      const counted = await q.query(
        `UPDATE ${this.syncRuns} SET successful_added = successful_added + $3, successful_changed = successful_changed + $4,
                successful_removed = successful_removed + $5${reached}
          WHERE id = $1 AND attempt = $2 AND status NOT IN ${TERMINAL_SYNC} RETURNING id`,
        [
          fence.runId,
          fence.attempt,
          delivered.addedCount,
          delivered.changedCount,
          delivered.removedCount,
          ...(reach ? [reach.querySize, reach.planned.addedCount, reach.planned.changedCount, reach.planned.removedCount, reach.completionRatio ?? 0] : []),
        ],
      );
      if (counted.rows.length === 0) {
        const current = Number.isSafeInteger(fence.runId) ? ((await q.query<SyncRunRow>(`SELECT * FROM ${this.syncRuns} WHERE id = $1`, [fence.runId])).rows[0] ?? null) : null;
        throw runLeaseLost(fence.runId, fence.attempt, current);
      }
    });
  }

  /**
   * Refuses a write of the fenced attempt (a `lease_lost` error) unless the run is still in it and goes on. The
   * run's row is share-locked until the write commits: a takeover waits for the write, or the
   * write, coming after a takeover, sees the new attempt; writes of one attempt do not wait for
   * each other.
   */
  async check(q: Queryable, fence: RunFence): Promise<void> {
    // An id PostgreSQL's bigint cannot hold (a fraction, a huge number) is no run's.
    const current = Number.isSafeInteger(fence.runId)
      ? ((await q.query<SyncRunRow>(`SELECT * FROM ${this.syncRuns} WHERE id = $1 FOR SHARE`, [fence.runId])).rows[0] ?? null)
      : null;
    if (!fenceHolds(current, fence.attempt)) throw runLeaseLost(fence.runId, fence.attempt, current);
  }
}

/** Whether a write of `attempt` may go on the run's row as it is now: the run exists, is in that attempt and has not ended. */
export function fenceHolds(current: SyncRunRow | null, attempt: number): current is SyncRunRow {
  return current !== null && Number(current.attempt) === attempt && !isTerminalSyncRunStatus(current.status as SyncRunStatus);
}

/** The refusal of a write of `attempt` by the run's row as it is now (null: it does not exist). */
export function runLeaseLost(runId: number, attempt: number, current: SyncRunRow | null): LockstepError {
  const ended = current && isTerminalSyncRunStatus(current.status as SyncRunStatus) ? current.status : null;
  return leaseLostError(runId, attempt, current ? Number(current.attempt) : null, current?.worker_id ?? null, ended);
}

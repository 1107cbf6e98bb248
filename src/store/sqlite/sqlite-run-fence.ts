/**
 * The fence of a run's writes in the embedded store (RunFence): once a run's lease expired and
 * another worker took it over as attempt + 1, or a user cancelled it, the writes of the attempt
 * before are refused. The run
 * queue (status updates, rejected rows) and the snapshot role (snapshot, cursor and record-id
 * commits) check it inside their own write transaction, so a refused write writes nothing.
 */
import type { LockstepError } from '../../core/errors.js';
import type { RunFence } from '../../core/ports.js';
import { isTerminalSyncRunStatus, type SyncRunStatus } from '../../core/runs.js';
import type { SyncRunRow } from '../rows.js';
import { leaseLostError } from '../run-rules.js';
import type { Statements } from './sqlite-statements.js';

export class SqliteRunFence {
  constructor(
    /** The store's prepared statements: a run's row, and its attempt and worker. */
    private readonly statements: Pick<Statements, 'syncRun' | 'runAttempt'>,
  ) {}

  /**
   * Refuses a fenced write unless the run is still in the fence's attempt, and has not ended; returns the run's row
   * as it is (null without a fence). The caller holds the write transaction.
   */
  check(fence: RunFence | undefined): SyncRunRow | null {
    if (fence === undefined) return null;
    const row = this.statements.syncRun.get(fence.runId) as SyncRunRow | undefined;
    if (!row || Number(row.attempt) !== fence.attempt || isTerminalSyncRunStatus(row.status as SyncRunStatus)) throw this.error(fence);
    return row;
  }

  /** The refusal of a write of `fence`, naming the attempt and worker that hold the run now. */
  error(fence: RunFence): LockstepError {
    const row = this.statements.runAttempt.get(fence.runId) as { attempt: number; worker_id: string | null; status: SyncRunStatus } | undefined;
    const ended = row && isTerminalSyncRunStatus(row.status) ? row.status : null;
    return leaseLostError(fence.runId, fence.attempt, row ? Number(row.attempt) : null, row?.worker_id ?? null, ended);
  }
}

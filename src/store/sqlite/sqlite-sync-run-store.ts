/**
 * The run queue and run history of the embedded store (SyncRunStore): sync runs queued, claimed
 * under a lease, updated and cancelled, and the rows a run rejected. A member run follows its sync
 * run in the same transaction (../member-state.ts); a run's end is recorded in the outbox of
 * finished runs in the transaction that ends it. It shares the SqliteStore's connection and
 * transactions; the sequence-run role and workspace deletes use its in-transaction helpers.
 */
import type { Clock, LeaseRequest, NewSyncRun, RunFence, RunLease, SyncRunListQuery, SyncRunPatch, SyncRunStore } from '../../core/ports.js';
import { ErrorCode, LockstepError, NotFoundError } from '../../core/errors.js';
import { ACTIVE_SYNC_RUN_STATUSES, CANCELLED_INTERRUPTED_RUN_ERROR, isTerminalSyncRunStatus, type RejectedRow, type SyncRun, type SyncRunOptions, type SyncRunStatus, type Trigger } from '../../core/runs.js';
import { queuedRunJoinRefusal } from '../../core/sync-rules.js';
import { memberTransition } from '../member-state.js';
import { toLease, toRejectedRow, toSyncRun, type LeaseRow, type RejectedRowRow, type SyncRunRow } from '../rows.js';
import { nothingToCancelError, statusFilterAt, syncRunFinishedError } from '../run-rules.js';
import { CANCEL_REASONS, FIRED_TRIGGER_TYPES } from '../workspace-changes.js';
import type { SqliteStatement, SqliteTransactions, SqliteValue } from './sqlite-database.js';
import type { SqliteRunFence } from './sqlite-run-fence.js';
import { timeFilters, type Statements } from './sqlite-statements.js';

export interface SqliteSyncRunStoreOptions {
  /** The store's prepared statements. */
  statements: Statements;
  transactions: SqliteTransactions;
  /** Refuses the writes of a run's attempt once another worker took the run over. */
  fence: SqliteRunFence;
  /** A statement whose SQL depends on the arguments (list filters), prepared once per shape. */
  statement: (sql: string) => SqliteStatement;
  /** Gives the time of a cancel request the caller passes no `now` to. */
  clock: Clock;
}

export class SqliteSyncRunStore implements SyncRunStore {
  private readonly statements: Statements;
  private readonly transactions: SqliteTransactions;
  private readonly fence: SqliteRunFence;
  private readonly statement: (sql: string) => SqliteStatement;
  private readonly clock: Clock;

  constructor(options: SqliteSyncRunStoreOptions) {
    this.statements = options.statements;
    this.transactions = options.transactions;
    this.fence = options.fence;
    this.statement = options.statement;
    this.clock = options.clock;
  }

  async enqueueSyncRun(input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }> {
    return this.transactions.write(() => this.queue(input, now));
  }

  async claimSyncRun(id: number, now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    return this.transactions.write(() => {
      const claimed = this.claim(id, now, lease);
      if (!claimed && !this.statements.syncRun.get(id)) throw new NotFoundError(`sync run ${id} does not exist`);
      return claimed;
    });
  }

  async claimNextSyncRun(now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    // Looked for without the write lock first: a worker polls every second, mostly finding nothing,
    // and taking the lock would wait (blocking the process) for a snapshot commit of a run in progress.
    if (this.transactions.read(() => this.statements.anyClaimableSyncRun.get({ now })) === undefined) return null;
    return this.transactions.write(() => {
      const row = this.statements.claimNextSyncRun.get({ now, workerId: lease.workerId, until: now + lease.leaseMs }) as SyncRunRow | undefined;
      if (!row) return null;
      this.follow(row, now);
      return toSyncRun(row);
    });
  }

  async renewLeases(runIds: number[], now: number, lease: LeaseRequest): Promise<number[]> {
    if (runIds.length === 0) return [];
    return this.transactions.write(() =>
      (this.statements.renewLeases.all({ ids: JSON.stringify(runIds), workerId: lease.workerId, until: now + lease.leaseMs }) as Array<{ id: number }>).map(
        (r) => Number(r.id),
      ),
    );
  }

  async releaseLeases(workerId: string, now: number): Promise<number> {
    return this.transactions.write(() => this.statements.releaseLeases.run({ workerId, now }).changes);
  }

  async listLeases(): Promise<RunLease[]> {
    return this.transactions.read(() => (this.statements.leases.all() as LeaseRow[]).map(toLease));
  }

  async updateSyncRun(id: number, patch: SyncRunPatch, now: number, attempt?: number): Promise<SyncRun> {
    return this.transactions.write(() => {
      const before = attempt === undefined ? ((this.statements.syncRun.get(id) as SyncRunRow | undefined) ?? null) : this.fence.check({ runId: id, attempt });
      const status = patch.status ?? null;
      const row = this.statements.updateSyncRun.get({
        id,
        now,
        status,
        terminal: status !== null && isTerminalSyncRunStatus(status) ? 1 : 0,
        querySize: patch.querySize ?? null,
        plannedAdded: patch.plannedRows?.addedCount ?? null,
        plannedChanged: patch.plannedRows?.changedCount ?? null,
        plannedRemoved: patch.plannedRows?.removedCount ?? null,
        successfulAdded: patch.successfulRows?.addedCount ?? null,
        successfulChanged: patch.successfulRows?.changedCount ?? null,
        successfulRemoved: patch.successfulRows?.removedCount ?? null,
        failedAdded: patch.failedRows?.addedCount ?? null,
        failedChanged: patch.failedRows?.changedCount ?? null,
        failedRemoved: patch.failedRows?.removedCount ?? null,
        completionRatio: patch.completionRatio ?? null,
        apiUsage: patch.apiUsage ? JSON.stringify(patch.apiUsage) : null,
        phaseMs: patch.phaseMs ? JSON.stringify(patch.phaseMs) : null,
        comparison: patch.comparison ? JSON.stringify(patch.comparison) : null,
        setError: patch.error !== undefined ? 1 : 0,
        error: patch.error ?? null,
      }) as SyncRunRow | undefined;
      if (!row) {
        const current = this.statements.syncRun.get(id) as SyncRunRow | undefined;
        if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
        throw syncRunFinishedError(id, current.status, status);
      }
      if (status !== null) this.follow(row, now);
      if (status !== null && isTerminalSyncRunStatus(status) && before !== null && !isTerminalSyncRunStatus(before.status as SyncRunStatus)) {
        this.statements.recordFinishedRun.run('sync', String(id), now);
      }
      return toSyncRun(row);
    });
  }

  async getSyncRun(id: number): Promise<SyncRun | null> {
    return this.transactions.read(() => {
      const row = this.statements.syncRun.get(id) as SyncRunRow | undefined;
      return row ? toSyncRun(row) : null;
    });
  }

  async listSyncRuns(query: SyncRunListQuery): Promise<SyncRun[]> {
    return this.transactions.read(() => {
      const where: string[] = [];
      const params: SqliteValue[] = [];
      if (query.syncId !== undefined) {
        where.push('sync_id = ?');
        params.push(query.syncId);
      }
      if (query.syncIds !== undefined) {
        where.push('sync_id IN (SELECT value FROM json_each(?))');
        params.push(JSON.stringify(query.syncIds));
      }
      if (query.runId !== undefined) {
        where.push('id = ?');
        params.push(query.runId);
      }
      if (query.statuses !== undefined && query.statusesAt !== undefined) {
        // As shown at that time: an active run whose lease has ended is `interrupted` (syncRunStatusAt).
        const { recorded, held, lapsed } = statusFilterAt(query.statuses);
        const marks = (list: readonly string[]) => list.map(() => '?').join(', ');
        const any = [
          ...(recorded.length > 0 ? [`status IN (${marks(recorded)})`] : []),
          ...(held.length > 0 ? [`(status IN (${marks(held)}) AND lease_expires_at > ?)`] : []),
          ...(lapsed ? [`(status IN (${marks(ACTIVE_SYNC_RUN_STATUSES)}) AND (lease_expires_at IS NULL OR lease_expires_at <= ?))`] : []),
        ];
        where.push(any.length > 0 ? `(${any.join(' OR ')})` : '0');
        params.push(...recorded);
        if (held.length > 0) params.push(...held, query.statusesAt);
        if (lapsed) params.push(...ACTIVE_SYNC_RUN_STATUSES, query.statusesAt);
      } else if (query.statuses !== undefined) {
        where.push(query.statuses.length > 0 ? `status IN (${query.statuses.map(() => '?').join(', ')})` : '0');
        params.push(...query.statuses);
      }
      timeFilters(query, where, params);
      const sql =
        `SELECT * FROM sync_runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
        `ORDER BY id ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ? OFFSET ?`;
      const rows = this.statement(sql).all(...params, query.limit, query.offset) as SyncRunRow[];
      return rows.map(toSyncRun);
    });
  }

  async latestSyncRuns(perSync: number): Promise<SyncRun[]> {
    return this.transactions.read(() => {
      const sql =
        'SELECT r.* FROM syncs AS s JOIN sync_runs AS r ON r.id IN (SELECT id FROM sync_runs WHERE sync_id = s.id ORDER BY id DESC LIMIT ?) ' +
        'WHERE s.deleted_at IS NULL ORDER BY r.sync_id, r.id DESC';
      return (this.statement(sql).all(perSync) as SyncRunRow[]).map(toSyncRun);
    });
  }

  async listQueuedSyncRuns(): Promise<SyncRun[]> {
    return this.transactions.read(() => (this.statements.queuedSyncRuns.all() as SyncRunRow[]).map(toSyncRun));
  }

  async requestSyncRunCancel(id: number, now: number = this.clock.now()): Promise<SyncRun> {
    return this.transactions.write(() => this.cancel(id, now));
  }

  async addRejectedRows(rows: RejectedRow[], fence?: RunFence): Promise<void> {
    if (rows.length === 0) return;
    this.transactions.write(() => {
      this.fence.check(fence);
      for (const row of rows) this.statements.insertRejectedRow.run(row.syncRunId, row.key, row.op, row.reason);
    });
  }

  async clearRejectedRows(syncRunId: number, fence?: RunFence): Promise<void> {
    this.transactions.write(() => {
      this.fence.check(fence);
      this.statements.clearRejectedRows.run(syncRunId);
    });
  }

  async listRejectedRows(syncRunId: number, limit: number, offset: number): Promise<RejectedRow[]> {
    return this.transactions.read(() => (this.statements.rejectedRows.all(syncRunId, limit, offset) as RejectedRowRow[]).map(toRejectedRow));
  }

  // -------------------------------------------------------------------------------------------
  // In the caller's write transaction (the sequence-run role, fired runs, workspace deletes)

  /** Queues a standalone run, or joins the queued one; the caller holds a write transaction. */
  queue(input: NewSyncRun, now: number): { run: SyncRun; created: boolean } {
    if (!this.statements.liveSync.get(input.syncId)) throw new NotFoundError(`sync ${input.syncId} does not exist`);
    const queued = this.statements.queuedStandaloneRun.get(input.syncId) as SyncRunRow | undefined;
    if (queued) {
      const refusal = queuedRunJoinRefusal(toSyncRun(queued), input.options);
      if (refusal) throw new LockstepError(ErrorCode.Conflict, refusal);
      // The shared follow-up must honour every trigger's options: a full resync asked for is never lost.
      const merged = this.statements.mergeRunOptions.get({
        id: queued.id,
        fullResync: input.options.fullResync ? 1 : 0,
        resetCdc: input.options.resetCDC ? 1 : 0,
        allowMassDelete: input.options.allowMassDelete ? 1 : 0,
        fullCompare: input.options.fullCompare ? 1 : 0,
      }) as SyncRunRow;
      return { run: toSyncRun(merged), created: false };
    }
    const row = this.insert(input.syncId, input.trigger, input.options, null, null, now);
    return { run: toSyncRun(row), created: true };
  }

  /** Claims run `id` for `lease` at `now` when it is claimable (its member follows); null otherwise. */
  claim(id: number, now: number, lease: LeaseRequest): SyncRun | null {
    const row = this.statements.claimSyncRun.get({ id, now, workerId: lease.workerId, until: now + lease.leaseMs }) as SyncRunRow | undefined;
    if (!row) return null;
    this.follow(row, now);
    return toSyncRun(row);
  }

  /** Inserts a queued sync run (a member's when `sequenceRunId` and `memberKey` are given). */
  insert(
    syncId: number,
    trigger: Trigger,
    options: SyncRunOptions,
    sequenceRunId: string | null,
    memberKey: string | null,
    now: number,
  ): SyncRunRow {
    return this.statements.insertSyncRun.get({
      syncId,
      triggerType: trigger.type,
      triggerDetail: trigger.detail,
      fullResync: options.fullResync ? 1 : 0,
      resetCdc: options.resetCDC ? 1 : 0,
      allowMassDelete: options.allowMassDelete ? 1 : 0,
      fullCompare: options.fullCompare ? 1 : 0,
      sequenceRunId,
      memberKey,
      now,
    }) as SyncRunRow;
  }

  /** Moves a member run to follow its sync run's status (see member-state.ts). */
  follow(row: SyncRunRow, now: number): void {
    if (row.sequence_run_id === null || row.member_key === null) return;
    const next = memberTransition(row.status as SyncRunStatus);
    this.statements.followRun.run({
      status: next.status,
      started: next.started ? 1 : 0,
      finished: next.finished ? 1 : 0,
      now,
      sequenceRunId: row.sequence_run_id,
      memberKey: row.member_key,
      syncRunId: row.id,
    });
  }

  /**
   * A cancel request: a queued run ends at once, and so does an active one whose lease has ended
   * (no worker is at work on it; the one that held it finds its writes refused); an active one
   * held by a worker is flagged and stops at its next batch boundary.
   */
  cancel(id: number, now: number): SyncRun {
    const current = this.statements.syncRun.get(id) as SyncRunRow | undefined;
    if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
    const status = current.status as SyncRunStatus;
    if (isTerminalSyncRunStatus(status)) throw nothingToCancelError(`sync run ${id}`, status);
    if (status === 'queued') {
      const row = this.statements.cancelQueuedSyncRun.get(now, id) as SyncRunRow;
      this.follow(row, now);
      this.statements.recordFinishedRun.run('sync', String(id), now);
      return toSyncRun(row);
    }
    const ended = this.statements.cancelInterruptedSyncRun.get({ id, now, error: CANCELLED_INTERRUPTED_RUN_ERROR }) as SyncRunRow | undefined;
    if (ended) {
      this.follow(ended, now);
      this.statements.recordFinishedRun.run('sync', String(id), now);
      return toSyncRun(ended);
    }
    return toSyncRun(this.statements.flagSyncRunCancel.get(id) as SyncRunRow);
  }

  /**
   * Ends the run under way of sync `syncId`, whose snapshot a change drops in the caller's write
   * transaction: cancelled, so that the commits its worker still makes (of rows sent where the sync
   * delivered before) are refused by the fence instead of recorded as delivered where it delivers now.
   */
  endActiveOfSyncStartingOver(syncId: number, now: number): void {
    for (const row of this.statements.endActiveRunsOfSync.all({ syncId, now, error: CANCEL_REASONS.SyncStartedOver }) as SyncRunRow[]) {
      this.follow(row, now);
      this.statements.recordFinishedRun.run('sync', String(row.id), now);
    }
  }

  /** Cancels the queued standalone run of the disabled sync `syncId` that a schedule, webhook or upstream run queued. */
  cancelFiredQueuedOfDisabledSync(syncId: number, now: number): void {
    const cancelled = this.statements.cancelFiredQueuedRunsOfSync.all(now, CANCEL_REASONS.SyncDisabled, syncId, JSON.stringify(FIRED_TRIGGER_TYPES)) as Array<{ id: number }>;
    for (const run of cancelled) this.statements.recordFinishedRun.run('sync', String(run.id), now);
  }

  /** Cancels the standalone runs queued for the deleted sync `syncId`, recorded as finished runs: they can never run. */
  cancelQueuedOfDeletedSync(syncId: number, now: number): void {
    for (const run of this.statements.cancelQueuedRunsOfSync.all(now, CANCEL_REASONS.SyncDeleted, syncId) as Array<{ id: number }>) {
      this.statements.recordFinishedRun.run('sync', String(run.id), now);
    }
  }
}

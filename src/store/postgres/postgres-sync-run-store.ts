/**
 * The run queue and run history of the PostgreSQL store (SyncRunStore): sync runs queued, claimed
 * under a lease, updated and cancelled, and the rows a run rejected. Claims, enqueues and status
 * updates are single statements guarded by unique partial indexes (one queued standalone run and
 * one active run per sync), a member run follows its sync run in the same statement
 * (../member-state.ts), and a run's end is recorded in the outbox of finished runs in the
 * statement or transaction that ends it. The sequence-run role and workspace deletes use its
 * helpers inside their own transactions.
 */
import { ErrorCode, LockstepError, NotFoundError } from '../../core/errors.js';
import type { Clock, LeaseRequest, NewSyncRun, RunFence, RunLease, SyncRunListQuery, SyncRunPatch, SyncRunStore } from '../../core/ports.js';
import { CANCELLED_INTERRUPTED_RUN_ERROR, isTerminalSyncRunStatus, type RejectedRow, type SyncRun, type SyncRunStatus } from '../../core/runs.js';
import { queuedRunJoinRefusal } from '../../core/sync-rules.js';
import { memberTransition, type MemberTransition } from '../member-state.js';
import { toLease, toRejectedRow, type LeaseRow, type RejectedRowRow, type SyncRunRow } from '../rows.js';
import { nothingToCancelError, statusFilterAt, syncRunFinishedError } from '../run-rules.js';
import { CANCEL_REASONS, FIRED_TRIGGER_TYPES } from '../workspace-changes.js';
import { readText, storedText, type PostgresDatabase, type Queryable } from './postgres-database.js';
import { fenceHolds, runLeaseLost, type PostgresRunFence } from './postgres-run-fence.js';
import {
  ACTIVE,
  TERMINAL_SYNC,
  Params,
  isUniqueViolation,
  nullableStored,
  safeId,
  syncRun,
  timeFilters,
  type PostgresStatements,
  type SyncRunResult,
} from './postgres-statements.js';

/** Claims that lose a race for a sync's active slot try again this often before answering null. */
const CLAIM_ATTEMPTS = 3;

/** Ends a member run in the round trip that begins its sequence run's hand-off; null when it did not end it so. */
export type EndAndOpenAdvance = (id: number, patch: SyncRunPatch, now: number, attempt: number | undefined) => Promise<SyncRunRow | null>;

export interface PostgresSyncRunStoreOptions {
  db: PostgresDatabase;
  /** The SQL the store's roles share. */
  statements: PostgresStatements;
  /** Refuses the writes of a run's attempt once another worker took the run over. */
  fence: PostgresRunFence;
  /** Gives the time of a cancel request the caller passes no `now` to. */
  clock: Clock;
  /** A run's end, made with the first round trip of its sequence's hand-off (PostgresSequenceRunStore.endAndOpenAdvance). */
  endAndOpenAdvance: EndAndOpenAdvance;
}

export class PostgresSyncRunStore implements SyncRunStore {
  private readonly db: PostgresDatabase;
  private readonly statements: PostgresStatements;
  /** Table names, qualified with the quoted schema. */
  private readonly tables: PostgresStatements['tables'];
  private readonly fence: PostgresRunFence;
  private readonly clock: Clock;
  private readonly endAndOpenAdvance: EndAndOpenAdvance;

  constructor(options: PostgresSyncRunStoreOptions) {
    this.db = options.db;
    this.statements = options.statements;
    this.tables = options.statements.tables;
    this.fence = options.fence;
    this.clock = options.clock;
    this.endAndOpenAdvance = options.endAndOpenAdvance;
  }

  async enqueueSyncRun(input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }> {
    return this.queue(this.db.direct, input, now);
  }

  async claimSyncRun(id: number, now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    // One statement: a queued run moves to querying unless another run of its sync is active, or
    // an active run whose lease expired is taken over (same id, attempt + 1); its member follows.
    // Two claims racing for one run: the second, once the first committed, finds it claimed. Two
    // claims of different runs of one sync: the second hits the unique index of active runs and
    // must wait, as when it saw the first.
    const claimed = await this.claimIn(this.db.direct, id, now, lease, false);
    if (claimed) return claimed;
    if (!(await this.statements.syncRunRow(this.db.direct, id))) throw new NotFoundError(`sync run ${id} does not exist`);
    return null;
  }

  /**
   * The claim of one run by id on `q`; null when it is not claimable or a race with a claim of
   * another run of its sync hit the unique index. Inside a transaction (`savepoint`), that race
   * rolls back to a savepoint, so the transaction goes on.
   */
  private async claimIn(q: Queryable, id: number, now: number, lease: LeaseRequest, savepoint: boolean): Promise<SyncRun | null> {
    const p = new Params();
    const at = p.add(now, 'float8');
    const runId = p.add(safeId(id) ?? -1, 'bigint');
    if (savepoint) await q.query('SAVEPOINT lockstep_claim');
    try {
      const rows = await q.query<SyncRunRow>(
        `WITH claimed AS (
           UPDATE ${this.tables.syncRuns} AS r SET ${this.claimSetSql(lease, now, at, p)}
           WHERE r.id = ${runId} AND ${this.claimableSql('r', at)}
           RETURNING r.*
         ), member AS (${this.followSql('claimed', memberTransition('querying'), at, p)})
         SELECT * FROM claimed`,
        p.values,
      );
      if (savepoint) await q.query('RELEASE SAVEPOINT lockstep_claim');
      const row = rows.rows[0];
      return row ? syncRun(row) : null;
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      if (savepoint) await q.query('ROLLBACK TO SAVEPOINT lockstep_claim');
      return null;
    }
  }

  async claimNextSyncRun(now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    // One statement: the candidate is locked with SKIP LOCKED, so workers claiming at once each
    // take another run instead of waiting for one another; a candidate that changed meanwhile is
    // checked again once its lock is free. Two workers may still pick different queued runs of
    // one sync: the unique index of active runs refuses the second, which tries again and then
    // finds the sync busy.
    for (let attempt = 1; ; attempt++) {
      const p = new Params();
      const at = p.add(now, 'float8');
      try {
        const rows = await this.db.query<SyncRunRow>(
          `WITH expired AS (
             SELECT id FROM ${this.tables.syncRuns}
             WHERE status IN ${ACTIVE} AND (lease_expires_at IS NULL OR lease_expires_at <= ${at})
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
           ), queued AS (
             SELECT r.id FROM ${this.tables.syncRuns} AS r
             WHERE NOT EXISTS (SELECT 1 FROM expired) AND r.status = 'queued'
               AND NOT EXISTS (SELECT 1 FROM ${this.tables.syncRuns} AS other WHERE other.sync_id = r.sync_id AND other.status IN ${ACTIVE})
             ORDER BY r.id LIMIT 1 FOR UPDATE OF r SKIP LOCKED
           ), candidate AS (
             SELECT id FROM expired UNION ALL SELECT id FROM queued
           ), claimed AS (
             UPDATE ${this.tables.syncRuns} AS r SET ${this.claimSetSql(lease, now, at, p)}
             FROM candidate WHERE r.id = candidate.id
             RETURNING r.*
           ), member AS (${this.followSql('claimed', memberTransition('querying'), at, p)})
           SELECT * FROM claimed`,
          p.values,
        );
        return rows[0] ? syncRun(rows[0]) : null;
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        if (attempt >= CLAIM_ATTEMPTS) return null;
      }
    }
  }

  async renewLeases(runIds: number[], now: number, lease: LeaseRequest): Promise<number[]> {
    const ids = runIds.map(safeId).filter((id): id is number => id !== null);
    if (ids.length === 0) return [];
    const rows = await this.db.query<{ id: number }>(
      `UPDATE ${this.tables.syncRuns} SET lease_expires_at = $3
       WHERE id = ANY($1::bigint[]) AND worker_id = $2 AND status IN ${ACTIVE}
       RETURNING id`,
      [ids, lease.workerId, now + lease.leaseMs],
    );
    const held = new Set(rows.map((r) => Number(r.id)));
    return runIds.filter((id) => held.has(id));
  }

  async releaseLeases(workerId: string, now: number): Promise<number> {
    const p = new Params();
    const rows = await this.db.query(
      `WITH released AS (
         UPDATE ${this.tables.syncRuns} SET lease_expires_at = ${p.add(now, 'float8')}
         WHERE worker_id = ${p.add(workerId, 'text')} AND status IN ${ACTIVE} AND lease_expires_at > ${p.add(now, 'float8')}
         RETURNING id
       )
       SELECT id, ${this.statements.notifySql('work', p)} AS notified FROM released`,
      p.values,
    );
    return rows.length;
  }

  async listLeases(): Promise<RunLease[]> {
    const rows = await this.db.query<LeaseRow>(
      `SELECT id, sync_id, worker_id, attempt, lease_expires_at FROM ${this.tables.syncRuns} WHERE status IN ${ACTIVE} ORDER BY id`,
    );
    return rows.map(toLease);
  }

  async updateSyncRun(id: number, patch: SyncRunPatch, now: number, attempt?: number): Promise<SyncRun> {
    const status = patch.status ?? null;
    if (status === null || !isTerminalSyncRunStatus(status)) {
      // One statement: the attempt and the status rule are conditions of the UPDATE, checked again
      // on the newest row once a concurrent takeover or finish released it.
      const row = await this.patchSyncRun(this.db.direct, id, patch, now, attempt);
      if (row) return syncRun(row);
      const current = await this.statements.syncRunRow(this.db.direct, id);
      if (attempt !== undefined && !fenceHolds(current, attempt)) throw runLeaseLost(id, attempt, current);
      if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
      throw syncRunFinishedError(id, current.status, status);
    }
    // The run's end, in one statement while the run goes on: "not finished" and the attempt are
    // conditions of the UPDATE, checked again on the newest row once a concurrent writer released
    // it, so exactly one statement ends the run, and it records the end in the outbox of finished
    // runs and announces it too.
    const ended = (await this.endAndOpenAdvance(id, patch, now, attempt)) ?? (await this.patchSyncRun(this.db.direct, id, patch, now, attempt, { ending: true }));
    if (ended) return syncRun(ended);
    // Not ended by it (already finished, another attempt, no such run): the row, locked, says which.
    return this.db.transaction(async (q) => {
      const before = await this.statements.syncRunRow(q, id, 'FOR UPDATE');
      if (attempt !== undefined && !fenceHolds(before, attempt)) throw runLeaseLost(id, attempt, before);
      if (!before) throw new NotFoundError(`sync run ${id} does not exist`);
      const row = await this.patchSyncRun(q, id, patch, now, attempt);
      if (!row) throw syncRunFinishedError(id, before.status, status);
      if (!isTerminalSyncRunStatus(before.status as SyncRunStatus)) await this.statements.recordFinishedRuns(q, 'sync', [String(id)], now);
      return syncRun(row);
    });
  }

  async getSyncRun(id: number): Promise<SyncRun | null> {
    const row = await this.statements.syncRunRow(this.db.direct, id);
    return row ? syncRun(row) : null;
  }

  async listSyncRuns(query: SyncRunListQuery): Promise<SyncRun[]> {
    const p = new Params();
    const where: string[] = [];
    if (query.syncId !== undefined) where.push(`sync_id = ${p.add(safeId(query.syncId) ?? -1, 'bigint')}`);
    if (query.syncIds !== undefined) where.push(`sync_id = ANY(${p.add(query.syncIds.map((id) => safeId(id) ?? -1), 'bigint[]')})`);
    if (query.runId !== undefined) where.push(`id = ${p.add(safeId(query.runId) ?? -1, 'bigint')}`);
    if (query.statuses !== undefined && query.statusesAt !== undefined) {
      // As shown at that time: an active run whose lease has ended is `interrupted` (syncRunStatusAt).
      const { recorded, held, lapsed } = statusFilterAt(query.statuses);
      const at = p.add(query.statusesAt, 'float8');
      const any = [
        `status = ANY(${p.add(recorded, 'text[]')})`,
        `(status = ANY(${p.add(held, 'text[]')}) AND lease_expires_at > ${at})`,
        ...(lapsed ? [`(status IN ${ACTIVE} AND (lease_expires_at IS NULL OR lease_expires_at <= ${at}))`] : []),
      ];
      where.push(`(${any.join(' OR ')})`);
    } else if (query.statuses !== undefined) where.push(`status = ANY(${p.add(query.statuses, 'text[]')})`);
    timeFilters(query, where, p);
    const sql =
      `SELECT * FROM ${this.tables.syncRuns} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY id ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${p.add(query.limit, 'bigint')} OFFSET ${p.add(query.offset, 'bigint')}`;
    return (await this.db.query<SyncRunRow>(sql, p.values)).map(syncRun);
  }

  async latestSyncRuns(perSync: number): Promise<SyncRun[]> {
    const sql =
      `SELECT r.* FROM ${this.tables.syncs} AS s CROSS JOIN LATERAL ` +
      `(SELECT * FROM ${this.tables.syncRuns} WHERE sync_id = s.id ORDER BY id DESC LIMIT $1) AS r ` +
      'WHERE s.deleted_at IS NULL ORDER BY r.sync_id, r.id DESC';
    return (await this.db.query<SyncRunRow>(sql, [perSync])).map(syncRun);
  }

  async listQueuedSyncRuns(): Promise<SyncRun[]> {
    return (await this.db.query<SyncRunRow>(`SELECT * FROM ${this.tables.syncRuns} WHERE status = 'queued' ORDER BY id`)).map(syncRun);
  }

  async requestSyncRunCancel(id: number, now: number = this.clock.now()): Promise<SyncRun> {
    return this.db.transaction((q) => this.cancel(q, id, now));
  }

  async addRejectedRows(rows: RejectedRow[], fence?: RunFence): Promise<void> {
    if (rows.length === 0) return;
    // One statement; ids follow the order given, which is the order they are listed in.
    await this.fence.write(
      [
        [
          `INSERT INTO ${this.tables.rejectedRows} (sync_run_id, key, op, reason)
           SELECT u.run, u.key, u.op, u.reason FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(run, key, op, reason, n)
           ORDER BY u.n`,
          [rows.map((r) => safeId(r.syncRunId) ?? -1), rows.map((r) => storedText(r.key)), rows.map((r) => r.op), rows.map((r) => storedText(r.reason))],
        ],
      ],
      fence,
    );
  }

  async clearRejectedRows(syncRunId: number, fence?: RunFence): Promise<void> {
    await this.fence.write([[`DELETE FROM ${this.tables.rejectedRows} WHERE sync_run_id = $1`, [safeId(syncRunId) ?? -1]]], fence);
  }

  async listRejectedRows(syncRunId: number, limit: number, offset: number): Promise<RejectedRow[]> {
    const rows = await this.db.query<RejectedRowRow>(
      `SELECT * FROM ${this.tables.rejectedRows} WHERE sync_run_id = $1 ORDER BY id LIMIT $2 OFFSET $3`,
      [safeId(syncRunId) ?? -1, limit, offset],
    );
    return rows.map((row) => toRejectedRow({ ...row, key: readText(row.key), reason: readText(row.reason) }));
  }

  // -------------------------------------------------------------------------------------------
  // In the caller's transaction (the sequence-run role, fired runs, workspace deletes)

  /** Queues a standalone run, or joins the queued one, through `q` (a transaction's or the pool's). */
  async queue(q: Queryable, input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }> {
    // One statement: a trigger while a standalone run is queued joins it (the unique index of
    // queued standalone runs is the arbiter, so two processes triggering at once share one run),
    // and the shared follow-up honours every trigger's options: a full resync asked for is never
    // lost. The sync row is share-locked, so a concurrent delete of the sync either comes first
    // (nothing is queued) or waits until the run is queued (and then cancels it). A trigger whose
    // options contradict the queued run's joins nothing (queuedRunJoinRefusal says why).
    const p = new Params();
    const { rows } = await q.query<SyncRunResult>(
      `WITH sync AS (SELECT id FROM ${this.tables.syncs} WHERE id = ${p.add(safeId(input.syncId) ?? -1, 'bigint')} AND deleted_at IS NULL FOR SHARE),
       queued AS (
         INSERT INTO ${this.tables.syncRuns} AS r (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, allow_mass_delete, full_compare, created_at)
         SELECT sync.id, 'queued', ${p.add(input.trigger.type, 'text')}, ${p.add(nullableStored(input.trigger.detail), 'text')},
                ${p.add(input.options.fullResync, 'boolean')}, ${p.add(input.options.resetCDC, 'boolean')},
                ${p.add(input.options.allowMassDelete === true, 'boolean')}, ${p.add(input.options.fullCompare === true, 'boolean')}, ${p.add(now, 'float8')}
         FROM sync
         ON CONFLICT (sync_id) WHERE status = 'queued' AND sequence_run_id IS NULL
         DO UPDATE SET full_resync = r.full_resync OR excluded.full_resync, reset_cdc = r.reset_cdc OR excluded.reset_cdc,
                       allow_mass_delete = r.allow_mass_delete OR excluded.allow_mass_delete,
                       full_compare = r.full_compare OR excluded.full_compare
         WHERE NOT ((r.full_resync AND excluded.reset_cdc) OR (r.reset_cdc AND excluded.full_resync))
         RETURNING r.*, (r.xmax = 0) AS created
       )
       SELECT queued.*, ${this.statements.notifySql('work', p)} AS notified FROM queued`,
      p.values,
    );
    const row = rows[0];
    if (row) return { run: syncRun(row), created: row.created === true };
    const id = safeId(input.syncId) ?? -1;
    const [queued] = (await q.query<SyncRunRow>(`SELECT * FROM ${this.tables.syncRuns} WHERE sync_id = $1 AND status = 'queued' AND sequence_run_id IS NULL`, [id])).rows;
    const refusal = queued ? queuedRunJoinRefusal(syncRun(queued), input.options) : null;
    if (refusal !== null) throw new LockstepError(ErrorCode.Conflict, refusal);
    const live = await q.query(`SELECT 1 FROM ${this.tables.syncs} WHERE id = $1 AND deleted_at IS NULL`, [id]);
    if (live.rows.length === 0) throw new NotFoundError(`sync ${input.syncId} does not exist`);
    // The queued run that refused the trigger started meanwhile: the trigger queues the next one.
    return this.queue(q, input, now);
  }

  /**
   * A cancel request: a queued run ends at once, and so does an active one whose lease has ended
   * (the worker that held it finds its writes refused); an active one held by a worker is flagged,
   * and that worker is told (topic `cancel`) so it stops the run at once.
   */
  async cancel(q: Queryable, id: number, now: number): Promise<SyncRun> {
    const current = await this.statements.syncRunRow(q, id, 'FOR UPDATE');
    if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
    const status = current.status as SyncRunStatus;
    if (isTerminalSyncRunStatus(status)) throw nothingToCancelError(`sync run ${id}`, status);
    if (status === 'queued') return this.endCancelled(q, current.id, now, null);
    // An active run whose lease has ended ends at once: no worker is at work on it. The row is
    // locked, so a worker taking it over waits and then finds it ended; one that took it over
    // first holds a live lease, and the run is flagged for it.
    const leaseEnd = current.lease_expires_at == null ? null : Number(current.lease_expires_at);
    if (leaseEnd === null || leaseEnd <= now) return this.endCancelled(q, current.id, now, CANCELLED_INTERRUPTED_RUN_ERROR);
    const { rows } = await q.query<SyncRunRow>(`UPDATE ${this.tables.syncRuns} SET cancel_requested = true WHERE id = $1 RETURNING *`, [current.id]);
    await this.statements.notify(q, 'cancel');
    return syncRun(rows[0] as SyncRunRow);
  }

  /** Ends run `id` cancelled at `now` (with `error`, for a run whose process stopped), its member with it. */
  private async endCancelled(q: Queryable, id: number | string, now: number, error: string | null): Promise<SyncRun> {
    const p = new Params();
    const at = p.add(now, 'float8');
    const ended = error === null ? '' : `, lease_expires_at = NULL, error = ${p.add(error, 'text')}`;
    const { rows } = await q.query<SyncRunRow>(
      `WITH cancelled AS (
         UPDATE ${this.tables.syncRuns} SET status = 'cancelled', cancel_requested = true, finished_at = ${at}${ended}
         WHERE id = ${p.add(id, 'bigint')} RETURNING *
       ), member AS (${this.followSql('cancelled', memberTransition('cancelled'), at, p)})
       SELECT * FROM cancelled`,
      p.values,
    );
    await this.statements.recordFinishedRuns(q, 'sync', [String(id)], now);
    return syncRun(rows[0] as SyncRunRow);
  }

  /**
   * Ends the run under way of sync `syncId`, whose snapshot a change drops in transaction `q`:
   * cancelled, so that the commits its worker still makes (of rows sent where the sync delivered
   * before) are refused by the fence instead of recorded as delivered where it delivers now. Its
   * worker is told (topic `cancel`) and stops it at once.
   */
  async endActiveOfSyncStartingOver(q: Queryable, syncId: number, now: number): Promise<void> {
    const active = await q.query<{ id: string }>(
      `SELECT id::text FROM ${this.tables.syncRuns} WHERE sync_id = $1 AND status IN ${ACTIVE} ORDER BY id FOR UPDATE`,
      [syncId],
    );
    for (const { id } of active.rows) await this.endCancelled(q, id, now, CANCEL_REASONS.SyncStartedOver);
    if (active.rows.length > 0) await this.statements.notify(q, 'cancel');
  }

  /** Cancels the queued standalone run of the disabled sync `syncId` that a schedule, webhook or upstream run queued. */
  async cancelFiredQueuedOfDisabledSync(q: Queryable, syncId: number, now: number): Promise<void> {
    const cancelled = await q.query<{ id: string }>(
      `UPDATE ${this.tables.syncRuns} SET status = 'cancelled', finished_at = $1, error = $2
       WHERE sync_id = $3 AND status = 'queued' AND sequence_run_id IS NULL AND trigger_type = ANY($4::text[])
       RETURNING id::text`,
      [now, CANCEL_REASONS.SyncDisabled, syncId, FIRED_TRIGGER_TYPES],
    );
    await this.statements.recordFinishedRuns(q, 'sync', cancelled.rows.map((r) => r.id), now);
  }

  /** Cancels the standalone runs queued for the deleted sync `syncId`, recorded as finished runs: they can never run. */
  async cancelQueuedOfDeletedSync(q: Queryable, syncId: number, now: number): Promise<void> {
    const cancelled = await q.query<{ id: string }>(
      `UPDATE ${this.tables.syncRuns} SET status = 'cancelled', finished_at = $1, error = $2
       WHERE sync_id = $3 AND status = 'queued' AND sequence_run_id IS NULL
       RETURNING id::text`,
      [now, CANCEL_REASONS.SyncDeleted, syncId],
    );
    await this.statements.recordFinishedRuns(q, 'sync', cancelled.rows.map((r) => r.id), now);
  }

  // -------------------------------------------------------------------------------------------
  // The queue's statements

  /**
   * Applies a patch in one statement (absent fields keep their value) unless the run is in another
   * attempt than `attempt` or has ended (with `attempt`), or is finished and the patch names another status; null then. A
   * member follows a new status.
   */
  private async patchSyncRun(
    q: Queryable,
    id: number,
    patch: SyncRunPatch,
    now: number,
    attempt: number | undefined,
    { ending = false }: { ending?: boolean } = {},
  ): Promise<SyncRunRow | null> {
    const p = new Params();
    const { rows } = await q.query<SyncRunRow>(this.patchSyncRunSql(id, patch, now, attempt, p, ending), p.values);
    return rows[0] ?? null;
  }

  /** The statement of patchSyncRun, its values added to `p` (a member's end begins its hand-off's round trip with it: PostgresSequenceRunStore.endAndOpenAdvance). */
  patchSyncRunSql(id: number, patch: SyncRunPatch, now: number, attempt: number | undefined, p: Params, ending: boolean): string {
    const status = patch.status ?? null;
    const terminal = status !== null && isTerminalSyncRunStatus(status);
    const runId = p.add(safeId(id) ?? -1, 'bigint');
    const newStatus = p.add(status, 'text');
    const at = p.add(now, 'float8');
    const count = (value: number | undefined) => p.add(value ?? null, 'bigint');
    const update = `UPDATE ${this.tables.syncRuns} SET
         status             = COALESCE(${newStatus}, status),
         query_size         = COALESCE(${count(patch.querySize)}, query_size),
         planned_added      = COALESCE(${count(patch.plannedRows?.addedCount)}, planned_added),
         planned_changed    = COALESCE(${count(patch.plannedRows?.changedCount)}, planned_changed),
         planned_removed    = COALESCE(${count(patch.plannedRows?.removedCount)}, planned_removed),
         successful_added   = COALESCE(${count(patch.successfulRows?.addedCount)}, successful_added),
         successful_changed = COALESCE(${count(patch.successfulRows?.changedCount)}, successful_changed),
         successful_removed = COALESCE(${count(patch.successfulRows?.removedCount)}, successful_removed),
         failed_added       = COALESCE(${count(patch.failedRows?.addedCount)}, failed_added),
         failed_changed     = COALESCE(${count(patch.failedRows?.changedCount)}, failed_changed),
         failed_removed     = COALESCE(${count(patch.failedRows?.removedCount)}, failed_removed),
         completion_ratio   = COALESCE(${p.add(patch.completionRatio ?? null, 'float8')}, completion_ratio),
         error              = CASE WHEN ${p.add(patch.error !== undefined, 'boolean')} THEN ${p.add(nullableStored(patch.error ?? null), 'text')} ELSE error END,
         api_usage          = COALESCE(${p.add(patch.apiUsage ? JSON.stringify(patch.apiUsage) : null, 'text')}, api_usage),
         phase_ms           = COALESCE(${p.add(patch.phaseMs ? JSON.stringify(patch.phaseMs) : null, 'text')}, phase_ms),
         comparison         = COALESCE(${p.add(patch.comparison ? JSON.stringify(patch.comparison) : null, 'text')}, comparison),
         finished_at        = CASE WHEN ${p.add(terminal, 'boolean')} AND status <> ${newStatus} THEN ${at} ELSE finished_at END,
         lease_expires_at   = CASE WHEN ${p.add(terminal, 'boolean')} THEN NULL ELSE lease_expires_at END
       WHERE id = ${runId} AND (${newStatus} IS NULL OR status = ${newStatus} OR status NOT IN ${TERMINAL_SYNC})
         AND (${p.add(attempt ?? null, 'integer')} IS NULL OR (attempt = ${p.add(attempt ?? null, 'integer')} AND status NOT IN ${TERMINAL_SYNC}))
         ${ending ? `AND status NOT IN ${TERMINAL_SYNC}` : ''}
       RETURNING *`;
    // `ending`: only a run that goes on is changed, and its end is recorded (see recordFinishedRuns).
    const outbox = ending
      ? `, outbox AS (INSERT INTO ${this.tables.finishedRuns} (kind, run_id, created_at) SELECT 'sync', updated.id::text, ${at} FROM updated)`
      : '';
    const announce = ending ? `, ${this.statements.notifySql('finished', p)} AS notified_finished, ${this.statements.notifySql('work', p)} AS notified_work` : '';
    return status === null
      ? update
      : `WITH updated AS (${update}), member AS (${this.followSql('updated', memberTransition(status), at, p)})${outbox}
         SELECT updated.*${announce} FROM updated`;
  }

  /** `SET` of a claim by `lease` at `at`: one more attempt, held by the worker until the lease ends. */
  private claimSetSql(lease: LeaseRequest, now: number, at: string, p: Params): string {
    return `status = 'querying', started_at = COALESCE(r.started_at, ${at}), attempt = r.attempt + 1,
      worker_id = ${p.add(lease.workerId, 'text')}, lease_expires_at = ${p.add(now + lease.leaseMs, 'float8')}`;
  }

  /**
   * Whether the sync run `alias` can be claimed at `at`: queued while no run of its sync is active,
   * or active with a lease that ended (or none: a run claimed before leases existed).
   */
  private claimableSql(alias: string, at: string): string {
    return `((${alias}.status = 'queued'
        AND NOT EXISTS (SELECT 1 FROM ${this.tables.syncRuns} AS other WHERE other.sync_id = ${alias}.sync_id AND other.status IN ${ACTIVE}))
      OR (${alias}.status IN ${ACTIVE} AND (${alias}.lease_expires_at IS NULL OR ${alias}.lease_expires_at <= ${at})))`;
  }


  /**
   * An UPDATE of member runs making each member of the sync runs in the CTE `runs` follow its run
   * (see member-state.ts), for a data-modifying WITH clause.
   */
  private followSql(runs: string, next: MemberTransition, at: string, p: Params): string {
    return `UPDATE ${this.tables.memberRuns} AS m SET
        status      = ${p.add(next.status, 'text')},
        started_at  = CASE WHEN ${p.add(next.started, 'boolean')} THEN COALESCE(m.started_at, ${at}) ELSE m.started_at END,
        finished_at = CASE WHEN ${p.add(next.finished, 'boolean')} THEN ${at} ELSE NULL END
      FROM ${runs} AS run
      WHERE m.sequence_run_id = run.sequence_run_id AND m.key = run.member_key AND m.sync_run_id = run.id`;
  }
}

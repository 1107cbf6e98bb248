/**
 * Every statement the SQLite store runs more than once, prepared once when the store opens.
 */
import { ACTIVE_SYNC_RUN_STATUSES, TERMINAL_SYNC_RUN_STATUSES } from '../../core/runs.js';
import type { EntityKind } from '../../core/workspace.js';
import { ENTITY_KINDS, ENTITY_TABLES } from '../workspace-changes.js';
import type { SqliteDatabase, SqliteValue } from './sqlite-database.js';

export type Kind = EntityKind;

/** Where each kind of workspace entity lives (shared with every store). */
export const TABLES = ENTITY_TABLES;
export const KINDS = ENTITY_KINDS;

/** SQL list of constant statuses, e.g. `('querying', 'processing')`. */
function sqlList(values: readonly string[]): string {
  return `(${values.map((v) => `'${v}'`).join(', ')})`;
}

const ACTIVE = sqlList(ACTIVE_SYNC_RUN_STATUSES);
const TERMINAL_SYNC = sqlList(TERMINAL_SYNC_RUN_STATUSES);
/** A run a worker may claim at `@now` (see claimSyncRun). */
const CLAIMABLE = `((status = 'queued'
     AND NOT EXISTS (SELECT 1 FROM sync_runs AS other WHERE other.sync_id = sync_runs.sync_id AND other.status IN ${ACTIVE}))
  OR (status IN ${ACTIVE} AND (lease_expires_at IS NULL OR lease_expires_at <= @now)))`;
const CLAIM_SET = `status = 'querying', started_at = COALESCE(started_at, @now), attempt = attempt + 1,
  worker_id = @workerId, lease_expires_at = @until`;

function entityStatements(db: SqliteDatabase, kind: Kind) {
  const { table, enabled } = TABLES[kind];
  return {
    live: db.prepare(`SELECT * FROM ${table} WHERE deleted_at IS NULL ORDER BY id`),
    bySlug: db.prepare(`SELECT * FROM ${table} WHERE slug = ? AND deleted_at IS NULL`),
    byId: db.prepare(`SELECT * FROM ${table} WHERE id = ? AND deleted_at IS NULL`),
    // Deleted rows too: run history names what it ran, deleted since or not.
    slugsByIds: db.prepare(`SELECT id, slug, deleted_at IS NOT NULL AS deleted FROM ${table} WHERE id IN (SELECT value FROM json_each(?))`),
    deletedBySlug: db.prepare(`SELECT id FROM ${table} WHERE slug = ? AND deleted_at IS NOT NULL ORDER BY id DESC`),
    insert: db.prepare(
      enabled
        ? `INSERT INTO ${table} (slug, enabled, definition, created_at, updated_at, origin)
           VALUES (@slug, @enabled, @definition, @now, @now, @origin)`
        : `INSERT INTO ${table} (slug, definition, created_at, updated_at, origin)
           VALUES (@slug, @definition, @now, @now, @origin)`,
    ),
    update: db.prepare(
      enabled
        ? `UPDATE ${table} SET enabled = @enabled, definition = @definition, updated_at = @now, origin = @origin
           WHERE slug = @slug AND deleted_at IS NULL`
        : `UPDATE ${table} SET definition = @definition, updated_at = @now, origin = @origin
           WHERE slug = @slug AND deleted_at IS NULL`,
    ),
    softDelete: db.prepare(
      `UPDATE ${table} SET deleted_at = @now, updated_at = @now WHERE slug = @slug AND deleted_at IS NULL RETURNING id`,
    ),
  };
}

export function prepareStatements(db: SqliteDatabase) {
  const entities = Object.fromEntries(KINDS.map((kind) => [kind, entityStatements(db, kind)])) as Record<
    Kind,
    ReturnType<typeof entityStatements>
  >;
  return {
    entities,
    setSyncEnabled: db.prepare('UPDATE syncs SET enabled = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL'),
    // Deleted rows too: a run's sync, and the model it named, may be gone since (syncsById).
    syncsByIds: db.prepare('SELECT * FROM syncs WHERE id IN (SELECT value FROM json_each(?))'),
    modelsOfSyncs: db.prepare(
      `SELECT * FROM models WHERE slug IN (SELECT json_extract(definition, '$.model') FROM syncs WHERE id IN (SELECT value FROM json_each(?)))`,
    ),
    setSequenceEnabled: db.prepare(
      'UPDATE sequences SET enabled = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL',
    ),

    // --- sync runs
    syncRun: db.prepare('SELECT * FROM sync_runs WHERE id = ?'),
    queuedStandaloneRun: db.prepare(
      "SELECT * FROM sync_runs WHERE sync_id = ? AND status = 'queued' AND sequence_run_id IS NULL",
    ),
    mergeRunOptions: db.prepare(
      `UPDATE sync_runs SET full_resync = MAX(full_resync, @fullResync), reset_cdc = MAX(reset_cdc, @resetCdc),
         allow_mass_delete = MAX(allow_mass_delete, @allowMassDelete), full_compare = MAX(full_compare, @fullCompare)
       WHERE id = @id RETURNING *`,
    ),
    insertSyncRun: db.prepare(
      `INSERT INTO sync_runs (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, allow_mass_delete, full_compare,
                              sequence_run_id, member_key, created_at)
       VALUES (@syncId, 'queued', @triggerType, @triggerDetail, @fullResync, @resetCdc, @allowMassDelete, @fullCompare,
               @sequenceRunId, @memberKey, @now)
       RETURNING *`,
    ),
    // A claim counts an attempt: a queued run whose sync is free, or an active run whose lease
    // ended (its worker died or froze), taken over under the same id.
    claimSyncRun: db.prepare(
      `UPDATE sync_runs SET ${CLAIM_SET} WHERE id = @id AND ${CLAIMABLE} RETURNING *`,
    ),
    anyClaimableSyncRun: db.prepare(`SELECT 1 FROM sync_runs WHERE ${CLAIMABLE} LIMIT 1`),
    claimNextSyncRun: db.prepare(
      `UPDATE sync_runs SET ${CLAIM_SET}
       WHERE id = (SELECT id FROM sync_runs WHERE ${CLAIMABLE} ORDER BY status = 'queued', id LIMIT 1)
       RETURNING *`,
    ),
    renewLeases: db.prepare(
      `UPDATE sync_runs SET lease_expires_at = @until
       WHERE id IN (SELECT value FROM json_each(@ids)) AND worker_id = @workerId AND status IN ${ACTIVE}
       RETURNING id`,
    ),
    releaseLeases: db.prepare(`UPDATE sync_runs SET lease_expires_at = @now WHERE worker_id = @workerId AND status IN ${ACTIVE} AND lease_expires_at > @now`),
    leases: db.prepare(`SELECT id, sync_id, worker_id, attempt, lease_expires_at FROM sync_runs WHERE status IN ${ACTIVE} ORDER BY id`),
    runAttempt: db.prepare('SELECT attempt, worker_id, status FROM sync_runs WHERE id = ?'),
    recordFinishedRun: db.prepare('INSERT INTO finished_runs (kind, run_id, created_at) VALUES (?, ?, ?)'),
    anyFinishedRunFree: db.prepare('SELECT 1 FROM finished_runs WHERE held_until IS NULL OR held_until <= @now LIMIT 1'),
    takeFinishedRuns: db.prepare(
      `UPDATE finished_runs SET held_by = @workerId, held_until = @until
       WHERE id IN (SELECT id FROM finished_runs WHERE held_until IS NULL OR held_until <= @now ORDER BY id LIMIT @limit)
       RETURNING id, kind, run_id`,
    ),
    ackFinishedRuns: db.prepare('DELETE FROM finished_runs WHERE id IN (SELECT value FROM json_each(?))'),
    // Absent fields are NULL and keep their value; a terminal run refuses a new status (no row returned).
    updateSyncRun: db.prepare(
      `UPDATE sync_runs SET
         status             = COALESCE(@status, status),
         query_size         = COALESCE(@querySize, query_size),
         planned_added      = COALESCE(@plannedAdded, planned_added),
         planned_changed    = COALESCE(@plannedChanged, planned_changed),
         planned_removed    = COALESCE(@plannedRemoved, planned_removed),
         successful_added   = COALESCE(@successfulAdded, successful_added),
         successful_changed = COALESCE(@successfulChanged, successful_changed),
         successful_removed = COALESCE(@successfulRemoved, successful_removed),
         failed_added       = COALESCE(@failedAdded, failed_added),
         failed_changed     = COALESCE(@failedChanged, failed_changed),
         failed_removed     = COALESCE(@failedRemoved, failed_removed),
         completion_ratio   = COALESCE(@completionRatio, completion_ratio),
         error              = CASE WHEN @setError THEN @error ELSE error END,
         api_usage          = COALESCE(@apiUsage, api_usage),
         phase_ms           = COALESCE(@phaseMs, phase_ms),
         comparison         = COALESCE(@comparison, comparison),
         finished_at        = CASE WHEN @terminal AND status <> @status THEN @now ELSE finished_at END,
         lease_expires_at   = CASE WHEN @terminal THEN NULL ELSE lease_expires_at END
       WHERE id = @id AND (@status IS NULL OR status = @status OR status NOT IN ${TERMINAL_SYNC})
       RETURNING *`,
    ),
    cancelQueuedSyncRun: db.prepare(
      `UPDATE sync_runs SET status = 'cancelled', cancel_requested = 1, finished_at = ? WHERE id = ? RETURNING *`,
    ),
    flagSyncRunCancel: db.prepare('UPDATE sync_runs SET cancel_requested = 1 WHERE id = ? RETURNING *'),
    // An active run whose lease has ended (see CLAIMABLE) ends at once: no worker is at work on it.
    cancelInterruptedSyncRun: db.prepare(
      `UPDATE sync_runs SET status = 'cancelled', cancel_requested = 1, finished_at = @now, lease_expires_at = NULL, error = @error
       WHERE id = @id AND status IN ${ACTIVE} AND (lease_expires_at IS NULL OR lease_expires_at <= @now)
       RETURNING *`,
    ),
    queuedSyncRuns: db.prepare("SELECT * FROM sync_runs WHERE status = 'queued' ORDER BY id"),
    followRun: db.prepare(
      `UPDATE member_runs SET
         status      = @status,
         started_at  = CASE WHEN @started THEN COALESCE(started_at, @now) ELSE started_at END,
         finished_at = CASE WHEN @finished THEN @now ELSE NULL END
       WHERE sequence_run_id = @sequenceRunId AND key = @memberKey AND sync_run_id = @syncRunId`,
    ),
    endActiveRunsOfSync: db.prepare(
      `UPDATE sync_runs SET status = 'cancelled', cancel_requested = 1, finished_at = @now, lease_expires_at = NULL, error = @error
       WHERE sync_id = @syncId AND status IN ${ACTIVE}
       RETURNING *`,
    ),
    cancelFiredQueuedRunsOfSync: db.prepare(
      `UPDATE sync_runs SET status = 'cancelled', finished_at = ?, error = ?
       WHERE sync_id = ? AND status = 'queued' AND sequence_run_id IS NULL AND trigger_type IN (SELECT value FROM json_each(?))
       RETURNING id`,
    ),
    cancelQueuedRunsOfSync: db.prepare(
      `UPDATE sync_runs SET status = 'cancelled', finished_at = ?, error = ?
       WHERE sync_id = ? AND status = 'queued' AND sequence_run_id IS NULL
       RETURNING id`,
    ),
    insertRejectedRow: db.prepare('INSERT INTO rejected_rows (sync_run_id, key, op, reason) VALUES (?, ?, ?, ?)'),
    rejectedRows: db.prepare('SELECT * FROM rejected_rows WHERE sync_run_id = ? ORDER BY id LIMIT ? OFFSET ?'),
    clearRejectedRows: db.prepare('DELETE FROM rejected_rows WHERE sync_run_id = ?'),

    // --- sequence runs
    liveSequence: db.prepare('SELECT id FROM sequences WHERE id = ? AND deleted_at IS NULL'),
    liveSyncIdBySlug: db.prepare('SELECT id FROM syncs WHERE slug = ? AND deleted_at IS NULL'),
    liveSync: db.prepare('SELECT id FROM syncs WHERE id = ? AND deleted_at IS NULL'),
    sequenceRun: db.prepare('SELECT * FROM sequence_runs WHERE id = ?'),
    pendingSequenceRun: db.prepare("SELECT * FROM sequence_runs WHERE sequence_id = ? AND status = 'pending'"),
    sequenceRunsWaitingOnSync: db.prepare(
      `SELECT r.id, r.status, m.key FROM member_runs AS m JOIN sequence_runs AS r ON r.id = m.sequence_run_id
       WHERE m.sync_id = ? AND m.status = 'pending' AND r.status IN ('pending', 'running')`,
    ),
    pendingRunsOfSequence: db.prepare("SELECT id, trigger_type FROM sequence_runs WHERE sequence_id = ? AND status = 'pending'"),
    insertSequenceRun: db.prepare(
      `INSERT INTO sequence_runs (id, sequence_id, status, trigger_type, trigger_detail, created_at, deadline_minutes, resumed_from, concurrency)
       VALUES (@id, @sequenceId, 'pending', @triggerType, @triggerDetail, @now, @deadlineMinutes, @resumedFrom, @concurrency)
       RETURNING *`,
    ),
    resumedBy: db.prepare('SELECT * FROM sequence_runs WHERE resumed_from = ?'),
    insertRunGraph: db.prepare('INSERT INTO sequence_run_graphs (sequence_run_id, members) VALUES (?, ?)'),
    runGraph: db.prepare('SELECT members FROM sequence_run_graphs WHERE sequence_run_id = ?'),
    insertCarriedMember: db.prepare(
      `INSERT INTO member_runs (sequence_run_id, key, position, sync_id, status, sync_run_id, started_at, finished_at, timeout_minutes, terminate, rejected_threshold)
       VALUES (@sequenceRunId, @key, @position, @syncId, @status, @syncRunId, @startedAt, @finishedAt, @timeoutMinutes, @terminate, @rejectedThreshold)`,
    ),
    insertMemberRun: db.prepare(
      `INSERT INTO member_runs (sequence_run_id, key, position, sync_id, status, timeout_minutes, terminate, rejected_threshold)
       VALUES (@sequenceRunId, @key, @position, @syncId, 'pending', @timeoutMinutes, @terminate, @rejectedThreshold)`,
    ),
    members: db.prepare('SELECT * FROM member_runs WHERE sequence_run_id = ? ORDER BY position'),
    memberWithRun: db.prepare(
      `SELECT m.status AS member_status, m.sync_run_id, r.status AS run_status
       FROM member_runs AS m LEFT JOIN sync_runs AS r ON r.id = m.sync_run_id
       WHERE m.sequence_run_id = ? AND m.key = ?`,
    ),
    linkMember: db.prepare(
      `UPDATE member_runs SET sync_run_id = @syncRunId, sync_id = @syncId, status = 'pending', finished_at = NULL
       WHERE sequence_run_id = @sequenceRunId AND key = @key`,
    ),
    claimSequenceRun: db.prepare(
      `UPDATE sequence_runs SET status = 'running', started_at = @now
       WHERE id = @id AND status = 'pending'
         AND NOT EXISTS (SELECT 1 FROM sequence_runs AS other
                         WHERE other.sequence_id = sequence_runs.sequence_id AND other.status = 'running')
       RETURNING *`,
    ),
    setTermination: db.prepare(
      'UPDATE sequence_runs SET terminated_by = ?, reason = ? WHERE id = ? AND reason IS NULL',
    ),
    // Queued runs of members about to be skipped are cancelled directly: the member becomes
    // `skipped`, not `cancelled`, because it never started.
    cancelQueuedRunsOfPendingMembers: db.prepare(
      `UPDATE sync_runs SET status = 'cancelled', finished_at = @now
       WHERE status = 'queued' AND id IN (SELECT sync_run_id FROM member_runs
                                          WHERE sequence_run_id = @sequenceRunId AND status = 'pending'
                                            AND sync_run_id IS NOT NULL)
       RETURNING id`,
    ),
    skipPendingMembers: db.prepare(
      `UPDATE member_runs SET status = 'skipped', finished_at = @now
       WHERE sequence_run_id = @sequenceRunId AND status = 'pending'`,
    ),
    finishSequenceRun: db.prepare(
      `UPDATE sequence_runs SET status = @status, finished_at = CASE WHEN @terminal THEN @now ELSE finished_at END
       WHERE id = @id RETURNING *`,
    ),
    cancelPendingSequenceRun: db.prepare(
      `UPDATE sequence_runs SET status = 'cancelled', cancel_requested = 1, finished_at = ?, reason = COALESCE(reason, ?)
       WHERE id = ? AND status = 'pending' RETURNING id`,
    ),
    flagSequenceRunCancel: db.prepare('UPDATE sequence_runs SET cancel_requested = 1 WHERE id = ?'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/** Adds a run list's `after`/`before` bounds on `created_at` to a WHERE clause and its parameters. */
export function timeFilters(query: { after?: number; before?: number }, where: string[], params: SqliteValue[]): void {
  if (query.after !== undefined) {
    where.push('created_at >= ?');
    params.push(query.after);
  }
  if (query.before !== undefined) {
    where.push('created_at < ?');
    params.push(query.before);
  }
}

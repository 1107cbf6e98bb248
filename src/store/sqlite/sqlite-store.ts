/**
 * The embedded store: one SQLite file (SPEC §7), opened in WAL mode so readers never wait for the
 * writer. Every method that writes runs in one `BEGIN IMMEDIATE` transaction (the write lock is
 * taken at BEGIN, so two processes on the same file serialize instead of deadlocking on an upgrade),
 * which makes each method whole or nothing. Methods are async to match the port; they finish
 * their work synchronously.
 *
 * The run rules (../run-rules.ts) and workspace rules (../workspace-changes.ts) are shared with the
 * other stores; the unique indexes of migrations.ts make the file itself refuse a double claim.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { ErrorCode, LockstepError, NotFoundError, toError } from '../../core/errors.js';
import type {
  Clock,
  EntitySlug,
  SyncAsRun,
  FinishedRunEntry,
  FiredRun,
  LeaseRequest,
  MemberStart,
  RunFence,
  RunLease,
  NewSyncRun,
  SequenceRunListQuery,
  Store,
  StoreCapabilities,
  SyncRunListQuery,
  SyncRunPatch,
} from '../../core/ports.js';
import {
  isTerminalSyncRunStatus,
  type RejectedRow,
  type RecordedMember,
  type SequenceRun,
  type SequenceRunStatus,
  type SyncRun,
  type SyncRunOptions,
  type SyncRunStatus,
  type Trigger,
} from '../../core/runs.js';
import type { AlertsDefinition } from '../../core/alerts.js';
import { diffWorkspace } from '../../core/workspace-diff.js';
import type {
  ConnectionRecord,
  EntityDefs,
  EntityKind,
  EntityOrigin,
  ModelRecord,
  Stored,
  SequenceRecord,
  SyncRecord,
  WorkspaceChange,
  WorkspaceDefinition,
  WorkspaceState,
} from '../../core/workspace.js';
import {
  CANCEL_REASONS,
  memberSyncDeletedReason,
  checkAlerts,
  checkDelete,
  checkUpsert,
  declaredEntity,
  planApply,
  type EntityChange,
} from '../workspace-changes.js';
import {
  isTerminalSequenceRunStatus,
  memberNeedsRun,
  nothingToCancelError,
  resumeRefused,
  sequenceRunFinishedError,
  syncRunFinishedError,
} from '../run-rules.js';
import { memberTransition } from '../member-state.js';
import {
  recordMembers,
  syncRunsToDecide,
  type SequenceAdvance,
  type SequenceAdvanceState,
  type SequenceDecision,
  type SequenceResumeDecision,
  type SequenceResumeState,
} from '../../core/sequence-rules.js';
import { SqliteWebhookStore } from './sqlite-webhook-store.js';
import { SqliteAlertStore } from './sqlite-alert-store.js';
import { SqliteTokenStore } from './sqlite-token-store.js';
import { SqliteRunFence } from './sqlite-run-fence.js';
import { SqliteScheduleStore } from './sqlite-schedule-store.js';
import { SqliteSnapshotStore } from './sqlite-snapshot-store.js';
import { SqliteWriteWorker } from './sqlite-write-worker.js';
import {
  definitionJson,
  toRecord,
  toRejectedRow,
  toSequenceRun,
  toSyncRun,
  type EntityRow,
  type MemberRunRow,
  type RejectedRowRow,
  type SequenceRunRow,
  type SyncRunRow,
  type LeaseRow,
  type FinishedRunRow,
  toLease,
  toFinishedRun,
  syncsAsRun,
  type HistoryEntityRow,
} from '../rows.js';
import { checkSchemaIsCurrent, migrate } from './migrations.js';
import { SEALED_PREFIX, SecretCodec, countSealed, type SecretResealer } from '../../core/secrets.js';
import { StoreSecretKeys, keyFileFor } from '../secret-keys.js';
import { KINDS, TABLES, prepareStatements, type Kind, type Statements } from './sqlite-statements.js';
import {
  immediateTransaction,
  isSqliteError,
  openSqliteDatabase,
  type SqliteDatabase,
  type SqliteStatement,
  type SqliteTransaction,
  type SqliteValue,
} from './sqlite-database.js';

export interface SqliteStoreOptions {
  /** The database file; it and its folder are created when missing. */
  path: string;
  /** Gives the time for the few changes the port passes no `now` to (cancel requests) (default: the system clock). */
  clock?: Clock;
  /** Milliseconds to wait for another process's write lock before failing (default: 5000). */
  busyTimeoutMs?: number;
  /**
   * Milliseconds between background WAL checkpoints; 0 leaves checkpoints to SQLite's automatic
   * one only (default: 1000). See `WAL_AUTOCHECKPOINT_PAGES`.
   */
  checkpointIntervalMs?: number;
  /**
   * Seals the secrets it writes and opens those it reads (default: the key file beside the store,
   * `<path>.key`, for what is already sealed; nothing new is sealed, as no kind's secrets are known).
   */
  secrets?: SecretCodec;
  /**
   * Opens an existing file for reading only, e.g. one on a read-only disk or whose permissions allow
   * no writing (default: false). Nothing is migrated: a file at an older schema is refused, naming
   * the fix; every write fails.
   */
  readOnly?: boolean;
}

/**
 * SQLite checkpoints the WAL inside whichever commit makes it exceed this many pages, and that
 * commit pays for copying pages and an fsync: a hand-off landing there would take milliseconds.
 * So checkpoints run on a timer between commits, and this high mark (about 40 MB of 4 KB pages)
 * only bounds the WAL when the timer cannot keep up (a long bulk write).
 */
const WAL_AUTOCHECKPOINT_PAGES = 10_000;
/** The write worker's connection: the same durability and WAL bounds as the main one. */
const WRITE_WORKER_PRAGMAS = ['synchronous = NORMAL', `wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`];

/** The WAL is truncated back to this size after a checkpoint, so one bulk write does not leave a huge file. */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export class SqliteStore implements Store, SecretResealer, AsyncDisposable {
  readonly capabilities: StoreCapabilities = { skipLocked: false, notifications: false };
  /** Absolute path of the database file. */
  readonly path: string;
  /** Schema versions this open applied (empty when the file was already up to date). */
  readonly migrationsApplied: readonly number[];

  private readonly db: SqliteDatabase;
  private readonly clock: Clock;
  private readonly busyTimeoutMs: number;
  private readonly s: Statements;
  /** Refuses the writes of a run's attempt once another worker took the run over. */
  private readonly fence: SqliteRunFence;
  /** The read transactions' wrapper: it runs the function it is given (writes: immediateTransaction). */
  private readonly tx: SqliteTransaction<[() => unknown], unknown>;
  /** Statements whose SQL depends on the arguments (IN-lists, list filters), prepared once per shape. */
  private readonly dynamic = new Map<string, SqliteStatement>();
  /** Parsed sequences by id, with the row they were parsed from (see sequenceForAdvance). */
  private readonly parsedSequences = new Map<number, { row: EntityRow; record: SequenceRecord }>();
  private readonly checkpointTimer: NodeJS.Timeout | null;
  /** Commits snapshot writes on a second connection, off the main thread (null for `:memory:`); its thread starts with the first write. */
  private readonly writeWorker: SqliteWriteWorker | null;
  /** Snapshots, their change cursors and record ids. */
  readonly snapshots: SqliteSnapshotStore;
  /** Firing keys and schedule cursors. */
  readonly schedules: SqliteScheduleStore;
  /** The log of webhook deliveries. */
  readonly webhooks: SqliteWebhookStore;
  /** Alert definitions, state and deliveries. */
  readonly alerts: SqliteAlertStore;
  /** API tokens. */
  readonly tokens: SqliteTokenStore;
  /** Seals and opens the secrets of what it keeps. */
  private readonly secrets: SecretCodec;

  private constructor(
    db: SqliteDatabase,
    path: string,
    clock: Clock,
    busyTimeoutMs: number,
    checkpointIntervalMs: number,
    applied: number[],
    secrets: SecretCodec,
  ) {
    this.db = db;
    this.path = path;
    this.clock = clock;
    this.busyTimeoutMs = busyTimeoutMs;
    this.migrationsApplied = applied;
    this.s = prepareStatements(db);
    this.fence = new SqliteRunFence(this.s);
    this.tx = db.transaction((fn: () => unknown) => fn());
    this.secrets = secrets;
    this.webhooks = new SqliteWebhookStore(db, (error) => toError(storeError(path, busyTimeoutMs, error)), secrets);
    this.alerts = new SqliteAlertStore(db, (error) => toError(storeError(path, busyTimeoutMs, error)), secrets);
    this.tokens = new SqliteTokenStore(db, (error) => toError(storeError(path, busyTimeoutMs, error)));
    this.checkpointTimer =
      checkpointIntervalMs > 0 && path !== ':memory:'
        ? setInterval(() => this.checkpoint(), checkpointIntervalMs).unref()
        : null;
    this.writeWorker =
      path === ':memory:' ? null : new SqliteWriteWorker({ path, busyTimeoutMs, pragmas: WRITE_WORKER_PRAGMAS });
    const transactions = { write: <R>(fn: () => R) => this.write(fn), read: <R>(fn: () => R) => this.read(fn) };
    this.snapshots = new SqliteSnapshotStore({
      db,
      writeWorker: this.writeWorker,
      fence: this.fence,
      statement: (sql) => this.statement(sql),
      wrap: (error) => storeError(path, busyTimeoutMs, error),
      transactions,
    });
    this.schedules = new SqliteScheduleStore(db, transactions);
  }

  /** Opens the store at `path`, creating the file and bringing its schema up to date. */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const path = options.path === ':memory:' ? options.path : resolve(options.path);
    const clock = options.clock ?? systemClock;
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    const checkpointIntervalMs = options.checkpointIntervalMs ?? 1000;
    let db: SqliteDatabase | undefined;
    try {
      const readOnly = options.readOnly === true && path !== ':memory:';
      if (path !== ':memory:' && !readOnly) mkdirSync(dirname(path), { recursive: true });
      db = readOnly ? openReadOnly(path, busyTimeoutMs) : openSqliteDatabase(path, { timeout: busyTimeoutMs });
      if (!readOnly) {
        db.pragma('journal_mode = WAL');
        // NORMAL in WAL mode: a commit survives a process crash; only an OS crash can lose the last commits.
        db.pragma('synchronous = NORMAL');
        db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
        db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      }
      db.pragma('foreign_keys = ON');
      const applied = readOnly ? [] : migrate(db, path, clock.now());
      const secrets = options.secrets ?? new SecretCodec({ keys: new StoreSecretKeys({ store: path, keyFile: keyFileFor(path) }), secretSettings: () => [] });
      // A store whose secrets its keys cannot open is refused now, not at its first read.
      secrets.checkKeys(sealedTexts(db));
      // A read-only connection cannot checkpoint: no timer.
      return new SqliteStore(db, path, clock, busyTimeoutMs, readOnly ? 0 : checkpointIntervalMs, applied, secrets);
    } catch (error) {
      if (db?.open) db.close();
      const wrapped = storeError(path, busyTimeoutMs, error);
      if (wrapped instanceof LockstepError) throw wrapped;
      throw new LockstepError(ErrorCode.Store, `store ${path} cannot be opened: ${toError(error).message}`, {
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    // The worker's connection closes first: the main one, closing last, checkpoints the WAL.
    await this.writeWorker?.close();
    if (this.db.open) this.db.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // -------------------------------------------------------------------------------------------
  // Workspace

  async loadWorkspace(): Promise<WorkspaceState> {
    return this.read(() => this.workspaceState());
  }

  async planWorkspace(definition: WorkspaceDefinition): Promise<WorkspaceChange[]> {
    return diffWorkspace(await this.loadWorkspace(), definition);
  }

  async applyWorkspace(definition: WorkspaceDefinition, now: number): Promise<WorkspaceChange[]> {
    return this.write(() => {
      const plan = planApply(this.workspaceState(), definition);
      for (const change of plan.entities) this.applyChange(change, definition, now);
      if (plan.alerts) this.alerts.writeDefinition(plan.alerts, now);
      if (plan.webhooks) this.webhooks.writeSettings(plan.webhooks, now);
      return plan.changes;
    });
  }

  async updateAlerts(update: (current: AlertsDefinition) => AlertsDefinition, now: number): Promise<AlertsDefinition> {
    return this.write(() => {
      const current = this.workspaceState();
      const alerts = update(current.alerts);
      checkAlerts(current, alerts);
      this.alerts.writeDefinition(alerts, now);
      return this.alerts.readDefinition();
    });
  }

  async getSync(ref: number | string): Promise<SyncRecord | null> {
    return this.read(() => this.entityByRef<SyncRecord>('sync', ref));
  }

  async getSequence(ref: number | string): Promise<SequenceRecord | null> {
    return this.read(() => this.entityByRef<SequenceRecord>('sequence', ref));
  }

  async slugsById(kind: 'sync' | 'sequence', ids: readonly number[]): Promise<Map<number, EntitySlug>> {
    if (ids.length === 0) return new Map();
    const rows = await this.read(() => this.s.entities[kind].slugsByIds.all(JSON.stringify([...new Set(ids)])) as Array<{ id: number; slug: string; deleted: number }>);
    return new Map(rows.map((row) => [Number(row.id), { slug: row.slug, deleted: row.deleted === 1 }]));
  }

  async syncsById(ids: readonly number[]): Promise<Map<number, SyncAsRun>> {
    if (ids.length === 0) return new Map();
    const json = JSON.stringify([...new Set(ids)]);
    return this.read(() =>
      syncsAsRun(this.s.syncsByIds.all(json) as HistoryEntityRow[], this.s.modelsOfSyncs.all(json) as HistoryEntityRow[], this.secrets),
    );
  }

  async deletedIdsBySlug(kind: 'sync' | 'sequence', slug: string): Promise<number[]> {
    return this.read(() => (this.s.entities[kind].deletedBySlug.all(slug) as Array<{ id: number }>).map((row) => Number(row.id)));
  }

  async getModel(slug: string): Promise<ModelRecord | null> {
    return this.read(() => this.entityBySlug<ModelRecord>('model', slug));
  }

  async getSource(slug: string): Promise<ConnectionRecord | null> {
    return this.read(() => this.entityBySlug<ConnectionRecord>('source', slug));
  }

  async getDestination(slug: string): Promise<ConnectionRecord | null> {
    return this.read(() => this.entityBySlug<ConnectionRecord>('destination', slug));
  }

  async upsertEntity<K extends EntityKind>(
    kind: K,
    definition: EntityDefs[K],
    origin: EntityOrigin,
    now: number,
  ): Promise<{ record: EntityDefs[K] & Stored; created: boolean }> {
    return this.write(() => {
      checkUpsert(this.workspaceState(), kind, definition);
      const statements = this.s.entities[kind];
      const created = !statements.bySlug.get(definition.slug);
      const params: Record<string, SqliteValue> = { slug: definition.slug, definition: definitionJson(definition, kind, this.secrets), now, origin };
      if (TABLES[kind].enabled) params.enabled = (definition as { enabled?: boolean }).enabled === false ? 0 : 1;
      (created ? statements.insert : statements.update).run(params);
      const record = toRecord(statements.bySlug.get(definition.slug) as EntityRow, kind, this.secrets) as EntityDefs[K] & Stored;
      return { record, created };
    });
  }

  async deleteEntity(kind: EntityKind, slug: string, now: number): Promise<void> {
    this.write(() => {
      const current = this.workspaceState();
      if (!this.s.entities[kind].bySlug.get(slug)) throw new NotFoundError(`no ${kind} "${slug}" in the workspace`);
      checkDelete(current, kind, slug);
      this.applyChange({ action: 'delete', kind, slug, fields: [] }, current, now);
    });
  }

  async setEnabled(kind: 'sync' | 'sequence', id: number, enabled: boolean, now: number): Promise<void> {
    this.write(() => {
      const statement = kind === 'sync' ? this.s.setSyncEnabled : this.s.setSequenceEnabled;
      if (statement.run(enabled ? 1 : 0, now, id).changes === 0) throw new NotFoundError(`${kind} ${id} does not exist`);
    });
  }

  async resealSecrets(): Promise<{ secrets: number }> {
    // The bytes of the values replaced are zeroed as they are freed, and the WAL is emptied after,
    // so the file keeps nothing the old key (or no key) could read.
    this.db.pragma('secure_delete = ON');
    try {
      return this.resealTx();
    } finally {
      this.db.pragma('secure_delete = OFF');
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // Busy: the background checkpoints copy the WAL back later.
      }
    }
  }

  private resealTx(): { secrets: number } {
    return this.write(() => {
      for (const kind of KINDS) {
        const table = TABLES[kind].table;
        // Deleted entities too: their definitions must keep opening once the old key is gone.
        for (const row of this.statement(`SELECT * FROM ${table}`).all() as EntityRow[]) {
          const definition = definitionJson(toRecord(row, kind, this.secrets), kind, this.secrets);
          if (definition !== row.definition) this.statement(`UPDATE ${table} SET definition = ? WHERE id = ?`).run(definition, row.id);
        }
      }
      const alerts = this.alerts.readDefinition();
      if (alerts.channels.length > 0 || alerts.rules.length > 0) this.alerts.writeDefinition(alerts, this.clock.now());
      this.webhooks.writeSettings(this.webhooks.readSettings(), this.clock.now());
      return { secrets: sealedTexts(this.db).reduce((sum, text) => sum + countSealed(text), 0) };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Sync runs

  async enqueueSyncRun(input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }> {
    return this.write(() => this.queueSyncRun(input, now));
  }

  async enqueueFiredRun(key: string, run: FiredRun, now: number): Promise<{ runId: string; created: boolean } | null> {
    return this.write(() => {
      if (!this.schedules.recordKey(key, now)) return null;
      // A throw (the sync or sequence is gone) rolls the key back with the rest.
      if (run.kind === 'sync') {
        const queued = this.queueSyncRun(run.run, now);
        return { runId: String(queued.run.id), created: queued.created };
      }
      const queued = this.queueSequenceRun(run.sequence, run.trigger, now);
      return { runId: queued.run.id, created: queued.created };
    });
  }

  /** Queues a standalone run, or joins the queued one; the caller holds a write transaction. */
  private queueSyncRun(input: NewSyncRun, now: number): { run: SyncRun; created: boolean } {
    if (!this.s.liveSync.get(input.syncId)) throw new NotFoundError(`sync ${input.syncId} does not exist`);
    const queued = this.s.queuedStandaloneRun.get(input.syncId) as SyncRunRow | undefined;
    if (queued) {
      // The shared follow-up must honour every trigger's options: a full resync asked for is never lost.
      const merged = this.s.mergeRunOptions.get({
        id: queued.id,
        fullResync: input.options.fullResync ? 1 : 0,
        resetCdc: input.options.resetCDC ? 1 : 0,
        allowMassDelete: input.options.allowMassDelete ? 1 : 0,
        fullCompare: input.options.fullCompare ? 1 : 0,
      }) as SyncRunRow;
      return { run: toSyncRun(merged), created: false };
    }
    const row = this.insertSyncRun(input.syncId, input.trigger, input.options, null, null, now);
    return { run: toSyncRun(row), created: true };
  }

  async claimSyncRun(id: number, now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    return this.write(() => {
      const row = this.s.claimSyncRun.get({ id, now, workerId: lease.workerId, until: now + lease.leaseMs }) as SyncRunRow | undefined;
      if (!row) {
        if (!this.s.syncRun.get(id)) throw new NotFoundError(`sync run ${id} does not exist`);
        return null;
      }
      this.followRun(row, now);
      return toSyncRun(row);
    });
  }

  async claimNextSyncRun(now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    // Looked for without the write lock first: a worker polls every second, mostly finding nothing,
    // and taking the lock would wait (blocking the process) for a snapshot commit of a run in progress.
    if (this.read(() => this.s.anyClaimableSyncRun.get({ now })) === undefined) return null;
    return this.write(() => {
      const row = this.s.claimNextSyncRun.get({ now, workerId: lease.workerId, until: now + lease.leaseMs }) as SyncRunRow | undefined;
      if (!row) return null;
      this.followRun(row, now);
      return toSyncRun(row);
    });
  }

  async renewLeases(runIds: number[], now: number, lease: LeaseRequest): Promise<number[]> {
    if (runIds.length === 0) return [];
    return this.write(() =>
      (this.s.renewLeases.all({ ids: JSON.stringify(runIds), workerId: lease.workerId, until: now + lease.leaseMs }) as Array<{ id: number }>).map(
        (r) => Number(r.id),
      ),
    );
  }

  async releaseLeases(workerId: string, now: number): Promise<number> {
    return this.write(() => this.s.releaseLeases.run({ workerId, now }).changes);
  }

  async listLeases(): Promise<RunLease[]> {
    return this.read(() => (this.s.leases.all() as LeaseRow[]).map(toLease));
  }

  async updateSyncRun(id: number, patch: SyncRunPatch, now: number, attempt?: number): Promise<SyncRun> {
    return this.write(() => {
      const before = attempt === undefined ? ((this.s.syncRun.get(id) as SyncRunRow | undefined) ?? null) : this.fence.check({ runId: id, attempt });
      const status = patch.status ?? null;
      const row = this.s.updateSyncRun.get({
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
        const current = this.s.syncRun.get(id) as SyncRunRow | undefined;
        if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
        throw syncRunFinishedError(id, current.status, status);
      }
      if (status !== null) this.followRun(row, now);
      if (status !== null && isTerminalSyncRunStatus(status) && before !== null && !isTerminalSyncRunStatus(before.status as SyncRunStatus)) {
        this.s.recordFinishedRun.run('sync', String(id), now);
      }
      return toSyncRun(row);
    });
  }

  async getSyncRun(id: number): Promise<SyncRun | null> {
    return this.read(() => {
      const row = this.s.syncRun.get(id) as SyncRunRow | undefined;
      return row ? toSyncRun(row) : null;
    });
  }

  async listSyncRuns(query: SyncRunListQuery): Promise<SyncRun[]> {
    return this.read(() => {
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
      if (query.statuses !== undefined) {
        where.push(query.statuses.length > 0 ? `status IN (${query.statuses.map(() => '?').join(', ')})` : '0');
        params.push(...query.statuses);
      }
      addTimeFilters(query, where, params);
      const sql =
        `SELECT * FROM sync_runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
        `ORDER BY id ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ? OFFSET ?`;
      const rows = this.statement(sql).all(...params, query.limit, query.offset) as SyncRunRow[];
      return rows.map(toSyncRun);
    });
  }

  async listQueuedSyncRuns(): Promise<SyncRun[]> {
    return this.read(() => (this.s.queuedSyncRuns.all() as SyncRunRow[]).map(toSyncRun));
  }

  async requestSyncRunCancel(id: number, now: number = this.clock.now()): Promise<SyncRun> {
    return this.write(() => this.cancelSyncRunTx(id, now));
  }

  async addRejectedRows(rows: RejectedRow[], fence?: RunFence): Promise<void> {
    if (rows.length === 0) return;
    this.write(() => {
      this.fence.check(fence);
      for (const row of rows) this.s.insertRejectedRow.run(row.syncRunId, row.key, row.op, row.reason);
    });
  }

  async clearRejectedRows(syncRunId: number, fence?: RunFence): Promise<void> {
    this.write(() => {
      this.fence.check(fence);
      this.s.clearRejectedRows.run(syncRunId);
    });
  }

  async listRejectedRows(syncRunId: number, limit: number, offset: number): Promise<RejectedRow[]> {
    return this.read(() => (this.s.rejectedRows.all(syncRunId, limit, offset) as RejectedRowRow[]).map(toRejectedRow));
  }

  // -------------------------------------------------------------------------------------------
  // Sequence runs

  async enqueueSequenceRun(
    sequence: SequenceRecord,
    trigger: Trigger,
    now: number,
  ): Promise<{ run: SequenceRun; created: boolean }> {
    return this.write(() => this.queueSequenceRun(sequence, trigger, now));
  }

  /** Queues a run with every member pending, or finds the pending one; the caller holds a write transaction. */
  private queueSequenceRun(sequence: SequenceRecord, trigger: Trigger, now: number): { run: SequenceRun; created: boolean } {
    if (!this.s.liveSequence.get(sequence.id)) throw new NotFoundError(`sequence "${sequence.slug}" does not exist`);
    const pending = this.s.pendingSequenceRun.get(sequence.id) as SequenceRunRow | undefined;
    if (pending) return { run: this.withMembers(pending), created: false };
    const syncIds = sequence.members.map((member) => {
      const found = this.s.liveSyncIdBySlug.get(member.sync) as { id: number } | undefined;
      if (!found) {
        throw new NotFoundError(`sequence "${sequence.slug}": member "${member.key}" runs unknown sync "${member.sync}"`);
      }
      return found.id;
    });
    const id = randomUUID();
    const row = this.s.insertSequenceRun.get({
      id,
      sequenceId: sequence.id,
      triggerType: trigger.type,
      triggerDetail: trigger.detail,
      now,
      deadlineMinutes: sequence.deadlineMinutes ?? null,
      resumedFrom: null,
    }) as SequenceRunRow;
    this.s.insertRunGraph.run(id, JSON.stringify(recordMembers(sequence)));
    sequence.members.forEach((member, position) => {
      this.s.insertMemberRun.run({ sequenceRunId: id, key: member.key, position, syncId: syncIds[position] ?? null, timeoutMinutes: member.timeoutMinutes ?? null });
    });
    return { run: this.withMembers(row), created: true };
  }

  async claimSequenceRun(id: string, now: number): Promise<SequenceRun | null> {
    return this.write(() => {
      const row = this.s.claimSequenceRun.get({ id, now }) as SequenceRunRow | undefined;
      if (row) return this.withMembers(row);
      if (!this.s.sequenceRun.get(id)) throw new NotFoundError(`sequence run ${id} does not exist`);
      return null;
    });
  }

  async getSequenceRun(id: string): Promise<SequenceRun | null> {
    return this.read(() => {
      const row = this.s.sequenceRun.get(id) as SequenceRunRow | undefined;
      return row ? this.withMembers(row) : null;
    });
  }

  async resumingSequenceRunId(id: string): Promise<string | null> {
    return this.read(() => (this.s.resumedBy.get(id) as SequenceRunRow | undefined)?.id ?? null);
  }

  async listSequenceRuns(query: SequenceRunListQuery): Promise<SequenceRun[]> {
    return this.read(() => {
      const where: string[] = [];
      const params: SqliteValue[] = [];
      if (query.sequenceId !== undefined) {
        where.push('sequence_id = ?');
        params.push(query.sequenceId);
      }
      if (query.sequenceIds !== undefined) {
        where.push('sequence_id IN (SELECT value FROM json_each(?))');
        params.push(JSON.stringify(query.sequenceIds));
      }
      if (query.statuses !== undefined) {
        where.push(query.statuses.length > 0 ? `status IN (${query.statuses.map(() => '?').join(', ')})` : '0');
        params.push(...query.statuses);
      }
      addTimeFilters(query, where, params);
      const sql =
        `SELECT * FROM sequence_runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
        `ORDER BY seq ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ? OFFSET ?`;
      const rows = this.statement(sql).all(...params, query.limit, query.offset) as SequenceRunRow[];
      return rows.map((row) => this.withMembers(row));
    });
  }

  async listSequenceRunsByStatus(statuses: SequenceRunStatus[]): Promise<SequenceRun[]> {
    if (statuses.length === 0) return [];
    return this.read(() => {
      const sql = `SELECT * FROM sequence_runs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`;
      return (this.statement(sql).all(...statuses) as SequenceRunRow[]).map((row) => this.withMembers(row));
    });
  }

  async startMembers(sequenceRunId: string, members: MemberStart[], now: number): Promise<SyncRun[]> {
    return this.write(() => this.startMembersTx(sequenceRunId, members, now));
  }

  async setTermination(sequenceRunId: string, memberKey: string | null, reason: string): Promise<void> {
    this.write(() => {
      if (this.s.setTermination.run(memberKey, reason, sequenceRunId).changes > 0) return;
      if (!this.s.sequenceRun.get(sequenceRunId)) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
    });
  }

  async skipPendingMembers(sequenceRunId: string, now: number): Promise<void> {
    this.write(() => {
      if (!this.s.sequenceRun.get(sequenceRunId)) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      this.skipPending(sequenceRunId, now);
    });
  }

  async finishSequenceRun(sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun> {
    return this.write(() => this.finishSequenceRunTx(sequenceRunId, status, now));
  }

  async advanceSequenceRun(
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim?: { lease: LeaseRequest; max: number },
  ): Promise<SequenceAdvance> {
    const began = performance.now();
    // BEGIN IMMEDIATE holds the file's write lock: the decision and its effects are one step.
    return this.write(() => {
      const row = this.s.sequenceRun.get(id) as SequenceRunRow | undefined;
      if (!row) throw new NotFoundError(`sequence run ${id} does not exist`);
      const run = this.withMembers(row);
      if (run.status !== 'running') return { run, started: [], cancelled: [] };
      const syncRuns = new Map<number, SyncRun>();
      for (const syncRunId of syncRunsToDecide(run)) {
        const syncRun = this.s.syncRun.get(syncRunId) as SyncRunRow | undefined;
        if (syncRun) syncRuns.set(syncRunId, toSyncRun(syncRun));
      }
      const sequence = this.sequenceForAdvance(run.sequenceId);
      const decision = decide({ run, sequence, syncRuns, now });
      const changes = decision.terminate !== null || decision.cancel.length > 0 || decision.skipPending || decision.start.length > 0;
      if (!changes && !decision.finish) return { run, started: [], cancelled: [] };
      if (decision.terminate) this.s.setTermination.run(decision.terminate.member, decision.terminate.reason, id);
      for (const syncRunId of decision.cancel) {
        const current = this.s.syncRun.get(syncRunId) as SyncRunRow | undefined;
        if (current && !isTerminalSyncRunStatus(current.status as SyncRunStatus)) this.cancelSyncRunTx(syncRunId, now);
      }
      if (decision.skipPending) this.skipPending(id, now);
      const started = decision.start.length > 0 ? this.startMembersTx(id, decision.start, now) : [];
      // A claim is stamped when it happens: `now` plus the time the transaction took so far.
      const claimedAt = now + (performance.now() - began);
      for (let i = 0; claim && i < Math.min(claim.max, started.length); i++) {
        const claimed = this.s.claimSyncRun.get({
          id: (started[i] as SyncRun).id,
          now: claimedAt,
          workerId: claim.lease.workerId,
          until: claimedAt + claim.lease.leaseMs,
        }) as SyncRunRow | undefined;
        if (!claimed) continue;
        this.followRun(claimed, claimedAt);
        started[i] = toSyncRun(claimed);
      }
      if (decision.finish) return { run: this.finishSequenceRunTx(id, decision.finish, now), started, cancelled: decision.cancel };
      return { run: this.withMembers(this.s.sequenceRun.get(id) as SequenceRunRow), started, cancelled: decision.cancel };
    });
  }

  async resumeSequenceRun(
    id: string,
    decide: (state: SequenceResumeState) => SequenceResumeDecision,
    trigger: Trigger,
    now: number,
  ): Promise<SequenceRun> {
    return this.write(() => {
      const row = this.s.sequenceRun.get(id) as SequenceRunRow | undefined;
      if (!row) throw new NotFoundError(`sequence run ${id} does not exist`);
      const run = this.withMembers(row);
      const sequence = this.sequenceForAdvance(run.sequenceId);
      const syncRuns = new Map<number, SyncRun>();
      for (const m of run.members) {
        if ((m.status !== 'success' && m.status !== 'warning') || m.syncRunId === null) continue;
        const syncRun = this.s.syncRun.get(m.syncRunId) as SyncRunRow | undefined;
        if (syncRun) syncRuns.set(m.syncRunId, toSyncRun(syncRun));
      }
      const syncIds = new Map<string, number>();
      for (const m of sequence?.members ?? []) {
        const found = this.s.liveSyncIdBySlug.get(m.sync) as { id: number } | undefined;
        if (found) syncIds.set(m.sync, Number(found.id));
      }
      const resumedBy = this.s.resumedBy.get(id) as SequenceRunRow | undefined;
      const pending = this.s.pendingSequenceRun.get(run.sequenceId) as SequenceRunRow | undefined;
      const graph = this.s.runGraph.get(id) as { members: string } | undefined;
      const decision = decide({
        run,
        recorded: graph ? (JSON.parse(graph.members) as RecordedMember[]) : null,
        sequence,
        syncRuns,
        syncIds,
        resumedBy: resumedBy ? this.withMembers(resumedBy) : null,
        pending: pending ? this.withMembers(pending) : null,
      });
      if (!decision.ok) throw resumeRefused(decision);
      const resumed = sequence as SequenceRecord;
      const newId = randomUUID();
      this.s.insertSequenceRun.run({
        id: newId,
        sequenceId: resumed.id,
        triggerType: trigger.type,
        triggerDetail: trigger.detail,
        now,
        deadlineMinutes: resumed.deadlineMinutes ?? null,
        resumedFrom: id,
      });
      this.s.insertRunGraph.run(newId, JSON.stringify(recordMembers(resumed)));
      const carried = new Map(decision.carry.map((c) => [c.key, c]));
      resumed.members.forEach((member, position) => {
        const syncId = syncIds.get(member.sync) as number;
        const c = carried.get(member.key);
        const timeoutMinutes = member.timeoutMinutes ?? null;
        if (!c) {
          this.s.insertMemberRun.run({ sequenceRunId: newId, key: member.key, position, syncId, timeoutMinutes });
          return;
        }
        this.s.insertCarriedMember.run({
          sequenceRunId: newId,
          key: member.key,
          position,
          syncId,
          status: c.status,
          syncRunId: c.syncRunId,
          startedAt: c.startedAt,
          finishedAt: c.finishedAt,
          timeoutMinutes,
        });
      });
      return this.withMembers(this.s.sequenceRun.get(newId) as SequenceRunRow);
    });
  }

  async requestSequenceRunCancel(id: string, now: number = this.clock.now()): Promise<SequenceRun> {
    return this.write(() => {
      const current = this.s.sequenceRun.get(id) as SequenceRunRow | undefined;
      if (!current) throw new NotFoundError(`sequence run ${id} does not exist`);
      if (isTerminalSequenceRunStatus(current.status)) throw nothingToCancelError(`sequence run ${id}`, current.status);
      if (current.status === 'pending') {
        this.cancelPendingSequenceRunTx(id, CANCEL_REASONS.CancelledBeforeStart, now);
      } else {
        this.s.flagSequenceRunCancel.run(id);
      }
      return this.withMembers(this.s.sequenceRun.get(id) as SequenceRunRow);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Outbox of finished runs

  async takeFinishedRuns(limit: number, now: number, lease: LeaseRequest): Promise<FinishedRunEntry[]> {
    // As claimNextSyncRun: a poll that finds nothing takes no write lock.
    if (this.read(() => this.s.anyFinishedRunFree.get({ now })) === undefined) return [];
    return this.write(() =>
      (this.s.takeFinishedRuns.all({ limit, now, workerId: lease.workerId, until: now + lease.leaseMs }) as FinishedRunRow[]).map(toFinishedRun),
    );
  }

  async ackFinishedRuns(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    this.write(() => this.s.ackFinishedRuns.run(JSON.stringify(ids)));
  }

  // -------------------------------------------------------------------------------------------
  // Internals (synchronous; callers hold a transaction)

  private workspaceState(): WorkspaceState {
    const all = <T>(kind: Kind) => (this.s.entities[kind].live.all() as EntityRow[]).map((row) => toRecord(row, kind, this.secrets) as T);
    return {
      sources: all<ConnectionRecord>('source'),
      destinations: all<ConnectionRecord>('destination'),
      models: all<ModelRecord>('model'),
      syncs: all<SyncRecord>('sync'),
      sequences: all<SequenceRecord>('sequence'),
      alerts: this.alerts.readDefinition(),
      webhooks: this.webhooks.readSettings(),
    };
  }

  private applyChange(change: EntityChange, definition: WorkspaceDefinition, now: number): void {
    const statements = this.s.entities[change.kind];
    if (change.action === 'delete') {
      const deleted = statements.softDelete.get({ slug: change.slug, now }) as { id: number } | undefined;
      if (deleted) this.afterDelete(change.kind, deleted.id, change.slug, now);
      return;
    }
    const entity = declaredEntity(definition, change);
    if (!entity) return;
    const params: Record<string, SqliteValue> = { slug: entity.slug, definition: definitionJson(entity, change.kind, this.secrets), now, origin: 'file' };
    if (TABLES[change.kind].enabled) params.enabled = entity.enabled === false ? 0 : 1;
    (change.action === 'create' ? statements.insert : statements.update).run(params);
  }

  /** Work that can never run once its sync or sequence is gone is cancelled with it. */
  private afterDelete(kind: Kind, id: number, slug: string, now: number): void {
    if (kind === 'sync') {
      for (const run of this.s.cancelQueuedRunsOfSync.all(now, CANCEL_REASONS.SyncDeleted, id) as Array<{ id: number }>) {
        this.s.recordFinishedRun.run('sync', String(run.id), now);
      }
      // A sequence run keeps the members it was queued with: one that would still start this sync
      // never could, and the run would wait for it forever. A queued run is cancelled; a running
      // one is terminated by that member (what runs finishes, the rest is skipped) and ends failed.
      const waiting = this.s.sequenceRunsWaitingOnSync.all(id) as Array<{ id: string; status: string; key: string }>;
      for (const run of waiting) {
        const reason = memberSyncDeletedReason(run.key, slug);
        if (run.status === 'pending') {
          this.cancelPendingSequenceRunTx(run.id, reason, now);
        } else {
          this.s.setTermination.run(run.key, reason, run.id);
          this.skipPending(run.id, now);
        }
      }
      this.snapshots.dropSync(id);
    } else if (kind === 'sequence') {
      for (const { id: runId } of this.s.pendingRunsOfSequence.all(id) as Array<{ id: string }>) {
        this.cancelPendingSequenceRunTx(runId, CANCEL_REASONS.SequenceDeleted, now);
      }
    }
  }

  private entityByRef<T>(kind: 'sync' | 'sequence', ref: number | string): T | null {
    const statements = this.s.entities[kind];
    if (typeof ref === 'number' || /^\d+$/.test(ref)) {
      const row = statements.byId.get(Number(ref)) as EntityRow | undefined;
      if (row) return toRecord(row, kind, this.secrets) as T;
      if (typeof ref === 'number') return null;
    }
    return this.entityBySlug<T>(kind, ref);
  }

  private entityBySlug<T>(kind: Kind, slug: string): T | null {
    const row = this.s.entities[kind].bySlug.get(slug) as EntityRow | undefined;
    return row ? (toRecord(row, kind, this.secrets) as T) : null;
  }

  private insertSyncRun(
    syncId: number,
    trigger: Trigger,
    options: SyncRunOptions,
    sequenceRunId: string | null,
    memberKey: string | null,
    now: number,
  ): SyncRunRow {
    return this.s.insertSyncRun.get({
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
  private followRun(row: SyncRunRow, now: number): void {
    if (row.sequence_run_id === null || row.member_key === null) return;
    const next = memberTransition(row.status as SyncRunStatus);
    this.s.followRun.run({
      status: next.status,
      started: next.started ? 1 : 0,
      finished: next.finished ? 1 : 0,
      now,
      sequenceRunId: row.sequence_run_id,
      memberKey: row.member_key,
      syncRunId: row.id,
    });
  }

  /** Skips pending members; their queued runs end cancelled, recorded as finished runs. */
  private skipPending(sequenceRunId: string, now: number): void {
    for (const run of this.s.cancelQueuedRunsOfPendingMembers.all({ sequenceRunId, now }) as Array<{ id: number }>) {
      this.s.recordFinishedRun.run('sync', String(run.id), now);
    }
    this.s.skipPendingMembers.run({ sequenceRunId, now });
  }

  /**
   * Ends a pending run cancelled before it started (`reason` kept unless one is recorded), its
   * members skipped, and records it as a finished run: the audit log keeps it like any run that ended.
   */
  private cancelPendingSequenceRunTx(sequenceRunId: string, reason: string, now: number): void {
    if (this.s.cancelPendingSequenceRun.get(now, reason, sequenceRunId) === undefined) return;
    this.skipPending(sequenceRunId, now);
    this.s.recordFinishedRun.run('sequence', sequenceRunId, now);
  }

  private startMembersTx(sequenceRunId: string, members: MemberStart[], now: number): SyncRun[] {
    {
      const run = this.s.sequenceRun.get(sequenceRunId) as SequenceRunRow | undefined;
      if (!run) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      if (isTerminalSequenceRunStatus(run.status)) return [];
      const created: SyncRun[] = [];
      for (const member of members) {
        const current = this.s.memberWithRun.get(sequenceRunId, member.key) as
          | { member_status: string; sync_run_id: number | null; run_status: string | null }
          | undefined;
        if (!current) {
          throw new NotFoundError(`sequence run ${sequenceRunId} has no member "${member.key}"`);
        }
        if (!memberNeedsRun({ memberStatus: current.member_status, syncRunId: current.sync_run_id, runStatus: current.run_status })) continue;
        if (!this.s.liveSync.get(member.syncId)) {
          throw new NotFoundError(`member "${member.key}" of sequence run ${sequenceRunId} runs sync ${member.syncId}, which does not exist`);
        }
        const row = this.insertSyncRun(
          member.syncId,
          { type: 'sequence', detail: sequenceRunId },
          { fullResync: false, resetCDC: false },
          sequenceRunId,
          member.key,
          now,
        );
        this.s.linkMember.run({ sequenceRunId, key: member.key, syncRunId: row.id, syncId: member.syncId });
        created.push(toSyncRun(row));
      }
      return created;
    }
  }

  private finishSequenceRunTx(sequenceRunId: string, status: SequenceRunStatus, now: number): SequenceRun {
    {
      const current = this.s.sequenceRun.get(sequenceRunId) as SequenceRunRow | undefined;
      if (!current) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      if (isTerminalSequenceRunStatus(current.status)) {
        if (current.status === status) return this.withMembers(current);
        throw sequenceRunFinishedError(sequenceRunId, current.status, status);
      }
      const row = this.s.finishSequenceRun.get({
        id: sequenceRunId,
        status,
        terminal: isTerminalSequenceRunStatus(status) ? 1 : 0,
        now,
      }) as SequenceRunRow;
      this.s.recordFinishedRun.run('sequence', sequenceRunId, now);
      return this.withMembers(row);
    }
  }

  /**
   * The live sequence `id`, parsed once per version of its row: every hand-off of a long sequence
   * reads it, and parsing its definition each time cost as much as the rest of the hand-off.
   */
  private sequenceForAdvance(id: number): SequenceRecord | null {
    const row = this.s.entities.sequence.byId.get(id) as EntityRow | undefined;
    if (!row) return null;
    const cached = this.parsedSequences.get(id);
    if (cached && cached.row.definition === row.definition && cached.row.updated_at === row.updated_at && cached.row.enabled === row.enabled) {
      return cached.record;
    }
    const record = toRecord<SequenceRecord>(row, 'sequence', this.secrets);
    this.parsedSequences.set(id, { row, record });
    return record;
  }

  /** A cancel request: a queued run ends at once, an active one is flagged and stops at its next batch boundary. */
  private cancelSyncRunTx(id: number, now: number): SyncRun {
    const current = this.s.syncRun.get(id) as SyncRunRow | undefined;
    if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
    const status = current.status as SyncRunStatus;
    if (isTerminalSyncRunStatus(status)) throw nothingToCancelError(`sync run ${id}`, status);
    if (status === 'queued') {
      const row = this.s.cancelQueuedSyncRun.get(now, id) as SyncRunRow;
      this.followRun(row, now);
      this.s.recordFinishedRun.run('sync', String(id), now);
      return toSyncRun(row);
    }
    return toSyncRun(this.s.flagSyncRunCancel.get(id) as SyncRunRow);
  }

  private withMembers(row: SequenceRunRow): SequenceRun {
    return toSequenceRun(row, this.s.members.all(row.id) as MemberRunRow[]);
  }

  /**
   * Copies committed WAL pages into the database file without waiting for readers or writers
   * (PASSIVE). A failure here is harmless: the next checkpoint, or SQLite's own, does the work.
   */
  private checkpoint(): void {
    if (!this.db.open) return;
    // While the write worker runs, it checkpoints (off this thread, between its transactions).
    if (this.writeWorker?.checkpoint()) return;
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // Busy or closing; retried on the next tick.
    }
  }

  private statement(sql: string): SqliteStatement {
    let statement = this.dynamic.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.dynamic.set(sql, statement);
    }
    return statement;
  }

  /** Runs `fn` in a write transaction (`BEGIN IMMEDIATE`). */
  private write<R>(fn: () => R): R {
    try {
      return immediateTransaction(this.db, fn);
    } catch (error) {
      throw storeError(this.path, this.busyTimeoutMs, error);
    }
  }

  /** Runs `fn` in a read transaction, so multi-statement reads see one state of the file. */
  private read<R>(fn: () => R): R {
    try {
      return this.tx(fn) as R;
    } catch (error) {
      throw storeError(this.path, this.busyTimeoutMs, error);
    }
  }
}

function addTimeFilters(
  query: { after?: number; before?: number },
  where: string[],
  params: SqliteValue[],
): void {
  if (query.after !== undefined) {
    where.push('created_at >= ?');
    params.push(query.after);
  }
  if (query.before !== undefined) {
    where.push('created_at < ?');
    params.push(query.before);
  }
}

/** Lockstep's own errors pass through; SQLite's become a `store` error naming the file. */
/** The stored texts holding sealed values: entity definitions (deleted ones too), the alert definition, webhook settings. */
function sealedTexts(db: SqliteDatabase): string[] {
  const columns = [...KINDS.map((kind) => [TABLES[kind].table, 'definition']), ['alert_definitions', 'definition'], ['webhook_settings', 'settings']];
  return columns.flatMap(([table, column]) =>
    (db.prepare(`SELECT ${column} AS text FROM ${table} WHERE instr(${column}, ?) > 0`).all(SEALED_PREFIX) as Array<{ text: string }>).map((row) => row.text),
  );
}

/**
 * An existing store file opened for reading, its schema checked (nothing can be migrated). A WAL
 * database needs its `-shm` file; in a folder that cannot be written SQLite cannot create it, and the
 * file is then read as immutable — unless its `-wal` file holds changes not yet in the file, which
 * only a process that can write may fold in.
 */
function openReadOnly(path: string, busyTimeoutMs: number): SqliteDatabase {
  const db = openSqliteDatabase(path, { timeout: busyTimeoutMs, readonly: true, fileMustExist: true });
  try {
    checkSchemaIsCurrent(db, path);
    return db;
  } catch (error) {
    db.close();
    const code = isSqliteError(error) ? error.code : '';
    if (code !== 'SQLITE_READONLY_DIRECTORY' && code !== 'SQLITE_CANTOPEN' && !code.startsWith('SQLITE_READONLY_CANT')) throw error;
  }
  const walBytes = existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0;
  if (walBytes > 0) {
    throw new LockstepError(
      ErrorCode.Store,
      `store ${path} can only be read, and its write-ahead log (${path}-wal, ${walBytes} bytes) holds changes not yet in the file that only a process allowed to write the folder can fold in — run any command once with write access (e.g. \`lockstep plan\`), or make the folder writable`,
    );
  }
  const immutable = openSqliteDatabase(path, { timeout: busyTimeoutMs, fileMustExist: true, immutable: true });
  try {
    checkSchemaIsCurrent(immutable, path);
    return immutable;
  } catch (error) {
    immutable.close();
    throw error;
  }
}

/** Whether opening a store failed because its file or folder cannot be written (it may still open read-only). */
export function isNotWritable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'string' && (/^SQLITE_(READONLY|CANTOPEN|PERM)/.test(code) || code === 'EACCES' || code === 'EROFS' || code === 'EPERM')) return true;
  }
  return false;
}

function storeError(path: string, busyTimeoutMs: number, error: unknown): unknown {
  if (error instanceof LockstepError) return error;
  if (isSqliteError(error)) {
    const code = error.code;
    // The unique indexes are the last guard of the run rules (one active run per sync, ...):
    // hitting one is a conflict with the current state, not a broken store.
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
      return new NotFoundError(`store ${path}: the change refers to a run or entity that does not exist`);
    }
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
      return new LockstepError(ErrorCode.Conflict, `store ${path}: the change conflicts with the current state (${error.message})`, {
        cause: error,
      });
    }
    const busy = code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
    return new LockstepError(ErrorCode.Store, `store ${path}: ${describeSqliteCode(code, busyTimeoutMs)} (${error.message})`, {
      cause: error,
      retryable: busy,
    });
  }
  if (error instanceof TypeError && /database connection is not open/i.test(error.message)) {
    return new LockstepError(ErrorCode.Store, `store ${path} is closed`, { cause: error });
  }
  return error;
}

function describeSqliteCode(code: string, busyTimeoutMs: number): string {
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return `the file stayed locked by another process for more than ${busyTimeoutMs} ms`;
  }
  if (code.startsWith('SQLITE_FULL')) return 'the disk is full';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return 'the file is damaged or is not a Lockstep store; restore it from a backup or choose another path';
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_CANTOPEN')) {
    return 'the file cannot be opened for writing; check its permissions and folder';
  }
  if (code.startsWith('SQLITE_IOERR')) return 'reading or writing the file failed';
  return `SQLite failed with ${code}`;
}

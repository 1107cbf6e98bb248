/**
 * The embedded store: one SQLite file (SPEC §7), opened in WAL mode so readers never wait for the
 * writer. Every method that writes runs in one `BEGIN IMMEDIATE` transaction (the write lock is
 * taken at BEGIN, so two processes on the same file serialize instead of deadlocking on an upgrade),
 * which makes each method whole or nothing. Methods are async to match the port; they finish
 * their work synchronously.
 *
 * Each role of the Store port is played by an object of its own on this connection (the workspace,
 * sync runs, sequence runs, snapshots, schedules, alerts, webhooks, tokens), sharing its prepared
 * statements and transactions; this class opens and closes the file, hands each method to its role,
 * and runs here what spans roles in one transaction: a fired run queued with its firing key, and
 * the work a deleted sync or sequence leaves behind.
 *
 * The run rules (../run-rules.ts) and workspace rules (../workspace-changes.ts) are shared with the
 * other stores; the unique indexes of migrations.ts make the file itself refuse a double claim.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { ErrorCode, LockstepError, NotFoundError, toError } from '../../core/errors.js';
import type { Clock, FinishedRunEntry, FiredRun, LeaseRequest, Store, StoreCapabilities } from '../../core/ports.js';
import { SecretCodec, type SecretResealer } from '../../core/secrets.js';
import type { EntityKind } from '../../core/workspace.js';
import { toFinishedRun, type FinishedRunRow } from '../rows.js';
import { StoreRoles } from '../store-roles.js';
import { StoreSecretKeys, keyFileFor } from '../secret-keys.js';
import { checkSchemaIsCurrent, migrate, newerSchemaSinceOpened } from './migrations.js';
import { SqliteAlertStore } from './sqlite-alert-store.js';
import {
  immediateTransaction,
  isSqliteError,
  openSqliteDatabase,
  type SqliteDatabase,
  type SqliteStatement,
  type SqliteTransaction,
} from './sqlite-database.js';
import { SqliteRunFence } from './sqlite-run-fence.js';
import { SqliteScheduleStore } from './sqlite-schedule-store.js';
import { SqliteSequenceRunStore } from './sqlite-sequence-run-store.js';
import { SqliteSnapshotStore } from './sqlite-snapshot-store.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import { SqliteSyncRunStore } from './sqlite-sync-run-store.js';
import { SqliteTokenStore } from './sqlite-token-store.js';
import { SqliteWebhookStore } from './sqlite-webhook-store.js';
import { SqliteWorkspaceStore, sealedTexts } from './sqlite-workspace-store.js';
import { SqliteWriteWorker } from './sqlite-write-worker.js';

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

export class SqliteStore extends StoreRoles implements Store, SecretResealer, AsyncDisposable {
  readonly capabilities: StoreCapabilities = { skipLocked: false, notifications: false };
  /** Absolute path of the database file. */
  readonly path: string;
  /** Schema versions this open applied (empty when the file was already up to date). */
  readonly migrationsApplied: readonly number[];

  private readonly db: SqliteDatabase;
  private readonly busyTimeoutMs: number;
  private readonly statements: Statements;
  /** Refuses the writes of a run's attempt once another worker took the run over. */
  private readonly fence: SqliteRunFence;
  /** The read transactions' wrapper: it runs the function it is given (writes: immediateTransaction). */
  private readonly transaction: SqliteTransaction<[() => unknown], unknown>;
  /** Statements whose SQL depends on the arguments (IN-lists, list filters), prepared once per shape. */
  private readonly dynamic = new Map<string, SqliteStatement>();
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
  /** Entities, with the alerts and webhook settings applied with them. */
  protected readonly workspace: SqliteWorkspaceStore;
  /** The run queue and history of sync runs. */
  protected readonly syncRuns: SqliteSyncRunStore;
  /** Sequence runs and their members. */
  protected readonly sequenceRuns: SqliteSequenceRunStore;

  private constructor(
    db: SqliteDatabase,
    path: string,
    clock: Clock,
    busyTimeoutMs: number,
    checkpointIntervalMs: number,
    applied: number[],
    secrets: SecretCodec,
  ) {
    super();
    this.db = db;
    this.path = path;
    this.busyTimeoutMs = busyTimeoutMs;
    this.migrationsApplied = applied;
    this.statements = prepareStatements(db);
    this.fence = new SqliteRunFence(this.statements);
    this.transaction = db.transaction((fn: () => unknown) => fn());
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
    const statement = (sql: string) => this.statement(sql);
    this.workspace = new SqliteWorkspaceStore({
      db,
      statements: this.statements,
      transactions,
      statement,
      secrets,
      clock,
      alerts: this.alerts,
      webhooks: this.webhooks,
      afterDelete: (kind, id, slug, now) => this.afterDelete(kind, id, slug, now),
      afterDisable: (kind, id, now) => this.afterDisable(kind, id, now),
      startOver: (id, now) => this.startOver(id, now),
    });
    this.syncRuns = new SqliteSyncRunStore({ statements: this.statements, transactions, fence: this.fence, statement, clock });
    this.sequenceRuns = new SqliteSequenceRunStore({ statements: this.statements, transactions, statement, secrets, clock, syncRuns: this.syncRuns });
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
  // Across roles, in one write transaction

  async enqueueFiredRun(key: string, run: FiredRun, now: number): Promise<{ runId: string; created: boolean } | null> {
    return this.write(() => {
      if (!this.schedules.recordKey(key, now)) return null;
      // A throw (the sync or sequence is gone) rolls the key back with the rest.
      if (run.kind === 'sync') {
        const queued = this.syncRuns.queue(run.run, now);
        return { runId: String(queued.run.id), created: queued.created };
      }
      const queued = this.sequenceRuns.queue(run.sequence, run.trigger, now);
      return { runId: queued.run.id, created: queued.created };
    });
  }

  /** Work that can never run once its sync or sequence is gone is cancelled with it, in the delete's transaction. */
  private afterDelete(kind: EntityKind, id: number, slug: string, now: number): void {
    if (kind === 'sync') {
      this.syncRuns.cancelQueuedOfDeletedSync(id, now);
      this.sequenceRuns.endRunsWaitingOnDeletedSync(id, slug, now);
      this.snapshots.dropSync(id);
    } else if (kind === 'sequence') {
      this.sequenceRuns.cancelPendingOfDeletedSequence(id, now);
    }
  }

  /** A disabled sequence does not run on schedules, webhooks or upstream runs: a run they queued before goes with it. */
  private afterDisable(kind: 'sync' | 'sequence', id: number, now: number): void {
    if (kind === 'sequence') this.sequenceRuns.cancelFiredPendingOfDisabledSequence(id, now);
    else this.syncRuns.cancelFiredQueuedOfDisabledSync(id, now);
  }
  /** A sync whose snapshot no longer says what it delivers (see syncsStartingOver): the snapshot goes, and its run under way ends. */
  private startOver(syncId: number, now: number): void {
    this.snapshots.dropSync(syncId);
    this.syncRuns.endActiveOfSyncStartingOver(syncId, now);
  }


  // -------------------------------------------------------------------------------------------
  // Outbox of finished runs

  async takeFinishedRuns(limit: number, now: number, lease: LeaseRequest): Promise<FinishedRunEntry[]> {
    // As claimNextSyncRun: a poll that finds nothing takes no write lock.
    if (this.read(() => this.statements.anyFinishedRunFree.get({ now })) === undefined) return [];
    return this.write(() =>
      (this.statements.takeFinishedRuns.all({ limit, now, workerId: lease.workerId, until: now + lease.leaseMs }) as FinishedRunRow[]).map(toFinishedRun),
    );
  }

  async ackFinishedRuns(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    this.write(() => this.statements.ackFinishedRuns.run(JSON.stringify(ids)));
  }

  // -------------------------------------------------------------------------------------------
  // The connection

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

  async newerSchema(): Promise<LockstepError | null> {
    return this.read(() => newerSchemaSinceOpened(this.db, this.path));
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
      return this.transaction(fn) as R;
    } catch (error) {
      throw storeError(this.path, this.busyTimeoutMs, error);
    }
  }
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

/** Lockstep's own errors pass through; SQLite's become a `store` error naming the file. */
function storeError(path: string, busyTimeoutMs: number, error: unknown): unknown {
  if (error instanceof LockstepError) return error;
  if (isSqliteError(error)) {
    const code = error.code;
    // The unique indexes are the last guard of the run rules (one active run per sync, ...):
    // hitting one is a conflict with the current state, not a broken store.
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
      return new NotFoundError('the change refers to a run or entity that does not exist in the store');
    }
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
      return new LockstepError(ErrorCode.Conflict, `the change conflicts with the current state of the store (${error.message})`, {
        cause: error,
      });
    }
    const busy = code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
    return new LockstepError(ErrorCode.Store, `store ${path}: ${describeSqliteCode(code, busyTimeoutMs)} (${error.message})`, {
      cause: error,
      location: `store ${path}`,
      retryable: busy,
    });
  }
  if (error instanceof TypeError && /database connection is not open/i.test(error.message)) {
    return new LockstepError(ErrorCode.Store, `store ${path} is closed`, { cause: error, location: `store ${path}` });
  }
  return error;
}

function describeSqliteCode(code: string, busyTimeoutMs: number): string {
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return `the file stayed locked by another process for more than ${busyTimeoutMs} ms`;
  }
  if (code.startsWith('SQLITE_FULL')) {
    return 'the disk holding it is full; free space on that disk (or move the workspace to a larger one), then run again — what was committed before is kept';
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return 'the file is damaged or is not a Lockstep store; restore it from a backup or choose another path';
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_CANTOPEN')) {
    return 'the file cannot be opened for writing; check its permissions and folder';
  }
  if (code.startsWith('SQLITE_IOERR')) return 'reading or writing the file failed';
  return `SQLite failed with ${code}`;
}


/**
 * The PostgreSQL store (SPEC §7): the same contract as the embedded SQLite store, on a database that
 * any number of processes on any number of machines share. Every table lives in one schema
 * (default `lockstep`).
 *
 * How several processes stay correct:
 * - claims, sync run enqueues and status updates are single statements guarded by unique partial
 *   indexes (one queued standalone run and one active run per sync, one pending and one running
 *   run per sequence): a claim that loses a race hits the index and answers null, a sync run
 *   enqueue that races joins the queued run (`ON CONFLICT ... DO UPDATE`), and a member run follows
 *   its sync run in the same statement;
 * - a claimed run is held under a lease (worker id, expiry, attempt); the next claim picks its
 *   candidate with `FOR UPDATE SKIP LOCKED`, so workers never wait for each other, and takes over
 *   runs whose lease expired; a write carrying an attempt share-locks the run row and checks the
 *   attempt first, so it either commits before a takeover or is refused after it (fencing);
 * - methods that read before they write lock what they read (`FOR UPDATE` on the sequence or
 *   sequence run, `FOR SHARE` on the syncs they start runs of, an advisory lock around workspace
 *   changes); alert deliveries and finished runs are taken with `FOR UPDATE SKIP LOCKED`;
 * - queued work, released leases and finished runs are announced with NOTIFY in the transaction
 *   that makes them, so other processes' `watch` listeners hear of them once they commit;
 * - transactions PostgreSQL aborts for a serialization failure or a deadlock run again (see
 *   PostgresDatabase).
 * Run and workspace rules are shared with the SQLite store (../run-rules.ts,
 * ../workspace-changes.ts, ../member-state.ts).
 *
 * Each role of the Store port is played by an object of its own on this database (the workspace,
 * sync runs, sequence runs, snapshots, schedules, alerts, webhooks, tokens), sharing the SQL of
 * postgres-statements.ts; this class connects and closes, hands each method to its role, and runs
 * here what spans roles in one transaction: a fired run queued with its firing key, and the work a
 * deleted sync or sequence leaves behind.
 */
import { systemClock } from '../../core/clock.js';
import type { LockstepError } from '../../core/errors.js';
import { DEFAULT_STORE_ANSWER_TIMEOUT_MS, storeUrlAnswerTimeout, storeUrlSchema } from '../../core/connections.js';
import { silentLogger } from '../../core/logger.js';
import type {
  Clock,
  FinishedRunEntry,
  FiredRun,
  LeaseRequest,
  Logger,
  Store,
  StoreCapabilities,
  StoreTopic,
} from '../../core/ports.js';
import { SecretCodec, type SecretResealer } from '../../core/secrets.js';
import type { EntityKind } from '../../core/workspace.js';
import { toFinishedRun, type FinishedRunRow } from '../rows.js';
import { StoreRoles } from '../store-roles.js';
import { StoreSecretKeys } from '../secret-keys.js';
import { PostgresAlertStore } from './postgres-alert-store.js';
import { PostgresDatabase, type Queryable } from './postgres-database.js';
import { migrate, newerSchemaSinceOpened, notificationChannel } from './postgres-migrations.js';
import { takeMigrationLock, type MigrationLockProgress } from './postgres-copy-lease.js';
import { PostgresNotifications } from './postgres-notifications.js';
import { PostgresRunFence } from './postgres-run-fence.js';
import { PostgresScheduleStore } from './postgres-schedule-store.js';
import { PostgresSequenceRunStore } from './postgres-sequence-run-store.js';
import { PostgresSnapshotStore } from './postgres-snapshot-store.js';
import { PostgresStatements, safeId } from './postgres-statements.js';
import { PostgresSyncRunStore } from './postgres-sync-run-store.js';
import { PostgresTokenStore } from './postgres-token-store.js';
import { PostgresWebhookStore } from './postgres-webhook-store.js';
import { PostgresWorkspaceStore, sealedTexts } from './postgres-workspace-store.js';

export interface PostgresStoreOptions {
  /**
   * `postgres://user:password@host:port/database`; may carry libpq settings such as `?sslmode=require`,
   * and the store's schema as `?schema=NAME`.
   */
  url: string;
  /** The schema Lockstep's tables live in; created when missing (default: the URL's `schema` parameter, else `lockstep`). */
  schema?: string;
  /** Gives the time for the few changes the port passes no `now` to (cancel requests) (default: the system clock). */
  clock?: Clock;
  /** Connections this process opens at most (default: 10). */
  poolSize?: number;
  /** Milliseconds to wait for a connection before failing (default: 10000). */
  connectTimeoutMs?: number;
  /**
   * Milliseconds a store session may stay idle inside a transaction before the server ends it
   * (default: 30000, the default lease): locks held by a frozen process are freed by then.
   */
  idleInTransactionMs?: number;
  /**
   * Milliseconds a store statement may run before the server ends it, whatever the database or
   * role sets (default: 600000, 10 minutes); migrations run without a limit.
   */
  statementTimeoutMs?: number;
  /**
   * Milliseconds a store statement may go unanswered before the server is asked, on a connection
   * of its own, whether it is still working on it; the statement fails when it is not, or when
   * that question is not answered in this time either (default: the URL's `answer_timeout`
   * parameter in seconds, else 10000: a heartbeat that cannot reach the store fails within a
   * third of the default lease).
   */
  answerTimeoutMs?: number;
  /**
   * Seals the secrets it writes and opens those it reads (default: no key: secrets are written as
   * they are, and a sealed one cannot be read).
   */
  secrets?: SecretCodec;
  /** Told when the connection listening for notifications is lost (default: nobody). */
  logger?: Logger;
}

/** How long a store statement may run, ms (see PostgresStoreOptions.statementTimeoutMs). */
const DEFAULT_STATEMENT_TIMEOUT_MS = 10 * 60_000;

/** How much later this store's listeners hear what it announced itself, ms (see PostgresNotifications). */
const ECHO_DELAY_MS = 20;

export class PostgresStore extends StoreRoles implements Store, SecretResealer, AsyncDisposable {
  readonly capabilities: StoreCapabilities = { skipLocked: true, notifications: true };
  /** Schema versions this open applied (empty when the schema was already up to date). */
  readonly migrationsApplied: readonly number[];
  /** `PostgreSQL at host:port/database as user (schema "lockstep")`: where the store is, without secrets. */
  readonly where: string;
  readonly webhooks: PostgresWebhookStore;
  readonly alerts: PostgresAlertStore;
  readonly tokens: PostgresTokenStore;
  readonly snapshots: PostgresSnapshotStore;
  readonly schedules: PostgresScheduleStore;

  private readonly db: PostgresDatabase;
  private readonly notifications: PostgresNotifications;
  /** Table names, qualified with the quoted schema. */
  private readonly tables: PostgresStatements['tables'];
  /** Entities, with the alerts and webhook settings applied with them. */
  protected readonly workspace: PostgresWorkspaceStore;
  /** The run queue and history of sync runs. */
  protected readonly syncRuns: PostgresSyncRunStore;
  /** Sequence runs and their members. */
  protected readonly sequenceRuns: PostgresSequenceRunStore;

  private constructor(db: PostgresDatabase, schemaName: string, clock: Clock, applied: number[], secrets: SecretCodec, logger: Logger) {
    super();
    this.db = db;
    this.where = db.where;
    const channel = notificationChannel(schemaName);
    this.notifications = new PostgresNotifications({
      client: () => db.client('lockstep notifications'),
      channel,
      where: db.where,
      answered: (client, send) => db.answered(client, send),
      // A connection the network stopped answering is given up within about twice the answer timeout.
      checkEveryMs: db.answerTimeoutMs,
      logger,
      isOwnBackend: (pid) => db.ownsBackend(pid),
      echoDelayMs: ECHO_DELAY_MS,
    });
    this.migrationsApplied = applied;
    const statements = new PostgresStatements(db, channel);
    this.tables = statements.tables;
    this.webhooks = new PostgresWebhookStore(db, secrets);
    this.alerts = new PostgresAlertStore(db, secrets);
    this.tokens = new PostgresTokenStore(db);
    const fence = new PostgresRunFence(db);
    this.snapshots = new PostgresSnapshotStore(db, fence);
    this.schedules = new PostgresScheduleStore(db);
    this.workspace = new PostgresWorkspaceStore({
      db,
      schemaName,
      secrets,
      clock,
      alerts: this.alerts,
      webhooks: this.webhooks,
      afterDelete: (q, kind, id, slug, now) => this.afterDelete(q, kind, id, slug, now),
      afterDisable: (q, kind, id, now) => this.afterDisable(q, kind, id, now),
      startOver: (q, id, now) => this.startOver(q, id, now),
    });
    this.syncRuns = new PostgresSyncRunStore({
      db,
      statements,
      fence,
      clock,
      endAndOpenAdvance: (id, patch, now, attempt) => this.sequenceRuns.endAndOpenAdvance(id, patch, now, attempt),
    });
    this.sequenceRuns = new PostgresSequenceRunStore({ db, statements, secrets, clock, syncRuns: this.syncRuns });
  }

  /** Connects, creates the schema when missing and brings it up to date (once, whoever starts first). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const { db, schema } = PostgresStore.connection(options);
    const clock = options.clock ?? systemClock;
    try {
      const logger = options.logger ?? silentLogger;
      const applied = await db.transaction(async (q) => {
        // A migration may rewrite a large table, and a process waits for another's migration as
        // long as that one is at it (takeMigrationLock tells a copy left behind from one at work).
        await q.query('SET LOCAL statement_timeout = 0');
        await takeMigrationLock(q, { schema, where: db.where, onProgress: (progress) => logMigrationLock(logger, db.where, progress) });
        return migrate(q, schema, db.where, clock.now());
      });
      const secrets = options.secrets ?? new SecretCodec({ keys: new StoreSecretKeys({ store: db.where, keyFile: null }), secretSettings: () => [] });
      // A store whose secrets its keys cannot open is refused now, not at its first read.
      secrets.checkKeys(await sealedTexts(db.direct, db.schema));
      return new PostgresStore(db, schema, clock, applied, secrets, logger);
    } catch (error) {
      const wrapped = db.error(error);
      await db.close().catch(() => undefined);
      throw wrapped;
    }
  }

  /**
   * Whether a store was created in the schema `options` name (a process opened it): commands that
   * only read open none where there is none, since opening creates it.
   */
  static async exists(options: Pick<PostgresStoreOptions, 'url' | 'schema' | 'connectTimeoutMs'>): Promise<boolean> {
    const { db } = PostgresStore.connection({ ...options, poolSize: 1 });
    try {
      const [row] = await db.query<{ found: boolean }>('SELECT to_regclass($1) IS NOT NULL AS found', [`${db.schema}.schema_migrations`]);
      return row?.found === true;
    } finally {
      await db.close().catch(() => undefined);
    }
  }

  /** The pool for `options`: the schema given, else the one the URL names, else `lockstep`. */
  private static connection(options: PostgresStoreOptions): { db: PostgresDatabase; schema: string } {
    const named = storeUrlSchema(options.url);
    const timed = storeUrlAnswerTimeout(named.url);
    const schema = options.schema ?? named.schema ?? 'lockstep';
    const db = new PostgresDatabase({
      url: timed.url,
      schema,
      poolSize: options.poolSize ?? 10,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      idleInTransactionMs: options.idleInTransactionMs ?? 30_000,
      statementTimeoutMs: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
      answerTimeoutMs: options.answerTimeoutMs ?? timed.answerTimeoutMs ?? DEFAULT_STORE_ANSWER_TIMEOUT_MS,
    });
    return { db, schema };
  }

  async close(): Promise<void> {
    await this.sequenceRuns.abandonOpenedAdvances();
    await this.notifications.close();
    await this.db.close();
  }


  /**
   * Calls `listener` soon after any process sharing this schema queued work, released leases or
   * finished a run; returns the unsubscribe. Listening takes a connection of its own while anyone
   * listens.
   */
  watch(listener: (topic: StoreTopic) => void): () => void {
    return this.notifications.watch(listener);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }


  // -------------------------------------------------------------------------------------------
  // Across roles, in one transaction

  async enqueueFiredRun(key: string, run: FiredRun, now: number): Promise<{ runId: string; created: boolean } | null> {
    return this.db.transaction(async (q) => {
      // A key recorded by a transaction still open waits for it here, then counts as recorded.
      if (!(await this.schedules.recordKey(q, key, now))) return null;
      // A throw (the sync or sequence is gone) rolls the key back with the rest.
      if (run.kind === 'sync') {
        const queued = await this.syncRuns.queue(q, run.run, now);
        return { runId: String(queued.run.id), created: queued.created };
      }
      const queued = await this.sequenceRuns.queue(q, run.sequence, run.trigger, now);
      return { runId: queued.run.id, created: queued.created };
    });
  }

  /** Work that can never run once its sync or sequence is gone is cancelled with it, in the delete's transaction `q`. */
  private async afterDelete(q: Queryable, kind: EntityKind, id: number, slug: string, now: number): Promise<void> {
    if (kind === 'sync') {
      await this.syncRuns.cancelQueuedOfDeletedSync(q, id, now);
      await this.sequenceRuns.endRunsWaitingOnDeletedSync(q, id, slug, now);
      await this.snapshots.dropSync(q, id);
    } else if (kind === 'sequence') {
      await this.sequenceRuns.cancelPendingOfDeletedSequence(q, id, now);
    }
  }

  /** A disabled sequence does not run on schedules, webhooks or upstream runs: a run they queued before goes with it, in `q`'s transaction. */
  private async afterDisable(q: Queryable, kind: 'sync' | 'sequence', id: number, now: number): Promise<void> {
    if (kind === 'sequence') await this.sequenceRuns.cancelFiredPendingOfDisabledSequence(q, id, now);
    else await this.syncRuns.cancelFiredQueuedOfDisabledSync(q, id, now);
  }
  /** A sync whose snapshot no longer says what it delivers (see syncsStartingOver): the snapshot goes, and its run under way ends. */
  private async startOver(q: Queryable, syncId: number, now: number): Promise<void> {
    await this.snapshots.dropSync(q, syncId);
    await this.syncRuns.endActiveOfSyncStartingOver(q, syncId, now);
  }


  async newerSchema(): Promise<LockstepError | null> {
    return newerSchemaSinceOpened(this.db.direct, `${this.db.schema}.schema_migrations`, this.db.where);
  }

  async serverTime(): Promise<number> {
    // clock_timestamp(): the time at this statement, not at its transaction's start.
    const [row] = await this.db.query<{ now: number }>('SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS now');
    return Number(row!.now);
  }

  // -------------------------------------------------------------------------------------------
  // Outbox of finished runs

  async takeFinishedRuns(limit: number, now: number, lease: LeaseRequest): Promise<FinishedRunEntry[]> {
    if (limit <= 0) return [];
    // SKIP LOCKED: processes taking at once each get other entries, without waiting.
    const rows = await this.db.query<FinishedRunRow>(
      `WITH free AS (
         SELECT id FROM ${this.tables.finishedRuns} WHERE held_until IS NULL OR held_until <= $1
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.tables.finishedRuns} AS f SET held_by = $3, held_until = $4 FROM free WHERE f.id = free.id
       RETURNING f.id, f.kind, f.run_id`,
      [now, Math.floor(limit), lease.workerId, now + lease.leaseMs],
    );
    return rows.map(toFinishedRun).sort((a, b) => a.id - b.id);
  }

  async ackFinishedRuns(ids: number[]): Promise<void> {
    const safe = ids.map(safeId).filter((id): id is number => id !== null);
    if (safe.length === 0) return;
    await this.db.query(`DELETE FROM ${this.tables.finishedRuns} WHERE id = ANY($1::bigint[])`, [safe]);
  }
}

/** What opening the store says while another session holds the schema's migration lock. */
function logMigrationLock(logger: Logger, where: string, progress: MigrationLockProgress): void {
  if (progress.type === 'store:waiting') {
    logger.info(`store ${where} is being migrated or copied into by another session, ${progress.holder}: waiting for it to finish`);
    return;
  }
  logger.warn(
    `store ${where}: ended ${progress.holder}, a \`lockstep store migrate\` copy left holding the schema after its client went away ` +
      '(its lease lapsed); its transaction was rolled back, nothing of it kept — run that copy again if it is still wanted',
  );
}

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
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { systemClock } from '../../core/clock.js';
import { ErrorCode, LockstepError, NotFoundError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { DEFAULT_STORE_ANSWER_TIMEOUT_MS, storeUrlAnswerTimeout, storeUrlSchema } from '../../core/connections.js';
import type {
  Clock,
  EntitySlug,
  SyncAsRun,
  FinishedRunEntry,
  FiredRun,
  LeaseRequest,
  Logger,
  MemberStart,
  NewSyncRun,
  RunFence,
  RunLease,
  SequenceRunListQuery,
  Store,
  StoreCapabilities,
  StoreTopic,
  SyncRunListQuery,
  SyncRunPatch,
} from '../../core/ports.js';
import {
  recordMembers,
  type SequenceAdvance,
  type SequenceAdvanceState,
  type SequenceDecision,
  type SequenceResumeDecision,
  type SequenceResumeState,
} from '../../core/sequence-rules.js';
import {
  ACTIVE_SYNC_RUN_STATUSES,
  TERMINAL_SYNC_RUN_STATUSES,
  isTerminalSyncRunStatus,
  type RejectedRow,
  type RecordedMember,
  type SequenceRun,
  type SequenceRunStatus,
  type SyncRun,
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
  SequenceRecord,
  Stored,
  SyncRecord,
  WorkspaceChange,
  WorkspaceDefinition,
  WorkspaceState,
} from '../../core/workspace.js';
import { memberTransition, type MemberTransition } from '../member-state.js';
import {
  definitionJson,
  toFinishedRun,
  toLease,
  toRecord,
  toRejectedRow,
  toSequenceRun,
  toSyncRun,
  syncsAsRun,
  type EntityRow,
  type FinishedRunRow,
  type HistoryEntityRow,
  type LeaseRow,
  type MemberRunRow,
  type RejectedRowRow,
  type SequenceRunRow,
  type SyncRunRow,
} from '../rows.js';
import {
  isTerminalSequenceRunStatus,
  memberNeedsRun,
  type MemberWithRun,
  nothingToCancelError,
  resumeRefused,
  sequenceRunFinishedError,
  syncRunFinishedError,
} from '../run-rules.js';
import {
  CANCEL_REASONS,
  ENTITY_KINDS,
  ENTITY_TABLES,
  checkAlerts,
  memberSyncDeletedReason,
  checkDelete,
  checkUpsert,
  declaredEntity,
  enabledOf,
  planApply,
  type EntityChange,
} from '../workspace-changes.js';
import { PostgresAlertStore } from './postgres-alert-store.js';
import {
  PostgresDatabase,
  errorCode,
  isConflictState,
  readNullableText,
  readText,
  storedText,
  type BatchedTransaction,
  type OpenTransaction,
  type Queryable,
} from './postgres-database.js';
import { migrate } from './postgres-migrations.js';
import { takeMigrationLock, type MigrationLockProgress } from './postgres-copy-lease.js';
import { PostgresNotifications } from './postgres-notifications.js';
import { PostgresRunFence, runLeaseLost } from './postgres-run-fence.js';
import { PostgresScheduleStore } from './postgres-schedule-store.js';
import { PostgresSnapshotStore } from './postgres-snapshot-store.js';
import { PostgresTokenStore } from './postgres-token-store.js';
import { PostgresWebhookStore } from './postgres-webhook-store.js';
import { SEALED_PREFIX, SecretCodec, countSealed, type SecretResealer } from '../../core/secrets.js';
import { StoreSecretKeys } from '../secret-keys.js';

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

/** The stored texts holding sealed values: entity definitions (deleted ones too), the alert definition, webhook settings. */
async function sealedTexts(q: Queryable, schema: string): Promise<string[]> {
  const columns = [...ENTITY_KINDS.map((kind) => [ENTITY_TABLES[kind].table, 'definition']), ['alert_definitions', 'definition'], ['webhook_settings', 'settings']];
  const union = columns.map(([table, column]) => `SELECT ${column} AS text FROM ${schema}.${table} WHERE strpos(${column}, $1) > 0`).join(' UNION ALL ');
  return (await q.query<{ text: string }>(union, [SEALED_PREFIX])).rows.map((row) => row.text);
}

/** SQL list of constant statuses, e.g. `('querying', 'processing')`. */
function sqlList(values: readonly string[]): string {
  return `(${values.map((v) => `'${v}'`).join(', ')})`;
}

const ACTIVE = sqlList(ACTIVE_SYNC_RUN_STATUSES);
const TERMINAL_SYNC = sqlList(TERMINAL_SYNC_RUN_STATUSES);
/** Claims that lose a race for a sync's active slot try again this often before answering null. */
const CLAIM_ATTEMPTS = 3;

/** Parameters of one statement: `p.add(value, 'type')` is the placeholder, cast when a type is given. */
class Params {
  readonly values: unknown[] = [];
  /** `literal`: values are spelled in the SQL (a statement of a batch), with this escape for text. */
  constructor(private readonly literal?: (text: string) => string) {}
  add(value: unknown, type?: string): string {
    if (this.literal) {
      const text =
        value === null || value === undefined
          ? 'NULL'
          : typeof value === 'boolean'
            ? String(value)
            : typeof value === 'number'
              ? `'${String(value)}'`
              : this.literal(String(value));
      return type ? `${text}::${type}` : text;
    }
    this.values.push(value);
    return type ? `$${this.values.length}::${type}` : `$${this.values.length}`;
  }
}

/** How much later this store's listeners hear what it announced itself, ms (see PostgresNotifications). */
const ECHO_DELAY_MS = 20;

/** How long an advance begun with a member's end waits for this process's hand-off, ms. */
const OPENED_ADVANCE_MS = 250;

interface OpenedAdvance {
  tx: OpenTransaction;
  /** The lock's, the state's and the sequence's results (see advanceStateSql). */
  results: Array<{ rows: Record<string, unknown>[] }>;
  timer: NodeJS.Timeout;
}

/** A sync run row as PostgreSQL gives it, with `xmax = 0` for "inserted by this statement" where asked. */
type SyncRunResult = SyncRunRow & { created?: boolean };
type SequenceRunResult = SequenceRunRow & { members: MemberRunRow[] };

function syncRun(row: SyncRunRow): SyncRun {
  return toSyncRun({ ...row, trigger_detail: readNullableText(row.trigger_detail), error: readNullableText(row.error) });
}

function sequenceRun(row: SequenceRunResult): SequenceRun {
  return toSequenceRun(
    { ...row, trigger_detail: readNullableText(row.trigger_detail), reason: readNullableText(row.reason) },
    row.members,
  );
}

export class PostgresStore implements Store, SecretResealer, AsyncDisposable {
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
  private readonly clock: Clock;
  /** Seals and opens the secrets of what it keeps. */
  private readonly secrets: SecretCodec;
  /** The schema's name, unquoted (advisory lock keys). */
  private readonly schemaName: string;
  /** The NOTIFY channel of this schema's store: processes sharing the schema hear each other. */
  private readonly channel: string;
  private readonly notifications: PostgresNotifications;
  /** Refuses the writes of a run's attempt once another worker took the run over. */
  private readonly fence: PostgresRunFence;
  /** Table names, qualified with the quoted schema. */
  private readonly t: Record<
    | 'sources'
    | 'destinations'
    | 'models'
    | 'syncs'
    | 'sequences'
    | 'syncRuns'
    | 'sequenceRuns'
    | 'memberRuns'
    | 'rejectedRows'
    | 'finishedRuns'
    | 'runGraphs',
    string
  >;
  /** `r.*` of a sequence run plus its members (as JSON, in position order), for the alias `r`. */
  private readonly sequenceRunColumns: string;
  /** Advances under way in this store, by sequence run id (how many). */
  private readonly advancing = new Map<string, number>();
  /** Advances begun in the round trip that ended a member's run, by sequence run id (see endAndOpenAdvance). */
  private readonly openedAdvances = new Map<string, OpenedAdvance>();

  private constructor(db: PostgresDatabase, schemaName: string, clock: Clock, applied: number[], secrets: SecretCodec, logger: Logger) {
    this.db = db;
    this.secrets = secrets;
    this.where = db.where;
    this.schemaName = schemaName;
    this.channel = `${schemaName}_lockstep`;
    this.notifications = new PostgresNotifications({
      client: () => db.client('lockstep notifications'),
      channel: this.channel,
      where: db.where,
      answered: (client, send) => db.answered(client, send),
      // A connection the network stopped answering is given up within about twice the answer timeout.
      checkEveryMs: db.answerTimeoutMs,
      logger,
      isOwnBackend: (pid) => db.ownsBackend(pid),
      echoDelayMs: ECHO_DELAY_MS,
    });
    this.clock = clock;
    this.migrationsApplied = applied;
    const s = db.schema;
    this.t = {
      sources: `${s}.sources`,
      destinations: `${s}.destinations`,
      models: `${s}.models`,
      syncs: `${s}.syncs`,
      sequences: `${s}.sequences`,
      syncRuns: `${s}.sync_runs`,
      sequenceRuns: `${s}.sequence_runs`,
      memberRuns: `${s}.member_runs`,
      rejectedRows: `${s}.rejected_rows`,
      finishedRuns: `${s}.finished_runs`,
      runGraphs: `${s}.sequence_run_graphs`,
    };
    this.sequenceRunColumns = `r.*, COALESCE((SELECT json_agg(m ORDER BY m.position) FROM ${this.t.memberRuns} AS m
      WHERE m.sequence_run_id = r.id), '[]'::json) AS members`;
    this.webhooks = new PostgresWebhookStore(db, secrets);
    this.alerts = new PostgresAlertStore(db, secrets);
    this.tokens = new PostgresTokenStore(db);
    this.fence = new PostgresRunFence(db);
    this.snapshots = new PostgresSnapshotStore(db, this.fence);
    this.schedules = new PostgresScheduleStore(db);
  }

  /** Connects, creates the schema when missing and brings it up to date (once, whoever starts first). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const { db, schema } = PostgresStore.connection(options);
    const clock = options.clock ?? systemClock;
    try {
      const logger = options.logger ?? silentLogger;
      const applied = await db.transaction(async (q) => {
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
      answerTimeoutMs: options.answerTimeoutMs ?? timed.answerTimeoutMs ?? DEFAULT_STORE_ANSWER_TIMEOUT_MS,
    });
    return { db, schema };
  }

  async close(): Promise<void> {
    for (const id of [...this.openedAdvances.keys()]) await this.takeOpenedAdvance(id)?.tx.abandon();
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
  // Workspace

  async loadWorkspace(): Promise<WorkspaceState> {
    return this.db.transaction((q) => this.workspaceState(q), { readOnly: true });
  }

  async planWorkspace(definition: WorkspaceDefinition): Promise<WorkspaceChange[]> {
    return diffWorkspace(await this.loadWorkspace(), definition);
  }

  async applyWorkspace(definition: WorkspaceDefinition, now: number): Promise<WorkspaceChange[]> {
    return this.workspaceTransaction(async (q) => {
      const plan = planApply(await this.workspaceState(q), definition);
      for (const change of plan.entities) await this.applyChange(q, change, definition, now);
      if (plan.alerts) await this.alerts.writeDefinition(q, plan.alerts, now);
      if (plan.webhooks) await this.webhooks.writeSettings(q, plan.webhooks, now);
      return plan.changes;
    });
  }

  async updateAlerts(update: (current: AlertsDefinition) => AlertsDefinition, now: number): Promise<AlertsDefinition> {
    return this.workspaceTransaction(async (q) => {
      const current = await this.workspaceState(q);
      const alerts = update(current.alerts);
      checkAlerts(current, alerts);
      await this.alerts.writeDefinition(q, alerts, now);
      return this.alerts.readDefinition(q);
    });
  }

  async getSync(ref: number | string): Promise<SyncRecord | null> {
    return this.entityByRef<SyncRecord>('sync', ref);
  }

  async getSequence(ref: number | string): Promise<SequenceRecord | null> {
    return this.entityByRef<SequenceRecord>('sequence', ref);
  }

  async slugsById(kind: 'sync' | 'sequence', ids: readonly number[]): Promise<Map<number, EntitySlug>> {
    const safe = [...new Set(ids)].map(safeId).filter((id): id is number => id !== null);
    if (safe.length === 0) return new Map();
    // Deleted rows too: run history names what it ran, deleted since or not.
    const rows = await this.db.query<{ id: string | number; slug: string; deleted: boolean }>(
      `SELECT id, slug, deleted_at IS NOT NULL AS deleted FROM ${this.entityTable(kind)} WHERE id = ANY($1::bigint[])`,
      [safe],
    );
    return new Map(rows.map((row) => [Number(row.id), { slug: row.slug, deleted: row.deleted }]));
  }

  async syncsById(ids: readonly number[]): Promise<Map<number, SyncAsRun>> {
    const safe = [...new Set(ids)].map(safeId).filter((id): id is number => id !== null);
    if (safe.length === 0) return new Map();
    // Deleted rows too: a run's sync, and the model it named, may be gone since.
    const syncs = await this.db.query<HistoryEntityRow>(`SELECT * FROM ${this.t.syncs} WHERE id = ANY($1::bigint[])`, [safe]);
    const models = await this.db.query<HistoryEntityRow>(
      `SELECT * FROM ${this.t.models} WHERE slug IN (SELECT definition::jsonb ->> 'model' FROM ${this.t.syncs} WHERE id = ANY($1::bigint[]))`,
      [safe],
    );
    return syncsAsRun(syncs, models, this.secrets);
  }

  async deletedIdsBySlug(kind: 'sync' | 'sequence', slug: string): Promise<number[]> {
    const rows = await this.db.query<{ id: string | number }>(
      `SELECT id FROM ${this.entityTable(kind)} WHERE slug = $1 AND deleted_at IS NOT NULL ORDER BY id DESC`,
      [slug],
    );
    return rows.map((row) => Number(row.id));
  }

  async getModel(slug: string): Promise<ModelRecord | null> {
    return this.entityBySlug<ModelRecord>(this.db.direct, 'model', slug);
  }

  async getSource(slug: string): Promise<ConnectionRecord | null> {
    return this.entityBySlug<ConnectionRecord>(this.db.direct, 'source', slug);
  }

  async getDestination(slug: string): Promise<ConnectionRecord | null> {
    return this.entityBySlug<ConnectionRecord>(this.db.direct, 'destination', slug);
  }

  async upsertEntity<K extends EntityKind>(
    kind: K,
    definition: EntityDefs[K],
    origin: EntityOrigin,
    now: number,
  ): Promise<{ record: EntityDefs[K] & Stored; created: boolean }> {
    return this.workspaceTransaction(async (q) => {
      checkUpsert(await this.workspaceState(q), kind, definition);
      const created = (await this.entityBySlug(q, kind, definition.slug)) === null;
      await this.writeEntity(q, kind, created, definition, origin, now);
      const record = (await this.entityBySlug(q, kind, definition.slug)) as (EntityDefs[K] & Stored) | null;
      if (!record) throw new LockstepError(ErrorCode.Internal, `${kind} "${definition.slug}" was written but cannot be read back`);
      return { record, created };
    });
  }

  async deleteEntity(kind: EntityKind, slug: string, now: number): Promise<void> {
    await this.workspaceTransaction(async (q) => {
      const current = await this.workspaceState(q);
      if ((await this.entityBySlug(q, kind, slug)) === null) throw new NotFoundError(`no ${kind} "${slug}" in the workspace`);
      checkDelete(current, kind, slug);
      await this.applyChange(q, { action: 'delete', kind, slug, fields: [] }, current, now);
    });
  }

  async setEnabled(kind: 'sync' | 'sequence', id: number, enabled: boolean, now: number): Promise<void> {
    const table = kind === 'sync' ? this.t.syncs : this.t.sequences;
    const rows = await this.db.query(`UPDATE ${table} SET enabled = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL RETURNING id`, [
      enabled,
      now,
      safeId(id) ?? -1,
    ]);
    if (rows.length === 0) throw new NotFoundError(`${kind} ${id} does not exist`);
  }

  async resealSecrets(): Promise<{ secrets: number }> {
    return this.workspaceTransaction(async (q) => {
      for (const kind of ENTITY_KINDS) {
        // Deleted entities too: their definitions must keep opening once the old key is gone.
        const { rows } = await q.query<EntityRow>(`SELECT * FROM ${this.entityTable(kind)} FOR UPDATE`);
        for (const row of rows) {
          const definition = definitionJson(toRecord(row, kind, this.secrets), kind, this.secrets);
          if (definition !== row.definition) await q.query(`UPDATE ${this.entityTable(kind)} SET definition = $1 WHERE id = $2`, [definition, row.id]);
        }
      }
      const alerts = await this.alerts.readDefinition(q);
      if (alerts.channels.length > 0 || alerts.rules.length > 0) await this.alerts.writeDefinition(q, alerts, this.clock.now());
      await this.webhooks.writeSettings(q, await this.webhooks.readSettings(q), this.clock.now());
      return { secrets: (await sealedTexts(q, this.db.schema)).reduce((sum, text) => sum + countSealed(text), 0) };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Sync runs

  async enqueueSyncRun(input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }> {
    return this.queueSyncRun(this.db.direct, input, now);
  }

  async enqueueFiredRun(key: string, run: FiredRun, now: number): Promise<{ runId: string; created: boolean } | null> {
    return this.db.transaction(async (q) => {
      // A key recorded by a transaction still open waits for it here, then counts as recorded.
      if (!(await this.schedules.recordKey(q, key, now))) return null;
      // A throw (the sync or sequence is gone) rolls the key back with the rest.
      if (run.kind === 'sync') {
        const queued = await this.queueSyncRun(q, run.run, now);
        return { runId: String(queued.run.id), created: queued.created };
      }
      const queued = await this.queueSequenceRun(q, run.sequence, run.trigger, now);
      return { runId: queued.run.id, created: queued.created };
    });
  }

  /** Queues a standalone run, or joins the queued one, through `q` (a transaction's or the pool's). */
  private async queueSyncRun(q: Queryable, input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }> {
    // One statement: a trigger while a standalone run is queued joins it (the unique index of
    // queued standalone runs is the arbiter, so two processes triggering at once share one run),
    // and the shared follow-up honours every trigger's options: a full resync asked for is never
    // lost. The sync row is share-locked, so a concurrent delete of the sync either comes first
    // (nothing is queued) or waits until the run is queued (and then cancels it).
    const p = new Params();
    const { rows } = await q.query<SyncRunResult>(
      `WITH sync AS (SELECT id FROM ${this.t.syncs} WHERE id = ${p.add(safeId(input.syncId) ?? -1, 'bigint')} AND deleted_at IS NULL FOR SHARE),
       queued AS (
         INSERT INTO ${this.t.syncRuns} AS r (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, allow_mass_delete, full_compare, created_at)
         SELECT sync.id, 'queued', ${p.add(input.trigger.type, 'text')}, ${p.add(nullableStored(input.trigger.detail), 'text')},
                ${p.add(input.options.fullResync, 'boolean')}, ${p.add(input.options.resetCDC, 'boolean')},
                ${p.add(input.options.allowMassDelete === true, 'boolean')}, ${p.add(input.options.fullCompare === true, 'boolean')}, ${p.add(now, 'float8')}
         FROM sync
         ON CONFLICT (sync_id) WHERE status = 'queued' AND sequence_run_id IS NULL
         DO UPDATE SET full_resync = r.full_resync OR excluded.full_resync, reset_cdc = r.reset_cdc OR excluded.reset_cdc,
                       allow_mass_delete = r.allow_mass_delete OR excluded.allow_mass_delete,
                       full_compare = r.full_compare OR excluded.full_compare
         RETURNING r.*, (r.xmax = 0) AS created
       )
       SELECT queued.*, ${this.notifySql('work', p)} AS notified FROM queued`,
      p.values,
    );
    const row = rows[0];
    if (!row) throw new NotFoundError(`sync ${input.syncId} does not exist`);
    return { run: syncRun(row), created: row.created === true };
  }

  async claimSyncRun(id: number, now: number, lease: LeaseRequest): Promise<SyncRun | null> {
    // One statement: a queued run moves to querying unless another run of its sync is active, or
    // an active run whose lease expired is taken over (same id, attempt + 1); its member follows.
    // Two claims racing for one run: the second, once the first committed, finds it claimed. Two
    // claims of different runs of one sync: the second hits the unique index of active runs and
    // must wait, as when it saw the first.
    const claimed = await this.claimIn(this.db.direct, id, now, lease, false);
    if (claimed) return claimed;
    if (!(await this.syncRunRow(this.db.direct, id))) throw new NotFoundError(`sync run ${id} does not exist`);
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
           UPDATE ${this.t.syncRuns} AS r SET ${this.claimSetSql(lease, now, at, p)}
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
             SELECT id FROM ${this.t.syncRuns}
             WHERE status IN ${ACTIVE} AND (lease_expires_at IS NULL OR lease_expires_at <= ${at})
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
           ), queued AS (
             SELECT r.id FROM ${this.t.syncRuns} AS r
             WHERE NOT EXISTS (SELECT 1 FROM expired) AND r.status = 'queued'
               AND NOT EXISTS (SELECT 1 FROM ${this.t.syncRuns} AS other WHERE other.sync_id = r.sync_id AND other.status IN ${ACTIVE})
             ORDER BY r.id LIMIT 1 FOR UPDATE OF r SKIP LOCKED
           ), candidate AS (
             SELECT id FROM expired UNION ALL SELECT id FROM queued
           ), claimed AS (
             UPDATE ${this.t.syncRuns} AS r SET ${this.claimSetSql(lease, now, at, p)}
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
      `UPDATE ${this.t.syncRuns} SET lease_expires_at = $3
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
         UPDATE ${this.t.syncRuns} SET lease_expires_at = ${p.add(now, 'float8')}
         WHERE worker_id = ${p.add(workerId, 'text')} AND status IN ${ACTIVE} AND lease_expires_at > ${p.add(now, 'float8')}
         RETURNING id
       )
       SELECT id, ${this.notifySql('work', p)} AS notified FROM released`,
      p.values,
    );
    return rows.length;
  }

  async listLeases(): Promise<RunLease[]> {
    const rows = await this.db.query<LeaseRow>(
      `SELECT id, sync_id, worker_id, attempt, lease_expires_at FROM ${this.t.syncRuns} WHERE status IN ${ACTIVE} ORDER BY id`,
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
      const current = await this.syncRunRow(this.db.direct, id);
      if (attempt !== undefined && (!current || Number(current.attempt) !== attempt)) throw runLeaseLost(id, attempt, current);
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
      const before = await this.syncRunRow(q, id, 'FOR UPDATE');
      if (attempt !== undefined && (!before || Number(before.attempt) !== attempt)) throw runLeaseLost(id, attempt, before);
      if (!before) throw new NotFoundError(`sync run ${id} does not exist`);
      const row = await this.patchSyncRun(q, id, patch, now, attempt);
      if (!row) throw syncRunFinishedError(id, before.status, status);
      if (!isTerminalSyncRunStatus(before.status as SyncRunStatus)) await this.recordFinishedRuns(q, 'sync', [String(id)], now);
      return syncRun(row);
    });
  }

  async getSyncRun(id: number): Promise<SyncRun | null> {
    const row = await this.syncRunRow(this.db.direct, id);
    return row ? syncRun(row) : null;
  }

  async listSyncRuns(query: SyncRunListQuery): Promise<SyncRun[]> {
    const p = new Params();
    const where: string[] = [];
    if (query.syncId !== undefined) where.push(`sync_id = ${p.add(safeId(query.syncId) ?? -1, 'bigint')}`);
    if (query.syncIds !== undefined) where.push(`sync_id = ANY(${p.add(query.syncIds.map((id) => safeId(id) ?? -1), 'bigint[]')})`);
    if (query.runId !== undefined) where.push(`id = ${p.add(safeId(query.runId) ?? -1, 'bigint')}`);
    if (query.statuses !== undefined) where.push(`status = ANY(${p.add(query.statuses, 'text[]')})`);
    timeFilters(query, where, p);
    const sql =
      `SELECT * FROM ${this.t.syncRuns} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY id ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${p.add(query.limit, 'bigint')} OFFSET ${p.add(query.offset, 'bigint')}`;
    return (await this.db.query<SyncRunRow>(sql, p.values)).map(syncRun);
  }

  async listQueuedSyncRuns(): Promise<SyncRun[]> {
    return (await this.db.query<SyncRunRow>(`SELECT * FROM ${this.t.syncRuns} WHERE status = 'queued' ORDER BY id`)).map(syncRun);
  }

  async requestSyncRunCancel(id: number, now: number = this.clock.now()): Promise<SyncRun> {
    return this.db.transaction((q) => this.cancelSyncRun(q, id, now));
  }

  async addRejectedRows(rows: RejectedRow[], fence?: RunFence): Promise<void> {
    if (rows.length === 0) return;
    // One statement; ids follow the order given, which is the order they are listed in.
    await this.fence.write(
      [
        [
          `INSERT INTO ${this.t.rejectedRows} (sync_run_id, key, op, reason)
           SELECT u.run, u.key, u.op, u.reason FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(run, key, op, reason, n)
           ORDER BY u.n`,
          [rows.map((r) => safeId(r.syncRunId) ?? -1), rows.map((r) => storedText(r.key)), rows.map((r) => r.op), rows.map((r) => storedText(r.reason))],
        ],
      ],
      fence,
    );
  }

  async clearRejectedRows(syncRunId: number, fence?: RunFence): Promise<void> {
    await this.fence.write([[`DELETE FROM ${this.t.rejectedRows} WHERE sync_run_id = $1`, [safeId(syncRunId) ?? -1]]], fence);
  }

  async listRejectedRows(syncRunId: number, limit: number, offset: number): Promise<RejectedRow[]> {
    const rows = await this.db.query<RejectedRowRow>(
      `SELECT * FROM ${this.t.rejectedRows} WHERE sync_run_id = $1 ORDER BY id LIMIT $2 OFFSET $3`,
      [safeId(syncRunId) ?? -1, limit, offset],
    );
    return rows.map((row) => toRejectedRow({ ...row, key: readText(row.key), reason: readText(row.reason) }));
  }

  // -------------------------------------------------------------------------------------------
  // Sequence runs

  async enqueueSequenceRun(sequence: SequenceRecord, trigger: Trigger, now: number): Promise<{ run: SequenceRun; created: boolean }> {
    return this.db.transaction((q) => this.queueSequenceRun(q, sequence, trigger, now));
  }

  /** Queues a run with every member pending, or finds the pending one, in `q`'s transaction. */
  private async queueSequenceRun(q: Queryable, sequence: SequenceRecord, trigger: Trigger, now: number): Promise<{ run: SequenceRun; created: boolean }> {
    // The sequence row is locked: enqueues of one sequence take turns (one pending run), and a
    // delete of the sequence comes wholly before or after.
    const live = await q.query(`SELECT id FROM ${this.t.sequences} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [safeId(sequence.id) ?? -1]);
    if (live.rows.length === 0) throw new NotFoundError(`sequence "${sequence.slug}" does not exist`);
    const pending = await q.query<SequenceRunResult>(
      `SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.sequence_id = $1 AND r.status = 'pending'`,
      [sequence.id],
    );
    if (pending.rows[0]) return { run: sequenceRun(pending.rows[0]), created: false };
    const syncs = await q.query<{ id: number; slug: string }>(
      `SELECT id, slug FROM ${this.t.syncs} WHERE slug = ANY($1::text[]) AND deleted_at IS NULL FOR SHARE`,
      [sequence.members.map((m) => m.sync)],
    );
    const bySlug = new Map(syncs.rows.map((r) => [r.slug, Number(r.id)]));
    const syncIds = sequence.members.map((member) => {
      const id = bySlug.get(member.sync);
      if (id === undefined) throw new NotFoundError(`sequence "${sequence.slug}": member "${member.key}" runs unknown sync "${member.sync}"`);
      return id;
    });
    const id = randomUUID();
    await q.query(
      `WITH run AS (
         INSERT INTO ${this.t.sequenceRuns} (id, sequence_id, status, trigger_type, trigger_detail, created_at, deadline_minutes)
         VALUES ($1, $2, 'pending', $3, $4, $5, $6)
       )
       INSERT INTO ${this.t.runGraphs} (sequence_run_id, members) VALUES ($1, $7)`,
      [id, sequence.id, trigger.type, nullableStored(trigger.detail), now, sequence.deadlineMinutes ?? null, JSON.stringify(recordMembers(sequence))],
    );
    await q.query(
      `INSERT INTO ${this.t.memberRuns} (sequence_run_id, key, position, sync_id, status, timeout_minutes)
       SELECT $1, u.key, u.n - 1, u.sync_id, 'pending', u.timeout_minutes
       FROM unnest($2::text[], $3::bigint[], $4::float8[]) WITH ORDINALITY AS u(key, sync_id, timeout_minutes, n)`,
      [id, sequence.members.map((m) => m.key), syncIds, sequence.members.map((m) => m.timeoutMinutes ?? null)],
    );
    const created = await q.query<SequenceRunResult>(`SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.id = $1`, [id]);
    await this.notify(q, 'work');
    return { run: sequenceRun(created.rows[0] as SequenceRunResult), created: true };
  }

  async claimSequenceRun(id: string, now: number): Promise<SequenceRun | null> {
    // One statement, as claimSyncRun: the unique index of running runs settles a race.
    try {
      const rows = await this.db.query<SequenceRunResult>(
        `WITH claimed AS (
           UPDATE ${this.t.sequenceRuns} AS r SET status = 'running', started_at = $2
           WHERE r.id = $1 AND r.status = 'pending'
             AND NOT EXISTS (SELECT 1 FROM ${this.t.sequenceRuns} AS other WHERE other.sequence_id = r.sequence_id AND other.status = 'running')
           RETURNING r.*
         )
         SELECT ${this.sequenceRunColumns} FROM claimed AS r`,
        [id, now],
      );
      if (rows[0]) return sequenceRun(rows[0]);
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      return null;
    }
    if (!(await this.sequenceRunRow(this.db.direct, id))) throw new NotFoundError(`sequence run ${id} does not exist`);
    return null;
  }

  async getSequenceRun(id: string): Promise<SequenceRun | null> {
    const row = await this.sequenceRunRow(this.db.direct, id);
    return row ? sequenceRun(row) : null;
  }

  async resumingSequenceRunId(id: string): Promise<string | null> {
    const { rows } = await this.db.direct.query<{ id: string }>(`SELECT id FROM ${this.t.sequenceRuns} WHERE resumed_from = $1`, [id]);
    return rows[0]?.id ?? null;
  }

  async listSequenceRuns(query: SequenceRunListQuery): Promise<SequenceRun[]> {
    const p = new Params();
    const where: string[] = [];
    if (query.sequenceId !== undefined) where.push(`r.sequence_id = ${p.add(safeId(query.sequenceId) ?? -1, 'bigint')}`);
    if (query.sequenceIds !== undefined) where.push(`r.sequence_id = ANY(${p.add(query.sequenceIds.map((id) => safeId(id) ?? -1), 'bigint[]')})`);
    if (query.statuses !== undefined) where.push(`r.status = ANY(${p.add(query.statuses, 'text[]')})`);
    timeFilters(query, where, p, 'r.');
    const sql =
      `SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY r.seq ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${p.add(query.limit, 'bigint')} OFFSET ${p.add(query.offset, 'bigint')}`;
    return (await this.db.query<SequenceRunResult>(sql, p.values)).map(sequenceRun);
  }

  async listSequenceRunsByStatus(statuses: SequenceRunStatus[]): Promise<SequenceRun[]> {
    if (statuses.length === 0) return [];
    const rows = await this.db.query<SequenceRunResult>(
      `SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.status = ANY($1::text[]) ORDER BY r.seq`,
      [statuses],
    );
    return rows.map(sequenceRun);
  }

  async startMembers(sequenceRunId: string, members: MemberStart[], now: number): Promise<SyncRun[]> {
    return this.db.transaction((q) => this.startMembersIn(q, sequenceRunId, members, now));
  }

  async setTermination(sequenceRunId: string, memberKey: string | null, reason: string): Promise<void> {
    if (await this.setTerminationIn(this.db.direct, sequenceRunId, memberKey, reason)) return;
    if (!(await this.sequenceRunRow(this.db.direct, sequenceRunId))) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
  }

  async skipPendingMembers(sequenceRunId: string, now: number): Promise<void> {
    await this.db.transaction(async (q) => {
      const run = await q.query(`SELECT id FROM ${this.t.sequenceRuns} WHERE id = $1 FOR UPDATE`, [sequenceRunId]);
      if (run.rows.length === 0) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      await this.skipPending(q, sequenceRunId, now);
    });
  }

  async finishSequenceRun(sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun> {
    return this.db.transaction((q) => this.finishSequenceRunIn(q, sequenceRunId, status, now));
  }

  async advanceSequenceRun(
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim?: { lease: LeaseRequest; max: number },
  ): Promise<SequenceAdvance> {
    const began = performance.now();
    this.advancing.set(id, (this.advancing.get(id) ?? 0) + 1);
    try {
      const opened = this.takeOpenedAdvance(id);
      if (opened) {
        try {
          return await opened.tx.proceed((tx) => this.advanceIn(tx, id, decide, now, claim, began, opened.results));
        } catch (error) {
          // A deadlock victim runs again from the start, as any transaction.
          if (!(error instanceof LockstepError && isConflictState(errorCode(error.cause)))) throw error;
        }
      }
      return await this.db.batchedTransaction((tx) => this.advanceIn(tx, id, decide, now, claim, began, null));
    } finally {
      const left = (this.advancing.get(id) ?? 1) - 1;
      if (left === 0) this.advancing.delete(id);
      else this.advancing.set(id, left);
    }
  }

  /**
   * The statements reading an advance's state after locking the sequence run `ref` (an SQL
   * expression): the lock, the run with the sync runs decide reads, the sequence. Each reads a
   * snapshot of its own, so a second advance waiting for the lock reads what the first committed.
   */
  private advanceStateSql(ref: string): string {
    return `SELECT id FROM ${this.t.sequenceRuns} WHERE id = ${ref} FOR UPDATE;
      SELECT ${this.sequenceRunColumns},
             COALESCE((SELECT json_agg(s) FROM ${this.t.syncRuns} AS s
                       WHERE s.id IN (SELECT m.sync_run_id FROM ${this.t.memberRuns} AS m
                                      WHERE m.sequence_run_id = r.id
                                        AND (m.status = 'pending' OR (r.reason IS NULL AND m.status IN ('warning', 'failed', 'cancelled'))))),
                      '[]'::json) AS sync_runs
      FROM ${this.t.sequenceRuns} AS r WHERE r.id = ${ref};
      SELECT * FROM ${this.t.sequences}
      WHERE id = (SELECT sequence_id FROM ${this.t.sequenceRuns} WHERE id = ${ref}) AND deleted_at IS NULL`;
  }

  /**
   * One advance in `tx`. A hand-off is three round trips when a member starts: the state (with
   * the BEGIN, or already read: `read`, see endAndOpenAdvance); the member's run, claimed; the run
   * as it is now with the COMMIT.
   */
  private async advanceIn(
    tx: BatchedTransaction,
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim: { lease: LeaseRequest; max: number } | undefined,
    began: number,
    read: Array<{ rows: Record<string, unknown>[] }> | null,
  ): Promise<SequenceAdvance> {
    const runId = tx.literal(id);
    const [locked, states, sequences] = read ?? (await tx.batch(this.advanceStateSql(runId)));
    if (!locked || locked.rows.length === 0) throw new NotFoundError(`sequence run ${id} does not exist`);
    const state = states?.rows[0] as unknown as SequenceRunResult & { sync_runs: SyncRunRow[] };
    const run = sequenceRun(state);
    if (run.status !== 'running') return { run, started: [], cancelled: [] };
    const syncRuns = new Map(state.sync_runs.map((row) => [Number(row.id), syncRun(row)]));
    const sequenceRow = sequences?.rows[0] as EntityRow | undefined;
    const sequence = sequenceRow ? this.record<SequenceRecord>('sequence', sequenceRow) : null;

    // The sync runs decide reads (core/sequence-rules.ts syncRunsToDecide), in the same statement.
    const decision = decide({ run, sequence, syncRuns, now });
    const changes = decision.terminate !== null || decision.cancel.length > 0 || decision.skipPending || decision.start.length > 0;
    if (!changes && !decision.finish) return { run, started: [], cancelled: [] };
    if (decision.terminate) await this.setTerminationIn(tx, id, decision.terminate.member, decision.terminate.reason);
    for (const syncRunId of decision.cancel) {
      const current = await this.syncRunRow(tx, syncRunId);
      if (current && !isTerminalSyncRunStatus(current.status as SyncRunStatus)) await this.cancelSyncRun(tx, syncRunId, now);
    }
    if (decision.skipPending) await this.skipPending(tx, id, now);
    // A claim is stamped when it happens: `now` plus the time the transaction took so far.
    const claims = claim ? { lease: claim.lease, max: claim.max, at: () => now + (performance.now() - began) } : undefined;
    const known = new Map<string, MemberWithRun>(
      run.members.map((m) => [
        m.key,
        { memberStatus: m.status, syncRunId: m.syncRunId, runStatus: m.syncRunId === null ? null : (syncRuns.get(m.syncRunId)?.status ?? null) },
      ]),
    );
    const started = decision.start.length > 0 ? await this.startMembersIn(tx, id, decision.start, now, { locked: true, known, claim: claims }) : [];
    if (decision.finish) return { run: await this.finishSequenceRunIn(tx, id, decision.finish, now), started, cancelled: decision.cancel };
    const [after] = await tx.commitWith(`SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.id = ${runId}`);
    return { run: sequenceRun(after?.rows[0] as unknown as SequenceRunResult), started, cancelled: decision.cancel };
  }

  /**
   * A member run's end, in one round trip with the first of its hand-off: the terminal UPDATE of
   * patchSyncRun (`ending`) commits on its own, then a transaction begins that locks the run's
   * sequence run and reads the advance's state, and is left open for the advance this process
   * makes next (advanceSequenceRun takes it). Not taken within OPENED_ADVANCE_MS (this process
   * does not hand off: it is stopping, the run was not a member), it is rolled back. Null when the
   * round trip failed (the caller ends the run the plain way, which finds it ended if the UPDATE
   * committed) and when no transaction is left open while another advance of that sequence run
   * is under way here (it may be waiting for the lock).
   */
  private async endAndOpenAdvance(id: number, patch: SyncRunPatch, now: number, attempt: number | undefined): Promise<SyncRunRow | null> {
    const p = new Params(pg.escapeLiteral);
    const update = this.patchSyncRunSql(id, patch, now, attempt, p, true);
    const ref = `(SELECT sequence_run_id FROM ${this.t.syncRuns} WHERE id = ${p.add(safeId(id) ?? -1, 'bigint')})`;
    const opened = await this.db.open(`${update}; COMMIT; BEGIN; ${this.advanceStateSql(ref)}`);
    if (!opened) return null;
    const [updated, , , locked, states, sequences] = opened.results;
    const row = updated?.rows[0] as SyncRunRow | undefined;
    const sequenceRunId = row?.sequence_run_id ?? null;
    if (!row || sequenceRunId === null || !locked?.rows[0] || this.advancing.has(sequenceRunId) || this.openedAdvances.has(sequenceRunId)) {
      void opened.abandon();
      return row ?? null;
    }
    const timer = setTimeout(() => {
      if (this.openedAdvances.get(sequenceRunId)?.tx === opened) this.openedAdvances.delete(sequenceRunId);
      void opened.abandon();
    }, OPENED_ADVANCE_MS);
    timer.unref();
    this.openedAdvances.set(sequenceRunId, { tx: opened, results: [locked, states as { rows: Record<string, unknown>[] }, sequences as { rows: Record<string, unknown>[] }], timer });
    const { notified_finished: _f, notified_work: _w, ...plain } = row as SyncRunRow & { notified_finished?: unknown; notified_work?: unknown };
    return plain as SyncRunRow;
  }

  private takeOpenedAdvance(id: string): OpenedAdvance | null {
    const opened = this.openedAdvances.get(id);
    if (!opened) return null;
    this.openedAdvances.delete(id);
    clearTimeout(opened.timer);
    return opened;
  }

  async resumeSequenceRun(
    id: string,
    decide: (state: SequenceResumeState) => SequenceResumeDecision,
    trigger: Trigger,
    now: number,
  ): Promise<SequenceRun> {
    return this.db.transaction(async (q) => {
      const found = await this.sequenceRunRow(q, id);
      if (!found) throw new NotFoundError(`sequence run ${id} does not exist`);
      // The sequence row first, as enqueueSequenceRun locks it (queues of one sequence take turns),
      // then the run: two resumes of one run take turns too.
      const live = await q.query<EntityRow>(`SELECT * FROM ${this.t.sequences} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [found.sequence_id]);
      await q.query(`SELECT id FROM ${this.t.sequenceRuns} WHERE id = $1 FOR UPDATE`, [id]);
      const run = sequenceRun((await this.sequenceRunRow(q, id)) as SequenceRunResult);
      const sequence = live.rows[0] ? this.record<SequenceRecord>('sequence', live.rows[0]) : null;
      const finishedIds = run.members.filter((m) => (m.status === 'success' || m.status === 'warning') && m.syncRunId !== null).map((m) => m.syncRunId as number);
      const finished = await q.query<SyncRunRow>(`SELECT * FROM ${this.t.syncRuns} WHERE id = ANY($1::bigint[])`, [finishedIds]);
      const syncs = await q.query<{ id: number; slug: string }>(`SELECT id, slug FROM ${this.t.syncs} WHERE slug = ANY($1::text[]) AND deleted_at IS NULL FOR SHARE`, [
        (sequence?.members ?? []).map((m) => m.sync),
      ]);
      const syncIds = new Map(syncs.rows.map((r) => [r.slug, Number(r.id)]));
      const others = await q.query<SequenceRunResult>(
        `SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.resumed_from = $1 OR (r.sequence_id = $2 AND r.status = 'pending')`,
        [id, run.sequenceId],
      );
      const resumedBy = others.rows.find((r) => r.resumed_from === id);
      const pending = others.rows.find((r) => r.status === 'pending');
      const graph = await q.query<{ members: RecordedMember[] }>(`SELECT members FROM ${this.t.runGraphs} WHERE sequence_run_id = $1`, [id]);
      const decision = decide({
        run,
        recorded: graph.rows[0]?.members ?? null,
        sequence,
        syncRuns: new Map(finished.rows.map((row) => [Number(row.id), syncRun(row)])),
        syncIds,
        resumedBy: resumedBy ? sequenceRun(resumedBy) : null,
        pending: pending ? sequenceRun(pending) : null,
      });
      if (!decision.ok) throw resumeRefused(decision);
      const resumed = sequence as SequenceRecord;
      const newId = randomUUID();
      await q.query(
        `WITH run AS (
           INSERT INTO ${this.t.sequenceRuns} (id, sequence_id, status, trigger_type, trigger_detail, created_at, deadline_minutes, resumed_from)
           VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7)
         )
         INSERT INTO ${this.t.runGraphs} (sequence_run_id, members) VALUES ($1, $8)`,
        [newId, resumed.id, trigger.type, nullableStored(trigger.detail), now, resumed.deadlineMinutes ?? null, id, JSON.stringify(recordMembers(resumed))],
      );
      const carried = new Map(decision.carry.map((c) => [c.key, c]));
      const members = resumed.members.map((m) => ({ member: m, carried: carried.get(m.key) ?? null }));
      await q.query(
        `INSERT INTO ${this.t.memberRuns} (sequence_run_id, key, position, sync_id, status, sync_run_id, started_at, finished_at, timeout_minutes)
         SELECT $1, u.key, u.n - 1, u.sync_id, u.status, u.sync_run_id, u.started_at, u.finished_at, u.timeout_minutes
         FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::float8[], $7::float8[], $8::float8[])
              WITH ORDINALITY AS u(key, sync_id, status, sync_run_id, started_at, finished_at, timeout_minutes, n)`,
        [
          newId,
          members.map((m) => m.member.key),
          members.map((m) => syncIds.get(m.member.sync) as number),
          members.map((m) => m.carried?.status ?? 'pending'),
          members.map((m) => m.carried?.syncRunId ?? null),
          members.map((m) => m.carried?.startedAt ?? null),
          members.map((m) => m.carried?.finishedAt ?? null),
          members.map((m) => m.member.timeoutMinutes ?? null),
        ],
      );
      const created = await q.query<SequenceRunResult>(`SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.id = $1`, [newId]);
      await this.notify(q, 'work');
      return sequenceRun(created.rows[0] as SequenceRunResult);
    });
  }

  async requestSequenceRunCancel(id: string, now: number = this.clock.now()): Promise<SequenceRun> {
    return this.db.transaction(async (q) => {
      const current = await this.sequenceRunRow(q, id, 'FOR UPDATE');
      if (!current) throw new NotFoundError(`sequence run ${id} does not exist`);
      if (isTerminalSequenceRunStatus(current.status)) throw nothingToCancelError(`sequence run ${id}`, current.status);
      if (current.status === 'pending') {
        await this.cancelPendingSequenceRun(q, id, CANCEL_REASONS.CancelledBeforeStart, now);
      } else {
        await q.query(`UPDATE ${this.t.sequenceRuns} SET cancel_requested = true WHERE id = $1`, [id]);
      }
      return sequenceRun((await this.sequenceRunRow(q, id)) as SequenceRunResult);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Outbox of finished runs

  async takeFinishedRuns(limit: number, now: number, lease: LeaseRequest): Promise<FinishedRunEntry[]> {
    if (limit <= 0) return [];
    // SKIP LOCKED: processes taking at once each get other entries, without waiting.
    const rows = await this.db.query<FinishedRunRow>(
      `WITH free AS (
         SELECT id FROM ${this.t.finishedRuns} WHERE held_until IS NULL OR held_until <= $1
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.t.finishedRuns} AS f SET held_by = $3, held_until = $4 FROM free WHERE f.id = free.id
       RETURNING f.id, f.kind, f.run_id`,
      [now, Math.floor(limit), lease.workerId, now + lease.leaseMs],
    );
    return rows.map(toFinishedRun).sort((a, b) => a.id - b.id);
  }

  async ackFinishedRuns(ids: number[]): Promise<void> {
    const safe = ids.map(safeId).filter((id): id is number => id !== null);
    if (safe.length === 0) return;
    await this.db.query(`DELETE FROM ${this.t.finishedRuns} WHERE id = ANY($1::bigint[])`, [safe]);
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  /**
   * Runs `fn` in a transaction holding the workspace's advisory lock: workspace changes read the
   * whole workspace, decide, then write, so two of them at once take turns.
   */
  private workspaceTransaction<R>(fn: (q: Queryable) => Promise<R>): Promise<R> {
    return this.db.transaction(async (q) => {
      await q.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`lockstep:workspace:${this.schemaName}`]);
      return fn(q);
    });
  }

  private async workspaceState(q: Queryable): Promise<WorkspaceState> {
    // Every live entity in one statement, by kind in id order.
    const union = ENTITY_KINDS.map(
      (kind, order) =>
        `SELECT ${order} AS kind, id, slug, ${ENTITY_TABLES[kind].enabled ? 'enabled' : 'NULL::boolean AS enabled'}, definition, origin, created_at, updated_at
         FROM ${this.entityTable(kind)} WHERE deleted_at IS NULL`,
    ).join(' UNION ALL ');
    const { rows } = await q.query<EntityRow & { kind: number }>(`${union} ORDER BY kind, id`);
    const of = <T>(kind: EntityKind) => {
      const order = ENTITY_KINDS.indexOf(kind);
      return rows.filter((r) => r.kind === order).map((r) => this.record<T>(kind, r));
    };
    return {
      sources: of<ConnectionRecord>('source'),
      destinations: of<ConnectionRecord>('destination'),
      models: of<ModelRecord>('model'),
      syncs: of<SyncRecord>('sync'),
      sequences: of<SequenceRecord>('sequence'),
      alerts: await this.alerts.readDefinition(q),
      webhooks: await this.webhooks.readSettings(q),
    };
  }

  private record<T>(kind: EntityKind, row: EntityRow & { kind?: number }): T {
    const { kind: _kind, ...entity } = row;
    if (!ENTITY_TABLES[kind].enabled) delete entity.enabled;
    return toRecord(entity, kind, this.secrets) as T;
  }

  private entityTable(kind: EntityKind): string {
    return `${this.db.schema}.${ENTITY_TABLES[kind].table}`;
  }

  private async entityByRef<T>(kind: 'sync' | 'sequence', ref: number | string): Promise<T | null> {
    if (typeof ref === 'number' || /^\d+$/.test(ref)) {
      const id = safeId(Number(ref));
      if (id !== null) {
        const rows = await this.db.query<EntityRow>(`SELECT * FROM ${this.entityTable(kind)} WHERE id = $1 AND deleted_at IS NULL`, [id]);
        if (rows[0]) return this.record<T>(kind, rows[0]);
      }
      if (typeof ref === 'number') return null;
    }
    return this.entityBySlug<T>(this.db.direct, kind, ref);
  }

  private async entityBySlug<T>(q: Queryable, kind: EntityKind, slug: string): Promise<T | null> {
    const { rows } = await q.query<EntityRow>(`SELECT * FROM ${this.entityTable(kind)} WHERE slug = $1 AND deleted_at IS NULL`, [slug]);
    return rows[0] ? this.record<T>(kind, rows[0]) : null;
  }

  private async writeEntity(
    q: Queryable,
    kind: EntityKind,
    create: boolean,
    entity: { slug: string } & object,
    origin: EntityOrigin,
    now: number,
  ): Promise<void> {
    const table = this.entityTable(kind);
    const enabled = enabledOf(kind, entity);
    const params: unknown[] = [entity.slug, definitionJson(entity, kind, this.secrets), now, origin];
    if (enabled !== null) params.push(enabled);
    if (create) {
      await q.query(
        enabled !== null
          ? `INSERT INTO ${table} (slug, definition, created_at, updated_at, origin, enabled) VALUES ($1, $2, $3, $3, $4, $5)`
          : `INSERT INTO ${table} (slug, definition, created_at, updated_at, origin) VALUES ($1, $2, $3, $3, $4)`,
        params,
      );
    } else {
      await q.query(
        `UPDATE ${table} SET definition = $2, updated_at = $3, origin = $4${enabled !== null ? ', enabled = $5' : ''}
         WHERE slug = $1 AND deleted_at IS NULL`,
        params,
      );
    }
  }

  private async applyChange(q: Queryable, change: EntityChange, definition: WorkspaceDefinition, now: number): Promise<void> {
    if (change.action === 'delete') {
      const { rows } = await q.query<{ id: number }>(
        `UPDATE ${this.entityTable(change.kind)} SET deleted_at = $2, updated_at = $2 WHERE slug = $1 AND deleted_at IS NULL RETURNING id`,
        [change.slug, now],
      );
      if (rows[0]) await this.afterDelete(q, change.kind, Number(rows[0].id), change.slug, now);
      return;
    }
    const entity = declaredEntity(definition, change);
    if (!entity) return;
    await this.writeEntity(q, change.kind, change.action === 'create', entity, 'file', now);
  }

  /** Work that can never run once its sync or sequence is gone is cancelled with it. */
  private async afterDelete(q: Queryable, kind: EntityKind, id: number, slug: string, now: number): Promise<void> {
    if (kind === 'sync') {
      const cancelled = await q.query<{ id: string }>(
        `UPDATE ${this.t.syncRuns} SET status = 'cancelled', finished_at = $1, error = $2
         WHERE sync_id = $3 AND status = 'queued' AND sequence_run_id IS NULL
         RETURNING id::text`,
        [now, CANCEL_REASONS.SyncDeleted, id],
      );
      await this.recordFinishedRuns(q, 'sync', cancelled.rows.map((r) => r.id), now);
      // A sequence run keeps the members it was queued with: one that would still start this sync
      // never could, and the run would wait for it forever. A queued run is cancelled; a running
      // one is terminated by that member (what runs finishes, the rest is skipped) and ends failed.
      const waiting = await q.query<{ id: string; status: string; key: string }>(
        `SELECT r.id, r.status, m.key FROM ${this.t.memberRuns} AS m JOIN ${this.t.sequenceRuns} AS r ON r.id = m.sequence_run_id
         WHERE m.sync_id = $1 AND m.status = 'pending' AND r.status IN ('pending', 'running')
         FOR UPDATE OF r`,
        [id],
      );
      for (const run of waiting.rows) {
        const reason = memberSyncDeletedReason(run.key, slug);
        if (run.status === 'pending') {
          await this.cancelPendingSequenceRun(q, run.id, reason, now);
        } else {
          await this.setTerminationIn(q, run.id, run.key, reason);
          await this.skipPending(q, run.id, now);
        }
      }
      await this.snapshots.dropSync(q, id);
    } else if (kind === 'sequence') {
      const pending = await q.query<{ id: string }>(`SELECT id FROM ${this.t.sequenceRuns} WHERE sequence_id = $1 AND status = 'pending' FOR UPDATE`, [id]);
      for (const { id: runId } of pending.rows) {
        await this.cancelPendingSequenceRun(q, runId, CANCEL_REASONS.SequenceDeleted, now);
      }
    }
  }

  /**
   * Ends a pending run cancelled before it started (`reason` kept unless one is recorded), its
   * members skipped, and records it as a finished run: the audit log keeps it like any run that ended.
   */
  private async cancelPendingSequenceRun(q: Queryable, id: string, reason: string, now: number): Promise<void> {
    const { rows } = await q.query(
      `UPDATE ${this.t.sequenceRuns} SET status = 'cancelled', cancel_requested = true, finished_at = $1, reason = COALESCE(reason, $2)
       WHERE id = $3 AND status = 'pending' RETURNING id`,
      [now, reason, id],
    );
    if (rows.length === 0) return;
    await this.skipPending(q, id, now);
    await this.recordFinishedRuns(q, 'sequence', [id], now);
  }

  /**
   * Pending members become `skipped`. Their queued runs are cancelled directly: the member is
   * `skipped`, not `cancelled`, because it never started; the runs are recorded as finished runs.
   */
  private async skipPending(q: Queryable, sequenceRunId: string, now: number): Promise<void> {
    const cancelled = await q.query<{ id: string }>(
      `UPDATE ${this.t.syncRuns} SET status = 'cancelled', finished_at = $2
       WHERE status = 'queued' AND id IN (SELECT sync_run_id FROM ${this.t.memberRuns}
                                          WHERE sequence_run_id = $1 AND status = 'pending' AND sync_run_id IS NOT NULL)
       RETURNING id::text`,
      [sequenceRunId, now],
    );
    await this.recordFinishedRuns(q, 'sync', cancelled.rows.map((r) => r.id), now);
    await q.query(`UPDATE ${this.t.memberRuns} SET status = 'skipped', finished_at = $2 WHERE sequence_run_id = $1 AND status = 'pending'`, [
      sequenceRunId,
      now,
    ]);
  }

  /**
   * An UPDATE of member runs making each member of the sync runs in the CTE `runs` follow its run
   * (see member-state.ts), for a data-modifying WITH clause.
   */
  private followSql(runs: string, next: MemberTransition, at: string, p: Params): string {
    return `UPDATE ${this.t.memberRuns} AS m SET
        status      = ${p.add(next.status, 'text')},
        started_at  = CASE WHEN ${p.add(next.started, 'boolean')} THEN COALESCE(m.started_at, ${at}) ELSE m.started_at END,
        finished_at = CASE WHEN ${p.add(next.finished, 'boolean')} THEN ${at} ELSE NULL END
      FROM ${runs} AS run
      WHERE m.sequence_run_id = run.sequence_run_id AND m.key = run.member_key AND m.sync_run_id = run.id`;
  }

  /**
   * Creates a queued sync run for each member that needs one and links it (see startMembers).
   * `locked`: the caller holds the sequence run's lock and saw it running; `known`: the members'
   * states it read under that lock. `claim`: the first
   * `max` runs are created claimed by `lease` when their sync is free, stamped `at()`.
   */
  private async startMembersIn(
    q: Queryable,
    sequenceRunId: string,
    members: MemberStart[],
    now: number,
    {
      locked = false,
      known,
      claim,
    }: { locked?: boolean; known?: ReadonlyMap<string, MemberWithRun>; claim?: { lease: LeaseRequest; max: number; at: () => number } } = {},
  ): Promise<SyncRun[]> {
    // The sequence run is locked: two hand-offs replayed at once take turns, and the second
    // finds the members started.
    if (!locked) {
      const run = (await q.query<{ status: string }>(`SELECT status FROM ${this.t.sequenceRuns} WHERE id = $1 FOR UPDATE`, [sequenceRunId])).rows[0];
      if (!run) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      if (isTerminalSequenceRunStatus(run.status)) return [];
    }
    if (members.length === 0) return [];
    const current = known ?? (await this.memberStates(q, sequenceRunId, members));
    const started = new Set<string>();
    const created: SyncRun[] = [];
    for (const member of members) {
      const state = current.get(member.key);
      if (!state) throw new NotFoundError(`sequence run ${sequenceRunId} has no member "${member.key}"`);
      if (started.has(member.key)) continue;
      if (!memberNeedsRun(state)) continue;
      // One statement: the sync is share-locked (a delete of it waits until the run is queued),
      // the run is created claimed when this worker takes it and its sync is free (a claim of
      // another run of the sync racing with it makes the unique index of active runs refuse the
      // claimed row, and the run is created queued instead), else queued; the member follows it.
      // Only a queued run is news for other workers.
      const p = new Params();
      const syncId = p.add(member.syncId, 'bigint');
      const runId = p.add(sequenceRunId, 'text');
      const key = p.add(member.key, 'text');
      const createdAt = p.add(now, 'float8');
      const claimNow = claim !== undefined && created.length < claim.max;
      const claimedAt = claimNow ? (claim as { at: () => number }).at() : now;
      const { rows } = await q.query<SyncRunRow>(
        `WITH live AS (
           SELECT id FROM ${this.t.syncs} WHERE id = ${syncId} AND deleted_at IS NULL FOR SHARE
         ), claimed AS (
           INSERT INTO ${this.t.syncRuns} AS r (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, sequence_run_id, member_key,
                                               created_at, started_at, attempt, worker_id, lease_expires_at)
           SELECT live.id, 'querying', 'sequence', ${runId}, false, false, ${runId}, ${key}, ${createdAt}, ${p.add(claimedAt, 'float8')}, 1,
                  ${p.add(claim?.lease.workerId ?? null, 'text')}, ${p.add(claimedAt + (claim?.lease.leaseMs ?? 0), 'float8')}
           FROM live
           WHERE ${p.add(claimNow, 'boolean')}
             AND NOT EXISTS (SELECT 1 FROM ${this.t.syncRuns} AS other WHERE other.sync_id = ${syncId} AND other.status IN ${ACTIVE})
           ON CONFLICT DO NOTHING
           RETURNING r.*
         ), queued AS (
           INSERT INTO ${this.t.syncRuns} (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, sequence_run_id, member_key, created_at)
           SELECT live.id, 'queued', 'sequence', ${runId}, false, false, ${runId}, ${key}, ${createdAt}
           FROM live WHERE NOT EXISTS (SELECT 1 FROM claimed)
           RETURNING *
         ), run AS (
           SELECT * FROM claimed UNION ALL SELECT * FROM queued
         ), linked AS (
           UPDATE ${this.t.memberRuns} AS m SET sync_run_id = run.id, sync_id = run.sync_id,
             status = CASE WHEN run.status = 'queued' THEN 'pending' ELSE 'running' END,
             started_at = CASE WHEN run.status = 'queued' THEN m.started_at ELSE COALESCE(m.started_at, run.started_at) END,
             finished_at = NULL
           FROM run WHERE m.sequence_run_id = ${runId} AND m.key = ${key}
         )
         SELECT run.*, CASE WHEN run.status = 'queued' THEN ${this.notifySql('work', p)} END AS notified FROM run`,
        p.values,
      );
      if (!rows[0]) {
        throw new NotFoundError(`member "${member.key}" of sequence run ${sequenceRunId} runs sync ${member.syncId}, which does not exist`);
      }
      started.add(member.key);
      created.push(syncRun(rows[0]));
    }
    return created;
  }

  /** The members' states as startMembers decides on them. */
  private async memberStates(q: Queryable, sequenceRunId: string, members: MemberStart[]): Promise<Map<string, MemberWithRun>> {
    const { rows } = await q.query<{ key: string; member_status: string; sync_run_id: number | null; run_status: string | null }>(
      `SELECT m.key, m.status AS member_status, m.sync_run_id, r.status AS run_status
       FROM ${this.t.memberRuns} AS m LEFT JOIN ${this.t.syncRuns} AS r ON r.id = m.sync_run_id
       WHERE m.sequence_run_id = $1 AND m.key = ANY($2::text[])`,
      [sequenceRunId, members.map((m) => m.key)],
    );
    return new Map(rows.map((r) => [r.key, { memberStatus: r.member_status, syncRunId: r.sync_run_id === null ? null : Number(r.sync_run_id), runStatus: r.run_status }]));
  }

  /** Records the termination unless one is recorded (the first wins); false when nothing changed. */
  private async setTerminationIn(q: Queryable, sequenceRunId: string, memberKey: string | null, reason: string): Promise<boolean> {
    const { rows } = await q.query(`UPDATE ${this.t.sequenceRuns} SET terminated_by = $1, reason = $2 WHERE id = $3 AND reason IS NULL RETURNING id`, [
      memberKey,
      storedText(reason),
      sequenceRunId,
    ]);
    return rows.length > 0;
  }

  /** Ends a sequence run (once: the same status again is a no-op, another a Conflict) and records it in the outbox. */
  private async finishSequenceRunIn(q: Queryable, sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun> {
    const current = await this.sequenceRunRow(q, sequenceRunId, 'FOR UPDATE');
    if (!current) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
    if (isTerminalSequenceRunStatus(current.status)) {
      if (current.status === status) return sequenceRun(current);
      throw sequenceRunFinishedError(sequenceRunId, current.status, status);
    }
    const terminal = isTerminalSequenceRunStatus(status);
    const { rows } = await q.query<SequenceRunResult>(
      `WITH finished AS (
         UPDATE ${this.t.sequenceRuns} SET status = $2, finished_at = CASE WHEN $3::boolean THEN $4::float8 ELSE finished_at END
         WHERE id = $1 RETURNING *
       )
       SELECT ${this.sequenceRunColumns} FROM finished AS r`,
      [sequenceRunId, status, terminal, now],
    );
    if (terminal) await this.recordFinishedRuns(q, 'sequence', [sequenceRunId], now);
    return sequenceRun(rows[0] as SequenceRunResult);
  }

  /** A cancel request: a queued run ends at once, an active one is flagged and stops at its next batch boundary. */
  private async cancelSyncRun(q: Queryable, id: number, now: number): Promise<SyncRun> {
    const current = await this.syncRunRow(q, id, 'FOR UPDATE');
    if (!current) throw new NotFoundError(`sync run ${id} does not exist`);
    const status = current.status as SyncRunStatus;
    if (isTerminalSyncRunStatus(status)) throw nothingToCancelError(`sync run ${id}`, status);
    if (status === 'queued') {
      const p = new Params();
      const at = p.add(now, 'float8');
      const { rows } = await q.query<SyncRunRow>(
        `WITH cancelled AS (
           UPDATE ${this.t.syncRuns} SET status = 'cancelled', cancel_requested = true, finished_at = ${at}
           WHERE id = ${p.add(current.id, 'bigint')} RETURNING *
         ), member AS (${this.followSql('cancelled', memberTransition('cancelled'), at, p)})
         SELECT * FROM cancelled`,
        p.values,
      );
      await this.recordFinishedRuns(q, 'sync', [String(current.id)], now);
      return syncRun(rows[0] as SyncRunRow);
    }
    const { rows } = await q.query<SyncRunRow>(`UPDATE ${this.t.syncRuns} SET cancel_requested = true WHERE id = $1 RETURNING *`, [current.id]);
    return syncRun(rows[0] as SyncRunRow);
  }

  /**
   * Applies a patch in one statement (absent fields keep their value) unless the run is in another
   * attempt than `attempt`, or is finished and the patch names another status; null then. A
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

  /** The statement of patchSyncRun, its values added to `p`. */
  private patchSyncRunSql(id: number, patch: SyncRunPatch, now: number, attempt: number | undefined, p: Params, ending: boolean): string {
    const status = patch.status ?? null;
    const terminal = status !== null && isTerminalSyncRunStatus(status);
    const runId = p.add(safeId(id) ?? -1, 'bigint');
    const newStatus = p.add(status, 'text');
    const at = p.add(now, 'float8');
    const count = (value: number | undefined) => p.add(value ?? null, 'bigint');
    const update = `UPDATE ${this.t.syncRuns} SET
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
         AND (${p.add(attempt ?? null, 'integer')} IS NULL OR attempt = ${p.add(attempt ?? null, 'integer')})
         ${ending ? `AND status NOT IN ${TERMINAL_SYNC}` : ''}
       RETURNING *`;
    // `ending`: only a run that goes on is changed, and its end is recorded (see recordFinishedRuns).
    const outbox = ending
      ? `, outbox AS (INSERT INTO ${this.t.finishedRuns} (kind, run_id, created_at) SELECT 'sync', updated.id::text, ${at} FROM updated)`
      : '';
    const announce = ending ? `, ${this.notifySql('finished', p)} AS notified_finished, ${this.notifySql('work', p)} AS notified_work` : '';
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
        AND NOT EXISTS (SELECT 1 FROM ${this.t.syncRuns} AS other WHERE other.sync_id = ${alias}.sync_id AND other.status IN ${ACTIVE}))
      OR (${alias}.status IN ${ACTIVE} AND (${alias}.lease_expires_at IS NULL OR ${alias}.lease_expires_at <= ${at})))`;
  }

  /**
   * Records runs' ends in the outbox, in the order given, in the transaction that ends them. Their
   * syncs or sequences are free for the next run too, so both topics are announced (at commit).
   */
  private async recordFinishedRuns(q: Queryable, kind: FinishedRunEntry['kind'], runIds: string[], now: number): Promise<void> {
    if (runIds.length === 0) return;
    await q.query(
      `INSERT INTO ${this.t.finishedRuns} (kind, run_id, created_at)
       SELECT $1, run_id, $3 FROM unnest($2::text[]) WITH ORDINALITY AS ended(run_id, n) ORDER BY n`,
      [kind, runIds, now],
    );
    await this.notify(q, 'finished');
    await this.notify(q, 'work');
  }

  /** Announces `topic` to every process watching this schema, once `q`'s transaction commits. */
  private async notify(q: Queryable, topic: StoreTopic): Promise<void> {
    await q.query('SELECT pg_notify($1, $2)', [this.channel, topic]);
  }

  /**
   * A scalar subquery announcing `topic` (see notify), for a column of a statement's result: it
   * runs once, and only when the statement returns a row.
   */
  private notifySql(topic: StoreTopic, p: Params): string {
    return `(SELECT pg_notify(${p.add(this.channel, 'text')}, ${p.add(topic, 'text')}))`;
  }

  private async syncRunRow(q: Queryable, id: number, lock = ''): Promise<SyncRunRow | null> {
    const runId = safeId(id);
    if (runId === null) return null;
    const { rows } = await q.query<SyncRunRow>(`SELECT * FROM ${this.t.syncRuns} WHERE id = $1 ${lock}`, [runId]);
    return rows[0] ?? null;
  }

  private async sequenceRunRow(q: Queryable, id: string, lock = ''): Promise<SequenceRunResult | null> {
    const sql = `SELECT ${this.sequenceRunColumns} FROM ${this.t.sequenceRuns} AS r WHERE r.id = $1 ${lock ? `${lock} OF r` : ''}`;
    const { rows } = await q.query<SequenceRunResult>(sql, [id]);
    return rows[0] ?? null;
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

/** An id as PostgreSQL's bigint takes it, or null for a number no row can have (fractions, huge). */
function safeId(id: number): number | null {
  return Number.isSafeInteger(id) ? id : null;
}

function nullableStored(text: string | null): string | null {
  return text === null ? null : storedText(text);
}

function timeFilters(query: { after?: number; before?: number }, where: string[], p: Params, prefix = ''): void {
  if (query.after !== undefined) where.push(`${prefix}created_at >= ${p.add(query.after, 'float8')}`);
  if (query.before !== undefined) where.push(`${prefix}created_at < ${p.add(query.before, 'float8')}`);
}

/** A unique index refused the change (wrapped by PostgresDatabase as a Conflict). */
function isUniqueViolation(error: unknown): boolean {
  return error instanceof LockstepError && error.code === ErrorCode.Conflict && errorCode(error.cause) === '23505';
}

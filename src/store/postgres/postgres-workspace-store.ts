/**
 * The workspace of the PostgreSQL store (WorkspaceStore): sources, destinations, models, syncs and
 * sequences, soft-deleted so run history keeps naming them, with the alert definition and webhook
 * settings that `apply` writes in the same transaction. A change reads the whole workspace,
 * decides by the shared rules of ../workspace-changes.ts, then writes, under an advisory lock so
 * two changes take turns; the work a deleted sync or sequence leaves behind belongs to the run
 * roles, which `afterDelete` reaches in the delete's own transaction.
 */
import type { AlertsDefinition } from '../../core/alerts.js';
import { ErrorCode, LockstepError, NotFoundError } from '../../core/errors.js';
import type { Clock, EntitySlug, SyncAsRun, WorkspaceStore } from '../../core/ports.js';
import { SEALED_PREFIX, countSealed, type SecretCodec, type SecretResealer } from '../../core/secrets.js';
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
import { definitionJson, syncsAsRun, toRecord, type EntityRow, type HistoryEntityRow } from '../rows.js';
import {
  ENTITY_KINDS,
  ENTITY_TABLES,
  checkAlerts,
  checkDelete,
  checkUpsert,
  declaredEntity,
  enabledOf,
  planApply,
  type EntityChange,
} from '../workspace-changes.js';
import type { PostgresAlertStore } from './postgres-alert-store.js';
import type { PostgresDatabase, Queryable } from './postgres-database.js';
import { entityRecord, safeId } from './postgres-statements.js';
import type { PostgresWebhookStore } from './postgres-webhook-store.js';

export interface PostgresWorkspaceStoreOptions {
  db: PostgresDatabase;
  /** The schema's name, unquoted (the key of the workspace's advisory lock). */
  schemaName: string;
  /** Seals the secrets it writes and opens those it reads. */
  secrets: SecretCodec;
  /** Gives the time of the alert and webhook rewrites of a reseal. */
  clock: Clock;
  alerts: PostgresAlertStore;
  webhooks: PostgresWebhookStore;
  /** Cancels the work a deleted sync or sequence leaves behind, in the delete's transaction `q`. */
  afterDelete: (q: Queryable, kind: EntityKind, id: number, slug: string, now: number) => Promise<void>;
  /** Cancels the work a disabled sync or sequence no longer takes, in the transaction `q` that left it disabled. */
  afterDisable: (q: Queryable, kind: 'sync' | 'sequence', id: number, now: number) => Promise<void>;
  /** Drops what sync `id` recorded as delivered, and ends its run under way, in the caller's transaction `q`: it delivers elsewhere or keys its rows otherwise now. */
  startOver: (q: Queryable, id: number, now: number) => Promise<void>;
}

export class PostgresWorkspaceStore implements WorkspaceStore, SecretResealer {
  private readonly db: PostgresDatabase;
  private readonly schemaName: string;
  private readonly secrets: SecretCodec;
  private readonly clock: Clock;
  private readonly alerts: PostgresAlertStore;
  private readonly webhooks: PostgresWebhookStore;
  private readonly afterDelete: (q: Queryable, kind: EntityKind, id: number, slug: string, now: number) => Promise<void>;
  private readonly afterDisable: (q: Queryable, kind: 'sync' | 'sequence', id: number, now: number) => Promise<void>;
  private readonly startOver: (q: Queryable, id: number, now: number) => Promise<void>;

  constructor(options: PostgresWorkspaceStoreOptions) {
    this.db = options.db;
    this.schemaName = options.schemaName;
    this.secrets = options.secrets;
    this.clock = options.clock;
    this.alerts = options.alerts;
    this.webhooks = options.webhooks;
    this.afterDelete = options.afterDelete;
    this.afterDisable = options.afterDisable;
    this.startOver = options.startOver;
  }

  async loadWorkspace(): Promise<WorkspaceState> {
    return this.db.transaction((q) => this.workspaceState(q), { readOnly: true });
  }

  async planWorkspace(definition: WorkspaceDefinition): Promise<WorkspaceChange[]> {
    // What apply would refuse is refused here too, rather than planned.
    return planApply(await this.loadWorkspace(), definition).changes;
  }

  async applyWorkspace(definition: WorkspaceDefinition, now: number): Promise<WorkspaceChange[]> {
    return this.workspaceTransaction(async (q) => {
      const plan = planApply(await this.workspaceState(q), definition);
      for (const change of plan.entities) await this.applyChange(q, change, definition, now);
      for (const id of plan.syncsStartingOver) await this.startOver(q, id, now);
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
    const syncs = await this.db.query<HistoryEntityRow>(`SELECT * FROM ${this.entityTable('sync')} WHERE id = ANY($1::bigint[])`, [safe]);
    const models = await this.db.query<HistoryEntityRow>(
      `SELECT * FROM ${this.entityTable('model')} WHERE slug IN (SELECT definition::jsonb ->> 'model' FROM ${this.entityTable('sync')} WHERE id = ANY($1::bigint[]))`,
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
      const startingOver = checkUpsert(await this.workspaceState(q), kind, definition);
      const created = (await this.entityBySlug(q, kind, definition.slug)) === null;
      await this.writeEntity(q, kind, created, definition, origin, now);
      for (const id of startingOver) await this.startOver(q, id, now);
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
    const table = this.entityTable(kind);
    await this.workspaceTransaction(async (q) => {
      const { rows } = await q.query(`UPDATE ${table} SET enabled = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL RETURNING id`, [
        enabled,
        now,
        safeId(id) ?? -1,
      ]);
      if (rows.length === 0) throw new NotFoundError(`${kind} ${id} does not exist`);
      if (!enabled) await this.afterDisable(q, kind, id, now);
    });
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
      return rows.filter((r) => r.kind === order).map((r) => entityRecord<T>(kind, r, this.secrets));
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

  private entityTable(kind: EntityKind): string {
    return `${this.db.schema}.${ENTITY_TABLES[kind].table}`;
  }

  /** A number is an id; text is a slug, or, when no slug is that text, an id written in digits (see WorkspaceStore.getSync). */
  private async entityByRef<T>(kind: 'sync' | 'sequence', ref: number | string): Promise<T | null> {
    if (typeof ref === 'string') {
      const bySlug = await this.entityBySlug<T>(this.db.direct, kind, ref);
      if (bySlug || !/^\d+$/.test(ref)) return bySlug;
    }
    const id = safeId(Number(ref));
    if (id === null) return null;
    const rows = await this.db.query<EntityRow>(`SELECT * FROM ${this.entityTable(kind)} WHERE id = $1 AND deleted_at IS NULL`, [id]);
    return rows[0] ? entityRecord<T>(kind, rows[0], this.secrets) : null;
  }

  private async entityBySlug<T>(q: Queryable, kind: EntityKind, slug: string): Promise<T | null> {
    const { rows } = await q.query<EntityRow>(`SELECT * FROM ${this.entityTable(kind)} WHERE slug = $1 AND deleted_at IS NULL`, [slug]);
    return rows[0] ? entityRecord<T>(kind, rows[0], this.secrets) : null;
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
    const { rows } = create
      ? await q.query<{ id: number }>(
          enabled !== null
            ? `INSERT INTO ${table} (slug, definition, created_at, updated_at, origin, enabled) VALUES ($1, $2, $3, $3, $4, $5) RETURNING id`
            : `INSERT INTO ${table} (slug, definition, created_at, updated_at, origin) VALUES ($1, $2, $3, $3, $4) RETURNING id`,
          params,
        )
      : await q.query<{ id: number }>(
          `UPDATE ${table} SET definition = $2, updated_at = $3, origin = $4${enabled !== null ? ', enabled = $5' : ''}
           WHERE slug = $1 AND deleted_at IS NULL RETURNING id`,
          params,
        );
    if (enabled === false && rows[0]) await this.afterDisable(q, kind as 'sync' | 'sequence', Number(rows[0].id), now);
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
}

/** The stored texts holding sealed values: entity definitions (deleted ones too), the alert definition, webhook settings. */
export async function sealedTexts(q: Queryable, schema: string): Promise<string[]> {
  const columns = [...ENTITY_KINDS.map((kind) => [ENTITY_TABLES[kind].table, 'definition']), ['alert_definitions', 'definition'], ['webhook_settings', 'settings']];
  const union = columns.map(([table, column]) => `SELECT ${column} AS text FROM ${schema}.${table} WHERE strpos(${column}, $1) > 0`).join(' UNION ALL ');
  return (await q.query<{ text: string }>(union, [SEALED_PREFIX])).rows.map((row) => row.text);
}

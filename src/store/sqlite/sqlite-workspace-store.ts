/**
 * The workspace of the embedded store (WorkspaceStore): sources, destinations, models, syncs and
 * sequences, soft-deleted so run history keeps naming them, with the alert definition and webhook
 * settings that `apply` writes in the same transaction. What may change is decided by the shared
 * rules of ../workspace-changes.ts; the work a deleted sync or sequence leaves behind belongs to
 * the run roles, which `afterDelete` reaches in the delete's own transaction. It shares the
 * SqliteStore's connection and transactions.
 */
import { NotFoundError } from '../../core/errors.js';
import type { AlertsDefinition } from '../../core/alerts.js';
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
import { checkAlerts, checkDelete, checkUpsert, declaredEntity, planApply, type EntityChange } from '../workspace-changes.js';
import type { SqliteAlertStore } from './sqlite-alert-store.js';
import type { SqliteDatabase, SqliteStatement, SqliteTransactions, SqliteValue } from './sqlite-database.js';
import { KINDS, TABLES, type Kind, type Statements } from './sqlite-statements.js';
import type { SqliteWebhookStore } from './sqlite-webhook-store.js';

export interface SqliteWorkspaceStoreOptions {
  db: SqliteDatabase;
  /** The store's prepared statements. */
  statements: Statements;
  transactions: SqliteTransactions;
  /** A statement whose SQL depends on the arguments, prepared once per shape. */
  statement: (sql: string) => SqliteStatement;
  /** Seals the secrets it writes and opens those it reads. */
  secrets: SecretCodec;
  /** Gives the time of the alert and webhook rewrites of a reseal. */
  clock: Clock;
  alerts: SqliteAlertStore;
  webhooks: SqliteWebhookStore;
  /** Cancels the work a deleted sync or sequence leaves behind, in the delete's write transaction. */
  afterDelete: (kind: EntityKind, id: number, slug: string, now: number) => void;
  /** Cancels the work a disabled sync or sequence no longer takes, in the write transaction that left it disabled. */
  afterDisable: (kind: 'sync' | 'sequence', id: number, now: number) => void;
  /** Drops what sync `id` recorded as delivered, and ends its run under way, in the caller's write transaction: it delivers elsewhere or keys its rows otherwise now. */
  startOver: (id: number, now: number) => void;
}

export class SqliteWorkspaceStore implements WorkspaceStore, SecretResealer {
  private readonly db: SqliteDatabase;
  private readonly statements: Statements;
  private readonly transactions: SqliteTransactions;
  private readonly statement: (sql: string) => SqliteStatement;
  private readonly secrets: SecretCodec;
  private readonly clock: Clock;
  private readonly alerts: SqliteAlertStore;
  private readonly webhooks: SqliteWebhookStore;
  private readonly afterDelete: (kind: EntityKind, id: number, slug: string, now: number) => void;
  private readonly afterDisable: (kind: 'sync' | 'sequence', id: number, now: number) => void;
  private readonly startOver: (id: number, now: number) => void;

  constructor(options: SqliteWorkspaceStoreOptions) {
    this.db = options.db;
    this.statements = options.statements;
    this.transactions = options.transactions;
    this.statement = options.statement;
    this.secrets = options.secrets;
    this.clock = options.clock;
    this.alerts = options.alerts;
    this.webhooks = options.webhooks;
    this.afterDelete = options.afterDelete;
    this.afterDisable = options.afterDisable;
    this.startOver = options.startOver;
  }

  async loadWorkspace(): Promise<WorkspaceState> {
    return this.transactions.read(() => this.workspaceState());
  }

  async planWorkspace(definition: WorkspaceDefinition): Promise<WorkspaceChange[]> {
    // What apply would refuse is refused here too, rather than planned.
    return planApply(await this.loadWorkspace(), definition).changes;
  }

  async applyWorkspace(definition: WorkspaceDefinition, now: number): Promise<WorkspaceChange[]> {
    return this.transactions.write(() => {
      const plan = planApply(this.workspaceState(), definition);
      for (const change of plan.entities) this.applyChange(change, definition, now);
      for (const id of plan.syncsStartingOver) this.startOver(id, now);
      if (plan.alerts) this.alerts.writeDefinition(plan.alerts, now);
      if (plan.webhooks) this.webhooks.writeSettings(plan.webhooks, now);
      return plan.changes;
    });
  }

  async updateAlerts(update: (current: AlertsDefinition) => AlertsDefinition, now: number): Promise<AlertsDefinition> {
    return this.transactions.write(() => {
      const current = this.workspaceState();
      const alerts = update(current.alerts);
      checkAlerts(current, alerts);
      this.alerts.writeDefinition(alerts, now);
      return this.alerts.readDefinition();
    });
  }

  async getSync(ref: number | string): Promise<SyncRecord | null> {
    return this.transactions.read(() => this.entityByRef<SyncRecord>('sync', ref));
  }

  async getSequence(ref: number | string): Promise<SequenceRecord | null> {
    return this.transactions.read(() => this.entityByRef<SequenceRecord>('sequence', ref));
  }

  async slugsById(kind: 'sync' | 'sequence', ids: readonly number[]): Promise<Map<number, EntitySlug>> {
    if (ids.length === 0) return new Map();
    const rows = await this.transactions.read(() => this.statements.entities[kind].slugsByIds.all(JSON.stringify([...new Set(ids)])) as Array<{ id: number; slug: string; deleted: number }>);
    return new Map(rows.map((row) => [Number(row.id), { slug: row.slug, deleted: row.deleted === 1 }]));
  }

  async syncsById(ids: readonly number[]): Promise<Map<number, SyncAsRun>> {
    if (ids.length === 0) return new Map();
    const json = JSON.stringify([...new Set(ids)]);
    return this.transactions.read(() =>
      syncsAsRun(this.statements.syncsByIds.all(json) as HistoryEntityRow[], this.statements.modelsOfSyncs.all(json) as HistoryEntityRow[], this.secrets),
    );
  }

  async deletedIdsBySlug(kind: 'sync' | 'sequence', slug: string): Promise<number[]> {
    return this.transactions.read(() => (this.statements.entities[kind].deletedBySlug.all(slug) as Array<{ id: number }>).map((row) => Number(row.id)));
  }

  async getModel(slug: string): Promise<ModelRecord | null> {
    return this.transactions.read(() => this.entityBySlug<ModelRecord>('model', slug));
  }

  async getSource(slug: string): Promise<ConnectionRecord | null> {
    return this.transactions.read(() => this.entityBySlug<ConnectionRecord>('source', slug));
  }

  async getDestination(slug: string): Promise<ConnectionRecord | null> {
    return this.transactions.read(() => this.entityBySlug<ConnectionRecord>('destination', slug));
  }

  async upsertEntity<K extends EntityKind>(
    kind: K,
    definition: EntityDefs[K],
    origin: EntityOrigin,
    now: number,
  ): Promise<{ record: EntityDefs[K] & Stored; created: boolean }> {
    return this.transactions.write(() => {
      const startingOver = checkUpsert(this.workspaceState(), kind, definition);
      const statements = this.statements.entities[kind];
      const created = !statements.bySlug.get(definition.slug);
      const params: Record<string, SqliteValue> = { slug: definition.slug, definition: definitionJson(definition, kind, this.secrets), now, origin };
      if (TABLES[kind].enabled) params.enabled = (definition as { enabled?: boolean }).enabled === false ? 0 : 1;
      (created ? statements.insert : statements.update).run(params);
      for (const id of startingOver) this.startOver(id, now);
      const record = toRecord(statements.bySlug.get(definition.slug) as EntityRow, kind, this.secrets) as EntityDefs[K] & Stored;
      if (params.enabled === 0) this.afterDisable(kind as 'sync' | 'sequence', record.id, now);
      return { record, created };
    });
  }

  async deleteEntity(kind: EntityKind, slug: string, now: number): Promise<void> {
    this.transactions.write(() => {
      const current = this.workspaceState();
      if (!this.statements.entities[kind].bySlug.get(slug)) throw new NotFoundError(`no ${kind} "${slug}" in the workspace`);
      checkDelete(current, kind, slug);
      this.applyChange({ action: 'delete', kind, slug, fields: [] }, current, now);
    });
  }

  async setEnabled(kind: 'sync' | 'sequence', id: number, enabled: boolean, now: number): Promise<void> {
    this.transactions.write(() => {
      const statement = kind === 'sync' ? this.statements.setSyncEnabled : this.statements.setSequenceEnabled;
      if (statement.run(enabled ? 1 : 0, now, id).changes === 0) throw new NotFoundError(`${kind} ${id} does not exist`);
      if (!enabled) this.afterDisable(kind, id, now);
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
    return this.transactions.write(() => {
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

  private workspaceState(): WorkspaceState {
    const all = <T>(kind: Kind) => (this.statements.entities[kind].live.all() as EntityRow[]).map((row) => toRecord(row, kind, this.secrets) as T);
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
    const statements = this.statements.entities[change.kind];
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
    if (params.enabled === 0) this.afterDisable(change.kind as 'sync' | 'sequence', Number((statements.bySlug.get(entity.slug) as EntityRow).id), now);
  }

  /** A number is an id; text is a slug, or, when no slug is that text, an id written in digits (see WorkspaceStore.getSync). */
  private entityByRef<T>(kind: 'sync' | 'sequence', ref: number | string): T | null {
    if (typeof ref === 'string') {
      const bySlug = this.entityBySlug<T>(kind, ref);
      if (bySlug || !/^\d+$/.test(ref)) return bySlug;
    }
    const row = this.statements.entities[kind].byId.get(Number(ref)) as EntityRow | undefined;
    return row ? (toRecord(row, kind, this.secrets) as T) : null;
  }

  private entityBySlug<T>(kind: Kind, slug: string): T | null {
    const row = this.statements.entities[kind].bySlug.get(slug) as EntityRow | undefined;
    return row ? (toRecord(row, kind, this.secrets) as T) : null;
  }
}

/** The stored texts holding sealed values: entity definitions (deleted ones too), the alert definition, webhook settings. */
export function sealedTexts(db: SqliteDatabase): string[] {
  const columns = [...KINDS.map((kind) => [TABLES[kind].table, 'definition']), ['alert_definitions', 'definition'], ['webhook_settings', 'settings']];
  return columns.flatMap(([table, column]) =>
    (db.prepare(`SELECT ${column} AS text FROM ${table} WHERE instr(${column}, ?) > 0`).all(SEALED_PREFIX) as Array<{ text: string }>).map((row) => row.text),
  );
}

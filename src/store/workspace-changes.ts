/**
 * What a store may do to its workspace, whatever database keeps it: which changes `apply` makes and
 * whether the result is valid, what one entity's upsert or delete may do, and what work goes with a
 * deleted entity. Each store reads its current state and writes the outcome in one transaction;
 * the decisions are made here, so every store decides alike.
 */
import { NO_ALERTS, type AlertsDefinition } from '../core/alerts.js';
import { ErrorCode, LockstepError, ValidationError, formatDiagnostics, type Diagnostic } from '../core/errors.js';
import type { TriggerType } from '../core/runs.js';
import { NO_WEBHOOKS, type WebhookSettings } from '../core/webhooks.js';
import { alertsAfterApply, diffWorkspace } from '../core/workspace-diff.js';
import {
  ENTITY_SECTIONS,
  type EntityDefs,
  type EntityKind,
  type EntitySection,
  type Stored,
  type WorkspaceChange,
  type WorkspaceDefinition,
  type WorkspaceState,
} from '../core/workspace.js';
import { checkWorkspaceReferences, referrersOf } from './workspace-references.js';

/** Where each kind of workspace entity lives, and whether it has an `enabled` column. */
export const ENTITY_TABLES: Record<EntityKind, { table: string; section: EntitySection; enabled: boolean }> = {
  source: { table: 'sources', section: 'sources', enabled: false },
  destination: { table: 'destinations', section: 'destinations', enabled: false },
  model: { table: 'models', section: 'models', enabled: false },
  sync: { table: 'syncs', section: 'syncs', enabled: true },
  sequence: { table: 'sequences', section: 'sequences', enabled: true },
};

export const ENTITY_KINDS = Object.keys(ENTITY_TABLES) as EntityKind[];

/** Why queued work was cancelled along with what it belonged to. */
export const CANCEL_REASONS = {
  /** A standalone run queued for a sync that was deleted: it can never run. */
  SyncDeleted: 'the sync was deleted',
  /** A pending run of a sequence that was deleted. */
  SequenceDeleted: 'the sequence was deleted',
  /** A pending sequence run a user cancelled. */
  CancelledBeforeStart: 'cancelled by a user before it started',
  /** A pending run a schedule, webhook or upstream run queued, of a sequence disabled since. */
  SequenceDisabled: 'the sequence was disabled before this run started; a disabled sequence runs only when started by hand or through the API',
  /** A run under way of a sync whose snapshot a change dropped (see syncsStartingOver). */
  SyncStartedOver:
    "the sync's destination, object or primary key changed while this run went on: what it delivered after the change went where the sync delivered before and is not recorded; the sync's next run sends every row to where it delivers now",
  /** A queued run a schedule, webhook or upstream run queued, of a sync disabled since. */
  SyncDisabled: 'the sync was disabled before this run started; a disabled sync runs only when started by hand or through the API',
} as const;

/** What queues a run on its own; a disabled sync or sequence is not run by these (SPEC §3.2). */
export const FIRED_TRIGGER_TYPES: readonly TriggerType[] = ['schedule', 'webhook', 'upstream'];

/**
 * Why a sequence run ends when a sync one of its members would still run is deleted: the run keeps
 * the members its sequence had when it was queued, so that member can never start.
 */
export function memberSyncDeletedReason(memberKey: string, syncSlug: string): string {
  return (
    `member "${memberKey}" cannot run: its sync "${syncSlug}" was deleted after this run was queued ` +
    '(a rename is a delete and a create) — start a new run of the sequence to run its current members'
  );
}

/** What a sync's delete does to a sequence run that would still start it. */
export interface WaitingRunEnd {
  /** The run is cancelled (it is pending); otherwise it is terminated by that member. */
  cancel: boolean;
  reason: string;
}

/**
 * What deleting sync `syncSlug` does to a pending or running sequence run whose pending member
 * `key` runs it. A sequence run keeps the members it was queued with: that member could never
 * start, and the run would wait for it forever. A pending run is cancelled; a running one is
 * terminated by that member (what runs finishes, the rest is skipped) and ends failed.
 */
export function endOfRunWaitingOnDeletedSync(run: { status: string; key: string }, syncSlug: string): WaitingRunEnd {
  return { cancel: run.status === 'pending', reason: memberSyncDeletedReason(run.key, syncSlug) };
}

/** A change of an entity (not of alerts or webhooks). */
export type EntityChange = WorkspaceChange & { kind: EntityKind };

export function isEntityChange(change: WorkspaceChange): change is EntityChange {
  return change.kind !== 'alert-channel' && change.kind !== 'alert-rule' && change.kind !== 'webhook';
}

/** What `applyWorkspace` writes. */
export interface ApplyPlan {
  /** Every change, in the order apply makes them (what the method returns). */
  changes: WorkspaceChange[];
  /** The entity changes among them, in the same order. */
  entities: EntityChange[];
  /** The alert channels and rules to store, or null when they did not change. */
  alerts: AlertsDefinition | null;
  /** The webhook settings to store, or null when they did not change. */
  webhooks: WebhookSettings | null;
  /** The syncs whose snapshots no longer describe what they deliver (see syncsStartingOver): dropped. */
  syncsStartingOver: number[];
}

/**
 * What applying `definition` to `current` writes. Throws a ValidationError, naming every problem,
 * when a reference would not resolve (entities created through the API stay, so they count).
 */
export function planApply(current: WorkspaceState, definition: WorkspaceDefinition): ApplyPlan {
  const problems = checkWorkspaceReferences(withApiEntities(definition, current)).map((problem) => ofApiEntity(problem, definition, current));
  if (problems.length > 0) {
    throw new ValidationError(problems, `the workspace cannot be applied:\n${formatDiagnostics(problems)}`);
  }
  const changes = diffWorkspace(current, definition);
  return {
    changes,
    entities: changes.filter(isEntityChange),
    alerts: changes.some((c) => c.kind === 'alert-channel' || c.kind === 'alert-rule')
      ? alertsAfterApply(current.alerts, definition.alerts ?? NO_ALERTS)
      : null,
    webhooks: changes.some((c) => c.kind === 'webhook') ? (definition.webhooks ?? NO_WEBHOOKS) : null,
    syncsStartingOver: syncsStartingOver(current, withApiEntities(definition, current)),
  };
}

/**
 * The live syncs whose snapshot no longer describes what `next` has them deliver, so it is dropped
 * in the change's transaction and their next run sends every row once and removes nothing:
 * - their rows are keyed otherwise (their model's primary key changed, or they read another model
 *   with another key): the snapshot holds keys no row has any more, so a run would plan every row
 *   added and every key removed, and a mirror would delete the rows it had just written;
 * - they write to another object or destination: the snapshot says what the old one received, so
 *   the new one would get only the rows that change from now on.
 */
export function syncsStartingOver(current: WorkspaceState, next: Pick<WorkspaceDefinition, 'models' | 'syncs'>): number[] {
  const keyOf = (models: ReadonlyArray<{ slug: string; primaryKey: string[] }>, slug: string) => {
    const model = models.find((m) => m.slug === slug);
    return model ? JSON.stringify(model.primaryKey) : null;
  };
  const ids: number[] = [];
  for (const sync of current.syncs) {
    const after = next.syncs.find((s) => s.slug === sync.slug);
    if (!after) continue;
    const before = keyOf(current.models, sync.model);
    const now = keyOf(next.models, after.model);
    const rekeyed = before !== null && now !== null && before !== now;
    if (rekeyed || after.destination !== sync.destination || after.object !== sync.object) ids.push(sync.id);
  }
  return ids;
}

/** The entity `definition` declares for a create or update change (undefined when it declares none). */
export function declaredEntity(
  definition: WorkspaceDefinition,
  change: EntityChange,
): ({ slug: string; enabled?: boolean } & object) | undefined {
  return (definition[ENTITY_TABLES[change.kind].section] as Array<{ slug: string; enabled?: boolean }>).find((e) => e.slug === change.slug);
}

/** The stored `enabled` of an entity of `kind` (null for kinds without one): absent means enabled. */
export function enabledOf(kind: EntityKind, entity: object): boolean | null {
  if (!ENTITY_TABLES[kind].enabled) return null;
  return (entity as { enabled?: boolean }).enabled !== false;
}

/**
 * Throws a ValidationError when storing `definition` (by slug) would leave a reference unresolved;
 * otherwise returns the syncs whose snapshots it makes obsolete (see syncsStartingOver).
 */
export function checkUpsert<K extends EntityKind>(current: WorkspaceState, kind: K, definition: EntityDefs[K]): number[] {
  const section = ENTITY_SECTIONS[kind];
  const next: WorkspaceDefinition = { ...current };
  const others = (current[section] as Array<{ slug: string }>).filter((e) => e.slug !== definition.slug);
  (next as unknown as Record<string, unknown[]>)[section] = [...others, definition];
  const problems = checkWorkspaceReferences(next);
  if (problems.length > 0) {
    throw new ValidationError(problems, `${kind} "${definition.slug}" cannot be stored:\n${formatDiagnostics(problems)}`);
  }
  return syncsStartingOver(current, next);
}

/** Throws a Conflict, naming them, when other entities refer to the `kind` entity `slug`. */
export function checkDelete(current: WorkspaceState, kind: EntityKind, slug: string): void {
  const referrers = referrersOf(current, kind, slug);
  if (referrers.length > 0) {
    throw new LockstepError(
      ErrorCode.Conflict,
      `${kind} "${slug}" is used by ${referrers.join(', ')} — change or delete ${referrers.length === 1 ? 'it' : 'them'} first`,
    );
  }
}

/** Throws a ValidationError when `alerts` name an unknown channel, sync or sequence. */
export function checkAlerts(current: WorkspaceState, alerts: AlertsDefinition): void {
  const problems = checkWorkspaceReferences({ ...current, alerts });
  if (problems.length > 0) throw new ValidationError(problems, `the alerts cannot be stored:\n${formatDiagnostics(problems)}`);
}

/** `definition` plus the stored entities created through the API that it does not declare (apply keeps them). */
/**
 * A problem of an entity the API created, which the files do not declare: the files cannot fix it
 * by naming it, so it says whose it is and the two ways out.
 */
function ofApiEntity(problem: Diagnostic, definition: WorkspaceDefinition, current: WorkspaceState): Diagnostic {
  for (const [kind, section] of Object.entries(ENTITY_SECTIONS) as Array<[EntityKind, EntitySection]>) {
    const entity = (current[section] as Array<Stored & { slug: string }>).find((e) => problem.path.startsWith(`${section}.${e.slug}.`));
    if (!entity || entity.origin !== 'api' || definition[section].some((e) => e.slug === entity.slug)) continue;
    return {
      ...problem,
      message: `${problem.message}, which ${kind} "${entity.slug}" (created through the API) uses`,
      hint: `keep it declared in the workspace files, or change or delete ${kind} "${entity.slug}" through the API or the UI first`,
    };
  }
  return problem;
}

function withApiEntities(definition: WorkspaceDefinition, current: WorkspaceState): WorkspaceDefinition {
  const merged = { ...definition, alerts: alertsAfterApply(current.alerts, definition.alerts ?? NO_ALERTS) };
  for (const section of Object.values(ENTITY_SECTIONS)) {
    const declared = new Set(definition[section].map((e) => e.slug));
    const kept = (current[section] as Array<Stored & { slug: string }>).filter((e) => e.origin === 'api' && !declared.has(e.slug));
    (merged as unknown as Record<string, unknown[]>)[section] = [...definition[section], ...kept];
  }
  return merged;
}

import { NO_ALERTS, type AlertsDefinition } from './alerts.js';
import { NO_WEBHOOKS } from './webhooks.js';
import type { EntityKind, EntitySection, WorkspaceChange, WorkspaceDefinition, WorkspaceState } from './workspace.js';

const SECTIONS: ReadonlyArray<[EntityKind, EntitySection]> = [
  ['source', 'sources'],
  ['destination', 'destinations'],
  ['model', 'models'],
  ['sync', 'syncs'],
  ['sequence', 'sequences'],
];

/** Fields the store adds; they never count as a change. */
const STORED_FIELDS = new Set(['id', 'createdAt', 'updatedAt', 'origin']);

/**
 * What it takes to turn the stored workspace into `next`, entity by entity (matched by slug), in the
 * order `apply` performs it: creates and updates parents first, deletes children first.
 * Entities created through the API are left alone unless `next` declares their slug: then the file
 * takes them over (an update listing `origin`).
 */
export function diffWorkspace(current: WorkspaceState, next: WorkspaceDefinition): WorkspaceChange[] {
  const upserts: WorkspaceChange[] = [];
  const deletes: WorkspaceChange[] = [];
  for (const [kind, section] of SECTIONS) {
    const before = new Map<string, object>(current[section].map((e) => [e.slug, e]));
    const after = new Map<string, object>(next[section].map((e) => [e.slug, e]));
    for (const [slug, entity] of after) {
      const old = before.get(slug);
      if (!old) {
        upserts.push({ action: 'create', kind, slug, fields: [] });
        continue;
      }
      const fields = changedFields(old, entity);
      if (isFromApi(old)) fields.push('origin');
      if (fields.length > 0) upserts.push({ action: 'update', kind, slug, fields });
    }
    for (const [slug, entity] of before) {
      if (!after.has(slug) && !isFromApi(entity)) deletes.push({ action: 'delete', kind, slug, fields: [] });
    }
  }
  return [...upserts, ...diffAlerts(current, next), ...diffWebhooks(current, next), ...deletes.reverse()];
}

/** The webhook endpoints' settings, by endpoint (`dbtCloud`, `fivetran`). */
function diffWebhooks(current: WorkspaceState, next: WorkspaceDefinition): WorkspaceChange[] {
  const after = next.webhooks ?? NO_WEBHOOKS;
  return (['dbtCloud', 'fivetran'] as const).flatMap((name): WorkspaceChange[] => {
    const [a, b] = [current.webhooks[name], after[name]];
    if (stableJson(a) === stableJson(b)) return [];
    const action = a === null ? 'create' : b === null ? 'delete' : 'update';
    return [{ action, kind: 'webhook', slug: name, fields: action === 'update' ? ['secret'] : [] }];
  });
}

/**
 * Alert channels and rules, matched by name. Like entities, those created through the API stay
 * unless `next` declares their name: then the file takes them over (an update listing `origin`).
 */
function diffAlerts(current: WorkspaceState, next: WorkspaceDefinition): WorkspaceChange[] {
  const changes: WorkspaceChange[] = [];
  const nextAlerts = next.alerts ?? NO_ALERTS;
  const pairs = [
    ['alert-channel', current.alerts.channels, nextAlerts.channels],
    ['alert-rule', current.alerts.rules, nextAlerts.rules],
  ] as const;
  for (const [kind, before, after] of pairs) {
    const old = new Map<string, object>(before.map((e) => [e.name, e]));
    const names = new Set<string>();
    for (const entity of after) {
      names.add(entity.name);
      const previous = old.get(entity.name);
      if (!previous) changes.push({ action: 'create', kind, slug: entity.name, fields: [] });
      else {
        const fields = changedFields(previous, entity);
        if (isFromApi(previous)) fields.push('origin');
        if (fields.length > 0) changes.push({ action: 'update', kind, slug: entity.name, fields });
      }
    }
    for (const [name, entity] of old) if (!names.has(name) && !isFromApi(entity)) changes.push({ action: 'delete', kind, slug: name, fields: [] });
  }
  return changes;
}

function isFromApi(entity: object): boolean {
  return (entity as { origin?: unknown }).origin === 'api';
}

function changedFields(old: object, next: object): string[] {
  const a = old as Record<string, unknown>;
  const b = next as Record<string, unknown>;
  const names = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => !STORED_FIELDS.has(k)));
  return [...names].filter((k) => stableJson(a[k]) !== stableJson(b[k])).sort();
}

/** JSON with object keys sorted, so equal values compare equal whatever their key order. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)))
      : v,
  ) ?? 'undefined';
}

/**
 * The alerts `apply` stores: the files' channels and rules (origin `file`) plus those created
 * through the API that no file declares by name.
 */
export function alertsAfterApply(current: AlertsDefinition, declared: AlertsDefinition): AlertsDefinition {
  const keep = <T extends { name: string; origin?: string }>(stored: T[], files: T[]): T[] => {
    const names = new Set(files.map((e) => e.name));
    return [...files.map((e) => ({ ...e, origin: 'file' as const })), ...stored.filter((e) => isFromApi(e) && !names.has(e.name))];
  };
  return { channels: keep(current.channels, declared.channels), rules: keep(current.rules, declared.rules) };
}

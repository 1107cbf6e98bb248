/**
 * Checks of what the connector kinds decide: a connection's `type` (a registered kind that can play
 * its role, with did-you-mean), its settings (the kind's schema), a sync's kind settings (the
 * destination kind's `syncSettings`), and `lookup` mappings (the parent sync must record ids).
 * Like the other cross-entity checks, they read the plain YAML defensively.
 */
import type { z } from 'zod';
import type { ConnectorKind, ConnectorRole } from '../core/connector-kind.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import type { Diagnostic } from '../core/errors.js';
import { splitHint } from '../core/hints.js';
import { lookupsOf } from '../core/sync-rules.js';
import type { Catalog, Declaration } from './check-workspace.js';
import { ALLOWED_KEYS, issueDiagnostics, workspaceErrorMap, type IssueOptions } from './issue-diagnostics.js';
import { didYouMean, listNames } from './suggestions.js';
import { givenBy, resolvedText } from './resolved-settings.js';
import type { PathSegment } from './workspace-file.js';
import { SYNC_FIELDS } from './workspace-schema.js';

type Env = Record<string, string | undefined>;

const ROLE = { sources: 'source', destinations: 'destination' } as const satisfies Record<string, ConnectorRole>;

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/**
 * @param env the variables a connection's `${VAR}` templates are read from, to check its settings as
 *   they give them (default: none); the API passes only those its allow-list lists
 */
export function checkConnectors(catalog: Catalog, registry: ConnectorRegistry, env: Env = {}): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const section of ['sources', 'destinations'] as const) {
    for (const connection of catalog[section].values()) out.push(...checkConnection(connection, section, registry, env));
  }
  for (const sync of catalog.syncs.values()) out.push(...checkSync(sync, catalog, registry));
  return out;
}

function checkConnection(connection: Declaration, section: 'sources' | 'destinations', registry: ConnectorRegistry, env: Env): Diagnostic[] {
  const data = asRecord(connection.data);
  if (data === null || typeof data.type !== 'string' || data.type === '') return [];
  const role = ROLE[section];
  const path: PathSegment[] = [section, connection.slug];
  const kind = registry.kind(data.type);
  const fitting = registry.kinds(role).map((k) => k.type);
  if (!kind || !kind[role]) {
    const message = kind
      ? `a ${data.type} connection cannot be a ${role}`
      : `unknown type "${data.type}"${didYouMean(data.type, fitting)}`;
    return [connection.file.diagnostic([...path, 'type'], message, `use one of: ${listNames(fitting, 12)}`)];
  }
  const { type: _type, ...settings } = data;
  const issues = registry.checkSettings(kind, settings, workspaceErrorMap);
  // `type` sits next to the kind's settings, so it is allowed there too.
  const withType = (issue: z.core.$ZodIssue): z.core.$ZodIssue =>
    issue.code === 'unrecognized_keys' && issue.path.length === 0 && issue.message.startsWith(ALLOWED_KEYS)
      ? { ...issue, message: issue.message.replace(ALLOWED_KEYS, `${ALLOWED_KEYS}type,`) }
      : issue;
  // A secret setting's value stays out of the message: validate's output lands in terminals and CI logs.
  const secret = (issue: z.core.$ZodIssue): boolean => kind.secrets.includes(String(issue.path[0]));
  return [
    ...issues.flatMap((issue) => located(connection, path, withType(issue), { secret: secret(issue) })),
    ...checkResolvedSettings(connection, path, kind, settings, registry, env),
  ];
}

/**
 * A connection's settings that hold `${VAR}` templates, checked as their variables give them (the
 * schema passed them as written): a postgres URL exported as http://..., or with a # in its password,
 * would otherwise pass validate and fail every run. Only the checks a setting's kind adds (its URL's
 * scheme and shape) are read, whose messages never hold the value; the variables are named instead.
 */
function checkResolvedSettings(
  connection: Declaration,
  path: PathSegment[],
  kind: ConnectorKind,
  settings: Record<string, unknown>,
  registry: ConnectorRegistry,
  env: Env,
): Diagnostic[] {
  const given = new Map<string, string[]>();
  const resolved: Record<string, unknown> = { ...settings };
  for (const [field, value] of Object.entries(settings)) {
    const filled = typeof value === 'string' ? resolvedText(value, env) : null;
    if (!filled || filled.names.length === 0 || filled.text.trim() === '') continue;
    resolved[field] = filled.text;
    given.set(field, filled.names);
  }
  if (given.size === 0) return [];
  return registry.checkSettings(kind, resolved).flatMap((issue) => {
    const field = String(issue.path[0]);
    const names = given.get(field);
    if (issue.code !== 'custom' || issue.path.length !== 1 || !names) return [];
    const { message, hint } = splitHint(issue.message);
    return [connection.file.diagnostic([...path, field], `${message}${givenBy(names)}`, `check ${names.join(' and ')}${hint ? `: ${hint}` : ''}`)];
  });
}

function checkSync(sync: Declaration, catalog: Catalog, registry: ConnectorRegistry): Diagnostic[] {
  const data = asRecord(sync.data);
  if (data === null) return [];
  const path: PathSegment[] = ['syncs', sync.slug];
  const out: Diagnostic[] = [];
  const kind = destinationKind(data.destination, catalog, registry);
  if (kind) {
    const settings = Object.fromEntries(Object.entries(data).filter(([key]) => !(SYNC_FIELDS as readonly string[]).includes(key)));
    const kindFields = settingNames(kind.destination?.syncSettings);
    const allowed = [...SYNC_FIELDS, ...kindFields];
    for (const key of Object.keys(settings)) {
      if (kindFields.includes(key)) continue;
      out.push(
        sync.file.diagnostic(
          [...path, key],
          `unknown key "${key}"${didYouMean(key, allowed)}`,
          `allowed here: ${listNames(allowed, 16)}`,
          'key',
        ),
      );
      delete settings[key];
    }
    out.push(...registry.checkSyncSettings(kind, settings, workspaceErrorMap).flatMap((issue) => located(sync, path, issue)));
    if (typeof data.object === 'string') out.push(...registry.checkObject(kind, data.object, workspaceErrorMap).flatMap((issue) => located(sync, path, issue)));
    const needs = kind.destination?.checkSync?.({
      object: typeof data.object === 'string' ? data.object : undefined,
      mode: String(data.mode),
      deleteBehavior: String(data.deleteBehavior ?? 'ignore'),
      settings,
      destination: String(data.destination),
      syncOf: (slug) => {
        const other = asRecord(catalog.syncs.get(slug)?.data);
        return typeof other?.destination === 'string' && typeof other.object === 'string' ? { destination: other.destination, object: other.object } : undefined;
      },
    });
    for (const need of needs === null || needs === undefined ? [] : Array.isArray(needs) ? needs : [needs]) {
      out.push(sync.file.diagnostic([...path, ...(Array.isArray(need.at) ? need.at : [need.at])], need.message, need.hint));
    }
  }
  out.push(...checkLookups(sync, data, catalog, registry));
  return out;
}

/** Lookups: the parent sync exists, and its destination records ids. */
function checkLookups(sync: Declaration, data: Record<string, unknown>, catalog: Catalog, registry: ConnectorRegistry): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { path: inner, sync: parent } of lookupsOf(data)) {
    const path: PathSegment[] = ['syncs', sync.slug, ...inner];
    const declared = catalog.syncs.get(parent);
    if (!declared) {
      out.push(sync.file.diagnostic(path, `unknown sync "${parent}"${didYouMean(parent, catalog.syncs.keys())}`, `lookup names the sync whose recorded ids it sends, one of: ${listNames([...catalog.syncs.keys()])}`));
      continue;
    }
    const kind = destinationKind(asRecord(declared.data)?.destination, catalog, registry);
    if (kind && !kind.destination?.capabilities.recordIds) {
      const recording = registry.kinds('destination').filter((k) => k.destination?.capabilities.recordIds).map((k) => k.type);
      out.push(
        sync.file.diagnostic(
          path,
          `sync "${parent}" writes to a ${kind.type} destination, which does not report record ids, so there is nothing to look up`,
          `map the parent's key column directly, or look up a sync that writes to ${recording.length > 0 ? listNames(recording) : 'a destination that reports ids'}`,
        ),
      );
    }
  }
  return out;
}

/**
 * Warnings: a sequence member that looks up the ids of another member's sync but may start before
 * that member has finished (it would reject every row whose parent is new in this run).
 */
export function checkLookupOrder(catalog: Catalog): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const sequence of catalog.sequences.values()) {
    const members = asRecord(sequence.data)?.members;
    if (!Array.isArray(members)) continue;
    const parsed = members.map((member, index) => {
      const data = asRecord(member);
      const sync = typeof member === 'string' ? member : typeof data?.sync === 'string' ? data.sync : null;
      const key = typeof data?.key === 'string' ? data.key : sync;
      const after = Array.isArray(data?.after) ? (data.after as unknown[]).filter((k): k is string => typeof k === 'string') : null;
      return { index, sync, key, after };
    });
    const byKey = new Map(parsed.filter((m) => m.key !== null).map((m) => [m.key as string, m]));
    const bySync = new Map(parsed.filter((m) => m.sync !== null).map((m) => [m.sync as string, m]));
    // What a member waits for: its `after`, or the member listed before it.
    const waitsFor = (member: (typeof parsed)[number]): string[] =>
      member.after ?? (member.index > 0 && parsed[member.index - 1]?.key ? [parsed[member.index - 1]?.key as string] : []);
    const ancestors = (member: (typeof parsed)[number]): Set<string> => {
      const seen = new Set<string>();
      const stack = [...waitsFor(member)];
      while (stack.length > 0) {
        const key = stack.pop() as string;
        if (seen.has(key)) continue;
        seen.add(key);
        const next = byKey.get(key);
        if (next) stack.push(...waitsFor(next));
      }
      return seen;
    };
    for (const member of parsed) {
      if (member.sync === null) continue;
      const child = catalog.syncs.get(member.sync);
      for (const { sync: parent } of lookupsOf(child?.data)) {
        const parentMember = bySync.get(parent);
        if (!parentMember || parentMember === member || parentMember.key === null) continue;
        if (ancestors(member).has(parentMember.key)) continue;
        out.push(
          sequence.file.diagnostic(
            ['sequences', sequence.slug, 'members', member.index],
            `member "${member.key}" looks up the ids that "${parentMember.key}" records, but may start before it finishes: rows whose parent is new in this run would be rejected until the next run`,
            member.after !== null ? `add "${parentMember.key}" to its after list` : `list "${parentMember.key}" before "${member.key}"`,
          ),
        );
      }
    }
  }
  return out;
}

function destinationKind(slug: unknown, catalog: Catalog, registry: ConnectorRegistry): ConnectorKind | undefined {
  if (typeof slug !== 'string') return undefined;
  const type = asRecord(catalog.destinations.get(slug)?.data)?.type;
  return typeof type === 'string' ? registry.kind(type) : undefined;
}

/** The field names a settings schema declares (a zod object's shape). */
function settingNames(schema: z.ZodType | undefined): string[] {
  const shape = (schema as { shape?: Record<string, unknown> } | undefined)?.shape;
  return shape ? Object.keys(shape) : [];
}

/** A settings issue, located in the declaration's file under `path`. */
function located(declaration: Declaration, path: PathSegment[], issue: z.core.$ZodIssue, options: IssueOptions = {}): Diagnostic[] {
  return issueDiagnostics({ ...issue, path: [...path, ...issue.path] } as z.core.$ZodIssue, declaration.file, declaration.file.content(), options);
}

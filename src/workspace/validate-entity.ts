/**
 * Validates one entity sent to the API (the shape of one entry of a workspace file, plus `slug`)
 * with the same rules as `lockstep validate`: the workspace file schema for its shape, and the
 * cross-entity checks against the stored workspace with the change made. Problems come back keyed
 * by field path inside the entity (`members[1].sync`), or by workspace path when the change breaks
 * another entity (`sequences.crm.members[0].sync`).
 */
import { envAllowListOf } from '../core/connections.js';
import type { Diagnostic } from '../core/errors.js';
import {
  ENTITY_SECTIONS,
  type EntityDefs,
  type EntityKind,
  type SequenceDef,
  type WorkspaceState,
} from '../core/workspace.js';
import { checkWorkspace, type Catalog, type Declaration } from './check-workspace.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import { issueDiagnostics, workspaceErrorMap } from './issue-diagnostics.js';
import { WorkspaceFile } from './workspace-file.js';
import { SECTION_NAMES, SLUG_PATTERN, SLUG_RULE, suggestSlug, workspaceFileSchema } from './workspace-schema.js';

type Env = Record<string, string | undefined>;

export type EntityValidation<K extends EntityKind> =
  | { ok: true; definition: EntityDefs[K] }
  | { ok: false; details: Record<string, string> };

/** Name of the document a request body is checked as; diagnostics in it are about the body. */
const BODY = 'request body';
const STORED = 'stored workspace';

/** Stored fields the API returns; a body sent back as it was read may carry them, and they are ignored. */
const READ_ONLY_FIELDS = ['id', 'createdAt', 'updatedAt', 'origin', 'warning', 'nextDueAt'];

/**
 * @param slug the slug from the URL (PUT), or null when the body names it (POST)
 * @param current the stored workspace the entity joins or replaces
 */
export function validateEntity<K extends EntityKind>(
  kind: K,
  body: unknown,
  slug: string | null,
  current: WorkspaceState,
  env: Env,
  registry: ConnectorRegistry,
): EntityValidation<K> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, details: { body: `must be a JSON object with the ${kind}'s fields, got ${describe(body)}` } };
  }
  const details: Record<string, string> = {};
  const { slug: bodySlug, ...fields } = body as Record<string, unknown>;
  for (const field of READ_ONLY_FIELDS) delete fields[field];
  Object.assign(fields, fromStoredShape(fields));
  if (kind === 'sequence' && Array.isArray(fields.members)) fields.members = fields.members.map(withoutDefaultThreshold);
  let entitySlug: string;
  if (slug === null) {
    if (bodySlug === undefined) details.slug = `missing slug — add "slug": "<${SLUG_RULE}>"`;
    else if (typeof bodySlug !== 'string' || !SLUG_PATTERN.test(bodySlug)) {
      details.slug = `invalid slug ${describe(bodySlug)} — use ${SLUG_RULE}, e.g. "${suggestSlug(bodySlug)}"`;
    }
    entitySlug = typeof bodySlug === 'string' && SLUG_PATTERN.test(bodySlug) ? bodySlug : 'entity';
  } else {
    if (bodySlug !== undefined && bodySlug !== slug) details.slug = `slug ${describe(bodySlug)} differs from "${slug}" in the path — slugs cannot be changed; create a new entity instead`;
    entitySlug = slug;
  }

  const section = ENTITY_SECTIONS[kind];
  const document = { [section]: { [entitySlug]: fields } };
  const file = WorkspaceFile.parse(BODY, JSON.stringify(document));
  const prefix = `${section}.${entitySlug}`;
  const parsed = workspaceFileSchema.safeParse(document, { error: workspaceErrorMap, reportInput: true });
  const diagnostics: Diagnostic[] = parsed.success ? [] : parsed.error.issues.flatMap((issue) => issueDiagnostics(issue, file, document));

  // Cross-entity checks: what the change adds to the stored workspace's own problems.
  const stored = storedDocument(current, section, entitySlug);
  const storedFile = WorkspaceFile.parse(STORED, JSON.stringify(stored));
  const catalog = catalogOf(stored, storedFile);
  // Settings are checked as their variables give them only for the variables the allow-list lets the API read.
  const allowList = envAllowListOf(env);
  const readable = (name: string) => allowList.allows(name);
  const baseline = new Set(checkWorkspace(catalogOf(storedDocument(current, section, null), storedFile), env, registry, readable).map(key));
  catalog[section].set(entitySlug, { file, slug: entitySlug, data: fields });
  for (const d of checkWorkspace(catalog, env, registry, readable)) {
    if (d.file === BODY || !baseline.has(key(d))) diagnostics.push(d);
  }

  for (const d of diagnostics) {
    const field = (d.file === BODY ? relativePath(d.path, prefix) : d.path) || 'body';
    const text = d.hint ? `${d.message} — ${d.hint}` : d.message;
    details[field] = details[field] ? `${details[field]}; ${text}` : text;
  }
  if (Object.keys(details).length > 0 || !parsed.success) {
    if (Object.keys(details).length === 0) details.body = 'is not valid';
    return { ok: false, details };
  }
  const entry = (parsed.data[section] as Record<string, object>)[entitySlug] as Record<string, unknown>;
  const definition = { slug: entitySlug, ...entry } as unknown as EntityDefs[K];
  if (kind === 'sequence') (definition as SequenceDef).name = (entry.name as string | undefined) ?? entitySlug;
  return { ok: true, definition };
}

/** Fields whose null is a value of its own, not "not given": a sync's `maxDeletePercent: null` turns the mass-delete guard off. */
const NULL_IS_A_VALUE: ReadonlySet<string> = new Set(['maxDeletePercent']);

/**
 * An entity as the API returned it, back in the file's shape: nulls (`url: null`, `after: null`,
 * `startAt: null`) mean "not given" (but see NULL_IS_A_VALUE), and a schedule's
 * `catchupWindowSeconds` is its `catchupWindow`. So a body read from the API can be sent back with
 * a change.
 */
function fromStoredShape(fields: Record<string, unknown>): Record<string, unknown> {
  const clean = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(clean);
    if (value === null || typeof value !== 'object') return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === null) continue;
      out[k === 'catchupWindowSeconds' ? 'catchupWindow' : k] = clean(v);
    }
    return out;
  };
  const nullValues = Object.fromEntries(Object.keys(fields).filter((k) => fields[k] === null && NULL_IS_A_VALUE.has(k)).map((k) => [k, null]));
  for (const k of Object.keys(fields)) if (fields[k] === null) delete fields[k];
  return { ...(clean(fields) as Record<string, unknown>), ...nullValues };
}

/** A stored member carries the default threshold `{count: 0}` whatever its policy; the file form leaves it out. */
function withoutDefaultThreshold(member: unknown): unknown {
  if (member === null || typeof member !== 'object' || Array.isArray(member)) return member;
  const { rejectedThreshold, ...rest } = member as Record<string, unknown>;
  const isDefault = JSON.stringify(rejectedThreshold) === '{"count":0}';
  return isDefault && rest.terminate !== 'on_fatal_or_rejected' ? rest : member;
}

function key(d: Diagnostic): string {
  return `${d.path}\u0000${d.message}`;
}

export function relativePath(path: string, prefix: string): string {
  if (path === prefix) return 'body';
  if (path.startsWith(`${prefix}.`)) return path.slice(prefix.length + 1);
  if (path.startsWith(`${prefix}[`)) return path.slice(prefix.length);
  return path === '' ? 'body' : path;
}

/** The stored workspace as a workspace document (what the checks read), without `skip` in `skipSection`. */
export function storedDocument(current: WorkspaceState, skipSection: string, skip: string | null): Record<string, Record<string, unknown>> {
  const document: Record<string, Record<string, unknown>> = {};
  for (const section of SECTION_NAMES) {
    document[section] = {};
    for (const entity of (current[section] ?? []) as Array<{ slug: string }>) {
      if (section === skipSection && entity.slug === skip) continue;
      const { slug, id: _id, createdAt: _c, updatedAt: _u, origin: _o, ...rest } = entity as Record<string, unknown> & { slug: string };
      (document[section] as Record<string, unknown>)[slug] = fileForm(rest);
    }
  }
  return document;
}

/**
 * A stored definition in the shape a workspace file writes it: a connection's or a sync's kind
 * settings next to its other fields, not under `settings`.
 */
export function fileForm<T extends Record<string, unknown>>(definition: T): Record<string, unknown> {
  const { settings, ...rest } = definition;
  return settings !== null && typeof settings === 'object' && !Array.isArray(settings) ? { ...(settings as Record<string, unknown>), ...rest } : definition;
}

export function catalogOf(document: Record<string, Record<string, unknown>>, file: WorkspaceFile): Catalog {
  const catalog = {} as Catalog;
  for (const section of SECTION_NAMES) {
    catalog[section] = new Map<string, Declaration>(
      Object.entries(document[section] ?? {}).map(([slug, data]) => [slug, { file, slug, data }]),
    );
  }
  return catalog;
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return JSON.stringify(value);
}

/**
 * Checks that span entities and files: references between them (with did-you-mean), sequence
 * members, `after` cycles inside a sequence, loops of `after` schedules, and `${VAR}` templates whose
 * variable is not set. They read the plain YAML data defensively, so they run even where the
 * structural checks found problems, and every error is reported in one pass.
 */
import type { Diagnostic } from '../core/errors.js';
import { blankTemplateNames, settingStrings, templateNames } from '../core/connections.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import { checkConnectors } from './check-connectors.js';
import type { SectionName } from './workspace-schema.js';
import type { PathSegment, WorkspaceFile } from './workspace-file.js';
import { didYouMean, listNames } from './suggestions.js';

/** One entity as declared: where, and its plain data (not yet validated). */
export interface Declaration {
  file: WorkspaceFile;
  slug: string;
  data: unknown;
}

/** Every declared entity by section and slug, first declaration wins. */
export type Catalog = Record<SectionName, Map<string, Declaration>>;

type Env = Record<string, string | undefined>;

const KIND: Record<SectionName, string> = {
  sources: 'source',
  destinations: 'destination',
  models: 'model',
  syncs: 'sync',
  sequences: 'sequence',
};

/**
 * What a model or sync says that a `${VAR}` template is not read in, though a user might expect it to
 * be (a schema name in a query, a table per environment): such text would go to the source or
 * destination literally and fail there, or write to an object of that name.
 */
const UNTEMPLATED_FIELDS: ReadonlyArray<readonly ['models' | 'syncs', readonly string[]]> = [
  ['models', ['query', 'primaryKey']],
  ['syncs', ['object', 'mappings']],
];

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function asString(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/**
 * @param readable the variables whose values may be read to check what they give (default: all); a
 *   body sent to the API reads only those its allow-list lists, so no answer tells a caller anything
 *   of another variable's value
 */
export function checkWorkspace(catalog: Catalog, env: Env, registry: ConnectorRegistry, readable: (name: string) => boolean = () => true): Diagnostic[] {
  const out: Diagnostic[] = [];

  const reference = (from: Declaration, path: PathSegment[], value: unknown, section: SectionName): void => {
    const slug = asString(value);
    if (slug === null || catalog[section].has(slug)) return;
    const kind = KIND[section];
    const declared = [...catalog[section].keys()];
    out.push(
      from.file.diagnostic(
        path,
        `unknown ${kind} "${slug}"${didYouMean(slug, declared)}`,
        declared.length > 0 ? `declare ${kind} "${slug}" under ${section}:, or use one of: ${listNames(declared)}` : `declare ${kind} "${slug}" under ${section}:`,
      ),
    );
  };

  for (const model of catalog.models.values()) {
    reference(model, ['models', model.slug, 'source'], asRecord(model.data)?.source, 'sources');
  }

  for (const sync of catalog.syncs.values()) {
    const data = asRecord(sync.data);
    reference(sync, ['syncs', sync.slug, 'model'], data?.model, 'models');
    reference(sync, ['syncs', sync.slug, 'destination'], data?.destination, 'destinations');
    checkAfterSchedule(sync, 'syncs', data?.schedule);
  }

  for (const sequence of catalog.sequences.values()) {
    const data = asRecord(sequence.data);
    checkAfterSchedule(sequence, 'sequences', data?.schedule);
    if (Array.isArray(data?.members)) out.push(...checkMembers(sequence, data.members));
  }

  out.push(...checkTriggerLoops(catalog));

  for (const [section, fields] of UNTEMPLATED_FIELDS) {
    for (const entity of catalog[section].values()) {
      const data = asRecord(entity.data) ?? {};
      for (const field of fields) {
        for (const { path, value } of settingStrings(data[field], [section, entity.slug, field])) {
          const [template] = value.match(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/) ?? [];
          if (template === undefined) continue;
          out.push(
            entity.file.diagnostic(
              path,
              `${template} is not replaced in the ${field} of ${KIND[section]} "${entity.slug}": it would reach the ${section === 'models' ? 'source' : 'destination'} as written`,
              '${ENV} templates are read only in the settings of sources, destinations, the store, webhooks and alert channels: write the value itself here',
            ),
          );
        }
      }
    }
  }

  for (const section of ['sources', 'destinations'] as const) {
    for (const connection of catalog[section].values()) {
      const { type: _type, ...settings } = asRecord(connection.data) ?? {};
      for (const { path, value } of settingStrings(settings)) {
        out.push(...checkTemplates(connection.file, [section, connection.slug, ...path], value, `${KIND[section]} "${connection.slug}"`, env));
      }
    }
  }
  out.push(...checkConnectors(catalog, registry, Object.fromEntries(Object.entries(env).filter(([name]) => readable(name)))));
  return out;

  function checkAfterSchedule(from: Declaration, section: 'syncs' | 'sequences', schedule: unknown): void {
    const data = asRecord(schedule);
    if (data?.type !== 'after') return;
    const path = [section, from.slug, 'schedule'];
    reference(from, [...path, 'sync'], data.sync, 'syncs');
    reference(from, [...path, 'sequence'], data.sequence, 'sequences');
  }

  function checkMembers(sequence: Declaration, members: unknown[]): Diagnostic[] {
    const found: Diagnostic[] = [];
    const base: PathSegment[] = ['sequences', sequence.slug, 'members'];
    const parsed = members.map((member, index) => {
      const data = asRecord(member);
      const sync = typeof member === 'string' ? asString(member) : asString(data?.sync);
      const key = asString(data?.key) ?? sync;
      const hasAfter = Array.isArray(data?.after);
      const after = hasAfter ? (data?.after as unknown[]) : [];
      return { index, sync, key, explicitKey: asString(data?.key) !== null, after, hasAfter, syncPath: typeof member === 'string' ? [...base, index] : [...base, index, 'sync'] };
    });
    const keys = new Map<string, number>();
    const syncs = new Map<string, number>();
    for (const member of parsed) {
      if (member.sync !== null) {
        reference(sequence, member.syncPath, member.sync, 'syncs');
        const first = syncs.get(member.sync);
        if (first !== undefined) {
          found.push(
            sequence.file.diagnostic(
              member.syncPath,
              `sync "${member.sync}" appears twice in sequence "${sequence.slug}" (members[${first}] and members[${member.index}])`,
              'a sync runs at most once per sequence; remove one of them',
            ),
          );
          continue;
        }
        syncs.set(member.sync, member.index);
      }
      if (member.key !== null) {
        const first = keys.get(member.key);
        if (first !== undefined) {
          found.push(
            sequence.file.diagnostic(
              member.explicitKey ? [...base, member.index, 'key'] : member.syncPath,
              `member key "${member.key}" is used twice in sequence "${sequence.slug}" (members[${first}] and members[${member.index}])`,
              'give each member a distinct key',
            ),
          );
        } else {
          keys.set(member.key, member.index);
        }
      }
    }
    const known = [...keys.keys()];
    for (const member of parsed) {
      member.after.forEach((entry, i) => {
        const key = asString(entry);
        if (key === null || keys.has(key)) return;
        found.push(
          sequence.file.diagnostic(
            [...base, member.index, 'after', i],
            `unknown member "${key}" in after${didYouMean(key, known)}`,
            `after lists keys of members of sequence "${sequence.slug}": ${listNames(known)}`,
          ),
        );
      });
    }
    // Cycles among dependencies, each shown once from its earliest member. A member without
    // `after` waits for the member before it (core's memberDependencies), so that edge counts too.
    const dependsOn = (key: string): string[] => {
      const member = parsed[keys.get(key) ?? -1];
      if (!member) return [];
      if (!member.hasAfter) {
        const previous = parsed[member.index - 1]?.key;
        return previous && keys.has(previous) ? [previous] : [];
      }
      return member.after.filter((k): k is string => typeof k === 'string' && keys.has(k));
    };
    for (const cycle of findCycles(known, dependsOn)) {
      const start = keys.get(cycle[0] as string) ?? 0;
      // The edges no `after` entry states: a member without `after` waiting for the one listed before it.
      const unstated = cycle
        .slice(0, -1)
        .flatMap((key, i) => (parsed[keys.get(key) ?? -1]?.hasAfter === false ? [{ key, waitsFor: cycle[i + 1] as string }] : []));
      const why =
        unstated.length === 0
          ? ''
          : ` (a member without after waits for the member listed before it: ${unstated.map((e) => `${e.key} waits for ${e.waitsFor}`).join(', ')})`;
      const orGive = unstated.length === 0 ? '' : `, or give ${unstated.map((e) => e.key).join(' and ')} an after of its own (after: [] starts a member at once)`;
      found.push(
        sequence.file.diagnostic(
          [...base, start, 'after'],
          `sequence "${sequence.slug}" has a cycle: ${cycle.join(' -> ')}${why}`,
          `members in a cycle would wait for each other forever; remove one of these after entries${orGive}`,
        ),
      );
    }
    return found;
  }
}

/**
 * `${VAR}` templates in `value` whose variable `env` does not set, or sets empty when that leaves the
 * whole setting empty (a run would refuse it; an empty password inside a URL is fine). `example`:
 * the value the hint for an empty one shows (default: `...`).
 */
export function checkTemplates(file: WorkspaceFile, path: PathSegment[], value: string, where: string, env: Env, example = '...'): Diagnostic[] {
  const missing = [...new Set(templateNames(value))].filter((name) => env[name] === undefined);
  return [
    ...unsupportedTemplates(value).map((template) => file.diagnostic(path, ...unsupportedTemplateMessage(template, where))),
    ...missing.map((name) =>
      file.diagnostic(path, `environment variable ${name} is not set (${where} uses \${${name}})`, `export ${name}=... before running Lockstep`),
    ),
    ...blankTemplateNames(value, env).map((name) =>
      file.diagnostic(path, `environment variable ${name} is empty (${where} uses \${${name}})`, `export ${name}=${example} before running Lockstep`),
    ),
  ];
}

/**
 * `${...}` in `value` that is not a `${NAME}` template. Runs would keep it as written, so a shell-style
 * default (`${URL:-postgres://localhost}`) would reach the connector as literal text.
 */
function unsupportedTemplates(value: string): string[] {
  return [...new Set([...value.matchAll(/\$\{[^}]*\}?/g)].map((m) => m[0]).filter((t) => !/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(t)))];
}

function unsupportedTemplateMessage(template: string, where: string): [string, string] {
  const shell = /^\$\{([A-Za-z_][A-Za-z0-9_]*):?[-=?+]/.exec(template);
  if (shell) {
    const name = shell[1] as string;
    return [
      `${template} is not supported (${where}): templates are \${NAME} only, without defaults or other shell operators`,
      `write \${${name}} and export ${name} before running Lockstep (set the default in the environment)`,
    ];
  }
  return [`${template} is not a valid template (${where})`, 'write ${NAME}: a letter or "_" then letters, digits or "_", e.g. ${WAREHOUSE_URL}'];
}

interface TriggerEdge {
  to: string;
  /** `after`: the target's schedule names the source; `member`: a sequence runs its member sync. */
  via: 'after' | 'member';
}

/**
 * A finished run triggers what is scheduled `after` it, and a sequence runs its member syncs; a loop
 * in that graph would trigger runs forever.
 */
function checkTriggerLoops(catalog: Catalog): Diagnostic[] {
  const id = (section: 'syncs' | 'sequences', slug: string) => `${section}:${slug}`;
  const edges = new Map<string, TriggerEdge[]>();
  const nodes: string[] = [];
  const addEdge = (from: string, edge: TriggerEdge) => edges.set(from, [...(edges.get(from) ?? []), edge]);
  for (const section of ['syncs', 'sequences'] as const) {
    for (const declaration of catalog[section].values()) {
      const node = id(section, declaration.slug);
      nodes.push(node);
      const data = asRecord(declaration.data);
      const schedule = asRecord(data?.schedule);
      if (schedule?.type === 'after') {
        const sync = asString(schedule.sync);
        const sequence = asString(schedule.sequence);
        if (sync !== null && catalog.syncs.has(sync)) addEdge(id('syncs', sync), { to: node, via: 'after' });
        if (sequence !== null && catalog.sequences.has(sequence)) addEdge(id('sequences', sequence), { to: node, via: 'after' });
      }
      if (section === 'sequences' && Array.isArray(data?.members)) {
        for (const member of data.members) {
          const sync = typeof member === 'string' ? member : asString(asRecord(member)?.sync);
          if (sync !== null && catalog.syncs.has(sync)) addEdge(node, { to: id('syncs', sync), via: 'member' });
        }
      }
    }
  }
  const label = (node: string) => {
    const [section, slug] = node.split(/:(.*)/s) as [string, string];
    return `${section === 'syncs' ? 'sync' : 'sequence'} "${slug}"`;
  };
  const out: Diagnostic[] = [];
  for (const cycle of findCycles(nodes, (n) => (edges.get(n) ?? []).map((e) => e.to))) {
    // Point at the schedule of the first entity the loop reaches through an `after` schedule.
    let at = cycle[1] as string;
    for (let i = 0; i + 1 < cycle.length; i++) {
      const edge = (edges.get(cycle[i] as string) ?? []).find((e) => e.to === cycle[i + 1] && e.via === 'after');
      if (edge) {
        at = edge.to;
        break;
      }
    }
    const [section, slug] = at.split(/:(.*)/s) as ['syncs' | 'sequences', string];
    const declaration = catalog[section].get(slug);
    if (!declaration) continue;
    const throughMembers = cycle.some((n, i) => i + 1 < cycle.length && (edges.get(n) ?? []).some((e) => e.to === cycle[i + 1] && e.via === 'member'));
    out.push(
      declaration.file.diagnostic(
        [section, slug, 'schedule'],
        `after schedules form a loop: ${cycle.map(label).join(' -> ')}`,
        `each run would trigger the next forever${throughMembers ? ' (a sequence runs its member syncs)' : ''}; change one of these schedules, e.g. to { type: manual }`,
      ),
    );
  }
  return out;
}

/** Cycles in a directed graph, each once, as `[a, b, ..., a]`, starting where the search met it first. */
export function findCycles(nodes: readonly string[], next: (node: string) => string[]): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const seen = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const target of next(node)) {
      const s = state.get(target);
      if (s === 'open') {
        const cycle = stack.slice(stack.indexOf(target));
        const id = [...cycle].sort().join('\u0000');
        if (!seen.has(id)) {
          seen.add(id);
          cycles.push([...cycle, target]);
        }
      } else if (s === undefined) {
        visit(target);
      }
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of nodes) if (!state.has(node)) visit(node);
  return cycles;
}

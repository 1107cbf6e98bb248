/**
 * The checks a store makes before applying a workspace definition: slugs unique per kind and
 * every reference inside the definition resolving to an entity of the same definition. (The
 * workspace loader validates more, with file positions; a store must not trust its caller.)
 */
import { NO_ALERTS } from '../core/alerts.js';
import type { Diagnostic } from '../core/errors.js';
import type { EntityKind, EntitySection, Schedule, WorkspaceDefinition } from '../core/workspace.js';

export function checkWorkspaceReferences(def: WorkspaceDefinition): Diagnostic[] {
  const problems: Diagnostic[] = [];
  const slugs = (section: EntitySection): Set<string> => {
    const seen = new Set<string>();
    def[section].forEach((entity, index) => {
      if (seen.has(entity.slug)) {
        problems.push({
          path: `${section}[${index}].slug`,
          message: `${section} declares "${entity.slug}" twice`,
          hint: 'give each one its own slug',
        });
      }
      seen.add(entity.slug);
    });
    return seen;
  };
  const sources = slugs('sources');
  const destinations = slugs('destinations');
  const models = slugs('models');
  const syncs = slugs('syncs');
  const sequences = slugs('sequences');

  const expect = (known: Set<string>, kind: string, value: string, path: string) => {
    if (known.has(value)) return;
    const names = [...known].sort();
    problems.push({
      path,
      message: `unknown ${kind} "${value}"`,
      hint: names.length > 0 ? `declared ${kind}s: ${names.join(', ')}` : `declare the ${kind} first`,
    });
  };

  for (const model of def.models) expect(sources, 'source', model.source, `models.${model.slug}.source`);
  for (const sync of def.syncs) {
    expect(models, 'model', sync.model, `syncs.${sync.slug}.model`);
    expect(destinations, 'destination', sync.destination, `syncs.${sync.slug}.destination`);
    if (sync.schedule.type === 'after') {
      if (sync.schedule.sync !== null) expect(syncs, 'sync', sync.schedule.sync, `syncs.${sync.slug}.schedule.sync`);
      if (sync.schedule.sequence !== null) {
        expect(sequences, 'sequence', sync.schedule.sequence, `syncs.${sync.slug}.schedule.sequence`);
      }
    }
  }
  for (const sequence of def.sequences) {
    const at = `sequences.${sequence.slug}`;
    const keys = new Set<string>();
    sequence.members.forEach((member, index) => {
      if (keys.has(member.key)) {
        problems.push({ path: `${at}.members[${index}].key`, message: `member key "${member.key}" is used twice` });
      }
      keys.add(member.key);
      expect(syncs, 'sync', member.sync, `${at}.members[${index}].sync`);
    });
    sequence.members.forEach((member, index) => {
      for (const key of member.after ?? []) expect(keys, 'member', key, `${at}.members[${index}].after`);
    });
    if (sequence.schedule.type === 'after') {
      if (sequence.schedule.sync !== null) expect(syncs, 'sync', sequence.schedule.sync, `${at}.schedule.sync`);
      if (sequence.schedule.sequence !== null) {
        expect(sequences, 'sequence', sequence.schedule.sequence, `${at}.schedule.sequence`);
      }
    }
  }
  const alerts = def.alerts ?? NO_ALERTS;
  const channels = new Set<string>();
  alerts.channels.forEach((channel, index) => {
    if (channels.has(channel.name)) problems.push({ path: `alerts.channels[${index}]`, message: `alert channel "${channel.name}" is declared twice` });
    channels.add(channel.name);
  });
  const rules = new Set<string>();
  alerts.rules.forEach((rule, index) => {
    const at = `alerts.rules[${index}]`;
    if (rules.has(rule.name)) problems.push({ path: `${at}.name`, message: `alert rule "${rule.name}" is declared twice` });
    rules.add(rule.name);
    for (const name of rule.channels) expect(channels, 'alert channel', name, `${at}.channels`);
    for (const slug of rule.syncs) expect(syncs, 'sync', slug, `${at}.syncs`);
    for (const slug of rule.sequences) expect(sequences, 'sequence', slug, `${at}.sequences`);
  });
  return problems;
}

/** The entities of `def` that refer to the `kind` entity `slug`, e.g. `sequence "crm"`; empty when none does. */
export function referrersOf(def: WorkspaceDefinition, kind: EntityKind, slug: string): string[] {
  const found: string[] = [];
  const afterNames = (schedule: Schedule) =>
    schedule.type === 'after' && ((kind === 'sync' && schedule.sync === slug) || (kind === 'sequence' && schedule.sequence === slug));
  if (kind === 'source') for (const m of def.models) if (m.source === slug) found.push(`model "${m.slug}"`);
  if (kind === 'model') for (const s of def.syncs) if (s.model === slug) found.push(`sync "${s.slug}"`);
  if (kind === 'destination') for (const s of def.syncs) if (s.destination === slug) found.push(`sync "${s.slug}"`);
  if (kind === 'sync' || kind === 'sequence') {
    for (const rule of def.alerts?.rules ?? []) {
      if ((kind === 'sync' ? rule.syncs : rule.sequences).includes(slug)) found.push(`alert rule "${rule.name}"`);
    }
    for (const s of def.syncs) if (afterNames(s.schedule) && !(kind === 'sync' && s.slug === slug)) found.push(`sync "${s.slug}"`);
    for (const q of def.sequences) {
      if (kind === 'sync' && q.members.some((m) => m.sync === slug)) found.push(`sequence "${q.slug}"`);
      else if (afterNames(q.schedule) && !(kind === 'sequence' && q.slug === slug)) found.push(`sequence "${q.slug}"`);
    }
  }
  return found;
}

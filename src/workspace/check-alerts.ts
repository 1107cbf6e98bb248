/**
 * Checks of the `alerts` sections that span files and entities: channel names declared once, rules
 * naming declared channels, syncs and sequences (with did-you-mean), rule names unique, and `${VAR}`
 * templates in channel settings whose variable is not set, URLs as their variables give them, and a
 * PagerDuty routing key (as written, or as its variables give it) that is not an Integration Key's 32
 * characters. Like check-workspace.ts, it reads the plain YAML data defensively.
 */
import { PAGERDUTY_EVENTS_URL, PAGERDUTY_ROUTING_KEY_LENGTH } from '../core/alerts.js';
import type { Diagnostic } from '../core/errors.js';
import { splitHint } from '../core/hints.js';
import { urlProblems } from '../core/url-setting.js';
import type { Catalog } from './check-workspace.js';
import { checkTemplates } from './check-workspace.js';
import { givenBy, resolvedText } from './resolved-settings.js';
import { didYouMean, listNames } from './suggestions.js';
import type { PathSegment, WorkspaceFile } from './workspace-file.js';

/** One file's `alerts` section, not yet validated. */
export interface AlertsDeclaration {
  file: WorkspaceFile;
  data: unknown;
}

type Env = Record<string, string | undefined>;

/** Channel settings that may hold `${VAR}` templates (besides each header and each recipient in `to`). */
const TEMPLATED_FIELDS = ['url', 'secret', 'routingKey', 'smtp', 'from'] as const;

/** Each kind's URL settings, with the schemes they take; the schema checks them as written, this once their variables are filled in. */
const URL_FIELDS: Record<string, { field: string; protocols: string[]; example: string }> = {
  slack: { field: 'url', protocols: ['https:', 'http:'], example: 'https://hooks.slack.com/services/...' },
  webhook: { field: 'url', protocols: ['https:', 'http:'], example: 'https://alerts.example.com/lockstep' },
  email: { field: 'smtp', protocols: ['smtp:', 'smtps:'], example: 'smtp://user:password@mail.example.com:587' },
  pagerduty: { field: 'url', protocols: ['https:', 'http:'], example: PAGERDUTY_EVENTS_URL },
};

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/**
 * @param readable the variables whose values may be read to check what they give (default: all); a
 *   body sent to the API reads only those its allow-list lists, so no answer tells a caller anything
 *   of another variable's value
 */
export function checkAlerts(declarations: readonly AlertsDeclaration[], catalog: Catalog, env: Env, readable: (name: string) => boolean = () => true): Diagnostic[] {
  const readableEnv: Env = Object.fromEntries(Object.entries(env).filter(([name]) => readable(name)));
  const out: Diagnostic[] = [];
  const channels = new Map<string, WorkspaceFile>();
  for (const { file, data } of declarations) {
    for (const [name, channel] of Object.entries(asRecord(asRecord(data)?.channels) ?? {})) {
      const first = channels.get(name);
      if (first) {
        out.push(
          file.diagnostic(
            ['alerts', 'channels', name],
            `alert channel "${name}" is declared twice: ${first.file}:${first.locate(['alerts', 'channels', name], 'key').line} and ${file.file}:${file.locate(['alerts', 'channels', name], 'key').line}`,
            'channel names are unique across all workspace files; rename or remove one',
            'key',
          ),
        );
        continue;
      }
      channels.set(name, file);
      const settings = asRecord(channel);
      const where = `alert channel "${name}"`;
      for (const field of TEMPLATED_FIELDS) {
        const value = settings?.[field];
        if (typeof value === 'string') out.push(...checkTemplates(file, ['alerts', 'channels', name, field], value, where, env));
      }
      for (const [header, value] of Object.entries(asRecord(settings?.headers) ?? {})) {
        if (typeof value === 'string') out.push(...checkTemplates(file, ['alerts', 'channels', name, 'headers', header], value, where, env));
      }
      // An email channel's recipients: one address, or a list of them.
      const to = settings?.to;
      if (typeof to === 'string') out.push(...checkTemplates(file, ['alerts', 'channels', name, 'to'], to, where, env));
      if (Array.isArray(to)) {
        to.forEach((value, index) => {
          if (typeof value === 'string') out.push(...checkTemplates(file, ['alerts', 'channels', name, 'to', index], value, where, env));
        });
      }
      const urlField = typeof settings?.type === 'string' ? URL_FIELDS[settings.type] : undefined;
      const url = urlField ? settings?.[urlField.field] : undefined;
      if (urlField && typeof url === 'string') {
        out.push(...checkResolvedUrl(file, ['alerts', 'channels', name, urlField.field], url, urlField, where, readableEnv));
      }
      if (settings?.type === 'pagerduty' && typeof settings.routingKey === 'string') {
        out.push(...checkRoutingKey(file, ['alerts', 'channels', name, 'routingKey'], settings.routingKey, where, readableEnv));
      }
    }
  }

  const channelNames = [...channels.keys()];
  const ruleNames = new Map<string, string>();
  let position = 0;
  for (const { file, data } of declarations) {
    const rules = asRecord(data)?.rules;
    if (!Array.isArray(rules)) continue;
    rules.forEach((rule, index) => {
      position++;
      const base: PathSegment[] = ['alerts', 'rules', index];
      const settings = asRecord(rule);
      const name = typeof settings?.name === 'string' ? settings.name : `rule-${position}`;
      const at = `${file.file}:${file.locate(base).line}`;
      const first = ruleNames.get(name);
      if (first) {
        out.push(
          file.diagnostic(
            typeof settings?.name === 'string' ? [...base, 'name'] : base,
            `alert rule "${name}" is declared twice (${first} and ${at})`,
            'give each rule its own name',
          ),
        );
      } else ruleNames.set(name, at);
      const list = (field: string) => (Array.isArray(settings?.[field]) ? (settings[field] as unknown[]) : []);
      list('channels').forEach((value, i) => {
        if (typeof value !== 'string' || channels.has(value)) return;
        out.push(
          file.diagnostic(
            [...base, 'channels', i],
            `unknown alert channel "${value}"${didYouMean(value, channelNames)}`,
            channelNames.length > 0
              ? `declare it under alerts.channels, or use one of: ${listNames(channelNames)}`
              : 'declare it under alerts.channels, e.g. ops-slack: { type: slack, url: "${SLACK_WEBHOOK}" }',
          ),
        );
      });
      for (const section of ['syncs', 'sequences'] as const) {
        const kind = section === 'syncs' ? 'sync' : 'sequence';
        const declared = [...catalog[section].keys()];
        list(section).forEach((value, i) => {
          if (typeof value !== 'string' || catalog[section].has(value)) return;
          out.push(
            file.diagnostic(
              [...base, section, i],
              `unknown ${kind} "${value}"${didYouMean(value, declared)}`,
              declared.length > 0 ? `alert rules watch declared ${section}: ${listNames(declared)}` : `declare ${kind} "${value}" under ${section}:`,
            ),
          );
        });
      }
    });
  }
  return out;
}

/**
 * PagerDuty takes only its 32-character Integration Key as `routing_key` and refuses any other with a
 * 400, which would show only when an alert fires. The key is checked as the variables it reads give
 * it (when they are all set; checkTemplates reports the others), and never shown.
 */
function checkRoutingKey(file: WorkspaceFile, path: PathSegment[], value: string, where: string, env: Env): Diagnostic[] {
  const resolved = resolvedText(value, env);
  if (!resolved) return [];
  const { text: key, names } = resolved;
  if (key.length === PAGERDUTY_ROUTING_KEY_LENGTH || key.trim() === '') return [];
  const fix = names.length === 1 && value === `\${${names[0]}}` ? `set ${names[0]} to` : names.length > 0 ? 'make it' : 'use';
  const spaces = key.trim().length === PAGERDUTY_ROUTING_KEY_LENGTH ? ' without the spaces or line break around it' : '';
  return [
    file.diagnostic(
      path,
      `routingKey of ${where} is ${key.length} characters long${givenBy(names)}; a PagerDuty Integration Key has ${PAGERDUTY_ROUTING_KEY_LENGTH}`,
      `${fix} the Integration Key of an Events API v2 integration of the PagerDuty service (Service → Integrations)${spaces}`,
    ),
  ];
}

/**
 * A URL setting that holds `${VAR}` templates, checked as its variables give it (the schema checked it
 * as written): a Slack URL exported without its https:// would otherwise fail every notice.
 */
function checkResolvedUrl(
  file: WorkspaceFile,
  path: PathSegment[],
  value: string,
  rules: { field: string; protocols: string[]; example: string },
  where: string,
  env: Env,
): Diagnostic[] {
  const resolved = resolvedText(value, env);
  if (!resolved || resolved.names.length === 0 || resolved.text.trim() === '') return [];
  return urlProblems(resolved.text, rules.protocols, rules.example, `${rules.field} of ${where}`).map((problem) => {
    const { message, hint } = splitHint(problem);
    return file.diagnostic(path, `${message}${givenBy(resolved.names)}`, `check ${resolved.names.join(' and ')}: ${hint ?? `e.g. ${rules.example}`}`);
  });
}


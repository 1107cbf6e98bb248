/**
 * Validates one alert channel or rule sent to the API (the shape of an entry of `alerts.channels`
 * plus its `name`, or of an item of `alerts.rules`) with the same rules as `lockstep validate`: the
 * workspace file schema for its shape, and the alert checks against the stored workspace (known
 * channels, syncs and sequences with did-you-mean, `${VAR}` templates that are set). Problems come
 * back keyed by field path inside the body (`channels[0]`).
 */
import type { AlertChannelDef, AlertRuleDef, AlertsDefinition } from '../core/alerts.js';
import { envAllowListOf, type TemplateEnv } from '../core/connections.js';
import type { Diagnostic } from '../core/errors.js';
import type { WorkspaceState } from '../core/workspace.js';
import { checkAlerts } from './check-alerts.js';
import { issueDiagnostics, workspaceErrorMap } from './issue-diagnostics.js';
import { catalogOf, describe, relativePath, storedDocument } from './validate-entity.js';
import { WorkspaceFile } from './workspace-file.js';
import { SLUG_PATTERN, SLUG_RULE, buildAlerts, suggestSlug, workspaceFileSchema } from './workspace-schema.js';

type Env = TemplateEnv;

export type AlertValidation<T> = { ok: true; definition: T } | { ok: false; details: Record<string, string> };

const BODY = 'request body';
const STORED = 'stored workspace';

/** Fields the API returns with a channel or rule; a body sent back as it was read may carry them. */
const READ_ONLY_FIELDS = ['origin', 'warning', 'target', 'workspaceDefault'];

/**
 * @param name the name from the URL (PUT), or null when the body names it (POST)
 * @param current the stored workspace; a channel or rule of the same name in it is replaced
 */
export function validateAlertChannel(body: unknown, name: string | null, current: WorkspaceState, env: Env): AlertValidation<AlertChannelDef> {
  const start = begin(body, name, 'alert channel');
  if (!start.ok) return start;
  const { fields, details, entryName } = start.definition;
  for (const [k, v] of Object.entries(fields)) if (v === null) delete fields[k];
  const others = current.alerts.channels.filter((c) => c.name !== entryName);
  const result = check(
    { channels: { [entryName]: fields } },
    `alerts.channels.${entryName}`,
    { ...current.alerts, channels: others },
    current,
    env,
    details,
  );
  if (!result.ok) return result;
  return { ok: true, definition: result.definition.channels[0] as AlertChannelDef };
}

export function validateAlertRule(body: unknown, name: string | null, current: WorkspaceState, env: Env): AlertValidation<AlertRuleDef> {
  const start = begin(body, name, 'alert rule');
  if (!start.ok) return start;
  const { fields, details, entryName } = start.definition;
  fromStoredRule(fields);
  const others = current.alerts.rules.filter((r) => r.name !== entryName);
  const result = check({ rules: [{ name: entryName, ...fields }] }, 'alerts.rules[0]', { ...current.alerts, rules: others }, current, env, details);
  if (!result.ok) return result;
  return { ok: true, definition: result.definition.rules[0] as AlertRuleDef };
}

function begin(
  body: unknown,
  name: string | null,
  what: string,
): AlertValidation<{ fields: Record<string, unknown>; details: Record<string, string>; entryName: string }> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, details: { body: `must be a JSON object with the ${what}'s fields, got ${describe(body)}` } };
  }
  const details: Record<string, string> = {};
  const { name: bodyName, ...fields } = body as Record<string, unknown>;
  for (const field of READ_ONLY_FIELDS) delete fields[field];
  let entryName: string;
  if (name === null) {
    if (bodyName === undefined) details.name = `missing name — add "name": "<${SLUG_RULE}>"`;
    else if (typeof bodyName !== 'string' || !SLUG_PATTERN.test(bodyName)) {
      details.name = `invalid name ${describe(bodyName)} — use ${SLUG_RULE}, e.g. "${suggestSlug(bodyName)}"`;
    }
    entryName = typeof bodyName === 'string' && SLUG_PATTERN.test(bodyName) ? bodyName : 'entry';
  } else {
    if (bodyName !== undefined && bodyName !== name) details.name = `name ${describe(bodyName)} differs from "${name}" in the path — names cannot be changed; create a new one instead`;
    entryName = name;
  }
  return { ok: true, definition: { fields, details, entryName } };
}

/**
 * A rule as the API returned it, back in the file's shape: empty `syncs`/`sequences`, a null
 * `slowerThanMinutes` and a `rejectedPercent` of 0 that `on` does not use mean "not given".
 */
function fromStoredRule(fields: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(fields)) if (v === null) delete fields[k];
  for (const k of ['syncs', 'sequences']) if (Array.isArray(fields[k]) && fields[k].length === 0) delete fields[k];
  const on = Array.isArray(fields.on) ? (fields.on as unknown[]) : null;
  if (fields.rejectedPercent === 0 && on !== null && !on.includes('rejected_rows')) delete fields.rejectedPercent;
}

/** Parses `section` (one channel or one rule) as a workspace file's `alerts`, and checks it against the stored workspace. */
function check(
  section: Record<string, unknown>,
  prefix: string,
  others: AlertsDefinition,
  current: WorkspaceState,
  env: Env,
  details: Record<string, string>,
): AlertValidation<AlertsDefinition> {
  const document = { alerts: section };
  const file = WorkspaceFile.parse(BODY, JSON.stringify(document));
  const parsed = workspaceFileSchema.safeParse(document, { error: workspaceErrorMap, reportInput: true });
  const diagnostics: Diagnostic[] = parsed.success ? [] : parsed.error.issues.flatMap((issue) => issueDiagnostics(issue, file, document));

  const storedAlerts = {
    channels: Object.fromEntries(others.channels.map(({ name, origin: _o, ...settings }) => [name, settings])),
    rules: others.rules.map(({ origin: _o, ...rule }) => rule),
  };
  const storedFile = WorkspaceFile.parse(STORED, JSON.stringify({ alerts: storedAlerts }));
  const catalog = catalogOf(storedDocument(current, '', null), storedFile);
  const allowList = envAllowListOf(env);
  for (const d of checkAlerts([{ file: storedFile, data: storedAlerts }, { file, data: section }], catalog, env, (name) => allowList.allows(name))) {
    if (d.file === BODY) diagnostics.push(d);
  }

  for (const d of diagnostics) {
    const field = relativePath(d.path, prefix) || 'body';
    const text = d.hint ? `${d.message} — ${d.hint}` : d.message;
    details[field] = details[field] ? `${details[field]}; ${text}` : text;
  }
  if (Object.keys(details).length > 0 || !parsed.success) {
    if (Object.keys(details).length === 0) details.body = 'is not valid';
    return { ok: false, details };
  }
  return { ok: true, definition: buildAlerts([parsed.data.alerts ?? undefined]) };
}

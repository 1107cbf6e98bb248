/**
 * Turns zod's issues into located diagnostics that name the offending value and say how to fix it.
 * Schemas with their own wording (see workspace-schema.ts) pass message and hint through `hinted`.
 */
import type { z } from 'zod';
import type { Diagnostic } from '../core/errors.js';
import type { PathSegment, WorkspaceFile } from './workspace-file.js';
import { closeMatches, didYouMean, listNames, show as showValue, splitHint } from './suggestions.js';

/** Prefix of the message an error map gives unknown-key issues, followed by the allowed keys. */
export const ALLOWED_KEYS = 'allowed keys:';

/**
 * The error map to parse with: it records the keys a strict mapping allows, which the finished
 * issue no longer carries.
 */
export const workspaceErrorMap: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === 'unrecognized_keys') {
    const shape = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
    return `${ALLOWED_KEYS}${Object.keys(shape ?? {}).join(',')}`;
  }
  return undefined;
};

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/** Field name for messages: the last key of the path, singular for a list item (`day` for `days[1]`). */
function fieldName(path: readonly PathSegment[]): string {
  for (let i = path.length - 1; i >= 0; i--) {
    const segment = path[i];
    if (typeof segment === 'string') return i < path.length - 1 && /[^s]s$/.test(segment) ? segment.slice(0, -1) : segment;
  }
  return 'value';
}

/** Value at `path` in plain data, and whether the last key is present at all. */
function lookup(data: unknown, path: readonly PathSegment[]): { present: boolean; value: unknown } {
  let value: unknown = data;
  for (const segment of path) {
    if (value === null || typeof value !== 'object' || !(String(segment) in value)) return { present: false, value: undefined };
    value = (value as Record<string, unknown>)[String(segment)];
  }
  return { present: true, value };
}

/**
 * The key beside a missing one at `path` that is a slip of its name (`destinaton` for a missing
 * `destination`), or null: the missing key is then the misspelt one, and the message says so.
 */
function misspelt(data: unknown, path: readonly PathSegment[], schema: z.ZodType | undefined): { key: string; strict: boolean } | null {
  const name = path[path.length - 1];
  const mapping = schema ? mappingAt(schema, path.slice(0, -1)) : null;
  if (typeof name !== 'string' || mapping === null) return null;
  const { present, value: parent } = lookup(data, path.slice(0, -1));
  if (!present || parent === null || typeof parent !== 'object' || Array.isArray(parent)) return null;
  // A key the mapping takes is not a slip, however close (`mode` beside a missing `model`).
  const [near] = closeMatches(
    name,
    Object.keys(parent).filter((key) => !mapping.keys.has(key)),
    1,
  );
  return near === undefined ? null : { key: near, strict: mapping.strict };
}

/** The zod definition fields keysAt walks through. */
interface SchemaDef {
  type: string;
  shape?: Record<string, z.ZodType>;
  valueType?: z.ZodType;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  catchall?: z.ZodType;
}

const defOf = (schema: z.ZodType | undefined): SchemaDef | undefined => (schema as { _zod?: { def?: SchemaDef } } | undefined)?._zod?.def;

/**
 * The keys the mapping at `path` in `schema` declares, and whether it refuses any other (a strict
 * object); null when that is not a mapping with known keys.
 */
function mappingAt(schema: z.ZodType, path: readonly PathSegment[]): { keys: Set<string>; strict: boolean } | null {
  const unwrap = (node: z.ZodType | undefined): SchemaDef | undefined => {
    let def = defOf(node);
    while (def && (def.innerType !== undefined || def.type === 'pipe')) def = defOf(def.type === 'pipe' ? def.in : def.innerType);
    return def;
  };
  let def = unwrap(schema);
  for (const segment of path) {
    if (def?.type === 'object') def = unwrap(def.shape?.[String(segment)]);
    else if (def?.type === 'record') def = unwrap(def.valueType);
    else if (def?.type === 'array') def = unwrap(def.element);
    else return null;
  }
  if (def?.type !== 'object' || !def.shape) return null;
  return { keys: new Set(Object.keys(def.shape)), strict: defOf(def.catchall)?.type === 'never' };
}

export interface IssueOptions {
  /** The value is a secret (a kind's `secrets` setting): messages say what kind of value it is, never the value. */
  secret?: boolean;
  /**
   * The schema the data was parsed with: a missing key beside a key it does not declare and that
   * is close to the missing one's name is reported as that key misspelt.
   */
  schema?: z.ZodType;
}

export function issueDiagnostics(issue: z.core.$ZodIssue, file: WorkspaceFile, data: unknown, { secret = false, schema }: IssueOptions = {}): Diagnostic[] {
  const path = issue.path as PathSegment[];
  const field = fieldName(path);
  const { present, value } = lookup(data, path);
  const show = secret ? showKind : showValue;
  const custom = splitHint(issue.message);

  const discriminator = issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator';
  if (!present && path.length > 0 && !discriminator && (issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union')) {
    const expected = issue.code === 'invalid_value' ? `one of ${issue.values.map(String).join(', ')}` : issue.code === 'invalid_type' ? `<${EXPECTED[issue.expected] ?? issue.expected}>` : '...';
    let slip = misspelt(data, path, schema);
    // A key whose value the missing one could not take is another setting (an HTTP sync's `body` beside a missing `mode`).
    if (slip && issue.code === 'invalid_value' && !issue.values.includes(lookup(data, [...path.slice(0, -1), slip.key]).value as never)) slip = null;
    // A mapping that allows no other key reports the slip itself, as an unknown key with its did-you-mean.
    if (slip?.strict) return [];
    if (slip) return [file.diagnostic([...path.slice(0, -1), slip.key], `unknown key "${slip.key}" (did you mean "${field}"?)`, `rename it to ${field}`, 'key')];
    return [file.diagnostic(path, `missing ${field}`, `add ${field}: ${expected}`)];
  }

  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = issue.message.startsWith(ALLOWED_KEYS) ? issue.message.slice(ALLOWED_KEYS.length).split(',').filter((k) => k !== '') : [];
      return issue.keys.map((key) =>
        file.diagnostic([...path, key], `unknown key "${key}"${didYouMean(key, allowed)}`, allowed.length > 0 ? `allowed here: ${listNames(allowed, 12)}` : 'remove it', 'key'),
      );
    }
    case 'invalid_type': {
      const quoted = secret ? 'write it in quotes' : `write it in quotes: "${String(value)}"`;
      const hint = issue.expected === 'string' && (typeof value === 'number' || typeof value === 'boolean') ? quoted : hintForType(field, issue.expected);
      return [file.diagnostic(path, `${field} must be ${EXPECTED[issue.expected] ?? issue.expected}, got ${show(value)}`, hint)];
    }
    case 'invalid_value': {
      const allowed = issue.values.map(String);
      const suggestion = typeof value === 'string' ? didYouMean(value, allowed) : '';
      return [file.diagnostic(path, `unknown ${field} ${show(value)}${suggestion}`, `use one of: ${allowed.join(', ')}`)];
    }
    case 'invalid_union': {
      if (discriminator) {
        const options = ((issue as { options?: unknown[] }).options ?? []).map(String);
        const what = path.length >= 2 && path[path.length - 2] === 'schedule' ? 'schedule type' : field;
        if (value === undefined) return [file.diagnostic(path, `missing ${field}`, `add ${field}: one of ${options.join(', ')}`)];
        const suggestion = typeof value === 'string' ? didYouMean(value, options) : '';
        return [file.diagnostic(path, `unknown ${what} ${show(value)}${suggestion}`, `use one of: ${options.join(', ')}`)];
      }
      // When the value's type picks one alternative (a list, not a string), its own problems say more.
      const fitting = issue.errors.filter((branch) => !branch.every((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
      if (fitting.length === 1 && fitting[0] !== undefined) {
        return fitting[0].flatMap((inner) => issueDiagnostics({ ...inner, path: [...path, ...inner.path] } as z.core.$ZodIssue, file, data, { secret, schema }));
      }
      return [file.diagnostic(path, custom.hint ? custom.message : `${field} ${show(value)} is not valid`, custom.hint)];
    }
    case 'invalid_key': {
      // A record key (a slug) failed its own check; its message is the slug rule's.
      const inner = issue.issues[0];
      const { message, hint } = splitHint(inner?.message ?? issue.message);
      return [file.diagnostic(path, message, hint, 'key')];
    }
    case 'too_small':
    case 'too_big': {
      if (custom.hint) return [file.diagnostic(path, custom.message, custom.hint)];
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      if (issue.origin === 'string') return [file.diagnostic(path, `${field} is empty`, `write the ${field}`)];
      if (issue.origin === 'array') return [file.diagnostic(path, `${field} has too ${issue.code === 'too_small' ? 'few' : 'many'} items`, `list ${issue.code === 'too_small' ? 'at least' : 'at most'} ${String(bound)}`)];
      const range = rangeHint(path, issue);
      // An exclusive bound (`positive()`): the bound itself is refused, so "below the minimum 0" would not say why 0 is.
      const relation =
        issue.inclusive === false
          ? `must be ${issue.code === 'too_small' ? 'more' : 'less'} than`
          : `is ${issue.code === 'too_small' ? 'below the minimum' : 'above the maximum'}`;
      return [file.diagnostic(path, `${field} ${show(value)} ${relation} ${String(bound)}`, range)];
    }
    default:
      return [file.diagnostic(path, custom.message, custom.hint ?? `check ${field}`)];
  }
}

/** What kind of value a secret setting holds, without the value. */
function showKind(value: unknown): string {
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  return showValue(value);
}

function hintForType(field: string, expected: string): string {
  switch (field) {
    case 'schedule':
      return 'e.g. schedule: { type: cron, expression: "0 * * * *" } or schedule: { type: manual }';
    case 'members':
      return 'e.g. members: [accounts-to-crm, contacts-to-crm]';
    case 'mappings':
      return 'e.g. mappings: [ { from: email, to: email_address } ]';
    case 'after':
      return 'list member keys, e.g. after: [accounts]';
    case 'enabled':
      return 'write true or false';
    case 'timeoutMinutes':
    case 'deadlineMinutes':
      return `write minutes, e.g. ${field}: 30 (0.5 is 30 seconds), or leave it out for no limit`;
    case 'sources':
    case 'destinations':
    case 'models':
    case 'syncs':
    case 'sequences':
      return `declare each entry as <slug>: { ... } under ${field}:`;
    default:
      return `write ${EXPECTED[expected] ?? expected}`;
  }
}

function rangeHint(path: readonly PathSegment[], issue: { code: 'too_small' | 'too_big'; maximum?: unknown }): string {
  switch (fieldName(path)) {
    case 'batchSize':
      return 'use a whole number from 1 to 100000';
    case 'percent':
      return 'use a percentage from 0 to 100';
    case 'concurrency':
      // Each kind of concurrency has its own ceiling (a connection's, a sequence's): the one refused is the one to name.
      return issue.code === 'too_small' ? 'use a whole number of 1 or more' : `use a whole number up to ${String(issue.maximum)}`;
    case 'quantity':
      return 'use a whole number of 1 or more';
    case 'requestsPerSecond':
      return 'use a number above 0, e.g. 10 (0.5 starts one request every 2 s)';
    default:
      return issue.code === 'too_small' ? 'use a larger value' : 'use a smaller value';
  }
}

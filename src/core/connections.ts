import { ErrorCode, LockstepError } from './errors.js';

const TEMPLATE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Names of the `${VAR}` templates in a string, in order of appearance. */
export function templateNames(text: string): string[] {
  return [...text.matchAll(TEMPLATE)].map((m) => m[1] as string);
}

/**
 * Replaces `${VAR}` with the environment's value. Throws a validation error naming the variable
 * and where it is used when it is not set.
 */
export function interpolate(text: string, env: Record<string, string | undefined>, where: string): string {
  return text.replace(TEMPLATE, (_match, name: string) => {
    const value = env[name];
    if (value === undefined) {
      throw new LockstepError(
        ErrorCode.Validation,
        `${where} uses \${${name}}, but the environment variable ${name} is not set — export ${name}=... before running Lockstep`,
      );
    }
    return value;
  });
}

/** `interpolate` applied to every string inside `value` (objects and lists walked), for connection settings. */
export function interpolateDeep(value: unknown, env: Record<string, string | undefined>, where: string): unknown {
  if (typeof value === 'string') return interpolate(value, env, where);
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, env, where));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env, where)]));
  }
  return value;
}

/** Every string inside `value` (objects and lists walked), with its path, for template checks. */
export function settingStrings(value: unknown, path: Array<string | number> = []): Array<{ path: Array<string | number>; value: string }> {
  if (typeof value === 'string') return [{ path, value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => settingStrings(v, [...path, i]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => settingStrings(v, [...path, k]));
  return [];
}

/** Shown instead of a secret. */
export const REDACTED = '***';

const TEMPLATE_ONLY = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/** A secret text as shown: a bare `${VAR}` template as it is (it names a variable, no secret), anything else hidden. */
export function redactSecret(value: string): string {
  return TEMPLATE_ONLY.test(value) ? value : REDACTED;
}

/** Whether a value is only an `${ENV}` template. */
export function isTemplateOnly(value: string): boolean {
  return TEMPLATE_ONLY.test(value);
}

/** A secret as shown: a bare `${VAR}` template as it is (it names a variable), a URL with its password hidden, anything else hidden. */
export function redactValue(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redactValue(v)]));
  if (typeof value !== 'string') return value === undefined || value === null ? value : REDACTED;
  if (isTemplateOnly(value)) return value;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return redactUrl(value);
  return REDACTED;
}

/** The password of a connection URL (and `password=` parameters) replaced by `***`. */
export function redactUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^:@/?#]*):([^@/?#]*)@/i, `$1$2:${REDACTED}@`)
    .replace(/([?&](?:password|passwd|pwd|secret|token|sslpassword|access_token|api_key|apikey|key)=)[^&#]*/gi, `$1${REDACTED}`);
}

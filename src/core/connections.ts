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

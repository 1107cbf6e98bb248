import { isAbsolute, resolve } from 'node:path';
import { ErrorCode, LockstepError } from './errors.js';
import type { ConnectionDef, ResolvedConnection } from './workspace.js';

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

/** A connection ready to open: templates resolved from `env`, file paths made absolute against `baseDir`. */
export function resolveConnection(
  def: ConnectionDef,
  kind: 'source' | 'destination',
  baseDir: string,
  env: Record<string, string | undefined>,
): ResolvedConnection {
  const where = `${kind} "${def.slug}"`;
  const url = def.url === null ? null : interpolate(def.url, env, where);
  let path = def.path === null ? null : interpolate(def.path, env, where);
  if (path !== null && path !== ':memory:' && !isAbsolute(path)) path = resolve(baseDir, path);
  return { slug: def.slug, type: def.type, url, path };
}

/**
 * Settings as their `${VAR}` templates give them at validate time: the schema checks a setting as
 * written, and a templated one passes; these read it again once its variables are filled in, naming
 * the variables and never their values.
 */
import { templateNames } from '../core/connections.js';

type Env = Record<string, string | undefined>;

/** `value` with its `${VAR}` templates filled in from `env`; null when one is not set or not a template (checkTemplates reports those). */
export function resolvedText(value: string, env: Env): { text: string; names: string[] } | null {
  const names = [...new Set(templateNames(value))];
  if (names.some((n) => env[n] === undefined) || /\$\{/.test(value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, ''))) return null;
  return { text: value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, n: string) => env[n] ?? ''), names };
}

/** ` (as ${A} gives it)`, or nothing for a value written out. */
export function givenBy(names: readonly string[]): string {
  return names.length > 0 ? ` (as ${names.map((n) => `\${${n}}`).join(' and ')} ${names.length > 1 ? 'give' : 'gives'} it)` : '';
}

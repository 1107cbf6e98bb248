/**
 * `${ENV}` templates in what the API creates or changes: an entity written through the API reads only
 * the variables the server's allow-list (`LOCKSTEP_ENV_ALLOW`) lists, so whoever may call the API
 * cannot read the server's environment through a connection's path, a database name or an alert URL.
 * The check refuses such a body with a 422 naming the variable and the setting; the same rule holds
 * again when the entity's templates are resolved (core/connections.ts `interpolate`).
 */
import { envAllowListOf, notAllowedText, unlistedTemplates, type TemplateEnv } from '../core/connections.js';
import { fileForm } from '../workspace/index.js';
import { validationFailed } from './http-errors.js';

/**
 * Throws a 422 when `settings` read a variable the allow-list does not list; a setting unchanged from
 * `previous` (the stored entity's settings, null when new) is accepted as it is.
 * @param prefix put before each setting's path in the answer's details (e.g. `headers.` or ``)
 */
export function refuseUnlistedTemplates(settings: unknown, previous: unknown, env: TemplateEnv, prefix = ''): void {
  const unlisted = unlistedTemplates(settings, previous ?? null, envAllowListOf(env));
  const fields = Object.entries(unlisted);
  if (fields.length === 0) return;
  throw validationFailed(Object.fromEntries(fields.map(([path, name]) => [`${prefix}${path}` || 'body', notAllowedText(name)])));
}

/** Fields of a body that name, type or date what it creates: not settings. */
const NOT_SETTINGS: ReadonlySet<string> = new Set(['slug', 'name', 'type', 'id', 'createdAt', 'updatedAt', 'origin', 'warning']);

/**
 * refuseUnlistedTemplates on a body as it was sent, before it is validated: validation reads the
 * variables the templates name (to say one is not set, or set empty), and so would tell a caller
 * which of the variables it may not read the server has. A body in the stored shape (its settings
 * under `settings`) is read as a file writes it.
 * @param previous the stored entity's settings when the body keeps its type, else null
 */
export function refuseUnlistedBodyTemplates(body: unknown, previous: unknown, env: TemplateEnv): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
  const settings = Object.fromEntries(Object.entries(fileForm(body as Record<string, unknown>)).filter(([field]) => !NOT_SETTINGS.has(field)));
  refuseUnlistedTemplates(settings, previous, env);
}

import { ErrorCode, LockstepError } from './errors.js';
import type { EntityOrigin } from './workspace.js';

const TEMPLATE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Names of the `${VAR}` templates in a string, in order of appearance. */
export function templateNames(text: string): string[] {
  return [...text.matchAll(TEMPLATE)].map((m) => m[1] as string);
}

/**
 * The variables of `text`'s templates that are set but blank, when they leave `text` blank: a setting
 * such as a URL read whole from a variable exported empty. None when a variable is not set (that has
 * its own message) or when the resolved text is not blank.
 */
export function blankTemplateNames(text: string, env: Record<string, string | undefined>): string[] {
  const names = [...new Set(templateNames(text))];
  if (names.length === 0 || names.some((name) => env[name] === undefined)) return [];
  if (text.replace(TEMPLATE, (_match, name: string) => env[name] ?? '').trim() !== '') return [];
  return names.filter((name) => env[name]?.trim() === '');
}

/** The server setting that lists the variables entities created through the API may read. */
export const ENV_ALLOW_SETTING = 'LOCKSTEP_ENV_ALLOW';

/**
 * Variables no allow-list opens: the store's encryption keys and its URL. Reading them would let
 * whoever may call the API read every stored secret.
 */
export const NEVER_ALLOWED_ENV: readonly string[] = ['LOCKSTEP_SECRET_KEY', 'LOCKSTEP_NEW_SECRET_KEY', 'LOCKSTEP_STORE'];

/**
 * Which environment variables the `${ENV}` templates of entities created or changed through the
 * API may read (`LOCKSTEP_ENV_ALLOW`: names separated by commas, a name ending in `*` a prefix;
 * default: none). Entities declared in workspace files read any variable.
 */
export class EnvAllowList {
  static readonly NONE = new EnvAllowList(new Set(), []);

  private constructor(
    private readonly names: ReadonlySet<string>,
    private readonly prefixes: readonly string[],
  ) {}

  /** Parses the setting's text, e.g. `CRM_URL, HUBSPOT_*`; throws a validation error naming a bad entry. */
  static parse(text: string | undefined): EnvAllowList {
    const names = new Set<string>();
    const prefixes: string[] = [];
    for (const entry of (text ?? '').split(',').map((e) => e.trim()).filter((e) => e !== '')) {
      const prefix = entry.endsWith('*') ? entry.slice(0, -1) : null;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(prefix ?? entry) && prefix !== '') {
        throw new LockstepError(
          ErrorCode.Validation,
          `${ENV_ALLOW_SETTING} lists "${entry}", which is not a variable name — list names separated by commas, a name ending in * for a prefix, e.g. ${ENV_ALLOW_SETTING}=CRM_URL,HUBSPOT_*`,
        );
      }
      if (prefix === null) names.add(entry);
      else prefixes.push(prefix);
    }
    return names.size === 0 && prefixes.length === 0 ? EnvAllowList.NONE : new EnvAllowList(names, prefixes);
  }

  allows(name: string): boolean {
    if (NEVER_ALLOWED_ENV.includes(name)) return false;
    return this.names.has(name) || this.prefixes.some((p) => name.startsWith(p));
  }
}

const ALLOW_LIST = Symbol('EnvAllowList');

/**
 * The environment templates resolve from, with the allow-list of entities created through the API
 * attached, so whatever resolves an entity's templates (runs, alert deliveries, connection tests)
 * applies it by the entity's origin.
 */
export type TemplateEnv = Record<string, string | undefined> & { readonly [ALLOW_LIST]?: EnvAllowList };

/** `env` with `allowList` attached (a copy; `env` itself is left as it is). */
export function withEnvAllowList(env: Record<string, string | undefined>, allowList: EnvAllowList): TemplateEnv {
  return { ...env, [ALLOW_LIST]: allowList };
}

/** The allow-list attached to `env` (none: no variable is allowed). */
export function envAllowListOf(env: TemplateEnv): EnvAllowList {
  return env[ALLOW_LIST] ?? EnvAllowList.NONE;
}

/** Why an entity changed through the API may not read `${name}`, with the fix. */
export function notAllowedText(name: string): string {
  const never = NEVER_ALLOWED_ENV.includes(name);
  return never
    ? `uses \${${name}}, which entities created through the API may never read — declare the entity in a workspace file instead`
    : `uses \${${name}}, which entities created or changed through the API may not read — add ${name} to the server's ${ENV_ALLOW_SETTING} (e.g. ${ENV_ALLOW_SETTING}=${name}) or declare the entity in a workspace file`;
}

/**
 * Replaces `${VAR}` with the environment's value. Throws a validation error naming the variable
 * and where it is used when it is not set, or, for an entity created through the API (`origin`
 * `api`), when the allow-list attached to `env` does not list it. The error never holds a value.
 */
export function interpolate(text: string, env: TemplateEnv, where: string, origin: EntityOrigin = 'file'): string {
  return text.replace(TEMPLATE, (_match, name: string) => {
    if (origin === 'api' && !envAllowListOf(env).allows(name)) {
      throw new LockstepError(ErrorCode.Validation, `${where} was created through the API and ${notAllowedText(name)}`);
    }
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
export function interpolateDeep(value: unknown, env: TemplateEnv, where: string, origin: EntityOrigin = 'file'): unknown {
  if (typeof value === 'string') return interpolate(value, env, where, origin);
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, env, where, origin));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env, where, origin)]));
  }
  return value;
}

/** The values `${VAR}` templates in `value` read from `env` (set ones only), to keep them out of error messages. */
export function templateValues(value: unknown, env: TemplateEnv): string[] {
  const names = settingStrings(value).flatMap((s) => templateNames(s.value));
  return [...new Set(names.map((n) => env[n]).filter((v): v is string => v !== undefined && v.length >= 3))];
}

/** `message` with each of `values` replaced by `***`, longest first (a value inside another goes with it). */
export function withoutValues(message: string, values: readonly string[]): string {
  let text = message;
  for (const value of [...values].filter((v) => v.length >= 3).sort((a, b) => b.length - a.length)) text = text.split(value).join(REDACTED);
  return text;
}

/**
 * Where `settings`, sent through the API, reads variables the allow-list does not list: each setting
 * (by path, e.g. `headers.Authorization`) with the first such variable. A setting that keeps the value it
 * has in `previous` (the stored entity, e.g. a file's `${WAREHOUSE_URL}` sent back unchanged) is not
 * counted: it reads nothing new.
 */
export function unlistedTemplates(settings: unknown, previous: unknown, allowList: EnvAllowList): Record<string, string> {
  const kept = new Map(settingStrings(previous).map((s) => [s.path.join('.'), s.value]));
  const out: Record<string, string> = {};
  for (const { path, value } of settingStrings(settings)) {
    const key = path.join('.');
    if (kept.get(key) === value) continue;
    const name = templateNames(value).find((n) => !allowList.allows(n));
    if (name !== undefined) out[key] = name;
  }
  return out;
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

/**
 * The texts of `values` a message must not show, longest first: each value itself and, for a URL,
 * the parts that may be secret (a password or a lone token as user name, every query value, the
 * fragment), raw and decoded. Query values `redactUrl` shows are hidden here too: a message loses
 * little without them. Values shorter than 4 characters are left out: hiding them would blank out
 * ordinary words.
 */
export function secretTexts(values: readonly string[]): string[] {
  const out = new Set<string>();
  const add = (text: string | undefined) => addWithDecoded(out, text, 4);
  for (const value of values) {
    add(value);
    const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)[^?#]*(\?[^#]*)?(#.*)?$/i.exec(value);
    if (!match) continue;
    const [, authority = '', query, fragment] = match;
    const at = authority.lastIndexOf('@');
    if (at >= 0) {
      const userinfo = authority.slice(0, at);
      const colon = userinfo.indexOf(':');
      add(colon >= 0 ? userinfo.slice(colon + 1) : userinfo);
    }
    for (const pair of query?.slice(1).split('&') ?? []) add(pair.slice(pair.indexOf('=') + 1 || pair.length));
    add(fragment?.slice(1));
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/**
 * What an error must not show of `values` read from the environment: their secret texts (see
 * `secretTexts`) and, for a URL, its user name and the segments of its path (a database's name),
 * which the variable held too.
 */
export function environmentTexts(values: readonly string[]): string[] {
  const out = new Set(secretTexts(values));
  for (const value of values) {
    const match = /^[a-z][a-z0-9+.-]*:\/\/(?:([^/?#@:]*)(?::[^/?#@]*)?@)?[^/?#]*([^?#]*)/i.exec(value);
    if (!match) continue;
    const [, user, path = ''] = match;
    for (const part of [user, ...path.split('/')]) addWithDecoded(out, part, 3);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** Adds `text` and its percent-decoded form to `out`, each when at least `min` characters long. */
function addWithDecoded(out: Set<string>, text: string | undefined, min: number): void {
  if (text === undefined || text.length < min) return;
  out.add(text);
  try {
    const decoded = decodeURIComponent(text.replace(/\+/g, ' '));
    if (decoded.length >= min) out.add(decoded);
  } catch {
    // Not percent-encoded text: the raw form is enough.
  }
}

/**
 * Query parameters whose values a URL shows: connection settings that say how it connects, never who
 * may (a store's schema, sslmode, application_name...). Any other parameter may carry a secret
 * (password, sslpassword, sslkey, a webhook's token or signature under a name of its own), so its
 * value is hidden: the list names what is harmless, not what is secret.
 */
const SHOWN_PARAMETERS = new Set([
  'schema',
  'answer_timeout',
  'sslmode',
  'ssl',
  'application_name',
  'fallback_application_name',
  'connect_timeout',
  'target_session_attrs',
  'load_balance_hosts',
  'client_encoding',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'gssencmode',
  'channel_binding',
  'charset',
  'timezone',
]);

/** Schemes of database URLs, whose user information is a user name and its password. */
const DATABASE_SCHEMES = new Set(['postgres://', 'postgresql://', 'mysql://', 'mariadb://']);

/**
 * A URL that is (or holds) a secret, as shown: its user information (a password, or a token written
 * as the user name; a database URL's user name shows), its fragment and every query value but those of harmless connection settings
 * (see SHOWN_PARAMETERS) replaced by `***`. Scheme, host, port and path stay, so it still says where
 * it leads; text that is not a URL is hidden whole.
 */
export function redactUrl(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(url);
  if (!match) return REDACTED;
  const [, scheme = '', authority = '', path = '', query, fragment] = match;
  const at = authority.lastIndexOf('@');
  let hostPart = authority;
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    // `user:password@`: the user name stays (it says who connects); a lone `token@` is hidden, but
    // in a database's URL it is the user name (a server trusting it, or a password file).
    const user = colon >= 0 ? `${userinfo.slice(0, colon)}:${REDACTED}` : DATABASE_SCHEMES.has(scheme.toLowerCase()) ? userinfo : REDACTED;
    hostPart = `${user}@${authority.slice(at + 1)}`;
  }
  const params = mapQueryPairs(query, (pair) => {
    const name = pair.split('=')[0] ?? '';
    return pair === '' || SHOWN_PARAMETERS.has(decodedParameter(name).toLowerCase()) ? pair : `${name}=${REDACTED}`;
  });
  return `${scheme}${hostPart}${path}${params}${fragment === undefined ? '' : `#${REDACTED}`}`;
}

/** The parameter of a PostgreSQL store URL that names the schema of its tables. */
export const STORE_SCHEMA_PARAMETER = 'schema';

/**
 * A PostgreSQL store URL's schema, named by its `schema` parameter
 * (`postgres://user:password@host/db?schema=lockstep_staging`; null when it names none), and the URL
 * without that parameter for the driver, which knows no such setting. The rest stays as written.
 */
export function storeUrlSchema(url: string): { url: string; schema: string | null } {
  const taken = takeParameter(url, STORE_SCHEMA_PARAMETER);
  if (taken.value === null) return { url, schema: null };
  if (taken.value.trim() === '') {
    throw new LockstepError(
      ErrorCode.Validation,
      `the store URL's ${STORE_SCHEMA_PARAMETER} parameter is empty — name the schema of the store's tables, e.g. ?${STORE_SCHEMA_PARAMETER}=lockstep, or leave the parameter out for lockstep`,
    );
  }
  return { url: taken.url, schema: taken.value };
}

/**
 * The value of `url`'s query parameter `name` (decoded; null when there is none), and the URL
 * without it. The rest stays as written.
 */
function takeParameter(url: string, name: string): { url: string; value: string | null } {
  const match = /^([^?#]*)\?([^#]*)(#.*)?$/.exec(url);
  if (!match) return { url, value: null };
  const [, base = '', query = '', fragment = ''] = match;
  const pairs = query.split('&');
  const named = pairs.find((pair) => decodedParameter(pair.split('=')[0] ?? '') === name);
  if (named === undefined) return { url, value: null };
  const kept = pairs.filter((pair) => pair !== named);
  return { url: `${base}${kept.length > 0 ? `?${kept.join('&')}` : ''}${fragment}`, value: decodedParameter(named.slice(named.indexOf('=') + 1 || named.length)) };
}

/**
 * The parameter of a PostgreSQL store URL that sets how long, in seconds, a store statement may go
 * unanswered before the server is asked whether it is still working on it (see PostgresDatabase).
 */
export const STORE_ANSWER_TIMEOUT_PARAMETER = 'answer_timeout';

/**
 * Milliseconds a store statement may go unanswered when the store URL sets no answer_timeout: a
 * heartbeat that cannot reach the store fails within a third of the default lease.
 */
export const DEFAULT_STORE_ANSWER_TIMEOUT_MS = 10_000;

/**
 * A PostgreSQL store URL's answer timeout in ms, set by its `answer_timeout` parameter in seconds
 * (`postgres://user:password@host/db?answer_timeout=20`; null when it sets none), and the URL
 * without that parameter for the driver, which knows no such setting.
 */
export function storeUrlAnswerTimeout(url: string): { url: string; answerTimeoutMs: number | null } {
  const taken = takeParameter(url, STORE_ANSWER_TIMEOUT_PARAMETER);
  if (taken.value === null) return { url, answerTimeoutMs: null };
  const text = taken.value.trim();
  const seconds = Number(text);
  if (text === '' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new LockstepError(
      ErrorCode.Validation,
      `the store URL's ${STORE_ANSWER_TIMEOUT_PARAMETER} parameter is ${JSON.stringify(text)}, not a number of seconds above 0 — write e.g. ?${STORE_ANSWER_TIMEOUT_PARAMETER}=10, or leave the parameter out for ${DEFAULT_STORE_ANSWER_TIMEOUT_MS / 1000} seconds`,
    );
  }
  return { url: taken.url, answerTimeoutMs: Math.max(1, Math.round(seconds * 1000)) };
}

/**
 * `sent`, a URL as `redactUrl` showed it and then edited (another host, say), with each part still
 * hidden taking `stored`'s value again: the password when the user name is the same, a lone hidden
 * user information, the value of a parameter of the same name, the fragment. What was changed is kept
 * as sent, so reading, editing and writing back never turns a secret into `***`.
 */
export function keepRedactedUrl(sent: string, stored: string): string {
  const parts = (url: string) => /^([a-z][a-z0-9+.-]*:\/\/)(?:([^/?#@]*)@)?([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(url);
  const mine = parts(sent);
  const theirs = parts(stored);
  if (!mine || !theirs) return sent;
  const [, scheme, userinfo, host = '', path = '', query, fragment] = mine;
  const [, , storedUserinfo, , , storedQuery, storedFragment] = theirs;
  let user = userinfo;
  if (userinfo !== undefined && storedUserinfo !== undefined) {
    const name = (info: string) => (info.includes(':') ? info.slice(0, info.indexOf(':')) : null);
    if (userinfo === REDACTED && name(storedUserinfo) === null) user = storedUserinfo;
    else if (userinfo.endsWith(`:${REDACTED}`) && name(userinfo) === name(storedUserinfo)) user = storedUserinfo;
  }
  const storedPairs = new Map<string, string>();
  for (const pair of storedQuery?.slice(1).split('&') ?? []) {
    const name = pair.split('=')[0] ?? '';
    if (!storedPairs.has(name)) storedPairs.set(name, pair);
  }
  const params = mapQueryPairs(query, (pair) => (pair.endsWith(`=${REDACTED}`) ? (storedPairs.get(pair.slice(0, -REDACTED.length - 1)) ?? pair) : pair));
  const hash = fragment === `#${REDACTED}` && storedFragment !== undefined ? storedFragment : (fragment ?? '');
  return `${scheme}${user === undefined ? '' : `${user}@`}${host}${path}${params}${hash}`;
}

/** A URL's query (`?a=1&b=2`, or undefined for none) with each `name=value` pair mapped. */
function mapQueryPairs(query: string | undefined, map: (pair: string) => string): string {
  return query === undefined ? '' : `?${query.slice(1).split('&').map(map).join('&')}`;
}

/** A URL query name or value as text; one whose %-escapes are malformed stays as written. */
function decodedParameter(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * What to do about a TLS failure connecting to PostgreSQL (`url` names the setting, e.g. "store
 * URL"), a certificate file that cannot be read included, or null when `message` is about something else.
 */
export function postgresTlsHint(message: string, url: string): string | null {
  // The driver reads the files sslrootcert, sslcert and sslkey name as it connects; no other file.
  const file = /\b(ENOENT|EACCES|EPERM|EISDIR)\b.*\bopen '(.*)'/.exec(message);
  if (file) return `the certificate or key file ${file[2]} cannot be read (${file[1]}): check the path given by sslrootcert, sslcert or sslkey in the ${url}, and that the user running Lockstep may read it`;
  // pg_hba.conf has a hostssl line for this client and no host line: only TLS gets in.
  if (/no pg_hba\.conf entry .*no encryption/i.test(message)) {
    // The driver checks the certificate under sslmode=require as under verify-full (unlike libpq).
    return (
      `the server takes only TLS connections from here: add sslmode=require to the ${url}; its certificate is then checked against ` +
      "the trusted CAs, as with sslmode=verify-full — for a private CA add sslrootcert=<path of the CA's certificate>, or use sslmode=no-verify to encrypt without checking it"
    );
  }
  if (/does not support SSL/i.test(message)) return `the server does not take TLS connections: remove sslmode from the ${url} (or set sslmode=disable), or turn ssl on in the server`;
  if (/self[- ]signed certificate|unable to (get local issuer|verify the first) certificate|certificate has expired|Hostname\/IP does not match/i.test(message)) {
    return `the server's certificate is not trusted: add sslrootcert=<path of the CA's certificate> to the ${url}, or set sslmode=no-verify to encrypt without checking it`;
  }
  return null;
}

/** The sslmodes the driver takes as verify-full (see postgresDriverUrl). */
const CHECKED_SSL_MODES = new Set(['prefer', 'require', 'verify-ca']);

/**
 * `url` as the PostgreSQL driver is given it: sslmode=prefer, require and verify-ca written as
 * verify-full, which is what the driver does with them. Said outright, the driver prints no warning
 * into the logs that they will mean libpq's (weaker) modes in its next major version, and the
 * certificate stays checked as the README says whatever version is installed. A URL that asks for
 * libpq's meanings (uselibpqcompat=true) stays as written.
 */
export function postgresDriverUrl(url: string): string {
  const match = /^([^?#]*)(\?[^#]*)(#.*)?$/.exec(url);
  if (!match) return url;
  const [, base = '', query, fragment = ''] = match;
  const names = (query ?? '').slice(1).split('&').map((pair) => decodedParameter(pair.split('=')[0] ?? ''));
  if (names.includes('uselibpqcompat')) return url;
  const params = mapQueryPairs(query, (pair) => {
    const at = pair.indexOf('=');
    if (at < 0 || decodedParameter(pair.slice(0, at)) !== 'sslmode') return pair;
    return CHECKED_SSL_MODES.has(decodedParameter(pair.slice(at + 1))) ? `${pair.slice(0, at)}=verify-full` : pair;
  });
  return `${base}${params}${fragment}`;
}

/**
 * Loads a workspace from its folder: `lockstep.yaml` (or `.yml`) and every YAML file under
 * `lockstep/`, merged. Validation reports every problem at once, each located in its file; the
 * definition is produced (every default filled in) only when there is none.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Diagnostic } from '../core/errors.js';
import { toError } from '../core/errors.js';
import { interpolate } from '../core/connections.js';
import { splitHint } from '../core/hints.js';
import { urlProblems } from '../core/url-setting.js';
import { ALERT_CHANNEL_SECRETS } from '../core/secrets.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import type { ConnectionDef, ModelDef, SequenceDef, SyncDef, WorkspaceDefinition } from '../core/workspace.js';
import { checkTemplates, checkWorkspace } from './check-workspace.js';
import { checkLookupOrder } from './check-connectors.js';
import { checkAlerts, type AlertsDeclaration } from './check-alerts.js';
import type { Catalog, Declaration } from './check-workspace.js';
import { issueDiagnostics, workspaceErrorMap } from './issue-diagnostics.js';
import { givenBy, resolvedText } from './resolved-settings.js';
import { WorkspaceFile } from './workspace-file.js';
import { findWorkspaceFiles, mayDeclareStore, WORKSPACE_FILE_NAMES, WORKSPACE_FOLDER } from './workspace-files.js';

export { findWorkspaceFiles, WORKSPACE_FILE_NAMES, WORKSPACE_FOLDER };
import { SECTION_NAMES, buildAlerts, buildWebhooks, storeSchema, withoutExtensions, workspaceFileSchema } from './workspace-schema.js';
import type { WorkspaceFileContent } from './workspace-schema.js';

/** Where Lockstep keeps its state, as the workspace declares it. */
export type StoreSetting =
  | { type: 'sqlite'; /** Absolute path of the SQLite file. */ path: string }
  | { type: 'postgres'; /** Connection URL, `${ENV}` templates unresolved. */ url: string };

export interface LoadResult {
  /** The resolved workspace; null when there is any error. */
  definition: WorkspaceDefinition | null;
  /** Every problem found, sorted by file, line and column. */
  diagnostics: Diagnostic[];
  /** What is allowed but probably not meant (e.g. a child member that may run before its parent). */
  warnings: Diagnostic[];
  /** The workspace files read, relative to the workspace folder. */
  files: string[];
  /**
   * The store setting (default: SQLite `lockstep.db` in the folder); null when it is invalid, when no
   * workspace was found, or when a file that may set it could not be read or parsed.
   */
  store: StoreSetting | null;
}

type Env = Record<string, string | undefined>;

export async function loadWorkspace(dir: string, env: Env, registry: ConnectorRegistry): Promise<LoadResult> {
  const root = resolve(dir);
  const names = await findWorkspaceFiles(root);
  if (names.length === 0) {
    return {
      definition: null,
      diagnostics: [
        {
          path: '',
          message: `no workspace found in ${root}: looked for ${WORKSPACE_FILE_NAMES.join(' and ')} and YAML files under ${WORKSPACE_FOLDER}/`,
          hint: 'run `lockstep init` to create a starter workspace, or run Lockstep in the folder that holds lockstep.yaml',
        },
      ],
      files: [],
      store: null,
      warnings: [],
    };
  }

  const diagnostics: Diagnostic[] = [];
  const files: WorkspaceFile[] = [];
  for (const name of names) {
    try {
      files.push(WorkspaceFile.parse(name, await readFile(join(root, name), 'utf8')));
    } catch (thrown) {
      diagnostics.push({ file: name, path: '', message: `cannot read ${name}: ${toError(thrown).message}`, hint: 'check that the file exists and is readable' });
    }
  }

  const catalog: Catalog = { sources: new Map(), destinations: new Map(), models: new Map(), syncs: new Map(), sequences: new Map() };
  const contents: WorkspaceFileContent[] = [];
  let store: { file: WorkspaceFile; data: unknown } | null = null;
  const alerts: AlertsDeclaration[] = [];
  for (const file of files) {
    diagnostics.push(...file.syntaxDiagnostics);
    if (!file.usable) continue;
    const data = file.content();
    const mapping = asRecord(data);
    if (mapping === null) {
      diagnostics.push(
        file.diagnostic([], `${file.file} must be a mapping of sections, got ${Array.isArray(data) ? 'a list' : 'a single value'}`, `write sections at the top level: ${['store', ...SECTION_NAMES].join(', ')}`),
      );
      continue;
    }
    const record = withoutExtensions(mapping);
    const parsed = workspaceFileSchema.safeParse(record, { error: workspaceErrorMap, reportInput: true });
    if (parsed.success) contents.push(parsed.data);
    else diagnostics.push(...parsed.error.issues.flatMap((issue) => issueDiagnostics(issue, file, record, { secret: isSecretPath(record, issue.path), schema: workspaceFileSchema })));

    for (const section of SECTION_NAMES) {
      const entries = asRecord(record[section]);
      for (const [slug, entry] of Object.entries(entries ?? {})) {
        const declaration: Declaration = { file, slug, data: entry };
        const first = catalog[section].get(slug);
        if (first) diagnostics.push(duplicate(first, declaration, [section, slug], `${section.replace(/s$/, '')} "${slug}"`));
        else catalog[section].set(slug, declaration);
      }
    }
    if (record.alerts !== undefined && record.alerts !== null) alerts.push({ file, data: record.alerts });
    diagnostics.push(...checkWebhookSecrets(file, record.webhooks, env));
    if (record.store !== undefined) {
      if (store) diagnostics.push(duplicate({ file: store.file, slug: 'store', data: store.data }, { file, slug: 'store', data: record.store }, ['store'], 'the store'));
      else store = { file, data: record.store };
    }
  }

  // Cross-file checks need every file; a file too broken to read would only make them noisy.
  const warnings: Diagnostic[] = [];
  if (files.length === names.length && files.every((f) => f.usable)) {
    diagnostics.push(...checkWorkspace(catalog, env, registry), ...checkAlerts(alerts, catalog, env));
    warnings.push(...checkLookupOrder(catalog));
  }

  // A file too broken to parse may be the one naming the store: the default would be a guess.
  const unparsed = names.filter((name) => !files.some((f) => f.file === name && f.usable));
  const storeUnknown = store === null && unparsed.length > 0 && (await mayDeclareStore(root, unparsed));
  const storeSetting = storeUnknown ? null : resolveStore(root, store, env, diagnostics);
  const fileOrder = new Map(names.map((name, i) => [name, i]));
  diagnostics.sort(
    (a, b) =>
      (a.file === undefined ? -1 : (fileOrder.get(a.file) ?? 0)) - (b.file === undefined ? -1 : (fileOrder.get(b.file) ?? 0)) ||
      (a.line ?? 0) - (b.line ?? 0) ||
      (a.column ?? 0) - (b.column ?? 0),
  );
  return {
    definition: diagnostics.length === 0 ? buildDefinition(contents) : null,
    diagnostics,
    warnings,
    files: names,
    store: storeSetting,
  };
}

function duplicate(first: Declaration, second: Declaration, path: string[], what: string): Diagnostic {
  const at = first.file.locate(path, 'key');
  return second.file.diagnostic(
    path,
    `${what} is declared twice: ${first.file.file}:${at.line} and ${second.file.file}:${second.file.locate(path, 'key').line}`,
    'slugs are unique per kind across all workspace files; rename or remove one',
    'key',
  );
}

function resolveStore(root: string, declared: { file: WorkspaceFile; data: unknown } | null, env: Env, diagnostics: Diagnostic[]): StoreSetting | null {
  if (declared === null) return { type: 'sqlite', path: join(root, 'lockstep.db') };
  const parsed = storeSchema.safeParse(declared.data);
  if (!parsed.success) return null;
  const setting = parsed.data;
  if (setting.type === 'postgres') {
    diagnostics.push(...checkTemplates(declared.file, ['store', 'url'], setting.url, 'the store', env, STORE_URL_EXAMPLE));
    // A URL its variables split elsewhere than meant names no store to open: the commands that open one stop on it.
    const split = checkResolvedStoreUrl(declared.file, setting.url, env);
    diagnostics.push(...split);
    return split.length > 0 ? null : { type: 'postgres', url: setting.url };
  }
  const problems = checkTemplates(declared.file, ['store', 'path'], setting.path, 'the store', env);
  diagnostics.push(...problems);
  if (problems.length > 0) return null;
  const path = interpolate(setting.path, env, 'the store');
  return { type: 'sqlite', path: isAbsolute(path) ? path : resolve(root, path) };
}

const STORE_URL_EXAMPLE = 'postgres://user:password@host:5432/database';

/**
 * The store's URL as its variables give it (when they are all set): a password with a # unencoded
 * would otherwise pass validate, and every command would then fail to reach a host made of part of it.
 */
function checkResolvedStoreUrl(file: WorkspaceFile, value: string, env: Env): Diagnostic[] {
  const resolved = resolvedText(value, env);
  if (!resolved || resolved.names.length === 0 || resolved.text.trim() === '') return [];
  return urlProblems(resolved.text, ['postgres:', 'postgresql:'], STORE_URL_EXAMPLE, 'url of the store').map((problem) => {
    const { message, hint } = splitHint(problem);
    return file.diagnostic(['store', 'url'], `${message}${givenBy(resolved.names)}`, `check ${resolved.names.join(' and ')}${hint ? `: ${hint}` : ''}`);
  });
}

function buildDefinition(contents: WorkspaceFileContent[]): WorkspaceDefinition {
  const definition: WorkspaceDefinition = { sources: [], destinations: [], models: [], syncs: [], sequences: [] };
  for (const content of contents) {
    for (const [slug, c] of Object.entries(content.sources ?? {})) definition.sources.push({ slug, ...c } satisfies ConnectionDef);
    for (const [slug, c] of Object.entries(content.destinations ?? {})) definition.destinations.push({ slug, ...c } satisfies ConnectionDef);
    for (const [slug, m] of Object.entries(content.models ?? {})) definition.models.push({ slug, ...m } satisfies ModelDef);
    for (const [slug, s] of Object.entries(content.syncs ?? {})) definition.syncs.push({ slug, ...s } satisfies SyncDef);
    for (const [slug, s] of Object.entries(content.sequences ?? {})) {
      definition.sequences.push({ slug, ...s, name: s.name ?? slug } satisfies SequenceDef);
    }
  }
  definition.alerts = buildAlerts(contents.map((content) => content.alerts ?? undefined));
  definition.webhooks = buildWebhooks(contents.map((content) => content.webhooks));
  return definition;
}

/** `${VAR}` templates in webhook secrets whose variable is not set. */
function checkWebhookSecrets(file: WorkspaceFile, section: unknown, env: Env): Diagnostic[] {
  return (['dbtCloud', 'fivetran'] as const).flatMap((endpoint) => {
    const secret = asRecord(asRecord(section)?.[endpoint])?.secret;
    return typeof secret === 'string' ? checkTemplates(file, ['webhooks', endpoint, 'secret'], secret, `the ${endpoint} webhook`, env) : [];
  });
}

/**
 * Whether `path` leads to a secret in a workspace file's data: an alert channel's secret settings
 * (see ALERT_CHANNEL_SECRETS) or a webhook's signing secret. Messages about it never show its value.
 */
function isSecretPath(data: Record<string, unknown>, path: readonly PropertyKey[]): boolean {
  const [section, group, name, field] = path.map(String);
  if (section === 'webhooks') return name === 'secret';
  if (section !== 'alerts' || group !== 'channels' || name === undefined || field === undefined) return false;
  const type = asRecord(asRecord(asRecord(data.alerts)?.channels)?.[name])?.type;
  return typeof type === 'string' && Object.hasOwn(ALERT_CHANNEL_SECRETS, type) && (ALERT_CHANNEL_SECRETS[type as keyof typeof ALERT_CHANNEL_SECRETS] ?? []).includes(field);
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

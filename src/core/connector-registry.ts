/**
 * The connector registry: the kinds this build knows, registered by the composition root, and
 * everything done with a connection by its kind: checking and resolving its settings, hiding its
 * secrets, opening it, and the rate limiters shared by every run that writes through it.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import type { AuditLogWriter } from './audit-log.js';
import { DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
import type { ConnectorContext, ConnectorKind, ConnectorRole, RateLimits } from './connector-kind.js';
import { REDACTED, blankTemplateNames, environmentTexts, interpolateDeep, keepRedactedUrl, redactValue, settingStrings, templateValues, withoutValues, type TemplateEnv } from './connections.js';
import { ErrorCode, LockstepError, ValidationError } from './errors.js';
import { splitHint } from './hints.js';
import type { Clock, Connectors, Destination, DestinationWriter, Logger, RateLimiter, Source, WriteTarget } from './ports.js';
import type { RunWaits } from './run-phases.js';
import type { ConnectionDef, EntityOrigin, ResolvedConnection } from './workspace.js';

export interface ConnectorRegistryOptions {
  clock: Clock;
  logger: Logger;
  /** How connectors retry calls to their peers (default: DEFAULT_BACKOFF). */
  backoff?: BackoffPolicy;
  /** Makes a rate limiter; the registry keeps one per destination connection. */
  createRateLimiter: (limits: RateLimits) => RateLimiter;
  /** Lockstep's own files no connection may read (ConnectorContext.protectedFiles; default: none). */
  protectedFiles?: readonly string[];
}

export class ConnectorRegistry implements Connectors {
  private readonly byType = new Map<string, ConnectorKind>();
  private readonly limiters = new Map<string, RateLimiter>();
  private readonly backoff: BackoffPolicy;

  constructor(private readonly options: ConnectorRegistryOptions) {
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
  }

  /** Adds a kind; its `type` must be new. */
  register<S, Y>(kind: ConnectorKind<S, Y>): this {
    if (this.byType.has(kind.type)) throw new Error(`connector kind "${kind.type}" is registered twice`);
    this.byType.set(kind.type, kind as ConnectorKind);
    return this;
  }

  /** The registered kinds, in registration order; only those that can play `role` when given. */
  kinds(role?: ConnectorRole): ConnectorKind[] {
    return [...this.byType.values()].filter((k) => role === undefined || k[role] !== undefined);
  }

  kind(type: string): ConnectorKind | undefined {
    return this.byType.get(type);
  }

  /**
   * Checks settings against the kind's schema: issues with paths inside the settings (empty when
   * they are fine). Template-bearing strings are checked as written, so the kinds' schemas accept
   * `${VAR}` where a value may come from the environment.
   */
  checkSettings(kind: ConnectorKind, settings: Record<string, unknown>, errorMap?: z.core.$ZodErrorMap): z.core.$ZodIssue[] {
    const parsed = kind.settings.safeParse(settings, { error: errorMap, reportInput: true });
    return parsed.success ? [] : parsed.error.issues;
  }

  /** Checks a sync's kind settings against the destination kind's `syncSettings` (an empty schema when it has none). */
  checkSyncSettings(kind: ConnectorKind, settings: Record<string, unknown>, errorMap?: z.core.$ZodErrorMap): z.core.$ZodIssue[] {
    const schema = kind.destination?.syncSettings;
    if (!schema) {
      return Object.keys(settings).map((key) => ({
        code: 'unrecognized_keys',
        keys: [key],
        path: [],
        input: settings,
        message: `a sync to a ${kind.type} destination has no setting "${key}"`,
      })) as z.core.$ZodIssue[];
    }
    const parsed = schema.safeParse(settings, { error: errorMap, reportInput: true });
    return parsed.success ? [] : parsed.error.issues;
  }

  /** Checks a sync's `object` against the destination kind's rule for it (none: any text); issues at `object`. */
  checkObject(kind: ConnectorKind, object: string, errorMap?: z.core.$ZodErrorMap): z.core.$ZodIssue[] {
    const parsed = kind.destination?.object?.safeParse(object, { error: errorMap, reportInput: true });
    return !parsed || parsed.success ? [] : parsed.error.issues.map((issue) => ({ ...issue, path: ['object', ...issue.path] }));
  }

  /** The definition with its secret settings hidden (see `ConnectorKind.secrets`), as the API shows it. */
  redact(def: ConnectionDef): ConnectionDef {
    const kind = this.byType.get(def.type);
    const settings = { ...def.settings };
    for (const name of kind?.secrets ?? []) {
      if (name in settings) settings[name] = redactValue(settings[name]);
    }
    return { ...def, settings };
  }

  /**
   * Settings sent back as they were read carry hidden secrets; each setting equal to the hidden form
   * of the stored one takes the stored value again, and a URL edited around its hidden parts takes
   * the stored parts back (see `keepRedactedUrl`), so reading and writing back never loses a secret.
   */
  keepRedacted(settings: Record<string, unknown>, previous: ConnectionDef | null): Record<string, unknown> {
    if (previous === null || previous.type !== settings.type) return settings;
    const kind = this.byType.get(previous.type);
    const kept = { ...settings };
    const restored: string[] = [];
    for (const name of kind?.secrets ?? []) {
      const stored = previous.settings[name];
      const sent = kept[name];
      if (stored === undefined || sent === undefined) continue;
      if (isRecord(stored) && isRecord(sent)) {
        const merged = { ...sent };
        for (const [key, value] of Object.entries(sent)) {
          if (value === redactValue(stored[key]) && stored[key] !== undefined) {
            merged[key] = stored[key];
            if (value !== stored[key] || holdsTemplate(value)) restored.push(`${name}.${key}`);
          }
        }
        kept[name] = merged;
      } else if (JSON.stringify(sent) === JSON.stringify(redactValue(stored))) {
        if (JSON.stringify(sent) !== JSON.stringify(stored) || holdsTemplate(sent)) restored.push(name);
        kept[name] = stored;
      } else if (typeof sent === 'string' && typeof stored === 'string') {
        // A URL read, then edited (another path, say): what it still has hidden is the stored value.
        kept[name] = keepRedactedUrl(sent, stored);
        if (kept[name] !== sent) restored.push(name);
      }
    }
    // A stored secret goes only where it went before: sent back hidden to another host, it would be
    // handed to that host (a password, a header) by whoever may edit the connection but not read it.
    const moved = restored.length === 0 ? null : movedAddress(settings, previous.settings);
    if (moved !== null) {
      throw new ValidationError(
        restored.map((path) => ({
          path,
          message: `is sent hidden (${REDACTED}) or as a \${VAR} the server reads, while ${moved.setting} now points at ${moved.now} instead of ${moved.was}: a stored secret is not sent to another host`,
          hint: 'type the secret again',
        })),
      );
    }
    return kept;
  }

  async openSource(connection: ResolvedConnection): Promise<Source> {
    const kind = this.require(connection, 'source');
    return openedWithoutEnvValues(connection, () => (kind.source as NonNullable<ConnectorKind['source']>).open(this.settingsFor(kind, connection), this.context(connection)));
  }

  async openDestination(connection: ResolvedConnection, run?: { waits: RunWaits; signal?: AbortSignal }): Promise<Destination> {
    const kind = this.require(connection, 'destination');
    const destination = await openedWithoutEnvValues(connection, () =>
      (kind.destination as NonNullable<ConnectorKind['destination']>).open(this.settingsFor(kind, connection), this.context(connection, run)),
    );
    const syncSettings = kind.destination?.syncSettings;
    if (!syncSettings) return destination;
    // The sync's settings reach the writer parsed (defaults filled), whoever calls prepare.
    return {
      capabilities: destination.capabilities,
      close: () => destination.close(),
      apiUsage: destination.apiUsage ? () => destination.apiUsage?.() ?? null : undefined,
      listObjects: destination.listObjects ? () => destination.listObjects?.() ?? Promise.resolve([]) : undefined,
      listFields: destination.listFields ? (object) => destination.listFields?.(object) ?? Promise.resolve([]) : undefined,
      readRows: destination.readRows ? (target, keys) => destination.readRows?.(target, keys) ?? Promise.resolve([]) : undefined,
      async prepare(target: WriteTarget): Promise<DestinationWriter> {
        const parsed = syncSettings.safeParse(target.settings ?? {});
        if (!parsed.success) {
          const first = parsed.error.issues[0];
          throw new LockstepError(
            ErrorCode.Validation,
            `sync "${target.sync ?? target.object}": setting ${first?.path.join('.') || '(settings)'}: ${issueText(first)} — fix it in the sync's definition (lockstep validate shows every problem)`,
          );
        }
        return destination.prepare({ ...target, settings: parsed.data as Record<string, unknown> });
      },
    };
  }

  /**
   * The audit log the connection keeps (its `auditLog` setting), opened with its tables created
   * when missing; null when it keeps none.
   */
  async openAuditLog(connection: ResolvedConnection): Promise<AuditLogWriter | null> {
    const kind = this.byType.get(connection.type);
    if (!kind?.auditLog) return null;
    return kind.auditLog.open(this.settingsFor(kind, connection), this.context(connection));
  }

  /** Loads the drivers of these kinds; settles once each has loaded or failed (unknown types and failures are ignored: `open` reports them). */
  async preload(types: Iterable<string>): Promise<void> {
    await Promise.allSettled([...new Set(types)].map((type) => this.byType.get(type)?.preload?.()));
  }

  /** The rate limiter shared by every run writing through the connection `slug`. */
  rateLimiter(slug: string, limits: RateLimits): RateLimiter {
    // Keyed by the limits too: a connection whose settings changed (apply) gets a budget of its new size.
    const key = `${slug}\u0000${limits.requestsPerSecond ?? ''}\u0000${limits.concurrency ?? ''}`;
    let limiter = this.limiters.get(key);
    if (!limiter) {
      limiter = this.options.createRateLimiter(limits);
      this.limiters.set(key, limiter);
    }
    return limiter;
  }

  private require(connection: ResolvedConnection, role: ConnectorRole): ConnectorKind {
    const kind = this.byType.get(connection.type);
    if (!kind || !kind[role]) {
      const known = this.kinds(role).map((k) => k.type);
      throw new LockstepError(
        ErrorCode.Validation,
        `${role} "${connection.slug}" has type "${connection.type}", which is not a ${role} kind this Lockstep knows — use one of: ${known.join(', ')}`,
      );
    }
    return kind;
  }

  /** The resolved settings through the kind's schema (defaults filled), paths made absolute. */
  private settingsFor(kind: ConnectorKind, connection: ResolvedConnection): unknown {
    const parsed = kind.settings.safeParse(connection.settings);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const field = first?.path.join('.') || '(settings)';
      // A variable exported empty is the cause to name: the file says `${VAR}`, not an empty value.
      const blank = connection.blankTemplates?.[field]?.[0];
      if (blank !== undefined) {
        throw new LockstepError(
          ErrorCode.Validation,
          `${kind.type} connection "${connection.slug}": setting ${field} is empty: it reads \${${blank}}, and the environment variable ${blank} is empty — export ${blank}=... before running Lockstep`,
        );
      }
      // The message never echoes the value: it may be a secret read from the environment.
      throw new LockstepError(
        ErrorCode.Validation,
        `${kind.type} connection "${connection.slug}": setting ${field} is not valid: ${issueText(first)} (e.g. ${kind.example})`,
      );
    }
    const settings = parsed.data as Record<string, unknown>;
    for (const name of kind.paths ?? []) {
      const value = settings[name];
      if (typeof value === 'string' && value !== ':memory:' && !isAbsolute(value)) settings[name] = resolve(connection.baseDir, value);
      const path = settings[name];
      // Written or read as a connection, the store would take rows past every check of the API
      // (an API token written to it, a source marked as declared in the files).
      if (typeof path === 'string' && this.isProtected(path)) {
        throw new LockstepError(ErrorCode.Validation, `${kind.type} connection "${connection.slug}": setting ${name} names a file of Lockstep's own store (${resolve(path)}) — point it at another file`);
      }
    }
    return settings;
  }

  /** Whether `path` is one of ConnectorRegistryOptions.protectedFiles, however it is spelled (links followed). */
  private isProtected(path: string): boolean {
    const files = this.options.protectedFiles ?? [];
    if (files.length === 0) return false;
    const real = (file: string) => {
      try {
        return realpathSync(file);
      } catch {
        return resolve(file);
      }
    };
    const target = real(path);
    return files.some((file) => resolve(file) === resolve(path) || real(file) === target);
  }

  /** `run`: the run a destination is opened for, whose rate-limit waits its limiter reports and its stop ends. */
  private context(connection: ResolvedConnection, run?: { waits: RunWaits; signal?: AbortSignal }): ConnectorContext {
    return {
      slug: connection.slug,
      baseDir: connection.baseDir,
      clock: this.options.clock,
      logger: this.options.logger,
      backoff: this.backoff,
      secretValues: connection.templateValues ?? [],
      protectedFiles: this.options.protectedFiles ?? [],
      rateLimiter: (limits) => {
        const shared = this.rateLimiter(connection.slug, limits);
        if (!run) return shared;
        // The connection's shared budget; the waits of this opening's requests go to its run, and end when it stops.
        return {
          schedule: <T>(task: () => Promise<T>) => shared.schedule(task, run.waits, run.signal),
          pauseUntil: (until) => shared.pauseUntil(until),
          observe: (remaining, windowMs) => shared.observe(remaining, windowMs),
        };
      },
    };
  }
}

/**
 * A connection ready to open: its templates resolved from `env`. A stored connection created through
 * the API (`origin: 'api'`) reads only the variables the allow-list attached to `env` lists.
 */
export function resolveConnection(
  def: ConnectionDef & { origin?: EntityOrigin },
  role: ConnectorRole,
  baseDir: string,
  env: TemplateEnv,
): ResolvedConnection {
  const settings = interpolateDeep(def.settings, env, `${role} "${def.slug}"`, def.origin ?? 'file') as Record<string, unknown>;
  const blankTemplates = Object.fromEntries(
    settingStrings(def.settings)
      .map(({ path, value }) => [path.join('.'), blankTemplateNames(value, env)] as const)
      .filter(([, names]) => names.length > 0),
  );
  return { slug: def.slug, type: def.type, settings, baseDir, templateValues: templateValues(def.settings, env), blankTemplates };
}

/** Runs `open`; an error it throws loses the values read from the environment (a connector may echo a path or a database name). */
async function openedWithoutEnvValues<T>(connection: ResolvedConnection, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (thrown) {
    const values = environmentTexts(connection.templateValues ?? []);
    if (values.length === 0 || !(thrown instanceof Error)) throw thrown;
    const message = withoutValues(thrown.message, values);
    if (message === thrown.message) throw thrown;
    // The same error (its code and class decide retries), its text without the values.
    thrown.message = message;
    thrown.stack = withoutValues(thrown.stack ?? '', values);
    if (thrown.cause instanceof Error) thrown.cause = undefined;
    throw thrown;
  }
}

/** A zod issue's message with its hint (see core/hints.ts), for run-time errors. */
function issueText(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid';
  const { message, hint } = splitHint(issue.message);
  return hint ? `${message} — ${hint}` : message;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const holdsTemplate = (value: unknown): boolean => typeof value === 'string' && value.includes('${');

/**
 * Where a setting points: `scheme://host:port` of a URL in lower case (never its user information);
 * a URL setting written as a template (`${CRM_URL}`) is its text. Null for other settings.
 */
function urlAddress(setting: string, text: string): string | null {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(?:[^/?#]*@)?([^/?#]*)/i.exec(text);
  if (match) return `${match[1]!.toLowerCase()}://${match[2]!.toLowerCase()}`;
  return /url$/i.test(setting) && holdsTemplate(text) ? text : null;
}

/** The first setting whose address (urlAddress) differs between `sent` and `stored`, or null. */
export function movedAddress(sent: Record<string, unknown>, stored: Record<string, unknown>): { setting: string; was: string; now: string } | null {
  const address = (settings: Record<string, unknown>, setting: string) => {
    const value = settings[setting];
    return typeof value === 'string' ? urlAddress(setting, value) : null;
  };
  // Every setting of either: a URL given where the stored connection had none (its kind's default
  // host, as HubSpot's baseUrl) points elsewhere too.
  for (const setting of new Set([...Object.keys(stored), ...Object.keys(sent)])) {
    const [was, now] = [address(stored, setting), address(sent, setting)];
    if ((was !== null || now !== null) && was !== now && sent[setting] !== stored[setting]) {
      return { setting, was: was ?? 'its default', now: now ?? (setting in sent ? 'another value' : 'its default') };
    }
  }
  return null;
}

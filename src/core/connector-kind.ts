/**
 * A connector kind: everything Lockstep knows of one kind of source or destination, declared in one
 * place by its folder under `src/connectors/` and registered once by the composition root. The core
 * names no kind; it reads these declarations.
 */
import type { z } from 'zod';
import type { BackoffPolicy } from './backoff.js';
import type { AuditLogWriter } from './audit-log.js';
import type { Clock, Destination, DestinationCapabilities, Logger, RateLimiter, Source } from './ports.js';

/** What a connector gets besides its settings when it opens. */
export interface ConnectorContext {
  /** The connection's slug, for messages. */
  slug: string;
  /** The folder relative paths are resolved against: the workspace folder. */
  baseDir: string;
  clock: Clock;
  logger: Logger;
  /** How calls to the peer are retried (the process's policy). */
  backoff: BackoffPolicy;
  /**
   * The values the connection's settings read from the environment (`${VAR}`): a connector that
   * shows text from its peer (an answer echoing a token) hides them, and their secret parts when a
   * value is a URL (core/connections.ts `secretTexts`).
   */
  secretValues: readonly string[];
  /**
   * Lockstep's own files (absolute) that no connection may read, though they lie in a folder it
   * reads: the embedded store's file and its key file (default: none).
   */
  protectedFiles?: readonly string[];
  /**
   * The rate limiter shared by every run writing through this connection in this process, made
   * on first use with these limits (later calls share its budget). Opened for a run, the limiter
   * reports the time its requests wait for their turn to that run's phase clock.
   */
  rateLimiter(limits: RateLimits): RateLimiter;
}

export interface RateLimits {
  /** Requests started per second at most (null: no limit). */
  requestsPerSecond: number | null;
  /** Requests under way at once at most (null: no limit). */
  concurrency: number | null;
}

/** The source side of a kind. */
export interface SourceKind<S> {
  open(settings: S, context: ConnectorContext): Promise<Source>;
}

/** The destination side of a kind. */
export interface DestinationKind<S, Y> {
  /** What every destination of the kind can do. */
  capabilities: DestinationCapabilities;
  /**
   * The settings a sync writing to this kind may add next to its own fields (e.g. an HTTP
   * destination's `method` and `body`), validated strictly; `validate` reports its messages at the
   * sync. Kinds without any omit it, and a sync to them may set none.
   */
  syncSettings?: z.ZodType<Y>;
  /**
   * How a sync's `object` is checked for this kind at `validate` (e.g. an HTTP path, a Liquid
   * template); default: any text.
   */
  object?: z.ZodType<string>;
  /**
   * What a sync of this kind needs given how it writes, checked at `validate`: a problem (or a
   * list of them), the sync field to show it at (`at`, e.g. `mode`, or a path such as
   * `['associations', 0, 'lookup']`) and how to fix it, or null (e.g. a mirror sync to an HTTP API
   * needs a delete request).
   * `settings` are the sync's kind settings as written; `destination` is the sync's destination and
   * `syncOf` tells where another sync of the workspace writes (undefined when it is not declared).
   */
  checkSync?(sync: {
    /** The sync's `object` as written (undefined when it is not a string). */
    object?: string;
    mode: string;
    deleteBehavior: string;
    settings: Record<string, unknown>;
    destination: string;
    syncOf: (slug: string) => { destination: string; object: string } | undefined;
  }): SyncProblem | SyncProblem[] | null;
  open(settings: S, context: ConnectorContext): Promise<Destination>;
}

/** A problem `checkSync` finds: where in the sync (a field, or a path), what, and the fix. */
export interface SyncProblem {
  at: string | Array<string | number>;
  message: string;
  hint: string;
}

export interface ConnectorKind<S = unknown, Y = unknown> {
  /** The `type` a workspace writes, e.g. `mysql`. */
  type: string;
  /** One line for lists and the JSON Schema. */
  description: string;
  /**
   * The connection's settings besides `type`, as a strict zod object. It validates the settings
   * after `${ENV}` templates are resolved (at `validate` when the variables are set, and when a run
   * connects), fills defaults, and its field descriptions go into the JSON Schema.
   */
  settings: z.ZodType<S>;
  /**
   * Settings that hold secrets: never logged, shown as `***` by the API (a value that is only an
   * `${ENV}` template is shown, it names a variable). A URL shows with only its password hidden; an
   * object (headers) has each value hidden.
   */
  secrets: readonly string[];
  /** Settings that are file paths, resolved against the workspace folder. */
  paths?: readonly string[];
  /** A connection of this kind in YAML flow style, for hints and `init`, e.g. `{ type: mysql, url: "${CRM_URL}" }`. */
  example: string;
  source?: SourceKind<S>;
  destination?: DestinationKind<S, Y>;
  /**
   * Opens the audit log a connection of this kind keeps when its settings have `auditLog` (default:
   * the kind keeps none, and its settings schema has no `auditLog`).
   */
  auditLog?: { open(settings: S, context: ConnectorContext): Promise<AuditLogWriter | null> };
  /**
   * Loads the kind's driver or client ahead of its first `open` (default: nothing to load): a process
   * warms the kinds its workspace uses while it starts, so its first run does not wait for them.
   */
  preload?: () => Promise<unknown>;
}

/** The roles a connection plays in a workspace. */
export type ConnectorRole = 'source' | 'destination';

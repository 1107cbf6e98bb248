/**
 * Lockstep's few error classes. Expected outcomes (a rejected row, a failed run) are data, not
 * exceptions; these are for conditions the caller cannot go on from.
 */

/** Machine-readable error codes, each naming a kind of failure a caller may branch on. */
export const ErrorCode = {
  /** A workspace file, API body or argument is invalid; the message says what and where. */
  Validation: 'validation',
  /** A referenced entity (sync, sequence, run) does not exist. */
  NotFound: 'not_found',
  /** The operation conflicts with the current state (e.g. cancelling a finished run). */
  Conflict: 'conflict',
  /** A source or destination could not be reached or refused the connection. */
  Connection: 'connection',
  /** A query against a source failed. */
  Query: 'query',
  /** The destination object or its columns do not match what the sync needs. */
  Schema: 'schema',
  /** A transient failure (timeout, serialization failure, 429/5xx); safe to retry. */
  Transient: 'transient',
  /** The store could not be read or written. */
  Store: 'store',
  /**
   * A write of a run's attempt refused: its lease expired and another worker took the run over
   * (fencing). The attempt stops; nothing it wrote after that counts.
   */
  LeaseLost: 'lease_lost',
  /** Anything else; a bug or an unexpected condition. */
  Internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface LockstepErrorOptions {
  /** Whether retrying the same operation may succeed (default: false). */
  retryable?: boolean;
  /** The underlying error. */
  cause?: unknown;
  /** Seconds the remote side asked us to wait before retrying (HTTP Retry-After). */
  retryAfterSeconds?: number;
  /**
   * The words of the message that say where the store is (`store PostgreSQL at host:5432/db as
   * user`, `store /var/lib/lockstep.db`): left out where the message is shown to any API token.
   */
  location?: string;
}

export class LockstepError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterSeconds: number | undefined;
  /** See LockstepErrorOptions.location. */
  readonly location: string | undefined;

  constructor(code: ErrorCode, message: string, options: LockstepErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LockstepError';
    this.code = code;
    this.retryable = options.retryable ?? code === ErrorCode.Transient;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.location = options.location;
  }
}

/**
 * A store's error as any API token may read it: its message with the store's location (host,
 * database, user, file) said as "the store", so the cause and its fix stay (a full disk, a lock held
 * past the statement timeout). Null when `thrown` is not the store's error.
 */
export function storeErrorForReaders(thrown: unknown): string | null {
  for (let error: unknown = thrown; error instanceof Error; error = error.cause) {
    if (!(error instanceof LockstepError) || error.code !== ErrorCode.Store) continue;
    const { message, location } = error;
    return location !== undefined && message.includes(location) ? message.split(location).join('the store') : 'the store could not be read or written';
  }
  return null;
}

export class NotFoundError extends LockstepError {
  constructor(message: string) {
    super(ErrorCode.NotFound, message);
    this.name = 'NotFoundError';
  }
}

/** One problem found while validating input, located as precisely as we can. */
export interface Diagnostic {
  /** File the problem is in, relative to the workspace folder, when it comes from a file. */
  file?: string;
  /** 1-based line in that file. */
  line?: number;
  /** 1-based column in that file. */
  column?: number;
  /** Path of the offending value inside the document, e.g. `syncs.contacts.model`. */
  path: string;
  /** What is wrong, naming the offending value. */
  message: string;
  /** How to fix it, when we can tell. */
  hint?: string;
}

export class ValidationError extends LockstepError {
  readonly diagnostics: Diagnostic[];

  constructor(diagnostics: Diagnostic[], summary?: string) {
    super(ErrorCode.Validation, summary ?? formatDiagnostics(diagnostics));
    this.name = 'ValidationError';
    this.diagnostics = diagnostics;
  }
}

/** `file:line:column: path: message (hint)` — one diagnostic per line. */
export function formatDiagnostics(diagnostics: Diagnostic[]): string {
  return diagnostics.map(formatDiagnostic).join('\n');
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}` : ''}${d.column ? `:${d.column}` : ''}: ` : '';
  const at = d.path ? `${d.path}: ` : '';
  return `${where}${at}${d.message}${d.hint ? ` — ${d.hint}` : ''}`;
}

/** Turns anything thrown into an Error, so every catch can rely on `.message`. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(JSON.stringify(thrown));
  } catch {
    return new Error(String(thrown));
  }
}

/** Ends every exhaustive switch: a compile error when a case is missing, a throw if reached. */
export function assertNever(value: never): never {
  throw new LockstepError(ErrorCode.Internal, `unexpected value: ${JSON.stringify(value)}`);
}

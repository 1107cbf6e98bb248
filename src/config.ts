/**
 * Environment + flags + the workspace's `store` setting → one resolved configuration, every default
 * filled in. Inner code never sees an optional setting.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ENV_ALLOW_SETTING, EnvAllowList, blankTemplateNames, interpolate, redactUrl, withEnvAllowList, type TemplateEnv } from './core/connections.js';
import { ErrorCode, LockstepError } from './core/errors.js';
import { splitHint } from './core/hints.js';
import { urlProblems } from './core/url-setting.js';
import { processHost } from './core/hosts.js';
import type { LogLevel } from './core/logger.js';
import type { RetryPolicy } from './engine/sync-runner.js';
import { DEFAULT_BACKOFF } from './core/backoff.js';
import { DEFAULT_ALERT_RETRY, type AlertRetryPolicy } from './engine/alert-dispatcher.js';
import { DEFAULT_WEBHOOK_RETENTION, type WebhookRetention } from './core/webhooks.js';

export type StoreConfig = { type: 'sqlite'; path: string } | { type: 'postgres'; url: string };

export interface LockstepConfig {
  /** The folder holding lockstep.yaml; relative paths resolve against it. */
  workspaceDir: string;
  store: StoreConfig;
  logLevel: LogLevel;
  /** Sync runs executing at once in one process (default: 8, env LOCKSTEP_CONCURRENCY). */
  maxConcurrentRuns: number;
  /** How often a worker looks for work queued by other processes, ms (default: 1000). */
  pollIntervalMs: number;
  /**
   * How long a worker's claim on a run holds without a heartbeat, ms (default: 30 s, env
   * LOCKSTEP_LEASE_SECONDS). A run whose worker died is taken over by another once it ends.
   */
  leaseMs: number;
  /** This process's worker id among those sharing the store (default: host/pid/random, env LOCKSTEP_WORKER_ID). */
  workerId: string;
  /** Rows read from a source per batch (default: 1000: small batches die young, which keeps garbage collection cheap). */
  readBatchSize: number;
  /**
   * Memory, in bytes, the sync runs of this process may use together to hold their snapshots while
   * planning (about 40 bytes per row plus the keys' text); a snapshot that does not fit what is
   * left is looked up in the store per batch (default:
   * 128 MiB, env LOCKSTEP_SNAPSHOT_INDEX_MB in MiB; 0 always looks up).
   */
  snapshotIndexBytes: number;
  /**
   * Memory, in bytes, a sync run may use to remember the keys it has seen (16 to 32 bytes per key);
   * beyond it they go to a temporary file in `spoolDir` (default: 64 MiB, env LOCKSTEP_KEY_SET_MB in
   * MiB, fractions allowed).
   */
  keySetBytes: number;
  retry: RetryPolicy;
  /** Folder for temporary files (default: the OS temp folder, env LOCKSTEP_SPOOL_DIR): the keys a sync run has seen, beyond `keySetBytes`. */
  spoolDir: string;
  /**
   * Base URL of the web UI, for links in alerts (env LOCKSTEP_PUBLIC_URL), or null when it is not set:
   * a process that serves the UI then links to the address it listens on, and one that does not
   * (a worker) to http://127.0.0.1:3000.
   */
  publicUrl: string | null;
  /** Retries of failed alert deliveries (first delay from env LOCKSTEP_ALERT_RETRY_MS, default: 5000). */
  alertRetry: AlertRetryPolicy;
  /** How much of the webhook delivery log is kept (env LOCKSTEP_WEBHOOK_REFUSED_KEEP, LOCKSTEP_WEBHOOK_RETENTION_DAYS; see WebhookRetention). */
  webhookRetention: WebhookRetention;
  /**
   * Environment `${VAR}` templates resolve from, with the allow-list of the variables entities created
   * through the API may read attached (env LOCKSTEP_ENV_ALLOW, default: none; see core/connections.ts).
   */
  env: TemplateEnv;
}

export interface ConfigInput {
  workspaceDir?: string;
  /** The workspace file's `store` section, if any. */
  storeSetting?: StoreConfig | null;
  /** `--store` flag: a file path (relative to the current folder) or a postgres:// URL. */
  storeFlag?: string;
  logLevel?: string;
  env?: Record<string, string | undefined>;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function resolveConfig(input: ConfigInput = {}): LockstepConfig {
  const env = input.env ?? process.env;
  const workspaceDir = resolve(input.workspaceDir ?? env.LOCKSTEP_WORKSPACE ?? process.cwd());
  let store: StoreConfig;
  // A path typed on the command line is relative to where it is typed; LOCKSTEP_STORE's to the workspace.
  if (input.storeFlag) store = parseStore(input.storeFlag, process.cwd(), '--store');
  else if (env.LOCKSTEP_STORE) store = parseStore(env.LOCKSTEP_STORE, workspaceDir, 'LOCKSTEP_STORE');
  else if (input.storeSetting) {
    store =
      input.storeSetting.type === 'postgres'
        ? { type: 'postgres', url: storeUrl(input.storeSetting.url, env) }
        : { type: 'sqlite', path: absolute(input.storeSetting.path, workspaceDir) };
  } else store = { type: 'sqlite', path: join(workspaceDir, 'lockstep.db') };

  const logLevel = (input.logLevel ?? env.LOCKSTEP_LOG_LEVEL ?? 'warn') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new LockstepError(ErrorCode.Validation, `log level "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    workspaceDir,
    store,
    logLevel,
    maxConcurrentRuns: positiveInt(env.LOCKSTEP_CONCURRENCY, 8, 'LOCKSTEP_CONCURRENCY'),
    pollIntervalMs: positiveInt(env.LOCKSTEP_POLL_MS, 1000, 'LOCKSTEP_POLL_MS'),
    leaseMs: positiveInt(env.LOCKSTEP_LEASE_SECONDS, 30, 'LOCKSTEP_LEASE_SECONDS') * 1000,
    workerId: env.LOCKSTEP_WORKER_ID || newWorkerId(),
    readBatchSize: positiveInt(env.LOCKSTEP_READ_BATCH, 1000, 'LOCKSTEP_READ_BATCH'),
    snapshotIndexBytes: positiveInt(env.LOCKSTEP_SNAPSHOT_INDEX_MB, 128, 'LOCKSTEP_SNAPSHOT_INDEX_MB', 0) * 1024 * 1024,
    keySetBytes: Math.round(positiveMegabytes(env.LOCKSTEP_KEY_SET_MB, 64, 'LOCKSTEP_KEY_SET_MB') * 1024 * 1024),
    retry: DEFAULT_BACKOFF,
    spoolDir: env.LOCKSTEP_SPOOL_DIR ?? tmpdir(),
    publicUrl: publicUrl(env.LOCKSTEP_PUBLIC_URL),
    alertRetry: {
      ...DEFAULT_ALERT_RETRY,
      baseDelayMs: positiveInt(env.LOCKSTEP_ALERT_RETRY_MS, DEFAULT_ALERT_RETRY.baseDelayMs, 'LOCKSTEP_ALERT_RETRY_MS'),
    },
    webhookRetention: {
      refusedKept: positiveInt(env.LOCKSTEP_WEBHOOK_REFUSED_KEEP, DEFAULT_WEBHOOK_RETENTION.refusedKept, 'LOCKSTEP_WEBHOOK_REFUSED_KEEP'),
      retentionDays: positiveInt(env.LOCKSTEP_WEBHOOK_RETENTION_DAYS, DEFAULT_WEBHOOK_RETENTION.retentionDays, 'LOCKSTEP_WEBHOOK_RETENTION_DAYS', 0),
    },
    env: withEnvAllowList(env, EnvAllowList.parse(env[ENV_ALLOW_SETTING])),
  };
}

/**
 * The workspace's store URL with its templates resolved. A variable exported empty is refused here:
 * an empty connection string would reach whatever PostgreSQL the driver's defaults point at.
 */
function storeUrl(setting: string, env: TemplateEnv): string {
  const url = interpolate(setting, env, 'store');
  const blank = blankTemplateNames(setting, env);
  if (blank.length > 0) {
    const name = blank[0] as string;
    throw new LockstepError(
      ErrorCode.Validation,
      `store uses \${${name}}, but the environment variable ${name} is empty — export ${name}=postgres://user:password@host:5432/database before running Lockstep`,
    );
  }
  return url;
}

/** `host/pid/random`: a worker on this host whose pid is gone is known dead at once (engine/worker.ts). */
export function newWorkerId(): string {
  return `${processHost()}/${process.pid}/${randomBytes(3).toString('hex')}`;
}

/** `base`: the folder a relative path resolves against; `from`: the flag or variable `text` came from, for the message. */
function parseStore(text: string, base: string, from: string): StoreConfig {
  if (/^postgres(ql)?:\/\//.test(text)) {
    // A password holding #, / or ? unencoded splits the URL elsewhere than meant: the store would be
    // looked for on a host made of part of the password, which the error would then show.
    const [problem] = urlProblems(text, ['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/database', from);
    if (problem) {
      const { message, hint } = splitHint(problem);
      throw new LockstepError(ErrorCode.Validation, hint ? `${message} — ${hint}` : message);
    }
    return { type: 'postgres', url: text };
  }
  // Another scheme would otherwise be taken for a file path: a folder named after the URL, password included.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new LockstepError(
      ErrorCode.Validation,
      `${from} "${redactUrl(text)}" is neither a postgres:// URL nor a file path — give postgres://user:password@host:5432/database for a PostgreSQL store, or the path of the embedded store's file`,
    );
  }
  return { type: 'sqlite', path: absolute(text, base) };
}

function absolute(path: string, base: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}

function positiveInt(text: string | undefined, fallback: number, name: string, min = 1): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    const what = min === 0 ? 'a whole number (0 or more)' : 'a positive integer';
    throw new LockstepError(ErrorCode.Validation, `${name}=${text} is not ${what} — unset it or give a whole number like ${fallback}`);
  }
  return n;
}

/** A size in MiB, fractions allowed (e.g. 0.5). */
function positiveMegabytes(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new LockstepError(ErrorCode.Validation, `${name}=${text} is not a size in MiB — unset it or give a number more than 0 like ${fallback}`);
  }
  return n;
}

/** The UI's base URL, checked once: alerts link to runs under it. */
function publicUrl(value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  if (!/^https?:\/\/[^/]+/.test(value)) {
    throw new LockstepError(ErrorCode.Validation, `LOCKSTEP_PUBLIC_URL=${value} is not an http(s) URL — set it to where users open Lockstep, e.g. https://lockstep.example.com`);
  }
  return value.replace(/\/+$/, '');
}

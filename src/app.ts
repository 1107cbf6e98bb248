/**
 * The composition root: the only file that names concrete stores and connectors.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { AlignedClock, systemClock } from './core/clock.js';
import { toError, type LockstepError } from './core/errors.js';
import { createJsonLogger, silentLogger } from './core/logger.js';
import type { Clock, Connectors, Logger, Store } from './core/ports.js';
import { isTimedSchedule, type Schedule, type WorkspaceState } from './core/workspace.js';
import type { LockstepConfig } from './config.js';
import { ConnectorRegistry } from './core/connector-registry.js';
import type { BackoffPolicy } from './core/backoff.js';
import { createRateLimiter } from './connectors/rate-limiter.js';
import { postgresConnector } from './connectors/postgres/kind.js';
import { mysqlConnector } from './connectors/mysql/kind.js';
import { sqliteConnector } from './connectors/sqlite/kind.js';
import { duckdbConnector } from './connectors/duckdb/kind.js';
import { httpConnector } from './connectors/http/kind.js';
import { salesforceConnector } from './connectors/salesforce/kind.js';
import { hubspotConnector } from './connectors/hubspot/kind.js';
import { EngineEventEmitter } from './engine/events.js';
import { Scheduler, type ScheduleEntry } from './engine/scheduler.js';
import { SyncRunner } from './engine/sync-runner.js';
import { SequencePlanner } from './engine/sequence-planner.js';
import { UpstreamTriggers } from './engine/upstream-triggers.js';
import { AuditLogAppender } from './engine/audit-log-appender.js';
import { AlertDispatcher } from './engine/alert-dispatcher.js';
import { AlertMonitor } from './engine/alert-monitor.js';
import { resolveAlertChannel, type AlertChannel, type AlertChannelDef } from './core/alerts.js';
import { EmailChannel } from './connectors/alert-channels/email-channel.js';
import { PagerDutyChannel } from './connectors/alert-channels/pagerduty-channel.js';
import { SlackChannel } from './connectors/alert-channels/slack-channel.js';
import { WebhookChannel } from './connectors/alert-channels/webhook-channel.js';
import { Worker } from './engine/worker.js';
import { RunService } from './engine/run-service.js';
import { SequenceRunner } from './engine/sequence-runner.js';
import { FinishedRunRelay } from './engine/finished-run-relay.js';
import { SqliteStore, isNotWritable } from './store/sqlite/sqlite-store.js';
import { NEW_KEY_HINT, SecretCodec, type SecretKeys, type SecretResealer } from './core/secrets.js';
import { redactUrl } from './core/connections.js';
import {
  NEW_SECRET_KEY_ENV,
  SECRET_KEY_ENV,
  StoreSecretKeys,
  keyFileFor,
  previousKeyFile,
  rotateSecretKey,
  type KeyText,
  type SecretRotation,
} from './store/secret-keys.js';
import { resolve } from 'node:path';
import type { CopySummary, CopyToPostgresOptions } from './store/copy-to-postgres.js';
import type { MetricsServer } from './api/metrics-server.js';
import type { ProcessActivity } from './api/health-routes.js';
import type { ApiServer } from './api/server.js';

export interface OpenStoreOptions {
  /** The keys that seal and open the store's secrets (default: LOCKSTEP_SECRET_KEY, else the embedded store's key file). */
  secretKeys?: SecretKeys;
  /**
   * Told when a secret is written unencrypted (a PostgreSQL store without LOCKSTEP_SECRET_KEY), and
   * when a PostgreSQL store's notifications connection is lost (default: nobody).
   */
  logger?: Logger;
  /**
   * An embedded store whose file or folder cannot be written is opened read-only instead of refused,
   * for commands that only read (default: false). It must then be at the current schema.
   */
  readOnlyFallback?: boolean;
}

/**
 * Opens the configured store (running its migrations). The secrets it keeps — the settings each
 * connector kind marks secret, alert channel and webhook secrets — are sealed with the store's key
 * (see store/secret-keys.ts): a store whose key is missing or wrong is refused here.
 */
export async function openStore(config: LockstepConfig, options: OpenStoreOptions = {}): Promise<Store & SecretResealer> {
  const registry = createConnectorRegistry();
  const logger = options.logger;
  let warned = false;
  const secrets = new SecretCodec({
    keys: options.secretKeys ?? storeSecretKeys(config, logger),
    secretSettings: (type) => registry.kind(type)?.secrets ?? [],
    onUnsealed: (where) => {
      // An embedded store always has a key (its key file); `:memory:` keeps nothing at rest.
      if (warned || !logger || config.store.type !== 'postgres') return;
      warned = true;
      logger.warn(
        `${where} is kept unencrypted in the store: ${SECRET_KEY_ENV} is not set — set it in every process using the store (${NEW_KEY_HINT}); what is already kept is encrypted when next written, or at once by \`lockstep secrets rotate --new-key <that key>\``,
      );
    },
  });
  switch (config.store.type) {
    case 'sqlite':
      try {
        return await SqliteStore.open({ path: config.store.path, secrets });
      } catch (error) {
        if (!options.readOnlyFallback || !isNotWritable(error)) throw error;
        return SqliteStore.open({ path: config.store.path, secrets, readOnly: true });
      }
    case 'postgres': {
      // The PostgreSQL driver and the store's SQL load only in processes that use that store.
      const { PostgresStore } = await import('./store/postgres/postgres-store.js');
      // A process frozen inside a store transaction frees its locks within a lease.
      return PostgresStore.open({ url: config.store.url, secrets, idleInTransactionMs: config.leaseMs, logger });
    }
  }
}

/**
 * The keys of the configured store: LOCKSTEP_SECRET_KEY when set, else the embedded store's key
 * file. The logger is told which key an embedded store's first secret is sealed with when that is
 * the variable's.
 */
function storeSecretKeys(config: LockstepConfig, logger: Logger | undefined): StoreSecretKeys {
  return new StoreSecretKeys({
    store: storeName(config),
    key: currentSecretKey(config),
    keyFile: storeKeyFile(config),
    onFirstSealed: (message) => logger?.warn(message),
  });
}

function currentSecretKey(config: LockstepConfig): KeyText | undefined {
  const text = config.env[SECRET_KEY_ENV];
  return text ? { text, source: SECRET_KEY_ENV } : undefined;
}

function storeKeyFile(config: LockstepConfig): string | null {
  return config.store.type === 'sqlite' ? keyFileFor(config.store.path === ':memory:' ? ':memory:' : resolve(config.store.path)) : null;
}

/**
 * The embedded store's files, which no connection may read (a DuckDB model's query reaches files in
 * the workspace folder, where they are): the store with its journals, and its key files.
 */
function storeFiles(config: LockstepConfig): string[] {
  const keyFile = storeKeyFile(config);
  if (config.store.type !== 'sqlite' || keyFile === null) return [];
  const path = resolve(config.store.path);
  return [path, `${path}-wal`, `${path}-shm`, `${path}-journal`, keyFile, previousKeyFile(keyFile)];
}

/**
 * Whether the configured store was created: an embedded store's file exists, a PostgreSQL store's
 * schema holds its tables. Opening a store creates it.
 */
export async function storeCreated(config: LockstepConfig): Promise<boolean> {
  if (config.store.type === 'sqlite') return config.store.path === ':memory:' || existsSync(config.store.path);
  const { PostgresStore } = await import('./store/postgres/postgres-store.js');
  return PostgresStore.exists({ url: config.store.url });
}

/** The store for messages: its file, or its URL without the password. */
export function storeName(config: LockstepConfig): string {
  return config.store.type === 'sqlite' ? resolve(config.store.path) : redactUrl(config.store.url);
}

/** Says that the store was not created yet (see storeCreated), where it was looked for, and what creates it. */
export function noStoreYet(config: LockstepConfig): string {
  return `No store yet at ${storeName(config)}: nothing was applied or run with it — \`lockstep apply\` creates it.`;
}

/**
 * `lockstep secrets rotate`: every secret of the configured store sealed again under a new key, in
 * one transaction — `newKey` (`--new-key`), else LOCKSTEP_NEW_SECRET_KEY, else (an embedded store
 * keyed by its key file) a generated one kept in the key file.
 */
export async function rotateStoreSecrets(config: LockstepConfig, newKey?: string): Promise<SecretRotation> {
  const given = newKey ? { text: newKey, source: '--new-key' } : config.env[NEW_SECRET_KEY_ENV] ? { text: config.env[NEW_SECRET_KEY_ENV], source: NEW_SECRET_KEY_ENV } : undefined;
  return rotateSecretKey({
    store: storeName(config),
    keyFile: storeKeyFile(config),
    currentKey: currentSecretKey(config),
    newKey: given,
    open: (secretKeys) => openStore(config, { secretKeys }),
  });
}

export { NEW_SECRET_KEY_ENV, SECRET_KEY_ENV, type SecretRotation } from './store/secret-keys.js';

/** Copies an embedded store into a PostgreSQL store (`lockstep store migrate`); its code loads only then. */
export async function copyStoreToPostgres(options: CopyToPostgresOptions): Promise<CopySummary> {
  const { copyToPostgres } = await import('./store/copy-to-postgres.js');
  return copyToPostgres(options);
}
export type { CopyProgress, CopySummary, CopyToPostgresOptions } from './store/copy-to-postgres.js';

/**
 * Every connector kind this build knows, registered once. Adding a kind is its folder under
 * `src/connectors/` (its `kind.ts` declares it) and its line here. A kind's declaration is light;
 * its driver or client loads when a connection of the kind is first opened.
 */
export function createConnectorRegistry(options: { clock?: Clock; logger?: Logger; backoff?: BackoffPolicy; protectedFiles?: readonly string[] } = {}): ConnectorRegistry {
  return new ConnectorRegistry({
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
    backoff: options.backoff,
    protectedFiles: options.protectedFiles,
    createRateLimiter,
  })
    .register(postgresConnector)
    .register(mysqlConnector)
    .register(sqliteConnector)
    .register(duckdbConnector)
    .register(httpConnector)
    .register(salesforceConnector)
    .register(hubspotConnector);
}


/** Opens an alert channel of any kind this build knows, its `${ENV}` templates resolved from `env`. */
export function openAlertChannel(def: AlertChannelDef, env: Record<string, string | undefined>): AlertChannel {
  const c = resolveAlertChannel(def, env);
  switch (c.type) {
    case 'slack':
      return new SlackChannel({ name: c.name, url: c.url });
    case 'webhook':
      return new WebhookChannel({ name: c.name, url: c.url, headers: c.headers, secret: c.secret });
    case 'email':
      return new EmailChannel({ name: c.name, smtp: c.smtp, from: c.from, to: c.to });
    case 'pagerduty':
      return new PagerDutyChannel({ name: c.name, routingKey: c.routingKey, url: c.url });
  }
}

export interface App {
  config: LockstepConfig;
  /** The connector kinds, for validating workspaces and opening connections. */
  registry: ConnectorRegistry;
  store: Store;
  /** Queues, cancels and waits for runs: what the API, the CLI, the scheduler and webhooks call. */
  runs: RunService;
  /** Claims and executes runs in this process, once started. */
  worker: Worker;
  /** Dry runs of sequences: plans computed without sending anything or changing anything stored. */
  planner: SequencePlanner;
  scheduler: Scheduler;
  events: EngineEventEmitter;
  logger: Logger;
  clock: Clock;
  /**
   * Sends alert notices from the outbox (`sendTestAlert` too). It starts with the first run this
   * process works on (or by `alerts.start()`); notices queued here are sent once more on `close()`.
   */
  alerts: AlertDispatcher;
  /** Checks finished runs against the alert rules. */
  alertMonitor: AlertMonitor;
  /**
   * Starts the scheduler, re-reading the schedules every `reloadMs` so changes applied by another
   * process (`lockstep apply`) take effect without a restart (default: 5000).
   */
  startScheduler(reloadMs?: number): Promise<void>;
  /** Serves the API, the web UI, metrics and health checks; resolves with the URL. `close()` stops it. */
  startServer(settings: ServerSettings): Promise<{ url: string }>;
  /**
   * Serves this process's `/metrics`, `/healthz` and `/readyz` alone, for `worker` and `scheduler`
   * (serve answers them on its own port); resolves with the URL. `close()` stops it.
   */
  startMetricsServer(settings: { port: number; host: string }): Promise<{ url: string }>;
  /** What this process runs now: its worker once started, the scheduler once started. */
  activity(): ProcessActivity;
  /**
   * Watches the store for a migration by a newer Lockstep while this process runs (a rolling
   * upgrade), from the first call until `close()`: resolves with the refusal to go on, naming both
   * schema versions and the fix, once logged as an error; never resolves while the store stays at
   * the version this code knows. A long-running process stops on it.
   */
  newerSchema(): Promise<LockstepError>;
  close(): Promise<void>;
}

export interface ServerSettings {
  port: number;
  host: string;
  /** Whether the API needs a token; false is refused on a non-loopback host. */
  authRequired: boolean;
  /** The built web UI folder, or null to serve none. */
  uiDir: string | null;
}

export interface AppOverrides {
  clock?: Clock;
  logger?: Logger;
  /** Wraps the real connectors (tests inject faults this way). */
  connectors?: (real: ConnectorRegistry) => Connectors;
  store?: Store;
  /** See OpenStoreOptions.readOnlyFallback (default: false). */
  readOnlyFallback?: boolean;
}

/**
 * Refuses a port the server could not listen on, naming the port and how to choose another, before
 * a command's slow work (the demo) rather than after it; the server's code loads only then.
 */
export async function checkPortFree(port: number, host: string): Promise<void> {
  const { checkPortFree: check } = await import('./api/listen-http.js');
  await check(port, host);
}

/** Wires store, connectors, runners, run service, worker and scheduler. Nothing starts until `worker.start()` / `scheduler.start()`. */
export async function createApp(config: LockstepConfig, overrides: AppOverrides = {}): Promise<App> {
  const logger = overrides.logger ?? createJsonLogger({ level: config.logLevel, write: (line) => process.stderr.write(line + '\n') });
  const store = overrides.store ?? (await openStore(config, { logger, readOnlyFallback: overrides.readOnlyFallback }));
  const storeClock = overrides.clock ? null : await keepToStoreTime(store, config, logger);
  const clock = overrides.clock ?? storeClock?.clock ?? systemClock;
  const events = new EngineEventEmitter(logger);
  const registry = createConnectorRegistry({ clock, logger, backoff: config.retry, protectedFiles: storeFiles(config) });
  // The drivers of the kinds the workspace uses load while the process starts, not in its first
  // run; a worker waits for them (those of a workspace applied since too) before it takes work.
  // A worker also readies the store's snapshot writes (the SQLite store's write thread, which starts
  // on another core meanwhile) when a sync may keep its snapshot there (its source is not set to
  // `planner: warehouse`).
  const preloadWorkspace = async (writes: boolean) => {
    const workspace = await store.loadWorkspace();
    await Promise.all([
      registry.preload([...workspace.sources, ...workspace.destinations].map((connection) => connection.type)),
      writes && snapshotsInStore(workspace) ? store.snapshots.prepareWrites?.() : undefined,
    ]);
  };
  preloadWorkspace(false).catch(() => undefined);
  const connectors = overrides.connectors ? overrides.connectors(registry) : registry;
  const runnerOptions = {
    clock,
    logger,
    baseDir: config.workspaceDir,
    env: config.env,
    retry: config.retry,
    readBatchSize: config.readBatchSize,
    snapshotIndexBytes: config.snapshotIndexBytes,
    keySetBytes: config.keySetBytes,
    spoolDir: config.spoolDir,
  };
  const syncRunner = new SyncRunner({ store, connectors, ...runnerOptions });
  const planner = new SequencePlanner({ store, connectors, runner: runnerOptions });
  const lease = { workerId: config.workerId, leaseMs: config.leaseMs };
  const finishedRuns = new FinishedRunRelay({ store, clock, logger, lease, pollIntervalMs: config.pollIntervalMs });
  // The sequence runner starts and stops the members it decides on through this process's worker,
  // and the worker advances sequence runs through it: each calls the other once both exist.
  const sequences: SequenceRunner = new SequenceRunner({
    store,
    clock,
    logger,
    claim: (sequenceRunId) => worker.memberClaim(sequenceRunId),
    startSyncRuns: (memberRuns, sequenceRun) => worker.startMemberRuns(memberRuns, sequenceRun),
    cancelSyncRun: async (id) => worker.cancelExecution(id),
    onUpdate: (run) => worker.sequenceRunChanged(run),
  });
  const worker = new Worker({
    store,
    syncRunner,
    sequences,
    clock,
    logger,
    events,
    maxConcurrentRuns: config.maxConcurrentRuns,
    pollIntervalMs: config.pollIntervalMs,
    ...lease,
    finishedRuns,
    prepare: () => preloadWorkspace(true),
  });
  const runs = new RunService({ store, clock, logger, events, worker, sequences, finishedRuns });
  const scheduler = new Scheduler({
    store: store.schedules,
    clock,
    logger,
    listSchedules: async () => scheduleEntries(await store.loadWorkspace()),
    fire: async (entry, _dueTime, firingKey) => {
      const [kind, slug] = splitScheduleId(entry.id);
      // The schedules are read again only every reload: another process (an apply, another server's
      // API) may have disabled the sync or sequence, or changed its schedule, since. Then it does not fire.
      const unchanged = (stored: { enabled: boolean; schedule: Schedule }) => stored.enabled && JSON.stringify(stored.schedule) === JSON.stringify(entry.schedule);
      return (await runs.queueFiredRun(firingKey, { kind, slug }, { type: 'schedule', detail: firingKey }, unchanged)) !== null;
    },
  });
  const upstream = new UpstreamTriggers({
    store,
    finishedRuns,
    clock,
    logger,
    queue: (key, target, trigger) => runs.queueFiredRun(key, target, trigger),
  });
  const auditLog = new AuditLogAppender({
    store,
    finishedRuns,
    open: (connection) => registry.openAuditLog(connection),
    baseDir: config.workspaceDir,
    env: config.env,
    clock,
    logger,
    // A failing audit log is tried again when the relay hands its runs over again: after a lease.
    backoffMs: config.leaseMs,
  });
  const alerts = new AlertDispatcher({
    store: store.alerts,
    clock,
    logger,
    retry: config.alertRetry,
    openChannel: (def) => openAlertChannel(def, config.env),
  });
  let alertsQueued = false;
  // Where alert links point: LOCKSTEP_PUBLIC_URL, else the address this process serves on once it listens.
  let publicUrl = config.publicUrl ?? DEFAULT_PUBLIC_URL;
  const alertMonitor = new AlertMonitor({
    store,
    finishedRuns,
    clock,
    logger,
    publicUrl: () => publicUrl,
    onQueued: () => {
      alertsQueued = true;
      alerts.kick();
    },
  });
  // The outbox is worked on by processes that run work: from the first run they touch.
  const stopWatchingRuns = events.on('syncRun:updated', () => {
    stopWatchingRuns();
    alerts.start();
  });
  let reloadTimer: NodeJS.Timeout | null = null;
  let schedulerStarted = false;
  let server: ApiServer | null = null;
  let metricsServer: MetricsServer | null = null;
  let schemaWatch: { refused: Promise<LockstepError>; stop(): void } | null = null;
  const activity = (): ProcessActivity => ({ workerId: worker.running ? worker.workerId : null, scheduler: schedulerStarted });
  return {
    config,
    registry,
    store,
    runs,
    worker,
    planner,
    scheduler,
    events,
    logger,
    clock,
    alerts,
    alertMonitor,
    async startScheduler(reloadMs = 5000) {
      await scheduler.start();
      schedulerStarted = true;
      reloadTimer = setInterval(() => {
        scheduler.reload().catch((e: unknown) => logger.error('could not reload schedules', { error: String(e) }));
      }, reloadMs);
      reloadTimer.unref();
    },
    async startServer(settings) {
      // The HTTP server, its routes and schemas load only in processes that serve (not for `sync run`).
      const { createApiServer } = await import('./api/server.js');
      const api = createApiServer({
        store,
        runs,
        worker,
        plans: planner,
        alerts,
        events,
        logger,
        clock,
        env: config.env,
        webhookRetention: config.webhookRetention,
        baseDir: config.workspaceDir,
        connectors: registry,
        authRequired: settings.authRequired,
        uiDir: settings.uiDir,
        eventPollMs: config.pollIntervalMs,
        activity,
        onWorkspaceChanged: async () => {
          if (schedulerStarted) await scheduler.reload();
        },
      });
      const { url, port } = await api.listen(settings.port, settings.host);
      server = api;
      if (config.publicUrl === null) publicUrl = reachableUrl(url, settings.host, port);
      return { url };
    },
    activity,
    async startMetricsServer({ port, host }) {
      // As the API server, its code loads only in processes that serve metrics.
      const { createMetricsServer } = await import('./api/metrics-server.js');
      const listener = createMetricsServer({ store, worker, events, logger, activity });
      try {
        const { url } = await listener.listen(port, host);
        metricsServer = listener;
        return { url };
      } catch (thrown) {
        await listener.close();
        throw thrown;
      }
    },
    newerSchema() {
      schemaWatch ??= watchSchema(store, logger);
      return schemaWatch.refused;
    },
    async close() {
      schemaWatch?.stop();
      await server?.close();
      await metricsServer?.close();
      if (reloadTimer) clearInterval(reloadTimer);
      storeClock?.stop();
      await scheduler.stop();
      await worker.stop();
      await upstream.stop();
      auditLog.stop();
      stopWatchingRuns();
      await alertMonitor.stop();
      // Notices about runs of this process go out before it ends (a failing channel is retried later).
      if (alertsQueued || alerts.running) await alerts.sendDue().catch((e: unknown) => logger.error('could not send alerts', { error: String(e) }));
      await alerts.stop();
      await store.close();
    },
  };
}

/** How often a process measures again how far its clock is from the store server's. */
const STORE_TIME_CHECK_MS = 60_000;

/**
 * The clock of a process on a store with a server of its own (PostgreSQL): the system clock kept to
 * the server's time, measured at the start and every minute after. Leases are compared across
 * machines, so a machine whose clock is minutes off would otherwise take runs at work from their
 * workers, or have its own taken, as soon as it claimed them. Null for a store without one.
 */
async function keepToStoreTime(store: Store, config: LockstepConfig, logger: Logger): Promise<{ clock: AlignedClock; stop(): void } | null> {
  const { serverTime } = store;
  if (!serverTime) return null;
  const clock = new AlignedClock(systemClock);
  const align = async () => {
    try {
      if (!(await clock.align(() => serverTime.call(store)))) return;
    } catch (thrown) {
      // The store is unreachable: the last offset holds, and the store's own errors say why.
      logger.debug('could not read the store server\'s time', { error: toError(thrown).message });
      return;
    }
    const ahead = clock.aheadMs;
    if (Math.abs(ahead) < 1000) return;
    logger.warn(
      `this machine's clock is ${(Math.abs(ahead) / 1000).toFixed(1)} s ${ahead > 0 ? 'ahead of' : 'behind'} the time of store ${storeName(config)}: ` +
        "Lockstep keeps to the store's time for leases, schedules and run times — set this machine's clock right (NTP)",
    );
  };
  await align();
  const timer = setInterval(() => void align(), STORE_TIME_CHECK_MS);
  timer.unref();
  return { clock, stop: () => clearInterval(timer) };
}

/**
 * How often a process reads the store's schema version, ms: the migrating process's notification
 * tells it at once, this finds a migration whose notification it missed.
 */
const SCHEMA_CHECK_MS = 10_000;

/**
 * Watches for a newer Lockstep's migration of the store (see App.newerSchema): on the store's
 * `schema` notifications, when it has them, and every SCHEMA_CHECK_MS. `refused` never settles
 * for a store that cannot tell (none migrates under the process).
 */
function watchSchema(store: Store, logger: Logger): { refused: Promise<LockstepError>; stop(): void } {
  const { newerSchema } = store;
  let timer: NodeJS.Timeout | null = null;
  let unwatch: (() => void) | null = null;
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
    unwatch?.();
    unwatch = null;
  };
  const refused = new Promise<LockstepError>((resolve) => {
    if (!newerSchema) return;
    let checking = false;
    const check = async () => {
      if (checking) return;
      checking = true;
      try {
        const refusal = await newerSchema.call(store);
        if (refusal === null || timer === null) return;
        stop();
        logger.error(refusal.message);
        resolve(refusal);
      } catch (thrown) {
        // The store is unreachable: the next check tells, and the store's own errors say why.
        logger.debug("could not read the store's schema version", { error: toError(thrown).message });
      } finally {
        checking = false;
      }
    };
    timer = setInterval(() => void check(), SCHEMA_CHECK_MS);
    timer.unref();
    unwatch = store.watch?.((topic) => {
      if (topic === 'schema') void check();
    }) ?? null;
  });
  return { refused, stop };
}

/** Where alert links point when LOCKSTEP_PUBLIC_URL is not set and this process serves no UI. */
const DEFAULT_PUBLIC_URL = 'http://127.0.0.1:3000';

/** The served URL, with this machine's name instead of an address that means "every interface". */
function reachableUrl(url: string, host: string, port: number): string {
  return host === '0.0.0.0' || host === '::' || host === '[::]' ? `http://${hostname()}:${port}` : url;
}

/** The timed schedules of a workspace, as the scheduler sees them. */
export function scheduleEntries(workspace: WorkspaceState): ScheduleEntry[] {
  const entries: ScheduleEntry[] = [];
  for (const sync of workspace.syncs) {
    if (isTimedSchedule(sync.schedule)) entries.push({ id: `sync:${sync.slug}`, schedule: sync.schedule, enabled: sync.enabled, changedAt: sync.updatedAt });
  }
  for (const sequence of workspace.sequences) {
    if (isTimedSchedule(sequence.schedule)) {
      entries.push({ id: `sequence:${sequence.slug}`, schedule: sequence.schedule, enabled: sequence.enabled, changedAt: sequence.updatedAt });
    }
  }
  return entries;
}

function splitScheduleId(id: string): ['sync' | 'sequence', string] {
  const at = id.indexOf(':');
  return [id.slice(0, at) === 'sync' ? 'sync' : 'sequence', id.slice(at + 1)];
}

/** Whether a sync of the workspace may keep its snapshot in the store: its model's source is not set to `planner: warehouse`. */
function snapshotsInStore(workspace: WorkspaceState): boolean {
  return workspace.syncs.some((sync) => {
    const model = workspace.models.find((m) => m.slug === sync.model);
    return workspace.sources.find((source) => source.slug === model?.source)?.settings.planner !== 'warehouse';
  });
}

/**
 * What the routes need, given by the composition root through `createApiServer`'s options.
 */
import type { Clock, Logger, Store } from '../core/ports.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import type { AlertDispatcher } from '../engine/alert-dispatcher.js';
import type { EngineEventEmitter } from '../engine/events.js';
import type { SequencePlanner } from '../engine/sequence-planner.js';
import type { RunService } from '../engine/run-service.js';
import type { Worker } from '../engine/worker.js';
import type { WebhookRetention } from '../core/webhooks.js';

/** The part of the run service the API drives. */
export type RunControl = Pick<RunService, 'triggerSync' | 'triggerSequence' | 'queueFiredRun' | 'cancelSyncRun' | 'cancelSequenceRun' | 'resumeSequenceRun'>;

/** The part of this process's worker the metrics read: the runs it holds. */
export type WorkerLeases = Pick<Worker, 'workerId' | 'leasedIds'>;

/** The part of the event emitter the API listens to. */
export type RunEvents = Pick<EngineEventEmitter, 'on'>;

/** The part of the alert dispatcher the API drives. */
export type AlertControl = Pick<AlertDispatcher, 'testChannel'>;

export interface ApiDeps {
  store: Store;
  /** Queues, cancels and resumes runs. */
  runs: RunControl;
  /** This process's worker: the metrics count the runs it holds. */
  worker: WorkerLeases;
  /** Dry runs of sequences (default: none; the plan route then answers that this server cannot plan). */
  plans?: Pick<SequencePlanner, 'plan'>;
  /** Sends test alerts. */
  alerts: AlertControl;
  events: RunEvents;
  logger: Logger;
  clock: Clock;
  /** The connector kinds: connection settings are checked, and their secrets hidden, by kind. */
  connectors: ConnectorRegistry;
  /** Environment `${VAR}` templates are checked against when entities are validated. */
  env: Record<string, string | undefined>;
  /** How much of the webhook delivery log is kept (default: DEFAULT_WEBHOOK_RETENTION). */
  webhookRetention?: WebhookRetention;
  /** The workspace folder: relative paths of connections (SQLite files) resolve against it, as runs resolve them. */
  baseDir: string;
  /** Called after every change to the workspace, so the scheduler picks up schedules and enabled flags. */
  onWorkspaceChanged: () => void | Promise<void>;
}

/**
 * Appends finished runs to the audit logs of the connections that keep one (`auditLog: { schema }`,
 * core/audit-log.ts): a sync run goes to the audit log of its model's source and of its
 * destination, a sequence run to those of its members' syncs, named by the slugs they ran as. A
 * sync deleted before its run's hand-off still names those connections: its run goes to those the
 * workspace still has. The runs come from the outbox of finished runs (finished-run-relay.ts), so
 * each run is handed here once whichever process ran it, and again after a crash or a failed
 * append until every audit log has it; appending a run that is already there does nothing, so each
 * audit log holds it once.
 *
 * An audit log that cannot be reached or written fails the hand-off, which the relay retries later;
 * for a while after such a failure that connection is not tried again, so other runs' ends are not
 * held up by its timeouts.
 */
import type { AuditLogWriter, AuditSequenceRun, AuditSyncRun } from '../core/audit-log.js';
import { resolveConnection } from '../core/connector-registry.js';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import type { Clock, Logger, Store } from '../core/ports.js';
import { iso } from '../core/run-views.js';
import type { RejectedRow, SequenceRun, SyncRun } from '../core/runs.js';
import type { ConnectionRecord, ResolvedConnection, WorkspaceState } from '../core/workspace.js';
import type { FinishedRunRelay } from './finished-run-relay.js';
import { FinishedRunSubscription } from './finished-run-subscription.js';

export interface AuditLogAppenderOptions {
  store: Pick<Store, 'loadWorkspace' | 'listRejectedRows' | 'slugsById' | 'syncsById'>;
  finishedRuns: FinishedRunRelay;
  /** Opens a connection's audit log (the connector registry's `openAuditLog`); null when it keeps none. */
  open: (connection: ResolvedConnection) => Promise<AuditLogWriter | null>;
  /** Where relative paths resolve, and `${ENV}` templates' values. */
  baseDir: string;
  env: Record<string, string | undefined>;
  clock: Clock;
  logger: Logger;
  /** How long a connection whose audit log failed is left alone, ms (default: 30 s). */
  backoffMs?: number;
}

/** How long a read of the workspace serves the runs that end meanwhile, ms (an `apply` takes effect after it). */
const WORKSPACE_TTL_MS = 1000;
/** Rejected rows read from the store per page. */
const REJECTED_PAGE = 1000;

interface AuditTarget {
  role: 'source' | 'destination';
  def: ConnectionRecord;
}

/** What a run's sync was named, and the connections it named: where its runs are appended. */
interface RunSync {
  slug: string;
  destination: string;
  /** Its model's source; null when its model is nowhere to be found. */
  source: string | null;
}

export class AuditLogAppender {
  private readonly subscription: FinishedRunSubscription;
  /** Connections whose audit log failed, until when they are left alone (clock ms), and why. */
  private readonly failing = new Map<string, { until: number; error: string }>();
  private cached: { at: number; workspace: Promise<WorkspaceState> } | null = null;

  constructor(private readonly options: AuditLogAppenderOptions) {
    this.subscription = new FinishedRunSubscription(options.finishedRuns, {
      syncRun: (run) => this.syncRunFinished(run),
      sequenceRun: (run) => this.sequenceRunFinished(run),
    });
  }

  /**
   * The workspace, read at most once per WORKSPACE_TTL_MS: the members of a sequence end close
   * together, and each end would otherwise read the whole workspace again.
   */
  private workspace(): Promise<WorkspaceState> {
    const now = this.options.clock.now();
    if (this.cached === null || now - this.cached.at > WORKSPACE_TTL_MS) {
      const workspace = this.options.store.loadWorkspace();
      this.cached = { at: now, workspace };
      workspace.catch(() => (this.cached = null));
    }
    return this.cached.workspace;
  }

  /** Stops listening; runs that end later are appended by another process, or when this one starts again. */
  stop(): void {
    this.subscription.close();
  }

  /**
   * The syncs of `syncIds` as their runs ran them: a live one from the workspace, one deleted since
   * (gone from it) from the store, which keeps deleted syncs as they were last defined.
   */
  private async runSyncs(workspace: WorkspaceState, syncIds: readonly number[]): Promise<RunSync[]> {
    const found: RunSync[] = [];
    const gone: number[] = [];
    for (const id of new Set(syncIds)) {
      const sync = workspace.syncs.find((s) => s.id === id);
      if (!sync) gone.push(id);
      else found.push({ slug: sync.slug, destination: sync.destination, source: workspace.models.find((m) => m.slug === sync.model)?.source ?? null });
    }
    if (gone.length === 0) return found;
    // A deleted sync's model may be gone too (an apply that removes a pipeline removes both), or
    // its slug declared again on another source: the store gives the source of the model the sync
    // named when it was deleted, which is what its runs read from, where the live model of that
    // slug would send them to a source they never read.
    for (const sync of (await this.options.store.syncsById(gone)).values()) {
      found.push({ slug: sync.slug, destination: sync.destination, source: sync.modelSource });
    }
    return found;
  }

  private async syncRunFinished(run: SyncRun): Promise<void> {
    const workspace = await this.workspace();
    const [sync] = await this.runSyncs(workspace, [run.syncId]);
    const targets = auditTargets(workspace, sync ? [sync] : []);
    if (targets.length === 0) return;
    const record: AuditSyncRun = {
      runId: run.id,
      attempt: run.attempt,
      syncId: run.syncId,
      sync: sync?.slug ?? null,
      sequenceRunId: run.sequenceRunId,
      memberKey: run.memberKey,
      status: run.status,
      trigger: run.trigger.type,
      triggerDetail: run.trigger.detail,
      createdAt: iso(run.createdAt) as string,
      startedAt: iso(run.startedAt),
      finishedAt: iso(run.finishedAt),
      querySize: run.querySize,
      planned: run.plannedRows,
      delivered: run.successfulRows,
      rejected: run.failedRows,
      error: run.error,
    };
    const rejected = () => this.rejectedRows(run.id);
    await this.appendEach(targets, `sync run ${run.id}`, (log) => log.appendSyncRun(record, rejected));
  }

  private async sequenceRunFinished(run: SequenceRun): Promise<void> {
    const workspace = await this.workspace();
    const targets = auditTargets(workspace, await this.runSyncs(workspace, run.members.map((m) => m.syncId)));
    if (targets.length === 0) return;
    // A run keeps the members it was queued with: a member's sync (or the sequence) may have been
    // deleted since, or before this hand-off. The record names each by the slug it ran as, and
    // marks a member whose sync is gone, as run history does (run-views.ts).
    const syncSlugs = await this.options.store.slugsById('sync', run.members.map((m) => m.syncId));
    const sequence = (await this.options.store.slugsById('sequence', [run.sequenceId])).get(run.sequenceId);
    const record: AuditSequenceRun = {
      runId: run.id,
      sequenceId: run.sequenceId,
      sequence: sequence?.slug ?? null,
      status: run.status,
      trigger: run.trigger.type,
      triggerDetail: run.trigger.detail,
      createdAt: iso(run.createdAt) as string,
      startedAt: iso(run.startedAt),
      finishedAt: iso(run.finishedAt ?? this.options.clock.now()) as string,
      terminatedBy: run.terminatedBy,
      reason: run.reason,
      members: JSON.stringify(
        run.members.map((m) => ({
          key: m.key,
          sync: syncSlugs.get(m.syncId)?.slug ?? null,
          syncDeleted: syncSlugs.get(m.syncId)?.deleted ?? false,
          status: m.status,
          syncRunId: m.syncRunId,
          startedAt: iso(m.startedAt),
          finishedAt: iso(m.finishedAt),
        })),
      ),
    };
    await this.appendEach(targets, `sequence run ${run.id}`, (log) => log.appendSequenceRun(record));
  }

  /** Appends to every target's audit log; throws (so the run is handed over again) when any failed. */
  private async appendEach(targets: AuditTarget[], what: string, append: (log: AuditLogWriter) => Promise<boolean>): Promise<void> {
    const { clock, logger } = this.options;
    const errors: string[] = [];
    for (const { role, def } of targets) {
      const key = `${role}:${def.slug}`;
      const failing = this.failing.get(key);
      if (failing && failing.until > clock.now()) {
        errors.push(failing.error);
        continue;
      }
      let log: AuditLogWriter | null = null;
      try {
        log = await this.options.open(resolveConnection(def, role, this.options.baseDir, this.options.env));
        if (!log) continue;
        const appended = await append(log);
        this.failing.delete(key);
        logger.debug(appended ? 'run appended to the audit log' : 'run already in the audit log', { connection: def.slug, run: what });
      } catch (thrown) {
        const error = toError(thrown).message;
        this.failing.set(key, { until: clock.now() + (this.options.backoffMs ?? 30_000), error });
        logger.error('could not append a run to the audit log; it is appended when the run is handed over again', { connection: def.slug, run: what, error });
        errors.push(error);
      } finally {
        await log?.close().catch(() => undefined);
      }
    }
    if (errors.length > 0) throw new LockstepError(ErrorCode.Transient, `${what} is not in every audit log yet: ${errors.join('; ')}`);
  }

  private async *rejectedRows(runId: number): AsyncGenerator<RejectedRow[]> {
    for (let offset = 0; ; offset += REJECTED_PAGE) {
      const page = await this.options.store.listRejectedRows(runId, REJECTED_PAGE, offset);
      if (page.length > 0) yield page;
      if (page.length < REJECTED_PAGE) return;
    }
  }
}

/**
 * The connections with an audit log that the syncs read from (their models' sources) or write to,
 * among those the workspace still has.
 */
function auditTargets(workspace: WorkspaceState, syncs: readonly RunSync[]): AuditTarget[] {
  const keeps = (def: ConnectionRecord) => def.settings.auditLog !== undefined && def.settings.auditLog !== null;
  const sources = new Set(syncs.flatMap((sync) => (sync.source === null ? [] : [sync.source])));
  const destinations = new Set(syncs.map((sync) => sync.destination));
  return [
    ...workspace.sources.filter((def) => keeps(def) && sources.has(def.slug)).map((def) => ({ role: 'source' as const, def })),
    ...workspace.destinations.filter((def) => keeps(def) && destinations.has(def.slug)).map((def) => ({ role: 'destination' as const, def })),
  ];
}

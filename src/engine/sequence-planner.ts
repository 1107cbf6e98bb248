/**
 * Dry runs of sequences (SPEC §3.4): each member's next run planned against its snapshot, in the
 * order a real run would start the members, with nothing sent and nothing stored changed.
 *
 * A member is planned by the sync runner itself (query, validation, hashing, comparison with the
 * snapshot, removals, parent lookups), so a plan never drifts from what a run does. It runs against
 * two stand-ins: a read-only view of the store (PlanningStore), which answers reads from the store
 * and keeps the run's writes (its record, rejected rows, snapshot and record-id commits) in memory,
 * and a destination whose writer records the planned rows and answers each one delivered without
 * sending it. A store call the view does not know is refused, so a dry run can never write. A source
 * with the planner in the warehouse opens it as a dry run (WarehousePlannerAccess.open): it only
 * reads, and its commits and finish do nothing.
 *
 * What a plan cannot know: rows the destination itself would refuse (a constraint, a 4xx), but
 * for those its writer refuses before sending (`check`: a value a field cannot take), which the
 * plan shows rejected with the writer's reason. A
 * child's lookup of a parent key counts as found when the parent has an id recorded, or when the
 * parent member planned to deliver that key earlier in this plan (its keys are kept when a later
 * member looks them up, or writes through the same destination and may name them by key).
 */
import { ErrorCode, LockstepError, NotFoundError, toError } from '../core/errors.js';
import { encodeKey } from '../core/keys.js';
import type {
  Connectors,
  Destination,
  DestinationWriter,
  Logger,
  RowOutcome,
  Source,
  Store,
  SyncRunPatch,
  Value,
  WarehousePlanner,
  WarehousePlannerAccess,
  WriteOperation,
  WriteTarget,
} from '../core/ports.js';
import { ACTIVE_SYNC_RUN_STATUSES, type RejectedRow, type SyncRun } from '../core/runs.js';
import { memberDependencies, terminationReason } from '../core/sequence-rules.js';
import {
  DEFAULT_PLAN_SAMPLES,
  MAX_PLAN_SAMPLES,
  mayNotStartWarning,
  planBlock,
  plannedRecordId,
  type MemberPlan,
  type PlanBlock,
  type PlanSample,
  type PlannedRejection,
  type SequencePlan,
} from '../core/sequence-plans.js';
import { lookupsOf, massDeleteRefusal } from '../core/sync-rules.js';
import type { MemberDef, SequenceRecord, SyncRecord } from '../core/workspace.js';
import { resolveConnection } from '../core/connector-registry.js';
import { SyncRunner, type SyncRunnerOptions } from './sync-runner.js';

export interface SequencePlannerOptions {
  store: Store;
  connectors: Connectors;
  /** What the sync runner of a real run is given, besides its store and connectors. */
  runner: Omit<SyncRunnerOptions, 'store' | 'connectors'>;
}

export interface PlanRequest {
  /** Sample rows per kind of change (default: DEFAULT_PLAN_SAMPLES, at most MAX_PLAN_SAMPLES). */
  samples?: number;
  signal?: AbortSignal;
}

/** The id of a dry run's stand-in run: no stored run has it. */
const DRY_RUN_ID = -1;
/** Rejected keys of a sync's last run read to count retried rows, at most. */
const RETRIED_KEYS_MAX = 100_000;

export class SequencePlanner {
  constructor(private readonly options: SequencePlannerOptions) {}

  /** The plan of sequence `slug`; NotFound when there is none. Stores nothing, sends nothing. */
  async plan(slug: string, request: PlanRequest = {}): Promise<SequencePlan> {
    const samples = Math.max(0, Math.min(MAX_PLAN_SAMPLES, Math.floor(request.samples ?? DEFAULT_PLAN_SAMPLES)));
    const { store } = this.options;
    const sequence = await store.getSequence(slug);
    if (!sequence || sequence.slug !== slug) throw new NotFoundError(`no sequence "${slug}" in the workspace`);
    const signal = request.signal ?? new AbortController().signal;
    const members = startOrder(sequence);
    const syncs = new Map<string, SyncRecord>();
    for (const member of members) {
      const sync = await store.getSync(member.sync);
      if (!sync) throw new NotFoundError(`sequence "${sequence.slug}" runs sync "${member.sync}", which does not exist`);
      syncs.set(member.key, sync);
    }
    // Syncs whose planned keys a later member looks up (a mapping's lookup, or one in its kind
    // settings, e.g. HubSpot associations): their keys are kept while planning.
    const lookedUp = new Set([...syncs.values()].flatMap((s) => lookupsOf({ mappings: s.mappings, settings: s.settings }).map((l) => l.sync)));
    // A member may also name, by key, records another member writes through the same destination
    // (Salesforce's parents by external id): those members' keys are kept too.
    const writers = new Map<string, number>();
    for (const s of syncs.values()) writers.set(s.destination, (writers.get(s.destination) ?? 0) + 1);
    for (const s of syncs.values()) if ((writers.get(s.destination) ?? 0) > 1) lookedUp.add(s.slug);
    const delivering = new Map<number, { slug: string; keys: Set<string> }>();
    const plans: MemberPlan[] = [];
    // What a run would do after each member's outcome: the members whose outcome would terminate
    // the sequence, and the members it would then skip rather than start (they are not planned).
    const dependencies = memberDependencies(sequence);
    const terminating = new Map<string, string>();
    const skipped = new Map<string, PlanBlock>();
    for (const member of members) {
      // A caller that went away (a closed request) stops the plan between members too.
      if (signal.aborted) throw new LockstepError(ErrorCode.Conflict, `the plan of sequence "${sequence.slug}" was stopped`);
      const sync = syncs.get(member.key) as SyncRecord;
      const block = planBlock(dependencies.get(member.key) ?? [], terminating, skipped, sequence.concurrency <= 1);
      if (block) {
        skipped.set(member.key, block);
        plans.push(skippedPlan(member, sync, block));
        continue;
      }
      const keep = lookedUp.has(sync.slug) ? new Set<string>() : null;
      const plan = await this.planMember(member, sync, samples, delivering, keep, signal);
      if (plan.terminates !== null) terminating.set(member.key, plan.terminates);
      plans.push(plan);
      if (keep) delivering.set(sync.id, { slug: sync.slug, keys: keep });
    }
    for (const plan of plans) {
      const warning = plan.status === 'skipped' ? null : mayNotStartWarning(plan.key, dependencies, terminating);
      if (warning) plan.warnings.push(warning);
    }
    return { sequence: sequence.slug, plannedAt: this.options.runner.clock.now(), samplesPerKind: samples, members: plans };
  }

  private async planMember(
    member: MemberDef,
    sync: SyncRecord,
    samples: number,
    delivering: Map<number, { slug: string; keys: Set<string> }>,
    keep: Set<string> | null,
    signal: AbortSignal,
  ): Promise<MemberPlan> {
    const { store, connectors, runner } = this.options;
    const recorder = new PlanRecorder(store, sync, samples, await this.lastRejectedKeys(sync.id), keep);
    const run = dryRun(sync, runner.clock.now());
    const view = planningStore(store, run, recorder, delivering);
    const planning: Connectors = {
      openSource: async (connection) => recorder.source(await connectors.openSource(connection)),
      openDestination: async (connection, run) => recorder.destination(await connectors.openDestination(connection, run)),
    };
    const syncRunner = new SyncRunner({ ...runner, store: view, connectors: planning, logger: quiet(runner.logger) });
    const final = await syncRunner.execute(run, { signal });
    const plan: MemberPlan = {
      key: member.key,
      sync: sync.slug,
      status: final.status === 'failed' || final.status === 'cancelled' ? 'failed' : 'planned',
      error: final.status === 'failed' ? final.error : final.status === 'cancelled' ? 'the plan was stopped' : null,
      // The run's own rule: rows rejected before sending count against the threshold as they would in a run.
      terminates: final.status === 'cancelled' ? null : terminationReason(member, final),
      blockedBy: null,
      querySize: final.querySize,
      added: final.plannedRows.addedCount,
      changed: final.plannedRows.changedCount,
      removed: final.plannedRows.removedCount,
      retried: recorder.retried,
      rejected: final.failedRows.addedCount + final.failedRows.changedCount + final.failedRows.removedCount,
      samples: { added: recorder.added, changed: recorder.changed, removed: recorder.removed, rejected: recorder.rejected },
      warnings: [...recorder.warnings],
    };
    const underWay = await this.runUnderWay(sync);
    if (underWay) plan.warnings.push(underWay);
    // A run's mass-delete guard compares with what its planner holds: the planner table, or the snapshot.
    const cursor = (await store.getModel(sync.model))?.cursor !== undefined;
    const refusal = massDeleteRefusal(sync, plan.removed, recorder.plannerRows ?? (await store.snapshots.count(sync.id)), { cursor });
    if (refusal) {
      plan.warnings.push(`a real run would stop before deleting: ${refusal}`);
      // A real run fails there (a sequence's runs never let a mass delete through), and its terminate policy acts on that failure.
      if (plan.status === 'planned') plan.terminates = terminationReason(member, { ...final, status: 'failed', error: refusal });
    }
    if (plan.status === 'planned') await this.readBefore(sync, recorder, plan);
    return plan;
  }

  /** Fills the samples' values before the change from the destination's current rows, where it can be read. */
  private async readBefore(sync: SyncRecord, recorder: PlanRecorder, plan: MemberPlan): Promise<void> {
    const target = recorder.target;
    const all = [...plan.samples.added, ...plan.samples.changed, ...plan.samples.removed];
    if (target === null || all.length === 0) return;
    const { store, connectors, runner } = this.options;
    const def = await store.getDestination(sync.destination);
    if (!def) return;
    let destination: Destination | null = null;
    try {
      destination = await connectors.openDestination(resolveConnection(def, 'destination', runner.baseDir, runner.env));
      if (!destination.readRows) return;
      const rows = await destination.readRows(target, all.map((s) => s.key));
      all.forEach((sample, i) => compareWith(sample, target.columns, rows[i] ?? null));
    } catch (thrown) {
      plan.warnings.push(`the destination's current rows could not be read for the samples: ${toError(thrown).message}`);
    } finally {
      await destination?.close().catch(() => undefined);
    }
  }

  /**
   * A warning when the sync has a run under way, or null: the plan compares with what that run has
   * delivered so far, so it counts the rows the run has still to send, which the run sends itself.
   */
  private async runUnderWay(sync: SyncRecord): Promise<string | null> {
    const [active] = await this.options.store.listSyncRuns({ syncId: sync.id, statuses: [...ACTIVE_SYNC_RUN_STATUSES], limit: 1, offset: 0, order: 'desc' });
    if (!active) return null;
    return (
      `sync "${sync.slug}" has run ${active.id} under way (${active.status}): this plan counts the rows it has still to deliver, ` +
      'which that run sends; a run queued now waits for it and sends what is left then'
    );
  }

  /** The keys the sync's last finished run rejected: planned again now, so counted as retried. */
  private async lastRejectedKeys(syncId: number): Promise<Set<string>> {
    const { store } = this.options;
    const [last] = await store.listSyncRuns({ syncId, statuses: ['success', 'warning', 'failed', 'cancelled'], limit: 1, offset: 0, order: 'desc' });
    const keys = new Set<string>();
    if (!last) return keys;
    for (let offset = 0; keys.size < RETRIED_KEYS_MAX; offset += 1000) {
      const page = await store.listRejectedRows(last.id, 1000, offset);
      for (const row of page) keys.add(row.key);
      if (page.length < 1000) break;
    }
    return keys;
  }
}

/** The members in the order a real run starts them: dependencies first, list order among those ready together. */
export function startOrder(sequence: Pick<SequenceRecord, 'members'>): MemberDef[] {
  const deps = memberDependencies(sequence);
  const done = new Set<string>();
  const order: MemberDef[] = [];
  while (order.length < sequence.members.length) {
    const next = sequence.members.find((m) => !done.has(m.key) && (deps.get(m.key) ?? []).every((d) => done.has(d) || !deps.has(d)));
    // A cycle never passes validation; should one be stored, the rest go in list order.
    const member = next ?? (sequence.members.find((m) => !done.has(m.key)) as MemberDef);
    done.add(member.key);
    order.push(member);
  }
  return order;
}

/** What a dry run's stand-ins saw: the samples, rejected rows, retried rows and the keys planned for delivery. */
class PlanRecorder {
  readonly added: PlanSample[] = [];
  readonly changed: PlanSample[] = [];
  readonly removed: PlanSample[] = [];
  readonly rejected: PlannedRejection[] = [];
  retried = 0;
  target: WriteTarget | null = null;
  /** What the planner in the warehouse said of its comparison, when the source has one. */
  readonly warnings: string[] = [];
  /** Rows in the planner table in the warehouse, when the source has one (null: the store's snapshot plans). */
  plannerRows: number | null = null;

  constructor(
    private readonly store: Store,
    private readonly sync: SyncRecord,
    private readonly samples: number,
    private readonly retriedKeys: Set<string>,
    private readonly keep: Set<string> | null,
  ) {}

  /** The destination with its writer replaced by one that records and sends nothing (prepare still checks the object). */
  destination(real: Destination): Destination {
    return {
      capabilities: real.capabilities,
      close: () => real.close(),
      prepare: async (target) => {
        const writer = await real.prepare(target);
        this.target = target;
        return this.writer(target, writer);
      },
    };
  }

  /**
   * The source with its planner in the warehouse, if any, opened as a dry run. A Proxy keeps the
   * source's own methods bound to it (a class instance does not survive a spread).
   */
  source(real: Source): Source {
    const access = real.warehousePlanner;
    if (!access) return real;
    const dryRun: WarehousePlannerAccess = {
      mode: access.mode,
      schema: access.schema,
      open: async (signal) => this.planner(await access.open(signal, { dryRun: true })),
    };
    return new Proxy(real, {
      get(target, name) {
        if (name === 'warehousePlanner') return dryRun;
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** A dry-run planner as the runner sees it: its notes become the plan's warnings; commit and finish do nothing. */
  private planner(real: WarehousePlanner): WarehousePlanner {
    return {
      plan: async (request) => {
        const plan = await real.plan(request);
        this.warnings.push(...plan.notes);
        this.plannerRows = plan.plannerRows;
        return plan;
      },
      commit: async () => undefined,
      finish: async () => undefined,
      close: () => real.close(),
    };
  }

  /**
   * The dry run reads its model again (the store would forget the run's rejected rows): none of
   * the rows it planned were kept, so they are all planned again, and what it shows is what the new
   * reading plans, rejects and warns of.
   */
  readingAgain(): void {
    for (const list of [this.added, this.changed, this.removed, this.rejected, this.warnings]) list.length = 0;
    this.retried = 0;
    this.keep?.clear();
  }

  rejectedRows(rows: RejectedRow[]): void {
    for (const row of rows) {
      if (this.retriedKeys.has(row.key)) this.retried++;
      if (this.rejected.length < this.samples) this.rejected.push({ key: row.key, op: row.op, reason: row.reason });
    }
  }

  /** A writer that sends nothing: rows the real writer refuses before sending (`checkBatch` or `check`) are rejected with its reason, the others delivered. */
  private writer(target: WriteTarget, real: DestinationWriter): DestinationWriter {
    return {
      concurrentWrites: 1,
      write: async (batch: WriteOperation[]): Promise<RowOutcome[]> => {
        const upserts: WriteOperation[] = [];
        const reasons = real.checkBatch ? await real.checkBatch(batch) : batch.map((op) => (op.kind === 'delete' ? null : (real.check?.(op) ?? null)));
        const outcomes: RowOutcome[] = reasons.map((reason) => (reason === null ? { ok: true } : { ok: false, reason }));
        for (const [n, op] of batch.entries()) {
          if (!(outcomes[n] as RowOutcome).ok) continue;
          const k = this.retriedKeys.size > 0 || this.keep !== null ? encodeKey(op.key) : '';
          if (this.retriedKeys.has(k)) this.retried++;
          if (op.kind === 'delete') {
            if (this.removed.length < this.samples) this.removed.push({ key: [...op.key], fields: [], before: 'unavailable' });
            continue;
          }
          this.keep?.add(k);
          upserts.push(op);
        }
        await this.sample(target, upserts);
        return outcomes;
      },
    };
  }

  /**
   * Samples added and changed rows: the runner's planned rows say which they are (`change`);
   * otherwise a key in the snapshot (which a dry run never changes) is a change.
   */
  private async sample(target: WriteTarget, ops: WriteOperation[]): Promise<void> {
    if (ops.length === 0 || (this.added.length >= this.samples && this.changed.length >= this.samples)) return;
    const delivered = ops.every((op) => op.change !== undefined) ? new Map() : await this.store.snapshots.get(this.sync.id, ops.map((op) => encodeKey(op.key)));
    for (const op of ops) {
      const list = (op.change ?? (delivered.has(encodeKey(op.key)) ? 'changed' : 'added')) === 'changed' ? this.changed : this.added;
      if (list.length >= this.samples) continue;
      list.push({ key: [...op.key], fields: target.columns.map((field, i) => ({ field, after: op.values[i] ?? null })), before: 'unavailable' });
    }
  }
}

/** The plan of a member a real run would skip: nothing is planned for it. */
function skippedPlan(member: MemberDef, sync: SyncRecord, block: PlanBlock): MemberPlan {
  return {
    key: member.key,
    sync: sync.slug,
    status: 'skipped',
    error: null,
    terminates: null,
    blockedBy: block,
    querySize: 0,
    added: 0,
    changed: 0,
    removed: 0,
    retried: 0,
    rejected: 0,
    samples: { added: [], changed: [], removed: [], rejected: [] },
    warnings: [],
  };
}

/** A stand-in run record for the runner: never stored, never claimed. */
function dryRun(sync: SyncRecord, now: number): SyncRun {
  const zero = { addedCount: 0, changedCount: 0, removedCount: 0 };
  return {
    id: DRY_RUN_ID,
    syncId: sync.id,
    status: 'querying',
    trigger: { type: 'manual', detail: 'plan' },
    // The mass-delete guard is reported as a warning, with the removals it would have stopped.
    options: { fullResync: false, resetCDC: false, allowMassDelete: true },
    sequenceRunId: null,
    memberKey: null,
    createdAt: now,
    startedAt: now,
    finishedAt: null,
    querySize: 0,
    plannedRows: { ...zero },
    successfulRows: { ...zero },
    failedRows: { ...zero },
    completionRatio: 0,
    error: null,
    cancelRequested: false,
    apiUsage: null,
    phaseMs: null,
    comparison: null,
    attempt: 1,
    workerId: null,
    leaseExpiresAt: null,
  };
}

/** Store calls a dry run passes through to the store: they only read. */
const READS = new Set<string>([
  'capabilities',
  'getSync',
  'getSequence',
  'getModel',
  'getSource',
  'getDestination',
  'loadWorkspace',
  'listSyncRuns',
  'listRejectedRows',
]);

/** Calls of the store's snapshots a dry run passes through: they only read. */
const SNAPSHOT_READS = new Set<string>(['get', 'changes', 'keys', 'pages', 'count', 'cursorGet']);

/**
 * The store as a dry run sees it: reads answered by `store`; the run's record kept in memory; the
 * run's commits (snapshot, record ids) dropped, its rejected rows recorded; record ids of parents
 * planned earlier in the plan answered as to come. Any other call is refused.
 */
function planningStore(
  store: Store,
  run: SyncRun,
  recorder: PlanRecorder,
  delivering: Map<number, { slug: string; keys: Set<string> }>,
): Store {
  let current = run;
  const snapshots = readOnlyView(store.snapshots, SNAPSHOT_READS, 'snapshots.', {
    write: async () => undefined,
    cursorSet: async () => undefined,
    recordIdsWrite: async () => undefined,
    recordIdsGet: async (syncId: number, keys: string[]) => {
      const ids = await store.snapshots.recordIdsGet(syncId, keys);
      const planned = delivering.get(syncId);
      if (planned) for (const k of keys) if (!ids.has(k) && planned.keys.has(k)) ids.set(k, plannedRecordId(planned.slug));
      return ids;
    },
  });
  return readOnlyView(store, READS, '', {
    snapshots,
    getSyncRun: async (id: number) => (id === run.id ? current : store.getSyncRun(id)),
    updateSyncRun: async (id: number, patch: SyncRunPatch) => {
      if (id !== run.id) throw refused('updateSyncRun');
      const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<SyncRun>;
      current = { ...current, ...defined };
      return current;
    },
    addRejectedRows: async (rows: RejectedRow[]) => recorder.rejectedRows(rows),
    clearRejectedRows: async () => recorder.readingAgain(),
  });
}

/**
 * `target` with the members of `absorbed` in place of its own, and its members named in `reads`
 * passed through (bound to it); calling any other member is refused, naming it after `prefix`.
 */
function readOnlyView<T extends object>(target: T, reads: ReadonlySet<string>, prefix: string, absorbed: Record<string, unknown>): T {
  return new Proxy(target, {
    get(target, name, receiver) {
      if (typeof name === 'string' && name in absorbed) return absorbed[name];
      if (typeof name === 'string' && reads.has(name)) {
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      }
      if (name === 'then') return undefined;
      return () => {
        throw refused(`${prefix}${String(name)}`);
      };
    },
  });
}

function refused(method: string): LockstepError {
  return new LockstepError(ErrorCode.Internal, `a dry run may not call store.${method}: it changes nothing stored`);
}

/** The runner's log of a dry run, at debug level: a plan is not a run. */
function quiet(logger: Logger): Logger {
  const debug = (message: string, fields?: Record<string, unknown>) => logger.debug(`plan: ${message}`, { ...fields, dryRun: true });
  return { debug, info: debug, warn: debug, error: debug };
}

/** Fills a sample's `before` from the destination's row (null: it has none). */
function compareWith(sample: PlanSample, columns: string[], row: Value[] | null): void {
  if (row === null) {
    sample.before = 'absent';
    return;
  }
  sample.before = 'read';
  if (sample.fields.length === 0) {
    // A removal: what the destination holds now.
    sample.fields = columns.map((field, i) => ({ field, before: row[i] ?? null, after: null }));
    return;
  }
  const fields = sample.fields.map((f, i) => ({ ...f, before: row[i] ?? null }));
  const differing = fields.filter((f) => !sameValue(f.before, f.after));
  sample.fields = differing.length > 0 ? differing : fields;
}

/** Equal as a destination would hold them: `1` and `"1"`, `true` and `1` are the same value. */
function sameValue(a: Value | undefined, b: Value): boolean {
  const text = (v: Value | undefined) => (typeof v === 'boolean' ? String(Number(v)) : v === null || v === undefined ? null : String(v));
  return text(a) === text(b);
}

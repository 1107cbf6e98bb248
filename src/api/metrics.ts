/** The end of the help of a gauge every process exporting it exports alike. */
const AGGREGATE_WITH_MAX = 'aggregate it over processes with max, not sum';

/**
 * Prometheus metrics (SPEC §6.5), in a registry of their own: runs by status, run durations, rows
 * delivered and rejected, queue depth, and hand-off latency (a member's start minus the end of the
 * member that finished last before it). Runs, rows and leases are those of this process: each
 * process (serve, every worker) exports its own, and Prometheus sums them across instances. The
 * gauges that are not this process's (read from the store, or as a destination last reported) are
 * the same in every process exporting them: their help says to aggregate them with max, not sum.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { toError } from '../core/errors.js';
import { RUN_PHASES } from '../core/run-phases.js';
import type { SyncRun } from '../core/runs.js';
import { totalCount } from '../core/runs.js';
import type { ApiDeps } from './context.js';

export interface Metrics {
  readonly registry: Registry;
  /** Stops listening to the engine. */
  stop(): void;
}

export interface MetricsOptions {
  /**
   * Whether to export the gauges read from the store, which describe every process sharing it
   * (queue depth, runs held by any worker) rather than this one: serve's alone.
   */
  storeGauges: boolean;
}

export function createMetrics(deps: Pick<ApiDeps, 'events' | 'store' | 'logger' | 'worker'>, options: MetricsOptions): Metrics {
  const registry = new Registry();
  const syncRuns = new Counter({ name: 'lockstep_sync_runs_total', help: 'Sync runs finished, by status', labelNames: ['status'], registers: [registry] });
  const sequenceRuns = new Counter({ name: 'lockstep_sequence_runs_total', help: 'Sequence runs finished, by status', labelNames: ['status'], registers: [registry] });
  const syncDuration = new Histogram({
    name: 'lockstep_sync_run_duration_seconds',
    help: 'Time from a sync run starting to finishing',
    labelNames: ['status'],
    buckets: [0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [registry],
  });
  const sequenceDuration = new Histogram({
    name: 'lockstep_sequence_run_duration_seconds',
    help: 'Time from a sequence run starting to finishing',
    labelNames: ['status'],
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400],
    registers: [registry],
  });
  const phaseSeconds = new Histogram({
    name: 'lockstep_sync_run_phase_seconds',
    help: "Where finished sync runs' time went, per phase (they add up to the run's time): connect, query, plan, deliver, commit, rateLimit, retry, finish",
    labelNames: ['phase'],
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [registry],
  });
  const delivered = new Counter({ name: 'lockstep_rows_delivered_total', help: 'Rows the destinations accepted', registers: [registry] });
  const rejected = new Counter({ name: 'lockstep_rows_rejected_total', help: 'Rows rejected (by the destination or while planning)', registers: [registry] });
  const handOff = new Histogram({
    name: 'lockstep_handoff_latency_seconds',
    help: "Time from a sequence member's predecessor ending to the member starting",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const apiUsed = new Gauge({ name: 'lockstep_destination_api_usage', help: `API calls counted against a destination's limit, as it last reported (e.g. Salesforce's Sforce-Limit-Info): the destination's own count, exported by each process that saw it, so ${AGGREGATE_WITH_MAX}`, labelNames: ['destination'], registers: [registry] });
  const apiLimit = new Gauge({ name: 'lockstep_destination_api_limit', help: `The limit of a destination's API calls, as it last reported: exported by each process that saw it, so ${AGGREGATE_WITH_MAX}`, labelNames: ['destination'], registers: [registry] });
  const apiCalls = new Counter({ name: 'lockstep_destination_api_calls_total', help: 'API calls Lockstep made to a destination', labelNames: ['destination'], registers: [registry] });
  const { store } = deps;
  new Gauge({
    name: 'lockstep_worker_leases',
    help: 'Sync runs this worker holds a lease on, labelled with its worker id',
    labelNames: ['worker'],
    registers: [registry],
    async collect() {
      this.reset();
      this.set({ worker: deps.worker.workerId }, deps.worker.leasedIds.length);
    },
  });
  // Read from the store, so the same in every process: exported by serve alone (`worker` and
  // `scheduler` count only what they do). Several serve processes on one PostgreSQL store each
  // export them: a sum over processes would count them as many times.
  // A store that does not answer leaves its gauges without a sample (a stale value or 0 would read
  // as the store's) rather than failing the scrape, which would lose this process's own metrics too.
  const readFromStore = async (gauge: Gauge, read: () => Promise<number>) => {
    try {
      gauge.set(await read());
    } catch (thrown) {
      gauge.remove();
      deps.logger.debug('a metric read from the store is left out: the store does not answer', { error: toError(thrown).message });
    }
  };
  if (options.storeGauges) {
    new Gauge({
      name: 'lockstep_queue_depth',
      help: `Queued sync runs plus pending sequence runs, read from the store: every serve process on the store exports the same value, so ${AGGREGATE_WITH_MAX}`,
      registers: [registry],
      async collect() {
        await readFromStore(this, async () => {
          const [queued, pending] = await Promise.all([store.listQueuedSyncRuns(), store.listSequenceRunsByStatus(['pending'])]);
          return queued.length + pending.length;
        });
      },
    });
    new Gauge({
      name: 'lockstep_active_runs',
      help: `Sync runs held by any worker sharing the store, read from the store: every serve process on the store exports the same value, so ${AGGREGATE_WITH_MAX}`,
      registers: [registry],
      async collect() {
        await readFromStore(this, async () => (await store.listLeases()).length);
      },
    });
  }

  const observedStarts = new Set<number>();
  const onMemberStart = async (run: SyncRun) => {
    if (run.sequenceRunId === null || run.startedAt === null || observedStarts.has(run.id)) return;
    observedStarts.add(run.id);
    const sequenceRun = await store.getSequenceRun(run.sequenceRunId);
    const previousEnd = Math.max(
      -Infinity,
      ...(sequenceRun?.members ?? [])
        .filter((m) => m.key !== run.memberKey && m.finishedAt !== null && m.finishedAt <= (run.startedAt as number))
        .map((m) => m.finishedAt as number),
    );
    if (Number.isFinite(previousEnd)) handOff.observe(((run.startedAt as number) - previousEnd) / 1000);
  };
  const unsubscribe = [
    deps.events.on('syncRun:updated', (run) => {
      if (run.status === 'querying') onMemberStart(run).catch((e: unknown) => deps.logger.debug('hand-off metric failed', { error: toError(e).message }));
    }),
    deps.events.on('syncRun:finished', (run) => {
      observedStarts.delete(run.id);
      syncRuns.inc({ status: run.status });
      if (run.startedAt !== null && run.finishedAt !== null) syncDuration.observe({ status: run.status }, (run.finishedAt - run.startedAt) / 1000);
      if (run.phaseMs) for (const phase of RUN_PHASES) phaseSeconds.observe({ phase }, (run.phaseMs[phase] ?? 0) / 1000);
      delivered.inc(totalCount(run.successfulRows));
      rejected.inc(totalCount(run.failedRows));
      const usage = run.apiUsage;
      if (usage) {
        store
          .getSync(run.syncId)
          .then((sync) => {
            const destination = sync?.destination ?? `sync ${run.syncId}`;
            apiUsed.set({ destination }, usage.used);
            apiLimit.set({ destination }, usage.limit);
            apiCalls.inc({ destination }, usage.calls);
          })
          .catch((e: unknown) => deps.logger.debug('API usage metric failed', { error: toError(e).message }));
      }
    }),
    deps.events.on('sequenceRun:finished', (run) => {
      sequenceRuns.inc({ status: run.status });
      if (run.startedAt !== null && run.finishedAt !== null) sequenceDuration.observe({ status: run.status }, (run.finishedAt - run.startedAt) / 1000);
    }),
  ];
  return {
    registry,
    stop: () => unsubscribe.forEach((off) => off()),
  };
}

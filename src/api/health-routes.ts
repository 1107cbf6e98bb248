/**
 * `/metrics`, `/healthz` and `/readyz`, answered alike by serve and by the metrics listener of
 * `worker` and `scheduler` (`--metrics-port`), so every process is scraped and checked the same way.
 */
import type { Hono } from 'hono';
import { toError } from '../core/errors.js';
import type { ApiDeps } from './context.js';
import type { Metrics } from './metrics.js';

/**
 * What a process runs at the moment, as its `/readyz` tells: `serve` a worker and the scheduler,
 * `worker` a worker, `scheduler` the scheduler alone — so a check of a scheduler is not told of a
 * worker (nor of leases) that process never has.
 */
export interface ProcessActivity {
  /** The id of the worker this process runs, null when it runs none. */
  workerId: string | null;
  /** Whether this process fires the schedules. */
  scheduler: boolean;
}

export interface HealthDeps extends Pick<ApiDeps, 'store' | 'logger'> {
  /** What this process runs now (read at each request: its worker and scheduler start after it listens). */
  activity: () => ProcessActivity;
}

export function registerHealthRoutes(app: Pick<Hono, 'get'>, deps: HealthDeps, metrics: Metrics): void {
  const { store, logger } = deps;
  app.get('/metrics', async (c) => {
    const text = await metrics.registry.metrics();
    return c.body(text, 200, { 'content-type': metrics.registry.contentType });
  });
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const unavailable = (message: string, log: string, thrown: unknown) => {
      logger.warn(`not ready: ${log}`, { error: toError(thrown).message });
      return c.json({ status: 'unavailable', message }, 503);
    };
    let queued: unknown[];
    let leases: Awaited<ReturnType<typeof store.listLeases>>;
    try {
      [queued, leases] = await Promise.all([store.listQueuedSyncRuns(), store.listLeases()]);
    } catch (thrown) {
      return unavailable('the store does not answer', 'the store does not answer', thrown);
    }
    try {
      // A process that cannot read the workspace (its secrets sealed with another key, after a
      // rotation) fails every run and most requests: it is not ready, though the store answers.
      await store.loadWorkspace();
    } catch (thrown) {
      return unavailable('the store answers, but this process cannot read the workspace in it — the server log says why', 'the workspace cannot be read', thrown);
    }
    const { workerId, scheduler } = deps.activity();
    const runs = [...(scheduler ? ['scheduler'] : []), ...(workerId !== null ? ['worker'] : [])];
    const worker =
      workerId === null
        ? {}
        : {
            workerId,
            // The runs this process works on, with their leases as the store holds them.
            leases: leases
              .filter((lease) => lease.workerId === workerId)
              .map((lease) => ({ syncRunId: lease.runId, attempt: lease.attempt, expiresAt: new Date(lease.expiresAt).toISOString() })),
          };
    return c.json({ status: 'ready', runs, ...worker, activeRuns: leases.length, queueDepth: queued.length });
  });
}

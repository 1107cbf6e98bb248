import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { registerHealthRoutes } from '../../src/api/health-routes.js';
import { createMetrics } from '../../src/api/metrics.js';
import type { ApiDeps } from '../../src/api/context.js';
import { EngineEventEmitter } from '../../src/engine/events.js';
import { silentLogger } from '../../src/core/logger.js';

/** A store that no longer answers (its server stopped, the network between cut). */
function unreachableStore(): ApiDeps['store'] {
  const refuse = async () => {
    throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
  };
  return { listQueuedSyncRuns: refuse, listSequenceRunsByStatus: refuse, listLeases: refuse, loadWorkspace: refuse } as unknown as ApiDeps['store'];
}

describe('health routes while the store does not answer', () => {
  it("still answers /metrics with this process's own metrics, leaving out those read from the store", async () => {
    const store = unreachableStore();
    const events = new EngineEventEmitter(silentLogger);
    const worker = { workerId: 'host/1/abc', leasedIds: [] } as unknown as ApiDeps['worker'];
    const metrics = createMetrics({ store, events, logger: silentLogger, worker }, { storeGauges: true });
    const app = new Hono();
    registerHealthRoutes(app, { store, logger: silentLogger, activity: () => ({ workerId: 'host/1/abc', scheduler: true }) }, metrics);
    try {
      const answer = await app.request('/metrics');
      expect(answer.status).toBe(200);
      const text = await answer.text();
      expect(text).toContain('# TYPE lockstep_sync_runs_total counter');
      expect(text).toContain('lockstep_worker_leases{worker="host/1/abc"} 0');
      // No sample for the store's gauges: a stale value or 0 would read as the store's.
      expect(text).toContain('# TYPE lockstep_queue_depth gauge');
      expect(text).not.toMatch(/^lockstep_queue_depth /m);
      expect(text).not.toMatch(/^lockstep_active_runs /m);
      expect((await app.request('/healthz')).status).toBe(200);
      expect((await app.request('/readyz')).status).toBe(503);
    } finally {
      metrics.stop();
    }
  });
});

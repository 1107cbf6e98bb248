/**
 * The listener of `lockstep worker` and `lockstep scheduler` with `--metrics-port`: this process's
 * `/metrics`, `/healthz` and `/readyz`, answered as serve answers them, and nothing else (no API,
 * no UI, no token). Its metrics count what this process does; the gauges read from the store are
 * left to serve, so that summing every process's metrics counts them once.
 */
import { Hono } from 'hono';
import { METRICS_PORT } from '../core/hosts.js';
import type { ApiDeps } from './context.js';
import { registerHealthRoutes, type HealthDeps } from './health-routes.js';
import { errorResponse } from './http-errors.js';
import { listenHttp, type Listening } from './listen-http.js';
import { createMetrics } from './metrics.js';

export type MetricsServerDeps = Pick<ApiDeps, 'events' | 'store' | 'logger' | 'worker'> & Pick<HealthDeps, 'activity'>;

export interface MetricsServer {
  /** Answers one request (what tests call in-process). */
  fetch(request: Request): Promise<Response>;
  /** Starts listening; resolves with the URL. */
  listen(port: number, host: string): Promise<{ url: string; port: number }>;
  /** Stops listening and stops collecting metrics. */
  close(): Promise<void>;
}

export function createMetricsServer(deps: MetricsServerDeps): MetricsServer {
  const metrics = createMetrics(deps, { storeGauges: false });
  const app = new Hono();
  app.onError((thrown, c) => errorResponse(c, thrown, deps.logger));
  registerHealthRoutes(app, deps, metrics);
  app.notFound((c) => c.json({ message: `no route ${c.req.method} ${c.req.path} — this listener answers /metrics, /healthz and /readyz` }, 404));
  let listening: Listening | null = null;
  return {
    fetch: async (request) => app.fetch(request),
    async listen(port, host) {
      listening = await listenHttp(app.fetch, port, host, METRICS_PORT);
      return { url: listening.url, port: listening.port };
    },
    async close() {
      metrics.stop();
      const running = listening;
      listening = null;
      await running?.close();
    },
  };
}

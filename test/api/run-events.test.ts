/**
 * The live events stream (`GET /api/events`) lets go of each client that leaves: its listeners on
 * the engine's events and on the server's shutdown signal go with the connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvents } from '../../src/api/context.js';
import { createApiServer } from '../../src/api/server.js';
import { silentLogger } from '../../src/core/logger.js';
import { startApi, type ApiHarness } from './api-helpers.js';

let api: ApiHarness;

beforeAll(async () => {
  api = await startApi();
});

afterAll(async () => {
  await api?.[Symbol.asyncDispose]();
});

describe('live events', () => {
  it('lets go of each client that leaves: no listener is left behind and no leak warning after many', async () => {
    let subscribed = 0;
    const events: RunEvents = {
      on: (event, listener) => {
        subscribed++;
        const off = api.app.events.on(event, listener);
        return () => {
          subscribed--;
          off();
        };
      },
    };
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const server = createApiServer({ store: api.app.store, runs: api.app.worker, alerts: api.app.alerts, events, logger: silentLogger, clock: api.app.clock, env: {}, connectors: api.app.registry, onWorkspaceChanged: () => {}, uiDir: null, authRequired: false });
    const { url } = await server.listen(0, '127.0.0.1');
    // Metrics listen too, for as long as the server runs.
    const base = subscribed;
    try {
      for (let i = 0; i < 15; i++) {
        const controller = new AbortController();
        const response = await fetch(`${url}/api/events`, { signal: controller.signal });
        await response.body!.getReader().read();
        expect(subscribed - base).toBe(4);
        controller.abort();
        const deadline = Date.now() + 10_000;
        while (subscribed > base && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        expect(subscribed).toBe(base);
      }
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => /MaxListeners/.test(w))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await server.close();
    }
  });
});

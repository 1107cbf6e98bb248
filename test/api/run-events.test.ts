/**
 * The live events stream (`GET /api/events`) lets go of each client that leaves: its listeners on
 * the engine's events and on the server's shutdown signal go with the connection. It also carries
 * the runs other processes sharing the store execute, which the engine of its own process never
 * announces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvents } from '../../src/api/context.js';
import { createApiServer } from '../../src/api/server.js';
import { silentLogger } from '../../src/core/logger.js';
import { EngineEventEmitter } from '../../src/engine/events.js';
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
    const server = createApiServer({ store: api.app.store, runs: api.app.runs, worker: api.app.worker, alerts: api.app.alerts, events, logger: silentLogger, clock: api.app.clock, env: {}, connectors: api.app.registry, onWorkspaceChanged: () => {}, activity: api.app.activity, uiDir: null, authRequired: false });
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

/** Reads `event:`/`data:` pairs from an event stream until `enough` holds for those read so far, or `timeoutMs` passes. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  enough: (events: Array<{ event: string; data: { id: number | string; status: string } }>) => boolean,
  timeoutMs: number,
): Promise<Array<{ event: string; data: { id: number | string; status: string } }>> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const events: Array<{ event: string; data: { id: number | string; status: string } }> = [];
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  let buffered = '';
  try {
    while (!enough(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const blocks = buffered.split('\n\n');
      buffered = blocks.pop()!;
      for (const block of blocks) {
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return events;
}

describe('live events of runs other processes execute', () => {
  it('are read from the store: each sync run and the sequence run are sent up to their end; the reads stop with the last client', async () => {
    // The server hears nothing from an engine: every run it sees, another process sharing the store runs.
    const events = new EngineEventEmitter(silentLogger);
    let reads = 0;
    const store = new Proxy(api.app.store, {
      get: (target, property, receiver) => {
        if (property === 'listSyncRuns') reads++;
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const server = createApiServer({ store, runs: api.app.runs, worker: api.app.worker, alerts: api.app.alerts, events, logger: silentLogger, clock: api.app.clock, env: {}, connectors: api.app.registry, onWorkspaceChanged: () => {}, activity: api.app.activity, uiDir: null, authRequired: false, eventPollMs: 50 });
    const { url } = await server.listen(0, '127.0.0.1');
    const controller = new AbortController();
    try {
      const response = await fetch(`${url}/api/events`, { signal: controller.signal });
      // Past the stream's first read of the store, so the run below is a change to it.
      await new Promise((r) => setTimeout(r, 200));
      const { run } = await api.app.runs.triggerSequence('crm-hierarchy');
      const finished = await api.app.runs.waitForSequenceRun(run.id);
      expect(finished.status).toBe('done');
      const syncRunIds = finished.members.map((m) => m.syncRunId);
      const last = (seen: Awaited<ReturnType<typeof readEvents>>, event: string, id: number | string | null) => seen.filter((e) => e.event === event && e.data.id === id).at(-1)?.data.status;
      const seen = await readEvents(response.body!, (s) => last(s, 'sequenceRun', run.id) === 'done' && syncRunIds.every((id) => last(s, 'syncRun', id) === 'success'), 10_000);
      expect({ sequenceRun: last(seen, 'sequenceRun', run.id), syncRuns: syncRunIds.map((id) => last(seen, 'syncRun', id)) }).toEqual({
        sequenceRun: 'done',
        syncRuns: ['success', 'success', 'success'],
      });
      controller.abort();
      await new Promise((r) => setTimeout(r, 200));
      const after = reads;
      await new Promise((r) => setTimeout(r, 300));
      expect(reads, 'store reads once no client listens').toBe(after);
    } finally {
      controller.abort();
      await server.close();
    }
  });
});

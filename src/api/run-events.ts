/**
 * `GET /api/events`: Server-Sent Events for the UI. Every change of a sync run or sequence run the
 * worker announces is sent as `event: syncRun` / `event: sequenceRun` with the run's view, at most
 * a few times a second per run (the last state always goes out), plus a `: ping` comment now and
 * then so proxies keep the connection open.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { toError } from '../core/errors.js';
import { syncRunView } from '../core/run-views.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';
import { sequenceRunDetails } from '../engine/run-details.js';
import type { ApiDeps } from './context.js';

export interface RunEventOptions {
  /** Least time between two updates of the same run, ms (default: 200). */
  throttleMs: number;
  /** Time between pings, ms (default: 15000). */
  pingIntervalMs: number;
}

interface Pending {
  timer: NodeJS.Timeout | null;
  lastSent: number;
  latest: { kind: 'syncRun'; run: SyncRun } | { kind: 'sequenceRun'; run: SequenceRun } | null;
}

export function streamRunEvents(c: Context, deps: ApiDeps, options: RunEventOptions, closing: AbortSignal): Response {
  return streamSSE(c, async (stream) => {
    const pending = new Map<string, Pending>();
    const slugs = new Map<number, string | null>();
    let open = true;
    const send = async (key: string) => {
      const entry = pending.get(key);
      if (!entry?.latest || !open) return;
      const latest = entry.latest;
      entry.latest = null;
      entry.timer = null;
      entry.lastSent = Date.now();
      try {
        if (latest.kind === 'syncRun') {
          if (!slugs.has(latest.run.syncId)) slugs.set(latest.run.syncId, (await deps.store.getSync(latest.run.syncId))?.slug ?? null);
          await stream.writeSSE({ event: 'syncRun', data: JSON.stringify({ ...syncRunView(latest.run), sync: slugs.get(latest.run.syncId) ?? null }) });
        } else {
          const fresh = (await deps.store.getSequenceRun(latest.run.id)) ?? latest.run;
          await stream.writeSSE({ event: 'sequenceRun', data: JSON.stringify(await sequenceRunDetails(deps.store, fresh)) });
        }
      } catch (thrown) {
        deps.logger.debug('could not send a run update', { error: toError(thrown).message });
      }
    };
    const update = (key: string, latest: NonNullable<Pending['latest']>) => {
      let entry = pending.get(key);
      if (!entry) pending.set(key, (entry = { timer: null, lastSent: 0, latest: null }));
      entry.latest = latest;
      if (entry.timer) return;
      const wait = entry.lastSent + options.throttleMs - Date.now();
      entry.timer = setTimeout(() => void send(key), Math.max(0, wait));
    };
    const unsubscribe = [
      deps.events.on('syncRun:updated', (run) => update(`sync:${run.id}`, { kind: 'syncRun', run })),
      deps.events.on('syncRun:finished', (run) => update(`sync:${run.id}`, { kind: 'syncRun', run })),
      deps.events.on('sequenceRun:updated', (run) => update(`sequence:${run.id}`, { kind: 'sequenceRun', run })),
      deps.events.on('sequenceRun:finished', (run) => update(`sequence:${run.id}`, { kind: 'sequenceRun', run })),
    ];
    const ping = setInterval(() => void stream.write(': ping\n\n').catch(() => undefined), options.pingIntervalMs);
    await stream.write(': connected\n\n');
    // Until the client goes or the server closes; the server's signal outlives every connection, so
    // this connection's listener on it goes with the connection.
    let stop: () => void = () => undefined;
    await new Promise<void>((resolve) => {
      stop = resolve;
      if (closing.aborted) return resolve();
      closing.addEventListener('abort', stop, { once: true });
      stream.onAbort(stop);
    });
    closing.removeEventListener('abort', stop);
    open = false;
    clearInterval(ping);
    for (const off of unsubscribe) off();
    for (const entry of pending.values()) if (entry.timer) clearTimeout(entry.timer);
  });
}

/**
 * `GET /api/events`: Server-Sent Events for the UI. Every change of a sync run or sequence run the
 * worker announces, or {@link StoreRunWatch} finds in the store, is sent as `event: syncRun` /
 * `event: sequenceRun` with the run's view, at most a few times a second per run (the last state
 * always goes out), plus a `: ping` comment now and then so proxies keep the connection open.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { toError } from '../core/errors.js';
import type { EntitySlug, Logger, Store } from '../core/ports.js';
import { runSyncName, syncRunView } from '../core/run-views.js';
import { ACTIVE_SYNC_RUN_STATUSES, TERMINAL_SEQUENCE_RUN_STATUSES, isTerminalSyncRunStatus, type SequenceRun, type SyncRun } from '../core/runs.js';
import { sequenceRunDetails } from '../engine/run-details.js';
import type { ApiDeps } from './context.js';

export interface RunEventOptions {
  /** Least time between two updates of the same run, ms (default: 200). */
  throttleMs: number;
  /** Time between pings, ms (default: 15000). */
  pingIntervalMs: number;
}

/** A run's new state. */
export type RunChange = { kind: 'syncRun'; run: SyncRun } | { kind: 'sequenceRun'; run: SequenceRun };

interface Pending {
  timer: NodeJS.Timeout | null;
  lastSent: number;
  latest: RunChange | null;
  /** Its end was queued: an older state read from the store later no longer replaces it. */
  ended: boolean;
}

function hasEnded(change: RunChange): boolean {
  return change.kind === 'syncRun' ? isTerminalSyncRunStatus(change.run.status) : TERMINAL_SEQUENCE_RUN_STATUSES.includes(change.run.status);
}

/** Recent runs read on each look, besides the active ones: runs that started and ended between two looks. */
const RECENT_RUNS = 50;
/** Active sync runs read on each look at most (each sync has at most one running and one queued). */
const ACTIVE_SYNC_RUNS = 1000;

export interface StoreRunWatchOptions {
  store: Pick<Store, 'listSyncRuns' | 'getSyncRun' | 'listSequenceRuns' | 'listSequenceRunsByStatus' | 'getSequenceRun'>;
  logger: Logger;
  /** Time between two looks at the store, ms. */
  pollIntervalMs: number;
}

/**
 * The changes of runs as the store shows them. A worker announces its runs only in its own process,
 * so the runs of the other processes sharing the store (`lockstep worker`, another `serve`) would
 * never reach this server's event streams: while a stream is open, the active and the most recent
 * runs are read every `pollIntervalMs`, and each run whose state differs from the last look is passed
 * on, as is the last state of each run that left the active ones.
 */
export class StoreRunWatch {
  private readonly listeners = new Set<(change: RunChange) => void>();
  private timer: NodeJS.Timeout | null = null;
  /** Each run's state at the last look (by `sync:<id>` / `sequence:<id>`), or null before the first. */
  private seen: Map<string, string> | null = null;
  /** A look's result is dropped when the watch stopped meanwhile (its `seen` is another's). */
  private generation = 0;
  private looking: Promise<void> | null = null;

  constructor(private readonly options: StoreRunWatchOptions) {}

  /** Passes every change to `listener` until the returned function is called; the store is read only while someone listens. */
  subscribe(listener: (change: RunChange) => void): () => void {
    this.listeners.add(listener);
    if (this.timer === null) {
      this.timer = setInterval(() => this.look(), this.options.pollIntervalMs);
      this.look();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** Stops reading the store and waits for a look under way. */
  async close(): Promise<void> {
    this.listeners.clear();
    this.stop();
    await this.looking;
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.seen = null;
    this.generation++;
  }

  private look(): void {
    if (this.looking) return;
    this.looking = this.readChanges()
      .catch((thrown: unknown) => this.options.logger.debug('could not read the runs for live updates', { error: toError(thrown).message }))
      .finally(() => (this.looking = null));
  }

  private async readChanges(): Promise<void> {
    const { store } = this.options;
    const generation = this.generation;
    const recent = { limit: RECENT_RUNS, offset: 0, order: 'desc' } as const;
    const [activeSyncRuns, recentSyncRuns, activeSequenceRuns, recentSequenceRuns] = await Promise.all([
      store.listSyncRuns({ ...recent, limit: ACTIVE_SYNC_RUNS, statuses: ['queued', ...ACTIVE_SYNC_RUN_STATUSES] }),
      store.listSyncRuns(recent),
      store.listSequenceRunsByStatus(['pending', 'running']),
      store.listSequenceRuns(recent),
    ]);
    const current = new Map<string, RunChange>();
    for (const run of [...recentSyncRuns, ...activeSyncRuns]) current.set(`sync:${run.id}`, { kind: 'syncRun', run });
    for (const run of [...recentSequenceRuns, ...activeSequenceRuns]) current.set(`sequence:${run.id}`, { kind: 'sequenceRun', run });
    const previous = this.seen;
    const next = new Map<string, string>();
    const changes: RunChange[] = [];
    const track = (key: string, change: RunChange) => {
      const state = JSON.stringify(change.run);
      if (previous && previous.get(key) !== state) changes.push(change);
      return state;
    };
    for (const [key, change] of current) next.set(key, track(key, change));
    // A run seen last time and read no more ended since (with more runs created than are read):
    // its last state is passed on once, and it is not followed further.
    for (const key of previous?.keys() ?? []) {
      if (current.has(key)) continue;
      const [kind, id] = key.split(':') as ['sync' | 'sequence', string];
      const change: RunChange | null =
        kind === 'sync'
          ? await store.getSyncRun(Number(id)).then((run) => run && { kind: 'syncRun', run })
          : await store.getSequenceRun(id).then((run) => run && { kind: 'sequenceRun', run });
      if (change) track(key, change);
    }
    if (generation !== this.generation) return;
    this.seen = next;
    for (const change of changes) {
      for (const listener of this.listeners) listener(change);
    }
  }
}

export function streamRunEvents(c: Context, deps: ApiDeps, watch: StoreRunWatch, options: RunEventOptions, closing: AbortSignal): Response {
  return streamSSE(c, async (stream) => {
    const pending = new Map<string, Pending>();
    // The slugs of the syncs whose runs were sent, deleted ones included (see NamedSyncRunView).
    const slugs = new Map<number, EntitySlug>();
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
          if (!slugs.has(latest.run.syncId)) for (const [id, named] of await deps.store.slugsById('sync', [latest.run.syncId])) slugs.set(id, named);
          await stream.writeSSE({ event: 'syncRun', data: JSON.stringify({ ...syncRunView(latest.run, deps.clock.now()), ...runSyncName(latest.run.syncId, slugs) }) });
        } else {
          const fresh = (await deps.store.getSequenceRun(latest.run.id)) ?? latest.run;
          await stream.writeSSE({ event: 'sequenceRun', data: JSON.stringify(await sequenceRunDetails(deps.store, fresh, deps.clock.now())) });
        }
      } catch (thrown) {
        deps.logger.debug('could not send a run update', { error: toError(thrown).message });
      }
    };
    const update = (key: string, latest: RunChange) => {
      let entry = pending.get(key);
      if (!entry) pending.set(key, (entry = { timer: null, lastSent: 0, latest: null, ended: false }));
      // The store may be read just before a run's end is announced here, and its answer come after.
      if (entry.ended && !hasEnded(latest)) return;
      entry.ended = hasEnded(latest);
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
      watch.subscribe((change) => update(change.kind === 'syncRun' ? `sync:${change.run.id}` : `sequence:${change.run.id}`, change)),
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

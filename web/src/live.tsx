/**
 * Live updates: one EventSource on `/api/events` for the whole app. Every `syncRun` or `sequenceRun`
 * event bumps a version number (at most every 250 ms); data hooks reload when it changes, so what
 * is on screen follows the runs without a page reload. The event also bumps the version of the sync
 * or sequence it is about, for a list that shows each one's last run: a run of one reloads its row
 * alone, not every row of the list. A connection that comes back after it was lost bumps `version`
 * and `reconnects` (no event tells of the runs that changed while it was down), so such a list
 * reads every row's last run again in one request. A stream the browser gave up
 * on (an error page instead of events, as a proxy answers while the server restarts) is opened
 * again, waiting a little longer each time.
 */
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { auth } from './api.js';

export type LiveState = 'connecting' | 'live' | 'offline';

/** One sync or one sequence, whose runs' updates a hook follows. */
export type LiveTopic = { sync: string } | { sequence: string };

interface Live {
  /** Changes with every update. */
  version: number;
  /** Changes with the updates of `topic`'s runs. */
  versionOf: (topic: LiveTopic) => number;
  /** Changes each time a lost connection comes back. */
  reconnects: number;
  state: LiveState;
}

interface Versions {
  all: number;
  /** Reconnections. */
  reconnects: number;
  /** Updates by topic key (`sync:<slug>`, `sequence:<slug>`). */
  of: ReadonlyMap<string, number>;
}

/** The first wait before opening a stream the browser closed again, ms; it doubles up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

const topicKey = (topic: LiveTopic): string => ('sync' in topic ? `sync:${topic.sync}` : `sequence:${topic.sequence}`);

/** The topic an event's run belongs to: a sync run's `sync`, a sequence run's `sequence` (null once deleted). */
function topicOf(event: Event): string | null {
  try {
    const run = JSON.parse(String((event as MessageEvent).data)) as { sync?: unknown; sequence?: unknown };
    if (event.type === 'syncRun' && typeof run.sync === 'string') return topicKey({ sync: run.sync });
    if (event.type === 'sequenceRun' && typeof run.sequence === 'string') return topicKey({ sequence: run.sequence });
  } catch {
    // Not JSON: the update still reaches the hooks that follow every run.
  }
  return null;
}

const LiveContext = createContext<Live>({ version: 0, versionOf: () => 0, reconnects: 0, state: 'offline' });

export function LiveProvider({ children }: { children: ReactNode }) {
  const [versions, setVersions] = useState<Versions>({ all: 0, reconnects: 0, of: new Map() });
  const [state, setState] = useState<LiveState>('connecting');

  useEffect(() => {
    const token = auth.token();
    const url = token ? `/api/events?token=${encodeURIComponent(token)}` : '/api/events';
    let source: EventSource | undefined;
    let pending: number | undefined;
    let retry: number | undefined;
    let retryMs = RETRY_MIN_MS;
    let wasOpen = false;
    // What the next bump is about: topic keys, and whether a connection came back.
    let topics = new Set<string>();
    let reconnected = false;
    const bump = (topic: string | null) => {
      if (topic !== null) topics.add(topic);
      if (pending !== undefined) return;
      pending = window.setTimeout(() => {
        pending = undefined;
        const bumped = topics;
        const reconnect = reconnected;
        topics = new Set();
        reconnected = false;
        setVersions((previous) => {
          const of = new Map(previous.of);
          for (const key of bumped) of.set(key, (of.get(key) ?? 0) + 1);
          return { all: previous.all + 1, reconnects: previous.reconnects + (reconnect ? 1 : 0), of };
        });
      }, 250);
    };
    const onRun = (event: Event) => bump(topicOf(event));
    const connect = () => {
      retry = undefined;
      const opened = new EventSource(url);
      source = opened;
      opened.addEventListener('open', () => {
        setState('live');
        retryMs = RETRY_MIN_MS;
        if (wasOpen) {
          reconnected = true;
          bump(null);
        }
        wasOpen = true;
      });
      opened.addEventListener('error', () => {
        // The browser retries a dropped connection by itself; an answer that is not an event stream it does not.
        if (opened.readyState !== EventSource.CLOSED) return setState('connecting');
        setState('offline');
        retry = window.setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      });
      opened.addEventListener('syncRun', onRun);
      opened.addEventListener('sequenceRun', onRun);
    };
    connect();
    return () => {
      if (pending !== undefined) window.clearTimeout(pending);
      if (retry !== undefined) window.clearTimeout(retry);
      source?.close();
    };
  }, []);

  const live: Live = {
    version: versions.all,
    versionOf: (topic) => versions.of.get(topicKey(topic)) ?? 0,
    reconnects: versions.reconnects,
    state,
  };
  return <LiveContext.Provider value={live}>{children}</LiveContext.Provider>;
}

export function useLive(): Live {
  return useContext(LiveContext);
}

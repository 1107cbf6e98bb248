/**
 * Live updates: one EventSource on `/api/events` for the whole app. Every `syncRun` or `sequenceRun`
 * event bumps a version number (at most every 250 ms); data hooks reload when it changes, so what
 * is on screen follows the runs without a page reload. A connection that comes back after it was
 * lost bumps it too: no event tells of the runs that changed while it was down. A stream the browser
 * gave up on (an error page instead of events, as a proxy answers while the server restarts) is
 * opened again, waiting a little longer each time.
 */
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { auth } from './api.js';

export type LiveState = 'connecting' | 'live' | 'offline';

interface Live {
  version: number;
  state: LiveState;
}

/** The first wait before opening a stream the browser closed again, ms; it doubles up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

const LiveContext = createContext<Live>({ version: 0, state: 'offline' });

export function LiveProvider({ children }: { children: ReactNode }) {
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<LiveState>('connecting');

  useEffect(() => {
    const token = auth.token();
    const url = token ? `/api/events?token=${encodeURIComponent(token)}` : '/api/events';
    let source: EventSource | undefined;
    let pending: number | undefined;
    let retry: number | undefined;
    let retryMs = RETRY_MIN_MS;
    let wasOpen = false;
    const bump = () => {
      if (pending !== undefined) return;
      pending = window.setTimeout(() => {
        pending = undefined;
        setVersion((v) => v + 1);
      }, 250);
    };
    const connect = () => {
      retry = undefined;
      const opened = new EventSource(url);
      source = opened;
      opened.addEventListener('open', () => {
        setState('live');
        retryMs = RETRY_MIN_MS;
        if (wasOpen) bump();
        wasOpen = true;
      });
      opened.addEventListener('error', () => {
        // The browser retries a dropped connection by itself; an answer that is not an event stream it does not.
        if (opened.readyState !== EventSource.CLOSED) return setState('connecting');
        setState('offline');
        retry = window.setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      });
      opened.addEventListener('syncRun', bump);
      opened.addEventListener('sequenceRun', bump);
    };
    connect();
    return () => {
      if (pending !== undefined) window.clearTimeout(pending);
      if (retry !== undefined) window.clearTimeout(retry);
      source?.close();
    };
  }, []);

  return <LiveContext.Provider value={{ version, state }}>{children}</LiveContext.Provider>;
}

export function useLive(): Live {
  return useContext(LiveContext);
}

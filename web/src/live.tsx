/**
 * Live updates: one EventSource on `/api/events` for the whole app. Every `syncRun` or `sequenceRun`
 * event bumps a version number (at most every 250 ms); data hooks reload when it changes, so what
 * is on screen follows the runs without a page reload.
 */
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { auth } from './api.js';

export type LiveState = 'connecting' | 'live' | 'offline';

interface Live {
  version: number;
  state: LiveState;
}

const LiveContext = createContext<Live>({ version: 0, state: 'offline' });

export function LiveProvider({ children }: { children: ReactNode }) {
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<LiveState>('connecting');

  useEffect(() => {
    const token = auth.token();
    const source = new EventSource(token ? `/api/events?token=${encodeURIComponent(token)}` : '/api/events');
    let pending: number | undefined;
    const bump = () => {
      if (pending !== undefined) return;
      pending = window.setTimeout(() => {
        pending = undefined;
        setVersion((v) => v + 1);
      }, 250);
    };
    source.addEventListener('open', () => setState('live'));
    source.addEventListener('error', () => setState(source.readyState === EventSource.CLOSED ? 'offline' : 'connecting'));
    source.addEventListener('syncRun', bump);
    source.addEventListener('sequenceRun', bump);
    return () => {
      if (pending !== undefined) window.clearTimeout(pending);
      source.close();
    };
  }, []);

  return <LiveContext.Provider value={{ version, state }}>{children}</LiveContext.Provider>;
}

export function useLive(): Live {
  return useContext(LiveContext);
}

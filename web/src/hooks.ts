import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from './api.js';
import { useLive, type LiveTopic } from './live.js';

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  /** Shows `data` at once (an answer the server already gave), until the next load replaces it. */
  set: (data: T) => void;
}

/**
 * GETs `path` (nothing when null), again when `path` changes, when `reload()` is called and, with
 * `live`, on every live update (`true`), on those of one sync's or sequence's runs (a topic), or
 * each time a lost connection comes back (`'reconnects'`). Earlier data stays on screen while a
 * reload is under way.
 */
export function useApi<T>(path: string | null, options: { live?: boolean | LiveTopic | 'reconnects' } = {}): Resource<T> {
  const live = useLive();
  const liveVersion =
    options.live === true ? live.version : options.live === 'reconnects' ? live.reconnects : options.live ? live.versionOf(options.live) : 0;
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(path !== null);
  const [nonce, setNonce] = useState(0);
  const lastPath = useRef<string | null>(null);

  useEffect(() => {
    if (path === null) {
      setData(undefined);
      setLoading(false);
      return;
    }
    let stale = false;
    if (lastPath.current !== path) {
      lastPath.current = path;
      setData(undefined);
      setLoading(true);
    }
    api.get<T>(path).then(
      (value) => {
        if (stale) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (thrown: unknown) => {
        if (stale) return;
        setError(thrown);
        setLoading(false);
      },
    );
    return () => {
      stale = true;
    };
  }, [path, nonce, liveVersion]);

  const reload = useCallback(() => setNonce((n) => n + 1), []);
  const set = useCallback((value: T) => setData(value), []);
  return { data, error, loading, reload, set };
}

/** Re-renders every `ms` while `active` (running durations tick). */
export function useTicker(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    // At once too: the time kept since the last tick may be older than a run that just started.
    setNow(Date.now());
    const id = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(id);
  }, [active, ms]);
  return now;
}

/** How often a page with nothing running refreshes its relative times, ms. */
const RELATIVE_TIME_TICK_MS = 30_000;

/**
 * The time that durations and relative times ("5 minutes ago") are shown against: every second while
 * `running` (a running duration ticks), every 30 seconds otherwise, so a page left open does not go
 * on saying "2 minutes ago" of a run an hour old.
 */
export function useClock(running: boolean): number {
  return useTicker(true, running ? 1000 : RELATIVE_TIME_TICK_MS);
}

export interface PageAction {
  /** True while an action is under way; the page's buttons wait for it. */
  busy: boolean;
  /** Why the last action failed, for an error banner. */
  error: unknown;
  /** What the last action did, when it said (`done`). */
  notice: string | null;
  /** Runs `what`; when it succeeds, shows `done` (or what `done` says of its result) and calls the hook's `reload`. */
  act: <T>(what: () => Promise<T>, done?: string | ((result: T) => string)) => Promise<void>;
}

/** The buttons of a page that change what it shows: one action at a time, then `reload`. */
export function usePageAction(reload: () => void): PageAction {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [notice, setNotice] = useState<string | null>(null);
  const act = async <T,>(what: () => Promise<T>, done?: string | ((result: T) => string)) => {
    setBusy(true);
    setError(undefined);
    setNotice(null);
    try {
      const result = await what();
      if (done) setNotice(typeof done === 'string' ? done : done(result));
      reload();
    } catch (thrown) {
      setError(thrown);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, notice, act };
}

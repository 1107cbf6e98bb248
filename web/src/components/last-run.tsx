/** The cells a list of syncs or sequences shows for each one: whether it is enabled, and its last run. */
import { useState } from 'react';
import type { Page, SequenceRunView, SyncRunView } from '../api-types.js';
import { seg } from '../api.js';
import { formatRelative, formatTime } from '../format.js';
import { useApi, useClock } from '../hooks.js';
import { useLive, type LiveTopic } from '../live.js';
import { StatusBadge } from './ui.js';

export function EnabledBadge({ enabled }: { enabled: boolean }) {
  return enabled ? <span className="badge badge-good">Enabled</span> : <span className="badge badge-muted">Disabled</span>;
}

/** What a list shows of a run. */
type ShownRun = Pick<SyncRunView | SequenceRunView, 'status' | 'createdAt' | 'startedAt'>;

/** One row's last run as the list's answer has it. */
export interface LastRunRead {
  run: ShownRun | null;
  loading: boolean;
  error: unknown;
}

/**
 * The last run of every sync (or every sequence) of a list, in one request (`/api/sync-runs/latest`,
 * `/api/sequence-runs/latest`), read again when a lost connection comes back: no event told of the
 * runs that changed while it was down. Each row follows its own runs' updates from there (LastRun,
 * keyed by `generation`, which changes as the answer is read again).
 */
export function useLastRuns(kind: 'sync' | 'sequence'): { read: (slug: string) => LastRunRead; generation: number } {
  const latest = useApi<{ data: Array<SyncRunView | SequenceRunView> }>(kind === 'sync' ? '/api/sync-runs/latest' : '/api/sequence-runs/latest', { live: 'reconnects' });
  const generation = useLive().reconnects;
  const bySlug = new Map<string, ShownRun>();
  for (const run of latest.data?.data ?? []) {
    const slug = 'sequenceId' in run ? run.sequence : run.sync;
    if (slug !== null) bySlug.set(slug, run);
  }
  return { read: (slug) => ({ run: bySlug.get(slug) ?? null, loading: latest.loading, error: latest.error }), generation };
}

/**
 * The last run of `of`, a sync or a sequence: `read`, from the list's answer (useLastRuns), until
 * one of its runs changes; then its own newest runs, read again with each update of its runs. A run
 * queued behind one under way (there is at most one) is not shown over it. Keyed by the list's
 * answer's `generation`, so an answer read again replaces what a row read before it.
 */
export function LastRun({ of, read }: { of: LiveTopic; read: LastRunRead }) {
  const updates = useLive().versionOf(of);
  const [updatesAtRead] = useState(updates);
  const runsPath = 'sync' in of ? `/api/syncs/${seg(of.sync)}/runs` : `/api/sequences/${seg(of.sequence)}/runs`;
  const own = useApi<Page<ShownRun>>(updates === updatesAtRead ? null : `${runsPath}?limit=2`, { live: of });
  const now = useClock(false);
  const last = own.data ? (own.data.data.find((r) => r.status !== 'pending' && r.status !== 'queued') ?? own.data.data[0]) : read.run;
  if (!last) {
    const loading = own.data === undefined && read.loading;
    const failed = own.data === undefined && Boolean(read.error);
    return <span className="muted">{loading ? '…' : failed ? 'unavailable' : 'Never run'}</span>;
  }
  // The time shown and its tooltip are one time, said which: when the run started, or, when it never
  // did (waiting in the queue, or cancelled there), when it was queued.
  const [what, at] = last.startedAt ? ['Started', last.startedAt] : ['Queued', last.createdAt];
  return (
    <span className="last-run">
      <StatusBadge status={last.status} />
      <time dateTime={at} title={`${what} ${formatTime(at)}`}>
        {last.startedAt ? formatRelative(at, now) : `queued ${formatRelative(at, now)}`}
      </time>
    </span>
  );
}

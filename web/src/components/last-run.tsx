/** The cells a list of syncs or sequences shows for each one: whether it is enabled, and its last run. */
import type { Page, SequenceRunView, SyncRunView } from '../api-types.js';
import { seg } from '../api.js';
import { formatRelative, formatTime } from '../format.js';
import { useApi, useClock } from '../hooks.js';
import type { LiveTopic } from '../live.js';
import { StatusBadge } from './ui.js';

export function EnabledBadge({ enabled }: { enabled: boolean }) {
  return enabled ? <span className="badge badge-good">Enabled</span> : <span className="badge badge-muted">Disabled</span>;
}

/**
 * The newest run of `of`, a sync or a sequence, kept live by its own runs' updates: its status and
 * when it started. A run queued behind one under way (there is at most one) is not shown over it.
 */
export function LastRun({ of }: { of: LiveTopic }) {
  const runsPath = 'sync' in of ? `/api/syncs/${seg(of.sync)}/runs` : `/api/sequences/${seg(of.sequence)}/runs`;
  const runs = useApi<Page<Pick<SyncRunView | SequenceRunView, 'status' | 'createdAt' | 'startedAt'>>>(`${runsPath}?limit=2`, { live: of });
  const last = runs.data?.data.find((r) => r.status !== 'pending' && r.status !== 'queued') ?? runs.data?.data[0];
  const now = useClock(false);
  if (!last) return <span className="muted">{runs.loading ? '…' : runs.error ? 'unavailable' : 'Never run'}</span>;
  return (
    <span className="last-run">
      <StatusBadge status={last.status} />
      <time dateTime={last.createdAt} title={formatTime(last.createdAt)}>
        {formatRelative(last.startedAt ?? last.createdAt, now)}
      </time>
    </span>
  );
}

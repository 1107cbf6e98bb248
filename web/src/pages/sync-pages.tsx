/**
 * Syncs: the list, and one sync's page with its run history (added/changed/removed ×
 * successful/rejected per run), Run now, enable/disable, and a run's rejected rows with reasons.
 */
import { Fragment, useEffect, useState } from 'react';
import type { Page, RejectedRowView, Sync, SyncRunView, Workspace } from '../api-types.js';
import { api, seg } from '../api.js';
import { CancelRunButton, useCancelRun } from '../components/cancel-run.js';
import { EnabledBadge, LastRun } from '../components/last-run.js';
import { RunFacts, RunTimeCells } from '../components/run-facts.js';
import { RunHistory } from '../components/run-history.js';
import { Dialog, EmptyState, ErrorBanner, Loading, Pager, StatusBadge, Switch } from '../components/ui.js';
import { formatCount, scheduleInWords } from '../format.js';
import { useApi, usePageAction, useTicker } from '../hooks.js';
import { href, navigate } from '../router.js';

const RUNS_PAGE = 20;
const REJECTED_PAGE = 25;
const ACTIVE_SYNC = ['queued', 'querying', 'processing', 'reporting'];
const OPS = [
  ['added', 'addedCount'],
  ['changed', 'changedCount'],
  ['removed', 'removedCount'],
] as const;

export function SyncsPage() {
  const workspace = useApi<Workspace>('/api/workspace');
  useEffect(() => {
    document.title = 'Syncs · Lockstep';
  }, []);
  const sequencesOf = (slug: string) => workspace.data?.sequences.filter((s) => s.members.some((m) => m.sync === slug)).map((s) => s.slug) ?? [];
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1>Syncs</h1>
          <p className="subtitle">Each sync sends a model's changed rows to a destination object.</p>
        </div>
      </header>
      <ErrorBanner error={workspace.error} title="Could not load the syncs" />
      {workspace.loading && !workspace.data && <Loading />}
      {workspace.data && workspace.data.syncs.length === 0 && (
        <EmptyState title="No syncs yet">
          <p>
            A sync moves the rows of a model (a SQL query on a source) into a table or object of a destination, sending only what changed. Declare syncs in{' '}
            <code>lockstep.yaml</code> and run <code>lockstep apply</code>; they appear here.
          </p>
        </EmptyState>
      )}
      {workspace.data && workspace.data.syncs.length > 0 && (
        <table className="table clickable">
          <thead>
            <tr>
              <th scope="col">Sync</th>
              <th scope="col">Model → destination</th>
              <th scope="col">Mode</th>
              <th scope="col">Schedule</th>
              <th scope="col">Sequences</th>
              <th scope="col">Enabled</th>
              <th scope="col">Last run</th>
            </tr>
          </thead>
          <tbody>
            {workspace.data.syncs.map((sync) => (
              <SyncRow key={sync.slug} sync={sync} sequences={sequencesOf(sync.slug)} />
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function SyncRow({ sync, sequences }: { sync: Sync; sequences: string[] }) {
  return (
    <tr onClick={() => navigate(href.sync(sync.slug))}>
      <td>
        <a href={href.sync(sync.slug)} onClick={(e) => e.stopPropagation()}>
          {sync.slug}
        </a>
      </td>
      <td>
        {sync.model} → {sync.destination}.{sync.object}
      </td>
      <td>{sync.mode}</td>
      <td>{scheduleInWords(sync.schedule)}</td>
      <td>{sequences.length > 0 ? sequences.join(', ') : <span className="muted">—</span>}</td>
      <td>
        <EnabledBadge enabled={sync.enabled} />
      </td>
      <td>
        <LastRun runsPath={`/api/syncs/${seg(sync.slug)}/runs`} />
      </td>
    </tr>
  );
}

export function SyncPage({ slug, runId }: { slug: string; runId?: number }) {
  const workspace = useApi<Workspace>('/api/workspace');
  const sync = workspace.data?.syncs.find((s) => s.slug === slug);
  const [offset, setOffset] = useState(0);
  const runs = useApi<Page<SyncRunView>>(`/api/syncs/${seg(slug)}/runs?limit=${RUNS_PAGE}&offset=${offset}`, { live: true });
  const { busy, error: actionError, notice, act } = usePageAction(() => {
    workspace.reload();
    runs.reload();
  });

  useEffect(() => {
    document.title = `${slug} · Lockstep`;
  }, [slug]);

  if (workspace.loading && !workspace.data) return <Loading />;
  if (!workspace.data) return <ErrorBanner error={workspace.error} title="Could not load the sync" />;
  if (!sync) {
    return (
      <div className="page">
        <EmptyState title={`There is no sync “${slug}”`} action={<a className="button" href={href.syncs()}>Back to syncs</a>}>
          <p>It may have been removed from the workspace files by the last <code>lockstep apply</code>.</p>
        </EmptyState>
      </div>
    );
  }

  const setEnabled = async (enabled: boolean) => {
    const saved = await api.patch<Sync>(`/api/syncs/${seg(slug)}`, { enabled });
    const current = workspace.data;
    if (current) workspace.set({ ...current, syncs: current.syncs.map((s) => (s.slug === slug ? { ...s, enabled: saved?.enabled ?? enabled } : s)) });
  };
  const run = (options: { fullResync?: boolean; resetCDC?: boolean }, done: string) =>
    act(async () => {
      await api.post<SyncRunView>(`/api/syncs/${seg(slug)}/runs`, options);
      setOffset(0);
    }, done);

  return (
    <div className="page">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <a href={href.syncs()}>Syncs</a> / {sync.slug}
          </p>
          <h1>{sync.slug}</h1>
          <p className="subtitle">
            {sync.model} → {sync.destination}.{sync.object} · {sync.mode}
            {sync.mode !== 'mirror' && sync.deleteBehavior === 'delete' && ', deletes removed rows'} · {scheduleInWords(sync.schedule)}
          </p>
        </div>
        <div className="header-actions">
          <Switch
            label="Enabled"
            checked={sync.enabled}
            disabled={busy}
            onChange={(enabled) => void act(() => setEnabled(enabled), enabled ? 'Sync enabled.' : 'Sync disabled: its schedule no longer starts it.')}
          />
          <details className="menu">
            <summary className="button">More</summary>
            <div className="menu-items">
              <button type="button" onClick={() => void run({ fullResync: true }, 'Full resync started: every row is sent again.')} disabled={busy}>
                Full resync
              </button>
              <button type="button" onClick={() => void run({ resetCDC: true }, 'Snapshot reset started: nothing is sent.')} disabled={busy}>
                Reset snapshot (no sending)
              </button>
            </div>
          </details>
          <button type="button" className="button primary" onClick={() => void run({}, 'Run started.')} disabled={busy}>
            Run now
          </button>
        </div>
      </header>
      <ErrorBanner error={actionError} />
      {notice && (
        <div className="banner banner-info" role="status">
          {notice}
        </div>
      )}
      {sync.mappings.length > 0 && (
        <p className="hint">
          Mappings: {sync.mappings.map((m) => `${m.from} → ${m.to}`).join(', ')}; other columns keep their names.
        </p>
      )}

      <section className="card" aria-labelledby="sync-runs-heading">
        <h2 id="sync-runs-heading">Run history</h2>
        <RunHistory
          runs={runs}
          offset={offset}
          limit={RUNS_PAGE}
          onOffset={setOffset}
          empty={offset > 0 ? 'No more runs.' : 'This sync has not run yet. Use Run now, or wait for its schedule.'}
          table={(page) => <SyncRunsTable runs={page} onOpen={(id) => navigate(href.syncRun(slug, id))} />}
        />
      </section>

      {runId !== undefined && <SyncRunDialog id={runId} onClose={() => navigate(href.sync(slug))} />}
    </div>
  );
}

function SyncRunsTable({ runs, onOpen }: { runs: SyncRunView[]; onOpen: (id: number) => void }) {
  const now = useTicker(runs.some((r) => ACTIVE_SYNC.includes(r.status)));
  return (
    <table className="table clickable counts" aria-label="Sync runs">
      <thead>
        <tr>
          <th scope="col" rowSpan={2}>
            Status
          </th>
          <th scope="col" rowSpan={2}>
            Trigger
          </th>
          <th scope="col" rowSpan={2}>
            Started
          </th>
          <th scope="col" rowSpan={2}>
            Duration
          </th>
          {OPS.map(([op]) => (
            <th key={op} scope="colgroup" colSpan={2} className="group">
              {op[0]!.toUpperCase() + op.slice(1)}
            </th>
          ))}
        </tr>
        <tr>
          {OPS.map(([op]) => (
            <Fragment key={op}>
              <th scope="col" className="num sub">
                successful
              </th>
              <th scope="col" className="num sub">
                rejected
              </th>
            </Fragment>
          ))}
        </tr>
      </thead>
      <tbody>
        {runs.map((run) => (
          <tr key={run.id} onClick={() => onOpen(run.id)} data-run={run.id}>
            <td>
              <StatusBadge status={run.status} />
              {ACTIVE_SYNC.includes(run.status) && run.status !== 'queued' && (
                <progress max={1} value={run.completionRatio} aria-label={`Progress of run ${run.id}`} />
              )}
            </td>
            <RunTimeCells run={run} now={now} openLabel={`Open sync run ${run.id}`} onOpen={() => onOpen(run.id)} />
            {OPS.map(([op, field]) => (
              <Fragment key={op}>
                <td className={`num${run.successfulRows[field] > 0 ? ' good-num' : ' muted'}`} data-count={`${op}-successful`}>
                  {formatCount(run.successfulRows[field])}
                </td>
                <td className={`num${run.failedRows[field] > 0 ? ' bad-num' : ' muted'}`} data-count={`${op}-rejected`}>
                  {formatCount(run.failedRows[field])}
                </td>
              </Fragment>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A composite key `{a: 1, b: 2}` as `a=1, b=2`; a single value as itself. */
function keyInWords(key: unknown): string {
  if (key === null || key === undefined) return '(null)';
  if (Array.isArray(key)) return key.map(keyInWords).join(', ');
  if (typeof key === 'object') return Object.entries(key as Record<string, unknown>).map(([k, v]) => `${k}=${keyInWords(v)}`).join(', ');
  return String(key);
}

function SyncRunDialog({ id, onClose }: { id: number; onClose: () => void }) {
  const run = useApi<SyncRunView>(`/api/sync-runs/${id}`, { live: true });
  const [offset, setOffset] = useState(0);
  const rejected = useApi<Page<RejectedRowView>>(`/api/sync-runs/${id}/rejected-rows?limit=${REJECTED_PAGE}&offset=${offset}`, { live: true });
  const cancel = useCancelRun(`/api/sync-runs/${id}/cancel`, run.reload);
  const data = run.data;
  const active = data ? ACTIVE_SYNC.includes(data.status) : false;
  const now = useTicker(active);

  return (
    <Dialog title={`Sync run #${id}`} onClose={onClose} wide>
      {run.loading && !data && <Loading />}
      <ErrorBanner error={run.error} title="Could not load the run" />
      <ErrorBanner error={cancel.error} title="Could not cancel" />
      {data && (
        <>
          <RunFacts run={data} now={now}>
            <div>
              <dt>Rows queried</dt>
              <dd>{formatCount(data.querySize)}</dd>
            </div>
          </RunFacts>
          {active && data.status !== 'queued' && <progress className="wide" max={1} value={data.completionRatio} aria-label="Progress" />}
          {data.error && (
            <div className="banner banner-error" role="note">
              <strong>Fatal error:</strong> {data.error}
            </div>
          )}
          <table className="table compact counts" aria-label="Row counts">
            <thead>
              <tr>
                <th scope="col">Rows</th>
                <th scope="col" className="num">
                  Planned
                </th>
                <th scope="col" className="num">
                  Successful
                </th>
                <th scope="col" className="num">
                  Rejected
                </th>
              </tr>
            </thead>
            <tbody>
              {OPS.map(([op, field]) => (
                <tr key={op}>
                  <th scope="row">{op[0]!.toUpperCase() + op.slice(1)}</th>
                  <td className="num">{formatCount(data.plannedRows[field])}</td>
                  <td className={`num${data.successfulRows[field] > 0 ? ' good-num' : ''}`}>{formatCount(data.successfulRows[field])}</td>
                  <td className={`num${data.failedRows[field] > 0 ? ' bad-num' : ''}`}>{formatCount(data.failedRows[field])}</td>
                </tr>
              ))}
            </tbody>
          </table>

          <h3>Rejected rows</h3>
          <ErrorBanner error={rejected.error} title="Could not load the rejected rows" />
          {rejected.data && rejected.data.data.length === 0 && offset === 0 && <p className="empty-inline">No rejected rows in this run.</p>}
          {rejected.data && rejected.data.data.length > 0 && (
            <table className="table compact" aria-label="Rejected rows">
              <thead>
                <tr>
                  <th scope="col">Primary key</th>
                  <th scope="col">Operation</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {rejected.data.data.map((row, i) => (
                  <tr key={`${offset + i}`}>
                    <td className="mono">{keyInWords(row.key)}</td>
                    <td>{row.op}</td>
                    <td className="reason">{row.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {rejected.data && (
            <Pager label="Rejected rows pages" offset={offset} limit={REJECTED_PAGE} hasMore={rejected.data.hasMore} count={rejected.data.data.length} onChange={setOffset} />
          )}
          {active && <CancelRunButton onCancel={cancel.cancel} />}
        </>
      )}
    </Dialog>
  );
}

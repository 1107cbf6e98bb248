/**
 * Syncs: the list, and one sync's page with its run history (added/changed/removed ×
 * successful/rejected per run), Run now, enable/disable, Edit, and a run's rejected rows with
 * reasons (in a dialog at `/syncs/<slug>/runs/<id>`, which links to the run's own page).
 */
import { Fragment, useEffect, useRef, useState } from 'react';
import type { Page, Sync, SyncRunView, Workspace } from '../api-types.js';
import { api, seg } from '../api.js';
import { RowCancelButton, cancelPending, syncRunCancelQuestion } from '../components/cancel-run.js';
import { EnabledBadge, LastRun, useLastRuns, type LastRunRead } from '../components/last-run.js';
import { ACTIVE_SYNC, CANCELLABLE_SYNC, OPS, SyncRunDetails, useSyncRun } from '../components/run-details.js';
import { RunTimeCells } from '../components/run-facts.js';
import { RunHistory, StatusFilter } from '../components/run-history.js';
import { ActionButton, Dialog, EmptyState, ErrorBanner, Loading, StatusBadge, Switch } from '../components/ui.js';
import { formatCount, nextRunInWords, scheduleInWords, syncTargetInWords } from '../format.js';
import { useApi, useClock, usePageAction } from '../hooks.js';
import { closeTo, href, navigate } from '../router.js';

/** The statuses the run history filters by, as [value, label]. */
const SYNC_RUN_FILTERS = [
  ['queued,querying,processing,reporting', 'Running or queued'],
  ['success', 'Success'],
  ['warning', 'Warning'],
  ['failed', 'Failed'],
  ['cancelled', 'Cancelled'],
  ['interrupted', 'Interrupted'],
] as const;

const RUNS_PAGE = 20;

export function SyncsPage() {
  const workspace = useApi<Workspace>('/api/workspace');
  const lastRuns = useLastRuns('sync');
  useEffect(() => {
    document.title = 'Syncs · Lockstep';
  }, []);
  const addButton = (
    <a className="button primary" href={href.newSync()}>
      Add sync
    </a>
  );
  const destinations = workspace.data?.destinations ?? [];
  const sequencesOf = (slug: string) => workspace.data?.sequences.filter((s) => s.members.some((m) => m.sync === slug)).map((s) => s.slug) ?? [];
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1>Syncs</h1>
          <p className="subtitle">Each sync sends a model's changed rows to a destination object.</p>
        </div>
        {workspace.data && workspace.data.syncs.length > 0 && addButton}
      </header>
      <ErrorBanner error={workspace.error} title="Could not load the syncs" />
      {workspace.loading && !workspace.data && <Loading />}
      {workspace.data && workspace.data.syncs.length === 0 && (
        <EmptyState title="No syncs yet" action={addButton}>
          <p>
            A sync moves the rows of a model (a SQL query on a source) into a table or object of a destination, sending only what changed. Add one here,
            or declare syncs in <code>lockstep.yaml</code> and run <code>lockstep apply</code>.
          </p>
        </EmptyState>
      )}
      {workspace.data && workspace.data.syncs.length > 0 && (
        <div className="scroll-x">
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
                <SyncRow key={sync.slug} sync={sync} target={syncTargetInWords(sync, destinations)} sequences={sequencesOf(sync.slug)} lastRun={lastRuns.read(sync.slug)} generation={lastRuns.generation} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function SyncRow({ sync, target, sequences, lastRun, generation }: { sync: Sync; target: string; sequences: string[]; lastRun: LastRunRead; generation: number }) {
  return (
    <tr onClick={() => navigate(href.sync(sync.slug))}>
      <td>
        <a href={href.sync(sync.slug)} onClick={(e) => e.stopPropagation()}>
          {sync.slug}
        </a>
      </td>
      <td>
        {sync.model} → {target}
      </td>
      <td>{sync.mode}</td>
      <td>
        {scheduleInWords(sync.schedule)}
        {nextRunInWords(sync)}
      </td>
      <td>{sequences.length > 0 ? sequences.join(', ') : <span className="muted">—</span>}</td>
      <td>
        <EnabledBadge enabled={sync.enabled} />
      </td>
      <td>
        <LastRun key={generation} of={{ sync: sync.slug }} read={lastRun} />
      </td>
    </tr>
  );
}

export function SyncPage({ slug, runId }: { slug: string; runId?: number }) {
  const workspace = useApi<Workspace>('/api/workspace');
  const sync = workspace.data?.syncs.find((s) => s.slug === slug);
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState('');
  const runs = useApi<Page<SyncRunView>>(
    `/api/syncs/${seg(slug)}/runs?limit=${RUNS_PAGE}&offset=${offset}${status ? `&status=${encodeURIComponent(status)}` : ''}`,
    { live: true },
  );
  const { busy, error: actionError, notice, act } = usePageAction(() => {
    workspace.reload();
    runs.reload();
  });
  /** Runs whose cancel was accepted: a running one goes on to the end of its batch, and is not cancelled twice. */
  const [cancelling, setCancelling] = useState<ReadonlySet<number>>(new Set());
  const more = useRef<HTMLDetailsElement>(null);
  // The More menu is a <details>: it closes once an item is chosen, on Escape (back to its summary) and on a click elsewhere.
  const closeMore = (focusSummary: boolean) => {
    const menu = more.current;
    if (!menu?.open) return;
    menu.open = false;
    if (focusSummary) menu.querySelector('summary')?.focus();
  };

  useEffect(() => {
    document.title = `${slug} · Lockstep`;
  }, [slug]);

  // A click anywhere else on the page closes the More menu, as menus do.
  useEffect(() => {
    const outside = (event: PointerEvent) => {
      if (more.current?.open && !more.current.contains(event.target as Node)) closeMore(false);
    };
    document.addEventListener('pointerdown', outside);
    return () => document.removeEventListener('pointerdown', outside);
  }, []);

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
  // A sync never runs twice at once: while a run is under way, a new one is queued to follow it.
  const run = (options: { fullResync?: boolean; resetCDC?: boolean }, done: string) =>
    act(
      async () => {
        const queued = await api.post<SyncRunView>(`/api/syncs/${seg(slug)}/runs`, options);
        setOffset(0);
        setStatus('');
        const recent = await api.get<Page<SyncRunView>>(`/api/syncs/${seg(slug)}/runs?limit=5`);
        return recent?.data.some((r) => r.id !== queued?.id && r.status !== 'queued' && ACTIVE_SYNC.includes(r.status)) ?? false;
      },
      (behind) => (behind ? 'Run queued: it starts when the run in progress ends.' : done),
    );

  // Asked first, as deletes are: a Cancel button sits in a row that opens the run when clicked.
  const cancelRun = (target: SyncRunView) => {
    const queued = target.status === 'queued';
    if (!window.confirm(syncRunCancelQuestion(target, slug))) return;
    void act(
      async () => {
        await api.post(`/api/sync-runs/${target.id}/cancel`);
        setCancelling((ids) => new Set(ids).add(target.id));
      },
      queued
        ? `Run #${target.id} cancelled: it left the queue without running.`
        : target.status === 'interrupted'
          ? `Run #${target.id} cancelled: the process running it had stopped.`
          : `Cancelling run #${target.id}: it stops at once.`,
    );
  };

  return (
    <div className="page">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <a href={href.syncs()}>Syncs</a> / {sync.slug}
          </p>
          <h1>{sync.slug}</h1>
          <p className="subtitle">
            {sync.model} → {syncTargetInWords(sync, workspace.data.destinations)} · {sync.mode}
            {sync.mode !== 'mirror' && sync.deleteBehavior === 'delete' && ', deletes removed rows'} · {scheduleInWords(sync.schedule)}
            {nextRunInWords(sync)}
          </p>
        </div>
        <div className="header-actions">
          <Switch
            label="Enabled"
            checked={sync.enabled}
            busy={busy}
            onChange={(enabled) => void act(() => setEnabled(enabled), enabled ? 'Sync enabled.' : 'Sync disabled: its schedule no longer starts it.')}
          />
          <a className="button" href={href.editSync(slug)}>
            Edit
          </a>
          <details
            className="menu"
            ref={more}
            onKeyDown={(event) => {
              if (event.key !== 'Escape' || !more.current?.open) return;
              event.preventDefault();
              closeMore(true);
            }}
          >
            <summary className="button">More</summary>
            <div className="menu-items">
              <ActionButton
                onClick={() => {
                  closeMore(false);
                  void run({ fullResync: true }, 'Full resync started: every row is sent again.');
                }}
                busy={busy}
              >
                Full resync
              </ActionButton>
              <ActionButton
                onClick={() => {
                  closeMore(false);
                  void run({ resetCDC: true }, 'Snapshot reset started: nothing is sent.');
                }}
                busy={busy}
              >
                Reset snapshot (no sending)
              </ActionButton>
            </div>
          </details>
          <ActionButton className="button primary" onClick={() => void run({}, 'Run started.')} busy={busy}>
            Run now
          </ActionButton>
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
        <div className="section-header">
          <h2 id="sync-runs-heading">Run history</h2>
          <StatusFilter
            value={status}
            options={SYNC_RUN_FILTERS}
            onChange={(value) => {
              setStatus(value);
              setOffset(0);
            }}
          />
        </div>
        <RunHistory
          runs={runs}
          offset={offset}
          limit={RUNS_PAGE}
          onOffset={setOffset}
          empty={status ? 'No runs match.' : offset > 0 ? 'No more runs.' : 'This sync has not run yet. Use Run now, or wait for its schedule.'}
          table={(page) => (
            <SyncRunsTable runs={page} runHref={(id) => href.syncRunOf(slug, id)} cancel={{ run: cancelRun, busy, requested: cancelling }} />
          )}
        />
      </section>

      {runId !== undefined && <SyncRunDialog slug={slug} id={runId} onClose={() => closeTo(href.sync(slug))} />}
    </div>
  );
}

/** Cancelling a run from its row: what does it, whether an action is under way, and the runs whose cancel was accepted. */
interface RowCancel {
  run: (run: SyncRunView) => void;
  busy: boolean;
  requested: ReadonlySet<number>;
}

function SyncRunsTable({ runs, runHref, cancel }: { runs: SyncRunView[]; runHref: (id: number) => string; cancel: RowCancel }) {
  const now = useClock(runs.some((r) => ACTIVE_SYNC.includes(r.status)));
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
          <tr key={run.id} onClick={() => navigate(runHref(run.id))} data-run={run.id}>
            <td>
              <StatusBadge status={run.status} />
              {ACTIVE_SYNC.includes(run.status) && run.status !== 'queued' && (
                <progress max={1} value={run.completionRatio} aria-label={`Progress of run ${run.id}`} />
              )}
              {CANCELLABLE_SYNC.includes(run.status) && (
                <RowCancelButton label={`Cancel run #${run.id}`} busy={cancel.busy} requested={cancel.requested.has(run.id) || cancelPending(run)} onCancel={() => cancel.run(run)} />
              )}
            </td>
            <RunTimeCells run={run} now={now} openLabel={`Open sync run ${run.id}`} to={runHref(run.id)} />
            {OPS.map(([op, field]) => (
              <Fragment key={op}>
                <td className={`num${run.successfulRows[field] > 0 ? ' good-num' : ' muted'}`} data-count={`${op}-successful`}>
                  {run.startedAt === null ? '—' : formatCount(run.successfulRows[field])}
                </td>
                <td className={`num${run.failedRows[field] > 0 ? ' bad-num' : ' muted'}`} data-count={`${op}-rejected`}>
                  {run.startedAt === null ? '—' : formatCount(run.failedRows[field])}
                </td>
              </Fragment>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * Run `id` over the page of sync `slug`. A run of another sync (a link with the wrong sync in it)
 * moves to that sync's page; a run of a deleted sync is not shown over a page it does not belong to.
 */
function SyncRunDialog({ slug, id, onClose }: { slug: string; id: number; onClose: () => void }) {
  const run = useSyncRun(id);
  const owner = run.data ? run.data.sync : slug;
  useEffect(() => {
    if (owner !== null && owner !== slug) navigate(href.syncRunOf(owner, id), { replace: true });
  }, [owner, slug, id]);
  if (owner !== slug) {
    if (owner !== null) return null;
    return (
      <Dialog title={`Sync run #${id}`} onClose={onClose}>
        <p role="note">
          This run belongs to another sync, {run.data?.syncSlug ? `${run.data.syncSlug}, deleted since` : 'deleted since'}, not to {slug}.{' '}
          <a href={href.syncRun(id)}>Open it on its own page</a>
        </p>
      </Dialog>
    );
  }
  return (
    <Dialog title={`Sync run #${id}`} onClose={onClose} wide>
      <p className="dialog-link">
        <a href={href.syncRun(id)}>Open on its own page</a>
      </p>
      <SyncRunDetails id={id} run={run} />
    </Dialog>
  );
}

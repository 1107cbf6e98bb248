/**
 * One sequence: its members (a list, or a graph when any member has `after`), the enable switch,
 * Run now, Edit, and its run history; a run opens in a dialog with each member's sync run
 * (`/sequences/<slug>/runs/<id>`), which links to the run's own page.
 */
import { useEffect, useState } from 'react';
import type { Page, Sequence, SequenceRunView, Workspace } from '../api-types.js';
import { api, seg } from '../api.js';
import { RowCancelButton, cancelPending, sequenceRunCancelQuestion } from '../components/cancel-run.js';
import { ACTIVE_SEQUENCE, SequenceRunDetails, useSequenceRun } from '../components/run-details.js';
import { RunTimeCells } from '../components/run-facts.js';
import { RunHistory, StatusFilter } from '../components/run-history.js';
import { SequenceGraph, dependencies, isGraph } from '../components/sequence-graph.js';
import { SequencePlanDialog } from '../components/sequence-plan.js';
import { ActionButton, Dialog, EmptyState, ErrorBanner, Loading, StatusBadge, Switch } from '../components/ui.js';
import { formatMinutes, membersInWords, nextRunInWords, scheduleInWords, terminateInWords } from '../format.js';
import { useApi, useClock, usePageAction } from '../hooks.js';
import { closeTo, href, navigate } from '../router.js';

/** The statuses the run history filters by, as [value, label]. */
const SEQUENCE_RUN_FILTERS = [
  ['pending', 'Pending'],
  ['running', 'Running'],
  ['done', 'Done'],
  ['failed', 'Failed'],
  ['cancelled', 'Cancelled'],
] as const;

const PAGE_SIZE = 20;

export function SequencePage({ slug, runId }: { slug: string; runId?: string }) {
  const workspace = useApi<Workspace>('/api/workspace');
  const sequence = workspace.data?.sequences.find((s) => s.slug === slug);
  const [offset, setOffset] = useState(0);
  const [status, setStatus] = useState('');
  const runs = useApi<Page<SequenceRunView>>(
    `/api/sequences/${seg(slug)}/runs?limit=${PAGE_SIZE}&offset=${offset}${status ? `&status=${encodeURIComponent(status)}` : ''}`,
    { live: true },
  );
  const { busy, error: actionError, notice, act: runAction } = usePageAction(() => {
    workspace.reload();
    runs.reload();
  });
  const [startedRun, setStartedRun] = useState<string | null>(null);
  const [previewing, setPreviewing] = useState(false);
  /** Runs whose cancel was accepted: members under way go on to the end of their batch, and the run is not cancelled twice. */
  const [cancelling, setCancelling] = useState<ReadonlySet<string>>(new Set());

  useEffect(() => {
    document.title = `${sequence?.name ?? slug} · Lockstep`;
  }, [sequence, slug]);

  if (workspace.loading && !workspace.data) return <Loading />;
  if (!workspace.data) return <ErrorBanner error={workspace.error} title="Could not load the sequence" />;
  if (!sequence) {
    return (
      <div className="page">
        <EmptyState title={`There is no sequence “${slug}”`} action={<a className="button" href={href.sequences()}>Back to sequences</a>}>
          <p>It may have been deleted, or removed from the workspace files by the last <code>lockstep apply</code>.</p>
        </EmptyState>
      </div>
    );
  }

  const act = <T,>(what: () => Promise<T>, done?: string | ((result: T) => string)) => {
    setStartedRun(null);
    return runAction(what, done);
  };

  // A sequence never runs twice at once: while a run is under way, Run now queues the one run that
  // follows it (and clicking again gives that same run).
  const runNow = () =>
    act(
      async () => {
        const run = await api.post<SequenceRunView>(`/api/sequences/${seg(slug)}/runs`);
        setOffset(0);
        setStatus('');
        setStartedRun(run?.id ?? null);
        const running = await api.get<Page<SequenceRunView>>(`/api/sequences/${seg(slug)}/runs?status=running&limit=1`);
        return running?.data.some((r) => r.id !== run?.id) ?? false;
      },
      (behind) => (behind ? 'Run queued: it starts when the run in progress ends.' : 'Run started.'),
    );

  const setEnabled = async (enabled: boolean) => {
    const saved = await api.patch<Sequence>(`/api/sequences/${seg(slug)}`, { enabled });
    const current = workspace.data;
    if (current) workspace.set({ ...current, sequences: current.sequences.map((s) => (s.slug === slug ? { ...s, enabled: saved?.enabled ?? enabled } : s)) });
  };

  // Asked first, as deletes are: a Cancel button sits in a row that opens the run when clicked.
  const cancelRun = (target: SequenceRunView) => {
    const pending = target.status === 'pending';
    if (!window.confirm(sequenceRunCancelQuestion(target, sequence.name))) return;
    void act(
      async () => {
        await api.post(`/api/sequence-runs/${seg(target.id)}/cancel`);
        setCancelling((ids) => new Set(ids).add(target.id));
      },
      pending ? `Run ${target.id.slice(0, 8)} cancelled: it left the queue without running.` : `Cancelling run ${target.id.slice(0, 8)}: its members under way stop at the end of their batch.`,
    );
  };

  const remove = () => {
    if (!window.confirm(`Delete the sequence “${sequence.name}”? Its syncs stay; its run history is kept.`)) return;
    void act(async () => {
      await api.delete(`/api/sequences/${seg(slug)}`);
      navigate(href.sequences());
    });
  };

  // The members show the run under way (or the last one that ran), not a run queued to follow it.
  const latest = runs.data?.data.find((r) => r.status !== 'pending') ?? runs.data?.data[0];
  const statuses = latest && offset === 0 && !status ? new Map(latest.members.map((m) => [m.key, m.status])) : undefined;

  return (
    <div className="page">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <a href={href.sequences()}>Sequences</a> / {sequence.slug}
          </p>
          <h1>{sequence.name}</h1>
          <p className="subtitle">
            {scheduleInWords(sequence.schedule)}
            {nextRunInWords(sequence)}
            {!sequence.enabled && sequence.schedule.type !== 'manual' && ' · paused while disabled'}
            {sequence.origin && sequence.origin !== 'api' && <span className="tag">declared in {sequence.origin === 'file' ? 'workspace files' : sequence.origin}</span>}
          </p>
        </div>
        <div className="header-actions">
          <Switch label="Enabled" checked={sequence.enabled} busy={busy} onChange={(enabled) => void act(() => setEnabled(enabled), enabled ? 'Sequence enabled.' : 'Sequence disabled: its schedule no longer starts it.')} />
          <a className="button" href={href.editSequence(slug)}>
            Edit
          </a>
          <ActionButton className="button" onClick={() => setPreviewing(true)} busy={busy} title="Dry run: what each member would send now, without sending anything">
            Preview
          </ActionButton>
          <ActionButton className="button primary" onClick={() => void runNow()} busy={busy}>
            Run now
          </ActionButton>
        </div>
      </header>
      <ErrorBanner error={actionError} />
      {notice && (
        <div className="banner banner-info" role="status">
          {notice}
          {startedRun && (
            <>
              {' '}
              <a href={href.sequenceRunOf(slug, startedRun)}>Follow it</a>
            </>
          )}
        </div>
      )}

      <section className="card" aria-labelledby="members-heading">
        <h2 id="members-heading">
          Members <span className="muted">({sequence.members.length})</span>
        </h2>
        <Members sequence={sequence} statuses={statuses} />
      </section>

      <section className="card" aria-labelledby="runs-heading">
        <div className="section-header">
          <h2 id="runs-heading">Run history</h2>
          <StatusFilter
            value={status}
            options={SEQUENCE_RUN_FILTERS}
            onChange={(value) => {
              setStatus(value);
              setOffset(0);
            }}
          />
        </div>
        <RunHistory
          runs={runs}
          offset={offset}
          limit={PAGE_SIZE}
          onOffset={setOffset}
          empty={status || offset > 0 ? 'No runs match.' : 'This sequence has not run yet. Use Run now, or wait for its schedule.'}
          table={(page) => (
            <SequenceRunsTable runs={page} runHref={(id) => href.sequenceRunOf(slug, id)} cancel={{ run: cancelRun, busy, requested: cancelling }} />
          )}
        />
      </section>

      <section className="danger-zone">
        <button type="button" className="button danger" onClick={remove} disabled={busy}>
          Delete sequence
        </button>
      </section>

      {previewing && <SequencePlanDialog slug={slug} name={sequence.name} onClose={() => setPreviewing(false)} />}
      {runId && <SequenceRunDialog key={runId} slug={slug} id={runId} sequence={sequence} onClose={() => closeTo(href.sequence(slug))} />}
    </div>
  );
}

function Members({ sequence, statuses }: { sequence: Sequence; statuses: Map<string, string> | undefined }) {
  if (isGraph(sequence.members)) {
    const deps = dependencies(sequence.members);
    return (
      <>
        <SequenceGraph
          members={sequence.members}
          statuses={statuses}
          notes={new Map(sequence.members.map((m) => [m.key, terminateInWords(m.terminate, m.rejectedThreshold)]))}
          label={`Dependency graph of ${sequence.name}`}
        />
        <table className="table compact">
          <thead>
            <tr>
              <th scope="col">Member</th>
              <th scope="col">Sync</th>
              <th scope="col">Runs after</th>
              <th scope="col">Terminate</th>
            </tr>
          </thead>
          <tbody>
            {sequence.members.map((m) => (
              <tr key={m.key}>
                <td>{m.key}</td>
                <td>
                  <a href={href.sync(m.sync)}>{m.sync}</a>
                </td>
                <td>{(deps.get(m.key) ?? []).join(', ') || 'starts at once'}</td>
                <td>
                  {terminateInWords(m.terminate, m.rejectedThreshold)}
                  {m.timeoutMinutes !== undefined && <div className="muted small">Timeout {formatMinutes(m.timeoutMinutes)}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <p className="hint">Up to {sequence.concurrency} members run at once.</p>
        <Deadline sequence={sequence} />
      </>
    );
  }
  return (
    <>
      <ol className="member-steps" aria-label="Members in order">
        {sequence.members.map((m, i) => {
          const status = statuses?.get(m.key);
          return (
            <li key={m.key} aria-label={m.key}>
              <span className="member-index">{i + 1}</span>
              <div className="member-main">
                <a href={href.sync(m.sync)}>{m.sync}</a>
                {m.key !== m.sync && <span className="tag">key {m.key}</span>}
                <div className="muted small">
                  Terminate: {terminateInWords(m.terminate, m.rejectedThreshold)}
                  {m.timeoutMinutes !== undefined && ` · Timeout ${formatMinutes(m.timeoutMinutes)}`}
                </div>
              </div>
              {status && <StatusBadge status={status} />}
            </li>
          );
        })}
      </ol>
      <Deadline sequence={sequence} />
    </>
  );
}

/** The sequence's deadline, when it has one: what happens to a run still under way then. */
function Deadline({ sequence }: { sequence: Sequence }) {
  if (sequence.deadlineMinutes === undefined) return null;
  return (
    <p className="hint">
      Deadline: a run not ended {formatMinutes(sequence.deadlineMinutes)} after it started fails; its members under way stop and the rest are skipped.
    </p>
  );
}

/** Cancelling a run from its row: what does it, whether an action is under way, and the runs whose cancel was accepted. */
interface RowCancel {
  run: (run: SequenceRunView) => void;
  busy: boolean;
  requested: ReadonlySet<string>;
}

function SequenceRunsTable({ runs, runHref, cancel }: { runs: SequenceRunView[]; runHref: (id: string) => string; cancel: RowCancel }) {
  const now = useClock(runs.some((r) => ACTIVE_SEQUENCE.includes(r.status)));
  return (
    <table className="table clickable" aria-label="Sequence runs">
      <thead>
        <tr>
          <th scope="col">Status</th>
          <th scope="col">Trigger</th>
          <th scope="col">Started</th>
          <th scope="col">Duration</th>
          <th scope="col">Progress</th>
          <th scope="col">Terminated by</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((run) => {
          return (
            <tr key={run.id} onClick={() => navigate(runHref(run.id))} data-run={run.id}>
              <td>
                <StatusBadge status={run.status} />
                {ACTIVE_SEQUENCE.includes(run.status) && (
                  <RowCancelButton label={`Cancel run ${run.id}`} busy={cancel.busy} requested={cancel.requested.has(run.id) || cancelPending(run)} onCancel={() => cancel.run(run)} />
                )}
              </td>
              <RunTimeCells run={run} now={now} openLabel={`Open run ${run.id}`} to={runHref(run.id)} />
              <td>{membersInWords(run.members)}</td>
              <td>
                <TerminatedBy run={run} />
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/**
 * The member that terminated a run, or, for a run that failed without one (its deadline passed),
 * the first part of the reason (the whole of it on hover).
 */
function TerminatedBy({ run }: { run: SequenceRunView }) {
  if (run.terminatedBy) return <span title={run.reason ?? undefined}>{run.terminatedBy}</span>;
  if (run.status === 'failed' && run.reason) return <span title={run.reason}>{run.reason.split(';')[0]}</span>;
  return <span className="muted">—</span>;
}

/**
 * Run `id` over the page of sequence `slug`. A run of another sequence (a link with the wrong
 * sequence in it) moves to that sequence's page; a run of a deleted sequence is not shown over a
 * page it does not belong to.
 */
function SequenceRunDialog({ slug, id, sequence, onClose }: { slug: string; id: string; sequence: Sequence; onClose: () => void }) {
  const run = useSequenceRun(id);
  const owner = run.data ? run.data.sequence : slug;
  useEffect(() => {
    if (owner !== null && owner !== slug) navigate(href.sequenceRunOf(owner, id), { replace: true });
  }, [owner, slug, id]);
  if (owner !== slug) {
    if (owner !== null) return null;
    return (
      <Dialog title="Sequence run" onClose={onClose}>
        <p role="note">
          This run belongs to another sequence, {run.data?.sequenceSlug ? `${run.data.sequenceSlug}, deleted since` : 'deleted since'}, not to {sequence.name}.{' '}
          <a href={href.sequenceRun(id)}>Open it on its own page</a>
        </p>
      </Dialog>
    );
  }
  return (
    <Dialog title={`Run of ${sequence.name}`} onClose={onClose} wide>
      <p className="dialog-link">
        <a href={href.sequenceRun(id)}>Open on its own page</a>
      </p>
      <SequenceRunDetails id={id} run={run} />
    </Dialog>
  );
}

/**
 * What one run shows, on its own page (`/runs/sync/12`, `/runs/sequence/<id>`) and in the dialog
 * over its sync's or sequence's page: a sync run's facts, row counts and rejected rows with their
 * reasons; a sequence run's facts, why it ended early, and each member's sync run.
 */
import { useState } from 'react';
import type { RunPhase } from '../../../src/core/run-phases.js';
import type { MemberRunView, Page, RejectedRowView, SequenceRunView, SyncRunView } from '../api-types.js';
import { seg } from '../api.js';
import { formatCount, formatMinutes, formatTime, membersInWords, runDuration, terminateInWords } from '../format.js';
import { useApi, useTicker, type Resource } from '../hooks.js';
import { href } from '../router.js';
import { CancelRunButton, ResumeRunButton, cancelPending, sequenceRunCancelQuestion, syncRunCancelQuestion, useCancelRun, useResumeRun } from './cancel-run.js';
import { RunFacts } from './run-facts.js';
import { ErrorBanner, Loading, Pager, StatusBadge } from './ui.js';

const REJECTED_PAGE = 25;

/** Sync run states before the end: the duration ticks and the run can be cancelled. */
export const ACTIVE_SYNC = ['queued', 'querying', 'processing', 'reporting'];
/**
 * Sync run states a cancel applies to: those before the end, and `interrupted` (its process stopped
 * and no worker took it over yet), which a cancel ends at once.
 */
export const CANCELLABLE_SYNC = [...ACTIVE_SYNC, 'interrupted'];
/** Sequence run states before the end. */
export const ACTIVE_SEQUENCE = ['pending', 'running'];

export const OPS = [
  ['added', 'addedCount'],
  ['changed', 'changedCount'],
  ['removed', 'removedCount'],
] as const;

/** "1 member" / "3 members". */
const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const sum = (c: { addedCount: number; changedCount: number; removedCount: number } | undefined) => (c ? c.addedCount + c.changedCount + c.removedCount : 0);

/** A composite key `{a: 1, b: 2}` as `a=1, b=2`; a single value as itself. */
function keyInWords(key: unknown): string {
  if (key === null || key === undefined) return '(null)';
  if (Array.isArray(key)) return key.map(keyInWords).join(', ');
  if (typeof key === 'object') return Object.entries(key as Record<string, unknown>).map(([k, v]) => `${k}=${keyInWords(v)}`).join(', ');
  return String(key);
}

/** Sync run `id`, kept live. */
export function useSyncRun(id: number): Resource<SyncRunView> {
  return useApi<SyncRunView>(`/api/sync-runs/${id}`, { live: true });
}

/** Sequence run `id`, kept live. */
export function useSequenceRun(id: string): Resource<SequenceRunView> {
  return useApi<SequenceRunView>(`/api/sequence-runs/${seg(id)}`, { live: true });
}

/**
 * What a run waiting in the queue waits for, when the API tells: the run of its sync under way (a
 * sync never runs twice at once). Nothing is asked of a run that is not waiting.
 */
function useRunAhead(run: SyncRunView | undefined): SyncRunView | undefined {
  const path = run?.status === 'queued' && run.sync !== null ? `/api/syncs/${seg(run.sync)}/runs?status=querying,processing,reporting&limit=1` : null;
  return useApi<Page<SyncRunView>>(path, { live: true }).data?.data.find((r) => r.id !== run?.id);
}

export function SyncRunDetails({ id, run }: { id: number; run: Resource<SyncRunView> }) {
  const [offset, setOffset] = useState(0);
  const data = run.data;
  // A run that never started (waiting in the queue, or cancelled there) has no counts and no rejected rows: nothing is asked or shown of them.
  const started = data ? data.startedAt !== null : false;
  const rejected = useApi<Page<RejectedRowView>>(started ? `/api/sync-runs/${id}/rejected-rows?limit=${REJECTED_PAGE}&offset=${offset}` : null, { live: true });
  const cancel = useCancelRun(`/api/sync-runs/${id}/cancel`, run.reload);
  const ahead = useRunAhead(data);
  const active = data ? ACTIVE_SYNC.includes(data.status) : false;
  const cancellable = data ? CANCELLABLE_SYNC.includes(data.status) : false;
  const now = useTicker(active);

  return (
    <>
      {run.loading && !data && <Loading />}
      <ErrorBanner error={run.error} title="Could not load the run" />
      <ErrorBanner error={cancel.error} title="Could not cancel" />
      {data && (
        <>
          <RunFacts run={data} now={now}>
            <div>
              <dt>Rows queried</dt>
              <dd>{started ? formatCount(data.querySize) : '—'}</dd>
            </div>
            {data.sequenceRunId && (
              <div>
                <dt>Part of</dt>
                <dd>
                  <a href={href.sequenceRun(data.sequenceRunId)}>a sequence run</a>
                </dd>
              </div>
            )}
          </RunFacts>
          {data.status === 'queued' && (
            <div className="banner banner-info" role="status">
              Waiting in the queue since {formatTime(data.createdAt)}
              {ahead ? (
                <>
                  : it starts when <a href={href.syncRun(ahead.id)}>run #{ahead.id}</a> of this sync, under way, ends.
                </>
              ) : (
                '.'
              )}
            </div>
          )}
          {active && data.status !== 'queued' && <progress className="wide" max={1} value={data.completionRatio} aria-label="Progress" />}
          {/* A cancelled run records who stopped it as its error: that is no failure of the run. */}
          {data.error && data.status === 'cancelled' && (
            <div className="banner banner-warn" role="note">
              <strong>Cancelled:</strong> {data.error}
            </div>
          )}
          {/* An interrupted run says what comes next for it (resumed, or ended by a cancel): it met no error. */}
          {data.error && data.status === 'interrupted' && (
            <div className="banner banner-warn" role="note">
              <strong>Interrupted:</strong> {data.error}
            </div>
          )}
          {data.error && data.status !== 'cancelled' && data.status !== 'interrupted' && (
            <div className="banner banner-error" role="note">
              <strong>Fatal error:</strong> {data.error}
            </div>
          )}
          {started && (
            <>
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

              {data.phaseMs && <PhaseTable phases={data.phaseMs} />}

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
                        <td className="mono rejected-key">{keyInWords(row.key)}</td>
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
            </>
          )}
          {cancellable && <CancelRunButton onCancel={cancel.cancel} state={cancelPending(data) ? 'requested' : cancel.state} question={syncRunCancelQuestion(data, data.sync)} />}
        </>
      )}
    </>
  );
}

/** The phases of a run's time (src/core/run-phases.ts), in the order a run goes through them. */
const PHASES: Array<[RunPhase, string, string]> = [
  ['connect', 'Connect', 'loading definitions, opening the source and destination, preparing the writer'],
  ['query', 'Query', 'waiting for the source to return rows'],
  ['plan', 'Plan', 'validating, hashing and comparing rows with the snapshot'],
  ['deliver', 'Deliver', 'waiting for the destination to write'],
  ['commit', 'Commit', 'waiting for delivered rows to be committed to the snapshot'],
  ['rateLimit', 'Rate limit', "waiting while the destination's rate limit held writes back"],
  ['retry', 'Retry', 'waiting out a backoff before trying again'],
  ['finish', 'Finish', 'recording the end and closing connections'],
];

function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Where a finished run's time went: each phase's time and share (they add up to the run's time). */
function PhaseTable({ phases }: { phases: Partial<Record<RunPhase, number>> }) {
  const total = PHASES.reduce((sum, [phase]) => sum + (phases[phase] ?? 0), 0);
  return (
    <>
      <h3>Where the time went</h3>
      <table className="table compact phases" aria-label="Where the time went">
        <thead>
          <tr>
            <th scope="col">Phase</th>
            <th scope="col" className="num">
              Time
            </th>
            <th scope="col" className="num">
              Share
            </th>
            <th scope="col">
              <span className="visually-hidden">Share as a bar</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {PHASES.map(([phase, label, what]) => {
            const ms = phases[phase] ?? 0;
            const share = total > 0 ? ms / total : 0;
            return (
              <tr key={phase}>
                <th scope="row" title={what}>
                  {label}
                </th>
                <td className="num">{formatMs(ms)}</td>
                <td className="num">{Math.round(share * 100)}%</td>
                <td className="phase-bar-cell" aria-hidden="true">
                  <span className="phase-bar" style={{ width: `${(share * 100).toFixed(1)}%` }} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}

/** What a sequence run waiting in the queue waits for, when the API tells: the run of its sequence under way. */
function useSequenceRunAhead(run: SequenceRunView | undefined): SequenceRunView | undefined {
  const path = run?.status === 'pending' && run.sequence !== null ? `/api/sequences/${seg(run.sequence)}/runs?status=running&limit=1` : null;
  return useApi<Page<SequenceRunView>>(path, { live: true }).data?.data.find((r) => r.id !== run?.id);
}

export function SequenceRunDetails({ id, run }: { id: string; run: Resource<SequenceRunView> }) {
  const cancel = useCancelRun(`/api/sequence-runs/${seg(id)}/cancel`, run.reload);
  const resume = useResumeRun(id);
  const data = run.data;
  const ahead = useSequenceRunAhead(data);
  const active = data ? ACTIVE_SEQUENCE.includes(data.status) : false;
  const now = useTicker(active);

  return (
    <>
      {run.loading && !data && <Loading />}
      <ErrorBanner error={run.error} title="Could not load the run" />
      <ErrorBanner error={cancel.error} title="Could not cancel" />
      <ErrorBanner error={resume.error} title="Could not resume" />
      {data && (
        <>
          <RunFacts run={data} now={now}>
            <div>
              <dt>Members</dt>
              <dd>{membersInWords(data.members)}</dd>
            </div>
            <div>
              <dt>Run ID</dt>
              <dd className="mono small">{data.id}</dd>
            </div>
            {/* As the run was queued with them: an edit of the sequence since applies to its next run. */}
            {data.concurrency !== null && (
              <div>
                <dt>Concurrency</dt>
                <dd title="Members of a graph that may run at once; the members of a list run one after another.">Up to {count(data.concurrency, 'member')} at once</dd>
              </div>
            )}
            {data.deadlineMinutes !== null && (
              <div>
                <dt>Deadline</dt>
                <dd>{formatMinutes(data.deadlineMinutes)} after it started</dd>
              </div>
            )}
            {data.resumedFrom && (
              <div>
                <dt>Resumes</dt>
                <dd>
                  <a href={href.sequenceRun(data.resumedFrom)}>run {data.resumedFrom.slice(0, 8)}</a>
                </dd>
              </div>
            )}
            {data.resumedBy && (
              <div>
                <dt>Resumed by</dt>
                <dd>
                  <a href={href.sequenceRun(data.resumedBy)}>run {data.resumedBy.slice(0, 8)}</a>
                </dd>
              </div>
            )}
          </RunFacts>
          {data.status === 'pending' && (
            <div className="banner banner-info" role="status">
              Waiting in the queue since {formatTime(data.createdAt)}
              {ahead ? (
                <>
                  : it starts when <a href={href.sequenceRun(ahead.id)}>run {ahead.id.slice(0, 8)}</a> of this sequence, under way, ends.
                </>
              ) : (
                '.'
              )}
            </div>
          )}
          {data.terminatedBy && (
            <div className="banner banner-error" role="note">
              Terminated by <strong>{data.terminatedBy}</strong>
              {data.reason ? `: ${data.reason}` : ''}
            </div>
          )}
          {!data.terminatedBy && data.reason && (
            <div className="banner banner-warn" role="note">
              {data.reason}
            </div>
          )}
          <table className="table" aria-label="Member runs">
            <thead>
              <tr>
                <th scope="col">Member</th>
                <th scope="col">Final state</th>
                <th scope="col">Terminate</th>
                <th scope="col">Started</th>
                <th scope="col">Execution time</th>
                <th scope="col" className="num">
                  Rows delivered
                </th>
                <th scope="col" className="num">
                  Rows rejected
                </th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {data.members.map((m) => (
                <MemberRunRow key={m.key} member={m} terminated={data.terminatedBy === m.key} reason={data.reason} now={now} />
              ))}
            </tbody>
          </table>
          {active && <CancelRunButton onCancel={cancel.cancel} state={cancelPending(data) ? 'requested' : cancel.state} question={sequenceRunCancelQuestion(data, data.sequence)} />}
          {/* A failed or cancelled run is resumed once: after that, its page links to the run that resumed it. */}
          {(data.status === 'failed' || data.status === 'cancelled') && !data.resumedBy && <ResumeRunButton onResume={resume.resume} busy={resume.busy} />}
        </>
      )}
    </>
  );
}

function MemberRunRow({ member, terminated, reason, now }: { member: MemberRunView; terminated: boolean; reason: string | null; now: number }) {
  const syncRun = member.syncRun;
  return (
    <tr aria-label={member.key} data-member={member.key} className={terminated ? 'terminated' : undefined}>
      {/* Slugs have no length limit: a long one breaks across lines (between its words first) rather than push the run's columns out of sight. */}
      <th scope="row" className="break member-cell">
        {member.sync ? <a href={href.sync(member.sync)}>{member.key}</a> : member.key}
        {member.sync && member.sync !== member.key && <div className="muted small">{member.sync}</div>}
        {member.syncDeleted && member.syncSlug && <div className="muted small">{member.syncSlug} (deleted)</div>}
      </th>
      <td>
        <StatusBadge status={member.status} />
      </td>
      {/* The policy and time limit the run was queued with (runs queued before Lockstep kept them have none). */}
      <td className="terminate">
        {member.terminate ? terminateInWords(member.terminate, member.rejectedThreshold ?? { count: 0 }) : <span className="muted">—</span>}
        {member.timeoutMinutes !== null && <div className="muted small">Timeout {formatMinutes(member.timeoutMinutes)}</div>}
      </td>
      <td>{member.startedAt ? <time dateTime={member.startedAt}>{formatTime(member.startedAt)}</time> : <span className="muted">—</span>}</td>
      <td>{runDuration(member, now)}</td>
      <td className="num">{syncRun ? formatCount(sum(syncRun.successfulRows)) : '—'}</td>
      <td className="num">{syncRun ? formatCount(sum(syncRun.failedRows)) : '—'}</td>
      <td>
        {terminated && <div className="terminated-note">Terminated the sequence{reason && !syncRun?.error ? `: ${reason}` : ''}</div>}
        {syncRun?.error && <div className={syncRun.status === 'interrupted' || syncRun.status === 'cancelled' ? 'muted' : 'error-text'}>{syncRun.error}</div>}
        {syncRun && !syncRun.error && ['querying', 'processing', 'reporting'].includes(syncRun.status) && (
          <progress max={1} value={syncRun.completionRatio} aria-label={`Progress of ${member.key}`} />
        )}
        {member.status === 'skipped' && <span className="muted">Not started: the sequence ended before it.</span>}
        {member.status === 'pending' && syncRun?.status === 'queued' && (
          <div className="muted">Waiting for its sync, which is running elsewhere (alone or in another sequence); it starts when that run ends.</div>
        )}
        {member.carriedOver && <div className="muted">Carried over: it finished in the run this one resumes.</div>}
        {syncRun && (
          <a className="small nowrap" href={href.syncRun(syncRun.id)}>
            Sync run #{syncRun.id}
          </a>
        )}
      </td>
    </tr>
  );
}

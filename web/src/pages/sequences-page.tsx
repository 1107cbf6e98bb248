import { useEffect } from 'react';
import type { Sequence, Workspace } from '../api-types.js';
import { EnabledBadge, LastRun, useLastRuns, type LastRunRead } from '../components/last-run.js';
import { EmptyState, ErrorBanner, Loading } from '../components/ui.js';
import { nextRunInWords, scheduleInWords } from '../format.js';
import { useApi } from '../hooks.js';
import { href, navigate } from '../router.js';

export function SequencesPage() {
  const workspace = useApi<Workspace>('/api/workspace');
  const lastRuns = useLastRuns('sequence');
  useEffect(() => {
    document.title = 'Sequences · Lockstep';
  }, []);

  const addButton = (
    <a className="button primary" href={href.newSequence()}>
      Add sequence
    </a>
  );

  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1>Sequences</h1>
          <p className="subtitle">Related syncs that run in a dependable order, each member starting when the ones before it finished well.</p>
        </div>
        {workspace.data && workspace.data.sequences.length > 0 && addButton}
      </header>
      <ErrorBanner error={workspace.error} title="Could not load the sequences" />
      {workspace.loading && !workspace.data && <Loading />}
      {workspace.data && workspace.data.sequences.length === 0 && (
        <EmptyState title="No sequences yet" action={addButton}>
          <p>
            A sequence runs several syncs one after another — accounts, then workspaces, then contacts — so that each sync starts only when the syncs it
            depends on have finished. For each member you choose what stops the sequence: a fatal error, too many rejected rows, or nothing.
          </p>
          <p>Schedule the whole sequence once (cron, interval, days and times, after a dbt Cloud job…) instead of guessing cron offsets.</p>
        </EmptyState>
      )}
      {workspace.data && workspace.data.sequences.length > 0 && (
        <div className="scroll-x">
          <table className="table clickable">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Syncs</th>
                <th scope="col">Schedule</th>
                <th scope="col">Enabled</th>
                <th scope="col">Last run</th>
              </tr>
            </thead>
            <tbody>
              {workspace.data.sequences.map((sequence) => (
                <SequenceRow key={sequence.slug} sequence={sequence} lastRun={lastRuns.read(sequence.slug)} generation={lastRuns.generation} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function SequenceRow({ sequence, lastRun, generation }: { sequence: Sequence; lastRun: LastRunRead; generation: number }) {
  return (
    <tr onClick={() => navigate(href.sequence(sequence.slug))}>
      <td>
        <a href={href.sequence(sequence.slug)} onClick={(e) => e.stopPropagation()}>
          {sequence.name}
        </a>
        {sequence.name !== sequence.slug && <div className="muted mono small">{sequence.slug}</div>}
      </td>
      <td>{sequence.members.length}</td>
      <td>
        {scheduleInWords(sequence.schedule)}
        {nextRunInWords(sequence)}
      </td>
      <td>
        <EnabledBadge enabled={sequence.enabled} />
      </td>
      <td>
        <LastRun key={generation} of={{ sequence: sequence.slug }} read={lastRun} />
      </td>
    </tr>
  );
}

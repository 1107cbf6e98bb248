/**
 * A run on its own page: `/runs/sync/<id>` and `/runs/sequence/<id>`, what alert notices and the
 * Alerts and Webhooks pages link to. The run is found by its id alone, so the link keeps working
 * whatever page the run was started from.
 */
import { useEffect } from 'react';
import type { Sequence } from '../api-types.js';
import { ApiError, seg } from '../api.js';
import { SequenceRunDetails, SyncRunDetails, useSequenceRun, useSyncRun } from '../components/run-details.js';
import { EmptyState } from '../components/ui.js';
import { useApi } from '../hooks.js';
import { href } from '../router.js';

function MissingRun({ kind, what }: { kind: 'sync' | 'sequence'; what: string }) {
  const back = kind === 'sync' ? <a className="button" href={href.syncs()}>Back to syncs</a> : <a className="button" href={href.sequences()}>Back to sequences</a>;
  return (
    <div className="page">
      <EmptyState title={`There is no ${what}`} action={back}>
        <p>Its id may be mistyped, or the run was removed with its sync or sequence.</p>
      </EmptyState>
    </div>
  );
}

export function SyncRunPage({ id }: { id: number }) {
  const run = useSyncRun(id);
  const slug = run.data?.sync ?? null;
  // A deleted sync is named by the slug the run ran as; nothing is said of it before the run loaded.
  const removed = !run.data ? '…' : run.data.syncSlug ? `${run.data.syncSlug} (deleted)` : 'a removed sync';
  useEffect(() => {
    document.title = `Sync run #${id} · Lockstep`;
  }, [id]);
  if (run.error instanceof ApiError && run.error.status === 404) return <MissingRun kind="sync" what={`sync run #${id}`} />;
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <a href={href.syncs()}>Syncs</a> / {slug ? <a href={href.sync(slug)}>{slug}</a> : removed} / run #{id}
          </p>
          <h1>Sync run #{id}</h1>
          {slug && <p className="subtitle">A run of the sync {slug}.</p>}
          {!slug && run.data?.syncSlug && <p className="subtitle">A run of the sync {run.data.syncSlug}, deleted since.</p>}
        </div>
      </header>
      <section className="card" aria-label="Run details">
        <SyncRunDetails id={id} run={run} />
      </section>
    </div>
  );
}

export function SequenceRunPage({ id }: { id: string }) {
  const run = useSequenceRun(id);
  const slug = run.data?.sequence ?? null;
  const sequence = useApi<Sequence>(slug ? `/api/sequences/${seg(slug)}` : null);
  // A deleted sequence is named by the slug the run ran as.
  const deleted = slug === null && run.data?.sequenceSlug ? run.data.sequenceSlug : null;
  const name = sequence.data?.name ?? slug ?? (deleted ? `${deleted} (deleted)` : null);
  useEffect(() => {
    document.title = `Sequence run ${id.slice(0, 8)} · Lockstep`;
  }, [id]);
  if (run.error instanceof ApiError && run.error.status === 404) return <MissingRun kind="sequence" what={`sequence run ${id}`} />;
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <a href={href.sequences()}>Sequences</a> / {slug ? <a href={href.sequence(slug)}>{slug}</a> : deleted ? `${deleted} (deleted)` : 'a removed sequence'} / run {id.slice(0, 8)}
          </p>
          <h1>{name ? `Run of ${name}` : 'Sequence run'}</h1>
        </div>
      </header>
      <section className="card" aria-label="Run details">
        <SequenceRunDetails id={id} run={run} />
      </section>
    </div>
  );
}

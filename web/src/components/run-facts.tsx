/** A run's status, trigger, start and duration as sync runs and sequence runs both show them: in a dialog and in a table row. */
import type { ReactNode } from 'react';
import { formatRelative, formatTime, runDuration, triggerInWords } from '../format.js';
import { StatusBadge } from './ui.js';

/** What `RunFacts` reads of a run; `durationMs`, when the server gives it, wins over the clock. */
export interface RunTimes {
  status: string;
  trigger: string;
  /** What started it, in words (the run whose end started it, the schedule's firing), when the server says. */
  triggerDetail?: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs?: number | null;
}

/** Status, trigger, start (or when it was queued) and duration of `run` (a running one measured up to `now`), then `children`. */
export function RunFacts({ run, now, children }: { run: RunTimes; now: number; children?: ReactNode }) {
  return (
    <dl className="facts">
      <div>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={run.status} />
        </dd>
      </div>
      <div>
        <dt>Trigger</dt>
        <dd>
          {triggerInWords(run.trigger)}
          {run.trigger === 'upstream' && run.triggerDetail ? `: after ${run.triggerDetail}` : ''}
        </dd>
      </div>
      {/* A run that has not started (waiting in the queue, or cancelled there) says when it was queued. */}
      <div>
        <dt>{run.startedAt ? 'Started' : 'Queued'}</dt>
        <dd>{formatTime(run.startedAt ?? run.createdAt)}</dd>
      </div>
      <div>
        <dt>Duration</dt>
        <dd>{runDuration(run, now)}</dd>
      </div>
      {children}
    </dl>
  );
}

/** The trigger, start and duration cells of `run`'s row in a run history; the start links to the run. */
export function RunTimeCells({ run, now, openLabel, to }: { run: RunTimes; now: number; openLabel: string; to: string }) {
  return (
    <>
      <td>{triggerInWords(run.trigger)}</td>
      <td>
        <a href={to} onClick={(e) => e.stopPropagation()} aria-label={openLabel} title={formatTime(run.startedAt ?? run.createdAt)}>
          {run.startedAt ? formatRelative(run.startedAt, now) : `queued ${formatRelative(run.createdAt, now)}`}
        </a>
      </td>
      <td>{runDuration(run, now)}</td>
    </>
  );
}

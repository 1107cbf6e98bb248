/** Cancelling a run from its dialog, and resuming a failed sequence run: the requests, their errors, and the buttons. */
import { useRef, useState } from 'react';
import type { SequenceRunView } from '../api-types.js';
import { api, seg } from '../api.js';
import { href, navigate } from '../router.js';

/**
 * POSTs to `path` on `cancel()` and calls `reload` after; a failure is kept in `error` for a banner.
 * One cancel at a time, and none once it was accepted: the run stops at once,
 * and a second request would only be told the run is already cancelled.
 */
export function useCancelRun(path: string, reload: () => void): { error: unknown; state: CancelState; cancel: () => Promise<void> } {
  const [error, setError] = useState<unknown>(undefined);
  const [state, setState] = useState<CancelState>('idle');
  const sending = useRef(false);
  const cancel = async () => {
    if (sending.current || state === 'requested') return;
    sending.current = true;
    setError(undefined);
    setState('sending');
    try {
      await api.post(path);
      setState('requested');
      reload();
    } catch (thrown) {
      setError(thrown);
      setState('idle');
    } finally {
      sending.current = false;
    }
  };
  return { error, state, cancel };
}

/** Where a cancel stands: not asked, on its way, or accepted (the run stops at once). */
export type CancelState = 'idle' | 'sending' | 'requested';

/**
 * Whether `run` waits on a cancel asked before (from this page before a reload, another tab, the
 * command line or the API): it is stopping, and a second Cancel would do nothing. An `interrupted`
 * run is not: no process is at work on it, and Cancel ends it at once.
 */
export function cancelPending(run: { status: string; cancelRequested: boolean }): boolean {
  return run.cancelRequested && run.status !== 'interrupted';
}

/** What Cancel asks of sync run `run` (of sync `slug`, when it is known) before cancelling it, saying what the cancel does. */
export function syncRunCancelQuestion(run: { id: number; status: string }, slug: string | null): string {
  const effect =
    run.status === 'queued'
      ? 'It leaves the queue without running.'
      : run.status === 'interrupted'
        ? 'The process running it stopped: it ends now, and the batches delivered stay delivered.'
        : 'It stops at once, a batch being written cut off (the next run sends it again); the batches delivered stay delivered.';
  return `Cancel run #${run.id}${slug ? ` of ${slug}` : ''}? ${effect}`;
}

/** What Cancel asks of sequence run `run` (of the sequence named `name`, when it is known) before cancelling it. */
export function sequenceRunCancelQuestion(run: { id: string; status: string }, name: string | null): string {
  const effect =
    run.status === 'pending'
      ? 'It leaves the queue without running.'
      : 'Its members under way stop at once (the batches delivered stay delivered); the members not started are skipped.';
  return `Cancel run ${run.id.slice(0, 8)}${name ? ` of ${name}` : ''}? ${effect}`;
}

/** Cancel run on a run's page and dialog: it asks `question` first, as the run histories' Cancel does. */
export function CancelRunButton({ onCancel, state, question }: { onCancel: () => Promise<void>; state: CancelState; question: string }) {
  return (
    <div className="dialog-actions">
      {state === 'requested' && (
        <span className="hint" role="status">
          Cancelling: the run stops at once.
        </span>
      )}
      <button type="button" className="button danger" disabled={state !== 'idle'} onClick={() => window.confirm(question) && void onCancel()}>
        {state === 'idle' ? 'Cancel run' : 'Cancelling…'}
      </button>
    </div>
  );
}

/**
 * Cancel beside a run in a run history's row, which opens the run when clicked: the click never
 * reaches the row. While `busy` (an action of the page under way) or once the cancel was
 * `requested`, it takes no click yet keeps the keyboard focus, as an ActionButton does.
 */
export function RowCancelButton({ label, busy, requested, onCancel }: { label: string; busy: boolean; requested: boolean; onCancel: () => void }) {
  return (
    <button
      type="button"
      className="button small danger row-action"
      aria-label={label}
      aria-disabled={busy || requested || undefined}
      onClick={(event) => {
        event.stopPropagation();
        if (!busy && !requested) onCancel();
      }}
    >
      {requested ? 'Cancelling…' : 'Cancel'}
    </button>
  );
}

/**
 * POSTs the resume of failed sequence run `id` on `resume()` and opens the new run's page; a
 * refusal (the run was resumed already, its sequence changed) is kept in `error` for a banner.
 */
export function useResumeRun(id: string): { error: unknown; busy: boolean; resume: () => Promise<void> } {
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const resume = async () => {
    setError(undefined);
    setBusy(true);
    try {
      const run = await api.post<SequenceRunView>(`/api/sequence-runs/${seg(id)}/resume`);
      if (run) navigate(href.sequenceRun(run.id));
    } catch (thrown) {
      setError(thrown);
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, resume };
}

export function ResumeRunButton({ onResume, busy }: { onResume: () => Promise<void>; busy: boolean }) {
  return (
    <div className="dialog-actions">
      <span className="hint">Runs the members that did not finish; those that did are carried over.</span>
      <button type="button" className="button primary" disabled={busy} onClick={() => void onResume()}>
        {busy ? 'Resuming…' : 'Resume'}
      </button>
    </div>
  );
}

/** Cancelling a run from its dialog, and resuming a failed sequence run: the requests, their errors, and the buttons. */
import { useState } from 'react';
import type { SequenceRunView } from '../api-types.js';
import { api, seg } from '../api.js';
import { href, navigate } from '../router.js';

/** POSTs to `path` on `cancel()` and calls `reload` after; a failure is kept in `error` for a banner. */
export function useCancelRun(path: string, reload: () => void): { error: unknown; cancel: () => Promise<void> } {
  const [error, setError] = useState<unknown>(undefined);
  const cancel = async () => {
    setError(undefined);
    try {
      await api.post(path);
      reload();
    } catch (thrown) {
      setError(thrown);
    }
  };
  return { error, cancel };
}

export function CancelRunButton({ onCancel }: { onCancel: () => Promise<void> }) {
  return (
    <div className="dialog-actions">
      <button type="button" className="button danger" onClick={() => void onCancel()}>
        Cancel run
      </button>
    </div>
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

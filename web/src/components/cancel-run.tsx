/** Cancelling a run from its dialog: the request, its error, and the button. */
import { useState } from 'react';
import { api } from '../api.js';

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

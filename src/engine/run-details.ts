import type { Store } from '../core/ports.js';
import { sequenceRunView, type SequenceRunView } from '../core/run-views.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';

/** A sequence run with each member's sync run and the slugs, as the API and the CLI show it. */
export async function sequenceRunDetails(store: Store, run: SequenceRun): Promise<SequenceRunView> {
  const syncRuns = new Map<number, SyncRun>();
  const slugs = new Map<number, string>();
  for (const m of run.members) {
    if (m.syncRunId !== null) {
      const syncRun = await store.getSyncRun(m.syncRunId);
      if (syncRun) syncRuns.set(syncRun.id, syncRun);
    }
    const sync = await store.getSync(m.syncId);
    if (sync) slugs.set(m.syncId, sync.slug);
  }
  const sequence = await store.getSequence(run.sequenceId);
  // Only a failed run is ever resumed.
  const resumedBy = run.status === 'failed' ? await store.resumingSequenceRunId(run.id) : null;
  return sequenceRunView(run, syncRuns, slugs, sequence?.slug ?? null, resumedBy);
}

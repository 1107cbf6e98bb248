import type { Store } from '../core/ports.js';
import { runSyncName, sequenceRunView, syncRunView, type NamedSyncRunView, type SequenceRunView } from '../core/run-views.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';

/**
 * A sequence run with each member's sync run and the slugs, as the API and the CLI show it. A
 * sync or sequence deleted since is named by the slug it had, marked deleted.
 */
export async function sequenceRunDetails(store: Store, run: SequenceRun, now: number): Promise<SequenceRunView> {
  const syncRuns = new Map<number, SyncRun>();
  for (const m of run.members) {
    if (m.syncRunId !== null) {
      const syncRun = await store.getSyncRun(m.syncRunId);
      if (syncRun) syncRuns.set(syncRun.id, syncRun);
    }
  }
  const syncSlugs = await store.slugsById('sync', run.members.map((m) => m.syncId));
  const sequence = (await store.slugsById('sequence', [run.sequenceId])).get(run.sequenceId) ?? null;
  // Only a failed or cancelled run is ever resumed.
  const resumedBy = run.status === 'failed' || run.status === 'cancelled' ? await store.resumingSequenceRunId(run.id) : null;
  return sequenceRunView(run, syncRuns, syncSlugs, sequence, now, resumedBy);
}

/** Sync runs with their syncs named, as the API and the CLI list them at `now` (see NamedSyncRunView, syncRunView). */
export async function syncRunDetails(store: Store, runs: readonly SyncRun[], now: number): Promise<NamedSyncRunView[]> {
  const slugs = await store.slugsById('sync', runs.map((run) => run.syncId));
  return runs.map((run) => ({ ...syncRunView(run, now), ...runSyncName(run.syncId, slugs) }));
}

/** Live progress: lines printed as runs move, read from the store so it works whoever runs them. */
import type { App } from '../app.js';
import type { SequenceRunView } from '../core/run-views.js';
import type { SequenceRun } from '../core/runs.js';
import { mark, progressLine, type Terminal } from './output.js';

/** Prints a line whenever the sync run's state moves (polling the store, so it works whoever runs it). */
export function followSyncRun(app: App, id: number, label: string, term: Terminal): () => void {
  let last = '';
  const timer = setInterval(() => {
    void app.store.getSyncRun(id).then((run) => {
      if (!run) return;
      const line = progressLine(label, run);
      if (line !== last && run.status !== 'success' && run.status !== 'warning') term.err(line);
      last = line;
    });
  }, 100);
  return () => clearInterval(timer);
}

export function followSequenceRun(app: App, id: string, term: Terminal): () => void {
  const seen = new Map<string, string>();
  let lastRunStatus = '';
  let busy = false;
  const tick = async () => {
    const run: SequenceRun | null = await app.store.getSequenceRun(id);
    if (!run) return;
    if (run.status !== lastRunStatus) {
      if (run.status === 'pending') term.err(`… sequence run ${run.id} queued`);
      if (run.status === 'running') term.err(`▶ sequence run ${run.id} started`);
      lastRunStatus = run.status;
    }
    for (const m of run.members) {
      let line: string;
      if (m.syncRunId !== null && (m.status === 'running' || m.status === 'pending')) {
        const syncRun = await app.store.getSyncRun(m.syncRunId);
        line = syncRun ? progressLine(m.key, syncRun) : `  … ${m.key}`;
      } else if (m.status === 'pending') continue;
      else line = `  ${mark(m.status)} ${m.key} ${m.status}`;
      if (seen.get(m.key) !== line) {
        term.err(line);
        seen.set(m.key, line);
      }
    }
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void tick().finally(() => (busy = false));
  }, 50);
  return () => clearInterval(timer);
}


/** Prints a few rejected rows of every member that had some, so a report says why rows were refused. */
export async function printRejectedSamples(app: App, view: SequenceRunView, term: Terminal, perMember = 3): Promise<void> {
  for (const m of view.members) {
    const run = m.syncRun;
    if (!run) continue;
    const total = run.failedRows.addedCount + run.failedRows.changedCount + run.failedRows.removedCount;
    if (total === 0) continue;
    const rows = await app.store.listRejectedRows(run.id, perMember, 0);
    term.out(`  rejected by ${m.key}${total > rows.length ? ` (first ${rows.length} of ${total})` : ''}:`);
    for (const r of rows) term.out(`    key ${r.key} (${r.op}): ${r.reason}`);
  }
}

/** Live progress: lines printed as runs move, read from the store so it works whoever runs them. */
import type { App } from '../app.js';
import type { SequenceRunView } from '../core/run-views.js';
import type { SequenceRun } from '../core/runs.js';
import { mark, progressLine, type Terminal } from './output.js';

/**
 * Polls `tick` until the returned stop function is called; stopping waits for a tick in flight and runs
 * a last one, so a run that finished between two polls still shows its final lines.
 */
function poll(tick: () => Promise<void>, intervalMs: number): () => Promise<void> {
  let running: Promise<void> | null = null;
  const once = () => {
    running ??= tick()
      .catch(() => undefined)
      .finally(() => (running = null));
    return running;
  };
  const timer = setInterval(() => void once(), intervalMs);
  return async () => {
    clearInterval(timer);
    await running;
    await once();
  };
}

/** Prints a line whenever the sync run's state moves (polling the store, so it works whoever runs it). */
export function followSyncRun(app: App, id: number, label: string, term: Terminal): () => Promise<void> {
  let last = '';
  return poll(async () => {
    const run = await app.store.getSyncRun(id);
    if (!run) return;
    const line = progressLine(label, run);
    if (line !== last && run.status !== 'success' && run.status !== 'warning') term.err(line);
    last = line;
  }, 100);
}

/** Prints the sequence run's start and a line whenever a member's state moves. */
export function followSequenceRun(app: App, id: string, term: Terminal): () => Promise<void> {
  const seen = new Map<string, string>();
  let saidQueued = false;
  let saidStarted = false;
  return poll(async () => {
    const run: SequenceRun | null = await app.store.getSequenceRun(id);
    if (!run) return;
    if (run.status === 'pending' && !saidQueued) {
      term.err(`… sequence run ${run.id} queued`);
      saidQueued = true;
    }
    if (run.startedAt !== null && !saidStarted) {
      term.err(`▶ sequence run ${run.id} started`);
      saidStarted = true;
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
  }, 50);
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

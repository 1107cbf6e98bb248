/**
 * Live progress on stderr, read from the store so it works whoever runs the work. On a terminal one
 * line is redrawn in place, and lines that stay (a member's end, a log line) are printed above it;
 * when stderr is a file or a pipe, an update is a line of its own, printed when a run's status
 * changes or another tenth of it is done.
 */
import type { App } from '../app.js';
import type { SequenceRunView } from '../core/run-views.js';
import { isTerminalSyncRunStatus, type SequenceRun, type SyncRun } from '../core/runs.js';
import { mark, progressLine, progressStep, type Terminal } from './output.js';

/** Erases the terminal's line from the cursor to its end. */
const CLEAR_LINE = '\u001b[K';

/** One part of the live line: a run's progress, and when it is worth a line of its own off a terminal. */
export interface LivePart {
  /** Tells the parts apart (a member's key, a sync's slug). */
  key: string;
  text: string;
  /** Off a terminal, the part is printed when this changes (default: when the text does). */
  step?: string;
}

/** The live line of a command that waits for runs (see the module comment). */
export class StatusLine {
  /** What the terminal shows as the live line now ('' when nothing). */
  private drawn = '';
  /** Off a terminal: the step each part was last printed at. */
  private readonly printed = new Map<string, string>();
  /** Prints a line that stays, above the live line: give it to whatever else writes to stderr meanwhile. */
  readonly terminal: Terminal;

  constructor(private readonly term: Terminal) {
    this.terminal = { ...term, err: (text) => this.print(text) };
  }

  /** Shows the parts as the live line (on a terminal, side by side, cut to its width). */
  show(parts: readonly LivePart[]): void {
    const screen = this.term.errScreen;
    if (!screen) {
      for (const part of parts) {
        const step = part.step ?? part.text;
        if (this.printed.get(part.key) === step) continue;
        this.printed.set(part.key, step);
        this.term.err(part.text);
      }
      return;
    }
    const text = fit(parts.map((p) => p.text).join('   '), screen.columns);
    if (text === this.drawn) return;
    screen.write(`\r${text}${CLEAR_LINE}`);
    this.drawn = text;
  }

  /** Prints a line that stays, above the live line. */
  print(text: string): void {
    const screen = this.term.errScreen;
    if (screen && this.drawn) screen.write(`\r${CLEAR_LINE}`);
    this.term.err(text);
    if (screen && this.drawn) screen.write(this.drawn);
  }

  /** Takes the live line away, so what follows (a report) starts on a clean line. */
  clear(): void {
    const screen = this.term.errScreen;
    if (screen && this.drawn) screen.write(`\r${CLEAR_LINE}`);
    this.drawn = '';
  }
}

/** `text` cut to fit a line of `columns` (one column is left free: a full line would wrap on some terminals). */
export function fit(text: string, columns: number): string {
  const chars = [...text];
  const room = Math.max(10, columns - 1);
  return chars.length <= room ? text : `${chars.slice(0, room - 1).join('')}…`;
}

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

/** A run's progress as a part of the live line; the bar never goes back (the engine's estimate may). */
class RunGauge {
  private ratio = 0;
  private expectedRows: Promise<number | null> | null = null;
  private ahead: Promise<number | null> | null = null;

  constructor(private readonly app: App) {}

  async part(key: string, label: string, run: SyncRun): Promise<LivePart> {
    this.expectedRows ??= lastRowCount(this.app, run).catch(() => null);
    if (run.status === 'queued') this.ahead ??= runAhead(this.app, run).catch(() => null);
    if (run.status === 'processing') this.ratio = Math.max(this.ratio, run.completionRatio);
    const estimate = { ratio: this.ratio, expectedRows: await this.expectedRows, ahead: run.status === 'queued' ? await this.ahead : null };
    return { key, text: progressLine(label, run, estimate), step: progressStep(run, estimate) };
  }
}

/** The run of `run`'s sync under way, which queued `run` waits for; null when there is none. */
async function runAhead(app: App, run: SyncRun): Promise<number | null> {
  const active = await app.store.listSyncRuns({ syncId: run.syncId, statuses: ['querying', 'processing', 'reporting'], limit: 2, offset: 0, order: 'desc' });
  return active.find((r) => r.id !== run.id)?.id ?? null;
}

/** The rows the sync's last finished run before `run` read, or null when none read any. */
async function lastRowCount(app: App, run: SyncRun): Promise<number | null> {
  const finished = await app.store.listSyncRuns({ syncId: run.syncId, statuses: ['success', 'warning'], limit: 2, offset: 0, order: 'desc' });
  const last = finished.find((r) => r.id < run.id);
  return last && last.querySize > 0 ? last.querySize : null;
}

/**
 * Shows the sync run's progress until the returned function is called, which takes the live line
 * away: the report that follows says how the run ended.
 */
export function followSyncRun(app: App, id: number, label: string, line: StatusLine): () => Promise<void> {
  const gauge = new RunGauge(app);
  const stop = poll(async () => {
    const run = await app.store.getSyncRun(id);
    if (!run || isTerminalSyncRunStatus(run.status)) return;
    line.show([await gauge.part(label, label, run)]);
  }, 100);
  return async () => {
    await stop();
    line.clear();
  };
}

/**
 * Shows the sequence run's start, a line that stays when a member ends, and the running members'
 * progress, until the returned function is called.
 */
export function followSequenceRun(app: App, id: string, line: StatusLine): () => Promise<void> {
  const said = new Map<string, string>();
  const gauges = new Map<number, RunGauge>();
  let saidQueued = false;
  let saidStarted = false;
  const stop = poll(async () => {
    const run: SequenceRun | null = await app.store.getSequenceRun(id);
    if (!run) return;
    if (run.status === 'pending' && !saidQueued) {
      line.print(`… sequence run ${run.id} queued`);
      saidQueued = true;
    }
    if (run.startedAt !== null && !saidStarted) {
      line.print(`▶ sequence run ${run.id} started`);
      saidStarted = true;
    }
    const live: LivePart[] = [];
    for (const m of run.members) {
      if (m.status === 'pending' && m.syncRunId === null) continue;
      if (m.status === 'running' || m.status === 'pending') {
        const syncRun = m.syncRunId === null ? null : await app.store.getSyncRun(m.syncRunId);
        if (!syncRun) live.push({ key: m.key, text: `  … ${m.key}` });
        else {
          let gauge = gauges.get(syncRun.id);
          if (!gauge) gauges.set(syncRun.id, (gauge = new RunGauge(app)));
          live.push(await gauge.part(m.key, m.key, syncRun));
        }
        continue;
      }
      // A member that finished before this run started was carried over from the run it resumes: it did not run now.
      const carried = run.resumedFrom !== null && run.startedAt !== null && m.finishedAt !== null && m.finishedAt < run.startedAt;
      const end = `  ${mark(m.status)} ${m.key} ${m.status}${carried ? ' (carried over)' : ''}`;
      if (said.get(m.key) === end) continue;
      said.set(m.key, end);
      line.print(end);
    }
    line.show(live);
  }, 50);
  return async () => {
    await stop();
    line.clear();
  };
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

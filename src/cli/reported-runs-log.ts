/**
 * The log of a command that reports its own runs (`sync run`, `sequence run`): their report prints
 * a failed run's error, so the engine's log line saying the same is not printed as well.
 */
import type { Terminal } from './output.js';

/** The message of the engine's log line for a sync run that failed; its fields name the run (`syncRunId`). */
const SYNC_RUN_FAILED = 'sync run failed';

/**
 * A terminal for the command's JSON log: every line passes through at once, except a failed sync
 * run's, which waits for `release`, since which runs the report shows is known only at its end (a
 * sequence's members start as it goes). Lines of runs the report does not show, run by this process
 * meanwhile, are printed then.
 */
export class ReportedRunsLog {
  private readonly held: Array<{ syncRunId: number; line: string }> = [];
  /** Give this to the logger. */
  readonly terminal: Terminal;

  constructor(private readonly target: Terminal) {
    this.terminal = { ...target, err: (line) => this.write(line) };
  }

  /** Prints what was held back, but the lines of the sync runs the report showed. */
  release(reported: Iterable<number>): void {
    const shown = new Set(reported);
    for (const { syncRunId, line } of this.held.splice(0)) if (!shown.has(syncRunId)) this.target.err(line);
  }

  private write(line: string): void {
    const syncRunId = failedSyncRunId(line);
    if (syncRunId === null) this.target.err(line);
    else this.held.push({ syncRunId, line });
  }
}

/** The run a JSON log line says failed, or null for any other line. */
function failedSyncRunId(line: string): number | null {
  if (!line.includes(SYNC_RUN_FAILED)) return null;
  try {
    const entry = JSON.parse(line) as { msg?: unknown; syncRunId?: unknown };
    return entry.msg === SYNC_RUN_FAILED && typeof entry.syncRunId === 'number' ? entry.syncRunId : null;
  } catch {
    return null;
  }
}

/** Human-readable run reports and live progress for the terminal. */
import { totalCount, type OperationCounts, type RejectedRow, type SyncRun } from '../core/runs.js';
import type { SequenceRunView, SyncRunView } from '../core/run-views.js';
import { formatPhaseTimes } from '../core/run-phases.js';

export function formatDuration(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function counts(c: OperationCounts): string {
  return `+${c.addedCount} ~${c.changedCount} -${c.removedCount}`;
}

const STATUS_MARK: Record<string, string> = {
  success: '✔',
  done: '✔',
  warning: '▲',
  failed: '✖',
  cancelled: '■',
  skipped: '·',
  pending: '…',
  queued: '…',
  running: '▶',
  querying: '▶',
  processing: '▶',
  reporting: '▶',
  interrupted: '↻',
};

export const mark = (status: string): string => STATUS_MARK[status] ?? ' ';

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

export function formatSequenceReport(view: SequenceRunView): string {
  const lines: string[] = [];
  lines.push(
    `${mark(view.status)} Sequence ${view.sequence ?? view.sequenceId} — run ${view.id} — ${view.status.toUpperCase()} in ${formatDuration(view.durationMs)}`,
  );
  if (view.resumedFrom) lines.push(`  Resumes run ${view.resumedFrom}; members marked "carried over" finished there and did not run again`);
  const rows = [['', '#', 'member', 'status', 'rows read', 'delivered', 'rejected', 'time', 'sync run']];
  view.members.forEach((m, i) => {
    const r = m.syncRun;
    rows.push([
      mark(m.status),
      String(i + 1),
      m.key,
      m.carriedOver ? `${m.status} (carried over)` : m.status,
      r ? String(r.querySize) : '',
      r ? counts(r.successfulRows) : '',
      r ? String(totalCount(r.failedRows)) : '',
      formatDuration(m.durationMs),
      m.syncRunId === null ? '' : String(m.syncRunId),
    ]);
  });
  lines.push(...table(rows).map((l) => `  ${l}`));
  for (const m of view.members) {
    if (m.syncRun?.error) lines.push(`  ${m.key}: ${m.syncRun.error}`);
  }
  if (view.reason) {
    // A reason that ends with the terminating member's error has just been printed with it: once is enough.
    const error = view.members.find((m) => m.key === view.terminatedBy)?.syncRun?.error;
    const reason = error && view.reason.endsWith(`: ${error}`) ? view.reason.slice(0, -(error.length + 2)) : view.reason;
    lines.push(`  ${view.terminatedBy ? `Terminated by ${view.terminatedBy}` : 'Stopped'}: ${reason}`);
  }
  return lines.join('\n');
}

export function formatSyncReport(slug: string, view: SyncRunView, rejected: RejectedRow[], rejectedTotal: number): string {
  const lines: string[] = [];
  const duration = view.startedAt && view.finishedAt ? Date.parse(view.finishedAt) - Date.parse(view.startedAt) : null;
  lines.push(`${mark(view.status)} Sync ${slug} — run ${view.id} — ${view.status.toUpperCase()} in ${formatDuration(duration)}`);
  lines.push(
    `  rows read ${view.querySize}   planned ${counts(view.plannedRows)}   delivered ${counts(view.successfulRows)}   rejected ${counts(view.failedRows)}`,
  );
  if (view.phaseMs) lines.push(`  time: ${formatPhaseTimes(view.phaseMs)}`);
  if (view.error) lines.push(`  error: ${view.error}`);
  if (rejected.length > 0) {
    lines.push(`  rejected rows${rejectedTotal > rejected.length ? ` (first ${rejected.length} of ${rejectedTotal})` : ''}:`);
    for (const r of rejected) lines.push(`    key ${r.key} (${r.op}): ${r.reason}`);
  }
  return lines.join('\n');
}

const rowCount = (n: number): string => n.toLocaleString('en-US');

function bar(ratio: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, ratio)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** What a progress line knows beyond the run's record. */
export interface ProgressEstimate {
  /** Share of the run done: the run's `completionRatio`, kept from going back by the caller. */
  ratio: number;
  /**
   * Rows the sync's last finished run read, the model's row count to expect; null before any. The
   * engine's `completionRatio` is measured against the rows delivered before, so without them the
   * ratio says nothing of how much of the model is left, and no bar is drawn.
   */
  expectedRows: number | null;
  /** A queued run waits for the run of its sync under way (a sync never runs twice at once): that run's id, when known. */
  ahead?: number | null;
}

/**
 * One line describing a sync run's progress, for live output. The model is streamed, so its row
 * count is known only once it has been read (from `reporting` on, the rows read are that count);
 * until then the total shown is the one the last run read, `~N`, which does not move.
 */
export function progressLine(label: string, run: SyncRun, estimate: ProgressEstimate = { ratio: run.completionRatio, expectedRows: null }): string {
  const rejected = totalCount(run.failedRows);
  const outcome = `${rowCount(totalCount(run.successfulRows))} delivered${rejected > 0 ? ` · ${rowCount(rejected)} rejected` : ''}`;
  switch (run.status) {
    case 'queued':
      return estimate.ahead ? `  … ${label} waiting for sync run ${estimate.ahead} of its sync, under way, to end` : `  … ${label} waiting`;
    case 'querying':
      return `  ▶ ${label} reading the model`;
    case 'processing': {
      // A model grown past the last run's count has no known total: no bar rather than a wrong one
      // (a model of 10 rows grown to 400,000 showed 91% with 31,000 rows delivered).
      const expected = knownTotal(run, estimate);
      if (expected === null) return `  ▶ ${label} ${rowCount(run.querySize)} rows read · ${outcome}`;
      const ratio = Math.min(1, Math.max(0, estimate.ratio));
      const percent = `${Math.floor(ratio * 100)}%`.padStart(4);
      return `  ▶ ${label} ${bar(ratio)} ${percent}  ${rowCount(run.querySize)} of ~${rowCount(expected)} rows read · ${outcome}`;
    }
    case 'reporting':
      return `  ▶ ${label} all ${rowCount(run.querySize)} rows read · ${outcome} · reporting`;
    default:
      return `  ${mark(run.status)} ${label} ${run.status} — delivered ${counts(run.successfulRows)}, rejected ${rejected}`;
  }
}

/** The model's expected rows while the run has not read past them; null once it has, or when none is known. */
function knownTotal(run: SyncRun, estimate: ProgressEstimate): number | null {
  const expected = estimate.expectedRows;
  return expected !== null && run.querySize <= expected ? expected : null;
}

/**
 * When a progress line is worth a line of its own where it cannot be redrawn (stderr a file or a
 * pipe): a new status; while processing, another tenth of the run done, or without an expected
 * total, each time the rows read double.
 */
export function progressStep(run: SyncRun, estimate: ProgressEstimate): string {
  if (run.status !== 'processing') return run.status;
  if (knownTotal(run, estimate) === null) return `processing, 2^${Math.floor(Math.log2(Math.max(1, run.querySize)))} rows read`;
  return `processing ${Math.floor(Math.min(1, estimate.ratio) * 10)}/10`;
}

/** Writes for the CLI; swapped in tests. */
export interface Terminal {
  /** Writes a line to stdout (a newline is added when missing). */
  out(text: string): void;
  /** Writes a line to stderr (a newline is added when missing). */
  err(text: string): void;
  /** stdout is a terminal. */
  isTTY: boolean;
  /**
   * Set when stderr is a terminal: live progress redraws one line in place through it (text written
   * as is, no newline added). Unset when stderr is a file or a pipe: progress then prints a line per
   * update.
   */
  errScreen?: TerminalScreen;
}

/** A terminal's screen, written to without newlines so a line can be redrawn. */
export interface TerminalScreen {
  write(text: string): void;
  /** Its width: a live line is cut to fit, since a wrapped line cannot be redrawn in place. */
  readonly columns: number;
}

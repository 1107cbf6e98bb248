/** Human-readable run reports and live progress for the terminal. */
import { totalCount, type OperationCounts, type RejectedRow, type SyncRun } from '../core/runs.js';
import type { SequenceRunView, SyncRunView } from '../core/run-views.js';

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
  const rows = [['', '#', 'member', 'status', 'rows read', 'delivered', 'rejected', 'time', 'sync run']];
  view.members.forEach((m, i) => {
    const r = m.syncRun;
    rows.push([
      mark(m.status),
      String(i + 1),
      m.key,
      m.status,
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
  if (view.reason) lines.push(`  ${view.terminatedBy ? `Terminated by ${view.terminatedBy}` : 'Stopped'}: ${view.reason}`);
  return lines.join('\n');
}

export function formatSyncReport(slug: string, view: SyncRunView, rejected: RejectedRow[], rejectedTotal: number): string {
  const lines: string[] = [];
  const duration = view.startedAt && view.finishedAt ? Date.parse(view.finishedAt) - Date.parse(view.startedAt) : null;
  lines.push(`${mark(view.status)} Sync ${slug} — run ${view.id} — ${view.status.toUpperCase()} in ${formatDuration(duration)}`);
  lines.push(
    `  rows read ${view.querySize}   planned ${counts(view.plannedRows)}   delivered ${counts(view.successfulRows)}   rejected ${counts(view.failedRows)}`,
  );
  if (view.error) lines.push(`  error: ${view.error}`);
  if (rejected.length > 0) {
    lines.push(`  rejected rows${rejectedTotal > rejected.length ? ` (first ${rejected.length} of ${rejectedTotal})` : ''}:`);
    for (const r of rejected) lines.push(`    key ${r.key} (${r.op}): ${r.reason}`);
  }
  return lines.join('\n');
}

/** One line describing a sync run's progress, for live output. */
export function progressLine(label: string, run: SyncRun): string {
  const planned = totalCount(run.plannedRows);
  const done = totalCount(run.successfulRows) + totalCount(run.failedRows);
  switch (run.status) {
    case 'queued':
      return `  … ${label} waiting`;
    case 'querying':
      return `  ▶ ${label} reading the model`;
    case 'processing': {
      const width = 20;
      const filled = Math.round(run.completionRatio * width);
      return `  ▶ ${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${planned} rows`;
    }
    case 'reporting':
      return `  ▶ ${label} reporting`;
    default:
      return `  ${mark(run.status)} ${label} ${run.status} — delivered ${counts(run.successfulRows)}, rejected ${totalCount(run.failedRows)}`;
  }
}

/** Writes for the CLI; swapped in tests. */
export interface Terminal {
  out(text: string): void;
  err(text: string): void;
  isTTY: boolean;
}


/** `lockstep runs`: the recent sequence runs and sync runs, of one sync or sequence or of all. */
import { Option, type Command } from 'commander';
import type { App } from '../../app.js';
import type { NamedSyncRunView } from '../../core/run-views.js';
import { sequenceRunDetails, syncRunDetails } from '../../engine/run-details.js';
import { nextFiring } from '../../engine/schedule-times.js';
import type { SyncRunStatus } from '../../core/runs.js';
import { MAX_LIMIT, limitFlag, syncRunStatusFlag } from '../flags.js';
import { unknownSlug } from '../lookups.js';
import { mark, type Terminal } from '../output.js';
import type { CommandDeps } from './command-deps.js';

export function registerRunsCommand(program: Command, deps: CommandDeps): void {
  const { term, open } = deps;

  program
    .command('runs')
    .description('list recent sequence runs and sync runs')
    // One or the other: with both, neither list would be shown.
    .addOption(new Option('--sequence <slug>', 'only runs of this sequence (or of the ones deleted under that slug)').conflicts('sync'))
    .option('--sync <slug>', 'only runs of this sync (or of the ones deleted under that slug)')
    .option('--limit <n>', `how many runs, 1 to ${MAX_LIMIT}`, '20')
    .addOption(
      new Option('--status <states>', 'only sync runs in these states as shown, comma-separated (e.g. interrupted,failed); lists sync runs only').conflicts('sequence'),
    )
    .option('--json', 'print JSON')
    .action(async (opts: { sequence?: string; sync?: string; limit: string; status?: string; json?: boolean }) => {
      const limit = limitFlag(opts.limit);
      const statuses = opts.status === undefined ? undefined : syncRunStatusFlag(opts.status);
      const { app, close } = await open.toRead();
      try {
        await printRuns(app, term, { ...opts, limit, statuses });
      } finally {
        await close();
      }
    });
}

async function printRuns(app: App, term: Terminal, opts: { sequence?: string; sync?: string; limit: number; statuses?: SyncRunStatus[] | undefined; json?: boolean }) {
  const page = { limit: opts.limit, offset: 0, order: 'desc' as const };
  const out: { nextScheduled: NextScheduled[]; sequenceRuns: unknown[]; syncRuns: unknown[] } = { nextScheduled: [], sequenceRuns: [], syncRuns: [] };
  // A run started by another one's end names it, as its view says: `sequence "crm" run 5f0c… ended done`.
  const afterUpstream = (v: { trigger: string; triggerDetail: string | null }) => (v.trigger === 'upstream' && v.triggerDetail ? `  (after ${v.triggerDetail})` : '');
  // A run taken over after its process stopped went on under its id: say so, as its earlier attempts left no run of their own.
  const takenOver = (v: { attempt: number }) => (v.attempt > 1 ? `  (attempt ${v.attempt}: resumed after the process running it stopped)` : '');
  const now = app.clock.now();
  if (!opts.statuses) out.nextScheduled = await nextScheduled(app, now, opts);
  if (!opts.sync && !opts.statuses) {
    const sequenceIds = opts.sequence ? await idsWithRuns(app, term, 'sequence', opts.sequence) : undefined;
    const runs = await app.store.listSequenceRuns({ ...page, sequenceIds });
    for (const run of runs) out.sequenceRuns.push(await sequenceRunDetails(app.store, run, app.clock.now()));
  }
  if (!opts.sequence) {
    const syncIds = opts.sync ? await idsWithRuns(app, term, 'sync', opts.sync) : undefined;
    // States as shown at `now`: a run whose process stopped is `interrupted` (syncRunStatusAt), filtered so by the store.
    const runs = await app.store.listSyncRuns({ ...page, syncIds, ...(opts.statuses ? { statuses: opts.statuses, statusesAt: now } : {}) });
    // A sync since deleted (or renamed: a rename deletes and creates) is named by the slug its runs ran as, marked deleted, as the API answers.
    out.syncRuns.push(...(await syncRunDetails(app.store, runs, now)));
  }
  if (opts.json) {
    term.out(JSON.stringify(out, null, 2));
    return;
  }
  if (out.nextScheduled.length > 0) {
    term.out('Next on schedule');
    for (const next of out.nextScheduled) term.out(`  ⏱ ${next.nextDueAt}  ${next.kind} ${next.slug}`);
  }
  if (out.sequenceRuns.length > 0) {
    term.out('Sequence runs');
    for (const v of out.sequenceRuns as Awaited<ReturnType<typeof sequenceRunDetails>>[]) {
      term.out(`  ${mark(v.status)} ${v.createdAt}  ${deletedOrNot(v.sequence, v.sequenceSlug, `sequence ${v.sequenceId}`)}  ${v.status}${cancelling(v)}  ${v.id}${v.resumedFrom ? `  (resumes ${v.resumedFrom})` : ''}${afterUpstream(v)}${v.reason ? `  — ${v.reason}` : ''}`);
    }
  }
  if (out.syncRuns.length > 0) {
    term.out('Sync runs');
    for (const v of out.syncRuns as NamedSyncRunView[]) {
      term.out(
        `  ${mark(v.status)} ${v.createdAt}  #${v.id}  ${deletedOrNot(v.sync, v.syncSlug, `sync ${v.syncId}`)}  ${v.status}${cancelling(v)}  ${rowCounts(v)}${heldBy(v, now)}${afterUpstream(v)}${v.lease ? '' : takenOver(v)}${v.error ? `  — ${v.error}` : ''}`,
      );
    }
  }
  if (out.sequenceRuns.length === 0 && out.syncRuns.length === 0) term.out('No runs yet. Start one with `lockstep sequence run <slug>` or `lockstep sync run <slug>`.');
}

/** A sync's or sequence's next due time on its schedule, as `runs` lists it. */
interface NextScheduled {
  kind: 'sync' | 'sequence';
  slug: string;
  nextDueAt: string;
}

/** The enabled syncs and sequences (the one asked about, or all) that a scheduler fires on their schedules, the soonest first. */
async function nextScheduled(app: App, now: number, opts: { sequence?: string; sync?: string }): Promise<NextScheduled[]> {
  const workspace = await app.store.loadWorkspace();
  const entities = [
    ...(opts.sequence ? [] : workspace.syncs.filter((s) => opts.sync === undefined || s.slug === opts.sync).map((s) => ({ kind: 'sync' as const, entity: s }))),
    ...(opts.sync ? [] : workspace.sequences.filter((s) => opts.sequence === undefined || s.slug === opts.sequence).map((s) => ({ kind: 'sequence' as const, entity: s }))),
  ];
  const next: Array<NextScheduled & { at: number }> = [];
  for (const { kind, entity } of entities) {
    const at = nextFiring(entity, now);
    if (at !== null) next.push({ kind, slug: entity.slug, nextDueAt: new Date(at).toISOString(), at });
  }
  return next.sort((a, b) => a.at - b.at).map(({ at: _at, ...rest }) => rest);
}

/** Marks a run a user asked to cancel that has not ended yet: it is stopping. */
function cancelling(v: { cancelRequested: boolean }): string {
  return v.cancelRequested ? ' (cancelling)' : '';
}

/** What a run read, delivered and rejected; a run that never started (queued, or cancelled in the queue) has no counts yet. */
function rowCounts(v: NamedSyncRunView): string {
  if (v.startedAt === null) return 'not started';
  const { successfulRows: delivered, failedRows: rejected } = v;
  return `read ${v.querySize}, delivered +${delivered.addedCount} ~${delivered.changedCount} -${delivered.removedCount}, rejected ${rejected.addedCount + rejected.changedCount + rejected.removedCount}`;
}

/** Which worker a run at work is on, and whether its lease ran out (that worker stopped renewing it). */
function heldBy(v: NamedSyncRunView, now: number): string {
  if (!v.lease) return '';
  const expired = Date.parse(v.lease.expiresAt) <= now;
  return expired
    ? `  on worker ${v.lease.workerId}, whose lease ended ${v.lease.expiresAt} (another worker takes the run over)`
    : `  on worker ${v.lease.workerId} (attempt ${v.attempt})`;
}

/**
 * The syncs (or sequences) whose runs `runs --sync <slug>` lists: the live one the slug names, else
 * the ones deleted under it, whose runs stay in the history (stderr says it was deleted, so a list
 * of old runs is not taken for the runs of something still there). A slug nothing ever had is an error.
 */
async function idsWithRuns(app: App, term: Terminal, kind: 'sync' | 'sequence', slug: string): Promise<number[]> {
  const live = kind === 'sync' ? await app.store.getSync(slug) : await app.store.getSequence(slug);
  if (live) return [live.id];
  const deleted = await app.store.deletedIdsBySlug(kind, slug);
  if (deleted.length === 0) throw await unknownSlug(app, kind, slug);
  const whose = deleted.length === 1 ? 'the runs it had' : `the runs of the ${deleted.length} ${kind}s that had that slug, each deleted since`;
  term.err(`${kind} "${slug}" was deleted and is no longer in the workspace: listing ${whose}`);
  return deleted;
}

/** A run's sync or sequence as the runs list names it: its slug, or the slug it ran as, marked deleted. */
function deletedOrNot(live: string | null, ranAs: string | null, byId: string): string {
  if (live !== null) return live;
  return ranAs !== null ? `${ranAs} (deleted)` : `(deleted ${byId})`;
}

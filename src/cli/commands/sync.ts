/**
 * `lockstep sync run <slug>` runs a sync now and waits for it; `lockstep sync cancel <runId>`
 * cancels a run (a running one stops at once, in whichever process runs it).
 */
import type { Command } from 'commander';
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { rejectedRowView, syncRunView } from '../../core/run-views.js';
import type { SyncRun } from '../../core/runs.js';
import { syncRunDetails } from '../../engine/run-details.js';
import { requireSlug, runShown, unknownRun } from '../lookups.js';
import { formatSyncReport } from '../output.js';
import { StatusLine, followSyncRun } from '../progress.js';
import { ReportedRunsLog } from '../reported-runs-log.js';
import { cancelOnSignal, quitOnSignal } from '../signals.js';
import type { CommandDeps } from './command-deps.js';

export function registerSyncCommands(program: Command, deps: CommandDeps): void {
  const { term, open, setExit, exit } = deps;

  const syncCommand = program.command('sync').description('run and inspect syncs');
  syncCommand
    .command('run <slug>')
    .description('run a sync now and wait for it')
    .option('--full-resync', 'send every row, ignoring what was delivered before')
    .option('--reset-cdc', 'rebuild the snapshot from the model without sending anything')
    .option('--allow-mass-delete', "let this run delete more than the sync's maxDeletePercent of its rows, once")
    .option('--full-compare', 'compare the whole model even though it declares a cursor (catches deletes and late writes)')
    .option('--json', 'print the finished run as JSON')
    .action(async (slug: string, opts: { fullResync?: boolean; resetCdc?: boolean; allowMassDelete?: boolean; fullCompare?: boolean; json?: boolean }) => {
      const line = new StatusLine(term);
      const log = new ReportedRunsLog(line.terminal);
      const { app, close } = await open.toRun(
        async (opened) => {
          await requireSlug(opened, 'sync', slug);
          if (opts.fullResync && opts.resetCdc) {
            throw new LockstepError(
              ErrorCode.Validation,
              '--full-resync and --reset-cdc contradict each other: --full-resync sends every row, --reset-cdc sends none and only records the model as delivered — choose one',
            );
          }
        },
        { term: log.terminal, lookingFor: `no sync "${slug}"` },
      );
      const reported: number[] = [];
      try {
        const { run, created } = await app.runs.triggerSync(
          slug,
          { fullResync: Boolean(opts.fullResync), resetCDC: Boolean(opts.resetCdc), allowMassDelete: Boolean(opts.allowMassDelete), fullCompare: Boolean(opts.fullCompare) },
          { type: 'manual', detail: 'cli' },
        );
        // This process exits once the run ends: it takes up no other work then.
        app.worker.takeWorkUntilEnd({ syncRunId: run.id });
        // If the process running it dies, another worker takes the same run over: waiting on its id is enough.
        const stopProgress = opts.json ? async () => {} : followSyncRun(app, run.id, slug, line);
        // A run already queued is shared: this command waits for it, and Ctrl-C leaves it to its trigger.
        const joined = created ? null : `queued by ${run.trigger.type}${run.trigger.detail ? ` (${run.trigger.detail})` : ''}`;
        if (joined) line.print(`… sync "${slug}" already had a queued run, ${run.id}, ${joined}: waiting for it`);
        const stopCancelling =
          joined === null
            ? cancelOnSignal(line.terminal, `sync run ${run.id}`, () => app.runs.cancelSyncRun(run.id))
            : quitOnSignal(line.terminal, `sync run ${run.id}`, joined, `lockstep sync cancel ${run.id}`);
        const final = await app.runs
          .waitForSyncRun(run.id)
          .finally(stopCancelling)
          .finally(stopProgress);
        reported.push(final.id);
        const rejected = await app.store.listRejectedRows(final.id, 10, 0);
        if (opts.json) {
          const all = await app.store.listRejectedRows(final.id, 1000, 0);
          const [named] = await syncRunDetails(app.store, [final], app.clock.now());
          term.out(JSON.stringify({ ...named, rejectedRows: all.map(rejectedRowView) }, null, 2));
        } else {
          term.out(formatSyncReport(slug, syncRunView(final, app.clock.now()), rejected, totalRejected(final)));
        }
        setExit(final.status === 'success' || final.status === 'warning' ? exit.ok : exit.runFailed);
      } finally {
        log.release(reported);
        await close();
      }
    });
  syncCommand
    .command('cancel <runId>')
    .description('cancel a sync run (a running one stops at once, its query or write interrupted)')
    .action(async (runId: string) => {
      const { app, close } = await open.app({ lookingFor: `no sync run ${runShown('sync', runId)}` });
      try {
        const id = Number(runId);
        const known = Number.isInteger(id) && id > 0 && (await app.store.getSyncRun(id)) !== null;
        if (!known) throw await unknownRun(app, 'sync', runId);
        const run = await app.runs.cancelSyncRun(id);
        const outcome =
          run.status !== 'cancelled'
            ? 'cancel requested: it stops at once, a batch being written cut off (the next run sends it again); the batches delivered stay delivered'
            : run.startedAt === null
              ? 'cancelled: it left the queue without running'
              : 'cancelled: the process running it had stopped; the batches it delivered stay delivered';
        term.out(`sync run ${run.id}: ${outcome}`);
      } finally {
        await close();
      }
    });
}

function totalRejected(run: SyncRun): number {
  return run.failedRows.addedCount + run.failedRows.changedCount + run.failedRows.removedCount;
}

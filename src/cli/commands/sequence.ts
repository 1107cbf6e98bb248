/**
 * `lockstep sequence run <slug>` runs a sequence and waits for it, `sequence plan` is its dry run
 * (sequence-plan.ts), `sequence resume <runId>` runs again the members of a failed or cancelled
 * run that did not finish well, and `sequence cancel <runId>` cancels a run.
 */
import type { Command } from 'commander';
import type { App } from '../../app.js';
import { sequenceRunDetails } from '../../engine/run-details.js';
import { requireSlug, runShown, unknownRun } from '../lookups.js';
import { formatSequenceReport } from '../output.js';
import { StatusLine, followSequenceRun, printRejectedSamples } from '../progress.js';
import { ReportedRunsLog } from '../reported-runs-log.js';
import { cancelOnSignal, quitOnSignal } from '../signals.js';
import type { CommandDeps } from './command-deps.js';
import { registerSequencePlanCommand } from './sequence-plan.js';

/** Sequence run ids are UUIDs. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function registerSequenceCommands(program: Command, deps: CommandDeps): void {
  const { term, open, setExit, exit } = deps;

  /**
   * Follows a sequence run to its end (live progress unless `json`), prints its report or its JSON,
   * and sets the exit code; the member runs it reported (not those carried over) go into `reported`.
   * Ctrl-C cancels the run when the command queued it; one queued before (`joined`, with what
   * queued it) is not the command's to cancel.
   */
  const reportSequenceRun = async (app: App, runId: string, line: StatusLine, json: boolean, reported: number[], joined: string | null = null): Promise<void> => {
    // This process exits once the run ends: it takes up no other work then.
    app.worker.takeWorkUntilEnd({ sequenceRunId: runId });
    const stopProgress = json ? async () => {} : followSequenceRun(app, runId, line);
    const what = `sequence run ${runId}`;
    const stopCancelling =
      joined === null
        ? cancelOnSignal(line.terminal, what, () => app.runs.cancelSequenceRun(runId))
        : quitOnSignal(line.terminal, what, joined, `lockstep sequence cancel ${runId}`);
    const final = await app.runs
      .waitForSequenceRun(runId)
      .finally(stopCancelling)
      .finally(stopProgress);
    const view = await sequenceRunDetails(app.store, final, app.clock.now());
    for (const m of view.members) if (m.syncRunId !== null && !m.carriedOver) reported.push(m.syncRunId);
    if (json) term.out(JSON.stringify(view, null, 2));
    else {
      term.out(formatSequenceReport(view));
      await printRejectedSamples(app, view, term);
    }
    setExit(final.status === 'done' ? exit.ok : exit.runFailed);
  };

  const sequenceCommand = program.command('sequence').description('run and inspect sequences');
  sequenceCommand
    .command('run <slug>')
    .description('run a sequence now, show its progress, and wait for it')
    .option('--json', 'print the finished run as JSON (the shape of GET /api/v1/sync-sequences/runs/{id})')
    .action(async (slug: string, opts: { json?: boolean }) => {
      const line = new StatusLine(term);
      const log = new ReportedRunsLog(line.terminal);
      const { app, close } = await open.toRun((opened) => requireSlug(opened, 'sequence', slug), { term: log.terminal, lookingFor: `no sequence "${slug}"` });
      const reported: number[] = [];
      try {
        const { run, created } = await app.runs.triggerSequence(slug, { type: 'manual', detail: 'cli' });
        // A run already queued is shared: this command waits for it, and it stays its trigger's.
        const joined = created ? null : `queued by ${run.trigger.type}${run.trigger.detail ? ` (${run.trigger.detail})` : ''}`;
        if (joined) line.print(`… sequence "${slug}" already had a queued run, ${run.id}, ${joined}: waiting for it`);
        await reportSequenceRun(app, run.id, line, opts.json === true, reported, joined);
      } finally {
        log.release(reported);
        await close();
      }
    });
  registerSequencePlanCommand(sequenceCommand, { term, open: () => open.toRead(), setExit, failedExit: exit.runFailed });
  sequenceCommand
    .command('resume <runId>')
    .description('resume a failed or cancelled sequence run: members that finished well are carried over, the rest run; waits for the new run')
    .option('--json', 'print the finished run as JSON (the shape of GET /api/sequence-runs/{id})')
    .action(async (runId: string, opts: { json?: boolean }) => {
      const line = new StatusLine(term);
      const log = new ReportedRunsLog(line.terminal);
      // The resume is queued (or refused) before the worker starts, which then claims it.
      const { app, close, checked: run } = await open.toRun((opened) => opened.runs.resumeSequenceRun(runId, { type: 'manual', detail: 'cli' }), {
        term: log.terminal,
        lookingFor: `no sequence run ${runShown('sequence', runId)}`,
      });
      const reported: number[] = [];
      try {
        const carried = run.members.filter((m) => m.status === 'success' || m.status === 'warning').map((m) => m.key);
        if (!opts.json) {
          term.err(`resuming sequence run ${runId} as run ${run.id}${carried.length > 0 ? `; carried over: ${carried.join(', ')}` : '; no member carried over'}`);
        }
        await reportSequenceRun(app, run.id, line, opts.json === true, reported);
      } finally {
        log.release(reported);
        await close();
      }
    });
  sequenceCommand
    .command('cancel <runId>')
    .description('cancel a sequence run: running members stop, the rest are skipped')
    .action(async (runId: string) => {
      const { app, close } = await open.app({ lookingFor: `no sequence run ${runShown('sequence', runId)}` });
      try {
        const known = UUID.test(runId) && (await app.store.getSequenceRun(runId)) !== null;
        if (!known) throw await unknownRun(app, 'sequence', runId);
        const run = await app.runs.cancelSequenceRun(runId);
        const outcome =
          run.status !== 'cancelled'
            ? 'cancel requested: its members under way stop at once (the batches delivered stay delivered); the members not started are skipped'
            : run.startedAt === null
              ? 'cancelled: it left the queue without running'
              : 'cancelled';
        term.out(`sequence run ${run.id}: ${outcome}`);
      } finally {
        await close();
      }
    });
}

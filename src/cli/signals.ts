/** What Ctrl-C and SIGTERM do to a command under way. */
import type { App } from '../app.js';
import { toError, type LockstepError } from '../core/errors.js';
import type { Terminal } from './output.js';

/**
 * While a run the command started is under way, Ctrl-C (or SIGTERM) cancels it: it stops at once,
 * is recorded as cancelled, and the command reports it as for any end. A second signal
 * quits at once; a worker then takes the run over once its lease has run out. Returns what removes
 * the handlers.
 */
export function cancelOnSignal(term: Terminal, what: string, cancel: () => Promise<unknown>): () => void {
  let asked = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (asked) {
      term.err(`${signal}: quitting without waiting for ${what} to stop (a worker takes it over once its lease runs out)`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    asked = true;
    term.err(`${signal === 'SIGINT' ? 'Ctrl-C' : signal}: cancelling ${what}, which stops at once (again to quit at once)`);
    cancel().catch((error: unknown) => term.err(`could not cancel ${what}: ${toError(error).message}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * While a run the command did not start is under way (it was queued before, by a schedule, the API
 * or another command, and the command waits for it), Ctrl-C (or SIGTERM) quits at once without
 * cancelling it: the run is whoever queued it's. What this process was executing of it is taken
 * over by a worker once its lease has run out. Returns what removes the handlers.
 *
 * @param cancelWith the command that cancels the run, for the message
 */
export function quitOnSignal(term: Terminal, what: string, queuedBy: string, cancelWith: string): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    term.err(
      `${signal === 'SIGINT' ? 'Ctrl-C' : signal}: quitting without cancelling ${what}, which was queued before this command (${queuedBy}) and goes on; ` +
        `\`${cancelWith}\` cancels it`,
    );
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * Waits for Ctrl-C or SIGTERM (or, with `drain`, for nothing left to do), then closes the app. A
 * signal is answered at once with what stopping does — the runs this process holds stop at their
 * next batch and are left to another worker, which can take a while, or longer when the store does
 * not answer — and from then a second signal quits at once (its leases then end on their own).
 * A store migrated by a newer Lockstep meanwhile stops the process the same way, then throws the
 * refusal (the command fails with it).
 */
export async function runUntilStopped(app: App, close: () => Promise<void>, options: { drain: boolean; term: Terminal; name: string }): Promise<void> {
  const { drain, term, name } = options;
  let held: number[] = [];
  const quit = (signal: NodeJS.Signals) => {
    const left = held.length === 0 ? '' : ` (another worker takes ${held.length === 1 ? 'its run' : 'its runs'} over once the lease runs out)`;
    term.err(`lockstep ${name}: ${signal}: quitting without waiting${left}`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const disarm = () => {
    process.off('SIGINT', quit);
    process.off('SIGTERM', quit);
  };
  let refusal: LockstepError | null = null;
  await new Promise<void>((resolve) => {
    let stopped = false;
    const stop = (signal?: NodeJS.Signals | LockstepError) => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (signal) {
        held = app.worker.runningIds;
        const runs =
          held.length === 0
            ? ''
            : held.length === 1
              ? `; sync run ${held[0]} stops at its next batch and is left to another worker`
              : `; sync runs ${held.join(', ')} stop at their next batch and are left to other workers`;
        if (typeof signal === 'string') {
          term.err(`lockstep ${name}: ${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping${runs} (again to quit at once)`);
        } else {
          refusal = signal;
          term.err(`lockstep ${name}: the store was migrated by a newer Lockstep: stopping${runs} (Ctrl-C to quit at once)`);
        }
        process.on('SIGINT', quit);
        process.on('SIGTERM', quit);
      }
      resolve();
    };
    void app.newerSchema().then(stop);
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const timer = setInterval(() => {
      if (!drain) return;
      void Promise.all([app.store.listQueuedSyncRuns(), app.store.listSequenceRunsByStatus(['pending', 'running'])]).then(
        ([queued, sequences]) => {
          if (queued.length === 0 && sequences.length === 0 && app.worker.idle) stop();
        },
      );
    }, 100);
  });
  try {
    await close();
  } finally {
    disarm();
  }
  if (refusal) throw refusal;
}

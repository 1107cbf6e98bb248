/** What Ctrl-C and SIGTERM do to a command under way. */
import { toError } from '../core/errors.js';
import type { Terminal } from './output.js';

/**
 * While a run the command started is under way, Ctrl-C (or SIGTERM) cancels it: it stops at its
 * next batch, is recorded as cancelled, and the command reports it as for any end. A second signal
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
    term.err(`${signal === 'SIGINT' ? 'Ctrl-C' : signal}: cancelling ${what}, which stops at its next batch (again to quit at once)`);
    cancel().catch((error: unknown) => term.err(`could not cancel ${what}: ${toError(error).message}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

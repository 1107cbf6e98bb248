/**
 * The long-running processes: `lockstep serve` (API, web UI, scheduler and workers), `worker`
 * (runs queued work) and `scheduler` (fires schedules), each until stopped.
 */
import type { Command } from 'commander';
import { storeName } from '../../app.js';
import { checkSigningSecrets } from '../../core/alerts.js';
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { METRICS_PORT } from '../../core/hosts.js';
import { portSetting } from '../flags.js';
import { DEFAULT_HOST, addServerOptions, listen, printServing, serverSettings, type ServerFlags } from '../serving.js';
import { runUntilStopped } from '../signals.js';
import type { CommandDeps } from './command-deps.js';

export function registerProcessCommands(program: Command, deps: CommandDeps): void {
  const { term, open } = deps;

  for (const [name, description, withScheduler, withWorker] of [
    ['serve', 'run the scheduler and the workers until stopped (Ctrl-C)', true, true],
    ['worker', 'run queued work until stopped', false, true],
    ['scheduler', 'fire schedules until stopped (another process runs the work)', true, false],
  ] as const) {
    const cmd = program.command(name).description(description);
    if (withWorker) cmd.option('--drain', 'exit once nothing is queued or running');
    if (name === 'serve') addServerOptions(cmd);
    else addMetricsOptions(cmd);
    cmd.action(async (opts: { drain?: boolean } & ServerFlags & MetricsFlags) => {
      // Bad flags are refused before the worker or the scheduler starts: nothing is claimed or fired.
      const server = name === 'serve' ? serverSettings(opts) : null;
      const metrics = name === 'serve' ? null : metricsSettings(opts);
      const { app, close } = await open.app({ runWork: withWorker && server === null && metrics === null });
      try {
        // A process that sends alerts never signs them with an empty key: refused before anything runs.
        if (withWorker) checkSigningSecrets((await app.store.alerts.getDefinition()).channels, app.config.env);
        // A process listens before its worker and scheduler start: a port already taken is refused
        // before a run is claimed or a schedule fired.
        const serving = server ? await listen(app, server) : null;
        const metricsUrl = metrics ? (await app.startMetricsServer(metrics)).url : null;
        if ((serving || metricsUrl) && withWorker) await app.worker.start();
        if (withScheduler) await app.startScheduler();
        if (withWorker) app.alerts.start();
        const as = withWorker ? ` as worker ${app.worker.workerId}` : '';
        const stops = opts.drain ? 'exits once the queue is empty; Ctrl-C to stop sooner' : 'Ctrl-C to stop';
        term.err(`lockstep ${name}: running on ${storeName(app.config)}${as} (${stops})`);
        if (serving) await printServing(app, serving, term);
        if (metricsUrl) term.err(`lockstep ${name}: /metrics, /healthz and /readyz at ${metricsUrl}`);
      } catch (thrown) {
        await close();
        throw thrown;
      }
      await runUntilStopped(app, close, { drain: Boolean(opts.drain), term, name });
    });
  }
}

interface MetricsFlags {
  metricsPort?: string;
  metricsHost?: string;
}

/**
 * worker and scheduler serve their own /metrics, /healthz and /readyz when asked for a port: each
 * process is scraped for what it does, as serve is on its port, and Prometheus sums them.
 */
function addMetricsOptions(cmd: Command): void {
  cmd
    .option('--metrics-port <port>', "serve this process's /metrics, /healthz and /readyz on this port (default: LOCKSTEP_METRICS_PORT, else none)")
    .option('--metrics-host <host>', `address the metrics port listens on (default: ${DEFAULT_HOST})`);
}

/** The metrics listener's port and host, or null when none is asked for. */
function metricsSettings(flags: MetricsFlags): { port: number; host: string } | null {
  const port = portSetting(flags.metricsPort, METRICS_PORT);
  if (port === null) {
    if (flags.metricsHost !== undefined) {
      throw new LockstepError(ErrorCode.Validation, `--metrics-host ${flags.metricsHost} needs a port to listen on — add --metrics-port (or LOCKSTEP_METRICS_PORT), e.g. --metrics-port ${METRICS_PORT.example}`);
    }
    return null;
  }
  return { port, host: flags.metricsHost ?? DEFAULT_HOST };
}

/**
 * `lockstep demo`: builds a small warehouse and CRM (demo.ts, or demo-salesforce.ts with
 * --salesforce), runs a sequence, and with --serve keeps serving the workspace it built.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { checkPortFree } from '../../app.js';
import { DEFAULT_HOST, listen, printServing, serverSettings } from '../serving.js';
import { runUntilStopped } from '../signals.js';
import type { CommandDeps } from './command-deps.js';

export function registerDemoCommand(program: Command, deps: CommandDeps): void {
  const { term, open } = deps;

  program
    .command('demo')
    .description('build a small warehouse and CRM, and show a sequence running (no setup needed)')
    .option('--dir <dir>', 'where to build the demo (default: lockstep-demo, or lockstep-demo-salesforce)')
    .option('--salesforce', "the hierarchy accounts → contacts, opportunities into Salesforce (a local stand-in of its API)")
    .option('--serve', 'afterwards, keep serving the demo workspace (API and web UI, no token on 127.0.0.1) until Ctrl-C')
    .option('--port <port>', 'port for --serve (default: LOCKSTEP_PORT or 3000)')
    .action(async (opts: { dir?: string; salesforce?: boolean; serve?: boolean; port?: string }) => {
      const dir = opts.dir ?? (opts.salesforce ? 'lockstep-demo-salesforce' : 'lockstep-demo');
      // A bad --port, or one another program listens on, is refused before the demo is built, not after it ran.
      const server = opts.serve ? serverSettings({ port: opts.port, host: DEFAULT_HOST, auth: false }) : null;
      if (server) await checkPortFree(server.port, server.host);
      // The demo builds a DuckDB warehouse: its modules load only for this command.
      let standIn: { close(): Promise<void> } | null = null;
      if (opts.salesforce) {
        const { runSalesforceDemo } = await import('../demo-salesforce.js');
        standIn = await runSalesforceDemo({ dir, term });
      } else {
        const { runDemo } = await import('../demo.js');
        await runDemo({ dir, term });
      }
      try {
        if (!server) return;
        const { app, close } = await open.app({ workspace: resolve(dir) });
        try {
          // As serve: it listens before its worker and scheduler start, so a port already taken
          // is refused before anything is claimed or fired.
          const serving = await listen(app, server);
          await app.worker.start();
          await app.startScheduler();
          await printServing(app, serving, term);
          term.out('');
          term.out(`The demo keeps running: open ${serving.url} to see its runs in the web UI (Ctrl-C to stop).`);
        } catch (thrown) {
          await close();
          throw thrown;
        }
        await runUntilStopped(app, close, { drain: false, term, name: 'demo' });
      } finally {
        await standIn?.close();
      }
    });
}

/**
 * The HTTP server of `lockstep serve` and `demo --serve`: its flags checked, and the API, web UI
 * and /metrics it listens with.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { App } from '../app.js';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { SERVE_PORT, isLoopbackHost } from '../core/hosts.js';
import { portSetting } from './flags.js';
import type { Terminal } from './output.js';

export const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = 3000;
/**
 * The built web UI, next to the package's dist/ and src/: this file, as the bundle, is two folders
 * below the package.
 */
const UI_DIR = fileURLToPath(new URL('../../web/dist', import.meta.url));

export interface ServerFlags {
  port?: string;
  host?: string;
  /** False with --no-auth. */
  auth?: boolean;
}

export function addServerOptions(cmd: Command): void {
  cmd
    .option('--port <port>', `port for the API, UI and metrics (default: LOCKSTEP_PORT or ${DEFAULT_PORT})`)
    .option('--host <host>', 'address to listen on', DEFAULT_HOST)
    .option('--no-auth', 'serve the API without tokens (only on a loopback host)');
}

interface ServerSettings {
  port: number;
  host: string;
  authRequired: boolean;
}

/** The server's flags checked: a port number, and `--no-auth` only on a loopback host. */
export function serverSettings(flags: ServerFlags): ServerSettings {
  const port = portSetting(flags.port, SERVE_PORT) ?? DEFAULT_PORT;
  const host = flags.host ?? DEFAULT_HOST;
  const authRequired = flags.auth !== false;
  if (!authRequired && !isLoopbackHost(host)) {
    throw new LockstepError(
      ErrorCode.Validation,
      `--no-auth is allowed only on a loopback host (127.0.0.1, ::1, localhost), not ${host} — create a token with \`lockstep token create --name NAME\` instead`,
    );
  }
  return { port, host, authRequired };
}

interface Serving {
  url: string;
  ui: boolean;
  authRequired: boolean;
}

/** Starts the HTTP server on the app (its worker may not have started yet). */
export async function listen(app: App, { port, host, authRequired }: ServerSettings): Promise<Serving> {
  const uiDir = existsSync(join(UI_DIR, 'index.html')) ? UI_DIR : null;
  const { url } = await app.startServer({ port, host, authRequired, uiDir });
  return { url, ui: uiDir !== null, authRequired };
}

export async function printServing(app: App, { url, ui, authRequired }: Serving, term: Terminal): Promise<void> {
  term.err(`lockstep serve: API${ui ? ', web UI' : ''} and /metrics at ${url}${authRequired ? '' : ' (no token needed)'}`);
  if (authRequired && (await app.store.tokens.list()).length === 0) {
    term.err('  No API tokens yet: create one with `lockstep token create --name NAME`.');
  }
}

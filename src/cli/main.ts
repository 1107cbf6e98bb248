/**
 * The `lockstep` command line. Each command lives in commands/; this file sets up the program and
 * its global options, opens the app for the commands (AppOpener), and turns errors into exit codes.
 *
 * Exit codes: 0 success (a sequence run `done`, a sync run `success` or `warning`); 1 a run ended
 * `failed`, `cancelled` or `interrupted` (a sync run whose retry never appeared); 2 invalid input
 * (workspace errors, unknown slug, bad arguments) or a request the current state refuses (resuming a
 * run that did not fail, a token name taken); 3 anything else (store or connection trouble, a bug);
 * 130 or 143 a second Ctrl-C or SIGTERM that quit without waiting for the run (see cancelOnSignal
 * in signals.ts).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { createApp, createConnectorRegistry, noStoreYet, storeCreated, type App } from '../app.js';
import { resolveConfig, type LockstepConfig } from '../config.js';
import { ErrorCode, LockstepError, NotFoundError, ValidationError, toError } from '../core/errors.js';
import { createJsonLogger } from '../core/logger.js';
import type { WorkspaceDefinition } from '../core/workspace.js';
import { findWorkspaceFiles, mayDeclareStore } from '../workspace/workspace-files.js';
import { registerAlertsCommands } from './commands/alerts.js';
import type { AppOpener, CommandDeps, OpenedApp } from './commands/command-deps.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerProcessCommands } from './commands/processes.js';
import { registerRunsCommand } from './commands/runs.js';
import { registerSecretsCommand } from './commands/secrets.js';
import { registerSequenceCommands } from './commands/sequence.js';
import { registerStoreCommands } from './commands/store-migrate.js';
import { registerSyncCommands } from './commands/sync.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerWorkspaceCommands } from './commands/workspace.js';
import { asksForJson, jsonError } from './json-error.js';
import type { Terminal } from './output.js';

export const EXIT = { ok: 0, runFailed: 1, invalid: 2, error: 3 } as const;

interface GlobalOptions {
  workspace?: string;
  store?: string;
  logLevel?: string;
}

const processTerminal: Terminal = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  isTTY: Boolean(process.stdout.isTTY),
  errScreen: process.stderr.isTTY
    ? {
        write: (text) => process.stderr.write(text),
        get columns() {
          return process.stderr.columns || 80;
        },
      }
    : undefined,
};

/** The YAML loader and its schemas, loaded by the commands that read the workspace files. */
const workspaceModule = () => import('../workspace/index.js');

/** Resolves the configuration: the workspace folder, its `store` setting, env and flags. */
async function configFor(global: GlobalOptions): Promise<LockstepConfig> {
  const workspaceDir = workspaceDirFor(global);
  // Files that cannot set `store` need not be parsed to find it (commands that run work start sooner).
  const files = await findWorkspaceFiles(workspaceDir);
  if (files.length > 0 && !(await mayDeclareStore(workspaceDir, files))) {
    return resolveConfig({ workspaceDir, storeSetting: { type: 'sqlite', path: join(resolve(workspaceDir), 'lockstep.db') }, storeFlag: global.store, logLevel: global.logLevel });
  }
  const { loadWorkspace, formatValidationReport } = await workspaceModule();
  const loaded = await loadWorkspace(workspaceDir, process.env, createConnectorRegistry());
  // Without a workspace or a store named elsewhere, opening one would leave a stray lockstep.db here.
  if (loaded.files.length === 0 && !global.store && !process.env.LOCKSTEP_STORE) {
    throw new ValidationError(loaded.diagnostics, formatValidationReport(loaded.diagnostics));
  }
  // A `store` section that cannot be read (a misspelt type, a bad path) must not fall back to the
  // default store: the command would read and write another store than the one the files name.
  if (loaded.files.length > 0 && loaded.store === null && !global.store && !process.env.LOCKSTEP_STORE) {
    const aboutStore = loaded.diagnostics.filter((d) => d.path === 'store' || d.path.startsWith('store.'));
    const shown = aboutStore.length > 0 ? aboutStore : loaded.diagnostics;
    throw new ValidationError(shown, formatValidationReport(shown));
  }
  return resolveConfig({ workspaceDir, storeSetting: loaded.store, storeFlag: global.store, logLevel: global.logLevel });
}

/**
 * The workspace folder: `--workspace`, else LOCKSTEP_WORKSPACE, else the current folder. A file given
 * there (lockstep.yaml itself) is refused with the folder to give instead.
 */
function workspaceDirFor(global: GlobalOptions): string {
  const dir = global.workspace ?? process.env.LOCKSTEP_WORKSPACE ?? process.cwd();
  if (statSync(dir, { throwIfNoEntry: false })?.isFile()) {
    const from = global.workspace !== undefined ? '--workspace' : 'LOCKSTEP_WORKSPACE';
    throw new LockstepError(
      ErrorCode.Validation,
      `${from} ${dir} is a file, not a folder — give the folder that holds the workspace, e.g. ${from === '--workspace' ? '--workspace ' : 'LOCKSTEP_WORKSPACE='}${dirname(resolve(dir))}`,
    );
  }
  return dir;
}

/**
 * The app, with a worker running here when the command runs work. Any number of processes may
 * work on one store: each claims runs with a lease, and a run whose process died is taken over.
 * `lookingFor` names what the command acts on (`no token named "ci"`): a store not created yet holds
 * nothing, so the command is refused as not found, and the store is left uncreated.
 */
async function openApp(global: GlobalOptions, term: Terminal, runWork: boolean, lookingFor?: string): Promise<OpenedApp> {
  const config = await configFor(global);
  if (lookingFor !== undefined && !(await storeCreated(config))) throw new NotFoundError(`${lookingFor}. ${noStoreYet(config)}`);
  return started(await createCliApp(config, term), runWork);
}

/**
 * The app for a command that only reads the store (`runs`, `plan`, listings): an embedded store
 * that cannot be written (a read-only file, folder or disk) is opened read-only rather than refused,
 * and one not created yet is read as empty (see toRead).
 */
async function openAppToRead(global: GlobalOptions, term: Terminal): Promise<OpenedApp> {
  const config = await toRead(await configFor(global), term);
  return started(await createCliApp(config, term, { readOnly: true }), false);
}

/**
 * The app every command opens, its log lines JSON on the terminal's stderr. `readOnly`: an embedded
 * store that cannot be written is opened read-only rather than refused.
 */
function createCliApp(config: LockstepConfig, term: Terminal, options: { readOnly?: boolean } = {}): Promise<App> {
  return createApp(config, {
    logger: createJsonLogger({ level: config.logLevel, write: (line) => term.err(line) }),
    readOnlyFallback: options.readOnly,
  });
}

/**
 * The configuration a command that only reads opens. A store not created yet is read as an empty one
 * in memory, and stderr says so: looking at a workspace where nothing ran leaves its folder as it
 * was, with no empty lockstep.db; the commands that write (apply, sync run, serve...) create the store.
 */
async function toRead(config: LockstepConfig, term: Terminal): Promise<LockstepConfig> {
  if (await storeCreated(config)) return config;
  term.err(noStoreYet(config));
  return { ...config, store: { type: 'sqlite', path: ':memory:' } };
}

async function started(app: App, runWork: boolean, start: { awaitPrepare?: boolean } = {}): Promise<OpenedApp> {
  if (runWork) {
    try {
      await app.worker.start(start);
    } catch (thrown) {
      await app.close().catch(() => undefined);
      throw thrown;
    }
  }
  return { app, close: () => app.close() };
}

/** Parses a workspace and opens the store; exits with the validation report if the files are invalid. */
async function openValidated(global: GlobalOptions, term: Terminal, options: { readOnly?: boolean } = {}): Promise<OpenedApp & { definition: WorkspaceDefinition }> {
  const dir = workspaceDirFor(global);
  const { loadWorkspace, formatValidationReport } = await workspaceModule();
  const loaded = await loadWorkspace(dir, process.env, createConnectorRegistry());
  if (!loaded.definition) throw new ValidationError(loaded.diagnostics, formatValidationReport(loaded.diagnostics));
  const resolved = resolveConfig({ workspaceDir: dir, storeSetting: loaded.store, storeFlag: global.store, logLevel: global.logLevel });
  const config = options.readOnly ? await toRead(resolved, term) : resolved;
  const app = await createCliApp(config, term, options);
  return { ...(await started(app, false)), definition: loaded.definition };
}

/**
 * Opens the app for a command that waits for its run, once `check` accepted what the command asks
 * (a known slug, options that agree): the worker starts only then, so a command refused for a typo
 * takes over no run another process left, only to drop it as it exits. Then the run is triggered at
 * once and its claim, connection and first reads overlap the drivers' loading and the store's
 * readying of its writes.
 */
async function openAppToRun<T>(
  global: GlobalOptions,
  term: Terminal,
  check: (app: App) => Promise<T>,
  lookingFor?: string,
): Promise<OpenedApp & { checked: T }> {
  const { app, close } = await openApp(global, term, false, lookingFor);
  let checked: T;
  try {
    checked = await check(app);
  } catch (thrown) {
    await close().catch(() => undefined);
    throw thrown;
  }
  // Its worker takes up only the work of the run the command names (Worker.takeWorkUntilEnd).
  app.worker.runForCommand();
  return { ...(await started(app, true, { awaitPrepare: false })), checked };
}

export function buildProgram(term: Terminal = processTerminal, setExit: (code: number) => void = () => {}): Command {
  const program = new Command('lockstep')
    .description('Reverse ETL with sync sequences: move warehouse rows into operational systems, in a dependable order.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('-w, --workspace <dir>', 'workspace folder holding lockstep.yaml (default: the current folder)')
    .option('--store <path-or-url>', 'store: a SQLite file path, relative to the current folder (default: lockstep.db in the workspace) or a postgres:// URL shared by many processes')
    .addOption(new Option('--log-level <level>', 'JSON log level on stderr').choices(['debug', 'info', 'warn', 'error']))
    .addHelpText(
      'after',
      `
Exit codes:
  ${EXIT.ok}  success (a sequence run ended done, a sync run success or warning)
  ${EXIT.runFailed}  a run ended failed, cancelled or interrupted
  ${EXIT.invalid}  invalid input: workspace errors, an unknown slug, bad arguments, a request the state refuses
  ${EXIT.error}  anything else: store or connection trouble, another process on the store, a bug
  130, 143  a second Ctrl-C or SIGTERM quit without waiting for the run it started to stop, or a Ctrl-C or SIGTERM left a run queued before the command to go on`,
    )
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => term.out(s), writeErr: (s) => term.err(s) })
    .exitOverride();
  const global = () => program.opts<GlobalOptions>();
  // The one way the commands open the app: each opener reads the global options as the command runs.
  const open: AppOpener = {
    app: ({ runWork = false, lookingFor, workspace } = {}) => openApp(workspace === undefined ? global() : { ...global(), workspace }, term, runWork, lookingFor),
    toRead: () => openAppToRead(global(), term),
    toRun: (check, { term: logTo, lookingFor }) => openAppToRun(global(), logTo, check, lookingFor),
    validated: (options) => openValidated(global(), term, options),
  };
  const deps: CommandDeps = { term, open, setExit, exit: EXIT };

  // In the order `lockstep --help` lists them.
  registerWorkspaceCommands(program, { ...deps, workspaceDir: () => workspaceDirFor(global()) });
  registerSyncCommands(program, deps);
  registerSequenceCommands(program, deps);
  registerRunsCommand(program, deps);
  registerAlertsCommands(program, deps);
  registerProcessCommands(program, deps);
  registerTokenCommands(program, deps);
  registerSecretsCommand(program, { term, config: () => configFor(global()) });
  registerStoreCommands(program, { term, config: () => configFor(global()) });
  registerDemoCommand(program, deps);
  return program;
}

/** The version in package.json (two folders above this file, in src/ and in dist/ alike). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Runs the CLI; returns the exit code. Errors are printed with what to do, never as stack traces. */
export async function main(argv: string[], term: Terminal = processTerminal): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram(term, (code) => (exitCode = code));
  // With --json, a failure is also a JSON object on stdout (json-error.ts), so a script always has JSON to read.
  let json = asksForJson(argv.slice(2));
  program.hook('preAction', (_program, command) => {
    json = command.opts<{ json?: boolean }>().json === true;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      if (thrown.exitCode !== 0 && json) term.out(JSON.stringify(jsonError(thrown, { badArgument: true }), null, 2));
      return thrown.exitCode === 0 ? EXIT.ok : EXIT.invalid;
    }
    const error = toError(thrown);
    term.err(error instanceof ValidationError ? error.message : `error: ${error.message}`);
    if (json) term.out(JSON.stringify(jsonError(error), null, 2));
    if (error instanceof LockstepError) {
      return error.code === ErrorCode.Validation || error.code === ErrorCode.NotFound || error.code === ErrorCode.Conflict ? EXIT.invalid : EXIT.error;
    }
    if (process.env.LOCKSTEP_DEBUG) term.err(error.stack ?? '');
    return EXIT.error;
  }
}

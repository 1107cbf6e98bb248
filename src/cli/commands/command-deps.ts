/**
 * What main.ts hands the commands: the terminal, the one way to open the app (it alone reads the
 * global options --workspace, --store and --log-level), and the exit code to set.
 */
import type { App } from '../../app.js';
import type { WorkspaceDefinition } from '../../core/workspace.js';
import type { Terminal } from '../output.js';

/** An opened app and what closes it (with the worker started here, if any). */
export interface OpenedApp {
  app: App;
  close: () => Promise<void>;
}

/** How a command opens the app; it closes it with the `close` it is given back. */
export interface AppOpener {
  /**
   * The app, with a worker running here when `runWork` (default: false). `lookingFor` names what
   * the command acts on (`no token named "ci"`): a store not created yet holds nothing, so the
   * command is refused as not found and the store is left uncreated. `workspace`: a folder to open
   * instead of the one the global options name.
   */
  app(options?: { runWork?: boolean; lookingFor?: string; workspace?: string }): Promise<OpenedApp>;
  /** The app for a command that only reads the store; a store not created yet is read as empty. */
  toRead(): Promise<OpenedApp>;
  /**
   * The app for a command that waits for its run: the worker starts once `check` accepted what the
   * command asks. `term` is the terminal its log lines go to.
   */
  toRun<T>(check: (app: App) => Promise<T>, options: { term: Terminal; lookingFor: string }): Promise<OpenedApp & { checked: T }>;
  /** The workspace files loaded (refused with their validation report when invalid), then the store they name. */
  validated(options?: { readOnly?: boolean }): Promise<OpenedApp & { definition: WorkspaceDefinition }>;
}

/** The exit codes a command sets (see main.ts). */
export interface ExitCodes {
  ok: number;
  runFailed: number;
  invalid: number;
}

export interface CommandDeps {
  term: Terminal;
  open: AppOpener;
  setExit: (code: number) => void;
  exit: ExitCodes;
}

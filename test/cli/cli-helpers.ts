/**
 * Running the `lockstep` command line in tests: as a child process (`node bin/lockstep.js`, the built
 * dist/, so `npm run build` must have run) or in-process through `main()` with a capturing terminal.
 * Every child is tracked so a test can kill what it left running, even when an assertion failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from '../../src/app.js';
import { main } from '../../src/cli/main.js';
import type { Terminal } from '../../src/cli/output.js';
import { resolveConfig } from '../../src/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { createHierarchyFixture, tempDir } from '../helpers/harness.js';

export const BIN = fileURLToPath(new URL('../../bin/lockstep.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

/** Environment for children: no inherited Lockstep settings, a short poll so waiting processes notice work quickly. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('LOCKSTEP_')) env[key] = value;
  // Port 0: a serving child takes a free port, so tests never collide on the default one.
  return { ...env, LOCKSTEP_POLL_MS: '100', LOCKSTEP_PORT: '0', NO_COLOR: '1', ...extra };
}

/** A running `lockstep` child process. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<CliResult>;

  /**
   * `nodeArgs`: options for Node itself, before the script (e.g. `--max-old-space-size=512`).
   * `wrapper`: a command Node runs under, with its arguments (e.g. `['unshare', '--pid', '--fork']`).
   */
  constructor(args: string[], options: { cwd: string; env?: Record<string, string>; nodeArgs?: string[]; wrapper?: string[] }) {
    const command = [...(options.wrapper ?? []), process.execPath, ...(options.nodeArgs ?? []), BIN, ...args];
    this.child = spawn(command[0]!, command.slice(1), { cwd: options.cwd, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code, signal) => {
        children.delete(this.child);
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once stderr matches, rejects if the process exits first or the time runs out. */
  async waitForStderr(pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (!this.running) throw new Error(`process exited (${this.child.exitCode}) before stderr matched ${pattern}:\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`stderr did not match ${pattern} within ${timeoutMs} ms:\n${this.stderr}`);
      await sleep(25);
    }
  }

  /** Sends SIGTERM and waits for the exit. */
  async stop(): Promise<CliResult> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Runs `lockstep <args>` to completion; kills it after `timeoutMs` so a hanging command fails the test. */
export async function runCli(args: string[], options: { cwd: string; env?: Record<string, string>; nodeArgs?: string[]; timeoutMs?: number }): Promise<CliResult> {
  const proc = new CliProcess(args, options);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Kills every child still running (call in `afterEach`). */
export async function killChildren(): Promise<void> {
  const left = [...children];
  await Promise.all(
    left.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  children.clear();
}

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `main()` in this process with a terminal that captures what it prints. With `screenColumns`,
 * stderr is a terminal that wide: live progress redraws its line there, and `stderr` holds the raw
 * text written (carriage returns and erase-line sequences included; `renderScreen` shows the result).
 */
export async function runMain(args: string[], options: { screenColumns?: number } = {}): Promise<InProcessResult> {
  let stdout = '';
  let stderr = '';
  const term: Terminal = {
    out: (text) => (stdout += text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => (stderr += text.endsWith('\n') ? text : `${text}\n`),
    isTTY: false,
    errScreen: options.screenColumns === undefined ? undefined : { write: (text) => (stderr += text), columns: options.screenColumns },
  };
  const code = await main(['node', 'lockstep', ...args], term);
  return { code, stdout, stderr };
}

/** The lines a terminal shows after `raw` was written to it (\r returns to the line's start, ESC[K erases to its end). */
export function renderScreen(raw: string): string[] {
  const lines: string[] = [''];
  let column = 0;
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    const row = lines.length - 1;
    if (raw.startsWith('\u001b[K', i)) {
      lines[row] = lines[row]!.slice(0, column);
      i += 2;
    } else if (ch === '\r') column = 0;
    else if (ch === '\n') {
      lines.push('');
      column = 0;
    } else {
      const line = lines[row]!.padEnd(column);
      lines[row] = line.slice(0, column) + ch + line.slice(column + 1);
      column++;
    }
  }
  return lines;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The hierarchical workspace: accounts → workspaces → contacts, a linear sequence `crm`. */
export function hierarchyWorkspaceYaml(options: { accountsMode?: string; withContacts?: boolean } = {}): string {
  const withContacts = options.withContacts ?? true;
  return [
    'sources:',
    '  warehouse: { type: sqlite, path: warehouse.db }',
    'destinations:',
    '  crm: { type: sqlite, path: crm.db }',
    'models:',
    '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
    '  workspaces: { source: warehouse, primaryKey: id, query: "select id, account_id, name from workspaces" }',
    '  contacts: { source: warehouse, primaryKey: id, query: "select id, workspace_id, email from contacts" }',
    'syncs:',
    `  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: ${options.accountsMode ?? 'upsert'} }`,
    '  workspaces-to-crm: { model: workspaces, destination: crm, object: workspaces, mode: upsert }',
    ...(withContacts
      ? [
          '  contacts-to-crm:',
          '    model: contacts',
          '    destination: crm',
          '    object: contacts',
          '    mode: upsert',
          '    mappings: [ { from: email, to: email_address } ]',
        ]
      : []),
    'sequences:',
    '  crm:',
    '    members:',
    '      - { sync: accounts-to-crm, terminate: on_fatal_or_rejected }',
    '      - { sync: workspaces-to-crm, terminate: on_fatal }',
    ...(withContacts ? ['      - { sync: contacts-to-crm, terminate: never }'] : []),
    '',
  ].join('\n');
}

/** A temp folder with the hierarchy fixture's warehouse.db and crm.db and a lockstep.yaml pointing at them. */
export function hierarchyWorkspace(): string {
  const dir = tempDir('lockstep-cli-');
  createHierarchyFixture(dir);
  writeFileSync(join(dir, 'lockstep.yaml'), hierarchyWorkspaceYaml());
  return dir;
}

/** Queues a sequence run and a sync run on the workspace's store without running them (no worker starts here). */
export async function enqueueWork(dir: string, sequence: string, sync: string): Promise<{ sequenceRunId: string; syncRunId: number }> {
  const app = await createApp(resolveConfig({ workspaceDir: dir, env: {} }), { logger: silentLogger });
  try {
    const { run: sequenceRun } = await app.runs.triggerSequence(sequence);
    const { run: syncRun } = await app.runs.triggerSync(sync);
    return { sequenceRunId: sequenceRun.id, syncRunId: syncRun.id };
  } finally {
    await app.close();
  }
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

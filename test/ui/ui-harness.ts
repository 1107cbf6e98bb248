/**
 * Browser tests against a real `lockstep serve`: a temp workspace (the hierarchy fixture's SQLite
 * warehouse and CRM, three syncs, no sequences), the built command line serving the API and the
 * built UI on a free port, and a headless Chromium. Needs `npm run build` first (the test script
 * builds); screenshots go to test-artifacts/screenshots/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { chromiumLaunchOptions, ensureChromium } from '../setup/chromium.js';
import { CliProcess, killChildren, runCli, sleep } from '../cli/cli-helpers.js';
import { createHierarchyFixture, tempDir } from '../helpers/harness.js';
import { freePort } from '../setup/processes.js';

export const SCREENSHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

export const SYNCS = ['accounts-to-crm', 'workspaces-to-crm', 'contacts-to-crm'] as const;

const WORKSPACE_YAML = `sources:
  warehouse: { type: sqlite, path: warehouse.db }
destinations:
  crm: { type: sqlite, path: crm.db }
models:
  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }
  workspaces: { source: warehouse, primaryKey: id, query: "select id, account_id, name from workspaces" }
  contacts: { source: warehouse, primaryKey: id, query: "select id, workspace_id, email from contacts" }
syncs:
  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }
  workspaces-to-crm: { model: workspaces, destination: crm, object: workspaces, mode: upsert }
  contacts-to-crm:
    model: contacts
    destination: crm
    object: contacts
    mode: upsert
    mappings: [ { from: email, to: email_address } ]
`;

/** A workspace folder with the fixture databases and the three syncs applied to its store. */
export async function uiWorkspace(sizes = { accounts: 3, workspaces: 6, contacts: 30 }): Promise<string> {
  const dir = tempDir('lockstep-ui-');
  createHierarchyFixture(dir, sizes);
  writeFileSync(join(dir, 'lockstep.yaml'), WORKSPACE_YAML);
  const applied = await runCli(['--workspace', dir, 'apply'], { cwd: dir });
  if (applied.code !== 0) throw new Error(`lockstep apply failed (${applied.code}):\n${applied.stderr}`);
  return dir;
}

export interface UiServer extends AsyncDisposable {
  baseUrl: string;
  process: CliProcess;
  /** Calls the API without a token (for servers started with `--no-auth`). */
  api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

/** Creates an API token with `lockstep token create` and returns it. */
export async function createToken(dir: string, name: string): Promise<string> {
  const created = await runCli(['--workspace', dir, 'token', 'create', '--name', name], { cwd: dir });
  if (created.code !== 0) throw new Error(`lockstep token create failed (${created.code}):\n${created.stderr}`);
  return created.stdout.trim();
}

/**
 * `lockstep serve --port <free>` on `dir` (with `--no-auth` unless `auth`), once `/api/session`
 * answers; `port` serves on that port instead (a server started again where the last one was).
 */
export async function startServer(dir: string, options: { auth?: boolean; port?: number; env?: Record<string, string> } = {}): Promise<UiServer> {
  const port = options.port ?? (await freePort());
  const args = ['--workspace', dir, 'serve', '--port', String(port), ...(options.auth ? [] : ['--no-auth'])];
  const proc = new CliProcess(args, { cwd: dir, env: options.env });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!proc.running) throw new Error(`lockstep serve exited (${proc.child.exitCode}) before answering:\n${proc.stderr}`);
    try {
      const response = await fetch(`${baseUrl}/api/session`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`lockstep serve did not answer on ${baseUrl} within 20 s:\n${proc.stderr}`);
    await sleep(100);
  }
  return {
    baseUrl,
    process: proc,
    async api<T>(method: string, path: string, body?: unknown) {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    async [Symbol.asyncDispose]() {
      await proc.stop();
    },
  };
}

export interface Browser extends AsyncDisposable {
  context: BrowserContext;
  page: Page;
  /** Page errors and console errors seen so far (a test can assert there were none). */
  errors: string[];
}

/** A headless Chromium with a fresh profile and one page, 1280×800. */
export async function openBrowser(): Promise<Browser> {
  const { userDataDir, ...options } = chromiumLaunchOptions();
  const context = await chromium.launchPersistentContext(userDataDir, { ...options, viewport: { width: 1280, height: 800 } });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console error: ${message.text()}`);
  });
  return {
    context,
    page,
    errors,
    async [Symbol.asyncDispose]() {
      await context.close();
    },
  };
}

/** A test file's served workspace and browser. */
export interface UiSession {
  dir: string;
  server: UiServer;
  browser: Browser;
  page: Page;
}

/**
 * Before a test file's tests: the workspace `workspace` builds (the standard one by default) is
 * served and a browser opened, then `ready` runs with them (to keep them, or to add entities
 * through the API). After the tests, both close, with any command they left running.
 */
export function servedForTests(options: {
  workspace?: () => Promise<string>;
  auth?: boolean;
  /** Environment of the server beside the test's own (e.g. LOCKSTEP_CONCURRENCY). */
  env?: Record<string, string>;
  ready?: (ui: UiSession) => Promise<void> | void;
}): void {
  let ui: Partial<UiSession> = {};
  beforeAll(async () => {
    ensureChromium();
    const dir = await (options.workspace ?? (() => uiWorkspace()))();
    const server = await startServer(dir, { auth: options.auth, env: options.env });
    ui = { dir, server };
    const browser = await openBrowser();
    ui = { dir, server, browser, page: browser.page };
    await options.ready?.(ui as UiSession);
  }, 15 * 60_000);
  afterAll(async () => {
    await ui.browser?.[Symbol.asyncDispose]();
    await ui.server?.[Symbol.asyncDispose]();
    await killChildren();
  });
}

/** Saves a full-page screenshot as test-artifacts/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Let CSS transitions and the last live update settle, so the picture shows the final state.
  await page.waitForTimeout(250);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true, animations: 'disabled' });
}

/** Polls `check` until it returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

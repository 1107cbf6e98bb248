/**
 * An app on a real SQLite store in a temp folder, with the hierarchy fixture applied, the worker
 * running and the HTTP server listening on 127.0.0.1 (a free port), plus a token to call it with.
 */
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { App } from '../../src/app.js';
import { generateToken, hashToken } from '../../src/core/tokens.js';
import type { Clock, Logger } from '../../src/core/ports.js';
import type { WorkspaceDefinition } from '../../src/core/workspace.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';

/** The hierarchy: a SQLite warehouse, a CRM with foreign keys, three syncs and a linear sequence. */
export function hierarchyWorkspace(dir: string): WorkspaceDefinition {
  return workspace({
    sources: [source('warehouse', { path: join(dir, 'warehouse.db') })],
    destinations: [
      source('crm', { path: join(dir, 'crm.db') }),
      { slug: 'pg', type: 'postgres', settings: { url: 'postgres://lockstep:s3cr3t-pass@db.example.com:5432/crm' } },
    ],
    models: [
      model('accounts', 'warehouse', 'select id, name from accounts'),
      model('workspaces', 'warehouse', 'select id, account_id, name from workspaces'),
      model('contacts', 'warehouse', 'select id, workspace_id, email from contacts'),
    ],
    syncs: [
      sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts' }),
      sync('workspaces-to-crm', { model: 'workspaces', destination: 'crm', object: 'workspaces', batchSize: 2 }),
      sync('contacts-to-crm', { model: 'contacts', destination: 'crm', object: 'contacts', mappings: [{ from: 'email', to: 'email_address' }] }),
    ],
    sequences: [
      sequence('crm-hierarchy', [
        member('accounts-to-crm', { terminate: 'on_fatal_or_rejected', rejectedThreshold: { count: 0 } }),
        member('workspaces-to-crm'),
        member('contacts-to-crm', { terminate: 'never' }),
      ]),
    ],
  });
}

export const PG_PASSWORD = 's3cr3t-pass';

export interface ApiHarness extends AsyncDisposable {
  app: App;
  dir: string;
  url: string;
  token: string;
  /** Log lines written while the harness ran. */
  logs: string[];
  /** fetch against the server with the token (unless `auth: false`), JSON in and out. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read field by field in assertions
  call(method: string, path: string, body?: unknown, options?: { auth?: boolean | string; raw?: string }): Promise<{ status: number; body: any; text: string }>;
}

export async function startApi(
  options: { authRequired?: boolean; sizes?: { accounts: number; workspaces: number; contacts: number }; env?: Record<string, string>; clock?: Clock } = {},
): Promise<ApiHarness> {
  const dir = tempDir('lockstep-api-');
  createHierarchyFixture(dir, options.sizes);
  const logs: string[] = [];
  const logger: Logger = {
    debug: (m, f) => logs.push(JSON.stringify({ level: 'debug', m, ...f })),
    info: (m, f) => logs.push(JSON.stringify({ level: 'info', m, ...f })),
    warn: (m, f) => logs.push(JSON.stringify({ level: 'warn', m, ...f })),
    error: (m, f) => logs.push(JSON.stringify({ level: 'error', m, ...f })),
  };
  const harness = await startHarness({ dir, definition: hierarchyWorkspace(dir), logger, env: options.env, clock: options.clock });
  const { app } = harness;
  const token = generateToken();
  await app.store.tokens.create('test', hashToken(token), app.clock.now());
  const { url } = await app.startServer({ port: 0, host: '127.0.0.1', authRequired: options.authRequired ?? true, uiDir: null });
  return {
    app,
    dir,
    url,
    token,
    logs,
    async call(method, path, body, opts = {}) {
      const headers: Record<string, string> = {};
      if (opts.auth !== false) headers.authorization = `Bearer ${typeof opts.auth === 'string' ? opts.auth : token}`;
      const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body));
      if (payload !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(url + path, { method, headers, body: payload });
      const text = await response.text();
      let parsed: unknown = undefined;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: response.status, body: parsed, text };
    },
    async [Symbol.asyncDispose]() {
      await harness[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A sync run whose process stopped, as a user watching it sees it before a worker takes it over
 * (SPEC §3.3): interrupted, which is no fatal error, and cancellable, as the API and `lockstep
 * sync cancel` allow. The server runs one run at a time, held by an API that never answers, so
 * no worker takes the interrupted run over during the test. A run at work in another process, whose
 * cancel waits for that process, reads Cancelling… however the page is opened.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { sqlite } from '../helpers/harness.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let dir: string;
let server: UiServer;
let browser: Browser;
let page: Page;

const hung = new Set<ServerResponse>();
const api = createServer((_req, res) => void hung.add(res));

servedForTests({
  env: { LOCKSTEP_CONCURRENCY: '1' },
  ready: async (ui) => {
    ({ dir, server, browser, page } = ui);
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}/v1`;
    const created = [
      await server.api('POST', '/api/destinations', { slug: 'hung-api', type: 'http', url, timeoutMs: 600_000 }),
      await server.api('POST', '/api/syncs', { slug: 'accounts-to-hung-api', model: 'accounts', destination: 'hung-api', object: '/accounts', mode: 'upsert', batchSize: 1 }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201]);
    // The server's one slot is taken by a run that waits on the API for ever.
    expect((await server.api('POST', '/api/syncs/accounts-to-hung-api/runs')).status).toBe(202);
    await eventually('the API to hold a request', async () => (hung.size > 0 ? true : undefined));
  },
});

afterAll(async () => {
  for (const res of hung) res.destroy();
  await new Promise((resolve) => api.close(resolve));
});

interface SyncRunJson {
  id: number;
  status: string;
  error: string | null;
}

/** A run of workspaces-to-crm that a worker on another machine had started when it stopped: its lease ended a moment ago. */
async function interruptedRun(): Promise<SyncRunJson> {
  const queued = await server.api<SyncRunJson>('POST', '/api/syncs/workspaces-to-crm/runs');
  expect(queued.body.status).toBe('queued');
  const now = Date.now();
  sqlite(
    join(dir, 'lockstep.db'),
    `UPDATE sync_runs SET status = 'processing', started_at = ${now - 5000}, attempt = 1, worker_id = 'elsewhere/4242/0a1b2c', lease_expires_at = ${now - 1000} WHERE id = ${queued.body.id}`,
  );
  const { body } = await server.api<SyncRunJson>('GET', `/api/sync-runs/${queued.body.id}`);
  expect(body.status).toBe('interrupted');
  return body;
}

describe('a sync run whose process stopped, in the web UI', () => {
  it('says it was interrupted and what comes next, not that it met a fatal error, and Cancel run ends it after asking', async () => {
    const run = await interruptedRun();
    await page.goto(`${server.baseUrl}/syncs/workspaces-to-crm`);
    const row = page.getByRole('table', { name: 'Sync runs' }).locator(`tr[data-run="${run.id}"]`);
    await row.locator('[data-status="interrupted"]').waitFor();
    expect(await row.getByRole('button', { name: `Cancel run #${run.id}` }).count()).toBe(1);

    await page.goto(`${server.baseUrl}/runs/sync/${run.id}`);
    const note = page.getByRole('note');
    await note.waitFor();
    expect(await note.textContent()).toBe(`Interrupted: ${run.error}`);
    await screenshot(page, 'run-interrupted');

    const asked: string[] = [];
    page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      void dialog.accept();
    });
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('dl.facts [data-status="cancelled"]').waitFor();
    expect(asked).toEqual([`Cancel run #${run.id} of workspaces-to-crm? The process running it stopped: it ends now, and the batches delivered stay delivered.`]);
    expect(await note.textContent()).toMatch(/^Cancelled: cancelled by a user after the process running it stopped/);
  });

  it('a run at work in another process whose cancel waits for it reads Cancelling… after a reload, with no second Cancel', async () => {
    const queued = await server.api<SyncRunJson>('POST', '/api/syncs/workspaces-to-crm/runs');
    const now = Date.now();
    sqlite(
      join(dir, 'lockstep.db'),
      `UPDATE sync_runs SET status = 'processing', started_at = ${now}, attempt = 1, worker_id = 'elsewhere/4242/0a1b2c', lease_expires_at = ${now + 600_000} WHERE id = ${queued.body.id}`,
    );
    const cancelled = await server.api<SyncRunJson & { cancelRequested: boolean }>('POST', `/api/sync-runs/${queued.body.id}/cancel`);
    expect(cancelled.body).toMatchObject({ status: 'processing', cancelRequested: true });

    await page.goto(`${server.baseUrl}/runs/sync/${queued.body.id}`);
    const button = page.getByRole('button', { name: 'Cancelling…' });
    await button.waitFor();
    expect(await button.isDisabled()).toBe(true);
    expect(await page.getByRole('status').filter({ hasText: 'Cancelling: the run stops at once.' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);

    await page.goto(`${server.baseUrl}/syncs/workspaces-to-crm`);
    const row = page.getByRole('table', { name: 'Sync runs' }).locator(`tr[data-run="${queued.body.id}"]`);
    const rowButton = row.getByRole('button', { name: `Cancel run #${queued.body.id}` });
    await rowButton.waitFor();
    expect(await rowButton.textContent()).toBe('Cancelling…');
    expect(await rowButton.getAttribute('aria-disabled')).toBe('true');
  });

  it('the pages showed no script errors', () => {
    expect(browser.errors).toEqual([]);
  });
});

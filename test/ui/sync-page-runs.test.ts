/**
 * A sync's runs as its list and page show them while they run and wait: against an HTTP API that
 * holds every request until the test lets it answer, so a run stays under way and the next one
 * waits in the queue behind it for as long as a test needs.
 */
import { createServer, type ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { Page, Response } from 'playwright-core';
import { freePort } from '../setup/processes.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let server: UiServer;
let browser: Browser;
let page: Page;

/** Requests of the held API waiting for an answer; `holding` false answers them and every later one at once. */
const held: ServerResponse[] = [];
let holding = true;
const heldApi = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (holding) held.push(res);
    else answer(res);
  });
});
const answer = (res: ServerResponse) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
const release = () => {
  holding = false;
  for (const res of held.splice(0)) answer(res);
};

interface SyncRunJson {
  id: number;
  status: string;
  createdAt: string;
  startedAt: string | null;
}

servedForTests({
  ready: async (ui) => {
    ({ server, browser, page } = ui);
    const port = await freePort();
    await new Promise<void>((resolve) => heldApi.listen(port, '127.0.0.1', resolve));
    const created = [
      await server.api('POST', '/api/destinations', { slug: 'slow-api', type: 'http', url: `http://127.0.0.1:${port}/v1` }),
      await server.api('POST', '/api/syncs', { slug: 'accounts-to-slow-api', model: 'accounts', destination: 'slow-api', object: '/accounts', mode: 'upsert', batchSize: 1 }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201]);
  },
});

/** Starts a run of the held sync and one queued behind it, and waits until the first is under way. */
async function runningAndQueued(): Promise<{ running: SyncRunJson; queued: SyncRunJson }> {
  // The runs an earlier test left end first, unheld.
  release();
  await eventually('the runs of an earlier test to end', async () => {
    const { body } = await server.api<{ data: SyncRunJson[] }>('GET', '/api/syncs/accounts-to-slow-api/runs?status=queued,querying,processing,reporting&limit=1');
    return body.data.length === 0 ? true : undefined;
  }, 30_000);
  holding = true;
  // A full resync sends every row again, so each test's run has requests to hold.
  const running = await server.api<SyncRunJson>('POST', '/api/syncs/accounts-to-slow-api/runs', { fullResync: true });
  await eventually('the run to send its first request', async () => (held.length > 0 ? true : undefined));
  const queued = await server.api<SyncRunJson>('POST', '/api/syncs/accounts-to-slow-api/runs');
  expect(queued.body.status).toBe('queued');
  return { running: running.body, queued: queued.body };
}

async function ended(id: number): Promise<SyncRunJson> {
  return eventually(`sync run ${id} to end`, async () => {
    const { body } = await server.api<SyncRunJson>('GET', `/api/sync-runs/${id}`);
    return ['success', 'warning', 'failed', 'cancelled'].includes(body.status) ? body : undefined;
  }, 30_000);
}

/** The API answers of 400 and above the page receives while `action` runs, and a moment after. */
async function failedRequestsDuring(action: () => Promise<void>): Promise<string[]> {
  const failed: string[] = [];
  const onResponse = (response: Response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith('/api/') && response.status() >= 400) failed.push(`${response.status()} ${url.pathname}${url.search}`);
  };
  page.on('response', onResponse);
  try {
    await action();
    await page.waitForTimeout(1000);
  } finally {
    page.off('response', onResponse);
  }
  return failed;
}

describe('a sync’s runs under way and in the queue', () => {
  it('a run waiting in the queue says so and since when, shows no counts it does not have, and asks for nothing that must fail', async () => {
    const { running, queued } = await runningAndQueued();
    try {
      const failed = await failedRequestsDuring(async () => {
        await page.goto(`${server.baseUrl}/runs/sync/${queued.id}`);
        await page.locator('dl.facts [data-status="queued"]').waitFor();
        await page.getByText('Waiting in the queue').waitFor();
      });
      expect(failed).toEqual([]);
      const details = page.getByRole('region', { name: 'Run details' });
      const waiting = (await details.getByRole('status').filter({ hasText: 'Waiting in the queue' }).textContent()) ?? '';
      const since = await page.evaluate((iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' }).format(Date.parse(iso)), queued.createdAt);
      expect(waiting).toContain(since);
      // What it waits for: the run of the same sync under way, with a link to it.
      expect(waiting).toContain(`run #${running.id}`);
      expect(await details.getByRole('link', { name: `run #${running.id}` }).getAttribute('href')).toBe(`/runs/sync/${running.id}`);
      expect(await details.getByRole('table', { name: 'Row counts' }).count()).toBe(0);
      expect(await details.locator('dl.facts div', { has: page.locator('dt', { hasText: 'Rows queried' }) }).locator('dd').textContent()).toBe('—');
      expect(await details.getByText('No rejected rows').count()).toBe(0);
      await screenshot(page, 'sync-run-in-queue');
      // Its row in the run history has no counts either.
      await page.goto(`${server.baseUrl}/syncs/accounts-to-slow-api`);
      const row = page.locator(`tr[data-run="${queued.id}"]`);
      await row.waitFor();
      expect(new Set(await row.locator('td[data-count]').allTextContents())).toEqual(new Set(['—']));
    } finally {
      release();
    }
    // Once it starts, its counts show.
    await ended(running.id);
    await ended(queued.id);
    await page.goto(`${server.baseUrl}/runs/sync/${queued.id}`);
    await page.getByRole('table', { name: 'Row counts' }).waitFor();
    expect(await page.getByText('Waiting in the queue').count()).toBe(0);
  });

  it('on a sync’s page, a run under way and one in the queue each have a Cancel button, which asks first', async () => {
    const { running, queued } = await runningAndQueued();
    try {
      await page.goto(`${server.baseUrl}/syncs/accounts-to-slow-api`);
      const runs = page.getByRole('table', { name: 'Sync runs' });
      const cancelRunning = runs.getByRole('button', { name: `Cancel run #${running.id}` });
      const cancelQueued = runs.getByRole('button', { name: `Cancel run #${queued.id}` });
      await cancelRunning.waitFor();
      await cancelQueued.waitFor();

      const cancels: string[] = [];
      const onRequest = (request: { method(): string; url(): string }) => {
        if (request.method() === 'POST' && request.url().endsWith('/cancel')) cancels.push(new URL(request.url()).pathname);
      };
      page.on('request', onRequest);
      const asked: string[] = [];
      // Dismissed: nothing is cancelled, and the row's run does not open.
      page.once('dialog', (dialog) => {
        asked.push(dialog.message());
        void dialog.dismiss();
      });
      await cancelQueued.click();
      await page.waitForTimeout(300);
      expect(cancels).toEqual([]);
      expect(new URL(page.url()).pathname).toBe('/syncs/accounts-to-slow-api');
      expect(asked).toHaveLength(1);
      expect(asked[0]).toContain(`#${queued.id}`);

      page.once('dialog', (dialog) => void dialog.accept());
      await cancelQueued.click();
      await runs.locator(`tr[data-run="${queued.id}"] [data-status="cancelled"]`).waitFor();
      expect(cancels).toEqual([`/api/sync-runs/${queued.id}/cancel`]);
      expect(new URL(page.url()).pathname).toBe('/syncs/accounts-to-slow-api');
      expect(await cancelQueued.count()).toBe(0);

      page.once('dialog', (dialog) => void dialog.accept());
      await cancelRunning.click();
      expect(await page.getByRole('dialog').count()).toBe(0);
      await screenshot(page, 'sync-run-cancel-from-history');
      release();
      await runs.locator(`tr[data-run="${running.id}"] [data-status="cancelled"]`).waitFor({ timeout: 20_000 });
      page.off('request', onRequest);
      expect(cancels).toEqual([`/api/sync-runs/${queued.id}/cancel`, `/api/sync-runs/${running.id}/cancel`]);
      expect(await runs.getByRole('button', { name: /^Cancel run/ }).count()).toBe(0);
    } finally {
      release();
    }
    await ended(running.id);
  });

  it('on the Syncs list, a last run’s time and its tooltip tell the same time, and say which', async () => {
    const { running, queued } = await runningAndQueued();
    // The queued run waits a few seconds, so when it was queued and when it started differ.
    await page.waitForTimeout(2500);
    release();
    await ended(running.id);
    const last = await ended(queued.id);
    expect(last.startedAt).not.toBeNull();
    await page.goto(`${server.baseUrl}/syncs`);
    const time = page.getByRole('row', { name: /accounts-to-slow-api/ }).locator('.last-run time');
    await time.waitFor();
    expect(await time.getAttribute('datetime')).toBe(last.startedAt);
    const started = await page.evaluate((iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' }).format(Date.parse(iso)), last.startedAt!);
    expect(await time.getAttribute('title')).toBe(`Started ${started}`);
  });

  it('an HTTP destination is named with its path, as other kinds are with their object', async () => {
    await page.goto(`${server.baseUrl}/syncs`);
    const row = page.getByRole('row', { name: /accounts-to-slow-api/ });
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    expect(cells[1]).toBe('accounts → slow-api /accounts');
    expect(await page.getByRole('row', { name: /accounts-to-crm/ }).locator('td').nth(1).textContent()).toBe('accounts → crm.accounts');
    await page.goto(`${server.baseUrl}/syncs/accounts-to-slow-api`);
    expect(await page.locator('.page-header .subtitle').textContent()).toMatch(/^accounts → slow-api \/accounts · upsert/);
    await page.goto(`${server.baseUrl}/sequences/new`);
    const option = page.locator('label', { hasText: 'accounts-to-slow-api' }).first();
    await option.waitFor();
    expect(await option.textContent()).toContain('accounts → slow-api /accounts');
    expect(await option.textContent()).not.toContain('slow-api./accounts');
  });

  it('a run opened over another sync’s page moves to the page of the sync it belongs to', async () => {
    const started = await server.api<SyncRunJson>('POST', '/api/syncs/accounts-to-crm/runs');
    await ended(started.body.id);
    await page.goto(`${server.baseUrl}/syncs/contacts-to-crm/runs/${started.body.id}`);
    await page.waitForURL(`**/syncs/accounts-to-crm/runs/${started.body.id}`);
    await page.getByRole('dialog', { name: `Sync run #${started.body.id}` }).waitFor();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('accounts-to-crm');
  });

  it('a sequence run opened over another sequence’s page moves to the page of the sequence it belongs to', async () => {
    const created = [
      await server.api('POST', '/api/sequences', { slug: 'accounts-first', name: 'Accounts first', members: [{ sync: 'accounts-to-crm' }] }),
      await server.api('POST', '/api/sequences', { slug: 'contacts-first', name: 'Contacts first', members: [{ sync: 'contacts-to-crm' }] }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201]);
    const started = await server.api<{ id: string }>('POST', '/api/sequences/accounts-first/runs');
    await eventually('the sequence run to end', async () => {
      const { body } = await server.api<{ status: string }>('GET', `/api/sequence-runs/${started.body.id}`);
      return body.status === 'done' ? true : undefined;
    });
    await page.goto(`${server.baseUrl}/sequences/contacts-first/runs/${started.body.id}`);
    await page.waitForURL(`**/sequences/accounts-first/runs/${started.body.id}`);
    await page.getByRole('dialog', { name: 'Run of Accounts first' }).waitFor();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Accounts first');
  });

  it('a sequence run in the queue says what it waits for; on its sequence’s page, it and the run under way each have a Cancel button, which asks first', async () => {
    release();
    const created = [
      await server.api('POST', '/api/syncs', { slug: 'accounts-to-slow-api-again', model: 'accounts', destination: 'slow-api', object: '/accounts-again', mode: 'upsert', batchSize: 1 }),
      await server.api('POST', '/api/sequences', { slug: 'slow', name: 'Slow', members: [{ sync: 'accounts-to-slow-api-again' }, { sync: 'contacts-to-crm' }] }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201]);
    holding = true;
    const running = await server.api<{ id: string }>('POST', '/api/sequences/slow/runs');
    await eventually('the run to send its first request', async () => (held.length > 0 ? true : undefined));
    const queued = await server.api<{ id: string; status: string; createdAt: string }>('POST', '/api/sequences/slow/runs');
    expect(queued.body.status).toBe('pending');
    try {
      // The run in the queue says so, since when, and which run it waits for.
      await page.goto(`${server.baseUrl}/runs/sequence/${queued.body.id}`);
      const waiting = page.getByRole('status').filter({ hasText: 'Waiting in the queue' });
      await waiting.waitFor();
      const since = await page.evaluate((iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' }).format(Date.parse(iso)), queued.body.createdAt);
      expect(await waiting.textContent()).toContain(since);
      expect(await waiting.getByRole('link', { name: `run ${running.body.id.slice(0, 8)}` }).getAttribute('href')).toBe(`/runs/sequence/${running.body.id}`);

      await page.goto(`${server.baseUrl}/sequences/slow`);
      const runs = page.getByRole('table', { name: 'Sequence runs' });
      const cancelQueued = runs.getByRole('button', { name: `Cancel run ${queued.body.id}` });
      const cancelRunning = runs.getByRole('button', { name: `Cancel run ${running.body.id}` });
      await cancelQueued.waitFor();
      await cancelRunning.waitFor();
      const cancels: string[] = [];
      const onRequest = (request: { method(): string; url(): string }) => {
        if (request.method() === 'POST' && request.url().endsWith('/cancel')) cancels.push(new URL(request.url()).pathname);
      };
      page.on('request', onRequest);
      page.once('dialog', (dialog) => void dialog.dismiss());
      await cancelQueued.click();
      await page.waitForTimeout(300);
      expect(cancels).toEqual([]);
      expect(new URL(page.url()).pathname).toBe('/sequences/slow');

      page.once('dialog', (dialog) => void dialog.accept());
      await cancelQueued.click();
      await runs.locator(`tr[data-run="${queued.body.id}"] [data-status="cancelled"]`).waitFor();
      page.once('dialog', (dialog) => void dialog.accept());
      await cancelRunning.click();
      release();
      await runs.locator(`tr[data-run="${running.body.id}"] [data-status="cancelled"]`).waitFor({ timeout: 20_000 });
      page.off('request', onRequest);
      expect(cancels).toEqual([`/api/sequence-runs/${queued.body.id}/cancel`, `/api/sequence-runs/${running.body.id}/cancel`]);
      expect(new URL(page.url()).pathname).toBe('/sequences/slow');
      expect(await runs.getByRole('button', { name: /^Cancel run/ }).count()).toBe(0);
    } finally {
      release();
    }
  });

  it('the pages showed no script errors', async () => {
    release();
    heldApi.closeAllConnections();
    await new Promise<void>((resolve) => heldApi.close(() => resolve()));
    expect(browser.errors.filter((e) => !/status of 4\d\d/.test(e))).toEqual([]);
  });
});

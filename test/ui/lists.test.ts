/**
 * The Syncs and Sequences lists of a workspace with many of them: every row's last run is read in one
 * request, kept live, and a run of one sync or sequence reads the run history of that one alone, not
 * of every row.
 */
import { describe, expect, it } from 'vitest';
import type { Page, Request } from 'playwright-core';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

const MORE_SYNCS = 40;
const MORE_SEQUENCES = 10;

let server: UiServer;
let browser: Browser;
let page: Page;

servedForTests({
  ready: async (ui) => {
    ({ server, browser, page } = ui);
    const statuses: number[] = [];
    for (let i = 1; i <= MORE_SYNCS; i++) {
      const slug = `accounts-copy-${String(i).padStart(2, '0')}`;
      statuses.push((await server.api('POST', '/api/syncs', { slug, model: 'accounts', destination: 'crm', object: 'accounts', mode: 'upsert' })).status);
    }
    for (let i = 1; i <= MORE_SEQUENCES; i++) {
      const slug = `accounts-only-${String(i).padStart(2, '0')}`;
      statuses.push((await server.api('POST', '/api/sequences', { slug, name: `Accounts only ${i}`, members: [{ sync: 'accounts-to-crm' }] })).status);
    }
    expect(statuses.every((s) => s === 201)).toBe(true);
  },
});

/** The slugs whose run history the page asks for (`/api/syncs/<slug>/runs`, `/api/sequences/<slug>/runs`) from now on. */
function runHistoriesRead(kind: 'syncs' | 'sequences'): { slugs: Set<string>; stop: () => void } {
  const slugs = new Set<string>();
  const pattern = new RegExp(`/api/${kind}/([^/?]+)/runs(\\?|$)`);
  const onRequest = (request: Request) => {
    const match = pattern.exec(new URL(request.url()).pathname + new URL(request.url()).search);
    if (match) slugs.add(decodeURIComponent(match[1]!));
  };
  page.on('request', onRequest);
  return { slugs, stop: () => page.off('request', onRequest) };
}

async function waitForRun(path: string): Promise<void> {
  const started = await server.api<{ id: string | number }>('POST', path);
  expect(started.status).toBe(202);
  const runPath = path.startsWith('/api/syncs/') ? `/api/sync-runs/${started.body.id}` : `/api/sequence-runs/${started.body.id}`;
  await eventually('the run to end', async () => {
    const { body } = await server.api<{ status: string }>('GET', runPath);
    return ['success', 'warning', 'done'].includes(body.status) ? true : undefined;
  });
}

/** The API requests (path and query) the page sends while `action` runs, and until updates settle. */
async function apiRequestsDuring(action: () => Promise<void>): Promise<string[]> {
  const sent: string[] = [];
  const onRequest = (request: Request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/api/')) sent.push(url.pathname + url.search);
  };
  page.on('request', onRequest);
  try {
    await action();
    await page.waitForTimeout(1000);
  } finally {
    page.off('request', onRequest);
  }
  return sent;
}

describe('lists of many syncs and sequences', () => {
  it('the Syncs and Sequences lists load every row’s last run in one request, not one request per row', async () => {
    await waitForRun('/api/sequences/accounts-only-03/runs');

    const syncsPage = await apiRequestsDuring(async () => {
      await page.goto(`${server.baseUrl}/syncs`);
      await eventually('every row to show its last run', async () => ((await page.getByText('Never run').count()) === MORE_SYNCS + 2 ? true : undefined));
    });
    expect(syncsPage.filter((path) => !path.startsWith('/api/events')).sort()).toEqual(['/api/session', '/api/sync-runs/latest', '/api/workspace']);
    // accounts-to-crm ran as the sequence's member: its row shows that run.
    await page.getByRole('row', { name: /^accounts-to-crm / }).locator('[data-status="success"]').waitFor();

    const sequencesPage = await apiRequestsDuring(async () => {
      await page.goto(`${server.baseUrl}/sequences`);
      await eventually('every row to show its last run', async () => ((await page.getByText('Never run').count()) === MORE_SEQUENCES - 1 ? true : undefined));
    });
    expect(sequencesPage.filter((path) => !path.startsWith('/api/events')).sort()).toEqual(['/api/sequence-runs/latest', '/api/session', '/api/workspace']);
    await page.getByRole('row', { name: /^Accounts only 3 / }).locator('[data-status="done"]').waitFor();
  });

  it('on the Syncs list, a run of one sync shows in its row and reads that sync’s runs alone', async () => {
    await page.goto(`${server.baseUrl}/syncs`);
    const rows = page.getByRole('table').locator('tbody tr');
    await eventually('every row to show its last run', async () => ((await page.getByText('Never run').count()) === MORE_SYNCS + 2 ? true : undefined));
    expect(await rows.count()).toBe(MORE_SYNCS + 3);

    const read = runHistoriesRead('syncs');
    await waitForRun('/api/syncs/accounts-to-crm/runs');
    const row = page.getByRole('row', { name: /^accounts-to-crm / });
    await row.locator('[data-status="success"]').waitFor();
    // Updates come at most every 250 ms: give the page time to ask for whatever it was going to.
    await page.waitForTimeout(1500);
    read.stop();
    expect([...read.slugs]).toEqual(['accounts-to-crm']);
    await screenshot(page, 'syncs-list-many');
  });

  it('on the Sequences list, a run of one sequence shows in its row and reads that sequence’s runs alone', async () => {
    await page.goto(`${server.baseUrl}/sequences`);
    await eventually('every row to show its last run', async () => ((await page.getByText('Never run').count()) === MORE_SEQUENCES - 1 ? true : undefined));

    const read = runHistoriesRead('sequences');
    await waitForRun('/api/sequences/accounts-only-07/runs');
    await page.getByRole('row', { name: /^Accounts only 7 / }).locator('[data-status="done"]').waitFor();
    await page.waitForTimeout(1500);
    read.stop();
    expect([...read.slugs]).toEqual(['accounts-only-07']);
  });

  it('on a 1024-pixel-wide window, the Syncs list and a sync’s run history keep every column in their card: they scroll inside it, the page does not', async () => {
    await waitForRun('/api/syncs/accounts-to-crm/runs');
    await page.setViewportSize({ width: 1024, height: 800 });
    try {
      /** How far `cell` reaches past the right edge of the card around it once scrolled into view, in pixels; 0 when it shows. */
      const pastCard = async (cell: ReturnType<Page['locator']>) => {
        await cell.scrollIntoViewIfNeeded();
        return cell.evaluate((element) => Math.max(0, Math.round(element.getBoundingClientRect().right - element.closest('.card, .page')!.getBoundingClientRect().right)));
      };
      const sideways = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

      await page.goto(`${server.baseUrl}/syncs/accounts-to-crm`);
      const row = page.getByRole('table', { name: 'Sync runs' }).locator('tbody tr').first();
      await row.waitFor();
      expect(await pastCard(row.locator('[data-count="removed-rejected"]'))).toBe(0);
      await screenshot(page, 'sync-page-1024');
      expect(await sideways()).toBe(0);

      await page.goto(`${server.baseUrl}/syncs`);
      const last = page.getByRole('row', { name: /^accounts-to-crm / }).locator('td').last();
      await last.locator('[data-status]').waitFor();
      expect(await pastCard(last)).toBe(0);
      expect(await sideways()).toBe(0);
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('a sync’s run history of more than a page is filtered by status, as a sequence’s is: its one warning run is found without paging', async () => {
    // Contacts before their accounts and workspaces exist: every row is rejected (warning); then 24 runs that succeed.
    await waitForRun('/api/syncs/contacts-to-crm/runs');
    await waitForRun('/api/syncs/accounts-to-crm/runs');
    await waitForRun('/api/syncs/workspaces-to-crm/runs');
    for (let i = 0; i < 24; i++) await waitForRun('/api/syncs/contacts-to-crm/runs');
    await page.goto(`${server.baseUrl}/syncs/contacts-to-crm`);
    const runs = page.getByRole('table', { name: 'Sync runs' }).locator('tbody tr');
    await eventually('a full first page', async () => ((await runs.count()) === 20 ? true : undefined));
    expect(await runs.locator('[data-status="warning"]').count()).toBe(0);

    await page.getByRole('combobox', { name: 'Status' }).selectOption('warning');
    await eventually('the warning run alone', async () => ((await runs.count()) === 1 ? true : undefined));
    expect(await runs.locator('[data-status]').getAttribute('data-status')).toBe('warning');
    expect(await page.getByRole('navigation', { name: 'Run history pages' }).count()).toBe(0);
    await screenshot(page, 'sync-runs-filtered');

    await page.getByRole('combobox', { name: 'Status' }).selectOption('');
    await eventually('the first page again', async () => ((await runs.count()) === 20 ? true : undefined));
  });

  it('a list or run history left open keeps its times true: an hour later, the last run says it was an hour ago', async () => {
    await page.clock.install();
    await page.goto(`${server.baseUrl}/syncs`);
    const lastRun = page.getByRole('row', { name: /^accounts-to-crm / }).locator('time');
    await eventually('the last run to be recent', async () => (/just now|seconds? ago|minutes? ago/.test((await lastRun.textContent()) ?? '') ? true : undefined));
    await page.clock.fastForward('01:01:00');
    await eventually('the last run to be an hour old', async () => ((await lastRun.textContent()) === '1 hour ago' ? true : undefined), 5_000);

    await page.goto(`${server.baseUrl}/syncs/accounts-to-crm`);
    const started = page.getByRole('table', { name: 'Sync runs' }).getByRole('link', { name: /^Open sync run / }).first();
    await eventually('the run to be an hour old', async () => ((await started.textContent()) === '1 hour ago' ? true : undefined), 5_000);
    await page.clock.fastForward('01:00:00');
    await eventually('the run to be two hours old', async () => ((await started.textContent()) === '2 hours ago' ? true : undefined), 5_000);
  });

  it('the pages showed no script errors', () => {
    expect(browser.errors).toEqual([]);
  });
});

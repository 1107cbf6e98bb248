/**
 * A run's details as a user reads them and moves through them with the keyboard: the run dialogs
 * over a sync's and a sequence's page, on a workspace with a sequence that ran to the end.
 */
import { createServer, type ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { Dialog, Page } from 'playwright-core';
import { freePort } from '../setup/processes.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let server: UiServer;
let browser: Browser;
let page: Page;

interface RunJson {
  id: string;
  status: string;
}

servedForTests({
  ready: async (ui) => {
    ({ server, browser, page } = ui);
    const created = await server.api('POST', '/api/sequences', {
      slug: 'hierarchy',
      name: 'Hierarchy',
      members: [{ sync: 'accounts-to-crm' }, { sync: 'workspaces-to-crm' }, { sync: 'contacts-to-crm' }],
    });
    expect(created.status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const started = await server.api<RunJson>('POST', '/api/sequences/hierarchy/runs');
      await eventually('the sequence run to end', async () => {
        const { body } = await server.api<RunJson>('GET', `/api/sequence-runs/${started.body.id}`);
        return body.status === 'done' ? true : undefined;
      });
    }
  },
});

/** What has the keyboard focus, as `tag "name"`. */
const focused = () =>
  page.evaluate(() => {
    const element = document.activeElement;
    if (!element || element === document.body) return 'nothing (the page itself)';
    return `${element.tagName.toLowerCase()} "${(element.getAttribute('aria-label') ?? element.textContent ?? '').trim()}"`;
  });

describe('run details', () => {
  it('closing a run dialog with the keyboard gives the focus back to the run it was opened from', async () => {
    await page.goto(`${server.baseUrl}/sequences/hierarchy`);
    const links = page.getByRole('table', { name: 'Sequence runs' }).getByRole('link', { name: /^Open run / });
    await eventually('two runs in the history', async () => ((await links.count()) === 2 ? true : undefined));
    const second = links.nth(1);
    const name = await second.getAttribute('aria-label');
    await second.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Run of Hierarchy' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await focused()).toBe(`a "${name}"`);
    // Tab goes on from there, not from the top of the page.
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('button "Delete sequence"');

    await page.goto(`${server.baseUrl}/syncs/contacts-to-crm`);
    const syncLinks = page.getByRole('table', { name: 'Sync runs' }).getByRole('link', { name: /^Open sync run / });
    await eventually('two sync runs in the history', async () => ((await syncLinks.count()) === 2 ? true : undefined));
    const syncRunName = await syncLinks.first().getAttribute('aria-label');
    await syncLinks.first().focus();
    await page.keyboard.press('Enter');
    const syncDialog = page.getByRole('dialog', { name: /^Sync run #\d+$/ });
    await syncDialog.waitFor();
    await syncDialog.getByRole('button', { name: 'Close' }).press('Enter');
    await syncDialog.waitFor({ state: 'detached' });
    expect(await focused()).toBe(`a "${syncRunName}"`);
  });

  it('times say their zone: a browser in Tokyo shows when a run started with GMT+9, not as a bare clock time', async () => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTimezoneOverride', { timezoneId: 'Asia/Tokyo' });
    try {
      const { body: runs } = await server.api<{ data: Array<{ id: string; startedAt: string }> }>('GET', '/api/sequences/hierarchy/runs?limit=1');
      const run = runs.data[0]!;
      await page.goto(`${server.baseUrl}/runs/sequence/${run.id}`);
      const facts = page.getByRole('region', { name: 'Run details' }).locator('dl.facts');
      await facts.waitFor();
      const started = (await facts.locator('div', { has: page.locator('dt', { hasText: 'Started' }) }).locator('dd').textContent()) ?? '';
      expect(started).toMatch(/ GMT\+9$/);
      const members = page.getByRole('table', { name: 'Member runs' });
      const memberStarts = await members.locator('tbody tr td:nth-of-type(3)').allTextContents();
      expect(memberStarts).toHaveLength(3);
      for (const text of memberStarts) expect(text).toMatch(/ GMT\+9$/);
      await screenshot(page, 'run-times-with-zone');

      await page.goto(`${server.baseUrl}/sequences/hierarchy`);
      const link = page.getByRole('link', { name: `Open run ${run.id}` });
      expect(await link.getAttribute('title')).toMatch(/ GMT\+9$/);
    } finally {
      await cdp.send('Emulation.setTimezoneOverride', { timezoneId: '' });
      await cdp.detach();
    }
  });

  it('a member with a long sync slug leaves room for every column of the run: its state, times, rows and its sync run', async () => {
    const slug = 'accounts-to-the-customer-relationship-management-system-of-the-emea-region-in-production';
    const created = [
      await server.api('POST', '/api/syncs', { slug, model: 'accounts', destination: 'crm', object: 'accounts', mode: 'upsert' }),
      await server.api('POST', '/api/sequences', { slug: 'long-names', name: 'Long names', members: [{ key: 'accounts', sync: slug }, { sync: 'workspaces-to-crm' }] }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201]);
    const started = await server.api<RunJson>('POST', '/api/sequences/long-names/runs');
    await eventually('the run to end', async () => {
      const { body } = await server.api<RunJson>('GET', `/api/sequence-runs/${started.body.id}`);
      return body.status === 'done' ? true : undefined;
    });

    /** How far each member's last cell (its sync run link) reaches past the right edge of `box`, in pixels; 0 when it fits. */
    const overflow = (box: string) =>
      page.evaluate((selector) => {
        const container = document.querySelector(selector)!.getBoundingClientRect();
        const rows = Array.from(document.querySelectorAll(`${selector} table[aria-label="Member runs"] tbody tr`));
        return rows.map((row) => Math.max(0, Math.round(row.lastElementChild!.getBoundingClientRect().right - container.right)));
      }, box);

    await page.goto(`${server.baseUrl}/sequences/long-names/runs/${started.body.id}`);
    const dialog = page.getByRole('dialog', { name: 'Run of Long names' });
    await dialog.getByRole('link', { name: /^Sync run #/ }).first().waitFor();
    await screenshot(page, 'run-dialog-long-slug');
    expect(await overflow('dialog')).toEqual([0, 0]);
    expect(await dialog.getByText(slug).isVisible()).toBe(true);

    await page.goto(`${server.baseUrl}/runs/sequence/${started.body.id}`);
    await page.getByRole('link', { name: /^Sync run #/ }).first().waitFor();
    expect(await overflow('section[aria-label="Run details"]')).toEqual([0, 0]);
  });

  it('a sequence run shows the terminate policies, timeouts, concurrency and deadline it was queued with, not those edited since', async () => {
    const members = (terminate: string, threshold: object | undefined, timeoutMinutes: number | undefined) => [
      { sync: 'accounts-to-crm', terminate, ...(threshold ? { rejectedThreshold: threshold } : {}), ...(timeoutMinutes ? { timeoutMinutes } : {}), after: [] },
      { sync: 'workspaces-to-crm', terminate: 'never', after: ['accounts-to-crm'] },
    ];
    const queuedWith = { slug: 'policies', name: 'Policies', concurrency: 2, deadlineMinutes: 30, members: members('on_fatal_or_rejected', { percent: 5 }, 10) };
    expect((await server.api('POST', '/api/sequences', queuedWith)).status).toBe(201);
    const started = await server.api<RunJson>('POST', '/api/sequences/policies/runs');
    await eventually('the run to end', async () => {
      const { body } = await server.api<RunJson>('GET', `/api/sequence-runs/${started.body.id}`);
      return body.status === 'done' ? true : undefined;
    });
    // The sequence's page shows them too, as they are now.
    await page.goto(`${server.baseUrl}/sequences/policies`);
    const memberTable = page.getByRole('region', { name: 'Members (2)' }).getByRole('table');
    await memberTable.waitFor();
    expect(await memberTable.getByRole('row', { name: /^accounts-to-crm / }).locator('td').last().innerText()).toBe('On fatal error or more than 5% rejected\nTimeout 10 min');
    expect(await page.getByText(/^Deadline: /).textContent()).toBe(
      'Deadline: a run not ended 30 min after it started fails; its members under way stop and the rest are skipped.',
    );
    // Edited since: the run still shows what it ran with.
    const edited = { slug: 'policies', name: 'Policies', concurrency: 1, members: members('on_fatal', undefined, undefined) };
    expect((await server.api('PUT', '/api/sequences/policies', edited)).status).toBe(200);

    for (const path of [`/runs/sequence/${started.body.id}`, `/sequences/policies/runs/${started.body.id}`]) {
      await page.goto(`${server.baseUrl}${path}`);
      const runs = page.getByRole('table', { name: 'Member runs' });
      await runs.getByRole('link', { name: /^Sync run #/ }).first().waitFor();
      const terminate = (member: string) => runs.locator(`tr[data-member="${member}"] td.terminate`).innerText();
      expect(await terminate('accounts-to-crm')).toBe('On fatal error or more than 5% rejected\nTimeout 10 min');
      expect(await terminate('workspaces-to-crm')).toBe('Never');
      const fact = async (term: string) => (await page.locator('dl.facts div', { has: page.locator('dt', { hasText: term }) }).locator('dd').innerText()).trim();
      expect(await fact('Concurrency')).toBe('Up to 2 members at once');
      expect(await fact('Deadline')).toBe('30 min after it started');
      // The column it takes leaves the table inside its card or dialog, beside the navigation of a laptop's window.
      const past = await runs.evaluate((table) => {
        const box = table.parentElement!;
        return Math.round(table.getBoundingClientRect().right - (box.getBoundingClientRect().right - parseFloat(getComputedStyle(box).paddingRight)));
      });
      expect(past, path).toBeLessThanOrEqual(0);
    }
    await screenshot(page, 'run-queued-with-policies');
    await page.goto(`${server.baseUrl}/sequences/policies`);
    await page.getByRole('region', { name: 'Members (2)' }).getByRole('table').waitFor();
    expect(await page.getByText(/^Deadline: /).count()).toBe(0);
    expect(await page.getByText(/Timeout/).count()).toBe(0);
  });

  it('a rejected row whose reason is an API’s compact JSON, without a space in it, stays inside the run’s page and dialog', async () => {
    // An API that refuses every record with its error as compact JSON, as most send it.
    const refusal = JSON.stringify({
      errors: [{ field: 'email_address_of_the_primary_contact', code: 'INVALID_EMAIL_ADDRESS_FORMAT_EXPECTED_LOCAL_PART_AT_DOMAIN', path: '/records/0/properties/email_address_of_the_primary_contact' }],
    });
    const api = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(422, { 'Content-Type': 'application/json' });
        res.end(refusal);
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => api.listen(port, '127.0.0.1', resolve));
    try {
      const created = [
        await server.api('POST', '/api/destinations', { slug: 'strict-api', type: 'http', url: `http://127.0.0.1:${port}/v1` }),
        await server.api('POST', '/api/syncs', { slug: 'accounts-to-strict-api', model: 'accounts', destination: 'strict-api', object: '/accounts', mode: 'upsert', batchSize: 1 }),
      ];
      expect(created.map((c) => c.status)).toEqual([201, 201]);
      const started = await server.api<{ id: number }>('POST', '/api/syncs/accounts-to-strict-api/runs');
      await eventually('the run to end with rejected rows', async () => {
        const { body } = await server.api<RunJson>('GET', `/api/sync-runs/${started.body.id}`);
        return body.status === 'warning' ? true : undefined;
      });

      /** How far `selector`'s content reaches past its width, in pixels (0 when nothing needs a sideways scroll). */
      const sideways = (selector: string) =>
        page.evaluate((target) => {
          const element = target === 'document' ? document.documentElement : document.querySelector(target)!;
          return element.scrollWidth - element.clientWidth;
        }, selector);

      await page.goto(`${server.baseUrl}/runs/sync/${started.body.id}`);
      const rejected = page.getByRole('table', { name: 'Rejected rows' });
      await rejected.waitFor();
      expect(await rejected.locator('td.reason').first().textContent()).toContain('INVALID_EMAIL_ADDRESS_FORMAT_EXPECTED_LOCAL_PART_AT_DOMAIN');
      await rejected.scrollIntoViewIfNeeded();
      await screenshot(page, 'run-page-compact-json-reason');
      expect(await sideways('document')).toBe(0);

      await page.goto(`${server.baseUrl}/syncs/accounts-to-strict-api/runs/${started.body.id}`);
      await page.getByRole('dialog').getByRole('table', { name: 'Rejected rows' }).waitFor();
      expect(await sideways('dialog')).toBe(0);
    } finally {
      await new Promise<void>((resolve) => api.close(() => resolve()));
    }
  });

  it('a run cancelled with its Cancel run button (clicked twice in haste) is cancelled once and says it was cancelled, not that it met a fatal error', async () => {
    // An API that takes two seconds per request, so the run is still delivering when it is cancelled.
    const api = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        setTimeout(() => {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end('{"ok":true}');
        }, 2000);
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => api.listen(port, '127.0.0.1', resolve));
    try {
      const created = [
        await server.api('POST', '/api/destinations', { slug: 'slow-api', type: 'http', url: `http://127.0.0.1:${port}/v1` }),
        await server.api('POST', '/api/syncs', { slug: 'accounts-to-slow-api', model: 'accounts', destination: 'slow-api', object: '/accounts', mode: 'upsert', batchSize: 1 }),
      ];
      expect(created.map((c) => c.status)).toEqual([201, 201]);
      const started = await server.api<{ id: number }>('POST', '/api/syncs/accounts-to-slow-api/runs');
      await page.goto(`${server.baseUrl}/runs/sync/${started.body.id}`);
      const cancels: string[] = [];
      const onRequest = (request: { method(): string; url(): string }) => {
        if (request.method() === 'POST' && request.url().endsWith('/cancel')) cancels.push(request.url());
      };
      page.on('request', onRequest);
      // It asks first, as the run history's Cancel does; an answer of no cancels nothing.
      const asked: string[] = [];
      page.once('dialog', (dialog) => {
        asked.push(dialog.message());
        void dialog.dismiss();
      });
      await page.getByRole('button', { name: 'Cancel run' }).click();
      await page.waitForTimeout(300);
      expect(asked).toEqual([`Cancel run #${started.body.id} of accounts-to-slow-api? It stops at once, a batch being written cut off (the next run sends it again); the batches delivered stay delivered.`]);
      expect(cancels).toEqual([]);
      expect(await page.getByRole('button', { name: 'Cancel run' }).isEnabled()).toBe(true);
      const accept = (dialog: Dialog) => void dialog.accept();
      page.on('dialog', accept);
      await page.getByRole('button', { name: 'Cancel run' }).dblclick();
      await page.locator('[data-status="cancelled"]').waitFor({ timeout: 20_000 });
      await page.waitForTimeout(500);
      page.off('request', onRequest);
      expect(cancels).toHaveLength(1);
      // The second click is not answered with "Could not cancel: ... is already cancelled".
      expect(await page.getByRole('alert').count()).toBe(0);
      const note = page.getByRole('note');
      await note.waitFor();
      await screenshot(page, 'run-cancelled');
      expect(await note.textContent()).not.toMatch(/fatal/i);
      expect(await note.textContent()).toMatch(/^Cancelled/);

      // A sequence run's own page asks too.
      expect((await server.api('POST', '/api/sequences', { slug: 'to-slow-api', name: 'To slow API', members: [{ sync: 'accounts-to-slow-api' }] })).status).toBe(201);
      const sequenceRun = await server.api<RunJson>('POST', '/api/sequences/to-slow-api/runs');
      page.off('dialog', accept);
      await page.goto(`${server.baseUrl}/runs/sequence/${sequenceRun.body.id}`);
      await page.locator('dl.facts [data-status="running"]').waitFor();
      page.once('dialog', (dialog) => {
        asked.push(dialog.message());
        void dialog.dismiss();
      });
      await page.getByRole('button', { name: 'Cancel run' }).click();
      await page.waitForTimeout(300);
      expect(asked[1]).toBe(
        `Cancel run ${sequenceRun.body.id.slice(0, 8)} of to-slow-api? Its members under way stop at once (the batches delivered stay delivered); the members not started are skipped.`,
      );
      expect(cancels).toHaveLength(1);
      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Cancel run' }).click();
      await page.locator('dl.facts [data-status="cancelled"]').waitFor({ timeout: 20_000 });
    } finally {
      api.closeAllConnections();
      await new Promise<void>((resolve) => api.close(() => resolve()));
    }
  });

  it('a sync’s More menu closes with Escape, back on its button, once an action in it is chosen, and on a click elsewhere', async () => {
    await page.goto(`${server.baseUrl}/syncs/workspaces-to-crm`);
    const menu = page.locator('details.menu');
    const summary = menu.locator('summary', { hasText: 'More' });
    await summary.focus();
    await page.keyboard.press('Enter');
    expect(await menu.evaluate((details: HTMLDetailsElement) => details.open)).toBe(true);
    await page.keyboard.press('Escape');
    expect(await menu.evaluate((details: HTMLDetailsElement) => details.open)).toBe(false);
    expect(await focused()).toBe('summary "More"');

    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('button "Full resync"');
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: 'Full resync started' }).waitFor();
    expect(await menu.evaluate((details: HTMLDetailsElement) => details.open)).toBe(false);

    // A click elsewhere on the page closes it too.
    await summary.click();
    expect(await menu.evaluate((details: HTMLDetailsElement) => details.open)).toBe(true);
    await page.getByRole('heading', { level: 1 }).click();
    expect(await menu.evaluate((details: HTMLDetailsElement) => details.open)).toBe(false);
  });

  it('a run waiting in the queue says when it was queued, not that it started then', async () => {
    // An API that answers no request until the test ends, so the first run is still delivering
    // while the second waits, however slow the machine (a run of three rows sent at once ended
    // within the two seconds an API answer used to take, before the test could cancel it).
    const held = new Set<ServerResponse>();
    const api = createServer((req, res) => {
      req.resume();
      held.add(res);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => api.listen(port, '127.0.0.1', resolve));
    try {
      const created = [
        await server.api('POST', '/api/destinations', { slug: 'queue-api', type: 'http', url: `http://127.0.0.1:${port}/v1` }),
        await server.api('POST', '/api/syncs', { slug: 'accounts-to-queue-api', model: 'accounts', destination: 'queue-api', object: '/accounts', mode: 'upsert', batchSize: 1 }),
      ];
      expect(created.map((c) => c.status)).toEqual([201, 201]);
      const running = await server.api<{ id: number }>('POST', '/api/syncs/accounts-to-queue-api/runs');
      const queued = await server.api<{ id: number; status: string }>('POST', '/api/syncs/accounts-to-queue-api/runs');
      expect(queued.body.id).not.toBe(running.body.id);

      await page.goto(`${server.baseUrl}/runs/sync/${queued.body.id}`);
      const facts = page.locator('dl.facts');
      await facts.locator('[data-status="queued"]').waitFor();
      const terms = async () => (await facts.locator('dt').allTextContents()).map((t) => t.trim());
      expect(await terms()).toContain('Queued');
      expect(await terms()).not.toContain('Started');

      // Cancelled before it ever started: it still says when it was queued.
      expect((await server.api('POST', `/api/sync-runs/${queued.body.id}/cancel`)).status).toBe(200);
      await facts.locator('[data-status="cancelled"]').waitFor();
      expect(await terms()).toContain('Queued');
      expect(await terms()).not.toContain('Started');

      await page.goto(`${server.baseUrl}/runs/sync/${running.body.id}`);
      await facts.locator('[data-status="processing"], [data-status="querying"]').first().waitFor();
      expect(await terms()).toContain('Started');
      expect((await server.api('POST', `/api/sync-runs/${running.body.id}/cancel`)).status).toBe(200);
      await facts.locator('[data-status="cancelled"]').waitFor({ timeout: 20_000 });
    } finally {
      for (const res of held) res.destroy();
      api.closeAllConnections();
      await new Promise<void>((resolve) => api.close(() => resolve()));
    }
  });

  it('the keyboard focus stays on Run now and on the Enabled switch once pressed, on a sync’s page and a sequence’s', async () => {
    for (const path of ['/syncs/workspaces-to-crm', '/sequences/hierarchy']) {
      await page.goto(`${server.baseUrl}${path}`);
      const runNow = page.getByRole('button', { name: 'Run now' });
      await runNow.focus();
      await page.keyboard.press('Enter');
      await page.getByRole('status').filter({ hasText: /started|queued/i }).waitFor();
      expect(await focused(), path).toBe('button "Run now"');

      const enabled = page.getByRole('switch', { name: 'Enabled' });
      await enabled.focus();
      await page.keyboard.press('Space');
      await page.getByRole('status').filter({ hasText: /disabled/i }).waitFor();
      expect(await focused(), path).toBe('button "Enabled"');
      await page.keyboard.press('Space');
      await page.getByRole('status').filter({ hasText: /enabled/i }).waitFor();
      expect(await enabled.getAttribute('aria-checked')).toBe('true');
      expect(await focused(), path).toBe('button "Enabled"');
    }
  });

  it('a link to a run that is not there leads back to the list of its kind', async () => {
    await page.goto(`${server.baseUrl}/runs/sync/999999`);
    await page.getByRole('heading', { name: 'There is no sync run #999999' }).waitFor();
    expect(await page.getByRole('link', { name: 'Back to syncs' }).getAttribute('href')).toBe('/syncs');
    await page.goto(`${server.baseUrl}/runs/sequence/00000000-0000-4000-8000-000000000000`);
    await page.getByRole('heading', { name: /^There is no sequence run / }).waitFor();
    expect(await page.getByRole('link', { name: 'Back to sequences' }).getAttribute('href')).toBe('/sequences');
  });

  it('Back after closing a run dialog leaves the page, rather than open the closed run again', async () => {
    await page.goto(`${server.baseUrl}/syncs`);
    await page.getByRole('link', { name: 'accounts-to-crm', exact: true }).click();
    await page.getByRole('link', { name: /^Open sync run / }).first().click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(new URL(page.url()).pathname).toBe('/syncs/accounts-to-crm');
    await page.goBack();
    await page.getByRole('heading', { name: 'Syncs', level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/syncs');
    expect(await dialog.count()).toBe(0);

    // A run opened from a shared link: closing it leaves its sequence's page in its place, and Back what was open before.
    const runs = await server.api<{ data: RunJson[] }>('GET', '/api/sequences/hierarchy/runs?limit=1');
    await page.goto(`${server.baseUrl}/sequences/hierarchy/runs/${runs.body.data[0]!.id}`);
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect(new URL(page.url()).pathname).toBe('/sequences/hierarchy');
    await page.goBack();
    await page.getByRole('heading', { name: 'Syncs', level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/syncs');
  });

  it('a member’s slug breaks between its words, not inside one, next to a member’s long error', async () => {
    const created = [
      await server.api('POST', '/api/models', { slug: 'broken', source: 'warehouse', primaryKey: 'id', query: 'select id, name from no_such_table' }),
      await server.api('POST', '/api/syncs', { slug: 'broken-query-to-crm', model: 'broken', destination: 'crm', object: 'accounts', mode: 'upsert' }),
      await server.api('POST', '/api/sequences', {
        slug: 'with-a-failure',
        name: 'With a failure',
        members: [{ sync: 'contacts-to-crm' }, { sync: 'broken-query-to-crm', terminate: 'never' }, { sync: 'workspaces-to-crm' }],
      }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201, 201]);
    const started = await server.api<RunJson>('POST', '/api/sequences/with-a-failure/runs');
    await eventually('the run to end', async () => {
      const { body } = await server.api<RunJson>('GET', `/api/sequence-runs/${started.body.id}`);
      return body.status === 'done' ? true : undefined;
    });

    await page.goto(`${server.baseUrl}/runs/sequence/${started.body.id}`);
    await page.getByText(/no such table/).waitFor();
    await screenshot(page, 'run-page-member-error');
    // Each member's slug as it is laid out: the text of each of its lines.
    const lines = await page.evaluate(() =>
      Array.from(document.querySelectorAll('table[aria-label="Member runs"] tbody th a')).map((link) => {
        const text = link.firstChild as Text;
        const range = document.createRange();
        const out: string[] = [];
        let top: number | null = null;
        for (let i = 0; i < text.length; i++) {
          range.setStart(text, i);
          range.setEnd(text, i + 1);
          const y = Math.round(range.getBoundingClientRect().top);
          if (top === null || y > top + 2) out.push(text.data[i]!);
          else out.push(`${out.pop()!}${text.data[i]!}`);
          top = y;
        }
        return out;
      }),
    );
    for (const member of lines) for (const line of member.slice(0, -1)) expect(line, `${member.join('|')} breaks inside a word`).toMatch(/-$/);
  });

  it('the pages showed no script errors', () => {
    expect(browser.errors.filter((e) => !/status of 4\d\d/.test(e))).toEqual([]);
  });
});

/**
 * The web UI end to end: a real `lockstep serve` on a temp workspace, driven through headless
 * Chromium the way a user would. The tests share one server and one browser and run in order:
 * the sync page first (contacts before their parents exist, so every row is rejected), then the
 * Add sequence wizard, a run with live updates and its details dialog, the graph view, validation
 * errors at their fields, and a disabled sequence that its schedule no longer starts.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { SequenceRunView, SyncRunView } from '../../src/core/run-views.js';
import { type Browser, eventually, screenshot, servedForTests, SYNCS, type UiServer } from './ui-harness.js';

interface SequenceJson {
  slug: string;
  name: string;
  enabled: boolean;
  schedule: { type: string; expression?: string; timezone?: string };
  members: Array<{ key: string; sync: string; terminate: string; rejectedThreshold: { percent?: number; count?: number }; after: string[] | null }>;
}
interface RunPage<T> {
  hasMore: boolean;
  data: T[];
}

let server: UiServer;
let browser: Browser;
let page: Page;

servedForTests({ ready: (ui) => void ({ server, browser, page } = ui) });

const go = (hash: string) => page.goto(`${server.baseUrl}/${hash}`);

describe('web UI', () => {
  it('the Sequences page explains what a sequence is when there is none, and offers Add sequence', async () => {
    await go('#/sequences');
    await page.getByRole('heading', { name: 'Sequences', level: 1 }).waitFor();
    const empty = page.getByRole('region', { name: 'No sequences yet' });
    await empty.waitFor();
    expect(await empty.textContent()).toContain('runs several syncs one after another');
    expect(await empty.getByRole('link', { name: 'Add sequence' }).isVisible()).toBe(true);
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link', { name: 'Sequences', exact: true }).getAttribute('aria-current')).toBe('page');
    expect(await nav.getByRole('link', { name: 'Syncs', exact: true }).isVisible()).toBe(true);
    await screenshot(page, '01-sequences-empty');
  });

  it('a sync page shows added/changed/removed × successful/rejected per run and the rejected rows with their reasons, paged', async () => {
    await go('#/syncs');
    await page.getByRole('link', { name: 'contacts-to-crm' }).click();
    await page.getByRole('heading', { name: 'contacts-to-crm', level: 1 }).waitFor();
    await page.getByText('This sync has not run yet').waitFor();

    await page.getByRole('button', { name: 'Run now' }).click();
    // The run ends `warning` (every contact's workspace is missing in the CRM); the row changes live.
    const runs = page.getByRole('table', { name: 'Sync runs' });
    await runs.locator('[data-status="warning"]').waitFor({ timeout: 20_000 });
    const row = runs.locator('tbody tr').first();
    expect(await row.locator('[data-count="added-successful"]').textContent()).toBe('0');
    expect(await row.locator('[data-count="added-rejected"]').textContent()).toBe('30');
    expect(await row.locator('[data-count="changed-rejected"]').textContent()).toBe('0');
    expect(await row.locator('[data-count="removed-successful"]').textContent()).toBe('0');
    await screenshot(page, '07-sync-page');

    await row.getByRole('link', { name: /Open sync run/ }).click();
    const dialog = page.getByRole('dialog', { name: /Sync run #\d+/ });
    const rejected = dialog.getByRole('table', { name: 'Rejected rows' });
    await rejected.waitFor();
    const firstPage = await rejected.locator('tbody tr').count();
    expect(firstPage).toBe(25);
    const reasons = await rejected.locator('td.reason').allTextContents();
    expect(reasons.every((r) => /FOREIGN KEY/i.test(r))).toBe(true);
    expect(await rejected.locator('tbody tr').first().locator('td').nth(1).textContent()).toBe('added');
    await dialog.getByRole('navigation', { name: 'Rejected rows pages' }).scrollIntoViewIfNeeded();
    await screenshot(page, '08-sync-run-rejected-rows');

    await dialog.getByRole('navigation', { name: 'Rejected rows pages' }).getByRole('button', { name: 'Next' }).click();
    await eventually('the second page of rejected rows', async () => ((await rejected.locator('tbody tr').count()) === 5 ? true : undefined));
    expect(await rejected.locator('tbody tr td.mono').allTextContents()).toEqual(['26', '27', '28', '29', '30']);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
  });

  it("a sync run's page shows where its time went, phase by phase", async () => {
    await go('#/syncs');
    await page.getByRole('link', { name: 'contacts-to-crm' }).click();
    const link = page.getByRole('table', { name: 'Sync runs' }).locator('tbody tr').first().getByRole('link', { name: /Open sync run/ });
    const id = /(\d+)$/.exec((await link.getAttribute('aria-label')) ?? '')?.[1];
    await go(`#/runs/sync/${id}`);
    const phases = page.getByRole('table', { name: 'Where the time went' });
    await phases.waitFor();
    expect(await phases.locator('tbody th').allTextContents()).toEqual(['Connect', 'Query', 'Plan', 'Deliver', 'Commit', 'Rate limit', 'Retry', 'Finish']);
    const times = await phases.locator('tbody td:nth-of-type(1)').allTextContents();
    expect(times.every((t) => /^\d+(\.\d)? (ms|s)$|^\d+ min \d+ s$/.test(t))).toBe(true);
    const shares = (await phases.locator('tbody td:nth-of-type(2)').allTextContents()).map((t) => Number(t.replace('%', '')));
    // Rounded shares of a whole.
    expect(Math.abs(shares.reduce((a, b) => a + b, 0) - 100)).toBeLessThanOrEqual(4);
    await phases.scrollIntoViewIfNeeded();
    await screenshot(page, '08b-sync-run-phases');
  });

  it('Add sequence: add three syncs, order them with the arrows, set Terminate policies and a threshold, name and cron schedule, Save', async () => {
    await go('#/sequences');
    await page.getByRole('link', { name: 'Add sequence' }).click();
    await page.getByRole('heading', { name: 'Add sequence', level: 1 }).waitFor();

    // Step 1: the search narrows the list; pick the three syncs in the "wrong" order.
    await page.getByLabel('Search syncs').fill('contacts');
    expect(await page.getByRole('list', { name: 'Syncs' }).getByRole('checkbox').count()).toBe(1);
    await page.getByLabel('contacts-to-crm').check();
    await page.getByLabel('Search syncs').fill('');
    await page.getByLabel('workspaces-to-crm').check();
    await page.getByLabel('accounts-to-crm').check();
    await screenshot(page, '02-wizard-add-syncs');
    await page.getByRole('button', { name: 'Next' }).click();

    // Step 2: accounts to the top, contacts to the bottom.
    const order = () => page.locator('.member-list > li').evaluateAll((items) => items.map((li) => li.getAttribute('aria-label')));
    expect(await order()).toEqual(['contacts-to-crm', 'workspaces-to-crm', 'accounts-to-crm']);
    await page.getByRole('button', { name: 'Move accounts-to-crm up' }).click();
    await page.getByRole('button', { name: 'Move accounts-to-crm up' }).click();
    expect(await order()).toEqual(['accounts-to-crm', 'contacts-to-crm', 'workspaces-to-crm']);
    expect(await page.getByRole('button', { name: 'Move accounts-to-crm up' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Move contacts-to-crm down' }).click();
    expect(await order()).toEqual([...SYNCS]);

    const accounts = page.getByRole('listitem', { name: 'accounts-to-crm' });
    await accounts.getByLabel('Terminate').selectOption({ label: 'On fatal error or rejected rows' });
    await accounts.getByLabel('Rejected rows threshold').fill('5');
    await accounts.getByLabel('Threshold unit').selectOption({ label: '% of planned rows' });
    await page.getByRole('listitem', { name: 'workspaces-to-crm' }).getByLabel('Terminate').selectOption({ label: 'On fatal error' });
    await page.getByRole('listitem', { name: 'contacts-to-crm' }).getByLabel('Terminate').selectOption({ label: 'Never' });
    await screenshot(page, '03-wizard-order-and-policies');
    await page.getByRole('button', { name: 'Next' }).click();

    // Step 3: name (the slug follows it) and a cron schedule in a timezone.
    await page.getByLabel('Name', { exact: true }).fill('CRM hierarchy');
    expect(await page.getByLabel('Slug').inputValue()).toBe('crm-hierarchy');
    const types = await page.getByLabel('Schedule type').locator('option').allTextContents();
    expect(types).toHaveLength(7);
    await page.getByLabel('Schedule type').selectOption('cron');
    await page.getByLabel('Cron expression').fill('0 6 * * 1-5');
    await page.getByLabel('Timezone').fill('Europe/Berlin');
    await screenshot(page, '04-wizard-name-and-schedule');
    await page.getByRole('button', { name: 'Save' }).click();

    await page.getByRole('heading', { name: 'CRM hierarchy', level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/sequences/crm-hierarchy');
    const members = page.getByRole('list', { name: 'Members in order' });
    expect(await members.getByRole('listitem').evaluateAll((items) => items.map((li) => li.getAttribute('aria-label')))).toEqual([...SYNCS]);
    expect(await members.textContent()).toContain('On fatal error or more than 5% rejected');

    const { body } = await server.api<SequenceJson>('GET', '/api/sequences/crm-hierarchy');
    expect(body.name).toBe('CRM hierarchy');
    expect(body.schedule).toMatchObject({ type: 'cron', expression: '0 6 * * 1-5', timezone: 'Europe/Berlin' });
    expect(body.members.map((m) => [m.sync, m.terminate, m.after])).toEqual([
      ['accounts-to-crm', 'on_fatal_or_rejected', null],
      ['workspaces-to-crm', 'on_fatal', null],
      ['contacts-to-crm', 'never', null],
    ]);
    expect(body.members[0]!.rejectedThreshold).toEqual({ percent: 5 });

    await go('#/sequences');
    const row = page.getByRole('row', { name: /CRM hierarchy/ });
    await row.waitFor();
    expect(await row.textContent()).toContain('Cron 0 6 * * 1-5 (Europe/Berlin)');
    // The last-run cell shows "…" until the sequence's runs have loaded.
    await row.getByText('Never run').waitFor();
  });

  it('Run now: the run appears and finishes live, and its dialog shows every member sync run', async () => {
    await go('#/sequences/crm-hierarchy');
    await page.getByRole('button', { name: 'Run now' }).click();
    const runs = page.getByRole('table', { name: 'Sequence runs' });
    // No reload: the status reaches Done through the server's live events.
    await runs.locator('tbody tr').first().locator('[data-status="done"]').waitFor({ timeout: 30_000 });
    expect(await runs.locator('tbody tr').first().textContent()).toContain('3 of 3 members ran');

    await runs.getByRole('link', { name: /Open run/ }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Run of CRM hierarchy' });
    const members = dialog.getByRole('table', { name: 'Member runs' });
    await members.waitFor();
    const delivered: Record<string, string> = {};
    for (const sync of SYNCS) {
      const row = members.getByRole('row', { name: sync });
      expect(await row.locator('[data-status]').getAttribute('data-status')).toBe('success');
      delivered[sync] = (await row.locator('td.num').first().textContent()) ?? '';
      expect(await row.locator('td').nth(3).textContent()).toMatch(/\d+ ms|\d+(\.\d)? s/);
    }
    // The contacts rejected earlier are retried and delivered once their workspaces exist.
    expect(delivered).toEqual({ 'accounts-to-crm': '3', 'workspaces-to-crm': '6', 'contacts-to-crm': '30' });
    await screenshot(page, '06-sequence-run-dialog');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  it('a run terminated by a member shows which member terminated it and why; skipped members say so', async () => {
    // A sync whose destination table does not exist fails fatally; the default policy (on_fatal) then terminates.
    const created = await server.api('POST', '/api/syncs', {
      slug: 'broken-to-crm',
      model: 'accounts',
      destination: 'crm',
      object: 'no_such_table',
      mode: 'upsert',
    });
    expect(created.status).toBe(201);
    const sequence = await server.api('POST', '/api/sequences', {
      slug: 'breaks-early',
      name: 'Breaks early',
      members: [{ sync: 'broken-to-crm' }, { sync: 'accounts-to-crm' }],
    });
    expect(sequence.status).toBe(201);

    await go('#/sequences/breaks-early');
    await page.getByRole('button', { name: 'Run now' }).click();
    const runs = page.getByRole('table', { name: 'Sequence runs' });
    await runs.locator('tbody tr').first().locator('[data-status="failed"]').waitFor({ timeout: 30_000 });
    expect(await runs.locator('tbody tr').first().textContent()).toContain('broken-to-crm');
    expect(await runs.locator('tbody tr').first().textContent()).toContain('1 of 2 members ran, 1 skipped');
    await runs.getByRole('link', { name: /Open run/ }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Run of Breaks early' });
    await dialog.getByRole('table', { name: 'Member runs' }).waitFor();
    expect(await dialog.getByRole('note').textContent()).toMatch(/^Terminated by broken-to-crm: .+/);
    const members = dialog.getByRole('table', { name: 'Member runs' });
    expect(await members.getByRole('row', { name: 'broken-to-crm' }).locator('[data-status]').getAttribute('data-status')).toBe('failed');
    expect(await members.getByRole('row', { name: 'accounts-to-crm' }).locator('[data-status]').getAttribute('data-status')).toBe('skipped');
    await screenshot(page, '06b-terminated-run-dialog');
    await page.keyboard.press('Escape');
  });

  it('Edit reopens the wizard on the sequence; "run after" dependencies turn it into a graph drawn with boxes and arrows', async () => {
    await go('#/sequences/crm-hierarchy');
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: 'Edit CRM hierarchy' }).waitFor();
    // The existing members are already selected.
    for (const sync of SYNCS) expect(await page.getByLabel(sync).isChecked()).toBe(true);
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('listitem', { name: 'accounts-to-crm' }).getByLabel('Starts').selectOption('now');
    const workspaces = page.getByRole('listitem', { name: 'workspaces-to-crm' });
    await workspaces.getByLabel('Starts').selectOption('after');
    await workspaces.getByRole('group', { name: 'Run after' }).getByLabel('accounts-to-crm').check();
    const contacts = page.getByRole('listitem', { name: 'contacts-to-crm' });
    await contacts.getByLabel('Starts').selectOption('after');
    await contacts.getByRole('group', { name: 'Run after' }).getByLabel('accounts-to-crm').check();
    await contacts.getByRole('group', { name: 'Run after' }).getByLabel('workspaces-to-crm').check();
    await page.getByRole('img', { name: /Dependency graph preview/ }).waitFor();
    await screenshot(page, '05a-wizard-graph-preview');
    await page.getByRole('button', { name: 'Next' }).click();
    expect(await page.getByLabel('Name', { exact: true }).inputValue()).toBe('CRM hierarchy');
    expect(await page.getByLabel('Cron expression').inputValue()).toBe('0 6 * * 1-5');
    await page.getByRole('button', { name: 'Save' }).click();

    const graph = page.getByRole('img', { name: /Dependency graph of CRM hierarchy/ });
    await graph.waitFor();
    expect(await graph.getAttribute('aria-label')).toBe(
      'Dependency graph of CRM hierarchy: accounts-to-crm → workspaces-to-crm, accounts-to-crm → contacts-to-crm, workspaces-to-crm → contacts-to-crm',
    );
    expect(await graph.locator('[data-member]').count()).toBe(3);
    expect(await graph.locator('[data-edge]').count()).toBe(3);
    // Laid out by depth: accounts, then workspaces, then contacts, left to right.
    const xs = await graph.locator('[data-member]').evaluateAll((nodes) =>
      Object.fromEntries(nodes.map((n) => [n.getAttribute('data-member'), (n as SVGGraphicsElement).getBoundingClientRect().x])),
    );
    expect(xs['accounts-to-crm']!).toBeLessThan(xs['workspaces-to-crm']!);
    expect(xs['workspaces-to-crm']!).toBeLessThan(xs['contacts-to-crm']!);

    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByRole('table', { name: 'Sequence runs' }).locator('tbody tr').first().locator('[data-status="done"]').waitFor({ timeout: 30_000 });
    await graph.locator('.graph-node.tone-good').nth(2).waitFor();
    await screenshot(page, '05-sequence-page-graph');
  });

  it('the server’s validation errors appear next to the field they are about', async () => {
    await go('#/sequences/new');
    await page.getByLabel('accounts-to-crm').check();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Name', { exact: true }).fill('CRM hierarchy');
    await page.getByLabel('Schedule type').selectOption('cron');
    await page.getByLabel('Cron expression').fill('61 * * * *');
    await page.getByLabel('Timezone').fill('Mars/Olympus_Mons');
    await page.getByRole('button', { name: 'Save' }).click();

    // 422: the schedule's fields are refused, each message under its field.
    await page.getByRole('alert').filter({ hasText: 'Could not save the sequence' }).waitFor();
    const cronField = page.getByLabel('Cron expression').locator('xpath=..');
    expect(await cronField.locator('.field-error').textContent()).toMatch(/61|minute/i);
    expect(await page.getByLabel('Cron expression').getAttribute('aria-invalid')).toBe('true');
    const timezoneField = page.getByLabel('Timezone').locator('xpath=..');
    expect(await timezoneField.locator('.field-error').textContent()).toMatch(/Mars\/Olympus_Mons/);
    await screenshot(page, '04b-wizard-validation-errors');

    // 409: the slug is taken; the message sits under the slug.
    await page.getByLabel('Cron expression').fill('30 * * * *');
    await page.getByLabel('Timezone').fill('UTC');
    await page.getByRole('button', { name: 'Save' }).click();
    const slugField = page.getByLabel('Slug').locator('xpath=..');
    await slugField.locator('.field-error').waitFor();
    expect(await slugField.locator('.field-error').textContent()).toBe('A sequence with the slug “crm-hierarchy” exists already. Choose another name or slug.');
    expect(await page.getByRole('alert').filter({ hasText: 'Could not save the sequence' }).textContent()).not.toMatch(/PUT|\/api\//);
    expect((await server.api<SequenceJson>('GET', '/api/sequences/crm-hierarchy')).body.members).toHaveLength(3);
  });

  it('disabling a sequence: the switch, the list and the API agree, and its every-minute schedule no longer starts it', async () => {
    // The minute must not turn while the sequences are made and one disabled (both would fire then).
    const toNextMinute = 60_000 - (Date.now() % 60_000);
    if (toNextMinute < 20_000) await new Promise((resolve) => setTimeout(resolve, toNextMinute + 500));
    // Two sequences on the same every-minute schedule: one stays enabled and proves the scheduler fires.
    for (const [slug, sync] of [
      ['minutely-on', 'accounts-to-crm'],
      ['minutely-off', 'workspaces-to-crm'],
    ] as const) {
      const created = await server.api('POST', '/api/sequences', {
        slug,
        name: slug,
        schedule: { type: 'cron', expression: '* * * * *', timezone: 'UTC' },
        members: [{ sync }],
      });
      expect(created.status).toBe(201);
    }
    await go('#/sequences/minutely-off');
    const enabled = page.getByRole('switch', { name: 'Enabled' });
    expect(await enabled.getAttribute('aria-checked')).toBe('true');
    await enabled.click();
    await page.getByRole('status').filter({ hasText: 'its schedule no longer starts it' }).waitFor();
    expect(await enabled.getAttribute('aria-checked')).toBe('false');
    expect(await page.locator('.subtitle').textContent()).toContain('paused while disabled');
    const disabledAt = Date.now();
    expect((await server.api<SequenceJson>('GET', '/api/sequences/minutely-off')).body.enabled).toBe(false);

    await go('#/sequences');
    expect(await page.getByRole('row', { name: /minutely-off/ }).textContent()).toContain('Disabled');
    await screenshot(page, '09-sequences-list');

    // Wait for the next minute to fire the enabled one; by then the disabled one would have fired too.
    const scheduled = await eventually(
      'a scheduled run of minutely-on',
      async () => {
        const { body } = await server.api<RunPage<SequenceRunView>>('GET', '/api/sequences/minutely-on/runs?limit=5');
        return body.data.find((r) => r.trigger === 'schedule' && Date.parse(r.createdAt) > disabledAt);
      },
      75_000,
      500,
    );
    expect(Date.parse(scheduled.createdAt)).toBeGreaterThan(disabledAt);
    await eventually('minutely-on to finish', async () => {
      const { body } = await server.api<SequenceRunView>('GET', `/api/sequence-runs/${scheduled.id}`);
      return ['done', 'failed', 'cancelled'].includes(body.status) ? true : undefined;
    });
    const off = await server.api<RunPage<SequenceRunView>>('GET', '/api/sequences/minutely-off/runs?limit=5');
    expect(off.body.data).toEqual([]);
    // The sync of the disabled sequence did not run either.
    const syncRuns = await server.api<RunPage<SyncRunView>>('GET', '/api/syncs/workspaces-to-crm/runs?limit=20');
    expect(syncRuns.body.data.filter((r) => r.trigger === 'schedule')).toEqual([]);
  }, 120_000);

  it('an interval schedule with a start says when it starts, so when it fires can be read', async () => {
    const startAt = '2026-12-07T03:15:00.000Z';
    const created = await server.api('POST', '/api/sequences', {
      slug: 'six-hourly',
      name: 'Six-hourly',
      enabled: false,
      schedule: { type: 'interval', unit: 'hour', quantity: 6, startAt },
      members: [{ sync: 'accounts-to-crm' }],
    });
    expect(created.status).toBe(201);
    await go('sequences');
    const row = page.getByRole('row', { name: /Six-hourly/ });
    await row.waitFor();
    const shown = await page.evaluate((iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' }).format(Date.parse(iso)), startAt);
    expect(await row.textContent()).toContain(`Every 6 hours from ${shown}`);
    await go('sequences/six-hourly');
    expect(await page.locator('.subtitle').textContent()).toContain(`Every 6 hours from ${shown}`);
  });

  it('a timed schedule says when it next runs; a disabled one does not', async () => {
    const startAt = '2099-01-01T06:00:00.000Z';
    const schedule = { type: 'interval', unit: 'hour', quantity: 6, startAt };
    expect((await server.api('POST', '/api/sequences', { slug: 'far-off', name: 'Far off', schedule, members: [{ sync: 'accounts-to-crm' }] })).status).toBe(201);
    await go('sequences');
    const row = page.getByRole('row', { name: /Far off/ });
    await row.waitFor();
    const shown = await page.evaluate((iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' }).format(Date.parse(iso)), startAt);
    expect(await row.textContent()).toContain(`next run ${shown}`);
    await go('sequences/far-off');
    expect(await page.locator('.subtitle').textContent()).toContain(`next run ${shown}`);
    // six-hourly is disabled: its schedule names no next run.
    await go('sequences/six-hourly');
    expect(await page.locator('.subtitle').textContent()).not.toContain('next run');
  });

  it('the page showed no script errors', () => {
    // Failed fetches the tests provoked on purpose (422) are logged by Chromium as resource errors.
    expect(browser.errors.filter((e) => !/status of 4\d\d/.test(e))).toEqual([]);
  });
});

/**
 * The Alerts and Webhooks pages against a real `lockstep serve`: a test alert sent from the UI
 * reaches a local receiver, a failing channel shows as failing, a rule is created through the form
 * (with the server's field errors shown at the fields first), and a signed dbt Cloud delivery shows
 * in the Webhooks page with its outcome, reason and the run it started.
 */
import { createHmac } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { HttpReceiver } from '../alerts/receivers.js';
import { killChildren, runCli } from '../cli/cli-helpers.js';
import { ensureChromium } from '../setup/chromium.js';
import { eventually, openBrowser, screenshot, startServer, uiWorkspace, type Browser, type UiServer } from './ui-harness.js';

const DBT_SECRET = 'whsec-ui-0123456789';

let server: UiServer;
let browser: Browser;
let page: Page;
let receiver: HttpReceiver;

beforeAll(async () => {
  ensureChromium();
  receiver = await HttpReceiver.start((path) => (path === '/down' ? { status: 503 } : { status: 200 }));
  const dir = await uiWorkspace();
  // A sequence started by a dbt Cloud job, the webhook secret, and two alert channels.
  appendFileSync(
    join(dir, 'lockstep.yaml'),
    `sequences:
  nightly:
    schedule: { type: dbt_cloud, accountId: "43", jobId: "101" }
    members: [ { sync: accounts-to-crm } ]
webhooks:
  dbtCloud: { secret: "${DBT_SECRET}" }
alerts:
  channels:
    ops-hook: { type: webhook, url: "${receiver.url}/ok", secret: "hook-secret-value" }
    flaky-hook: { type: webhook, url: "${receiver.url}/down" }
`,
  );
  const applied = await runCli(['--workspace', dir, 'apply'], { cwd: dir });
  if (applied.code !== 0) throw new Error(`lockstep apply failed (${applied.code}):\n${applied.stderr}`);
  server = await startServer(dir);
  browser = await openBrowser();
  page = browser.page;
}, 15 * 60_000);

afterAll(async () => {
  await browser?.[Symbol.asyncDispose]();
  await server?.[Symbol.asyncDispose]();
  await receiver?.[Symbol.asyncDispose]();
  await killChildren();
});

const go = (hash: string) => page.goto(`${server.baseUrl}/${hash}`);

describe('Alerts page', () => {
  it('sends a test alert to a channel and shows it delivered; a failing channel shows its error', async () => {
    await go('#/alerts');
    await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link', { name: 'Alerts', exact: true }).getAttribute('aria-current')).toBe('page');
    expect(await nav.getByRole('link', { name: 'Webhooks', exact: true }).isVisible()).toBe(true);
    await page.getByText('No alerts sent yet').waitFor();

    const channels = page.getByRole('table', { name: 'Alert channels' });
    expect(await channels.locator('tr[data-channel="ops-hook"]').textContent()).toContain(`${receiver.url}/ok`);
    expect(await page.content()).not.toContain('hook-secret-value');

    await page.getByRole('button', { name: 'Send test alert to ops-hook' }).click();
    await page.getByRole('status', { name: 'Test result for ops-hook' }).getByText(/Delivered \(delivery \d+\)/).waitFor();
    await eventually('the receiver to get the test alert', async () => (receiver.at('/ok').length > 0 ? true : undefined));
    expect(receiver.at('/ok')[0]?.headers['x-lockstep-event']).toBe('test');

    await page.getByRole('button', { name: 'Send test alert to flaky-hook' }).click();
    await page.getByRole('status', { name: 'Test result for flaky-hook' }).getByText(/Not delivered: .*answered 503/).waitFor();
    // The failing channel is highlighted in the channels and in the deliveries, with its error.
    await channels.locator('tr.row-bad[data-channel="flaky-hook"]').waitFor();
    const deliveries = page.getByRole('table', { name: 'Alert deliveries' });
    await deliveries.locator('tr.row-bad [data-delivery-status="given_up"]').waitFor();
    expect(await deliveries.locator('tr.row-bad').first().textContent()).toMatch(/flaky-hook.*Given up.*1.*answered 503/);
    expect(await deliveries.locator('[data-delivery-status="sent"]').count()).toBe(1);
  });

  it('creates a rule in the form, showing the server’s field errors at the fields first', async () => {
    await go('#/alerts');
    await page.getByText('No rules yet.').waitFor();
    await page.getByRole('button', { name: 'Add rule' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add alert rule' });
    await dialog.getByLabel('Name').fill('Nightly Pager');
    await dialog.getByLabel('Slow run').check();
    await dialog.getByRole('button', { name: 'Add rule' }).click();
    // 422s shown at their fields: the name's form, slow_run without a limit, and no channel chosen.
    await dialog.getByText(/invalid name "Nightly Pager"/).waitFor();
    expect(await dialog.getByText(/on lists slow_run but the rule has no slowerThanMinutes/).isVisible()).toBe(true);
    expect(await dialog.getByText(/channels is an empty list/).isVisible()).toBe(true);

    await dialog.getByLabel('Name').fill('nightly-pager');
    await dialog.getByLabel('Slower than (minutes)').fill('30');
    await dialog.getByRole('checkbox', { name: 'nightly' }).check();
    await dialog.getByRole('checkbox', { name: /ops-hook/ }).check();
    await dialog.getByRole('button', { name: 'Add rule' }).click();
    await dialog.waitFor({ state: 'detached' });

    const row = page.getByRole('table', { name: 'Alert rules' }).locator('tr[data-rule="nightly-pager"]');
    await row.waitFor();
    const text = await row.textContent();
    expect(text).toContain('nightly');
    expect(text).toContain('Slow run');
    expect(text).toContain('slower than 30 min');
    expect(text).toContain('ops-hook');
    const stored = await server.api<{ rules: Array<{ name: string; sequences: string[]; slowerThanMinutes: number; origin: string }> }>('GET', '/api/alerts');
    expect(stored.body.rules).toEqual([expect.objectContaining({ name: 'nightly-pager', sequences: ['nightly'], slowerThanMinutes: 30, origin: 'api' })]);
    await screenshot(page, '10-alerts');
  });
});

describe('Webhooks page', () => {
  it('explains how to connect dbt Cloud and Fivetran, and shows a signed delivery with its outcome, reason and the run it started', async () => {
    await go('#/webhooks');
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    expect(await page.locator('[data-endpoint="dbt_cloud"]').textContent()).toBe(`${server.baseUrl}/api/v1/webhooks/dbt-cloud`);
    expect(await page.locator('[data-endpoint="fivetran"]').textContent()).toBe(`${server.baseUrl}/api/v1/webhooks/fivetran`);
    await page.getByRole('region', { name: 'No deliveries yet' }).waitFor();

    const body = JSON.stringify({
      accountId: 43,
      webhookId: 'wsu_ui',
      eventId: 'evt-ui-1',
      timestamp: new Date().toISOString(),
      eventType: 'job.run.completed',
      webhookName: 'lockstep',
      data: { jobId: '101', jobName: 'nightly build', runId: '9001', environmentId: '1', runStatus: 'Success', runStatusCode: 10, runStatusMessage: 'None' },
    });
    const post = (signature: string) =>
      fetch(`${server.baseUrl}/api/v1/webhooks/dbt-cloud`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: signature }, body });
    expect((await post(createHmac('sha256', DBT_SECRET).update(body).digest('hex'))).status).toBe(200);
    expect((await post('0'.repeat(64))).status).toBe(401);

    const table = page.getByRole('table', { name: 'Webhook deliveries' });
    await table.waitFor({ timeout: 15_000 }); // the page refreshes by itself
    const accepted = table.locator('tr', { has: page.locator('[data-outcome="accepted"]') });
    await accepted.waitFor();
    const acceptedText = await accepted.textContent();
    expect(acceptedText).toContain('dbt Cloud');
    expect(acceptedText).toContain('job.run.completed');
    expect(acceptedText).toMatch(/job 101/);
    const runLink = accepted.getByRole('link', { name: 'sequence nightly' });
    expect(await runLink.getAttribute('href')).toBe('#/sequences/nightly');
    const rejected = table.locator('tr.row-bad', { has: page.locator('[data-outcome="rejected"]') });
    expect(await rejected.textContent()).toMatch(/not the HMAC-SHA256 of the body/);
    await screenshot(page, '11-webhooks');
    await runLink.click();
    await page.getByRole('heading', { name: 'nightly', level: 1 }).waitFor();
    // The only failed request is the rule form's deliberate 422.
    expect(browser.errors.filter((e) => !e.includes('status of 422'))).toEqual([]);
  });
});

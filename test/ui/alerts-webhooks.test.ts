/**
 * The Alerts and Webhooks pages against a real `lockstep serve`: a test alert sent from the UI
 * reaches a local receiver, a failing channel shows as failing, a rule is created through the form
 * (with the server's field errors shown at the fields first), and a signed dbt Cloud delivery shows
 * in the Webhooks page with its outcome, reason and the run it started.
 */
import { createHmac } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { HttpReceiver } from '../alerts/receivers.js';
import { runCli } from '../cli/cli-helpers.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer, uiWorkspace } from './ui-harness.js';

const DBT_SECRET = 'whsec-ui-0123456789';

let server: UiServer;
let browser: Browser;
let page: Page;
let receiver: HttpReceiver;

servedForTests({ workspace: makeWorkspace, ready: (ui) => void ({ server, browser, page } = ui) });

/** The standard workspace with a sequence started by a dbt Cloud job, the webhook secret, and two alert channels, applied. */
async function makeWorkspace(): Promise<string> {
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
  return dir;
}

afterAll(async () => {
  await receiver?.[Symbol.asyncDispose]();
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
    // Its path hidden, as a Slack URL's: a webhook's path may be its token.
    expect(await channels.locator('tr[data-channel="ops-hook"]').textContent()).toContain(`${receiver.url}/***`);
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
    expect(await accepted.getByRole('link', { name: 'nightly' }).getAttribute('href')).toBe('/sequences/nightly');
    // The run it started opens on its own page.
    const runLink = accepted.getByRole('link', { name: /^run [0-9a-f]{8}$/ });
    expect(await runLink.getAttribute('href')).toMatch(/^\/runs\/sequence\/[0-9a-f-]{36}$/);
    const rejected = table.locator('tr.row-bad', { has: page.locator('[data-outcome="rejected"]') });
    expect(await rejected.textContent()).toMatch(/not the HMAC-SHA256 of the body/);
    // Refused deliveries are counted per reason under the log, which says what it keeps.
    const refusals = page.getByRole('table', { name: 'Refused deliveries' });
    await refusals.waitFor();
    expect(await refusals.locator('[data-refusal="dbt_cloud"] [data-refusal-count]').textContent()).toBe('1');
    expect(await page.locator('[data-retention]').textContent()).toMatch(/newest 100 refused deliveries .* kept for 90 days/);
    await screenshot(page, '11-webhooks');
    await runLink.click();
    await page.getByRole('heading', { name: 'Run of nightly', level: 1 }).waitFor();
    await page.getByRole('table', { name: 'Member runs' }).getByRole('row', { name: 'accounts-to-crm' }).waitFor();
    // The only failed request is the rule form's deliberate 422.
    expect(browser.errors.filter((e) => !e.includes('status of 422'))).toEqual([]);
  });
});

interface Delivery {
  event: string;
  run: { kind: 'sync' | 'sequence'; id: string; url: string } | null;
}

/** The first delivery of `event`, once the alert monitor has queued it. */
async function deliveryOf(event: string): Promise<Delivery & { run: NonNullable<Delivery['run']> }> {
  return eventually(`a ${event} alert`, async () => {
    const { body } = await server.api<{ data: Delivery[] }>('GET', '/api/alerts/deliveries?limit=50');
    const found = body.data.find((d) => d.event === event && d.run !== null);
    return found ? (found as Delivery & { run: NonNullable<Delivery['run']> }) : undefined;
  }, 30_000);
}

describe('run links', () => {
  it('an alert’s link opens the failed sync run’s own page, under the address the server listens on', async () => {
    expect((await server.api('POST', '/api/syncs', { slug: 'broken-to-crm', model: 'accounts', destination: 'crm', object: 'no_such_table', mode: 'upsert' })).status).toBe(201);
    expect((await server.api('POST', '/api/alerts/rules', { name: 'broken-watch', syncs: ['broken-to-crm'], on: ['sync_failed'], channels: ['ops-hook'] })).status).toBe(201);
    const started = await server.api<{ id: number }>('POST', '/api/syncs/broken-to-crm/runs');
    const delivery = await deliveryOf('sync_failed');
    // LOCKSTEP_PUBLIC_URL is not set: links point where `lockstep serve` listens.
    expect(delivery.run.url).toBe(`${server.baseUrl}/runs/sync/${started.body.id}`);

    await page.goto(delivery.run.url);
    await page.getByRole('heading', { name: `Sync run #${started.body.id}`, level: 1 }).waitFor();
    expect(await page.getByRole('note').textContent()).toMatch(/Fatal error:.*no_such_table/);
    expect(await page.locator('[data-status]').first().getAttribute('data-status')).toBe('failed');
    await screenshot(page, '12-sync-run-page');

    // The Alerts page links the delivery to the same page.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alerts' }).click();
    const row = page.getByRole('table', { name: 'Alert deliveries' }).locator('tr', { hasText: 'broken-to-crm' }).first();
    await row.getByRole('link', { name: `run #${started.body.id}` }).click();
    await page.getByRole('heading', { name: `Sync run #${started.body.id}`, level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/runs/sync/${started.body.id}`);
    // Back to the sync it belongs to.
    await page.getByRole('link', { name: 'broken-to-crm' }).click();
    await page.getByRole('heading', { name: 'broken-to-crm', level: 1 }).waitFor();
  });

  it('an alert’s link opens the failed sequence run: who terminated it, each member, and a link to each member’s sync run', async () => {
    expect((await server.api('POST', '/api/sequences', { slug: 'breaks', name: 'Breaks early', members: [{ sync: 'broken-to-crm' }, { sync: 'accounts-to-crm' }] })).status).toBe(201);
    expect((await server.api('POST', '/api/alerts/rules', { name: 'breaks-watch', sequences: ['breaks'], on: ['sequence_failed'], channels: ['ops-hook'] })).status).toBe(201);
    const started = await server.api<{ id: string }>('POST', '/api/sequences/breaks/runs');
    const delivery = await deliveryOf('sequence_failed');
    expect(delivery.run.url).toBe(`${server.baseUrl}/runs/sequence/${started.body.id}`);

    await page.goto(delivery.run.url);
    await page.getByRole('heading', { name: 'Run of Breaks early', level: 1 }).waitFor();
    const details = page.getByRole('region', { name: 'Run details' });
    await details.getByText('1 of 2 members ran, 1 skipped').waitFor();
    expect(await details.getByRole('note').textContent()).toMatch(/^Terminated by broken-to-crm: /);
    const members = details.getByRole('table', { name: 'Member runs' });
    expect(await members.getByRole('row', { name: 'accounts-to-crm' }).locator('[data-status]').getAttribute('data-status')).toBe('skipped');
    await screenshot(page, '13-sequence-run-page');
    await members.getByRole('row', { name: 'broken-to-crm' }).getByRole('link', { name: /^Sync run #\d+$/ }).click();
    await page.getByRole('heading', { name: /^Sync run #\d+$/, level: 1 }).waitFor();
    await page.getByRole('link', { name: 'a sequence run' }).click();
    await page.getByRole('heading', { name: 'Run of Breaks early', level: 1 }).waitFor();

    // From the sequence's run history, a run opens over the page, and from there on its own page.
    await page.goto(`${server.baseUrl}/sequences/breaks`);
    await page.getByRole('table', { name: 'Sequence runs' }).getByRole('link', { name: /Open run/ }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Run of Breaks early' });
    await dialog.getByRole('table', { name: 'Member runs' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/sequences/breaks/runs/${started.body.id}`);
    await dialog.getByRole('link', { name: 'Open on its own page' }).click();
    await page.getByRole('heading', { name: 'Run of Breaks early', level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/runs/sequence/${started.body.id}`);
  });

  it('links of earlier alerts (`/syncs/<slug>?run=<id>`) and hash links still open what they name', async () => {
    const { body } = await server.api<{ data: Array<{ id: number }> }>('GET', '/api/syncs/broken-to-crm/runs?limit=1');
    const id = body.data[0]!.id;
    await page.goto(`${server.baseUrl}/syncs/broken-to-crm?run=${id}`);
    await page.getByRole('dialog', { name: `Sync run #${id}` }).getByRole('table', { name: 'Row counts' }).waitFor();
    await page.goto(`${server.baseUrl}/#/runs/sync/${id}`);
    await page.getByRole('heading', { name: `Sync run #${id}`, level: 1 }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/runs/sync/${id}`);
    await page.goto(`${server.baseUrl}/runs/sync/999999`);
    await page.getByRole('region', { name: 'There is no sync run #999999' }).waitFor();
  });

  it('a run of a sync deleted since names the sync by the slug it ran as, marked deleted', async () => {
    expect((await server.api('POST', '/api/syncs', { slug: 'accounts-once', model: 'accounts', destination: 'crm', object: 'accounts', mode: 'upsert' })).status).toBe(201);
    const started = await server.api<{ id: number }>('POST', '/api/syncs/accounts-once/runs');
    await eventually('the run to finish', async () => ((await server.api<{ finishedAt: string | null }>('GET', `/api/sync-runs/${started.body.id}`)).body.finishedAt ? true : undefined));
    expect((await server.api('DELETE', '/api/syncs/accounts-once')).status).toBe(204);
    await page.goto(`${server.baseUrl}/runs/sync/${started.body.id}`);
    await page.getByRole('heading', { name: `Sync run #${started.body.id}`, level: 1 }).waitFor();
    // The heading shows before the run is loaded; the subtitle only once it is.
    await page.locator('.subtitle').waitFor();
    expect(await page.locator('.crumbs').textContent()).toBe(`Syncs / accounts-once (deleted) / run #${started.body.id}`);
    expect(await page.locator('.subtitle').textContent()).toBe('A run of the sync accounts-once, deleted since.');
  });
});

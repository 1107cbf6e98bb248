/**
 * Sequence runs that wait or stop on time, in the web UI against a real `lockstep serve`: a model
 * on PostgreSQL whose query takes seconds (`pg_sleep`) holds its sync busy. A member whose sync is
 * running elsewhere says what it waits for; a run ended by its deadline says so in the sequence's
 * run history.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { createTestDatabase } from '../helpers/postgres.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let server: UiServer;
let browser: Browser;
let page: Page;

interface RunJson {
  id: string;
  status: string;
  reason: string | null;
}

servedForTests({
  ready: async (ui) => {
    ({ server, browser, page } = ui);
    const url = await createTestDatabase('lockstep_ui_waits');
    const created = [
      await server.api('POST', '/api/sources', { slug: 'slow-warehouse', type: 'postgres', url }),
      await server.api('POST', '/api/models', { slug: 'slow-accounts', source: 'slow-warehouse', primaryKey: 'id', query: "select 1 as id, 'Slow' as name from pg_sleep(3)" }),
      await server.api('POST', '/api/syncs', { slug: 'slow-to-crm', model: 'slow-accounts', destination: 'crm', object: 'accounts', mode: 'upsert' }),
      await server.api('POST', '/api/sequences', { slug: 'hurried', name: 'Hurried', deadlineMinutes: 0.02, members: [{ sync: 'slow-to-crm' }, { sync: 'workspaces-to-crm' }] }),
      await server.api('POST', '/api/sequences', { slug: 'patient', name: 'Patient', members: [{ sync: 'slow-to-crm' }, { sync: 'workspaces-to-crm' }] }),
    ];
    expect(created.map((c) => c.status)).toEqual([201, 201, 201, 201, 201]);
  },
});

describe('sequence runs that wait or stop on time, in the web UI', () => {
  it('a run its deadline ended shows the deadline in the run history, not a bare dash', async () => {
    const started = await server.api<RunJson>('POST', '/api/sequences/hurried/runs');
    const failed = await eventually('the run to fail at its deadline', async () => {
      const { body } = await server.api<RunJson>('GET', `/api/sequence-runs/${started.body.id}`);
      return body.status === 'failed' ? body : undefined;
    });
    expect(failed.reason).toMatch(/^sequence "hurried" passed its deadline of 1\.2 seconds; /);
    await page.goto(`${server.baseUrl}/sequences/hurried`);
    const row = page.getByRole('table', { name: 'Sequence runs' }).locator(`tr[data-run="${failed.id}"]`);
    await row.waitFor();
    const cell = row.locator('td').last();
    expect(await cell.textContent()).toBe('sequence "hurried" passed its deadline of 1.2 seconds');
    expect(await cell.locator('span').getAttribute('title')).toBe(failed.reason);
    await screenshot(page, '23-deadline-in-history');
  });

  it('a member whose sync is busy in another run says it waits for it, then runs', async () => {
    expect((await server.api('POST', '/api/syncs/slow-to-crm/runs')).status).toBe(202);
    const started = await server.api<RunJson>('POST', '/api/sequences/patient/runs');
    await page.goto(`${server.baseUrl}/runs/sequence/${started.body.id}`);
    const members = page.getByRole('region', { name: 'Run details' }).getByRole('table', { name: 'Member runs' });
    const waiting = members.getByRole('row', { name: 'slow-to-crm' }).getByText('Waiting for its sync, which is running elsewhere (alone or in another sequence); it starts when that run ends.');
    await waiting.waitFor();
    await screenshot(page, '24-member-waits-for-its-sync');
    await page.getByRole('region', { name: 'Run details' }).locator('dl.facts [data-status="done"]').waitFor({ timeout: 20_000 });
    expect(await waiting.count()).toBe(0);
  });

  it('Run now while a run is under way says the new run is queued behind it, on a sequence and on a sync', async () => {
    const running = await server.api<RunJson>('POST', '/api/sequences/patient/runs');
    await page.goto(`${server.baseUrl}/sequences/patient`);
    const history = page.getByRole('table', { name: 'Sequence runs' });
    await history.locator(`tr[data-run="${running.body.id}"] [data-status="running"]`).waitFor();
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('Run queued: it starts when the run in progress ends.').waitFor();
    // The members still show the run under way, not the one queued behind it.
    await history.locator('tbody tr').first().locator('[data-status="pending"]').waitFor();
    const steps = page.getByRole('list', { name: 'Members in order' });
    expect(await steps.getByRole('listitem', { name: 'slow-to-crm' }).locator('[data-status]').getAttribute('data-status')).toBe('running');
    await screenshot(page, '25-run-now-queued-behind');
    await page.goto(`${server.baseUrl}/sequences`);
    const listed = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'Patient', exact: true }) });
    expect(await listed.locator('.last-run [data-status]').getAttribute('data-status')).toBe('running');

    await page.goto(`${server.baseUrl}/syncs/slow-to-crm`);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('Run queued: it starts when the run in progress ends.').waitFor();
    const ended = await eventually('the queued sequence run to end', async () => {
      const { body } = await server.api<{ data: RunJson[] }>('GET', '/api/sequences/patient/runs?limit=5');
      return body.data.length >= 2 && body.data.every((r) => r.status === 'done') ? body.data : undefined;
    }, 40_000);
    expect(ended.length).toBeGreaterThanOrEqual(2);

    // With nothing under way, Run now starts at once.
    await page.goto(`${server.baseUrl}/syncs/accounts-to-crm`);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByText('Run started.', { exact: true }).waitFor();
  });

  it('a run an after schedule started names, on its page, the run whose end started it', async () => {
    const follower = await server.api('POST', '/api/sequences', {
      slug: 'follower',
      name: 'Follower',
      schedule: { type: 'after', sequence: 'hurried', on: 'any' },
      members: [{ sync: 'accounts-to-crm' }],
    });
    expect(follower.status).toBe(201);
    const upstream = await server.api<RunJson>('POST', '/api/sequences/hurried/runs');
    const followed = await eventually('the after schedule to start its run', async () => {
      const { body } = await server.api<{ data: Array<RunJson & { triggerDetail: string | null }> }>('GET', '/api/sequences/follower/runs?limit=5');
      return body.data[0];
    }, 40_000);
    const ended = await server.api<RunJson>('GET', `/api/sequence-runs/${upstream.body.id}`);
    expect(followed.triggerDetail).toBe(`sequence "hurried" run ${upstream.body.id} ended ${ended.body.status}`);
    await page.goto(`${server.baseUrl}/runs/sequence/${followed.id}`);
    const facts = page.getByRole('region', { name: 'Run details' }).locator('dl.facts');
    await facts.getByText(`after sequence "hurried" run ${upstream.body.id} ended ${ended.body.status}`, { exact: false }).waitFor();
  });

  it('the pages showed no script errors', () => {
    expect(browser.errors).toEqual([]);
  });
});

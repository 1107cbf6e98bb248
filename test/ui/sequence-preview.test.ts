/**
 * Preview on a sequence's page: a dry run shown in a dialog, with each member's counts and sample
 * rows (a changed field as before → after), while nothing is sent and no run is recorded. A real
 * `lockstep serve` on a temp workspace, driven through headless Chromium.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { SequenceRunView } from '../../src/core/run-views.js';
import { sqlite, sqliteRows } from '../helpers/harness.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let dir: string;
let server: UiServer;
let browser: Browser;
let page: Page;

servedForTests({ ready: (ui) => void ({ dir, server, browser, page } = ui) });

const runsOf = async () => (await server.api<{ data: SequenceRunView[] }>('GET', '/api/sequences/crm/runs')).body.data;

describe('sequence Preview', () => {
  it('shows what each member would send, before → after, and sends nothing', async () => {
    const created = await server.api('POST', '/api/sequences', {
      slug: 'crm',
      name: 'CRM hierarchy',
      members: [{ sync: 'accounts-to-crm' }, { sync: 'workspaces-to-crm' }, { sync: 'contacts-to-crm', terminate: 'never' }],
    });
    expect(created.status).toBe(201);
    await server.api('POST', '/api/sequences/crm/runs');
    await eventually('the first run to finish', async () => ((await runsOf())[0]?.status === 'done' ? true : undefined));
    sqlite(join(dir, 'warehouse.db'), "update accounts set name = 'Acme' where id = 2; insert into accounts values (9, 'Newco');");
    const crmBefore = sqliteRows(join(dir, 'crm.db'), 'select * from accounts order by id');

    await page.goto(`${server.baseUrl}/sequences/crm`);
    await page.getByRole('heading', { name: 'CRM hierarchy', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Preview' }).click();
    const dialog = page.getByRole('dialog', { name: 'Preview of CRM hierarchy' });
    await dialog.waitFor();
    const table = dialog.getByRole('table', { name: 'Plan per member' });
    await table.waitFor();
    const cells = async (member: string) => (await table.locator(`tr[data-member="${member}"] td`).allTextContents()).slice(1);
    expect(await cells('accounts-to-crm')).toEqual(['accounts-to-crm', '4', '1', '1', '0', '0', '0']);
    expect(await cells('contacts-to-crm')).toEqual(['contacts-to-crm', '30', '0', '0', '0', '0', '0']);
    const accounts = dialog.getByRole('region', { name: 'Plan of accounts-to-crm' });
    const samples = await accounts.getByRole('table', { name: 'Sample rows of accounts-to-crm' }).textContent();
    expect(samples).toContain('name: "Account 2" → "Acme"');
    expect(samples).toContain('name: "Newco"');
    expect(samples).toContain('not in the destination yet');
    expect(await dialog.getByRole('region', { name: 'Plan of workspaces-to-crm' }).textContent()).toContain('Nothing to send: the destination is up to date.');
    await screenshot(page, '40-sequence-preview');

    // Nothing was sent and no run was recorded.
    expect(sqliteRows(join(dir, 'crm.db'), 'select * from accounts order by id')).toEqual(crmBefore);
    expect(await runsOf()).toHaveLength(1);
    await dialog.getByRole('button', { name: /close/i }).first().click();
    await dialog.waitFor({ state: 'detached' });
    expect(browser.errors).toEqual([]);
  });

  it('shows a member after one whose run would fail as skipped, naming the member it waits for', async () => {
    sqlite(join(dir, 'crm.db'), 'alter table workspaces rename to workspaces_old;');
    try {
      await page.goto(`${server.baseUrl}/sequences/crm`);
      await page.getByRole('button', { name: 'Preview' }).click();
      const dialog = page.getByRole('dialog', { name: 'Preview of CRM hierarchy' });
      const table = dialog.getByRole('table', { name: 'Plan per member' });
      await table.waitFor();
      expect((await table.locator('tr[data-member="contacts-to-crm"] td').allTextContents()).slice(1)).toEqual(['contacts-to-crm', 'Skipped: waits for workspaces-to-crm']);
      expect(await dialog.getByRole('region', { name: 'Plan of workspaces-to-crm' }).textContent()).toContain('The sequence would terminate here.');
      expect(await dialog.getByRole('region', { name: 'Plan of contacts-to-crm' }).textContent()).toContain(
        'A run would skip it: it waits for workspaces-to-crm, whose outcome would terminate the sequence.',
      );
      await dialog.getByRole('button', { name: /close/i }).first().click();
      await dialog.waitFor({ state: 'detached' });
      expect(browser.errors).toEqual([]);
    } finally {
      sqlite(join(dir, 'crm.db'), 'alter table workspaces_old rename to workspaces;');
    }
  });
});

/**
 * From an empty workspace to a sequence that ran, in the web UI alone: a SQLite warehouse with
 * staff, permissions, prospects and assignments, and an app database with the same tables whose
 * permissions and assignments have foreign keys to staff and prospects. The user adds the source,
 * the destination, four models and four syncs (staff first, then the rest), a sequence of them,
 * saves it, runs it and sees it done; the app database then holds every row, and lockstep.yaml was
 * never touched.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { sqlite, sqliteRows, tempDir } from '../helpers/harness.js';
import { type Browser, screenshot, servedForTests, type UiServer } from './ui-harness.js';

const YAML = '# Nothing here: everything is built in the web UI.\n';
const SIZES = { staff: 6, permissions: 15, prospects: 20, assignments: 30 };

let dir: string;
let server: UiServer;
let browser: Browser;
let page: Page;

function createDatabases(): void {
  const rows: string[] = [];
  for (let s = 1; s <= SIZES.staff; s++) rows.push(`insert into staff values (${s}, 'Staff ${s}', 'staff${s}@example.com');`);
  for (let p = 1; p <= SIZES.permissions; p++) rows.push(`insert into permissions values (${p}, ${((p - 1) % SIZES.staff) + 1}, 'permission-${p}');`);
  for (let p = 1; p <= SIZES.prospects; p++) rows.push(`insert into prospects values (${p}, 'Company ${p}', 'lead${p}@example.com');`);
  for (let a = 1; a <= SIZES.assignments; a++) rows.push(`insert into assignments values (${a}, ${((a - 1) % SIZES.staff) + 1}, ${((a - 1) % SIZES.prospects) + 1});`);
  sqlite(
    join(dir, 'warehouse.db'),
    `create table staff (id integer primary key, name text, email text);
     create table permissions (id integer primary key, staff_id integer, permission text);
     create table prospects (id integer primary key, company text, email text);
     create table assignments (id integer primary key, staff_id integer, prospect_id integer);
     begin; ${rows.join('\n')} commit;`,
  );
  // The app names a prospect's email `email_address`: that sync needs a mapping.
  sqlite(
    join(dir, 'app.db'),
    `create table staff (id integer primary key, name text not null, email text);
     create table permissions (id integer primary key, staff_id integer not null references staff(id), permission text);
     create table prospects (id integer primary key, company text not null, email_address text);
     create table assignments (id integer primary key, staff_id integer not null references staff(id), prospect_id integer not null references prospects(id));`,
  );
}

servedForTests({
  workspace: async () => {
    dir = tempDir('lockstep-ui-e2e-');
    createDatabases();
    writeFileSync(join(dir, 'lockstep.yaml'), YAML);
    return dir;
  },
  ready: (ui) => {
    ({ server, browser, page } = ui);
    // A slow machine: every step waits for the server, never for the clock.
    page.setDefaultTimeout(20_000);
  },
});

const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();

/** Opens a list page from the navigation and its "Add …" form. */
async function openAdd(section: string, add: string): Promise<void> {
  await nav(section);
  await page.getByRole('heading', { name: section, level: 1 }).waitFor();
  await page.getByRole('link', { name: add }).first().click();
  await page.getByRole('heading', { name: add, level: 1 }).waitFor();
}

async function addModel(slug: string, query: string): Promise<void> {
  await openAdd('Models', 'Add model');
  await page.getByLabel('Slug').fill(slug);
  await page.getByLabel('Source').selectOption('warehouse');
  await page.getByLabel('Query', { exact: true }).fill(query);
  await page.getByLabel('Primary key').fill('id');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.getByRole('region', { name: 'Query preview' }).getByRole('status').filter({ hasText: /Primary key id: no nulls and no duplicates/ }).waitFor();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: `Edit ${slug}`, level: 1 }).waitFor();
}

async function addSync(model: string, mappings: Array<[string, string]> = []): Promise<void> {
  await openAdd('Syncs', 'Add sync');
  await page.getByLabel('Slug').fill(`${model}-to-app`);
  await page.getByLabel('Model', { exact: true }).selectOption(model);
  await page.getByText(/^Columns: /).waitFor();
  await page.getByLabel('Destination', { exact: true }).selectOption('app');
  await page.getByLabel('Object', { exact: true }).fill(model);
  for (const [index, [from, to]] of mappings.entries()) {
    await page.getByRole('button', { name: 'Add mapping' }).click();
    await page.getByLabel(`Model column ${index + 1}`).selectOption(from);
    // The field list comes from the app's table.
    await page.getByLabel(`Destination field ${index + 1}`).locator(`option[value="${to}"]`).waitFor({ state: 'attached' });
    await page.getByLabel(`Destination field ${index + 1}`).selectOption(to);
  }
  // Every column reaches a field the table has.
  await page.getByRole('alert').filter({ hasText: /has no field/ }).waitFor({ state: 'detached' });
  await page.getByLabel('Mode', { exact: true }).selectOption('upsert');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: `${model}-to-app`, level: 1 }).waitFor();
}

describe('end to end in the web UI', () => {
  it('builds the source, the destination, four models, four syncs and a sequence, runs it and sees it done, without touching YAML', async () => {
    await page.goto(`${server.baseUrl}/`);
    await page.getByRole('heading', { name: 'Sequences', level: 1 }).waitFor();

    await openAdd('Sources', 'Add source');
    await page.getByLabel('Slug').fill('warehouse');
    await page.getByLabel('Kind').selectOption('sqlite');
    await page.getByLabel('Path', { exact: true }).fill('warehouse.db');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('status').filter({ hasText: 'Connection works.' }).waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('table', { name: 'Sources' }).getByRole('link', { name: 'warehouse' }).waitFor();

    await openAdd('Destinations', 'Add destination');
    await page.getByLabel('Slug').fill('app');
    await page.getByLabel('Kind').selectOption('sqlite');
    await page.getByLabel('Path', { exact: true }).fill('app.db');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('status').filter({ hasText: 'Connection works.' }).waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('table', { name: 'Destinations' }).getByRole('link', { name: 'app' }).waitFor();

    await addModel('staff', 'select id, name, email from staff');
    await addModel('permissions', 'select id, staff_id, permission from permissions');
    await addModel('prospects', 'select id, company, email from prospects');
    await addModel('assignments', 'select id, staff_id, prospect_id from assignments');

    await addSync('staff');
    await addSync('permissions');
    await addSync('prospects', [['email', 'email_address']]);
    await addSync('assignments');
    await nav('Syncs');
    await page.getByRole('link', { name: 'assignments-to-app' }).waitFor();
    await screenshot(page, '30-e2e-syncs');

    // The sequence: staff first, then the rest, in the order picked.
    await nav('Sequences');
    await page.getByRole('link', { name: 'Add sequence' }).first().click();
    for (const sync of ['staff-to-app', 'permissions-to-app', 'prospects-to-app', 'assignments-to-app']) await page.getByLabel(sync).check();
    await page.getByRole('button', { name: 'Next' }).click();
    const order = await page.locator('.member-list > li').evaluateAll((items) => items.map((li) => li.getAttribute('aria-label')));
    expect(order).toEqual(['staff-to-app', 'permissions-to-app', 'prospects-to-app', 'assignments-to-app']);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Name', { exact: true }).fill('App directory');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'App directory', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'Run now' }).click();
    const runs = page.getByRole('table', { name: 'Sequence runs' });
    await runs.locator('tbody tr').first().locator('[data-status="done"]').waitFor({ timeout: 90_000 });
    expect(await runs.locator('tbody tr').first().textContent()).toContain('4 of 4 members ran');
    await runs.getByRole('link', { name: /Open run/ }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Run of App directory' });
    const members = dialog.getByRole('table', { name: 'Member runs' });
    await members.waitFor();
    for (const [model, count] of Object.entries(SIZES)) {
      const row = members.getByRole('row', { name: `${model}-to-app` });
      expect(await row.locator('[data-status]').getAttribute('data-status')).toBe('success');
      expect(await row.locator('td.num').first().textContent()).toBe(String(count));
    }
    await screenshot(page, '31-e2e-sequence-run');

    for (const [table, count] of Object.entries(SIZES)) {
      expect(sqliteRows<{ n: number }>(join(dir, 'app.db'), `select count(*) as n from ${table}`)[0]!.n).toBe(count);
    }
    expect(sqliteRows<{ email_address: string }>(join(dir, 'app.db'), 'select email_address from prospects where id = 1')[0]!.email_address).toBe('lead1@example.com');
    expect(readFileSync(join(dir, 'lockstep.yaml'), 'utf8')).toBe(YAML);
    expect(browser.errors).toEqual([]);
  }, 10 * 60_000);
});

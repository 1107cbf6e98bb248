/**
 * The pages of sources, destinations, models and syncs, driven through Chromium as a user would:
 * forms generated from each connector kind's settings, Test connection, secrets that never come
 * back into a form, a model's preview with its primary key checked, a sync's field mappings picked
 * from the model's columns and the table's fields, and the server's messages beside their fields.
 * One server on a workspace with nothing in it yet but two SQLite files and a PostgreSQL database.
 */
import { writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { sqlite, tempDir } from '../helpers/harness.js';
import { createTestDatabase, refusesWrongPassword } from '../helpers/postgres.js';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let server: UiServer;
let browser: Browser;
let page: Page;
let pgUrl: string;
let pgPassword: string;
let dir: string;

servedForTests({ workspace: makeWorkspace, ready: (ui) => void ({ server, browser, page } = ui) });

async function makeWorkspace(): Promise<string> {
  dir = tempDir('lockstep-ui-entities-');
  sqlite(
    join(dir, 'warehouse.db'),
    `create table accounts (id integer primary key, name text);
     insert into accounts values (1, 'Acme'), (2, 'Globex'), (3, 'Initech');
     create table people (id integer, email text);
     insert into people values (1, 'a@example.com'), (2, 'b@example.com'), (2, 'c@example.com'), (null, 'd@example.com');`,
  );
  sqlite(join(dir, 'app.db'), `pragma journal_mode = wal; create table accounts (id integer primary key, full_name text not null);`);
  writeFileSync(join(dir, 'lockstep.yaml'), '# Everything is added in the web UI.\n');
  pgUrl = await createTestDatabase('ui');
  pgPassword = decodeURIComponent(new URL(pgUrl).password);
  return dir;
}

const go = (path: string) => page.goto(`${server.baseUrl}${path}`);
const nav = () => page.getByRole('navigation', { name: 'Main' });
/** The `.field` around the control labelled `label`. */
const fieldOf = (label: string) => page.getByLabel(label, { exact: true }).locator('xpath=ancestor::div[contains(@class, "field")][1]');

describe('sources', () => {
  it('adds a SQLite source from its kind’s generated form, says what is missing, and tests the connection', async () => {
    await go('/');
    await nav().getByRole('link', { name: 'Sources' }).click();
    await page.getByRole('heading', { name: 'Sources', level: 1 }).waitFor();
    await page.getByRole('region', { name: 'No sources yet' }).getByRole('link', { name: 'Add source' }).click();
    await page.getByRole('heading', { name: 'Add source', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'Save' }).click();
    expect(await fieldOf('Slug').locator('.field-error').textContent()).toBe('Enter a slug.');
    expect(await fieldOf('Kind').locator('.field-error').textContent()).toBe('Choose the kind of source.');

    await page.getByLabel('Slug').fill('warehouse');
    // The kinds that can be sources, from the server's registry.
    const kinds = await page.getByLabel('Kind').locator('option').allTextContents();
    expect(kinds).toEqual(['Choose…', 'postgres', 'mysql', 'sqlite', 'duckdb']);
    await page.getByLabel('Kind').selectOption('sqlite');
    await page.getByLabel('Path', { exact: true }).fill('nowhere.db');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('alert').filter({ hasText: 'Connection failed:' }).waitFor();
    expect(await page.getByRole('alert').filter({ hasText: 'Connection failed:' }).textContent()).toContain('nowhere.db');

    await page.getByLabel('Path', { exact: true }).fill('warehouse.db');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('status').filter({ hasText: 'Connection works.' }).waitFor();
    await screenshot(page, '20-source-form');
    await page.getByRole('button', { name: 'Save' }).click();

    const row = page.getByRole('table', { name: 'Sources' }).getByRole('row', { name: /warehouse/ });
    await row.waitFor();
    expect(await row.textContent()).toContain('sqlite');
    const { body } = await server.api<{ type: string; path: string; origin: string }>('GET', '/api/sources/warehouse');
    expect(body).toMatchObject({ type: 'sqlite', path: 'warehouse.db', origin: 'api' });
  });
});

describe('destinations', () => {
  it('shows the server’s message beside the field it is about', async () => {
    await go('/destinations/new');
    await page.getByLabel('Slug').fill('crm-pg');
    await page.getByLabel('Kind').selectOption('postgres');
    expect(await page.getByLabel('URL', { exact: true }).getAttribute('type')).toBe('password');
    await page.getByLabel('URL', { exact: true }).fill('mysql://somewhere/crm');
    await page.getByRole('button', { name: 'Save' }).click();
    await fieldOf('URL').locator('.field-error').waitFor();
    expect(await fieldOf('URL').locator('.field-error').textContent()).toMatch(/postgres/);
    expect(await page.getByLabel('URL', { exact: true }).getAttribute('aria-invalid')).toBe('true');
  });

  it('keeps a secret write-only: Test connection with it, save it, and it never comes back into the form; untouched it is kept, and a wrong one fails without being shown', async () => {
    await page.getByLabel('URL', { exact: true }).fill(pgUrl);
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('status').filter({ hasText: 'Connection works.' }).waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('table', { name: 'Destinations' }).getByRole('row', { name: /crm-pg/ }).waitFor();

    await page.getByRole('link', { name: 'crm-pg' }).click();
    await page.getByRole('heading', { name: 'Edit crm-pg', level: 1 }).waitFor();
    const url = page.getByLabel('URL', { exact: true });
    if (pgPassword) {
      expect(await url.inputValue()).toBe('');
      expect(await url.getAttribute('placeholder')).toBe('unchanged');
      expect(await page.content()).not.toContain(pgPassword);
    } else {
      // A server given by TEST_DATABASE_URL may need no password: a URL without one holds no secret,
      // and the form shows it as saved.
      expect(await url.inputValue()).toBe(pgUrl);
    }
    await screenshot(page, '21-destination-secret-unchanged');

    // Untouched, the stored secret is the one tested and the one kept.
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('status').filter({ hasText: 'Connection works.' }).waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('table', { name: 'Destinations' }).waitFor();
    await go('/destinations/crm-pg');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByRole('status').filter({ hasText: 'Connection works.' }).waitFor();

    // A wrong password typed in: the test fails with PostgreSQL's reason, and the password is not in
    // it (unless the server accepts any password).
    if (!(await refusesWrongPassword(pgUrl))) return;
    const wrong = new URL(pgUrl);
    wrong.password = 'Wr0ng-Pa55word';
    await url.fill(wrong.toString());
    await page.getByRole('button', { name: 'Test connection' }).click();
    const failed = page.getByRole('alert').filter({ hasText: 'Connection failed:' });
    await failed.waitFor();
    expect(await failed.textContent()).toMatch(/password|authentication/i);
    expect(await failed.textContent()).not.toContain('Wr0ng-Pa55word');
  });

  it('adds a SQLite destination and deletes the PostgreSQL one', async () => {
    await go('/destinations/new');
    await page.getByLabel('Slug').fill('app');
    await page.getByLabel('Kind').selectOption('sqlite');
    await page.getByLabel('Path', { exact: true }).fill('app.db');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('table', { name: 'Destinations' }).getByRole('row', { name: /app/ }).waitFor();

    await page.getByRole('link', { name: 'crm-pg' }).click();
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete destination' }).click();
    await page.getByRole('table', { name: 'Destinations' }).waitFor();
    await eventually('crm-pg to leave the list', async () => ((await page.getByRole('link', { name: 'crm-pg' }).count()) === 0 ? true : undefined));
    expect((await server.api('GET', '/api/destinations/crm-pg')).status).toBe(404);
  });
});

describe('models', () => {
  it('previews the first rows and calls out null and duplicated keys; a bad query’s error sits at the query', async () => {
    await nav().getByRole('link', { name: 'Models' }).click();
    await page.getByRole('region', { name: 'No models yet' }).getByRole('link', { name: 'Add model' }).click();
    await page.getByLabel('Slug').fill('people');
    expect(await page.getByLabel('Source').inputValue()).toBe('warehouse');
    await page.getByLabel('Query', { exact: true }).fill('select nope from people');
    await page.getByLabel('Primary key').fill('id');
    await page.getByRole('button', { name: 'Preview' }).click();
    await fieldOf('Query').locator('.field-error').waitFor();
    expect(await fieldOf('Query').locator('.field-error').textContent()).toMatch(/nope/);

    await page.getByLabel('Query', { exact: true }).fill('select id, email from people');
    await page.getByRole('button', { name: 'Preview' }).click();
    const preview = page.getByRole('region', { name: 'Query preview' });
    await preview.getByRole('table', { name: 'Preview rows' }).waitFor();
    expect(await preview.getByRole('table', { name: 'Preview rows' }).locator('tbody tr').count()).toBe(4);
    expect(await preview.getByRole('alert').textContent()).toBe(
      'Primary key id: 1 row has a null key, 1 row repeats a key (e.g. 2) in all 4 rows. Such rows are rejected without being sent.',
    );
    await screenshot(page, '22-model-preview-key-problems');
  });

  it('a clean key says so, and the model is saved', async () => {
    await page.getByLabel('Slug').fill('accounts');
    await page.getByLabel('Query', { exact: true }).fill('select id, name from accounts');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByRole('region', { name: 'Query preview' }).getByRole('status').filter({ hasText: 'Primary key id: no nulls and no duplicates in all 3 rows.' }).waitFor();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'Edit accounts', level: 1 }).waitFor();
    expect((await server.api<{ primaryKey: string[] }>('GET', '/api/models/accounts')).body.primaryKey).toEqual(['id']);
  });

  it('saving a model keeps what its form does not edit: its cursor and how often it compares in full', async () => {
    const plain = { source: 'warehouse', query: 'select id, name from accounts', primaryKey: 'id' };
    expect((await server.api('PUT', '/api/models/accounts', { ...plain, cursor: 'id', fullCompareEvery: 6 })).status).toBe(200);
    await page.reload();
    await page.getByRole('heading', { name: 'Edit accounts', level: 1 }).waitFor();
    await page.getByLabel('Query', { exact: true }).fill('select id, name from accounts where id > 0');
    await page.getByRole('button', { name: 'Save' }).click();
    const saved = await eventually('the model saved with its new query', async () => {
      const { body } = await server.api<{ query: string }>('GET', '/api/models/accounts');
      return body.query.endsWith('where id > 0') ? body : undefined;
    });
    expect(saved).toMatchObject({ cursor: 'id', fullCompareEvery: 6 });
    expect((await server.api('PUT', '/api/models/accounts', plain)).status).toBe(200);
  });
});

describe('syncs', () => {
  it('builds a sync from pickers: the table from the destination, a mapping from the model’s columns to the table’s fields', async () => {
    await nav().getByRole('link', { name: 'Syncs' }).click();
    await page.getByRole('region', { name: 'No syncs yet' }).getByRole('link', { name: 'Add sync' }).click();
    await page.getByRole('heading', { name: 'Add sync', level: 1 }).waitFor();
    await page.getByLabel('Slug').fill('accounts-to-app');
    await page.getByLabel('Model', { exact: true }).selectOption('accounts');
    await page.getByText('Columns: id, name').waitFor();
    await page.getByLabel('Destination', { exact: true }).selectOption('app');

    // An object the destination does not have is named at the field, with the tables it has.
    await page.getByLabel('Object', { exact: true }).fill('acounts');
    await fieldOf('Object').locator('.field-error').waitFor();
    expect(await fieldOf('Object').locator('.field-error').textContent()).toMatch(/table "acounts" does not exist.*accounts/);
    expect(await page.locator(`datalist#${await page.getByLabel('Object', { exact: true }).getAttribute('list')} option`).evaluateAll((o) => o.map((e) => (e as HTMLOptionElement).value))).toEqual(['accounts']);

    await page.getByLabel('Object', { exact: true }).fill('accounts');
    // `name` has no field of that name in the table: the form says so before the run would.
    const unmatched = page.getByRole('alert').filter({ hasText: 'accounts has no field name' });
    await unmatched.waitFor();
    await page.getByRole('button', { name: 'Add mapping' }).click();
    expect(await page.getByLabel('Model column 1').locator('option').allTextContents()).toEqual(['Choose…', 'id', 'name']);
    expect(await page.getByLabel('Model column 1').inputValue()).toBe('name');
    expect(await page.getByLabel('Destination field 1').locator('option').allTextContents()).toEqual(['Choose…', 'id', 'full_name']);
    await page.getByLabel('Destination field 1').selectOption('full_name');
    await unmatched.waitFor({ state: 'detached' });
    await screenshot(page, '23-sync-form-mappings');
    await page.getByRole('button', { name: 'Save' }).click();

    await page.getByRole('heading', { name: 'accounts-to-app', level: 1 }).waitFor();
    expect(await page.getByText('Mappings: name → full_name').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.getByRole('table', { name: 'Sync runs' }).locator('[data-status="success"]').waitFor({ timeout: 30_000 });
    expect(await page.getByRole('table', { name: 'Sync runs' }).locator('[data-count="added-successful"]').first().textContent()).toBe('3');
  });

  it('a running run shows how long it has run so far, ticking, never "0 ms"', async () => {
    // The app's database is locked by another writer: the run waits in its delivery.
    const lock = new Database(join(dir, 'app.db'));
    lock.exec('begin immediate');
    try {
      await page.getByText('More', { exact: true }).click();
      await page.getByRole('button', { name: 'Full resync' }).click();
      const row = page.getByRole('table', { name: 'Sync runs' }).locator('tbody tr').first();
      await row.locator('[data-status="querying"], [data-status="processing"]').waitFor({ timeout: 30_000 });
      const duration = row.locator('td').nth(3);
      const seen = new Set<string>();
      await eventually('two different elapsed times', async () => {
        const text = (await duration.textContent()) ?? '';
        expect(text).not.toBe('0 ms');
        if (/^\d+(\.\d)? s$/.test(text)) seen.add(text);
        return seen.size >= 2 ? true : undefined;
      }, 20_000, 100);
    } finally {
      lock.exec('rollback');
      lock.close();
    }
    await page.getByRole('table', { name: 'Sync runs' }).locator('tbody tr').first().locator('[data-status="success"]').waitFor({ timeout: 60_000 });
  });

  it('saving a sync keeps what its form does not edit: its mass-delete guard, also when it is off', async () => {
    for (const [maxDeletePercent, batchSize] of [[80, 500], [null, 400]] as const) {
      const { body: sync } = await server.api<Record<string, unknown>>('GET', '/api/syncs/accounts-to-app');
      expect((await server.api('PUT', '/api/syncs/accounts-to-app', { ...sync, maxDeletePercent })).status).toBe(200);
      await go('/syncs/accounts-to-app/edit');
      await page.getByRole('heading', { name: 'Edit accounts-to-app', level: 1 }).waitFor();
      await page.getByLabel('Rows per batch').fill(String(batchSize));
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('heading', { name: 'accounts-to-app', level: 1, exact: true }).waitFor();
      expect((await server.api('GET', '/api/syncs/accounts-to-app')).body).toMatchObject({ batchSize, maxDeletePercent });
    }
  });

  it('edits the sync (mode and schedule, with the server’s messages at their fields) and deletes it', async () => {
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: 'Edit accounts-to-app', level: 1 }).waitFor();
    expect(await page.getByLabel('Destination field 1').inputValue()).toBe('full_name');
    await page.getByLabel('Mode', { exact: true }).selectOption('mirror');
    await page.getByLabel('Schedule type').selectOption('cron');
    await page.getByLabel('Cron expression').fill('61 * * * *');
    await page.getByRole('button', { name: 'Save' }).click();
    await fieldOf('Cron expression').locator('.field-error').waitFor();
    expect(await fieldOf('Cron expression').locator('.field-error').textContent()).toMatch(/61|minute/i);
    await page.getByLabel('Cron expression').fill('0 * * * *');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'accounts-to-app', level: 1, exact: true }).waitFor();
    expect(await page.locator('.subtitle').textContent()).toContain('mirror');
    expect(await page.locator('.subtitle').textContent()).toContain('Cron 0 * * * *');

    await page.getByRole('link', { name: 'Edit' }).click();
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete sync' }).click();
    await page.getByRole('region', { name: 'No syncs yet' }).waitFor();
    expect((await server.api('GET', '/api/syncs/accounts-to-app')).status).toBe(404);
  });

  it('the pages showed no script errors', () => {
    // Requests refused on purpose (422 at fields) are logged by Chromium as resource errors.
    expect(browser.errors.filter((e) => !/status of 4\d\d/.test(e))).toEqual([]);
  });
});

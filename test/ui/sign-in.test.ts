/**
 * The sign-in screen of a server that needs tokens: a refused token says so, a good one opens the
 * Sequences page (and its live updates, which take the token in the query string), and a token
 * revoked while the page is open sends the user back to sign in.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli/cli-helpers.js';
import { type Browser, createToken, screenshot, servedForTests, type UiServer, uiWorkspace } from './ui-harness.js';

let dir: string;
let server: UiServer;
let browser: Browser;
let token: string;

servedForTests({
  auth: true,
  workspace: async () => {
    const made = await uiWorkspace();
    token = await createToken(made, 'ui-test');
    return made;
  },
  ready: (ui) => void ({ dir, server, browser } = ui),
});

describe('signing in', () => {
  it('asks for a token, refuses a wrong one, and opens the workspace with a good one', async () => {
    const { page } = browser;
    await page.goto(`${server.baseUrl}/#/syncs`);
    await page.getByRole('heading', { name: 'Sign in to Lockstep' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);

    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'That token was not accepted' }).waitFor();
    await screenshot(page, '00-sign-in');

    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Syncs', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'accounts-to-crm' }).waitFor();
    // Live updates connect with the token too.
    await page.locator('.live-live').waitFor();
    expect(await page.evaluate(() => window.localStorage.getItem('lockstep.token'))).toBe(token);
  });

  it('a revoked token sends the user back to the sign-in screen', async () => {
    const { page } = browser;
    const revoked = await runCli(['--workspace', dir, 'token', 'revoke', 'ui-test'], { cwd: dir });
    expect(revoked.code).toBe(0);
    await page.getByRole('link', { name: 'Sequences', exact: true }).click();
    await page.getByRole('heading', { name: 'Sign in to Lockstep' }).waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('refused the token');
    expect(await page.evaluate(() => window.localStorage.getItem('lockstep.token'))).toBeNull();
  });
});

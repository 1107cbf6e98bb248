/**
 * Resume and run limits in the web UI against a real `lockstep serve`: the sequence form edits a
 * member's timeout and the sequence's deadline (a bad value is refused at its field, and what it
 * does not show is kept), and a failed sequence run's page offers Resume, which opens the new run:
 * it says which run it resumes, shows the carried-over member as such, and runs the rest to done.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { type Browser, eventually, screenshot, servedForTests, type UiServer } from './ui-harness.js';

let server: UiServer;
let browser: Browser;
let page: Page;

interface SequenceJson {
  concurrency: number;
  deadlineMinutes?: number;
  members: Array<{ key: string; timeoutMinutes?: number }>;
}
interface RunJson {
  id: string;
  status: string;
}

const brokenSync = (object: string) => ({ slug: 'broken-to-crm', model: 'accounts', destination: 'crm', object, mode: 'upsert' });

servedForTests({
  ready: async (ui) => {
    ({ server, browser, page } = ui);
    expect((await server.api('POST', '/api/syncs', brokenSync('missing_table'))).status).toBe(201);
    const created = await server.api('POST', '/api/sequences', {
      slug: 'fixable',
      name: 'Fixable',
      // A line, whose concurrency the form does not show: an edit keeps it.
      concurrency: 2,
      members: [{ sync: 'accounts-to-crm' }, { sync: 'broken-to-crm', timeoutMinutes: 5 }],
    });
    expect(created.status).toBe(201);
  },
});

describe('resume and limits in the web UI', () => {
  it('the sequence form edits a member’s timeout and the deadline; a bad value is refused at its field', async () => {
    await page.goto(`${server.baseUrl}/sequences/fixable/edit`);
    await page.getByRole('heading', { name: 'Edit Fixable' }).waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    const broken = page.getByRole('listitem', { name: 'broken-to-crm' });
    expect(await broken.getByLabel('Timeout (minutes)').inputValue()).toBe('5');
    expect(await page.getByRole('listitem', { name: 'accounts-to-crm' }).getByLabel('Timeout (minutes)').inputValue()).toBe('');
    await broken.getByLabel('Timeout (minutes)').fill('-2');
    await page.getByRole('button', { name: 'Next' }).click();
    const timeoutField = broken.getByLabel('Timeout (minutes)').locator('xpath=..');
    expect(await timeoutField.locator('.field-error').textContent()).toBe('Enter minutes (more than 0, at most 10080), or leave it empty for no limit.');
    expect(await broken.getByLabel('Timeout (minutes)').getAttribute('aria-invalid')).toBe('true');
    await broken.getByLabel('Timeout (minutes)').fill('10');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Deadline (minutes)').fill('45');
    await screenshot(page, '20-wizard-deadline');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'Fixable', level: 1, exact: true }).waitFor();
    const stored = (await server.api<SequenceJson>('GET', '/api/sequences/fixable')).body;
    expect(stored.deadlineMinutes).toBe(45);
    expect(stored.members.map((m) => m.timeoutMinutes)).toEqual([undefined, 10]);
    expect(stored.concurrency).toBe(2);
  });

  it('a failed run offers Resume: the new run says what it resumes, carries the finished member over and runs the rest', async () => {
    const started = await server.api<RunJson>('POST', '/api/sequences/fixable/runs');
    const failed = await eventually('the run to fail', async () => {
      const { body } = await server.api<RunJson>('GET', `/api/sequence-runs/${started.body.id}`);
      return body.status === 'failed' ? body : undefined;
    });
    await page.goto(`${server.baseUrl}/runs/sequence/${failed.id}`);
    const details = page.getByRole('region', { name: 'Run details' });
    const resume = details.getByRole('button', { name: 'Resume' });
    await resume.waitFor();
    await screenshot(page, '21-failed-run-resume');

    // The sync is fixed (the sequence's members are as they were), then the run resumed.
    expect((await server.api('PUT', '/api/syncs/broken-to-crm', brokenSync('accounts'))).status).toBe(200);
    await resume.click();
    await page.waitForURL((url) => url.pathname.startsWith('/runs/sequence/') && !url.pathname.endsWith(failed.id));
    const resumedId = new URL(page.url()).pathname.split('/').pop()!;
    const resumedDetails = page.getByRole('region', { name: 'Run details' });
    await resumedDetails.locator('dl.facts [data-status="done"]').waitFor({ timeout: 30_000 });
    const link = resumedDetails.getByRole('link', { name: `run ${failed.id.slice(0, 8)}` });
    expect(await link.getAttribute('href')).toBe(`/runs/sequence/${failed.id}`);
    const members = resumedDetails.getByRole('table', { name: 'Member runs' });
    const accounts = members.getByRole('row', { name: 'accounts-to-crm' });
    await accounts.getByText('Carried over: it finished in the run this one resumes.').waitFor();
    expect(await members.getByRole('row', { name: 'broken-to-crm' }).getByText(/Carried over/).count()).toBe(0);
    expect(await resumedDetails.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    // The carried-over member did not run again, and the counts say so, here and in the history.
    await resumedDetails.getByText('1 of 2 members ran, 1 carried over').waitFor();
    await screenshot(page, '22-resumed-run');
    expect((await server.api<{ resumedFrom: string }>('GET', `/api/sequence-runs/${resumedId}`)).body.resumedFrom).toBe(failed.id);

    await page.goto(`${server.baseUrl}/sequences/fixable`);
    const history = page.getByRole('table', { name: 'Sequence runs' });
    expect(await history.locator(`tr[data-run="${resumedId}"]`).textContent()).toContain('1 of 2 members ran, 1 carried over');
    await page.goto(`${server.baseUrl}/runs/sequence/${resumedId}`);

    // Back on the failed run: it is resumed once, so it offers no second Resume and links to the run that resumed it.
    await link.click();
    const failedDetails = page.getByRole('region', { name: 'Run details' });
    await failedDetails.getByRole('link', { name: `run ${resumedId.slice(0, 8)}` }).waitFor();
    expect(await failedDetails.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    expect((await server.api<{ resumedBy: string | null }>('GET', `/api/sequence-runs/${failed.id}`)).body.resumedBy).toBe(resumedId);
    expect((await server.api<{ resumedBy: string | null }>('GET', `/api/sequence-runs/${resumedId}`)).body.resumedBy).toBeNull();
    // The API still refuses a second resume, with the server's reason.
    const again = await server.api<{ message?: string; error?: string }>('POST', `/api/sequence-runs/${failed.id}/resume`);
    expect(again.status).toBe(409);
    expect(JSON.stringify(again.body)).toContain(`was already resumed by run ${resumedId} (done)`);
    await failedDetails.getByRole('link', { name: `run ${resumedId.slice(0, 8)}` }).click();
    await page.waitForURL(`**/runs/sequence/${resumedId}`);
  });

  it('the pages showed no script errors', () => {
    expect(browser.errors).toEqual([]);
  });
});

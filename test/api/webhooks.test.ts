/**
 * dbt Cloud and Fivetran deliveries posted to a running `lockstep serve` (real HTTP on loopback),
 * with correct and incorrect signatures: the right runs start, or none, and every delivery is in
 * the log with why.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/ports.js';
import { generateToken, hashToken } from '../../src/core/tokens.js';
import type { WorkspaceDefinition } from '../../src/core/workspace.js';
import { hierarchyWorkspace, member, sequence, sync } from '../helpers/definitions.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';

const DBT_SECRET = 'whsec-dbt-0123456789';
const FIVETRAN_SECRET = 'whsec-fivetran-9876543210';

async function serve(env: Record<string, string> = {}, options: { logger?: Logger; webhooks?: WorkspaceDefinition['webhooks'] } = {}) {
  const dir = tempDir('lockstep-webhooks-');
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    env: { DBT_SECRET, FIVETRAN_SECRET, ...env },
    logger: options.logger,
    definition: {
      ...hierarchyWorkspace(['accounts', 'workspaces'], {
        syncs: [
          sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', schedule: { type: 'fivetran', connectorId: 'warehouse_pg' } }),
          sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
        ],
        sequences: [
          sequence('nightly', [member('accounts'), member('workspaces')], { schedule: { type: 'dbt_cloud', accountId: '43', jobId: '101' } }),
          sequence('paused', [member('accounts')], { schedule: { type: 'dbt_cloud', accountId: '43', jobId: '202' }, enabled: false }),
        ],
      }),
      webhooks: options.webhooks ?? { dbtCloud: { secret: '${DBT_SECRET}' }, fivetran: { secret: '${FIVETRAN_SECRET}' } },
    },
  });
  const token = generateToken();
  await h.app.store.tokens.create('test', hashToken(token), h.app.clock.now());
  const { url } = await h.app.startServer({ port: 0, host: '127.0.0.1', authRequired: true, uiDir: null });
  const post = async (path: string, body: string, headers: Record<string, string>) => {
    const started = performance.now();
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: res.status, body: (await res.json()) as { outcome: string; message: string; runs: Array<{ runId: string }> }, ms: performance.now() - started };
  };
  const page = async () => {
    const res = await fetch(`${url}/api/webhook-events?limit=100`, { headers: { authorization: `Bearer ${token}` } });
    return (await res.json()) as {
      data: Array<{ outcome: string; reason: string; httpStatus: number }>;
      refusals: Array<{ source: string; reason: string; httpStatus: number; count: number }>;
      retention: { refusedKept: number; retentionDays: number };
    };
  };
  const events = async () => (await page()).data;
  return { h, post, events, page };
}

const sign = (secret: string, body: string) => createHmac('sha256', secret).update(body).digest('hex');

function dbtEvent(eventId: string, jobId: string, runStatusCode = 10, eventType = 'job.run.completed') {
  return JSON.stringify({
    accountId: 43,
    webhookId: 'wsu_abc',
    eventId,
    timestamp: '2026-11-21T02:00:00.000Z',
    eventType,
    webhookName: 'lockstep',
    data: { jobId, jobName: 'nightly build', runId: '9001', environmentId: '1', runStatus: runStatusCode === 10 ? 'Success' : 'Errored', runStatusCode, runStatusMessage: 'None' },
  });
}

describe('webhook endpoints', () => {
  it('dbt Cloud: a signed successful job run starts its sequence within the 10-second limit; forged, replayed, other and unknown ones do not', async () => {
    const { h, post, events } = await serve();
    await using _ = h;
    const body = dbtEvent('wev_1', '101');
    const ok = await post('/api/v1/webhooks/dbt-cloud', body, { authorization: sign(DBT_SECRET, body) });
    expect(ok.status).toBe(200);
    expect(ok.body.outcome).toBe('accepted');
    expect(ok.ms).toBeLessThan(10_000);
    const run = await h.app.runs.waitForSequenceRun(ok.body.runs[0]!.runId);
    expect(run.status).toBe('done');

    const replay = await post('/api/v1/webhooks/dbt-cloud', body, { authorization: sign(DBT_SECRET, body) });
    expect(replay.body.outcome).toBe('duplicate');
    const forged = await post('/api/v1/webhooks/dbt-cloud', dbtEvent('wev_2', '101'), { authorization: sign('not-the-secret', body) });
    expect(forged.status).toBe(401);
    const unsigned = await post('/api/v1/webhooks/dbt-cloud', dbtEvent('wev_3', '101'), {});
    expect(unsigned.status).toBe(401);
    const started = dbtEvent('wev_4', '101', 0, 'job.run.started');
    expect((await post('/api/v1/webhooks/dbt-cloud', started, { authorization: sign(DBT_SECRET, started) })).body.outcome).toBe('ignored');
    const unknownJob = dbtEvent('wev_5', '999');
    expect((await post('/api/v1/webhooks/dbt-cloud', unknownJob, { authorization: sign(DBT_SECRET, unknownJob) })).body.outcome).toBe('ignored');
    const disabled = dbtEvent('wev_6', '202');
    const paused = await post('/api/v1/webhooks/dbt-cloud', disabled, { authorization: sign(DBT_SECRET, disabled) });
    expect(paused.body.message).toMatch(/sequence "paused" is disabled/);
    const malformed = '{"eventType": ';
    expect((await post('/api/v1/webhooks/dbt-cloud', malformed, { authorization: sign(DBT_SECRET, malformed) })).status).toBe(400);
    const huge = JSON.stringify({ padding: 'x'.repeat(300_000) });
    expect((await post('/api/v1/webhooks/dbt-cloud', huge, { authorization: sign(DBT_SECRET, huge) })).status).toBe(413);

    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(1);
    const log = await events();
    expect(log.map((e) => [e.outcome, e.httpStatus])).toEqual([
      ['rejected', 413],
      ['rejected', 400],
      ['ignored', 200],
      ['ignored', 200],
      ['ignored', 200],
      ['rejected', 401],
      ['rejected', 401],
      ['duplicate', 200],
      ['accepted', 200],
    ]);
  });

  it("dbt Cloud: a completed run reported by runStatus alone (the documented payload without runStatusCode) starts on 'Success' only", async () => {
    const { h, post, events } = await serve();
    await using _ = h;
    // dbt Cloud's example payloads ("Webhooks for your jobs"), first published without runStatusCode.
    const documented = (eventId: string, eventType: string, runStatus: string, ended: Record<string, string>) =>
      JSON.stringify({
        accountId: 43,
        eventId,
        timestamp: '2023-01-31T19:29:35.789265936Z',
        eventType,
        webhookName: 'test',
        data: {
          jobId: '101',
          jobName: 'Daily Job (dbt build)',
          runId: '12345',
          environmentId: '1234',
          environmentName: 'Production',
          dbtVersion: '',
          projectName: 'Snowflake Github Demo',
          runReason: '',
          runStartedAt: '2023-01-31T19:28:07Z',
          ...ended,
          runStatus,
          runStatusMessage: 'None',
        },
      });
    const completed = documented('wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD', 'job.run.completed', 'Success', { runFinishedAt: '2023-01-31T19:29:32Z' });
    const ok = await post('/api/v1/webhooks/dbt-cloud', completed, { authorization: sign(DBT_SECRET, completed) });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ outcome: 'accepted', message: expect.stringMatching(/started sequence "nightly"/) });
    expect((await h.app.runs.waitForSequenceRun(ok.body.runs[0]!.runId)).status).toBe('done');
    expect((await post('/api/v1/webhooks/dbt-cloud', completed, { authorization: sign(DBT_SECRET, completed) })).body.outcome).toBe('duplicate');
    const errored = documented('wev_2L6m5BggBw9uPNuSmtg4MUiW4Re', 'job.run.errored', 'Errored', { runErroredAt: '2023-01-31T21:15:20Z' });
    const erroredAnswer = await post('/api/v1/webhooks/dbt-cloud', errored, { authorization: sign(DBT_SECRET, errored) });
    expect(erroredAnswer.body.outcome).toBe('ignored');
    const completedErrored = documented('wev_errored_completed', 'job.run.completed', 'Errored', { runFinishedAt: '2023-01-31T21:15:20Z' });
    const notSuccess = await post('/api/v1/webhooks/dbt-cloud', completedErrored, { authorization: sign(DBT_SECRET, completedErrored) });
    expect(notSuccess.body).toMatchObject({ outcome: 'ignored', message: expect.stringMatching(/ended with status Errored, not success \(Success, code 10\)/) });

    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(1);
    expect((await events()).map((e) => e.outcome)).toEqual(['ignored', 'ignored', 'duplicate', 'accepted']);
  });

  it('Fivetran: sync_end SUCCESSFUL starts the sync on that connector; FAILURE_WITH_TASK and the test event are recorded and ignored', async () => {
    const { h, post, events } = await serve();
    await using _ = h;
    const test = JSON.stringify({ event: 'test_event', created: '2026-11-21T00:00:00Z', connector_type: '_connector_type', connector_id: '_connector_1', group_id: '_destination_1' });
    expect((await post('/api/v1/webhooks/fivetran', test, { 'x-fivetran-signature-256': sign(FIVETRAN_SECRET, test).toUpperCase() })).status).toBe(200);
    const failure = JSON.stringify({ event: 'sync_end', created: '2026-11-21T00:00:00Z', connector_id: 'warehouse_pg', sync_id: 's1', data: { status: 'FAILURE_WITH_TASK' } });
    expect((await post('/api/v1/webhooks/fivetran', failure, { 'x-fivetran-signature-256': sign(FIVETRAN_SECRET, failure) })).body.outcome).toBe('ignored');
    const success = JSON.stringify({ event: 'sync_end', created: '2026-11-21T00:05:00Z', connector_id: 'warehouse_pg', sync_id: 's2', data: { status: 'SUCCESSFUL' } });
    const ok = await post('/api/v1/webhooks/fivetran', success, { 'x-fivetran-signature-256': sign(FIVETRAN_SECRET, success) });
    expect(ok.body.outcome).toBe('accepted');
    expect((await h.app.runs.waitForSyncRun(Number(ok.body.runs[0]!.runId))).status).toBe('success');
    expect((await post('/api/v1/webhooks/fivetran', success, { 'x-fivetran-signature-256': 'f'.repeat(64) })).status).toBe(401);
    expect((await events()).map((e) => e.outcome)).toEqual(['rejected', 'accepted', 'ignored', 'ignored']);
  });

  it('forged deliveries are kept only for the newest few, and counted per reason', async () => {
    const { h, post, page } = await serve({ LOCKSTEP_WEBHOOK_REFUSED_KEEP: '5', LOCKSTEP_WEBHOOK_RETENTION_DAYS: '7' });
    await using _ = h;
    const forged = JSON.stringify({ padding: 'x'.repeat(1500) });
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => post('/api/v1/webhooks/dbt-cloud', forged, { authorization: 'f'.repeat(64) })),
      );
      expect(answers.every((a) => a.status === 401)).toBe(true);
    }
    const signed = dbtEvent('evt-kept', '999');
    expect((await post('/api/v1/webhooks/dbt-cloud', signed, { authorization: sign(DBT_SECRET, signed) })).status).toBe(200);
    const listed = await page();
    expect(listed.retention).toEqual({ refusedKept: 5, retentionDays: 7 });
    expect(listed.data.filter((e) => e.httpStatus === 401)).toHaveLength(5);
    expect(listed.data.map((e) => e.outcome)).toContain('ignored');
    expect(listed.refusals).toEqual([expect.objectContaining({ source: 'dbt_cloud', httpStatus: 401, count: 200, reason: expect.stringContaining('HMAC-SHA256') })]);
  });

  it("a refused delivery's answer says nothing of how the server is set up; the server's log and the delivery log say it", async () => {
    const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
    const log = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields: fields ?? {} });
    const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
    // dbt Cloud: no secret declared; Fivetran: a secret whose variable the server does not have.
    const { h, post, events } = await serve({}, { logger, webhooks: { dbtCloud: null, fivetran: { secret: '${FIVETRAN_HOOK_KEY}' } } });
    await using _ = h;
    const dbt = dbtEvent('wev_anon', '101');
    const fivetran = JSON.stringify({ event: 'sync_end', connector_id: 'warehouse_pg', sync_id: 's9', data: { status: 'SUCCESSFUL' } });
    const answers = [
      await post('/api/v1/webhooks/dbt-cloud', dbt, {}),
      await post('/api/v1/webhooks/dbt-cloud', dbt, { authorization: sign('guess', dbt) }),
      await post('/api/v1/webhooks/fivetran', fivetran, {}),
      await post('/api/v1/webhooks/fivetran', fivetran, { 'x-fivetran-signature-256': sign('guess', fivetran) }),
    ];
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401]);
    for (const { body } of answers) {
      expect(body.message).not.toMatch(/configured|lockstep\.yaml|webhooks\.|FIVETRAN_HOOK_KEY|environment|restart/);
    }
    // The same answer whether a secret is missing, unreadable or simply not matched.
    expect(answers[0]!.body.message).toBe(answers[1]!.body.message);
    expect(answers[2]!.body.message).toBe(answers[3]!.body.message);
    expect(answers[0]!.body.message).toMatch(/Authorization header must hold the hex HMAC-SHA256 of the raw body/);
    expect(answers[2]!.body.message).toMatch(/X-Fivetran-Signature-256 header must hold the hex HMAC-SHA256 of the raw body/);

    // A reason repeated within a minute is logged once (see the flood test in the receiver's tests); the delivery log has each.
    const refused = lines.filter((l) => l.message === 'webhook delivery refused');
    expect(refused.map((l) => [l.level, l.fields.source])).toEqual([
      ['warn', 'dbt_cloud'],
      ['warn', 'fivetran'],
    ]);
    expect(refused[0]!.fields.reason).toMatch(/no dbt Cloud webhook secret is configured — set webhooks\.dbtCloud\.secret/);
    expect(refused[1]!.fields.reason).toMatch(/FIVETRAN_HOOK_KEY/);
    expect((await events()).map((e) => e.reason)).toEqual([refused[1], refused[1], refused[0], refused[0]].map((l) => l!.fields.reason));
  });

  it('refuses every delivery while a secret is empty on the server: an HMAC keyed with nothing is one anybody can make', async () => {
    // validate refuses a variable exported empty, but a server started with one still answers.
    const { h, post, events } = await serve({ DBT_SECRET: '', FIVETRAN_SECRET: ' ' });
    await using _ = h;
    const dbt = dbtEvent('wev_empty', '101');
    const fivetran = JSON.stringify({ event: 'sync_end', connector_id: 'warehouse_pg', sync_id: 's-empty', data: { status: 'SUCCESSFUL' } });
    const answers = [
      await post('/api/v1/webhooks/dbt-cloud', dbt, { authorization: sign('', dbt) }),
      await post('/api/v1/webhooks/fivetran', fivetran, { 'x-fivetran-signature-256': sign(' ', fivetran) }),
    ];
    expect(answers.map((a) => [a.status, a.body.outcome])).toEqual([
      [401, 'rejected'],
      [401, 'rejected'],
    ]);
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(0);
    expect(await h.app.store.listSyncRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(0);
    expect((await events()).map((e) => e.reason)).toEqual([
      expect.stringMatching(/^the Fivetran webhook secret is empty on this server \(webhooks\.fivetran\.secret, or the variable it reads, is blank\)/),
      expect.stringMatching(/^the dbt Cloud webhook secret is empty on this server/),
    ]);
  });
});

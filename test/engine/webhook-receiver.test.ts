import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { WebhookReceiver, hmacHex, type RunStarter, type WebhookSecrets } from '../../src/engine/webhook-receiver.js';
import { systemClock } from '../../src/core/clock.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import pg from 'pg';
import { createTestDatabase } from '../helpers/postgres.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, startHarness, tempDir } from '../helpers/harness.js';

const DBT_SECRET = 'dbt-secret-123';
const FIVETRAN_SECRET = 'fivetran-secret-456';

/** dbt Cloud's documented `job.run.completed` payload. */
function dbtCompleted(over: { eventId?: string; jobId?: string; code?: number; eventType?: string } = {}) {
  return JSON.stringify({
    accountId: 1,
    webhookId: 'wsu_12345abcde',
    eventId: over.eventId ?? 'wev_2L6Z3l8uPedXKPq9D2n5W8y4xP7',
    timestamp: '2026-01-31T19:28:15.742843678Z',
    eventType: over.eventType ?? 'job.run.completed',
    webhookName: 'lockstep',
    data: {
      jobId: over.jobId ?? '123',
      jobName: 'Daily Job (dbt build)',
      runId: '12345',
      environmentId: '1234',
      environmentName: 'Production',
      dbtVersion: '1.7.0',
      projectName: 'Analytics',
      projectId: '167194',
      runStatus: over.code === 20 ? 'Errored' : 'Success',
      runStatusCode: over.code ?? 10,
      runStatusMessage: 'None',
      runReason: 'Kicked off by schedule',
      runStartedAt: '2026-01-31T19:28:07Z',
      runFinishedAt: '2026-01-31T19:29:32Z',
    },
  });
}

function fivetranSyncEnd(status: string, syncId = 'sync-1') {
  return JSON.stringify({
    event: 'sync_end',
    created: '2026-01-31T11:38:34.386Z',
    connector_type: 'postgres',
    connector_id: 'mystified_presiding',
    connector_name: 'app_db',
    sync_id: syncId,
    destination_group_id: 'deck_enjoy',
    data: { status },
  });
}

async function setup() {
  const dir = tempDir();
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    definition: workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [source('crm', { path: 'crm.db' })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [
        sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', schedule: { type: 'fivetran', connectorId: 'mystified_presiding' } }),
      ],
      sequences: [
        sequence('after-dbt', [member('accounts')], { schedule: { type: 'dbt_cloud', accountId: '1', jobId: '123' } }),
        sequence('paused', [member('accounts')], { schedule: { type: 'dbt_cloud', accountId: '1', jobId: '999' }, enabled: false }),
      ],
    }),
  });
  const secrets: WebhookSecrets = { dbtCloud: { secret: DBT_SECRET }, fivetran: { secret: FIVETRAN_SECRET } };
  const receiver = new WebhookReceiver({
    store: h.app.store,
    runs: h.app.runs,
    clock: h.app.clock,
    logger: h.app.logger,
    secrets: async () => secrets,
  });
  const dbt = (body: string, signature = hmacHex(DBT_SECRET, body)) =>
    receiver.receiveDbtCloud({ rawBody: Buffer.from(body), headers: { authorization: signature } });
  const fivetran = (body: string, signature = hmacHex(FIVETRAN_SECRET, body).toUpperCase()) =>
    receiver.receiveFivetran({ rawBody: Buffer.from(body), headers: { 'x-fivetran-signature-256': signature } });
  return { h, dbt, fivetran, secrets };
}

describe('webhook triggers', () => {
  it('an event delivered again after the log forgot it starts nothing again: its runs were keyed by the event', async () => {
    const { h } = await setup();
    await using _ = h;
    let now = h.app.clock.now();
    const receiver = new WebhookReceiver({
      store: h.app.store,
      runs: h.app.runs,
      clock: { now: () => now, sleep: (ms, signal) => h.app.clock.sleep(ms, signal) },
      logger: h.app.logger,
      secrets: async () => ({ dbtCloud: { secret: DBT_SECRET }, fivetran: null }),
      retention: { refusedKept: 100, retentionDays: 1 },
    });
    const dbt = (body: string) => receiver.receiveDbtCloud({ rawBody: Buffer.from(body), headers: { authorization: hmacHex(DBT_SECRET, body) } });
    const first = await dbt(dbtCompleted({ eventId: 'wev_kept_by_key' }));
    expect(first.body.outcome).toBe('accepted');
    await h.app.runs.waitForSequenceRun(first.body.runs[0]!.runId);
    now += 3 * 24 * 3600_000;
    await dbt(dbtCompleted({ eventId: 'wev_other', jobId: '555' })); // prunes the log past its day
    expect((await h.app.store.webhooks.list({ limit: 10, offset: 0 })).map((e) => e.eventId)).not.toContain('wev_kept_by_key');
    const replay = await dbt(dbtCompleted({ eventId: 'wev_kept_by_key' }));
    expect(replay.body.runs).toEqual([]);
    expect(replay.body.message).toMatch(/was started by an earlier delivery of this event/);
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(1);
  });

  it('a signed dbt Cloud job.run.completed with status 10 starts the sequence scheduled on that job, once per event id', async () => {
    const { h, dbt } = await setup();
    await using _ = h;
    const first = await dbt(dbtCompleted());
    expect(first.status).toBe(200);
    expect(first.body.outcome).toBe('accepted');
    expect(first.body.runs).toEqual([{ kind: 'sequence', slug: 'after-dbt', runId: expect.any(String) }]);
    const run = await h.app.runs.waitForSequenceRun(first.body.runs[0]!.runId);
    expect(run.status).toBe('done');
    expect(run.trigger.type).toBe('webhook');

    const again = await dbt(dbtCompleted());
    expect(again.status).toBe(200);
    expect(again.body.outcome).toBe('duplicate');
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(1);
  });

  it('rejects a missing or wrong signature with 401 and starts nothing, recording why', async () => {
    const { h, dbt, fivetran } = await setup();
    await using _ = h;
    const body = dbtCompleted({ eventId: 'wev_forged' });
    expect((await dbt(body, '')).status).toBe(401);
    expect((await dbt(body, hmacHex('wrong-secret', body))).status).toBe(401);
    expect((await dbt(body.replace('Daily', 'Nightly'), hmacHex(DBT_SECRET, body))).status).toBe(401);
    expect((await fivetran(fivetranSyncEnd('SUCCESSFUL'), 'deadbeef')).status).toBe(401);
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(0);
    const events = await h.app.store.webhooks.list({ limit: 10, offset: 0 });
    expect(events).toHaveLength(4);
    expect(events.every((e) => e.outcome === 'rejected' && e.httpStatus === 401)).toBe(true);
    expect(events[3]?.reason).toMatch(/Authorization header/);
  });

  it('says in the delivery log when a delivery carries no signature at all, and what sends one; the caller is told only what signs one', async () => {
    const { h, dbt, fivetran } = await setup();
    await using _ = h;
    const unsigned = await dbt(dbtCompleted({ eventId: 'wev_unsigned' }), '');
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.message).toMatch(/^not signed with this endpoint's secret: the Authorization header must hold the hex HMAC-SHA256/);
    const bare = await fivetran(fivetranSyncEnd('SUCCESSFUL'), '');
    expect(bare.status).toBe(401);
    expect(bare.body.message).toMatch(/^not signed with this endpoint's secret: the X-Fivetran-Signature-256 header must hold/);
    const [fivetranEvent, dbtEvent] = await h.app.store.webhooks.list({ limit: 10, offset: 0 });
    expect(dbtEvent?.reason).toBe(
      "the delivery has no Authorization header — dbt Cloud signs every delivery there with the webhook's secret; only a dbt Cloud webhook can call this endpoint",
    );
    expect(fivetranEvent?.reason).toMatch(/^the delivery has no X-Fivetran-Signature-256 header — .* give the webhook the same secret as webhooks\.fivetran\.secret$/);
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(0);
  });

  it('says in the delivery log, not to the caller, why a delivery cannot be checked: no secret declared, or one whose variable the server lacks', async () => {
    const { h, dbt, secrets } = await setup();
    await using _ = h;
    secrets.dbtCloud = { unreadable: 'the dbt Cloud webhook uses ${DBT_SECRET}, but the environment variable DBT_SECRET is not set — export DBT_SECRET=... in the environment of the server' };
    const unreadable = await dbt(dbtCompleted({ eventId: 'wev_unset' }));
    expect(unreadable.status).toBe(401);
    expect(JSON.stringify(unreadable.body)).not.toContain('DBT_SECRET');
    secrets.dbtCloud = null;
    const none = await dbt(dbtCompleted({ eventId: 'wev_none' }));
    expect(JSON.stringify(none.body)).not.toContain('configured');
    expect(none.body.message).toBe(unreadable.body.message);
    const [noneEvent, unreadableEvent] = await h.app.store.webhooks.list({ limit: 10, offset: 0 });
    expect(unreadableEvent?.reason).toContain('the dbt Cloud webhook secret cannot be read by this server: the dbt Cloud webhook uses ${DBT_SECRET}, but the environment variable DBT_SECRET is not set');
    expect(noneEvent?.reason).toContain('no dbt Cloud webhook secret is configured — set webhooks.dbtCloud.secret in lockstep.yaml');
  });

  it('records and ignores other events, failed runs, unknown jobs and disabled sequences', async () => {
    const { h, dbt } = await setup();
    await using _ = h;
    const started = await dbt(dbtCompleted({ eventId: 'e1', eventType: 'job.run.started' }));
    const errored = await dbt(dbtCompleted({ eventId: 'e2', code: 20 }));
    const unknown = await dbt(dbtCompleted({ eventId: 'e3', jobId: '555' }));
    const disabled = await dbt(dbtCompleted({ eventId: 'e4', jobId: '999' }));
    for (const answer of [started, errored, unknown, disabled]) {
      expect(answer.status).toBe(200);
      expect(answer.body.outcome).toBe('ignored');
    }
    expect(started.body.message).toMatch(/job\.run\.started does not start runs/);
    expect(errored.body.message).toMatch(/not success/);
    expect(unknown.body.message).toMatch(/no sync or sequence is scheduled/);
    expect(disabled.body.message).toMatch(/sequence "paused" is disabled/);
    expect(await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(0);
  });

  it('a malformed body with a valid signature is a 400 and recorded', async () => {
    const { h, dbt } = await setup();
    await using _ = h;
    const answer = await dbt('{not json');
    expect(answer.status).toBe(400);
    expect((await h.app.store.webhooks.list({ limit: 1, offset: 0 }))[0]?.reason).toMatch(/not a JSON object/);
  });

  it('Fivetran: sync_end SUCCESSFUL starts the sync scheduled on the connector; FAILURE_WITH_TASK and the test event do not', async () => {
    const { h, fivetran } = await setup();
    await using _ = h;
    const test = await fivetran(JSON.stringify({ event: 'test_event', created: 'now', connector_type: '_connector_type', connector_id: '_connector_1', group_id: '_destination_1' }));
    expect(test.status).toBe(200);
    expect(test.body.outcome).toBe('ignored');
    const failed = await fivetran(fivetranSyncEnd('FAILURE_WITH_TASK', 'sync-0'));
    expect(failed.body.outcome).toBe('ignored');
    const ok = await fivetran(fivetranSyncEnd('SUCCESSFUL'));
    expect(ok.body.outcome).toBe('accepted');
    expect(ok.body.runs[0]).toMatchObject({ kind: 'sync', slug: 'accounts' });
    const run = await h.app.runs.waitForSyncRun(Number(ok.body.runs[0]!.runId));
    expect(run.status).toBe('success');
    expect((await fivetran(fivetranSyncEnd('SUCCESSFUL'))).body.outcome).toBe('duplicate');
  });

  it('a flood of forged deliveries writes a warning per reason, then a line a minute with how many came', async () => {
    const { h } = await setup();
    await using _ = h;
    let now = h.app.clock.now();
    const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
    const log = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields: fields ?? {} });
    const receiver = new WebhookReceiver({
      store: h.app.store,
      runs: h.app.runs,
      clock: { now: () => now, sleep: (ms, signal) => h.app.clock.sleep(ms, signal) },
      logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
      secrets: async () => ({ dbtCloud: { secret: DBT_SECRET }, fivetran: null }),
    });
    const body = dbtCompleted({ jobId: '555' });
    const deliver = (authorization?: string) => receiver.receiveDbtCloud({ rawBody: Buffer.from(body), headers: authorization === undefined ? {} : { authorization } });
    for (let i = 0; i < 50; i++) expect((await deliver('f'.repeat(64))).status).toBe(401);
    for (let i = 0; i < 10; i++) expect((await deliver()).status).toBe(401);
    const refused = () => lines.filter((l) => l.message === 'webhook delivery refused');
    expect(refused().map((l) => [l.level, l.fields.source, l.fields.reason])).toEqual([
      ['warn', 'dbt_cloud', expect.stringMatching(/^the Authorization header is not the HMAC-SHA256/)],
      ['warn', 'dbt_cloud', expect.stringMatching(/^the delivery has no Authorization header/)],
    ]);
    expect(refused()[0]!.fields.deliveryId).toEqual(expect.any(Number));

    now += 61_000;
    await deliver('f'.repeat(64));
    expect(refused()).toHaveLength(3);
    expect(refused()[2]!.fields).toMatchObject({ source: 'dbt_cloud', failures: 51, sinceLastLine: 50 });

    // A signed delivery closes each reason's lines with its count.
    expect((await deliver(hmacHex(DBT_SECRET, body))).status).toBe(200);
    expect(lines.filter((l) => l.message === 'webhook delivery verified after refused ones').map((l) => [l.level, l.fields.failures])).toEqual([
      ['warn', 51],
      ['warn', 10],
    ]);
    // Every delivery is still in the delivery log's counts.
    expect((await h.app.store.webhooks.refusals()).map((r) => r.count).sort((a, b) => a - b)).toEqual([10, 51]);
  });

  it('a delivery whose run the store could not queue is answered 503 and counts as not received: the redelivery starts it, once', async () => {
    const { h, dbt } = await setup();
    await using _ = h;
    const { store } = h.app;
    const enqueue = store.enqueueFiredRun.bind(store);
    const enqueueSequence = store.enqueueSequenceRun.bind(store);
    let failures = 1;
    const failOnce = () => {
      if (failures-- > 0) throw new LockstepError(ErrorCode.Store, 'store PostgreSQL at db:5432/lockstep cannot be reached: connect ECONNREFUSED', { retryable: true });
    };
    store.enqueueFiredRun = async (key, run, now) => (failOnce(), enqueue(key, run, now));
    store.enqueueSequenceRun = async (sequence, trigger, now) => (failOnce(), enqueueSequence(sequence, trigger, now));

    const logged: Array<{ message: string; fields: Record<string, unknown> }> = [];
    const receiver = new WebhookReceiver({
      store,
      runs: h.app.runs,
      clock: h.app.clock,
      logger: { debug: () => {}, info: () => {}, warn: () => {}, error: (message, fields) => void logged.push({ message, fields: fields ?? {} }) },
      secrets: async () => ({ dbtCloud: { secret: DBT_SECRET }, fivetran: null }),
    });
    const first = await receiver.receiveDbtCloud({ rawBody: Buffer.from(dbtCompleted()), headers: { authorization: hmacHex(DBT_SECRET, dbtCompleted()) } });
    // dbt Cloud and Fivetran deliver again after a 5xx; a 200 would have lost the run.
    expect(first.status).toBe(503);
    // The caller is told what to do and which delivery to look up, never how the store is reached.
    expect(first.body.message).not.toMatch(/db:5432|lockstep|ECONNREFUSED|PostgreSQL/);
    expect(first.body.message).toBe(
      `its runs could not be queued, so it does not count as received: deliver it again — the server log has why, under delivery ${first.body.deliveryId}`,
    );
    expect(first.body.runs).toEqual([]);
    // The server's log keeps the detail for the operator; the delivery log, which any API token reads, a summary.
    expect(logged).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ deliveryId: first.body.deliveryId, error: expect.stringContaining('db:5432/lockstep cannot be reached') }) }),
    ]);
    const [recorded] = await store.webhooks.list({ limit: 1, offset: 0 });
    expect(recorded!.reason).toContain('its runs could not be queued (the store could not be read or written — the server log has the error, under this delivery id)');
    expect(recorded!.reason).not.toMatch(/db:5432|ECONNREFUSED|PostgreSQL/);
    expect(await store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toEqual([]);

    const again = await dbt(dbtCompleted());
    expect(again.status).toBe(200);
    expect(again.body.outcome).toBe('accepted');
    expect(again.body.runs).toEqual([{ kind: 'sequence', slug: 'after-dbt', runId: expect.any(String) }]);
    expect((await dbt(dbtCompleted())).body.outcome).toBe('duplicate');
    expect(await store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toHaveLength(1);
  });
  it("a delivery whose runs a PostgreSQL store could not queue keeps no store error in the delivery log: a summary, the error in the server log", async () => {
    const url = await createTestDatabase('lockstep_webhook_log');
    const store = await PostgresStore.open({ url, poolSize: 2, statementTimeoutMs: 300 });
    const locker = new pg.Client({ connectionString: url });
    try {
      await store.applyWorkspace(
        workspace({
          sources: [source('warehouse', { path: 'warehouse.db' })],
          destinations: [source('crm', { path: 'crm.db' })],
          models: [model('accounts', 'warehouse', 'select id, name from accounts')],
          syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
          sequences: [sequence('after-dbt', [member('accounts')], { schedule: { type: 'dbt_cloud', accountId: '1', jobId: '123' } })],
        }),
        Date.now(),
      );
      const runs: RunStarter = {
        async queueFiredRun(key, target, trigger) {
          const stored = await store.getSequence(target.slug);
          return store.enqueueFiredRun(key, { kind: 'sequence', sequence: stored!, trigger }, Date.now());
        },
      };
      const logged: string[] = [];
      const log = (message: string, fields?: Record<string, unknown>) => void logged.push(`${message} ${JSON.stringify(fields ?? {})}`);
      const receiver = new WebhookReceiver({
        store,
        runs,
        clock: systemClock,
        logger: { debug: () => {}, info: () => {}, warn: log, error: log },
        secrets: async () => ({ dbtCloud: { secret: DBT_SECRET }, fivetran: null }),
      });
      const deliver = () => receiver.receiveDbtCloud({ rawBody: Buffer.from(dbtCompleted()), headers: { authorization: hmacHex(DBT_SECRET, dbtCompleted()) } });
      // Maintenance on the store holds the table of fired runs' keys past the store's statement timeout.
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE lockstep.schedule_firings IN ACCESS EXCLUSIVE MODE');
      const first = await deliver();
      expect(first.status).toBe(503);
      const [recorded] = await store.webhooks.list({ limit: 1, offset: 0 });
      expect(recorded!.id).toBe(first.body.deliveryId);
      expect(recorded!.reason).toBe(
        'dbt Cloud job 123 (account 1) completed successfully, but its runs could not be queued (the store could not be read or written — the server log has the error, under this delivery id): answered 503 so that the sender delivers it again',
      );
      // The server log keeps the store's own words, under the delivery's id.
      expect(logged.join('\n')).toMatch(new RegExp(`"deliveryId":${first.body.deliveryId}.*statement timeout`));
      await locker.query('ROLLBACK');
      const again = await deliver();
      expect(again.status).toBe(200);
      expect(again.body.runs).toEqual([{ kind: 'sequence', slug: 'after-dbt', runId: expect.any(String) }]);
    } finally {
      await locker.end();
      await store.close();
    }
  });
  it('a delivery the store could not be read for is answered 500, which the sender delivers again, and logged with a summary', async () => {
    const { h } = await setup();
    await using _ = h;
    const logged: Array<{ message: string; fields: Record<string, unknown> }> = [];
    const log = (message: string, fields?: Record<string, unknown>) => void logged.push({ message, fields: fields ?? {} });
    const receiver = new WebhookReceiver({
      store: h.app.store,
      runs: h.app.runs,
      clock: h.app.clock,
      logger: { debug: () => {}, info: log, warn: log, error: log },
      secrets: async () => {
        throw new LockstepError(ErrorCode.Store, 'store PostgreSQL at db:5432/lockstep as admin cannot be reached: connect ECONNREFUSED', { retryable: true });
      },
    });
    const answer = await receiver.receiveDbtCloud({ rawBody: Buffer.from(dbtCompleted()), headers: { authorization: hmacHex(DBT_SECRET, dbtCompleted()) } });
    expect(answer.status).toBe(500);
    const [recorded] = await h.app.store.webhooks.list({ limit: 1, offset: 0 });
    expect(recorded!.reason).toBe('the delivery could not be processed: the store could not be read or written — the server log has the error, under this delivery id');
    expect(logged).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ deliveryId: answer.body.deliveryId, error: expect.stringContaining('db:5432/lockstep as admin cannot be reached') }) }),
    ]);
  });
});

import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PagerDutyChannel } from '../../src/connectors/alert-channels/pagerduty-channel.js';
import { SlackChannel } from '../../src/connectors/alert-channels/slack-channel.js';
import { WebhookChannel } from '../../src/connectors/alert-channels/webhook-channel.js';
import type { AlertNotice, AlertsDefinition } from '../../src/core/alerts.js';
import { ErrorCode, LockstepError, NotFoundError } from '../../src/core/errors.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase } from '../helpers/postgres.js';
import pg from 'pg';
import { AlertDispatcher } from '../../src/engine/alert-dispatcher.js';
import { createApp, openAlertChannel, openStore } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import type { Store } from '../../src/core/ports.js';
import { systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { runSync, settle } from './app-steps.js';
import type { Connectors } from '../../src/core/ports.js';
import { withWriteHook } from '../helpers/fault-connectors.js';
import { HttpReceiver, SmtpReceiver, subjectOf, until, type Answer } from './receivers.js';

const SECRET = 'hook-secret';

function alertsFor(http: string, smtp: string, over: Partial<AlertsDefinition['rules'][number]> = {}): AlertsDefinition {
  return {
    channels: [
      { name: 'ops-slack', type: 'slack', url: `${http}/slack` },
      { name: 'hooks', type: 'webhook', url: `${http}/hook`, headers: { 'X-Team': '${TEAM}' }, secret: '${HOOK_SECRET}' },
      { name: 'oncall', type: 'pagerduty', routingKey: '${PD_KEY}', url: `${http}/pd` },
      { name: 'mail', type: 'email', smtp, from: 'lockstep@example.test', to: ['ops@example.test'] },
    ],
    rules: [
      {
        name: 'default',
        on: ['sync_failed', 'sequence_failed', 'rejected_rows', 'recovered'],
        syncs: [],
        sequences: [],
        rejectedPercent: 5,
        slowerThanMinutes: null,
        channels: ['ops-slack', 'hooks', 'oncall', 'mail'],
        ...over,
      },
    ],
  };
}

async function setup(answer?: (path: string, n: number) => Answer, env: Record<string, string> = {}, moreRules: AlertsDefinition['rules'] = []) {
  const http = await HttpReceiver.start(answer);
  const smtp = await SmtpReceiver.start();
  const dir = tempDir();
  createHierarchyFixture(dir);
  const h = await startHarness({
    dir,
    env: { HOOK_SECRET: SECRET, PD_KEY: 'routing-key-1', TEAM: 'data', LOCKSTEP_ALERT_RETRY_MS: '200', ...env },
    definition: {
      ...workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { path: 'crm.db' })],
        models: [
          model('accounts', 'warehouse', 'select id, name from accounts'),
          model('workspaces', 'warehouse', 'select id, account_id, name from workspaces'),
          model('contacts', 'warehouse', 'select id, workspace_id, email from contacts'),
        ],
        syncs: [
          sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
          sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
          sync('contacts', { model: 'contacts', destination: 'crm', object: 'contacts', mappings: [{ from: 'email', to: 'email_address' }] }),
        ],
        sequences: [sequence('crm', [member('accounts'), member('workspaces'), member('contacts')])],
      }),
      alerts: { ...alertsFor(http.url, smtp.url), rules: [...alertsFor(http.url, smtp.url).rules, ...moreRules] },
    },
  });
  return {
    h,
    http,
    smtp,
    async [Symbol.asyncDispose]() {
      await h.app.close();
      await http[Symbol.asyncDispose]();
      await smtp[Symbol.asyncDispose]();
    },
  };
}

describe('alerts', () => {
  it('sends one notice per change of state on every channel: fail, fail, fail -> 1; success -> 1 recovery', async () => {
    await using t = await setup();
    const { h, http, smtp } = t;
    sqlite(join(h.dir, 'crm.db'), 'alter table accounts rename to accounts_gone');
    const failures = [];
    for (let i = 0; i < 3; i++) {
      const run = await runSync(h.app, 'accounts');
      expect(run.status).toBe('failed');
      failures.push(run);
      await settle(h.app);
    }
    await until(() => smtp.messages.length >= 1, 'the email');
    expect(http.at('/slack')).toHaveLength(1);
    expect(http.at('/hook')).toHaveLength(1);
    expect(http.at('/pd')).toHaveLength(1);
    expect(smtp.messages).toHaveLength(1);

    // Slack: Block Kit with a link to the first failed run in the UI.
    const slack = http.at('/slack')[0]!.json as { text: string; blocks: Array<{ type: string; text?: { text: string }; elements?: Array<{ url?: string }> }> };
    expect(slack.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'actions', 'context']);
    expect(slack.blocks[0]!.text!.text).toBe('Sync "accounts" failed');
    expect(slack.blocks[1]!.text!.text).toMatch(/accounts/);
    expect(slack.blocks[3]!.elements![0]!.url).toBe(`http://127.0.0.1:3000/runs/sync/${failures[0]!.id}`);
    expect(slack.text).toMatch(/^Sync "accounts" failed: /);

    // Webhook: the JSON body, custom headers, and an HMAC-SHA256 signature of the raw body.
    const hook = http.at('/hook')[0]!;
    expect(hook.headers['x-team']).toBe('data');
    expect(hook.headers['x-lockstep-event']).toBe('sync_failed');
    expect(hook.headers['x-lockstep-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(hook.raw).digest('hex')}`);
    expect(hook.json).toMatchObject({
      kind: 'triggered',
      event: 'sync_failed',
      condition: 'failed',
      rule: 'default',
      subject: { kind: 'sync', slug: 'accounts' },
      run: { kind: 'sync', id: String(failures[0]!.id), status: 'failed' },
      dedupKey: 'lockstep:default:sync:accounts:failed',
    });

    // PagerDuty: a trigger with a dedup key per (rule, subject, condition).
    expect(http.at('/pd')[0]!.json).toMatchObject({
      routing_key: 'routing-key-1',
      event_action: 'trigger',
      dedup_key: 'lockstep:default:sync:accounts:failed',
      payload: { source: 'lockstep', severity: 'error', component: 'sync:accounts', class: 'sync_failed' },
    });

    // Email over SMTP.
    expect(smtp.messages[0]!.to).toEqual(['ops@example.test']);
    expect(subjectOf(smtp.messages[0]!.raw)).toBe('[Lockstep] Sync "accounts" failed');

    sqlite(join(h.dir, 'crm.db'), 'alter table accounts_gone rename to accounts');
    expect((await runSync(h.app, 'accounts')).status).toBe('success');
    await settle(h.app);
    expect((await runSync(h.app, 'accounts')).status).toBe('success');
    await settle(h.app);
    await until(() => smtp.messages.length >= 2, 'the recovery email');
    expect(http.at('/slack')).toHaveLength(2);
    expect(http.at('/hook')).toHaveLength(2);
    expect(http.at('/pd')).toHaveLength(2);
    expect(smtp.messages).toHaveLength(2);
    expect(http.at('/pd')[1]!.json).toEqual({ routing_key: 'routing-key-1', event_action: 'resolve', dedup_key: 'lockstep:default:sync:accounts:failed' });
    expect(http.at('/hook')[1]!.json).toMatchObject({ kind: 'resolved', event: 'recovered', title: 'Sync "accounts" recovered' });
    expect((http.at('/slack')[1]!.json as { blocks: Array<{ text?: { text: string } }> }).blocks[0]!.text!.text).toBe('Sync "accounts" recovered');

    const states = await h.app.store.alerts.listStates();
    expect(states).toContainEqual(expect.objectContaining({ rule: 'default', subject: { kind: 'sync', slug: 'accounts' }, condition: 'failed', raised: false }));
    const deliveries = await h.app.store.alerts.listDeliveries({ limit: 20, offset: 0 });
    expect(deliveries).toHaveLength(8);
    expect(deliveries.every((d) => d.status === 'sent')).toBe(true);
  });

  it('a failed sequence names the member that terminated it and why; rejected rows over the percent notify once', async () => {
    await using t = await setup();
    const { h, http } = t;
    // contacts before workspaces exist: every row rejected (foreign key) -> warning, 100% > 5%
    const warning = await runSync(h.app, 'contacts');
    expect(warning.status).toBe('warning');
    await settle(h.app);
    const rejected = http.at('/hook').map((r) => r.json as { event: string; title: string; text: string });
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.event).toBe('rejected_rows');
    expect(rejected[0]!.title).toBe('Sync "contacts" rejected 12 of 12 rows (100%)');
    expect(rejected[0]!.text).toMatch(/the run's page lists each with its reason$/);

    sqlite(join(h.dir, 'crm.db'), 'drop table workspaces');
    const { run } = await h.app.runs.triggerSequence('crm');
    const final = await h.app.runs.waitForSequenceRun(run.id);
    expect(final.status).toBe('failed');
    await settle(h.app);
    const sequenceNotice = http
      .at('/hook')
      .map((r) => r.json as { event: string; title: string; text: string; run: { url: string } })
      .find((n) => n.event === 'sequence_failed');
    expect(sequenceNotice?.title).toBe('Sequence "crm" failed');
    expect(sequenceNotice?.text).toMatch(/^member "workspaces" terminated the run: member "workspaces" failed: .*workspaces/);
    expect(sequenceNotice?.run.url).toBe(`http://127.0.0.1:3000/runs/sequence/${run.id}`);
    // The member's own sync failure is a sync alert of its own.
    expect(http.at('/hook').map((r) => (r.json as { title: string }).title)).toContain('Sync "workspaces" failed');
  });

  it('evaluates a run again when the store failed while its alert rules were checked: the notice is not lost', async () => {
    await using http = await HttpReceiver.start();
    const dir = tempDir();
    createHierarchyFixture(dir);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1' } });
    const real = await openStore(config);
    // The store is busy for a moment, right when the failed run's outcome is recorded.
    let refused = 0;
    const alerts = new Proxy(real.alerts, {
      get(target, name, receiver) {
        if (name === 'recordOutcome' && refused === 0) {
          return async () => {
            refused++;
            throw new LockstepError(ErrorCode.Store, 'the store could not be read (test)', { retryable: true });
          };
        }
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const store = new Proxy(real, {
      get(target, name, receiver) {
        if (name === 'alerts') return alerts;
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as Store;
    const app = await createApp(config, { store, logger: silentLogger });
    try {
      await app.store.applyWorkspace(
        {
          ...workspace({
            sources: [source('warehouse', { path: 'warehouse.db' })],
            destinations: [source('crm', { path: 'crm.db' })],
            models: [model('accounts', 'warehouse', 'select id, name from accounts')],
            syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
          }),
          alerts: {
            channels: [{ name: 'hooks', type: 'webhook', url: `${http.url}/hook`, headers: {}, secret: null }],
            rules: [{ name: 'default', on: ['sync_failed', 'recovered'], syncs: [], sequences: [], rejectedPercent: 0, slowerThanMinutes: null, channels: ['hooks'] }],
          },
        },
        app.clock.now(),
      );
      await app.worker.start();
      sqlite(join(dir, 'crm.db'), 'drop table accounts');
      expect((await runSync(app, 'accounts')).status).toBe('failed');
      await until(async () => {
        await settle(app);
        return http.at('/hook').length === 1;
      }, 'the notice of the failed run');
      expect(refused).toBe(1);
      expect(http.at('/hook')[0]!.json).toMatchObject({ kind: 'triggered', event: 'sync_failed', subject: { kind: 'sync', slug: 'accounts' } });
    } finally {
      await app.close();
    }
  });

  it("never sends a rejected row's values to a channel: a destination's reason may quote them, the run's page shows them", async () => {
    const http = await HttpReceiver.start();
    const smtp = await SmtpReceiver.start();
    const dir = tempDir();
    createHierarchyFixture(dir);
    // An API that refuses each row quoting what it was sent, as many do.
    const quoting = (real: Connectors): Connectors => ({
      openSource: (c) => real.openSource(c),
      async openDestination(c, run) {
        const destination = await real.openDestination(c, run);
        return {
          ...destination,
          close: () => destination.close(),
          async prepare() {
            return { write: async (batch) => batch.map((op) => ({ ok: false as const, reason: `HTTP 422: {"error":"name ${String(op.values[1])} is taken"}` })) };
          },
        };
      },
    });
    const h = await startHarness({
      dir,
      env: { HOOK_SECRET: SECRET, PD_KEY: 'routing-key-1', TEAM: 'data' },
      connectors: quoting,
      definition: {
        ...workspace({
          sources: [source('warehouse', { path: 'warehouse.db' })],
          destinations: [source('crm', { path: 'crm.db' })],
          models: [model('accounts', 'warehouse', 'select id, name from accounts')],
          syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
        }),
        alerts: alertsFor(http.url, smtp.url),
      },
    });
    try {
      const run = await runSync(h.app, 'accounts');
      expect(run.status).toBe('warning');
      expect((await h.app.store.listRejectedRows(run.id, 1, 0))[0]!.reason).toContain('Account 1');
      await settle(h.app);
      await until(() => smtp.messages.length === 1, 'the email');
      const sent = [...['/slack', '/hook', '/pd'].map((path) => http.at(path)[0]!.raw), smtp.messages[0]!.raw];
      for (const body of sent) {
        expect(body).toContain('rejected 3 of 3 rows');
        expect(body).toContain(`/runs/sync/${run.id}`);
        expect(body).not.toContain('Account');
      }
    } finally {
      await h.app.close();
      await http[Symbol.asyncDispose]();
      await smtp[Symbol.asyncDispose]();
    }
  });

  it('leaves to the workspace default the events a rule naming a sync does not list: its failures still notify', async () => {
    // As in the README: failures go to every channel by default; contacts' rejected rows to the webhook alone.
    const rejectedOnly: AlertsDefinition['rules'][number] = { name: 'contacts-rejected', on: ['rejected_rows', 'recovered'], syncs: ['contacts'], sequences: [], rejectedPercent: 5, slowerThanMinutes: null, channels: ['hooks'] };
    await using t = await setup(undefined, {}, [rejectedOnly]);
    const { h, http } = t;
    // Every contact rejected (no workspaces yet): one notice, from the rule naming the sync.
    expect((await runSync(h.app, 'contacts')).status).toBe('warning');
    await settle(h.app);
    expect(http.at('/hook').map((r) => [(r.json as { rule: string }).rule, (r.json as { event: string }).event])).toEqual([['contacts-rejected', 'rejected_rows']]);
    expect(http.at('/slack')).toHaveLength(0);
    // The sync fails: the default rule, which lists sync_failed, tells every channel.
    sqlite(join(h.dir, 'crm.db'), 'drop table contacts');
    expect((await runSync(h.app, 'contacts')).status).toBe('failed');
    await settle(h.app);
    expect(http.at('/hook').map((r) => [(r.json as { rule: string }).rule, (r.json as { event: string }).event])).toEqual([
      ['contacts-rejected', 'rejected_rows'],
      ['default', 'sync_failed'],
    ]);
    expect(http.at('/slack')).toHaveLength(1);
  });

  it('says which condition cleared: a fast run that fails ends "slow" without calling the sync recovered', async () => {
    const http = await HttpReceiver.start();
    const dir = tempDir();
    createHierarchyFixture(dir);
    let slowWrites = true;
    const h = await startHarness({
      dir,
      connectors: (real) => withWriteHook(real, () => (slowWrites ? new Promise((r) => setTimeout(r, 700)) : undefined)),
      definition: {
        ...workspace({
          sources: [source('warehouse', { path: 'warehouse.db' })],
          destinations: [source('crm', { path: 'crm.db' })],
          models: [model('accounts', 'warehouse', 'select id, name from accounts')],
          syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
        }),
        alerts: {
          channels: [{ name: 'hooks', type: 'webhook', url: `${http.url}/hook`, headers: {}, secret: null }],
          // 0.005 min: 300 ms.
          rules: [{ name: 'default', on: ['sync_failed', 'slow_run', 'recovered'], syncs: [], sequences: [], rejectedPercent: 0, slowerThanMinutes: 0.005, channels: ['hooks'] }],
        },
      },
    });
    try {
      expect((await runSync(h.app, 'accounts')).status).toBe('success');
      await settle(h.app);
      slowWrites = false;
      sqlite(join(dir, 'crm.db'), 'drop table accounts');
      expect((await runSync(h.app, 'accounts')).status).toBe('failed');
      await settle(h.app);
      const notices = http.at('/hook').map((r) => r.json as { event: string; condition: string; title: string });
      expect(notices.map((n) => [n.event, n.condition])).toEqual([
        ['slow_run', 'slow'],
        ['sync_failed', 'failed'],
        ['recovered', 'slow'],
      ]);
      expect(notices[2]!.title).toBe('Sync "accounts" is no longer slow');
    } finally {
      await h.app.close();
      await http[Symbol.asyncDispose]();
    }
  });

  it('retries a failing channel in the background: a receiver answering 500 then 200 gets the notice; the run is not delayed', async () => {
    // The webhook's first attempt hangs for a second, then fails.
    await using t = await setup((path, n) => (path === '/hook' && n === 0 ? { status: 500, delayMs: 1000 } : { status: 200 }));
    const { h, http } = t;
    h.app.alerts.start();
    sqlite(join(h.dir, 'crm.db'), 'drop table accounts');
    const started = Date.now();
    const run = await runSync(h.app, 'accounts');
    const waited = Date.now() - started;
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/accounts/);
    expect(waited).toBeLessThan(1000);
    await until(() => http.at('/hook').length === 1, 'the retried webhook');
    expect(http.attempts('/hook')).toBe(2);
    expect(http.at('/slack')).toHaveLength(1);
    // The receiver has the notice a moment before the dispatcher records the answer.
    const hooks = () => h.app.store.alerts.listDeliveries({ channel: 'hooks', limit: 5, offset: 0 });
    await until(async () => (await hooks())[0]?.status === 'sent', 'the delivery recorded as sent');
    const [delivery] = await hooks();
    expect(delivery).toMatchObject({ status: 'sent', attempts: 2 });
    expect(delivery!.lastError).toMatch(/answered 500/);
    // The stored run is what the runner recorded, untouched by the alert.
    expect(await h.app.store.getSyncRun(run.id)).toEqual(run);
  });

  it("waits out a channel's Retry-After, given in seconds or as an HTTP date", async () => {
    const inTwoMinutes = new Date(Date.now() + 120_000).toUTCString();
    await using http = await HttpReceiver.start((path) => ({ status: 503, retryAfter: path === '/date' ? inTwoMinutes : '90' }));
    const notice: AlertNotice = { kind: 'test', event: 'test', condition: null, rule: 'test', subject: null, run: null, title: 'Test', text: 'test', fields: [], severity: 'info', dedupKey: 'test', occurredAt: 0 };
    const waits: Array<number | undefined> = [];
    for (const path of ['/seconds', '/date']) {
      const error = await new WebhookChannel({ name: 'hooks', url: `${http.url}${path}`, headers: {}, secret: null }).send(notice, { id: 1 }).then(
        () => null,
        (e: unknown) => e as LockstepError,
      );
      expect(error?.retryable).toBe(true);
      waits.push(error?.retryAfterSeconds);
    }
    expect(waits[0]).toBe(90);
    expect(waits[1]).toBeGreaterThan(100);
    expect(waits[1]).toBeLessThanOrEqual(120);
  });

  it('gives up at once on an error retrying cannot fix, and records it', async () => {
    await using t = await setup((path) => (path === '/slack' ? { status: 404 } : { status: 200 }));
    const { h } = t;
    sqlite(join(h.dir, 'crm.db'), 'drop table accounts');
    await runSync(h.app, 'accounts');
    await settle(h.app);
    const [delivery] = await h.app.store.alerts.listDeliveries({ channel: 'ops-slack', limit: 5, offset: 0 });
    expect(delivery).toMatchObject({ status: 'failed', attempts: 1, nextAttemptAt: null });
    expect(delivery!.lastError).toMatch(/slack channel "ops-slack": http:\/\/127\.0\.0\.1:\d+ answered 404/);
  });

  it('gives up at once on a channel URL that answers with a redirect, naming where it points, and sends nothing on as a GET', async () => {
    // An http:// URL for a server that moves every request to https:// (here: to another path).
    await using http = await HttpReceiver.start((path) => {
      if (path === '/h00k-s3cret') return { status: 301, location: '/moved' };
      if (path === '/to-https/h00k-s3cret') return { status: 308, location: 'https://alerts.example.test/to-https/h00k-s3cret' };
      return { status: 200 };
    });
    const notice: AlertNotice = { kind: 'test', event: 'test', condition: null, rule: 'test', subject: null, run: null, title: 'Test', text: 'test', fields: [], severity: 'info', dedupKey: 'test', occurredAt: 0 };
    const channel = new WebhookChannel({ name: 'hooks', url: `${http.url}/h00k-s3cret`, headers: {}, secret: null });
    const error = await channel.send(notice, { id: 1 }).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    expect(error?.retryable).toBe(false);
    expect(error?.message).toBe(
      `webhook channel "hooks": ${http.url} answered 301, a redirect to ${http.url}/moved — notices are not sent on to another address: set the channel's url to the one it redirects to`,
    );
    expect(http.attempts('/moved')).toBe(0);
    // Where it points keeps the secrets of the channel's url hidden.
    const https = new WebhookChannel({ name: 'hooks', url: `${http.url}/to-https/h00k-s3cret`, headers: {}, secret: null });
    const moved = await https.send(notice, { id: 2 }).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    expect(moved?.message).toMatch(/^webhook channel "hooks": http:\/\/127\.0\.0\.1:\d+ answered 308, a redirect to https:\/\/alerts\.example\.test\S* — /);
    expect(moved?.message).not.toMatch(/s3cret/);
  });

  it('gives up at once on a channel URL its variable made something else than an http(s) URL, without showing it', async () => {
    const notice: AlertNotice = { kind: 'test', event: 'test', condition: null, rule: 'test', subject: null, run: null, title: 'Test', text: 'test', fields: [], severity: 'info', dedupKey: 'test', occurredAt: 0 };
    const channels = [
      new SlackChannel({ name: 'ops', url: 'hooks.slack.com/services/T0/B0/sl4ck-s3cret' }),
      new WebhookChannel({ name: 'hooks', url: 'ftp://alerts.example.test/h00k-s3cret', headers: {}, secret: null }),
      new PagerDutyChannel({ name: 'oncall', url: 'events.pagerduty.com/v2/enqueue', routingKey: 'R0123456789abcdef0123456789abcde' }),
    ];
    const errors = await Promise.all(channels.map((c) => c.send(notice, { id: 1 }).then(() => null, (e: unknown) => e as LockstepError)));
    expect(errors.map((e) => [e?.retryable, e?.message.replace(/ once .*/, '')])).toEqual([
      [false, 'slack channel "ops": its url is not a URL'],
      [false, 'webhook channel "hooks": its url is a ftp:// URL'],
      [false, 'pagerduty channel "oncall": its url is not a URL'],
    ]);
    for (const error of errors) expect(error?.message).toMatch(/set it to an https:\/\/ \(or http:\/\/\) URL; `lockstep validate` checks it/);
    expect(errors.map((e) => e?.message).join('\n')).not.toMatch(/s3cret/);
  });

  it('refuses a webhook channel whose signing secret comes from a variable exported empty, naming it, and sends nothing unsigned', async () => {
    await using t = await setup(undefined, { HOOK_SECRET: '' });
    const { h, http } = t;
    const { delivery, error } = await h.app.alerts.testChannel('hooks');
    expect(error?.message).toBe(
      'alert channel "hooks" signs its notices with ${HOOK_SECRET}, but the environment variable HOOK_SECRET is empty: an HMAC keyed with nothing proves nothing — export HOOK_SECRET=<the secret the receiver checks signatures with> before running Lockstep, or remove the channel\'s secret to send notices unsigned',
    );
    expect(delivery).toMatchObject({ channel: 'hooks', status: 'failed', lastError: error?.message });
    expect(http.at('/hook')).toHaveLength(0);
    // A notice of a failed run is refused the same way, at once, not retried.
    sqlite(join(h.dir, 'crm.db'), 'drop table accounts');
    await runSync(h.app, 'accounts');
    await settle(h.app);
    const [failed] = await h.app.store.alerts.listDeliveries({ channel: 'hooks', limit: 1, offset: 0 });
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, lastError: error?.message });
    expect(http.at('/hook')).toHaveLength(0);
  });

  it("sends a webhook channel's headers once each, whatever their case: its Content-Type as given, never its own X-Lockstep-* in place of Lockstep's", async () => {
    await using http = await HttpReceiver.start();
    const notice: AlertNotice = { kind: 'test', event: 'test', condition: null, rule: 'test', subject: null, run: null, title: 'Test', text: 'test', fields: [], severity: 'info', dedupKey: 'test', occurredAt: 0 };
    const channel = new WebhookChannel({
      name: 'hooks',
      url: `${http.url}/hook`,
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'User-Agent': 'acme-alerts', 'x-lockstep-event': 'sync_failed', 'X-Team': 'data' },
      secret: SECRET,
    });
    await channel.send(notice, { id: 7 });
    const [hook] = http.at('/hook');
    expect(hook!.headers).toMatchObject({
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'acme-alerts',
      'x-lockstep-event': 'test',
      'x-lockstep-delivery': '7',
      'x-team': 'data',
      'x-lockstep-signature': `sha256=${createHmac('sha256', SECRET).update(hook!.raw).digest('hex')}`,
    });
  });

  it('sends a test alert to a channel now, and says so when the channel is unknown or refuses it', async () => {
    await using t = await setup((path) => (path === '/pd' ? { status: 400 } : { status: 200 }));
    const { h, http, smtp } = t;
    for (const name of ['ops-slack', 'hooks', 'mail']) {
      const delivery = await h.app.alerts.sendTestAlert(name);
      expect(delivery).toMatchObject({ channel: name, status: 'sent' });
    }
    expect(http.at('/slack')).toHaveLength(1);
    expect((http.at('/hook')[0]!.json as { event: string }).event).toBe('test');
    expect(subjectOf(smtp.messages[0]!.raw)).toBe('[Lockstep] Test alert from Lockstep');
    await expect(h.app.alerts.sendTestAlert('oncall')).rejects.toThrow(/pagerduty channel "oncall": .* answered 400/);
    await expect(h.app.alerts.sendTestAlert('pager')).rejects.toBeInstanceOf(NotFoundError);
    const deliveries = await h.app.store.alerts.listDeliveries({ limit: 10, offset: 0 });
    expect(deliveries.map((d) => [d.channel, d.status])).toEqual([
      ['oncall', 'failed'],
      ['mail', 'sent'],
      ['hooks', 'sent'],
      ['ops-slack', 'sent'],
    ]);
  });

  it('records a store it could not read as a summary in the delivery log, never the store\'s host or database', async () => {
    await using http = await HttpReceiver.start();
    const url = await createTestDatabase('lockstep_alert_log');
    const store = await PostgresStore.open({ url, poolSize: 2, statementTimeoutMs: 300 });
    const locker = new pg.Client({ connectionString: url });
    try {
      await store.applyWorkspace(
        { ...workspace({ sources: [source('warehouse', { path: 'warehouse.db' })] }), alerts: { channels: [{ name: 'hooks', type: 'webhook', url: `${http.url}/hook`, headers: {}, secret: null }], rules: [] } },
        Date.now(),
      );
      const notice: AlertNotice = { kind: 'test', event: 'test', condition: null, rule: 'test', subject: null, run: null, title: 'Test', text: 'test', fields: [], severity: 'info', dedupKey: 'test', occurredAt: Date.now() };
      const [queued] = await store.alerts.enqueueDeliveries([{ channel: 'hooks', notice }], Date.now());
      // Maintenance on the store holds the table of channels past the store's statement timeout.
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE lockstep.alert_definitions IN ACCESS EXCLUSIVE MODE');
      const logged: string[] = [];
      const logger = { debug() {}, info() {}, warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) };
      const dispatcher = new AlertDispatcher({ store: store.alerts, clock: systemClock, logger, openChannel: (def) => openAlertChannel(def, {}) });
      expect(await dispatcher.sendDue()).toBe(1);
      const [delivery] = await store.alerts.listDeliveries({ channel: 'hooks', limit: 1, offset: 0 });
      expect(delivery!.id).toBe(queued!.id);
      expect(delivery!.lastError).toBe('the store could not be read to send it — the server log has the error, under this delivery id');
      // The server log keeps the store's own words, for whoever runs it.
      expect(logged.join('\n')).toMatch(/statement timeout/);
      expect(http.at('/hook')).toHaveLength(0);
    } finally {
      await locker.end();
      await store.close();
    }
  });

  it('tries a delivery again when the store could not be read for a moment, and sends it once it can', async () => {
    await using http = await HttpReceiver.start();
    const url = await createTestDatabase('lockstep_alert_retry');
    const store = await PostgresStore.open({ url, poolSize: 2, statementTimeoutMs: 300 });
    const locker = new pg.Client({ connectionString: url });
    try {
      await store.applyWorkspace(
        { ...workspace({ sources: [source('warehouse', { path: 'warehouse.db' })] }), alerts: { channels: [{ name: 'hooks', type: 'webhook', url: `${http.url}/hook`, headers: {}, secret: null }], rules: [] } },
        Date.now(),
      );
      const notice: AlertNotice = { kind: 'test', event: 'test', condition: null, rule: 'test', subject: null, run: null, title: 'Test', text: 'test', fields: [], severity: 'info', dedupKey: 'test', occurredAt: Date.now() };
      await store.alerts.enqueueDeliveries([{ channel: 'hooks', notice }], Date.now());
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE lockstep.alert_definitions IN ACCESS EXCLUSIVE MODE');
      const dispatcher = new AlertDispatcher({
        store: store.alerts,
        clock: systemClock,
        logger: silentLogger,
        openChannel: (def) => openAlertChannel(def, {}),
        retry: { attempts: 5, baseDelayMs: 50, maxDelayMs: 50, jitter: 0 },
      });
      await dispatcher.sendDue();
      const [waiting] = await store.alerts.listDeliveries({ channel: 'hooks', limit: 1, offset: 0 });
      expect(waiting).toMatchObject({ status: 'pending', attempts: 1, nextAttemptAt: expect.any(Number) });
      // The maintenance ends; the next attempt reads the channel and sends the notice.
      await locker.query('COMMIT');
      await new Promise((r) => setTimeout(r, 100));
      await dispatcher.sendDue();
      const [sent] = await store.alerts.listDeliveries({ channel: 'hooks', limit: 1, offset: 0 });
      expect(sent).toMatchObject({ status: 'sent', attempts: 2 });
      expect(http.at('/hook')).toHaveLength(1);
    } finally {
      await locker.end();
      await store.close();
    }
  });
});

/**
 * Alerts through the API on a real server and a real SQLite store (PostgreSQL for the conflicts found
 * inside the store's transaction): channels and rules created, read, replaced and deleted with
 * `lockstep validate`'s rules; secrets never in an answer; test alerts reaching a local HTTP
 * receiver; a failing receiver's delivery with its attempts and error.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertRuleDef, AlertsDefinition } from '../../src/core/alerts.js';
import { HttpReceiver } from '../alerts/receivers.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startApi, type ApiHarness } from './api-helpers.js';

const HOOK_SECRET = 'hook-s3cret-0123456789';
const HEADER_TOKEN = 'hdr-t0ken-abcdef';
const SLACK_PATH = 'T0001/B0002/slack-s3cret-path';
/** An Integration Key's 32 characters. */
const ROUTING_KEY = 'pd-r0uting-key-777-0123456789abc';
const SMTP_PASSWORD = 'mail-pa55word';
const SECRETS = [HOOK_SECRET, HEADER_TOKEN, SLACK_PATH, 'slack-s3cret-path', ROUTING_KEY, SMTP_PASSWORD];

let api: ApiHarness;
let receiver: HttpReceiver;
/** Every answer's text, checked for secrets at the end. */
const answers: string[] = [];

async function call(method: string, path: string, body?: unknown) {
  const answer = await api.call(method, path, body);
  answers.push(answer.text);
  return answer;
}

beforeAll(async () => {
  api = await startApi({ env: { PD_KEY: 'pd-from-env-0123456789abcdefghij', NOT_LISTED_KEY: 'short', SLACK_WEBHOOK_URL: 'http://127.0.0.1:1/slack', LOCKSTEP_ENV_ALLOW: 'PD_KEY,SLACK_WEBHOOK_URL' } });
  receiver = await HttpReceiver.start((path) => (path === '/fail' ? { status: 500 } : { status: 200 }));
});
afterAll(async () => {
  await receiver[Symbol.asyncDispose]();
  await api[Symbol.asyncDispose]();
});

describe('alert channels and rules through the API', () => {
  it('creates, reads, replaces and deletes channels and rules; apply keeps what the API created', async () => {
    expect((await call('GET', '/api/alerts')).body).toEqual({ channels: [], rules: [] });

    const created = await call('POST', '/api/alerts/channels', {
      name: 'hooks',
      type: 'webhook',
      url: `${receiver.url}/ok`,
      headers: { Authorization: `Bearer ${HEADER_TOKEN}` },
      secret: HOOK_SECRET,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'hooks', type: 'webhook', origin: 'api', secret: '***', headers: { Authorization: '***' }, url: `${receiver.url}/***`, target: `${receiver.url}/***` });
    expect(created.body.warning).toBeUndefined();
    expect((await call('POST', '/api/alerts/channels', { name: 'hooks', type: 'slack', url: 'https://hooks.slack.com/x' })).status).toBe(409);
    const local = await call('POST', '/api/alerts/channels', { name: 'local', type: 'webhook', url: 'file:///etc/passwd' });
    expect(local.status).toBe(422);
    // A webhook whose path is its token (Discord, Teams, Zapier) shows no part of it.
    const token = 'T0k3nInThePath-9f8e7d6c5b4a';
    const discord = await call('POST', '/api/alerts/channels', { name: 'discord', type: 'webhook', url: `https://discord.example.com/api/webhooks/123/${token}` });
    expect(discord.status).toBe(201);
    expect(discord.body).toMatchObject({ url: 'https://discord.example.com/***', target: 'https://discord.example.com/***' });
    expect(JSON.stringify((await call('GET', '/api/alerts')).body)).not.toContain(token);
    expect((await call('DELETE', '/api/alerts/channels/discord')).status).toBe(204);
    expect(JSON.stringify(local.body)).toContain('url must start with https:// or http://, not file://');

    const rule = await call('POST', '/api/alerts/rules', { name: 'crm-watch', sequences: ['crm-hierarchy'], on: ['sequence_failed', 'recovered'], channels: ['hooks'] });
    expect(rule.status).toBe(201);
    expect(rule.body).toEqual({
      name: 'crm-watch',
      on: ['sequence_failed', 'recovered'],
      syncs: [],
      sequences: ['crm-hierarchy'],
      rejectedPercent: 0,
      slowerThanMinutes: null,
      channels: ['hooks'],
      origin: 'api',
      workspaceDefault: false,
    });
    const fallback = await call('POST', '/api/alerts/rules', { name: 'everything', channels: ['hooks'] });
    expect(fallback.body).toMatchObject({ workspaceDefault: true, on: ['sync_failed', 'sequence_failed', 'rejected_rows', 'recovered'] });

    // A rule read back and sent back unchanged is stored unchanged; then changed.
    const listed = (await call('GET', '/api/alerts')).body;
    expect(listed.rules.map((r: { name: string }) => r.name)).toEqual(['crm-watch', 'everything']);
    const same = await call('PUT', '/api/alerts/rules/crm-watch', listed.rules[0]);
    expect(same.status).toBe(200);
    expect(same.body).toEqual(listed.rules[0]);
    const slower = await call('PUT', '/api/alerts/rules/crm-watch', { ...listed.rules[0], on: ['sequence_failed', 'slow_run'], slowerThanMinutes: 30 });
    expect(slower.status).toBe(200);
    expect(slower.body).toMatchObject({ on: ['sequence_failed', 'slow_run'], slowerThanMinutes: 30 });

    // The channel read back (secrets redacted) and sent back with a change keeps its secrets.
    const channel = listed.channels[0];
    const moved = await call('PUT', '/api/alerts/channels/hooks', { ...channel, url: `${receiver.url}/moved` });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ url: `${receiver.url}/***`, secret: '***', origin: 'api' });
    const stored = (await api.app.store.alerts.getDefinition()).channels[0];
    expect(stored).toMatchObject({ secret: HOOK_SECRET, headers: { Authorization: `Bearer ${HEADER_TOKEN}` }, url: `${receiver.url}/moved` });

    // apply keeps what the API created (the stored workspace's own definition has no alerts).
    const workspace = await api.app.store.loadWorkspace();
    const { hierarchyWorkspace } = await import('./api-helpers.js');
    await api.app.store.applyWorkspace({ ...hierarchyWorkspace(api.dir), alerts: { channels: [], rules: [] } }, api.app.clock.now());
    expect((await api.app.store.loadWorkspace()).alerts).toEqual(workspace.alerts);

    // Deleting a channel rules send to is refused, naming them.
    const refused = await call('DELETE', '/api/alerts/channels/hooks');
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/alert rule "crm-watch", alert rule "everything"/);
    // Deleting a sequence a rule watches is refused too.
    expect((await call('DELETE', '/api/sequences/crm-hierarchy')).body.message).toMatch(/alert rule "crm-watch"/);

    expect((await call('DELETE', '/api/alerts/rules/crm-watch')).status).toBe(204);
    expect((await call('DELETE', '/api/alerts/rules/everything')).status).toBe(204);
    expect((await call('DELETE', '/api/alerts/rules/everything')).status).toBe(404);
    expect((await call('DELETE', '/api/alerts/channels/hooks')).status).toBe(204);
    expect((await call('PUT', '/api/alerts/channels/hooks', channel)).status).toBe(404);
    expect((await call('GET', '/api/alerts')).body).toEqual({ channels: [], rules: [] });
  });

  it('a file-managed rule edited through the API carries a warning, and apply puts the file version back', async () => {
    const { hierarchyWorkspace } = await import('./api-helpers.js');
    const fileRule: AlertRuleDef = { name: 'file-rule', on: ['sync_failed'], syncs: ['accounts-to-crm'], sequences: [], rejectedPercent: 0, slowerThanMinutes: null, channels: ['ops'] };
    const alerts: AlertsDefinition = { channels: [{ name: 'ops', type: 'slack', url: `https://hooks.slack.com/services/${SLACK_PATH}` }], rules: [fileRule] };
    await api.app.store.applyWorkspace({ ...hierarchyWorkspace(api.dir), alerts }, api.app.clock.now());
    const read = (await call('GET', '/api/alerts')).body;
    expect(read.channels[0]).toMatchObject({ name: 'ops', origin: 'file', url: 'https://hooks.slack.com/***' });
    const edited = await call('PUT', '/api/alerts/rules/file-rule', { ...read.rules[0], on: ['sync_failed', 'recovered'] });
    expect(edited.status).toBe(200);
    expect(edited.body.warning).toMatch(/managed by the workspace files: the next `lockstep apply` will overwrite this change/);
    await api.app.store.applyWorkspace({ ...hierarchyWorkspace(api.dir), alerts }, api.app.clock.now());
    expect((await call('GET', '/api/alerts')).body.rules[0].on).toEqual(['sync_failed']);
    // A file declaring the name of an API-created rule takes it over.
    await call('POST', '/api/alerts/rules', { name: 'taken', channels: ['ops'], syncs: ['contacts-to-crm'] });
    await api.app.store.applyWorkspace({ ...hierarchyWorkspace(api.dir), alerts: { ...alerts, rules: [fileRule, { ...fileRule, name: 'taken' }] } }, api.app.clock.now());
    expect((await call('GET', '/api/alerts')).body.rules.map((r: { name: string; origin: string }) => `${r.name}:${r.origin}`)).toEqual(['file-rule:file', 'taken:file']);
    await api.app.store.applyWorkspace(hierarchyWorkspace(api.dir), api.app.clock.now());
    expect((await call('GET', '/api/alerts')).body).toEqual({ channels: [], rules: [] });
  });

  it('answers 422 naming each field, with did-you-mean for unknown channels, syncs and sequences', async () => {
    await call('POST', '/api/alerts/channels', { name: 'ops-slack', type: 'slack', url: '${SLACK_WEBHOOK_URL}' });
    const bad = await call('POST', '/api/alerts/rules', {
      name: 'bad',
      syncs: ['acounts-to-crm'],
      sequences: ['crm-hierachy'],
      on: ['sync_failed', 'slow_run'],
      channels: ['ops-slak'],
    });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toBe('Validation failed');
    expect(bad.body.details['syncs[0]']).toMatch(/unknown sync "acounts-to-crm" \(did you mean "accounts-to-crm"\?\)/);
    expect(bad.body.details['sequences[0]']).toMatch(/unknown sequence "crm-hierachy" \(did you mean "crm-hierarchy"\?\)/);
    expect(bad.body.details['channels[0]']).toMatch(/unknown alert channel "ops-slak" \(did you mean "ops-slack"\?\)/);
    expect(bad.body.details.on).toMatch(/slowerThanMinutes/);

    const noName = await call('POST', '/api/alerts/rules', { channels: ['ops-slack'], zz: 1 });
    expect(noName.status).toBe(422);
    expect(Object.keys(noName.body.details).sort()).toEqual(['name', 'zz']);

    const badChannel = await call('POST', '/api/alerts/channels', { name: 'Bad Name', type: 'webhok', url: 'x' });
    expect(badChannel.status).toBe(422);
    expect(badChannel.body.details.name).toMatch(/invalid name "Bad Name"/);
    expect(badChannel.body.details.type).toBeDefined();

    const missing = await call('POST', '/api/alerts/channels', { name: 'pd', type: 'pagerduty' });
    expect(missing.body.details.routingKey).toMatch(/required|routingKey/);
    const short = await call('POST', '/api/alerts/channels', { name: 'pd', type: 'pagerduty', routingKey: 'pd-r0uting-key-777' });
    expect(short.status).toBe(422);
    expect(short.body.details.routingKey).toMatch(/^routingKey of alert channel "pd" is 18 characters long; a PagerDuty Integration Key has 32 — use the Integration Key/);
    // A variable the allow-list does not list is refused as such; nothing of its value is told.
    const unlisted = await call('POST', '/api/alerts/channels', { name: 'pd', type: 'pagerduty', routingKey: '${NOT_LISTED_KEY}' });
    expect(unlisted.status).toBe(422);
    expect(unlisted.body.details.routingKey).toMatch(/uses \$\{NOT_LISTED_KEY\}, which entities created or changed through the API may not read/);
    expect(unlisted.text).not.toMatch(/characters long/);

    const renamed = await call('PUT', '/api/alerts/channels/ops-slack', { name: 'other', type: 'slack', url: '${SLACK_WEBHOOK_URL}' });
    expect(renamed.body.details.name).toMatch(/differs from "ops-slack"/);
    expect((await call('GET', '/api/alerts/deliveries?status=lost')).body.details.status).toMatch(/pending, sent, failed, given_up/);
    expect((await call('DELETE', '/api/alerts/channels/ops-slack')).status).toBe(204);
    expect((await call('GET', '/api/alerts')).body.rules).toEqual([]);
  });

  it('refuses a hidden header or routing key sent back with the channel pointed at another host', async () => {
    const hook = await call('POST', '/api/alerts/channels', { name: 'moved-hook', type: 'webhook', url: 'https://hooks.example.com/lockstep', headers: { Authorization: `Bearer ${HEADER_TOKEN}` } });
    expect(hook.status).toBe(201);
    const elsewhere = await call('PUT', '/api/alerts/channels/moved-hook', { ...hook.body, url: 'https://collector.example.net/lockstep' });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.details['headers.Authorization']).toContain('a stored secret is not sent to another host');
    // Another path on the same host keeps it, as before.
    expect((await call('PUT', '/api/alerts/channels/moved-hook', { ...hook.body, url: 'https://hooks.example.com/lockstep/v2' })).status).toBe(200);
    const pager = await call('POST', '/api/alerts/channels', { name: 'moved-pager', type: 'pagerduty', routingKey: 'R0UTINGKEY0123456789abcdef012345' });
    expect(pager.status, pager.text).toBe(201);
    const pagerElsewhere = await call('PUT', '/api/alerts/channels/moved-pager', { ...pager.body, url: 'https://collector.example.net/v2/enqueue' });
    expect(pagerElsewhere.status).toBe(422);
    expect(pagerElsewhere.body.details.routingKey).toContain('a stored secret is not sent to another host');
    for (const name of ['moved-hook', 'moved-pager']) expect((await call('DELETE', `/api/alerts/channels/${name}`)).status).toBe(204);
  });

  it('answers an empty or blank webhook secret with one message each', async () => {
    const empty = await call('POST', '/api/alerts/channels', { name: 'hooks-empty', type: 'webhook', url: `${receiver.url}/ok`, secret: '' });
    expect(empty.status).toBe(422);
    expect(empty.body.details).toEqual({ secret: 'secret is empty — write the secret, or a ${ENV} template' });
    const blank = await call('POST', '/api/alerts/channels', { name: 'hooks-blank', type: 'webhook', url: `${receiver.url}/ok`, secret: '  ' });
    expect(blank.status).toBe(422);
    expect(blank.body.details).toEqual({ secret: 'secret is blank — a blank secret signs nothing anybody could not sign: write the secret, or a ${ENV} template' });
  });

  it('redacts every secret of every kind of channel', async () => {
    const channels = [
      { name: 'slack', type: 'slack', url: `https://hooks.slack.com/services/${SLACK_PATH}` },
      { name: 'pager', type: 'pagerduty', routingKey: ROUTING_KEY },
      { name: 'mail', type: 'email', smtp: `smtp://lockstep:${SMTP_PASSWORD}@mail.example.com:587`, from: 'lockstep@example.com', to: ['data@example.com'] },
      { name: 'templated', type: 'pagerduty', routingKey: '${PD_KEY}' },
    ];
    for (const channel of channels) expect((await call('POST', '/api/alerts/channels', channel)).status, channel.name).toBe(201);
    const { body } = await call('GET', '/api/alerts');
    const byName = Object.fromEntries(body.channels.map((c: { name: string }) => [c.name, c]));
    expect(byName.slack).toMatchObject({ url: 'https://hooks.slack.com/***', target: 'https://hooks.slack.com/***' });
    expect(byName.pager).toMatchObject({ routingKey: '***' });
    expect(byName.mail).toMatchObject({ smtp: 'smtp://lockstep:***@mail.example.com:587', target: 'data@example.com' });
    expect(byName.templated).toMatchObject({ routingKey: '${PD_KEY}' });
    // Sent back as read: the secrets stay.
    for (const c of body.channels) expect((await call('PUT', `/api/alerts/channels/${c.name}`, c)).status).toBe(200);
    const stored = (await api.app.store.alerts.getDefinition()).channels;
    expect(JSON.stringify(stored)).toContain(SLACK_PATH);
    expect(JSON.stringify(stored)).toContain(ROUTING_KEY);
    expect(JSON.stringify(stored)).toContain(SMTP_PASSWORD);
    for (const c of channels) expect((await call('DELETE', `/api/alerts/channels/${c.name}`)).status).toBe(204);
  });
});

describe('test alerts and deliveries', () => {
  it('sends a test alert to a receiver and answers with the delivery', async () => {
    await call('POST', '/api/alerts/channels', { name: 'receiver', type: 'webhook', url: `${receiver.url}/ok`, secret: HOOK_SECRET });
    const sent = await call('POST', '/api/alerts/channels/receiver/test');
    expect(sent.status).toBe(200);
    expect(sent.body).toMatchObject({ channel: 'receiver', event: 'test', kind: 'test', status: 'sent', attempts: 1, lastError: null, subject: null });
    const [request] = receiver.at('/ok').filter((r) => (r.json as { deliveryId: number }).deliveryId === sent.body.id);
    expect(request?.headers['x-lockstep-event']).toBe('test');
    expect(request?.headers['x-lockstep-signature']).toBe(`sha256=${createHmac('sha256', HOOK_SECRET).update(request?.raw ?? '').digest('hex')}`);
    const listed = await call('GET', '/api/alerts/deliveries?channel=receiver');
    expect(listed.body).toMatchObject({ hasMore: false, data: [{ id: sent.body.id, status: 'sent', attempts: 1 }] });
    expect(listed.body.data[0].sentAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await call('POST', '/api/alerts/channels/nowhere/test')).status).toBe(404);
  });

  it("shows a failing receiver's deliveries with their attempts and the error", async () => {
    await call('POST', '/api/alerts/channels', { name: 'broken', type: 'webhook', url: `${receiver.url}/fail` });
    const test = await call('POST', '/api/alerts/channels/broken/test');
    expect(test.status).toBe(200);
    expect(test.body).toMatchObject({ status: 'given_up', attempts: 1, nextAttemptAt: null });
    expect(test.body.lastError).toMatch(/webhook channel "broken": http:\/\/127\.0\.0\.1:\d+ answered 500/);

    // A notice from a rule is retried: after a failed attempt it is `failed` with its next attempt.
    const { app } = api;
    const [queued] = await app.store.alerts.enqueueDeliveries(
      [{ channel: 'broken', notice: { ...test.body, kind: 'triggered', event: 'sync_failed', condition: 'failed', rule: 'r', subject: { kind: 'sync', slug: 'accounts-to-crm' }, run: { kind: 'sync', id: '7', status: 'failed', url: 'http://127.0.0.1:3000/syncs/accounts-to-crm?run=7' }, fields: [], severity: 'error', dedupKey: 'k', occurredAt: app.clock.now() } }],
      app.clock.now(),
    );
    await app.alerts.sendDue();
    const failed = await call('GET', '/api/alerts/deliveries?status=failed&channel=broken');
    expect(failed.body.data).toHaveLength(1);
    expect(failed.body.data[0]).toMatchObject({ id: queued?.id, status: 'failed', attempts: 1, event: 'sync_failed', subject: { kind: 'sync', slug: 'accounts-to-crm' }, run: { id: '7' } });
    expect(failed.body.data[0].lastError).toMatch(/answered 500/);
    expect(Date.parse(failed.body.data[0].nextAttemptAt)).toBeGreaterThan(Date.now());

    const givenUp = await call('GET', '/api/alerts/deliveries?status=given_up');
    expect(givenUp.body.data.map((d: { id: number }) => d.id)).toEqual([test.body.id]);
    const paged = await call('GET', '/api/alerts/deliveries?limit=1');
    expect(paged.body.hasMore).toBe(true);
    expect(paged.body.data).toHaveLength(1);
  });

  it('lists every alert route in the OpenAPI document, and no answer holds a secret', async () => {
    const paths = Object.keys((await call('GET', '/api/openapi.json')).body.paths);
    for (const path of ['/api/alerts', '/api/alerts/channels', '/api/alerts/channels/{name}', '/api/alerts/channels/{name}/test', '/api/alerts/rules', '/api/alerts/rules/{name}', '/api/alerts/deliveries']) {
      expect(paths).toContain(path);
    }
    const all = answers.join('\n') + api.logs.join('\n');
    for (const secret of SECRETS) expect(all).not.toContain(secret);
  });
});

describe('alert channels and rules through the API on a PostgreSQL store', () => {
  it('answers the conflicts found inside the store transaction with 409 naming them, as on the embedded store', async () => {
    await using pg = await startApi({ env: { LOCKSTEP_STORE: await createTestDatabase('lockstep_alerts_api') } });
    const hooks = { name: 'hooks', type: 'webhook', url: 'http://127.0.0.1:1/hook' };
    expect((await pg.call('POST', '/api/alerts/channels', hooks)).status).toBe(201);
    const rule = { name: 'watch', on: ['sync_failed'], channels: ['hooks'] };
    expect((await pg.call('POST', '/api/alerts/rules', rule)).status).toBe(201);

    const again = await pg.call('POST', '/api/alerts/channels', hooks);
    expect(again.status).toBe(409);
    expect(again.body.message).toBe('alert channel "hooks" exists already — update it with PUT /api/alerts/channels/hooks');
    const used = await pg.call('DELETE', '/api/alerts/channels/hooks');
    expect(used.status).toBe(409);
    expect(used.body.message).toBe('alert channel "hooks" is used by alert rule "watch" — change or delete it first');
    expect((await pg.call('GET', '/api/alerts')).body.channels.map((c: { name: string }) => c.name)).toEqual(['hooks']);
    expect(pg.logs.filter((line) => line.includes('request failed'))).toEqual([]);
  });
});

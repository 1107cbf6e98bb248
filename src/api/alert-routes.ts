/**
 * Alerts through the API: the channels and rules as stored (secrets redacted), their editing with
 * the same validation as `lockstep validate`, test alerts, and the log of deliveries.
 *
 * Channels and rules carry an origin like entities: `api` when created here (`apply` keeps them),
 * `file` when written by `apply` (editing them here works until the next `apply`, and the answer
 * carries a `warning`).
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { AlertEvent, isDefaultRule, type AlertChannelDef, type AlertDelivery, type AlertDeliveryQuery, type AlertRuleDef } from '../core/alerts.js';
import { assertNever, ErrorCode, LockstepError, NotFoundError } from '../core/errors.js';
import { iso } from '../core/run-views.js';
import type { WorkspaceState } from '../core/workspace.js';
import { validateAlertChannel, validateAlertRule } from '../workspace/index.js';
import type { ApiDeps } from './context.js';
import { HttpError, validationFailed } from './http-errors.js';
import { movedAddress } from '../core/connector-registry.js';
import { defineRoute } from './route.js';
import { errors, intText, page } from './schemas.js';
import { REDACTED, isTemplateOnly, redactSecret, redactValue } from '../core/connections.js';
import { ALERT_CHANNEL_SECRETS } from '../core/secrets.js';
import { refuseUnlistedBodyTemplates } from './template-access.js';

/** What the API calls a delivery's state; the store's `failed` (no attempts left) is `given_up` here. */
export const DeliveryState = {
  /** Waiting for its first attempt. */
  Pending: 'pending',
  /** The channel accepted it. */
  Sent: 'sent',
  /** An attempt failed; it is tried again at `nextAttemptAt`. */
  Failed: 'failed',
  /** Every attempt failed, or the channel refused it in a way retrying cannot fix; not tried again. */
  GivenUp: 'given_up',
} as const;
export type DeliveryState = (typeof DeliveryState)[keyof typeof DeliveryState];
const DELIVERY_STATES = Object.values(DeliveryState) as [DeliveryState, ...DeliveryState[]];


const Origin = z.enum(['file', 'api']);

export const AlertChannelView = z
  .object({
    name: z.string(),
    type: z.enum(['slack', 'webhook', 'email', 'pagerduty']),
    origin: Origin,
    target: z.string().openapi({ description: 'Where notices go, for display; secrets redacted.' }),
  })
  .catchall(z.unknown())
  .openapi('AlertChannel', {
    description:
      'A channel as stored, its settings redacted: the path and query of a Slack or webhook URL, a webhook secret and header values, a PagerDuty routing key and an SMTP password show as *** (a value that is only a ${VAR} template is shown). Sending a redacted value back keeps the stored one.',
  });

export const AlertRuleView = z
  .object({
    name: z.string(),
    on: z.array(z.enum(AlertEvent)),
    syncs: z.array(z.string()),
    sequences: z.array(z.string()),
    rejectedPercent: z.number(),
    slowerThanMinutes: z.number().nullable(),
    channels: z.array(z.string()),
    origin: Origin,
    workspaceDefault: z.boolean().openapi({ description: 'It names no sync and no sequence: it watches every one, for the events no rule naming it lists.' }),
  })
  .openapi('AlertRule');

const warning = z.string().optional().openapi({ description: 'Present when the workspace files manage it: the next apply puts the file version back.' });

const AlertChannelWithWarning = AlertChannelView.extend({ warning }).openapi('AlertChannelWithWarning');
export const AlertRuleWithWarning = AlertRuleView.extend({ warning }).openapi('AlertRuleWithWarning');

export const AlertsView = z.object({ channels: z.array(AlertChannelView), rules: z.array(AlertRuleView) }).openapi('Alerts');

const AlertChannelBody = z
  .object({ name: z.string().optional().openapi({ description: 'Required when creating.' }) })
  .catchall(z.unknown())
  .openapi('AlertChannelBody', { description: 'One entry of alerts.channels (the same fields as in lockstep.yaml) plus its name; validated like `lockstep validate`.' });

const AlertRuleBody = z
  .object({ name: z.string().optional().openapi({ description: 'Required when creating.' }) })
  .catchall(z.unknown())
  .openapi('AlertRuleBody', { description: 'One item of alerts.rules (the same fields as in lockstep.yaml), named; validated like `lockstep validate`.' });

export const AlertDeliveryView = z
  .object({
    id: z.number().int(),
    channel: z.string(),
    event: z.string().openapi({ description: 'sync_failed, rejected_rows, sequence_failed, slow_run, recovered, or test.' }),
    kind: z.enum(['triggered', 'resolved', 'test']),
    title: z.string(),
    text: z.string(),
    subject: z.object({ kind: z.enum(['sync', 'sequence']), slug: z.string() }).nullable(),
    run: z.object({ kind: z.enum(['sync', 'sequence']), id: z.string(), url: z.string() }).nullable(),
    status: z.enum(DELIVERY_STATES),
    attempts: z.number().int(),
    nextAttemptAt: z.string().nullable(),
    lastError: z.string().nullable(),
    createdAt: z.string(),
    sentAt: z.string().nullable(),
  })
  .openapi('AlertDelivery');

const NameParam = z.object({ name: z.string().min(1) });

const DeliveryQuery = z.strictObject({
  status: z.enum(DELIVERY_STATES, { error: `status must be one of: ${DELIVERY_STATES.join(', ')}` }).optional(),
  channel: z.string().min(1).optional(),
  limit: intText('limit', 1, 100).optional().openapi({ description: 'Items per page, 1..100 (default: 20).' }),
  offset: intText('offset', 0).optional().openapi({ description: 'Items to skip (default: 0).' }),
});

export function registerAlertRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const { store, clock, env } = deps;
  const tag = 'Alerts';

  const findChannel = (state: WorkspaceState, name: string) => {
    const found = state.alerts.channels.find((c) => c.name === name);
    if (!found) throw new NotFoundError(`no alert channel "${name}"${namesHint(state.alerts.channels.map((c) => c.name))}`);
    return found;
  };
  const findRule = (state: WorkspaceState, name: string) => {
    const found = state.alerts.rules.find((r) => r.name === name);
    if (!found) throw new NotFoundError(`no alert rule "${name}"${namesHint(state.alerts.rules.map((r) => r.name))}`);
    return found;
  };

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/alerts',
      summary: 'Alert channels (secrets redacted) and rules as stored',
      tag,
      responses: { 200: { description: 'Channels and rules', schema: AlertsView }, 401: errors[401] },
    },
    async (c) => {
      const { channels, rules } = await store.alerts.getDefinition();
      return c.json({ channels: channels.map(channelView), rules: rules.map(ruleView) });
    },
  );

  // --- channels
  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/alerts/channels',
      summary: 'Create an alert channel',
      tag,
      body: AlertChannelBody,
      responses: { 201: { description: 'Created', schema: AlertChannelView }, 401: errors[401], 409: { description: 'The name exists', schema: errors[404].schema }, 422: errors[422] },
    },
    async (c, { body }) => {
      const state = await store.loadWorkspace();
      refuseUnlistedBodyTemplates(body, null, env);
      const result = validateAlertChannel(body, null, state, env);
      if (!result.ok) throw validationFailed(result.details);
      const channel: AlertChannelDef = { ...result.definition, origin: 'api' };
      const stored = await store.updateAlerts((current) => {
        if (current.channels.some((x) => x.name === channel.name)) {
          throw new LockstepError(ErrorCode.Conflict, `alert channel "${channel.name}" exists already — update it with PUT /api/alerts/channels/${channel.name}`);
        }
        return { ...current, channels: [...current.channels, channel] };
      }, clock.now());
      return c.json(channelAnswer(findChannel({ ...state, alerts: stored }, channel.name)), 201);
    },
  );
  defineRoute(
    app,
    {
      method: 'put',
      path: '/api/alerts/channels/{name}',
      summary: 'Replace an alert channel (a redacted secret sent back keeps the stored one)',
      tag,
      params: NameParam,
      body: AlertChannelBody,
      responses: { 200: { description: 'The stored channel; `warning` when the workspace files manage it', schema: AlertChannelWithWarning }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, body }) => {
      const state = await store.loadWorkspace();
      const previous = findChannel(state, params.name);
      const sent = keepRedactedSecrets(body, previous);
      refuseUnlistedBodyTemplates(sent, body.type === undefined || body.type === previous.type ? channelSettings(previous) : null, env);
      const result = validateAlertChannel(sent, params.name, state, env);
      if (!result.ok) throw validationFailed(result.details);
      const channel: AlertChannelDef = { ...result.definition, origin: previous.origin ?? 'file' };
      const stored = await store.updateAlerts((current) => {
        if (!current.channels.some((x) => x.name === channel.name)) throw new NotFoundError(`no alert channel "${channel.name}"`);
        return { ...current, channels: current.channels.map((x) => (x.name === channel.name ? channel : x)) };
      }, clock.now());
      return c.json(channelAnswer(findChannel({ ...state, alerts: stored }, channel.name)));
    },
  );
  defineRoute(
    app,
    {
      method: 'delete',
      path: '/api/alerts/channels/{name}',
      summary: 'Delete an alert channel',
      tag,
      params: NameParam,
      responses: { 204: { description: 'Deleted' }, 401: errors[401], 404: errors[404], 409: { description: 'Rules send to it; the message names them', schema: errors[404].schema } },
    },
    async (c, { params }) => {
      await store.updateAlerts((current) => {
        if (!current.channels.some((x) => x.name === params.name)) throw new NotFoundError(`no alert channel "${params.name}"`);
        const users = current.rules.filter((r) => r.channels.includes(params.name)).map((r) => `alert rule "${r.name}"`);
        if (users.length > 0) {
          throw new LockstepError(ErrorCode.Conflict, `alert channel "${params.name}" is used by ${users.join(', ')} — change or delete ${users.length === 1 ? 'it' : 'them'} first`);
        }
        return { ...current, channels: current.channels.filter((x) => x.name !== params.name) };
      }, clock.now());
      return c.body(null, 204);
    },
  );
  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/alerts/channels/{name}/test',
      summary: 'Send a test alert to a channel now (like `lockstep alerts test`); answers with the delivery, sent or given up with the error',
      tag,
      params: NameParam,
      responses: { 200: { description: 'The delivery', schema: AlertDeliveryView }, 401: errors[401], 404: errors[404] },
    },
    async (c, { params }) => {
      const { delivery } = await deps.alerts.testChannel(params.name);
      return c.json(deliveryView(delivery));
    },
  );

  // --- rules
  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/alerts/rules',
      summary: 'Create an alert rule',
      tag,
      body: AlertRuleBody,
      responses: { 201: { description: 'Created', schema: AlertRuleView }, 401: errors[401], 409: { description: 'The name exists', schema: errors[404].schema }, 422: errors[422] },
    },
    async (c, { body }) => {
      const state = await store.loadWorkspace();
      if (typeof (body as { name?: unknown }).name === 'string' && state.alerts.rules.some((r) => r.name === body.name)) {
        throw new HttpError(409, `alert rule "${body.name}" exists already — update it with PUT /api/alerts/rules/${body.name}`);
      }
      const result = validateAlertRule(body, null, state, env);
      if (!result.ok) throw validationFailed(result.details);
      const rule: AlertRuleDef = { ...result.definition, origin: 'api' };
      const stored = await store.updateAlerts((current) => {
        if (current.rules.some((x) => x.name === rule.name)) {
          throw new LockstepError(ErrorCode.Conflict, `alert rule "${rule.name}" exists already — update it with PUT /api/alerts/rules/${rule.name}`);
        }
        return { ...current, rules: [...current.rules, rule] };
      }, clock.now());
      return c.json(ruleAnswer(findRule({ ...state, alerts: stored }, rule.name)), 201);
    },
  );
  defineRoute(
    app,
    {
      method: 'put',
      path: '/api/alerts/rules/{name}',
      summary: 'Replace an alert rule',
      tag,
      params: NameParam,
      body: AlertRuleBody,
      responses: { 200: { description: 'The stored rule; `warning` when the workspace files manage it', schema: AlertRuleWithWarning }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, body }) => {
      const state = await store.loadWorkspace();
      const previous = findRule(state, params.name);
      const result = validateAlertRule(body, params.name, state, env);
      if (!result.ok) throw validationFailed(result.details);
      const rule: AlertRuleDef = { ...result.definition, origin: previous.origin ?? 'file' };
      const stored = await store.updateAlerts((current) => {
        if (!current.rules.some((x) => x.name === rule.name)) throw new NotFoundError(`no alert rule "${rule.name}"`);
        return { ...current, rules: current.rules.map((x) => (x.name === rule.name ? rule : x)) };
      }, clock.now());
      return c.json(ruleAnswer(findRule({ ...state, alerts: stored }, rule.name)));
    },
  );
  defineRoute(
    app,
    {
      method: 'delete',
      path: '/api/alerts/rules/{name}',
      summary: 'Delete an alert rule',
      tag,
      params: NameParam,
      responses: { 204: { description: 'Deleted' }, 401: errors[401], 404: errors[404] },
    },
    async (c, { params }) => {
      await store.updateAlerts((current) => {
        if (!current.rules.some((x) => x.name === params.name)) throw new NotFoundError(`no alert rule "${params.name}"`);
        return { ...current, rules: current.rules.filter((x) => x.name !== params.name) };
      }, clock.now());
      return c.body(null, 204);
    },
  );

  // --- deliveries
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/alerts/deliveries',
      summary: 'Alert deliveries, newest first: event, subject, channel, status (pending, sent, failed and retrying, given up), attempts, next attempt, last error',
      tag,
      query: DeliveryQuery,
      responses: { 200: { description: 'A page of deliveries', schema: page(AlertDeliveryView, 'AlertDeliveryPage') }, 401: errors[401], 422: errors[422] },
    },
    async (c, { query }) => {
      const limit = query.limit ?? 20;
      const rows = await store.alerts.listDeliveries({ ...storeFilter(query.status), channel: query.channel, limit: limit + 1, offset: query.offset ?? 0 });
      return c.json({ hasMore: rows.length > limit, data: rows.slice(0, limit).map(deliveryView) });
    },
  );
}

function namesHint(names: string[]): string {
  return names.length > 0 ? ` — there are: ${names.join(', ')}` : ' — there are none';
}

/** A URL whose path is the secret (a Slack incoming webhook): only its origin is shown. */
function redactUrlPath(value: string): string {
  if (isTemplateOnly(value)) return value;
  try {
    const url = new URL(value);
    return url.pathname === '/' && url.search === '' ? url.origin : `${url.origin}/${REDACTED}`;
  } catch {
    return REDACTED;
  }
}

/**
 * The secret settings of a channel (those `ALERT_CHANNEL_SECRETS` marks for its type), as shown: a
 * Slack or webhook URL with its path hidden (Slack's, Discord's, Teams' or Zapier's path is the
 * secret), another URL as `redactUrl` shows it, a header value or key hidden unless it is a bare
 * `${ENV}` template.
 */
function redactedSettings(channel: AlertChannelDef): Record<string, unknown> {
  const settings = channel as unknown as Record<string, unknown>;
  return Object.fromEntries(
    ALERT_CHANNEL_SECRETS[channel.type].filter((name) => name in settings).map((name) => {
      const value = settings[name];
      const pathHidden = (channel.type === 'slack' || channel.type === 'webhook') && name === 'url';
      return [name, pathHidden && typeof value === 'string' ? redactUrlPath(value) : redactValue(value)];
    }),
  );
}

/** A channel's settings, the fields that may hold `${ENV}` templates. */
function channelSettings(channel: AlertChannelDef): Record<string, unknown> {
  const { name: _name, type: _type, origin: _origin, ...settings } = channel as AlertChannelDef & { origin?: string };
  return settings;
}

function target(channel: AlertChannelDef): string {
  switch (channel.type) {
    case 'slack':
      return redactUrlPath(channel.url);
    case 'webhook':
      return redactUrlPath(channel.url);
    case 'email':
      return channel.to.join(', ');
    case 'pagerduty':
      return `routing key ${redactSecret(channel.routingKey)} via ${channel.url}`;
    default:
      return assertNever(channel);
  }
}

function channelView(channel: AlertChannelDef): Record<string, unknown> {
  return { ...channel, ...redactedSettings(channel), origin: channel.origin ?? 'file', target: target(channel) };
}

function ruleView(rule: AlertRuleDef): Record<string, unknown> {
  return { ...rule, origin: rule.origin ?? 'file', workspaceDefault: isDefaultRule(rule) };
}

function fileManaged(what: string, entry: { name: string; origin?: string }): { warning?: string } {
  if (entry.origin === 'api') return {};
  return { warning: `${what} "${entry.name}" is managed by the workspace files: the next \`lockstep apply\` will overwrite this change — edit the file to keep it` };
}

const channelAnswer = (channel: AlertChannelDef) => ({ ...channelView(channel), ...fileManaged('alert channel', channel) });
const ruleAnswer = (rule: AlertRuleDef) => ({ ...ruleView(rule), ...fileManaged('alert rule', rule) });

/**
 * A body sent back as it was read carries redacted secrets; each one equal to the redacted form of
 * the stored value is replaced by the stored value, so a read-change-write never loses a secret.
 */
function keepRedactedSecrets(body: unknown, previous: AlertChannelDef): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const sent = { ...(body as Record<string, unknown>) };
  if (sent.type !== undefined && sent.type !== previous.type) return body;
  const shown = redactedSettings(previous);
  const stored = previous as unknown as Record<string, unknown>;
  const restored: string[] = [];
  for (const [field, redacted] of Object.entries(shown)) {
    if (field === 'headers') continue;
    if (sent[field] === redacted && redacted !== stored[field]) {
      sent[field] = stored[field];
      restored.push(field);
    }
  }
  if (previous.type === 'webhook' && sent.headers !== null && typeof sent.headers === 'object' && !Array.isArray(sent.headers)) {
    const headers = { ...(sent.headers as Record<string, unknown>) };
    for (const [name, value] of Object.entries(previous.headers)) {
      if (headers[name] === redactSecret(value) && redactSecret(value) !== value) {
        headers[name] = value;
        restored.push(`headers.${name}`);
      }
    }
    sent.headers = headers;
  }
  // As for connections: a stored secret goes only where it went before (a routing key or a header
  // sent back hidden with the channel's URL pointed at a host of the sender's own).
  // `target` is the answer's summary of where the channel sends, not a setting.
  const moved = restored.length === 0 ? null : movedAddress(Object.fromEntries(Object.entries(sent).filter(([field]) => field !== 'target')), stored);
  if (moved !== null) {
    throw validationFailed(
      Object.fromEntries(restored.map((field) => [field, `is sent hidden (***) while ${moved.setting} now points at ${moved.now} instead of ${moved.was}: a stored secret is not sent to another host — type it again`])),
    );
  }
  return sent;
}

function deliveryState(delivery: AlertDelivery): DeliveryState {
  switch (delivery.status) {
    case 'sent':
      return DeliveryState.Sent;
    case 'failed':
      return DeliveryState.GivenUp;
    case 'pending':
      return delivery.lastError === null ? DeliveryState.Pending : DeliveryState.Failed;
    default:
      return assertNever(delivery.status);
  }
}

function storeFilter(state: DeliveryState | undefined): Pick<AlertDeliveryQuery, 'status' | 'failedAttempt'> {
  switch (state) {
    case undefined:
      return {};
    case 'pending':
      return { status: 'pending', failedAttempt: false };
    case 'failed':
      return { status: 'pending', failedAttempt: true };
    case 'given_up':
      return { status: 'failed' };
    case 'sent':
      return { status: 'sent' };
    default:
      return assertNever(state);
  }
}

function deliveryView(delivery: AlertDelivery): z.output<typeof AlertDeliveryView> {
  const { notice } = delivery;
  return {
    id: delivery.id,
    channel: delivery.channel,
    event: notice.event,
    kind: notice.kind,
    title: notice.title,
    text: notice.text,
    subject: notice.subject,
    run: notice.run ? { kind: notice.run.kind, id: notice.run.id, url: notice.run.url } : null,
    status: deliveryState(delivery),
    attempts: delivery.attempts,
    nextAttemptAt: delivery.status === 'pending' ? iso(delivery.nextAttemptAt) : null,
    lastError: delivery.lastError,
    createdAt: iso(delivery.createdAt) as string,
    sentAt: iso(delivery.sentAt),
  };
}

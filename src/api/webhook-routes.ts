/**
 * `POST /api/v1/webhooks/dbt-cloud` and `POST /api/v1/webhooks/fivetran`: deliveries from upstream
 * tools that start runs. They carry a signature instead of a bearer token; the body is limited,
 * and every delivery — also a refused one — is recorded with why.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { interpolate } from '../core/connections.js';
import { toError } from '../core/errors.js';
import { DEFAULT_WEBHOOK_RETENTION, WebhookOutcome, WebhookSource, type WebhookEvent } from '../core/webhooks.js';
import { WebhookReceiver, type IncomingWebhook, type WebhookAnswer, type WebhookSecret, type WebhookSecrets } from '../engine/webhook-receiver.js';
import type { ApiDeps } from './context.js';
import { defineRoute } from './route.js';
import { errors } from './schemas.js';
import { z } from '@hono/zod-openapi';

/** Largest delivery accepted; dbt Cloud and Fivetran payloads are a few kilobytes. */
export const WEBHOOK_BODY_LIMIT_BYTES = 256 * 1024;

export const WEBHOOK_PATHS: Record<WebhookSource, string> = {
  dbt_cloud: '/api/v1/webhooks/dbt-cloud',
  fivetran: '/api/v1/webhooks/fivetran',
};

const webhookSource = z.enum(WebhookSource);

/** A run a delivery started. */
const TriggeredRunView = z.object({
  kind: z.enum(['sync', 'sequence']),
  slug: z.string(),
  runId: z.string().openapi({ description: 'The sync run id (as a string) or the sequence run id.' }),
});

/** One delivery of the log, as `GET /api/webhook-events` answers it. */
export const WebhookEventView = z
  .object({
    id: z.number().int(),
    source: webhookSource,
    receivedAt: z.string(),
    eventId: z.string().nullable().openapi({ description: "The sender's event id (dbt Cloud's eventId; Fivetran has none, so Lockstep derives one)." }),
    eventType: z.string().nullable(),
    outcome: z.enum(WebhookOutcome),
    reason: z.string().openapi({ description: 'Why, in words: what matched, or why nothing did.' }),
    httpStatus: z.number().int().openapi({ description: 'The HTTP status answered.' }),
    triggered: z.array(TriggeredRunView),
    payloadExcerpt: z.string().openapi({ description: 'The start of the body as received (at most 2,000 characters), for debugging.' }),
  })
  .openapi('WebhookEvent');

/** `GET /api/webhook-events`: a page of deliveries, the refused ones' totals, and what the log keeps. */
export const WebhookEventPage = z
  .object({
    hasMore: z.boolean(),
    data: z.array(WebhookEventView),
    refusals: z
      .array(
        z.object({
          source: webhookSource,
          reason: z.string(),
          httpStatus: z.number().int(),
          count: z.number().int(),
          firstReceivedAt: z.string(),
          lastReceivedAt: z.string(),
        }),
      )
      .openapi({ description: 'Every refused delivery (401, 413) ever received, counted per source and reason; the log keeps only the newest of them.' }),
    retention: z.object({
      refusedKept: z.number().int().openapi({ description: 'Refused deliveries kept in the log, the newest (LOCKSTEP_WEBHOOK_REFUSED_KEEP).' }),
      retentionDays: z.number().int().openapi({ description: 'Days other deliveries are kept; 0 keeps them forever (LOCKSTEP_WEBHOOK_RETENTION_DAYS).' }),
    }),
  })
  .openapi('WebhookEventPage');

export function registerWebhookRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const { store, logger, clock, env } = deps;
  const secrets = async (): Promise<WebhookSecrets> => {
    const { webhooks } = await store.loadWorkspace();
    const resolve = (setting: { secret: string } | null, where: string): WebhookSecret => {
      if (!setting) return null;
      try {
        return { secret: interpolate(setting.secret, env, where) };
      } catch (thrown) {
        const error = toError(thrown).message;
        logger.warn('webhook secret cannot be resolved', { where, error });
        return { unreadable: error.replace(/ before running Lockstep$/, ' in the environment of the server') };
      }
    };
    return { dbtCloud: resolve(webhooks.dbtCloud, 'the dbt Cloud webhook'), fivetran: resolve(webhooks.fivetran, 'the Fivetran webhook') };
  };
  const retention = deps.webhookRetention ?? DEFAULT_WEBHOOK_RETENTION;
  const receiver = new WebhookReceiver({ store, runs: deps.runs, clock, logger, secrets, retention });

  /** A delivery over the limit: recorded without its body, which is never read past the limit. */
  const tooLarge = async (c: Context, source: WebhookSource) => {
    const { event } = await store.webhooks.record({
      source,
      receivedAt: clock.now(),
      eventId: null,
      eventType: null,
      outcome: 'rejected',
      reason: `the body is larger than ${WEBHOOK_BODY_LIMIT_BYTES} bytes`,
      httpStatus: 413,
      triggered: [],
      payloadExcerpt: '',
    }, retention);
    return c.json({ outcome: event.outcome, message: event.reason, deliveryId: event.id, runs: [] }, 413);
  };
  const handle = (source: WebhookSource, receive: (incoming: IncomingWebhook) => Promise<WebhookAnswer>) => async (c: Context) => {
    // bodyLimit (below) has counted the bytes as they came, chunked bodies included.
    const raw = Buffer.from(await c.req.arrayBuffer());
    if (raw.length > WEBHOOK_BODY_LIMIT_BYTES) return tooLarge(c, source);
    const headers: Record<string, string | undefined> = {};
    c.req.raw.headers.forEach((value, name) => (headers[name.toLowerCase()] = value));
    const answer = await receive({ rawBody: raw, headers });
    return c.json(answer.body, answer.status as 200);
  };

  for (const [source, path] of Object.entries(WEBHOOK_PATHS) as Array<[WebhookSource, string]>) {
    app.use(path, bodyLimit({ maxSize: WEBHOOK_BODY_LIMIT_BYTES, onError: (c) => tooLarge(c, source) }));
  }
  app.post(WEBHOOK_PATHS.dbt_cloud, handle('dbt_cloud', (i) => receiver.receiveDbtCloud(i)));
  app.post(WEBHOOK_PATHS.fivetran, handle('fivetran', (i) => receiver.receiveFivetran(i)));
  const answer = z.object({
    outcome: z.enum(WebhookOutcome),
    message: z.string(),
    deliveryId: z.number().int(),
    runs: z.array(TriggeredRunView),
  });
  for (const [path, summary] of [
    [WEBHOOK_PATHS.dbt_cloud, "dbt Cloud's outgoing webhook; the Authorization header holds the hex HMAC-SHA256 of the raw body with webhooks.dbtCloud.secret. A job.run.completed with runStatusCode 10 starts what is scheduled on that job."],
    [WEBHOOK_PATHS.fivetran, "Fivetran's webhook; X-Fivetran-Signature-256 holds the hex HMAC-SHA256 of the body with webhooks.fivetran.secret. A sync_end with data.status SUCCESSFUL starts what is scheduled on that connector."],
  ] as const) {
    app.openAPIRegistry.registerPath({
      method: 'post',
      path,
      summary,
      tags: ['Webhooks'],
      security: [],
      responses: {
        200: { description: 'Recorded: accepted, ignored or duplicate', content: { 'application/json': { schema: answer } } },
        400: { description: 'Signed, but not a usable body', content: { 'application/json': { schema: answer } } },
        401: { description: 'Missing or wrong signature, or no secret configured', content: { 'application/json': { schema: answer } } },
        413: { description: `Body over ${WEBHOOK_BODY_LIMIT_BYTES} bytes`, content: { 'application/json': { schema: answer } } },
        503: {
          description: 'Accepted, but its runs could not be queued (the store failing): it does not count as received, and the sender delivers it again',
          content: { 'application/json': { schema: answer } },
        },
      },
    });
  }

  // The delivery log, newest first, so a user can see why a delivery did or did not start anything.
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/webhook-events',
      summary:
        'Webhook deliveries, newest first: outcome (accepted, rejected, ignored, duplicate), why, and the runs started; with the totals of refused deliveries per reason and how long the log keeps what',
      tag: 'Webhooks',
      query: z.object({
        source: z.enum(['dbt_cloud', 'fivetran']).optional(),
        limit: z.coerce.number().int().min(1).max(100).default(20),
        offset: z.coerce.number().int().min(0).default(0),
      }),
      responses: {
        200: { description: 'A page of deliveries', schema: WebhookEventPage },
        401: errors[401],
        422: errors[422],
      },
    },
    async (c, { query }) => {
      const { source, limit, offset } = query;
      const rows = await store.webhooks.list({ source, limit: limit + 1, offset });
      const data = rows.slice(0, limit).map(webhookEventView);
      const refusals = (await store.webhooks.refusals())
        .filter((r) => source === undefined || r.source === source)
        .map((r) => ({ ...r, firstReceivedAt: new Date(r.firstReceivedAt).toISOString(), lastReceivedAt: new Date(r.lastReceivedAt).toISOString() }));
      const page: z.output<typeof WebhookEventPage> = { hasMore: rows.length > limit, data, refusals, retention: { ...retention } };
      return c.json(page);
    },
  );
}

function webhookEventView(event: WebhookEvent): z.output<typeof WebhookEventView> {
  return { ...event, receivedAt: new Date(event.receivedAt).toISOString() };
}

/** Whether a path is a webhook endpoint (signed by its sender, so no bearer token). */
export function isWebhookPath(path: string): boolean {
  return Object.values(WEBHOOK_PATHS).includes(path);
}

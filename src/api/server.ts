/**
 * The HTTP server of `lockstep serve`: the Hightouch-compatible API v1, Lockstep's own API, live
 * run events, the OpenAPI document, the web UI's static files, `/metrics`, `/healthz` and
 * `/readyz`, on one port.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, Next } from 'hono';
import { getPath } from 'hono/utils/url';
import { bodyLimit } from 'hono/body-limit';
import { API_BODY_LIMIT_BYTES } from './route.js';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import { SERVE_PORT, isLoopbackHost } from '../core/hosts.js';
import { findToken } from '../core/tokens.js';
import { registerAlertRoutes } from './alert-routes.js';
import type { ApiDeps } from './context.js';
import { HttpError, errorResponse } from './http-errors.js';
import { misplacedV1Hint, registerHightouchRoutes } from './hightouch-routes.js';
import { registerLockstepRoutes } from './lockstep-routes.js';
import { registerHealthRoutes, type ProcessActivity } from './health-routes.js';
import { listenHttp, type Listening } from './listen-http.js';
import { createMetrics } from './metrics.js';
import { defineRoute } from './route.js';
import { StoreRunWatch, streamRunEvents } from './run-events.js';
import { isWebhookPath, registerWebhookRoutes } from './webhook-routes.js';
import { z } from '@hono/zod-openapi';

export type { AlertControl, ApiDeps, RunControl, RunEvents, WorkerLeases } from './context.js';

export interface ApiServerOptions extends Omit<ApiDeps, 'baseDir'> {
  /** The workspace folder connections' relative paths resolve against (default: the current folder). */
  baseDir?: string;
  /** Whether `/api/*` needs a bearer token (default: true). Turning it off is allowed only on a loopback host. */
  authRequired: boolean;
  /** The built web UI (`web/dist`), served with a fallback to its index.html; null serves none. */
  uiDir: string | null;
  /** Least time between two live updates of the same run, ms (default: 200). */
  eventThrottleMs?: number;
  /** Time between keep-alive pings on the event stream, ms (default: 15000). */
  eventPingMs?: number;
  /** How often the event streams read the store for the runs other processes execute, ms (default: 1000). */
  eventPollMs?: number;
  /** What this process runs now, for `/readyz`. */
  activity: () => ProcessActivity;
}

export interface ApiServer {
  /** Answers one request (what tests call in-process). */
  fetch(request: Request): Promise<Response>;
  /** Starts listening; resolves with the URL. Refuses `authRequired: false` on a non-loopback host. */
  listen(port: number, host: string): Promise<{ url: string; port: number }>;
  /** Stops listening, ends event streams and stops collecting metrics. */
  close(): Promise<void>;
}

/** Minimum time between two "last used" updates of one token, ms: a busy client does not write on every request. */
const TOKEN_TOUCH_MS = 60_000;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

export function createApiServer(serverOptions: ApiServerOptions): ApiServer {
  const options = { ...serverOptions, baseDir: serverOptions.baseDir ?? process.cwd() };
  const { store, logger, clock } = options;
  const closing = new AbortController();
  const metrics = createMetrics(options, { storeGauges: true });
  const runWatch = new StoreRunWatch({ store, logger, pollIntervalMs: options.eventPollMs ?? 1000 });
  const app = new OpenAPIHono({ getPath: (request) => routedPath(getPath(request)) });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', description: 'A token from `lockstep token create`.' });

  app.onError((thrown, c) => errorResponse(c, thrown, logger));
  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    // A body answered before it was read (a 404, a refused token, one over the limit) is drained and
    // its connection then closed, so the client is told not to send another request on it.
    if (c.req.raw.body !== null && !c.req.raw.bodyUsed) c.res.headers.set('connection', 'close');
    // Only the path: a query string may hold a token.
    logger.debug('request', { method: c.req.method, path: c.req.path, status: c.res.status, durationMs: Math.round(performance.now() - started) });
  });
  app.use('/api/*', async (c, next) => {
    c.set('authRequired' as never, options.authRequired as never);
    // Webhook deliveries are signed by their sender instead of carrying a token.
    if (!options.authRequired || c.req.path === '/api/session' || isWebhookPath(c.req.path)) return next();
    await authenticate(c, next);
  });
  // Bodies are counted as they arrive (chunked ones too) and refused once over the limit; webhook
  // deliveries have their own, smaller limit (webhook-routes.ts).
  const apiBodyLimit = bodyLimit({
    maxSize: API_BODY_LIMIT_BYTES,
    onError: (c) => c.json({ message: `the body is larger than ${API_BODY_LIMIT_BYTES} bytes — send a smaller one` }, 413),
  });
  app.use('/api/*', (c, next) => (isWebhookPath(c.req.path) ? next() : apiBodyLimit(c, next)));

  const lastTouched = new Map<number, number>();
  async function authenticate(c: Context, next: Next): Promise<void> {
    const header = c.req.header('authorization') ?? '';
    let presented = /^Bearer\s+(\S+)$/i.exec(header)?.[1] ?? null;
    // EventSource cannot set headers; the event stream alone takes the token in the query.
    if (presented === null && c.req.path === '/api/events') presented = c.req.query('token') ?? null;
    const token = presented === null ? null : findToken(await store.tokens.list(), presented);
    if (!token) throw new HttpError(401, 'Unauthorized');
    const now = clock.now();
    if (now - (lastTouched.get(token.id) ?? -Infinity) > TOKEN_TOUCH_MS) {
      lastTouched.set(token.id, now);
      await store.tokens.touch(token.id, now).catch((e: unknown) => logger.warn('could not record a token use', { error: toError(e).message }));
    }
    await next();
  }

  registerWebhookRoutes(app, options);
  registerHightouchRoutes(app, options);
  registerLockstepRoutes(app, options);
  registerAlertRoutes(app, options);

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/events',
      summary: 'Live run updates (Server-Sent Events: `syncRun` and `sequenceRun` events with the run view as data); the token may be given as ?token=',
      tag: 'Events',
      query: z.object({ token: z.string().optional() }),
      responses: { 200: { description: 'An event stream', schema: z.string(), contentType: 'text/event-stream' } },
    },
    (c) => streamRunEvents(c, options, runWatch, { throttleMs: options.eventThrottleMs ?? 200, pingIntervalMs: options.eventPingMs ?? 15_000 }, closing.signal),
  );

  const document = () =>
    app.getOpenAPI31Document({
      openapi: '3.1.0',
      info: {
        title: 'Lockstep API',
        version: '1',
        description: 'Lockstep’s own API and the Hightouch-compatible API v1 (under /api/v1). Every route except /api/session needs `Authorization: Bearer <token>`.',
      },
    });
  defineRoute(
    app,
    { method: 'get', path: '/api/openapi.json', summary: 'This document', tag: 'Session', responses: { 200: { description: 'The OpenAPI 3.1 document', schema: z.record(z.string(), z.unknown()) } } },
    (c) => c.json(document()),
  );
  const routes = documentedRoutes(app);
  app.all('/api/*', (c) => {
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(c.req.path)).map((r) => r.method))];
    if (allowed.length > 0 && !allowed.includes(c.req.method)) {
      // A curl without -X POST, or a trigger URL opened in a browser: the path is right, the method is not.
      const message = `${c.req.path} takes ${allowed.join(' or ')}, not ${c.req.method} — send it as ${allowed.join(' or ')}`;
      return c.json({ message }, 405, { allow: allowed.join(', ') });
    }
    return c.json({ message: `no route ${c.req.method} ${c.req.path} — ${misplacedV1Hint(c.req.method, c.req.path) ?? 'see /api/openapi.json'}` }, 404);
  });

  registerHealthRoutes(app, options, metrics);

  if (options.uiDir !== null) {
    const root = resolve(options.uiDir);
    app.get('*', async (c) => {
      let relative: string;
      try {
        relative = decodeURIComponent(c.req.path).replace(/^\/+/, '');
      } catch {
        return c.json({ message: `the path ${c.req.path} is not valid percent-encoding` }, 400);
      }
      const candidate = resolve(root, relative);
      const inside = candidate === root || candidate.startsWith(root + sep);
      const file = inside && (await isFile(candidate)) ? candidate : join(root, 'index.html');
      if (!(await isFile(file))) return c.json({ message: 'the web UI is not built — run `npm run build` in web/' }, 404);
      return c.body(await readFile(file), 200, {
        'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': file.endsWith('index.html') ? 'no-cache' : 'public, max-age=3600',
      });
    });
  }
  app.notFound((c) => {
    const hint = misplacedV1Hint(c.req.method, c.req.path);
    return c.json({ message: `no route ${c.req.method} ${c.req.path}${hint === null ? '' : ` — ${hint}`}` }, 404);
  });

  let listening: Listening | null = null;
  return {
    fetch: async (request) => app.fetch(request),
    listen(port, host) {
      if (!options.authRequired && !isLoopbackHost(host)) {
        return Promise.reject(
          new LockstepError(
            ErrorCode.Validation,
            `--no-auth is allowed only on a loopback host (127.0.0.1, ::1, localhost), not ${host} — create a token with \`lockstep token create --name NAME\` instead`,
          ),
        );
      }
      return listenHttp(app.fetch, port, host, SERVE_PORT).then((started) => {
        listening = started;
        return { url: started.url, port: started.port };
      });
    },
    async close() {
      closing.abort();
      metrics.stop();
      // The store is closed after the server: a look at it under way ends first.
      await runWatch.close();
      const running = listening;
      listening = null;
      await running?.close();
    },
  };
}

/**
 * The path a request is routed by, and every middleware sees: without a trailing slash
 * (`/api/v1/syncs/?slug=x` is `/api/v1/syncs?slug=x`) and with each run of slashes made one
 * (`//api/v1/syncs`, as a script asks that adds `/api/v1/...` to a base URL given with its last
 * slash, is `/api/v1/syncs`), so clients that write either work.
 */
function routedPath(path: string): string {
  const single = path.replace(/\/{2,}/g, '/');
  return single.length > 1 && single.endsWith('/') ? single.slice(0, -1) : single;
}

/** Each documented route's method and a pattern of its path (`{syncId}` matching one segment). */
function documentedRoutes(app: OpenAPIHono): Array<{ method: string; pattern: RegExp }> {
  const routes: Array<{ method: string; pattern: RegExp }> = [];
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== 'route') continue;
    const segments = definition.route.path.split('/').map((part) => (/^\{[^}]+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')));
    routes.push({ method: definition.route.method.toUpperCase(), pattern: new RegExp(`^${segments.join('/')}$`) });
  }
  return routes;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

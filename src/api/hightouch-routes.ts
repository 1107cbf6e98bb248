/**
 * The Hightouch-compatible REST API v1 (SPEC §6.3): the same paths, field names, types, statuses,
 * pagination and errors as Hightouch's public API, so its clients (the Airflow provider, the Dagster
 * op, the GitHub Action, the generated Python SDK, the CLI) work by changing the base URL and the
 * token. Liberal in what it accepts (form bodies, `"true"`/`"false"` flags, ids as `3.0`), exact in
 * what it answers.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context, Next } from 'hono';
import { NotFoundError } from '../core/errors.js';
import { unknownIdError, unknownSlugError } from '../core/unknown-slug.js';
import type { SyncRun } from '../core/runs.js';
import type { ConnectionRecord, ModelRecord, SyncRecord, WorkspaceState } from '../core/workspace.js';
import { sequenceRunDetails } from '../engine/run-details.js';
import type { ApiDeps } from './context.js';
import { validationFailed } from './http-errors.js';
import { defineRoute } from './route.js';
import { Counts, SequenceRunView, errors, isoText, sequenceRunId, v1Flag, v1Id, v1WholeText } from './schemas.js';
import { hightouchDestination, hightouchLastRun, hightouchModel, hightouchSource, hightouchSync, hightouchSyncRun } from './views.js';
import { isWebhookPath } from './webhook-routes.js';

const TAG = 'Hightouch-compatible v1';
/** Hightouch's default page size for lists; Lockstep caps pages at this size too. */
const MAX_PAGE = 100;

const isoTime = z.string().openapi({ format: 'date-time' });

const Sync = z
  .object({
    id: z.number().int(),
    slug: z.string(),
    workspaceId: z.number().int(),
    createdAt: isoTime,
    updatedAt: isoTime,
    destinationId: z.number().int().nullable(),
    modelId: z.number().int().nullable(),
    configuration: z.record(z.string(), z.unknown()),
    schedule: z.object({ type: z.string(), schedule: z.record(z.string(), z.unknown()) }).nullable(),
    status: z.string().openapi({ description: "`disabled`, `pending` before a first run, else its newest run's; while a follow-up waits in the queue, the status of the run under way, then `queued`." }),
    disabled: z.boolean(),
    lastRunAt: isoTime.nullable().openapi({ description: 'When its last run started; a follow-up waiting in the queue has not run yet.' }),
    primaryKey: z.string(),
    referencedColumns: z.array(z.string()),
    externalSegment: z.object({}),
    tags: z.record(z.string(), z.string()),
  })
  .openapi('HightouchSync');

const SyncRunSchema = z
  .object({
    id: z.number().int(),
    createdAt: isoTime,
    startedAt: isoTime.nullable(),
    finishedAt: isoTime.nullable(),
    querySize: z.number().int(),
    status: z.string(),
    completionRatio: z.number(),
    plannedRows: Counts,
    successfulRows: Counts,
    failedRows: Counts,
    error: z.string().nullable().openapi({ description: 'Why the run did not finish successfully; null when it did.' }),
  })
  .openapi('HightouchSyncRun');

const configuration = z.record(z.string(), z.unknown()).openapi({ description: "The connection's settings, with every secret hidden (`***`, or the password of a URL)." });

const Source = z
  .object({
    id: z.number().int(),
    name: z.string().openapi({ description: 'The slug: a Lockstep connection has no other name.' }),
    slug: z.string(),
    workspaceId: z.number().int(),
    createdAt: isoTime,
    updatedAt: isoTime,
    type: z.string(),
    configuration,
  })
  .openapi('HightouchSource');

const Destination = Source.extend({ syncs: z.array(z.number().int()).openapi({ description: 'The ids of the syncs that write to it.' }) }).openapi('HightouchDestination');

const Model = z
  .object({
    id: z.number().int(),
    name: z.string().openapi({ description: 'The slug: a Lockstep model has no other name.' }),
    slug: z.string(),
    description: z.string(),
    workspaceId: z.number().int(),
    primaryKey: z.string().openapi({ description: 'A composite key joined with commas.' }),
    createdAt: isoTime,
    updatedAt: isoTime,
    sourceId: z.number().int().nullable(),
    queryType: z.literal('raw_sql'),
    tags: z.record(z.string(), z.string()),
    isSchema: z.boolean(),
    syncs: z.array(z.number().int()).openapi({ description: 'The ids of the syncs that read it.' }),
    raw: z.object({ sql: z.string() }),
    lastRunSize: z.number().int().nullable().openapi({ description: 'Rows read by its latest successful sync run; null before one.' }),
  })
  .openapi('HightouchModel');

const TriggerOutput = z.object({ id: z.string() }).openapi('TriggerRunOutput');

/** A trigger's fullResync or resetCDC contradicts the follow-up run waiting in the queue, which it would join. */
const queuedRunConflict = { description: 'The follow-up run waiting in the queue was asked for the contrary (fullResync, resetCDC); the message names it', schema: errors[404].schema };

// A field given as null is taken as absent, as Hightouch takes it (`{"syncId": 3, "syncSlug": null}`).
const runOptions = {
  fullResync: v1Flag('fullResync').nullish().openapi({ description: 'Resync every row, ignoring what was delivered before.' }),
  resetCDC: v1Flag('resetCDC').nullish().openapi({ description: 'Rebuild the snapshot without sending anything.' }),
  clearAndFill: v1Flag('clearAndFill').nullish().openapi({ description: 'Accepted for compatibility; Lockstep treats it as fullResync.' }),
  fullSync: v1Flag('fullSync').nullish().openapi({ description: "Accepted as fullResync (Hightouch's CLI sends it)." }),
};
type RunOptions = { fullResync?: boolean | null; resetCDC?: boolean | null; clearAndFill?: boolean | null; fullSync?: boolean | null };

const limitText = v1WholeText('limit')
  .transform((n) => Math.min(Math.max(n, 1), MAX_PAGE))
  .optional()
  .openapi({ description: `At most ${MAX_PAGE} (default ${MAX_PAGE}).` });

/** The paging and filters of Hightouch's list endpoints for sources, destinations and models. */
const entityListQuery = {
  name: z.string().optional().openapi({ description: 'Only the one with this name (its slug).' }),
  slug: z.string().optional(),
  offset: v1WholeText('offset').optional(),
  limit: limitText,
  orderBy: z.enum(['id', 'name', 'slug', 'createdAt', 'updatedAt']).optional().openapi({ description: 'Ascending (default: id).' }),
};
type EntityListQuery = { name?: string; slug?: string; offset?: number; limit?: number; orderBy?: 'id' | 'name' | 'slug' | 'createdAt' | 'updatedAt' };

/** A page of entities filtered by name or slug (the name is the slug), in `orderBy` order. */
function entityPage<T extends { id: number; slug: string; createdAt: number; updatedAt: number }>(all: T[], query: EntityListQuery): { items: T[]; hasMore: boolean } {
  const order = query.orderBy ?? 'id';
  const matching = all
    .filter((e) => (query.slug === undefined || e.slug === query.slug) && (query.name === undefined || e.slug === query.name))
    .sort((a, b) => {
      if (order === 'name' || order === 'slug') return a.slug.localeCompare(b.slug) || a.id - b.id;
      if (order === 'createdAt') return a.createdAt - b.createdAt || a.id - b.id;
      if (order === 'updatedAt') return a.updatedAt - b.updatedAt || a.id - b.id;
      return a.id - b.id;
    });
  const offset = query.offset ?? 0;
  const limit = query.limit ?? MAX_PAGE;
  return { items: matching.slice(offset, offset + limit), hasMore: matching.length > offset + limit };
}

const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'];

/**
 * A form body (Airflow's HttpHook posts a dict as `application/x-www-form-urlencoded`) is handed on
 * as the JSON object of its fields, so the route validates it as it validates JSON. A form body that
 * is JSON text (`curl -d '{...}'` without a content type) is handed on as it is.
 */
async function formFieldsAsJson(c: Context, next: Next): Promise<void> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  // Webhook deliveries are checked against their signature over the bytes as sent.
  if (c.req.method !== 'POST' || !FORM_TYPES.includes(type) || isWebhookPath(c.req.path)) return next();
  const fields = new Map<string, unknown>();
  const details: Record<string, string> = Object.create(null) as Record<string, string>;
  const add = (name: string, value: unknown) => {
    if (fields.has(name)) details[name] = 'is given more than once — give it once';
    else if (typeof value !== 'string') details[name] = 'is a file — give it as text';
    fields.set(name, value);
  };
  if (type === 'multipart/form-data') {
    (await c.req.formData()).forEach((value, name) => add(name, value));
  } else {
    const text = await c.req.text();
    if (text.trim().startsWith('{')) return next();
    new URLSearchParams(text).forEach((value, name) => add(name, value));
  }
  if (Object.keys(details).length > 0) throw validationFailed(details);
  const headers = new Headers(c.req.raw.headers);
  headers.set('content-type', 'application/json');
  headers.delete('content-length');
  c.req.raw = new Request(c.req.raw.url, { method: 'POST', headers, body: fields.size === 0 ? null : JSON.stringify(Object.fromEntries(fields)) });
  c.req.bodyCache = {};
  return next();
}

/** Says in the OpenAPI document that the v1 POST routes take form bodies as well as JSON. */
function documentFormBodies(app: OpenAPIHono): void {
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== 'route' || definition.route.method !== 'post' || !definition.route.path.startsWith('/api/v1/')) continue;
    const body = definition.route.request?.body;
    const json = body && 'content' in body ? body.content['application/json'] : undefined;
    if (body && json) body.content['application/x-www-form-urlencoded'] = json;
  }
}

/** The v1 routes by method, as paths under /api/v1: to tell a client whose base URL lost or doubled `/api/v1` where its request belongs. */
const V1_PATHS: ReadonlyArray<readonly [string, RegExp]> = [
  ['GET', /^\/(syncs|sources|destinations|models)(\/[^/]+)?\/?$/],
  ['GET', /^\/syncs\/[^/]+\/runs\/?$/],
  ['GET', /^\/sync-sequences\/runs\/[^/]+\/?$/],
  ['POST', /^\/syncs(\/[^/]+)?\/trigger\/?$/],
  ['POST', /^\/sync-sequences\/[^/]+\/trigger\/?$/],
];

const isV1Path = (method: string, path: string) => V1_PATHS.some(([m, pattern]) => m === method && pattern.test(path));

/**
 * What to say of a request no route answers that a Hightouch client sent to the wrong place: its
 * base URL held `/api/v1` though the client adds it (Airflow's connection host, `ht login`), or lost
 * it (a dagster-hightouch base without its last slash, which urljoin drops `/v1` from). Null for
 * any other path.
 */
export function misplacedV1Hint(method: string, path: string): string | null {
  const doubled = /^\/api\/v1(?:\/api\/v1)+(\/.*)$/.exec(path);
  if (doubled && isV1Path(method, doubled[1]!)) {
    return "/api/v1 is in the path twice: the client adds it to the address it is given, so give it Lockstep's address alone (http://host:port)";
  }
  const rest = /^\/api\/v1\//.test(path) ? null : (/^\/api(\/.*)$/.exec(path)?.[1] ?? path);
  if (rest !== null && isV1Path(method, rest)) {
    return `did you mean /api/v1${rest}? A Hightouch client's base URL is Lockstep's address followed by /api/v1/, with the last slash (without it, urljoin drops /v1)`;
  }
  return null;
}

/** A sync sequence's id (`3` or `3.0`) as a number, or its slug as given. */
function sequenceRef(ref: string): number | string {
  return /^\d{1,15}(\.0+)?$/.test(ref) ? Number(ref) : ref;
}

export function registerHightouchRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const { store, runs, connectors } = deps;

  app.use('/api/v1/*', formFieldsAsJson);

  const describeSync = async (sync: SyncRecord) => {
    const [model, destination, last] = await Promise.all([
      store.getModel(sync.model),
      store.getDestination(sync.destination),
      store.listSyncRuns({ syncId: sync.id, limit: 2, offset: 0, order: 'desc' }),
    ]);
    return hightouchSync(sync, model, destination, hightouchLastRun(last));
  };
  const syncById = async (id: number) => {
    const sync = await store.getSync(id);
    if (!sync) throw await unknownIdError(store, 'sync', id);
    return sync;
  };
  const trigger = async (sync: SyncRecord, options: RunOptions | undefined) => {
    const { run } = await runs.triggerSync(
      sync.id,
      { fullResync: Boolean(options?.fullResync || options?.clearAndFill || options?.fullSync), resetCDC: Boolean(options?.resetCDC) },
      { type: 'api', detail: 'api v1' },
    );
    return { id: String(run.id) };
  };
  /** The ids of the syncs whose model or destination (`pick`) is `slug`, in id order. */
  const syncIdsBy = (state: WorkspaceState, pick: (sync: SyncRecord) => string) => (slug: string) =>
    state.syncs
      .filter((sync) => pick(sync) === slug)
      .map((sync) => sync.id)
      .sort((a, b) => a - b);
  /** Rows read by the latest successful run of any sync of the model. */
  const lastRunSize = async (state: WorkspaceState, model: ModelRecord): Promise<number | null> => {
    let latest: SyncRun | null = null;
    for (const sync of state.syncs.filter((s) => s.model === model.slug)) {
      const [run] = await store.listSyncRuns({ syncId: sync.id, statuses: ['success', 'warning'], limit: 1, offset: 0, order: 'desc' });
      if (run && (latest === null || (run.finishedAt ?? run.createdAt) > (latest.finishedAt ?? latest.createdAt))) latest = run;
    }
    return latest?.querySize ?? null;
  };
  const describeModel = async (state: WorkspaceState, model: ModelRecord) => {
    const sourceId = state.sources.find((s) => s.slug === model.source)?.id ?? null;
    return hightouchModel(model, sourceId, syncIdsBy(state, (s) => s.model)(model.slug), await lastRunSize(state, model));
  };
  const byId = <T extends ConnectionRecord | ModelRecord>(all: T[], id: number, kind: string): T => {
    const found = all.find((e) => e.id === id);
    if (!found) throw new NotFoundError(`no ${kind} with id ${id}`);
    return found;
  };

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/syncs',
      summary: 'List syncs',
      tag: TAG,
      query: z.strictObject({
        slug: z.string().optional(),
        modelId: v1WholeText('modelId').optional(),
        after: isoText('after').optional().openapi({ description: 'Syncs last run at or after this ISO time.' }),
        before: isoText('before').optional().openapi({ description: 'Syncs last run before this ISO time.' }),
        offset: v1WholeText('offset').optional(),
        limit: limitText,
        orderBy: z.enum(['id', 'name', 'slug', 'createdAt', 'updatedAt']).optional(),
      }),
      responses: { 200: { description: 'A page of syncs', schema: z.object({ hasMore: z.boolean(), data: z.array(Sync) }) }, 401: errors[401], 422: errors[422] },
    },
    async (c, { query }) => {
      const state = await store.loadWorkspace();
      const modelSlug = query.modelId === undefined ? undefined : state.models.find((m) => m.id === query.modelId)?.slug;
      let syncs = state.syncs.filter((s) => (query.slug === undefined || s.slug === query.slug) && (query.modelId === undefined || s.model === modelSlug));
      const order = query.orderBy ?? 'id';
      syncs = [...syncs].sort((a, b) => {
        if (order === 'name' || order === 'slug') return a.slug.localeCompare(b.slug);
        if (order === 'createdAt') return a.createdAt - b.createdAt || a.id - b.id;
        if (order === 'updatedAt') return a.updatedAt - b.updatedAt || a.id - b.id;
        return a.id - b.id;
      });
      let described = [];
      for (const sync of syncs) described.push(await describeSync(sync));
      if (query.after !== undefined || query.before !== undefined) {
        described = described.filter((s) => {
          const at = s.lastRunAt === null ? null : Date.parse(s.lastRunAt);
          return at !== null && (query.after === undefined || at >= query.after) && (query.before === undefined || at < query.before);
        });
      }
      const offset = query.offset ?? 0;
      const limit = query.limit ?? MAX_PAGE;
      return c.json({ hasMore: described.length > offset + limit, data: described.slice(offset, offset + limit) });
    },
  );

  defineRoute(
    app,
    { method: 'get', path: '/api/v1/syncs/{syncId}', summary: 'Get a sync', tag: TAG, params: z.object({ syncId: v1WholeText('syncId', 1) }), responses: { 200: { description: 'The sync', schema: Sync }, 401: errors[401], 404: errors[404], 422: errors[422] } },
    async (c, { params }) => c.json(await describeSync(await syncById(params.syncId))),
  );

  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/v1/syncs/{syncId}/trigger',
      summary: 'Trigger a sync run (a trigger while it runs queues one follow-up run, shared by later triggers)',
      tag: TAG,
      params: z.object({ syncId: v1WholeText('syncId', 1) }),
      body: z.strictObject(runOptions).optional(),
      responses: { 200: { description: 'The id of the sync run, as a string', schema: TriggerOutput }, 401: errors[401], 404: errors[404], 409: queuedRunConflict, 422: errors[422] },
    },
    async (c, { params, body }) => c.json(await trigger(await syncById(params.syncId), body)),
  );

  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/v1/syncs/trigger',
      summary: 'Trigger a sync run by sync id or slug',
      tag: TAG,
      body: z.strictObject({
        syncId: v1Id('syncId').nullish(),
        syncSlug: z.string({ error: 'syncSlug must be a string, e.g. "accounts-to-crm"' }).min(1, 'syncSlug is empty').nullish(),
        ...runOptions,
      }),
      responses: { 200: { description: 'The id of the sync run, as a string', schema: TriggerOutput }, 401: errors[401], 404: errors[404], 409: queuedRunConflict, 422: errors[422] },
    },
    async (c, { body }) => {
      const syncId = body.syncId ?? undefined;
      const syncSlug = body.syncSlug ?? undefined;
      if ((syncId === undefined) === (syncSlug === undefined)) {
        throw validationFailed({ syncId: syncId === undefined ? 'give syncId or syncSlug' : 'give syncId or syncSlug, not both' });
      }
      let sync: SyncRecord | null;
      if (syncId !== undefined) sync = await store.getSync(syncId);
      else {
        sync = await store.getSync(syncSlug as string);
        if (sync && sync.slug !== syncSlug) sync = null;
      }
      if (!sync) throw syncId !== undefined ? await unknownIdError(store, 'sync', syncId) : await unknownSlugError(store, 'sync', syncSlug as string, { suggest: true });
      return c.json(await trigger(sync, body));
    },
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/syncs/{syncId}/runs',
      summary: 'List runs of a sync',
      tag: TAG,
      params: z.object({ syncId: v1WholeText('syncId', 1) }),
      query: z.strictObject({
        runId: v1WholeText('runId', 1).optional(),
        after: isoText('after').optional().openapi({ description: 'Runs created at or after this ISO time.' }),
        before: isoText('before').optional().openapi({ description: 'Runs created before this ISO time.' }),
        within: v1WholeText('within').optional().openapi({ description: 'Runs created within the last this many minutes.' }),
        offset: v1WholeText('offset').optional(),
        limit: limitText,
        orderBy: z.enum(['id', 'createdAt', 'startedAt', 'finishedAt']).optional().openapi({ description: 'Newest first (default: id).' }),
      }),
      responses: { 200: { description: 'A page of runs', schema: z.object({ hasMore: z.boolean(), data: z.array(SyncRunSchema) }) }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, query }) => {
      const sync = await syncById(params.syncId);
      const offset = query.offset ?? 0;
      const limit = query.limit ?? MAX_PAGE;
      const within = query.within === undefined ? undefined : deps.clock.now() - query.within * 60_000;
      const after = within === undefined ? query.after : Math.max(within, query.after ?? -Infinity);
      const filter = { syncId: sync.id, runId: query.runId, after, before: query.before };
      const order = query.orderBy ?? 'id';
      let list: SyncRun[];
      if (order === 'id' || order === 'createdAt') {
        list = await store.listSyncRuns({ ...filter, limit: limit + 1, offset, order: 'desc' });
      } else {
        // Start and finish times are not indexed: sort the sync's runs here (a sync has few enough).
        const all = await store.listSyncRuns({ ...filter, limit: 100_000, offset: 0, order: 'desc' });
        const at = (r: SyncRun) => (order === 'startedAt' ? r.startedAt : r.finishedAt) ?? Infinity;
        list = all.sort((a, b) => at(b) - at(a) || b.id - a.id).slice(offset, offset + limit + 1);
      }
      return c.json({ hasMore: list.length > limit, data: list.slice(0, limit).map(hightouchSyncRun) });
    },
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/sources',
      summary: 'List sources (configuration without secrets)',
      tag: TAG,
      query: z.strictObject(entityListQuery),
      responses: { 200: { description: 'A page of sources', schema: z.object({ hasMore: z.boolean(), data: z.array(Source) }) }, 401: errors[401], 422: errors[422] },
    },
    async (c, { query }) => {
      const { items, hasMore } = entityPage((await store.loadWorkspace()).sources, query);
      return c.json({ hasMore, data: items.map((s) => hightouchSource(s, connectors)) });
    },
  );

  defineRoute(
    app,
    { method: 'get', path: '/api/v1/sources/{sourceId}', summary: 'Get a source (configuration without secrets)', tag: TAG, params: z.object({ sourceId: v1WholeText('sourceId', 1) }), responses: { 200: { description: 'The source', schema: Source }, 401: errors[401], 404: errors[404], 422: errors[422] } },
    async (c, { params }) => c.json(hightouchSource(byId((await store.loadWorkspace()).sources, params.sourceId, 'source'), connectors)),
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/destinations',
      summary: 'List destinations (configuration without secrets)',
      tag: TAG,
      query: z.strictObject(entityListQuery),
      responses: { 200: { description: 'A page of destinations', schema: z.object({ hasMore: z.boolean(), data: z.array(Destination) }) }, 401: errors[401], 422: errors[422] },
    },
    async (c, { query }) => {
      const state = await store.loadWorkspace();
      const syncIds = syncIdsBy(state, (s) => s.destination);
      const { items, hasMore } = entityPage(state.destinations, query);
      return c.json({ hasMore, data: items.map((d) => hightouchDestination(d, syncIds(d.slug), connectors)) });
    },
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/destinations/{destinationId}',
      summary: 'Get a destination (configuration without secrets)',
      tag: TAG,
      params: z.object({ destinationId: v1WholeText('destinationId', 1) }),
      responses: { 200: { description: 'The destination', schema: Destination }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params }) => {
      const state = await store.loadWorkspace();
      const destination = byId(state.destinations, params.destinationId, 'destination');
      return c.json(hightouchDestination(destination, syncIdsBy(state, (s) => s.destination)(destination.slug), connectors));
    },
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/models',
      summary: 'List models',
      tag: TAG,
      query: z.strictObject({
        ...entityListQuery,
        tags: z.string().optional().openapi({ description: 'key:value; Lockstep models have no tags, so no model matches.' }),
      }),
      responses: { 200: { description: 'A page of models', schema: z.object({ hasMore: z.boolean(), data: z.array(Model) }) }, 401: errors[401], 422: errors[422] },
    },
    async (c, { query }) => {
      const state = await store.loadWorkspace();
      const { items, hasMore } = entityPage(query.tags === undefined ? state.models : [], query);
      const data = [];
      for (const model of items) data.push(await describeModel(state, model));
      return c.json({ hasMore, data });
    },
  );

  defineRoute(
    app,
    { method: 'get', path: '/api/v1/models/{modelId}', summary: 'Get a model', tag: TAG, params: z.object({ modelId: v1WholeText('modelId', 1) }), responses: { 200: { description: 'The model', schema: Model }, 401: errors[401], 404: errors[404], 422: errors[422] } },
    async (c, { params }) => {
      const state = await store.loadWorkspace();
      return c.json(await describeModel(state, byId(state.models, params.modelId, 'model')));
    },
  );

  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/v1/sync-sequences/{syncSequenceId}/trigger',
      summary: 'Trigger a sync sequence run (by id or slug); a trigger while it runs queues one follow-up run',
      tag: TAG,
      params: z.object({ syncSequenceId: z.string().min(1) }),
      body: z.strictObject({}).optional(),
      responses: { 200: { description: 'The id of the sequence run (a UUID)', schema: TriggerOutput }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params }) => {
      const ref = sequenceRef(params.syncSequenceId);
      // Hightouch's path holds an id; a slug of digits that is no sequence's id still names its own.
      const sequence = (await store.getSequence(ref)) ?? (typeof ref === 'number' ? await store.getSequence(params.syncSequenceId) : null);
      if (!sequence) throw typeof ref === 'number' ? await unknownIdError(store, 'sequence', ref, 'sync sequence') : await unknownSlugError(store, 'sequence', ref, { suggest: true });
      const { run } = await runs.triggerSequence(sequence.id, { type: 'api', detail: 'api v1' });
      return c.json({ id: run.id });
    },
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/v1/sync-sequences/runs/{syncSequenceRunId}',
      summary: 'Status of a sync sequence run',
      tag: TAG,
      params: z.object({ syncSequenceRunId: sequenceRunId('syncSequenceRunId') }),
      responses: {
        200: {
          description: "Hightouch's fields (syncRuns lists members that have a sync run) plus every member's state and the termination",
          schema: SequenceRunView.pick({ id: true, status: true, syncRuns: true, members: true, terminatedBy: true, reason: true }).openapi('SyncSequenceStatusOutput'),
        },
        401: errors[401],
        404: errors[404],
        422: errors[422],
      },
    },
    async (c, { params }) => {
      const run = await store.getSequenceRun(params.syncSequenceRunId);
      if (!run) throw new NotFoundError(`no sync sequence run ${params.syncSequenceRunId}`);
      const view = await sequenceRunDetails(store, run, deps.clock.now());
      // A member's sync run whose process stopped is shown as GET /syncs/{id}/runs shows it (hightouchSyncRun):
      // as recorded, since Hightouch clients take `interrupted` for its end. `members` says interrupted.
      const syncRuns = await Promise.all(
        view.syncRuns.map(async (r) => (r.status === 'interrupted' ? { ...r, status: (await store.getSyncRun(r.syncRunId))?.status ?? r.status } : r)),
      );
      return c.json({ id: view.id, status: view.status, syncRuns, members: view.members, terminatedBy: view.terminatedBy, reason: view.reason });
    },
  );

  documentFormBodies(app);
}

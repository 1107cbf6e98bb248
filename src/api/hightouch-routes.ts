/**
 * The Hightouch-compatible REST API v1 (SPEC §6.3): the same paths, field names, types, statuses,
 * pagination and errors as Hightouch's public API, so its Airflow and Dagster integrations work by
 * changing the base URL and the token.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { NotFoundError } from '../core/errors.js';
import type { SyncRun } from '../core/runs.js';
import type { SyncRecord } from '../core/workspace.js';
import { sequenceRunDetails } from '../engine/run-details.js';
import type { ApiDeps } from './context.js';
import { validationFailed } from './http-errors.js';
import { defineRoute } from './route.js';
import { Counts, SequenceRunView, errors, flag, intText, isoText } from './schemas.js';
import { hightouchSync, hightouchSyncRun } from './views.js';

const TAG = 'Hightouch-compatible v1';
/** Hightouch's default page size for lists; Lockstep caps pages at this size too. */
const MAX_PAGE = 100;

const Sync = z
  .object({
    id: z.number().int(),
    slug: z.string(),
    workspaceId: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
    destinationId: z.number().int().nullable(),
    modelId: z.number().int().nullable(),
    configuration: z.record(z.string(), z.unknown()),
    schedule: z.object({ type: z.string(), schedule: z.record(z.string(), z.unknown()) }).nullable(),
    status: z.string(),
    disabled: z.boolean(),
    lastRunAt: z.string().nullable(),
    primaryKey: z.string(),
    referencedColumns: z.array(z.string()),
    externalSegment: z.object({}),
    tags: z.record(z.string(), z.string()),
  })
  .openapi('HightouchSync');

const SyncRunSchema = z
  .object({
    id: z.number().int(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    querySize: z.number().int(),
    status: z.string(),
    completionRatio: z.number(),
    plannedRows: Counts,
    successfulRows: Counts,
    failedRows: Counts,
    error: z.string().optional(),
  })
  .openapi('HightouchSyncRun');

const TriggerOutput = z.object({ id: z.string() }).openapi('TriggerRunOutput');

const runOptions = {
  fullResync: flag.optional().openapi({ description: 'Resync every row, ignoring what was delivered before.' }),
  resetCDC: flag.optional().openapi({ description: 'Rebuild the snapshot without sending anything.' }),
  clearAndFill: flag.optional().openapi({ description: 'Accepted for compatibility; Lockstep treats it as fullResync.' }),
};

const limitText = z
  .string()
  .regex(/^\d{1,15}$/, 'limit must be a whole number')
  .transform((t) => Math.min(Math.max(Number(t), 1), MAX_PAGE))
  .optional();

export function registerHightouchRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const { store, runs } = deps;

  const describeSync = async (sync: SyncRecord) => {
    const [model, destination, last] = await Promise.all([
      store.getModel(sync.model),
      store.getDestination(sync.destination),
      store.listSyncRuns({ syncId: sync.id, limit: 1, offset: 0, order: 'desc' }),
    ]);
    return hightouchSync(sync, model, destination, last[0] ?? null);
  };
  const syncById = async (id: number) => {
    const sync = await store.getSync(id);
    if (!sync) throw new NotFoundError(`no sync with id ${id}`);
    return sync;
  };
  const trigger = async (sync: SyncRecord, options: { fullResync?: boolean; resetCDC?: boolean; clearAndFill?: boolean } | undefined) => {
    const { run } = await runs.triggerSync(
      sync.id,
      { fullResync: Boolean(options?.fullResync || options?.clearAndFill), resetCDC: Boolean(options?.resetCDC) },
      { type: 'api', detail: 'api v1' },
    );
    return { id: String(run.id) };
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
        modelId: intText('modelId').optional(),
        after: isoText('after').optional().openapi({ description: 'Syncs last run at or after this ISO time.' }),
        before: isoText('before').optional().openapi({ description: 'Syncs last run before this ISO time.' }),
        offset: intText('offset').optional(),
        limit: limitText.openapi({ description: `At most ${MAX_PAGE} (default ${MAX_PAGE}).` }),
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
    { method: 'get', path: '/api/v1/syncs/{syncId}', summary: 'Get a sync', tag: TAG, params: z.object({ syncId: intText('syncId', 1) }), responses: { 200: { description: 'The sync', schema: Sync }, 401: errors[401], 404: errors[404], 422: errors[422] } },
    async (c, { params }) => c.json(await describeSync(await syncById(params.syncId))),
  );

  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/v1/syncs/{syncId}/trigger',
      summary: 'Trigger a sync run (a trigger while it runs queues one follow-up run, shared by later triggers)',
      tag: TAG,
      params: z.object({ syncId: intText('syncId', 1) }),
      body: z.strictObject(runOptions).optional(),
      responses: { 200: { description: 'The id of the sync run, as a string', schema: TriggerOutput }, 401: errors[401], 404: errors[404], 422: errors[422] },
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
        syncId: z.union([z.string().regex(/^[0-9]+$/, 'syncId must be a whole number'), z.number().int().positive()]).optional(),
        syncSlug: z.string().min(1, 'syncSlug is empty').optional(),
        ...runOptions,
      }),
      responses: { 200: { description: 'The id of the sync run, as a string', schema: TriggerOutput }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { body }) => {
      if ((body.syncId === undefined) === (body.syncSlug === undefined)) {
        throw validationFailed({ syncId: body.syncId === undefined ? 'give syncId or syncSlug' : 'give syncId or syncSlug, not both' });
      }
      let sync: SyncRecord | null;
      if (body.syncId !== undefined) sync = await store.getSync(Number(body.syncId));
      else {
        sync = await store.getSync(body.syncSlug as string);
        if (sync && sync.slug !== body.syncSlug) sync = null;
      }
      if (!sync) throw new NotFoundError(body.syncId !== undefined ? `no sync with id ${body.syncId}` : `no sync with slug "${body.syncSlug}"`);
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
      params: z.object({ syncId: intText('syncId', 1) }),
      query: z.strictObject({
        runId: intText('runId', 1).optional(),
        after: isoText('after').optional().openapi({ description: 'Runs created at or after this ISO time.' }),
        before: isoText('before').optional().openapi({ description: 'Runs created before this ISO time.' }),
        within: intText('within').optional().openapi({ description: 'Runs created within the last this many minutes.' }),
        offset: intText('offset').optional(),
        limit: limitText.openapi({ description: `At most ${MAX_PAGE} (default ${MAX_PAGE}).` }),
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
      method: 'post',
      path: '/api/v1/sync-sequences/{syncSequenceId}/trigger',
      summary: 'Trigger a sync sequence run (by id or slug); a trigger while it runs queues one follow-up run',
      tag: TAG,
      params: z.object({ syncSequenceId: z.string().min(1) }),
      body: z.strictObject({}).optional(),
      responses: { 200: { description: 'The id of the sequence run (a UUID)', schema: TriggerOutput }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params }) => {
      const sequence = await store.getSequence(params.syncSequenceId);
      if (!sequence) throw new NotFoundError(`no sync sequence "${params.syncSequenceId}"`);
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
      params: z.object({ syncSequenceRunId: z.string().uuid('syncSequenceRunId must be a sequence run id (a UUID)') }),
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
      const view = await sequenceRunDetails(store, run);
      return c.json({ id: view.id, status: view.status, syncRuns: view.syncRuns, members: view.members, terminatedBy: view.terminatedBy, reason: view.reason });
    },
  );
}

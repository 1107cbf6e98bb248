/**
 * Lockstep's own API (what the web UI uses): the workspace, CRUD of its entities with the same
 * validation as `lockstep validate`, enable/disable, runs, cancel and rejected rows.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { ErrorCode, LockstepError, NotFoundError } from '../core/errors.js';
import { didYouMean } from '../core/hints.js';
import { DEFAULT_PLAN_SAMPLES, MAX_PLAN_SAMPLES } from '../core/sequence-plans.js';
import { unknownSlugError } from '../core/unknown-slug.js';
import { rejectedRowView } from '../core/run-views.js';
import { type SequenceRunStatus, type SyncRun, type SyncRunStatus, type Trigger } from '../core/runs.js';
import type { Context } from 'hono';
import { ENTITY_SECTIONS, type ConnectionDef, type EntityKind, type Stored, type WorkspaceState } from '../core/workspace.js';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import { sequenceRunDetails, syncRunDetails } from '../engine/run-details.js';
import { validateEntity } from '../workspace/index.js';
import type { ApiDeps } from './context.js';
import { refuseUnlistedBodyTemplates } from './template-access.js';
import { registerConnectorRoutes } from './connector-routes.js';
import { HttpError, validationFailed } from './http-errors.js';
import { defineRoute } from './route.js';
import {
  RejectedRowView,
  SequencePlanView,
  SequenceRunView,
  SyncRunView,
  SyncTriggerBody,
  errors,
  intText,
  isoText,
  page,
  sequenceRunId,
  sequenceRunStatuses,
  syncRunStatuses,
} from './schemas.js';
import { entityView, fileManagedWarning, workspaceView } from './views.js';

const KINDS: ReadonlyArray<{ kind: EntityKind; plural: string; tag: string }> = [
  { kind: 'source', plural: 'sources', tag: 'Sources' },
  { kind: 'destination', plural: 'destinations', tag: 'Destinations' },
  { kind: 'model', plural: 'models', tag: 'Models' },
  { kind: 'sync', plural: 'syncs', tag: 'Syncs' },
  { kind: 'sequence', plural: 'sequences', tag: 'Sequences' },
];

const Entity = z
  .object({
    id: z.number().int(),
    slug: z.string(),
    origin: z.enum(['file', 'api']),
    createdAt: z.number().int().openapi({ description: 'When it was created, in epoch milliseconds.' }),
    updatedAt: z.number().int().openapi({ description: 'When it last changed, in epoch milliseconds.' }),
    nextDueAt: z
      .string()
      .nullable()
      .optional()
      .openapi({
        description:
          "A sync's or sequence's next due time on its schedule (ISO), which a running scheduler fires; null when only a person, a webhook or an upstream run starts it, or it is disabled.",
      }),
  })
  .catchall(z.unknown())
  .openapi('Entity', { description: 'A stored entity: its resolved definition (every default filled in) plus id, slug and origin. Connection urls are redacted.' });

const EntityWithWarning = Entity.extend({ warning: z.string().optional() }).openapi('EntityWithWarning');

const EntityBody = z
  .object({ slug: z.string().optional().openapi({ description: 'Required when creating.' }) })
  .catchall(z.unknown())
  .openapi('EntityBody', {
    description: 'One entry of a workspace file (the same fields as in lockstep.yaml) plus its slug; validated like `lockstep validate`.',
  });

export const Session = z.object({ authRequired: z.boolean() }).openapi('Session');

const SlugParam = z.object({ slug: z.string().min(1) });
const RunIdParam = z.object({ id: intText('id', 1) });
const SequenceRunIdParam = z.object({ id: sequenceRunId('id') });

const paging = {
  limit: intText('limit', 1, 100).optional().openapi({ description: 'Items per page, 1..100 (default: 20).' }),
  offset: intText('offset', 0).optional().openapi({ description: 'Items to skip (default: 0).' }),
};

const statusList = <S extends string>(allowed: readonly S[]) =>
  z
    .string()
    .transform((text) => text.split(',').map((s) => s.trim()).filter((s) => s !== ''))
    .refine((list) => list.every((s) => (allowed as readonly string[]).includes(s)), `status must be a comma-separated list of: ${allowed.join(', ')}`)
    .transform((list) => list as S[])
    .optional();

const RunListQuery = <S extends string>(allowed: readonly S[]) =>
  z.strictObject({
    status: statusList(allowed),
    after: isoText('after').optional().openapi({ description: 'Only runs created at or after this ISO time.' }),
    before: isoText('before').optional().openapi({ description: 'Only runs created before this ISO time.' }),
    ...paging,
  });

export function registerLockstepRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const { store, runs, plans, clock, env, connectors } = deps;

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/session',
      summary: 'Whether this server needs a token',
      tag: 'Session',
      auth: false,
      responses: { 200: { description: 'The session', schema: Session } },
    },
    (c) => c.json({ authRequired: c.get('authRequired' as never) as boolean }),
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/workspace',
      summary: 'The whole stored workspace',
      tag: 'Workspace',
      responses: {
        200: {
          description: 'Every entity by section',
          schema: z.object(Object.fromEntries(KINDS.map((k) => [k.plural, z.array(Entity)]))).openapi('Workspace'),
        },
        401: errors[401],
      },
    },
    async (c) => c.json(workspaceView(await store.loadWorkspace(), connectors, clock.now())),
  );

  // Before the entities' routes: `/api/sources/test` is not the source "test".
  registerConnectorRoutes(app, deps);

  for (const { kind, plural, tag } of KINDS) {
    const find = async (slug: string) => {
      const state = await store.loadWorkspace();
      const section = state[ENTITY_SECTIONS[kind]] as Array<Stored & { slug: string }>;
      const found = section.find((e) => e.slug === slug);
      if (!found) {
        throw kind === 'sync' || kind === 'sequence'
          ? await unknownSlugError(store, kind, slug, { suggest: true })
          : new NotFoundError(`no ${kind} "${slug}" in the workspace${didYouMean(slug, section.map((e) => e.slug))}`);
      }
      return { state, found };
    };
    const validate = (body: unknown, slug: string | null, state: WorkspaceState, previous: (Stored & { slug: string }) | null) => {
      const sent = keepRedactedSecret(kind, body, previous, connectors);
      if (kind === 'source' || kind === 'destination') {
        const stored = previous as (ConnectionDef & Stored) | null;
        refuseUnlistedBodyTemplates(sent, stored && stored.type === sentType(sent) ? stored.settings : null, env);
      }
      const result = validateEntity(kind, sent, slug, state, env, connectors);
      if (!result.ok) throw validationFailed(result.details);
      return result.definition;
    };
    const answer = (record: Stored & { slug: string }) => {
      const warning = fileManagedWarning(kind, record);
      return { ...entityView(kind, record, connectors, clock.now()), ...(warning ? { warning } : {}) };
    };

    defineRoute(
      app,
      { method: 'get', path: `/api/${plural}`, summary: `List ${plural}`, tag, responses: { 200: { description: `The ${plural}`, schema: z.array(Entity) }, 401: errors[401] } },
      async (c) => {
        const state = await store.loadWorkspace();
        return c.json((state[ENTITY_SECTIONS[kind]] as object[]).map((e) => entityView(kind, e, connectors, clock.now())));
      },
    );
    defineRoute(
      app,
      {
        method: 'post',
        path: `/api/${plural}`,
        summary: `Create a ${kind}`,
        tag,
        body: EntityBody,
        responses: { 201: { description: 'Created', schema: Entity }, 401: errors[401], 409: { description: 'The slug exists', schema: errors[404].schema }, 422: errors[422] },
      },
      async (c, { body }) => {
        const state = await store.loadWorkspace();
        const definition = validate(body, null, state, null);
        const existing = (state[ENTITY_SECTIONS[kind]] as Array<{ slug: string }>).some((e) => e.slug === definition.slug);
        if (existing) throw new HttpError(409, `${kind} "${definition.slug}" exists already — update it with PUT /api/${plural}/${definition.slug}`);
        const { record } = await store.upsertEntity(kind, definition, 'api', clock.now());
        await deps.onWorkspaceChanged();
        return c.json(answer(record), 201);
      },
    );
    defineRoute(
      app,
      { method: 'get', path: `/api/${plural}/{slug}`, summary: `Get a ${kind}`, tag, params: SlugParam, responses: { 200: { description: `The ${kind}`, schema: Entity }, 401: errors[401], 404: errors[404] } },
      async (c, { params }) => c.json(entityView(kind, (await find(params.slug)).found, connectors, clock.now())),
    );
    defineRoute(
      app,
      {
        method: 'put',
        path: `/api/${plural}/{slug}`,
        summary: `Replace a ${kind}`,
        tag,
        params: SlugParam,
        body: EntityBody,
        responses: { 200: { description: `The stored ${kind}; \`warning\` when the workspace files manage it`, schema: EntityWithWarning }, 401: errors[401], 404: errors[404], 422: errors[422] },
      },
      async (c, { params, body }) => {
        const { state, found } = await find(params.slug);
        const definition = validate(body, params.slug, state, found);
        const { record } = await store.upsertEntity(kind, definition, found.origin, clock.now());
        await deps.onWorkspaceChanged();
        return c.json(answer(record));
      },
    );
    defineRoute(
      app,
      {
        method: 'delete',
        path: `/api/${plural}/{slug}`,
        summary: `Delete a ${kind}`,
        tag,
        params: SlugParam,
        responses: { 204: { description: 'Deleted' }, 401: errors[401], 404: errors[404], 409: { description: 'Other entities use it; the message names them', schema: errors[404].schema } },
      },
      async (c, { params }) => {
        await find(params.slug);
        await store.deleteEntity(kind, params.slug, clock.now());
        await deps.onWorkspaceChanged();
        return c.body(null, 204);
      },
    );
    if (kind === 'sync' || kind === 'sequence') {
      defineRoute(
        app,
        {
          method: 'patch',
          path: `/api/${plural}/{slug}`,
          summary: `Enable or disable a ${kind}`,
          tag,
          params: SlugParam,
          body: z.strictObject({ enabled: z.boolean() }),
          responses: { 200: { description: `The stored ${kind}`, schema: EntityWithWarning }, 401: errors[401], 404: errors[404], 422: errors[422] },
        },
        async (c, { params, body }) => {
          const { found } = await find(params.slug);
          await store.setEnabled(kind, found.id, body.enabled, clock.now());
          await deps.onWorkspaceChanged();
          return c.json(answer((await find(params.slug)).found));
        },
      );
    }
  }

  // --- runs
  const syncSlugs = (list: SyncRun[], now: number = clock.now()) => syncRunDetails(store, list, now);
  const requireSync = async (slug: string) => {
    const sync = await store.getSync(slug);
    if (!sync || sync.slug !== slug) throw await unknownSlugError(store, 'sync', slug, { suggest: true });
    return sync;
  };
  const requireSequence = async (slug: string) => {
    const sequence = await store.getSequence(slug);
    if (!sequence || sequence.slug !== slug) throw await unknownSlugError(store, 'sequence', slug, { suggest: true });
    return sequence;
  };

  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/syncs/{slug}/runs',
      summary: 'Run a sync',
      tag: 'Sync runs',
      params: SlugParam,
      body: SyncTriggerBody,
      responses: {
        202: { description: 'The queued run (or the queued run it joined)', schema: SyncRunView },
        401: errors[401],
        404: errors[404],
        409: { description: 'The run waiting in the queue was asked for the contrary (fullResync, resetCDC); the message names it', schema: errors[404].schema },
        422: errors[422],
      },
    },
    async (c, { params, body }) => {
      const sync = await requireSync(params.slug);
      const options = { fullResync: body?.fullResync ?? false, resetCDC: body?.resetCDC ?? false, fullCompare: body?.fullCompare ?? false, allowMassDelete: body?.allowMassDelete ?? false };
      const { run } = await runs.triggerSync(sync.id, options, triggerOf(c));
      return c.json((await syncSlugs([run]))[0], 202);
    },
  );
  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/sequences/{slug}/runs',
      summary: 'Run a sequence',
      tag: 'Sequence runs',
      params: SlugParam,
      body: z.strictObject({}).optional().openapi({ description: 'No options: send no body, or {}.' }),
      responses: { 202: { description: 'The queued run (or the queued run it joined)', schema: SequenceRunView }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params }) => {
      const sequence = await requireSequence(params.slug);
      const { run } = await runs.triggerSequence(sequence.id, triggerOf(c));
      return c.json(await sequenceRunDetails(store, run, clock.now()), 202);
    },
  );
  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/sequences/{slug}/plan',
      summary: 'Dry run of a sequence: each member\'s plan, with nothing sent and nothing stored changed',
      tag: 'Sequence runs',
      params: SlugParam,
      body: z
        .strictObject({ samples: z.number().int().min(0).max(MAX_PLAN_SAMPLES).optional().openapi({ description: `Sample rows per kind of change, 0..${MAX_PLAN_SAMPLES} (default: ${DEFAULT_PLAN_SAMPLES}).` }) })
        .optional()
        .openapi({ description: 'Send no body, or {samples}.' }),
      responses: { 200: { description: 'The plan', schema: SequencePlanView }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, body }) => {
      const sequence = await store.getSequence(params.slug);
      if (!sequence || sequence.slug !== params.slug) throw await unknownSlugError(store, 'sequence', params.slug, { suggest: true });
      if (!plans) throw new LockstepError(ErrorCode.Internal, 'this server was started without a sequence planner');
      const plan = await plans.plan(sequence.slug, { samples: body?.samples, signal: c.req.raw.signal });
      return c.json({ ...plan, plannedAt: new Date(plan.plannedAt).toISOString() });
    },
  );
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/syncs/{slug}/runs',
      summary: 'Runs of a sync, newest first',
      tag: 'Sync runs',
      params: SlugParam,
      query: RunListQuery<SyncRunStatus>(syncRunStatuses),
      responses: { 200: { description: 'A page of runs', schema: page(SyncRunView, 'SyncRunPage') }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, query }) => {
      const sync = await requireSync(params.slug);
      const limit = query.limit ?? 20;
      // The status filter is by the status shown: a run whose process stopped is recorded active and
      // shown `interrupted` (syncRunStatusAt). The store filters by that rule at the time the page
      // is shown at, so its paging counts the runs the page shows.
      const now = clock.now();
      const list = await store.listSyncRuns({ syncId: sync.id, statuses: query.status, statusesAt: now, after: query.after, before: query.before, limit: limit + 1, offset: query.offset ?? 0, order: 'desc' });
      return c.json({ hasMore: list.length > limit, data: await syncSlugs(list.slice(0, limit), now) });
    },
  );
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/sequences/{slug}/runs',
      summary: 'Runs of a sequence, newest first',
      tag: 'Sequence runs',
      params: SlugParam,
      query: RunListQuery<SequenceRunStatus>(sequenceRunStatuses),
      responses: { 200: { description: 'A page of runs', schema: page(SequenceRunView, 'SequenceRunPage') }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, query }) => {
      const sequence = await requireSequence(params.slug);
      const limit = query.limit ?? 20;
      const list = await store.listSequenceRuns({ sequenceId: sequence.id, statuses: query.status, after: query.after, before: query.before, limit: limit + 1, offset: query.offset ?? 0, order: 'desc' });
      const data = [];
      for (const run of list.slice(0, limit)) data.push(await sequenceRunDetails(store, run, clock.now()));
      return c.json({ hasMore: list.length > limit, data });
    },
  );
  // Before `/api/sync-runs/{id}`: "latest" is not a run id.
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/sync-runs/latest',
      summary: "Each sync's last run, for a list of syncs",
      tag: 'Sync runs',
      responses: {
        200: {
          description: 'One run per sync that has run (deleted syncs left out): its newest run; when that one is waiting in the queue, the run before it, if any',
          schema: z.object({ data: z.array(SyncRunView) }).openapi('LatestSyncRuns'),
        },
        401: errors[401],
      },
    },
    async (c) => c.json({ data: await syncSlugs(lastOfEach(await store.latestSyncRuns(2), (r) => r.syncId)) }),
  );
  const requireSyncRun = async (id: number) => {
    const run = await store.getSyncRun(id);
    if (!run) throw new NotFoundError(`no sync run ${id}`);
    return run;
  };
  defineRoute(
    app,
    { method: 'get', path: '/api/sync-runs/{id}', summary: 'A sync run', tag: 'Sync runs', params: RunIdParam, responses: { 200: { description: 'The run', schema: SyncRunView }, 401: errors[401], 404: errors[404], 422: errors[422] } },
    async (c, { params }) => c.json((await syncSlugs([await requireSyncRun(params.id)]))[0]),
  );
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/sync-runs/{id}/rejected-rows',
      summary: 'Rows a sync run rejected, with their reasons',
      tag: 'Sync runs',
      params: RunIdParam,
      query: z.strictObject(paging),
      responses: { 200: { description: 'A page of rejected rows', schema: page(RejectedRowView, 'RejectedRowPage') }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, query }) => {
      await requireSyncRun(params.id);
      const limit = query.limit ?? 20;
      const rows = await store.listRejectedRows(params.id, limit + 1, query.offset ?? 0);
      return c.json({ hasMore: rows.length > limit, data: rows.slice(0, limit).map(rejectedRowView) });
    },
  );
  defineRoute(
    app,
    { method: 'post', path: '/api/sync-runs/{id}/cancel', summary: 'Cancel a sync run (a running one stops at once, its query or write interrupted)', tag: 'Sync runs', params: RunIdParam, responses: { 200: { description: 'The run', schema: SyncRunView }, 401: errors[401], 404: errors[404], 409: { description: 'Already finished', schema: errors[404].schema } } },
    async (c, { params }) => c.json((await syncSlugs([await runs.cancelSyncRun(params.id)]))[0]),
  );
  // Before `/api/sequence-runs/{id}`: "latest" is not a run id.
  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/sequence-runs/latest',
      summary: "Each sequence's last run, for a list of sequences",
      tag: 'Sequence runs',
      responses: {
        200: {
          description: 'One run per sequence that has run (deleted sequences left out): its newest run; when that one is waiting in the queue, the run before it, if any',
          schema: z.object({ data: z.array(SequenceRunView) }).openapi('LatestSequenceRuns'),
        },
        401: errors[401],
      },
    },
    async (c) => {
      const data = [];
      for (const run of lastOfEach(await store.latestSequenceRuns(2), (r) => r.sequenceId)) data.push(await sequenceRunDetails(store, run, clock.now()));
      return c.json({ data });
    },
  );
  defineRoute(
    app,
    { method: 'get', path: '/api/sequence-runs/{id}', summary: 'A sequence run with every member', tag: 'Sequence runs', params: SequenceRunIdParam, responses: { 200: { description: 'The run', schema: SequenceRunView }, 401: errors[401], 404: errors[404], 422: errors[422] } },
    async (c, { params }) => {
      const run = await store.getSequenceRun(params.id);
      if (!run) throw new NotFoundError(`no sequence run ${params.id}`);
      return c.json(await sequenceRunDetails(store, run, clock.now()));
    },
  );
  defineRoute(
    app,
    { method: 'post', path: '/api/sequence-runs/{id}/cancel', summary: 'Cancel a sequence run: running members stop, the rest are skipped', tag: 'Sequence runs', params: SequenceRunIdParam, responses: { 200: { description: 'The run', schema: SequenceRunView }, 401: errors[401], 404: errors[404], 409: { description: 'Already finished', schema: errors[404].schema } } },
    async (c, { params }) => c.json(await sequenceRunDetails(store, await runs.cancelSequenceRun(params.id), clock.now())),
  );
  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/sequence-runs/{id}/resume',
      summary: 'Resume a failed or cancelled sequence run: a new run in which members that finished well are carried over, and the rest run',
      tag: 'Sequence runs',
      params: SequenceRunIdParam,
      body: z.strictObject({}).optional().openapi({ description: 'No options: send no body, or {}.' }),
      responses: {
        202: { description: 'The queued run; `resumedFrom` names the run it resumes', schema: SequenceRunView },
        401: errors[401],
        404: errors[404],
        409: { description: 'The run is still queued or running or ended done, was resumed already, or its sequence changed since; the message says which', schema: errors[404].schema },
        422: errors[422],
      },
    },
    async (c, { params }) => c.json(await sequenceRunDetails(store, await runs.resumeSequenceRun(params.id, triggerOf(c)), clock.now()), 202),
  );
}

/**
 * From the two newest runs of each sync or sequence (newest first, grouped by `owner`), the one a list
 * shows as its last run: the newest, unless it is a follow-up waiting in the queue (there is at most
 * one), which has not run yet.
 */
function lastOfEach<R extends { status: SyncRunStatus | SequenceRunStatus }>(newest: R[], owner: (run: R) => number): R[] {
  const waiting = (run: R) => run.status === 'queued' || run.status === 'pending';
  const last = new Map<number, R>();
  for (const run of newest) {
    const seen = last.get(owner(run));
    if (seen === undefined || (waiting(seen) && !waiting(run))) last.set(owner(run), run);
  }
  return [...last.values()];
}

/**
 * A body sent back as it was read carries the hidden secrets (`user:***@`, `***`); the stored ones are
 * kept then, so reading an entity and writing it back never loses its password or token.
 */
/** The `type` a body gives, if any. */
function sentType(body: unknown): unknown {
  return body !== null && typeof body === 'object' ? (body as Record<string, unknown>).type : undefined;
}

function keepRedactedSecret(kind: EntityKind, body: unknown, previous: (Stored & { slug: string }) | null, connectors: ConnectorRegistry): unknown {
  if ((kind !== 'source' && kind !== 'destination') || previous === null || body === null || typeof body !== 'object') return body;
  return connectors.keepRedacted(body as Record<string, unknown>, previous as unknown as ConnectionDef);
}

/**
 * What started a run asked for through this API: `manual` when a person pressed Run now in the web UI
 * (which says so in the `X-Lockstep-Client: web` header), `api` for every other client.
 */
function triggerOf(c: Context): Trigger {
  return c.req.header('x-lockstep-client') === 'web' ? { type: 'manual', detail: 'web UI' } : { type: 'api', detail: 'api' };
}

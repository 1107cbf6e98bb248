/**
 * What the UI's forms ask of connections before anything is saved: the connector kinds with their
 * settings as JSON Schema (the forms are generated from them), a connection test, the objects and
 * fields a destination has (for the sync form's pickers), and a model's first rows with its primary
 * key checked. Every body is validated as `lockstep validate` would check the entity, so the form
 * shows the same messages at the same fields; a secret sent back hidden (`***`) means the stored one.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { z as zod } from 'zod';
import type { ConnectorKind, ConnectorRole } from '../core/connector-kind.js';
import { resolveConnection } from '../core/connector-registry.js';
import { ErrorCode, LockstepError, NotFoundError, toError } from '../core/errors.js';
import { encodeKey } from '../core/keys.js';
import type { Destination, Value } from '../core/ports.js';
import { ENTITY_SECTIONS, type ConnectionDef, type EntityOrigin, type Stored } from '../core/workspace.js';
import { SLUG_PATTERN, validateEntity } from '../workspace/index.js';
import type { ApiDeps } from './context.js';
import { validationFailed } from './http-errors.js';
import { refuseUnlistedBodyTemplates } from './template-access.js';
import { defineRoute } from './route.js';
import { errors } from './schemas.js';

/** Rows a model preview shows. */
export const PREVIEW_ROWS = 20;
/** Rows whose primary key a model preview checks for nulls and duplicates, at most: the keys are held in memory. */
export const KEY_CHECK_ROWS = 50_000;
/** How long a preview, a connection test or a field listing may take before it is given up. */
const TIMEOUT_MS = 20_000;
/** How long a preview goes on checking keys once it has its rows: the check then covers the rows read so far. */
const KEY_CHECK_MS = 5_000;

const Json = z.record(z.string(), z.unknown());

export const ConnectorKindView = z
  .object({
    type: z.string(),
    description: z.string(),
    roles: z.array(z.enum(['source', 'destination'])),
    settings: Json.openapi({ description: 'JSON Schema (draft-07) of the settings besides `type`, with defaults and descriptions.' }),
    secrets: z.array(z.string()).openapi({ description: 'Settings that hold secrets: answered hidden, and kept when sent back hidden.' }),
    paths: z.array(z.string()).openapi({ description: 'Settings that are file paths, relative to the workspace folder.' }),
    example: z.string().openapi({ description: 'A connection of this kind as a workspace file writes it.' }),
    destination: z
      .object({
        capabilities: z.object({ deletes: z.boolean(), upsert: z.boolean(), maxBatchSize: z.number().int().nullable(), recordIds: z.boolean() }),
        syncSettings: Json.nullable().openapi({ description: 'JSON Schema of the extra settings a sync to this kind may set; null when there are none.' }),
      })
      .nullable(),
  })
  .openapi('ConnectorKind');

const ConnectionBody = z
  .object({ slug: z.string().optional().openapi({ description: 'A stored connection: its hidden secrets are used when the body sends them back hidden.' }) })
  .catchall(z.unknown())
  .openapi('ConnectionBody', { description: 'A source or destination as the workspace file writes it: `type` and the settings of its kind.' });

export const ConnectionTest = z
  .object({ ok: z.boolean(), message: z.string().openapi({ description: "What was reached, or the connector's error; never a secret." }) })
  .openapi('ConnectionTest');

const PreviewBody = z
  .strictObject({
    source: z.string(),
    query: z.string(),
    primaryKey: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .openapi('ModelPreviewBody');

export const ModelPreview = z
  .object({
    columns: z.array(z.string()),
    rows: z.array(z.array(z.union([z.string(), z.number(), z.boolean(), z.null()]))).openapi({ description: `The first ${PREVIEW_ROWS} rows, aligned with columns.` }),
    keyCheck: z.object({
      columns: z.array(z.string()).openapi({ description: 'The primary key checked.' }),
      missing: z.array(z.string()).openapi({ description: 'Key columns the query does not return.' }),
      rowsChecked: z.number().int(),
      complete: z.boolean().openapi({ description: `Whether every row was checked (at most ${KEY_CHECK_ROWS} are, for at most ${KEY_CHECK_MS / 1000} s).` }),
      nulls: z.number().int().openapi({ description: 'Rows whose key has a null.' }),
      duplicates: z.number().int().openapi({ description: 'Rows whose key an earlier row has.' }),
      examples: z.array(z.string()).openapi({ description: 'Up to five duplicated keys.' }),
    }),
  })
  .openapi('ModelPreview');

export const DestinationFields = z
  .object({
    object: z.string(),
    fields: z.array(z.string()).nullable().openapi({ description: "The object's fields (a table's columns); null when this kind cannot list them." }),
  })
  .openapi('DestinationFields');

export const DestinationObjects = z
  .object({ objects: z.array(z.string()).nullable().openapi({ description: 'The objects a sync may write to; null when this kind cannot list them.' }) })
  .openapi('DestinationObjects');

export function registerConnectorRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const { store, connectors, env } = deps;

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/connector-kinds',
      summary: 'The connector kinds this server knows, with their settings as JSON Schema',
      tag: 'Connections',
      responses: { 200: { description: 'Every kind, in the order they are offered', schema: z.array(ConnectorKindView) }, 401: errors[401] },
    },
    (c) => c.json(connectors.kinds().map(kindView)),
  );

  for (const role of ['source', 'destination'] as const) {
    const plural = `${role}s`;
    defineRoute(
      app,
      {
        method: 'post',
        path: `/api/${plural}/test`,
        summary: `Open a ${role} connection and close it again`,
        tag: 'Connections',
        body: ConnectionBody,
        responses: {
          200: { description: `Whether the ${role} answered; a failure carries the connector's message`, schema: ConnectionTest },
          401: errors[401],
          422: errors[422],
        },
      },
      async (c, { body }) => {
        const connection = await checkedConnection(role, body ?? {});
        try {
          await withTimeout(`the ${role} did not answer within ${TIMEOUT_MS / 1000} s`, async () => {
            const opened = role === 'source' ? await connectors.openSource(connection) : await connectors.openDestination(connection);
            await opened.close();
          });
          return c.json({ ok: true, message: `Connected to ${role} "${connection.slug}" (${connection.type}).` });
        } catch (thrown) {
          return c.json({ ok: false, message: withoutSecrets(toError(thrown).message, connection.settings, connectors.kind(connection.type)) });
        }
      },
    );
  }

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/destinations/{slug}/objects',
      summary: 'The objects (tables) a sync may write to in a destination',
      tag: 'Connections',
      params: z.object({ slug: z.string().min(1) }),
      responses: { 200: { description: 'The objects', schema: DestinationObjects }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params }) => c.json({ objects: await withDestination(params.slug, (d) => (d.listObjects ? d.listObjects() : null)) }),
  );

  defineRoute(
    app,
    {
      method: 'get',
      path: '/api/destinations/{slug}/fields',
      summary: "The fields of a destination's object (a table's columns), for field mappings",
      tag: 'Connections',
      params: z.object({ slug: z.string().min(1) }),
      query: z.strictObject({ object: z.string().min(1, 'object is empty — name the table or object') }),
      responses: { 200: { description: 'The fields', schema: DestinationFields }, 401: errors[401], 404: errors[404], 422: errors[422] },
    },
    async (c, { params, query }) => {
      try {
        const fields = await withDestination(params.slug, (d) => (d.listFields ? d.listFields(query.object) : null));
        return c.json({ object: query.object, fields });
      } catch (thrown) {
        if (thrown instanceof LockstepError && thrown.code === ErrorCode.Schema) throw validationFailed({ object: thrown.message });
        throw thrown;
      }
    },
  );

  defineRoute(
    app,
    {
      method: 'post',
      path: '/api/models/preview',
      summary: `A model's first ${PREVIEW_ROWS} rows, and its primary key checked for nulls and duplicates`,
      tag: 'Models',
      body: PreviewBody,
      responses: {
        200: { description: 'The preview', schema: ModelPreview },
        401: errors[401],
        422: { description: 'The model is not valid, or its query failed (at `query`) or its source cannot be reached (at `source`)', schema: errors[422].schema },
      },
    },
    async (c, { body }) => {
      const state = await store.loadWorkspace();
      const checked = validateEntity('model', { slug: 'preview', ...body, primaryKey: body.primaryKey ?? 'id' }, null, state, env, connectors);
      if (!checked.ok) {
        const details = Object.fromEntries(Object.entries(checked.details).filter(([field]) => body.primaryKey !== undefined || field !== 'primaryKey'));
        if (Object.keys(details).length > 0) throw validationFailed(details);
      }
      const sourceDef = state.sources.find((s) => s.slug === body.source);
      if (!sourceDef) throw validationFailed({ source: `unknown source "${body.source}"` });
      const connection = resolved(sourceDef, 'source');
      const keyColumns = body.primaryKey === undefined ? [] : typeof body.primaryKey === 'string' ? [body.primaryKey] : body.primaryKey;
      try {
        return c.json(await preview(connection, body.query, keyColumns));
      } catch (thrown) {
        const error = toError(thrown);
        const message = withoutSecrets(error.message, connection.settings, connectors.kind(connection.type));
        const field = error instanceof LockstepError && (error.code === ErrorCode.Connection || error.code === ErrorCode.Validation) ? 'source' : 'query';
        throw validationFailed({ [field]: message });
      }
    },
  );

  /** A connection body checked like the entity it would be saved as, its stored secrets put back, ready to open. */
  async function checkedConnection(role: ConnectorRole, body: Record<string, unknown>) {
    const state = await store.loadWorkspace();
    const kind = role === 'source' ? 'source' : 'destination';
    // A test needs no slug: one the form has not finished yet (`CRM API`) is tested as a new connection.
    const slug = typeof body.slug === 'string' && SLUG_PATTERN.test(body.slug) ? body.slug : `new-${role}`;
    const stored = (state[ENTITY_SECTIONS[kind]] as Array<ConnectionDef & Stored>).find((e) => e.slug === slug) ?? null;
    const withSecrets = stored ? connectors.keepRedacted(body, stored) : body;
    refuseUnlistedBodyTemplates(withSecrets, stored && stored.type === withSecrets.type ? stored.settings : null, env);
    const checked = validateEntity(kind, { ...withSecrets, slug }, null, state, env, connectors);
    if (!checked.ok) throw validationFailed(Object.fromEntries(Object.entries(checked.details).filter(([field]) => field !== 'slug')));
    const definition = checked.definition as ConnectionDef;
    try {
      // Read as what it would be saved as: a connection of the API, unless it is a stored one kept as it was.
      return resolved({ ...definition, origin: stored?.origin ?? 'api' }, role);
    } catch (thrown) {
      throw validationFailed({ body: toError(thrown).message });
    }
  }

  /** The connection with its `${ENV}` templates read, relative paths against the workspace folder. */
  function resolved(def: ConnectionDef & { origin?: EntityOrigin }, role: ConnectorRole) {
    return resolveConnection(def, role, deps.baseDir, env);
  }

  /** Opens the stored destination `slug`, runs `use` on it and closes it. */
  async function withDestination<T>(slug: string, use: (destination: Destination) => Promise<T> | T): Promise<T> {
    const state = await store.loadWorkspace();
    const def = state.destinations.find((d) => d.slug === slug);
    if (!def) throw new NotFoundError(`no destination "${slug}" in the workspace`);
    const connection = resolved(def, 'destination');
    try {
      return await withTimeout(`destination "${slug}" did not answer within ${TIMEOUT_MS / 1000} s`, async () => {
        const destination = await connectors.openDestination(connection);
        try {
          return await use(destination);
        } finally {
          await destination.close().catch(() => undefined);
        }
      });
    } catch (thrown) {
      const error = toError(thrown);
      const message = withoutSecrets(error.message, connection.settings, connectors.kind(connection.type));
      if (error instanceof LockstepError && error.code === ErrorCode.Schema) throw new LockstepError(ErrorCode.Schema, message);
      throw validationFailed({ destination: message });
    }
  }

  /** Reads the query's first rows and checks the key over at most KEY_CHECK_ROWS rows, then stops reading. */
  async function preview(connection: ReturnType<typeof resolved>, query: string, keyColumns: string[]) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new LockstepError(ErrorCode.Query, `the query did not finish its first rows within ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
    const source = await connectors.openSource(connection);
    try {
      let columns: string[] = [];
      const rows: Value[][] = [];
      const seen = new Set<string>();
      const examples: string[] = [];
      let keyIndexes: number[] | null = null;
      let missing: string[] = [];
      let rowsChecked = 0;
      let nulls = 0;
      let duplicates = 0;
      let complete = true;
      const keyCheckEnds = Date.now() + KEY_CHECK_MS;
      read: for await (const batch of source.read(query, { batchSize: 1000, signal: abort.signal })) {
        if (rows.length >= PREVIEW_ROWS && Date.now() > keyCheckEnds) {
          complete = false;
          break;
        }
        if (keyIndexes === null) {
          columns = batch.columns;
          keyIndexes = keyColumns.map((k) => columns.indexOf(k));
          missing = keyColumns.filter((_, i) => keyIndexes![i] === -1);
        }
        for (const row of batch.rows) {
          if (rows.length < PREVIEW_ROWS) rows.push(row);
          if (missing.length > 0 || keyColumns.length === 0) {
            if (rows.length >= PREVIEW_ROWS) {
              complete = false;
              break read;
            }
            continue;
          }
          if (rowsChecked >= KEY_CHECK_ROWS) {
            complete = false;
            break read;
          }
          rowsChecked++;
          const key = keyIndexes.map((i) => row[i] ?? null);
          if (key.some((v) => v === null)) {
            nulls++;
            continue;
          }
          const text = encodeKey(key);
          if (seen.has(text)) {
            duplicates++;
            if (examples.length < 5) examples.push(key.map(String).join(', '));
          } else seen.add(text);
        }
      }
      return { columns, rows, keyCheck: { columns: keyColumns, missing, rowsChecked, complete, nulls, duplicates, examples } };
    } finally {
      clearTimeout(timer);
      await source.close().catch(() => undefined);
    }
  }
}

function kindView(kind: ConnectorKind) {
  const options = { io: 'input', target: 'draft-7', unrepresentable: 'any' } as const;
  const syncSettings = kind.destination?.syncSettings;
  return {
    type: kind.type,
    description: kind.description,
    roles: (['source', 'destination'] as const).filter((role) => kind[role] !== undefined),
    settings: zod.toJSONSchema(kind.settings, options) as Record<string, unknown>,
    secrets: [...kind.secrets],
    paths: [...(kind.paths ?? [])],
    example: kind.example,
    destination: kind.destination
      ? { capabilities: kind.destination.capabilities, syncSettings: syncSettings ? (zod.toJSONSchema(syncSettings, options) as Record<string, unknown>) : null }
      : null,
  };
}

async function withTimeout<T>(message: string, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LockstepError(ErrorCode.Connection, message)), TIMEOUT_MS);
  });
  try {
    return await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A connector's message with every secret of the connection hidden: connectors are written not to
 * echo secrets, and this holds even when a driver's own message quotes one.
 */
export function withoutSecrets(message: string, settings: Record<string, unknown>, kind: ConnectorKind | undefined): string {
  const secrets = new Set<string>();
  const collect = (value: unknown) => {
    if (typeof value === 'string') {
      secrets.add(value);
      const password = /^[a-z][a-z0-9+.-]*:\/\/[^:@/?#]*:([^@/?#]+)@/i.exec(value)?.[1];
      if (password) {
        secrets.add(password);
        try {
          secrets.add(decodeURIComponent(password));
        } catch {
          // not percent-encoded
        }
      }
    } else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collect(v);
  };
  for (const name of kind?.secrets ?? []) collect(settings[name]);
  let text = message;
  // Longest first, so a password inside a URL is hidden along with the URL.
  for (const secret of [...secrets].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length)) text = text.split(secret).join('***');
  return text;
}

/**
 * Declaring a route once: its zod schemas describe it in the OpenAPI document and validate the
 * request. Bad params, query strings and bodies become a 422 naming each field.
 */
import type { Context, Hono } from 'hono';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { z } from '@hono/zod-openapi';
import { validationFailed } from './http-errors.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Shape = z.ZodObject;

export interface RouteSpec<P extends Shape | undefined, Q extends Shape | undefined, B extends z.ZodType | undefined> {
  method: Method;
  /** OpenAPI style: `/api/syncs/{slug}`. */
  path: string;
  summary: string;
  tag: string;
  params?: P;
  query?: Q;
  /** The JSON body; absent or empty bodies are validated as `undefined`. */
  body?: B;
  /** Status → description and JSON schema (none for a non-JSON answer). */
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
  /** Whether the route needs a token (default: true). */
  auth?: boolean;
}

type Out<T> = T extends z.ZodType ? z.output<T> : undefined;

export interface RouteInput<P, Q, B> {
  params: Out<P>;
  query: Out<Q>;
  body: Out<B>;
}

/** Largest JSON body the API takes (bodies are counted as they arrive, see server.ts). */
export const API_BODY_LIMIT_BYTES = 1024 * 1024;
/** Deepest nesting of arrays and objects a JSON body may have: no request of the API needs more than a few levels. */
export const MAX_JSON_DEPTH = 64;

export function defineRoute<P extends Shape | undefined, Q extends Shape | undefined, B extends z.ZodType | undefined>(
  app: OpenAPIHono,
  spec: RouteSpec<P, Q, B>,
  handler: (c: Context, input: RouteInput<P, Q, B>) => Promise<Response> | Response,
): void {
  const responses: Record<string, { description: string; content?: Record<string, { schema: z.ZodType }> }> = {};
  for (const [status, r] of Object.entries(spec.responses)) {
    responses[status] = r.schema ? { description: r.description, content: { [r.contentType ?? 'application/json']: { schema: r.schema } } } : { description: r.description };
  }
  app.openAPIRegistry.registerPath({
    method: spec.method,
    path: spec.path,
    summary: spec.summary,
    tags: [spec.tag],
    security: spec.auth === false ? [] : [{ bearerAuth: [] }],
    request: {
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { query: spec.query } : {}),
      ...(spec.body ? { body: { content: { 'application/json': { schema: spec.body } }, required: false } } : {}),
    },
    responses,
  });
  const honoPath = spec.path.replace(/\{([^}]+)\}/g, ':$1');
  (app as unknown as Hono).on(spec.method.toUpperCase(), honoPath, async (c) => {
    // No prototype: a field named `__proto__` is a field like any other.
    const details: Record<string, string> = Object.create(null) as Record<string, string>;
    const params = spec.params ? check(spec.params, c.req.param(), details) : undefined;
    const query = spec.query ? check(spec.query, c.req.query(), details) : undefined;
    let body: unknown = undefined;
    if (spec.body) {
      const raw = await readBody(c, details);
      if (!('body' in details)) body = check(spec.body, raw, details);
    }
    if (Object.keys(details).length > 0) throw validationFailed(details);
    return handler(c, { params, query, body } as RouteInput<P, Q, B>);
  });
}

/** The JSON body, or undefined when there is none. */
export async function readBody(c: Context, details: Record<string, string>): Promise<unknown> {
  const text = await c.req.text();
  if (text.length > API_BODY_LIMIT_BYTES) {
    details.body = `is larger than ${API_BODY_LIMIT_BYTES} bytes`;
    return undefined;
  }
  if (text.trim() === '') return undefined;
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    details.body = `nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`;
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (thrown) {
    details.body = `is not valid JSON (${(thrown as Error).message})`;
    return undefined;
  }
}

function check(schema: z.ZodType, value: unknown, details: Record<string, string>): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      const prefix = issue.path.map(String).join('.');
      for (const key of issue.keys) {
        const name = key === '' ? '""' : key;
        details[prefix ? `${prefix}.${name}` : name] = 'unknown field — remove it';
      }
      continue;
    }
    const field = issue.path.length > 0 ? issue.path.map(String).join('.') : 'body';
    const text = issueText(issue, value);
    details[field] = details[field] ? `${details[field]}; ${text}` : text;
  }
  return undefined;
}

function issueText(issue: z.core.$ZodIssue, root: unknown): string {
  let value: unknown = root;
  for (const segment of issue.path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[segment as PropertyKey] : undefined;
  if (value === undefined && issue.code === 'invalid_type') return `is required (${issue.message})`;
  return issue.message;
}

/** The deepest nesting of arrays and objects in JSON text (brackets inside strings do not count). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) deepest = Math.max(deepest, ++depth);
    else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return deepest;
}

/**
 * The HTTP destination's settings: the connection's (where the API is, its headers, its budget) and
 * a sync's (how each request is made: method, Liquid body, delete request, per-record results).
 */
import { z } from 'zod';
import { hinted } from '../../core/hints.js';
import { intSetting, isTemplated, urlSetting } from '../settings.js';
import { checkTemplate, templateVariables, unknownTemplateVariables } from './http-templates.js';
import type { DestinationCapabilities } from '../../core/ports.js';

/** The methods a request may use. */
export const HttpMethod = {
  Post: 'POST',
  Put: 'PUT',
  Patch: 'PATCH',
  Delete: 'DELETE',
} as const;
export type HttpMethod = (typeof HttpMethod)[keyof typeof HttpMethod];

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the HTTP client sets itself; a connection setting them would break the request. */
const RESERVED_HEADERS = ['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer'];

const headers = z
  .record(z.string(), z.string())
  .superRefine((record, ctx) => {
    for (const [name, value] of Object.entries(record)) {
      if (!HEADER_NAME.test(name)) {
        ctx.addIssue({ code: 'custom', path: [name], message: hinted(`"${name}" is not a valid header name`, 'use letters, digits and - (e.g. Authorization, X-Api-Key)') });
      } else if (RESERVED_HEADERS.includes(name.toLowerCase())) {
        ctx.addIssue({ code: 'custom', path: [name], message: hinted(`header "${name}" is set by Lockstep's HTTP client`, 'remove it') });
      }
      // The value is never echoed: headers hold secrets.
      if (!isTemplated(value) && /[\r\n\0]/.test(value)) {
        ctx.addIssue({ code: 'custom', path: [name], message: hinted(`header "${name}" holds a line break`, 'write its value on one line') });
      }
    }
  })
  .default({})
  .meta({
    description:
      'Headers sent with every request, e.g. { Authorization: "Bearer ${API_TOKEN}" }; values may hold ${ENV} templates and are secret (never logged or shown). Content-Type defaults to application/json.',
  });

/** A connection to an HTTP JSON API. */
export const httpConnectionSettings = z.strictObject({
  url: urlSetting(
    ['http:', 'https:'],
    'https://api.example.com/v1',
    'Base URL of the API (http or https); a sync\'s `object` is the path under it. May hold ${ENV} templates, e.g. "${CRM_API_URL}".',
  ),
  headers,
  rateLimit: z
    .strictObject({
      requestsPerSecond: z
        .number()
        .positive({ error: 'rateLimit.requestsPerSecond must be more than 0, e.g. 10' })
        .max(100_000)
        .meta({ description: 'Requests started per second at most, by every run writing through this connection in this process together.' }),
    })
    .optional()
    .meta({ description: 'The API\'s request budget, shared by every run and sequence member writing through this connection (default: no limit).' }),
  concurrency: intSetting(1, 256, 4, 'Requests under way at once through this connection, by every run together'),
  timeoutMs: intSetting(10, 600_000, 30_000, 'Milliseconds a request may take, from sending it to the end of the answer, before it counts as a transient failure'),
});
export type HttpConnectionSettings = z.output<typeof httpConnectionSettings>;

const method = (fallback: HttpMethod, what: string) =>
  z
    .enum(HttpMethod, { error: `${what} must be one of POST, PUT, PATCH, DELETE (upper case)` })
    .default(fallback)
    .meta({ description: `${what}: POST, PUT, PATCH or DELETE (default: ${fallback}).` });

/**
 * A Liquid template setting, checked for syntax (and filesystem access) where it is written; a
 * request's path (`path`) is also refused when it is a full URL.
 */
const template = (description: string, path = false) =>
  z
    .string()
    .superRefine((text, ctx) => {
      const problem = checkTemplate(text);
      if (problem !== null) return ctx.addIssue({ code: 'custom', message: `not a valid Liquid template: ${problem}` });
      if (path && /^\s*[a-z][a-z\d+.-]*:\/\//i.test(text)) {
        // It would go under the base URL as a path: /v1/https://api.example.com/v1/contacts.
        ctx.addIssue({
          code: 'custom',
          message: hinted("is a URL, not a path under the destination's url", "write the path alone, e.g. /contacts/{{ row.id }}, and the API's address in the destination's url"),
        });
      }
      const unknown = unknownTemplateVariables(text);
      if (unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: hinted(
            `reads ${unknown.map((v) => `"${v}"`).join(', ')}, which templates do not have`,
            'use row (one row per request) or rows (the batch), e.g. {{ row.id }}',
          ),
        });
      }
      const read = templateVariables(text);
      if (read.includes('row') && read.includes('rows')) {
        ctx.addIssue({ code: 'custom', message: hinted('reads both row and rows', `${ONE_FORM}; use one of them`) });
      }
    })
    .meta({ description });

const ONE_FORM = 'a request carries one row (row) or a batch (rows)';

/** `row` or `rows`, whichever a template reads; undefined when it reads neither or both, or is not a template. */
export function rowsRead(text: unknown): 'row' | 'rows' | undefined {
  if (typeof text !== 'string') return undefined;
  const read = templateVariables(text).filter((name) => name === 'row' || name === 'rows');
  return read.length === 1 ? (read[0] as 'row' | 'rows') : undefined;
}

/** RFC 6901: empty (the whole document) or `/`-separated tokens with `~0` and `~1` escapes. */
const jsonPointer = z
  .string()
  .regex(/^(\/([^~/]|~[01])*)*$/, { error: 'results must be a JSON pointer (RFC 6901) like /results or /data/items ("" for a top-level array)' })
  .meta({
    description:
      'JSON pointer (RFC 6901) to a per-record array in a 2xx answer, one item per row sent, in order; an item with `ok` or `success` false rejects its row with its `error` or `message`. The answer must then be JSON.',
  });

/** A sync's `object` for an HTTP destination: the request's path under the base URL, a Liquid template. */
export const httpObject = template('Path of the request under the base URL, a Liquid template, e.g. /contacts or /contacts/{{ row.id }}.', true);

/** A sync's settings for an HTTP destination, written next to its own fields. */
export const httpSyncSettings = z.strictObject({
  method: method(HttpMethod.Post, 'method of the request carrying inserted, updated and upserted rows'),
  body: template(
    'Liquid template of the request body. One row per request (batchSize: 1, or a template using `row`): `row` is the mapped row; otherwise `rows` is the batch. Filter `json` writes a value as JSON, e.g. {"email": {{ row.email | json }}}. Default: the row as JSON, or {"records": [...]} for a batch.',
  ).optional(),
  delete: z
    .strictObject({
      method: method(HttpMethod.Delete, 'method of the delete request'),
      path: template('Path of the delete request under the base URL, a Liquid template; the rows carry only the key fields, e.g. /contacts/{{ row.id }}.', true),
      body: template('Liquid template of the delete request\'s body (default: none when the path names the row, else the keys as JSON).').optional(),
      results: jsonPointer.optional(),
    })
    .superRefine((request, ctx) => {
      // The path and the body of one request carry the same rows.
      const [path, body] = [rowsRead(request.path), rowsRead(request.body)];
      if (path !== undefined && body !== undefined && path !== body) {
        ctx.addIssue({ code: 'custom', path: ['body'], message: hinted(`reads ${body}, while delete.path reads ${path}`, `${ONE_FORM}; use the same in both`) });
      }
    })
    .optional()
    .meta({ description: 'The request that deletes rows, needed by a mirror sync or deleteBehavior: delete (default: none; such a sync fails at its first delete).' }),
  results: jsonPointer.optional(),
});
export type HttpSyncSettings = z.output<typeof httpSyncSettings>;

/** What every HTTP destination can do: deletes need the sync's `delete` request. */
export const HTTP_CAPABILITIES: DestinationCapabilities = { deletes: true, upsert: true, maxBatchSize: null, recordIds: false };

/**
 * The HTTP destination: any JSON API, written to with requests built from a sync's settings
 * (http-settings.ts). A request carries one row or a batch:
 *
 * - one row when its templates read `row` (e.g. `object: /contacts/{{ row.id }}`), or when they read
 *   neither `row` nor `rows` and the sync's `batchSize` is 1: one request per row of each batch;
 * - otherwise the batch the engine hands over, in one request.
 *
 * Upserts, inserts and updates go with the sync's `method` to its `object` (the path under the
 * connection's url); deletes with the sync's `delete` request (a sync that deletes without one
 * fails at its first delete). Each row's outcome is its request's: delivered on a 2xx (or per
 * record, from the answer's `results` array), refused on a 4xx. A transient failure of any request
 * of a batch (a timeout, 429, 5xx, a broken connection) is thrown as retryable, so the engine
 * retries the batch and then fails the run; the rows other requests of it answered are kept and
 * not sent again when the engine retries it.
 */
import { connect } from 'node:net';
import { distance } from 'fastest-levenshtein';
import type { Liquid } from 'liquidjs';
import type { ConnectorContext } from '../../core/connector-kind.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import { canonicalJsonText } from '../values.js';
import type { Destination, DestinationWriter, RowOutcome, Value, WriteOperation, WriteTarget } from '../../core/ports.js';
import { HttpClient, WRITE_ABANDONED, type HttpAnswer, type HttpRequest } from './http-client.js';
import type { HttpConnectionSettings, HttpMethod, HttpSyncSettings } from './http-settings.js';
import { proxyFor } from './http-proxy.js';
import { CompiledTemplate, RowsForm, createTemplateEngine, resolveJsonPointer } from './http-templates.js';

import { HTTP_CAPABILITIES } from './http-settings.js';

/** Characters of a record's error kept as its row's reason. */
const REASON_CHARS = 500;

/** The outcome of a row its request delivered, shared by every such row. */
const DELIVERED: RowOutcome = Object.freeze({ ok: true });

export class HttpDestination implements Destination {
  readonly capabilities = HTTP_CAPABILITIES;

  private constructor(
    private readonly client: HttpClient,
    private readonly slug: string,
    private readonly url: URL,
    private readonly concurrency: number,
  ) {}

  /** Opens a connection; no request is made until a writer writes. */
  static async open(
    settings: HttpConnectionSettings,
    context: Pick<ConnectorContext, 'slug' | 'clock' | 'logger' | 'rateLimiter'> & Partial<Pick<ConnectorContext, 'secretValues'>>,
  ): Promise<HttpDestination> {
    const url = new URL(settings.url);
    let proxy: URL | null;
    try {
      proxy = proxyFor(url, process.env);
    } catch (thrown) {
      throw new LockstepError(ErrorCode.Connection, `http destination "${context.slug}": ${toError(thrown).message}`);
    }
    // Behind a proxy, the API's host may be reachable only through it.
    await checkReachable(proxy ?? url, context.slug, Math.min(settings.timeoutMs, 10_000), proxy ? 'the proxy (HTTPS_PROXY / HTTP_PROXY)' : "the connection's url and that the API is up");
    const limiter = context.rateLimiter({ requestsPerSecond: settings.rateLimit?.requestsPerSecond ?? null, concurrency: settings.concurrency });
    const client = new HttpClient({
      slug: context.slug,
      url,
      headers: settings.headers,
      concurrency: settings.concurrency,
      timeoutMs: settings.timeoutMs,
      limiter,
      clock: context.clock,
      logger: context.logger,
      secretValues: context.secretValues,
      proxy,
    });
    return new HttpDestination(client, context.slug, url, settings.concurrency);
  }

  async prepare(target: WriteTarget): Promise<DestinationWriter> {
    // A cancelled run's requests under way end at once (their connections closed): this connection is the run's own.
    target.signal?.addEventListener('abort', () => void this.client.close(), { once: true });
    return new HttpWriter(this.client, this.slug, this.url, target, this.concurrency);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** How one kind of request is made: its method, templates and whether it carries one row. */
interface RequestShape {
  method: HttpMethod;
  path: CompiledTemplate;
  body: CompiledTemplate | null;
  /** One request per row (else one per batch). */
  oneRow: boolean;
  /** The setting names of its templates, for messages. */
  pathSetting: string;
  bodySetting: string;
  /** No body when none is written (a delete whose path names the row). */
  noDefaultBody: boolean;
  /**
   * A 404 or 410 answer means the row is gone already: a delete of one row whose path names it.
   * A delete of a batch, or to a path that names no row, answered so reached no endpoint.
   */
  goneMeansDeleted: boolean;
  /** JSON pointer to the per-record results of a 2xx answer, or undefined when none are read. */
  results: string | undefined;
  resultsSetting: string;
  /** The path when it is constant text, once built. */
  constantPath?: string;
}

/** What templates see. */
type TemplateScope = { row?: Record<string, unknown>; rows?: Array<Record<string, unknown>> };

/** Rows of a batch going in one request, or refused before it is made. */
interface PlannedRequest {
  rows: number[];
  /** How it is made (where its answer's per-record results are). */
  shape: RequestShape;
  request: HttpRequest | null;
  refused: string | null;
}

class HttpWriter implements DestinationWriter {
  readonly concurrentWrites: number;
  private readonly sync: string;
  private readonly settings: HttpSyncSettings;
  private readonly upsert: RequestShape;
  private readonly remove: RequestShape | null;
  private readonly basePath: string;
  private readonly baseQuery: string;
  private readonly origin: string;
  private fieldsChecked = false;
  /** Records of the written fields and of the key fields, made once the fields are known. */
  private valueRecord: RecordMaker | null = null;
  private keyRecord: RecordMaker | null = null;
  /**
   * Rows of a batch already answered (delivered or refused) when another request of it failed for
   * now: the engine retries the batch, and they are not sent again.
   */
  private readonly answered = new WeakMap<WriteOperation, RowOutcome>();

  constructor(
    private readonly client: HttpClient,
    private readonly slug: string,
    url: URL,
    private readonly target: WriteTarget,
    concurrency: number,
  ) {
    this.concurrentWrites = concurrency;
    this.sync = target.sync ?? target.object;
    this.settings = (target.settings ?? {}) as HttpSyncSettings;
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.baseQuery = url.search.replace(/^\?/, '');
    // One Liquid engine for the writer's templates, made only when one of them is not constant text.
    let engine: Liquid | null = null;
    const compile = (text: string, setting: string, fix: string) => {
      try {
        return CompiledTemplate.compile(() => (engine ??= createTemplateEngine()), text);
      } catch (thrown) {
        throw new LockstepError(
          ErrorCode.Validation,
          `sync "${this.sync}": ${setting} is not a valid Liquid template: ${toError(thrown).message} — ${fix}`,
        );
      }
    };
    const batchSize = target.batchSize;
    this.upsert = this.shape(
      {
        method: this.settings.method ?? 'POST',
        path: compile(target.object, 'object', 'fix the sync\'s object (the path under the destination\'s url)'),
        body: this.settings.body === undefined ? null : compile(this.settings.body, 'setting body', 'fix the sync\'s body'),
        pathSetting: 'object',
        bodySetting: 'setting body',
        results: this.settings.results,
        resultsSetting: 'results',
      },
      batchSize,
      false,
    );
    const del = this.settings.delete;
    this.remove = del
      ? this.shape(
          {
            method: del.method ?? 'DELETE',
            path: compile(del.path, 'setting delete.path', 'fix the sync\'s delete.path'),
            body: del.body === undefined ? null : compile(del.body, 'setting delete.body', 'fix the sync\'s delete.body'),
            pathSetting: 'setting delete.path',
            bodySetting: 'setting delete.body',
            results: del.results,
            resultsSetting: 'delete.results',
          },
          batchSize,
          true,
        )
      : null;
    if (this.remove) this.checkFields(this.remove, target.keyColumns, 'a delete carries only the key fields');
  }

  async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
    if (batch.length === 0) return [];
    const upserts: number[] = [];
    const deletes: number[] = [];
    // Loops over rows stay in small callbacks: a loop in this function would have the optimising
    // compiler compile all of it (and what it calls) in a process's first run.
    batch.forEach((op, i) => this.answered.has(op) || (op.kind === 'delete' ? deletes : upserts).push(i));
    if (deletes.length > 0 && this.remove === null) {
      throw new LockstepError(
        ErrorCode.Schema,
        `sync "${this.sync}" deletes rows (mode mirror or deleteBehavior delete), but has no delete request for http destination "${this.slug}" — add one to the sync, e.g. delete: { method: DELETE, path: "/contacts/{{ row.id }}" }, or use mode upsert with deleteBehavior ignore`,
      );
    }
    if (upserts.length > 0 && !this.fieldsChecked) {
      // Checked at the first rows written: before that the columns may be only the key (an empty model).
      this.checkFields(this.upsert, this.target.columns, 'the sync writes');
      this.fieldsChecked = true;
    }
    const planned = [...this.planRequests(this.upsert, upserts, batch, false), ...(this.remove ? this.planRequests(this.remove, deletes, batch, true) : [])];
    return this.send(planned, batch);
  }

  /** Sends the planned requests at once (the rate limiter paces them) and answers per row. */
  private async send(planned: PlannedRequest[], batch: WriteOperation[]): Promise<RowOutcome[]> {
    const abandon = { abandoned: false };
    const answers = await Promise.allSettled(
      planned.map(async (p) => {
        if (p.request === null) return null;
        try {
          return await this.client.send(p.request, abandon);
        } catch (thrown) {
          // No row can go: the requests not sent yet are not made.
          abandon.abandoned = true;
          throw thrown;
        }
      }),
    );
    const fatal = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected' && a.reason !== WRITE_ABANDONED);
    if (fatal) throw fatal.reason;
    const settled = answers.map((a) => (a.status === 'fulfilled' ? a.value : null));
    const sent = settled.filter((a): a is HttpAnswer => a !== null);
    const transient = sent.filter((a): a is Extract<HttpAnswer, { kind: 'transient' }> => a.kind === 'transient');
    const outcomes: RowOutcome[] = batch.map((op) => this.answered.get(op) as RowOutcome);
    // Rows of a request that share an outcome share its object: outcomes are read, never changed.
    const all = (rows: number[], outcome: RowOutcome) => {
      for (const row of rows) outcomes[row] = outcome;
    };
    planned.forEach((p, n) => {
      const answer = settled[n];
      if (p.refused !== null) return all(p.rows, { ok: false, reason: p.refused });
      if (!answer) return;
      switch (answer.kind) {
        case 'delivered':
          if (p.shape.results === undefined) return all(p.rows, DELIVERED);
          return this.delivered(p, answer.json).forEach((value, i) => (outcomes[p.rows[i] as number] = value));
        case 'refused':
          // A delete of a record that is not there (any more) has done what it was for.
          if (p.shape.goneMeansDeleted && (answer.status === 404 || answer.status === 410)) return all(p.rows, DELIVERED);
          return all(p.rows, { ok: false, reason: answer.reason });
        case 'transient':
          return;
      }
    });
    if (transient.length > 0) {
      // The batch fails as a whole, and the engine retries it with backoff (then fails the run);
      // its rows answered meanwhile are kept, so that only the failed requests go again.
      batch.forEach((op, i) => outcomes[i] !== undefined && this.answered.set(op, outcomes[i]));
      const first = transient[0] as (typeof transient)[number];
      const retryAfterSeconds = Math.max(...transient.map((t) => t.error.retryAfterSeconds ?? 0));
      const more = transient.length > 1 ? ` (and ${transient.length - 1} more request${transient.length > 2 ? 's' : ''} of the batch)` : '';
      throw new LockstepError(ErrorCode.Transient, `${first.error.message}${more}`, {
        retryable: true,
        retryAfterSeconds: retryAfterSeconds > 0 ? retryAfterSeconds : undefined,
        cause: first.error.cause,
      });
    }
    return outcomes;
  }

  /** A delivered request's rows: all delivered, or per record from its `results`. */
  private delivered(p: PlannedRequest, json: unknown): RowOutcome[] {
    const pointer = p.shape.results;
    if (pointer === undefined) return p.rows.map(() => DELIVERED);
    const request = p.request as HttpRequest;
    const garbage = (what: string) =>
      new LockstepError(ErrorCode.Internal, `${this.client.describe(request)} answered with ${what} — check the sync's ${p.shape.resultsSetting} setting ("${pointer}") against what the API answers`);
    const found = resolveJsonPointer(json, pointer);
    // A request of one row may be answered with its one result as an object, not in an array.
    const results = p.rows.length === 1 && found !== null && typeof found === 'object' && !Array.isArray(found) ? [found] : found;
    if (!Array.isArray(results)) {
      const found = results === undefined ? 'nothing there' : results === null ? 'null' : typeof results === 'object' ? 'an object' : `a ${typeof results}`;
      throw garbage(`no array at "${pointer}" (${found})`);
    }
    if (results.length !== p.rows.length) throw garbage(`${results.length} results at "${pointer}" for ${p.rows.length} rows sent (one per row, in order, is needed)`);
    return results.map((item, i) => {
      const record = item !== null && typeof item === 'object' ? (item as Record<string, unknown>) : {};
      const ok = typeof record.ok === 'boolean' ? record.ok : typeof record.success === 'boolean' ? record.success : undefined;
      if (ok === undefined) throw garbage(`result ${i} at "${pointer}" without a boolean "ok" or "success"`);
      if (ok) return DELIVERED;
      // An empty error says no more than none: the reason must say something.
      const said = (value: unknown) => (typeof value === 'string' ? value.trim() !== '' : value !== undefined && value !== null);
      const message = [record.error, record.message, errorsText(record.errors, said)].find(said);
      const text = message === undefined ? 'refused by the API (its result gives no error or message)' : typeof message === 'string' ? message.trim() : JSON.stringify(message);
      return { ok: false, reason: this.client.scrub(text).slice(0, REASON_CHARS) };
    });
  }

  /** The requests for `rows` (indexes into the batch): one per row or one for them all. */
  private planRequests(shape: RequestShape, rows: number[], batch: WriteOperation[], deleting: boolean): PlannedRequest[] {
    if (rows.length === 0) return [];
    const json = this.target.jsonColumns ?? [];
    const make = deleting ? (this.keyRecord ??= recordMaker(this.target.keyColumns, json)) : (this.valueRecord ??= recordMaker(this.target.columns, json));
    const record = (i: number) => {
      const op = batch[i] as WriteOperation;
      return make(deleting ? op.key : op.values);
    };
    if (shape.oneRow) {
      return rows.map((i) => {
        const row = record(i);
        return this.request(shape, [i], { row }, () => JSON.stringify(row));
      });
    }
    const records = rows.map(record);
    // JSON.stringify of the records at once: faster than writing each value's JSON ourselves.
    return [this.request(shape, rows, { rows: records }, () => JSON.stringify({ records }))];
  }

  /**
   * One request's path and body: the templates rendered with `scope`, or the default body; a row's
   * data that makes no valid request refuses its rows.
   */
  private request(shape: RequestShape, rows: number[], scope: TemplateScope, defaultBody: () => string): PlannedRequest {
    let path: string;
    try {
      path = shape.path.constant
        ? (shape.constantPath ??= this.path(shape.path.text, shape.pathSetting))
        : this.path(shape.path.render(scope), shape.pathSetting, shape.path.text);
    } catch (thrown) {
      return { rows, shape, request: null, refused: toError(thrown).message };
    }
    let body: string | null;
    try {
      if (shape.body !== null) body = shape.body.render(scope);
      else body = shape.noDefaultBody ? null : defaultBody();
    } catch (thrown) {
      return { rows, shape, request: null, refused: `${shape.bodySetting} failed to render: ${this.client.scrub(toError(thrown).message)}` };
    }
    if (shape.body !== null && this.client.sendsJson) {
      try {
        JSON.parse(body as string);
      } catch (thrown) {
        return {
          rows,
          shape,
          request: null,
          refused: `${shape.bodySetting} rendered invalid JSON (${toError(thrown).message}) — write values with the json filter, e.g. {{ row.name | json }}`,
        };
      }
    }
    return { rows, shape, request: { method: shape.method, path, body, needsJson: shape.results !== undefined, rows: rows.length }, refused: null };
  }

  /**
   * A rendered path under the base URL, as path and query; throws when it is not one (and, given
   * the `template` it was rendered from, when a value left one of its segments empty).
   */
  private path(rendered: string, setting: string, template?: string): string {
    const absolute = /^\s*[a-z][a-z\d+.-]*:\/\//i.test(rendered) ? URL.parse(rendered.trim()) : null;
    if (absolute !== null) {
      // A full URL would go under the base URL as a path (/v1/https://api.example.com/...).
      const { pathname } = absolute;
      const example = pathname.startsWith(`${this.basePath}/`) ? pathname.slice(this.basePath.length) : pathname;
      throw new Error(`${setting} rendered ${JSON.stringify(this.client.scrub(rendered.trim().slice(0, 200)))}, a URL, not a path under the destination's url — render the path alone, e.g. ${example}`);
    }
    if (template !== undefined) checkedSegments(rendered, template, setting);
    // The URL parser drops tabs and line breaks, reads a backslash as a slash and cuts at a #: a
    // value holding one sent its request elsewhere ("Team #1" to /teams/Team%20, "..\admin" out of
    // the base path). Each goes as the character it is, as a space goes as %20.
    const text = rendered.trim().replace(/[\t\n\r\\#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
    if (text === '') throw new Error(`${setting} rendered an empty path`);
    if (/(^|\/)(\.|%2e){1,2}(\/|\?|#|$)/i.test(text)) {
      throw new Error(`${setting} rendered a path with a . or .. segment (${JSON.stringify(text.slice(0, 200))}) — write values in paths with the url_encode filter`);
    }
    const relative = text.startsWith('/') ? text : `/${text}`;
    const [path = '', ...query] = relative.split('?');
    const search = [this.baseQuery, query.join('?')].filter((q) => q !== '').join('&');
    let url: URL;
    try {
      url = new URL(`${this.basePath}${path}${search ? `?${search}` : ''}`, this.origin);
    } catch {
      throw new Error(`${setting} rendered ${JSON.stringify(text.slice(0, 200))}, which is not a URL path`);
    }
    if (url.origin !== this.origin) throw new Error(`${setting} rendered ${JSON.stringify(text.slice(0, 200))}, which leaves the destination's url`);
    return `${url.pathname}${url.search}`;
  }

  /** A request shape, refusing templates that read what they cannot. */
  private shape(parts: Omit<RequestShape, 'oneRow' | 'noDefaultBody' | 'goneMeansDeleted'>, batchSize: number | undefined, deleting: boolean): RequestShape {
    const templates = [
      { setting: parts.pathSetting, template: parts.path },
      ...(parts.body ? [{ setting: parts.bodySetting, template: parts.body }] : []),
    ];
    for (const { setting, template } of templates) {
      const unknown = template.unknownVariables();
      if (unknown.length > 0) {
        throw new LockstepError(
          ErrorCode.Validation,
          `sync "${this.sync}": ${setting} reads ${unknown.map((v) => `"${v}"`).join(', ')}, which templates do not have — use row (one row per request) or rows (the batch), e.g. {{ row.id }}`,
        );
      }
      if (template.readsBoth()) {
        throw new LockstepError(ErrorCode.Validation, `sync "${this.sync}": ${setting} reads both row and rows — a request carries one row (row) or a batch (rows); use one of them`);
      }
    }
    const forms = new Set(templates.map((t) => t.template.form).filter((form) => form !== RowsForm.Either));
    if (forms.size > 1) {
      throw new LockstepError(
        ErrorCode.Validation,
        `sync "${this.sync}": ${templates.map((t) => `${t.setting} reads ${t.template.form === RowsForm.One ? 'row' : t.template.form === RowsForm.Batch ? 'rows' : 'neither'}`).join(', ')} — a request carries one row (row) or a batch (rows); use the same in both`,
      );
    }
    const [form = RowsForm.Either] = [...forms];
    const oneRow = form === RowsForm.One || (form === RowsForm.Either && batchSize === 1);
    const namesRow = deleting && oneRow && parts.path.form === RowsForm.One;
    return { ...parts, oneRow, noDefaultBody: namesRow, goneMeansDeleted: namesRow };
  }

  /** Refuses templates reading row fields the requests do not carry. */
  private checkFields(shape: RequestShape, fields: readonly string[], carried: string): void {
    const templates = [
      { setting: shape.pathSetting, template: shape.path },
      ...(shape.body ? [{ setting: shape.bodySetting, template: shape.body }] : []),
    ];
    for (const { setting, template } of templates) {
      const missing = template.unknownFields(fields);
      if (missing.length === 0) continue;
      const first = missing[0] as string;
      const near = closest(first, fields);
      throw new LockstepError(
        ErrorCode.Schema,
        `sync "${this.sync}": ${setting} reads field ${missing.map((f) => `"${f}"`).join(', ')}, but ${carried} only ${fields.map((f) => `"${f}"`).join(', ')}${near ? ` (did you mean "${near}"?)` : ''} — fix the template or the model's query and mappings`,
      );
    }
  }
}

/**
 * A rendered path whose values left a segment empty (`/teams//members`, `/people/` from
 * `/people/{{ row.name }}`) is refused: the request would go to another resource, such as the
 * collection, rather than fail.
 */
function checkedSegments(rendered: string, template: string, setting: string): string {
  const path = rendered.trim().split('?')[0] ?? '';
  const ownPath = template.trim().split('?')[0] ?? '';
  if ((path.includes('//') && !ownPath.includes('//')) || (path.endsWith('/') && !ownPath.endsWith('/'))) {
    throw new Error(`${setting} rendered a path with an empty segment (${JSON.stringify(path.slice(0, 200))}) — a value it reads is empty or null`);
  }
  return rendered;
}

/**
 * A result's `errors` array, as many APIs answer (`[{"message": ...}, ...]` or `["...", ...]`), as
 * one text: each error's message, or the error itself as JSON; undefined when it says nothing.
 */
function errorsText(errors: unknown, said: (value: unknown) => boolean): string | undefined {
  if (!Array.isArray(errors)) return undefined;
  const texts = errors.filter(said).map((error: unknown) => {
    const message = error !== null && typeof error === 'object' ? (error as Record<string, unknown>).message : undefined;
    const shown = said(message) ? message : error;
    return typeof shown === 'string' ? shown.trim() : JSON.stringify(shown);
  });
  return texts.length > 0 ? texts.join('; ') : undefined;
}

/** Makes a record of values by field name. */
type RecordMaker = (values: readonly Value[]) => Record<string, unknown>;

/**
 * A function making records of `fields`, each one object literal of the same shape: building
 * each record field by field cost a few times more (100,000 records: ~10 ms of CPU). The field
 * names go into the literal as JSON strings (valid JavaScript strings, whatever they hold); a
 * `__proto__` field, which a literal would take for the prototype, makes records field by field.
 * The values of `json` fields (JSON text of a source's JSON column) are the JSON values they hold.
 */
function recordMaker(fields: readonly string[], json: readonly string[]): RecordMaker {
  if (fields.includes('__proto__')) return (values) => toRecord(fields, values, json);
  const properties = fields.map((field, i) => `${JSON.stringify(field)}: ${json.includes(field) ? `parse(values[${i}])` : `values[${i}] ?? null`}`);
  return new Function('parse', `return (values) => ({ ${properties.join(', ')} });`)(jsonValue) as RecordMaker;
}

/** Values by field name (a field named `__proto__` stays a plain field). */
function toRecord(fields: readonly string[], values: readonly Value[], json: readonly string[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as string;
    const value = json.includes(field) ? jsonValue(values[i]) : (values[i] ?? null);
    if (field === '__proto__') Object.defineProperty(record, field, { value, enumerable: true, writable: true, configurable: true });
    else record[field] = value;
  }
  return record;
}

/**
 * The JSON value a JSON column's text holds. Text holding a number a double cannot give back (an
 * id beyond 2^53, `1e400`) stays text, as does text that does not parse: no digit is lost.
 */
function jsonValue(value: Value | undefined): unknown {
  if (typeof value !== 'string') return value ?? null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return value;
  }
  const again = JSON.stringify(parsed);
  return again === value || again === canonicalJsonText(value) ? parsed : value;
}

/** The field nearest to a misspelt one, when it is near enough to suggest. */
function closest(name: string, fields: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const field of fields) {
    const d = distance(name.toLowerCase(), field.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [field, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Opens and closes one TCP connection to the API's host, so that a peer nobody answers for (a wrong
 * host or port, a refused connection) fails the run at once with a connection error, as an unreachable
 * database does; a connection that breaks later, mid-run, is retried like any transient failure.
 * Nothing is sent: an API sees no request from this.
 */
async function checkReachable(url: URL, slug: string, timeoutMs: number, check: string): Promise<void> {
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host, port });
    const fail = (why: string) => {
      socket.destroy();
      reject(new LockstepError(ErrorCode.Connection, `http destination "${slug}": cannot reach ${url.host}: ${why} — check ${check}`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no connection within ${Math.round(timeoutMs / 1000)} s`));
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => fail(error.code === 'ECONNREFUSED' ? 'connection refused' : (error.code ?? error.message)));
  });
}

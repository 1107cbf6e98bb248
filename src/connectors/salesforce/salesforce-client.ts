/**
 * A small typed client of Salesforce's REST API over undici, for one destination connection:
 *
 * - logs in with the OAuth 2.0 client credentials flow at `{loginUrl}/services/oauth2/token` and
 *   sends every call to the token's `instance_url`; a `401 INVALID_SESSION_ID` (the token expired
 *   or was revoked mid-run) gets a new token once, shared by every call that saw it, and the call
 *   is made again;
 * - paces every call through the connection's shared rate limiter;
 * - reads `Sforce-Limit-Info: api-usage=N/LIMIT` from every answer and counts the calls it made;
 * - sorts each answer: 2xx → its JSON or text; `403 REQUEST_LIMIT_EXCEEDED` → every writer of the
 *   connection paused (a minute for the daily request limit, seconds for the concurrent
 *   long-running request limit) and a retryable error; 408, 429, 5xx, a reset connection, a body cut short,
 *   a timeout → retryable; Salesforce's other request-level errors (`[{errorCode, message}]`) → an
 *   answer the caller words; anything else (an HTML page, a body that is not JSON, a redirect) →
 *   a fatal error naming the call, the status and the answer's first 200 characters.
 *
 * No message holds the access token, the client id or the client secret: answers that echo them
 * are scrubbed.
 */
import { Agent, type Dispatcher } from 'undici';
import { parseRetryAfter, withBackoff, type BackoffPolicy } from '../../core/backoff.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { Clock, Logger, RateLimiter } from '../../core/ports.js';
import { TIMEOUT_CODES, TRANSIENT_NETWORK_CODES } from '../network-errors.js';

/** The methods the client uses. */
export type SalesforceMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One call to the instance. */
export interface SalesforceRequest {
  method: SalesforceMethod;
  /** Path (and query) under `/services/data/vXX.X/`, e.g. `sobjects/Account/describe`; or a path starting with `/` as Salesforce gives it (`nextRecordsUrl`). */
  path: string;
  /** A JSON body. */
  json?: unknown;
  /** A CSV body (Bulk API 2.0 job data). */
  csv?: string;
  /** What the answer carries: JSON (default), text (CSV results) or nothing worth reading. */
  expect?: 'json' | 'text' | 'none';
  /** What the call does, for messages, e.g. `upsert into Account`. */
  what: string;
  /** Milliseconds added to the connection's timeout for this call (large uploads and results). */
  extraTimeoutMs?: number;
}

/** A call's answer: the body of a 2xx, or the request-level error Salesforce answered. */
export type SalesforceAnswer =
  | { ok: true; status: number; body: unknown }
  | { ok: false; status: number; errorCode: string; message: string };

export interface SalesforceClientOptions {
  /** The connection's slug, for messages. */
  slug: string;
  loginUrl: string;
  clientId: string;
  clientSecret: string;
  /** `62.0`: the version part of `/services/data/v62.0`. */
  apiVersion: string;
  concurrency: number;
  timeoutMs: number;
  limiter: RateLimiter;
  clock: Clock;
  logger: Logger;
  /** How the token endpoint is retried when it fails transiently. */
  backoff: BackoffPolicy;
}

/** The API budget Salesforce reported last, and the calls made through this client. */
export interface SalesforceUsage {
  used: number;
  limit: number;
  calls: number;
}

/**
 * How long writers pause after `REQUEST_LIMIT_EXCEEDED`. Salesforce counts API requests over a
 * rolling 24 hours and sends no Retry-After: room comes back only as calls made a day ago age out,
 * so a minute per attempt rides out a brief overshoot (another integration's burst) without holding
 * a run for hours; with the default 5 attempts the run gives up after about 4 minutes.
 */
export const REQUEST_LIMIT_PAUSE_SECONDS = 60;

/**
 * How long writers pause when Salesforce refuses a call for the org's concurrent long-running
 * requests (`REQUEST_LIMIT_EXCEEDED` "ConcurrentPerOrgLongTxn Limit exceeded" or "ConcurrentRequests
 * … Limit exceeded": 25 calls of 20 s or more at once, by every integration together). Room comes
 * back as those calls finish, in seconds, not as the daily count ages out.
 */
export const CONCURRENT_LIMIT_PAUSE_SECONDS = 10;

/** Characters of an answer kept in messages. */
const SNIPPET_CHARS = 200;
/** Bytes of an answer read at most (Bulk API results of a 100 MB job fit). */
const BODY_LIMIT_BYTES = 512 * 1024 * 1024;
/** Marks our own timer's abort. */
const TIMED_OUT = new Error('timed out');
const LIMIT_INFO = /api-usage=(\d+)\/(\d+)/;

/** An answer as it came: status, headers and the body's text. */
interface RawAnswer {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  text: string;
}

interface Session {
  accessToken: string;
  /** Origin of the instance, e.g. https://yourcompany.my.salesforce.com. */
  instance: string;
}

export class SalesforceClient {
  private readonly agent: Agent;
  private session: Session | null = null;
  private refreshing: Promise<Session> | null = null;
  private readonly secrets: string[];
  private used = -1;
  private limit = -1;
  private calls = 0;
  private closed = false;

  private constructor(private readonly options: SalesforceClientOptions) {
    this.agent = new Agent({
      connections: options.concurrency + 2,
      pipelining: 1,
      keepAliveTimeout: 10_000,
      // Our own timer bounds each call as a whole (uploads get longer); undici's would cut them short.
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: { timeout: options.timeoutMs },
    });
    this.secrets = [options.clientSecret, options.clientId].filter((s) => s.length >= 4);
  }

  /** Logs in (retrying transient failures) and returns a client bound to the token's instance. */
  static async connect(options: SalesforceClientOptions): Promise<SalesforceClient> {
    const client = new SalesforceClient(options);
    try {
      client.session = await client.login();
    } catch (thrown) {
      await client.close();
      throw thrown;
    }
    return client;
  }

  /** `salesforce destination "sf"`, for messages. */
  get name(): string {
    return `salesforce destination "${this.options.slug}"`;
  }

  /** The budget Salesforce reported last and the calls made, or null before any answer said it. */
  usage(): SalesforceUsage | null {
    return this.limit < 0 ? null : { used: this.used, limit: this.limit, calls: this.calls };
  }

  /**
   * Makes a call when the rate limiter allows and sorts its answer (see the file's comment). Throws
   * a LockstepError for what no caller can word better: retryable for transient failures.
   */
  async call(request: SalesforceRequest): Promise<SalesforceAnswer> {
    const session = await this.currentSession();
    let raw = await this.options.limiter.schedule(() => this.attempt(request, session));
    if (raw.status === 401 && apiErrors(raw.text)?.[0]?.errorCode === 'INVALID_SESSION_ID') {
      // The token expired or was revoked: one new token for every call that saw the old one fail.
      const renewed = await this.renew(session);
      raw = await this.options.limiter.schedule(() => this.attempt(request, renewed));
      if (raw.status === 401) {
        throw new LockstepError(
          ErrorCode.Connection,
          `${this.describe(request)} answered 401 (${this.snippet(raw.text)}) right after a new token was issued — check that the connected app's Run As user may use the API (profile permission "API Enabled") and that the app is not restricted to other IP ranges`,
        );
      }
    }
    return this.sort(request, raw);
  }

  /** `text` with the token and the credentials replaced by `***`. */
  scrub(text: string): string {
    let out = text;
    const secrets = this.session ? [this.session.accessToken, ...this.secrets] : this.secrets;
    for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  }

  /** `salesforce destination "sf": upsert into Account (PATCH /services/data/v62.0/composite/sobjects/Account/External_Id__c)`. */
  describe(request: Pick<SalesforceRequest, 'method' | 'path' | 'what'>): string {
    return `${this.name}: ${request.what} (${request.method} ${this.fullPath(request.path).split('?')[0]})`;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.destroy();
  }

  private fullPath(path: string): string {
    return path.startsWith('/') ? path : `/services/data/v${this.options.apiVersion}/${path}`;
  }

  private async currentSession(): Promise<Session> {
    if (this.refreshing) return this.refreshing;
    if (this.session) return this.session;
    return this.renew(null);
  }

  /** A new token, unless another call got one since `stale` was handed out. */
  private renew(stale: Session | null): Promise<Session> {
    if (this.session !== stale && this.session !== null) return Promise.resolve(this.session);
    if (!this.refreshing) {
      this.options.logger.info('salesforce session expired, logging in again', { destination: this.options.slug });
      this.refreshing = this.login()
        .then((session) => (this.session = session))
        .finally(() => (this.refreshing = null));
    }
    return this.refreshing;
  }

  /** The client credentials flow, transient failures retried with the connection's backoff. */
  private async login(): Promise<Session> {
    const { backoff, clock, logger, slug } = this.options;
    try {
      return await withBackoff(() => this.requestToken(), {
        policy: backoff,
        clock,
        onRetry: ({ attempt, delayMs, error }) => logger.warn('salesforce login failed, retrying', { destination: slug, attempt, delayMs: Math.round(delayMs), error: error.message }),
      });
    } catch (thrown) {
      // A login server that stays out of reach through every attempt is a connection failure of the run.
      if (thrown instanceof LockstepError && thrown.code === ErrorCode.Transient && !thrown.retryable) {
        throw new LockstepError(ErrorCode.Connection, `${thrown.message} — check loginUrl and that the org is reachable from here`, { cause: thrown });
      }
      throw thrown;
    }
  }

  private async requestToken(): Promise<Session> {
    const { loginUrl, clientId, clientSecret } = this.options;
    let url: URL;
    try {
      url = new URL('/services/oauth2/token', loginUrl);
    } catch {
      throw new LockstepError(ErrorCode.Validation, `${this.name}: loginUrl is not a URL — write it like https://yourcompany.my.salesforce.com`);
    }
    const where = `${this.name}: logging in at ${url.origin}`;
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString();
    const raw = await this.send(url.origin, url.pathname, 'POST', { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body, this.options.timeoutMs, where);
    const json = parseJson(raw.text);
    if (isRecord(json) && typeof json.access_token === 'string' && (raw.status !== 200 || typeof json.instance_url !== 'string')) {
      // Not a token this client can use; the answer is never quoted, as it holds one.
      throw new LockstepError(
        ErrorCode.Connection,
        `${where}: answered ${raw.status} with an access token but ${raw.status === 200 ? 'no instance_url, which Salesforce\'s token endpoint always sends' : 'not the status 200 of a token'} — check loginUrl: your org's My Domain login URL, e.g. https://yourcompany.my.salesforce.com, not another OAuth server`,
      );
    }
    if (raw.status === 200 && isRecord(json) && typeof json.access_token === 'string' && typeof json.instance_url === 'string') {
      let instance: URL;
      try {
        instance = new URL(json.instance_url);
      } catch {
        throw new LockstepError(ErrorCode.Connection, `${where}: the token's instance_url is not a URL (${this.snippet(json.instance_url)})`);
      }
      return { accessToken: json.access_token, instance: instance.origin };
    }
    if (raw.status === 408 || raw.status === 429 || raw.status >= 500) {
      throw new LockstepError(ErrorCode.Transient, `${where}: answered ${raw.status}: ${this.snippet(raw.text) || '(empty body)'}`, {
        retryable: true,
        retryAfterSeconds: parseRetryAfter(header(raw.headers, 'retry-after'), this.options.clock.now()),
      });
    }
    if (isRecord(json) && typeof json.error === 'string') {
      const detail = `${json.error}${typeof json.error_description === 'string' ? `: ${json.error_description}` : ''}`;
      throw new LockstepError(ErrorCode.Connection, `${where} failed (${raw.status} ${this.scrub(detail)}) — ${loginFix(json.error)}`);
    }
    const html = isHtml(raw);
    throw new LockstepError(
      ErrorCode.Connection,
      `${where}: answered ${raw.status}${html ? ' with an HTML page' : ''}, not a token: ${this.snippet(raw.text) || '(empty body)'} — check loginUrl: your org's My Domain login URL, e.g. https://yourcompany.my.salesforce.com`,
    );
  }

  /** One attempt at a data call; a failure to get an answer is thrown (retryable when it may pass). */
  private async attempt(request: SalesforceRequest, session: Session): Promise<RawAnswer> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${session.accessToken}`,
      accept: request.expect === 'text' ? 'text/csv' : 'application/json',
    };
    let body: string | undefined;
    if (request.csv !== undefined) {
      headers['content-type'] = 'text/csv';
      body = request.csv;
    } else if (request.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(request.json);
    }
    const timeoutMs = this.options.timeoutMs + (request.extraTimeoutMs ?? 0);
    this.calls++;
    const raw = await this.send(session.instance, this.fullPath(request.path), request.method, headers, body, timeoutMs, this.describe(request));
    const info = LIMIT_INFO.exec(header(raw.headers, 'sforce-limit-info') ?? '');
    if (info) {
      this.used = Number(info[1]);
      this.limit = Number(info[2]);
    }
    return raw;
  }

  /** Sends a request and reads its whole answer, or throws: transient when another attempt may pass. */
  private async send(
    origin: string,
    path: string,
    method: SalesforceMethod,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
    what: string,
  ): Promise<RawAnswer> {
    if (this.closed) throw new LockstepError(ErrorCode.Connection, `${what}: the destination is closed`);
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(TIMED_OUT), timeoutMs);
    let status = 0;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      const response = await this.agent.request({ origin, path, method, headers: { 'user-agent': 'lockstep', ...headers }, body, signal: timer.signal });
      status = response.statusCode;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > BODY_LIMIT_BYTES) {
          response.body.destroy();
          throw new LockstepError(ErrorCode.Internal, `${what}: answered ${status} with more than ${BODY_LIMIT_BYTES / 1024 / 1024} MiB, which Lockstep does not read`);
        }
        chunks.push(chunk);
      }
      return { status, headers: response.headers, text: Buffer.concat(chunks, size).toString('utf8') };
    } catch (thrown) {
      if (thrown instanceof LockstepError) throw thrown;
      throw this.failure(what, thrown, timer.signal.aborted, timeoutMs, status, Buffer.concat(chunks).toString('utf8'));
    } finally {
      clearTimeout(timeout);
    }
  }

  /** A call that got no whole answer: transient when the peer may come back, fatal otherwise. */
  private failure(what: string, thrown: unknown, timedOut: boolean, timeoutMs: number, status: number, partial: string): LockstepError {
    const error = toError(thrown);
    const code = errorCode(error);
    if (timedOut) {
      const seconds = Number((timeoutMs / 1000).toPrecision(3));
      return new LockstepError(ErrorCode.Transient, `${what}: no answer within ${seconds} s (timeoutMs) — Salesforce took the call and did not answer in time`, { retryable: true });
    }
    if (status > 0) {
      // The headers came, the body was cut short: what came is shown, and the call is made again (upserts and reads are safe to repeat).
      return new LockstepError(
        ErrorCode.Transient,
        `${what}: answered ${status}, but the answer was cut short after ${Buffer.byteLength(partial)} bytes (${code ?? error.message}): ${this.snippet(partial) || '(nothing)'}`,
        { retryable: true, cause: error },
      );
    }
    if (code !== undefined && (TRANSIENT_NETWORK_CODES.has(code) || TIMEOUT_CODES.has(code))) {
      return new LockstepError(ErrorCode.Transient, `${what}: the connection failed (${code}: ${this.scrub(error.message)})`, { retryable: true, cause: error });
    }
    if (code === 'ENOTFOUND') return new LockstepError(ErrorCode.Connection, `${what}: host not found — check loginUrl (and the instance_url its token named)`, { cause: error });
    if (code !== undefined && /CERT|TLS|SSL/.test(code)) {
      return new LockstepError(ErrorCode.Connection, `${what}: TLS failed (${code}: ${this.scrub(error.message)})`, { cause: error });
    }
    if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED' || this.closed) return new LockstepError(ErrorCode.Connection, `${what}: the destination is closed`);
    return new LockstepError(ErrorCode.Connection, `${what}: ${code ? `${code}: ` : ''}${this.scrub(error.message)}`, { cause: error });
  }

  /** Sorts a whole answer: a body, a request-level error to word, or thrown. */
  private sort(request: SalesforceRequest, raw: RawAnswer): SalesforceAnswer {
    const { status } = raw;
    const where = `${this.describe(request)} answered ${status}`;
    const expect = request.expect ?? 'json';
    if (status >= 200 && status < 300) {
      if (isHtml(raw)) throw garbage(`${where} with an HTML page, not ${expect === 'text' ? 'CSV' : 'JSON'}: ${this.snippet(raw.text)} — is a proxy or a maintenance page in the way?`);
      if (expect === 'none') return { ok: true, status, body: undefined };
      if (expect === 'text') return { ok: true, status, body: raw.text };
      const json = parseJson(raw.text);
      if (json === undefined) throw garbage(`${where} with a body that is not JSON (${Buffer.byteLength(raw.text)} bytes): ${this.snippet(raw.text) || '(empty body)'}`);
      return { ok: true, status, body: json };
    }
    const errors = apiErrors(raw.text);
    const first = errors?.[0];
    if (status === 403 && first?.errorCode === 'REQUEST_LIMIT_EXCEEDED') {
      return /^Concurrent/i.test(first.message) ? this.concurrentLimitExceeded(request, first.message) : this.limitExceeded(request, first.message);
    }
    if (status === 408 || status === 429 || status >= 500) {
      const retryAfterSeconds = parseRetryAfter(header(raw.headers, 'retry-after'), this.options.clock.now());
      const after = retryAfterSeconds === undefined ? '' : ` (Retry-After: ${Math.ceil(retryAfterSeconds)} s)`;
      const detail = first ? `${first.errorCode}: ${this.scrub(first.message)}` : this.snippet(raw.text) || '(empty body)';
      throw new LockstepError(ErrorCode.Transient, `${where}${after}${isHtml(raw) ? ' with an HTML page' : ''}: ${detail}`, { retryable: true, retryAfterSeconds });
    }
    if (first) return { ok: false, status, errorCode: first.errorCode, message: this.scrub(first.message) };
    if (status >= 300 && status < 400) {
      throw garbage(`${where}, a redirect, which Lockstep does not follow — check loginUrl (a My Domain login URL hands out the right instance_url)`);
    }
    throw garbage(`${where}${isHtml(raw) ? ' with an HTML page' : ''}, not one of Salesforce's error answers: ${this.snippet(raw.text) || '(empty body)'}`);
  }

  /** The org's daily API requests are used up: every writer of the connection waits, and the call is retryable. */
  private limitExceeded(request: SalesforceRequest, message: string): never {
    const { clock, limiter, logger, slug } = this.options;
    limiter.pauseUntil(clock.now() + REQUEST_LIMIT_PAUSE_SECONDS * 1000);
    const usage = this.limit >= 0 ? `api-usage ${this.used}/${this.limit}` : 'api-usage unknown';
    logger.warn('salesforce API request limit exceeded, pausing this destination', { destination: slug, used: this.used, limit: this.limit });
    throw new LockstepError(
      ErrorCode.Transient,
      `${this.describe(request)}: the org's API request limit is used up (REQUEST_LIMIT_EXCEEDED: ${this.scrub(message)}; ${usage}, counted over a rolling 24 hours) — room comes back as calls made 24 hours ago age out: run again in an hour or more (rows not sent stay planned for the next run), spread other integrations' calls, or ask Salesforce for a higher limit`,
      { retryable: true, retryAfterSeconds: REQUEST_LIMIT_PAUSE_SECONDS },
    );
  }

  /** Too many long-running calls in the org at once: every writer of the connection waits a little, and the call is retryable. */
  private concurrentLimitExceeded(request: SalesforceRequest, message: string): never {
    const { clock, limiter, logger, slug } = this.options;
    limiter.pauseUntil(clock.now() + CONCURRENT_LIMIT_PAUSE_SECONDS * 1000);
    logger.warn('salesforce concurrent request limit exceeded, pausing this destination', { destination: slug });
    throw new LockstepError(
      ErrorCode.Transient,
      `${this.describe(request)}: the org has too many long-running calls under way at once (REQUEST_LIMIT_EXCEEDED: ${this.scrub(message)}; Salesforce allows 25 calls of 20 s or more at a time, by every integration together) — the call is made again; if this persists, lower the connection's concurrency, or find the integration whose calls run long`,
      { retryable: true, retryAfterSeconds: CONCURRENT_LIMIT_PAUSE_SECONDS },
    );
  }

  /** The first 200 characters of an answer, on one line, without secrets. */
  private snippet(text: string): string {
    return this.scrub(text.trim().slice(0, SNIPPET_CHARS).replace(/\s+/g, ' '));
  }
}

/** How to fix a refused login, by the OAuth error Salesforce answered. */
function loginFix(error: string): string {
  switch (error) {
    case 'invalid_client_id':
      return 'check clientId: the connected app\'s Consumer Key (Setup › App Manager › the app › View › Manage Consumer Details)';
    case 'invalid_client':
      return 'check clientSecret: the Consumer Secret of the connected app whose Consumer Key is clientId';
    case 'unsupported_grant_type':
    case 'invalid_grant':
      return 'enable "Client Credentials Flow" on the connected app and set its Run As user (Setup › App Manager › the app › Manage › Edit Policies), and log in at your My Domain URL';
    case 'inactive_user':
    case 'inactive_org':
      return 'the connected app\'s Run As user or the org is inactive — set an active Run As user';
    default:
      return 'check loginUrl, clientId and clientSecret against the connected app';
  }
}

function garbage(message: string): LockstepError {
  return new LockstepError(ErrorCode.Internal, message);
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isHtml(raw: RawAnswer): boolean {
  const type = header(raw.headers, 'content-type') ?? '';
  return /\b(text\/html|application\/xhtml\+xml)\b/i.test(type) || /^\s*<(!doctype html|html)\b/i.test(raw.text);
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Salesforce's request-level error body, `[{message, errorCode}]`, or undefined when it is not one. */
function apiErrors(text: string): Array<{ errorCode: string; message: string }> | undefined {
  const json = parseJson(text);
  if (!Array.isArray(json) || json.length === 0) return undefined;
  const errors = json.filter(isRecord).filter((e) => typeof e.errorCode === 'string');
  if (errors.length === 0) return undefined;
  return errors.map((e) => ({ errorCode: String(e.errorCode), message: typeof e.message === 'string' ? e.message : '' }));
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The error's code, or its cause's (undici wraps socket errors). */
function errorCode(error: Error): string | undefined {
  const own = (error as { code?: unknown }).code;
  if (typeof own === 'string' && own !== 'UND_ERR_ABORTED') return own;
  const cause = (error as { cause?: unknown }).cause;
  const inner = cause && typeof cause === 'object' ? (cause as { code?: unknown }).code : undefined;
  return typeof inner === 'string' ? inner : typeof own === 'string' ? own : undefined;
}

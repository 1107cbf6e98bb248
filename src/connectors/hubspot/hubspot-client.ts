/**
 * A small typed client for the parts of HubSpot's CRM API the destination uses, over undici. Every
 * request takes its turn from the connection's shared rate limiter and feeds HubSpot's rate-limit
 * headers back into it, so every run writing through one connection stays within the portal's
 * budget together.
 *
 * What comes back: answers HubSpot gives on purpose (2xx, and 4xx about the request's content) are
 * returned with their JSON body for the caller to read per record. Everything else is thrown as a
 * LockstepError: 401/403 as fatal `connection` errors, 429, 423 Locked and 5xx (after pausing the
 * limiter), 477 Migration in Progress, timeouts, dropped connections and bodies that are not
 * JSON (an HTML page, a body cut short) as retryable `transient` ones.
 *
 * Credentials: a private app's token, sent as it is, or an OAuth app's refresh token, exchanged at
 * `POST /oauth/v1/token` for access tokens that last 30 minutes. An access token is renewed shortly
 * before it expires, and once more when HubSpot says it expired anyway (401 EXPIRED_AUTHENTICATION): one
 * renewal shared by every request that saw it, then the request is sent again. Messages carry
 * neither the client secret, the refresh token nor any access token.
 */
import { Agent, type Dispatcher } from 'undici';
import { parseRetryAfter, withBackoff, type BackoffPolicy } from '../../core/backoff.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { ApiUsage } from '../../core/runs.js';
import type { Clock, Logger, RateLimiter } from '../../core/ports.js';
import { redactUrl } from '../../core/connections.js';
import type { HubSpotCredentials } from './hubspot-settings.js';

export interface HubSpotClientOptions {
  /** The connection's slug, for messages. */
  slug: string;
  credentials: HubSpotCredentials;
  /** Where the API is, e.g. `https://api.hubapi.com` (a path is kept as a prefix). */
  baseUrl: string;
  /** How long one request may take, headers and body each. */
  timeoutMs: number;
  /** Connections kept open to HubSpot at most. */
  connections: number;
  limiter: RateLimiter;
  clock: Clock;
  logger: Logger;
  /** How getting an OAuth access token is retried when it fails transiently. */
  backoff: BackoffPolicy;
}

/** An access token and when to stop using it (never, for a private app's). */
interface Session {
  accessToken: string;
  renewAt: number;
}

/** An answer HubSpot gave on purpose: a 2xx, or a 4xx about the request's content. */
export interface HubSpotAnswer {
  status: number;
  /** The parsed JSON body; undefined when there is none (204). */
  body: unknown;
}

/** One error as HubSpot describes it; every field is optional ("Error handling"). */
export interface HubSpotError {
  status?: string;
  category?: string;
  message?: string;
  errors?: Array<{ message?: string; code?: string; context?: Record<string, unknown> }>;
  context?: Record<string, unknown>;
  /** 429s: which limit was hit (`TEN_SECONDLY_ROLLING`, `DAILY`). */
  policyName?: string;
}

/** A batch endpoint's answer (200, 201 or 207). */
export interface HubSpotBatchAnswer<R> {
  status?: string;
  results?: R[];
  errors?: HubSpotError[];
  numErrors?: number;
}

/** A record as object endpoints answer it. */
export interface HubSpotObject {
  id: string | number;
  properties?: Record<string, string | null>;
  /** Upserts: the input's trace id, when it carried one. */
  objectWriteTraceId?: string;
  new?: boolean;
}

/** A property as the Properties API describes it (the fields used here). */
export interface HubSpotProperty {
  name: string;
  label?: string;
  /** The data type: string, number, bool, date, datetime, enumeration, … */
  type?: string;
  /** How it is edited; an enumeration with `checkbox` takes several options, separated by `;`. */
  fieldType?: string;
  /** An enumeration's options: `value` is what the API takes, `label` what people see. */
  options?: Array<{ value?: string; label?: string }>;
  /** Options come from elsewhere (owners, pipelines): `options` does not list them. */
  externalOptions?: boolean;
  hasUniqueValue?: boolean;
  calculated?: boolean;
  modificationMetadata?: { readOnlyValue?: boolean };
}

/** Characters of an unexpected body quoted in a message. */
const QUOTED_CHARS = 200;
/** The rolling window HubSpot applies when its headers do not say (Professional/Enterprise). */
const DEFAULT_WINDOW_MS = 10_000;
/** How long HubSpot holds a 423 lock ("Locks will last for 2 seconds"). */
const LOCK_SECONDS = 2;
/** How long requests pause after a 5xx without Retry-After: HubSpot asks for "a few seconds". */
const OVERLOAD_PAUSE_SECONDS = 3;
/** An OAuth access token's life when the token endpoint does not say (30 minutes). */
const DEFAULT_TOKEN_SECONDS = 1800;
/** How long before it expires an access token is renewed, at most. */
const RENEW_EARLY_MS = 60_000;

export class HubSpotClient {
  private readonly agent: Agent;
  private readonly origin: string;
  private readonly prefix: string;
  /** The base URL as messages show it. */
  readonly where: string;
  /** The OAuth app's credentials; null for a private app's token. */
  private readonly oauth: { clientId: string; clientSecret: string; refreshToken: string } | null;
  private session: Session | null = null;
  private renewing: Promise<Session> | null = null;
  /** What messages must never show: the credentials and every access token HubSpot issued. */
  private readonly secrets: string[];
  /** Calls made through this client (every answer HubSpot gave, refusals included). */
  private calls = 0;
  /** The portal's daily limit and what was left of it, from the last answer that said. */
  private daily: { limit: number; remaining: number } | null = null;

  constructor(private readonly options: HubSpotClientOptions) {
    const { credentials } = options;
    if ('accessToken' in credentials) {
      this.oauth = null;
      this.session = { accessToken: credentials.accessToken, renewAt: Number.POSITIVE_INFINITY };
      this.secrets = [credentials.accessToken];
    } else {
      this.oauth = { ...credentials };
      this.secrets = [credentials.clientSecret, credentials.refreshToken];
    }
    const url = new URL(options.baseUrl);
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.where = redactUrl(`${url.origin}${this.prefix}`);
    this.agent = new Agent({
      connections: options.connections,
      connect: { timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  /**
   * Sends one request when the limiter allows and answers it (see the module comment for what is
   * returned and what is thrown). `what` says what the request does, for messages: "upserting contacts".
   */
  async request(method: 'GET' | 'POST', path: string, body: unknown, what: string): Promise<HubSpotAnswer> {
    return this.interpret(await this.send(method, path, body, what), what);
  }

  /**
   * A GET that checks HubSpot answers at baseUrl and takes the token: a 401, an unreachable host or
   * an answer that is not HubSpot's are thrown as `request` throws them. A 403 (the private app
   * lacks this endpoint's scope) proves both too, and answers null.
   */
  async check(path: string, what: string): Promise<HubSpotAnswer | null> {
    const exchange = await this.send('GET', path, undefined, what);
    if (exchange.status === 403) return null;
    return this.interpret(exchange, what);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /**
   * One request in its turn from the limiter, with a current access token. An OAuth access token
   * HubSpot says has expired (early, or by a clock that runs apart) is renewed once and the request
   * sent again.
   */
  private async send(method: 'GET' | 'POST', path: string, body: unknown, what: string): Promise<Exchange> {
    const { limiter } = this.options;
    const session = await this.currentSession();
    let exchange = await limiter.schedule(() => this.exchange(method, path, body, what, session.accessToken));
    this.observeLimits(exchange.headers);
    // Only an expired token is renewed: HubSpot warns that a 401 alone does not mean a new token is needed.
    if (exchange.status === 401 && this.oauth && this.errorOf(exchange)?.category === 'EXPIRED_AUTHENTICATION') {
      this.options.logger.info('HubSpot refused the access token, getting a new one', { destination: this.options.slug, category: this.errorOf(exchange)?.category });
      const renewed = await this.renew(session);
      exchange = await limiter.schedule(() => this.exchange(method, path, body, what, renewed.accessToken));
      this.observeLimits(exchange.headers);
    }
    return exchange;
  }

  private currentSession(): Promise<Session> {
    if (this.renewing) return this.renewing;
    if (this.session && this.options.clock.now() < this.session.renewAt) return Promise.resolve(this.session);
    return this.renew(this.session);
  }

  /** A new access token, unless another request got one since `stale` was handed out. */
  private renew(stale: Session | null): Promise<Session> {
    if (this.session !== null && this.session !== stale && this.options.clock.now() < this.session.renewAt) return Promise.resolve(this.session);
    this.renewing ??= withBackoff(() => this.requestToken(), { policy: this.options.backoff, clock: this.options.clock })
      .then((session) => (this.session = session))
      .finally(() => (this.renewing = null));
    return this.renewing;
  }

  /** `POST /oauth/v1/token` with the refresh token: a new access token, or why there is none. */
  private async requestToken(): Promise<Session> {
    const oauth = this.oauth;
    if (!oauth) throw new LockstepError(ErrorCode.Internal, `destination "${this.options.slug}": a private app's token cannot be renewed`);
    const what = 'getting an OAuth access token (POST /oauth/v1/token)';
    const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: oauth.clientId, client_secret: oauth.clientSecret, refresh_token: oauth.refreshToken });
    let exchange: Exchange;
    try {
      const response = await this.agent.request({
        origin: this.origin,
        path: `${this.prefix}/oauth/v1/token`,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.options.timeoutMs * 2),
      });
      exchange = { status: response.statusCode, headers: response.headers, text: await response.body.text() };
    } catch (thrown) {
      throw this.transportError(thrown, what);
    }
    const json = parseJson(exchange.text);
    const answer = json !== null && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
    if (exchange.status === 200 && typeof answer?.access_token === 'string' && answer.access_token !== '') {
      const seconds = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : DEFAULT_TOKEN_SECONDS;
      this.secrets.push(answer.access_token);
      // Should HubSpot hand out a new refresh token with the access token, the next renewal uses it.
      if (typeof answer.refresh_token === 'string' && answer.refresh_token !== '' && answer.refresh_token !== oauth.refreshToken) {
        oauth.refreshToken = answer.refresh_token;
        this.secrets.push(answer.refresh_token);
      }
      return { accessToken: answer.access_token, renewAt: this.options.clock.now() + seconds * 1000 - Math.min(RENEW_EARLY_MS, seconds * 500) };
    }
    if (exchange.status === 429 || exchange.status >= 500) {
      throw new LockstepError(ErrorCode.Transient, `HubSpot answered ${exchange.status} while ${what}${this.detail(exchange)}`, {
        retryable: true,
        retryAfterSeconds: parseRetryAfter(header(exchange.headers, 'retry-after'), this.options.clock.now()),
      });
    }
    // HubSpot's token errors name the bad credential in `status`: BAD_REFRESH_TOKEN, BAD_CLIENT_ID, ...
    const code = typeof answer?.status === 'string' ? answer.status : undefined;
    const said = typeof answer?.message === 'string' ? this.scrub(answer.message) : this.quote(exchange.text);
    throw new LockstepError(
      ErrorCode.Connection,
      `HubSpot gave destination "${this.options.slug}" no access token (${exchange.status}${code ? ` ${code}` : ''}${said ? `: ${said}` : ''}) — ${tokenFix(code)}`,
    );
  }

  /** One request and its whole body, or a thrown transport failure. */
  private async exchange(method: 'GET' | 'POST', path: string, body: unknown, what: string, accessToken: string): Promise<Exchange> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${accessToken}`,
      accept: 'application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const response: Dispatcher.ResponseData = await this.agent.request({
        origin: this.origin,
        path: `${this.prefix}${path}`,
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs * 2),
      });
      const text = await response.body.text();
      return { status: response.statusCode, headers: response.headers, text };
    } catch (thrown) {
      throw this.transportError(thrown, what);
    }
  }

  /**
   * Counts the call, keeps the portal's daily budget its answer reports, and narrows the shared
   * budget to what HubSpot says is left of its rolling window.
   */
  private observeLimits(headers: Exchange['headers']): void {
    this.calls++;
    const daily = numberHeader(headers, 'x-hubspot-ratelimit-daily');
    const dailyRemaining = numberHeader(headers, 'x-hubspot-ratelimit-daily-remaining');
    // An OAuth app has no daily limit: daily figures an answer carries (a 401's) are not its budget.
    if (daily !== undefined && dailyRemaining !== undefined && this.oauth === null) this.daily = { limit: daily, remaining: dailyRemaining };
    const remaining = numberHeader(headers, 'x-hubspot-ratelimit-remaining');
    if (remaining === undefined) return;
    this.options.limiter.observe(remaining, numberHeader(headers, 'x-hubspot-ratelimit-interval-milliseconds') ?? DEFAULT_WINDOW_MS);
  }

  /**
   * The portal's daily budget as HubSpot last reported it (`X-HubSpot-RateLimit-Daily` and
   * `-Daily-Remaining`, sent to private apps), and the calls made through this client; null before
   * an answer said it, and for OAuth apps, which HubSpot does not count by day.
   */
  usage(): ApiUsage | null {
    return this.daily === null ? null : { used: this.daily.limit - this.daily.remaining, limit: this.daily.limit, calls: this.calls };
  }

  private interpret(exchange: Exchange, what: string): HubSpotAnswer {
    const { status, text } = exchange;
    if (status === 429) throw this.rateLimited(exchange, what);
    if (status === 401) throw this.unauthorized(exchange, what);
    if (status === 403) throw this.denied(exchange, what);
    if (status === 423) throw this.locked(exchange, what);
    if (status === 477) throw this.migrating(exchange, what);
    if (status >= 500) throw this.unavailable(exchange, what);
    if (status === 204 || (text.trim() === '' && status < 300)) return { status, body: undefined };
    const parsed = parseJson(text);
    if (parsed === undefined) {
      const answer = `HubSpot's answer while ${what} is not JSON (${status}, ${contentType(exchange.headers) ?? 'no content type'}): ${this.quote(text)}`;
      // A proxy's or maintenance page, or a body cut short, where HubSpot meant success: worth another try.
      if (status < 300) throw new LockstepError(ErrorCode.Transient, answer, { retryable: true });
      // A page for a 4xx: most likely not HubSpot's API at all.
      throw new LockstepError(ErrorCode.Connection, `${answer} — check baseUrl (default: https://api.hubapi.com)`);
    }
    return { status, body: parsed };
  }

  private rateLimited(exchange: Exchange, what: string): LockstepError {
    const error = this.errorOf(exchange);
    const now = this.options.clock.now();
    if (error?.policyName === 'DAILY') {
      return new LockstepError(
        ErrorCode.Transient,
        `HubSpot's daily API limit of this portal is spent (429 DAILY while ${what}) — it resets at midnight in the portal's time zone; sync less often or raise the portal's limit`,
        { retryable: false },
      );
    }
    const windowMs = numberHeader(exchange.headers, 'x-hubspot-ratelimit-interval-milliseconds') ?? DEFAULT_WINDOW_MS;
    const retryAfterSeconds = parseRetryAfter(header(exchange.headers, 'retry-after'), now) ?? windowMs / 1000;
    // Every run writing through this connection waits, not only this one.
    this.options.limiter.pauseUntil(now + retryAfterSeconds * 1000);
    this.options.logger.warn('HubSpot rate limit reached, pausing the connection', { destination: this.options.slug, policy: error?.policyName, retryAfterSeconds });
    return new LockstepError(
      ErrorCode.Transient,
      `HubSpot's rate limit was reached while ${what} (429 ${error?.policyName ?? 'RATE_LIMIT'}); trying again in ${retryAfterSeconds} s`,
      { retryable: true, retryAfterSeconds },
    );
  }

  /** 403: the app lacks a scope; HubSpot's MISSING_SCOPES body names the ones that would do. */
  private denied(exchange: Exchange, what: string): LockstepError {
    const error = this.errorOf(exchange);
    const scopes = [...new Set((error?.errors ?? []).flatMap((e) => scopeList(e.context?.requiredGranularScopes ?? e.context?.requiredScopes)))];
    const app = this.oauth ? 'OAuth app (then install it again in the portal)' : 'private app';
    const fix =
      scopes.length > 0
        ? `give the ${app} the scope ${scopes.length === 1 ? scopes[0] : `${scopes.slice(0, -1).join(', ')} or ${scopes.at(-1)}`}`
        : `give the ${app} the scopes of the objects synced (crm.objects.<object>.read and .write, crm.schemas.<object>.read; crm.objects.custom.* for custom objects)`;
    return new LockstepError(ErrorCode.Connection, `HubSpot denied destination "${this.options.slug}" while ${what} (403${this.detail(exchange)}) — ${fix}`);
  }

  private unauthorized(exchange: Exchange, what: string): LockstepError {
    const { slug } = this.options;
    const category = this.errorOf(exchange)?.category ?? 'Unauthorized';
    if (this.oauth) {
      return new LockstepError(
        ErrorCode.Connection,
        `HubSpot refused the OAuth access token of destination "${slug}" while ${what} (401 ${category}) — check that the OAuth app is still installed in this portal, with the scopes of the objects synced`,
      );
    }
    if (category === 'EXPIRED_AUTHENTICATION') {
      return new LockstepError(
        ErrorCode.Connection,
        `HubSpot says the access token of destination "${slug}" has expired (401 EXPIRED_AUTHENTICATION while ${what}): it is an OAuth access token, which lasts 30 minutes — give a private app's token as accessToken (it does not expire), or the OAuth app's clientId, clientSecret and refreshToken instead, and Lockstep gets new access tokens itself`,
      );
    }
    return new LockstepError(
      ErrorCode.Connection,
      `HubSpot refused the access token of destination "${slug}" while ${what} (401 ${category}) — check accessToken: a private app's token (Settings › Integrations › Private apps), valid for this portal`,
    );
  }

  /**
   * 5xx: HubSpot asks to pause requests for a few seconds after a 502/504 (its processing limits,
   * reached by many requests over a sustained period) or a 503 ("Error handling"); quick retries
   * would only meet the same limit. Every run writing through this connection waits.
   */
  private unavailable(exchange: Exchange, what: string): LockstepError {
    const now = this.options.clock.now();
    const seconds = parseRetryAfter(header(exchange.headers, 'retry-after'), now) ?? OVERLOAD_PAUSE_SECONDS;
    this.options.limiter.pauseUntil(now + seconds * 1000);
    return new LockstepError(ErrorCode.Transient, `HubSpot answered ${exchange.status} while ${what}${this.detail(exchange)}`, { retryable: true, retryAfterSeconds: seconds });
  }

  /**
   * 423 Locked: HubSpot locks a portal's records for 2 seconds when a lot is written in a short time
   * ("Error handling"). Every run writing through this connection waits them out, then tries again.
   */
  private locked(exchange: Exchange, what: string): LockstepError {
    const now = this.options.clock.now();
    const seconds = parseRetryAfter(header(exchange.headers, 'retry-after'), now) ?? LOCK_SECONDS;
    this.options.limiter.pauseUntil(now + seconds * 1000);
    this.options.logger.warn('HubSpot locked the records being written, pausing the connection', { destination: this.options.slug, retryAfterSeconds: seconds });
    return new LockstepError(ErrorCode.Transient, `HubSpot answered 423 Locked while ${what}${this.detail(exchange)}; trying again in ${seconds} s`, {
      retryable: true,
      retryAfterSeconds: seconds,
    });
  }

  /**
   * 477 Migration in Progress: the portal is moving between data centres; HubSpot's Retry-After says
   * when to come back (up to 24 hours); a wait longer than a run waits ends the run, and its rows
   * go on a later one.
   */
  private migrating(exchange: Exchange, what: string): LockstepError {
    const now = this.options.clock.now();
    const seconds = parseRetryAfter(header(exchange.headers, 'retry-after'), now) ?? DEFAULT_WINDOW_MS / 1000;
    return new LockstepError(
      ErrorCode.Transient,
      `HubSpot is moving this portal to another data centre (477 Migration in Progress while ${what}); it asks to try again in ${seconds} s`,
      { retryable: true, retryAfterSeconds: seconds },
    );
  }

  private transportError(thrown: unknown, what: string): LockstepError {
    const error = toError(thrown);
    const code = (error as { code?: unknown }).code;
    const name = typeof code === 'string' ? code : error.name;
    if (name === 'ECONNREFUSED' || name === 'ENOTFOUND') {
      return new LockstepError(
        ErrorCode.Connection,
        `HubSpot destination "${this.options.slug}" could not be reached at ${this.where} while ${what} (${name}) — check baseUrl (default: https://api.hubapi.com) and the network`,
        { cause: error },
      );
    }
    const timedOut = /TIMEOUT/i.test(name) || name === 'TimeoutError' || name === 'AbortError';
    const why = timedOut ? `no answer within ${this.options.timeoutMs / 1000} s` : `${name}: ${this.scrub(error.message)}`;
    return new LockstepError(ErrorCode.Transient, `HubSpot request failed while ${what} (${why})`, { cause: error, retryable: true });
  }

  /** The error body HubSpot sent, when it is one. */
  private errorOf(exchange: Exchange): HubSpotError | undefined {
    const parsed = parseJson(exchange.text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as HubSpotError) : undefined;
  }

  /** `: <HubSpot's message>` (or the body quoted), for an error message. */
  private detail(exchange: Exchange): string {
    const error = this.errorOf(exchange);
    if (error?.message) return `: ${error.category ? `${error.category}: ` : ''}${this.scrub(error.message)}`;
    return exchange.text.trim() === '' ? '' : `: ${this.quote(exchange.text)}`;
  }

  /** The first characters of a body, on one line, with the token hidden should it be echoed. */
  private quote(text: string): string {
    const flat = this.scrub(text).replace(/\s+/g, ' ').trim();
    return flat.length > QUOTED_CHARS ? `${flat.slice(0, QUOTED_CHARS)}…` : flat;
  }

  private scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) if (secret.length >= 3 && out.includes(secret)) out = out.split(secret).join('***');
    return out;
  }
}

/** A request's answer before it is interpreted. */
interface Exchange {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  text: string;
}

/** Scope names from a MISSING_SCOPES context value: a list of names. */
function scopeList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((scope): scope is string => typeof scope === 'string' && scope !== '') : [];
}

/** What to fix when the token endpoint refuses, by HubSpot's error status. */
function tokenFix(code: string | undefined): string {
  switch (code) {
    case 'BAD_REFRESH_TOKEN':
      return 'check refreshToken: the one the install of the OAuth app in this portal gave (uninstalling the app revokes it; installing it again gives a new one)';
    case 'BAD_CLIENT_ID':
      return "check clientId: the OAuth app's client ID (the app's Auth tab)";
    case 'BAD_CLIENT_SECRET':
      return "check clientSecret: the OAuth app's client secret (the app's Auth tab)";
    default:
      return "check clientId, clientSecret and refreshToken: the OAuth app's, and the refresh token its install in this portal gave";
  }
}

function header(headers: Exchange['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function numberHeader(headers: Exchange['headers'], name: string): number | undefined {
  const value = header(headers, name);
  if (value === undefined || value.trim() === '') return undefined;
  const number = Number(value);
  return Number.isFinite(number) ? number : undefined;
}

function contentType(headers: Exchange['headers']): string | undefined {
  return header(headers, 'content-type');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

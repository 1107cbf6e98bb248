/**
 * One HTTP POST for the HTTP-based alert channels, with Lockstep's error rules: a network failure,
 * a timeout, 408, 429 and 5xx are retryable (honouring `Retry-After`); any other non-2xx answer is
 * not (the channel is misconfigured: a wrong URL or key), nor is a redirect (never followed) or a
 * certificate Lockstep does not trust.
 */
import { secretTexts, withoutValues } from '../../core/connections.js';
import { parseRetryAfter } from '../../core/backoff.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';

export interface PostOptions {
  headers?: Record<string, string>;
  /** Gives up after this long (default: 10000 ms). */
  timeoutMs?: number;
  /** Names the channel in error messages, e.g. `slack channel "ops"`. */
  what: string;
  /** Values of the channel no message may show, besides its URL: header values, a routing key (default: none). */
  secrets?: readonly string[];
  /**
   * Says in words what a non-2xx answer means and what to do, from its status and body (already
   * cleared of secrets); undefined keeps the plain "answered <status>: <body>" (default: none).
   */
  explain?: (status: number, body: string) => string | undefined;
}

/** POSTs `body` (already serialized) and returns the answer's text; throws a LockstepError on failure. */
export async function postBody(url: string, body: string, options: PostOptions): Promise<string> {
  if (!/^https?:$/.test(protocolOf(url) ?? '')) {
    // Its ${VAR} gave something else than an http(s) URL: no attempt can reach it, so none is repeated.
    throw new LockstepError(
      ErrorCode.Validation,
      `${options.what}: its url is ${protocolOf(url) === null ? 'not a URL' : `a ${protocolOf(url)}// URL`} once its \${VAR}s are filled in — set it to an https:// (or http://) URL; \`lockstep validate\` checks it where the variables are set`,
      { retryable: false },
    );
  }
  let response: Response;
  try {
    const { target, authorization } = withoutUserInfo(url);
    // Set one by one, a later header replaces an earlier one of the same name in any case: two
    // values would go as one joined with a comma ("application/json, application/json; charset=utf-8").
    const headers = new Headers({ 'content-type': 'application/json', 'user-agent': 'lockstep' });
    if (authorization) headers.set('authorization', authorization);
    for (const [name, value] of Object.entries(options.headers ?? {})) headers.set(name, value);
    response = await fetch(target, {
      method: 'POST',
      headers,
      body,
      // Followed, a 301 or 302 would become a GET without the notice, and its answer read as delivery.
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (thrown) {
    const error = toError(thrown);
    const code = (error.cause as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string' && /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)/.test(code)) {
      // A certificate problem stays until someone acts: most often an internal endpoint signed by the company's own CA.
      const reason = withoutValues(toError(error.cause).message, hiddenTexts(url, options));
      throw new LockstepError(
        ErrorCode.Connection,
        `${options.what}: ${safeOrigin(url)} has a certificate Lockstep does not trust (${code}: ${reason}) — check the url's host and its certificate; if a private CA signed it, start Lockstep with NODE_EXTRA_CA_CERTS=/path/to/that-ca.pem`,
        { retryable: false, cause: thrown },
      );
    }
    const reason = error.name === 'TimeoutError' ? `no answer within ${options.timeoutMs ?? 10_000} ms` : (toError(error.cause ?? error).message || error.message);
    throw new LockstepError(ErrorCode.Connection, `${options.what}: cannot reach ${safeOrigin(url)}: ${withoutValues(reason, hiddenTexts(url, options))}`, {
      retryable: true,
      cause: thrown,
    });
  }
  const text = await response.text().catch(() => '');
  if (response.ok) return text;
  const status = response.status;
  const location = response.headers.get('location');
  if (status >= 300 && status < 400 && location !== null) {
    throw new LockstepError(
      ErrorCode.Connection,
      `${options.what}: ${safeOrigin(url)} answered ${status}, a redirect to ${withoutValues(resolvedLocation(location, url), hiddenTexts(url, options))} — notices are not sent on to another address: set the channel's url to the one it redirects to`,
      { retryable: false },
    );
  }
  const retryable = status === 408 || status === 429 || status >= 500;
  // Delay-seconds or an HTTP date (a gateway in front of a webhook receiver may send either).
  const retryAfter = parseRetryAfter(response.headers.get('retry-after'), Date.now());
  const answered = withoutValues(text.slice(0, 4000), hiddenTexts(url, options));
  const explained = options.explain?.(status, answered.trim());
  throw new LockstepError(
    retryable ? ErrorCode.Transient : ErrorCode.Connection,
    `${options.what}: ${explained ?? `${safeOrigin(url)} answered ${status}${answered ? `: ${answered.slice(0, 200)}` : ''}`}`,
    { retryable, retryAfterSeconds: retryAfter !== undefined && retryAfter > 0 ? retryAfter : undefined },
  );
}

/**
 * `url` without its user information, which fetch refuses, and that information as the Basic
 * authentication curl would send (a header the channel gives replaces it). A URL that does not parse
 * goes as it is, for fetch to refuse.
 */
function withoutUserInfo(url: string): { target: string; authorization: string | null } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { target: url, authorization: null };
  }
  if (parsed.username === '' && parsed.password === '') return { target: url, authorization: null };
  const credentials = `${decoded(parsed.username)}:${decoded(parsed.password)}`;
  parsed.username = '';
  parsed.password = '';
  return { target: parsed.href, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** Percent-decoded text; text whose escapes are malformed stays as written. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A redirect's `Location`, relative to the URL that answered it. */
function resolvedLocation(location: string, url: string): string {
  try {
    return new URL(location, url).href;
  } catch {
    return location;
  }
}

/** A URL's scheme (`https:`), or null for text that is not a URL. */
function protocolOf(url: string): string | null {
  try {
    return new URL(url).protocol;
  } catch {
    return null;
  }
}

/** The scheme, host and port of a URL: webhook URLs carry secrets in their paths, which never reach a message. */
export function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'an invalid URL';
  }
}

/**
 * What an error about a POST to `url` must not show, since receivers may echo what they were sent:
 * the URL with its secret parts (user information, query values), its path and the path's
 * token-like segments (Slack's secret is the last one), and the channel's secrets and the Basic
 * authentication made of the URL's user information, with their token-like words (`Bearer <token>`).
 */
function hiddenTexts(url: string, options: PostOptions): string[] {
  const tokenLike = (text: string, separator: RegExp) => text.split(separator).filter((part) => part.length >= 8);
  const texts = [url];
  try {
    const { pathname } = new URL(url);
    if (pathname.length > 1) texts.push(pathname, ...tokenLike(pathname, /\//));
  } catch {
    // Not a URL: the whole text is hidden, and fetch said no more than that.
  }
  const { authorization } = withoutUserInfo(url);
  for (const secret of [...(options.secrets ?? []), ...(authorization ? [authorization] : [])]) texts.push(secret, ...tokenLike(secret, /\s+/));
  return secretTexts(texts);
}

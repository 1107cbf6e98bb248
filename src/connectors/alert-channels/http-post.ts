/**
 * One HTTP POST for the HTTP-based alert channels, with Lockstep's error rules: a network failure,
 * a timeout, 408, 429 and 5xx are retryable (honouring `Retry-After`); any other non-2xx answer is
 * not (the channel is misconfigured: a wrong URL or key).
 */
import { secretTexts, withoutValues } from '../../core/connections.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';

export interface PostOptions {
  headers?: Record<string, string>;
  /** Gives up after this long (default: 10000 ms). */
  timeoutMs?: number;
  /** Names the channel in error messages, e.g. `slack channel "ops"`. */
  what: string;
  /** Values of the channel no message may show, besides its URL: header values, a routing key (default: none). */
  secrets?: readonly string[];
}

/** POSTs `body` (already serialized) and returns the answer's text; throws a LockstepError on failure. */
export async function postBody(url: string, body: string, options: PostOptions): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'lockstep', ...options.headers },
      body,
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (thrown) {
    const error = toError(thrown);
    const reason = error.name === 'TimeoutError' ? `no answer within ${options.timeoutMs ?? 10_000} ms` : (toError(error.cause ?? error).message || error.message);
    throw new LockstepError(ErrorCode.Connection, `${options.what}: cannot reach ${safeOrigin(url)}: ${withoutValues(reason, hiddenTexts(url, options))}`, {
      retryable: true,
      cause: thrown,
    });
  }
  const text = await response.text().catch(() => '');
  if (response.ok) return text;
  const status = response.status;
  const retryable = status === 408 || status === 429 || status >= 500;
  const retryAfter = Number(response.headers.get('retry-after'));
  throw new LockstepError(
    retryable ? ErrorCode.Transient : ErrorCode.Connection,
    `${options.what}: ${safeOrigin(url)} answered ${status}${text ? `: ${withoutValues(text, hiddenTexts(url, options)).slice(0, 200)}` : ''}`,
    { retryable, retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined },
  );
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
 * token-like segments (Slack's secret is the last one), and the channel's secrets with their
 * token-like words (`Bearer <token>`).
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
  for (const secret of options.secrets ?? []) texts.push(secret, ...tokenLike(secret, /\s+/));
  return secretTexts(texts);
}

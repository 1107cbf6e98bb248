/**
 * One HTTP destination connection's requests: an undici pool to the API's origin (keep-alive, as
 * many connections as the connection's `concurrency`), every request through the connection's
 * shared rate limiter, and each answer sorted into what the writer needs:
 *
 * - 2xx → delivered (its JSON when the request needs it, or when it says it is JSON);
 * - 408, 429, 5xx, a reset or refused connection, a timeout → transient (retryable, with
 *   `Retry-After`; a 429 or 503 that says when to come back pauses every caller of the limiter);
 * - 401, 407 → thrown: the connection's credentials are wrong, no row can go;
 * - a connection of an http:// url closed unanswered by a port that speaks TLS, or nginx's 400 for
 *   a plain request to its HTTPS port → thrown, saying to use https://;
 * - any other 4xx → refused, with `HTTP <status>: <the answer's first 500 characters>` (a 413 also
 *   saying to lower the sync's batchSize);
 * - a 2xx HTML page, a body that is not the JSON it should be, a redirect → thrown: the API
 *   answers garbage, naming the destination, the path and what was wrong.
 *
 * A user and password in the url go as Basic authentication, unless a header sets Authorization.
 * No message names a header's value: they hold secrets, and answers that echo them are scrubbed.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { pipeline, type Readable, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { Pool, ProxyAgent } from 'undici';
import type { Dispatcher } from 'undici';
import { parseRetryAfter } from '../../core/backoff.js';
import { secretTexts } from '../../core/connections.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { Clock, Logger, RateLimiter } from '../../core/ports.js';
import type { HttpMethod } from './http-settings.js';
import { TIMEOUT_CODES, TRANSIENT_NETWORK_CODES } from '../network-errors.js';

/** One request to make. */
export interface HttpRequest {
  method: HttpMethod;
  /** Path and query under the origin, starting with `/`. */
  path: string;
  /** The body, or null for none. */
  body: string | null;
  /** Whether the answer must be JSON (per-record `results` are read from it). */
  needsJson: boolean;
  /** How many rows it carries (for messages). */
  rows: number;
}

/** What came of a request that the writer turns into row outcomes. */
export type HttpAnswer =
  | { kind: 'delivered'; json: unknown }
  | { kind: 'refused'; status: number; reason: string }
  | { kind: 'transient'; error: LockstepError };

export interface HttpClientOptions {
  /** The connection's slug, for messages. */
  slug: string;
  /** The base URL (resolved). */
  url: URL;
  headers: Readonly<Record<string, string>>;
  concurrency: number;
  timeoutMs: number;
  limiter: RateLimiter;
  clock: Clock;
  logger: Logger;
  /** Values the connection's settings read from the environment: never shown either (default: none). */
  secretValues?: readonly string[];
  /** The HTTP proxy requests go through (http-proxy.ts), or null to connect directly (default: null). */
  proxy?: URL | null;
}

/** What nginx answers (400) to a request in plain text on a port it serves TLS on. */
const PLAIN_TO_TLS_PORT = /The plain HTTP request was sent to HTTPS port/i;
/** Characters of an answer kept in a refusal or an error. */
const SNIPPET_CHARS = 500;
/** Bytes of a non-2xx answer read for its message; the rest is dropped. */
const ERROR_BODY_BYTES = 64 * 1024;
/** Characters no text answer holds: control characters but tab and line ends, and what is not UTF-8. */
const NOT_TEXT = /[^\P{Cc}\t\n\v\f\r]|\ufffd/u;
/** Bytes of a JSON answer read at most. */
const JSON_BODY_BYTES = 64 * 1024 * 1024;

/** Marks a request not sent because another of its write failed for good. */
export const WRITE_ABANDONED = new Error('write abandoned');

export class HttpClient {
  /** A pool to the API's origin, or an agent tunnelling to it through the proxy. */
  private readonly pool: Pool | ProxyAgent;
  private readonly origin: string;
  private readonly headers: Record<string, string>;
  /** The headers of a request with a body (JSON unless a header says otherwise), and of one without. */
  private readonly bodyHeaders: Record<string, string>;
  private readonly noBodyHeaders: Record<string, string>;
  /**
   * Configured header values and their long words, the url's secret parts (password, query values,
   * fragment) and the values read from the environment: never shown, even when an answer or a path
   * echoes them.
   */
  private readonly secrets: string[];
  private closed = false;
  /** Whether the API's port (of an http:// url) completes a TLS handshake, asked once, at the first connection it closes unanswered. */
  private speaksTls: Promise<boolean> | null = null;
  private lastContentType = { type: '', kind: { html: false, json: false } };

  constructor(private readonly options: HttpClientOptions) {
    this.origin = options.url.origin;
    const pool = {
      connections: options.concurrency,
      pipelining: 1,
      keepAliveTimeout: 10_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    };
    const proxy = options.proxy ?? null;
    this.pool = proxy
      ? new ProxyAgent({ ...pool, uri: proxy.href, proxyTls: { timeout: options.timeoutMs }, requestTls: { timeout: options.timeoutMs } })
      : new Pool(this.origin, { ...pool, connect: { timeout: options.timeoutMs } });
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'lockstep' };
    const { username, password } = options.url;
    // Credentials in the url go as Basic authentication, as curl sends them (the origin drops them).
    const basic = username || password ? `Basic ${Buffer.from(`${decodeURIComponent(username)}:${decodeURIComponent(password)}`).toString('base64')}` : null;
    if (basic !== null) headers.authorization = basic;
    for (const [name, value] of Object.entries(options.headers)) headers[name.toLowerCase()] = value;
    this.headers = headers;
    this.bodyHeaders = { 'content-type': 'application/json', ...headers };
    this.noBodyHeaders = omit(headers, 'content-type');
    const headerTexts = Object.values(options.headers).flatMap((value) => [value, ...value.split(/\s+/).filter((word) => word.length >= 8)]);
    if (basic !== null) headerTexts.push(basic, basic.slice('Basic '.length));
    const urls = [options.url.href, ...(proxy ? [proxy.href] : [])];
    this.secrets = secretTexts([...headerTexts, ...urls, ...(options.secretValues ?? [])]).filter((text) => !urls.includes(text));
  }

  /** Whether bodies go as JSON (the content type is JSON, which it is unless a header says otherwise). */
  get sendsJson(): boolean {
    return isJsonType(this.headers['content-type'] ?? 'application/json');
  }

  /**
   * Makes the request when the rate limiter allows and sorts its answer. Throws a LockstepError
   * when no row can go (credentials, garbage, closed); a request whose `abandon` is set by the time
   * its turn comes is not made.
   */
  async send(request: HttpRequest, abandon?: { abandoned: boolean }): Promise<HttpAnswer> {
    return this.options.limiter.schedule(async () => {
      if (abandon?.abandoned) throw WRITE_ABANDONED;
      return this.attempt(request);
    });
  }

  /** Ends every request under way and refuses new ones. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }

  /** `text` with every secret (see `secrets`) replaced by `***`. */
  scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  }

  /** `http destination "api": POST /contacts` (the path without its query, which may hold keys, and without secrets). */
  describe(request: Pick<HttpRequest, 'method' | 'path'>): string {
    return `http destination "${this.options.slug}": ${request.method} ${this.scrub(request.path.split('?')[0] ?? '')}`;
  }

  private async attempt(request: HttpRequest): Promise<HttpAnswer> {
    if (this.closed) throw new LockstepError(ErrorCode.Connection, `${this.describe(request)}: the destination is closed`);
    const { timeoutMs } = this.options;
    // undici takes an event emitter as a request's abort signal: one costs a fraction of an
    // AbortController, which counted per request when requests are small.
    const abort = new EventEmitter();
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      abort.emit('abort');
    }, timeoutMs);
    const headers = request.body === null ? this.noBodyHeaders : this.bodyHeaders;
    try {
      const response = await this.pool.request({ origin: this.origin, method: request.method, path: request.path, headers, body: request.body ?? undefined, signal: abort });
      return await this.answer(request, response);
    } catch (thrown) {
      if (thrown instanceof LockstepError) throw thrown;
      return await this.failure(request, thrown, timedOut);
    } finally {
      clearTimeout(timeout);
    }
  }

  private async answer(request: HttpRequest, response: Dispatcher.ResponseData): Promise<HttpAnswer> {
    const { statusCode: status, body } = response;
    const contentType = header(response.headers, 'content-type') ?? '';
    // Built only for a message: most answers need none.
    const where = () => `${this.describe(request)} answered ${status}`;
    if (status >= 200 && status < 300) {
      const type = this.contentKind(contentType);
      if (type.html) {
        await drop(body);
        throw this.garbage(`${where()} with an HTML page (${contentType}), not JSON — the url or the sync's path leads to a web page (a login, proxy or error page?); check them`);
      }
      const json = type.json;
      if (!request.needsJson && !json) {
        await drop(body);
        return { kind: 'delivered', json: undefined };
      }
      const { text, truncated } = await this.read(response, JSON_BODY_BYTES, where);
      if (truncated) throw this.garbage(`${where()} with more than ${JSON_BODY_BYTES / 1024 / 1024} MiB, which Lockstep does not read`);
      if (text.trim() === '') {
        if (request.needsJson) throw this.garbage(`${where()} with an empty body, but the sync's results setting needs a JSON answer`);
        return { kind: 'delivered', json: undefined };
      }
      try {
        return { kind: 'delivered', json: JSON.parse(text) };
      } catch (thrown) {
        const why = request.needsJson && !json ? 'the sync\'s results setting needs a JSON answer' : `it says it is ${contentType}`;
        throw this.garbage(
          `${where()} with a body that is not valid JSON (${toError(thrown).message}; ${Buffer.byteLength(text)} bytes, content-type ${contentType || 'none'}), but ${why}: ${this.snippet(text, { bytes: Buffer.byteLength(text), truncated: false, contentType })}`,
        );
      }
    }
    const { text, bytes, truncated } = await this.read(response, ERROR_BODY_BYTES, where);
    const snippet = this.snippet(text, { bytes, truncated, contentType });
    if (status === 408 || status === 429 || status >= 500) {
      const retryAfterSeconds = parseRetryAfter(header(response.headers, 'retry-after'), this.options.clock.now());
      if ((status === 429 || status === 503) && retryAfterSeconds !== undefined) {
        // The peer's budget is spent for everyone writing through this connection, not only this request.
        this.options.limiter.pauseUntil(this.options.clock.now() + retryAfterSeconds * 1000);
        this.options.logger.info('http destination asked to wait', { destination: this.options.slug, status, retryAfterSeconds });
      }
      const after = retryAfterSeconds === undefined ? '' : ` (Retry-After: ${Math.ceil(retryAfterSeconds)} s)`;
      return {
        kind: 'transient',
        error: new LockstepError(ErrorCode.Transient, `${where()}${after}: ${snippet || '(empty body)'}`, { retryable: true, retryAfterSeconds }),
      };
    }
    if (status === 401 || status === 407) {
      throw new LockstepError(
        ErrorCode.Connection,
        `${where()} (not authenticated): ${snippet || '(empty body)'} — check the connection's headers (e.g. Authorization) and the variables they read`,
      );
    }
    if (status === 400 && this.options.url.protocol === 'http:' && PLAIN_TO_TLS_PORT.test(snippet)) {
      // nginx's answer to a request in plain text on a port it serves TLS on: no row can go this way.
      const { host, pathname } = this.options.url;
      throw new LockstepError(
        ErrorCode.Connection,
        `${this.describe(request)}: ${host} speaks TLS (it answered "The plain HTTP request was sent to HTTPS port"), but the connection's url is http:// — use ${this.scrub(`https://${host}${pathname.replace(/\/$/, '')}`)}`,
      );
    }
    if (status >= 400 && status < 500) {
      // A request too large is refused whatever its rows hold: the fix is in the sync's settings.
      const fix =
        status !== 413
          ? ''
          : request.rows > 1
            ? " — the API refuses a request this large: lower the sync's batchSize, or map fewer fields"
            : ' — the API refuses a request this large, of one row: map fewer fields, or write less of them in the body';
      return { kind: 'refused', status, reason: `HTTP ${status}: ${snippet || '(empty body)'}${fix}` };
    }
    const location = header(response.headers, 'location');
    throw this.garbage(
      status >= 300 && status < 400
        ? `${where()}, a redirect${location ? ` to ${this.scrub(location.split('?')[0] ?? '')}` : ''}, which Lockstep does not follow — set the connection's url (or the sync's path) to where it points`
        : `${where()}, which is not an answer Lockstep understands: ${snippet || '(empty body)'}`,
    );
  }

  /**
   * Reads an answer's body as text, its content codings undone: a server may compress an answer to
   * a request without Accept-Encoding (RFC 9110 §12.5.3), and some do (gzip or br from a CDN or a
   * proxy), which read as binary garbage. Throws when the body does not decode.
   */
  private async read(response: Dispatcher.ResponseData, limit: number, where: () => string): Promise<{ text: string; truncated: boolean; bytes: number }> {
    const encoding = header(response.headers, 'content-encoding');
    const codings = (encoding ?? '')
      .toLowerCase()
      .split(',')
      .map((coding) => coding.trim())
      .filter((coding) => coding !== '' && coding !== 'identity');
    if (codings.length === 0) return readText(response.body, limit);
    const decoders = codings.reverse().map((coding) => DECODERS[coding]?.());
    if (decoders.some((decoder) => decoder === undefined)) {
      await drop(response.body);
      throw this.garbage(`${where()} with content-encoding ${encoding}, which Lockstep cannot decode (it reads gzip, deflate and br) — make the API answer without it`);
    }
    let broken: unknown = null;
    response.body.once('error', (error) => (broken = error));
    const chain = decoders as Transform[];
    pipeline([response.body, ...chain], () => undefined);
    try {
      return await readText(chain.at(-1) as Transform, limit);
    } catch (thrown) {
      // A broken connection stays one (transient); a body that does not decode is the API's garbage.
      if (thrown === broken) throw thrown;
      throw this.garbage(`${where()} with a body that is not ${encoding} as its content-encoding says (${toError(thrown).message})`);
    }
  }

  /** Whether a 2xx answer's content type is an HTML page or JSON, remembered for the last type seen (an API answers with the same one). */
  private contentKind(contentType: string): { html: boolean; json: boolean } {
    if (contentType !== this.lastContentType.type) {
      this.lastContentType = {
        type: contentType,
        kind: { html: /\b(text\/html|application\/xhtml\+xml)\b/i.test(contentType), json: isJsonType(contentType) },
      };
    }
    return this.lastContentType.kind;
  }

  /** A request that got no answer: transient when the peer may come back, else thrown. */
  private async failure(request: HttpRequest, thrown: unknown, timedOut: boolean): Promise<HttpAnswer> {
    const error = toError(thrown);
    const code = errorCode(error);
    const what = this.describe(request);
    if (timedOut || (code !== undefined && TIMEOUT_CODES.has(code))) {
      const seconds = Number((this.options.timeoutMs / 1000).toPrecision(3));
      return {
        kind: 'transient',
        error: new LockstepError(
          ErrorCode.Transient,
          `${what}: no answer within ${seconds} s (timeoutMs: ${this.options.timeoutMs}) — the API took the request and did not answer in time; raise timeoutMs if it is slow`,
          { retryable: true },
        ),
      };
    }
    if (code !== undefined && TRANSIENT_NETWORK_CODES.has(code)) {
      if (await this.plainToTls(error, code)) {
        const { host, pathname } = this.options.url;
        throw new LockstepError(
          ErrorCode.Connection,
          `${what}: ${host} speaks TLS, but the connection's url is http:// — use ${this.scrub(`https://${host}${pathname.replace(/\/$/, '')}`)}`,
          { cause: error },
        );
      }
      const why =
        code === 'ECONNREFUSED'
          ? `connection refused by ${this.options.url.host} — is the API up at this url?`
          : code === 'UND_ERR_CONNECT_TIMEOUT'
            ? `could not connect to ${this.options.url.host} within ${this.options.timeoutMs} ms`
            : `the connection broke before the answer was complete (${code}: ${this.scrub(error.message)})`;
      return { kind: 'transient', error: new LockstepError(ErrorCode.Transient, `${what}: ${why}`, { retryable: true, cause: error }) };
    }
    const proxied = /^Proxy response \((\d+)\)/.exec(error.message);
    if (proxied && this.options.proxy) {
      const status = Number(proxied[1]);
      const why = `the proxy ${this.options.proxy.host} answered ${status} to the tunnel to ${this.options.url.host}`;
      // A gateway error of the proxy is its path to the API failing for now; anything else is its refusal.
      if (status >= 500) return { kind: 'transient', error: new LockstepError(ErrorCode.Transient, `${what}: ${why}`, { retryable: true, cause: error }) };
      throw new LockstepError(
        ErrorCode.Connection,
        `${what}: ${why}${status === 407 ? ' (proxy authentication required)' : ''} — check HTTPS_PROXY / HTTP_PROXY (and the user and password in it), or list the host in NO_PROXY`,
        { cause: error },
      );
    }
    if (error.name === 'HTTPParserError') {
      // Most often the url's port is another service's (a database, Redis) or a TLS one reached with http://.
      throw new LockstepError(
        ErrorCode.Connection,
        `${what}: ${this.options.url.host} answered with something that is not HTTP (${this.scrub(error.message)}) — check the connection's url: its port may be another service's, or one that wants https://`,
        { cause: error },
      );
    }
    if (code === 'ENOTFOUND') {
      throw new LockstepError(ErrorCode.Connection, `${what}: host ${this.options.url.hostname} not found — check the connection's url`, { cause: error });
    }
    if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED' || this.closed) {
      throw new LockstepError(ErrorCode.Connection, `${what}: the destination is closed`);
    }
    if (code === 'UND_ERR_INVALID_ARG') {
      // undici names the header, not its value; scrubbed all the same.
      throw new LockstepError(ErrorCode.Validation, `${what}: the request cannot be made (${this.scrub(error.message)}) — check the connection's headers and the sync's path`);
    }
    if (code !== undefined && /CERT|TLS|SSL/.test(code)) {
      // A certificate no known CA signed: most often an internal API's, signed by the company's own CA.
      const privateCa = /SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY_LEAF/.test(code)
        ? "; if a private CA signed it, start Lockstep with NODE_EXTRA_CA_CERTS=/path/to/that-ca.pem"
        : '';
      throw new LockstepError(ErrorCode.Connection, `${what}: TLS failed (${code}: ${this.scrub(error.message)}) — check the url's host and its certificate${privateCa}`, { cause: error });
    }
    throw new LockstepError(ErrorCode.Connection, `${what}: ${code ? `${code}: ` : ''}${this.scrub(error.message)}`, { cause: error });
  }

  /**
   * Whether a connection closed before any byte of an answer came back because the url says
   * http:// to a port that speaks TLS (which closes on a request in plain text): asked by a TLS
   * handshake with the port, once (not through a proxy).
   */
  private async plainToTls(error: Error, code: string): Promise<boolean> {
    const { url, proxy, timeoutMs } = this.options;
    if (url.protocol !== 'http:' || proxy || !['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'].includes(code)) return false;
    const read = (error as { socket?: { bytesRead?: unknown } }).socket?.bytesRead;
    if (typeof read === 'number' && read > 0) return false;
    return (this.speaksTls ??= handshakes(url, Math.min(timeoutMs, 5_000)));
  }

  private garbage(message: string): LockstepError {
    return new LockstepError(ErrorCode.Internal, message);
  }

  /**
   * The first 500 characters of an answer, on one line, without secrets; a body that is not text
   * (an image, a compressed or binary payload) by its size and type instead.
   */
  private snippet(text: string, body: { bytes: number; truncated: boolean; contentType: string }): string {
    if (NOT_TEXT.test(text)) return `(${body.truncated ? 'more than ' : ''}${body.bytes} bytes of ${body.contentType || 'an unnamed type'}, not text)`;
    // Scrubbed before the cut: a secret the cut goes through would no longer match, and its start would show.
    const cut = this.scrub(text.trim().replace(/\s+/g, ' ')).slice(0, SNIPPET_CHARS);
    // Not half of a character outside the BMP (an emoji).
    return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
  }
}

/** Whether the url's host and port complete a TLS handshake (any certificate) within `timeoutMs`. */
function handshakes(url: URL, timeoutMs: number): Promise<boolean> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = connectTls({ host, port: Number(url.port) || 80, servername: isIP(host) ? undefined : host, rejectUnauthorized: false });
    const done = (tls: boolean) => {
      socket.destroy();
      resolve(tls);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isJsonType(contentType: string): boolean {
  return /^\s*application\/([\w.-]+\+)?json\b/i.test(contentType) || /[/+]json\s*(;|$)/i.test(contentType);
}

function omit(record: Record<string, string>, name: string): Record<string, string> {
  const { [name]: _dropped, ...rest } = record;
  return rest;
}

/** The error's code, or its cause's (undici wraps socket errors). */
function errorCode(error: Error): string | undefined {
  const own = (error as { code?: unknown }).code;
  if (typeof own === 'string' && own !== 'UND_ERR_ABORTED') return own;
  const cause = (error as { cause?: unknown }).cause;
  const inner = cause && typeof cause === 'object' ? (cause as { code?: unknown }).code : undefined;
  return typeof inner === 'string' ? inner : typeof own === 'string' ? own : undefined;
}

/**
 * Reads at most `limit` bytes of a body as UTF-8 (the rest is dropped with the connection). Read
 * through its events: an async iterator over the stream cost several times more per answer, which
 * counted when answers are small and many.
 */
function readText(body: Readable, limit: number): Promise<{ text: string; truncated: boolean; bytes: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        body.off('data', onData);
        body.destroy();
        resolve({ text: withoutBom(Buffer.concat(chunks).subarray(0, limit).toString('utf8')), truncated: true, bytes: limit });
      }
    };
    body.on('data', onData);
    body.once('end', () => resolve({ text: withoutBom(Buffer.concat(chunks, size).toString('utf8')), truncated: false, bytes: size }));
    body.once('error', reject);
  });
}

/**
 * UTF-8 text without its byte order mark, which some servers (.NET, IIS) put before their JSON:
 * JSON.parse refuses it, so every answer of such an API read as garbage.
 */
function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Decoders of the content codings a body may come in. */
const DECODERS: Readonly<Record<string, (() => Transform) | undefined>> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** Consumes a body we do not read, so that its connection can be used again. */
async function drop(body: Dispatcher.ResponseData['body']): Promise<void> {
  await body.dump({ limit: ERROR_BODY_BYTES });
}

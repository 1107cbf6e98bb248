/**
 * Requests as a Hightouch client puts them on the wire: exactly the method, path, headers and body
 * bytes given, over a plain HTTP/1.1 connection to a served app (node:http adds only Host,
 * Connection and, for a body, Content-Length). Each client's test file says what its client sends.
 */
import { request as httpRequest } from 'node:http';
import { expect } from 'vitest';
import type { ApiHarness } from '../api-helpers.js';

export interface WireRequest {
  method: 'GET' | 'POST';
  /** Path and query string, as the client builds them. */
  path: string;
  headers: Record<string, string>;
  /** The body bytes, as the client encodes them. */
  body?: string;
}

export interface WireAnswer {
  status: number;
  contentType: string;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field, as the clients read them
  body: any;
}

export function send(api: ApiHarness, wire: WireRequest): Promise<WireAnswer> {
  const url = new URL(api.url);
  const headers: Record<string, string> = { ...wire.headers };
  if (wire.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) headers['Content-Length'] = String(Buffer.byteLength(wire.body));
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: url.hostname, port: url.port, method: wire.method, path: wire.path, headers }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('error', reject);
      incoming.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = undefined;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: incoming.statusCode ?? 0, contentType: String(incoming.headers['content-type'] ?? ''), text, body });
      });
    });
    outgoing.on('error', reject);
    outgoing.end(wire.body);
  });
}

/** Sends and expects a 2xx JSON answer, as every client here requires (they raise otherwise). */
export async function sendOk(api: ApiHarness, wire: WireRequest): Promise<WireAnswer> {
  const answer = await send(api, wire);
  expect(answer.status, `${wire.method} ${wire.path} -> ${answer.status} ${answer.text}`).toBeGreaterThanOrEqual(200);
  expect(answer.status, `${wire.method} ${wire.path} -> ${answer.status} ${answer.text}`).toBeLessThan(300);
  expect(answer.contentType).toMatch(/^application\/json/);
  return answer;
}

/**
 * Polls as the clients do (their interval shortened to 50 ms): asks again while `next` returns
 * undefined, fails after `timeoutMs`.
 */
export async function poll<T>(next: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await next();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('the run did not reach a terminal status in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the clients treat as finished and as still going (Airflow's and Dagster's status lists). */
export const TERMINAL_STATUSES = ['cancelled', 'failed', 'success', 'warning', 'interrupted'];
export const PENDING_STATUSES = ['queued', 'querying', 'processing', 'reporting', 'pending'];

/** An ISO time as Python's dateutil parser and JavaScript's Date both read it. */
export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * Python's `urljoin(base, endpoint)` for the relative endpoints the clients join to their base URL
 * (RFC 3986 resolution, as WHATWG URL does it): the path and query string it requests.
 */
export function urljoinPath(base: string, endpoint: string): string {
  const url = new URL(endpoint, base);
  return url.pathname + url.search;
}

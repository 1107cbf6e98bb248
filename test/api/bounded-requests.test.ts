/**
 * Bounded request handling: bodies are counted as they arrive, chunked ones included, and refused
 * once over the limit without being read whole; deep JSON and keys such as `__proto__` get a 422
 * naming the field; a path that is not valid percent-encoding gets a 400. Never a 5xx.
 */
import { request } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_BODY_LIMIT_BYTES } from '../../src/api/route.js';
import { WEBHOOK_BODY_LIMIT_BYTES } from '../../src/api/webhook-routes.js';
import { startApi, type ApiHarness } from './api-helpers.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

/**
 * Streams up to `totalBytes` in chunks with no Content-Length (chunked), stopping as soon as the
 * server answers; resolves with the status and how many bytes had been sent by then.
 */
function sendChunked(path: string, totalBytes: number, headers: Record<string, string> = {}): Promise<{ status: number; sent: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(api.url + path);
    const req = request({ hostname: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { 'content-type': 'application/json', ...headers } });
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    req.on('response', (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sent, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', (error) => (answered ? undefined : reject(error)));
    const pump = () => {
      while (!answered && sent < totalBytes) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    req.write('{"x":"');
    pump();
  });
}

describe('bounded request handling', () => {
  it('refuses a chunked webhook body once past its limit, records the refusal without the body, and reads no further', async () => {
    const total = 64 * 1024 * 1024;
    const result = await sendChunked('/api/v1/webhooks/dbt-cloud', total);
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ outcome: 'rejected', message: `the body is larger than ${WEBHOOK_BODY_LIMIT_BYTES} bytes` });
    // Answered long before the sender was done.
    expect(result.sent).toBeLessThan(total / 4);
    const [delivery] = await api.app.store.webhooks.list({ limit: 1, offset: 0 });
    expect(delivery).toMatchObject({ outcome: 'rejected', httpStatus: 413, payloadExcerpt: '' });
  });

  it('refuses a chunked API body once past its limit', async () => {
    const total = 64 * 1024 * 1024;
    const result = await sendChunked('/api/sequences/crm-hierarchy/runs', total, { authorization: `Bearer ${api.token}` });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body).message).toContain(`larger than ${API_BODY_LIMIT_BYTES} bytes`);
    expect(result.sent).toBeLessThan(total / 4);
  });

  it('answers deep JSON, __proto__ keys and a bad query key with a 422 naming the field, starting nothing', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const deepAnswer = await api.call('POST', '/api/sequences/crm-hierarchy/runs', undefined, { raw: deep });
    expect(deepAnswer.status).toBe(422);
    expect(deepAnswer.body.details.body).toMatch(/deeper than 64 levels/);

    const proto = await api.call('POST', '/api/sequences/crm-hierarchy/runs', undefined, { raw: '{"__proto__": {"admin": true}}' });
    expect(proto.status).toBe(422);
    expect(Object.entries(proto.body.details)).toEqual([['__proto__', 'unknown field — remove it']]);

    const query = await api.call('GET', '/api/syncs?__proto__=x');
    expect(query.status).toBeLessThan(500);
    expect(await api.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' })).toEqual([]);
  });

  it('answers a path that is not valid percent-encoding with a 400', async () => {
    const ui = join(api.dir, 'ui');
    mkdirSync(ui, { recursive: true });
    writeFileSync(join(ui, 'index.html'), '<!doctype html><title>Lockstep</title>');
    const { createApiServer } = await import('../../src/api/server.js');
    const { silentLogger } = await import('../../src/core/logger.js');
    const app = api.app;
    const server = createApiServer({ store: app.store, runs: app.runs, worker: app.worker, alerts: app.alerts, events: app.events, logger: silentLogger, clock: app.clock, env: {}, connectors: app.registry, onWorkspaceChanged: () => {}, activity: app.activity, uiDir: ui, authRequired: true });
    const { url } = await server.listen(0, '127.0.0.1');
    try {
      const answer = await fetch(`${url}/%zz`);
      expect(answer.status).toBe(400);
      expect(await answer.json()).toEqual({ message: 'the path /%zz is not valid percent-encoding' });
    } finally {
      await server.close();
    }
  });
});

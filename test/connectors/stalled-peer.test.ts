/**
 * A server that accepts the connection and never answers (a stuck proxy, a firewall holding the
 * port) ends a run `failed` within the configured timeouts, with a message naming the host, port
 * and what was waited for; it never holds up other runs.
 */
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { mysqlConnector } from '../../src/connectors/mysql/kind.js';
import { postgresConnector } from '../../src/connectors/postgres/kind.js';
import type { ConnectorContext } from '../../src/core/connector-kind.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

/** A TCP server on loopback that accepts connections, reads what comes and never writes. */
async function stalledServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const context = {} as ConnectorContext;

let peer: { port: number; close(): Promise<void> };
beforeAll(async () => {
  peer = await stalledServer();
});
afterAll(async () => {
  await peer.close();
});

async function failure(open: () => Promise<unknown>): Promise<{ error: LockstepError; ms: number }> {
  const started = Date.now();
  const thrown = await open().then(
    () => null,
    (error: unknown) => error,
  );
  expect(thrown).toBeInstanceOf(LockstepError);
  return { error: thrown as LockstepError, ms: Date.now() - started };
}

describe('a peer that accepts the connection and never answers', () => {
  it('fails a PostgreSQL source after its connect timeout, naming host, port and phase', async () => {
    const settings = postgresConnector.settings.parse({ url: `postgres://lockstep:s3cret@127.0.0.1:${peer.port}/warehouse`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => postgresConnector.source!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to source PostgreSQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(10_000);
  });

  it('fails a PostgreSQL destination after its connect timeout, naming host, port and phase', async () => {
    const settings = postgresConnector.settings.parse({ url: `postgres://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => postgresConnector.destination!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to destination PostgreSQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(10_000);
  });
});

describe('a MySQL peer that accepts the connection and never answers', () => {
  it('fails a MySQL source after its connect timeout, naming host, port and phase', async () => {
    const settings = mysqlConnector.settings.parse({ url: `mysql://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => mysqlConnector.source!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to source MySQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(10_000);
  });

  it('fails a MySQL destination after its connect timeout, naming host, port and phase', async () => {
    const settings = mysqlConnector.settings.parse({ url: `mysql://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => mysqlConnector.destination!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to destination MySQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(10_000);
  });
});

describe('a sync whose destination never answers', () => {
  it('ends failed with the connect timeout, and does not hold up a run of another sync', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const definition = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [
        source('stalled', { type: 'postgres', settings: { url: `postgres://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 } }),
        source('crm', { path: 'crm.db' }),
      ],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [
        sync('accounts-to-stalled', { model: 'accounts', destination: 'stalled', object: 'accounts' }),
        sync('accounts-to-crm', { model: 'accounts', destination: 'crm', object: 'accounts' }),
      ],
    });
    await using h = await startHarness({ dir, definition });
    const started = Date.now();
    const { run: stalled } = await h.app.runs.triggerSync('accounts-to-stalled');
    const { run: other } = await h.app.runs.triggerSync('accounts-to-crm');
    const [failed, delivered] = await Promise.all([h.app.runs.waitForSyncRun(stalled.id), h.app.runs.waitForSyncRun(other.id)]);
    expect(failed.status).toBe('failed');
    expect(failed.error).toContain(`connecting to destination PostgreSQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(failed.error).not.toContain('s3cret');
    expect(delivered.status).toBe('success');
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from accounts')).toEqual([{ n: 3 }]);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

describe('cancelling a run that waits on a server that never answers', () => {
  it('ends it cancelled at once, without waiting for the connect timeout', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const definition = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [source('stalled', { type: 'postgres', settings: { url: `postgres://lockstep@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 120 } })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts-to-stalled', { model: 'accounts', destination: 'stalled', object: 'accounts' })],
    });
    await using h = await startHarness({ dir, definition });
    const { run } = await h.app.runs.triggerSync('accounts-to-stalled');
    // Let the run reach the connection that never opens.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = Date.now();
    await h.app.runs.cancelSyncRun(run.id);
    const ended = await h.app.runs.waitForSyncRun(run.id);
    expect(ended.status).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('ends a read from a PostgreSQL source that never answers as soon as its signal aborts', async () => {
    const settings = postgresConnector.settings.parse({ url: `postgres://lockstep@127.0.0.1:${peer.port}/warehouse`, connectTimeoutSeconds: 120 });
    const { PostgresSource } = await import('../../src/connectors/postgres/postgres-source.js');
    const reader = new PostgresSource({ url: settings.url, timeouts: { connectMs: 120_000 } });
    const controller = new AbortController();
    setTimeout(() => controller.abort('cancel'), 300);
    const started = Date.now();
    const reading = (async () => {
      for await (const _ of reader.read('select 1', { batchSize: 10, signal: controller.signal })) void _;
    })();
    await expect(reading).rejects.toBeDefined();
    expect(Date.now() - started).toBeLessThan(10_000);
    await reader.close();
  });
});

/** A TCP proxy to `target` that passes bytes both ways until `stall()`, then passes nothing more. */
async function stallingProxy(target: URL): Promise<{ port: number; stall(): void; close(): Promise<void> }> {
  let stalled = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk) => void (stalled || upstream.write(chunk)));
    upstream.on('data', (chunk) => void (stalled || client.write(chunk)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stall: () => void (stalled = true),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe.skipIf(!process.env.TEST_DATABASE_URL)('a PostgreSQL server that stops answering once connected', () => {
  it('fails the destination after its write timeout, naming host, port and phase', async () => {
    const target = new URL(process.env.TEST_DATABASE_URL as string);
    const proxy = await stallingProxy(target);
    const { PostgresDestination } = await import('../../src/connectors/postgres/postgres-destination.js');
    const url = new URL(target.href);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const destination = await PostgresDestination.connect({ url: url.href, timeouts: { connectMs: 5_000, statementMs: 500 } });
    try {
      proxy.stall();
      const started = Date.now();
      const { error } = await failure(() => destination.listObjects());
      expect(error.message).toContain(`listing tables in destination PostgreSQL at 127.0.0.1:${proxy.port} timed out`);
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await destination.close();
      await proxy.close();
    }
  });
});

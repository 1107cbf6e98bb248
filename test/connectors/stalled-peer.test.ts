/**
 * A server that accepts the connection and never answers (a stuck proxy, a firewall holding the
 * port) ends a run `failed` within the configured timeouts, with a message naming the host, port
 * and what was waited for; it never holds up other runs.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { mysqlConnector } from '../../src/connectors/mysql/kind.js';
import { postgresConnector } from '../../src/connectors/postgres/kind.js';
import type { ConnectorContext } from '../../src/core/connector-kind.js';

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
    expect(ms).toBeLessThan(5_000);
  });

  it('fails a PostgreSQL destination after its connect timeout, naming host, port and phase', async () => {
    const settings = postgresConnector.settings.parse({ url: `postgres://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => postgresConnector.destination!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to destination PostgreSQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(5_000);
  });
});

describe('a MySQL peer that accepts the connection and never answers', () => {
  it('fails a MySQL source after its connect timeout, naming host, port and phase', async () => {
    const settings = mysqlConnector.settings.parse({ url: `mysql://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => mysqlConnector.source!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to source MySQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(5_000);
  });

  it('fails a MySQL destination after its connect timeout, naming host, port and phase', async () => {
    const settings = mysqlConnector.settings.parse({ url: `mysql://lockstep:s3cret@127.0.0.1:${peer.port}/crm`, connectTimeoutSeconds: 1 });
    const { error, ms } = await failure(() => mysqlConnector.destination!.open(settings, context));
    expect(error.code).toBe(ErrorCode.Connection);
    expect(error.message).toContain(`connecting to destination MySQL at 127.0.0.1:${peer.port} timed out after 1 s`);
    expect(error.message).not.toContain('s3cret');
    expect(ms).toBeLessThan(5_000);
  });
});

/**
 * What a failed PostgreSQL connection tells the user to do, for the failures pg reports without a
 * SQLSTATE: a server that takes no TLS, a certificate that is not trusted, a certificate file that
 * cannot be read; and a server of either kind that takes only TLS.
 */
import { describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { resolveConnection } from '../../src/core/connector-registry.js';
import { mysqlConnectionHint } from '../../src/connectors/mysql/mysql-client.js';
import { postgresConnectionHint } from '../../src/connectors/sql.js';
import { postgresDriverUrl, postgresTlsHint } from '../../src/core/connections.js';
import { PostgresAuditLog } from '../../src/connectors/postgres/postgres-audit-log.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createTestDatabase } from '../helpers/postgres.js';

describe('PostgreSQL connection hints', () => {
  it('names the sslmode to change when the server takes no TLS, or its certificate is not trusted', () => {
    expect(postgresConnectionHint(new Error('The server does not support SSL connections'))).toBe(
      'the server does not take TLS connections: remove sslmode from the connection URL (or set sslmode=disable), or turn ssl on in the server',
    );
    expect(postgresConnectionHint(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }))).toMatch(
      /^the server's certificate is not trusted: add sslrootcert=.* to the connection URL, or set sslmode=no-verify/,
    );
    expect(postgresTlsHint('unable to verify the first certificate', 'store URL')).toMatch(/to the store URL/);
    expect(postgresConnectionHint(Object.assign(new Error('password authentication failed'), { code: '28P01' }))).toBe('check the user name and password in the connection URL');
  });

  it('names the sslmode to add when the server takes only TLS connections (a hostssl line in pg_hba.conf), not the password', () => {
    const refused = Object.assign(new Error('no pg_hba.conf entry for host "10.0.0.5", user "etl", database "wh", no encryption'), { code: '28000' });
    // sslmode=require checks the certificate (the driver takes it as verify-full): the hint says so, and how to get a private CA's server in.
    const hint =
      'the server takes only TLS connections from here: add sslmode=require to the connection URL; its certificate is then checked against ' +
      "the trusted CAs, as with sslmode=verify-full — for a private CA add sslrootcert=<path of the CA's certificate>, or use sslmode=no-verify to encrypt without checking it";
    expect(postgresConnectionHint(refused)).toBe(hint);
    expect(postgresTlsHint(refused.message, 'store URL')).toBe(hint.replace('connection URL', 'store URL'));
  });

  it('names the certificate file a connection URL points to that cannot be read, for a source, a destination, an audit log and the store', async () => {
    const url = new URL(await createTestDatabase('lockstep_certfile'));
    url.searchParams.set('sslmode', 'verify-full');
    url.searchParams.set('sslrootcert', '/no-such-folder-c4/ca.pem');
    const registry = createConnectorRegistry();
    const failure = (opening: Promise<unknown>) =>
      opening.then(
        () => null,
        (thrown: unknown) => thrown as Error,
      );
    const def = { slug: 'warehouse', type: 'postgres', settings: { url: url.toString() } };
    const source = await failure(registry.openSource(resolveConnection(def, 'source', '/tmp', {})));
    const destination = await failure(registry.openDestination(resolveConnection(def, 'destination', '/tmp', {})));
    const auditLog = await failure(PostgresAuditLog.open({ url: url.toString(), schema: 'lockstep_audit', connection: 'warehouse', timeouts: { connectMs: 5000, statementMs: 5000 } }));
    const store = await failure(PostgresStore.exists({ url: url.toString() }));
    const hint = 'the certificate or key file /no-such-folder-c4/ca.pem cannot be read (ENOENT): check the path given by sslrootcert, sslcert or sslkey';
    expect(source?.message).toMatch(/^cannot connect to source PostgreSQL at /);
    expect(source?.message).toContain(`${hint} in the connection URL`);
    expect(destination?.message).toMatch(/^cannot connect to destination PostgreSQL at /);
    expect(destination?.message).toContain(`${hint} in the connection URL`);
    expect(auditLog?.message).toMatch(/^cannot connect to the audit log of connection "warehouse" /);
    expect(auditLog?.message).toContain(`${hint} in the connection URL`);
    expect(store?.message).toMatch(/^store PostgreSQL at .* cannot be reached: /);
    expect(store?.message).toContain(`${hint} in the store URL`);
  });
});

describe('TLS modes of a PostgreSQL URL', () => {
  it('asks for TLS under sslmode=prefer, require and verify-ca, checking the certificate, with no warning of the driver printed into the logs', async () => {
    // The driver warns once per process, on stderr, that these modes will mean libpq's in its next major version.
    const warnings: string[] = [];
    const listener = (warning: Error) => warnings.push(warning.message);
    process.on('warning', listener);
    const base = await createTestDatabase('lockstep_tlsmodes');
    const registry = createConnectorRegistry();
    const failure = (opening: Promise<unknown>) =>
      opening.then(
        () => null,
        (thrown: unknown) => thrown as Error,
      );
    try {
      for (const mode of ['prefer', 'require', 'verify-ca']) {
        const url = `${base}?sslmode=${mode}&application_name=lockstep-tls`;
        const def = { slug: 'warehouse', type: 'postgres', settings: { url } };
        // The test server takes no TLS: each one fails, none falls back to a plain connection.
        const noTls = /the server does not take TLS connections/;
        expect((await failure(registry.openSource(resolveConnection(def, 'source', '/tmp', {}))))?.message).toMatch(noTls);
        expect((await failure(registry.openDestination(resolveConnection(def, 'destination', '/tmp', {}))))?.message).toMatch(noTls);
        const auditLog = PostgresAuditLog.open({ url, schema: 'lockstep_audit', connection: 'warehouse', timeouts: { connectMs: 5000, statementMs: 5000 } });
        expect((await failure(auditLog))?.message).toMatch(noTls);
        expect((await failure(PostgresStore.exists({ url })))?.message).toMatch(noTls);
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', listener);
    }
  });

  it('gives the driver prefer, require and verify-ca as verify-full, its meaning of them, and leaves a URL asking for libpq\'s meanings as it is', () => {
    expect(postgresDriverUrl('postgres://u:p@db:5432/wh?sslmode=require&application_name=x')).toBe('postgres://u:p@db:5432/wh?sslmode=verify-full&application_name=x');
    expect(postgresDriverUrl('postgres://db/wh?sslmode=prefer')).toBe('postgres://db/wh?sslmode=verify-full');
    expect(postgresDriverUrl('postgres://db/wh?sslrootcert=%2Fca.pem&sslmode=verify-ca')).toBe('postgres://db/wh?sslrootcert=%2Fca.pem&sslmode=verify-full');
    for (const kept of ['postgres://db/wh', 'postgres://db/wh?sslmode=disable', 'postgres://db/wh?sslmode=no-verify', 'postgres://db/wh?sslmode=verify-full', 'postgres://db/wh?uselibpqcompat=true&sslmode=require']) {
      expect(postgresDriverUrl(kept)).toBe(kept);
    }
  });
});

describe('MySQL connection hints', () => {
  it('names the ssl parameter to add when the server takes only TLS connections (require_secure_transport), not the server being down', () => {
    const refused = Object.assign(new Error('Connections using insecure transport are prohibited while --require_secure_transport=ON.'), {
      errno: 3159,
      code: 'ER_SECURE_TRANSPORT_REQUIRED',
    });
    expect(mysqlConnectionHint(refused)).toBe(
      'the server takes only TLS connections (require_secure_transport): add ssl={"rejectUnauthorized":true} to the connection URL, ' +
        'percent-encoded: ?ssl=%7B%22rejectUnauthorized%22%3Atrue%7D',
    );
  });
});

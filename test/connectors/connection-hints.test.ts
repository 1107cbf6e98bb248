/**
 * What a failed PostgreSQL connection tells the user to do, for the failures pg reports without a
 * SQLSTATE: a server that takes no TLS, a certificate that is not trusted.
 */
import { describe, expect, it } from 'vitest';
import { postgresConnectionHint } from '../../src/connectors/sql.js';
import { postgresTlsHint } from '../../src/core/connections.js';

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
});

/**
 * The v1 `configuration` of a source or destination never holds a secret: the secrets of its kind
 * hidden, every setting of a kind the build does not know hidden, and passwords in any URL.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { ConnectorRegistry } from '../../src/core/connector-registry.js';
import { silentLogger } from '../../src/core/logger.js';
import type { ConnectionRecord } from '../../src/core/workspace.js';
import { hightouchConfiguration, hightouchDestination } from '../../src/api/views.js';
import { httpConnector } from '../../src/connectors/http/kind.js';
import { sqliteConnector } from '../../src/connectors/sqlite/kind.js';

const registry = () =>
  new ConnectorRegistry({ clock: systemClock, logger: silentLogger, createRateLimiter: () => ({ acquire: async () => undefined }) as never })
    .register(sqliteConnector)
    .register(httpConnector);

const connection = (type: string, settings: Record<string, unknown>): ConnectionRecord => ({ slug: 'c', type, settings, id: 7, createdAt: 0, updatedAt: 0, origin: 'file' });

describe('Hightouch configuration of a connection', () => {
  it('hides the secrets of its kind and keeps the rest', () => {
    const config = hightouchConfiguration(
      connection('http', { url: 'https://user:hunter2@api.example.com/v1?token=abc', headers: { Authorization: 'Bearer s3cret', 'X-Env': '${ENV_NAME}' }, requestsPerSecond: 5 }),
      registry(),
    );
    expect(JSON.stringify(config)).not.toMatch(/hunter2|s3cret|abc/);
    expect(config).toMatchObject({ url: 'https://user:***@api.example.com/v1?token=***', headers: { Authorization: '***', 'X-Env': '${ENV_NAME}' }, requestsPerSecond: 5 });
    expect(hightouchConfiguration(connection('sqlite', { path: 'crm.db' }), registry())).toEqual({ path: 'crm.db' });
  });

  it('hides every setting of a kind this build does not know, and any URL password among known kinds', () => {
    const unknown = hightouchConfiguration(connection('oracle', { password: 'p4ss', host: 'db.example.com', port: 1521, dsn: 'oracle://u:p4ss@db' }), registry());
    expect(JSON.stringify(unknown)).not.toContain('p4ss');
    expect(unknown).toEqual({ password: '***', host: '***', port: '***', dsn: 'oracle://u:***@db' });
    // A non-secret setting holding a URL with a password still shows none.
    expect(hightouchConfiguration(connection('sqlite', { path: 'file:crm.db', mirror: 'https://u:pw@example.com/x' }), registry())).toEqual({ path: 'file:crm.db', mirror: 'https://u:***@example.com/x' });
  });

  it('a destination lists the syncs writing to it', () => {
    expect(hightouchDestination(connection('sqlite', { path: 'crm.db' }), [1, 3], registry())).toEqual({
      id: 7,
      name: 'c',
      slug: 'c',
      workspaceId: 1,
      createdAt: '1970-01-01T00:00:00.000Z',
      updatedAt: '1970-01-01T00:00:00.000Z',
      type: 'sqlite',
      configuration: { path: 'crm.db' },
      syncs: [1, 3],
    });
  });
});

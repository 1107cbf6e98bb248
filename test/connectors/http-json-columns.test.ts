/**
 * JSON columns of database sources (PostgreSQL json and jsonb, MySQL JSON, DuckDB STRUCT and LIST)
 * written to the HTTP destination through the engine, with either planner: templates see the JSON value (`row.payload.id`,
 * `{{ row.payload | json }}` writes the object), and the default body carries it as JSON, not as a
 * string holding JSON. A number a double cannot hold keeps its digits.
 */
import { createServer } from 'node:http';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { httpConnector } from '../../src/connectors/http/index.js';
import type { ConnectionDef } from '../../src/core/workspace.js';
import { model, source, sync, workspace } from '../helpers/definitions.js';
import { startHarness, tempDir } from '../helpers/harness.js';
import { createTestMysqlDatabase, mysqlSql } from '../helpers/mysql.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A receiver keeping each request's path and body. */
async function receiver(): Promise<{ url: string; bodies: Map<string, string[]> }> {
  const bodies = new Map<string, string[]>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('/')[1] ?? '';
      bodies.set(path, [...(bodies.get(path) ?? []), Buffer.concat(chunks).toString('utf8')]);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, bodies };
}

async function duckdbFile(path: string, ddl: string): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    await connection.run(ddl);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

const TEMPLATE = '{"id": {{ row.id }}, "payload": {{ row.payload | json }}, "first": {{ row.payload.id | json }}, "tags": {{ row.tags | json }}}';

describe('http destination: JSON columns of database sources', () => {
  it('gives templates and the default body the JSON value of PostgreSQL, MySQL and DuckDB JSON columns', async () => {
    const pg = await createTestDatabase('http_json');
    const my = await createTestMysqlDatabase('http_json');
    const dir = tempDir();
    await sql(pg, `create table docs (id int primary key, payload jsonb, tags json); insert into docs values (1, '{"id": 7, "name": "é"}', '["a", "b"]'), (2, null, null), (3, '{"id": 12345678901234567890}', '[1]')`);
    await mysqlSql(my, `create table docs (id int primary key, payload json, tags json); insert into docs values (1, '{"id": 7, "name": "é"}', '["a", "b"]'), (2, null, null)`);
    await duckdbFile(join(dir, 'w.duckdb'), `create table docs as select 1 as id, {'id': 7, 'name': 'é'} as payload, ['a', 'b'] as tags`);
    const api = await receiver();
    const registry = createConnectorRegistry();
    if (!registry.kind('http')) registry.register(httpConnector);
    const sources: ConnectionDef[] = [
      source('pg', { type: 'postgres', settings: { url: pg } }),
      source('pgw', { type: 'postgres', settings: { url: pg, planner: 'warehouse' } }),
      source('my', { type: 'mysql', settings: { url: my } }),
      source('duck', { type: 'duckdb', settings: { path: 'w.duckdb' } }),
    ];
    const h = await startHarness({
      dir,
      connectors: () => registry,
      definition: workspace({
        sources,
        destinations: [source('api', { type: 'http', settings: { url: api.url } })],
        models: [
          ...['pg', 'pgw', 'my', 'duck'].map((s) => model(s, s, 'select id, payload, tags from docs')),
          model('pg-one', 'pg', 'select id, payload, tags from docs where id = 1'),
        ],
        syncs: [
          ...['pg', 'pgw', 'my', 'duck'].flatMap((s) => [
            sync(`${s}-template`, { model: s, destination: 'api', object: `/${s}-template/{{ row.id }}`, settings: { body: TEMPLATE } }),
            sync(`${s}-default`, { model: s, destination: 'api', object: `/${s}-default`, batchSize: 10 }),
          ]),
          // A template that writes the value bare, as it wrote the JSON text before: it still writes JSON.
          sync('pg-bare', { model: 'pg-one', destination: 'api', object: '/pg-bare/{{ row.id }}', settings: { body: '{"id": {{ row.id }}, "payload": {{ row.payload }}, "tags": {{ row.tags }}}' } }),
        ],
      }),
    });
    await using _ = h;
    for (const slug of ['pg-template', 'pg-default', 'pgw-template', 'pgw-default', 'my-template', 'my-default', 'duck-template', 'duck-default', 'pg-bare']) {
      const { run } = await h.app.runs.triggerSync(slug);
      const done = await h.app.runs.waitForSyncRun(run.id);
      expect({ slug, status: done.status, error: done.error }).toEqual({ slug, status: 'success', error: null });
    }
    const sorted = (bodies: string[] | undefined) => (bodies ?? []).map((b) => JSON.parse(b) as { id: number }).sort((a, b) => a.id - b.id);
    const one = { id: 1, payload: { id: 7, name: 'é' }, first: 7, tags: ['a', 'b'] };
    const two = { id: 2, payload: null, first: null, tags: null };
    expect(sorted(api.bodies.get('pg-template')).slice(0, 2)).toEqual([one, two]);
    expect(sorted(api.bodies.get('pgw-template')).slice(0, 2)).toEqual([one, two]);
    expect(sorted(api.bodies.get('my-template'))).toEqual([one, two]);
    expect(sorted(api.bodies.get('duck-template'))).toEqual([one]);
    expect(sorted(api.bodies.get('pg-bare'))).toEqual([{ id: 1, payload: { id: 7, name: 'é' }, tags: ['a', 'b'] }]);
    const records = (s: string) => (JSON.parse(api.bodies.get(`${s}-default`)?.[0] ?? '{}') as { records: Array<{ id: number }> }).records.sort((a, b) => a.id - b.id);
    const rows = [
      { id: 1, payload: { id: 7, name: 'é' }, tags: ['a', 'b'] },
      { id: 2, payload: null, tags: null },
    ];
    expect(records('pg').slice(0, 2)).toEqual(rows);
    expect(records('pgw').slice(0, 2)).toEqual(rows);
    expect(records('my')).toEqual(rows);
    expect(records('duck')).toEqual(rows.slice(0, 1));
    // A number a double cannot hold keeps its digits: that value stays its JSON text.
    expect(api.bodies.get('pg-default')?.[0]).toContain('"payload":"{\\"id\\":12345678901234567890}"');
  });
});

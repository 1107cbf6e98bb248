/**
 * Lockstep's own API, through a real server on a real store with real runs: CRUD round-trips and
 * validation errors named by field, runs, cancel and rejected rows, API entities living next to
 * `apply`, live events, the OpenAPI document, auth and secrets.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { createApiServer } from '../../src/api/server.js';
import { silentLogger } from '../../src/core/logger.js';
import { runMain } from '../cli/cli-helpers.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { eventually, hierarchyWorkspace, PG_PASSWORD, startApi, type ApiHarness } from './api-helpers.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

const sequenceBody = {
  slug: 'accounts-then-contacts',
  name: 'Accounts then contacts',
  schedule: { type: 'interval', unit: 'hour', quantity: 2 },
  members: [{ sync: 'accounts-to-crm' }, { sync: 'contacts-to-crm', terminate: 'never' }],
};

async function finishedSequence(id: string) {
  return eventually(async () => {
    const { body } = await api.call('GET', `/api/sequence-runs/${id}`);
    return ['done', 'failed', 'cancelled'].includes(body.status) ? body : null;
  });
}

describe('session and workspace', () => {
  it('GET /api/session needs no token', async () => {
    expect((await api.call('GET', '/api/session', undefined, { auth: false })).body).toEqual({ authRequired: true });
  });

  it('GET /api/workspace has every section, with ids, origins, and connection passwords redacted', async () => {
    const { status, body, text } = await api.call('GET', '/api/workspace');
    expect(status).toBe(200);
    expect(Object.keys(body)).toEqual(['sources', 'destinations', 'models', 'syncs', 'sequences']);
    expect(body.syncs[0]).toMatchObject({ id: 1, slug: 'accounts-to-crm', origin: 'file', mode: 'upsert' });
    expect(body.destinations.find((d: { slug: string }) => d.slug === 'pg').url).toBe('postgres://lockstep:***@db.example.com:5432/crm');
    expect(text).not.toContain(PG_PASSWORD);
    expect((await api.call('GET', '/api/destinations/pg')).text).not.toContain(PG_PASSWORD);
    // Times are whole epoch milliseconds (the store keeps the clock's fractions of one).
    const sections = Object.values(body) as Array<Array<{ createdAt: number; updatedAt: number }>>;
    for (const entity of sections.flat()) expect([entity.createdAt, entity.updatedAt].every(Number.isInteger)).toBe(true);
    const sync = (await api.call('GET', '/api/syncs/accounts-to-crm')).body as { createdAt: number };
    expect(Number.isInteger(sync.createdAt)).toBe(true);
  });
});

describe('CRUD', () => {
  it('creates, reads, replaces, enables and deletes a sequence; the scheduler sees it', async () => {
    const created = await api.call('POST', '/api/sequences', sequenceBody);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      slug: 'accounts-then-contacts',
      origin: 'api',
      enabled: true,
      concurrency: 4,
      schedule: { type: 'interval', unit: 'hour', quantity: 2, startAt: null, catchupWindowSeconds: 3600 },
      members: [
        { key: 'accounts-to-crm', sync: 'accounts-to-crm', terminate: 'on_fatal', rejectedThreshold: { count: 0 }, after: null },
        { key: 'contacts-to-crm', sync: 'contacts-to-crm', terminate: 'never', after: null },
      ],
    });
    expect(created.body.warning).toBeUndefined();
    expect((await api.call('GET', '/api/sequences/accounts-then-contacts')).body).toEqual(created.body);
    expect((await api.call('POST', '/api/sequences', sequenceBody)).status).toBe(409);

    const replaced = await api.call('PUT', '/api/sequences/accounts-then-contacts', { ...sequenceBody, slug: undefined, concurrency: 2 });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ id: created.body.id, concurrency: 2, origin: 'api' });

    const disabled = await api.call('PATCH', '/api/sequences/accounts-then-contacts', { enabled: false });
    expect(disabled.body.enabled).toBe(false);
    expect(api.app.scheduler.nextWakeUp('sequence:accounts-then-contacts')).toBeNull();
    await api.call('PATCH', '/api/sequences/accounts-then-contacts', { enabled: true });
    await api.app.scheduler.reload();
    expect((await api.call('GET', '/api/sequences')).body.map((s: { slug: string }) => s.slug)).toContain('accounts-then-contacts');

    expect((await api.call('DELETE', '/api/sequences/accounts-then-contacts')).status).toBe(204);
    expect((await api.call('GET', '/api/sequences/accounts-then-contacts')).status).toBe(404);
  });

  it('refuses bad bodies with 422 naming each field, the way lockstep validate words it', async () => {
    const bad = await api.call('POST', '/api/sequences', {
      slug: 'Bad Slug',
      members: [{ sync: 'accounts-to-crm' }, { sync: 'contact-to-crm', terminate: 'sometimes' }],
      schedule: { type: 'cron', expression: '99 * * * *' },
      colour: 'blue',
    });
    expect(bad.status).toBe(422);
    expect(bad.body.message).toBe('Validation failed');
    expect(bad.body.details).toMatchObject({
      slug: expect.stringContaining('invalid slug'),
      'members[1].sync': expect.stringContaining('unknown sync "contact-to-crm" (did you mean "contacts-to-crm"?)'),
      'members[1].terminate': expect.stringContaining('sometimes'),
      'schedule.expression': expect.any(String),
      colour: expect.stringContaining('unknown key "colour"'),
    });
    const cycle = await api.call('POST', '/api/sequences', {
      slug: 'loop',
      members: [
        { sync: 'accounts-to-crm', key: 'a', after: ['b'] },
        { sync: 'contacts-to-crm', key: 'b', after: ['a'] },
      ],
    });
    expect(cycle.status).toBe(422);
    expect(Object.values(cycle.body.details).join(' ')).toContain('cycle');
    expect((await api.call('POST', '/api/syncs', 'not an object')).body.details).toEqual({ body: expect.any(String) });
    expect((await api.call('POST', '/api/syncs', undefined, { raw: '{"slug": ' })).body.details).toEqual({ body: expect.stringContaining('JSON') });
    expect((await api.call('PUT', '/api/syncs/accounts-to-crm', { slug: 'other', model: 'accounts', destination: 'crm', object: 'accounts', mode: 'upsert' })).body.details).toEqual({
      slug: expect.stringContaining('cannot be changed'),
    });
  });

  it('creates an HTTP destination and a sync with its kind settings; header secrets hidden and kept, settings checked by kind', async () => {
    const created = await api.call('POST', '/api/destinations', {
      slug: 'hooks',
      type: 'http',
      url: 'https://api.example.com/v1',
      headers: { Authorization: 'Bearer s3cret-token', 'X-Tenant': 'acme' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ slug: 'hooks', type: 'http', headers: { Authorization: '***', 'X-Tenant': '***' } });
    expect(created.text).not.toContain('s3cret-token');
    const back = await api.call('PUT', '/api/destinations/hooks', { ...created.body, concurrency: 2 });
    expect(back.status).toBe(200);
    const stored = await api.app.store.getDestination('hooks');
    expect(stored?.settings).toMatchObject({ headers: { Authorization: 'Bearer s3cret-token' }, concurrency: 2 });

    const wrong = await api.call('POST', '/api/destinations', { slug: 'hooks2', type: 'htp', url: 'https://x' });
    expect(wrong.status).toBe(422);
    expect(wrong.body.details.type).toContain('did you mean "http"');

    const sync = await api.call('POST', '/api/syncs', { slug: 'accounts-to-hooks', model: 'accounts', destination: 'hooks', object: '/accounts', mode: 'upsert', method: 'PUT', batchSize: 1 });
    expect(sync.status, JSON.stringify(sync.body)).toBe(201);
    expect(sync.body).toMatchObject({ method: 'PUT', batchSize: 1 });
    expect((await api.app.store.getSync('accounts-to-hooks'))?.settings).toEqual({ method: 'PUT' });
    const bad = await api.call('POST', '/api/syncs', { slug: 'accounts-to-hooks2', model: 'accounts', destination: 'hooks', object: '/a', mode: 'upsert', metod: 'PUT' });
    expect(bad.status).toBe(422);
    expect(bad.body.details.metod).toContain('did you mean "method"');
    expect((await api.call('DELETE', '/api/syncs/accounts-to-hooks')).status).toBe(204);
    expect((await api.call('DELETE', '/api/destinations/hooks')).status).toBe(204);
  });

  it('creates a source, model and sync through the API; a redacted url sent back keeps the password', async () => {
    const source = await api.call('POST', '/api/sources', { slug: 'other-warehouse', type: 'postgres', url: 'postgres://me:hunter22@wh.example.com/db' });
    expect(source.status).toBe(201);
    expect(source.body.url).toBe('postgres://me:***@wh.example.com/db');
    const back = await api.call('PUT', '/api/sources/other-warehouse', { ...source.body });
    expect(back.status).toBe(200);
    expect((await api.app.store.getSource('other-warehouse'))?.settings.url).toBe('postgres://me:hunter22@wh.example.com/db');
    // Read, edited around its hidden parts, sent back: the password still hidden is the stored one, not `***`.
    const edited = await api.call('PUT', '/api/sources/other-warehouse', { ...source.body, url: 'postgres://me:***@wh.example.com/db2' });
    expect(edited.status).toBe(200);
    expect((await api.app.store.getSource('other-warehouse'))?.settings.url).toBe('postgres://me:hunter22@wh.example.com/db2');
    await api.call('PUT', '/api/sources/other-warehouse', { ...source.body, url: 'postgres://me:***@wh.example.com/db?password=s3cond&sslmode=require' });
    await api.call('PUT', '/api/sources/other-warehouse', { ...source.body, url: 'postgres://me:***@wh.example.com/db?sslmode=verify-full&password=***' });
    expect((await api.app.store.getSource('other-warehouse'))?.settings.url).toBe('postgres://me:hunter22@wh.example.com/db?sslmode=verify-full&password=s3cond');
    // Another host: the stored password does not go there; it is typed again.
    const moved = await api.call('PUT', '/api/sources/other-warehouse', { ...source.body, url: 'postgres://me:***@wh2.example.com/db' });
    expect(moved.status).toBe(422);
    expect((await api.call('PUT', '/api/sources/other-warehouse', { ...source.body, url: 'postgres://me:hunter22@wh2.example.com/db' })).status).toBe(200);
    await api.call('POST', '/api/models', { slug: 'leads', source: 'other-warehouse', query: 'select id from leads', primaryKey: 'id' });
    const sync = await api.call('POST', '/api/syncs', { slug: 'leads-to-crm', model: 'leads', destination: 'crm', object: 'leads', mode: 'insert' });
    expect(sync.body).toMatchObject({ model: 'leads', mode: 'insert', deleteBehavior: 'ignore', batchSize: 1000, mappings: [], schedule: { type: 'manual' } });
    const inUse = await api.call('DELETE', '/api/models/leads');
    expect(inUse.status).toBe(409);
    expect(inUse.body.message).toContain('sync "leads-to-crm"');
    for (const [kind, slug] of [['syncs', 'leads-to-crm'], ['models', 'leads'], ['sources', 'other-warehouse']]) {
      expect((await api.call('DELETE', `/api/${kind}/${slug}`)).status).toBe(204);
    }
  });

  it('takes back what it answered: every entity read from the API can be written back unchanged', async () => {
    const { body } = await api.call('GET', '/api/workspace');
    for (const [plural, entities] of Object.entries(body) as Array<[string, Array<{ slug: string; updatedAt: number }>]>) {
      for (const entity of entities) {
        const written = await api.call('PUT', `/api/${plural}/${entity.slug}`, entity);
        expect(written.status, `${plural}/${entity.slug}: ${written.text}`).toBe(200);
        expect({ ...written.body, updatedAt: entity.updatedAt, warning: undefined }).toEqual({ ...entity, warning: undefined });
      }
    }
  });

  it('turns a sync\'s mass-delete guard off with maxDeletePercent: null, and takes the sync back as it answered it, the guard still off', async () => {
    const { body: sync } = await api.call('GET', '/api/syncs/workspaces-to-crm');
    const off = await api.call('PUT', '/api/syncs/workspaces-to-crm', { ...sync, maxDeletePercent: null });
    expect(off.status, off.text).toBe(200);
    expect(off.body.maxDeletePercent).toBeNull();
    expect((await api.app.store.getSync('workspaces-to-crm'))?.maxDeletePercent).toBeNull();
    const again = await api.call('PUT', '/api/syncs/workspaces-to-crm', off.body);
    expect(again.body.maxDeletePercent).toBeNull();
    // Left out, it is the default.
    const { maxDeletePercent: _left, ...rest } = again.body as Record<string, unknown>;
    expect((await api.call('PUT', '/api/syncs/workspaces-to-crm', rest)).body.maxDeletePercent).toBe(50);
  });

  it('deleting a sync that a sequence uses is a 409 naming the sequence', async () => {
    const { status, body } = await api.call('DELETE', '/api/syncs/contacts-to-crm');
    expect(status).toBe(409);
    expect(body.message).toContain('sequence "crm-hierarchy"');
    expect(await api.app.store.getSync('contacts-to-crm')).not.toBeNull();
  });
});

describe('next due times', () => {
  it("says when a sync's or sequence's schedule next fires, in its timezone; null when manual, triggered or disabled", async () => {
    // The day before Europe/Berlin moves its clocks forward at 02:00.
    await using berlin = await startApi({ clock: new FakeClock('2026-03-28T12:00:00Z') });
    const put = async (plural: string, slug: string, schedule: unknown, enabled = true) => {
      const { body: current } = await berlin.call('GET', `/api/${plural}/${slug}`);
      const written = await berlin.call('PUT', `/api/${plural}/${slug}`, { ...current, schedule, enabled });
      expect(written.status, written.text).toBe(200);
      return written.body;
    };
    // 02:30 does not happen on the 29th: it fires at the jump, 03:00 CEST.
    expect((await put('sequences', 'crm-hierarchy', { type: 'cron', expression: '30 2 * * *', timezone: 'Europe/Berlin' })).nextDueAt).toBe('2026-03-29T01:00:00.000Z');
    expect((await put('syncs', 'accounts-to-crm', { type: 'recurrence', days: ['sunday'], times: ['09:00'], timezone: 'Europe/Berlin' })).nextDueAt).toBe(
      '2026-03-29T07:00:00.000Z',
    );
    expect((await put('syncs', 'workspaces-to-crm', { type: 'interval', unit: 'hour', quantity: 6 })).nextDueAt).toBe('2026-03-28T18:00:00.000Z');
    expect((await put('syncs', 'contacts-to-crm', { type: 'after', sync: 'accounts-to-crm' })).nextDueAt).toBeNull();
    const { body: workspace } = await berlin.call('GET', '/api/workspace');
    expect(Object.fromEntries(workspace.syncs.map((s: { slug: string; nextDueAt: string | null }) => [s.slug, s.nextDueAt]))).toEqual({
      'accounts-to-crm': '2026-03-29T07:00:00.000Z',
      'workspaces-to-crm': '2026-03-28T18:00:00.000Z',
      'contacts-to-crm': null,
    });
    expect((await berlin.call('GET', '/api/sequences')).body[0].nextDueAt).toBe('2026-03-29T01:00:00.000Z');
    expect((await put('syncs', 'workspaces-to-crm', { type: 'interval', unit: 'hour', quantity: 6 }, false)).nextDueAt).toBeNull();
    expect((await put('syncs', 'workspaces-to-crm', { type: 'manual' })).nextDueAt).toBeNull();
  });
});

describe('API entities and apply', () => {
  it('apply keeps what the API created, takes over a slug a file declares, and editing a file entity warns', async () => {
    await api.call('POST', '/api/models', { slug: 'api-model', source: 'warehouse', query: 'select 1 as id', primaryKey: 'id' });
    const edited = await api.call('PUT', '/api/models/accounts', { source: 'warehouse', query: 'select id, name from accounts where id > 0', primaryKey: ['id'] });
    expect(edited.body.origin).toBe('file');
    expect(edited.body.warning).toContain('next `lockstep apply` will overwrite');
    const toggled = await api.call('PATCH', '/api/syncs/accounts-to-crm', { enabled: false });
    expect(toggled.body.warning).toContain('managed by the workspace files');

    const definition = hierarchyWorkspace(api.dir);
    const plan = await api.app.store.planWorkspace(definition);
    expect(plan).toEqual(
      expect.arrayContaining([
        { action: 'update', kind: 'model', slug: 'accounts', fields: ['query'] },
        { action: 'update', kind: 'sync', slug: 'accounts-to-crm', fields: ['enabled'] },
      ]),
    );
    expect(plan.some((c) => c.slug === 'api-model')).toBe(false);
    await api.app.store.applyWorkspace(definition, Date.now());
    expect((await api.call('GET', '/api/models/api-model')).body.origin).toBe('api');
    expect((await api.call('GET', '/api/models/accounts')).body.query).toBe('select id, name from accounts');

    definition.models.push({ slug: 'api-model', source: 'warehouse', query: 'select 2 as id', primaryKey: ['id'] });
    expect(await api.app.store.planWorkspace(definition)).toEqual([{ action: 'update', kind: 'model', slug: 'api-model', fields: ['query', 'origin'] }]);
    await api.app.store.applyWorkspace(definition, Date.now());
    expect((await api.call('GET', '/api/models/api-model')).body).toMatchObject({ origin: 'file', query: 'select 2 as id' });
  });
});

describe('runs', () => {
  it('records a run started from the web UI as manual, and one from any other client as api', async () => {
    const fromUi = await fetch(`${api.url}/api/sequences/crm-hierarchy/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api.token}`, 'x-lockstep-client': 'web' },
    });
    expect(fromUi.status).toBe(202);
    const uiRun = (await fromUi.json()) as { id: string; trigger: string; triggerDetail: string | null };
    expect(uiRun).toMatchObject({ trigger: 'manual', triggerDetail: 'web UI' });
    // Wait for it: a trigger while it is still queued would join it instead of starting a run of its own.
    await api.app.runs.waitForSequenceRun(uiRun.id);
    const fromScript = await api.call('POST', '/api/sequences/crm-hierarchy/runs');
    expect(fromScript.body).toMatchObject({ trigger: 'api', triggerDetail: 'api' });
    await api.app.runs.waitForSequenceRun(fromScript.body.id);
    // Its members' sync runs say what started them too.
    const members = (await api.call('GET', `/api/sequence-runs/${fromScript.body.id}`)).body as { members: Array<{ syncRun: { trigger: string; triggerDetail: string | null } | null }> };
    for (const member of members.members) expect(member.syncRun).toMatchObject({ trigger: expect.any(String), triggerDetail: expect.toBeOneOf([null, expect.any(String)]) });
  });

  it('refuses a sync run asked for both fullResync and resetCDC, and queues nothing', async () => {
    const before = await api.app.store.listSyncRuns({ limit: 100, offset: 0, order: 'desc' });
    const both = await api.call('POST', '/api/syncs/contacts-to-crm/runs', { fullResync: true, resetCDC: true });
    expect(both.status).toBe(422);
    expect(both.body.details.resetCDC).toMatch(/fullResync sends every row, resetCDC sends none/);
    expect(await api.app.store.listSyncRuns({ limit: 100, offset: 0, order: 'desc' })).toEqual(before);
  });

  it('runs a sync alone (rejected rows, with reasons and paging), then the sequence (done), and lists runs', async () => {
    const first = await api.call('POST', '/api/syncs/contacts-to-crm/runs', {});
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ sync: 'contacts-to-crm', trigger: 'api' });
    const run = await eventually(async () => {
      const { body } = await api.call('GET', `/api/sync-runs/${first.body.id}`);
      return body.finishedAt ? body : null;
    });
    if (run.status === 'warning') {
      const rejected = await api.call('GET', `/api/sync-runs/${run.id}/rejected-rows?limit=5`);
      expect(rejected.body.hasMore).toBe(true);
      expect(rejected.body.data).toHaveLength(5);
      expect(rejected.body.data[0]).toEqual({ key: [expect.any(Number)], op: 'added', reason: expect.stringMatching(/FOREIGN KEY/i) });
      expect((await api.call('GET', `/api/sync-runs/${run.id}/rejected-rows?offset=10&limit=100`)).body.hasMore).toBe(false);
    } else {
      expect(run.status).toBe('success'); // the CRM already had its parents from an earlier test
    }

    const started = await api.call('POST', '/api/sequences/crm-hierarchy/runs');
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ sequence: 'crm-hierarchy', status: 'pending', members: expect.any(Array) });
    const done = await finishedSequence(started.body.id);
    expect(done.status).toBe('done');
    expect(done.members.every((m: { syncRun: unknown }) => m.syncRun !== null)).toBe(true);

    const list = await api.call('GET', '/api/sequences/crm-hierarchy/runs?status=done,failed&limit=1');
    expect(list.body.data[0].id).toBe(started.body.id);
    const syncRuns = await api.call('GET', `/api/syncs/contacts-to-crm/runs?status=success,warning&after=2000-01-01T00:00:00Z`);
    expect(syncRuns.body.data.length).toBeGreaterThanOrEqual(2);
    expect(syncRuns.body.data[0]).toMatchObject({ sync: 'contacts-to-crm', syncId: 3 });
    const bad = await api.call('GET', '/api/syncs/contacts-to-crm/runs?status=done&limit=500');
    expect(bad.status).toBe(422);
    expect(Object.keys(bad.body.details).sort()).toEqual(['limit', 'status']);
  });

  it('names the sync and the sequence of runs after both were deleted, by the slugs they ran as, marked deleted', async () => {
    expect((await api.call('POST', '/api/syncs', { slug: 'accounts-again', model: 'accounts', destination: 'crm', object: 'accounts', mode: 'upsert' })).status).toBe(201);
    expect((await api.call('POST', '/api/sequences', { slug: 'accounts-only', name: 'Accounts only', members: [{ sync: 'accounts-again' }] })).status).toBe(201);
    const started = await api.call('POST', '/api/sequences/accounts-only/runs');
    const done = await finishedSequence(started.body.id);
    expect(done.status).toBe('done');
    expect(done).toMatchObject({ sequence: 'accounts-only', sequenceSlug: 'accounts-only', sequenceDeleted: false, concurrency: 4, deadlineMinutes: null });
    // The run shows the rules it ran with.
    expect(done.members[0]).toMatchObject({
      sync: 'accounts-again',
      syncSlug: 'accounts-again',
      syncDeleted: false,
      terminate: 'on_fatal',
      rejectedThreshold: { count: 0 },
      timeoutMinutes: null,
    });
    const syncRunId = done.members[0].syncRunId as number;
    expect((await api.call('DELETE', '/api/sequences/accounts-only')).status).toBe(204);
    expect((await api.call('DELETE', '/api/syncs/accounts-again')).status).toBe(204);

    // `sync` and `sequence` name what is live (null once deleted); the slugs the runs ran as stay.
    expect((await api.call('GET', `/api/sync-runs/${syncRunId}`)).body).toMatchObject({ id: syncRunId, sync: null, syncSlug: 'accounts-again', syncDeleted: true });
    const after = (await api.call('GET', `/api/sequence-runs/${started.body.id}`)).body;
    expect(after).toMatchObject({ sequence: null, sequenceSlug: 'accounts-only', sequenceDeleted: true });
    expect(after.members[0]).toMatchObject({ key: 'accounts-again', sync: null, syncSlug: 'accounts-again', syncDeleted: true });
    const live = (await api.call('GET', '/api/syncs/accounts-to-crm/runs?limit=1')).body.data[0];
    expect(live).toMatchObject({ sync: 'accounts-to-crm', syncSlug: 'accounts-to-crm', syncDeleted: false });

    // The routes by slug answer 404 for what is gone, saying it was deleted and where its runs are.
    for (const [method, path] of [
      ['GET', '/api/syncs/accounts-again/runs'],
      ['POST', '/api/syncs/accounts-again/runs'],
      ['GET', '/api/syncs/accounts-again'],
    ] as const) {
      const gone = await api.call(method, path);
      expect(gone.status, `${method} ${path}`).toBe(404);
      expect(gone.body.message).toBe(
        'no sync "accounts-again" in the workspace: it was deleted — its runs stay in the history, listed by `lockstep runs --sync accounts-again`',
      );
    }
    const goneSequence = await api.call('GET', '/api/sequences/accounts-only/runs');
    expect(goneSequence.status).toBe(404);
    expect(goneSequence.body.message).toBe(
      'no sequence "accounts-only" in the workspace: it was deleted — its runs stay in the history, listed by `lockstep runs --sequence accounts-only`',
    );
    expect((await api.call('POST', '/api/sequences/accounts-only/plan')).body.message).toContain('it was deleted');
    // A slug nothing ever had is a bare "not in the workspace".
    expect((await api.call('GET', '/api/syncs/never-declared/runs')).body.message).toBe('no sync "never-declared" in the workspace');
  });

  it('a misspelt slug gets the closest one suggested, on every route that takes one', async () => {
    for (const [method, path, body, message] of [
      ['GET', '/api/syncs/acounts-to-crm', undefined, 'no sync "acounts-to-crm" in the workspace (did you mean "accounts-to-crm"?)'],
      ['POST', '/api/syncs/acounts-to-crm/runs', undefined, 'no sync "acounts-to-crm" in the workspace (did you mean "accounts-to-crm"?)'],
      ['GET', '/api/syncs/acounts-to-crm/runs', undefined, 'no sync "acounts-to-crm" in the workspace (did you mean "accounts-to-crm"?)'],
      ['POST', '/api/sequences/crm-hierachy/runs', undefined, 'no sequence "crm-hierachy" in the workspace (did you mean "crm-hierarchy"?)'],
      ['GET', '/api/sources/warehuose', undefined, 'no source "warehuose" in the workspace (did you mean "warehouse"?)'],
      ['DELETE', '/api/destinations/crmm', undefined, 'no destination "crmm" in the workspace (did you mean "crm"?)'],
      ['GET', '/api/models/acounts', undefined, 'no model "acounts" in the workspace (did you mean "accounts"?)'],
      // The Hightouch-compatible triggers by slug, as curl users of Hightouch's docs send them.
      ['POST', '/api/v1/syncs/trigger', { syncSlug: 'acounts-to-crm' }, 'no sync "acounts-to-crm" in the workspace (did you mean "accounts-to-crm"?)'],
      ['POST', '/api/v1/sync-sequences/crm-hierachy/trigger', undefined, 'no sequence "crm-hierachy" in the workspace (did you mean "crm-hierarchy"?)'],
    ] as const) {
      const answer = await api.call(method, path, body);
      expect(answer.status, `${method} ${path}`).toBe(404);
      expect(answer.body, `${method} ${path}`).toEqual({ message });
    }
  });

  it('cancels a queued sync run and a pending sequence run, counted in /metrics; cancelling again is a 409', async () => {
    const counted = async (name: string) => {
      const line = new RegExp(`^${name}\\{status="cancelled"\\} (\\d+)$`, 'm').exec(await (await fetch(`${api.url}/metrics`)).text());
      return Number(line?.[1] ?? 0);
    };
    const cancelledBefore = { sync: await counted('lockstep_sync_runs_total'), sequence: await counted('lockstep_sequence_runs_total') };
    await api.app.worker.stop();
    try {
      const queued = await api.call('POST', '/api/syncs/accounts-to-crm/runs', { fullResync: true });
      expect(queued.body.status).toBe('queued');
      const cancelled = await api.call('POST', `/api/sync-runs/${queued.body.id}/cancel`);
      expect(cancelled.body).toMatchObject({ id: queued.body.id, status: 'cancelled', sync: 'accounts-to-crm' });
      expect((await api.call('POST', `/api/sync-runs/${queued.body.id}/cancel`)).status).toBe(409);

      const pending = await api.call('POST', '/api/sequences/crm-hierarchy/runs');
      const stopped = await api.call('POST', `/api/sequence-runs/${pending.body.id}/cancel`);
      expect(stopped.body.status).toBe('cancelled');
      expect(stopped.body.members.every((m: { status: string }) => m.status === 'skipped')).toBe(true);
      expect((await api.call('POST', `/api/sequence-runs/${pending.body.id}/cancel`)).status).toBe(409);
      expect((await api.call('POST', '/api/sync-runs/999999/cancel')).status).toBe(404);
      // Runs that ended before they started are runs that ended: counted once each.
      expect(await counted('lockstep_sync_runs_total')).toBe(cancelledBefore.sync + 1);
      expect(await counted('lockstep_sequence_runs_total')).toBe(cancelledBefore.sequence + 1);
    } finally {
      await api.app.worker.start();
    }
  });
});

describe('live events', () => {
  it('streams sync run and sequence run updates while a run progresses', async () => {
    const controller = new AbortController();
    const response = await fetch(`${api.url}/api/events?token=${encodeURIComponent(api.token)}`, { signal: controller.signal });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    await reader.read();
    const started = await api.call('POST', '/api/sequences/crm-hierarchy/runs');
    const deadline = Date.now() + 10_000;
    while (!text.includes('"status":"done"') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    controller.abort();
    expect(text).toContain('event: sequenceRun');
    expect(text).toContain('event: syncRun');
    const sequenceEvents = text
      .split('\n\n')
      .filter((e) => e.startsWith('event: sequenceRun'))
      .map((e) => JSON.parse(e.split('\ndata: ')[1]!) as { id: string; status: string });
    expect(sequenceEvents.some((e) => e.id === started.body.id && e.status === 'done')).toBe(true);
    expect((await fetch(`${api.url}/api/events?token=wrong`)).status).toBe(401);
  });
});

describe('OpenAPI, health and metrics', () => {
  it('serves an OpenAPI 3.1 document covering every route', async () => {
    const { body } = await api.call('GET', '/api/openapi.json');
    expect(body.openapi).toBe('3.1.0');
    const paths = Object.keys(body.paths);
    for (const path of [
      '/api/v1/syncs',
      '/api/v1/syncs/{syncId}',
      '/api/v1/syncs/{syncId}/trigger',
      '/api/v1/syncs/trigger',
      '/api/v1/syncs/{syncId}/runs',
      '/api/v1/sync-sequences/{syncSequenceId}/trigger',
      '/api/v1/sync-sequences/runs/{syncSequenceRunId}',
      '/api/session',
      '/api/workspace',
      '/api/events',
      '/api/sync-runs/{id}/rejected-rows',
      '/api/sequence-runs/{id}/cancel',
      ...['sources', 'destinations', 'models', 'syncs', 'sequences'].flatMap((k) => [`/api/${k}`, `/api/${k}/{slug}`]),
    ]) {
      expect(paths, path).toContain(path);
    }
    expect(Object.keys(body.paths['/api/sequences/{slug}']).sort()).toEqual(['delete', 'get', 'patch', 'put']);
    expect(body.components.schemas).toHaveProperty('SequenceRunView');
  });

  it('answers /healthz, /readyz and /metrics without a token', async () => {
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    // Ready, with what this process runs (a worker here, no scheduler), its worker id, the leases it holds and the queue.
    expect(await (await fetch(`${api.url}/readyz`)).json()).toEqual({
      status: 'ready',
      runs: ['worker'],
      workerId: expect.stringMatching(/^[^/]+\/\d+\/[0-9a-f]+$/),
      leases: [],
      activeRuns: 0,
      queueDepth: 0,
    });
    const text = await (await fetch(`${api.url}/metrics`)).text();
    for (const name of [
      'lockstep_sync_runs_total{status="success"}',
      'lockstep_sequence_runs_total{status="done"}',
      'lockstep_sync_run_duration_seconds_bucket',
      'lockstep_rows_delivered_total',
      'lockstep_rows_rejected_total',
      'lockstep_queue_depth 0',
      'lockstep_handoff_latency_seconds_count',
      'lockstep_sync_run_phase_seconds_bucket{le="0.001",phase="query"}',
      'lockstep_sync_run_phase_seconds_count{phase="deliver"}',
    ]) {
      expect(text).toContain(name);
    }
    expect(/lockstep_handoff_latency_seconds_count (\d+)/.exec(text)?.[1]).not.toBe('0');
    // The gauges every serve process on a store exports alike say how to add the processes up.
    for (const name of ['lockstep_queue_depth', 'lockstep_active_runs', 'lockstep_destination_api_usage', 'lockstep_destination_api_limit']) {
      expect(new RegExp(`^# HELP ${name} .*, so aggregate it over processes with max, not sum$`, 'm').test(text), name).toBe(true);
    }
    for (const name of ['lockstep_sync_runs_total', 'lockstep_worker_leases']) expect(text).not.toMatch(new RegExp(`^# HELP ${name} .*max, not sum`, 'm'));
  });
});

describe('readiness on a PostgreSQL store', () => {
  it('is not ready once another process rotated the key that seals the stored secrets', async () => {
    const storeUrl = await createTestDatabase('lockstep_readyz');
    const oldKey = randomBytes(32).toString('base64');
    await using pg = await startApi({ env: { LOCKSTEP_STORE: storeUrl, LOCKSTEP_SECRET_KEY: oldKey } });
    const channel = { name: 'hooks', type: 'webhook', url: 'http://127.0.0.1:1/hook', secret: 'hook-s3cret' };
    expect((await pg.call('POST', '/api/alerts/channels', channel)).status).toBe(201);
    expect((await fetch(`${pg.url}/readyz`)).status).toBe(200);

    vi.stubEnv('LOCKSTEP_SECRET_KEY', oldKey);
    vi.stubEnv('LOCKSTEP_NEW_SECRET_KEY', randomBytes(32).toString('base64'));
    try {
      const rotated = await runMain(['--workspace', pg.dir, '--store', storeUrl, 'secrets', 'rotate']);
      expect(rotated.code, rotated.stderr).toBe(0);
    } finally {
      vi.unstubAllEnvs();
    }
    const answer = await fetch(`${pg.url}/readyz`);
    expect(answer.status).toBe(503);
    expect(await answer.json()).toEqual({
      status: 'unavailable',
      message: 'the store answers, but this process cannot read the workspace in it — the server log says why',
    });
    expect(pg.logs.some((line) => line.includes('not ready: the workspace cannot be read') && line.includes('holds secrets encrypted with key'))).toBe(true);
  });
});

describe('auth', () => {
  it('refuses --no-auth on a non-loopback host, and serves without a token on loopback', async () => {
    const deps = { store: api.app.store, runs: api.app.runs, worker: api.app.worker, alerts: api.app.alerts, events: api.app.events, logger: silentLogger, clock: api.app.clock, env: {}, connectors: api.app.registry, onWorkspaceChanged: () => {}, uiDir: null, activity: api.app.activity };
    const open = createApiServer({ ...deps, authRequired: false });
    await expect(open.listen(0, '0.0.0.0')).rejects.toThrow(/--no-auth is allowed only on a loopback host/);
    const { url } = await open.listen(0, '127.0.0.1');
    try {
      expect(await (await fetch(`${url}/api/session`)).json()).toEqual({ authRequired: false });
      expect((await fetch(`${url}/api/v1/syncs`)).status).toBe(200);
    } finally {
      await open.close();
    }
  });

  it('serves the UI with a fallback to index.html for non-API paths', async () => {
    const ui = join(api.dir, 'ui');
    mkdirSync(join(ui, 'assets'), { recursive: true });
    writeFileSync(join(ui, 'index.html'), '<!doctype html><title>Lockstep</title>');
    writeFileSync(join(ui, 'assets', 'app.js'), 'console.log(1)');
    const server = createApiServer({ store: api.app.store, runs: api.app.runs, worker: api.app.worker, alerts: api.app.alerts, events: api.app.events, logger: silentLogger, clock: api.app.clock, env: {}, connectors: api.app.registry, onWorkspaceChanged: () => {}, activity: api.app.activity, uiDir: ui, authRequired: true });
    const { url } = await server.listen(0, '127.0.0.1');
    try {
      const page = await fetch(`${url}/sequences/crm-hierarchy`);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(await page.text()).toContain('<title>Lockstep</title>');
      expect((await fetch(`${url}/assets/app.js`)).headers.get('content-type')).toContain('javascript');
      expect((await fetch(`${url}/..%2f..%2fetc/passwd`)).headers.get('content-type')).toContain('text/html');
      expect((await fetch(`${url}/api/nope`)).status).toBe(401);
    } finally {
      await server.close();
    }
  });

  it('never writes the token or a connection password to the log', () => {
    const log = api.logs.join('\n');
    expect(log).toContain('"m":"request"');
    expect(log).not.toContain(api.token);
    expect(log).not.toContain(PG_PASSWORD);
    expect(log).not.toContain('hunter22');
  });
});

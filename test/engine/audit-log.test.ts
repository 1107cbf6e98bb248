/**
 * Run history appended to a warehouse's audit schema (`auditLog: { schema }`): sync runs, sequence
 * runs and rejected rows land in tables there, once per run even when the hand-off is repeated (a
 * crash between the append and the outbox's acknowledgement), and a schema that cannot be created
 * names the missing grant, then catches up once it is granted. Real SQLite files and a real
 * PostgreSQL (TEST_DATABASE_URL or the throwaway server).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp, createConnectorRegistry, openStore } from '../../src/app.js';
import { resolveConfig } from '../../src/config.js';
import type { Logger, Store } from '../../src/core/ports.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { Gate, withWriteHook } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

async function eventually<T>(check: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function capturingLogger(lines: string[]): Logger {
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) => lines.push(JSON.stringify({ level, message, ...fields }));
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/**
 * The store with its finished runs kept in the outbox until `handOver()`, as they wait while an
 * audit log is down: what happens meanwhile (a deletion) happens before the hand-off.
 */
function holdingHandOff(real: Store): { store: Store; handOver: () => void } {
  let held = true;
  const store = new Proxy(real, {
    get(target, name, receiver) {
      if (name === 'takeFinishedRuns') return async (...args: Parameters<Store['takeFinishedRuns']>) => (held ? [] : target.takeFinishedRuns(...args));
      const value: unknown = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as Store;
  return { store, handOver: () => (held = false) };
}

function hierarchy(auditLog: Record<string, unknown> | undefined) {
  return workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('crm', { settings: { path: 'crm.db', ...(auditLog ? { auditLog } : {}) } })],
    models: [
      model('accounts', 'warehouse', 'select id, name from accounts'),
      model('workspaces', 'warehouse', 'select id, account_id, name from workspaces'),
    ],
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
      sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
    ],
    sequences: [sequence('crm', [member('accounts'), member('workspaces')])],
  });
}

describe('audit log in a SQLite destination', () => {
  it('appends sync runs, the sequence run and rejected rows, once each even when the hand-off is repeated', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    // The CRM's accounts.name is NOT NULL: account 4 is rejected.
    sqlite(join(dir, 'warehouse.db'), 'insert into accounts values (4, null);');
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1' } });
    const real = await openStore(config);
    // The process "dies" after its first appends, before the outbox hears they were done: the
    // entries are handed over again once their hold ends.
    let acksRefused = 0;
    const acked = new Set<number>();
    const store = new Proxy(real, {
      get(target, name, receiver) {
        if (name === 'ackFinishedRuns') {
          return async (ids: number[]) => {
            if (ids.length > 0 && acksRefused < 2) {
              acksRefused++;
              throw new Error('process died before acknowledging');
            }
            await target.ackFinishedRuns(ids);
            for (const id of ids) acked.add(id);
          };
        }
        const value: unknown = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as Store;
    const lines: string[] = [];
    const app = await createApp(config, { store, logger: capturingLogger(lines) });
    try {
      await app.store.applyWorkspace(hierarchy({ schema: 'lockstep_audit' }), app.clock.now());
      await app.worker.start();
      const { run } = await app.runs.triggerSequence('crm');
      const finished = await app.runs.waitForSequenceRun(run.id);
      expect(finished.status).toBe('done');
      const crm = join(dir, 'crm.db');
      // Every run handed over twice at least (the first acknowledgements were refused).
      await eventually(() => acksRefused >= 2 && lines.filter((l) => l.includes('run already in the audit log')).length >= 1);
      const syncRuns = await eventually(() => {
        const rows = sqliteRows(crm, 'select * from lockstep_audit_sync_runs order by run_id');
        return rows.length === 2 && rows;
      });
      expect(syncRuns.map((r) => [r.sync, r.status, r.attempt, r.planned_added, r.delivered_added, r.rejected_added, r.sequence_run_id, r.member_key, r.trigger_type])).toEqual([
        ['accounts', 'warning', 1, 4, 3, 1, run.id, 'accounts', 'sequence'],
        ['workspaces', 'success', 1, 6, 6, 0, run.id, 'workspaces', 'sequence'],
      ]);
      const sequenceRuns = await eventually(() => {
        const rows = sqliteRows(crm, 'select * from lockstep_audit_sequence_runs');
        return rows.length === 1 && rows;
      });
      expect(sequenceRuns[0]).toMatchObject({ run_id: run.id, sequence: 'crm', status: 'done', trigger_type: 'manual', finished_at: new Date(finished.finishedAt!).toISOString() });
      expect(JSON.parse(sequenceRuns[0]!.members as string).map((m: { key: string; status: string }) => [m.key, m.status])).toEqual([
        ['accounts', 'warning'],
        ['workspaces', 'success'],
      ]);
      expect(sqliteRows(crm, 'select run_id, attempt, row_index, primary_key, operation, reason from lockstep_audit_rejected_rows')).toEqual([
        { run_id: syncRuns[0]!.run_id, attempt: 1, row_index: 1, primary_key: '[4]', operation: 'added', reason: expect.stringContaining('NOT NULL constraint failed') },
      ]);
      // Let every repeated hand-off settle, then count again: still once each.
      await eventually(() => acked.size === 3);
      expect(sqliteRows(crm, 'select count(*) as n from lockstep_audit_sync_runs')).toEqual([{ n: 2 }]);
      expect(sqliteRows(crm, 'select count(*) as n from lockstep_audit_sequence_runs')).toEqual([{ n: 1 }]);
      expect(sqliteRows(crm, 'select count(*) as n from lockstep_audit_rejected_rows')).toEqual([{ n: 1 }]);
    } finally {
      await app.close();
    }
  });

  it('names the sequence and a member whose sync were deleted before the sequence run was appended by the slugs they ran as, the sync marked deleted', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1' } });
    // The finished runs wait in the outbox until the sync is deleted.
    const { store, handOver } = holdingHandOff(await openStore(config));
    const app = await createApp(config, { store, logger: capturingLogger([]) });
    try {
      const definition = hierarchy({ schema: 'lockstep_audit' });
      await app.store.applyWorkspace(definition, app.clock.now());
      await app.worker.start();
      const { run } = await app.runs.triggerSequence('crm');
      expect((await app.runs.waitForSequenceRun(run.id)).status).toBe('done');
      await app.store.applyWorkspace({ ...definition, syncs: definition.syncs.filter((s) => s.slug !== 'workspaces'), sequences: [] }, app.clock.now());
      handOver();

      const crm = join(dir, 'crm.db');
      const sequenceRuns = await eventually(() => {
        const rows = sqliteRows(crm, "select * from sqlite_master where name = 'lockstep_audit_sequence_runs'").length > 0 && sqliteRows(crm, 'select * from lockstep_audit_sequence_runs');
        return rows && rows.length === 1 && rows;
      });
      expect(sequenceRuns[0]).toMatchObject({ run_id: run.id, sequence: 'crm', status: 'done' });
      expect(JSON.parse(sequenceRuns[0]!.members as string).map((m: { key: string; sync: string | null; syncDeleted: boolean }) => [m.key, m.sync, m.syncDeleted])).toEqual([
        ['accounts', 'accounts', false],
        ['workspaces', 'workspaces', true],
      ]);
    } finally {
      await app.close();
    }
  });

  it('refuses an auditLog schema that is not a plain name at validation', async () => {
    const registry = createConnectorRegistry();
    const issues = registry.checkSettings(registry.kind('sqlite')!, { path: 'crm.db', auditLog: { schema: 'audit; drop table x' } });
    expect(issues.map((i) => i.message).join(' ')).toContain('auditLog.schema must be a plain name');
  });
});

const STORES = [
  { name: 'SQLite file', env: async (): Promise<Record<string, string>> => ({}) },
  { name: 'PostgreSQL', env: async (): Promise<Record<string, string>> => ({ LOCKSTEP_STORE: await createTestDatabase('lockstep_audit_store') }) },
];

describe.each(STORES)('audit log of runs cancelled before they started, $name store', ({ env }) => {
  it('appends a queued sync run and pending sequence runs cancelled by a user or by a deletion, which start nothing `after` them', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1', ...(await env()) } });
    const app = await createApp(config, { logger: capturingLogger([]) });
    try {
      const base = hierarchy({ schema: 'lockstep_audit' });
      // `on: any` counts failed runs too; a cancelled one, started or not, starts nothing.
      const definition = {
        ...base,
        models: [...base.models, model('contacts', 'warehouse', 'select id, workspace_id, email from contacts')],
        syncs: [
          ...base.syncs,
          sync('contacts', {
            model: 'contacts',
            destination: 'crm',
            object: 'contacts',
            mappings: [{ from: 'email', to: 'email_address' }],
            schedule: { type: 'after', sync: 'accounts', sequence: null, on: 'any' },
          }),
        ],
      };
      await app.store.applyWorkspace(definition, app.clock.now());
      // Queued while no worker runs, so nothing claims them before they are cancelled.
      const { run: syncRun } = await app.runs.triggerSync('accounts');
      expect((await app.runs.cancelSyncRun(syncRun.id)).status).toBe('cancelled');
      const { run: byUser } = await app.runs.triggerSequence('crm');
      expect((await app.runs.cancelSequenceRun(byUser.id)).status).toBe('cancelled');
      const { run: bySyncDeleted } = await app.runs.triggerSequence('crm');
      await app.store.applyWorkspace(
        {
          ...definition,
          syncs: definition.syncs.filter((s) => s.slug !== 'workspaces'),
          sequences: definition.sequences.map((s) => ({ ...s, members: s.members.filter((m) => m.sync !== 'workspaces') })),
        },
        app.clock.now(),
      );
      expect((await app.store.getSequenceRun(bySyncDeleted.id))?.status).toBe('cancelled');
      await app.worker.start();

      const crm = join(dir, 'crm.db');
      const has = (table: string) => sqliteRows(crm, `select name from sqlite_master where name = '${table}'`).length > 0;
      const sequenceRuns = await eventually(() => {
        const rows = has('lockstep_audit_sequence_runs') && sqliteRows(crm, 'select * from lockstep_audit_sequence_runs order by created_at, run_id');
        return rows && rows.length === 2 && rows;
      });
      expect(sequenceRuns.map((r) => [r.run_id, r.sequence, r.status, r.started_at])).toEqual(
        expect.arrayContaining([
          [byUser.id, 'crm', 'cancelled', null],
          [bySyncDeleted.id, 'crm', 'cancelled', null],
        ]),
      );
      for (const row of sequenceRuns) {
        expect(JSON.parse(row.members as string).map((m: { key: string; status: string }) => [m.key, m.status])).toEqual([
          ['accounts', 'skipped'],
          ['workspaces', 'skipped'],
        ]);
      }
      const syncRuns = await eventually(() => {
        const rows = has('lockstep_audit_sync_runs') && sqliteRows(crm, 'select * from lockstep_audit_sync_runs');
        return rows && rows.length === 1 && rows;
      });
      expect(syncRuns[0]).toMatchObject({ run_id: syncRun.id, sync: 'accounts', status: 'cancelled', started_at: null, trigger_type: 'manual' });

      // Every end handed over and acted on: none of them started `contacts`.
      await app.worker.stop();
      const contacts = await app.store.getSync('contacts');
      expect(await app.store.listSyncRuns({ syncId: contacts!.id, limit: 10, offset: 0, order: 'desc' })).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe.each(STORES)('audit log of runs whose syncs were deleted before the hand-off, $name store', ({ env }) => {
  it('appends a member run of a sync deleted while it ran, with its model, and the sequence run whose members all were, by the slugs they ran as, to the audit logs of the connections they named', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1', ...(await env()) } });
    // The workspaces member is held at its first write while the apply runs, and the finished runs
    // wait in the outbox until it ran (the appender's read of the workspace would otherwise still
    // have the syncs for a moment).
    const { store, handOver } = holdingHandOff(await openStore(config));
    const writing = new Gate();
    const release = new Gate();
    const hold = async ({ object }: { object: string }) => {
      if (object !== 'workspaces') return;
      writing.open();
      await release.wait();
    };
    const app = await createApp(config, { store, logger: capturingLogger([]), connectors: (real) => withWriteHook(real, hold) });
    try {
      const auditLog = { schema: 'lockstep_audit' };
      const definition = { ...hierarchy(auditLog), sources: [source('warehouse', { settings: { path: 'warehouse.db', auditLog } })] };
      await app.store.applyWorkspace(definition, app.clock.now());
      await app.worker.start();
      const { run } = await app.runs.triggerSequence('crm');
      await writing.wait();
      // The pipeline removed while it runs: both syncs, the sequence, and the workspaces model (the
      // accounts model stays). The warehouse and the CRM, and their audit logs, stay.
      await app.store.applyWorkspace({ ...definition, models: definition.models.filter((m) => m.slug !== 'workspaces'), syncs: [], sequences: [] }, app.clock.now());
      release.open();
      const finished = await app.runs.waitForSequenceRun(run.id);
      const memberRuns = await Promise.all(finished.members.map(async (m) => (await app.store.getSyncRun(m.syncRunId!))!));
      handOver();

      for (const file of ['crm.db', 'warehouse.db']) {
        const path = join(dir, file);
        const has = (table: string) => sqliteRows(path, `select name from sqlite_master where name = '${table}'`).length > 0;
        const syncRuns = await eventually(() => {
          const rows = has('lockstep_audit_sync_runs') && sqliteRows(path, 'select * from lockstep_audit_sync_runs order by run_id');
          return rows && rows.length === 2 && rows;
        });
        expect(syncRuns.map((r) => [r.run_id, r.sync, r.status, r.member_key])).toEqual(memberRuns.map((m) => [m.id, m.memberKey, m.status, m.memberKey]));
        const sequenceRuns = await eventually(() => {
          const rows = has('lockstep_audit_sequence_runs') && sqliteRows(path, 'select * from lockstep_audit_sequence_runs');
          return rows && rows.length === 1 && rows;
        });
        expect(sequenceRuns[0]).toMatchObject({ run_id: run.id, sequence: 'crm', status: finished.status });
        expect(JSON.parse(sequenceRuns[0]!.members as string).map((m: { key: string; sync: string | null; syncDeleted: boolean }) => [m.key, m.sync, m.syncDeleted])).toEqual([
          ['accounts', 'accounts', true],
          ['workspaces', 'workspaces', true],
        ]);
      }
    } finally {
      release.open();
      await app.close();
    }
  });
});

describe('audit log in PostgreSQL', () => {
  it('names the missing grant when the schema cannot be created, then appends once granted, exactly once', async () => {
    const adminUrl = await createTestDatabase('audit');
    const database = new URL(adminUrl).pathname.slice(1);
    const role = `writer_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(8).toString('hex');
    await sql(adminUrl, `create role ${role} login password '${password}'`);
    await sql(adminUrl, `grant connect on database ${database} to ${role}`);
    await sql(adminUrl, `create table accounts (id integer primary key, name text not null); grant select, insert, update, delete on accounts to ${role}`);
    const url = new URL(adminUrl);
    url.username = role;
    url.password = password;

    const dir = tempDir();
    createHierarchyFixture(dir);
    const lines: string[] = [];
    const definition = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [{ slug: 'pg', type: 'postgres', settings: { url: '${CRM_URL}', auditLog: { schema: 'lockstep_audit' } } }],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts', { model: 'accounts', destination: 'pg', object: 'accounts' })],
      sequences: [sequence('crm', [member('accounts')])],
    });
    await using h = await startHarness({ dir, definition, logger: capturingLogger(lines), env: { CRM_URL: url.toString(), LOCKSTEP_LEASE_SECONDS: '1' } });
    const { run } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    expect(await sql(adminUrl, 'select count(*)::int as n from accounts')).toEqual([{ n: 3 }]);

    const refused = await eventually(() => lines.find((l) => l.includes('could not append a run to the audit log')));
    const error = JSON.parse(refused).error as string;
    expect(error).toContain(`user "${role}" may not create the schema`);
    expect(error).toContain(`GRANT CREATE ON DATABASE "${database}" TO "${role}"`);
    expect(error).not.toContain(password);
    expect(await sql(adminUrl, "select count(*)::int as n from pg_namespace where nspname = 'lockstep_audit'")).toEqual([{ n: 0 }]);

    await sql(adminUrl, `grant create on database ${database} to ${role}`);
    const appended = await eventually(async () => {
      const found = await sql(adminUrl, "select to_regclass('lockstep_audit.sequence_runs') as t");
      if (found[0]!.t === null) return null;
      const rows = await sql<{ n: number }>(adminUrl, 'select count(*)::int as n from lockstep_audit.sequence_runs');
      return rows[0]!.n === 1 && rows;
    });
    expect(appended).toEqual([{ n: 1 }]);
    const syncRuns = await sql(adminUrl, 'select run_id::int, attempt, sync, status, planned_added::int, delivered_added::int from lockstep_audit.sync_runs');
    expect(syncRuns).toEqual([{ run_id: expect.any(Number), attempt: 1, sync: 'accounts', status: 'success', planned_added: 3, delivered_added: 3 }]);
    const sequenceRuns = await sql(adminUrl, "select run_id, status, members->0->>'status' as first from lockstep_audit.sequence_runs");
    expect(sequenceRuns).toEqual([{ run_id: run.id, status: 'done', first: 'success' }]);

    // A second run appends its own rows; the first run's stay once.
    const again = await h.app.runs.triggerSequence('crm');
    await h.app.runs.waitForSequenceRun(again.run.id);
    await eventually(async () => (await sql<{ n: number }>(adminUrl, 'select count(*)::int as n from lockstep_audit.sequence_runs'))[0]!.n === 2);
    expect(await sql(adminUrl, 'select count(*)::int as n, count(distinct (run_id, attempt))::int as d from lockstep_audit.sync_runs')).toEqual([{ n: 2, d: 2 }]);
  });

  it('appends the runs of a sync deleted after they ran, before the hand-off, with its model and sequence, by the slugs they ran as', async () => {
    const url = await createTestDatabase('audit_deleted');
    await sql(url, 'create table accounts (id integer primary key, name text not null)');
    const dir = tempDir();
    createHierarchyFixture(dir);
    const config = resolveConfig({ workspaceDir: dir, env: { LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1', CRM_URL: url } });
    const { store, handOver } = holdingHandOff(await openStore(config));
    const app = await createApp(config, { store, logger: capturingLogger([]) });
    try {
      await app.store.applyWorkspace(
        workspace({
          sources: [source('warehouse', { path: 'warehouse.db' })],
          destinations: [{ slug: 'pg', type: 'postgres', settings: { url: '${CRM_URL}', auditLog: { schema: 'lockstep_audit' } } }],
          models: [model('accounts', 'warehouse', 'select id, name from accounts')],
          syncs: [sync('accounts', { model: 'accounts', destination: 'pg', object: 'accounts' })],
          sequences: [sequence('crm', [member('accounts')])],
        }),
        app.clock.now(),
      );
      await app.worker.start();
      const { run: sequenceRun } = await app.runs.triggerSequence('crm');
      expect((await app.runs.waitForSequenceRun(sequenceRun.id)).status).toBe('done');
      const { run: syncRun } = await app.runs.triggerSync('accounts');
      expect((await app.runs.waitForSyncRun(syncRun.id)).status).toBe('success');
      // Deleted through the API, one by one, before either run is handed over.
      for (const kind of ['sequence', 'sync', 'model'] as const) await app.store.deleteEntity(kind, kind === 'sequence' ? 'crm' : 'accounts', app.clock.now());
      handOver();

      const syncRuns = await eventually(async () => {
        const found = await sql(url, "select to_regclass('lockstep_audit.sync_runs') as t");
        if (found[0]!.t === null) return null;
        const rows = await sql(url, 'select run_id::int, sync, status, sequence_run_id from lockstep_audit.sync_runs order by run_id');
        return rows.length === 2 && rows;
      });
      expect(syncRuns).toEqual([
        { run_id: expect.any(Number), sync: 'accounts', status: 'success', sequence_run_id: sequenceRun.id },
        { run_id: syncRun.id, sync: 'accounts', status: 'success', sequence_run_id: null },
      ]);
      const sequenceRuns = await eventually(async () => {
        const found = await sql(url, "select to_regclass('lockstep_audit.sequence_runs') as t");
        if (found[0]!.t === null) return null;
        const rows = await sql(url, "select run_id, sequence, status, members->0->>'sync' as sync, members->0->>'syncDeleted' as deleted from lockstep_audit.sequence_runs");
        return rows.length === 1 && rows;
      });
      expect(sequenceRuns).toEqual([{ run_id: sequenceRun.id, sequence: 'crm', status: 'done', sync: 'accounts', deleted: 'true' }]);
    } finally {
      await app.close();
    }
  });
});

describe('audit log in MySQL', () => {
  it('names the missing grant, then appends once granted; a plan reads before values from MySQL', async () => {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const adminUrl = await createTestMysqlDatabase('auditcrm');
    const database = new URL(adminUrl).pathname.slice(1);
    const audit = `audit_${randomBytes(4).toString('hex')}`;
    const user = `w_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(8).toString('hex');
    await mysqlSql(adminUrl, `create table accounts (id bigint primary key, name varchar(100) not null)`);
    await mysqlSql(adminUrl, `create user '${user}'@'%' identified by '${password}'`);
    await mysqlSql(adminUrl, `grant select, insert, update, delete on \`${database}\`.* to '${user}'@'%'`);
    const url = new URL(adminUrl);
    url.username = user;
    url.password = password;

    const dir = tempDir();
    createHierarchyFixture(dir);
    const lines: string[] = [];
    const definition = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [{ slug: 'crm', type: 'mysql', settings: { url: '${CRM_URL}', auditLog: { schema: audit } } }],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
      sequences: [sequence('crm', [member('accounts')])],
    });
    await using h = await startHarness({ dir, definition, logger: capturingLogger(lines), env: { CRM_URL: url.toString(), LOCKSTEP_LEASE_SECONDS: '1' } });
    const { run } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    const refused = await eventually(() => lines.find((l) => l.includes('could not append a run to the audit log')));
    const error = JSON.parse(refused).error as string;
    expect(error).toContain(`user '${user}'@'%' may not create database ${audit}`);
    expect(error).toContain(`GRANT CREATE ON \`${audit}\`.* TO '${user}'@'%'`);
    expect(error).not.toContain(password);

    await mysqlSql(adminUrl, `grant create, select, insert on \`${audit}\`.* to '${user}'@'%'`);
    const runs = await eventually(async () => {
      const found = await mysqlSql(adminUrl, `select count(*) as n from information_schema.tables where table_schema = '${audit}' and table_name = 'sequence_runs'`);
      if (Number(found[0]!.n) === 0) return null;
      const rows = await mysqlSql(adminUrl, `select run_id, status, trigger_type from \`${audit}\`.sequence_runs`);
      return rows.length === 1 && rows;
    });
    expect(runs).toEqual([{ run_id: run.id, status: 'done', trigger_type: 'manual' }]);
    expect(await mysqlSql(adminUrl, `select sync, status, attempt, delivered_added from \`${audit}\`.sync_runs`)).toEqual([{ sync: 'accounts', status: 'success', attempt: 1, delivered_added: '3' }]);

    sqlite(join(dir, 'warehouse.db'), "update accounts set name = 'Acme' where id = 1;");
    const plan = await h.app.planner.plan('crm');
    expect(plan.members[0]!.samples.changed).toEqual([{ key: [1], before: 'read', fields: [{ field: 'name', before: 'Account 1', after: 'Acme' }] }]);
  });
});

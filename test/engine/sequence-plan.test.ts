/**
 * Dry runs of sequences (`lockstep sequence plan`): counts and samples per member, rows rejected
 * before sending, and the promise that matters most: a plan sends nothing and changes nothing
 * stored, so a real run after a plan sends exactly what it would have sent without it. Warehouse,
 * CRM and store are real SQLite files; the lookup case uses a recording destination kind.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { z } from 'zod';
import { createConnectorRegistry } from '../../src/app.js';
import type { ConnectorKind } from '../../src/core/connector-kind.js';
import type { Connectors, RowOutcome, Store, WriteOperation } from '../../src/core/ports.js';
import type { MemberDef, ModelDef, SequenceDef } from '../../src/core/workspace.js';
import { hierarchyWorkspace, member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { Gate, withReadFailure, withWriteHook } from '../helpers/fault-connectors.js';
import { createHierarchyFixture, sqlite, sqliteRows, startHarness, tempDir } from '../helpers/harness.js';

function definition() {
  return workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('crm', { path: 'crm.db' })],
    models: [
      model('accounts', 'warehouse', 'select id, name from accounts'),
      model('workspaces', 'warehouse', 'select id, account_id, name from workspaces'),
      // Contact 1 comes twice (a duplicate key) and one row has no key: both rejected on every run.
      model(
        'contacts',
        'warehouse',
        "select id, workspace_id, email from contacts union all select id, workspace_id, email from contacts where id = 1 union all select null, 1, 'nobody@example.com'",
      ),
    ],
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts', batchSize: 2 }),
      sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces', mode: 'mirror', batchSize: 2 }),
      sync('contacts', { model: 'contacts', destination: 'crm', object: 'contacts', mode: 'mirror', mappings: [{ from: 'email', to: 'email_address' }], batchSize: 2 }),
    ],
    sequences: [sequence('crm', [member('accounts'), member('workspaces'), member('contacts', { terminate: 'never' })])],
  });
}

/** Everything a run or a plan could change in the store, read through its own API. */
async function storedState(store: Store) {
  const state: Record<string, unknown> = {};
  for (const slug of ['accounts', 'workspaces', 'contacts']) {
    const s = (await store.getSync(slug))!;
    const pages: unknown[] = [];
    for await (const page of store.snapshots.pages(s.id, 1000)) pages.push(page);
    const runs = await store.listSyncRuns({ syncId: s.id, limit: 100, offset: 0, order: 'asc' });
    const rejected = [];
    for (const run of runs) rejected.push(await store.listRejectedRows(run.id, 1000, 0));
    state[slug] = { pages, runs, rejected, ids: await store.snapshots.recordIdsGet(s.id, ['[1]', '[2]', '[3]']) };
  }
  state.sequenceRuns = await store.listSequenceRuns({ limit: 100, offset: 0, order: 'asc' });
  state.queued = await store.listQueuedSyncRuns();
  return state;
}

const CRM_TABLES = ['accounts', 'workspaces', 'contacts'];
const crmRows = (dir: string) => Object.fromEntries(CRM_TABLES.map((t) => [t, sqliteRows(join(dir, 'crm.db'), `select * from ${t} order by id`)]));

/** A delivered hierarchy, then changes in the warehouse: one account renamed and one added, a workspace gone, a contact changed. */
async function deliveredThenChanged() {
  const dir = tempDir();
  createHierarchyFixture(dir);
  {
    await using h = await startHarness({ dir, definition: definition() });
    const { run } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
  }
  sqlite(
    join(dir, 'warehouse.db'),
    `update accounts set name = 'Account two' where id = 2;
     insert into accounts values (4, 'Account 4');
     delete from contacts where workspace_id = 6;
     delete from workspaces where id = 6;
     update contacts set email = 'new3@example.com' where id = 3;`,
  );
  return dir;
}

describe('sequence plan', () => {
  it('plans every member in run order with counts and samples, before → after read from the destination', async () => {
    const dir = await deliveredThenChanged();
    await using h = await startHarness({ dir, definition: definition() });
    const plan = await h.app.planner.plan('crm', { samples: 5 });
    expect(plan.members.map((m) => [m.key, m.status, m.querySize, m.added, m.changed, m.removed, m.retried, m.rejected])).toEqual([
      ['accounts', 'planned', 4, 1, 1, 0, 0, 0],
      ['workspaces', 'planned', 5, 0, 0, 1, 0, 0],
      // contact 6 and 12 (workspace 6) left; contact 3 changed; the duplicate of contact 1 and the
      // row without a key are rejected again (counted as added, as a run counts them).
      ['contacts', 'planned', 12, 2, 1, 2, 2, 2],
    ]);
    const accounts = plan.members[0]!;
    expect(accounts.samples.changed).toEqual([{ key: [2], before: 'read', fields: [{ field: 'name', before: 'Account 2', after: 'Account two' }] }]);
    expect(accounts.samples.added).toEqual([{ key: [4], before: 'absent', fields: [{ field: 'id', after: 4 }, { field: 'name', after: 'Account 4' }] }]);
    const workspaces = plan.members[1]!;
    expect(workspaces.samples.removed).toEqual([
      {
        key: [6],
        before: 'read',
        fields: [
          { field: 'id', before: 6, after: null },
          { field: 'account_id', before: 3, after: null },
          { field: 'name', before: 'Workspace 6', after: null },
        ],
      },
    ]);
    const contacts = plan.members[2]!;
    expect(contacts.samples.changed[0]!.fields).toEqual([{ field: 'email_address', before: 'person3@example.com', after: 'new3@example.com' }]);
    expect(contacts.samples.rejected).toEqual([
      { key: '[1]', op: 'added', reason: expect.stringContaining('duplicate primary key [1]') },
      { key: '[null]', op: 'added', reason: 'primary key column "id" is null' },
    ]);
    expect(plan.samplesPerKind).toBe(5);
  });

  it('says which member has a run under way: its plan counts the rows that run has still to deliver', async () => {
    const dir = await deliveredThenChanged();
    const gate = new Gate();
    const reached = new Gate();
    let held = false;
    await using h = await startHarness({
      dir,
      definition: definition(),
      connectors: (real) =>
        withWriteHook(real, async ({ object }) => {
          if (object === 'accounts' && !held) {
            held = true;
            reached.open();
            await gate.wait();
          }
        }),
    });
    const { run } = await h.app.runs.triggerSync('accounts');
    await reached.wait();
    // The held run is let go before anything is checked: a failed check must not leave it holding the harness.
    const plan = await h.app.planner.plan('crm', { samples: 0 }).finally(() => gate.open());
    const [accounts, workspaces] = plan.members;
    expect(accounts!.added + accounts!.changed).toBe(2);
    expect(accounts!.warnings).toEqual([
      `sync "accounts" has run ${run.id} under way (processing): this plan counts the rows it has still to deliver, which that run sends; a run queued now waits for it and sends what is left then`,
    ]);
    expect(workspaces!.warnings).toEqual([]);
    expect((await h.app.runs.waitForSyncRun(run.id)).status).toBe('success');
  });

  it('plans a member that reads its model again after a transient failure', async () => {
    const dir = await deliveredThenChanged();
    await using h = await startHarness({ dir, definition: definition(), connectors: (real) => withReadFailure(real, (query) => query.includes('from contacts')) });
    const plan = await h.app.planner.plan('crm', { samples: 5 });
    const contacts = plan.members[2]!;
    expect([contacts.status, contacts.querySize, contacts.rejected]).toEqual(['planned', 12, 2]);
    expect(contacts.samples.rejected.map((r) => r.key)).toEqual(['[1]', '[null]']);
  });

  it('counts and samples each row once when a member reads its model again after rows were planned for delivery', async () => {
    const dir = await deliveredThenChanged();
    // The accounts' two changes fill a batch, which goes out before the read fails and starts over.
    await using h = await startHarness({ dir, definition: definition(), connectors: (real) => withReadFailure(real, (query) => query.includes('from accounts')) });
    const plan = await h.app.planner.plan('crm', { samples: 5 });
    const accounts = plan.members[0]!;
    expect([accounts.status, accounts.querySize, accounts.added, accounts.changed, accounts.removed, accounts.rejected]).toEqual(['planned', 4, 1, 1, 0, 0]);
    expect([accounts.samples.added.map((s) => s.key), accounts.samples.changed.map((s) => s.key)]).toEqual([[[4]], [[2]]]);
  });

  it('sends nothing and changes nothing stored; a real run afterwards sends exactly what it would have without the plan', async () => {
    const dir = await deliveredThenChanged();
    // The same world twice: one is planned and then run, the other only run.
    const control = tempDir();
    cpSync(dir, control, { recursive: true });

    let planned;
    {
      await using h = await startHarness({ dir, definition: definition() });
      const before = await storedState(h.app.store);
      const crmBefore = crmRows(dir);
      planned = await h.app.planner.plan('crm', { samples: 2 });
      await h.app.planner.plan('crm', { samples: 0 });
      expect(await storedState(h.app.store)).toEqual(before);
      expect(crmRows(dir)).toEqual(crmBefore);
      const { run } = await h.app.runs.triggerSequence('crm');
      expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    }
    {
      await using h = await startHarness({ dir: control, definition: definition() });
      const { run } = await h.app.runs.triggerSequence('crm');
      expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    }
    // Row for row, the destinations are the same, and so are the runs' counts and rejected rows.
    expect(crmRows(dir)).toEqual(crmRows(control));
    const lastRuns = async (d: string) => {
      await using h = await startHarness({ dir: d, definition: definition(), startWorker: false });
      const out = [];
      for (const slug of ['accounts', 'workspaces', 'contacts']) {
        const s = (await h.app.store.getSync(slug))!;
        const [run] = await h.app.store.listSyncRuns({ syncId: s.id, limit: 1, offset: 0, order: 'desc' });
        out.push({ slug, querySize: run!.querySize, planned: run!.plannedRows, successful: run!.successfulRows, failed: run!.failedRows, rejected: await h.app.store.listRejectedRows(run!.id, 100, 0).then((rows) => rows.map((r) => [r.key, r.op, r.reason])) });
      }
      return out;
    };
    const [afterPlan, withoutPlan] = [await lastRuns(dir), await lastRuns(control)];
    expect(afterPlan).toEqual(withoutPlan);
    // And the plan said what the run then planned. Rows the destination itself refuses cannot be
    // known before sending: workspace 6's delete breaks a foreign key (its contacts go after it).
    expect(planned.members.map((m) => [m.key, m.querySize, m.added, m.changed, m.removed])).toEqual(
      afterPlan.map((r) => [r.slug, r.querySize, r.planned.addedCount, r.planned.changedCount, r.planned.removedCount]),
    );
    expect(planned.members.map((m) => m.rejected)).toEqual([0, 0, 2]);
    expect(afterPlan.map((r) => r.failed.addedCount + r.failed.changedCount + r.failed.removedCount)).toEqual([0, 1, 2]);
  });

  it('plans a model with a cursor past its cursor with the store\'s planner, as the run after it does, storing nothing', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    const withCursor = () =>
      workspace({
        sources: [source('warehouse', { path: 'warehouse.db' })],
        destinations: [source('crm', { path: 'crm.db' })],
        models: [{ ...model('accounts', 'warehouse', 'select id, name from accounts'), cursor: 'id' }],
        syncs: [sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' })],
        sequences: [sequence('crm', [member('accounts')])],
      });
    await using h = await startHarness({ dir, definition: withCursor() });
    const first = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(first.run.id)).status).toBe('done');
    // Account 1 is behind the cursor: only a full comparison sees its change.
    sqlite(join(dir, 'warehouse.db'), "insert into accounts values (4, 'Account 4'); update accounts set name = 'unseen' where id = 1;");
    const account = (await h.app.store.getSync('accounts'))!;
    const cursor = await h.app.store.snapshots.cursorGet(account.id);
    const plan = await h.app.planner.plan('crm', { samples: 1 });
    expect(plan.members[0]!.error).toBeNull();
    expect(plan.members[0]).toMatchObject({ status: 'planned', added: 1, changed: 0, removed: 0, rejected: 0 });
    expect(await h.app.store.snapshots.cursorGet(account.id)).toEqual(cursor);
    const { run } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
    const [last] = await h.app.store.listSyncRuns({ syncId: account.id, limit: 1, offset: 0, order: 'desc' });
    expect(last!.comparison?.kind).toBe('cursor');
    expect(last!.plannedRows).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
  });

  it('reports a member whose run would fail, and warns about the mass-delete guard, still storing nothing', async () => {
    const dir = await deliveredThenChanged();
    sqlite(join(dir, 'warehouse.db'), 'delete from contacts where id > 1;');
    sqlite(join(dir, 'crm.db'), 'alter table accounts rename to accounts_old;');
    // The accounts member lets the sequence go on when it fails, so the members after it are planned.
    const def = definition();
    def.sequences[0]!.members[0]!.terminate = 'never';
    await using h = await startHarness({ dir, definition: def });
    const before = await storedState(h.app.store);
    const plan = await h.app.planner.plan('crm');
    expect(plan.members[0]).toMatchObject({ key: 'accounts', status: 'failed', error: expect.stringContaining('table "accounts" does not exist') });
    expect(plan.members[2]!.removed).toBe(11);
    expect(plan.members[2]!.warnings).toEqual([expect.stringContaining('a real run would stop before deleting: sync "contacts" would delete 11 of the 12 rows')]);
    expect(await storedState(h.app.store)).toEqual(before);
  });

  it('refuses an unknown sequence by name', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    await using h = await startHarness({ dir, definition: definition() });
    await expect(h.app.planner.plan('crn')).rejects.toThrow('no sequence "crn" in the workspace');
  });
});

describe('sequence plan of a member whose outcome would terminate the run', () => {
  const syncs = [
    sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
    sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces' }),
    sync('contacts', { model: 'contacts', destination: 'crm', object: 'contacts', mappings: [{ from: 'email', to: 'email_address' }] }),
  ];
  const crm = (members: MemberDef[], over: Partial<SequenceDef> = {}) =>
    hierarchyWorkspace(['accounts', 'workspaces', 'contacts'], { syncs, sequences: [sequence('crm', members, over)] });
  /** The hierarchy with the CRM's accounts table gone: a run of the accounts sync fails on its destination. */
  const withoutAccountsTable = () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    sqlite(join(dir, 'crm.db'), 'alter table accounts rename to accounts_old;');
    return dir;
  };

  it('shows the members after a member that would fail as skipped, naming it and why, as the run then says', async () => {
    const dir = withoutAccountsTable();
    await using h = await startHarness({ dir, definition: crm([member('accounts'), member('workspaces'), member('contacts', { terminate: 'never' })]) });
    const plan = await h.app.planner.plan('crm');
    const reason = plan.members[0]!.terminates;
    expect(reason).toMatch(/^member "accounts" failed: .*table "accounts" does not exist/);
    expect(plan.members.map((m) => [m.key, m.status, m.blockedBy])).toEqual([
      ['accounts', 'failed', null],
      ['workspaces', 'skipped', { member: 'accounts', reason }],
      ['contacts', 'skipped', { member: 'accounts', reason }],
    ]);
    expect(plan.members[1]).toMatchObject({ error: null, querySize: 0, added: 0, changed: 0, removed: 0, terminates: null });

    // A real run does what the plan said, in the same words.
    const { run } = await h.app.runs.triggerSequence('crm');
    const done = await h.app.runs.waitForSequenceRun(run.id);
    expect(done.members.map((m) => m.status)).toEqual(['failed', 'skipped', 'skipped']);
    expect([done.terminatedBy, done.reason]).toEqual(['accounts', reason]);
  });

  it('in a graph, skips only the members that wait for it, and warns the others that a run may not get to start them', async () => {
    const dir = withoutAccountsTable();
    const graph = [member('accounts', { after: [] }), member('workspaces', { after: ['accounts'] }), member('contacts', { after: [] })];
    await using h = await startHarness({ dir, definition: crm(graph) });
    const plan = await h.app.planner.plan('crm');
    expect(plan.members.map((m) => [m.key, m.status, m.blockedBy?.member ?? null])).toEqual([
      ['accounts', 'failed', null],
      ['workspaces', 'skipped', 'accounts'],
      ['contacts', 'planned', null],
    ]);
    expect(plan.members[2]).toMatchObject({ querySize: 12, added: 12 });
    expect(plan.members[2]!.warnings).toEqual([expect.stringContaining('a real run skips this member if member "accounts" ends before it has started')]);
  });

  it('in a graph that runs one member at a time, skips every member after it', async () => {
    const dir = withoutAccountsTable();
    const graph = [member('accounts', { after: [] }), member('workspaces', { after: ['accounts'] }), member('contacts', { after: [] })];
    await using h = await startHarness({ dir, definition: crm(graph, { concurrency: 1 }) });
    const plan = await h.app.planner.plan('crm');
    expect(plan.members.map((m) => [m.key, m.status, m.blockedBy?.member ?? null])).toEqual([
      ['accounts', 'failed', null],
      ['workspaces', 'skipped', 'accounts'],
      ['contacts', 'skipped', 'accounts'],
    ]);
    const { run } = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(run.id)).members.map((m) => m.status)).toEqual(['failed', 'skipped', 'skipped']);
  });

  it('plans the members after a failing member whose policy lets the sequence go on', async () => {
    const dir = withoutAccountsTable();
    await using h = await startHarness({ dir, definition: crm([member('accounts', { terminate: 'never' }), member('workspaces'), member('contacts')]) });
    const plan = await h.app.planner.plan('crm');
    expect(plan.members.map((m) => [m.key, m.status, m.terminates, m.blockedBy, m.querySize])).toEqual([
      ['accounts', 'failed', null, null, 0],
      ['workspaces', 'planned', null, null, 6],
      ['contacts', 'planned', null, null, 12],
    ]);
  });

  it('skips the members after one whose run the mass-delete guard would stop', async () => {
    const dir = await deliveredThenChanged();
    // Workspace 6 left already; four more leave: 5 of the 6 delivered rows would go, over 50%.
    sqlite(join(dir, 'warehouse.db'), 'delete from contacts where workspace_id > 1; delete from workspaces where id > 1;');
    await using h = await startHarness({ dir, definition: definition() });
    const plan = await h.app.planner.plan('crm');
    const reason = plan.members[1]!.terminates;
    expect(reason).toMatch(/^member "workspaces" failed: sync "workspaces" would delete 5 of the 6 rows it manages/);
    expect(plan.members.map((m) => [m.key, m.status, m.blockedBy])).toEqual([
      ['accounts', 'planned', null],
      ['workspaces', 'planned', null],
      ['contacts', 'skipped', { member: 'workspaces', reason }],
    ]);
    expect(plan.members[1]!.warnings).toEqual([expect.stringContaining('a real run would stop before deleting')]);

    const { run } = await h.app.runs.triggerSequence('crm');
    const done = await h.app.runs.waitForSequenceRun(run.id);
    expect(done.members.map((m) => m.status)).toEqual(['success', 'failed', 'skipped']);
    expect([done.terminatedBy, done.reason]).toEqual(['workspaces', reason]);
  });

  it('skips the members after one whose rows rejected before sending are over its threshold', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    // Contact 1 comes twice: a duplicate key, rejected by every run.
    const def = crm([member('contacts', { terminate: 'on_fatal_or_rejected' }), member('accounts')]);
    def.models = def.models.map((m) => (m.slug === 'contacts' ? { ...m, query: `${m.query} union all select id, workspace_id, email from contacts where id = 1` } : m));
    await using h = await startHarness({ dir, definition: def });
    const plan = await h.app.planner.plan('crm');
    const reason = 'member "contacts" rejected 1 of 13 rows, over its threshold of 0 rejected rows';
    expect(plan.members.map((m) => [m.key, m.status, m.terminates, m.blockedBy])).toEqual([
      ['contacts', 'planned', reason, null],
      ['accounts', 'skipped', null, { member: 'contacts', reason }],
    ]);
  });
});

describe('sequence plan with parent lookups', () => {
  /** A destination that reports ids (like Salesforce or HubSpot) and records every write it is sent. */
  function recordingKind(sent: WriteOperation[]): ConnectorKind<{ name: string }> {
    const capabilities = { deletes: true, upsert: true, maxBatchSize: null, recordIds: true };
    return {
      type: 'recorder',
      description: 'records writes and answers with ids',
      settings: z.strictObject({ name: z.string() }),
      secrets: [],
      example: '{ type: recorder, name: r }',
      destination: {
        capabilities,
        async open() {
          return {
            capabilities,
            async close() {},
            async prepare(target) {
              return {
                async write(batch): Promise<RowOutcome[]> {
                  sent.push(...batch);
                  return batch.map((op) => ({ ok: true, id: `${target.object}-${String(op.key[0])}` }));
                },
              };
            },
          };
        },
      },
    };
  }

  it('counts a child row whose parent is neither recorded nor planned earlier in the plan as rejected, and sends nothing', async () => {
    const dir = tempDir();
    createHierarchyFixture(dir);
    // Workspace 7 belongs to account 99, which the accounts model never returns.
    sqlite(join(dir, 'warehouse.db'), "insert into workspaces values (7, 99, 'Orphan');");
    const sent: WriteOperation[] = [];
    const registry = createConnectorRegistry().register(recordingKind(sent));
    const def = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [source('crm', { type: 'recorder', settings: { name: 'crm' } })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts'), model('workspaces', 'warehouse', 'select id, account_id, name from workspaces')],
      syncs: [
        sync('accounts', { model: 'accounts', destination: 'crm', object: 'Account' }),
        sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'Workspace', mappings: [{ from: 'account_id', to: 'AccountId', lookup: { sync: 'accounts' } }] }),
      ],
      sequences: [sequence('crm', [member('accounts'), member('workspaces')])],
    });
    await using h = await startHarness({ dir, definition: def, connectors: () => registry });
    const plan = await h.app.planner.plan('crm', { samples: 1 });
    expect(sent).toEqual([]);
    expect(plan.members.map((m) => [m.key, m.added, m.rejected])).toEqual([
      ['accounts', 3, 0],
      ['workspaces', 7, 1],
    ]);
    const workspaces = plan.members[1]!;
    expect(workspaces.samples.rejected).toEqual([{ key: '[7]', op: 'added', reason: expect.stringContaining('account_id 99 has not been delivered by accounts yet') }]);
    expect(workspaces.samples.added[0]!.fields).toContainEqual({ field: 'AccountId', after: '(id of the accounts record delivered first)' });
    expect(workspaces.samples.added[0]!.before).toBe('unavailable');

    // After a real run of the parent alone, the child's plan uses the recorded ids.
    const { run } = await h.app.runs.triggerSync('accounts');
    await h.app.runs.waitForSyncRun(run.id);
    sent.length = 0;
    const again = await h.app.planner.plan('crm', { samples: 1 });
    expect(sent).toEqual([]);
    expect(again.members[1]!.samples.added[0]!.fields).toContainEqual({ field: 'AccountId', after: 'Account-1' });
    expect(again.members[1]!.rejected).toBe(1);
  });
});

describe('sequence plan on PostgreSQL', () => {
  it('reads before values from a PostgreSQL destination and changes nothing in a PostgreSQL store', async () => {
    const { createTestDatabase, sql } = await import('../helpers/postgres.js');
    const storeUrl = await createTestDatabase('planstore');
    const crmUrl = await createTestDatabase('plancrm');
    await sql(crmUrl, 'create table accounts (id bigint primary key, name text not null)');
    const dir = tempDir();
    createHierarchyFixture(dir);
    const def = workspace({
      sources: [source('warehouse', { path: 'warehouse.db' })],
      destinations: [{ slug: 'pg', type: 'postgres', settings: { url: '${CRM_URL}' } }],
      models: [model('accounts', 'warehouse', 'select id, name from accounts')],
      syncs: [sync('accounts', { model: 'accounts', destination: 'pg', object: 'accounts', mode: 'mirror', maxDeletePercent: null })],
      sequences: [sequence('crm', [member('accounts')])],
    });
    const env = { CRM_URL: crmUrl, LOCKSTEP_STORE: storeUrl };
    await using h = await startHarness({ dir, definition: def, env });
    const first = await h.app.runs.triggerSequence('crm');
    expect((await h.app.runs.waitForSequenceRun(first.run.id)).status).toBe('done');
    sqlite(join(dir, 'warehouse.db'), "update accounts set name = 'Acme' where id = 1; delete from accounts where id = 3;");
    const stored = async () => {
      const s = (await h.app.store.getSync('accounts'))!;
      const pages = [];
      for await (const page of h.app.store.snapshots.pages(s.id, 100)) pages.push(page);
      return { pages, runs: await h.app.store.listSyncRuns({ syncId: s.id, limit: 10, offset: 0, order: 'asc' }), sequences: await h.app.store.listSequenceRuns({ limit: 10, offset: 0, order: 'asc' }) };
    };
    const before = await stored();
    const destinationBefore = await sql(crmUrl, 'select * from accounts order by id');
    const plan = await h.app.planner.plan('crm');
    expect(plan.members[0]).toMatchObject({ status: 'planned', querySize: 2, added: 0, changed: 1, removed: 1, rejected: 0 });
    expect(plan.members[0]!.samples.changed).toEqual([{ key: [1], before: 'read', fields: [{ field: 'name', before: 'Account 1', after: 'Acme' }] }]);
    expect(plan.members[0]!.samples.removed).toEqual([
      { key: [3], before: 'read', fields: [{ field: 'id', before: 3, after: null }, { field: 'name', before: 'Account 3', after: null }] },
    ]);
    expect(await stored()).toEqual(before);
    expect(await sql(crmUrl, 'select * from accounts order by id')).toEqual(destinationBefore);
  });
});

describe('sequence plan with the planner in the warehouse', () => {
  const PEOPLE = 300;
  /**
   * Every table of the planner's schema, row for row as text (the meta row included), or null
   * without the schema; `times: false` leaves out the meta row's updated_at, to compare two worlds.
   */
  async function plannerState(url: string, times = true) {
    const { sql } = await import('../helpers/postgres.js');
    const tables = await sql<{ name: string }>(url, "select tablename as name from pg_tables where schemaname = 'lockstep_planner' order by 1");
    if ((await sql(url, "select 1 from pg_namespace where nspname = 'lockstep_planner'")).length === 0) return null;
    const state: Record<string, unknown> = {};
    for (const { name } of tables) {
      const row = times || name !== 'lockstep_syncs' ? 't::text' : "(to_jsonb(t) - 'updated_at')::text";
      state[name] = await sql(url, `select ${row} as row from lockstep_planner."${name}" t order by 1`);
    }
    return state;
  }

  async function pgWorld(over: Partial<ModelDef> = {}, connectors?: (real: Connectors) => Connectors) {
    const { createTestDatabase, sql } = await import('../helpers/postgres.js');
    const url = await createTestDatabase('planwh');
    await sql(
      url,
      `create table people (id bigint, name text not null, score integer not null);
       insert into people select g, 'person ' || g, g % 10 from generate_series(1, ${PEOPLE}) g;
       create table crm_people (id bigint primary key, name text, score integer check (score >= 0))`,
    );
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'postgres', settings: { url, planner: 'warehouse' } })],
        destinations: [source('crm', { type: 'postgres', url })],
        // Person 1 comes twice and one row has no key: both refused by the warehouse on every run.
        models: [{ ...model('people', 'warehouse', "select id, name, score from people union all select id, name, score from people where id = 1 union all select null, 'nobody', 1"), ...over }],
        syncs: [sync('people', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 50 })],
        sequences: [sequence('crm', [member('people')])],
      }),
      connectors,
    });
    const runSequence = async () => {
      const { run } = await h.app.runs.triggerSequence('crm');
      expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
      const s = (await h.app.store.getSync('people'))!;
      const [last] = await h.app.store.listSyncRuns({ syncId: s.id, limit: 1, offset: 0, order: 'desc' });
      const rejected = (await h.app.store.listRejectedRows(last!.id, 100, 0)).map((r) => [r.key, r.op, r.reason]);
      return { planned: last!.plannedRows, successful: last!.successfulRows, failed: last!.failedRows, querySize: last!.querySize, comparison: last!.comparison, rejected };
    };
    const change = () =>
      sql(
        url,
        `update people set name = name || '!' where id % 50 = 0;
         update people set score = -1 where id = 7;
         delete from people where id in (3, 4);
         insert into people values (1001, 'new', 1)`,
      );
    const crm = () => sql(url, 'select * from crm_people order by id');
    return { url, h, sql, runSequence, change, crm };
  }

  it('plans a never-run sync as a first run without creating the planner schema, and plans changes without touching it', async () => {
    const { url, h, runSequence, change } = await pgWorld();
    await using _ = h;
    const first = await h.app.planner.plan('crm', { samples: 2 });
    expect(first.members[0]).toMatchObject({ status: 'planned', querySize: PEOPLE + 2, added: PEOPLE + 2, changed: 0, removed: 0, rejected: 2, warnings: [] });
    expect(first.members[0]!.samples.rejected).toEqual([
      { key: '[null]', op: 'added', reason: 'primary key column "id" is null' },
      { key: '[1]', op: 'added', reason: expect.stringContaining('duplicate primary key [1]') },
    ]);
    expect(first.members[0]!.samples.added.map((s) => [s.key, s.before])).toEqual([
      [[1], 'absent'],
      [[2], 'absent'],
    ]);
    expect(await plannerState(url)).toBeNull();

    await runSequence();
    await change();
    const before = await plannerState(url);
    expect(Object.keys(before!)).toEqual(expect.arrayContaining(['lockstep_syncs', 'sync_1_people']));
    const plan = await h.app.planner.plan('crm', { samples: 2 });
    // Person 7's score breaks the destination's check: a plan cannot know, so it is counted as a
    // change. Compared by value, person 1's two rows match the planner table and are not planned;
    // the row without a key is refused again (counted as added, as a run counts it).
    expect(plan.members[0]).toMatchObject({ status: 'planned', querySize: PEOPLE, added: 1 + 1, changed: PEOPLE / 50 + 1, removed: 2, rejected: 1, retried: 1 });
    expect(plan.members[0]!.samples.changed).toEqual([
      { key: [7], before: 'read', fields: [{ field: 'score', before: 7, after: -1 }] },
      { key: [50], before: 'read', fields: [{ field: 'name', before: 'person 50', after: 'person 50!' }] },
    ]);
    expect(plan.members[0]!.samples.added.map((s) => s.key)).toEqual([[1001]]);
    expect(plan.members[0]!.samples.removed.map((s) => [s.key, s.before])).toEqual([
      [[3], 'read'],
      [[4], 'read'],
    ]);
    expect(await plannerState(url)).toEqual(before);
  });

  it('plans a sync whose rows are read again after a transient failure as it plans it read once', async () => {
    // The plan's first read of the rows the warehouse compared fails for a moment, once read: the
    // dry run compares and reads again.
    let failing = false;
    const { h, runSequence, change } = await pgWorld({}, (real) => withReadFailure(real, () => failing));
    await using _ = h;
    await runSequence();
    await change();
    const once = await h.app.planner.plan('crm', { samples: 5 });
    failing = true;
    const again = await h.app.planner.plan('crm', { samples: 5 });
    expect(again.members[0]).toMatchObject({ status: 'planned', querySize: PEOPLE, added: 2, changed: PEOPLE / 50 + 1, removed: 2, rejected: 1, retried: 1 });
    expect(again).toEqual({ ...once, plannedAt: again.plannedAt });
  });

  it('a real run after plans sends exactly what a real run without them sends', async () => {
    const planned = await pgWorld();
    const control = await pgWorld();
    await using _p = planned.h;
    await using _c = control.h;
    await planned.h.app.planner.plan('crm');
    expect(await planned.runSequence()).toEqual(await control.runSequence());
    await Promise.all([planned.change(), control.change()]);
    const plan = await planned.h.app.planner.plan('crm');
    await planned.h.app.planner.plan('crm', { samples: 0 });
    const afterPlan = await planned.runSequence();
    expect(afterPlan).toEqual(await control.runSequence());
    expect(await planned.crm()).toEqual(await control.crm());
    expect(await plannerState(planned.url, false)).toEqual(await plannerState(control.url, false));
    expect([plan.members[0]!.added, plan.members[0]!.changed, plan.members[0]!.removed]).toEqual([
      afterPlan.planned.addedCount,
      afterPlan.planned.changedCount,
      afterPlan.planned.removedCount,
    ]);
  });

  it('leaves a run in progress its planner: the run commits and finishes after the plan, and the plan says its rows are pending', async () => {
    const { url, h, runSequence, change, crm } = await pgWorld();
    await using _ = h;
    await runSequence();
    await change();
    // A run's attempt that has compared and is delivering (as the runner drives it).
    const { PostgresPlanner } = await import('../../src/connectors/postgres/postgres-planner.js');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const running = await PostgresPlanner.open(client, 'lockstep_planner', 'the test database');
    try {
      const s = (await h.app.store.getSync('people'))!;
      const staged = await running.plan({
        sync: { id: s.id, slug: s.slug },
        run: { id: 999, attempt: 1 },
        query: 'select id, name, score from people where id is not null',
        primaryKey: ['id'],
        sends: { added: true, changed: true, removed: true },
        resendAll: false,
        reset: false,
        cursor: null,
      });
      const before = await plannerState(url);
      const plan = await h.app.planner.plan('crm');
      expect(plan.members[0]!.warnings).toEqual([expect.stringMatching(/^sync run 999 stopped part-way or is running/)]);
      expect(await plannerState(url)).toEqual(before);
      // Its last planned row is the removal of person 4: delivered, recorded, and taken in.
      expect(staged.parts.map((part) => [part.op, part.rows])).toEqual([
        ['added', 1],
        ['changed', PEOPLE / 50 + 1],
        ['removed', 2],
      ]);
      await running.commit({ op: 'removed', key: ['4'] }, [], { addedCount: 1, changedCount: PEOPLE / 50 + 1, removedCount: 2 });
      await running.finish();
    } finally {
      await running.close();
    }
    // The planner table took in the run's rows: nothing left to plan but the refused rows.
    const after = await h.app.planner.plan('crm');
    expect(after.members[0]).toMatchObject({ added: 1, changed: 0, removed: 0, rejected: 1, warnings: [] });
    expect((await crm()).length).toBe(PEOPLE);
  });

  it('plans a model with a cursor past its cursor, as the run after it does', async () => {
    const { url, h, sql, runSequence } = await pgWorld({ cursor: 'id', fullCompareEvery: 10 });
    await using _ = h;
    await runSequence();
    await sql(url, "insert into people values (1001, 'new', 1); update people set name = 'unseen' where id = 5");
    const before = await plannerState(url);
    const plan = await h.app.planner.plan('crm', { samples: 1 });
    // Person 5 is behind the cursor: only a full comparison sees its change.
    expect(plan.members[0]).toMatchObject({ status: 'planned', added: 1, changed: 0, removed: 0, rejected: 0 });
    expect(plan.members[0]!.samples.added.map((s) => s.key)).toEqual([[1001]]);
    expect(await plannerState(url)).toEqual(before);
    const run = await runSequence();
    expect(run.comparison?.kind).toBe('cursor');
    expect(run.planned).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
  });

  it('plans a DuckDB source without changing its planner tables, and the run after it sends what the plan said', async () => {
    const dir = tempDir();
    const duck = await import('@duckdb/node-api');
    const path = join(dir, 'warehouse.duckdb');
    const duckdb = async (statements: string) => {
      const instance = await duck.DuckDBInstance.create(path);
      const connection = await instance.connect();
      try {
        return (await connection.runAndReadAll(statements)).getRowObjectsJS();
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
    };
    const plannerTables = async () => {
      const tables = (await duckdb("select table_name as name from information_schema.tables where table_schema = 'lockstep_planner' order by 1")) as Array<{ name: string }>;
      const state: Record<string, unknown> = {};
      for (const { name } of tables) state[name] = await duckdb(`select t::varchar as row from lockstep_planner."${name}" t order by 1`);
      return state;
    };
    await duckdb(`create table people (id bigint, name varchar not null);
      insert into people select g, 'person ' || g from range(1, ${PEOPLE + 1}) r(g)`);
    const { createTestDatabase, sql } = await import('../helpers/postgres.js');
    const url = await createTestDatabase('planduck');
    await sql(url, 'create table crm_people (id bigint primary key, name text)');
    await using h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { type: 'duckdb', settings: { path: 'warehouse.duckdb', planner: 'warehouse' } })],
        destinations: [source('crm', { type: 'postgres', url })],
        models: [model('people', 'warehouse', 'select id, name from people')],
        syncs: [sync('people', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 50 })],
        sequences: [sequence('crm', [member('people')])],
      }),
    });
    const runSequence = async () => {
      const { run } = await h.app.runs.triggerSequence('crm');
      expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
      const s = (await h.app.store.getSync('people'))!;
      const [last] = await h.app.store.listSyncRuns({ syncId: s.id, limit: 1, offset: 0, order: 'desc' });
      return last!;
    };

    const first = await h.app.planner.plan('crm', { samples: 1 });
    expect(first.members[0]).toMatchObject({ status: 'planned', added: PEOPLE, changed: 0, removed: 0, warnings: [] });
    expect(await plannerTables()).toEqual({});
    expect((await runSequence()).plannedRows).toEqual({ addedCount: PEOPLE, changedCount: 0, removedCount: 0 });

    await duckdb(`update people set name = 'renamed' where id = 5; delete from people where id = 6; insert into people values (${PEOPLE + 1}, 'new'), (null, 'nobody')`);
    const before = await plannerTables();
    expect(Object.keys(before)).toEqual(['lockstep_syncs', 'sync_1_people']);
    const plan = await h.app.planner.plan('crm', { samples: 1 });
    expect(plan.members[0]).toMatchObject({ status: 'planned', added: 2, changed: 1, removed: 1, rejected: 1 });
    expect(plan.members[0]!.samples.changed).toEqual([{ key: [5], before: 'read', fields: [{ field: 'name', before: 'person 5', after: 'renamed' }] }]);
    expect(plan.members[0]!.samples.added.map((s) => s.key)).toEqual([[PEOPLE + 1]]);
    expect(await plannerTables()).toEqual(before);

    const after = await runSequence();
    expect(after.plannedRows).toEqual({ addedCount: 2, changedCount: 1, removedCount: 1 });
    expect(after.successfulRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 1 });
    expect(await sql(url, 'select count(*)::int as n from crm_people')).toEqual([{ n: PEOPLE }]);
  });
  it('plans a MySQL source without creating or changing its planner database, and the run after it sends what the plan said', async () => {
    const { createTestMysqlDatabase, mysqlSeries, mysqlSql } = await import('../helpers/mysql.js');
    const url = await createTestMysqlDatabase('planmy');
    const plannerSchema = `${new URL(url).pathname.slice(1)}_p`;
    const my = <T = Record<string, unknown>>(text: string) => mysqlSql<T>(url, text);
    await my(
      `create table people (id bigint null, name varchar(40) not null, score int not null);
       insert into people select seq, concat('person ', seq), seq % 10 from ${mysqlSeries(PEOPLE)};
       create table crm_people (id bigint primary key, name varchar(40), score int check (score >= 0))`,
    );
    /** Every table of the planner's database, row for row (the meta row without its time), or null without the database. */
    const plannerState = async () => {
      if ((await my(`select 1 from information_schema.schemata where schema_name = '${plannerSchema}'`)).length === 0) return null;
      const tables = await my<{ name: string }>(`select table_name as name from information_schema.tables where table_schema = '${plannerSchema}' order by 1`);
      const state: Record<string, unknown> = {};
      for (const { name } of tables) state[name] = await my(`select * from \`${plannerSchema}\`.\`${name}\` order by 1`);
      return state;
    };
    await using h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'mysql', settings: { url, planner: 'warehouse', plannerSchema } })],
        destinations: [source('crm', { type: 'mysql', url })],
        // Person 1 comes twice and one row has no key: both refused by the warehouse on every run.
        models: [model('people', 'warehouse', "select id, name, score from people union all select id, name, score from people where id = 1 union all select null, 'nobody', 1")],
        syncs: [sync('people', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 50 })],
        sequences: [sequence('crm', [member('people')])],
      }),
    });
    const runSequence = async () => {
      const { run } = await h.app.runs.triggerSequence('crm');
      expect((await h.app.runs.waitForSequenceRun(run.id)).status).toBe('done');
      const s = (await h.app.store.getSync('people'))!;
      const [last] = await h.app.store.listSyncRuns({ syncId: s.id, limit: 1, offset: 0, order: 'desc' });
      return last!;
    };

    const first = await h.app.planner.plan('crm', { samples: 2 });
    expect(first.members[0]).toMatchObject({ status: 'planned', querySize: PEOPLE + 2, added: PEOPLE + 2, changed: 0, removed: 0, rejected: 2, warnings: [] });
    expect(first.members[0]!.samples.rejected).toEqual([
      { key: '[null]', op: 'added', reason: 'primary key column "id" is null' },
      { key: '[1]', op: 'added', reason: expect.stringContaining('duplicate primary key [1]') },
    ]);
    expect(await plannerState()).toBeNull();
    expect((await runSequence()).plannedRows).toEqual({ addedCount: PEOPLE + 2, changedCount: 0, removedCount: 0 });

    await my(
      `update people set name = concat(name, '!') where id % 50 = 0;
       update people set score = -1 where id = 7;
       delete from people where id in (3, 4);
       insert into people values (1001, 'new', 1)`,
    );
    const before = await plannerState();
    expect(Object.keys(before!)).toEqual(['lockstep_syncs', 'sync_1_people']);
    const plan = await h.app.planner.plan('crm', { samples: 2 });
    expect(plan.members[0]).toMatchObject({ status: 'planned', querySize: PEOPLE, added: 1 + 1, changed: PEOPLE / 50 + 1, removed: 2, rejected: 1 });
    expect(plan.members[0]!.samples.changed).toEqual([
      { key: [7], before: 'read', fields: [{ field: 'score', before: 7, after: -1 }] },
      { key: [50], before: 'read', fields: [{ field: 'name', before: 'person 50', after: 'person 50!' }] },
    ]);
    expect(plan.members[0]!.samples.added.map((s) => s.key)).toEqual([[1001]]);
    expect(plan.members[0]!.samples.removed.map((s) => [s.key, s.before])).toEqual([
      [[3], 'read'],
      [[4], 'read'],
    ]);
    expect(await plannerState()).toEqual(before);

    const after = await runSequence();
    expect(after.plannedRows).toEqual({ addedCount: 2, changedCount: PEOPLE / 50 + 1, removedCount: 2 });
    expect(after.failedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 0 });
    expect(await my('select count(*) as n from crm_people')).toEqual([{ n: String(PEOPLE - 1) }]);
  });
});

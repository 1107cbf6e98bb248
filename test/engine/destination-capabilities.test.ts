/**
 * What the engine does with what a destination declares and answers: `maxBatchSize` caps batches,
 * ids reported per row are recorded (and dropped on delete), `lookup` mappings send a parent sync's
 * recorded ids (rows whose parent is missing are rejected and retried next run), rows answered
 * `retryable` are sent again within the run, and `planAhead` lets a writer see the run's size first.
 * The destination here is a recording kind registered like any other; the warehouse is real SQLite.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createConnectorRegistry } from '../../src/app.js';
import type { ConnectorKind } from '../../src/core/connector-kind.js';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { DestinationWriter, RowOutcome, WriteOperation, WriteTarget } from '../../src/core/ports.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { createHierarchyFixture, sqlite, startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

interface Recorder {
  /** Every write call, per object: the operations sent. */
  calls: Map<string, WriteOperation[][]>;
  /** Objects whose rows are answered retryable this many times before being accepted. */
  flaky: Map<string, number>;
  /**
   * Keys answered retryable while the rest of their batch goes through; a write of only such keys
   * fails as a whole, transiently (as an HTTP destination does when its one request answers 503).
   */
  stuck: Set<unknown>;
  /** Objects whose every write fails as a whole, transiently, asking to wait a second. */
  down: Set<string>;
  planned: Array<{ rows: number; complete: boolean }>;
  planAhead: number;
  /** Per prepare: whether the engine said the sync delivered rows before (`WriteTarget.delivered`). */
  delivered: Array<boolean | undefined>;
}

function recordingKind(recorder: Recorder): ConnectorKind<{ name: string }> {
  return {
    type: 'recorder',
    description: 'A destination that records what it is sent and answers with ids.',
    settings: z.strictObject({ name: z.string() }),
    secrets: [],
    example: '{ type: recorder, name: r }',
    destination: {
      capabilities: { deletes: true, upsert: true, maxBatchSize: 3, recordIds: true },
      async open() {
        return {
          capabilities: { deletes: true, upsert: true, maxBatchSize: 3, recordIds: true },
          async close() {},
          async prepare(target: WriteTarget): Promise<DestinationWriter> {
            recorder.delivered.push(target.delivered);
            const writer: DestinationWriter = {
              planAhead: recorder.planAhead,
              plan: (planned) => recorder.planned.push(planned),
              async write(batch): Promise<RowOutcome[]> {
                const calls = recorder.calls.get(target.object) ?? [];
                calls.push(batch.map((op) => ({ kind: op.kind, key: op.key, values: [...op.values] })));
                recorder.calls.set(target.object, calls);
                const flaky = recorder.flaky.get(target.object) ?? 0;
                if (flaky > 0) {
                  recorder.flaky.set(target.object, flaky - 1);
                  return batch.map(() => ({ ok: false, reason: 'HTTP 503: busy', retryable: true }));
                }
                if (recorder.down.has(target.object)) throw new LockstepError(ErrorCode.Transient, 'HTTP 503: down', { retryable: true, retryAfterSeconds: 1 });
                if (batch.every((op) => recorder.stuck.has(op.key[0]))) throw new LockstepError(ErrorCode.Transient, 'POST /accounts/2 answered 503: down', { retryable: true });
                if (batch.some((op) => recorder.stuck.has(op.key[0]))) {
                  return batch.map((op) => (recorder.stuck.has(op.key[0]) ? { ok: false, reason: 'POST /accounts/2 answered 503: down', retryable: true } : { ok: true }));
                }
                return batch.map((op) => ({ ok: true, id: `${target.object}-${String(op.key[0])}` }));
              },
            };
            return writer;
          },
        };
      },
    },
  };
}

async function setup(recorder: Recorder) {
  const dir = tempDir();
  createHierarchyFixture(dir);
  const registry = createConnectorRegistry().register(recordingKind(recorder));
  const definition = workspace({
    sources: [source('warehouse', { path: 'warehouse.db' })],
    destinations: [source('crm', { type: 'recorder', settings: { name: 'crm' } })],
    models: [
      model('accounts', 'warehouse', 'select id, name from accounts'),
      model('workspaces', 'warehouse', 'select id, account_id, name from workspaces'),
    ],
    syncs: [
      sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
      sync('workspaces', {
        model: 'workspaces',
        destination: 'crm',
        object: 'workspaces',
        mode: 'mirror',
        mappings: [{ from: 'account_id', to: 'AccountId', lookup: { sync: 'accounts' } }],
      }),
    ],
    sequences: [sequence('crm', [member('accounts'), member('workspaces')])],
  });
  const h = await startHarness({ dir, definition, connectors: () => registry, env: { LOCKSTEP_POLL_MS: '20' } });
  const runSync = async (slug: string) => {
    const { run } = await h.app.runs.triggerSync(slug);
    return h.app.runs.waitForSyncRun(run.id);
  };
  return { h, runSync };
}

const newRecorder = (over: Partial<Recorder> = {}): Recorder => ({ calls: new Map(), flaky: new Map(), stuck: new Set(), down: new Set(), planned: [], planAhead: 0, delivered: [], ...over });

describe('destination capabilities in the engine', () => {
  it('caps batches at maxBatchSize, records ids, and sends a parent id through lookup', async () => {
    const recorder = newRecorder();
    const { h, runSync } = await setup(recorder);
    await using _ = h;

    // The child first: no parent has an id yet, so every row is rejected, naming the parent sync.
    const early = await runSync('workspaces');
    expect(early.status).toBe('warning');
    expect(early.failedRows.addedCount).toBe(6);
    const reasons = await h.app.store.listRejectedRows(early.id, 10, 0);
    expect(reasons[0]?.reason).toBe('account_id 1 has not been delivered by accounts yet (no id recorded for it); this row is sent again on the next run');
    expect(recorder.calls.get('workspaces')).toBeUndefined();

    const accounts = await runSync('accounts');
    expect(accounts.status).toBe('success');
    expect(recorder.calls.get('accounts')?.map((batch) => batch.length)).toEqual([3]);
    const accountsSync = await h.app.store.getSync('accounts');
    const ids = await h.app.store.snapshots.recordIdsGet(accountsSync!.id, ['[1]', '[2]', '[3]']);
    expect([...ids.entries()]).toEqual([
      ['[1]', 'accounts-1'],
      ['[2]', 'accounts-2'],
      ['[3]', 'accounts-3'],
    ]);

    const later = await runSync('workspaces');
    expect(later.status).toBe('success');
    expect(later.successfulRows.addedCount).toBe(6);
    const sent = recorder.calls.get('workspaces') ?? [];
    expect(sent.map((batch) => batch.length)).toEqual([3, 3]);
    // The account id column went as the parent's destination id.
    expect(sent.flat().map((op) => op.values[1])).toEqual(['accounts-1', 'accounts-2', 'accounts-3', 'accounts-1', 'accounts-2', 'accounts-3']);
  });

  it('sends rows answered retryable again within the run', async () => {
    const recorder = newRecorder({ flaky: new Map([['accounts', 2]]) });
    const { h, runSync } = await setup(recorder);
    await using _ = h;
    const run = await runSync('accounts');
    expect(run.status).toBe('success');
    expect(run.successfulRows.addedCount).toBe(3);
    expect(recorder.calls.get('accounts')?.length).toBe(3);
  });

  it('rejects rows still answered retryable when the attempts run out', async () => {
    const recorder = newRecorder({ flaky: new Map([['accounts', 99]]) });
    const { h, runSync } = await setup(recorder);
    await using _ = h;
    const run = await runSync('accounts');
    expect(run.status).toBe('warning');
    expect(run.failedRows.addedCount).toBe(3);
    expect((await h.app.store.listRejectedRows(run.id, 10, 0))[0]?.reason).toBe('HTTP 503: busy');
    expect(recorder.calls.get('accounts')?.length).toBe(h.app.config.retry.attempts);
  });

  it('rejects a row answered retryable whose sends alone keep failing, and commits the rest of its batch', async () => {
    const recorder = newRecorder({ stuck: new Set([2]) });
    const { h, runSync } = await setup(recorder);
    await using _ = h;
    const run = await runSync('accounts');
    expect(run.status).toBe('warning');
    expect(run.error).toBeNull();
    expect(run.successfulRows.addedCount).toBe(2);
    expect(run.failedRows.addedCount).toBe(1);
    const rejected = await h.app.store.listRejectedRows(run.id, 10, 0);
    expect(rejected.map((r) => [r.key, r.reason])).toEqual([['[2]', 'POST /accounts/2 answered 503: down']]);
    // The batch once, then the stuck row alone at each attempt left.
    expect(recorder.calls.get('accounts')?.map((batch) => batch.length)).toEqual([3, ...Array<number>(h.app.config.retry.attempts - 1).fill(1)]);
  });

  it('stops a run cancelled from another process while a failing batch is retried, before its attempts run out', async () => {
    const recorder = newRecorder({ down: new Set(['accounts']) });
    const { h } = await setup(recorder);
    await using _ = h;
    const { run } = await h.app.runs.triggerSync('accounts');
    while (!recorder.calls.has('accounts')) await new Promise((resolve) => setTimeout(resolve, 10));
    // As `lockstep sync cancel` does from another process: the request is only in the store.
    await h.app.store.requestSyncRunCancel(run.id);
    const ended = await h.app.runs.waitForSyncRun(run.id);
    expect(ended.status).toBe('cancelled');
    expect(recorder.calls.get('accounts')?.length).toBeLessThan(h.app.config.retry.attempts);
  });

  it('lets a writer with planAhead see how many rows the run plans before its first batch', async () => {
    const recorder = newRecorder({ planAhead: 4 });
    const { h, runSync } = await setup(recorder);
    await using _ = h;
    await runSync('accounts');
    expect(recorder.planned).toEqual([{ rows: 3, complete: true }]);
    await runSync('accounts');
    // Nothing changed: nothing planned, and the writer hears so.
    expect(recorder.planned).toEqual([{ rows: 3, complete: true }, { rows: 0, complete: true }]);
  });

  it('tells the writer whether the sync delivered rows before', async () => {
    const recorder = newRecorder();
    const { h, runSync } = await setup(recorder);
    await using _ = h;
    await runSync('accounts');
    sqlite(`${h.dir}/warehouse.db`, "insert into accounts values (9, 'new')");
    await runSync('accounts');
    expect(recorder.delivered).toEqual([false, true]);
  });

  it('drops the ids of deleted rows', async () => {
    const recorder = newRecorder();
    const { h, runSync } = await setup(recorder);
    await using _ = h;
    await runSync('accounts');
    expect((await runSync('workspaces')).status).toBe('success');
    const workspaces = await h.app.store.getSync('workspaces');
    expect((await h.app.store.snapshots.recordIdsGet(workspaces!.id, ['[6]'])).get('[6]')).toBe('workspaces-6');
    sqlite(`${h.dir}/warehouse.db`, 'delete from workspaces where id = 6');
    const mirrored = await runSync('workspaces');
    expect(mirrored.successfulRows.removedCount).toBe(1);
    expect((await h.app.store.snapshots.recordIdsGet(workspaces!.id, ['[6]'])).size).toBe(0);
  });
});

describe('lookups with the planner in the warehouse', () => {
  it('runs a sync whose mapping looks up parent ids when nothing is added or changed, and when only rows are removed', async () => {
    const url = await createTestDatabase('lockstep_lookup_wh');
    await sql(
      url,
      `create table accounts (id int primary key, name text);
       create table workspaces (id int primary key, account_id int, name text);
       insert into accounts values (1, 'a'), (2, 'b');
       insert into workspaces values (10, 1, 'w10'), (11, 2, 'w11'), (12, 2, 'w12');`,
    );
    const recorder = newRecorder();
    const registry = createConnectorRegistry().register(recordingKind(recorder));
    const definition = workspace({
      sources: [source('warehouse', { type: 'postgres', settings: { url, planner: 'warehouse' } })],
      destinations: [source('crm', { type: 'recorder', settings: { name: 'crm' } })],
      models: [model('accounts', 'warehouse', 'select id, name from accounts'), model('workspaces', 'warehouse', 'select id, account_id, name from workspaces')],
      syncs: [
        sync('accounts', { model: 'accounts', destination: 'crm', object: 'accounts' }),
        sync('workspaces', { model: 'workspaces', destination: 'crm', object: 'workspaces', mode: 'mirror', mappings: [{ from: 'account_id', to: 'AccountId', lookup: { sync: 'accounts' } }] }),
      ],
    });
    await using h = await startHarness({ dir: tempDir(), definition, connectors: () => registry });
    const runSync = async (slug: string) => h.app.runs.waitForSyncRun((await h.app.runs.triggerSync(slug)).run.id);
    expect((await runSync('accounts')).status).toBe('success');
    expect((await runSync('workspaces')).successfulRows.addedCount).toBe(3);
    const idle = await runSync('workspaces');
    expect(idle).toMatchObject({ status: 'success', error: null, plannedRows: { addedCount: 0, changedCount: 0, removedCount: 0 } });
    // The writer hears whether the sync delivered before: not on its first run.
    expect(recorder.delivered).toEqual([false, false, true]);
    await sql(url, 'delete from workspaces where id = 12');
    const removed = await runSync('workspaces');
    expect(removed).toMatchObject({ status: 'success', error: null, successfulRows: { addedCount: 0, changedCount: 0, removedCount: 1 } });
  });
});

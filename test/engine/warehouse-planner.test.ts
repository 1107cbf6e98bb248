/**
 * The planner in the warehouse (`planner: warehouse` on a PostgreSQL, DuckDB or MySQL source): the model is compared
 * with the sync's planner table in the source by SQL and only the rows that differ travel; rejected
 * rows stay out of the planner table and are planned again; null and duplicate keys are found by
 * the warehouse; a planner table changed by hand, dropped, or of other column types is rebuilt and
 * the run record says so; a model's cursor reads only rows past it, with full comparisons every
 * `fullCompareEvery` runs or on demand; a user who may not create the schema gets the grant to add
 * (or, with `auto`, the store's planner); a stale attempt cannot write the planner's state, and
 * the attempt that takes a run over counts the rows taken in by the watermark as recorded with it;
 * on PostgreSQL a first run's staging table is built alongside its delivery, both in one snapshot.
 */
import pg from 'pg';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { PostgresSource } from '../../src/connectors/index.js';
import { PostgresPlanner, plannerTuning } from '../../src/connectors/postgres/postgres-planner.js';
import { ErrorCode, type LockstepError } from '../../src/core/errors.js';
import type { Connectors, Value, WarehousePlanPart } from '../../src/core/ports.js';
import type { ModelDef, SequenceDef, SyncDef } from '../../src/core/workspace.js';
import { member, model, sequence, source, sync, workspace } from '../helpers/definitions.js';
import { withPlannerStop, withReadFailure, withShortReads, withWriteHook } from '../helpers/fault-connectors.js';
import { startHarness, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const ROWS = 3000;

async function setup(
  options: { models?: ModelDef[]; sync?: Partial<SyncDef>; settings?: Record<string, unknown>; url?: string; sequences?: SequenceDef[]; connectors?: (real: Connectors) => Connectors; env?: Record<string, string> } = {},
) {
  const url = options.url ?? (await createTestDatabase('lockstep_wplan'));
  await sql(
    url,
    `create table if not exists people (id bigint primary key, name text not null, score integer not null, seen_at timestamptz);
     insert into people select g, 'person ' || g, g % 100, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
       from generate_series(1, ${ROWS}) g on conflict do nothing;
     create table if not exists crm_people (id bigint primary key, name text, score integer check (score >= 0), seen_at timestamptz)`,
  );
  const h = await startHarness({
    dir: tempDir(),
    definition: workspace({
      sources: [source('warehouse', { type: 'postgres', settings: { url, planner: 'warehouse', ...options.settings } })],
      destinations: [source('crm', { type: 'postgres', url })],
      models: options.models ?? [model('people', 'warehouse', 'select id, name, score, seen_at from people')],
      syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 500, ...options.sync })],
      ...(options.sequences ? { sequences: options.sequences } : {}),
    }),
    connectors: options.connectors,
    env: options.env,
  });
  const run = async (options: { fullCompare?: boolean; fullResync?: boolean } = {}) => {
    const { run } = await h.app.runs.triggerSync('people-to-crm', options);
    return h.app.runs.waitForSyncRun(run.id);
  };
  const digest = async (query: string) => sql(url, `select count(*)::int as n, md5(string_agg(p::text, '|' order by id)) as m from (${query}) p`);
  return { url, h, run, digest };
}

const NONE = { addedCount: 0, changedCount: 0, removedCount: 0 };

/** A run's request to a planner opened by hand: every row of table `people`, keyed by id, every kind of change sent. */
const planRequest = (run: { id: number; attempt: number }) => ({
  sync: { id: 7, slug: 'people' },
  run,
  query: 'select * from people',
  primaryKey: ['id'],
  sends: { added: true, changed: true, removed: true },
  resendAll: false,
  reset: false,
  cursor: null,
});

/**
 * Watches the statements every PostgreSQL client runs (until vi.restoreAllMocks): the texts `keep`
 * takes (all by default), and `fail` may answer one with an error instead of running it.
 */
function watchQueries(options: { keep?: (text: string) => boolean; fail?: (text: string) => Error | null } = {}): string[] {
  const texts: string[] = [];
  const query = pg.Client.prototype.query;
  vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
    const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
    if (options.keep?.(text) ?? true) texts.push(text);
    const error = options.fail?.(text);
    return error ? Promise.reject(error) : (query as (...a: unknown[]) => unknown).apply(this, args);
  } as never);
  return texts;
}

/**
 * Runs the sync with the planner's connection failing once as the run records its end (its rows
 * taken in, not committed): the run retries, and its next attempt takes the delivered rows in again.
 */
async function expectTakenInAgain(run: () => Promise<{ status: string; comparison?: { notes?: string[] } | null }>): Promise<void> {
  let failed = false;
  watchQueries({
    fail: (text) => {
      if (failed || !text.includes('SET staging = NULL, part = -1, through = NULL, columns =')) return null;
      failed = true;
      return Object.assign(new Error('server closed the connection unexpectedly'), { code: '57P01' });
    },
  });
  const retried = await run();
  expect(failed).toBe(true);
  expect(retried.status).toBe('success');
  expect(retried.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
}

/**
 * Stops a run right after the planner's commit `stopAt` picks, once (withPlannerStop): as a worker
 * killed before it recorded that commit's rows in the run's record. With a lease of a second, the
 * worker takes the run over as its attempt 2.
 */
function plannerStop() {
  let at: ((through: { op: WarehousePlanPart['op']; key: Value[] }) => boolean) | null = null;
  return {
    connectors: (real: Connectors) =>
      withPlannerStop(real, (through) => {
        if (!at?.(through)) return false;
        at = null;
        return true;
      }),
    env: { LOCKSTEP_LEASE_SECONDS: '1' },
    /**
     * Runs the sync by `run`, stopped after the first commit whose last row is row `key` of kind
     * `op` or later in the planner's order; answers the run as it ended.
     */
    async run<T>(run: () => Promise<T>, op: WarehousePlanPart['op'], key: number): Promise<T> {
      const kinds = ['added', 'changed', 'removed'];
      at = (through) => kinds.indexOf(through.op) > kinds.indexOf(op) || (through.op === op && Number(through.key[0]) >= key);
      const ended = await run();
      expect(at, 'the run was not stopped').toBeNull();
      return ended;
    },
  };
}

/** A run's planned, delivered and rejected counts, and how it ended. */
const outcome = (r: { status: string; attempt: number; plannedRows: typeof NONE; successfulRows: typeof NONE; failedRows: typeof NONE }) => ({
  status: r.status,
  attempt: r.attempt,
  planned: r.plannedRows,
  delivered: r.successfulRows,
  rejected: r.failedRows,
});

/** Counts of added, changed and removed rows. */
const counts = (addedCount: number, changedCount: number, removedCount: number) => ({ addedCount, changedCount, removedCount });

/** Keeps a run's changes in the planner table's delta from `deltaRows` planner rows, folded in past `foldFraction` of them, for this test. */
function keepInDelta(deltaRows: number, foldFraction: number): void {
  const before = { deltaRows: plannerTuning.deltaRows, foldFraction: plannerTuning.foldFraction };
  Object.assign(plannerTuning, { deltaRows, foldFraction });
  onTestFinished(() => void Object.assign(plannerTuning, before));
}

describe('planner in the warehouse (PostgreSQL)', () => {
  it('sends only what changed, keeps rejected rows out of the planner table and retries them, and keeps nothing in the store', async () => {
    const { url, h, run, digest } = await setup();
    await using _ = h;
    await sql(url, 'update people set score = -1 where id in (17, 2999)');
    const first = await run();
    expect(first.status).toBe('warning');
    expect(first.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect(first.failedRows).toEqual({ addedCount: 2, changedCount: 0, removedCount: 0 });
    expect(first.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    // Where the time went: the comparison in the warehouse is the plan, the planner table's take-in a commit.
    const phases = first.phaseMs as Record<string, number>;
    expect(phases.plan).toBeGreaterThan(0);
    expect(phases.commit).toBeGreaterThan(0);
    expect(phases.deliver).toBeGreaterThan(0);
    expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_1_people_to_crm')).toEqual([{ n: ROWS - 2 }]);
    expect(await h.app.store.snapshots.count(first.syncId)).toBe(0);

    await sql(
      url,
      `update people set score = 0 where id in (17, 2999);
       update people set name = name || '!' where id % 100 = 0;
       update people set score = -5 where id = 50;
       delete from people where id in (3, 4);
       insert into people values (5001, 'new', 1, null)`,
    );
    const second = await run();
    expect(second.plannedRows).toEqual({ addedCount: 3, changedCount: ROWS / 100 + 1, removedCount: 2 });
    expect(second.failedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    const rejected = await h.app.store.listRejectedRows(second.id, 10, 0);
    expect(rejected.map((r) => [r.key, r.op])).toEqual([['[50]', 'changed']]);
    // The rejected change keeps the planner table's old values, so it is planned again.
    expect(await sql(url, 'select score from lockstep_planner.sync_1_people_to_crm where id = 50')).toEqual([{ score: 50 }]);

    await sql(url, 'update people set score = 7 where id = 50');
    const third = await run();
    expect(third.status).toBe('success');
    expect(third.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('sends every row once after the source switches planners, whose records went stale meanwhile; the destination ends equal', async () => {
    const { url, h, run, digest } = await setup();
    await using _ = h;
    const switchTo = async (planner: 'store' | 'warehouse') => {
      const state = await h.app.store.loadWorkspace();
      const sources = state.sources.map((s) => (s.slug === 'warehouse' ? { ...s, settings: { ...s.settings, planner } } : s));
      await h.app.store.applyWorkspace({ ...state, sources }, h.app.clock.now());
    };
    expect((await run()).plannedRows.addedCount).toBe(ROWS);
    await switchTo('store');
    // The store's planner has never run: its snapshot is empty, every row goes as added, once.
    expect((await run()).plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect((await run()).plannedRows).toEqual(NONE);
    // A change while the store plans, then back to the warehouse, whose planner table missed it.
    await sql(url, "update people set name = 'changed under the store' where id = 4");
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    await sql(url, "update people set name = 'person 4' where id = 4");
    await switchTo('warehouse');
    const back = await run();
    expect(back.plannedRows.addedCount + back.plannedRows.changedCount).toBe(ROWS);
    expect(back.comparison?.notes?.join(' ')).toContain("the source's planner changed from Lockstep's store to the warehouse since the sync's last run");
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('sends every row once to the object a sync was pointed at since its last run, which its planner table says nothing of', async () => {
    const { url, h, run, digest } = await setup();
    await using _ = h;
    expect((await run()).plannedRows.addedCount).toBe(ROWS);
    await sql(url, 'create table crm_people_next (id bigint primary key, name text, score integer, seen_at timestamptz)');
    const state = await h.app.store.loadWorkspace();
    const syncs = state.syncs.map((s) => (s.slug === 'people-to-crm' ? { ...s, object: 'crm_people_next' } : s));
    await h.app.store.applyWorkspace({ ...state, syncs }, h.app.clock.now());
    const moved = await run();
    expect(moved.status, moved.error ?? '').toBe('success');
    expect(moved.plannedRows.addedCount + moved.plannedRows.changedCount).toBe(ROWS);
    expect(moved.comparison?.notes?.join(' ')).toContain('the sync writes to another destination or object since its last run');
    expect(await digest('select * from crm_people_next')).toEqual(await digest('select * from people'));
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('compares and sends columns whose names differ only in case (quoted), which PostgreSQL keeps apart', async () => {
    const { url, h, run } = await setup({ models: [model('people', 'warehouse', 'select id, name, upper(name) as "NAME", score, seen_at from people where id <= 5')] });
    await using _ = h;
    await sql(url, 'alter table crm_people add column "NAME" text');
    expect(await run()).toMatchObject({ status: 'success', successfulRows: counts(5, 0, 0) });
    await sql(url, "update people set name = 'changed' where id = 2");
    expect(await run()).toMatchObject({ status: 'success', successfulRows: counts(0, 1, 0) });
    expect(await sql(url, 'select name, "NAME" from crm_people where id = 2')).toEqual([{ name: 'changed', NAME: 'CHANGED' }]);
  });

  it('leaves only its table of syncs and the planner table between runs', async () => {
    const { url, h, run } = await setup();
    await using _ = h;
    const tables = () => sql(url, "select relname from pg_class where relnamespace = 'lockstep_planner'::regnamespace and relkind = 'r' order by 1");
    const left = [{ relname: 'lockstep_syncs' }, { relname: 'sync_1_people_to_crm' }];
    expect((await run()).status).toBe('success');
    expect(await tables()).toEqual(left);
    await sql(url, "update people set name = 'changed' where id = 4");
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    expect(await tables()).toEqual(left);
    const { run: reset } = await h.app.runs.triggerSync('people-to-crm', { resetCDC: true });
    expect((await h.app.runs.waitForSyncRun(reset.id)).status).toBe('success');
    expect(await tables()).toEqual(left);
  });

  it('takes the model as delivered on resetCDC, and sends only new keys in insert mode, full resync or not', async () => {
    const { url, h, run } = await setup({ sync: { mode: 'insert' } });
    await using _ = h;
    const { run: reset } = await h.app.runs.triggerSync('people-to-crm', { resetCDC: true });
    const afterReset = await h.app.runs.waitForSyncRun(reset.id);
    expect(afterReset.status).toBe('success');
    expect(afterReset.plannedRows).toEqual(NONE);
    expect(await sql(url, 'select count(*)::int as n from crm_people')).toEqual([{ n: 0 }]);
    expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_1_people_to_crm')).toEqual([{ n: ROWS }]);

    // Insert mode: a changed row is not sent (and stays changed); a new key is.
    await sql(url, `update people set name = 'changed' where id = 1; insert into people values (9001, 'new', 1, null)`);
    const inserted = await run();
    expect(inserted.plannedRows).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
    expect(await sql(url, 'select id from crm_people')).toEqual([{ id: '9001' }]);

    // A full resync in insert mode still sends only keys never delivered; the planner table keeps them all.
    const all = await run({ fullResync: true });
    expect(all.plannedRows).toEqual(NONE);
    expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_1_people_to_crm')).toEqual([{ n: ROWS + 1 }]);
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it.each([
    ['first', 'never'],
    ['alongside', 'always'],
  ] as const)('finds null and duplicate keys in the warehouse and refuses them (a first run\'s staging table built %s)', async (_built, firstRun) => {
    plannerTuning.firstRun = firstRun;
    onTestFinished(() => {
      plannerTuning.firstRun = 'unsorted';
    });
    const { url, h, run } = await setup({
      models: [
        model(
          'people',
          'warehouse',
          `select id, name, score, seen_at from people
           union all select id, name || ' again', score, seen_at from people where id = 5
           union all select null::bigint, 'nobody', 1, null`,
        ),
      ],
    });
    await using _ = h;
    const first = await run();
    expect(first.status).toBe('warning');
    expect(first.failedRows.addedCount).toBe(2);
    const reasons = (await h.app.store.listRejectedRows(first.id, 10, 0)).map((r) => [r.key, r.reason]);
    expect(reasons).toContainEqual(['[null]', 'primary key column "id" is null']);
    expect(reasons.find(([key]) => key === '[5]')?.[1]).toMatch(/^duplicate primary key \[5\]/);
    expect(first.successfulRows.addedCount).toBe(ROWS);
    // The one row of the repeated key that was sent is the one the planner table holds.
    const row5 = 'select name from %s where id = 5';
    expect(await sql(url, row5.replace('%s', 'crm_people'))).toEqual(await sql(url, row5.replace('%s', 'lockstep_planner.sync_1_people_to_crm')));
  });

  describe('a first run\'s staging table built alongside its delivery', () => {
    afterEach(() => {
      plannerTuning.firstRun = 'unsorted';
      vi.restoreAllMocks();
    });

    it('delivers and stages the model as one snapshot saw it, whatever changes meanwhile', async () => {
      plannerTuning.firstRun = 'always';
      const { url, h, run, digest } = await setup();
      await using _ = h;
      // As the delivery takes the snapshot, the model changes: neither the delivery nor the staging table sees it.
      const texts: string[] = [];
      const query = pg.Client.prototype.query;
      let changed = false;
      vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
        const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
        texts.push(text);
        const go = () => (query as (...a: unknown[]) => unknown).apply(this, args);
        if (!text.includes('SET TRANSACTION SNAPSHOT') || changed) return go();
        changed = true;
        return sql(url, `update people set name = 'late' where id = 1; insert into people values (${ROWS + 1}, 'late', 1, null)`).then(go);
      } as never);
      const first = await run();
      expect(first.status).toBe('success');
      expect(first.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
      expect(first.successfulRows.addedCount).toBe(ROWS);
      expect(texts.filter((t) => t.includes('pg_export_snapshot'))).toHaveLength(1);
      expect(changed).toBe(true);
      expect(await sql(url, 'select name from crm_people where id = 1')).toEqual([{ name: 'person 1' }]);
      expect(await digest('select * from lockstep_planner.sync_1_people_to_crm')).toEqual(await digest('select * from crm_people'));
      expect(await sql(url, 'select count(*)::int as n from crm_people')).toEqual([{ n: ROWS }]);
      // Analysed as it was built, for the next comparison's plan.
      expect(await sql(url, "select count(*) > 0 as found from pg_stats where schemaname = 'lockstep_planner' and tablename = 'sync_1_people_to_crm'")).toEqual([{ found: true }]);
      vi.restoreAllMocks();

      const second = await run();
      expect(second.plannedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 0 });
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    });

    it('leaves nothing recorded when the run stops before the table is built, and the next attempt starts the first run again', async () => {
      plannerTuning.firstRun = 'always';
      const url = await createTestDatabase('lockstep_walong');
      await sql(url, `create table people (id bigint primary key, name text); insert into people select g, 'p' || g from generate_series(1, 3000) g`);
      const open = async () => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        return PostgresPlanner.open(client, 'lockstep_planner', 'test', {
          connect: async () => {
            const side = new pg.Client({ connectionString: url });
            await side.connect();
            return side;
          },
        });
      };
      // Insert mode never sends a row twice: its first run builds the table first.
      const inserting = await open();
      try {
        const plan = await inserting.plan({ ...planRequest({ id: 1, attempt: 1 }), sync: { id: 8, slug: 'inserted' }, sends: { added: true, changed: false, removed: false } });
        expect(plan.parts.map((p) => [p.op, p.rows, p.snapshot])).toEqual([['added', 3000, undefined]]);
      } finally {
        await inserting.close();
      }

      const stopped = await open();
      const plan = await stopped.plan(planRequest({ id: 2, attempt: 1 }));
      const [part] = plan.parts;
      expect(part?.snapshot).toEqual(expect.any(String));
      // The delivery reads in the snapshot, rows the model gains afterwards unseen.
      await sql(url, `insert into people values (3001, 'later')`);
      const reader = new pg.Client({ connectionString: url });
      await reader.connect();
      try {
        await reader.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '${part!.snapshot}'`);
        expect((await reader.query(`SELECT count(*)::int AS n FROM (${part!.query}) AS r`)).rows).toEqual([{ n: 3000 }]);
      } finally {
        await reader.end();
      }
      expect(await part!.counted).toEqual({ rows: 3000, refused: [] });
      // Delivered up to key 100, then stopped before the table was recorded.
      await stopped.commit({ op: 'added', key: ['100'] }, [['7']], counts(99, 0, 0));
      await stopped.close();
      expect(await sql(url, 'select staging, part from lockstep_planner.lockstep_syncs where sync_id = 7')).toEqual([{ staging: null, part: -1 }]);

      const again = await open();
      try {
        const next = await again.plan(planRequest({ id: 2, attempt: 2 }));
        expect(next.notes).not.toContain('took in the rows an earlier attempt delivered before it stopped');
        // Nothing of attempt 1 was recorded, so it counts nothing: its rows are planned again.
        expect(next.delivered).toEqual(NONE);
        expect(next.plannerRows).toBe(0);
        expect(await next.parts[0]!.counted).toEqual({ rows: 3001, refused: [] });
        await again.commit({ op: 'added', key: ['3001'] }, [['7']], counts(3000, 0, 0));
        await again.finish();
        expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_7_people')).toEqual([{ n: 3000 }]);
      } finally {
        await again.close();
      }
    });

    it('fails a read whose snapshot is gone, naming it', async () => {
      const url = await createTestDatabase('lockstep_wsnap');
      const source = await PostgresSource.connect({ url });
      try {
        const read = async () => {
          for await (const _ of source.read('select 1 as one', { batchSize: 10, snapshot: '00000003-0000001B-1' })) void _;
        };
        await expect(read()).rejects.toThrow(/reading a first run's rows from source .* in the planner's snapshot failed: .*"00000003-0000001B-1"/);
      } finally {
        await source.close();
      }
    });
  });

  it('fails a run whose read of the planned rows ended early, and records only what was delivered', async () => {
    const url = await createTestDatabase('lockstep_wshort');
    await sql(
      url,
      `create table people (id bigint primary key, name text not null, score integer not null, seen_at timestamptz);
       insert into people select g, 'person ' || g, g % 100, null from generate_series(1, ${ROWS}) g;
       create table crm_people (id bigint primary key, name text, score integer, seen_at timestamptz)`,
    );
    let short = true;
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'postgres', settings: { url, planner: 'warehouse' } })],
        destinations: [source('crm', { type: 'postgres', url })],
        models: [model('people', 'warehouse', 'select id, name, score, seen_at from people')],
        syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 500 })],
      }),
      // The first run reads the model itself, in the snapshot its staging table is built in.
      connectors: (real) => withShortReads(real, (query) => short && (query.includes('_stage') || query.includes('DISTINCT ON'))),
    });
    await using _ = h;
    const { run } = await h.app.runs.triggerSync('people-to-crm', {});
    const failed = await h.app.runs.waitForSyncRun(run.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/reading the added rows of model "people" from the warehouse returned \d+ rows where the comparison planned \d+; nothing unread is recorded as delivered/);
    const delivered = (await sql<{ n: number }>(url, 'select count(*)::int as n from crm_people'))[0]?.n ?? 0;
    expect(delivered).toBeLessThan(ROWS);
    // Nothing unread was taken into the planner table: the next run sends the rest.
    short = false;
    const { run: next } = await h.app.runs.triggerSync('people-to-crm', {});
    const rest = await h.app.runs.waitForSyncRun(next.id);
    expect(rest.status).toBe('success');
    expect(await sql(url, 'select count(*)::int as n from crm_people')).toEqual([{ n: ROWS }]);
    expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_1_people_to_crm')).toEqual([{ n: ROWS }]);
  });

  it('counts each row once when a run reads its planned rows again after a transient failure, a full resync too', async () => {
    for (const fullResync of [false, true]) {
      // The run's first read of its planned rows fails for a moment once read, its first batches
      // delivered and taken in by the watermark: the run compares again and reads the rest.
      let failing = false;
      const { url, h, run, digest } = await setup({ connectors: (real) => withReadFailure(real, () => failing, async () => void (failing = false)) });
      await using _ = h;
      await run();
      await sql(url, `update people set name = name || '!' where id <= 1200; delete from people where id > 2900; insert into people select g, 'new ' || g, 1, null from generate_series(${ROWS + 1}, ${ROWS + 1100}) g`);
      failing = true;
      const again = await run({ fullResync });
      expect(failing).toBe(false);
      expect(again.status).toBe('success');
      expect(again.successfulRows).toEqual(again.plannedRows);
      // A full resync sends every row again: each of the model's rows once (how the comparison that
      // starts over splits them between added and changed is the planner's), and the removals.
      if (fullResync) expect(again.plannedRows.addedCount + again.plannedRows.changedCount).toBe(ROWS - 100 + 1100);
      else expect(again.plannedRows).toEqual(counts(1100, 1200, 100));
      expect(again.plannedRows.removedCount).toBe(100);
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    }
  });

  it('counts the rows an attempt delivered before it stopped once, when the next attempt takes them in by its watermark', async () => {
    const stop = plannerStop();
    const { url, h, run, digest } = await setup({ connectors: stop.connectors, env: stop.env });
    await using _ = h;
    // A first run (its staging table built alongside, recorded or not when it stops).
    const first = await stop.run(run, 'added', 1500);
    expect(outcome(first)).toEqual({ status: 'success', attempt: 2, planned: counts(ROWS, 0, 0), delivered: counts(ROWS, 0, 0), rejected: NONE });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));

    // A run of every kind of change, stopped among the changed rows: the change the destination
    // rejected before the stop is planned again, and rejected again, once.
    await sql(
      url,
      `update people set name = name || '!', score = case when id = 100 then -1 else score end where id <= 2000; delete from people where id > 2800;
       insert into people select g, 'new ' || g, 1, null from generate_series(${ROWS + 1}, ${ROWS + 300}) g`,
    );
    const second = await stop.run(run, 'changed', 1000);
    expect(second.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
    expect(outcome(second)).toEqual({ status: 'warning', attempt: 2, planned: counts(300, 2000, 200), delivered: counts(300, 1999, 200), rejected: counts(0, 1, 0) });
    // Listed once, as the attempt that rejected it last did, where each attempt added its own.
    expect((await h.app.store.listRejectedRows(second.id, 10, 0)).map((r) => [r.key, r.op])).toEqual([['[100]', 'changed']]);
    expect(await digest('select * from crm_people where id <> 100')).toEqual(await digest('select * from people where id <> 100'));
  });

  it('no longer lists a row an attempt rejected before it stopped once the attempt that takes the run over delivers it', async () => {
    // The run stops among the changed rows, after the destination refused row 100's change; the
    // destination then takes it (its check dropped), and the next attempt delivers it.
    let stopped = false;
    let fixed = false;
    const connectors = (real: Connectors) =>
      withWriteHook(
        withPlannerStop(real, (through) => {
          if (stopped || through.op !== 'changed' || Number(through.key[0]) < 1000) return false;
          stopped = true;
          return true;
        }),
        async () => {
          if (!stopped || fixed) return;
          fixed = true;
          await sql(url, 'alter table crm_people drop constraint crm_people_score_check');
        },
      );
    const { url, h, run, digest } = await setup({ connectors, env: { LOCKSTEP_LEASE_SECONDS: '1' } });
    await using _ = h;
    expect((await run()).status).toBe('success');
    await sql(url, 'update people set name = name || \'!\', score = case when id = 100 then -1 else score end where id <= 2000');
    const second = await run();
    expect(stopped).toBe(true);
    expect(outcome(second)).toEqual({ status: 'success', attempt: 2, planned: counts(0, 2000, 0), delivered: counts(0, 2000, 0), rejected: NONE });
    expect(await h.app.store.listRejectedRows(second.id, 10, 0)).toEqual([]);
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
  });

  describe('in key ranges side by side', () => {
    const splitRows = plannerTuning.splitRows;
    afterEach(() => {
      plannerTuning.splitRows = splitRows;
      vi.restoreAllMocks();
    });
    /** The comparisons the planner ran, as SQL. */
    const comparisons = () => watchQueries({ keep: (text) => text.includes('_stage" AS SELECT') });

    it('plans what one comparison plans, null and duplicate keys on either side of a cut included', async () => {
      const texts = comparisons();
      const scenario = async (splitRows: number) => {
        plannerTuning.splitRows = splitRows;
        const { url, h, run, digest } = await setup({
          models: [
            model(
              'people',
              'warehouse',
              `select id, name, score, seen_at from people
               union all select id, name || ' again', score, seen_at from people where id in (1, 1500, 2999)
               union all select null::bigint, 'nobody', 1, null`,
            ),
          ],
          sequences: [sequence('all', [member('people-to-crm')])],
        });
        await using _ = h;
        const outcome = (r: { plannedRows: unknown; failedRows: unknown; successfulRows: unknown }) => [r.plannedRows, r.failedRows, r.successfulRows];
        const runs: unknown[] = [outcome(await run())];
        await sql(
          url,
          `update people set name = name || '!' where id % 100 = 0;
           delete from people where id in (3, 1501, 2998);
           insert into people values (5001, 'new', 1, null), (0, 'zero', 1, null)`,
        );
        // A dry run compares as the run after it does.
        const { added, changed, removed, rejected } = (await h.app.planner.plan('all')).members[0]!;
        runs.push({ added, changed, removed, rejected }, outcome(await run()), outcome(await run()));
        const sent = await digest('select * from crm_people where id not in (1, 1500, 2999)');
        expect(sent).toEqual(await digest('select * from people where id not in (1, 1500, 2999)'));
        return runs;
      };
      const whole = await scenario(1_000_000);
      expect(texts.some((text) => text.includes('UNION ALL'))).toBe(false);
      const split = await scenario(100);
      expect(split).toEqual(whole);
      // Split into ranges of the key, and one arm for the model's rows whose key is null.
      const last = texts.at(-1) as string;
      expect(last.match(/UNION ALL/g)?.length).toBeGreaterThanOrEqual(2);
      expect(last).toMatch(/WHERE lockstep_q\."id" IS NULL\)/);
    });

    it('compares in one piece when the model reads a range for as much as the whole', async () => {
      plannerTuning.splitRows = 100;
      // A window over the whole model: a condition on its result cannot reach the table's scan.
      const ranked = model('people', 'warehouse', 'select id, name, score, seen_at, rank() over (order by score, id) as place from people');
      const { url, h, run, digest } = await setup({ models: [ranked] });
      await using _ = h;
      const texts = comparisons();
      await sql(url, 'alter table crm_people add column place bigint');
      expect((await run()).status).toBe('success');
      await sql(url, 'update people set score = score + 1 where id = 7');
      expect((await run()).plannedRows.changedCount).toBeGreaterThan(0);
      expect(texts.at(-1)).not.toMatch(/UNION ALL/);
      expect(await digest('select id, name, score, seen_at from crm_people')).toEqual(await digest('select * from people'));
    });
  });

  describe('a run\'s changes taken into the planner table in two halves at once', () => {
    const halfRows = plannerTuning.halfRows;
    afterEach(() => {
      plannerTuning.halfRows = halfRows;
      vi.restoreAllMocks();
    });
    const changes = `update people set name = name || '!' where id % 50 = 0;
       update people set score = -1 where id in (100, 2900);
       delete from people where id % 97 = 0;
       insert into people select g, 'new ' || g, case when g = 6017 then -1 else 1 end, timestamptz '2030-01-01 00:00:00+00' + g * interval '1 minute' from generate_series(6001, 6040) g`;

    it.each([
      ['one key column', ['id']],
      ['two key columns', ['seen_at', 'id']],
    ])('takes in what one piece takes in, rejected rows left out (%s)', async (_, primaryKey) => {
      plannerTuning.halfRows = 10;
      const { url, h, run, digest } = await setup({ models: [model('people', 'warehouse', 'select id, name, score, seen_at from people', primaryKey)] });
      await using _h = h;
      await sql(url, 'create unique index on crm_people (seen_at, id)');
      expect((await run()).status).toBe('success');
      const texts = watchQueries();
      await sql(url, changes);
      const second = await run();
      expect(second.plannedRows).toEqual({ addedCount: 40, changedCount: 60, removedCount: 30 });
      expect(second.failedRows).toEqual({ addedCount: 1, changedCount: 2, removedCount: 0 });
      // Each kind's upper half went on a connection of its own.
      for (const op of ['a', 'c', 'r']) expect(texts.some((t) => t.includes(`WHERE lockstep_op = '${op}' ORDER BY`) && t.includes(' >= (SELECT '))).toBe(true);
      // The planner table holds what the destination holds: delivered rows, not the rejected ones.
      const planned = 'select id, name, score, seen_at from lockstep_planner.sync_1_people_to_crm';
      expect(await digest(planned)).toEqual(await digest('select * from crm_people'));
      await sql(url, 'update people set score = 0 where score = -1');
      expect((await run()).plannedRows).toEqual({ addedCount: 1, changedCount: 2, removedCount: 0 });
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
      expect(await digest(planned)).toEqual(await digest('select * from people'));
      expect((await run()).plannedRows).toEqual(NONE);
    });

    it('takes the upper half in again, changing nothing, when the run stopped after its commit', async () => {
      plannerTuning.halfRows = 10;
      const { url, h, run, digest } = await setup();
      await using _h = h;
      expect((await run()).status).toBe('success');
      await sql(url, changes.replace(/case when g = 6017 then -1 else 1 end/, '1').replace('update people set score = -1 where id in (100, 2900);', ''));
      // The planner's own connection fails after the upper half committed. The run retries: its
      // next attempt takes the staged rows in again, both halves.
      await expectTakenInAgain(run);
      expect((await run()).plannedRows).toEqual(NONE);
      const planned = 'select id, name, score, seen_at from lockstep_planner.sync_1_people_to_crm';
      expect(await digest(planned)).toEqual(await digest('select * from people'));
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    });
  });

  describe('a run\'s changes kept in the planner table\'s delta', () => {
    const planner = 'lockstep_planner.sync_1_people_to_crm';
    /** The planner table as its delta amends it. */
    const amended = `select id, name, score, seen_at from ${planner} p where not exists (select 1 from ${planner}_delta d where d.id = p.id)
      union all select id, name, score, seen_at from ${planner}_delta where not lockstep_gone`;

    it.each([
      ['never folded in', Number.POSITIVE_INFINITY],
      ['folded in at every run', 0],
    ])('plans what the planner table alone plans, keys changed back, removed, added again included (%s)', async (_, foldFraction) => {
      keepInDelta(0, foldFraction);
      const { url, h, run, digest } = await setup({ sequences: [sequence('all', [member('people-to-crm')])] });
      await using _h = h;
      expect((await run()).status).toBe('success');
      await sql(
        url,
        `update people set name = name || '!' where id % 50 = 0;
         delete from people where id % 97 = 0;
         insert into people select g, 'new ' || g, case when g = 6017 then -1 else 1 end, timestamptz '2030-01-01 00:00:00+00' + g * interval '1 minute' from generate_series(6001, 6040) g`,
      );
      const second = await run();
      expect(second.plannedRows).toEqual({ addedCount: 40, changedCount: 60, removedCount: 30 });
      expect(second.failedRows).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
      expect(await digest(amended)).toEqual(await digest('select * from crm_people'));

      // Back to the planner table's own values, a removed key back, an added key removed and one changed.
      await sql(
        url,
        `update people set name = 'person ' || id where id % 100 = 0;
         insert into people values (97, 'person 97', 97, timestamptz '2024-01-01 00:00:00+00' + 97 * interval '1 minute');
         delete from people where id = 6001;
         update people set name = 'changed' where id = 6002;
         update people set score = 1 where id = 6017`,
      );
      // A dry run compares as the run after it does.
      const { added, changed, removed } = (await h.app.planner.plan('all')).members[0]!;
      const third = await run();
      expect(third.plannedRows).toEqual({ addedCount: 2, changedCount: 31, removedCount: 1 });
      expect({ added, changed, removed }).toEqual({ added: 2, changed: 31, removed: 1 });
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
      expect(await digest(amended)).toEqual(await digest('select * from people'));
      expect((await run()).plannedRows).toEqual(NONE);
      const deltaRows = await sql(url, `select delta_rows::int as n, (select count(*)::int from ${planner}_delta) as counted from lockstep_planner.lockstep_syncs`);
      expect(deltaRows[0]?.n).toBe(deltaRows[0]?.counted);
      expect(deltaRows[0]?.n === 0).toBe(foldFraction === 0);
    });

    /** A sync whose changes stay in the delta, after its first run and `changes` to the model. */
    const changedAfterFirstRun = async (changes: string) => {
      keepInDelta(0, Number.POSITIVE_INFINITY);
      const set = await setup();
      expect((await set.run()).status).toBe('success');
      await sql(set.url, changes);
      return set;
    };

    it('takes the delivered rows into the delta again when the run failed as it recorded its end', async () => {
      const { h, run, digest } = await changedAfterFirstRun(`update people set name = name || '!' where id % 50 = 0; delete from people where id % 97 = 0`);
      await using _h = h;
      await expectTakenInAgain(run);
      vi.restoreAllMocks();
      expect((await run()).plannedRows).toEqual(NONE);
      expect(await digest(amended)).toEqual(await digest('select * from people'));
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    });

    it('folds the delta in before a full resync compares by key', async () => {
      const { url, h, run, digest } = await changedAfterFirstRun(`update people set name = name || '!' where id % 100 = 0; delete from people where id % 97 = 0`);
      await using _h = h;
      expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 30, removedCount: 30 });
      const all = await run({ fullResync: true });
      expect(all.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS - 30, removedCount: 0 });
      expect(await sql(url, 'select delta_rows::int as n from lockstep_planner.lockstep_syncs')).toEqual([{ n: 0 }]);
      expect(await digest(`select id, name, score, seen_at from ${planner}`)).toEqual(await digest('select * from people'));
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
      expect((await run()).plannedRows).toEqual(NONE);
    });

    it('compares a model column named as the comparison\'s own, and refuses one named as the delta\'s, naming it', async () => {
      keepInDelta(0, Number.POSITIVE_INFINITY);
      const query = 'select id, name, score as lockstep_present, seen_at from people';
      const { url, h, run } = await setup({ models: [model('people', 'warehouse', query)] });
      await using _h = h;
      await sql(url, 'alter table crm_people rename column score to lockstep_present');
      expect((await run()).status).toBe('success');
      for (const id of [1, 2]) {
        await sql(url, `update people set score = score + 1 where id = ${id}`);
        expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
      }
      expect(await sql(url, 'select count(*)::int as n from (select id, name, score, seen_at from people except select * from crm_people) d')).toEqual([{ n: 0 }]);

      await h.app.store.applyWorkspace(
        workspace({
          sources: [source('warehouse', { type: 'postgres', settings: { url, planner: 'warehouse' } })],
          destinations: [source('crm', { type: 'postgres', url })],
          models: [model('people', 'warehouse', 'select id, name, score as lockstep_gone, seen_at from people')],
          syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 500, mappings: [{ from: 'lockstep_gone', to: 'lockstep_present' }] })],
        }),
        h.app.clock.now(),
      );
      const refused = await run();
      expect(refused.status).toBe('failed');
      expect(refused.error).toMatch(/the model's query returns a column named "lockstep_gone", which the planner in the warehouse uses itself — rename it/);
    });

    it('compares by key once when the delta is written to or dropped by hand', async () => {
      const { url, h, run, digest } = await changedAfterFirstRun(`update people set name = name || '!' where id % 100 = 0`);
      await using _h = h;
      expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 30, removedCount: 0 });

      await sql(url, `update ${planner}_delta set name = 'tampered' where id = 100`);
      const written = await run();
      expect(written.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep: compared by key only this run/);
      expect(written.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS, removedCount: 0 });
      expect((await run()).plannedRows).toEqual(NONE);

      await sql(url, `update people set name = name || '?' where id % 100 = 0`);
      expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 30, removedCount: 0 });
      await sql(url, `drop table ${planner}_delta; update people set score = score + 1 where id = 7`);
      const dropped = await run();
      expect(dropped.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep: compared by key only this run/);
      expect(dropped.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS, removedCount: 0 });
      expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
      expect((await run()).plannedRows).toEqual(NONE);
    });
  });

  it.each([
    ['the planner table', plannerTuning.deltaRows, ''],
    ['the planner table', 0, ''],
    ['its delta', 0, '_delta'],
  ])('compares by key once when the primary key of %s is dropped by hand (changes kept in a delta from %i planner rows)', async (_name, deltaRows, suffix) => {
    keepInDelta(deltaRows, Number.POSITIVE_INFINITY);
    const { url, h, run, digest } = await setup();
    await using _ = h;
    expect((await run()).status).toBe('success');
    await sql(url, `update people set name = name || '!' where id % 100 = 0`);
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 30, removedCount: 0 });

    await sql(url, `alter table lockstep_planner.sync_1_people_to_crm${suffix} drop constraint sync_1_people_to_crm${suffix}_pkey`);
    await sql(url, `update people set score = score + 1 where id = 7; insert into people values (5001, 'new', 1, null)`);
    const rebuilt = await run();
    expect(rebuilt.status).toBe('success');
    expect(rebuilt.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep: compared by key only this run/);
    expect(rebuilt.plannedRows).toEqual({ addedCount: 1, changedCount: ROWS, removedCount: 0 });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    await sql(url, 'update people set score = score + 1 where id = 8');
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    expect((await run()).plannedRows).toEqual(NONE);
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
  });

  it('rebuilds a planner table changed or dropped by hand, and re-compares once when column types change, saying so', async () => {
    const { url, h, run, digest } = await setup();
    await using _ = h;
    expect((await run()).status).toBe('success');

    await sql(url, `update lockstep_planner.sync_1_people_to_crm set name = 'tampered' where id = 1; delete from crm_people where id = 2`);
    const afterTamper = await run();
    expect(afterTamper.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep: compared by key only this run/);
    expect(afterTamper.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS, removedCount: 0 });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    expect((await run()).plannedRows).toEqual(NONE);

    await sql(url, 'drop table lockstep_planner.sync_1_people_to_crm');
    const afterDrop = await run();
    expect(afterDrop.comparison?.notes?.[0]).toMatch(/was dropped outside Lockstep: every row is sent again/);
    expect(afterDrop.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect((await run()).plannedRows).toEqual(NONE);

    await sql(url, 'alter table people alter column score type bigint');
    const retyped = await run();
    expect(retyped.comparison?.notes?.[0]).toMatch(/the model's columns changed \(score integer → bigint\): every row is compared again by key and sent once/);
    expect(retyped.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS, removedCount: 0 });
    const idle = await run();
    expect(idle.plannedRows).toEqual(NONE);
    expect(idle.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
  });

  it.each([
    ['', plannerTuning.deltaRows],
    [', changes kept in the delta', 0],
  ])('reads only rows past the cursor, and sees deletes at a full comparison (every fullCompareEvery runs or asked for)%s', async (_name, deltaRows) => {
    keepInDelta(deltaRows, Number.POSITIVE_INFINITY);
    const people: ModelDef = { ...model('people', 'warehouse', 'select id, name, score, seen_at from people'), cursor: 'seen_at', fullCompareEvery: 3 };
    const { url, h, run, digest } = await setup({ models: [people] });
    await using _ = h;
    const first = await run();
    expect(first.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(first.plannedRows.addedCount).toBe(ROWS);

    // A change that moves the cursor is seen; a delete is not (no full comparison yet).
    await sql(url, `update people set name = 'moved', seen_at = '2030-01-01' where id = 10; delete from people where id = 11`);
    const second = await run();
    expect(second.comparison).toEqual({ planner: 'warehouse', kind: 'cursor', target: expect.any(Object) });
    expect(second.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    // A late write (cursor not moved) waits for the full comparison too.
    await sql(url, `update people set name = 'late' where id = 12`);
    const third = await run();
    expect(third.comparison?.kind).toBe('cursor');
    expect(third.plannedRows).toEqual(NONE);

    // The third run after the full one compares in full: the delete and the late write go.
    const fourth = await run();
    expect(fourth.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(fourth.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 1 });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));

    await sql(url, `delete from people where id = 13`);
    expect((await run()).plannedRows).toEqual(NONE);
    const asked = await run({ fullCompare: true });
    expect(asked.comparison?.kind).toBe('full');
    expect(asked.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 1 });
  });

  it.each([
    ['', plannerTuning.deltaRows],
    [', changes kept in the delta', 0],
  ])('starts the planner table again when the model\'s primary key changes, saying so%s', async (_name, deltaRows) => {
    keepInDelta(deltaRows, Number.POSITIVE_INFINITY);
    const { url, h, run, digest } = await setup();
    await using _ = h;
    await sql(url, 'create unique index on crm_people (id, name)');
    expect((await run()).status).toBe('success');
    await sql(url, 'update people set score = score + 1 where id % 100 = 0');
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 30, removedCount: 0 });

    const definition = workspace({
      sources: [source('warehouse', { type: 'postgres', settings: { url, planner: 'warehouse' } })],
      destinations: [source('crm', { type: 'postgres', url })],
      models: [model('people', 'warehouse', 'select id, name, score, seen_at from people', ['id', 'name'])],
      syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 500 })],
    });
    await h.app.store.applyWorkspace(definition, h.app.clock.now());
    await sql(url, 'update people set score = score + 1 where id % 100 = 0');
    const rekeyed = await run();
    expect(rekeyed.status).toBe('success');
    expect(rekeyed.comparison?.notes?.[0]).toMatch(/the model's primary key changed \(id → id, name\): every row is sent again/);
    expect(rekeyed.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    await sql(url, `update people set score = score + 1 where id % 100 = 0; delete from people where id = 7`);
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 30, removedCount: 1 });
    expect(await digest('select * from crm_people')).toEqual(await digest('select * from people'));
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('names the grant to add when the user may not create the planner schema, and falls back with planner: auto', async () => {
    const url = await createTestDatabase('lockstep_wgrant');
    const role = `reader_${url.slice(-6)}`;
    await sql(url, `create role ${role} login password 'pw'; grant create on schema public to ${role}; revoke create on database ${new URL(url).pathname.slice(1)} from public`);
    await sql(url, `create table people (id bigint primary key, name text not null, score integer not null, seen_at timestamptz); alter table people owner to ${role}`);
    const limited = new URL(url);
    limited.username = role;
    limited.password = 'pw';
    const strict = await setup({ url: limited.toString() });
    {
      await using _ = strict.h;
      const failed = await strict.run();
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(new RegExp(`may not create the planner schema "lockstep_planner".*GRANT CREATE ON DATABASE .* TO "${role}"`));
    }
    const auto = await setup({ url: limited.toString(), settings: { planner: 'auto' } });
    await using _ = auto.h;
    const fallback = await auto.run();
    expect(fallback.status).toBe('success');
    expect(fallback.comparison?.planner).toBe('store');
    expect(fallback.comparison?.notes?.[0]).toMatch(/planner: auto on source "warehouse" fell back to the store's planner/);
  });

  it('says the server only allows reading when the source is a standby (its user read-only here), and falls back with planner: auto', async () => {
    const url = await createTestDatabase('lockstep_wstandby');
    const role = `standby_${url.slice(-6)}`;
    await sql(url, `create role ${role} login password 'pw'; alter role ${role} set default_transaction_read_only = on`);
    const reader = new URL(url);
    reader.username = role;
    reader.password = 'pw';
    const strict = await setup({ url, settings: { url: reader.toString() } });
    await sql(url, `grant select on people to ${role}`);
    {
      await using _ = strict.h;
      const failed = await strict.run();
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(
        /^the planner cannot keep its tables on PostgreSQL at .*: the server only allows reading there \(a standby, or default_transaction_read_only\) — point the source at a server that takes writes \(the primary\), or set planner: store on the source$/,
      );
    }
    const auto = await setup({ url, settings: { url: reader.toString(), planner: 'auto' } });
    await using _ = auto.h;
    const fallback = await auto.run();
    expect(fallback.status).toBe('success');
    expect(fallback.comparison?.planner).toBe('store');
    expect(fallback.comparison?.notes?.[0]).toMatch(/planner: auto on source "warehouse" fell back to the store's planner: the planner cannot keep its tables/);
    expect(await sql(url, 'select count(*)::int as n from crm_people')).toEqual([{ n: ROWS }]);
  });

  it('says the model\'s query was refused, not the planner\'s schema, when the user may not read the model', async () => {
    const url = await createTestDatabase('lockstep_wread');
    const role = `reader_${url.slice(-6)}`;
    await sql(url, `create role ${role} login password 'pw'; grant create on schema public to ${role}; grant create on database ${new URL(url).pathname.slice(1)} to ${role}`);
    await sql(url, 'create table secret_people (id bigint primary key, name text not null, score integer not null, seen_at timestamptz)');
    const limited = new URL(url);
    limited.username = role;
    limited.password = 'pw';
    const { h, run } = await setup({ url: limited.toString(), models: [model('people', 'warehouse', 'select id, name, score, seen_at from secret_people')] });
    await using _ = h;
    const refused = await run();
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(/^the model's query failed on source PostgreSQL at .*: permission denied for table secret_people — check the model's query/);
    expect(refused.error).not.toMatch(/GRANT|USAGE and CREATE/);
  });

  it('names the owner to change when the planner\'s tables belong to another user, in a run and a dry run', async () => {
    const owner = await setup();
    const { url } = owner;
    {
      await using _ = owner.h;
      expect((await owner.run()).status).toBe('success');
    }
    const role = `later_${url.slice(-6)}`;
    await sql(
      url,
      `create role ${role} login password 'pw'; grant create on schema public to ${role}; grant all on people, crm_people to ${role};
       grant usage, create on schema lockstep_planner to ${role}; grant all on all tables in schema lockstep_planner to ${role}`,
    );
    const later = new URL(url);
    later.username = role;
    later.password = 'pw';
    const { h, run } = await setup({ url: later.toString(), sequences: [sequence('all', [member('people-to-crm')])] });
    await using _ = h;
    const fix = new RegExp(`belong to user "[^"]+", and user "${role}" may not change them .* run ALTER TABLE "lockstep_planner".lockstep_syncs OWNER TO "${role}";`);
    const refused = await run();
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(fix);
    expect((await h.app.planner.plan('all')).members[0]?.error).toMatch(fix);
    // With the table of syncs its own, the user is still told who owns the sync's planner table
    // (the catalog says so in any language the server speaks).
    await sql(url, `alter table lockstep_planner.lockstep_syncs owner to ${role}`);
    const stillRefused = await run();
    expect(stillRefused.status).toBe('failed');
    expect(stillRefused.error).toMatch(new RegExp(`belong to user "[^"]+", and user "${role}" may not change them`));

    // The fix the message names, for each of the schema's tables and the function.
    await sql(
      url,
      `do $$ declare t text; begin
         for t in select relname from pg_class where relnamespace = 'lockstep_planner'::regnamespace and relkind = 'r' loop
           execute format('alter table lockstep_planner.%I owner to ${role}', t);
         end loop;
         alter function lockstep_planner.lockstep_guard() owner to ${role};
       end $$`,
    );
    expect((await run()).status).toBe('success');
  });

  it('takes a run\'s changes in on one connection when a second one cannot be opened', async () => {
    const halfRows = plannerTuning.halfRows;
    plannerTuning.halfRows = 10;
    const url = await createTestDatabase('lockstep_wonecon');
    await sql(url, `create table people (id bigint primary key, name text); insert into people select g, 'p' || g from generate_series(1, 3000) g`);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const connect = vi.fn(() => Promise.reject(new Error('sorry, too many clients already')));
    const planner = await PostgresPlanner.open(client, 'lockstep_planner', 'test', { connect });
    const request = (run: number) => planRequest({ id: run, attempt: 1 });
    try {
      await planner.plan(request(1));
      await planner.commit({ op: 'added', key: ['3000'] }, [], counts(3000, 0, 0));
      await planner.finish();
      await sql(url, `update people set name = name || '!' where id % 50 = 0; delete from people where id % 97 = 0; insert into people select g, 'new' from generate_series(3001, 3030) g`);
      const plan = await planner.plan(request(2));
      expect(plan.parts.map((p) => [p.op, p.rows])).toEqual([['added', 30], ['changed', 60], ['removed', 30]]);
      for (const part of plan.parts) await planner.commit({ op: part.op, key: ['3030'] }, [], NONE);
      await planner.finish();
      // Asked for by the first run's staging table (then built first) and by the second run's halves.
      expect(connect).toHaveBeenCalledTimes(2);
      const digest = (table: string) => sql(url, `select count(*)::int as n, md5(string_agg(id || name, ',' order by id)) as m from ${table}`);
      expect(await digest('lockstep_planner.sync_7_people')).toEqual(await digest('people'));
    } finally {
      plannerTuning.halfRows = halfRows;
      await planner.close();
    }
  });

  it('refuses the writes of an attempt another attempt took over', async () => {
    const url = await createTestDatabase('lockstep_wfence');
    await sql(url, `create table people as select g as id, 'p' || g as name from generate_series(1, 100) g`);
    const open = async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return PostgresPlanner.open(client, 'lockstep_planner', 'test');
    };
    const request = (attempt: number) => planRequest({ id: 1, attempt });
    const stale = await open();
    const current = await open();
    try {
      expect((await stale.plan(request(1))).parts).toEqual([expect.objectContaining({ op: 'added', rows: 100 })]);
      await stale.commit({ op: 'added', key: ['40'] }, [], counts(40, 0, 0));
      // Attempt 2 takes over: the 40 rows attempt 1 delivered go into the planner table, and count.
      const taken = await current.plan(request(2));
      expect(taken.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
      expect(taken.delivered).toEqual(counts(40, 0, 0));
      expect(taken.parts).toEqual([expect.objectContaining({ op: 'added', rows: 60 })]);
      await expect(stale.commit({ op: 'added', key: ['90'] }, [], counts(90, 0, 0))).rejects.toMatchObject({ code: 'lease_lost' });
      await expect(stale.finish()).rejects.toMatchObject({ code: 'lease_lost' });
      await expect(stale.plan(request(1))).rejects.toMatchObject({ code: 'lease_lost' });
      await current.finish();
      expect(await sql(url, 'select count(*)::int as n from lockstep_planner.sync_7_people')).toEqual([{ n: 100 }]);
    } finally {
      await stale.close();
      await current.close();
    }
  });
});

describe('planner in the warehouse (DuckDB)', () => {
  async function duckSetup(over: Partial<ModelDef> = {}, harness: { connectors?: (real: Connectors) => Connectors; env?: Record<string, string> } = {}) {
    const dir = tempDir();
    const duck = await import('@duckdb/node-api');
    const path = `${dir}/warehouse.duckdb`;
    const exec = async (statements: string) => {
      const instance = await duck.DuckDBInstance.create(path);
      const connection = await instance.connect();
      try {
        await connection.run(statements);
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
    };
    await exec(`create table people (id bigint primary key, name varchar not null, score integer not null, seen_at timestamp);
      insert into people select g, 'person ' || g, g % 100, timestamp '2024-01-01' + g * interval 1 minute from range(1, ${ROWS + 1}) r(g)`);
    const url = await createTestDatabase('lockstep_wduck');
    await sql(url, 'create table crm_people (id bigint primary key, name text, score integer, seen_at timestamp)');
    const h = await startHarness({
      dir,
      definition: workspace({
        sources: [source('warehouse', { type: 'duckdb', settings: { path: 'warehouse.duckdb', planner: 'warehouse' } })],
        destinations: [source('crm', { type: 'postgres', url })],
        models: [{ ...model('people', 'warehouse', 'select id, name, score, seen_at from people'), ...over }],
        syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 500 })],
        sequences: [sequence('all', [member('people-to-crm')])],
      }),
      ...harness,
    });
    const run = async (options: { fullCompare?: boolean } = {}) => {
      const { run } = await h.app.runs.triggerSync('people-to-crm', options);
      return h.app.runs.waitForSyncRun(run.id);
    };
    return { h, run, exec, url };
  }

  it('refuses a model returning columns whose names differ only in case, which DuckDB takes as one in a table, instead of sending one as NAME_1', async () => {
    const { h, run } = await duckSetup({ query: 'select id, name, upper(name) as NAME, score, seen_at from people' });
    await using _ = h;
    const refused = await run();
    expect(refused.status).toBe('failed');
    expect(refused.error).toBe(
      'the model\'s query returns columns "name" and "NAME": DuckDB takes column names that differ only in case as one name in a table, and the planner in the warehouse keeps the model\'s columns in tables of its own — give one of them another name (AS ...)',
    );
  });

  it('plans in a dry run what the run after it plans, null and duplicate keys refused', async () => {
    const { h, run, exec } = await duckSetup({
      query: `select id, name, score, seen_at from people
              union all select id, name || ' again', score, seen_at from people where id in (1, 1500)
              union all select null, 'nobody', 1, null`,
    });
    await using _ = h;
    const dry = async () => {
      const { added, changed, removed, rejected } = (await h.app.planner.plan('all')).members[0]!;
      return { added, changed, removed, rejected };
    };
    const planned = (r: { plannedRows: typeof NONE; failedRows: typeof NONE }) => ({
      added: r.plannedRows.addedCount,
      changed: r.plannedRows.changedCount,
      removed: r.plannedRows.removedCount,
      rejected: r.failedRows.addedCount + r.failedRows.changedCount + r.failedRows.removedCount,
    });
    const first = await dry();
    // Every row is planned; the null key and the two repeated keys are refused.
    expect(first).toEqual({ added: ROWS + 3, changed: 0, removed: 0, rejected: 3 });
    expect(planned(await run())).toEqual(first);
    await exec(`update people set name = name || '!' where id % 100 = 0; delete from people where id in (3, 1501); insert into people values (5001, 'new', 1, null)`);
    const second = await dry();
    expect(second.removed).toBe(2);
    expect(planned(await run())).toEqual(second);
  });

  it('sends only what changed, reads past the cursor, and rebuilds a planner table changed by hand', async () => {
    const { h, run, exec, url } = await duckSetup({ cursor: 'seen_at', fullCompareEvery: 2 });
    await using _ = h;
    const first = await run();
    expect(first.status).toBe('success');
    expect(first.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(first.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect(await h.app.store.snapshots.count(first.syncId)).toBe(0);

    await exec(`update people set name = 'moved', seen_at = timestamp '2030-01-01' where id = 10; delete from people where id = 11`);
    const second = await run();
    expect(second.comparison?.kind).toBe('cursor');
    expect(second.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    const third = await run();
    expect(third.comparison?.kind).toBe('full');
    expect(third.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 1 });
    expect(await sql(url, 'select count(*)::int as n, max(name) filter (where id = 10) as name from crm_people')).toEqual([{ n: ROWS - 1, name: 'moved' }]);

    await exec(`update lockstep_planner.sync_1_people_to_crm set name = 'tampered' where id = 1`);
    const afterTamper = await run({ fullCompare: true });
    expect(afterTamper.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep/);
    expect(afterTamper.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS - 1, removedCount: 0 });
    expect((await run({ fullCompare: true })).plannedRows).toEqual(NONE);
  });

  it('counts the rows an attempt delivered before it stopped once, when the next attempt takes them in by its watermark', async () => {
    const stop = plannerStop();
    const { h, run, exec, url } = await duckSetup({}, { connectors: stop.connectors, env: stop.env });
    await using _ = h;
    const digest = (table: string) => sql(url, `select count(*)::int as n, md5(string_agg(p::text, '|' order by id)) as m from ${table} p`);
    const first = await stop.run(run, 'added', 1500);
    expect(first.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
    expect(outcome(first)).toEqual({ status: 'success', attempt: 2, planned: counts(ROWS, 0, 0), delivered: counts(ROWS, 0, 0), rejected: NONE });
    expect(await digest('crm_people')).toEqual([{ n: ROWS, m: expect.any(String) }]);

    await exec(
      `update people set name = name || '!' where id <= 2000; delete from people where id > 2800;
       insert into people select g, 'new ' || g, 1, null from range(${ROWS + 1}, ${ROWS + 301}) r(g)`,
    );
    const second = await stop.run(run, 'changed', 1000);
    expect(second.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
    expect(outcome(second)).toEqual({ status: 'success', attempt: 2, planned: counts(300, 2000, 200), delivered: counts(300, 2000, 200), rejected: NONE });
    expect(await sql(url, "select count(*)::int as n, count(*) filter (where name like '%!')::int as changed from crm_people")).toEqual([{ n: ROWS + 100, changed: 2000 }]);
  });
});

describe('planner in the warehouse (MySQL / MariaDB)', () => {
  /** A MySQL source and destination in one fresh database; the planner's database is the test's own (dropped with the run's). */
  async function mysqlSetup(
    options: {
      models?: ModelDef[];
      sync?: Partial<SyncDef>;
      settings?: Record<string, unknown>;
      url?: string;
      plannerSchema?: string;
      connectors?: (real: Connectors) => Connectors;
      env?: Record<string, string>;
    } = {},
  ) {
    const { createTestMysqlDatabase, mysqlSeries, mysqlSql } = await import('../helpers/mysql.js');
    const url = options.url ?? (await createTestMysqlDatabase('lockstep_wmy'));
    const plannerSchema = options.plannerSchema ?? `${new URL(url).pathname.slice(1)}_p`;
    // The destination is the same database (a limited user of the grant test may write it too).
    const admin = url;
    await mysqlSql(
      admin,
      `create table if not exists people (id bigint primary key, name varchar(100) not null, score int not null, seen_at datetime(3) null);
       insert ignore into people select seq, concat('person ', seq), seq % 100, timestamp'2024-01-01 00:00:00' + interval seq minute from ${mysqlSeries(ROWS)};
       create table if not exists crm_people (id bigint primary key, name varchar(100), score int check (score >= 0), seen_at datetime(3))`,
    );
    const h = await startHarness({
      dir: tempDir(),
      definition: workspace({
        sources: [source('warehouse', { type: 'mysql', settings: { url, planner: 'warehouse', plannerSchema, ...options.settings } })],
        destinations: [source('crm', { type: 'mysql', url: admin })],
        models: options.models ?? [model('people', 'warehouse', 'select id, name, score, seen_at from people')],
        syncs: [sync('people-to-crm', { model: 'people', destination: 'crm', object: 'crm_people', mode: 'mirror', batchSize: 500, ...options.sync })],
      }),
      connectors: options.connectors,
      env: options.env,
    });
    const run = async (runOptions: { fullCompare?: boolean; fullResync?: boolean } = {}) => {
      const { run } = await h.app.runs.triggerSync('people-to-crm', runOptions);
      return h.app.runs.waitForSyncRun(run.id);
    };
    const my = <T = Record<string, unknown>>(text: string) => mysqlSql<T>(admin, text);
    const count = async (table: string) => Number((await my<{ n: string }>(`select count(*) as n from ${table}`))[0]?.n);
    const digest = async (table: string) =>
      my(`set session group_concat_max_len = 100000000;
          select count(*) as n, md5(group_concat(concat_ws(',', id, name, score, coalesce(seen_at, '-')) order by id separator '|')) as m from ${table}`);
    const planned = (table = 'sync_1_people_to_crm') => `\`${plannerSchema}\`.\`${table}\``;
    return { url, admin, plannerSchema, h, run, my, count, digest, planned };
  }

  /**
   * A fresh database made by `ddl`, and a planner opened on it by hand (the
   * caller closes it), its session set up by `session` first.
   */
  async function handPlanner(prefix: string, ddl: string, session?: string) {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const { MysqlPlanner } = await import('../../src/connectors/mysql/mysql-planner.js');
    const { createMysqlPool } = await import('../../src/connectors/mysql/mysql-client.js');
    const url = await createTestMysqlDatabase(prefix);
    const schema = `${new URL(url).pathname.slice(1)}_p`;
    await mysqlSql(url, ddl);
    const pool = createMysqlPool(url, 1);
    const connection = await pool.getConnection();
    if (session) await connection.query(session);
    return { url, schema, planner: await MysqlPlanner.open(pool, connection, schema, 'test') };
  }
  it('sends only what changed, keeps rejected rows out of the planner table and retries them, and keeps nothing in the store', async () => {
    const { h, run, my, count, digest, planned } = await mysqlSetup();
    await using _ = h;
    await my('update people set score = -1 where id in (17, 2999)');
    const first = await run();
    expect(first.status).toBe('warning');
    expect(first.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect(first.failedRows).toEqual({ addedCount: 2, changedCount: 0, removedCount: 0 });
    expect(first.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(await count(planned())).toBe(ROWS - 2);
    expect(await h.app.store.snapshots.count(first.syncId)).toBe(0);

    // A change of case alone is a change (values are compared as bytes, not by collation).
    await my(
      `update people set score = 0 where id in (17, 2999);
       update people set name = concat(name, '!') where id % 100 = 0;
       update people set name = 'PERSON 1' where id = 1;
       update people set score = -5 where id = 50;
       delete from people where id in (3, 4);
       insert into people values (5001, 'new', 1, null)`,
    );
    const second = await run();
    expect(second.plannedRows).toEqual({ addedCount: 3, changedCount: ROWS / 100 + 2, removedCount: 2 });
    expect(second.failedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    const rejected = await h.app.store.listRejectedRows(second.id, 10, 0);
    expect(rejected.map((r) => [r.key, r.op])).toEqual([['[50]', 'changed']]);
    // The rejected change keeps the planner table's old values, so it is planned again.
    expect(await my(`select score from ${planned()} where id = 50`)).toEqual([{ score: 50 }]);

    await my('update people set score = 7 where id = 50');
    const third = await run();
    expect(third.status).toBe('success');
    expect(third.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    expect(await digest('crm_people')).toEqual(await digest('people'));
    const idle = await run();
    expect(idle.plannedRows).toEqual(NONE);
    expect(idle.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
  });

  it('takes a text key whose case or trailing spaces changed as a new key and removes the old one, though the key column`s collation takes them as one', async () => {
    const { h, run, my } = await mysqlSetup({
      models: [model('people', 'warehouse', 'select id, v from handles')],
      sync: { object: 'crm_handles', maxDeletePercent: null },
    });
    await using _ = h;
    const [server] = await my<{ maria: number | string }>("select version() like '%MariaDB%' as maria");
    // The destination tells the keys apart (as PostgreSQL would): a binary collation without padding.
    const exact = Number(server?.maria) === 1 ? 'utf8mb4_nopad_bin' : 'utf8mb4_0900_bin';
    await my(
      `create table handles (id varchar(20) collate utf8mb4_general_ci primary key, v int);
       insert into handles values ('ann', 1), ('bob', 2), ('cy', 3);
       create table crm_handles (id varchar(20) collate ${exact} primary key, v int)`,
    );
    const delivered = () => my(`select concat('[', id, ']') as id, v from crm_handles order by id`);
    expect((await run()).status).toBe('success');

    await my(`update handles set id = 'Ann' where id = 'ann'; update handles set id = 'bob ' where id = 'bob'`);
    const renamed = await run();
    expect(renamed.status).toBe('success');
    expect(renamed.plannedRows).toEqual({ addedCount: 2, changedCount: 0, removedCount: 2 });
    expect(await delivered()).toEqual([
      { id: '[Ann]', v: 1 },
      { id: '[bob ]', v: 2 },
      { id: '[cy]', v: 3 },
    ]);
    await my('update handles set v = v + 10');
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 3, removedCount: 0 });
    expect(await delivered()).toEqual([
      { id: '[Ann]', v: 11 },
      { id: '[bob ]', v: 12 },
      { id: '[cy]', v: 13 },
    ]);
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('starts its table again when a text key column`s collation changed, which MySQL would refuse to compare with the old one', async () => {
    const { h, run, my } = await mysqlSetup({
      models: [model('people', 'warehouse', 'select id, v from codes')],
      sync: { object: 'crm_codes' },
    });
    await using _ = h;
    const [server] = await my<{ maria: number | string }>("select version() like '%MariaDB%' as maria");
    const exact = Number(server?.maria) === 1 ? 'utf8mb4_nopad_bin' : 'utf8mb4_0900_bin';
    await my(
      `create table codes (id varchar(20) collate utf8mb4_general_ci primary key, v int);
       insert into codes values ('ann', 1), ('bob', 2);
       create table crm_codes (id varchar(20) collate ${exact} primary key, v int)`,
    );
    expect((await run()).status).toBe('success');
    // Now the key tells case apart, and the model holds a key only its case tells from another.
    await my(`alter table codes modify id varchar(20) collate ${exact}; insert into codes values ('ANN', 3)`);
    const altered = await run();
    expect(altered.status).toBe('success');
    expect(altered.comparison?.notes?.join(' ')).toContain(`collate ${exact}`);
    expect(await my('select id, v from crm_codes order by v')).toEqual([
      { id: 'ann', v: 1 },
      { id: 'bob', v: 2 },
      { id: 'ANN', v: 3 },
    ]);
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('counts the rows an attempt delivered before it stopped once, when the next attempt takes them in by its watermark', async () => {
    const stop = plannerStop();
    const { h, run, my, digest } = await mysqlSetup({ connectors: stop.connectors, env: stop.env });
    await using _ = h;
    const first = await stop.run(run, 'added', 1500);
    expect(first.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
    expect(outcome(first)).toEqual({ status: 'success', attempt: 2, planned: counts(ROWS, 0, 0), delivered: counts(ROWS, 0, 0), rejected: NONE });
    expect(await digest('crm_people')).toEqual(await digest('people'));

    const { mysqlSeries } = await import('../helpers/mysql.js');
    await my(
      `update people set name = concat(name, '!'), score = if(id = 100, -1, score) where id <= 2000;
       delete from people where id > 2800;
       insert into people select ${ROWS} + seq, concat('new ', seq), 1, null from ${mysqlSeries(300)}`,
    );
    const second = await stop.run(run, 'changed', 1000);
    expect(second.comparison?.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
    expect(outcome(second)).toEqual({ status: 'warning', attempt: 2, planned: counts(300, 2000, 200), delivered: counts(300, 1999, 200), rejected: counts(0, 1, 0) });
    await my('update people set score = 7 where id = 100');
    expect((await run()).plannedRows).toEqual(counts(0, 1, 0));
    expect(await digest('crm_people')).toEqual(await digest('people'));
  });

  it('compares a JSON column with its copy in the planner table (MariaDB keeps JSON as text): nothing changed is nothing sent', async () => {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const url = await createTestMysqlDatabase('lockstep_wmy');
    await mysqlSql(
      url,
      `create table docs (id bigint primary key, meta json null);
       insert into docs values (1, '{"a": 1}'), (2, '[1, 2]'), (3, null);
       create table crm_docs (id bigint primary key, meta text null)`,
    );
    const { h, run, my, planned } = await mysqlSetup({
      url,
      models: [model('people', 'warehouse', 'select id, meta from docs')],
      sync: { object: 'crm_docs' },
    });
    await using _ = h;
    expect((await run()).plannedRows).toEqual({ addedCount: 3, changedCount: 0, removedCount: 0 });
    const idle = await run();
    expect(idle.plannedRows).toEqual(NONE);
    expect(idle.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    await my(`update docs set meta = '{"a": 2}' where id = 1`);
    expect((await run()).plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    expect(await my(`select meta from ${planned()} where id = 1`)).toEqual([{ meta: '{"a": 2}' }]);
  });

  it('compares long text and blobs made by expressions (which MariaDB types apart from the table it makes of them): nothing changed is nothing sent', async () => {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const url = await createTestMysqlDatabase('lockstep_wmy');
    await mysqlSql(
      url,
      `create table notes (id bigint primary key, body text, doc json, raw blob);
       insert into notes values (1, 'a', '{"x": 1}', x'00'), (2, null, null, null);
       create table crm_notes (id bigint primary key, body2 text, as_text longtext, x text, raw2 longblob, joined text)`,
    );
    const { h, run } = await mysqlSetup({
      url,
      models: [
        model(
          'people',
          'warehouse',
          `select n.id, concat(body, body) as body2, cast(doc as char) as as_text, json_extract(doc, '$.x') as x, concat(raw, raw) as raw2,
             (select group_concat(body) from notes) as joined from notes n`,
        ),
      ],
      sync: { object: 'crm_notes' },
    });
    await using _ = h;
    expect((await run()).plannedRows).toEqual({ addedCount: 2, changedCount: 0, removedCount: 0 });
    const idle = await run();
    expect(idle.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(idle.plannedRows).toEqual(NONE);
  });

  it('compares a column the model leaves NULL (`null as seen_at`) with its copy: nothing changed is nothing sent', async () => {
    const { h, run } = await mysqlSetup({ models: [model('people', 'warehouse', 'select id, name, score, null as seen_at from people')] });
    await using _ = h;
    expect((await run()).plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    const idle = await run();
    expect(idle.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(idle.plannedRows).toEqual(NONE);
  });

  it('takes the model as delivered on resetCDC, and sends only new keys in insert mode, full resync or not', async () => {
    const { h, run, my, count, planned } = await mysqlSetup({ sync: { mode: 'insert' } });
    await using _ = h;
    const { run: reset } = await h.app.runs.triggerSync('people-to-crm', { resetCDC: true });
    const afterReset = await h.app.runs.waitForSyncRun(reset.id);
    expect(afterReset.status).toBe('success');
    expect(afterReset.plannedRows).toEqual(NONE);
    expect(await count('crm_people')).toBe(0);
    expect(await count(planned())).toBe(ROWS);

    await my(`update people set name = 'changed' where id = 1; insert into people values (9001, 'new', 1, null)`);
    const inserted = await run();
    expect(inserted.plannedRows).toEqual({ addedCount: 1, changedCount: 0, removedCount: 0 });
    expect(await my('select id from crm_people')).toEqual([{ id: '9001' }]);

    const all = await run({ fullResync: true });
    expect(all.plannedRows).toEqual(NONE);
    expect(await count(planned())).toBe(ROWS + 1);
    expect((await run()).plannedRows).toEqual(NONE);
  });

  it('finds null and duplicate keys in the warehouse and refuses them', async () => {
    const { h, run } = await mysqlSetup({
      models: [
        model(
          'people',
          'warehouse',
          `select id, name, score, seen_at from people
           union all select id, concat(name, ' again'), score, seen_at from people where id = 5
           union all select null, 'nobody', 1, null`,
        ),
      ],
    });
    await using _ = h;
    const first = await run();
    expect(first.status).toBe('warning');
    expect(first.failedRows.addedCount).toBe(2);
    const reasons = (await h.app.store.listRejectedRows(first.id, 10, 0)).map((r) => [r.key, r.reason]);
    expect(reasons).toContainEqual(['[null]', 'primary key column "id" is null']);
    expect(reasons.find(([key]) => key === '[5]')?.[1]).toMatch(/^duplicate primary key \[5\]/);
    expect(first.successfulRows.addedCount).toBe(ROWS);
    // The row without a key is refused again; of person 5's two rows, one matches the planner table.
    expect((await run()).plannedRows).toEqual({ addedCount: 1, changedCount: 1, removedCount: 0 });
  });

  it('rebuilds a planner table changed or dropped by hand, and re-compares once when column types change, saying so', async () => {
    const { h, run, my, digest, planned } = await mysqlSetup();
    await using _ = h;
    expect((await run()).status).toBe('success');

    await my(`update ${planned()} set name = 'tampered' where id = 1; delete from crm_people where id = 2`);
    const afterTamper = await run();
    expect(afterTamper.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep: compared by key only this run/);
    expect(afterTamper.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS, removedCount: 0 });
    expect(await digest('crm_people')).toEqual(await digest('people'));
    expect((await run()).plannedRows).toEqual(NONE);

    await my(`truncate table ${planned()}`);
    const afterTruncate = await run();
    expect(afterTruncate.comparison?.notes?.[0]).toMatch(/was changed outside Lockstep/);
    expect((await run()).plannedRows).toEqual(NONE);

    await my(`drop table ${planned()}`);
    const afterDrop = await run();
    expect(afterDrop.comparison?.notes?.[0]).toMatch(/was dropped outside Lockstep: every row is sent again/);
    expect(afterDrop.plannedRows).toEqual({ addedCount: ROWS, changedCount: 0, removedCount: 0 });
    expect((await run()).plannedRows).toEqual(NONE);

    await my('alter table people modify score bigint not null');
    const retyped = await run();
    expect(retyped.comparison?.notes?.[0]).toMatch(/the model's columns changed \(score int → bigint\): every row is compared again by key and sent once/);
    expect(retyped.plannedRows).toEqual({ addedCount: 0, changedCount: ROWS, removedCount: 0 });
    const idle = await run();
    expect(idle.plannedRows).toEqual(NONE);
    expect(idle.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
  });

  it('reads only rows past the cursor, and sees deletes at a full comparison (every fullCompareEvery runs or asked for)', async () => {
    const people: ModelDef = { ...model('people', 'warehouse', 'select id, name, score, seen_at from people'), cursor: 'seen_at', fullCompareEvery: 3 };
    const { h, run, my, digest } = await mysqlSetup({ models: [people] });
    await using _ = h;
    const first = await run();
    expect(first.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(first.plannedRows.addedCount).toBe(ROWS);

    await my(`update people set name = 'moved', seen_at = '2030-01-01' where id = 10; delete from people where id = 11`);
    const second = await run();
    expect(second.comparison).toEqual({ planner: 'warehouse', kind: 'cursor', target: expect.any(Object) });
    expect(second.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 0 });
    await my(`update people set name = 'late' where id = 12`);
    const third = await run();
    expect(third.comparison?.kind).toBe('cursor');
    expect(third.plannedRows).toEqual(NONE);

    const fourth = await run();
    expect(fourth.comparison).toEqual({ planner: 'warehouse', kind: 'full', target: expect.any(Object) });
    expect(fourth.plannedRows).toEqual({ addedCount: 0, changedCount: 1, removedCount: 1 });
    expect(await digest('crm_people')).toEqual(await digest('people'));

    await my(`delete from people where id = 13`);
    expect((await run()).plannedRows).toEqual(NONE);
    const asked = await run({ fullCompare: true });
    expect(asked.comparison?.kind).toBe('full');
    expect(asked.plannedRows).toEqual({ addedCount: 0, changedCount: 0, removedCount: 1 });
  });

  it('names the grant to add when the user may not create the planner database, and falls back with planner: auto', async () => {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const url = await createTestMysqlDatabase('lockstep_wmygrant');
    const database = new URL(url).pathname.slice(1);
    const role = `reader_${database.slice(-6)}`;
    await mysqlSql(url, `create user '${role}'@'%' identified by 'pw'; grant all on \`${database}\`.* to '${role}'@'%'`);
    try {
      const limited = new URL(url);
      limited.username = role;
      limited.password = 'pw';
      const strict = await mysqlSetup({ url: limited.toString(), plannerSchema: `${database}_p` });
      {
        await using _ = strict.h;
        const failed = await strict.run();
        expect(failed.status).toBe('failed');
        expect(failed.error).toContain(`GRANT ALL ON \`${database}_p\`.* TO '${role}'@'%'`);
      }
      const auto = await mysqlSetup({ url: limited.toString(), plannerSchema: `${database}_p`, settings: { planner: 'auto' } });
      await using _ = auto.h;
      const fallback = await auto.run();
      expect(fallback.status).toBe('success');
      expect(fallback.comparison?.planner).toBe('store');
      expect(fallback.comparison?.notes?.[0]).toMatch(/planner: auto on source "warehouse" fell back to the store's planner/);
    } finally {
      await mysqlSql(url, `drop user '${role}'@'%'`);
    }
  });

  it('says the server only allows reading when it refuses the planner\'s database as read-only, as a connection error (planner: auto falls back on those)', async () => {
    const { createTestMysqlDatabase } = await import('../helpers/mysql.js');
    const { MysqlPlanner } = await import('../../src/connectors/mysql/mysql-planner.js');
    const { createMysqlPool } = await import('../../src/connectors/mysql/mysql-client.js');
    const url = await createTestMysqlDatabase('lockstep_wmyro');
    const pool = createMysqlPool(url, 1);
    try {
      // A replica answers 1290 (--read-only); a session that only reads, 1792: both say the server only allows reading.
      const connection = await pool.getConnection();
      await connection.query('SET SESSION TRANSACTION READ ONLY');
      const refused = await MysqlPlanner.open(pool, connection, `${new URL(url).pathname.slice(1)}_p`, 'MySQL at replica').then(
        () => null,
        (error: unknown) => error as LockstepError,
      );
      expect(refused?.code).toBe(ErrorCode.Connection);
      expect(refused?.message).toMatch(
        /^the planner cannot keep its tables on MySQL at replica: the server only allows reading there \(.*READ ONLY transaction\) — point the source at a server that takes writes \(the primary\), or set planner: store on the source$/,
      );
    } finally {
      await pool.end();
    }
  });

  it('refuses a model returning columns whose names differ only in case, which MySQL takes as one in a table, saying so and to rename one', async () => {
    const query = "select id, name, upper(name) as NAME, score, seen_at from people";
    const { h, run, my } = await mysqlSetup({ models: [model('people', 'warehouse', query)] });
    await using _ = h;
    // The query alone runs, and returns both columns as written.
    expect(Object.keys((await my(`${query} where id = 1`))[0] ?? {})).toEqual(['id', 'name', 'NAME', 'score', 'seen_at']);
    const refused = await run();
    expect(refused.status).toBe('failed');
    expect(refused.error).toBe(
      'the model\'s query returns more than one column named "NAME" without regard to case: MySQL takes column names that differ only in case as one name in a table, and the planner in the warehouse keeps the model\'s columns in tables of its own — give one of them another name (AS ...)',
    );
  });

  it('says the model\'s query was refused, not the planner\'s database, when the user may not read the model', async () => {
    const { createTestMysqlDatabase, mysqlSql } = await import('../helpers/mysql.js');
    const url = await createTestMysqlDatabase('lockstep_wmyread');
    const database = new URL(url).pathname.slice(1);
    const role = `reader_${database.slice(-6)}`;
    await mysqlSql(
      url,
      `create table people (id bigint primary key, name varchar(100) not null, score int not null, seen_at datetime(3) null);
       create table crm_people (id bigint primary key, name varchar(100), score int, seen_at datetime(3));
       create table secret_people (id bigint primary key, name varchar(100) not null, score int not null, seen_at datetime(3) null);
       create user '${role}'@'%' identified by 'pw'; grant all on \`${database}\`.people to '${role}'@'%';
       grant all on \`${database}\`.crm_people to '${role}'@'%'; grant all on \`${database}_p\`.* to '${role}'@'%'`,
    );
    try {
      const limited = new URL(url);
      limited.username = role;
      limited.password = 'pw';
      const { h, run } = await mysqlSetup({
        url: limited.toString(),
        plannerSchema: `${database}_p`,
        models: [model('people', 'warehouse', 'select id, name, score, seen_at from secret_people')],
      });
      await using _ = h;
      const refused = await run();
      expect(refused.status).toBe('failed');
      expect(refused.error).toMatch(/^the model's query failed on source MySQL at .*: SELECT command denied .*secret_people.* — check the model's query/);
      expect(refused.error).not.toMatch(/GRANT ALL/);
    } finally {
      await mysqlSql(url, `drop user '${role}'@'%'`);
    }
  });

  it('finishes a planner table swap that an attempt stopped in the middle of, before or after the rename', async () => {
    const { createTestMysqlDatabase, mysqlSeries, mysqlSql } = await import('../helpers/mysql.js');
    const { MysqlPlanner } = await import('../../src/connectors/mysql/mysql-planner.js');
    const { createMysqlPool } = await import('../../src/connectors/mysql/mysql-client.js');
    const url = await createTestMysqlDatabase('lockstep_wmyswap');
    const schema = `${new URL(url).pathname.slice(1)}_p`;
    const my = (text: string) => mysqlSql(url, text);
    await my(`create table people as select seq as id, concat('p', seq) as name from ${mysqlSeries(100)}`);
    const open = async () => {
      const pool = createMysqlPool(url, 1);
      return MysqlPlanner.open(pool, await pool.getConnection(), schema, 'test');
    };
    const request = (run: number) => planRequest({ id: run, attempt: 1 });
    const planner = await open();
    try {
      // A first run delivers rows 1 to 40 and stops as its take-in had recorded the swap, before the rename.
      await planner.plan(request(1));
      await planner.commit({ op: 'added', key: [40] }, [], NONE);
      await my(`delete from \`${schema}\`.sync_7_people_stage where id > 40; update \`${schema}\`.lockstep_syncs set swap_from = 'sync_7_people_stage'`);
      const second = await planner.plan(request(2));
      expect(second.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
      expect(second.parts).toEqual([expect.objectContaining({ op: 'added', rows: 60 })]);
      // The second run delivers everything; its take-in stops right after a rename: the planner table
      // holds every row, but the sync's row still names the swap.
      await planner.commit({ op: 'added', key: [100] }, [], NONE);
      await my(
        `delete from \`${schema}\`.sync_7_people where id > 40;
         insert into \`${schema}\`.sync_7_people select id, name from \`${schema}\`.sync_7_people_stage where lockstep_op = 'a';
         update \`${schema}\`.lockstep_syncs set swap_from = 'sync_7_people_new'`,
      );
      const third = await planner.plan(request(3));
      expect(third.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
      expect(third.parts).toEqual([]);
      await planner.finish();
      expect(await my(`select count(*) as n, sum(id) as s from \`${schema}\`.sync_7_people`)).toEqual([{ n: '100', s: '5050' }]);
      expect(await my(`select count(*) as n from information_schema.triggers where event_object_schema = '${schema}'`)).toEqual([{ n: '3' }]);
    } finally {
      await planner.close();
    }
  });

  it('keeps zero dates as NULL, as the source reads them, on a server whose sql_mode refuses zero dates (MySQL 8\'s default)', async () => {
    const { mysqlSql } = await import('../helpers/mysql.js');
    const { url, schema, planner } = await handPlanner(
      'lockstep_wmyzero',
      `set session sql_mode = '';
       create table people (id int primary key, born date, seen datetime(6));
       insert into people values (1, '0000-00-00', '2024-00-01 00:00:00'), (2, '2024-05-00', null), (3, '2024-05-06', '2024-05-06 07:08:09.123456')`,
      "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE'",
    );
    try {
      expect((await planner.plan(planRequest({ id: 1, attempt: 1 }))).parts).toEqual([expect.objectContaining({ op: 'added', rows: 3 })]);
      await planner.finish();
      expect(await mysqlSql(url, `select id, born, seen from \`${schema}\`.sync_7_people order by id`)).toEqual([
        { id: 1, born: null, seen: null },
        { id: 2, born: null, seen: null },
        { id: 3, born: '2024-05-06', seen: '2024-05-06 07:08:09.123456' },
      ]);
      await mysqlSql(url, `set session sql_mode = ''; update people set seen = '0000-00-00 00:00:00' where id = 2; update people set born = '2024-05-07' where id = 3`);
      expect((await planner.plan(planRequest({ id: 2, attempt: 1 }))).parts).toEqual([expect.objectContaining({ op: 'changed', rows: 1 })]);
      await planner.finish();
    } finally {
      await planner.close();
    }
  });

  it('gives every table it makes a primary key, which servers with sql_require_primary_key (MySQL) or innodb_force_primary_key (MariaDB) insist on', async () => {
    const { mysqlSeries, mysqlSql } = await import('../helpers/mysql.js');
    const { url, schema, planner } = await handPlanner('lockstep_wmypk', `create table people as select seq as id, concat('p', seq) as name from ${mysqlSeries(100)}`);
    const withoutKey = () =>
      mysqlSql(
        url,
        `select t.table_name as name from information_schema.tables t where t.table_schema = '${schema}' and not exists (
           select 1 from information_schema.table_constraints c where c.table_schema = t.table_schema and c.table_name = t.table_name and c.constraint_type = 'PRIMARY KEY')`,
      );
    try {
      for (const [run, change] of [[1, ''], [2, "update people set name = 'x' where id = 5"], [3, 'delete from people where id = 7']] as const) {
        if (change) await mysqlSql(url, change);
        const plan = await planner.plan({ ...planRequest({ id: run, attempt: 1 }), resendAll: run === 3 });
        await planner.commit({ op: plan.parts[0]?.op ?? 'added', key: [3] }, [[2]], NONE);
        expect(await withoutKey()).toEqual([]);
        await planner.finish();
        expect(await withoutKey()).toEqual([]);
      }
    } finally {
      await planner.close();
    }
  });

  it('refuses the writes of an attempt another attempt took over', async () => {
    const { createTestMysqlDatabase, mysqlSeries, mysqlSql } = await import('../helpers/mysql.js');
    const { MysqlPlanner } = await import('../../src/connectors/mysql/mysql-planner.js');
    const { createMysqlPool } = await import('../../src/connectors/mysql/mysql-client.js');
    const url = await createTestMysqlDatabase('lockstep_wmyfence');
    const schema = `${new URL(url).pathname.slice(1)}_p`;
    await mysqlSql(url, `create table people as select seq as id, concat('p', seq) as name from ${mysqlSeries(100)}`);
    const open = async () => {
      const pool = createMysqlPool(url, 1);
      return MysqlPlanner.open(pool, await pool.getConnection(), schema, 'test');
    };
    const request = (attempt: number) => planRequest({ id: 1, attempt });
    const stale = await open();
    const current = await open();
    try {
      expect((await stale.plan(request(1))).parts).toEqual([expect.objectContaining({ op: 'added', rows: 100 })]);
      await stale.commit({ op: 'added', key: [40] }, [[7]], counts(39, 0, 0));
      const taken = await current.plan(request(2));
      expect(taken.notes).toContain('took in the rows an earlier attempt delivered before it stopped');
      // Rows 1 to 40 went in, but for the rejected row 7; they count as recorded with them.
      expect(taken.parts).toEqual([expect.objectContaining({ op: 'added', rows: 61 })]);
      expect(taken.delivered).toEqual(counts(39, 0, 0));
      await expect(stale.commit({ op: 'added', key: [90] }, [], counts(89, 0, 0))).rejects.toMatchObject({ code: 'lease_lost' });
      await expect(stale.finish()).rejects.toMatchObject({ code: 'lease_lost' });
      await expect(stale.plan(request(1))).rejects.toMatchObject({ code: 'lease_lost' });
      await current.finish();
      expect(await mysqlSql(url, `select count(*) as n from \`${schema}\`.sync_7_people`)).toEqual([{ n: '100' }]);
    } finally {
      await stale.close();
      await current.close();
    }
  });
});

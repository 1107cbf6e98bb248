/**
 * The sequence runs of the PostgreSQL store (SequenceRunStore): a run queued with every member
 * pending, claimed, advanced by hand-offs (a decision of core/sequence-rules.ts applied in one
 * transaction that locks the sequence run), resumed, cancelled and finished. Members start sync
 * runs in the same statement that links them, and cancel them through the run queue's helpers
 * (PostgresSyncRunStore), so a member and its run change together.
 *
 * A hand-off begun with a member's end: the run queue ends a member run in one round trip with
 * the first of its hand-off (endAndOpenAdvance), and the transaction it leaves open is taken by
 * the advance this process makes next.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { LockstepError, NotFoundError } from '../../core/errors.js';
import type { Clock, LeaseRequest, MemberStart, SequenceRunListQuery, SequenceRunStore, SyncRunPatch } from '../../core/ports.js';
import {
  isTerminalSyncRunStatus,
  type RecordedMember,
  type SequenceRun,
  type SequenceRunStatus,
  type SyncRun,
  type SyncRunStatus,
  type Trigger,
} from '../../core/runs.js';
import type { SecretCodec } from '../../core/secrets.js';
import {
  recordMembers,
  type SequenceAdvance,
  type SequenceAdvanceState,
  type SequenceDecision,
  type SequenceResumeDecision,
  type SequenceResumeState,
} from '../../core/sequence-rules.js';
import type { SequenceRecord } from '../../core/workspace.js';
import { memberLimitColumns, type EntityRow, type SyncRunRow } from '../rows.js';
import {
  isTerminalSequenceRunStatus,
  memberNeedsRun,
  nothingToCancelError,
  resumeRefused,
  sequenceRunFinishedError,
  type MemberWithRun,
} from '../run-rules.js';
import { CANCEL_REASONS, FIRED_TRIGGER_TYPES, endOfRunWaitingOnDeletedSync } from '../workspace-changes.js';
import {
  BEGIN,
  errorCode,
  isConflictState,
  storedText,
  type BatchedTransaction,
  type OpenTransaction,
  type PostgresDatabase,
  type Queryable,
} from './postgres-database.js';
import {
  ACTIVE,
  Params,
  entityRecord,
  isUniqueViolation,
  nullableStored,
  safeId,
  sequenceRun,
  syncRun,
  timeFilters,
  type PostgresStatements,
  type SequenceRunResult,
} from './postgres-statements.js';
import type { PostgresSyncRunStore } from './postgres-sync-run-store.js';
import { RunGraphCache } from '../run-graph-cache.js';

/** How long an advance begun with a member's end waits for this process's hand-off, ms. */
const OPENED_ADVANCE_MS = 250;

interface OpenedAdvance {
  tx: OpenTransaction;
  /** The lock's, the state's and the sequence's results (see advanceStateSql). */
  results: Array<{ rows: Record<string, unknown>[] }>;
  timer: NodeJS.Timeout;
}

export interface PostgresSequenceRunStoreOptions {
  db: PostgresDatabase;
  /** The SQL the store's roles share. */
  statements: PostgresStatements;
  /** Opens the secrets of the sequences it reads. */
  secrets: SecretCodec;
  /** Gives the time of a cancel request the caller passes no `now` to. */
  clock: Clock;
  /** The run queue, whose helpers cancel the members' sync runs and end them with a hand-off. */
  syncRuns: PostgresSyncRunStore;
}

export class PostgresSequenceRunStore implements SequenceRunStore {
  private readonly db: PostgresDatabase;
  private readonly statements: PostgresStatements;
  /** Table names, qualified with the quoted schema. */
  private readonly tables: PostgresStatements['tables'];
  /** `r.*` of a sequence run plus its members, for the alias `r`. */
  private readonly sequenceRunColumns: string;
  private readonly secrets: SecretCodec;
  private readonly clock: Clock;
  private readonly syncRuns: PostgresSyncRunStore;
  /** Advances under way in this store, by sequence run id (how many). */
  private readonly advancing = new Map<string, number>();
  /** The member graphs of the runs advanced here: every hand-off of a run decides by its graph. */
  private readonly runGraphs = new RunGraphCache();
  /** Advances begun in the round trip that ended a member's run, by sequence run id (see endAndOpenAdvance). */
  private readonly openedAdvances = new Map<string, OpenedAdvance>();

  constructor(options: PostgresSequenceRunStoreOptions) {
    this.db = options.db;
    this.statements = options.statements;
    this.tables = options.statements.tables;
    this.sequenceRunColumns = options.statements.sequenceRunColumns;
    this.secrets = options.secrets;
    this.clock = options.clock;
    this.syncRuns = options.syncRuns;
  }

  async enqueueSequenceRun(sequence: SequenceRecord, trigger: Trigger, now: number): Promise<{ run: SequenceRun; created: boolean }> {
    return this.db.transaction((q) => this.queue(q, sequence, trigger, now));
  }

  async claimSequenceRun(id: string, now: number): Promise<SequenceRun | null> {
    // One statement, as claimSyncRun: the unique index of running runs settles a race.
    try {
      const rows = await this.db.query<SequenceRunResult>(
        `WITH claimed AS (
           UPDATE ${this.tables.sequenceRuns} AS r SET status = 'running', started_at = $2
           WHERE r.id = $1 AND r.status = 'pending'
             AND NOT EXISTS (SELECT 1 FROM ${this.tables.sequenceRuns} AS other WHERE other.sequence_id = r.sequence_id AND other.status = 'running')
           RETURNING r.*
         )
         SELECT ${this.sequenceRunColumns} FROM claimed AS r`,
        [id, now],
      );
      if (rows[0]) return sequenceRun(rows[0]);
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      return null;
    }
    if (!(await this.statements.sequenceRunRow(this.db.direct, id))) throw new NotFoundError(`sequence run ${id} does not exist`);
    return null;
  }

  async getSequenceRun(id: string): Promise<SequenceRun | null> {
    const row = await this.statements.sequenceRunRow(this.db.direct, id);
    return row ? sequenceRun(row) : null;
  }

  async resumingSequenceRunId(id: string): Promise<string | null> {
    const { rows } = await this.db.direct.query<{ id: string }>(`SELECT id FROM ${this.tables.sequenceRuns} WHERE resumed_from = $1`, [id]);
    return rows[0]?.id ?? null;
  }

  async listSequenceRuns(query: SequenceRunListQuery): Promise<SequenceRun[]> {
    const p = new Params();
    const where: string[] = [];
    if (query.sequenceId !== undefined) where.push(`r.sequence_id = ${p.add(safeId(query.sequenceId) ?? -1, 'bigint')}`);
    if (query.sequenceIds !== undefined) where.push(`r.sequence_id = ANY(${p.add(query.sequenceIds.map((id) => safeId(id) ?? -1), 'bigint[]')})`);
    if (query.statuses !== undefined) where.push(`r.status = ANY(${p.add(query.statuses, 'text[]')})`);
    timeFilters(query, where, p, 'r.');
    const sql =
      `SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY r.seq ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${p.add(query.limit, 'bigint')} OFFSET ${p.add(query.offset, 'bigint')}`;
    return (await this.db.query<SequenceRunResult>(sql, p.values)).map(sequenceRun);
  }

  async latestSequenceRuns(perSequence: number): Promise<SequenceRun[]> {
    const sql =
      `SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequences} AS s CROSS JOIN LATERAL ` +
      `(SELECT * FROM ${this.tables.sequenceRuns} WHERE sequence_id = s.id ORDER BY seq DESC LIMIT $1) AS r ` +
      'WHERE s.deleted_at IS NULL ORDER BY r.sequence_id, r.seq DESC';
    return (await this.db.query<SequenceRunResult>(sql, [perSequence])).map(sequenceRun);
  }

  async listSequenceRunsByStatus(statuses: SequenceRunStatus[]): Promise<SequenceRun[]> {
    if (statuses.length === 0) return [];
    const rows = await this.db.query<SequenceRunResult>(
      `SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.status = ANY($1::text[]) ORDER BY r.seq`,
      [statuses],
    );
    return rows.map(sequenceRun);
  }

  async startMembers(sequenceRunId: string, members: MemberStart[], now: number): Promise<SyncRun[]> {
    return this.db.transaction((q) => this.startMembersIn(q, sequenceRunId, members, now));
  }

  async setTermination(sequenceRunId: string, memberKey: string | null, reason: string): Promise<void> {
    if (await this.setTerminationIn(this.db.direct, sequenceRunId, memberKey, reason)) return;
    if (!(await this.statements.sequenceRunRow(this.db.direct, sequenceRunId))) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
  }

  async skipPendingMembers(sequenceRunId: string, now: number): Promise<void> {
    await this.db.transaction(async (q) => {
      const run = await q.query(`SELECT id FROM ${this.tables.sequenceRuns} WHERE id = $1 FOR UPDATE`, [sequenceRunId]);
      if (run.rows.length === 0) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      await this.skipPending(q, sequenceRunId, now);
    });
  }

  async finishSequenceRun(sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun> {
    return this.db.transaction((q) => this.finishSequenceRunIn(q, sequenceRunId, status, now));
  }

  async advanceSequenceRun(
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim?: { lease: LeaseRequest; max: number },
  ): Promise<SequenceAdvance> {
    const began = performance.now();
    this.advancing.set(id, (this.advancing.get(id) ?? 0) + 1);
    try {
      const opened = this.takeOpenedAdvance(id);
      if (opened) {
        try {
          return await opened.tx.proceed((tx) => this.advanceIn(tx, id, decide, now, claim, began, opened.results));
        } catch (error) {
          // A deadlock victim runs again from the start, as any transaction.
          if (!(error instanceof LockstepError && isConflictState(errorCode(error.cause)))) throw error;
        }
      }
      return await this.db.batchedTransaction((tx) => this.advanceIn(tx, id, decide, now, claim, began, null));
    } finally {
      const left = (this.advancing.get(id) ?? 1) - 1;
      if (left === 0) this.advancing.delete(id);
      else this.advancing.set(id, left);
    }
  }

  /**
   * The statements reading an advance's state after locking the sequence run `ref` (an SQL
   * expression): the lock, the run with the sync runs decide reads, the sequence. Each reads a
   * snapshot of its own, so a second advance waiting for the lock reads what the first committed.
   */
  private advanceStateSql(ref: string): string {
    return `SELECT id FROM ${this.tables.sequenceRuns} WHERE id = ${ref} FOR UPDATE;
      SELECT ${this.sequenceRunColumns},
             COALESCE((SELECT json_agg(s) FROM ${this.tables.syncRuns} AS s
                       WHERE s.id IN (SELECT m.sync_run_id FROM ${this.tables.memberRuns} AS m
                                      WHERE m.sequence_run_id = r.id
                                        AND (m.status = 'pending' OR (r.reason IS NULL AND m.status IN ('warning', 'failed', 'cancelled'))))),
                      '[]'::json) AS sync_runs
      FROM ${this.tables.sequenceRuns} AS r WHERE r.id = ${ref};
      SELECT * FROM ${this.tables.sequences}
      WHERE id = (SELECT sequence_id FROM ${this.tables.sequenceRuns} WHERE id = ${ref}) AND deleted_at IS NULL`;
  }

  /**
   * One advance in `tx`. A hand-off is three round trips when a member starts: the state (with
   * the BEGIN, or already read: `read`, see endAndOpenAdvance); the member's run, claimed; the run
   * as it is now with the COMMIT.
   */
  private async advanceIn(
    tx: BatchedTransaction,
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim: { lease: LeaseRequest; max: number } | undefined,
    began: number,
    read: Array<{ rows: Record<string, unknown>[] }> | null,
  ): Promise<SequenceAdvance> {
    const runId = tx.literal(id);
    const [locked, states, sequences] = read ?? (await tx.batch(this.advanceStateSql(runId)));
    if (!locked || locked.rows.length === 0) throw new NotFoundError(`sequence run ${id} does not exist`);
    const state = states?.rows[0] as unknown as SequenceRunResult & { sync_runs: SyncRunRow[] };
    const run = sequenceRun(state);
    if (run.status !== 'running') return { run, started: [], cancelled: [] };
    const syncRuns = new Map(state.sync_runs.map((row) => [Number(row.id), syncRun(row)]));
    const sequenceRow = sequences?.rows[0] as EntityRow | undefined;
    const sequence = sequenceRow ? entityRecord<SequenceRecord>('sequence', sequenceRow, this.secrets) : null;

    // The sync runs decide reads (core/sequence-rules.ts syncRunsToDecide), in the same statement.
    const recorded = await this.runGraphs.get(id, async () => {
      const graph = await tx.query<{ members: RecordedMember[] }>(`SELECT members FROM ${this.tables.runGraphs} WHERE sequence_run_id = $1`, [id]);
      return graph.rows[0]?.members ?? null;
    });
    const decision = decide({ run, sequence, recorded, syncRuns, now });
    const changes = decision.terminate !== null || decision.cancel.length > 0 || decision.skipPending || decision.start.length > 0;
    if (!changes && !decision.finish) return { run, started: [], cancelled: [] };
    if (decision.terminate) await this.setTerminationIn(tx, id, decision.terminate.member, decision.terminate.reason);
    for (const syncRunId of decision.cancel) {
      const current = await this.statements.syncRunRow(tx, syncRunId);
      if (current && !isTerminalSyncRunStatus(current.status as SyncRunStatus)) await this.syncRuns.cancel(tx, syncRunId, now);
    }
    if (decision.skipPending) await this.skipPending(tx, id, now);
    // A claim is stamped when it happens: `now` plus the time the transaction took so far.
    const claims = claim ? { lease: claim.lease, max: claim.max, at: () => now + (performance.now() - began) } : undefined;
    const known = new Map<string, MemberWithRun>(
      run.members.map((m) => [
        m.key,
        { memberStatus: m.status, syncRunId: m.syncRunId, runStatus: m.syncRunId === null ? null : (syncRuns.get(m.syncRunId)?.status ?? null) },
      ]),
    );
    const started = decision.start.length > 0 ? await this.startMembersIn(tx, id, decision.start, now, { locked: true, known, claim: claims }) : [];
    if (decision.finish) {
      this.runGraphs.forget(id);
      return { run: await this.finishSequenceRunIn(tx, id, decision.finish, now), started, cancelled: decision.cancel };
    }
    const [after] = await tx.commitWith(`SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.id = ${runId}`);
    return { run: sequenceRun(after?.rows[0] as unknown as SequenceRunResult), started, cancelled: decision.cancel };
  }

  /**
   * A member run's end, in one round trip with the first of its hand-off: the run queue's terminal
   * UPDATE (PostgresSyncRunStore.patchSyncRunSql, `ending`) commits on its own, then a transaction
   * begins that locks the run's sequence run and reads the advance's state, and is left open for
   * the advance this process makes next (advanceSequenceRun takes it). Not taken within
   * OPENED_ADVANCE_MS (this process does not hand off: it is stopping, the run was not a member),
   * it is rolled back. Null when the round trip failed (the caller ends the run the plain way,
   * which finds it ended if the UPDATE committed) and when no transaction is left open while
   * another advance of that sequence run is under way here (it may be waiting for the lock).
   */
  async endAndOpenAdvance(id: number, patch: SyncRunPatch, now: number, attempt: number | undefined): Promise<SyncRunRow | null> {
    const p = new Params(pg.escapeLiteral);
    const update = this.syncRuns.patchSyncRunSql(id, patch, now, attempt, p, true);
    const ref = `(SELECT sequence_run_id FROM ${this.tables.syncRuns} WHERE id = ${p.add(safeId(id) ?? -1, 'bigint')})`;
    const opened = await this.db.open(`${update}; COMMIT; ${BEGIN}; ${this.advanceStateSql(ref)}`);
    if (!opened) return null;
    const [updated, , , locked, states, sequences] = opened.results;
    const row = updated?.rows[0] as SyncRunRow | undefined;
    const sequenceRunId = row?.sequence_run_id ?? null;
    if (!row || sequenceRunId === null || !locked?.rows[0] || this.advancing.has(sequenceRunId) || this.openedAdvances.has(sequenceRunId)) {
      void opened.abandon();
      return row ?? null;
    }
    const timer = setTimeout(() => {
      if (this.openedAdvances.get(sequenceRunId)?.tx === opened) this.openedAdvances.delete(sequenceRunId);
      void opened.abandon();
    }, OPENED_ADVANCE_MS);
    timer.unref();
    this.openedAdvances.set(sequenceRunId, { tx: opened, results: [locked, states as { rows: Record<string, unknown>[] }, sequences as { rows: Record<string, unknown>[] }], timer });
    const { notified_finished: _f, notified_work: _w, ...plain } = row as SyncRunRow & { notified_finished?: unknown; notified_work?: unknown };
    return plain as SyncRunRow;
  }

  /** Rolls back the advances begun with a member's end that no hand-off took (the store is closing). */
  async abandonOpenedAdvances(): Promise<void> {
    for (const id of [...this.openedAdvances.keys()]) await this.takeOpenedAdvance(id)?.tx.abandon();
  }

  private takeOpenedAdvance(id: string): OpenedAdvance | null {
    const opened = this.openedAdvances.get(id);
    if (!opened) return null;
    this.openedAdvances.delete(id);
    clearTimeout(opened.timer);
    return opened;
  }

  async resumeSequenceRun(
    id: string,
    decide: (state: SequenceResumeState) => SequenceResumeDecision,
    trigger: Trigger,
    now: number,
  ): Promise<SequenceRun> {
    return this.db.transaction(async (q) => {
      const found = await this.statements.sequenceRunRow(q, id);
      if (!found) throw new NotFoundError(`sequence run ${id} does not exist`);
      // The sequence row first, as enqueueSequenceRun locks it (queues of one sequence take turns),
      // then the run: two resumes of one run take turns too.
      const live = await q.query<EntityRow>(`SELECT * FROM ${this.tables.sequences} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [found.sequence_id]);
      await q.query(`SELECT id FROM ${this.tables.sequenceRuns} WHERE id = $1 FOR UPDATE`, [id]);
      const run = sequenceRun((await this.statements.sequenceRunRow(q, id)) as SequenceRunResult);
      const sequence = live.rows[0] ? entityRecord<SequenceRecord>('sequence', live.rows[0], this.secrets) : null;
      const finishedIds = run.members.filter((m) => (m.status === 'success' || m.status === 'warning') && m.syncRunId !== null).map((m) => m.syncRunId as number);
      const finished = await q.query<SyncRunRow>(`SELECT * FROM ${this.tables.syncRuns} WHERE id = ANY($1::bigint[])`, [finishedIds]);
      const syncs = await q.query<{ id: number; slug: string }>(`SELECT id, slug FROM ${this.tables.syncs} WHERE slug = ANY($1::text[]) AND deleted_at IS NULL FOR SHARE`, [
        (sequence?.members ?? []).map((m) => m.sync),
      ]);
      const syncIds = new Map(syncs.rows.map((r) => [r.slug, Number(r.id)]));
      const others = await q.query<SequenceRunResult>(
        `SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.resumed_from = $1 OR (r.sequence_id = $2 AND r.status = 'pending')`,
        [id, run.sequenceId],
      );
      const resumedBy = others.rows.find((r) => r.resumed_from === id);
      const pending = others.rows.find((r) => r.status === 'pending');
      const graph = await q.query<{ members: RecordedMember[] }>(`SELECT members FROM ${this.tables.runGraphs} WHERE sequence_run_id = $1`, [id]);
      const decision = decide({
        run,
        recorded: graph.rows[0]?.members ?? null,
        sequence,
        syncRuns: new Map(finished.rows.map((row) => [Number(row.id), syncRun(row)])),
        syncIds,
        resumedBy: resumedBy ? sequenceRun(resumedBy) : null,
        pending: pending ? sequenceRun(pending) : null,
      });
      if (!decision.ok) throw resumeRefused(decision);
      const resumed = sequence as SequenceRecord;
      const newId = randomUUID();
      await q.query(
        `WITH run AS (
           INSERT INTO ${this.tables.sequenceRuns} (id, sequence_id, status, trigger_type, trigger_detail, created_at, deadline_minutes, resumed_from, concurrency)
           VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $9)
         )
         INSERT INTO ${this.tables.runGraphs} (sequence_run_id, members) VALUES ($1, $8)`,
        [
          newId,
          resumed.id,
          trigger.type,
          nullableStored(trigger.detail),
          now,
          resumed.deadlineMinutes ?? null,
          id,
          JSON.stringify(recordMembers(resumed)),
          resumed.concurrency,
        ],
      );
      const carried = new Map(decision.carry.map((c) => [c.key, c]));
      const members = resumed.members.map((m) => ({ member: m, carried: carried.get(m.key) ?? null, limits: memberLimitColumns(m) }));
      await q.query(
        `INSERT INTO ${this.tables.memberRuns}
           (sequence_run_id, key, position, sync_id, status, sync_run_id, started_at, finished_at, timeout_minutes, terminate, rejected_threshold)
         SELECT $1, u.key, u.n - 1, u.sync_id, u.status, u.sync_run_id, u.started_at, u.finished_at, u.timeout_minutes, u.terminate, u.rejected_threshold
         FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::float8[], $7::float8[], $8::float8[], $9::text[], $10::text[])
              WITH ORDINALITY AS u(key, sync_id, status, sync_run_id, started_at, finished_at, timeout_minutes, terminate, rejected_threshold, n)`,
        [
          newId,
          members.map((m) => m.member.key),
          members.map((m) => syncIds.get(m.member.sync) as number),
          members.map((m) => m.carried?.status ?? 'pending'),
          members.map((m) => m.carried?.syncRunId ?? null),
          members.map((m) => m.carried?.startedAt ?? null),
          members.map((m) => m.carried?.finishedAt ?? null),
          members.map((m) => m.limits.timeoutMinutes),
          members.map((m) => m.limits.terminate),
          members.map((m) => m.limits.rejectedThreshold),
        ],
      );
      const created = await q.query<SequenceRunResult>(`SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.id = $1`, [newId]);
      await this.statements.notify(q, 'work');
      return sequenceRun(created.rows[0] as SequenceRunResult);
    });
  }

  async requestSequenceRunCancel(id: string, now: number = this.clock.now()): Promise<SequenceRun> {
    return this.db.transaction(async (q) => {
      const current = await this.statements.sequenceRunRow(q, id, 'FOR UPDATE');
      if (!current) throw new NotFoundError(`sequence run ${id} does not exist`);
      if (isTerminalSequenceRunStatus(current.status)) throw nothingToCancelError(`sequence run ${id}`, current.status);
      if (current.status === 'pending') {
        await this.cancelPending(q, id, CANCEL_REASONS.CancelledBeforeStart, now);
      } else {
        await q.query(`UPDATE ${this.tables.sequenceRuns} SET cancel_requested = true WHERE id = $1`, [id]);
      }
      return sequenceRun((await this.statements.sequenceRunRow(q, id)) as SequenceRunResult);
    });
  }

  // -------------------------------------------------------------------------------------------
  // In the caller's transaction (fired runs, workspace deletes)

  /** Queues a run with every member pending, or finds the pending one, in `q`'s transaction. */
  async queue(q: Queryable, sequence: SequenceRecord, trigger: Trigger, now: number): Promise<{ run: SequenceRun; created: boolean }> {
    // The sequence row is locked: enqueues of one sequence take turns (one pending run), and a
    // delete of the sequence comes wholly before or after.
    const live = await q.query(`SELECT id FROM ${this.tables.sequences} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [safeId(sequence.id) ?? -1]);
    if (live.rows.length === 0) throw new NotFoundError(`sequence "${sequence.slug}" does not exist`);
    const pending = await q.query<SequenceRunResult>(
      `SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.sequence_id = $1 AND r.status = 'pending'`,
      [sequence.id],
    );
    if (pending.rows[0]) return { run: sequenceRun(pending.rows[0]), created: false };
    const syncs = await q.query<{ id: number; slug: string }>(
      `SELECT id, slug FROM ${this.tables.syncs} WHERE slug = ANY($1::text[]) AND deleted_at IS NULL FOR SHARE`,
      [sequence.members.map((m) => m.sync)],
    );
    const bySlug = new Map(syncs.rows.map((r) => [r.slug, Number(r.id)]));
    const syncIds = sequence.members.map((member) => {
      const id = bySlug.get(member.sync);
      if (id === undefined) throw new NotFoundError(`sequence "${sequence.slug}": member "${member.key}" runs unknown sync "${member.sync}"`);
      return id;
    });
    const id = randomUUID();
    await q.query(
      `WITH run AS (
         INSERT INTO ${this.tables.sequenceRuns} (id, sequence_id, status, trigger_type, trigger_detail, created_at, deadline_minutes, concurrency)
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $8)
       )
       INSERT INTO ${this.tables.runGraphs} (sequence_run_id, members) VALUES ($1, $7)`,
      [
        id,
        sequence.id,
        trigger.type,
        nullableStored(trigger.detail),
        now,
        sequence.deadlineMinutes ?? null,
        JSON.stringify(recordMembers(sequence)),
        sequence.concurrency,
      ],
    );
    const limits = sequence.members.map(memberLimitColumns);
    await q.query(
      `INSERT INTO ${this.tables.memberRuns} (sequence_run_id, key, position, sync_id, status, timeout_minutes, terminate, rejected_threshold)
       SELECT $1, u.key, u.n - 1, u.sync_id, 'pending', u.timeout_minutes, u.terminate, u.rejected_threshold
       FROM unnest($2::text[], $3::bigint[], $4::float8[], $5::text[], $6::text[])
            WITH ORDINALITY AS u(key, sync_id, timeout_minutes, terminate, rejected_threshold, n)`,
      [
        id,
        sequence.members.map((m) => m.key),
        syncIds,
        limits.map((l) => l.timeoutMinutes),
        limits.map((l) => l.terminate),
        limits.map((l) => l.rejectedThreshold),
      ],
    );
    const created = await q.query<SequenceRunResult>(`SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.id = $1`, [id]);
    await this.statements.notify(q, 'work');
    return { run: sequenceRun(created.rows[0] as SequenceRunResult), created: true };
  }

  /** Ends the sequence runs that would still start a member running the deleted sync `syncId`. */
  async endRunsWaitingOnDeletedSync(q: Queryable, syncId: number, syncSlug: string, now: number): Promise<void> {
    const waiting = await q.query<{ id: string; status: string; key: string }>(
      `SELECT r.id, r.status, m.key FROM ${this.tables.memberRuns} AS m JOIN ${this.tables.sequenceRuns} AS r ON r.id = m.sequence_run_id
       WHERE m.sync_id = $1 AND m.status = 'pending' AND r.status IN ('pending', 'running')
       FOR UPDATE OF r`,
      [syncId],
    );
    for (const run of waiting.rows) {
      const end = endOfRunWaitingOnDeletedSync(run, syncSlug);
      if (end.cancel) {
        await this.cancelPending(q, run.id, end.reason, now);
      } else {
        await this.setTerminationIn(q, run.id, run.key, end.reason);
        await this.skipPending(q, run.id, now);
      }
    }
  }

  /** Cancels the pending runs of the deleted sequence `sequenceId`. */
  async cancelPendingOfDeletedSequence(q: Queryable, sequenceId: number, now: number): Promise<void> {
    const pending = await q.query<{ id: string }>(`SELECT id FROM ${this.tables.sequenceRuns} WHERE sequence_id = $1 AND status = 'pending' FOR UPDATE`, [sequenceId]);
    for (const { id } of pending.rows) {
      await this.cancelPending(q, id, CANCEL_REASONS.SequenceDeleted, now);
    }
  }

  /** Cancels the pending run of the disabled sequence `sequenceId` that a schedule, webhook or upstream run queued. */
  async cancelFiredPendingOfDisabledSequence(q: Queryable, sequenceId: number, now: number): Promise<void> {
    const pending = await q.query<{ id: string }>(
      `SELECT id FROM ${this.tables.sequenceRuns} WHERE sequence_id = $1 AND status = 'pending' AND trigger_type = ANY($2::text[]) FOR UPDATE`,
      [sequenceId, FIRED_TRIGGER_TYPES],
    );
    for (const { id } of pending.rows) await this.cancelPending(q, id, CANCEL_REASONS.SequenceDisabled, now);
  }

  // -------------------------------------------------------------------------------------------
  // Internals (in the caller's transaction)

  /**
   * Ends a pending run cancelled before it started (`reason` kept unless one is recorded), its
   * members skipped, and records it as a finished run: the audit log keeps it like any run that ended.
   */
  private async cancelPending(q: Queryable, id: string, reason: string, now: number): Promise<void> {
    const { rows } = await q.query(
      `UPDATE ${this.tables.sequenceRuns} SET status = 'cancelled', cancel_requested = true, finished_at = $1, reason = COALESCE(reason, $2)
       WHERE id = $3 AND status = 'pending' RETURNING id`,
      [now, reason, id],
    );
    if (rows.length === 0) return;
    await this.skipPending(q, id, now);
    await this.statements.recordFinishedRuns(q, 'sequence', [id], now);
  }

  /**
   * Pending members become `skipped`. Their queued runs are cancelled directly: the member is
   * `skipped`, not `cancelled`, because it never started; the runs are recorded as finished runs.
   */
  private async skipPending(q: Queryable, sequenceRunId: string, now: number): Promise<void> {
    const cancelled = await q.query<{ id: string }>(
      `UPDATE ${this.tables.syncRuns} SET status = 'cancelled', finished_at = $2
       WHERE status = 'queued' AND id IN (SELECT sync_run_id FROM ${this.tables.memberRuns}
                                          WHERE sequence_run_id = $1 AND status = 'pending' AND sync_run_id IS NOT NULL)
       RETURNING id::text`,
      [sequenceRunId, now],
    );
    await this.statements.recordFinishedRuns(q, 'sync', cancelled.rows.map((r) => r.id), now);
    await q.query(`UPDATE ${this.tables.memberRuns} SET status = 'skipped', finished_at = $2 WHERE sequence_run_id = $1 AND status = 'pending'`, [
      sequenceRunId,
      now,
    ]);
  }

  /**
   * Creates a queued sync run for each member that needs one and links it (see startMembers).
   * `locked`: the caller holds the sequence run's lock and saw it running; `known`: the members'
   * states it read under that lock. `claim`: the first
   * `max` runs are created claimed by `lease` when their sync is free, stamped `at()`.
   */
  private async startMembersIn(
    q: Queryable,
    sequenceRunId: string,
    members: MemberStart[],
    now: number,
    {
      locked = false,
      known,
      claim,
    }: { locked?: boolean; known?: ReadonlyMap<string, MemberWithRun>; claim?: { lease: LeaseRequest; max: number; at: () => number } } = {},
  ): Promise<SyncRun[]> {
    // The sequence run is locked: two hand-offs replayed at once take turns, and the second
    // finds the members started.
    if (!locked) {
      const run = (await q.query<{ status: string }>(`SELECT status FROM ${this.tables.sequenceRuns} WHERE id = $1 FOR UPDATE`, [sequenceRunId])).rows[0];
      if (!run) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      if (isTerminalSequenceRunStatus(run.status)) return [];
    }
    if (members.length === 0) return [];
    const current = known ?? (await this.memberStates(q, sequenceRunId, members));
    const started = new Set<string>();
    const created: SyncRun[] = [];
    for (const member of members) {
      const state = current.get(member.key);
      if (!state) throw new NotFoundError(`sequence run ${sequenceRunId} has no member "${member.key}"`);
      if (started.has(member.key)) continue;
      if (!memberNeedsRun(state)) continue;
      // One statement: the sync is share-locked (a delete of it waits until the run is queued),
      // the run is created claimed when this worker takes it and its sync is free (a claim of
      // another run of the sync racing with it makes the unique index of active runs refuse the
      // claimed row, and the run is created queued instead), else queued; the member follows it.
      // Only a queued run is news for other workers.
      const p = new Params();
      const syncId = p.add(member.syncId, 'bigint');
      const runId = p.add(sequenceRunId, 'text');
      const key = p.add(member.key, 'text');
      const createdAt = p.add(now, 'float8');
      const claimNow = claim !== undefined && created.length < claim.max;
      const claimedAt = claimNow ? (claim as { at: () => number }).at() : now;
      const { rows } = await q.query<SyncRunRow>(
        `WITH live AS (
           SELECT id FROM ${this.tables.syncs} WHERE id = ${syncId} AND deleted_at IS NULL FOR SHARE
         ), claimed AS (
           INSERT INTO ${this.tables.syncRuns} AS r (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, sequence_run_id, member_key,
                                               created_at, started_at, attempt, worker_id, lease_expires_at)
           SELECT live.id, 'querying', 'sequence', ${runId}, false, false, ${runId}, ${key}, ${createdAt}, ${p.add(claimedAt, 'float8')}, 1,
                  ${p.add(claim?.lease.workerId ?? null, 'text')}, ${p.add(claimedAt + (claim?.lease.leaseMs ?? 0), 'float8')}
           FROM live
           WHERE ${p.add(claimNow, 'boolean')}
             AND NOT EXISTS (SELECT 1 FROM ${this.tables.syncRuns} AS other WHERE other.sync_id = ${syncId} AND other.status IN ${ACTIVE})
           ON CONFLICT DO NOTHING
           RETURNING r.*
         ), queued AS (
           INSERT INTO ${this.tables.syncRuns} (sync_id, status, trigger_type, trigger_detail, full_resync, reset_cdc, sequence_run_id, member_key, created_at)
           SELECT live.id, 'queued', 'sequence', ${runId}, false, false, ${runId}, ${key}, ${createdAt}
           FROM live WHERE NOT EXISTS (SELECT 1 FROM claimed)
           RETURNING *
         ), run AS (
           SELECT * FROM claimed UNION ALL SELECT * FROM queued
         ), linked AS (
           UPDATE ${this.tables.memberRuns} AS m SET sync_run_id = run.id, sync_id = run.sync_id,
             status = CASE WHEN run.status = 'queued' THEN 'pending' ELSE 'running' END,
             started_at = CASE WHEN run.status = 'queued' THEN m.started_at ELSE COALESCE(m.started_at, run.started_at) END,
             finished_at = NULL
           FROM run WHERE m.sequence_run_id = ${runId} AND m.key = ${key}
         )
         SELECT run.*, CASE WHEN run.status = 'queued' THEN ${this.statements.notifySql('work', p)} END AS notified FROM run`,
        p.values,
      );
      if (!rows[0]) {
        throw new NotFoundError(`member "${member.key}" of sequence run ${sequenceRunId} runs sync ${member.syncId}, which does not exist`);
      }
      started.add(member.key);
      created.push(syncRun(rows[0]));
    }
    return created;
  }

  /** The members' states as startMembers decides on them. */
  private async memberStates(q: Queryable, sequenceRunId: string, members: MemberStart[]): Promise<Map<string, MemberWithRun>> {
    const { rows } = await q.query<{ key: string; member_status: string; sync_run_id: number | null; run_status: string | null }>(
      `SELECT m.key, m.status AS member_status, m.sync_run_id, r.status AS run_status
       FROM ${this.tables.memberRuns} AS m LEFT JOIN ${this.tables.syncRuns} AS r ON r.id = m.sync_run_id
       WHERE m.sequence_run_id = $1 AND m.key = ANY($2::text[])`,
      [sequenceRunId, members.map((m) => m.key)],
    );
    return new Map(rows.map((r) => [r.key, { memberStatus: r.member_status, syncRunId: r.sync_run_id === null ? null : Number(r.sync_run_id), runStatus: r.run_status }]));
  }

  /** Records the termination unless one is recorded (the first wins); false when nothing changed. */
  private async setTerminationIn(q: Queryable, sequenceRunId: string, memberKey: string | null, reason: string): Promise<boolean> {
    const { rows } = await q.query(`UPDATE ${this.tables.sequenceRuns} SET terminated_by = $1, reason = $2 WHERE id = $3 AND reason IS NULL RETURNING id`, [
      memberKey,
      storedText(reason),
      sequenceRunId,
    ]);
    return rows.length > 0;
  }

  /** Ends a sequence run (once: the same status again is a no-op, another a Conflict) and records it in the outbox. */
  private async finishSequenceRunIn(q: Queryable, sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun> {
    const current = await this.statements.sequenceRunRow(q, sequenceRunId, 'FOR UPDATE');
    if (!current) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
    if (isTerminalSequenceRunStatus(current.status)) {
      if (current.status === status) return sequenceRun(current);
      throw sequenceRunFinishedError(sequenceRunId, current.status, status);
    }
    const terminal = isTerminalSequenceRunStatus(status);
    const { rows } = await q.query<SequenceRunResult>(
      `WITH finished AS (
         UPDATE ${this.tables.sequenceRuns} SET status = $2, finished_at = CASE WHEN $3::boolean THEN $4::float8 ELSE finished_at END
         WHERE id = $1 RETURNING *
       )
       SELECT ${this.sequenceRunColumns} FROM finished AS r`,
      [sequenceRunId, status, terminal, now],
    );
    if (terminal) await this.statements.recordFinishedRuns(q, 'sequence', [sequenceRunId], now);
    return sequenceRun(rows[0] as SequenceRunResult);
  }
}

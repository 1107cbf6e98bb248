/**
 * The sequence runs of the embedded store (SequenceRunStore): a run queued with every member
 * pending, claimed, advanced by hand-offs (a decision of core/sequence-rules.ts applied in one
 * write transaction), resumed, cancelled and finished. Members start sync runs through the run
 * queue's in-transaction helpers (SqliteSyncRunStore), so a member and its run change together.
 * It shares the SqliteStore's connection and transactions.
 */
import { randomUUID } from 'node:crypto';
import { NotFoundError } from '../../core/errors.js';
import type { Clock, LeaseRequest, MemberStart, SequenceRunListQuery, SequenceRunStore } from '../../core/ports.js';
import {
  isTerminalSyncRunStatus,
  type RecordedMember,
  type SequenceRun,
  type SequenceRunStatus,
  type SyncRun,
  type SyncRunStatus,
  type Trigger,
  type TriggerType,
} from '../../core/runs.js';
import type { SecretCodec } from '../../core/secrets.js';
import {
  recordMembers,
  syncRunsToDecide,
  type SequenceAdvance,
  type SequenceAdvanceState,
  type SequenceDecision,
  type SequenceResumeDecision,
  type SequenceResumeState,
} from '../../core/sequence-rules.js';
import type { SequenceRecord } from '../../core/workspace.js';
import { memberLimitColumns, toRecord, toSequenceRun, toSyncRun, type EntityRow, type MemberRunRow, type SequenceRunRow, type SyncRunRow } from '../rows.js';
import { isTerminalSequenceRunStatus, memberNeedsRun, nothingToCancelError, resumeRefused, sequenceRunFinishedError } from '../run-rules.js';
import { CANCEL_REASONS, FIRED_TRIGGER_TYPES, endOfRunWaitingOnDeletedSync } from '../workspace-changes.js';
import type { SqliteStatement, SqliteTransactions, SqliteValue } from './sqlite-database.js';
import { timeFilters, type Statements } from './sqlite-statements.js';
import type { SqliteSyncRunStore } from './sqlite-sync-run-store.js';
import { RunGraphCache } from '../run-graph-cache.js';

export interface SqliteSequenceRunStoreOptions {
  /** The store's prepared statements. */
  statements: Statements;
  transactions: SqliteTransactions;
  /** A statement whose SQL depends on the arguments (list filters), prepared once per shape. */
  statement: (sql: string) => SqliteStatement;
  /** Opens the secrets of the sequences it reads. */
  secrets: SecretCodec;
  /** Gives the time of a cancel request the caller passes no `now` to. */
  clock: Clock;
  /** The run queue, whose in-transaction helpers create, claim and cancel the members' sync runs. */
  syncRuns: SqliteSyncRunStore;
}

export class SqliteSequenceRunStore implements SequenceRunStore {
  private readonly statements: Statements;
  private readonly transactions: SqliteTransactions;
  private readonly statement: (sql: string) => SqliteStatement;
  private readonly secrets: SecretCodec;
  private readonly clock: Clock;
  private readonly syncRuns: SqliteSyncRunStore;
  /** The member graphs of the runs advanced here: every hand-off of a run decides by its graph. */
  private readonly runGraphs = new RunGraphCache();
  /** Parsed sequences by id, with the row they were parsed from (see sequenceForAdvance). */
  private readonly parsedSequences = new Map<number, { row: EntityRow; record: SequenceRecord }>();

  constructor(options: SqliteSequenceRunStoreOptions) {
    this.statements = options.statements;
    this.transactions = options.transactions;
    this.statement = options.statement;
    this.secrets = options.secrets;
    this.clock = options.clock;
    this.syncRuns = options.syncRuns;
  }

  async enqueueSequenceRun(
    sequence: SequenceRecord,
    trigger: Trigger,
    now: number,
  ): Promise<{ run: SequenceRun; created: boolean }> {
    return this.transactions.write(() => this.queue(sequence, trigger, now));
  }

  async claimSequenceRun(id: string, now: number): Promise<SequenceRun | null> {
    return this.transactions.write(() => {
      const row = this.statements.claimSequenceRun.get({ id, now }) as SequenceRunRow | undefined;
      if (row) return this.withMembers(row);
      if (!this.statements.sequenceRun.get(id)) throw new NotFoundError(`sequence run ${id} does not exist`);
      return null;
    });
  }

  async getSequenceRun(id: string): Promise<SequenceRun | null> {
    return this.transactions.read(() => {
      const row = this.statements.sequenceRun.get(id) as SequenceRunRow | undefined;
      return row ? this.withMembers(row) : null;
    });
  }

  async resumingSequenceRunId(id: string): Promise<string | null> {
    return this.transactions.read(() => (this.statements.resumedBy.get(id) as SequenceRunRow | undefined)?.id ?? null);
  }

  async listSequenceRuns(query: SequenceRunListQuery): Promise<SequenceRun[]> {
    return this.transactions.read(() => {
      const where: string[] = [];
      const params: SqliteValue[] = [];
      if (query.sequenceId !== undefined) {
        where.push('sequence_id = ?');
        params.push(query.sequenceId);
      }
      if (query.sequenceIds !== undefined) {
        where.push('sequence_id IN (SELECT value FROM json_each(?))');
        params.push(JSON.stringify(query.sequenceIds));
      }
      if (query.statuses !== undefined) {
        where.push(query.statuses.length > 0 ? `status IN (${query.statuses.map(() => '?').join(', ')})` : '0');
        params.push(...query.statuses);
      }
      timeFilters(query, where, params);
      const sql =
        `SELECT * FROM sequence_runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
        `ORDER BY seq ${query.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ? OFFSET ?`;
      const rows = this.statement(sql).all(...params, query.limit, query.offset) as SequenceRunRow[];
      return rows.map((row) => this.withMembers(row));
    });
  }

  async latestSequenceRuns(perSequence: number): Promise<SequenceRun[]> {
    return this.transactions.read(() => {
      const sql =
        'SELECT r.* FROM sequences AS s JOIN sequence_runs AS r ON r.seq IN (SELECT seq FROM sequence_runs WHERE sequence_id = s.id ORDER BY seq DESC LIMIT ?) ' +
        'WHERE s.deleted_at IS NULL ORDER BY r.sequence_id, r.seq DESC';
      return (this.statement(sql).all(perSequence) as SequenceRunRow[]).map((row) => this.withMembers(row));
    });
  }

  async listSequenceRunsByStatus(statuses: SequenceRunStatus[]): Promise<SequenceRun[]> {
    if (statuses.length === 0) return [];
    return this.transactions.read(() => {
      const sql = `SELECT * FROM sequence_runs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY seq`;
      return (this.statement(sql).all(...statuses) as SequenceRunRow[]).map((row) => this.withMembers(row));
    });
  }

  async startMembers(sequenceRunId: string, members: MemberStart[], now: number): Promise<SyncRun[]> {
    return this.transactions.write(() => this.startMembersTx(sequenceRunId, members, now));
  }

  async setTermination(sequenceRunId: string, memberKey: string | null, reason: string): Promise<void> {
    this.transactions.write(() => {
      if (this.statements.setTermination.run(memberKey, reason, sequenceRunId).changes > 0) return;
      if (!this.statements.sequenceRun.get(sequenceRunId)) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
    });
  }

  async skipPendingMembers(sequenceRunId: string, now: number): Promise<void> {
    this.transactions.write(() => {
      if (!this.statements.sequenceRun.get(sequenceRunId)) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      this.skipPending(sequenceRunId, now);
    });
  }

  async finishSequenceRun(sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun> {
    return this.transactions.write(() => this.finishSequenceRunTx(sequenceRunId, status, now));
  }

  async advanceSequenceRun(
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim?: { lease: LeaseRequest; max: number },
  ): Promise<SequenceAdvance> {
    const began = performance.now();
    // BEGIN IMMEDIATE holds the file's write lock: the decision and its effects are one step.
    return this.transactions.write(() => {
      const row = this.statements.sequenceRun.get(id) as SequenceRunRow | undefined;
      if (!row) throw new NotFoundError(`sequence run ${id} does not exist`);
      const run = this.withMembers(row);
      if (run.status !== 'running') return { run, started: [], cancelled: [] };
      const syncRuns = new Map<number, SyncRun>();
      for (const syncRunId of syncRunsToDecide(run)) {
        const syncRun = this.statements.syncRun.get(syncRunId) as SyncRunRow | undefined;
        if (syncRun) syncRuns.set(syncRunId, toSyncRun(syncRun));
      }
      const sequence = this.sequenceForAdvance(run.sequenceId);
      const recorded = this.runGraphs.getSync(id, () => {
        const graph = this.statements.runGraph.get(id) as { members: string } | undefined;
        return graph ? (JSON.parse(graph.members) as RecordedMember[]) : null;
      });
      const decision = decide({ run, sequence, recorded, syncRuns, now });
      const changes = decision.terminate !== null || decision.cancel.length > 0 || decision.skipPending || decision.start.length > 0;
      if (!changes && !decision.finish) return { run, started: [], cancelled: [] };
      if (decision.terminate) this.statements.setTermination.run(decision.terminate.member, decision.terminate.reason, id);
      for (const syncRunId of decision.cancel) {
        const current = this.statements.syncRun.get(syncRunId) as SyncRunRow | undefined;
        if (current && !isTerminalSyncRunStatus(current.status as SyncRunStatus)) this.syncRuns.cancel(syncRunId, now);
      }
      if (decision.skipPending) this.skipPending(id, now);
      const started = decision.start.length > 0 ? this.startMembersTx(id, decision.start, now) : [];
      // A claim is stamped when it happens: `now` plus the time the transaction took so far.
      const claimedAt = now + (performance.now() - began);
      for (let i = 0; claim && i < Math.min(claim.max, started.length); i++) {
        const claimed = this.syncRuns.claim((started[i] as SyncRun).id, claimedAt, claim.lease);
        if (claimed) started[i] = claimed;
      }
      if (decision.finish) {
        this.runGraphs.forget(id);
        return { run: this.finishSequenceRunTx(id, decision.finish, now), started, cancelled: decision.cancel };
      }
      return { run: this.withMembers(this.statements.sequenceRun.get(id) as SequenceRunRow), started, cancelled: decision.cancel };
    });
  }

  async resumeSequenceRun(
    id: string,
    decide: (state: SequenceResumeState) => SequenceResumeDecision,
    trigger: Trigger,
    now: number,
  ): Promise<SequenceRun> {
    return this.transactions.write(() => {
      const row = this.statements.sequenceRun.get(id) as SequenceRunRow | undefined;
      if (!row) throw new NotFoundError(`sequence run ${id} does not exist`);
      const run = this.withMembers(row);
      const sequence = this.sequenceForAdvance(run.sequenceId);
      const syncRuns = new Map<number, SyncRun>();
      for (const m of run.members) {
        if ((m.status !== 'success' && m.status !== 'warning') || m.syncRunId === null) continue;
        const syncRun = this.statements.syncRun.get(m.syncRunId) as SyncRunRow | undefined;
        if (syncRun) syncRuns.set(m.syncRunId, toSyncRun(syncRun));
      }
      const syncIds = new Map<string, number>();
      for (const m of sequence?.members ?? []) {
        const found = this.statements.liveSyncIdBySlug.get(m.sync) as { id: number } | undefined;
        if (found) syncIds.set(m.sync, Number(found.id));
      }
      const resumedBy = this.statements.resumedBy.get(id) as SequenceRunRow | undefined;
      const pending = this.statements.pendingSequenceRun.get(run.sequenceId) as SequenceRunRow | undefined;
      const graph = this.statements.runGraph.get(id) as { members: string } | undefined;
      const decision = decide({
        run,
        recorded: graph ? (JSON.parse(graph.members) as RecordedMember[]) : null,
        sequence,
        syncRuns,
        syncIds,
        resumedBy: resumedBy ? this.withMembers(resumedBy) : null,
        pending: pending ? this.withMembers(pending) : null,
      });
      if (!decision.ok) throw resumeRefused(decision);
      const resumed = sequence as SequenceRecord;
      const newId = randomUUID();
      this.statements.insertSequenceRun.run({
        id: newId,
        sequenceId: resumed.id,
        triggerType: trigger.type,
        triggerDetail: trigger.detail,
        now,
        deadlineMinutes: resumed.deadlineMinutes ?? null,
        resumedFrom: id,
        concurrency: resumed.concurrency,
      });
      this.statements.insertRunGraph.run(newId, JSON.stringify(recordMembers(resumed)));
      const carried = new Map(decision.carry.map((c) => [c.key, c]));
      resumed.members.forEach((member, position) => {
        const syncId = syncIds.get(member.sync) as number;
        const c = carried.get(member.key);
        const limits = memberLimitColumns(member);
        if (!c) {
          this.statements.insertMemberRun.run({ sequenceRunId: newId, key: member.key, position, syncId, ...limits });
          return;
        }
        this.statements.insertCarriedMember.run({
          sequenceRunId: newId,
          key: member.key,
          position,
          syncId,
          status: c.status,
          syncRunId: c.syncRunId,
          startedAt: c.startedAt,
          finishedAt: c.finishedAt,
          ...limits,
        });
      });
      return this.withMembers(this.statements.sequenceRun.get(newId) as SequenceRunRow);
    });
  }

  async requestSequenceRunCancel(id: string, now: number = this.clock.now()): Promise<SequenceRun> {
    return this.transactions.write(() => {
      const current = this.statements.sequenceRun.get(id) as SequenceRunRow | undefined;
      if (!current) throw new NotFoundError(`sequence run ${id} does not exist`);
      if (isTerminalSequenceRunStatus(current.status)) throw nothingToCancelError(`sequence run ${id}`, current.status);
      if (current.status === 'pending') {
        this.cancelPending(id, CANCEL_REASONS.CancelledBeforeStart, now);
      } else {
        this.statements.flagSequenceRunCancel.run(id);
      }
      return this.withMembers(this.statements.sequenceRun.get(id) as SequenceRunRow);
    });
  }

  // -------------------------------------------------------------------------------------------
  // In the caller's write transaction (fired runs, workspace deletes)

  /** Queues a run with every member pending, or finds the pending one; the caller holds a write transaction. */
  queue(sequence: SequenceRecord, trigger: Trigger, now: number): { run: SequenceRun; created: boolean } {
    if (!this.statements.liveSequence.get(sequence.id)) throw new NotFoundError(`sequence "${sequence.slug}" does not exist`);
    const pending = this.statements.pendingSequenceRun.get(sequence.id) as SequenceRunRow | undefined;
    if (pending) return { run: this.withMembers(pending), created: false };
    const syncIds = sequence.members.map((member) => {
      const found = this.statements.liveSyncIdBySlug.get(member.sync) as { id: number } | undefined;
      if (!found) {
        throw new NotFoundError(`sequence "${sequence.slug}": member "${member.key}" runs unknown sync "${member.sync}"`);
      }
      return found.id;
    });
    const id = randomUUID();
    const row = this.statements.insertSequenceRun.get({
      id,
      sequenceId: sequence.id,
      triggerType: trigger.type,
      triggerDetail: trigger.detail,
      now,
      deadlineMinutes: sequence.deadlineMinutes ?? null,
      resumedFrom: null,
      concurrency: sequence.concurrency,
    }) as SequenceRunRow;
    this.statements.insertRunGraph.run(id, JSON.stringify(recordMembers(sequence)));
    sequence.members.forEach((member, position) => {
      this.statements.insertMemberRun.run({ sequenceRunId: id, key: member.key, position, syncId: syncIds[position] ?? null, ...memberLimitColumns(member) });
    });
    return { run: this.withMembers(row), created: true };
  }

  /** Ends the sequence runs that would still start a member running the deleted sync `syncId`. */
  endRunsWaitingOnDeletedSync(syncId: number, syncSlug: string, now: number): void {
    for (const run of this.statements.sequenceRunsWaitingOnSync.all(syncId) as Array<{ id: string; status: string; key: string }>) {
      const end = endOfRunWaitingOnDeletedSync(run, syncSlug);
      if (end.cancel) {
        this.cancelPending(run.id, end.reason, now);
      } else {
        this.statements.setTermination.run(run.key, end.reason, run.id);
        this.skipPending(run.id, now);
      }
    }
  }

  /** Cancels the pending runs of the deleted sequence `sequenceId`. */
  cancelPendingOfDeletedSequence(sequenceId: number, now: number): void {
    for (const { id } of this.statements.pendingRunsOfSequence.all(sequenceId) as Array<{ id: string }>) {
      this.cancelPending(id, CANCEL_REASONS.SequenceDeleted, now);
    }
  }

  /** Cancels the pending run of the disabled sequence `sequenceId` that a schedule, webhook or upstream run queued. */
  cancelFiredPendingOfDisabledSequence(sequenceId: number, now: number): void {
    for (const run of this.statements.pendingRunsOfSequence.all(sequenceId) as Array<{ id: string; trigger_type: TriggerType }>) {
      if (FIRED_TRIGGER_TYPES.includes(run.trigger_type)) this.cancelPending(run.id, CANCEL_REASONS.SequenceDisabled, now);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals (the caller holds a write transaction)

  /** Skips pending members; their queued runs end cancelled, recorded as finished runs. */
  private skipPending(sequenceRunId: string, now: number): void {
    for (const run of this.statements.cancelQueuedRunsOfPendingMembers.all({ sequenceRunId, now }) as Array<{ id: number }>) {
      this.statements.recordFinishedRun.run('sync', String(run.id), now);
    }
    this.statements.skipPendingMembers.run({ sequenceRunId, now });
  }

  /**
   * Ends a pending run cancelled before it started (`reason` kept unless one is recorded), its
   * members skipped, and records it as a finished run: the audit log keeps it like any run that ended.
   */
  private cancelPending(sequenceRunId: string, reason: string, now: number): void {
    if (this.statements.cancelPendingSequenceRun.get(now, reason, sequenceRunId) === undefined) return;
    this.skipPending(sequenceRunId, now);
    this.statements.recordFinishedRun.run('sequence', sequenceRunId, now);
  }

  private startMembersTx(sequenceRunId: string, members: MemberStart[], now: number): SyncRun[] {
    {
      const run = this.statements.sequenceRun.get(sequenceRunId) as SequenceRunRow | undefined;
      if (!run) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      if (isTerminalSequenceRunStatus(run.status)) return [];
      const created: SyncRun[] = [];
      for (const member of members) {
        const current = this.statements.memberWithRun.get(sequenceRunId, member.key) as
          | { member_status: string; sync_run_id: number | null; run_status: string | null }
          | undefined;
        if (!current) {
          throw new NotFoundError(`sequence run ${sequenceRunId} has no member "${member.key}"`);
        }
        if (!memberNeedsRun({ memberStatus: current.member_status, syncRunId: current.sync_run_id, runStatus: current.run_status })) continue;
        if (!this.statements.liveSync.get(member.syncId)) {
          throw new NotFoundError(`member "${member.key}" of sequence run ${sequenceRunId} runs sync ${member.syncId}, which does not exist`);
        }
        const row = this.syncRuns.insert(
          member.syncId,
          { type: 'sequence', detail: sequenceRunId },
          { fullResync: false, resetCDC: false },
          sequenceRunId,
          member.key,
          now,
        );
        this.statements.linkMember.run({ sequenceRunId, key: member.key, syncRunId: row.id, syncId: member.syncId });
        created.push(toSyncRun(row));
      }
      return created;
    }
  }

  private finishSequenceRunTx(sequenceRunId: string, status: SequenceRunStatus, now: number): SequenceRun {
    {
      const current = this.statements.sequenceRun.get(sequenceRunId) as SequenceRunRow | undefined;
      if (!current) throw new NotFoundError(`sequence run ${sequenceRunId} does not exist`);
      if (isTerminalSequenceRunStatus(current.status)) {
        if (current.status === status) return this.withMembers(current);
        throw sequenceRunFinishedError(sequenceRunId, current.status, status);
      }
      const row = this.statements.finishSequenceRun.get({
        id: sequenceRunId,
        status,
        terminal: isTerminalSequenceRunStatus(status) ? 1 : 0,
        now,
      }) as SequenceRunRow;
      this.statements.recordFinishedRun.run('sequence', sequenceRunId, now);
      return this.withMembers(row);
    }
  }

  /**
   * The live sequence `id`, parsed once per version of its row: every hand-off of a long sequence
   * reads it, and parsing its definition each time cost as much as the rest of the hand-off.
   */
  private sequenceForAdvance(id: number): SequenceRecord | null {
    const row = this.statements.entities.sequence.byId.get(id) as EntityRow | undefined;
    if (!row) return null;
    const cached = this.parsedSequences.get(id);
    if (cached && cached.row.definition === row.definition && cached.row.updated_at === row.updated_at && cached.row.enabled === row.enabled) {
      return cached.record;
    }
    const record = toRecord<SequenceRecord>(row, 'sequence', this.secrets);
    this.parsedSequences.set(id, { row, record });
    return record;
  }

  private withMembers(row: SequenceRunRow): SequenceRun {
    return toSequenceRun(row, this.statements.members.all(row.id) as MemberRunRow[]);
  }

}

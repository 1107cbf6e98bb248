/**
 * The SQL the PostgreSQL store's roles share: table names, a statement's parameters, runs' rows as
 * read, and the statements more than one role runs (a run's row, the outbox of finished runs and
 * the announcements of what changed, made in the transaction that changes it).
 */
import { ErrorCode, LockstepError } from '../../core/errors.js';
import type { FinishedRunEntry, StoreTopic } from '../../core/ports.js';
import { ACTIVE_SYNC_RUN_STATUSES, TERMINAL_SYNC_RUN_STATUSES, type SequenceRun, type SyncRun } from '../../core/runs.js';
import type { SecretCodec } from '../../core/secrets.js';
import type { EntityKind } from '../../core/workspace.js';
import { toRecord, toSequenceRun, toSyncRun, type EntityRow, type MemberRunRow, type SequenceRunRow, type SyncRunRow } from '../rows.js';
import { ENTITY_TABLES } from '../workspace-changes.js';
import { errorCode, readNullableText, storedText, type PostgresDatabase, type Queryable } from './postgres-database.js';

/** SQL list of constant statuses, e.g. `('querying', 'processing')`. */
function sqlList(values: readonly string[]): string {
  return `(${values.map((v) => `'${v}'`).join(', ')})`;
}

export const ACTIVE = sqlList(ACTIVE_SYNC_RUN_STATUSES);
export const TERMINAL_SYNC = sqlList(TERMINAL_SYNC_RUN_STATUSES);

/** Parameters of one statement: `p.add(value, 'type')` is the placeholder, cast when a type is given. */
export class Params {
  readonly values: unknown[] = [];
  /** `literal`: values are spelled in the SQL (a statement of a batch), with this escape for text. */
  constructor(private readonly literal?: (text: string) => string) {}
  add(value: unknown, type?: string): string {
    if (this.literal) {
      const text =
        value === null || value === undefined
          ? 'NULL'
          : typeof value === 'boolean'
            ? String(value)
            : typeof value === 'number'
              ? `'${String(value)}'`
              : this.literal(String(value));
      return type ? `${text}::${type}` : text;
    }
    this.values.push(value);
    return type ? `$${this.values.length}::${type}` : `$${this.values.length}`;
  }
}

/** A sync run row as PostgreSQL gives it, with `xmax = 0` for "inserted by this statement" where asked. */
export type SyncRunResult = SyncRunRow & { created?: boolean };
export type SequenceRunResult = SequenceRunRow & { members: MemberRunRow[] };

export function syncRun(row: SyncRunRow): SyncRun {
  return toSyncRun({ ...row, trigger_detail: readNullableText(row.trigger_detail), error: readNullableText(row.error) });
}

export function sequenceRun(row: SequenceRunResult): SequenceRun {
  return toSequenceRun(
    { ...row, trigger_detail: readNullableText(row.trigger_detail), reason: readNullableText(row.reason) },
    row.members,
  );
}

/** The tables of the PostgreSQL store's roles. */
type Table =
  | 'sources'
  | 'destinations'
  | 'models'
  | 'syncs'
  | 'sequences'
  | 'syncRuns'
  | 'sequenceRuns'
  | 'memberRuns'
  | 'rejectedRows'
  | 'finishedRuns'
  | 'runGraphs';

export class PostgresStatements {
  /** Table names, qualified with the quoted schema. */
  readonly tables: Record<Table, string>;
  /** `r.*` of a sequence run plus its members (as JSON, in position order), for the alias `r`. */
  readonly sequenceRunColumns: string;

  constructor(
    db: PostgresDatabase,
    /** The NOTIFY channel of this schema's store: processes sharing the schema hear each other. */
    private readonly channel: string,
  ) {
    const s = db.schema;
    this.tables = {
      sources: `${s}.sources`,
      destinations: `${s}.destinations`,
      models: `${s}.models`,
      syncs: `${s}.syncs`,
      sequences: `${s}.sequences`,
      syncRuns: `${s}.sync_runs`,
      sequenceRuns: `${s}.sequence_runs`,
      memberRuns: `${s}.member_runs`,
      rejectedRows: `${s}.rejected_rows`,
      finishedRuns: `${s}.finished_runs`,
      runGraphs: `${s}.sequence_run_graphs`,
    };
    this.sequenceRunColumns = `r.*, COALESCE((SELECT json_agg(m ORDER BY m.position) FROM ${this.tables.memberRuns} AS m
      WHERE m.sequence_run_id = r.id), '[]'::json) AS members`;
  }

  /**
   * Records runs' ends in the outbox, in the order given, in the transaction that ends them. Their
   * syncs or sequences are free for the next run too, so both topics are announced (at commit).
   */
  async recordFinishedRuns(q: Queryable, kind: FinishedRunEntry['kind'], runIds: string[], now: number): Promise<void> {
    if (runIds.length === 0) return;
    await q.query(
      `INSERT INTO ${this.tables.finishedRuns} (kind, run_id, created_at)
       SELECT $1, run_id, $3 FROM unnest($2::text[]) WITH ORDINALITY AS ended(run_id, n) ORDER BY n`,
      [kind, runIds, now],
    );
    await this.notify(q, 'finished');
    await this.notify(q, 'work');
  }

  /** Announces `topic` to every process watching this schema, once `q`'s transaction commits. */
  async notify(q: Queryable, topic: StoreTopic): Promise<void> {
    await q.query('SELECT pg_notify($1, $2)', [this.channel, topic]);
  }

  /**
   * A scalar subquery announcing `topic` (see notify), for a column of a statement's result: it
   * runs once, and only when the statement returns a row.
   */
  notifySql(topic: StoreTopic, p: Params): string {
    return `(SELECT pg_notify(${p.add(this.channel, 'text')}, ${p.add(topic, 'text')}))`;
  }

  async syncRunRow(q: Queryable, id: number, lock = ''): Promise<SyncRunRow | null> {
    const runId = safeId(id);
    if (runId === null) return null;
    const { rows } = await q.query<SyncRunRow>(`SELECT * FROM ${this.tables.syncRuns} WHERE id = $1 ${lock}`, [runId]);
    return rows[0] ?? null;
  }

  async sequenceRunRow(q: Queryable, id: string, lock = ''): Promise<SequenceRunResult | null> {
    const sql = `SELECT ${this.sequenceRunColumns} FROM ${this.tables.sequenceRuns} AS r WHERE r.id = $1 ${lock ? `${lock} OF r` : ''}`;
    const { rows } = await q.query<SequenceRunResult>(sql, [id]);
    return rows[0] ?? null;
  }
}

/** An id as PostgreSQL's bigint takes it, or null for a number no row can have (fractions, huge). */
export function safeId(id: number): number | null {
  return Number.isSafeInteger(id) ? id : null;
}

export function nullableStored(text: string | null): string | null {
  return text === null ? null : storedText(text);
}

export function timeFilters(query: { after?: number; before?: number }, where: string[], p: Params, prefix = ''): void {
  if (query.after !== undefined) where.push(`${prefix}created_at >= ${p.add(query.after, 'float8')}`);
  if (query.before !== undefined) where.push(`${prefix}created_at < ${p.add(query.before, 'float8')}`);
}

/** A unique index refused the change (wrapped by PostgresDatabase as a Conflict). */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof LockstepError && error.code === ErrorCode.Conflict && errorCode(error.cause) === '23505';
}

/** The entity of `row` (a row of its kind's table, or of a union of them carrying `kind`). */
export function entityRecord<T>(kind: EntityKind, row: EntityRow & { kind?: number }, secrets: SecretCodec): T {
  const { kind: _kind, ...entity } = row;
  if (!ENTITY_TABLES[kind].enabled) delete entity.enabled;
  return toRecord(entity, kind, secrets) as T;
}

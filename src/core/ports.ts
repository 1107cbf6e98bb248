/**
 * Ports: the interfaces core owns and the outer layers implement. The engine sees only these.
 */
import type { SequenceAdvance, SequenceAdvanceState, SequenceDecision, SequenceResumeDecision, SequenceResumeState } from './sequence-rules.js';
import type {
  RejectedRow,
  SequenceRun,
  SequenceRunStatus,
  SyncRun,
  SyncRunOptions,
  SyncRunStatus,
  Trigger,
  OperationCounts,
  ApiUsage,
  RunComparison,
} from './runs.js';
import type { PhaseTimes, RunWaits } from './run-phases.js';
import type {
  ConnectionRecord,
  EntityDefs,
  EntityKind,
  EntityOrigin,
  ModelRecord,
  ResolvedConnection,
  SequenceRecord,
  Stored,
  SyncRecord,
  WorkspaceChange,
  WorkspaceDefinition,
  WorkspaceState,
} from './workspace.js';
import type { WebhookEventStore } from './webhooks.js';
import type { AlertStore, AlertsDefinition } from './alerts.js';
import type { TokenStore } from './tokens.js';
import type { LockstepError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Time, ids, logs

/** The clock, injected everywhere so tests control time. */
export interface Clock {
  /** Epoch milliseconds, possibly fractional. */
  now(): number;
  /** Resolves after `ms` of this clock's time, or rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

// ---------------------------------------------------------------------------------------------
// Values and rows

/** A cell value as Lockstep carries it: sources normalise to these (bigints beyond 2^53 and decimals as strings, times as ISO strings). */
export type Value = string | number | boolean | null;

/**
 * A batch of rows read from a source; every row is aligned with `columns`. When the reader asked
 * for `encoded` rows and the source has them, `encoded` holds the rows and `rows` is empty.
 */
export interface RowBatch {
  columns: string[];
  rows: Value[][];
  encoded?: EncodedRows;
  /**
   * The columns whose values are JSON text of a JSON value the source holds as one (PostgreSQL
   * json and jsonb, MySQL JSON, DuckDB JSON, STRUCT, LIST and MAP); absent when none or not known.
   */
  jsonColumns?: readonly string[];
}

/**
 * Rows kept in the source's own line format (PostgreSQL's COPY text), decoded only where needed:
 * the engine hashes each row's bytes and decodes its key, and a destination that reads the same
 * format takes the bytes as they are (see `WriteTarget.encoding`), so an unchanged row, or a row
 * moved between two databases of one kind, is never turned into values and back.
 */
export interface EncodedRows {
  /** The format's name; a destination compares it with the formats it reads. */
  readonly format: string;
  /** Per column, the source's type in the format's terms (PostgreSQL: the type's OID). */
  readonly types: readonly number[];
  /** The rows' bytes. */
  readonly data: Buffer;
  /**
   * Where each row starts in `data`, then where the last one ends: `starts.length - 1` rows. A row's
   * bytes end with its line break.
   */
  readonly starts: Int32Array;
  /** Row `row`'s values as a decoded batch would hold them, or only those of `columns` (by index), in that order. */
  decode(row: number, columns?: readonly number[]): Value[];
  /**
   * `encodeKey(decode(row, columns))` (core/keys.ts), or null when one of those values is null;
   * a source may answer it without decoding the values.
   */
  keyText(row: number, columns: readonly number[]): string | null;
}

// ---------------------------------------------------------------------------------------------
// Sources

export interface ReadOptions {
  /** Rows per batch yielded (default chosen by the caller). */
  batchSize: number;
  signal?: AbortSignal;
  /** The reader takes `EncodedRows` where the source reads a line format. */
  encoded?: boolean;
  /** Read in this snapshot, exported by the source's planner in the warehouse (WarehousePlanPart.snapshot). */
  snapshot?: string;
}

/** A warehouse connection that models read from. */
export interface Source {
  /**
   * Streams the rows of `query` in batches, never holding the whole result in memory. Throws a
   * LockstepError (`query` for a bad query, `connection` when unreachable).
   */
  read(query: string, options: ReadOptions): AsyncIterable<RowBatch>;
  close(): Promise<void>;
  /**
   * Present when the source's connection asks for the planner in the warehouse (`planner:
   * warehouse` or `auto`) and the source can hold it (see engine/warehouse-planner.ts).
   */
  readonly warehousePlanner?: WarehousePlannerAccess;
  /** The source's SQL for a model's change cursor, read by the store's planner (see CursorSql). */
  readonly cursorSql?: CursorSql;
}

/**
 * How the store's planner narrows a model with a change cursor (`cursor: updated_at`) to the rows
 * past it, in the source's SQL: `highest` reads the cursor's greatest value (one row of one column,
 * as text, or a number where the source has no text form that compares as the column does);
 * `after` reads the model's rows whose cursor reached `value`.
 */
export interface CursorSql {
  highest(query: string, column: string): string;
  after(query: string, column: string, value: string | number): string;
}

/** How a sync's snapshot is kept and compared: in Lockstep's store (default) or in the source. */
export type PlannerMode = 'store' | 'warehouse' | 'auto';

/** A source's planner in the warehouse, before it is opened for a run. */
export interface WarehousePlannerAccess {
  /** `auto` falls back to the store's planner (with a note) when the planner's schema cannot be created. */
  readonly mode: 'warehouse' | 'auto';
  /** The schema the planner's tables live in. */
  readonly schema: string;
  /**
   * `dryRun` (a sequence's plan): the planner only reads. It creates nothing (a planner that never
   * ran compares as a first run), writes neither its state nor its tables, takes no run over, and
   * its commit() and finish() do nothing; the plan's parts read the comparison itself.
   */
  open(signal?: AbortSignal, options?: { dryRun?: boolean }): Promise<WarehousePlanner>;
}

/** What a run asks the warehouse to compare. */
export interface WarehousePlanRequest {
  sync: { id: number; slug: string };
  run: { id: number; attempt: number };
  query: string;
  primaryKey: readonly string[];
  /** Which kinds of rows the sync sends (insert mode skips changed rows; deletes only in mirror/delete). */
  sends: { added: boolean; changed: boolean; removed: boolean };
  /** Every row of the model is sent, as if the planner table were empty of values (fullResync). */
  resendAll: boolean;
  /** The planner table takes the model as it is, nothing is sent (resetCDC). */
  reset: boolean;
  /** The model's change cursor, when it declares one: `full` asks for a full comparison anyway. */
  cursor: { column: string; full: boolean; every: number } | null;
}

/** One kind of planned rows: `query` reads them from the warehouse in the planner's order. */
export interface WarehousePlanPart {
  op: 'added' | 'changed' | 'removed';
  query: string;
  rows: number;
  /**
   * The part is read in this exported snapshot (ReadOptions.snapshot) while the warehouse still
   * stages it: `rows` is then an estimate, and `counted` gives the rows the read must return and
   * the model's rows refused (null or duplicate keys) once the staging table is built.
   */
  snapshot?: string;
  counted?: Promise<{ rows: number; refused: Array<{ key: Value[]; reason: string }> }>;
}

/** The outcome of comparing a model with its planner table in the warehouse. */
export interface WarehousePlan {
  /** Added, then changed, then removed rows; removed rows hold the key columns only. */
  parts: WarehousePlanPart[];
  /** Rows the warehouse refused while comparing (null or duplicate keys). */
  refused: Array<{ key: Value[]; reason: string }>;
  /** Rows the model returned (for a cursor run: the rows past the cursor). */
  modelRows: number;
  /** Rows in the planner table before the run (what the model is compared with). */
  plannerRows: number;
  comparison: 'full' | 'cursor';
  /** What the run should know: the planner table was rebuilt, column types changed, ... */
  notes: string[];
  /**
   * Rows this run delivered before this plan (its earlier attempts, or this attempt before it started
   * over), as its last commit recorded them with the watermark the plan took in: the run's counts
   * carry on from them. None for a run's first plan, or in a dry run.
   */
  delivered: OperationCounts;
}

/**
 * A sync's planner in the warehouse for one run attempt. Every write is fenced by the run's id and
 * attempt: once another attempt took the sync's planner over, a stale one's writes are refused.
 */
export interface WarehousePlanner {
  plan(request: WarehousePlanRequest): Promise<WarehousePlan>;
  /**
   * Rows delivered: every planned row up to and including `through` (a row of part `op`, by key),
   * except the `rejected` keys, which stay as they were. `delivered`: the run's delivered rows with
   * these, the rows it carried on from included (WarehousePlan.delivered), recorded in the same
   * transaction as the watermark, so that a later attempt counts every row it takes in.
   */
  commit(through: { op: WarehousePlanPart['op']; key: Value[] }, rejected: Value[][], delivered: OperationCounts): Promise<void>;
  /** Takes the delivered rows into the planner table (after the last commit of a run that ran to its end). */
  finish(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Destinations

/** What a destination can do; the engine reads these instead of asking which kind it is. */
export interface DestinationCapabilities {
  /** Can delete rows (needed by `mirror` and `deleteBehavior: delete`). */
  deletes: boolean;
  /** Has a native insert-or-update. */
  upsert: boolean;
  /**
   * Rows it takes in one `write` at most (null: no limit): a sync's `batchSize` is capped to it. Only
   * the writer itself may ask for bigger batches (`DestinationWriter.batchSize`, e.g. a bulk job).
   */
  maxBatchSize: number | null;
  /**
   * Reports the destination's own id of each row it writes (`RowOutcome.id`); Lockstep keeps those
   * ids per sync and key, and child syncs can `lookup` them.
   */
  recordIds: boolean;
}

/** Where a sync writes inside a destination. */
export interface WriteTarget {
  /** Table or API object. */
  object: string;
  /** Destination field names of the primary key, in order. */
  keyColumns: string[];
  /** Destination field names of every written value, in order (includes the key columns). */
  columns: string[];
  /** The model column each of `columns` comes from (the same name unless a mapping renames it). */
  modelColumns?: string[];
  /** Rows per batch the engine sends (the sync's `batchSize` within the destination's `maxBatchSize`). */
  batchSize?: number;
  /** Those of `columns` whose values are JSON text of a JSON value in the source (RowBatch.jsonColumns). */
  jsonColumns?: readonly string[];
  /** The format and source types of the rows when the source reads them encoded (see EncodedRows). */
  encoding?: { format: string; types: readonly number[] };
  /**
   * The sync's settings for this kind of destination (its `syncSettings` schema's output, every
   * default filled in); an empty object for kinds that have none.
   */
  settings?: Readonly<Record<string, unknown>>;
  /** The sync writing, for messages. */
  sync?: string;
  /**
   * The ids another sync recorded for `keys` (encoded primary keys, see core/keys.ts), for
   * destinations that refer to a parent's record (e.g. associations); keys without an id are absent.
   */
  recordIds?: (sync: string, keys: string[]) => Promise<Map<string, string>>;
  /**
   * Which of `keys` another sync counts as delivered (its snapshot holds them), for a destination
   * explaining a parent with no recorded id: one a resetCDC run recorded is never sent again, so no
   * id comes for it (default: none known).
   */
  deliveredKeys?: (sync: string, keys: string[]) => Promise<Set<string>>;
  /**
   * The syncs writing to `object` (its name compared without regard to case) through this sync's
   * destination connection, this sync among them, with their kind settings as written: for a
   * destination whose rows name another object's records by their key (Salesforce's parents by
   * external id), which then asks `recordIds` which of those keys a sync delivered (default: none known).
   */
  syncsWriting?: (object: string) => Promise<Array<{ slug: string; settings: Readonly<Record<string, unknown>> }>>;
  /**
   * Whether the sync delivered rows in earlier runs (its snapshot holds keys); absent when the
   * engine does not know. False tells a destination whose keys can match one another (Salesforce's
   * external ids, without regard to case) that no key of this run can meet one delivered before.
   */
  delivered?: boolean;
  /**
   * Aborts when the run is cancelled (or another worker took it over): a writer then ends what it
   * waits on at once — a write, a poll — closing the connection it was made on, rather than letting
   * a peer that never answers hold the cancel up (default: never aborts).
   */
  signal?: AbortSignal;
}

/**
 * One row to write. `values` is aligned with `WriteTarget.columns` (empty for `delete`);
 * `key` with `WriteTarget.keyColumns`.
 */
export interface WriteOperation {
  kind: 'insert' | 'update' | 'upsert' | 'delete';
  key: Value[];
  values: Value[];
  /**
   * For inserts and upserts to a writer that `takesLines`: the row in the target's encoding, as
   * the source read it, line break included; `values` is then empty.
   */
  line?: EncodedLine;
  /** What happened to the row in the model, when the planner tells (a dry run's samples read it). */
  change?: 'added' | 'changed' | 'removed';
}

/** One row of `EncodedRows`: bytes `start..end` of `data`. */
export interface EncodedLine {
  data: Buffer;
  start: number;
  end: number;
}

/**
 * The destination's answer for one row: delivered (with the destination's id of the record when it
 * reports ids), or refused with its message. A refusal marked `retryable` (a 429 or 5xx for that
 * record, a lock timeout) is sent again within the run after a backoff, and rejected with its last
 * message when the attempts run out.
 */
export type RowOutcome =
  | { ok: true; id?: string }
  | { ok: false; reason: string; retryable?: boolean; retryAfterSeconds?: number };

export interface DestinationWriter {
  /**
   * Batches this writer takes at once, now (default 1): each is written on its own (e.g. in its own
   * transaction), and no two batches of a run touch the same row.
   */
  readonly concurrentWrites?: number;
  /**
   * Inserts and upserts may come as lines of `WriteTarget.encoding` (`WriteOperation.line`): the
   * destination reads that format and every column's source type as it is.
   */
  readonly takesLines?: boolean;
  /**
   * Rows the writer wants planned before its first batch (default: none): the engine holds delivery
   * until it has planned more than this many rows, or all of them, then calls `plan` once. A writer
   * uses it to choose how to write by the run's size (Salesforce: Bulk API 2.0 above a threshold).
   */
  readonly planAhead?: number;
  /** How many rows are planned when delivery starts, and whether that is all of them (see `planAhead`). */
  plan?(planned: { rows: number; complete: boolean }): void;
  /**
   * Rows per batch the writer wants, read before each batch is cut (default: the sync's
   * `batchSize` within the destination's `maxBatchSize`).
   */
  readonly batchSize?: number;
  /**
   * Writes a batch and answers per row, in order. A row the destination refuses (constraint,
   * record not found, a 4xx for that record) is `{ ok: false, reason }` with the destination's
   * message; the other rows are still written. Throws a LockstepError when the batch as a whole
   * cannot be written: `retryable` for transient failures, otherwise fatal.
   */
  write(batch: WriteOperation[]): Promise<RowOutcome[]>;
  /**
   * Why the destination would refuse an insert, upsert or update without sending it (a value its
   * field cannot take, an empty key it matches on), or null. A dry run calls it so that its plan
   * shows such rows as rejected, with the reason a run would give (default: a dry run sends none
   * to be checked, and shows them as planned).
   */
  check?(op: WriteOperation): string | null;
  /**
   * As `check`, for a whole batch at once (deletes answered null), for a writer that finds some
   * reasons by reading the destination (a record another key holds): it reads, never writes. A dry
   * run calls it instead of `check` when the writer has it.
   */
  checkBatch?(batch: WriteOperation[]): Promise<Array<string | null>>;
}

/** A connection to a system that syncs write to. */
export interface Destination {
  readonly capabilities: DestinationCapabilities;
  /**
   * The API budget the service reported last and the calls made through this connection since it
   * opened (one run's), for destinations that have one; the run records it (default: none).
   */
  apiUsage?(): ApiUsage | null;
  /** Checks that the object and its columns exist (fatal `schema` error if not) and returns a writer. */
  prepare(target: WriteTarget): Promise<DestinationWriter>;
  /**
   * The objects a sync may write to (a database's tables), for pickers in the UI (default: the
   * kind cannot list them, and the object is typed by name).
   */
  listObjects?(): Promise<string[]>;
  /**
   * The fields of `object` (a table's columns), for mapping pickers in the UI (default: the kind
   * cannot list them, and fields are typed by name). An unknown object is a fatal `schema` error
   * naming the objects there are.
   */
  listFields?(object: string): Promise<string[]>;
  /**
   * The destination's current rows with these keys (each aligned with `target.keyColumns`): per
   * key, the row's `target.columns` values, or null when it has no such row. Only dry runs use it,
   * for a few sample rows' values before a change (default: the kind cannot read its rows back).
   */
  readRows?(target: WriteTarget, keys: Value[][]): Promise<Array<Value[] | null>>;
  close(): Promise<void>;
}

/**
 * A rate shared by everything that writes through one destination connection in this process:
 * every run and every member of every sequence takes its turn from the same budget.
 */
export interface RateLimiter {
  /**
   * Runs `task` when the budget allows (at most `requestsPerSecond`, at most `concurrency` at once).
   * The time it waits for its turn is reported to `waits` (a run's rate-limit wait), when given; a
   * wait for a pause ends when `signal` aborts (the run was cancelled), with an error.
   */
  schedule<T>(task: () => Promise<T>, waits?: RunWaits, signal?: AbortSignal): Promise<T>;
  /** Holds every caller back until `until` (epoch ms): the peer said its budget is spent. */
  pauseUntil(until: number): void;
  /** Narrows the budget to what the peer says is left, e.g. from rate-limit headers. */
  observe(remaining: number, windowMs: number): void;
}

/** Opens connections from resolved definitions; app.ts wires the concrete kinds. */
export interface Connectors {
  openSource(connection: ResolvedConnection): Promise<Source>;
  /**
   * `run.waits`: where the destination's rate limiter reports the time a request waits for its turn
   * (the run's phase clock); `run.signal`: the run's, which ends such a wait when the run stops.
   */
  openDestination(connection: ResolvedConnection, run?: { waits: RunWaits; signal?: AbortSignal }): Promise<Destination>;
}

// ---------------------------------------------------------------------------------------------
// Store

export interface StoreCapabilities {
  /** Work can be claimed by many processes at once (`FOR UPDATE SKIP LOCKED`). */
  skipLocked: boolean;
  /** The store pushes change notifications (LISTEN/NOTIFY). */
  notifications: boolean;
}

export interface NewSyncRun {
  syncId: number;
  trigger: Trigger;
  options: SyncRunOptions;
}

/** Fields of a sync run the runner updates as it goes; `status` moves along SyncRunStatus's machine. */
export interface SyncRunPatch {
  status?: SyncRunStatus;
  querySize?: number;
  plannedRows?: OperationCounts;
  successfulRows?: OperationCounts;
  failedRows?: OperationCounts;
  completionRatio?: number;
  error?: string | null;
  apiUsage?: ApiUsage;
  /** Where the run's time went (written when it ends). */
  phaseMs?: PhaseTimes;
  comparison?: RunComparison;
}

export interface RunListQuery {
  /** Only runs created at or after this time. */
  after?: number;
  /** Only runs created before this time. */
  before?: number;
  limit: number;
  offset: number;
  /** Newest first unless `asc`. */
  order: 'asc' | 'desc';
}

export interface SyncRunListQuery extends RunListQuery {
  syncId?: number;
  /** Only runs of these syncs (none when empty): the syncs a slug named, deleted since (see deletedIdsBySlug). */
  syncIds?: readonly number[];
  runId?: number;
  statuses?: SyncRunStatus[];
  /**
   * Match `statuses` as runs are shown at this time (syncRunStatusAt): an active run whose lease
   * has ended by then is `interrupted`, not its recorded status. Without it, by recorded status.
   */
  statusesAt?: number;
}

export interface SequenceRunListQuery extends RunListQuery {
  sequenceId?: number;
  /** Only runs of these sequences (none when empty). */
  sequenceIds?: readonly number[];
  statuses?: SequenceRunStatus[];
}

/**
 * Delivered rows for `SnapshotStore.write` in columns, as the sync runner has them (no pair and no hash
 * string per row): key i's hash is the words `hashes[2i]` (high) and `hashes[2i + 1]` (low), the
 * same as the pair [key, `hashText(high, low)`] (core/hash-text.ts).
 */
export interface SnapshotRows {
  keys: string[];
  hashes: Uint32Array;
}

/** What `SnapshotStore.changes` answers: places in the rows compared, each list in order. */
export interface SnapshotChanges {
  added: number[];
  changed: number[];
}

/**
 * A page of a snapshot in bulk form. Keys are JSON text, which never holds a raw line break, so
 * they are joined by line breaks; each hash that is 16 hex digits (what the sync runner writes) is
 * given as those 16 digits, any other stored hash as 16 `-` (it never equals a computed hash).
 */
export interface SnapshotPage {
  count: number;
  /** The `count` keys, joined by `\n`. */
  keys: string;
  /** `count` × 16 characters, in the order of `keys`; hex digits in either case. */
  hashes: string;
}

/** Who claims work, and for how long: a worker holds a claimed run until its lease ends unless renewed. */
export interface LeaseRequest {
  /** The claiming worker's id (host/pid/random): unique among the processes sharing the store. */
  workerId: string;
  /** Milliseconds the claim holds from `now`; the worker renews it well before it ends. */
  leaseMs: number;
}

/**
 * One attempt at a sync run. The writes a run makes (status and counts, rejected rows, snapshot
 * and record-id commits) carry it, and the store refuses them (a `lease_lost` LockstepError) once
 * the run's lease expired and another worker took it over as attempt + 1.
 */
export interface RunFence {
  runId: number;
  attempt: number;
}

/** A claimed run as the store holds it: who has it, in which attempt, until when. */
export interface RunLease {
  runId: number;
  syncId: number;
  workerId: string;
  attempt: number;
  expiresAt: number;
}

export interface MemberStart {
  key: string;
  syncId: number;
}

/** A sync's or sequence's slug as run history names it, and whether it was deleted since. */
export interface EntitySlug {
  slug: string;
  deleted: boolean;
}

/**
 * A sync as its runs ran it, deleted since or not: its definition when it was last live (a slug
 * never changes under an id, and a deleted sync is not changed again).
 */
export interface SyncAsRun extends SyncRecord, EntitySlug {
  /**
   * The source of the model the sync names, as that model was last defined: for a deleted sync,
   * the model of that slug that was live when the sync was deleted, deleted since or declared
   * again on another source or not. Null when the store has no such model.
   */
  modelSource: string | null;
}

/** The workspace as stored: entities by slug, applied from files or changed through the API. */
export interface WorkspaceStore {
  loadWorkspace(): Promise<WorkspaceState>;
  /** The changes `applyWorkspace` would make, without making them. */
  planWorkspace(definition: WorkspaceDefinition): Promise<WorkspaceChange[]>;
  /** Makes the store's workspace equal to `definition` (by slug; ids stay stable) and returns what changed. */
  applyWorkspace(definition: WorkspaceDefinition, now: number): Promise<WorkspaceChange[]>;
  /**
   * By integer id (a number) or slug (text). Text of digits that is no slug is taken for an id, so a
   * slug of digits (`"2024"`) names its own sync, never the one whose id it spells.
   */
  getSync(ref: number | string): Promise<SyncRecord | null>;
  /** As getSync. */
  getSequence(ref: number | string): Promise<SequenceRecord | null>;
  /**
   * The slugs of syncs or sequences by id, deleted ones included: run history keeps the ids of
   * what was deleted, and a slug never changes under an id (a rename deletes and creates), so this
   * is the slug each had when its runs ran. Ids the store never had are left out.
   */
  slugsById(kind: 'sync' | 'sequence', ids: readonly number[]): Promise<Map<number, EntitySlug>>;
  /**
   * Syncs by id, deleted ones included and marked, each with the source its model read from: what
   * a run needs of its sync once the sync may be gone from the workspace. Ids the store never had
   * are left out.
   */
  syncsById(ids: readonly number[]): Promise<Map<number, SyncAsRun>>;
  /**
   * The ids of the syncs or sequences that had `slug` and were deleted since, newest first: a slug
   * that names nothing live may still name run history (a rename deletes and creates, and a slug
   * declared again after a delete is another sync, so one slug may have had several).
   */
  deletedIdsBySlug(kind: 'sync' | 'sequence', slug: string): Promise<number[]>;
  getModel(slug: string): Promise<ModelRecord | null>;
  getSource(slug: string): Promise<ConnectionRecord | null>;
  getDestination(slug: string): Promise<ConnectionRecord | null>;
  setEnabled(kind: 'sync' | 'sequence', id: number, enabled: boolean, now: number): Promise<void>;
  /**
   * Creates or replaces one entity (by slug; the id stays) and records its origin. Throws a
   * ValidationError when a reference would not resolve, changing nothing.
   */
  upsertEntity<K extends EntityKind>(
    kind: K,
    definition: EntityDefs[K],
    origin: EntityOrigin,
    now: number,
  ): Promise<{ record: EntityDefs[K] & Stored; created: boolean }>;
  /**
   * Replaces the alert channels and rules with what `update` makes of the stored ones, in one
   * transaction (`update` is synchronous and may throw to change nothing). Throws a ValidationError
   * when a rule would name an unknown channel, sync or sequence. Returns the stored result.
   */
  updateAlerts(update: (current: AlertsDefinition) => AlertsDefinition, now: number): Promise<AlertsDefinition>;
  /**
   * Deletes one entity by slug (history keeps its id). NotFound when absent; Conflict, naming
   * them, when other entities refer to it.
   */
  deleteEntity(kind: EntityKind, slug: string, now: number): Promise<void>;
}

/** Sync runs: queued, claimed, updated as they go, with their rejected rows. */
export interface SyncRunStore {
  /**
   * Queues a standalone run. When the sync already has a queued standalone run, returns it
   * instead (`created: false`): repeated triggers while a run is in progress share one follow-up.
   */
  enqueueSyncRun(input: NewSyncRun, now: number): Promise<{ run: SyncRun; created: boolean }>;
  /**
   * Claims sync run `id` for `lease.workerId`: queued → querying (attempt 1), if no other run of the
   * same sync is active; or an active run whose lease expired, taken over as attempt + 1 with its
   * id kept. Null when it must wait or another worker has it.
   */
  claimSyncRun(id: number, now: number, lease: LeaseRequest): Promise<SyncRun | null>;
  /**
   * Claims the next run there is work for, in one statement: first an active run whose lease
   * expired (its worker died or froze), then the oldest queued run whose sync is free. Null when
   * there is none. Many workers may call it at once; each run goes to one of them.
   */
  claimNextSyncRun(now: number, lease: LeaseRequest): Promise<SyncRun | null>;
  /** Extends the leases `lease.workerId` still holds among `runIds`; returns the ids it still holds. */
  renewLeases(runIds: number[], now: number, lease: LeaseRequest): Promise<number[]>;
  /**
   * Ends the leases of `workerId` at once (a worker that stops, or one found dead), so any worker
   * takes its runs over without waiting for them to expire. Returns how many were released: leases
   * already ended (released by a worker that stopped, or run out) are left as they are and not counted.
   */
  releaseLeases(workerId: string, now: number): Promise<number>;
  /** The leases of active runs, oldest run first. */
  listLeases(): Promise<RunLease[]>;
  /**
   * Applies a patch; a terminal status sets `finishedAt` and records the run in the outbox of
   * finished runs, in the same transaction. A member's state follows its sync run's. With
   * `attempt`, refused (`lease_lost`) unless the run is still in that attempt.
   */
  updateSyncRun(id: number, patch: SyncRunPatch, now: number, attempt?: number): Promise<SyncRun>;
  getSyncRun(id: number): Promise<SyncRun | null>;
  listSyncRuns(query: SyncRunListQuery): Promise<SyncRun[]>;
  /**
   * The newest `perSync` runs of every sync in the workspace (deleted syncs left out), newest first
   * within each sync: what a list of syncs shows of their runs, read at once instead of sync by sync.
   */
  latestSyncRuns(perSync: number): Promise<SyncRun[]>;
  /** Queued runs, oldest first: the work waiting to be claimed. */
  listQueuedSyncRuns(): Promise<SyncRun[]>;
  /**
   * Cancels a queued run at once (recording it in the outbox of finished runs, as any run that
   * ends), and an active run whose lease has ended at `now` (no worker is at work on it: it is
   * shown `interrupted`), in the transaction that checks the lease; from then on every fenced
   * write of its attempt is refused. An active run a worker holds is flagged, and stops at its next
   * batch boundary. `now` defaults to the store's clock.
   */
  requestSyncRunCancel(id: number, now?: number): Promise<SyncRun>;
  /** With `fence`, refused (`lease_lost`) unless the fenced run is still in that attempt. */
  addRejectedRows(rows: RejectedRow[], fence?: RunFence): Promise<void>;
  /**
   * Forgets the rows a run rejected so far: a run that reads its model again (taken over by its
   * next attempt, or started over after a transient failure) plans each of them again, and lists
   * what it rejects then, as its counts do. With `fence`, refused (`lease_lost`) unless the fenced
   * run is still in that attempt.
   */
  clearRejectedRows(syncRunId: number, fence?: RunFence): Promise<void>;
  listRejectedRows(syncRunId: number, limit: number, offset: number): Promise<RejectedRow[]>;
}

/** A change cursor's last delivered value, and how many cursor runs followed the last full comparison. */
export interface SnapshotCursor {
  value: string | number;
  runs: number;
}

/**
 * How far a run had got when it wrote a batch: the rows it had read, and planned, by then, and its
 * completion once the batch is settled (counted with the batch's rows, so that the record never
 * shows every planned row delivered next to an older completion).
 */
export interface RunReach {
  querySize: number;
  planned: OperationCounts;
  completionRatio?: number;
}

/**
 * Per sync, what was delivered. Snapshots: primary key (JSON array) → hash of the delivered values
 * (an opaque string; a store may keep lowercase hex compactly, and gives back the same string).
 * Record ids: primary key → the destination's id of the row, for destinations that report ids
 * (`DestinationCapabilities.recordIds`).
 */
export interface SnapshotStore {
  get(syncId: number, keys: string[]): Promise<Map<string, string>>;
  /**
   * Compares rows with the snapshot: the places in `rows` (in order) of those whose key it does not
   * hold (`added`) and of those it holds under another hash (`changed`; a hash stored in any other
   * form than the runner's counts as changed). The rows it holds unchanged cost no answer at all.
   * Optional: without it, the runner reads the stored hashes (`get`) and compares them.
   */
  changes?(syncId: number, rows: SnapshotRows): Promise<SnapshotChanges>;
  /**
   * Records delivered rows and removes deleted ones, in one transaction; with `fence`, refused
   * (`lease_lost`, nothing written) unless the fenced run is still in that attempt. With `fence`
   * and `delivered`, the fenced run's delivered counts grow by `delivered` in the same transaction,
   * so a run taken over after its process died counts exactly the rows its snapshot holds as sent.
   * With `reach` too, its rows read and planned are raised to at least `reach`'s in that transaction:
   * its record never shows more rows delivered than read or planned.
   */
  write(
    syncId: number,
    upserts: Array<[key: string, hash: string]> | SnapshotRows,
    deletes: string[],
    fence?: RunFence,
    delivered?: OperationCounts,
    reach?: RunReach,
  ): Promise<void>;
  /** Every key in the snapshot, in batches, in key order. */
  keys(syncId: number, batchSize: number): AsyncIterable<string[]>;
  /**
   * Every entry of the snapshot in pages of up to `pageSize` (pages in key order, entries within a
   * page in any order), in bulk form: a page is
   * a few strings however many entries it holds, so a million entries load in a fraction of a second.
   * `rows`, the snapshot's size when the caller knows it (`count`), lets a store read a large one
   * in parts at once (default: unknown).
   */
  pages(syncId: number, pageSize: number, rows?: number): AsyncIterable<SnapshotPage>;
  /** Empties the snapshot, and forgets its change cursor. */
  clear(syncId: number, fence?: RunFence): Promise<void>;
  /**
   * Readies what writes need before the first of them (the SQLite store's write thread), so that a
   * process's first run does not start it in its midst. Optional: a store without one needs nothing.
   */
  prepareWrites?(): Promise<void>;
  count(syncId: number): Promise<number>;
  /**
   * The model's change cursor as delivered into this snapshot: its value (as the source's
   * CursorSql read it) and the runs since the last full comparison; null when none is recorded.
   */
  cursorGet(syncId: number): Promise<SnapshotCursor | null>;
  /** Records the cursor (fenced as `write`); null forgets it. */
  cursorSet(syncId: number, cursor: SnapshotCursor | null, fence?: RunFence): Promise<void>;
  /** The recorded ids of `keys`; keys without one are absent. */
  recordIdsGet(syncId: number, keys: string[]): Promise<Map<string, string>>;
  /** Records ids of delivered rows and drops those of deleted ones, in one transaction (fenced as `write`). */
  recordIdsWrite(syncId: number, ids: Array<[key: string, id: string]>, deletes: string[], fence?: RunFence): Promise<void>;
}

/** Sequence runs with their members, and what a restart finds of runs that were active. */
export interface SequenceRunStore {
  /** Queues a run with every member pending; returns the queued run instead when one exists. */
  enqueueSequenceRun(
    sequence: SequenceRecord,
    trigger: Trigger,
    now: number,
  ): Promise<{ run: SequenceRun; created: boolean }>;
  /** pending → running, if no other run of the same sequence is running; null if it must wait. */
  claimSequenceRun(id: string, now: number): Promise<SequenceRun | null>;
  getSequenceRun(id: string): Promise<SequenceRun | null>;
  /** The id of the run that resumes the failed run `id` (at most one does), or null. */
  resumingSequenceRunId(id: string): Promise<string | null>;
  listSequenceRuns(query: SequenceRunListQuery): Promise<SequenceRun[]>;
  /**
   * The newest `perSequence` runs of every sequence in the workspace (deleted sequences left out),
   * newest first within each sequence: what a list of sequences shows of their runs, read at once.
   */
  latestSequenceRuns(perSequence: number): Promise<SequenceRun[]>;
  listSequenceRunsByStatus(statuses: SequenceRunStatus[]): Promise<SequenceRun[]>;
  /**
   * Creates a queued sync run for each member and links it, atomically. A member that already has
   * a sync run that is not `interrupted` is left alone (so a replayed hand-off never runs a member twice).
   */
  startMembers(sequenceRunId: string, members: MemberStart[], now: number): Promise<SyncRun[]>;
  /** Records which member terminated the run and why (the first call wins). */
  setTermination(sequenceRunId: string, memberKey: string | null, reason: string): Promise<void>;
  /** Marks still-pending members `skipped`; their queued runs end `cancelled`, in the outbox of finished runs. */
  skipPendingMembers(sequenceRunId: string, now: number): Promise<void>;
  finishSequenceRun(sequenceRunId: string, status: SequenceRunStatus, now: number): Promise<SequenceRun>;
  /**
   * Cancels a pending run at once, its members skipped, recording it in the outbox of finished runs
   * (so does deleting a sync or sequence a pending run waits on); flags a running one.
   */
  requestSequenceRunCancel(id: string): Promise<SequenceRun>;
  /**
   * Moves a running sequence run forward in one transaction under a lock on the run: reads the run,
   * its members' sync runs and the sequence, asks `decide` (pure, core/sequence-rules.ts) what to
   * do, and applies it (termination, cancel requests, skipped members, new member runs, the end of
   * the run, with the finished run in the outbox). Two workers advancing one run take turns, so no
   * member starts twice and the concurrency is never exceeded. With `claim`, up to `claim.max` of
   * the member runs it queues are claimed for `claim.lease` in the same transaction (as
   * `claimSyncRun`), so the worker handing off starts them without another round trip.
   */
  advanceSequenceRun(
    id: string,
    decide: (state: SequenceAdvanceState) => SequenceDecision,
    now: number,
    claim?: { lease: LeaseRequest; max: number },
  ): Promise<SequenceAdvance>;
  /**
   * Queues a run that resumes run `id`, in one transaction under a lock on it: reads the run, its
   * sequence as it is now, its members' finished sync runs, a run already resuming it and the
   * sequence's queued run, asks `decide` (pure, core/sequence-rules.ts decideSequenceResume), and
   * queues a pending run with `resumedFrom: id` whose carried-over members are already finished
   * with their sync runs (the others pending). A refusal throws (NotFound or Conflict, with the
   * decision's reason) and writes nothing. NotFound when there is no run `id`.
   */
  resumeSequenceRun(
    id: string,
    decide: (state: SequenceResumeState) => SequenceResumeDecision,
    trigger: Trigger,
    now: number,
  ): Promise<SequenceRun>;
}

/** The run a firing queues: a sync's standalone run or a sequence's run. */
export type FiredRun = { kind: 'sync'; run: NewSyncRun } | { kind: 'sequence'; sequence: SequenceRecord; trigger: Trigger };

/**
 * Runs queued once per firing key: a schedule's due time (`scheduleId@dueTime`), an upstream run's
 * end (`after:...`), a webhook delivery's target (`webhook:...`).
 */
export interface FiredRunQueue {
  /**
   * Records `key` with the schedule firings (ScheduleStore) and queues `run` (as enqueueSyncRun or
   * enqueueSequenceRun), in one transaction: both happen or neither does, so a firing recorded always
   * has its run, and one tried again after a crash or a failure is queued exactly once. Null when
   * the key was recorded before (its run was queued then); NotFound, recording nothing, when the
   * sync or sequence no longer exists.
   */
  enqueueFiredRun(key: string, run: FiredRun, now: number): Promise<{ runId: string; created: boolean } | null>;
}

/** What the outbox of finished runs holds: a run whose end upstream triggers and alert rules act on. */
export interface FinishedRunEntry {
  id: number;
  kind: 'sync' | 'sequence';
  runId: string;
}

/**
 * Finished runs, recorded in each run's final transaction and taken by one process at a time for a
 * lease, then removed once acted upon: a run's end is acted on once whichever process ran it, and
 * after a crash between the end and the action.
 */
export interface FinishedRunOutbox {
  /** Takes up to `limit` entries not held by another process (or whose hold expired). */
  takeFinishedRuns(limit: number, now: number, lease: LeaseRequest): Promise<FinishedRunEntry[]>;
  /** Removes entries acted upon. */
  ackFinishedRuns(ids: number[]): Promise<void>;
}

/** Change notifications a store can push (PostgreSQL LISTEN/NOTIFY); polling finds the same work later. */
export type StoreTopic = 'work' | 'finished' | 'schema' | 'cancel';

export interface StoreWatch {
  /**
   * Calls `listener` soon after work was queued, a run finished, a running sync run was asked to
   * cancel or the store was migrated, in any process; returns an unsubscribe.
   */
  watch(listener: (topic: StoreTopic) => void): () => void;
}

/** What the scheduler keeps: firing keys (each due time fires once) and each schedule's cursor. */
export interface ScheduleStore {
  /** Records a firing key (`scheduleId@dueTime`); false when it was already recorded. */
  recordFiring(key: string, now: number): Promise<boolean>;
  /** The due time up to which a schedule has been evaluated, or null. */
  getScheduleCursor(scheduleId: string): Promise<number | null>;
  setScheduleCursor(scheduleId: string, dueTime: number): Promise<void>;
  /** Saves many schedules' cursors in one transaction. */
  setScheduleCursors(cursors: Array<{ scheduleId: string; dueTime: number }>): Promise<void>;
}

/**
 * Everything Lockstep keeps, by role: the workspace, sync and sequence runs, and the sub-stores of
 * snapshots and record ids, schedule firings and cursors, webhook deliveries, alerts and API tokens. Every
 * method is atomic: it either happens whole or not at all. Components take the roles they use.
 */
export interface Store extends WorkspaceStore, SyncRunStore, SequenceRunStore, FiredRunQueue, FinishedRunOutbox {
  readonly capabilities: StoreCapabilities;
  /** Pushed change notifications, for stores that have them (default: none; workers poll). */
  readonly watch?: StoreWatch['watch'];
  /**
   * The store server's time, epoch ms, for a store that processes on several machines share: they
   * keep to it, not to their machines' clocks (default: none; the process's clock is the store's).
   */
  serverTime?(): Promise<number>;
  /**
   * The refusal to go on when a newer Lockstep migrated the store since this process opened it (a
   * rolling upgrade: this code cannot read what that one writes), naming both schema versions and
   * the fix; null while the store is at the version this code knows. Throws when the store cannot
   * be read (default: none; nothing migrates the store under the process).
   */
  newerSchema?(): Promise<LockstepError | null>;
  /** Per sync, the snapshot of delivered rows, its change cursor and the destination's record ids. */
  readonly snapshots: SnapshotStore;
  /** What the scheduler keeps: firing keys and each schedule's cursor. */
  readonly schedules: ScheduleStore;
  /** The log of webhook deliveries (dbt Cloud, Fivetran). */
  readonly webhooks: WebhookEventStore;
  /** Alert definitions, alert state and the outbox of alert deliveries. */
  readonly alerts: AlertStore;
  /** API tokens (hashed). */
  readonly tokens: TokenStore;
  close(): Promise<void>;
}


/**
 * The PostgreSQL store's schema, as numbered migrations (its own numbering: the SQLite store's
 * versions describe another history). A migration is never edited once released: changes go into a
 * new one. Every table lives in one schema (default `lockstep`), so Lockstep can share a database.
 *
 * All pending migrations run in one transaction under a transaction-level advisory lock: when
 * several processes start at once, the first migrates and the others wait for its commit, then
 * find nothing left to do. A crash half-way leaves the database as it was.
 */
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { ALERTS_SCHEMA } from './postgres-alert-store.js';
import type { Queryable } from './postgres-database.js';
import { API_TOKENS_SCHEMA } from './postgres-token-store.js';
import { WEBHOOK_REFUSALS_SCHEMA, WEBHOOKS_SCHEMA } from './postgres-webhook-store.js';

export interface Migration {
  /** 1, 2, 3, ... in order; the schema's version after it ran. */
  version: number;
  /** A few words on what it does. */
  name: string;
  /** Statements run with the store's schema first on the search path. */
  sql: string;
}

/**
 * Workspace entities keep their whole definition as JSON text (compared field by field, given back
 * as written); the columns are what queries filter on. Deleting an entity sets `deleted_at`, so run
 * history keeps its ids; only one live row per slug.
 * Times are epoch milliseconds as double precision: fractions of a millisecond matter for hand-off
 * latency, and a timestamptz keeps only microseconds.
 * Keys are text in the "C" collation: snapshot pages and key batches come in byte order, as in
 * the SQLite store, whatever the database's locale.
 */
/**
 * A table of workspace entities: its JSON definition, where it came from, and a soft delete (history
 * keeps the id); one live entity per slug.
 */
function entityTable(name: string, enabled: boolean): string {
  return `CREATE TABLE ${name} (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug        text NOT NULL,${enabled ? '\n  enabled     boolean NOT NULL,' : ''}
  definition  text NOT NULL,
  origin      text NOT NULL DEFAULT 'file',
  created_at  double precision NOT NULL,
  updated_at  double precision NOT NULL,
  deleted_at  double precision
);
CREATE UNIQUE INDEX ${name}_live_slug ON ${name} (slug) WHERE deleted_at IS NULL;
`;
}

const INITIAL_SCHEMA = `
${entityTable('sources', false)}
${entityTable('destinations', false)}
${entityTable('models', false)}
${entityTable('syncs', true)}
${entityTable('sequences', true)}
-- seq orders runs (UUIDs do not); id is what everyone else uses (text: a malformed id finds nothing).
CREATE TABLE sequence_runs (
  seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id               text NOT NULL UNIQUE,
  sequence_id      bigint NOT NULL REFERENCES sequences (id),
  status           text NOT NULL,
  trigger_type     text NOT NULL,
  trigger_detail   text,
  created_at       double precision NOT NULL,
  started_at       double precision,
  finished_at      double precision,
  terminated_by    text,
  reason           text,
  cancel_requested boolean NOT NULL DEFAULT false
);
CREATE INDEX sequence_runs_by_sequence ON sequence_runs (sequence_id, seq);
CREATE INDEX sequence_runs_by_status ON sequence_runs (status, seq);
-- A sequence has at most one queued follow-up and never runs concurrently with itself (SPEC 3.2).
CREATE UNIQUE INDEX sequence_runs_one_pending ON sequence_runs (sequence_id) WHERE status = 'pending';
CREATE UNIQUE INDEX sequence_runs_one_running ON sequence_runs (sequence_id) WHERE status = 'running';

CREATE TABLE sync_runs (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sync_id            bigint NOT NULL REFERENCES syncs (id),
  status             text NOT NULL,
  trigger_type       text NOT NULL,
  trigger_detail     text,
  full_resync        boolean NOT NULL,
  reset_cdc          boolean NOT NULL,
  sequence_run_id    text REFERENCES sequence_runs (id),
  member_key         text,
  created_at         double precision NOT NULL,
  started_at         double precision,
  finished_at        double precision,
  query_size         bigint NOT NULL DEFAULT 0,
  planned_added      bigint NOT NULL DEFAULT 0,
  planned_changed    bigint NOT NULL DEFAULT 0,
  planned_removed    bigint NOT NULL DEFAULT 0,
  successful_added   bigint NOT NULL DEFAULT 0,
  successful_changed bigint NOT NULL DEFAULT 0,
  successful_removed bigint NOT NULL DEFAULT 0,
  failed_added       bigint NOT NULL DEFAULT 0,
  failed_changed     bigint NOT NULL DEFAULT 0,
  failed_removed     bigint NOT NULL DEFAULT 0,
  completion_ratio   double precision NOT NULL DEFAULT 0,
  error              text,
  cancel_requested   boolean NOT NULL DEFAULT false,
  api_usage          text,
  -- Leases (SPEC 7): the worker holding an active run, until when, and how many claims it took.
  attempt            integer NOT NULL DEFAULT 0,
  worker_id          text,
  lease_expires_at   double precision
);
CREATE INDEX sync_runs_by_sync ON sync_runs (sync_id, id);
CREATE INDEX sync_runs_by_status ON sync_runs (status, id);
CREATE INDEX sync_runs_by_sequence_run ON sync_runs (sequence_run_id) WHERE sequence_run_id IS NOT NULL;
-- A sync has at most one queued standalone follow-up and never runs concurrently with itself (SPEC 2.2).
CREATE UNIQUE INDEX sync_runs_one_queued ON sync_runs (sync_id)
  WHERE status = 'queued' AND sequence_run_id IS NULL;
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (sync_id)
  WHERE status IN ('querying', 'processing', 'reporting');
-- Active runs in id order: a claim looks for an expired lease among them without reading history.
CREATE INDEX sync_runs_active ON sync_runs (id)
  WHERE status IN ('querying', 'processing', 'reporting');

CREATE TABLE member_runs (
  sequence_run_id text NOT NULL REFERENCES sequence_runs (id),
  key             text NOT NULL,
  position        integer NOT NULL,
  sync_id         bigint NOT NULL,
  status          text NOT NULL,
  sync_run_id     bigint REFERENCES sync_runs (id),
  started_at      double precision,
  finished_at     double precision,
  PRIMARY KEY (sequence_run_id, key)
);

CREATE TABLE rejected_rows (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sync_run_id bigint NOT NULL REFERENCES sync_runs (id),
  key         text NOT NULL,
  op          text NOT NULL,
  reason      text NOT NULL
);
CREATE INDEX rejected_rows_by_run ON rejected_rows (sync_run_id, id);

-- No foreign key: snapshots are written in bulk and every check would cost a lookup per row.
-- A hash of lowercase hex digits (what the sync runner writes) is kept as its bytes in hash, half
-- its text's size; any other hash string stays text in hash_text.
CREATE TABLE snapshots (
  sync_id   bigint NOT NULL,
  key       text COLLATE "C" NOT NULL,
  hash      bytea,
  hash_text text,
  PRIMARY KEY (sync_id, key),
  CHECK ((hash IS NULL) <> (hash_text IS NULL))
);

-- Destination ids of delivered rows, per sync and key, for destinations that report them.
CREATE TABLE record_ids (
  sync_id   bigint NOT NULL,
  key       text COLLATE "C" NOT NULL,
  record_id text NOT NULL,
  PRIMARY KEY (sync_id, key)
);

-- The outbox of finished runs (kind 'sync' or 'sequence'): written in a run's final transaction,
-- held by one process at a time until held_until, deleted once acted upon.
CREATE TABLE finished_runs (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind       text NOT NULL,
  run_id     text NOT NULL,
  created_at double precision NOT NULL,
  held_by    text,
  held_until double precision
);

CREATE TABLE schedule_firings (
  key         text PRIMARY KEY,
  recorded_at double precision NOT NULL
);

CREATE TABLE schedule_cursors (
  schedule_id text PRIMARY KEY,
  due_time    double precision NOT NULL
);
`;

/**
 * Resume and run limits: a run may resume a failed one (at most one run resumes each); a run keeps
 * its sequence's deadline and each member its timeout as they were when it was queued, and the
 * member graph a resume compares with (in a table of its own, so reading a run never reads it).
 */
const RESUME_SCHEMA = `
ALTER TABLE sequence_runs ADD COLUMN resumed_from text REFERENCES sequence_runs (id);
ALTER TABLE sequence_runs ADD COLUMN deadline_minutes double precision;
ALTER TABLE member_runs ADD COLUMN timeout_minutes double precision;
CREATE UNIQUE INDEX sequence_runs_resumed_from ON sequence_runs (resumed_from) WHERE resumed_from IS NOT NULL;
CREATE TABLE sequence_run_graphs (
  sequence_run_id text PRIMARY KEY REFERENCES sequence_runs (id),
  members         jsonb NOT NULL
);
`;

/**
 * A run keeps its sequence's concurrency and each member's terminate policy as they were when it
 * was queued: an edit while it runs applies to the next run.
 */
const RUN_POLICIES_SCHEMA = `
ALTER TABLE sequence_runs ADD COLUMN concurrency integer;
ALTER TABLE member_runs ADD COLUMN terminate text;
ALTER TABLE member_runs ADD COLUMN rejected_threshold text;
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: INITIAL_SCHEMA + API_TOKENS_SCHEMA + ALERTS_SCHEMA + WEBHOOKS_SCHEMA },
  { version: 2, name: 'a run let through the mass-delete guard', sql: 'ALTER TABLE sync_runs ADD COLUMN allow_mass_delete boolean NOT NULL DEFAULT false;' },
  { version: 3, name: 'refused webhook deliveries counted per reason', sql: WEBHOOK_REFUSALS_SCHEMA },
  { version: 4, name: 'resumed sequence runs, run limits and the member graph a run was queued with', sql: RESUME_SCHEMA },
  { version: 5, name: "where a sync run's time went", sql: 'ALTER TABLE sync_runs ADD COLUMN phase_ms text;' },
  {
    version: 6,
    name: 'full comparison asked for, and how a run compared the model',
    sql: 'ALTER TABLE sync_runs ADD COLUMN full_compare boolean NOT NULL DEFAULT false;\nALTER TABLE sync_runs ADD COLUMN comparison text;',
  },
  {
    version: 7,
    name: "a model's change cursor as the store's planner last delivered it",
    sql: 'CREATE TABLE snapshot_cursors (sync_id bigint PRIMARY KEY, value text NOT NULL, runs integer NOT NULL DEFAULT 0);',
  },
  { version: 8, name: 'the concurrency and member policies a sequence run was queued with', sql: RUN_POLICIES_SCHEMA },
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/**
 * The advisory lock taken while migrating `schema`: one key per schema, so two Lockstep
 * installations sharing a database do not wait for each other.
 */
export function migrationLockKey(schema: string): string {
  return `lockstep:migrate:${schema}`;
}

/** The NOTIFY channel of the store in `schema`: processes sharing the schema hear each other. */
export function notificationChannel(schema: string): string {
  return `${schema}_lockstep`;
}

/**
 * Creates `schema` when missing and brings it to the newest of `migrations` (default: this code's,
 * up to SCHEMA_VERSION) in the transaction `q` holds; returns the versions it applied (empty when
 * the schema was up to date). Refuses a schema written by a newer Lockstep, which this code cannot
 * read. `where` names the database for messages. Processes of an older Lockstep still at work on
 * the schema hear of the migration when it commits (topic `schema`) and stop (see `newerSchema`).
 */
export async function migrate(q: Queryable, schema: string, where: string, now: number, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  await q.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [migrationLockKey(schema)]);
  const quoted = `"${schema.replace(/"/g, '""')}"`;
  // Checked before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
  // database even when the schema exists, and a user may own only its schema.
  const exists = await q.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (exists.rows.length === 0) await q.query(`CREATE SCHEMA ${quoted}`);
  await q.query(`SET LOCAL search_path TO ${quoted}, pg_catalog`);
  await q.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
  )`);
  const done = new Set((await q.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)));
  const known = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const newest = Math.max(0, ...done);
  if (newest > known) throw newerSchemaError(where, newest, known);
  const applied: number[] = [];
  // Each migration is applied unless recorded, in version order (versions may land in any order).
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(migration.version)) continue;
    await q.query(migration.sql);
    await q.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, now]);
    applied.push(migration.version);
  }
  // Heard by the processes at work on the schema once this commits: an older one stops.
  if (applied.length > 0) await q.query('SELECT pg_notify($1, $2)', [notificationChannel(schema), 'schema']);
  return applied;
}

/**
 * The refusal to go on for a process whose code knows schema versions up to `known`, when a newer
 * Lockstep migrated the schema past it while the process ran; null while it has not. `where` names
 * the database for the message.
 */
export async function newerSchemaSinceOpened(q: Queryable, schemaTable: string, where: string, known = SCHEMA_VERSION): Promise<LockstepError | null> {
  const [row] = (await q.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${schemaTable}`)).rows;
  const stored = Number(row?.version ?? 0);
  if (stored <= known) return null;
  return new LockstepError(
    ErrorCode.Store,
    `store ${where} was migrated to schema version ${stored} by a newer Lockstep while this process ran; this Lockstep knows ` +
      `version ${known} at most and cannot read or write what the newer one keeps — upgrade Lockstep on this machine to the ` +
      'version that migrated the store, and start this process again (its runs are left to the upgraded workers)',
  );
}

function newerSchemaError(where: string, version: number, known: number): LockstepError {
  return new LockstepError(
    ErrorCode.Store,
    `store ${where} has schema version ${version}, newer than this Lockstep knows (${known}); ` +
      'upgrade Lockstep, or point it at another database or schema',
  );
}

/**
 * The SQLite store's schema, as numbered migrations. A migration is never edited once released:
 * changes go into a new one. Each is applied in its own `BEGIN IMMEDIATE` transaction and recorded
 * in `schema_migrations`, so a crash half-way leaves the file at the previous version and two
 * processes opening the same new file apply each migration once.
 */
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { immediateTransaction, type SqliteDatabase } from './sqlite-database.js';
import { WEBHOOK_EVENTS_SCHEMA, WEBHOOK_REFUSALS_SCHEMA, WEBHOOK_SETTINGS_SCHEMA } from './sqlite-webhook-store.js';
import { API_TOKENS_SCHEMA } from './sqlite-token-store.js';
import { ALERTS_SCHEMA } from './sqlite-alert-store.js';

export interface Migration {
  /** 1, 2, 3, ... in order; the file's schema version after it ran. */
  version: number;
  /** A few words on what it does. */
  name: string;
  sql: string;
}

/**
 * Workspace entities keep their whole definition as JSON (it is a document, declared in YAML and
 * compared field by field); the columns are what queries filter on. Deleting an entity sets
 * `deleted_at`, so run history keeps its ids; only one live row per slug.
 * Times are epoch milliseconds as REAL: fractions of a millisecond matter for hand-off latency.
 */
const INITIAL_SCHEMA = `
CREATE TABLE sources (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  slug        TEXT NOT NULL,
  definition  TEXT NOT NULL,
  created_at  REAL NOT NULL,
  updated_at  REAL NOT NULL,
  deleted_at  REAL
);
CREATE UNIQUE INDEX sources_live_slug ON sources (slug) WHERE deleted_at IS NULL;

CREATE TABLE destinations (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  slug        TEXT NOT NULL,
  definition  TEXT NOT NULL,
  created_at  REAL NOT NULL,
  updated_at  REAL NOT NULL,
  deleted_at  REAL
);
CREATE UNIQUE INDEX destinations_live_slug ON destinations (slug) WHERE deleted_at IS NULL;

CREATE TABLE models (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  slug        TEXT NOT NULL,
  definition  TEXT NOT NULL,
  created_at  REAL NOT NULL,
  updated_at  REAL NOT NULL,
  deleted_at  REAL
);
CREATE UNIQUE INDEX models_live_slug ON models (slug) WHERE deleted_at IS NULL;

CREATE TABLE syncs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  slug        TEXT NOT NULL,
  enabled     INTEGER NOT NULL,
  definition  TEXT NOT NULL,
  created_at  REAL NOT NULL,
  updated_at  REAL NOT NULL,
  deleted_at  REAL
);
CREATE UNIQUE INDEX syncs_live_slug ON syncs (slug) WHERE deleted_at IS NULL;

CREATE TABLE sequences (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  slug        TEXT NOT NULL,
  enabled     INTEGER NOT NULL,
  definition  TEXT NOT NULL,
  created_at  REAL NOT NULL,
  updated_at  REAL NOT NULL,
  deleted_at  REAL
);
CREATE UNIQUE INDEX sequences_live_slug ON sequences (slug) WHERE deleted_at IS NULL;

-- seq orders runs (UUIDs do not); id is what everyone else uses.
CREATE TABLE sequence_runs (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  id               TEXT NOT NULL UNIQUE,
  sequence_id      INTEGER NOT NULL REFERENCES sequences (id),
  status           TEXT NOT NULL,
  trigger_type     TEXT NOT NULL,
  trigger_detail   TEXT,
  created_at       REAL NOT NULL,
  started_at       REAL,
  finished_at      REAL,
  terminated_by    TEXT,
  reason           TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sequence_runs_by_sequence ON sequence_runs (sequence_id, seq);
CREATE INDEX sequence_runs_by_status ON sequence_runs (status, seq);
-- A sequence has at most one queued follow-up and never runs concurrently with itself (SPEC 3.2).
CREATE UNIQUE INDEX sequence_runs_one_pending ON sequence_runs (sequence_id) WHERE status = 'pending';
CREATE UNIQUE INDEX sequence_runs_one_running ON sequence_runs (sequence_id) WHERE status = 'running';

CREATE TABLE sync_runs (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  sync_id            INTEGER NOT NULL REFERENCES syncs (id),
  status             TEXT NOT NULL,
  trigger_type       TEXT NOT NULL,
  trigger_detail     TEXT,
  full_resync        INTEGER NOT NULL,
  reset_cdc          INTEGER NOT NULL,
  sequence_run_id    TEXT REFERENCES sequence_runs (id),
  member_key         TEXT,
  created_at         REAL NOT NULL,
  started_at         REAL,
  finished_at        REAL,
  query_size         INTEGER NOT NULL DEFAULT 0,
  planned_added      INTEGER NOT NULL DEFAULT 0,
  planned_changed    INTEGER NOT NULL DEFAULT 0,
  planned_removed    INTEGER NOT NULL DEFAULT 0,
  successful_added   INTEGER NOT NULL DEFAULT 0,
  successful_changed INTEGER NOT NULL DEFAULT 0,
  successful_removed INTEGER NOT NULL DEFAULT 0,
  failed_added       INTEGER NOT NULL DEFAULT 0,
  failed_changed     INTEGER NOT NULL DEFAULT 0,
  failed_removed     INTEGER NOT NULL DEFAULT 0,
  completion_ratio   REAL NOT NULL DEFAULT 0,
  error              TEXT,
  cancel_requested   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sync_runs_by_sync ON sync_runs (sync_id, status);
CREATE INDEX sync_runs_by_status ON sync_runs (status);
CREATE INDEX sync_runs_by_sequence_run ON sync_runs (sequence_run_id) WHERE sequence_run_id IS NOT NULL;
-- A sync has at most one queued standalone follow-up and never runs concurrently with itself (SPEC 2.2).
CREATE UNIQUE INDEX sync_runs_one_queued ON sync_runs (sync_id)
  WHERE status = 'queued' AND sequence_run_id IS NULL;
CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (sync_id)
  WHERE status IN ('querying', 'processing', 'reporting');

CREATE TABLE member_runs (
  sequence_run_id TEXT NOT NULL REFERENCES sequence_runs (id),
  key             TEXT NOT NULL,
  position        INTEGER NOT NULL,
  sync_id         INTEGER NOT NULL,
  status          TEXT NOT NULL,
  sync_run_id     INTEGER REFERENCES sync_runs (id),
  started_at      REAL,
  finished_at     REAL,
  PRIMARY KEY (sequence_run_id, key)
) WITHOUT ROWID;

CREATE TABLE rejected_rows (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  sync_run_id INTEGER NOT NULL REFERENCES sync_runs (id),
  key         TEXT NOT NULL,
  op          TEXT NOT NULL,
  reason      TEXT NOT NULL
);
CREATE INDEX rejected_rows_by_run ON rejected_rows (sync_run_id, id);

-- No foreign key: snapshots are written in bulk and every check would cost a lookup per row.
CREATE TABLE snapshots (
  sync_id INTEGER NOT NULL,
  key     TEXT NOT NULL,
  hash    TEXT NOT NULL,
  PRIMARY KEY (sync_id, key)
) WITHOUT ROWID;

CREATE TABLE schedule_firings (
  key         TEXT PRIMARY KEY,
  recorded_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE schedule_cursors (
  schedule_id TEXT PRIMARY KEY,
  due_time    REAL NOT NULL
) WITHOUT ROWID;
`;

/** Where each workspace entity came from: `file` (apply) or `api`; rows before it came from files. */
const ENTITY_ORIGIN_SCHEMA = ['sources', 'destinations', 'models', 'syncs', 'sequences']
  .map((table) => `ALTER TABLE ${table} ADD COLUMN origin TEXT NOT NULL DEFAULT 'file';`)
  .join('\n');

/** Destination ids of delivered rows, per sync and key, for destinations that report them (child syncs look them up). */
const RECORD_IDS_SCHEMA = `
CREATE TABLE record_ids (
  sync_id   INTEGER NOT NULL,
  key       TEXT NOT NULL,
  record_id TEXT NOT NULL,
  PRIMARY KEY (sync_id, key)
) WITHOUT ROWID;
ALTER TABLE sync_runs ADD COLUMN api_usage TEXT;
`;

/**
 * Leases: a claimed run is held by a worker until its lease ends (renewed by heartbeats), and every
 * claim counts an attempt. Runs active before this version have no lease: any worker takes them
 * over. The outbox of finished runs feeds upstream triggers and alert checks in any process.
 */
const LEASES_SCHEMA = `
ALTER TABLE sync_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN worker_id TEXT;
ALTER TABLE sync_runs ADD COLUMN lease_expires_at REAL;
UPDATE sync_runs SET attempt = 1 WHERE started_at IS NOT NULL;
CREATE TABLE finished_runs (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  kind       TEXT NOT NULL,
  run_id     TEXT NOT NULL,
  created_at REAL NOT NULL,
  held_by    TEXT,
  held_until REAL
);
`;

/**
 * Resume and run limits: a run may resume a failed one (at most one run resumes each); a run keeps
 * its sequence's deadline and each member its timeout as they were when it was queued, and the
 * member graph a resume compares with (in a table of its own, so reading a run never reads it).
 */
const RESUME_SCHEMA = `
ALTER TABLE sequence_runs ADD COLUMN resumed_from TEXT REFERENCES sequence_runs (id);
ALTER TABLE sequence_runs ADD COLUMN deadline_minutes REAL;
ALTER TABLE member_runs ADD COLUMN timeout_minutes REAL;
CREATE UNIQUE INDEX sequence_runs_resumed_from ON sequence_runs (resumed_from) WHERE resumed_from IS NOT NULL;
CREATE TABLE sequence_run_graphs (
  sequence_run_id TEXT PRIMARY KEY REFERENCES sequence_runs (id),
  members         TEXT NOT NULL
) WITHOUT ROWID;
`;

/**
 * A run keeps its sequence's concurrency and each member's terminate policy as they were when it
 * was queued: an edit while it runs applies to the next run.
 */
const RUN_POLICIES_SCHEMA = `
ALTER TABLE sequence_runs ADD COLUMN concurrency INTEGER;
ALTER TABLE member_runs ADD COLUMN terminate TEXT;
ALTER TABLE member_runs ADD COLUMN rejected_threshold TEXT;
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: INITIAL_SCHEMA },
  { version: 2, name: 'entity origin and API tokens', sql: ENTITY_ORIGIN_SCHEMA + API_TOKENS_SCHEMA },
  { version: 3, name: 'alert definitions, state and deliveries', sql: ALERTS_SCHEMA },
  { version: 5, name: 'webhook deliveries', sql: WEBHOOK_EVENTS_SCHEMA },
  { version: 6, name: 'webhook settings', sql: WEBHOOK_SETTINGS_SCHEMA },
  { version: 7, name: 'destination record ids and API usage', sql: RECORD_IDS_SCHEMA },
  { version: 8, name: 'run leases and the outbox of finished runs', sql: LEASES_SCHEMA },
  { version: 9, name: 'a run let through the mass-delete guard', sql: 'ALTER TABLE sync_runs ADD COLUMN allow_mass_delete INTEGER NOT NULL DEFAULT 0;' },
  { version: 10, name: 'refused webhook deliveries counted per reason', sql: WEBHOOK_REFUSALS_SCHEMA },
  { version: 11, name: 'resumed sequence runs, run limits and the member graph a run was queued with', sql: RESUME_SCHEMA },
  { version: 12, name: "where a sync run's time went", sql: 'ALTER TABLE sync_runs ADD COLUMN phase_ms TEXT;' },
  {
    version: 13,
    name: 'full comparison asked for, and how a run compared the model',
    sql: 'ALTER TABLE sync_runs ADD COLUMN full_compare INTEGER NOT NULL DEFAULT 0;\nALTER TABLE sync_runs ADD COLUMN comparison TEXT;',
  },
  {
    version: 14,
    name: "a model's change cursor as the store's planner last delivered it",
    sql: 'CREATE TABLE snapshot_cursors (sync_id INTEGER PRIMARY KEY, value TEXT NOT NULL, runs INTEGER NOT NULL DEFAULT 0);',
  },
  { version: 15, name: 'the concurrency and member policies a sequence run was queued with', sql: RUN_POLICIES_SCHEMA },
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/**
 * Brings the file at `path` to SCHEMA_VERSION and returns the versions it applied (empty when the
 * file was up to date). Refuses a file written by a newer Lockstep, which this code cannot read.
 */
export function migrate(db: SqliteDatabase, path: string, now: number): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
  )`);
  const current = db.prepare('SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations');
  const done = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?');
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const applied: number[] = [];
  const onDisk = (current.get() as { version: number }).version;
  if (onDisk > SCHEMA_VERSION) throw newerSchemaError(path, onDisk);
  // Each migration is applied unless recorded, in version order: a file may have a later
  // migration and not an earlier one (versions are reserved per feature and land in any order).
  for (const migration of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
    if (done.get(migration.version)) continue;
    immediateTransaction(db, () => {
      // Re-check under the write lock: another process may have applied it meanwhile.
      const version = (current.get() as { version: number }).version;
      if (version > SCHEMA_VERSION) throw newerSchemaError(path, version);
      if (done.get(migration.version)) return;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, now);
      applied.push(migration.version);
    });
  }
  return applied;
}

/**
 * For a file opened read-only, where nothing can be migrated: passes when every migration is
 * recorded, and refuses a file of an older Lockstep (naming what to do) or a newer one.
 */
export function checkSchemaIsCurrent(db: SqliteDatabase, path: string): void {
  const hasTable = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get();
  const recorded = hasTable ? (db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => Number(r.version)) : [];
  const newest = Math.max(0, ...recorded);
  if (newest > SCHEMA_VERSION) throw newerSchemaError(path, newest);
  const missing = MIGRATIONS.filter((m) => !recorded.includes(m.version));
  if (missing.length === 0) return;
  throw new LockstepError(
    ErrorCode.Store,
    `store ${path} can only be read (its file or folder is read-only) and was written by an older Lockstep (schema version ${newest}; this one needs ${missing.map((m) => m.version).join(', ')} as well); ` +
      'a read-only store must be at the current schema — run any command once with write access to the file and its folder (e.g. `lockstep plan`) to bring it up to date, then make it read-only again',
  );
}

/**
 * The refusal to go on for a process that opened the file at `path`, when a newer Lockstep migrated
 * it past SCHEMA_VERSION since (another process on this machine); null while it has not.
 */
export function newerSchemaSinceOpened(db: SqliteDatabase, path: string): LockstepError | null {
  const stored = (db.prepare('SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations').get() as { version: number }).version;
  if (stored <= SCHEMA_VERSION) return null;
  return new LockstepError(
    ErrorCode.Store,
    `store ${path} was migrated to schema version ${stored} by a newer Lockstep while this process ran; this Lockstep knows ` +
      `version ${SCHEMA_VERSION} at most and cannot read or write what the newer one keeps — upgrade Lockstep on this machine, ` +
      'and start this process again',
  );
}

function newerSchemaError(path: string, version: number): LockstepError {
  return new LockstepError(
    ErrorCode.Store,
    `store ${path} has schema version ${version}, newer than this Lockstep knows (${SCHEMA_VERSION}); ` +
      'upgrade Lockstep or open another store file',
  );
}

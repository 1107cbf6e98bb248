/**
 * The snapshot role of the embedded store (SnapshotStore): per sync, the hash of each delivered
 * key, the model's change cursor and the destination's record ids. It shares the SqliteStore's
 * connection and the write worker it starts: a file store commits snapshot writes and reads bulk
 * pages on the worker's connection, off the main thread, where the rest of the role runs on the
 * main connection. A fenced write checks the run fence the run queue checks too, in its own
 * transaction.
 */
import { endianness } from 'node:os';
import { hashText } from '../../core/hash-text.js';
import type { RunFence, RunReach, SnapshotChanges, SnapshotCursor, SnapshotPage, SnapshotRows, SnapshotStore } from '../../core/ports.js';
import { TERMINAL_SYNC_RUN_STATUSES, type OperationCounts } from '../../core/runs.js';
import { parseCursorValue } from '../rows.js';
import type { SqliteDatabase, SqliteStatement, SqliteTransactions } from './sqlite-database.js';
import type { SqliteRunFence } from './sqlite-run-fence.js';
import {
  GUARD_FAILED,
  ROW_SEPARATOR,
  type PackedRows,
  type SqliteWriteWorker,
  type WriteGuard,
  type WriteStatement,
  type WriteTransaction,
} from './sqlite-write-worker.js';

/**
 * Snapshot hashes in lowercase hex (what the sync runner writes) are kept as BLOBs, half their text
 * size; anything else (hashes of older versions: base64 text) stays text. Read back, a BLOB is
 * its hex again, so a hash comes back as it was written.
 */
const SNAPSHOT_HASH = "CASE WHEN typeof(hash) = 'blob' THEN lower(hex(hash)) ELSE hash END";
/** Snapshot rows per INSERT statement (3 parameters each, well under SQLite's limit of 32766). */
const SNAPSHOT_ROWS = 500;
/** The statement text per row count, built once: a full batch reuses the same 500-row string. */
const snapshotUpsertSqls = new Map<number, string>();
function snapshotUpsertSql(rows: number): string {
  let sql = snapshotUpsertSqls.get(rows);
  if (sql === undefined) {
    sql = buildSnapshotUpsertSql(rows);
    snapshotUpsertSqls.set(rows, sql);
  }
  return sql;
}
function buildSnapshotUpsertSql(rows: number): string {
  return `INSERT INTO snapshots (sync_id, key, hash) VALUES ${Array.from({ length: rows }, () => '(?, ?, unhex(?))').join(', ')}
    ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash`;
}
/**
 * The snapshot's upsert of a whole batch in one statement: the keys as one JSON array (`@keys`, cut
 * by SQLite's json_each) and the hashes as one BLOB, 8 bytes a key in the same order (`@hashes`).
 * No parameter per row: SQLite's own C takes the keys apart, where binding 500 parameters a
 * statement cost the store's thread a third more CPU for the same rows.
 */
const SNAPSHOT_JSON_UPSERT = `INSERT INTO snapshots (sync_id, key, hash)
  SELECT @first, j.value, substr(@hashes, j.key * 8 + 1, 8) FROM json_each(@keys) AS j WHERE true
  ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash`;
/**
 * Rows compared with the snapshot (SqliteSnapshotStore.changes): the place in `@keys` of each row
 * whose key is missing, or whose stored hash is neither `@hashes`' 8 bytes for it nor their hex.
 */
const SNAPSHOT_CHANGES = `SELECT j.key, s.key IS NULL
  FROM json_each(@keys) AS j LEFT JOIN snapshots AS s ON s.sync_id = @sync AND s.key = j.value
 WHERE s.key IS NULL
    OR (s.hash IS NOT substr(@hashes, j.key * 8 + 1, 8) AND s.hash IS NOT lower(hex(substr(@hashes, j.key * 8 + 1, 8))))
 ORDER BY j.key`;
const LITTLE_ENDIAN = endianness() === 'LE';
function storedHash(value: string): string {
  return `CASE WHEN length(${value}) % 2 = 0 AND length(${value}) > 0 AND NOT (${value} GLOB '*[^0-9a-f]*') THEN unhex(${value}) ELSE ${value} END`;
}
/**
 * The statements of one snapshot write. Hex hashes (what the sync runner writes) go through one
 * multi-row statement per SNAPSHOT_ROWS rows; any other hash string in a batch sends the batch as
 * one JSON parameter.
 */
function snapshotWriteStatements(syncId: number, upserts: Array<[key: string, hash: string]>, deletes: string[]): WriteStatement[] {
  const statements: WriteStatement[] = [];
  if (upserts.every(([, hash]) => isHexHash(hash))) {
    for (let start = 0; start < upserts.length; start += SNAPSHOT_ROWS) {
      const end = Math.min(upserts.length, start + SNAPSHOT_ROWS);
      const params: Array<string | number> = [];
      for (let i = start; i < end; i++) {
        const [key, hash] = upserts[i] as [string, string];
        params.push(syncId, key, hash);
      }
      statements.push([snapshotUpsertSql(end - start), params]);
    }
  } else if (upserts.length > 0) {
    statements.push([
      `INSERT INTO snapshots (sync_id, key, hash) SELECT ?, j.value ->> 0, ${storedHash('j.value ->> 1')} FROM json_each(?) AS j WHERE true
       ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash`,
      [syncId, JSON.stringify(upserts)],
    ]);
  }
  if (deletes.length > 0) {
    statements.push(['DELETE FROM snapshots WHERE sync_id = ? AND key IN (SELECT value FROM json_each(?))', [syncId, JSON.stringify(deletes)]]);
  }
  return statements;
}
/** Finds the run while it is in the given attempt and goes on (the guard of a fenced snapshot write). */
const FENCE_SQL = `SELECT 1 FROM sync_runs WHERE id = ? AND attempt = ? AND status NOT IN (${TERMINAL_SYNC_RUN_STATUSES.map((s) => `'${s}'`).join(', ')})`;
/** Adds a written batch's delivered rows to its run's counts (see SnapshotStore.write). */
const COUNT_DELIVERED = `UPDATE sync_runs SET successful_added = successful_added + ?, successful_changed = successful_changed + ?,
  successful_removed = successful_removed + ? WHERE id = ?`;
/** ... and raises its rows read and planned to at least the run's reach at the batch (see RunReach). */
const COUNT_DELIVERED_REACHED = `UPDATE sync_runs SET successful_added = successful_added + ?, successful_changed = successful_changed + ?,
  successful_removed = successful_removed + ?, query_size = max(query_size, ?), planned_added = max(planned_added, ?),
  planned_changed = max(planned_changed, ?), planned_removed = max(planned_removed, ?), completion_ratio = max(completion_ratio, ?) WHERE id = ?`;

/** The statement that counts a fenced write's delivered rows in its run (none without both). */
function countStatements(fence: RunFence | undefined, delivered: OperationCounts | undefined, reach: RunReach | undefined): WriteStatement[] {
  if (!fence || !delivered) return [];
  const { addedCount, changedCount, removedCount } = delivered;
  if (!reach) return [[COUNT_DELIVERED, [addedCount, changedCount, removedCount, fence.runId]]];
  const { planned } = reach;
  return [
    [
      COUNT_DELIVERED_REACHED,
      [addedCount, changedCount, removedCount, reach.querySize, planned.addedCount, planned.changedCount, planned.removedCount, reach.completionRatio ?? 0, fence.runId],
    ],
  ];
}

/**
 * A snapshot write for the write worker: hex hashes under keys without `ROW_SEPARATOR` (what the
 * sync runner writes) travel packed; anything else as the statements of `snapshotWriteStatements`.
 */
function snapshotWriteTransaction(syncId: number, upserts: Array<[key: string, hash: string]>, deletes: string[]): WriteTransaction {
  const keys = new Array<string>(upserts.length);
  const hashes = new Array<string>(upserts.length);
  for (let i = 0; i < upserts.length; i++) {
    const [key, hash] = upserts[i] as [string, string];
    if (!isHexHash(hash) || key.includes(ROW_SEPARATOR)) return { rows: null, statements: snapshotWriteStatements(syncId, upserts, deletes) };
    keys[i] = key;
    hashes[i] = hash;
  }
  const rest = upserts.length % SNAPSHOT_ROWS;
  // Two joined strings, not a pair per row: the worker gets them as bytes (see SqliteWriteWorker.run).
  const rows: PackedRows | null =
    upserts.length === 0
      ? null
      : {
          sql: snapshotUpsertSql(SNAPSHOT_ROWS),
          lastSql: rest === 0 ? null : snapshotUpsertSql(rest),
          rowsPerStatement: SNAPSHOT_ROWS,
          first: syncId,
          count: upserts.length,
          keys: keys.join(ROW_SEPARATOR),
          values: hashes.join(ROW_SEPARATOR),
          hashes: null,
        };
  return { rows, statements: snapshotWriteStatements(syncId, [], deletes) };
}

/** Rows in columns as [key, hex hash] pairs. */
function snapshotPairs(rows: SnapshotRows): Array<[string, string]> {
  return rows.keys.map((key, i) => [key, hashText(rows.hashes[2 * i] as number, rows.hashes[2 * i + 1] as number)]);
}

/**
 * Rows in columns for the write worker: the keys as one JSON array and the hashes as words, which
 * the worker binds as one BLOB: no string per hash is built on this thread, no parameter per row
 * is bound on the worker's (SNAPSHOT_JSON_UPSERT).
 */
function packedColumns(syncId: number, rows: SnapshotRows, deletes: string[]): WriteTransaction {
  const count = rows.keys.length;
  const packed: PackedRows | null =
    count === 0
      ? null
      : {
          sql: SNAPSHOT_JSON_UPSERT,
          lastSql: null,
          rowsPerStatement: count,
          first: syncId,
          count,
          keys: JSON.stringify(rows.keys),
          values: null,
          hashes: rows.hashes.slice(0, 2 * count),
        };
  return { rows: packed, statements: snapshotWriteStatements(syncId, [], deletes) };
}

/** Whether `hash` is what the runner writes, lowercase hex of whole bytes (stored as its bytes); checked without a regular expression per row. */
function isHexHash(hash: string): boolean {
  const n = hash.length;
  if (n === 0 || (n & 1) !== 0) return false;
  for (let i = 0; i < n; i++) {
    const c = hash.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

export interface SqliteSnapshotStoreOptions {
  /** The store's connection (main thread). */
  db: SqliteDatabase;
  /**
   * Commits snapshot writes and reads bulk pages on a second connection, off the main thread (null
   * for `:memory:`: everything runs on `db`). The store starts and closes it.
   */
  writeWorker: SqliteWriteWorker | null;
  /** Refuses the writes of a run's attempt once another worker took the run over. */
  fence: SqliteRunFence;
  /** The store's statement for `sql`, prepared once per text (the SQL of most calls depends on their arguments). */
  statement: (sql: string) => SqliteStatement;
  /** Lockstep's own errors pass through; SQLite's become the store's error naming the file. */
  wrap: (error: unknown) => unknown;
  /** The store's transactions on `db` (they wrap errors the same way). */
  transactions: SqliteTransactions;
}

/** A page as the page query answers it (count, keys, hashes, last key), in bulk form. */
function bulkPage(row: unknown[]): SnapshotPage {
  const [count, keys, hashes] = row as [number, string | null, string | null];
  return { count, keys: keys ?? '', hashes: hashes ?? '' };
}

/**
 * Snapshots of at least this many entries (as the caller counted them) are paged in two halves at
 * once (see pages): below it, the whole read takes a few tens of milliseconds.
 */
const SPLIT_ROWS = 100_000;
/** ... and at most this many: the second half's pages wait in memory (with the main connection's page cache, some 27 MB more at 1M entries). */
const SPLIT_MAX_ROWS = 2_000_000;

export class SqliteSnapshotStore implements SnapshotStore {
  private readonly writeWorker: SqliteWriteWorker | null;
  private readonly fence: SqliteRunFence;
  private readonly statement: (sql: string) => SqliteStatement;
  private readonly wrap: (error: unknown) => unknown;
  private readonly transactions: SqliteTransactions;
  private readonly firstKeys: SqliteStatement;
  private readonly nextKeys: SqliteStatement;
  private readonly clearAll: SqliteStatement;
  private readonly countAll: SqliteStatement;
  /** The key at a place in the snapshot's order (a few ms at 500,000: the key's index is walked, not the rows). */
  private readonly middleKey: SqliteStatement;

  constructor(options: SqliteSnapshotStoreOptions) {
    const { db } = options;
    this.writeWorker = options.writeWorker;
    this.fence = options.fence;
    this.statement = options.statement;
    this.wrap = options.wrap;
    this.transactions = options.transactions;
    this.firstKeys = db.prepare('SELECT key FROM snapshots WHERE sync_id = ? ORDER BY key LIMIT ?');
    this.nextKeys = db.prepare('SELECT key FROM snapshots WHERE sync_id = ? AND key > ? ORDER BY key LIMIT ?');
    this.clearAll = db.prepare('DELETE FROM snapshots WHERE sync_id = ?');
    this.countAll = db.prepare('SELECT COUNT(*) AS count FROM snapshots WHERE sync_id = ?');
    this.middleKey = db.prepare('SELECT key FROM snapshots WHERE sync_id = ? ORDER BY key LIMIT 1 OFFSET ?');
  }

  // --- used by SqliteStore inside its own transactions

  /** Drops what is kept for a sync that was deleted, or that delivers elsewhere or keys its rows otherwise now (synchronous; the caller holds the write transaction). */
  dropSync(syncId: number): void {
    // A deleted sync's id is never used again, so its snapshot can never be read.
    this.clearAll.run(syncId);
    this.statement('DELETE FROM record_ids WHERE sync_id = ?').run(syncId);
    this.statement('DELETE FROM snapshot_cursors WHERE sync_id = ?').run(syncId);
  }

  // --- the port

  async get(syncId: number, keys: string[]): Promise<Map<string, string>> {
    if (keys.length === 0) return new Map();
    // The keys travel as one JSON array (one bound parameter, parsed by SQLite), probed one by one
    // against the primary key: a single statement for any number of keys.
    return this.transactions.read(() => {
      const found = new Map<string, string>();
      const sql = `SELECT s.key, ${SNAPSHOT_HASH} AS hash FROM json_each(?) AS j CROSS JOIN snapshots AS s WHERE s.sync_id = ? AND s.key = j.value`;
      for (const row of this.statement(sql).all(JSON.stringify(keys), syncId) as Array<{ key: string; hash: string }>) {
        found.set(row.key, row.hash);
      }
      return found;
    });
  }

  async changes(syncId: number, rows: SnapshotRows): Promise<SnapshotChanges> {
    const count = rows.keys.length;
    const changes: SnapshotChanges = { added: [], changed: [] };
    if (count === 0) return changes;
    // The keys as one JSON array and their hashes as one BLOB (8 bytes each, big end first, as the
    // snapshot keeps them); SQLite answers only the rows that differ, where reading every stored
    // hash back as a string cost three times the CPU (10M keys: about 17 s against 6 s).
    const words = rows.hashes.slice(0, 2 * count);
    const hashes = Buffer.from(words.buffer, words.byteOffset, words.byteLength);
    if (LITTLE_ENDIAN) hashes.swap32();
    const found = this.transactions.read(() => this.statement(SNAPSHOT_CHANGES).raw(true).all({ keys: JSON.stringify(rows.keys), sync: syncId, hashes }) as Array<[number, number]>);
    for (const [i, added] of found) (added ? changes.added : changes.changed).push(i);
    return changes;
  }

  async write(
    syncId: number,
    upserts: Array<[key: string, hash: string]> | SnapshotRows,
    deletes: string[],
    fence?: RunFence,
    delivered?: OperationCounts,
    reach?: RunReach,
  ): Promise<void> {
    const columns = Array.isArray(upserts) ? null : upserts;
    if ((columns ? columns.keys.length : (upserts as unknown[]).length) === 0 && deletes.length === 0) return;
    // The run's delivered counts grow in the same transaction (the fence's guard has checked its attempt).
    const counted = countStatements(fence, delivered, reach);
    if (this.writeWorker === null) {
      const statements = snapshotWriteStatements(syncId, columns ? snapshotPairs(columns) : (upserts as Array<[string, string]>), deletes);
      this.transactions.write(() => {
        this.fence.check(fence);
        for (const [sql, params] of [...statements, ...counted]) this.statement(sql).run(...params);
      });
      return;
    }
    // A file store commits snapshot writes on its worker's connection, off the main thread; the
    // promise settles once the transaction has committed there. The fence is checked in that
    // transaction, so a run taken over meanwhile writes nothing.
    const guard: WriteGuard | null = fence ? { sql: FENCE_SQL, params: [fence.runId, fence.attempt] } : null;
    try {
      const transaction = columns ? packedColumns(syncId, columns, deletes) : snapshotWriteTransaction(syncId, upserts as Array<[string, string]>, deletes);
      await this.writeWorker.run({ ...transaction, statements: [...transaction.statements, ...counted], guard });
    } catch (error) {
      if (fence && (error as { code?: unknown }).code === GUARD_FAILED) throw this.transactions.read(() => this.fence.error(fence));
      throw this.wrap(error);
    }
  }

  async *keys(syncId: number, batchSize: number): AsyncIterable<string[]> {
    const size = Math.max(1, Math.floor(batchSize));
    let last: string | null = null;
    for (;;) {
      const keys: string[] = this.keysAfter(syncId, last, size);
      if (keys.length === 0) return;
      last = keys[keys.length - 1] ?? null;
      yield keys;
      if (keys.length < size) return;
    }
  }

  async *pages(syncId: number, pageSize: number, rows = 0): AsyncIterable<SnapshotPage> {
    const size = Math.max(1, Math.floor(pageSize));
    // One row per page, aggregated by SQLite: building a JavaScript string per key and per hash cost
    // ~0.65 s per million entries, two strings per page ~0.25 s. Both aggregates take the rows in
    // one pass, so keys and hashes line up (their order within a page does not matter; an ORDER BY
    // in the aggregates would sort each page again and cost as much as the strings saved).
    const pageSql = (where: string) =>
      `SELECT count(*), group_concat(key, char(10)),
              group_concat(CASE WHEN typeof(hash) = 'blob' AND length(hash) = 8 THEN hex(hash)
                                WHEN typeof(hash) = 'text' AND length(hash) = 16 AND hash NOT GLOB '*[^0-9a-f]*' THEN hash
                                ELSE '----------------' END, ''),
              max(key)
         FROM (SELECT key, hash FROM snapshots WHERE ${where} ORDER BY key LIMIT ?)`;
    const next = this.statement(pageSql('sync_id = ? AND key > ?')).raw(true);
    // A file store reads the pages on its worker's thread, while this one takes in the ones before.
    // A large snapshot is read in two halves at once: the first there, handed on as its pages
    // come, the second here, its pages kept until the first half's are all handed on. Between its
    // pages, this thread lets the process's other work (and the first half's pages) in.
    if (this.writeWorker) {
      const split = rows >= SPLIT_ROWS && rows <= SPLIT_MAX_ROWS;
      const middle = split ? (this.transactions.read(() => this.middleKey.get(syncId, rows >> 1)) as { key: string } | undefined)?.key : undefined;
      if (middle === undefined) {
        try {
          for await (const row of this.writeWorker.pages(pageSql('sync_id = ?'), pageSql('sync_id = ? AND key > ?'), syncId, size)) {
            if ((row[0] as number) > 0) yield bulkPage(row);
          }
        } catch (error) {
          throw this.wrap(error);
        }
        return;
      }
      const firstHalf = this.writeWorker.pages(
        pageSql('sync_id = @sync AND key < @middle'),
        pageSql('sync_id = @sync AND key < @middle AND key > ?'),
        { sync: syncId, middle },
        size,
      );
      const arrived: SnapshotPage[] = [];
      const state: { ended: boolean; failed: unknown; stopped: boolean; wake: (() => void) | null } = { ended: false, failed: null, stopped: false, wake: null };
      const woken = () => {
        const wake = state.wake;
        state.wake = null;
        wake?.();
      };
      const taking = (async () => {
        try {
          for await (const row of firstHalf) {
            if (state.stopped) return;
            if ((row[0] as number) > 0) arrived.push(bulkPage(row));
            woken();
          }
        } catch (error) {
          state.failed = error;
        } finally {
          state.ended = true;
          woken();
        }
      })();
      const second: SnapshotPage[] = [];
      // The first half's pages that have come, in order.
      function* arrivedPages(): Generator<SnapshotPage> {
        for (let page = arrived.shift(); page; page = arrived.shift()) yield page;
      }
      try {
        const start = this.statement(pageSql('sync_id = ? AND key >= ?')).raw(true);
        for (let after: string | null = null; ; ) {
          const from: string | null = after;
          const row = this.transactions.read(() => (from === null ? start.get(syncId, middle, size) : next.get(syncId, from, size))) as unknown[];
          if ((row[0] as number) > 0) second.push(bulkPage(row));
          yield* arrivedPages();
          const last = row[3] as string | null;
          if ((row[0] as number) < size || last === null) break;
          after = last;
          await new Promise((resolve) => setImmediate(resolve));
        }
        for (;;) {
          yield* arrivedPages();
          if (state.failed) throw this.wrap(state.failed);
          if (state.ended) break;
          await new Promise<void>((resolve) => (state.wake = resolve));
        }
        for (const page of second) yield page;
      } finally {
        state.stopped = true;
        await taking;
      }
      return;
    }
    const first = this.statement(pageSql('sync_id = ?')).raw(true);
    let after: string | null = null;
    for (;;) {
      const from: string | null = after;
      const [count, keys, hashes, last] = this.transactions.read(() => (from === null ? first.get(syncId, size) : next.get(syncId, from, size))) as [
        number,
        string | null,
        string | null,
        string | null,
      ];
      if (count === 0) return;
      yield { count, keys: keys ?? '', hashes: hashes ?? '' };
      if (count < size || last === null) return;
      after = last;
    }
  }

  /** One page of keys after `after` (keyset pagination: stable while the snapshot changes between pages). */
  private keysAfter(syncId: number, after: string | null, size: number): string[] {
    const rows = this.transactions.read(() => (after === null ? this.firstKeys.all(syncId, size) : this.nextKeys.all(syncId, after, size)) as Array<{ key: string }>);
    return rows.map((r) => r.key);
  }

  async recordIdsGet(syncId: number, keys: string[]): Promise<Map<string, string>> {
    if (keys.length === 0) return new Map();
    return this.transactions.read(() => {
      const found = new Map<string, string>();
      const sql = 'SELECT r.key, r.record_id FROM json_each(?) AS j CROSS JOIN record_ids AS r WHERE r.sync_id = ? AND r.key = j.value';
      for (const row of this.statement(sql).all(JSON.stringify(keys), syncId) as Array<{ key: string; record_id: string }>) {
        found.set(row.key, row.record_id);
      }
      return found;
    });
  }

  async recordIdsWrite(syncId: number, ids: Array<[key: string, id: string]>, deletes: string[], fence?: RunFence): Promise<void> {
    if (ids.length === 0 && deletes.length === 0) return;
    this.transactions.write(() => {
      this.fence.check(fence);
      if (ids.length > 0) {
        this.statement(
          `INSERT INTO record_ids (sync_id, key, record_id) SELECT ?, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') FROM json_each(?) AS j WHERE true
           ON CONFLICT (sync_id, key) DO UPDATE SET record_id = excluded.record_id`,
        ).run(syncId, JSON.stringify(ids));
      }
      if (deletes.length > 0) {
        this.statement('DELETE FROM record_ids WHERE sync_id = ? AND key IN (SELECT value FROM json_each(?))').run(syncId, JSON.stringify(deletes));
      }
    });
  }

  async prepareWrites(): Promise<void> {
    await this.writeWorker?.ready();
  }

  async clear(syncId: number, fence?: RunFence): Promise<void> {
    this.transactions.write(() => {
      this.fence.check(fence);
      this.clearAll.run(syncId);
      this.statement('DELETE FROM snapshot_cursors WHERE sync_id = ?').run(syncId);
    });
  }

  async cursorGet(syncId: number): Promise<SnapshotCursor | null> {
    const row = await this.transactions.read(() => this.statement('SELECT value, runs FROM snapshot_cursors WHERE sync_id = ?').get(syncId) as { value: string; runs: number } | undefined);
    return row ? { value: parseCursorValue(row.value), runs: row.runs } : null;
  }

  async cursorSet(syncId: number, cursor: SnapshotCursor | null, fence?: RunFence): Promise<void> {
    this.transactions.write(() => {
      this.fence.check(fence);
      if (cursor === null) this.statement('DELETE FROM snapshot_cursors WHERE sync_id = ?').run(syncId);
      else {
        this.statement('INSERT INTO snapshot_cursors (sync_id, value, runs) VALUES (?, ?, ?) ON CONFLICT (sync_id) DO UPDATE SET value = excluded.value, runs = excluded.runs').run(
          syncId,
          JSON.stringify(cursor.value),
          cursor.runs,
        );
      }
    });
  }

  async count(syncId: number): Promise<number> {
    return this.transactions.read(() => (this.countAll.get(syncId) as { count: number }).count);
  }
}

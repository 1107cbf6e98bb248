/**
 * The snapshot role of the PostgreSQL store (SnapshotStore): per sync, the hash of each delivered
 * key, the model's change cursor and the destination's record ids, on the PostgresStore's
 * database. Hashes of 16 hex digits (what the sync runner writes) are kept as 8 bytes, any other
 * hash as text. A fenced write goes through the run fence the run queue's writes go through too.
 */
import { endianness } from 'node:os';
import { LockstepError } from '../../core/errors.js';
import { hashText } from '../../core/hash-text.js';
import type { RunFence, RunReach, SnapshotChanges, SnapshotCursor, SnapshotPage, SnapshotRows, SnapshotStore } from '../../core/ports.js';
import type { OperationCounts } from '../../core/runs.js';
import { parseCursorValue } from '../rows.js';
import { errorCode, readText, storedText, textList, textListSql, textListValue, type PostgresDatabase, type Queryable } from './postgres-database.js';
import type { PostgresRunFence, Statement } from './postgres-run-fence.js';

export class PostgresSnapshotStore implements SnapshotStore {
  /** Table names, qualified with the quoted schema. */
  private readonly snapshots: string;
  private readonly recordIds: string;
  private readonly cursors: string;

  constructor(
    private readonly db: PostgresDatabase,
    /** Runs a write's statements, refused once another worker took the fenced run over. */
    private readonly fence: PostgresRunFence,
  ) {
    this.snapshots = `${db.schema}.snapshots`;
    this.recordIds = `${db.schema}.record_ids`;
    this.cursors = `${db.schema}.snapshot_cursors`;
  }

  // --- used by PostgresStore inside its own transactions

  /** Drops what is kept for a sync that was deleted, or that delivers elsewhere or keys its rows otherwise now, in the caller's transaction `q`. */
  async dropSync(q: Queryable, syncId: number): Promise<void> {
    // A deleted sync's id is never used again, so its snapshot can never be read.
    await q.query(`DELETE FROM ${this.snapshots} WHERE sync_id = $1`, [syncId]);
    await q.query(`DELETE FROM ${this.recordIds} WHERE sync_id = $1`, [syncId]);
    await q.query(`DELETE FROM ${this.cursors} WHERE sync_id = $1`, [syncId]);
  }

  // --- the port

  async get(syncId: number, keys: string[]): Promise<Map<string, string>> {
    if (keys.length === 0) return new Map();
    const list = textList(keys);
    const rows = await this.db.query<{ key: string; hash: string }>(
      `SELECT key, COALESCE(encode(hash, 'hex'), hash_text) AS hash FROM ${this.snapshots}
       WHERE sync_id = $1 AND key = ANY(${textListSql(list, 2)})`,
      [syncId, textListValue(list)],
    );
    const found = new Map<string, string>();
    for (const row of rows) found.set(readText(row.key), readText(row.hash));
    return found;
  }

  async changes(syncId: number, rows: SnapshotRows): Promise<SnapshotChanges> {
    const changes: SnapshotChanges = { added: [], changed: [] };
    if (rows.keys.length === 0) return changes;
    // Compared by PostgreSQL: only the rows that differ come back (a hash kept as text never equals one).
    const list = textList(rows.keys);
    const found = await this.db.query<{ n: number; added: boolean }>(
      `SELECT u.n::integer AS n, s.key IS NULL AS added
         FROM unnest(${textListSql(list, 2)}) WITH ORDINALITY AS u(key, n)
         LEFT JOIN ${this.snapshots} AS s ON s.sync_id = $1 AND s.key = u.key
        WHERE s.key IS NULL OR s.hash IS DISTINCT FROM substring($3::bytea FROM u.n::integer * 8 - 7 FOR 8)
        ORDER BY u.n`,
      [syncId, textListValue(list), hashBytes(rows)],
    );
    for (const row of found) (row.added ? changes.added : changes.changed).push(row.n - 1);
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
    const count = columns ? columns.keys.length : (upserts as unknown[]).length;
    if (count === 0 && deletes.length === 0) return;
    const write = (rows: Array<[string, string]> | SnapshotRows) => {
      const statements: Statement[] = [];
      if (count > 0) statements.push(Array.isArray(rows) ? this.snapshotPairsUpsert(syncId, rows) : this.snapshotColumnsUpsert(syncId, rows));
      if (deletes.length > 0) statements.push(this.deleteKeys(this.snapshots, syncId, deletes));
      return fence && delivered ? this.fence.writeCounted(statements, fence, delivered, reach) : this.fence.write(statements, fence);
    };
    try {
      await write(columns ?? (upserts as Array<[string, string]>));
    } catch (error) {
      // The same key twice in one write (one statement cannot upsert a row twice): the last wins.
      if (!isCardinalityViolation(error)) throw error;
      await write(lastOfEachKey(columns ? columnPairs(columns) : (upserts as Array<[string, string]>)));
    }
  }

  async *keys(syncId: number, batchSize: number): AsyncIterable<string[]> {
    const size = Math.max(1, Math.floor(batchSize));
    // Keyset pagination: stable while the snapshot changes between pages.
    let after: string | null = null;
    for (;;) {
      const rows: Array<{ key: string }> =
        after === null
          ? await this.db.query(`SELECT key FROM ${this.snapshots} WHERE sync_id = $1 ORDER BY key LIMIT $2`, [syncId, size])
          : await this.db.query(`SELECT key FROM ${this.snapshots} WHERE sync_id = $1 AND key > $3 ORDER BY key LIMIT $2`, [syncId, size, after]);
      if (rows.length === 0) return;
      after = (rows[rows.length - 1] as { key: string }).key;
      yield rows.map((r) => readText(r.key));
      if (rows.length < size) return;
    }
  }

  async *pages(syncId: number, pageSize: number): AsyncIterable<SnapshotPage> {
    const size = Math.max(1, Math.floor(pageSize));
    // One row per page, aggregated by PostgreSQL: both aggregates take the page's rows in one pass,
    // so keys and hashes line up.
    const pageSql = (where: string) =>
      `SELECT count(*) AS count, string_agg(key, E'\\n') AS keys,
              string_agg(CASE WHEN length(hash) = 8 THEN encode(hash, 'hex') ELSE '----------------' END, '') AS hashes,
              max(key) AS last
         FROM (SELECT key, hash FROM ${this.snapshots} WHERE ${where} ORDER BY key LIMIT $2) AS page`;
    let after: string | null = null;
    for (;;) {
      const rows: Array<{ count: number; keys: string | null; hashes: string | null; last: string | null }> =
        after === null
          ? await this.db.query(pageSql('sync_id = $1'), [syncId, size])
          : await this.db.query(pageSql('sync_id = $1 AND key > $3'), [syncId, size, after]);
      const page = rows[0];
      if (!page || page.count === 0) return;
      yield { count: page.count, keys: readText(page.keys ?? ''), hashes: page.hashes ?? '' };
      if (page.count < size || page.last === null) return;
      after = page.last;
    }
  }

  async clear(syncId: number, fence?: RunFence): Promise<void> {
    await this.fence.write(
      [
        [`DELETE FROM ${this.snapshots} WHERE sync_id = $1`, [syncId]],
        [`DELETE FROM ${this.cursors} WHERE sync_id = $1`, [syncId]],
      ],
      fence,
    );
  }

  async cursorGet(syncId: number): Promise<SnapshotCursor | null> {
    const rows = await this.db.query<{ value: string; runs: number }>(`SELECT value, runs FROM ${this.cursors} WHERE sync_id = $1`, [syncId]);
    const row = rows[0];
    return row ? { value: parseCursorValue(row.value), runs: Number(row.runs) } : null;
  }

  async cursorSet(syncId: number, cursor: SnapshotCursor | null, fence?: RunFence): Promise<void> {
    await this.fence.write(
      [
        cursor === null
          ? [`DELETE FROM ${this.cursors} WHERE sync_id = $1`, [syncId]]
          : [
              `INSERT INTO ${this.cursors} (sync_id, value, runs) VALUES ($1, $2, $3) ON CONFLICT (sync_id) DO UPDATE SET value = EXCLUDED.value, runs = EXCLUDED.runs`,
              [syncId, JSON.stringify(cursor.value), cursor.runs],
            ],
      ],
      fence,
    );
  }

  async count(syncId: number): Promise<number> {
    const rows = await this.db.query<{ count: number }>(`SELECT count(*) AS count FROM ${this.snapshots} WHERE sync_id = $1`, [syncId]);
    return rows[0]?.count ?? 0;
  }

  async recordIdsGet(syncId: number, keys: string[]): Promise<Map<string, string>> {
    if (keys.length === 0) return new Map();
    const list = textList(keys);
    const rows = await this.db.query<{ key: string; record_id: string }>(
      `SELECT key, record_id FROM ${this.recordIds} WHERE sync_id = $1 AND key = ANY(${textListSql(list, 2)})`,
      [syncId, textListValue(list)],
    );
    const found = new Map<string, string>();
    for (const row of rows) found.set(readText(row.key), readText(row.record_id));
    return found;
  }

  async recordIdsWrite(syncId: number, ids: Array<[key: string, id: string]>, deletes: string[], fence?: RunFence): Promise<void> {
    if (ids.length === 0 && deletes.length === 0) return;
    const write = (pairs: Array<[string, string]>) => {
      const statements: Statement[] = [];
      if (pairs.length > 0) {
        statements.push([
          `INSERT INTO ${this.recordIds} (sync_id, key, record_id)
           SELECT $1, u.key, u.id FROM unnest($2::text[], $3::text[]) AS u(key, id)
           ON CONFLICT (sync_id, key) DO UPDATE SET record_id = excluded.record_id`,
          [syncId, pairs.map(([key]) => storedText(key)), pairs.map(([, id]) => storedText(id))],
        ]);
      }
      if (deletes.length > 0) statements.push(this.deleteKeys(this.recordIds, syncId, deletes));
      return this.fence.write(statements, fence);
    };
    try {
      await write(ids);
    } catch (error) {
      if (!isCardinalityViolation(error)) throw error;
      await write(lastOfEachKey(ids));
    }
  }

  private deleteKeys(table: string, syncId: number, keys: string[]): Statement {
    const list = textList(keys);
    return [`DELETE FROM ${table} WHERE sync_id = $1 AND key = ANY(${textListSql(list, 2)})`, [syncId, textListValue(list)]];
  }

  /**
   * Delivered rows in columns: the keys joined in one text and the hashes as one bytea of 8 bytes
   * per row, split by PostgreSQL; no string per row is built here.
   */
  private snapshotColumnsUpsert(syncId: number, rows: SnapshotRows): Statement {
    return this.snapshotBytesUpsert(syncId, textList(rows.keys), hashBytes(rows));
  }

  private snapshotBytesUpsert(syncId: number, keys: ReturnType<typeof textList>, hashes: Buffer): Statement {
    return [
      `INSERT INTO ${this.snapshots} (sync_id, key, hash, hash_text)
       SELECT $1, u.key, substring($3::bytea FROM u.n::integer * 8 - 7 FOR 8), NULL
       FROM unnest(${textListSql(keys, 2)}) WITH ORDINALITY AS u(key, n)
       ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash, hash_text = NULL`,
      [syncId, textListValue(keys), hashes],
    ];
  }

  /** [key, hash] pairs: 16 hex digits each (what the runner writes) go as bytes; any other hash as text. */
  private snapshotPairsUpsert(syncId: number, pairs: Array<[string, string]>): Statement {
    if (pairs.every(([, hash]) => isHex16(hash))) {
      return this.snapshotBytesUpsert(syncId, textList(pairs.map(([key]) => key)), Buffer.from(pairs.map(([, hash]) => hash).join(''), 'hex'));
    }
    return [
      `INSERT INTO ${this.snapshots} (sync_id, key, hash, hash_text)
       SELECT $1, u.key, CASE WHEN u.hex THEN decode(u.hash, 'hex') END, CASE WHEN u.hex THEN NULL ELSE u.hash END
       FROM (SELECT key, hash, hash ~ '^([0-9a-f]{2})+$' AS hex FROM unnest($2::text[], $3::text[]) AS v(key, hash)) AS u
       ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash, hash_text = excluded.hash_text`,
      [syncId, pairs.map(([key]) => storedText(key)), pairs.map(([, hash]) => storedText(hash))],
    ];
  }
}

/** Whether `hash` is 16 lowercase hex digits, checked without a regular expression per row. */
function isHex16(hash: string): boolean {
  if (hash.length !== 16) return false;
  for (let i = 0; i < 16; i++) {
    const c = hash.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function columnPairs(rows: SnapshotRows): Array<[string, string]> {
  return rows.keys.map((key, i) => [key, hashText(rows.hashes[2 * i] as number, rows.hashes[2 * i + 1] as number)]);
}

/** Pairs with each key once, keeping its last value. */
function lastOfEachKey(pairs: Array<[string, string]>): Array<[string, string]> {
  return [...new Map(pairs).entries()];
}

/** One statement would upsert the same row twice. */
function isCardinalityViolation(error: unknown): boolean {
  return error instanceof LockstepError && errorCode(error.cause) === '21000';
}

/** Rows' hashes as one bytea, 8 bytes a row: each word big-endian, high word first (the bytes of the 16 hex digits hashText spells). */
function hashBytes(rows: SnapshotRows): Buffer {
  const count = rows.keys.length;
  const hashes = Buffer.alloc(8 * count);
  hashes.set(new Uint8Array(rows.hashes.buffer, rows.hashes.byteOffset, 8 * count));
  if (endianness() === 'LE') hashes.swap32();
  return hashes;
}

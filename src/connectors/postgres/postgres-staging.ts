/**
 * The planner's staging table (see postgres-planner.ts): its primary key, which finds null and
 * duplicate keys, and a first run's staging table built alongside the run's delivery.
 *
 * A first run sends every row of the model. Building its staging table (a copy of the model and
 * its primary key) before the first row goes costs a large share of the run; built alongside, on a
 * connection of its own, it costs little more than the delivery alone. Both read the model in one
 * exported snapshot (`pg_export_snapshot`), so the staging table holds exactly the rows that
 * travel. The delivery reads the model in key order, one row per key and none with a null key
 * (`DISTINCT ON`), which is what the staging table keeps: when the model has no such rows (its
 * copy takes its primary key at once) both are the same rows; otherwise the staging table is
 * copied again through the delivery's own query, in the same snapshot and the same plan, which
 * keeps the same row of each repeated key.
 *
 * The staging table is committed once the delivery has taken the snapshot (a row of it was
 * delivered, or the delivery ended): the snapshot lives as long as the transaction that exported
 * it. The planner records the table (and the watermark delivered meanwhile) once it is committed;
 * a run stopped before then leaves nothing recorded, and the next attempt drops what it left and
 * starts a first run again.
 */
import type pg from 'pg';
import type { Value } from '../../core/ports.js';
import { duplicateKeyRefusal, nullKeyRefusal } from '../planner-tables.js';

export const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * Planner tables leave a tenth of each page free, so that updating a row's values keeps the new
 * version on its page without a new index entry (a HOT update): a run that changes rows spread
 * over the whole key range rewrites far fewer pages.
 */
export const PLANNER_FILLFACTOR = 90;

/** SQLSTATEs: unique_violation, not_null_violation. */
const UNIQUE_VIOLATION = '23505';
const NOT_NULL_VIOLATION = '23502';

export type Refusal = { key: Value[]; reason: string };

/** A value as the engine's keys hold it (pg gives bigints as strings already; dates as Date never, see postgresTypes). */
export function plain(value: unknown): Value {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

/**
 * Adds the staging table's primary key, in the caller's transaction. When it refuses a null or a
 * repeated key, `refuse` takes those rows out (and says which) and the key is tried again; nulls
 * are refused first, then duplicates.
 */
export async function addPrimaryKey(
  client: pg.Client,
  table: string,
  name: string,
  keys: readonly string[],
  refuse: (found: 'null' | 'duplicate') => Promise<void>,
): Promise<void> {
  for (let tries = 0; ; tries++) {
    await client.query('SAVEPOINT lockstep_key');
    try {
      await client.query(`ALTER TABLE ${table} ADD CONSTRAINT ${quote(name)} PRIMARY KEY (${keys.map(quote).join(', ')})`);
      await client.query('RELEASE SAVEPOINT lockstep_key');
      return;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (tries === 2 || (code !== NOT_NULL_VIOLATION && code !== UNIQUE_VIOLATION)) throw error;
      await client.query('ROLLBACK TO SAVEPOINT lockstep_key');
      await refuse(code === NOT_NULL_VIOLATION ? 'null' : 'duplicate');
    }
  }
}

/** Deletes the staged rows (those of `where`, when given) with a null key column, and refuses them. */
export async function refuseNullKeys(client: pg.Client, table: string, keys: readonly string[], where = ''): Promise<Refusal[]> {
  const nulls = await client.query({
    text: `DELETE FROM ${table} WHERE ${where}(${keys.map((k) => `${quote(k)} IS NULL`).join(' OR ')}) RETURNING ${keys.map(quote).join(', ')}`,
    rowMode: 'array',
  });
  return (nulls.rows as Value[][]).map((key) => nullKeyRefusal(keys, key.map(plain)));
}

/**
 * Settings under which the delivery's read and the staging table's copy read the model alike: in
 * one process, and each scan from the start of its table (not joining another scan of it midway).
 */
export const ONE_ORDER = 'SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL synchronize_seqscans = off';

/** What a staging table built alongside the delivery holds: its rows, and the model's rows it refused. */
export interface AlongsideCount {
  rows: number;
  refused: Refusal[];
}

/** How a first run's staging table is built (see StagingAlongside). */
export interface AlongsideSpec {
  /** The model's query, and its key columns. */
  query: string;
  keys: readonly string[];
  /** The staging table and the table of rejected keys (schema-qualified, quoted), and the staging table's key's name. */
  staging: string;
  rejected: string;
  primaryKey: string;
}

/**
 * The delivery's read of a first run: the model's rows in key order, one per key, none with a
 * null key. Read in the exported snapshot, and copied into the staging table when rows repeat.
 */
export function firstRunQuery(query: string, keys: readonly string[]): string {
  const keyList = keys.map((k) => `lockstep_model.${quote(k)}`).join(', ');
  return (
    `SELECT DISTINCT ON (${keyList}) * FROM (\n${query}\n) AS lockstep_model ` +
    `WHERE ${keys.map((k) => `lockstep_model.${quote(k)} IS NOT NULL`).join(' AND ')} ORDER BY ${keyList}`
  );
}

/**
 * A first run's staging table, built on its own connection while the run delivers (see the top of
 * this file). `snapshot` is what the delivery reads in; `counted` resolves once the table is
 * built (its rows and the refused ones, for the run's record); `built` once it is committed,
 * which waits for `release()` (the delivery took the snapshot).
 */
export class StagingAlongside {
  readonly counted: Promise<AlongsideCount>;
  readonly built: Promise<AlongsideCount>;
  /** The builder's error, once it failed. */
  failure: unknown = null;
  /** The table is committed, or the builder failed. */
  settled = false;
  private released!: () => void;
  private readonly release$ = new Promise<void>((resolve) => {
    this.released = resolve;
  });

  private constructor(
    private readonly client: pg.Client,
    readonly snapshot: string,
    spec: AlongsideSpec,
  ) {
    this.counted = this.build(spec);
    this.built = this.counted.then(async (count) => {
      await this.release$;
      await this.client.query('COMMIT');
      return count;
    });
    this.built.then(
      () => {
        this.settled = true;
      },
      (error: unknown) => {
        this.failure = error;
        this.settled = true;
      },
    );
    this.counted.catch(() => undefined);
  }

  /**
   * Opens the builder's transaction on `client` (a connection of its own, ended by close()) and
   * exports its snapshot; the build starts at once.
   */
  static async start(client: pg.Client, spec: AlongsideSpec): Promise<StagingAlongside> {
    // One process reads the model, from the start of each table, as the delivery does: rows of a
    // repeated key come to both in one order.
    await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; ${ONE_ORDER}`);
    const snapshot = (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]?.id as string;
    return new StagingAlongside(client, snapshot, spec);
  }

  /** The delivery took the snapshot: the staging table may be committed once built. */
  release(): void {
    this.released();
  }

  /** Ends the builder's connection: what it did not commit is rolled back. */
  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  private async build(spec: AlongsideSpec): Promise<AlongsideCount> {
    const { client } = this;
    const { query, keys, staging, rejected, primaryKey } = spec;
    const keyList = keys.map(quote).join(', ');
    const copy = (select: string) => client.query(`CREATE TABLE ${staging} WITH (fillfactor = ${PLANNER_FILLFACTOR}) AS ${select}`);
    // Tables an earlier attempt left: the planner's own connection may be dropping them in its
    // transaction, which this waits for.
    await client.query(`DROP TABLE IF EXISTS ${staging}, ${rejected}`);
    let rows = (await copy(`SELECT * FROM (\n${query}\n) AS lockstep_model`)).rowCount ?? 0;
    const refused: Refusal[] = [];
    await addPrimaryKey(client, staging, primaryKey, keys, async (found) => {
      if (found === 'null') {
        const nulls = await refuseNullKeys(client, staging, keys);
        refused.push(...nulls);
        rows -= nulls.length;
        return;
      }
      // The copy through the delivery's query leaves out null keys too (PostgreSQL may find the
      // duplicates first): they are refused here.
      refused.push(...(await refuseNullKeys(client, staging, keys)));
      const repeated = await client.query({ text: `SELECT ${keyList}, count(*) - 1 FROM ${staging} GROUP BY ${keyList} HAVING count(*) > 1`, rowMode: 'array' });
      for (const row of repeated.rows as Value[][]) {
        const key = row.slice(0, keys.length).map(plain);
        for (let i = 0; i < Number(row[keys.length]); i++) refused.push(duplicateKeyRefusal(key));
      }
      await client.query(`DROP TABLE ${staging}`);
      rows = (await copy(firstRunQuery(query, keys))).rowCount ?? 0;
    });
    await client.query(`CREATE TABLE ${rejected} AS SELECT ${keyList} FROM ${staging} WITH NO DATA`);
    // The statistics the planner table needs, taken here rather than when the run ends.
    await client.query(`ANALYZE ${staging}`);
    return { rows, refused };
  }
}

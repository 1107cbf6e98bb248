/**
 * The Source contract: every source kind runs this suite unchanged against a real database.
 * A kind supplies a factory that loads a dialect-neutral fixture into a fresh database and
 * returns a source reading it.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { RowBatch, Source, Value } from '../../src/core/ports.js';

/** Column types every kind maps to its own SQL (SQLite: text for dates, decimals and JSON; integer for booleans). */
export type FixtureType =
  | 'int'
  | 'bigint'
  | 'float'
  | 'decimal'
  | 'text'
  | 'boolean'
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'json'
  | 'blob';

export interface FixtureTable {
  name: string;
  columns: Array<{ name: string; type: FixtureType }>;
  /**
   * Rows to insert, aligned with `columns`. Values are given in Lockstep's normal form: bigints
   * beyond 2^53 as strings, decimals as strings, times as ISO strings, JSON as text, blobs as base64.
   */
  rows?: Value[][];
  /** Rows `(i, 'row i')` for i in 1..series, generated inside the database (for two-column tables). */
  series?: number;
}

export interface SourceFixture {
  tables: FixtureTable[];
}

export interface SourceKind {
  /** Whether the database has a boolean type; SQLite has none, so its 0/1 stay numbers. */
  booleans: boolean;
  /** Loads the fixture into a fresh database and returns a source reading it. */
  create(fixture: SourceFixture): Promise<Source>;
  /** Opens (with the static open/connect) a source whose database cannot be reached or does not exist. */
  openUnreachable(): Promise<Source>;
  /** A source built with the constructor alone, pointing at a database that cannot be reached. */
  unreachable(): Source;
  /** A secret in the unreachable connection that must never appear in an error message. */
  secret?: string;
  /** Reads still holding a connection or cursor on the fixture's database, when the kind can tell. */
  openReads?(): Promise<number>;
}

const TYPED: FixtureTable = {
  name: 'typed',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'big', type: 'bigint' },
    { name: 'ratio', type: 'float' },
    { name: 'amount', type: 'decimal' },
    { name: 'name', type: 'text' },
    { name: 'active', type: 'boolean' },
    { name: 'born', type: 'date' },
    { name: 'seen_at', type: 'timestamp' },
    { name: 'changed_at', type: 'timestamptz' },
    { name: 'doc', type: 'json' },
    { name: 'data', type: 'blob' },
  ],
  rows: [
    [
      1,
      '9007199254740993',
      1.5,
      '12.30',
      `it's "quoted" — ünïcode`,
      true,
      '2024-01-02',
      '2024-01-02T03:04:05.123Z',
      '2024-01-02T03:04:05.000Z',
      '{"a":1,"b":[1,2],"c":"x"}',
      'AAEC/w==',
    ],
    [2, 42, -0.25, '-0.50', '', false, '1999-12-31', '1999-12-31T23:59:59.000Z', '2000-01-01T00:00:00.500Z', '[]', ''],
    [3, null, null, null, null, null, null, null, null, null, null],
  ],
};

const NUMBERS: FixtureTable = {
  name: 'numbers',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'label', type: 'text' },
  ],
  series: 25_000,
};

const TYPED_QUERY = 'select id, big, ratio, amount, name, active, born, seen_at, changed_at, doc, data from typed order by id';

async function collect(batches: AsyncIterable<RowBatch>): Promise<RowBatch[]> {
  const all: RowBatch[] = [];
  for await (const batch of batches) all.push(batch);
  return all;
}

async function readError(source: Source, query: string): Promise<LockstepError> {
  try {
    await collect(source.read(query, { batchSize: 100 }));
  } catch (error) {
    expect(error).toBeInstanceOf(LockstepError);
    return error as LockstepError;
  }
  throw new Error(`expected reading ${JSON.stringify(query)} to fail`);
}

export function describeSourceContract(name: string, kind: SourceKind): void {
  describe(`Source contract: ${name}`, () => {
    it('normalises every type to the same values as the other kinds', async () => {
      const source = await kind.create({ tables: [TYPED] });
      try {
        const batches = await collect(source.read(TYPED_QUERY, { batchSize: 10 }));
        expect(batches).toHaveLength(1);
        const [batch] = batches as [RowBatch];
        expect(batch.columns).toEqual(TYPED.columns.map((c) => c.name));
        const bool = (b: boolean) => (kind.booleans ? b : b ? 1 : 0);
        expect(batch.rows).toEqual([
          [
            1,
            '9007199254740993',
            1.5,
            '12.30',
            `it's "quoted" — ünïcode`,
            bool(true),
            '2024-01-02',
            '2024-01-02T03:04:05.123Z',
            '2024-01-02T03:04:05.000Z',
            '{"a":1,"b":[1,2],"c":"x"}',
            'AAEC/w==',
          ],
          [2, 42, -0.25, '-0.50', '', bool(false), '1999-12-31', '1999-12-31T23:59:59.000Z', '2000-01-01T00:00:00.500Z', '[]', ''],
          [3, null, null, null, null, null, null, null, null, null, null],
        ]);
        // Integers are numbers, not strings or bigints.
        expect(typeof batch.rows[0]?.[0]).toBe('number');
      } finally {
        await source.close();
      }
    });

    it('reads the highest value of a change cursor, and the rows past it (integer, time and text cursors)', async () => {
      const source = await kind.create({ tables: [TYPED] });
      try {
        const sql = source.cursorSql;
        expect(sql).toBeDefined();
        if (!sql) return;
        const query = 'select id, name, seen_at, changed_at from typed';
        for (const [column, past] of [['id', [3]], ['seen_at', [1]], ['changed_at', [1]], ['name', [1]]] as const) {
          const [highest] = (await collect(source.read(sql.highest(query, column), { batchSize: 10 })))[0]?.rows[0] ?? [];
          expect(typeof highest === 'string' || typeof highest === 'number', `highest ${column}: ${String(highest)}`).toBe(true);
          const rows = (await collect(source.read(sql.after(query, column, highest as string | number), { batchSize: 10 }))).flatMap((b) => b.rows);
          expect(rows.map((r) => r[0]), `rows past ${column} ${String(highest)}`).toEqual(past);
        }
      } finally {
        await source.close();
      }
    });

    it('streams 25,000 rows in batches of at most batchSize, in order', async () => {
      const source = await kind.create({ tables: [NUMBERS] });
      try {
        let count = 0;
        let batches = 0;
        for await (const batch of source.read('select id, label from numbers order by id', { batchSize: 1000 })) {
          batches++;
          expect(batch.columns).toEqual(['id', 'label']);
          expect(batch.rows.length).toBe(1000);
          for (const row of batch.rows) {
            count++;
            expect(row).toEqual([count, `row ${count}`]);
          }
        }
        expect(batches).toBe(25);
        expect(count).toBe(25_000);

        const sizes: number[] = [];
        for await (const batch of source.read('select id from numbers where id <= 2500 order by id', { batchSize: 1000 })) {
          sizes.push(batch.rows.length);
        }
        expect(sizes).toEqual([1000, 1000, 500]);
      } finally {
        await source.close();
      }
    });

    it('releases the read when the consumer stops early, and can read again', async () => {
      const source = await kind.create({ tables: [NUMBERS] });
      try {
        let seen = 0;
        for await (const batch of source.read('select id, label from numbers order by id', { batchSize: 500 })) {
          seen += batch.rows.length;
          if (seen >= 1000) break;
        }
        expect(seen).toBe(1000);
        if (kind.openReads) expect(await kind.openReads()).toBe(0);
        const again = await collect(source.read('select count(*) as n from numbers', { batchSize: 10 }));
        expect(again[0]?.rows).toEqual([[25_000]]);
      } finally {
        await source.close();
      }
    });

    it('stops with the signal and releases the read', async () => {
      const source = await kind.create({ tables: [NUMBERS] });
      try {
        const controller = new AbortController();
        let batches = 0;
        await expect(
          (async () => {
            for await (const _batch of source.read('select id from numbers order by id', { batchSize: 100, signal: controller.signal })) {
              batches++;
              controller.abort(new Error('cancelled by test'));
            }
          })(),
        ).rejects.toThrow('cancelled by test');
        expect(batches).toBe(1);
        if (kind.openReads) expect(await kind.openReads()).toBe(0);
      } finally {
        await source.close();
      }
    });

    it('yields the columns of an empty result once, with no rows', async () => {
      const source = await kind.create({ tables: [NUMBERS] });
      try {
        const batches = await collect(source.read('select id, label from numbers where id < 0', { batchSize: 100 }));
        expect(batches).toEqual([{ columns: ['id', 'label'], rows: [] }]);
      } finally {
        await source.close();
      }
    });

    it('reports a bad query as a query error with the database message', async () => {
      const source = await kind.create({ tables: [NUMBERS] });
      try {
        const error = await readError(source, 'select id from acounts');
        expect(error.code).toBe(ErrorCode.Query);
        expect(error.retryable).toBe(false);
        expect(error.message).toContain('acounts');
        expect(error.message).toMatch(/check the model's query/);

        const syntax = await readError(source, 'selec id from numbers');
        expect(syntax.code).toBe(ErrorCode.Query);
        expect(syntax.message).toMatch(/selec/i);
      } finally {
        await source.close();
      }
    });

    it('reads only: a model query that writes fails, and the source keeps its rows and tables', async () => {
      const source = await kind.create({ tables: [NUMBERS] });
      try {
        for (const query of ['delete from numbers', 'drop table numbers']) {
          await expect(collect(source.read(query, { batchSize: 100 })), query).rejects.toBeInstanceOf(LockstepError);
        }
        const [batch] = await collect(source.read('select count(*) as n from numbers', { batchSize: 10 }));
        expect(Number(batch!.rows[0]![0])).toBe(25_000);
      } finally {
        await source.close();
      }
    });

    it('reports an unreachable or missing database as a connection error, without secrets', async () => {
      const failure = await kind.openUnreachable().then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(LockstepError);
      const error = failure as LockstepError;
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.message).toMatch(/—/);
      if (kind.secret) expect(error.message).not.toContain(kind.secret);

      const lazy = kind.unreachable();
      const readFailure = await readError(lazy, 'select 1');
      expect(readFailure.code).toBe(ErrorCode.Connection);
      if (kind.secret) expect(readFailure.message).not.toContain(kind.secret);
      await lazy.close();
    });
  });
}

/**
 * The Destination contract: every destination kind runs this suite unchanged against a real
 * database. A kind supplies a factory that creates the fixture's tables in a fresh database and
 * returns the destination plus a way to read a table back.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { Destination, RowOutcome, Value, WriteOperation, WriteTarget } from '../../src/core/ports.js';

export interface FixtureColumn {
  name: string;
  /** `decimal`: a decimal number column of precision 10 and scale 2, as the kind declares one. */
  type: 'int' | 'text' | 'float' | 'decimal';
  notNull?: boolean;
  unique?: boolean;
  references?: { table: string; column: string };
  /** A CHECK expression over this column, in SQL both kinds accept. */
  check?: string;
}

export interface FixtureTable {
  name: string;
  columns: FixtureColumn[];
  /** Primary key columns; none for a table without a key. */
  primaryKey: string[];
  /** Rows present before the test, aligned with `columns`. */
  rows?: Value[][];
}

export interface DestinationFixture {
  tables: FixtureTable[];
}

export interface OpenedDestination {
  destination: Destination;
  /** Every row of a table as column → value, ordered by the given column. */
  rows(table: string, orderBy: string): Promise<Array<Record<string, Value>>>;
}

export interface DestinationKind {
  /** Creates the fixture's tables in a fresh database and returns a destination writing to it. */
  create(fixture: DestinationFixture): Promise<OpenedDestination>;
  /** Opens (with the static open/connect) a destination that cannot be reached or does not exist. */
  openUnreachable(): Promise<Destination>;
  /** A secret in the unreachable connection that must never appear in an error message. */
  secret?: string;
}

const ACCOUNTS: FixtureTable = {
  name: 'accounts',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'name', type: 'text', notNull: true },
  ],
  primaryKey: ['id'],
  rows: [
    [1, 'Acme'],
    [2, 'Globex'],
  ],
};

const CONTACTS: FixtureTable = {
  name: 'contacts',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'account_id', type: 'int', references: { table: 'accounts', column: 'id' } },
    { name: 'email', type: 'text', unique: true },
    { name: 'name', type: 'text', notNull: true },
    { name: 'score', type: 'int', check: '"score" >= 0' },
  ],
  primaryKey: ['id'],
  rows: [[10, 1, 'taken@example.com', 'Existing', 5]],
};

const CONTACT_COLUMNS = ['id', 'account_id', 'email', 'name', 'score'];
const CONTACTS_TARGET: WriteTarget = { object: 'contacts', keyColumns: ['id'], columns: CONTACT_COLUMNS };

const NO_KEY: FixtureTable = {
  name: 'events',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'name', type: 'text' },
  ],
  primaryKey: [],
};

const MEMBERSHIPS: FixtureTable = {
  name: 'memberships',
  columns: [
    { name: 'team', type: 'text' },
    { name: 'user_id', type: 'int' },
    { name: 'role', type: 'text' },
  ],
  primaryKey: ['team', 'user_id'],
  rows: [['red', 1, 'member']],
};

const QUOTED_COLUMNS = ['id', 'first name', 'say "hi"', 'select'];
const ORDER: FixtureTable = {
  name: 'order',
  columns: QUOTED_COLUMNS.map((name, i) => ({ name, type: i === 0 ? 'int' : 'text' })),
  primaryKey: ['id'],
};

const PRICES: FixtureTable = {
  name: 'prices',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'price', type: 'decimal' },
  ],
  primaryKey: ['id'],
  rows: [[1, 1.5]],
};

const ok: RowOutcome = { ok: true };

function contact(kind: WriteOperation['kind'], id: number, accountId: number | null, email: string | null, name: string | null, score = 1): WriteOperation {
  return { kind, key: [id], values: kind === 'delete' ? [] : [id, accountId, email, name, score] };
}

function rejected(outcome: RowOutcome | undefined): string {
  expect(outcome?.ok).toBe(false);
  return outcome && !outcome.ok ? outcome.reason : '';
}

async function failure(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

export function describeDestinationContract(name: string, kind: DestinationKind): void {
  describe(`Destination contract: ${name}`, () => {
    const withTables = async (tables: FixtureTable[], fn: (opened: OpenedDestination) => Promise<void>) => {
      const opened = await kind.create({ tables });
      try {
        await fn(opened);
      } finally {
        await opened.destination.close();
      }
    };

    it('declares deletes and upsert', async () => {
      await withTables([ACCOUNTS], async ({ destination }) => {
        expect(destination.capabilities).toMatchObject({ deletes: true, upsert: true });
      });
    });

    it('inserts, upserts, updates and deletes, answering per row in order', async () => {
      await withTables([ACCOUNTS, CONTACTS], async ({ destination, rows }) => {
        const writer = await destination.prepare(CONTACTS_TARGET);
        expect(await writer.write([])).toEqual([]);
        expect(await writer.write([contact('insert', 1, 1, 'a@example.com', 'Ann'), contact('insert', 2, 2, 'b@example.com', 'Bob')])).toEqual([ok, ok]);
        expect(
          await writer.write([
            contact('upsert', 2, 1, 'b@example.com', 'Bobby', 7),
            contact('upsert', 3, null, null, 'Cy'),
            contact('update', 1, 2, 'ann@example.com', 'Ann B'),
            contact('delete', 10, null, null, null),
          ]),
        ).toEqual([ok, ok, ok, ok]);
        expect(await rows('contacts', 'id')).toEqual([
          { id: 1, account_id: 2, email: 'ann@example.com', name: 'Ann B', score: 1 },
          { id: 2, account_id: 1, email: 'b@example.com', name: 'Bobby', score: 7 },
          { id: 3, account_id: null, email: null, name: 'Cy', score: 1 },
        ]);
      });
    });

    it('rejects an update of a missing row and accepts a delete of one', async () => {
      await withTables([ACCOUNTS, CONTACTS], async ({ destination, rows }) => {
        const writer = await destination.prepare(CONTACTS_TARGET);
        const outcomes = await writer.write([
          contact('update', 42, 1, 'x@example.com', 'Nobody'),
          contact('update', 10, 2, 'taken@example.com', 'Renamed'),
          contact('delete', 43, null, null, null),
        ]);
        expect(rejected(outcomes[0])).toBe('no row with id = 42 in "contacts"');
        expect(outcomes.slice(1)).toEqual([ok, ok]);
        expect(await rows('contacts', 'id')).toEqual([{ id: 10, account_id: 2, email: 'taken@example.com', name: 'Renamed', score: 1 }]);
      });
    });

    it('rejects only the rows that break a constraint, with the database message, and writes the rest', async () => {
      await withTables([ACCOUNTS, CONTACTS], async ({ destination, rows }) => {
        const writer = await destination.prepare(CONTACTS_TARGET);
        const outcomes = await writer.write([
          contact('upsert', 1, 1, 'a@example.com', 'Ann'),
          contact('upsert', 2, 99, 'b@example.com', 'Bad account'),
          contact('upsert', 3, 1, 'c@example.com', null),
          contact('upsert', 4, 1, 'taken@example.com', 'Dup email'),
          contact('upsert', 5, 2, 'e@example.com', 'Negative', -1),
          contact('insert', 10, 1, 'z@example.com', 'Dup key'),
          contact('upsert', 6, 2, 'f@example.com', 'Fine'),
        ]);
        expect(outcomes[0]).toEqual(ok);
        expect(rejected(outcomes[1])).toMatch(/foreign key/i);
        expect(rejected(outcomes[2])).toMatch(/not.null/i);
        expect(rejected(outcomes[2])).toMatch(/name/);
        expect(rejected(outcomes[3])).toMatch(/unique|duplicate key/i);
        expect(rejected(outcomes[4])).toMatch(/check/i);
        expect(rejected(outcomes[5])).toMatch(/unique|duplicate key/i);
        expect(outcomes[6]).toEqual(ok);
        expect((await rows('contacts', 'id')).map((r) => r.id)).toEqual([1, 6, 10]);
      });
    });

    it("never lands a number rounded to its decimal column's scale: it lands as sent, or its row alone is rejected naming the column, in every kind of write", async () => {
      await withTables([PRICES], async ({ destination, rows }) => {
        const writer = await destination.prepare({ object: 'prices', keyColumns: ['id'], columns: ['id', 'price'] });
        const price = (kind: WriteOperation['kind'], id: number, value: Value): WriteOperation => ({ kind, key: [id], values: [id, value] });
        const sent = new Map<number, Value>([[1, 1.5]]);
        const write = async (ops: WriteOperation[]) => {
          const outcomes = await writer.write(ops);
          ops.forEach((op, i) => {
            const outcome = outcomes[i] as RowOutcome;
            const wide = Number(op.values[1]) === 1.23456;
            if (outcome.ok) sent.set(op.key[0] as number, op.values[1] as Value);
            else expect(outcome.reason).toContain('"price"');
            // Only a value the column would round may be refused.
            if (!wide) expect(outcome).toEqual(ok);
          });
        };
        await write([price('insert', 2, 1.23456), price('insert', 3, '2.50')]);
        await write([price('upsert', 4, '1.23456'), price('upsert', 1, 1.23456), price('upsert', 5, 0.25)]);
        await write([price('update', 3, 1.23456), price('update', 5, '0.75')]);
        const landed = await rows('prices', 'id');
        expect(landed.map((r) => [r.id, Number(r.price)])).toEqual([...sent].sort(([a], [b]) => a - b).map(([id, value]) => [id, Number(value)]));
      });
    });

    it('writes with composite keys', async () => {
      await withTables([MEMBERSHIPS], async ({ destination, rows }) => {
        const target: WriteTarget = { object: 'memberships', keyColumns: ['team', 'user_id'], columns: ['team', 'user_id', 'role'] };
        const writer = await destination.prepare(target);
        const outcomes = await writer.write([
          { kind: 'upsert', key: ['red', 1], values: ['red', 1, 'owner'] },
          { kind: 'upsert', key: ['blue', 1], values: ['blue', 1, 'member'] },
          { kind: 'update', key: ['green', 2], values: ['green', 2, 'member'] },
        ]);
        expect(outcomes.slice(0, 2)).toEqual([ok, ok]);
        expect(rejected(outcomes[2])).toBe('no row with team = "green" and user_id = 2 in "memberships"');
        expect(await rows('memberships', 'team')).toEqual([
          { team: 'blue', user_id: 1, role: 'member' },
          { team: 'red', user_id: 1, role: 'owner' },
        ]);
      });
    });

    it('refuses a missing table with a schema error listing the tables', async () => {
      await withTables([ACCOUNTS, CONTACTS], async ({ destination }) => {
        const error = await failure(destination.prepare({ object: 'contact', keyColumns: ['id'], columns: ['id'] }));
        expect(error.code).toBe(ErrorCode.Schema);
        expect(error.retryable).toBe(false);
        expect(error.message).toContain('"contact"');
        expect(error.message).toContain('"contacts"');
        expect(error.message).toMatch(/create the table/);
      });
    });

    it('refuses missing columns with a schema error listing the columns', async () => {
      await withTables([ACCOUNTS, CONTACTS], async ({ destination }) => {
        const error = await failure(
          destination.prepare({ object: 'contacts', keyColumns: ['id'], columns: ['id', 'email_address', 'phone'] }),
        );
        expect(error.code).toBe(ErrorCode.Schema);
        expect(error.message).toContain('"email_address", "phone"');
        expect(error.message).toContain('"account_id"');
        expect(error.message).toMatch(/add the columns/);
      });
    });

    it('refuses an upsert on key columns without a unique constraint as a schema error', async () => {
      await withTables([NO_KEY], async ({ destination, rows }) => {
        const writer = await destination.prepare({ object: 'events', keyColumns: ['id'], columns: ['id', 'name'] });
        const error = await failure(writer.write([{ kind: 'upsert', key: [1], values: [1, 'a'] }]));
        expect(error.code).toBe(ErrorCode.Schema);
        expect(error.message).toMatch(/primary key or unique index/);
        // Inserts need no key constraint.
        expect(await writer.write([{ kind: 'insert', key: [1], values: [1, 'a'] }])).toEqual([ok]);
        expect(await rows('events', 'id')).toEqual([{ id: 1, name: 'a' }]);
      });
    });

    it('quotes identifiers and passes values as parameters', async () => {
      await withTables([ACCOUNTS, ORDER], async ({ destination, rows }) => {
        const writer = await destination.prepare({ object: 'order', keyColumns: ['id'], columns: QUOTED_COLUMNS });
        const nasty = `'); drop table accounts; --`;
        const values: Value[] = [1, nasty, `"quoted" \\ back\\slash`, `$1 ? :name`];
        expect(await writer.write([{ kind: 'upsert', key: [1], values }])).toEqual([ok]);
        expect(await writer.write([{ kind: 'update', key: [1], values: [1, nasty, 'changed', null] }])).toEqual([ok]);
        expect(await rows('order', 'id')).toEqual([{ id: 1, 'first name': nasty, 'say "hi"': 'changed', select: null }]);
        expect(await rows('accounts', 'id')).toHaveLength(2);
      });
    });

    it('delivers a batch of 5,000 rows, rejecting exactly the bad ones', async () => {
      await withTables([ACCOUNTS, CONTACTS], async ({ destination, rows }) => {
        const writer = await destination.prepare(CONTACTS_TARGET);
        const bad = new Set([1000, 4000]);
        const batch = Array.from({ length: 5000 }, (_, i) =>
          contact('upsert', i + 100, bad.has(i) ? 99 : (i % 2) + 1, `user${i}@example.com`, `User ${i}`, i),
        );
        const outcomes = await writer.write(batch);
        expect(outcomes).toHaveLength(5000);
        outcomes.forEach((outcome, i) => expect(outcome.ok).toBe(!bad.has(i)));
        const written = await rows('contacts', 'id');
        expect(written).toHaveLength(1 + 4998);
        expect(written[1]).toEqual({ id: 100, account_id: 1, email: 'user0@example.com', name: 'User 0', score: 0 });
        expect(written.at(-1)).toEqual({ id: 5099, account_id: 2, email: 'user4999@example.com', name: 'User 4999', score: 4999 });

        // The same rows again, changed: every one updates.
        const again = await writer.write(batch.map((op, i) => contact('upsert', i + 100, 1, `user${i}@example.com`, `Renamed ${i}`, i)));
        expect(again.every((o) => o.ok)).toBe(true);
        expect((await rows('contacts', 'id')).filter((r) => String(r.name).startsWith('Renamed'))).toHaveLength(5000);
      });
    });

    it('reports an unreachable or missing database as a fatal connection error, without secrets', async () => {
      const error = await failure(kind.openUnreachable());
      expect(error.code).toBe(ErrorCode.Connection);
      expect(error.retryable).toBe(false);
      if (kind.secret) expect(error.message).not.toContain(kind.secret);
    });
  });
}

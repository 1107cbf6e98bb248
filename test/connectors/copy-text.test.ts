/**
 * Rows the PostgreSQL source hands over encoded (COPY text): decoded, they are exactly the rows of
 * the decoded read; their keys are spelled as `encodeKey` spells the decoded values.
 */
import { describe, expect, it } from 'vitest';
import { PostgresSource } from '../../src/connectors/index.js';
import { encodeKey } from '../../src/core/keys.js';
import type { EncodedRows, Value } from '../../src/core/ports.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';

const QUERY = 'select * from mixed order by id';

async function setup(): Promise<string> {
  const url = await createTestDatabase('lockstep_copytext');
  await sql(
    url,
    `create table mixed (id bigint primary key, small smallint, big bigint, amount numeric(14,4), note text, flag boolean,
       at timestamptz, local timestamp, day date, doc jsonb, tags integer[], raw bytea, ratio double precision);
     insert into mixed values
       (1, 1, 9007199254740993, 12.3, E'tab\\there, line\\nbreak, back\\\\slash, carriage\\rreturn', true,
        '2024-03-01 10:00:00.123456+02', '2024-03-01 10:00:00', '2024-02-29', '{"b": [1, 2], "a": "x"}', '{1,2,3}', '\\x00ff10', 0.1),
       (-42, -7, -9007199254740993, -0.5, 'région ✓ 日本', false, '1969-12-31 23:59:59+00', '1900-01-01 00:00:00.5', '0001-01-01',
        'null', '{}', '', -1e300),
       (123456789012345, null, null, null, null, null, null, null, null, null, null, null, null),
       (1234567890123456, 0, 0, 0, '', true, 'infinity', '-infinity', 'infinity', '[]', '{null}', null, 'NaN')`,
  );
  return url;
}

async function readBoth(url: string): Promise<{ decoded: Value[][]; encoded: EncodedRows[]; columns: string[] }> {
  const source = await PostgresSource.connect({ url });
  try {
    const decoded: Value[][] = [];
    let columns: string[] = [];
    for await (const batch of source.read(QUERY, { batchSize: 3 })) {
      decoded.push(...batch.rows);
      columns = batch.columns;
    }
    const encoded: EncodedRows[] = [];
    for await (const batch of source.read(QUERY, { batchSize: 3, encoded: true })) {
      expect(batch.rows).toEqual([]);
      expect(batch.columns).toEqual(columns);
      encoded.push(batch.encoded!);
    }
    return { decoded, encoded, columns };
  } finally {
    await source.close();
  }
}

describe('PostgreSQL rows read encoded', () => {
  it('decode to exactly the values of a decoded read, in batches of at most batchSize, each row one line', async () => {
    const { decoded, encoded, columns } = await readBoth(await setup());
    expect(encoded.map((e) => e.starts.length - 1)).toEqual([3, 1]);
    const rows = encoded.flatMap((e) => Array.from({ length: e.starts.length - 1 }, (_, r) => e.decode(r)));
    expect(rows).toEqual(decoded);
    for (const e of encoded) {
      expect(e.format).toBe('postgresql-copy-text');
      expect(e.types).toHaveLength(columns.length);
      for (let r = 0; r + 1 < e.starts.length; r++) expect(e.data[e.starts[r + 1]! - 1]).toBe(10);
    }
    // Some columns, in the order asked (a column may be asked twice).
    expect(encoded[0]!.decode(0, [4, 0, 4])).toEqual([decoded[0]![4], decoded[0]![0], decoded[0]![4]]);
  });

  it('spell keys as encodeKey spells the decoded values, and answer null for a null key value', async () => {
    const { decoded, encoded } = await readBoth(await setup());
    const keyColumns = [[0], [1], [2], [0, 4], [4], [8]];
    let row = 0;
    for (const e of encoded) {
      for (let r = 0; r + 1 < e.starts.length; r++, row++) {
        for (const columns of keyColumns) {
          const values = columns.map((c) => decoded[row]![c] as Value);
          expect(e.keyText(r, columns), `row ${row}, columns ${columns.join(',')}`).toBe(values.includes(null) ? null : encodeKey(values));
        }
      }
    }
    // The integer fast path stops where numbers stop being exact: 16 digits go through the values.
    expect(encoded[1]!.keyText(0, [0])).toBe('[1234567890123456]');
    expect(encoded[0]!.keyText(1, [2])).toBe('["9007199254740993"]');
    expect(encoded[0]!.keyText(0, [0])).toBe('[-42]');
  });

  it('still give the columns of an empty result', async () => {
    const url = await setup();
    const source = await PostgresSource.connect({ url });
    try {
      const batches = [];
      for await (const batch of source.read('select id, note from mixed where false', { batchSize: 10, encoded: true })) batches.push(batch);
      expect(batches).toHaveLength(1);
      expect(batches[0]!.columns).toEqual(['id', 'note']);
      expect(batches[0]!.encoded!.starts.length).toBe(1);
    } finally {
      await source.close();
    }
  });
});

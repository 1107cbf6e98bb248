/**
 * Rows the PostgreSQL source hands over encoded (COPY text): decoded, they are exactly the rows of
 * the decoded read; their keys are spelled as `encodeKey` spells the decoded values.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PostgresSource } from '../../src/connectors/index.js';
import { CopyOut } from '../../src/connectors/postgres/postgres-copy-out.js';
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

describe('COPY read off the connection', () => {
  it('streams 200,000 rows of every length across the socket chunks, byte for byte', async () => {
    const url = await createTestDatabase('lockstep_copyout');
    await sql(url, `create table wide as select g as id, repeat(chr(65 + g % 26), g % 300) as pad, case when g % 7 = 0 then null else 'é' || g end as other from generate_series(1, 200000) g`);
    const source = await PostgresSource.connect({ url });
    try {
      const lines: string[] = [];
      for await (const batch of source.read('select * from wide order by id', { batchSize: 1000, encoded: true })) {
        const e = batch.encoded!;
        expect(e.starts.length - 1).toBeLessThanOrEqual(1000);
        for (let r = 0; r + 1 < e.starts.length; r++) lines.push(e.data.toString('utf8', e.starts[r], e.starts[r + 1]));
      }
      expect(lines).toHaveLength(200_000);
      const expected = (g: number) => `${g}\t${String.fromCharCode(65 + (g % 26)).repeat(g % 300)}\t${g % 7 === 0 ? '\\N' : `é${g}`}\n`;
      lines.forEach((line, i) => {
        if (line !== expected(i + 1)) expect(line).toBe(expected(i + 1));
      });
    } finally {
      await source.close();
    }
  });

  it('reports an error raised part-way with PostgreSQL message, and passes notices by', async () => {
    const url = await createTestDatabase('lockstep_copyout_error');
    await sql(
      url,
      `create function noisy(g int) returns int language plpgsql as $$ begin if g % 1000 = 0 then raise notice 'row %', g; end if; return g; end $$`,
    );
    const source = await PostgresSource.connect({ url });
    try {
      let rows = 0;
      for await (const batch of source.read('select noisy(g) from generate_series(1, 20000) g', { batchSize: 500, encoded: true })) rows += batch.encoded!.starts.length - 1;
      expect(rows).toBe(20_000);
      const failing = async () => {
        for await (const batch of source.read('select 1 / (50000 - g) from generate_series(1, 60000) g', { batchSize: 500, encoded: true })) void batch;
      };
      await expect(failing()).rejects.toThrow(/division by zero/);
      await expect(failing()).rejects.toMatchObject({ code: 'query' });
    } finally {
      await source.close();
    }
  });
});

/** A protocol message: type byte, length, body. */
function message(type: string, body: Buffer | string = ''): Buffer {
  const bytes = Buffer.from(body);
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(bytes.length + 4, 1);
  return Buffer.concat([header, bytes]);
}

/** Feeds `bytes` to a CopyOut in pieces of `piece` bytes, as the socket might split them. */
async function feed(bytes: Buffer, piece: number, batchRows = 2): Promise<{ rows: string[]; handedBack: Buffer; copy: CopyOut }> {
  const stream = new PassThrough();
  const handed: Buffer[] = [];
  const copy = new CopyOut('copy (select 1) to stdout', batchRows);
  // Like pg: what is handed back is read next, and ReadyForQuery ends the query.
  stream.on('data', (chunk: Buffer) => {
    if (handed.push(chunk) === 1) setImmediate(() => copy.handleReadyForQuery());
  });
  copy.submit({ stream, query: () => undefined });
  for (let at = 0; at < bytes.length; at += piece) stream.write(bytes.subarray(at, at + piece));
  const rows: string[] = [];
  for await (const batch of copy) {
    expect(batch.starts.length - 1).toBeLessThanOrEqual(batchRows);
    for (let r = 0; r + 1 < batch.starts.length; r++) rows.push(batch.data.toString('utf8', batch.starts[r], batch.starts[r + 1]));
  }
  return { rows, handedBack: Buffer.concat(handed), copy };
}

describe('CopyOut parser', () => {
  const rows = ['1\tone\n', '2\t\\N\n', '', '3\trégion\n', '4\t' + 'x'.repeat(300) + '\n'];
  const after = Buffer.concat([message('C', 'COPY 5\0'), message('Z', 'I')]);
  const stream = Buffer.concat([
    message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])),
    ...rows.slice(0, 2).map((r) => message('d', r)),
    message('N', 'SNOTICE\0Mhello\0\0'),
    ...rows.slice(2).map((r) => message('d', r)),
    message('c'),
    after,
  ]);

  it('gives the rows and hands pg what follows CopyDone, however the bytes are split', async () => {
    for (const piece of [1, 2, 3, 5, 7, 64, stream.length]) {
      const { rows: read, handedBack } = await feed(stream, piece);
      expect(read, `pieces of ${piece}`).toEqual(rows);
      expect(handedBack.equals(after), `pieces of ${piece}`).toBe(true);
    }
  });

  it('hands pg an ErrorResponse whole, header included, and reports the error pg raises', async () => {
    const error = Buffer.concat([message('E', 'SERROR\0Mdivision by zero\0\0'), message('Z', 'I')]);
    const failing = Buffer.concat([message('H', Buffer.from([0, 0, 0])), message('d', '1\n'), error]);
    for (const piece of [1, 4, 6, failing.length]) {
      const { handedBack } = await feed(failing, piece);
      expect(handedBack.equals(error), `pieces of ${piece}`).toBe(true);
    }
    const copy = new CopyOut('copy (select 1) to stdout', 10);
    copy.handleError(new Error('division by zero'));
    await expect((async () => { for await (const batch of copy) void batch; })()).rejects.toThrow('division by zero');
  });
});

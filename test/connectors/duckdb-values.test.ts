/**
 * The DuckDB source reads chunks column by column, with a converter per column type. Its values
 * must be exactly those of the reference conversion, value by value over `getRows()`: the snapshot
 * hashes them, so any difference would make every row look changed. These tests read a real DuckDB
 * file holding every kind of column (with nulls, extremes and values the fast paths hand back to the
 * reference conversion) both ways and compare.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as duck from '@duckdb/node-api';
import { DuckDBDateValue, DuckDBInstance, DuckDBTimestampTZValue, DuckDBTimestampValue } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { convertDuckItem, DuckDbSource } from '../../src/connectors/duckdb/duckdb-source.js';
import { epochDaysToIsoDate, epochMicrosToIso, scaledDecimalText, timestampTextToIso } from '../../src/connectors/values.js';
import type { Value } from '../../src/core/ports.js';

const ROWS = 6000; // about three DuckDB chunks of 2048 rows

/** A pseudo-random unsigned 64-bit integer per row and column. */
const h = (salt: string) => `hash(i, '${salt}')`;

/** A decimal as text: `whole` random whole digits (signed), then `scale` fraction digits. */
const decimalText = (salt: string, whole: number, scale: number) =>
  `concat(case when ${h(salt)} % 2 = 0 then '-' else '' end, (${h(`${salt}w`)} % ${10n ** BigInt(whole)})::varchar` +
  (scale > 0 ? `, '.', lpad((${h(`${salt}f`)} % ${10n ** BigInt(scale)})::varchar, ${scale}, '0')` : '') +
  ')';

/** Epoch microseconds spread over ±7900 years around 1970: BC, AD and beyond the Date-friendly range. */
const micros = (salt: string) => `((${h(salt)} % 500000000000000000)::bigint - 250000000000000000)`;

/** Microseconds with whole seconds, whole milliseconds or any fraction, by row. */
const fractionedMicros = (salt: string) =>
  `case i % 3 when 0 then ${micros(salt)} // 1000000 * 1000000 when 1 then ${micros(salt)} // 1000 * 1000 else ${micros(salt)} end`;

/** The columns of the table `typed`, as SQL over the row number `i`. */
const COLUMNS: Array<[name: string, sql: string]> = [
  ['b', `${h('b')} % 2 = 0`],
  ['ti', `((${h('ti')} % 256)::integer - 128)::tinyint`],
  ['si', `((${h('si')} % 65536)::integer - 32768)::smallint`],
  ['ii', `((${h('ii')} % 4294967296)::bigint - 2147483648)::integer`],
  // Half beyond 2^53 (strings), half around it.
  ['bi', `case when i % 2 = 0 then (${h('bi')} >> 1)::bigint - 4611686018427387904 else (${h('bi')} % 40000000000000000)::bigint - 20000000000000000 end`],
  ['ut', `(${h('ut')} % 256)::utinyint`],
  ['us', `(${h('us')} % 65536)::usmallint`],
  ['ui', `(${h('ui')} % 4294967296)::uinteger`],
  ['ub', `case when i % 2 = 0 then ${h('ub')} else ${h('ub')} % 20000000000000000 end`],
  ['hi', `case when i % 3 = 0 then (${h('hi')} % 1000)::hugeint - 500 else (${h('hi')} >> 1)::hugeint * ${h('hj')}::hugeint * (case when i % 2 = 0 then 1 else -1 end) end`],
  ['uh', `${h('uh')}::uhugeint * ${h('uj')}::uhugeint`],
  ['fl', `case i % 50 when 1 then 'nan'::float when 2 then 'inf'::float when 3 then '-inf'::float else ((${h('fl')} % 2000001)::integer - 1000000)::float / 7 end`],
  ['db', `case i % 50 when 1 then 'nan'::double when 2 then 'inf'::double when 3 then '-inf'::double when 4 then -0.0::double else ((${h('db')} % 2000001)::integer - 1000000)::double / 3 end`],
  ['d30', `${decimalText('d30', 3, 0)}::decimal(3,0)`],
  ['d41', `${decimalText('d41', 3, 1)}::decimal(4,1)`],
  ['d93', `${decimalText('d93', 6, 3)}::decimal(9,3)`],
  ['d186', `${decimalText('d186', 12, 6)}::decimal(18,6)`],
  ['d3810', `${decimalText('d3810', 28, 10)}::decimal(38,10)`],
  ['vc', `case i % 4 when 0 then '' when 1 then 'x' || i when 2 then repeat('ünïcode — ', (i % 5)::integer + 1) || i else 'a longer ascii string ' || i end`],
  ['js', `case i % 3 when 0 then json_object('a', i, 'b', [i::varchar, 'x']) when 1 then ' { "k" : [1, 2.50, "é"] } '::json else '"s"'::json end`],
  ['dt', `date '1970-01-01' + ((${h('dt')} % 7300000)::integer - 3650000)`],
  ['ts', `make_timestamp(${fractionedMicros('ts')})`],
  ['tz', `make_timestamp(${fractionedMicros('tz')})::timestamptz`],
  ['tns', `make_timestamp_ns(((${h('tns')} % 8000000000000000000)::bigint - 4000000000000000000))`],
  ['tms', `make_timestamp(${micros('tms')} // 1000 * 1000)::timestamp_ms`],
  ['tsec', `make_timestamp(${micros('tsec')} // 1000000 * 1000000)::timestamp_s`],
  ['tm', `time '00:00:00' + to_microseconds((${h('tm')} % 86400000000)::bigint)`],
  ['iv', `to_months((i % 30)::integer) + to_days((i % 40)::integer) + to_microseconds((${h('iv')} % 86400000000)::bigint)`],
  ['uu', `uuid()`],
  ['bl', `unhex(lpad(to_hex(${h('bl')}), 16, '0'))`],
  ['en', `(['sad', 'ok', 'happy'])[(i % 3)::integer + 1]::mood`],
  ['li', `[i, null, i * 2]`],
  ['lv', `['a' || i, null, '']`],
  ['lt', `[make_timestamp(${micros('lt')}), null]`],
  ['st', `{'a': i, 'b': 'x' || i, 'c': make_timestamp(${micros('stc')}), 'd': [1.5, null], 'e': ${decimalText('ste', 4, 2)}::decimal(6,2), 'f': make_timestamp(${micros('stf')})::timestamptz}`],
  ['mp', `map {'k' || i: i, 'z': null}`],
  // DuckDB's CASE cannot produce fixed-size arrays: this column holds null items instead of nulls.
  ['ar', `[i, null, i + 2]::integer[3]`],
];

/** Instants at the edges: the fast paths' range limits, ±2^53 µs, the epoch, fraction lengths, infinities. */
const EDGE_TIMESTAMPS = [
  `'infinity'`,
  `'-infinity'`,
  `'0001-01-01 00:00:00'`,
  `'0001-01-01 23:59:59.999999'`,
  `'0001-01-02 00:00:00'`,
  `'1684-01-01 00:00:00.000001'`,
  `'1969-12-31 23:59:59.999999'`,
  `'1970-01-01 00:00:00'`,
  `'1970-01-01 00:00:00.000001'`,
  `'2024-01-02 03:04:05.1'`,
  `'2024-01-02 03:04:05.12'`,
  `'2024-01-02 03:04:05.123'`,
  `'2024-01-02 03:04:05.1234'`,
  `'2024-01-02 03:04:05.12345'`,
  `'2024-01-02 03:04:05.123456'`,
  `'2024-01-02 03:04:05.000010'`,
  `'2255-06-05 23:47:34.740992'`,
  `'2255-06-05 23:47:34.740993'`,
  `'2400-02-29 12:00:00.5'`,
  `'9999-12-30 23:59:59.999999'`,
  `'9999-12-31 00:00:00'`,
  `'9999-12-31 23:59:59.999999'`,
  `'12345-06-07 08:09:10.5'`,
];

const EDGE_INTEGERS = [
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '-9007199254740991',
  '-9007199254740992',
  '-9007199254740993',
  '9223372036854775807',
  '-9223372036854775808',
  '0',
];

function tempPath(file: string): string {
  return join(mkdtempSync(join(tmpdir(), 'lockstep-duckdb-values-')), file);
}

async function createWarehouse(path: string): Promise<void> {
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    await connection.run(`create type mood as enum ('sad', 'ok', 'happy')`);
    const select = COLUMNS.map(([name, sql], c) =>
      name === 'ar' ? `${sql} as ${name}` : `case when (i + ${c}) % 11 = 0 then null else (${sql}) end as ${name}`,
    );
    await connection.run(`create table typed as select i, ${select.join(', ')} from range(${ROWS}) r(i)`);
    const edges = EDGE_TIMESTAMPS.map((ts, n) => {
      const integer = EDGE_INTEGERS[n % EDGE_INTEGERS.length] as string;
      return `(${n}, timestamp ${ts}, timestamptz ${ts}, '${integer}'::bigint, '${integer}'::hugeint, date '1970-01-01' + ${n * 37 - 400})`;
    });
    await connection.run(`create table edges (n integer, ts timestamp, tz timestamptz, bi bigint, hi hugeint, dt date)`);
    await connection.run(`insert into edges values ${edges.join(', ')}, (99, null, null, null, null, null)`);
    await connection.run(
      `insert into edges values (100, null, null, null, null, date 'infinity'), (101, null, null, null, null, date '-infinity'),
        (102, null, null, null, null, date '0001-01-01'), (103, null, null, null, null, date '9999-12-31'),
        (104, null, null, null, null, date '10000-01-01'), (105, null, null, null, null, date '0001-01-01' - 1)`,
    );
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** The reference: every value of `getRows()` through convertDuckItem, on a connection of its own. */
async function readReference(path: string, query: string): Promise<Value[][]> {
  const instance = await DuckDBInstance.create(path, { access_mode: 'READ_ONLY' });
  const connection = await instance.connect();
  try {
    const result = await connection.stream(query);
    const types = result.columnTypes();
    const rows: Value[][] = [];
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      for (const row of chunk.getRows()) rows.push(row.map((value, c) => convertDuckItem(duck, types[c] as duck.DuckDBType, value)));
    }
    return rows;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** What the source yields, checking the batch sizes on the way. */
async function readSource(path: string, query: string, batchSize: number): Promise<Value[][]> {
  const source = await DuckDbSource.open({ path });
  try {
    const rows: Value[][] = [];
    for await (const batch of source.read(query, { batchSize })) {
      expect(batch.rows.length).toBeLessThanOrEqual(batchSize);
      rows.push(...batch.rows);
    }
    return rows;
  } finally {
    await source.close();
  }
}

/** Reads with the local time-zone offset the reference prints TIMESTAMPTZ text with set to `minutes`. */
async function withTimezoneOffset<T>(minutes: number, read: () => Promise<T>): Promise<T> {
  const saved = DuckDBTimestampTZValue.timezoneOffsetInMinutes;
  DuckDBTimestampTZValue.timezoneOffsetInMinutes = minutes;
  try {
    return await read();
  } finally {
    DuckDBTimestampTZValue.timezoneOffsetInMinutes = saved;
  }
}

describe('DuckDbSource values', () => {
  let path = '';

  beforeAll(async () => {
    path = tempPath('warehouse.duckdb');
    await createWarehouse(path);
  });

  it('reads every column type exactly as the value-by-value conversion does', async () => {
    const query = 'select * from typed order by i';
    const reference = await readReference(path, query);
    expect(reference).toHaveLength(ROWS);
    const rows = await readSource(path, query, 1000);
    expect(rows).toHaveLength(ROWS);
    // Column by column first, so a failure names the column.
    const names = ['i', ...COLUMNS.map(([name]) => name)];
    names.forEach((name, c) => {
      expect({ name, values: rows.map((row) => row[c]) }).toEqual({ name, values: reference.map((row) => row[c]) });
    });
    expect(rows).toEqual(reference);
  });

  it('reads edge instants, dates and integers exactly as the value-by-value conversion does', async () => {
    const query = 'select * from edges order by n';
    const reference = await readReference(path, query);
    const rows = await readSource(path, query, 7);
    expect(rows).toEqual(reference);
    const column = (name: string) => rows.map((row) => row[['n', 'ts', 'tz', 'bi', 'hi', 'dt'].indexOf(name)]);
    // A few spelled out: the fraction rules, pre-1970 instants, the 2^53 boundary, the fallbacks.
    expect(column('ts')).toEqual(expect.arrayContaining(['infinity', '-infinity', '0001-01-01T00:00:00.000Z']));
    expect(column('ts')).toEqual(
      expect.arrayContaining([
        '1969-12-31T23:59:59.999999Z',
        '1970-01-01T00:00:00.000001Z',
        '2024-01-02T03:04:05.100Z',
        '2024-01-02T03:04:05.1234Z',
        '2024-01-02T03:04:05.00001Z',
        '2255-06-05T23:47:34.740993Z',
        '9999-12-31T23:59:59.999999Z',
        '+012345-06-07T08:09:10.500Z',
      ]),
    );
    expect(column('tz')).toEqual(column('ts'));
    expect(column('bi')).toEqual(expect.arrayContaining([9007199254740991, '9007199254740992', '-9223372036854775808']));
    // Infinite dates as PostgreSQL prints them (and reads them back), not as the days past DuckDB's last date.
    expect(column('dt')).toEqual(expect.arrayContaining(['0001-01-01', '9999-12-31', '10000-01-01', 'infinity', '-infinity']));
  });

  it('writes FLOATs inside lists, arrays, structs and maps as a FLOAT column holds them: 0.1, not 0.10000000149011612', async () => {
    const file = tempPath('floats.duckdb');
    const instance = await DuckDBInstance.create(file);
    const connection = await instance.connect();
    try {
      await connection.run(
        `create table embeddings as select 1 as id, 0.1::float as f, [0.1, 0.25, -3.3, null]::float[] as v, [0.1, 0.2]::float[2] as a,
           {'w': 0.7::float, 'd': 0.7::double, 'n': [1.1]::float[]} as s, map {'x': 0.3::float} as m, [0.1]::double[] as dl`,
      );
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
    const query = 'select * from embeddings';
    const expected = [[1, 0.1, '[0.1,0.25,-3.3,null]', '[0.1,0.2]', '{"w":0.7,"d":0.7,"n":[1.1]}', '{"x":0.3}', '[0.1]']];
    expect(await readSource(file, query, 10)).toEqual(expected);
    expect(await readReference(file, query)).toEqual(expected);
  });

  it('gives TIMESTAMPTZ the same UTC text whatever local offset the reference prints it with', async () => {
    // The reference prints TIMESTAMPTZ in the process's local offset, then converts the text back to
    // UTC; the column converter computes UTC directly. Values the converter hands back (BC, year
    // 10000+) keep the reference's text, offset included, so both sides read under the same offset.
    for (const query of ['select tz, st from typed order by i', 'select tz from edges order by n']) {
      for (const minutes of [330, -480, 840, -570]) {
        const [rows, reference] = await withTimezoneOffset(minutes, () =>
          Promise.all([readSource(path, query, 1000), readReference(path, query)]),
        );
        expect(rows).toEqual(reference);
      }
    }
  });

  it('formats instants, dates and decimals from their numbers as from their printed text, across years 0001–9999', () => {
    const DAY = 86_400_000_000n;
    const first = -62_135_596_800_000_000n - 2n * DAY; // two days before 0001-01-01
    const last = 253_402_300_800_000_000n + 2n * DAY; // two days after 9999-12-31
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 48_271) % 2_147_483_647; // MINSTD: deterministic, exact in doubles
      return BigInt(seed % n);
    };
    const mismatches: string[] = [];
    for (let micros = first; micros <= last; micros += 29n * DAY + random(1_000_000) * 86_400n) {
      for (const m of [micros, micros - 1n, micros + random(86_400_000_000), (micros / 1_000_000n) * 1_000_000n + random(1000) * 1000n]) {
        const formatted = epochMicrosToIso(m);
        if (formatted === null) continue; // the caller's text path decides
        const viaText = timestampTextToIso(new DuckDBTimestampValue(m).toString());
        if (formatted !== viaText) mismatches.push(`${m}: ${formatted} vs ${viaText}`);
      }
    }
    // Every 7th day from just before 0001-01-01 to just after 9999-12-31, and each day of the ends.
    const [firstDay, lastDay] = [-719_165, 2_932_900];
    const days = [
      ...Array.from({ length: Math.ceil((lastDay - firstDay) / 7) + 1 }, (_, i) => firstDay + i * 7),
      ...Array.from({ length: 400 }, (_, i) => firstDay + i),
      ...Array.from({ length: 400 }, (_, i) => lastDay - i),
    ];
    for (const day of days) {
      const formatted = epochDaysToIsoDate(day);
      if (formatted !== null && formatted !== new DuckDBDateValue(day).toString()) mismatches.push(`day ${day}: ${formatted}`);
    }
    for (let i = 0; i < 20_000; i++) {
      const scale = Number(random(12));
      const scaled = (random(2_000_000_000) - 1_000_000_000n) * random(1_000_000_000);
      const printed = new duck.DuckDBDecimalValue(scaled, 38, scale).toString();
      const small = Number(scaled % 1_000_000_000n);
      if (scaledDecimalText(scaled, scale) !== printed) mismatches.push(`decimal ${scaled} scale ${scale}`);
      if (scaledDecimalText(small, scale) !== new duck.DuckDBDecimalValue(BigInt(small), 9, scale).toString()) mismatches.push(`decimal ${small}`);
    }
    expect(mismatches).toEqual([]);
    expect(epochMicrosToIso(-62_135_596_800_000_000n)).toBeNull(); // 0001-01-01: left to the text path
    expect(epochMicrosToIso(9_223_372_036_854_775_807n)).toBeNull(); // infinity
  });
});

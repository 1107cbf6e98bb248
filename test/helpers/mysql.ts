import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { inject } from 'vitest';

/**
 * A fresh database on the test MySQL server for one test file or case, so tests never see each
 * other's tables; returns its URL. Its name carries the run's tag: a throwaway server goes away with
 * the run, and on a server given by TEST_MYSQL_URL the run's databases are dropped at its end.
 */
export async function createTestMysqlDatabase(prefix = 'lockstep'): Promise<string> {
  const adminUrl = inject('mysqlUrl');
  const name = `${prefix}_${inject('mysqlRunTag')}_${randomBytes(5).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  await mysqlSql(adminUrl, `create database \`${name}\` character set utf8mb4 collate utf8mb4_unicode_ci`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Runs SQL against a database URL (several statements separated by `;` are allowed when `values`
 * is empty) and returns the last result's rows, with BIGINT and DECIMAL as text, dates as the
 * server prints them.
 */
export async function mysqlSql<T = Record<string, unknown>>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const connection = await mysql.createConnection({
    uri: url,
    multipleStatements: values.length === 0,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
  });
  try {
    const [result, fields] = await connection.query(text, values);
    // Several statements answer one result (and one list of fields, or none) each; the last one counts.
    const several = Array.isArray(fields) && (fields as unknown[]).some((f) => f === undefined || Array.isArray(f));
    const last: unknown = several && Array.isArray(result) ? result[result.length - 1] : result;
    return (Array.isArray(last) ? last : []) as T[];
  } finally {
    await connection.end();
  }
}

/**
 * The numbers 1..`n` as a derived table with one column `seq` (MariaDB's `seq_1_to_n` without the
 * Sequence engine, so MySQL 8 runs the same SQL): digits cross joined, filtered to `n`.
 */
export function mysqlSeries(n: number): string {
  const digits = Math.max(1, String(n).length);
  const digit = '(select 0 as d union all select 1 union all select 2 union all select 3 union all select 4 union all select 5 union all select 6 union all select 7 union all select 8 union all select 9)';
  const joins = Array.from({ length: digits }, (_, i) => `${digit} as d${i}`).join(' cross join ');
  const value = Array.from({ length: digits }, (_, i) => `d${i}.d * ${10 ** i}`).join(' + ');
  return `(select * from (select 1 + ${value} as seq from ${joins}) as all_numbers where seq <= ${n}) as numbers`;
}

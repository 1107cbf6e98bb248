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

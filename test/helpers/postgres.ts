import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/**
 * A fresh database on the test server for one test file or case, so tests never see each other's
 * tables. Its name carries the run's tag: a throwaway cluster goes away with the run, and on a
 * server given by TEST_DATABASE_URL the run's databases are dropped at its end (test/setup/postgres.ts).
 */
export async function createTestDatabase(prefix = 'lockstep'): Promise<string> {
  const adminUrl = inject('postgresUrl');
  const name = `${prefix}_${inject('postgresRunTag')}_${randomBytes(5).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs SQL statements against a database URL and returns the last result's rows. */
export async function sql<T = Record<string, unknown>>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query(text, values);
    const last = Array.isArray(result) ? result[result.length - 1] : result;
    return (last?.rows ?? []) as T[];
  } finally {
    await client.end();
  }
}

/**
 * Whether the server at `url` refuses a wrong password. A server given by TEST_DATABASE_URL may
 * trust local connections and accept any password; a test of bad credentials then has nothing to
 * show, and skips.
 */
export async function refusesWrongPassword(url: string): Promise<boolean> {
  const wrong = new URL(url);
  wrong.password = 'lockstep-wrong-password';
  const client = new pg.Client({ connectionString: wrong.toString() });
  try {
    await client.connect();
  } catch {
    return true;
  }
  await client.end();
  return false;
}

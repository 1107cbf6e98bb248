import { describe, expect, it } from 'vitest';
import { createTestDatabase, sql } from './helpers/postgres.js';

describe('test PostgreSQL', () => {
  it('gives each test its own database', async () => {
    const a = await createTestDatabase();
    const b = await createTestDatabase();
    expect(a).not.toBe(b);
    await sql(a, 'create table t (id int primary key)');
    const rows = await sql<{ n: string }>(b, "select count(*)::text as n from pg_tables where tablename = 't'");
    expect(rows[0]?.n).toBe('0');
  });
});

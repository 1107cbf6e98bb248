/**
 * API tokens in the PostgreSQL store. Only hashes are kept; a name is unique, which the table
 * itself enforces, so two processes creating the same name at once get one token and one Conflict.
 */
import { ErrorCode, LockstepError } from '../../core/errors.js';
import type { ApiToken, StoredApiToken, TokenStore } from '../../core/tokens.js';
import { toToken, type TokenRow } from '../rows.js';
import type { PostgresDatabase } from './postgres-database.js';

/** Part of schema version 1 (see postgres-migrations.ts). */
export const API_TOKENS_SCHEMA = `
CREATE TABLE api_tokens (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  hash         text NOT NULL,
  created_at   double precision NOT NULL,
  last_used_at double precision
);
`;

export class PostgresTokenStore implements TokenStore {
  private readonly table: string;

  constructor(private readonly db: PostgresDatabase) {
    this.table = `${db.schema}.api_tokens`;
  }

  async create(name: string, hash: string, now: number): Promise<ApiToken> {
    const rows = await this.db.query<TokenRow>(
      `INSERT INTO ${this.table} (name, hash, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING *`,
      [name, hash, now],
    );
    const row = rows[0];
    if (!row) throw new LockstepError(ErrorCode.Conflict, `a token named "${name}" exists already — pick another name, or revoke it first`);
    const { hash: _hash, ...token } = toToken(row);
    return token;
  }

  async list(): Promise<StoredApiToken[]> {
    return (await this.db.query<TokenRow>(`SELECT * FROM ${this.table} ORDER BY id`)).map(toToken);
  }

  async revoke(name: string): Promise<boolean> {
    return (await this.db.query(`DELETE FROM ${this.table} WHERE name = $1 RETURNING id`, [name])).length > 0;
  }

  async touch(id: number, now: number): Promise<void> {
    await this.db.query(`UPDATE ${this.table} SET last_used_at = $1 WHERE id = $2`, [now, id]);
  }
}

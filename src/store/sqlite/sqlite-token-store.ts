/**
 * API tokens in the embedded store, on the SqliteStore's database handle. Only hashes are kept.
 */
import { ErrorCode, LockstepError } from '../../core/errors.js';
import type { ApiToken, StoredApiToken, TokenStore } from '../../core/tokens.js';
import { toToken, type TokenRow } from '../rows.js';
import type { SqliteDatabase, SqliteStatement } from './sqlite-database.js';

/** Part of schema version 2 (see migrations.ts). */
export const API_TOKENS_SCHEMA = `
CREATE TABLE api_tokens (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  name         TEXT NOT NULL UNIQUE,
  hash         TEXT NOT NULL,
  created_at   REAL NOT NULL,
  last_used_at REAL
);
`;

export class SqliteTokenStore implements TokenStore {
  private readonly insert: SqliteStatement;
  private readonly all: SqliteStatement;
  private readonly remove: SqliteStatement;
  private readonly used: SqliteStatement;
  private readonly byName: SqliteStatement;

  /** @param wrapError turns a SQLite error into the store's error (naming the file). */
  constructor(
    db: SqliteDatabase,
    private readonly wrapError: (error: unknown) => Error,
  ) {
    this.insert = db.prepare('INSERT INTO api_tokens (name, hash, created_at) VALUES (?, ?, ?) RETURNING *');
    this.byName = db.prepare('SELECT id FROM api_tokens WHERE name = ?');
    this.all = db.prepare('SELECT * FROM api_tokens ORDER BY id');
    this.remove = db.prepare('DELETE FROM api_tokens WHERE name = ?');
    this.used = db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?');
  }

  async create(name: string, hash: string, now: number): Promise<ApiToken> {
    return this.run(() => {
      if (this.byName.get(name)) {
        throw new LockstepError(ErrorCode.Conflict, `a token named "${name}" exists already — pick another name, or revoke it first`);
      }
      const { hash: _hash, ...token } = toToken(this.insert.get(name, hash, now) as TokenRow);
      return token;
    });
  }

  async list(): Promise<StoredApiToken[]> {
    return this.run(() => (this.all.all() as TokenRow[]).map(toToken));
  }

  async revoke(name: string): Promise<boolean> {
    return this.run(() => this.remove.run(name).changes > 0);
  }

  async touch(id: number, now: number): Promise<void> {
    this.run(() => this.used.run(now, id));
  }

  private run<R>(fn: () => R): R {
    try {
      return fn();
    } catch (error) {
      if (error instanceof LockstepError) throw error;
      throw this.wrapError(error);
    }
  }
}

/**
 * API tokens: bearer tokens for the HTTP API (SPEC §6.3). A token is shown once when created; the
 * store keeps only its SHA-256 hash (tokens are 32 random bytes, so a plain hash cannot be
 * brute-forced), and checking a presented token compares hashes in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** What every token starts with, so a leaked one is recognisable in logs and secret scanners. */
export const TOKEN_PREFIX = 'lst_';

export interface ApiToken {
  id: number;
  /** Unique among live tokens; what `lockstep token revoke` takes. */
  name: string;
  createdAt: number;
  /** When it last authenticated a request; null when never used. */
  lastUsedAt: number | null;
}

/** A token as stored: with the hash of its secret, never the secret. */
export interface StoredApiToken extends ApiToken {
  /** Hex SHA-256 of the token text. */
  hash: string;
}

/** Where tokens are kept. */
export interface TokenStore {
  /** Records a new token; a Conflict error when a live token already has this name. */
  create(name: string, hash: string, now: number): Promise<ApiToken>;
  /** Every live token with its hash, oldest first. */
  list(): Promise<StoredApiToken[]>;
  /** Deletes the token with this name; false when there is none. */
  revoke(name: string): Promise<boolean>;
  /** Records a use. */
  touch(id: number, now: number): Promise<void>;
}

/** The longest token name, in characters. */
export const MAX_TOKEN_NAME_LENGTH = 100;

/**
 * What is wrong with a token name, or null when it will do: a name is what `token list` shows and
 * `token revoke` takes, so it is not empty, has no control characters (a newline would pass for two
 * lines of the list) and no space at either end.
 */
export function tokenNameProblem(name: string): string | null {
  const fix = 'name the token after who uses it, e.g. --name airflow';
  if (name.trim() === '') return `a token name cannot be empty — ${fix}`;
  if ([...name].length > MAX_TOKEN_NAME_LENGTH) return `the token name is ${[...name].length} characters long; at most ${MAX_TOKEN_NAME_LENGTH} — ${fix}`;
  if (/\p{Cc}/u.test(name)) return `the token name ${JSON.stringify(name)} holds a control character (a newline, a tab) — ${fix}`;
  if (name !== name.trim()) return `the token name ${JSON.stringify(name)} starts or ends with a space — ${fix}`;
  return null;
}

/** A new token's text: the prefix and 32 random bytes, base64url. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * The stored token `presented` belongs to, or null. Every stored hash is compared, each in
 * constant time, so the answer's timing says nothing about which hashes are close.
 */
export function findToken<T extends StoredApiToken>(tokens: readonly T[], presented: string): T | null {
  const hash = Buffer.from(hashToken(presented), 'hex');
  let found: T | null = null;
  for (const token of tokens) {
    const stored = Buffer.from(token.hash, 'hex');
    if (stored.length === hash.length && timingSafeEqual(stored, hash) && found === null) found = token;
  }
  return found;
}

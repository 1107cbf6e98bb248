/**
 * The TokenStore contract (`store.tokens`): API tokens kept by name, which is unique, with the hash
 * of their secret; listed oldest first, touched when used, revoked by name.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/core/errors.js';
import type { Store } from '../../../src/core/ports.js';
import { T0, expectError, useFreshStore, type OpenStore } from './fixtures.js';

export function describeTokenStoreContract(name: string, open: OpenStore): void {
  describe(`TokenStore contract: ${name}`, () => {
    let store: Store;
    useFreshStore(open, (opened) => {
      store = opened;
    });

    it('creates, lists, touches and revokes tokens by name; names are unique', async () => {
      const token = await store.tokens.create('ci', 'a'.repeat(64), T0);
      expect(token).toEqual({ id: token.id, name: 'ci', createdAt: T0, lastUsedAt: null });
      await expectError(store.tokens.create('ci', 'b'.repeat(64), T0), ErrorCode.Conflict);
      await store.tokens.create('airflow', 'c'.repeat(64), T0 + 1);
      await store.tokens.touch(token.id, T0 + 5);
      expect(await store.tokens.list()).toEqual([
        { id: token.id, name: 'ci', hash: 'a'.repeat(64), createdAt: T0, lastUsedAt: T0 + 5 },
        expect.objectContaining({ name: 'airflow', hash: 'c'.repeat(64), lastUsedAt: null }),
      ]);
      expect(await store.tokens.revoke('ci')).toBe(true);
      expect(await store.tokens.revoke('ci')).toBe(false);
      expect((await store.tokens.list()).map((t) => t.name)).toEqual(['airflow']);
    });
  });
}

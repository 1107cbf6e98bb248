/**
 * Sealing secrets (core/secrets.ts) and where the keys come from (store/secret-keys.ts): the key
 * formats, AES-256-GCM values that name their key and refuse to open when changed, which values
 * are secret, and the embedded store's key file (mode 0600, created on first use, refused when
 * others could read or swap it).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { SealError, SecretBox, SecretCodec, generateSecretKey, isSealed, parseSecretKey, type SecretKeys } from '../../src/core/secrets.js';
import { StoreSecretKeys, beginKeyFileRotation, createKeyFile, finishKeyFileRotation, keyFileFor, readKeyFile, writeKeyFile } from '../../src/store/secret-keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { contractSecrets, crmWorkspace } from './contracts/fixtures.js';

const folders: string[] = [];
function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'lockstep-keys-'));
  folders.push(folder);
  return folder;
}
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function thrown(fn: () => unknown): LockstepError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(LockstepError);
    return error as LockstepError;
  }
  throw new Error('expected a LockstepError');
}

const box = () => new SecretBox(parseSecretKey(generateSecretKey(), 'test'));
const fixedKeys = (sealing: SecretBox | null, ...others: SecretBox[]): SecretKeys => ({
  sealingKey: () => sealing,
  openingKey: (id) => {
    const found = [sealing, ...others].find((b) => b?.keyId === id);
    if (!found) throw new LockstepError(ErrorCode.Store, `no key ${id}`);
    return found;
  },
});

describe('keys and sealed values', () => {
  it('reads a key as base64, base64url or hex of 32 bytes, and names the source, never the value, when it is not one', () => {
    const bytes = Buffer.alloc(32, 0xfb);
    for (const text of [bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex'), ` ${bytes.toString('hex').toUpperCase()}\n`]) {
      expect(parseSecretKey(text, 'LOCKSTEP_SECRET_KEY').equals(bytes)).toBe(true);
    }
    const short = thrown(() => parseSecretKey(Buffer.alloc(16, 1).toString('base64'), 'LOCKSTEP_SECRET_KEY'));
    expect(short.code).toBe(ErrorCode.Validation);
    expect(short.message).toBe(
      'LOCKSTEP_SECRET_KEY is not a secret key: it decodes to 16 bytes — it must be 32 random bytes in base64 (44 characters) or hex (64 characters), e.g. from `openssl rand -base64 32`',
    );
    const garbage = thrown(() => parseSecretKey('my password!', '--new-key'));
    expect(garbage.message).toContain('--new-key is not a secret key: it is neither base64 nor hex');
    expect(garbage.message).not.toContain('my password');
  });

  it('seals under a fresh IV into enc:v1:<key id>:<iv>:<ciphertext>, opens only with its key and only unchanged', () => {
    const a = box();
    const first = a.seal('postgres://u:p@h/db');
    const second = a.seal('postgres://u:p@h/db');
    expect(first).not.toBe(second);
    expect(first).toMatch(new RegExp(`^enc:v1:${a.keyId}:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$`));
    expect(isSealed(first)).toBe(true);
    expect(a.open(first)).toBe('postgres://u:p@h/db');
    expect(a.open(a.seal(''))).toBe('');
    expect(a.open(a.seal('ünïcødé ✓'))).toBe('ünïcødé ✓');

    expect(() => box().open(first)).toThrow(SealError);
    const parts = first.split(':');
    const body = Buffer.from(parts[4]!, 'base64url');
    body[0] = body[0]! ^ 1;
    expect(() => a.open([...parts.slice(0, 4), body.toString('base64url')].join(':'))).toThrow(/changed or damaged/);
    // The key id is authenticated too: a value cannot claim another key's id.
    const other = box();
    expect(() => other.open(first.replace(a.keyId, other.keyId))).toThrow(/changed or damaged/);
  });
});

describe('SecretCodec', () => {
  const secretSettings = (type: string) => (type === 'http' ? ['url', 'headers', 'auth.token'] : type === 'postgres' ? ['url'] : []);

  it("seals the kind's secret settings (dotted paths, each value of an object), keeps templates and other settings, and opens them back", () => {
    const key = box();
    const codec = new SecretCodec({ keys: fixedKeys(key), secretSettings });
    const definition = JSON.parse(
      JSON.stringify({
        type: 'http',
        settings: {
          url: 'https://api.example/v1',
          headers: { Authorization: 'Bearer t0k3n', 'X-Env': '${ENV_NAME}', 'X-Mixed': 'Bearer ${TOKEN}-x' },
          auth: { token: 's3cr3t', user: 'etl' },
          timeoutMs: 5000,
        },
      }).replace('"timeoutMs"', '"__proto__":"a field like any other","timeoutMs"'),
    ) as Record<string, unknown>;
    const sealed = codec.sealEntity('destination', definition);
    const text = JSON.stringify(sealed);
    for (const secret of ['api.example', 't0k3n', 's3cr3t', 'Bearer ${TOKEN}-x']) expect(text).not.toContain(secret);
    expect(text).toContain('"X-Env":"${ENV_NAME}"');
    expect(text).toContain('"user":"etl"');
    expect(text).toContain('"timeoutMs":5000');
    expect(text).toContain('"__proto__":"a field like any other"');
    const opened = codec.openEntity(JSON.parse(text) as Record<string, unknown>, 'destination "crm"');
    expect(JSON.stringify(opened)).toBe(JSON.stringify(definition));
    // Not a connection: a model's query is not secret.
    expect(codec.sealEntity('model', { source: 'w', query: 'select 1', type: 'http', settings: { url: 'x' } })).toEqual({ source: 'w', query: 'select 1', type: 'http', settings: { url: 'x' } });
  });

  it('writes secrets as they are when no key is configured, and says where', () => {
    const unsealed: string[] = [];
    const codec = new SecretCodec({ keys: fixedKeys(null), secretSettings, onUnsealed: (where) => unsealed.push(where) });
    expect(codec.sealEntity('source', { type: 'postgres', settings: { url: 'postgres://u:p@h/db' } })).toEqual({ type: 'postgres', settings: { url: 'postgres://u:p@h/db' } });
    expect(unsealed).toEqual(['source settings.url']);
    expect(codec.sealWebhook('dbtCloud', { secret: 'abc' })).toEqual({ secret: 'abc' });
    expect(unsealed).toEqual(['source settings.url', 'webhooks.dbtCloud.secret']);
  });

  it('names the value that cannot be opened and how to write it again', () => {
    const key = box();
    const codec = new SecretCodec({ keys: fixedKeys(key), secretSettings });
    const sealed = codec.sealEntity('source', { type: 'postgres', settings: { url: 'postgres://u:p@h/db' } }) as { settings: { url: string } };
    const damaged = { type: 'postgres', settings: { url: `${sealed.settings.url.slice(0, -4)}AAAA` } };
    const error = thrown(() => codec.openEntity(damaged, 'source "warehouse"'));
    expect(error.code).toBe(ErrorCode.Store);
    expect(error.message).toContain(`the store's secret source "warehouse" settings.url cannot be decrypted: it does not authenticate under key ${key.keyId}`);
    expect(error.message).toContain('write it again');
  });
});

describe('the embedded store key file', () => {
  it('is created with mode 0600 beside the store when the first secret is written, not before', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    const keyFile = keyFileFor(path)!;
    expect(keyFile).toBe(`${path}.key`);
    await using store = await SqliteStore.open({ path, secrets: contractSecrets(new StoreSecretKeys({ store: path, keyFile })) });
    await store.applyWorkspace({ ...crmWorkspace(), sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: '${WAREHOUSE_URL}' } }] }, 1);
    expect(existsSync(keyFile)).toBe(false);
    await store.applyWorkspace({ ...crmWorkspace(), sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: 'postgres://u:pw@h/db' } }] }, 2);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(keyFileFor(':memory:')).toBeNull();
  });

  it('gives every process the same key: a second creation reads the first', () => {
    const file = join(tempFolder(), 'lockstep.db.key');
    const first = createKeyFile(file);
    const second = createKeyFile(file);
    expect(second.keyId).toBe(first.keyId);
    expect(readKeyFile(file)?.keyId).toBe(first.keyId);
  });

  it('is not created in a folder every user may write to', () => {
    const folder = join(tempFolder(), 'shared');
    mkdirSync(folder);
    chmodSync(folder, 0o777);
    const error = thrown(() => new StoreSecretKeys({ store: 's', keyFile: join(folder, 'lockstep.db.key') }).sealingKey());
    expect(error.message).toContain(`will not be created in ${folder}: every user may write to that folder`);
    expect(error.message).toContain('or set LOCKSTEP_SECRET_KEY');
    // With the sticky bit (as /tmp has) nobody can swap another user's file.
    chmodSync(folder, 0o1777);
    expect(new StoreSecretKeys({ store: 's', keyFile: join(folder, 'lockstep.db.key') }).sealingKey()).not.toBeNull();
  });

  it.skipIf(process.getuid?.() === 0)('says so when its folder is not writable', () => {
    const folder = join(tempFolder(), 'locked');
    mkdirSync(folder);
    chmodSync(folder, 0o500);
    try {
      const error = thrown(() => new StoreSecretKeys({ store: 's', keyFile: join(folder, 'lockstep.db.key') }).sealingKey());
      expect(error.message).toContain(`cannot be created: the folder ${folder} is not writable by this user — make the folder writable, or set LOCKSTEP_SECRET_KEY`);
    } finally {
      chmodSync(folder, 0o700);
    }
  });

  it('prefers LOCKSTEP_SECRET_KEY for sealing, and still opens what the key file sealed (for a rotation or a copy to move it)', () => {
    const file = join(tempFolder(), 'lockstep.db.key');
    const fromFile = createKeyFile(file);
    const sealed = fromFile.seal('x');
    const env = generateSecretKey();
    const keys = new StoreSecretKeys({ store: 's', key: { text: env, source: 'LOCKSTEP_SECRET_KEY' }, keyFile: file });
    expect(keys.sealingKey()?.keyId).toBe(new SecretBox(parseSecretKey(env, 't')).keyId);
    expect(keys.openingKey(fromFile.keyId).open(sealed)).toBe('x');
  });

  it('refuses to open a store that holds secrets only its key file opens while LOCKSTEP_SECRET_KEY is another key; a rotation opens it', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    const keyFile = keyFileFor(path)!;
    const withUrl = (url: string) => ({ ...crmWorkspace(), sources: [{ slug: 'warehouse', type: 'postgres', settings: { url } }] });
    {
      await using store = await SqliteStore.open({ path, secrets: contractSecrets(new StoreSecretKeys({ store: path, keyFile })) });
      await store.applyWorkspace(withUrl('postgres://u:pw@h/db'), 1);
    }
    const fromFile = readKeyFile(keyFile)!;
    const env = generateSecretKey();
    const given = (options: { rotating?: boolean } = {}) => new StoreSecretKeys({ store: path, key: { text: env, source: 'LOCKSTEP_SECRET_KEY' }, keyFile, ...options });
    const refusal = async (keys: StoreSecretKeys) => {
      const error = await SqliteStore.open({ path, secrets: contractSecrets(keys) }).then(
        async (store) => {
          await store.close();
          return null;
        },
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(LockstepError);
      return error as LockstepError;
    };
    const refused = await refusal(given());
    expect(refused.code).toBe(ErrorCode.Store);
    expect(refused.message).toContain(`holds secrets encrypted with key ${fromFile.keyId}, the one in its key file ${keyFile}, but LOCKSTEP_SECRET_KEY is another key`);
    expect(refused.message).not.toContain(env);

    // The previous key of a rotation cut short is the key file's too.
    beginKeyFileRotation(keyFile, generateSecretKey());
    expect((await refusal(given())).message).toContain(`key ${fromFile.keyId}, the one in its key file ${keyFile}.old`);

    // A rotation to the given key opens them, and seals them with it.
    {
      await using store = await SqliteStore.open({ path, secrets: contractSecrets(given({ rotating: true })) });
      expect((await store.resealSecrets()).secrets).toBe(1);
    }
    finishKeyFileRotation(keyFile);
    await using store = await SqliteStore.open({ path, secrets: contractSecrets(given()) });
    expect(await store.getSource('warehouse')).toMatchObject({ settings: { url: 'postgres://u:pw@h/db' } });
  });

  it('without LOCKSTEP_SECRET_KEY, names both ways out for a store holding secrets under its key file and another key, and neither key', () => {
    const keyFile = join(tempFolder(), 'lockstep.db.key');
    const fromFile = createKeyFile(keyFile);
    const otherText = generateSecretKey();
    const other = new SecretBox(parseSecretKey(otherText, 't'));
    const keys = () => new StoreSecretKeys({ store: 's', keyFile });

    const both = thrown(() => keys().checkStore(new Set([fromFile.keyId, other.keyId])));
    expect(both.code).toBe(ErrorCode.Store);
    expect(both.message).toBe(
      `the store s holds secrets encrypted with key ${other.keyId}, and others with key ${fromFile.keyId}, the one in its key file ${keyFile}, which opens only those — ` +
        `if key ${other.keyId} is the one LOCKSTEP_SECRET_KEY is set to elsewhere, encrypt them all again under it with \`LOCKSTEP_NEW_SECRET_KEY=<key ${other.keyId}> lockstep secrets rotate\` (the key file then holds that key); ` +
        `if it is an earlier key of the key file, restore that key file from a backup as ${keyFile}.old and run \`lockstep secrets rotate\``,
    );
    for (const text of [otherText, readFileSync(keyFile, 'utf8').trim()]) expect(both.message).not.toContain(text);

    // Only the other key's secrets: the key file is not theirs, and the variable set to that key opens them all.
    expect(thrown(() => keys().checkStore(new Set([other.keyId]))).message).toBe(
      `the store s holds secrets encrypted with key ${other.keyId}, but its key file ${keyFile} holds key ${fromFile.keyId} — restore the right key file from a backup, or set LOCKSTEP_SECRET_KEY to key ${other.keyId} (base64 or hex of its 32 bytes)`,
    );

    // The earlier key restored as the previous key file: both open.
    writeKeyFile(`${keyFile}.old`, otherText, false);
    expect(() => keys().checkStore(new Set([fromFile.keyId, other.keyId]))).not.toThrow();
  });

  it('tells which key seals the first secret of a store that held none, once, unless the key file holds it', async () => {
    const path = join(tempFolder(), 'lockstep.db');
    const keyFile = keyFileFor(path)!;
    const env = generateSecretKey();
    const told: string[] = [];
    const keys = (key: string) => new StoreSecretKeys({ store: path, key: { text: key, source: 'LOCKSTEP_SECRET_KEY' }, keyFile, onFirstSealed: (message) => told.push(message) });
    const apply = async (key: string, url: string, at: number) => {
      await using store = await SqliteStore.open({ path, secrets: contractSecrets(keys(key)) });
      await store.applyWorkspace({ ...crmWorkspace(), sources: [{ slug: 'warehouse', type: 'postgres', settings: { url } }] }, at);
      await store.applyWorkspace({ ...crmWorkspace(), sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: `${url}2` } }] }, at + 1);
    };
    await apply(env, 'postgres://u:pw@h/db', 1);
    expect(told).toEqual([`the store ${path} keeps its secrets encrypted with key ${new SecretBox(parseSecretKey(env, 't')).keyId}, the one in LOCKSTEP_SECRET_KEY; no key file is written: every process using the store needs LOCKSTEP_SECRET_KEY set to that key`]);
    await apply(env, 'postgres://u:pw@h/db3', 3);
    expect(told).toHaveLength(1);

    // A new store whose key file holds the given key: nothing to tell.
    const second = join(tempFolder(), 'lockstep.db');
    const secondKeys = new StoreSecretKeys({ store: second, key: { text: env, source: 'LOCKSTEP_SECRET_KEY' }, keyFile: keyFileFor(second), onFirstSealed: (message) => told.push(message) });
    writeKeyFile(keyFileFor(second)!, env, false);
    await using store = await SqliteStore.open({ path: second, secrets: contractSecrets(secondKeys) });
    await store.applyWorkspace({ ...crmWorkspace(), sources: [{ slug: 'warehouse', type: 'postgres', settings: { url: 'postgres://u:pw@h/db' } }] }, 1);
    expect(told).toHaveLength(1);
  });
});

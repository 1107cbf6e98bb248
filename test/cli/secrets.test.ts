/**
 * `lockstep secrets rotate` and secrets at rest through the command line: an embedded store keyed
 * by its key file, one keyed by LOCKSTEP_SECRET_KEY, one given LOCKSTEP_SECRET_KEY besides its key
 * file, and a PostgreSQL store. After a rotation the old key no longer opens the store, the new one
 * does, and runs still work.
 */
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox, generateSecretKey, parseSecretKey } from '../../src/core/secrets.js';
import { writeKeyFile } from '../../src/store/secret-keys.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';
import { hierarchyWorkspace, hierarchyWorkspaceYaml, killChildren, runCli, runMain } from './cli-helpers.js';

afterEach(killChildren);

/** Literal secrets the workspace below declares; none may be found in the store. */
const SECRETS = ['pg-pass-4711', 'http-token-31c7', 'slack-path-5521', 'dbt-hook-secret-1b2c'];

/** The hierarchy workspace plus secrets: a source URL with a password, an HTTP token header, a Slack URL, a webhook secret. */
function secretWorkspace(): string {
  const dir = hierarchyWorkspace();
  const yaml = hierarchyWorkspaceYaml()
    .replace(
      'sources:\n',
      'sources:\n  archive: { type: postgres, url: "postgres://etl:pg-pass-4711@127.0.0.1:9/archive" }\n',
    )
    .replace(
      'destinations:\n',
      'destinations:\n  notify: { type: http, url: "https://hooks.example/api", headers: { Authorization: "Bearer http-token-31c7", X-Tenant: "${TENANT}" } }\n',
    );
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    `${yaml}alerts:
  channels:
    ops-slack: { type: slack, url: "https://hooks.slack.com/services/T0/B0/slack-path-5521" }
  rules:
    - { on: [sync_failed], channels: [ops-slack] }
webhooks:
  dbtCloud: { secret: "dbt-hook-secret-1b2c" }
`,
  );
  return dir;
}

/** The embedded store's file and WAL, as bytes. */
function rawFile(dir: string): string {
  const path = join(dir, 'lockstep.db');
  return [path, `${path}-wal`].map((file) => (existsSync(file) ? readFileSync(file).toString('latin1') : '')).join('\n');
}

function keyId(text: string): string {
  return new SecretBox(parseSecretKey(text, 'test')).keyId;
}

function sealedKeyIds(raw: string): string[] {
  return [...new Set([...raw.matchAll(/enc:v1:([A-Za-z0-9_-]+):/g)].map((m) => m[1] as string))];
}

/** Runs `main()` with these LOCKSTEP_* variables set (and every other one unset), as a process given them would; TENANT is set for the workspace's template. */
async function runWith(env: Record<string, string>, args: string[]) {
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (key.startsWith('LOCKSTEP_')) delete process.env[key];
  Object.assign(process.env, { TENANT: 'acme' }, env);
  try {
    return await runMain(args);
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

describe('an embedded store keyed by its key file', () => {
  it('creates the key file with mode 0600 and keeps no secret in the clear', async () => {
    const dir = secretWorkspace();
    const applied = await runWith({}, ['--workspace', dir, 'apply']);
    expect(applied.code, applied.stderr).toBe(0);
    const keyFile = join(dir, 'lockstep.db.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const raw = rawFile(dir);
    for (const secret of SECRETS) expect(raw).not.toContain(secret);
    expect(sealedKeyIds(raw)).toEqual([keyId(readFileSync(keyFile, 'utf8'))]);
    expect(raw).toContain('${TENANT}');
    // Read back as written: nothing to change.
    expect((await runWith({}, ['--workspace', dir, 'plan'])).stdout).toContain('No changes');
  });

  it('rotates: a new key file, the old key no longer opens the store, the new one does, and runs still work', async () => {
    const dir = secretWorkspace();
    expect((await runWith({}, ['--workspace', dir, 'apply'])).code).toBe(0);
    const keyFile = join(dir, 'lockstep.db.key');
    const oldKey = readFileSync(keyFile, 'utf8');

    const rotated = await runWith({}, ['--workspace', dir, 'secrets', 'rotate']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const newKey = readFileSync(keyFile, 'utf8');
    expect(keyId(newKey)).not.toBe(keyId(oldKey));
    expect(rotated.stdout).toContain(`Encrypted 5 secret(s) of ${join(dir, 'lockstep.db')} again under key ${keyId(newKey)}`);
    expect(rotated.stdout).toContain(`The new key is in ${keyFile} (mode 0600), generated here.`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(existsSync(`${keyFile}.old`)).toBe(false);
    const raw = rawFile(dir);
    expect(sealedKeyIds(raw)).toEqual([keyId(newKey)]);
    for (const secret of SECRETS) expect(raw).not.toContain(secret);

    // The old key no longer opens it.
    writeFileSync(keyFile, oldKey);
    const refused = await runWith({}, ['--workspace', dir, 'runs']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`holds secrets encrypted with key ${keyId(newKey)}, but its key file ${keyFile} holds key ${keyId(oldKey)}`);
    expect(refused.stderr).toContain('restore the right key file from a backup');
    const withOldEnv = await runWith({ LOCKSTEP_SECRET_KEY: oldKey.trim() }, ['--workspace', dir, 'runs']);
    expect(withOldEnv.code).toBe(3);

    // The new one does, and runs work (in a process of their own, reading the key file).
    writeFileSync(keyFile, newKey);
    const run = await runCli(['sequence', 'run', 'crm'], { cwd: dir, env: { TENANT: 'acme' }, timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    expect((await runWith({}, ['--workspace', dir, 'plan'])).stdout).toContain('No changes');
    // The key in the environment opens it as well.
    expect((await runWith({ LOCKSTEP_SECRET_KEY: newKey.trim() }, ['--workspace', dir, 'runs'])).code).toBe(0);
  });

  it('finishes a rotation that was cut short before starting the next one', async () => {
    const dir = secretWorkspace();
    expect((await runWith({}, ['--workspace', dir, 'apply'])).code).toBe(0);
    const keyFile = join(dir, 'lockstep.db.key');
    // Cut short after the new key was written, before the store was sealed again with it.
    copyFileSync(keyFile, `${keyFile}.old`);
    const cutShort = generateSecretKey();
    writeKeyFile(keyFile, cutShort, true);
    // The store still opens (the old key is kept), and what is written now is sealed with the new key.
    expect((await runWith({}, ['--workspace', dir, 'runs'])).code).toBe(0);

    const rotated = await runWith({}, ['--workspace', dir, 'secrets', 'rotate']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stderr).toContain('An earlier rotation that was cut short was finished first.');
    expect(existsSync(`${keyFile}.old`)).toBe(false);
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(readFileSync(keyFile, 'utf8'))]);
    expect(keyId(readFileSync(keyFile, 'utf8'))).not.toBe(keyId(cutShort));
    expect((await runWith({}, ['--workspace', dir, 'sequence', 'run', 'crm'])).code).toBe(0);
  });

  it('refuses a key file other users can read, saying how to fix it', async () => {
    const dir = secretWorkspace();
    expect((await runWith({}, ['--workspace', dir, 'apply'])).code).toBe(0);
    const keyFile = join(dir, 'lockstep.db.key');
    const { chmodSync } = await import('node:fs');
    chmodSync(keyFile, 0o644);
    const refused = await runWith({}, ['--workspace', dir, 'runs']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`the key file ${keyFile} can be read or written by other users (mode 0644) — restrict it with \`chmod 600 ${keyFile}\``);
  });
});

describe('no store yet', () => {
  it('an embedded store: there is nothing to rotate, and neither the store nor a key file is created', async () => {
    const dir = secretWorkspace();
    const before = readdirSync(dir).sort();
    const rotated = await runWith({}, ['--workspace', dir, 'secrets', 'rotate']);
    expect(rotated.code).toBe(2);
    expect(rotated.stderr).toBe(
      `error: no secret to rotate, and no key was written. No store yet at ${join(dir, 'lockstep.db')}: nothing was applied or run with it — \`lockstep apply\` creates it.\n`,
    );
    expect(rotated.stdout).toBe('');
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('a PostgreSQL store: there is nothing to rotate, and no schema is created', async () => {
    const url = await createTestDatabase('lockstep_cli_secrets_none');
    const rotated = await runWith({}, ['--workspace', secretWorkspace(), '--store', `${url}?schema=ls_rotated`, 'secrets', 'rotate', '--new-key', generateSecretKey()]);
    expect(rotated.code).toBe(2);
    expect(rotated.stderr).toMatch(/^error: no secret to rotate, and no key was written\. No store yet at postgres:\/\//);
    expect(await sql(url, "SELECT 1 FROM information_schema.schemata WHERE schema_name IN ('lockstep', 'ls_rotated')")).toEqual([]);
  });
});

describe('an embedded store keyed by LOCKSTEP_SECRET_KEY', () => {
  it('needs the new key given, then tells what to set; the old key is refused, the new one runs', async () => {
    const dir = secretWorkspace();
    const k1 = generateSecretKey();
    const k2 = Buffer.from(parseSecretKey(generateSecretKey(), 'test')).toString('hex');
    expect((await runWith({ LOCKSTEP_SECRET_KEY: k1 }, ['--workspace', dir, 'apply'])).code).toBe(0);
    expect(existsSync(join(dir, 'lockstep.db.key'))).toBe(false);
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(k1)]);

    // A current key that is no key at all is what is wrong, whatever the new key.
    const badCurrent = await runWith({ LOCKSTEP_SECRET_KEY: 'not-a-key-77' }, ['--workspace', dir, 'secrets', 'rotate']);
    expect(badCurrent.code).toBe(2);
    expect(badCurrent.stderr).toContain('LOCKSTEP_SECRET_KEY is not a secret key');
    expect(badCurrent.stderr).not.toContain('not-a-key-77');
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(k1)]);

    const withoutNew = await runWith({ LOCKSTEP_SECRET_KEY: k1 }, ['--workspace', dir, 'secrets', 'rotate']);
    expect(withoutNew.code).toBe(2);
    expect(withoutNew.stderr).toContain('is keyed by LOCKSTEP_SECRET_KEY: give the new key with --new-key or LOCKSTEP_NEW_SECRET_KEY');

    const badNew = await runWith({ LOCKSTEP_SECRET_KEY: k1, LOCKSTEP_NEW_SECRET_KEY: 'too-short' }, ['--workspace', dir, 'secrets', 'rotate']);
    expect(badNew.code).toBe(2);
    expect(badNew.stderr).toContain('LOCKSTEP_NEW_SECRET_KEY is not a secret key');
    expect(badNew.stderr).not.toContain('too-short');

    const rotated = await runWith({ LOCKSTEP_SECRET_KEY: k1, LOCKSTEP_NEW_SECRET_KEY: k2 }, ['--workspace', dir, 'secrets', 'rotate']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toContain(`again under key ${keyId(k2)}`);
    expect(rotated.stdout).toContain('Set LOCKSTEP_SECRET_KEY to the new key (the one given with LOCKSTEP_NEW_SECRET_KEY) in every process using the store, and restart them.');
    expect(rotated.stdout).not.toContain(k2);
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(k2)]);

    const old = await runWith({ LOCKSTEP_SECRET_KEY: k1 }, ['--workspace', dir, 'runs']);
    expect(old.code).toBe(3);
    expect(old.stderr).toContain(`encrypted with key ${keyId(k2)}, but LOCKSTEP_SECRET_KEY is key ${keyId(k1)}`);
    const none = await runWith({}, ['--workspace', dir, 'runs']);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain('is missing — restore the key file from a backup, or set LOCKSTEP_SECRET_KEY');

    const run = await runCli(['sequence', 'run', 'crm'], { cwd: dir, env: { TENANT: 'acme', LOCKSTEP_SECRET_KEY: k2 }, timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
  });
});

/** The workspace's source password changed to `password`: applying it seals a new value. */
function changeArchivePassword(dir: string, password: string): void {
  const file = join(dir, 'lockstep.yaml');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/etl:[^@]+@/, `etl:${password}@`));
}

/** Runs the built `lockstep` in the workspace folder with these variables (TENANT set for the workspace's template). */
function lockstep(dir: string, args: string[], env: Record<string, string> = {}) {
  return runCli(args, { cwd: dir, env: { TENANT: 'acme', ...env }, timeoutMs: 60_000 });
}

describe('an embedded store given LOCKSTEP_SECRET_KEY besides its key file', () => {
  it('refuses a key that opens none of the secrets its key file opens, naming both and the fix, and writes nothing', async () => {
    const dir = secretWorkspace();
    expect((await lockstep(dir, ['apply'])).code).toBe(0);
    const store = join(dir, 'lockstep.db');
    const keyFile = join(dir, 'lockstep.db.key');
    const fileKey = readFileSync(keyFile, 'utf8').trim();
    const other = generateSecretKey();

    changeArchivePassword(dir, 'pg-pass-0815');
    for (const command of [['apply'], ['plan'], ['runs'], ['sequence', 'run', 'crm']]) {
      const refused = await lockstep(dir, command, { LOCKSTEP_SECRET_KEY: other });
      expect(refused.code, `${command.join(' ')}: ${refused.stderr}`).toBe(3);
      expect(refused.stderr).toContain(
        `the store ${store} holds secrets encrypted with key ${keyId(fileKey)}, the one in its key file ${keyFile}, but LOCKSTEP_SECRET_KEY is another key (${keyId(other)}) that opens none of them — ` +
          'unset LOCKSTEP_SECRET_KEY to go on with the key file, or encrypt the secrets again under the key in LOCKSTEP_SECRET_KEY with ' +
          '`LOCKSTEP_NEW_SECRET_KEY="$LOCKSTEP_SECRET_KEY" LOCKSTEP_SECRET_KEY= lockstep secrets rotate` (the key file then holds that key)',
      );
      for (const key of [other, fileKey]) expect(refused.stdout + refused.stderr).not.toContain(key);
    }
    // A rotation asked for with the variable set does not take the store for one keyed by it.
    const misread = await lockstep(dir, ['secrets', 'rotate'], { LOCKSTEP_SECRET_KEY: other });
    expect(misread.code).toBe(3);
    expect(misread.stderr).not.toContain('is keyed by LOCKSTEP_SECRET_KEY');
    expect(misread.stderr).toContain(
      `the store ${store} holds secrets encrypted with key ${keyId(fileKey)}, the one in its key file ${keyFile}, but LOCKSTEP_SECRET_KEY is another key (${keyId(other)}) that opens none of them — ` +
        'unset LOCKSTEP_SECRET_KEY to go on with the key file',
    );
    for (const key of [other, fileKey]) expect(misread.stdout + misread.stderr).not.toContain(key);
    // Nothing was sealed with the other key: the key file alone still opens the whole store.
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(fileKey)]);
    expect((await lockstep(dir, ['plan'])).stdout).toContain('update source archive');

    // The fix it names: the store is encrypted again under the variable's key, which the key file then holds.
    const rotated = await lockstep(dir, ['secrets', 'rotate'], { LOCKSTEP_NEW_SECRET_KEY: other });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(keyId(readFileSync(keyFile, 'utf8'))).toBe(keyId(other));
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(other)]);
    const applied = await lockstep(dir, ['apply'], { LOCKSTEP_SECRET_KEY: other });
    expect(applied.code, applied.stderr).toBe(0);
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(other)]);
    expect((await lockstep(dir, ['sequence', 'run', 'crm'])).code).toBe(0);
    expect((await lockstep(dir, ['plan'], { LOCKSTEP_SECRET_KEY: other })).stdout).toContain('No changes');
  });

  it('takes a key that is the one in its key file, in either spelling, and says nothing of it', async () => {
    const dir = secretWorkspace();
    expect((await lockstep(dir, ['apply'])).code).toBe(0);
    const fileKey = readFileSync(join(dir, 'lockstep.db.key'), 'utf8');
    const asHex = Buffer.from(parseSecretKey(fileKey, 'test')).toString('hex');
    changeArchivePassword(dir, 'pg-pass-0815');
    const applied = await lockstep(dir, ['apply'], { LOCKSTEP_SECRET_KEY: asHex });
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stderr).toBe('');
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(fileKey)]);
    expect((await lockstep(dir, ['plan'])).stdout).toContain('No changes');
  });

  it('refuses a store holding secrets under both keys, with either alone, and is mended by one rotation', async () => {
    const dir = secretWorkspace();
    expect((await lockstep(dir, ['apply'])).code).toBe(0);
    const store = join(dir, 'lockstep.db');
    const keyFile = join(dir, 'lockstep.db.key');
    const fileKey = readFileSync(keyFile, 'utf8').trim();
    const other = generateSecretKey();
    // The source's URL sealed again with the other key, as a process given it used to leave the store.
    const db = new Database(store);
    const row = db.prepare("SELECT id, definition FROM sources WHERE slug = 'archive'").get() as { id: number; definition: string };
    const definition = JSON.parse(row.definition) as { settings: { url: string } };
    const fileBox = new SecretBox(parseSecretKey(fileKey, 'test'));
    definition.settings.url = new SecretBox(parseSecretKey(other, 'test')).seal(fileBox.open(definition.settings.url));
    db.prepare('UPDATE sources SET definition = ? WHERE id = ?').run(JSON.stringify(definition), row.id);
    db.close();
    expect(sealedKeyIds(rawFile(dir)).sort()).toEqual([keyId(fileKey), keyId(other)].sort());

    const withVariable = await lockstep(dir, ['runs'], { LOCKSTEP_SECRET_KEY: other });
    expect(withVariable.code).toBe(3);
    expect(withVariable.stderr).toContain(
      `the store ${store} holds secrets encrypted with key ${keyId(other)}, the one in LOCKSTEP_SECRET_KEY, and others with key ${keyId(fileKey)}, the one in its key file ${keyFile}: ` +
        'neither opens them all — encrypt them all again under the key in LOCKSTEP_SECRET_KEY with ' +
        '`LOCKSTEP_NEW_SECRET_KEY="$LOCKSTEP_SECRET_KEY" LOCKSTEP_SECRET_KEY= lockstep secrets rotate` (the key file then holds that key)',
    );
    // Without the variable, the key file opens only some: the message names both ways out, never a key.
    const withoutVariable = await lockstep(dir, ['runs']);
    expect(withoutVariable.code).toBe(3);
    expect(withoutVariable.stderr).toContain(
      `the store ${store} holds secrets encrypted with key ${keyId(other)}, and others with key ${keyId(fileKey)}, the one in its key file ${keyFile}, which opens only those — ` +
        `if key ${keyId(other)} is the one LOCKSTEP_SECRET_KEY is set to elsewhere, encrypt them all again under it with ` +
        `\`LOCKSTEP_NEW_SECRET_KEY=<key ${keyId(other)}> lockstep secrets rotate\` (the key file then holds that key); ` +
        `if it is an earlier key of the key file, restore that key file from a backup as ${keyFile}.old and run \`lockstep secrets rotate\``,
    );
    expect(withoutVariable.stderr).not.toContain('restore the right key file');
    for (const key of [other, fileKey]) expect(withoutVariable.stderr).not.toContain(key);

    // The second way out, on a copy of the store: the other key restored as the earlier key file.
    const copy = secretWorkspace();
    for (const suffix of ['', '-wal']) if (existsSync(`${store}${suffix}`)) copyFileSync(`${store}${suffix}`, join(copy, `lockstep.db${suffix}`));
    writeKeyFile(join(copy, 'lockstep.db.key'), fileKey, false);
    writeKeyFile(join(copy, 'lockstep.db.key.old'), other, false);
    const restored = await lockstep(copy, ['secrets', 'rotate']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(existsSync(join(copy, 'lockstep.db.key.old'))).toBe(false);
    expect(sealedKeyIds(rawFile(copy))).toEqual([keyId(readFileSync(join(copy, 'lockstep.db.key'), 'utf8'))]);
    expect((await lockstep(copy, ['plan'])).stdout).toContain('No changes');

    const rotated = await lockstep(dir, ['secrets', 'rotate'], { LOCKSTEP_NEW_SECRET_KEY: other });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(other)]);
    expect((await lockstep(dir, ['sequence', 'run', 'crm'], { LOCKSTEP_SECRET_KEY: other })).code).toBe(0);
    expect((await lockstep(dir, ['plan'])).stdout).toContain('No changes');
  });

  it('a store with no secret yet takes the given key and says which key it uses', async () => {
    // No key file: the variable's key is the store's, and none is written.
    const dir = secretWorkspace();
    const key = generateSecretKey();
    const applied = await lockstep(dir, ['apply'], { LOCKSTEP_SECRET_KEY: key });
    expect(applied.code, applied.stderr).toBe(0);
    const store = join(dir, 'lockstep.db');
    const keyFile = join(dir, 'lockstep.db.key');
    expect(applied.stderr).toContain(
      `the store ${store} keeps its secrets encrypted with key ${keyId(key)}, the one in LOCKSTEP_SECRET_KEY; no key file is written: every process using the store needs LOCKSTEP_SECRET_KEY set to that key`,
    );
    expect(applied.stderr).not.toContain(key);
    expect(existsSync(keyFile)).toBe(false);
    expect(sealedKeyIds(rawFile(dir))).toEqual([keyId(key)]);
    // Said once: the next process finds the store keyed.
    changeArchivePassword(dir, 'pg-pass-0815');
    const again = await lockstep(dir, ['apply'], { LOCKSTEP_SECRET_KEY: key });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toBe('');

    // A key file that sealed nothing yet: the variable's key is taken, and the message says the key file is not used.
    const second = secretWorkspace();
    const secondKeyFile = join(second, 'lockstep.db.key');
    const stray = generateSecretKey();
    writeKeyFile(secondKeyFile, stray, false);
    const taken = await lockstep(second, ['apply'], { LOCKSTEP_SECRET_KEY: key });
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stderr).toContain(
      `the store ${join(second, 'lockstep.db')} keeps its secrets encrypted with key ${keyId(key)}, the one in LOCKSTEP_SECRET_KEY, not with key ${keyId(stray)} of its key file ${secondKeyFile}: every process using the store needs LOCKSTEP_SECRET_KEY set to that key`,
    );
    for (const text of [key, stray]) expect(taken.stderr).not.toContain(text);
    expect(sealedKeyIds(rawFile(second))).toEqual([keyId(key)]);
    expect(keyId(readFileSync(secondKeyFile, 'utf8'))).toBe(keyId(stray));
  });
});

describe('a PostgreSQL store', () => {
  it('warns while it has no key, is encrypted by a rotation to a key, then needs that key', async () => {
    const url = await createTestDatabase('lockstep_cli_secrets');
    const dir = secretWorkspace();
    const store = ['--workspace', dir, '--store', url];
    const raw = async () => (await sql<{ text: string }>(url, "SELECT string_agg(t::text, E'\\n') AS text FROM (SELECT definition FROM lockstep.sources UNION ALL SELECT definition FROM lockstep.destinations UNION ALL SELECT definition FROM lockstep.alert_definitions UNION ALL SELECT settings FROM lockstep.webhook_settings) AS t"))[0]?.text ?? '';

    const plain = await runWith({}, [...store, 'apply']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toContain('is kept unencrypted in the store: LOCKSTEP_SECRET_KEY is not set');
    expect(await raw()).toContain('pg-pass-4711');

    const k1 = generateSecretKey();
    const sealed = await runWith({}, [...store, 'secrets', 'rotate', '--new-key', k1]);
    expect(sealed.code, sealed.stderr).toBe(0);
    expect(sealed.stdout).toContain(`Encrypted 5 secret(s) of the PostgreSQL store again under key ${keyId(k1)}`);
    expect(sealed.stdout).toContain('(the one given with --new-key)');
    for (const secret of SECRETS) expect(await raw()).not.toContain(secret);

    const none = await runWith({}, [...store, 'runs']);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain(`encrypted with key ${keyId(k1)}, but LOCKSTEP_SECRET_KEY is not set`);

    const k2 = generateSecretKey();
    expect((await runWith({ LOCKSTEP_SECRET_KEY: k1, LOCKSTEP_NEW_SECRET_KEY: k2 }, [...store, 'secrets', 'rotate'])).code).toBe(0);
    expect((await runWith({ LOCKSTEP_SECRET_KEY: k1 }, [...store, 'runs'])).code).toBe(3);
    const run = await runWith({ LOCKSTEP_SECRET_KEY: k2 }, [...store, 'sequence', 'run', 'crm']);
    expect(run.code, run.stderr).toBe(0);
    expect((await runWith({ LOCKSTEP_SECRET_KEY: k2 }, [...store, 'plan'])).stdout).toContain('No changes');
    expect(sealedKeyIds(await raw())).toEqual([keyId(k2)]);
  });
});

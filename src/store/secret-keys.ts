/**
 * Where a store's secret keys come from (core/secrets.ts seals and opens with them):
 *
 * - `LOCKSTEP_SECRET_KEY`: 32 bytes in base64 or hex. Every process sharing a PostgreSQL store
 *   needs it once the store holds a sealed value; without it a PostgreSQL store writes secrets as
 *   they are (and says so).
 * - for the embedded store only, when that variable is not set: a key file beside the store file
 *   (`lockstep.db.key`, the key in base64), created with mode 0600 when the first secret is
 *   written. A key file other users can read or write is refused, and none is created in a folder
 *   every user may write to.
 *
 * When the variable is set it is the store's key, as on PostgreSQL: an embedded store holding
 * secrets that only its key file opens is refused when it opens, naming both, rather than taken up
 * with new secrets sealed under the variable's key, which would leave a store that needs both keys.
 * A store that holds no sealed value yet takes the variable's key and says so when it first seals.
 *
 * A rotation of the key file keeps the previous key as `<key file>.old` until every value is sealed
 * again, so a rotation cut short leaves a store that still opens, and the next one finishes it.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { NEW_KEY_HINT, SecretBox, generateSecretKey, parseSecretKey, type SecretKeys, type SecretResealer } from '../core/secrets.js';

/** The variable holding the key secrets are sealed with. */
export const SECRET_KEY_ENV = 'LOCKSTEP_SECRET_KEY';
/** The variable holding the new key of `lockstep secrets rotate` (or `--new-key`). */
export const NEW_SECRET_KEY_ENV = 'LOCKSTEP_NEW_SECRET_KEY';

/** A key as text, with where it came from (for messages; the text itself is never shown). */
export interface KeyText {
  text: string;
  /** e.g. `LOCKSTEP_SECRET_KEY`, `--new-key`. */
  source: string;
}

export interface StoreSecretKeysOptions {
  /** The store, for messages: its file path or where a PostgreSQL store is. */
  store: string;
  /** The key values are sealed with (LOCKSTEP_SECRET_KEY, or the new key of a rotation); absent: the key file's. */
  key?: KeyText;
  /** Keys that still open what they sealed (the current key, during a rotation to `key`) (default: none). */
  previousKeys?: readonly KeyText[];
  /** The embedded store's key file; null for a store that has none (PostgreSQL, `:memory:`). */
  keyFile: string | null;
  /**
   * Whether the store is being moved to `key` (a rotation, `lockstep store migrate`): secrets that
   * only the key file opens are expected, and opened (default: false — a store holding such
   * secrets is refused when it opens, see `checkStore`).
   */
  rotating?: boolean;
  /**
   * Told once, with a message naming the key by its id, when `key` seals the first secret of an
   * embedded store that held none when it opened and whose key file does not hold that key
   * (default: nobody).
   */
  onFirstSealed?: (message: string) => void;
}

/** The key file of the embedded store at `storePath` (none for `:memory:`). */
export function keyFileFor(storePath: string): string | null {
  return storePath === ':memory:' ? null : `${storePath}.key`;
}

/** Where a key file keeps the previous key while a rotation is under way. */
export function previousKeyFile(keyFile: string): string {
  return `${keyFile}.old`;
}

/** The keys of one store, from its options; key files are read when needed (another process may rotate them). */
export class StoreSecretKeys implements SecretKeys {
  private readonly given: SecretBox | null;
  private readonly givenSource: string | null;
  /** The ids of the keys given in the options (`key` and `previousKeys`), not read from a key file. */
  private readonly givenIds: ReadonlySet<string>;
  private readonly known = new Map<string, SecretBox>();
  /** Whether the store held no sealed value when it opened (see checkStore), until the first sealing is told. */
  private firstSealingToTell = false;
  /** The ids of the keys that sealed what the store held when it opened (see checkStore); empty before. */
  private heldKeyIds: ReadonlySet<string> = new Set();

  constructor(private readonly options: StoreSecretKeysOptions) {
    this.given = options.key ? new SecretBox(parseSecretKey(options.key.text, options.key.source)) : null;
    this.givenSource = options.key?.source ?? null;
    if (this.given) this.known.set(this.given.keyId, this.given);
    for (const previous of options.previousKeys ?? []) {
      const box = new SecretBox(parseSecretKey(previous.text, previous.source));
      if (!this.known.has(box.keyId)) this.known.set(box.keyId, box);
    }
    this.givenIds = new Set(this.known.keys());
  }

  sealingKey(): SecretBox | null {
    if (this.given) {
      if (this.firstSealingToTell) {
        this.firstSealingToTell = false;
        const message = this.firstSealingMessage(this.given);
        if (message !== null) this.options.onFirstSealed?.(message);
      }
      return this.given;
    }
    const file = this.options.keyFile;
    if (file === null) return null;
    // Read each time: a rotation by another process replaces the file, and this one follows it.
    const box = readKeyFile(file) ?? createKeyFile(file);
    this.known.set(box.keyId, box);
    return box;
  }

  openingKey(keyId: string): SecretBox {
    const known = this.known.get(keyId);
    if (known) return known;
    const file = this.options.keyFile;
    let inFile: SecretBox | null = null;
    if (file !== null) {
      inFile = readKeyFile(file);
      for (const box of [inFile, readKeyFile(previousKeyFile(file))]) if (box) this.known.set(box.keyId, box);
      const found = this.known.get(keyId);
      if (found) return found;
    }
    throw new LockstepError(ErrorCode.Store, this.missingKeyMessage(keyId, inFile));
  }

  /**
   * Every key that sealed a value of the store must open here. With a key given, a secret that only
   * the key file (or the previous key of a rotation under way) opens is refused, naming both keys'
   * sources: the given key would seal new secrets beside it, and a process with either key alone
   * could then no longer open the store. Opening the key file's secrets anyway is a rotation's work.
   */
  checkStore(keyIds: ReadonlySet<string>): void {
    this.firstSealingToTell = keyIds.size === 0;
    this.heldKeyIds = keyIds;
    const file = this.options.keyFile;
    if (this.given && file !== null && !this.options.rotating) {
      for (const path of [file, previousKeyFile(file)]) {
        const inFile = readKeyFile(path);
        if (inFile && keyIds.has(inFile.keyId) && !this.givenIds.has(inFile.keyId)) {
          throw new LockstepError(ErrorCode.Store, this.twoKeysMessage(this.given, inFile, path, keyIds.has(this.given.keyId)));
        }
      }
    }
    for (const keyId of keyIds) this.openingKey(keyId);
  }

  private twoKeysMessage(given: SecretBox, inFile: SecretBox, file: string, givenSealedSome: boolean): string {
    const source = this.givenSource as string;
    const rotate = `encrypt ${givenSealedSome ? 'them all' : 'the secrets'} again under the key in ${source} with \`${NEW_SECRET_KEY_ENV}="$${source}" ${source}= lockstep secrets rotate\` (the key file then holds that key)`;
    const store = `the store ${this.options.store}`;
    if (givenSealedSome) {
      return `${store} holds secrets encrypted with key ${given.keyId}, the one in ${source}, and others with key ${inFile.keyId}, the one in its key file ${file}: neither opens them all — ${rotate}`;
    }
    return `${store} holds secrets encrypted with key ${inFile.keyId}, the one in its key file ${file}, but ${source} is another key (${given.keyId}) that opens none of them — unset ${source} to go on with the key file, or ${rotate}`;
  }

  /** What to tell when `given` seals a store's first secret; null when its key file holds that key (or it has none, as `:memory:`). */
  private firstSealingMessage(given: SecretBox): string | null {
    const file = this.options.keyFile;
    if (file === null) return null;
    const inFile = readKeyFile(file);
    if (inFile?.keyId === given.keyId) return null;
    const uses = `the store ${this.options.store} keeps its secrets encrypted with key ${given.keyId}, the one in ${this.givenSource}`;
    const needs = `every process using the store needs ${this.givenSource} set to that key`;
    return inFile ? `${uses}, not with key ${inFile.keyId} of its key file ${file}: ${needs}` : `${uses}; no key file is written: ${needs}`;
  }

  private missingKeyMessage(keyId: string, inFile: SecretBox | null): string {
    const held = `the store ${this.options.store} holds secrets encrypted with key ${keyId}`;
    const file = this.options.keyFile;
    if (this.given) {
      return `${held}, but ${this.givenSource} is key ${this.given.keyId}${file !== null ? ` and the key file ${file} ${inFile ? `holds key ${inFile.keyId}` : 'does not exist'}` : ''} — set ${SECRET_KEY_ENV} to the key they were encrypted with (after \`lockstep secrets rotate\`: its new key)`;
    }
    if (file === null) {
      return `${held}, but ${SECRET_KEY_ENV} is not set — set it to that key (base64 or hex of its 32 bytes) in every process using the store`;
    }
    if (inFile === null) {
      return `${held}, but its key file ${file} is missing — restore the key file from a backup, or set ${SECRET_KEY_ENV} to that key (base64 or hex of its 32 bytes)`;
    }
    if (this.heldKeyIds.has(inFile.keyId)) {
      // The key file opens the others: restoring another key file in its place would lose them, and
      // the variable set to the other key is refused beside them (see twoKeysMessage). The other key
      // is either the one LOCKSTEP_SECRET_KEY is set to in other processes, or an earlier key file's.
      return (
        `${held}, and others with key ${inFile.keyId}, the one in its key file ${file}, which opens only those — ` +
        `if key ${keyId} is the one ${SECRET_KEY_ENV} is set to elsewhere, encrypt them all again under it with \`${NEW_SECRET_KEY_ENV}=<key ${keyId}> lockstep secrets rotate\` (the key file then holds that key); ` +
        `if it is an earlier key of the key file, restore that key file from a backup as ${previousKeyFile(file)} and run \`lockstep secrets rotate\``
      );
    }
    return `${held}, but its key file ${file} holds key ${inFile.keyId} — restore the right key file from a backup, or set ${SECRET_KEY_ENV} to key ${keyId} (base64 or hex of its 32 bytes)`;
  }
}

/** The key in a key file, or null when there is none; refuses a file others may read or write. */
export function readKeyFile(file: string): SecretBox | null {
  let text: string;
  try {
    const mode = statSync(file).mode;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new LockstepError(
        ErrorCode.Store,
        `the key file ${file} can be read or written by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}) — restrict it with \`chmod 600 ${file}\``,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof LockstepError) throw error;
    if (isFsError(error, 'ENOENT')) return null;
    throw new LockstepError(ErrorCode.Store, `the key file ${file} cannot be read: ${fsReason(error)} — it must be readable by the user running Lockstep`, { cause: error });
  }
  return new SecretBox(parseSecretKey(text, `the key file ${file}`));
}

/**
 * Creates the key file with a new random key and mode 0600, or reads the one another process
 * created first (the file appears whole: it is written aside and linked into place).
 */
export function createKeyFile(file: string): SecretBox {
  const folder = dirname(file);
  try {
    const mode = statSync(folder).mode;
    // Anyone able to write to the folder could swap the key; the sticky bit (as on /tmp) stops that.
    if (process.platform !== 'win32' && (mode & 0o002) !== 0 && (mode & 0o1000) === 0) {
      throw new LockstepError(
        ErrorCode.Store,
        `the key file ${file} that encrypts the store's secrets will not be created in ${folder}: every user may write to that folder — keep the store in a folder only its owner can write to, or set ${SECRET_KEY_ENV} (${NEW_KEY_HINT})`,
      );
    }
  } catch (error) {
    if (error instanceof LockstepError) throw error;
  }
  try {
    writeKeyFile(file, generateSecretKey(), false);
  } catch (error) {
    if (!isFsError(error, 'EEXIST')) {
      const reason = isFsError(error, 'EACCES') || isFsError(error, 'EPERM') || isFsError(error, 'EROFS') ? `the folder ${folder} is not writable by this user` : fsReason(error);
      throw new LockstepError(
        ErrorCode.Store,
        `the key file ${file} that encrypts the store's secrets cannot be created: ${reason} — make the folder writable, or set ${SECRET_KEY_ENV} (${NEW_KEY_HINT})`,
        { cause: error },
      );
    }
  }
  const box = readKeyFile(file);
  if (!box) throw new LockstepError(ErrorCode.Store, `the key file ${file} was created but is gone — is another process rotating it?`);
  return box;
}

/**
 * Writes `key` (base64 or hex text) as the key file, mode 0600, atomically: whole or not at all.
 * `replace` false fails with EEXIST when the file exists.
 */
export function writeKeyFile(file: string, key: string, replace: boolean): void {
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    // The umask may only remove bits; this makes sure the owner can read it and nobody else.
    if (process.platform !== 'win32') chmodSync(temporary, 0o600);
    writeSync(fd, `${key.trim()}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    if (replace) renameSync(temporary, file);
    else linkSync(temporary, file);
  } finally {
    if (!replace) unlinkOrIgnore(temporary);
  }
  syncFolder(dirname(file));
}

/**
 * Starts a rotation of the key file to `newKey`: the current key is kept as `<key file>.old` and the
 * new one written in its place. Values sealed with either open until `finishKeyFileRotation`.
 */
export function beginKeyFileRotation(file: string, newKey: string): void {
  const current = readKeyFile(file);
  if (current) writeKeyFile(previousKeyFile(file), readFileSync(file, 'utf8'), true);
  writeKeyFile(file, newKey, true);
}

/** Ends a rotation: the previous key is removed (every value is sealed with the new one). */
export function finishKeyFileRotation(file: string): void {
  unlinkOrIgnore(previousKeyFile(file));
  syncFolder(dirname(file));
}

/** Whether a rotation of this key file was started and not finished. */
export function rotationUnfinished(file: string): boolean {
  try {
    statSync(previousKeyFile(file));
    return true;
  } catch {
    return false;
  }
}

function syncFolder(folder: string): void {
  try {
    const fd = openSync(folder, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not every platform can sync a folder; the rename itself is atomic.
  }
}

function unlinkOrIgnore(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}

function isFsError(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

function fsReason(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : String(error);
}

/** What `rotateSecretKey` did. */
export interface SecretRotation {
  /** Secret values the store now holds, every one sealed with the new key. */
  secrets: number;
  /** The new key's id (as sealed values name it). */
  keyId: string;
  /** The key file holding the new key; null when every process must be given it in LOCKSTEP_SECRET_KEY. */
  keyFile: string | null;
  /** Whether the new key was generated here (and kept only in the key file). */
  generated: boolean;
  /** Whether a rotation cut short earlier was finished first. */
  finishedEarlier: boolean;
}

/** A store opened for a rotation: it seals everything again, then closes. */
export interface ResealingStore extends SecretResealer {
  close(): Promise<void>;
}

export interface RotateSecretKeyOptions {
  /** The store, for messages. */
  store: string;
  /** The embedded store's key file; null for PostgreSQL. */
  keyFile: string | null;
  /** The key in use from LOCKSTEP_SECRET_KEY, when set (then the key file is not what is rotated). */
  currentKey?: KeyText;
  /** The new key (`--new-key` or LOCKSTEP_NEW_SECRET_KEY); a key file store gets a generated one when absent. */
  newKey?: KeyText;
  /** Opens the store with these keys (and checks that they open everything it holds). */
  open: (keys: SecretKeys) => Promise<ResealingStore>;
}

/**
 * Seals every secret of a store again under a new key, in one transaction of the store. A store
 * keyed by its key file gets the new key there (the old one kept as `.old` until the store is
 * resealed); a store keyed by LOCKSTEP_SECRET_KEY, or a PostgreSQL store, needs the new key given,
 * and every process must then be given it.
 */
export async function rotateSecretKey(options: RotateSecretKeyOptions): Promise<SecretRotation> {
  const reseal = async (keys: SecretKeys): Promise<number> => {
    const store = await options.open(keys);
    try {
      return (await store.resealSecrets()).secrets;
    } finally {
      await store.close();
    }
  };
  // A current key that is not a key is the fault to name, before anything asks for a new one.
  if (options.currentKey) parseSecretKey(options.currentKey.text, options.currentKey.source);
  const newBox = options.newKey ? new SecretBox(parseSecretKey(options.newKey.text, options.newKey.source)) : null;
  const file = options.keyFile;
  if (file !== null && !options.currentKey) {
    // Secrets already sealed with the new key open with it: a store given that key in
    // LOCKSTEP_SECRET_KEY beside its key file may hold some, and is moved wholly to it here.
    const fileKeys = () => new StoreSecretKeys({ store: options.store, keyFile: file, previousKeys: options.newKey ? [options.newKey] : [] });
    let finishedEarlier = false;
    if (rotationUnfinished(file)) {
      // A rotation cut short: its new key is in the file, some values may still be sealed with the old one.
      await reseal(fileKeys());
      finishKeyFileRotation(file);
      finishedEarlier = true;
    } else {
      // The store must open with its key before the key file changes (opening checks every key it needs).
      await (await options.open(fileKeys())).close();
    }
    const key = options.newKey?.text ?? generateSecretKey();
    beginKeyFileRotation(file, key);
    const secrets = await reseal(new StoreSecretKeys({ store: options.store, keyFile: file }));
    finishKeyFileRotation(file);
    const box = readKeyFile(file) as SecretBox;
    return { secrets, keyId: box.keyId, keyFile: file, generated: !options.newKey, finishedEarlier };
  }
  if (!options.newKey || !newBox) {
    // Beside a key file, the variable being set does not make it the store's key: opening with it
    // refuses a store whose secrets only the key file opens, saying so and how to rotate either key
    // (see checkStore), so the words below are said only of a store the variable's key opens.
    if (file !== null && options.currentKey) await (await options.open(new StoreSecretKeys({ store: options.store, key: options.currentKey, keyFile: file }))).close();
    throw new LockstepError(
      ErrorCode.Validation,
      `the store ${options.store} is keyed by ${options.currentKey ? options.currentKey.source : SECRET_KEY_ENV}: give the new key with --new-key or ${NEW_SECRET_KEY_ENV} (${NEW_KEY_HINT})`,
    );
  }
  const secrets = await reseal(
    new StoreSecretKeys({ store: options.store, key: options.newKey, previousKeys: options.currentKey ? [options.currentKey] : [], keyFile: file, rotating: true }),
  );
  return { secrets, keyId: newBox.keyId, keyFile: null, generated: false, finishedEarlier: false };
}

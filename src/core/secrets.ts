/**
 * Secrets at rest (SPEC §9): every value a store keeps that holds a secret — a connection's secret
 * settings (a URL with its password, tokens, header values), an alert channel's URL, key or SMTP
 * password, a webhook endpoint's signing secret — is sealed with AES-256-GCM before it is written
 * and opened when it is read, so the store's files and tables never hold it in the clear and
 * everything above the store sees plaintext.
 *
 * A sealed value describes itself: `enc:v1:<key id>:<iv>:<ciphertext and tag>`, each part
 * base64url. The key id is the start of the key's SHA-256, so a value read with another key is
 * refused naming both keys, never opened into garbage. A plain value (kept before sealing, or
 * written while no key was configured) reads as it is and is sealed on its next write. A value
 * that is only an `${ENV}` template names a variable and holds no secret: it is kept as it is.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { AlertChannelDef, AlertChannelType, AlertsDefinition } from './alerts.js';
import { isTemplateOnly } from './connections.js';
import { ErrorCode, LockstepError } from './errors.js';
import type { WebhookSettings } from './webhooks.js';
import type { EntityKind } from './workspace.js';

/** Bytes of a key: AES-256. */
export const SECRET_KEY_BYTES = 32;
/** What every sealed value starts with (format version 1). */
export const SEALED_PREFIX = 'enc:v1:';
/** How to make a key, for messages. */
export const NEW_KEY_HINT = '32 random bytes in base64 (44 characters) or hex (64 characters), e.g. from `openssl rand -base64 32`';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const SEALED = /^enc:v1:([A-Za-z0-9_-]{1,64}):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)$/;
const SEALED_KEY_IDS = /enc:v1:([A-Za-z0-9_-]{1,64}):[A-Za-z0-9_-]+:[A-Za-z0-9_-]+/g;

/**
 * A key from its text: base64 (standard or url-safe) or hex of exactly 32 bytes. `source` names
 * where it came from (`LOCKSTEP_SECRET_KEY`, `--new-key`, a key file) for the message; the value
 * itself is never echoed.
 */
export function parseSecretKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  let key: Buffer | null = null;
  if (/^[0-9a-fA-F]+$/.test(trimmed) && trimmed.length === SECRET_KEY_BYTES * 2) key = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) key = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key === null || key.length !== SECRET_KEY_BYTES) {
    const got = key === null ? 'it is neither base64 nor hex' : `it decodes to ${key.length} bytes`;
    throw new LockstepError(ErrorCode.Validation, `${source} is not a secret key: ${got} — it must be ${NEW_KEY_HINT}`);
  }
  return key;
}

/** A new random key, as base64 text (what key files hold and what `parseSecretKey` reads). */
export function generateSecretKey(): string {
  return randomBytes(SECRET_KEY_BYTES).toString('base64');
}

/** Whether a stored value is sealed (`enc:v1:...`). */
export function isSealed(value: string): boolean {
  return value.startsWith(SEALED_PREFIX) && SEALED.test(value);
}

/** The ids of the keys that sealed the values found anywhere in `text` (a stored JSON definition). */
export function sealedKeyIds(text: string): Set<string> {
  return new Set([...text.matchAll(SEALED_KEY_IDS)].map((m) => m[1] as string));
}

/** Thrown by `SecretBox.open` when a value does not open with the box's key. */
export class SealError extends Error {}

/** Seals and opens values with one AES-256-GCM key. */
export class SecretBox {
  /** The first 6 bytes of the key's SHA-256, base64url: names the key in sealed values and messages. */
  readonly keyId: string;
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== SECRET_KEY_BYTES) throw new Error(`a secret key has ${SECRET_KEY_BYTES} bytes, not ${key.length}`);
    this.key = Buffer.from(key);
    this.keyId = createHash('sha256').update(this.key).digest().subarray(0, 6).toString('base64url');
  }

  /** `plain` sealed under a fresh random IV: `enc:v1:<key id>:<iv>:<ciphertext and tag>`. */
  seal(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const header = `${SEALED_PREFIX}${this.keyId}`;
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    // The header is authenticated too: a value cannot be passed off as sealed by another key.
    cipher.setAAD(Buffer.from(header));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${header}:${iv.toString('base64url')}:${body.toString('base64url')}`;
  }

  /** The plaintext of a value this key sealed; throws SealError when it was not, or was changed since. */
  open(sealed: string): string {
    const match = SEALED.exec(sealed);
    if (!match) throw new SealError('not a sealed value');
    const [, keyId, ivText, bodyText] = match as unknown as [string, string, string, string];
    if (keyId !== this.keyId) throw new SealError(`sealed with key ${keyId}, not ${this.keyId}`);
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new SealError('the value is cut short');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
      decipher.setAAD(Buffer.from(`${SEALED_PREFIX}${keyId}`));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SealError(`it does not authenticate under key ${keyId}: it was changed or damaged`);
    }
  }
}

/** The id of the key that sealed a value (null when it is not sealed). */
export function sealedKeyId(value: string): string | null {
  const match = SEALED.exec(value);
  return match ? (match[1] as string) : null;
}

/** Where a store's keys come from: resolved at the edge (environment, key file), used by the codec. */
export interface SecretKeys {
  /**
   * The key values are sealed with when written, or null when none is configured (they are then
   * written as they are). May create the key (an embedded store's key file) on first use; throws a
   * LockstepError saying how to fix it when it cannot.
   */
  sealingKey(): SecretBox | null;
  /** The key with this id; throws a LockstepError naming what is missing and how to fix it. */
  openingKey(keyId: string): SecretBox;
  /**
   * Checks, as a store opens, that these keys suit the ids of the keys that sealed what it holds
   * (empty when it holds no sealed value yet); throws a LockstepError saying how to fix it when
   * they do not (default: every id must have an opening key).
   */
  checkStore?(keyIds: ReadonlySet<string>): void;
}

/**
 * Settings of each alert channel type that hold secrets: sealed at rest, and hidden wherever they are
 * shown (API, CLI, logs; a URL keeps its scheme, host and path, see `redactUrl`): a Slack webhook URL,
 * a webhook's URL (it may carry a token in its query or user information), signing secret and header
 * values, the SMTP URL with its password, a PagerDuty routing key.
 */
export const ALERT_CHANNEL_SECRETS: Readonly<Record<AlertChannelType, readonly string[]>> = {
  slack: ['url'],
  webhook: ['url', 'secret', 'headers'],
  email: ['smtp'],
  pagerduty: ['routingKey'],
};

export interface SecretCodecOptions {
  keys: SecretKeys;
  /**
   * The settings of a connection kind that hold secrets, as dotted paths into its settings (the
   * registry's `ConnectorKind.secrets`); a secret object (headers) has each value sealed.
   */
  secretSettings: (type: string) => readonly string[];
  /**
   * Called when a secret is written as it is because no key is configured (PostgreSQL without
   * LOCKSTEP_SECRET_KEY), with where it is (default: nothing).
   */
  onUnsealed?: (where: string) => void;
}

type Path = ReadonlyArray<string | number>;

/**
 * What a store applies to what it writes and reads: the secrets in entity definitions, alert
 * definitions and webhook settings sealed on the way in and opened on the way out. Besides the
 * secrets, any other string that happens to look sealed is sealed too, so reading can open every
 * sealed-looking string without knowing which fields are secret.
 */
export class SecretCodec {
  constructor(private readonly options: SecretCodecOptions) {}

  /** An entity's stored definition (without slug and identity) with its secrets sealed. */
  sealEntity(kind: EntityKind, definition: Record<string, unknown>): Record<string, unknown> {
    const isConnection = (kind === 'source' || kind === 'destination') && typeof definition.type === 'string';
    const paths = isConnection ? this.options.secretSettings(definition.type as string).map((p) => ['settings', ...p.split('.')]) : [];
    return this.sealDeep(definition, paths, (path) => `${kind} ${pathText(path)}`) as Record<string, unknown>;
  }

  /** An entity's stored definition with every sealed value opened; `where` names it in errors (e.g. `source "warehouse"`). */
  openEntity<T>(definition: T, where: string): T {
    return this.openDeep(definition, [], where);
  }

  sealAlerts(definition: AlertsDefinition): AlertsDefinition {
    return {
      channels: definition.channels.map(
        (channel) =>
          this.sealDeep(channel, (ALERT_CHANNEL_SECRETS[channel.type] ?? []).map((p) => p.split('.')), (path) => `alert channel "${channel.name}" ${pathText(path)}`) as AlertChannelDef,
      ),
      rules: this.sealDeep(definition.rules, [], (path) => `alert rule ${pathText(path)}`) as AlertsDefinition['rules'],
    };
  }

  openAlerts(definition: AlertsDefinition): AlertsDefinition {
    return {
      channels: definition.channels.map((channel) => this.openDeep(channel, [], `alert channel "${channel.name}"`)),
      rules: this.openDeep(definition.rules, [], 'alert rules'),
    };
  }

  /** One webhook endpoint's settings (`{ secret }`) with its secret sealed. */
  sealWebhook(endpoint: keyof WebhookSettings, settings: NonNullable<WebhookSettings[keyof WebhookSettings]>): NonNullable<WebhookSettings[keyof WebhookSettings]> {
    return this.sealDeep(settings, [['secret']], () => `webhooks.${endpoint}.secret`) as typeof settings;
  }

  openWebhook(endpoint: keyof WebhookSettings, settings: NonNullable<WebhookSettings[keyof WebhookSettings]>): NonNullable<WebhookSettings[keyof WebhookSettings]> {
    return this.openDeep(settings, [], `webhooks.${endpoint}`);
  }

  /**
   * Checks that every key that sealed a value in `texts` (stored definitions, as text) is at hand;
   * throws the keys' message for the first one missing. Stores call it when they open, so a store
   * whose key is missing or wrong is refused at once rather than on its first read.
   */
  checkKeys(texts: Iterable<string>): void {
    const ids = new Set<string>();
    for (const text of texts) for (const id of sealedKeyIds(text)) ids.add(id);
    const keys = this.options.keys;
    if (keys.checkStore) keys.checkStore(ids);
    else for (const id of ids) keys.openingKey(id);
  }

  private sealDeep(value: unknown, secretPaths: ReadonlyArray<readonly string[]>, where: (path: Path) => string): unknown {
    let box: SecretBox | null | undefined;
    const seal = (text: string, path: Path): string => {
      if (box === undefined) box = this.options.keys.sealingKey();
      if (box === null) {
        this.options.onUnsealed?.(where(path));
        return text;
      }
      return box.seal(text);
    };
    return mapStrings(value, [], (text, path) => {
      const secret = secretPaths.some((p) => p.length <= path.length && p.every((part, i) => String(path[i]) === part));
      // A template alone holds no secret (it names a variable); an empty value neither.
      if (secret && text !== '' && !isTemplateOnly(text)) return seal(text, path);
      // Anything else that looks sealed is sealed too, so it reads back as it was written.
      return text.startsWith(SEALED_PREFIX) ? seal(text, path) : text;
    });
  }

  private openDeep<T>(value: T, start: Path, where: string): T {
    return mapStrings(value, start, (text, path) => {
      if (!text.startsWith(SEALED_PREFIX)) return text;
      const keyId = sealedKeyId(text);
      if (keyId === null) return text;
      const box = this.options.keys.openingKey(keyId);
      try {
        return box.open(text);
      } catch (error) {
        const reason = error instanceof SealError ? error.message : String(error);
        throw new LockstepError(
          ErrorCode.Store,
          `the store's secret ${where}${path.length > 0 ? ` ${pathText(path)}` : ''} cannot be decrypted: ${reason} — write it again (\`lockstep apply\`, or through the API)`,
        );
      }
    }) as T;
  }
}

/** `value` with every string inside it (objects and lists walked) replaced by `map(string, path)`. */
function mapStrings(value: unknown, path: Path, map: (text: string, path: Path) => string): unknown {
  if (typeof value === 'string') return map(value, path);
  if (Array.isArray(value)) return value.map((v, i) => mapStrings(v, [...path, i], map));
  // fromEntries keeps a `__proto__` key a field like any other.
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, [...path, k], map)]));
  return value;
}

function pathText(path: Path): string {
  return path.map(String).join('.');
}

/** A store that seals secrets can seal every one of them again at once (`lockstep secrets rotate`). */
export interface SecretResealer {
  /**
   * Opens every secret the store keeps (in live and deleted entities, alert channels, webhook
   * endpoints) and seals it again with the current sealing key, plain ones too, in one
   * transaction; answers how many sealed values the store holds afterwards.
   */
  resealSecrets(): Promise<{ secrets: number }>;
}

/** How many sealed values a stored text holds. */
export function countSealed(text: string): number {
  return [...text.matchAll(SEALED_KEY_IDS)].length;
}

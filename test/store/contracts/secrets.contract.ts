/**
 * Secrets at rest: what a store keeps of a connection's secret settings, an alert channel's secrets
 * and a webhook endpoint's secret is encrypted (`enc:v1:...`), so none of them can be found in the
 * store's file or tables, while everything read through the port is exactly what was written. A
 * store whose keys cannot open what it holds is refused; values kept in the clear by an older
 * version still read; a reseal under a new key leaves the old key useless.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertsDefinition } from '../../../src/core/alerts.js';
import { PAGERDUTY_EVENTS_URL } from '../../../src/core/alerts.js';
import { ErrorCode, LockstepError } from '../../../src/core/errors.js';
import type { Store } from '../../../src/core/ports.js';
import { SecretBox, generateSecretKey, parseSecretKey, type SecretKeys } from '../../../src/core/secrets.js';
import type { WorkspaceDefinition } from '../../../src/core/workspace.js';
import { StoreSecretKeys } from '../../../src/store/secret-keys.js';
import { T0, contractSecrets, crmWorkspace, type OpenStore, type StoreUnderTest } from './fixtures.js';

/** Literal secrets the workspace below holds; none may appear in what the store keeps. */
const SECRETS = [
  'pg-pass-4711',
  'crm-token-8d1f',
  'crm-url-token-51ab',
  'hook-header-3e9a',
  'hook-hmac-77c2',
  'slack-path-5521',
  'smtp-pass-9931',
  'pd-routing-60aa',
  'dbt-hook-secret-1b2c',
  'mixed-pass-0c4d',
];

const ALERTS: AlertsDefinition = {
  channels: [
    { name: 'ops-hook', type: 'webhook', url: 'https://hooks.example/lockstep', headers: { 'X-Api-Key': 'hook-header-3e9a', 'X-Team': '${TEAM}' }, secret: 'hook-hmac-77c2', origin: 'file' },
    { name: 'ops-slack', type: 'slack', url: 'https://hooks.slack.com/services/T000/B000/slack-path-5521', origin: 'file' },
    { name: 'ops-mail', type: 'email', smtp: 'smtp://alerts:smtp-pass-9931@mail.example:587', from: 'lockstep@example.com', to: ['ops@example.com'], origin: 'file' },
    { name: 'ops-pager', type: 'pagerduty', routingKey: 'pd-routing-60aa', url: PAGERDUTY_EVENTS_URL, origin: 'file' },
  ],
  rules: [
    { name: 'everything', on: ['sync_failed'], syncs: [], sequences: [], rejectedPercent: 0, slowerThanMinutes: null, channels: ['ops-hook', 'ops-slack', 'ops-mail', 'ops-pager'], origin: 'file' },
  ],
};

/** The CRM workspace with secrets: a postgres URL with a password, an HTTP destination's token header, alert channels, webhooks. */
function secretWorkspace(): WorkspaceDefinition {
  const workspace = crmWorkspace();
  return {
    ...workspace,
    sources: [
      { slug: 'warehouse', type: 'postgres', settings: { url: 'postgres://etl:pg-pass-4711@db.internal:5432/warehouse' } },
      // A template names a variable and holds no secret: kept as written.
      { slug: 'replica', type: 'postgres', settings: { url: '${REPLICA_URL}' } },
      // A template mixed with literal secret text is encrypted whole.
      { slug: 'archive', type: 'mysql', settings: { url: 'mysql://${ARCHIVE_USER}:mixed-pass-0c4d@archive.internal/db' } },
    ],
    destinations: [
      {
        slug: 'crm',
        type: 'http',
        settings: {
          url: 'https://api.crm.example/v1?token=crm-url-token-51ab',
          headers: { Authorization: 'Bearer crm-token-8d1f', 'X-Tenant': '${CRM_TENANT}' },
          timeoutMs: 5000,
        },
      },
    ],
    alerts: ALERTS,
    webhooks: { dbtCloud: { secret: 'dbt-hook-secret-1b2c' }, fivetran: { secret: '${FIVETRAN_SECRET}' } },
  };
}

/** Keys that seal with `next` and open what `next` or `previous` sealed (a rotation under way). */
function rotatingKeys(next: SecretBox, previous: SecretKeys): SecretKeys {
  return { sealingKey: () => next, openingKey: (keyId) => (keyId === next.keyId ? next : previous.openingKey(keyId)) };
}

/** Keys from LOCKSTEP_SECRET_KEY alone, as a process given only that variable has them. */
function envKeys(text: string | undefined): SecretKeys {
  return new StoreSecretKeys({ store: 'the store under test', key: text ? { text, source: 'LOCKSTEP_SECRET_KEY' } : undefined, keyFile: null });
}

async function rejection(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

/** The ids of the keys that sealed values in `raw`. */
function keyIds(raw: string): string[] {
  return [...new Set([...raw.matchAll(/enc:v1:([A-Za-z0-9_-]+):/g)].map((m) => m[1] as string))];
}

export function describeSecretsContract(name: string, open: OpenStore): void {
  describe(`secrets at rest: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: Store;
    const reopened: Array<{ close(): Promise<void> }> = [];

    beforeEach(async () => {
      subject = await open();
      store = subject.store;
    });
    afterEach(async () => {
      for (const other of reopened.splice(0)) await other.close();
      await subject.cleanup();
    });

    async function reopen(keys: SecretKeys) {
      const other = await subject.reopen(contractSecrets(keys));
      reopened.push(other);
      return other;
    }

    it('keeps no literal secret in its file or tables, and gives back exactly what was written', async () => {
      const workspace = secretWorkspace();
      await store.applyWorkspace(workspace, T0);

      const state = await store.loadWorkspace();
      expect(state.sources.map(({ slug, type, settings }) => ({ slug, type, settings }))).toEqual(workspace.sources);
      expect(state.destinations.map(({ slug, type, settings }) => ({ slug, type, settings }))).toEqual(workspace.destinations);
      expect(state.alerts).toEqual(ALERTS);
      expect(state.webhooks).toEqual(workspace.webhooks);
      expect(await store.getSource('warehouse')).toMatchObject({ settings: { url: 'postgres://etl:pg-pass-4711@db.internal:5432/warehouse' } });
      expect(await store.getDestination('crm')).toMatchObject({ settings: workspace.destinations[0]!.settings });
      expect(await store.alerts.getDefinition()).toEqual(ALERTS);
      // Applying the same workspace again changes nothing: secrets compare as plaintext.
      expect(await store.applyWorkspace(secretWorkspace(), T0 + 1)).toEqual([]);

      const raw = await subject.raw();
      for (const secret of SECRETS) expect(raw, `"${secret}" is kept in the clear`).not.toContain(secret);
      expect(raw).toContain('enc:v1:');
      // A webhook channel's URL is a secret: it may carry a token in its query.
      expect(raw).not.toContain('https://hooks.example/lockstep');
      // What holds no secret stays readable: templates, and settings no kind marks secret.
      for (const text of ['${REPLICA_URL}', '${CRM_TENANT}', '${TEAM}', '${FIVETRAN_SECRET}', 'select id, name from accounts']) {
        expect(raw).toContain(text);
      }
      expect(keyIds(raw)).toEqual([subject.keys.sealingKey()!.keyId]);
    });

    it('encrypts what the API writes (an entity, the alert channels) the same way', async () => {
      await store.applyWorkspace(crmWorkspace(), T0);
      const settings = { url: 'https://api.crm.example/v1', headers: { Authorization: 'Bearer crm-token-8d1f' } };
      const { record } = await store.upsertEntity('destination', { slug: 'api-crm', type: 'http', settings }, 'api', T0 + 1);
      expect(record.settings).toEqual(settings);
      const alerts = await store.updateAlerts((current) => ({ ...current, channels: [...current.channels, ALERTS.channels[1]!] }), T0 + 2);
      expect(alerts.channels).toEqual([ALERTS.channels[1]]);
      expect(await store.getDestination('api-crm')).toMatchObject({ settings });

      const raw = await subject.raw();
      expect(raw).not.toContain('crm-token-8d1f');
      expect(raw).not.toContain('slack-path-5521');
    });

    it('refuses to open without the key, or with another key, naming the key it needs', async () => {
      await store.applyWorkspace(secretWorkspace(), T0);
      const [keyId] = keyIds(await subject.raw());

      const withoutKey = await rejection(subject.reopen(contractSecrets(envKeys(undefined))));
      expect(withoutKey.code).toBe(ErrorCode.Store);
      expect(withoutKey.message).toContain(`encrypted with key ${keyId}`);
      expect(withoutKey.message).toContain('LOCKSTEP_SECRET_KEY is not set');

      const other = generateSecretKey();
      const wrongKey = await rejection(subject.reopen(contractSecrets(envKeys(other))));
      expect(wrongKey.code).toBe(ErrorCode.Store);
      expect(wrongKey.message).toContain(`encrypted with key ${keyId}`);
      expect(wrongKey.message).toContain(`LOCKSTEP_SECRET_KEY is key ${new SecretBox(parseSecretKey(other, 'test')).keyId}`);
      // Nothing was changed by the refused opens: the store reads as before.
      expect((await store.getSource('warehouse'))?.settings).toEqual(secretWorkspace().sources[0]!.settings);
    });

    it('reads secrets kept in the clear, and encrypts them when they are next written', async () => {
      // A store without a key writes secrets as they are (an older version did too).
      const plain = await reopen({ sealingKey: () => null, openingKey: (id) => subject.keys.openingKey(id) });
      const workspace = secretWorkspace();
      await plain.applyWorkspace(workspace, T0);
      expect(await subject.raw()).toContain('pg-pass-4711');

      expect((await store.getSource('warehouse'))?.settings).toEqual(workspace.sources[0]!.settings);
      expect((await store.loadWorkspace()).alerts).toEqual(ALERTS);
      const changed = { ...workspace, sources: [{ ...workspace.sources[0]!, settings: { url: 'postgres://etl:pg-pass-4711@db2.internal:5432/warehouse' } }, ...workspace.sources.slice(1)] };
      await store.applyWorkspace(changed, T0 + 1);
      expect((await store.getSource('warehouse'))?.settings).toEqual(changed.sources[0]!.settings);
      expect((await store.upsertEntity('source', { slug: 'replica', type: 'postgres', settings: { url: 'postgres://ro:replica-pass-2f@db3/w' } }, 'api', T0 + 2)).record.settings).toEqual({
        url: 'postgres://ro:replica-pass-2f@db3/w',
      });
      // (Only values never written in the clear are checked: an embedded store's file may keep freed bytes.)
      expect(await subject.raw()).not.toContain('replica-pass-2f');
    });

    it('reseals every secret under a new key in one go: the old key no longer opens the store, the new one does', async () => {
      await store.applyWorkspace(secretWorkspace(), T0);
      await store.upsertEntity('source', { slug: 'gone', type: 'postgres', settings: { url: 'postgres://u:deleted-pass-9e@db/x' } }, 'api', T0 + 1);
      await store.deleteEntity('source', 'gone', T0 + 2);
      const before = await store.loadWorkspace();
      const [oldId] = keyIds(await subject.raw());

      const nextText = generateSecretKey();
      const next = new SecretBox(parseSecretKey(nextText, 'test'));
      const rotating = await reopen(rotatingKeys(next, subject.keys));
      const { secrets } = await rotating.resealSecrets();
      // Two source URLs, the HTTP URL and header, a channel's URL, header and HMAC key, the Slack URL, the SMTP
      // URL, the routing key, the dbt Cloud secret, and the deleted source's URL (templates hold none).
      expect(secrets).toBe(12);
      await rotating.close();

      const raw = await subject.raw();
      expect(keyIds(raw)).toEqual([next.keyId]);
      for (const secret of [...SECRETS, 'deleted-pass-9e']) expect(raw).not.toContain(secret);
      // The keys the store was opened with hold only the old key now.
      const refused = await rejection(subject.reopen(contractSecrets(subject.keys)));
      expect(refused.code).toBe(ErrorCode.Store);
      expect(refused.message).toContain(`encrypted with key ${next.keyId}`);
      expect(refused.message).toContain(`key ${oldId}`);

      const withNew = await reopen(envKeys(nextText));
      expect(await withNew.loadWorkspace()).toEqual(before);
      // And it goes on working: a write under the new key reads back.
      await withNew.applyWorkspace(secretWorkspace(), T0 + 3);
      expect((await withNew.getDestination('crm'))?.settings).toEqual(secretWorkspace().destinations[0]!.settings);
    });

    it('keeps a value that only looks encrypted as it was written', async () => {
      const lookalike = 'enc:v1:AAAAAAAA:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAA';
      const workspace = crmWorkspace();
      workspace.models[0] = { ...workspace.models[0]!, query: lookalike };
      await store.applyWorkspace(workspace, T0);
      expect((await store.getModel('accounts'))?.query).toBe(lookalike);
    });
  });
}

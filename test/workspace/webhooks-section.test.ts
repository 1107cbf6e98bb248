import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadWorkspace } from '../../src/workspace/index.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { workspaceFolder, yaml } from './helpers.js';
import { createConnectorRegistry } from '../../src/app.js';

const registry = createConnectorRegistry();

const FILE = yaml(
  'webhooks:',
  '  dbtCloud: { secret: "${DBT_SECRET}" }',
  '  fivetran: { secret: "${FIVETRAN_SECRET}" }',
  '  zapier: { secret: x }',
);

describe('the webhooks section', () => {
  it('names unset secrets and unknown endpoints at their lines', async () => {
    const { dir, cleanup } = await workspaceFolder({ 'lockstep.yaml': FILE });
    try {
      const result = await loadWorkspace(dir, { DBT_SECRET: 's' }, registry);
      const lines = result.diagnostics.map((d) => `${d.line}: ${d.path}: ${d.message}`);
      expect(lines).toEqual([
        expect.stringMatching(/^3: webhooks\.fivetran\.secret: environment variable FIVETRAN_SECRET is not set/),
        expect.stringMatching(/^4: webhooks(\.zapier)?: .*zapier/),
      ]);
    } finally {
      await cleanup();
    }
  });

  it('keeps the secrets templated, and apply stores them (plan shows the change once)', async () => {
    const { dir, cleanup } = await workspaceFolder({ 'lockstep.yaml': yaml('webhooks:', '  dbtCloud: { secret: "${DBT_SECRET}" }') });
    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    try {
      const { definition } = await loadWorkspace(dir, { DBT_SECRET: 's' }, registry);
      expect(definition?.webhooks).toEqual({ dbtCloud: { secret: '${DBT_SECRET}' }, fivetran: null });
      expect(await store.planWorkspace(definition!)).toEqual([{ action: 'create', kind: 'webhook', slug: 'dbtCloud', fields: [] }]);
      await store.applyWorkspace(definition!, 1);
      expect((await store.loadWorkspace()).webhooks).toEqual({ dbtCloud: { secret: '${DBT_SECRET}' }, fivetran: null });
      expect(await store.planWorkspace(definition!)).toEqual([]);
    } finally {
      await store.close();
      await cleanup();
    }
  });

  it('refuses a signing secret of spaces alone, which anybody could sign with', async () => {
    const { dir, cleanup } = await workspaceFolder({
      'lockstep.yaml': yaml(
        'webhooks:',
        '  dbtCloud: { secret: "   " }',
        'alerts:',
        '  channels:',
        '    hooks: { type: webhook, url: "https://alerts.example.test/lockstep", secret: " " }',
      ),
    });
    try {
      const result = await loadWorkspace(dir, {}, registry);
      expect(result.definition).toBeNull();
      expect(result.diagnostics.map((d) => `${d.line}: ${d.path}: ${d.message} — ${d.hint}`)).toEqual([
        '2: webhooks.dbtCloud.secret: secret is blank — a blank secret signs nothing anybody could not sign: write the secret, or a ${ENV} template',
        '5: alerts.channels.hooks.secret: secret is blank — a blank secret signs nothing anybody could not sign: write the secret, or a ${ENV} template',
      ]);
    } finally {
      await cleanup();
    }
  });
});

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JSON_SCHEMA_FILE, renderJsonSchema, workspaceJsonSchema } from '../../src/workspace/index.js';
import { createConnectorRegistry } from '../../src/app.js';

const registry = createConnectorRegistry();

const committed = fileURLToPath(new URL(`../../${JSON_SCHEMA_FILE}`, import.meta.url));

describe('workspace JSON Schema', () => {
  it('is committed up to date with the zod definitions', async () => {
    const onDisk = await readFile(committed, 'utf8').catch(() => '');
    expect(
      onDisk === renderJsonSchema(registry),
      `${JSON_SCHEMA_FILE} is out of date: run \`npm run build && node dist/cli/write-json-schema.js\` (npm run schema) and commit it`,
    ).toBe(true);
  });

  it('describes sections, slugs, defaults and enums for editors', () => {
    const schema = workspaceJsonSchema(registry) as {
      $schema: string;
      additionalProperties: boolean;
      properties: Record<string, { anyOf?: { propertyNames?: { pattern: string }; additionalProperties?: { properties?: Record<string, { default?: unknown; enum?: unknown[] }> } }[] }>;
      definitions: Record<string, { oneOf?: { properties: { type: { const: string } } }[] }>;
    };
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(['store', 'sources', 'destinations', 'models', 'syncs', 'sequences', 'alerts', 'webhooks']);
    const syncs = schema.properties.syncs?.anyOf?.[0];
    expect(syncs?.propertyNames?.pattern).toBe('^[a-z0-9][a-z0-9_-]*$');
    const syncProps = syncs?.additionalProperties?.properties ?? {};
    expect(syncProps.batchSize?.default).toBe(1000);
    expect(syncProps.mode?.enum).toEqual(['upsert', 'insert', 'update', 'mirror']);
    expect(schema.definitions.Schedule?.oneOf?.map((o) => o.properties.type.const)).toEqual([
      'manual',
      'interval',
      'cron',
      'recurrence',
      'dbt_cloud',
      'fivetran',
      'after',
    ]);
  });
});

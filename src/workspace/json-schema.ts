import { z } from 'zod';
import type { ConnectorRegistry } from '../core/connector-registry.js';
import { SECTION_NAMES, workspaceFileSchema } from './workspace-schema.js';

/** Where the published schema lives in the repository (and in the npm package). */
export const JSON_SCHEMA_FILE = 'schema/lockstep.schema.json';

type JsonObject = Record<string, unknown>;

/**
 * JSON Schema (draft-07, the draft YAML editors support best) of a workspace file, generated from
 * the same zod definitions that validate it, and from the registered connector kinds: a connection
 * is one of the kinds with its settings, and a sync may carry the destination kinds' settings. It
 * describes what may be written, defaults included; checks across entities (references, cycles,
 * which kind settings fit which destination) are only in `lockstep validate`.
 */
export function workspaceJsonSchema(registry: ConnectorRegistry): JsonObject {
  const options = { io: 'input', target: 'draft-7', unrepresentable: 'any' } as const;
  const schema = z.toJSONSchema(workspaceFileSchema, options) as unknown as JsonObject & { definitions: Record<string, JsonObject> };
  schema.definitions.Connection = {
    description: 'How a source or destination is reached: a connector kind and its settings.',
    oneOf: registry.kinds().map((kind) => {
      const settings = z.toJSONSchema(kind.settings, options) as JsonObject & { properties?: JsonObject; required?: string[] };
      return {
        type: 'object',
        description: kind.description,
        properties: { type: { type: 'string', const: kind.type }, ...(settings.properties ?? {}) },
        required: ['type', ...(settings.required ?? [])],
        additionalProperties: false,
        patternProperties: EXTENSIONS,
      };
    }),
  };
  const sync = sectionEntry(schema, 'syncs');
  if (sync) {
    const properties = sync.properties as JsonObject;
    for (const kind of registry.kinds('destination')) {
      const settings = kind.destination?.syncSettings;
      if (!settings) continue;
      const json = z.toJSONSchema(settings, options) as { properties?: Record<string, JsonObject> };
      for (const [name, property] of Object.entries(json.properties ?? {})) {
        properties[name] ??= { ...property, description: `(${kind.type} destinations) ${String(property.description ?? '')}`.trim() };
      }
    }
    sync.additionalProperties = false;
  }
  schema.patternProperties = EXTENSIONS;
  for (const section of SECTION_NAMES) {
    const entry = sectionEntry(schema, section);
    if (entry && entry.type === 'object') entry.patternProperties = EXTENSIONS;
  }
  return schema;
}

/** Keys an object may hold besides its properties: extension fields (see EXTENSION_KEY in workspace-schema.ts). */
const EXTENSIONS: JsonObject = {
  '^x-': { description: 'An extension field, which Lockstep ignores: e.g. a YAML anchor to merge elsewhere, x-defaults: &defaults { ... } then <<: *defaults.' },
};

/** The schema of one entry of a section (a sync of `syncs`), when written there (not a reference). */
function sectionEntry(schema: JsonObject, section: string): JsonObject | undefined {
  const property = (schema.properties as Record<string, { anyOf?: Array<{ additionalProperties?: JsonObject }> }>)[section];
  return property?.anyOf?.find((option) => option.additionalProperties !== undefined)?.additionalProperties;
}


/** The committed file's exact text. */
export function renderJsonSchema(registry: ConnectorRegistry): string {
  return `${JSON.stringify(workspaceJsonSchema(registry), null, 2)}\n`;
}

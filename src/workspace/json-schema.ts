import { z } from 'zod';
import { workspaceFileSchema } from './workspace-schema.js';

/** Where the published schema lives in the repository (and in the npm package). */
export const JSON_SCHEMA_FILE = 'schema/lockstep.schema.json';

/**
 * JSON Schema (draft-07, the draft YAML editors support best) of a workspace file, generated from
 * the same zod definitions that validate it. It describes what may be written, defaults included;
 * checks across entities (references, cycles) are only in `lockstep validate`.
 */
export function workspaceJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(workspaceFileSchema, { io: 'input', target: 'draft-7', unrepresentable: 'any' });
}

/** The committed file's exact text. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(workspaceJsonSchema(), null, 2)}\n`;
}

/**
 * Regenerates schema/lockstep.schema.json from the workspace's zod definitions and the registered
 * connector kinds: `npm run build && node dist/cli/write-json-schema.js` (the package's `schema` script).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createConnectorRegistry } from '../app.js';
import { JSON_SCHEMA_FILE, renderJsonSchema } from '../workspace/index.js';

// This file sits two folders below the package root, in src/cli/ and in dist/cli/ alike.
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = join(packageRoot, JSON_SCHEMA_FILE);
await mkdir(dirname(target), { recursive: true });
await writeFile(target, renderJsonSchema(createConnectorRegistry()));
console.log(`wrote ${target}`);

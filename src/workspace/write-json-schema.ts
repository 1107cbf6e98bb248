/**
 * Regenerates schema/lockstep.schema.json from the workspace's zod definitions:
 * `npm run build && node dist/workspace/write-json-schema.js` (the package's `schema` script).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JSON_SCHEMA_FILE, renderJsonSchema } from './json-schema.js';

// This file sits two folders below the package root, in src/workspace/ and in dist/workspace/ alike.
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = join(packageRoot, JSON_SCHEMA_FILE);
await mkdir(dirname(target), { recursive: true });
await writeFile(target, renderJsonSchema());
console.log(`wrote ${target}`);

#!/usr/bin/env node
/**
 * Runs one benchmark: `node bench/run.js <name> [args]` (or `npm run bench -- <name> [args]`).
 * A benchmark is a file `bench/<name>.js` exporting `main(args: string[]): Promise<void>`; it
 * imports Lockstep from `../dist`, so `npm run build` comes first.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const names = readdirSync(here)
  .filter((file) => file.endsWith('.js') && file !== 'run.js')
  .map((file) => file.slice(0, -'.js'.length))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  process.stdout.write(`usage: npm run bench -- <name> [args]\nbenchmarks: ${names.join(', ')}\n`);
  process.exit(name ? 0 : 1);
}
if (!names.includes(name)) {
  process.stderr.write(`no benchmark "${name}" — choose one of: ${names.join(', ')}\n`);
  process.exit(1);
}
if (!existsSync(join(here, '..', 'dist', 'app.js'))) {
  process.stderr.write('dist/app.js is missing — run `npm run build` first; benchmarks measure the built engine\n');
  process.exit(1);
}

const benchmark = await import(pathToFileURL(join(here, `${name}.js`)).href);
try {
  await benchmark.main(args);
} catch (error) {
  process.stderr.write(`benchmark "${name}" failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}

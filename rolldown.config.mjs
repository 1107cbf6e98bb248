/**
 * The command line as a few files (`dist/bundle/`), built from `dist/` after tsc.
 *
 * Node's ESM loader resolves, reads and links each module on its own: the command line's some 200
 * modules (ours and zod's 95) took ~150 ms of every invocation before the first line of its own
 * work. As one file and a chunk per lazily loaded part, the same code loads in ~60 ms.
 * `bin/lockstep.js` runs the bundle; `dist/` stays the library the tests and other programs import.
 *
 * Packages with native code, and the large CommonJS ones that only some commands or connectors
 * load (through `require`, whose loader is cheaper per file), stay where npm installed them.
 * The bundle sits at the same depth as `dist/cli/`, so paths a module finds from its own URL
 * (`../../package.json`, `../../web/dist`) lead to the same place.
 */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

/** Pure ESM packages bundled with the code (zod above all: 95 modules on its own). */
const BUNDLED = new Set(['zod', 'hono', '@hono/zod-openapi', '@hono/node-server', 'commander', 'croner', 'p-limit', 'p-throttle', 'fastest-levenshtein']);

/** The package a bare import names: `@scope/name` or `name`, without a subpath. */
function packageOf(id) {
  const parts = id.split('/');
  return id.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

export default {
  input: { lockstep: 'dist/cli/main.js' },
  platform: 'node',
  external: (id) => id.startsWith('node:') || (id in pkg.dependencies || packageOf(id) in pkg.dependencies ? !BUNDLED.has(packageOf(id)) : false),
  output: {
    dir: 'dist/bundle',
    // A chunk a build no longer makes does not stay behind.
    cleanDir: true,
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: '[name].js',
    // Stack traces name the modules' own functions, and a class or function keeps its `name` where
    // two modules' names met in one file.
    minify: false,
    keepNames: true,
  },
};

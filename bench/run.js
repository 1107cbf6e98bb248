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

/**
 * `sync --pair postgres-mysql [--rows N] [--batch N]` is measured by `runMysqlBench({ rows, batch })`
 * of bench/mysql.js (the MySQL destination's own file), imported only then, so that the other pairs
 * run without it.
 */
async function mysqlPair(args) {
  const file = join(here, 'mysql.js');
  if (!existsSync(file)) {
    process.stderr.write('the postgres-mysql pair is measured by runMysqlBench in bench/mysql.js, which is not in this checkout yet — run another pair (--pair postgres-postgres, duckdb-postgres or postgres-sqlite)\n');
    process.exit(1);
  }
  const options = {};
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]?.replace(/^--/, '');
    if (name === 'pair') continue;
    const value = Number(args[i + 1]);
    if ((name !== 'rows' && name !== 'batch') || !args[i]?.startsWith('--')) throw new Error(`unknown argument "${args[i]}" for --pair postgres-mysql — use --rows N, --batch N`);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a positive whole number (got "${args[i + 1]}")`);
    options[name] = value;
  }
  const { runMysqlBench } = await import(pathToFileURL(file).href);
  if (typeof runMysqlBench !== 'function') {
    process.stderr.write('bench/mysql.js does not export runMysqlBench({ rows, batch }) — the postgres-mysql pair cannot run\n');
    process.exit(1);
  }
  return runMysqlBench(options);
}

const pairAt = args.indexOf('--pair');
// The MySQL destination's figures: `sync --pair postgres-mysql` or `http --pair postgres-mysql` (the connector benchmarks).
const mysql = (name === 'sync' || name === 'http') && pairAt >= 0 && args[pairAt + 1] === 'postgres-mysql';
try {
  if (mysql) {
    await mysqlPair(args);
  } else {
    const benchmark = await import(pathToFileURL(join(here, `${name}.js`)).href);
    if (typeof benchmark.main !== 'function') {
      process.stderr.write(`bench/${name}.js is not a benchmark of its own (it exports no main(args))${name === 'mysql' ? ' — run: npm run bench -- sync --pair postgres-mysql' : ''}\n`);
      process.exit(1);
    }
    await benchmark.main(args);
  }
} catch (error) {
  process.stderr.write(`benchmark "${name}" failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}

/**
 * Startup benchmark: what a command costs before and around its own work.
 *
 * A workspace with a 10-row SQLite model and a SQLite destination, applied and synced once. Then,
 * alternating, each timed from spawn to exit (`--repeat` times, medians compared):
 *
 * - `node`: a Node process that runs nothing (the floor any command line in Node pays);
 * - `version`: `lockstep --version` (the command line loaded, no store opened);
 * - `sync run`: `lockstep sync run` of the 10-row sync (nothing to send: a scheduled run's usual case);
 * - `sync run (modules)`: the same command through `dist/cli/main.js`, the modules one by one rather
 *   than the bundle `bin/lockstep.js` runs (see rolldown.config.mjs): what the bundle saves.
 *
 * Usage: node bench/run.js startup [--repeat 15]
 * Prints one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';

const here = fileURLToPath(new URL('.', import.meta.url));
const BIN = join(here, '..', 'bin', 'lockstep.js');
const MODULES = pathToFileURL(join(here, '..', 'dist', 'cli', 'main.js')).href;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

function parseArgs(args) {
  const options = { repeat: 15 };
  for (let i = 0; i < args.length; i += 2) {
    const value = Number(args[i + 1]);
    if (args[i] !== '--repeat' || !Number.isInteger(value) || value < 1) throw new Error(`unknown argument "${args[i]}" — use --repeat N (a positive whole number)`);
    options.repeat = value;
  }
  return options;
}

/** Milliseconds from spawn to exit; the command must succeed. */
function timed(argv, cwd) {
  const started = performance.now();
  const child = spawnSync(process.execPath, argv, { cwd, encoding: 'utf8' });
  const ms = performance.now() - started;
  if (child.status !== 0) throw new Error(`${argv.join(' ')} exited ${child.status}: ${child.stderr}`);
  return ms;
}

export async function main(args) {
  const { repeat } = parseArgs(args);
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-startup-'));
  try {
    const warehouse = new Database(join(work, 'warehouse.db'));
    warehouse.exec(
      "create table accounts (id integer primary key, name text not null); with recursive n(i) as (select 1 union all select i + 1 from n where i < 10) insert into accounts select i, 'account ' || i from n;",
    );
    warehouse.close();
    const crm = new Database(join(work, 'crm.db'));
    crm.exec('create table accounts (id integer primary key, name text not null);');
    crm.close();
    writeFileSync(
      join(work, 'lockstep.yaml'),
      'sources:\n  warehouse: { type: sqlite, path: warehouse.db }\ndestinations:\n  crm: { type: sqlite, path: crm.db }\n' +
        'models:\n  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }\n' +
        'syncs:\n  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }\n',
    );
    timed([BIN, 'apply'], work);
    timed([BIN, 'sync', 'run', 'accounts-to-crm'], work);
    const commands = {
      node: ['-e', ''],
      version: [BIN, '--version'],
      sync_run: [BIN, 'sync', 'run', 'accounts-to-crm'],
      sync_run_modules: ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(MODULES)}); process.exitCode = await main(['node', 'lockstep', 'sync', 'run', 'accounts-to-crm']);`],
    };
    const times = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
    for (let i = 0; i < repeat; i++) {
      for (const [name, argv] of Object.entries(commands)) times[name].push(timed(argv, work));
    }
    const medians = Object.fromEntries(Object.entries(times).map(([name, values]) => [name, Math.round(median(values))]));
    const result = {
      repeat,
      node_ms: medians.node,
      version_ms: medians.version,
      sync_run_ms: medians.sync_run,
      sync_run_modules_ms: medians.sync_run_modules,
      sync_run_over_node_ms: medians.sync_run - medians.node,
      modules_over_bundle: Math.round((medians.sync_run_modules / medians.sync_run) * 100) / 100,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

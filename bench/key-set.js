/**
 * The set of keys a run has seen (src/engine/key-set.ts), alone: N keys added in order with every
 * 200th left out (as a model read by its primary key, of which 0.5% were removed), then the
 * snapshot's N keys read back through `unseen` in pages of 5,000 (as the store's planner finds
 * removals). Past `--budget-mb` (the default of LOCKSTEP_KEY_SET_MB) the set spills to temporary files.
 *
 * Baseline, in the same invocation: a JavaScript `Set` of the same keys doing the same work, which
 * holds every key in memory. Each side runs in a child process of its own, so each peak RSS is its own.
 *
 * Usage: node bench/run.js key-set [--rows 10000000] [--budget-mb 64]
 * Prints one JSON line per side, then one with both.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answerAsChild } from './lib/child.js';

const self = fileURLToPath(import.meta.url);
const DEFAULTS = { rows: 10_000_000, 'budget-mb': 64 };
const PAGE = 5000;
const key = (i) => `[${i}]`;
const kept = (i) => i % 200 !== 0;

function parseArgs(args) {
  const options = { ...DEFAULTS };
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]?.replace(/^--/, '');
    const value = Number(args[i + 1]);
    if (!args[i]?.startsWith('--') || !(name in options)) throw new Error(`unknown argument "${args[i]}" — use --rows N, --budget-mb N`);
    if (!(value > 0)) throw new Error(`--${name} needs a positive number (got "${args[i + 1]}")`);
    options[name] = value;
  }
  return options;
}

/** The snapshot's keys in pages, as a store gives them. */
async function* pages(rows) {
  for (let start = 1; start <= rows; start += PAGE) {
    const page = [];
    for (let i = start; i < start + PAGE && i <= rows; i++) page.push(key(i));
    yield page;
  }
}

async function measure(side, { rows, budget, spillDir }) {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 20);
  let set;
  let unseen;
  const started = performance.now();
  if (side === 'keyset') {
    const { KeySet } = await import(new URL('../dist/engine/key-set.js', import.meta.url).href);
    set = new KeySet(rows * 2, { budgetBytes: budget, spillDir });
    unseen = (scan) => set.unseen(scan);
  } else {
    set = new Set();
    unseen = async function* (scan) {
      for await (const page of scan()) for (const k of page) if (!set.has(k)) yield k;
    };
  }
  for (let i = 1; i <= rows; i++) if (kept(i)) set.add(key(i));
  const added = performance.now();
  let removed = 0;
  for await (const k of unseen(() => pages(rows))) {
    if (kept(Number(k.slice(1, -1)))) throw new Error(`${side}: ${k} was added but came back as unseen`);
    removed++;
  }
  const done = performance.now();
  sample();
  clearInterval(timer);
  const spilled = set.spilled ?? 0;
  set.close?.();
  if (removed !== Math.floor(rows / 200)) throw new Error(`${side}: ${removed} keys unseen, not ${Math.floor(rows / 200)}`);
  return { side, add_ms: Math.round(added - started), unseen_ms: Math.round(done - added), spilled, peak_rss_mb: Math.round(peak / 1048576) };
}

function child(side, input) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [self, side, JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1))) : reject(new Error(`${side} exited with ${code}: ${err.slice(-2000)}`))));
  });
}

export async function main(args) {
  const options = parseArgs(args);
  const spillDir = mkdtempSync(join(tmpdir(), 'lockstep-bench-keys-'));
  try {
    const input = { rows: options.rows, budget: options['budget-mb'] * 1024 * 1024, spillDir };
    process.stderr.write(`key set: ${options.rows} keys, budget ${options['budget-mb']} MiB, 0.5% of the snapshot removed\n`);
    const keyset = await child('keyset', input);
    console.log(JSON.stringify(keyset));
    const baseline = await child('set', input);
    console.log(JSON.stringify(baseline));
    console.log(JSON.stringify({ rows: options.rows, budget_mb: options['budget-mb'], keyset, baseline }));
  } finally {
    rmSync(spillDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === self && process.argv[2]) answerAsChild(measure(process.argv[2], JSON.parse(process.argv[3] ?? '{}')));

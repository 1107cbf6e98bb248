/**
 * Where a hand-off's time goes on a PostgreSQL store: `bench/handoff.js --store postgres` with every
 * statement of the store's connections timed (`pg.Client.prototype.query` wrapped before the app
 * loads). Per hand-off: the round trip that ends a member (the terminal UPDATE, its COMMIT, then the
 * BEGIN, lock and state reads of the advance) and the time from its reply to the statement that
 * claims the next member (the claim is stamped just before it is sent). Then, on the same server
 * and one connection, the floor: `SELECT 1`, and a one-row UPDATE in autocommit (one WAL flush).
 *
 * Usage: node bench/run.js handoff-breakdown [--runs 3] [--url postgres://...]
 * The last line printed is one JSON object with the figures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freshDatabase, startPostgres } from './lib/servers.js';

/** @param {string[]} args */
export async function main(args) {
  let runs = 3;
  let url = null;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--runs' && Number.isInteger(Number(args[i + 1])) && Number(args[i + 1]) > 0) runs = Number(args[++i]);
    else if (args[i] === '--url' && /^postgres(ql)?:\/\//.test(args[i + 1] ?? '')) url = args[++i];
    else throw new Error(`unknown argument "${args[i]}" — use --runs N, --url postgres://...`);
  }
  /** @type {Array<{ start: number, end: number, text: string, pid: number }>} */
  const log = [];
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (config, values, callback) {
    if (!String(this.connectionParameters?.application_name ?? '').startsWith('lockstep')) return query.call(this, config, values, callback);
    const entry = { start: performance.now(), end: 0, text: typeof config === 'string' ? config : (config?.text ?? ''), pid: this.processID };
    log.push(entry);
    const done = () => {
      entry.end = performance.now();
    };
    if (typeof values === 'function') {
      const f = values;
      values = (...a) => (done(), f(...a));
    } else if (typeof callback === 'function') {
      const f = callback;
      callback = (...a) => (done(), f(...a));
    }
    const result = query.call(this, config, values, callback);
    if (result && typeof result.then === 'function') result.then(done, done);
    return result;
  };
  try {
    const { main: handoff } = await import('./handoff.js');
    await handoff(['--store', 'postgres', '--runs', String(runs), ...(url ? ['--url', url] : [])]);
  } finally {
    pg.Client.prototype.query = query;
  }
  const ends = [];
  const untilClaim = [];
  for (let i = 0; i < log.length; i++) {
    const end = log[i];
    if (!end.text.includes('COMMIT; BEGIN; SELECT id')) continue;
    const claim = log.slice(i + 1).find((e) => e.pid === end.pid && e.text.includes('WITH live AS'));
    // A member's end with no claim right after it (the last member, a run not handed off here).
    if (!claim || claim.start - end.end > 50) continue;
    ends.push(end.end - end.start);
    untilClaim.push(claim.start - end.end);
  }
  const pct = (values, p) => {
    const sorted = [...values].sort((a, b) => a - b);
    return Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] * 1000) / 1000;
  };
  const out = (text) => process.stdout.write(text + '\n');
  out(`${ends.length} hand-offs: the round trip of the member's end (UPDATE, COMMIT, BEGIN, lock, state) p50 ${pct(ends, 0.5)} ms, p99 ${pct(ends, 0.99)} ms`);
  out(`  from its reply to the next member's claim being sent: p50 ${pct(untilClaim, 0.5)} ms, p99 ${pct(untilClaim, 0.99)} ms`);

  // The server's floor, on a database of its own.
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-floor-'));
  const server = await startPostgres(work, { url });
  const database = await freshDatabase(server.url, 'lockstep_bench_floor');
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  let floor;
  try {
    await client.query('CREATE TABLE floor (id integer PRIMARY KEY, n integer); INSERT INTO floor VALUES (1, 0)');
    const time = async (sql, n = 300) => {
      const t = [];
      for (let i = 0; i < n; i++) {
        const s = performance.now();
        await client.query(sql);
        t.push(performance.now() - s);
      }
      return { p50: pct(t, 0.5), p99: pct(t, 0.99) };
    };
    floor = { select: await time('SELECT 1'), update: await time('UPDATE floor SET n = n + 1 WHERE id = 1') };
  } finally {
    await client.end();
    await database.drop();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  out(`the server alone: SELECT 1 p50 ${floor.select.p50} ms; a one-row UPDATE in autocommit (one WAL flush) p50 ${floor.update.p50} ms, p99 ${floor.update.p99} ms`);
  out(
    JSON.stringify({
      handoffs: ends.length,
      end_round_trip_p50_ms: pct(ends, 0.5),
      end_round_trip_p99_ms: pct(ends, 0.99),
      until_claim_p50_ms: pct(untilClaim, 0.5),
      until_claim_p99_ms: pct(untilClaim, 0.99),
      select_p50_ms: floor.select.p50,
      update_commit_p50_ms: floor.update.p50,
      update_commit_p99_ms: floor.update.p99,
    }),
  );
}

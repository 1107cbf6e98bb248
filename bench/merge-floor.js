/**
 * The floor of the sync benchmark's incremental run, in SQL without Lockstep (see `sync`): what
 * PostgreSQL itself needs to read the changed model once and apply its changes to a copy of the
 * destination, each statement after a CHECKPOINT as the benchmark's steps are.
 *
 * The model and the destination table hold N rows as `sync` builds them (VACUUM ANALYZE, as the
 * model is before the baseline); then the benchmark's own changes (1% changed, 0.5% added, 0.5%
 * removed). Timed, each after a CHECKPOINT, with the write-ahead log each wrote:
 * - the model's first read after the changes (`count(*)`), then a second one: the first prunes the
 *   old row versions on every page it reads, which any first reader pays;
 * - the destination's changes as one `INSERT … ON CONFLICT DO UPDATE` of the added and changed rows,
 *   then one `DELETE` of the removed keys (both staged in tables first, untimed).
 *
 * Usage: node bench/run.js merge-floor [--rows 10000000]
 * The last line printed is one JSON object with the figures.
 */
import pg from 'pg';
import { freshDatabase, startPostgres } from './lib/servers.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changesSql, COLUMNS_PG, rowSql } from './sync.js';

const log = (line) => process.stderr.write(`${line}\n`);

export async function main(args) {
  let rows = 10_000_000;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rows') rows = Number(args[++i]);
    else throw new Error(`unknown argument ${args[i]} — usage: merge-floor [--rows N]`);
  }
  if (!Number.isInteger(rows) || rows < 1000) throw new Error('--rows must be a whole number of at least 1000');
  const work = mkdtempSync(join(tmpdir(), 'lockstep-bench-floor-'));
  let server = null;
  let database = null;
  const client = { c: null };
  try {
    server = await startPostgres(work);
    database = await freshDatabase(server.url, 'lockstep_bench_floor');
    client.c = new pg.Client({ connectionString: database.url });
    await client.c.connect();
    const run = (sql) => client.c.query(sql);
    const lsn = async () => (await run('select pg_current_wal_lsn()::text as l')).rows[0].l;
    /** Runs `sql` after a CHECKPOINT; its seconds and MB of log. */
    const timed = async (label, sql) => {
      await run('checkpoint');
      const from = await lsn();
      const started = performance.now();
      await run(sql);
      const seconds = Math.round(performance.now() - started) / 1000;
      const to = await lsn();
      const mb = Math.round(Number((await run(`select pg_wal_lsn_diff('${to}', '${from}') as d`)).rows[0].d) / 1e6);
      log(`${label}: ${seconds} s, ${mb} MB of log`);
      return { seconds, mb };
    };
    log(`merge floor: ${rows} rows`);
    await run(`create table model_rows (${COLUMNS_PG}); insert into model_rows select ${rowSql('g')} from generate_series(1, ${rows}) g`);
    await run(`create table target_rows (${COLUMNS_PG}); insert into target_rows select * from model_rows`);
    await run('vacuum analyze model_rows');
    await run('vacuum analyze target_rows');
    for (const statement of changesSql(rows, 'model_rows')) await run(statement);
    const firstRead = await timed('first read of the changed model', 'select count(*) from model_rows');
    const secondRead = await timed('second read', 'select count(*) from model_rows');
    await run('create table staged as select m.* from model_rows m left join target_rows t using (id) where t.id is null or m is distinct from t');
    await run('alter table staged add primary key (id)');
    await run('create table gone as select t.id from target_rows t where not exists (select 1 from model_rows m where m.id = t.id)');
    await run('alter table gone add primary key (id)');
    const values = ['account_id', 'name', 'email', 'score', 'created_at', 'updated_at'];
    const upsert = await timed(
      'upsert of the added and changed rows',
      `insert into target_rows select * from staged order by id on conflict (id) do update set ${values.map((c) => `${c} = excluded.${c}`).join(', ')}`,
    );
    // Each removed key looked up in the table's index, as a destination deletes by key: a hash or
    // merge join would read the whole table, and prune every page the upsert left old versions on.
    await run('set enable_hashjoin = off; set enable_mergejoin = off');
    const gone = await timed('delete of the removed rows', 'delete from target_rows t using gone g where t.id = g.id');
    await run('reset enable_hashjoin; reset enable_mergejoin');
    const [{ n: staged }] = (await run('select count(*)::int as n from staged')).rows;
    process.stdout.write(
      `${JSON.stringify({ rows, staged, first_read_s: firstRead.seconds, second_read_s: secondRead.seconds, first_read_log_mb: firstRead.mb, upsert_s: upsert.seconds, upsert_log_mb: upsert.mb, delete_s: gone.seconds, delete_log_mb: gone.mb })}\n`,
    );
  } finally {
    await client.c?.end().catch(() => undefined);
    await database?.drop().catch(() => undefined);
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

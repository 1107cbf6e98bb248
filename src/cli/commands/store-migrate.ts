/**
 * `lockstep store migrate --to postgres://...`: copies the embedded store (the workspace, run
 * history, snapshots, record ids, schedules, webhooks, alerts and API tokens) into a PostgreSQL
 * store, so a workspace moves to a store many processes share without sending its rows again.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { SECRET_KEY_ENV, copyStoreToPostgres, type CopyProgress, type CopySummary } from '../../app.js';
import type { LockstepConfig } from '../../config.js';
import { DEFAULT_STORE_ANSWER_TIMEOUT_MS, REDACTED, STORE_ANSWER_TIMEOUT_PARAMETER, STORE_SCHEMA_PARAMETER, redactUrl, storeUrlAnswerTimeout, storeUrlSchema } from '../../core/connections.js';
import { ErrorCode, LockstepError, assertNever } from '../../core/errors.js';
import { formatDuration, type Terminal } from '../output.js';

export interface StoreCommandContext {
  term: Terminal;
  /** The resolved configuration, whose store (`--store`, LOCKSTEP_STORE, the workspace's `store:`) is the one copied. */
  config: () => Promise<LockstepConfig>;
}

interface MigrateFlags {
  to: string;
  schema?: string;
  replace?: boolean;
  force?: boolean;
}

/** The schema Lockstep's processes open when their store URL names none (PostgresStore's default). */
const DEFAULT_SCHEMA = 'lockstep';

export function registerStoreCommands(program: Command, context: StoreCommandContext): void {
  const store = program.command('store').description('the store: move it from the embedded file to PostgreSQL');
  store
    .command('migrate')
    .description('copy the embedded store (workspace, run history, snapshots, schedules, webhooks, alerts, API tokens) into a PostgreSQL store')
    .requiredOption('--to <postgres-url>', 'the PostgreSQL database to copy into: postgres://user:password@host:port/database')
    .option('--schema <name>', `the schema for the tables, created when missing (default: the --to URL's ${STORE_SCHEMA_PARAMETER} parameter, else ${DEFAULT_SCHEMA})`)
    .option('--replace', 'delete what the schema holds first (otherwise a schema holding a store is refused)')
    .option('--force', 'copy unfinished runs as they are (otherwise refused: let them finish or cancel them first)')
    .addHelpText(
      'after',
      `
The copy is one PostgreSQL transaction: if anything fails, the target is left as it was. A network
that stops answering fails it within about the --to URL's ${STORE_ANSWER_TIMEOUT_PARAMETER} (seconds, default ${DEFAULT_STORE_ANSWER_TIMEOUT_MS / 1000}):
run the command again then. The server may keep the failed copy's session, holding the schema, until
it notices the client is gone; the copy holds a lease the server ends 3 answer timeouts (at least
5 s) after its last renewal, and the next copy waits for that, then ends the session and copies.
The embedded store is left as it was. Afterwards, point every Lockstep
process at the PostgreSQL store (--store or LOCKSTEP_STORE); a schema other than ${DEFAULT_SCHEMA} is named
in the store URL, as the command prints: postgres://user:password@host:5432/database?${STORE_SCHEMA_PARAMETER}=NAME.`,
    )
    .action(async (flags: MigrateFlags) => migrate(flags, context));
}

async function migrate(flags: MigrateFlags, { term, config }: StoreCommandContext): Promise<void> {
  if (!/^postgres(ql)?:\/\/./.test(flags.to)) {
    throw new LockstepError(
      ErrorCode.Validation,
      `--to "${redactUrl(flags.to)}" is not a postgres:// URL — give the database to copy into, e.g. postgres://user:password@host:5432/lockstep`,
    );
  }
  const schema = targetSchema(flags);
  // The URL the target's processes will use: its answer_timeout is the copy's too.
  const timed = storeUrlAnswerTimeout(storeUrlSchema(flags.to).url);
  const resolved = await config();
  const current = resolved.store;
  if (current.type !== 'sqlite') {
    throw new LockstepError(
      ErrorCode.Validation,
      `the current store is already PostgreSQL (${redactUrl(current.url)}); store migrate copies an embedded store — name its file with --store PATH`,
    );
  }
  const path = current.path;
  if (!existsSync(path)) {
    throw new LockstepError(
      ErrorCode.NotFound,
      `no embedded store at ${path}: nothing to copy — run this in the workspace folder, or name the store file with --store PATH`,
    );
  }
  term.err(`Copying the embedded store ${path} into ${redactUrl(flags.to)} (schema "${schema}"), in one transaction:`);
  const started = Date.now();
  const secretKey = resolved.env[SECRET_KEY_ENV] || null;
  const summary = await copyStoreToPostgres({
    sqlitePath: path,
    url: timed.url,
    schema,
    replace: Boolean(flags.replace),
    force: Boolean(flags.force),
    secretKey: secretKey ? { text: secretKey, source: SECRET_KEY_ENV } : null,
    now: started,
    answerTimeoutMs: timed.answerTimeoutMs ?? DEFAULT_STORE_ANSWER_TIMEOUT_MS,
    onProgress: progressPrinter(term),
  });
  printSummary(term, summary, { ...flags, to: urlOpening(flags.to, schema) }, path, Date.now() - started, Boolean(secretKey));
}

/** The schema to copy into: --schema, else the one the --to URL names, else the default; the two may not differ. */
function targetSchema(flags: MigrateFlags): string {
  if (flags.schema !== undefined && flags.schema.trim() === '') throw new LockstepError(ErrorCode.Validation, '--schema is empty — give a schema name, e.g. lockstep');
  const named = storeUrlSchema(flags.to).schema;
  if (flags.schema !== undefined && named !== null && named !== flags.schema) {
    throw new LockstepError(
      ErrorCode.Validation,
      `--schema ${flags.schema} and the ${STORE_SCHEMA_PARAMETER} parameter of --to (${named}) name two schemas — give the schema once, in either`,
    );
  }
  return flags.schema ?? named ?? DEFAULT_SCHEMA;
}

/**
 * The store URL that opens the copy: a schema other than the default must be named in it, since
 * Lockstep's processes open the schema their store URL names (else the default one).
 */
function urlOpening(url: string, schema: string): string {
  if (schema === DEFAULT_SCHEMA || storeUrlSchema(url).schema !== null) return url;
  const hash = url.indexOf('#');
  const [base, fragment] = hash < 0 ? [url, ''] : [url.slice(0, hash), url.slice(hash)];
  return `${base}${base.includes('?') ? '&' : '?'}${STORE_SCHEMA_PARAMETER}=${encodeURIComponent(schema)}${fragment}`;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

function rows(n: number): string {
  return `${count(n)} ${n === 1 ? 'row' : 'rows'}`;
}

/** Progress on stderr: a line per table, and one per 100,000 rows of a large one. */
function progressPrinter(term: Terminal): (progress: CopyProgress) => void {
  return (progress) => {
    switch (progress.type) {
      case 'table:started':
        return;
      case 'table:progress':
        term.err(`  ${progress.table}: ${count(progress.copied)} of ${rows(progress.rows)}…`);
        return;
      case 'table:finished':
        term.err(`  ${progress.table.padEnd(20)} ${rows(progress.rows).padStart(16)}${progress.ms >= 1000 ? `  (${formatDuration(progress.ms)})` : ''}`);
        return;
      case 'data:skipped': {
        const what = progress.column === null ? `table ${progress.table}` : `column ${progress.table}.${progress.column}`;
        term.err(`  not copied: ${what} (${rows(progress.rows)}), which the PostgreSQL store does not have`);
        return;
      }
      case 'target:waiting': {
        const who = progress.pid === null ? 'Another copy' : `Another copy (server process ${progress.pid})`;
        term.err(`  ${who} holds the schema: waiting up to ${formatDuration(progress.ms)} for it to finish, or for its lease to lapse if its client is gone…`);
        return;
      }
      case 'target:taken-over':
        term.err(`  Ended server process ${progress.pid}, left holding the schema by an earlier copy whose client went away: its transaction is rolled back.`);
        return;
      default:
        return assertNever(progress);
    }
  };
}

function printSummary(term: Terminal, summary: CopySummary, flags: MigrateFlags, path: string, ms: number, keyGiven: boolean): void {
  const copied = summary.tables.reduce((sum, t) => sum + t.rows, 0);
  const tables = summary.tables.filter((t) => t.rows > 0).length;
  term.out(`✔ Copied ${rows(copied)} of ${tables} ${tables === 1 ? 'table' : 'tables'} into ${summary.where} in ${formatDuration(ms)}.`);
  if (summary.replaced) term.out('  What the schema held before was deleted (--replace).');
  if (summary.unfinishedRuns > 0) {
    term.out(`  ${summary.unfinishedRuns} unfinished run(s) were copied as they are (--force); workers on the PostgreSQL store take them over once their leases end.`);
  }
  printSecrets(term, summary.secrets, keyGiven);
  const url = redactUrl(flags.to);
  const hidden = hiddenInUrl(flags.to, url);
  term.out('');
  term.out(`Next: stop using ${path} and point every Lockstep process at the PostgreSQL store${hidden ? ` (with ${hidden} in place of ${REDACTED})` : ''}:`);
  term.out(`  export LOCKSTEP_STORE='${url}'`);
  term.out(`  or: lockstep --store '${url}' serve`);
  term.out('  or in lockstep.yaml: store: { type: postgres, url: "${LOCKSTEP_DATABASE_URL}" }');
  term.out(`The embedded store is left as it was: keep it as a backup. Runs made on it from now on are not in PostgreSQL.`);
}

/**
 * What the store URL as shown (redactUrl) hides, for the user to put back in the commands printed:
 * the password, the values of parameters other than harmless connection settings, the fragment.
 * Null when nothing is hidden.
 */
function hiddenInUrl(given: string, shown: string): string | null {
  if (shown === given) return null;
  let before: URL;
  let after: URL;
  try {
    before = new URL(given);
    after = new URL(shown);
  } catch {
    return 'the URL you gave';
  }
  const parts: string[] = [];
  if (before.password) parts.push('your password');
  const parameters = [...new Set(before.searchParams.keys())].filter((name) => after.searchParams.get(name) === REDACTED && before.searchParams.get(name) !== REDACTED);
  if (parameters.length > 0) parts.push(`the value${parameters.length === 1 ? '' : 's'} of ${parameters.join(', ')}`);
  if (before.hash) parts.push('the fragment after #');
  if (parts.length === 0) return 'what you gave';
  return parts.length === 1 ? (parts[0] as string) : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1) as string}`;
}

/** Which key the target's processes need for the secrets copied, without ever showing a key. */
function printSecrets(term: Terminal, secrets: CopySummary['secrets'], keyGiven: boolean): void {
  if (secrets.sealed === 0) return;
  const keys = secrets.keyIds.length === 1 ? `key ${secrets.keyIds[0]}` : `keys ${secrets.keyIds.join(', ')}`;
  const resealed = secrets.resealed > 0 ? `; ${count(secrets.resealed)} sealed again with ${SECRET_KEY_ENV}` : '';
  term.out(`  ${count(secrets.sealed)} secret ${secrets.sealed === 1 ? 'value stays' : 'values stay'} encrypted, with ${keys}${resealed}.`);
  if (keyGiven) term.out(`  Every process on the PostgreSQL store needs the same ${SECRET_KEY_ENV}.`);
  else if (secrets.keyFile) term.out(`  Every process on the PostgreSQL store needs that key: export ${SECRET_KEY_ENV}="$(cat ${secrets.keyFile})"`);
  else term.out(`  Every process on the PostgreSQL store needs ${SECRET_KEY_ENV} set to that key.`);
}

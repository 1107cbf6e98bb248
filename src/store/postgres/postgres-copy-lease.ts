/**
 * Which `lockstep store migrate` may copy into a PostgreSQL schema, and how a copy whose client
 * went away is told from one at work.
 *
 * A copy is one transaction that holds the schema's copy lock and migration lock (transaction-level
 * advisory locks) until its COMMIT. When the network stops answering part-way, the copy's process
 * gives up within its answer timeout, but a partition carries no goodbye: the server keeps the
 * copy's session, its transaction and its locks, until TCP keepalive finds nobody there (two hours
 * by default; never through a proxy that answers for the client). No setting of that session can
 * end it sooner: waiting for a COPY's rows, it is not idle, and a statement timeout would bound a
 * copy at work too.
 *
 * So a copy also holds a lease: a transaction on a connection of its own, holding the schema's
 * lease lock, which the copy's process renews with a statement every half answer timeout and which
 * the server itself ends once it has gone unrenewed for `leaseMs` (idle_in_transaction_session_timeout:
 * a timer on the server, which nothing on the network can keep going). A copy goes on only while it
 * holds its lease: after a renewal that went unanswered, or once its lease's session ended, it
 * stops at its next statement. A lapsed lease therefore means its copy stopped, and the next copy,
 * once it holds the lease, ends the session of a copy left holding the schema (pg_terminate_backend:
 * its transaction is rolled back, nothing of it kept) and copies. A copy at work keeps its lease:
 * the next one waits for it up to the lease's length, then is refused, naming that copy's session.
 * Were a copy at work ended all the same (its process stalled past its lease), it fails and is
 * rolled back: two copies never both commit.
 */
import type pg from 'pg';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import { closeWithin, destroySocket, type AnswerWatch } from './postgres-answer-watch.js';
import { BEGIN, errorCode, type Queryable } from './postgres-database.js';
import { migrationLockKey } from './postgres-migrations.js';

/** A lease lapses this long after its last renewal at the least, whatever the answer timeout. */
const MIN_LEASE_MS = 5000;

/**
 * How long a copy's lease outlives its last renewal, for a copy renewing it every half answer
 * timeout: three answer timeouts (at least MIN_LEASE_MS). A renewal late by a busy moment does not
 * lose it, and a copy whose renewal goes unanswered gives up (an answer timeout, then another for
 * the server's word: see AnswerWatch) before it lapses.
 */
export function leaseMs(answerTimeoutMs: number): number {
  return Math.max(3 * answerTimeoutMs, MIN_LEASE_MS);
}

/** What a copy tells of the schema's locks as it takes them. */
export type LeaseProgress =
  /** Another copy holds the lease: waited for up to `ms`, until it ends or its lease lapses. */
  | { type: 'target:waiting'; pid: number | null; ms: number }
  /** The session of an earlier copy, left holding the schema after its client went away, was ended. */
  | { type: 'target:taken-over'; pid: number };

export interface CopyLeaseOptions {
  /** A connection of the lease's own, opened for it: the lease ends with it. */
  client: pg.Client;
  /** The schema copied into. */
  schema: string;
  /** The target, for messages. */
  where: string;
  /** Watches the lease's statements; its answer timeout sets how often the lease is renewed. */
  watch: AnswerWatch;
  onProgress: (progress: LeaseProgress) => void;
}

export class CopyLease {
  /** Why the lease was lost (a renewal failed), or null while it holds. */
  lost: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  private released = false;

  constructor(private readonly options: CopyLeaseOptions) {
    // The server ending the lease's session (an administrator, its idle timeout) is heard at once.
    options.client.on('error', (error) => {
      if (!this.released) this.lost ??= error;
    });
  }

  /** Throws why the lease was lost, once it was: the copy must not go on. */
  assertHeld(): void {
    if (this.lost) throw this.lost;
  }

  /** Whether the lease's connection was given up on after a statement went unanswered (see AnswerWatch). */
  get gaveUp(): boolean {
    return this.options.watch.gaveUp(this.options.client);
  }

  /**
   * Takes the schema's lease, waiting up to a lease's length (and an answer timeout) for a copy
   * holding it to end or its lease to lapse; refused, naming that copy, when it holds it still.
   * Then renews it every half answer timeout until released.
   */
  async take(): Promise<void> {
    const { client, schema, where, watch } = this.options;
    const q: Queryable = { query: (text, values) => watch.answered(client, client.query(text, values)) };
    const ms = leaseMs(watch.answerTimeoutMs);
    await q.query(BEGIN);
    await q.query(`SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(ms)}`);
    const key = leaseKey(schema);
    if (!(await tryLock(q, key))) {
      const waitMs = ms + watch.answerTimeoutMs;
      const holder = (await holderOf(q, copyKey(schema))) ?? (await holderOf(q, key));
      this.options.onProgress({ type: 'target:waiting', pid: holder?.pid ?? null, ms: waitMs });
      if (!(await lockWithin(q, key, waitMs))) {
        const copying = (await holderOf(q, copyKey(schema))) ?? (await holderOf(q, key));
        const stop = copying ? `, or stop it (where it runs, or on the server: SELECT pg_terminate_backend(${copying.pid}))` : ', or stop it';
        throw new LockstepError(
          ErrorCode.Conflict,
          `another \`lockstep store migrate\` is copying into ${where}${copying ? `: ${describeHolder(copying)}` : ''}, ` +
            `and it kept its lease for the ${seconds(waitMs)} s waited — wait for it to finish${stop}, then run this again`,
        );
      }
    }
    this.schedule();
  }

  /** Stops renewing, and ends the lease with its connection (closed at once when the server does not answer). */
  async release(): Promise<void> {
    this.released = true;
    if (this.timer) clearTimeout(this.timer);
    await this.renewing;
    const { client, watch } = this.options;
    await closeWithin(client.end(), watch.answerTimeoutMs, () => destroySocket(client));
  }

  /** The next renewal, half an answer timeout on (see leaseMs). */
  private schedule(): void {
    this.timer = setTimeout(() => {
      this.renewing = this.renew();
    }, this.options.watch.answerTimeoutMs / 2);
  }

  private async renew(): Promise<void> {
    const { client, watch } = this.options;
    try {
      await watch.answered(client, client.query('SELECT 1'));
    } catch (error) {
      // Given up on, the watch's failure says why, whatever the connection said as it closed.
      if (!this.released) this.lost = watch.gaveUp(client) ? toError(error) : (this.lost ?? toError(error));
      return;
    }
    if (!this.released) this.schedule();
  }
}

/**
 * Takes the schema for a copy holding its lease, in the copy's transaction `q`: the copy lock,
 * ending the session of a copy that holds it still (its lease lapsed, so its client went away),
 * then the migration lock, which a Lockstep process opening the store holds while it migrates the
 * schema. Each is waited for up to `waitMs`, then refused naming the session that holds it.
 */
export async function takeSchema(
  q: Queryable,
  { schema, where, waitMs, onProgress }: { schema: string; where: string; waitMs: number; onProgress: (progress: LeaseProgress) => void },
): Promise<void> {
  const copy = copyKey(schema);
  if (!(await tryLock(q, copy))) {
    const left = await holderOf(q, copy);
    if (left) {
      await endSession(q, left, where);
      onProgress({ type: 'target:taken-over', pid: left.pid });
    }
    // The ended session lets go of its locks as it exits.
    if (!(await lockWithin(q, copy, waitMs))) {
      const holder = await holderOf(q, copy);
      throw new LockstepError(
        ErrorCode.Conflict,
        `${where} is still held by an earlier copy${holder ? `: ${describeHolder(holder)}` : ''}, though its lease lapsed — ` +
          `end its session${holder ? ` (SELECT pg_terminate_backend(${holder.pid}))` : ''}, then run this again`,
      );
    }
  }
  const migration = migrationLockKey(schema);
  if (!(await lockWithin(q, migration, waitMs))) {
    const holder = await holderOf(q, migration);
    throw new LockstepError(
      ErrorCode.Conflict,
      `${where} is being migrated by another session${holder ? `, ${describeHolder(holder)}` : ''}, which held the schema's migration lock ` +
        `for the ${seconds(waitMs)} s waited (a Lockstep process opening the store holds it while it brings the schema up to date) — ` +
        `wait for it, or when that session is left over from a process that is gone, end it${holder ? ` (SELECT pg_terminate_backend(${holder.pid}))` : ''}; then run this again`,
    );
  }
}

/** What a process opening the store tells of the migration lock as it takes it. */
export type MigrationLockProgress =
  /** Another session holds it (a process migrating the schema, or a copy at work): waited for. */
  | { type: 'store:waiting'; holder: string }
  /** The session of a copy left holding it after its client went away was ended. */
  | { type: 'store:taken-over'; pid: number; holder: string };

/** How often a process waiting for the migration lock looks whether its holder is a left-over copy. */
const MIGRATION_CHECK_MS = 1000;

/**
 * Takes the schema's migration lock for a process opening the store, in its migrating transaction
 * `q`, waiting for the session that holds it: another process bringing the schema up to date, or a
 * copy at work (however long it takes). A copy whose client went away leaves its session holding
 * the lock until TCP keepalive notices (hours): once that copy's lease lapsed, its session is ended
 * (its transaction rolled back, nothing of it kept) and the store opens, as the next copy would.
 */
export async function takeMigrationLock(
  q: Queryable,
  { schema, where, onProgress }: { schema: string; where: string; onProgress: (progress: MigrationLockProgress) => void },
): Promise<void> {
  const migration = migrationLockKey(schema);
  if (await tryLock(q, migration)) return;
  let told = false;
  for (;;) {
    const holder = await holderOf(q, migration);
    if (holder && (await holderOf(q, copyKey(schema)))?.pid === holder.pid && (await holderOf(q, leaseKey(schema))) === null) {
      await endSession(q, holder, where);
      onProgress({ type: 'store:taken-over', pid: holder.pid, holder: describeHolder(holder) });
    } else if (holder && !told) {
      told = true;
      onProgress({ type: 'store:waiting', holder: describeHolder(holder) });
    }
    if (await lockWithin(q, migration, MIGRATION_CHECK_MS)) return;
  }
}

/** The lock a copy's lease holds. */
function leaseKey(schema: string): string {
  return `lockstep:copy-lease:${schema}`;
}

/** The lock a copy's transaction holds: it tells a copy's session from a Lockstep process's. */
function copyKey(schema: string): string {
  return `lockstep:copy:${schema}`;
}

/** Takes the advisory lock `key` in the transaction if no other session holds it. */
async function tryLock(q: Queryable, key: string): Promise<boolean> {
  const { rows } = await q.query<{ taken: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS taken', [key]);
  return rows[0]?.taken === true;
}

/**
 * Takes the advisory lock `key` in the transaction, waiting up to `ms` for the session holding it.
 * Under a savepoint, so a wait that times out leaves the transaction usable.
 */
async function lockWithin(q: Queryable, key: string, ms: number): Promise<boolean> {
  await q.query('SAVEPOINT lockstep_lock');
  try {
    await q.query(`SET LOCAL lock_timeout = ${Math.ceil(ms)}`);
    await q.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
  } catch (error) {
    if (errorCode(error) !== LOCK_NOT_AVAILABLE) throw error;
    await q.query('ROLLBACK TO SAVEPOINT lockstep_lock');
    return false;
  }
  await q.query('SET LOCAL lock_timeout = DEFAULT');
  await q.query('RELEASE SAVEPOINT lockstep_lock');
  return true;
}

/** SQLSTATE of a lock not taken within lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';
/** SQLSTATE of a session this user may not end. */
const INSUFFICIENT_PRIVILEGE = '42501';

/** A session holding an advisory lock, as far as this user may see it (another user's session shows less). */
interface Holder {
  pid: number;
  user: string | null;
  application: string | null;
  client: string | null;
  /** Seconds since its transaction began. */
  seconds: number | null;
}

/** The session holding the advisory lock `key` in this database, if any. */
async function holderOf(q: Queryable, key: string): Promise<Holder | null> {
  const { rows } = await q.query<Holder>(
    `SELECT l.pid, a.usename AS user, nullif(a.application_name, '') AS application, host(a.client_addr) AS client,
            floor(extract(epoch FROM clock_timestamp() - a.xact_start))::int AS seconds
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid <> pg_backend_pid()
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = ((hashtextextended($1, 0) >> 32) & 4294967295)::oid
        AND l.objid = (hashtextextended($1, 0) & 4294967295)::oid
      LIMIT 1`,
    [key],
  );
  return rows[0] ?? null;
}

/** `server process 6672 (user lockstep, from 10.0.0.5, application "lockstep store migrate", in its transaction for 42 s)`. */
function describeHolder(holder: Holder): string {
  const parts = [
    holder.user === null ? null : `user ${holder.user}`,
    holder.client === null ? null : `from ${holder.client}`,
    holder.application === null ? null : `application "${holder.application}"`,
    holder.seconds === null ? null : `in its transaction for ${holder.seconds} s`,
  ].filter((part) => part !== null);
  return `server process ${holder.pid}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}

/** Ends the session of a copy left holding the schema: its transaction is rolled back. */
async function endSession(q: Queryable, holder: Holder, where: string): Promise<void> {
  try {
    await q.query('SELECT pg_terminate_backend($1)', [holder.pid]);
  } catch (error) {
    if (errorCode(error) !== INSUFFICIENT_PRIVILEGE) throw error;
    throw new LockstepError(
      ErrorCode.Conflict,
      `${where} is held by an earlier copy whose client went away (its lease lapsed): ${describeHolder(holder)} lives on until the server ` +
        `notices (TCP keepalive: two hours by default), and this user may not end it — end it as ${holder.user ?? 'its user'} or a superuser ` +
        `(SELECT pg_terminate_backend(${holder.pid})), then run this again`,
      { cause: toError(error) },
    );
  }
}

function seconds(ms: number): number {
  return Number((ms / 1000).toFixed(1));
}

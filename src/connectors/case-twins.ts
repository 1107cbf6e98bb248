/**
 * Keys that differ only in case, for destinations that match a key without regard to case
 * (Salesforce's case-insensitive external ids, HubSpot's contact emails): two such keys write one
 * record, so the first sent in a run wins and a later one with the same lowercased text and another
 * text is its twin, rejected naming it.
 *
 * Memory is bounded whatever the model's size: keys are held in a Map up to `budgetBytes` (about
 * 100 bytes per key of 10 characters, estimated at 2 bytes a character); past it, new keys go to a
 * private temporary SQLite database, on disk, whose page cache is held to CACHE_BYTES. A run thus
 * holds at most `budgetBytes` + CACHE_BYTES for them. SQLite makes the file in its temporary
 * folder (SQLITE_TMPDIR or TMPDIR, else /var/tmp or /tmp) and, on Unix, unlinks it as soon as it
 * opens it, so nothing is left behind. Every lookup compares the keys' whole text, in memory or on
 * disk (no fingerprint, so no twin on a hash's collision), and none calls the destination.
 */
import Database from 'better-sqlite3';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import type { SqliteConstructor, SqliteDatabase, SqliteStatement } from './sql.js';

const SqliteDatabaseClass = Database as unknown as SqliteConstructor;

/** Bytes of keys a run holds in memory before the rest go to disk (default of `budgetBytes`). */
export const CASE_TWIN_BYTES = 16 * 1024 * 1024;
/** Bytes of the temporary database's page cache. */
const CACHE_BYTES = 2 * 1024 * 1024;
/** Where SQLite makes its temporary files on Unix, for messages. */
const TEMP_FOLDER = 'the folder SQLITE_TMPDIR or TMPDIR names, else /var/tmp or /tmp';
/** Estimated bytes of a Map entry besides its two strings' characters. */
const ENTRY_BYTES = 64;

const lowerCase = (key: string): string => key.toLowerCase();

export class CaseTwins {
  /** Lowercased key → the key as first sent, while within the budget. */
  private readonly held = new Map<string, string>();
  private heldBytes = 0;
  private onDisk = 0;
  private db: SqliteDatabase | null = null;
  private select: SqliteStatement | null = null;
  private insert: SqliteStatement | null = null;
  private closed = false;

  /**
   * `budgetBytes`: memory the keys may take before the rest go to disk (default: CASE_TWIN_BYTES);
   * `fold`: the form in which two keys are twins (default: lowercased; HubSpot's emails also go
   * without the spaces around them).
   */
  constructor(
    private readonly budgetBytes: number = CASE_TWIN_BYTES,
    private readonly fold: (key: string) => string = lowerCase,
  ) {}

  /** Estimated bytes the keys held in memory take (at most `budgetBytes`). */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Keys held on disk, past the budget. */
  get spilled(): number {
    return this.onDisk;
  }

  /**
   * For each key, in order, the key first sent of its twins: the key itself when no twin came
   * before it (it is then remembered), or the earlier twin's text. A key sent again is its own first.
   */
  firsts(keys: readonly string[]): string[] {
    // A write after the connection closed (a cancelled run) would open a file nothing closes.
    if (this.closed) throw new LockstepError(ErrorCode.Connection, 'checking the external ids of a batch: the destination is closed');
    const out = new Array<string>(keys.length);
    let began = false;
    try {
      keys.forEach((key, n) => {
        const lower = this.fold(key);
        const held = this.held.get(lower);
        if (held !== undefined) {
          out[n] = held;
          return;
        }
        const cost = ENTRY_BYTES + 2 * (lower.length + key.length);
        // Once keys went to disk, every new one does: a key is in one place only.
        if (this.db === null && this.heldBytes + cost <= this.budgetBytes) {
          this.held.set(lower, key);
          this.heldBytes += cost;
          out[n] = key;
          return;
        }
        const db = this.db ?? this.openDisk();
        if (!began) {
          db.exec('begin');
          began = true;
        }
        // UTF-16 code units as they are: any JavaScript string, compared exactly.
        const lowered = Buffer.from(lower, 'utf16le');
        const found = (this.select as SqliteStatement).all(lowered)[0] as [Buffer] | undefined;
        if (found) {
          out[n] = found[0].toString('utf16le');
          return;
        }
        (this.insert as SqliteStatement).run(lowered, Buffer.from(key, 'utf16le'));
        this.onDisk++;
        out[n] = key;
      });
      if (began) this.db?.exec('commit');
    } catch (e) {
      const error = toError(e);
      if (began && this.db?.inTransaction) this.db.exec('rollback');
      throw new LockstepError(
        ErrorCode.Internal,
        `could not keep the keys this run sent past ${Math.round(this.budgetBytes / 1024)} KiB in a temporary SQLite file (${TEMP_FOLDER}): ${error.message} — free space there, or set TMPDIR to a folder with room`,
        { cause: error },
      );
    }
    return out;
  }

  /**
   * The key first sent of `key`'s twins (it may be `key` itself), or undefined when none was sent;
   * unlike `firsts`, `key` is not remembered.
   */
  find(key: string): string | undefined {
    if (this.closed) throw new LockstepError(ErrorCode.Connection, 'checking the external ids of a batch: the destination is closed');
    const lower = this.fold(key);
    const held = this.held.get(lower);
    if (held !== undefined || this.select === null) return held;
    const found = this.select.all(Buffer.from(lower, 'utf16le'))[0] as [Buffer] | undefined;
    return found?.[0].toString('utf16le');
  }

  /**
   * Records each of `texts` as sent, unless a key that differs from it only in case was sent
   * before (in this run, or earlier in `texts`): those are answered, by their place in `texts`,
   * with the text sent first. Texts without a letter have no twin in case, and are not kept when
   * only case makes twins.
   */
  claim(texts: readonly string[]): Map<number, string> {
    const twins = new Map<number, string>();
    const cased = texts.flatMap((text, i) => (this.fold === lowerCase && text.toLowerCase() === text.toUpperCase() ? [] : [i]));
    if (cased.length === 0) return twins;
    const firsts = this.firsts(cased.map((i) => texts[i] as string));
    cased.forEach((i, n) => {
      if (firsts[n] !== texts[i]) twins.set(i, firsts[n] as string);
    });
    return twins;
  }

  /** Removes the temporary file, if there is one (the set answers nothing after). */
  close(): void {
    this.closed = true;
    this.held.clear();
    this.heldBytes = 0;
    this.db?.close();
    this.db = null;
  }

  private openDisk(): SqliteDatabase {
    // '': a private temporary database on disk, deleted when closed.
    const db = new SqliteDatabaseClass('');
    // Nothing to recover after a crash: no journal, no syncs; one connection.
    db.pragma('journal_mode = off');
    db.pragma('synchronous = off');
    db.pragma('locking_mode = exclusive');
    db.pragma(`cache_size = -${CACHE_BYTES / 1024}`);
    db.exec('create table twins (lower blob primary key, first blob not null) without rowid');
    this.select = db.prepare('select first from twins where lower = ?').raw(true);
    this.insert = db.prepare('insert into twins (lower, first) values (?, ?)');
    this.db = db;
    return db;
  }
}

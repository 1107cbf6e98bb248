/**
 * A worker thread with its own connection to a SQLite store file, running write transactions (and
 * bulk reads of pages) off the main thread. The SQLite store hands it the snapshot's bulk writes:
 * their B-tree work (about 0.8 s per million rows) then overlaps with the sync runner's planning
 * instead of stalling it.
 *
 * States: not started → running (started by the first `run`) → closed (`close`). Transactions run
 * in the order they were handed over; those that wait while the thread is busy are committed
 * together as one SQLite transaction (each alone if that fails); a transaction's promise settles
 * once it has committed (or rolled back) on the worker's connection, so a caller that awaits it
 * reads its effect through any connection. While no transaction is pending the worker does not keep the
 * process alive. If the thread dies, the pending transactions fail and the next `run` starts a
 * new one.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** One statement of a transaction: its SQL and positional parameters. */
export type WriteStatement = [sql: string, params: Array<string | number | null>];

/**
 * Many rows inserted in a few statements; a few objects cross to the thread far cheaper than an
 * array per row. Two forms:
 * - with `values`: one multi-row statement per `rowsPerStatement` rows, each row binding
 *   `(first, keys[i], values[i])`; keys and values travel as strings joined by `ROW_SEPARATOR`, and
 *   the thread fails with SEPARATOR_IN_KEY, writing nothing, when the keys do not split back into
 *   `count`;
 * - with `hashes` (words, two per row): `keys` is one JSON array and `sql` one statement for all
 *   the rows, taking `@first`, `@keys` (the array's text) and `@hashes` (one BLOB, 8 bytes a row,
 *   big end first; see SNAPSHOT_JSON_UPSERT in sqlite-snapshot-store.ts).
 */
export interface PackedRows {
  /** The statement for `rowsPerStatement` rows. */
  sql: string;
  /** The statement for the last, shorter group, if the rows do not divide evenly. */
  lastSql: string | null;
  rowsPerStatement: number;
  first: string | number;
  count: number;
  keys: string;
  values: string | null;
  hashes: Uint32Array | null;
}

/** The error code of a packed write whose keys held `ROW_SEPARATOR`. */
export const SEPARATOR_IN_KEY = 'LOCKSTEP_SEPARATOR_IN_KEY';

/** Joins the keys and values of `PackedRows`. */
export const ROW_SEPARATOR = '\u0000';

/** The error code of a transaction whose guard found no row: nothing was written. */
export const GUARD_FAILED = 'LOCKSTEP_GUARD_FAILED';

/** A query that must return a row for the transaction to go on (e.g. a fenced run still in its attempt). */
export interface WriteGuard {
  sql: string;
  params: WriteStatement[1];
}

/** A transaction: its guard first (if any), then the packed rows (if any), then the statements. */
export interface WriteTransaction {
  rows: PackedRows | null;
  statements: WriteStatement[];
  guard?: WriteGuard | null;
}

export interface SqliteWriteWorkerOptions {
  /** Absolute path of the store file (already in WAL mode). */
  path: string;
  /** Milliseconds the worker's connection waits for another connection's lock. */
  busyTimeoutMs: number;
  /** Pragmas the worker's connection runs after opening (e.g. `synchronous = NORMAL`). */
  pragmas: readonly string[];
}

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
  /** For a read of pages: takes each page as it arrives. */
  page?: (row: unknown[]) => void;
}

/** What the thread answers for a transaction: nothing when committed, else SQLite's error; a read of pages sends its pages first. */
interface Reply {
  id: number;
  error?: { message: string; code?: string };
  page?: unknown[];
}

/**
 * The thread's code, run with `eval` so the same source works from the TypeScript sources (tests)
 * and the built files. It opens its connection, then runs each transaction in `BEGIN IMMEDIATE`.
 */
const WORKER_SOURCE = `
// Modules through process.getBuiltinModule and createRequire, not require: the thread inherits the
// process's Node options as Node passes them (V8 flags like --max-old-space-size included, which an
// explicit execArgv refuses), and so runs this code as an ES module when the process was started
// with --input-type=module, as CommonJS otherwise.
const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads');
const Database = process.getBuiltinModule('node:module').createRequire(workerData.driver)(workerData.driver);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs });
for (const pragma of workerData.pragmas) db.pragma(pragma);
const statements = new Map();
// The packed rows' statement texts by the number the main thread gave them.
const sqlTexts = new Map();
const prepared = (sql) => {
  let statement = statements.get(sql);
  if (statement === undefined) {
    statement = db.prepare(sql);
    statements.set(sql, statement);
  }
  return statement;
};
const text = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
// The hashes of rows start..end as one BLOB, 8 bytes each, big end first: the words copied, then
// their bytes swapped in one call where the machine keeps words little end first, rather than a
// write call per word (two per row, and code the thread compiled in every process's first run).
const littleEndian = process.getBuiltinModule('node:os').endianness() === 'LE';
const hashBlob = (hashes, start, end) => {
  const words = hashes.slice(2 * start, 2 * end);
  const bytes = Buffer.from(words.buffer, words.byteOffset, words.byteLength);
  return littleEndian ? bytes.swap32() : bytes;
};
const insertRows = (rows) => {
  if (rows.hashes !== null) {
    prepared(sqlTexts.get(rows.sql)).run({ first: rows.first, keys: text(rows.keys), hashes: hashBlob(rows.hashes, 0, rows.count) });
    return;
  }
  const keys = text(rows.keys).split('\\u0000');
  if (keys.length !== rows.count) {
    const error = new Error('a snapshot key holds the packed rows separator');
    error.code = '${SEPARATOR_IN_KEY}';
    throw error;
  }
  const values = text(rows.values).split('\\u0000');
  const params = [];
  for (let start = 0; start < keys.length; start += rows.rowsPerStatement) {
    const end = Math.min(keys.length, start + rows.rowsPerStatement);
    const statement = prepared(sqlTexts.get(end - start === rows.rowsPerStatement ? rows.sql : rows.lastSql));
    params.length = 0;
    for (let i = start; i < end; i++) params.push(rows.first, keys[i], values[i]);
    statement.run(...params);
  }
};
const apply = (transaction) => {
  if (transaction.guard && prepared(transaction.guard.sql).get(...transaction.guard.params) === undefined) {
    const error = new Error('the guard of the transaction found no row');
    error.code = '${GUARD_FAILED}';
    throw error;
  }
  if (transaction.rows) insertRows(transaction.rows);
  for (const [sql, params] of transaction.statements) prepared(sql).run(...params);
};
// Transactions waiting here are committed together, in order, as one: a page several of them
// change is written to the WAL once. If that fails, each is run alone, so each gets its own answer.
let began = false;
const many = db.transaction((transactions) => {
  began = true;
  for (const message of transactions) apply(message.transaction);
});
const one = db.transaction((message) => {
  began = true;
  apply(message.transaction);
});
// A BEGIN refused as busy is tried again until the busy timeout has passed by the clock: SQLite
// counts the sleeps it asked for, and signals cut them short (core/lock-wait.ts).
const pause = new Int32Array(new SharedArrayBuffer(4));
const immediately = (transaction, argument) => {
  const started = performance.now();
  for (;;) {
    began = false;
    try {
      return transaction.immediate(argument);
    } catch (error) {
      const busy = !began && error && typeof error.code === 'string' && error.code.startsWith('SQLITE_BUSY');
      if (!busy || performance.now() - started + 2 >= workerData.busyTimeoutMs) throw error;
      Atomics.wait(pause, 0, 0, 2);
    }
  }
};
const answer = (message, error) =>
  parentPort.postMessage(error ? { id: message.id, error: { message: String(error && error.message), code: error && error.code } } : { id: message.id });
let waiting = [];
const commitWaiting = () => {
  const transactions = waiting;
  waiting = [];
  if (transactions.length > 1) {
    try {
      immediately(many, transactions);
      for (const message of transactions) answer(message);
      return;
    } catch {
      // One of them failed: each alone below.
    }
  }
  for (const message of transactions) {
    try {
      immediately(one, message);
      answer(message);
    } catch (error) {
      answer(message, error);
    }
  }
};
// control[0]: 1 once the reader has stopped; control[1]: pages the reader has taken.
const readPages = (id, { first, next, key, size, control, window }) => {
  let row = prepared(first).raw(true).get(key, size);
  for (let sent = 1; ; sent++) {
    parentPort.postMessage({ id, page: row });
    if (row[0] < size || row[3] === null) return;
    for (let taken = Atomics.load(control, 1); sent - taken >= window && Atomics.load(control, 0) === 0; taken = Atomics.load(control, 1)) {
      Atomics.wait(control, 1, taken, 1000);
    }
    if (Atomics.load(control, 0) === 1) return;
    row = prepared(next).raw(true).get(key, row[3], size);
  }
};
parentPort.on('message', (message) => {
  if (message.close) {
    commitWaiting();
    db.close();
    parentPort.close();
    return;
  }
  if (message.ready) {
    answer(message);
    return;
  }
  if (message.checkpoint) {
    commitWaiting();
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // Busy: the next one will do.
    }
    return;
  }
  if (message.transaction) {
    // Statement texts arrive once, the first time a transaction uses them (see SqliteWriteWorker.run).
    const rows = message.transaction.rows;
    if (rows) {
      if (rows.sqlText !== null) sqlTexts.set(rows.sql, rows.sqlText);
      if (rows.lastSqlText !== null) sqlTexts.set(rows.lastSql, rows.lastSqlText);
    }
    // Committed once the messages that arrived with it are taken in too.
    if (waiting.push(message) === 1) setImmediate(commitWaiting);
    return;
  }
  // Anything else waits for the transactions before it.
  commitWaiting();
  try {
    readPages(message.id, message.pages);
    answer(message);
  } catch (error) {
    answer(message, error);
  }
});
`;

/** Pages a read of pages may run ahead of its reader. */
const PAGES_AHEAD = 4;

export class SqliteWriteWorker {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Statement texts of packed rows the running thread has been sent, by their number there. */
  private sqlNumbers = new Map<string, number>();

  /** The number of a packed rows statement on the running thread, and its text when the thread does not have it yet. */
  private sqlNumber(sql: string): { number: number; text: string | null } {
    const known = this.sqlNumbers.get(sql);
    if (known !== undefined) return { number: known, text: null };
    const number = this.sqlNumbers.size + 1;
    this.sqlNumbers.set(sql, number);
    return { number, text: sql };
  }

  constructor(private readonly options: SqliteWriteWorkerOptions) {}

  /**
   * Runs `transaction` as one transaction on the worker's connection, after every transaction handed
   * over before it. Resolves once committed; rejects with SQLite's error (carrying its `SQLITE_*`
   * code) when the transaction failed and was rolled back.
   */
  run(transaction: WriteTransaction): Promise<void> {
    if (this.closed) return Promise.reject(new TypeError('The database connection is not open'));
    const worker = this.worker ?? this.start();
    const rows = transaction.rows;
    if (rows) {
      // As bytes, copied to the thread (a memory copy: some 100 kB per 5,000 rows). Not moved: moving
      // an ArrayBuffer detaches it, and the first detach in a process makes V8 throw away the
      // optimised code of every function reading typed arrays (the row hash, the key set, the
      // planning loop), which a run's first commit did in the middle of the run's rows.
      const keys = Buffer.from(rows.keys, 'utf8');
      const values = rows.values === null ? null : Buffer.from(rows.values, 'utf8');
      // A statement's text (20 kB for 500 rows) crosses once; then its number does, and the thread
      // neither copies it nor hashes it again to find its prepared statement.
      const sql = this.sqlNumber(rows.sql);
      const last = rows.lastSql === null ? null : this.sqlNumber(rows.lastSql);
      const packed = {
        ...rows,
        keys,
        values,
        sql: sql.number,
        sqlText: sql.text,
        lastSql: last?.number ?? null,
        lastSqlText: last?.text ?? null,
      };
      return this.ask(worker, (id) => ({ id, transaction: { ...transaction, rows: packed } }));
    }
    return this.ask(worker, (id) => ({ id, transaction }));
  }

  /**
   * Reads pages on the worker's connection, after the transactions handed over before: `first`
   * takes (key, size) and `next` (key, after, size), `key` a value or an object of named
   * parameters; each answers one row whose first column is the page's row count and last column
   * where the next page starts after. The pages come while the caller works on the ones before
   * (the queries run on the worker's thread), at most `window` pages ahead of them.
   */
  async *pages(first: string, next: string, key: number | Record<string, string | number>, size: number, window = PAGES_AHEAD): AsyncGenerator<unknown[]> {
    if (this.closed) throw new TypeError('The database connection is not open');
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const arrived: unknown[][] = [];
    let finished = false;
    let failed: Error | null = null;
    let wake: (() => void) | null = null;
    const notify = () => {
      const waiting = wake;
      wake = null;
      waiting?.();
    };
    this.pending.set(id, {
      resolve: () => {
        finished = true;
        notify();
      },
      reject: (error) => {
        failed = error;
        notify();
      },
      page: (row) => {
        if (Atomics.load(control, 0) === 1) return;
        arrived.push(row);
        notify();
      },
    });
    if (this.pending.size === 1) worker.ref();
    // The thread reads at most PAGES_AHEAD pages ahead of the caller, and stops when the caller does.
    const control = new Int32Array(new SharedArrayBuffer(8));
    worker.postMessage({ id, pages: { first, next, key, size, control, window } });
    try {
      for (;;) {
        const row = arrived.shift();
        if (row) {
          Atomics.add(control, 1, 1);
          Atomics.notify(control, 1);
          yield row;
        } else if (failed) throw failed;
        else if (finished) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 1);
      arrived.length = 0;
    }
  }

  /**
   * Checkpoints the WAL on the worker's connection, after the transactions handed over before,
   * when the thread is running (it writes most of the WAL); false when it is not.
   */
  checkpoint(): boolean {
    if (this.closed || this.worker === null) return false;
    this.worker.postMessage({ checkpoint: true });
    return true;
  }

  /**
   * Starts the thread, if it is not running, and resolves once it has opened its connection: what
   * a first write would otherwise wait for (some 30 ms of a thread's start and its driver's loading).
   */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new TypeError('The database connection is not open'));
    return this.ask(this.worker ?? this.start(), (id) => ({ id, ready: true }));
  }

  /**
   * Sends the thread the message `make` builds for a new request's id; resolves (or rejects) with
   * its answer. While any answer is awaited, the thread keeps the process alive.
   */
  private ask(worker: Worker, make: (id: number) => object): Promise<void> {
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.pending.size === 1) worker.ref();
    worker.postMessage(make(id));
    return done;
  }

  /** Lets the pending transactions finish, closes the worker's connection and ends the thread. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.ref();
    worker.postMessage({ close: true });
    await exited;
  }

  private start(): Worker {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    // A new thread knows no statement texts yet.
    this.sqlNumbers = new Map();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Its garbage is a batch's parameters at a time: a small young generation keeps its memory down.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
      workerData: { driver, path: this.options.path, busyTimeoutMs: this.options.busyTimeoutMs, pragmas: this.options.pragmas },
    });
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      if (reply.page) {
        waiting.page?.(reply.page);
        return;
      }
      this.pending.delete(reply.id);
      // Idle, the thread does not keep the process alive; closing, it does until it has exited.
      if (this.pending.size === 0 && !this.closed) worker.unref();
      if (reply.error) {
        const error = new Error(reply.error.message) as Error & { code?: string };
        if (reply.error.code !== undefined) error.code = reply.error.code;
        waiting.reject(error);
      } else {
        waiting.resolve();
      }
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = null;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the SQLite write worker of ${this.options.path} exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }
}

/**
 * One DuckDB instance per file in this process, shared by every source opened on it.
 *
 * DuckDB's file lock keeps other processes out, but not a second instance in the same process: two
 * instances opened for writing on one file both succeed, each with its own view of the file, and the
 * last to checkpoint overwrites what the other wrote (two syncs of one source with the planner in
 * the file, run at once, lost one sync's planner table, so its next run sent every row again). An
 * instance opened read-only next to one that writes reads blocks being rewritten under it. So the
 * instances are kept here, for the whole process, as DuckDB keeps its lock: sources on the same
 * file in the same mode share one, closed when the last of them closes; a source wanting the other
 * mode while it is open is refused as another process would be.
 */
import { statSync } from 'node:fs';
import type { DuckDBInstance } from '@duckdb/node-api';
import { DuckDbMemory } from './duckdb-memory.js';

/** How a file is opened: for writing (the planner in the file) or read-only. */
export type DuckDbAccess = 'READ_WRITE' | 'READ_ONLY';

/** An instance shared by the sources on one file. */
export interface SharedDuckDb {
  instance: DuckDBInstance;
  access: DuckDbAccess;
  /** The instance's memory limit (opened for writing): one for the instance, whichever source raises it. */
  memory: DuckDbMemory;
  /**
   * Runs `task` after the tasks given before it have ended: DuckDB refuses the second of two
   * transactions that create the same schema or table at once (a write-write conflict), as two
   * planners setting up in a new file do.
   */
  oneAtATime<T>(task: () => Promise<T>): Promise<T>;
}

/** One source's use of a shared instance. */
export interface DuckDbLease extends SharedDuckDb {
  /** Gives the instance back (once; later calls do nothing); the last user closes it. */
  release(): void;
}

interface Entry {
  access: DuckDbAccess;
  users: number;
  opening: Promise<SharedDuckDb>;
}

const files = new Map<string, Entry>();

/** Thrown when the file is open in this process in the other mode; the caller reports it as it reports DuckDB's lock conflict. */
export class HeldInProcess extends Error {
  constructor(readonly held: DuckDbAccess) {
    super(`it is open ${held === 'READ_WRITE' ? 'for writing' : 'read-only'} by another run of this Lockstep process`);
    this.name = 'HeldInProcess';
  }
}

/**
 * The instance of the file at `path` in `access` mode, made with `create` when none is open; each
 * lease is released once its source is done with it.
 */
export async function acquireDuckDb(path: string, access: DuckDbAccess, create: (memory: DuckDbMemory) => Promise<DuckDBInstance>): Promise<DuckDbLease> {
  const key = fileKey(path);
  let entry = files.get(key);
  if (entry && entry.access !== access) throw new HeldInProcess(entry.access);
  if (!entry) {
    const memory = new DuckDbMemory();
    let turn: Promise<unknown> = Promise.resolve();
    const oneAtATime = <T>(task: () => Promise<T>): Promise<T> => {
      const next = turn.then(task);
      turn = next.catch(() => undefined);
      return next;
    };
    const opening = create(memory).then((instance) => ({ instance, access, memory, oneAtATime }));
    const created: Entry = { access, users: 0, opening };
    entry = created;
    files.set(key, created);
    // A failed open is not kept: the next caller tries again.
    opening.catch(() => {
      if (files.get(key) === created) files.delete(key);
    });
  }
  const held = entry;
  held.users++;
  let shared: SharedDuckDb;
  try {
    shared = await held.opening;
  } catch (error) {
    held.users--;
    throw error;
  }
  let released = false;
  return {
    ...shared,
    release: () => {
      if (released) return;
      released = true;
      held.users--;
      if (held.users > 0) return;
      if (files.get(key) === held) files.delete(key);
      shared.instance.closeSync();
    },
  };
}

/**
 * The file itself, not its name: `a/../w.duckdb` and a link to it name one file, and a file renamed
 * over it (as tools rebuilding a database do) is another one, read by a new instance while runs
 * that began on the old file finish reading it.
 */
function fileKey(path: string): string {
  try {
    const { dev, ino } = statSync(path);
    return `${dev}:${ino}`;
  } catch {
    return path;
  }
}

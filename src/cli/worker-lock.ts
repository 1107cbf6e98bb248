/**
 * On the embedded SQLite store, one process at a time runs work (a second one would take the first
 * one's running syncs for crashed ones). The holder writes its pid into `<store>.worker.pid`; a
 * file left by a dead process is taken over.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

export interface WorkerLock {
  release(): void;
}

/** Takes the lock, or returns the pid of the live process holding it. */
export function acquireWorkerLock(storePath: string): WorkerLock | { heldBy: number } {
  const path = `${storePath}.worker.pid`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return {
        release() {
          try {
            if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (thrown) {
      if ((thrown as NodeJS.ErrnoException).code !== 'EEXIST') throw thrown;
      const pid = Number(readFileSafe(path));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) return { heldBy: pid };
      try {
        unlinkSync(path);
      } catch {
        // another process took it over first; try again
      }
    }
  }
  throw new Error(`could not take the worker lock ${path} — remove the file if no Lockstep process is running`);
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A killed process whose parent has not reaped it yet still answers; it is gone all the same.
    const stat = readFileSafe(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch (thrown) {
    return (thrown as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A store whose process is killed at one call: the call `crashAt` picks fails, either before it
 * reaches the store (`before`: nothing of it is written) or once the store answered (`after`:
 * written, the answer lost), and every call after it fails too, the sub-stores' included, as in a
 * process killed there (`close` still works, so the test can let go of the store; `watch` is left alone). A new store
 * opened on the same file or database is what a restarted process sees.
 */
import type { Store } from '../../src/core/ports.js';

export interface StoreCrash {
  /** The store to hand to the process that is to die. */
  store: Store;
  /** Whether the crash happened. */
  readonly crashed: boolean;
}

export function withStoreCrash(inner: Store, crashAt: (method: string, args: unknown[]) => boolean, when: 'before' | 'after'): StoreCrash {
  const state = { crashed: false };
  const killed = () => new Error('the process was killed (test)');
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, name, receiver) {
        const value: unknown = Reflect.get(object, name, receiver);
        if (name === 'close' || name === 'watch' || typeof name === 'symbol') return typeof value === 'function' ? value.bind(object) : value;
        if (typeof value === 'function') {
          return async (...args: unknown[]) => {
            if (state.crashed) throw killed();
            const crashes = crashAt(String(name), args);
            if (crashes && when === 'before') {
              state.crashed = true;
              throw killed();
            }
            const result: unknown = await (value as (...a: unknown[]) => unknown).apply(object, args);
            if (crashes) {
              state.crashed = true;
              throw killed();
            }
            return result;
          };
        }
        return value !== null && typeof value === 'object' && !Array.isArray(value) ? wrap(value) : value;
      },
    });
  return {
    store: wrap(inner),
    get crashed() {
      return state.crashed;
    },
  };
}

/** Whether a store call queues a run of sync `syncId`: the run queue's own call, or one with a firing key. */
export function queuesSyncRun(syncId: number): (method: string, args: unknown[]) => boolean {
  return (method, args) => {
    if (method === 'enqueueSyncRun') return (args[0] as { syncId: number }).syncId === syncId;
    if (method === 'enqueueFiredRun') {
      const run = args[1] as { kind: string; run?: { syncId: number } };
      return run.kind === 'sync' && run.run?.syncId === syncId;
    }
    return false;
  };
}

import type { Logger } from '../core/ports.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';
import { toError } from '../core/errors.js';

/** Everything the engine announces; names are `noun:verb`. */
export interface EngineEvents {
  /** A sync run changed: status, counts or progress. */
  'syncRun:updated': SyncRun;
  /** A sync run reached a terminal status. */
  'syncRun:finished': SyncRun;
  /**
   * A sync run stopped and its end could not be written to the store (its disk full, the store
   * unreachable). It keeps its lease until that expires; then a worker takes it over.
   */
  'syncRun:unrecorded': { run: SyncRun; error: Error };
  /** A sequence run changed (a member started or finished, it terminated). */
  'sequenceRun:updated': SequenceRun;
  /** A sequence run reached a terminal status. */
  'sequenceRun:finished': SequenceRun;
}

type Listener<T> = (payload: T) => void;

/**
 * A small typed event emitter. A listener that throws is logged and never reaches the engine
 * (a broken progress printer must not fail a run).
 */
export class EngineEventEmitter {
  private readonly listeners = new Map<keyof EngineEvents, Set<Listener<never>>>();

  constructor(private readonly logger: Logger) {}

  on<K extends keyof EngineEvents>(event: K, listener: Listener<EngineEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends keyof EngineEvents>(event: K, payload: EngineEvents[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<EngineEvents[K]>)(payload);
      } catch (thrown) {
        this.logger.error('event listener failed', { event, error: toError(thrown).message });
      }
    }
  }
}

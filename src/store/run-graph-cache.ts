/**
 * The member graphs sequence runs were queued with, kept in memory by a store once read: a graph
 * never changes after its run is queued, and every hand-off of a run decides by it, so a store
 * reads (and parses) it once per run rather than at each hand-off.
 */
import type { RecordedMember } from '../core/runs.js';

/** Graphs kept at most; the oldest read goes first (runs that ended in another process are never told). */
const MAX_GRAPHS = 1000;

export class RunGraphCache {
  private readonly graphs = new Map<string, readonly RecordedMember[] | null>();

  /** The graph of sequence run `id`, read with `load` the first time (null: a run queued before graphs were kept). */
  async get(id: string, load: () => Promise<readonly RecordedMember[] | null>): Promise<readonly RecordedMember[] | null> {
    if (this.graphs.has(id)) return this.graphs.get(id) ?? null;
    return this.keep(id, await load());
  }

  /** `get` for a store that reads in the caller's synchronous transaction. */
  getSync(id: string, load: () => readonly RecordedMember[] | null): readonly RecordedMember[] | null {
    if (this.graphs.has(id)) return this.graphs.get(id) ?? null;
    return this.keep(id, load());
  }

  /** Forgets the graph of a run that ended. */
  forget(id: string): void {
    this.graphs.delete(id);
  }

  private keep(id: string, graph: readonly RecordedMember[] | null): readonly RecordedMember[] | null {
    if (this.graphs.size >= MAX_GRAPHS) this.graphs.delete(this.graphs.keys().next().value as string);
    this.graphs.set(id, graph);
    return graph;
  }
}

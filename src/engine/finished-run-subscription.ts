/**
 * A subscription to the runs that end (`syncRun:finished`, `sequenceRun:finished`), for the parts of
 * the engine that act on an ended run. When and how they do their work is theirs; this only makes
 * sure that, once closed, no run that ends later reaches them.
 */
import type { SequenceRun, SyncRun } from '../core/runs.js';
import type { EngineEventEmitter } from './events.js';

export interface FinishedRunHandlers {
  syncRun: (run: SyncRun) => void;
  sequenceRun: (run: SequenceRun) => void;
}

export class FinishedRunSubscription {
  private readonly unsubscribe: Array<() => void>;
  private closed = false;

  constructor(events: EngineEventEmitter, handlers: FinishedRunHandlers) {
    this.unsubscribe = [
      events.on('syncRun:finished', (run) => {
        if (!this.closed) handlers.syncRun(run);
      }),
      events.on('sequenceRun:finished', (run) => {
        if (!this.closed) handlers.sequenceRun(run);
      }),
    ];
  }

  /** Stops listening; the handlers are not called again. */
  close(): void {
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
  }
}

/**
 * A subscription to the runs that end, for the parts of the engine that act on an ended run. The
 * runs come from the relay of the store's outbox (finished-run-relay.ts), so a run is seen once
 * whichever process ran it. When and how the handlers do their work is theirs; the entry is
 * removed once the promise they return settles. Once closed, no run that ends later reaches them.
 */
import type { FinishedRunHandlers, FinishedRunRelay } from './finished-run-relay.js';

export type { FinishedRunHandlers } from './finished-run-relay.js';

export class FinishedRunSubscription {
  private unsubscribe: (() => void) | null;

  constructor(relay: FinishedRunRelay, handlers: FinishedRunHandlers) {
    this.unsubscribe = relay.subscribe(handlers);
  }

  /** Stops listening; the handlers are not called again. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }
}

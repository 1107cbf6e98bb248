import type { Connectors, Destination, DestinationWriter, RowOutcome, WriteOperation, WriteTarget } from '../../src/core/ports.js';

/** Called before each batch a destination writes; may wait (to hold a run mid-flight) or throw (to inject a failure). */
export type BeforeWrite = (info: { object: string; batchIndex: number; batch: WriteOperation[] }) => Promise<void> | void;

/**
 * Wraps real connectors so a test can pause or fail a write at a chosen batch. The rows still go
 * to the real destination database; only the timing and injected failures are the test's.
 */
export function withWriteHook(inner: Connectors, beforeWrite: BeforeWrite): Connectors {
  return {
    openSource: (c) => inner.openSource(c),
    async openDestination(c, run): Promise<Destination> {
      const destination = await inner.openDestination(c, run);
      return {
        capabilities: destination.capabilities,
        close: () => destination.close(),
        async prepare(target: WriteTarget): Promise<DestinationWriter> {
          const writer = await destination.prepare(target);
          let batchIndex = 0;
          return {
            async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
              await beforeWrite({ object: target.object, batchIndex: batchIndex++, batch });
              return writer.write(batch);
            },
          };
        },
      };
    },
  };
}

/** A promise a test opens when it wants: `gate.wait()` blocks until `gate.open()`. */
export class Gate {
  private release!: () => void;
  private readonly promise = new Promise<void>((resolve) => (this.release = resolve));
  wait(): Promise<void> {
    return this.promise;
  }
  open(): void {
    this.release();
  }
}

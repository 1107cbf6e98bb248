import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import type { Connectors, Destination, DestinationWriter, ReadOptions, RowBatch, RowOutcome, Source, WarehousePlanner, WarehousePlanPart, Value, WriteOperation, WriteTarget } from '../../src/core/ports.js';

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

/** Wraps real connectors so that each read of a source goes through `change`, given its query and batches. */
function withReads(inner: Connectors, change: (query: string, batches: AsyncIterable<RowBatch>) => AsyncIterable<RowBatch>): Connectors {
  return {
    openDestination: (c, run) => inner.openDestination(c, run),
    async openSource(c) {
      const source = await inner.openSource(c);
      return Object.assign(Object.create(source) as Source, {
        read: (query: string, options: ReadOptions): AsyncIterable<RowBatch> => change(query, source.read(query, options)),
      });
    },
  };
}

/**
 * Wraps real connectors so that reads whose query `matches` lose their last batch without an error,
 * as a database client that loses the end of a stream would hand them over.
 */
export function withShortReads(inner: Connectors, matches: (query: string) => boolean): Connectors {
  return withReads(inner, (query, batches) => {
    if (!matches(query)) return batches;
    return (async function* () {
      let held: RowBatch | null = null;
      for await (const batch of batches) {
        if (held) yield held;
        held = batch;
      }
    })();
  });
}

/**
 * Wraps real connectors so that the first read whose query `matches` fails for a moment (a
 * transient error, retried at once) after handing over all its rows, once `ready` resolves: the
 * run reads its model again.
 */
export function withReadFailure(inner: Connectors, matches: (query: string) => boolean, ready: () => Promise<void> = async () => undefined): Connectors {
  let failed = false;
  return withReads(inner, (query, batches) => {
    if (failed || !matches(query)) return batches;
    failed = true;
    return (async function* () {
      yield* batches;
      await ready();
      throw new LockstepError(ErrorCode.Transient, 'the connection was reset', { retryAfterSeconds: 0 });
    })();
  });
}

/**
 * Wraps real connectors so that a run's planner in the warehouse stops the run right after the
 * commit `stops` picks has landed in the warehouse, as a worker killed before it recorded that
 * commit's rows in the run's record: that commit and every later one of the attempt fail as a lost
 * lease does (later ones without reaching the warehouse), and the run is left to the next worker
 * once its lease ends.
 */
export function withPlannerStop(inner: Connectors, stops: (through: { op: WarehousePlanPart['op']; key: Value[] }) => boolean): Connectors {
  const stopped = () => new LockstepError(ErrorCode.LeaseLost, 'the worker stopped after the planner\'s commit');
  const wrap = (planner: WarehousePlanner): WarehousePlanner => {
    let gone = false;
    return {
      plan: (request) => planner.plan(request),
      async commit(through, rejected, delivered) {
        if (gone) throw stopped();
        await planner.commit(through, rejected, delivered);
        if (!stops(through)) return;
        gone = true;
        throw stopped();
      },
      finish: () => planner.finish(),
      close: () => planner.close(),
    };
  };
  return {
    openDestination: (c, run) => inner.openDestination(c, run),
    async openSource(c) {
      const source = await inner.openSource(c);
      const access = source.warehousePlanner;
      if (!access) return source;
      return Object.assign(Object.create(source) as Source, {
        warehousePlanner: { ...access, open: async (...args: Parameters<typeof access.open>) => wrap(await access.open(...args)) },
      });
    },
  };
}

/** The clock a process on a PostgreSQL store keeps to the server's time with (core/clock.ts AlignedClock). */
import { describe, expect, it } from 'vitest';
import { AlignedClock } from '../../src/core/clock.js';
import { FakeClock } from '../helpers/fake-clock.js';

const T0 = Date.parse('2026-03-01T12:00:00Z');

describe('AlignedClock', () => {
  it("reads the reference's time, measured at the middle of the call, and sleeps by its base", async () => {
    const base = new FakeClock(T0);
    const clock = new AlignedClock(base);
    // The machine is 4 minutes ahead; the answer takes 10 ms and is read 5 ms in.
    const changed = await clock.align(async () => {
      base.advance(5);
      const server = base.now() - 240_000;
      base.advance(5);
      return server;
    });
    expect(changed).toBe(true);
    expect(clock.aheadMs).toBe(240_000);
    expect(clock.now()).toBe(base.now() - 240_000);
    const slept = clock.sleep(1_000);
    base.advance(1_000);
    await slept;
    expect(clock.now()).toBe(base.now() - 240_000);
  });

  it('keeps its base within the tolerance, and ignores a change of the offset within it', async () => {
    const base = new FakeClock(T0);
    const clock = new AlignedClock(base, 100);
    expect(await clock.align(async () => base.now() + 60)).toBe(false);
    expect(clock.now()).toBe(base.now());
    expect(await clock.align(async () => base.now() - 2_000)).toBe(true);
    expect(await clock.align(async () => base.now() - 2_040)).toBe(false);
    expect(clock.aheadMs).toBe(2_000);
    // Set right on the machine: back to its own time.
    expect(await clock.align(async () => base.now() + 20)).toBe(true);
    expect(clock.aheadMs).toBe(0);
  });
});

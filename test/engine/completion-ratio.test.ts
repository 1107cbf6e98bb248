/**
 * A run's completion (completionRatio in its record, which Hightouch's clients log as "N% completed")
 * while its model is read: against the snapshot's size, or the last run's when the snapshot says
 * nothing (a first run); 0 while nothing tells how much is left.
 */
import { describe, expect, it } from 'vitest';
import { completionRatio, type RunProgress } from '../../src/engine/run-bookkeeping.js';

/** A run 61,000 rows into its model, every row planned as added and 60,000 of them delivered. */
function readingRun(over: Partial<RunProgress>): RunProgress {
  return {
    planned: { addedCount: 61_000, changedCount: 0, removedCount: 0 },
    successful: { addedCount: 60_000, changedCount: 0, removedCount: 0 },
    failed: { addedCount: 0, changedCount: 0, removedCount: 0 },
    querySize: 61_000,
    settled: 60_000,
    reading: true,
    expectedRows: 0,
    estimatedRows: 0,
    processing: true,
    ...over,
  };
}

describe('completion ratio', () => {
  it('is 0 while a first run reads a model of no known size, not the share of what was read so far', () => {
    expect(completionRatio(readingRun({}))).toBe(0);
  });

  it("goes by the last run's size on a first run after it (a resetCDC, a snapshot cleared) and by the snapshot's otherwise", () => {
    expect(completionRatio(readingRun({ estimatedRows: 300_000 }))).toBeCloseTo((61_000 / 300_000) * (60_000 / 61_000), 6);
    expect(completionRatio(readingRun({ expectedRows: 305_000, estimatedRows: 300_000 }))).toBeCloseTo((61_000 / 305_000) * (60_000 / 61_000), 6);
  });

  it('is the share of planned rows settled once the model is read', () => {
    expect(completionRatio(readingRun({ reading: false }))).toBeCloseTo(60_000 / 61_000, 6);
    expect(completionRatio(readingRun({ reading: false, planned: { addedCount: 0, changedCount: 0, removedCount: 0 }, settled: 0 }))).toBe(1);
  });
});

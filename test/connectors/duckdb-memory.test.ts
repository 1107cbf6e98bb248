import { describe, expect, it } from 'vitest';
import { isOutOfMemory, MEMORY_STEPS, stepForRows } from '../../src/connectors/duckdb/duckdb-memory.js';

describe('DuckDB memory limit', () => {
  it('starts a planner comparison at the step its planner table needs', () => {
    expect(MEMORY_STEPS[stepForRows(0)]).toBe('256MB');
    expect(MEMORY_STEPS[stepForRows(1_000_000)]).toBe('256MB');
    expect(MEMORY_STEPS[stepForRows(6_000_000)]).toBe('512MB');
    expect(MEMORY_STEPS[stepForRows(10_000_000)]).toBe('512MB');
    expect(MEMORY_STEPS[stepForRows(20_000_000)]).toBe('1GB');
    expect(MEMORY_STEPS[stepForRows(1_000_000_000)]).toBe('4GB');
  });

  it("tells DuckDB's out-of-memory errors from others", () => {
    expect(isOutOfMemory(new Error('Out of Memory Error: failed to pin block of size 256.0 KiB (61.0 MiB/61.0 MiB used)'))).toBe(true);
    expect(isOutOfMemory(new Error('Binder Error: column "x" not found'))).toBe(false);
  });
});

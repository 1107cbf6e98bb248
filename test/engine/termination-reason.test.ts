/**
 * Why a member's outcome terminates its sequence (SPEC §3.1, `on_fatal_or_rejected`): the reason a
 * run records names the share of rejected rows so that it reads over the threshold it broke.
 */
import { describe, expect, it } from 'vitest';
import type { SyncRun } from '../../src/core/runs.js';
import { terminationReason } from '../../src/core/sequence-rules.js';
import { member } from '../helpers/definitions.js';

/** A member's finished run that planned `planned` rows and rejected `rejected` of them. */
function finished(planned: number, rejected: number): SyncRun {
  return {
    status: 'warning',
    error: null,
    plannedRows: { addedCount: planned, changedCount: 0, removedCount: 0 },
    failedRows: { addedCount: rejected, changedCount: 0, removedCount: 0 },
  } as SyncRun;
}

describe('terminationReason', () => {
  const policy = (percent: number) => member('contacts', { terminate: 'on_fatal_or_rejected', rejectedThreshold: { percent } });

  it('shows a share just over a percent threshold with the decimals that tell it apart', () => {
    expect(terminationReason(policy(5), finished(2500, 126))).toBe('member "contacts" rejected 126 of 2500 rows (5.04%), over its threshold of 5%');
    expect(terminationReason(policy(10), finished(1000, 104))).toBe('member "contacts" rejected 104 of 1000 rows (10.4%), over its threshold of 10%');
    expect(terminationReason(policy(2.5), finished(10_000, 251))).toBe('member "contacts" rejected 251 of 10000 rows (2.51%), over its threshold of 2.5%');
  });

  it('keeps the short form when it already reads over the threshold, and lets a share at the threshold go on', () => {
    expect(terminationReason(policy(5), finished(10, 1))).toBe('member "contacts" rejected 1 of 10 rows (10%), over its threshold of 5%');
    expect(terminationReason(policy(5), finished(1000, 63))).toBe('member "contacts" rejected 63 of 1000 rows (6.3%), over its threshold of 5%');
    expect(terminationReason(policy(5), finished(1000, 50))).toBeNull();
  });
});

/**
 * How a member run follows its sync run. Every store applies this in the same transaction that
 * changes the sync run, so a member's state never disagrees with its run's.
 *
 *   sync run                          member
 *   queued                        ──► pending
 *   querying|processing|reporting ──► running   (startedAt set on the first start, kept after)
 *   success|warning|failed|cancelled ► the same status, finishedAt = now
 *   interrupted                   ──► pending   (startMembers gives it a new run)
 */
import { assertNever } from '../core/errors.js';
import type { MemberRunStatus, SyncRunStatus } from '../core/runs.js';

export interface MemberTransition {
  status: MemberRunStatus;
  /** Set `startedAt` to now unless it is already set. */
  started: boolean;
  /** Set `finishedAt` to now (otherwise it is cleared). */
  finished: boolean;
}

export function memberTransition(status: SyncRunStatus): MemberTransition {
  switch (status) {
    case 'queued':
    case 'interrupted':
      return { status: 'pending', started: false, finished: false };
    case 'querying':
    case 'processing':
    case 'reporting':
      return { status: 'running', started: true, finished: false };
    case 'success':
    case 'warning':
    case 'failed':
    case 'cancelled':
      return { status, started: false, finished: true };
    default:
      return assertNever(status);
  }
}

/** The error an interrupted run carries. */
export const INTERRUPTED_RUN_ERROR = 'the process running this run stopped';

/** Flags of the commands checked as they are read, before the store is opened. */
import { ErrorCode, LockstepError } from '../core/errors.js';

/** The most a listing's --limit shows. */
export const MAX_LIMIT = 100_000;

/**
 * A listing's --limit, checked before the store is opened: a bad value is refused without opening
 * (or creating) anything. Digits only, so 1e3, 0x10 or 2.0 are refused rather than read as numbers.
 */
export function limitFlag(text: string): number {
  const limit = Number(text);
  if (!/^\d+$/.test(text) || limit < 1 || limit > MAX_LIMIT) {
    throw new LockstepError(ErrorCode.Validation, `--limit "${text}" is not a whole number from 1 to ${MAX_LIMIT} — give how many to show, e.g. --limit 50`);
  }
  return limit;
}

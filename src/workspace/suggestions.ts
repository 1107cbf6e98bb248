/**
 * Wording shared by every workspace message: how values are shown, "did you mean" suggestions, and
 * the convention that lets a zod error message carry its hint.
 */
import { distance } from 'fastest-levenshtein';

export { hinted, splitHint } from '../core/hints.js';

/** A value as a message shows it: strings quoted, collections by kind. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** The candidates close enough to `value` to be what was meant, closest first. */
export function closeMatches(value: string, candidates: Iterable<string>, limit = 3): string[] {
  const lower = value.toLowerCase();
  const allowed = Math.max(2, Math.floor(value.length / 3));
  const scored: { name: string; score: number }[] = [];
  for (const name of candidates) {
    const candidate = name.toLowerCase();
    // Case-only differences and one name containing the other are the likeliest slips.
    let score = candidate === lower ? 0 : distance(lower, candidate);
    if (score > allowed && lower.length >= 3 && candidate.includes(lower)) score = allowed;
    if (score <= allowed) scored.push({ name, score });
  }
  scored.sort((a, b) => a.score - b.score || a.name.localeCompare(b.name));
  return scored.slice(0, limit).map((s) => s.name);
}

/** ` (did you mean "x"?)`, or nothing when no candidate is close. */
export function didYouMean(value: string, candidates: Iterable<string>): string {
  const [best] = closeMatches(value, candidates, 1);
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}

/** `a, b, c`, shortened to the first few when the list is long. */
export function listNames(names: readonly string[], max = 8): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')}, … (${names.length - max} more)`;
}

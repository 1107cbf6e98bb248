/**
 * Wording shared by every workspace message: how values are shown, "did you mean" suggestions, and
 * the convention that lets a zod error message carry its hint.
 */
export { closeMatches, didYouMean, hinted, splitHint } from '../core/hints.js';

/** A value as a message shows it: strings quoted, collections by kind. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/** `a, b, c`, shortened to the first few when the list is long. */
export function listNames(names: readonly string[], max = 8): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')}, … (${names.length - max} more)`;
}

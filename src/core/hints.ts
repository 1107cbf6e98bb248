/**
 * The convention that lets a zod error message carry its hint: the workspace schema and the
 * connector kinds' settings schemas both write `hinted(message, hint)`, and validation splits it
 * back into a diagnostic's message and hint; and the "did you mean" suggestions every message
 * naming an unknown value shares.
 */
import { distance } from 'fastest-levenshtein';

/** Separates a message from its hint inside one zod error string (zod issues carry a single message). */
const HINT_SEPARATOR = '\u001f';

/** A zod error message that also carries how to fix it; `splitHint` takes it apart again. */
export function hinted(message: string, hint: string): string {
  return `${message}${HINT_SEPARATOR}${hint}`;
}

export function splitHint(text: string): { message: string; hint: string | undefined } {
  const at = text.indexOf(HINT_SEPARATOR);
  if (at < 0) return { message: text, hint: undefined };
  return { message: text.slice(0, at), hint: text.slice(at + 1) };
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

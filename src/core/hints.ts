/**
 * The convention that lets a zod error message carry its hint: the workspace schema and the
 * connector kinds' settings schemas both write `hinted(message, hint)`, and validation splits it
 * back into a diagnostic's message and hint.
 */

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

import type { Value } from './ports.js';

/** A row's identity in snapshots and rejected rows: its primary key values as a JSON array. */
export function encodeKey(values: readonly Value[]): string {
  // The common key, one finite number, spelled as JSON.stringify spells it without its call.
  if (values.length === 1) {
    const only = values[0];
    if (typeof only === 'number' && Number.isFinite(only)) return `[${only}]`;
  }
  return JSON.stringify(values);
}

/** `encodeKey([value])`, without an array for the common key of one number. */
export function encodeKeyOf(value: Value): string {
  return typeof value === 'number' && Number.isFinite(value) ? `[${value}]` : JSON.stringify([value]);
}

export function decodeKey(key: string): Value[] {
  return JSON.parse(key) as Value[];
}

/**
 * The keys a parent sync may have recorded a one-column key value under: the value itself, and the
 * same number written as text or as a number (a model may read an id as either). None for null or ''.
 */
export function lookupKeys(value: Value): string[] {
  if (value === null || value === '') return [];
  const keys = [encodeKey([value])];
  if (typeof value === 'number') keys.push(encodeKey([String(value)]));
  else if (typeof value === 'string' && /^-?\d{1,15}$/.test(value)) keys.push(encodeKey([Number(value)]));
  return keys;
}

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

export function decodeKey(key: string): Value[] {
  return JSON.parse(key) as Value[];
}

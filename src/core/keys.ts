import type { Value } from './ports.js';

/** A row's identity in snapshots and rejected rows: its primary key values as a JSON array. */
export function encodeKey(values: readonly Value[]): string {
  return JSON.stringify(values);
}

export function decodeKey(key: string): Value[] {
  return JSON.parse(key) as Value[];
}

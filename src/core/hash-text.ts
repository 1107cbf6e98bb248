/** A 64-bit row hash (two 32-bit words) as snapshots spell it: 16 lowercase hex digits. */

/** Character codes of the hex digits. */
const HEX = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const hex = (word: number, shift: number): number => HEX[(word >>> shift) & 15] as number;

/** The hash as the snapshot stores it: 16 lowercase hex digits, built as one string (no pieces to collect). */
export function hashText(high: number, low: number): string {
  return String.fromCharCode(
    hex(high, 28), hex(high, 24), hex(high, 20), hex(high, 16), hex(high, 12), hex(high, 8), hex(high, 4), hex(high, 0),
    hex(low, 28), hex(low, 24), hex(low, 20), hex(low, 16), hex(low, 12), hex(low, 8), hex(low, 4), hex(low, 0),
  );
}

/** How the web UI words durations: each unit rounded once, so a value near a unit's end rolls over into the next. */
import { describe, expect, it } from 'vitest';
import { formatDuration, formatMinutes } from '../../web/src/format.js';

describe('formatDuration', () => {
  it('words milliseconds, seconds, minutes and hours', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(999)).toBe('999 ms');
    expect(formatDuration(1000)).toBe('1.0 s');
    expect(formatDuration(7_890)).toBe('7.9 s');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(62_000)).toBe('1 min 2 s');
    expect(formatDuration(3 * 3_600_000 + 5 * 60_000)).toBe('3 h 5 min');
  });

  it('rounds into the next unit: never "1000 ms", "10.0 s", "60 s" or "1 min 60 s"', () => {
    expect(formatDuration(999.6)).toBe('1.0 s');
    expect(formatDuration(9_960)).toBe('10 s');
    expect(formatDuration(59_600)).toBe('1 min 0 s');
    expect(formatDuration(119_600)).toBe('2 min 0 s');
    expect(formatDuration(3_599_600)).toBe('1 h 0 min');
  });
});

describe('formatMinutes', () => {
  it('words a limit set in minutes as the sequence form takes it, and a fraction of one as a duration', () => {
    expect(formatMinutes(10)).toBe('10 min');
    expect(formatMinutes(90)).toBe('1 h 30 min');
    expect(formatMinutes(120)).toBe('2 h');
    expect(formatMinutes(0.02)).toBe('1.2 s');
    expect(formatMinutes(1.5)).toBe('1 min 30 s');
  });
});

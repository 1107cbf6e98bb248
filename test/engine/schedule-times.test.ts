import { describe, expect, it } from 'vitest';
import type { IntervalUnit, TimedSchedule, Weekday } from '../../src/core/workspace.js';
import {
  countDueTimesBetween,
  dueTimesBetween,
  latestDueTimeBetween,
  nextDueTime,
  validateTimedSchedule,
} from '../../src/engine/schedule-times.js';

const at = (iso: string) => Date.parse(iso);
const isoList = (times: number[]) => times.map((t) => new Date(t).toISOString());

function interval(unit: IntervalUnit, quantity: number, startAt: string | null = null): TimedSchedule {
  return { type: 'interval', unit, quantity, startAt, catchupWindowSeconds: 3600 };
}
function cron(expression: string, timezone = 'UTC'): TimedSchedule {
  return { type: 'cron', expression, timezone, catchupWindowSeconds: 3600 };
}
function recurrence(days: Weekday[], times: string[], timezone = 'UTC'): TimedSchedule {
  return { type: 'recurrence', days, times, timezone, catchupWindowSeconds: 3600 };
}
const EVERY_DAY: Weekday[] = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

/** Local wall time `HH:MM` of an instant in a timezone. */
function localTime(instant: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(instant);
}

describe('interval schedules', () => {
  it('counts from the Unix epoch by default, range exclusive at the start and inclusive at the end', () => {
    const every15 = interval('minute', 15);
    expect(isoList(dueTimesBetween(every15, at('2026-01-01T00:00:00Z'), at('2026-01-01T01:00:00Z')))).toEqual([
      '2026-01-01T00:15:00.000Z',
      '2026-01-01T00:30:00.000Z',
      '2026-01-01T00:45:00.000Z',
      '2026-01-01T01:00:00.000Z',
    ]);
    expect(nextDueTime(every15, at('2026-01-01T00:15:00Z'))).toBe(at('2026-01-01T00:30:00Z'));
    expect(nextDueTime(every15, at('2026-01-01T00:14:59.999Z'))).toBe(at('2026-01-01T00:15:00Z'));
  });

  it('counts from startAt and never before it', () => {
    const every2h = interval('hour', 2, '2026-01-01T00:10:00Z');
    expect(nextDueTime(every2h, at('2025-06-01T00:00:00Z'))).toBe(at('2026-01-01T00:10:00Z'));
    expect(isoList(dueTimesBetween(every2h, at('2025-12-31T00:00:00Z'), at('2026-01-01T05:00:00Z')))).toEqual([
      '2026-01-01T00:10:00.000Z',
      '2026-01-01T02:10:00.000Z',
      '2026-01-01T04:10:00.000Z',
    ]);
  });

  it('treats days and weeks as fixed durations', () => {
    const weekly = interval('week', 1, '2026-03-23T12:00:00Z');
    expect(nextDueTime(weekly, at('2026-03-23T12:00:00Z'))).toBe(at('2026-03-30T12:00:00Z'));
    const every3days = interval('day', 3);
    const times = dueTimesBetween(every3days, at('2026-01-01T00:00:00Z'), at('2026-02-01T00:00:00Z'));
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(3 * 86_400_000);
  });

  it('caps the number of due times returned', () => {
    const everyMinute = interval('minute', 1);
    const times = dueTimesBetween(everyMinute, at('2020-01-01T00:00:00Z'), at('2026-01-01T00:00:00Z'), 10);
    expect(times).toHaveLength(10);
    expect(times[0]).toBe(at('2020-01-01T00:01:00Z'));
    expect(dueTimesBetween(everyMinute, 0, at('2026-01-01T00:00:00Z'))).toHaveLength(1000);
  });

  it('finds the latest due time and counts exactly, without walking', () => {
    const everyMinute = interval('minute', 1);
    const from = at('2016-01-01T00:00:30Z');
    const to = at('2026-01-01T00:00:30Z');
    expect(latestDueTimeBetween(everyMinute, from, to)).toBe(at('2026-01-01T00:00:00Z'));
    expect(countDueTimesBetween(everyMinute, from, to, Number.POSITIVE_INFINITY)).toBe((to - from) / 60_000);
    expect(latestDueTimeBetween(everyMinute, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:00:59Z'))).toBeNull();
  });
});

describe('cron schedules', () => {
  it('evaluates 5-field expressions in UTC', () => {
    const weekdays9 = cron('0 9 * * 1-5');
    // 2026-01-02 is a Friday.
    expect(isoList(dueTimesBetween(weekdays9, at('2026-01-02T00:00:00Z'), at('2026-01-06T23:00:00Z')))).toEqual([
      '2026-01-02T09:00:00.000Z',
      '2026-01-05T09:00:00.000Z',
      '2026-01-06T09:00:00.000Z',
    ]);
  });

  it('evaluates in the schedule timezone', () => {
    expect(nextDueTime(cron('0 9 * * *', 'America/New_York'), at('2026-01-15T00:00:00Z'))).toBe(at('2026-01-15T14:00:00Z'));
    expect(nextDueTime(cron('0 9 * * *', 'Asia/Kolkata'), at('2026-01-15T00:00:00Z'))).toBe(at('2026-01-15T03:30:00Z'));
    expect(nextDueTime(cron('0 9 * * *', 'Australia/Sydney'), at('2026-01-15T00:00:00Z'))).toBe(at('2026-01-15T22:00:00Z'));
  });

  it('keeps 09:00 local across both DST changes', () => {
    const nine = cron('0 9 * * *', 'Europe/Berlin');
    expect(isoList(dueTimesBetween(nine, at('2026-03-28T00:00:00Z'), at('2026-03-30T00:00:00Z')))).toEqual([
      '2026-03-28T08:00:00.000Z',
      '2026-03-29T07:00:00.000Z',
    ]);
    expect(isoList(dueTimesBetween(nine, at('2026-10-24T00:00:00Z'), at('2026-10-26T00:00:00Z')))).toEqual([
      '2026-10-24T07:00:00.000Z',
      '2026-10-25T08:00:00.000Z',
    ]);
    const year = dueTimesBetween(nine, at('2026-01-01T00:00:00Z'), at('2027-01-01T00:00:00Z'));
    expect(year).toHaveLength(365);
    expect(new Set(year.map((t) => localTime(t, 'Europe/Berlin')))).toEqual(new Set(['09:00']));
  });

  it('fires a daily 02:30 Europe/Berlin once on the spring-forward day, when the clock jumps (03:00 CEST)', () => {
    const times = dueTimesBetween(cron('30 2 * * *', 'Europe/Berlin'), at('2026-03-27T12:00:00Z'), at('2026-03-31T00:00:00Z'));
    expect(isoList(times)).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: the jump, 03:00 CEST
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  it('fires a daily 02:30 Europe/Berlin once on the fall-back day, at its first occurrence (CEST)', () => {
    const times = dueTimesBetween(cron('30 2 * * *', 'Europe/Berlin'), at('2026-10-23T12:00:00Z'), at('2026-10-27T00:00:00Z'));
    expect(isoList(times)).toEqual([
      '2026-10-24T00:30:00.000Z', // 02:30 CEST
      '2026-10-25T00:30:00.000Z', // 02:30 CEST, the first of two 02:30s; 01:30Z (02:30 CET) does not fire
      '2026-10-26T01:30:00.000Z', // 02:30 CET
    ]);
    // Asked from inside the repeated hour, it does not fire the second 02:30.
    expect(nextDueTime(cron('30 2 * * *', 'Europe/Berlin'), at('2026-10-25T01:10:00Z'))).toBe(at('2026-10-26T01:30:00Z'));
  });

  it('applies the same rule west of Greenwich (America/New_York)', () => {
    const spring = dueTimesBetween(cron('15 2 * * *', 'America/New_York'), at('2026-03-07T12:00:00Z'), at('2026-03-09T12:00:00Z'));
    expect(isoList(spring)).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:15:00.000Z']);
    const fall = dueTimesBetween(cron('15 1 * * *', 'America/New_York'), at('2026-10-31T12:00:00Z'), at('2026-11-02T12:00:00Z'));
    expect(isoList(fall)).toEqual(['2026-11-01T05:15:00.000Z', '2026-11-02T06:15:00.000Z']);
    // From inside the second pass of the repeated hour, the answer is still after the time asked about.
    const inSecondPass = at('2026-11-01T06:10:00Z');
    expect(nextDueTime(cron('*/30 * * * *', 'America/New_York'), inSecondPass)).toBe(at('2026-11-01T07:00:00Z'));
  });

  it('runs sub-hourly patterns through the repeated hour once, without duplicates or going backward', () => {
    const times = dueTimesBetween(cron('*/30 * * * *', 'Europe/Berlin'), at('2026-10-24T23:10:00Z'), at('2026-10-25T02:40:00Z'));
    expect(isoList(times)).toEqual([
      '2026-10-24T23:30:00.000Z', // 01:30 CEST
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T00:30:00.000Z', // 02:30 CEST
      '2026-10-25T02:00:00.000Z', // 03:00 CET (02:00 and 02:30 CET were already shown)
      '2026-10-25T02:30:00.000Z',
    ]);
    const spring = dueTimesBetween(cron('*/30 * * * *', 'Europe/Berlin'), at('2026-03-29T00:10:00Z'), at('2026-03-29T02:00:00Z'));
    expect(isoList(spring)).toEqual([
      '2026-03-29T00:30:00.000Z', // 01:30 CET
      '2026-03-29T01:00:00.000Z', // 02:00 and 02:30 skipped: one firing at the jump (03:00 CEST)
      '2026-03-29T01:30:00.000Z', // 03:30 CEST
      '2026-03-29T02:00:00.000Z',
    ]);
  });

  it('due times always grow with the time asked about (property check around DST changes)', () => {
    const schedules = [
      cron('*/7 * * * *', 'Europe/Berlin'),
      cron('15 1,2,3 * * *', 'America/New_York'),
      cron('0 9 * * *', 'Australia/Lord_Howe'),
    ];
    for (const schedule of schedules) {
      for (let t = at('2026-03-07T00:00:00Z'); t < at('2026-03-10T00:00:00Z'); t += 7 * 60_000 + 13_000) {
        expect(nextDueTime(schedule, t)!).toBeGreaterThan(t);
      }
      for (let t = at('2026-10-24T00:00:00Z'); t < at('2026-11-03T00:00:00Z'); t += 23 * 60_000 + 7_000) {
        expect(nextDueTime(schedule, t)!).toBeGreaterThan(t);
      }
    }
  });

  it('finds the latest due time by bisection and agrees with walking', () => {
    const schedules = [cron('*/10 * * * *'), cron('30 2 * * *', 'Europe/Berlin'), cron('0 0 1 * *', 'America/New_York')];
    const from = at('2026-01-01T00:00:00Z');
    for (const schedule of schedules) {
      for (const to of [at('2026-01-01T00:25:00Z'), at('2026-03-29T01:00:00Z'), at('2026-10-25T00:30:00Z'), at('2026-12-31T23:59:00Z')]) {
        const walked = dueTimesBetween(schedule, from, to, 100_000);
        expect(latestDueTimeBetween(schedule, from, to)).toBe(walked.at(-1) ?? null);
        expect(countDueTimesBetween(schedule, from, to, 100_000)).toBe(walked.length);
      }
    }
    expect(countDueTimesBetween(cron('* * * * *'), from, at('2026-02-01T00:00:00Z'), 50)).toBe(50);
  });

  it('accepts @nicknames and rejects bad expressions and timezones with a clear message', () => {
    expect(nextDueTime(cron('@daily'), at('2026-01-01T10:00:00Z'))).toBe(at('2026-01-02T00:00:00Z'));
    expect(validateTimedSchedule(cron('0 0 * * * *'))[0]?.message).toMatch(/cron expression "0 0 \* \* \* \*" must have 5 fields/);
    expect(validateTimedSchedule(cron('61 * * * *'))[0]?.message).toMatch(/invalid cron pattern "61 \* \* \* \*"/);
    expect(validateTimedSchedule(cron('0 9 * * *', 'Mars/Olympus'))[0]).toMatchObject({
      path: 'schedule.timezone',
      message: 'unknown timezone "Mars/Olympus"',
    });
    expect(() => nextDueTime(cron('not a cron'), 0)).toThrow(/must have 5 fields/);
    expect(validateTimedSchedule(cron('0 9 * * 1-5', 'Europe/Berlin'))).toEqual([]);
  });
});

describe('recurrence schedules', () => {
  it('fires on the given days at the given times in the timezone', () => {
    const schedule = recurrence(['monday', 'wednesday'], ['09:00', '17:30', '9:15'], 'Europe/Berlin');
    // 2026-01-05 is a Monday (CET, UTC+1).
    expect(isoList(dueTimesBetween(schedule, at('2026-01-05T00:00:00Z'), at('2026-01-08T00:00:00Z')))).toEqual([
      '2026-01-05T08:00:00.000Z',
      '2026-01-05T08:15:00.000Z',
      '2026-01-05T16:30:00.000Z',
      '2026-01-07T08:00:00.000Z',
      '2026-01-07T08:15:00.000Z',
      '2026-01-07T16:30:00.000Z',
    ]);
  });

  it('follows DST like cron: once on each change day', () => {
    const daily0230 = recurrence(EVERY_DAY, ['02:30'], 'Europe/Berlin');
    expect(isoList(dueTimesBetween(daily0230, at('2026-03-28T12:00:00Z'), at('2026-03-29T12:00:00Z')))).toEqual([
      '2026-03-29T01:00:00.000Z',
    ]);
    expect(isoList(dueTimesBetween(daily0230, at('2026-10-24T12:00:00Z'), at('2026-10-25T12:00:00Z')))).toEqual([
      '2026-10-25T00:30:00.000Z',
    ]);
    // A skipped 02:30 and a real 03:00 land on the same instant: one firing.
    const twoTimes = recurrence(['sunday'], ['02:30', '03:00'], 'Europe/Berlin');
    expect(isoList(dueTimesBetween(twoTimes, at('2026-03-28T12:00:00Z'), at('2026-03-29T12:00:00Z')))).toEqual([
      '2026-03-29T01:00:00.000Z',
    ]);
  });

  it('rejects bad times and empty day lists', () => {
    expect(validateTimedSchedule(recurrence(['monday'], ['25:00']))[0]?.message).toBe('time of day "25:00" is not HH:MM (24-hour)');
    expect(validateTimedSchedule(recurrence([], ['09:00']))[0]?.path).toBe('schedule.days');
    expect(validateTimedSchedule(recurrence(['monday'], []))[0]?.path).toBe('schedule.times');
  });
});

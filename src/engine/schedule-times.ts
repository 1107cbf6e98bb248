/**
 * When timed schedules are due (SPEC §4): pure functions from a schedule and a time range to due
 * times, as epoch milliseconds.
 *
 * - `interval`: `startAt + k·period` for k ≥ 0, with minute/hour/day/week as fixed durations (a day
 *   is always 24 h, whatever the calendar does); `startAt` defaults to the Unix epoch.
 * - `cron`: a 5-field expression evaluated in its IANA timezone by croner.
 * - `recurrence`: days of the week × `HH:MM` times in a timezone, turned into croner patterns (one per
 *   distinct minute) and merged.
 *
 * Daylight saving time follows the schedule's timezone. Patterns match wall-clock times; a wall-clock
 * time maps to an instant by one rule in every zone (the rule of ISC/Vixie cron for fixed-time jobs):
 * - a time that happens twice (clocks go back) fires at its **first** occurrence, still on summer
 *   time: a daily 02:30 Europe/Berlin on 2026-10-25 fires at 02:30 CEST (00:30Z), and not again at
 *   02:30 CET. Firing at the first occurrence keeps "once a day" and never makes a run wait an extra
 *   hour; it is also what `java.time` and Temporal's "compatible" disambiguation choose.
 * - a time the clock skips (clocks go forward) fires at the moment of the jump: a daily 02:30
 *   Europe/Berlin on 2026-03-29 fires at 03:00 CEST (01:00Z). Several skipped times of one schedule
 *   collapse into that one firing, so nothing fires twice and nothing is lost.
 * - everything else keeps its local time: `0 9 * * *` is 09:00 local before and after each change.
 * - consequence for sub-hourly patterns: in a repeated hour only the first pass fires (`*\/30 * * * *`
 *   fires 02:00 and 02:30 CEST, then 03:00 CET, skipping the second 02:00 and 02:30).
 * Due times always grow with the time asked about, which `latestDueTimeBetween`'s bisection needs.
 *
 * Cost: croner evaluates patterns with a zero UTC offset on wall-clock time (~3 µs); the zone's offsets
 * come from a cached `Intl.DateTimeFormat` (a few µs each). Compiled rules are cached per (pattern,
 * timezone) and remember their recent answers, so thousands of schedules sharing a pattern and a due
 * time cost one computation.
 */
import { Cron } from 'croner';
import type { Diagnostic } from '../core/errors.js';
import { ErrorCode, LockstepError, ValidationError, assertNever } from '../core/errors.js';
import { isTimedSchedule, type IntervalUnit, type Schedule, type TimedSchedule, type Weekday } from '../core/workspace.js';

/** Most due times `dueTimesBetween` returns unless told otherwise, so a huge gap stays cheap. */
export const DEFAULT_DUE_TIMES_LIMIT = 1000;

const UNIT_MS: Record<IntervalUnit, number> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 604_800_000,
};

const WEEKDAY_CRON: Record<Weekday, number> = {
  sunday: 0,
  monday: 1,
  tuesday: 2,
  wednesday: 3,
  thursday: 4,
  friday: 5,
  saturday: 6,
};

/** The cron nicknames croner knows, in lower case. */
const CRON_NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly'];

/** A schedule reduced to the questions the scheduler asks. */
interface CompiledSchedule {
  /** First due time strictly after `after`, or null when there is none. */
  next(after: number): number | null;
  /** Number of due times in (from, to], counted up to `cap`. */
  count(from: number, to: number, cap: number): number;
  /** Latest due time in (from, to], or null. */
  latest(from: number, to: number): number | null;
}

/** Every due time in (fromExclusive, toInclusive], oldest first, at most `limit` of them. */
export function dueTimesBetween(
  schedule: TimedSchedule,
  fromExclusive: number,
  toInclusive: number,
  limit: number = DEFAULT_DUE_TIMES_LIMIT,
): number[] {
  const compiled = compile(schedule);
  const times: number[] = [];
  let cursor = fromExclusive;
  while (times.length < limit) {
    const next = compiled.next(cursor);
    if (next === null || next > toInclusive) break;
    times.push(next);
    cursor = next;
  }
  return times;
}

/** The first due time strictly after `afterExclusive`, or null when the schedule has no more. */
export function nextDueTime(schedule: TimedSchedule, afterExclusive: number): number | null {
  return compile(schedule).next(afterExclusive);
}

/**
 * When a sync or sequence is next fired by the scheduler: its timed schedule's first due time after
 * `now`; null when it is disabled, when only a person, a webhook or an upstream run starts it, or
 * when its schedule cannot be evaluated (the scheduler does not fire it either).
 */
export function nextFiring(entity: { schedule: Schedule; enabled: boolean }, now: number): number | null {
  if (!entity.enabled || !isTimedSchedule(entity.schedule)) return null;
  try {
    return nextDueTime(entity.schedule, now);
  } catch {
    return null;
  }
}

/**
 * The latest due time in (fromExclusive, toInclusive], or null. Costs O(log(range)) evaluations for
 * calendar schedules, so the scheduler can catch up after a long downtime without walking every
 * missed due time.
 */
export function latestDueTimeBetween(
  schedule: TimedSchedule,
  fromExclusive: number,
  toInclusive: number,
): number | null {
  return compile(schedule).latest(fromExclusive, toInclusive);
}

/**
 * How many due times fall in (fromExclusive, toInclusive], counted up to `cap` (exact for intervals,
 * which are counted arithmetically; calendar schedules stop walking at `cap`).
 */
export function countDueTimesBetween(
  schedule: TimedSchedule,
  fromExclusive: number,
  toInclusive: number,
  cap: number = DEFAULT_DUE_TIMES_LIMIT,
): number {
  return compile(schedule).count(fromExclusive, toInclusive, cap);
}

/** What is wrong with a timed schedule (bad cron, unknown timezone, bad time of day...), if anything. */
export function validateTimedSchedule(schedule: TimedSchedule, path = 'schedule'): Diagnostic[] {
  try {
    compileUncached(schedule, path);
    return [];
  } catch (thrown) {
    if (thrown instanceof ValidationError) return thrown.diagnostics;
    throw thrown;
  }
}

// ---------------------------------------------------------------------------------------------
// Compilation and caches

const compiledBySchedule = new WeakMap<TimedSchedule, CompiledSchedule>();

/** Compiles once per schedule object; throws a ValidationError naming what is wrong. */
function compile(schedule: TimedSchedule): CompiledSchedule {
  let compiled = compiledBySchedule.get(schedule);
  if (!compiled) {
    compiled = compileUncached(schedule, 'schedule');
    compiledBySchedule.set(schedule, compiled);
  }
  return compiled;
}

function compileUncached(schedule: TimedSchedule, path: string): CompiledSchedule {
  switch (schedule.type) {
    case 'interval':
      return compileInterval(schedule, path);
    case 'cron': {
      const timezone = checkTimezone(schedule.timezone, `${path}.timezone`);
      const expression = schedule.expression.trim();
      const fields = expression.split(/\s+/);
      if (expression.startsWith('@') && !(fields.length === 1 && CRON_NICKNAMES.includes(expression.toLowerCase()))) {
        throw invalid(`${path}.expression`, `unknown cron nickname "${expression}"`, 'use @yearly (or @annually), @monthly, @weekly, @daily or @hourly');
      }
      if (fields.length === 5 && expression.includes('?')) {
        // croner would read "?" as the value of the moment the pattern is compiled.
        throw invalid(`${path}.expression`, `cron expression "${schedule.expression}" uses "?", which 5-field cron does not have`, 'write * in its place');
      }
      if (!(fields.length === 5 || (fields.length === 1 && expression.startsWith('@')))) {
        throw invalid(
          `${path}.expression`,
          `cron expression "${schedule.expression}" must have 5 fields (minute hour day-of-month month day-of-week)`,
          'e.g. "0 9 * * 1-5" for 09:00 on weekdays',
        );
      }
      return calendarRule(expression, timezone, `${path}.expression`);
    }
    case 'recurrence':
      return compileRecurrence(schedule, path);
    default:
      return assertNever(schedule);
  }
}

function compileInterval(schedule: Extract<TimedSchedule, { type: 'interval' }>, path: string): CompiledSchedule {
  const unitMs = UNIT_MS[schedule.unit];
  if (unitMs === undefined) {
    throw invalid(`${path}.unit`, `unknown interval unit "${String(schedule.unit)}"`, 'use minute, hour, day or week');
  }
  if (!Number.isInteger(schedule.quantity) || schedule.quantity < 1) {
    throw invalid(`${path}.quantity`, `interval quantity ${schedule.quantity} must be a whole number of at least 1`);
  }
  const start = schedule.startAt === null ? 0 : Date.parse(schedule.startAt);
  if (Number.isNaN(start)) {
    throw invalid(`${path}.startAt`, `startAt "${schedule.startAt}" is not an ISO instant`, 'e.g. "2026-01-01T00:00:00Z"');
  }
  const period = unitMs * schedule.quantity;
  // Index of the first due time strictly after `t`, and of the last one at or before it (k ≥ 0).
  const firstAfter = (t: number) => (t < start ? 0 : Math.floor((t - start) / period) + 1);
  const lastAtOrBefore = (t: number) => (t < start ? -1 : Math.floor((t - start) / period));
  return {
    next: (after) => start + firstAfter(after) * period,
    count: (from, to, cap) => Math.min(cap, Math.max(0, lastAtOrBefore(to) - firstAfter(from) + 1)),
    latest: (from, to) => {
      const k = lastAtOrBefore(to);
      if (k < 0) return null;
      const t = start + k * period;
      return t > from ? t : null;
    },
  };
}

const TIME_OF_DAY = /^(\d{1,2}):(\d{2})$/;

function compileRecurrence(schedule: Extract<TimedSchedule, { type: 'recurrence' }>, path: string): CompiledSchedule {
  const timezone = checkTimezone(schedule.timezone, `${path}.timezone`);
  if (schedule.days.length === 0) {
    throw invalid(`${path}.days`, 'a recurrence needs at least one day of the week', 'e.g. days: [monday, friday]');
  }
  if (schedule.times.length === 0) {
    throw invalid(`${path}.times`, 'a recurrence needs at least one time of day', 'e.g. times: ["09:00"]');
  }
  const days = new Set<number>();
  for (const day of schedule.days) {
    const n = WEEKDAY_CRON[day];
    if (n === undefined) {
      throw invalid(`${path}.days`, `unknown day "${String(day)}"`, 'use monday ... sunday');
    }
    days.add(n);
  }
  // Croner patterns take a list of minutes and a list of hours; grouping the times by minute gives
  // one pattern per distinct minute that matches exactly the requested times.
  const hoursByMinute = new Map<number, Set<number>>();
  for (const time of schedule.times) {
    const match = TIME_OF_DAY.exec(time);
    const hour = match ? Number(match[1]) : NaN;
    const minute = match ? Number(match[2]) : NaN;
    if (!(hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59)) {
      throw invalid(`${path}.times`, `time of day "${time}" is not HH:MM (24-hour)`, 'e.g. "09:00" or "17:30"');
    }
    let hours = hoursByMinute.get(minute);
    if (!hours) hoursByMinute.set(minute, (hours = new Set()));
    hours.add(hour);
  }
  const dayList = [...days].sort((a, b) => a - b).join(',');
  const rules = [...hoursByMinute].map(([minute, hours]) =>
    calendarRule(`${minute} ${[...hours].sort((a, b) => a - b).join(',')} * * ${dayList}`, timezone, `${path}.times`),
  );
  if (rules.length === 1) return rules[0]!;
  return mergedRules(rules);
}

/** Several calendar rules as one: the union of their due times (equal instants count once). */
function mergedRules(rules: CompiledSchedule[]): CompiledSchedule {
  const next = (after: number) => {
    let best: number | null = null;
    for (const rule of rules) {
      const t = rule.next(after);
      if (t !== null && (best === null || t < best)) best = t;
    }
    return best;
  };
  return {
    next,
    count: (from, to, cap) => countByWalking(next, from, to, cap),
    latest: (from, to) => latestBySearch(next, from, to),
  };
}

/** Timezone names already checked → canonical name (building a formatter costs ~40 µs). */
const canonicalZones = new Map<string, string>();

/** Canonical IANA name, or a ValidationError naming the bad value. */
function checkTimezone(timezone: string, path: string): string {
  let canonical = canonicalZones.get(timezone);
  if (canonical === undefined) {
    try {
      canonical = new Intl.DateTimeFormat('en-US', { timeZone: timezone }).resolvedOptions().timeZone;
    } catch {
      throw invalid(path, `unknown timezone "${timezone}"`, 'use an IANA name such as "UTC" or "Europe/Berlin"');
    }
    if (canonicalZones.size >= MAX_CACHED_RULES) canonicalZones.clear();
    canonicalZones.set(timezone, canonical);
  }
  return canonical;
}

/** Distinct (pattern, timezone) pairs kept compiled; the cache is dropped whole when it grows past this. */
const MAX_CACHED_RULES = 10_000;
/** Answers each rule remembers (after → next). */
const MAX_REMEMBERED_ANSWERS = 256;
/** Matching wall-clock times a look-up may pass over inside a repeated hour before giving up. */
const MAX_WALL_STEPS = 10_000;
const rulesByPattern = new Map<string, CompiledSchedule>();

/**
 * A croner pattern evaluated on the wall clock of `timezone`. Croner runs with a zero UTC offset on
 * "wall time read as UTC", and `ZoneClock` maps wall times to instants with one rule for every zone
 * (see the top of this file). Croner's own `timezone` option is not used: its conversion picks the later
 * occurrence of a repeated time east of Greenwich and the earlier one west of it, and in a repeated
 * hour west of Greenwich it can answer a time before the one asked for; it is also ~10× slower.
 */
function calendarRule(pattern: string, timezone: string, path: string): CompiledSchedule {
  const cacheKey = `${timezone} ${pattern}`;
  const cached = rulesByPattern.get(cacheKey);
  if (cached) return cached;

  let cron: Cron;
  try {
    cron = new Cron(pattern, { utcOffset: 0, paused: true });
  } catch (thrown) {
    const reason = thrown instanceof Error ? thrown.message.replace(/^CronPattern: /, '') : String(thrown);
    throw invalid(path, `invalid cron pattern "${pattern}": ${reason}`, 'see https://crontab.guru for the 5-field syntax');
  }
  const nextWall = (wall: number): number | null => cron.nextRun(new Date(wall))?.getTime() ?? null;
  const zone = timezone === 'UTC' ? null : zoneClock(timezone);

  const compute = (after: number): number | null => {
    if (zone === null) return nextWall(after);
    // Walk the matching wall times from the wall time at `after`. Instants grow with wall times, so
    // the first one past `after` is the answer; inside a repeated hour, wall times already shown
    // the first time round map before `after` and are passed over.
    let wall = zone.toWall(after);
    for (let step = 0; step < MAX_WALL_STEPS; step++) {
      const candidate = nextWall(wall);
      if (candidate === null) return null;
      const instant = zone.toInstant(candidate);
      if (instant > after) return instant;
      wall = candidate;
    }
    throw new LockstepError(ErrorCode.Internal, `cron pattern "${pattern}" in ${timezone}: no due time found after ${new Date(after).toISOString()}`);
  };
  const answers = new Map<number, number | null>();
  const next = (after: number): number | null => {
    const known = answers.get(after);
    if (known !== undefined) return known;
    const result = compute(after);
    if (answers.size >= MAX_REMEMBERED_ANSWERS) answers.clear();
    answers.set(after, result);
    return result;
  };
  const rule: CompiledSchedule = {
    next,
    count: (from, to, cap) => countByWalking(next, from, to, cap),
    latest: (from, to) => latestBySearch(next, from, to),
  };
  if (rulesByPattern.size >= MAX_CACHED_RULES) rulesByPattern.clear();
  rulesByPattern.set(cacheKey, rule);
  return rule;
}

const DAY_MS = 86_400_000;
const zoneClocks = new Map<string, ZoneClock>();

function zoneClock(timezone: string): ZoneClock {
  let zone = zoneClocks.get(timezone);
  if (!zone) zoneClocks.set(timezone, (zone = new ZoneClock(timezone)));
  return zone;
}

/**
 * Instants ↔ wall-clock times ("the local date and time read as if it were UTC", in ms) of one IANA
 * timezone. A wall time shown twice maps to its first occurrence; a wall time skipped by the clock
 * moving forward maps to the instant the jump happens.
 */
class ZoneClock {
  private readonly format: Intl.DateTimeFormat;

  constructor(timezone: string) {
    this.format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** The zone's offset from UTC at `instant`, in ms (whole seconds). */
  offsetAt(instant: number): number {
    let year = 0;
    let month = 1;
    let day = 1;
    let hour = 0;
    let minute = 0;
    let second = 0;
    for (const part of this.format.formatToParts(instant)) {
      const value = Number(part.value);
      if (part.type === 'year') year = value;
      else if (part.type === 'month') month = value;
      else if (part.type === 'day') day = value;
      else if (part.type === 'hour') hour = value;
      else if (part.type === 'minute') minute = value;
      else if (part.type === 'second') second = value;
    }
    return Date.UTC(year, month - 1, day, hour, minute, second) - Math.floor(instant / 1000) * 1000;
  }

  toWall(instant: number): number {
    return instant + this.offsetAt(instant);
  }

  toInstant(wall: number): number {
    // Offsets a day either side bound the (at most one) change near this wall time.
    const offsetBefore = this.offsetAt(wall - DAY_MS);
    const offsetAfter = this.offsetAt(wall + DAY_MS);
    const early = wall - offsetBefore;
    if (this.offsetAt(early) === offsetBefore) return early; // also the first of two occurrences
    const late = wall - offsetAfter;
    if (this.offsetAt(late) === offsetAfter) return late;
    // Skipped by the clock moving forward: the change happened in (late, early]; find it.
    let low = late;
    let high = early;
    while (high - low > 1000) {
      const middle = low + Math.floor((high - low) / 2000) * 1000;
      if (this.offsetAt(middle) === offsetBefore) low = middle;
      else high = middle;
    }
    return high;
  }
}

function countByWalking(next: (after: number) => number | null, from: number, to: number, cap: number): number {
  let count = 0;
  let cursor = from;
  while (count < cap) {
    const t = next(cursor);
    if (t === null || t > to) break;
    count++;
    cursor = t;
  }
  return count;
}

/**
 * Latest due time in (from, to] by bisection, since croner only looks forward. Invariant: `found` is
 * a due time ≤ to, and there is no due time in (bound, to].
 */
function latestBySearch(next: (after: number) => number | null, from: number, to: number): number | null {
  const first = next(from);
  if (first === null || first > to) return null;
  // The usual case (one due time in the range) needs a single look-up, which the scheduler asks
  // for anyway to plan the next due time.
  const second = next(first);
  if (second === null || second > to) return first;
  let found = second;
  let bound = to;
  while (bound > found) {
    const middle = Math.floor((found + bound) / 2);
    const candidate = next(middle);
    if (candidate !== null && candidate <= bound) found = candidate;
    else bound = middle;
  }
  return found;
}

function invalid(path: string, message: string, hint?: string): ValidationError {
  return new ValidationError([hint === undefined ? { path, message } : { path, message, hint }]);
}

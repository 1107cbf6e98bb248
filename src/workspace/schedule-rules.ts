/**
 * Checks of schedule values that need more than a type: IANA timezones, cron expressions, times of
 * day and catch-up durations. Each returns a problem (message and hint) or null.
 */
import { Cron } from 'croner';
import { closeMatches, show } from './suggestions.js';

export interface Problem {
  message: string;
  hint: string;
}

let knownTimezones: string[] | undefined;

function timezoneNames(): string[] {
  knownTimezones ??= ['UTC', ...Intl.supportedValuesOf('timeZone')];
  return knownTimezones;
}

export function isValidTimezone(name: string): boolean {
  if (name.trim() === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export function checkTimezone(name: string): Problem | null {
  if (isValidTimezone(name)) return null;
  const names = timezoneNames();
  // "Berlin" for "Europe/Berlin": match the city part too, not only the whole name.
  const city = name.toLowerCase().replace(/\s+/g, '_');
  const byCity = names.filter((n) => n.toLowerCase().split('/').pop() === city);
  const close = [...new Set([...byCity, ...closeMatches(name, names, 1)])].slice(0, 2);
  return {
    message: `unknown timezone ${show(name)}${close.length > 0 ? ` (did you mean ${close.map((n) => `"${n}"`).join(' or ')}?)` : ''}`,
    hint: 'use an IANA timezone name such as "UTC", "Europe/Berlin" or "America/New_York"',
  };
}

const CRON_FIELDS = 'minute hour day-of-month month day-of-week';
const CRON_EXAMPLE = 'e.g. "0 * * * *" (every hour) or "30 6 * * 1-5" (06:30 on weekdays)';

/** The nicknames croner knows (and the scheduler fires), in lower case. */
const CRON_NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly'];
const NICKNAME_LIST = 'the nicknames are @yearly (or @annually), @monthly, @weekly, @daily and @hourly';

export function checkCron(expression: string): Problem | null {
  const trimmed = expression.trim();
  const fields = trimmed.split(/\s+/).filter((f) => f !== '');
  if (trimmed.startsWith('@') && !(fields.length === 1 && CRON_NICKNAMES.includes(trimmed.toLowerCase()))) {
    const nickname = fields[0]!.toLowerCase();
    const instead =
      nickname === '@midnight'
        ? 'write @daily (00:00 every day)'
        : nickname === '@reboot'
          ? '@reboot has no due time: use schedule type manual and start the run yourself'
          : `write one of them or the 5 fields ${CRON_FIELDS}`;
    return { message: `unknown cron nickname ${show(trimmed)}`, hint: `${instead}; ${NICKNAME_LIST}` };
  }
  if (fields.length === 5 && trimmed.includes('?')) {
    // croner would read "?" as the value of the moment the pattern is parsed; the scheduler refuses it.
    return {
      message: `cron expression ${show(expression)} uses "?", which 5-field cron does not have`,
      hint: `write * in its place: ${show(fields.map((f) => f.replaceAll('?', '*')).join(' '))}`,
    };
  }
  if (!trimmed.startsWith('@') && fields.length !== 5) {
    return {
      message: `cron expression ${show(expression)} has ${fields.length} field${fields.length === 1 ? '' : 's'}; Lockstep expects 5`,
      hint: `write the 5 fields ${CRON_FIELDS}, ${CRON_EXAMPLE}`,
    };
  }
  let cron: Cron;
  try {
    cron = new Cron(trimmed, { paused: true, timezone: 'UTC' });
  } catch (thrown) {
    const complaint = thrown instanceof Error ? thrown.message.replace(/^CronPattern:\s*/, '') : String(thrown);
    return { message: `invalid cron expression ${show(expression)}: ${complaint}`, hint: `write the 5 fields ${CRON_FIELDS}, ${CRON_EXAMPLE}` };
  }
  try {
    if (cron.nextRun() === null) {
      return {
        message: `cron expression ${show(expression)} never fires`,
        hint: `check the day-of-month and month fields (February has no 30th or 31st), ${CRON_EXAMPLE}`,
      };
    }
  } finally {
    cron.stop();
  }
  return null;
}

/** `HH:MM`, 24-hour, two digits each. */
export const TIME_OF_DAY_PATTERN = /^([01]\d|2[0-3]):[0-5]\d$/;

/** `30m`, `1h`, `2h30m`, `90s`, `1d`: whole numbers of days, hours, minutes and seconds, in that order. */
export const DURATION_PATTERN = /^(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Seconds in a duration string that matches DURATION_PATTERN, or a count of seconds as given. */
export function durationSeconds(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = DURATION_PATTERN.exec(value.trim());
  if (!match) throw new RangeError(`not a duration: ${value}`);
  const [, d = '0', h = '0', m = '0', s = '0'] = match;
  return Number(d) * 86_400 + Number(h) * 3600 + Number(m) * 60 + Number(s);
}

import type { RejectedThreshold, Schedule, ScheduleInput, TerminatePolicy, Weekday } from './api-types.js';

function assertNever(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}

/** "minute" / "15 minutes": for "every …". */
const plural = (n: number, word: string) => (n === 1 ? word : `${n} ${word}s`);
/** "1 minute" / "15 minutes". */
const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

const DAY_SHORT: Record<Weekday, string> = {
  monday: 'Mon',
  tuesday: 'Tue',
  wednesday: 'Wed',
  thursday: 'Thu',
  friday: 'Fri',
  saturday: 'Sat',
  sunday: 'Sun',
};

function daysInWords(days: Weekday[]): string {
  if (days.length === 7) return 'Every day';
  const set = new Set(days);
  if (set.size === 5 && !set.has('saturday') && !set.has('sunday')) return 'Weekdays';
  if (set.size === 2 && set.has('saturday') && set.has('sunday')) return 'Weekends';
  return days.map((d) => DAY_SHORT[d]).join(', ');
}

/** A schedule in a few words: "Every 15 minutes", "Cron 0 * * * * (Europe/Berlin)"; a stored one, or one a form is about to send. */
export function scheduleInWords(schedule: Schedule | ScheduleInput): string {
  switch (schedule.type) {
    case 'manual':
      return 'Manual';
    case 'interval':
      // The start sets when it fires (every 6 hours from 03:15 is 03:15, 09:15, ...): say it.
      return `Every ${plural(schedule.quantity, schedule.unit)}${schedule.startAt ? ` from ${formatTime(schedule.startAt)}` : ''}`;
    case 'cron':
      return `Cron ${schedule.expression} (${schedule.timezone})`;
    case 'recurrence':
      return `${daysInWords(schedule.days)} at ${schedule.times.join(', ')} (${schedule.timezone})`;
    case 'dbt_cloud':
      return `After dbt Cloud job ${schedule.jobId} (account ${schedule.accountId})`;
    case 'fivetran':
      return `After Fivetran connector ${schedule.connectorId}`;
    case 'after': {
      const what = schedule.sequence ? `sequence ${schedule.sequence}` : `sync ${schedule.sync ?? '?'}`;
      return schedule.on === 'success' ? `After ${what} succeeds` : `After ${what} finishes`;
    }
    default:
      return assertNever(schedule);
  }
}

/** " · next run 29 Mar, 03:00" for a schedule the scheduler fires; nothing for one that only a person, a webhook or an upstream run starts, or a disabled one. */
export function nextRunInWords(entity: { nextDueAt?: string | null }): string {
  return entity.nextDueAt ? ` · next run ${formatTime(entity.nextDueAt)}` : '';
}

/**
 * Where a sync writes, after its model's arrow: the destination's name and its object as other kinds
 * read them ("crm.accounts", "salesforce.Account", "crm.public.accounts"); an HTTP destination's
 * object is a path under its URL, so its name and path are apart ("slow-api /contacts"), not
 * joined by a dot into "slow-api./contacts".
 */
export function syncTargetInWords(sync: { destination: string; object: string }, destinations: ReadonlyArray<{ slug: string; type: string }>): string {
  const kind = destinations.find((d) => d.slug === sync.destination)?.type;
  return kind === 'http' ? `${sync.destination} ${sync.object}` : `${sync.destination}.${sync.object}`;
}

export const TERMINATE_LABELS: Record<TerminatePolicy, string> = {
  on_fatal: 'On fatal error',
  on_fatal_or_rejected: 'On fatal error or rejected rows',
  never: 'Never',
};

export function terminateInWords(policy: TerminatePolicy, threshold: RejectedThreshold): string {
  if (policy !== 'on_fatal_or_rejected') return TERMINATE_LABELS[policy];
  if ('percent' in threshold) return `On fatal error or more than ${threshold.percent}% rejected`;
  return threshold.count === 0 ? 'On fatal error or any rejected row' : `On fatal error or more than ${threshold.count} rejected rows`;
}

/**
 * "840 ms", "7.9 s", "42 s", "1 min 2 s", "3 h 5 min". The time is rounded once, to what is shown,
 * before it is split into units: 119.6 s is "2 min 0 s", not "1 min 60 s".
 */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 999.5) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A limit set in minutes, as the sequence form takes it: "10 min", "1 h 30 min"; below a minute or fractional, as a duration ("1.2 s"). */
export function formatMinutes(minutes: number): string {
  if (!Number.isInteger(minutes) || minutes < 1) return formatDuration(minutes * 60_000);
  if (minutes < 60) return `${minutes} min`;
  return minutes % 60 === 0 ? `${minutes / 60} h` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/**
 * Duration between two ISO times; a running one (no `end`) counts to `now`. A start a little after
 * `now` (the server's clock ahead of the browser's) counts as just started, not as a negative time.
 */
export function durationBetween(start: string | null, end: string | null, now = Date.now()): number | null {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : Math.max(now, from);
  return Number.isFinite(from) && Number.isFinite(to) ? to - from : null;
}

/**
 * How long a run took, or has been running: the server's `durationMs` once it ended, the time
 * since it started while it runs (ticking with `now`; "just started" in its first second), "—"
 * before it started.
 */
export function runDuration(run: { startedAt: string | null; finishedAt: string | null; durationMs?: number | null }, now: number): string {
  if (run.finishedAt !== null && run.durationMs !== undefined && run.durationMs !== null) return formatDuration(run.durationMs);
  const ms = durationBetween(run.startedAt, run.finishedAt, now);
  // A run under way for less than a second (or started by a clock a little ahead of this one) has not taken "0 ms".
  if (run.finishedAt === null && ms !== null && ms < 1000) return 'just started';
  return formatDuration(ms);
}

/**
 * "1 of 3 members ran, 2 skipped" (and how many run or wait, while the run goes on). Members a
 * resumed run carried over finished in the run it resumes: they are counted apart, not as ran.
 */
export function membersInWords(members: ReadonlyArray<{ status: string; carriedOver?: boolean }>): string {
  const countOf = (...statuses: string[]) => members.filter((m) => !m.carriedOver && statuses.includes(m.status)).length;
  const ran = countOf('success', 'warning', 'failed', 'cancelled');
  const parts = [`${ran} of ${count(members.length, 'member')} ran`];
  const carriedOver = members.filter((m) => m.carriedOver).length;
  const running = countOf('running');
  const interrupted = countOf('interrupted');
  const waiting = countOf('pending');
  const skipped = countOf('skipped');
  if (carriedOver > 0) parts.push(`${carriedOver} carried over`);
  if (running > 0) parts.push(`${running} running`);
  if (interrupted > 0) parts.push(`${interrupted} interrupted`);
  if (waiting > 0) parts.push(`${waiting} waiting`);
  if (skipped > 0) parts.push(`${skipped} skipped`);
  return parts.join(', ');
}

/**
 * The one format of a date and time in the UI: "Jan 5, 2026, 2:03:07 PM GMT+1" in the browser's
 * locale and zone. The zone is said: schedules name theirs and the command line and logs write UTC,
 * so a bare clock time cannot be matched with either.
 */
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  return Number.isFinite(t) ? dateTime.format(t) : iso;
}

/** "3 minutes ago" for recent times, the date otherwise. */
export function formatRelative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s < 0) return formatTime(iso);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${count(Math.floor(s / 60), 'minute')} ago`;
  if (s < 86_400) return `${count(Math.floor(s / 3600), 'hour')} ago`;
  return formatTime(iso);
}

export const TRIGGER_LABELS: Record<string, string> = {
  manual: 'Manual',
  api: 'API',
  schedule: 'Schedule',
  webhook: 'Webhook',
  upstream: 'Upstream',
  sequence: 'Sequence',
};

export const triggerInWords = (trigger: string): string => TRIGGER_LABELS[trigger] ?? trigger;

export const formatCount = (n: number | null | undefined): string => (n === null || n === undefined ? '—' : n.toLocaleString());

/** A kebab-case slug from a name: "CRM hierarchy" → "crm-hierarchy". */
export function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
}

/**
 * Editing a schedule of any SPEC §4 type. The draft keeps every type's fields, so switching the
 * type back and forth does not lose what was typed.
 */
import { useId, useMemo } from 'react';
import { WEEKDAYS, type IntervalUnit, type Schedule, type ScheduleInput, type ScheduleType, type Weekday } from '../api-types.js';
import { FieldError } from './field.js';

export interface ScheduleDraft {
  type: ScheduleType;
  quantity: string;
  unit: IntervalUnit;
  startAt: string;
  expression: string;
  timezone: string;
  days: Weekday[];
  times: string[];
  accountId: string;
  jobId: string;
  connectorId: string;
  /** `sync:<slug>` or `sequence:<slug>`. */
  afterTarget: string;
  afterOn: 'success' | 'any';
  /** The catch-up window of the schedule being edited, kept as it was (the UI does not edit it). */
  catchupWindowSeconds: number | null;
}

export const SCHEDULE_TYPES: Array<{ value: ScheduleType; label: string }> = [
  { value: 'manual', label: 'Manual' },
  { value: 'interval', label: 'Interval' },
  { value: 'cron', label: 'Cron expression' },
  { value: 'recurrence', label: 'Days and times' },
  { value: 'dbt_cloud', label: 'After a dbt Cloud job' },
  { value: 'fivetran', label: 'After a Fivetran sync' },
  { value: 'after', label: 'After another sync or sequence' },
];

function localTimezone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

export function scheduleDraft(schedule: Schedule | undefined): ScheduleDraft {
  const draft: ScheduleDraft = {
    type: 'manual',
    quantity: '1',
    unit: 'hour',
    startAt: '',
    expression: '0 * * * *',
    timezone: localTimezone(),
    days: ['monday', 'tuesday', 'wednesday', 'thursday', 'friday'],
    times: ['09:00'],
    accountId: '',
    jobId: '',
    connectorId: '',
    afterTarget: '',
    afterOn: 'success',
    catchupWindowSeconds: null,
  };
  if (!schedule) return draft;
  draft.type = schedule.type;
  if ('catchupWindowSeconds' in schedule && typeof schedule.catchupWindowSeconds === 'number') draft.catchupWindowSeconds = schedule.catchupWindowSeconds;
  switch (schedule.type) {
    case 'manual':
      break;
    case 'interval':
      draft.quantity = String(schedule.quantity);
      draft.unit = schedule.unit;
      draft.startAt = schedule.startAt ? toLocalInput(schedule.startAt) : '';
      break;
    case 'cron':
      draft.expression = schedule.expression;
      draft.timezone = schedule.timezone;
      break;
    case 'recurrence':
      draft.days = [...schedule.days];
      draft.times = [...schedule.times];
      draft.timezone = schedule.timezone;
      break;
    case 'dbt_cloud':
      draft.accountId = schedule.accountId;
      draft.jobId = schedule.jobId;
      break;
    case 'fivetran':
      draft.connectorId = schedule.connectorId;
      break;
    case 'after':
      draft.afterTarget = schedule.sequence ? `sequence:${schedule.sequence}` : schedule.sync ? `sync:${schedule.sync}` : '';
      draft.afterOn = schedule.on;
      break;
  }
  return draft;
}

/** `2024-05-01T09:00:00.000Z` → the `datetime-local` input's local `2024-05-01T11:00`. */
function toLocalInput(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** The schedule to send, in the workspace file's shape. */
export function scheduleFromDraft(draft: ScheduleDraft): ScheduleInput {
  const catchup = draft.catchupWindowSeconds === null ? {} : { catchupWindow: draft.catchupWindowSeconds };
  switch (draft.type) {
    case 'manual':
      return { type: 'manual' };
    case 'interval': {
      const startAt = draft.startAt ? new Date(draft.startAt) : null;
      return {
        type: 'interval',
        unit: draft.unit,
        quantity: Number(draft.quantity),
        ...(startAt && !Number.isNaN(startAt.getTime()) ? { startAt: startAt.toISOString() } : {}),
        ...catchup,
      };
    }
    case 'cron':
      return { type: 'cron', expression: draft.expression.trim(), timezone: draft.timezone.trim(), ...catchup };
    case 'recurrence':
      return {
        type: 'recurrence',
        timezone: draft.timezone.trim(),
        days: WEEKDAYS.filter((d) => draft.days.includes(d)),
        times: draft.times.filter((t) => t.trim() !== ''),
        ...catchup,
      };
    case 'dbt_cloud':
      return { type: 'dbt_cloud', accountId: draft.accountId.trim(), jobId: draft.jobId.trim() };
    case 'fivetran':
      return { type: 'fivetran', connectorId: draft.connectorId.trim() };
    case 'after': {
      const [kind, ...rest] = draft.afterTarget.split(':');
      const slug = rest.join(':');
      return kind === 'sequence'
        ? { type: 'after', sequence: slug, on: draft.afterOn }
        : { type: 'after', sync: slug, on: draft.afterOn };
    }
  }
}

/** Problems the UI can see before asking the server; keyed like the server's details. */
export function scheduleProblems(draft: ScheduleDraft): Record<string, string> {
  const problems: Record<string, string> = {};
  if (draft.type === 'interval') {
    const q = Number(draft.quantity);
    if (!Number.isInteger(q) || q < 1) problems['schedule.quantity'] = 'Enter a whole number of at least 1.';
  }
  if (draft.type === 'cron' && draft.expression.trim().split(/\s+/).length !== 5) {
    problems['schedule.expression'] = 'A cron expression has 5 fields: minute hour day-of-month month day-of-week.';
  }
  if ((draft.type === 'cron' || draft.type === 'recurrence') && draft.timezone.trim() === '') problems['schedule.timezone'] = 'Choose a timezone.';
  if (draft.type === 'recurrence') {
    if (draft.days.length === 0) problems['schedule.days'] = 'Pick at least one day.';
    if (draft.times.filter((t) => t.trim() !== '').length === 0) problems['schedule.times'] = 'Add at least one time.';
  }
  if (draft.type === 'dbt_cloud') {
    if (!draft.accountId.trim()) problems['schedule.accountId'] = 'Enter the dbt Cloud account ID.';
    if (!draft.jobId.trim()) problems['schedule.jobId'] = 'Enter the dbt Cloud job ID.';
  }
  if (draft.type === 'fivetran' && !draft.connectorId.trim()) problems['schedule.connectorId'] = 'Enter the Fivetran connector ID.';
  if (draft.type === 'after' && !draft.afterTarget) problems['schedule.sync'] = 'Choose the sync or sequence to follow.';
  return problems;
}

const DAY_LABEL: Record<Weekday, string> = {
  monday: 'Monday',
  tuesday: 'Tuesday',
  wednesday: 'Wednesday',
  thursday: 'Thursday',
  friday: 'Friday',
  saturday: 'Saturday',
  sunday: 'Sunday',
};

function timezones(): string[] {
  const supported = (Intl as { supportedValuesOf?: (key: string) => string[] }).supportedValuesOf;
  const list = supported ? supported('timeZone') : [];
  return list.includes('UTC') ? list : ['UTC', ...list];
}

export function ScheduleEditor(props: {
  draft: ScheduleDraft;
  onChange: (draft: ScheduleDraft) => void;
  /** Errors keyed by field path (`schedule.expression`, ...). */
  errors: (field: string) => string | undefined;
  syncs: string[];
  sequences: string[];
  /** What the schedule starts, for the hints (default: sequence). */
  subject?: 'sync' | 'sequence';
}) {
  const { draft, onChange, errors } = props;
  const id = useId();
  const zones = useMemo(timezones, []);
  const set = <K extends keyof ScheduleDraft>(key: K, value: ScheduleDraft[K]) => onChange({ ...draft, [key]: value });

  const timezoneField = (
    <div className="field">
      <label htmlFor={`${id}-tz`}>Timezone</label>
      <input id={`${id}-tz`} list={`${id}-zones`} value={draft.timezone} onChange={(e) => set('timezone', e.target.value)} aria-invalid={Boolean(errors('schedule.timezone'))} />
      <datalist id={`${id}-zones`}>
        {zones.map((z) => (
          <option key={z} value={z} />
        ))}
      </datalist>
      <FieldError message={errors('schedule.timezone')} />
    </div>
  );

  return (
    <fieldset className="schedule-editor">
      <legend>Schedule</legend>
      <div className="field">
        <label htmlFor={`${id}-type`}>Schedule type</label>
        <select id={`${id}-type`} value={draft.type} onChange={(e) => set('type', e.target.value as ScheduleType)}>
          {SCHEDULE_TYPES.map((t) => (
            <option key={t.value} value={t.value}>
              {t.label}
            </option>
          ))}
        </select>
        <FieldError message={errors('schedule.type')} />
      </div>

      {draft.type === 'manual' && <p className="hint">The {props.subject ?? 'sequence'} runs only when started by hand, through the API, or by another schedule's trigger.</p>}

      {draft.type === 'interval' && (
        <div className="row">
          <div className="field">
            <label htmlFor={`${id}-qty`}>Every</label>
            <input id={`${id}-qty`} type="number" min={1} step={1} value={draft.quantity} onChange={(e) => set('quantity', e.target.value)} aria-invalid={Boolean(errors('schedule.quantity'))} />
            <FieldError message={errors('schedule.quantity')} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-unit`}>Unit</label>
            <select id={`${id}-unit`} value={draft.unit} onChange={(e) => set('unit', e.target.value as IntervalUnit)}>
              <option value="minute">minutes</option>
              <option value="hour">hours</option>
              <option value="day">days</option>
              <option value="week">weeks</option>
            </select>
            <FieldError message={errors('schedule.unit')} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-start`}>Starting at (optional)</label>
            <input id={`${id}-start`} type="datetime-local" value={draft.startAt} onChange={(e) => set('startAt', e.target.value)} />
            <FieldError message={errors('schedule.startAt')} />
          </div>
        </div>
      )}

      {draft.type === 'cron' && (
        <div className="row">
          <div className="field grow">
            <label htmlFor={`${id}-cron`}>Cron expression</label>
            <input
              id={`${id}-cron`}
              className="mono"
              value={draft.expression}
              onChange={(e) => set('expression', e.target.value)}
              placeholder="0 * * * *"
              aria-invalid={Boolean(errors('schedule.expression'))}
              aria-describedby={`${id}-cron-hint`}
            />
            <span className="hint" id={`${id}-cron-hint`}>
              minute hour day-of-month month day-of-week
            </span>
            <FieldError message={errors('schedule.expression') ?? errors('schedule')} />
          </div>
          {timezoneField}
        </div>
      )}

      {draft.type === 'recurrence' && (
        <>
          <fieldset className="days">
            <legend>Days</legend>
            {WEEKDAYS.map((day) => (
              <label key={day} className="chip-check">
                <input
                  type="checkbox"
                  checked={draft.days.includes(day)}
                  onChange={(e) => set('days', e.target.checked ? [...draft.days, day] : draft.days.filter((d) => d !== day))}
                />
                {DAY_LABEL[day]}
              </label>
            ))}
            <FieldError message={errors('schedule.days')} />
          </fieldset>
          <fieldset className="times">
            <legend>Times</legend>
            {draft.times.map((time, index) => (
              <span key={index} className="time-item">
                <input
                  type="time"
                  aria-label={`Time ${index + 1}`}
                  value={time}
                  onChange={(e) => set('times', draft.times.map((t, i) => (i === index ? e.target.value : t)))}
                />
                <button type="button" className="icon-button" aria-label={`Remove time ${index + 1}`} onClick={() => set('times', draft.times.filter((_, i) => i !== index))}>
                  ×
                </button>
              </span>
            ))}
            <button type="button" className="button small" onClick={() => set('times', [...draft.times, '12:00'])}>
              Add time
            </button>
            <FieldError message={errors('schedule.times')} />
          </fieldset>
          {timezoneField}
        </>
      )}

      {draft.type === 'dbt_cloud' && (
        <div className="row">
          <div className="field">
            <label htmlFor={`${id}-acct`}>dbt Cloud account ID</label>
            <input id={`${id}-acct`} value={draft.accountId} onChange={(e) => set('accountId', e.target.value)} aria-invalid={Boolean(errors('schedule.accountId'))} />
            <FieldError message={errors('schedule.accountId')} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-job`}>dbt Cloud job ID</label>
            <input id={`${id}-job`} value={draft.jobId} onChange={(e) => set('jobId', e.target.value)} aria-invalid={Boolean(errors('schedule.jobId'))} />
            <FieldError message={errors('schedule.jobId')} />
          </div>
          <p className="hint">Runs when dbt Cloud reports that this job completed successfully (webhook).</p>
        </div>
      )}

      {draft.type === 'fivetran' && (
        <div className="row">
          <div className="field grow">
            <label htmlFor={`${id}-conn`}>Fivetran connector ID</label>
            <input id={`${id}-conn`} value={draft.connectorId} onChange={(e) => set('connectorId', e.target.value)} aria-invalid={Boolean(errors('schedule.connectorId'))} />
            <FieldError message={errors('schedule.connectorId')} />
          </div>
          <p className="hint">Runs when the Fivetran connector's sync ends successfully (webhook).</p>
        </div>
      )}

      {draft.type === 'after' && (
        <div className="row">
          <div className="field grow">
            <label htmlFor={`${id}-after`}>Run after</label>
            <select id={`${id}-after`} value={draft.afterTarget} onChange={(e) => set('afterTarget', e.target.value)} aria-invalid={Boolean(errors('schedule.sync') ?? errors('schedule.sequence'))}>
              <option value="">Choose…</option>
              {props.sequences.length > 0 && (
                <optgroup label="Sequences">
                  {props.sequences.map((s) => (
                    <option key={s} value={`sequence:${s}`}>
                      {s}
                    </option>
                  ))}
                </optgroup>
              )}
              <optgroup label="Syncs">
                {props.syncs.map((s) => (
                  <option key={s} value={`sync:${s}`}>
                    {s}
                  </option>
                ))}
              </optgroup>
            </select>
            <FieldError message={errors('schedule.sync') ?? errors('schedule.sequence')} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-on`}>When it</label>
            <select id={`${id}-on`} value={draft.afterOn} onChange={(e) => set('afterOn', e.target.value as 'success' | 'any')}>
              <option value="success">succeeds</option>
              <option value="any">finishes (any outcome)</option>
            </select>
          </div>
        </div>
      )}
      {draft.type !== 'cron' && <FieldError message={errors('schedule')} />}
    </fieldset>
  );
}

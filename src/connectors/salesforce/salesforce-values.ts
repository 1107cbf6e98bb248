/**
 * A model's values in the forms Salesforce reads for each field type. Salesforce reads a JSON
 * record's values with a typed parser: one value it cannot read (a date with a time, a dateTime
 * with micro-seconds, "abc" for a number) refuses the whole sObject Collections call with
 * `400 JSON_PARSER_ERROR`, every other record of the call with it. So values are put in the
 * documented forms before they are sent (REST API and Bulk API 2.0 "Valid Date and DateTime
 * Formats"), and a value that has none is its row's rejection, naming the field and the fix:
 *
 * - date: `yyyy-MM-dd`; a timestamp gives its day in UTC (Lockstep reads timestamps in UTC);
 * - dateTime: `yyyy-MM-ddTHH:mm:ss.SSSZ`, milliseconds at most; a date is its midnight UTC, and
 *   a timestamp without an offset is UTC;
 * - time: `HH:mm:ss.SSSZ` (Salesforce's form for time fields); a time with an offset is moved to UTC;
 * - number, currency, percent: a finite number, or its text as the model holds it (`12.30`);
 * - checkbox: true or false (also 1, 0 and their text, as SQLite and MySQL hold booleans);
 * - multi-select picklist: values separated by semicolons; a list (an array column, which
 *   sources hand over as JSON text) is joined so: `["Gold","Silver"]` goes as `Gold;Silver`;
 * - lookup (reference) fields: a record id of 15 or 18 letters and digits;
 * - text fields: text (a model's number 7 becomes "7") no longer than the field's length;
 * - an empty text is null for fields that are not text.
 */
import type { Value } from '../../core/ports.js';
import { isPlannedRecordId } from '../../core/sequence-plans.js';
import { timestampTextToIso } from '../values.js';
import { isNumberField, isTextField, type FieldDescribe } from './salesforce-fields.js';

/** A value in the form Salesforce reads for its field, or why it has none. */
export type FieldValue = { ok: true; value: Value } | { ok: false; reason: string };

/** A Salesforce record id: 15 letters and digits (case-sensitive), or 18 (with its case-safe suffix). */
const SALESFORCE_ID = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;
const DATE_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;
/** A time of day as sources print it: hours and minutes, optional seconds and fraction, an optional offset. */
const TIME_TEXT = /^(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(?:Z|([+-]\d{2}(?::?\d{2})?))?$/i;
/** A timestamp as sources print it: a date, a time with any fraction, an optional offset. */
const TIMESTAMP_TEXT = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** `value` as Salesforce reads it for `field`; `column`, the model's column it comes from, for messages. */
export function fieldValue(field: FieldDescribe, value: Value, column = 'column'): FieldValue {
  // A checkbox is never null in Salesforce (not nillable; a null, or `#N/A` in a Bulk API CSV, refuses
  // the record): none is unchecked.
  if (field.type === 'boolean' && (value === null || value === '')) return { ok: true, value: false };
  if (value === null) return { ok: true, value: null };
  if (field.type === 'reference') return reference(field, value);
  if (field.type === 'multipicklist' && typeof value === 'string') return withinLength(field, picklistValues(value), column);
  if (isTextField(field)) return withinLength(field, typeof value === 'string' ? value : String(value), column);
  if (value === '') return { ok: true, value: null };
  if (field.type === 'boolean') return checkbox(field, value);
  if (isNumberField(field)) return number(field, value);
  if (field.type === 'date') return date(field, value);
  if (field.type === 'datetime') return dateTime(field, value);
  if (field.type === 'time') return timeOfDay(field, value);
  return { ok: true, value };
}

/**
 * A lookup field's value: a Salesforce record id, 15 or 18 letters and digits. Anything else
 * (most often the parent's external id, mapped to AccountId) is refused by Salesforce with
 * MALFORMED_ID; it is refused here naming the two ways to name a parent.
 */
function reference(field: FieldDescribe, value: Value): FieldValue {
  const text = typeof value === 'string' ? value.trim() : '';
  if (text === '') return { ok: true, value: null };
  // A dry run's stand-in for the id a parent member of the plan makes first.
  if (SALESFORCE_ID.test(text) || isPlannedRecordId(text)) return { ok: true, value: text };
  const parent = field.referenceTo.length === 1 ? field.referenceTo[0] : 'the parent';
  const byExternalId = field.relationshipName ? `map the column to ${field.relationshipName}.<an External ID field of ${parent}> (e.g. ${field.relationshipName}.External_Id__c) to name the parent by its external id, or ` : '';
  return refused(field, value, `a lookup to ${field.referenceTo.join(' or ') || 'another record'}, which takes a Salesforce record id (15 or 18 letters and digits)`, `${byExternalId}add lookup: { sync: <the parent's sync> } to the mapping to send the id that sync recorded — or select the parent's Salesforce Id`);
}

/**
 * A text no longer than its field (the describe's `length`, in characters): Salesforce refuses a
 * longer one with STRING_TOO_LONG, quoting it whole.
 */
function withinLength(field: FieldDescribe, text: string, column: string): FieldValue {
  // A text's UTF-16 length is at least its count of characters: most texts need no count.
  if (field.length <= 0 || text.length <= field.length) return { ok: true, value: text };
  const characters = [...text].length;
  if (characters <= field.length) return { ok: true, value: text };
  return {
    ok: false,
    reason:
      `${field.name} takes at most ${field.length} characters, not "${[...text].slice(0, 60).join('')}…" (${characters} characters) — ` +
      `cut it to ${field.length} in the model's query (e.g. left(${column}, ${field.length})), or widen the field in Salesforce; the row is tried again on the next run`,
  };
}

/** A list (an array column, which sources hand over as JSON text: `["Gold","Silver"]`) as `Gold;Silver`; other text as it is. */
function picklistValues(text: string): string {
  if (!text.startsWith('[')) return text;
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    return text;
  }
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string' || typeof item === 'number')) return text;
  return list.map(String).join(';');
}

function checkbox(field: FieldDescribe, value: Value): FieldValue {
  if (typeof value === 'boolean') return { ok: true, value };
  if (value === 1 || value === 0) return { ok: true, value: value === 1 };
  if (typeof value === 'string' && /^(true|false|1|0)$/i.test(value.trim())) return { ok: true, value: /^(true|1)$/i.test(value.trim()) };
  return refused(field, value, 'a checkbox, which takes true or false', 'select a boolean, e.g. status = \'active\' as is_active');
}

function number(field: FieldDescribe, value: Value): FieldValue {
  if (typeof value === 'number' && Number.isFinite(value)) return { ok: true, value };
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return { ok: true, value: value.trim() };
  return refused(field, value, `a ${field.type} field, which takes a finite number`, 'select a number, or null where there is none');
}

function date(field: FieldDescribe, value: Value): FieldValue {
  const text = typeof value === 'string' ? value.trim() : '';
  if (DATE_TEXT.test(text) && isCalendarDay(text)) return { ok: true, value: text };
  const instant = timestamp(text);
  if (instant) return { ok: true, value: instant.toISOString().slice(0, 10) };
  return refused(field, value, 'a date field, which takes yyyy-MM-dd (e.g. 2024-06-30)', 'select a date or a timestamp');
}

function dateTime(field: FieldDescribe, value: Value): FieldValue {
  const text = typeof value === 'string' ? value.trim() : '';
  const instant = DATE_TEXT.test(text) && isCalendarDay(text) ? new Date(`${text}T00:00:00Z`) : timestamp(text);
  if (instant) return { ok: true, value: instant.toISOString() };
  return refused(field, value, 'a dateTime field, which takes yyyy-MM-ddTHH:mm:ss.SSSZ (e.g. 2024-06-30T14:05:00.000Z)', 'select a timestamp or a date');
}

/**
 * A time of day as Salesforce's time fields take it, `HH:mm:ss.SSSZ`: seconds and milliseconds
 * filled in, a finer fraction cut, a time with an offset moved to UTC (as timestamps are).
 */
function timeOfDay(field: FieldDescribe, value: Value): FieldValue {
  const m = typeof value === 'string' ? TIME_TEXT.exec(value.trim()) : null;
  const [h, mi, s] = m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [NaN, NaN, NaN];
  if (!m || !(h <= 23 && mi <= 59 && s <= 59)) {
    return refused(field, value, 'a time field, which takes HH:mm:ss.SSSZ (e.g. 14:05:00.000Z)', 'select a time of day');
  }
  const millis = Number(((m[4] ?? '') + '000').slice(1, 4));
  const [, sign = '+', oh = '0', om = '0'] = /^([+-])(\d{2}):?(\d{2})?$/.exec(m[5] ?? '') ?? [];
  const offset = (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000;
  const day = 24 * 3_600_000;
  const utc = (((((h * 60 + mi) * 60 + s) * 1000 + millis - offset) % day) + day) % day;
  return { ok: true, value: new Date(utc).toISOString().slice(11) };
}

/** The instant a timestamp's text names (UTC unless it has an offset), or null when it is not one Salesforce can hold. */
function timestamp(text: string): Date | null {
  const m = TIMESTAMP_TEXT.exec(text);
  if (!m) return null;
  const [, day = '', time = ''] = m;
  if (!isCalendarDay(day)) return null;
  const [h, mi, s] = time.split(':').map(Number) as [number, number, number];
  if (h > 23 || mi > 59 || s > 59) return null;
  const instant = new Date(timestampTextToIso(text));
  return Number.isNaN(instant.getTime()) ? null : instant;
}

function isCalendarDay(text: string): boolean {
  const [year, month, day] = text.split('-').map(Number) as [number, number, number];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  return calendar.getUTCFullYear() === year && calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day;
}

function refused(field: FieldDescribe, value: Value, takes: string, fix: string): FieldValue {
  const shown = typeof value === 'string' ? `"${value.length > 60 ? `${value.slice(0, 60)}…` : value}"` : String(value);
  return { ok: false, reason: `${field.name} is ${takes}, not ${shown} — ${fix} in the model's query; the row is tried again on the next run` };
}

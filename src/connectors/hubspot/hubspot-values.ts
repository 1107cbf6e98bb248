/**
 * A row's value as the text HubSpot takes for a property of its type ("Properties API", date and
 * time formats), from the values sources give (values.ts): dates `YYYY-MM-DD`, timestamps ISO-8601
 * in UTC, booleans (SQLite's and MySQL's as 0/1), arrays and lists as JSON text.
 *
 * - any property: null → "" (which clears it);
 * - date: `YYYY-MM-DD`; a timestamp at midnight UTC becomes its date, one at another time is
 *   refused here (HubSpot refuses it too: "… is at 10:15:00.123 UTC, not midnight!"), and so is
 *   text that is no date;
 * - datetime: ISO-8601 in UTC to the millisecond (HubSpot keeps milliseconds, and documents ISO 8601
 *   in UTC or epoch milliseconds: finer digits, `.862967`, are cut to `.862`); a timestamp written
 *   without a zone (`2024-05-01 10:15:00`) is UTC, as everywhere in Lockstep, and a date alone is
 *   its midnight UTC; text that is neither is refused here;
 * - number: a decimal number (exponent allowed), else refused here;
 * - bool: `true` / `false`, from booleans, 1/0 and their text, else refused here (HubSpot refuses
 *   other text, and for contacts upserted by email with the whole batch, which is then split);
 * - enumeration: one of its options' values (not a label), else refused here; a multiple
 *   checkboxes property takes several, and a JSON array of them (a text[] or list column) becomes `a;b`;
 * - every type but string (number, enumeration, phone_number, …) goes without the whitespace around
 *   it, which HubSpot refuses in such values.
 *
 * Anything else goes as its text, for HubSpot to accept or refuse with its own message.
 */
import type { Value } from '../../core/ports.js';
import { timestampTextToIso } from '../values.js';
import type { HubSpotProperty } from './hubspot-client.js';

/**
 * Characters a text property (single-line or multi-line) takes through the API: "When the value is
 * added through the CRM, the character limit is 65,536 characters" ("Property field types in
 * HubSpot"). Counted in UTF-16 units, which is never fewer than HubSpot's count.
 */
export const TEXT_LIMIT = 65_536;

/** What an email HubSpot takes looks like, for messages. */
export const EMAIL_FORM = 'one @, no spaces or quotes, a domain ending in a top-level domain such as .com';

/**
 * Whether HubSpot can take `text` as a contact's email: it checks the form (RFC 2822), refuses a
 * quoted local part, and wants a domain ending in a top-level domain ("How does HubSpot validate
 * email addresses?"). Only what it surely refuses is caught here: whitespace inside, quotes, other
 * than one @, a domain without a dot or with an empty or all-digit last part; whether the
 * top-level domain exists is left to HubSpot. Spaces around the address are not counted.
 */
export function isHubSpotEmail(text: string): boolean {
  const match = /^[^\s@"]+@([^\s@".]+(?:\.[^\s@".]+)+)$/u.exec(text.trim());
  return match !== null && !/\.\d+$/.test(match[1] as string);
}

/** The text to send, or why the value cannot be sent. */
export type HubSpotValue = { text: string } | { problem: string };

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
/** A timestamp as sources print it: date, `T` or a space, time, optional fraction and zone. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:\s*(?:Z|[+-]\d{2}(?::?\d{2})?))?$/;
/** An instant as HubSpot takes it for a datetime: ISO 8601 with `T` and a zone designator. */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/;
/** Epoch milliseconds, which date and datetime properties take too. */
const EPOCH_MS = /^-?\d+$/;

export function hubspotValue(property: HubSpotProperty, value: Value): HubSpotValue {
  if (value === null) return { text: '' };
  switch (property.type) {
    case 'date':
      return dateValue(property, value);
    case 'datetime':
      return datetimeValue(property, value);
    case 'number':
      return numberValue(property, value);
    case 'bool':
      return booleanValue(property, value);
    case 'enumeration':
      return optionValue(property, property.fieldType === 'checkbox' ? checkboxText(value) : withoutEdgeSpace(String(value)));
    case 'string':
    case undefined:
      return { text: String(value) };
    default:
      // phone_number and the like: HubSpot refuses spaces around a value of any type but string.
      return { text: withoutEdgeSpace(String(value)) };
  }
}

/** Whitespace or an invisible character (zero-width space, word joiner) at either end. */
const EDGE_SPACE = /^[\s\u200B-\u200D\u2060]+|[\s\u200B-\u200D\u2060]+$/g;

/**
 * The text without whitespace or invisible characters around it, which HubSpot refuses in a value
 * of any type but string ("Enhanced Validations for Non-String Properties", 2025): a char(n)
 * column's padding (`gold      `), a no-break space copied from a page.
 */
function withoutEdgeSpace(text: string): string {
  return text.replace(EDGE_SPACE, '');
}

function dateValue(property: HubSpotProperty, value: Value): HubSpotValue {
  const text = String(value).trim();
  const notMidnight = {
    problem: `property "${property.name}" is a date, and ${String(value)} is not at midnight UTC (HubSpot keeps dates without a time) — cast it to a date in the model's query, or write it to a datetime property`,
  };
  if (DATE_ONLY.test(text)) return { text };
  // Epoch milliseconds, which HubSpot takes at midnight UTC only.
  if (EPOCH_MS.test(text)) return Number(text) % 86_400_000 === 0 ? { text } : notMidnight;
  if (typeof value === 'string' && TIMESTAMP.test(text)) {
    const iso = timestampTextToIso(text);
    if (iso.slice(10) === 'T00:00:00.000Z') return { text: iso.slice(0, 10) };
    if (ISO_INSTANT.test(iso)) return notMidnight;
  }
  return {
    problem: `property "${property.name}" is a date, and "${String(value)}" is not one HubSpot reads (YYYY-MM-DD, or a timestamp at midnight UTC) — turn it into a date (or null, which clears the property) in the model's query`,
  };
}

/** A datetime: ISO-8601 in UTC to the millisecond, epoch milliseconds as they are; other text is refused. */
function datetimeValue(property: HubSpotProperty, value: Value): HubSpotValue {
  const text = datetimeText(value).trim();
  if (EPOCH_MS.test(text)) return { text };
  if (ISO_INSTANT.test(text)) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return { text: new Date(ms).toISOString() };
  }
  return {
    problem: `property "${property.name}" is a datetime, and "${String(value)}" is not one HubSpot reads (an ISO 8601 timestamp with its zone, or a date) — turn it into a timestamp (or null, which clears the property) in the model's query`,
  };
}

/**
 * An enumeration's value, checked against its options here: HubSpot refuses another (a label
 * included) and, for contacts upserted by email, with the whole batch.
 */
function optionValue(property: HubSpotProperty, text: string): HubSpotValue {
  const options = (property.options ?? []).filter((option) => typeof option.value === 'string');
  if (text === '' || options.length === 0 || property.externalOptions === true) return { text };
  const values = options.map((option) => option.value as string);
  const chosen = property.fieldType === 'checkbox' ? text.split(';') : [text];
  const wrong = chosen.find((option) => !values.includes(option));
  if (wrong === undefined) return { text };
  const labelled = options.find((option) => option.label === wrong || option.label?.toLowerCase() === wrong.toLowerCase());
  const shown = values.length > 10 ? `${values.slice(0, 10).join(', ')}, … (${values.length} in all)` : values.join(', ');
  return {
    problem: `property "${property.name}" takes one of ${shown}; "${wrong}" is not one of them${labelled ? ` ("${labelled.label}" is the label of option "${labelled.value}": send the value)` : ''} — map the model's values to these options in its query, or add the option in HubSpot`,
  };
}

function datetimeText(value: Value): string {
  if (typeof value !== 'string') return String(value);
  const text = value.trim();
  if (DATE_ONLY.test(text)) return `${text}T00:00:00.000Z`;
  return TIMESTAMP.test(text) ? timestampTextToIso(text) : value;
}

/** Numbers as HubSpot reads them: decimal digits, a sign, a point, an exponent. */
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function numberValue(property: HubSpotProperty, value: Value): HubSpotValue {
  const text = withoutEdgeSpace(String(value));
  if (text === '' || NUMBER.test(text)) return { text };
  return { problem: `property "${property.name}" is a number, and "${String(value)}" is not one — turn it into a number (or null, which clears the property) in the model's query` };
}

function booleanValue(property: HubSpotProperty, value: Value): HubSpotValue {
  if (typeof value === 'boolean') return { text: String(value) };
  const text = String(value).trim().toLowerCase();
  if (text === 'true' || text === '1') return { text: 'true' };
  if (text === 'false' || text === '0') return { text: 'false' };
  if (text === '') return { text: '' };
  return {
    problem: `property "${property.name}" is a bool (true or false), and "${String(value)}" is neither — turn it into a boolean (or null, which clears the property) in the model's query`,
  };
}

/** A JSON array of options (as sources give a text[] or a list) as HubSpot's `a;b`, each option without spaces around it. */
function checkboxText(value: Value): string {
  const options = (text: string) => text.split(';').map(withoutEdgeSpace).join(';');
  if (typeof value !== 'string' || !value.trimStart().startsWith('[')) return options(String(value));
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return options(value);
  }
  if (!Array.isArray(parsed) || !parsed.every((option) => typeof option === 'string' || typeof option === 'number' || typeof option === 'boolean')) return options(value);
  return parsed.map((option) => withoutEdgeSpace(String(option))).join(';');
}

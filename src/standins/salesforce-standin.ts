/**
 * A local stand-in for the Salesforce REST API: a real HTTP server on 127.0.0.1 with an in-memory org,
 * for tests and benchmarks of Lockstep's Salesforce destination. It was written from Salesforce's public
 * documentation (and, where the documentation shows no example, from error bodies that Salesforce's own
 * orgs are reported to send), not from any client library, so a client that passes against it has been
 * checked against the service's contract rather than against another client's assumptions.
 *
 * Documented behaviours it implements (REST API Developer Guide, Bulk API 2.0 Developer Guide, OAuth help):
 * - OAuth 2.0 client credentials flow: `POST /services/oauth2/token` (form-encoded) answers
 *   `{access_token, signature, scope, instance_url, id, token_type: "Bearer", issued_at}`; a wrong client id is
 *   400 `invalid_client_id`, a wrong secret 400 `invalid_client`, another grant 400 `unsupported_grant_type`.
 *   `signature` is the base64 HMAC-SHA256 of `id + issued_at` keyed with the client secret.
 * - Every `/services/data/vXX.X/...` call needs `Authorization: Bearer <token>`; otherwise 401
 *   `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`.
 * - Limit Info header: every data answer carries `Sforce-Limit-Info: api-usage=N/LIMIT`; past the daily
 *   allocation 403 `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`.
 * - Error bodies are arrays of `{message, errorCode}` (request level) or, inside results, `{statusCode,
 *   message, fields}` (record level); unknown resources are 404 `NOT_FOUND` "The requested resource does not
 *   exist"; a URI over 16,384 bytes is 414.
 * - Describe (`GET sobjects/{object}/describe`) with the documented field properties; Describe Global
 *   (`GET sobjects`) listing every sObject's name, label and key prefix.
 * - sObject Collections upsert (`PATCH composite/sobjects/{object}/{externalIdField}`): up to 200 records,
 *   each with `attributes.type`, results in request order as `{id, success, errors, created}` (a failed
 *   record carries no id, as in the documented examples); `allOrNone` rolls the whole request back and
 *   marks the valid records `ALL_OR_NONE_OPERATION_ROLLED_BACK`. Record-level errors: REQUIRED_FIELD_MISSING,
 *   MISSING_ARGUMENT ("<field> not specified"), DUPLICATE_VALUE (same external id twice in one request:
 *   "Duplicate external id specified: x"; unique field taken: "duplicate value found: F duplicates value on
 *   record with id: X"), DUPLICATE_EXTERNAL_ID ("F: more than one record found for external id field: [..]"),
 *   INVALID_FIELD "Foreign key external ID: A-1 not found for field External_Id__c in entity Account" for a
 *   parent referenced by external id that does not exist, INVALID_FIELD_FOR_INSERT_UPDATE for read-only
 *   fields, STRING_TOO_LONG ("F: data value too large: v (max length=255)") for text longer than its field,
 *   INVALID_EMAIL_ADDRESS ("F: invalid email address: v") for an email field. Request-level: 400 EXCEEDED_ID_LIMIT past 200 records, 400 INVALID_FIELD "No such column 'X' on
 *   sobject of type Account", 400 INVALID_FIELD "Field name provided, X does not match an External ID,
 *   Salesforce Id, or indexed field for Account", 404 for an unknown object, 400 JSON_PARSER_ERROR, also
 *   for one record's value its field's type cannot be read from ("Cannot deserialize instance of date from
 *   VALUE_STRING value 2024-01-02T03:04:05.000Z or request may be missing a required field"): a date takes
 *   only yyyy-MM-dd, a dateTime yyyy-MM-ddTHH:mm:ss[.SSS] with Z or an offset (Valid Date and DateTime
 *   Formats), a number a number or its text, a checkbox true or false (a null checkbox, not nillable, fails
 *   only its record: INVALID_TYPE_ON_FIELD_IN_RECORD "Label: value not of required type: "). The real message ends with the
 *   value's place, "at [line:1, column:N]", which the stand-in leaves out. In a Bulk API CSV such a value
 *   fails only its row (INVALID_TYPE_ON_FIELD_IN_RECORD, unverified wording).
 * - sObject Collections delete (`DELETE composite/sobjects?ids=..&allOrNone=..`): up to 200 ids of any
 *   object; per-id ENTITY_IS_DELETED "entity is deleted", MALFORMED_ID, INVALID_CROSS_REFERENCE_KEY. A
 *   delete takes along the records whose reference to it cascades: the details of a master-detail (REST
 *   API guide, deleting records through sObject relationships), and an Account's Contacts and
 *   Opportunities (Salesforce Help on deleting accounts); a later delete of one says ENTITY_IS_DELETED.
 * - Query (`GET query?q=`): a SOQL subset (SELECT fields | COUNT() FROM X [WHERE = != < > IN NOT IN LIKE AND
 *   OR] [ORDER BY] [LIMIT] [OFFSET], parent fields as `Account.Name`), answers `{totalSize, done, records,
 *   nextRecordsUrl?}` with 2,000 records a page; MALFORMED_QUERY, INVALID_TYPE, INVALID_FIELD errors.
 * - Bulk API 2.0 ingest: create job (`POST jobs/ingest`, state Open, `contentUrl` without a leading slash),
 *   upload CSV (`PUT jobs/ingest/{id}/batches`, 201, only while Open, at most 150 MB once base64-encoded; once a
 *   job: closing a job that took two uploads is 400 INVALIDJOB "Found multipe contents for job"),
 *   `PATCH` to UploadComplete or Aborted, job info with Open → UploadComplete → InProgress → JobComplete |
 *   Failed | Aborted and `numberRecordsProcessed/Failed`, `successfulResults` (`"sf__Id","sf__Created",...`),
 *   `failedResults` (`"sf__Id","sf__Error",...` with `CODE:message:fields --`), `unprocessedrecords`;
 *   relationship columns `Account.External_Id__c` (whose `#N/A` is a parent's value, as no rule gives it another
 *   meaning there); `#N/A` clears a field and an empty cell leaves it alone;
 *   a line ending that does not match the job's `lineEnding` fails the job; job not found is 404. Records
 *   processed in 24 hours are limited (150,000,000): a job that reaches the limit ends Failed, what it
 *   processed before stays written and the rest is in its unprocessed records ("If the limit is exceeded
 *   while processing your job data, the remaining data isn't processed"; the errorMessage is unverified).
 * - Versions (`GET /services/data/`, no authentication needed): `[{label, url, version}]` of the REST API
 *   versions the org serves (31.0 to 62.0 unless a test says otherwise); a data path under another version is
 *   404 NOT_FOUND, as for any resource the org does not have, and so is a resource under a version older than
 *   the one it came in (sObject Collections upsert 46.0, sObject Collections 42.0, Bulk API 2.0 41.0).
 * - Ids: 15-character base-62 ids with the object's key prefix (001 Account, 003 Contact, 006 Opportunity,
 *   a0… custom) plus Salesforce's 3-character case-safe checksum; 15- and 18-character forms both accepted.
 *
 * What it does not pretend to know (reported error shapes that no documentation shows are marked "unverified"
 * where they are produced): the exact Bulk API 2.0 error bodies for a wrong job state or an oversized upload.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { parse as parseCsv } from 'csv-parse/sync';
import { stringify as stringifyCsv } from 'csv-stringify/sync';

// ---------------------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------------------

/** Field types the stand-in understands (the `type` values of a describe answer). */
export type SalesforceFieldType =
  | 'id'
  | 'string'
  | 'textarea'
  | 'email'
  | 'phone'
  | 'url'
  | 'picklist'
  /** Several picklist values in one text, separated by semicolons (`Gold;Silver`); a JSON array is refused. */
  | 'multipicklist'
  | 'boolean'
  | 'int'
  | 'double'
  | 'currency'
  | 'percent'
  | 'date'
  | 'datetime'
  /** A time of day; its values are kept as sent (the forms Salesforce reads for it are not modelled). */
  | 'time'
  | 'reference';

/** One field of an sObject, as the stand-in is configured. */
export interface SalesforceFieldSpec {
  type: SalesforceFieldType;
  label?: string;
  /** Not nillable and not defaulted: an insert without it fails with REQUIRED_FIELD_MISSING. */
  required?: boolean;
  externalId?: boolean;
  /** Unique fields refuse a second record with the same value (DUPLICATE_VALUE). */
  unique?: boolean;
  /** A Unique field matches case-insensitively unless marked case-sensitive; an External ID that is not Unique matches as written, as in Salesforce. */
  caseSensitive?: boolean;
  /** Indexed for lookups (Id, Email on Contact, …); external id fields always are. */
  idLookup?: boolean;
  createable?: boolean;
  updateable?: boolean;
  referenceTo?: string;
  relationshipName?: string;
  /**
   * A reference whose parent's delete deletes this record too (its child relationship's
   * `cascadeDelete`): a master-detail, and Contact's and Opportunity's AccountId.
   */
  cascadeDelete?: boolean;
  length?: number;
}

/** One sObject: its fields and, optionally, its 3-character key prefix. */
export interface SalesforceObjectSpec {
  label?: string;
  keyPrefix?: string;
  fields: Record<string, SalesforceFieldSpec>;
}

/** The org's sObjects by API name. Id, CreatedDate, LastModifiedDate and SystemModstamp are added to each. */
export type SalesforceSchema = Record<string, SalesforceObjectSpec>;

/**
 * Account, Contact and Opportunity, each with a unique `External_Id__c`, Contact and Opportunity under
 * Account; text fields hold as many characters as Salesforce's object reference gives them.
 */
export const DEFAULT_SALESFORCE_SCHEMA: SalesforceSchema = {
  Account: {
    fields: {
      Name: { type: 'string', required: true, length: 255 },
      External_Id__c: { type: 'string', externalId: true, unique: true, label: 'External Id', length: 255 },
      Industry: { type: 'picklist' },
      Website: { type: 'url' },
      Phone: { type: 'phone', length: 40 },
      BillingCity: { type: 'string', length: 40 },
      NumberOfEmployees: { type: 'int' },
      AnnualRevenue: { type: 'currency' },
    },
  },
  Contact: {
    fields: {
      FirstName: { type: 'string', length: 40 },
      LastName: { type: 'string', required: true, length: 80 },
      Email: { type: 'email', idLookup: true, length: 80 },
      Phone: { type: 'phone', length: 40 },
      External_Id__c: { type: 'string', externalId: true, unique: true, label: 'External Id', length: 255 },
      AccountId: { type: 'reference', referenceTo: 'Account', relationshipName: 'Account', label: 'Account ID', cascadeDelete: true },
    },
  },
  Opportunity: {
    fields: {
      Name: { type: 'string', required: true, length: 120 },
      StageName: { type: 'picklist', required: true, label: 'Stage' },
      CloseDate: { type: 'date', required: true, label: 'Close Date' },
      Amount: { type: 'currency' },
      External_Id__c: { type: 'string', externalId: true, unique: true, label: 'External Id', length: 255 },
      AccountId: { type: 'reference', referenceTo: 'Account', relationshipName: 'Account', label: 'Account ID', cascadeDelete: true },
    },
  },
};

/** Key prefixes of standard objects; custom ones get a0 + a base-62 digit in schema order. */
const STANDARD_KEY_PREFIXES: Record<string, string> = {
  Account: '001',
  Contact: '003',
  Opportunity: '006',
  Lead: '00Q',
  Case: '500',
  User: '005',
  Task: '00T',
  Event: '00U',
  Campaign: '701',
  Product2: '01t',
};

interface FieldDef {
  name: string;
  label: string;
  type: SalesforceFieldType;
  required: boolean;
  externalId: boolean;
  unique: boolean;
  caseSensitive: boolean;
  idLookup: boolean;
  createable: boolean;
  updateable: boolean;
  nillable: boolean;
  referenceTo: string | undefined;
  relationshipName: string | undefined;
  cascadeDelete: boolean;
  length: number;
  custom: boolean;
  /** Kept in an index: Id lookups and external/idLookup fields are answered without a scan. */
  indexed: boolean;
}

interface ObjectDef {
  name: string;
  label: string;
  keyPrefix: string;
  custom: boolean;
  fields: FieldDef[];
  byLowerName: Map<string, FieldDef>;
  byRelationship: Map<string, FieldDef>;
}

const SYSTEM_FIELDS: Record<string, SalesforceFieldSpec> = {
  Id: { type: 'id', idLookup: true, createable: false, updateable: false, label: 'Record ID' },
  CreatedDate: { type: 'datetime', createable: false, updateable: false, label: 'Created Date' },
  LastModifiedDate: { type: 'datetime', createable: false, updateable: false, label: 'Last Modified Date' },
  SystemModstamp: { type: 'datetime', createable: false, updateable: false, label: 'System Modstamp' },
};

function defaultRelationshipName(fieldName: string): string | undefined {
  if (fieldName.endsWith('__c')) return `${fieldName.slice(0, -3)}__r`;
  if (fieldName.endsWith('Id') && fieldName.length > 2) return fieldName.slice(0, -2);
  return undefined;
}

function buildFieldDef(name: string, spec: SalesforceFieldSpec): FieldDef {
  const system = name in SYSTEM_FIELDS;
  const required = spec.required ?? false;
  return {
    name,
    label: spec.label ?? name.replace(/__c$/, '').replace(/_/g, ' '),
    type: spec.type,
    required,
    externalId: spec.externalId ?? false,
    unique: spec.unique ?? false,
    caseSensitive: spec.caseSensitive ?? false,
    idLookup: (spec.idLookup ?? false) || (spec.externalId ?? false),
    createable: spec.createable ?? true,
    updateable: spec.updateable ?? true,
    // System fields are always set by the server, so describe reports them as not nillable.
    nillable: !required && !system && spec.type !== 'boolean',
    referenceTo: spec.referenceTo,
    relationshipName: spec.type === 'reference' ? (spec.relationshipName ?? defaultRelationshipName(name)) : undefined,
    cascadeDelete: spec.type === 'reference' && (spec.cascadeDelete ?? false),
    length: spec.length ?? (spec.type === 'id' || spec.type === 'reference' ? 18 : 255),
    custom: name.endsWith('__c'),
    indexed: name !== 'Id' && ((spec.externalId ?? false) || (spec.idLookup ?? false)),
  };
}

function buildObjectDefs(schema: SalesforceSchema): Map<string, ObjectDef> {
  const defs = new Map<string, ObjectDef>();
  let customIndex = 0;
  for (const [name, spec] of Object.entries(schema)) {
    const keyPrefix = spec.keyPrefix ?? STANDARD_KEY_PREFIXES[name] ?? `a0${BASE62[customIndex++ % 62]}`;
    const fields = Object.entries({ ...SYSTEM_FIELDS, ...spec.fields }).map(([n, s]) => buildFieldDef(n, s));
    const def: ObjectDef = {
      name,
      label: spec.label ?? name.replace(/__c$/, '').replace(/_/g, ' '),
      keyPrefix,
      custom: name.endsWith('__c'),
      fields,
      byLowerName: new Map(fields.map((f) => [f.name.toLowerCase(), f])),
      byRelationship: new Map(
        fields.filter((f) => f.relationshipName).map((f) => [(f.relationshipName ?? '').toLowerCase(), f]),
      ),
    };
    defs.set(name.toLowerCase(), def);
  }
  checkSchema(defs);
  return defs;
}

/** A schema mistake is the test author's, so it fails loudly at start rather than as a strange API answer. */
function checkSchema(defs: Map<string, ObjectDef>): void {
  const prefixes = new Set<string>();
  for (const def of defs.values()) {
    if (!/^[0-9A-Za-z]{3}$/.test(def.keyPrefix)) throw new Error(`${def.name}: key prefix must be 3 characters`);
    if (prefixes.has(def.keyPrefix)) throw new Error(`${def.name}: key prefix ${def.keyPrefix} is used twice`);
    prefixes.add(def.keyPrefix);
    for (const field of def.fields) {
      if (field.type !== 'reference') continue;
      if (!field.referenceTo || !defs.has(field.referenceTo.toLowerCase())) {
        throw new Error(`${def.name}.${field.name}: referenceTo must name an object of the schema`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------------------

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const CHECKSUM_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

function toBase62(value: number, width: number): string {
  let out = '';
  let rest = value;
  while (rest > 0) {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out.padStart(width, '0');
}

/** The 3-character suffix that makes an id case-insensitively unique: one bit per upper-case letter. */
function idChecksum(id15: string): string {
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const ch = id15.charCodeAt(chunk * 5 + i);
      if (ch >= 65 && ch <= 90) bits |= 1 << i;
    }
    suffix += CHECKSUM_ALPHABET[bits];
  }
  return suffix;
}

/** The 18-character form of a 15- or 18-character id, or undefined when the text is not an id. */
function canonicalId(raw: unknown): string | undefined {
  if (typeof raw !== 'string' || !/^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$/.test(raw)) return undefined;
  const id15 = raw.slice(0, 15);
  const suffix = idChecksum(id15);
  if (raw.length === 18 && raw.slice(15).toUpperCase() !== suffix) return undefined;
  return id15 + suffix;
}

class IdSequence {
  private next = 1;
  /** A 2-character "pod" keeps ids from different stand-ins (and runs) from looking alike. */
  private readonly pod = toBase62(randomBytes(2).readUInt16BE(0) % (62 * 62), 2);

  make(prefix: string): string {
    const id15 = `${prefix}${this.pod}${toBase62(this.next++, 10)}`;
    return id15 + idChecksum(id15);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The in-memory org
// ---------------------------------------------------------------------------------------------------------

/** A stored record: its Id and the fields that have a value, by canonical API name. */
export type SalesforceRecord = Record<string, unknown> & { Id: string };

interface SaveError {
  statusCode: string;
  message: string;
  fields: string[];
}

function saveError(statusCode: string, message: string, fields: string[] = []): SaveError {
  return { statusCode, message, fields };
}

const ROLLED_BACK = saveError(
  'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  'Record rolled back because not all records were valid and the request was using AllOrNone header',
);

type Outcome = { ok: true; id: string; created: boolean } | { ok: false; errors: SaveError[] };

/** Changes made by one request, undone in reverse when an allOrNone request fails. */
class UndoLog {
  private readonly steps: Array<() => void> = [];
  push(step: () => void): void {
    this.steps.push(step);
  }
  rollback(): void {
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]?.();
    this.steps.length = 0;
  }
}

/**
 * Whether records are matched on the field without regard to case. "Custom field matching is
 * case-insensitive only if the custom field has the Unique and Treat "ABC" and "abc" as duplicate
 * values (case insensitive) attributes selected" (Upserting Records): an External ID that is not
 * Unique matches as written. SOQL's comparisons ignore case whatever the field (see Query.matches).
 */
function matchesWithoutCase(field: FieldDef): boolean {
  return !field.caseSensitive && (field.unique || !field.externalId);
}

function indexKey(field: FieldDef, value: unknown): string {
  const text = String(value);
  return matchesWithoutCase(field) ? text.toLowerCase() : text;
}

class SObjectTable {
  readonly rows = new Map<string, SalesforceRecord>();
  private readonly indexes = new Map<string, Map<string, Set<string>>>();

  constructor(readonly def: ObjectDef) {
    // A cascading reference is kept in an index too, so a parent's delete finds its children without a scan.
    for (const field of def.fields) if (field.indexed || field.cascadeDelete) this.indexes.set(field.name, new Map());
  }

  /** Ids of the records whose field holds the value (index for indexed fields, a scan otherwise). */
  findBy(field: FieldDef, value: unknown): string[] {
    if (value === null || value === undefined || value === '') return [];
    if (field.name === 'Id') {
      const id = canonicalId(value);
      return id && this.rows.has(id) ? [id] : [];
    }
    const index = this.indexes.get(field.name);
    if (index) return [...(index.get(indexKey(field, value)) ?? [])];
    const key = indexKey(field, value);
    return [...this.rows.values()].filter((r) => r[field.name] != null && indexKey(field, r[field.name]) === key).map((r) => r.Id);
  }

  put(row: SalesforceRecord): void {
    const previous = this.rows.get(row.Id);
    if (previous) this.unindex(previous);
    this.rows.set(row.Id, row);
    this.index(row);
  }

  remove(id: string): SalesforceRecord | undefined {
    const row = this.rows.get(id);
    if (!row) return undefined;
    this.unindex(row);
    this.rows.delete(id);
    return row;
  }

  private index(row: SalesforceRecord): void {
    for (const [name, index] of this.indexes) {
      const value = row[name];
      if (value === null || value === undefined) continue;
      const field = this.def.byLowerName.get(name.toLowerCase());
      if (!field) continue;
      const key = indexKey(field, value);
      let ids = index.get(key);
      if (!ids) index.set(key, (ids = new Set()));
      ids.add(row.Id);
    }
  }

  private unindex(row: SalesforceRecord): void {
    for (const [name, index] of this.indexes) {
      const value = row[name];
      const field = this.def.byLowerName.get(name.toLowerCase());
      if (value === null || value === undefined || !field) continue;
      const key = indexKey(field, value);
      const ids = index.get(key);
      ids?.delete(row.Id);
      if (ids?.size === 0) index.delete(key);
    }
  }
}

/** A parent named by one of its indexed fields instead of by Id (`"Account": {"External_Id__c": "A-1"}`). */
interface ParentLookup {
  reference: FieldDef;
  parent: SObjectTable;
  parentField: FieldDef;
  value: unknown;
}

/** One record as sent, once its field names are known to exist. */
interface RecordInput {
  values: Map<FieldDef, unknown>;
  lookups: ParentLookup[];
}

/** Salesforce's own datetime format, e.g. 2024-01-03T23:52:01.000+0000. */
function sfDateTime(date = new Date()): string {
  return date.toISOString().replace('Z', '+0000');
}

class Org {
  readonly tables = new Map<string, SObjectTable>();
  private readonly byPrefix = new Map<string, SObjectTable>();
  /** Ids deleted so far: a second delete says ENTITY_IS_DELETED rather than "invalid cross reference id". */
  private readonly deleted = new Map<string, SObjectTable>();
  readonly ids = new IdSequence();

  constructor(schema: SalesforceSchema) {
    for (const [key, def] of buildObjectDefs(schema)) {
      const table = new SObjectTable(def);
      this.tables.set(key, table);
      this.byPrefix.set(def.keyPrefix, table);
    }
  }

  table(name: string): SObjectTable | undefined {
    return this.tables.get(name.toLowerCase());
  }

  tableOfId(id: string): SObjectTable | undefined {
    return this.byPrefix.get(id.slice(0, 3));
  }

  isDeleted(id: string): boolean {
    return this.deleted.has(id);
  }

  upsert(table: SObjectTable, extField: FieldDef, input: RecordInput, undo: UndoLog): Outcome {
    const values = this.resolveValues(table, input);
    if ('errors' in values) return { ok: false, errors: values.errors };
    const extValue = values.get(extField);
    if (extValue === undefined || extValue === null || extValue === '') {
      return { ok: false, errors: [saveError('MISSING_ARGUMENT', `${extField.name} not specified`)] };
    }
    const matches = table.findBy(extField, extValue);
    if (matches.length > 1) {
      const message = `${extField.label}: more than one record found for external id field: [${matches.join(', ')}]`;
      return { ok: false, errors: [saveError('DUPLICATE_EXTERNAL_ID', message, [extField.name])] };
    }
    const existing = matches[0] ? table.rows.get(matches[0]) : undefined;
    if (extField.name === 'Id') {
      // Upsert on Id (Bulk API only) updates the record it names; there is nothing to create.
      if (!existing) return { ok: false, errors: [this.missingIdError(canonicalId(extValue) ?? String(extValue))] };
      values.delete(extField);
    }
    return existing ? this.updateRow(table, existing, values, undo) : this.insertRow(table, values, undo);
  }

  insert(table: SObjectTable, input: RecordInput, undo: UndoLog): Outcome {
    const values = this.resolveValues(table, input);
    if ('errors' in values) return { ok: false, errors: values.errors };
    return this.insertRow(table, values, undo);
  }

  update(table: SObjectTable, input: RecordInput, undo: UndoLog): Outcome {
    const values = this.resolveValues(table, input);
    if ('errors' in values) return { ok: false, errors: values.errors };
    const idField = table.def.byLowerName.get('id') as FieldDef;
    const raw = values.get(idField);
    if (raw === undefined || raw === null) return { ok: false, errors: [saveError('MISSING_ARGUMENT', 'Id not specified in an update call')] };
    const id = canonicalId(raw);
    if (!id) return { ok: false, errors: [saveError('MALFORMED_ID', `${table.def.label} ID: id value of incorrect type: ${String(raw)}`, ['Id'])] };
    const existing = table.rows.get(id);
    if (!existing) return { ok: false, errors: [this.missingIdError(id)] };
    values.delete(idField);
    return this.updateRow(table, existing, values, undo);
  }

  remove(rawId: string, undo: UndoLog): Outcome {
    const id = canonicalId(rawId);
    if (!id) return { ok: false, errors: [saveError('MALFORMED_ID', `malformed id ${rawId}`)] };
    const table = this.tableOfId(id);
    if (!table?.rows.has(id)) return { ok: false, errors: [this.missingIdError(id)] };
    this.cascade(table, id, undo);
    return { ok: true, id, created: false };
  }

  /**
   * Deletes a record and, as Salesforce does, the records whose cascading reference names it
   * (a master-detail's details; an Account's Contacts and Opportunities), theirs in turn: a
   * later delete of one of them says ENTITY_IS_DELETED.
   */
  private cascade(table: SObjectTable, id: string, undo: UndoLog): void {
    const row = table.remove(id);
    if (!row) return;
    this.deleted.set(id, table);
    undo.push(() => {
      this.deleted.delete(id);
      table.put(row);
    });
    for (const child of this.tables.values()) {
      for (const field of child.def.fields) {
        if (!field.cascadeDelete || field.referenceTo?.toLowerCase() !== table.def.name.toLowerCase()) continue;
        for (const childId of child.findBy(field, id)) this.cascade(child, childId, undo);
      }
    }
  }

  private missingIdError(id: string): SaveError {
    return this.deleted.has(id)
      ? saveError('ENTITY_IS_DELETED', 'entity is deleted')
      : saveError('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id');
  }

  /** Coerces the values, then turns parent lookups into reference ids. */
  private resolveValues(table: SObjectTable, input: RecordInput): Map<FieldDef, unknown> | { errors: SaveError[] } {
    const values = new Map<FieldDef, unknown>();
    for (const [field, raw] of input.values) {
      const coerced = coerceValue(field, raw);
      if (coerced instanceof Error) {
        return { errors: [saveError('INVALID_TYPE_ON_FIELD_IN_RECORD', `${field.label}: value not of required type: ${String(raw ?? '')}`, [field.name])] };
      }
      const refused = valueError(field, coerced);
      if (refused) return { errors: [refused] };
      values.set(field, coerced);
    }
    for (const lookup of input.lookups) {
      const resolved = this.resolveLookup(lookup);
      if ('errors' in resolved) return resolved;
      values.set(lookup.reference, resolved.id);
    }
    const referenceError = this.checkReferences(values);
    return referenceError ? { errors: [referenceError] } : values;
  }

  private resolveLookup(lookup: ParentLookup): { id: string | null } | { errors: SaveError[] } {
    const { parent, parentField, value } = lookup;
    if (value === null || value === undefined || value === '') return { id: null };
    if (!parentField.indexed && parentField.name !== 'Id') {
      return { errors: [saveError('INVALID_FIELD', `${parentField.name} is not an External ID or indexed field for ${parent.def.name}`)] };
    }
    const matches = parent.findBy(parentField, value);
    if (matches.length === 0) {
      const message = `Foreign key external ID: ${String(value)} not found for field ${parentField.name} in entity ${parent.def.name}`;
      return { errors: [saveError('INVALID_FIELD', message)] };
    }
    if (matches.length > 1) {
      const message = `${parentField.label}: more than one record found for external id field: [${matches.join(', ')}]`;
      return { errors: [saveError('DUPLICATE_EXTERNAL_ID', message, [lookup.reference.name])] };
    }
    return { id: matches[0] ?? null };
  }

  /** A reference given as an Id must be an id of the referenced object that exists (unverified wording). */
  private checkReferences(values: Map<FieldDef, unknown>): SaveError | undefined {
    for (const [field, value] of values) {
      if (field.type !== 'reference' || value === null) continue;
      const target = this.table(field.referenceTo ?? '');
      const id = canonicalId(value);
      if (!id || !target || id.slice(0, 3) !== target.def.keyPrefix) {
        return saveError('MALFORMED_ID', `${field.label}: id value of incorrect type: ${String(value)}`, [field.name]);
      }
      if (!target.rows.has(id)) return this.missingIdError(id);
      values.set(field, id);
    }
    return undefined;
  }

  private insertRow(table: SObjectTable, values: Map<FieldDef, unknown>, undo: UndoLog): Outcome {
    const error =
      readOnlyError(values, 'createable') ?? requiredError(table.def, values, undefined) ?? uniqueError(table, values, undefined);
    if (error) return { ok: false, errors: [error] };
    const now = sfDateTime();
    const row: SalesforceRecord = { Id: this.ids.make(table.def.keyPrefix), CreatedDate: now, LastModifiedDate: now, SystemModstamp: now };
    for (const [field, value] of values) if (value !== null) row[field.name] = value;
    table.put(row);
    undo.push(() => table.remove(row.Id));
    return { ok: true, id: row.Id, created: true };
  }

  private updateRow(table: SObjectTable, existing: SalesforceRecord, values: Map<FieldDef, unknown>, undo: UndoLog): Outcome {
    const error =
      readOnlyError(values, 'updateable') ?? requiredError(table.def, values, existing) ?? uniqueError(table, values, existing.Id);
    if (error) return { ok: false, errors: [error] };
    const now = sfDateTime();
    const row: SalesforceRecord = { ...existing, LastModifiedDate: now, SystemModstamp: now };
    for (const [field, value] of values) {
      if (value === null) delete row[field.name];
      else row[field.name] = value;
    }
    table.put(row);
    undo.push(() => table.put(existing));
    return { ok: true, id: row.Id, created: false };
  }
}

/** JSON and CSV values become the field's type; an Error says the value cannot be one. */
function coerceValue(field: FieldDef, raw: unknown): unknown {
  // A checkbox is not nillable: a null (JSON null, `#N/A` in a CSV) refuses its record (reported wording).
  if (raw === null || raw === undefined) return field.type === 'boolean' ? new Error('a checkbox is never null') : null;
  switch (field.type) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && /^(true|1)$/i.test(raw)) return true;
      if (typeof raw === 'string' && /^(false|0)$/i.test(raw)) return false;
      return new Error('not a boolean');
    case 'int':
    case 'double':
    case 'currency':
    case 'percent': {
      if (raw === '') return null;
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : NaN;
      if (!Number.isFinite(n) || (field.type === 'int' && !Number.isInteger(n))) return new Error('not a number');
      return n;
    }
    case 'date':
    case 'datetime':
      if (raw === '') return null;
      return typeof raw === 'string' && isDateValue(raw, field.type) ? raw : new Error('not a date');
    default:
      if (typeof raw === 'object') return new Error('not a scalar');
      // Salesforce stores an empty text value as null.
      return raw === '' ? null : String(raw);
  }
}

/** Text kinds whose values Salesforce holds to the field's length (in characters). */
const LENGTH_LIMITED_TYPES: ReadonlySet<SalesforceFieldType> = new Set(['string', 'textarea', 'email', 'phone', 'url', 'picklist']);
const EMAIL_ADDRESS = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * A value of the right type that the field still refuses: text longer than the field
 * (STRING_TOO_LONG) or an email field's value that is no address (INVALID_EMAIL_ADDRESS).
 */
function valueError(field: FieldDef, value: unknown): SaveError | undefined {
  if (typeof value !== 'string') return undefined;
  if (LENGTH_LIMITED_TYPES.has(field.type) && [...value].length > field.length) {
    return saveError('STRING_TOO_LONG', `${field.label}: data value too large: ${value} (max length=${field.length})`, [field.name]);
  }
  if (field.type === 'email' && !EMAIL_ADDRESS.test(value)) {
    return saveError('INVALID_EMAIL_ADDRESS', `${field.label}: invalid email address: ${value}`, [field.name]);
  }
  return undefined;
}

function readOnlyError(values: Map<FieldDef, unknown>, access: 'createable' | 'updateable'): SaveError | undefined {
  const readOnly = [...values.keys()].filter((f) => !f[access]).map((f) => f.name);
  if (readOnly.length === 0) return undefined;
  const message = `Unable to create/update fields: ${readOnly.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`;
  return saveError('INVALID_FIELD_FOR_INSERT_UPDATE', message, readOnly);
}

/** What Describe Global and an sObject's Describe both say of it. */
function sobjectSummary(def: ObjectDef) {
  return { name: def.name, label: def.label, keyPrefix: def.keyPrefix, custom: def.custom, createable: true, updateable: true, deletable: true, queryable: true };
}

function requiredError(def: ObjectDef, values: Map<FieldDef, unknown>, existing: SalesforceRecord | undefined): SaveError | undefined {
  const missing = def.fields
    .filter((f) => f.required)
    .filter((f) => {
      const value = values.has(f) ? values.get(f) : existing?.[f.name];
      return value === undefined || value === null;
    })
    .map((f) => f.name);
  if (missing.length === 0) return undefined;
  return saveError('REQUIRED_FIELD_MISSING', `Required fields are missing: [${missing.join(', ')}]`, missing);
}

function uniqueError(table: SObjectTable, values: Map<FieldDef, unknown>, selfId: string | undefined): SaveError | undefined {
  for (const [field, value] of values) {
    if (!field.unique || value === null) continue;
    const other = table.findBy(field, value).find((id) => id !== selfId);
    if (other) return saveError('DUPLICATE_VALUE', `duplicate value found: ${field.name} duplicates value on record with id: ${other}`);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Request-level errors and JSON record parsing
// ---------------------------------------------------------------------------------------------------------

/** A request-level refusal: an HTTP status and Salesforce's `[{message, errorCode}]` body. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
  body(): Array<{ message: string; errorCode: string }> {
    return [{ message: this.message, errorCode: this.errorCode }];
  }
}

const NOT_FOUND_MESSAGE = 'The requested resource does not exist';
const notFound = (): ApiError => new ApiError(404, 'NOT_FOUND', NOT_FOUND_MESSAGE);

/** A version's release name: three a year, Winter '15 being 32.0. */
function releaseLabel(version: string): string {
  const n = Math.floor(Number(version)) - 32;
  const season = ['Winter', 'Spring', 'Summer'][((n % 3) + 3) % 3];
  return `${season} '${15 + Math.floor(n / 3)}`;
}
const noSuchColumn = (name: string, def: ObjectDef): ApiError =>
  new ApiError(400, 'INVALID_FIELD', `No such column '${name}' on sobject of type ${def.name}`);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Field names are case-insensitive in Salesforce; an unknown name refuses the whole request. */
function parseJsonRecord(org: Org, table: SObjectTable, raw: Record<string, unknown>): RecordInput {
  const def = table.def;
  const input: RecordInput = { values: new Map(), lookups: [] };
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'attributes') continue;
    if (isPlainObject(value)) {
      input.lookups.push(parseJsonLookup(org, def, key, value));
      continue;
    }
    const field = def.byLowerName.get(key.toLowerCase());
    if (!field) throw noSuchColumn(key, def);
    if (Array.isArray(value)) throw new ApiError(400, 'JSON_PARSER_ERROR', `Cannot deserialize instance of ${field.type} from START_ARRAY value`);
    const unreadable = jsonTypeProblem(field, value);
    if (unreadable) throw new ApiError(400, 'JSON_PARSER_ERROR', `Cannot deserialize instance of ${field.type} from ${unreadable} or request may be missing a required field`);
    input.values.set(field, value);
  }
  return input;
}

/** `2024-01-02`: the only form a date field takes (no time, no offset). */
const DATE_VALUE = /^\d{4}-\d{2}-\d{2}$/;
/** `2024-01-02T03:04:05.000Z` or `…+02:00` (`+0200` too): seconds, optionally three-digit milliseconds, then a zone. */
const DATETIME_VALUE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:?\d{2})$/;

/** Whether text is a real calendar date or dateTime in the documented formats. */
function isDateValue(text: string, type: 'date' | 'datetime'): boolean {
  if (!(type === 'date' ? DATE_VALUE : DATETIME_VALUE).test(text)) return false;
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) return false;
  return type === 'date' || (Number(text.slice(11, 13)) < 24 && Number(text.slice(14, 16)) < 60 && Number(text.slice(17, 19)) < 60);
}

/**
 * The JSON token a field's type cannot be read from, as Salesforce's JSON parser names it
 * (`VALUE_STRING value 2024-01-02T03:04:05.123456Z`), or undefined when it can. Salesforce answers
 * such a value with a 400 JSON_PARSER_ERROR for the whole request, not as a record's error: dates
 * take only `yyyy-MM-dd`, dateTimes the documented ISO 8601 form, numbers a number or its text,
 * checkboxes true or false.
 */
function jsonTypeProblem(field: FieldDef, value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const token =
    typeof value === 'string'
      ? `VALUE_STRING value ${value}`
      : typeof value === 'number'
        ? `${Number.isInteger(value) ? 'VALUE_NUMBER_INT' : 'VALUE_NUMBER_FLOAT'} value ${value}`
        : `VALUE_${String(value).toUpperCase()} value ${String(value)}`;
  switch (field.type) {
    case 'date':
    case 'datetime':
      return typeof value === 'string' && isDateValue(value, field.type) ? undefined : token;
    case 'boolean':
      return typeof value === 'boolean' || (typeof value === 'string' && /^(true|false)$/i.test(value)) ? undefined : token;
    case 'int':
    case 'double':
    case 'currency':
    case 'percent':
      if (typeof value === 'number') return undefined;
      return typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)) ? undefined : token;
    default:
      return undefined;
  }
}

function parseJsonLookup(org: Org, def: ObjectDef, key: string, value: Record<string, unknown>): ParentLookup {
  const reference = def.byRelationship.get(key.toLowerCase());
  if (!reference) throw noSuchColumn(key, def);
  const parent = org.table(reference.referenceTo ?? '') as SObjectTable;
  const keys = Object.keys(value).filter((k) => k !== 'attributes');
  if (keys.length !== 1) {
    throw new ApiError(400, 'INVALID_FIELD', `More than 1 field provided in an external foreign key reference in entity: ${parent.def.name}`);
  }
  const parentKey = keys[0] as string;
  const parentField = parent.def.byLowerName.get(parentKey.toLowerCase());
  if (!parentField) throw noSuchColumn(parentKey, parent.def);
  return { reference, parent, parentField, value: value[parentKey] };
}

function recordType(raw: Record<string, unknown>): string | undefined {
  const attributes = raw['attributes'];
  return isPlainObject(attributes) && typeof attributes['type'] === 'string' ? attributes['type'] : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// SOQL (the subset a sync needs)
// ---------------------------------------------------------------------------------------------------------

type Literal = string | number | boolean | null;
type Condition =
  | { op: 'and' | 'or'; parts: Condition[] }
  | { op: 'not'; part: Condition }
  | { op: 'cmp'; field: string; cmp: string; value: Literal }
  | { op: 'in'; field: string; values: Literal[]; negate: boolean };

interface SoqlQuery {
  object: string;
  count: boolean;
  fields: string[];
  where: Condition | undefined;
  orderBy: { field: string; desc: boolean } | undefined;
  limit: number | undefined;
  offset: number | undefined;
}

interface Token {
  kind: 'ident' | 'string' | 'number' | 'sym' | 'end';
  text: string;
  pos: number;
}

function tokenizeSoql(soql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < soql.length) {
    const ch = soql[i] as string;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === "'") {
      let j = i + 1;
      let text = '';
      while (j < soql.length && soql[j] !== "'") {
        if (soql[j] === '\\' && j + 1 < soql.length) j++;
        text += soql[j];
        j++;
      }
      if (j >= soql.length) throw malformedQuery(soql, i, 'unexpected end of string literal');
      tokens.push({ kind: 'string', text, pos: i });
      i = j + 1;
    } else {
      const match = /^(?:[A-Za-z_][A-Za-z0-9_.:]*|-?\d+(?:\.\d+)?|!=|<>|<=|>=|[(),=<>*])/.exec(soql.slice(i));
      if (!match) throw malformedQuery(soql, i, `unexpected token: '${ch}'`);
      const text = match[0];
      const kind = /^[A-Za-z_]/.test(text) ? 'ident' : /^-?\d/.test(text) ? 'number' : 'sym';
      tokens.push({ kind, text, pos: i });
      i += text.length;
    }
  }
  tokens.push({ kind: 'end', text: '', pos: soql.length });
  return tokens;
}

/** Salesforce's MALFORMED_QUERY message shows the query, a caret under the fault and its column. */
function malformedQuery(soql: string, pos: number, detail: string): ApiError {
  return new ApiError(400, 'MALFORMED_QUERY', `\n${soql}\n${' '.repeat(pos)}^\nERROR at Row:1:Column:${pos + 1}\n${detail}`);
}

class SoqlParser {
  private at = 0;
  constructor(
    private readonly soql: string,
    private readonly tokens: Token[],
  ) {}

  parse(): SoqlQuery {
    this.keyword('SELECT');
    const { count, fields } = this.selectList();
    this.keyword('FROM');
    const object = this.ident();
    const where = this.isKeyword('WHERE') ? (this.next(), this.orCondition()) : undefined;
    let orderBy: SoqlQuery['orderBy'];
    if (this.isKeyword('ORDER')) {
      this.next();
      this.keyword('BY');
      const field = this.ident();
      const desc = this.isKeyword('DESC');
      if (desc || this.isKeyword('ASC')) this.next();
      orderBy = { field, desc };
    }
    const limit = this.isKeyword('LIMIT') ? (this.next(), this.integer()) : undefined;
    const offset = this.isKeyword('OFFSET') ? (this.next(), this.integer()) : undefined;
    if (this.peek().kind !== 'end') throw this.unexpected();
    return { object, count, fields, where, orderBy, limit, offset };
  }

  private selectList(): { count: boolean; fields: string[] } {
    if (this.isKeyword('COUNT') && this.tokens[this.at + 1]?.text === '(') {
      this.next();
      this.symbol('(');
      this.symbol(')');
      return { count: true, fields: [] };
    }
    const fields = [this.ident()];
    while (this.peek().text === ',') {
      this.next();
      fields.push(this.ident());
    }
    return { count: false, fields };
  }

  private orCondition(): Condition {
    const parts = [this.andCondition()];
    while (this.isKeyword('OR')) {
      this.next();
      parts.push(this.andCondition());
    }
    return parts.length === 1 ? (parts[0] as Condition) : { op: 'or', parts };
  }

  private andCondition(): Condition {
    const parts = [this.atom()];
    while (this.isKeyword('AND')) {
      this.next();
      parts.push(this.atom());
    }
    return parts.length === 1 ? (parts[0] as Condition) : { op: 'and', parts };
  }

  private atom(): Condition {
    if (this.peek().text === '(') {
      this.next();
      const inner = this.orCondition();
      this.symbol(')');
      return inner;
    }
    if (this.isKeyword('NOT')) {
      this.next();
      return { op: 'not', part: this.atom() };
    }
    const field = this.ident();
    const negate = this.isKeyword('NOT');
    if (negate) this.next();
    if (this.isKeyword('IN')) {
      this.next();
      return { op: 'in', field, values: this.literalList(), negate };
    }
    if (negate) throw this.unexpected();
    const op = this.next();
    const cmp = op.kind === 'ident' && op.text.toUpperCase() === 'LIKE' ? 'like' : op.text;
    if (!['=', '!=', '<>', '<', '>', '<=', '>=', 'like'].includes(cmp)) throw this.unexpected(op);
    return { op: 'cmp', field, cmp: cmp === '<>' ? '!=' : cmp, value: this.literal() };
  }

  private literalList(): Literal[] {
    this.symbol('(');
    const values = [this.literal()];
    while (this.peek().text === ',') {
      this.next();
      values.push(this.literal());
    }
    this.symbol(')');
    return values;
  }

  private literal(): Literal {
    const token = this.next();
    if (token.kind === 'string') return token.text;
    if (token.kind === 'number') return Number(token.text);
    const word = token.text.toUpperCase();
    if (token.kind === 'ident' && word === 'NULL') return null;
    if (token.kind === 'ident' && (word === 'TRUE' || word === 'FALSE')) return word === 'TRUE';
    // Date literals (2024-01-31) and bind-like words are kept as text; they compare with stored text.
    if (token.kind === 'ident') return token.text;
    throw this.unexpected(token);
  }

  private integer(): number {
    const token = this.next();
    if (token.kind !== 'number' || !/^\d+$/.test(token.text)) throw this.unexpected(token);
    return Number(token.text);
  }

  private ident(): string {
    const token = this.next();
    if (token.kind !== 'ident') throw this.unexpected(token);
    return token.text;
  }

  private keyword(word: string): void {
    const token = this.next();
    if (token.kind !== 'ident' || token.text.toUpperCase() !== word) throw this.unexpected(token);
  }

  private symbol(text: string): void {
    const token = this.next();
    if (token.text !== text) throw this.unexpected(token);
  }

  private isKeyword(word: string): boolean {
    const token = this.peek();
    return token.kind === 'ident' && token.text.toUpperCase() === word;
  }

  private peek(): Token {
    return this.tokens[this.at] as Token;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.at++;
    return token;
  }

  private unexpected(token = this.peek()): ApiError {
    return malformedQuery(this.soql, token.pos, token.kind === 'end' ? 'unexpected end of query' : `unexpected token: ${token.text}`);
  }
}

/** How to read one field path (`Name`, `Account.External_Id__c`) of a record. */
interface FieldPath {
  field: FieldDef;
  relationship: FieldDef | undefined;
  parent: SObjectTable | undefined;
}

const INVALID_FIELD_HINT =
  "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";

function resolveFieldPath(org: Org, table: SObjectTable, path: string): FieldPath {
  const parts = path.split('.');
  if (parts.length === 1) {
    const field = table.def.byLowerName.get(path.toLowerCase());
    if (!field) throw new ApiError(400, 'INVALID_FIELD', `No such column '${path}' on entity '${table.def.name}'. ${INVALID_FIELD_HINT}`);
    return { field, relationship: undefined, parent: undefined };
  }
  const [relName, fieldName] = parts as [string, string];
  const relationship = table.def.byRelationship.get(relName.toLowerCase());
  if (!relationship || parts.length !== 2) {
    throw new ApiError(
      400,
      'INVALID_FIELD',
      `Didn't understand relationship '${relName}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`,
    );
  }
  const parent = org.table(relationship.referenceTo ?? '') as SObjectTable;
  const field = parent.def.byLowerName.get(fieldName.toLowerCase());
  if (!field) throw new ApiError(400, 'INVALID_FIELD', `No such column '${fieldName}' on entity '${parent.def.name}'. ${INVALID_FIELD_HINT}`);
  return { field, relationship, parent };
}

function readPath(path: FieldPath, row: SalesforceRecord): unknown {
  if (!path.relationship || !path.parent) return row[path.field.name] ?? null;
  const parentId = row[path.relationship.name];
  const parentRow = typeof parentId === 'string' ? path.parent.rows.get(parentId) : undefined;
  return parentRow?.[path.field.name] ?? null;
}

/** SOQL compares text case-insensitively and ids in either length. */
function comparable(field: FieldDef, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (field.type === 'id' || field.type === 'reference') return canonicalId(value) ?? String(value);
  if (typeof value === 'string') return value.toLowerCase();
  return value;
}

function likeToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.');
  return new RegExp(`^${escaped}$`, 'is');
}

class QueryPlan {
  private readonly paths = new Map<string, FieldPath>();

  constructor(
    private readonly org: Org,
    readonly table: SObjectTable,
    readonly query: SoqlQuery,
  ) {
    for (const field of query.fields) this.path(field);
    this.checkCondition(query.where);
    if (query.orderBy) this.path(query.orderBy.field);
  }

  path(name: string): FieldPath {
    const key = name.toLowerCase();
    let path = this.paths.get(key);
    if (!path) this.paths.set(key, (path = resolveFieldPath(this.org, this.table, name)));
    return path;
  }

  run(): SalesforceRecord[] {
    let rows = this.candidates().filter((row) => this.matches(this.query.where, row));
    if (this.query.orderBy) rows = this.sorted(rows, this.query.orderBy);
    const start = this.query.offset ?? 0;
    return rows.slice(start, this.query.limit === undefined ? undefined : start + this.query.limit);
  }

  private checkCondition(condition: Condition | undefined): void {
    if (!condition) return;
    if ('parts' in condition) condition.parts.forEach((p) => this.checkCondition(p));
    else if ('part' in condition) this.checkCondition(condition.part);
    else this.path(condition.field);
  }

  /** An equality or IN on Id or an indexed field at the top of the WHERE clause uses the index, not a scan. */
  private candidates(): SalesforceRecord[] {
    const where = this.query.where;
    const conjuncts = where?.op === 'and' ? where.parts : where ? [where] : [];
    for (const c of conjuncts) {
      if (c.op !== 'in' && c.op !== 'cmp') continue;
      const values = c.op === 'in' ? (c.negate ? undefined : c.values) : c.cmp === '=' ? [c.value] : undefined;
      // `= null` matches records without a value, which no index holds.
      if (!values || values.includes(null)) continue;
      const path = this.path(c.field);
      if (path.relationship || !(path.field.indexed || path.field.name === 'Id')) continue;
      // An index that keeps case cannot answer SOQL, which ignores it.
      if (path.field.name !== 'Id' && !matchesWithoutCase(path.field)) continue;
      const ids = new Set(values.flatMap((v) => this.table.findBy(path.field, v)));
      return [...ids].map((id) => this.table.rows.get(id)).filter((r): r is SalesforceRecord => r !== undefined);
    }
    return [...this.table.rows.values()];
  }

  private matches(condition: Condition | undefined, row: SalesforceRecord): boolean {
    if (!condition) return true;
    switch (condition.op) {
      case 'and':
        return condition.parts.every((p) => this.matches(p, row));
      case 'or':
        return condition.parts.some((p) => this.matches(p, row));
      case 'not':
        return !this.matches(condition.part, row);
      case 'in': {
        const path = this.path(condition.field);
        const value = comparable(path.field, readPath(path, row));
        const found = condition.values.some((v) => comparable(path.field, v) === value);
        return condition.negate ? !found : found;
      }
      case 'cmp':
        return this.compare(condition, row);
    }
  }

  private compare(condition: { field: string; cmp: string; value: Literal }, row: SalesforceRecord): boolean {
    const path = this.path(condition.field);
    const left = comparable(path.field, readPath(path, row));
    const right = comparable(path.field, condition.value);
    switch (condition.cmp) {
      case '=':
        return left === right;
      case '!=':
        return left !== right;
      case 'like':
        return typeof left === 'string' && typeof condition.value === 'string' && likeToRegExp(condition.value).test(left);
      default:
        if (left === null || right === null) return false;
        return orderedCompare(left, right, condition.cmp);
    }
  }

  private sorted(rows: SalesforceRecord[], order: { field: string; desc: boolean }): SalesforceRecord[] {
    const path = this.path(order.field);
    const sign = order.desc ? -1 : 1;
    return rows
      .map((row) => ({ row, key: comparable(path.field, readPath(path, row)) as string | number | boolean | null }))
      .sort((a, b) => {
        // SOQL puts nulls first when sorting ascending.
        if (a.key === null || b.key === null) return a.key === b.key ? 0 : (a.key === null ? -1 : 1) * sign;
        return (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) * sign;
      })
      .map((entry) => entry.row);
  }
}

function orderedCompare(left: unknown, right: unknown, cmp: string): boolean {
  const [a, b] = typeof left === 'number' ? [left, Number(right)] : [String(left), String(right)];
  if (cmp === '<') return a < b;
  if (cmp === '>') return a > b;
  if (cmp === '<=') return a <= b;
  return a >= b;
}

// ---------------------------------------------------------------------------------------------------------
// Bulk API 2.0 ingest jobs
// ---------------------------------------------------------------------------------------------------------

type JobState = 'Open' | 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';
type BulkOperation = 'insert' | 'update' | 'upsert' | 'delete' | 'hardDelete';

const COLUMN_DELIMITERS: Record<string, string> = { BACKQUOTE: '`', CARET: '^', COMMA: ',', PIPE: '|', SEMICOLON: ';', TAB: '\t' };
const BULK_OPERATIONS: readonly BulkOperation[] = ['insert', 'update', 'upsert', 'delete', 'hardDelete'];
/** Upload Job Data: at most 150 MB of job data once Salesforce has base64-encoded it. */
const DEFAULT_BULK_UPLOAD_LIMIT = 150 * 1024 * 1024;
/** Bulk API 2.0 works through the job in chunks of this size; duplicates are found within a chunk. */
const BULK_CHUNK = 10_000;

interface JobUpload {
  header: string[];
  rows: string[][];
  /** Set when the CSV could not be read or its line ending contradicts the job's; the job fails at processing. */
  problem: string | undefined;
}

interface JobResults {
  header: string[];
  successful: string[][];
  failed: string[][];
  unprocessed: string[][];
}

interface IngestJob {
  id: string;
  object: SObjectTable;
  operation: BulkOperation;
  externalIdField: FieldDef | undefined;
  lineEnding: 'LF' | 'CRLF';
  columnDelimiter: string;
  apiVersion: string;
  state: JobState;
  createdDate: string;
  systemModstamp: string;
  uploads: JobUpload[];
  uploadedBase64Bytes: number;
  pollsBeforeComplete: number;
  numberRecordsProcessed: number;
  numberRecordsFailed: number;
  errorMessage: string | undefined;
  results: JobResults | undefined;
}

const base64Length = (bytes: number): number => Math.ceil(bytes / 3) * 4;

type CsvColumn = { kind: 'field'; field: FieldDef } | { kind: 'lookup'; reference: FieldDef; parent: SObjectTable; parentField: FieldDef };

/** Header cells are field names or relationship paths (`Account.External_Id__c`, `Lead:Who.Email`). */
function parseCsvHeader(org: Org, table: SObjectTable, header: string[]): CsvColumn[] | string {
  const columns: CsvColumn[] = [];
  for (const cell of header) {
    const column = parseCsvColumn(org, table, cell.trim());
    if (!column) return `InvalidBatch : Field name not found : ${cell}`;
    columns.push(column);
  }
  return columns;
}

function parseCsvColumn(org: Org, table: SObjectTable, cell: string): CsvColumn | undefined {
  const dot = cell.indexOf('.');
  if (dot < 0) {
    const field = table.def.byLowerName.get(cell.toLowerCase());
    return field ? { kind: 'field', field } : undefined;
  }
  const [typePart, relName] = cell.slice(0, dot).includes(':') ? cell.slice(0, dot).split(':') : [undefined, cell.slice(0, dot)];
  const reference = table.def.byRelationship.get((relName ?? '').toLowerCase());
  if (!reference) return undefined;
  const parent = org.table(typePart ?? reference.referenceTo ?? '');
  const parentField = parent?.def.byLowerName.get(cell.slice(dot + 1).toLowerCase());
  return parent && parentField ? { kind: 'lookup', reference, parent, parentField } : undefined;
}

/**
 * An empty cell leaves the field alone; `#N/A` sets a field to null (Bulk API 2.0 CSV rules). A
 * relationship column's cell is the value its parent is looked up by, `#N/A` too: the guide gives no
 * other meaning to it there (a lookup is cleared by `#N/A` in the lookup field's own column).
 */
function csvRowInput(columns: CsvColumn[], row: string[]): RecordInput {
  const input: RecordInput = { values: new Map(), lookups: [] };
  columns.forEach((column, i) => {
    const cell = row[i] ?? '';
    if (cell === '') return;
    if (column.kind === 'field') input.values.set(column.field, cell === '#N/A' ? null : cell);
    else input.lookups.push({ reference: column.reference, parent: column.parent, parentField: column.parentField, value: cell });
  });
  return input;
}

/** The sf__Error cell: `STATUS_CODE:message:fields --`, as in Salesforce's failed-results files. */
function bulkErrorCell(errors: SaveError[]): string {
  const error = errors[0] ?? saveError('UNKNOWN_EXCEPTION', 'unknown error');
  const fields = error.fields.length > 0 ? `${error.fields.join(',')} ` : '';
  return `${error.statusCode}:${error.message}:${fields}--`;
}

function lineEndingProblem(text: string, lineEnding: 'LF' | 'CRLF'): string | undefined {
  const firstBreak = text.indexOf('\n');
  if (firstBreak < 0) return undefined;
  const crlf = firstBreak > 0 && text[firstBreak - 1] === '\r';
  if (crlf === (lineEnding === 'CRLF')) return undefined;
  return `ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is ${lineEnding}`;
}

function parseUpload(text: string, job: IngestJob): JobUpload {
  const problem = lineEndingProblem(text, job.lineEnding);
  try {
    const [header = [], ...rows] = parseCsv(text, { delimiter: job.columnDelimiter, bom: true, skip_empty_lines: true }) as string[][];
    return { header, rows, problem };
  } catch (error) {
    return { header: [], rows: [], problem: problem ?? `ClientInputError : ${(error as Error).message}` };
  }
}

/** Records Bulk API 2.0 processes per rolling 24 hours (Bulk API 2.0 limits). */
const DEFAULT_BULK_RECORDS_PER_DAY = 150_000_000;

class BulkEngine {
  readonly jobs = new Map<string, IngestJob>();
  /** Records processed so far; the stand-in's day never rolls over. */
  private recordsToday = 0;

  constructor(
    private readonly org: Org,
    private readonly recordsPerDay: number,
  ) {}

  /** Runs the job's records through the org, as Salesforce does once the upload is complete. */
  process(job: IngestJob): void {
    const header = job.uploads[0]?.header ?? [];
    const results: JobResults = { header, successful: [], failed: [], unprocessed: [] };
    job.results = results;
    const problem = this.jobProblem(job);
    if (problem) {
      job.state = 'Failed';
      job.errorMessage = problem;
      for (const upload of job.uploads) results.unprocessed.push(...upload.rows);
      return;
    }
    for (const upload of job.uploads) this.processUpload(job, upload, results);
    if (results.unprocessed.length > 0) {
      // The daily limit was reached while the job ran: the rest of its data is not processed and
      // the job fails; what was processed stays written (wording unverified).
      job.state = 'Failed';
      job.errorMessage = `Exceeded the ${this.recordsPerDay} records Bulk API processes in 24 hours; ${results.unprocessed.length} records were not processed`;
      return;
    }
    job.state = 'JobComplete';
  }

  private jobProblem(job: IngestJob): string | undefined {
    for (const upload of job.uploads) {
      if (upload.problem) return upload.problem;
      const columns = parseCsvHeader(this.org, job.object, upload.header);
      if (typeof columns === 'string') return columns;
      const needed = job.operation === 'upsert' ? job.externalIdField?.name : job.operation === 'insert' ? undefined : 'Id';
      if (needed && !columns.some((c) => c.kind === 'field' && c.field.name === needed)) return `InvalidBatch : Field name not found : ${needed}`;
    }
    return undefined;
  }

  private processUpload(job: IngestJob, upload: JobUpload, results: JobResults): void {
    const columns = parseCsvHeader(this.org, job.object, upload.header) as CsvColumn[];
    const align = alignColumns(upload.header, results.header);
    for (let start = 0; start < upload.rows.length; start += BULK_CHUNK) {
      let chunk = upload.rows.slice(start, start + BULK_CHUNK);
      const room = Math.max(0, this.recordsPerDay - this.recordsToday);
      if (chunk.length > room) {
        results.unprocessed.push(...chunk.slice(room).map(align));
        chunk = chunk.slice(0, room);
      }
      this.recordsToday += chunk.length;
      const inputs = chunk.map((row) => csvRowInput(columns, row));
      const duplicates = job.operation === 'upsert' && job.externalIdField ? duplicateExternalIds(inputs, job.externalIdField) : new Map<number, string>();
      chunk.forEach((row, i) => {
        const duplicate = duplicates.get(i);
        const outcome: Outcome = duplicate
          ? { ok: false, errors: [saveError('DUPLICATE_VALUE', `Duplicate external id specified: ${duplicate}`)] }
          : this.write(job, inputs[i] as RecordInput);
        job.numberRecordsProcessed++;
        const original = align(row);
        if (outcome.ok) results.successful.push([outcome.id, String(outcome.created), ...original]);
        else {
          job.numberRecordsFailed++;
          results.failed.push(['', bulkErrorCell(outcome.errors), ...original]);
        }
      });
    }
  }

  /** Each Bulk API record stands alone: there is no allOrNone, so nothing is ever rolled back. */
  private write(job: IngestJob, input: RecordInput): Outcome {
    const undo = new UndoLog();
    switch (job.operation) {
      case 'upsert':
        return this.org.upsert(job.object, job.externalIdField as FieldDef, input, undo);
      case 'insert':
        return this.org.insert(job.object, input, undo);
      case 'update':
        return this.org.update(job.object, input, undo);
      default: {
        const idField = job.object.def.byLowerName.get('id') as FieldDef;
        return this.org.remove(String(input.values.get(idField) ?? ''), undo);
      }
    }
  }
}

/** Rows of later uploads are written in the first upload's column order. */
function alignColumns(header: string[], target: string[]): (row: string[]) => string[] {
  if (header.length === target.length && header.every((h, i) => h === target[i])) return (row) => row;
  const positions = target.map((name) => header.indexOf(name));
  return (row) => positions.map((p) => (p < 0 ? '' : (row[p] ?? '')));
}

/** Records of one request that share an external id value: all of them fail, as in Salesforce. */
function duplicateExternalIds(inputs: RecordInput[], extField: FieldDef): Map<number, string> {
  const seen = new Map<string, number[]>();
  inputs.forEach((input, i) => {
    const value = input.values.get(extField);
    if (value === undefined || value === null || value === '') return;
    const key = indexKey(extField, value);
    const list = seen.get(key);
    if (list) list.push(i);
    else seen.set(key, [i]);
  });
  const duplicates = new Map<number, string>();
  for (const indexes of seen.values()) {
    if (indexes.length < 2) continue;
    for (const i of indexes) duplicates.set(i, String(inputs[i]?.values.get(extField)));
  }
  return duplicates;
}

function writeResultsCsv(job: IngestJob, lead: string[], rows: string[][]): string {
  const header = [...lead, ...(job.results?.header ?? job.uploads[0]?.header ?? [])];
  return stringifyCsv([header, ...rows], {
    delimiter: job.columnDelimiter,
    record_delimiter: job.lineEnding === 'CRLF' ? 'windows' : 'unix',
    // Salesforce quotes its own sf__ columns and leaves the uploaded values as they were.
    cast: { string: (value, context) => (context.index < lead.length ? { value, quoted: true, quoted_empty: true } : value) },
  });
}

// ---------------------------------------------------------------------------------------------------------
// HTTP: routes, faults, counters
// ---------------------------------------------------------------------------------------------------------

/** The kinds of endpoint the stand-in tells apart, for counters and targeted faults. */
export type SalesforceEndpointKind =
  | 'token'
  | 'describe'
  | 'upsert'
  | 'delete'
  | 'query'
  | 'queryMore'
  | 'bulkCreate'
  | 'bulkUpload'
  | 'bulkClose'
  | 'bulkStatus'
  | 'bulkResults'
  | 'bulkDelete'
  | 'other';

const ENDPOINT_KINDS: readonly SalesforceEndpointKind[] = [
  'token',
  'describe',
  'upsert',
  'delete',
  'query',
  'queryMore',
  'bulkCreate',
  'bulkUpload',
  'bulkClose',
  'bulkStatus',
  'bulkResults',
  'bulkDelete',
  'other',
];

interface RouteSpec {
  kind: SalesforceEndpointKind;
  method: string;
  pattern: RegExp;
}

const ROUTES: readonly RouteSpec[] = [
  { kind: 'describe', method: 'GET', pattern: /^\/sobjects\/([^/]+)\/describe\/?$/ },
  { kind: 'describe', method: 'GET', pattern: /^\/sobjects\/?$/ },
  { kind: 'upsert', method: 'PATCH', pattern: /^\/composite\/sobjects\/([^/]+)\/([^/]+)\/?$/ },
  { kind: 'delete', method: 'DELETE', pattern: /^\/composite\/sobjects\/?$/ },
  { kind: 'query', method: 'GET', pattern: /^\/query\/?$/ },
  { kind: 'queryMore', method: 'GET', pattern: /^\/query\/([^/]+)\/?$/ },
  { kind: 'bulkCreate', method: 'POST', pattern: /^\/jobs\/ingest\/?$/ },
  { kind: 'bulkStatus', method: 'GET', pattern: /^\/jobs\/ingest\/([^/]+)\/?$/ },
  { kind: 'bulkClose', method: 'PATCH', pattern: /^\/jobs\/ingest\/([^/]+)\/?$/ },
  { kind: 'bulkDelete', method: 'DELETE', pattern: /^\/jobs\/ingest\/([^/]+)\/?$/ },
  { kind: 'bulkUpload', method: 'PUT', pattern: /^\/jobs\/ingest\/([^/]+)\/batches\/?$/ },
  { kind: 'bulkResults', method: 'GET', pattern: /^\/jobs\/ingest\/([^/]+)\/(successfulResults|failedResults|unprocessedrecords)\/?$/i },
];

interface RouteMatch {
  kind: SalesforceEndpointKind;
  version: string;
  params: string[];
  /** Set when the path is known but not for this method. */
  allowed: string[] | undefined;
}

/**
 * The first API version of resources younger than the versions an org serves: sObject Collections
 * upsert 46.0, sObject Collections 42.0, Bulk API 2.0 ingest 41.0. Under an older version the path
 * is an unknown resource (404 NOT_FOUND).
 */
const FIRST_VERSION: Partial<Record<SalesforceEndpointKind, number>> = {
  upsert: 46,
  delete: 42,
  bulkCreate: 41,
  bulkUpload: 41,
  bulkClose: 41,
  bulkStatus: 41,
  bulkResults: 41,
  bulkDelete: 41,
};

const DATA_PATH = /^\/services\/data\/v(\d{2,3}\.\d)(\/.*)$/;
const TOKEN_PATH = '/services/oauth2/token';

function matchRoute(method: string, pathname: string): RouteMatch {
  if (pathname === TOKEN_PATH) return { kind: 'token', version: '', params: [], allowed: undefined };
  const data = DATA_PATH.exec(pathname);
  if (!data) return { kind: 'other', version: '', params: [], allowed: undefined };
  const [, version = '', rest = ''] = data;
  const matching = ROUTES.filter((r) => r.pattern.test(rest));
  const route = matching.find((r) => r.method === method);
  if (route) {
    const params = (route.pattern.exec(rest) ?? []).slice(1).map((p) => decodeURIComponent(p));
    return { kind: route.kind, version, params, allowed: undefined };
  }
  const first = matching[0];
  return { kind: first?.kind ?? 'other', version, params: [], allowed: first ? matching.map((r) => r.method) : undefined };
}

/** What a faulted request gets instead of its answer. */
export interface InjectedFault {
  /** `respond` (default) sends the status/body below; `reset` destroys the socket; `hang` never answers;
   * `truncate` announces the whole body but sends only its first half before destroying the socket. */
  action?: 'respond' | 'reset' | 'hang' | 'truncate';
  /** Default 503. */
  status?: number;
  /** A string is sent as is (HTML pages, truncated JSON); anything else is sent as JSON. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  /** Only requests of these kinds take the fault; other requests pass untouched. */
  only?: SalesforceEndpointKind[];
}

/** Counters a test or benchmark reads back (e.g. API calls per 1,000 rows). */
export interface SalesforceStandInStats {
  /** Requests received per endpoint kind, faulted or refused ones included. */
  requests: Record<SalesforceEndpointKind, number>;
  totalRequests: number;
  /** Requests to /services/data (everything but the token endpoint). */
  dataRequests: number;
  faultsInjected: number;
  /** Records, ids or CSV rows received by the write endpoints (upsert, delete, bulk upload). */
  recordsReceived: number;
  /** The largest number of records one write call carried. */
  maxRecordsPerCall: number;
  maxRecordsPerCallByKind: Partial<Record<SalesforceEndpointKind, number>>;
}

function emptyStats(): SalesforceStandInStats {
  return {
    requests: Object.fromEntries(ENDPOINT_KINDS.map((k) => [k, 0])) as Record<SalesforceEndpointKind, number>,
    totalRequests: 0,
    dataRequests: 0,
    faultsInjected: 0,
    recordsReceived: 0,
    maxRecordsPerCall: 0,
    maxRecordsPerCallByKind: {},
  };
}

/** Options of {@link startSalesforceStandIn}. */
export interface SalesforceStandInOptions {
  schema?: SalesforceSchema;
  clientId?: string;
  clientSecret?: string;
  /** The org's daily API request allocation shown in Sforce-Limit-Info (default 15,000). */
  apiLimit?: number;
  /** Job-info polls a Bulk API job answers InProgress before it is JobComplete (default 1). */
  bulkPolls?: number;
  /** Upload limit of one Bulk API job, counted as Salesforce does after base64 encoding (default 150 MB). */
  bulkUploadLimitBytes?: number;
  /**
   * Records Bulk API 2.0 processes in 24 hours (default 150,000,000). A job that reaches it ends
   * Failed: the records processed before stay written, the rest are in its unprocessed records.
   */
  bulkRecordsPerDay?: number;
  /** The REST API versions the org serves, e.g. `['61.0', '62.0']` (default: 31.0 to 62.0). */
  apiVersions?: string[];
}

/** Summer '14 (31.0) to Winter '25 (62.0). */
const DEFAULT_API_VERSIONS = Array.from({ length: 32 }, (_, i) => `${31 + i}.0`);

/** The running stand-in and its test controls. */
export interface SalesforceStandIn extends AsyncDisposable {
  /** Base URL (`http://127.0.0.1:PORT`); also the `instance_url` the token endpoint hands out. */
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
  close(): Promise<void>;
  /** Invalidates every token issued so far: the next data call is 401 INVALID_SESSION_ID. */
  expireTokens(): void;
  setApiLimit(limit: number): void;
  resetApiUsage(): void;
  /** API calls counted so far (the N of `api-usage=N/LIMIT`). */
  apiUsage(): number;
  setBulkPolls(polls: number): void;
  /** The next `count` requests (of the `only` kinds, when given) get the fault instead of their answer. */
  failNext(count: number, fault?: InjectedFault): void;
  clearFaults(): void;
  stats(): SalesforceStandInStats;
  resetStats(): void;
  /** Copies of the stored records of an object. */
  records(object: string): SalesforceRecord[];
  /** The record whose field holds the value (a copy), or undefined. */
  get(object: string, field: string, value: unknown): SalesforceRecord | undefined;
  /** Stores records directly (no API call is counted); throws when one would be refused. Returns their ids. */
  seed(object: string, records: Array<Record<string, unknown>>): string[];
}

/** Salesforce answers a URI longer than this with 414. */
const MAX_URI_BYTES = 16_384;
/** Collections take at most 200 records or ids a call. */
const COLLECTION_LIMIT = 200;
const QUERY_PAGE = 2_000;
const MAX_OPEN_CURSORS = 100;
const JSON_BODY_LIMIT = 64 * 1024 * 1024;
const JSON_TYPE = 'application/json;charset=UTF-8';

interface PendingFault {
  remaining: number;
  fault: InjectedFault;
}

interface QueryCursor {
  records: unknown[];
}

class SalesforceStandInServer implements SalesforceStandIn {
  url = '';
  readonly clientId: string;
  readonly clientSecret: string;
  private readonly server: Server;
  private readonly org: Org;
  private readonly bulk: BulkEngine;
  private readonly tokens = new Set<string>();
  private readonly faults: PendingFault[] = [];
  private readonly cursors = new Map<string, QueryCursor>();
  private readonly sockets = new Set<Socket>();
  private readonly orgId: string;
  private readonly userId: string;
  private apiLimit: number;
  private usage = 0;
  private bulkPolls: number;
  private readonly bulkUploadLimit: number;
  private readonly apiVersions: string[];
  private counters = emptyStats();

  constructor(options: SalesforceStandInOptions) {
    this.apiVersions = options.apiVersions ?? DEFAULT_API_VERSIONS;
    this.clientId = options.clientId ?? 'lockstep-test-client';
    this.clientSecret = options.clientSecret ?? 'lockstep-test-secret';
    this.apiLimit = options.apiLimit ?? 15_000;
    this.bulkPolls = options.bulkPolls ?? 1;
    this.bulkUploadLimit = options.bulkUploadLimitBytes ?? DEFAULT_BULK_UPLOAD_LIMIT;
    this.org = new Org(options.schema ?? DEFAULT_SALESFORCE_SCHEMA);
    this.bulk = new BulkEngine(this.org, options.bulkRecordsPerDay ?? DEFAULT_BULK_RECORDS_PER_DAY);
    this.orgId = this.org.ids.make('00D');
    this.userId = this.org.ids.make('005');
    // The request line of a 200-id delete or a long IN query can pass Node's 16 KB header default;
    // the 414 for URIs past 16,384 bytes is Salesforce's to give, so the parser allows more.
    this.server = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Hanging faults and keep-alive connections would hold close() open forever.
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  expireTokens(): void {
    this.tokens.clear();
  }

  setApiLimit(limit: number): void {
    this.apiLimit = limit;
  }

  resetApiUsage(): void {
    this.usage = 0;
  }

  apiUsage(): number {
    return this.usage;
  }

  setBulkPolls(polls: number): void {
    this.bulkPolls = polls;
  }

  failNext(count: number, fault: InjectedFault = {}): void {
    if (count > 0) this.faults.push({ remaining: count, fault });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  stats(): SalesforceStandInStats {
    return structuredClone(this.counters);
  }

  resetStats(): void {
    this.counters = emptyStats();
  }

  records(object: string): SalesforceRecord[] {
    const table = this.org.table(object);
    if (!table) throw new Error(`no sObject ${object} in the stand-in's schema`);
    return [...table.rows.values()].map((row) => ({ ...row }));
  }

  get(object: string, field: string, value: unknown): SalesforceRecord | undefined {
    const table = this.org.table(object);
    const def = table?.def.byLowerName.get(field.toLowerCase());
    if (!table || !def) throw new Error(`no field ${object}.${field} in the stand-in's schema`);
    const id = table.findBy(def, value)[0];
    const row = id ? table.rows.get(id) : undefined;
    return row ? { ...row } : undefined;
  }

  seed(object: string, records: Array<Record<string, unknown>>): string[] {
    const table = this.org.table(object);
    if (!table) throw new Error(`no sObject ${object} in the stand-in's schema`);
    return records.map((record) => {
      const outcome = this.org.insert(table, parseJsonRecord(this.org, table, record), new UndoLog());
      if (!outcome.ok) throw new Error(`seed ${object}: ${outcome.errors.map((e) => `${e.statusCode}: ${e.message}`).join('; ')}`);
      return outcome.id;
    });
  }

  // --- request handling ---------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const route = matchRoute(req.method ?? 'GET', url.pathname);
      this.countRequest(route.kind);
      const fault = this.takeFault(route.kind);
      if (fault) return this.applyFault(fault, req, res);
      if (route.kind === 'token') return await this.handleToken(req, res);
      if (/^\/services\/data\/?$/.test(url.pathname) && req.method === 'GET') return this.sendJson(res, 200, this.versions());
      if (!url.pathname.startsWith('/services/data/')) throw notFound();
      this.counters.dataRequests++;
      await this.handleData(req, res, url, route);
    } catch (error) {
      this.sendError(req, res, error);
    }
  }

  private async handleData(req: IncomingMessage, res: ServerResponse, url: URL, route: RouteMatch): Promise<void> {
    if (Buffer.byteLength(req.url ?? '') > MAX_URI_BYTES) {
      throw new ApiError(414, 'URI_TOO_LONG', `The length of the URI exceeds the ${MAX_URI_BYTES} byte limit`);
    }
    this.authenticate(req);
    if (!this.apiVersions.includes(route.version)) throw notFound();
    const since = FIRST_VERSION[route.kind];
    if (since !== undefined && Number(route.version) < since) throw notFound();
    this.usage++;
    res.setHeader('Sforce-Limit-Info', `api-usage=${this.usage}/${this.apiLimit}`);
    if (this.usage > this.apiLimit) throw new ApiError(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.');
    if (route.allowed) {
      res.setHeader('Allow', route.allowed.join(','));
      throw new ApiError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${req.method}' not allowed. Allowed are ${route.allowed.join(',')}`);
    }
    const [first = '', second = ''] = route.params;
    switch (route.kind) {
      case 'describe':
        return this.sendJson(res, 200, route.params.length === 0 ? this.describeGlobal(route.version) : this.describe(first, route.version));
      case 'upsert':
        return this.sendJson(res, 200, await this.collectionsUpsert(req, first, second));
      case 'delete':
        return this.sendJson(res, 200, this.collectionsDelete(url));
      case 'query':
        return this.sendJson(res, 200, this.query(url.searchParams.get('q'), route.version));
      case 'queryMore':
        return this.sendJson(res, 200, this.queryMore(first, route.version));
      case 'bulkCreate':
        return this.sendJson(res, 200, this.jobInfo(await this.createJob(req, route.version), false));
      case 'bulkUpload':
        return this.uploadJobData(req, res, first);
      case 'bulkClose':
        return this.sendJson(res, 200, this.jobInfo(await this.changeJobState(req, first), false));
      case 'bulkStatus':
        return this.sendJson(res, 200, this.jobInfo(this.pollJob(first), true));
      case 'bulkResults':
        return this.sendCsv(res, this.jobResults(first, second.toLowerCase()));
      case 'bulkDelete':
        this.deleteJob(first);
        res.writeHead(204).end();
        return;
      default:
        throw notFound();
    }
  }

  /** Salesforce accepts `Bearer` and the older `OAuth` scheme; anything else is an invalid session. */
  private authenticate(req: IncomingMessage): void {
    const match = /^(?:Bearer|OAuth)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!match || !this.tokens.has(match[1] as string)) {
      throw new ApiError(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
    }
  }

  private countRequest(kind: SalesforceEndpointKind): void {
    this.counters.requests[kind]++;
    this.counters.totalRequests++;
  }

  private countRecords(kind: SalesforceEndpointKind, count: number): void {
    this.counters.recordsReceived += count;
    this.counters.maxRecordsPerCall = Math.max(this.counters.maxRecordsPerCall, count);
    this.counters.maxRecordsPerCallByKind[kind] = Math.max(this.counters.maxRecordsPerCallByKind[kind] ?? 0, count);
  }

  /** The Versions resource: each version the org serves, oldest first. */
  private versions(): Array<{ label: string; url: string; version: string }> {
    return this.apiVersions.map((version) => ({ label: releaseLabel(version), url: `/services/data/v${version}`, version }));
  }

  // --- OAuth ----------------------------------------------------------------------------------------------

  private async handleToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      return this.sendJson(res, 405, { error: 'invalid_request', error_description: 'must use HTTP POST' });
    }
    const form = await this.readForm(req);
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const [basicId, basicSecret] = basic ? Buffer.from(basic[1] as string, 'base64').toString().split(':') : [];
    const clientId = form.get('client_id') ?? basicId;
    const clientSecret = form.get('client_secret') ?? basicSecret;
    if (form.get('grant_type') !== 'client_credentials') {
      return this.sendJson(res, 400, { error: 'unsupported_grant_type', error_description: 'grant type not supported' });
    }
    if (clientId !== this.clientId) {
      return this.sendJson(res, 400, { error: 'invalid_client_id', error_description: 'client identifier invalid' });
    }
    if (clientSecret !== this.clientSecret) {
      return this.sendJson(res, 400, { error: 'invalid_client', error_description: 'invalid client credentials' });
    }
    this.sendJson(res, 200, this.issueToken());
  }

  private async readForm(req: IncomingMessage): Promise<URLSearchParams> {
    const body = await readBody(req, 64 * 1024);
    const form = /application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '');
    return new URLSearchParams(form && !body.tooLarge ? body.data.toString('utf8') : '');
  }

  private issueToken(): Record<string, string> {
    const accessToken = `${this.orgId.slice(0, 15)}!${randomBytes(48).toString('base64url')}`;
    this.tokens.add(accessToken);
    const id = `${this.url}/id/${this.orgId}/${this.userId}`;
    const issuedAt = String(Date.now());
    return {
      access_token: accessToken,
      signature: createHmac('sha256', this.clientSecret).update(id + issuedAt).digest('base64'),
      scope: 'api',
      instance_url: this.url,
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
    };
  }

  // --- describe, collections, query --------------------------------------------------------------------

  private tableOrNotFound(object: string): SObjectTable {
    const table = this.org.table(object);
    if (!table) throw notFound();
    return table;
  }

  /** Describe Global: every sObject with its name, label and key prefix. */
  private describeGlobal(version: string): unknown {
    return {
      encoding: 'UTF-8',
      maxBatchSize: 200,
      sobjects: [...this.org.tables.values()].map(({ def }) => ({
        ...sobjectSummary(def),
        urls: { sobject: `/services/data/v${version}/sobjects/${def.name}`, describe: `/services/data/v${version}/sobjects/${def.name}/describe` },
      })),
    };
  }

  private describe(object: string, version: string): unknown {
    const def = this.tableOrNotFound(object).def;
    return {
      ...sobjectSummary(def),
      fields: def.fields.map((f) => ({
        name: f.name,
        label: f.label,
        type: f.type,
        length: f.length,
        externalId: f.externalId,
        idLookup: f.idLookup || f.name === 'Id',
        unique: f.unique,
        caseSensitive: f.caseSensitive,
        nillable: f.nillable,
        createable: f.createable,
        updateable: f.updateable,
        defaultedOnCreate: f.name in SYSTEM_FIELDS || f.type === 'boolean',
        custom: f.custom,
        filterable: true,
        referenceTo: f.referenceTo ? [f.referenceTo] : [],
        relationshipName: f.relationshipName ?? null,
      })),
      urls: { describe: `/services/data/v${version}/sobjects/${def.name}/describe` },
    };
  }

  private async collectionsUpsert(req: IncomingMessage, object: string, extFieldName: string): Promise<unknown[]> {
    const table = this.tableOrNotFound(object);
    const extField = table.def.byLowerName.get(extFieldName.toLowerCase());
    if (extField?.name === 'Id') {
      // The documentation says "Only external ids are supported. Don't use record ids." (wording unverified)
      throw new ApiError(400, 'INVALID_FIELD', `Upserting a collection of ${table.def.name} records is supported on external ID fields only, not on Id`);
    }
    if (!extField || !extField.externalId) {
      const message = `Field name provided, ${extFieldName} does not match an External ID, Salesforce Id, or indexed field for ${table.def.name}`;
      throw new ApiError(400, 'INVALID_FIELD', message);
    }
    const body = await this.readJson(req);
    const { records, allOrNone } = collectionsBody(body);
    if (records.length > COLLECTION_LIMIT) {
      throw new ApiError(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${COLLECTION_LIMIT} records into this call`);
    }
    this.countRecords('upsert', records.length);
    const inputs = records.map((raw, i) => {
      const type = isPlainObject(raw) ? recordType(raw) : undefined;
      if (!isPlainObject(raw) || !type) throw new ApiError(400, 'INVALID_TYPE', `records[${i}]: every record needs an attributes map with a type`);
      if (type.toLowerCase() !== table.def.name.toLowerCase()) {
        throw new ApiError(400, 'INVALID_TYPE', `records[${i}]: type ${type} does not match ${table.def.name} of the request URI`);
      }
      return parseJsonRecord(this.org, table, raw);
    });
    const duplicates = duplicateExternalIds(inputs, extField);
    const undo = new UndoLog();
    const outcomes = inputs.map((input, i): Outcome => {
      const duplicate = duplicates.get(i);
      if (duplicate !== undefined) return { ok: false, errors: [saveError('DUPLICATE_VALUE', `Duplicate external id specified: ${duplicate}`)] };
      return this.org.upsert(table, extField, input, undo);
    });
    return settle(outcomes, allOrNone, undo).map((o) =>
      o.ok ? { id: o.id, success: true, errors: [], created: o.created } : { success: false, errors: o.errors, created: false },
    );
  }

  private collectionsDelete(url: URL): unknown[] {
    const idsParam = url.searchParams.get('ids');
    if (!idsParam) throw new ApiError(400, 'MISSING_ARGUMENT', 'ids parameter is required');
    const ids = idsParam.split(',').filter((id) => id !== '');
    if (ids.length > COLLECTION_LIMIT) {
      throw new ApiError(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${COLLECTION_LIMIT} records into this call`);
    }
    this.countRecords('delete', ids.length);
    const allOrNone = url.searchParams.get('allOrNone')?.toLowerCase() === 'true';
    const undo = new UndoLog();
    const outcomes = ids.map((id) => this.org.remove(id, undo));
    return settle(outcomes, allOrNone, undo).map((o) => (o.ok ? { id: o.id, success: true, errors: [] } : { success: false, errors: o.errors }));
  }

  private query(soql: string | null, version: string): unknown {
    if (!soql) throw new ApiError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const parsed = new SoqlParser(soql, tokenizeSoql(soql)).parse();
    const table = this.org.table(parsed.object);
    if (!table) {
      const message = `sObject type '${parsed.object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`;
      throw new ApiError(400, 'INVALID_TYPE', message);
    }
    const plan = new QueryPlan(this.org, table, parsed);
    const rows = plan.run();
    if (parsed.count) return { totalSize: rows.length, done: true, records: [] };
    const records = rows.map((row) => this.queryRecord(plan, row, version));
    return this.page(records, 0, version);
  }

  private queryRecord(plan: QueryPlan, row: SalesforceRecord, version: string): Record<string, unknown> {
    const out: Record<string, unknown> = { attributes: this.recordAttributes(plan.table.def.name, row.Id, version) };
    for (const name of plan.query.fields) {
      const path = plan.path(name);
      if (!path.relationship || !path.parent) {
        out[path.field.name] = row[path.field.name] ?? null;
        continue;
      }
      const relName = path.relationship.relationshipName as string;
      const parentId = row[path.relationship.name];
      const parentRow = typeof parentId === 'string' ? path.parent.rows.get(parentId) : undefined;
      if (!parentRow) {
        out[relName] = null;
        continue;
      }
      const nested = (out[relName] as Record<string, unknown> | undefined) ?? { attributes: this.recordAttributes(path.parent.def.name, parentRow.Id, version) };
      nested[path.field.name] = parentRow[path.field.name] ?? null;
      out[relName] = nested;
    }
    return out;
  }

  private recordAttributes(type: string, id: string, version: string): { type: string; url: string } {
    return { type, url: `/services/data/v${version}/sobjects/${type}/${id}` };
  }

  /** Results past 2,000 records come in pages linked by nextRecordsUrl, as Salesforce batches them. */
  private page(records: unknown[], offset: number, version: string): unknown {
    const end = offset + QUERY_PAGE;
    const done = end >= records.length;
    const answer: Record<string, unknown> = { totalSize: records.length, done, records: records.slice(offset, end) };
    if (!done) {
      const locator = this.org.ids.make('01g');
      this.cursors.set(locator, { records });
      // Abandoned cursors would pin their records for the stand-in's life; Salesforce expires them too.
      if (this.cursors.size > MAX_OPEN_CURSORS) this.cursors.delete(this.cursors.keys().next().value as string);
      answer['nextRecordsUrl'] = `/services/data/v${version}/query/${locator}-${end}`;
    }
    return answer;
  }

  private queryMore(locatorAndOffset: string, version: string): unknown {
    const match = /^(.+)-(\d+)$/.exec(locatorAndOffset);
    const cursor = match ? this.cursors.get(match[1] as string) : undefined;
    if (!match || !cursor) throw new ApiError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    this.cursors.delete(match[1] as string);
    return this.page(cursor.records, Number(match[2]), version);
  }

  // --- Bulk API 2.0 ---------------------------------------------------------------------------------------

  private async createJob(req: IncomingMessage, version: string): Promise<IngestJob> {
    const body = await this.readJson(req);
    if (!isPlainObject(body)) throw new ApiError(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object');
    const table = this.org.table(String(body['object'] ?? ''));
    if (!table) throw new ApiError(400, 'INVALIDENTITY', `InvalidEntity : sObject type '${String(body['object'])}' is not supported by the Bulk API`);
    const operation = body['operation'] as BulkOperation;
    if (!BULK_OPERATIONS.includes(operation)) throw new ApiError(400, 'INVALIDJOB', `InvalidJob : Invalid operation: ${String(operation)}`);
    const contentType = body['contentType'] ?? 'CSV';
    if (contentType !== 'CSV') throw new ApiError(400, 'INVALIDJOB', `InvalidJob : Invalid content type: ${String(contentType)}`);
    const lineEnding = body['lineEnding'] ?? 'LF';
    if (lineEnding !== 'LF' && lineEnding !== 'CRLF') throw new ApiError(400, 'INVALIDJOB', `InvalidJob : Invalid line ending: ${String(lineEnding)}`);
    const delimiterName = String(body['columnDelimiter'] ?? 'COMMA');
    const columnDelimiter = COLUMN_DELIMITERS[delimiterName];
    if (!columnDelimiter) throw new ApiError(400, 'INVALIDJOB', `InvalidJob : Invalid column delimiter: ${delimiterName}`);
    const externalIdField = operation === 'upsert' ? this.jobExternalIdField(table, body['externalIdFieldName']) : undefined;
    const now = sfDateTime();
    const job: IngestJob = {
      id: this.org.ids.make('750'),
      object: table,
      operation,
      externalIdField,
      lineEnding,
      columnDelimiter,
      apiVersion: version,
      state: 'Open',
      createdDate: now,
      systemModstamp: now,
      uploads: [],
      uploadedBase64Bytes: 0,
      pollsBeforeComplete: 0,
      numberRecordsProcessed: 0,
      numberRecordsFailed: 0,
      errorMessage: undefined,
      results: undefined,
    };
    this.bulk.jobs.set(job.id, job);
    return job;
  }

  private jobExternalIdField(table: SObjectTable, name: unknown): FieldDef {
    const field = typeof name === 'string' ? table.def.byLowerName.get(name.toLowerCase()) : undefined;
    if (!field || !(field.externalId || field.name === 'Id')) {
      const message = `InvalidJob : Field name provided, ${String(name ?? '')} does not match an External ID, Salesforce Id, or indexed field for ${table.def.name}`;
      throw new ApiError(400, 'INVALIDJOB', message);
    }
    return field;
  }

  private job(id: string): IngestJob {
    const job = this.bulk.jobs.get(canonicalId(id) ?? id);
    if (!job) throw notFound();
    return job;
  }

  private async uploadJobData(req: IncomingMessage, res: ServerResponse, jobId: string): Promise<void> {
    const job = this.job(jobId);
    // Unverified: the documentation says data can only be added to an Open job, not which body says so.
    if (job.state !== 'Open') throw new ApiError(409, 'INVALIDJOBSTATE', `InvalidJobState : Job ${job.id} is ${job.state}, data can only be uploaded to an Open job`);
    if (!/^text\/csv\b/i.test(req.headers['content-type'] ?? '')) {
      throw new ApiError(415, 'INVALIDCONTENTTYPE', 'Job data must be sent with Content-Type: text/csv');
    }
    const remaining = this.bulkUploadLimit - job.uploadedBase64Bytes;
    const body = await readBody(req, Math.floor((Math.max(remaining, 0) * 3) / 4));
    const encoded = base64Length(body.length);
    if (body.tooLarge || encoded > remaining) {
      // Unverified body; the limit itself is documented (150 MB of base64-encoded content per job).
      throw new ApiError(413, 'EXCEEDED_QUOTA', `Job data exceeds the ${this.bulkUploadLimit} byte limit of base64-encoded content`);
    }
    const upload = parseUpload(body.data.toString('utf8'), job);
    job.uploads.push(upload);
    job.uploadedBase64Bytes += encoded;
    this.countRecords('bulkUpload', upload.rows.length);
    res.writeHead(201).end();
  }

  private async changeJobState(req: IncomingMessage, jobId: string): Promise<IngestJob> {
    const job = this.job(jobId);
    const body = await this.readJson(req);
    const state = isPlainObject(body) ? body['state'] : undefined;
    if (state === 'UploadComplete' && job.state === 'Open' && job.uploads.length > 1) {
      // Bulk API 2.0 takes one upload a job; the close is what refuses more (body as orgs are reported to send it).
      const message = `Found multipe contents for job: <${job.id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job.`;
      throw new ApiError(400, 'INVALIDJOB', message);
    } else if (state === 'UploadComplete' && job.state === 'Open') {
      job.state = 'UploadComplete';
      job.pollsBeforeComplete = this.bulkPolls;
    } else if (state === 'Aborted' && ['Open', 'UploadComplete', 'InProgress'].includes(job.state)) {
      job.state = 'Aborted';
      job.results = { header: job.uploads[0]?.header ?? [], successful: [], failed: [], unprocessed: job.uploads.flatMap((u) => u.rows) };
    } else if (state === 'UploadComplete' || state === 'Aborted') {
      throw new ApiError(409, 'INVALIDJOBSTATE', `InvalidJobState : Job ${job.id} is ${job.state} and cannot be set to ${state}`);
    } else {
      throw new ApiError(400, 'INVALIDJOBSTATE', `InvalidJobState : ${String(state)} is not a state a job can be set to`);
    }
    job.systemModstamp = sfDateTime();
    return job;
  }

  /** Each poll of a closed job moves it on: `bulkPolls` answers of InProgress, then the work is done. */
  private pollJob(jobId: string): IngestJob {
    const job = this.job(jobId);
    if (job.state === 'UploadComplete' || job.state === 'InProgress') {
      if (job.pollsBeforeComplete > 0) {
        job.state = 'InProgress';
        job.pollsBeforeComplete--;
      } else {
        this.bulk.process(job);
      }
      job.systemModstamp = sfDateTime();
    }
    return job;
  }

  private jobInfo(job: IngestJob, withCounts: boolean): Record<string, unknown> {
    const info: Record<string, unknown> = {
      id: job.id,
      operation: job.operation,
      object: job.object.def.name,
      createdById: this.userId,
      createdDate: job.createdDate,
      systemModstamp: job.systemModstamp,
      state: job.state,
      ...(job.externalIdField ? { externalIdFieldName: job.externalIdField.name } : {}),
      concurrencyMode: 'Parallel',
      contentType: 'CSV',
      apiVersion: Number(job.apiVersion),
      jobType: 'V2Ingest',
      contentUrl: `services/data/v${job.apiVersion}/jobs/ingest/${job.id}/batches`,
      lineEnding: job.lineEnding,
      columnDelimiter: Object.entries(COLUMN_DELIMITERS).find(([, ch]) => ch === job.columnDelimiter)?.[0] ?? 'COMMA',
    };
    if (!withCounts) return info;
    return {
      ...info,
      numberRecordsProcessed: job.numberRecordsProcessed,
      numberRecordsFailed: job.numberRecordsFailed,
      retries: 0,
      totalProcessingTime: 0,
      apiActiveProcessingTime: 0,
      apexProcessingTime: 0,
      ...(job.errorMessage ? { errorMessage: job.errorMessage } : {}),
    };
  }

  private jobResults(jobId: string, which: string): string {
    const job = this.job(jobId);
    const results = job.results;
    if (which === 'unprocessedrecords') {
      if (!results) throw new ApiError(409, 'INVALIDJOBSTATE', `InvalidJobState : Job ${job.id} is ${job.state}; it has not been processed`);
      return writeResultsCsv(job, [], results.unprocessed);
    }
    if (!results || (job.state !== 'JobComplete' && job.state !== 'Failed')) {
      throw new ApiError(409, 'INVALIDJOBSTATE', `InvalidJobState : Job ${job.id} is ${job.state}; results are available once it is JobComplete or Failed`);
    }
    return which === 'successfulresults'
      ? writeResultsCsv(job, ['sf__Id', 'sf__Created'], results.successful)
      : writeResultsCsv(job, ['sf__Id', 'sf__Error'], results.failed);
  }

  private deleteJob(jobId: string): void {
    const job = this.job(jobId);
    if (job.state === 'Open' || job.state === 'InProgress') {
      throw new ApiError(409, 'INVALIDJOBSTATE', `InvalidJobState : Job ${job.id} is ${job.state} and cannot be deleted`);
    }
    this.bulk.jobs.delete(job.id);
  }

  // --- faults -----------------------------------------------------------------------------------------------

  private takeFault(kind: SalesforceEndpointKind): InjectedFault | undefined {
    const index = this.faults.findIndex((f) => !f.fault.only || f.fault.only.includes(kind));
    const pending = this.faults[index];
    if (!pending) return undefined;
    if (--pending.remaining <= 0) this.faults.splice(index, 1);
    this.counters.faultsInjected++;
    return pending.fault;
  }

  private applyFault(fault: InjectedFault, req: IncomingMessage, res: ServerResponse): void {
    const action = fault.action ?? 'respond';
    if (action === 'reset') {
      req.socket.destroy();
      return;
    }
    if (action === 'hang') return; // close() destroys the socket.
    req.resume();
    const body = typeof fault.body === 'string' ? fault.body : JSON.stringify(fault.body ?? [{ errorCode: 'SERVER_UNAVAILABLE', message: 'Service Unavailable' }]);
    const contentType = fault.contentType ?? (typeof fault.body === 'string' ? 'text/html;charset=UTF-8' : JSON_TYPE);
    const bytes = Buffer.from(body, 'utf8');
    res.writeHead(fault.status ?? 503, { 'Content-Type': contentType, 'Content-Length': bytes.length, ...fault.headers });
    if (action === 'truncate') {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.socket?.destroy());
      return;
    }
    res.end(bytes);
  }

  // --- bodies and answers -----------------------------------------------------------------------------------

  private async readJson(req: IncomingMessage): Promise<unknown> {
    const contentType = req.headers['content-type'];
    if (contentType && !/json/i.test(contentType)) {
      req.resume();
      throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content type '${contentType}' not supported for this resource; send application/json`);
    }
    const body = await readBody(req, JSON_BODY_LIMIT);
    if (body.tooLarge) throw new ApiError(413, 'REQUEST_TOO_LARGE', 'The request body is too large');
    try {
      return JSON.parse(body.data.toString('utf8'));
    } catch (error) {
      throw new ApiError(400, 'JSON_PARSER_ERROR', (error as Error).message);
    }
  }

  private sendJson(res: ServerResponse, status: number, body: unknown): void {
    const bytes = Buffer.from(JSON.stringify(body), 'utf8');
    res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': bytes.length });
    res.end(bytes);
  }

  private sendCsv(res: ServerResponse, csv: string): void {
    const bytes = Buffer.from(csv, 'utf8');
    res.writeHead(200, { 'Content-Type': 'text/csv', 'Content-Length': bytes.length });
    res.end(bytes);
  }

  private sendError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    // An early refusal leaves the request body unread; reading it keeps the keep-alive connection usable.
    req.resume();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof ApiError) return this.sendJson(res, error.status, error.body());
    const message = error instanceof Error ? error.message : String(error);
    this.sendJson(res, 500, [{ errorCode: 'UNKNOWN_EXCEPTION', message: `An unexpected error occurred in the stand-in: ${message}` }]);
  }
}

/** allOrNone: any failure undoes the request and every record that was valid reports the rollback. */
function settle(outcomes: Outcome[], allOrNone: boolean, undo: UndoLog): Outcome[] {
  if (!allOrNone || outcomes.every((o) => o.ok)) return outcomes;
  undo.rollback();
  return outcomes.map((o) => (o.ok ? { ok: false, errors: [ROLLED_BACK] } : o));
}

function collectionsBody(body: unknown): { records: unknown[]; allOrNone: boolean } {
  if (!isPlainObject(body) || !Array.isArray(body['records'])) {
    throw new ApiError(400, 'JSON_PARSER_ERROR', 'The request body must be an object with a records array');
  }
  const allOrNone = body['allOrNone'] ?? false;
  if (typeof allOrNone !== 'boolean') throw new ApiError(400, 'JSON_PARSER_ERROR', 'allOrNone must be a boolean');
  return { records: body['records'], allOrNone };
}

/** Reads a request body, keeping at most `limit` bytes; past it the rest is drained and `tooLarge` set. */
async function readBody(req: IncomingMessage, limit: number): Promise<{ data: Buffer; length: number; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length <= limit) chunks.push(chunk);
  }
  return { data: Buffer.concat(chunks), length, tooLarge: length > limit };
}

/**
 * Starts a stand-in on a random port of 127.0.0.1 with an empty org of the given schema
 * (default {@link DEFAULT_SALESFORCE_SCHEMA}); `await using` or `close()` stops it.
 */
export async function startSalesforceStandIn(options: SalesforceStandInOptions = {}): Promise<SalesforceStandIn> {
  const standIn = new SalesforceStandInServer(options);
  await standIn.listen();
  return standIn;
}

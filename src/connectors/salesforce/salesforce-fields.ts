/**
 * What a sync writes to an sObject, checked against Salesforce's describe: the object exists, the
 * external id field is one, every mapped field exists and can be written, and a dotted field
 * (`Account.External_Id__c`, `ReportsTo.Email`) names a parent through a relationship by an external id
 * field or a field Salesforce looks records up by (idLookup). The result
 * is a plan per column saying how its value goes into a record (JSON) and a CSV header.
 */
import { distance } from 'fastest-levenshtein';
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { isRecord } from './salesforce-client.js';

/** The parts of a field's describe that Lockstep reads. */
export interface FieldDescribe {
  name: string;
  type: string;
  externalId: boolean;
  idLookup: boolean;
  createable: boolean;
  updateable: boolean;
  unique: boolean;
  caseSensitive: boolean;
  referenceTo: string[];
  relationshipName: string | null;
  /** Characters a text field holds at most (0: no limit given). */
  length: number;
}

/** The parts of an sObject's describe that Lockstep reads. */
export interface SObjectDescribe {
  name: string;
  fields: FieldDescribe[];
}

/** How one column of the sync goes to Salesforce. */
export type ColumnPlan =
  /** A field of the object, under its API name. */
  | { kind: 'field'; field: FieldDescribe }
  /**
   * A parent named by its external id: the JSON record nests `{ [relationship]: { [parentField]: value } }`,
   * the CSV header is `relationship.parentField`; a null value clears `reference` instead.
   */
  | { kind: 'parent'; relationship: string; reference: FieldDescribe; parentObject: string; parentField: FieldDescribe };

/** Field types whose values Salesforce takes as text (a number from the model is sent as its text). */
const TEXT_TYPES = new Set(['id', 'reference', 'string', 'textarea', 'email', 'phone', 'url', 'picklist', 'multipicklist', 'combobox', 'encryptedstring']);
const NUMBER_TYPES = new Set(['int', 'double', 'currency', 'percent', 'long']);

/** Whether a field's values are text. */
export function isTextField(field: FieldDescribe): boolean {
  return TEXT_TYPES.has(field.type);
}

/**
 * Whether Salesforce matches records on an external id field without regard to case: a text field
 * marked Unique and not case-sensitive ("Custom field matching is case-insensitive only if the custom
 * field has the Unique and Treat "ABC" and "abc" as duplicate values attributes", Upserting Records).
 */
export function matchesWithoutCase(field: FieldDescribe): boolean {
  return !isNumberField(field) && field.unique && !field.caseSensitive;
}

/** Whether a field's values are numbers (SOQL writes them without quotes). */
export function isNumberField(field: FieldDescribe): boolean {
  return NUMBER_TYPES.has(field.type);
}

/** A describe answer read defensively; throws when it is not one. */
export function parseDescribe(json: unknown, what: string): SObjectDescribe {
  if (!isRecord(json) || typeof json.name !== 'string' || !Array.isArray(json.fields)) {
    throw new LockstepError(ErrorCode.Internal, `${what} answered something that is not an sObject describe (no name and fields)`);
  }
  const fields = json.fields.filter(isRecord).flatMap((f): FieldDescribe[] =>
    typeof f.name !== 'string'
      ? []
      : [
          {
            name: f.name,
            type: typeof f.type === 'string' ? f.type : 'string',
            externalId: f.externalId === true,
            idLookup: f.idLookup === true,
            createable: f.createable !== false,
            updateable: f.updateable !== false,
            unique: f.unique === true,
            caseSensitive: f.caseSensitive === true,
            referenceTo: Array.isArray(f.referenceTo) ? f.referenceTo.filter((r): r is string => typeof r === 'string') : [],
            relationshipName: typeof f.relationshipName === 'string' ? f.relationshipName : null,
            length: typeof f.length === 'number' && Number.isInteger(f.length) && f.length > 0 ? f.length : 0,
          },
        ],
  );
  return { name: json.name, fields };
}

/** Finds a field by name as Salesforce does (case-insensitively). */
export function findField(object: SObjectDescribe, name: string): FieldDescribe | undefined {
  const lower = name.toLowerCase();
  return object.fields.find((f) => f.name.toLowerCase() === lower);
}

/** What a writer needs to know of the target, once checked. */
export interface TargetPlan {
  /** The sObject's API name as Salesforce spells it. */
  object: string;
  externalId: FieldDescribe;
  /** Per column of `WriteTarget.columns`. */
  columns: ColumnPlan[];
  /** Index of the external id field in `columns`. */
  keyColumn: number;
}

/** Looks up other objects' describes (for parents named by external id). */
export type DescribeObject = (name: string) => Promise<SObjectDescribe | null>;

export interface PlanInput {
  /** For messages: `sync "contacts-to-sf"`. */
  sync: string;
  object: SObjectDescribe;
  externalIdField: string;
  keyColumns: string[];
  columns: string[];
  /** The model's columns, aligned with `columns` (before mappings renamed them), for messages. */
  modelColumns?: string[];
  describe: DescribeObject;
}

/** Checks the sync's fields against the describe and plans each column; a fatal `schema` error naming the fix otherwise. */
export async function planTarget(input: PlanInput): Promise<TargetPlan> {
  const { sync, object, externalIdField, keyColumns, columns } = input;
  const externalId = checkExternalId(sync, object, externalIdField);
  if (keyColumns.length !== 1 || keyColumns[0]?.toLowerCase() !== externalId.name.toLowerCase()) {
    const key = keyColumns.map((c) => `"${c}"`).join(', ');
    // The mapping names the model's column, which a mapping may have written under another name.
    const from = input.modelColumns?.[columns.indexOf(keyColumns[0] ?? '')] ?? keyColumns[0] ?? 'id';
    throw schemaError(
      keyColumns.length !== 1
        ? `${sync} upserts ${object.name} records by ${externalId.name}, one field, but its model's primary key has ${keyColumns.length} columns (${key})`
        : `${sync} upserts ${object.name} records by ${externalId.name}, but its model's primary key goes to field ${key}`,
      keyColumns.length !== 1
        ? `give the model a one-column key that is the external id (e.g. select a || '-' || b as id, ...) and map it: mappings: [ { from: id, to: ${externalId.name} } ]`
        : `map the key column to the external id field: mappings: [ { from: ${from}, to: ${externalId.name} } ] (or set externalIdField to the field it is written to, if that is an external id)`,
    );
  }
  const plans: ColumnPlan[] = [];
  const unknown: string[] = [];
  for (const column of columns) {
    if (column.includes('.')) {
      plans.push(await planParent(input, column));
      continue;
    }
    const field = findField(object, column);
    if (!field) {
      unknown.push(column);
      continue;
    }
    if (!field.createable && !field.updateable) {
      throw schemaError(
        `${sync} writes field ${field.name} of ${object.name}, which the connected app's Run As user cannot write (its describe says neither createable nor updateable: a formula, roll-up, auto-number or system field, or one that field-level security makes read-only for that user)`,
        `remove it from the model's query or map it to a writable field; or, if it is an ordinary field, give the Run As user's profile or permission set Edit access to it (Setup › Object Manager › ${object.name} › Fields & Relationships › ${field.name} › Set Field-Level Security)`,
      );
    }
    plans.push({ kind: 'field', field });
  }
  if (unknown.length > 0) {
    const first = unknown[0] as string;
    const near = closest(first, object.fields.map((f) => f.name));
    const writable = object.fields.filter((f) => f.createable || f.updateable).map((f) => f.name);
    throw schemaError(
      `${sync} writes ${unknown.length === 1 ? 'field' : 'fields'} ${unknown.map((c) => `"${c}"`).join(', ')}, which ${object.name} does not have${near ? ` (did you mean "${near}"?)` : ''}`,
      `map each model column to one of ${object.name}'s fields (mappings: [ { from: column, to: Field__c } ]; custom fields end in __c), or create the field in Setup › Object Manager › ${object.name} › Fields; a field that exists but that field-level security hides from the connected app's Run As user is not in Salesforce's describe either: give that user's profile or permission set Read and Edit access to it; writable fields: ${listNames(writable)}`,
    );
  }
  checkOneWayPerParent(sync, object, columns, plans);
  return { object: object.name, externalId, columns: plans, keyColumn: plans.findIndex((p) => p.kind === 'field' && p.field === externalId) };
}

/**
 * A lookup field is written one way: by the parent's Id or by one field of the parent. Salesforce
 * refuses a record naming its parent both ways ("Cannot specify both an external ID reference
 * Account and a salesforce id, AccountId") or by two fields ("More than 1 field provided in an
 * external foreign key reference"), the latter for the whole call.
 */
function checkOneWayPerParent(sync: string, object: SObjectDescribe, columns: string[], plans: ColumnPlan[]): void {
  const seen = new Map<string, string>();
  plans.forEach((plan, i) => {
    const reference = plan.kind === 'field' ? (plan.field.type === 'reference' ? plan.field : null) : plan.reference;
    if (!reference) return;
    const column = columns[i] as string;
    const other = seen.get(reference.name);
    if (other === undefined) return seen.set(reference.name, column);
    throw schemaError(
      `${sync} writes ${object.name}'s parent ${reference.name} twice, as "${other}" and as "${column}", which Salesforce refuses`,
      `map the parent one way only: its external id (${reference.relationshipName ?? reference.name}.External_Id__c) or its Salesforce Id (${reference.name}, e.g. with lookup: { sync: <the parent's sync> })`,
    );
  });
}

function checkExternalId(sync: string, object: SObjectDescribe, name: string): FieldDescribe {
  const field = findField(object, name);
  const externalIds = object.fields.filter((f) => f.externalId).map((f) => f.name);
  const choose = externalIds.length > 0 ? `choose one of ${object.name}'s external id fields: ${externalIds.join(', ')}` : `${object.name} has no external id field yet`;
  if (!field) {
    const near = closest(name, externalIds) ?? closest(name, object.fields.map((f) => f.name));
    throw schemaError(
      `${sync}: externalIdField "${name}" is not a field of ${object.name}${near ? ` (did you mean "${near}"?)` : ''}`,
      `${choose}; or create a text field marked "External ID" (and Unique) in Setup › Object Manager › ${object.name} › Fields`,
    );
  }
  if (!field.externalId) {
    throw schemaError(
      `${sync}: externalIdField ${field.name} of ${object.name} is not an external id field (its describe says externalId: false), so records cannot be upserted on it`,
      `${choose}; or edit ${field.name} in Setup › Object Manager › ${object.name} › Fields and tick "External ID" (and Unique)`,
    );
  }
  return field;
}

/** `Account.External_Id__c`: a relationship of the object, and an external id of the object it points to. */
async function planParent(input: PlanInput, column: string): Promise<ColumnPlan> {
  const { sync, object } = input;
  const parts = column.split('.');
  const [relationship = '', parentName = ''] = parts;
  const references = object.fields.filter((f) => f.relationshipName !== null && f.referenceTo.length > 0);
  const names = references.map((f) => f.relationshipName as string);
  const reference = references.find((f) => f.relationshipName?.toLowerCase() === relationship.toLowerCase());
  if (parts.length !== 2 || !reference) {
    // `AccountId.External_Id__c` and `Parent__c.External_Id__c` name the field, not the relationship.
    const byField = references.find((f) => f.name.toLowerCase() === relationship.toLowerCase());
    const near = byField?.relationshipName ?? closest(relationship, names);
    throw schemaError(
      `${sync} writes "${column}", but ${object.name} has no relationship "${relationship}"${near ? ` (did you mean "${near}.${parentName || 'External_Id__c'}"?)` : ''}`,
      `a parent named by its external id is written as Relationship.ExternalIdField, e.g. Account.External_Id__c (custom relationships end in __r); ${object.name}'s relationships: ${listNames(names)}`,
    );
  }
  if (reference.referenceTo.length !== 1) {
    throw schemaError(
      `${sync} writes "${column}", but ${reference.name} of ${object.name} may point to ${reference.referenceTo.join(', ')}, so the parent's object is not known`,
      `map the parent's Salesforce Id to ${reference.name} instead, e.g. { from: parent_id, to: ${reference.name}, lookup: { sync: <the parent's sync> } }`,
    );
  }
  const parentObject = reference.referenceTo[0] as string;
  const parent = await input.describe(parentObject);
  if (!parent) throw schemaError(`${sync} writes "${column}", but ${parentObject}, the object ${reference.name} points to, cannot be described`, 'check that the connected app\'s Run As user can read it');
  const parentField = findField(parent, parentName);
  // Salesforce finds a parent by an External ID field or by an idLookup one (Contact's Email, RecordType's Name).
  const externalIds = parent.fields.filter((f) => (f.externalId || f.idLookup) && f.name !== 'Id').map((f) => f.name);
  if (!parentField || !(parentField.externalId || parentField.idLookup)) {
    const near = parentField ? undefined : closest(parentName, externalIds);
    throw schemaError(
      parentField
        ? `${sync} writes "${column}", but ${parentField.name} of ${parentObject} is neither an external id field nor one Salesforce looks records up by (idLookup), so Salesforce cannot find the parent by it`
        : `${sync} writes "${column}", but ${parentObject} has no field "${parentName}"${near ? ` (did you mean "${relationship}.${near}"?)` : ''}`,
      externalIds.length > 0
        ? `name the parent by one of the fields ${parentObject}'s records are found by: ${listNames(externalIds.map((f) => `${reference.relationshipName}.${f}`))}`
        : `mark a field of ${parentObject} as "External ID" in Setup › Object Manager › ${parentObject} › Fields, or map the parent's Salesforce Id to ${reference.name} with lookup: { sync: <the parent's sync> }`,
    );
  }
  return { kind: 'parent', relationship: reference.relationshipName as string, reference, parentObject: parent.name, parentField };
}

/** The header of a column in a Bulk API 2.0 CSV. */
export function csvHeader(plan: ColumnPlan): string {
  return plan.kind === 'field' ? plan.field.name : `${plan.relationship}.${plan.parentField.name}`;
}

/** A fatal schema error: what is wrong — how to fix it. */
export function schemaError(message: string, fix: string): LockstepError {
  return new LockstepError(ErrorCode.Schema, `${message} — ${fix}`);
}

/** The name nearest to a misspelt one, when it is near enough to suggest. */
export function closest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of names) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** Names for a message, at most 30 of them. */
export function listNames(names: readonly string[]): string {
  if (names.length === 0) return '(none)';
  return names.length > 30 ? `${names.slice(0, 30).join(', ')}, … (${names.length} in all)` : names.join(', ');
}

/**
 * A local stand-in for the HubSpot CRM API: a real HTTP server on 127.0.0.1 holding one in-memory
 * portal, for tests and benchmarks. It was written from HubSpot's public documentation (and, where
 * the documentation is silent, from responses HubSpot users have recorded), not from client code.
 *
 * Documented behaviours it implements:
 * - Private-app auth with `Authorization: Bearer <token>`; anything else is a 401 whose body has
 *   `category: INVALID_AUTHENTICATION` ("API usage guidelines", "Error handling").
 * - OAuth ("OAuth tokens"): `POST /oauth/v1/token` (form-encoded, grant_type=refresh_token,
 *   client_id, client_secret, refresh_token) answers `{token_type: "bearer", refresh_token,
 *   access_token, expires_in: 1800}`, or a 400 `{status: "BAD_REFRESH_TOKEN" | "BAD_CLIENT_ID" | …,
 *   message}`. An access token past its life gets a 401 EXPIRED_AUTHENTICATION, "The OAuth token used
 *   to make this call expired 5 minute(s) ago.", with `context: {"expire time": [...]}`.
 * - Scopes: a call needing a scope the app lacks is a 403 MISSING_SCOPES whose `errors[0].context.
 *   requiredGranularScopes` lists the scopes that would do ("Scopes").
 * - Error bodies `{status: "error", message, correlationId, category, errors?, context?}` and the
 *   `X-HubSpot-Correlation-Id` header ("Error handling").
 * - Object types in paths: a standard object by its name, singular or type id (`contacts`, `contact`,
 *   `0-1`); a custom object by its type id (`2-…`), short-hand `p_{name}` or fully qualified name
 *   `p{portalId}_{name}`, not by its base name ("Removed Support for Referencing Custom Object Types
 *   by Base Name", June 2025). Test options and inspection helpers take the schema's name.
 * - `GET /crm/v3/properties/{objectType}` → `{results: Property[]}` with the documented Property
 *   fields (name, label, type, fieldType, hasUniqueValue, modificationMetadata, …) ("Properties API").
 * - Object batch endpoints (`batch/upsert`, `batch/read`, `batch/archive`) take at most 100 inputs
 *   ("Using object APIs › Limits"); upsert is by a unique-value property, or `email` for contacts
 *   (which the Properties API lists with `hasUniqueValue: false`).
 * - An invalid or unknown property is a 400 VALIDATION_ERROR whose message lists
 *   `{isValid, message, error: PROPERTY_DOESNT_EXIST, name, localizedErrorMessage, portalId}` and whose
 *   `errors[]` carry `code` and `context.propertyName` ("Using object APIs › Error handling").
 * - Text (single-line and multi-line) takes at most 65,536 characters through the CRM ("Property
 *   field types in HubSpot"); a longer value is a VALIDATION_ERROR like any invalid value.
 * - A value of any type but string with whitespace or an invisible character at either end is a
 *   VALIDATION_ERROR LEADING_TRAILING_WHITESPACE ("Enhanced Validations for Non-String Properties").
 * - Values ("Properties API", date and time formats): a date takes `YYYY-MM-DD` or midnight-UTC
 *   epoch milliseconds (others: "… is at 4:10:33.600 UTC, not midnight!"); a datetime takes epoch
 *   milliseconds or ISO 8601 with a zone designator; a bool `true`/`false`; a multiple checkboxes
 *   enumeration its options separated by `;`; an empty string clears a property.
 * - Multi-status: when every input carries a unique `objectWriteTraceId`, failing inputs come back
 *   in `errors[]` of a 207 (`numErrors`, `context.objectWriteTraceId: [id]`) while the others are
 *   written ("Multi-status errors for batch create requests"). Without trace ids, or when contacts
 *   are upserted by `email` ("partial upserts are not supported"), one bad input fails the batch.
 * - `batch/archive` answers 204; `batch/read` answers 207 with an OBJECT_NOT_FOUND error naming the
 *   missing ids.
 * - Associations v4: `POST /crm/v4/associations/{from}/{to}/batch/create` answers 201 with
 *   `LabelsBetweenObjectPair` results, or 207 with errors; `PUT /crm/v4/objects/{from}/{id}/
 *   associations/default/{to}/{id}` creates the default (unlabeled) type. HubSpot-defined type ids:
 *   contact→company 279 (Primary 1), company→contact 280 (Primary 2), deal→contact 3, contact→deal 4,
 *   deal→company 341 (Primary 5), company→deal 342 (Primary 6) ("Associations v4 › type ID values").
 *   Associations are two-way: the inverse type is visible from the other record.
 * - Rate limits: a rolling window (default 190 requests per 10 s, Professional/Enterprise private
 *   apps) and a daily limit (default 650,000, Professional) ("Increasing our API limits" changelog)
 *   that resets at midnight in the portal's time zone.
 *   Every answer carries `X-HubSpot-RateLimit-{Max,Remaining,Interval-Milliseconds,Daily,
 *   Daily-Remaining,Secondly,Secondly-Remaining}`; the secondly pair is informational only (no longer
 *   enforced). OAuth calls have no daily limit and no daily headers ("Rate limit headers will now
 *   appear for OAuth authenticated calls"). Over a limit → 429 `{status, message, errorType: "RATE_LIMIT", correlationId,
 *   policyName: "TEN_SECONDLY_ROLLING" | "DAILY", requestId}`. HubSpot does not document
 *   `Retry-After`, so it is only sent when the `retryAfter` option is on.
 *
 * Test controls (not HubSpot): `failNext` faults, `setRateLimit`, per-endpoint call counters and the
 * largest inputs-per-call seen, and inspection helpers (`records`, `find`, `associations`, `seed`).
 * Every lookup goes through a Map so a benchmark can push 100,000 records through without O(n²) work.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// ---------------------------------------------------------------------------------------------
// Public types and constants
// ---------------------------------------------------------------------------------------------

/** The property data types the Properties API documents. */
export type HubSpotPropertyType = 'string' | 'number' | 'bool' | 'date' | 'datetime' | 'enumeration' | 'phone_number';

/** One property of an object in the stand-in's schema. */
export interface HubSpotPropertySpec {
  readonly name: string;
  readonly type: HubSpotPropertyType;
  /** A unique-value property can be used as `idProperty` and refuses duplicate values. */
  readonly hasUniqueValue?: boolean;
  readonly label?: string;
  /** Allowed values of an `enumeration` property: a value, or a value with the label people see. */
  readonly options?: readonly (string | { readonly value: string; readonly label: string })[];
  /**
   * How the property is edited (default: from the type; `select` for an enumeration). An enumeration
   * with `checkbox` takes several options at once, separated by semicolons.
   */
  readonly fieldType?: 'select' | 'radio' | 'checkbox';
}

/** Object name (e.g. `contacts`, or a custom object such as `pets`) → its properties. */
export type HubSpotSchema = Readonly<Record<string, readonly HubSpotPropertySpec[]>>;

/** The portal's schema unless a test gives its own: the three standard objects Lockstep syncs to. */
export const DEFAULT_HUBSPOT_SCHEMA: HubSpotSchema = {
  companies: [
    { name: 'name', type: 'string', label: 'Company name' },
    { name: 'domain', type: 'string', label: 'Company domain name' },
    { name: 'external_id', type: 'string', hasUniqueValue: true, label: 'External ID' },
  ],
  contacts: [
    // HubSpot keeps one contact per email and upserts contacts by it, but lists it as not unique.
    { name: 'email', type: 'string', label: 'Email' },
    { name: 'firstname', type: 'string', label: 'First name' },
    { name: 'lastname', type: 'string', label: 'Last name' },
    { name: 'external_id', type: 'string', hasUniqueValue: true, label: 'External ID' },
  ],
  deals: [
    { name: 'dealname', type: 'string', label: 'Deal name' },
    { name: 'amount', type: 'number', label: 'Amount' },
    { name: 'external_id', type: 'string', hasUniqueValue: true, label: 'External ID' },
  ],
};

export type HubSpotAssociationCategory = 'HUBSPOT_DEFINED' | 'USER_DEFINED' | 'INTEGRATOR_DEFINED';

/** One association type between two object types, with the type id seen from the other side. */
export interface HubSpotAssociationType {
  readonly fromObjectType: string;
  readonly toObjectType: string;
  readonly typeId: number;
  readonly inverseTypeId: number;
  readonly category: HubSpotAssociationCategory;
  /** Label of a labelled type (e.g. `Primary`); unlabeled types have none. */
  readonly label?: string;
  /** The unlabeled type the `associations/default` endpoint creates. */
  readonly isDefault?: boolean;
}

/** HubSpot-defined types among contacts, companies and deals (Associations v4 type ID tables). */
export const DEFAULT_HUBSPOT_ASSOCIATION_TYPES: readonly HubSpotAssociationType[] = [
  { fromObjectType: 'contacts', toObjectType: 'companies', typeId: 279, inverseTypeId: 280, category: 'HUBSPOT_DEFINED', isDefault: true },
  { fromObjectType: 'contacts', toObjectType: 'companies', typeId: 1, inverseTypeId: 2, category: 'HUBSPOT_DEFINED', label: 'Primary' },
  { fromObjectType: 'deals', toObjectType: 'contacts', typeId: 3, inverseTypeId: 4, category: 'HUBSPOT_DEFINED', isDefault: true },
  { fromObjectType: 'deals', toObjectType: 'companies', typeId: 341, inverseTypeId: 342, category: 'HUBSPOT_DEFINED', isDefault: true },
  { fromObjectType: 'deals', toObjectType: 'companies', typeId: 5, inverseTypeId: 6, category: 'HUBSPOT_DEFINED', label: 'Primary' },
];

/** Names of the endpoints the stand-in counts calls for. */
export type HubSpotEndpoint =
  | 'properties.list'
  | 'objects.batchUpsert'
  | 'objects.batchArchive'
  | 'objects.batchRead'
  | 'associations.batchCreate'
  | 'associations.createDefault'
  | 'associations.batchRead'
  | 'associations.batchArchive'
  | 'associations.batchArchiveLabels'
  | 'oauth.token'
  | 'unknown';

const ENDPOINTS: readonly HubSpotEndpoint[] = [
  'properties.list',
  'objects.batchUpsert',
  'objects.batchArchive',
  'objects.batchRead',
  'associations.batchCreate',
  'associations.createDefault',
  'associations.batchRead',
  'associations.batchArchive',
  'associations.batchArchiveLabels',
  'oauth.token',
  'unknown',
];

/**
 * A fault served instead of (or on top of) the real answer. `mode` defaults to `respond`: answer
 * with `status` (default 503), `body`, `contentType` and `headers`. `truncate` answers a JSON body
 * cut in half, `reset` resets the connection, `hang` never answers. With `when: 'after'` the request
 * is processed first (its writes happen) and only its answer is replaced — a lost response.
 */
export interface HubSpotFault {
  readonly status?: number;
  readonly body?: string | object;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly mode?: 'respond' | 'truncate' | 'reset' | 'hang';
  readonly when?: 'before' | 'after';
  /** Only requests to this endpoint take the fault; others pass untouched. */
  readonly endpoint?: HubSpotEndpoint;
}

/** Ready-made faults for the failure modes a client must survive. */
export const HUBSPOT_FAULTS = {
  unavailable: { status: 503, contentType: 'text/plain', body: 'Service Unavailable' },
  // "Error handling" documents these two statuses and their waits, not their bodies.
  /** "423 Locked": records written in large volume in a short time are locked for 2 seconds. */
  locked: { status: 423, body: { status: 'error', message: 'Locked' } },
  /** "477 Migration in Progress": the portal is moving between data hosting locations; Retry-After in seconds. */
  migrating: { status: 477, body: { status: 'error', message: 'Migration in Progress' }, headers: { 'Retry-After': '3600' } },
  htmlOnSuccess: {
    status: 200,
    contentType: 'text/html; charset=utf-8',
    body: '<!DOCTYPE html><html><head><title>HubSpot</title></head><body>Temporarily unavailable</body></html>',
  },
  truncatedJson: { mode: 'truncate' },
  connectionReset: { mode: 'reset' },
  noAnswer: { mode: 'hang' },
} as const satisfies Record<string, HubSpotFault>;

export interface HubSpotOAuthApp {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly refreshToken: string;
  /** How long an access token lasts (default: 1800, HubSpot's 30 minutes). */
  readonly accessTokenSeconds?: number;
}

export interface HubSpotRateLimit {
  /** Requests allowed in the rolling window. */
  readonly max?: number;
  readonly intervalMs?: number;
  /** Requests allowed per (UTC) day. */
  readonly daily?: number;
}

export interface HubSpotStandInOptions {
  /** The private app token requests must carry. */
  readonly token?: string;
  readonly schema?: HubSpotSchema;
  /** Extra association types (e.g. for custom objects), added to the HubSpot-defined ones. */
  readonly associationTypes?: readonly HubSpotAssociationType[];
  readonly rateLimit?: HubSpotRateLimit;
  /** Send `Retry-After` (seconds) on 429s. HubSpot does not document one, so it is off by default. */
  readonly retryAfter?: boolean;
  /**
   * An OAuth app installed in the portal: `POST /oauth/v1/token` exchanges its refresh token for
   * access tokens (besides the private app's `token`, which keeps working).
   */
  readonly oauth?: HubSpotOAuthApp;
  /**
   * The scopes the app was granted (default: every scope). A call needing one it lacks gets 403
   * MISSING_SCOPES naming the scopes that would do, e.g. `crm.objects.companies.write`.
   */
  readonly scopes?: readonly string[];
  readonly portalId?: number;
  /** The portal's time zone (IANA), whose midnight resets the daily limit (default: UTC). */
  readonly timeZone?: string;
  /** Milliseconds since the epoch; tests of the rolling window pass a fake clock. */
  readonly now?: () => number;
}

/** A record as the inspection helpers show it: only the properties a client set. */
export interface HubSpotRecord {
  readonly id: string;
  readonly properties: Readonly<Record<string, string>>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface HubSpotAssociationView {
  readonly toObjectType: string;
  readonly toObjectId: string;
  readonly types: readonly { readonly associationCategory: HubSpotAssociationCategory; readonly associationTypeId: number }[];
}

export interface HubSpotStats {
  readonly calls: Readonly<Record<HubSpotEndpoint, number>>;
  /** The largest `inputs` array seen per endpoint, including ones refused for being too large. */
  readonly maxInputsPerCall: Readonly<Record<HubSpotEndpoint, number>>;
  readonly rateLimited: number;
  readonly faultsServed: number;
}

export interface HubSpotStandIn extends AsyncDisposable {
  /** Base URL, e.g. `http://127.0.0.1:54321`; paths are HubSpot's (`/crm/v3/...`). */
  readonly url: string;
  readonly token: string;
  close(): Promise<void>;
  /** All live records of an object type (name, singular or object type id). */
  records(objectType: string): HubSpotRecord[];
  /** The record whose `property` equals `value` (indexed for unique properties). */
  find(objectType: string, property: string, value: string): HubSpotRecord | undefined;
  /** Associations from one record, both the ones created from it and the inverse ones. */
  associations(fromObjectType: string, fromObjectId: string): HubSpotAssociationView[];
  /** Creates a record directly (validated like an API write); for arranging a test. */
  seed(objectType: string, properties: Readonly<Record<string, string>>): HubSpotRecord;
  /** The next `n` matching requests get `fault`. Queued faults are served in order. */
  failNext(n: number, fault: HubSpotFault): void;
  setRateLimit(limit: HubSpotRateLimit): void;
  stats(): HubSpotStats;
  resetStats(): void;
}

// ---------------------------------------------------------------------------------------------
// Constants from the documentation
// ---------------------------------------------------------------------------------------------

const DEFAULT_TOKEN = 'pat-na1-lockstep-test';
/** "Object API batch endpoints are limited to 100 inputs per request." */
const BATCH_LIMIT = 100;
/** Same limit assumed for associations batch create (HubSpot's exact figure is not documented). */
const ASSOCIATION_BATCH_LIMIT = 100;
/** Professional/Enterprise private apps: 190 per 10 s; Professional: 650,000 per day. */
const DEFAULT_WINDOW_MAX = 190;
const DEFAULT_WINDOW_MS = 10_000;
const DEFAULT_DAILY = 650_000;
const JSON_TYPE = 'application/json;charset=utf-8';
/** The label of HubSpot's primary company types (contact→company 1, deal→company 5, …). */
const PRIMARY_LABEL = 'Primary';

interface StandardObject {
  readonly objectTypeId: string;
  readonly singular: string;
  readonly groupName: string;
  /** Contacts name their last-modified property differently from the other objects. */
  readonly lastModified: string;
  /** Properties HubSpot itself defines, as opposed to custom ones such as `external_id`. */
  readonly hubspotDefined: readonly string[];
}

const STANDARD_OBJECTS: Readonly<Record<string, StandardObject>> = {
  contacts: {
    objectTypeId: '0-1',
    singular: 'contact',
    groupName: 'contactinformation',
    lastModified: 'lastmodifieddate',
    hubspotDefined: ['email', 'firstname', 'lastname'],
  },
  companies: {
    objectTypeId: '0-2',
    singular: 'company',
    groupName: 'companyinformation',
    lastModified: 'hs_lastmodifieddate',
    hubspotDefined: ['name', 'domain'],
  },
  deals: {
    objectTypeId: '0-3',
    singular: 'deal',
    groupName: 'dealinformation',
    lastModified: 'hs_lastmodifieddate',
    hubspotDefined: ['dealname', 'amount'],
  },
};

/** The two options of every booleancheckbox property. */
const BOOLEAN_OPTIONS = [
  { label: 'Yes', value: 'true', displayOrder: 0, hidden: false },
  { label: 'No', value: 'false', displayOrder: 1, hidden: false },
];

const FIELD_TYPES: Readonly<Record<HubSpotPropertyType, string>> = {
  string: 'text',
  number: 'number',
  bool: 'booleancheckbox',
  date: 'date',
  datetime: 'date',
  enumeration: 'select',
  phone_number: 'phonenumber',
};

// ---------------------------------------------------------------------------------------------
// Portal model
// ---------------------------------------------------------------------------------------------

interface PropertyModel extends HubSpotPropertySpec {
  readonly readOnly: boolean;
  readonly hubspotDefined: boolean;
}

interface ObjectModel {
  readonly name: string;
  readonly objectTypeId: string;
  /** Upper-case singular used in HubSpot's messages, e.g. `CONTACT`. */
  readonly messageName: string;
  readonly noun: string;
  readonly groupName: string;
  readonly lastModified: string;
  readonly properties: ReadonlyMap<string, PropertyModel>;
  readonly records: Map<string, StoredRecord>;
  /** Unique property → normalised value → record id. */
  readonly unique: Map<string, Map<string, string>>;
}

interface StoredRecord {
  readonly id: string;
  readonly values: Map<string, string>;
  readonly createdAt: number;
  updatedAt: number;
}

interface AssociationTypeModel extends HubSpotAssociationType {
  readonly from: ObjectModel;
  readonly to: ObjectModel;
}

/** Unique values are matched the way HubSpot matches them: emails without regard to case. */
function uniqueKey(property: string, value: string): string {
  return property === 'email' ? value.trim().toLowerCase() : value;
}

/** Contacts' email: unique in fact (one contact per email, upserts by it), though listed with hasUniqueValue false. */
function isContactEmail(object: string, property: string): boolean {
  return object === 'contacts' && property === 'email';
}

function capitalise(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function buildObject(name: string, specs: readonly HubSpotPropertySpec[], customIndex: number): ObjectModel {
  const standard = STANDARD_OBJECTS[name];
  const lastModified = standard?.lastModified ?? 'hs_lastmodifieddate';
  const properties = new Map<string, PropertyModel>();
  for (const spec of specs) {
    properties.set(spec.name, { ...spec, readOnly: false, hubspotDefined: standard?.hubspotDefined.includes(spec.name) ?? false });
  }
  // System properties every record has; clients may read but not write them.
  for (const system of ['hs_object_id', 'createdate', lastModified]) {
    properties.set(system, {
      name: system,
      type: system === 'hs_object_id' ? 'number' : 'datetime',
      readOnly: true,
      hubspotDefined: true,
    });
  }
  const singular = standard?.singular ?? name;
  return {
    name,
    objectTypeId: standard?.objectTypeId ?? `2-${100 + customIndex}`,
    messageName: singular.toUpperCase(),
    noun: capitalise(singular),
    groupName: standard?.groupName ?? `${singular}_information`,
    lastModified,
    properties,
    records: new Map(),
    unique: new Map(specs.filter((spec) => spec.hasUniqueValue || isContactEmail(name, spec.name)).map((spec) => [spec.name, new Map<string, string>()])),
  };
}

class Portal {
  private readonly objects = new Map<string, ObjectModel>();
  private readonly aliases = new Map<string, ObjectModel>();
  private readonly associationTypes: AssociationTypeModel[] = [];
  /** `type|id` → `type|id` → type ids, stored in both directions. */
  private readonly links = new Map<string, Map<string, Set<number>>>();
  private nextId = 1001;

  constructor(
    schema: HubSpotSchema,
    associationTypes: readonly HubSpotAssociationType[],
    readonly portalId: number,
  ) {
    let customIndex = 0;
    for (const [name, specs] of Object.entries(schema)) {
      const object = buildObject(name, specs, STANDARD_OBJECTS[name] ? 0 : customIndex++);
      this.objects.set(name, object);
      // A custom object is named by its type id, `p_{name}` or `p{portalId}_{name}`, no longer by its
      // base name ("Breaking Change: Removed Support for Referencing Custom Object Types by Base Name").
      const names = STANDARD_OBJECTS[name] ? [name, STANDARD_OBJECTS[name]?.singular] : [`p_${name}`, `p${portalId}_${name}`];
      for (const alias of [...names, object.objectTypeId]) {
        if (alias) this.aliases.set(alias.toLowerCase(), object);
      }
    }
    for (const type of associationTypes) this.addAssociationType(type);
  }

  /** Resolves a path segment: `contacts`, `contact`, `0-1`, a custom object's `p_name`, `p123_name` or `2-…` id. */
  object(segment: string): ObjectModel | undefined {
    return this.aliases.get(segment.toLowerCase());
  }

  /** An object by any name a path takes, or by its name in the schema (test options and inspection helpers). */
  requireObject(segment: string): ObjectModel {
    const object = this.objects.get(segment) ?? this.object(segment);
    if (!object) throw new Error(`the stand-in's schema has no object type "${segment}"`);
    return object;
  }

  newId(): string {
    return String(this.nextId++);
  }

  private addAssociationType(type: HubSpotAssociationType): void {
    const from = this.objects.get(type.fromObjectType) ?? this.object(type.fromObjectType);
    const to = this.objects.get(type.toObjectType) ?? this.object(type.toObjectType);
    // A type between objects this portal does not have is simply not offered.
    if (!from || !to) return;
    this.associationTypes.push({ ...type, from, to });
    this.associationTypes.push({
      ...type,
      fromObjectType: type.toObjectType,
      toObjectType: type.fromObjectType,
      typeId: type.inverseTypeId,
      inverseTypeId: type.typeId,
      from: to,
      to: from,
    });
  }

  associationType(from: ObjectModel, to: ObjectModel, typeId: number): AssociationTypeModel | undefined {
    return this.associationTypes.find((type) => type.from === from && type.to === to && type.typeId === typeId);
  }

  defaultAssociationType(from: ObjectModel, to: ObjectModel): AssociationTypeModel | undefined {
    return this.associationTypes.find((type) => type.from === from && type.to === to && type.isDefault);
  }

  /**
   * Links two records with a type and its inverse; idempotent, like HubSpot. A labelled type brings
   * the pair's unlabeled type along ("Unlabeled: an association type added when any … record is
   * associated"), and a Primary company moves: a record has one primary company ("the main company
   * that the other record is associated with"; "this API supports changing which company is
   * considered the primary"), the one it had before stays associated without the label.
   */
  associate(type: AssociationTypeModel, fromId: string, toId: string): void {
    if (type.label === PRIMARY_LABEL) this.dropOtherPrimary(type, fromId, toId);
    this.link(`${type.from.name}|${fromId}`, `${type.to.name}|${toId}`, type.typeId);
    this.link(`${type.to.name}|${toId}`, `${type.from.name}|${fromId}`, type.inverseTypeId);
    const unlabeled = type.label === undefined ? undefined : this.defaultAssociationType(type.from, type.to);
    if (unlabeled && unlabeled !== type) this.associate(unlabeled, fromId, toId);
  }

  /**
   * Removes association types between two records (both directions). Removing the unlabeled type
   * removes every type between them: "Deleting an unlabeled association will also delete all
   * labeled associations between those two objects."
   */
  dissociate(from: ObjectModel, fromId: string, to: ObjectModel, toId: string, types: readonly AssociationTypeModel[] | 'all'): void {
    const all = types === 'all' || types.some((type) => type.label === undefined);
    const forward = this.links.get(`${from.name}|${fromId}`)?.get(`${to.name}|${toId}`);
    const inverse = this.links.get(`${to.name}|${toId}`)?.get(`${from.name}|${fromId}`);
    for (const type of types === 'all' ? [] : types) {
      forward?.delete(type.typeId);
      inverse?.delete(type.inverseTypeId);
    }
    if (all || forward?.size === 0) this.links.get(`${from.name}|${fromId}`)?.delete(`${to.name}|${toId}`);
    if (all || inverse?.size === 0) this.links.get(`${to.name}|${toId}`)?.delete(`${from.name}|${fromId}`);
  }

  /** Takes the Primary label off the record's other companies before `type` gives it a new one. */
  private dropOtherPrimary(type: AssociationTypeModel, fromId: string, toId: string): void {
    // The record whose primary company this is, seen from the record (contact → company).
    const [record, recordId, primary] = type.to.name === 'companies' ? [type.from, fromId, type] : [type.to, toId, this.associationType(type.to, type.from, type.inverseTypeId)];
    if (!primary) return;
    const company = primary.to;
    const companyId = primary === type ? toId : fromId;
    for (const [key, typeIds] of this.links.get(`${record.name}|${recordId}`) ?? []) {
      const [name = '', id = ''] = key.split('|');
      if (name !== company.name || id === companyId || !typeIds.has(primary.typeId)) continue;
      this.dissociate(record, recordId, company, id, [primary]);
    }
  }

  private link(from: string, to: string, typeId: number): void {
    let targets = this.links.get(from);
    if (!targets) this.links.set(from, (targets = new Map()));
    let types = targets.get(to);
    if (!types) targets.set(to, (types = new Set()));
    types.add(typeId);
  }

  associationsOf(object: ObjectModel, id: string): HubSpotAssociationView[] {
    const targets = this.links.get(`${object.name}|${id}`);
    if (!targets) return [];
    return [...targets].map(([key, typeIds]) => {
      const [toName = '', toId = ''] = key.split('|');
      const to = this.requireObject(toName);
      return {
        toObjectType: toName,
        toObjectId: toId,
        types: [...typeIds].map((typeId) => ({
          associationCategory: this.associationType(object, to, typeId)?.category ?? 'HUBSPOT_DEFINED',
          associationTypeId: typeId,
        })),
      };
    });
  }

  /** Removes a record, its unique-index entries and every association touching it. */
  archive(object: ObjectModel, id: string): void {
    const record = object.records.get(id);
    if (!record) return;
    object.records.delete(id);
    for (const [property, index] of object.unique) {
      const value = record.values.get(property);
      if (value !== undefined) index.delete(uniqueKey(property, value));
    }
    const key = `${object.name}|${id}`;
    for (const other of this.links.get(key)?.keys() ?? []) this.links.get(other)?.delete(key);
    this.links.delete(key);
  }

  byUnique(object: ObjectModel, property: string, value: string): StoredRecord | undefined {
    const id = object.unique.get(property)?.get(uniqueKey(property, value));
    return id === undefined ? undefined : object.records.get(id);
  }

  /** Writes values onto a record (creating it when `existing` is undefined), keeping indexes right. */
  write(object: ObjectModel, existing: StoredRecord | undefined, values: ReadonlyMap<string, string | null>, now: number): StoredRecord {
    const record = existing ?? { id: this.newId(), values: new Map<string, string>(), createdAt: now, updatedAt: now };
    for (const [property, value] of values) {
      const index = object.unique.get(property);
      const old = record.values.get(property);
      if (index && old !== undefined) index.delete(uniqueKey(property, old));
      if (value === null) record.values.delete(property);
      else {
        record.values.set(property, value);
        index?.set(uniqueKey(property, value), record.id);
      }
    }
    record.updatedAt = now;
    object.records.set(record.id, record);
    return record;
  }
}

// ---------------------------------------------------------------------------------------------
// Rate limiting
// ---------------------------------------------------------------------------------------------

interface Admission {
  readonly policy?: 'TEN_SECONDLY_ROLLING' | 'DAILY';
  readonly retryAfterMs?: number;
}

/**
 * A rolling window (timestamps of admitted requests) plus a daily counter that resets at midnight
 * in the portal's time zone ("daily limits reset at midnight based on your time zone setting").
 */
class RateLimiter {
  private stamps: number[] = [];
  private head = 0;
  private day = '';
  private usedToday = 0;
  private readonly calendar: Intl.DateTimeFormat;

  constructor(
    private max: number,
    private intervalMs: number,
    private daily: number,
    timeZone: string,
  ) {
    this.calendar = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }

  configure(limit: HubSpotRateLimit): void {
    this.max = limit.max ?? this.max;
    this.intervalMs = limit.intervalMs ?? this.intervalMs;
    this.daily = limit.daily ?? this.daily;
  }

  /** Admits a request now, or says which limit refuses it; `daily`: the request counts toward the daily limit. */
  admit(now: number, daily: boolean): Admission {
    this.rollDay(now);
    if (daily && this.usedToday >= this.daily) return { policy: 'DAILY', retryAfterMs: this.untilMidnight(now) };
    this.prune(now);
    if (this.inWindow() >= this.max) {
      const oldest = this.stamps[this.head] ?? now;
      return { policy: 'TEN_SECONDLY_ROLLING', retryAfterMs: Math.max(0, oldest + this.intervalMs - now) };
    }
    this.stamps.push(now);
    if (daily) this.usedToday++;
    return {};
  }

  /** The rate-limit headers of an answer; `daily`: with the daily pair. */
  headers(now: number, daily: boolean): Record<string, string> {
    this.rollDay(now);
    this.prune(now);
    const secondly = Math.ceil((this.max * 1000) / this.intervalMs);
    let lastSecond = 0;
    for (let i = this.stamps.length - 1; i >= this.head && (this.stamps[i] ?? 0) > now - 1000; i--) lastSecond++;
    return {
      'X-HubSpot-RateLimit-Max': String(this.max),
      'X-HubSpot-RateLimit-Remaining': String(Math.max(0, this.max - this.inWindow())),
      'X-HubSpot-RateLimit-Interval-Milliseconds': String(this.intervalMs),
      ...(daily
        ? { 'X-HubSpot-RateLimit-Daily': String(this.daily), 'X-HubSpot-RateLimit-Daily-Remaining': String(Math.max(0, this.daily - this.usedToday)) }
        : {}),
      // Still sent by HubSpot with accurate data, but no longer enforced.
      'X-HubSpot-RateLimit-Secondly': String(secondly),
      'X-HubSpot-RateLimit-Secondly-Remaining': String(Math.max(0, secondly - lastSecond)),
    };
  }

  private inWindow(): number {
    return this.stamps.length - this.head;
  }

  /** Drops timestamps that left the window; compacts now and then so the array stays small. */
  private prune(now: number): void {
    while (this.head < this.stamps.length && (this.stamps[this.head] ?? 0) <= now - this.intervalMs) this.head++;
    if (this.head > 1024 && this.head * 2 > this.stamps.length) {
      this.stamps = this.stamps.slice(this.head);
      this.head = 0;
    }
  }

  private rollDay(now: number): void {
    const { day } = this.local(now);
    if (day !== this.day) {
      this.day = day;
      this.usedToday = 0;
    }
  }

  /** Milliseconds until the portal's next midnight (a DST change day is taken as 24 hours). */
  private untilMidnight(now: number): number {
    const { secondOfDay } = this.local(now);
    return (86_400 - secondOfDay) * 1000 - (((now % 1000) + 1000) % 1000);
  }

  /** The portal's calendar day (`YYYY-MM-DD`) and the second of that day at `now`. */
  private local(now: number): { day: string; secondOfDay: number } {
    const parts = Object.fromEntries(this.calendar.formatToParts(now).map((part) => [part.type, part.value]));
    return { day: `${parts.year}-${parts.month}-${parts.day}`, secondOfDay: Number(parts.hour) * 3600 + Number(parts.minute) * 60 + Number(parts.second) };
  }
}

// ---------------------------------------------------------------------------------------------
// Replies and errors
// ---------------------------------------------------------------------------------------------

interface Reply {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

interface ErrorDetail {
  readonly message: string;
  readonly code?: string;
  readonly in?: string;
  readonly context?: Record<string, string[]>;
}

/** Why one input of a batch failed; becomes a 400 body or an entry of a 207's `errors`. */
interface InputFailure {
  readonly category: string;
  readonly message: string;
  readonly context?: Record<string, string[]>;
  readonly errors?: readonly ErrorDetail[];
}

function errorReply(status: number, fields: { message: string; category?: string; errors?: readonly ErrorDetail[]; context?: Record<string, string[]> }): Reply {
  return {
    status,
    body: {
      status: 'error',
      message: fields.message,
      correlationId: randomUUID(),
      ...(fields.category ? { category: fields.category } : {}),
      ...(fields.errors ? { errors: fields.errors } : {}),
      ...(fields.context ? { context: fields.context } : {}),
    },
  };
}

function validationError(message: string, extra: { errors?: readonly ErrorDetail[]; context?: Record<string, string[]> } = {}): Reply {
  return errorReply(400, { message, category: 'VALIDATION_ERROR', ...extra });
}

/** HubSpot answers an unknown object type in the path with this 400 (observed; no category). */
function unknownObjectType(segment: string): Reply {
  return errorReply(400, { message: `Unable to infer object type from: ${segment}` });
}

function failureReply(failure: InputFailure): Reply {
  return errorReply(failure.category === 'CONFLICT' ? 409 : 400, failure);
}

/** A 207 entry: the failure plus the input's trace id, which is how a client matches it up. */
function multiStatusError(failure: InputFailure, traceId: string): Record<string, unknown> {
  return {
    status: 'error',
    category: failure.category,
    message: failure.message,
    context: { ...failure.context, objectWriteTraceId: [traceId] },
  };
}

// ---------------------------------------------------------------------------------------------
// Property validation
// ---------------------------------------------------------------------------------------------

interface PropertyProblem {
  readonly name: string;
  readonly error: string;
  readonly message: string;
}

type Normalised = { readonly value: string | null } | { readonly problem: PropertyProblem };

/**
 * The form HubSpot checks an email against ("How does HubSpot validate email addresses?"): an
 * address (RFC 2822) whose local part is not quoted and whose domain ends in a top-level domain
 * (IANA's are letters, or `xn--` and letters and digits for internationalised ones).
 */
const EMAIL = /^[^\s@"]+@[^\s@"]+\.(?:\p{L}{2,}|xn--[a-z0-9-]+)$/iu;
/**
 * Whitespace, or an invisible character, at either end: a value of any type but string that has it
 * is refused ("Enhanced Validations for Non-String Properties in HubSpot's CRMObject APIs", 2025).
 */
const EDGE_SPACE = /^[\s\u200B-\u200D\u2060]|[\s\u200B-\u200D\u2060]$/;
/** Single-line and multi-line text take at most 65,536 characters through the CRM ("Property field types in HubSpot"). */
const TEXT_LIMIT = 65_536;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/** Checks one value against its property and turns it into the string HubSpot stores ("" clears). */
function normaliseValue(property: PropertyModel, raw: unknown): Normalised {
  const problem = (error: string, message: string): Normalised => ({ problem: { name: property.name, error, message } });
  if (property.readOnly) return problem('READ_ONLY_VALUE', `Property "${property.name}" is read-only`);
  if (raw === null || raw === '') return { value: null };
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
    return problem('INVALID_VALUE', `${JSON.stringify(raw)} is not a valid value for property ${property.name}`);
  }
  const text = String(raw);
  if (property.type !== 'string' && EDGE_SPACE.test(text)) return problem('LEADING_TRAILING_WHITESPACE', `"${text}" includes leading or trailing whitespace.`);
  switch (property.type) {
    case 'number':
      return text.trim() !== '' && Number.isFinite(Number(text)) ? { value: text.trim() } : problem('INVALID_FLOAT', `${text} was not a valid number.`);
    case 'bool':
      return /^(true|false)$/i.test(text) ? { value: text.toLowerCase() } : problem('INVALID_BOOLEAN', `${text} was not a valid boolean.`);
    case 'date': {
      if (isDate(text)) return { value: text };
      // Epoch milliseconds off midnight get HubSpot's own wording.
      if (/^\d+$/.test(text)) return problem('INVALID_DATE', `${text} is at ${timeOfDay(Number(text))} UTC, not midnight!`);
      return problem('INVALID_DATE', `${text} was not a valid date.`);
    }
    case 'datetime':
      return isDateTime(text) ? { value: text } : problem('INVALID_DATETIME', `${text} was not a valid datetime.`);
    case 'enumeration': {
      // A multiple checkboxes property takes several options separated by semicolons.
      const chosen = property.fieldType === 'checkbox' ? text.split(';') : [text];
      const values = (property.options ?? []).map(optionValue);
      const wrong = chosen.find((option) => !values.includes(option));
      return wrong === undefined
        ? { value: text }
        : problem('INVALID_OPTION', `${wrong} was not one of the allowed options: [${values.join(', ')}]`);
    }
    default:
      if (text.length > TEXT_LIMIT) {
        // The limit is documented; the error HubSpot answers with is not, so its name and wording here are the stand-in's.
        return problem('INVALID_LENGTH', `Value for property ${property.name} is ${text.length} characters long, more than the limit of ${TEXT_LIMIT}`);
      }
      if (property.name === 'email' && !EMAIL.test(text.trim())) return problem('INVALID_EMAIL', `Email address ${text} is invalid`);
      return { value: text };
  }
}

/** An option's value, what the API takes (never its label). */
function optionValue(option: string | { readonly value: string }): string {
  return typeof option === 'string' ? option : option.value;
}

/** Date properties take midnight-UTC epoch milliseconds or `YYYY-MM-DD` ("Properties API", date formats). */
function isDate(text: string): boolean {
  if (DATE_ONLY.test(text)) return !Number.isNaN(Date.parse(`${text}T00:00:00Z`));
  return /^\d+$/.test(text) && Number(text) % 86_400_000 === 0;
}

/** ISO 8601 as HubSpot documents it for datetimes: `YYYY-MM-DDThh:mm:ss.sTZD`. */
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/;

/** Datetime properties take epoch milliseconds or ISO 8601 with a time zone designator; no other text. */
function isDateTime(text: string): boolean {
  if (/^\d+$/.test(text)) return true;
  return ISO_DATETIME.test(text) && !Number.isNaN(Date.parse(text));
}

/** `H:mm:ss.SSS` of an instant in UTC, as HubSpot writes it in its "not midnight" message. */
function timeOfDay(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${Number(iso.slice(11, 13))}${iso.slice(13, 23)}`;
}

function invalidProperties(problems: readonly PropertyProblem[], portalId: number): InputFailure {
  const listed = problems.map((p) => ({ isValid: false, message: p.message, error: p.error, name: p.name, localizedErrorMessage: p.message, portalId }));
  return {
    category: 'VALIDATION_ERROR',
    message: `Property values were not valid: ${JSON.stringify(listed)}`,
    errors: problems.map((p) => ({ message: p.message, code: p.error, context: { propertyName: [p.name] } })),
  };
}

function unknownProperty(name: string): PropertyProblem {
  return { name, error: 'PROPERTY_DOESNT_EXIST', message: `Property "${name}" does not exist` };
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An id field as HubSpot deserialises it: strings, and numbers coerced to strings. */
function idOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function missingFields(fields: readonly string[]): Reply {
  return validationError(`Some required fields were not set: [${fields.join(', ')}]`);
}

function requireInputs(body: unknown): unknown[] | Reply {
  if (!isObject(body) || !Array.isArray(body.inputs)) return missingFields(['inputs']);
  return body.inputs;
}

function tooManyInputs(count: number, limit: number): Reply {
  return validationError(`The maximum number of inputs supported in a batch request is ${limit}, but ${count} were provided.`, {
    context: { limit: [String(limit)], provided: [String(count)] },
  });
}

function duplicateIds(ids: readonly string[]): Reply {
  return validationError(`Duplicate IDs found in batch input: [${ids.join(', ')}]. IDs must be unique`, { context: { ids: [...ids] } });
}

function duplicatesIn(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const value of values) {
    if (seen.has(value)) repeated.add(value);
    seen.add(value);
  }
  return [...repeated];
}

/** An `idProperty` must be a property of the object with unique values. */
function checkIdProperty(object: ObjectModel, name: string): Reply | undefined {
  const property = object.properties.get(name);
  if (!property) return validationError(`Property "${name}" does not exist`, { errors: [{ message: `Property "${name}" does not exist`, code: 'PROPERTY_DOESNT_EXIST', context: { propertyName: [name] } }] });
  if (!object.unique.has(name)) return validationError(`Unable to perform update/upsert by non-unique ${object.objectTypeId} property`);
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

interface Context {
  readonly portal: Portal;
  readonly now: () => number;
  readonly noteInputs: (count: number) => void;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The record as the API shows it: the chosen properties plus the system ones. */
function present(object: ObjectModel, record: StoredRecord, only?: ReadonlySet<string>): Json {
  const properties: Record<string, string> = {
    hs_object_id: record.id,
    createdate: iso(record.createdAt),
    [object.lastModified]: iso(record.updatedAt),
  };
  for (const [name, value] of record.values) if (!only || only.has(name)) properties[name] = value;
  return { id: record.id, properties, createdAt: iso(record.createdAt), updatedAt: iso(record.updatedAt), archived: false };
}

function listProperties(ctx: Context, objectSegment: string): Reply {
  const object = ctx.portal.object(objectSegment);
  if (!object) return unknownObjectType(objectSegment);
  const stamp = iso(0);
  const results = [...object.properties.values()].map((property, displayOrder) => ({
    updatedAt: stamp,
    createdAt: stamp,
    name: property.name,
    label: property.label ?? property.name,
    type: property.type,
    fieldType: property.fieldType ?? FIELD_TYPES[property.type],
    description: '',
    groupName: object.groupName,
    options:
      property.type === 'bool'
        ? BOOLEAN_OPTIONS
        : (property.options ?? []).map((option, order) => ({ label: typeof option === 'string' ? option : option.label, value: optionValue(option), displayOrder: order, hidden: false })),
    displayOrder,
    calculated: false,
    externalOptions: false,
    hasUniqueValue: property.hasUniqueValue ?? false,
    hidden: false,
    hubspotDefined: property.hubspotDefined,
    modificationMetadata: { archivable: !property.hubspotDefined, readOnlyDefinition: property.hubspotDefined, readOnlyValue: property.readOnly },
    formField: !property.readOnly,
    dataSensitivity: 'non_sensitive',
  }));
  return { status: 200, body: { results } };
}

interface UpsertInput {
  readonly idProperty: string;
  readonly id: string;
  readonly properties: Json;
  readonly traceId?: string;
}

interface UpsertPlan {
  readonly input: UpsertInput;
  readonly existing?: StoredRecord;
  readonly values: ReadonlyMap<string, string | null>;
}

/** Shape checks that refuse the whole request, as opposed to one input's bad values. */
function parseUpsertInputs(object: ObjectModel, raw: readonly unknown[]): UpsertInput[] | Reply {
  const inputs: UpsertInput[] = [];
  for (const item of raw) {
    if (!isObject(item)) return missingFields(['id', 'properties']);
    const id = idOf(item.id);
    const missing = [!id && 'id', !isObject(item.properties) && 'properties', typeof item.idProperty !== 'string' && 'idProperty'].filter(
      (field): field is string => typeof field === 'string',
    );
    if (missing.length > 0 || !id) return missingFields(missing);
    const idProperty = item.idProperty as string;
    const refused = checkIdProperty(object, idProperty);
    if (refused) return refused;
    const traceId = typeof item.objectWriteTraceId === 'string' && item.objectWriteTraceId !== '' ? item.objectWriteTraceId : undefined;
    inputs.push({ idProperty, id, properties: item.properties as Json, traceId });
  }
  const repeated = duplicatesIn(inputs.map((input) => `${input.idProperty}\u0000${uniqueKey(input.idProperty, input.id)}`));
  if (repeated.length > 0) return duplicateIds(repeated.map((key) => key.split('\u0000')[1] ?? key));
  return inputs;
}

/**
 * Validates one input and decides what it will write. `claims` holds unique values already taken
 * by earlier inputs of the same batch, so two inputs cannot both claim one value.
 */
function planUpsert(ctx: Context, object: ObjectModel, input: UpsertInput, index: number, claims: Map<string, string>): UpsertPlan | InputFailure {
  const problems: PropertyProblem[] = [];
  const values = new Map<string, string | null>();
  for (const [name, raw] of Object.entries(input.properties)) {
    const property = object.properties.get(name);
    if (!property) {
      problems.push(unknownProperty(name));
      continue;
    }
    const normalised = normaliseValue(property, raw);
    if ('problem' in normalised) problems.push(normalised.problem);
    else values.set(name, normalised.value);
  }
  const idProperty = object.properties.get(input.idProperty);
  const idValue = idProperty ? normaliseValue(idProperty, input.id) : undefined;
  if (idValue && 'problem' in idValue) problems.push(idValue.problem);
  if (problems.length > 0) return invalidProperties(problems, ctx.portal.portalId);

  const existing = ctx.portal.byUnique(object, input.idProperty, input.id);
  if (!existing && !values.has(input.idProperty)) values.set(input.idProperty, input.id);
  const owner = existing?.id ?? `new#${index}`;
  for (const [name, value] of values) {
    if (value === null || !object.unique.has(name)) continue;
    const key = `${name}\u0000${uniqueKey(name, value)}`;
    const taken = ctx.portal.byUnique(object, name, value)?.id ?? claims.get(key);
    if (taken !== undefined && taken !== owner) {
      const existingId = taken.startsWith('new#') ? [] : [taken];
      return {
        category: 'CONFLICT',
        message: existingId.length > 0 ? `${object.noun} already exists. Existing ID: ${taken}` : `${object.noun} with ${name} ${value} is already in this batch`,
        context: { existingId },
      };
    }
    claims.set(key, owner);
  }
  return { input, existing, values };
}

function batchUpsert(ctx: Context, objectSegment: string, body: unknown): Reply {
  const object = ctx.portal.object(objectSegment);
  if (!object) return unknownObjectType(objectSegment);
  const raw = requireInputs(body);
  if (!Array.isArray(raw)) return raw;
  ctx.noteInputs(raw.length);
  if (raw.length > BATCH_LIMIT) return tooManyInputs(raw.length, BATCH_LIMIT);
  const inputs = parseUpsertInputs(object, raw);
  if (!Array.isArray(inputs)) return inputs;

  const startedAt = iso(ctx.now());
  // Multi-status needs a unique trace id on every input (a repeated one could not say which input
  // failed); contacts upserted by email never get it.
  const traced = inputs.every((input) => input.traceId) && duplicatesIn(inputs.map((input) => input.traceId ?? '')).length === 0;
  const multiStatus = traced && !(object.name === 'contacts' && inputs.some((input) => input.idProperty === 'email'));
  const claims = new Map<string, string>();
  const plans: UpsertPlan[] = [];
  const errors: Record<string, unknown>[] = [];
  for (const [index, input] of inputs.entries()) {
    const plan = planUpsert(ctx, object, input, index, claims);
    if ('input' in plan) plans.push(plan);
    else if (multiStatus && input.traceId) errors.push(multiStatusError(plan, input.traceId));
    else return failureReply(plan);
  }

  const now = ctx.now();
  const results = plans.map((plan) => {
    const record = ctx.portal.write(object, plan.existing, plan.values, now);
    return { ...present(object, record), new: !plan.existing, ...(plan.input.traceId ? { objectWriteTraceId: plan.input.traceId } : {}) };
  });
  const completedAt = iso(ctx.now());
  if (errors.length === 0) return { status: 200, body: { status: 'COMPLETE', results, startedAt, completedAt } };
  return { status: 207, body: { status: 'COMPLETE', results, numErrors: errors.length, errors, startedAt, completedAt } };
}

function batchArchive(ctx: Context, objectSegment: string, body: unknown): Reply {
  const object = ctx.portal.object(objectSegment);
  if (!object) return unknownObjectType(objectSegment);
  const raw = requireInputs(body);
  if (!Array.isArray(raw)) return raw;
  ctx.noteInputs(raw.length);
  if (raw.length > BATCH_LIMIT) return tooManyInputs(raw.length, BATCH_LIMIT);
  const ids = raw.map((item) => (isObject(item) ? idOf(item.id) : undefined));
  if (ids.some((id) => id === undefined)) return missingFields(['id']);
  // Archiving answers 204 whether or not a record existed.
  for (const id of ids) if (id !== undefined) ctx.portal.archive(object, id);
  return { status: 204 };
}

function batchRead(ctx: Context, objectSegment: string, body: unknown): Reply {
  const object = ctx.portal.object(objectSegment);
  if (!object) return unknownObjectType(objectSegment);
  const raw = requireInputs(body);
  if (!Array.isArray(raw)) return raw;
  ctx.noteInputs(raw.length);
  if (raw.length > BATCH_LIMIT) return tooManyInputs(raw.length, BATCH_LIMIT);
  const request = body as Json;
  const idProperty = typeof request.idProperty === 'string' ? request.idProperty : undefined;
  if (idProperty) {
    const refused = checkIdProperty(object, idProperty);
    if (refused) return refused;
  }
  const ids = raw.map((item) => (isObject(item) ? idOf(item.id) : undefined));
  if (ids.some((id) => id === undefined)) return missingFields(['id']);
  const wanted = Array.isArray(request.properties) ? new Set(request.properties.filter((p): p is string => typeof p === 'string')) : undefined;

  const startedAt = iso(ctx.now());
  const results: Json[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  for (const id of ids as string[]) {
    const record = idProperty ? ctx.portal.byUnique(object, idProperty, id) : object.records.get(id);
    if (!record) missing.push(id);
    else if (!seen.has(record.id)) {
      seen.add(record.id);
      results.push(present(object, record, wanted));
    }
  }
  const completedAt = iso(ctx.now());
  if (missing.length === 0) return { status: 200, body: { status: 'COMPLETE', results, startedAt, completedAt } };
  const error = {
    status: 'error',
    category: 'OBJECT_NOT_FOUND',
    message: `Could not get some ${object.messageName} objects, they may be deleted or not exist. Check that ids are valid.`,
    context: { ids: missing },
  };
  return { status: 207, body: { status: 'COMPLETE', results, numErrors: 1, errors: [error], startedAt, completedAt } };
}

interface AssociationInput {
  readonly fromId: string;
  readonly toId: string;
  readonly types: readonly AssociationTypeModel[];
}

function parseAssociationInputs(ctx: Context, from: ObjectModel, to: ObjectModel, raw: readonly unknown[]): AssociationInput[] | Reply {
  const inputs: AssociationInput[] = [];
  for (const item of raw) {
    const fromId = isObject(item) && isObject(item.from) ? idOf(item.from.id) : undefined;
    const toId = isObject(item) && isObject(item.to) ? idOf(item.to.id) : undefined;
    const rawTypes = isObject(item) && Array.isArray(item.types) ? item.types : undefined;
    if (!fromId || !toId || !rawTypes || rawTypes.length === 0) return missingFields(['from', 'to', 'types']);
    const types: AssociationTypeModel[] = [];
    for (const spec of rawTypes) {
      const typeId = isObject(spec) ? spec.associationTypeId : undefined;
      const category = isObject(spec) ? spec.associationCategory : undefined;
      const type = typeof typeId === 'number' ? ctx.portal.associationType(from, to, typeId) : undefined;
      if (!type || type.category !== category) {
        return validationError(`${String(category)} association type ${String(typeId)} is not valid from ${from.name} to ${to.name}`, {
          context: { associationTypeId: [String(typeId)] },
        });
      }
      types.push(type);
    }
    inputs.push({ fromId, toId, types });
  }
  return inputs;
}

/**
 * What every v4 association batch checks first: both object types known, an `inputs` array, and
 * at most ASSOCIATION_BATCH_LIMIT of them; the refusal HubSpot answers otherwise.
 */
function associationBatch(ctx: Context, fromSegment: string, toSegment: string, body: unknown): { from: ObjectModel; to: ObjectModel; raw: unknown[] } | Reply {
  const from = ctx.portal.object(fromSegment);
  if (!from) return unknownObjectType(fromSegment);
  const to = ctx.portal.object(toSegment);
  if (!to) return unknownObjectType(toSegment);
  const raw = requireInputs(body);
  if (!Array.isArray(raw)) return raw;
  ctx.noteInputs(raw.length);
  if (raw.length > ASSOCIATION_BATCH_LIMIT) return tooManyInputs(raw.length, ASSOCIATION_BATCH_LIMIT);
  return { from, to, raw };
}

function batchCreateAssociations(ctx: Context, fromSegment: string, toSegment: string, body: unknown): Reply {
  const batch = associationBatch(ctx, fromSegment, toSegment, body);
  if (!('raw' in batch)) return batch;
  const { from, to, raw } = batch;
  const inputs = parseAssociationInputs(ctx, from, to, raw);
  if (!Array.isArray(inputs)) return inputs;

  const startedAt = iso(ctx.now());
  const results: Json[] = [];
  const errors: Json[] = [];
  for (const input of inputs) {
    const failure = missingEndpoint(from, input.fromId, 'fromObjectId') ?? missingEndpoint(to, input.toId, 'toObjectId');
    if (failure) {
      errors.push({ status: 'error', ...failure });
      continue;
    }
    for (const type of input.types) ctx.portal.associate(type, input.fromId, input.toId);
    results.push({
      fromObjectTypeId: from.objectTypeId,
      fromObjectId: input.fromId,
      toObjectTypeId: to.objectTypeId,
      toObjectId: input.toId,
      labels: input.types.flatMap((type) => (type.label ? [type.label] : [])),
    });
  }
  const completedAt = iso(ctx.now());
  if (errors.length === 0) return { status: 201, body: { status: 'COMPLETE', results, startedAt, completedAt } };
  return { status: 207, body: { status: 'COMPLETE', results, numErrors: errors.length, errors, startedAt, completedAt } };
}

/**
 * `POST /crm/v4/associations/{from}/{to}/batch/read` (at most 100 ids, "Batch read limit for HubSpot
 * associations API"): per id, the records of `to` it is associated with and every type between them
 * (`{category, typeId, label}`, the unlabeled type with `label: null`). Ids with no association of
 * that object are left out of `results`.
 */
function batchReadAssociations(ctx: Context, fromSegment: string, toSegment: string, body: unknown): Reply {
  const batch = associationBatch(ctx, fromSegment, toSegment, body);
  if (!('raw' in batch)) return batch;
  const { from, to, raw } = batch;
  const ids: string[] = [];
  for (const item of raw) {
    const id = isObject(item) ? idOf(item.id) : undefined;
    if (!id) return missingFields(['id']);
    ids.push(id);
  }
  const startedAt = iso(ctx.now());
  const results: Json[] = [];
  for (const id of ids) {
    const linked = ctx.portal.associationsOf(from, id).filter((view) => view.toObjectType === to.name);
    if (linked.length === 0) continue;
    results.push({
      from: { id },
      to: linked.map((view) => ({
        toObjectId: Number(view.toObjectId),
        associationTypes: view.types.map((type) => ({
          category: type.associationCategory,
          typeId: type.associationTypeId,
          label: ctx.portal.associationType(from, to, type.associationTypeId)?.label ?? null,
        })),
      })),
    });
  }
  return { status: 200, body: { status: 'COMPLETE', results, startedAt, completedAt: iso(ctx.now()) } };
}

/**
 * `POST /crm/v4/associations/{from}/{to}/batch/archive` (`inputs: [{from: {id}, to: [{id}]}]`)
 * removes every association between each pair; `…/batch/labels/archive` (`inputs: [{from: {id},
 * to: {id}, types}]`) removes the types given, and everything between the pair when one of them is
 * the unlabeled type. Both answer 204 with no body; a pair that is not associated is left as it is.
 */
function batchArchiveAssociations(ctx: Context, fromSegment: string, toSegment: string, body: unknown, labels: boolean): Reply {
  const batch = associationBatch(ctx, fromSegment, toSegment, body);
  if (!('raw' in batch)) return batch;
  const { from, to, raw } = batch;
  if (labels) {
    const inputs = parseAssociationInputs(ctx, from, to, raw);
    if (!Array.isArray(inputs)) return inputs;
    for (const input of inputs) ctx.portal.dissociate(from, input.fromId, to, input.toId, input.types);
    return { status: 204 };
  }
  const pairs: Array<{ fromId: string; toIds: string[] }> = [];
  for (const item of raw) {
    const fromId = isObject(item) && isObject(item.from) ? idOf(item.from.id) : undefined;
    const targets = isObject(item) && Array.isArray(item.to) ? item.to.map((target) => (isObject(target) ? idOf(target.id) : undefined)) : undefined;
    if (!fromId || !targets || targets.some((id) => id === undefined)) return missingFields(['from', 'to']);
    pairs.push({ fromId, toIds: targets as string[] });
  }
  for (const { fromId, toIds } of pairs) for (const toId of toIds) ctx.portal.dissociate(from, fromId, to, toId, 'all');
  return { status: 204 };
}

function missingEndpoint(object: ObjectModel, id: string, field: string): InputFailure | undefined {
  if (object.records.has(id)) return undefined;
  return { category: 'OBJECT_NOT_FOUND', message: `No ${object.messageName} with id ${id} exists`, context: { [field]: [id] } };
}

function createDefaultAssociation(ctx: Context, params: readonly string[]): Reply {
  const [fromSegment = '', fromId = '', toSegment = '', toId = ''] = params;
  const from = ctx.portal.object(fromSegment);
  if (!from) return unknownObjectType(fromSegment);
  const to = ctx.portal.object(toSegment);
  if (!to) return unknownObjectType(toSegment);
  const type = ctx.portal.defaultAssociationType(from, to);
  if (!type) return validationError(`There is no default association type from ${from.name} to ${to.name}`);
  const failure = missingEndpoint(from, fromId, 'fromObjectId') ?? missingEndpoint(to, toId, 'toObjectId');
  if (failure) return errorReply(404, failure);
  const startedAt = iso(ctx.now());
  ctx.portal.associate(type, fromId, toId);
  const spec = (typeId: number) => ({ associationCategory: type.category, associationTypeId: typeId });
  const results = [
    { from: { id: fromId }, to: { id: toId }, associationSpec: spec(type.typeId) },
    { from: { id: toId }, to: { id: fromId }, associationSpec: spec(type.inverseTypeId) },
  ];
  return { status: 200, body: { status: 'COMPLETE', results, startedAt, completedAt: iso(ctx.now()) } };
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly endpoint: HubSpotEndpoint;
  readonly handle: (ctx: Context, params: readonly string[], body: unknown) => Reply;
}

const ROUTES: readonly Route[] = [
  // Answered before authentication (see answer()); the handler here is never reached.
  { method: 'POST', pattern: /^\/oauth\/v1\/token$/, endpoint: 'oauth.token', handle: () => ({ status: 500 }) },
  { method: 'GET', pattern: /^\/crm\/v3\/properties\/([^/]+)\/?$/, endpoint: 'properties.list', handle: (ctx, [type = '']) => listProperties(ctx, type) },
  { method: 'POST', pattern: /^\/crm\/v3\/objects\/([^/]+)\/batch\/upsert$/, endpoint: 'objects.batchUpsert', handle: (ctx, [type = ''], body) => batchUpsert(ctx, type, body) },
  { method: 'POST', pattern: /^\/crm\/v3\/objects\/([^/]+)\/batch\/archive$/, endpoint: 'objects.batchArchive', handle: (ctx, [type = ''], body) => batchArchive(ctx, type, body) },
  { method: 'POST', pattern: /^\/crm\/v3\/objects\/([^/]+)\/batch\/read$/, endpoint: 'objects.batchRead', handle: (ctx, [type = ''], body) => batchRead(ctx, type, body) },
  {
    method: 'POST',
    pattern: /^\/crm\/v4\/associations\/([^/]+)\/([^/]+)\/batch\/create$/,
    endpoint: 'associations.batchCreate',
    handle: (ctx, [from = '', to = ''], body) => batchCreateAssociations(ctx, from, to, body),
  },
  {
    method: 'POST',
    pattern: /^\/crm\/v4\/associations\/([^/]+)\/([^/]+)\/batch\/read$/,
    endpoint: 'associations.batchRead',
    handle: (ctx, [from = '', to = ''], body) => batchReadAssociations(ctx, from, to, body),
  },
  {
    method: 'POST',
    pattern: /^\/crm\/v4\/associations\/([^/]+)\/([^/]+)\/batch\/archive$/,
    endpoint: 'associations.batchArchive',
    handle: (ctx, [from = '', to = ''], body) => batchArchiveAssociations(ctx, from, to, body, false),
  },
  {
    method: 'POST',
    pattern: /^\/crm\/v4\/associations\/([^/]+)\/([^/]+)\/batch\/labels\/archive$/,
    endpoint: 'associations.batchArchiveLabels',
    handle: (ctx, [from = '', to = ''], body) => batchArchiveAssociations(ctx, from, to, body, true),
  },
  {
    method: 'PUT',
    pattern: /^\/crm\/v4\/objects\/([^/]+)\/([^/]+)\/associations\/default\/([^/]+)\/([^/]+)$/,
    endpoint: 'associations.createDefault',
    handle: (ctx, params) => createDefaultAssociation(ctx, params),
  },
];

interface Matched {
  readonly route?: Route;
  readonly params: readonly string[];
  readonly endpoint: HubSpotEndpoint;
  /** The path exists but not for this method. */
  readonly wrongMethod: boolean;
}

function match(method: string, path: string): Matched {
  let wrongMethod = false;
  for (const route of ROUTES) {
    const found = route.pattern.exec(path);
    if (!found) continue;
    if (route.method !== method) {
      wrongMethod = true;
      continue;
    }
    return { route, params: found.slice(1).map((part) => decodeURIComponent(part)), endpoint: route.endpoint, wrongMethod: false };
  }
  return { params: [], endpoint: 'unknown', wrongMethod };
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

class FaultQueue {
  private queue: { remaining: number; fault: HubSpotFault }[] = [];

  add(n: number, fault: HubSpotFault): void {
    if (n > 0) this.queue.push({ remaining: n, fault });
  }

  /** The first queued fault that applies to this endpoint, used up by one. */
  take(endpoint: HubSpotEndpoint): HubSpotFault | undefined {
    const entry = this.queue.find((candidate) => !candidate.fault.endpoint || candidate.fault.endpoint === endpoint);
    if (!entry) return undefined;
    entry.remaining--;
    if (entry.remaining <= 0) this.queue = this.queue.filter((candidate) => candidate !== entry);
    return entry.fault;
  }
}

function serialise(body: unknown): string {
  return typeof body === 'string' ? body : JSON.stringify(body);
}

/** Serves a fault. `real` is the answer the request would have had (faults served 'after'). */
function serveFault(req: IncomingMessage, res: ServerResponse, fault: HubSpotFault, real?: Reply): void {
  switch (fault.mode ?? 'respond') {
    case 'reset':
      // A TCP reset rather than a clean close: what a dropped load balancer connection looks like.
      req.socket.resetAndDestroy();
      return;
    case 'hang':
      // Never answered; close() destroys the socket.
      return;
    case 'truncate': {
      const full = fault.body !== undefined ? serialise(fault.body) : real?.body !== undefined ? serialise(real.body) : '{"status":"COMPLETE","results":[{"id":"1001","properties":{}}]}';
      const cut = full.slice(0, Math.max(1, Math.floor(full.length / 2)));
      res.writeHead(fault.status ?? real?.status ?? 200, { 'Content-Type': fault.contentType ?? JSON_TYPE, ...fault.headers });
      res.end(cut);
      return;
    }
    default: {
      const body = fault.body === undefined ? '' : serialise(fault.body);
      const contentType = fault.contentType ?? (typeof fault.body === 'object' ? JSON_TYPE : 'text/plain');
      res.writeHead(fault.status ?? 503, { 'Content-Type': contentType, ...fault.headers });
      res.end(body);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

function emptyCounts(): Record<HubSpotEndpoint, number> {
  return Object.fromEntries(ENDPOINTS.map((endpoint) => [endpoint, 0])) as Record<HubSpotEndpoint, number>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Parses a JSON body the way HubSpot refuses a bad one: 400 "Invalid input JSON …". */
function parseBody(method: string, req: IncomingMessage, raw: string): { body: unknown } | Reply {
  if (method === 'GET' || method === 'DELETE') return { body: undefined };
  if (raw.trim() === '') {
    // The PUT default-association call has no body; every POST here needs one.
    return method === 'PUT' ? { body: undefined } : validationError('Invalid JSON input: a request body was expected, but none found');
  }
  const contentType = req.headers['content-type'] ?? '';
  if (!contentType.toLowerCase().startsWith('application/json')) {
    return errorReply(415, { message: `Content type '${contentType || 'none'}' not supported`, category: 'VALIDATION_ERROR' });
  }
  try {
    return { body: JSON.parse(raw) as unknown };
  } catch (error) {
    return validationError(`Invalid input JSON on line 1, column 1: ${(error as Error).message}`);
  }
}

function send(res: ServerResponse, reply: Reply, extraHeaders: Record<string, string>): void {
  const headers: Record<string, string> = { ...extraHeaders, ...reply.headers };
  if (reply.body === undefined) {
    res.writeHead(reply.status, headers);
    res.end();
    return;
  }
  const text = serialise(reply.body);
  res.writeHead(reply.status, { ...headers, 'Content-Type': JSON_TYPE, 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function rateLimitedReply(policy: 'TEN_SECONDLY_ROLLING' | 'DAILY'): Reply {
  return {
    status: 429,
    body: {
      status: 'error',
      message: policy === 'DAILY' ? 'You have reached your daily limit.' : 'You have reached your ten_secondly_rolling limit.',
      errorType: 'RATE_LIMIT',
      correlationId: randomUUID(),
      policyName: policy,
      requestId: randomUUID(),
    },
  };
}

/** "The OAuth token used to make this call expired 5 minute(s) ago." (401 EXPIRED_AUTHENTICATION) */
function expiredToken(expiredAt: number, now: number): Reply {
  const seconds = Math.max(0, Math.floor((now - expiredAt) / 1000));
  const [amount, unit] =
    seconds < 60 ? [seconds, 'second'] : seconds < 3600 ? [Math.floor(seconds / 60), 'minute'] : seconds < 86_400 ? [Math.floor(seconds / 3600), 'hour'] : [Math.floor(seconds / 86_400), 'day'];
  return errorReply(401, {
    message: `The OAuth token used to make this call expired ${amount} ${unit}(s) ago.`,
    category: 'EXPIRED_AUTHENTICATION',
    context: { 'expire time': [iso(expiredAt)] },
  });
}

/** A token endpoint error: `{status: "BAD_REFRESH_TOKEN", message}` with 400 (no `category`). */
function tokenError(status: string, message: string): Reply {
  return { status: 400, body: { status, message, correlationId: randomUUID() } };
}

/**
 * `POST /oauth/v1/token` with `grant_type=refresh_token` (form-encoded): a new access token for the
 * installed app's refresh token, `{token_type, refresh_token, access_token, expires_in}`. The
 * authorization-code grant needs a browser, so this stand-in has none.
 */
function issueToken(req: IncomingMessage, raw: string, app: HubSpotOAuthApp | undefined, issue: () => { accessToken: string; seconds: number }): Reply {
  const contentType = (req.headers['content-type'] ?? '').toLowerCase();
  if (!contentType.startsWith('application/x-www-form-urlencoded')) {
    return errorReply(415, { message: `Content type '${contentType || 'none'}' not supported`, category: 'VALIDATION_ERROR' });
  }
  const form = new URLSearchParams(raw);
  if (form.get('grant_type') !== 'refresh_token') return tokenError('BAD_GRANT_TYPE', 'missing or unknown grant type');
  if (!app || form.get('client_id') !== app.clientId) return tokenError('BAD_CLIENT_ID', 'missing or unknown client id');
  if (form.get('client_secret') !== app.clientSecret) return tokenError('BAD_CLIENT_SECRET', 'missing or invalid client secret');
  if (form.get('refresh_token') !== app.refreshToken) return tokenError('BAD_REFRESH_TOKEN', 'missing or invalid refresh token');
  const { accessToken, seconds } = issue();
  return { status: 200, body: { token_type: 'bearer', refresh_token: app.refreshToken, access_token: accessToken, expires_in: seconds } };
}

/**
 * The scopes of which a call needs one: reading an object's properties takes its objects or schemas
 * read scope, reading records its objects read scope, writing records or their associations its
 * write scope. Custom objects share `crm.objects.custom.*`. None for an object the portal lacks.
 */
function requiredScopes(portal: Portal, endpoint: HubSpotEndpoint, params: readonly string[]): string[] {
  const object = portal.object(params[0] ?? '');
  if (!object) return [];
  const name = STANDARD_OBJECTS[object.name] ? object.name : 'custom';
  switch (endpoint) {
    case 'properties.list':
      return [`crm.objects.${name}.read`, `crm.schemas.${name}.read`];
    case 'objects.batchRead':
    case 'associations.batchRead':
      return [`crm.objects.${name}.read`];
    case 'objects.batchUpsert':
    case 'objects.batchArchive':
    case 'associations.batchCreate':
    case 'associations.createDefault':
    case 'associations.batchArchive':
    case 'associations.batchArchiveLabels':
      return [`crm.objects.${name}.write`];
    default:
      return [];
  }
}

/** 403 MISSING_SCOPES, as HubSpot answers a token without the scope a call needs. */
function missingScopes(scopes: readonly string[]): Reply {
  return {
    status: 403,
    body: {
      status: 'error',
      message: "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
      correlationId: randomUUID(),
      errors: [{ message: 'One or more of the following scopes are required.', context: { requiredGranularScopes: [...scopes] } }],
      links: { scopes: 'https://developers.hubspot.com/scopes' },
      category: 'MISSING_SCOPES',
    },
  };
}

function unauthenticated(): Reply {
  return {
    ...errorReply(401, {
      message: 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview',
      category: 'INVALID_AUTHENTICATION',
    }),
    headers: { 'X-HubSpot-Auth-Failure': '401 Unauthorized' },
  };
}

/**
 * Starts a HubSpot stand-in on a random port of 127.0.0.1 with an empty portal.
 * Dispose it (`await using`) or call `close()` when done.
 */
export async function startHubSpotStandIn(options: HubSpotStandInOptions = {}): Promise<HubSpotStandIn> {
  const token = options.token ?? DEFAULT_TOKEN;
  const now = options.now ?? Date.now;
  const portal = new Portal(options.schema ?? DEFAULT_HUBSPOT_SCHEMA, [...DEFAULT_HUBSPOT_ASSOCIATION_TYPES, ...(options.associationTypes ?? [])], options.portalId ?? 12_345_678);
  const limiter = new RateLimiter(
    options.rateLimit?.max ?? DEFAULT_WINDOW_MAX,
    options.rateLimit?.intervalMs ?? DEFAULT_WINDOW_MS,
    options.rateLimit?.daily ?? DEFAULT_DAILY,
    options.timeZone ?? 'UTC',
  );
  const faults = new FaultQueue();
  /** Access tokens issued at the token endpoint → when they expire. */
  const accessTokens = new Map<string, number>();
  const issueAccessToken = (at: number): { accessToken: string; seconds: number } => {
    const seconds = options.oauth?.accessTokenSeconds ?? 1800;
    const accessToken = `oauth-${randomUUID()}`;
    accessTokens.set(accessToken, at + seconds * 1000);
    return { accessToken, seconds };
  };
  let calls = emptyCounts();
  let maxInputs = emptyCounts();
  let rateLimited = 0;
  let faultsServed = 0;

  /** Everything after transport: auth, rate limit, routing, parsing and the handler. */
  function answer(req: IncomingMessage, method: string, matched: Matched, raw: string): { reply: Reply; headers: Record<string, string> } {
    const at = now();
    let oauthCall = false;
    const headers = (): Record<string, string> => ({ 'X-HubSpot-Correlation-Id': randomUUID(), ...limiter.headers(at, !oauthCall) });
    // The token endpoint takes no bearer token and does not count against the API limits.
    if (matched.endpoint === 'oauth.token') return { reply: issueToken(req, raw, options.oauth, () => issueAccessToken(at)), headers: { 'X-HubSpot-Correlation-Id': randomUUID() } };
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const expiresAt = bearer === undefined ? undefined : accessTokens.get(bearer);
    if (expiresAt !== undefined && at >= expiresAt) {
      // An OAuth call, answered without the daily headers like every other.
      oauthCall = true;
      return { reply: expiredToken(expiresAt, at), headers: headers() };
    }
    if (bearer !== token && expiresAt === undefined) return { reply: unauthenticated(), headers: headers() };
    // OAuth calls have no daily limit, and their answers no daily headers.
    oauthCall = bearer !== token;
    const admission = limiter.admit(at, !oauthCall);
    if (admission.policy) {
      rateLimited++;
      const retry: Record<string, string> =
        options.retryAfter && admission.retryAfterMs !== undefined ? { 'Retry-After': String(Math.max(1, Math.ceil(admission.retryAfterMs / 1000))) } : {};
      return { reply: rateLimitedReply(admission.policy), headers: { ...headers(), ...retry } };
    }
    if (!matched.route) {
      const reply = matched.wrongMethod ? errorReply(405, { message: `HTTP method ${method} is not supported by this URL` }) : errorReply(404, { message: 'Resource not found' });
      return { reply, headers: headers() };
    }
    const needed = options.scopes ? requiredScopes(portal, matched.endpoint, matched.params) : [];
    if (needed.length > 0 && !needed.some((scope) => options.scopes?.includes(scope))) return { reply: missingScopes(needed), headers: headers() };
    const parsed = parseBody(method, req, raw);
    if (!('body' in parsed)) return { reply: parsed, headers: headers() };
    const endpoint = matched.endpoint;
    const ctx: Context = { portal, now, noteInputs: (count) => (maxInputs[endpoint] = Math.max(maxInputs[endpoint], count)) };
    return { reply: matched.route.handle(ctx, matched.params, parsed.body), headers: headers() };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const matched = match(method, path);
    calls[matched.endpoint]++;
    const raw = await readBody(req);
    const fault = faults.take(matched.endpoint);
    if (fault && fault.when !== 'after') {
      faultsServed++;
      serveFault(req, res, fault);
      return;
    }
    const { reply, headers } = answer(req, method, matched, raw);
    if (fault) {
      faultsServed++;
      serveFault(req, res, fault, reply);
      return;
    }
    send(res, reply, headers);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, errorReply(500, { message: `stand-in error: ${(error as Error).message}` }), {});
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  function view(record: StoredRecord): HubSpotRecord {
    return { id: record.id, properties: Object.fromEntries(record.values), createdAt: iso(record.createdAt), updatedAt: iso(record.updatedAt) };
  }

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Hanging faults and keep-alive sockets would otherwise hold close() open.
      server.closeAllConnections();
    }));

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    close,
    [Symbol.asyncDispose]: close,
    records: (objectType) => [...portal.requireObject(objectType).records.values()].map(view),
    find(objectType, property, value) {
      const object = portal.requireObject(objectType);
      if (object.unique.has(property)) {
        const record = portal.byUnique(object, property, value);
        return record && view(record);
      }
      for (const record of object.records.values()) if (record.values.get(property) === value) return view(record);
      return undefined;
    },
    associations: (fromObjectType, fromObjectId) => portal.associationsOf(portal.requireObject(fromObjectType), fromObjectId),
    seed(objectType, properties) {
      const object = portal.requireObject(objectType);
      const problems: PropertyProblem[] = [];
      const values = new Map<string, string | null>();
      for (const [name, raw] of Object.entries(properties)) {
        const property = object.properties.get(name);
        const normalised = property ? normaliseValue(property, raw) : { problem: unknownProperty(name) };
        if ('problem' in normalised) problems.push(normalised.problem);
        else values.set(name, normalised.value);
      }
      if (problems.length > 0) throw new Error(invalidProperties(problems, portal.portalId).message);
      for (const [name, value] of values) {
        const owner = value === null || !object.unique.has(name) ? undefined : portal.byUnique(object, name, value);
        if (owner) throw new Error(`${object.noun} already exists. Existing ID: ${owner.id}`);
      }
      return view(portal.write(object, undefined, values, now()));
    },
    failNext: (n, fault) => faults.add(n, fault),
    setRateLimit: (limit) => limiter.configure(limit),
    stats: () => ({ calls: { ...calls }, maxInputsPerCall: { ...maxInputs }, rateLimited, faultsServed }),
    resetStats() {
      calls = emptyCounts();
      maxInputs = emptyCounts();
      rateLimited = 0;
      faultsServed = 0;
    },
  };
}

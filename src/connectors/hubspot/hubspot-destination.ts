/**
 * The HubSpot destination: CRM objects (contacts, companies, deals, custom objects) written with
 * HubSpot's batch endpoints, records matched on a unique-value property (the sync's `idProperty`,
 * which the sync's primary key is written to), and associations to records other syncs delivered.
 *
 * A batch is written in these steps, each row's outcome decided by the first step that refuses it:
 *
 * 1. rows without an idProperty value, with one written twice in the batch, or with a value its
 *    property cannot take (hubspot-values.ts: a date that is not at midnight UTC; text, the
 *    idProperty's value included, longer than HubSpot's 65,536 characters; a contact's email
 *    that is no address HubSpot takes), are refused;
 *    so are contacts whose email differs only in case or the spaces around it from one sent before
 *    in the run (the first sent wins; case-twins.ts keeps them off the heap), or from the key this
 *    sync delivered to the record HubSpot finds for a new email — HubSpot matches emails without
 *    regard to case, spaces around an address are no part of it, and both would write one record
 *    (other unique-value properties are matched as written);
 * 2. associations: each row's parent ids are looked up in the ids the parent syncs recorded; a row
 *    whose parent has not been delivered yet is refused without being sent, and sent again on the
 *    next run (it stays out of the snapshot), so a record never reaches HubSpot without its parents;
 *    a contact named by its email in another case than its sync delivered it is the one HubSpot finds;
 * 3. updates: `batch/read` by idProperty; rows with no record are refused ("no contacts record
 *    with email = x"); a 400 for the read fails the run naming HubSpot's cause and the fix;
 * 4. inserts, upserts and updates: `batch/upsert` by idProperty, every input with its own
 *    `objectWriteTraceId` so HubSpot answers per record (207); results are matched back by trace
 *    id, else by idProperty value (HubSpot does not promise their order). Where HubSpot fails the
 *    whole request for one bad input (contacts upserted by email take no partial upserts), the
 *    batch is split in halves until the bad rows stand alone; a 400 no input is to blame for (a
 *    property, the idProperty's uniqueness or the object type gone) fails the run at once;
 * 5. associations of the rows written: a record the upsert found already there (`new: false`)
 *    and that this sync delivered before (it recorded an id for the key) is read (v4 `batch/read`)
 *    and loses the sync's association type to any record other than its parent now (v4
 *    `batch/labels/archive`: a changed parent, or a key emptied); then v4 `batch/create` of the
 *    parent's. A row whose association fails is refused (its record is
 *    written, and is written again with its association on the next run);
 * 6. deletes: `batch/archive` of the ids this sync recorded, or of the records found by idProperty
 *    when none is recorded; a record already gone counts as deleted, and for a contact's email
 *    whose case changed, one this run wrote for the email in its new case, or that its twin rejected
 *    in this run waits for, is left to that key; a 400 no input is to blame for (the object type
 *    gone) fails the run at once.
 */
import { distance } from 'fastest-levenshtein';
import { withBackoff, type BackoffPolicy } from '../../core/backoff.js';
import type { ConnectorContext } from '../../core/connector-kind.js';
import { assertNever, ErrorCode, LockstepError } from '../../core/errors.js';
import { splitHint } from '../../core/hints.js';
import { encodeKey, lookupKeys } from '../../core/keys.js';
import type { ApiUsage } from '../../core/runs.js';
import type { Clock, Destination, DestinationWriter, RowOutcome, Value, WriteOperation, WriteTarget } from '../../core/ports.js';
import { CASE_TWIN_BYTES, CaseTwins } from '../case-twins.js';
import { EMAIL_FORM, hubspotValue, isHubSpotEmail, TEXT_LIMIT } from './hubspot-values.js';
import { HubSpotClient, type HubSpotBatchAnswer, type HubSpotError, type HubSpotObject, type HubSpotProperty } from './hubspot-client.js';
import {
  defaultAssociationTargets,
  defaultAssociationType,
  hubspotCredentials,
  hubspotRequestsPerSecond,
  hubspotSyncSettings,
  singular,
  standardObject,
  type AssociationCategory,
  type HubSpotConnectionSettings,
  type HubSpotSyncSettings,
} from './hubspot-settings.js';

import { HUBSPOT_CAPABILITIES } from './hubspot-settings.js';

/** "Object API batch endpoints are limited to 100 inputs per request"; associations alike. */
const BATCH_LIMIT = 100;

export interface HubSpotDestinationOptions {
  client: HubSpotClient;
  /** The connection's slug, for messages. */
  slug: string;
  /** Batches of a run written at once. */
  concurrency: number;
  /** How prepare's reads are retried. */
  backoff: BackoffPolicy;
  clock: Clock;
}

export class HubSpotDestination implements Destination {
  readonly capabilities = HUBSPOT_CAPABILITIES;
  /** Properties per object, read once per connection. */
  private readonly properties = new Map<string, Promise<HubSpotProperty[]>>();
  /** The case twins of the writers prepared on this connection (one run's), closed with it. */
  private readonly caseTwins: CaseTwins[] = [];

  constructor(private readonly options: HubSpotDestinationOptions) {}

  /**
   * Opens a connection and checks it with one read (the properties of contacts, kept for syncs to
   * contacts): an unreachable baseUrl or a refused token fails here, as a connection error naming
   * the fix, instead of when the first sync prepares.
   */
  static async open(settings: HubSpotConnectionSettings, context: ConnectorContext): Promise<HubSpotDestination> {
    const limiter = context.rateLimiter({ requestsPerSecond: hubspotRequestsPerSecond(settings), concurrency: settings.concurrency });
    const client = new HubSpotClient({
      slug: context.slug,
      credentials: hubspotCredentials(settings),
      baseUrl: settings.baseUrl,
      timeoutMs: settings.timeoutSeconds * 1000,
      connections: settings.concurrency,
      limiter,
      clock: context.clock,
      logger: context.logger,
      backoff: context.backoff,
    });
    const destination = new HubSpotDestination({ client, slug: context.slug, concurrency: settings.concurrency, backoff: context.backoff, clock: context.clock });
    try {
      await destination.checkAccess();
    } catch (thrown) {
      await client.close();
      throw thrown;
    }
    return destination;
  }

  /**
   * Reads the object's properties and checks the sync against them: the object exists, idProperty
   * is a unique-value property the primary key is written to, every other field is a writable
   * property (or an association's `from`), and each association has a type and an object that exists.
   */
  async prepare(target: WriteTarget): Promise<DestinationWriter> {
    const sync = target.sync ?? target.object;
    const parsed = hubspotSyncSettings.safeParse(target.settings ?? {});
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const { message, hint } = splitHint(first?.message ?? 'invalid');
      throw new LockstepError(
        ErrorCode.Validation,
        `sync "${sync}": setting ${first?.path.join('.') || '(settings)'}: ${message} — ${hint ?? "fix it in the sync's definition"} (lockstep validate shows every problem)`,
      );
    }
    const settings = parsed.data;
    const properties = await this.propertiesOf(target.object, sync);
    const idColumn = checkIdProperty(target, settings, properties, sync);
    const associations = await Promise.all(settings.associations.map((setting, n) => this.association(target, setting, n, sync)));
    const fromColumns = new Set(associations.map((a) => a.column).filter((c): c is number => c !== null));
    const propertyColumns = checkColumns(target, properties, idColumn, fromColumns, sync);
    return new HubSpotWriter({
      client: this.options.client,
      target,
      sync,
      idProperty: settings.idProperty,
      idColumn,
      propertyColumns,
      uniqueColumns: propertyColumns.filter(({ property }) => property.hasUniqueValue === true || (standardObject(target.object) === 'contacts' && property.name === 'email')),
      associations,
      concurrentWrites: this.options.concurrency,
      caseTwins: this.track(new CaseTwins(CASE_TWIN_BYTES, emailKey)),
      writtenTwins: this.track(new CaseTwins(CASE_TWIN_BYTES, emailKey)),
    });
  }

  /** Keeps a writer's case twins until the connection closes (a writer has no end of its own). */
  private track(twins: CaseTwins): CaseTwins {
    this.caseTwins.push(twins);
    return twins;
  }

  /** The portal's daily API budget HubSpot reported last, and the calls this connection made. */
  apiUsage(): ApiUsage | null {
    return this.options.client.usage();
  }

  async close(): Promise<void> {
    for (const twins of this.caseTwins.splice(0)) twins.close();
    await this.options.client.close();
  }

  /** An association setting made ready to write: its column, type and the parent's name. */
  private async association(target: WriteTarget, setting: HubSpotSyncSettings['associations'][number], n: number, sync: string): Promise<Association> {
    const typeId = setting.type ?? defaultAssociationType(target.object, setting.object);
    if (typeId === undefined) {
      const defaults = defaultAssociationTargets(target.object);
      throw new LockstepError(
        ErrorCode.Validation,
        `sync "${sync}": HubSpot has no default association type from ${target.object} to ${setting.object} — set associations[${n}].type to the association type id (GET /crm/v4/associations/${target.object}/${setting.object}/labels lists them)${defaults.length > 0 ? `; defaults exist from ${target.object} to ${defaults.join(', ')}` : ''}`,
      );
    }
    // The associated object must exist; its properties are not needed beyond that.
    await this.propertiesOf(setting.object, sync, `associations[${n}].object`);
    // `from` names a model column; a mapping may have renamed it (the field it is written to also works).
    const byModel = target.modelColumns?.indexOf(setting.from) ?? -1;
    const column = byModel >= 0 ? byModel : target.columns.indexOf(setting.from);
    return {
      object: setting.object,
      noun: singular(setting.object),
      from: setting.from,
      column: column < 0 ? null : column,
      parentSync: setting.lookup.sync,
      typeId,
      category: setting.category,
    };
  }

  /** Reads the properties of contacts, keeping them; a token without that scope is accepted (403), one HubSpot refuses is not (401). */
  private async checkAccess(): Promise<void> {
    const what = 'checking the access token (reading the properties of contacts)';
    const answer = await withBackoff(() => this.options.client.check(`/crm/v3/properties/contacts?archived=false`, what), {
      policy: this.options.backoff,
      clock: this.options.clock,
    });
    const results = (answer?.body as { results?: unknown } | undefined)?.results;
    if (answer && answer.status < 300 && Array.isArray(results)) this.properties.set('contacts', Promise.resolve(propertyList(results)));
  }

  /** The object's properties, read once (transient failures retried); a schema error when HubSpot has no such object. */
  private propertiesOf(object: string, sync: string, setting = 'object'): Promise<HubSpotProperty[]> {
    let known = this.properties.get(object);
    if (!known) {
      known = withBackoff(() => this.readProperties(object, sync, setting), { policy: this.options.backoff, clock: this.options.clock });
      // A failed read is not kept: the next sync tries again.
      known.catch(() => this.properties.delete(object));
      this.properties.set(object, known);
    }
    return known;
  }

  private async readProperties(object: string, sync: string, setting: string): Promise<HubSpotProperty[]> {
    const what = `reading the properties of ${object}`;
    const answer = await this.options.client.request('GET', `/crm/v3/properties/${encodeURIComponent(object)}?archived=false`, undefined, what);
    if (answer.status >= 400) {
      throw new LockstepError(
        ErrorCode.Schema,
        `sync "${sync}": HubSpot has no object type "${object}" (${answer.status}: ${errorText(answer.body)}) — set ${setting} to contacts, companies, deals, tickets, or ${customObjectNames(object)} (GET /crm/v3/schemas lists them)`,
      );
    }
    const results = (answer.body as { results?: unknown } | undefined)?.results;
    if (!Array.isArray(results)) throw unexpected(what, answer.body);
    return propertyList(results);
  }
}

/**
 * The names a custom object goes by in HubSpot's paths, for messages: its type id, `p_{name}` or
 * `p{portalId}_{name}`. A plain name (`pets`) is not one since June 2025 ("Removed Support for
 * Referencing Custom Object Types by Base Name"), so one written so is shown in the forms HubSpot takes.
 */
function customObjectNames(object: string): string {
  const plain = !/^\d+-\d+$/.test(object) && !/^p\d*_/i.test(object);
  return plain
    ? `a custom object's type id (e.g. 2-1234567), short name p_${object} or fully qualified name (p<portal id>_${object}): HubSpot no longer takes a custom object's plain name`
    : "a custom object's type id (e.g. 2-1234567), short name (p_<name>) or fully qualified name (p<portal id>_<name>)";
}

/** The properties in a Properties API answer's `results`. */
function propertyList(results: unknown[]): HubSpotProperty[] {
  return results.filter((p): p is HubSpotProperty => typeof (p as HubSpotProperty | null)?.name === 'string');
}

/** One record's associations in a v4 `batch/read` answer. */
interface AssociationsOf {
  from?: { id?: unknown };
  to?: Array<{ toObjectId?: unknown; associationTypes?: Array<{ category?: string; typeId?: number; label?: string | null }> }>;
  paging?: { next?: { after?: unknown } };
}

/** An association of the sync's rows, ready to write. */
interface Association {
  /** The associated object type as written in the settings. */
  object: string;
  /** One of its records, for messages: `company`. */
  noun: string;
  /** The setting's `from`, for messages. */
  from: string;
  /** Where the parent's key is in `WriteTarget.columns`; null when the model does not return it. */
  column: number | null;
  parentSync: string;
  typeId: number;
  category: AssociationCategory;
}

/** The idProperty's column, after checking that it is a unique-value property the primary key is written to. */
function checkIdProperty(target: WriteTarget, settings: HubSpotSyncSettings, properties: HubSpotProperty[], sync: string): number {
  const { idProperty } = settings;
  const property = properties.find((p) => p.name === idProperty);
  // Contacts are matched on email although HubSpot does not mark it unique.
  const matchable = (p: HubSpotProperty) => p.hasUniqueValue === true || (standardObject(target.object) === 'contacts' && p.name === 'email');
  const unique = properties.filter(matchable).map((p) => p.name);
  const uniqueList = unique.length > 0 ? unique.join(', ') : 'none yet';
  if (!property) {
    throw new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": ${target.object} has no property "${idProperty}"${didYouMean(idProperty, properties)} — set idProperty to one of its unique-value properties (${uniqueList}), or create one with "Require unique values" in HubSpot`,
    );
  }
  if (!matchable(property)) {
    throw new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": property "${idProperty}" of ${target.object} does not have unique values, so HubSpot cannot match records on it — set idProperty to one of ${uniqueList}, or create a property with "Require unique values" in HubSpot`,
    );
  }
  const [key, ...more] = target.keyColumns;
  if (key !== idProperty || more.length > 0) {
    const written = target.keyColumns.map((c) => `"${c}"`).join(', ');
    // The mapping names the model's column, which a mapping may have written under another name.
    const from = (key !== undefined ? target.modelColumns?.[target.columns.indexOf(key)] : undefined) ?? key ?? 'id';
    throw new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": HubSpot matches ${target.object} records on idProperty "${idProperty}", but the model's primary key is written to ${written} — map the primary key column to it (mappings: [{ from: ${from}, to: ${idProperty} }]) or set idProperty to the property the key is written to`,
    );
  }
  return target.columns.indexOf(idProperty);
}

/**
 * The columns written as properties (all but the idProperty's and associations' own columns that
 * are not properties), after checking each is a writable property.
 */
function checkColumns(target: WriteTarget, properties: HubSpotProperty[], idColumn: number, fromColumns: Set<number>, sync: string): PropertyColumn[] {
  const byName = new Map(properties.map((p) => [p.name, p]));
  const written: PropertyColumn[] = [];
  const unknown: string[] = [];
  const readOnly: string[] = [];
  target.columns.forEach((name, index) => {
    if (index === idColumn) return;
    const property = byName.get(name);
    if (!property) {
      if (!fromColumns.has(index)) unknown.push(name);
      return;
    }
    if (property.modificationMetadata?.readOnlyValue === true || property.calculated === true) readOnly.push(name);
    else written.push({ index, name, property });
  });
  if (unknown.length > 0) {
    const listed = unknown.map((name) => `"${name}"${didYouMean(name, properties)}`).join(', ');
    const first = unknown[0] as string;
    const guess = closeNames(first, properties)[0] ?? '<property>';
    throw new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": ${target.object} has no ${unknown.length === 1 ? 'property' : 'properties'} ${listed} — write each column to an existing property (mappings: [{ from: ${first}, to: ${guess} }]), leave it out of the model's query, or create the property in HubSpot`,
    );
  }
  if (readOnly.length > 0) {
    throw new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": ${readOnly.map((n) => `"${n}"`).join(', ')} of ${target.object} ${readOnly.length === 1 ? 'is' : 'are'} read-only in HubSpot — leave ${readOnly.length === 1 ? 'it' : 'them'} out of the model's query or map ${readOnly.length === 1 ? 'it' : 'them'} to writable properties`,
    );
  }
  return written;
}

/** A column written as a property. */
interface PropertyColumn {
  index: number;
  name: string;
  property: HubSpotProperty;
}

interface WriterOptions {
  client: HubSpotClient;
  target: WriteTarget;
  sync: string;
  idProperty: string;
  idColumn: number;
  propertyColumns: PropertyColumn[];
  /** The written properties HubSpot keeps unique besides idProperty (a contact's email, unique-value properties), for conflict messages. */
  uniqueColumns: PropertyColumn[];
  associations: Association[];
  concurrentWrites: number;
  /** The idProperty values sent in this run, when HubSpot matches them without regard to case. */
  caseTwins: CaseTwins;
  /** The idProperty values written in this run, likewise (used only then). */
  writtenTwins: CaseTwins;
}

/** An insert, upsert or update on its way through a batch's steps. */
interface PendingRow {
  /** Its place in the batch. */
  index: number;
  op: WriteOperation;
  /** Its idProperty value, as sent. */
  id: string;
  /** Its property values, as sent. */
  properties: Record<string, string>;
  /** Per association, the parent's HubSpot id (null: no parent for this row). */
  parents: Array<string | null>;
  /** HubSpot's id of the record, once written. */
  recordId?: string;
  /** The upsert found the record already there (`new: false`): it may carry associations from before. */
  existed?: boolean;
}

/** A delete on its way. */
interface PendingDelete {
  index: number;
  op: WriteOperation;
  recordId?: string;
}

class HubSpotWriter implements DestinationWriter {
  readonly concurrentWrites: number;
  private readonly objectPath: string;
  /**
   * Contacts' emails are matched without regard to case, as HubSpot matches them; its docs say
   * nothing of the kind for other unique-value properties, which are matched as written.
   */
  private readonly caseless: boolean;
  /** Whether the object is contacts, whose `email` HubSpot checks as an address. */
  private readonly contacts: boolean;
  /**
   * Records of a key this sync delivered that a twin of it, rejected in this run, waits for: a
   * delete of that key (its case changed in the model) leaves the record to the twin.
   */
  private readonly awaited = new Map<string, string>();

  constructor(private readonly options: WriterOptions) {
    this.concurrentWrites = options.concurrentWrites;
    this.objectPath = `/crm/v3/objects/${encodeURIComponent(options.target.object)}`;
    this.contacts = standardObject(options.target.object) === 'contacts';
    this.caseless = this.contacts && options.idProperty === 'email';
  }

  async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
    const outcomes: Array<RowOutcome | undefined> = new Array(batch.length);
    const refuse = (index: number, reason: string) => (outcomes[index] = { ok: false, reason });
    const { idProperty, idColumn, target } = this.options;
    const writes: PendingRow[] = [];
    const deletes: PendingDelete[] = [];
    /**
     * The batch's idProperty values as written; two emails that differ only in case or spaces
     * around them are told apart by the run's case twins, which know the first sent in the run.
     */
    const seen = new Set<string>();
    batch.forEach((op, index) => {
      switch (op.kind) {
        case 'delete':
          deletes.push({ index, op });
          return;
        case 'insert':
        case 'upsert':
        case 'update': {
          const value = op.values[idColumn] ?? null;
          if (value === null || String(value).trim() === '') {
            refuse(index, `${idProperty} is empty: HubSpot matches ${target.object} records on it`);
            return;
          }
          const id = String(value);
          if (seen.has(id)) {
            refuse(index, `${idProperty} ${id} is written by two rows of one batch: HubSpot would match both to one record`);
            return;
          }
          const properties = this.properties(op.values);
          if (typeof properties === 'string') {
            refuse(index, properties);
            return;
          }
          seen.add(id);
          writes.push({ index, op, id, properties, parents: [] });
          return;
        }
        default:
          assertNever(op.kind);
      }
    });

    let ready = this.caseless && writes.length > 0 ? await this.withoutCaseTwins(writes, refuse) : writes;
    if (ready.length > 0 && this.options.associations.length > 0) ready = await this.resolveParents(ready, refuse);
    const updates = ready.filter((row) => row.op.kind === 'update');
    if (updates.length > 0) {
      const found = await this.readByIdProperty(updates.map((row) => row.id));
      ready = ready.filter((row) => {
        if (row.op.kind !== 'update' || found.has(this.normalise(row.id))) return true;
        refuse(row.index, `no ${target.object} record with ${idProperty} = ${row.id}`);
        return false;
      });
    }
    const written: PendingRow[] = [];
    for (let start = 0; start < ready.length; start += BATCH_LIMIT) {
      written.push(...(await this.upsert(ready.slice(start, start + BATCH_LIMIT), refuse)));
    }
    await this.associate(written, refuse);
    // An email written in this run, kept on disk past a memory bound (case-twins.ts): a delete of
    // its twin in case (`ann@x.com` when `Ann@x.com` was written) finds the record the email now
    // names, which is not archived.
    if (this.caseless) this.options.writtenTwins.firsts(written.filter((row) => row.recordId !== undefined).map((row) => row.id));
    for (const row of written) outcomes[row.index] ??= { ok: true, id: row.recordId };
    if (deletes.length > 0) await this.remove(deletes, outcomes);
    return outcomes.map((outcome) => outcome ?? { ok: false, reason: 'HubSpot answered nothing for this row; it is sent again', retryable: true });
  }

  /** The reason step 1 refuses a row for on its own (an empty idProperty, a value its property cannot take), without sending it. */
  check(op: WriteOperation): string | null {
    if (op.kind === 'delete') return null;
    const { idProperty, idColumn, target } = this.options;
    const value = op.values[idColumn] ?? null;
    if (value === null || String(value).trim() === '') return `${idProperty} is empty: HubSpot matches ${target.object} records on it`;
    const properties = this.properties(op.values);
    return typeof properties === 'string' ? properties : null;
  }

  /**
   * As `check`, and a row whose parent has no recorded id is refused as its run would refuse it
   * (step 2): a dry run's recorded ids include the parents an earlier member of its plan delivers.
   * It may read (a contact parent by email), and never writes.
   */
  async checkBatch(batch: WriteOperation[]): Promise<Array<string | null>> {
    const reasons = batch.map((op) => this.check(op));
    if (this.options.associations.length === 0) return reasons;
    const rows: PendingRow[] = [];
    batch.forEach((op, index) => {
      if (op.kind === 'delete' || reasons[index] !== null) return;
      rows.push({ index, op, id: String(op.values[this.options.idColumn]), properties: {}, parents: [] });
    });
    if (rows.length > 0) await this.resolveParents(rows, (index, reason) => (reasons[index] = reason));
    return reasons;
  }

  /**
   * The rows whose email is not another key's in all but case; the others are refused, as HubSpot
   * would write both to one record. The other key was sent earlier in this run (the first sent
   * wins), or was delivered by this sync in an earlier run to the record HubSpot finds for a new
   * key's email (one `batch/read` per batch with new keys, once the sync has delivered).
   */
  private async withoutCaseTwins(rows: PendingRow[], refuse: (index: number, reason: string) => void): Promise<PendingRow[]> {
    const { target, sync } = this.options;
    const firsts = this.options.caseTwins.claim(rows.map((row) => row.id));
    const twinned = new Set<PendingRow>();
    rows.forEach((row, n) => {
      const first = firsts.get(n);
      if (first === undefined) return;
      twinned.add(row);
      refuse(row.index, this.twinReason(row.id, first, 'another row of this run, sent instead of this one'));
    });
    const fresh = rows.filter((row) => !twinned.has(row) && row.op.change === 'added');
    if (fresh.length > 0 && target.delivered !== false && target.recordIds) {
      const records = await this.recordsByIdProperty(fresh.map((row) => row.id));
      const held = new Map(records.map((record) => [this.normalise(record.value), record]));
      const candidates = fresh.flatMap((row) => {
        const record = held.get(this.normalise(row.id));
        return record && record.value !== row.id ? [{ row, record }] : [];
      });
      if (candidates.length > 0) {
        const recorded = await target.recordIds(sync, candidates.map(({ record }) => encodeKey([record.value])));
        for (const { row, record } of candidates) {
          if (recorded.get(encodeKey([record.value])) !== record.id) continue;
          twinned.add(row);
          this.awaited.set(record.id, row.id);
          refuse(row.index, this.twinReason(row.id, record.value, `which this sync delivered to ${target.object} record ${record.id}; this row is sent once that key leaves the model`));
        }
      }
    }
    return twinned.size === 0 ? rows : rows.filter((row) => !twinned.has(row));
  }

  /** Why a row is refused for an email that is another's but for case or the spaces around it, saying which. */
  private twinReason(id: string, other: string, which: string): string {
    const { idProperty, target } = this.options;
    const spaced = id.trim() !== id || other.trim() !== other;
    const cased = id.trim() !== other.trim();
    const differ = spaced
      ? `the two differ only in ${cased ? 'case and ' : ''}the spaces around them, which are no part of an address${cased ? ', and HubSpot matches emails without regard to case' : ''}`
      : 'HubSpot matches emails without regard to case';
    const fix = spaced ? (cased ? `lower(trim(${idProperty}))` : `trim(${idProperty})`) : `lower(${idProperty})`;
    return (
      `${idProperty} "${id}" is the same ${target.object} record to HubSpot as "${other}", ${which}: ${differ}, ` +
      `so the two would write one record — give the model one row per address (e.g. ${fix} in its query, keeping one row for each)`
    );
  }

  /** Rows with their parents' ids; rows whose parent has no recorded id yet are refused. */
  private async resolveParents(rows: PendingRow[], refuse: (index: number, reason: string) => void): Promise<PendingRow[]> {
    const { target, associations, sync } = this.options;
    const recordIds = target.recordIds;
    if (!recordIds) throw new LockstepError(ErrorCode.Internal, `sync "${sync}": the engine gave the HubSpot destination no access to recorded ids, which associations need`);
    const refused = new Set<PendingRow>();
    for (const association of associations) {
      const column = association.column;
      if (column === null) {
        throw new LockstepError(
          ErrorCode.Schema,
          `sync "${sync}": association to ${association.object} reads column "${association.from}", which the model does not return (it returns ${(target.modelColumns ?? target.columns).map((c) => `"${c}"`).join(', ')}) — add it to the model's query`,
        );
      }
      const keys = new Set<string>();
      for (const row of rows) for (const key of lookupKeys(row.op.values[column] ?? null)) keys.add(key);
      const ids = keys.size > 0 ? await recordIds(association.parentSync, [...keys]) : new Map<string, string>();
      const found = (value: Value) => lookupKeys(value).map((key) => ids.get(key)).find((id) => id !== undefined);
      const missing = rows.map((row) => row.op.values[column] ?? null).filter((value) => value !== null && value !== '' && found(value) === undefined);
      const byEmail = standardObject(association.object) === 'contacts' ? await this.parentsByEmail(missing, association) : new Map<string, string>();
      const unrecorded = await this.deliveredWithoutIds(missing.filter((value) => !byEmail.has(String(value))), association.parentSync);
      for (const row of rows) {
        const value = row.op.values[column] ?? null;
        if (value === null || value === '') {
          row.parents.push(null);
          continue;
        }
        const id = found(value) ?? byEmail.get(String(value));
        row.parents.push(id ?? null);
        if (id === undefined && !refused.has(row)) {
          refused.add(row);
          refuse(
            row.index,
            lookupKeys(value).some((key) => unrecorded.has(key))
              ? `${association.noun} ${String(value)}: ${association.parentSync} counts it as delivered but recorded no id for it (its snapshot was rebuilt by a resetCDC run, which sends nothing and so gets no ids)` +
                  ` — run ${association.parentSync} once with fullResync to record its ids; this row is sent again on every run until then`
              : `${association.noun} ${String(value)} has not been delivered by ${association.parentSync} yet: it has no id recorded there (that sync has not run since the ${association.noun} was added, rejected it, or its model no longer has it); this row is sent again on the next run`,
          );
        }
      }
    }
    return rows.filter((row) => !refused.has(row));
  }

  /** The keys of `values` with no recorded id that `parentSync` counts as delivered, which no later run of it sends again (one read, none without such values). */
  private async deliveredWithoutIds(values: Value[], parentSync: string): Promise<Set<string>> {
    const { deliveredKeys } = this.options.target;
    const keys = [...new Set(values.flatMap((value) => lookupKeys(value)))];
    if (keys.length === 0 || !deliveredKeys) return new Set();
    return deliveredKeys(parentSync, keys);
  }

  /**
   * Contacts named by an email in another case than their sync delivered them (`Ann@X.com` for
   * `ann@x.com`): HubSpot matches emails without regard to case, so the contact it finds for the
   * email is the parent when the parent sync recorded that id for the email the contact holds.
   * Answers their ids by the value as the row gives it; one `batch/read` per batch with such values.
   */
  private async parentsByEmail(values: Value[], association: Association): Promise<Map<string, string>> {
    const { target } = this.options;
    const emails = [...new Set(values.map(String).filter((value) => isHubSpotEmail(value)))];
    const parents = new Map<string, string>();
    if (emails.length === 0 || !target.recordIds) return parents;
    const records = await this.recordsByIdProperty(emails, association.object, 'email');
    const held = new Map(records.map((record) => [record.value.trim().toLowerCase(), record]));
    const recorded = await target.recordIds(association.parentSync, records.map((record) => encodeKey([record.value])));
    for (const email of emails) {
      const record = held.get(email.trim().toLowerCase());
      if (record && recorded.get(encodeKey([record.value])) === record.id) parents.set(email, record.id);
    }
    return parents;
  }

  /**
   * Upserts up to BATCH_LIMIT rows; returns those written, with their record ids. Where HubSpot
   * refuses the whole request for a bad input, the rows are split in halves until it stands alone.
   */
  private async upsert(rows: PendingRow[], refuse: (index: number, reason: string) => void): Promise<PendingRow[]> {
    if (rows.length === 0) return [];
    const { client, target, idProperty } = this.options;
    const inputs = rows.map((row, n) => ({ idProperty, id: row.id, properties: row.properties, objectWriteTraceId: String(n) }));
    const what = `upserting ${target.object}`;
    const answer = await client.request('POST', `${this.objectPath}/batch/upsert`, { inputs }, what);
    if (answer.status >= 400) {
      if (answer.status !== 400 && answer.status !== 409) throw refusedRequest(what, answer.status, answer.body);
      // Every row carries every mapped property: one HubSpot no longer has fails them all alike.
      const gone = missingProperties(answer.body);
      if (gone.length > 0) {
        throw new LockstepError(
          ErrorCode.Schema,
          `sync "${this.options.sync}": ${target.object} has no ${gone.length === 1 ? 'property' : 'properties'} ${gone.map((name) => `"${name}"`).join(', ')} any more (HubSpot answered PROPERTY_DOESNT_EXIST while ${what}) — create ${gone.length === 1 ? 'it' : 'them'} again in HubSpot, or write the column to another property (mappings) or leave it out of the model's query`,
        );
      }
      const whole = wholeRequestError(answer.status, answer.body, this.options.sync, target.object, idProperty);
      if (whole) throw whole;
      if (rows.length === 1) {
        const row = rows[0] as PendingRow;
        refuse(row.index, this.rowError(answer.body as HubSpotError, row));
        return [];
      }
      const half = Math.ceil(rows.length / 2);
      return [...(await this.upsert(rows.slice(0, half), refuse)), ...(await this.upsert(rows.slice(half), refuse))];
    }
    const body = answer.body as HubSpotBatchAnswer<HubSpotObject> | undefined;
    if (!Array.isArray(body?.results)) throw unexpected(what, answer.body);
    const byId = new Map(rows.map((row) => [this.normalise(row.id), row]));
    const written: PendingRow[] = [];
    const settled = new Set<PendingRow>();
    for (const result of body.results) {
      const traced = result.objectWriteTraceId === undefined ? undefined : rows[Number(result.objectWriteTraceId)];
      const value = result.properties?.[idProperty];
      const row = traced ?? (typeof value === 'string' ? byId.get(this.normalise(value)) : undefined);
      if (!row || settled.has(row) || result.id === undefined || result.id === null) continue;
      row.recordId = String(result.id);
      row.existed = result.new !== true;
      settled.add(row);
      written.push(row);
    }
    const untraced: HubSpotError[] = [];
    for (const error of body.errors ?? []) {
      const traces = error.context?.objectWriteTraceId;
      const matched = Array.isArray(traces) ? traces.map((t) => rows[Number(t)]).filter((row): row is PendingRow => row !== undefined) : [];
      if (matched.length === 0) untraced.push(error);
      for (const row of matched) {
        if (settled.has(row)) continue;
        settled.add(row);
        refuse(row.index, this.rowError(error, row));
      }
    }
    // Rows HubSpot did not mention: refused with the errors it did not attribute, else (no
    // outcome) sent again by the engine.
    const unattributed = [...new Set(untraced.map(errorText))].join(' | ');
    for (const row of rows) if (!settled.has(row) && unattributed !== '') refuse(row.index, unattributed);
    return written;
  }

  /**
   * HubSpot's error for a row as its reason; a CONFLICT (a unique value, such as a contact's email,
   * that another record holds) names the row's unique values and what to do, which HubSpot's
   * "Contact already exists. Existing ID: 1153" leaves to guess.
   */
  private rowError(error: HubSpotError | undefined, row: PendingRow): string {
    const text = errorText(error);
    if (error?.category !== 'CONFLICT') return text;
    const { target, uniqueColumns } = this.options;
    const held = uniqueColumns
      .map(({ name, index }) => [name, row.op.values[index] ?? null] as const)
      .filter(([, value]) => value !== null && value !== '')
      .map(([name, value]) => `${name} ${String(value)}`);
    const ids = error.context?.existingId;
    const other = Array.isArray(ids) && ids.length > 0 ? `another ${target.object} record (HubSpot id ${ids.map(String).join(', ')})` : `another ${target.object} record`;
    const values = held.length > 0 ? `this row's ${held.join(' or ')}` : `one of this row's unique values`;
    return `${text} — ${other} already has ${values}, which HubSpot keeps unique: remove the duplicate from the model, or merge or delete the other record in HubSpot`;
  }

  /**
   * Sets the associations of written rows: a record that was there before loses its association of
   * the sync's type to any other record of that object (its parent changed, or its key is now
   * empty), then gets the one to its parent. Rows whose association fails are refused.
   */
  private async associate(rows: PendingRow[], refuse: (index: number, reason: string) => void): Promise<void> {
    const { client, target } = this.options;
    const ours = this.options.associations.length > 0 ? await this.deliveredBefore(rows) : [];
    for (const [n, association] of this.options.associations.entries()) {
      const stale = await this.staleAssociations(ours, n, association);
      const failed = await this.archiveAssociations(stale, association);
      for (const [row, reason] of failed) refuse(row.index, reason);
      const linked = rows.filter((row) => row.parents[n] !== null && row.parents[n] !== undefined && row.recordId !== undefined && !failed.has(row));
      for (let start = 0; start < linked.length; start += BATCH_LIMIT) {
        const chunk = linked.slice(start, start + BATCH_LIMIT);
        const types = [{ associationCategory: association.category, associationTypeId: association.typeId }];
        const inputs = chunk.map((row) => ({ from: { id: row.recordId }, to: { id: row.parents[n] }, types }));
        const what = `associating ${target.object} with ${association.object}`;
        const path = `/crm/v4/associations/${encodeURIComponent(target.object)}/${encodeURIComponent(association.object)}/batch/create`;
        const answer = await client.request('POST', path, { inputs }, what);
        if (answer.status >= 400) {
          throw new LockstepError(
            ErrorCode.Schema,
            `sync "${this.options.sync}": HubSpot refused association type ${association.typeId} (${association.category}) from ${target.object} to ${association.object} (${answer.status}: ${errorText(answer.body)}) — set the association's type (and category) to one HubSpot lists at GET /crm/v4/associations/${target.object}/${association.object}/labels`,
          );
        }
        const body = answer.body as HubSpotBatchAnswer<{ fromObjectId?: unknown; toObjectId?: unknown }> | undefined;
        if (!Array.isArray(body?.results)) throw unexpected(what, answer.body);
        const made = new Set(body.results.map((r) => `${String(r.fromObjectId)}→${String(r.toObjectId)}`));
        const errors = body.errors ?? [];
        for (const row of chunk) {
          const parent = row.parents[n] as string;
          if (made.has(`${row.recordId}→${parent}`)) continue;
          // An error naming neither end is this row's only when it is the only one.
          const error =
            errors.find((e) => mentions(e, 'fromObjectId', row.recordId as string) || mentions(e, 'toObjectId', parent)) ??
            (errors.length === 1 ? errors[0] : undefined);
          const value = row.op.values[association.column as number];
          refuse(
            row.index,
            error
              ? `associating with ${association.noun} ${String(value)} (HubSpot id ${parent}) failed: ${errorText(error)}${parentGone(error, parent) ? ` — the ${association.noun} was deleted in HubSpot after ${association.parentSync} delivered it; run ${association.parentSync} with fullResync to deliver it again` : ''}`
              : `associating with ${association.noun} ${String(value)} (HubSpot id ${parent}): HubSpot did not confirm it; it is tried again on the next run`,
          );
        }
      }
    }
  }

  /**
   * The rows whose record was there before this write and that this sync delivered before (it
   * recorded an id for their key): their associations of the sync's type are the sync's to
   * replace. A record made by hand or by another tool keeps the ones it had when the sync first
   * writes it.
   */
  private async deliveredBefore(rows: PendingRow[]): Promise<PendingRow[]> {
    const { target } = this.options;
    const existing = rows.filter((row) => row.existed === true && row.recordId !== undefined);
    if (existing.length === 0 || !target.recordIds || !target.sync) return [];
    const keys = existing.map((row) => encodeKey(row.op.key));
    const recorded = await target.recordIds(target.sync, keys);
    return existing.filter((_, i) => recorded.has(keys[i] as string));
  }

  /**
   * Per row whose record existed before this write, the records of the association's object it is
   * associated with by the sync's type, other than its parent now: a parent it had before.
   */
  private async staleAssociations(existing: PendingRow[], n: number, association: Association): Promise<Array<{ row: PendingRow; toId: string }>> {
    const { client, target } = this.options;
    const stale: Array<{ row: PendingRow; toId: string }> = [];
    const what = `reading the associations of ${target.object} with ${association.object}`;
    const path = `/crm/v4/associations/${encodeURIComponent(target.object)}/${encodeURIComponent(association.object)}/batch/read`;
    // HubSpot pages a record's associations; `after` asks for the next page of that record.
    let pending = existing.map((row) => ({ row, after: undefined as string | undefined }));
    while (pending.length > 0) {
      const next: typeof pending = [];
      for (let start = 0; start < pending.length; start += BATCH_LIMIT) {
        const chunk = pending.slice(start, start + BATCH_LIMIT);
        const inputs = chunk.map(({ row, after }) => ({ id: row.recordId, ...(after === undefined ? {} : { after }) }));
        const answer = await client.request('POST', path, { inputs }, what);
        if (answer.status >= 400) throw refusedRequest(what, answer.status, answer.body);
        const body = answer.body as HubSpotBatchAnswer<AssociationsOf> | undefined;
        if (!Array.isArray(body?.results)) throw unexpected(what, answer.body);
        const byRecord = new Map(chunk.map((entry) => [entry.row.recordId as string, entry.row]));
        for (const result of body.results) {
          const row = byRecord.get(String(result.from?.id));
          if (!row) continue;
          for (const to of result.to ?? []) {
            const toId = String(to.toObjectId);
            const typed = (to.associationTypes ?? []).some((type) => type.typeId === association.typeId && type.category === association.category);
            if (typed && toId !== row.parents[n]) stale.push({ row, toId });
          }
          const after = result.paging?.next?.after;
          if (typeof after === 'string' && after !== '') next.push({ row, after });
        }
      }
      pending = next;
    }
    return stale;
  }

  /**
   * Takes the sync's association type off each stale pair (`batch/labels/archive`): an unlabeled
   * type goes with every label between the two records, as HubSpot removes it; a labelled one
   * (Primary, a custom label) leaves the records associated without it. Answers the rows it failed for.
   */
  private async archiveAssociations(stale: Array<{ row: PendingRow; toId: string }>, association: Association): Promise<Map<PendingRow, string>> {
    const { client, target } = this.options;
    const failed = new Map<PendingRow, string>();
    const types = [{ associationCategory: association.category, associationTypeId: association.typeId }];
    const what = `removing associations of ${target.object} with ${association.object}`;
    const path = `/crm/v4/associations/${encodeURIComponent(target.object)}/${encodeURIComponent(association.object)}/batch/labels/archive`;
    for (let start = 0; start < stale.length; start += BATCH_LIMIT) {
      const chunk = stale.slice(start, start + BATCH_LIMIT);
      const inputs = chunk.map(({ row, toId }) => ({ from: { id: row.recordId }, to: { id: toId }, types }));
      const answer = await client.request('POST', path, { inputs }, what);
      if (answer.status < 400) continue;
      for (const { row, toId } of chunk) {
        failed.set(row, `removing its association with ${association.noun} HubSpot id ${toId}, which it had before, failed (${answer.status}: ${errorText(answer.body)}); it is tried again on the next run`);
      }
    }
    return failed;
  }

  /** Archives deleted rows' records: by the ids this sync recorded, else found by idProperty. */
  private async remove(rows: PendingDelete[], outcomes: Array<RowOutcome | undefined>): Promise<void> {
    const { target, client } = this.options;
    const keys = rows.map((row) => encodeKey(row.op.key));
    const recorded = target.recordIds && target.sync ? await target.recordIds(target.sync, keys) : new Map<string, string>();
    rows.forEach((row, n) => (row.recordId = recorded.get(keys[n] as string)));
    const unknown = rows.filter((row) => row.recordId === undefined);
    if (unknown.length > 0) {
      // The key is the idProperty's value (checked by prepare).
      const found = await this.readByIdProperty(unknown.map((row) => String(row.op.key[0])));
      for (const row of unknown) row.recordId = found.get(this.normalise(String(row.op.key[0])));
    }
    const takenOver = (row: PendingDelete) => {
      if (row.recordId === undefined || !this.caseless) return false;
      const key = String(row.op.key[0]);
      const writtenFor = this.options.writtenTwins.find(key) ?? this.awaited.get(row.recordId);
      return writtenFor !== undefined && writtenFor !== key;
    };
    const archived = rows.filter((row) => row.recordId !== undefined && !takenOver(row));
    for (const row of rows) if (!archived.includes(row)) outcomes[row.index] = { ok: true };
    for (let start = 0; start < archived.length; start += BATCH_LIMIT) {
      const chunk = archived.slice(start, start + BATCH_LIMIT);
      const what = `archiving ${target.object}`;
      const answer = await client.request('POST', `${this.objectPath}/batch/archive`, { inputs: chunk.map((row) => ({ id: row.recordId })) }, what);
      const whole = wholeRequestError(answer.status, answer.body, this.options.sync, target.object, this.options.idProperty);
      if (whole) throw whole;
      for (const row of chunk) outcomes[row.index] = answer.status < 400 ? { ok: true } : { ok: false, reason: errorText(answer.body) };
    }
  }

  /** Record ids by normalised idProperty value, for the values that have a record. */
  private async readByIdProperty(values: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const { id, value } of await this.recordsByIdProperty(values)) found.set(this.normalise(value), id);
    return found;
  }

  /** The records HubSpot finds for `values` of idProperty (of `object`'s `property`), with the value each holds. */
  private async recordsByIdProperty(values: string[], object = this.options.target.object, idProperty = this.options.idProperty): Promise<Array<{ id: string; value: string }>> {
    const { client } = this.options;
    const found: Array<{ id: string; value: string }> = [];
    for (let start = 0; start < values.length; start += BATCH_LIMIT) {
      const inputs = values.slice(start, start + BATCH_LIMIT).map((id) => ({ id }));
      const what = `reading ${object} by ${idProperty}`;
      const answer = await client.request('POST', `/crm/v3/objects/${encodeURIComponent(object)}/batch/read`, { idProperty, inputs, properties: [idProperty] }, what);
      if (answer.status >= 400) throw this.readRefused(what, answer.status, answer.body, object, idProperty);
      const body = answer.body as HubSpotBatchAnswer<HubSpotObject> | undefined;
      if (!Array.isArray(body?.results)) throw unexpected(what, answer.body);
      for (const result of body.results) {
        const value = result.properties?.[idProperty];
        if (typeof value === 'string' && result.id !== undefined) found.push({ id: String(result.id), value });
      }
    }
    return found;
  }

  /**
   * Why HubSpot refused a `batch/read` of `object` by `property`, with the fix: of the sync's own
   * object, as for its upserts (the object type gone, idProperty no longer unique) or else naming
   * both settings; of an association's object (contacts by email), naming the association.
   */
  private readRefused(what: string, status: number, body: unknown, object: string, property: string): LockstepError {
    if (status !== 400) return refusedRequest(what, status, body);
    const { sync, target } = this.options;
    if (object !== target.object) {
      return new LockstepError(
        ErrorCode.Schema,
        `sync "${sync}": HubSpot refused ${what} for the association to ${object} (${status} ${errorText(body)}) — check that HubSpot still has object type "${object}", or take the association to it out of associations`,
      );
    }
    return (
      wholeRequestError(status, body, sync, object, property) ??
      new LockstepError(
        ErrorCode.Schema,
        `sync "${sync}": HubSpot refused ${what} (${status} ${errorText(body)}) — check that HubSpot still has object type "${object}" with the unique-value property "${property}", or set object and idProperty to ones it has`,
      )
    );
  }

  /**
   * A row's property values as HubSpot takes them for each property's type (an empty string clears
   * a property), or why one cannot be sent.
   */
  private properties(values: Value[]): Record<string, string> | string {
    const { idProperty, idColumn } = this.options;
    const id = String(values[idColumn] ?? '');
    if (id.length > TEXT_LIMIT) return this.tooLong(id, idProperty, idColumn, id.length);
    // A contact's email HubSpot cannot take fails the whole batch when contacts are upserted by email.
    if (this.caseless && !isHubSpotEmail(id)) return `${idProperty} "${id}" is not an address HubSpot takes (${EMAIL_FORM}) — correct it in the model's query, or leave such rows out`;
    const properties: Record<string, string> = {};
    for (const { index, name, property } of this.options.propertyColumns) {
      const value = hubspotValue(property, values[index] ?? null);
      if ('problem' in value) return value.problem;
      if (property.type === 'string' && value.text.length > TEXT_LIMIT) return this.tooLong(id, name, index, value.text.length);
      if (name === 'email' && this.contacts && value.text !== '' && !isHubSpotEmail(value.text)) {
        return `property "email" takes an email address, and "${value.text}" is not one HubSpot takes (${EMAIL_FORM}) — correct it in the model's query, or send null, which clears the property`;
      }
      properties[name] = value.text;
    }
    return properties;
  }

  /**
   * Why a text value over HubSpot's limit is not sent: HubSpot would refuse it, and for contacts
   * upserted by email the whole batch with it. Names the row by its idProperty value (cut short,
   * as it may be the long one), the property and the limit; the value itself is not shown.
   */
  private tooLong(id: string, property: string, column: number, length: number): string {
    const { idProperty, target } = this.options;
    const row = id.length > 20 ? `${id.slice(0, 20)}…` : id;
    const from = target.modelColumns?.[column] ?? property;
    const fix = property === idProperty ? "shorten the key in the model's query" : `shorten it in the model's query (e.g. left(${from}, ${TEXT_LIMIT})), or leave the column out`;
    return `${idProperty} ${row}: property "${property}" takes at most ${TEXT_LIMIT.toLocaleString('en-US')} characters (HubSpot's limit for text), and this value has ${length.toLocaleString('en-US')} — ${fix}`;
  }

  private normalise(id: string): string {
    return this.caseless ? emailKey(id) : id;
  }
}

/**
 * An email as HubSpot tells contacts apart: without regard to case, and without the spaces around
 * it, which RFC 2822 (by which HubSpot checks emails) puts outside the address.
 */
function emailKey(email: string): string {
  return email.trim().toLowerCase();
}

/** The properties a 400 says do not exist (PROPERTY_DOESNT_EXIST), from its errors or its packed message. */
function missingProperties(body: unknown): string[] {
  const error = (body ?? {}) as HubSpotError;
  const names = new Set<string>();
  for (const detail of error.errors ?? []) {
    const name = detail.context?.propertyName;
    if (detail.code === 'PROPERTY_DOESNT_EXIST' && Array.isArray(name) && typeof name[0] === 'string') names.add(name[0]);
  }
  const packed = typeof error.message === 'string' ? /^Property values were not valid: (\[.*\])$/s.exec(error.message) : null;
  if (packed) {
    try {
      for (const problem of JSON.parse(packed[1] as string) as Array<{ name?: unknown; error?: unknown }>) {
        if (problem.error === 'PROPERTY_DOESNT_EXIST' && typeof problem.name === 'string') names.add(problem.name);
      }
    } catch {
      // Not the list HubSpot packs; nothing to read from it.
    }
  }
  return [...names];
}

/**
 * A 400 that no row of the request is to blame for, so no split of the batch gets past it: the
 * idProperty is no longer a unique-value property ("Unable to perform update/upsert by non-unique
 * 0-1 property …"), or the object type is gone ("Unable to infer object type from: …"). Null for another.
 */
function wholeRequestError(status: number, body: unknown, sync: string, object: string, idProperty: string): LockstepError | null {
  const message = (body as HubSpotError | undefined)?.message ?? '';
  if (status !== 400 || typeof message !== 'string') return null;
  if (message.startsWith('Unable to perform update/upsert by non-unique ')) {
    return new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": HubSpot no longer takes "${idProperty}" of ${object} as a unique-value property, so it cannot match records on it (${status} ${errorText(body)}) — turn "Require unique values" on again for ${idProperty} in HubSpot, or set idProperty to another unique-value property`,
    );
  }
  if (message.startsWith('Unable to infer object type from: ')) {
    return new LockstepError(
      ErrorCode.Schema,
      `sync "${sync}": HubSpot no longer has object type "${object}" (${status} ${errorText(body)}) — set object to an object type HubSpot has (GET /crm/v3/schemas lists the custom ones), or create it again in HubSpot`,
    );
  }
  return null;
}

/** Whether an association's error says its parent record (`to`) does not exist. */
function parentGone(error: HubSpotError, parent: string): boolean {
  return error.category === 'OBJECT_NOT_FOUND' && mentions(error, 'toObjectId', parent);
}

/** Whether a 207 error names `id` in its context field `field`. */
function mentions(error: HubSpotError, field: string, id: string): boolean {
  const ids = error.context?.[field];
  return Array.isArray(ids) && ids.some((candidate) => String(candidate) === id);
}

/**
 * A HubSpot error as a row's reason: `<category>: <message>`, the message made readable where
 * HubSpot packs a JSON list of property problems into it.
 */
export function errorText(body: unknown): string {
  const error = (body ?? {}) as HubSpotError;
  const category = error.category ?? 'ERROR';
  let message = typeof error.message === 'string' ? error.message : 'HubSpot gave no message';
  const packed = /^Property values were not valid: (\[.*\])$/s.exec(message);
  if (packed) {
    try {
      const problems = JSON.parse(packed[1] as string) as Array<{ name?: string; message?: string; error?: string }>;
      message = problems.map((p) => `${p.name ?? 'property'}: ${p.message ?? 'invalid'}${p.error ? ` (${p.error})` : ''}`).join('; ');
    } catch {
      // Keep HubSpot's text as it is.
    }
  }
  return `${category}: ${message}`;
}

/** A whole request HubSpot refused for a reason no row can be blamed for. */
function refusedRequest(what: string, status: number, body: unknown): LockstepError {
  return new LockstepError(ErrorCode.Schema, `HubSpot refused ${what} (${status}: ${errorText(body)})`);
}

/** A JSON answer of an unexpected shape. */
function unexpected(what: string, body: unknown): LockstepError {
  const text = JSON.stringify(body) ?? String(body);
  return new LockstepError(ErrorCode.Transient, `HubSpot's answer while ${what} is not what its API documents: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`, {
    retryable: true,
  });
}

/** Lowercase letters and digits only: `First name` and `firstname` compare equal. */
function squash(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Property names close to `name` (by name or label), closest first. */
function closeNames(name: string, properties: HubSpotProperty[], limit = 3): string[] {
  const wanted = squash(name);
  const allowed = Math.max(2, Math.floor(wanted.length / 3));
  const scored: Array<{ name: string; score: number }> = [];
  for (const property of properties) {
    const forms = [squash(property.name), ...(property.label ? [squash(property.label)] : [])];
    let score = Math.min(...forms.map((form) => distance(wanted, form)));
    if (score > allowed && wanted.length >= 3 && forms.some((form) => form.includes(wanted) || (form.length >= 3 && wanted.includes(form)))) score = allowed;
    if (score <= allowed) scored.push({ name: property.name, score });
  }
  // Only the closest: "frstname" suggests firstname, not lastname too.
  const best = Math.min(...scored.map((s) => s.score));
  return scored
    .filter((s) => s.score === best)
    .sort((a, b) => a.name.localeCompare(b.name))
    .slice(0, limit)
    .map((s) => s.name);
}

function didYouMean(name: string, properties: HubSpotProperty[]): string {
  const close = closeNames(name, properties);
  return close.length > 0 ? ` (did you mean ${close.map((c) => `"${c}"`).join(' or ')}?)` : '';
}

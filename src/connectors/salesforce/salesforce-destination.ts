/**
 * The Salesforce destination: a sync's rows upserted into an sObject by an external id field.
 *
 * - **sObject Collections** (`PATCH composite/sobjects/{object}/{externalIdField}`, 200 records a
 *   call, `allOrNone: false`): each record's `{success, errors}` is its row's outcome
 *   (`statusCode: message`), several calls at once through the connection's shared limiter. Values
 *   go in the forms Salesforce reads (salesforce-values.ts); a call Salesforce still refuses with
 *   `JSON_PARSER_ERROR` for a value it names rejects the rows holding it and is made again without them.
 * - **Bulk API 2.0** when a run plans more than the sync's `bulkThreshold` rows (the writer asks to
 *   see that many planned rows first, `planAhead`, and then takes batches of `bulkJobSize`): one
 *   ingest job per batch (salesforce-bulk.ts).
 * - A parent named by its external id (`to: Account.External_Id__c`) goes nested,
 *   `{"Account": {"External_Id__c": "A-1"}}` (CSV header `Account.External_Id__c`): Salesforce
 *   resolves it or rejects the child with its own error, and the row is tried again next run. No
 *   parent clears the lookup field itself (`"AccountId": null`; in CSV, `#N/A` in an `AccountId` column).
 * - Modes: `upsert` and `mirror` upsert; `insert` upserts the rows never delivered (what the engine
 *   sends as inserts), so a record that already has the external id is updated, not duplicated, and
 *   a batch re-sent after a crash is harmless; `update` writes only rows whose record exists — found
 *   by external id with a SOQL query, one per batch, since a record this sync delivered may have been
 *   deleted since — and rejects the others ("no Account with External_Id__c = 'A-9'"), retried on
 *   later runs.
 * - A Unique external id field not marked case-sensitive matches without regard to case: of two
 *   keys that differ only in case, the first sent in a run is written and the other rejected,
 *   naming both; a new key whose twin this sync delivered before is rejected too (caseTwins), as
 *   Salesforce would write it over that record. The keys a run sent are held in memory up to a
 *   bound, and past it in a temporary file (../case-twins.ts). A child naming its parent by such a
 *   field is rejected when the parent key it names is not in Salesforce but its twin is, which
 *   Salesforce would link it to (parentTwins).
 * - Fields Salesforce sets only on create (createable, not updateable) are left out of the
 *   records of changed rows, which Salesforce would refuse whole.
 * - Deletes (`DELETE composite/sobjects?ids=…&allOrNone=false`, 200 ids a call) use the ids this
 *   sync recorded, or look them up by external id; a record already gone counts as deleted.
 *
 * Every delivered row reports its record's Salesforce Id, which the engine records for lookups.
 */
import { LRUCache } from 'lru-cache';
import type { ConnectorContext } from '../../core/connector-kind.js';
import { ErrorCode, LockstepError } from '../../core/errors.js';
import { encodeKey } from '../../core/keys.js';
import type { ApiUsage } from '../../core/runs.js';
import type { Destination, DestinationWriter, Logger, RowOutcome, Value, WriteOperation, WriteTarget } from '../../core/ports.js';
import { CaseTwins } from '../case-twins.js';
import { BulkIngest, RETRYABLE_RECORD_CODES, csvLine, recordErrorReason } from './salesforce-bulk.js';
import { SalesforceClient, isRecord, type SalesforceAnswer, type SalesforceRequest } from './salesforce-client.js';
import {
  closest,
  csvHeader,
  isNumberField,
  matchesWithoutCase,
  parseDescribe,
  planTarget,
  type ColumnPlan,
  type FieldDescribe,
  type SObjectDescribe,
  type TargetPlan,
} from './salesforce-fields.js';
import { apiVersionNumber, salesforceSyncSettings, type SalesforceConnectionSettings, type SalesforceSyncSettings } from './salesforce-settings.js';
import { fieldValue } from './salesforce-values.js';

import { SALESFORCE_CAPABILITIES } from './salesforce-settings.js';

/** Records or ids one sObject Collections call takes at most. */
const COLLECTION_LIMIT = 200;
/** Characters of URL-encoded values one SOQL lookup carries at most (Salesforce refuses URIs past 16,384 bytes). */
const SOQL_VALUES_BUDGET = 12_000;
/** Record errors of a delete that mean the record is already gone. */
const GONE_CODES = new Set(['ENTITY_IS_DELETED', 'INVALID_CROSS_REFERENCE_KEY']);
const API_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** Salesforce's record error for a parent named by a value no record holds: the value, the field, the object. */
const MISSING_PARENT = /^INVALID_FIELD: Foreign key external ID: ([\s\S]*) not found for field (\w+) in entity (\w+)(?: — |$)/;
/** Bytes of the parents a run found by SOQL that its writer holds (default of `parentIdBytes`). */
export const PARENT_ID_BYTES = 4 * 1024 * 1024;
/** Estimated bytes of a Map entry besides its strings' characters. */
const ENTRY_BYTES = 64;

/** How the destination works, besides its settings. */
export interface SalesforceDestinationOptions {
  /**
   * Memory a writer's record of the external ids its run sent may take (to find keys that differ
   * only in case); past it they go to a temporary file (default: CASE_TWIN_BYTES, 16 MiB).
   */
  caseTwinBytes?: number;
  /**
   * Memory a writer's record of the parents its run found in Salesforce by SOQL may take; past it,
   * those found longest ago are looked up again when named (default: PARENT_ID_BYTES, 4 MiB).
   */
  parentIdBytes?: number;
}

export class SalesforceDestination implements Destination {
  readonly capabilities = SALESFORCE_CAPABILITIES;
  private readonly describes = new Map<string, Promise<SObjectDescribe | null>>();
  private readonly bulk: BulkIngest;
  /** The writers' records of the keys their runs sent: their temporary files go when the connection closes. */
  private readonly twins = new Set<CaseTwins>();

  private constructor(
    private readonly client: SalesforceClient,
    private readonly settings: SalesforceConnectionSettings,
    private readonly logger: Logger,
    context: Pick<ConnectorContext, 'clock' | 'backoff'>,
    private readonly options: SalesforceDestinationOptions,
  ) {
    this.bulk = new BulkIngest({ client, clock: context.clock, logger, backoff: context.backoff, jobTimeoutMs: settings.bulkJobTimeoutMinutes * 60_000 });
  }

  /** Logs in (a wrong credential is a fatal error naming loginUrl and the fix); no other call is made yet. */
  static async open(
    settings: SalesforceConnectionSettings,
    context: Pick<ConnectorContext, 'slug' | 'clock' | 'logger' | 'backoff' | 'rateLimiter'>,
    options: SalesforceDestinationOptions = {},
  ): Promise<SalesforceDestination> {
    const limiter = context.rateLimiter({ requestsPerSecond: null, concurrency: settings.concurrency });
    const client = await SalesforceClient.connect({
      slug: context.slug,
      loginUrl: settings.loginUrl,
      clientId: settings.clientId,
      clientSecret: settings.clientSecret,
      apiVersion: apiVersionNumber(settings.apiVersion),
      concurrency: settings.concurrency,
      timeoutMs: settings.timeoutMs,
      limiter,
      clock: context.clock,
      logger: context.logger,
      backoff: context.backoff,
    });
    return new SalesforceDestination(client, settings, context.logger, context, options);
  }

  /** The org's API budget from the last `Sforce-Limit-Info`, and the calls this connection made. */
  apiUsage(): ApiUsage | null {
    return this.client.usage();
  }

  async prepare(target: WriteTarget): Promise<DestinationWriter> {
    const sync = target.sync ? `sync "${target.sync}"` : `the sync writing to ${target.object}`;
    const parsed = salesforceSyncSettings.safeParse(target.settings ?? {});
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new LockstepError(
        ErrorCode.Validation,
        `${sync}: setting ${first?.path.join('.') || '(settings)'}: ${first?.message.replace('\u001f', ' — ') ?? 'invalid'} — a sync to Salesforce sets externalIdField, e.g. externalIdField: External_Id__c`,
      );
    }
    const object = API_NAME.test(target.object) ? await this.describeObject(target.object) : null;
    if (!object) {
      await this.checkApiVersion();
      const near = await this.nearestObject(target.object);
      throw new LockstepError(
        ErrorCode.Schema,
        `${sync} writes to sObject "${target.object}", which ${this.client.name} does not have${near ? ` (did you mean "${near}"?)` : ''} — set the sync's object to an sObject's API name, e.g. Account, Contact or Invoice__c (custom objects end in __c), and check that the connected app's Run As user can see it`,
      );
    }
    const plan = await planTarget({
      sync,
      object,
      externalIdField: parsed.data.externalIdField,
      keyColumns: target.keyColumns,
      columns: target.columns,
      modelColumns: target.modelColumns,
      describe: (name) => this.describeObject(name),
    });
    const twins = new CaseTwins(this.options.caseTwinBytes);
    this.twins.add(twins);
    return new SalesforceWriter({
      client: this.client,
      twins,
      bulk: this.bulk,
      logger: this.logger,
      target,
      plan,
      settings: parsed.data,
      concurrency: this.settings.concurrency,
      parentIdBytes: this.options.parentIdBytes ?? PARENT_ID_BYTES,
    });
  }

  async close(): Promise<void> {
    for (const twins of this.twins) twins.close();
    this.twins.clear();
    await this.client.close();
  }

  /** An sObject's describe (once per connection), or null when the org has no such object. */
  private describeObject(name: string): Promise<SObjectDescribe | null> {
    const key = name.toLowerCase();
    let described = this.describes.get(key);
    if (!described) {
      const request: SalesforceRequest = { method: 'GET', path: `sobjects/${encodeURIComponent(name)}/describe`, what: `describe ${name}` };
      described = this.client.call(request).then((answer) => {
        if (answer.ok) return parseDescribe(answer.body, this.client.describe(request));
        if (answer.status === 404) return null;
        throw requestError(this.client, request, answer);
      });
      // A failure is not kept: the next prepare asks again.
      described.catch(() => this.describes.delete(key));
      this.describes.set(key, described);
    }
    return described;
  }

  /**
   * Throws when the org does not serve the connection's apiVersion (every resource under it is
   * then 404, as an sObject it does not have would be); passes when the Versions resource does not answer.
   */
  private async checkApiVersion(): Promise<void> {
    const version = apiVersionNumber(this.settings.apiVersion);
    let served: string[];
    try {
      const answer = await this.client.call({ method: 'GET', path: '/services/data/', what: 'list the REST API versions' });
      if (!answer.ok || !Array.isArray(answer.body)) return;
      served = answer.body.filter(isRecord).flatMap((v) => (typeof v.version === 'string' ? [v.version] : []));
    } catch {
      return;
    }
    if (served.length === 0 || served.includes(version)) return;
    const latest = served.reduce((a, b) => (Number(b) > Number(a) ? b : a));
    throw new LockstepError(
      ErrorCode.Schema,
      `${this.client.name} does not serve REST API version ${version} (apiVersion ${this.settings.apiVersion}); it serves ${served.length === 1 ? latest : `${served[0]} to ${latest}`} — set apiVersion to one of them, e.g. apiVersion: v${latest}`,
    );
  }

  /** The org's sObject nearest to a misspelt name (Describe Global), when the org answers it. */
  private async nearestObject(name: string): Promise<string | undefined> {
    try {
      const answer = await this.client.call({ method: 'GET', path: 'sobjects', what: 'list the org\'s sObjects' });
      if (!answer.ok || !isRecord(answer.body) || !Array.isArray(answer.body.sobjects)) return undefined;
      const names = answer.body.sobjects.filter(isRecord).flatMap((o) => (typeof o.name === 'string' ? [o.name] : []));
      return closest(name, names);
    } catch {
      return undefined;
    }
  }
}

interface WriterOptions {
  client: SalesforceClient;
  /**
   * The external ids this run sent, when the field matches text without regard to case (only ids
   * with a letter: others have no twin); bounded in memory.
   */
  twins: CaseTwins;
  bulk: BulkIngest;
  logger: Logger;
  target: WriteTarget;
  plan: TargetPlan;
  settings: SalesforceSyncSettings;
  concurrency: number;
  /** Memory the parents the run found by SOQL may take. */
  parentIdBytes: number;
}

/** A part of a batch written by one call (or one bulk upsert): its rows' outcomes, by row of the batch. */
interface WriteUnit {
  rows: number[];
  run: () => Promise<Array<[row: number, outcome: RowOutcome]>>;
}

class SalesforceWriter implements DestinationWriter {
  readonly planAhead: number | undefined;
  private bulkMode: boolean;
  private readonly object: string;
  private readonly externalId: FieldDescribe;
  private readonly sync: string;
  /**
   * Per column: Salesforce sets it only when it creates a record (its describe says createable,
   * not updateable: a master-detail field that is not reparentable, CampaignMember's CampaignId), and
   * refuses a whole record that updates it; a row whose record exists goes without it.
   */
  private readonly createOnly: boolean[];
  /** Per parent object and field (`account.external_id__c`): the syncs writing that object by that external id field. */
  private readonly parentSyncs = new Map<string, Promise<string[]>>();
  /** The parents this run found in Salesforce by SOQL, so later batches naming them need no query. */
  private readonly foundParents: FoundParents;

  constructor(private readonly options: WriterOptions) {
    this.foundParents = foundParents(options.parentIdBytes);
    const threshold = options.settings.bulkThreshold;
    // A threshold of 0 means every run goes through Bulk API 2.0; there is nothing to wait for.
    this.planAhead = threshold > 0 ? threshold : undefined;
    this.bulkMode = threshold === 0;
    this.object = options.plan.object;
    this.externalId = options.plan.externalId;
    this.sync = options.target.sync ?? options.target.object;
    this.createOnly = options.plan.columns.map((column) => !(column.kind === 'field' ? column.field : column.reference).updateable);
  }

  get concurrentWrites(): number {
    return this.options.concurrency;
  }

  /** Bulk jobs take `bulkJobSize` rows; collections take the sync's batchSize (at most 200, the engine's cap). */
  get batchSize(): number | undefined {
    return this.bulkMode ? this.options.settings.bulkJobSize : undefined;
  }

  plan(planned: { rows: number; complete: boolean }): void {
    this.bulkMode = planned.rows > this.options.settings.bulkThreshold;
    this.options.logger.info(this.bulkMode ? 'salesforce run writes through Bulk API 2.0' : 'salesforce run writes through sObject Collections', {
      sync: this.sync,
      object: this.object,
      planned: planned.complete ? planned.rows : `more than ${this.options.settings.bulkThreshold}`,
    });
  }

  async write(batch: WriteOperation[]): Promise<RowOutcome[]> {
    if (batch.length === 0) return [];
    const outcomes: Array<RowOutcome | undefined> = new Array(batch.length);
    const { ready, values, deletes } = await this.screen(batch, outcomes);
    // Rows whose record this sync delivered before, or that update mode found: they leave out the create-only fields.
    const existing = new Set(
      this.createOnly.includes(true) ? ready.filter((i) => recordExists(batch[i] as WriteOperation)) : [],
    );
    const units: WriteUnit[] = [];
    if (ready.length > 0) {
      if (this.bulkMode) units.push({ rows: ready, run: () => this.bulkUpsert(batch, values, ready, existing) });
      else for (const rows of chunks(ready, COLLECTION_LIMIT)) units.push({ rows, run: () => this.collectionsUpsert(values, rows, existing) });
    }
    if (deletes.length > 0) units.push(...(await this.deleteUnits(batch, deletes, outcomes)));
    await this.settle(units, outcomes);
    // A new row whose record exists already (made elsewhere, or before the sync's snapshot was reset)
    // is refused for its create-only fields: it goes again without them, as the update it is.
    const again = this.createOnly.includes(true) ? ready.filter((i) => !existing.has(i) && refusedAsUpdate(outcomes[i])) : [];
    if (again.length > 0) {
      const updating = new Set(again);
      for (const i of again) outcomes[i] = undefined;
      await this.settle(
        this.bulkMode
          ? [{ rows: again, run: () => this.bulkUpsert(batch, values, again, updating) }]
          : chunks(again, COLLECTION_LIMIT).map((rows) => ({ rows, run: () => this.collectionsUpsert(values, rows, updating) })),
        outcomes,
      );
    }
    await this.explainMissingParents(outcomes);
    this.explainDeletedReferences(outcomes, values);
    return outcomes.map((outcome, i) => {
      if (outcome) return outcome;
      throw new LockstepError(ErrorCode.Internal, `${this.options.client.name}: no outcome for row ${i} of a batch of ${batch.length} (a bug in Lockstep's Salesforce writer)`);
    });
  }

  /**
   * Why the rows of a batch would be rejected without being sent, as `write` finds it: reads only
   * (SOQL look-ups, the sync's recorded ids), so a dry run shows them as rejected; deletes are null.
   */
  async checkBatch(batch: WriteOperation[]): Promise<Array<string | null>> {
    const outcomes: Array<RowOutcome | undefined> = new Array(batch.length);
    if (batch.length > 0) {
      const { ready, values } = await this.screen(batch, outcomes);
      for (const [i, reason] of await this.missingParents(batch, values, ready)) outcomes[i] = { ok: false, reason };
    }
    return batch.map((_, i) => {
      const outcome = outcomes[i];
      return outcome && !outcome.ok ? outcome.reason : null;
    });
  }

  /**
   * Sets apart the rows Salesforce would refuse or write wrongly (an empty key, a missing record in
   * mode update, a case twin, a value with no form its field reads, a parent that is another key's
   * record), rejecting them in `outcomes`; answers the rows to send, with their values, and the deletes.
   */
  private async screen(batch: WriteOperation[], outcomes: Array<RowOutcome | undefined>): Promise<{ ready: number[]; values: Map<number, Value[]>; deletes: number[] }> {
    const sends: number[] = [];
    const updates: number[] = [];
    const deletes: number[] = [];
    batch.forEach((op, i) => {
      if (op.kind === 'delete') return deletes.push(i);
      const key = op.key[0] ?? null;
      if (key === null || key === '') {
        outcomes[i] = { ok: false, reason: `${this.externalId.name} is empty: a record is upserted by its external id, so the model's key must have a value` };
        return;
      }
      (op.kind === 'update' ? updates : sends).push(i);
    });
    if (updates.length > 0) {
      // Update mode never creates: a row goes only when its record exists now. A recorded id is not
      // enough, as the record may have been deleted in Salesforce since, and the upsert would make it again.
      const existing = await this.existingIds(updates.map((i) => (batch[i] as WriteOperation).key), false);
      for (const i of updates) {
        const key = (batch[i] as WriteOperation).key;
        if (existing.has(encodeKey(key))) sends.push(i);
        else {
          outcomes[i] = {
            ok: false,
            reason: `no ${this.object} with ${this.externalId.name} = ${soqlLiteral(this.externalId, key[0] ?? null)} (mode update does not create records; the row is tried again on the next run)`,
          };
        }
      }
      sends.sort((a, b) => a - b);
    }
    if (matchesWithoutCase(this.externalId)) {
      const twins = await this.caseTwins(batch, sends);
      for (const [i, reason] of twins) outcomes[i] = { ok: false, reason };
      if (twins.size > 0) sends.splice(0, sends.length, ...sends.filter((i) => !twins.has(i)));
    }
    // Values in the forms Salesforce reads; a row with a value that has none is rejected here, as
    // Salesforce would refuse the whole call it went in.
    const values = new Map<number, Value[]>();
    for (const i of sends) {
      const converted = this.values(batch[i] as WriteOperation);
      if (Array.isArray(converted)) values.set(i, converted);
      else outcomes[i] = { ok: false, reason: converted.reason };
    }
    const ready = sends.filter((i) => values.has(i));
    const parents = await this.parentTwins(batch, values, ready);
    for (const [i, reason] of parents) outcomes[i] = { ok: false, reason };
    return { ready: parents.size === 0 ? ready : ready.filter((i) => !parents.has(i)), values, deletes };
  }

  /**
   * Runs the units at once (the limiter paces them). A fatal failure is thrown; when every unit
   * failed transiently the batch fails as a whole (the engine retries it); otherwise the rows of a
   * unit that failed transiently are answered retryable and the engine sends only them again.
   */
  private async settle(units: WriteUnit[], outcomes: Array<RowOutcome | undefined>): Promise<void> {
    const settled = await Promise.allSettled(units.map((unit) => unit.run()));
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    const fatal = failures.find((reason) => !(reason instanceof LockstepError && reason.retryable));
    if (fatal !== undefined) throw fatal;
    if (failures.length > 0 && failures.length === units.length) {
      const first = failures[0] as LockstepError;
      const retryAfterSeconds = Math.max(...failures.map((f) => (f as LockstepError).retryAfterSeconds ?? 0));
      throw new LockstepError(first.code, first.message, { retryable: true, retryAfterSeconds: retryAfterSeconds > 0 ? retryAfterSeconds : undefined, cause: first.cause });
    }
    settled.forEach((s, n) => {
      if (s.status === 'fulfilled') {
        for (const [row, outcome] of s.value) outcomes[row] = worse(outcomes[row], outcome);
        return;
      }
      const error = s.reason as LockstepError;
      for (const row of (units[n] as WriteUnit).rows) {
        outcomes[row] = worse(outcomes[row], { ok: false, reason: error.message, retryable: true, retryAfterSeconds: error.retryAfterSeconds });
      }
    });
  }

  /**
   * The rows of `sends` whose external id differs only in case from another key's, with why they
   * are not sent: Salesforce takes both for one record, so the second would overwrite the first's.
   * A key meets its twin earlier in this run (the first one sent wins), or in a record this sync
   * delivered in an earlier run (looked up by external id for new keys once the sync has delivered).
   */
  private async caseTwins(batch: WriteOperation[], sends: number[]): Promise<Map<number, string>> {
    const twins = new Map<number, string>();
    const fresh: number[] = [];
    const rows = sends.filter((i) => {
      const text = String((batch[i] as WriteOperation).key[0]);
      return text.toLowerCase() !== text.toUpperCase();
    });
    const texts = rows.map((i) => String((batch[i] as WriteOperation).key[0]));
    // At once, before any wait: of two batches written at once, the first to get here sends its key.
    const firsts = this.options.twins.firsts(texts);
    rows.forEach((i, n) => {
      const text = texts[n] as string;
      const first = firsts[n] as string;
      if (first !== text) twins.set(i, this.twinReason(text, first, 'another row of this run, sent instead of this one'));
      else if ((batch[i] as WriteOperation).change === 'added' && this.options.target.delivered !== false) fresh.push(i);
    });
    const { target } = this.options;
    if (fresh.length === 0 || !target.recordIds || !target.sync) return twins;
    const found = await this.findByExternalId(fresh.map((i) => (batch[i] as WriteOperation).key[0] ?? null));
    // Records holding a twin of a new key: is the twin a key this sync delivered to that very record?
    const others = new Map<string, { id: string; value: string }>();
    for (const { id, value } of found) if (id !== undefined) others.set(String(value).toLowerCase(), { id, value: String(value) });
    const candidates = fresh.flatMap((i) => {
      const text = String((batch[i] as WriteOperation).key[0]);
      const other = others.get(text.toLowerCase());
      return other && other.value !== text ? [{ row: i, text, other }] : [];
    });
    if (candidates.length === 0) return twins;
    const recorded = await target.recordIds(target.sync, candidates.map((c) => encodeKey([c.other.value])));
    for (const { row, text, other } of candidates) {
      if (recorded.get(encodeKey([other.value])) !== other.id) continue;
      twins.set(row, this.twinReason(text, other.value, `which this sync delivered to ${this.object} ${other.id}; this row is sent once that key leaves the model and its record is deleted`));
    }
    return twins;
  }

  /**
   * The rows of `ready` naming a parent by an external id that Salesforce, matching it without
   * regard to case, would find in another key's record (that key's twin was rejected, or never
   * made), with why they are not sent. A parent key some sync writing the parent's object by that
   * field delivered is its own record (its recorded ids: no call); the others are looked up by SOQL.
   */
  private async parentTwins(batch: WriteOperation[], values: Map<number, Value[]>, ready: number[]): Promise<Map<number, string>> {
    const refused = new Map<number, string>();
    for (const [c, column] of this.options.plan.columns.entries()) {
      if (column.kind !== 'parent' || !matchesWithoutCase(column.parentField)) continue;
      // The parent keys with a letter (others have no twin), and the rows naming each.
      const naming = new Map<string, number[]>();
      for (const i of ready) {
        if (refused.has(i)) continue;
        // A parent set only on create does not go with a record that exists.
        if (this.createOnly[c] && recordExists(batch[i] as WriteOperation)) continue;
        const value = (values.get(i) as Value[])[c] ?? null;
        const text = value === null ? '' : String(value);
        if (text.toLowerCase() === text.toUpperCase()) continue;
        const rows = naming.get(text);
        if (rows) rows.push(i);
        else naming.set(text, [i]);
      }
      if (naming.size === 0) continue;
      const delivered = await this.deliveredParents(column.parentObject, column.parentField, [...naming.keys()]);
      const unknown = [...naming.keys()].filter((text) => !delivered.has(text));
      if (unknown.length === 0) continue;
      // Parents found by an earlier batch of the run are not asked again; those not found are, as
      // they may have been delivered since.
      const asking = unknown.filter((text) => !this.foundParents.has(parentKey(column, text)));
      const found = asking.length > 0 ? await this.findByField(column.parentObject, column.parentField, asking) : [];
      const held = new Map<string, { id: string; value: string }>();
      for (const { id, value } of found) {
        if (id === undefined) continue;
        held.set(String(value).toLowerCase(), { id, value: String(value) });
        this.foundParents.set(parentKey(column, String(value)), { id, value: String(value) });
      }
      for (const text of unknown) {
        const record = held.get(text.toLowerCase()) ?? this.foundParents.get(parentKey(column, text));
        if (!record || record.value === text) continue;
        const name = `${column.relationship}.${column.parentField.name}`;
        const field = column.parentField.name;
        const reason =
          `${name} "${text}" names the ${column.parentObject} whose ${field} is "${record.value}" (${record.id}): Salesforce matches ${field} without regard to case, ` +
          `so this row would be linked to that record — deliver the ${column.parentObject} "${text}" first (a sync writing ${column.parentObject} rejects it while "${record.value}" is there: ` +
          `give the ${column.parentObject} keys that differ by more than case, or make ${field} case-sensitive), or name "${record.value}" if that is the parent meant; this row is sent again on every run until then`;
        for (const i of naming.get(text) ?? []) refused.set(i, reason);
      }
    }
    return refused;
  }

  /**
   * For a dry run: the rows of `ready` naming a parent by external id that no sync writing the
   * parent's object delivered (or, in a plan, delivers earlier) and that SOQL does not find, with the
   * reason Salesforce's refusal of them gets in a run.
   */
  private async missingParents(batch: WriteOperation[], values: Map<number, Value[]>, ready: number[]): Promise<Map<number, string>> {
    const refused = new Map<number, string>();
    for (const [c, column] of this.options.plan.columns.entries()) {
      if (column.kind !== 'parent') continue;
      const naming = new Map<string, number[]>();
      for (const i of ready) {
        if (refused.has(i) || (this.createOnly[c] && recordExists(batch[i] as WriteOperation))) continue;
        const value = (values.get(i) as Value[])[c] ?? null;
        if (value === null || value === '') continue;
        const text = String(value);
        naming.set(text, [...(naming.get(text) ?? []), i]);
      }
      if (naming.size === 0) continue;
      const delivered = await this.deliveredParents(column.parentObject, column.parentField, [...naming.keys()]);
      const unknown = [...naming.keys()].filter((text) => !delivered.has(text) && !this.foundParents.has(parentKey(column, text)));
      if (unknown.length === 0) continue;
      const caseless = matchesWithoutCase(column.parentField);
      const found = new Set((await this.findByField(column.parentObject, column.parentField, unknown)).map(({ value }) => (caseless ? String(value).toLowerCase() : String(value))));
      for (const text of unknown) {
        if (found.has(caseless ? text.toLowerCase() : text)) continue;
        const reason = recordErrorReason('INVALID_FIELD', `Foreign key external ID: ${text} not found for field ${column.parentField.name} in entity ${column.parentObject}`);
        for (const i of naming.get(text) ?? []) refused.set(i, reason);
      }
    }
    return refused;
  }

  /**
   * Rows refused as naming a parent Salesforce does not find ("Foreign key external ID: A-1 not
   * found"), whose parent a sync delivered: that record was deleted or merged away in Salesforce
   * since, and the sync, which counts it delivered, does not send it again by itself. Their reason
   * says so and how to make it again, instead of to deliver the parent first.
   */
  private async explainMissingParents(outcomes: Array<RowOutcome | undefined>): Promise<void> {
    // Per parent column, the rows naming each parent value Salesforce did not find.
    const missing = new Map<Extract<ColumnPlan, { kind: 'parent' }>, Map<string, number[]>>();
    outcomes.forEach((outcome, i) => {
      if (!outcome || outcome.ok) return;
      const found = MISSING_PARENT.exec(outcome.reason);
      if (!found) return;
      const [, text = '', field = '', entity = ''] = found;
      const column = this.options.plan.columns.find(
        (c): c is Extract<ColumnPlan, { kind: 'parent' }> => c.kind === 'parent' && c.parentObject.toLowerCase() === entity.toLowerCase() && c.parentField.name.toLowerCase() === field.toLowerCase(),
      );
      if (!column) return;
      // Salesforce does not have it (any longer): a later batch naming it looks it up again.
      this.foundParents.delete(parentKey(column, text));
      const texts = missing.get(column) ?? new Map<string, number[]>();
      missing.set(column, texts);
      texts.set(text, [...(texts.get(text) ?? []), i]);
    });
    for (const [column, texts] of missing) {
      const delivered = await this.deliveredParents(column.parentObject, column.parentField, [...texts.keys()]);
      const object = column.parentObject;
      for (const [text, { sync, id }] of delivered) {
        for (const i of texts.get(text) ?? []) {
          const outcome = outcomes[i] as Extract<RowOutcome, { ok: false }>;
          const salesforce = outcome.reason.split(' — ')[0] as string;
          outcomes[i] = {
            ok: false,
            reason:
              `${salesforce} — sync "${sync}" delivered that ${object} (${id}), and it is no longer in Salesforce: it was deleted, or merged into another ${object}, since; ` +
              `run ${sync} with fullResync to make it again, or name the ${object} it was merged into in this row; this row is sent again on every run until then`,
          };
        }
      }
    }
  }

  /**
   * Rows refused with ENTITY_IS_DELETED, which an upsert meets when a lookup field holds the id of
   * a record deleted (or merged away) in Salesforce, most often an id a parent's sync recorded: their
   * reason names the field, the id and how to make the parent again.
   */
  private explainDeletedReferences(outcomes: Array<RowOutcome | undefined>, values: Map<number, Value[]>): void {
    const references = this.options.plan.columns.flatMap((column, c) => (column.kind === 'field' && column.field.type === 'reference' ? [{ c, field: column.field }] : []));
    if (references.length === 0) return;
    outcomes.forEach((outcome, i) => {
      if (!outcome || outcome.ok || !outcome.reason.startsWith('ENTITY_IS_DELETED:') || outcome.reason.includes(' — ')) return;
      const cells = values.get(i);
      const named = cells ? references.filter(({ c }) => cells[c] !== null && cells[c] !== undefined && cells[c] !== '') : [];
      if (named.length === 0) return;
      const parents = named.map(({ field }) => field.referenceTo.join(' or ') || 'record');
      const which = named.map(({ c, field }) => `${field.name} ${String((cells as Value[])[c])}`).join(' or ');
      const parent = parents.length === 1 ? `${/^[AEIOU]/i.test(parents[0] as string) ? 'an' : 'a'} ${parents[0]}` : 'a record';
      outcomes[i] = {
        ok: false,
        reason:
          `${outcome.reason} — ${which} names ${parent} that was deleted, or merged into another, in Salesforce since its id was recorded: ` +
          `run the sync that delivered it with fullResync to make it again (this row then takes its new id), or name the ${parents.length === 1 ? parents[0] : 'record'} it was merged into; this row is sent again on every run until then`,
      };
    });
  }

  /**
   * Which of `texts` a sync writing `object` by `field` through this connection delivered (it
   * recorded an id for the key: such a record holds that very text), with the sync and the id.
   */
  private async deliveredParents(object: string, field: FieldDescribe, texts: string[]): Promise<Map<string, { sync: string; id: string }>> {
    const { target } = this.options;
    const delivered = new Map<string, { sync: string; id: string }>();
    if (!target.syncsWriting || !target.recordIds) return delivered;
    const key = `${object}.${field.name}`.toLowerCase();
    let writing = this.parentSyncs.get(key);
    if (!writing) {
      writing = target.syncsWriting(object).then((syncs) =>
        syncs.flatMap((sync) => {
          const settings = salesforceSyncSettings.safeParse(sync.settings);
          return settings.success && settings.data.externalIdField.toLowerCase() === field.name.toLowerCase() ? [sync.slug] : [];
        }),
      );
      // A failure is not kept: the next batch asks again.
      writing.catch(() => this.parentSyncs.delete(key));
      this.parentSyncs.set(key, writing);
    }
    for (const slug of await writing) {
      const wanted = texts.filter((text) => !delivered.has(text));
      if (wanted.length === 0) break;
      const recorded = await target.recordIds(slug, wanted.map((text) => encodeKey([text])));
      for (const text of wanted) {
        const id = recorded.get(encodeKey([text]));
        if (id !== undefined) delivered.set(text, { sync: slug, id });
      }
    }
    return delivered;
  }

  private twinReason(text: string, other: string, which: string): string {
    const field = this.externalId.name;
    return (
      `${field} "${text}" is the same ${this.object} to Salesforce as "${other}", ${which}: ${field} matches without regard to case ` +
      `(it is Unique, treating "ABC" and "abc" as duplicate values), so the two would write one record — give the model keys that differ by more than case, ` +
      `or make ${field} case-sensitive in Setup › Object Manager › ${this.object} › Fields & Relationships (Unique: treat "ABC" and "abc" as different values)`
    );
  }

  /** A row's values as Salesforce reads them for their fields, or the first that has no such form. */
  private values(op: WriteOperation): Value[] | { reason: string } {
    const out: Value[] = new Array(this.options.plan.columns.length);
    for (const [i, column] of this.options.plan.columns.entries()) {
      const converted = fieldValue(column.kind === 'field' ? column.field : column.parentField, op.values[i] ?? null, this.options.target.modelColumns?.[i]);
      if (!converted.ok) return { reason: converted.reason };
      out[i] = converted.value;
    }
    return out;
  }

  /** One sObject Collections upsert of at most 200 rows. */
  private async collectionsUpsert(values: Map<number, Value[]>, rows: number[], existing: ReadonlySet<number>): Promise<Array<[number, RowOutcome]>> {
    const { client } = this.options;
    const request: SalesforceRequest = {
      method: 'PATCH',
      path: `composite/sobjects/${this.object}/${this.externalId.name}`,
      what: `upsert ${rows.length} ${this.object} records by ${this.externalId.name}`,
      json: { allOrNone: false, records: rows.map((i) => this.record(values.get(i) as Value[], existing.has(i))) },
    };
    const answer = await client.call(request);
    if (!answer.ok) {
      // One record's value its field cannot be read as refuses the whole call: the records holding
      // the value Salesforce names are rejected with its message, and the others are sent again.
      const unreadable = answer.errorCode === 'JSON_PARSER_ERROR' ? this.unreadableRows(answer.message, values, rows) : [];
      if (unreadable.length === 0) throw requestError(client, request, answer);
      const reason = `JSON_PARSER_ERROR: ${answer.message} — Salesforce cannot read this value for its field; fix its form in the model's query`;
      const rest = rows.filter((row) => !unreadable.includes(row));
      const refused = unreadable.map((row): [number, RowOutcome] => [row, { ok: false, reason }]);
      return rest.length === 0 ? refused : [...refused, ...(await this.collectionsUpsert(values, rest, existing))];
    }
    const results = answer.body;
    if (!Array.isArray(results) || results.length !== rows.length) {
      throw new LockstepError(
        ErrorCode.Internal,
        `${client.describe(request)} answered ${Array.isArray(results) ? `${results.length} results` : 'no array of results'} for ${rows.length} records sent: ${JSON.stringify(results)?.slice(0, 200)}`,
      );
    }
    return rows.map((row, n) => [row, recordOutcome(results[n], client)]);
  }

  /**
   * The rows holding the value a JSON_PARSER_ERROR names ("Cannot deserialize instance of time from
   * VALUE_STRING value 25:00 or request may be missing a required field at [line:1, column:80]") in a
   * field of the type it names (in any field when none has that type); none when it names no value.
   */
  private unreadableRows(message: string, values: Map<number, Value[]>, rows: number[]): number[] {
    const match = /instance of (\w+) from \w+ value ([\s\S]*?)(?: or request may be missing a required field)?(?: at \[line:\d+, ?column:\d+\])?$/.exec(message);
    if (!match) return [];
    const [, type = '', text = ''] = match;
    const columns = this.options.plan.columns.map((column) => (column.kind === 'field' ? column.field : column.parentField));
    const typed = columns.flatMap((field, i) => (field.type.toLowerCase() === type.toLowerCase() ? [i] : []));
    const candidates = typed.length > 0 ? typed : columns.map((_, i) => i);
    return rows.filter((row) => {
      const cells = values.get(row) as Value[];
      return candidates.some((i) => cells[i] !== null && cells[i] !== undefined && String(cells[i]) === text);
    });
  }

  /**
   * A record for sObject Collections: fields by API name, parents by external id nested under their
   * relationship; without the create-only fields when the record exists.
   */
  private record(values: Value[], exists: boolean): Record<string, unknown> {
    const record: Record<string, unknown> = { attributes: { type: this.object } };
    this.options.plan.columns.forEach((column, i) => {
      if (exists && this.createOnly[i]) return;
      const value = values[i] ?? null;
      if (column.kind === 'field') record[column.field.name] = value;
      else if (value === null || value === '') record[column.reference.name] = null;
      else {
        const nested = isRecord(record[column.relationship]) ? (record[column.relationship] as Record<string, unknown>) : {};
        record[column.relationship] = { ...nested, [column.parentField.name]: value };
      }
    });
    return record;
  }

  private async bulkUpsert(batch: WriteOperation[], values: Map<number, Value[]>, rows: number[], existing: ReadonlySet<number>): Promise<Array<[number, RowOutcome]>> {
    const { plan } = this.options;
    const keyColumn = plan.keyColumn;
    // A parent named by external id is cleared by #N/A in its lookup field's own column (AccountId):
    // #N/A clears a field, while a relationship column's cell is the value a parent is looked up by.
    const parents = plan.columns.flatMap((column, i) => (column.kind === 'parent' ? [{ i, field: column.reference.name }] : []));
    const lines: string[] = new Array(rows.length);
    const keys: string[] = new Array(rows.length);
    rows.forEach((row, n) => {
      const cells = values.get(row) as Value[];
      // An empty cell leaves a field as it is: a record that exists keeps its create-only fields.
      const exists = existing.has(row);
      const none = (i: number) => cells[i] === null || cells[i] === undefined || cells[i] === '';
      lines[n] = csvLine([
        ...plan.columns.map((column, i) => (exists && this.createOnly[i] ? '' : column.kind === 'parent' && none(i) ? '' : csvText(cells[i] ?? null))),
        ...parents.map(({ i }) => (!(exists && this.createOnly[i]) && none(i) ? '#N/A' : '')),
      ]);
      keys[n] = csvText(keyColumn >= 0 ? (cells[keyColumn] ?? null) : ((batch[row] as WriteOperation).key[0] ?? null));
    });
    const outcomes = await this.options.bulk.upsert({
      object: this.object,
      externalIdField: this.externalId.name,
      header: [...plan.columns.map(csvHeader), ...parents.map(({ field }) => field)],
      lines,
      keys,
      signal: this.options.target.signal,
    });
    return rows.map((row, n) => [row, outcomes[n] as RowOutcome]);
  }

  /** The delete calls for rows leaving the model: their records' ids (recorded, or looked up), 200 a call. */
  private async deleteUnits(batch: WriteOperation[], deletes: number[], outcomes: Array<RowOutcome | undefined>): Promise<WriteUnit[]> {
    const ids = await this.existingIds(deletes.map((i) => (batch[i] as WriteOperation).key));
    const byId = new Map<string, number[]>();
    for (const row of deletes) {
      const found = ids.get(encodeKey((batch[row] as WriteOperation).key));
      // Neither recorded nor found: the record is already gone, which is what a delete wants.
      if (!found || found.length === 0) {
        outcomes[row] = { ok: true };
        continue;
      }
      for (const id of found) {
        const rows = byId.get(id);
        if (rows) rows.push(row);
        else byId.set(id, [row]);
      }
    }
    return chunks([...byId.keys()], COLLECTION_LIMIT).map((chunk) => ({
      rows: [...new Set(chunk.flatMap((id) => byId.get(id) ?? []))],
      run: () => this.collectionsDelete(chunk, byId),
    }));
  }

  private async collectionsDelete(ids: string[], byId: Map<string, number[]>): Promise<Array<[number, RowOutcome]>> {
    const { client } = this.options;
    const request: SalesforceRequest = {
      method: 'DELETE',
      path: `composite/sobjects?ids=${ids.map(encodeURIComponent).join(',')}&allOrNone=false`,
      what: `delete ${ids.length} ${this.object} records`,
    };
    const answer = await client.call(request);
    if (!answer.ok) throw requestError(client, request, answer);
    const results = answer.body;
    if (!Array.isArray(results) || results.length !== ids.length) {
      throw new LockstepError(ErrorCode.Internal, `${client.describe(request)} answered ${Array.isArray(results) ? `${results.length} results` : 'no array of results'} for ${ids.length} ids sent`);
    }
    const out: Array<[number, RowOutcome]> = [];
    ids.forEach((id, n) => {
      const outcome = recordOutcome(results[n], client);
      const gone = !outcome.ok && [...GONE_CODES].some((code) => outcome.reason.startsWith(`${code}:`));
      for (const row of byId.get(id) ?? []) out.push([row, gone || outcome.ok ? { ok: true } : outcome]);
    });
    return out;
  }

  /**
   * The ids of the records of `keys` (encoded key → ids): those this sync recorded (unless
   * `useRecorded` is false), the others looked up by external id with SOQL (several at once,
   * within Salesforce's URI limit).
   */
  private async existingIds(keys: Value[][], useRecorded = true): Promise<Map<string, string[]>> {
    const { target } = this.options;
    const encoded = keys.map((key) => encodeKey(key));
    const recorded = useRecorded && target.recordIds && target.sync ? await target.recordIds(target.sync, encoded) : new Map<string, string>();
    const found = new Map<string, string[]>();
    // The keys still to find, by the external id as Salesforce compares it.
    const wanted = new Map<string, { value: Value; keys: string[] }>();
    keys.forEach((key, i) => {
      const k = encoded[i] as string;
      const id = recorded.get(k);
      if (id !== undefined) return found.set(k, [id]);
      const value = key[0] ?? null;
      if (value === null || (isNumberField(this.externalId) && !Number.isFinite(Number(value)))) return;
      const match = matchText(this.externalId, value);
      const entry = wanted.get(match);
      if (entry) entry.keys.push(k);
      else wanted.set(match, { value, keys: [k] });
    });
    if (wanted.size === 0) return found;
    const records = await this.findByExternalId([...wanted.values()].map((w) => w.value));
    for (const { id, value } of records) {
      if (id === undefined) continue;
      for (const k of wanted.get(matchText(this.externalId, value))?.keys ?? []) {
        const ids = found.get(k);
        if (ids) ids.push(id);
        else found.set(k, [id]);
      }
    }
    return found;
  }

  /**
   * The records whose external id SOQL finds equal to one of `values` (SOQL ignores case: the
   * caller sets apart what upserts would not match), with the value each holds: several queries at
   * once, each within Salesforce's URI limit.
   */
  private findByExternalId(values: Value[]): Promise<Array<{ id: string | undefined; value: Value }>> {
    return this.findByField(this.object, this.externalId, values);
  }

  /** As findByExternalId, for the records of `object` by one of its fields (a parent's external id). */
  private async findByField(object: string, described: FieldDescribe, values: Value[]): Promise<Array<{ id: string | undefined; value: Value }>> {
    const literals = [...new Set(values.flatMap((value) => (value === null || (isNumberField(described) && !Number.isFinite(Number(value))) ? [] : [soqlLiteral(described, value)])))];
    if (literals.length === 0) return [];
    const field = described.name;
    const groups: string[][] = [[]];
    let size = 0;
    for (const literal of literals) {
      const cost = encodeURIComponent(literal).length + 3;
      if (size + cost > SOQL_VALUES_BUDGET && (groups.at(-1) as string[]).length > 0) {
        groups.push([]);
        size = 0;
      }
      (groups.at(-1) as string[]).push(literal);
      size += cost;
    }
    const answers = await Promise.all(
      groups.map((group) => this.query(`SELECT Id, ${field} FROM ${object} WHERE ${field} IN (${group.join(',')})`, `look up ${group.length} ${object} records by ${field}`)),
    );
    return answers.flat().flatMap((record) => {
      const value = record[field] ?? Object.entries(record).find(([name]) => name.toLowerCase() === field.toLowerCase())?.[1];
      if (value === undefined || value === null || typeof value === 'object') return [];
      return [{ id: typeof record.Id === 'string' ? record.Id : undefined, value: value as Value }];
    });
  }

  /** Every record a SOQL query finds, following `nextRecordsUrl`. */
  private async query(soql: string, what: string): Promise<Array<Record<string, unknown>>> {
    const { client } = this.options;
    const records: Array<Record<string, unknown>> = [];
    let request: SalesforceRequest = { method: 'GET', path: `query?q=${encodeURIComponent(soql)}`, what };
    for (;;) {
      const answer = await client.call(request);
      if (!answer.ok) throw requestError(client, request, answer);
      const body = answer.body;
      if (!isRecord(body) || !Array.isArray(body.records)) {
        throw new LockstepError(ErrorCode.Internal, `${client.describe(request)} answered something that is not a query result: ${JSON.stringify(body)?.slice(0, 200)}`);
      }
      records.push(...body.records.filter(isRecord));
      if (body.done !== false || typeof body.nextRecordsUrl !== 'string') return records;
      request = { method: 'GET', path: body.nextRecordsUrl, what: `${what} (next page)` };
    }
  }
}

/** A Collections result as a row's outcome: its id, or its errors as `statusCode: message`. */
function recordOutcome(result: unknown, client: SalesforceClient): RowOutcome {
  if (!isRecord(result) || typeof result.success !== 'boolean') {
    return { ok: false, reason: `Salesforce answered a result that is not one: ${client.scrub(JSON.stringify(result) ?? 'undefined').slice(0, 200)}` };
  }
  if (result.success) return typeof result.id === 'string' ? { ok: true, id: result.id } : { ok: true };
  const errors = Array.isArray(result.errors) ? result.errors.filter(isRecord) : [];
  if (errors.length === 0) return { ok: false, reason: 'refused by Salesforce (its result gives no error)' };
  const reason = errors.map((e) => recordErrorReason(String(e.statusCode ?? 'UNKNOWN'), String(e.message ?? ''))).join('; ');
  const retryable = errors.every((e) => RETRYABLE_RECORD_CODES.has(String(e.statusCode)));
  return retryable ? { ok: false, reason: client.scrub(reason), retryable: true } : { ok: false, reason: client.scrub(reason) };
}

/** A request-level error answer as a fatal error naming the call and, when there is one, the fix. */
function requestError(client: SalesforceClient, request: SalesforceRequest, answer: Extract<SalesforceAnswer, { ok: false }>): LockstepError {
  const what = `${client.describe(request)} answered ${answer.status} ${answer.errorCode}: ${answer.message}`;
  switch (answer.errorCode) {
    case 'INVALID_FIELD':
    case 'INVALID_TYPE':
    case 'NOT_FOUND':
      return new LockstepError(ErrorCode.Schema, `${what} — the object or its fields changed since the run started, or the Run As user cannot see them; check the sync's object and mappings`);
    case 'INSUFFICIENT_ACCESS':
    case 'INSUFFICIENT_ACCESS_OR_READONLY':
    case 'API_DISABLED_FOR_ORG':
    case 'API_CURRENTLY_DISABLED':
      return new LockstepError(ErrorCode.Connection, `${what} — give the connected app's Run As user access to the object and the API Enabled permission`);
    default:
      return new LockstepError(ErrorCode.Internal, what);
  }
}

/**
 * The parents a run found in Salesforce by SOQL, by object, field and external id as Salesforce
 * matches it (without regard to case), with the id and the text the record holds. Held in memory up
 * to a bound: past it, those used longest ago make room, and a batch naming one looks it up again.
 * A parent not found is not held (it may be delivered while the run goes on).
 */
type FoundParents = LRUCache<string, { id: string; value: string }>;

function foundParents(budgetBytes: number): FoundParents {
  return new LRUCache({
    maxSize: budgetBytes,
    sizeCalculation: (record, key) => ENTRY_BYTES + 2 * (key.length + record.id.length + record.value.length),
  });
}

/** A parent's place in FoundParents: its object, the field naming it, and its text as Salesforce matches it. */
function parentKey(column: Extract<ColumnPlan, { kind: 'parent' }>, text: string): string {
  return `${column.parentObject}.${column.parentField.name}\u0000${text.toLowerCase()}`;
}

/** Whether a row's record is known to exist: this sync delivered it before, or update mode found it. */
function recordExists(op: WriteOperation): boolean {
  return op.kind === 'update' || op.change === 'changed';
}

/** Whether Salesforce refused a record for fields it does not let an update set (a create-only field, on a record that exists). */
function refusedAsUpdate(outcome: RowOutcome | undefined): boolean {
  return outcome !== undefined && !outcome.ok && outcome.reason.startsWith('INVALID_FIELD_FOR_INSERT_UPDATE:');
}

/** The worse of two outcomes of one row (a row whose records went in several calls). */
function worse(current: RowOutcome | undefined, next: RowOutcome): RowOutcome {
  if (!current) return next;
  if (current.ok) return next.ok ? current : next;
  if (next.ok) return current;
  return current.retryable && !next.retryable ? next : current;
}

/** A value, in its field's form, as a Bulk API 2.0 CSV cell: `#N/A` clears a field (an empty cell would leave it alone). */
function csvText(value: Value): string {
  if (value === null || value === '') return '#N/A';
  return typeof value === 'string' ? value : String(value);
}

/**
 * A value as Salesforce matches records on an external id: numbers as numbers, text without regard
 * to case where the field is so matched (SOQL, which ignores case, finds more; they are set apart here).
 */
function matchText(field: FieldDescribe, value: Value): string {
  if (isNumberField(field)) return String(Number(value));
  const text = String(value);
  return matchesWithoutCase(field) ? text.toLowerCase() : text;
}

/** A SOQL literal for a field's value: numbers bare, text quoted with SOQL's escapes. */
function soqlLiteral(field: FieldDescribe, value: Value): string {
  if (isNumberField(field)) return String(Number(value));
  const text = String(value).replace(/[\\'"\n\r\t\f\b]/g, (ch) => SOQL_ESCAPES[ch] ?? ch);
  return `'${text}'`;
}

const SOQL_ESCAPES: Record<string, string> = { '\\': '\\\\', "'": "\\'", '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\f': '\\f', '\b': '\\b' };

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

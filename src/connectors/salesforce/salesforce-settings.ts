/**
 * The Salesforce kind's settings: the connection's (where to log in, the connected app's client
 * credentials, the API version, how many calls at once) and a sync's (the external id field records
 * are matched on, and when a run switches from sObject Collections to Bulk API 2.0).
 */
import { z } from 'zod';
import { hinted } from '../../core/hints.js';
import { intSetting, isTemplated, urlSetting } from '../settings.js';
import type { DestinationCapabilities } from '../../core/ports.js';

/**
 * Salesforce's generic login hosts. The client credentials flow does not log in there, only at an
 * org's My Domain login URL, so a connection must name its own.
 */
export const GENERIC_LOGIN_HOSTS: readonly string[] = ['login.salesforce.com', 'test.salesforce.com'];
/** The REST API version used unless a connection says otherwise (Winter '25). */
export const SALESFORCE_API_VERSION = 'v62.0';

const API_VERSION = /^v?\d{2,3}\.\d$/;
/** The first REST API version with sObject Collections upsert by external id, which every sync's writes use (Summer '19). */
export const FIRST_API_VERSION = 46;

const LOGIN_URL_DESCRIPTION =
  "Where the OAuth 2.0 client credentials flow logs in: your org's My Domain login URL, e.g. https://yourcompany.my.salesforce.com (a sandbox: https://yourcompany--sandbox.sandbox.my.salesforce.com); the flow does not log in at login.salesforce.com or test.salesforce.com. The token's instance_url is then used for every call.";

/** The host of a URL, lowercased; empty when it is not one (urlSetting reports that). */
function hostOf(value: string): string {
  try {
    return new URL(value).hostname.toLowerCase();
  } catch {
    return '';
  }
}

export const salesforceConnectionSettings = z.strictObject({
  loginUrl: urlSetting(['https:', 'http:'], 'https://yourcompany.my.salesforce.com', LOGIN_URL_DESCRIPTION, 'loginUrl')
    .refine((value) => isTemplated(value) || !GENERIC_LOGIN_HOSTS.includes(hostOf(value)), {
      error: hinted(
        `loginUrl is Salesforce's generic login host, where the client credentials flow is not supported`,
        "use your org's My Domain login URL (Setup › My Domain), e.g. https://yourcompany.my.salesforce.com; a sandbox's: https://yourcompany--sandbox.sandbox.my.salesforce.com",
      ),
    })
    .meta({ description: LOGIN_URL_DESCRIPTION }),
  clientId: z
    .string()
    .min(1, { error: hinted('clientId is empty', 'give the connected app\'s Consumer Key, e.g. "${SALESFORCE_CLIENT_ID}"') })
    .meta({ description: 'The connected app\'s Consumer Key (the app needs the Client Credentials Flow enabled, with a Run As user); usually "${SALESFORCE_CLIENT_ID}". Never logged or shown.' }),
  clientSecret: z
    .string()
    .min(1, { error: hinted('clientSecret is empty', 'give the connected app\'s Consumer Secret, e.g. "${SALESFORCE_CLIENT_SECRET}"') })
    .meta({ description: 'The connected app\'s Consumer Secret; usually "${SALESFORCE_CLIENT_SECRET}". Never logged or shown.' }),
  apiVersion: z
    .string()
    .refine((value) => isTemplated(value) || API_VERSION.test(value), {
      error: hinted('apiVersion is not an API version', `write it like ${SALESFORCE_API_VERSION} or ${SALESFORCE_API_VERSION.slice(1)}`),
    })
    .refine((value) => isTemplated(value) || !API_VERSION.test(value) || Number(apiVersionNumber(value)) >= FIRST_API_VERSION, {
      error: hinted(
        `apiVersion is older than ${FIRST_API_VERSION}.0, the first that upserts records by external id through sObject Collections (Salesforce answers 404 to it under older versions)`,
        `write v${FIRST_API_VERSION}.0 or later, e.g. ${SALESFORCE_API_VERSION}`,
      ),
    })
    .default(SALESFORCE_API_VERSION)
    .meta({ description: `The REST API version, e.g. ${SALESFORCE_API_VERSION} or ${SALESFORCE_API_VERSION.slice(1)}, ${FIRST_API_VERSION}.0 or later (default: ${SALESFORCE_API_VERSION}).` }),
  concurrency: intSetting(
    1,
    25,
    4,
    'Calls under way at once through this connection, by every run together, and batches of a run written at once (Salesforce allows 25 long-running calls per org)',
  ),
  timeoutMs: intSetting(1_000, 600_000, 30_000, 'Milliseconds a call may take before it counts as a transient failure and is retried (Bulk API uploads get one more second per MB)'),
  bulkJobTimeoutMinutes: intSetting(1, 24 * 60, 60, 'Minutes a Bulk API 2.0 job may take, from its upload to JobComplete, before the run gives up on it and aborts it'),
});
export type SalesforceConnectionSettings = z.output<typeof salesforceConnectionSettings>;

/** A sync's settings for a Salesforce destination, written next to its own fields. */
export const salesforceSyncSettings = z.strictObject({
  externalIdField: z
    .string({ error: hinted('externalIdField is missing', 'name the External ID field records are upserted on, e.g. externalIdField: External_Id__c') })
    .regex(/^[A-Za-z][A-Za-z0-9_]*$/, {
      error: hinted('externalIdField must be a field\'s API name', 'e.g. External_Id__c (letters, digits and _, no dots)'),
    })
    .meta({
      description:
        'The API name of the sObject\'s External ID field that records are upserted on, e.g. External_Id__c. The model\'s primary key column is mapped to it: mappings: [ { from: id, to: External_Id__c } ].',
    }),
  bulkThreshold: intSetting(
    0,
    1_000_000,
    10_000,
    'A run that plans more rows than this writes through Bulk API 2.0 ingest jobs instead of sObject Collections (200 records a call); the run holds this many planned rows before its first write to decide',
  ),
  bulkJobSize: intSetting(1, 500_000, 50_000, 'Rows per Bulk API 2.0 ingest job (a job is also split to stay under its 100 MB upload)'),
});
export type SalesforceSyncSettings = z.output<typeof salesforceSyncSettings>;

/** `62.0` for `v62.0` or `62.0`: the form a path takes after `/services/data/v`. */
export function apiVersionNumber(version: string): string {
  return version.replace(/^v/, '');
}

/** What every Salesforce destination can do. */
export const SALESFORCE_CAPABILITIES: DestinationCapabilities = { deletes: true, upsert: true, maxBatchSize: 200, recordIds: true };

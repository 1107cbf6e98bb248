/** Salesforce, as a destination: sObject Collections, Bulk API 2.0 above a threshold, parents by external id. */
export { salesforceConnector } from './kind.js';
export { SalesforceDestination, type SalesforceDestinationOptions } from './salesforce-destination.js';
export { CaseTwins, CASE_TWIN_BYTES } from '../case-twins.js';
export { SALESFORCE_CAPABILITIES } from './salesforce-settings.js';
export { salesforceConnectionSettings, salesforceSyncSettings, SALESFORCE_API_VERSION, GENERIC_LOGIN_HOSTS } from './salesforce-settings.js';
export type { SalesforceConnectionSettings, SalesforceSyncSettings } from './salesforce-settings.js';
export { REQUEST_LIMIT_PAUSE_SECONDS } from './salesforce-client.js';

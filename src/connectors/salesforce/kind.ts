/** Salesforce, as a destination: sObject Collections, Bulk API 2.0 above a threshold, parents by external id. */
import type { ConnectorKind } from '../../core/connector-kind.js';
import { SALESFORCE_CAPABILITIES, salesforceConnectionSettings, salesforceSyncSettings, type SalesforceConnectionSettings, type SalesforceSyncSettings } from './salesforce-settings.js';

export const salesforceConnector: ConnectorKind<SalesforceConnectionSettings, SalesforceSyncSettings> = {
  type: 'salesforce',
  description:
    'A Salesforce org, through a connected app\'s client credentials; a sync upserts an sObject by an external id field (sObject Collections, Bulk API 2.0 above bulkThreshold rows), parents by their external id.',
  settings: salesforceConnectionSettings,
  secrets: ['clientId', 'clientSecret'],
  example: '{ type: salesforce, loginUrl: "https://yourcompany.my.salesforce.com", clientId: "${SALESFORCE_CLIENT_ID}", clientSecret: "${SALESFORCE_CLIENT_SECRET}" }',
  preload: () => import('./salesforce-destination.js'),
  destination: {
    capabilities: SALESFORCE_CAPABILITIES,
    syncSettings: salesforceSyncSettings,
    open: async (settings, context) => (await import('./salesforce-destination.js')).SalesforceDestination.open(settings, context),
  },
};

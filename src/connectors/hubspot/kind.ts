/** HubSpot's CRM, as a destination: batch upserts by a unique property, deletes, and associations to parents' records. */
import type { ConnectorKind } from '../../core/connector-kind.js';
import { checkAssociationParents, HUBSPOT_CAPABILITIES, hubspotConnectionSettings, hubspotSyncSettings, type HubSpotConnectionSettings, type HubSpotSyncSettings } from './hubspot-settings.js';

export const hubspotConnector: ConnectorKind<HubSpotConnectionSettings, HubSpotSyncSettings> = {
  type: 'hubspot',
  description: "HubSpot's CRM (contacts, companies, deals, custom objects), written with a private app's `accessToken`, or an OAuth app's `clientId`, `clientSecret` and `refreshToken`.",
  settings: hubspotConnectionSettings,
  secrets: ['accessToken', 'clientSecret', 'refreshToken'],
  example: '{ type: hubspot, accessToken: "${HUBSPOT_TOKEN}" }',
  preload: () => import('./hubspot-destination.js'),
  destination: {
    capabilities: HUBSPOT_CAPABILITIES,
    syncSettings: hubspotSyncSettings,
    checkSync: checkAssociationParents,
    open: async (settings, context) => (await import('./hubspot-destination.js')).HubSpotDestination.open(settings, context),
  },
};

/** HubSpot's CRM, as a destination: batch upserts by a unique property, deletes, and associations to parents' records. */
export { hubspotConnector } from './kind.js';
export { HubSpotDestination } from './hubspot-destination.js';
export type { HubSpotConnectionSettings, HubSpotSyncSettings } from './hubspot-settings.js';

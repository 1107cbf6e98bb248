/** Any JSON API over HTTP(S), as a destination: requests built from Liquid templates, a shared rate limit. */
export { httpConnector } from './kind.js';
export { HttpDestination } from './http-destination.js';
export { HTTP_CAPABILITIES } from './http-settings.js';
export { httpConnectionSettings, httpSyncSettings, HttpMethod } from './http-settings.js';
export type { HttpConnectionSettings, HttpSyncSettings } from './http-settings.js';

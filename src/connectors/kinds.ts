/**
 * The connector kinds as the registry needs them: each kind's declaration (settings, secrets,
 * capabilities), light to load. A kind's implementation (its driver or HTTP client) is loaded when a
 * connection of that kind is first opened, so a command that opens none starts without them.
 */
export { postgresConnector } from './postgres/kind.js';
export { mysqlConnector } from './mysql/kind.js';
export { sqliteConnector } from './sqlite/kind.js';
export { duckdbConnector } from './duckdb/kind.js';
export { httpConnector } from './http/kind.js';
export { salesforceConnector } from './salesforce/kind.js';
export { hubspotConnector } from './hubspot/kind.js';
export { createRateLimiter } from './rate-limiter.js';

/** The connector kinds: one folder each, each declaring its settings, secrets, capabilities and how it opens. */
export { postgresConnector, PostgresSource, PostgresDestination } from './postgres/index.js';
export { sqliteConnector, SqliteSource, SqliteDestination } from './sqlite/index.js';
export { duckdbConnector, DuckDbSource } from './duckdb/index.js';
export { mysqlConnector } from './mysql/index.js';
export { httpConnector } from './http/index.js';
export { salesforceConnector } from './salesforce/index.js';
export { hubspotConnector } from './hubspot/index.js';
export type { PostgresSourceOptions } from './postgres/postgres-source.js';
export type { PostgresDestinationOptions } from './postgres/postgres-destination.js';
export type { SqliteSourceOptions } from './sqlite/sqlite-source.js';
export type { SqliteDestinationOptions } from './sqlite/sqlite-destination.js';
export type { DuckDbSourceOptions } from './duckdb/duckdb-source.js';
export { createRateLimiter } from './rate-limiter.js';

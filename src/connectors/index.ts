/** The connectors: one source or destination per kind of database, each implementing a core port. */
export { PostgresSource, type PostgresSourceOptions } from './sources/postgres-source.js';
export { DuckDbSource, type DuckDbSourceOptions } from './sources/duckdb-source.js';
export { SqliteSource, type SqliteSourceOptions } from './sources/sqlite-source.js';
export { PostgresDestination, type PostgresDestinationOptions } from './destinations/postgres-destination.js';
export { SqliteDestination, type SqliteDestinationOptions } from './destinations/sqlite-destination.js';

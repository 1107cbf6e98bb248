/** PostgreSQL, as a source (COPY out, rows kept in COPY text) and as a destination (COPY in, merge). */
export { postgresConnector } from './kind.js';
export { PostgresDestination } from './postgres-destination.js';
export { PostgresSource } from './postgres-source.js';

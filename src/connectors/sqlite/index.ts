/** SQLite files, as a source (read-only) and as a destination. */
export { sqliteConnector } from './kind.js';
export { SqliteDestination } from './sqlite-destination.js';
export { SqliteSource } from './sqlite-source.js';

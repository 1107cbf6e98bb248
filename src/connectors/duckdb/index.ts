/** DuckDB files, as a source (read-only, column-wise). */
export { duckdbConnector } from './kind.js';
export { DuckDbSource } from './duckdb-source.js';

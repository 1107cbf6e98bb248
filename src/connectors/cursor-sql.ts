/**
 * The change cursor's SQL for a source's dialect (core/ports.ts CursorSql): the model's query is
 * wrapped as a subquery, so any query of the source works, and an index on the cursor column
 * serves both statements when the query is a plain one over a table.
 */
import type { CursorSql } from '../core/ports.js';

export interface CursorDialect {
  /** An identifier, quoted. */
  quote(name: string): string;
  /** An expression as the text `highest` returns (identity where the value is kept as it is). */
  asText(expression: string): string;
  /** A text value as a string literal. */
  literal(value: string): string;
}

export function cursorSql(dialect: CursorDialect): CursorSql {
  const model = (query: string) => `(\n${query.replace(/[\s;]+$/, '')}\n) AS lockstep_q`;
  return {
    highest: (query, column) => `SELECT ${dialect.asText(`max(lockstep_q.${dialect.quote(column)})`)} AS lockstep_high FROM ${model(query)}`,
    // `>=`: rows written at the last value after it was read are read again (and skipped when unchanged).
    after: (query, column, value) =>
      `SELECT * FROM ${model(query)} WHERE lockstep_q.${dialect.quote(column)} >= ${typeof value === 'number' ? String(value) : dialect.literal(value)}`,
  };
}

const doubleQuoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
const singleQuoted = (value: string) => `'${value.replace(/'/g, "''")}'`;

/**
 * PostgreSQL: the text form, compared with the column after PostgreSQL casts the literal to its type.
 * An escape string (E'...'), whose backslashes escape whatever the server's standard_conforming_strings:
 * in a plain literal they escape only where it is off, and a value's `\'` would end the string there.
 */
export const postgresCursor = cursorSql({ quote: doubleQuoted, asText: (e) => `(${e})::text`, literal: (value) => `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` });
/** DuckDB: as PostgreSQL, in a plain literal (DuckDB's backslashes never escape). */
export const duckDbCursor = cursorSql({ quote: doubleQuoted, asText: (e) => `CAST(${e} AS VARCHAR)`, literal: singleQuoted });
/** SQLite: values kept as they are (an integer cursor compares as a number, a text one as text). */
export const sqliteCursor = cursorSql({ quote: doubleQuoted, asText: (e) => e, literal: singleQuoted });
/** MySQL and MariaDB: backslashes escape in string literals unless the server says otherwise. */
export const mysqlCursor = cursorSql({
  quote: (name) => `\`${name.replace(/`/g, '``')}\``,
  asText: (e) => `CAST(${e} AS CHAR)`,
  literal: (value) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`,
});

/**
 * Building blocks for the kinds' settings schemas. A setting may hold `${ENV}` templates: the
 * schemas check a templated value only for what templates cannot change, and check it whole once
 * the run has resolved the templates.
 */
import { z } from 'zod';
import { hinted } from '../core/hints.js';

export { isTemplated, urlSetting } from '../core/url-setting.js';

/** A file path setting, relative to the workspace folder or absolute. */
export function pathSetting(description: string) {
  return z.string().min(1, { error: hinted('path is empty', 'write the file path, relative to the workspace folder') }).meta({ description });
}

/** A whole number setting within bounds, with a default. */
export function intSetting(min: number, max: number, fallback: number, description: string) {
  return z.number().int().min(min).max(max).default(fallback).meta({ description: `${description} (default: ${fallback})` });
}

/**
 * A duration setting in `unit` (e.g. seconds), a positive number at most `max` (fractions allowed),
 * with a default.
 */
export function durationSetting(unit: 'seconds' | 'minutes', max: number, fallback: number, description: string) {
  return z
    .number()
    .positive({ error: hinted(`the timeout must be more than 0 ${unit}`, `e.g. ${fallback}`) })
    .max(max)
    .default(fallback)
    .meta({ description: `${description} (in ${unit}; default: ${fallback})` });
}

/**
 * `auditLog: { schema }`: run history appended to tables in that schema of this database
 * (core/audit-log.ts). Optional; kinds that can keep an audit log declare it.
 */
export function auditLogSetting() {
  return z
    .strictObject({
      schema: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, { error: hinted('auditLog.schema must be a plain name', 'letters, digits and _, starting with a letter or _, e.g. lockstep_audit') })
        .meta({ description: 'The schema the audit tables (sync_runs, sequence_runs, rejected_rows) live in; created when missing (SQLite: a name prefix of the tables).' }),
    })
    .optional()
    .meta({ description: 'Append every run that reads or writes through this connection (sync runs, sequence runs, rejected rows) to tables in this database, once per run.' });
}
/** Where a source's syncs keep their snapshot and compare the model with it (engine/warehouse-planner.ts). */
export const plannerSetting = z
  .enum(['store', 'warehouse', 'auto'], {
    error: (issue) => hinted(`planner must be store, warehouse or auto, got ${JSON.stringify(issue.input)}`, 'e.g. planner: warehouse'),
  })
  .default('store')
  .meta({
    description:
      "Where syncs reading this source keep their snapshot: store (Lockstep's store, default), warehouse (a schema of the source, compared there by SQL; only changed rows travel), or auto (warehouse when the schema can be created, else store)",
  });

/** The schema of the source the planner in the warehouse keeps its tables in. */
export const plannerSchemaSetting = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, { error: hinted('plannerSchema must be a plain schema name', 'e.g. plannerSchema: lockstep_planner') })
  .default('lockstep_planner')
  .meta({ description: 'Schema of the source holding the planner tables with planner: warehouse or auto (default: lockstep_planner); one per Lockstep workspace' });

/** DuckDB files, as a source (read-only, column-wise). */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { pathSetting, plannerSchemaSetting, plannerSetting } from '../settings.js';

const settings = z.strictObject({
  path: pathSetting('DuckDB file, relative to the workspace folder (or absolute); may hold ${ENV} templates.'),
  planner: plannerSetting,
  plannerSchema: plannerSchemaSetting,
  allowedDirectories: z
    .array(z.string().min(1, 'a folder, relative to the workspace folder or absolute, or "*"'))
    .optional()
    .describe(
      'Folders a model may read and write files in (read_csv, Parquet, COPY ... TO), relative to the workspace folder or absolute, besides the workspace folder and the DuckDB file\'s own (default: none); "*" lets a model reach any file and load extensions, as DuckDB does.',
    ),
});

/** The folders a source's models may reach files in (see DuckDbSource), absolute, or `any`. */
function allowedDirectories(given: readonly string[] | undefined, baseDir: string | undefined): readonly string[] | 'any' {
  if (given?.includes('*')) return 'any';
  return (given ?? []).map((folder) => (isAbsolute(folder) ? folder : resolve(baseDir ?? process.cwd(), folder)));
}

export const duckdbConnector: ConnectorKind<z.output<typeof settings>> = {
  type: 'duckdb',
  description: 'A DuckDB file, at `path` (source only).',
  settings,
  secrets: [],
  paths: ['path'],
  example: '{ type: duckdb, path: warehouse.duckdb }',
  preload: () => import('./duckdb-source.js'),
  source: {
    open: async (s, context) =>
      (await import('./duckdb-source.js')).DuckDbSource.open(
        {
          path: s.path,
          planner: { mode: s.planner, schema: s.plannerSchema },
          workspaceDir: context.baseDir,
          allowedDirectories: allowedDirectories(s.allowedDirectories, context.baseDir),
          protectedFiles: context.protectedFiles,
        },
        context,
      ),
  },
};

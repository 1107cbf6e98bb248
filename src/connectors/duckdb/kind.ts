/** DuckDB files, as a source (read-only, column-wise). */
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { pathSetting, plannerSchemaSetting, plannerSetting } from '../settings.js';

const settings = z.strictObject({
  path: pathSetting('DuckDB file, relative to the workspace folder (or absolute); may hold ${ENV} templates.'),
  planner: plannerSetting,
  plannerSchema: plannerSchemaSetting,
});

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
        { path: s.path, planner: { mode: s.planner, schema: s.plannerSchema }, workspaceDir: context.baseDir },
        context,
      ),
  },
};

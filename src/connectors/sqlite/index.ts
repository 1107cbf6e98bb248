/** SQLite files, as a source (read-only) and as a destination. */
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { pathSetting } from '../settings.js';
import { SqliteDestination } from './sqlite-destination.js';
import { SqliteSource } from './sqlite-source.js';

const settings = z.strictObject({
  path: pathSetting('SQLite file, relative to the workspace folder (or absolute); may hold ${ENV} templates.'),
});

export const sqliteConnector: ConnectorKind<z.output<typeof settings>> = {
  type: 'sqlite',
  description: 'A SQLite file, at `path`.',
  settings,
  secrets: [],
  paths: ['path'],
  example: '{ type: sqlite, path: crm.db }',
  source: { open: (s) => SqliteSource.open({ path: s.path }) },
  destination: {
    capabilities: { deletes: true, upsert: true, maxBatchSize: null, recordIds: false },
    open: (s) => SqliteDestination.open({ path: s.path }),
  },
};

export { SqliteDestination, SqliteSource };

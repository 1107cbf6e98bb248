/** PostgreSQL, as a source (COPY out, rows kept in COPY text) and as a destination (COPY in, merge). */
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { urlSetting } from '../settings.js';
import { PostgresDestination } from './postgres-destination.js';
import { PostgresSource } from './postgres-source.js';

const settings = z.strictObject({
  url: urlSetting(['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/database', 'postgres://user:password@host:5432/database; may hold ${ENV} templates, e.g. "${WAREHOUSE_URL}".'),
});

export const postgresConnector: ConnectorKind<z.output<typeof settings>> = {
  type: 'postgres',
  description: 'A PostgreSQL database, reached with `url`.',
  settings,
  secrets: ['url'],
  example: '{ type: postgres, url: "${WAREHOUSE_URL}" }',
  source: { open: (s) => PostgresSource.connect({ url: s.url }) },
  destination: {
    capabilities: { deletes: true, upsert: true, maxBatchSize: null, recordIds: false },
    open: (s) => PostgresDestination.connect({ url: s.url }),
  },
};

export { PostgresDestination, PostgresSource };

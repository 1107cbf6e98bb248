/** PostgreSQL, as a source (COPY out, rows kept in COPY text) and as a destination (COPY in, merge). */
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { auditLogSetting, durationSetting, plannerSchemaSetting, plannerSetting, urlSetting } from '../settings.js';

const settings = z.strictObject({
  url: urlSetting(['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/database', 'postgres://user:password@host:5432/database; may hold ${ENV} templates, e.g. "${WAREHOUSE_URL}".'),
  connectTimeoutSeconds: durationSetting('seconds', 3600, 10, 'How long opening a connection may take before the run fails'),
  statementTimeoutMinutes: durationSetting('minutes', 24 * 60, 30, "How long the model's query may run (as a source) before it is cancelled and the run fails"),
  writeTimeoutMinutes: durationSetting('minutes', 24 * 60, 2, 'How long the statements of one batch may take (as a destination) before it is cancelled and the run fails'),
  auditLog: auditLogSetting(),
  planner: plannerSetting,
  plannerSchema: plannerSchemaSetting,
});

export const postgresConnector: ConnectorKind<z.output<typeof settings>> = {
  type: 'postgres',
  description: 'A PostgreSQL database, reached with `url`.',
  settings,
  secrets: ['url'],
  example: '{ type: postgres, url: "${WAREHOUSE_URL}" }',
  preload: () => Promise.all([import('./postgres-source.js'), import('./postgres-destination.js')]),
  source: {
    open: async (s) =>
      (await import('./postgres-source.js')).PostgresSource.connect({
        url: s.url,
        timeouts: { connectMs: s.connectTimeoutSeconds * 1000, statementMs: s.statementTimeoutMinutes * 60_000 },
        planner: { mode: s.planner, schema: s.plannerSchema },
      }),
  },
  auditLog: {
    open: async (s, context) =>
      s.auditLog
        ? (await import('./postgres-audit-log.js')).PostgresAuditLog.open({
            url: s.url,
            schema: s.auditLog.schema,
            connection: context.slug,
            timeouts: { connectMs: s.connectTimeoutSeconds * 1000, statementMs: s.writeTimeoutMinutes * 60_000 },
          })
        : null,
  },
  destination: {
    capabilities: { deletes: true, upsert: true, maxBatchSize: null, recordIds: false },
    open: async (s) =>
      (await import('./postgres-destination.js')).PostgresDestination.connect({
        url: s.url,
        timeouts: { connectMs: s.connectTimeoutSeconds * 1000, statementMs: s.writeTimeoutMinutes * 60_000 },
      }),
  },
};

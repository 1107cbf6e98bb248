/** MySQL and MariaDB, as a source (a streamed result) and as a destination (multi-row statements). */
import { z } from 'zod';
import type { ConnectorKind } from '../../core/connector-kind.js';
import { auditLogSetting, durationSetting, plannerSchemaSetting, plannerSetting, urlSetting } from '../settings.js';

const settings = z.strictObject({
  url: urlSetting(
    ['mysql:', 'mariadb:'],
    'mysql://user:password@host:3306/database',
    'mysql://user:password@host:3306/database (or mariadb://...); may hold ${ENV} templates, e.g. "${CRM_URL}".',
  ),
  connectTimeoutSeconds: durationSetting('seconds', 3600, 10, 'How long opening a connection may take before the run fails'),
  statementTimeoutMinutes: durationSetting('minutes', 24 * 60, 30, "How long the model's query may leave the connection without an answer (as a source) before the run fails"),
  writeTimeoutMinutes: durationSetting('minutes', 24 * 60, 2, 'How long the statements of one batch may take (as a destination) before the connection is closed and the run fails'),
  auditLog: auditLogSetting(),
  planner: plannerSetting,
  plannerSchema: plannerSchemaSetting,
});

export const mysqlConnector: ConnectorKind<z.output<typeof settings>> = {
  type: 'mysql',
  description: 'A MySQL (5.7+/8) or MariaDB (10.5+) database, reached with `url`.',
  settings,
  secrets: ['url'],
  example: '{ type: mysql, url: "${CRM_URL}" }',
  preload: () => Promise.all([import('./mysql-source.js'), import('./mysql-destination.js'), import('./mysql-planner.js')]),
  source: {
    open: async (s) =>
      (await import('./mysql-source.js')).MysqlSource.connect({
        url: s.url,
        timeouts: { connectMs: s.connectTimeoutSeconds * 1000, statementMs: s.statementTimeoutMinutes * 60_000 },
        planner: { mode: s.planner, schema: s.plannerSchema },
      }),
  },
  auditLog: {
    open: async (s, context) =>
      s.auditLog
        ? (await import('./mysql-audit-log.js')).MysqlAuditLog.open({
            url: s.url,
            schema: s.auditLog.schema,
            connection: context.slug,
            connectTimeoutMs: s.connectTimeoutSeconds * 1000,
          })
        : null,
  },
  destination: {
    capabilities: { deletes: true, upsert: true, maxBatchSize: null, recordIds: false },
    open: async (s) =>
      (await import('./mysql-destination.js')).MysqlDestination.connect({
        url: s.url,
        timeouts: { connectMs: s.connectTimeoutSeconds * 1000, statementMs: s.writeTimeoutMinutes * 60_000 },
      }),
  },
};

/**
 * `lockstep init`: a starter workspace that is valid as written (SQLite files only, no environment
 * variables), commented so it teaches the format.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, LockstepError } from '../core/errors.js';
import { JSON_SCHEMA_FILE } from './json-schema.js';
import { findWorkspaceFiles } from './load-workspace.js';

export interface InitWorkspaceOptions {
  /**
   * What the `yaml-language-server: $schema=` line points at (default: the schema file of this
   * Lockstep installation, relative to the workspace folder).
   */
  schemaLocation?: string;
}

/** The schema file shipped with this installation; this module sits two folders below the package root. */
function installedSchemaPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', JSON_SCHEMA_FILE);
}

/** Writes `lockstep.yaml` into `dir` (created if missing) and returns the absolute paths written. */
export async function initWorkspace(dir: string, options: InitWorkspaceOptions = {}): Promise<string[]> {
  const root = resolve(dir);
  const existing = await findWorkspaceFiles(root);
  if (existing.length > 0) {
    throw new LockstepError(
      ErrorCode.Conflict,
      `a workspace already exists in ${root} (${existing.join(', ')}); lockstep init does not overwrite it — edit it, or run init in an empty folder`,
    );
  }
  await mkdir(root, { recursive: true });
  const schema = options.schemaLocation ?? relative(root, installedSchemaPath()).split(sep).join('/');
  const target = join(root, 'lockstep.yaml');
  try {
    // `wx`: never replace a file that appeared since the check above.
    await writeFile(target, starterWorkspace(schema), { flag: 'wx' });
  } catch (thrown) {
    if ((thrown as { code?: unknown }).code === 'EEXIST') {
      throw new LockstepError(ErrorCode.Conflict, `${target} already exists; lockstep init does not overwrite it`);
    }
    throw thrown;
  }
  return [target];
}

/** The starter `lockstep.yaml`, with its schema line pointing at `schemaLocation`. */
export function starterWorkspace(schemaLocation: string): string {
  return `# yaml-language-server: $schema=${schemaLocation}
#
# A Lockstep workspace: where rows come from (sources, models), where they go (destinations,
# syncs), and in which order related syncs run (sequences).
#   lockstep validate   check this file and report every error at once
#   lockstep plan       show what apply would change in the store
#   lockstep apply      make the store match this file
# Larger workspaces can add any number of YAML files under lockstep/; they are merged with this one.

# Where Lockstep keeps its state, run history and snapshots. For PostgreSQL:
#   store: { type: postgres, url: "\${LOCKSTEP_DATABASE_URL}" }
store: { type: sqlite, path: lockstep.db }

# Databases models read from. postgres and mysql take a url, sqlite and duckdb a path relative to
# this folder. Keep secrets out of the file with \${ENV_VAR} templates:
#   warehouse: { type: postgres, url: "\${WAREHOUSE_URL}" }
sources:
  warehouse: { type: sqlite, path: warehouse.db }

# Systems syncs write to: databases (postgres, mysql: url; sqlite: path), any JSON API (http),
# and CRMs (salesforce, hubspot); the README lists each kind's settings. For example:
#   crm:        { type: mysql, url: "\${CRM_URL}" }
#   api:        { type: http, url: https://api.example.com, headers: { Authorization: "Bearer \${API_TOKEN}" } }
#   salesforce: { type: salesforce, loginUrl: "\${SF_LOGIN_URL}", clientId: "\${SF_CLIENT_ID}", clientSecret: "\${SF_CLIENT_SECRET}" }
#   hubspot:    { type: hubspot, accessToken: "\${HUBSPOT_TOKEN}" }
destinations:
  crm: { type: sqlite, path: crm.db }

# SQL queries on a source; the primary key (a column or a list of columns) is unique per row.
models:
  accounts:
    source: warehouse
    primaryKey: id
    query: select id, name, domain from accounts
  contacts:
    source: warehouse
    primaryKey: id
    query: select id, account_id, email from contacts

# A sync sends a model's rows to an object (a table) of a destination, only what changed.
syncs:
  accounts-to-crm:
    model: accounts
    destination: crm
    object: accounts
    mode: upsert            # upsert | insert | update | mirror (mirror also deletes rows that left the model)
  contacts-to-crm:
    model: contacts
    destination: crm
    object: contacts
    mode: upsert
    mappings:               # model column -> destination field; other columns keep their name
      - { from: email, to: email_address }
    batchSize: 1000

# A sequence runs syncs in order: contacts start only after accounts finished well.
sequences:
  crm-hierarchy:
    # manual: runs when you say so (lockstep sequence run crm-hierarchy). Hourly instead:
    #   schedule: { type: cron, expression: "0 * * * *", timezone: Europe/Berlin }
    schedule: { type: manual }
    members:
      # Stop the sequence if accounts fails or rejects more than 5% of its rows.
      - { sync: accounts-to-crm, terminate: on_fatal_or_rejected, rejectedThreshold: { percent: 5 } }
      # Runs after accounts; its outcome never stops the sequence.
      - { sync: contacts-to-crm, terminate: never }
`;
}

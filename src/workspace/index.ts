/** Workspace as code: YAML loading and validation, the JSON Schema, and `lockstep init`. */
export { loadWorkspace, findWorkspaceFiles, WORKSPACE_FILE_NAMES, WORKSPACE_FOLDER } from './load-workspace.js';
export type { LoadResult, StoreSetting } from './load-workspace.js';
export { formatValidationReport } from './format-validation-report.js';
export { workspaceJsonSchema, renderJsonSchema, JSON_SCHEMA_FILE } from './json-schema.js';
export { initWorkspace, starterWorkspace } from './init-workspace.js';
export type { InitWorkspaceOptions } from './init-workspace.js';
export { SLUG_PATTERN, SLUG_RULE } from './workspace-schema.js';
export { validateEntity, fileForm } from './validate-entity.js';
export type { EntityValidation } from './validate-entity.js';
export { validateAlertChannel, validateAlertRule } from './validate-alerts.js';
export type { AlertValidation } from './validate-alerts.js';

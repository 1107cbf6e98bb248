import { formatDiagnostic } from '../core/errors.js';
import type { Diagnostic } from '../core/errors.js';

/**
 * The text `lockstep validate` prints: one line per diagnostic
 * (`lockstep.yaml:14:7: syncs.x.model: unknown model "acount" (did you mean "account"?) — ...`),
 * then a count line (`3 errors in lockstep.yaml`).
 */
export function formatValidationReport(diagnostics: readonly Diagnostic[]): string {
  if (diagnostics.length === 0) return 'no errors';
  const files = [...new Set(diagnostics.flatMap((d) => (d.file === undefined ? [] : [d.file])))];
  const count = `${diagnostics.length} ${diagnostics.length === 1 ? 'error' : 'errors'}`;
  let where = '';
  if (files.length === 1) where = ` in ${files[0]}`;
  else if (files.length > 1) where = ` in ${files.length} files (${files.join(', ')})`;
  return [...diagnostics.map(formatDiagnostic), `${count}${where}`].join('\n');
}

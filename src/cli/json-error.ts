/**
 * What a command run with `--json` prints on stdout when it fails, so a script reading stdout always
 * has JSON to parse: the API's error body (`{message}`, and `{message: "Validation failed", details:
 * {path: message}}` for invalid input), with the error's `code`. The human text still goes to stderr,
 * and the exit code is the same.
 */
import { ErrorCode, LockstepError, ValidationError, formatDiagnostic } from '../core/errors.js';

/** The message of a failure whose details name each problem, as the API's 422. */
export const VALIDATION_FAILED = 'Validation failed';

export interface JsonError {
  /** What went wrong, naming the value and the fix. */
  message: string;
  /** The kind of failure a script may branch on (see ErrorCode), `validation` for bad arguments too. */
  code: ErrorCode;
  /** For invalid workspace files: each problem by its path (`syncs.contacts.model`), with file, line and fix. */
  details?: Record<string, string>;
}

/** The JSON body of `error`; a bad argument (commander's) is a validation error. */
export function jsonError(error: Error, options: { badArgument?: boolean } = {}): JsonError {
  if (error instanceof ValidationError && error.diagnostics.length > 0) {
    const details: Record<string, string> = {};
    for (const d of error.diagnostics) {
      const field = d.path || 'workspace';
      const text = formatDiagnostic({ ...d, path: '' });
      details[field] = details[field] ? `${details[field]}; ${text}` : text;
    }
    return { message: VALIDATION_FAILED, code: ErrorCode.Validation, details };
  }
  const code = error instanceof LockstepError ? error.code : options.badArgument ? ErrorCode.Validation : ErrorCode.Internal;
  return { message: error.message.replace(/^error: /, '').trim(), code };
}

/** Whether the command line asks for JSON (`--json` before any `--`), for errors met before a command's action runs. */
export function asksForJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

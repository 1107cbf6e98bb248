/**
 * Errors at the HTTP edge: the one place Lockstep's errors become statuses and JSON bodies
 * (`{message}`, and `{message: "Validation failed", details: {field: message}}` for 422, the
 * Hightouch shape). Nothing else in Lockstep knows about HTTP.
 */
import type { Context } from 'hono';
import { ErrorCode, LockstepError, ValidationError, formatDiagnostic, toError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';

/** The message of every 422. */
export const VALIDATION_FAILED = 'Validation failed';

/** A failure with its HTTP status and body, thrown by handlers. */
export class HttpError extends Error {
  constructor(
    readonly status: 401 | 404 | 409 | 413 | 415 | 422,
    message: string,
    readonly details?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A 422 naming each bad field. */
export function validationFailed(details: Record<string, string>): HttpError {
  return new HttpError(422, VALIDATION_FAILED, details);
}

/** Turns anything a handler throws into a response; unexpected failures are logged, never shown. */
export function errorResponse(c: Context, thrown: unknown, logger: Logger): Response {
  if (thrown instanceof HttpError) {
    return c.json(thrown.details ? { message: thrown.message, details: thrown.details } : { message: thrown.message }, thrown.status);
  }
  if (thrown instanceof ValidationError) {
    const details: Record<string, string> = {};
    for (const d of thrown.diagnostics) details[d.path || 'body'] = formatDiagnostic({ ...d, path: '' });
    return c.json({ message: VALIDATION_FAILED, details }, 422);
  }
  if (thrown instanceof LockstepError) {
    switch (thrown.code) {
      case ErrorCode.NotFound:
        return c.json({ message: thrown.message }, 404);
      case ErrorCode.Conflict:
        return c.json({ message: thrown.message }, 409);
      case ErrorCode.Validation:
        return c.json({ message: VALIDATION_FAILED, details: { body: thrown.message } }, 422);
      default:
        break;
    }
  }
  const error = toError(thrown);
  logger.error('request failed', { method: c.req.method, path: c.req.path, error: error.message });
  return c.json({ message: 'Internal server error — the server log has the details' }, 500);
}

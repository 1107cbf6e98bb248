import type { Logger } from './ports.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Field names whose values are never written to a log line. */
const SECRET_FIELDS = /(password|secret|token|url|authorization)/i;

/**
 * Structured JSON logs, one object per line: `{time, level, msg, ...fields}`. Fields that may hold
 * secrets (urls, tokens, passwords) are replaced by `[redacted]`.
 */
export function createJsonLogger(options: { level: LogLevel; write: (line: string) => void }): Logger {
  const min = LEVELS[options.level];
  const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < min) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries(fields ?? {})) entry[k] = SECRET_FIELDS.test(k) ? '[redacted]' : v;
    options.write(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

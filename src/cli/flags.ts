/** Flags of the commands checked as they are read, before the store is opened. */
import { ErrorCode, LockstepError } from '../core/errors.js';
import type { PortOption } from '../core/hosts.js';
import { SyncRunStatus } from '../core/runs.js';

/** The most a listing's --limit shows. */
export const MAX_LIMIT = 100_000;

/**
 * A listing's --limit, checked before the store is opened: a bad value is refused without opening
 * (or creating) anything. Digits only, so 1e3, 0x10 or 2.0 are refused rather than read as numbers.
 */
export function limitFlag(text: string): number {
  const limit = Number(text);
  if (!/^\d+$/.test(text) || limit < 1 || limit > MAX_LIMIT) {
    throw new LockstepError(ErrorCode.Validation, `--limit "${text}" is not a whole number from 1 to ${MAX_LIMIT} — give how many to show, e.g. --limit 50`);
  }
  return limit;
}

/**
 * `lockstep runs --status`: sync run states, comma-separated, checked before the store is opened.
 * They are the states runs are shown in, `interrupted` included.
 */
export function syncRunStatusFlag(text: string): SyncRunStatus[] {
  const known: readonly string[] = Object.values(SyncRunStatus);
  const wanted = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = wanted.filter((s) => !known.includes(s));
  if (wanted.length === 0 || unknown.length > 0) {
    const what = wanted.length === 0 ? 'names no state' : `has ${unknown.map((s) => `"${s}"`).join(', ')}, not a sync run state`;
    throw new LockstepError(ErrorCode.Validation, `--status "${text}" ${what} — give states from ${known.join(', ')}, comma-separated, e.g. --status interrupted,failed`);
  }
  return wanted as SyncRunStatus[];
}

/** A port from its flag, else its environment variable (empty counts as unset, as for the other LOCKSTEP_ settings); null when neither is given. */
export function portSetting(flagValue: string | undefined, { flag, env, example }: PortOption): number | null {
  const fromEnv = flagValue === undefined && Boolean(process.env[env]);
  const portText = flagValue ?? (process.env[env] || null);
  if (portText === null) return null;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    const given = fromEnv ? `${env}=${portText}` : `${flag} "${portText}"`;
    throw new LockstepError(ErrorCode.Validation, `${given} is not a port number (0..65535) — give a free port, e.g. ${fromEnv ? `${env}=` : `${flag} `}${example}`);
  }
  return port;
}

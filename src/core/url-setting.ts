/**
 * A URL in a setting: checked where it is written (`validate`, the API), with the scheme it must
 * have. A value holding `${ENV}` templates passes until they are resolved; it is checked whole then.
 */
import { z } from 'zod';
import { hinted } from './hints.js';

const TEMPLATE = /\$\{[A-Za-z_][A-Za-z0-9_]*\}/;

/** How to write a user name or password that holds characters a URL gives a meaning to. */
export const PERCENT_ENCODE_HINT = 'percent-encode @, /, #, ? and : in the user name and password (@ is %40, / is %2F, # is %23)';

/**
 * Whether a URL with user information was split elsewhere than meant: a password holding # or a
 * second @ unencoded leaves part of it in the fragment or the path.
 */
export function splitsUserInfo(url: URL): boolean {
  return url.hash !== '' || url.pathname.includes('@');
}

/** Whether a value still holds an `${ENV}` template (it is checked whole once resolved). */
export function isTemplated(value: string): boolean {
  return TEMPLATE.test(value);
}

/**
 * A URL setting named `what` with one of `protocols` (e.g. `['mysql:']`); `example` goes into the
 * message, which never echoes the value (a URL may carry a password).
 */
export function urlSetting(protocols: readonly string[], example: string, description: string, what = 'url') {
  return z
    .string()
    .min(1, { error: hinted(`${what} is empty`, `write it, e.g. ${example}`) })
    .superRefine((value, ctx) => {
      if (isTemplated(value)) return;
      for (const message of urlProblems(value, protocols, example, what)) ctx.addIssue({ code: 'custom', message });
    })
    .meta({ description });
}

/**
 * What is wrong with `value` as a URL setting named `what` (each message `hinted`), never echoing it:
 * the rules of `urlSetting`, also for a value its `${ENV}` templates gave.
 */
export function urlProblems(value: string, protocols: readonly string[], example: string, what = 'url'): string[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // A password holding /, # or ? unencoded ends the host early (postgres://u:pa#ss@db/app reads as host u, port pa).
    const userInfo = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*[/?#][^@]*@/i.test(value) && !/^https?:/i.test(value);
    return [hinted(`${what} is not a URL`, `write it like ${example}${userInfo ? `; ${PERCENT_ENCODE_HINT}` : ''}`)];
  }
  const problems: string[] = [];
  if (!protocols.includes(url.protocol)) {
    problems.push(hinted(`${what} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, not ${url.protocol}//`, `e.g. ${example}`));
  }
  // A database URL's password holding @, / or # unencoded splits the URL elsewhere than meant:
  // part of the password would be taken for the host or the database, and shown as such.
  if (!/^https?:$/.test(url.protocol) && splitsUserInfo(url)) {
    problems.push(hinted(`${what} does not read as user:password@host... (it has a # or a second @)`, PERCENT_ENCODE_HINT));
  }
  return problems;
}

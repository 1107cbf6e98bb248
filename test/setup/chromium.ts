/**
 * Chromium for the browser tests: Debian's `/usr/bin/chromium`, installed with apt-get when it is
 * missing (the tests run as root in CI containers). Playwright's own browser downloads are never used.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './processes.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a quiet, headless, sandbox-free Chromium that talks to nothing but the page under test. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
];

/**
 * Returns the Chromium path, installing Debian's package first when it is not there.
 * Throws with apt-get's output when the install fails (no network, not root, not Debian).
 */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  // Two test files may get here at once: wait for apt's lock instead of failing on it.
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  const update = run('apt-get', [...lock, 'update']);
  const install = update.ok ? run('apt-get', [...lock, 'install', '-y', 'chromium']) : update;
  if (!install.ok || !existsSync(CHROMIUM_PATH)) {
    const tail = install.output.split('\n').slice(-15).join('\n');
    throw new Error(
      `the browser tests need Chromium at ${CHROMIUM_PATH} and installing it failed ` +
        `(apt-get update && apt-get install -y chromium, as root):\n${tail}`,
    );
  }
  return CHROMIUM_PATH;
}

/** Launch options for playwright-core's `chromium.launchPersistentContext` with a fresh profile folder. */
export function chromiumLaunchOptions(): { userDataDir: string; executablePath: string; headless: true; args: string[] } {
  const userDataDir = mkdtempSync(join(tmpdir(), 'lockstep-chromium-'));
  return { userDataDir, executablePath: ensureChromium(), headless: true, args: [...CHROMIUM_ARGS] };
}

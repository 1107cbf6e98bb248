/**
 * The README's commands from a clone: `npm start -- --port N` serves the demo on port N, and npm
 * runs without warnings about the project's own configuration.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/harness.js';
import { sleep } from './cli-helpers.js';
import { freePort } from '../setup/processes.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let npm: ChildProcess | null = null;

/** npm runs the script in a child of its own: the whole process group is stopped. */
afterEach(async () => {
  const child = npm;
  npm = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise((resolve) => child.once('close', resolve));
  process.kill(-child.pid!, 'SIGTERM');
  await closed;
});

function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('LOCKSTEP_') && !key.startsWith('npm_')) env[key] = value;
  return { ...env, NO_COLOR: '1' };
}

describe('npm start', () => {
  it('-- --port N serves the demo on port N, with no warning from npm', async () => {
    const port = await freePort();
    const dir = tempDir('lockstep-npm-start-');
    npm = spawn('npm', ['start', '--', '--port', String(port), '--dir', `${dir}/demo`], { cwd: ROOT, env: npmEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    npm.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    npm.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 50_000;
    while (!stdout.includes(`open ${url} to see its runs`)) {
      if (npm.exitCode !== null) throw new Error(`npm start exited (${npm.exitCode}):\n${stdout}\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`npm start did not serve on ${url}:\n${stdout}\n${stderr}`);
      await sleep(100);
    }
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(stderr).not.toMatch(/npm warn/i);
  });
});

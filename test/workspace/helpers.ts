import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { onTestFinished } from 'vitest';
import { createConnectorRegistry } from '../../src/app.js';
import { loadWorkspace } from '../../src/workspace/index.js';

/** A temporary workspace folder holding `files` (relative path → text); `cleanup` removes it. */
export async function workspaceFolder(files: Record<string, string>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-workspace-'));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Joins lines, so a test can count them: line N of the file is `lines[N - 1]`. */
export function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

const registry = createConnectorRegistry();

/** Loads a workspace made of `files` (see workspaceFolder), removed when the test ends; with its folder. */
export async function loadFiles(files: Record<string, string>, env: Record<string, string | undefined> = {}) {
  const folder = await workspaceFolder(files);
  onTestFinished(folder.cleanup);
  return { dir: folder.dir, ...(await loadWorkspace(folder.dir, env, registry)) };
}

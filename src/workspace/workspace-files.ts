/**
 * Where a workspace's files are, without reading them as YAML: what every command needs first,
 * kept apart from the loader so that commands which only run work start without the YAML parser
 * and the schemas.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';

/** Names of the main workspace file, looked for in the workspace folder. */
export const WORKSPACE_FILE_NAMES = ['lockstep.yaml', 'lockstep.yml'] as const;
/** Subfolder whose YAML files (recursively) are part of the workspace too. */
export const WORKSPACE_FOLDER = 'lockstep';

/** The workspace files in `dir`, relative to it, with `/` separators: the main file(s) first, then `lockstep/**` sorted. */
export async function findWorkspaceFiles(dir: string): Promise<string[]> {
  const root = resolve(dir);
  const found: string[] = [];
  for (const name of WORKSPACE_FILE_NAMES) {
    if (await isFile(join(root, name))) found.push(name);
  }
  const folder = join(root, WORKSPACE_FOLDER);
  if (await isDirectory(folder)) {
    const entries = await readdir(folder, { recursive: true });
    const yamlFiles: string[] = [];
    for (const entry of entries) {
      if (/\.ya?ml$/i.test(entry) && (await isFile(join(folder, entry)))) yamlFiles.push(`${WORKSPACE_FOLDER}/${entry.split(sep).join('/')}`);
    }
    found.push(...yamlFiles.sort());
  }
  return found;
}

/**
 * Whether any of the files might set `store`: a line that starts with the key (quoted or not), or
 * a file written as one flow mapping. When none does, the store is the default one and the files
 * need not be parsed to find it.
 */
export async function mayDeclareStore(dir: string, files: readonly string[]): Promise<boolean> {
  for (const file of files) {
    const text = await readFile(join(resolve(dir), file), 'utf8').catch(() => '');
    if (/^\s*["']?store["']?\s*:/m.test(text) || /^\s*(?:---\s*)?[{?]/.test(text.replace(/^\s*#.*$/gm, ''))) return true;
  }
  return false;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

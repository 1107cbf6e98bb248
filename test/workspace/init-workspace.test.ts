import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LockstepError } from '../../src/core/errors.js';
import { initWorkspace, loadWorkspace } from '../../src/workspace/index.js';
import { createConnectorRegistry } from '../../src/app.js';

const registry = createConnectorRegistry();

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-init-'));
  dirs.push(dir);
  return dir;
}

describe('initWorkspace', () => {
  it('writes a commented starter that validates as is, with two syncs and a sequence', async () => {
    const dir = await tempDir();
    const written = await initWorkspace(dir);
    expect(written).toEqual([join(dir, 'lockstep.yaml')]);
    const text = await readFile(join(dir, 'lockstep.yaml'), 'utf8');
    expect(text.split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=.*schema\/lockstep\.schema\.json$/);

    const loaded = await loadWorkspace(dir, {}, registry);
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.store).toEqual({ type: 'sqlite', path: join(dir, 'lockstep.db') });
    const def = loaded.definition!;
    expect(def.syncs.map((s) => s.slug)).toEqual(['accounts-to-crm', 'contacts-to-crm']);
    expect(def.sequences).toHaveLength(1);
    expect(def.sequences[0]?.members.map((m) => m.sync)).toEqual(['accounts-to-crm', 'contacts-to-crm']);
    expect([...def.sources, ...def.destinations].every((c) => c.type === 'sqlite')).toBe(true);
  });

  it('points the schema line at the schema file of this installation', async () => {
    const dir = await tempDir();
    await initWorkspace(dir);
    const text = await readFile(join(dir, 'lockstep.yaml'), 'utf8');
    const location = /\$schema=(.*)/.exec(text)?.[1] ?? '';
    const schema = JSON.parse(await readFile(join(dir, location), 'utf8')) as { title?: string };
    expect(schema.title).toBe('Lockstep workspace');

    const other = await tempDir();
    await initWorkspace(join(other, 'nested', 'ws'), { schemaLocation: 'https://example.test/lockstep.schema.json' });
    expect(await readFile(join(other, 'nested', 'ws', 'lockstep.yaml'), 'utf8')).toMatch(/^# yaml-language-server: \$schema=https:\/\/example\.test\/lockstep\.schema\.json\n/);
  });

  it('refuses to overwrite an existing workspace file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'lockstep.yml'), 'sources: {}\n');
    const error = await initWorkspace(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockstepError);
    expect((error as LockstepError).code).toBe('conflict');
    expect((error as Error).message).toBe(
      `a workspace already exists in ${dir} (lockstep.yml); lockstep init does not overwrite it — edit it, or run init in an empty folder`,
    );
    expect(await readFile(join(dir, 'lockstep.yml'), 'utf8')).toBe('sources: {}\n');

    const folder = await tempDir();
    await mkdir(join(folder, 'lockstep'));
    await writeFile(join(folder, 'lockstep', 'syncs.yaml'), 'syncs: {}\n');
    await expect(initWorkspace(folder)).rejects.toThrow(/a workspace already exists .*\(lockstep\/syncs\.yaml\)/);
  });
});

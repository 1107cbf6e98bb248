import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findWorkspaceFiles, mayDeclareStore } from '../../src/workspace/workspace-files.js';
import { loadWorkspace } from '../../src/workspace/index.js';
import { tempDir } from '../helpers/harness.js';
import { createConnectorRegistry } from '../../src/app.js';

const registry = createConnectorRegistry();

describe('workspace files read without the YAML parser', () => {
  const cases: Array<[string, string, boolean]> = [
    ['no store', 'sources:\n  warehouse: { type: postgres, url: "x" }\nmodels:\n  m: { source: warehouse, primaryKey: id, query: "select 1 as id" }\n', false],
    ['a store section', 'store:\n  type: sqlite\n  path: other.db\n', true],
    ['a quoted store key', '"store": { type: sqlite, path: other.db }\n', true],
    ['an indented store key', 'x:\n  store: 1\n', true],
    ['one flow mapping', '# a comment\n{ store: { type: sqlite, path: other.db } }\n', true],
    ['a document marker and a flow mapping', '---\n{ sources: {} }\n', true],
  ];

  for (const [name, text, expected] of cases) {
    it(`tell whether a file may set the store: ${name}`, async () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'lockstep.yaml'), text);
      expect(await mayDeclareStore(dir, await findWorkspaceFiles(dir))).toBe(expected);
      // Whenever the full loader finds a store setting other than the default, the light check said "maybe".
      const loaded = await loadWorkspace(dir, {}, registry);
      if (loaded.store && !(loaded.store.type === 'sqlite' && loaded.store.path === join(dir, 'lockstep.db'))) expect(expected).toBe(true);
    });
  }

  it('look in every file of the lockstep folder', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'lockstep.yaml'), 'sources: {}\n');
    mkdirSync(join(dir, 'lockstep', 'deeper'), { recursive: true });
    writeFileSync(join(dir, 'lockstep', 'deeper', 'store.yml'), 'store: { type: sqlite, path: elsewhere.db }\n');
    const files = await findWorkspaceFiles(dir);
    expect(files).toEqual(['lockstep.yaml', 'lockstep/deeper/store.yml']);
    expect(await mayDeclareStore(dir, files)).toBe(true);
  });
});

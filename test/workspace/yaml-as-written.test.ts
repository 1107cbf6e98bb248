import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../../src/core/errors.js';
import { loadFiles, yaml } from './helpers.js';

const load = loadFiles;

const at = (d: Diagnostic) => `${d.file}:${d.line}:${d.column} ${d.path}: ${d.message}`;

/** Lines 1-6: a source, a destination and a model that syncs can use. */
const BASE = [
  'sources:',
  '  wh: { type: postgres, url: "postgres://w" }',
  'destinations:',
  '  crm: { type: postgres, url: "postgres://c" }',
  'models:',
  '  acc: { source: wh, primaryKey: id, query: "select 1" }',
];
const BAD_SYNC = ['syncs:', '  s1: { model: acc, destination: crm, object: accounts, mode: upsurt }'];

describe('workspace files as people write them', () => {
  it('points at the same line and column in a file saved with CRLF line endings or a byte order mark', async () => {
    const expected = ['lockstep.yaml:8:63 syncs.s1.mode: unknown mode "upsurt" (did you mean "upsert"?)'];
    const crlf = await load({ 'lockstep.yaml': [...BASE, ...BAD_SYNC].join('\r\n') + '\r\n' });
    const bom = await load({ 'lockstep.yaml': '\uFEFF' + yaml(...BASE, ...BAD_SYNC) });
    expect(crlf.diagnostics.map(at)).toEqual(expected);
    expect(bom.diagnostics.map(at)).toEqual(expected);
  });

  it('takes merged keys as set, lets a sync override them, and locates a bad merged value where it is written', async () => {
    const shared = ['syncs:', '  s1: &defaults', '    model: acc', '    destination: crm', '    object: a', '    mode: upsert', '  s2:', '    <<: *defaults'];
    const ok = await load({ 'lockstep.yaml': yaml(...BASE, ...shared, '    object: b', '    mode: insert') });
    expect(ok.diagnostics).toEqual([]);
    expect(ok.definition?.syncs.map((s) => [s.slug, s.destination, s.object, s.mode])).toEqual([
      ['s1', 'crm', 'a', 'upsert'],
      ['s2', 'crm', 'b', 'insert'],
    ]);

    const bad = await load({ 'lockstep.yaml': yaml(...BASE, ...shared.map((l) => l.replace('mode: upsert', 'mode: upsurt'))) });
    expect(bad.diagnostics.map(at)).toEqual([
      'lockstep.yaml:12:11 syncs.s1.mode: unknown mode "upsurt" (did you mean "upsert"?)',
      'lockstep.yaml:12:11 syncs.s2.mode: unknown mode "upsurt" (did you mean "upsert"?)',
    ]);
  });

  it('ignores keys starting with x- at the top level and in a definition, as places for anchors merged with <<: *name', async () => {
    const file = yaml(
      'x-defaults: &defaults',
      '  model: acc',
      '  destination: crm',
      '  mode: upsert',
      'x-notes: [owned by the data team]',
      'sources:',
      '  wh: { type: postgres, url: "postgres://w", x-owner: data-team }',
      'destinations:',
      '  crm:',
      '    type: postgres',
      '    url: "postgres://c"',
      '    x-owner: crm-team',
      ...BASE.slice(4),
      'syncs:',
      '  s1:',
      '    <<: *defaults',
      '    object: a',
      '    x-ticket: 42',
      '  s2: { <<: *defaults, object: b, mode: insert }',
      // A slug is a slug, whatever it starts with.
      '  x-legacy: { <<: *defaults, object: c }',
      'sequences:',
      '  nightly: { x-comment: accounts first, members: [{ sync: s1 }, { sync: s2 }] }',
    );
    const { diagnostics, definition } = await load({ 'lockstep.yaml': file });
    expect(diagnostics).toEqual([]);
    expect(definition?.syncs.map((s) => [s.slug, s.model, s.destination, s.object, s.mode])).toEqual([
      ['s1', 'acc', 'crm', 'a', 'upsert'],
      ['s2', 'acc', 'crm', 'b', 'insert'],
      ['x-legacy', 'acc', 'crm', 'c', 'upsert'],
    ]);
    expect([...(definition?.sources ?? []), ...(definition?.destinations ?? [])]).toEqual([
      { slug: 'wh', type: 'postgres', settings: { url: 'postgres://w' } },
      { slug: 'crm', type: 'postgres', settings: { url: 'postgres://c' } },
    ]);
    expect(definition?.sequences.map((s) => [s.slug, s.members.map((m) => m.sync)])).toEqual([['nightly', ['s1', 's2']]]);

    // A typo of a real key still gets its did-you-mean, at the top level and in a definition.
    const typos = await load({ 'lockstep.yaml': yaml('x-defaults: &defaults { destination: crm, mode: upsert }', ...BASE, 'sync:', '  s1: { <<: *defaults, modle: acc, object: a }') });
    expect(typos.diagnostics.map(at)).toEqual(['lockstep.yaml:8:1 sync: unknown key "sync" (did you mean "syncs"?)']);
    const inside = await load({ 'lockstep.yaml': yaml('x-defaults: &defaults { model: acc, mode: upsert }', ...BASE, 'syncs:', '  s1: { <<: *defaults, destination: crm, object: a, batchSise: 500, x-note: n }') });
    expect(inside.diagnostics.map(at)).toEqual(['lockstep.yaml:9:53 syncs.s1.batchSise: unknown key "batchSise" (did you mean "batchSize"?)']);
  });

  it('refuses a second YAML document, naming the "---" line', async () => {
    const { diagnostics } = await load({ 'lockstep.yaml': yaml('---', ...BASE, '---', 'syncs: {}') });
    expect(diagnostics.map(at)).toEqual(['lockstep.yaml:8:1 : lockstep.yaml holds more than one YAML document: a second one starts at this "---" line']);
    expect(diagnostics[0]?.hint).toContain('lockstep/');
  });

  it('refuses a tab in indentation at its line, saying to use spaces', async () => {
    const { diagnostics } = await load({ 'lockstep.yaml': yaml(...BASE, 'syncs:', '\ts1: {}') });
    expect(diagnostics.map((d) => `${at(d)} | ${d.hint}`)).toEqual([
      'lockstep.yaml:8:1 : invalid YAML: Tabs are not allowed as indentation | YAML indents with spaces only: replace the tab with spaces',
    ]);
  });

  it('refuses a key written twice in the same mapping, at the second one', async () => {
    const { diagnostics } = await load({ 'lockstep.yaml': yaml(...BASE, 'syncs:', '  s1:', '    model: acc', '    mode: upsert', '    mode: mirror') });
    expect(diagnostics.map(at)).toContain('lockstep.yaml:11:5 syncs.s1.mode: key "mode" appears twice in syncs.s1 (first at line 10)');
  });

  it('keeps a block scalar query whole, "#" in SQL included, and leaves out the comment after it', async () => {
    const models = ['models:', '  a:', '    source: wh', '    primaryKey: id', '    query: |', "      select id, '#1' as tag", '      from a # kept', '    # a comment', '  b:', '    query: >', '      select id', '      from b', '    source: wh', '    primaryKey: id'];
    const { diagnostics, definition } = await load({ 'lockstep.yaml': yaml(...BASE.slice(0, 4), ...models) });
    expect(diagnostics).toEqual([]);
    expect(definition?.models.map((m) => m.query)).toEqual(["select id, '#1' as tag\nfrom a # kept\n", 'select id from b\n']);
  });

  it('refuses a shell-style default in a template instead of passing it on as text', async () => {
    const { diagnostics } = await load({ 'lockstep.yaml': yaml('store: { type: sqlite, path: "${DATA:-./data}/lockstep.db" }', 'sources:', '  wh: { type: sqlite, path: "${WH_PATH:-wh.db}" }', '  w2: { type: sqlite, path: "${ WH }" }') });
    expect(diagnostics.map((d) => `${at(d)} | ${d.hint}`)).toEqual([
      'lockstep.yaml:1:30 store.path: ${DATA:-./data} is not supported (the store): templates are ${NAME} only, without defaults or other shell operators | write ${DATA} and export DATA before running Lockstep (set the default in the environment)',
      'lockstep.yaml:3:29 sources.wh.path: ${WH_PATH:-wh.db} is not supported (source "wh"): templates are ${NAME} only, without defaults or other shell operators | write ${WH_PATH} and export WH_PATH before running Lockstep (set the default in the environment)',
      'lockstep.yaml:4:29 sources.w2.path: ${ WH } is not a valid template (source "w2") | write ${NAME}: a letter or "_" then letters, digits or "_", e.g. ${WAREHOUSE_URL}',
    ]);
  });

  it('reads yes/on/no as strings (YAML 1.2) and asks for quotes around a number where a string belongs', async () => {
    const syncs = ['syncs:', '  on: { model: acc, destination: crm, object: yes, mode: upsert }', '  no: { model: acc, destination: crm, object: 2024, mode: upsert }'];
    const { diagnostics } = await load({ 'lockstep.yaml': yaml(...BASE, ...syncs) });
    expect(diagnostics.map((d) => `${at(d)} | ${d.hint}`)).toEqual(['lockstep.yaml:9:47 syncs.no.object: object must be a string, got 2024 | write it in quotes: "2024"']);
    const valid = await load({ 'lockstep.yaml': yaml(...BASE, ...syncs.slice(0, 2)) });
    expect(valid.definition?.syncs.map((s) => [s.slug, s.object])).toEqual([['on', 'yes']]);
  });

  it('suggests the lowercase key for a key written with capitals', async () => {
    const { diagnostics } = await load({ 'lockstep.yaml': yaml(...BASE, 'syncs:', '  s1: { model: acc, destination: crm, object: a, Mode: upsert }') });
    expect(diagnostics.map(at)).toContain('lockstep.yaml:8:50 syncs.s1.Mode: unknown key "Mode" (did you mean "mode"?)');
  });

  it('takes an empty file, a file of comments and an empty YAML file under lockstep/ as declaring nothing, and skips other files there', async () => {
    for (const main of ['', '# nothing yet\n', '---\n']) {
      const { diagnostics, definition } = await load({ 'lockstep.yaml': main });
      expect(diagnostics).toEqual([]);
      expect(definition?.sources).toEqual([]);
    }
    const { diagnostics, files } = await load({ 'lockstep.yaml': yaml(...BASE), 'lockstep/empty.yaml': '', 'lockstep/notes.md': 'syncs: [', 'lockstep/old.yaml.bak': 'syncs: [' });
    expect(diagnostics).toEqual([]);
    expect(files).toEqual(['lockstep.yaml', 'lockstep/empty.yaml']);
  });
});

/**
 * What `sync run`, `sequence run`, `cancel` and `runs` say when something is wrong: the slug meant
 * for a misspelt one, the run to cancel for a slug given instead of a run id, and a failed run's
 * error printed once, with PostgreSQL's own hint when the source is PostgreSQL.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sqlite, tempDir } from '../helpers/harness.js';
import { createTestDatabase, sql } from '../helpers/postgres.js';
import { enqueueWork, hierarchyWorkspace, hierarchyWorkspaceYaml, killChildren, runCli, runMain } from './cli-helpers.js';

afterEach(killChildren);

async function appliedWorkspace(): Promise<string> {
  const dir = hierarchyWorkspace();
  const applied = await runMain(['--workspace', dir, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  return dir;
}

/** How many times `text` occurs in `haystack`. */
const occurrences = (haystack: string, text: string): number => haystack.split(text).length - 1;

describe('a misspelt slug', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await appliedWorkspace();
  });

  it('sequence run suggests the sequence meant, and runs nothing', async () => {
    const result = await runCli(['sequence', 'run', 'cmr'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('error: no sequence "cmr" in the workspace (did you mean "crm"?) — check the slug, or run `lockstep apply` after adding it\n');
    expect(result.stdout).toBe('');
    expect(JSON.parse((await runMain(['--workspace', dir, 'runs', '--json'])).stdout)).toEqual({ nextScheduled: [], sequenceRuns: [], syncRuns: [] });
  });

  it('sync run and runs --sync / --sequence suggest the slug meant', async () => {
    const sync = await runMain(['--workspace', dir, 'sync', 'run', 'acounts-to-crm']);
    expect(sync.code).toBe(2);
    expect(sync.stderr).toContain('no sync "acounts-to-crm" in the workspace (did you mean "accounts-to-crm"?)');
    const runs = await runMain(['--workspace', dir, 'runs', '--sync', 'contacts-to-cmr']);
    expect(runs.code).toBe(2);
    expect(runs.stderr).toContain('(did you mean "contacts-to-crm"?)');
    const sequences = await runMain(['--workspace', dir, 'runs', '--sequence', 'CRM']);
    expect(sequences.stderr).toContain('(did you mean "crm"?)');
  });

  it('runs refuses --sequence with --sync, which together would list nothing', async () => {
    const result = await runMain(['--workspace', dir, 'runs', '--sequence', 'crm', '--sync', 'accounts-to-crm']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error: option '--sequence <slug>' cannot be used with option '--sync <slug>'");
    expect(result.stdout).not.toContain('No runs yet');
  });

  it('suggests nothing when no slug is close', async () => {
    const result = await runMain(['--workspace', dir, 'sequence', 'run', 'invoices']);
    expect(result.code).toBe(2);
    expect(result.stderr).not.toContain('did you mean');
    expect(result.stderr).toContain('lockstep apply');
  });
});

describe('a slug whose sync or sequence was deleted', () => {
  it('sync run, sequence run and sequence plan say it was deleted and where its runs are, and run nothing', async () => {
    const dir = await appliedWorkspace();
    // contacts-to-crm deleted; crm renamed, which deletes it and creates crm-all.
    const next = hierarchyWorkspaceYaml({ withContacts: false }).replace('  crm:\n    members:', '  crm-all:\n    members:');
    expect(next).toContain('crm-all:');
    writeFileSync(join(dir, 'lockstep.yaml'), next);
    const applied = await runMain(['--workspace', dir, 'apply']);
    expect(applied.code, applied.stderr).toBe(0);

    const sync = await runMain(['--workspace', dir, 'sync', 'run', 'contacts-to-crm']);
    expect(sync.code).toBe(2);
    expect(sync.stderr).toBe(
      'error: no sync "contacts-to-crm" in the workspace: it was deleted — its runs stay in the history, listed by `lockstep runs --sync contacts-to-crm`\n',
    );
    const deletedSequence =
      'error: no sequence "crm" in the workspace: it was deleted — its runs stay in the history, listed by `lockstep runs --sequence crm`\n';
    for (const command of ['run', 'plan']) {
      const sequence = await runMain(['--workspace', dir, 'sequence', command, 'crm']);
      expect(sequence.code, command).toBe(2);
      expect(sequence.stderr, command).toBe(deletedSequence);
    }
    expect(JSON.parse((await runMain(['--workspace', dir, 'runs', '--json'])).stdout)).toEqual({ nextScheduled: [], sequenceRuns: [], syncRuns: [] });

    // A slug nothing ever had is still met with the one meant.
    const misspelt = await runMain(['--workspace', dir, 'sequence', 'plan', 'crm-al']);
    expect(misspelt.stderr).toBe('error: no sequence "crm-al" in the workspace (did you mean "crm-all"?) — check the slug, or run `lockstep apply` after adding it\n');
  });
});

describe('cancel given a slug instead of a run id', () => {
  it('names the run in progress to cancel, or says there is none', async () => {
    const dir = await appliedWorkspace();
    const idle = await runMain(['--workspace', dir, 'sequence', 'cancel', 'crm']);
    expect(idle.code).toBe(2);
    expect(idle.stderr).toContain('"crm" is a sequence, not a run id, and no run of it is in progress — `lockstep runs --sequence crm` lists its runs');

    // Queued, with no worker to run them.
    const { sequenceRunId, syncRunId } = await enqueueWork(dir, 'crm', 'contacts-to-crm');
    const sequence = await runMain(['--workspace', dir, 'sequence', 'cancel', 'crm']);
    expect(sequence.code).toBe(2);
    expect(sequence.stderr).toContain(`"crm" is a sequence, not a run id: to cancel its run in progress, \`lockstep sequence cancel ${sequenceRunId}\``);
    const sync = await runMain(['--workspace', dir, 'sync', 'cancel', 'contacts-to-crm']);
    expect(sync.code).toBe(2);
    expect(sync.stderr).toContain(`"contacts-to-crm" is a sync, not a run id: to cancel its run in progress, \`lockstep sync cancel ${syncRunId}\``);

    const misspelt = await runMain(['--workspace', dir, 'sequence', 'cancel', 'cmr']);
    expect(misspelt.code).toBe(2);
    expect(misspelt.stderr).toContain('no sequence run "cmr" (did you mean sequence "crm"?');
    const unknown = await runMain(['--workspace', dir, 'sync', 'cancel', '99']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no sync run 99 — cancel takes a run id; `lockstep runs` lists the runs with their ids');

    // The ids named work.
    const cancelled = await runMain(['--workspace', dir, 'sequence', 'cancel', sequenceRunId]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toBe(`sequence run ${sequenceRunId}: cancelled: it left the queue without running\n`);
    const cancelledSync = await runMain(['--workspace', dir, 'sync', 'cancel', String(syncRunId)]);
    expect(cancelledSync.stdout).toBe(`sync run ${syncRunId}: cancelled: it left the queue without running\n`);
  });
});

/** A workspace whose model reads a column the source does not have (`nmae`), applied. */
async function badColumnWorkspace(source: string): Promise<string> {
  const dir = tempDir('lockstep-cli-bad-column-');
  sqlite(join(dir, 'crm.db'), 'create table accounts (id integer primary key, name text);');
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    [
      'sources:',
      `  warehouse: ${source}`,
      'destinations:',
      '  crm: { type: sqlite, path: crm.db }',
      'models:',
      '  accounts: { source: warehouse, primaryKey: id, query: "select id, nmae from accounts" }',
      'syncs:',
      '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }',
      'sequences:',
      '  crm:',
      '    members:',
      '      - { sync: accounts-to-crm }',
      '',
    ].join('\n'),
  );
  const applied = await runMain(['--workspace', dir, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  return dir;
}

describe("a failed run's error", () => {
  it('is printed once by sync run and by sequence run (SQLite source)', async () => {
    const dir = await badColumnWorkspace('{ type: sqlite, path: warehouse.db }');
    sqlite(join(dir, 'warehouse.db'), "create table accounts (id integer primary key, name text); insert into accounts values (1, 'a');");

    const sync = await runCli(['sync', 'run', 'accounts-to-crm'], { cwd: dir });
    expect(sync.code).toBe(1);
    expect(sync.stdout).toContain('  error: the model\'s query failed on SQLite source');
    expect(occurrences(sync.stdout + sync.stderr, 'no such column: nmae'), sync.stdout + sync.stderr).toBe(1);

    const sequence = await runCli(['sequence', 'run', 'crm'], { cwd: dir });
    expect(sequence.code).toBe(1);
    expect(sequence.stdout).toContain('  Terminated by accounts-to-crm: member "accounts-to-crm" failed\n');
    expect(occurrences(sequence.stdout + sequence.stderr, 'no such column: nmae'), sequence.stdout + sequence.stderr).toBe(1);

    const json = await runCli(['sync', 'run', 'accounts-to-crm', '--json'], { cwd: dir });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'failed', error: expect.stringContaining('no such column: nmae') });
    expect(json.stderr).toBe('');
  });

  it('names the variable exported empty that left a setting empty', async () => {
    const dir = hierarchyWorkspace();
    const yaml = readFileSync(join(dir, 'lockstep.yaml'), 'utf8').replace('crm: { type: sqlite, path: crm.db }', 'crm: { type: sqlite, path: "${CRM_PATH}" }');
    writeFileSync(join(dir, 'lockstep.yaml'), yaml);
    // Applied where the variable is set (validate refuses it empty); run where it is exported empty.
    expect((await runCli(['apply'], { cwd: dir, env: { CRM_PATH: 'crm.db' } })).code).toBe(0);

    const result = await runCli(['sync', 'run', 'accounts-to-crm'], { cwd: dir, env: { CRM_PATH: '' } });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      '  error: sqlite connection "crm": setting path is empty: it reads ${CRM_PATH}, and the environment variable CRM_PATH is empty — export CRM_PATH=... before running Lockstep\n',
    );
  });

  it("keeps PostgreSQL's hint (PostgreSQL source)", async () => {
    const url = await createTestDatabase('lockstep_cli_hint');
    await sql(url, "create table accounts (id integer primary key, name text); insert into accounts values (1, 'a');");
    const dir = await badColumnWorkspace(`{ type: postgres, url: "${url}" }`);

    const result = await runCli(['sync', 'run', 'accounts-to-crm'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('column "nmae" does not exist (HINT: Perhaps you meant to reference the column "accounts.name".)');
    expect(occurrences(result.stdout + result.stderr, 'does not exist'), result.stdout + result.stderr).toBe(1);
  });
});

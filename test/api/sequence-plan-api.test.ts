/**
 * The dry run through its two doors: `POST /api/sequences/{slug}/plan` on a real server, and
 * `lockstep sequence plan` in-process; both on a real SQLite store, warehouse and CRM.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlite, sqliteRows } from '../helpers/harness.js';
import { hierarchyWorkspace, runMain } from '../cli/cli-helpers.js';
import { startApi, type ApiHarness } from './api-helpers.js';

describe('POST /api/sequences/{slug}/plan', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api[Symbol.asyncDispose]();
  });

  it('answers each member\'s plan and stores no run', async () => {
    const { status, body } = await api.call('POST', '/api/sequences/crm-hierarchy/plan', { samples: 2 });
    expect(status).toBe(200);
    expect(body.sequence).toBe('crm-hierarchy');
    expect(body.samplesPerKind).toBe(2);
    expect(body.members.map((m: { key: string; added: number }) => [m.key, m.added])).toEqual([
      ['accounts-to-crm', 3],
      ['workspaces-to-crm', 6],
      ['contacts-to-crm', 12],
    ]);
    expect(body.members[0].samples.added[0]).toEqual({ key: [1], before: 'absent', fields: [{ field: 'id', after: 1 }, { field: 'name', after: 'Account 1' }] });
    expect(body.members[2].samples.added).toHaveLength(2);
    expect((await api.call('GET', '/api/sequences/crm-hierarchy/runs')).body.data).toEqual([]);
    expect(sqliteRows(join(api.dir, 'crm.db'), 'select count(*) as n from accounts')).toEqual([{ n: 0 }]);
  });

  it('shows the members after one whose run would fail as skipped, naming it', async () => {
    sqlite(join(api.dir, 'crm.db'), 'alter table workspaces rename to workspaces_old;');
    try {
      const { status, body } = await api.call('POST', '/api/sequences/crm-hierarchy/plan', { samples: 0 });
      expect(status).toBe(200);
      const reason = body.members[1].terminates;
      expect(reason).toMatch(/^member "workspaces-to-crm" failed: /);
      expect(body.members.map((m: { key: string; status: string; blockedBy: unknown }) => [m.key, m.status, m.blockedBy])).toEqual([
        ['accounts-to-crm', 'planned', null],
        ['workspaces-to-crm', 'failed', null],
        ['contacts-to-crm', 'skipped', { member: 'workspaces-to-crm', reason }],
      ]);
    } finally {
      sqlite(join(api.dir, 'crm.db'), 'alter table workspaces_old rename to workspaces;');
    }
  });

  it('takes no body, and refuses bad input by name', async () => {
    expect((await api.call('POST', '/api/sequences/crm-hierarchy/plan')).status).toBe(200);
    const unknown = await api.call('POST', '/api/sequences/crm-hierachy/plan', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toBe('no sequence "crm-hierachy" in the workspace (did you mean "crm-hierarchy"?)');
    const bad = await api.call('POST', '/api/sequences/crm-hierarchy/plan', { samples: 1000 });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(bad.body.details)).toContain('samples');
    expect((await api.call('POST', '/api/sequences/crm-hierarchy/plan', { samples: 1 }, { auth: false })).status).toBe(401);
  });
});

describe('lockstep sequence plan', () => {
  let dir: string;
  beforeAll(async () => {
    dir = hierarchyWorkspace();
    const applied = await runMain(['--workspace', dir, 'apply']);
    expect(applied.code, applied.stderr).toBe(0);
  });

  it('prints a readable plan, and changes nothing', async () => {
    const result = await runMain(['--workspace', dir, 'sequence', 'plan', 'crm', '--samples', '1']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Plan of sequence crm — a dry run: nothing was sent, nothing stored changed');
    expect(result.stdout).toMatch(/1 +accounts-to-crm +planned +3 +3 +0 +0 +0 +0/);
    expect(result.stdout).toContain('+ 1  id: 1, name: "Account 1"  (not in the destination yet)');
    expect(result.stdout).toContain('(1 of 12 planned rows shown)');
    const runs = await runMain(['--workspace', dir, 'runs', '--json']);
    expect(JSON.parse(runs.stdout)).toEqual({ nextScheduled: [], sequenceRuns: [], syncRuns: [] });
  });

  it('shows a removal with what the destination holds now, not as a change to nulls', async () => {
    const own = hierarchyWorkspace();
    expect((await runMain(['--workspace', own, 'apply'])).code).toBe(0);
    expect((await runMain(['--workspace', own, 'sync', 'run', 'accounts-to-crm'])).code).toBe(0);
    writeFileSync(join(own, 'lockstep.yaml'), readFileSync(join(own, 'lockstep.yaml'), 'utf8').replace('mode: upsert }', 'mode: mirror }'));
    expect((await runMain(['--workspace', own, 'apply'])).code).toBe(0);
    sqlite(join(own, 'warehouse.db'), 'delete from accounts where id = 3');
    const result = await runMain(['--workspace', own, 'sequence', 'plan', 'crm', '--samples', '5']);
    expect(result.stdout).toContain('- 3  (in the destination: id: 3, name: "Account 3")');
    expect(result.stdout).not.toMatch(/- 3 .*→ null/);
  });

  it('says which members a run would skip after a member whose run would fail, and exits non-zero', async () => {
    const own = hierarchyWorkspace();
    expect((await runMain(['--workspace', own, 'apply'])).code).toBe(0);
    sqlite(join(own, 'crm.db'), 'alter table workspaces rename to workspaces_old;');
    const result = await runMain(['--workspace', own, 'sequence', 'plan', 'crm', '--samples', '0']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/2 +workspaces-to-crm +failed +0 /);
    expect(result.stdout).toMatch(/3 +contacts-to-crm +skipped +- +- /);
    expect(result.stdout).toContain('  ✗ the sequence would terminate here; members not started then are skipped');
    expect(result.stdout).toContain('contacts-to-crm\n  · a run would skip it: it waits for workspaces-to-crm, whose outcome would terminate the sequence');
  });

  it('--json prints the plan for machines', async () => {
    const result = await runMain(['--workspace', dir, 'sequence', 'plan', 'crm', '--json', '--samples', '0']);
    expect(result.code, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.members.map((m: { key: string; status: string }) => m.status)).toEqual(['planned', 'planned', 'planned']);
    expect(plan.members[0].samples.added).toEqual([]);
  });

  it('names an unknown sequence with the closest one, and a bad --samples', async () => {
    const unknown = await runMain(['--workspace', dir, 'sequence', 'plan', 'crn']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no sequence "crn" in the workspace (did you mean "crm"?)');
    const bad = await runMain(['--workspace', dir, 'sequence', 'plan', 'crm', '--samples', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: --samples must be a whole number from 0 to 100, not "many"\n');
  });
});

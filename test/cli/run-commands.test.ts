/**
 * `lockstep sync run`, `sequence run` and `runs`, end to end on the hierarchy fixture: a SQLite
 * warehouse and a SQLite CRM whose tables have foreign keys and a NOT NULL account name.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sqlite, sqliteRows, tempDir } from '../helpers/harness.js';
import { CliProcess, UUID, enqueueWork, hierarchyWorkspace, hierarchyWorkspaceYaml, killChildren, runCli, runMain } from './cli-helpers.js';

afterEach(killChildren);

interface Counts {
  addedCount: number;
  changedCount: number;
  removedCount: number;
}

const counts = (addedCount: number, changedCount = 0, removedCount = 0): Counts => ({ addedCount, changedCount, removedCount });

async function appliedWorkspace(): Promise<string> {
  const dir = hierarchyWorkspace();
  const applied = await runMain(['--workspace', dir, 'apply']);
  expect(applied.code, applied.stderr).toBe(0);
  return dir;
}

describe('lockstep sync run', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await appliedWorkspace();
  });

  it('exits 0 on a warning and prints the report with the rejected rows', async () => {
    // Contacts before their workspaces exist in the CRM: every row breaks a foreign key.
    const result = await runCli(['sync', 'run', 'contacts-to-crm'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^▲ Sync contacts-to-crm — run \d+ — WARNING in /);
    expect(result.stdout).toContain('rows read 12   planned +12 ~0 -0   delivered +0 ~0 -0   rejected +12 ~0 -0');
    // Where the run's time went, largest phase first.
    expect(result.stdout).toMatch(/\n {2}time: (connect|query|plan|deliver|commit|finish) \d+(\.\d)? m?s/);
    expect(result.stdout).toContain('rejected rows (first 10 of 12):');
    expect(result.stdout).toContain('key [1] (added): FOREIGN KEY constraint failed');
    expect(sqliteRows(join(dir, 'crm.db'), 'select * from contacts')).toEqual([]);
  });

  it('runs under Node memory options (the store\'s write thread inherits them as Node allows)', async () => {
    // V8 options such as --max-old-space-size are what an operator sets for a large model; a thread
    // given them explicitly refuses to start.
    const own = await appliedWorkspace();
    const result = await runCli(['sync', 'run', 'accounts-to-crm', '--json'], { cwd: own, nodeArgs: ['--max-old-space-size=512', '--max-semi-space-size=16'] });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'success', successfulRows: counts(3) });
    expect(sqliteRows(join(own, 'crm.db'), 'select id from accounts order by id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
  });

  it('says what renaming a sync drops, and lists its earlier run by the slug it ran as, marked deleted', async () => {
    const own = await appliedWorkspace();
    expect((await runMain(['--workspace', own, 'sync', 'run', 'accounts-to-crm'])).code).toBe(0);
    const yaml = join(own, 'lockstep.yaml');
    writeFileSync(yaml, readFileSync(yaml, 'utf8').replaceAll('accounts-to-crm', 'accounts-sync'));
    // Plan and apply say what the delete of the old name drops.
    const planned = await runMain(['--workspace', own, 'plan']);
    expect(planned.stdout).toContain(
      '- delete sync accounts-to-crm — its record of 3 delivered row(s) goes with it: a sync declared again (a rename is a delete and a create) sends every row again',
    );
    const applied = await runMain(['--workspace', own, 'apply']);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain('  delete sync accounts-to-crm — its record of 3 delivered row(s) goes with it');
    expect((await runMain(['--workspace', own, 'sync', 'run', 'accounts-sync'])).code).toBe(0);
    const listed = await runMain(['--workspace', own, 'runs']);
    expect(listed.stdout).toMatch(/#1 {2}accounts-to-crm \(deleted\) {2}success/);
    expect(listed.stdout).toMatch(/#2 {2}accounts-sync {2}success/);
    const json = JSON.parse((await runMain(['--workspace', own, 'runs', '--json'])).stdout) as {
      syncRuns: Array<{ id: number; sync: string | null; syncSlug: string | null; syncDeleted: boolean }>;
    };
    // `sync` names the live sync, as the API answers; the slug a run ran as stays with the run.
    expect(json.syncRuns.map((r) => [r.id, r.sync, r.syncSlug, r.syncDeleted])).toEqual([
      [2, 'accounts-sync', 'accounts-sync', false],
      [1, null, 'accounts-to-crm', true],
    ]);
  });

  it('refuses --full-resync with --reset-cdc, which contradict each other, running nothing', async () => {
    const result = await runMain(['--workspace', dir, 'sync', 'run', 'accounts-to-crm', '--full-resync', '--reset-cdc']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--full-resync and --reset-cdc contradict each other');
  });

  it('ends quietly with exit 0 when its reader closes the pipe early (lockstep runs | head)', async () => {
    const proc = new CliProcess(['--workspace', dir, 'runs'], { cwd: dir });
    proc.child.stdout!.destroy();
    const ended = await proc.exited;
    expect(ended.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(ended.code).toBe(0);
  });

  it('--json prints the run with its counts and rejected rows', async () => {
    sqlite(join(dir, 'warehouse.db'), `insert into accounts values (4, null);`);
    const result = await runCli(['--workspace', dir, 'sync', 'run', 'accounts-to-crm', '--json'], { cwd: tempDir() });
    expect(result.code, result.stderr).toBe(0);
    const run = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(run).toMatchObject({
      id: expect.any(Number),
      syncId: expect.any(Number),
      sync: 'accounts-to-crm',
      status: 'warning',
      trigger: 'manual',
      querySize: 4,
      plannedRows: counts(4),
      successfulRows: counts(3),
      failedRows: counts(1),
      completionRatio: 1,
      error: null,
      rejectedRows: [{ key: [4], op: 'added', reason: expect.stringContaining('NOT NULL constraint failed: accounts.name') }],
      phaseMs: expect.objectContaining({ connect: expect.any(Number), query: expect.any(Number), plan: expect.any(Number), deliver: expect.any(Number) }),
    });
    for (const field of ['createdAt', 'startedAt', 'finishedAt']) expect(Date.parse(run[field] as string)).not.toBeNaN();
    expect(sqliteRows(join(dir, 'crm.db'), 'select id from accounts order by id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    sqlite(join(dir, 'warehouse.db'), `delete from accounts where id = 4;`);
  });

  it('exits 1 and prints the error when the run fails', async () => {
    const broken = await appliedWorkspace();
    sqlite(join(broken, 'crm.db'), 'drop table contacts;');
    const result = await runMain(['--workspace', broken, 'sync', 'run', 'contacts-to-crm']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^✖ Sync contacts-to-crm — run \d+ — FAILED/);
    expect(result.stdout).toMatch(/ {2}error: .*contacts/);
  });

  it('a sync slugged with digits runs itself, not the sync whose id its slug spells', async () => {
    const digits = await appliedWorkspace();
    // Added after the others, so that id 1 is accounts-to-crm's.
    const yaml = hierarchyWorkspaceYaml().replace('sequences:\n', '  "1": { model: contacts, destination: crm, object: contacts, mode: upsert, mappings: [ { from: email, to: email_address } ] }\nsequences:\n');
    writeFileSync(join(digits, 'lockstep.yaml'), yaml);
    expect((await runMain(['--workspace', digits, 'apply'])).code).toBe(0);
    const result = await runMain(['--workspace', digits, 'sync', 'run', '1', '--json']);
    expect(JSON.parse(result.stdout)).toMatchObject({ sync: '1', querySize: 12 });
  });

  it('an unknown slug exits 2 naming the slug and `lockstep apply`', async () => {
    const result = await runCli(['sync', 'run', 'contacts-to-hubspot'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"contacts-to-hubspot"');
    expect(result.stderr).toContain('lockstep apply');
    expect(result.stdout).toBe('');
  });
});

describe('lockstep sequence run', () => {
  it('runs a sequence to done with live progress and a report, exit 0', async () => {
    const dir = await appliedWorkspace();
    const result = await runCli(['sequence', 'run', 'crm'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/^▶ sequence run [0-9a-f-]{36} started$/m);
    // Every member's end shows up live, in the order the members ran.
    const ends = ['  ✔ accounts-to-crm success', '  ✔ workspaces-to-crm success', '  ✔ contacts-to-crm success'].map((l) => result.stderr.indexOf(l));
    expect(ends.every((i) => i >= 0), result.stderr).toBe(true);
    expect([...ends].sort((a, b) => a - b)).toEqual(ends);

    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^✔ Sequence crm — run [0-9a-f-]{36} — DONE in /);
    expect(lines.find((l) => l.includes(' accounts-to-crm '))).toMatch(/✔\s+1\s+accounts-to-crm\s+success\s+3\s+\+3 ~0 -0\s+0\s/);
    expect(lines.find((l) => l.includes(' workspaces-to-crm '))).toMatch(/✔\s+2\s+workspaces-to-crm\s+success\s+6\s+\+6 ~0 -0\s+0\s/);
    expect(lines.find((l) => l.includes(' contacts-to-crm '))).toMatch(/✔\s+3\s+contacts-to-crm\s+success\s+12\s+\+12 ~0 -0\s+0\s/);
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);
  });

  it('exits 1 when a terminate policy stops it; the members after it are skipped', async () => {
    const dir = await appliedWorkspace();
    // The CRM requires an account name; the first member terminates on any rejected row.
    sqlite(join(dir, 'warehouse.db'), `insert into accounts values (4, null); insert into workspaces values (7, 4, 'Workspace 7');`);
    const result = await runCli(['sequence', 'run', 'crm'], { cwd: dir });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(/^✖ Sequence crm — run [0-9a-f-]{36} — FAILED in /);
    expect(result.stdout).toMatch(/▲\s+1\s+accounts-to-crm\s+warning\s+4\s+\+3 ~0 -0\s+1\s/);
    expect(result.stdout).toMatch(/·\s+2\s+workspaces-to-crm\s+skipped\s/);
    expect(result.stdout).toMatch(/·\s+3\s+contacts-to-crm\s+skipped\s/);
    expect(result.stdout).toContain('Terminated by accounts-to-crm: member "accounts-to-crm" rejected 1 of 4 rows');
    expect(result.stdout).toContain('rejected by accounts-to-crm:\n    key [4] (added): NOT NULL constraint failed: accounts.name');
    expect(result.stderr).toContain('  · workspaces-to-crm skipped');
    expect(result.stderr).toContain('  · contacts-to-crm skipped');
    expect(sqliteRows(join(dir, 'crm.db'), 'select count(*) as n from workspaces')).toEqual([{ n: 0 }]);

    const json = await runCli(['sequence', 'run', 'crm', '--json'], { cwd: dir });
    expect(json.code, json.stderr).toBe(1);
    const view = JSON.parse(json.stdout) as {
      id: string;
      status: string;
      syncRuns: Array<{ syncId: number; syncRunId: number; status: string; finishedAt: string | null }>;
      members: Array<{ key: string; status: string; syncRunId: number | null; syncId: number }>;
      terminatedBy: string | null;
      reason: string | null;
    };
    expect(view.id).toMatch(UUID);
    expect(view.status).toBe('failed');
    expect(view.syncRuns).toEqual([{ syncId: view.members[0]!.syncId, syncRunId: expect.any(Number), status: 'warning', finishedAt: expect.any(String) }]);
    expect(view.syncRuns[0]!.syncRunId).toBe(view.members[0]!.syncRunId);
    expect(view.members.map((m) => [m.key, m.status])).toEqual([
      ['accounts-to-crm', 'warning'],
      ['workspaces-to-crm', 'skipped'],
      ['contacts-to-crm', 'skipped'],
    ]);
    expect(view.members.slice(1).map((m) => m.syncRunId)).toEqual([null, null]);
    expect(view.terminatedBy).toBe('accounts-to-crm');
    expect(view.reason).toContain('rejected 1 of 1 rows');
    // --json writes nothing but JSON on stdout, and no progress on stderr.
    expect(json.stderr).not.toContain('sequence run');
  });

  it('an unknown slug exits 2 naming the slug and `lockstep apply`', async () => {
    const dir = await appliedWorkspace();
    const result = await runMain(['--workspace', dir, 'sequence', 'run', 'crm-hierarchy']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"crm-hierarchy"');
    expect(result.stderr).toContain('lockstep apply');
  });

  it('a command refused before its run starts takes none of the work queued by others', async () => {
    const dir = await appliedWorkspace();
    const { sequenceRunId, syncRunId } = await enqueueWork(dir, 'crm', 'accounts-to-crm');
    const refused = [
      ['sequence', 'run', 'crm-hierarchy'],
      ['sync', 'run', 'acounts-to-crm'],
      ['sync', 'run', 'accounts-to-crm', '--full-resync', '--reset-cdc'],
      ['sequence', 'resume', sequenceRunId],
    ];
    for (const args of refused) expect((await runMain(['--workspace', dir, ...args])).code, args.join(' ')).toBe(2);
    const listed = JSON.parse((await runMain(['--workspace', dir, 'runs', '--json'])).stdout) as {
      sequenceRuns: Array<{ id: string; status: string }>;
      syncRuns: Array<{ id: number; status: string }>;
    };
    expect(listed.sequenceRuns.map((r) => [r.id, r.status])).toEqual([[sequenceRunId, 'pending']]);
    expect(listed.syncRuns.map((r) => [r.id, r.status])).toEqual([[syncRunId, 'queued']]);
  });
});

describe('lockstep sequence resume', () => {
  it('resumes a failed run: finished members are carried over, the rest run; exit 0, the report says so', async () => {
    const dir = await appliedWorkspace();
    const crm = join(dir, 'crm.db');
    sqlite(crm, 'drop table workspaces;');
    const failed = await runCli(['sequence', 'run', 'crm', '--json'], { cwd: dir });
    expect(failed.code, failed.stderr).toBe(1);
    const failedView = JSON.parse(failed.stdout) as { id: string; members: Array<{ status: string; syncRunId: number | null }> };
    expect(failedView.members.map((m) => m.status)).toEqual(['success', 'failed', 'skipped']);

    sqlite(crm, 'create table workspaces (id integer primary key, account_id integer not null references accounts(id), name text);');
    const result = await runCli(['sequence', 'resume', failedView.id], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`^resuming sequence run ${failedView.id} as run [0-9a-f-]{36}; carried over: accounts-to-crm$`, 'm'));
    // Live progress does not show the carried-over member as if it had just run.
    expect(result.stderr).toMatch(/^ {2}✔ accounts-to-crm success \(carried over\)$/m);
    expect(result.stderr).toMatch(/^ {2}✔ workspaces-to-crm success$/m);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^✔ Sequence crm — run [0-9a-f-]{36} — DONE in /);
    expect(lines[1]).toBe(`  Resumes run ${failedView.id}; members marked "carried over" finished there and did not run again`);
    expect(lines.find((l) => l.includes(' accounts-to-crm '))).toMatch(new RegExp(`✔\\s+1\\s+accounts-to-crm\\s+success \\(carried over\\)\\s.*\\s${failedView.members[0]!.syncRunId}$`));
    expect(lines.find((l) => l.includes(' workspaces-to-crm '))).toMatch(/✔\s+2\s+workspaces-to-crm\s+success\s+6\s/);
    expect(sqliteRows(crm, 'select count(*) as n from contacts')).toEqual([{ n: 12 }]);

    const listed = await runMain(['--workspace', dir, 'runs', '--sequence', 'crm']);
    expect(listed.stdout).toContain(`(resumes ${failedView.id})`);
    const again = await runMain(['--workspace', dir, 'sequence', 'resume', failedView.id]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`sequence run ${failedView.id} was already resumed by run`);
    const slug = await runMain(['--workspace', dir, 'sequence', 'resume', 'crm']);
    expect(slug.code).toBe(2);
    expect(slug.stderr).toContain(`no sequence run "crm": "crm" is a sequence, and resume takes a run's id — its latest failed run is ${failedView.id}`);
  });
});

describe('lockstep runs', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await appliedWorkspace();
    // One sync run alone, then a sequence run with its three member sync runs.
    expect((await runMain(['--workspace', dir, 'sync', 'run', 'contacts-to-crm'])).code).toBe(0);
    expect((await runMain(['--workspace', dir, 'sequence', 'run', 'crm'])).code).toBe(0);
  });

  it('lists sequence runs and sync runs, newest first', async () => {
    const result = await runCli(['runs'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe('Sequence runs');
    expect(lines[1]).toMatch(/^ {2}✔ \S+ {2}crm {2}done {2}[0-9a-f-]{36}$/);
    expect(lines[2]).toBe('Sync runs');
    expect(lines.slice(3).map((l) => /#(\d+) {2}(\S+) {2}(\S+)/.exec(l)?.slice(1))).toEqual([
      ['4', 'contacts-to-crm', 'success'],
      ['3', 'workspaces-to-crm', 'success'],
      ['2', 'accounts-to-crm', 'success'],
      ['1', 'contacts-to-crm', 'warning'],
    ]);
    expect(lines.at(-1)).toContain('read 12, delivered +0 ~0 -0, rejected 12');
  });

  it('--json, --sequence and --sync', async () => {
    type Listing = { sequenceRuns: Array<{ id: string; status: string; sequence: string }>; syncRuns: Array<{ id: number; sync: string; status: string }> };
    const all = await runMain(['--workspace', dir, 'runs', '--json']);
    expect(all.code, all.stderr).toBe(0);
    const listing = JSON.parse(all.stdout) as Listing;
    expect(listing.sequenceRuns).toHaveLength(1);
    expect(listing.sequenceRuns[0]).toMatchObject({ id: expect.stringMatching(UUID), status: 'done', sequence: 'crm' });
    expect(listing.syncRuns.map((r) => r.id)).toEqual([4, 3, 2, 1]);

    const bySequence = JSON.parse((await runMain(['--workspace', dir, 'runs', '--sequence', 'crm', '--json'])).stdout) as Listing;
    expect(bySequence.sequenceRuns).toHaveLength(1);
    expect(bySequence.syncRuns).toEqual([]);

    const bySync = await runMain(['--workspace', dir, 'runs', '--sync', 'contacts-to-crm', '--json']);
    const syncListing = JSON.parse(bySync.stdout) as Listing;
    expect(syncListing.sequenceRuns).toEqual([]);
    expect(syncListing.syncRuns.map((r) => [r.id, r.sync, r.status])).toEqual([
      [4, 'contacts-to-crm', 'success'],
      [1, 'contacts-to-crm', 'warning'],
    ]);

    const limited = JSON.parse((await runMain(['--workspace', dir, 'runs', '--limit', '1', '--json'])).stdout) as Listing;
    expect(limited.syncRuns.map((r) => r.id)).toEqual([4]);

    const text = await runMain(['--workspace', dir, 'runs', '--sync', 'accounts-to-crm']);
    expect(text.stdout).not.toContain('Sequence runs');
    expect(text.stdout).toContain('#2  accounts-to-crm  success');
    expect(text.stdout).not.toContain('contacts-to-crm');
  });

  it('lists first when each scheduled sync and sequence runs next, the soonest first; --json as nextScheduled', async () => {
    const scheduled = hierarchyWorkspace();
    const yaml = hierarchyWorkspaceYaml()
      .replace('mode: upsert }', 'mode: upsert, schedule: { type: interval, unit: day, quantity: 1, startAt: "2099-01-01T06:00:00+01:00" } }')
      .replace('    mode: upsert\n', '    mode: upsert\n    schedule: { type: after, sync: accounts-to-crm }\n')
      .replace('  crm:\n', '  crm:\n    schedule: { type: cron, expression: "30 2 * * *", timezone: Europe/Berlin }\n')
      .concat('  paused:\n    enabled: false\n    schedule: { type: interval, unit: hour, quantity: 1 }\n    members: [ { sync: accounts-to-crm } ]\n');
    writeFileSync(join(scheduled, 'lockstep.yaml'), yaml);
    expect((await runMain(['--workspace', scheduled, 'apply'])).code).toBe(0);

    const text = await runMain(['--workspace', scheduled, 'runs']);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toBe('Next on schedule');
    // crm fires at 02:30 Berlin time within a day; the sync in 2099; neither the after-scheduled nor the disabled one.
    expect(lines[1]).toMatch(/^ {2}⏱ \S+:30:00\.000Z {2}sequence crm$/);
    expect(lines[2]).toBe('  ⏱ 2099-01-01T05:00:00.000Z  sync accounts-to-crm');
    expect(lines[3]).toContain('No runs yet.');

    const json = JSON.parse((await runMain(['--workspace', scheduled, 'runs', '--json'])).stdout) as { nextScheduled: Array<{ kind: string; slug: string; nextDueAt: string }> };
    expect(json.nextScheduled.map((n) => `${n.kind} ${n.slug}`)).toEqual(['sequence crm', 'sync accounts-to-crm']);
    expect(Date.parse(json.nextScheduled[0]!.nextDueAt) - Date.now()).toBeLessThanOrEqual(86_400_000);
    const bySync = JSON.parse((await runMain(['--workspace', scheduled, 'runs', '--sync', 'accounts-to-crm', '--json'])).stdout) as typeof json;
    expect(bySync.nextScheduled).toEqual([{ kind: 'sync', slug: 'accounts-to-crm', nextDueAt: '2099-01-01T05:00:00.000Z' }]);
    expect((JSON.parse((await runMain(['--workspace', scheduled, 'runs', '--sequence', 'paused', '--json'])).stdout) as typeof json).nextScheduled).toEqual([]);
  });

  it('an unknown slug exits 2', async () => {
    const sequence = await runCli(['runs', '--sequence', 'nope'], { cwd: dir });
    expect(sequence.code).toBe(2);
    expect(sequence.stderr).toContain('no sequence "nope"');
    expect(sequence.stderr).toContain('lockstep apply');
    const sync = await runMain(['--workspace', dir, 'runs', '--sync', 'nope']);
    expect(sync.code).toBe(2);
    expect(sync.stderr).toContain('no sync "nope"');
  });

  it('--sync and --sequence of a deleted one list the runs it had, saying it was deleted; a live one of that slug lists its own', async () => {
    type Listing = {
      sequenceRuns: Array<{ id: string; sequence: string | null; sequenceSlug: string; sequenceDeleted: boolean }>;
      syncRuns: Array<{ id: number; sync: string | null; syncSlug: string; syncDeleted: boolean }>;
    };
    const listing = async (...args: string[]) => {
      const result = await runMain(['--workspace', own, 'runs', ...args, '--json']);
      expect(result.code, result.stderr).toBe(0);
      return { ...(JSON.parse(result.stdout) as Listing), stderr: result.stderr };
    };
    const own = await appliedWorkspace();
    const yaml = join(own, 'lockstep.yaml');
    const declared = readFileSync(yaml, 'utf8');
    const renamed = declared.replaceAll('accounts-to-crm', 'accounts-sync').replace('  crm:\n    members:', '  crm-all:\n    members:');
    expect(renamed).toContain('crm-all:');
    const apply = async (text: string) => {
      writeFileSync(yaml, text);
      const applied = await runMain(['--workspace', own, 'apply']);
      expect(applied.code, applied.stderr).toBe(0);
    };
    expect((await runMain(['--workspace', own, 'sync', 'run', 'accounts-to-crm'])).code).toBe(0);
    expect((await runMain(['--workspace', own, 'sequence', 'run', 'crm'])).code).toBe(0);
    const before = await listing('--sync', 'accounts-to-crm');
    const sequenceRun = (await listing('--sequence', 'crm')).sequenceRuns[0]!.id;
    expect(before.syncRuns).toHaveLength(2);
    expect(before.stderr).toBe('');
    await apply(renamed);
    expect((await runMain(['--workspace', own, 'sync', 'run', 'accounts-sync'])).code).toBe(0);

    // The runs it had, newest first, named by the slug they ran as; stderr says it was deleted.
    const deleted = await listing('--sync', 'accounts-to-crm');
    expect(deleted.syncRuns.map((r) => [r.id, r.sync, r.syncSlug, r.syncDeleted])).toEqual(before.syncRuns.map((r) => [r.id, null, 'accounts-to-crm', true]));
    expect(deleted.sequenceRuns).toEqual([]);
    expect(deleted.stderr).toContain('sync "accounts-to-crm" was deleted');
    const text = await runMain(['--workspace', own, 'runs', '--sync', 'accounts-to-crm']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`#${before.syncRuns[0]!.id}  accounts-to-crm (deleted)  success`);
    expect(text.stdout).not.toContain('accounts-sync');
    const deletedSequence = await listing('--sequence', 'crm');
    expect(deletedSequence.sequenceRuns.map((r) => [r.id, r.sequence, r.sequenceSlug, r.sequenceDeleted])).toEqual([[sequenceRun, null, 'crm', true]]);
    expect(deletedSequence.syncRuns).toEqual([]);
    expect(deletedSequence.stderr).toContain('sequence "crm" was deleted');

    // Declared again, the slug names the live sync: its runs only, as for any live sync.
    await apply(declared);
    expect((await runMain(['--workspace', own, 'sync', 'run', 'accounts-to-crm'])).code).toBe(0);
    const live = await listing('--sync', 'accounts-to-crm');
    expect(live.syncRuns.map((r) => [r.sync, r.syncDeleted])).toEqual([['accounts-to-crm', false]]);
    expect(live.stderr).toBe('');
    expect((await listing('--sequence', 'crm')).sequenceRuns).toEqual([]);

    // Deleted twice: the runs of both syncs that had the slug, newest first.
    await apply(renamed);
    const twice = await listing('--sync', 'accounts-to-crm');
    expect(twice.syncRuns.map((r) => [r.id, r.syncDeleted])).toEqual([[live.syncRuns[0]!.id, true], ...before.syncRuns.map((r) => [r.id, true])]);
    expect((await listing('--sync', 'accounts-to-crm')).stderr).toContain('was deleted');
    expect((await runMain(['--workspace', own, 'runs', '--sync', 'accounts-to-crm', '--limit', '1', '--json'])).stdout).toContain(`"id": ${live.syncRuns[0]!.id},`);
  });

  it('refuses to open a store where there is no workspace, instead of creating one', async () => {
    const empty = tempDir('lockstep-cli-empty-');
    for (const args of [['runs'], ['sync', 'run', 'accounts-to-crm'], ['sequence', 'run', 'crm']]) {
      const result = await runMain(['--workspace', empty, ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain('no workspace found');
    }
    expect(existsSync(join(empty, 'lockstep.db'))).toBe(false);
  });

  it('names the run whose end started a run (an after schedule)', async () => {
    const own = hierarchyWorkspace();
    const yaml = hierarchyWorkspaceYaml()
      .replace('object: workspaces, mode: upsert }', 'object: workspaces, mode: upsert, schedule: { type: after, sequence: crm } }')
      .concat('  after-crm:\n    schedule: { type: after, sequence: crm }\n    members: [accounts-to-crm]\n');
    writeFileSync(join(own, 'lockstep.yaml'), yaml);
    expect((await runMain(['--workspace', own, 'apply'])).code).toBe(0);
    expect((await runMain(['--workspace', own, 'sequence', 'run', 'crm'])).code).toBe(0);
    expect((await runMain(['--workspace', own, 'worker', '--drain'])).code).toBe(0);
    const upstream = JSON.parse((await runMain(['--workspace', own, 'runs', '--sequence', 'crm', '--json'])).stdout) as { sequenceRuns: Array<{ id: string }> };
    const ended = `sequence "crm" run ${upstream.sequenceRuns[0]!.id} ended done`;

    const listed = await runMain(['--workspace', own, 'runs']);
    expect(listed.code, listed.stderr).toBe(0);
    const line = (pattern: RegExp) => listed.stdout.split('\n').find((l) => pattern.test(l));
    expect(line(/ {2}after-crm {2}done /)).toContain(`  (after ${ended})`);
    expect(line(/#\d+ {2}workspaces-to-crm {2}success .*after/)).toContain(`  (after ${ended})`);
    expect(line(/ {2}crm {2}done /)).not.toContain('(after');
    // --json (and the API) carry the same words.
    const json = JSON.parse((await runMain(['--workspace', own, 'runs', '--json'])).stdout) as {
      sequenceRuns: Array<{ sequence: string; trigger: string; triggerDetail: string | null }>;
      syncRuns: Array<{ sync: string; trigger: string; triggerDetail: string | null }>;
    };
    expect(json.sequenceRuns.find((r) => r.sequence === 'after-crm')).toMatchObject({ trigger: 'upstream', triggerDetail: ended });
    expect(json.syncRuns.find((r) => r.sync === 'workspaces-to-crm' && r.trigger === 'upstream')).toMatchObject({ triggerDetail: ended });
    expect(json.sequenceRuns.find((r) => r.sequence === 'crm')).toMatchObject({ trigger: 'manual', triggerDetail: 'cli' });
  });

  it('shows no counts for a sync run that never started, waiting in the queue or cancelled there, as the UI does', async () => {
    const idle = await appliedWorkspace();
    // Queued, with no worker to run it.
    const { syncRunId } = await enqueueWork(idle, 'crm', 'contacts-to-crm');
    const line = async () => (await runMain(['--workspace', idle, 'runs', '--sync', 'contacts-to-crm'])).stdout.split('\n').find((l) => l.includes(`#${syncRunId} `));
    expect(await line()).toMatch(new RegExp(`#${syncRunId} {2}contacts-to-crm {2}queued {2}not started$`));
    expect((await runMain(['--workspace', idle, 'sync', 'cancel', String(syncRunId)])).code).toBe(0);
    expect(await line()).toMatch(new RegExp(`#${syncRunId} {2}contacts-to-crm {2}cancelled {2}not started$`));
  });

  it('marks a run whose cancel was asked but has not ended yet as cancelling, in the list and in --json', async () => {
    const idle = await appliedWorkspace();
    const { sequenceRunId, syncRunId } = await enqueueWork(idle, 'crm', 'contacts-to-crm');
    // Both at work in a worker on another machine, whose lease holds: a cancel is asked of it and waits for it.
    const now = Date.now();
    const store = join(idle, 'lockstep.db');
    sqlite(store, `UPDATE sync_runs SET status = 'processing', started_at = ${now}, attempt = 1, worker_id = 'elsewhere/4242/0a1b2c', lease_expires_at = ${now + 600_000} WHERE id = ${syncRunId}`);
    sqlite(store, `UPDATE sequence_runs SET status = 'running', started_at = ${now}, cancel_requested = 1 WHERE id = '${sequenceRunId}'`);
    const cancel = await runMain(['--workspace', idle, 'sync', 'cancel', String(syncRunId)]);
    expect(cancel.code, cancel.stderr).toBe(0);
    const listed = (await runMain(['--workspace', idle, 'runs'])).stdout.split('\n');
    expect(listed.find((l) => l.includes(`#${syncRunId} `))).toMatch(new RegExp(`#${syncRunId} {2}contacts-to-crm {2}processing \\(cancelling\\) {2}read 0`));
    expect(listed.find((l) => l.includes(sequenceRunId))).toMatch(new RegExp(` {2}crm {2}running \\(cancelling\\) {2}${sequenceRunId}`));
    const json = JSON.parse((await runMain(['--workspace', idle, 'runs', '--json'])).stdout) as {
      sequenceRuns: Array<{ id: string; cancelRequested: boolean }>;
      syncRuns: Array<{ id: number; cancelRequested: boolean }>;
    };
    expect(json.syncRuns.find((r) => r.id === syncRunId)).toMatchObject({ status: 'processing', cancelRequested: true });
    expect(json.sequenceRuns.find((r) => r.id === sequenceRunId)).toMatchObject({ status: 'running', cancelRequested: true });
  });

  it('says how to start when there are no runs', async () => {
    const result = await runMain(['--workspace', await appliedWorkspace(), 'runs']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('No runs yet.');
  });
});

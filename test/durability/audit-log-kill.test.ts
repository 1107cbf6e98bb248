/**
 * The audit log across a crash: a sequence run killed with SIGKILL right after its first run was
 * appended to the warehouse's audit tables (before or after the outbox heard of it, whichever the
 * kill hits) is finished by a restarted Lockstep, and every run is in the audit log exactly once.
 * Child processes run the built command line on real SQLite files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHierarchyFixture, sqliteRows, tempDir } from '../helpers/harness.js';

const BIN = resolve(import.meta.dirname, '../../bin/lockstep.js');
const SIZES = { accounts: 1500, workspaces: 3000, contacts: 6000 };

const WORKSPACE = `
sources:
  warehouse: { type: sqlite, path: warehouse.db }
destinations:
  crm: { type: sqlite, path: crm.db, auditLog: { schema: lockstep_audit } }
models:
  accounts:   { source: warehouse, primaryKey: id, query: "select id, name from accounts" }
  workspaces: { source: warehouse, primaryKey: id, query: "select id, account_id, name from workspaces" }
  contacts:   { source: warehouse, primaryKey: id, query: "select id, workspace_id, email from contacts" }
syncs:
  accounts:   { model: accounts, destination: crm, object: accounts, mode: upsert, batchSize: 50 }
  workspaces: { model: workspaces, destination: crm, object: workspaces, mode: upsert, batchSize: 50 }
  contacts:
    model: contacts
    destination: crm
    object: contacts
    mode: upsert
    batchSize: 50
    mappings: [ { from: email, to: email_address } ]
sequences:
  crm:
    members:
      - { sync: accounts }
      - { sync: workspaces }
      - { sync: contacts }
`;

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

function lockstep(dir: string, args: string[]): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--workspace', dir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Short leases: outbox entries the killed process held are taken again a second later.
    env: { ...process.env, LOCKSTEP_POLL_MS: '50', LOCKSTEP_LEASE_SECONDS: '1' },
  });
  children.add(child);
  child.stdout?.resume();
  child.stderr?.resume();
  const exit = new Promise<number | null>((resolveExit) => child.on('exit', (code) => (children.delete(child), resolveExit(code))));
  return { child, exit };
}

/** Rows of an audit table; null while it does not exist yet or the writer holds the file. */
function auditRows(dir: string, table: string): Array<Record<string, unknown>> | null {
  try {
    return sqliteRows(join(dir, 'crm.db'), `select * from lockstep_audit_${table}`);
  } catch {
    return null;
  }
}

describe('audit log across kill -9', () => {
  it('appends every run once when the process dies right after its first append', async () => {
    const dir = tempDir('lockstep-audit-kill-');
    createHierarchyFixture(dir, SIZES);
    writeFileSync(join(dir, 'lockstep.yaml'), WORKSPACE);
    expect(await lockstep(dir, ['apply']).exit).toBe(0);

    const first = lockstep(dir, ['sequence', 'run', 'crm']);
    const deadline = Date.now() + 60_000;
    let killed = false;
    while (!killed && Date.now() < deadline) {
      if ((auditRows(dir, 'sync_runs')?.length ?? 0) >= 1) {
        first.child.kill('SIGKILL');
        killed = true;
      } else await new Promise((r) => setTimeout(r, 2));
    }
    expect(killed, 'the first member was never appended').toBe(true);
    await first.exit;
    expect(auditRows(dir, 'sequence_runs') ?? []).toHaveLength(0);

    // Restart until the sequence run and every member are in the audit log (entries the killed
    // process held come back once their hold ends).
    for (let attempt = 0; attempt < 10 && (auditRows(dir, 'sequence_runs')?.length ?? 0) === 0; attempt++) {
      expect(await lockstep(dir, ['worker', '--drain']).exit).toBe(0);
      await new Promise((r) => setTimeout(r, 1200));
    }
    const sequenceRuns = auditRows(dir, 'sequence_runs') ?? [];
    expect(sequenceRuns.map((r) => [r.sequence, r.status])).toEqual([['crm', 'done']]);
    // One more drain after the holds ended: nothing is appended twice.
    await new Promise((r) => setTimeout(r, 1200));
    expect(await lockstep(dir, ['worker', '--drain']).exit).toBe(0);
    const syncRuns = auditRows(dir, 'sync_runs') ?? [];
    expect(syncRuns.map((r) => [r.sync, r.status]).sort()).toEqual([
      ['accounts', 'success'],
      ['contacts', 'success'],
      ['workspaces', 'success'],
    ]);
    expect(new Set(syncRuns.map((r) => r.run_id)).size).toBe(3);
    expect(auditRows(dir, 'sequence_runs')).toHaveLength(1);
    const members = JSON.parse(String(sequenceRuns[0]!.members)) as Array<{ syncRunId: number }>;
    expect(members.map((m) => m.syncRunId).sort()).toEqual(syncRuns.map((r) => r.run_id).sort());
  });
});

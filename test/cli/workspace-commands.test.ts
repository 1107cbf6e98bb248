/**
 * `lockstep init`, `validate`, `plan`, `apply`, `--help` and argument errors, end to end: the built
 * command line as a child process where the process boundary matters (exit codes, stdout/stderr,
 * the environment), `main()` in-process elsewhere.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/harness.js';
import { hierarchyWorkspace, hierarchyWorkspaceYaml, killChildren, runCli, runMain } from './cli-helpers.js';

afterEach(killChildren);

/** `line:column` (1-based) of the first occurrence of `token` in `text`. */
function locate(text: string, token: string): string {
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes(token));
  if (line < 0) throw new Error(`${token} not in the text`);
  return `${line + 1}:${lines[line]!.indexOf(token) + 1}`;
}

describe('lockstep init', () => {
  it('writes a starter workspace that validates and applies, and refuses to overwrite it', async () => {
    const dir = tempDir('lockstep-cli-init-');
    const first = await runCli(['init'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`wrote ${join(dir, 'lockstep.yaml')}`);
    const written = readFileSync(join(dir, 'lockstep.yaml'), 'utf8');
    expect(written).toContain('sequences:');

    const validate = await runMain(['--workspace', dir, 'validate', '--json']);
    expect(validate.code, validate.stdout).toBe(0);
    expect(JSON.parse(validate.stdout)).toEqual({ valid: true, diagnostics: [], warnings: [] });
    const plan = await runMain(['--workspace', dir, 'plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('+ create sequence crm-hierarchy');

    writeFileSync(join(dir, 'lockstep.yaml'), `${written}\n# my edits\n`);
    const again = await runCli(['init'], { cwd: dir });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists .*lockstep\.yaml.*does not overwrite/);
    expect(again.stdout).toBe('');
    expect(readFileSync(join(dir, 'lockstep.yaml'), 'utf8')).toContain('# my edits');
  });

  it('refuses the workspace file given as the workspace folder, naming the folder to give', async () => {
    const dir = hierarchyWorkspace();
    const file = join(dir, 'lockstep.yaml');
    for (const args of [['validate'], ['runs'], ['init']]) {
      const result = await runCli(['--workspace', 'lockstep.yaml', ...args], { cwd: dir });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toBe(`error: --workspace lockstep.yaml is a file, not a folder — give the folder that holds the workspace, e.g. --workspace ${dir}\n`);
    }
    const variable = await runCli(['validate'], { cwd: tempDir(), env: { LOCKSTEP_WORKSPACE: file } });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toContain(`error: LOCKSTEP_WORKSPACE ${file} is a file, not a folder — give the folder that holds the workspace, e.g. LOCKSTEP_WORKSPACE=${dir}`);
    expect(readFileSync(file, 'utf8')).toBe(hierarchyWorkspaceYaml());
  });

  it('uses LOCKSTEP_WORKSPACE like every other command', async () => {
    const cwd = tempDir('lockstep-cli-cwd-');
    const target = join(tempDir('lockstep-cli-env-'), 'ws');
    const init = await runCli(['init'], { cwd, env: { LOCKSTEP_WORKSPACE: target } });
    expect(init.code, init.stderr).toBe(0);
    expect(readFileSync(join(target, 'lockstep.yaml'), 'utf8')).toContain('crm-hierarchy');
    const validate = await runCli(['validate'], { cwd, env: { LOCKSTEP_WORKSPACE: target } });
    expect(validate.code, validate.stderr).toBe(0);
    expect(validate.stdout).toContain('workspace is valid');
  });
});

describe('lockstep validate', () => {
  const badYaml = [
    'sources:',
    '  warehouse: { type: sqlite, path: warehouse.db }',
    'destinations:',
    '  crm: { type: sqlite, path: crm.db }',
    'models:',
    '  accounts: { source: warehose, primaryKey: id, query: "select id, name from accounts" }',
    'syncs:',
    '  accounts-to-crm: { model: acounts, destination: crm, object: accounts, mode: upsrt }',
    'sequences:',
    '  crm:',
    '    schedule: { type: cron, expression: "99 * * * *" }',
    '    members:',
    '      - { sync: accounts-to-crm, after: [contacts] }',
    '',
  ].join('\n');
  const extraYaml = ['syncs:', '  extra-to-crm: { model: accounts, destination: crn, object: accounts, mode: upsert }', ''].join('\n');

  function badWorkspace(): string {
    const dir = tempDir('lockstep-cli-bad-');
    writeFileSync(join(dir, 'lockstep.yaml'), badYaml);
    mkdirSync(join(dir, 'lockstep'));
    writeFileSync(join(dir, 'lockstep', 'extra.yaml'), extraYaml);
    return dir;
  }

  const expected = [
    { file: 'lockstep.yaml', at: locate(badYaml, 'warehose'), text: 'unknown source "warehose" (did you mean "warehouse"?)' },
    { file: 'lockstep.yaml', at: locate(badYaml, 'acounts'), text: 'unknown model "acounts" (did you mean "accounts"?)' },
    { file: 'lockstep.yaml', at: locate(badYaml, 'upsrt'), text: 'unknown mode "upsrt"' },
    { file: 'lockstep.yaml', at: locate(badYaml, '"99 * * * *"'), text: 'invalid cron expression "99 * * * *"' },
    { file: 'lockstep.yaml', at: locate(badYaml, 'contacts]'), text: 'unknown member "contacts"' },
    { file: 'lockstep/extra.yaml', at: locate(extraYaml, 'crn'), text: 'unknown destination "crn"' },
  ];

  it('prints every error with file:line:column and exits 2', async () => {
    const dir = badWorkspace();
    const result = await runCli(['validate'], { cwd: dir });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    for (const e of expected) {
      expect(lines.some((l) => l.startsWith(`${e.file}:${e.at}:`) && l.includes(e.text)), `${e.file}:${e.at} ${e.text}\n${result.stderr}`).toBe(true);
    }
    expect(lines.at(-1)).toMatch(/^6 errors in 2 files/);
  });

  it('--json prints the diagnostics, also exiting 2', async () => {
    const dir = badWorkspace();
    const result = await runMain(['--workspace', dir, 'validate', '--json']);
    expect(result.code).toBe(2);
    const report = JSON.parse(result.stdout) as {
      valid: boolean;
      diagnostics: Array<{ file: string; line: number; column: number; message: string; hint?: string }>;
    };
    expect(report.valid).toBe(false);
    expect(report.diagnostics).toHaveLength(expected.length);
    for (const e of expected) {
      const [line, column] = e.at.split(':').map(Number);
      expect(report.diagnostics).toContainEqual(expect.objectContaining({ file: e.file, line, column, message: expect.stringContaining(e.text) }));
    }
  });

  it('exits 0 on a valid workspace and 2 when there is none', async () => {
    const ok = await runMain(['--workspace', hierarchyWorkspace(), 'validate']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('✔ workspace is valid (lockstep.yaml)');

    const empty = tempDir('lockstep-cli-empty-');
    const none = await runMain(['--workspace', empty, 'validate']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no workspace found');
    expect(none.stderr).toContain('lockstep init');
  });

  it('a store section that cannot be read stops the commands that open the store, instead of the default store being used', async () => {
    const dir = hierarchyWorkspace();
    writeFileSync(join(dir, 'lockstep.yaml'), `store: { type: postgress, url: "postgres://lockstep:hunter2@db.example.com/lockstep" }\n${hierarchyWorkspaceYaml()}`);
    for (const args of [['runs'], ['sync', 'run', 'accounts-to-crm'], ['token', 'list']]) {
      const result = await runCli(args, { cwd: dir });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toBe('lockstep.yaml:1:16: store.type: unknown type "postgress" (did you mean "postgres"?) — use one of: sqlite, postgres\n1 error in lockstep.yaml\n');
    }
    expect(existsSync(join(dir, 'lockstep.db'))).toBe(false);
  });

  it("a store URL its variable splits elsewhere than meant stops the commands that open the store, naming the variable and the fix", async () => {
    const dir = hierarchyWorkspace();
    writeFileSync(join(dir, 'lockstep.yaml'), `store: { type: postgres, url: "\${STORE_URL}" }\n${hierarchyWorkspaceYaml()}`);
    const result = await runCli(['runs'], { cwd: dir, env: { STORE_URL: 'postgres://lockstep:2024#hunter2@127.0.0.1:5432/lockstep' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'lockstep.yaml:1:31: store.url: url of the store does not read as user:password@host... (it has a # or a second @) (as ${STORE_URL} gives it) — check STORE_URL: percent-encode @, /, #, ? and : in the user name and password (@ is %40, / is %2F, # is %23)\n1 error in lockstep.yaml\n',
    );
    expect(existsSync(join(dir, 'lockstep.db'))).toBe(false);
  });

  it('a file naming the store that does not parse stops the commands that open the store; a broken file that cannot name it does not', async () => {
    const dir = hierarchyWorkspace();
    writeFileSync(join(dir, 'lockstep.yaml'), `store: { type: sqlite, path: state/lockstep.db }\n${hierarchyWorkspaceYaml()}syncs: [\n`);
    const runs = await runCli(['runs'], { cwd: dir });
    expect(runs.code).toBe(2);
    expect(runs.stderr).toMatch(/^lockstep\.yaml:\d+:\d+: invalid YAML: /m);
    expect(existsSync(join(dir, 'lockstep.db'))).toBe(false);

    // The same break in a file without a store line: the store is the one the readable files name.
    writeFileSync(join(dir, 'lockstep.yaml'), `store: { type: sqlite, path: state/lockstep.db }\n${hierarchyWorkspaceYaml()}`);
    mkdirSync(join(dir, 'lockstep'));
    writeFileSync(join(dir, 'lockstep', 'more.yaml'), 'syncs: [\n');
    const other = await runCli(['runs'], { cwd: dir });
    expect(other.code, other.stderr).toBe(0);
    // runs creates no store: it names the one it looked for.
    expect(other.stderr).toContain(`No store yet at ${join(dir, 'state', 'lockstep.db')}`);
    expect(existsSync(join(dir, 'lockstep.db'))).toBe(false);
  });

  it('refuses a store URL read from a variable exported empty, naming the variable', async () => {
    const dir = hierarchyWorkspace();
    writeFileSync(join(dir, 'lockstep.yaml'), `store: { type: postgres, url: "\${STORE_URL}" }\n${hierarchyWorkspaceYaml()}`);
    const validate = await runCli(['validate'], { cwd: dir, env: { STORE_URL: '' } });
    expect(validate.code).toBe(2);
    expect(validate.stderr).toContain('lockstep.yaml:1:31: store.url: environment variable STORE_URL is empty (the store uses ${STORE_URL}) — export STORE_URL=postgres://');
    // A command that only opens the store says the same, and connects nowhere.
    const runs = await runCli(['runs'], { cwd: dir, env: { STORE_URL: '' } });
    expect(runs.code).toBe(2);
    expect(runs.stderr).toBe(
      'error: store uses ${STORE_URL}, but the environment variable STORE_URL is empty — export STORE_URL=postgres://user:password@host:5432/database before running Lockstep\n',
    );
  });
});

describe('lockstep plan and apply', () => {
  it('plans creates, applies once, then plans updates and deletes after an edit; an invalid workspace changes nothing', async () => {
    const dir = hierarchyWorkspace();
    const ws = ['--workspace', dir];

    const created = await runMain([...ws, 'plan']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout.trim().split('\n').sort()).toEqual(
      [
        '+ create source warehouse',
        '+ create destination crm',
        '+ create model accounts',
        '+ create model workspaces',
        '+ create model contacts',
        '+ create sync accounts-to-crm',
        '+ create sync workspaces-to-crm',
        '+ create sync contacts-to-crm',
        '+ create sequence crm',
      ].sort(),
    );

    const apply = await runMain([...ws, 'apply']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('Applied 9 change(s):');
    expect(apply.stdout).toContain('  create sequence crm');

    expect((await runMain([...ws, 'plan'])).stdout).toContain('No changes: the store matches the workspace files.');
    const again = await runMain([...ws, 'apply']);
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe('Nothing to apply: the store already matches.');

    // An edit that is invalid: apply refuses it with the report and exits 2.
    const edited = hierarchyWorkspaceYaml({ accountsMode: 'mirror', withContacts: false });
    writeFileSync(join(dir, 'lockstep.yaml'), edited.replace('model: workspaces,', 'model: workspaces, batchSize: -5,'));
    const refused = await runCli(['apply'], { cwd: dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^lockstep\.yaml:\d+:\d+: syncs\.workspaces-to-crm\.batchSize/m);
    expect(refused.stdout).not.toContain('Applied');

    // The same edit, now valid: the store still holds what was applied before, so the plan shows the whole edit.
    writeFileSync(join(dir, 'lockstep.yaml'), edited);
    const plan = await runMain([...ws, 'plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout.trim().split('\n').sort()).toEqual(
      ['~ update sync accounts-to-crm (mode)', '~ update sequence crm (members)', '- delete sync contacts-to-crm — its record of what it delivered goes with it: a sync declared again (a rename is a delete and a create) sends every row again'].sort(),
    );

    const applied = await runMain([...ws, 'apply']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('Applied 3 change(s):');
    expect((await runMain([...ws, 'plan'])).stdout).toContain('No changes');
  });

  it('plan --json and apply --json print the changes as JSON; a sync moved to another object says it starts over', async () => {
    const dir = hierarchyWorkspace();
    const ws = ['--workspace', dir];
    const planned = await runMain([...ws, 'plan', '--json']);
    expect(planned.code, planned.stderr).toBe(0);
    const plan = JSON.parse(planned.stdout) as { changes: Array<{ action: string; kind: string; slug: string; fields: string[] }>; kept: string[] };
    expect(plan.changes).toHaveLength(9);
    expect(plan.changes).toContainEqual({ action: 'create', kind: 'sequence', slug: 'crm', fields: [] });
    expect(plan.kept).toEqual([]);
    const applied = await runMain([...ws, 'apply', '--json']);
    expect(applied.code, applied.stderr).toBe(0);
    expect((JSON.parse(applied.stdout) as { changes: unknown[] }).changes).toEqual(plan.changes);
    expect(JSON.parse((await runMain([...ws, 'apply', '--json'])).stdout)).toEqual({ changes: [] });

    writeFileSync(join(dir, 'lockstep.yaml'), hierarchyWorkspaceYaml().replace('object: accounts,', 'object: accounts_v2,'));
    expect(JSON.parse((await runMain([...ws, 'plan', '--json'])).stdout)).toEqual({ changes: [{ action: 'update', kind: 'sync', slug: 'accounts-to-crm', fields: ['object'] }], kept: [] });
    const text = await runMain([...ws, 'plan']);
    expect(text.stdout.trim()).toBe('~ update sync accounts-to-crm (object) — this sync starts over: every row is sent to its new object (a run of it in progress is stopped); the old one keeps what it received');
  });

  it('plan and apply exit 2 with the report on an invalid workspace', async () => {
    const dir = tempDir('lockstep-cli-invalid-');
    writeFileSync(join(dir, 'lockstep.yaml'), 'syncs:\n  a: { model: nothing, destination: nowhere, object: t, mode: upsert }\n');
    for (const command of ['plan', 'apply']) {
      const result = await runMain(['--workspace', dir, command]);
      expect(result.code, command).toBe(2);
      expect(result.stderr).toMatch(/^lockstep\.yaml:2:\d+: syncs\.a\.model: unknown model "nothing"/m);
    }
  });
});

describe('help and argument errors', () => {
  it('--help prints usage and the exit codes, and exits 0', async () => {
    const result = await runCli(['--help'], { cwd: tempDir() });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: lockstep');
    for (const command of ['init', 'validate', 'plan', 'apply', 'sync', 'sequence', 'runs', 'serve', 'worker', 'scheduler', 'demo']) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    expect(result.stdout).toMatch(/Exit codes:\n\s+0 .*\n\s+1 .*failed.*\n\s+2 .*invalid.*\n\s+3 .*\n\s+130, 143 .*Ctrl-C/);
  });

  it.each([
    [['sequence', 'run', '--help'], '--json'],
    [['sync', 'run', '--help'], '--full-resync'],
    [['runs', '--help'], '--sequence <slug>'],
    [['serve', '--help'], '--drain'],
    [['help', 'demo'], '--dir <dir>'],
  ])('%j prints its usage', async (args, option) => {
    const result = await runMain(args);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: lockstep ${args[0] === 'help' ? args[1] : args.slice(0, -1).join(' ')}`);
    expect(result.stdout).toContain(option);
  });

  it('demo --serve with a bad --port is refused before the demo is built', async () => {
    const cwd = tempDir();
    const result = await runCli(['demo', '--serve', '--port', '99999', '--dir', 'demo'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('99999');
    expect(existsSync(join(cwd, 'demo'))).toBe(false);
  });

  it('demo --serve on a port another program listens on is refused before the demo is built, saying how to choose another', async () => {
    const cwd = tempDir();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = holder.address() as AddressInfo;
      const result = await runCli(['demo', '--serve', '--port', String(port), '--dir', 'demo'], { cwd });
      expect(result.code).toBe(3);
      expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(result.stderr).toContain('another program listens on that port: stop it, or pick another port with --port (or LOCKSTEP_PORT), e.g. --port 8080');
      expect(result.stdout).toBe('');
      expect(existsSync(join(cwd, 'demo'))).toBe(false);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('an unknown command or option, or a missing argument, exits 2 with the reason', async () => {
    const unknown = await runCli(['deploy'], { cwd: tempDir() });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("error: unknown command 'deploy'");

    const option = await runMain(['sequence', 'run', 'crm', '--bogus']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("error: unknown option '--bogus'");

    const missing = await runMain(['sync', 'run']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error: missing required argument 'slug'");

    const level = await runMain(['--log-level', 'loud', 'runs']);
    expect(level.code).toBe(2);
    expect(level.stderr).toContain('loud');

    const limit = await runMain(['--workspace', hierarchyWorkspace(), 'runs', '--limit', '0']);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toContain('--limit "0" is not a whole number from 1 to 100000');
  });

  it('a bad --limit of runs or alerts list is refused before the store is opened or created', async () => {
    const dir = hierarchyWorkspace();
    const before = readdirSync(dir).sort();
    for (const [command, value] of [['runs', '0'], ['runs', '1e3'], ['runs', '100001'], ['alerts list', '-3'], ['alerts list', 'ten']] as const) {
      const result = await runMain(['--workspace', dir, ...command.split(' '), '--limit', value]);
      expect(result.code, result.stderr).toBe(2);
      // Only the refusal: the store was not even looked for.
      expect(result.stderr).toBe(`error: --limit "${value}" is not a whole number from 1 to 100000 — give how many to show, e.g. --limit 50\n`);
    }
    expect(readdirSync(dir).sort()).toEqual(before);
    // A store that cannot be reached is not tried.
    const unreachable = await runMain(['--workspace', dir, '--store', 'postgres://lockstep@127.0.0.1:1/lockstep', 'runs', '--limit', '0']);
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toBe('error: --limit "0" is not a whole number from 1 to 100000 — give how many to show, e.g. --limit 50\n');
  });

  it('--store takes a relative path from the current folder, as --workspace does', async () => {
    const parent = tempDir('lockstep-cli-store-path-');
    const dir = join(parent, 'ws');
    mkdirSync(dir);
    writeFileSync(join(dir, 'lockstep.yaml'), hierarchyWorkspaceYaml());
    const result = await runCli(['--workspace', 'ws', '--store', 'backups/lockstep.db', 'token', 'create', '--name', 'ci'], { cwd: parent });
    expect(result.code, result.stderr).toBe(0);
    expect(existsSync(join(parent, 'backups', 'lockstep.db'))).toBe(true);
    expect(existsSync(join(dir, 'backups'))).toBe(false);
  });

  it('a store URL of another scheme is refused, not taken for a file path, and its password is not shown', async () => {
    const dir = hierarchyWorkspace();
    const before = readdirSync(dir).sort();
    const flag = await runCli(['--store', 'mysql://etl:hunter2@db.example.com/lockstep', 'runs'], { cwd: dir });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe(
      'error: --store "mysql://etl:***@db.example.com/lockstep" is neither a postgres:// URL nor a file path — give postgres://user:password@host:5432/database for a PostgreSQL store, or the path of the embedded store\'s file\n',
    );
    const variable = await runCli(['runs'], { cwd: dir, env: { LOCKSTEP_STORE: 'mysql://etl:hunter2@db.example.com/lockstep' } });
    expect(variable.code).toBe(2);
    expect(variable.stderr).toContain('error: LOCKSTEP_STORE "mysql://etl:***@db.example.com/lockstep" is neither a postgres:// URL nor a file path');
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('a store URL whose password holds an unencoded # or / is refused naming the fix, not sent to a host made of part of the password', async () => {
    const dir = hierarchyWorkspace();
    for (const [args, env, from] of [
      [['--store', 'postgres://etl:pa#ss@db.example.com:5432/lockstep', 'runs'], {}, '--store'],
      [['runs'], { LOCKSTEP_STORE: 'postgres://etl:pa/ss@db.example.com:5432/lockstep' }, 'LOCKSTEP_STORE'],
    ] as const) {
      const result = await runCli([...args], { cwd: dir, env: { ...env } });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^error: ${from} .*percent-encode`));
      expect(result.stderr).not.toContain('pa#ss');
      expect(result.stderr).not.toContain('pa/ss');
      expect(result.stderr).not.toContain('ss@db');
    }
  });
});

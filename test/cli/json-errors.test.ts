/**
 * A command run with `--json` that fails prints a JSON object on stdout, in the API's error shape,
 * with the same exit code and the human text on stderr: a script reading stdout as JSON always has
 * something to parse.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/harness.js';
import { hierarchyWorkspace, runMain } from './cli-helpers.js';

describe('--json when the command fails', () => {
  let dir: string;
  beforeAll(async () => {
    dir = hierarchyWorkspace();
    const applied = await runMain(['--workspace', dir, 'apply']);
    expect(applied.code, applied.stderr).toBe(0);
  });

  it('an unknown slug: the error as JSON on stdout, its text on stderr, exit 2', async () => {
    const result = await runMain(['--workspace', dir, 'sync', 'run', 'acounts-to-crm', '--json']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error: no sync "acounts-to-crm" in the workspace (did you mean "accounts-to-crm"?)');
    expect(JSON.parse(result.stdout)).toEqual({
      message: expect.stringMatching(/^no sync "acounts-to-crm" in the workspace \(did you mean "accounts-to-crm"\?\)/),
      code: 'not_found',
    });
    for (const args of [
      ['sequence', 'run', 'cmr', '--json'],
      ['sequence', 'plan', 'cmr', '--json'],
      ['runs', '--sync', 'contacts-to-cmr', '--json'],
    ]) {
      const other = await runMain(['--workspace', dir, ...args]);
      expect(other.code, args.join(' ')).toBe(2);
      expect(JSON.parse(other.stdout), args.join(' ')).toMatchObject({ code: 'not_found', message: expect.stringContaining('did you mean') });
    }
  });

  it('a bad argument, whether the command or its parser refuses it', async () => {
    const limit = await runMain(['--workspace', dir, 'runs', '--limit', 'many', '--json']);
    expect(limit.code).toBe(2);
    expect(JSON.parse(limit.stdout)).toEqual({ message: expect.stringMatching(/^--limit "many" is not a whole number/), code: 'validation' });
    const conflicting = await runMain(['--workspace', dir, 'runs', '--sequence', 'crm', '--sync', 'accounts-to-crm', '--json']);
    expect(conflicting.code).toBe(2);
    expect(conflicting.stderr).toContain("error: option '--sequence <slug>' cannot be used with option '--sync <slug>'");
    expect(JSON.parse(conflicting.stdout)).toEqual({ message: "option '--sequence <slug>' cannot be used with option '--sync <slug>'", code: 'validation' });
  });

  it('a workspace that does not validate: "Validation failed" with each problem by its path, as the API answers', async () => {
    const bad = tempDir('lockstep-cli-');
    writeFileSync(join(bad, 'lockstep.yaml'), 'store: { type: sqlit, path: lockstep.db }\n');
    const result = await runMain(['--workspace', bad, 'runs', '--json']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('store.type');
    expect(JSON.parse(result.stdout)).toEqual({
      message: 'Validation failed',
      code: 'validation',
      details: { 'store.type': expect.stringMatching(/^lockstep\.yaml:1:\d+: /) },
    });
  });

  it('a store that cannot be opened: exit 3 and the JSON error', async () => {
    const result = await runMain(['--workspace', dir, '--store', 'postgres://lockstep@127.0.0.1:1/nowhere', 'runs', '--json']);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^error: /m);
    const body = JSON.parse(result.stdout) as { message: string; code: string };
    expect(body).toEqual({ message: expect.stringContaining('127.0.0.1:1'), code: expect.any(String) });
    expect(result.stderr).toContain(body.message);
  });

  it('without --json, stdout stays empty', async () => {
    const result = await runMain(['--workspace', dir, 'sync', 'run', 'acounts-to-crm']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
  });
});

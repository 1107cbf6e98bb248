import { describe, expect, it } from 'vitest';
import { formatValidationReport } from '../../src/workspace/index.js';

describe('formatValidationReport', () => {
  it('prints one located line per diagnostic, then the count', () => {
    const report = formatValidationReport([
      { file: 'lockstep.yaml', line: 14, column: 7, path: 'syncs.x.model', message: 'unknown model "acount" (did you mean "account"?)', hint: 'declare model "acount" under models:, or use one of: account' },
      { file: 'lockstep.yaml', line: 20, column: 3, path: 'sequences.crm.members', message: 'a sequence needs at least one member' },
      { file: 'lockstep.yaml', line: 31, column: 1, path: '', message: 'invalid YAML: Tabs are not allowed as indentation' },
    ]);
    expect(report).toBe(
      [
        'lockstep.yaml:14:7: syncs.x.model: unknown model "acount" (did you mean "account"?) — declare model "acount" under models:, or use one of: account',
        'lockstep.yaml:20:3: sequences.crm.members: a sequence needs at least one member',
        'lockstep.yaml:31:1: invalid YAML: Tabs are not allowed as indentation',
        '3 errors in lockstep.yaml',
      ].join('\n'),
    );
  });

  it('counts in the singular, names several files, and says when there is nothing', () => {
    expect(formatValidationReport([{ file: 'lockstep.yaml', line: 1, path: 'store', message: 'm' }]).split('\n').at(-1)).toBe('1 error in lockstep.yaml');
    const two = formatValidationReport([
      { file: 'lockstep.yaml', line: 1, path: 'a', message: 'm' },
      { file: 'lockstep/syncs.yaml', line: 2, path: 'b', message: 'm' },
    ]);
    expect(two.split('\n').at(-1)).toBe('2 errors in 2 files (lockstep.yaml, lockstep/syncs.yaml)');
    expect(formatValidationReport([{ path: '', message: 'no workspace found', hint: 'run `lockstep init`' }])).toBe('no workspace found — run `lockstep init`\n1 error');
    expect(formatValidationReport([])).toBe('no errors');
  });
});

/**
 * Live progress of `sync run` and `sequence run`: one line redrawn in place when stderr is a terminal,
 * a line per step when it is a file or a pipe, and a total that is the model's row count as last read,
 * the same on every line of a run.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { progressLine, progressStep, type Terminal } from '../../src/cli/output.js';
import { StatusLine, fit } from '../../src/cli/progress.js';
import { ReportedRunsLog } from '../../src/cli/reported-runs-log.js';
import type { SyncRun } from '../../src/core/runs.js';
import { sqlite, tempDir } from '../helpers/harness.js';
import { renderScreen, runMain } from './cli-helpers.js';

const ROWS = 40_000;

/** A workspace syncing ROWS rows in batches of 100 (long enough for several progress updates), applied. */
async function bigWorkspace(): Promise<string> {
  const dir = tempDir('lockstep-cli-progress-');
  sqlite(
    join(dir, 'warehouse.db'),
    `create table accounts (id integer primary key, name text);
     with recursive n(i) as (select 1 union all select i + 1 from n where i < ${ROWS})
     insert into accounts select i, 'Account ' || i from n;`,
  );
  sqlite(join(dir, 'crm.db'), 'create table accounts (id integer primary key, name text);');
  writeFileSync(
    join(dir, 'lockstep.yaml'),
    [
      'sources:',
      '  warehouse: { type: sqlite, path: warehouse.db }',
      'destinations:',
      '  crm: { type: sqlite, path: crm.db }',
      'models:',
      '  accounts: { source: warehouse, primaryKey: id, query: "select id, name from accounts" }',
      'syncs:',
      '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert, batchSize: 100 }',
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

/** A terminal that records what goes to stderr, raw, with a screen when `columns` is given. */
function recordingTerminal(columns?: number): Terminal & { stderr: string } {
  const term = {
    stderr: '',
    out: () => {},
    err: (text: string) => (term.stderr += `${text}\n`),
    isTTY: false,
    errScreen: columns === undefined ? undefined : { write: (text: string) => (term.stderr += text), columns },
  };
  return term;
}

function processingRun(querySize: number, delivered: number): SyncRun {
  return {
    id: 2,
    syncId: 1,
    status: 'processing',
    trigger: { type: 'manual', detail: null },
    options: { fullResync: false, resetCDC: false },
    sequenceRunId: null,
    memberKey: null,
    createdAt: 0,
    startedAt: 0,
    finishedAt: null,
    querySize,
    plannedRows: { addedCount: querySize, changedCount: 0, removedCount: 0 },
    successfulRows: { addedCount: delivered, changedCount: 0, removedCount: 0 },
    failedRows: { addedCount: 0, changedCount: 0, removedCount: 0 },
    completionRatio: delivered / 1000,
    error: null,
    cancelRequested: false,
    apiUsage: null,
    comparison: null,
    attempt: 1,
    workerId: null,
    leaseExpiresAt: null,
  } as SyncRun;
}

describe('a progress line', () => {
  it('totals the rows the last run read, and draws no bar without them', () => {
    expect(progressLine('accounts', processingRun(400, 300), { ratio: 0.3, expectedRows: 1000 })).toBe(
      '  ▶ accounts [######..............]  30%  400 of ~1,000 rows read · 300 delivered',
    );
    expect(progressLine('accounts', processingRun(400, 300), { ratio: 0.3, expectedRows: null })).toBe('  ▶ accounts 400 rows read · 300 delivered');
    // A model grown past the last count: no total and no bar rather than wrong ones.
    expect(progressLine('accounts', processingRun(1200, 900), { ratio: 0.9, expectedRows: 1000 })).toBe('  ▶ accounts 1,200 rows read · 900 delivered');
    expect(progressStep(processingRun(1200, 900), { ratio: 0.9, expectedRows: 1000 })).toBe('processing, 2^10 rows read');
    expect(progressStep(processingRun(400, 300), { ratio: 0.3, expectedRows: 1000 })).toBe('processing 3/10');
    expect(progressLine('accounts', { ...processingRun(1200, 1200), status: 'reporting' })).toBe('  ▶ accounts all 1,200 rows read · 1,200 delivered · reporting');
  });

  it('says which run of its sync a queued run waits for, when one is under way', () => {
    const queued = { ...processingRun(0, 0), id: 3, status: 'queued', startedAt: null } as SyncRun;
    expect(progressLine('accounts', queued, { ratio: 0, expectedRows: null, ahead: 2 })).toBe('  … accounts waiting for sync run 2 of its sync, under way, to end');
    expect(progressLine('accounts', queued, { ratio: 0, expectedRows: null, ahead: null })).toBe('  … accounts waiting');
  });

  it('is cut to the terminal width', () => {
    expect(fit('abcdefghijklmnopqrstuvwxyz', 20)).toBe('abcdefghijklmnopqr…');
    expect(fit('short', 20)).toBe('short');
  });
});

describe('StatusLine', () => {
  it('on a terminal redraws one line in place, prints lasting lines above it, and clears it', () => {
    const term = recordingTerminal(80);
    const line = new StatusLine(term);
    line.show([{ key: 'a', text: 'a 10%' }]);
    line.show([{ key: 'a', text: 'a 10%' }]);
    line.show([{ key: 'a', text: 'a 20%' }]);
    line.print('a log line');
    line.show([{ key: 'a', text: 'a 30%' }, { key: 'b', text: 'b 5%' }]);
    expect(renderScreen(term.stderr)).toEqual(['a log line', 'a 30%   b 5%']);
    line.clear();
    expect(renderScreen(term.stderr)).toEqual(['a log line', '']);
    // A text shown again is not redrawn: three texts were drawn.
    expect(term.stderr.split('\r').filter((s) => s.startsWith('a ')).length).toBe(3);
  });

  it('off a terminal prints a line per part when its step changes', () => {
    const term = recordingTerminal();
    const line = new StatusLine(term);
    line.show([{ key: 'a', text: 'a 11%', step: '1' }]);
    line.show([{ key: 'a', text: 'a 15%', step: '1' }]);
    line.show([{ key: 'a', text: 'a 21%', step: '2' }, { key: 'b', text: 'b 1%', step: '0' }]);
    line.clear();
    expect(term.stderr).toBe('a 11%\na 21%\nb 1%\n');
  });
});

describe('ReportedRunsLog', () => {
  it("holds back the failure lines of the runs the report shows, and prints other runs' at the end", () => {
    const term = recordingTerminal();
    const log = new ReportedRunsLog(term);
    const failed = (id: number) => JSON.stringify({ time: 't', level: 'error', msg: 'sync run failed', syncRunId: id, error: 'boom' });
    log.terminal.err(failed(1));
    log.terminal.err(JSON.stringify({ level: 'warn', msg: 'sync run taken over from a worker whose lease ended', syncRunId: 1 }));
    log.terminal.err(failed(2));
    expect(term.stderr).toContain('taken over');
    expect(term.stderr).not.toContain('sync run failed');
    log.release([1]);
    expect(term.stderr.trim().split('\n')).toHaveLength(2);
    expect(term.stderr).toContain('"syncRunId":2');
  });
});

describe('lockstep sync run progress', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await bigWorkspace();
  });

  it('on a terminal, redraws one line and leaves only the report once done', async () => {
    const result = await runMain(['--workspace', dir, 'sync', 'run', 'accounts-to-crm'], { screenColumns: 60 });
    expect(result.code, result.stderr).toBe(0);
    const drawn = result.stderr.split('\r').filter((s) => s.includes('accounts-to-crm'));
    // A fast run may draw once only (redrawing in place is covered by StatusLine's own test above).
    expect(drawn.length, result.stderr).toBeGreaterThan(0);
    // Every update replaced the last one: no line was added, and each fits the 60 columns.
    expect(result.stderr).not.toContain('\n');
    for (const text of drawn) expect([...text.replace('\u001b[K', '')].length).toBeLessThan(60);
    expect(renderScreen(result.stderr)).toEqual(['']);
    expect(result.stdout).toMatch(/^✔ Sync accounts-to-crm — run \d+ — SUCCESS/);
  });

  it("off a terminal, prints a line per step, each with the model's row count as the last run read it", async () => {
    const result = await runMain(['--workspace', dir, 'sync', 'run', 'accounts-to-crm', '--full-resync']);
    expect(result.code, result.stderr).toBe(0);
    // trimEnd: the first line's indent is part of it (a fast run's first line is already its progress).
    const lines = result.stderr.trimEnd().split('\n');
    const processing = lines.filter((l) => l.includes(' rows read'));
    expect(processing.length, result.stderr).toBeGreaterThan(0);
    // At most a line per tenth of the run, plus the statuses around it.
    expect(lines.length, result.stderr).toBeLessThanOrEqual(14);
    for (const l of processing) expect(l).toMatch(/^ {2}▶ accounts-to-crm \[[#.]{20}\] +\d+% {2}[\d,]+ of ~40,000 rows read · [\d,]+ delivered$/);
    const percents = processing.map((l) => Number(/(\d+)%/.exec(l)![1]));
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
  });

  it('sequence run on a terminal keeps the start and each member\'s end, and clears the live line', async () => {
    const result = await runMain(['--workspace', dir, 'sequence', 'run', 'crm'], { screenColumns: 80 });
    expect(result.code, result.stderr).toBe(0);
    expect(renderScreen(result.stderr)).toEqual([expect.stringMatching(/^▶ sequence run [0-9a-f-]{36} started$/), '  ✔ accounts-to-crm success', '']);
  });
});

/**
 * `lockstep sequence plan <slug>`: a dry run of a sequence. Each member's next run planned against
 * its snapshot (added, changed, removed, retried, rejected before sending, with sample rows), with
 * nothing sent and nothing stored changed.
 */
import type { Command } from 'commander';
import type { App } from '../../app.js';
import { ErrorCode, LockstepError } from '../../core/errors.js';
import type { Value } from '../../core/ports.js';
import { DEFAULT_PLAN_SAMPLES, MAX_PLAN_SAMPLES, type MemberPlan, type PlanSample, type SequencePlan } from '../../core/sequence-plans.js';
import { UNKNOWN_SLUG_FIX, unknownSlugError } from '../../core/unknown-slug.js';
import type { Terminal } from '../output.js';

export interface SequencePlanCommandDeps {
  term: Terminal;
  /** Opens the app without a worker (a plan runs nothing). */
  open: () => Promise<{ app: App; close: () => Promise<void> }>;
  setExit: (code: number) => void;
  /** The exit code when a member's plan failed (a real run would fail). */
  failedExit: number;
}

export function registerSequencePlanCommand(sequenceCommand: Command, deps: SequencePlanCommandDeps): void {
  sequenceCommand
    .command('plan <slug>')
    .description('dry run: what each member would send now (added, changed, removed, retried, rejected), without sending anything or changing anything stored')
    .option('--samples <n>', `sample rows per kind of change, 0..${MAX_PLAN_SAMPLES}`, String(DEFAULT_PLAN_SAMPLES))
    .option('--json', 'print the plan as JSON (the shape of POST /api/sequences/{slug}/plan)')
    .addHelpText(
      'after',
      `
Exits ${deps.failedExit} when a member's plan failed (its query fails, its destination object is missing, ...):
a real run would fail there too. When a member's outcome would terminate the sequence (its terminate
policy), the members waiting for it are shown as skipped, naming it, and are not planned. Rows the destination itself would refuse (constraints, API errors)
cannot be known before sending; rows with a null or duplicate key, and rows whose parent record is
not delivered yet, are counted as rejected.`,
    )
    .action(async (slug: string, opts: { samples: string; json?: boolean }) => {
      const samples = Number(opts.samples);
      if (!Number.isInteger(samples) || samples < 0 || samples > MAX_PLAN_SAMPLES) {
        throw new LockstepError(ErrorCode.Validation, `--samples must be a whole number from 0 to ${MAX_PLAN_SAMPLES}, not "${opts.samples}"`);
      }
      const { app, close } = await deps.open();
      try {
        const sequence = await app.store.getSequence(slug);
        if (!sequence || sequence.slug !== slug) throw await unknownSlugError(app.store, 'sequence', slug, { suggest: true, fix: UNKNOWN_SLUG_FIX });
        const plan = await app.planner.plan(slug, { samples });
        if (opts.json) deps.term.out(JSON.stringify({ ...plan, plannedAt: new Date(plan.plannedAt).toISOString() }, null, 2));
        else deps.term.out(formatPlan(plan));
        if (plan.members.some((m) => m.status === 'failed')) deps.setExit(deps.failedExit);
      } finally {
        await close();
      }
    });
}

/** The plan as a person reads it: a table of counts, then each member's samples and warnings. */
export function formatPlan(plan: SequencePlan): string {
  const lines = [`Plan of sequence ${plan.sequence} — a dry run: nothing was sent, nothing stored changed`, ''];
  const rows = [['#', 'member', 'plan', 'rows read', 'added', 'changed', 'removed', 'retried', 'rejected']];
  // A member a run would skip was not planned: it has no counts to show.
  const counts = (m: MemberPlan) => [m.querySize, m.added, m.changed, m.removed, m.retried, m.rejected].map((n) => (m.status === 'skipped' ? '-' : String(n)));
  plan.members.forEach((m, i) => rows.push([String(i + 1), m.key, m.status, ...counts(m)]));
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows) lines.push(`  ${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()}`);
  for (const m of plan.members) lines.push('', ...memberDetails(m));
  return lines.join('\n');
}

function memberDetails(m: MemberPlan): string[] {
  const lines = [m.key === m.sync ? m.key : `${m.key} (sync ${m.sync})`];
  if (m.blockedBy) lines.push(`  · a run would skip it: it waits for ${m.blockedBy.member}, whose outcome would terminate the sequence`);
  if (m.error) lines.push(`  ✗ a run would fail: ${m.error}${m.terminates === null ? ' (its terminate policy lets the sequence go on)' : ''}`);
  // A failure's reason repeats its error, just printed: the terminating is what is left to say.
  if (m.terminates !== null) lines.push(`  ✗ the sequence would terminate here${m.error ? '' : `: ${m.terminates}`}; members not started then are skipped`);
  const { added, changed, removed, rejected } = m.samples;
  for (const s of added) lines.push(`  + ${keyText(s.key)}  ${fieldsText(s)}`);
  for (const s of changed) lines.push(`  ~ ${keyText(s.key)}  ${fieldsText(s)}`);
  for (const s of removed) lines.push(`  - ${keyText(s.key)}${s.fields.length > 0 ? `  ${removedText(s)}` : ''}`);
  for (const r of rejected) lines.push(`  ! ${r.key}  rejected before sending: ${r.reason}`);
  const shown = added.length + changed.length + removed.length;
  const planned = m.added + m.changed + m.removed;
  if (planned === 0 && m.status === 'planned') lines.push('  nothing to send: the destination is up to date');
  else if (planned > shown) lines.push(`  (${shown} of ${planned} planned rows shown)`);
  if ([...added, ...changed, ...removed].some((s) => s.before === 'unavailable') && changed.length > 0) {
    lines.push("  changed rows show their new values: this destination cannot be read back, and the snapshot keeps only a hash of what was delivered");
  }
  for (const w of m.warnings) lines.push(`  ⚠ ${w}`);
  return lines;
}

function keyText(key: Value[]): string {
  return key.length === 1 ? show(key[0] ?? null) : `(${key.map(show).join(', ')})`;
}

function fieldsText(s: PlanSample): string {
  const parts = s.fields.map((f) => (s.before === 'read' ? `${f.field}: ${show(f.before ?? null)} → ${show(f.after)}` : `${f.field}: ${show(f.after)}`));
  const text = parts.join(', ');
  return s.before === 'absent' ? `${text}  (not in the destination yet)` : text;
}

/** A removed row: what the destination holds now, when it was read back (a removal has no new values to show). */
function removedText(s: PlanSample): string {
  if (s.before !== 'read') return fieldsText(s);
  return `(in the destination: ${s.fields.map((f) => `${f.field}: ${show(f.before ?? null)}`).join(', ')})`;
}

function show(value: Value): string {
  return typeof value === 'string' ? JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value) : String(value);
}

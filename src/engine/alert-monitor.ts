/**
 * The alert monitor: after a sync run or a sequence run has ended (its final state stored and
 * announced), it checks the outcome against the alert rules watching that sync or sequence and
 * records, per (rule, subject, condition), whether the condition is raised or clear. A change of
 * state queues notices in the outbox, in the same store transaction; the dispatcher sends them.
 *
 * Outcomes and conditions (see core/alerts.ts for the state machine):
 * - failed: raised by a sync run `failed` / a sequence run `failed`; cleared by a sync run
 *   `success` or `warning` / a sequence run `done`.
 * - rejected_rows (syncs): raised when rejected rows exceed the rule's `rejectedPercent` of planned
 *   rows in a run that ended `success` or `warning`; cleared by such a run at or under it.
 * - slow: raised when a run that ended `success`, `warning`, `failed` or `done` took longer than the
 *   rule's `slowerThanMinutes`; cleared by one that did not.
 * `cancelled` and `interrupted` runs change nothing.
 *
 * Evaluations run one at a time, in the order runs ended, off the hand-off path; a failure is
 * logged, never reaches a run, and leaves the run's end with the relay to be evaluated again.
 */
import type {
  AlertChange,
  AlertCondition,
  AlertEvent,
  AlertNotice,
  AlertRuleDef,
  AlertSubject,
  NewAlertDelivery,
} from '../core/alerts.js';
import { dedupKey, rulesFor } from '../core/alerts.js';
import { toError } from '../core/errors.js';
import type { Clock, Logger, Store } from '../core/ports.js';
import type { SequenceRun, SyncRun } from '../core/runs.js';
import { totalCount } from '../core/runs.js';
import type { FinishedRunRelay } from './finished-run-relay.js';
import { FinishedRunSubscription } from './finished-run-subscription.js';

export interface AlertMonitorOptions {
  store: Pick<Store, 'alerts' | 'getSync' | 'getSequence'>;
  /** The ends of runs, from the store's outbox. */
  finishedRuns: FinishedRunRelay;
  clock: Clock;
  logger: Logger;
  /**
   * Base URL of the web UI, for links to runs (no trailing slash needed); a function is asked for
   * each notice (a server knows its address only once it listens).
   */
  publicUrl: string | (() => string);
  /** Called after notices were queued (the dispatcher sends them). */
  onQueued: () => void;
}

/** One outcome of one condition, as a run tells it. */
interface Finding {
  condition: AlertCondition;
  /** The event a raise notifies. */
  event: AlertEvent;
  raised: boolean;
  /** The notice when it is raised. */
  raise: () => Omit<AlertNotice, 'kind' | 'event' | 'condition' | 'rule' | 'subject' | 'run' | 'dedupKey' | 'occurredAt'>;
  /**
   * The recovery notice's title: `recovered` only when the subject runs well again; a clear of
   * another condition says which (a fast run may clear `slow` while it fails).
   */
  recoveredTitle: string;
  /** What the recovery notice says. */
  recovery: string;
}

export class AlertMonitor implements AsyncDisposable {
  private readonly finishedRuns: FinishedRunSubscription;
  /** Evaluations, chained so they run in the order runs ended. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly options: AlertMonitorOptions) {
    this.finishedRuns = new FinishedRunSubscription(options.finishedRuns, {
      syncRun: (run) => this.enqueue(() => this.syncRunFinished(run)),
      sequenceRun: (run) => this.enqueue(() => this.sequenceRunFinished(run)),
    });
  }

  /** Stops listening and waits for evaluations under way. */
  async stop(): Promise<void> {
    this.finishedRuns.close();
    await this.idle();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Resolves once every run that ended so far was evaluated. */
  async idle(): Promise<void> {
    // Runs that ended are handed over by the relay first.
    await this.options.finishedRuns.idle();
    let seen: Promise<void>;
    do {
      seen = this.chain;
      await seen;
    } while (seen !== this.chain);
  }

  /**
   * Runs `work` after the evaluations before it. Its failure (a store that could not be read or
   * written) goes to the relay, which keeps the run's end and hands it over again: an outcome
   * recorded twice changes nothing, one never recorded would lose its notice.
   */
  private enqueue(work: () => Promise<void>): Promise<void> {
    const evaluation = this.chain
      // setImmediate: after the hand-off to the next member, which runs on promise continuations.
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(work);
    this.chain = evaluation.catch((thrown: unknown) =>
      this.options.logger.error('could not evaluate alert rules; the run is evaluated again later', { error: toError(thrown).message }),
    );
    return evaluation;
  }

  private async syncRunFinished(run: SyncRun): Promise<void> {
    if (run.status !== 'success' && run.status !== 'warning' && run.status !== 'failed') return;
    const sync = await this.options.store.getSync(run.syncId);
    if (!sync) return;
    const definition = await this.options.store.alerts.getDefinition();
    const subject: AlertSubject = { kind: 'sync', slug: sync.slug };
    const rules = rulesFor(definition.rules, subject);
    if (rules.length === 0) return;
    const planned = totalCount(run.plannedRows);
    const rejected = totalCount(run.failedRows);
    const percent = planned > 0 ? (rejected / planned) * 100 : 0;
    const base = this.syncFields(run, planned, rejected);
    for (const rule of rules) {
      const findings: Finding[] = [];
      if (rule.on.includes('sync_failed')) {
        findings.push({
          condition: 'failed',
          event: 'sync_failed',
          raised: run.status === 'failed',
          raise: () => ({ title: `Sync "${sync.slug}" failed`, text: run.error ?? 'the run failed', fields: base, severity: 'error' }),
          recoveredTitle: `Sync "${sync.slug}" recovered`,
          recovery: `the sync ran well again (${run.status})`,
        });
      }
      if (rule.on.includes('rejected_rows') && run.status !== 'failed') {
        findings.push({
          condition: 'rejected_rows',
          event: 'rejected_rows',
          raised: rejected > 0 && percent > rule.rejectedPercent,
          raise: () => ({
            title: `Sync "${sync.slug}" rejected ${rejected} of ${planned} rows (${formatPercent(percent)})`,
            // Neither keys nor reasons: a destination's reason may quote the row's values, which go no
            // further than the run's page.
            text: `more than ${rule.rejectedPercent}% of the planned rows were rejected; they stay out of the snapshot and are retried on the next run — the run's page lists each with its reason`,
            fields: base,
            severity: 'warning',
          }),
          recoveredTitle: `Sync "${sync.slug}" rejects no more than ${rule.rejectedPercent}% of its rows again`,
          recovery: `rejected rows are back at or under ${rule.rejectedPercent}% (${rejected} of ${planned})`,
        });
      }
      const slow = this.slowFinding(rule, run.startedAt ?? run.createdAt, run.finishedAt, `Sync "${sync.slug}"`, base);
      if (slow) findings.push(slow);
      await this.record(rule, subject, { kind: 'sync', id: String(run.id), status: run.status, url: this.runUrl('sync', String(run.id)) }, findings, run.finishedAt);
    }
  }

  private async sequenceRunFinished(run: SequenceRun): Promise<void> {
    if (run.status !== 'done' && run.status !== 'failed') return;
    const sequence = await this.options.store.getSequence(run.sequenceId);
    if (!sequence) return;
    const definition = await this.options.store.alerts.getDefinition();
    const subject: AlertSubject = { kind: 'sequence', slug: sequence.slug };
    const rules = rulesFor(definition.rules, subject);
    if (rules.length === 0) return;
    const fields = [
      { label: 'Sequence run', value: run.id },
      { label: 'Status', value: run.status },
      ...(run.terminatedBy ? [{ label: 'Terminated by', value: `member "${run.terminatedBy}"` }] : []),
      { label: 'Members', value: run.members.map((m) => `${m.key} ${m.status}`).join(', ') },
      { label: 'Trigger', value: `${run.trigger.type}${run.trigger.detail ? ` (${run.trigger.detail})` : ''}` },
      ...duration(run.startedAt ?? run.createdAt, run.finishedAt),
    ];
    for (const rule of rules) {
      const findings: Finding[] = [];
      if (rule.on.includes('sequence_failed')) {
        findings.push({
          condition: 'failed',
          event: 'sequence_failed',
          raised: run.status === 'failed',
          raise: () => ({
            title: `Sequence "${sequence.slug}" failed`,
            text: run.terminatedBy
              ? `member "${run.terminatedBy}" terminated the run: ${run.reason ?? 'no reason recorded'}`
              : (run.reason ?? 'the run failed'),
            fields,
            severity: 'error',
          }),
          recoveredTitle: `Sequence "${sequence.slug}" recovered`,
          recovery: 'the sequence ran to the end again (done)',
        });
      }
      const slow = this.slowFinding(rule, run.startedAt ?? run.createdAt, run.finishedAt, `Sequence "${sequence.slug}"`, fields);
      if (slow) findings.push(slow);
      await this.record(rule, subject, { kind: 'sequence', id: run.id, status: run.status, url: this.runUrl('sequence', run.id) }, findings, run.finishedAt);
    }
  }

  private slowFinding(rule: AlertRuleDef, startedAt: number, finishedAt: number | null, what: string, fields: AlertNotice['fields']): Finding | null {
    if (!rule.on.includes('slow_run') || rule.slowerThanMinutes === null || finishedAt === null) return null;
    const minutes = (finishedAt - startedAt) / 60_000;
    return {
      condition: 'slow',
      event: 'slow_run',
      raised: minutes > rule.slowerThanMinutes,
      raise: () => ({
        title: `${what} was slow: ${formatMinutes(minutes)}`,
        text: `the run took longer than the limit of ${rule.slowerThanMinutes} min`,
        fields,
        severity: 'warning',
      }),
      recoveredTitle: `${what} is no longer slow`,
      recovery: `the run took ${formatMinutes(minutes)}, within the limit of ${rule.slowerThanMinutes} min`,
    };
  }

  private async record(rule: AlertRuleDef, subject: AlertSubject, run: NonNullable<AlertNotice['run']>, findings: Finding[], finishedAt: number | null): Promise<void> {
    const { store, clock, logger } = this.options;
    const occurredAt = finishedAt ?? clock.now();
    let queued = 0;
    for (const finding of findings) {
      const deliveries = (change: AlertChange): NewAlertDelivery[] => {
        const notice = this.notice(change, finding, rule, subject, run, occurredAt);
        return notice ? rule.channels.map((channel) => ({ channel, notice })) : [];
      };
      const result = await store.alerts.recordOutcome(
        { rule: rule.name, subject, condition: finding.condition, raised: finding.raised, runId: run.id, now: clock.now() },
        deliveries,
      );
      if (result.change !== 'none') {
        logger.info(`alert ${result.change === 'raise' ? 'raised' : 'cleared'}: ${subject.kind} "${subject.slug}" ${finding.condition}`, {
          rule: rule.name,
          runId: run.id,
          deliveries: result.deliveries.length,
        });
      }
      queued += result.deliveries.length;
    }
    if (queued > 0) this.options.onQueued();
  }

  private notice(change: AlertChange, finding: Finding, rule: AlertRuleDef, subject: AlertSubject, run: NonNullable<AlertNotice['run']>, occurredAt: number): AlertNotice | null {
    const common = { condition: finding.condition, rule: rule.name, subject, run, dedupKey: dedupKey(rule.name, subject, finding.condition), occurredAt };
    if (change === 'raise') return { ...common, ...finding.raise(), kind: 'triggered', event: finding.event };
    if (change === 'clear' && rule.on.includes('recovered')) {
      return {
        ...common,
        kind: 'resolved',
        event: 'recovered',
        title: finding.recoveredTitle,
        text: finding.recovery,
        fields: [{ label: 'Cleared', value: finding.condition }, { label: 'Run', value: run.id }],
        severity: 'info',
      };
    }
    return null;
  }

  private syncFields(run: SyncRun, planned: number, rejected: number): AlertNotice['fields'] {
    const delivered = totalCount(run.successfulRows);
    return [
      { label: 'Sync run', value: `#${run.id}` },
      { label: 'Status', value: run.status },
      { label: 'Rows', value: `read ${run.querySize}, planned ${planned}, delivered ${delivered}, rejected ${rejected}` },
      { label: 'Trigger', value: `${run.trigger.type}${run.trigger.detail ? ` (${run.trigger.detail})` : ''}` },
      ...(run.sequenceRunId ? [{ label: 'Sequence run', value: `${run.sequenceRunId} (member "${run.memberKey}")` }] : []),
      ...duration(run.startedAt ?? run.createdAt, run.finishedAt),
    ];
  }

  /** The run's own page in the web UI: `/runs/sync/<id>` or `/runs/sequence/<id>`. */
  private runUrl(kind: 'sync' | 'sequence', id: string): string {
    const base = typeof this.options.publicUrl === 'function' ? this.options.publicUrl() : this.options.publicUrl;
    return `${base.replace(/\/+$/, '')}/runs/${kind}/${encodeURIComponent(id)}`;
  }
}

function duration(startedAt: number, finishedAt: number | null): AlertNotice['fields'] {
  return finishedAt === null ? [] : [{ label: 'Duration', value: formatMinutes((finishedAt - startedAt) / 60_000) }];
}

function formatMinutes(minutes: number): string {
  if (minutes < 1) return `${Math.round(minutes * 60)} s`;
  return `${minutes < 10 ? minutes.toFixed(1) : Math.round(minutes)} min`;
}

function formatPercent(percent: number): string {
  return `${percent < 10 ? percent.toFixed(1) : Math.round(percent)}%`;
}

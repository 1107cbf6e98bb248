/**
 * The shape of a workspace file, written once in zod. It validates YAML (every structural error at
 * once), fills defaults while producing core's definitions, and generates the published JSON Schema.
 * Checks that span entities (references, cycles, duplicates across files) live in
 * check-workspace.ts, because a single file cannot see them.
 */
import { z } from 'zod';
import {
  DEFAULT_CATCHUP_WINDOW_SECONDS,
  DeleteBehavior,
  IntervalUnit,
  SyncMode,
  TerminatePolicy,
  Weekday,
} from '../core/workspace.js';
import { DEFAULT_MAX_DELETE_PERCENT, type ConnectionDef, type MemberDef, type ModelDef, type Schedule, type SequenceDef, type SyncDef } from '../core/workspace.js';
import { assertNever } from '../core/errors.js';
import { urlSetting } from '../core/url-setting.js';
import { AlertEvent, PAGERDUTY_EVENTS_URL } from '../core/alerts.js';
import type { AlertChannelDef, AlertRuleDef, AlertsDefinition } from '../core/alerts.js';
import type { WebhookSettings } from '../core/webhooks.js';
import { checkCron, checkTimezone, DURATION_PATTERN, durationSeconds, TIME_OF_DAY_PATTERN } from './schedule-rules.js';
import { didYouMean, hinted, show } from './suggestions.js';

/** What a slug may be: lowercase letters, digits, `-` and `_`, starting with a letter or digit. */
export const SLUG_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;
export const SLUG_RULE = 'lowercase letters, digits, "-" and "_", starting with a letter or digit';

/** A slug close to `text` that follows the rule, for hints. */
export function suggestSlug(text: unknown): string {
  const slug = String(text)
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+/, '')
    .replace(/-+$/, '');
  return slug === '' ? 'my-slug' : slug;
}

function slug(what: string) {
  return z
    .string()
    .regex(SLUG_PATTERN, {
      error: (issue) =>
        hinted(`invalid ${what} ${show(issue.input)}`, `use ${SLUG_RULE}, e.g. "${suggestSlug(issue.input)}"`),
    })
    .meta({ description: `A ${what}: ${SLUG_RULE}.` });
}

/** A non-empty string; `what` names it in the message. */
function text(what: string, description: string) {
  return z.string().min(1, { error: hinted(`${what} is empty`, `write the ${what}`) }).meta({ description });
}

/**
 * A signing secret: spaces alone are refused too, as an HMAC keyed with them is one anybody can make.
 * An empty one is said so once (abort: the blank check would say it again).
 */
function secretText(what: string, description: string) {
  return z
    .string()
    .min(1, { error: hinted(`${what} is empty`, `write the ${what}, or a \${ENV} template`), abort: true })
    .refine((value) => value.trim() !== '', { error: hinted(`${what} is blank`, `a blank ${what} signs nothing anybody could not sign: write the ${what}, or a \${ENV} template`) })
    .meta({ description });
}

// ---------------------------------------------------------------------------------------------
// Connections

/**
 * A connection: its `type` and the kind's settings. The kinds are registered at run time, so this
 * shape only asks for a `type`; check-workspace.ts checks the type and the settings against the
 * registered kind (with the kind's own wording and did-you-mean).
 */
const connectionSchema = z
  .object({ type: text('type', 'The connector kind, e.g. postgres, mysql, sqlite, duckdb, http.') })
  .catchall(z.unknown())
  .transform(({ type, ...settings }): Omit<ConnectionDef, 'slug'> => ({ type, settings }))
  .meta({ id: 'Connection', description: 'How a source or destination is reached: a connector kind and its settings.' });

// ---------------------------------------------------------------------------------------------
// Models

const column = text('column name', 'A column of the model’s query.');

const modelSchema = z
  .strictObject({
    source: text('source', 'Slug of the source the query runs on.'),
    query: text('query', 'The SQL query; its rows are what syncs send.'),
    primaryKey: z
      .union(
        [
          column,
          z
            .array(column)
            .min(1, { error: hinted('primaryKey is an empty list', 'list at least one column, e.g. [id]') })
            .superRefine((columns, ctx) => {
              columns.forEach((name, i) => {
                if (columns.indexOf(name) !== i) {
                  ctx.addIssue({
                    code: 'custom',
                    path: [i],
                    input: name,
                    message: hinted(`primaryKey lists column "${name}" twice`, 'list each column once'),
                  });
                }
              });
            }),
        ],
        { error: (issue) => hinted(`primaryKey must be a column name or a list of column names, got ${show(issue.input)}`, 'e.g. primaryKey: id, or primaryKey: [account_id, email]') },
      )
      .meta({ description: 'Column(s) that identify a row, unique per row: a name or a list of names.' }),
    cursor: column
      .optional()
      .meta({ description: 'A column that grows whenever a row changes (e.g. updated_at): runs read only rows past the last delivered value, with a full comparison every fullCompareEvery runs.' }),
    fullCompareEvery: z
      .number()
      .int({ error: hinted('fullCompareEvery must be a whole number of runs', 'e.g. fullCompareEvery: 24') })
      .min(1, { error: hinted('fullCompareEvery must be at least 1', 'e.g. fullCompareEvery: 24') })
      .optional()
      .meta({ description: 'With cursor: a full comparison (deletes, late writes) every this many runs (default 24).' }),
  })
  .transform((m): Omit<ModelDef, 'slug'> => ({
    source: m.source,
    query: m.query,
    primaryKey: typeof m.primaryKey === 'string' ? [m.primaryKey] : m.primaryKey,
    ...(m.cursor !== undefined ? { cursor: m.cursor } : {}),
    ...(m.fullCompareEvery !== undefined ? { fullCompareEvery: m.fullCompareEvery } : {}),
  }));

// ---------------------------------------------------------------------------------------------
// Schedules (SPEC §4)

const timezone = z
  .string()
  .superRefine((name, ctx) => {
    const problem = checkTimezone(name);
    if (problem) ctx.addIssue({ code: 'custom', input: name, message: hinted(problem.message, problem.hint) });
  })
  .default('UTC')
  .meta({ description: 'IANA timezone name, e.g. Europe/Berlin (default: UTC).' });

const catchupWindow = z
  .union(
    [
      z.number().int().min(0),
      z.string().regex(DURATION_PATTERN, {
        error: (issue) => hinted(`catchupWindow ${show(issue.input)} is not a duration`, 'write e.g. "30m", "1h", "2h30m", "90s", or a number of seconds'),
      }),
    ],
    { error: (issue) => hinted(`catchupWindow must be a duration, got ${show(issue.input)}`, 'write e.g. "30m", "1h", "2h30m", "90s", or a number of seconds') },
  )
  .optional()
  .meta({
    description: `Missed firings younger than this collapse into one run after downtime; older ones are skipped. A duration ("30m", "1h", "2h30m", "90s") or seconds (default: ${DEFAULT_CATCHUP_WINDOW_SECONDS / 3600}h).`,
  });

const externalId = (what: string) =>
  z
    .union([z.number().int().min(0), z.string().min(1)], {
      error: (issue) => hinted(`${what} must be an id, got ${show(issue.input)}`, `write the ${what} as a number or a string`),
    })
    .meta({ description: `The ${what}, a number or a string.` });

const scheduleSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('manual') }).meta({ description: 'Runs only when triggered by hand, by the API or by an upstream run.' }),
    z
      .strictObject({
        type: z.literal('interval'),
        unit: z.enum(IntervalUnit),
        quantity: z.number().int().min(1).meta({ description: 'How many units between runs.' }),
        startAt: z.iso
          .datetime({
            offset: true,
            error: (issue) => hinted(`startAt ${show(issue.input)} is not an ISO date and time`, 'write e.g. "2024-01-01T06:00:00Z" or "2024-01-01T06:00:00+01:00"'),
          })
          .optional()
          .meta({ description: 'ISO instant the intervals count from (default: the Unix epoch).' }),
        catchupWindow,
      })
      .meta({ description: 'Every `quantity` `unit`s.' }),
    z
      .strictObject({
        type: z.literal('cron'),
        expression: z
          .string()
          .superRefine((expression, ctx) => {
            const problem = checkCron(expression);
            if (problem) ctx.addIssue({ code: 'custom', input: expression, message: hinted(problem.message, problem.hint) });
          })
          .meta({ description: 'A 5-field cron expression: minute hour day-of-month month day-of-week.' }),
        timezone,
        catchupWindow,
      })
      .meta({ description: 'At the times a cron expression names, in a timezone.' }),
    z
      .strictObject({
        type: z.literal('recurrence'),
        timezone,
        days: z
          .array(z.enum(Weekday))
          .min(1, { error: hinted('days is an empty list', 'list at least one day, e.g. [monday, wednesday, friday]') })
          .meta({ description: 'Days of the week it runs on.' }),
        times: z
          .array(
            z.string().regex(TIME_OF_DAY_PATTERN, {
              error: (issue) => hinted(`time ${show(issue.input)} is not HH:MM`, 'write a 24-hour time with two digits each, e.g. "06:30" or "18:00"'),
            }),
            { error: (issue) => hinted(`times must be a list of "HH:MM" times, got ${show(issue.input)}`, 'e.g. times: ["06:30", "18:00"]') },
          )
          .min(1, { error: hinted('times is an empty list', 'list at least one time of day, e.g. ["06:30"]') })
          .meta({ description: 'Times of day, "HH:MM", 24-hour, quoted.' }),
        catchupWindow,
      })
      .meta({ description: 'On some days of the week at some times of day, in a timezone.' }),
    z
      .strictObject({ type: z.literal('dbt_cloud'), accountId: externalId('dbt Cloud account id'), jobId: externalId('dbt Cloud job id') })
      .meta({ description: 'After a dbt Cloud job completes successfully (through the dbt Cloud webhook).' }),
    z
      .strictObject({ type: z.literal('fivetran'), connectorId: text('connectorId', 'The Fivetran connector id.') })
      .meta({ description: 'After a Fivetran connector sync ends successfully (through the Fivetran webhook).' }),
    z
      .strictObject({
        type: z.literal('after'),
        sync: text('sync', 'Slug of the sync whose completion triggers this.').optional(),
        sequence: text('sequence', 'Slug of the sequence whose completion triggers this.').optional(),
        on: z.enum(['success', 'any']).default('success').meta({ description: 'Trigger on success only, or on any outcome (default: success).' }),
      })
      .superRefine((after, ctx) => {
        if ((after.sync === undefined) === (after.sequence === undefined)) {
          ctx.addIssue({
            code: 'custom',
            input: after,
            message: hinted(
              after.sync === undefined ? 'an after schedule names no sync or sequence' : 'an after schedule names both a sync and a sequence',
              'give exactly one of sync: <slug> or sequence: <slug>',
            ),
          });
        }
      })
      .meta({ description: 'After another sync or sequence completes.' }),
  ])
  .transform((s): Schedule => {
    switch (s.type) {
      case 'manual':
        return { type: 'manual' };
      case 'interval':
        return { type: 'interval', unit: s.unit, quantity: s.quantity, startAt: s.startAt ?? null, catchupWindowSeconds: catchupSeconds(s.catchupWindow) };
      case 'cron':
        return { type: 'cron', expression: s.expression.trim(), timezone: s.timezone, catchupWindowSeconds: catchupSeconds(s.catchupWindow) };
      case 'recurrence':
        return { type: 'recurrence', timezone: s.timezone, days: s.days, times: s.times, catchupWindowSeconds: catchupSeconds(s.catchupWindow) };
      case 'dbt_cloud':
        return { type: 'dbt_cloud', accountId: String(s.accountId), jobId: String(s.jobId) };
      case 'fivetran':
        return { type: 'fivetran', connectorId: s.connectorId };
      case 'after':
        return { type: 'after', sync: s.sync ?? null, sequence: s.sequence ?? null, on: s.on };
      default:
        return assertNever(s);
    }
  })
  .meta({ id: 'Schedule', description: 'When it runs (default: { type: manual }).' });

/** A schedule as a workspace file (or a body sent to the API) writes it, before defaults are filled in. */
export type ScheduleInput = z.input<typeof scheduleSchema>;

function catchupSeconds(value: string | number | undefined): number {
  return value === undefined ? DEFAULT_CATCHUP_WINDOW_SECONDS : durationSeconds(value);
}

const manual: Schedule = { type: 'manual' };

// ---------------------------------------------------------------------------------------------
// Syncs

const mappingSchema = z
  .strictObject({
    from: text('from', 'Column of the model.'),
    to: text('to', 'Field of the destination object.'),
    lookup: z
      .strictObject({ sync: text('lookup sync', 'Slug of the sync whose recorded destination ids are looked up.') })
      .optional()
      .meta({ description: 'Send the destination id that this sync recorded for the key in column `from` (a parent record), instead of the column.' }),
  })
  .meta({ id: 'FieldMapping', description: 'Sends a model column under another name.' });

/** The fields every sync has; any other field is a setting of the destination's kind (checked in check-workspace.ts). */
export const SYNC_FIELDS = ['model', 'destination', 'object', 'mode', 'deleteBehavior', 'mappings', 'schedule', 'enabled', 'batchSize', 'maxDeletePercent'] as const;

const syncSchema = z
  .object({
    model: text('model', 'Slug of the model it reads.'),
    destination: text('destination', 'Slug of the destination it writes to.'),
    object: text('object', 'Table (or API object) inside the destination.'),
    mode: z.enum(SyncMode).meta({ description: 'upsert, insert, update or mirror (SPEC §2.1).' }),
    deleteBehavior: z
      .enum(DeleteBehavior)
      .default(DeleteBehavior.Ignore)
      .meta({ description: 'What non-mirror modes do with rows that left the model (default: ignore).' }),
    mappings: z
      .array(mappingSchema)
      .superRefine((mappings, ctx) => {
        const seen = new Map<string, number>();
        mappings.forEach((m, i) => {
          const first = seen.get(m.to);
          if (first === undefined) {
            seen.set(m.to, i);
            return;
          }
          ctx.addIssue({
            code: 'custom',
            path: [i, 'to'],
            input: m.to,
            message: hinted(
              `columns "${mappings[first]?.from}" and "${m.from}" both map to destination field "${m.to}"`,
              'map each destination field from one column only',
            ),
          });
        });
      })
      .default([])
      .meta({ description: 'Column renames; columns without a mapping keep their name (default: none).' }),
    schedule: scheduleSchema.default(manual),
    enabled: z.boolean().default(true).meta({ description: 'A disabled sync does not run on schedules (default: true).' }),
    batchSize: z.number().int().min(1).max(100_000).default(1000).meta({ description: 'Rows per delivered batch, 1..100000 (default: 1000; never more than the destination takes).' }),
    maxDeletePercent: z
      .number()
      .min(0)
      .max(100)
      .nullable()
      .default(DEFAULT_MAX_DELETE_PERCENT)
      .meta({
        description:
          'Mass-delete guard: a run that would remove more than this percent of the rows the sync manages stops before deleting and fails (default: 50; null turns it off).',
      }),
  })
  .catchall(z.unknown())
  .transform((s): Omit<SyncDef, 'slug'> => {
    const { model, destination, object, mode, deleteBehavior, mappings, schedule, enabled, batchSize, maxDeletePercent, ...settings } = s;
    return { model, destination, object, mode, deleteBehavior, mappings, schedule, enabled, batchSize, maxDeletePercent, settings };
  });

// ---------------------------------------------------------------------------------------------
// Sequences

/**
 * What is wrong with a rejectedThreshold neither form takes: the key or value at fault when it is a
 * mapping (each form alone would only say the other key is unknown).
 */
function rejectedThresholdProblem(input: unknown): string {
  const forms = 'e.g. rejectedThreshold: { percent: 5 } or rejectedThreshold: { count: 10 }';
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return hinted(`rejectedThreshold must be { percent: P } or { count: N }, got ${show(input)}`, forms);
  }
  const given = input as Record<string, unknown>;
  const keys = Object.keys(given);
  const unknown = keys.find((key) => key !== 'percent' && key !== 'count');
  if (unknown !== undefined) {
    return hinted(`rejectedThreshold has an unknown key "${unknown}"${didYouMean(unknown, ['percent', 'count'])}`, `give percent (a share of the planned rows) or count (a number of rows), ${forms}`);
  }
  if (keys.length === 2) return hinted('rejectedThreshold gives both percent and count', 'keep one of them: { percent: 5 } or { count: 10 }');
  if ('count' in given) return hinted(`rejectedThreshold count must be a whole number of rows, got ${show(given.count)}`, 'e.g. rejectedThreshold: { count: 10 }');
  if ('percent' in given) return hinted(`rejectedThreshold percent must be a number from 0 to 100, got ${show(given.percent)}`, 'e.g. rejectedThreshold: { percent: 5 }');
  return hinted('rejectedThreshold is empty', forms);
}

const rejectedThresholdSchema = z
  .union(
    [
      z.strictObject({ percent: z.number().min(0).max(100).meta({ description: 'Share of planned rows, 0..100.' }) }),
      z.strictObject({ count: z.number().int().min(0).meta({ description: 'Number of rows.' }) }),
    ],
    { error: (issue) => rejectedThresholdProblem(issue.input) },
  )
  .meta({ id: 'RejectedThreshold', description: 'Rejected rows allowed before on_fatal_or_rejected terminates the sequence (default: { count: 0 }).' });

/** The longest timeout or deadline, in minutes: a week (a timer of the runtime holds about 24 days at most). */
export const MAX_LIMIT_MINUTES = 10_080;

/** A time limit in minutes (fractions allowed), or null/absent for none. */
function limitMinutes(what: string, description: string) {
  const fix = `e.g. ${what}: 30 (0.5 is 30 seconds), or leave it out for no limit`;
  return z
    .number()
    .positive({ error: (issue) => hinted(`${what} must be more than 0 minutes, got ${show(issue.input)}`, fix) })
    .max(MAX_LIMIT_MINUTES, { error: (issue) => hinted(`${what} of ${show(issue.input)} minutes is more than a week (${MAX_LIMIT_MINUTES})`, fix) })
    .nullable()
    .optional()
    .meta({ description });
}

const memberObjectSchema = z
  .strictObject({
    sync: text('sync', 'Slug of the sync this member runs.'),
    key: slug('member key').optional().meta({ description: 'Name other members use in `after` (default: the sync slug).' }),
    terminate: z
      .enum(TerminatePolicy)
      .default(TerminatePolicy.OnFatal)
      .meta({ description: 'What outcome of this member ends the sequence (default: on_fatal).' }),
    rejectedThreshold: rejectedThresholdSchema.optional(),
    after: z
      .array(text('member key', 'Key of a member this one waits for.'))
      .optional()
      .meta({ description: 'Keys of the members it waits for; [] starts at once. Without any after, members run in list order.' }),
    timeoutMinutes: limitMinutes(
      'timeoutMinutes',
      'Minutes its run may take; a run still going then is stopped and counts as failed for its terminate policy (default: no limit).',
    ),
  })
  .superRefine((member, ctx) => {
    if (member.rejectedThreshold !== undefined && member.terminate !== TerminatePolicy.OnFatalOrRejected) {
      ctx.addIssue({
        code: 'custom',
        path: ['rejectedThreshold'],
        input: member.rejectedThreshold,
        message: hinted(
          `rejectedThreshold has no effect with terminate "${member.terminate}"`,
          'set terminate: on_fatal_or_rejected, or remove rejectedThreshold',
        ),
      });
    }
  });

const memberSchema = z
  .union([text('sync', 'Slug of the sync this member runs.'), memberObjectSchema], {
    error: (issue) => hinted(`a member must be a sync slug or a mapping, got ${show(issue.input)}`, 'write - accounts-to-crm, or - { sync: accounts-to-crm, terminate: never }'),
  })
  .transform(
    (m): MemberDef =>
      typeof m === 'string'
        ? { key: m, sync: m, terminate: TerminatePolicy.OnFatal, rejectedThreshold: { count: 0 }, after: null }
        : {
            key: m.key ?? m.sync,
            sync: m.sync,
            terminate: m.terminate,
            rejectedThreshold: m.rejectedThreshold ?? { count: 0 },
            after: m.after ?? null,
            ...(typeof m.timeoutMinutes === 'number' ? { timeoutMinutes: m.timeoutMinutes } : {}),
          },
  )
  .meta({ id: 'Member', description: 'A sync slug, or a mapping with the sync and its policy.' });

const sequenceSchema = z
  .strictObject({
    name: text('name', 'Display name (default: the slug).').optional(),
    members: z
      .array(memberSchema)
      .min(1, { error: hinted('a sequence needs at least one member', 'list its syncs under members, e.g. members: [accounts-to-crm, contacts-to-crm]') })
      .meta({ description: 'The syncs it runs, in order unless `after` says otherwise.' }),
    concurrency: z.number().int().min(1).max(1000).default(4).meta({ description: 'Members running at once in a graph sequence (default: 4).' }),
    schedule: scheduleSchema.default(manual),
    enabled: z.boolean().default(true).meta({ description: 'A disabled sequence runs only by hand (default: true).' }),
    deadlineMinutes: limitMinutes(
      'deadlineMinutes',
      'Minutes a run may take from its start; then members not started are skipped, running ones are stopped, and the run fails (default: no deadline).',
    ),
  })
  .transform(({ deadlineMinutes, ...s }): Omit<SequenceDef, 'slug' | 'name'> & { name?: string } =>
    typeof deadlineMinutes === 'number' ? { ...s, deadlineMinutes } : s,
  );

/** A sequence as a workspace file (or a body sent to the API, with its `slug`) writes it, before defaults are filled in. */
export type SequenceInput = z.input<typeof sequenceSchema>;

// ---------------------------------------------------------------------------------------------
// Alerts (SPEC §5)

/** A channel without its name (the key it is declared under). */
type AlertChannelBody = AlertChannelDef extends infer C ? (C extends AlertChannelDef ? Omit<C, 'name'> : never) : never;

const alertChannelSchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({
        type: z.literal('slack'),
        url: urlSetting(['https:', 'http:'], '"${SLACK_WEBHOOK}" or https://hooks.slack.com/services/...', 'The Slack incoming webhook URL; use a template, e.g. "${SLACK_WEBHOOK}".'),
      })
      .meta({ description: 'A Slack incoming webhook: a Block Kit message with a link to the run.' }),
    z
      .strictObject({
        type: z.literal('webhook'),
        url: urlSetting(['https:', 'http:'], 'https://alerts.example.com/lockstep', 'Where notices are POSTed as JSON; may hold ${ENV} templates.'),
        headers: z
          .record(z.string().min(1), z.string())
          .default({})
          .meta({ description: 'Extra request headers; values may hold ${ENV} templates (default: none).' }),
        secret: secretText('secret', 'Key of the X-Lockstep-Signature header (sha256=<hex HMAC-SHA256 of the body>); use a template, e.g. "${HOOK_SECRET}".').optional(),
      })
      .meta({ description: 'Any HTTP endpoint: a JSON body, custom headers, an HMAC-SHA256 signature.' }),
    z
      .strictObject({
        type: z.literal('email'),
        smtp: urlSetting(
          ['smtp:', 'smtps:'],
          '"smtp://user:${SMTP_PASSWORD}@mail.example.com:587"',
          'SMTP server URL, e.g. "smtp://user:pass@mail.example.com:587" or "smtps://..."; may hold ${ENV} templates.',
          'smtp',
        ),
        from: text('from', 'Sender address.'),
        to: z
          .union([text('to', 'Recipient address.'), z.array(text('to', 'Recipient address.')).min(1, { error: hinted('to is an empty list', 'list at least one address') })], {
            error: (issue) => hinted(`to must be an address or a list of addresses, got ${show(issue.input)}`, 'e.g. to: [oncall@example.com]'),
          })
          .meta({ description: 'Recipient address(es).' }),
      })
      .meta({ description: 'Email over SMTP.' }),
    z
      .strictObject({
        type: z.literal('pagerduty'),
        routingKey: text('routingKey', 'The 32-character Integration Key of an Events API v2 integration of the service; use a template, e.g. "${PD_ROUTING_KEY}".'),
        url: urlSetting(['https:', 'http:'], PAGERDUTY_EVENTS_URL, `Events API endpoint (default: ${PAGERDUTY_EVENTS_URL}).`).optional(),
      })
      .meta({ description: 'PagerDuty Events API v2: an incident per rule, subject and condition, resolved on recovery.' }),
  ])
  .transform((c): AlertChannelBody => {
    switch (c.type) {
      case 'slack':
        return { type: 'slack', url: c.url };
      case 'webhook':
        return { type: 'webhook', url: c.url, headers: c.headers, secret: c.secret ?? null };
      case 'email':
        return { type: 'email', smtp: c.smtp, from: c.from, to: typeof c.to === 'string' ? [c.to] : c.to };
      case 'pagerduty':
        return { type: 'pagerduty', routingKey: c.routingKey, url: c.url ?? PAGERDUTY_EVENTS_URL };
      default:
        return assertNever(c);
    }
  })
  .meta({ id: 'AlertChannel', description: 'Where alert notices go.' });

const slugList = (what: string) =>
  z
    .array(text(what, `Slug of a ${what}.`))
    .min(1, { error: hinted(`${what}s is an empty list`, `list at least one ${what}, or remove ${what}s to make the rule a workspace default`) });

/** Events only a sync run raises. */
const SYNC_RUN_EVENTS: readonly AlertEvent[] = ['sync_failed', 'rejected_rows'];

const alertRuleSchema = z
  .strictObject({
    name: slug('alert rule name').optional().meta({ description: 'Names the rule; alert state is kept under it (default: rule-<position>).' }),
    on: z
      .array(z.enum(AlertEvent))
      .min(1, { error: hinted('on is an empty list', `list events, e.g. [sync_failed, sequence_failed, recovered]`) })
      .optional()
      .meta({ description: 'Events that notify (default: every event the rule has settings for).' }),
    syncs: slugList('sync').optional().meta({ description: 'Syncs it watches.' }),
    sequences: slugList('sequence').optional().meta({ description: 'Sequences it watches. Without syncs and sequences, the rule is the workspace default.' }),
    rejectedPercent: z.number().min(0).max(100).optional().meta({ description: 'rejected_rows fires above this share of planned rows, 0..100 (default: 0, any rejected row).' }),
    slowerThanMinutes: z.number().positive().optional().meta({ description: 'slow_run fires when a run takes longer than this many minutes.' }),
    channels: z
      .array(text('channel', 'Name of a channel under alerts.channels.'))
      .min(1, { error: hinted('channels is an empty list', 'list at least one channel declared under alerts.channels') })
      .meta({ description: 'Channels its notices go to.' }),
  })
  .superRefine((rule, ctx) => {
    const on = rule.on ?? [];
    if (on.includes('slow_run') && rule.slowerThanMinutes === undefined) {
      ctx.addIssue({ code: 'custom', path: ['on'], input: rule.on, message: hinted('on lists slow_run but the rule has no slowerThanMinutes', 'add e.g. slowerThanMinutes: 30') });
    }
    if (rule.on !== undefined && rule.slowerThanMinutes !== undefined && !on.includes('slow_run')) {
      ctx.addIssue({ code: 'custom', path: ['slowerThanMinutes'], input: rule.slowerThanMinutes, message: hinted('slowerThanMinutes has no effect: on does not list slow_run', 'add slow_run to on, or remove slowerThanMinutes') });
    }
    if (rule.on !== undefined && rule.rejectedPercent !== undefined && !on.includes('rejected_rows')) {
      ctx.addIssue({ code: 'custom', path: ['rejectedPercent'], input: rule.rejectedPercent, message: hinted('rejectedPercent has no effect: on does not list rejected_rows', 'add rejected_rows to on, or remove rejectedPercent') });
    }
    // A rule watches a sync through syncs and a sequence through sequences: one whose `on` lists only
    // events of the other kind (besides recovered, which follows a raise) never notifies.
    const onlySequences = rule.sequences !== undefined && rule.syncs === undefined;
    const onlySyncs = rule.syncs !== undefined && rule.sequences === undefined;
    const raising = on.filter((e) => e !== 'recovered');
    if (onlySequences && raising.length > 0 && raising.every((e) => SYNC_RUN_EVENTS.includes(e))) {
      ctx.addIssue({
        code: 'custom',
        path: ['on'],
        input: rule.on,
        message: hinted(
          `on lists ${raising.join(' and ')}, ${raising.length > 1 ? 'events' : 'an event'} of sync runs, but the rule watches only sequences: it never notifies`,
          `list the syncs under syncs (a sequence's members are syncs of their own), or list sequence_failed in on`,
        ),
      });
    }
    if (onlySyncs && raising.length > 0 && raising.every((e) => e === 'sequence_failed')) {
      ctx.addIssue({
        code: 'custom',
        path: ['on'],
        input: rule.on,
        message: hinted('on lists sequence_failed, an event of sequence runs, but the rule watches only syncs: it never notifies', 'list the sequences under sequences, or list sync_failed in on'),
      });
    }
    if (onlySequences && rule.on === undefined && rule.rejectedPercent !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['rejectedPercent'],
        input: rule.rejectedPercent,
        message: hinted('rejectedPercent has no effect: rejected rows are counted per sync run, and the rule watches only sequences', 'list the syncs under syncs, or remove rejectedPercent'),
      });
    }
  })
  .meta({ id: 'AlertRule', description: 'Which events of which syncs and sequences go to which channels.' });

/** An alert rule as a workspace file (or a body sent to the API) writes it, before defaults are filled in. */
export type AlertRuleInput = z.input<typeof alertRuleSchema>;

const alertsSchema = z
  .strictObject({
    channels: z.record(slug('alert channel name'), alertChannelSchema).nullable().optional().meta({ description: 'Channels by name.' }),
    rules: z.array(alertRuleSchema).nullable().optional().meta({ description: 'Alert rules; each notifies once per change of state.' }),
  })
  .meta({ description: 'Alert channels and rules (SPEC §5).' });

/** The alert events a rule listens to when it gives no `on`. */
function defaultEvents(rule: { slowerThanMinutes?: number }): AlertEvent[] {
  const events: AlertEvent[] = ['sync_failed', 'sequence_failed', 'rejected_rows', 'recovered'];
  return rule.slowerThanMinutes === undefined ? events : [...events, 'slow_run'];
}

/** The alert sections of several files as one definition; rules are named by position when unnamed. */
export function buildAlerts(sections: ReadonlyArray<z.output<typeof alertsSchema> | undefined>): AlertsDefinition {
  const alerts: AlertsDefinition = { channels: [], rules: [] };
  for (const section of sections) {
    for (const [name, channel] of Object.entries(section?.channels ?? {})) alerts.channels.push({ name, ...channel } as AlertChannelDef);
    for (const rule of section?.rules ?? []) {
      alerts.rules.push({
        name: rule.name ?? `rule-${alerts.rules.length + 1}`,
        on: rule.on ?? defaultEvents(rule),
        syncs: rule.syncs ?? [],
        sequences: rule.sequences ?? [],
        rejectedPercent: rule.rejectedPercent ?? 0,
        slowerThanMinutes: rule.slowerThanMinutes ?? null,
        channels: rule.channels,
      } satisfies AlertRuleDef);
    }
  }
  return alerts;
}

// ---------------------------------------------------------------------------------------------
// Webhook endpoints

const webhookSecret = z
  .strictObject({
    secret: secretText('secret', 'The signing secret the sender was given; use a ${ENV} template, e.g. "${DBT_CLOUD_WEBHOOK_SECRET}".'),
  })
  .nullable()
  .optional();

const webhooksSchema = z
  .strictObject({
    dbtCloud: webhookSecret.meta({ description: 'POST /api/v1/webhooks/dbt-cloud: dbt Cloud signs each delivery with this secret (Authorization header).' }),
    fivetran: webhookSecret.meta({ description: 'POST /api/v1/webhooks/fivetran: Fivetran signs each delivery with this secret (X-Fivetran-Signature-256).' }),
  })
  .meta({ description: 'Secrets of the webhook endpoints that start dbt_cloud and fivetran schedules.' });

/** The webhook sections of several files as one setting (a later file may not redeclare an endpoint; see checks). */
export function buildWebhooks(sections: ReadonlyArray<z.output<typeof webhooksSchema> | null | undefined>): WebhookSettings {
  const settings: WebhookSettings = { dbtCloud: null, fivetran: null };
  for (const section of sections) {
    if (section?.dbtCloud) settings.dbtCloud = { secret: section.dbtCloud.secret };
    if (section?.fivetran) settings.fivetran = { secret: section.fivetran.secret };
  }
  return settings;
}

// ---------------------------------------------------------------------------------------------
// Store and file

export const DEFAULT_SQLITE_STORE_PATH = 'lockstep.db';

const url = text('url', 'Connection URL; may hold ${ENV} templates, e.g. "${LOCKSTEP_STORE_URL}".');
const filePath = text('path', 'File path, relative to the workspace folder (or absolute); may hold ${ENV} templates.');

export const storeSchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({
        type: z.literal('sqlite'),
        path: filePath.default(DEFAULT_SQLITE_STORE_PATH).meta({ description: `SQLite file, relative to the workspace folder (default: ${DEFAULT_SQLITE_STORE_PATH}).` }),
      })
      .meta({ description: 'Embedded store in a SQLite file.' }),
    z.strictObject({ type: z.literal('postgres'), url }).meta({ description: 'Store in a PostgreSQL database.' }),
  ])
  .meta({ description: `Where Lockstep keeps workspace state, run history and snapshots (default: SQLite in ${DEFAULT_SQLITE_STORE_PATH}).` });

/** A section: entities by slug. An empty section (`syncs:` with nothing under it) is allowed. */
function section<T extends z.ZodType>(what: string, entity: T, description: string) {
  return z.record(slug(`${what} slug`), entity).nullable().optional().meta({ description });
}

/** One workspace file; every section is optional, since a workspace may be spread over many files. */
export const workspaceFileSchema = z
  .strictObject({
    store: storeSchema.optional(),
    sources: section('source', connectionSchema, 'Databases models read from, by slug.'),
    destinations: section('destination', connectionSchema, 'Systems syncs write to, by slug.'),
    models: section('model', modelSchema, 'SQL queries on sources, by slug.'),
    syncs: section('sync', syncSchema, 'Model → destination object, by slug.'),
    sequences: section('sequence', sequenceSchema, 'Syncs run in a dependable order, by slug.'),
    alerts: alertsSchema.nullable().optional(),
    webhooks: webhooksSchema.nullable().optional(),
  })
  .meta({ title: 'Lockstep workspace', description: 'A Lockstep workspace file (lockstep.yaml or a file under lockstep/).' });

export type WorkspaceFileContent = z.output<typeof workspaceFileSchema>;
export type SectionName = Exclude<keyof WorkspaceFileContent, 'store' | 'alerts' | 'webhooks'>;
export const SECTION_NAMES: readonly SectionName[] = ['sources', 'destinations', 'models', 'syncs', 'sequences'];

/**
 * Keys starting with `x-` are extension fields, which Lockstep ignores: at the top level of a file,
 * and in the definition of a source, destination, model, sync or sequence. They hold what the file
 * shares with itself, as in docker-compose files: `x-defaults: &defaults { ... }`, merged into a
 * sync with `<<: *defaults`. The keys of a section are slugs, which may start with `x-`: never extensions.
 */
export const EXTENSION_KEY = /^x-/;

/** A workspace file's data without its extension fields (see EXTENSION_KEY). */
export function withoutExtensions(data: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (EXTENSION_KEY.test(key)) continue;
    kept[key] = (SECTION_NAMES as readonly string[]).includes(key) ? sectionWithoutExtensions(value) : value;
  }
  return kept;
}

function sectionWithoutExtensions(section: unknown): unknown {
  if (!isMapping(section)) return section;
  return Object.fromEntries(
    Object.entries(section).map(([slug, entry]) => [slug, isMapping(entry) ? Object.fromEntries(Object.entries(entry).filter(([key]) => !EXTENSION_KEY.test(key))) : entry]),
  );
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

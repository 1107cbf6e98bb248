/**
 * The zod schemas of request parameters and JSON answers, shared by the routes. The OpenAPI
 * document is generated from them.
 */
import { z } from '@hono/zod-openapi';
import { RUN_PHASES, type RunPhase } from '../core/run-phases.js';
import { SequenceRunStatus, SyncRunStatus, MemberRunStatus, TriggerType } from '../core/runs.js';
import type { MemberRunViewStatus } from '../core/run-views.js';
import { TerminatePolicy } from '../core/workspace.js';

export const ErrorBody = z.object({ message: z.string() }).openapi('Error');
export const ValidationErrorBody = z
  .object({ message: z.literal('Validation failed'), details: z.record(z.string(), z.string()) })
  .openapi('ValidationError', { description: 'Each bad field with what is wrong and how to fix it.' });

export const errors = {
  401: { description: 'Missing or wrong token', schema: ErrorBody },
  404: { description: 'Not found', schema: ErrorBody },
  422: { description: 'Validation failed', schema: ValidationErrorBody },
} as const;

const isoTime = z.string().openapi({ format: 'date-time' });

export const Counts = z
  .object({ addedCount: z.number().int(), changedCount: z.number().int(), removedCount: z.number().int() })
  .openapi('OperationCounts');

const syncRunStatus = z.enum(Object.values(SyncRunStatus) as [SyncRunStatus, ...SyncRunStatus[]]);
const sequenceRunStatus = z.enum(Object.values(SequenceRunStatus) as [SequenceRunStatus, ...SequenceRunStatus[]]);
/** A member's state as shown (MemberRunViewStatus): `interrupted` while its sync run is. */
const memberRunViewStatuses: MemberRunViewStatus[] = [...Object.values(MemberRunStatus), 'interrupted'];
const memberRunStatus = z.enum(memberRunViewStatuses as [MemberRunViewStatus, ...MemberRunViewStatus[]]);
const triggerType = z.enum(Object.values(TriggerType) as [TriggerType, ...TriggerType[]]);
export const syncRunStatuses = Object.values(SyncRunStatus);
export const sequenceRunStatuses = Object.values(SequenceRunStatus);

export const SyncRunView = z
  .object({
    id: z.number().int(),
    syncId: z.number().int(),
    sync: z.string().nullable().openapi({ description: "The sync's slug; null once the sync was deleted (see syncSlug)." }),
    syncSlug: z.string().nullable().openapi({ description: 'The slug the sync had when the run ran, kept after the sync was deleted (or renamed); null only when the store has no record of it.' }),
    syncDeleted: z.boolean().openapi({ description: 'Whether the sync was deleted since; its runs stay in the history.' }),
    status: syncRunStatus,
    trigger: triggerType,
    triggerDetail: z.string().nullable().openapi({ description: 'What started it, in words: cli, web UI, a schedule firing, a webhook delivery, or the run whose end started it (sequence "crm" run … ended done).' }),
    createdAt: isoTime,
    startedAt: isoTime.nullable(),
    finishedAt: isoTime.nullable(),
    querySize: z.number().int(),
    plannedRows: Counts,
    successfulRows: Counts,
    failedRows: Counts,
    completionRatio: z.number(),
    error: z.string().nullable(),
    sequenceRunId: z.string().nullable(),
    attempt: z
      .number()
      .int()
      .openapi({ description: 'Which attempt ran it: 1, or more when a worker took the run over from one that stopped (same run id).' }),
    lease: z
      .object({ workerId: z.string(), expiresAt: isoTime })
      .nullable()
      .openapi({
        description:
          "While the run is at work: the worker holding it (its id, as that process's log, /readyz and lockstep_worker_leases name it) and when its lease ends unless renewed; a time past means that worker stopped renewing it, and another takes the run over. Null while queued and once ended.",
      }),
    cancelRequested: z.boolean().openapi({ description: 'A user asked to cancel it and it has not ended yet: it is stopping (an interrupted run ends when cancelled again).' }),
    apiUsage: z
      .object({ used: z.number().int(), limit: z.number().int(), calls: z.number().int() })
      .optional()
      .openapi({ description: "The destination's API budget as it last reported it in the run (e.g. Salesforce's Sforce-Limit-Info), and the calls the run made." }),
    phaseMs: z
      .object(Object.fromEntries(RUN_PHASES.map((phase) => [phase, z.number().optional()])) as Record<RunPhase, z.ZodOptional<z.ZodNumber>>)
      .optional()
      .openapi({
        description:
          "Where the run's time went once it ended, in milliseconds per phase; the phases add up to the run's time: connect, query (waiting for the source), plan (the run's own work), deliver (waiting for the destination), commit (waiting for the snapshot), rateLimit, retry, finish.",
      }),
    comparison: z
      .object({
        planner: z.enum(['store', 'warehouse']),
        kind: z.enum(['full', 'cursor']),
        notes: z.array(z.string()).optional(),
        target: z.object({ destination: z.string(), object: z.string() }).optional(),
      })
      .optional()
      .openapi({
        description:
          "How the run compared the model: where the snapshot lives (planner) and whether the whole model or only rows past its cursor were compared, with notes (a fallback, a rebuilt planner table, changed column types), and where it delivered (target: the destination's slug and the object).",
      }),
  })
  .openapi('SyncRunView');

const MemberRunView = z
  .object({
    key: z.string(),
    sync: z.string().nullable().openapi({ description: "The sync's slug; null once the sync was deleted (see syncSlug)." }),
    syncSlug: z.string().nullable().openapi({ description: 'The slug the sync had when the run was queued, kept after the sync was deleted (or renamed).' }),
    syncDeleted: z.boolean().openapi({ description: 'Whether the sync was deleted since.' }),
    syncId: z.number().int(),
    status: memberRunStatus.openapi({ description: '`interrupted` while its sync run is (its process stopped and no worker took it over yet); recorded `running` meanwhile.' }),
    syncRunId: z.number().int().nullable(),
    startedAt: isoTime.nullable(),
    finishedAt: isoTime.nullable(),
    durationMs: z.number().nullable(),
    syncRun: SyncRunView.omit({ sync: true, syncSlug: true, syncDeleted: true }).nullable(),
    carriedOver: z.boolean().openapi({ description: 'Finished in the failed run this one resumes, and was not run again.' }),
    terminate: z
      .enum(Object.values(TerminatePolicy) as [TerminatePolicy, ...TerminatePolicy[]])
      .nullable()
      .openapi({ description: "What of the member's outcome ends the run, as the run was queued with it (an edit while it runs applies to the next run); null for runs queued before it was kept." }),
    rejectedThreshold: z
      .union([z.object({ count: z.number() }), z.object({ percent: z.number() })])
      .nullable()
      .openapi({ description: 'The rejected rows `on_fatal_or_rejected` allows, as the run was queued with it; null with `terminate`.' }),
    timeoutMinutes: z.number().nullable().openapi({ description: "Minutes the member's run may take, as the run was queued with it; null: no limit." }),
  })
  .openapi('MemberRunView');

const HightouchSyncRunRef = z.object({
  syncId: z.number().int(),
  syncRunId: z.number().int(),
  status: syncRunStatus,
  finishedAt: isoTime.nullable(),
});

export const SequenceRunView = z
  .object({
    id: z.string().uuid(),
    sequenceId: z.number().int(),
    sequence: z.string().nullable().openapi({ description: "The sequence's slug; null once the sequence was deleted (see sequenceSlug)." }),
    sequenceSlug: z.string().nullable().openapi({ description: 'The slug the sequence had when the run ran, kept after the sequence was deleted (or renamed).' }),
    sequenceDeleted: z.boolean().openapi({ description: 'Whether the sequence was deleted since; its runs stay in the history.' }),
    status: sequenceRunStatus,
    trigger: triggerType,
    triggerDetail: z.string().nullable().openapi({ description: 'What started it, in words: cli, web UI, a schedule firing, a webhook delivery, or the run whose end started it (sequence "crm" run … ended done).' }),
    createdAt: isoTime,
    startedAt: isoTime.nullable(),
    finishedAt: isoTime.nullable(),
    durationMs: z.number().nullable(),
    syncRuns: z.array(HightouchSyncRunRef),
    members: z.array(MemberRunView),
    terminatedBy: z.string().nullable(),
    reason: z.string().nullable(),
    resumedFrom: z.string().uuid().nullable().openapi({ description: 'The failed or cancelled run this one resumes, or null.' }),
    resumedBy: z.string().uuid().nullable().openapi({ description: 'The run that resumes this failed or cancelled one (a run is resumed at most once), or null.' }),
    concurrency: z
      .number()
      .int()
      .nullable()
      .openapi({ description: 'Members of a graph running at once, as the run was queued with it (an edit while it runs applies to the next run); null for runs queued before it was kept.' }),
    deadlineMinutes: z.number().nullable().openapi({ description: 'Minutes from its start after which the run fails, as it was queued with it; null: none.' }),
    cancelRequested: z.boolean().openapi({ description: 'A user asked to cancel it and it has not ended yet: its members are stopping.' }),
  })
  .openapi('SequenceRunView');

export const page = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ hasMore: z.boolean(), data: z.array(item) }).openapi(name);

/** A page of a list endpoint whose items are `T`, as `page()` declares it. */
export type Page<T> = z.output<ReturnType<typeof page<z.ZodType<T>>>>;

/** A whole number in a query string or path. */
export const intText = (what: string, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d{1,15}$/, `${what} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${what} must be from ${min} to ${max}`);

/** A date and time with no zone (`2026-01-01T10:00:00`, `2026-01-01 10:00:00.123456`), which JavaScript would read in the server's zone. */
const ZONELESS_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/** Epoch ms of an ISO text; one without a zone is UTC (as Python's `utcnow().isoformat()` means it, and as Hightouch reads it). */
function parseIso(text: string): number {
  return Date.parse(ZONELESS_TIME.test(text) ? `${text}Z` : text);
}

/** An ISO-8601 date and time in a query string, as epoch ms; without a zone it is UTC. */
export const isoText = (what: string) =>
  z
    .string()
    .refine((t) => /^\d{4}-\d{2}-\d{2}/.test(t) && !Number.isNaN(parseIso(t)), `${what} must be an ISO date and time, e.g. 2026-01-01T00:00:00Z`)
    .transform(parseIso);

export const flag = z.boolean();

/** A sequence run's id in a path: a UUID, in any case (RFC 9562 reads its hex digits so), as stored: lower case. */
export const sequenceRunId = (what: string) =>
  z
    .string()
    .uuid(`${what} must be a sequence run id (a UUID)`)
    .transform((id) => id.toLowerCase());

// ---------------------------------------------------------------------------------------------
// Hightouch-compatible v1: liberal in what it accepts. Clients hold ids as floats (`3.0`) and send
// flags as strings (`"false"`), and form bodies carry only strings.

/** A whole number in a v1 path, query or body: `3`, or `3.0` as clients that hold ids as floats send it. */
export const v1WholeText = (what: string, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d{1,15}(\.0+)?$/, `${what} must be a whole number, e.g. 3`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `${what} must be from ${min} to ${max}`);

/** An id in a v1 body: a whole number, or its text (`3`, `"3"`, `"3.0"`). */
export const v1Id = (what: string) =>
  z.union([z.number().int(`${what} must be a whole number, e.g. 3`).positive(`${what} must be 1 or more`), v1WholeText(what, 1)], {
    error: `${what} must be a whole number, e.g. 3`,
  });

/** A v1 flag: `true`/`false`, or the text `"true"`/`"false"` (any case). */
export const v1Flag = (what: string) =>
  z
    .union([z.boolean(), z.string().regex(/^(true|false)$/i, `${what} must be true or false`)], { error: `${what} must be true or false` })
    .transform((v) => v === true || (typeof v === 'string' && v.toLowerCase() === 'true'));

export const SyncTriggerBody = z
  .strictObject({
    fullResync: flag.optional().openapi({ description: 'Send every row, ignoring the snapshot.' }),
    resetCDC: flag.optional().openapi({ description: 'Rebuild the snapshot from the model without sending anything.' }),
    fullCompare: flag.optional().openapi({ description: "Compare the whole model even though it declares a cursor (catches deletes and late writes)." }),
    allowMassDelete: flag
      .optional()
      .openapi({ description: "Let this run delete more than the sync's maxDeletePercent of its rows, once (as `lockstep sync run --allow-mass-delete`)." }),
  })
  .optional();

export const RejectedRowView = z
  .object({ key: z.unknown(), op: z.enum(['added', 'changed', 'removed']), reason: z.string() })
  .openapi('RejectedRow');

const planValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const PlanSampleView = z
  .object({
    key: z.array(planValue),
    fields: z.array(z.object({ field: z.string(), before: planValue.optional(), after: planValue })),
    before: z.enum(['read', 'absent', 'unavailable']).openapi({
      description: "Where `before` values come from: `read` (the destination's current row), `absent` (it has no row with this key), `unavailable` (the destination cannot be read back; the snapshot keeps only hashes of delivered rows, so only new values are shown).",
    }),
  })
  .openapi('PlanSample');

export const SequencePlanView = z
  .object({
    sequence: z.string(),
    plannedAt: isoTime,
    samplesPerKind: z.number().int(),
    members: z.array(
      z
        .object({
          key: z.string(),
          sync: z.string(),
          status: z.enum(['planned', 'failed', 'skipped']).openapi({
            description: 'What a run would do: `planned` (it runs), `failed` (it would fail now), `skipped` (it would not start: `blockedBy` says why; nothing is planned for it).',
          }),
          error: z.string().nullable(),
          terminates: z.string().nullable().openapi({
            description: "Why a run would terminate the sequence at this member (its outcome meets its terminate policy), in the run's words; null when the sequence would go on.",
          }),
          blockedBy: z
            .object({ member: z.string(), reason: z.string() })
            .nullable()
            .openapi({ description: 'For a skipped member: the member it waits for whose outcome would terminate the sequence, and why; null otherwise.' }),
          querySize: z.number().int(),
          added: z.number().int(),
          changed: z.number().int(),
          removed: z.number().int(),
          retried: z.number().int().openapi({ description: "Planned rows the sync's last run rejected, tried again." }),
          rejected: z.number().int().openapi({ description: 'Rows a run would reject before sending: null or duplicate keys, parent records not delivered yet.' }),
          samples: z.object({
            added: z.array(PlanSampleView),
            changed: z.array(PlanSampleView),
            removed: z.array(PlanSampleView),
            rejected: z.array(z.object({ key: z.string(), op: z.enum(['added', 'changed', 'removed']), reason: z.string() })),
          }),
          warnings: z.array(z.string()),
        })
        .openapi('MemberPlan'),
    ),
  })
  .openapi('SequencePlan', { description: 'A dry run of a sequence: what each member would send, computed without sending anything or changing anything stored.' });

/**
 * What a command is given that the store may not have (a slug, a run id), and the errors that
 * then name what it has instead.
 */
import type { App } from '../app.js';
import { ErrorCode, LockstepError, NotFoundError } from '../core/errors.js';
import { ACTIVE_SYNC_RUN_STATUSES } from '../core/runs.js';
import { UNKNOWN_SLUG_FIX, unknownSlugError } from '../core/unknown-slug.js';
import { closeMatches } from '../workspace/suggestions.js';

/** Throws when the store has no sync (or sequence) `slug`, naming the closest one it has. */
export async function requireSlug(app: App, kind: 'sync' | 'sequence', slug: string): Promise<void> {
  const found = kind === 'sync' ? await app.store.getSync(slug) : await app.store.getSequence(slug);
  if (!found) throw await unknownSlug(app, kind, slug);
}

/** A slug deleted since says so and where its runs are; any other names the closest live one and how to add it. */
export function unknownSlug(app: App, kind: 'sync' | 'sequence', slug: string): Promise<NotFoundError> {
  return unknownSlugError(app.store, kind, slug, { suggest: true, fix: UNKNOWN_SLUG_FIX });
}

/**
 * The error for `cancel` given something that is no run id of the store. A cancel takes a run's id,
 * but the slug it is given is the likeliest slip: then it names the runs in progress to cancel.
 */
export async function unknownRun(app: App, kind: 'sync' | 'sequence', text: string): Promise<LockstepError> {
  const state = await app.store.loadWorkspace();
  const entities: Array<{ id: number; slug: string }> = kind === 'sync' ? state.syncs : state.sequences;
  const named = entities.find((e) => e.slug === text);
  if (named) {
    const page = { limit: 10, offset: 0, order: 'desc' as const };
    const active =
      kind === 'sync'
        ? (await app.store.listSyncRuns({ ...page, syncId: named.id, statuses: ['queued', ...ACTIVE_SYNC_RUN_STATUSES] })).map((r) => String(r.id))
        : (await app.store.listSequenceRuns({ ...page, sequenceId: named.id, statuses: ['pending', 'running'] })).map((r) => r.id);
    const what = `"${text}" is a ${kind}, not a run id`;
    if (active.length === 0) return new LockstepError(ErrorCode.Validation, `${what}, and no run of it is in progress — \`lockstep runs --${kind} ${text}\` lists its runs`);
    if (active.length === 1) return new LockstepError(ErrorCode.Validation, `${what}: to cancel its run in progress, \`lockstep ${kind} cancel ${active[0]}\``);
    return new LockstepError(ErrorCode.Validation, `${what}: its runs in progress are ${active.join(', ')} — \`lockstep ${kind} cancel <run id>\``);
  }
  const [near] = closeMatches(text, entities.map((e) => e.slug), 1);
  const guess = near === undefined ? '' : ` (did you mean ${kind} "${near}"? \`lockstep runs --${kind} ${near}\` lists its runs)`;
  return new NotFoundError(`no ${kind} run ${runShown(kind, text)}${guess} — cancel takes a run id; \`lockstep runs\` lists the runs with their ids`);
}

/** A run id as messages show it: a sync run's number bare, anything else quoted. */
export function runShown(kind: 'sync' | 'sequence', text: string): string {
  return kind === 'sync' && /^\d+$/.test(text) ? text : `"${text}"`;
}

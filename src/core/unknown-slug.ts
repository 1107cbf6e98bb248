/**
 * What the commands, routes and triggers that take a sync or sequence slug say when it names
 * nothing live in the workspace. A slug whose sync (or sequence) was deleted since — a rename
 * deletes and creates — says so, and where its runs are: they stay in the history, listed by
 * `lockstep runs --sync <slug>`, while everything else that takes a slug acts on what is there now.
 * A slug nothing ever had names the closest live one and how to add it.
 */
import { NotFoundError } from './errors.js';
import { didYouMean } from './hints.js';
import type { WorkspaceStore } from './ports.js';

/** How to fix a slug no sync or sequence ever had, where a command or trigger names one. */
export const UNKNOWN_SLUG_FIX = 'check the slug, or run `lockstep apply` after adding it';

export interface UnknownSlugOptions {
  /** Suggest the closest live slug to one nothing ever had (default: false). */
  suggest?: boolean;
  /** How to fix a slug nothing ever had, after the message (default: none). */
  fix?: string;
}

/** The error for `slug`, which names no live sync (or sequence) of the store. */
export async function unknownSlugError(
  store: Pick<WorkspaceStore, 'deletedIdsBySlug' | 'loadWorkspace'>,
  kind: 'sync' | 'sequence',
  slug: string,
  options: UnknownSlugOptions = {},
): Promise<NotFoundError> {
  const missing = `no ${kind} "${slug}" in the workspace`;
  if ((await store.deletedIdsBySlug(kind, slug)).length > 0) {
    return new NotFoundError(`${missing}: it was deleted — its runs stay in the history, listed by \`lockstep runs --${kind} ${slug}\``);
  }
  let suggestion = '';
  if (options.suggest) {
    const state = await store.loadWorkspace();
    suggestion = didYouMean(slug, (kind === 'sync' ? state.syncs : state.sequences).map((e) => e.slug));
  }
  return new NotFoundError(`${missing}${suggestion}${options.fix ? ` — ${options.fix}` : ''}`);
}

/**
 * The error for an id that names no live sync (or sequence), where a route takes ids (the
 * Hightouch-style API): one deleted since is named by the slug it had, and where its runs are.
 * `noun` is what the caller calls the kind ("sync sequence").
 */
export async function unknownIdError(
  store: Pick<WorkspaceStore, 'slugsById' | 'getSync' | 'getSequence'>,
  kind: 'sync' | 'sequence',
  id: number,
  noun: string = kind,
): Promise<NotFoundError> {
  const missing = `no ${noun} with id ${id}`;
  const had = (await store.slugsById(kind, [id])).get(id);
  if (!had) return new NotFoundError(missing);
  // The slug may name a live one again (declared after the delete): its runs are that one's.
  const live = await (kind === 'sync' ? store.getSync(had.slug) : store.getSequence(had.slug));
  const where = live?.slug === had.slug ? 'its runs stay in the history' : `its runs stay in the history, listed by \`lockstep runs --${kind} ${had.slug}\``;
  return new NotFoundError(`${missing}: ${kind} "${had.slug}" was deleted — ${where}`);
}

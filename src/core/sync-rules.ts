/**
 * Rules of a single sync's run that are not about moving rows (SPEC §2): pure functions, shared by
 * the engine and its tests.
 */
import type { SyncRun, SyncRunOptions } from './runs.js';
import type { SyncDef } from './workspace.js';

/**
 * Why a run may not remove `removing` of the `managed` rows a sync delivered before (its
 * snapshot), or null when it may: over `maxDeletePercent` the run stops before its first delete.
 * A model that suddenly returns nothing (an emptied staging table, a broken upstream job) is the
 * case this is for. `cursor`: the model declares one, so the run to allow the deletes must be told
 * to compare in full.
 */
export function massDeleteRefusal(sync: Pick<SyncDef, 'slug' | 'maxDeletePercent'>, removing: number, managed: number, options: { cursor?: boolean } = {}): string | null {
  if (sync.maxDeletePercent === null || managed === 0 || removing === 0) return null;
  const percent = (removing / managed) * 100;
  if (percent <= sync.maxDeletePercent) return null;
  const shown = percent >= 10 ? percent.toFixed(0) : percent.toFixed(1);
  return (
    `sync "${sync.slug}" would delete ${removing} of the ${managed} rows it manages (${shown}%), over its maxDeletePercent of ${sync.maxDeletePercent}% — ` +
    'nothing was deleted; check the model (did it lose rows?), then run it once with `lockstep sync run ' +
    // Removals are seen only by a full comparison: a model with a cursor needs one asked for.
    `${sync.slug} --allow-mass-delete${options.cursor ? ' --full-compare' : ''}\`, or raise maxDeletePercent (null turns the guard off)`
  );
}

/**
 * Why a trigger asking for `asked` may not join `queued`, the sync's follow-up run waiting in the
 * queue that repeated triggers share, or null when it may. One run cannot both send every row
 * (fullResync) and send none (resetCDC), and doing either alone would drop what the other trigger
 * asked for without a word: a full resync never sent, or rows sent that were to be only recorded.
 */
export function queuedRunJoinRefusal(queued: Pick<SyncRun, 'id' | 'options'>, asked: SyncRunOptions): string | null {
  const waiting = queued.options.fullResync ? 'fullResync' : queued.options.resetCDC ? 'resetCDC' : null;
  const wanted = asked.fullResync ? 'fullResync' : asked.resetCDC ? 'resetCDC' : null;
  if (waiting === null || wanted === null || waiting === wanted) return null;
  return (
    `sync run ${queued.id} waits in the queue with ${waiting}, which this trigger's ${wanted} contradicts ` +
    '(fullResync sends every row, resetCDC sends none) — trigger again once that run has started, or cancel it first'
  );
}

/**
 * Every `lookup: { sync }` in a sync's definition (mappings, and kind settings such as HubSpot
 * associations), with its path inside `value`: the parent syncs whose recorded ids the sync reads.
 */
export function lookupsOf(value: unknown, path: Array<string | number> = []): Array<{ path: Array<string | number>; sync: string }> {
  if (Array.isArray(value)) return value.flatMap((v, i) => lookupsOf(v, [...path, i]));
  if (value === null || typeof value !== 'object') return [];
  const found: Array<{ path: Array<string | number>; sync: string }> = [];
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    const parent = key === 'lookup' && inner !== null && typeof inner === 'object' ? (inner as Record<string, unknown>).sync : undefined;
    if (typeof parent === 'string' && parent !== '') found.push({ path: [...path, 'lookup', 'sync'], sync: parent });
    else found.push(...lookupsOf(inner, [...path, key]));
  }
  return found;
}

/**
 * Routes are paths (`/sequences/crm`, `/runs/sync/12`): `lockstep serve` answers every path that is
 * not a file or an API route with the UI's index.html, so any page, and every link in an alert,
 * opens directly. Links inside the UI change the path without reloading the page (see
 * `interceptLinks`). Two older forms still open what they name: hash routes (`/#/sequences/crm`,
 * from bookmarks) and the run links of earlier alert notices (`/syncs/<slug>?run=<id>`).
 */
import { useEffect, useState } from 'react';

/** The sections of the workspace that have a list page and a form per entity. */
export type EntitySection = 'sources' | 'destinations' | 'models';

export type Route =
  | { page: 'sequences' }
  | { page: 'new-sequence' }
  | { page: 'sequence'; slug: string; runId?: string }
  | { page: 'edit-sequence'; slug: string }
  | { page: 'syncs' }
  | { page: 'new-sync' }
  | { page: 'sync'; slug: string; runId?: number }
  | { page: 'edit-sync'; slug: string }
  | { page: 'entities'; section: EntitySection }
  | { page: 'new-entity'; section: EntitySection }
  | { page: 'entity'; section: EntitySection; slug: string }
  | { page: 'sync-run'; id: number }
  | { page: 'sequence-run'; id: string }
  | { page: 'alerts' }
  | { page: 'webhooks' }
  | { page: 'not-found'; path: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WHOLE = /^\d{1,15}$/;
const ENTITY_SECTIONS: readonly EntitySection[] = ['sources', 'destinations', 'models'];

function segments(path: string): string[] {
  return path
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
}

/** The route of a path and query string (`?run=` is the run of the page, as older alert links give it). */
export function parseRoute(path: string, search = ''): Route {
  const [section, slug, action, extra, ...rest] = segments(path);
  const run = new URLSearchParams(search).get('run');
  if (rest.length > 0) return { page: 'not-found', path };
  if (section === undefined) return { page: 'sequences' };
  if (section === 'sequences') {
    if (slug === undefined) return { page: 'sequences' };
    if (slug === 'new' && action === undefined) return { page: 'new-sequence' };
    if (action === undefined) return run && UUID.test(run) ? { page: 'sequence', slug, runId: run } : { page: 'sequence', slug };
    if (action === 'edit' && extra === undefined) return { page: 'edit-sequence', slug };
    if (action === 'runs' && extra !== undefined && UUID.test(extra)) return { page: 'sequence', slug, runId: extra };
  }
  if (section === 'syncs') {
    if (slug === undefined) return { page: 'syncs' };
    if (slug === 'new' && action === undefined) return { page: 'new-sync' };
    if (action === undefined) return run && WHOLE.test(run) ? { page: 'sync', slug, runId: Number(run) } : { page: 'sync', slug };
    if (action === 'edit' && extra === undefined) return { page: 'edit-sync', slug };
    if (action === 'runs' && extra !== undefined && WHOLE.test(extra)) return { page: 'sync', slug, runId: Number(extra) };
  }
  if ((ENTITY_SECTIONS as readonly string[]).includes(section) && action === undefined) {
    const entitySection = section as EntitySection;
    if (slug === undefined) return { page: 'entities', section: entitySection };
    if (slug === 'new') return { page: 'new-entity', section: entitySection };
    return { page: 'entity', section: entitySection, slug };
  }
  if (section === 'runs' && action !== undefined && extra === undefined) {
    if (slug === 'sync' && WHOLE.test(action)) return { page: 'sync-run', id: Number(action) };
    if (slug === 'sequence' && UUID.test(action)) return { page: 'sequence-run', id: action };
  }
  if (section === 'alerts' && slug === undefined) return { page: 'alerts' };
  if (section === 'webhooks' && slug === undefined) return { page: 'webhooks' };
  return { page: 'not-found', path };
}

const at = (...parts: Array<string | number>) => `/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;

export const href = {
  sequences: () => '/sequences',
  newSequence: () => '/sequences/new',
  sequence: (slug: string) => at('sequences', slug),
  editSequence: (slug: string) => at('sequences', slug, 'edit'),
  /** A run of a sequence, opened over the sequence's page. */
  sequenceRunOf: (slug: string, runId: string) => at('sequences', slug, 'runs', runId),
  syncs: () => '/syncs',
  newSync: () => '/syncs/new',
  sync: (slug: string) => at('syncs', slug),
  editSync: (slug: string) => at('syncs', slug, 'edit'),
  /** A run of a sync, opened over the sync's page. */
  syncRunOf: (slug: string, runId: number) => at('syncs', slug, 'runs', runId),
  entities: (section: EntitySection) => at(section),
  newEntity: (section: EntitySection) => at(section, 'new'),
  entity: (section: EntitySection, slug: string) => at(section, slug),
  /** A sync run's own page (what alert notices link to). */
  syncRun: (id: number | string) => at('runs', 'sync', id),
  /** A sequence run's own page (what alert notices link to). */
  sequenceRun: (id: string) => at('runs', 'sequence', id),
  /** The page of a run of either kind. */
  run: (kind: 'sync' | 'sequence', id: string | number) => (kind === 'sync' ? at('runs', 'sync', id) : at('runs', 'sequence', id)),
  alerts: () => '/alerts',
  webhooks: () => '/webhooks',
};

const NAVIGATED = 'lockstep:navigate';

/** What each history entry the UI adds remembers: the path it was opened from. */
interface EntryState {
  from: string;
}

const here = () => window.location.pathname + window.location.search;

/** Opens `to` (a path) without reloading the page; `replace` keeps the current entry out of the history. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === here()) return;
  const state: EntryState = { from: here() };
  if (options.replace) window.history.replaceState(state, '', to);
  else window.history.pushState(state, '', to);
  window.dispatchEvent(new Event(NAVIGATED));
  if (!options.replace) window.scrollTo(0, 0);
}

/** A step back under way: a second close before it lands (a double click) must not take another. */
let goingBack = false;

/**
 * Leaves what is open over the page at `to` (a run's dialog over its sync's page) for that page: a
 * step back in the history when the dialog was opened from it, so that Back then leaves the page
 * instead of opening the closed dialog again; the page in the dialog's place when a link opened
 * the dialog directly.
 */
export function closeTo(to: string): void {
  if (goingBack) return;
  if ((window.history.state as Partial<EntryState> | null)?.from !== to) return navigate(to, { replace: true });
  goingBack = true;
  window.addEventListener('popstate', () => (goingBack = false), { once: true });
  window.history.back();
}

/** A hash route of an older link (`/#/syncs/x`) becomes its path. */
function takeHashRoute(): void {
  const { hash } = window.location;
  if (hash.startsWith('#/')) window.history.replaceState(null, '', hash.slice(1));
}

function currentRoute(): Route {
  takeHashRoute();
  return parseRoute(window.location.pathname, window.location.search);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onChange = () => setRoute(currentRoute());
    window.addEventListener('popstate', onChange);
    window.addEventListener('hashchange', onChange);
    window.addEventListener(NAVIGATED, onChange);
    return () => {
      window.removeEventListener('popstate', onChange);
      window.removeEventListener('hashchange', onChange);
      window.removeEventListener(NAVIGATED, onChange);
    };
  }, []);
  return route;
}

/**
 * Clicks on links to pages of the UI change the route in place; links with a modifier key, a
 * target, a download or another origin, and links to the API, behave as the browser has them.
 */
export function interceptLinks(root: Document = document): () => void {
  const onClick = (event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element | null)?.closest?.('a');
    if (!anchor || !anchor.hasAttribute('href') || anchor.target || anchor.hasAttribute('download')) return;
    const url = new URL(anchor.href, window.location.href);
    if (url.origin !== window.location.origin || /^\/(api|metrics|healthz|readyz)(\/|$)/.test(url.pathname)) return;
    if (url.hash && url.pathname === window.location.pathname && !url.hash.startsWith('#/')) return;
    event.preventDefault();
    navigate(url.hash.startsWith('#/') ? url.hash.slice(1) : url.pathname + url.search);
  };
  // In the capture phase: a link's own handler may stop the click from bubbling (a link inside a clickable row).
  root.addEventListener('click', onClick, true);
  return () => root.removeEventListener('click', onClick, true);
}

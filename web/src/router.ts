/**
 * Hash routes (`#/sequences/crm`): the server only serves static files, so every page must load
 * from `/` without a fallback route.
 */
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'sequences' }
  | { page: 'new-sequence' }
  | { page: 'sequence'; slug: string }
  | { page: 'edit-sequence'; slug: string }
  | { page: 'syncs' }
  | { page: 'sync'; slug: string; runId?: number }
  | { page: 'alerts' }
  | { page: 'webhooks' }
  | { page: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/sequences';
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const [section, slug, action, extra] = parts;
  if (section === 'sequences') {
    if (slug === undefined) return { page: 'sequences' };
    if (slug === 'new' && action === undefined) return { page: 'new-sequence' };
    if (action === undefined) return { page: 'sequence', slug };
    if (action === 'edit') return { page: 'edit-sequence', slug };
  }
  if (section === 'syncs') {
    if (slug === undefined) return { page: 'syncs' };
    if (action === undefined) return { page: 'sync', slug };
    if (action === 'runs' && extra !== undefined && /^\d+$/.test(extra)) return { page: 'sync', slug, runId: Number(extra) };
  }
  if (section === 'alerts' && slug === undefined) return { page: 'alerts' };
  if (section === 'webhooks' && slug === undefined) return { page: 'webhooks' };
  return { page: 'not-found', path };
}

export const href = {
  sequences: () => '#/sequences',
  newSequence: () => '#/sequences/new',
  sequence: (slug: string) => `#/sequences/${encodeURIComponent(slug)}`,
  editSequence: (slug: string) => `#/sequences/${encodeURIComponent(slug)}/edit`,
  syncs: () => '#/syncs',
  sync: (slug: string) => `#/syncs/${encodeURIComponent(slug)}`,
  syncRun: (slug: string, runId: number) => `#/syncs/${encodeURIComponent(slug)}/runs/${runId}`,
  alerts: () => '#/alerts',
  webhooks: () => '#/webhooks',
};

export function navigate(to: string): void {
  window.location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

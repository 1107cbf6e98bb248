/** The body of a run history card, shared by syncs and sequences. */
import type { ReactNode } from 'react';
import type { Page } from '../api-types.js';
import type { Resource } from '../hooks.js';
import { ErrorBanner, Loading, Pager } from './ui.js';

/**
 * One page of `runs` (starting at `offset`, `limit` long): its load error, `empty` when the page
 * has no runs, `table(runs)` when it has some, and the pager.
 */
export function RunHistory<T>(props: { runs: Resource<Page<T>>; offset: number; limit: number; onOffset: (offset: number) => void; empty: string; table: (runs: T[]) => ReactNode }) {
  const { runs, offset, limit } = props;
  return (
    <>
      <ErrorBanner error={runs.error} title="Could not load the runs" />
      {runs.loading && !runs.data && <Loading />}
      {runs.data && runs.data.data.length === 0 && <p className="empty-inline">{props.empty}</p>}
      {/* Ten columns of counts do not fit a laptop's window beside the navigation: they scroll inside the card, not off its edge. */}
      {runs.data && runs.data.data.length > 0 && <div className="scroll-x">{props.table(runs.data.data)}</div>}
      {runs.data && <Pager label="Run history pages" offset={offset} limit={limit} hasMore={runs.data.hasMore} count={runs.data.data.length} onChange={props.onOffset} />}
    </>
  );
}

/** A run history's Status filter: `options` as [value, label] after All (the empty value). */
export function StatusFilter(props: { value: string; options: ReadonlyArray<readonly [string, string]>; onChange: (value: string) => void }) {
  return (
    <label className="inline-field">
      Status
      <select value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        <option value="">All</option>
        {props.options.map(([value, label]) => (
          <option key={value} value={value}>
            {label}
          </option>
        ))}
      </select>
    </label>
  );
}

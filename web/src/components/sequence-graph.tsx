/**
 * A graph sequence drawn as boxes and arrows: members in columns by dependency depth (a member
 * sits one column right of its deepest dependency), dependencies as arrows from left to right.
 */
import { useId } from 'react';
import type { Member } from '../api-types.js';
import { statusLabel, statusTone } from './ui.js';

const BOX_W = 184;
const BOX_H = 52;
const COL_GAP = 64;
const ROW_GAP = 20;
const PAD = 12;
/** Room above the boxes for edges that arc over a column. */
const ARC = 40;

/**
 * What each member waits for: its `after` keys, or — when `after` is not given — the member listed
 * before it (the linear rule, which still holds for such members inside a graph).
 */
export function dependencies(members: Array<Pick<Member, 'key' | 'after'>>): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  members.forEach((member, index) => {
    const previous = members[index - 1];
    deps.set(member.key, member.after ?? (previous ? [previous.key] : []));
  });
  return deps;
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export const isGraph = (members: Array<Pick<Member, 'after'>>): boolean => members.some((m) => m.after !== null);

interface Placed {
  key: string;
  sync: string;
  col: number;
  row: number;
}

function layout(members: Array<Pick<Member, 'key' | 'sync' | 'after'>>): { placed: Placed[]; deps: Map<string, string[]>; cols: number; rows: number } {
  const deps = dependencies(members);
  const known = new Set(members.map((m) => m.key));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (key: string): number => {
    const cached = depth.get(key);
    if (cached !== undefined) return cached;
    // A cycle (only possible in a draft the server has not validated yet) is cut here.
    if (visiting.has(key)) return 0;
    visiting.add(key);
    const d = Math.max(-1, ...(deps.get(key) ?? []).filter((k) => known.has(k)).map(depthOf)) + 1;
    visiting.delete(key);
    depth.set(key, d);
    return d;
  };
  const rowsUsed: number[] = [];
  const placed = members.map((m) => {
    const col = depthOf(m.key);
    const row = rowsUsed[col] ?? 0;
    rowsUsed[col] = row + 1;
    return { key: m.key, sync: m.sync, col, row };
  });
  return { placed, deps, cols: rowsUsed.length, rows: Math.max(1, ...rowsUsed.map((r) => r ?? 0)) };
}

export function SequenceGraph(props: {
  members: Array<Pick<Member, 'key' | 'sync' | 'after'>>;
  /** Member states of a run, shown in the boxes and by their colour. */
  statuses?: Map<string, string> | undefined;
  /** A second line per member when no status is given (e.g. its Terminate policy). */
  notes?: Map<string, string>;
  label: string;
}) {
  // Marker ids are document-wide: two graphs on a page must not share one.
  const arrowId = `arrow${useId().replace(/:/g, '')}`;
  const { placed, deps, cols, rows } = layout(props.members);
  const at = new Map(placed.map((p) => [p.key, p]));
  const edges = placed.flatMap((to) =>
    (deps.get(to.key) ?? []).flatMap((fromKey) => {
      const from = at.get(fromKey);
      return from ? [{ from, to }] : [];
    }),
  );
  // An edge that skips a column would run through the boxes between; it arcs over the top instead.
  const skips = (e: { from: Placed; to: Placed }) => e.to.col - e.from.col > 1;
  const top = edges.some(skips) ? PAD + ARC : PAD;
  const width = PAD * 2 + cols * BOX_W + (cols - 1) * COL_GAP;
  const height = top + PAD + rows * BOX_H + (rows - 1) * ROW_GAP;
  const x = (p: Placed) => PAD + p.col * (BOX_W + COL_GAP);
  const y = (p: Placed) => top + p.row * (BOX_H + ROW_GAP);
  const path = (from: Placed, to: Placed): string => {
    if (skips({ from, to })) {
      const x1 = x(from) + BOX_W * 0.65;
      const x2 = x(to) + BOX_W * 0.35;
      const y1 = y(from);
      const y2 = y(to) - 2;
      const peak = Math.min(y1, y2) - ARC + 6;
      return `M ${x1} ${y1} C ${x1} ${peak}, ${x2} ${peak}, ${x2} ${y2}`;
    }
    const x1 = x(from) + BOX_W;
    const y1 = y(from) + BOX_H / 2;
    const x2 = x(to) - 2;
    const y2 = y(to) + BOX_H / 2;
    const mid = (x1 + x2) / 2;
    return `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
  };
  const description = edges.length === 0 ? 'no dependencies' : edges.map((e) => `${e.from.key} → ${e.to.key}`).join(', ');

  return (
    <figure className="graph">
      <svg
        role="img"
        aria-label={`${props.label}: ${description}`}
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        data-testid="sequence-graph"
      >
        <defs>
          <marker id={arrowId} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" className="graph-arrowhead" />
          </marker>
        </defs>
        {edges.map(({ from, to }) => (
          <path key={`${from.key}->${to.key}`} className="graph-edge" d={path(from, to)} markerEnd={`url(#${arrowId})`} data-edge={`${from.key}->${to.key}`} />
        ))}
        {placed.map((p) => {
          const status = props.statuses?.get(p.key);
          return (
            <g key={p.key} transform={`translate(${x(p)} ${y(p)})`} className={`graph-node tone-${status ? statusTone(status) : 'none'}`} data-member={p.key}>
              <title>{`${p.key} (sync ${p.sync})${status ? `: ${statusLabel(status)}` : ''}`}</title>
              <rect width={BOX_W} height={BOX_H} rx="8" />
              <text x="12" y="21" className="graph-key">
                {clip(p.key, 22)}
              </text>
              <text x="12" y="39" className="graph-sub">
                {clip(status ? statusLabel(status) : p.sync !== p.key ? p.sync : (props.notes?.get(p.key) ?? ''), 28)}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}

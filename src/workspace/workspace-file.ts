/**
 * One parsed workspace file: its YAML document, kept so every diagnostic can point at the line and
 * column of the value (or key) it is about.
 */
import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node, Pair, ParsedNode, YAMLMap } from 'yaml';
import type { Diagnostic } from '../core/errors.js';
import { splitHint } from './suggestions.js';

export type PathSegment = string | number;

/** `syncs.contacts.mappings[0].to`: keys joined with dots, list indexes in brackets. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

/** Where a diagnostic points: at the key of an entry (unknown keys, slugs) or at its value. */
export type Target = 'key' | 'value';

export class WorkspaceFile {
  /** Problems found while parsing the YAML itself. */
  readonly syntaxDiagnostics: Diagnostic[];
  /** False when the YAML is too broken to validate further (duplicate keys alone do not count). */
  readonly usable: boolean;

  private constructor(
    /** Path relative to the workspace folder, with `/` separators. */
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {
    this.syntaxDiagnostics = doc.errors.map((error) => {
      const { line, col } = lines.linePos(error.pos[0]);
      if (error.code === 'DUPLICATE_KEY') {
        const found = this.keyAtOffset(error.pos[0]);
        const key = found?.key ?? '?';
        const where = found === null ? 'in the same mapping' : found.path.length === 0 ? 'at the top level' : `in ${formatPath(found.path)}`;
        const first = found?.first === undefined ? '' : ` (first at line ${lines.linePos(found.first).line})`;
        return {
          file,
          line,
          column: col,
          path: found === null ? '' : formatPath([...found.path, key]),
          message: `key "${key}" appears twice ${where}${first}`,
          hint: 'each slug and setting may be declared once; rename or remove one',
        };
      }
      if (error.code === 'MULTIPLE_DOCS') {
        return {
          file,
          line,
          column: col,
          path: '',
          message: `${file} holds more than one YAML document: a second one starts at this "---" line`,
          hint: `remove the "---" line and keep every section in one document, or move the rest to its own file under lockstep/`,
        };
      }
      const { message } = splitHint(error.message);
      const hint = error.code === 'TAB_AS_INDENT' ? 'YAML indents with spaces only: replace the tab with spaces' : 'fix the YAML syntax here (indentation, quotes, brackets)';
      return { file, line, column: col, path: '', message: `invalid YAML: ${message}`, hint };
    });
    this.usable = doc.errors.every((e) => e.code === 'DUPLICATE_KEY');
  }

  static parse(file: string, source: string): WorkspaceFile {
    const lines = new LineCounter();
    const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false, merge: true, uniqueKeys: true });
    return new WorkspaceFile(file, doc, lines);
  }

  /** The file's content as plain data; an empty file is an empty mapping. */
  content(): unknown {
    if (this.doc.contents === null) return {};
    const value: unknown = this.doc.toJS({ maxAliasCount: 1000 });
    return value ?? {};
  }

  /**
   * Line and column of the node at `path`. A key that is missing points at the mapping that lacks
   * it; a block mapping or list points at the key that holds it.
   */
  locate(path: readonly PathSegment[], target: Target = 'value'): { line: number; column: number } {
    let node: unknown = this.doc.contents;
    let key: Node | null = null;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = this.findPair(node, String(segment));
        if (!pair) break;
        key = isScalar(pair.key) ? pair.key : null;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        key = null;
        node = node.items[segment];
      } else {
        break;
      }
    }
    const valueNode = isScalar(node) || isCollection(node) || isAlias(node) ? (node as Node) : null;
    const pointAtKey = key !== null && (target === 'key' || valueNode === null || (isCollection(valueNode) && !valueNode.flow));
    const chosen = pointAtKey ? key : (valueNode ?? key);
    const offset = chosen?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  /** A diagnostic located at `path` in this file. */
  diagnostic(path: readonly PathSegment[], message: string, hint?: string, target: Target = 'value'): Diagnostic {
    const { line, column } = this.locate(path, target);
    const d: Diagnostic = { file: this.file, line, column, path: formatPath(path), message };
    if (hint !== undefined) d.hint = hint;
    return d;
  }

  /**
   * The pair for `key` in `map`, or, when the map takes it through a merge key (`<<: *defaults`),
   * the pair in the merged mapping where its value is written.
   */
  private findPair(map: YAMLMap, key: string, seen = new Set<YAMLMap>()): Pair | undefined {
    seen.add(map);
    const own = map.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    if (own) return own;
    for (const pair of map.items) {
      // With `merge: true` the parser reads an unquoted `<<` key as a symbol; a quoted "<<" is an ordinary key.
      if (!isScalar(pair.key) || typeof pair.key.value !== 'symbol') continue;
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const source of sources) {
        const merged = isAlias(source) ? source.resolve(this.doc) : source;
        if (!isMap(merged) || seen.has(merged)) continue;
        const found = this.findPair(merged, key, seen);
        if (found) return found;
      }
    }
    return undefined;
  }

  /**
   * The key written at `offset` (a repeated one, as the parser reports it): its text, the path of the
   * mapping holding it, and the offset of the same key's first occurrence there.
   */
  private keyAtOffset(offset: number): { key: string; path: PathSegment[]; first: number | undefined } | null {
    const visit = (node: unknown, path: PathSegment[]): { key: string; path: PathSegment[]; first: number | undefined } | null => {
      if (isMap(node)) {
        for (const pair of node.items) {
          if (isScalar(pair.key) && pair.key.range?.[0] === offset) {
            const key = String(pair.key.value);
            const first = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key)?.key as ParsedNode | undefined;
            return { key, path, first: first?.range?.[0] };
          }
          const found = visit(pair.value, [...path, isScalar(pair.key) ? String(pair.key.value) : '?']);
          if (found) return found;
        }
      }
      if (isSeq(node)) {
        for (const [index, item] of node.items.entries()) {
          const found = visit(item, [...path, index]);
          if (found) return found;
        }
      }
      return null;
    };
    return visit(this.doc.contents, []);
  }
}

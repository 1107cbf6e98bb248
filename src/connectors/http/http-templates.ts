/**
 * Liquid templates of the HTTP destination (request paths and bodies), compiled once per writer.
 * A template sees `row` (the one row a request carries) or `rows` (the batch it carries), never the
 * filesystem: `include`, `render` and `layout` do not exist here, and lookups go to an empty
 * in-memory map. The `json` filter writes any value as JSON.
 */
import { createRequire } from 'node:module';
import type * as LiquidJs from 'liquidjs';
import type { Liquid, Template } from 'liquidjs';

/** liquidjs, loaded when a template is first checked or compiled (a workspace without HTTP syncs never loads it). */
let liquidjs: typeof LiquidJs | null = null;
export function loadLiquid(): typeof LiquidJs {
  return (liquidjs ??= createRequire(import.meta.url)('liquidjs') as typeof LiquidJs);
}

/** What a request's templates say about the rows it carries. */
export const RowsForm = {
  /** The templates use `row`: one request per row. */
  One: 'one',
  /** The templates use `rows`: one request per batch. */
  Batch: 'batch',
  /** The templates use neither: the sync's batch size decides. */
  Either: 'either',
} as const;
export type RowsForm = (typeof RowsForm)[keyof typeof RowsForm];

/** The variables a template may read. */
const GLOBALS = ['row', 'rows'];
/** Properties Liquid gives every array, not fields of a row. */
const ARRAY_PROPERTIES = ['size', 'first', 'last'];

/** Liquid's filters that read a time. */
const DATE_FILTERS = ['date', 'date_to_xmlschema', 'date_to_rfc822', 'date_to_string', 'date_to_long_string'];
/** A date and time of day without an offset. */
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/**
 * Time one render may take (ms): this much, plus RENDER_MS_PER_ROW for each row of the request,
 * so that a large batch (100,000 rows render in a few seconds, slower on a loaded machine) is not
 * refused for its size, while a template that loops without end still stops.
 */
const RENDER_MS = 10_000;
const RENDER_MS_PER_ROW = 1;

/** A Liquid engine that cannot reach the filesystem, with the `json` filter; times in UTC. */
export function createTemplateEngine(): Liquid {
  const engine = new (loadLiquid().Liquid)({
    templates: {},
    strictFilters: true,
    ownPropertyOnly: true,
    // Bounds against a template that loops without end or builds huge strings.
    renderLimit: RENDER_MS,
    memoryLimit: 256 * 1024 * 1024,
    parseLimit: 1024 * 1024,
    // Times in UTC, as Lockstep reads them: in the process's time zone, a DATE west of UTC came out a day early.
    timezoneOffset: 'UTC',
    // An object or a list written bare (`{{ row.payload }}`) is written as its JSON, where Liquid
    // writes "[object Object]": a JSON column's value, once its JSON text, goes on as it went.
    outputEscape: bareJson,
  });
  for (const tag of ['include', 'render', 'layout', 'block']) delete engine.tags[tag];
  // A time without an offset (`2024-03-30 23:30:00`, as SQLite files hold them) is UTC too, as the
  // sources read it; JavaScript would take it in the process's time zone.
  for (const name of DATE_FILTERS) {
    const filter = engine.filters[name] as (this: unknown, value: unknown, ...args: unknown[]) => unknown;
    engine.registerFilter(name, function (this: unknown, value: unknown, ...args: unknown[]) {
      return filter.call(this, typeof value === 'string' && LOCAL_TIME.test(value) ? `${value.replace(' ', 'T')}Z` : value, ...args);
    });
  }
  engine.registerFilter('json', (value: unknown) => JSON.stringify(value === undefined ? null : value));
  // A space as %20, where liquidjs writes the + of form encoding: in a path a + is a plus, and %20
  // reads as a space in a query string as well.
  engine.registerFilter('url_encode', (value: unknown) => encodeURIComponent(value === null || value === undefined ? '' : String(value)));
  return engine;
}

/**
 * An output's value as Liquid writes it, but objects and lists as their JSON. Other values go back
 * as they came (typed as Liquid's option wants): Liquid writes them as it would without this.
 */
function bareJson(value: unknown): string {
  return value !== null && typeof value === 'object' && !(value instanceof Date) ? JSON.stringify(value) : (value as string);
}

let checker: Liquid | null = null;

/** Liquid's message when `text` does not parse, else null. */
export function checkTemplate(text: string): string | null {
  try {
    (checker ??= createTemplateEngine()).parse(text);
    return null;
  } catch (thrown) {
    return thrown instanceof Error ? thrown.message : String(thrown);
  }
}

/**
 * The variables `text` reads that templates do not have (neither `row` nor `rows`); empty when it
 * does not parse (checkTemplate says why).
 */
export function unknownTemplateVariables(text: string): string[] {
  return templateVariables(text).filter((name) => !GLOBALS.includes(name));
}

/** The variables `text` reads (`row`, `rows` or others), each once; empty when it does not parse. */
export function templateVariables(text: string): string[] {
  if (!/\{[{%]/.test(text)) return [];
  const engine = (checker ??= createTemplateEngine());
  try {
    return [...new Set(engine.globalVariableSegmentsSync(engine.parse(text)).map(([name]) => String(name)))];
  } catch {
    return [];
  }
}

/** A parsed template with what it reads. */
export class CompiledTemplate {
  /** `row` or `rows` (or neither), from the variables it reads. */
  readonly form: RowsForm;
  /** Whether the template is constant text (no tags or outputs). */
  readonly constant: boolean;

  private constructor(
    /** Null for constant text, which is never rendered. */
    private readonly engine: Liquid | null,
    private readonly parsed: Template[],
    /** The global variables it reads, with the field of a row each `row.x` / `rows[i].x` names. */
    private readonly reads: Array<{ name: string; field: string | null }>,
    readonly text: string,
  ) {
    const names = new Set(reads.map((r) => r.name));
    this.form = names.has('row') ? RowsForm.One : names.has('rows') ? RowsForm.Batch : RowsForm.Either;
    this.constant = engine === null;
  }

  /**
   * Parses `text` with the engine `engine()` answers; throws an Error with Liquid's message when it
   * is not a valid template. Text without a tag or an output is constant: it needs no engine (making
   * one costs more than a run's requests to a fast API take to build).
   */
  static compile(engine: () => Liquid, text: string): CompiledTemplate {
    if (!/\{[{%]/.test(text)) return new CompiledTemplate(null, [], [], text);
    const liquid = engine();
    const parsed = liquid.parse(text);
    const reads = liquid.globalVariableSegmentsSync(parsed).map((segments) => {
      const [name, ...rest] = segments;
      // row.x → x; rows[0].x → x; rows.size and computed lookups name no field.
      const candidate = name === 'rows' ? (typeof rest[0] === 'number' ? rest[1] : undefined) : rest[0];
      const field = typeof candidate === 'string' && !(name === 'rows' && ARRAY_PROPERTIES.includes(candidate)) ? candidate : null;
      return { name: String(name), field };
    });
    return new CompiledTemplate(liquid, parsed, reads, text);
  }

  /** The variables it reads that templates do not have (neither `row` nor `rows`). */
  unknownVariables(): string[] {
    return [...new Set(this.reads.map((r) => r.name).filter((name) => !GLOBALS.includes(name)))];
  }

  /** The row fields it reads that are not among `fields`. */
  unknownFields(fields: readonly string[]): string[] {
    return [...new Set(this.reads.flatMap((r) => (r.field !== null && GLOBALS.includes(r.name) && !fields.includes(r.field) ? [r.field] : [])))];
  }

  /** Whether it reads both `row` and `rows`. */
  readsBoth(): boolean {
    const names = new Set(this.reads.map((r) => r.name));
    return names.has('row') && names.has('rows');
  }

  render(scope: { row?: Record<string, unknown>; rows?: Array<Record<string, unknown>> }): string {
    if (this.engine === null) return this.text;
    const renderLimit = RENDER_MS + RENDER_MS_PER_ROW * (scope.rows?.length ?? 1);
    return String(this.engine.renderSync(this.parsed, scope, { renderLimit }));
  }
}

/**
 * The value at an RFC 6901 JSON pointer (`/a/0/b`, `~1` for `/`, `~0` for `~`; `""` is the whole
 * document), or undefined when the document has nothing there.
 */
export function resolveJsonPointer(document: unknown, pointer: string): unknown {
  if (pointer === '') return document;
  let value: unknown = document;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(value)) {
      if (!/^(0|[1-9]\d*)$/.test(token)) return undefined;
      value = value[Number(token)];
    } else if (value !== null && typeof value === 'object') {
      value = Object.hasOwn(value, token) ? (value as Record<string, unknown>)[token] : undefined;
    } else {
      return undefined;
    }
    if (value === undefined) return undefined;
  }
  return value;
}

/**
 * The commands on the workspace files: `lockstep init` writes a starter one, `validate` checks
 * them, `plan` shows what `apply` would change in the store, and `apply` makes the store match.
 */
import type { Command } from 'commander';
import { createConnectorRegistry, type App } from '../../app.js';
import { formatDiagnostic } from '../../core/errors.js';
import { ACTIVE_SYNC_RUN_STATUSES } from '../../core/runs.js';
import { ENTITY_SECTIONS, type EntityKind, type Stored, type WorkspaceChange, type WorkspaceDefinition, type WorkspaceState } from '../../core/workspace.js';
import type { CommandDeps } from './command-deps.js';

export interface WorkspaceCommandDeps extends CommandDeps {
  /** The workspace folder the global options (or LOCKSTEP_WORKSPACE) name, else the current one. */
  workspaceDir: () => string;
}

/** The YAML loader and its schemas, loaded by the commands that read the workspace files. */
const workspaceModule = () => import('../../workspace/index.js');

export function registerWorkspaceCommands(program: Command, deps: WorkspaceCommandDeps): void {
  const { term, open, setExit, exit, workspaceDir } = deps;

  program
    .command('init')
    .description('write a starter lockstep.yaml into the workspace folder')
    .action(async () => {
      const dir = workspaceDir();
      const files = await (await workspaceModule()).initWorkspace(dir);
      for (const f of files) term.out(`wrote ${f}`);
      term.out('Next: edit it, then `lockstep validate` and `lockstep apply`.');
    });

  program
    .command('validate')
    .description('check the workspace files and report every error at once')
    .option('--json', 'print the diagnostics as JSON')
    .action(async (opts: { json?: boolean }) => {
      const dir = workspaceDir();
      const { loadWorkspace, formatValidationReport } = await workspaceModule();
      const result = await loadWorkspace(dir, process.env, createConnectorRegistry());
      if (opts.json) term.out(JSON.stringify({ valid: result.diagnostics.length === 0, diagnostics: result.diagnostics, warnings: result.warnings }, null, 2));
      else {
        if (result.diagnostics.length > 0) term.err(formatValidationReport(result.diagnostics));
        for (const warning of result.warnings) term.err(`warning: ${formatDiagnostic(warning)}`);
        if (result.diagnostics.length === 0) term.out(`✔ workspace is valid (${result.files.join(', ')})`);
      }
      if (result.diagnostics.length > 0) setExit(exit.invalid);
    });

  program
    .command('plan')
    .description('show what `apply` would create, change or delete in the store')
    .option('--json', 'print the changes as JSON: {changes: [{action, kind, slug, fields}], kept: ["kind slug"]}')
    .action(async (opts: { json?: boolean }) => {
      const { app, close, definition } = await open.validated({ readOnly: true });
      try {
        const changes = await app.store.planWorkspace(definition);
        if (opts.json) {
          term.out(JSON.stringify({ changes, kept: apiOnlyEntities(await app.store.loadWorkspace(), definition) }, null, 2));
          return;
        }
        if (changes.length === 0) term.out('No changes: the store matches the workspace files.');
        for (const c of changes) {
          const sign = c.action === 'create' ? '+' : c.action === 'delete' ? '-' : '~';
          const takeover = c.fields.includes('origin') ? ' — created through the API; the file takes it over' : '';
          const dropped = c.action === 'delete' && c.kind === 'sync' ? await syncDeletionNote(app, c.slug) : '';
          term.out(`${sign} ${c.action} ${c.kind} ${c.slug}${c.fields.length ? ` (${c.fields.join(', ')})` : ''}${takeover}${dropped}${startOverNote(c)}`);
        }
        for (const kept of apiOnlyEntities(await app.store.loadWorkspace(), definition)) {
          term.out(`= keep ${kept} (created through the API; apply leaves it alone)`);
        }
      } finally {
        await close();
      }
    });

  program
    .command('apply')
    .description('make the store match the workspace files')
    .option('--json', 'print the changes made as JSON: {changes: [{action, kind, slug, fields}]}')
    .action(async (opts: { json?: boolean }) => {
      const { app, close, definition } = await open.validated();
      try {
        // What a deleted sync leaves behind, read before it goes.
        const notes = new Map<string, string>();
        for (const c of await app.store.planWorkspace(definition)) {
          if (c.action === 'delete' && c.kind === 'sync') notes.set(c.slug, await syncDeletionNote(app, c.slug));
        }
        const changes = await app.store.applyWorkspace(definition, app.clock.now());
        if (opts.json) {
          term.out(JSON.stringify({ changes }, null, 2));
          return;
        }
        term.out(changes.length === 0 ? 'Nothing to apply: the store already matches.' : `Applied ${changes.length} change(s):`);
        for (const c of changes) term.out(`  ${c.action} ${c.kind} ${c.slug}${c.action === 'delete' && c.kind === 'sync' ? (notes.get(c.slug) ?? '') : ''}${startOverNote(c)}`);
      } finally {
        await close();
      }
    });
}

/**
 * What deleting sync `slug` drops, for plan and apply: its record of what it delivered (a sync
 * declared again, under any name, starts over and sends every row), and a run of it in progress.
 */
async function syncDeletionNote(app: App, slug: string): Promise<string> {
  const sync = await app.store.getSync(slug);
  if (!sync) return '';
  const rows = await app.store.snapshots.count(sync.id);
  const [last] = await app.store.listSyncRuns({ syncId: sync.id, limit: 1, offset: 0, order: 'desc' });
  const running = last && (ACTIVE_SYNC_RUN_STATUSES as readonly string[]).includes(last.status) ? `; its run #${last.id} in progress is not stopped` : '';
  const what = rows > 0 ? `its record of ${rows} delivered row(s)` : 'its record of what it delivered';
  return ` — ${what} goes with it: a sync declared again (a rename is a delete and a create) sends every row again${running}`;
}

/** What a change of a model's primary key, or of a sync's model or target, does to the record of what was delivered. */
function startOverNote(change: WorkspaceChange): string {
  if (change.action !== 'update') return '';
  if (change.kind === 'model' && change.fields.includes('primaryKey')) {
    return ' — the syncs of this model start over: every row is sent again (a run of them in progress is stopped), and rows that left the model before are not removed from the destination';
  }
  if (change.kind !== 'sync') return '';
  if (change.fields.includes('destination') || change.fields.includes('object')) {
    return ' — this sync starts over: every row is sent to its new object (a run of it in progress is stopped); the old one keeps what it received';
  }
  if (change.fields.includes('model')) {
    return ' — if the new model has another primary key, this sync starts over: every row is sent again, and rows that left the model before are not removed';
  }
  return '';
}

/** Entities created through the API that the files do not declare (apply keeps them), as `kind slug`. */
function apiOnlyEntities(state: WorkspaceState, definition: WorkspaceDefinition): string[] {
  const out: string[] = [];
  for (const [kind, section] of Object.entries(ENTITY_SECTIONS) as Array<[EntityKind, keyof WorkspaceDefinition & keyof WorkspaceState]>) {
    const declared = new Set((definition[section] as Array<{ slug: string }>).map((e) => e.slug));
    for (const e of state[section] as Array<Stored & { slug: string }>) if (e.origin === 'api' && !declared.has(e.slug)) out.push(`${kind} ${e.slug}`);
  }
  return out;
}

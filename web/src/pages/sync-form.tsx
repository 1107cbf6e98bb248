/**
 * Add sync / Edit sync: a model, a destination and the object in it, the mode, field mappings
 * picked from the model's columns and the object's fields, the destination kind's own settings,
 * and a schedule. Columns are read from a preview of the model's query; objects and fields from
 * the destination, when its kind can list them (a database's tables and columns) — otherwise they
 * are typed. Saving is checked like `lockstep validate`; messages appear beside their fields.
 */
import { useEffect, useId, useMemo, useState, type FormEvent } from 'react';
import type { ConnectorKindInfo, DestinationFields, DestinationObjects, Holds, Listed, ModelPreview, Sync, SyncField, Workspace } from '../api-types.js';
import { ApiError, api, errorMessage, seg } from '../api.js';
import { FieldError } from '../components/field.js';
import { ScheduleEditor, scheduleDraft, scheduleFromDraft, scheduleProblems, type ScheduleDraft } from '../components/schedule-editor.js';
import { SettingsFields, settingsDraft, settingsFromDraft, type SettingsDraft } from '../components/settings-fields.js';
import { EmptyState, ErrorBanner, Loading } from '../components/ui.js';
import { useApi } from '../hooks.js';
import { href, navigate } from '../router.js';
import { FileManagedNote, FormHeader, SaveError, SlugField, slugProblem, useEntityForm } from './entity-pages.js';

type Mode = Sync['mode'];

const MODES: Array<{ value: Mode; label: string; needsDeletes?: boolean }> = [
  { value: 'upsert', label: 'Upsert — insert new rows, update changed ones' },
  { value: 'insert', label: 'Insert — only rows never sent before' },
  { value: 'update', label: 'Update — only rows that exist in the destination' },
  { value: 'mirror', label: 'Mirror — upsert, and delete rows that left the model', needsDeletes: true },
];

/** The fields every sync has; anything else a stored sync carries is a setting of its destination's kind. */
const SYNC_FIELD_LIST = [
  'id',
  'slug',
  'origin',
  'createdAt',
  'updatedAt',
  'warning',
  'model',
  'destination',
  'object',
  'mode',
  'deleteBehavior',
  'mappings',
  'schedule',
  'enabled',
  'batchSize',
  'maxDeletePercent',
] as const satisfies readonly SyncField[];
type _EverySyncFieldListed = Holds<Listed<SyncField, (typeof SYNC_FIELD_LIST)[number]>>;
const SYNC_FIELDS = new Set<string>(SYNC_FIELD_LIST);

interface MappingDraft {
  from: string;
  to: string;
  /** Kept as it was: the form does not edit lookups. */
  lookup?: { sync: string };
}

/** A value loaded for the current inputs: `undefined` while loading, `null` when it cannot be known. */
function useLoaded<T>(key: string | null, load: () => Promise<T>, delayMs = 0): { value: T | null | undefined; error: unknown } {
  const [state, setState] = useState<{ key: string | null; value: T | null | undefined; error: unknown }>({ key: null, value: undefined, error: undefined });
  useEffect(() => {
    if (key === null) {
      setState({ key, value: null, error: undefined });
      return;
    }
    let stale = false;
    setState({ key, value: undefined, error: undefined });
    const timer = window.setTimeout(() => {
      load().then(
        (value) => !stale && setState({ key, value, error: undefined }),
        (error: unknown) => !stale && setState({ key, value: null, error }),
      );
    }, delayMs);
    return () => {
      stale = true;
      window.clearTimeout(timer);
    };
    // `load` reads only what `key` names, so `key` alone says when to load again.
  }, [key]);
  return state.key === key ? state : { value: undefined, error: undefined };
}

export function SyncForm({ slug }: { slug?: string }) {
  const workspace = useApi<Workspace>('/api/workspace');
  const kinds = useApi<ConnectorKindInfo[]>('/api/connector-kinds');
  const existing = slug ? workspace.data?.syncs.find((s) => s.slug === slug) : undefined;
  if ((workspace.loading && !workspace.data) || (kinds.loading && !kinds.data)) return <Loading />;
  if (!workspace.data) return <ErrorBanner error={workspace.error} title="Could not load the workspace" />;
  if (!kinds.data) return <ErrorBanner error={kinds.error} title="Could not load the connector kinds" />;
  if (slug && !existing) {
    return (
      <div className="page">
        <EmptyState title={`There is no sync “${slug}”`} action={<a className="button" href={href.syncs()}>Back to syncs</a>}>
          <p>It may have been deleted, or removed from the workspace files by the last <code>lockstep apply</code>.</p>
        </EmptyState>
      </div>
    );
  }
  return <SyncFormBody workspace={workspace.data} kinds={kinds.data} existing={existing} />;
}

function SyncFormBody({ workspace, kinds, existing }: { workspace: Workspace; kinds: ConnectorKindInfo[]; existing: Sync | undefined }) {
  const id = useId();
  const [slug, setSlug] = useState(existing?.slug ?? '');
  const [model, setModel] = useState(existing?.model ?? '');
  const [destination, setDestination] = useState(existing?.destination ?? '');
  const [object, setObject] = useState(existing?.object ?? '');
  const [mode, setMode] = useState<Mode>(existing?.mode ?? 'upsert');
  const [deletes, setDeletes] = useState(existing?.deleteBehavior === 'delete');
  const [mappings, setMappings] = useState<MappingDraft[]>(() => existing?.mappings.map((m) => ({ ...m })) ?? []);
  const [batchSize, setBatchSize] = useState(existing && existing.batchSize !== 1000 ? String(existing.batchSize) : '');
  const [schedule, setSchedule] = useState<ScheduleDraft>(() => scheduleDraft(existing?.schedule));
  const [enabled, setEnabled] = useState(existing?.enabled ?? true);
  const storedSettings = useMemo(() => Object.fromEntries(Object.entries(existing ?? {}).filter(([k]) => !SYNC_FIELDS.has(k))), [existing]);
  const form = useEntityForm('syncs', existing);

  const modelDef = workspace.models.find((m) => m.slug === model);
  const destinationDef = workspace.destinations.find((d) => d.slug === destination);
  const kind = kinds.find((k) => k.type === destinationDef?.type);
  const syncSettings = kind?.destination?.syncSettings ?? null;
  const [settings, setSettings] = useState<SettingsDraft>(() => settingsDraft(syncSettings, storedSettings));
  const canDelete = kind?.destination?.capabilities.deletes ?? true;

  useEffect(() => {
    document.title = existing ? `Edit ${existing.slug} · Lockstep` : 'Add sync · Lockstep';
  }, [existing]);

  const columns = useLoaded(modelDef ? `${modelDef.source}\u0000${modelDef.query}` : null, async () => {
    const preview = await api.post<ModelPreview>('/api/models/preview', { source: modelDef!.source, query: modelDef!.query });
    return preview.columns;
  });
  const objects = useLoaded(destination || null, async () => (await api.get<DestinationObjects>(`/api/destinations/${seg(destination)}/objects`)).objects);
  const fields = useLoaded(
    destination && object.trim() ? `${destination}\u0000${object.trim()}` : null,
    async () => (await api.get<DestinationFields>(`/api/destinations/${seg(destination)}/fields?object=${encodeURIComponent(object.trim())}`)).fields,
    300,
  );
  const modelColumns = columns.value ?? null;
  const objectFields = fields.value ?? null;
  const objectProblem = fields.error instanceof ApiError ? (fields.error.details.object ?? fields.error.details.destination ?? fields.error.message) : fields.error ? errorMessage(fields.error) : undefined;

  // What each model column is sent as, and the columns the object has no field for.
  const sentAs = (modelColumns ?? []).map((column) => ({ column, field: mappings.find((m) => m.from === column && m.to)?.to ?? column }));
  const unmatched = objectFields ? sentAs.filter((s) => !objectFields.includes(s.field)) : [];

  const setMapping = (index: number, change: Partial<MappingDraft>) => setMappings((list) => list.map((m, i) => (i === index ? { ...m, ...change } : m)));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const problems: Record<string, string> = {};
    if (!existing) {
      const bad = slugProblem(slug);
      if (bad) problems.slug = bad;
    }
    if (!model) problems.model = 'Choose the model whose rows this sync sends.';
    if (!destination) problems.destination = 'Choose where the rows go.';
    if (!object.trim()) problems.object = 'Name the table or object the rows go to.';
    mappings.forEach((m, i) => {
      if (!m.from.trim()) problems[`mappings.${i}.from`] = 'Choose a model column, or remove this mapping.';
      if (!m.to.trim()) problems[`mappings.${i}.to`] = 'Choose a destination field, or remove this mapping.';
    });
    if (batchSize.trim() !== '' && !(Number.isInteger(Number(batchSize)) && Number(batchSize) >= 1)) problems.batchSize = 'Enter a whole number of rows, at least 1.';
    Object.assign(problems, scheduleProblems(schedule));
    const kindSettings = settingsFromDraft(syncSettings, settings, storedSettings, problems);
    const body = {
      slug: slug.trim(),
      model,
      destination,
      object: object.trim(),
      mode,
      ...(mode !== 'mirror' ? { deleteBehavior: deletes ? 'delete' : 'ignore' } : {}),
      mappings: mappings.map((m) => ({ from: m.from.trim(), to: m.to.trim(), ...(m.lookup ? { lookup: m.lookup } : {}) })),
      schedule: scheduleFromDraft(schedule),
      enabled,
      ...(batchSize.trim() !== '' ? { batchSize: Number(batchSize) } : {}),
      // Kept as it was: the form does not edit the mass-delete guard (null is the guard off).
      ...(existing ? { maxDeletePercent: existing.maxDeletePercent } : {}),
      ...kindSettings,
    };
    void form.save(body, problems, (saved) => navigate(href.sync(saved.slug ?? body.slug)));
  };

  const claimed = ['slug', 'model', 'destination', 'object', 'mode', 'deleteBehavior', 'mappings', 'schedule', 'enabled', 'batchSize', ...Object.keys(syncSettings?.properties ?? {})];

  return (
    <div className="page">
      <FormHeader section="syncs" existing={existing} />
      <FileManagedNote origin={existing?.origin} what="sync" />
      <SaveError error={form.error} unclaimed={form.errors.unclaimed(claimed)} what="sync" />
      <form className="card form" onSubmit={submit} aria-label={existing ? `Edit sync ${existing.slug}` : 'Add sync'} noValidate>
        <SlugField id={`${id}-slug`} value={slug} onChange={setSlug} existing={Boolean(existing)} error={form.errors.get('slug')} what="sync" placeholder="accounts-to-crm" />
        <div className="row">
          <div className="field grow">
            <label htmlFor={`${id}-model`}>Model</label>
            <select id={`${id}-model`} value={model} onChange={(e) => setModel(e.target.value)} aria-invalid={Boolean(form.errors.get('model'))}>
              <option value="">Choose…</option>
              {workspace.models.map((m) => (
                <option key={m.slug} value={m.slug}>
                  {m.slug}
                </option>
              ))}
            </select>
            {workspace.models.length === 0 && (
              <span className="hint">
                No models yet: <a href={href.newEntity('models')}>add one</a> first.
              </span>
            )}
            {modelDef && (
              <span className="hint">
                {columns.value === undefined && !columns.error ? 'Reading its columns…' : modelColumns ? `Columns: ${modelColumns.join(', ')}` : `Its columns could not be read: ${errorMessage(columns.error)}`}
              </span>
            )}
            <FieldError message={form.errors.get('model')} />
          </div>
          <div className="field grow">
            <label htmlFor={`${id}-destination`}>Destination</label>
            <select id={`${id}-destination`} value={destination} onChange={(e) => setDestination(e.target.value)} aria-invalid={Boolean(form.errors.get('destination'))}>
              <option value="">Choose…</option>
              {workspace.destinations.map((d) => (
                <option key={d.slug} value={d.slug}>
                  {d.slug} ({d.type})
                </option>
              ))}
            </select>
            {workspace.destinations.length === 0 && (
              <span className="hint">
                No destinations yet: <a href={href.newEntity('destinations')}>add one</a> first.
              </span>
            )}
            <FieldError message={form.errors.get('destination')} />
          </div>
          <div className="field grow">
            <label htmlFor={`${id}-object`}>Object</label>
            <input
              id={`${id}-object`}
              className="mono"
              list={`${id}-objects`}
              value={object}
              onChange={(e) => setObject(e.target.value)}
              placeholder={kind?.type === 'http' ? '/contacts' : 'table name'}
              aria-invalid={Boolean(form.errors.get('object') ?? objectProblem)}
              aria-describedby={`${id}-object-hint`}
            />
            <datalist id={`${id}-objects`}>
              {(objects.value ?? []).map((o) => (
                <option key={o} value={o} />
              ))}
            </datalist>
            <span className="hint" id={`${id}-object-hint`}>
              {objects.value ? `The table the rows go to: ${objects.value.slice(0, 8).join(', ')}${objects.value.length > 8 ? '…' : ''}` : 'The table or API object the rows go to.'}
            </span>
            <FieldError message={form.errors.get('object') ?? objectProblem} />
          </div>
        </div>

        <div className="row">
          <div className="field grow">
            <label htmlFor={`${id}-mode`}>Mode</label>
            <select id={`${id}-mode`} value={mode} onChange={(e) => setMode(e.target.value as Mode)} aria-invalid={Boolean(form.errors.get('mode'))}>
              {MODES.map((m) => (
                <option key={m.value} value={m.value} disabled={m.needsDeletes && !canDelete}>
                  {m.label}
                </option>
              ))}
            </select>
            <FieldError message={form.errors.get('mode')} />
          </div>
          {mode !== 'mirror' && canDelete && (
            <label className="check">
              <input type="checkbox" checked={deletes} onChange={(e) => setDeletes(e.target.checked)} />
              Delete rows that leave the model
            </label>
          )}
        </div>
        <FieldError message={form.errors.get('deleteBehavior')} />

        <fieldset className="mappings">
          <legend>Field mappings</legend>
          <p className="hint">
            Every column of the model is sent; a column without a mapping goes to the field of its own name. Map the columns whose names differ.
          </p>
          {mappings.length > 0 && (
            <table className="table compact" aria-label="Field mappings">
              <thead>
                <tr>
                  <th scope="col">Model column</th>
                  <th scope="col" aria-hidden="true" />
                  <th scope="col">Destination field</th>
                  <th scope="col">
                    <span className="visually-hidden">Remove</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {mappings.map((m, i) => (
                  <tr key={i}>
                    <td>
                      {modelColumns ? (
                        <select aria-label={`Model column ${i + 1}`} value={m.from} onChange={(e) => setMapping(i, { from: e.target.value })} aria-invalid={Boolean(form.errors.get(`mappings.${i}.from`))}>
                          <option value="">Choose…</option>
                          {[...new Set([...modelColumns, ...(m.from ? [m.from] : [])])].map((c) => (
                            <option key={c} value={c}>
                              {c}
                            </option>
                          ))}
                        </select>
                      ) : (
                        <input className="mono" aria-label={`Model column ${i + 1}`} value={m.from} onChange={(e) => setMapping(i, { from: e.target.value })} />
                      )}
                      <FieldError message={form.errors.get(`mappings.${i}.from`)} />
                    </td>
                    <td aria-hidden="true">→</td>
                    <td>
                      {objectFields ? (
                        <select aria-label={`Destination field ${i + 1}`} value={m.to} onChange={(e) => setMapping(i, { to: e.target.value })} aria-invalid={Boolean(form.errors.get(`mappings.${i}.to`))}>
                          <option value="">Choose…</option>
                          {[...new Set([...objectFields, ...(m.to ? [m.to] : [])])].map((f) => (
                            <option key={f} value={f}>
                              {f}
                            </option>
                          ))}
                        </select>
                      ) : (
                        <input className="mono" aria-label={`Destination field ${i + 1}`} value={m.to} onChange={(e) => setMapping(i, { to: e.target.value })} />
                      )}
                      {m.lookup && <div className="muted small">the id recorded by {m.lookup.sync}</div>}
                      <FieldError message={form.errors.get(`mappings.${i}.to`) ?? form.errors.get(`mappings.${i}`)} />
                    </td>
                    <td>
                      <button type="button" className="icon-button" aria-label={`Remove mapping ${i + 1}`} onClick={() => setMappings((list) => list.filter((_, j) => j !== i))}>
                        ×
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <button type="button" className="button small" onClick={() => setMappings((list) => [...list, { from: unmatched[0]?.column ?? '', to: '' }])}>
            Add mapping
          </button>
          {!objectFields && object.trim() && fields.value === null && !fields.error && (
            <p className="hint">This kind of destination cannot list its fields: type their names.</p>
          )}
          {unmatched.length > 0 && (
            <p className="error-text" role="alert">
              {object.trim()} has no field {unmatched.map((u) => u.field).join(', ')}: map {unmatched.length === 1 ? 'that column' : 'those columns'} to fields it has
              {objectFields ? ` (${objectFields.join(', ')})` : ''}.
            </p>
          )}
          <FieldError message={form.errors.get('mappings')} />
        </fieldset>

        {syncSettings && Object.keys(syncSettings.properties ?? {}).length > 0 && (
          <fieldset className="settings">
            <legend>{kind?.type} settings</legend>
            <SettingsFields schema={syncSettings} draft={settings} onChange={setSettings} secrets={[]} stored={storedSettings} error={(field) => form.errors.get(field)} />
          </fieldset>
        )}

        <ScheduleEditor
          draft={schedule}
          onChange={setSchedule}
          errors={(field) => form.errors.get(field)}
          syncs={workspace.syncs.map((s) => s.slug).filter((s) => s !== existing?.slug)}
          sequences={workspace.sequences.map((s) => s.slug)}
          subject="sync"
        />

        <div className="row">
          <div className="field">
            <label htmlFor={`${id}-batch`}>Rows per batch</label>
            <input id={`${id}-batch`} type="number" min={1} step={1} value={batchSize} placeholder="default: 1000" onChange={(e) => setBatchSize(e.target.value)} aria-invalid={Boolean(form.errors.get('batchSize'))} />
            <FieldError message={form.errors.get('batchSize')} />
          </div>
          <label className="check">
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
            Enabled (runs on its schedule)
          </label>
        </div>

        <footer className="wizard-actions">
          <a className="button" href={existing ? href.sync(existing.slug) : href.syncs()}>
            Cancel
          </a>
          <span className="spacer" />
          <button type="submit" className="button primary" disabled={form.saving}>
            {form.saving ? 'Saving…' : 'Save'}
          </button>
        </footer>
      </form>
      {existing && (
        <section className="danger-zone">
          <button type="button" className="button danger" onClick={() => void form.remove(() => navigate(href.syncs()))} disabled={form.saving}>
            Delete sync
          </button>
        </section>
      )}
    </div>
  );
}

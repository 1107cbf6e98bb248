/**
 * Sources, destinations and models: a list page each, and one form to add or edit one.
 *
 * A connection's form is generated from its kind's settings schema (`GET /api/connector-kinds`);
 * its secrets are write-only (see settings-fields.tsx). "Test connection" opens the connection with
 * what the form holds and closes it. A model's form previews the query's first rows and checks its
 * primary key for nulls and duplicates. Saving is checked by the same rules as `lockstep validate`;
 * the server's messages appear beside their fields.
 */
import { useEffect, useId, useMemo, useState, type FormEvent, type ReactNode } from 'react';
import type { Connection, ConnectionTest, ConnectorKindInfo, Model, ModelPreview, Workspace } from '../api-types.js';
import { ApiError, api, errorMessage, seg } from '../api.js';
import { FieldError, fieldErrors } from '../components/field.js';
import { SettingsFields, labelOf, settingsDraft, settingsFromDraft, type SettingsDraft } from '../components/settings-fields.js';
import { EmptyState, ErrorBanner, Loading } from '../components/ui.js';
import { useApi } from '../hooks.js';
import { href, navigate, type EntitySection } from '../router.js';

const SINGULAR: Record<EntitySection, string> = { sources: 'source', destinations: 'destination', models: 'model' };
const TITLES: Record<EntitySection, string> = { sources: 'Sources', destinations: 'Destinations', models: 'Models' };
const INTROS: Record<EntitySection, string> = {
  sources: 'The databases and warehouses models read from.',
  destinations: 'The databases and APIs syncs write to.',
  models: 'SQL queries on a source; each row, identified by its primary key, is what syncs send.',
};
const EMPTY: Record<EntitySection, string> = {
  sources: 'A source is a connection to a warehouse or database — PostgreSQL, MySQL, DuckDB or SQLite — that models query.',
  destinations: 'A destination is where syncs write: a database table, or an API such as Salesforce, HubSpot or any JSON API.',
  models: 'A model is a SQL query on a source with a primary key that identifies each row. Syncs send its rows to destinations.',
};

/** The slug rule of the workspace file, checked before asking the server. */
const SLUG_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;

export function EntityList({ section }: { section: EntitySection }) {
  const workspace = useApi<Workspace>('/api/workspace');
  useEffect(() => {
    document.title = `${TITLES[section]} · Lockstep`;
  }, [section]);
  const add = (
    <a className="button primary" href={href.newEntity(section)}>
      Add {SINGULAR[section]}
    </a>
  );
  const data = workspace.data;
  const items: Array<Connection | Model> = data ? data[section] : [];
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1>{TITLES[section]}</h1>
          <p className="subtitle">{INTROS[section]}</p>
        </div>
        {items.length > 0 && add}
      </header>
      <ErrorBanner error={workspace.error} title={`Could not load the ${section}`} />
      {workspace.loading && !data && <Loading />}
      {data && items.length === 0 && (
        <EmptyState title={`No ${section} yet`} action={add}>
          <p>{EMPTY[section]}</p>
        </EmptyState>
      )}
      {data && items.length > 0 && (
        <table className="table clickable" aria-label={TITLES[section]}>
          <thead>
            <tr>
              <th scope="col">{labelOf(SINGULAR[section])}</th>
              {section === 'models' ? (
                <>
                  <th scope="col">Source</th>
                  <th scope="col">Primary key</th>
                  <th scope="col">Query</th>
                </>
              ) : (
                <th scope="col">Kind</th>
              )}
              <th scope="col">Used by</th>
            </tr>
          </thead>
          <tbody>
            {items.map((item) => (
              <tr key={item.slug} onClick={() => navigate(href.entity(section, item.slug))}>
                <td>
                  <a href={href.entity(section, item.slug)} onClick={(e) => e.stopPropagation()}>
                    {item.slug}
                  </a>
                </td>
                {section === 'models' ? (
                  <>
                    <td>{(item as Model).source}</td>
                    <td className="mono small">{(item as Model).primaryKey.join(', ')}</td>
                    <td className="mono small query-cell">{(item as Model).query}</td>
                  </>
                ) : (
                  <td>{(item as Connection).type}</td>
                )}
                <td>{usersOf(data, section, item.slug).join(', ') || <span className="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** What uses an entity: the models of a source, the syncs of a destination or a model. */
function usersOf(workspace: Workspace, section: EntitySection, slug: string): string[] {
  switch (section) {
    case 'sources':
      return workspace.models.filter((m) => m.source === slug).map((m) => m.slug);
    case 'destinations':
      return workspace.syncs.filter((s) => s.destination === slug).map((s) => s.slug);
    case 'models':
      return workspace.syncs.filter((s) => s.model === slug).map((s) => s.slug);
  }
}

export function EntityForm({ section, slug }: { section: EntitySection; slug?: string }) {
  const workspace = useApi<Workspace>('/api/workspace');
  const kinds = useApi<ConnectorKindInfo[]>(section === 'models' ? null : '/api/connector-kinds');
  const existing = slug && workspace.data ? (workspace.data[section] as Array<Connection | Model>).find((e) => e.slug === slug) : undefined;
  if ((workspace.loading && !workspace.data) || (kinds.loading && !kinds.data)) return <Loading />;
  if (!workspace.data) return <ErrorBanner error={workspace.error} title="Could not load the workspace" />;
  if (section !== 'models' && !kinds.data) return <ErrorBanner error={kinds.error} title="Could not load the connector kinds" />;
  if (slug && !existing) {
    return (
      <div className="page">
        <EmptyState title={`There is no ${SINGULAR[section]} “${slug}”`} action={<a className="button" href={href.entities(section)}>Back to {section}</a>}>
          <p>It may have been deleted, or removed from the workspace files by the last <code>lockstep apply</code>.</p>
        </EmptyState>
      </div>
    );
  }
  return section === 'models' ? (
    <ModelForm workspace={workspace.data} existing={existing as Model | undefined} />
  ) : (
    <ConnectionForm section={section} workspace={workspace.data} kinds={kinds.data ?? []} existing={existing as Connection | undefined} />
  );
}

/** Saving, deleting and the server's field messages, shared by the forms. */
export function useEntityForm(section: EntitySection | 'syncs', existing: { slug: string } | undefined) {
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [shown, setShown] = useState<Record<string, string>>({});
  const singular = section === 'syncs' ? 'sync' : SINGULAR[section];

  const save = async (body: Record<string, unknown>, local: Record<string, string>, done: (saved: { slug: string }) => void) => {
    setError(undefined);
    if (Object.keys(local).length > 0) {
      setShown(local);
      setError(new Error('Some fields need a fix before saving.'));
      return;
    }
    setShown({});
    setSaving(true);
    try {
      const saved = existing
        ? await api.put<{ slug: string }>(`/api/${section}/${seg(existing.slug)}`, body)
        : await api.post<{ slug: string }>(`/api/${section}`, body);
      done(saved);
    } catch (thrown) {
      if (thrown instanceof ApiError && thrown.status === 409 && !existing) {
        const taken = `A ${singular} with the slug “${String(body.slug)}” exists already. Choose another slug.`;
        setShown({ slug: taken });
        setError(new Error(taken));
      } else {
        setError(thrown instanceof Error ? thrown : new Error(errorMessage(thrown)));
        if (thrown instanceof ApiError) setShown(thrown.details);
      }
    } finally {
      setSaving(false);
    }
  };

  const remove = async (done: () => void) => {
    if (!existing || !window.confirm(`Delete the ${singular} “${existing.slug}”?`)) return;
    setError(undefined);
    setSaving(true);
    try {
      await api.delete(`/api/${section}/${seg(existing.slug)}`);
      done();
    } catch (thrown) {
      setError(thrown instanceof Error ? thrown : new Error(errorMessage(thrown)));
    } finally {
      setSaving(false);
    }
  };

  return { saving, error, errors: fieldErrors(shown), save, remove, setShown };
}

/** The banner of a form that could not be saved, with the server's messages no field showed. */
export function SaveError({ error, unclaimed, what }: { error: Error | undefined; unclaimed: Array<[string, string]>; what: string }) {
  if (!error) return null;
  return (
    <div className="banner banner-error" role="alert">
      <strong>Could not save the {what}:</strong> {error.message === 'Validation failed' ? 'some fields need a fix (see below).' : error.message}
      {unclaimed.length > 0 && (
        <ul>
          {unclaimed.map(([k, v]) => (
            <li key={k}>
              <code>{k}</code>: {v}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function FileManagedNote({ origin, what }: { origin: string | undefined; what: string }) {
  if (origin !== 'file') return null;
  return (
    <div className="banner banner-warn" role="note">
      This {what} is declared in the workspace files. Changes saved here last until the next <code>lockstep apply</code>; edit the file to keep them.
    </div>
  );
}

export function FormHeader({ section, existing, children }: { section: EntitySection | 'syncs'; existing: { slug: string } | undefined; children?: ReactNode }) {
  const singular = section === 'syncs' ? 'sync' : SINGULAR[section];
  const list = section === 'syncs' ? href.syncs() : href.entities(section);
  const title = section === 'syncs' ? 'Syncs' : TITLES[section];
  return (
    <header className="page-header">
      <div>
        <p className="crumbs">
          <a href={list}>{title}</a> / {existing ? existing.slug : 'New'}
        </p>
        <h1>{existing ? `Edit ${existing.slug}` : `Add ${singular}`}</h1>
      </div>
      {children && <div className="header-actions">{children}</div>}
    </header>
  );
}

export function SlugField(props: { id: string; value: string; onChange: (value: string) => void; existing: boolean; error: string | undefined; what: string; placeholder: string }) {
  return (
    <div className="field">
      <label htmlFor={props.id}>Slug</label>
      <input
        id={props.id}
        className="mono"
        value={props.value}
        disabled={props.existing}
        onChange={(e) => props.onChange(e.target.value)}
        placeholder={props.placeholder}
        aria-invalid={Boolean(props.error)}
        aria-describedby={`${props.id}-hint`}
      />
      <span className="hint" id={`${props.id}-hint`}>
        {props.existing ? `The slug names the ${props.what} everywhere and cannot change.` : 'Lowercase letters, digits, "-" and "_"; other entities refer to it by this name.'}
      </span>
      <FieldError message={props.error} />
    </div>
  );
}

/** The local check of a slug, in the words of the server's. */
export function slugProblem(slug: string): string | undefined {
  if (slug.trim() === '') return 'Enter a slug.';
  if (!SLUG_PATTERN.test(slug.trim())) return 'Use lowercase letters, digits, "-" and "_", starting with a letter or digit.';
  return undefined;
}

function ConnectionForm({ section, workspace, kinds, existing }: { section: 'sources' | 'destinations'; workspace: Workspace; kinds: ConnectorKindInfo[]; existing: Connection | undefined }) {
  const role = section === 'sources' ? 'source' : 'destination';
  const offered = kinds.filter((k) => k.roles.includes(role));
  const [slug, setSlug] = useState(existing?.slug ?? '');
  const [type, setType] = useState(existing?.type ?? '');
  const kind = offered.find((k) => k.type === type);
  const stored = useMemo(() => (existing && existing.type === type ? (existing as Record<string, unknown>) : {}), [existing, type]);
  const [drafts, setDrafts] = useState<Record<string, SettingsDraft>>(() => (existing && kind ? { [existing.type]: settingsDraft(kind.settings, existing) } : {}));
  const draft = drafts[type] ?? {};
  const form = useEntityForm(section, existing);
  const [test, setTest] = useState<{ running: boolean; result?: ConnectionTest; error?: unknown }>({ running: false });
  const id = useId();

  useEffect(() => {
    document.title = existing ? `Edit ${existing.slug} · Lockstep` : `Add ${role} · Lockstep`;
  }, [existing, role]);

  const body = (problems: Record<string, string>) => ({ slug: slug.trim(), type, ...settingsFromDraft(kind?.settings, draft, stored, problems) });
  const localProblems = () => {
    const problems: Record<string, string> = {};
    if (!existing) {
      const bad = slugProblem(slug);
      if (bad) problems.slug = bad;
    }
    if (!kind) problems.type = `Choose the kind of ${role}.`;
    return problems;
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const problems = localProblems();
    const sent = body(problems);
    void form.save(sent, problems, () => navigate(href.entities(section)));
  };

  const runTest = async () => {
    const problems: Record<string, string> = {};
    if (!kind) problems.type = `Choose the kind of ${role}.`;
    const sent = body(problems);
    if (Object.keys(problems).length > 0) {
      form.setShown(problems);
      return;
    }
    form.setShown({});
    setTest({ running: true });
    try {
      const result = await api.post<ConnectionTest>(`/api/${section}/test`, existing ? sent : { ...sent, slug: undefined });
      setTest({ running: false, result });
    } catch (thrown) {
      if (thrown instanceof ApiError && Object.keys(thrown.details).length > 0) form.setShown(thrown.details);
      setTest({ running: false, error: thrown });
    }
  };

  const used = existing ? usersOf(workspace, section, existing.slug) : [];
  const claimed = ['slug', 'type', ...Object.keys(kind?.settings.properties ?? {})];

  return (
    <div className="page">
      <FormHeader section={section} existing={existing} />
      <FileManagedNote origin={existing?.origin} what={role} />
      <SaveError error={form.error} unclaimed={form.errors.unclaimed(claimed)} what={role} />
      <form className="card form" onSubmit={submit} aria-label={existing ? `Edit ${role} ${existing.slug}` : `Add ${role}`} noValidate>
        <div className="row">
          <SlugField id={`${id}-slug`} value={slug} onChange={setSlug} existing={Boolean(existing)} error={form.errors.get('slug')} what={role} placeholder={role === 'source' ? 'warehouse' : 'crm'} />
          <div className="field">
            <label htmlFor={`${id}-type`}>Kind</label>
            <select
              id={`${id}-type`}
              value={type}
              onChange={(e) => {
                const next = e.target.value;
                setType(next);
                setTest({ running: false });
                if (!drafts[next]) {
                  const nextKind = offered.find((k) => k.type === next);
                  setDrafts((d) => ({ ...d, [next]: settingsDraft(nextKind?.settings, existing && existing.type === next ? existing : {}) }));
                }
              }}
              aria-invalid={Boolean(form.errors.get('type'))}
            >
              <option value="">Choose…</option>
              {offered.map((k) => (
                <option key={k.type} value={k.type}>
                  {k.type}
                </option>
              ))}
            </select>
            {kind && <span className="hint">{kind.description}</span>}
            <FieldError message={form.errors.get('type')} />
          </div>
        </div>
        {kind && (
          <fieldset className="settings">
            <legend>{kind.type} settings</legend>
            <SettingsFields
              schema={kind.settings}
              draft={draft}
              onChange={(next) => setDrafts((d) => ({ ...d, [type]: next }))}
              secrets={kind.secrets}
              stored={stored}
              error={(field) => form.errors.get(field)}
            />
            <p className="hint">
              Values may name environment variables, e.g. <code>{'${CRM_URL}'}</code>, read when a run connects. For example:{' '}
              <code>{kind.example}</code>
            </p>
          </fieldset>
        )}
        {kind && (
          <div className="test-connection">
            <button type="button" className="button" onClick={() => void runTest()} disabled={test.running}>
              {test.running ? 'Testing…' : 'Test connection'}
            </button>
            {test.result && (
              <p className={test.result.ok ? 'good-text' : 'error-text'} role={test.result.ok ? 'status' : 'alert'}>
                {test.result.ok ? `Connection works. ${test.result.message}` : `Connection failed: ${test.result.message}`}
              </p>
            )}
            {test.error !== undefined && (
              <p className="error-text" role="alert">
                Could not test: {test.error instanceof ApiError && Object.keys(test.error.details).length > 0 ? 'some fields need a fix (see above).' : errorMessage(test.error)}
              </p>
            )}
          </div>
        )}
        <footer className="wizard-actions">
          <a className="button" href={href.entities(section)}>
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
          {used.length > 0 && <p className="hint">Used by {used.join(', ')}: delete or change those first.</p>}
          <button type="button" className="button danger" onClick={() => void form.remove(() => navigate(href.entities(section)))} disabled={form.saving}>
            Delete {role}
          </button>
        </section>
      )}
    </div>
  );
}

function ModelForm({ workspace, existing }: { workspace: Workspace; existing: Model | undefined }) {
  const [slug, setSlug] = useState(existing?.slug ?? '');
  const [source, setSource] = useState(existing?.source ?? (workspace.sources.length === 1 ? workspace.sources[0]!.slug : ''));
  const [query, setQuery] = useState(existing?.query ?? '');
  const [primaryKey, setPrimaryKey] = useState(existing?.primaryKey.join(', ') ?? '');
  const [preview, setPreview] = useState<{ running: boolean; data?: ModelPreview; error?: unknown }>({ running: false });
  const form = useEntityForm('models', existing);
  const id = useId();

  useEffect(() => {
    document.title = existing ? `Edit ${existing.slug} · Lockstep` : 'Add model · Lockstep';
  }, [existing]);

  const keyColumns = primaryKey
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);

  const runPreview = async () => {
    const problems: Record<string, string> = {};
    if (!source) problems.source = 'Choose the source the query runs on.';
    if (!query.trim()) problems.query = 'Write the query.';
    if (Object.keys(problems).length > 0) {
      form.setShown(problems);
      return;
    }
    form.setShown({});
    setPreview({ running: true });
    try {
      const data = await api.post<ModelPreview>('/api/models/preview', { source, query, ...(keyColumns.length > 0 ? { primaryKey: keyColumns } : {}) });
      setPreview({ running: false, data });
    } catch (thrown) {
      if (thrown instanceof ApiError && Object.keys(thrown.details).length > 0) form.setShown(thrown.details);
      setPreview({ running: false, error: thrown });
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const problems: Record<string, string> = {};
    if (!existing) {
      const bad = slugProblem(slug);
      if (bad) problems.slug = bad;
    }
    if (!source) problems.source = 'Choose the source the query runs on.';
    if (!query.trim()) problems.query = 'Write the query.';
    if (keyColumns.length === 0) problems.primaryKey = 'Name the column that identifies a row (or several, separated by commas).';
    const body = {
      slug: slug.trim(),
      source,
      query,
      primaryKey: keyColumns.length === 1 ? keyColumns[0] : keyColumns,
      // Kept as they were: the form does not edit a cursor (one not set is left out of the JSON).
      cursor: existing?.cursor,
      fullCompareEvery: existing?.fullCompareEvery,
    };
    void form.save(body, problems, (saved) => navigate(href.entity('models', saved.slug ?? body.slug)));
  };

  const used = existing ? usersOf(workspace, 'models', existing.slug) : [];
  const columns = preview.data?.columns ?? [];

  return (
    <div className="page">
      <FormHeader section="models" existing={existing} />
      <FileManagedNote origin={existing?.origin} what="model" />
      <SaveError error={form.error} unclaimed={form.errors.unclaimed(['slug', 'source', 'query', 'primaryKey'])} what="model" />
      <form className="card form" onSubmit={submit} aria-label={existing ? `Edit model ${existing.slug}` : 'Add model'} noValidate>
        <div className="row">
          <SlugField id={`${id}-slug`} value={slug} onChange={setSlug} existing={Boolean(existing)} error={form.errors.get('slug')} what="model" placeholder="accounts" />
          <div className="field">
            <label htmlFor={`${id}-source`}>Source</label>
            <select id={`${id}-source`} value={source} onChange={(e) => setSource(e.target.value)} aria-invalid={Boolean(form.errors.get('source'))}>
              <option value="">Choose…</option>
              {workspace.sources.map((s) => (
                <option key={s.slug} value={s.slug}>
                  {s.slug} ({s.type})
                </option>
              ))}
            </select>
            {workspace.sources.length === 0 && (
              <span className="hint">
                No sources yet: <a href={href.newEntity('sources')}>add one</a> first.
              </span>
            )}
            <FieldError message={form.errors.get('source')} />
          </div>
        </div>
        <div className="field">
          <label htmlFor={`${id}-query`}>Query</label>
          <textarea
            id={`${id}-query`}
            className="mono"
            rows={6}
            value={query}
            onChange={(e) => setQuery(e.target.value)}
            placeholder="select id, name, email from accounts"
            aria-invalid={Boolean(form.errors.get('query'))}
            spellCheck={false}
          />
          <FieldError message={form.errors.get('query')} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-key`}>Primary key</label>
          <input
            id={`${id}-key`}
            className="mono"
            list={`${id}-columns`}
            value={primaryKey}
            onChange={(e) => setPrimaryKey(e.target.value)}
            placeholder="id"
            aria-invalid={Boolean(form.errors.get('primaryKey'))}
            aria-describedby={`${id}-key-hint`}
          />
          <datalist id={`${id}-columns`}>
            {columns.map((c) => (
              <option key={c} value={c} />
            ))}
          </datalist>
          <span className="hint" id={`${id}-key-hint`}>
            The column that identifies a row, unique and never null; several columns separated by commas.
          </span>
          <FieldError message={form.errors.get('primaryKey') ?? form.errors.get('primaryKey.0')} />
        </div>
        <div className="test-connection">
          <button type="button" className="button" onClick={() => void runPreview()} disabled={preview.running}>
            {preview.running ? 'Running the query…' : 'Preview'}
          </button>
          {preview.error !== undefined && (
            <p className="error-text" role="alert">
              Could not preview: {preview.error instanceof ApiError && Object.keys(preview.error.details).length > 0 ? 'see the message at the field above.' : errorMessage(preview.error)}
            </p>
          )}
        </div>
        {preview.data && <PreviewResult preview={preview.data} />}
        <footer className="wizard-actions">
          <a className="button" href={href.entities('models')}>
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
          {used.length > 0 && <p className="hint">Used by {used.join(', ')}: delete or change those first.</p>}
          <button type="button" className="button danger" onClick={() => void form.remove(() => navigate(href.entities('models')))} disabled={form.saving}>
            Delete model
          </button>
        </section>
      )}
    </div>
  );
}

function PreviewResult({ preview }: { preview: ModelPreview }) {
  const { keyCheck } = preview;
  const key = keyCheck.columns.join(', ');
  const scope = keyCheck.complete ? `all ${keyCheck.rowsChecked.toLocaleString()} rows` : `the first ${keyCheck.rowsChecked.toLocaleString()} rows`;
  let check: ReactNode = null;
  if (keyCheck.columns.length > 0 && keyCheck.missing.length > 0) {
    check = (
      <p className="error-text" role="alert">
        The query returns no column {keyCheck.missing.join(', ')} (it returns {preview.columns.join(', ') || 'no columns'}): choose the primary key among them.
      </p>
    );
  } else if (keyCheck.columns.length > 0 && keyCheck.nulls === 0 && keyCheck.duplicates === 0) {
    check = (
      <p className="good-text" role="status">
        Primary key {key}: no nulls and no duplicates in {scope}.
      </p>
    );
  } else if (keyCheck.columns.length > 0) {
    const problems = [
      keyCheck.nulls > 0 ? `${keyCheck.nulls.toLocaleString()} ${keyCheck.nulls === 1 ? 'row has' : 'rows have'} a null key` : null,
      keyCheck.duplicates > 0 ? `${keyCheck.duplicates.toLocaleString()} ${keyCheck.duplicates === 1 ? 'row repeats' : 'rows repeat'} a key (e.g. ${keyCheck.examples.join('; ')})` : null,
    ].filter(Boolean);
    check = (
      <p className="error-text" role="alert">
        Primary key {key}: {problems.join(', ')} in {scope}. Such rows are rejected without being sent.
      </p>
    );
  }
  return (
    <section className="preview" aria-label="Query preview">
      {check}
      {preview.rows.length === 0 ? (
        <p className="empty-inline">The query returns no rows.</p>
      ) : (
        <div className="scroll-x">
          <table className="table compact" aria-label="Preview rows">
            <thead>
              <tr>
                {preview.columns.map((c) => (
                  <th key={c} scope="col">
                    {c}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {preview.rows.map((row, i) => (
                <tr key={i}>
                  {row.map((value, j) => (
                    <td key={j} className={value === null ? 'muted' : 'mono small'}>
                      {value === null ? 'null' : String(value)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p className="hint">
        The first {preview.rows.length} {preview.rows.length === 1 ? 'row' : 'rows'}.
      </p>
    </section>
  );
}

/**
 * Add sequence / Edit sequence, in three steps (the flow users know):
 *   1. Add syncs — pick syncs from a searchable list;
 *   2. Order and policies — up/down arrows, a Terminate policy (and threshold) and an optional
 *      timeout per member, and optional "run after" dependencies, which turn the sequence into a graph;
 *   3. Name, schedule and an optional deadline — then Save. Validation errors from the server
 *      appear at their fields.
 */
import { useEffect, useId, useMemo, useState } from 'react';
import type { Member, Sequence, SequenceInput, Sync, TerminatePolicy, Workspace } from '../api-types.js';
import { ApiError, api, errorMessage, seg } from '../api.js';
import { FieldError, fieldErrors, normalizeField } from '../components/field.js';
import { ScheduleEditor, scheduleDraft, scheduleFromDraft, scheduleProblems, type ScheduleDraft } from '../components/schedule-editor.js';
import { SequenceGraph, isGraph } from '../components/sequence-graph.js';
import { ErrorBanner, Loading } from '../components/ui.js';
import { TERMINATE_LABELS, scheduleInWords, slugify, syncTargetInWords } from '../format.js';
import { useApi } from '../hooks.js';
import { href, navigate } from '../router.js';

type ThresholdUnit = 'percent' | 'count';
type StartMode = 'previous' | 'after' | 'now';

interface MemberDraft {
  key: string;
  sync: string;
  terminate: TerminatePolicy;
  thresholdUnit: ThresholdUnit;
  thresholdValue: string;
  start: StartMode;
  /** Keys it waits for when `start` is `after`. */
  after: string[];
  /** Minutes, as typed; empty for no limit. */
  timeout: string;
}

interface Draft {
  name: string;
  slug: string;
  /** The slug was typed by hand: stop deriving it from the name. */
  slugTouched: boolean;
  enabled: boolean;
  concurrency: string;
  members: MemberDraft[];
  schedule: ScheduleDraft;
  /** Minutes, as typed; empty for no deadline. */
  deadline: string;
}

/** The longest timeout or deadline the server takes, in minutes (a week). */
const MAX_LIMIT_MINUTES = 10_080;

/** Whether `text` is empty (no limit) or a number of minutes the server takes. */
function limitOk(text: string): boolean {
  if (text.trim() === '') return true;
  const value = Number(text);
  return Number.isFinite(value) && value > 0 && value <= MAX_LIMIT_MINUTES;
}

const LIMIT_PROBLEM = `Enter minutes (more than 0, at most ${MAX_LIMIT_MINUTES}), or leave it empty for no limit.`;

const STEPS = ['Add syncs', 'Order and policies', 'Name and schedule'] as const;

function memberDraft(member: Member): MemberDraft {
  const percent = 'percent' in member.rejectedThreshold;
  return {
    key: member.key,
    sync: member.sync,
    terminate: member.terminate,
    thresholdUnit: percent ? 'percent' : 'count',
    thresholdValue: String('percent' in member.rejectedThreshold ? member.rejectedThreshold.percent : member.rejectedThreshold.count),
    start: member.after === null ? 'previous' : member.after.length === 0 ? 'now' : 'after',
    after: member.after ?? [],
    timeout: member.timeoutMinutes === undefined ? '' : String(member.timeoutMinutes),
  };
}

function newMember(sync: string, taken: Set<string>): MemberDraft {
  let key = sync;
  for (let n = 2; taken.has(key); n++) key = `${sync}-${n}`;
  return { key, sync, terminate: 'on_fatal', thresholdUnit: 'count', thresholdValue: '0', start: 'previous', after: [], timeout: '' };
}

function initialDraft(sequence: Sequence | undefined): Draft {
  return {
    name: sequence?.name ?? '',
    slug: sequence?.slug ?? '',
    slugTouched: Boolean(sequence),
    enabled: sequence?.enabled ?? true,
    concurrency: String(sequence?.concurrency ?? 4),
    members: sequence?.members.map(memberDraft) ?? [],
    schedule: scheduleDraft(sequence?.schedule ?? { type: 'manual' }),
    deadline: sequence?.deadlineMinutes === undefined ? '' : String(sequence.deadlineMinutes),
  };
}

function afterOf(member: MemberDraft, keys: Set<string>): string[] | null {
  if (member.start === 'previous') return null;
  if (member.start === 'now') return [];
  return member.after.filter((k) => keys.has(k) && k !== member.key);
}

function toInput(draft: Draft): SequenceInput {
  const keys = new Set(draft.members.map((m) => m.key));
  const members = draft.members.map((m) => {
    const after = afterOf(m, keys);
    return {
      ...(m.key !== m.sync ? { key: m.key } : {}),
      sync: m.sync,
      terminate: m.terminate,
      ...(m.terminate === 'on_fatal_or_rejected'
        ? { rejectedThreshold: m.thresholdUnit === 'percent' ? { percent: Number(m.thresholdValue) } : { count: Number(m.thresholdValue) } }
        : {}),
      ...(after !== null ? { after } : {}),
      ...(m.timeout.trim() !== '' ? { timeoutMinutes: Number(m.timeout) } : {}),
    };
  });
  const graph = members.some((m) => m.after !== undefined);
  // A line does not show its concurrency, but keeps it: a save replaces the whole sequence.
  const concurrency = Number(draft.concurrency);
  const keepsConcurrency = graph || (Number.isInteger(concurrency) && concurrency >= 1);
  return {
    slug: draft.slug.trim(),
    name: draft.name.trim() || draft.slug.trim(),
    schedule: scheduleFromDraft(draft.schedule),
    enabled: draft.enabled,
    ...(keepsConcurrency ? { concurrency } : {}),
    ...(draft.deadline.trim() !== '' ? { deadlineMinutes: Number(draft.deadline) } : {}),
    members,
  };
}

/** Problems to show before asking the server, keyed like the server's details. */
function localProblems(draft: Draft, step: number): Record<string, string> {
  const problems: Record<string, string> = {};
  if (step >= 0 && draft.members.length === 0) problems.members = 'Add at least one sync.';
  if (step >= 1) {
    draft.members.forEach((m, i) => {
      if (m.terminate === 'on_fatal_or_rejected') {
        const value = Number(m.thresholdValue);
        const ok = m.thresholdValue.trim() !== '' && Number.isFinite(value) && value >= 0 && (m.thresholdUnit === 'percent' ? value <= 100 : Number.isInteger(value));
        if (!ok) problems[`members.${i}.rejectedThreshold`] = m.thresholdUnit === 'percent' ? 'Enter a percentage from 0 to 100.' : 'Enter a whole number of rows (0 or more).';
      }
      if (m.start === 'after' && m.after.length === 0) problems[`members.${i}.after`] = 'Pick at least one sync to wait for, or choose another start.';
      if (!limitOk(m.timeout)) problems[`members.${i}.timeoutMinutes`] = LIMIT_PROBLEM;
    });
  }
  if (step >= 2) {
    if (!draft.slug.trim()) problems.slug = 'Enter a slug (letters, digits and dashes).';
    if (isGraph(draft.members.map((m) => ({ after: m.start === 'previous' ? null : [] })))) {
      const c = Number(draft.concurrency);
      if (!Number.isInteger(c) || c < 1) problems.concurrency = 'Enter a whole number of at least 1.';
    }
    if (!limitOk(draft.deadline)) problems.deadlineMinutes = LIMIT_PROBLEM;
    Object.assign(problems, scheduleProblems(draft.schedule));
  }
  return problems;
}

/** The step that shows a field, to go back to when the server refuses it. */
function stepOf(field: string): number {
  if (field.startsWith('members.')) return 1;
  if (field === 'members') return 0;
  return 2;
}

export function SequenceWizard(props: { slug?: string }) {
  const workspace = useApi<Workspace>('/api/workspace');
  const existing = props.slug ? workspace.data?.sequences.find((s) => s.slug === props.slug) : undefined;
  if (workspace.loading && !workspace.data) return <Loading />;
  if (!workspace.data) return <ErrorBanner error={workspace.error} title="Could not load the workspace" />;
  if (props.slug && !existing) {
    return (
      <div className="page">
        <ErrorBanner error={new Error(`There is no sequence "${props.slug}".`)} />
        <a href={href.sequences()}>Back to sequences</a>
      </div>
    );
  }
  return <WizardForm key={props.slug ?? 'new'} workspace={workspace.data} existing={existing} />;
}

function WizardForm({ workspace, existing }: { workspace: Workspace; existing: Sequence | undefined }) {
  const [draft, setDraft] = useState<Draft>(() => initialDraft(existing));
  const [step, setStep] = useState(0);
  const [search, setSearch] = useState('');
  const [saving, setSaving] = useState(false);
  const [serverError, setServerError] = useState<ApiError | Error | undefined>(undefined);
  const [shown, setShown] = useState<Record<string, string>>({});
  const id = useId();

  const syncsBySlug = useMemo(() => new Map(workspace.syncs.map((s) => [s.slug, s])), [workspace.syncs]);
  const errors = fieldErrors(shown);
  const update = (change: Partial<Draft>) => setDraft((d) => ({ ...d, ...change }));
  const updateMember = (index: number, change: Partial<MemberDraft>) =>
    setDraft((d) => ({ ...d, members: d.members.map((m, i) => (i === index ? { ...m, ...change } : m)) }));

  useEffect(() => {
    document.title = existing ? `Edit ${existing.name} · Lockstep` : 'Add sequence · Lockstep';
  }, [existing]);

  const toggleSync = (slug: string, on: boolean) => {
    // "Add at least one sync" no longer holds once a sync is picked.
    if (on) setShown(({ members: _members, ...rest }) => rest);
    setDraft((d) => {
      if (!on) {
        const removed = d.members.filter((m) => m.sync === slug).map((m) => m.key);
        return { ...d, members: d.members.filter((m) => m.sync !== slug).map((m) => ({ ...m, after: m.after.filter((k) => !removed.includes(k)) })) };
      }
      return { ...d, members: [...d.members, newMember(slug, new Set(d.members.map((m) => m.key)))] };
    });
  };

  const move = (index: number, by: -1 | 1) =>
    setDraft((d) => {
      const members = [...d.members];
      const target = index + by;
      if (target < 0 || target >= members.length) return d;
      [members[index], members[target]] = [members[target]!, members[index]!];
      return { ...d, members };
    });

  const goTo = (next: number) => {
    if (next > step) {
      const problems = localProblems(draft, step);
      if (Object.keys(problems).length > 0) {
        setShown(problems);
        return;
      }
    }
    setShown({});
    setServerError(undefined);
    setStep(next);
  };

  const save = async () => {
    const problems = localProblems(draft, 2);
    if (Object.keys(problems).length > 0) {
      setShown(problems);
      setStep(Math.min(...Object.keys(problems).map(stepOf)));
      return;
    }
    setSaving(true);
    setServerError(undefined);
    setShown({});
    try {
      const body = toInput(draft);
      const saved = existing
        ? await api.put<Sequence>(`/api/sequences/${seg(existing.slug)}`, body)
        : await api.post<Sequence>('/api/sequences', body);
      navigate(href.sequence(saved?.slug ?? body.slug));
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(errorMessage(thrown));
      if (error instanceof ApiError && error.status === 409 && !existing) {
        // The slug is taken: say so at the slug field, in words rather than the API's.
        const taken = `A sequence with the slug “${draft.slug.trim()}” exists already. Choose another name or slug.`;
        setServerError(new Error(taken));
        setShown({ slug: taken });
        setStep(2);
        return;
      }
      setServerError(error);
      if (error instanceof ApiError && Object.keys(error.details).length > 0) {
        setShown(error.details);
        setStep(Math.min(...Object.keys(error.details).map((k) => stepOf(normalizeField(k)))));
      }
    } finally {
      setSaving(false);
    }
  };

  const filtered = workspace.syncs.filter((s) => {
    const q = search.trim().toLowerCase();
    return !q || [s.slug, s.model, s.destination, s.object].some((v) => v.toLowerCase().includes(q));
  });
  const selected = new Set(draft.members.map((m) => m.sync));
  const graph = draft.members.some((m) => m.start !== 'previous');
  const keys = new Set(draft.members.map((m) => m.key));
  const previewMembers = draft.members.map((m) => ({ key: m.key, sync: m.sync, after: afterOf(m, keys) }));

  // Details the visible fields do not show, so nothing the server said is lost.
  const unclaimed = errors.unclaimed(['members', 'slug', 'name', 'concurrency', 'enabled', 'schedule', 'deadlineMinutes']);
  const memberError = (i: number, field?: string) => (field ? errors.get(`members.${i}.${field}`) : errors.get(`members.${i}`));
  const memberOther = (i: number) =>
    Object.entries(shown)
      .filter(([k]) => {
        const n = normalizeField(k);
        return n.startsWith(`members.${i}.`) && !['terminate', 'rejectedThreshold', 'after', 'sync', 'timeoutMinutes'].some((f) => n.startsWith(`members.${i}.${f}`));
      })
      .map(([, v]) => v);

  return (
    <div className="page wizard">
      <header className="page-header">
        <div>
          <p className="crumbs">
            <a href={href.sequences()}>Sequences</a> / {existing ? <a href={href.sequence(existing.slug)}>{existing.name}</a> : 'New'}
          </p>
          <h1>{existing ? `Edit ${existing.name}` : 'Add sequence'}</h1>
        </div>
      </header>

      {existing?.origin === 'file' && (
        <div className="banner banner-warn" role="note">
          This sequence is declared in the workspace files. Changes saved here last until the next <code>lockstep apply</code>; edit the file to keep them.
        </div>
      )}

      <ol className="stepper" aria-label="Steps">
        {STEPS.map((label, i) => (
          <li key={label} className={i === step ? 'current' : i < step ? 'done' : ''}>
            <button type="button" aria-current={i === step ? 'step' : undefined} onClick={() => goTo(i)} disabled={i > step && draft.members.length === 0}>
              <span className="step-number">{i + 1}</span> {label}
            </button>
          </li>
        ))}
      </ol>

      {serverError && (
        <div className="banner banner-error" role="alert">
          <strong>Could not save the sequence:</strong> {serverError.message}
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
      )}

      {step === 0 && (
        <section className="card" aria-labelledby={`${id}-s1`}>
          <h2 id={`${id}-s1`}>Add syncs</h2>
          <p className="hint">Choose the syncs this sequence runs. You order them and choose what stops the sequence in the next step.</p>
          {workspace.syncs.length === 0 ? (
            <p className="empty-inline">
              This workspace has no syncs yet. <a href={href.newSync()}>Add a sync</a> first, then come back.
            </p>
          ) : (
            <>
              <div className="field">
                <label htmlFor={`${id}-search`}>Search syncs</label>
                <input id={`${id}-search`} type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="Name, model, destination or object" />
              </div>
              <ul className="pick-list" aria-label="Syncs">
                {filtered.map((sync) => (
                  <li key={sync.slug}>
                    <label>
                      <input type="checkbox" checked={selected.has(sync.slug)} onChange={(e) => toggleSync(sync.slug, e.target.checked)} />
                      <span className="pick-main">{sync.slug}</span>
                      <span className="pick-sub">
                        {sync.model} → {syncTargetInWords(sync, workspace.destinations)} · {sync.mode}
                        {!sync.enabled && ' · disabled'}
                      </span>
                    </label>
                  </li>
                ))}
                {filtered.length === 0 && <li className="empty-inline">No sync matches “{search}”.</li>}
              </ul>
              <p className="hint" aria-live="polite">
                {draft.members.length === 0 ? 'No syncs selected.' : `${draft.members.length} selected: ${draft.members.map((m) => m.sync).join(', ')}`}
              </p>
            </>
          )}
          <FieldError message={errors.get('members')} />
        </section>
      )}

      {step === 1 && (
        <section className="card" aria-labelledby={`${id}-s2`}>
          <h2 id={`${id}-s2`}>Order and policies</h2>
          <p className="hint">
            Members run from top to bottom, each after the previous one has finished. <strong>Terminate</strong> says which outcome of a member stops the
            sequence; the members after it are skipped. Choose “Starts after specific syncs” to build a dependency graph instead.
          </p>
          <FieldError message={errors.get('members')} />
          <ol className="member-list">
            {draft.members.map((m, i) => {
              const sync: Sync | undefined = syncsBySlug.get(m.sync);
              return (
                <li key={m.key} aria-label={m.key} className="member-row">
                  <div className="member-order">
                    <span className="member-index">{i + 1}</span>
                    <button type="button" className="icon-button" aria-label={`Move ${m.key} up`} disabled={i === 0} onClick={() => move(i, -1)}>
                      ↑
                    </button>
                    <button type="button" className="icon-button" aria-label={`Move ${m.key} down`} disabled={i === draft.members.length - 1} onClick={() => move(i, 1)}>
                      ↓
                    </button>
                  </div>
                  <div className="member-main">
                    <div className="member-title">
                      <strong>{m.sync}</strong>
                      {m.key !== m.sync && <span className="tag">key {m.key}</span>}
                      {sync && (
                        <span className="pick-sub">
                          {sync.model} → {syncTargetInWords(sync, workspace.destinations)}
                        </span>
                      )}
                    </div>
                    <FieldError message={memberError(i) ?? memberError(i, 'sync')} />
                    <div className="row">
                      <div className="field">
                        <label htmlFor={`${id}-t-${i}`}>Terminate</label>
                        <select id={`${id}-t-${i}`} value={m.terminate} onChange={(e) => updateMember(i, { terminate: e.target.value as TerminatePolicy })}>
                          {(Object.keys(TERMINATE_LABELS) as TerminatePolicy[]).map((p) => (
                            <option key={p} value={p}>
                              {TERMINATE_LABELS[p]}
                            </option>
                          ))}
                        </select>
                        <FieldError message={memberError(i, 'terminate')} />
                      </div>
                      {m.terminate === 'on_fatal_or_rejected' && (
                        <div className="field threshold">
                          <label htmlFor={`${id}-tv-${i}`}>Rejected rows threshold</label>
                          <div className="inline">
                            <input
                              id={`${id}-tv-${i}`}
                              type="number"
                              min={0}
                              max={m.thresholdUnit === 'percent' ? 100 : undefined}
                              step={m.thresholdUnit === 'percent' ? 'any' : 1}
                              value={m.thresholdValue}
                              onChange={(e) => updateMember(i, { thresholdValue: e.target.value })}
                              aria-invalid={Boolean(memberError(i, 'rejectedThreshold'))}
                            />
                            <select aria-label="Threshold unit" value={m.thresholdUnit} onChange={(e) => updateMember(i, { thresholdUnit: e.target.value as ThresholdUnit })}>
                              <option value="count">rows</option>
                              <option value="percent">% of planned rows</option>
                            </select>
                          </div>
                          <span className="hint">Terminates when more rows than this are rejected{m.thresholdValue === '0' && m.thresholdUnit === 'count' ? ' (0: any rejected row)' : ''}.</span>
                          <FieldError
                            message={memberError(i, 'rejectedThreshold') ?? memberError(i, 'rejectedThreshold.percent') ?? memberError(i, 'rejectedThreshold.count')}
                          />
                        </div>
                      )}
                      <div className="field">
                        <label htmlFor={`${id}-to-${i}`}>Timeout (minutes)</label>
                        <input
                          id={`${id}-to-${i}`}
                          type="number"
                          min={0}
                          step="any"
                          value={m.timeout}
                          placeholder="No limit"
                          onChange={(e) => updateMember(i, { timeout: e.target.value })}
                          aria-invalid={Boolean(memberError(i, 'timeoutMinutes'))}
                          aria-describedby={`${id}-to-${i}-hint`}
                        />
                        <span className="hint" id={`${id}-to-${i}-hint`}>
                          A run still going then is stopped and counts as failed.
                        </span>
                        <FieldError message={memberError(i, 'timeoutMinutes')} />
                      </div>
                      <div className="field">
                        <label htmlFor={`${id}-s-${i}`}>Starts</label>
                        <select id={`${id}-s-${i}`} value={m.start} onChange={(e) => updateMember(i, { start: e.target.value as StartMode })}>
                          <option value="previous">{i === 0 ? 'First' : 'After the previous sync'}</option>
                          <option value="after">After specific syncs</option>
                          <option value="now">At once (no dependencies)</option>
                        </select>
                      </div>
                    </div>
                    {m.start === 'after' && (
                      <fieldset className="after-picks">
                        <legend>Run after</legend>
                        {draft.members
                          .filter((other) => other.key !== m.key)
                          .map((other) => (
                            <label key={other.key} className="chip-check">
                              <input
                                type="checkbox"
                                checked={m.after.includes(other.key)}
                                onChange={(e) => updateMember(i, { after: e.target.checked ? [...m.after, other.key] : m.after.filter((k) => k !== other.key) })}
                              />
                              {other.key}
                            </label>
                          ))}
                        {draft.members.length === 1 && <span className="hint">Add more syncs to choose dependencies.</span>}
                      </fieldset>
                    )}
                    <FieldError message={memberError(i, 'after')} />
                    {memberOther(i).map((message) => (
                      <FieldError key={message} message={message} />
                    ))}
                  </div>
                </li>
              );
            })}
          </ol>
          {graph && draft.members.length > 0 && (
            <div className="preview">
              <h3>Dependency graph</h3>
              <SequenceGraph members={previewMembers} notes={new Map(draft.members.map((m) => [m.key, TERMINATE_LABELS[m.terminate]]))} label="Dependency graph preview" />
            </div>
          )}
        </section>
      )}

      {step === 2 && (
        <section className="card" aria-labelledby={`${id}-s3`}>
          <h2 id={`${id}-s3`}>Name and schedule</h2>
          <div className="row">
            <div className="field grow">
              <label htmlFor={`${id}-name`}>Name</label>
              <input
                id={`${id}-name`}
                value={draft.name}
                onChange={(e) => update({ name: e.target.value, ...(draft.slugTouched ? {} : { slug: slugify(e.target.value) }) })}
                placeholder="CRM hierarchy"
                aria-invalid={Boolean(errors.get('name'))}
              />
              <FieldError message={errors.get('name')} />
            </div>
            <div className="field grow">
              <label htmlFor={`${id}-slug`}>Slug</label>
              <input
                id={`${id}-slug`}
                className="mono"
                value={draft.slug}
                disabled={Boolean(existing)}
                onChange={(e) => update({ slug: e.target.value, slugTouched: true })}
                placeholder="crm-hierarchy"
                aria-invalid={Boolean(errors.get('slug'))}
                aria-describedby={`${id}-slug-hint`}
              />
              <span className="hint" id={`${id}-slug-hint`}>
                {existing ? 'The slug identifies the sequence and cannot change.' : 'Used in the API and on the command line: lockstep sequence run <slug>.'}
              </span>
              <FieldError message={errors.get('slug')} />
            </div>
          </div>
          <ScheduleEditor
            draft={draft.schedule}
            onChange={(schedule) => update({ schedule })}
            errors={(field) => errors.get(field)}
            syncs={workspace.syncs.map((s) => s.slug)}
            sequences={workspace.sequences.map((s) => s.slug).filter((s) => s !== existing?.slug)}
          />
          <div className="row">
            {graph && (
              <div className="field">
                <label htmlFor={`${id}-conc`}>Members running at once</label>
                <input id={`${id}-conc`} type="number" min={1} step={1} value={draft.concurrency} onChange={(e) => update({ concurrency: e.target.value })} />
                <FieldError message={errors.get('concurrency')} />
              </div>
            )}
            <div className="field">
              <label htmlFor={`${id}-deadline`}>Deadline (minutes)</label>
              <input
                id={`${id}-deadline`}
                type="number"
                min={0}
                step="any"
                value={draft.deadline}
                placeholder="No deadline"
                onChange={(e) => update({ deadline: e.target.value })}
                aria-invalid={Boolean(errors.get('deadlineMinutes'))}
                aria-describedby={`${id}-deadline-hint`}
              />
              <span className="hint" id={`${id}-deadline-hint`}>
                From a run&apos;s start: then members not started are skipped, running ones stopped, and the run fails.
              </span>
              <FieldError message={errors.get('deadlineMinutes')} />
            </div>
            <label className="check">
              <input type="checkbox" checked={draft.enabled} onChange={(e) => update({ enabled: e.target.checked })} />
              Enabled (runs on its schedule)
            </label>
          </div>
          <p className="hint summary">
            {draft.members.length} {draft.members.length === 1 ? 'sync' : 'syncs'}
            {graph ? ' as a dependency graph' : ' in order'} · {scheduleInWords(scheduleFromDraft(draft.schedule))}
          </p>
        </section>
      )}

      <footer className="wizard-actions">
        {step > 0 ? (
          <button type="button" className="button" onClick={() => goTo(step - 1)}>
            Back
          </button>
        ) : (
          <a className="button" href={existing ? href.sequence(existing.slug) : href.sequences()}>
            Cancel
          </a>
        )}
        <span className="spacer" />
        {step < STEPS.length - 1 ? (
          <button type="button" className="button primary" onClick={() => goTo(step + 1)}>
            Next
          </button>
        ) : (
          <button type="button" className="button primary" onClick={() => void save()} disabled={saving}>
            {saving ? 'Saving…' : 'Save'}
          </button>
        )}
        {step < STEPS.length - 1 && existing && (
          <button type="button" className="button primary" onClick={() => void save()} disabled={saving}>
            {saving ? 'Saving…' : 'Save'}
          </button>
        )}
      </footer>
    </div>
  );
}

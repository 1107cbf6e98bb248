/**
 * The Alerts page: the channels (targets redacted by the server) with a test button each, the
 * rules with add/edit/delete, and the recent deliveries, failed ones highlighted so a failing
 * channel shows here.
 */
import { useEffect, useId, useState, type FormEvent, type ReactNode } from 'react';
import {
  ALERT_EVENTS,
  type AlertChannel,
  type AlertDelivery,
  type AlertDeliveryStatus,
  type AlertEvent,
  type AlertRule,
  type AlertRuleInput,
  type AlertRuleWithWarning,
  type Alerts,
  type Page,
  type Workspace,
} from '../api-types.js';
import { ApiError, api, errorMessage, seg } from '../api.js';
import { FieldError, fieldErrors } from '../components/field.js';
import { Dialog, ErrorBanner, Loading, Pager } from '../components/ui.js';
import { formatRelative, formatTime } from '../format.js';
import { useApi } from '../hooks.js';
import { href } from '../router.js';

const EVENT_LABELS: Record<AlertEvent | 'test', string> = {
  sync_failed: 'Sync failed',
  rejected_rows: 'Rejected rows',
  sequence_failed: 'Sequence failed',
  slow_run: 'Slow run',
  recovered: 'Recovered',
  test: 'Test',
};

const CHANNEL_TYPES: Record<AlertChannel['type'], string> = {
  slack: 'Slack',
  webhook: 'Webhook',
  email: 'Email',
  pagerduty: 'PagerDuty',
};

const DELIVERY_LABELS: Record<AlertDeliveryStatus, string> = {
  pending: 'Pending',
  sent: 'Sent',
  failed: 'Failed, retrying',
  given_up: 'Given up',
};
const DELIVERY_TONES: Record<AlertDeliveryStatus, string> = { pending: 'idle', sent: 'good', failed: 'warn', given_up: 'bad' };

const DELIVERY_PAGE = 15;

function DeliveryBadge({ status }: { status: AlertDeliveryStatus }) {
  return (
    <span className={`badge badge-${DELIVERY_TONES[status]}`} data-delivery-status={status}>
      {DELIVERY_LABELS[status]}
    </span>
  );
}

export function AlertsPage() {
  const alerts = useApi<Alerts>('/api/alerts');
  const [deliveryFilter, setDeliveryFilter] = useState<AlertDeliveryStatus | ''>('');
  const [offset, setOffset] = useState(0);
  const deliveries = useApi<Page<AlertDelivery>>(`/api/alerts/deliveries?limit=${DELIVERY_PAGE}&offset=${offset}${deliveryFilter ? `&status=${deliveryFilter}` : ''}`, { live: true });
  // The newest delivery of each channel says whether it works.
  const latest = useApi<Page<AlertDelivery>>('/api/alerts/deliveries?limit=100', { live: true });
  const [editing, setEditing] = useState<AlertRule | 'new' | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    document.title = 'Alerts · Lockstep';
  }, []);

  const refreshDeliveries = () => {
    deliveries.reload();
    latest.reload();
  };
  const channelHealth = new Map<string, AlertDelivery>();
  for (const d of latest.data?.data ?? []) if (!channelHealth.has(d.channel)) channelHealth.set(d.channel, d);

  const data = alerts.data;
  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1>Alerts</h1>
          <p className="subtitle">
            Notices when a sync or sequence fails, rejects rows, runs slow, or recovers — one per change of state, sent in the background so they never hold
            up a run.
          </p>
        </div>
      </header>
      <ErrorBanner error={alerts.error} title="Could not load the alerts" />
      {notice && (
        <div className="banner banner-warn" role="status">
          {notice}
        </div>
      )}
      {alerts.loading && !data && <Loading />}
      {data && (
        <>
          <section className="card" aria-labelledby="channels-title">
            <div className="section-header">
              <h2 id="channels-title">Channels</h2>
            </div>
            {data.channels.length === 0 ? (
              <div className="empty-inline">
                <p>
                  No channels yet. Declare them under <code>alerts.channels</code> in <code>lockstep.yaml</code> — Slack, a webhook, email or PagerDuty — then run{' '}
                  <code>lockstep apply</code>. Secrets stay in <code>{'${ENV}'}</code> variables.
                </p>
              </div>
            ) : (
              <table className="table compact" aria-label="Alert channels">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Type</th>
                    <th scope="col">Target</th>
                    <th scope="col">Last delivery</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {data.channels.map((channel) => (
                    <ChannelRow key={channel.name} channel={channel} last={channelHealth.get(channel.name)} onSent={refreshDeliveries} />
                  ))}
                </tbody>
              </table>
            )}
          </section>

          <section className="card" aria-labelledby="rules-title">
            <div className="section-header">
              <h2 id="rules-title">Rules</h2>
              {data.channels.length > 0 && (
                <button type="button" className="button primary" onClick={() => setEditing('new')}>
                  Add rule
                </button>
              )}
            </div>
            {data.rules.length === 0 ? (
              <div className="empty-inline">
                <p>
                  No rules yet.{' '}
                  {data.channels.length === 0
                    ? 'Add a channel first; then a rule says which events of which syncs and sequences go to it.'
                    : 'A rule says which events of which syncs and sequences go to which channels; a rule that names none is the workspace default.'}
                </p>
              </div>
            ) : (
              <table className="table compact" aria-label="Alert rules">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Events</th>
                    <th scope="col">Watches</th>
                    <th scope="col">Thresholds</th>
                    <th scope="col">Channels</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {data.rules.map((rule) => (
                    <RuleRow
                      key={rule.name}
                      rule={rule}
                      onEdit={() => setEditing(rule)}
                      onDeleted={() => {
                        setNotice(rule.origin === 'file' ? `Rule "${rule.name}" was deleted; it comes from the workspace files, so the next lockstep apply brings it back.` : null);
                        alerts.reload();
                      }}
                    />
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}

      <section className="card" aria-labelledby="deliveries-title">
        <div className="section-header">
          <h2 id="deliveries-title">Recent deliveries</h2>
          <div className="header-actions">
            <label className="inline-field">
              Status
              <select
                value={deliveryFilter}
                onChange={(e) => {
                  setOffset(0);
                  setDeliveryFilter(e.target.value as AlertDeliveryStatus | '');
                }}
              >
                <option value="">All</option>
                {(Object.keys(DELIVERY_LABELS) as AlertDeliveryStatus[]).map((s) => (
                  <option key={s} value={s}>
                    {DELIVERY_LABELS[s]}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" className="button small" onClick={refreshDeliveries}>
              Refresh
            </button>
          </div>
        </div>
        <ErrorBanner error={deliveries.error} title="Could not load the deliveries" />
        {deliveries.data && deliveries.data.data.length === 0 && (
          <div className="empty-inline">
            <p>{deliveryFilter ? 'No deliveries with this status.' : 'No alerts sent yet. Notices appear here when a rule fires, or when you send a test alert to a channel.'}</p>
          </div>
        )}
        {deliveries.data && deliveries.data.data.length > 0 && (
          <table className="table compact" aria-label="Alert deliveries">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">About</th>
                <th scope="col">Channel</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">
                  Attempts
                </th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.data.data.map((d) => (
                <DeliveryRow key={d.id} delivery={d} />
              ))}
            </tbody>
          </table>
        )}
        {deliveries.data && (
          <Pager offset={offset} limit={DELIVERY_PAGE} hasMore={deliveries.data.hasMore} count={deliveries.data.data.length} onChange={setOffset} label="Delivery pages" />
        )}
      </section>

      {editing !== null && data && (
        <RuleDialog
          rule={editing === 'new' ? null : editing}
          channels={data.channels}
          onClose={() => setEditing(null)}
          onSaved={(saved) => {
            setEditing(null);
            setNotice(saved.warning ?? null);
            alerts.reload();
          }}
        />
      )}
    </div>
  );
}

function ChannelRow({ channel, last, onSent }: { channel: AlertChannel; last: AlertDelivery | undefined; onSent: () => void }) {
  const [sending, setSending] = useState(false);
  const [result, setResult] = useState<AlertDelivery | null>(null);
  const [error, setError] = useState<unknown>(null);
  const failing = last !== undefined && (last.status === 'failed' || last.status === 'given_up');

  const send = async () => {
    setSending(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api.post<AlertDelivery>(`/api/alerts/channels/${seg(channel.name)}/test`));
      onSent();
    } catch (thrown) {
      setError(thrown);
    } finally {
      setSending(false);
    }
  };

  return (
    <tr className={failing ? 'row-bad' : undefined} data-channel={channel.name}>
      <th scope="row" className="nowrap">
        {channel.name}
        {channel.origin === 'api' && <span className="tag">API</span>}
      </th>
      <td>{CHANNEL_TYPES[channel.type]}</td>
      <td className="mono small break">{channel.target}</td>
      <td>
        {last ? (
          <span className="stack">
            <span>
              <DeliveryBadge status={last.status} /> <span className="muted small">{formatRelative(last.createdAt)}</span>
            </span>
            {failing && last.lastError && <span className="error-text">{last.lastError}</span>}
          </span>
        ) : (
          <span className="muted">None yet</span>
        )}
      </td>
      <td className="actions-cell">
        <button type="button" className="button small" onClick={() => void send()} disabled={sending} aria-label={`Send test alert to ${channel.name}`}>
          {sending ? 'Sending…' : 'Send test alert'}
        </button>
        <div role="status" aria-label={`Test result for ${channel.name}`} className="test-result">
          {result?.status === 'sent' && <span className="good-text">Delivered (delivery {result.id})</span>}
          {result && result.status !== 'sent' && <span className="error-text">Not delivered: {result.lastError}</span>}
          {error !== null && <span className="error-text">{errorMessage(error)}</span>}
        </div>
      </td>
    </tr>
  );
}

function thresholdsInWords(rule: AlertRule): string {
  const parts: string[] = [];
  if (rule.on.includes('rejected_rows')) parts.push(rule.rejectedPercent > 0 ? `rejected > ${rule.rejectedPercent}%` : 'any rejected row');
  if (rule.slowerThanMinutes !== null) parts.push(`slower than ${rule.slowerThanMinutes} min`);
  return parts.length > 0 ? parts.join('; ') : '—';
}

function RuleRow({ rule, onEdit, onDeleted }: { rule: AlertRule; onEdit: () => void; onDeleted: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const remove = async () => {
    if (!window.confirm(`Delete alert rule "${rule.name}"?`)) return;
    try {
      await api.delete(`/api/alerts/rules/${seg(rule.name)}`);
      onDeleted();
    } catch (thrown) {
      setError(thrown);
    }
  };
  return (
    <tr data-rule={rule.name}>
      <th scope="row" className="nowrap">
        {rule.name}
        {rule.origin === 'api' && <span className="tag">API</span>}
      </th>
      <td>
        {rule.on.map((e) => (
          <span key={e} className="tag">
            {EVENT_LABELS[e]}
          </span>
        ))}
      </td>
      <td>
        {rule.workspaceDefault ? (
          <span className="muted">Workspace default</span>
        ) : (
          <>
            {rule.syncs.map((s) => (
              <div key={`sync-${s}`}>
                <a href={href.sync(s)}>{s}</a> <span className="muted small">sync</span>
              </div>
            ))}
            {rule.sequences.map((s) => (
              <div key={`sequence-${s}`}>
                <a href={href.sequence(s)}>{s}</a> <span className="muted small">sequence</span>
              </div>
            ))}
          </>
        )}
      </td>
      <td>{thresholdsInWords(rule)}</td>
      <td>{rule.channels.join(', ')}</td>
      <td className="actions-cell">
        <button type="button" className="button small" onClick={onEdit} aria-label={`Edit rule ${rule.name}`}>
          Edit
        </button>{' '}
        <button type="button" className="button small danger" onClick={() => void remove()} aria-label={`Delete rule ${rule.name}`}>
          Delete
        </button>
        {error !== null && <div className="error-text">{errorMessage(error)}</div>}
      </td>
    </tr>
  );
}

function DeliveryRow({ delivery: d }: { delivery: AlertDelivery }) {
  const bad = d.status === 'failed' || d.status === 'given_up';
  const runLink = d.run ? href.run(d.run.kind, d.run.id) : null;
  return (
    <tr className={bad ? 'row-bad' : undefined} data-delivery={d.id}>
      <td className="nowrap">
        <time dateTime={d.createdAt} title={formatTime(d.createdAt)}>
          {formatRelative(d.createdAt)}
        </time>
      </td>
      <td>
        <div>{EVENT_LABELS[d.event as AlertEvent | 'test'] ?? d.event}</div>
        <div className="muted small">{d.title}</div>
      </td>
      <td>
        {d.subject ? (
          <>
            {d.subject.kind} <a href={d.subject.kind === 'sync' ? href.sync(d.subject.slug) : href.sequence(d.subject.slug)}>{d.subject.slug}</a>
            {runLink && (
              <div className="small">
                <a href={runLink}>run {d.run?.kind === 'sync' ? `#${d.run.id}` : d.run?.id.slice(0, 8)}</a>
              </div>
            )}
          </>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td>{d.channel}</td>
      <td>
        <DeliveryBadge status={d.status} />
        {d.status === 'failed' && d.nextAttemptAt && <div className="muted small">next try {formatTime(d.nextAttemptAt)}</div>}
      </td>
      <td className="num">{d.attempts}</td>
      <td className="error-cell">{d.lastError ? <span className="error-text">{d.lastError}</span> : <span className="muted">—</span>}</td>
    </tr>
  );
}

interface RuleForm {
  name: string;
  on: AlertEvent[];
  syncs: string[];
  sequences: string[];
  rejectedPercent: string;
  slowerThanMinutes: string;
  channels: string[];
}

function RuleDialog(props: { rule: AlertRule | null; channels: AlertChannel[]; onClose: () => void; onSaved: (rule: AlertRuleWithWarning) => void }) {
  const { rule } = props;
  const workspace = useApi<Workspace>('/api/workspace');
  const id = useId();
  const [form, setForm] = useState<RuleForm>(() => ({
    name: rule?.name ?? '',
    on: rule?.on ?? ['sync_failed', 'sequence_failed', 'recovered'],
    syncs: rule?.syncs ?? [],
    sequences: rule?.sequences ?? [],
    rejectedPercent: rule && rule.on.includes('rejected_rows') ? String(rule.rejectedPercent) : '',
    slowerThanMinutes: rule?.slowerThanMinutes === null || rule === null ? '' : String(rule.slowerThanMinutes),
    channels: rule?.channels ?? (props.channels.length === 1 ? [props.channels[0]!.name] : []),
  }));
  const [details, setDetails] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  const errors = fieldErrors(details);

  const toggle = <K extends 'on' | 'syncs' | 'sequences' | 'channels'>(key: K, value: RuleForm[K][number]) =>
    setForm((f) => {
      const list = f[key] as string[];
      return { ...f, [key]: list.includes(value) ? list.filter((v) => v !== value) : [...list, value] };
    });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setDetails({});
    setError(null);
    const body: AlertRuleInput = { name: form.name.trim(), on: form.on, channels: form.channels };
    if (form.syncs.length > 0) body.syncs = form.syncs;
    if (form.sequences.length > 0) body.sequences = form.sequences;
    if (form.rejectedPercent.trim() !== '') body.rejectedPercent = Number(form.rejectedPercent);
    if (form.slowerThanMinutes.trim() !== '') body.slowerThanMinutes = Number(form.slowerThanMinutes);
    try {
      const saved = rule ? await api.put<AlertRuleWithWarning>(`/api/alerts/rules/${seg(rule.name)}`, body) : await api.post<AlertRuleWithWarning>('/api/alerts/rules', body);
      props.onSaved(saved);
    } catch (thrown) {
      if (thrown instanceof ApiError && thrown.status === 422) setDetails(thrown.details);
      else setError(thrown);
    } finally {
      setSaving(false);
    }
  };

  const claimed = ['name', 'on', 'syncs', 'sequences', 'rejectedPercent', 'slowerThanMinutes', 'channels'];
  const listError = (key: string) => errors.get(key) ?? errors.unclaimed(claimed.filter((c) => c !== key)).find(([k]) => k.startsWith(`${key}.`))?.[1];
  const syncs = workspace.data?.syncs.map((s) => s.slug) ?? [];
  const sequences = workspace.data?.sequences.map((s) => s.slug) ?? [];

  return (
    <Dialog title={rule ? `Edit rule ${rule.name}` : 'Add alert rule'} onClose={props.onClose} wide>
      <form onSubmit={(e) => void submit(e)} aria-label="Alert rule" noValidate>
        {rule?.origin === 'file' && (
          <p className="banner banner-info">This rule comes from the workspace files: a change made here lasts until the next lockstep apply. Edit the file to keep it.</p>
        )}
        <div className="field">
          <label htmlFor={`${id}-name`}>Name</label>
          <input id={`${id}-name`} value={form.name} disabled={rule !== null} onChange={(e) => setForm((f) => ({ ...f, name: e.target.value }))} placeholder="e.g. crm-pager" />
          <FieldError message={errors.get('name')} />
        </div>
        <fieldset>
          <legend>Notify on</legend>
          {ALERT_EVENTS.map((e) => (
            <ChipCheck key={e} checked={form.on.includes(e)} onToggle={() => toggle('on', e)}>
              {EVENT_LABELS[e]}
            </ChipCheck>
          ))}
          <FieldError message={listError('on')} />
        </fieldset>
        <div className="row">
          <div className="field">
            <label htmlFor={`${id}-percent`}>Rejected rows over (%)</label>
            <input id={`${id}-percent`} type="number" min={0} max={100} step="any" value={form.rejectedPercent} onChange={(e) => setForm((f) => ({ ...f, rejectedPercent: e.target.value }))} placeholder="0 (any)" />
            <FieldError message={errors.get('rejectedPercent')} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-slow`}>Slower than (minutes)</label>
            <input id={`${id}-slow`} type="number" min={1} step="any" value={form.slowerThanMinutes} onChange={(e) => setForm((f) => ({ ...f, slowerThanMinutes: e.target.value }))} placeholder="no limit" />
            <FieldError message={errors.get('slowerThanMinutes')} />
          </div>
        </div>
        <fieldset>
          <legend>Watches</legend>
          <p className="hint">Choose syncs and sequences, or none to make this the workspace default: it then watches every sync and sequence, for the events no rule naming it lists.</p>
          {workspace.loading && !workspace.data && <Loading />}
          <SlugChecks label="Syncs" slugs={syncs} checked={form.syncs} onToggle={(s) => toggle('syncs', s)} />
          <FieldError message={listError('syncs')} />
          <SlugChecks label="Sequences" slugs={sequences} checked={form.sequences} onToggle={(s) => toggle('sequences', s)} />
          <FieldError message={listError('sequences')} />
        </fieldset>
        <fieldset>
          <legend>Send to</legend>
          {props.channels.map((c) => (
            <ChipCheck key={c.name} checked={form.channels.includes(c.name)} onToggle={() => toggle('channels', c.name)}>
              {c.name} <span className="muted small">{CHANNEL_TYPES[c.type]}</span>
            </ChipCheck>
          ))}
          <FieldError message={listError('channels')} />
        </fieldset>
        {errors.unclaimed(claimed).length > 0 && (
          <div className="banner banner-error" role="alert">
            <ul>
              {errors.unclaimed(claimed).map(([k, v]) => (
                <li key={k}>
                  <code>{k}</code>: {v}
                </li>
              ))}
            </ul>
          </div>
        )}
        <ErrorBanner error={error} title="Could not save the rule" />
        <div className="dialog-actions">
          <button type="button" className="button" onClick={props.onClose}>
            Cancel
          </button>{' '}
          <button type="submit" className="button primary" disabled={saving}>
            {saving ? 'Saving…' : rule ? 'Save rule' : 'Add rule'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function ChipCheck({ checked, onToggle, children }: { checked: boolean; onToggle: () => void; children: ReactNode }) {
  return (
    <label className="chip-check">
      <input type="checkbox" checked={checked} onChange={onToggle} />
      {children}
    </label>
  );
}

/** A rule's choice among the syncs or the sequences (`label`); nothing when there are none. */
function SlugChecks({ label, slugs, checked, onToggle }: { label: string; slugs: string[]; checked: string[]; onToggle: (slug: string) => void }) {
  if (slugs.length === 0) return null;
  return (
    <div>
      <span className="muted small">{label} </span>
      {slugs.map((s) => (
        <ChipCheck key={s} checked={checked.includes(s)} onToggle={() => onToggle(s)}>
          {s}
        </ChipCheck>
      ))}
    </div>
  );
}

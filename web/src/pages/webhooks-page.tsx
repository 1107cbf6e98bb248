/**
 * The Webhooks page: how to point dbt Cloud and Fivetran at this server, and the log of their
 * deliveries — what each one started, or why it started nothing.
 */
import { useEffect, useState } from 'react';
import type { WebhookEvent, WebhookEventPage, WebhookOutcome } from '../api-types.js';
import { EmptyState, ErrorBanner, Loading, Pager } from '../components/ui.js';
import { formatRelative, formatTime } from '../format.js';
import { useApi } from '../hooks.js';
import { href } from '../router.js';

const PAGE_SIZE = 20;
/** The log is refreshed this often while the page is open, ms. */
const REFRESH_MS = 5000;

const OUTCOME_TONES: Record<WebhookOutcome, string> = { accepted: 'good', rejected: 'bad', ignored: 'muted', duplicate: 'warn' };
const OUTCOME_LABELS: Record<WebhookOutcome, string> = { accepted: 'Accepted', rejected: 'Rejected', ignored: 'Ignored', duplicate: 'Duplicate' };
const SOURCE_LABELS: Record<WebhookEvent['source'], string> = { dbt_cloud: 'dbt Cloud', fivetran: 'Fivetran' };

export function WebhooksPage() {
  const [source, setSource] = useState<WebhookEvent['source'] | ''>('');
  const [offset, setOffset] = useState(0);
  const events = useApi<WebhookEventPage>(`/api/webhook-events?limit=${PAGE_SIZE}&offset=${offset}${source ? `&source=${source}` : ''}`, { live: true });
  const { reload } = events;
  const origin = window.location.origin;

  useEffect(() => {
    document.title = 'Webhooks · Lockstep';
  }, []);
  useEffect(() => {
    const timer = window.setInterval(reload, REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [reload]);

  return (
    <div className="page">
      <header className="page-header">
        <div>
          <h1>Webhooks</h1>
          <p className="subtitle">dbt Cloud and Fivetran tell Lockstep when a job or a connector sync finished, and the syncs and sequences scheduled after it start.</p>
        </div>
      </header>

      <div className="connect-grid">
        <section className="card" aria-labelledby="dbt-title">
          <h2 id="dbt-title">Connect dbt Cloud</h2>
          <dl className="endpoint">
            <dt>Endpoint URL</dt>
            <dd>
              <code data-endpoint="dbt_cloud">{`${origin}/api/v1/webhooks/dbt-cloud`}</code>
            </dd>
          </dl>
          <ol className="steps">
            <li>
              In dbt Cloud, open <strong>Account settings → Webhooks → Create webhook</strong>, choose the event <strong>Run completed</strong> and the jobs, and
              paste the endpoint URL.
            </li>
            <li>
              dbt Cloud shows a <strong>secret</strong> once: put it in an environment variable of the server and name it in the workspace:
              <pre>{`webhooks:\n  dbtCloud: { secret: "\${DBT_CLOUD_WEBHOOK_SECRET}" }`}</pre>
            </li>
            <li>
              Schedule syncs or sequences on the job: <code>{'schedule: { type: dbt_cloud, accountId: "43", jobId: "101" }'}</code>, then run{' '}
              <code>lockstep apply</code>.
            </li>
          </ol>
          <p className="hint">A successful run of the job starts them; failed runs and other events are logged as ignored.</p>
        </section>
        <section className="card" aria-labelledby="fivetran-title">
          <h2 id="fivetran-title">Connect Fivetran</h2>
          <dl className="endpoint">
            <dt>Endpoint URL</dt>
            <dd>
              <code data-endpoint="fivetran">{`${origin}/api/v1/webhooks/fivetran`}</code>
            </dd>
          </dl>
          <ol className="steps">
            <li>
              Create a webhook for the <strong>sync_end</strong> event with Fivetran's REST API (<code>POST /v1/webhooks/account</code> or per group), with the
              endpoint URL as <code>url</code> and a <code>secret</code> of your choice.
            </li>
            <li>
              Give Lockstep the same secret:
              <pre>{`webhooks:\n  fivetran: { secret: "\${FIVETRAN_WEBHOOK_SECRET}" }`}</pre>
            </li>
            <li>
              Schedule syncs or sequences on the connector: <code>{'schedule: { type: fivetran, connectorId: "warehouse_pg" }'}</code>, then run{' '}
              <code>lockstep apply</code>.
            </li>
          </ol>
          <p className="hint">A sync_end with status SUCCESSFUL starts them; deliveries are checked against X-Fivetran-Signature-256.</p>
        </section>
      </div>

      <section className="card" aria-labelledby="log-title">
        <div className="section-header">
          <h2 id="log-title">Deliveries</h2>
          <div className="header-actions">
            <label className="inline-field">
              Source
              <select
                value={source}
                onChange={(e) => {
                  setOffset(0);
                  setSource(e.target.value as WebhookEvent['source'] | '');
                }}
              >
                <option value="">All</option>
                <option value="dbt_cloud">dbt Cloud</option>
                <option value="fivetran">Fivetran</option>
              </select>
            </label>
            <button type="button" className="button small" onClick={reload}>
              Refresh
            </button>
          </div>
        </div>
        <ErrorBanner error={events.error} title="Could not load the deliveries" />
        {events.loading && !events.data && <Loading />}
        {events.data && events.data.data.length === 0 && (
          <EmptyState title={source || offset > 0 ? 'No deliveries here' : 'No deliveries yet'}>
            <p>
              {source || offset > 0
                ? 'No deliveries match.'
                : 'Nothing has been received yet. Once dbt Cloud or Fivetran is connected, each delivery shows here — also refused ones, with why.'}
            </p>
          </EmptyState>
        )}
        {events.data && events.data.data.length > 0 && (
          <table className="table compact" aria-label="Webhook deliveries">
            <thead>
              <tr>
                <th scope="col">Received</th>
                <th scope="col">Source</th>
                <th scope="col">Event</th>
                <th scope="col">Outcome</th>
                <th scope="col">Reason</th>
                <th scope="col">Runs started</th>
              </tr>
            </thead>
            <tbody>
              {events.data.data.map((e) => (
                <tr key={e.id} data-webhook-event={e.id} className={e.outcome === 'rejected' ? 'row-bad' : undefined}>
                  <td className="nowrap">
                    <time dateTime={e.receivedAt} title={formatTime(e.receivedAt)}>
                      {formatRelative(e.receivedAt)}
                    </time>
                  </td>
                  <td className="nowrap">{SOURCE_LABELS[e.source]}</td>
                  <td className="mono small">{e.eventType ?? '—'}</td>
                  <td>
                    <span className={`badge badge-${OUTCOME_TONES[e.outcome]}`} data-outcome={e.outcome}>
                      {OUTCOME_LABELS[e.outcome]}
                    </span>
                    <div className="muted small">HTTP {e.httpStatus}</div>
                  </td>
                  <td className="reason-cell">{e.reason}</td>
                  <td>
                    {e.triggered.length === 0 ? (
                      <span className="muted">—</span>
                    ) : (
                      e.triggered.map((run) => (
                        <div key={`${run.kind}-${run.runId}`}>
                          {run.kind} <a href={run.kind === 'sync' ? href.sync(run.slug) : href.sequence(run.slug)}>{run.slug}</a>{' '}
                          <a className="small" href={href.run(run.kind, run.runId)}>
                            {run.kind === 'sync' ? `run #${run.runId}` : `run ${run.runId.slice(0, 8)}`}
                          </a>
                        </div>
                      ))
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {events.data && <Pager offset={offset} limit={PAGE_SIZE} hasMore={events.data.hasMore} count={events.data.data.length} onChange={setOffset} label="Delivery pages" />}
        {events.data && <RetentionNote page={events.data} />}
      </section>
      {events.data && events.data.refusals.length > 0 && <RefusalTotals page={events.data} />}
    </div>
  );
}

/** What the log keeps: refused deliveries (anyone can send them) only the newest few, the rest for some days. */
function RetentionNote({ page }: { page: WebhookEventPage }) {
  const { refusedKept, retentionDays } = page.retention;
  return (
    <p className="hint" data-retention>
      The log keeps the newest {refusedKept} refused deliveries (401, 413) and counts the rest below; other deliveries are kept{' '}
      {retentionDays === 0 ? 'forever' : `for ${retentionDays} days`}.
    </p>
  );
}

/** Every refused delivery ever received, counted per source and reason. */
function RefusalTotals({ page }: { page: WebhookEventPage }) {
  return (
    <section className="card" aria-labelledby="refusals-title">
      <h2 id="refusals-title">Refused deliveries</h2>
      <p className="subtitle">Deliveries without a valid signature, or too large, since the store was created; a steady stream may mean a wrong secret or someone probing the endpoint.</p>
      <table className="table compact" aria-label="Refused deliveries">
        <thead>
          <tr>
            <th scope="col">Source</th>
            <th scope="col">Reason</th>
            <th scope="col">Count</th>
            <th scope="col">Last</th>
          </tr>
        </thead>
        <tbody>
          {page.refusals.map((r) => (
            <tr key={`${r.source}-${r.reason}`} data-refusal={r.source}>
              <td className="nowrap">{SOURCE_LABELS[r.source]}</td>
              <td className="reason-cell">
                {r.reason} <span className="muted small">HTTP {r.httpStatus}</span>
              </td>
              <td className="nowrap" data-refusal-count>
                {r.count.toLocaleString('en-US')}
              </td>
              <td className="nowrap">
                <time dateTime={r.lastReceivedAt} title={`first ${formatTime(r.firstReceivedAt)}, last ${formatTime(r.lastReceivedAt)}`}>
                  {formatRelative(r.lastReceivedAt)}
                </time>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

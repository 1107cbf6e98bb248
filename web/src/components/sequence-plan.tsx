/**
 * Preview: a dry run of a sequence, shown in a dialog. Each member's plan (rows read, added,
 * changed, removed, retried, rejected before sending) and a few sample rows per kind, with changed
 * fields as before → after where the destination can be read back; a member a run would skip
 * (it waits for one whose outcome would terminate the sequence) says so. Nothing is sent and
 * nothing stored changes.
 */
import { useEffect, useState } from 'react';
import type { MemberPlan, PlanSample, SequencePlan } from '../api-types.js';
import { api, seg } from '../api.js';
import { Dialog, ErrorBanner, Loading } from './ui.js';

const SAMPLES = 5;

export function SequencePlanDialog({ slug, name, onClose }: { slug: string; name: string; onClose: () => void }) {
  const [plan, setPlan] = useState<SequencePlan | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let current = true;
    api.post<SequencePlan>(`/api/sequences/${seg(slug)}/plan`, { samples: SAMPLES }).then(
      (answer) => current && setPlan(answer),
      (thrown: unknown) => current && setError(thrown),
    );
    return () => {
      current = false;
    };
  }, [slug]);
  return (
    <Dialog title={`Preview of ${name}`} onClose={onClose} wide>
      <p className="hint">A dry run: what each member would send now. Nothing is sent, and no snapshot or run history changes.</p>
      {error !== null && <ErrorBanner error={error} title="Could not plan the sequence" />}
      {plan === null && error === null && <Loading label="Planning every member…" />}
      {plan && <PlanTables plan={plan} />}
    </Dialog>
  );
}

function PlanTables({ plan }: { plan: SequencePlan }) {
  return (
    <>
      <table className="table compact" aria-label="Plan per member">
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Member</th>
            <th scope="col">Rows read</th>
            <th scope="col">Added</th>
            <th scope="col">Changed</th>
            <th scope="col">Removed</th>
            <th scope="col">Retried</th>
            <th scope="col">Rejected</th>
          </tr>
        </thead>
        <tbody>
          {plan.members.map((m, i) => (
            <tr key={m.key} data-member={m.key}>
              <td>{i + 1}</td>
              <td>{m.key}</td>
              {m.blockedBy ? (
                <td colSpan={6} className="muted">
                  Skipped: waits for {m.blockedBy.member}
                </td>
              ) : (
                <>
                  <td>{m.querySize}</td>
                  <td>{m.added}</td>
                  <td>{m.changed}</td>
                  <td>{m.removed}</td>
                  <td>{m.retried}</td>
                  <td>{m.rejected}</td>
                </>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {plan.members.map((m) => (
        <MemberSamples key={m.key} member={m} />
      ))}
    </>
  );
}

function MemberSamples({ member }: { member: MemberPlan }) {
  const { added, changed, removed, rejected } = member.samples;
  const planned = member.added + member.changed + member.removed;
  const shown = added.length + changed.length + removed.length;
  return (
    <section aria-label={`Plan of ${member.key}`} className="plan-member">
      <h3>{member.key}</h3>
      {member.blockedBy && (
        <p className="muted">A run would skip it: it waits for {member.blockedBy.member}, whose outcome would terminate the sequence. Nothing was planned for it.</p>
      )}
      {member.error && <div className="banner banner-error">A run would fail: {member.error}</div>}
      {/* A failure's reason repeats its error, shown above. */}
      {member.terminates && (
        <div className="banner banner-error">
          The sequence would terminate here{member.error ? '' : `: ${member.terminates}`}. Members not started by then are skipped.
        </div>
      )}
      {member.status === 'planned' && planned === 0 && <p className="muted">Nothing to send: the destination is up to date.</p>}
      {(shown > 0 || rejected.length > 0) && (
        <table className="table compact" aria-label={`Sample rows of ${member.key}`}>
          <thead>
            <tr>
              <th scope="col">Change</th>
              <th scope="col">Key</th>
              <th scope="col">Fields</th>
            </tr>
          </thead>
          <tbody>
            {added.map((s) => (
              <SampleRow key={`a${JSON.stringify(s.key)}`} kind="added" sample={s} />
            ))}
            {changed.map((s) => (
              <SampleRow key={`c${JSON.stringify(s.key)}`} kind="changed" sample={s} />
            ))}
            {removed.map((s) => (
              <SampleRow key={`r${JSON.stringify(s.key)}`} kind="removed" sample={s} />
            ))}
            {rejected.map((r) => (
              <tr key={`x${r.key}`}>
                <td>rejected</td>
                <td className="mono">{r.key}</td>
                <td>{r.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {planned > shown && <p className="hint">{shown} of {planned} planned rows shown.</p>}
      {changed.some((s) => s.before === 'unavailable') && (
        <p className="hint">Changed rows show their new values: this destination cannot be read back, and the snapshot keeps only a hash of what was delivered.</p>
      )}
      {member.warnings.map((w) => (
        <div key={w} className="banner banner-warn">
          {w}
        </div>
      ))}
    </section>
  );
}

function SampleRow({ kind, sample }: { kind: string; sample: PlanSample }) {
  return (
    <tr>
      <td>{kind}</td>
      <td className="mono">{sample.key.map(String).join(', ')}</td>
      <td>
        {sample.fields.map((f) => (
          <div key={f.field} className="small">
            <span className="mono">{f.field}</span>: {sample.before === 'read' ? `${show(f.before ?? null)} → ${show(f.after)}` : show(f.after)}
          </div>
        ))}
        {sample.before === 'absent' && <div className="muted small">not in the destination yet</div>}
      </td>
    </tr>
  );
}

function show(value: string | number | boolean | null): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

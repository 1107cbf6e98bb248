/** Small building blocks shared by the pages. */
import { useEffect, useId, useLayoutEffect, useRef, type ButtonHTMLAttributes, type ReactNode } from 'react';
import { errorMessage } from '../api.js';

const STATUS_TONE: Record<string, string> = {
  success: 'good',
  done: 'good',
  warning: 'warn',
  interrupted: 'warn',
  failed: 'bad',
  cancelled: 'muted',
  skipped: 'muted',
  pending: 'idle',
  queued: 'idle',
  running: 'active',
  querying: 'active',
  processing: 'active',
  reporting: 'active',
};

const STATUS_LABEL: Record<string, string> = {
  done: 'Done',
  success: 'Success',
  warning: 'Warning',
  failed: 'Failed',
  cancelled: 'Cancelled',
  skipped: 'Skipped',
  pending: 'Pending',
  queued: 'Queued',
  running: 'Running',
  querying: 'Querying',
  processing: 'Processing',
  reporting: 'Reporting',
  interrupted: 'Interrupted',
};

export const statusTone = (status: string): string => STATUS_TONE[status] ?? 'idle';
export const statusLabel = (status: string): string => STATUS_LABEL[status] ?? status;

export function StatusBadge({ status }: { status: string }) {
  const tone = statusTone(status);
  return (
    <span className={`badge badge-${tone}`} data-status={status}>
      {tone === 'active' && <span className="pulse" aria-hidden="true" />}
      {statusLabel(status)}
    </span>
  );
}

/** An on/off switch (`role="switch"`), labelled for screen readers and tests. */
/**
 * A button that waits while an action is under way (`busy`): it takes no click then, yet keeps the
 * keyboard focus. A disabled button loses it, so a keyboard user who pressed Run now had to start
 * over from the top of the page.
 */
export function ActionButton({ busy, onClick, ...props }: ButtonHTMLAttributes<HTMLButtonElement> & { busy: boolean }) {
  return <button type="button" {...props} aria-disabled={busy || undefined} onClick={(event) => (busy ? undefined : onClick?.(event))} />;
}

/** An on/off switch; while `busy` it waits as an ActionButton does, keeping the focus. */
export function Switch(props: { checked: boolean; onChange: (checked: boolean) => void; label: string; busy?: boolean }) {
  return (
    <ActionButton
      role="switch"
      aria-checked={props.checked}
      aria-label={props.label}
      className={`switch${props.checked ? ' on' : ''}`}
      busy={props.busy ?? false}
      onClick={() => props.onChange(!props.checked)}
    >
      <span className="switch-knob" aria-hidden="true" />
      <span className="switch-text" aria-hidden="true">
        {props.checked ? 'Enabled' : 'Disabled'}
      </span>
    </ActionButton>
  );
}

/** A modal dialog on the native `<dialog>` element (focus handling and Escape for free). */
export function Dialog(props: { title: ReactNode; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const { onClose } = props;
  useLayoutEffect(() => {
    const dialog = ref.current;
    const opener = document.activeElement;
    if (dialog && !dialog.open) dialog.showModal();
    return () => {
      // The dialog goes by being removed, and the browser gives the focus back to what had it (the
      // link that opened a run) only when a dialog closes: without this, the keyboard starts over
      // at the top of the page.
      if (dialog?.open) dialog.close();
      if (opener instanceof HTMLElement && opener !== document.body && opener.isConnected) opener.focus();
    };
  }, []);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const onCancel = (event: Event) => {
      event.preventDefault();
      onClose();
    };
    dialog.addEventListener('cancel', onCancel);
    return () => dialog.removeEventListener('cancel', onCancel);
  }, [onClose]);
  return (
    <dialog
      ref={ref}
      className={`dialog${props.wide ? ' dialog-wide' : ''}`}
      aria-labelledby={titleId}
      onClick={(event) => {
        // A click on the backdrop (the dialog element itself, outside its content) closes it.
        if (event.target === ref.current) onClose();
      }}
    >
      <div className="dialog-body">
        <header className="dialog-header">
          <h2 id={titleId}>{props.title}</h2>
          <button type="button" className="icon-button" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </header>
        {props.children}
      </div>
    </dialog>
  );
}

export function ErrorBanner({ error, title }: { error: unknown; title?: string }) {
  if (error === undefined || error === null) return null;
  return (
    <div className="banner banner-error" role="alert">
      {title && <strong>{title}: </strong>}
      {errorMessage(error)}
    </div>
  );
}

export function EmptyState(props: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <section className="empty" aria-label={props.title}>
      <h2>{props.title}</h2>
      {props.children}
      {props.action && <div className="empty-action">{props.action}</div>}
    </section>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status">
      {label}
    </p>
  );
}

/** "Previous" / "Next" for a paged list. */
export function Pager(props: { offset: number; limit: number; hasMore: boolean; count: number; onChange: (offset: number) => void; label: string }) {
  if (props.offset === 0 && !props.hasMore) return null;
  return (
    <nav className="pager" aria-label={props.label}>
      <button type="button" className="button" disabled={props.offset === 0} onClick={() => props.onChange(Math.max(0, props.offset - props.limit))}>
        Previous
      </button>
      <span>
        {props.count === 0 ? 'none' : `${props.offset + 1}–${props.offset + props.count}`}
      </span>
      <button type="button" className="button" disabled={!props.hasMore} onClick={() => props.onChange(props.offset + props.limit)}>
        Next
      </button>
    </nav>
  );
}

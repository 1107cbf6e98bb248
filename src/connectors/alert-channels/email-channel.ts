/**
 * Email over SMTP (nodemailer): a plain-text message with the notice, its details and the run's link.
 */
import type { AlertChannel, AlertNotice } from '../../core/alerts.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';

export interface EmailChannelOptions {
  name: string;
  /** `smtp://user:pass@host:port` or `smtps://...` (templates resolved). */
  smtp: string;
  from: string;
  to: string[];
  timeoutMs?: number;
}

/** SMTP reply codes that mean "try again later". */
const TRANSIENT_SMTP = /^4\d\d$/;

export class EmailChannel implements AlertChannel {
  constructor(private readonly options: EmailChannelOptions) {}

  async send(notice: AlertNotice): Promise<void> {
    const timeout = this.options.timeoutMs ?? 10_000;
    // nodemailer loads with the first email sent, not with every process that could send one.
    const { default: nodemailer } = await import('nodemailer');
    const transport = nodemailer.createTransport({ ...smtpSettings(this.options.smtp, this.options.name), connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout });
    try {
      await transport.sendMail({ from: this.options.from, to: this.options.to, subject: `[Lockstep] ${notice.title}`, text: emailText(notice) });
    } catch (thrown) {
      const error = toError(thrown) as Error & { responseCode?: number; code?: string };
      const permanent = typeof error.responseCode === 'number' && error.responseCode >= 500 && !TRANSIENT_SMTP.test(String(error.responseCode));
      throw new LockstepError(permanent ? ErrorCode.Connection : ErrorCode.Transient, `email channel "${this.options.name}": ${error.message}`, {
        retryable: !permanent,
        cause: thrown,
      });
    } finally {
      transport.close();
    }
  }
}

export function emailText(notice: AlertNotice): string {
  const lines = [notice.title, '', notice.text, ''];
  for (const field of notice.fields) lines.push(`${field.label}: ${field.value}`);
  if (notice.run) lines.push('', `Open the run: ${notice.run.url}`);
  lines.push('', `Rule: ${notice.rule} · ${new Date(notice.occurredAt).toISOString()}`);
  return lines.join('\n');
}

/** Host, port, TLS and credentials from an `smtp://` or `smtps://` URL. */
function smtpSettings(url: string, name: string): { host: string; port: number; secure: boolean; auth?: { user: string; pass: string } } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LockstepError(ErrorCode.Validation, `email channel "${name}": smtp is not a URL — write e.g. smtp://user:pass@mail.example.com:587`);
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') {
    throw new LockstepError(ErrorCode.Validation, `email channel "${name}": smtp must start with smtp:// or smtps://`);
  }
  const secure = parsed.protocol === 'smtps:';
  const user = decodeURIComponent(parsed.username);
  return {
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : secure ? 465 : 587,
    secure,
    ...(user ? { auth: { user, pass: decodeURIComponent(parsed.password) } } : {}),
  };
}

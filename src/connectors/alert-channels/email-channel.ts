/**
 * Email over SMTP (nodemailer): a plain-text message with the notice, its details and the run's link.
 *
 * `smtp://` upgrades with STARTTLS when the server offers it, and must when the URL holds a user and
 * password: they are sent only encrypted. `smtps://` speaks TLS from the start (port 465). A reply of
 * 4xx is tried again; 5xx, a refused login and a certificate Lockstep does not trust are final.
 */
import type { AlertChannel, AlertNotice } from '../../core/alerts.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import { PERCENT_ENCODE_HINT, splitsUserInfo } from '../../core/url-setting.js';

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
    const settings = smtpSettings(this.options.smtp, this.options.name);
    const transport = nodemailer.createTransport({
      ...settings,
      // A user and password never go over a connection STARTTLS did not encrypt.
      requireTLS: !settings.secure && settings.auth !== undefined,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
    let info: SentInfo;
    try {
      info = (await transport.sendMail({ from: this.options.from, to: this.options.to, subject: `[Lockstep] ${notice.title}`, text: emailText(notice) })) as SentInfo;
    } catch (thrown) {
      throw smtpFailure(toError(thrown), `email channel "${this.options.name}"`, settings);
    } finally {
      transport.close();
    }
    const refused = info.rejectedErrors ?? [];
    if (refused.length > 0) throw partlyRefused(`email channel "${this.options.name}"`, info.accepted ?? [], refused);
  }
}

/** What nodemailer answers when the server took the message (the subset used). */
interface SentInfo {
  accepted?: Array<string | { address: string }>;
  /** Recipients the server refused at RCPT TO while it took the message for the others. */
  rejectedErrors?: Array<Error & { recipient?: string; response?: string; responseCode?: number }>;
}

/**
 * The server took the message for some recipients and refused others: said, naming them. A 4xx
 * refusal is tried again (for every recipient: the others may get it twice rather than one losing it).
 */
function partlyRefused(what: string, accepted: NonNullable<SentInfo['accepted']>, refused: NonNullable<SentInfo['rejectedErrors']>): LockstepError {
  const sentTo = accepted.map((a) => (typeof a === 'string' ? a : a.address)).join(', ');
  const temporary = refused.some((e) => TRANSIENT_SMTP.test(String(e.responseCode)));
  const reasons = refused.map((e) => `${e.recipient ?? '?'} ${temporary ? 'for now ' : ''}(${e.response ?? e.message})`).join(', ');
  return temporary
    ? new LockstepError(ErrorCode.Transient, `${what}: sent to ${sentTo}, but the server refused ${reasons}; tried again`, { retryable: true })
    : new LockstepError(ErrorCode.Connection, `${what}: sent to ${sentTo}, but the server refused ${reasons} — check the addresses in the channel's to`, { retryable: false });
}

/** Node's words for a server certificate it does not trust (X.509 verification, host name). */
const UNTRUSTED_CERTIFICATE = /certificate|altnames|self[- ]signed|unable to (verify|get)/i;
/** OpenSSL's words when what came back is not TLS (smtps:// to a plain or STARTTLS port). */
const NOT_TLS = /wrong version number|packet length too long|unknown protocol/i;

/** A send's failure as a LockstepError: what went wrong, what to do, and whether trying again may help. */
function smtpFailure(error: Error & { responseCode?: number; code?: string; command?: string }, what: string, settings: SmtpSettings): LockstepError {
  const server = `${settings.host}:${settings.port}`;
  const final = (message: string) => new LockstepError(ErrorCode.Connection, `${what}: ${message}`, { retryable: false, cause: error });
  if (error.code === 'ETLS' && error.command === 'STARTTLS') {
    return final(
      `the SMTP server ${server} offers no STARTTLS (${error.message}), and Lockstep sends the user and password only encrypted — enable STARTTLS on the server, or write smtps:// if it takes TLS at once; if it needs no login, remove the user and password from the smtp URL`,
    );
  }
  if (error.code === 'EAUTH') {
    return final(`the SMTP server ${server} refused the login (${error.message}) — check the user and password in the channel's smtp URL`);
  }
  if (typeof error.responseCode !== 'number' && UNTRUSTED_CERTIFICATE.test(error.message)) {
    return final(
      `the SMTP server ${server} has a certificate Lockstep does not trust (${error.message}) — check the server's certificate and that the URL names the host it was issued for; if a private CA signed it, start Lockstep with NODE_EXTRA_CA_CERTS=/path/to/that-ca.pem`,
    );
  }
  if (settings.secure && typeof error.responseCode !== 'number' && NOT_TLS.test(error.message)) {
    return final(
      `the SMTP server ${server} does not speak TLS at once, as smtps:// asks — write smtp:// for a server that upgrades with STARTTLS (usually port 587); smtps:// is for port 465`,
    );
  }
  const permanent = typeof error.responseCode === 'number' && error.responseCode >= 500 && !TRANSIENT_SMTP.test(String(error.responseCode));
  return new LockstepError(permanent ? ErrorCode.Connection : ErrorCode.Transient, `${what}: ${error.message}`, { retryable: !permanent, cause: error });
}

export function emailText(notice: AlertNotice): string {
  const lines = [notice.title, '', notice.text, ''];
  for (const field of notice.fields) lines.push(`${field.label}: ${field.value}`);
  if (notice.run) lines.push('', `Open the run: ${notice.run.url}`);
  lines.push('', `Rule: ${notice.rule} · ${new Date(notice.occurredAt).toISOString()}`);
  return lines.join('\n');
}

interface SmtpSettings {
  host: string;
  port: number;
  secure: boolean;
  auth?: { user: string; pass: string };
}

/** Host, port, TLS and credentials from an `smtp://` or `smtps://` URL. */
function smtpSettings(url: string, name: string): SmtpSettings {
  // The URL as its ${VAR}s gave it, so a password read from the environment may be what breaks it.
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LockstepError(ErrorCode.Validation, `email channel "${name}": smtp is not a URL — write it like smtp://user:pass@mail.example.com:587; ${PERCENT_ENCODE_HINT}`);
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') {
    throw new LockstepError(ErrorCode.Validation, `email channel "${name}": smtp must start with smtp:// or smtps://`);
  }
  if (splitsUserInfo(parsed)) {
    throw new LockstepError(ErrorCode.Validation, `email channel "${name}": smtp does not read as user:password@host:port (it has a # or a second @) — ${PERCENT_ENCODE_HINT}`);
  }
  const secure = parsed.protocol === 'smtps:';
  const user = decoded(parsed.username);
  return {
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : secure ? 465 : 587,
    secure,
    ...(user ? { auth: { user, pass: decoded(parsed.password) } } : {}),
  };
}

/** Percent-decoded text; a `%` that starts no escape (a password such as `50%off`) stays as written. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

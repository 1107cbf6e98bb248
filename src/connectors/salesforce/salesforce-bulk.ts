/**
 * Bulk API 2.0 ingest jobs, for runs too large for sObject Collections. One job's life:
 *
 *   create (POST jobs/ingest: CSV, upsert, externalIdFieldName, lineEnding LF) → Open
 *   upload (PUT jobs/ingest/{id}/batches, text/csv, once)                      → Open
 *   close (PATCH jobs/ingest/{id} state UploadComplete)                        → UploadComplete
 *   poll (GET jobs/ingest/{id}) with backoff on the injected clock             → InProgress → JobComplete | Failed | Aborted
 *   results (GET successfulResults: sf__Id; failedResults: sf__Error, only when some failed)
 *
 * Each row's outcome is found by its external id column in the results. A job that ends Failed
 * after processing some records (Salesforce keeps them written) answers those rows from its
 * results and the others as retryable; a job that ends Failed having processed none, or Aborted, or
 * that outlives `jobTimeoutMs`, is an error with Salesforce's `errorMessage`; a job that cannot be
 * completed is aborted. Each call is retried on its own when it fails transiently (a
 * retried poll does not start the job again).
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { withBackoff, type BackoffPolicy } from '../../core/backoff.js';
import { ErrorCode, LockstepError, toError } from '../../core/errors.js';
import type { Clock, Logger, RowOutcome } from '../../core/ports.js';
import { isRecord, type SalesforceClient, type SalesforceRequest } from './salesforce-client.js';

/**
 * A job's upload at most, before Salesforce's base64 encoding: it allows 150 MB encoded, and says
 * to send no more than 100 MB.
 */
export const BULK_UPLOAD_LIMIT_BYTES = 100 * 1024 * 1024;

/** Record errors that may pass when the record is sent again (a lock held by another job). */
export const RETRYABLE_RECORD_CODES = new Set(['UNABLE_TO_LOCK_ROW', 'SERVER_UNAVAILABLE', 'REQUEST_RUNNING_TOO_LONG']);

/** Job states after which nothing changes. */
const FINAL_STATES = new Set(['JobComplete', 'Failed', 'Aborted']);
/** First wait before asking a job's state, doubled each time up to POLL_MAX_MS. */
const POLL_FIRST_MS = 500;
const POLL_MAX_MS = 15_000;

/** Rows for one upsert in CSV: a header and a line per row, with each row's external id as written. */
export interface BulkRows {
  object: string;
  externalIdField: string;
  header: string[];
  /** CSV lines without line breaks, one per row. */
  lines: string[];
  /** Each row's external id cell, unquoted, as uploaded. */
  keys: string[];
  /** Ends the wait for the jobs (and aborts them) when it aborts: the run was cancelled (default: never). */
  signal?: AbortSignal;
}

export interface BulkIngestOptions {
  client: SalesforceClient;
  clock: Clock;
  logger: Logger;
  backoff: BackoffPolicy;
  /** How long a job may take from its upload to a final state. */
  jobTimeoutMs: number;
}

interface JobInfo {
  id: string;
  state: string;
  numberRecordsProcessed: number;
  numberRecordsFailed: number;
  errorMessage: string | undefined;
}

export class BulkIngest {
  constructor(private readonly options: BulkIngestOptions) {}

  /** Upserts the rows in as many jobs as their size needs (run at once); one outcome per row, in order. */
  async upsert(rows: BulkRows): Promise<RowOutcome[]> {
    const headerLine = csvLine(rows.header);
    const jobs: Array<{ start: number; end: number }> = [];
    let start = 0;
    let bytes = Buffer.byteLength(headerLine) + 1;
    rows.lines.forEach((line, i) => {
      const size = Buffer.byteLength(line) + 1;
      if (i > start && bytes + size > BULK_UPLOAD_LIMIT_BYTES) {
        jobs.push({ start, end: i });
        start = i;
        bytes = Buffer.byteLength(headerLine) + 1;
      }
      bytes += size;
    });
    if (rows.lines.length > start) jobs.push({ start, end: rows.lines.length });
    const answers = await Promise.all(
      jobs.map(({ start: from, end }) => this.runJob(rows, headerLine, from, end)),
    );
    return answers.flat();
  }

  /** One job over rows `from..end`. */
  private async runJob(rows: BulkRows, headerLine: string, from: number, end: number): Promise<RowOutcome[]> {
    const { client, clock, logger } = this.options;
    const object = rows.object;
    const created = await this.call({
      method: 'POST',
      path: 'jobs/ingest',
      what: `create a Bulk API 2.0 upsert job on ${object}`,
      json: { object, operation: 'upsert', externalIdFieldName: rows.externalIdField, contentType: 'CSV', columnDelimiter: 'COMMA', lineEnding: 'LF' },
    });
    const job = jobInfo(created, client.describe({ method: 'POST', path: 'jobs/ingest', what: 'create a Bulk API 2.0 job' }));
    const started = clock.now();
    logger.info('salesforce bulk job created', { destination: client.name, job: job.id, object, rows: end - from });
    try {
      const csv = `${headerLine}\n${rows.lines.slice(from, end).join('\n')}\n`;
      const megabytes = Buffer.byteLength(csv) / (1024 * 1024);
      await this.call(
        { method: 'PUT', path: `jobs/ingest/${job.id}/batches`, what: `upload ${end - from} rows to Bulk API job ${job.id} on ${object}`, csv, expect: 'none' },
        Math.ceil(megabytes) * 1000,
      );
      await this.call({ method: 'PATCH', path: `jobs/ingest/${job.id}`, what: `close Bulk API job ${job.id} on ${object}`, json: { state: 'UploadComplete' } });
    } catch (thrown) {
      await this.abort(job.id, object);
      throw thrown;
    }
    const final = await this.waitFor(job.id, object, started, rows.signal);
    if (final.state === 'Failed' && final.numberRecordsProcessed > 0) {
      // Salesforce stopped part-way (the daily record limit, a batch it could not process after its
      // retries): what it processed stays written, so those rows get their outcomes, and the rest is
      // sent again.
      logger.warn('salesforce bulk job failed part-way', { destination: client.name, job: job.id, processed: final.numberRecordsProcessed, error: final.errorMessage });
      const unprocessed = `Salesforce did not process this row: Bulk API job ${job.id} on ${object} ended Failed before it${final.errorMessage ? ` (${client.scrub(final.errorMessage)})` : ''}; it is sent again`;
      return this.results(rows, from, end, final, unprocessed);
    }
    if (final.state !== 'JobComplete') {
      throw new LockstepError(
        ErrorCode.Internal,
        `${client.name}: Bulk API job ${job.id} on ${object} ended ${final.state}${final.errorMessage ? `: ${client.scrub(final.errorMessage)}` : ''} — its rows were not written and are sent again on the next run${final.state === 'Aborted' ? ' (was the job aborted in Setup › Bulk Data Load Jobs?)' : ''}`,
      );
    }
    logger.info('salesforce bulk job complete', { destination: client.name, job: job.id, processed: final.numberRecordsProcessed, failed: final.numberRecordsFailed, ms: clock.now() - started });
    return this.results(rows, from, end, final);
  }

  /** Polls the job with growing waits until it is final, or aborts it after `jobTimeoutMs`. */
  private async waitFor(id: string, object: string, started: number, signal: AbortSignal | undefined): Promise<JobInfo> {
    const { clock, client, jobTimeoutMs } = this.options;
    let wait = POLL_FIRST_MS;
    for (;;) {
      try {
        await clock.sleep(wait, signal);
      } catch (thrown) {
        // Cancelled: the job is aborted in the background, so Salesforce stops working on its rows.
        if (signal?.aborted) void this.abort(id, object).catch(() => undefined);
        throw thrown;
      }
      wait = Math.min(POLL_MAX_MS, wait * 2);
      const request: SalesforceRequest = { method: 'GET', path: `jobs/ingest/${id}`, what: `read the state of Bulk API job ${id} on ${object}` };
      const info = jobInfo(await this.call(request), client.describe(request));
      if (FINAL_STATES.has(info.state)) return info;
      if (clock.now() - started > jobTimeoutMs) {
        await this.abort(id, object);
        throw new LockstepError(
          ErrorCode.Transient,
          `${client.name}: Bulk API job ${id} on ${object} was still ${info.state} after ${Math.round(jobTimeoutMs / 60_000)} minutes and was aborted — raise bulkJobTimeoutMinutes, or lower the sync's bulkJobSize; its rows are sent again on the next run`,
          { retryable: false },
        );
      }
    }
  }

  /** Each row's outcome from the job's results, found by its external id cell; a row in neither is `unprocessed`, retryable. */
  private async results(rows: BulkRows, from: number, end: number, job: JobInfo, unprocessed?: string): Promise<RowOutcome[]> {
    const outcomes: Array<RowOutcome | undefined> = new Array(end - from);
    const queue = new KeyQueue(rows.keys.slice(from, end));
    const extHeader = rows.externalIdField;
    const read = async (which: 'successfulResults' | 'failedResults', apply: (row: number, cells: string[], lead: Record<string, number>) => void) => {
      const request: SalesforceRequest = { method: 'GET', path: `jobs/ingest/${job.id}/${which}`, what: `read the ${which} of Bulk API job ${job.id} on ${rows.object}`, expect: 'text' };
      const text = (await this.call(request, 60_000)) as string;
      const records = parseResults(text, this.options.client.describe(request));
      const [header = [], ...data] = records;
      const at = Object.fromEntries(header.map((name, i) => [name, i]));
      const keyAt = header.findIndex((name) => name.toLowerCase() === extHeader.toLowerCase());
      if (keyAt < 0) {
        throw new LockstepError(ErrorCode.Internal, `${this.options.client.describe(request)} answered results without the ${extHeader} column: ${header.join(',').slice(0, 200)}`);
      }
      for (const cells of data) {
        const row = queue.take(cells[keyAt] ?? '');
        if (row !== undefined) apply(row, cells, at);
      }
    };
    const failed = job.numberRecordsFailed;
    if (job.numberRecordsProcessed - failed > 0) {
      await read('successfulResults', (row, cells, at) => {
        const id = cells[at.sf__Id ?? -1] ?? '';
        outcomes[row] = id === '' ? { ok: true } : { ok: true, id };
      });
    }
    if (failed > 0) {
      await read('failedResults', (row, cells, at) => {
        const { reason, code } = bulkError(cells[at.sf__Error ?? -1] ?? '');
        outcomes[row] = { ok: false, reason: this.options.client.scrub(reason), retryable: RETRYABLE_RECORD_CODES.has(code) || undefined };
      });
    }
    return Array.from(outcomes, (outcome) =>
      outcome ?? {
        ok: false,
        reason: unprocessed ?? `Salesforce did not process this row in Bulk API job ${job.id} (it is in neither its successful nor its failed results)`,
        retryable: true,
      },
    );
  }

  /** A call retried on its own when it fails transiently; its body on success. */
  private async call(request: SalesforceRequest, extraTimeoutMs = 0): Promise<unknown> {
    const { client, clock, backoff, logger } = this.options;
    const answer = await withBackoff(
      () => client.call(extraTimeoutMs > 0 ? { ...request, extraTimeoutMs } : request),
      {
        policy: backoff,
        clock,
        onRetry: ({ attempt, delayMs, error }) => logger.warn('salesforce bulk call failed, retrying', { destination: client.name, attempt, delayMs: Math.round(delayMs), error: error.message }),
      },
    );
    if (!answer.ok) {
      throw new LockstepError(
        answer.errorCode === 'INVALIDJOB' || answer.errorCode === 'INVALIDENTITY' ? ErrorCode.Schema : ErrorCode.Internal,
        `${client.describe(request)} answered ${answer.status} ${answer.errorCode}: ${answer.message}`,
      );
    }
    return answer.body;
  }

  /** Aborts a job left open or running; a failure to do so is only logged (the job times out in Salesforce). */
  private async abort(id: string, object: string): Promise<void> {
    const { client, logger } = this.options;
    try {
      await client.call({ method: 'PATCH', path: `jobs/ingest/${id}`, what: `abort Bulk API job ${id} on ${object}`, json: { state: 'Aborted' } });
    } catch (thrown) {
      logger.warn('salesforce bulk job could not be aborted', { destination: client.name, job: id, error: toError(thrown).message });
    }
  }
}

/** Row numbers by external id cell, each handed out once: exact text first, then case-insensitively (as Salesforce matches). */
class KeyQueue {
  private readonly exact = new Map<string, number[]>();
  private readonly folded = new Map<string, number[]>();

  constructor(private readonly keys: readonly string[]) {
    keys.forEach((key, row) => {
      push(this.exact, key, row);
      push(this.folded, key.toLowerCase(), row);
    });
  }

  take(key: string): number | undefined {
    const exact = this.exact.get(key)?.shift();
    const row = exact ?? this.folded.get(key.toLowerCase())?.shift();
    if (row === undefined) return undefined;
    // The row leaves the other index too.
    const own = this.keys[row] as string;
    const other = exact !== undefined ? this.folded.get(own.toLowerCase()) : this.exact.get(own);
    const at = other?.indexOf(row) ?? -1;
    if (at >= 0) other?.splice(at, 1);
    return row;
  }
}

function push(map: Map<string, number[]>, key: string, row: number): void {
  const list = map.get(key);
  if (list) list.push(row);
  else map.set(key, [row]);
}

function jobInfo(body: unknown, what: string): JobInfo {
  if (!isRecord(body) || typeof body.id !== 'string' || typeof body.state !== 'string') {
    throw new LockstepError(ErrorCode.Internal, `${what} answered something that is not a Bulk API job (no id and state): ${JSON.stringify(body)?.slice(0, 200)}`);
  }
  return {
    id: body.id,
    state: body.state,
    numberRecordsProcessed: typeof body.numberRecordsProcessed === 'number' ? body.numberRecordsProcessed : 0,
    numberRecordsFailed: typeof body.numberRecordsFailed === 'number' ? body.numberRecordsFailed : 0,
    errorMessage: typeof body.errorMessage === 'string' && body.errorMessage !== '' ? body.errorMessage : undefined,
  };
}

function parseResults(text: string, what: string): string[][] {
  try {
    return parseCsv(text, { bom: true, relax_column_count: true, skip_empty_lines: true }) as string[][];
  } catch (thrown) {
    throw new LockstepError(ErrorCode.Internal, `${what} answered results that are not CSV (${toError(thrown).message}): ${text.slice(0, 200)}`);
  }
}

/** `CODE:message:fields --` (a failed-results cell) as `CODE: message`, with its code. */
export function bulkError(cell: string): { reason: string; code: string } {
  const match = /^([A-Z0-9_]+):([\s\S]*?):[^:]*--\s*$/.exec(cell);
  if (!match) return { reason: cell.trim() || 'refused by Salesforce (no sf__Error given)', code: '' };
  const [, code = '', message = ''] = match;
  return { reason: recordErrorReason(code, message), code };
}

/**
 * A record's error as its row's reason, `CODE: message`, with the fix where Salesforce's message
 * gives none: a parent named by an external id that no record has (yet) is delivered first; a
 * restricted picklist's value is one of its values.
 */
export function recordErrorReason(code: string, message: string): string {
  const reason = `${code}: ${message}`;
  if (code === 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST') {
    return (
      `${reason} — the field is a restricted picklist, which takes only the values listed for it (for the record's record type): ` +
      `map the model's values to them in its query, or add the value to the picklist in Setup › Object Manager; the row is tried again on the next run`
    );
  }
  const parent = /^Foreign key external ID: ([\s\S]*) not found for field (\w+) in entity (\w+)$/.exec(message);
  if (code !== 'INVALID_FIELD' || !parent) return reason;
  const [, value = '', field = '', entity = ''] = parent;
  return (
    `${reason} — no ${entity} has ${field} ${value} yet: deliver that ${entity} before this row (run the sync writing ${entity} first, e.g. ahead of this one in a sequence, ` +
    `and fix its row there if it was rejected); this row is sent again on every run until then`
  );
}

/** One CSV line: cells quoted when they hold a comma, a quote, a line break or edge spaces. */
export function csvLine(cells: readonly string[]): string {
  return cells.map(csvCell).join(',');
}

function csvCell(cell: string): string {
  return /[",\r\n]|^\s|\s$/.test(cell) ? `"${cell.replace(/"/g, '""')}"` : cell;
}

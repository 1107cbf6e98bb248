/**
 * `COPY (query) TO STDOUT` read straight off the connection's bytes, as batches of whole rows.
 *
 * PostgreSQL sends each row as one CopyData message. A general COPY stream (pg-copy-streams) makes
 * a Buffer per message and then joins them again; here the rows of each chunk the socket delivers
 * are copied once into one buffer, back to back, and their starts recorded: a batch of rows costs
 * two objects, not two per row. The connection's bytes are taken over the way pg-copy-streams does
 * it (the one 'data' listener of pg's parser is swapped for ours) and handed back at CopyDone or at
 * an ErrorResponse, so pg itself reads the command's end, the error and ReadyForQuery.
 *
 * States: submitted → copying (CopyOutResponse and CopyData messages parsed here) → ended (bytes
 * handed back to pg) → finished (ReadyForQuery, or an error reported by pg). The socket is paused
 * while `QUEUE_LIMIT` batches wait for the reader.
 */
import type { Readable } from 'node:stream';

/** Rows of COPY text: row i is `data[starts[i] .. starts[i + 1])`, its line break included. */
export interface CopyTextBatch {
  data: Buffer;
  starts: Int32Array;
}

/** The part of pg's Connection a submittable query uses. */
interface PgConnection {
  stream: Readable;
  query(text: string): void;
}

const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const COPY_OUT_RESPONSE = 0x48; // H
/** Messages the server may send in the middle of a COPY; skipped like pg-copy-streams does. */
const SKIPPED = new Set([COPY_OUT_RESPONSE, 0x4e /* N: notice */, 0x53 /* S: parameter status */, 0x41 /* A: notification */]);
/** Batches parsed ahead of the reader before the socket is paused. */
const QUEUE_LIMIT = 4;
const HEADER = 5;

export class CopyOut implements AsyncIterable<CopyTextBatch> {
  private connection: PgConnection | null = null;
  private pgListener: ((chunk: Buffer) => void) | null = null;
  private readonly queue: CopyTextBatch[] = [];
  private error: Error | null = null;
  private finished = false;
  private paused = false;
  private wake: (() => void) | null = null;

  // The message being read: its header bytes so far, its type and the body bytes still to come.
  private readonly header = Buffer.alloc(HEADER);
  private headerHave = 0;
  private type = 0;
  private remaining = 0;
  /** Bytes of a row that began in an earlier chunk. */
  private carry: Buffer | null = null;

  constructor(
    private readonly text: string,
    /** Rows per batch at most. */
    private readonly batchRows: number,
  ) {}

  /** Called by pg when the query's turn comes. */
  submit(connection: PgConnection): void {
    this.connection = connection;
    const listeners = connection.stream.listeners('data') as Array<(chunk: Buffer) => void>;
    if (listeners.length !== 1) throw new Error(`COPY needs the connection's only data listener, found ${listeners.length}`);
    this.pgListener = listeners[0] as (chunk: Buffer) => void;
    connection.stream.removeListener('data', this.pgListener);
    connection.stream.on('data', this.onData);
    connection.query(this.text);
  }

  handleError(error: Error): void {
    this.error ??= error;
    // A lost connection brings no ReadyForQuery: the error ends the copy.
    this.finished = true;
    this.notify();
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.finished = true;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<CopyTextBatch> {
    for (;;) {
      const batch = this.queue.shift();
      if (batch) {
        if (this.paused && this.queue.length < QUEUE_LIMIT / 2) {
          this.paused = false;
          this.connection?.stream.resume();
        }
        yield batch;
        continue;
      }
      if (this.error) throw this.error;
      if (this.finished) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private readonly onData = (chunk: Buffer): void => {
    const handBack = this.parse(chunk);
    if (handBack !== null) this.detach(handBack);
    else if (this.queue.length >= QUEUE_LIMIT && !this.paused) {
      this.paused = true;
      this.connection?.stream.pause();
    }
    this.notify();
  };

  /**
   * Parses a chunk: its complete rows are queued (with a carried row's start), the bytes of an
   * unfinished row carried. Returns the bytes to hand back to pg once the copy has ended (after
   * CopyDone, or from an ErrorResponse or any other message on), else null.
   */
  private parse(chunk: Buffer): Buffer | null {
    const carried = this.carry ? this.carry.length : 0;
    const out = Buffer.allocUnsafe(carried + chunk.length);
    if (this.carry) this.carry.copy(out, 0);
    this.carry = null;
    const starts: number[] = [0];
    let at = carried;
    let p = 0;
    let handBack: Buffer | null = null;
    while (p < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - p);
        if (this.type === COPY_DATA) at += chunk.copy(out, at, p, p + n);
        p += n;
        this.remaining -= n;
        if (this.remaining === 0 && this.type === COPY_DATA) starts.push(at);
        continue;
      }
      // A message's header, possibly split between chunks.
      const headerStart = p - this.headerHave;
      while (this.headerHave < HEADER && p < chunk.length) this.header[this.headerHave++] = chunk[p++] as number;
      if (this.headerHave < HEADER) break;
      this.headerHave = 0;
      this.type = this.header[0] as number;
      const body = this.header.readUInt32BE(1) - 4;
      if (this.type === COPY_DATA || SKIPPED.has(this.type)) {
        this.remaining = body;
        if (this.type === COPY_DATA && body === 0) starts.push(at);
        continue;
      }
      if (this.type === COPY_DONE) {
        // Its body is empty; pg reads what follows (CommandComplete, ReadyForQuery).
        handBack = chunk.subarray(p);
      } else {
        // ErrorResponse or anything else: pg reads it whole, header included.
        handBack = headerStart >= 0 ? chunk.subarray(headerStart) : Buffer.concat([this.header, chunk.subarray(p)]);
      }
      break;
    }
    const complete = starts[starts.length - 1] as number;
    if (complete < at) this.carry = Buffer.from(out.subarray(complete, at));
    this.queueRows(out, starts);
    return handBack;
  }

  /** Queues the complete rows of `out` in batches of at most `batchRows`. */
  private queueRows(out: Buffer, starts: number[]): void {
    for (let first = 0; first + 1 < starts.length; first += this.batchRows) {
      const last = Math.min(first + this.batchRows, starts.length - 1);
      const base = starts[first] as number;
      const rebased = new Int32Array(last - first + 1);
      for (let i = first; i <= last; i++) rebased[i - first] = (starts[i] as number) - base;
      this.queue.push({ data: out.subarray(base, starts[last] as number), starts: rebased });
    }
  }

  /** Gives the connection's bytes back to pg, starting with the part of the last chunk it has to read. */
  private detach(rest: Buffer): void {
    const connection = this.connection as PgConnection;
    const listener = this.pgListener as (chunk: Buffer) => void;
    connection.stream.removeListener('data', this.onData);
    connection.stream.on('data', listener);
    if (this.paused) {
      this.paused = false;
      connection.stream.resume();
    }
    if (rest.length > 0) listener(rest);
  }
}

/**
 * The API destination contract: every destination that speaks to an API (Salesforce, HubSpot, HTTP)
 * runs this suite unchanged against a fresh stand-in of its service, through the Destination port
 * only. The SQL contract (destination-contract.ts) checks tables; this one checks what an API
 * destination owes the engine whatever the service: its capabilities, per-row answers in order (with
 * stable ids where it reports them), per-row rejections carrying the service's message, a full batch
 * in one write, missing updates and deletes, schema errors at prepare, transient and garbage answers,
 * and an unreachable peer that never shows the secret.
 *
 * A kind supplies an adapter (`ApiDestinationKind`): how to open its destination on a fresh stand-in,
 * the object, key field and writable fields to use, one row the service refuses, how to read what the
 * stand-in holds and how to make it fail. Checks that cannot apply to a kind are skipped by what the
 * kind declares (its static capabilities, `checksSchema`), with the reason in the test's name.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, LockstepError } from '../../src/core/errors.js';
import { encodeKey } from '../../src/core/keys.js';
import type { Destination, DestinationCapabilities, DestinationWriter, RowOutcome, Value, WriteOperation, WriteTarget } from '../../src/core/ports.js';

/** A record as the stand-in holds it: the service's id (when it has one) and its fields by name. */
export interface PeerRecord {
  id?: string;
  fields: Record<string, unknown>;
}

/** An answer the peer gives instead of the next write's. */
export interface PeerFault {
  status: number;
  contentType: string;
  body: string;
}

/** A destination opened on a fresh stand-in, with the test's view of that stand-in. */
export interface OpenedApiDestination {
  destination: Destination;
  /** Every record the stand-in holds for the kind's object. */
  records(): PeerRecord[] | Promise<PeerRecord[]>;
  /** The next write request to the object (and only it) gets `fault` instead of its answer. */
  failNextWrite(fault: PeerFault): void;
  /** Write requests (upserts/inserts/updates) the peer has received so far, when it counts them. */
  writeRequests?(): number;
  /** Closes the destination and the stand-in (may be called after either is closed). */
  close(): Promise<void>;
}

export interface ApiDestinationKind {
  /** The kind's static capabilities (ConnectorKind.destination.capabilities): skips are decided from them. */
  capabilities: DestinationCapabilities;
  /** Opens the destination, with settings parsed as a run parses them, on a fresh stand-in. */
  open(): Promise<OpenedApiDestination>;
  /** The object (sObject, HubSpot object type, path) the suite writes to. */
  object: string;
  /** The field the model's primary key is written to, which the service matches records on. */
  keyField: string;
  /** A few writable fields besides the key. */
  fields: string[];
  /** The sync's settings for the kind (e.g. externalIdField, idProperty); default {}. */
  settings?: Record<string, unknown>;
  /** Values of `fields` for the row with `key`, in its `version`: distinct per key and per version, accepted by the service. */
  values(key: string, version: number): Value[];
  /** Values of `fields` the service refuses for one record (e.g. a required field left empty), and its message. */
  badRow: { values: (key: string) => Value[]; reason: RegExp };
  /** Whether `prepare` checks the object and its fields against the service (HTTP has no schema to check). */
  checksSchema: boolean;
  /** Whether the service refuses single rows of a batch (default true) — false skips that check. */
  rejectsRows?: boolean;
  /** Whether an update reaches the service as an update, so it can refuse one of a missing record (default true). */
  updatesByKind?: boolean;
  /** Opens (as a run opens it) a destination whose peer cannot be reached, carrying `secret`. */
  openUnreachable(): Promise<Destination>;
  /** The secret the destination carries, which no error message or row reason may show. */
  secret: string;
  /**
   * Checks the kind is known to fail today, each with why: they run as `it.fails`, so the gap stays
   * visible in the test's name and the suite says so the day the kind is fixed (remove the entry then).
   */
  knownFailures?: Partial<Record<ContractCheck, string>>;
}

/** The checks of the contract, by id (for `knownFailures`). */
export type ContractCheck =
  | 'capabilities'
  | 'maxBatchSize'
  | 'upsertTwice'
  | 'rowRejection'
  | 'fullBatch'
  | 'missingUpdate'
  | 'missingDelete'
  | 'delete'
  | 'unknownObject'
  | 'unknownField'
  | 'transient'
  | 'html'
  | 'unreachable';

const SYNC = 'api-contract';

const HTML_PAGE =
  '<!DOCTYPE html><html><head><title>Lockstep contract: down for maintenance</title></head><body>We will be back shortly.</body></html>';

function rejected(outcome: RowOutcome | undefined): string {
  expect(outcome?.ok).toBe(false);
  return outcome && !outcome.ok ? outcome.reason : '';
}

async function failure(promise: Promise<unknown>): Promise<LockstepError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockstepError);
  return error as LockstepError;
}

export function describeApiDestinationContract(name: string, kind: ApiDestinationKind): void {
  const caps = kind.capabilities;
  const ids = caps.recordIds;
  const rejectsRows = kind.rejectsRows ?? true;
  const updatesByKind = kind.updatesByKind ?? true;
  const columns = [kind.keyField, ...kind.fields];

  /** The ids the suite collected from delivered rows, answered to `target.recordIds` as the engine would. */
  const recorded = new Map<string, string>();
  const target = (over: Partial<WriteTarget> = {}): WriteTarget => ({
    object: kind.object,
    keyColumns: [kind.keyField],
    columns,
    settings: kind.settings ?? {},
    sync: SYNC,
    recordIds: async (_sync, keys) => new Map(keys.flatMap((k) => (recorded.has(k) ? [[k, recorded.get(k) as string] as [string, string]] : []))),
    ...over,
  });
  const row = (opKind: WriteOperation['kind'], key: string, version = 1): WriteOperation => ({
    kind: opKind,
    key: [key],
    values: opKind === 'delete' ? [] : [key, ...kind.values(key, version)],
  });
  /** Keeps the ids of delivered rows, as the engine records them. */
  const remember = (batch: WriteOperation[], outcomes: RowOutcome[]) => {
    outcomes.forEach((outcome, i) => {
      const op = batch[i];
      if (outcome.ok && outcome.id !== undefined && op && op.kind !== 'delete') recorded.set(encodeKey(op.key), outcome.id);
    });
  };
  const write = async (writer: DestinationWriter, batch: WriteOperation[]): Promise<RowOutcome[]> => {
    const outcomes = await writer.write(batch);
    expect(outcomes).toHaveLength(batch.length);
    for (const outcome of outcomes) if (!outcome.ok) expect(outcome.reason).not.toContain(kind.secret);
    remember(batch, outcomes);
    return outcomes;
  };
  const byKey = async (opened: OpenedApiDestination): Promise<Map<string, PeerRecord>> =>
    new Map((await opened.records()).map((r) => [String(r.fields[kind.keyField]), r]));
  const expectHolds = (record: PeerRecord | undefined, key: string, version: number) => {
    expect(record, `the stand-in holds ${key}`).toBeDefined();
    const values = kind.values(key, version);
    kind.fields.forEach((field, i) => {
      const value = values[i];
      if (value !== null && value !== undefined) expect(String(record?.fields[field]), `${field} of ${key}`).toBe(String(value));
    });
  };
  const withPeer = async (fn: (opened: OpenedApiDestination) => Promise<void>) => {
    recorded.clear();
    const opened = await kind.open();
    try {
      await fn(opened);
    } finally {
      await opened.close();
    }
  };

  /** `it`, or `it.fails` with the gap in the name when the kind is known to fail the check. */
  const check = (id: ContractCheck, skip: string | false, title: string, fn: () => Promise<void>) => {
    const gap = kind.knownFailures?.[id];
    if (gap !== undefined) it.fails(`${title} — KNOWN GAP, fails today: ${gap}`, fn);
    else it.skipIf(skip !== false)(skip === false ? title : `${title} (skipped: ${skip})`, fn);
  };

  describe(`API destination contract: ${name}`, () => {
    check('capabilities', false, `declares deletes, upsert, and recordIds ${ids ? 'true (it reports ids)' : 'false (it reports no ids)'}`, async () => {
      await withPeer(async ({ destination }) => {
        expect(destination.capabilities).toEqual(caps);
        expect(destination.capabilities).toMatchObject({ deletes: true, upsert: true, recordIds: ids });
      });
    });

    check('maxBatchSize', caps.maxBatchSize === null && 'the kind declares maxBatchSize null, no limit', 'declares maxBatchSize as a positive number', async () => {
      await withPeer(async ({ destination }) => {
        const max = destination.capabilities.maxBatchSize;
        expect(typeof max).toBe('number');
        expect(Number.isInteger(max) && (max as number) > 0).toBe(true);
      });
    });

    check('upsertTwice', false, `upserts then upserts again (insert, then update of the same keys), answering per row in order${ids ? ', each key keeping its id' : ''}`, async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        expect(await writer.write([])).toEqual([]);
        const keys = ['contract-1', 'contract-2', 'contract-3'];
        const first = await write(writer, [row('insert', keys[0] as string), row('upsert', keys[1] as string), row('upsert', keys[2] as string)]);
        expect(first.map((o) => o.ok)).toEqual([true, true, true]);
        let held = await byKey(opened);
        expect(held.size).toBe(3);
        keys.forEach((key) => expectHolds(held.get(key), key, 1));
        if (ids) {
          // Each delivered row carries the id of its own record, in order.
          first.forEach((outcome, i) => {
            expect(outcome.ok && typeof outcome.id === 'string' && outcome.id.length > 0).toBe(true);
            expect(outcome.ok ? outcome.id : undefined).toBe(held.get(keys[i] as string)?.id);
          });
          expect(new Set(first.map((o) => (o.ok ? o.id : undefined))).size).toBe(3);
        }

        // The same keys again, changed, in another order: updated in place, not duplicated.
        const again = await write(writer, [row('upsert', keys[2] as string, 2), row('update', keys[0] as string, 2), row('upsert', keys[1] as string, 2)]);
        expect(again.map((o) => o.ok)).toEqual([true, true, true]);
        held = await byKey(opened);
        expect(held.size).toBe(3);
        keys.forEach((key) => expectHolds(held.get(key), key, 2));
        if (ids) expect(again).toEqual([first[2], first[0], first[1]]);
      });
    });

    check('rowRejection', !rejectsRows && 'the service answers no row alone', 'rejects only the row the service refuses, with the service\'s message, and delivers the others', async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        const bad: WriteOperation = { kind: 'upsert', key: ['contract-bad'], values: ['contract-bad', ...kind.badRow.values('contract-bad')] };
        const outcomes = await write(writer, [row('upsert', 'contract-a'), bad, row('upsert', 'contract-b')]);
        expect(outcomes[0]?.ok).toBe(true);
        expect(rejected(outcomes[1])).toMatch(kind.badRow.reason);
        expect(outcomes[1]?.ok === false && outcomes[1].retryable).toBeFalsy();
        expect(outcomes[2]?.ok).toBe(true);
        const held = await byKey(opened);
        expect([...held.keys()].sort()).toEqual(['contract-a', 'contract-b']);
      });
    });

    check('fullBatch', caps.maxBatchSize === null && 'the kind declares maxBatchSize null, no limit', 'delivers a batch of exactly maxBatchSize rows in one write', async () => {
      await withPeer(async (opened) => {
        const max = opened.destination.capabilities.maxBatchSize as number;
        const writer = await opened.destination.prepare(target({ batchSize: max }));
        const batch = Array.from({ length: max }, (_, i) => row('upsert', `contract-batch-${i}`));
        const before = opened.writeRequests?.();
        const outcomes = await write(writer, batch);
        expect(outcomes.every((o) => o.ok)).toBe(true);
        if (before !== undefined) expect((opened.writeRequests?.() ?? 0) - before).toBe(1);
        const held = await byKey(opened);
        expect(held.size).toBe(max);
        expectHolds(held.get(`contract-batch-${max - 1}`), `contract-batch-${max - 1}`, 1);
        if (ids) {
          batch.forEach((op, i) => expect(outcomes[i]).toEqual({ ok: true, id: held.get(String(op.key[0]))?.id }));
        }
      });
    });

    check('missingUpdate', !updatesByKind && 'the kind sends an update as the same request as an upsert, so the service cannot tell one from the other', 'rejects an update of a missing record, naming its key', async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        const outcomes = await write(writer, [row('update', 'contract-missing'), row('upsert', 'contract-here')]);
        expect(rejected(outcomes[0])).toContain('contract-missing');
        expect(outcomes[1]?.ok).toBe(true);
        expect([...(await byKey(opened)).keys()]).toEqual(['contract-here']);
      });
    });

    check('missingDelete', false, 'accepts a delete of a record that is not there (never was, or deleted twice)', async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        const delivered = await write(writer, [row('upsert', 'contract-here')]);
        expect(delivered[0]?.ok).toBe(true);
        expect(await write(writer, [row('delete', 'contract-gone'), row('delete', 'contract-here')])).toEqual([{ ok: true }, { ok: true }]);
        // The same batch again (sent twice after a lost answer): both records are gone, both deletes accepted.
        expect(await write(writer, [row('delete', 'contract-gone'), row('delete', 'contract-here')])).toEqual([{ ok: true }, { ok: true }]);
        expect((await byKey(opened)).size).toBe(0);
      });
    });

    check('delete', false, 'deletes a delivered record (by the ids recorded for it, where the kind reports ids), leaving the others', async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        const delivered = await write(writer, [row('upsert', 'contract-d1'), row('upsert', 'contract-d2')]);
        expect(delivered.map((o) => o.ok)).toEqual([true, true]);
        if (ids) expect(recorded.size).toBe(2);
        const outcomes = await write(writer, [row('delete', 'contract-d1')]);
        expect(outcomes).toEqual([{ ok: true }]);
        expect([...(await byKey(opened)).keys()]).toEqual(['contract-d2']);
      });
    });

    check('unknownObject', !kind.checksSchema && 'the kind has no schema to check at prepare', 'refuses an unknown object at prepare with a fatal schema error naming it', async () => {
      await withPeer(async ({ destination }) => {
        const error = await failure(destination.prepare(target({ object: 'lockstep_no_such_object' })));
        expect(error.code).toBe(ErrorCode.Schema);
        expect(error.retryable).toBe(false);
        expect(error.message).toContain('lockstep_no_such_object');
        expect(error.message).not.toContain(kind.secret);
      });
    });

    check('unknownField', !kind.checksSchema && 'the kind has no schema to check at prepare', 'refuses an unknown field at prepare with a fatal schema error naming it', async () => {
      await withPeer(async ({ destination }) => {
        const error = await failure(destination.prepare(target({ columns: [...columns, 'lockstep_no_such_field'] })));
        expect(error.code).toBe(ErrorCode.Schema);
        expect(error.retryable).toBe(false);
        expect(error.message).toContain('lockstep_no_such_field');
        expect(error.message).not.toContain(kind.secret);
      });
    });

    check('transient', false, 'answers a 5xx on a write with a retryable error (or retryable rows), never a crash, and delivers once the peer is back', async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        opened.failNextWrite({ status: 503, contentType: 'text/plain', body: 'Service Unavailable' });
        const batch = [row('upsert', 'contract-t1'), row('upsert', 'contract-t2')];
        const answer = await writer.write(batch).then(
          (outcomes) => ({ outcomes }),
          (error: unknown) => ({ error }),
        );
        if ('error' in answer) {
          expect(answer.error).toBeInstanceOf(LockstepError);
          const error = answer.error as LockstepError;
          expect(error.retryable).toBe(true);
          expect(error.message).toMatch(/503/);
          expect(error.message).not.toContain(kind.secret);
        } else {
          expect(answer.outcomes).toHaveLength(2);
          for (const outcome of answer.outcomes) expect(outcome).toMatchObject({ ok: false, retryable: true });
        }
        const retried = await write(writer, batch);
        expect(retried.map((o) => o.ok)).toEqual([true, true]);
        expect((await byKey(opened)).size).toBe(2);
      });
    });

    check('html', false, 'answers an HTML page on 200 with an error naming what came back', async () => {
      await withPeer(async (opened) => {
        const writer = await opened.destination.prepare(target());
        opened.failNextWrite({ status: 200, contentType: 'text/html; charset=utf-8', body: HTML_PAGE });
        const error = await failure(writer.write([row('upsert', 'contract-h1')]));
        // What came back: a 200 that is an HTML page, not the JSON the service answers.
        expect(error.message).toMatch(/HTML page|not JSON/i);
        expect(error.message).toContain('200');
        expect(error.message).not.toContain(kind.secret);
      });
    });

    check('unreachable', false, 'reports an unreachable peer as a fatal connection error that never shows the secret', async () => {
      // A kind may fail when it opens (a login) or at its first request (prepare, then write).
      const reach = async () => {
        const destination = await kind.openUnreachable();
        try {
          const writer = await destination.prepare(target());
          await writer.write([row('upsert', 'contract-u1')]);
        } finally {
          await destination.close();
        }
      };
      const error = await failure(reach());
      expect(error.message).not.toContain(kind.secret);
      expect(error.retryable).toBe(false);
      expect(error.code).toBe(ErrorCode.Connection);
    });
  });
}

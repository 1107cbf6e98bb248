/**
 * The Store contract, one suite per role of the port (src/core/ports.ts): the workspace, the run
 * queue, snapshots and record ids, sequence runs, schedules, the outbox of finished runs, tokens,
 * secrets at rest, the webhook delivery log and the alert outbox. A store's test file runs every one of them against
 * an `open` that opens a fresh, empty store: `for (const describeContract of STORE_CONTRACTS)
 * describeContract('sqlite', open)`. The suites test through the port only; nothing in them knows
 * which database is behind it (the secrets suite reads what the store keeps through the `raw` its
 * `open` gives).
 */
import { describeAlertOutboxContract } from './alert-outbox.contract.js';
import { describeFinishedRunsContract } from './finished-runs.contract.js';
import type { DescribeStoreContract } from './fixtures.js';
import { describeRunQueueContract } from './run-queue.contract.js';
import { describeScheduleStoreContract } from './schedule-store.contract.js';
import { describeSecretsContract } from './secrets.contract.js';
import { describeSequenceResumeContract } from './sequence-resume.contract.js';
import { describeSequenceRunStoreContract } from './sequence-run-store.contract.js';
import { describeSnapshotStoreContract } from './snapshot-store.contract.js';
import { describeTokenStoreContract } from './token-store.contract.js';
import { describeWebhookStoreContract } from './webhook-store.contract.js';
import { describeWorkspaceStoreContract } from './workspace-store.contract.js';

export const STORE_CONTRACTS: readonly DescribeStoreContract[] = [
  describeWorkspaceStoreContract,
  describeTokenStoreContract,
  describeRunQueueContract,
  describeSequenceRunStoreContract,
  describeSequenceResumeContract,
  describeFinishedRunsContract,
  describeSnapshotStoreContract,
  describeScheduleStoreContract,
  describeSecretsContract,
  describeWebhookStoreContract,
  describeAlertOutboxContract,
];

export type { DescribeStoreContract, OpenStore, StoreUnderTest } from './fixtures.js';

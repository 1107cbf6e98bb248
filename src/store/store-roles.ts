/**
 * The Store port's workspace, sync-run and sequence-run roles, as a store implementation hands
 * them to the role objects it builds on its database (SqliteStore, PostgresStore): each extends
 * this and sets the three roles; what spans roles in one transaction stays its own.
 */
import type { AlertsDefinition } from '../core/alerts.js';
import type {
  LeaseRequest,
  MemberStart,
  NewSyncRun,
  RunFence,
  SequenceRunListQuery,
  SequenceRunStore,
  SyncRunListQuery,
  SyncRunPatch,
  SyncRunStore,
  WorkspaceStore,
} from '../core/ports.js';
import type { RejectedRow, SequenceRunStatus, Trigger } from '../core/runs.js';
import type { SecretResealer } from '../core/secrets.js';
import type { SequenceAdvanceState, SequenceDecision, SequenceResumeDecision, SequenceResumeState } from '../core/sequence-rules.js';
import type { EntityDefs, EntityKind, EntityOrigin, SequenceRecord, WorkspaceDefinition } from '../core/workspace.js';

export abstract class StoreRoles implements WorkspaceStore, SyncRunStore, SequenceRunStore, SecretResealer {
  protected abstract readonly workspace: WorkspaceStore & SecretResealer;
  protected abstract readonly syncRuns: SyncRunStore;
  protected abstract readonly sequenceRuns: SequenceRunStore;


  loadWorkspace() { return this.workspace.loadWorkspace(); }
  planWorkspace(definition: WorkspaceDefinition) { return this.workspace.planWorkspace(definition); }
  applyWorkspace(definition: WorkspaceDefinition, now: number) { return this.workspace.applyWorkspace(definition, now); }
  updateAlerts(update: (current: AlertsDefinition) => AlertsDefinition, now: number) { return this.workspace.updateAlerts(update, now); }
  getSync(ref: number | string) { return this.workspace.getSync(ref); }
  getSequence(ref: number | string) { return this.workspace.getSequence(ref); }
  slugsById(kind: 'sync' | 'sequence', ids: readonly number[]) { return this.workspace.slugsById(kind, ids); }
  syncsById(ids: readonly number[]) { return this.workspace.syncsById(ids); }
  deletedIdsBySlug(kind: 'sync' | 'sequence', slug: string) { return this.workspace.deletedIdsBySlug(kind, slug); }
  getModel(slug: string) { return this.workspace.getModel(slug); }
  getSource(slug: string) { return this.workspace.getSource(slug); }
  getDestination(slug: string) { return this.workspace.getDestination(slug); }
  upsertEntity<K extends EntityKind>(kind: K, definition: EntityDefs[K], origin: EntityOrigin, now: number) { return this.workspace.upsertEntity(kind, definition, origin, now); }
  deleteEntity(kind: EntityKind, slug: string, now: number) { return this.workspace.deleteEntity(kind, slug, now); }
  setEnabled(kind: 'sync' | 'sequence', id: number, enabled: boolean, now: number) { return this.workspace.setEnabled(kind, id, enabled, now); }
  resealSecrets() { return this.workspace.resealSecrets(); }

  enqueueSyncRun(input: NewSyncRun, now: number) { return this.syncRuns.enqueueSyncRun(input, now); }
  claimSyncRun(id: number, now: number, lease: LeaseRequest) { return this.syncRuns.claimSyncRun(id, now, lease); }
  claimNextSyncRun(now: number, lease: LeaseRequest) { return this.syncRuns.claimNextSyncRun(now, lease); }
  renewLeases(runIds: number[], now: number, lease: LeaseRequest) { return this.syncRuns.renewLeases(runIds, now, lease); }
  releaseLeases(workerId: string, now: number) { return this.syncRuns.releaseLeases(workerId, now); }
  listLeases() { return this.syncRuns.listLeases(); }
  updateSyncRun(id: number, patch: SyncRunPatch, now: number, attempt?: number) { return this.syncRuns.updateSyncRun(id, patch, now, attempt); }
  getSyncRun(id: number) { return this.syncRuns.getSyncRun(id); }
  listSyncRuns(query: SyncRunListQuery) { return this.syncRuns.listSyncRuns(query); }
  latestSyncRuns(perSync: number) { return this.syncRuns.latestSyncRuns(perSync); }
  listQueuedSyncRuns() { return this.syncRuns.listQueuedSyncRuns(); }
  requestSyncRunCancel(id: number, now?: number) { return this.syncRuns.requestSyncRunCancel(id, now); }
  addRejectedRows(rows: RejectedRow[], fence?: RunFence) { return this.syncRuns.addRejectedRows(rows, fence); }
  clearRejectedRows(syncRunId: number, fence?: RunFence) { return this.syncRuns.clearRejectedRows(syncRunId, fence); }
  listRejectedRows(syncRunId: number, limit: number, offset: number) { return this.syncRuns.listRejectedRows(syncRunId, limit, offset); }

  enqueueSequenceRun(sequence: SequenceRecord, trigger: Trigger, now: number) { return this.sequenceRuns.enqueueSequenceRun(sequence, trigger, now); }
  claimSequenceRun(id: string, now: number) { return this.sequenceRuns.claimSequenceRun(id, now); }
  getSequenceRun(id: string) { return this.sequenceRuns.getSequenceRun(id); }
  resumingSequenceRunId(id: string) { return this.sequenceRuns.resumingSequenceRunId(id); }
  listSequenceRuns(query: SequenceRunListQuery) { return this.sequenceRuns.listSequenceRuns(query); }
  latestSequenceRuns(perSequence: number) { return this.sequenceRuns.latestSequenceRuns(perSequence); }
  listSequenceRunsByStatus(statuses: SequenceRunStatus[]) { return this.sequenceRuns.listSequenceRunsByStatus(statuses); }
  startMembers(sequenceRunId: string, members: MemberStart[], now: number) { return this.sequenceRuns.startMembers(sequenceRunId, members, now); }
  setTermination(sequenceRunId: string, memberKey: string | null, reason: string) { return this.sequenceRuns.setTermination(sequenceRunId, memberKey, reason); }
  skipPendingMembers(sequenceRunId: string, now: number) { return this.sequenceRuns.skipPendingMembers(sequenceRunId, now); }
  finishSequenceRun(sequenceRunId: string, status: SequenceRunStatus, now: number) { return this.sequenceRuns.finishSequenceRun(sequenceRunId, status, now); }
  requestSequenceRunCancel(id: string) { return this.sequenceRuns.requestSequenceRunCancel(id); }
  advanceSequenceRun(id: string, decide: (state: SequenceAdvanceState) => SequenceDecision, now: number, claim?: { lease: LeaseRequest; max: number }) {
    return this.sequenceRuns.advanceSequenceRun(id, decide, now, claim);
  }
  resumeSequenceRun(id: string, decide: (state: SequenceResumeState) => SequenceResumeDecision, trigger: Trigger, now: number) {
    return this.sequenceRuns.resumeSequenceRun(id, decide, trigger, now);
  }
}

/**
 * Resume and run limits through Lockstep's own API, on a real server, store and runs: member
 * timeouts and a sequence deadline round-trip through create and update (bad ones are 422s naming
 * the field), a failed run is resumed with POST /api/sequence-runs/{id}/resume (finished members
 * carried over and shown so), and refusals say why with the right status, storing nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startApi, type ApiHarness } from './api-helpers.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

async function finished(id: string) {
  return eventually(async () => {
    const { body } = await api.call('GET', `/api/sequence-runs/${id}`);
    return ['done', 'failed', 'cancelled'].includes(body.status) ? body : null;
  });
}

const brokenSync = (object: string) => ({ slug: 'broken-to-crm', model: 'accounts', destination: 'crm', object, mode: 'upsert' });
const resumable = {
  slug: 'resumable',
  name: 'Resumable',
  deadlineMinutes: 30,
  members: [{ sync: 'accounts-to-crm' }, { sync: 'broken-to-crm', timeoutMinutes: 5 }],
};

describe('resume and limits through the API', () => {
  it('keeps timeoutMinutes and deadlineMinutes, and refuses bad ones naming the field', async () => {
    expect((await api.call('POST', '/api/syncs', brokenSync('missing_table'))).status).toBe(201);
    const created = await api.call('POST', '/api/sequences', resumable);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ deadlineMinutes: 30, members: [{ key: 'accounts-to-crm' }, { key: 'broken-to-crm', timeoutMinutes: 5 }] });
    expect(created.body.members[0]).not.toHaveProperty('timeoutMinutes');
    const read = await api.call('GET', '/api/sequences/resumable');
    expect(read.body).toMatchObject({ deadlineMinutes: 30, members: [{}, { timeoutMinutes: 5 }] });

    const bad = await api.call('PUT', '/api/sequences/resumable', { ...resumable, deadlineMinutes: -1, members: [{ sync: 'accounts-to-crm', timeoutMinutes: 'soon' }] });
    expect(bad.status).toBe(422);
    expect(bad.body.details).toEqual({
      deadlineMinutes: expect.stringContaining('deadlineMinutes must be more than 0 minutes, got -1'),
      'members[0].timeoutMinutes': expect.stringContaining('timeoutMinutes must be a number, got "soon"'),
    });
    // Nothing changed; null clears a limit.
    expect((await api.call('GET', '/api/sequences/resumable')).body).toMatchObject({ deadlineMinutes: 30 });
    const cleared = await api.call('PUT', '/api/sequences/resumable', { ...resumable, deadlineMinutes: null });
    expect(cleared.body).not.toHaveProperty('deadlineMinutes');
    expect((await api.call('PUT', '/api/sequences/resumable', resumable)).status).toBe(200);
  });

  it('resumes a failed run: finished members carried over and shown so, the rest run; refusals say why', async () => {
    const started = await api.call('POST', '/api/sequences/resumable/runs');
    const failed = await finished(started.body.id);
    expect(failed).toMatchObject({ status: 'failed', terminatedBy: 'broken-to-crm', resumedFrom: null });
    expect(failed.members.map((m: { status: string }) => m.status)).toEqual(['success', 'failed']);

    // The sync is fixed; the sequence's members are as they were.
    expect((await api.call('PUT', '/api/syncs/broken-to-crm', brokenSync('accounts'))).status).toBe(200);
    const resumed = await api.call('POST', `/api/sequence-runs/${failed.id}/resume`);
    expect(resumed.status).toBe(202);
    expect(resumed.body).toMatchObject({ resumedFrom: failed.id, sequence: 'resumable', trigger: 'api' });
    expect(resumed.body.members[0]).toMatchObject({ key: 'accounts-to-crm', status: 'success', carriedOver: true, syncRunId: failed.members[0].syncRunId });
    expect(resumed.body.members[1]).toMatchObject({ key: 'broken-to-crm', carriedOver: false });
    const done = await finished(resumed.body.id);
    expect(done).toMatchObject({ status: 'done', resumedFrom: failed.id });
    expect(done.members.map((m: { status: string; carriedOver: boolean }) => [m.status, m.carriedOver])).toEqual([
      ['success', true],
      ['success', false],
    ]);
    const list = await api.call('GET', '/api/sequences/resumable/runs');
    expect(list.body.data.map((r: { id: string; resumedFrom: string | null }) => [r.id, r.resumedFrom])).toEqual([
      [done.id, failed.id],
      [failed.id, null],
    ]);

    const again = await api.call('POST', `/api/sequence-runs/${failed.id}/resume`);
    expect(again.status).toBe(409);
    expect(again.body.message).toBe(`sequence run ${failed.id} was already resumed by run ${done.id} (done)`);
    const ok = await api.call('POST', `/api/sequence-runs/${done.id}/resume`);
    expect(ok.status).toBe(409);
    expect(ok.body.message).toContain('finished successfully (done); there is nothing to resume');
    const typo = `${failed.id.slice(0, -1)}${failed.id.endsWith('0') ? '1' : '0'}`;
    const unknown = await api.call('POST', `/api/sequence-runs/${typo}/resume`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toBe(`no sequence run "${typo}" (did you mean ${failed.id}?) — resume takes the id of a failed or cancelled sequence run`);
    expect((await api.call('POST', '/api/sequence-runs/resumable/resume')).status).toBe(422);
    expect((await api.call('GET', '/api/sequences/resumable/runs')).body.data).toHaveLength(2);
  });

  it('refuses to resume once the sequence\'s members changed, naming the change, and stores nothing', async () => {
    expect((await api.call('PUT', '/api/syncs/broken-to-crm', brokenSync('missing_table'))).status).toBe(200);
    const failed = await finished((await api.call('POST', '/api/sequences/resumable/runs')).body.id);
    expect(failed.status).toBe('failed');
    await api.call('PUT', '/api/sequences/resumable', { ...resumable, members: [...resumable.members, { sync: 'contacts-to-crm' }] });
    const before = (await api.call('GET', '/api/sequences/resumable/runs')).body.data.length;
    const refused = await api.call('POST', `/api/sequence-runs/${failed.id}/resume`);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(
      `the members of sequence "resumable" changed since run ${failed.id}: member "contacts-to-crm" was added — a resume needs the members the run had — start a new run with \`lockstep sequence run resumable\``,
    );
    expect((await api.call('GET', '/api/sequences/resumable/runs')).body.data).toHaveLength(before);
    const { body } = await api.call('GET', '/api/openapi.json');
    expect(Object.keys(body.paths)).toContain('/api/sequence-runs/{id}/resume');
  });
});

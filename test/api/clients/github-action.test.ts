/**
 * Client: Hightouch's GitHub Action, hightouchio/hightouch-github-action v1.0.x (action.yml @4e09c5e,
 * README.md @0106248; the first action.yml @1a73781 too). A composite action that runs curl once and
 * does not poll:
 *
 *   with sync-id:   curl --location --fail -g --request POST <base>/api/v1/syncs/trigger
 *                     --header 'Authorization: Bearer <HIGHTOUCH_API_KEY>' --header 'Content-Type: application/json'
 *                     --data-raw '{ "syncId": "<sync-id>", "fullResync": "<full-resync>" }'
 *   with sync-slug: the same with '{ "syncSlug": "<sync-slug>", "fullResync": "<full-resync>" }'
 *   (first version) curl --location -g --request POST <base>/api/v1/syncs/<sync-id>/trigger, no body
 *
 * Action inputs are strings, so the id and the flag arrive as JSON strings (`full-resync` defaults to
 * "false"). `--fail` fails the step on any status from 400; the answer's body is not read. The URL is
 * written into action.yml (https://api.hightouch.com), so the README has users run this request as a
 * step of their own, with Lockstep's address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../api-helpers.js';
import { poll, send, sendOk } from './wire.js';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(async () => {
  await api[Symbol.asyncDispose]();
});

const curl = (contentType: boolean) => ({
  Host: new URL(api.url).host,
  'User-Agent': 'curl/8.5.0',
  Accept: '*/*',
  Authorization: `Bearer ${api.token}`,
  ...(contentType ? { 'Content-Type': 'application/json' } : {}),
});

/** The stored run of a trigger's answer, once it finished (the action itself does not wait). */
async function finished(id: string) {
  return poll(async () => {
    const run = await api.app.store.getSyncRun(Number(id));
    return run && ['success', 'warning', 'failed', 'cancelled'].includes(run.status) ? run : undefined;
  });
}

describe('GitHub Action: hightouchio/hightouch-github-action v1.0.x', () => {
  it('with sync-id: syncId and fullResync as strings ("false" is the default input)', async () => {
    const answer = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncId": "1", "fullResync": "false" }' });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ id: expect.stringMatching(/^\d+$/) });
    const run = await finished(answer.body.id);
    expect(run).toMatchObject({ syncId: 1, status: 'success', options: { fullResync: false } });
  });

  it('with sync-slug and full-resync: "true"', async () => {
    const answer = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncSlug": "accounts-to-crm", "fullResync": "true" }' });
    const run = await finished(answer.body.id);
    expect(run).toMatchObject({ syncId: 1, status: 'success', options: { fullResync: true } });
    // A full resync sends every row again, though none changed.
    expect(run.successfulRows.changedCount + run.successfulRows.addedCount).toBe(3);
  });

  it("the README's step in its place: the same curl to Lockstep's address, without fullResync", async () => {
    const answer = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{"syncSlug": "accounts-to-crm"}' });
    const run = await finished(answer.body.id);
    expect(run).toMatchObject({ syncId: 1, status: 'success', options: { fullResync: false } });
  });

  it('the first version: POST /api/v1/syncs/{id}/trigger with no body and no content type', async () => {
    const answer = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/2/trigger', headers: curl(false) });
    expect(answer.body).toEqual({ id: expect.stringMatching(/^\d+$/) });
    await finished(answer.body.id);
  });

  it('with a sync-slug of digits: the sync of that slug, not the one whose id it spells', async () => {
    const created = await api.call('POST', '/api/syncs', { slug: '2', model: 'contacts', destination: 'crm', object: 'contacts', mode: 'upsert', mappings: [{ from: 'email', to: 'email_address' }] });
    expect(created.status).toBe(201);
    try {
      const answer = await sendOk(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncSlug": "2", "fullResync": "false" }' });
      const run = await finished(answer.body.id);
      expect(run.syncId).toBe(created.body.id);
      expect(run.syncId).not.toBe(2);
    } finally {
      expect((await api.call('DELETE', '/api/syncs/2')).status).toBe(204);
    }
  });

  it('inputs that are not a sync or a flag fail the step (--fail) with a 422 naming the input', async () => {
    const badId = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncId": "abc", "fullResync": "false" }' });
    expect(badId.status).toBe(422);
    expect(badId.body).toEqual({ message: 'Validation failed', details: { syncId: expect.stringContaining('whole number') } });
    const badFlag = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncId": "1", "fullResync": "yes" }' });
    expect(badFlag.status).toBe(422);
    expect(badFlag.body.details).toEqual({ fullResync: 'fullResync must be true or false' });
    // An empty sync-slug input is skipped by the action (`if: inputs.sync-slug`); sent anyway it is a 422.
    const empty = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncSlug": "", "fullResync": "false" }' });
    expect(empty.status).toBe(422);
    const unknown = await send(api, { method: 'POST', path: '/api/v1/syncs/trigger', headers: curl(true), body: '{ "syncSlug": "nope", "fullResync": "false" }' });
    expect(unknown.status).toBe(404);
  });
});

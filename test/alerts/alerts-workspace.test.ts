import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { AlertsDefinition } from '../../src/core/alerts.js';
import type { Diagnostic } from '../../src/core/errors.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { loadFiles, yaml } from '../workspace/helpers.js';

const load = loadFiles;

const brief = (d: Diagnostic) => `${d.file}:${d.line}: ${d.message}${d.hint ? ` — ${d.hint}` : ''}`;

const BASE = [
  'sources:',
  '  warehouse: { type: sqlite, path: warehouse.db }',
  'destinations:',
  '  crm: { type: sqlite, path: crm.db }',
  'models:',
  '  accounts: { source: warehouse, primaryKey: id, query: "select id from accounts" }',
  'syncs:',
  '  accounts-to-crm: { model: accounts, destination: crm, object: accounts, mode: upsert }',
  'sequences:',
  '  crm: { members: [accounts-to-crm] }',
];

/** An Integration Key as PagerDuty issues them: 32 characters. */
const PD_INTEGRATION_KEY = 'R0123456789abcdef0123456789abcde';

const ENV = { SLACK_WEBHOOK: 'https://hooks.slack.test/x', PD_KEY: PD_INTEGRATION_KEY, HOOK_SECRET: 's', TOKEN: 't' };

const ALERTS = [
  'alerts:',
  '  channels:',
  '    ops-slack: { type: slack, url: "${SLACK_WEBHOOK}" }',
  '    oncall: { type: pagerduty, routingKey: "${PD_KEY}" }',
  '    hooks: { type: webhook, url: "https://example.test/hook", headers: { Authorization: "Bearer ${TOKEN}" }, secret: "${HOOK_SECRET}" }',
  '    mail: { type: email, smtp: "smtp://127.0.0.1:2525", from: lockstep@example.test, to: ops@example.test }',
  '  rules:',
  '    - { on: [sync_failed, sequence_failed, recovered], channels: [ops-slack] }',
  '    - name: crm-pager',
  '      sequences: [crm]',
  '      on: [sequence_failed, slow_run, recovered]',
  '      slowerThanMinutes: 30',
  '      channels: [oncall, hooks, mail]',
  '    - { syncs: [accounts-to-crm], rejectedPercent: 5, channels: [mail] }',
];

describe('alerts in the workspace', () => {
  it('loads channels and rules with every default filled, and apply stores them; plan shows changes by name', async () => {
    const { dir, definition, diagnostics } = await load({ 'lockstep.yaml': yaml(...BASE, ...ALERTS) }, ENV);
    expect(diagnostics).toEqual([]);
    expect(definition?.alerts).toEqual({
      channels: [
        { name: 'ops-slack', type: 'slack', url: '${SLACK_WEBHOOK}' },
        { name: 'oncall', type: 'pagerduty', routingKey: '${PD_KEY}', url: 'https://events.pagerduty.com/v2/enqueue' },
        { name: 'hooks', type: 'webhook', url: 'https://example.test/hook', headers: { Authorization: 'Bearer ${TOKEN}' }, secret: '${HOOK_SECRET}' },
        { name: 'mail', type: 'email', smtp: 'smtp://127.0.0.1:2525', from: 'lockstep@example.test', to: ['ops@example.test'] },
      ],
      rules: [
        { name: 'rule-1', on: ['sync_failed', 'sequence_failed', 'recovered'], syncs: [], sequences: [], rejectedPercent: 0, slowerThanMinutes: null, channels: ['ops-slack'] },
        { name: 'crm-pager', on: ['sequence_failed', 'slow_run', 'recovered'], syncs: [], sequences: ['crm'], rejectedPercent: 0, slowerThanMinutes: 30, channels: ['oncall', 'hooks', 'mail'] },
        {
          name: 'rule-3',
          on: ['sync_failed', 'sequence_failed', 'rejected_rows', 'recovered'],
          syncs: ['accounts-to-crm'],
          sequences: [],
          rejectedPercent: 5,
          slowerThanMinutes: null,
          channels: ['mail'],
        },
      ],
    });

    const store = await SqliteStore.open({ path: join(dir, 'lockstep.db') });
    try {
      const plan = await store.planWorkspace(definition!);
      expect(plan.filter((c) => c.kind.startsWith('alert'))).toEqual([
        { action: 'create', kind: 'alert-channel', slug: 'ops-slack', fields: [] },
        { action: 'create', kind: 'alert-channel', slug: 'oncall', fields: [] },
        { action: 'create', kind: 'alert-channel', slug: 'hooks', fields: [] },
        { action: 'create', kind: 'alert-channel', slug: 'mail', fields: [] },
        { action: 'create', kind: 'alert-rule', slug: 'rule-1', fields: [] },
        { action: 'create', kind: 'alert-rule', slug: 'crm-pager', fields: [] },
        { action: 'create', kind: 'alert-rule', slug: 'rule-3', fields: [] },
      ]);
      await store.applyWorkspace(definition!, 1);
      // The store records where each came from: these from files.
      const stored = (alerts: AlertsDefinition) => ({ channels: alerts.channels.map((c) => ({ ...c, origin: 'file' })), rules: alerts.rules.map((r) => ({ ...r, origin: 'file' })) });
      expect(await store.alerts.getDefinition()).toEqual(stored(definition!.alerts!));
      expect((await store.loadWorkspace()).alerts).toEqual(stored(definition!.alerts!));
      expect(await store.planWorkspace(definition!)).toEqual([]);

      const next = { ...definition!, alerts: { channels: definition!.alerts!.channels.slice(0, 3), rules: [{ ...definition!.alerts!.rules[0]!, channels: ['hooks'] }] } };
      expect(await store.planWorkspace(next)).toEqual([
        { action: 'delete', kind: 'alert-channel', slug: 'mail', fields: [] },
        { action: 'update', kind: 'alert-rule', slug: 'rule-1', fields: ['channels'] },
        { action: 'delete', kind: 'alert-rule', slug: 'crm-pager', fields: [] },
        { action: 'delete', kind: 'alert-rule', slug: 'rule-3', fields: [] },
      ]);
      await store.applyWorkspace(next, 2);
      expect(await store.alerts.getDefinition()).toEqual(stored(next.alerts));
      // A definition without alerts removes them.
      const { alerts: _alerts, ...withoutAlerts } = definition!;
      await store.applyWorkspace(withoutAlerts, 3);
      expect(await store.alerts.getDefinition()).toEqual({ channels: [], rules: [] });
    } finally {
      await store.close();
    }
  });

  it('reports unknown channels, syncs and sequences with did-you-mean, unset variables, and rule settings without effect', async () => {
    const { diagnostics, definition } = await load(
      {
        'lockstep.yaml': yaml(
          ...BASE,
          'alerts:',
          '  channels:',
          '    ops-slack: { type: slack, url: "${SLACK_WEBHOOK}" }',
          '    hooks: { type: webhook, url: "https://example.test", headers: { X-Key: "${HOOK_KEY}" } }',
          '  rules:',
          '    - { channels: [ops-slak] }',
          '    - { syncs: [accounts-to-cr], sequences: [crn], channels: [hooks] }',
          '    - { on: [slow_run], channels: [hooks] }',
          '    - { on: [sync_failed], rejectedPercent: 5, channels: [hooks] }',
          '    - { on: [], channels: [] }',
          '    - { on: [sync_broke], channels: [pager] }',
        ),
      },
      {},
    );
    expect(definition).toBeNull();
    expect(diagnostics.map(brief)).toEqual([
      'lockstep.yaml:13: environment variable SLACK_WEBHOOK is not set (alert channel "ops-slack" uses ${SLACK_WEBHOOK}) — export SLACK_WEBHOOK=... before running Lockstep',
      'lockstep.yaml:14: environment variable HOOK_KEY is not set (alert channel "hooks" uses ${HOOK_KEY}) — export HOOK_KEY=... before running Lockstep',
      'lockstep.yaml:16: unknown alert channel "ops-slak" (did you mean "ops-slack"?) — declare it under alerts.channels, or use one of: ops-slack, hooks',
      'lockstep.yaml:17: unknown sync "accounts-to-cr" (did you mean "accounts-to-crm"?) — alert rules watch declared syncs: accounts-to-crm',
      'lockstep.yaml:17: unknown sequence "crn" (did you mean "crm"?) — alert rules watch declared sequences: crm',
      expect.stringContaining('lockstep.yaml:18: on lists slow_run but the rule has no slowerThanMinutes'),
      expect.stringContaining('lockstep.yaml:19: rejectedPercent has no effect: on does not list rejected_rows'),
      expect.stringContaining('lockstep.yaml:20: on is an empty list'),
      expect.stringContaining('lockstep.yaml:20: channels is an empty list'),
      expect.stringContaining('lockstep.yaml:21:'),
      'lockstep.yaml:21: unknown alert channel "pager" — declare it under alerts.channels, or use one of: ops-slack, hooks',
    ]);
  });

  it('reports an email channel\'s recipient read from a variable that is not set or is empty', async () => {
    const { diagnostics, definition } = await load(
      {
        'lockstep.yaml': yaml(
          ...BASE,
          'alerts:',
          '  channels:',
          '    mail: { type: email, smtp: "smtp://127.0.0.1:2525", from: lockstep@example.test, to: ["${ONCALL_EMAIL}", "${TEAM_EMAIL}"] }',
          '    pager-mail: { type: email, smtp: "smtp://127.0.0.1:2525", from: lockstep@example.test, to: "${PAGER_EMAIL}" }',
        ),
      },
      { TEAM_EMAIL: '' },
    );
    expect(definition).toBeNull();
    expect(diagnostics.map(brief)).toEqual([
      'lockstep.yaml:13: environment variable ONCALL_EMAIL is not set (alert channel "mail" uses ${ONCALL_EMAIL}) — export ONCALL_EMAIL=... before running Lockstep',
      'lockstep.yaml:13: environment variable TEAM_EMAIL is empty (alert channel "mail" uses ${TEAM_EMAIL}) — export TEAM_EMAIL=... before running Lockstep',
      'lockstep.yaml:14: environment variable PAGER_EMAIL is not set (alert channel "pager-mail" uses ${PAGER_EMAIL}) — export PAGER_EMAIL=... before running Lockstep',
    ]);
  });

  it('checks each channel\'s URL where it is written: Slack and webhook URLs over http(s), an SMTP server', async () => {
    const { diagnostics, definition } = await load({
      'lockstep.yaml': yaml(
        ...BASE,
        'alerts:',
        '  channels:',
        '    ops: { type: slack, url: "not a url" }',
        '    hook: { type: webhook, url: "ftp://x.example" }',
        '    mail: { type: email, smtp: "nope", from: a@example.com, to: [b@example.com] }',
        '    fine: { type: webhook, url: "${HOOK_URL}" }',
        '  rules:',
        '    - { on: [sync_failed], channels: [ops, hook, mail, fine] }',
      ),
    }, { HOOK_URL: 'https://hooks.example.com/x' });
    expect(definition).toBeNull();
    expect(diagnostics.map(brief)).toEqual([
      'lockstep.yaml:13: url is not a URL — write it like "${SLACK_WEBHOOK}" or https://hooks.slack.com/services/...',
      'lockstep.yaml:14: url must start with https:// or http://, not ftp:// — e.g. https://alerts.example.com/lockstep',
      'lockstep.yaml:15: smtp is not a URL — write it like "smtp://user:${SMTP_PASSWORD}@mail.example.com:587"',
    ]);
  });

  it('never shows the value of a channel\'s secret or a webhook\'s signing secret written as a number', async () => {
    const { diagnostics } = await load({
      'lockstep.yaml': yaml(
        ...BASE,
        'alerts:',
        '  channels:',
        '    pd: { type: pagerduty, routingKey: 11223344556677 }',
        '    hook: { type: webhook, url: "https://hooks.example.com/x", secret: 99887766554433, headers: { Authorization: 5544332211 } }',
        '  rules:',
        '    - { on: [sync_failed], channels: [pd, hook] }',
        'webhooks:',
        '  dbtCloud: { secret: 12121212343434 }',
      ),
    });
    expect(diagnostics.map(brief)).toEqual([
      'lockstep.yaml:13: routingKey must be a string, got a number — write it in quotes',
      'lockstep.yaml:14: secret must be a string, got a number — write it in quotes',
      'lockstep.yaml:14: Authorization must be a string, got a number — write it in quotes',
      'lockstep.yaml:18: secret must be a string, got a number — write it in quotes',
    ]);
  });

  it('refuses a PagerDuty routing key that is not an Integration Key\'s 32 characters, written or read from a variable, without showing it', async () => {
    const { diagnostics, definition } = await load(
      {
        'lockstep.yaml': yaml(
          ...BASE,
          'alerts:',
          '  channels:',
          '    pd-written: { type: pagerduty, routingKey: "pd-routing-k3y-4410" }',
          '    pd-env: { type: pagerduty, routingKey: "${PD_KEY}" }',
          '    pd-newline: { type: pagerduty, routingKey: "${PD_KEY_FILE}" }',
          '    pd-good: { type: pagerduty, routingKey: "${PD_GOOD}" }',
          '    pd-unset: { type: pagerduty, routingKey: "${PD_UNSET}" }',
          '  rules:',
          '    - { on: [sync_failed], channels: [pd-written, pd-env, pd-newline, pd-good, pd-unset] }',
        ),
      },
      // A key read from a file keeps its line break; the Events API v1 service key format is not a routing key.
      { PD_KEY: 'v1-s3rvice-key-abc', PD_KEY_FILE: `${PD_INTEGRATION_KEY}\n`, PD_GOOD: PD_INTEGRATION_KEY },
    );
    expect(definition).toBeNull();
    const hint = 'the Integration Key of an Events API v2 integration of the PagerDuty service (Service → Integrations)';
    expect(diagnostics.map(brief)).toEqual([
      `lockstep.yaml:13: routingKey of alert channel "pd-written" is 19 characters long; a PagerDuty Integration Key has 32 — use ${hint}`,
      `lockstep.yaml:14: routingKey of alert channel "pd-env" is 18 characters long (as \${PD_KEY} gives it); a PagerDuty Integration Key has 32 — set PD_KEY to ${hint}`,
      `lockstep.yaml:15: routingKey of alert channel "pd-newline" is 33 characters long (as \${PD_KEY_FILE} gives it); a PagerDuty Integration Key has 32 — set PD_KEY_FILE to ${hint} without the spaces or line break around it`,
      'lockstep.yaml:17: environment variable PD_UNSET is not set (alert channel "pd-unset" uses ${PD_UNSET}) — export PD_UNSET=... before running Lockstep',
    ]);
    for (const secret of ['pd-routing-k3y-4410', 'v1-s3rvice-key-abc', PD_INTEGRATION_KEY]) {
      expect(diagnostics.map(brief).join('\n')).not.toContain(secret);
    }
  });

  it('checks a channel URL read from a variable as the variable gives it, without showing it', async () => {
    const { diagnostics, definition } = await load(
      {
        'lockstep.yaml': yaml(
          ...BASE,
          'alerts:',
          '  channels:',
          '    ops: { type: slack, url: "${SLACK_WEBHOOK}" }',
          '    hook: { type: webhook, url: "${HOOK_BASE}/lockstep" }',
          '    mail: { type: email, smtp: "smtp://ops:${SMTP_PASSWORD}@mail.example.test:587", from: a@example.test, to: b@example.test }',
          '    fine: { type: slack, url: "${GOOD_WEBHOOK}" }',
          '  rules:',
          '    - { on: [sync_failed], channels: [ops, hook, mail, fine] }',
        ),
      },
      {
        SLACK_WEBHOOK: 'hooks.slack.com/services/T0/B0/sl4ck-s3cret',
        HOOK_BASE: 'ftp://alerts.example.test',
        SMTP_PASSWORD: '2024#s3cret-pw',
        GOOD_WEBHOOK: 'https://hooks.slack.com/services/T0/B0/g00d-s3cret',
      },
    );
    expect(definition).toBeNull();
    expect(diagnostics.map(brief)).toEqual([
      'lockstep.yaml:13: url of alert channel "ops" is not a URL (as ${SLACK_WEBHOOK} gives it) — check SLACK_WEBHOOK: write it like https://hooks.slack.com/services/...',
      'lockstep.yaml:14: url of alert channel "hook" must start with https:// or http://, not ftp:// (as ${HOOK_BASE} gives it) — check HOOK_BASE: e.g. https://alerts.example.com/lockstep',
      'lockstep.yaml:15: smtp of alert channel "mail" does not read as user:password@host... (it has a # or a second @) (as ${SMTP_PASSWORD} gives it) — check SMTP_PASSWORD: percent-encode @, /, #, ? and : in the user name and password (@ is %40, / is %2F, # is %23)',
    ]);
    for (const secret of ['sl4ck-s3cret', 's3cret-pw', 'g00d-s3cret']) expect(diagnostics.map(brief).join('\n')).not.toContain(secret);
  });

  it('refuses a rule whose events its syncs or sequences never have, and a rejectedPercent of a rule that watches only sequences', async () => {
    const { diagnostics, definition } = await load(
      {
        'lockstep.yaml': yaml(
          ...BASE,
          'alerts:',
          '  channels:',
          '    hooks: { type: webhook, url: "https://example.test" }',
          '  rules:',
          '    - { sequences: [crm], on: [sync_failed, rejected_rows, recovered], rejectedPercent: 5, channels: [hooks] }',
          '    - { syncs: [accounts-to-crm], on: [sequence_failed], channels: [hooks] }',
          '    - { sequences: [crm], rejectedPercent: 5, channels: [hooks] }',
          '    - { syncs: [accounts-to-crm], sequences: [crm], on: [sync_failed, rejected_rows, sequence_failed], channels: [hooks] }',
        ),
      },
      {},
    );
    expect(definition).toBeNull();
    expect(diagnostics.map(brief)).toEqual([
      'lockstep.yaml:15: on lists sync_failed and rejected_rows, events of sync runs, but the rule watches only sequences: it never notifies — list the syncs under syncs (a sequence\'s members are syncs of their own), or list sequence_failed in on',
      'lockstep.yaml:16: on lists sequence_failed, an event of sequence runs, but the rule watches only syncs: it never notifies — list the sequences under sequences, or list sync_failed in on',
      'lockstep.yaml:17: rejectedPercent has no effect: rejected rows are counted per sync run, and the rule watches only sequences — list the syncs under syncs, or remove rejectedPercent',
    ]);
  });

  it('merges alerts from several files and refuses a channel declared twice', async () => {
    const { diagnostics } = await load(
      {
        'lockstep.yaml': yaml(...BASE, 'alerts:', '  channels:', '    ops: { type: slack, url: "https://hooks.slack.test/a" }'),
        'lockstep/alerts.yaml': yaml('alerts:', '  channels:', '    ops: { type: slack, url: "https://hooks.slack.test/b" }', '  rules:', '    - { channels: [ops] }'),
      },
      {},
    );
    expect(diagnostics.map(brief)).toEqual([
      'lockstep/alerts.yaml:3: alert channel "ops" is declared twice: lockstep.yaml:13 and lockstep/alerts.yaml:3 — channel names are unique across all workspace files; rename or remove one',
    ]);
  });
});

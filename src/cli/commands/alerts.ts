/** `lockstep alerts test <channel>` sends a test alert; `alerts list` shows channels, rules, states and deliveries. */
import type { Command } from 'commander';
import type { App } from '../../app.js';
import { MAX_LIMIT, limitFlag } from '../flags.js';
import type { Terminal } from '../output.js';
import type { CommandDeps } from './command-deps.js';

export function registerAlertsCommands(program: Command, deps: CommandDeps): void {
  const { term, open } = deps;

  const alertsCommand = program.command('alerts').description('alert channels, rules and deliveries');
  alertsCommand
    .command('test <channel>')
    .description('send a test alert to a channel now (exits 3 when the channel refuses it)')
    .action(async (channel: string) => {
      const { app, close } = await open.app({ lookingFor: `no alert channel "${channel}"` });
      try {
        const delivery = await app.alerts.sendTestAlert(channel);
        term.out(`✔ test alert sent to channel "${channel}" (delivery ${delivery.id})`);
      } finally {
        await close();
      }
    });
  alertsCommand
    .command('list')
    .description('show alert channels, rules, current alert states and recent deliveries')
    .option('--limit <n>', `how many deliveries, 1 to ${MAX_LIMIT}`, '20')
    .option('--json', 'print JSON')
    .action(async (opts: { limit: string; json?: boolean }) => {
      const limit = limitFlag(opts.limit);
      const { app, close } = await open.toRead();
      try {
        await printAlerts(app, term, { limit, json: opts.json });
      } finally {
        await close();
      }
    });
}

async function printAlerts(app: App, term: Terminal, opts: { limit: number; json?: boolean }) {
  const definition = await app.store.alerts.getDefinition();
  const states = await app.store.alerts.listStates();
  const deliveries = await app.store.alerts.listDeliveries({ limit: opts.limit, offset: 0 });
  if (opts.json) {
    // Channel settings may hold secrets once resolved; as stored they are templates, shown by type only.
    const channels = definition.channels.map((c) => ({ name: c.name, type: c.type }));
    term.out(JSON.stringify({ channels, rules: definition.rules, states, deliveries }, null, 2));
    return;
  }
  if (definition.channels.length === 0 && definition.rules.length === 0) {
    term.out('No alerts declared. Add an alerts: section to lockstep.yaml (channels and rules), then `lockstep apply`.');
    return;
  }
  term.out('Channels');
  for (const c of definition.channels) term.out(`  ${c.name}  ${c.type}`);
  term.out('Rules');
  for (const r of definition.rules) {
    const scope = r.syncs.length + r.sequences.length === 0 ? 'workspace default' : [...r.syncs.map((s) => `sync ${s}`), ...r.sequences.map((s) => `sequence ${s}`)].join(', ');
    const limits = [r.on.includes('rejected_rows') ? `rejected > ${r.rejectedPercent}%` : '', r.slowerThanMinutes !== null ? `slower than ${r.slowerThanMinutes} min` : ''].filter(Boolean);
    term.out(`  ${r.name}  on ${r.on.join(', ')}  — ${scope}${limits.length ? `; ${limits.join(', ')}` : ''}  → ${r.channels.join(', ')}`);
  }
  const raised = states.filter((s) => s.raised);
  term.out(raised.length === 0 ? 'Nothing raised.' : 'Raised');
  for (const s of raised) term.out(`  ${s.subject.kind} ${s.subject.slug}  ${s.condition}  since ${new Date(s.since).toISOString()}  (rule ${s.rule})`);
  term.out(deliveries.length === 0 ? 'No deliveries yet.' : 'Recent deliveries');
  for (const d of deliveries) {
    const when = new Date(d.sentAt ?? d.createdAt).toISOString();
    const next = d.status === 'pending' && d.nextAttemptAt !== null ? `, next attempt ${new Date(d.nextAttemptAt).toISOString()}` : '';
    term.out(
      `  ${d.status === 'sent' ? '✔' : d.status === 'failed' ? '✖' : '…'} #${d.id} ${when}  ${d.channel}  ${d.notice.title}  ${d.status} after ${d.attempts} attempt(s)${next}${d.lastError ? `  — ${d.lastError}` : ''}`,
    );
  }
}

/**
 * Live updates across a lost connection: a page kept open while the server restarts, or while a
 * reverse proxy in front of it answers 502, shows afterwards the runs that happened meanwhile, and
 * goes on following new ones.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import type { SyncRunView } from '../../src/core/run-views.js';
import { runCli } from '../cli/cli-helpers.js';
import { freePort } from '../setup/processes.js';
import { eventually, screenshot, servedForTests, startServer, type UiServer } from './ui-harness.js';

let dir: string;
let server: UiServer;
let page: Page;
const restarted: UiServer[] = [];

servedForTests({ ready: (ui) => void ({ dir, server, page } = ui) });

afterAll(async () => {
  for (const again of restarted) await again[Symbol.asyncDispose]();
});

const liveState = () => page.getByTitle('Live updates from the server');
const runRows = () => page.getByRole('table', { name: 'Sync runs' }).locator('tbody tr');

/** A reverse proxy to `target` on a free loopback port that answers 502 while `down`, as nginx does while its upstream restarts. */
async function reverseProxy(target: string): Promise<{ url: string; setDown: (down: boolean) => void; close: () => Promise<void> }> {
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  let down = false;
  const proxy: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (down) {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
      return;
    }
    const forwarded = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  proxy.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    setDown(value: boolean) {
      down = value;
      // The upstream went away: the connections through the proxy, the event stream's included, end.
      if (value) for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        proxy.close(() => resolve());
      }),
  };
}

describe('live updates after a lost connection', () => {
  it('a page open while the server restarts shows the run that ran meanwhile, once it is back', async () => {
    await page.goto(`${server.baseUrl}/syncs/accounts-to-crm`);
    await page.getByText('This sync has not run yet').waitFor();
    await eventually('the live indicator to say Live', async () => ((await liveState().textContent()) === 'Live' ? true : undefined));

    const port = Number(new URL(server.baseUrl).port);
    await server[Symbol.asyncDispose]();
    await eventually('the page to notice the server is gone', async () => ((await liveState().textContent()) !== 'Live' ? true : undefined));
    const ran = await runCli(['--workspace', dir, 'sync', 'run', 'accounts-to-crm'], { cwd: dir });
    expect(ran.code, ran.stderr).toBe(0);
    server = await startServer(dir, { port });
    restarted.push(server);

    await eventually('the live indicator to say Live again', async () => ((await liveState().textContent()) === 'Live' ? true : undefined));
    await eventually('the run made while the server was away', async () => ((await runRows().count()) === 1 ? true : undefined), 10_000);
    expect(await runRows().first().locator('[data-status]').getAttribute('data-status')).toBe('success');

    // And it goes on following new runs.
    await server.api<SyncRunView>('POST', '/api/syncs/accounts-to-crm/runs', {});
    await eventually('a run started after the restart', async () => ((await runRows().count()) === 2 ? true : undefined), 10_000);
    await screenshot(page, 'live-after-restart');
  });

  it('a page behind a reverse proxy that answered 502 for a while comes back to live updates', async () => {
    const proxy = await reverseProxy(server.baseUrl);
    try {
      await page.goto(`${proxy.url}/syncs/workspaces-to-crm`);
      await page.getByText('This sync has not run yet').waitFor();
      await eventually('the live indicator to say Live', async () => ((await liveState().textContent()) === 'Live' ? true : undefined));

      proxy.setDown(true);
      // The browser gives up on an event stream answered with an error page.
      await eventually('the page to say it is offline', async () => ((await liveState().textContent()) === 'Offline' ? true : undefined));
      const run = await server.api<SyncRunView>('POST', '/api/syncs/workspaces-to-crm/runs', {});
      expect(run.status).toBe(202);
      await eventually('the run to end', async () => {
        const { body } = await server.api<SyncRunView>('GET', `/api/sync-runs/${run.body.id}`);
        return ['success', 'warning'].includes(body.status) ? true : undefined;
      });
      proxy.setDown(false);

      await eventually('the live indicator to say Live again', async () => ((await liveState().textContent()) === 'Live' ? true : undefined), 20_000);
      await eventually('the run made while the proxy answered 502', async () => ((await runRows().count()) === 1 ? true : undefined), 10_000);
      await screenshot(page, 'live-after-proxy-502');
    } finally {
      await proxy.close();
    }
  });
});

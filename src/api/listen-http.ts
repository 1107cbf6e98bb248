/**
 * Listening on a port, for serve's server and for the metrics listener of `worker` and `scheduler`:
 * the URL it listens at once it does, and a port that cannot be listened on refused naming the
 * option that picks another.
 */
import { createServer, type AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { ErrorCode, LockstepError, toError } from '../core/errors.js';
import { SERVE_PORT, type PortOption } from '../core/hosts.js';

export interface Listening {
  url: string;
  port: number;
  /** Stops listening and ends the connections still open (event streams, keep-alives). */
  close(): Promise<void>;
}

/** Serves `fetch` on `host:port`; resolves once it listens. */
export function listenHttp(fetch: (request: Request) => Response | Promise<Response>, port: number, host: string, option: PortOption): Promise<Listening> {
  return new Promise((resolveListen, reject) => {
    const server = serve({ fetch, port, hostname: host }, (info: AddressInfo) => {
      const shown = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolveListen({
        url: `http://${shown}:${info.port}`,
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once('error', (e: unknown) => reject(listenError(e, host, port, option)));
  });
}

/**
 * Refuses a port that cannot be listened on (another program listens there, or this user may not
 * open it) with the error `listen` gives, for a command that has slow work to do before it serves.
 * Port 0 (any free port) always passes.
 */
export async function checkPortFree(port: number, host: string, option: PortOption = SERVE_PORT): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolveProbe, reject) => {
    probe.once('error', (e: unknown) => reject(listenError(e, host, port, option)));
    probe.listen(port, host, () => probe.close(() => resolveProbe()));
  });
}

function listenError(error: unknown, host: string, port: number, option: PortOption): LockstepError {
  return new LockstepError(ErrorCode.Internal, `cannot listen on ${host}:${port}: ${toError(error).message}${listenHint(error, option)}`);
}

/** The fix for a port that cannot be listened on, when the cause says which. */
function listenHint(error: unknown, { flag, env, example }: PortOption): string {
  const pick = `with ${flag} (or ${env}), e.g. ${flag} ${example}`;
  switch ((error as { code?: unknown }).code) {
    case 'EADDRINUSE':
      return ` — another program listens on that port: stop it, or pick another port ${pick}`;
    case 'EACCES':
      return ` — this user may not listen on that port: pick a port of 1024 or more ${pick}`;
    default:
      return '';
  }
}

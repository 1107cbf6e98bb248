import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback in front of a server, that can stop passing anything on without closing
 * a connection: a network partition that drops packets and sends no reset. A connection that lost
 * data, or was opened meanwhile, stays silent for good (its flow is gone, as behind a NAT that
 * forgot it); connections opened after `heal()` pass again. A client that ends a silent connection
 * with a goodbye (a FIN) gets none back, as behind a real partition: its side stays open until it
 * closes the socket at once.
 *
 * The server's side of a silent connection the client ended or closed is closed by default, as the
 * server's TCP keepalive would find nobody there in the end. With `strand`, it stays open (until
 * the proxy is disposed), as behind a real partition until that keepalive (two hours by default):
 * the server's session lives on, with its transaction and locks.
 */
export interface PartitionProxyOptions {
  /** Keep the server's side of a silent connection open after the client ended or closed it (default: false). */
  strand?: boolean;
}

export class PartitionProxy implements AsyncDisposable {
  private forwarding = true;
  /** Connections from the client side, with whether their flow is gone and whether the client ended its side. */
  private readonly connections = new Map<Socket, { silent: boolean; ended: boolean; upstream: Socket | null }>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly strand: boolean,
  ) {}

  /** Starts a proxy to `host:port` on a free port of 127.0.0.1. */
  static async start(host: string, port: number, options: PartitionProxyOptions = {}): Promise<PartitionProxy> {
    // Half-open allowed: the proxy answers a client's FIN itself only while the flow passes.
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    const proxy = new PartitionProxy(server, typeof address === 'object' && address ? address.port : 0, options.strand ?? false);
    server.on('connection', (downstream) => proxy.accept(downstream, host, port));
    return proxy;
  }

  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string {
    const proxied = new URL(url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(this.port);
    return proxied.toString();
  }

  /** From now on nothing passes, either way, and nothing is closed. */
  partition(): void {
    this.forwarding = false;
  }

  /** Connections opened from now on pass again; those that went silent stay so. */
  heal(): void {
    this.forwarding = true;
  }

  /** Connections that went silent and that the client has neither closed nor ended yet. */
  silentOpen(): number {
    let open = 0;
    for (const [socket, state] of this.connections) if (state.silent && !state.ended && !socket.destroyed) open++;
    return open;
  }

  /** Connections that went silent whose server side is still open after the client ended or closed its side (see `strand`). */
  stranded(): number {
    let open = 0;
    for (const [socket, state] of this.connections) if (state.silent && (state.ended || socket.destroyed) && state.upstream !== null && !state.upstream.destroyed) open++;
    return open;
  }

  /** The proxy's own sockets still open, on either side: to tell them from a client's in this process. */
  liveSockets(): number {
    let live = 0;
    for (const [socket, state] of this.connections) live += Number(!socket.destroyed) + Number(state.upstream !== null && !state.upstream.destroyed);
    return live;
  }

  /** Connections that went silent, closed by the client or not. */
  silentCount(): number {
    return [...this.connections.values()].filter((state) => state.silent).length;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const [socket, state] of this.connections) {
      socket.destroy();
      state.upstream?.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: Socket, host: string, port: number): void {
    const state = { silent: !this.forwarding, ended: false, upstream: null as Socket | null };
    this.connections.set(downstream, state);
    downstream.on('error', () => undefined);
    downstream.on('end', () => {
      state.ended = true;
      // A silent connection's goodbye gets no answer, and the server's side is let go (the server
      // would drop it once its keepalive found nobody) unless stranded; a passing one ends on both sides.
      if (!state.silent) state.upstream?.end();
      else if (!this.strand) state.upstream?.destroy();
    });
    // Read and drop: a client closing it is seen.
    if (state.silent) {
      downstream.resume();
      return;
    }
    const upstream = connect(port, host);
    state.upstream = upstream;
    upstream.on('error', () => downstream.destroy());
    const pass = (to: Socket) => (data: Buffer) => {
      if (!this.forwarding) state.silent = true;
      if (!state.silent) to.write(data);
    };
    downstream.on('data', pass(upstream));
    upstream.on('data', pass(downstream));
    downstream.on('close', () => {
      if (!(state.silent && this.strand)) upstream.destroy();
    });
    upstream.on('close', () => {
      if (!this.forwarding) state.silent = true;
      if (!state.silent) downstream.destroy();
    });
  }
}

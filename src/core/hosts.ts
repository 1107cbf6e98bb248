import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/** Whether `host` is a loopback address, reachable only from this machine (where `--no-auth` may serve). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The command-line option and environment variable that choose a port a process listens on. */
export interface PortOption {
  flag: string;
  env: string;
  /** A port to suggest when the one given is not a port or cannot be listened on. */
  example: number;
}

/** `lockstep serve --port`: the API, the UI and serve's metrics. */
export const SERVE_PORT: PortOption = { flag: '--port', env: 'LOCKSTEP_PORT', example: 8080 };

/**
 * `lockstep worker|scheduler --metrics-port`: that process's metrics and health checks. 9464 is the
 * port OpenTelemetry's Prometheus exporters use, away from serve's 3000 and 8080.
 */
export const METRICS_PORT: PortOption = { flag: '--metrics-port', env: 'LOCKSTEP_METRICS_PORT', example: 9464 };

/** The inode of Linux's initial PID namespace (the kernel's PROC_PID_INIT_INO): processes in no container's. */
const INITIAL_PID_NAMESPACE = '4026531836';

/**
 * Where this process's id names it, as the host part of a worker id: the host name, and inside a
 * PID namespace of its own (a container's, on Linux) that namespace too, as in
 * `web-1~pidns4026532175`. A process id names a process only in its namespace, and containers on
 * the host's network share the host's name: two workers are on one host, and can tell whether the
 * other's process is gone, only when this is the same for both.
 */
export function processHost(): string {
  let namespace: string | undefined;
  try {
    namespace = /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
  } catch {
    namespace = undefined; // not Linux, or no /proc: the host name alone, as before namespaces
  }
  return namespace === undefined || namespace === INITIAL_PID_NAMESPACE ? hostname() : `${hostname()}~pidns${namespace}`;
}
